//! `MmuBatch::appends_write` and `MmuBatch::WRITE_SLOT`: the ROM's lazy
//! SetPxELong and UpdatePxELong path queues a write in assembly, by the
//! layout `WRITE_SLOT` gives, where `appends_write` says the push would only
//! append it. Transcribed here word for word (the request at `reqs[len]`,
//! the slot's tag and nothing else of the slot, the push count, `len` one
//! more), against `push_pte_write` on a copy of the queue: on random
//! writes (a few entries, so that the last request is often the same
//! entry; other ops now and then, which end the queue's mirrored run; a
//! small queue, often full; flushes; refusals, which settle a plain run
//! through the general path and so read its slots), the two queues hold
//! the same ops and tags, the same length and counters, flush the same
//! requests and report the same failures, also where the layout's queue
//! had its plain run ended early (`end_plain_run`, which must change
//! nothing observable). (`tests/model.rs` holds the queue, with such
//! writes among its pushes, to the model of Xen.)

mod common;

use common::append_by_layout;
use mmu_batch::{Failure, FlushTarget, MmuBatch, Multicall, Op, PteWrite};
use proptest::prelude::*;
use xen_abi::xen::{MmuUpdate, MmuextOp};

const N: usize = 6;

/// A tag shaped as the ROM's (`shadow_cache::Tag`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tag {
    what: u8,
    kfn: u32,
    index: u16,
    guest: u64,
}

/// Xen refusing the writes of a value that is a multiple of 16 (about one
/// in 16) and taking everything else, recording the requests applied and
/// the failures reported.
#[derive(Default)]
struct Xen {
    requests: Vec<(u64, u64)>,
    exts: usize,
    failures: Vec<(Tag, Op, i32)>,
}

impl Xen {
    /// `mmu_update` on `reqs`: the requests applied in order up to the
    /// first refused one (`pdone` counts them), then -EINVAL.
    fn apply(&mut self, reqs: &[MmuUpdate]) -> (u32, i32) {
        for (k, r) in reqs.iter().enumerate() {
            if r.val.get() % 16 == 0 {
                return (k as u32, -22);
            }
            self.requests.push((r.ptr.get(), r.val.get()));
        }
        (reqs.len() as u32, 0)
    }
}

impl FlushTarget<Tag> for Xen {
    fn mmu_update(&mut self, reqs: &[MmuUpdate], pdone: &mut u32) -> i32 {
        let (done, result) = self.apply(reqs);
        *pdone = done;
        result
    }

    fn mmuext_op(&mut self, ops: &[MmuextOp], pdone: &mut u32) -> i32 {
        self.exts += ops.len();
        *pdone = ops.len() as u32;
        0
    }

    fn update_va_mapping(&mut self, _va: u32, _pte: u64, _flags: u32) -> i32 {
        0
    }

    fn stack_switch(&mut self, _ss: u32, _esp: u32) -> i32 {
        0
    }

    fn multicall(&mut self, calls: &mut Multicall<'_>) -> i32 {
        for j in 0..calls.len() {
            let (done, result) = match calls.decode(j).expect("an entry the queue made") {
                mmu_batch::Call::MmuUpdate { reqs, .. } => self.apply(reqs),
                mmu_batch::Call::MmuextOp { ops, .. } => {
                    self.exts += ops.len();
                    (ops.len() as u32, 0)
                }
                _ => (1, 0),
            };
            calls.write_done(j, done);
            calls.set_result(j, result);
        }
        0
    }

    fn failed(&mut self, failure: &Failure<Tag>) {
        self.failures.push((failure.tag, failure.op, failure.errno));
    }
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Write {
        entry: u64,
        val: u64,
        id: u32,
    },
    Flush,
    Other(u32),
    /// `end_plain_run` on the queue written by the layout alone.
    EndRun,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0..3u64, any::<u64>(), any::<u32>()).prop_map(|(e, val, id)| Step::Write {
            entry: 0x1_2345_6000 + e * 8,
            val,
            id,
        }),
        1 => Just(Step::Flush),
        1 => any::<u32>().prop_map(Step::Other),
        1 => Just(Step::EndRun),
    ]
}

proptest! {
    #[test]
    fn the_layouts_write_is_the_pushs(steps in prop::collection::vec(step(), 1..80)) {
        let mut by_layout: Box<MmuBatch<Tag, N>> = Box::new(MmuBatch::new());
        let mut pushed: Box<MmuBatch<Tag, N>> = Box::new(MmuBatch::new());
        let (mut xen_a, mut xen_b) = (Xen::default(), Xen::default());
        let mut appended = 0;
        for s in steps {
            match s {
                Step::Write { entry, val, id } => {
                    let tag = Tag { what: 0, kfn: id, index: (entry & 0xFFF) as u16 / 8, guest: val ^ 1 };
                    let a = if by_layout.appends_write(entry) {
                        append_by_layout(&mut by_layout, entry, val, tag);
                        appended += 1;
                        Ok(())
                    } else {
                        by_layout.push_pte_write(entry, val, PteWrite::Normal, tag, &mut xen_a)
                    };
                    let b = pushed.push_pte_write(entry, val, PteWrite::Normal, tag, &mut xen_b);
                    prop_assert_eq!(a.err().map(|f| f.count), b.err().map(|f| f.count));
                }
                Step::Flush => {
                    let a = by_layout.end_of_call(&mut xen_a);
                    let b = pushed.end_of_call(&mut xen_b);
                    prop_assert_eq!(a.err().map(|f| f.count), b.err().map(|f| f.count));
                }
                Step::EndRun => by_layout.end_plain_run(),
                Step::Other(id) => {
                    let op = Op::Mmuext(MmuextOp::invlpg_local(id & !0xFFF));
                    let a = by_layout.push(op, Tag::default(), &mut xen_a);
                    let b = pushed.push(op, Tag::default(), &mut xen_b);
                    prop_assert_eq!(a.err().map(|f| f.count), b.err().map(|f| f.count));
                }
            }
            prop_assert_eq!(by_layout.len(), pushed.len());
            // An empty queue is idle (a write may go out mapped) whether or
            // not a plain run was ended on it.
            prop_assert_eq!(by_layout.is_idle(), pushed.is_idle());
            prop_assert_eq!(by_layout.pending().collect::<Vec<_>>(), pushed.pending().collect::<Vec<_>>());
            prop_assert_eq!(by_layout.counters(), pushed.counters());
            prop_assert_eq!(&xen_a.failures, &xen_b.failures);
        }
        let a = by_layout.end_of_call(&mut xen_a);
        let b = pushed.end_of_call(&mut xen_b);
        prop_assert_eq!(a.err().map(|f| f.count), b.err().map(|f| f.count));
        prop_assert_eq!(&xen_a.requests, &xen_b.requests);
        prop_assert_eq!(xen_a.exts, xen_b.exts);
        prop_assert_eq!(&xen_a.failures, &xen_b.failures);
        prop_assert_eq!(by_layout.counters(), pushed.counters());
        let _ = appended;
    }
}

/// `appends_write`'s three conditions, one at a time.
#[test]
fn appends_write_needs_room_a_mirrored_queue_and_another_entry() {
    let mut xen = Xen::default();
    let mut b: Box<MmuBatch<Tag, N>> = Box::new(MmuBatch::new());
    b.enter_lazy();
    assert!(b.appends_write(0x1000), "an empty queue");
    b.push_pte_write(0x1000, 1, PteWrite::Normal, Tag::default(), &mut xen)
        .unwrap();
    assert!(!b.appends_write(0x1000), "the last request's entry");
    assert!(b.appends_write(0x1008), "another entry");
    for k in 1..N as u64 {
        b.push_pte_write(
            0x1000 + 8 * k,
            1,
            PteWrite::Normal,
            Tag::default(),
            &mut xen,
        )
        .unwrap();
    }
    assert_eq!(b.len(), N);
    assert!(!b.appends_write(0x3000), "a full queue");
    b.leave_lazy(&mut xen).unwrap();
    b.push(
        Op::Mmuext(MmuextOp::tlb_flush_local()),
        Tag::default(),
        &mut xen,
    )
    .unwrap();
    assert!(!b.appends_write(0x3000), "a queue that is no plain run");
}

/// `end_plain_run` on an empty queue changes nothing: the queue stays
/// idle (a page fault's update may go out mapped, `write_mapped`) and
/// still appends writes (the ROM's lazy path in assembly). Ending a run
/// of writes ends it until the queue is flushed.
#[test]
fn ending_a_plain_run_on_an_empty_queue_leaves_it_idle() {
    let mut xen = Xen::default();
    let mut b: Box<MmuBatch<Tag, N>> = Box::new(MmuBatch::new());
    b.end_plain_run();
    assert!(b.is_idle(), "an empty queue is idle");
    assert!(b.appends_write(0x1000), "an empty queue appends");
    let mapped = b.write_mapped(&mut xen, 0x4000, 0x1000, 0x67, Tag::default());
    assert!(mapped.is_some_and(|r| r.is_ok()), "a mapped write goes out");
    b.enter_lazy();
    append_by_layout(&mut b, 0x1000, 0x67, Tag::default());
    b.end_plain_run();
    assert!(!b.appends_write(0x1008), "a run ended with a write queued");
    b.leave_lazy(&mut xen).unwrap();
    b.end_plain_run();
    assert!(b.is_idle(), "flushed, then ended again");
    assert!(b.appends_write(0x1008));
}

/// A crash's `abandon` of a plain run written by the layout hands over
/// each write with its tag, though the slots still held older ops (an
/// INVLPG and a write, flushed) and no op or state of their own.
#[test]
fn abandon_sees_the_layouts_writes() {
    let mut xen = Xen::default();
    let mut b: Box<MmuBatch<Tag, N>> = Box::default();
    let old = Tag {
        what: 9,
        ..Tag::default()
    };
    b.push(Op::Mmuext(MmuextOp::invlpg_local(0x4000)), old, &mut xen)
        .unwrap();
    b.push_pte_write(0x2000, 1, PteWrite::Normal, old, &mut xen)
        .unwrap();
    b.push(Op::Mmuext(MmuextOp::invlpg_local(0x5000)), old, &mut xen)
        .unwrap();
    b.end_of_call(&mut xen).unwrap();
    assert!(b.is_empty());
    b.enter_lazy();
    let writes: Vec<(u64, u64, Tag)> = (0..3u64)
        .map(|k| {
            let tag = Tag {
                what: 1,
                kfn: 0x77 + k as u32,
                index: k as u16,
                guest: 0x100 + k,
            };
            (0x1_0000_3000 + 8 * k, 0x67 + (k << 12), tag)
        })
        .collect();
    for &(maddr, val, tag) in &writes {
        append_by_layout(&mut b, maddr, val, tag);
    }
    let mut seen = Vec::new();
    assert_eq!(b.abandon(|op, tag| seen.push((*op, *tag))), 3);
    let want: Vec<(Op, Tag)> = writes
        .iter()
        .map(|&(maddr, val, tag)| (Op::pte_write(maddr, val, PteWrite::Normal), tag))
        .collect();
    assert_eq!(seen, want);
    assert!(b.is_empty());
    assert_eq!(xen.failures, []);
}
