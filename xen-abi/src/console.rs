//! The PV console ring: `io/console.h` (as in Xen 4.17).
//!
//! One page at machine frame `start_info.console.domU.mfn`, notified through
//! event channel `start_info.console.domU.evtchn`. Indices are free-running
//! `u32`s; the slot of index `i` is `i & (ring size - 1)`
//! (`MASK_XENCONS_IDX`). The guest produces into `out` and consumes from
//! `in`.
//!
//! Later Xen versions append a `connection` byte at offset 3088; 4.17's
//! structure ends before it.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENCONS_RING_IDX`.
#[doc(alias = "XENCONS_RING_IDX")]
pub type XenconsRingIdx = u32;

/// Bytes in the backend-to-guest ring (`sizeof(in)`).
pub const XENCONS_IN_RING_SIZE: u32 = 1024;
/// Bytes in the guest-to-backend ring (`sizeof(out)`).
pub const XENCONS_OUT_RING_SIZE: u32 = 2048;

/// `MASK_XENCONS_IDX(idx, ring)` for a ring of `ring_size` bytes (a power of
/// two).
pub const fn mask_xencons_idx(idx: XenconsRingIdx, ring_size: u32) -> usize {
    (idx & (ring_size - 1)) as usize
}

/// `struct xencons_interface`.
#[doc(alias = "xencons_interface")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenconsInterface {
    /// `in`: backend to guest.
    #[doc(alias = "in")]
    pub input: [u8; XENCONS_IN_RING_SIZE as usize],
    /// `out`: guest to backend.
    #[doc(alias = "out")]
    pub output: [u8; XENCONS_OUT_RING_SIZE as usize],
    pub in_cons: XenconsRingIdx,
    pub in_prod: XenconsRingIdx,
    pub out_cons: XenconsRingIdx,
    pub out_prod: XenconsRingIdx,
}

assert_abi_layout!(
    XenconsInterface,
    size = 3088,
    align = 4,
    input = 0,
    output = 1024,
    in_cons = 3072,
    in_prod = 3076,
    out_cons = 3080,
    out_prod = 3084,
);

/// Free bytes in a ring of `ring_size` bytes with these indices (0 if the
/// indices are inconsistent, i.e. more than a ring apart).
pub const fn ring_free(cons: XenconsRingIdx, prod: XenconsRingIdx, ring_size: u32) -> u32 {
    let used = prod.wrapping_sub(cons);
    ring_size.saturating_sub(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_index_arithmetic_wraps() {
        assert_eq!(mask_xencons_idx(2049, XENCONS_OUT_RING_SIZE), 1);
        assert_eq!(mask_xencons_idx(u32::MAX, XENCONS_IN_RING_SIZE), 1023);
        assert_eq!(ring_free(0, 0, 2048), 2048);
        assert_eq!(ring_free(u32::MAX - 10, 5, 2048), 2048 - 16);
        assert_eq!(ring_free(0, 2048, 2048), 0);
        assert_eq!(ring_free(0, 4000, 2048), 0);
    }
}
