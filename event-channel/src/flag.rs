//! The guest's virtual interrupt flag: `vcpu_info.evtchn_upcall_mask`.
//!
//! A PV guest's `cli`/`sti` do nothing useful in ring 1; the upcall mask in its `vcpu_info`
//! (`xen/include/public/xen.h`) is the interrupt flag instead. Xen delivers an event upcall only
//! while `evtchn_upcall_pending != 0 && evtchn_upcall_mask == 0`, and only when it is about to
//! return to the guest. So a guest that clears the mask with a plain store must look at
//! `evtchn_upcall_pending` itself afterwards and, if it is set, get the upcall delivered now
//! (any hypercall does, or the ROM calls its upcall path directly). That is [`Wakeup`].
//!
//! These functions implement the VMI interrupt-flag calls (vmi-abi.md, calls 29-32):
//! `DisableInterrupts`, `EnableInterrupts`, `GetInterruptMask` (EFLAGS.IF = 0x200 when
//! enabled) and `SetInterruptMask`. They touch only the shared words, never the ROM's own
//! per-vCPU state, so an upcall that arrives in the middle of one cannot find that state
//! half-updated.
//!
//! [`crate::VcpuEvents`] keeps `evtchn_upcall_pending` set whenever it holds work of its own
//! (a deliverable vector, unscanned selector bits), so this check needs nothing else.

use core::sync::atomic::{compiler_fence, Ordering};

use crate::abi::EFLAGS_IF;
use crate::words::EventWords;

/// What the caller must do after an operation that may have opened the interrupt window.
#[must_use = "DeliverNow means an event is waiting and must be delivered before continuing"]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wakeup {
    /// Nothing to deliver now.
    Idle,
    /// Interrupts are enabled and an upcall is pending: deliver it before resuming the kernel
    /// (force the event callback, as Xen would at its next return to the guest).
    DeliverNow,
}

/// VMI `DisableInterrupts`: mask event upcalls on this vCPU.
#[inline]
pub fn disable_interrupts<W: EventWords + ?Sized>(words: &W) {
    words.set_upcall_mask(true);
    // Nothing the caller does next may be moved above the mask store by the compiler; an
    // upcall interrupting this CPU is the only other party that reads it here.
    compiler_fence(Ordering::SeqCst);
}

/// VMI `EnableInterrupts`: unmask event upcalls; reports [`Wakeup::DeliverNow`] if one is
/// already pending.
#[inline]
pub fn enable_interrupts<W: EventWords + ?Sized>(words: &W) -> Wakeup {
    compiler_fence(Ordering::SeqCst);
    words.set_upcall_mask(false);
    // Unmask, then check: an event that arrives after the check finds the mask clear and Xen
    // delivers it at its next return to the guest. No CPU fence is needed because Xen tests
    // the mask on the physical CPU that is about to enter this vCPU, which sees its own store.
    compiler_fence(Ordering::SeqCst);
    if words.upcall_pending() {
        Wakeup::DeliverNow
    } else {
        Wakeup::Idle
    }
}

/// VMI `GetInterruptMask`: `EFLAGS_IF` (0x200) when interrupts are enabled, else 0.
#[inline]
pub fn interrupt_mask<W: EventWords + ?Sized>(words: &W) -> u32 {
    if words.upcall_mask() {
        0
    } else {
        EFLAGS_IF
    }
}

/// VMI `SetInterruptMask`: enable interrupts if `flags` has EFLAGS.IF, else disable them.
/// Other bits are ignored.
#[inline]
pub fn set_interrupt_mask<W: EventWords + ?Sized>(words: &W, flags: u32) -> Wakeup {
    if flags & EFLAGS_IF != 0 {
        enable_interrupts(words)
    } else {
        disable_interrupts(words);
        Wakeup::Idle
    }
}

/// Runs `critical` with events masked and then restores the caller's interrupt flag.
///
/// The ROM's entry points that change per-vCPU event state (an EOI, a TPR write, a raised
/// vector) run through this so an upcall cannot re-enter them; the [`Wakeup`] says whether
/// something became deliverable while they ran.
#[inline]
pub fn with_events_masked<W: EventWords + ?Sized, R>(
    words: &W,
    critical: impl FnOnce() -> R,
) -> (R, Wakeup) {
    let saved = interrupt_mask(words);
    disable_interrupts(words);
    let result = critical();
    (result, set_interrupt_mask(words, saved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::{AtomicEventWords, EventBitmaps, VcpuEventFlags};

    #[test]
    fn save_restore_round_trip() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        // The domain builder starts vCPUs masked.
        assert_eq!(interrupt_mask(&words), 0);
        assert_eq!(enable_interrupts(&words), Wakeup::Idle);
        assert_eq!(interrupt_mask(&words), EFLAGS_IF);
        disable_interrupts(&words);
        assert_eq!(interrupt_mask(&words), 0);
        // Only IF matters; other EFLAGS bits are ignored.
        assert_eq!(set_interrupt_mask(&words, 0x246), Wakeup::Idle);
        assert_eq!(interrupt_mask(&words), EFLAGS_IF);
        assert_eq!(set_interrupt_mask(&words, 0x046), Wakeup::Idle);
        assert_eq!(interrupt_mask(&words), 0);
    }

    #[test]
    fn enabling_reports_a_pending_upcall() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        let _ = words.test_and_set_upcall_pending();
        // Disabling (or restoring a disabled state) never asks for delivery.
        assert_eq!(set_interrupt_mask(&words, 0), Wakeup::Idle);
        assert_eq!(enable_interrupts(&words), Wakeup::DeliverNow);
        disable_interrupts(&words);
        assert_eq!(set_interrupt_mask(&words, EFLAGS_IF), Wakeup::DeliverNow);
        assert!(!words.upcall_mask());
    }

    #[test]
    fn masked_section_restores_the_flag() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        let _ = enable_interrupts(&words);
        let (seen, wakeup) = with_events_masked(&words, || {
            let _ = words.test_and_set_upcall_pending();
            words.upcall_mask()
        });
        assert!(seen, "the closure runs masked");
        assert_eq!(wakeup, Wakeup::DeliverNow);
        assert!(!words.upcall_mask());
        disable_interrupts(&words);
        let ((), wakeup) = with_events_masked(&words, || ());
        assert_eq!(wakeup, Wakeup::Idle, "a masked caller stays masked");
        assert!(words.upcall_mask());
    }
}
