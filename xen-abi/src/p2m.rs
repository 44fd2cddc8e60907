//! Pseudo-physical and machine frame numbers, and the translation between
//! them.
//!
//! A PV guest sees two frame spaces: its own contiguous pseudo-physical
//! frames ([`Pfn`]) and the host's machine frames ([`Mfn`]), which is what
//! page-table entries, `mmu_update` addresses and `MMUEXT_*` arguments hold.
//! The domain builder hands over the p2m list (`start_info.mfn_list`: one
//! `u32` MFN per PFN); Xen provides the read-only m2p (`u32` PFN per MFN at
//! `XENMEM_machphys_mapping`'s `v_start`). Both are plain `u32` slices here,
//! so the helpers are the same on the host and in the ROM.

use crate::arch_x86_32::{pte_frame, pte_with_frame, _PAGE_PRESENT, PAGE_SHIFT};

/// A pseudo-physical frame number (the guest's view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub u32);

/// A machine frame number (the host's view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mfn(pub u32);

/// A p2m entry with no machine frame behind it (`INVALID_P2M_ENTRY`, ~0).
pub const INVALID_P2M_ENTRY: u32 = !0;

/// An m2p entry for a frame the domain does not own (Xen fills unused M2P
/// entries with ~0, `INVALID_M2P_ENTRY`).
pub const INVALID_M2P_ENTRY: u32 = !0;

impl Pfn {
    /// The pseudo-physical address of the frame's first byte.
    pub const fn addr(self) -> u64 {
        (self.0 as u64) << PAGE_SHIFT
    }

    /// The frame containing pseudo-physical address `addr`, if it fits 32 bits
    /// of frame number.
    pub const fn containing(addr: u64) -> Option<Self> {
        let frame = addr >> PAGE_SHIFT;
        if frame > u32::MAX as u64 {
            None
        } else {
            Some(Self(frame as u32))
        }
    }
}

impl Mfn {
    /// The machine address of the frame's first byte.
    pub const fn addr(self) -> u64 {
        (self.0 as u64) << PAGE_SHIFT
    }

    /// The frame containing machine address `addr`, if it fits 32 bits of
    /// frame number.
    pub const fn containing(addr: u64) -> Option<Self> {
        let frame = addr >> PAGE_SHIFT;
        if frame > u32::MAX as u64 {
            None
        } else {
            Some(Self(frame as u32))
        }
    }
}

/// The machine frame behind `pfn`: `None` if `pfn` is beyond the p2m or has
/// no frame ([`INVALID_P2M_ENTRY`]).
pub fn pfn_to_mfn(p2m: &[u32], pfn: Pfn) -> Option<Mfn> {
    match p2m.get(pfn.0 as usize) {
        Some(&mfn) if mfn != INVALID_P2M_ENTRY => Some(Mfn(mfn)),
        _ => None,
    }
}

/// The pseudo-physical frame the m2p records for `mfn`: `None` if `mfn` is
/// beyond the m2p or the entry is [`INVALID_M2P_ENTRY`].
///
/// The m2p is global: an entry for a frame of another domain holds that
/// domain's PFN. Use [`mfn_to_pfn_owned`] when the answer must be one of
/// ours.
pub fn mfn_to_pfn(m2p: &[u32], mfn: Mfn) -> Option<Pfn> {
    match m2p.get(mfn.0 as usize) {
        Some(&pfn) if pfn != INVALID_M2P_ENTRY => Some(Pfn(pfn)),
        _ => None,
    }
}

/// [`mfn_to_pfn`], checked against our own p2m: only a PFN whose p2m entry
/// leads back to `mfn` is returned (a foreign or stale frame gives `None`).
pub fn mfn_to_pfn_owned(m2p: &[u32], p2m: &[u32], mfn: Mfn) -> Option<Pfn> {
    let pfn = mfn_to_pfn(m2p, mfn)?;
    (pfn_to_mfn(p2m, pfn) == Some(mfn)).then_some(pfn)
}

/// A page-table entry written with a pseudo-physical frame, rewritten with
/// the machine frame behind it, every flag kept. A non-present entry is
/// returned unchanged (its other bits are the guest's own). `None` if the
/// frame has no machine frame.
pub fn pte_pfn_to_mfn(p2m: &[u32], pte: u64) -> Option<u64> {
    if pte & _PAGE_PRESENT == 0 {
        return Some(pte);
    }
    let pfn = u32::try_from(pte_frame(pte)).ok()?;
    let mfn = pfn_to_mfn(p2m, Pfn(pfn))?;
    Some(pte_with_frame(pte, mfn.0 as u64))
}

/// The inverse of [`pte_pfn_to_mfn`]: a machine page-table entry rewritten
/// with the pseudo-physical frame the m2p records (checked against `p2m`). A
/// non-present entry is returned unchanged.
pub fn pte_mfn_to_pfn(m2p: &[u32], p2m: &[u32], pte: u64) -> Option<u64> {
    if pte & _PAGE_PRESENT == 0 {
        return Some(pte);
    }
    let mfn = u32::try_from(pte_frame(pte)).ok()?;
    let pfn = mfn_to_pfn_owned(m2p, p2m, Mfn(mfn))?;
    Some(pte_with_frame(pte, pfn.0 as u64))
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::arch_x86_32::{_PAGE_NX, _PAGE_RW};

    #[test]
    fn lookups_reject_out_of_range_and_invalid_entries() {
        let p2m = [10, 11, INVALID_P2M_ENTRY, 13];
        assert_eq!(pfn_to_mfn(&p2m, Pfn(1)), Some(Mfn(11)));
        assert_eq!(pfn_to_mfn(&p2m, Pfn(2)), None);
        assert_eq!(pfn_to_mfn(&p2m, Pfn(4)), None);
        assert_eq!(pfn_to_mfn(&p2m, Pfn(u32::MAX)), None);

        let mut m2p = vec![INVALID_M2P_ENTRY; 16];
        m2p[10] = 0;
        m2p[11] = 1;
        m2p[13] = 3;
        m2p[14] = 1; // a foreign frame claiming our PFN 1
        assert_eq!(mfn_to_pfn(&m2p, Mfn(13)), Some(Pfn(3)));
        assert_eq!(mfn_to_pfn(&m2p, Mfn(12)), None);
        assert_eq!(mfn_to_pfn(&m2p, Mfn(16)), None);
        assert_eq!(mfn_to_pfn(&m2p, Mfn(14)), Some(Pfn(1)));
        assert_eq!(mfn_to_pfn_owned(&m2p, &p2m, Mfn(14)), None);
        assert_eq!(mfn_to_pfn_owned(&m2p, &p2m, Mfn(11)), Some(Pfn(1)));
    }

    #[test]
    fn pte_translation_keeps_flags_and_skips_non_present() {
        let p2m = [0x100, 0x0020_0000];
        let pte = _PAGE_NX | (1 << 12) | _PAGE_PRESENT | _PAGE_RW;
        let machine = pte_pfn_to_mfn(&p2m, pte).unwrap();
        assert_eq!(
            machine,
            _PAGE_NX | (0x0020_0000_u64 << 12) | _PAGE_PRESENT | _PAGE_RW
        );
        let not_present = 0x1234_5000 | _PAGE_RW;
        assert_eq!(pte_pfn_to_mfn(&p2m, not_present), Some(not_present));
        assert_eq!(pte_pfn_to_mfn(&p2m, (5 << 12) | _PAGE_PRESENT), None);

        let mut m2p = vec![INVALID_M2P_ENTRY; 0x0020_0001];
        m2p[0x100] = 0;
        m2p[0x0020_0000] = 1;
        assert_eq!(pte_mfn_to_pfn(&m2p, &p2m, machine), Some(pte));
    }

    #[test]
    fn frame_addresses() {
        assert_eq!(Mfn(0x10_0000).addr(), 1 << 32);
        assert_eq!(Pfn::containing(0x1234_5FFF), Some(Pfn(0x12345)));
        assert_eq!(Mfn::containing(1 << 44), None);
    }

    proptest! {
        /// A p2m that is a permutation and its inverse m2p translate back and
        /// forth; anything outside the tables is refused.
        #[test]
        fn p2m_and_m2p_are_inverse(perm in Just((0u32..64).collect::<Vec<_>>()).prop_shuffle(), probe in 0u32..80) {
            let p2m: Vec<u32> = perm.iter().map(|m| m + 100).collect();
            let mut m2p = vec![INVALID_M2P_ENTRY; 200];
            for (pfn, &mfn) in p2m.iter().enumerate() {
                m2p[mfn as usize] = pfn as u32;
            }
            match pfn_to_mfn(&p2m, Pfn(probe)) {
                Some(mfn) => {
                    prop_assert!(probe < 64);
                    prop_assert_eq!(mfn_to_pfn_owned(&m2p, &p2m, mfn), Some(Pfn(probe)));
                }
                None => prop_assert!(probe >= 64),
            }
            prop_assert_eq!(mfn_to_pfn(&m2p, Mfn(probe)), None);
        }
    }
}
