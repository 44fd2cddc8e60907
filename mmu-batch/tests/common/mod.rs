//! A model of Xen's MMU hypercalls for testing the queue: page-table memory
//! keyed by machine address, a set of pinned frames, a base pointer, a log
//! of every request attempted, and a record of every hypercall as issued.
//!
//! Semantics follow Xen (see the crate documentation): `mmu_update` and
//! `mmuext_op` stop at the first refused request and report the count done
//! before it through `pdone`; a multicall runs every entry and stores each
//! one's result. Which requests Xen refuses is scripted through the values:
//!
//! - a page-table write or `update_va_mapping` whose value has
//!   [`POISON_PTE`] set is refused (`-EPERM`, `-ENOMEM`);
//! - an `mmuext_op` whose `arg2` has [`POISON_EXT`] set is refused
//!   (`-EBUSY`), and so are, as in Xen, pinning a pinned frame, unpinning an
//!   unpinned one and loading an unpinned base (`-EINVAL`): these depend on
//!   the order the ops run in.
//!
//! Each op carries its test id: bits 12..32 of a written value, the low 16
//! bits of `arg2` of an `mmuext_op` (Xen ignores `arg2` for the commands the
//! tests use it with; for `MMUEXT_SET_LDT` it is the entry count, which the
//! model does not check).
//!
//! Before running any request the model checks that its state is exactly
//! the sequential result of every op pushed before it (minus the ones that
//! failed): nothing ran early, nothing ran late, nothing was lost.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use mmu_batch::{Call, Cause, Failure, FlushTarget, Multicall, Op, PteWrite};
use xen_abi::xen::{
    MmuUpdate, MmuextOp, MulticallEntry, DOMID_SELF, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL,
    MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE,
    MMUEXT_SET_LDT, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE,
    MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD,
};

pub const EPERM: i32 = 1;
pub const ENOMEM: i32 = 12;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const EINVAL: i32 = 22;

/// A written value Xen refuses.
pub const POISON_PTE: u64 = 1 << 62;
/// An `mmuext_op` Xen refuses.
pub const POISON_EXT: u32 = 1 << 31;
/// Accessed and Dirty (`MMU_PT_UPDATE_PRESERVE_AD` keeps them).
pub const AD_BITS: u64 = 0x60;

/// Shadow entries the tests write: two in one page, others apart.
pub const ADDRS: [u64; 6] = [
    0x1_2345_6000,
    0x1_2345_6008,
    0x1_2345_6ff8,
    0x7000,
    0x7010,
    0x3_0000_0000,
];

/// The linear address whose L1 entry is `ADDRS[k]` (the model's page
/// tables; the queue does not know this mapping).
pub fn va_of(k: usize) -> u32 {
    0x0040_0000 + (k as u32) * 0x1000
}

fn addr_of_va(va: u32) -> u64 {
    ADDRS[((va - 0x0040_0000) / 0x1000) as usize]
}

/// The value of a test write: id in bits 12..32, `low` in bits 0..12.
pub fn pte_value(id: u32, low: u64, poison: bool) -> u64 {
    (u64::from(id) << 12) | (low & 0xFFF) | if poison { POISON_PTE } else { 0 }
}

pub fn id_of_pte(val: u64) -> u32 {
    ((val >> 12) & 0xF_FFFF) as u32
}

/// An `mmuext_op` with id and poison in `arg2`.
pub fn ext(cmd: u32, arg1: u32, id: u32, poison: bool) -> MmuextOp {
    MmuextOp {
        cmd,
        arg1,
        arg2: id | if poison { POISON_EXT } else { 0 },
    }
}

pub fn id_of_ext(op: &MmuextOp) -> u32 {
    op.arg2 & 0xFFFF
}

/// The test id an op carries.
pub fn id_of(op: &Op) -> u32 {
    match op {
        Op::MmuUpdate(req) => id_of_pte(req.val.get()),
        Op::Mmuext(op) => id_of_ext(op),
        Op::UpdateVaMapping { pte, .. } => id_of_pte(*pte),
        Op::StackSwitch { ss, .. } => id_of_stack(*ss),
    }
}

/// A `stack_switch` with id and poison in `ss` (the model's selectors are
/// test ids; Xen checks nothing about them but the poison bit here).
pub fn stack_switch(id: u32, esp: u32, poison: bool) -> Op {
    Op::StackSwitch {
        ss: id | if poison { POISON_EXT } else { 0 },
        esp,
    }
}

pub fn id_of_stack(ss: u32) -> u32 {
    ss & 0xFFFF
}

/// A hypercall as the model received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    MmuUpdate(Vec<MmuUpdate>),
    Mmuext(Vec<MmuextOp>),
    UpdateVaMapping {
        va: u32,
        pte: u64,
        flags: u32,
    },
    StackSwitch {
        ss: u32,
        esp: u32,
    },
    /// The entries as passed (before results), and each one decoded.
    Multicall {
        entries: Vec<MulticallEntry>,
        calls: Vec<Recorded>,
        pdone: Vec<bool>,
    },
}

/// The model's page-table state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub mem: BTreeMap<u64, u64>,
    pub pinned: BTreeSet<u32>,
    pub base: Option<u32>,
    /// The last stack switch applied (ss, esp).
    pub stack: Option<(u32, u32)>,
}

impl State {
    /// Applies `op` as Xen would, or returns the errno it refuses it with.
    pub fn apply(&mut self, op: &Op) -> Result<(), i32> {
        match *op {
            Op::MmuUpdate(req) => {
                let val = req.val.get();
                if val & POISON_PTE != 0 {
                    return Err(EPERM);
                }
                let old = self.mem.get(&req.machine_addr()).copied().unwrap_or(0);
                let new = match req.command() {
                    MMU_NORMAL_PT_UPDATE => val,
                    MMU_PT_UPDATE_PRESERVE_AD => val | (old & AD_BITS),
                    other => panic!("the tests queue no command {other}"),
                };
                self.mem.insert(req.machine_addr(), new);
                Ok(())
            }
            Op::UpdateVaMapping { va, pte, .. } => {
                if pte & POISON_PTE != 0 {
                    return Err(ENOMEM);
                }
                self.mem.insert(addr_of_va(va), pte);
                Ok(())
            }
            Op::StackSwitch { ss, esp } => {
                if ss & POISON_EXT != 0 {
                    return Err(EPERM);
                }
                self.stack = Some((ss, esp));
                Ok(())
            }
            Op::Mmuext(op) => {
                if op.arg2 & POISON_EXT != 0 && op.cmd != MMUEXT_SET_LDT {
                    return Err(EBUSY);
                }
                match op.cmd {
                    MMUEXT_PIN_L1_TABLE | MMUEXT_PIN_L2_TABLE | MMUEXT_PIN_L3_TABLE => {
                        if !self.pinned.insert(op.arg1) {
                            return Err(EINVAL);
                        }
                    }
                    MMUEXT_UNPIN_TABLE => {
                        if !self.pinned.remove(&op.arg1) {
                            return Err(EINVAL);
                        }
                    }
                    MMUEXT_NEW_BASEPTR => {
                        if !self.pinned.contains(&op.arg1) {
                            return Err(EINVAL);
                        }
                        self.base = Some(op.arg1);
                    }
                    MMUEXT_SET_LDT => {
                        if op.arg2 & POISON_EXT != 0 {
                            return Err(EBUSY);
                        }
                    }
                    MMUEXT_TLB_FLUSH_LOCAL
                    | MMUEXT_TLB_FLUSH_ALL
                    | MMUEXT_INVLPG_LOCAL
                    | MMUEXT_INVLPG_ALL => {}
                    other => panic!("the tests queue no mmuext command {other}"),
                }
                Ok(())
            }
        }
    }
}

/// One request the model ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub id: u32,
    pub result: Result<(), i32>,
}

#[derive(Debug, Default)]
pub struct ModelXen {
    pub state: State,
    /// Every request run, in order.
    pub attempts: Vec<Attempt>,
    /// Every hypercall, in order.
    pub calls: Vec<Recorded>,
    /// Every failure the queue reported, in order.
    pub reported: Vec<Failure<u32>>,
    /// Ids the model refused, with the errno.
    pub refused: BTreeMap<u32, i32>,
    /// Ids of the first request of an entry a faulted multicall did not run.
    pub rejected: BTreeSet<u32>,
    /// The next multicall runs only this many entries, then returns -EFAULT.
    pub fault_next_multicall: Option<usize>,
    /// Every op pushed so far, indexed by id (filled by the test).
    pub script: Vec<Op>,
    /// `links[id]`: op `id` replaced op `id - 1` when pushed (filled by the
    /// test from its own reading of the merge rule).
    pub links: Vec<bool>,
    /// Whether to check the state before every request.
    pub check_order: bool,
}

impl ModelXen {
    pub fn new() -> Self {
        Self {
            check_order: true,
            ..Self::default()
        }
    }

    /// Ids whose failure is known (refused by the model, or reported).
    fn failed_ids(&self) -> BTreeSet<u32> {
        let mut ids: BTreeSet<u32> = self.refused.keys().copied().collect();
        ids.extend(self.reported.iter().map(|f| f.tag));
        ids
    }

    /// The state after applying `script[..end]` in order, skipping the ops
    /// that failed (each one ran against the state the ops before it left,
    /// which is what this model checks, so skipping is exact).
    pub fn expected_state(&self, end: usize) -> State {
        let failed = self.failed_ids();
        let mut state = State::default();
        for (id, op) in self.script[..end].iter().enumerate() {
            if !failed.contains(&(id as u32)) {
                // Merged-away writes are applied too: the write that replaced
                // them overwrites the entry right after.
                let _ = apply_unchecked(&mut state, op);
            }
        }
        state
    }

    fn run(&mut self, op: &Op) -> Result<(), i32> {
        let id = id_of(op);
        assert_eq!(
            self.script.get(id as usize),
            Some(op),
            "request {id} is not the op pushed"
        );
        assert!(
            !self.attempts.iter().any(|a| a.id == id),
            "op {id} submitted twice: {:?}",
            self.attempts
        );
        if self.check_order {
            let mut expected = self.expected_state(id as usize);
            let mut actual = self.state.clone();
            // Op `id` replaced op `id - 1`: the intermediate value was never
            // written, which is the point of merging.
            if self.links.get(id as usize) == Some(&true) {
                if let Op::MmuUpdate(req) = op {
                    expected.mem.remove(&req.machine_addr());
                    actual.mem.remove(&req.machine_addr());
                }
            }
            assert_eq!(actual, expected, "state when op {id} ({op:?}) runs");
        }
        let result = self.state.apply(op);
        if let Err(errno) = result {
            self.refused.insert(id, errno);
        }
        self.attempts.push(Attempt { id, result });
        result
    }

    fn run_list(&mut self, ops: impl Iterator<Item = Op>, pdone: &mut u32) -> i32 {
        for (done, op) in ops.enumerate() {
            if let Err(errno) = self.run(&op) {
                *pdone = done as u32;
                return -errno;
            }
        }
        0
    }

    fn run_mmu_update(&mut self, reqs: &[MmuUpdate], pdone: &mut u32) -> i32 {
        let result = self.run_list(reqs.iter().map(|r| Op::MmuUpdate(*r)), pdone);
        if result == 0 {
            *pdone = reqs.len() as u32;
        }
        result
    }

    fn run_mmuext(&mut self, ops: &[MmuextOp], pdone: &mut u32) -> i32 {
        let result = self.run_list(ops.iter().map(|o| Op::Mmuext(*o)), pdone);
        if result == 0 {
            *pdone = ops.len() as u32;
        }
        result
    }

    fn run_uvm(&mut self, va: u32, pte: u64, flags: u32) -> i32 {
        match self.run(&Op::UpdateVaMapping { va, pte, flags }) {
            Ok(()) => 0,
            Err(errno) => -errno,
        }
    }

    fn run_stack(&mut self, ss: u32, esp: u32) -> i32 {
        match self.run(&Op::StackSwitch { ss, esp }) {
            Ok(()) => 0,
            Err(errno) => -errno,
        }
    }
}

fn apply_unchecked(state: &mut State, op: &Op) -> Result<(), i32> {
    state.apply(op)
}

impl FlushTarget<u32> for ModelXen {
    fn mmu_update(&mut self, reqs: &[MmuUpdate], pdone: &mut u32) -> i32 {
        assert_eq!(*pdone, 0, "pdone is cleared before the call");
        assert!(!reqs.is_empty());
        self.calls.push(Recorded::MmuUpdate(reqs.to_vec()));
        self.run_mmu_update(reqs, pdone)
    }

    fn mmuext_op(&mut self, ops: &[MmuextOp], pdone: &mut u32) -> i32 {
        assert_eq!(*pdone, 0, "pdone is cleared before the call");
        assert!(!ops.is_empty());
        self.calls.push(Recorded::Mmuext(ops.to_vec()));
        self.run_mmuext(ops, pdone)
    }

    fn update_va_mapping(&mut self, va: u32, pte: u64, flags: u32) -> i32 {
        self.calls
            .push(Recorded::UpdateVaMapping { va, pte, flags });
        self.run_uvm(va, pte, flags)
    }

    fn stack_switch(&mut self, ss: u32, esp: u32) -> i32 {
        self.calls.push(Recorded::StackSwitch { ss, esp });
        self.run_stack(ss, esp)
    }

    fn multicall(&mut self, calls: &mut Multicall<'_>) -> i32 {
        assert!(
            calls.len() >= 2,
            "a single entry is issued as a direct hypercall"
        );
        let entries = calls.entries().to_vec();
        let mut decoded = Vec::new();
        let mut pdones = Vec::new();
        for (j, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.result as i32,
                mmu_batch::NOT_RUN,
                "results are preset"
            );
            let call = calls
                .decode(j)
                .unwrap_or_else(|| panic!("entry {j} does not decode: {entry:?}"));
            let (rec, pdone) = match call {
                Call::MmuUpdate {
                    reqs,
                    pdone,
                    foreigndom,
                } => {
                    assert_eq!(foreigndom, u32::from(DOMID_SELF));
                    assert_eq!(
                        entry.args[0],
                        reqs.as_ptr().addr() as u32,
                        "args[0] points at the requests"
                    );
                    assert_eq!(entry.args[1] as usize, reqs.len());
                    (Recorded::MmuUpdate(reqs.to_vec()), pdone)
                }
                Call::MmuextOp {
                    ops,
                    pdone,
                    foreigndom,
                } => {
                    assert_eq!(foreigndom, u32::from(DOMID_SELF));
                    assert_eq!(
                        entry.args[0],
                        ops.as_ptr().addr() as u32,
                        "args[0] points at the ops"
                    );
                    assert_eq!(entry.args[1] as usize, ops.len());
                    (Recorded::Mmuext(ops.to_vec()), pdone)
                }
                Call::UpdateVaMapping { va, pte, flags } => {
                    (Recorded::UpdateVaMapping { va, pte, flags }, false)
                }
                Call::StackSwitch { ss, esp } => (Recorded::StackSwitch { ss, esp }, false),
            };
            let count = match &rec {
                Recorded::MmuUpdate(r) => r.len(),
                Recorded::Mmuext(o) => o.len(),
                _ => 1,
            };
            assert!(count >= 1);
            assert_eq!(
                pdone,
                count > 1,
                "a pdone pointer exactly for entries of several requests"
            );
            assert!(
                count == 1 || j + 1 == entries.len(),
                "an entry that can stop half way is the last"
            );
            decoded.push(rec);
            pdones.push(pdone);
        }
        self.calls.push(Recorded::Multicall {
            entries: entries.clone(),
            calls: decoded.clone(),
            pdone: pdones.clone(),
        });

        let run = self
            .fault_next_multicall
            .take()
            .map_or(entries.len(), |k| k % entries.len());
        for (j, rec) in decoded.iter().enumerate().take(run) {
            let mut done = 0;
            let result = match rec {
                Recorded::MmuUpdate(reqs) => self.run_mmu_update(reqs, &mut done),
                Recorded::Mmuext(ops) => self.run_mmuext(ops, &mut done),
                Recorded::UpdateVaMapping { va, pte, flags } => self.run_uvm(*va, *pte, *flags),
                Recorded::StackSwitch { ss, esp } => self.run_stack(*ss, *esp),
                Recorded::Multicall { .. } => unreachable!(),
            };
            calls.set_result(j, result);
            if pdones[j] {
                assert!(calls.write_done(j, done));
            } else {
                assert!(!calls.write_done(j, done));
            }
            // A base switch leaves the old base's last reference to be
            // dropped by a continuation (`old_guest_table`, `do_mmuext_op`
            // in Xen's mm.c), which in a multicall rewrites the entry's
            // arguments (null ops, MMU_UPDATE_PREEMPTED, null pdone, the
            // result in place of foreigndom) and leaves them so: the queue
            // must lay every argument out again before it reuses an entry.
            if let Recorded::Mmuext(ops) = rec {
                if ops.iter().any(|op| op.cmd == MMUEXT_NEW_BASEPTR) {
                    let args = &mut calls.entries_mut()[j].args;
                    args[..4].copy_from_slice(&[0, 0x8000_0000, 0, result as u32]);
                }
            }
        }
        if run < entries.len() {
            let first = match &decoded[run] {
                Recorded::MmuUpdate(reqs) => id_of_pte(reqs[0].val.get()),
                Recorded::Mmuext(ops) => id_of_ext(&ops[0]),
                Recorded::UpdateVaMapping { pte, .. } => id_of_pte(*pte),
                Recorded::StackSwitch { ss, .. } => id_of_stack(*ss),
                Recorded::Multicall { .. } => unreachable!(),
            };
            self.rejected.insert(first);
            return -EFAULT;
        }
        0
    }

    fn failed(&mut self, failure: &Failure<u32>) {
        assert_eq!(
            id_of(&failure.op),
            failure.tag,
            "the failure carries the op's own tag"
        );
        assert!(
            !self.reported.iter().any(|f| f.tag == failure.tag),
            "op {} reported twice",
            failure.tag
        );
        match failure.cause {
            Cause::Refused => {
                assert_eq!(
                    self.refused.get(&failure.tag),
                    Some(&failure.errno),
                    "{failure:?}"
                )
            }
            Cause::BatchRejected => {
                assert!(self.rejected.contains(&failure.tag), "{failure:?}");
                assert_eq!(failure.errno, EFAULT);
            }
            Cause::NotRun => panic!("the model runs what it is given: {failure:?}"),
        }
        self.reported.push(*failure);
    }
}

/// Convenience constructors for tests.
pub fn write(addr: u64, id: u32, low: u64, mode: PteWrite, poison: bool) -> Op {
    Op::pte_write(addr, pte_value(id, low, poison), mode)
}

// ---------------------------------------------------------------------------
// The harness: drives an `MmuBatch` and the model together, predicting from
// its own reading of the rules what the queue must do, and checking it.

use mmu_batch::{Barrier, Failures, MmuBatch, SPLIT_RUN_MAX};

/// The merge rule, restated: a normal write replaces the write pushed just
/// before it if that one wrote the same entry.
pub fn predicted_replaces(later: &Op, earlier: &Op) -> bool {
    match (later, earlier) {
        (Op::MmuUpdate(l), Op::MmuUpdate(e)) => {
            l.command() == MMU_NORMAL_PT_UPDATE
                && (e.command() == MMU_NORMAL_PT_UPDATE || e.command() == MMU_PT_UPDATE_PRESERVE_AD)
                && l.machine_addr() == e.machine_addr()
        }
        _ => false,
    }
}

/// The drop rule, restated.
pub fn predicted_covered(earlier: &Op, later: &Op) -> bool {
    match (earlier, later) {
        (Op::Mmuext(e), Op::Mmuext(l)) => match l.cmd {
            MMUEXT_TLB_FLUSH_ALL => [
                MMUEXT_TLB_FLUSH_LOCAL,
                MMUEXT_INVLPG_LOCAL,
                MMUEXT_TLB_FLUSH_ALL,
                MMUEXT_INVLPG_ALL,
            ]
            .contains(&e.cmd),
            MMUEXT_TLB_FLUSH_LOCAL => {
                [MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_INVLPG_LOCAL].contains(&e.cmd)
            }
            _ => false,
        },
        _ => false,
    }
}

fn is_full_flush(op: &Op) -> bool {
    matches!(op, Op::Mmuext(o) if o.cmd == MMUEXT_TLB_FLUSH_LOCAL || o.cmd == MMUEXT_TLB_FLUSH_ALL)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mmu,
    Ext,
    Uvm,
    Stack,
}

fn kind(op: &Op) -> Kind {
    match op {
        Op::MmuUpdate(_) => Kind::Mmu,
        Op::Mmuext(_) => Kind::Ext,
        Op::UpdateVaMapping { .. } => Kind::Uvm,
        Op::StackSwitch { .. } => Kind::Stack,
    }
}

/// The packing rules, restated: the request ids of each entry of each
/// hypercall for a failure-free flush of `items` (id, kind, replaced the
/// write before it).
fn reference_pack(items: &[(u32, Kind, bool)]) -> Vec<Vec<Vec<u32>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let mut call = Vec::new();
        'call: while i < items.len() {
            let k = items[i].1;
            let mut j = i + 1;
            // update_va_mapping and stack_switch entries are always alone.
            if k != Kind::Uvm && k != Kind::Stack {
                while j < items.len() && items[j].1 == k {
                    j += 1;
                }
            }
            let run = j - i;
            if run > 1 && (run > SPLIT_RUN_MAX || j == items.len()) {
                call.push(items[i..j].iter().map(|it| it.0).collect());
                i = j;
                break 'call;
            }
            for _ in 0..run {
                call.push(vec![items[i].0]);
                let merged = items[i].2;
                i += 1;
                if merged {
                    break 'call;
                }
            }
        }
        out.push(call);
    }
    out
}

fn ids_of_recorded(rec: &Recorded) -> Vec<Vec<u32>> {
    match rec {
        Recorded::MmuUpdate(reqs) => vec![reqs.iter().map(|r| id_of_pte(r.val.get())).collect()],
        Recorded::Mmuext(ops) => vec![ops.iter().map(id_of_ext).collect()],
        Recorded::UpdateVaMapping { pte, .. } => vec![vec![id_of_pte(*pte)]],
        Recorded::StackSwitch { ss, .. } => vec![vec![id_of_stack(*ss)]],
        Recorded::Multicall { calls, .. } => calls.iter().flat_map(ids_of_recorded).collect(),
    }
}

#[derive(Debug)]
pub struct Harness<const N: usize> {
    pub batch: MmuBatch<u32, N>,
    pub xen: ModelXen,
    /// Ids pushed since the queue was last emptied.
    pub fill: Vec<u32>,
    /// Ids a later full flush covered.
    pub dropped: BTreeSet<u32>,
    pub predicted_merges: u64,
    pub predicted_drops: u64,
    /// Lazy mode as the test drove it.
    pub lazy: bool,
    /// Flushes checked, and of those failure-free ones whose packing was
    /// compared with the reference.
    pub flushes_checked: usize,
    pub packings_checked: usize,
    /// `counters().flushes` right after each push, by id: while an op is
    /// still queued the count must not have grown past it (the shadow
    /// cache's `Host::flush_count` rule: a copy's source may change once
    /// the count has grown, every op queued before then having reached
    /// Xen).
    pub flushes_at_push: Vec<u64>,
}

impl<const N: usize> Harness<N> {
    pub fn new() -> Self {
        Self {
            batch: MmuBatch::new(),
            xen: ModelXen::new(),
            fill: Vec::new(),
            dropped: BTreeSet::new(),
            predicted_merges: 0,
            predicted_drops: 0,
            lazy: false,
            flushes_checked: 0,
            packings_checked: 0,
            flushes_at_push: Vec::new(),
        }
    }

    pub fn next_id(&self) -> u32 {
        self.xen.script.len() as u32
    }

    /// Pushes `op` (whose id must be [`next_id`](Self::next_id)).
    pub fn push(&mut self, op: Op) -> Result<(), Failures<u32>> {
        let id = id_of(&op);
        assert_eq!(id, self.next_id(), "ops carry consecutive ids");
        let capacity_flush = self.fill.len() == N;
        let flushed_fill = if capacity_flush {
            std::mem::take(&mut self.fill)
        } else {
            Vec::new()
        };
        let link = self
            .fill
            .last()
            .is_some_and(|&prev| predicted_replaces(&op, &self.xen.script[prev as usize]));
        if is_full_flush(&op) {
            for &e in &self.fill {
                if !self.dropped.contains(&e)
                    && predicted_covered(&self.xen.script[e as usize], &op)
                {
                    self.dropped.insert(e);
                    self.predicted_drops += 1;
                }
            }
        }
        self.predicted_merges += u64::from(link);

        let (calls, reports) = (self.xen.calls.len(), self.xen.reported.len());
        // Page-table writes go in through `push_pte_write` every other
        // time (the ROM's way for its shadow writes), which must behave as
        // `push` exactly.
        let mode = match op {
            Op::MmuUpdate(u) if u.command() == MMU_NORMAL_PT_UPDATE => Some(PteWrite::Normal),
            Op::MmuUpdate(u) if u.command() == MMU_PT_UPDATE_PRESERVE_AD => {
                Some(PteWrite::PreserveAd)
            }
            _ => None,
        };
        // Every fourth, a normal write the queue only appends goes in as
        // the ROM's assembly makes it (`append_by_layout`: the request and
        // the slot's tag alone), so that the ops after it meet the slots a
        // plain run leaves as they stand.
        let result = match (op, mode) {
            (Op::MmuUpdate(u), Some(PteWrite::Normal))
                if id % 4 == 0 && self.batch.appends_write(u.machine_addr()) =>
            {
                append_by_layout(&mut self.batch, u.machine_addr(), u64::from(u.val), id);
                Ok(())
            }
            (Op::MmuUpdate(u), Some(mode)) if id % 2 == 0 => {
                let (maddr, val) = (u.machine_addr(), u64::from(u.val));
                self.batch
                    .push_pte_write(maddr, val, mode, id, &mut self.xen)
            }
            _ => self.batch.push(op, id, &mut self.xen),
        };
        // The new op joins the script only now: the capacity flush ran the
        // ops before it.
        self.xen.script.push(op);
        self.xen.links.push(link);
        // By id (a test may add ops to the script without a push).
        let at = id as usize;
        if self.flushes_at_push.len() <= at {
            self.flushes_at_push.resize(at + 1, u64::MAX);
        }
        self.flushes_at_push[at] = self.batch.counters().flushes;
        if capacity_flush {
            self.check_flush(&flushed_fill, calls, reports, &result, 1);
        } else {
            assert_eq!(
                self.xen.calls.len(),
                calls,
                "a push with room issues nothing"
            );
            assert!(result.is_ok());
        }
        self.fill.push(id);
        self.check_queue();
        result
    }

    pub fn enter_lazy(&mut self) {
        let calls = self.xen.calls.len();
        self.batch.enter_lazy();
        self.lazy = true;
        assert_eq!(self.xen.calls.len(), calls);
        self.check_queue();
    }

    pub fn leave_lazy(&mut self) -> Result<(), Failures<u32>> {
        self.lazy = false;
        self.flushing(true, |b, x| b.leave_lazy(x))
    }

    pub fn barrier(&mut self, reason: Barrier) -> Result<(), Failures<u32>> {
        self.flushing(true, |b, x| b.barrier(reason, x))
    }

    pub fn flush(&mut self) -> Result<(), Failures<u32>> {
        self.flushing(true, |b, x| b.flush(x))
    }

    pub fn end_of_call(&mut self) -> Result<(), Failures<u32>> {
        let flushes = !self.lazy;
        self.flushing(flushes, |b, x| b.end_of_call(x))
    }

    fn flushing(
        &mut self,
        flushes: bool,
        call: impl FnOnce(&mut MmuBatch<u32, N>, &mut ModelXen) -> Result<(), Failures<u32>>,
    ) -> Result<(), Failures<u32>> {
        let (calls, reports) = (self.xen.calls.len(), self.xen.reported.len());
        let result = call(&mut self.batch, &mut self.xen);
        if flushes {
            let fill = std::mem::take(&mut self.fill);
            self.check_flush(&fill, calls, reports, &result, 0);
        } else {
            assert_eq!(self.xen.calls.len(), calls, "lazy mode: nothing issued");
            assert!(result.is_ok());
            self.check_queue();
        }
        result
    }

    fn superseded(&self, id: u32, fill: &[u32]) -> bool {
        self.xen.links.get(id as usize + 1) == Some(&true) && fill.contains(&(id + 1))
    }

    /// What the queue must hold between flushes.
    fn check_queue(&self) {
        assert_eq!(self.batch.is_lazy(), self.lazy, "lazy mode");
        let flushes = self.batch.counters().flushes;
        for &id in &self.fill {
            assert_eq!(
                self.flushes_at_push.get(id as usize),
                Some(&flushes),
                "op {id} is still queued, but the flush count grew past its push's"
            );
        }
        assert_eq!(
            self.batch.len(),
            self.fill.len(),
            "one slot per push since the last flush"
        );
        let live: Vec<u32> = self
            .fill
            .iter()
            .copied()
            .filter(|&id| !self.dropped.contains(&id) && !self.superseded(id, &self.fill))
            .collect();
        let pending: Vec<u32> = self
            .batch
            .pending()
            .map(|(op, tag)| {
                assert_eq!(id_of(&op), tag);
                tag
            })
            .collect();
        assert_eq!(pending, live, "pending ops");
        let c = self.batch.counters();
        assert_eq!(c.merges, self.predicted_merges, "merges");
        assert_eq!(c.dropped_flushes, self.predicted_drops, "dropped flushes");
        assert_eq!(
            c.hypercalls as usize,
            self.xen.calls.len(),
            "hypercall counter"
        );
    }

    /// What must hold after a flush of the ops `fill`.
    /// `queued_after` is 1 for the flush of a full queue inside a push (the
    /// pushed op is queued after it), else 0.
    fn check_flush(
        &mut self,
        fill: &[u32],
        calls: usize,
        reports: usize,
        result: &Result<(), Failures<u32>>,
        queued_after: usize,
    ) {
        self.flushes_checked += 1;
        assert_eq!(
            self.batch.len(),
            queued_after,
            "a flush leaves nothing queued"
        );
        let applied: BTreeSet<u32> = self
            .xen
            .attempts
            .iter()
            .filter(|a| a.result.is_ok())
            .map(|a| a.id)
            .collect();
        let attempted: BTreeSet<u32> = self.xen.attempts.iter().map(|a| a.id).collect();
        let reported: BTreeSet<u32> = self.xen.reported.iter().map(|f| f.tag).collect();

        // Every op is accounted for: applied, reported failed, covered by a
        // later full flush, or replaced by a write that took effect.
        let merged_away = |mut id: u32| loop {
            if attempted.contains(&id) || !self.superseded(id, fill) {
                return false;
            }
            id += 1;
            if applied.contains(&id) {
                return true;
            }
        };
        for &id in fill {
            assert!(
                applied.contains(&id)
                    || reported.contains(&id)
                    || self.dropped.contains(&id)
                    || merged_away(id),
                "op {id} ({:?}) lost",
                self.xen.script[id as usize]
            );
            assert!(
                !self.dropped.contains(&id) || !attempted.contains(&id),
                "dropped op {id} issued"
            );
        }
        // Every refusal is reported, and every report is of this flush.
        for id in self.xen.refused.keys() {
            assert!(reported.contains(id), "refusal of op {id} not reported");
        }
        let new_reports = &self.xen.reported[reports..];
        for f in new_reports {
            assert!(
                fill.contains(&f.tag),
                "report of op {} outside this flush",
                f.tag
            );
        }
        match result {
            Ok(()) => assert!(new_reports.is_empty(), "failures but Ok"),
            Err(failures) => {
                assert_eq!(Some(&failures.first), new_reports.first());
                assert_eq!(failures.count as usize, new_reports.len());
            }
        }
        // Xen's tables are the sequential result minus the failed ops.
        let flushed = self.xen.script.len() - queued_after;
        assert_eq!(
            self.xen.state,
            self.xen.expected_state(flushed),
            "state after flush"
        );

        let c = self.batch.counters();
        assert_eq!(
            c.hypercalls as usize,
            self.xen.calls.len(),
            "hypercall counter"
        );
        assert_eq!(
            c.failures as usize,
            self.xen.reported.len(),
            "failure counter"
        );
        let multicalls = self
            .xen
            .calls
            .iter()
            .filter(|r| matches!(r, Recorded::Multicall { .. }))
            .count();
        assert_eq!(c.multicalls as usize, multicalls, "multicall counter");

        // Failure-free: the exact hypercalls the packing rules give.
        if new_reports.is_empty() {
            self.packings_checked += 1;
            let items: Vec<(u32, Kind, bool)> = fill
                .iter()
                .copied()
                .filter(|&id| !self.dropped.contains(&id) && !self.superseded(id, fill))
                .map(|id| {
                    let merged = self.xen.links[id as usize];
                    (id, kind(&self.xen.script[id as usize]), merged)
                })
                .collect();
            let issued: Vec<Vec<Vec<u32>>> = self.xen.calls[calls..]
                .iter()
                .map(ids_of_recorded)
                .collect();
            assert_eq!(issued, reference_pack(&items), "packing of {items:?}");
        }
    }
}

impl<const N: usize> Default for Harness<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The ROM's lazy write in assembly (entry.rs, `lazy_entry_update`), by
/// `MmuBatch::WRITE_SLOT`, where `appends_write(maddr)` said it may: the
/// request at `reqs[len]`, the tag into `slots[len]` and nothing else of
/// the slot, one more push counted, `len` one more.
pub fn append_by_layout<Tag: Copy, const N: usize>(
    batch: &mut MmuBatch<Tag, N>,
    maddr: u64,
    val: u64,
    tag: Tag,
) {
    assert!(batch.appends_write(maddr));
    let l = MmuBatch::<Tag, N>::WRITE_SLOT;
    let base = (batch as *mut MmuBatch<Tag, N>).cast::<u8>();
    // SAFETY: the offsets are the batch's own (`WRITE_SLOT`), `len` is
    // below the capacity (`appends_write` said so), and every write is of
    // a field's own type at its offset (unaligned writes: the layout is
    // not assumed aligned here).
    unsafe {
        let len = base.add(l.len).cast::<usize>().read_unaligned();
        assert!(len < N);
        let words = [
            maddr as u32,
            (maddr >> 32) as u32,
            val as u32,
            (val >> 32) as u32,
        ];
        base.add(l.reqs + len * 16)
            .cast::<[u32; 4]>()
            .write_unaligned(words);
        let slot = base.add(l.slots + len * l.slot_size);
        slot.add(l.tag_at).cast::<Tag>().write_unaligned(tag);
        let pushes = base.add(l.pushes).cast::<u64>();
        pushes.write_unaligned(pushes.read_unaligned() + 1);
        base.add(l.len).cast::<usize>().write_unaligned(len + 1);
    }
}
