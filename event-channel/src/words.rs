//! The words Xen and the guest share for 2-level event channels, behind a trait.
//!
//! Mirrors the event fields of the x86_32 `struct shared_info` and `struct vcpu_info` in
//! `xen/include/public/xen.h`:
//! - `shared_info.evtchn_pending[32]` at 0x800 and `evtchn_mask[32]` at 0x880: one bit per
//!   port. Xen sets pending bits; the guest clears them. Only the guest changes mask bits.
//! - `vcpu_info.evtchn_upcall_pending` (u8 at 0), `evtchn_upcall_mask` (u8 at 1) and
//!   `evtchn_pending_sel` (u32 at 4; bit `i` means "look at word `i`").
//!
//! Xen updates these from other physical CPUs with locked instructions, so every
//! read-modify-write here must be atomic too. [`EventWords`] names the operations the
//! protocol needs; [`AtomicEventWords`] implements them with `core::sync::atomic` over
//! [`EventBitmaps`] and [`VcpuEventFlags`], two `#[repr(C)]` views whose layout matches the
//! shared page, so the ROM can point them at the real `shared_info` (at
//! [`SHARED_INFO_EVTCHN_PENDING`] and at vCPU `n`'s `vcpu_info`) and host tests can use
//! plain memory.

use core::mem::{align_of, offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use crate::abi::{
    EVTCHN_WORDS, SHARED_INFO_EVTCHN_MASK, SHARED_INFO_EVTCHN_PENDING, VCPU_INFO_PENDING_SEL,
    VCPU_INFO_UPCALL_MASK, VCPU_INFO_UPCALL_PENDING,
};
use crate::port::Port;

/// The shared event-channel state of one vCPU: the domain-wide pending and mask bitmaps plus
/// this vCPU's `vcpu_info` event fields.
///
/// Word indices are `0..32`; implementations may panic on larger ones.
pub trait EventWords {
    /// Reads `evtchn_pending[word]`.
    fn pending_word(&self, word: usize) -> u32;
    /// Reads `evtchn_mask[word]`.
    fn mask_word(&self, word: usize) -> u32;
    /// Atomically sets `port`'s pending bit; returns whether it was already set.
    fn test_and_set_pending(&self, port: Port) -> bool;
    /// Atomically clears `port`'s pending bit; returns whether it was set.
    fn test_and_clear_pending(&self, port: Port) -> bool;
    /// Atomically sets `port`'s mask bit.
    fn set_mask(&self, port: Port);
    /// Atomically clears `port`'s mask bit.
    fn clear_mask(&self, port: Port);
    /// Reads `evtchn_pending_sel`.
    fn selector(&self) -> u32;
    /// Atomically exchanges `evtchn_pending_sel` with 0 and returns the old value.
    fn take_selector(&self) -> u32;
    /// Atomically sets selector bit `word`; returns whether it was already set.
    fn test_and_set_selector(&self, word: usize) -> bool;
    /// Reads `evtchn_upcall_pending != 0`.
    fn upcall_pending(&self) -> bool;
    /// Atomically sets `evtchn_upcall_pending`; returns whether it was already set.
    fn test_and_set_upcall_pending(&self) -> bool;
    /// Clears `evtchn_upcall_pending`.
    fn clear_upcall_pending(&self);
    /// Reads `evtchn_upcall_mask != 0` (true = events masked, the guest's "interrupts off").
    fn upcall_mask(&self) -> bool;
    /// Writes `evtchn_upcall_mask`.
    fn set_upcall_mask(&self, masked: bool);

    /// Whether `port`'s pending bit is set.
    #[inline]
    fn is_pending(&self, port: Port) -> bool {
        self.pending_word(port.word()) & port.word_mask() != 0
    }

    /// Whether `port`'s mask bit is set.
    #[inline]
    fn is_masked(&self, port: Port) -> bool {
        self.mask_word(port.word()) & port.word_mask() != 0
    }
}

/// `shared_info.evtchn_pending[32]` followed by `evtchn_mask[32]`, exactly as at offset 0x800
/// of the x86_32 `shared_info` page.
#[repr(C)]
#[derive(Debug)]
pub struct EventBitmaps {
    pending: [AtomicU32; EVTCHN_WORDS], // 0x00 (shared_info + 0x800)
    mask: [AtomicU32; EVTCHN_WORDS],    // 0x80 (shared_info + 0x880)
}

const _: () = assert!(size_of::<EventBitmaps>() == 256);
const _: () = assert!(align_of::<EventBitmaps>() == 4);
const _: () = assert!(offset_of!(EventBitmaps, pending) == 0);
const _: () =
    assert!(offset_of!(EventBitmaps, mask) == SHARED_INFO_EVTCHN_MASK - SHARED_INFO_EVTCHN_PENDING);

impl EventBitmaps {
    /// All ports idle and unmasked.
    pub const fn new() -> EventBitmaps {
        EventBitmaps {
            pending: [const { AtomicU32::new(0) }; EVTCHN_WORDS],
            mask: [const { AtomicU32::new(0) }; EVTCHN_WORDS],
        }
    }
}

impl Default for EventBitmaps {
    fn default() -> Self {
        Self::new()
    }
}

/// The first 8 bytes of an x86_32 `vcpu_info`: the event fields.
#[repr(C)]
#[derive(Debug)]
pub struct VcpuEventFlags {
    upcall_pending: AtomicU8, // 0x0 evtchn_upcall_pending
    upcall_mask: AtomicU8,    // 0x1 evtchn_upcall_mask
    _pad: [u8; 2],            // 0x2 alignment of the xen_ulong_t that follows
    pending_sel: AtomicU32,   // 0x4 evtchn_pending_sel
}

const _: () = assert!(size_of::<VcpuEventFlags>() == 8);
const _: () = assert!(align_of::<VcpuEventFlags>() == 4);
const _: () = assert!(offset_of!(VcpuEventFlags, upcall_pending) == VCPU_INFO_UPCALL_PENDING);
const _: () = assert!(offset_of!(VcpuEventFlags, upcall_mask) == VCPU_INFO_UPCALL_MASK);
const _: () = assert!(offset_of!(VcpuEventFlags, pending_sel) == VCPU_INFO_PENDING_SEL);

impl VcpuEventFlags {
    /// Nothing pending, events masked: the state the domain builder leaves every vCPU in.
    pub const fn new() -> VcpuEventFlags {
        VcpuEventFlags {
            upcall_pending: AtomicU8::new(0),
            upcall_mask: AtomicU8::new(1),
            _pad: [0; 2],
            pending_sel: AtomicU32::new(0),
        }
    }
}

impl Default for VcpuEventFlags {
    fn default() -> Self {
        Self::new()
    }
}

/// [`EventWords`] over the shared bitmaps and one vCPU's event fields, with real atomics.
///
/// On x86 every read-modify-write below compiles to a `lock`-prefixed instruction (or
/// `xchg`), which is what Xen's own `guest_test_and_set_bit` and friends pair with. Plain
/// loads and stores are enough for the single-byte `upcall_pending` / `upcall_mask` fields:
/// Xen only sets `upcall_pending` (with a locked operation) and only reads the mask on the
/// physical CPU that is about to enter this vCPU.
#[derive(Clone, Copy, Debug)]
pub struct AtomicEventWords<'a> {
    bitmaps: &'a EventBitmaps,
    vcpu: &'a VcpuEventFlags,
}

impl<'a> AtomicEventWords<'a> {
    /// Pairs the domain's bitmaps with one vCPU's event fields.
    pub const fn new(bitmaps: &'a EventBitmaps, vcpu: &'a VcpuEventFlags) -> Self {
        AtomicEventWords { bitmaps, vcpu }
    }
}

impl EventWords for AtomicEventWords<'_> {
    #[inline]
    fn pending_word(&self, word: usize) -> u32 {
        self.bitmaps.pending[word].load(Ordering::Acquire)
    }

    #[inline]
    fn mask_word(&self, word: usize) -> u32 {
        self.bitmaps.mask[word].load(Ordering::Acquire)
    }

    #[inline]
    fn test_and_set_pending(&self, port: Port) -> bool {
        let old = self.bitmaps.pending[port.word()].fetch_or(port.word_mask(), Ordering::SeqCst);
        old & port.word_mask() != 0
    }

    #[inline]
    fn test_and_clear_pending(&self, port: Port) -> bool {
        let old = self.bitmaps.pending[port.word()].fetch_and(!port.word_mask(), Ordering::SeqCst);
        old & port.word_mask() != 0
    }

    #[inline]
    fn set_mask(&self, port: Port) {
        self.bitmaps.mask[port.word()].fetch_or(port.word_mask(), Ordering::SeqCst);
    }

    #[inline]
    fn clear_mask(&self, port: Port) {
        self.bitmaps.mask[port.word()].fetch_and(!port.word_mask(), Ordering::SeqCst);
    }

    #[inline]
    fn selector(&self) -> u32 {
        self.vcpu.pending_sel.load(Ordering::Acquire)
    }

    #[inline]
    fn take_selector(&self) -> u32 {
        self.vcpu.pending_sel.swap(0, Ordering::SeqCst)
    }

    #[inline]
    fn test_and_set_selector(&self, word: usize) -> bool {
        let bit = 1u32 << word;
        self.vcpu.pending_sel.fetch_or(bit, Ordering::SeqCst) & bit != 0
    }

    #[inline]
    fn upcall_pending(&self) -> bool {
        self.vcpu.upcall_pending.load(Ordering::Acquire) != 0
    }

    #[inline]
    fn test_and_set_upcall_pending(&self) -> bool {
        self.vcpu.upcall_pending.swap(1, Ordering::SeqCst) != 0
    }

    #[inline]
    fn clear_upcall_pending(&self) {
        self.vcpu.upcall_pending.store(0, Ordering::Release);
    }

    #[inline]
    fn upcall_mask(&self) -> bool {
        self.vcpu.upcall_mask.load(Ordering::Acquire) != 0
    }

    #[inline]
    fn set_upcall_mask(&self, masked: bool) {
        self.vcpu
            .upcall_mask
            .store(u8::from(masked), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_operations_touch_only_their_port() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        let port = Port::new(33).unwrap();
        assert!(!words.test_and_set_pending(port));
        assert!(words.test_and_set_pending(port));
        assert_eq!(words.pending_word(1), 1 << 1);
        assert_eq!(words.pending_word(0), 0);
        assert!(words.is_pending(port));
        assert!(words.test_and_clear_pending(port));
        assert!(!words.test_and_clear_pending(port));
        words.set_mask(port);
        assert!(words.is_masked(port));
        assert_eq!(words.mask_word(1), 1 << 1);
        words.clear_mask(port);
        assert_eq!(words.mask_word(1), 0);
    }

    #[test]
    fn vcpu_fields_start_masked_and_selector_exchanges() {
        let bitmaps = EventBitmaps::new();
        let vcpu = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &vcpu);
        assert!(words.upcall_mask());
        assert!(!words.upcall_pending());
        assert!(!words.test_and_set_selector(3));
        assert!(words.test_and_set_selector(3));
        assert!(!words.test_and_set_selector(31));
        assert_eq!(words.selector(), (1 << 3) | (1 << 31));
        assert_eq!(words.take_selector(), (1 << 3) | (1 << 31));
        assert_eq!(words.selector(), 0);
        assert!(!words.test_and_set_upcall_pending());
        assert!(words.test_and_set_upcall_pending());
        words.clear_upcall_pending();
        assert!(!words.upcall_pending());
        words.set_upcall_mask(false);
        assert!(!words.upcall_mask());
    }
}
