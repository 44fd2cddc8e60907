//! Property tests of the queue against the model of Xen in `common`.
//!
//! Random sequences of pushes (page-table writes of a few shared entries,
//! `update_va_mapping`s that may hit the same entries, pins, unpins, base
//! switches, TLB maintenance, LDT loads), lazy-mode changes, barriers,
//! end-of-call points, refused requests and faulted multicalls. The harness
//! checks, at every step:
//!
//! - no hypercall is made except at a flush point (a push with room, entering
//!   lazy mode and an end of call in lazy mode issue nothing);
//! - before any request runs, Xen's state is exactly the sequential result
//!   of every op pushed before it, minus the failed ones (so no op runs ahead
//!   of one queued before it, a flush never precedes the updates ahead of
//!   it, and the order per entry is kept);
//! - no request is submitted twice; every refusal is reported exactly once,
//!   with its tag and errno; every report is a real failure;
//! - after every flush the queue is empty, every op of it was applied,
//!   reported, covered by a later full flush or replaced by a later write
//!   that took effect, and Xen's state is the sequential result minus the
//!   reported failures;
//! - merges and drops happen exactly where the rules say, and a flush without
//!   failures makes exactly the hypercalls the packing rules give.

mod common;

use common::*;
use mmu_batch::{Barrier, Op, PteWrite};
use proptest::prelude::*;
use xen_abi::xen::{
    MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE,
    MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_SET_LDT, MMUEXT_TLB_FLUSH_ALL,
    MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE, UVMF_ALL, UVMF_INVLPG, UVMF_NONE, UVMF_TLB_FLUSH,
};

#[derive(Clone, Copy, Debug)]
enum Step {
    Write {
        addr: usize,
        preserve: bool,
        low: u64,
        poison: bool,
    },
    Stack {
        esp: u32,
        poison: bool,
    },
    Uvm {
        addr: usize,
        flags: u32,
        low: u64,
        poison: bool,
    },
    Ext {
        cmd: u32,
        mfn: u32,
        addr: usize,
        poison: bool,
    },
    EnterLazy,
    LeaveLazy,
    Barrier(Barrier),
    EndOfCall,
    Flush,
    FaultNextMulticall(usize),
}

fn barrier() -> impl Strategy<Value = Barrier> {
    prop_oneof![
        Just(Barrier::CoherentRead),
        Just(Barrier::TlbFlush),
        Just(Barrier::BaseSwitch),
        Just(Barrier::EventsEnable),
    ]
}

/// Steps; with `failures`, requests may be refused (poisoned values, pins
/// in an order Xen rejects) and multicalls may fault.
fn step(failures: bool) -> impl Strategy<Value = Step> {
    let poison = prop::bool::weighted(if failures { 0.08 } else { 0.0 });
    let flush_cmds = prop::sample::select(vec![
        MMUEXT_TLB_FLUSH_LOCAL,
        MMUEXT_TLB_FLUSH_ALL,
        MMUEXT_INVLPG_LOCAL,
        MMUEXT_INVLPG_ALL,
        MMUEXT_SET_LDT,
    ]);
    let table_cmds = prop::sample::select(vec![
        MMUEXT_PIN_L1_TABLE,
        MMUEXT_PIN_L2_TABLE,
        MMUEXT_PIN_L3_TABLE,
        MMUEXT_UNPIN_TABLE,
        MMUEXT_NEW_BASEPTR,
    ]);
    let uvm_flags = prop::sample::select(vec![
        UVMF_NONE,
        UVMF_INVLPG,
        UVMF_TLB_FLUSH | UVMF_ALL,
        UVMF_INVLPG | UVMF_ALL,
    ]);
    prop_oneof![
        24 => (0..ADDRS.len(), prop::bool::weighted(0.25), 0..0x1000u64, poison)
            .prop_map(|(addr, preserve, low, poison)| Step::Write { addr, preserve, low, poison }),
        // One arm for both single-entry kinds: prop_oneof! refuses a zero
        // weight past ten arms.
        5 => prop_oneof![
            3 => (0..ADDRS.len(), uvm_flags, 0..0x1000u64, poison)
                .prop_map(|(addr, flags, low, poison)| Step::Uvm { addr, flags, low, poison }),
            2 => (0..0x1000u32, poison)
                .prop_map(|(esp, poison)| Step::Stack { esp: esp << 4, poison }),
        ],
        5 => (flush_cmds, 0..ADDRS.len())
            .prop_map(|(cmd, addr)| Step::Ext { cmd, mfn: 0, addr, poison: false }),
        if failures { 3 } else { 0 } => (table_cmds, 1..4u32, poison)
            .prop_map(|(cmd, mfn, poison)| Step::Ext { cmd, mfn, addr: 0, poison }),
        2 => Just(Step::EnterLazy),
        1 => Just(Step::LeaveLazy),
        1 => barrier().prop_map(Step::Barrier),
        3 => Just(Step::EndOfCall),
        if failures { 1 } else { 0 } => Just(Step::Flush),
        if failures { 1 } else { 0 } => (0..4usize).prop_map(Step::FaultNextMulticall),
    ]
}

fn op_of(step: &Step, id: u32) -> Option<Op> {
    Some(match *step {
        Step::Write {
            addr,
            preserve,
            low,
            poison,
        } => {
            let mode = if preserve {
                PteWrite::PreserveAd
            } else {
                PteWrite::Normal
            };
            write(ADDRS[addr], id, low, mode, poison)
        }
        Step::Stack { esp, poison } => stack_switch(id, esp, poison),
        Step::Uvm {
            addr,
            flags,
            low,
            poison,
        } => Op::UpdateVaMapping {
            va: va_of(addr),
            pte: pte_value(id, low, poison),
            flags,
        },
        Step::Ext {
            cmd,
            mfn,
            addr,
            poison,
        } => {
            let arg1 = match cmd {
                MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_ALL | MMUEXT_SET_LDT => va_of(addr),
                MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_ALL => 0,
                _ => mfn,
            };
            Op::Mmuext(ext(cmd, arg1, id, poison))
        }
        _ => return None,
    })
}

fn run<const N: usize>(steps: &[Step]) -> Harness<N> {
    run_with(steps, false)
}

/// `run`, with the in-place layout of all-live queues switched off (every
/// such flush takes the general layout) when `general_only`.
fn run_with<const N: usize>(steps: &[Step], general_only: bool) -> Harness<N> {
    let mut h = Harness::<N>::new();
    h.batch.set_in_place_layout_off(general_only);
    for step in steps {
        if let Some(op) = op_of(step, h.next_id()) {
            let _ = h.push(op);
            continue;
        }
        let _ = match *step {
            Step::EnterLazy => {
                h.enter_lazy();
                Ok(())
            }
            Step::LeaveLazy => h.leave_lazy(),
            Step::Barrier(reason) => h.barrier(reason),
            Step::EndOfCall => h.end_of_call(),
            Step::Flush => h.flush(),
            Step::FaultNextMulticall(k) => {
                h.xen.fault_next_multicall = Some(k);
                Ok(())
            }
            _ => unreachable!(),
        };
    }
    let _ = h.leave_lazy();
    assert!(h.batch.is_empty());
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, ..ProptestConfig::default() })]

    /// With refusals and faults, tiny queue (many capacity flushes).
    #[test]
    fn exact_with_failures_capacity_4(steps in prop::collection::vec(step(true), 0..160)) {
        let h = run::<4>(&steps);
        prop_assert_eq!(h.batch.counters().failures as usize, h.xen.reported.len());
    }

    /// With refusals and faults, a queue long enough for long runs.
    #[test]
    fn exact_with_failures_capacity_16(steps in prop::collection::vec(step(true), 0..200)) {
        run::<16>(&steps);
    }

    /// Without failures every flush is checked against the packing rules.
    #[test]
    fn packing_without_failures(steps in prop::collection::vec(step(false), 0..200)) {
        let h = run::<12>(&steps);
        prop_assert!(h.xen.reported.is_empty());
        prop_assert_eq!(h.packings_checked, h.flushes_checked);
        let c = h.batch.counters();
        // Every op pushed was submitted once, or merged away, or dropped.
        prop_assert_eq!(c.requests, c.pushes - c.merges - c.dropped_flushes);
    }
}

/// The hypercalls as Xen reads them: a multicall's decoded entries and
/// which have a `pdone`, not the argument addresses its entries hold (the
/// in-place layout leaves a request where its slot is, the general one
/// packs from the start of the arrays).
fn as_xen_reads(calls: &[Recorded]) -> Vec<Recorded> {
    calls
        .iter()
        .map(|c| match c {
            Recorded::Multicall { calls, pdone, .. } => Recorded::Multicall {
                entries: Vec::new(),
                calls: calls.clone(),
                pdone: pdone.clone(),
            },
            other => other.clone(),
        })
        .collect()
}

/// The in-place layout and the general one, on the same steps: the same
/// hypercalls, the same requests run in the same order with the same
/// results, the same refusals reported, the same counters and Xen state.
fn same_as_general<const N: usize>(steps: &[Step]) -> Result<(), TestCaseError> {
    let fast = run_with::<N>(steps, false);
    let general = run_with::<N>(steps, true);
    prop_assert_eq!(
        as_xen_reads(&fast.xen.calls),
        as_xen_reads(&general.xen.calls)
    );
    prop_assert_eq!(&fast.xen.attempts, &general.xen.attempts);
    prop_assert_eq!(&fast.xen.reported, &general.xen.reported);
    prop_assert_eq!(&fast.xen.state, &general.xen.state);
    prop_assert_eq!(fast.batch.counters(), general.batch.counters());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// With refusals and faulted multicalls, a queue long enough for long
    /// runs and splits.
    #[test]
    fn in_place_layout_is_the_general_one(steps in prop::collection::vec(step(true), 0..200)) {
        same_as_general::<16>(&steps)?;
    }

    /// A tiny queue: capacity flushes in the middle of calls.
    #[test]
    fn in_place_layout_is_the_general_one_capacity_4(steps in prop::collection::vec(step(true), 0..120)) {
        same_as_general::<4>(&steps)?;
    }
}

proptest! {
    /// N page-table writes of different entries in lazy mode cost one
    /// mmu_update per queue-full: ceil(N / capacity) hypercalls.
    #[test]
    fn lazy_writes_cost_ceil_n_over_capacity(n in 0usize..300) {
        let mut h = Harness::<32>::new();
        h.enter_lazy();
        for i in 0..n {
            let op = write(ADDRS[i % ADDRS.len()], h.next_id(), 0x67, PteWrite::Normal, false);
            h.push(op).unwrap();
        }
        h.leave_lazy().unwrap();
        prop_assert_eq!(h.xen.calls.len(), n.div_ceil(32));
        prop_assert!(h.xen.calls.iter().all(|c| matches!(c, Recorded::MmuUpdate(_))));
    }

    /// Outside lazy mode a call with one write costs exactly one direct
    /// hypercall, issued at its end.
    #[test]
    fn one_write_per_call_is_one_hypercall(addrs in prop::collection::vec(0..ADDRS.len(), 1..50)) {
        let mut h = Harness::<8>::new();
        for (calls, &addr) in addrs.iter().enumerate() {
            let op = write(ADDRS[addr], h.next_id(), 0x63, PteWrite::Normal, false);
            h.push(op).unwrap();
            prop_assert_eq!(h.xen.calls.len(), calls);
            h.end_of_call().unwrap();
            prop_assert_eq!(h.xen.calls.len(), calls + 1);
            prop_assert!(matches!(&h.xen.calls[calls], Recorded::MmuUpdate(r) if r.len() == 1));
        }
    }
}

/// The random sequences above reach every path the properties are about
/// (otherwise they would prove little): counted over a fixed set of
/// sequences from a deterministic generator.
#[test]
fn random_sequences_reach_every_path() {
    use mmu_batch::{Cause, FlushReason};
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(step(true), 100..200);
    let mut totals = mmu_batch::Counters::default();
    let (mut rejected, mut state_refusals, mut capacity) = (0, 0, 0);
    for _ in 0..200 {
        let steps = strategy.new_tree(&mut runner).unwrap().current();
        let h = run::<16>(&steps);
        let c = h.batch.counters();
        totals.multicalls += c.multicalls;
        totals.merges += c.merges;
        totals.revived += c.revived;
        totals.reissued += c.reissued;
        totals.dropped_flushes += c.dropped_flushes;
        totals.failures += c.failures;
        capacity += c.flushes_for(FlushReason::Capacity);
        rejected += h
            .xen
            .reported
            .iter()
            .filter(|f| f.cause == Cause::BatchRejected)
            .count();
        state_refusals += h.xen.refused.values().filter(|&&e| e == EINVAL).count();
    }
    assert!(totals.multicalls > 100, "{totals:?}");
    assert!(totals.merges > 100, "{totals:?}");
    assert!(totals.revived > 5, "{totals:?}");
    assert!(totals.reissued > 20, "{totals:?}");
    assert!(totals.dropped_flushes > 20, "{totals:?}");
    assert!(totals.failures > 100, "{totals:?}");
    assert!(capacity > 20, "capacity flushes: {capacity}");
    assert!(rejected > 5, "faulted multicalls: {rejected}");
    assert!(
        state_refusals > 20,
        "order-dependent refusals: {state_refusals}"
    );
}
