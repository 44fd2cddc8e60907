//! xen-abi against the real hypervisor: the hypercalls the ROM is built on,
//! each with its result checked (and, for bad arguments, the typed error).

use core::sync::atomic::{AtomicU32, Ordering};

use xen_abi::arch_x86_32::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW};
use xen_abi::errno::XenError;
use xen_abi::event_channel::EvtchnBinding;
use xen_abi::hypercall::{Call, HypercallPage, Hypervisor, Lowering, MulticallScratch};
use xen_abi::memory::{E820Entry, E820_RAM};
use xen_abi::xen::{
    MmuUpdate, MmuextOp, SharedInfo, StartInfo, DOMID_SELF, SIF_INITDOMAIN, UVMF_INVLPG, VIRQ_TIMER,
};

use super::start_of_day::system_time_ns;
use super::{Run, Status};
use crate::xen::{hypercall_page_base, hypervisor};

#[repr(C, align(4096))]
struct Page([u32; 1024]);

static mut SCRATCH_A: Page = Page([0; 1024]);
static mut SCRATCH_B: Page = Page([0; 1024]);

const MARK_A: u32 = 0xA1A1_0001;
const MARK_B: u32 = 0xB2B2_0002;
const PTE_FRAME: u64 = 0x000F_FFFF_FFFF_F000;
const PTE_KERNEL_RW: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;

/// The bootstrap tables are read through the builder's initial mapping
/// (virtual = pseudo-physical, VIRT_BASE 0), with the m2p to go from the
/// machine frames in the entries back to pseudo-physical frames.
struct Walker<'a> {
    si: &'a StartInfo,
    m2p: *const u32,
}

impl Walker<'_> {
    fn entry(&self, table_pfn: u32, index: u32) -> u64 {
        let table = (table_pfn << 12) as *const u64;
        // SAFETY: page-table pages are mapped (read-only) in the initial
        // mapping, and index < 512.
        unsafe { core::ptr::read_volatile(table.add(index as usize)) }
    }

    fn pfn_of_mfn(&self, mfn: u32) -> u32 {
        // SAFETY: the m2p covers every frame of the domain.
        unsafe { core::ptr::read_volatile(self.m2p.add(mfn as usize)) }
    }

    fn mfn_of_pfn(&self, pfn: u32) -> u32 {
        // SAFETY: mfn_list holds nr_pages entries; callers pass image pfns.
        unsafe { core::ptr::read_volatile((self.si.mfn_list as *const u32).add(pfn as usize)) }
    }

    /// Machine address of the L1 entry mapping `va`, and its value.
    fn l1_entry(&self, va: u32) -> (u64, u64) {
        let l3_pfn = self.si.pt_base >> 12;
        let l3e = self.entry(l3_pfn, va >> 30);
        let l2_mfn = ((l3e & PTE_FRAME) >> 12) as u32;
        let l2e = self.entry(self.pfn_of_mfn(l2_mfn), (va >> 21) & 511);
        let l1_mfn = ((l2e & PTE_FRAME) >> 12) as u32;
        let index = (va >> 12) & 511;
        let value = self.entry(self.pfn_of_mfn(l1_mfn), index);
        ((u64::from(l1_mfn) << 12) | u64::from(index * 8), value)
    }
}

fn read_mark(va: u32) -> u32 {
    // SAFETY: `va` is one of the scratch pages, mapped to some frame of ours.
    unsafe { core::ptr::read_volatile(va as *const u32) }
}

fn pending(shared: &SharedInfo, port: u32) -> bool {
    let word = &raw const shared.evtchn_pending[(port / 32) as usize];
    // SAFETY: Xen sets bits concurrently; a volatile read of the word.
    (unsafe { core::ptr::read_volatile(word) } >> (port % 32)) & 1 == 1
}

fn clear_pending(shared: &SharedInfo, port: u32) {
    let word = &raw const shared.evtchn_pending[(port / 32) as usize];
    // SAFETY: evtchn_pending words are 4-byte aligned u32s Xen changes with
    // locked operations; the guest clears bits the same way.
    let atomic = unsafe { AtomicU32::from_ptr(word as *mut u32) };
    atomic.fetch_and(!(1 << (port % 32)), Ordering::SeqCst);
}

pub fn run(r: &mut Run<'_>, si: &StartInfo, shared: Option<&'static SharedInfo>) {
    let Ok(m2p) = hypervisor().machphys_mapping() else {
        r.report(
            "multicall_mmu",
            Status::Fail,
            format_args!("no m2p mapping to walk the page tables"),
        );
        return;
    };
    let walk = Walker {
        si,
        m2p: m2p.v_start as *const u32,
    };
    let va_a = (&raw const SCRATCH_A) as u32;
    let va_b = (&raw const SCRATCH_B) as u32;
    // SAFETY: the scratch pages are only used here, by address.
    unsafe {
        core::ptr::write_volatile(va_a as *mut u32, MARK_A);
        core::ptr::write_volatile(va_b as *mut u32, MARK_B);
    }
    let mfn_a = walk.mfn_of_pfn(va_a >> 12);
    let mfn_b = walk.mfn_of_pfn(va_b >> 12);
    let (pte_a_maddr, pte_a) = walk.l1_entry(va_a);

    multicall_mmu(r, va_a, pte_a_maddr, mfn_b);
    update_va_mapping(r, va_a, mfn_a, pte_a);
    bad_mmu_update(r);
    memory_map(r, si);
    if let Some(shared) = shared {
        event_channels(r, shared);
        timer(r, shared);
    } else {
        for name in ["evtchn_loopback", "set_timer_op"] {
            r.report(
                name,
                Status::Skip,
                format_args!("shared_info is not mapped"),
            );
        }
    }
}

/// One multicall of mmu_update and mmuext_op entries: remap scratch page A
/// onto B's frame, flush, and a bad entry in the middle whose failure must
/// not stop the entries behind it (multicall entries are independent).
fn multicall_mmu(r: &mut Run<'_>, va_a: u32, pte_maddr: u64, mfn_b: u32) {
    let remap = [MmuUpdate::normal_pt_update(
        pte_maddr,
        (u64::from(mfn_b) << 12) | PTE_KERNEL_RW,
    )];
    let invlpg = [MmuextOp::invlpg_local(va_a)];
    // Machine frame 0 belongs to Xen, never to a guest.
    let bad = [MmuUpdate::normal_pt_update(0, PTE_KERNEL_RW)];
    let flush = [MmuextOp::tlb_flush_local()];
    let self_dom = u32::from(DOMID_SELF);
    let mut calls = [
        Call::MmuUpdate {
            reqs: &remap,
            done: None,
            foreign_dom: self_dom,
        },
        Call::MmuextOp {
            ops: &invlpg,
            done: None,
            foreign_dom: self_dom,
        },
        Call::MmuUpdate {
            reqs: &bad,
            done: None,
            foreign_dom: self_dom,
        },
        Call::MmuextOp {
            ops: &flush,
            done: None,
            foreign_dom: self_dom,
        },
    ];
    let mut results = [0isize; 4];
    let mut scratch = MulticallScratch::<4>::new();
    // SAFETY: hypercall_page_base() is the filled hypercall page.
    let page = unsafe { HypercallPage::new(hypercall_page_base()) };
    let mut batched = Lowering::with_multicall_scratch(page, &mut scratch);
    // SAFETY: the only mapping changed is scratch page A's, which no
    // reference points into.
    let rc = unsafe { batched.multicall(&mut calls, &mut results) };
    let seen = read_mark(va_a);
    let bad_err = XenError::from_ret(results[2]).err();
    r.check(
        "multicall_mmu",
        rc.is_ok()
            && results[0] == 0
            && results[1] == 0
            && bad_err.is_some()
            && results[3] == 0
            && seen == MARK_B,
        format_args!(
            "multicall {rc:?}, results {:?} (bad entry: {}), page A now reads {seen:#x}",
            results,
            bad_err.map_or("none", |e| e.name())
        ),
    );
}

/// update_va_mapping puts scratch page A back on its own frame.
fn update_va_mapping(r: &mut Run<'_>, va_a: u32, mfn_a: u32, old_pte: u64) {
    let pte = (u64::from(mfn_a) << 12) | (old_pte & !PTE_FRAME);
    // SAFETY: restores the image's own mapping of scratch page A.
    let rc = unsafe { hypervisor().update_va_mapping(va_a, pte, UVMF_INVLPG) };
    let seen = read_mark(va_a);
    r.check(
        "update_va_mapping",
        rc.is_ok() && seen == MARK_A,
        format_args!("{rc:?}, page A reads {seen:#x} again"),
    );
}

/// A wrong argument gets Xen's own error back, typed: mmu_update of an
/// entry in a frame the domain does not own.
fn bad_mmu_update(r: &mut Run<'_>) {
    let bad = [MmuUpdate::normal_pt_update(0, PTE_KERNEL_RW)];
    // SAFETY: Xen refuses the update; nothing changes.
    let rc = unsafe { hypervisor().mmu_update(&bad, u32::from(DOMID_SELF)) };
    match rc {
        Err(e) => r.check(
            "mmu_update_foreign_frame",
            e.error == XenError::EINVAL && e.done == 0,
            format_args!(
                "{} after {} done (Xen 4.17 answers EINVAL)",
                e.error.name(),
                e.done
            ),
        ),
        Ok(()) => r.check(
            "mmu_update_foreign_frame",
            false,
            format_args!("Xen accepted an update of a frame the domain does not own"),
        ),
    }
}

/// XENMEM_memory_map: the toolstack's map, or ENOSYS when none was set
/// (a PV dom0, a domU without e820_host); a dom0 also gets the machine map.
fn memory_map(r: &mut Run<'_>, si: &StartInfo) {
    let mut xen = hypervisor();
    let mut map = [E820Entry::default(); 32];
    let ram = |entries: &[E820Entry]| -> u64 {
        entries
            .iter()
            .filter(|e| ({ e.kind }) == E820_RAM)
            .map(|e| e.size)
            .sum()
    };
    let pseudo = xen.memory_map(&mut map);
    let pseudo_ok = match pseudo {
        Ok(n) => ram(&map[..n]) >= u64::from(si.nr_pages) * 4096,
        Err(e) => e == XenError::ENOSYS,
    };
    let dom0 = si.flags & SIF_INITDOMAIN != 0;
    let machine = if dom0 {
        xen.machine_memory_map(&mut map).map(|n| ram(&map[..n]))
    } else {
        Ok(0)
    };
    let machine_ok = !dom0 || matches!(machine, Ok(bytes) if bytes > u64::from(si.nr_pages) * 4096);
    r.check(
        "memory_map",
        pseudo_ok && machine_ok,
        format_args!(
            "XENMEM_memory_map {}, machine map RAM {machine:?} bytes (dom0: {dom0})",
            match pseudo {
                Ok(_) => "gave a map",
                Err(e) => e.name(),
            }
        ),
    );
}

/// Event channels on a loopback: alloc_unbound for ourselves, bind the other
/// end, send on one end, see the other pending, status, close.
fn event_channels(r: &mut Run<'_>, shared: &SharedInfo) {
    let mut xen = hypervisor();
    let result = (|| -> Result<(bool, bool, bool), XenError> {
        let a = xen.evtchn_alloc_unbound(DOMID_SELF)?;
        let unbound = matches!(
            xen.evtchn_status(DOMID_SELF, a)?.binding(),
            EvtchnBinding::Unbound { .. }
        );
        let b = xen.evtchn_bind_interdomain(DOMID_SELF, a)?;
        let linked = matches!(
            xen.evtchn_status(DOMID_SELF, a)?.binding(),
            EvtchnBinding::Interdomain { port, .. } if port == b
        );
        clear_pending(shared, a);
        xen.evtchn_send(b)?;
        let delivered = pending(shared, a);
        clear_pending(shared, a);
        xen.evtchn_close(b)?;
        xen.evtchn_close(a)?;
        let closed = matches!(
            xen.evtchn_status(DOMID_SELF, a)?.binding(),
            EvtchnBinding::Closed
        );
        Ok((unbound && linked, delivered, closed))
    })();
    match result {
        Ok((bound, delivered, closed)) => r.check(
            "evtchn_loopback",
            bound && delivered && closed,
            format_args!("status ok {bound}, send seen as pending {delivered}, closed {closed}"),
        ),
        Err(e) => r.check(
            "evtchn_loopback",
            false,
            format_args!("failed: {}", e.name()),
        ),
    }
}

/// set_timer_op: VIRQ_TIMER fires at the deadline, not before (the default
/// 10 ms periodic timer of a PV vCPU is stopped first).
fn timer(r: &mut Run<'_>, shared: &SharedInfo) {
    let mut xen = hypervisor();
    let result = (|| -> Result<(u64, u64, bool), XenError> {
        xen.vcpu_stop_periodic_timer(0)?;
        let port = xen.evtchn_bind_virq(VIRQ_TIMER, 0)?;
        clear_pending(shared, port);
        let deadline = system_time_ns(shared) + 2_000_000;
        xen.set_timer_op(deadline)?;
        // Events are masked (upcall mask 1): poll blocks until the port is
        // pending or the timeout passes.
        xen.sched_poll(&[port], deadline + 1_000_000_000)?;
        let now = system_time_ns(shared);
        let fired = pending(shared, port);
        clear_pending(shared, port);
        xen.evtchn_close(port)?;
        Ok((deadline, now, fired))
    })();
    match result {
        Ok((deadline, now, fired)) => r.check(
            "set_timer_op",
            fired && now >= deadline,
            format_args!(
                "VIRQ_TIMER pending {fired}, {} us after the deadline",
                now.saturating_sub(deadline) / 1000
            ),
        ),
        Err(e) => r.check("set_timer_op", false, format_args!("failed: {}", e.name())),
    }
}
