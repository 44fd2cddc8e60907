//! Kernel globals on a single processor (both test kernels use this one).

use core::cell::UnsafeCell;

/// A global the kernel owns; the kernels run on one processor.
///
/// [`Global::with`] lends a unique reference for the duration of a
/// closure. The benchmark code never calls into the platform (which may
/// enter the trap path, which uses the same globals) while a lend is open,
/// and a kernel's interrupt handlers never lend a global that the code
/// they interrupt may be lending, so lends never overlap.
pub struct Global<T>(UnsafeCell<T>);

impl<T> core::fmt::Debug for Global<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Global")
    }
}

// SAFETY: one processor, and lends never overlap (see the type docs).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// A global with an initial value.
    pub const fn new(value: T) -> Self {
        Global(UnsafeCell::new(value))
    }

    /// Runs `f` with a unique reference to the value.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: single processor; no nested lends (type docs).
        f(unsafe { &mut *self.0.get() })
    }

    /// The value's address (for hardware and assembly that take it by
    /// address: descriptor tables, stacks).
    pub const fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}
