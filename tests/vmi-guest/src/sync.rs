//! Kernel globals on a single processor.

use core::cell::UnsafeCell;

/// A global the kernel owns; the guest runs on one processor.
///
/// Access goes through [`Global::with`], which lends a unique reference
/// for the duration of a closure. Interrupt handlers never use `with` on a
/// global that non-interrupt code may be inside of (handlers only touch
/// atomics), so the lends never overlap.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: one processor, and `with` lends never overlap (see the type docs).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// A global with an initial value.
    pub const fn new(value: T) -> Self {
        Global(UnsafeCell::new(value))
    }

    /// Runs `f` with a unique reference to the value.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: single processor; callers do not nest `with` on the same
        // global and interrupt handlers do not use it (type docs).
        f(unsafe { &mut *self.0.get() })
    }

    /// The value's address (for hardware and assembly that take it by
    /// address: descriptor tables, stacks).
    pub const fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}
