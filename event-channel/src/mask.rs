//! Per-port masking, the lost-edge rule, and Xen's side of raising a port.
//!
//! Mirrors the 2-level protocol of `xen/include/public/event_channel.h` and
//! `EVTCHNOP_unmask`: a port's mask bit stops Xen from setting its selector bit and
//! `evtchn_upcall_pending` when it is raised; the pending bit is still set. So when a masked
//! port is unmasked while pending, nobody has been told about it: the edge would be lost.
//! Whoever unmasks must therefore redo Xen's notification (set the selector bit and
//! `evtchn_upcall_pending`) and deliver at once if the vCPU has interrupts enabled.
//!
//! Unmasking locally like this is only right for ports that notify the vCPU whose
//! `vcpu_info` is given; for a port bound to another vCPU, use the `EVTCHNOP_unmask`
//! hypercall, which notifies the right vCPU.

use crate::flag::Wakeup;
use crate::port::Port;
use crate::words::EventWords;

/// Masks `port`: Xen keeps setting its pending bit but no longer notifies anyone.
#[inline]
pub fn mask_port<W: EventWords + ?Sized>(words: &W, port: Port) {
    words.set_mask(port);
}

/// Unmasks `port`; if it is pending, re-raises its selector bit and `evtchn_upcall_pending`
/// (the lost-edge rule). Reports [`Wakeup::DeliverNow`] when the vCPU has interrupts
/// enabled and an upcall is pending.
#[inline]
pub fn unmask_port<W: EventWords + ?Sized>(words: &W, port: Port) -> Wakeup {
    words.clear_mask(port);
    if words.is_pending(port) && !words.test_and_set_selector(port.word()) {
        let _already = words.test_and_set_upcall_pending();
    }
    if !words.upcall_mask() && words.upcall_pending() {
        Wakeup::DeliverNow
    } else {
        Wakeup::Idle
    }
}

/// What Xen does when `port` fires (its 2-level `set_pending`): set the pending bit; if that
/// is a new edge and the port is unmasked and its selector bit was clear, set the selector
/// bit and `evtchn_upcall_pending`. A port that is already pending is not raised again: a
/// pending bit is one bit, so repeated raises coalesce.
///
/// Returns whether this was a new edge (the pending bit was clear). The guest never needs
/// this for ports Xen raises; it exists for host tests and models, and for a ROM that wants
/// to re-trigger a port exactly as Xen would.
#[inline]
pub fn raise_as_xen<W: EventWords + ?Sized>(words: &W, port: Port) -> bool {
    if words.test_and_set_pending(port) {
        return false;
    }
    if !words.is_masked(port) && !words.test_and_set_selector(port.word()) {
        let _already = words.test_and_set_upcall_pending();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flag::{disable_interrupts, enable_interrupts};
    use crate::words::{AtomicEventWords, EventBitmaps, VcpuEventFlags};

    fn port(raw: u32) -> Port {
        Port::new(raw).unwrap()
    }

    #[test]
    fn raise_sets_selector_and_upcall_once() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        assert!(raise_as_xen(&words, port(70)));
        assert_eq!(words.selector(), 1 << 2);
        assert!(words.upcall_pending());
        // A second raise while pending coalesces: nothing changes.
        words.clear_upcall_pending();
        assert!(!raise_as_xen(&words, port(70)));
        assert!(!words.upcall_pending());
        // Another port of the same word finds the selector bit set and leaves
        // upcall_pending alone, exactly as Xen does.
        assert!(raise_as_xen(&words, port(71)));
        assert!(!words.upcall_pending());
    }

    #[test]
    fn raise_of_a_masked_port_only_sets_pending() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        mask_port(&words, port(5));
        assert!(raise_as_xen(&words, port(5)));
        assert!(words.is_pending(port(5)));
        assert_eq!(words.selector(), 0);
        assert!(!words.upcall_pending());
    }

    #[test]
    fn unmask_of_a_pending_port_re_raises_the_lost_edge() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        let _ = enable_interrupts(&words);
        mask_port(&words, port(1000));
        assert!(raise_as_xen(&words, port(1000)));
        assert!(!words.upcall_pending());
        assert_eq!(unmask_port(&words, port(1000)), Wakeup::DeliverNow);
        assert!(!words.is_masked(port(1000)));
        assert_eq!(words.selector(), 1 << 31);
        assert!(words.upcall_pending());
    }

    #[test]
    fn unmask_with_interrupts_off_defers_delivery() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        disable_interrupts(&words);
        mask_port(&words, port(9));
        let _ = raise_as_xen(&words, port(9));
        assert_eq!(unmask_port(&words, port(9)), Wakeup::Idle);
        // The edge is recorded, so re-enabling delivers it.
        assert!(words.upcall_pending());
        assert_eq!(words.selector(), 1);
        assert_eq!(enable_interrupts(&words), Wakeup::DeliverNow);
    }

    #[test]
    fn unmask_of_an_idle_port_raises_nothing() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        let _ = enable_interrupts(&words);
        mask_port(&words, port(40));
        assert_eq!(unmask_port(&words, port(40)), Wakeup::Idle);
        assert_eq!(words.selector(), 0);
        assert!(!words.upcall_pending());
    }

    #[test]
    fn unmask_keeps_upcall_pending_when_selector_already_set() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        let _ = enable_interrupts(&words);
        // Port 64 raised unmasked: selector bit 2 and upcall_pending set by "Xen".
        let _ = raise_as_xen(&words, port(64));
        mask_port(&words, port(65));
        let _ = raise_as_xen(&words, port(65));
        assert_eq!(unmask_port(&words, port(65)), Wakeup::DeliverNow);
        assert_eq!(words.selector(), 1 << 2);
    }
}
