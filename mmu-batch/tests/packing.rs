//! The exact hypercalls the queue makes for chosen sequences: packing,
//! multicall entry layout, merging, dropping, flush points and failure
//! handling. Every case also runs the harness's general checks (state equals
//! the sequential result, nothing lost, counters).

mod common;

use common::*;
use mmu_batch::{Barrier, Cause, FlushReason, MmuBatch, Op, PteWrite, SPLIT_RUN_MAX};
use xen_abi::xen::{
    __HYPERVISOR_mmu_update, __HYPERVISOR_mmuext_op, __HYPERVISOR_stack_switch,
    __HYPERVISOR_update_va_mapping, MmuextOp, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL,
    MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_TLB_FLUSH_ALL,
    MMUEXT_TLB_FLUSH_LOCAL, UVMF_ALL, UVMF_INVLPG, UVMF_TLB_FLUSH,
};
use xen_abi::XenError;

const DOMID_SELF: u32 = 0x7FF0;

/// A normal write of `ADDRS[k]` carrying the next id.
fn w<const N: usize>(h: &Harness<N>, k: usize) -> Op {
    write(ADDRS[k], h.next_id(), 0x067, PteWrite::Normal, false)
}

fn w_poison<const N: usize>(h: &Harness<N>, k: usize) -> Op {
    write(ADDRS[k], h.next_id(), 0x067, PteWrite::Normal, true)
}

fn x<const N: usize>(h: &Harness<N>, cmd: u32, arg1: u32) -> Op {
    Op::Mmuext(ext(cmd, arg1, h.next_id(), false))
}

fn ids(reqs: &Recorded) -> Vec<u32> {
    match reqs {
        Recorded::MmuUpdate(r) => r.iter().map(|r| id_of_pte(r.val.get())).collect(),
        Recorded::Mmuext(o) => o.iter().map(id_of_ext).collect(),
        Recorded::UpdateVaMapping { pte, .. } => vec![id_of_pte(*pte)],
        Recorded::StackSwitch { ss, .. } => vec![id_of_stack(*ss)],
        Recorded::Multicall { .. } => panic!("not a direct call"),
    }
}

#[test]
fn lazy_writes_are_one_mmu_update() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    for i in 0..40 {
        let op = w(&h, i % ADDRS.len());
        h.push(op).unwrap();
    }
    assert!(h.xen.calls.is_empty(), "nothing reaches Xen in lazy mode");
    h.leave_lazy().unwrap();
    assert_eq!(h.xen.calls.len(), 1);
    assert!(matches!(&h.xen.calls[0], Recorded::MmuUpdate(r) if r.len() == 40));
    let c = h.batch.counters();
    assert_eq!(
        (c.hypercalls, c.multicalls, c.requests, c.merges),
        (1, 0, 40, 0)
    );
    assert_eq!(c.flushes_for(FlushReason::LeaveLazy), 1);
}

#[test]
fn lazy_writes_cost_one_call_per_queue_full() {
    let mut h = Harness::<32>::new();
    h.enter_lazy();
    for i in 0..100 {
        let op = w(&h, i % ADDRS.len());
        h.push(op).unwrap();
    }
    h.leave_lazy().unwrap();
    let sizes: Vec<usize> = h
        .xen
        .calls
        .iter()
        .map(|c| match c {
            Recorded::MmuUpdate(r) => r.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [32, 32, 32, 4], "ceil(100 / 32) hypercalls");
    assert_eq!(h.batch.counters().flushes_for(FlushReason::Capacity), 3);
}

#[test]
fn outside_lazy_mode_a_call_flushes_at_its_end() {
    let mut h = Harness::<64>::new();
    let op = w(&h, 0);
    h.push(op).unwrap();
    assert!(h.xen.calls.is_empty(), "nothing before the end of the call");
    h.end_of_call().unwrap();
    assert!(h.batch.is_empty());
    assert_eq!(ids(&h.xen.calls[0]), [0]);
    assert!(
        matches!(h.xen.calls[0], Recorded::MmuUpdate(_)),
        "one request: a direct call"
    );

    // A call that produced two writes and a pin: the short run is split so
    // that the pin shares the multicall.
    let a = w(&h, 1);
    h.push(a).unwrap();
    let b = w(&h, 2);
    h.push(b).unwrap();
    let pin = x(&h, MMUEXT_PIN_L1_TABLE, 7);
    h.push(pin).unwrap();
    h.end_of_call().unwrap();
    assert_eq!(h.xen.calls.len(), 2);
    let Recorded::Multicall {
        entries,
        calls,
        pdone,
    } = &h.xen.calls[1]
    else {
        panic!("{:?}", h.xen.calls[1]);
    };
    assert_eq!(entries.iter().map(|e| e.op).collect::<Vec<_>>(), [1, 1, 26]);
    assert_eq!(
        calls.iter().map(ids).collect::<Vec<_>>(),
        [vec![1], vec![2], vec![3]]
    );
    assert_eq!(pdone, &[false, false, false]);
    assert_eq!(h.batch.counters().flushes_for(FlushReason::EndOfCall), 2);
}

#[test]
fn write_and_invlpg_are_one_multicall_with_the_exact_entries() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    let op = write(ADDRS[0], 0, 0x067, PteWrite::PreserveAd, false);
    h.push(op).unwrap();
    let inv = x(&h, MMUEXT_INVLPG_LOCAL, 0x0040_3000);
    h.push(inv).unwrap();
    h.barrier(Barrier::TlbFlush).unwrap();
    assert!(h.batch.is_lazy(), "a barrier does not leave lazy mode");
    assert_eq!(h.xen.calls.len(), 1);
    let Recorded::Multicall {
        entries,
        calls,
        pdone,
    } = &h.xen.calls[0]
    else {
        panic!()
    };
    assert_eq!(entries.len(), 2);

    let e = &entries[0];
    assert_eq!(e.op, __HYPERVISOR_mmu_update);
    assert_ne!(e.args[0], 0, "args[0]: address of the requests");
    assert_eq!(e.args[1], 1, "args[1]: count");
    assert_eq!(e.args[2], 0, "args[2]: no pdone for a single request");
    assert_eq!(e.args[3], DOMID_SELF, "args[3]: DOMID_SELF");
    assert_eq!(e.args[4..], [0, 0]);
    let Recorded::MmuUpdate(reqs) = &calls[0] else {
        panic!()
    };
    assert_eq!(reqs[0].machine_addr(), ADDRS[0]);
    assert_eq!(
        reqs[0].command(),
        2,
        "MMU_PT_UPDATE_PRESERVE_AD in ptr[1:0]"
    );
    assert_eq!(reqs[0].ptr.get(), ADDRS[0] | 2);
    assert_eq!(reqs[0].val.get(), pte_value(0, 0x067, false));

    let e = &entries[1];
    assert_eq!(e.op, __HYPERVISOR_mmuext_op);
    assert_eq!(e.args[1..4], [1, 0, DOMID_SELF]);
    assert_eq!(
        calls[1],
        Recorded::Mmuext(vec![MmuextOp {
            cmd: MMUEXT_INVLPG_LOCAL,
            arg1: 0x0040_3000,
            arg2: 1
        }])
    );
    assert_eq!(pdone, &[false, false]);
    let c = h.batch.counters();
    assert_eq!(
        (c.hypercalls, c.multicalls, c.multicall_entries, c.requests),
        (1, 1, 2, 2)
    );
    assert_eq!(c.flushes_for(FlushReason::Barrier(Barrier::TlbFlush)), 1);
}

#[test]
fn a_run_ends_its_multicall_and_carries_a_pdone_pointer() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    let uvm = Op::UpdateVaMapping {
        va: va_of(3),
        pte: pte_value(0, 0x063, false) | 0x8000_0000_0000_0000,
        flags: UVMF_INVLPG | UVMF_ALL,
    };
    h.push(uvm).unwrap();
    let a = w(&h, 0);
    h.push(a).unwrap();
    let b = w(&h, 1);
    h.push(b).unwrap();
    h.leave_lazy().unwrap();
    let Recorded::Multicall {
        entries,
        calls,
        pdone,
    } = &h.xen.calls[0]
    else {
        panic!()
    };
    assert_eq!(entries.len(), 2);
    let e = &entries[0];
    assert_eq!(e.op, __HYPERVISOR_update_va_mapping);
    assert_eq!(
        e.args[..4],
        [
            va_of(3),
            pte_value(0, 0x063, false) as u32,
            0x8000_0000,
            UVMF_INVLPG | UVMF_ALL
        ],
        "va, pte_lo, pte_hi, flags"
    );
    let e = &entries[1];
    assert_eq!(e.op, __HYPERVISOR_mmu_update);
    assert_eq!(e.args[1], 2);
    assert_ne!(e.args[2], 0, "a run of two gets a pdone pointer");
    assert_eq!(e.args[3], DOMID_SELF);
    assert_eq!(pdone, &[false, true]);
    assert_eq!(ids(&calls[1]), [1, 2]);
}

#[test]
fn a_long_run_and_the_flush_behind_it_are_two_direct_calls() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    for k in 0..=SPLIT_RUN_MAX {
        let op = w(&h, k % ADDRS.len());
        h.push(op).unwrap();
    }
    let flush = x(&h, MMUEXT_TLB_FLUSH_LOCAL, 0);
    h.push(flush).unwrap();
    h.barrier(Barrier::TlbFlush).unwrap();
    assert_eq!(h.xen.calls.len(), 2);
    assert_eq!(
        ids(&h.xen.calls[0]),
        (0..=SPLIT_RUN_MAX as u32).collect::<Vec<_>>()
    );
    assert_eq!(ids(&h.xen.calls[1]), [SPLIT_RUN_MAX as u32 + 1]);

    // The same with a run of SPLIT_RUN_MAX: one multicall of single entries.
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    for k in 0..SPLIT_RUN_MAX {
        let op = w(&h, k % ADDRS.len());
        h.push(op).unwrap();
    }
    let flush = x(&h, MMUEXT_TLB_FLUSH_LOCAL, 0);
    h.push(flush).unwrap();
    h.barrier(Barrier::TlbFlush).unwrap();
    assert_eq!(h.xen.calls.len(), 1);
    let Recorded::Multicall { calls, .. } = &h.xen.calls[0] else {
        panic!()
    };
    assert_eq!(calls.len(), SPLIT_RUN_MAX + 1);
}

#[test]
fn a_normal_write_replaces_the_write_just_before_it() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    let a = write(ADDRS[0], 0, 0x061, PteWrite::PreserveAd, false);
    h.push(a).unwrap();
    let b = w(&h, 0);
    h.push(b).unwrap();
    let c = w(&h, 0);
    h.push(c).unwrap();
    h.leave_lazy().unwrap();
    assert_eq!(h.batch.counters().merges, 2);
    assert_eq!(h.xen.calls.len(), 1);
    assert_eq!(ids(&h.xen.calls[0]), [2], "the last value wins");
    assert_eq!(h.xen.state.mem[&ADDRS[0]], pte_value(2, 0x067, false));
}

#[test]
fn what_could_observe_a_write_prevents_merging() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    // A preserve-A/D successor depends on the value before it.
    let a = w(&h, 0);
    h.push(a).unwrap();
    let b = write(ADDRS[0], h.next_id(), 0x001, PteWrite::PreserveAd, false);
    h.push(b).unwrap();
    // Another entry's write in between may observe it through Xen's checks.
    let c = w(&h, 1);
    h.push(c).unwrap();
    let d = w(&h, 0);
    h.push(d).unwrap();
    // So may a flush or an update_va_mapping (which may write this entry).
    let inv = x(&h, MMUEXT_INVLPG_LOCAL, 0x1000);
    h.push(inv).unwrap();
    let e = w(&h, 0);
    h.push(e).unwrap();
    let uvm = Op::UpdateVaMapping {
        va: va_of(0),
        pte: pte_value(h.next_id(), 1, false),
        flags: 0,
    };
    h.push(uvm).unwrap();
    let f = w(&h, 0);
    h.push(f).unwrap();
    h.leave_lazy().unwrap();
    assert_eq!(h.batch.counters().merges, 0);
    // A flush of the queue in between: the first write is already gone.
    let g = w(&h, 2);
    h.push(g).unwrap();
    h.barrier(Barrier::CoherentRead).unwrap();
    h.enter_lazy();
    let i = w(&h, 2);
    h.push(i).unwrap();
    h.leave_lazy().unwrap();
    assert_eq!(h.batch.counters().merges, 0);
}

#[test]
fn a_failed_replacing_write_revives_the_write_it_replaced() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    let a = w(&h, 0);
    h.push(a).unwrap();
    let b = w_poison(&h, 0);
    h.push(b).unwrap();
    let err = h.leave_lazy().unwrap_err();
    assert_eq!(err.count, 1);
    assert_eq!(err.first.tag, 1);
    assert_eq!(err.first.errno, EPERM);
    assert_eq!(err.first.error(), XenError::EPERM);
    assert_eq!(err.first.cause, Cause::Refused);
    assert_eq!(
        h.xen.calls.iter().map(ids).collect::<Vec<_>>(),
        [vec![1], vec![0]]
    );
    assert_eq!(
        h.xen.state.mem[&ADDRS[0]],
        pte_value(0, 0x067, false),
        "the value before the failed one"
    );
    let c = h.batch.counters();
    assert_eq!((c.merges, c.revived, c.failures), (1, 1, 1));
}

#[test]
fn a_failed_request_in_a_run_reports_it_and_reissues_the_tail() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    // A run one longer than a split run: one entry, the last of its call.
    let n = SPLIT_RUN_MAX as u32 + 2;
    for k in 0..n as usize {
        let op = if k == 1 {
            w_poison(&h, k % ADDRS.len())
        } else {
            w(&h, k % ADDRS.len())
        };
        h.push(op).unwrap();
    }
    let flush = x(&h, MMUEXT_TLB_FLUSH_ALL, 0);
    h.push(flush).unwrap();
    let err = h.barrier(Barrier::TlbFlush).unwrap_err();
    assert_eq!((err.first.tag, err.count), (1, 1));
    assert_eq!(h.xen.calls.len(), 2);
    assert_eq!(ids(&h.xen.calls[0]), (0..n).collect::<Vec<_>>());
    // Xen stopped at request 1 (pdone = 1): the SPLIT_RUN_MAX behind it go
    // again, before the flush, now as a short run sharing a multicall
    // with it.
    let Recorded::Multicall { calls, .. } = &h.xen.calls[1] else {
        panic!("{:?}", h.xen.calls[1])
    };
    assert_eq!(
        calls.iter().map(ids).collect::<Vec<_>>(),
        (2..=n).map(|id| vec![id]).collect::<Vec<_>>()
    );
    let c = h.batch.counters();
    // The n writes, the SPLIT_RUN_MAX again, the flush.
    assert_eq!(
        (c.reissued, c.requests, c.hypercalls),
        (SPLIT_RUN_MAX as u64, 2 * u64::from(n) - 1, 2)
    );
}

#[test]
fn a_failed_multicall_entry_does_not_stop_the_entries_behind_it() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    let a = w_poison(&h, 0);
    h.push(a).unwrap();
    let pin = x(&h, MMUEXT_PIN_L3_TABLE, 4);
    h.push(pin).unwrap();
    let b = w(&h, 1);
    h.push(b).unwrap();
    let base = x(&h, MMUEXT_NEW_BASEPTR, 4);
    h.push(base).unwrap();
    let err = h.barrier(Barrier::BaseSwitch).unwrap_err();
    assert_eq!((err.first.tag, err.count), (0, 1));
    assert_eq!(
        h.xen.calls.len(),
        1,
        "one multicall; Xen ran all four entries"
    );
    assert_eq!(
        h.xen.attempts.iter().map(|a| a.id).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(h.xen.state.base, Some(4));
}

#[test]
fn covered_tlb_maintenance_is_dropped() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    let inv = x(&h, MMUEXT_INVLPG_LOCAL, 0x2000);
    h.push(inv).unwrap();
    let a = w(&h, 0);
    h.push(a).unwrap();
    let local = x(&h, MMUEXT_TLB_FLUSH_LOCAL, 0);
    h.push(local).unwrap();
    let all = x(&h, MMUEXT_TLB_FLUSH_ALL, 0);
    h.push(all).unwrap();
    let local2 = x(&h, MMUEXT_TLB_FLUSH_LOCAL, 0);
    h.push(local2).unwrap();
    h.barrier(Barrier::TlbFlush).unwrap();
    assert_eq!(
        h.batch.counters().dropped_flushes,
        2,
        "the INVLPG and the first local flush"
    );
    let Recorded::Multicall { calls, .. } = &h.xen.calls[0] else {
        panic!("{:?}", h.xen.calls)
    };
    assert_eq!(
        calls.iter().map(ids).collect::<Vec<_>>(),
        [vec![1], vec![3, 4]],
        "ALL then LOCAL both stay"
    );
}

#[test]
fn a_faulted_multicall_fails_the_first_entry_it_did_not_run() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    let a = w(&h, 0);
    h.push(a).unwrap();
    let pin = x(&h, MMUEXT_PIN_L1_TABLE, 2);
    h.push(pin).unwrap();
    let b = w(&h, 1);
    h.push(b).unwrap();
    h.xen.fault_next_multicall = Some(1);
    let err = h.leave_lazy().unwrap_err();
    assert_eq!(err.first.tag, 1);
    assert_eq!(err.first.cause, Cause::BatchRejected);
    assert_eq!(err.first.errno, EFAULT);
    assert_eq!(
        h.xen.calls.len(),
        2,
        "the write behind the rejected pin goes out next"
    );
    assert_eq!(ids(&h.xen.calls[1]), [2]);
}

#[test]
fn every_failure_is_reported_and_the_first_returned() {
    let mut h = Harness::<8>::new();
    h.enter_lazy();
    for k in 0..5 {
        let op = if k % 2 == 0 {
            w_poison(&h, k)
        } else {
            w(&h, k)
        };
        h.push(op).unwrap();
    }
    let err = h.leave_lazy().unwrap_err();
    assert_eq!((err.first.tag, err.count), (0, 3));
    assert_eq!(
        h.xen.reported.iter().map(|f| f.tag).collect::<Vec<_>>(),
        [0, 2, 4]
    );
}

#[test]
fn a_push_into_a_full_queue_flushes_first_and_returns_its_failures() {
    let mut h = Harness::<4>::new();
    h.enter_lazy();
    for k in 0..4 {
        let op = if k == 3 { w_poison(&h, k) } else { w(&h, k) };
        h.push(op).unwrap();
    }
    let op = w(&h, 4);
    let err = h.push(op).unwrap_err();
    assert_eq!(err.first.tag, 3);
    assert_eq!(h.batch.len(), 1, "the new op is queued after the flush");
    h.leave_lazy().unwrap();
}

#[test]
fn abandon_hands_back_every_op_that_would_have_gone_out() {
    let mut batch = MmuBatch::<u32, 8>::new();
    let mut xen = ModelXen::new();
    batch.enter_lazy();
    let ops = [
        write(ADDRS[0], 0, 1, PteWrite::Normal, false),
        write(ADDRS[0], 1, 1, PteWrite::Normal, false),
        Op::Mmuext(ext(MMUEXT_INVLPG_LOCAL, 0x1000, 2, false)),
        Op::Mmuext(ext(MMUEXT_TLB_FLUSH_LOCAL, 0, 3, false)),
        Op::UpdateVaMapping {
            va: va_of(1),
            pte: pte_value(4, 0, false),
            flags: UVMF_TLB_FLUSH,
        },
    ];
    for (id, op) in ops.iter().enumerate() {
        batch.push(*op, id as u32, &mut xen).unwrap();
    }
    let mut seen = Vec::new();
    assert_eq!(batch.abandon(|op, tag| seen.push((*op, *tag))), 3);
    assert_eq!(seen, [(ops[1], 1), (ops[3], 3), (ops[4], 4)]);
    assert!(batch.is_empty());
    assert!(xen.calls.is_empty());
}

#[test]
fn queue_is_usable_as_a_static() {
    static QUEUE: std::sync::Mutex<MmuBatch<u32, 32>> = std::sync::Mutex::new(MmuBatch::new());
    let mut q = QUEUE.lock().unwrap();
    let mut xen = ModelXen::new();
    let op = write(ADDRS[0], 0, 1, PteWrite::Normal, false);
    xen.script.push(op);
    xen.links.push(false);
    q.push(op, 0, &mut xen).unwrap();
    q.end_of_call(&mut xen).unwrap();
    assert_eq!(
        xen.calls,
        [Recorded::MmuUpdate(vec![match op {
            Op::MmuUpdate(r) => r,
            _ => unreachable!(),
        }])]
    );
    assert_eq!(MmuBatch::<u32, 32>::CAPACITY, 32);
}

/// A queue built in place behaves as one built by `new`.
#[test]
fn built_in_place_is_an_empty_queue() {
    use std::mem::MaybeUninit;
    let mut place: Box<MaybeUninit<mmu_batch::MmuBatch<u32, 8>>> = Box::new_uninit();
    // SAFETY: the box is valid for writes and aligned for the queue.
    let mut batch = unsafe {
        mmu_batch::MmuBatch::init_in_place(place.as_mut_ptr());
        place.assume_init()
    };
    assert!(batch.is_empty() && !batch.is_lazy());
    assert_eq!(batch.counters(), mmu_batch::Counters::ZERO);
    batch.enter_lazy();
    assert!(batch.is_lazy());
}

/// A context switch in lazy CPU mode: the new base pointer and the stack
/// switch go out as one multicall of two entries, in queue order, when
/// the mode ends; alone, a stack switch is a direct `stack_switch`.
#[test]
fn a_stack_switch_shares_the_multicall_of_the_base_switch() {
    let mut h = Harness::<64>::new();
    let pin = x(&h, MMUEXT_PIN_L3_TABLE, 4);
    h.push(pin).unwrap();
    h.end_of_call().unwrap();
    h.enter_lazy();
    let base = x(&h, MMUEXT_NEW_BASEPTR, 4);
    h.push(base).unwrap();
    let stack = stack_switch(h.next_id(), 0xC000_1FF0, false);
    h.push(stack).unwrap();
    assert_eq!(h.xen.calls.len(), 1, "nothing more before the mode ends");
    h.leave_lazy().unwrap();
    assert_eq!(h.xen.calls.len(), 2);
    let Recorded::Multicall { entries, calls, .. } = &h.xen.calls[1] else {
        panic!("one multicall: {:?}", h.xen.calls[1]);
    };
    assert_eq!(calls.len(), 2);
    assert_eq!(entries[1].op, __HYPERVISOR_stack_switch);
    assert_eq!(&entries[1].args[..2], &[2, 0xC000_1FF0]);
    assert_eq!(ids(&calls[0]), [1]);
    assert_eq!(h.xen.state.base, Some(4));
    assert_eq!(h.xen.state.stack, Some((2, 0xC000_1FF0)));

    let alone = stack_switch(h.next_id(), 0xC000_2FF0, false);
    h.push(alone).unwrap();
    h.end_of_call().unwrap();
    assert_eq!(
        h.xen.calls.last(),
        Some(&Recorded::StackSwitch {
            ss: 3,
            esp: 0xC000_2FF0
        })
    );
}

/// A refused stack switch is reported once with its tag, and the work
/// queued behind it still runs.
#[test]
fn a_refused_stack_switch_is_reported_and_the_rest_runs() {
    let mut h = Harness::<64>::new();
    h.enter_lazy();
    let stack = stack_switch(h.next_id(), 0x1000, true);
    h.push(stack).unwrap();
    let a = w(&h, 0);
    h.push(a).unwrap();
    let err = h.leave_lazy().unwrap_err();
    assert_eq!((err.first.tag, err.count), (0, 1));
    assert_eq!(h.xen.state.stack, None);
    assert_eq!(
        h.xen.state.mem.get(&ADDRS[0]).map(|v| id_of_pte(*v)),
        Some(1)
    );
}

/// `leave_lazy_switching` (a context switch held back out of the queue) makes
/// the same hypercalls, reports the same failures, leaves Xen in the same
/// state and counts the same as pushing the two ops and leaving lazy mode:
/// on an empty queue, with a refused stack switch, and behind a queued
/// write, in every order over three switches in a row (the pair's entries
/// are laid out once and reused, and a general flush between switches
/// lays out its own multicall).
#[test]
fn leaving_lazy_mode_with_a_held_switch_is_pushing_it() {
    let kinds = [(false, false), (false, true), (true, false), (true, true)];
    for sequence in 0..kinds.len().pow(3) {
        let rounds: Vec<(bool, bool)> = (0..3)
            .map(|k| kinds[sequence / kinds.len().pow(k) % kinds.len()])
            .collect();
        let run = |held: bool| {
            let mut h = Harness::<64>::new();
            let mut results = Vec::new();
            for (round, &(queued_write, poisoned)) in rounds.iter().enumerate() {
                h.enter_lazy();
                if queued_write {
                    let a = w(&h, round);
                    h.push(a).unwrap();
                }
                let base = x(&h, MMUEXT_NEW_BASEPTR, 4 + round as u32);
                let esp = 0xC000_1FF0 - 0x100 * round as u32;
                if !held {
                    h.push(base).unwrap();
                    let stack = stack_switch(h.next_id(), esp, poisoned);
                    h.push(stack).unwrap();
                    results.push(h.leave_lazy());
                    continue;
                }
                // Held: the ops join the script as the harness's pushes
                // would, but only the queue's leave_lazy_switching sees them.
                h.xen.script.push(base);
                h.xen.links.push(false);
                let stack = stack_switch(h.next_id(), esp, poisoned);
                h.xen.script.push(stack);
                h.xen.links.push(false);
                let (base_id, stack_id) = (id_of(&base), id_of(&stack));
                let (Op::Mmuext(base_op), Op::StackSwitch { ss, esp }) = (base, stack) else {
                    unreachable!()
                };
                results.push(h.batch.leave_lazy_switching(
                    base_op,
                    (ss, esp),
                    || (base_id, stack_id),
                    &mut h.xen,
                ));
                // The harness's own bookkeeping, as its leave_lazy would
                // leave it (the queue is empty again).
                h.fill.clear();
                h.lazy = false;
            }
            (
                h.xen.calls,
                h.xen.reported,
                h.xen.state,
                results,
                h.batch.len(),
                h.batch.counters(),
            )
        };
        let (pushed, held) = (run(false), run(true));
        assert_eq!(
            without_pointers(&pushed.0),
            without_pointers(&held.0),
            "hypercalls ({rounds:?})"
        );
        assert_eq!(pushed.1, held.1, "failures reported ({rounds:?})");
        assert_eq!(pushed.2, held.2, "Xen's state ({rounds:?})");
        assert_eq!(pushed.3, held.3, "the results ({rounds:?})");
        assert_eq!((pushed.4, held.4), (0, 0), "the queue is empty");
        assert_eq!(pushed.5, held.5, "the counters ({rounds:?})");
        assert_eq!(held.0.len(), 3, "one multicall per switch ({rounds:?})");
    }
}

/// `calls` with the multicall entries' argument pointers taken out (the
/// decoded calls hold what they point at): the held pair's entries point
/// into storage of its own.
fn without_pointers(calls: &[Recorded]) -> Vec<Recorded> {
    let mut calls = calls.to_vec();
    for call in &mut calls {
        if let Recorded::Multicall { entries, .. } = call {
            for entry in entries {
                if entry.op == __HYPERVISOR_mmu_update || entry.op == __HYPERVISOR_mmuext_op {
                    entry.args[0] = 0;
                }
            }
        }
    }
    calls
}

/// What a flush of a queue of plain writes looks like to Xen, with ids
/// replaced by their position in `live` (the live writes' ids, in order):
/// the calls (each a list of positions) and the refused positions reported.
fn plain_run_shape<const N: usize>(h: &Harness<N>, live: &[u32]) -> (Vec<Vec<u32>>, Vec<u32>) {
    let pos = |id: u32| live.iter().position(|&l| l == id).expect("a live id") as u32;
    let calls = h
        .xen
        .calls
        .iter()
        .map(|c| ids(c).into_iter().map(pos).collect())
        .collect();
    let reported = h.xen.reported.iter().map(|f| pos(f.tag)).collect();
    (calls, reported)
}

/// A queue that is one run of plain writes takes the queue's fast path (the
/// requests handed to Xen where the pushes built them, nothing searched or
/// compacted); a queue where one write merged away an earlier one holds the
/// same live run but goes the general way. Both must make the same calls
/// and report the same refusals, for a refusal at every position of the run
/// (what Xen skipped behind it goes out again, in order), and with none; the
/// harness checks the final state of each against the sequential result.
/// The merge is put away from the refused write, whose failure would
/// otherwise revive the merged-away one (a difference of the queue, not of
/// the path).
#[test]
fn a_plain_run_flushes_as_the_general_path_does() {
    for len in [2usize, 5, 12] {
        for refused in (0..len).map(Some).chain([None]) {
            let merged_at = if refused == Some(0) { len - 1 } else { 0 };
            let mut shapes = Vec::new();
            for merged in [false, true] {
                let mut h = Harness::<16>::new();
                h.enter_lazy();
                let mut live = Vec::new();
                for k in 0..len {
                    if merged && k == merged_at {
                        let op = w(&h, k % ADDRS.len());
                        h.push(op).unwrap();
                    }
                    live.push(h.next_id());
                    let op = if refused == Some(k) {
                        w_poison(&h, k % ADDRS.len())
                    } else {
                        w(&h, k % ADDRS.len())
                    };
                    h.push(op).unwrap();
                }
                assert_eq!(h.batch.counters().merges, u64::from(merged));
                let result = h.leave_lazy();
                assert_eq!(result.is_err(), refused.is_some());
                let c = h.batch.counters();
                assert_eq!(c.hypercalls as usize, h.xen.calls.len());
                assert_eq!(c.revived, 0);
                let reissued = refused.map_or(0, |k| len - k - 1);
                assert_eq!(c.reissued as usize, reissued);
                assert_eq!(c.requests as usize, len + reissued);
                assert!(h.batch.is_empty());
                shapes.push(plain_run_shape(&h, &live));
            }
            let (calls, reported) = &shapes[0];
            let all: Vec<u32> = (0..len as u32).collect();
            let mut expected = vec![all];
            if let Some(k) = refused.filter(|&k| k + 1 < len) {
                expected.push((k as u32 + 1..len as u32).collect());
            }
            assert_eq!(calls, &expected, "run of {len}, refusal at {refused:?}");
            let expected_reported: Vec<u32> = refused.iter().map(|&k| k as u32).collect();
            assert_eq!(reported, &expected_reported);
            assert_eq!(
                shapes[0], shapes[1],
                "fast and general path differ: run of {len}, refusal at {refused:?}"
            );
        }
    }
}

/// After a flush of a plain run, the queue takes any other op as usual, and
/// a plain run after a mixed queue takes the fast path again.
#[test]
fn plain_and_mixed_queues_alternate() {
    let mut h = Harness::<8>::new();
    for round in 0..3 {
        h.enter_lazy();
        for k in 0..4 {
            let op = w(&h, k);
            h.push(op).unwrap();
        }
        if round == 1 {
            let op = x(&h, MMUEXT_INVLPG_LOCAL, 0x4000);
            h.push(op).unwrap();
        }
        h.leave_lazy().unwrap();
    }
    let shapes: Vec<usize> = h
        .xen
        .calls
        .iter()
        .map(|c| match c {
            Recorded::MmuUpdate(r) => r.len(),
            Recorded::Multicall { calls, .. } => 100 + calls.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    // Round 1: four writes and an INVLPG: the writes are a short run with
    // work behind it, split into a multicall with the INVLPG.
    assert_eq!(shapes, [4, 105, 4]);
}

/// A queue of one page-table write (the end of a SetPxE outside lazy mode,
/// or a barrier right after one) goes out as its own one-request
/// `mmu_update` straight from the request its push built: the call
/// `issue_single` makes of it, with the same report of a refusal (once,
/// with its tag, errno and cause, returned as the first and only failure)
/// and the same counters, for every flush point and both kinds of write.
/// The slot it leaves behind must not leak into what is pushed next: a
/// later lone write, a later run and a later mixed queue flush as usual.
#[test]
fn a_lone_write_is_one_request_with_the_general_reporting() {
    type Point = fn(&mut Harness<8>) -> Result<(), mmu_batch::Failures<u32>>;
    let points: [(Point, FlushReason, bool); 4] = [
        (|h| h.end_of_call(), FlushReason::EndOfCall, false),
        (
            |h| h.barrier(Barrier::CoherentRead),
            FlushReason::Barrier(Barrier::CoherentRead),
            true,
        ),
        (
            |h| h.barrier(Barrier::EventsEnable),
            FlushReason::Barrier(Barrier::EventsEnable),
            false,
        ),
        (|h| h.flush(), FlushReason::Explicit, false),
    ];
    for (point, reason, lazy) in points {
        for mode in [PteWrite::Normal, PteWrite::PreserveAd] {
            for refused in [false, true] {
                let mut h = Harness::<8>::new();
                if lazy {
                    h.enter_lazy();
                }
                let id = h.next_id();
                let op = write(ADDRS[1], id, 0x067, mode, refused);
                h.push(op).unwrap();
                let before = h.batch.counters();
                let result = point(&mut h);
                assert!(h.batch.is_empty());
                assert_eq!(h.xen.calls.len(), 1);
                assert!(matches!(&h.xen.calls[0], Recorded::MmuUpdate(r) if r.len() == 1));
                assert_eq!(ids(&h.xen.calls[0]), [id]);
                let c = h.batch.counters();
                assert_eq!(c.flushes, before.flushes + 1);
                assert_eq!(
                    c.flushes_for(reason),
                    before.flushes_for(reason) + 1,
                    "{reason:?}"
                );
                assert_eq!(c.hypercalls, before.hypercalls + 1);
                assert_eq!(c.requests, before.requests + 1);
                assert_eq!(c.multicalls, 0);
                assert_eq!((c.reissued, c.revived), (0, 0));
                assert_eq!(c.failures, u64::from(refused));
                if refused {
                    let failures = result.expect_err("the refusal is returned");
                    assert_eq!(failures.count, 1);
                    assert_eq!(failures.first.tag, id);
                    assert_eq!(failures.first.op, op);
                    assert_eq!(failures.first.errno, EPERM);
                    assert_eq!(failures.first.cause, Cause::Refused);
                    assert_eq!(h.xen.reported.len(), 1);
                    assert_eq!(h.xen.reported[0], failures.first);
                } else {
                    result.unwrap();
                    assert!(h.xen.reported.is_empty());
                }

                // What comes next is not disturbed by the slot left behind:
                // a lone write, a merge-free run and a mixed queue.
                let next = w(&h, 2);
                h.push(next).unwrap();
                point(&mut h).unwrap();
                assert_eq!(ids(h.xen.calls.last().unwrap()), [id + 1]);
                h.enter_lazy();
                let first = h.next_id();
                for k in 0..3 {
                    let op = w(&h, k);
                    h.push(op).unwrap();
                }
                h.leave_lazy().unwrap();
                assert_eq!(
                    ids(h.xen.calls.last().unwrap()),
                    [first, first + 1, first + 2]
                );
                let op = w(&h, 4);
                h.push(op).unwrap();
                let op = x(&h, MMUEXT_INVLPG_LOCAL, 0x4000);
                h.push(op).unwrap();
                h.flush().unwrap();
                assert!(matches!(
                    h.xen.calls.last(),
                    Some(Recorded::Multicall { .. })
                ));
                assert_eq!(h.batch.counters().failures, u64::from(refused));
                if lazy {
                    h.leave_lazy().unwrap();
                }
            }
        }
    }
}

/// A fork's mixed queue (unpins, clears, writes, pins, the base switch and
/// the stack switch; every slot live) takes the in-place layout; with a
/// refusal at every position, and with none, it makes the calls the
/// general layout makes and reports the same refusals, and the state ends
/// the same.
#[test]
fn a_mixed_queue_in_place_flushes_as_the_general_path_does() {
    // Kinds: 'u' a pin of an L1, 'c' an INVLPG of every vCPU, 'w' write, 'p' pin, 'b' base,
    // 's' stack switch, 'i' INVLPG.
    let shape: &[char] = &[
        'u', 'u', 'c', 'c', 'c', 'w', 'w', 'w', 'w', 'w', 'w', 'w', 'w', 'w', 'w', 'i', 'w', 'p',
        'b', 's', 'w', 'w',
    ];
    for refused in (0..shape.len()).map(Some).chain([None]) {
        let mut outcomes = Vec::new();
        for general_only in [false, true] {
            let mut h = Harness::<32>::new();
            h.batch.set_in_place_layout_off(general_only);
            h.enter_lazy();
            for (k, kind) in shape.iter().enumerate() {
                let id = h.next_id();
                let poison = refused == Some(k);
                let op = match kind {
                    'u' => Op::Mmuext(ext(MMUEXT_PIN_L1_TABLE, 10 + k as u32, id, poison)),
                    'c' => Op::Mmuext(ext(MMUEXT_INVLPG_ALL, 0x1000 * k as u32, id, poison)),
                    'w' => write(ADDRS[k % ADDRS.len()], id, 0x67, PteWrite::Normal, poison),
                    'i' => Op::Mmuext(ext(MMUEXT_INVLPG_LOCAL, 0x4000, id, poison)),
                    'p' => Op::Mmuext(ext(MMUEXT_PIN_L3_TABLE, 40, id, poison)),
                    'b' => Op::Mmuext(ext(MMUEXT_NEW_BASEPTR, 40, id, poison)),
                    _ => stack_switch(id, 0xC000_1FF0, poison),
                };
                h.push(op).unwrap();
            }
            assert_eq!(h.batch.counters().merges, 0, "every slot live");
            let result = h.leave_lazy();
            assert_eq!(result.is_err(), refused.is_some(), "refusal at {refused:?}");
            assert!(h.batch.is_empty());
            let calls: Vec<String> = h
                .xen
                .calls
                .iter()
                .map(|c| match c {
                    Recorded::Multicall { calls, pdone, .. } => format!("{calls:?} {pdone:?}"),
                    other => format!("{other:?}"),
                })
                .collect();
            outcomes.push((
                calls,
                h.xen.attempts.clone(),
                h.xen.reported.clone(),
                h.xen.state.clone(),
                h.batch.counters(),
            ));
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "in-place and general layouts differ, refusal at {refused:?}"
        );
    }
}
