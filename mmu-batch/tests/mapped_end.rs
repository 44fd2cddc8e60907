//! `MmuBatch::end_of_call_mapped` against `end_of_call`: on random calls
//! (page-table writes of a few entries, normal or preserving A/D, some of
//! them refused; lazy mode entered and left), two queues, one ending every
//! call with `end_of_call_mapped` (told a random virtual address and the
//! entry that maps it) and one with `end_of_call`, leave the same entries,
//! the same counters and the same reported failures, and the first issues
//! `update_va_mapping(va, val, 0)` exactly where the second issues a lone
//! normal `mmu_update` of that entry. And `MmuBatch::write_mapped` (the
//! ROM's update after a page fault, straight to `update_va_mapping` on an
//! idle queue) against the push and mapped end it stands for.

use std::collections::BTreeMap;

use mmu_batch::{Failure, FlushTarget, MmuBatch, Multicall, PteWrite};
use proptest::prelude::*;
use xen_abi::xen::{MmuUpdate, MmuextOp, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD};

/// Entries of the test, and the virtual address each one maps.
const ENTRIES: [u64; 4] = [0x1_2345_6000, 0x1_2345_6008, 0x7ff8, 0x3_0000_0010];
const VAS: [u32; 4] = [0x0040_0000, 0x0040_1000, 0xBFFF_F000, 0x0800_2000];
/// A value Xen refuses (as `mod_l1_entry` would: both hypercalls return
/// its error, so the model gives one errno for both).
const POISON: u64 = 1 << 62;
const EPERM: i32 = 1;
const AD: u64 = 0x60;

#[derive(Default)]
struct Xen {
    mem: BTreeMap<u64, u64>,
    mmu_updates: Vec<Vec<(u64, u64)>>,
    uvms: Vec<(u32, u64, u32)>,
    failures: Vec<(u32, i32)>,
}

impl Xen {
    fn write(&mut self, ptr: u64, val: u64) -> Result<(), ()> {
        if val & POISON != 0 {
            return Err(());
        }
        let addr = ptr & !3;
        let old = self.mem.get(&addr).copied().unwrap_or(0);
        let new = match (ptr & 3) as u32 {
            MMU_NORMAL_PT_UPDATE => val,
            MMU_PT_UPDATE_PRESERVE_AD => val | (old & AD),
            other => panic!("no command {other} in this test"),
        };
        self.mem.insert(addr, new);
        Ok(())
    }
}

impl FlushTarget<u32> for Xen {
    fn mmu_update(&mut self, reqs: &[MmuUpdate], pdone: &mut u32) -> i32 {
        self.mmu_updates
            .push(reqs.iter().map(|r| (r.ptr.get(), r.val.get())).collect());
        for (k, r) in reqs.iter().enumerate() {
            if self.write(r.ptr.get(), r.val.get()).is_err() {
                *pdone = k as u32;
                return -EPERM;
            }
        }
        *pdone = reqs.len() as u32;
        0
    }

    fn mmuext_op(&mut self, _: &[MmuextOp], _: &mut u32) -> i32 {
        unreachable!("the test queues page-table writes only")
    }

    fn update_va_mapping(&mut self, va: u32, pte: u64, flags: u32) -> i32 {
        self.uvms.push((va, pte, flags));
        let k = VAS.iter().position(|&v| v == va).expect("a test address");
        match self.write(ENTRIES[k], pte) {
            Ok(()) => 0,
            Err(()) => -EPERM,
        }
    }

    fn stack_switch(&mut self, _: u32, _: u32) -> i32 {
        unreachable!("the test queues page-table writes only")
    }

    fn multicall(&mut self, _: &mut Multicall<'_>) -> i32 {
        unreachable!("page-table writes alone go out as mmu_update")
    }

    fn failed(&mut self, failure: &Failure<u32>) {
        self.failures.push((failure.tag, failure.errno));
    }
}

#[derive(Clone, Debug)]
struct CallSteps {
    /// (entry, normal, poisoned) per write.
    writes: Vec<(usize, bool, bool)>,
    /// The address `end_of_call_mapped` is told (its entry is `ENTRIES`'s
    /// of the same index).
    mapped: usize,
    /// Lazy mode toggled before the call.
    toggle_lazy: bool,
}

/// Up to `max - 1` entry writes: (entry, normal (else preserving A/D),
/// poisoned).
fn entry_writes(max: usize) -> impl Strategy<Value = Vec<(usize, bool, bool)>> {
    prop::collection::vec(
        (
            0..4usize,
            prop::bool::weighted(0.8),
            prop::bool::weighted(0.1),
        ),
        0..max,
    )
}

fn call() -> impl Strategy<Value = CallSteps> {
    (entry_writes(4), 0..4usize, prop::bool::weighted(0.15)).prop_map(
        |(writes, mapped, toggle_lazy)| CallSteps {
            writes,
            mapped,
            toggle_lazy,
        },
    )
}

/// A random call's first steps on both queues: lazy mode toggled (its
/// end's flush compared), then its entry writes pushed (each push's
/// result compared). `id` numbers the writes (their tags and frames).
fn same_writes(
    [(a, xa), (b, xb)]: [(&mut MmuBatch<u32, 8>, &mut Xen); 2],
    lazy: &mut bool,
    toggle_lazy: bool,
    writes: &[(usize, bool, bool)],
    id: &mut u32,
) -> Result<(), TestCaseError> {
    if toggle_lazy {
        if *lazy {
            let ra = a.leave_lazy(xa).map_err(|f| (f.first.tag, f.count));
            let rb = b.leave_lazy(xb).map_err(|f| (f.first.tag, f.count));
            prop_assert_eq!(ra, rb);
        } else {
            a.enter_lazy();
            b.enter_lazy();
        }
        *lazy = !*lazy;
    }
    for &(k, normal, poison) in writes {
        *id += 1;
        let val = (u64::from(*id) << 12) | 0x67 | if poison { POISON } else { 0 };
        let mode = if normal {
            PteWrite::Normal
        } else {
            PteWrite::PreserveAd
        };
        let ra = a
            .push_pte_write(ENTRIES[k], val, mode, *id, xa)
            .map_err(|f| (f.first.tag, f.count));
        let rb = b
            .push_pte_write(ENTRIES[k], val, mode, *id, xb)
            .map_err(|f| (f.first.tag, f.count));
        prop_assert_eq!(ra, rb);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mapped_end_matches_end_of_call(calls in prop::collection::vec(call(), 1..40)) {
        let (mut a, mut b) = (MmuBatch::<u32, 8>::new(), MmuBatch::<u32, 8>::new());
        let (mut xa, mut xb) = (Xen::default(), Xen::default());
        let mut id = 0u32;
        let mut lazy = false;
        let mut expected_uvms = Vec::new();
        for c in &calls {
            same_writes(
                [(&mut a, &mut xa), (&mut b, &mut xb)],
                &mut lazy,
                c.toggle_lazy,
                &c.writes,
                &mut id,
            )?;
            let lone = (!lazy && a.len() == 1).then(|| a.pending().next().unwrap().0);
            if let Some(mmu_batch::Op::MmuUpdate(r)) = lone {
                if r.ptr.get() == ENTRIES[c.mapped] | u64::from(MMU_NORMAL_PT_UPDATE) {
                    expected_uvms.push((VAS[c.mapped], r.val.get(), 0));
                }
            }
            let ra = a
                .end_of_call_mapped(&mut xa, VAS[c.mapped], ENTRIES[c.mapped])
                .map_err(|f| (f.first.tag, f.first.errno, f.count));
            let rb = b.end_of_call(&mut xb).map_err(|f| (f.first.tag, f.first.errno, f.count));
            prop_assert_eq!(ra, rb);
            prop_assert_eq!(a.len(), b.len());
            prop_assert_eq!(&xa.mem, &xb.mem);
        }
        prop_assert_eq!(a.counters(), b.counters());
        prop_assert_eq!(&xa.failures, &xb.failures);
        prop_assert_eq!(&xa.uvms, &expected_uvms);
        // Every update_va_mapping replaced one lone mmu_update.
        prop_assert_eq!(xa.mmu_updates.len() + xa.uvms.len(), xb.mmu_updates.len());
    }
}

/// The case the ROM's fault path relies on, and its refusal: a lone
/// normal write of the named entry goes out as update_va_mapping with no
/// flush, and Xen's refusal is reported as the write's failure.
#[test]
fn lone_normal_write_goes_by_address() {
    let mut q = MmuBatch::<u32, 8>::new();
    let mut xen = Xen::default();
    q.push_pte_write(ENTRIES[1], 0x5067, PteWrite::Normal, 7, &mut xen)
        .unwrap();
    q.end_of_call_mapped(&mut xen, VAS[1], ENTRIES[1]).unwrap();
    assert_eq!(xen.uvms, vec![(VAS[1], 0x5067, 0)]);
    assert!(xen.mmu_updates.is_empty());
    assert_eq!(xen.mem.get(&ENTRIES[1]), Some(&0x5067));
    assert!(q.is_empty());
    // Another entry, or A/D preserved: the general end.
    q.push_pte_write(ENTRIES[2], 0x6067, PteWrite::Normal, 8, &mut xen)
        .unwrap();
    q.end_of_call_mapped(&mut xen, VAS[1], ENTRIES[1]).unwrap();
    q.push_pte_write(ENTRIES[1], 0x7067, PteWrite::PreserveAd, 9, &mut xen)
        .unwrap();
    q.end_of_call_mapped(&mut xen, VAS[1], ENTRIES[1]).unwrap();
    assert_eq!(xen.uvms.len(), 1);
    assert_eq!(xen.mmu_updates.len(), 2);
    q.push_pte_write(ENTRIES[1], 0x8067 | POISON, PteWrite::Normal, 10, &mut xen)
        .unwrap();
    let f = q
        .end_of_call_mapped(&mut xen, VAS[1], ENTRIES[1])
        .unwrap_err();
    assert_eq!((f.first.tag, f.first.errno, f.count), (10, EPERM, 1));
    assert_eq!(xen.failures, vec![(10, EPERM)]);
    assert_eq!(q.counters().hypercalls, 4);
}

#[derive(Clone, Debug)]
struct FaultCall {
    /// Writes pushed first (as `CallSteps::writes`): usually none, so that
    /// the queue is idle.
    writes: Vec<(usize, bool, bool)>,
    /// The entry and address of the call's last write, a normal one.
    mapped: usize,
    /// Its value is one Xen refuses.
    poison: bool,
    toggle_lazy: bool,
}

fn fault_call() -> impl Strategy<Value = FaultCall> {
    (
        entry_writes(3).prop_map(|w| if w.len() == 2 { Vec::new() } else { w }),
        0..4usize,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(writes, mapped, poison, toggle_lazy)| FaultCall {
            writes,
            mapped,
            poison,
            toggle_lazy,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// `MmuBatch::write_mapped` (the ROM's page-fault update) against the
    /// push and `end_of_call_mapped` it stands for: on an idle queue the
    /// same entries, counters, failures and `update_va_mapping`s; on any
    /// other queue it does nothing and says so (the caller then pushes).
    #[test]
    fn write_mapped_matches_push_and_mapped_end(calls in prop::collection::vec(fault_call(), 1..40)) {
        let (mut a, mut b) = (MmuBatch::<u32, 8>::new(), MmuBatch::<u32, 8>::new());
        let (mut xa, mut xb) = (Xen::default(), Xen::default());
        let mut id = 0u32;
        let mut lazy = false;
        for c in &calls {
            same_writes(
                [(&mut a, &mut xa), (&mut b, &mut xb)],
                &mut lazy,
                c.toggle_lazy,
                &c.writes,
                &mut id,
            )?;
            id += 1;
            let val = (u64::from(id) << 12) | 0x67 | if c.poison { POISON } else { 0 };
            let (va, entry) = (VAS[c.mapped], ENTRIES[c.mapped]);
            let idle = a.is_idle();
            prop_assert_eq!(idle, a.is_empty() && !lazy);
            let ra = match a.write_mapped(&mut xa, va, entry, val, id) {
                Some(r) => {
                    prop_assert!(idle);
                    r
                }
                None => {
                    prop_assert!(!idle);
                    a.push_pte_write(entry, val, PteWrite::Normal, id, &mut xa)
                        .and_then(|()| a.end_of_call_mapped(&mut xa, va, entry))
                }
            }
            .map_err(|f| (f.first.tag, f.first.errno, f.count));
            let rb = b
                .push_pte_write(entry, val, PteWrite::Normal, id, &mut xb)
                .and_then(|()| b.end_of_call_mapped(&mut xb, va, entry))
                .map_err(|f| (f.first.tag, f.first.errno, f.count));
            prop_assert_eq!(ra, rb);
            prop_assert_eq!(a.len(), b.len());
            prop_assert_eq!(&xa.mem, &xb.mem);
            prop_assert_eq!(&xa.uvms, &xb.uvms);
            prop_assert_eq!(&xa.mmu_updates, &xb.mmu_updates);
        }
        prop_assert_eq!(a.counters(), b.counters());
        prop_assert_eq!(&xa.failures, &xb.failures);
    }
}

/// The direct way and its refusal: one update_va_mapping with no flush, a
/// refusal reported as the write's failure, and nothing done on a busy or
/// lazy queue.
#[test]
fn write_mapped_on_an_idle_queue() {
    let mut q = MmuBatch::<u32, 8>::new();
    let mut xen = Xen::default();
    assert!(q.is_idle());
    assert!(q
        .write_mapped(&mut xen, VAS[1], ENTRIES[1], 0x5067, 7)
        .unwrap()
        .is_ok());
    assert_eq!(xen.uvms, vec![(VAS[1], 0x5067, 0)]);
    assert_eq!(xen.mem.get(&ENTRIES[1]), Some(&0x5067));
    assert_eq!(q.counters().hypercalls, 1);
    assert_eq!(q.counters().pushes, 1);
    let f = q
        .write_mapped(&mut xen, VAS[1], ENTRIES[1], 0x6067 | POISON, 8)
        .unwrap()
        .unwrap_err();
    assert_eq!((f.first.tag, f.first.errno, f.count), (8, EPERM, 1));
    assert_eq!(xen.failures, vec![(8, EPERM)]);
    assert!(q.is_idle());
    q.push_pte_write(ENTRIES[2], 0x7067, PteWrite::Normal, 9, &mut xen)
        .unwrap();
    assert!(!q.is_idle());
    assert!(q
        .write_mapped(&mut xen, VAS[1], ENTRIES[1], 0x8067, 10)
        .is_none());
    assert_eq!(q.len(), 1);
    q.end_of_call(&mut xen).unwrap();
    q.enter_lazy();
    assert!(!q.is_idle());
    assert!(q
        .write_mapped(&mut xen, VAS[1], ENTRIES[1], 0x8067, 10)
        .is_none());
    assert_eq!(xen.uvms.len(), 2);
    assert_eq!(xen.mmu_updates.len(), 1);
}
