//! One queued piece of page-table work, and the two facts the queue needs
//! about it: whether a later update of the same entry may replace it
//! ([`Op::replaces`]), and whether a later full TLB flush makes it redundant
//! ([`Op::covered_by`]).
//!
//! The operations are the requests of `HYPERVISOR_mmu_update`,
//! `HYPERVISOR_mmuext_op` and `HYPERVISOR_update_va_mapping` from
//! `xen/include/public/xen.h`; the types come from [`xen_abi::xen`].

use xen_abi::xen::{
    __HYPERVISOR_mmu_update, __HYPERVISOR_mmuext_op, __HYPERVISOR_stack_switch,
    __HYPERVISOR_update_va_mapping, MmuUpdate, MmuextOp, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL,
    MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD,
};

/// How a shadow page-table write treats the entry's Accessed and Dirty bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PteWrite {
    /// `MMU_NORMAL_PT_UPDATE`: the entry becomes exactly the new value.
    Normal,
    /// `MMU_PT_UPDATE_PRESERVE_AD`: Xen ORs the entry's current A and D bits
    /// into the new value, atomically (so a bit the CPU sets meanwhile is
    /// not lost).
    PreserveAd,
}

impl PteWrite {
    /// The `MMU_*` command in the low two bits of `mmu_update.ptr`.
    pub const fn command(self) -> u32 {
        match self {
            PteWrite::Normal => MMU_NORMAL_PT_UPDATE,
            PteWrite::PreserveAd => MMU_PT_UPDATE_PRESERVE_AD,
        }
    }
}

/// One piece of queued page-table work: a request of one of the three MMU
/// hypercalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// One `struct mmu_update` request: `ptr` is the machine address of the
    /// entry with the `MMU_*` command in its low two bits, `val` the value.
    MmuUpdate(MmuUpdate),
    /// One `struct mmuext_op`: pin/unpin, new base pointer, TLB maintenance,
    /// LDT.
    Mmuext(MmuextOp),
    /// `HYPERVISOR_update_va_mapping(va, pte, flags)`: write the L1 entry
    /// that maps the linear address `va` (found through the current page
    /// tables), then flush as `flags` (`UVMF_*`) say.
    UpdateVaMapping {
        /// The linear address whose L1 entry is written.
        va: u32,
        /// The new entry.
        pte: u64,
        /// `UVMF_*`: flush type and scope.
        flags: u32,
    },
    /// `HYPERVISOR_stack_switch(ss, esp)`: the ring-1 stack for the next
    /// trap from ring 3 (the kernel stack of a process). Not page-table
    /// work, but queued with it in lazy CPU mode so that a context switch's
    /// stack switch and `MMUEXT_NEW_BASEPTR` go out as one multicall (what
    /// XenLinux does in its lazy CPU mode).
    StackSwitch {
        /// The stack segment selector.
        ss: u32,
        /// The stack pointer.
        esp: u32,
    },
}

impl Op {
    /// A shadow page-table write: `val` into the entry at machine address
    /// `entry_maddr` (8-byte aligned).
    pub const fn pte_write(entry_maddr: u64, val: u64, mode: PteWrite) -> Self {
        Op::MmuUpdate(MmuUpdate::with_command(mode.command(), entry_maddr, val))
    }

    /// The `__HYPERVISOR_*` number of the hypercall that carries this op.
    pub const fn hypercall(&self) -> u32 {
        match self {
            Op::MmuUpdate(_) => __HYPERVISOR_mmu_update,
            Op::Mmuext(_) => __HYPERVISOR_mmuext_op,
            Op::UpdateVaMapping { .. } => __HYPERVISOR_update_va_mapping,
            Op::StackSwitch { .. } => __HYPERVISOR_stack_switch,
        }
    }

    /// Whether this op, queued directly after `earlier`, may replace it
    /// (the queue then never submits `earlier`).
    ///
    /// Only a page-table write may replace a page-table write of the same
    /// entry, and only a `MMU_NORMAL_PT_UPDATE`: it writes its value whatever
    /// the entry held, so the entry ends the same with or without `earlier`.
    /// A `MMU_PT_UPDATE_PRESERVE_AD` successor keeps the A/D bits of the
    /// value before it, which would differ. `MMU_MACHPHYS_UPDATE` and
    /// `MMU_PT_UPDATE_NO_TRANSLATE` are never merged.
    ///
    /// "Directly after" is the caller's part of the rule (see the crate
    /// documentation, "Merging"): nothing queued between the two could have
    /// observed the intermediate value.
    #[inline]
    pub fn replaces(&self, earlier: &Op) -> bool {
        match (self, earlier) {
            (Op::MmuUpdate(later), Op::MmuUpdate(earlier)) => request_replaces(later, earlier),
            _ => false,
        }
    }

    /// Whether this op is TLB maintenance that the full flush `later` makes
    /// redundant when `later` is issued after it within the same flush of
    /// the queue.
    ///
    /// Only maintenance that cannot fail is dropped (with `DOMID_SELF` as
    /// the page owner Xen's `do_mmuext_op` has no error path for
    /// `MMUEXT_TLB_FLUSH_LOCAL`, `_ALL`, `MMUEXT_INVLPG_LOCAL`, `_ALL`), so
    /// dropping one never hides a failure. The `_MULTI` forms read a vCPU
    /// mask from guest memory and can fail: they are kept.
    ///
    /// `MMUEXT_TLB_FLUSH_LOCAL` flushes the whole TLB of this CPU, global
    /// entries included (Xen's `flush_area_local` with `FLUSH_TLB` and no
    /// single page ends in `do_tlb_flush`, which toggles CR4.PGE), so it
    /// covers every local flush and invalidation; `MMUEXT_TLB_FLUSH_ALL`
    /// does the same on every CPU the domain is dirty on, this one included,
    /// so it covers all four.
    pub fn covered_by(&self, later: &Op) -> bool {
        let (Op::Mmuext(this), Op::Mmuext(later)) = (self, later) else {
            return false;
        };
        match later.cmd {
            MMUEXT_TLB_FLUSH_ALL => matches!(
                this.cmd,
                MMUEXT_TLB_FLUSH_LOCAL
                    | MMUEXT_INVLPG_LOCAL
                    | MMUEXT_TLB_FLUSH_ALL
                    | MMUEXT_INVLPG_ALL
            ),
            MMUEXT_TLB_FLUSH_LOCAL => {
                matches!(this.cmd, MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_INVLPG_LOCAL)
            }
            _ => false,
        }
    }

    /// Whether this op is a full TLB flush that may make earlier TLB
    /// maintenance redundant.
    #[inline]
    pub(crate) fn is_full_flush(&self) -> bool {
        matches!(self, Op::Mmuext(op) if matches!(op.cmd, MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_ALL))
    }
}

/// [`Op::replaces`] for two `mmu_update` requests: a normal write of the
/// entry a page-table write wrote (the last value wins).
#[inline(always)]
pub(crate) fn request_replaces(later: &MmuUpdate, earlier: &MmuUpdate) -> bool {
    later.command() == MMU_NORMAL_PT_UPDATE
        && matches!(
            earlier.command(),
            MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD
        )
        && later.machine_addr() == earlier.machine_addr()
}

#[cfg(test)]
mod tests {
    use xen_abi::xen::{MmuextOp, UVMF_INVLPG};
    use xen_abi::Mfn;

    use super::*;

    #[test]
    fn only_a_normal_write_of_the_same_entry_replaces() {
        let a = Op::pte_write(0x1000, 0x5003, PteWrite::Normal);
        let a_ad = Op::pte_write(0x1000, 0x6003, PteWrite::PreserveAd);
        let a2 = Op::pte_write(0x1000, 0x7003, PteWrite::Normal);
        let b = Op::pte_write(0x1008, 0x7003, PteWrite::Normal);
        assert!(a2.replaces(&a));
        assert!(a2.replaces(&a_ad));
        assert!(
            !a_ad.replaces(&a),
            "a preserve-A/D write depends on the value before it"
        );
        assert!(!b.replaces(&a));
        let m2p = Op::MmuUpdate(MmuUpdate::machphys_update(Mfn(1), xen_abi::Pfn(2)));
        assert!(!m2p.replaces(&m2p));
        let uvm = Op::UpdateVaMapping {
            va: 0x1000,
            pte: 0,
            flags: UVMF_INVLPG,
        };
        assert!(!a.replaces(&uvm) && !uvm.replaces(&a));
    }

    #[test]
    fn flush_coverage() {
        let local = Op::Mmuext(MmuextOp::tlb_flush_local());
        let all = Op::Mmuext(MmuextOp::tlb_flush_all());
        let pg_local = Op::Mmuext(MmuextOp::invlpg_local(0x4000));
        let pg_all = Op::Mmuext(MmuextOp::invlpg_all(0x4000));
        let multi = Op::Mmuext(MmuextOp::tlb_flush_multi(0x9000));
        let pin = Op::Mmuext(MmuextOp::pin_l1_table(Mfn(3)));
        for e in [local, pg_local, all, pg_all] {
            assert!(e.covered_by(&all));
        }
        assert!(local.covered_by(&local) && pg_local.covered_by(&local));
        assert!(!all.covered_by(&local) && !pg_all.covered_by(&local));
        assert!(
            !multi.covered_by(&all),
            "a _MULTI flush can fail: never dropped"
        );
        assert!(!pin.covered_by(&all));
        assert!(!local.covered_by(&pg_local));
        assert!(local.is_full_flush() && all.is_full_flush() && !pg_all.is_full_flush());
    }
}
