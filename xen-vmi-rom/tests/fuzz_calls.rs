//! Fuzzing the ROM's VMI page-table calls (`xen_vmi_rom::mmu_calls`, the
//! logic behind the ROM's SetPxE, SetPxELong, UpdatePxE, UpdatePxELong,
//! AllocatePage, ReleasePage, SetLinearMapping, SetLazyMode, FlushTLB and
//! InvalPage) with random sequences: mostly a kernel building and
//! switching address spaces with the odd wrong call, some pure noise.
//! The calls run against a recording backend: a real `mmu-batch` queue
//! whose flushes feed a model of Xen's page-table memory
//! (tests/support). docs/fuzzing.md has the figures and the long run.
//!
//! Invariants, after every call:
//! - no panic (in the calls, the shadow cache or the queue);
//! - the verdict is the one the ABI gives the arguments, worked out here
//!   independently: an invalid argument is rejected with a line naming the
//!   call and the argument, with a crash where the ROM cannot go on (the
//!   sequence then stops), and a valid call is not rejected;
//! - a store lands on the entry the kernel addressed (resolved here
//!   independently through paging off, the linear slots or the kernel's
//!   tables), and nothing else of the kernel's memory changes but A/D bits;
//! - at every flush point (the queue empty): every op pushed reached Xen in
//!   order (an op missing only where a later one replaced or covered it),
//!   Xen's model fed by the flushes equals one fed at each push, and it
//!   holds, for every cached address space, the shadow of the kernel's
//!   tables computed independently (tests/support `check`);
//! - the queue is lazy exactly in a lazy mode (MMU or CPU).

mod support;
use support::*;

use std::collections::HashMap;

use mmu_batch::{
    Barrier, Call as XenCall, Failure, FlushTarget, MmuBatch, Multicall, Op, PteWrite,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use vmi_abi::flags::{
    VMI_FLUSH_GLOBAL, VMI_FLUSH_TLB, VMI_LAZY_CPU, VMI_LAZY_MMU, VMI_LAZY_NONE, VMI_PAGE_CLONE,
    VMI_PAGE_L1_PAE as VMI_PAGE_L1, VMI_PAGE_L2_PAE as VMI_PAGE_L2, VMI_PAGE_PD, VMI_PAGE_PDP,
    VMI_PAGE_ZEROED,
};
use xen_abi::xen::{MmuUpdate, MmuextOp};
use xen_vmi_rom::mmu_calls::{
    self, Call, CallHost, CallState, Outcome, Paging, Problem, Rejection, Sink,
};
use xen_vmi_rom::shadow_cache::{
    Access, Host, Note, ShadowCache, ShadowError, Tag, ENTRIES, KNOWN_ENTRIES, KNOWN_SLOTS,
};

/// Where the kernel maps its RAM (Linux's PAGE_OFFSET), slot 0.
const DIRECT_MAP: u32 = 0xC000_0000;
const DIRECT_PAGES: u32 = 0x3000;
/// The window the kernel maps page tables at through its own tables
/// (PDPT slot 1, directory entry 5, table entries 0..8).
/// (Frames the random entries do not write: the window stays up.)
const WINDOW_L2: u32 = 0x2110;
const WINDOW_L1: u32 = 0x2010;
const WINDOW_PDE: u32 = 5;
const QUEUE: usize = 8;

fn window_va(t: u32) -> u32 {
    (1 << 30) | (WINDOW_PDE << 21) | (t << 12)
}

fn is_rom(kfn: u64) -> bool {
    (0xC0..0xD0).contains(&kfn)
}

// ---------------------------------------------------------------------------
// The recording backend

/// The queue's way to Xen: each op as it arrives, into the model.
struct Deliver<'a> {
    model: &'a mut Model,
    delivered: &'a mut Vec<Op>,
}

impl Deliver<'_> {
    fn op(&mut self, op: Op) {
        self.model.apply(op);
        self.delivered.push(op);
    }
}

impl FlushTarget<Tag> for Deliver<'_> {
    fn mmu_update(&mut self, reqs: &[MmuUpdate], pdone: &mut u32) -> i32 {
        reqs.iter().for_each(|r| self.op(Op::MmuUpdate(*r)));
        *pdone = reqs.len() as u32;
        0
    }

    fn mmuext_op(&mut self, ops: &[MmuextOp], pdone: &mut u32) -> i32 {
        ops.iter().for_each(|o| self.op(Op::Mmuext(*o)));
        *pdone = ops.len() as u32;
        0
    }

    fn update_va_mapping(&mut self, _va: u32, _pte: u64, _flags: u32) -> i32 {
        panic!("the calls never map by address")
    }

    fn stack_switch(&mut self, _ss: u32, _esp: u32) -> i32 {
        panic!("the page-table calls never switch stacks")
    }

    fn multicall(&mut self, calls: &mut Multicall<'_>) -> i32 {
        for j in 0..calls.len() {
            let done = match calls.decode(j).expect("an entry the queue made") {
                XenCall::MmuUpdate { reqs, .. } => {
                    reqs.iter().for_each(|r| self.op(Op::MmuUpdate(*r)));
                    reqs.len()
                }
                XenCall::MmuextOp { ops, .. } => {
                    ops.iter().for_each(|o| self.op(Op::Mmuext(*o)));
                    ops.len()
                }
                XenCall::UpdateVaMapping { .. } | XenCall::StackSwitch { .. } => {
                    panic!("never queued by these calls")
                }
            };
            calls.write_done(j, done as u32);
            calls.set_result(j, 0);
        }
        0
    }

    fn failed(&mut self, failure: &Failure<Tag>) {
        panic!("the model refuses nothing, yet {:?} failed", failure.tag);
    }
}

struct Backend {
    /// The kernel's memory, the pool, the notes, and Xen as the queue's
    /// flushes left it.
    model: Model,
    /// Xen as it would be with every op applied when pushed.
    reference: Model,
    batch: Box<MmuBatch<Tag, QUEUE>>,
    /// Since the last flush point.
    pushed: Vec<Op>,
    delivered: Vec<Op>,
}

impl Backend {
    fn new(pool: usize) -> Self {
        Backend {
            model: Model::new(pool),
            reference: Model::new(0),
            batch: Box::new(MmuBatch::new()),
            pushed: Vec::new(),
            delivered: Vec::new(),
        }
    }

    fn target(&mut self) -> (&mut MmuBatch<Tag, QUEUE>, Deliver<'_>) {
        (
            &mut self.batch,
            Deliver {
                model: &mut self.model,
                delivered: &mut self.delivered,
            },
        )
    }
}

impl Host for Backend {
    fn guest_entry(&mut self, kfn: u32, index: usize) -> u64 {
        self.model.guest_entry(kfn, index)
    }

    fn set_guest_bits(&mut self, kfn: u32, index: usize, bits: u64) {
        self.model.set_guest_bits(kfn, index, bits)
    }

    fn machine_frame(&self, kfn: u64) -> Option<u64> {
        machine(kfn)
    }

    fn read_only_frame(&self, kfn: u64) -> bool {
        is_rom(kfn)
    }

    fn hole_frame(&self) -> u64 {
        HOLE
    }

    fn take_frame(&mut self) -> Option<u32> {
        self.model.pool.pop()
    }

    fn give_frame(&mut self, mfn: u32) {
        // Xen's rules hold at the time of the push (the unpin may still be
        // queued: the queue keeps the order).
        assert!(
            !self.reference.pinned.contains(&mfn),
            "frame {mfn:#x} given back while pinned"
        );
        assert!(
            self.reference.typed(mfn).is_none(),
            "frame {mfn:#x} given back while a page table"
        );
        assert!(
            !self.model.pool.contains(&mfn),
            "frame {mfn:#x} given back twice"
        );
        self.reference.xen.remove(&mfn);
        self.model.pool.push(mfn);
    }

    fn push(&mut self, op: Op, tag: Tag) {
        self.reference.apply(op);
        self.pushed.push(op);
        let (batch, mut target) = self.target();
        batch.push(op, tag, &mut target).expect("nothing refused");
    }

    // The queue's own way for a write, as the ROM's host takes it.
    fn push_pte_write(&mut self, maddr: u64, value: u64, tag: Tag) {
        let op = Op::pte_write(maddr, value, PteWrite::Normal);
        self.reference.apply(op);
        self.pushed.push(op);
        let (batch, mut target) = self.target();
        batch
            .push_pte_write(maddr, value, PteWrite::Normal, tag, &mut target)
            .expect("nothing refused");
    }

    fn note(&mut self, note: Note) {
        self.model.note(note)
    }

    fn scratch_frame(&self) -> u32 {
        SCRATCH
    }

    // A plain store, seen by both models at once: a copy from the scratch
    // still queued would then read what the reference (applied at the
    // push) did not, and the models would differ at the flush point.
    fn scratch_store(&mut self, index: usize, value: u64) {
        self.model.store_scratch(index, value);
        self.reference.store_scratch(index, value);
    }

    // The queue's own count, as the ROM's host answers it.
    fn flush_count(&self) -> u32 {
        self.batch.counters().flushes as u32
    }
}

impl CallHost for Backend {
    fn read_entry(&mut self, kfn: u32, index: usize) -> Option<u64> {
        machine(u64::from(kfn))?;
        assert!(index < ENTRIES);
        Some(self.model.guest_entry(kfn, index))
    }

    fn store_entry(&mut self, kfn: u32, offset: u32, value: u64, long: bool) -> bool {
        if machine(u64::from(kfn)).is_none() {
            return false;
        }
        assert!(!is_rom(u64::from(kfn)), "a store into the ROM's image");
        let size = if long { 8 } else { 4 };
        assert!(
            offset.is_multiple_of(size) && offset + size <= 4096,
            "a {size}-byte store at offset {offset:#x} leaves the frame"
        );
        let e = &mut self.model.guest_mut(kfn)[(offset / 8) as usize];
        *e = match (long, offset % 8) {
            (true, _) => value,
            (false, 0) => (*e & !0xFFFF_FFFF) | (value & 0xFFFF_FFFF),
            (false, _) => (*e & 0xFFFF_FFFF) | (value << 32),
        };
        true
    }

    fn prefetch(&mut self, kfn: u32) {
        assert!(machine(u64::from(kfn)).is_some());
    }

    fn shadow_entry(&mut self, mfn: u32, index: usize) -> u64 {
        self.reference.shadow(mfn)[index]
    }

    fn barrier(&mut self, reason: Barrier) {
        let (batch, mut target) = self.target();
        batch.barrier(reason, &mut target).expect("nothing refused");
    }

    fn end_of_call(&mut self) {
        let (batch, mut target) = self.target();
        batch.end_of_call(&mut target).expect("nothing refused");
    }

    fn queue_is_lazy(&self) -> bool {
        self.batch.is_lazy()
    }

    // The one-step update after a fault (`mmu_calls::fault_entry_update`)
    // ends its call as the ROM's queue would let it; the write itself goes
    // the trait's way (queued, then the end of the call), which
    // mmu-batch/tests/mapped_end.rs checks against the ROM's.
    fn mapped_write_ready(&self) -> bool {
        self.batch.is_idle()
    }

    fn appends_write(&self, entry_maddr: u64) -> bool {
        self.batch.appends_write(entry_maddr)
    }

    fn enter_lazy(&mut self) {
        self.batch.enter_lazy();
    }

    fn leave_lazy(&mut self) {
        let (batch, mut target) = self.target();
        batch.leave_lazy(&mut target).expect("nothing refused");
    }
}

// ---------------------------------------------------------------------------
// The sequences

/// An entry as the kernel addresses it.
#[derive(Clone, Copy, Debug)]
enum EntryRef {
    /// By physical address `phys`: through the direct map with paging on.
    Table { phys: u32 },
    /// Entry `index` of the table the kernel mapped in window page `t`.
    Window { t: u32, index: u32 },
    /// Any address.
    Raw(u32),
}

/// What the kernel's handler does after a page fault (`Step::Fault`).
#[derive(Clone, Copy, Debug)]
enum FaultUpdate {
    /// Nothing.
    None,
    /// A write fault's usual answer: RW, D and A added to the entry, stored
    /// natively, then UpdatePxELong.
    Protect,
    /// SetPxELong of `value`.
    Set { value: u64 },
    /// `value` stored natively, then UpdatePxELong.
    Update { value: u64 },
}

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Lazy MMU mode (if not in a lazy mode already), then SetPxELong of
    /// four entries of one page table in a row from entry `first` (or the
    /// kernel's own store and UpdatePxELong: `update`), as a batch of
    /// updates comes (the lazy path's case); expanded into those steps.
    Run {
        table: u32,
        first: u32,
        values: [u64; 4],
        update: bool,
        /// AllocatePage of the table and [`Step::Spares`] first.
        spares: bool,
    },
    /// Twice `KNOWN_SLOTS` spare page tables announced and released in a
    /// row (AllocatePage, ReleasePage): every table's known frame given
    /// up, so that the lazy path (`quick_entry_update`, which declines a
    /// known frame's table) meets plain tables.
    Spares,
    /// SetPxE of one half (`high`: the upper 4 bytes).
    SetPxE {
        entry: EntryRef,
        value: u32,
        high: bool,
    },
    SetPxELong {
        entry: EntryRef,
        value: u64,
    },
    /// The kernel writes `value` natively (if given and the address is
    /// one), then UpdatePxE / UpdatePxELong.
    Update {
        entry: EntryRef,
        value: Option<u64>,
        long: bool,
    },
    Allocate {
        pfn: u32,
        flags: u32,
        clone_pfn: u32,
        start: u32,
        count: u32,
    },
    Release {
        pfn: u32,
        flags: u32,
    },
    Linear {
        slot: u32,
        va: u32,
        pages: u32,
        pfn: u32,
    },
    Lazy {
        mode: u32,
    },
    Flush {
        flags: u32,
    },
    Inval {
        va: u32,
    },
    /// SetCR3 (the ROM's load of the address space, not part of the
    /// calls moved: done here as the ROM does it).
    SetCr3 {
        cr3: u32,
    },
    Paging {
        on: bool,
    },
    /// A page fault at `va` the shadow answers as the kernel's in one step
    /// (`ShadowCache::kernels_fault`, with CR0.WP set); if it does, the
    /// kernel's handler updates the entry that maps `va` (through the
    /// direct map) as `update` says.
    Fault {
        va: u32,
        write: bool,
        user: bool,
        update: FaultUpdate,
    },
    /// Maps table frame `table` in window page `t` (through the calls),
    /// then reloads CR3 so the PDPT entry is read.
    MapWindow {
        t: u32,
        table: u32,
    },
}

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const A: u64 = 0x20;
const D: u64 = 0x40;
const PS: u64 = 0x80;

fn table_frames() -> Vec<u32> {
    let mut v: Vec<u32> = L1S.to_vec();
    v.extend(L2S);
    v.extend(CR3S.iter().map(|c| c >> 12));
    v
}

fn pte_value() -> BoxedStrategy<u64> {
    let frame = prop::sample::select({
        let mut v: Vec<u64> = DATA.to_vec();
        v.extend(table_frames().into_iter().map(u64::from));
        v
    });
    prop_oneof![
        2 => Just(0u64),
        8 => (frame, any::<u16>()).prop_map(|(f, bits)| {
            (f << 12) | P | (u64::from(bits) & (RW | US | A | D | 0x100 | 0x200))
        }),
    ]
    .boxed()
}

/// An entry of a [`Step::Run`]: mostly a usual user page (present and
/// accessed, dirty when writable, of the kernel's RAM) or none, else any
/// page-table entry value.
fn run_value() -> BoxedStrategy<u64> {
    prop_oneof![
        6 => (0x100u64..0x3000, any::<bool>())
            .prop_map(|(f, w)| (f << 12) | P | US | A | if w { RW | D } else { 0 }),
        1 => Just(0u64),
        3 => pte_value(),
    ]
    .boxed()
}

fn pde_value() -> BoxedStrategy<u64> {
    prop_oneof![
        2 => Just(0u64),
        8 => (prop::sample::select(L1S.to_vec()), any::<u8>())
            .prop_map(|(f, bits)| (u64::from(f) << 12) | P | (u64::from(bits) & (RW | US | A))),
        1 => Just((0x1000u64 << 12) | P | RW | PS),
    ]
    .boxed()
}

fn pdpte_value() -> BoxedStrategy<u64> {
    prop_oneof![
        1 => Just(0u64),
        6 => prop::sample::select(L2S.to_vec()).prop_map(|f| (u64::from(f) << 12) | P),
    ]
    .boxed()
}

/// An entry the kernel writes and a value of the table's kind (now and
/// then any value at all).
fn entry_write() -> impl Strategy<Value = (EntryRef, u64)> {
    let index = prop::sample::select(vec![0u32, 1, 2, 3, 5, 7, 423, 424, 510, 511]);
    let table = |frames: Vec<u32>, values: BoxedStrategy<u64>| {
        (prop::sample::select(frames), index.clone(), values).prop_map(|(kfn, i, v)| {
            (
                EntryRef::Table {
                    phys: kfn * 4096 + i * 8,
                },
                v,
            )
        })
    };
    let pdpt = (0..CR3S.len(), 0..4u32, pdpte_value()).prop_map(|(c, slot, v)| {
        (
            EntryRef::Table {
                phys: CR3S[c] + slot * 8,
            },
            v,
        )
    });
    // The window's first pages map L1S[0], L1S[1], L2S[0] and the PDPT
    // frame of CR3S[0] and CR3S[1].
    let window = (
        0..4u32,
        index.clone(),
        pte_value(),
        pde_value(),
        pdpte_value(),
        0..8u32,
    )
        .prop_map(|(t, index, pte, pde, pdpte, slot)| match t {
            0 | 1 => (EntryRef::Window { t, index }, pte),
            2 => (EntryRef::Window { t, index }, pde),
            _ => (EntryRef::Window { t, index: slot }, pdpte),
        });
    prop_oneof![
        60 => table(L1S.to_vec(), pte_value()),
        30 => table(L2S.to_vec(), pde_value()),
        20 => pdpt,
        24 => window,
        2 => (any::<u32>(), any::<u64>()).prop_map(|(a, v)| (EntryRef::Raw(a), v)),
        2 => (prop::sample::select(vec![0xC1u32, 0xA5, 0x3000, 0x1000]), 0..512u32, any::<u64>())
            .prop_map(|(kfn, i, v)| (EntryRef::Table { phys: kfn * 4096 + i * 8 }, v)),
        3 => (prop::sample::select(table_frames()), index, any::<u64>())
            .prop_map(|(kfn, i, v)| (EntryRef::Table { phys: kfn * 4096 + i * 8 }, v)),
    ]
}

fn plausible_step() -> impl Strategy<Value = Step> {
    let pfn = prop::sample::select(table_frames());
    let level = prop::sample::select(vec![
        VMI_PAGE_L1,
        VMI_PAGE_L2,
        VMI_PAGE_L1,
        VMI_PAGE_L2,
        VMI_PAGE_PDP,
    ]);
    prop_oneof![
        10 => entry_write().prop_map(|(entry, value)| Step::SetPxELong { entry, value }),
        3 => (entry_write(), any::<bool>())
            .prop_map(|((entry, v), high)| Step::SetPxE { entry, value: if high { (v >> 32) as u32 } else { v as u32 }, high }),
        4 => (entry_write(), any::<bool>(), prop::bool::weighted(0.8))
            .prop_map(|((entry, v), write, long)| Step::Update { entry, value: write.then_some(v), long }),
        6 => (pfn.clone(), level).prop_map(|(pfn, flags)| Step::Allocate { pfn, flags, clone_pfn: 0, start: 0, count: 0 }),
        // (Now and then a range past the table's end.)
        1 => (pfn.clone(), prop::sample::select(CR3S.to_vec()), 0..4u32, prop::sample::select(vec![0u32, 1, 2, 3, 4, 510]))
            .prop_map(|(pfn, cr3, start, count)| Step::Allocate { pfn, flags: VMI_PAGE_L2 | VMI_PAGE_CLONE, clone_pfn: cr3 >> 12, start, count }),
        2 => (pfn, prop::sample::select(vec![VMI_PAGE_L1, VMI_PAGE_L2])).prop_map(|(pfn, flags)| Step::Release { pfn, flags }),
        1 => (1..3u32, 0..8u32, prop::sample::select(table_frames()))
            .prop_map(|(slot, t, pfn)| Step::Linear { slot, va: 0xFF80_0000 + t * 4096, pages: 1, pfn }),
        1 => Just(Step::Linear { slot: 0, va: DIRECT_MAP, pages: DIRECT_PAGES, pfn: 0 }),
        3 => prop::sample::select(vec![VMI_LAZY_MMU, VMI_LAZY_NONE, VMI_LAZY_CPU, VMI_LAZY_NONE]).prop_map(|mode| Step::Lazy { mode }),
        2 => prop::sample::select(vec![VMI_FLUSH_TLB, VMI_FLUSH_TLB | VMI_FLUSH_GLOBAL]).prop_map(|flags| Step::Flush { flags }),
        2 => (0..4u32, prop::sample::select(vec![0u32, 5, 423, 424, 511]), 0..8u32)
            .prop_map(|(s, d, t)| Step::Inval { va: (s << 30) | (d << 21) | (t << 12) }),
        3 => prop::sample::select(CR3S.to_vec()).prop_map(|cr3| Step::SetCr3 { cr3 }),
        1 => prop::bool::weighted(0.7).prop_map(|on| Step::Paging { on }),
        3 => (0..8u32, prop::sample::select(table_frames())).prop_map(|(t, table)| Step::MapWindow { t, table }),
        6 => fault_step(),
        1 => Just(Step::Spares),
        3 => (prop::sample::select(L1S.to_vec()), 0..509u32, [run_value(), run_value(), run_value(), run_value()], any::<bool>(), any::<bool>())
            .prop_map(|(table, first, values, update, spares)| Step::Run { table, first, values, update, spares }),
    ]
}

/// Frames [`Step::Spares`] announces as page tables (the kernel's RAM, no
/// other step's).
const SPARES: std::ops::Range<u32> = 0x2300..0x2300 + 2 * KNOWN_SLOTS as u32;

/// A page fault, mostly at an address the steps map, mostly followed by
/// the handler's update of its entry with a usual entry (a user page of
/// the kernel's RAM, present and accessed, dirty when writable), now and
/// then an odd one.
fn fault_step() -> impl Strategy<Value = Step> {
    let usual = (0x100u64..0x3000, any::<bool>())
        .prop_map(|(frame, rw)| (frame << 12) | P | US | A | if rw { RW | D } else { 0 });
    let value = prop_oneof![4 => usual, 1 => any::<u64>()];
    let update = prop_oneof![
        1 => Just(FaultUpdate::None),
        3 => Just(FaultUpdate::Protect),
        3 => value.clone().prop_map(|value| FaultUpdate::Set { value }),
        2 => value.prop_map(|value| FaultUpdate::Update { value }),
    ];
    // Half of them in the window's table past the pages the steps use
    // (present in every root: faults there meet the remembered directory
    // entry), half anywhere the loaded tables link a table.
    let va = prop_oneof![
        (8..24u32).prop_map(window_va),
        (0..4u32, prop::sample::select(INDICES.to_vec()), 0..4u32)
            .prop_map(|(s, d, t)| (s << 30) | ((d as u32) << 21) | (t << 12)),
    ];
    (va, any::<bool>(), any::<bool>(), update).prop_map(|(va, write, user, update)| Step::Fault {
        va,
        write,
        user,
        update,
    })
}

/// Any call with any arguments.
fn noise_step() -> impl Strategy<Value = Step> {
    (
        0..12u8,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(call, a, b, c, d, v)| match call {
            0 => Step::SetPxE {
                entry: EntryRef::Raw(a),
                value: b,
                high: false,
            },
            1 => Step::SetPxELong {
                entry: EntryRef::Raw(a),
                value: v,
            },
            2 => Step::Update {
                entry: EntryRef::Raw(a),
                value: None,
                long: b & 1 != 0,
            },
            3 => Step::Allocate {
                pfn: a,
                flags: b,
                clone_pfn: c,
                start: d,
                count: (v >> 32) as u32,
            },
            4 => Step::Release { pfn: a, flags: b },
            5 => Step::Linear {
                slot: a % 8,
                va: b,
                pages: c,
                pfn: d,
            },
            6 => Step::Lazy { mode: a % 5 },
            7 => Step::Flush { flags: a },
            8 => Step::Inval { va: a },
            9 => Step::SetCr3 { cr3: a },
            10 => Step::Allocate {
                pfn: a % 0x3100,
                flags: b & 0xFF,
                clone_pfn: c % 0x3100,
                start: d % 600,
                count: (v as u32) % 600,
            },
            _ => Step::Linear {
                slot: a % 5,
                va: b & !0xFFF,
                pages: c % 0x10_0000,
                pfn: d,
            },
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![100 => plausible_step(), 1 => noise_step()]
}

/// A page table filled entry after entry from its first (a fork's copy of
/// a table, an exec's mapping of its image): `count` SetPxELong of pages
/// from `first`.
fn fill_steps() -> impl Strategy<Value = Vec<Step>> {
    (
        prop::sample::select(L1S.to_vec()),
        2..14u32,
        0x1000u64..0x1100,
    )
        .prop_map(|(kfn, count, first)| {
            (0..count)
                .map(|j| Step::SetPxELong {
                    entry: EntryRef::Table {
                        phys: kfn * 4096 + j * 8,
                    },
                    value: ((first + u64::from(j)) << 12) | P | US | A,
                })
                .collect()
        })
}

/// A handler's run of faults in one table, as page_fault's: writes at
/// consecutive pages of the window's table (linked in every root), each
/// fault followed by SetPxELong of its entry. After the first the
/// one-step path's page memo (`CallState::fault_linear`) and the table's
/// `FaultPath::update_kfn` hold, so SetPxELong's path in assembly
/// ([`rom_set_pxe_long`]) takes the next ones; an odd value now and then
/// is one its write leaves to Rust after the store.
fn fault_run_steps() -> impl Strategy<Value = Vec<Step>> {
    let usual = (0x100u64..0x3000, any::<bool>())
        .prop_map(|(frame, rw)| (frame << 12) | P | US | A | if rw { RW | D } else { 0 });
    let value = prop_oneof![6 => usual, 1 => any::<u64>()];
    (
        8..16u32,
        prop::collection::vec((value, any::<bool>()), 2..9),
    )
        .prop_map(|(first, updates)| {
            updates
                .into_iter()
                .zip(first..)
                .map(|((value, user), t)| Step::Fault {
                    va: window_va(t),
                    write: true,
                    user,
                    update: FaultUpdate::Set { value },
                })
                .collect()
        })
}

/// A page table replaced as Linux's exit and the next exec do: unlinked
/// from a directory, released, announced again, filled
/// ([`fill_steps`]), linked again. Its shadow frame is then a freed
/// table's, kept with its entries, and the fill's writes meet a frame no
/// pinned root reaches (the shadow cache's scratch frame).
fn refill_steps() -> impl Strategy<Value = Vec<Step>> {
    (
        prop::sample::select(L2S.to_vec()),
        prop::sample::select(vec![0u32, 1, 5]),
        fill_steps(),
    )
        .prop_map(|(l2, index, fill)| {
            let Step::SetPxELong {
                entry: EntryRef::Table { phys },
                ..
            } = fill[0]
            else {
                unreachable!("fill_steps makes table writes")
            };
            let pfn = phys / 4096;
            let dir = EntryRef::Table {
                phys: l2 * 4096 + index * 8,
            };
            let mut steps = vec![
                Step::SetPxELong {
                    entry: dir,
                    value: 0,
                },
                Step::Release {
                    pfn,
                    flags: VMI_PAGE_L1,
                },
                Step::Allocate {
                    pfn,
                    flags: VMI_PAGE_L1,
                    clone_pfn: 0,
                    start: 0,
                    count: 0,
                },
            ];
            steps.extend(fill);
            steps.push(Step::SetPxELong {
                entry: dir,
                value: (u64::from(pfn) << 12) | P | RW | US,
            });
            steps
        })
}

/// A sequence of about `len` calls: single steps, now and then a table
/// filled or replaced ([`fill_steps`], [`refill_steps`]).
fn steps(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            40 => step().prop_map(|s| vec![s]),
            1 => fill_steps(),
            2 => refill_steps(),
            2 => fault_run_steps(),
        ],
        len,
    )
    .prop_map(|v| v.concat())
}

// ---------------------------------------------------------------------------
// The kernel as this test knows it, and the checks

/// What the kernel has told the ROM, kept here independently of the calls.
struct Kernel {
    linear: [(u32, u32, u32); 4],
    lazy: u32,
    paging: bool,
    cr3: u32,
    /// The PDPT entries of the loaded root, as read at its load.
    pdpte: [u64; 4],
}

/// A diagnostic as the ROM prints it.
struct Text(String);

impl Sink for Text {
    fn text(&mut self, s: &[u8]) {
        self.0.push_str(std::str::from_utf8(s).unwrap());
    }
    fn hex(&mut self, v: u32) {
        self.0.push_str(&format!("{v:#010x}"));
    }
    fn dec(&mut self, v: u32) {
        self.0.push_str(&v.to_string());
    }
}

fn call_name(call: Call) -> &'static str {
    match call {
        Call::SetPxE => "SetPxE:",
        Call::SetPxELong => "SetPxELong:",
        Call::UpdatePxE => "UpdatePxE:",
        Call::UpdatePxELong => "UpdatePxELong:",
        Call::AllocatePage => "AllocatePage:",
        Call::ReleasePage => "ReleasePage:",
        Call::SetLinearMapping => "SetLinearMapping:",
        Call::SetLazyMode => "SetLazyMode:",
        Call::FlushTlb => "FlushTLB:",
        Call::InvalPage => "InvalPage:",
    }
}

/// The argument(s) the line must name, as printed.
fn named(problem: &Problem) -> Vec<String> {
    let hex = |v: u32| format!("{v:#010x}");
    match *problem {
        Problem::EntryMisaligned { ptep } | Problem::EntryNotMapped { ptep } => {
            vec![format!("entry address {}", hex(ptep))]
        }
        Problem::EntryNotRam { ptep, kfn } => vec![hex(ptep), hex(kfn)],
        Problem::Shadow(ShadowError::OutOfFrames) => vec!["no frame left".into()],
        Problem::Shadow(ShadowError::OutOfRecords) => vec!["more page tables".into()],
        Problem::Shadow(ShadowError::Cr3NotRam { cr3 }) => vec![hex(cr3)],
        Problem::Shadow(ShadowError::BadPdpte { cr3, slot, .. }) => {
            vec![hex(cr3), format!("entry {slot}")]
        }
        Problem::NotKernelFrame { pfn } => vec![format!("pfn {}", hex(pfn))],
        Problem::UnknownLevel { flags }
        | Problem::CloneNotDirectory { flags }
        | Problem::FlushFlags { flags } => vec![format!("flags {}", hex(flags))],
        Problem::CloneRange { start, count } => vec![format!("start {start} count {count}")],
        Problem::LinearSlot { slot } => vec![format!("slot {slot}")],
        Problem::LinearRange {
            slot,
            va,
            pages,
            pfn,
        } => vec![format!(
            "slot {slot} va {} pages {} pfn {}",
            hex(va),
            hex(pages),
            hex(pfn)
        )],
        Problem::UnknownLazyMode { mode } => vec![format!("mode {mode} ")],
        Problem::NestedLazyMode { mode, current } => {
            vec![format!("mode {mode} entered while in lazy mode {current}")]
        }
    }
}

/// The line names the call and the argument, and says what happens.
fn check_line(r: &Rejection) {
    let mut t = Text(String::new());
    r.describe(&mut t);
    let line = t.0;
    assert!(line.starts_with("xen-vmi-rom: "), "{line}");
    assert!(line.contains(call_name(r.call)), "{line} for {r:?}");
    for arg in named(&r.problem) {
        assert!(line.contains(&arg), "{line:?} does not name {arg:?}");
    }
    assert!(line.len() < 160, "longer than the ROM's line: {line}");
}

/// The kernel frame an entry address reaches, worked out from what the
/// kernel told the ROM and its tables (None: nothing there).
fn resolve(k: &Kernel, m: &Model, ptep: u32) -> Option<u64> {
    if !k.paging {
        return Some(u64::from(ptep >> 12));
    }
    for (va, pages, pfn) in k.linear {
        let page = u64::from(ptep.wrapping_sub(va) / 4096);
        if pages != 0 && page < u64::from(pages) {
            return Some(u64::from(pfn) + page);
        }
    }
    let pdpte = k.pdpte[(ptep >> 30) as usize];
    if pdpte & P == 0 {
        return None;
    }
    let frame = |e: u64| (e & 0x000F_FFFF_FFFF_F000) >> 12;
    // A table the kernel's memory has no frame for holds nothing.
    let entry = |table: u64, i: u32| {
        u32::try_from(table)
            .ok()
            .and_then(|t| m.guest.get(&t))
            .map_or(0, |t| t[(i & 511) as usize])
    };
    let pde = entry(frame(pdpte), ptep >> 21);
    if pde & P == 0 {
        return None;
    }
    if pde & PS != 0 {
        // The 2 MiB page's base: bits 21 up.
        return Some((frame(pde) & !511) + u64::from((ptep >> 12) & 511));
    }
    let pte = entry(frame(pde), ptep >> 12);
    (pte & P != 0).then_some(frame(pte))
}

/// The verdict the ABI gives an entry call, and where its store lands.
fn expect_entry(k: &Kernel, m: &Model, ptep: u32, long: bool) -> Result<u32, Problem> {
    if !ptep.is_multiple_of(if long { 8 } else { 4 }) {
        return Err(Problem::EntryMisaligned { ptep });
    }
    let Some(kfn) = resolve(k, m, ptep) else {
        return Err(Problem::EntryNotMapped { ptep });
    };
    let Ok(kfn) = u32::try_from(kfn) else {
        return Err(Problem::EntryNotMapped { ptep });
    };
    if machine(u64::from(kfn)).is_none() || is_rom(u64::from(kfn)) {
        return Err(Problem::EntryNotRam { ptep, kfn });
    }
    Ok(kfn)
}

fn ram(pfn: u32) -> bool {
    machine(u64::from(pfn)).is_some() && !is_rom(u64::from(pfn))
}

fn level_ok(flags: u32) -> bool {
    matches!(flags & 0xF, 1 | 2 | 4)
}

/// The kernel's memory before a call, to see what the call changed.
type Memory = HashMap<u32, [u64; ENTRIES]>;

/// Nothing of the kernel's memory changed but A/D bits, except the entry
/// `stored` (frame, index), which holds `want` (give or take A/D).
fn check_memory(before: &Memory, after: &Memory, stored: Option<(u32, usize, u64)>) {
    let zero = [0u64; ENTRIES];
    for (kfn, table) in after {
        let old = before.get(kfn).unwrap_or(&zero);
        for i in 0..ENTRIES {
            let (o, n) = (old[i] & !(A | D), table[i] & !(A | D));
            match stored {
                Some((s, si, want)) if s == *kfn && si == i => {
                    assert_eq!(n, want & !(A | D), "the stored entry {kfn:#x}[{i}]")
                }
                _ => assert_eq!(o, n, "entry {kfn:#x}[{i}] changed by the call"),
            }
        }
    }
}

/// At a flush point: every op pushed reached Xen in order, an op missing
/// only where a later one made it redundant; both models of Xen agree; and
/// Xen holds the shadows of the kernel's tables.
fn check_flush_point(cache: &ShadowCache, b: &mut Backend) {
    assert!(b.batch.is_empty());
    // Matched from the end: the last op pushed is never made redundant, and
    // of two equal ops the earlier is the one a merge drops.
    let mut left = b.delivered.len();
    for (i, op) in b.pushed.iter().enumerate().rev() {
        if left > 0 && b.delivered[left - 1] == *op {
            left -= 1;
            continue;
        }
        let later = &b.pushed[i + 1..];
        assert!(
            later.iter().any(|l| l.replaces(op) || op.covered_by(l)),
            "op {i} {op:?} pushed but never reached Xen"
        );
    }
    assert_eq!(
        left, 0,
        "ops reached Xen that were not pushed, or not in that order"
    );
    b.pushed.clear();
    b.delivered.clear();
    assert_eq!(b.model.pinned, b.reference.pinned, "pinned tables");
    assert_eq!(b.model.types, b.reference.types, "Xen's page types");
    for (mfn, table) in &b.reference.xen {
        assert_eq!(b.model.xen.get(mfn), Some(table), "shadow frame {mfn:#x}");
    }
    check(cache, &b.model);
}

/// The loaded root's PDPT entries as the kernel's memory holds them.
fn read_pdpt(m: &Model, cr3: u32) -> [u64; 4] {
    let first = ((cr3 & 0xFFF) / 8) as usize;
    std::array::from_fn(|s| m.guest.get(&(cr3 >> 12)).map_or(0, |t| t[first + s]))
}

/// Figures of one run or many.
#[derive(Default, Debug)]
struct Figures {
    calls: usize,
    rejected: usize,
    crashed: bool,
    crashes: usize,
    flush_points: usize,
    /// Rejections per kind of problem.
    problems: HashMap<String, usize>,
    /// Stores whose address went through the kernel's own tables.
    window_stores: usize,
    evictions: usize,
    /// Flush points reached with more than one op delivered.
    lazy_flushes: usize,
    /// Writes held in the scratch frame, and copies from it.
    scratch_writes: usize,
    scratch_copies: usize,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.calls += o.calls;
        self.rejected += o.rejected;
        self.crashes += usize::from(o.crashed);
        self.flush_points += o.flush_points;
        for (k, n) in &o.problems {
            *self.problems.entry(k.clone()).or_default() += n;
        }
        self.window_stores += o.window_stores;
        self.evictions += o.evictions;
        self.lazy_flushes += o.lazy_flushes;
        self.scratch_writes += o.scratch_writes;
        self.scratch_copies += o.scratch_copies;
    }

    fn rejected(&mut self, p: &Problem) {
        self.rejected += 1;
        let kind = format!("{p:?}");
        let kind = kind.split([' ', '(']).next().unwrap().to_string();
        *self.problems.entry(kind).or_default() += 1;
    }
}

thread_local! {
    /// Page faults `ShadowCache::kernels_fault` answered in `run`.
    static QUICK_FAULTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Updates `mmu_calls::fault_entry_update` took in one step in `run`.
    static ONE_STEP_UPDATES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Of UpdatePxELong's, those its path in assembly would take.
    static ASSEMBLY_UPDATES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Of SetPxELong's, those its path in assembly would take (and store).
    static ASSEMBLY_SETS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Of those, the ones it leaves to Rust after its store.
    static ASSEMBLY_SETS_DECLINED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// SetPxELong and UpdatePxELong calls the lazy path
    /// (`mmu_calls::quick_entry_update`) took in `run`.
    static LAZY_UPDATES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The lazy path's page memo (`CallState::lazy_linear`) holds a page only
/// with paging on, says what the linear slots say for it, and never names
/// a frame of the ROM's area: the general call, which trusts it, and the lazy
/// path then find the frame `linear_entry_frame` finds.
fn check_lazy_memo(state: &CallState, paging: Paging) {
    let (page, frame) = state.lazy_linear;
    if page == CallState::NO_FAULT_LINEAR.0 {
        return;
    }
    assert!(paging.enabled, "memo page {page:#x} with paging off");
    assert_eq!(page & 0xFFF, 0xFF8, "memo page {page:#x}");
    let slot = state
        .in_use
        .iter()
        .find(|s| page.wrapping_sub(s.va) / 4096 < s.pages)
        .unwrap_or_else(|| panic!("memo page {page:#x} in no linear slot"));
    assert_eq!(
        slot.pfn + page.wrapping_sub(slot.va) / 4096,
        frame,
        "memo page {page:#x}"
    );
    assert!(
        !is_rom(u64::from(frame)),
        "memo frame {frame:#x} is the ROM's"
    );
}

/// The world an entry call may change, copied whole: the cache (plain
/// data, as the ROM keeps it), the backend (the queue bit for bit) and the
/// calls' state, for the general call run on the copy.
struct World {
    cache: Box<ShadowCache>,
    b: Backend,
    state: CallState,
}

fn copy_world(cache: &ShadowCache, b: &Backend, state: &CallState) -> World {
    // SAFETY: all-zero bytes are a valid cache (its documentation), which
    // is then overwritten with a copy of a valid one: plain data, no
    // pointers, nothing dropped.
    let mut copy: Box<ShadowCache> = unsafe { Box::new_zeroed().assume_init() };
    // SAFETY: two distinct caches, one each.
    unsafe { core::ptr::copy_nonoverlapping(cache, &mut *copy, 1) };
    // SAFETY: the queue is plain data with no drop glue (arrays of plain
    // values and counters): a bitwise copy is an independent queue.
    let batch = Box::new(unsafe { core::ptr::read(&*b.batch) });
    World {
        cache: copy,
        b: Backend {
            model: b.model.clone(),
            reference: b.reference.clone(),
            batch,
            pushed: b.pushed.clone(),
            delivered: b.delivered.clone(),
        },
        state: *state,
    }
}

/// The lazy path (`mmu_calls::quick_entry_update`) first, as the ROM's
/// entries try it in lazy MMU mode; when it takes the update, the general
/// call on a copy of the world from before must have done the same: an
/// `Ok`, the same kernel memory, Xen's tables as the pushes leave them,
/// the same ops pushed and queued with the same tags, the same counters,
/// and the same calls' state but for the page memo. True: taken.
fn lazy_path(
    cache: &mut ShadowCache,
    b: &mut Backend,
    state: &mut CallState,
    paging: Paging,
    ptep: u32,
    store: Option<u64>,
) -> bool {
    check_lazy_memo(state, paging);
    // The world is copied (about 200 KiB) only where the path's first
    // tests pass: lazy MMU mode, the memo's page, the last-hit table.
    let (page, kfn) = state.lazy_linear;
    let may_take = state.lazy == vmi_abi::flags::LazyMode::Mmu
        && ptep | 0xFF8 == page
        && cache.quick_page_table(kfn).is_some();
    if !may_take {
        let (pushed, before) = (b.pushed.len(), *state);
        assert!(!mmu_calls::quick_entry_update(
            cache, b, state, paging, ptep, store
        ));
        assert_eq!(b.pushed.len(), pushed, "declined, yet a push");
        assert_eq!(*state, before);
        return false;
    }
    let mut general = copy_world(cache, b, state);
    if !mmu_calls::quick_entry_update(cache, b, state, paging, ptep, store) {
        // Declined: nothing changed.
        assert_eq!(b.pushed, general.b.pushed);
        assert!(
            b.model.guest == general.b.model.guest,
            "declined, yet a store"
        );
        assert_eq!(*state, general.state);
        return false;
    }
    let g = &mut general;
    let r = match store {
        Some(value) => {
            mmu_calls::set_pxe_long(&mut g.cache, &mut g.b, &mut g.state, paging, value, ptep)
        }
        None => mmu_calls::update_pxe(&mut g.cache, &mut g.b, &mut g.state, paging, ptep, true),
    };
    assert_eq!(
        r,
        Ok(()),
        "the lazy path took {ptep:#x}, the general call refused it"
    );
    assert!(
        b.model.guest == g.b.model.guest,
        "kernel memory differs at {ptep:#x}"
    );
    assert!(
        b.model.xen == g.b.model.xen,
        "Xen's tables differ at {ptep:#x}"
    );
    assert!(
        b.reference.xen == g.b.reference.xen,
        "pushes differ at {ptep:#x}"
    );
    assert_eq!(b.pushed, g.b.pushed);
    assert_eq!(b.delivered, g.b.delivered);
    assert_eq!(
        b.batch.pending().collect::<Vec<_>>(),
        g.b.batch.pending().collect::<Vec<_>>()
    );
    assert_eq!(b.batch.len(), g.b.batch.len());
    assert_eq!(b.batch.counters(), g.b.batch.counters());
    assert_eq!(b.model.notes, g.b.model.notes);
    let mut s = g.state;
    s.lazy_linear = state.lazy_linear;
    assert_eq!(*state, s);
    assert!(cache.lookup_cache_agrees());
    check_lazy_memo(state, paging);
    LAZY_UPDATES.with(|c| c.set(c.get() + 1));
    true
}

/// SetPxELong as the ROM's entry makes it: the one-step update after a
/// fault tried first (`mmu_calls::fault_entry_update`), the general call
/// when it declines. Every check of the run applies to the two together:
/// the verdict, the store, and Xen's tables at every flush point.
fn rom_set_pxe_long(
    cache: &mut ShadowCache,
    b: &mut Backend,
    state: &mut CallState,
    paging: Paging,
    value: u64,
    ptep: u32,
) -> Result<(), Rejection> {
    if lazy_path(cache, b, state, paging, ptep, Some(value)) {
        return Ok(());
    }
    if assembly_update_target(cache, b, state, ptep) {
        // SetPxELong's path in assembly (entry.rs): UpdatePxELong's tests,
        // then the store through the frame's view slot before the shared
        // write decides. An entry that write leaves to Rust goes on to the
        // one-step path and the general call with the value already
        // stored: they store it again, and nothing may tell the two
        // apart (every check of the run: the verdict, the store, Xen's
        // tables).
        let (page, frame) = state.fault_linear;
        let index = ((ptep & 0xFFF) >> 3) as usize;
        assert!(
            paging.enabled && ptep.is_multiple_of(8) && ptep | 0xFFF == page,
            "the assembly's set path takes {ptep:#x} (memo {page:#x} frame {frame:#x}, paging {})",
            paging.enabled
        );
        assert!(
            cache.fault_entry(frame, index).is_some(),
            "the assembly's set path takes {ptep:#x}, fault_entry does not"
        );
        assert!(
            !b.read_only_frame(u64::from(frame)),
            "the assembly's set path stores into read-only frame {frame:#x}"
        );
        assert!(
            b.store_entry(frame, ptep & 0xFFF, value, true),
            "the assembly's set path stores {ptep:#x} through no view"
        );
        assert_eq!(b.model.guest_entry(frame, index), value);
        ASSEMBLY_SETS.with(|c| c.set(c.get() + 1));
        if !mmu_calls::fault_entry_update(cache, b, state, paging, ptep, Some(value)) {
            ASSEMBLY_SETS_DECLINED.with(|c| c.set(c.get() + 1));
            return mmu_calls::set_pxe_long(cache, b, state, paging, value, ptep);
        }
        ONE_STEP_UPDATES.with(|c| c.set(c.get() + 1));
        return Ok(());
    }
    if mmu_calls::fault_entry_update(cache, b, state, paging, ptep, Some(value)) {
        ONE_STEP_UPDATES.with(|c| c.set(c.get() + 1));
        return Ok(());
    }
    mmu_calls::set_pxe_long(cache, b, state, paging, value, ptep)
}

/// The entry UpdatePxELong's path in assembly (entry.rs) would write for
/// `ptep`, as far as its tests before the entry's value decide: outside
/// lazy mode, nothing queued, the page memo's page and the fault's
/// entry's offset in one compare (`ptep ^ page ^ offset` is 0xFFF), then
/// `quick_fault_entry` of the memo's frame (`update_kfn`, the path, the
/// fault's directory entry). Paging is not tested: the path infers it.
fn assembly_update_target(cache: &ShadowCache, b: &Backend, state: &CallState, ptep: u32) -> bool {
    if state.lazy != vmi_abi::flags::LazyMode::None || !b.mapped_write_ready() {
        return false;
    }
    let (page, frame) = state.fault_linear;
    (ptep ^ page) & !0xFFF == 0
        && cache
            .quick_fault_entry(frame, (ptep ^ page ^ 0xFFF) & 0xFFF)
            .is_some()
}

/// UpdatePxELong as the ROM's entry makes it ([`rom_set_pxe_long`]); its
/// path in assembly first ([`assembly_update_target`]), which may take
/// only the entry the one-step update names: `ptep` 8-aligned, in the
/// memo's page, with paging on, and `fault_entry`'s entry of the memo's
/// frame.
fn rom_update_pxe_long(
    cache: &mut ShadowCache,
    b: &mut Backend,
    state: &mut CallState,
    paging: Paging,
    ptep: u32,
) -> Result<(), Rejection> {
    if assembly_update_target(cache, b, state, ptep) {
        let (page, frame) = state.fault_linear;
        assert!(
            paging.enabled && ptep.is_multiple_of(8) && ptep | 0xFFF == page,
            "the assembly's update path takes {ptep:#x} (memo {page:#x} frame {frame:#x}, paging {})",
            paging.enabled
        );
        assert!(
            cache
                .fault_entry(frame, ((ptep & 0xFFF) >> 3) as usize)
                .is_some(),
            "the assembly's update path takes {ptep:#x}, fault_entry does not"
        );
        ASSEMBLY_UPDATES.with(|c| c.set(c.get() + 1));
    }
    if lazy_path(cache, b, state, paging, ptep, None) {
        return Ok(());
    }
    if mmu_calls::fault_entry_update(cache, b, state, paging, ptep, None) {
        ONE_STEP_UPDATES.with(|c| c.set(c.get() + 1));
        return Ok(());
    }
    mmu_calls::update_pxe(cache, b, state, paging, ptep, true)
}

/// Runs `steps` from a kernel with paging on, an empty address space
/// loaded, and its direct map in slot 0.
fn run(steps: &[Step], pool: usize) -> Figures {
    // SAFETY: the cache is plain data for which all-zero bytes are valid
    // (its documentation), as the ROM relies on too.
    let mut cache: Box<ShadowCache> = unsafe { Box::new_zeroed().assume_init() };
    cache.reset(ROM_LINKS);
    // The scratch frame's threshold low (1, now and then 2), so that the
    // sequences' small tables take it and are copied from it, the copy
    // queued with the calls' other work.
    cache.set_scratch_copy_min(1 + u32::from(steps.len().is_multiple_of(4)));
    let mut b = Backend::new(pool);
    let mut state = CallState::default();
    let mut k = Kernel {
        linear: [(0, 0, 0); 4],
        lazy: 0,
        paging: true,
        cr3: CR3S[0],
        pdpte: [0; 4],
    };
    let mut f = Figures::default();
    cache.load_root(&mut b, k.cr3).unwrap();
    let mut queue: Vec<Step> = vec![Step::Linear {
        slot: 0,
        va: DIRECT_MAP,
        pages: DIRECT_PAGES,
        pfn: 0,
    }];
    // The kernel maps a few of its tables in its window first.
    // The kernel maps a few of its tables in its window first, in every
    // address space.
    let window_pdpte = CR3S.map(|cr3| Step::SetPxELong {
        entry: EntryRef::Table { phys: cr3 + 8 },
        value: (u64::from(WINDOW_L2) << 12) | P,
    });
    let prefix = [(0, L1S[0]), (1, L1S[1]), (2, L2S[0]), (3, CR3S[1] >> 12)]
        .map(|(t, table)| Step::MapWindow { t, table });
    for s in window_pdpte.iter().chain(&prefix).chain(steps) {
        match *s {
            Step::MapWindow { t, table } => {
                let slot1 = (k.cr3 & 0xFFF) + 8;
                queue.extend([
                    Step::SetPxELong {
                        entry: EntryRef::Table {
                            phys: (k.cr3 & !0xFFF) + slot1,
                        },
                        value: (u64::from(WINDOW_L2) << 12) | P,
                    },
                    Step::SetPxELong {
                        entry: EntryRef::Table {
                            phys: WINDOW_L2 * 4096 + WINDOW_PDE * 8,
                        },
                        value: (u64::from(WINDOW_L1) << 12) | P | RW,
                    },
                    Step::SetPxELong {
                        entry: EntryRef::Table {
                            phys: WINDOW_L1 * 4096 + t * 8,
                        },
                        value: (u64::from(table) << 12) | P | RW | A | D,
                    },
                    Step::SetCr3 { cr3: k.cr3 },
                ]);
            }
            Step::Run {
                table,
                first,
                values,
                update,
                spares,
            } => {
                if spares {
                    // The table announced, then its known frame given up.
                    queue.push(Step::Allocate {
                        pfn: table,
                        flags: VMI_PAGE_L1,
                        clone_pfn: 0,
                        start: 0,
                        count: 0,
                    });
                    queue.push(Step::Spares);
                    // The queue empty again, a plain run from here.
                    queue.push(Step::Flush {
                        flags: VMI_FLUSH_TLB,
                    });
                }
                queue.push(Step::Lazy { mode: VMI_LAZY_MMU });
                queue.extend(values.iter().enumerate().map(|(j, &value)| {
                    let entry = EntryRef::Table {
                        phys: table * 4096 + (first + j as u32) * 8,
                    };
                    if update {
                        Step::Update {
                            entry,
                            value: Some(value),
                            long: true,
                        }
                    } else {
                        Step::SetPxELong { entry, value }
                    }
                }));
            }
            other => queue.push(other),
        }
    }
    let small_pool = pool < 64;
    for s in &queue {
        f.calls += 1;
        let before = b.model.guest.clone();
        let paging = Paging { enabled: k.paging };
        let address = |e: EntryRef, k: &Kernel| match e {
            EntryRef::Table { phys } if k.paging => DIRECT_MAP.wrapping_add(phys),
            EntryRef::Table { phys } => phys,
            EntryRef::Window { t, index } => window_va(t) + index * 8,
            EntryRef::Raw(a) => a,
        };
        // (the result, the verdict expected, the store expected)
        let (result, expected, stored): (Result<(), Rejection>, Result<(), Problem>, _) = match *s {
            Step::SetPxE { entry, value, high } => {
                let ptep = address(entry, &k) + if high { 4 } else { 0 };
                let e = expect_entry(&k, &b.model, ptep, false);
                let stored = e.ok().map(|kfn| {
                    let i = ((ptep & 0xFFF) / 8) as usize;
                    let old = b.model.guest_entry(kfn, i);
                    // The half the address names (a raw address may name
                    // either).
                    let new = if ptep & 4 != 0 {
                        (old & 0xFFFF_FFFF) | (u64::from(value) << 32)
                    } else {
                        (old & !0xFFFF_FFFF) | u64::from(value)
                    };
                    (kfn, i, new)
                });
                let r = mmu_calls::set_pxe(&mut cache, &mut b, &mut state, paging, value, ptep);
                (r, e.map(|_| ()), stored)
            }
            Step::SetPxELong { entry, value } => {
                let ptep = address(entry, &k);
                let e = expect_entry(&k, &b.model, ptep, true);
                let stored = e
                    .ok()
                    .map(|kfn| (kfn, ((ptep & 0xFFF) / 8) as usize, value));
                let r = rom_set_pxe_long(&mut cache, &mut b, &mut state, paging, value, ptep);
                (r, e.map(|_| ()), stored)
            }
            Step::Update { entry, value, long } => {
                let ptep = address(entry, &k);
                let e = expect_entry(&k, &b.model, ptep, long);
                let mut stored = None;
                if let (Ok(kfn), Some(v)) = (e, value) {
                    // The kernel's own store, then the notification.
                    let i = ((ptep & 0xFFF) / 8) as usize;
                    b.model.guest_mut(kfn)[i] = v;
                    stored = Some((kfn, i, v));
                }
                let r = if long {
                    rom_update_pxe_long(&mut cache, &mut b, &mut state, paging, ptep)
                } else {
                    mmu_calls::update_pxe(&mut cache, &mut b, &mut state, paging, ptep, false)
                };
                (r, e.map(|_| ()), stored)
            }
            Step::Fault {
                va,
                write,
                user,
                update,
            } => {
                let access = Access {
                    write,
                    user,
                    fetch: false,
                };
                // The first directory entry from `va`'s on (its PDPT slot,
                // then the next ones; the directory indices the steps
                // write) that links a page table: random tables seldom
                // link one where a random address falls.
                let linked = |b: &mut Backend, slot: u32, d: usize| {
                    let pdpte = k.pdpte[slot as usize];
                    let table = ((pdpte & 0x000F_FFFF_FFFF_F000) >> 12) as u32;
                    pdpte & P != 0 && {
                        let pde = b.model.guest_entry(table, d);
                        pde & P != 0 && pde & PS == 0
                    }
                };
                let own = (va >> 30, ((va >> 21) & 511) as usize);
                let start = INDICES.iter().position(|&d| d == own.1).unwrap_or(0);
                let found = std::iter::once(own)
                    .chain((0..4u32).flat_map(|s| {
                        (0..INDICES.len())
                            .map(move |j| ((own.0 + s) % 4, INDICES[(start + j) % INDICES.len()]))
                    }))
                    .find(|&(slot, d)| linked(&mut b, slot, d));
                let Some((slot, d)) = found else {
                    continue;
                };
                let va = (slot << 30) | ((d as u32) << 21) | (va & 0x1F_F000);
                // The ROM's #PF path answers in one step only with nothing
                // queued (a fault is a flush point).
                b.barrier(Barrier::CoherentRead);
                let answer = cache.kernels_fault(&mut b, va, access, true);
                if std::env::var("FUZZ_DEBUG").is_ok() {
                    eprintln!("fault {va:#x} {access:?}: {answer:?}");
                }
                if answer.is_none() {
                    continue;
                }
                QUICK_FAULTS.with(|c| c.set(c.get() + 1));
                // The entry that maps `va`, as the kernel finds it: its
                // loaded PDPT entry, then its directory.
                let frame = |e: u64| ((e & 0x000F_FFFF_FFFF_F000) >> 12) as u32;
                let pde = b.model.guest_entry(
                    frame(k.pdpte[(va >> 30) as usize]),
                    ((va >> 21) & 511) as usize,
                );
                let (l1, index) = (frame(pde), (va >> 12) & 511);
                let entry = EntryRef::Table {
                    phys: l1 * 4096 + index * 8,
                };
                let ptep = address(entry, &k);
                let e = expect_entry(&k, &b.model, ptep, true);
                match (update, e) {
                    (FaultUpdate::None, _) => continue,
                    (FaultUpdate::Set { value }, _) => {
                        let stored = e.ok().map(|kfn| (kfn, index as usize, value));
                        let r =
                            rom_set_pxe_long(&mut cache, &mut b, &mut state, paging, value, ptep);
                        (r, e.map(|_| ()), stored)
                    }
                    (FaultUpdate::Protect | FaultUpdate::Update { .. }, Ok(kfn)) => {
                        let i = index as usize;
                        let value = match update {
                            FaultUpdate::Update { value } => value,
                            _ => b.model.guest_entry(kfn, i) | RW | D | A,
                        };
                        b.model.guest_mut(kfn)[i] = value;
                        let r = rom_update_pxe_long(&mut cache, &mut b, &mut state, paging, ptep);
                        (r, Ok(()), Some((kfn, i, value)))
                    }
                    (_, Err(_)) => {
                        let r = rom_update_pxe_long(&mut cache, &mut b, &mut state, paging, ptep);
                        (r, e.map(|_| ()), None)
                    }
                }
            }
            Step::Allocate {
                pfn,
                flags,
                clone_pfn,
                start,
                count,
            } => {
                let clone = flags & VMI_PAGE_CLONE != 0;
                // ZEROED is the kernel's promise, which the ROM takes
                // unread (that is its point): a kernel that breaks it gets
                // a shadow missing the entries it left, found again at the
                // faults they cause. The sequences keep the promise.
                let zero = b
                    .model
                    .guest
                    .get(&pfn)
                    .is_none_or(|t| t.iter().all(|&e| e == 0));
                let flags = if zero {
                    flags
                } else {
                    flags & !VMI_PAGE_ZEROED
                };
                let e = if !ram(pfn) {
                    Err(Problem::NotKernelFrame { pfn })
                } else if !level_ok(flags) {
                    Err(Problem::UnknownLevel { flags })
                } else if clone && flags & 0xF != VMI_PAGE_PD {
                    Err(Problem::CloneNotDirectory { flags })
                } else if clone && u64::from(start) + u64::from(count) > 512 {
                    Err(Problem::CloneRange { start, count })
                } else {
                    Ok(())
                };
                let r = mmu_calls::allocate_page(
                    &mut cache, &mut b, pfn, flags, clone_pfn, start, count,
                );
                (r, e, None)
            }
            Step::Release { pfn, flags } => {
                let e = if !ram(pfn) {
                    Err(Problem::NotKernelFrame { pfn })
                } else if !level_ok(flags) {
                    Err(Problem::UnknownLevel { flags })
                } else {
                    Ok(())
                };
                (
                    mmu_calls::release_page(&mut cache, &mut b, pfn, flags),
                    e,
                    None,
                )
            }
            Step::Linear {
                slot,
                va,
                pages,
                pfn,
            } => {
                let e = if slot >= 4 {
                    Err(Problem::LinearSlot { slot })
                } else if pages != 0
                    && (va % 4096 != 0
                        || u64::from(va) + u64::from(pages) * 4096 > 1 << 32
                        || u64::from(pfn) + u64::from(pages) - 1 > u64::from(u32::MAX))
                {
                    Err(Problem::LinearRange {
                        slot,
                        va,
                        pages,
                        pfn,
                    })
                } else {
                    k.linear[slot as usize] = (va, pages, pfn);
                    Ok(())
                };
                let r = mmu_calls::set_linear_mapping(&mut state, slot, va, pages, pfn);
                (r, e, None)
            }
            Step::Lazy { mode } => {
                let current = k.lazy;
                let e = match mode {
                    0 => Ok(()),
                    1 | 2 if current != 0 => Err(Problem::NestedLazyMode { mode, current }),
                    1 | 2 => Ok(()),
                    _ => Err(Problem::UnknownLazyMode { mode }),
                };
                k.lazy = if mode <= 2 { mode } else { 0 };
                let r = mmu_calls::set_lazy_mode(&mut state, &mut b, mode);
                assert_eq!(
                    b.batch.is_lazy(),
                    k.lazy == 1 || k.lazy == 2,
                    "queue lazy in mode {}",
                    k.lazy
                );
                (r, e, None)
            }
            Step::Spares => {
                for pfn in SPARES {
                    let r = mmu_calls::allocate_page(&mut cache, &mut b, pfn, VMI_PAGE_L1, 0, 0, 0);
                    assert_eq!(r, Ok(()), "AllocatePage of spare {pfn:#x}");
                }
                for pfn in SPARES {
                    let r = mmu_calls::release_page(&mut cache, &mut b, pfn, VMI_PAGE_L1);
                    assert_eq!(r, Ok(()), "ReleasePage of spare {pfn:#x}");
                }
                (Ok(()), Ok(()), None)
            }
            Step::Flush { flags } => {
                let e = if flags & !3 != 0 || flags & 1 == 0 {
                    Err(Problem::FlushFlags { flags })
                } else {
                    Ok(())
                };
                let r = if k.paging {
                    mmu_calls::flush_tlb(&mut b, flags)
                } else {
                    mmu_calls::flush_flags(flags)
                };
                (r, e, None)
            }
            Step::Inval { va } => {
                if !k.paging {
                    continue;
                }
                let before_notes = b.model.notes.len();
                let r = mmu_calls::inval_page(&mut cache, &mut b, va);
                // Every change was announced: nothing to repair.
                assert!(
                    !b.model.notes[before_notes..]
                        .iter()
                        .any(|n| matches!(n, Note::Unannounced { .. })),
                    "InvalPage repaired an announced entry"
                );
                (r, Ok(()), None)
            }
            Step::SetCr3 { cr3 } if !k.paging => {
                // Paging off: remembered for when it goes on.
                k.cr3 = cr3;
                continue;
            }
            Step::Paging { on: true } if k.paging => continue,
            Step::SetCr3 { .. } | Step::Paging { on: true } => {
                if let Step::SetCr3 { cr3 } = *s {
                    k.cr3 = cr3;
                }
                k.paging = true;
                // The ROM's load (paging.rs `load`): the root, then the base.
                match cache.load_root(&mut b, k.cr3) {
                    Ok(l3) => {
                        b.push(
                            Op::Mmuext(MmuextOp::new_baseptr(xen_abi::p2m::Mfn(l3))),
                            Tag::default(),
                        );
                        b.barrier(Barrier::BaseSwitch);
                        k.pdpte = read_pdpt(&b.model, k.cr3);
                    }
                    Err(ShadowError::OutOfFrames) if small_pool => {
                        f.crashed = true;
                        return f;
                    }
                    Err(ShadowError::Cr3NotRam { .. } | ShadowError::BadPdpte { .. }) => {
                        // The ROM crashes the domain (a CR3 of garbage).
                        f.crashed = true;
                        return f;
                    }
                    Err(e) => panic!("{e:?}"),
                }
                (Ok(()), Ok(()), None)
            }
            Step::Paging { on: false } => {
                k.paging = false;
                cache.leave_root();
                // As the ROM's SetCR0 (paging.rs `set_paging`).
                state.paging_off();
                (Ok(()), Ok(()), None)
            }
            Step::MapWindow { .. } | Step::Run { .. } => unreachable!("expanded"),
        };
        match (&result, &expected) {
            (Err(r), _) if r.problem == Problem::Shadow(ShadowError::OutOfFrames) && small_pool => {
                check_line(r);
                f.rejected(&r.problem);
                f.crashed = true;
                f.evictions = cache.stats().evictions as usize;
                f.scratch_writes = cache.stats().scratch_writes as usize;
                f.scratch_copies = cache.stats().scratch_copies as usize;
                return f;
            }
            (Ok(()), Ok(())) => {}
            (Err(r), Err(p)) => {
                assert_eq!(&r.problem, p, "{s:?}");
                check_line(r);
                f.rejected(&r.problem);
                if r.outcome() == Outcome::Crash {
                    if std::env::var("FUZZ_DEBUG").is_ok() {
                        eprintln!("CRASH {s:?} {:?} paging {}", r.problem, k.paging);
                    }
                    f.crashed = true;
                    f.evictions = cache.stats().evictions as usize;
                    f.scratch_writes = cache.stats().scratch_writes as usize;
                    f.scratch_copies = cache.stats().scratch_copies as usize;
                    return f;
                }
            }
            _ => panic!("{s:?}: got {result:?}, the ABI says {expected:?}"),
        }
        check_memory(&before, &b.model.guest, stored);
        if stored.is_some()
            && matches!(
                s,
                Step::SetPxELong {
                    entry: EntryRef::Window { .. },
                    ..
                } | Step::SetPxE {
                    entry: EntryRef::Window { .. },
                    ..
                }
            )
        {
            f.window_stores += 1;
        }
        if b.batch.is_empty() {
            f.flush_points += 1;
            if b.delivered.len() > 1 && b.pushed.len() > 1 {
                f.lazy_flushes += 1;
            }
            check_flush_point(&cache, &mut b);
        }
    }
    // The end of lazy mode is a flush point too.
    b.leave_lazy();
    check_flush_point(&cache, &mut b);
    f.evictions = cache.stats().evictions as usize;
    f.scratch_writes = cache.stats().scratch_writes as usize;
    f.scratch_copies = cache.stats().scratch_copies as usize;
    f
}

/// Cases per property: PROPTEST_CASES when set (the long run,
/// docs/fuzzing.md), else `default` (sized for `cargo test`).
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // Failures found are kept (and run first) in the corpus file beside
        // this one; cargo runs tests from the package's directory.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/fuzz_calls.proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// Runs random sequences with a pool of `pool` frames and prints what
/// was run (the figures docs/fuzzing.md quotes).
fn fuzz(name: &str, pool: usize, default_cases: u32) {
    let totals = std::cell::RefCell::new(Figures::default());
    let sequences = std::cell::Cell::new(0usize);
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config(default_cases));
    let result = runner.run(&steps(1..100), |steps| {
        let f = run(&steps, pool);
        sequences.set(sequences.get() + 1);
        totals.borrow_mut().add(&f);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let t = totals.borrow();
    eprintln!(
        "fuzz_calls {name}: {} sequences, {} calls ({} rejected with a line, {} sequences ended by a crash), {} flush points checked, {:.1} s",
        sequences.get(),
        t.calls,
        t.rejected,
        t.crashes,
        t.flush_points,
        started.elapsed().as_secs_f64()
    );
}

/// A pool large enough that nothing is evicted.
#[test]
fn calls_keep_xen_exact() {
    fuzz("pool 4096", 4096, 300);
}

/// A pool so small that shadows are dropped and rebuilt, and the pool
/// runs dry (a clean crash).
#[test]
fn calls_keep_xen_exact_under_eviction() {
    fuzz("pool 12", 12, 300);
}

/// Pure noise: any call with any arguments, from the same start.
#[test]
fn noise_is_rejected_cleanly() {
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config(300));
    let (calls, rejected) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let result = runner.run(&prop::collection::vec(noise_step(), 1..30), |steps| {
        let f = run(&steps, 64);
        calls.set(calls.get() + f.calls);
        rejected.set(rejected.get() + f.rejected);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "fuzz_calls noise: {} calls ({} rejected with a line), {:.1} s",
        calls.get(),
        rejected.get(),
        started.elapsed().as_secs_f64()
    );
}

/// The random sequences reach what the properties are about: long runs,
/// every kind of rejection, stores through the kernel's own tables,
/// evictions, lazy batches.
#[test]
fn random_sequences_reach_every_path() {
    use proptest::strategy::ValueTree;

    let mut runner = TestRunner::deterministic();
    let strategy = steps(60..100);
    let mut t = Figures::default();
    for pool in [12, 4096] {
        for _ in 0..60 {
            let steps = strategy.new_tree(&mut runner).unwrap().current();
            let f = run(&steps, pool);
            t.add(&f);
        }
    }
    let plausible_calls = t.calls;
    let noise = prop::collection::vec(noise_step(), 1..30);
    for _ in 0..120 {
        t.add(&run(&noise.new_tree(&mut runner).unwrap().current(), 64));
    }
    eprintln!("{t:?}");
    assert!(
        plausible_calls > 60 * 2 * 30,
        "sequences end too early: {t:?}"
    );
    for kind in [
        "EntryMisaligned",
        "EntryNotMapped",
        "EntryNotRam",
        "NotKernelFrame",
        "UnknownLevel",
        "CloneRange",
        "LinearSlot",
        "LinearRange",
        "UnknownLazyMode",
        "NestedLazyMode",
        "FlushFlags",
    ] {
        assert!(
            t.problems.get(kind).is_some_and(|&n| n > 0),
            "no {kind}: {t:?}"
        );
    }
    assert!(t.window_stores > 20, "{t:?}");
    assert!(t.evictions > 5, "{t:?}");
    assert!(t.lazy_flushes > 20, "{t:?}");
    assert!(t.scratch_writes > 20 && t.scratch_copies > 4, "{t:?}");
    assert!(t.flush_points > 1000, "{t:?}");
    // Faults answered in one step, and the handler's update after them
    // taken in one step (the rest declined to the general call).
    let (faults, one_step) = (
        QUICK_FAULTS.with(|c| c.get()),
        ONE_STEP_UPDATES.with(|c| c.get()),
    );
    let lazy = LAZY_UPDATES.with(|c| c.get());
    let assembly_sets = ASSEMBLY_SETS.with(|c| c.get());
    let assembly_declined = ASSEMBLY_SETS_DECLINED.with(|c| c.get());
    eprintln!(
        "quick faults {faults}, one-step updates {one_step}, the assembly's {} and {assembly_sets} (SetPxELong, {assembly_declined} left to Rust after the store), lazy path {lazy}",
        ASSEMBLY_UPDATES.with(|c| c.get())
    );
    // SetPxELong's path in assembly, fed by the runs of faults in one
    // table (`fault_run_steps`): its usual write and its decline after
    // the store (an odd value) both met.
    assert!(
        assembly_sets > 100 && assembly_declined > 5,
        "SetPxELong's path in assembly {assembly_sets}, left to Rust {assembly_declined}"
    );
    assert!(lazy > 100, "lazy path updates {lazy}");
    // A floor, not a figure: the one-step updates are the Rust path's,
    // and since a fault's update stops following a known table
    // (`follow_no_more_at_fault`) its next updates go to the assembly's
    // instead, so the split moves with the mix of steps (44 and 5 here
    // once the lazy path's and the scratch frame's steps joined).
    assert!(
        faults > 100 && one_step > 30,
        "quick faults {faults}, one-step updates {one_step}"
    );
}

/// What the fuzzing found in the ROM's calls, one case each (each failed
/// on the handlers as they were before mmu_calls).
mod found {
    use super::*;

    /// A kernel with paging on, CR3S[0] loaded (PDPT slot 1 -> L2S[0]) and
    /// its direct map in slot 0.
    pub(super) fn setup() -> (Box<ShadowCache>, Backend, CallState) {
        // SAFETY: as in `run`.
        let mut cache: Box<ShadowCache> = unsafe { Box::new_zeroed().assume_init() };
        cache.reset(ROM_LINKS);
        let mut b = Backend::new(256);
        b.model.guest_mut(CR3S[0] >> 12)[1] = (u64::from(L2S[0]) << 12) | P;
        cache.load_root(&mut b, CR3S[0]).unwrap();
        let mut state = CallState::default();
        mmu_calls::set_linear_mapping(&mut state, 0, DIRECT_MAP, DIRECT_PAGES, 0).unwrap();
        (cache, b, state)
    }

    pub(super) const ON: Paging = Paging { enabled: true };

    pub(super) fn crash(r: Result<(), Rejection>) -> Problem {
        let r = r.expect_err("rejected");
        check_line(&r);
        assert_eq!(r.outcome(), Outcome::Crash);
        r.problem
    }

    /// SetPxELong at offset 0xFFC of a table: the old store wrote its high
    /// half into the next page of the ROM's view area.
    #[test]
    fn a_misaligned_entry_address_is_refused_before_the_store() {
        let (mut cache, mut b, mut state) = setup();
        let before = b.model.guest.clone();
        let ptep = DIRECT_MAP + L1S[0] * 4096 + 0xFFC;
        let p = crash(mmu_calls::set_pxe_long(
            &mut cache, &mut b, &mut state, ON, 1, ptep,
        ));
        assert_eq!(p, Problem::EntryMisaligned { ptep });
        let ptep = DIRECT_MAP + L1S[0] * 4096 + 0xFFE;
        let p = crash(mmu_calls::set_pxe(
            &mut cache, &mut b, &mut state, ON, 1, ptep,
        ));
        assert_eq!(p, Problem::EntryMisaligned { ptep });
        assert_eq!(b.model.guest, before, "nothing stored");
    }

    /// A linear slot whose frame is the last 32-bit one, u32::MAX: the
    /// one-step path kept it in its page memo (`CallState::fault_linear`),
    /// where the paths in assembly compare it with the fault path's
    /// `update_kfn`, which is u32::MAX for "no table" (`NO_UPDATE`): an
    /// entry of that page at the fault's offset passed for the table's.
    #[test]
    fn the_last_frame_is_not_the_one_step_memos() {
        let (mut cache, mut b, mut state) = setup();
        let va = 0xFF80_0000;
        mmu_calls::set_linear_mapping(&mut state, 1, va, 1, u32::MAX).unwrap();
        assert!(!mmu_calls::fault_entry_update(
            &mut cache,
            &mut b,
            &mut state,
            ON,
            va + 8,
            Some(0)
        ));
        assert_ne!(
            state.fault_linear.1,
            xen_vmi_rom::shadow_cache::quick_fault_layout::NO_UPDATE
        );
    }

    /// The ROM's image (0xC0000-0xCFFFF) has machine frames, so the old
    /// check let SetPxE write into the ROM itself.
    #[test]
    fn the_roms_frames_take_no_entries() {
        let (mut cache, mut b, mut state) = setup();
        let ptep = DIRECT_MAP + 0xC1 * 4096 + 8;
        let p = crash(mmu_calls::set_pxe_long(
            &mut cache, &mut b, &mut state, ON, 1, ptep,
        ));
        assert_eq!(p, Problem::EntryNotRam { ptep, kfn: 0xC1 });
        let r = mmu_calls::allocate_page(&mut cache, &mut b, 0xC1, VMI_PAGE_L1, 0, 0, 0);
        assert_eq!(
            r.unwrap_err().problem,
            Problem::NotKernelFrame { pfn: 0xC1 }
        );
        assert!(!b.model.guest.contains_key(&0xC1));
    }

    /// A directory entry naming table frame 2^32 + 0x2003: the walk read
    /// frame 0x2003 in its place, and the store landed where that table's
    /// entry pointed.
    #[test]
    fn a_table_beyond_32_bit_frames_is_no_alias() {
        let (mut cache, mut b, mut state) = setup();
        b.model.guest_mut(L1S[3])[0] = (u64::from(L1S[4]) << 12) | P | RW | A | D;
        let pde = (((1u64 << 32) | u64::from(L1S[3])) << 12) | P | RW;
        let at = DIRECT_MAP + L2S[0] * 4096 + WINDOW_PDE * 8;
        mmu_calls::set_pxe_long(&mut cache, &mut b, &mut state, ON, pde, at).unwrap();
        let before = b.model.guest.clone();
        let ptep = window_va(0);
        let p = crash(mmu_calls::set_pxe_long(
            &mut cache, &mut b, &mut state, ON, 1, ptep,
        ));
        assert_eq!(p, Problem::EntryNotMapped { ptep });
        assert_eq!(b.model.guest, before, "nothing stored");
    }

    /// A 2 MiB page with its PAT bit (bit 12) set: the walk took bit 12 for
    /// part of the frame, one frame off.
    #[test]
    fn a_large_page_with_pat_reaches_its_own_frames() {
        let (mut cache, mut b, mut state) = setup();
        let pde = (u64::from(L1S[0]) << 12) | 0x1000 | P | RW | PS;
        let at = DIRECT_MAP + L2S[0] * 4096 + WINDOW_PDE * 8;
        mmu_calls::set_pxe_long(&mut cache, &mut b, &mut state, ON, pde, at).unwrap();
        // The page's base is bits 21 up: the window's first page is frame
        // L1S[0] rounded down to 512 frames (0x2000 already is).
        let base = L1S[0] & !511;
        let ptep = window_va(0) + 8;
        mmu_calls::set_pxe_long(&mut cache, &mut b, &mut state, ON, 0x1234, ptep).unwrap();
        assert_eq!(b.model.guest_entry(base, 1), 0x1234);
        assert_eq!(b.model.guest_entry(base + 1, 1), 0, "one frame off");
    }

    /// A slot whose frames run past 2^32: the old slot arithmetic wrapped
    /// to frame 0 for its second page.
    #[test]
    fn a_linear_slot_past_the_frame_numbers_is_refused() {
        let (mut cache, mut b, mut state) = setup();
        let r = mmu_calls::set_linear_mapping(&mut state, 1, 0xFF80_0000, 2, u32::MAX);
        let r = r.unwrap_err();
        check_line(&r);
        assert_eq!(r.outcome(), Outcome::Continue);
        // The slot was left empty: the address is not mapped.
        let ptep = 0xFF80_1000;
        let p = crash(mmu_calls::set_pxe_long(
            &mut cache, &mut b, &mut state, ON, 1, ptep,
        ));
        assert_eq!(p, Problem::EntryNotMapped { ptep });
    }

    /// AllocatePage(PD | CLONE) without ZEROED of a directory with an
    /// entry outside the cloned range: the shadow was made from the range
    /// alone and left the entry out (the long run's first find).
    #[test]
    fn a_clone_without_zeroed_reads_the_whole_directory() {
        let (mut cache, mut b, mut state) = setup();
        let pde = (u64::from(L1S[0]) << 12) | P;
        let at = DIRECT_MAP + L2S[1] * 4096 + 7 * 8;
        mmu_calls::set_pxe_long(&mut cache, &mut b, &mut state, ON, pde, at).unwrap();
        let pdpte = (u64::from(L2S[1]) << 12) | P;
        let at = DIRECT_MAP + CR3S[2];
        mmu_calls::set_pxe_long(&mut cache, &mut b, &mut state, ON, pdpte, at).unwrap();
        let flags = VMI_PAGE_PD | VMI_PAGE_CLONE;
        let clone_pfn = CR3S[2] >> 12;
        mmu_calls::allocate_page(&mut cache, &mut b, L2S[1], flags, clone_pfn, 2, 3).unwrap();
        cache.load_root(&mut b, CR3S[2]).unwrap();
        b.end_of_call();
        check_flush_point(&cache, &mut b);
    }

    /// Lazy modes do not nest: a second MMU stays MMU (with a line); CPU
    /// over MMU flushes the queue.
    #[test]
    fn nested_lazy_modes_are_named() {
        let (mut cache, mut b, mut state) = setup();
        mmu_calls::set_lazy_mode(&mut state, &mut b, VMI_LAZY_MMU).unwrap();
        let r = mmu_calls::set_lazy_mode(&mut state, &mut b, VMI_LAZY_MMU).unwrap_err();
        check_line(&r);
        assert!(b.batch.is_lazy());
        let ptep = DIRECT_MAP + L2S[0] * 4096;
        let pde = (u64::from(L1S[0]) << 12) | P | RW;
        mmu_calls::set_pxe_long(&mut cache, &mut b, &mut state, ON, pde, ptep).unwrap();
        assert!(!b.batch.is_empty(), "queued in lazy MMU mode");
        let r = mmu_calls::set_lazy_mode(&mut state, &mut b, VMI_LAZY_CPU).unwrap_err();
        assert_eq!(
            r.problem,
            Problem::NestedLazyMode {
                mode: VMI_LAZY_CPU,
                current: VMI_LAZY_MMU
            }
        );
        // From MMU to CPU: the MMU batch went out, CPU mode queues again.
        assert!(b.batch.is_empty() && b.batch.is_lazy());
        check_flush_point(&cache, &mut b);
        let r = mmu_calls::set_lazy_mode(&mut state, &mut b, 7).unwrap_err();
        assert_eq!(r.problem, Problem::UnknownLazyMode { mode: 7 });
        assert_eq!(state.lazy, vmi_abi::flags::LazyMode::None);
    }
}

/// The lazy path's page memo (`CallState::lazy_linear`) as its one compare
/// reads it: `ptep | 0xFF8` against the page's address with bits 3-11 set.
mod lazy_memo {
    use super::found::{crash, setup, ON};
    use super::*;

    /// Lazy MMU mode with L1S[0] a page table of the loaded space (entry 0
    /// of L2S[0]) that the lazy path writes (more present entries than a
    /// known frame lists: `KNOWN_ENTRIES`) and the memo holding its page
    /// in the direct map (a general SetPxELong of its entry 1, which the
    /// lazy path declines as a page it does not know yet). Returns the
    /// page's address.
    fn lazy_with_memo(cache: &mut ShadowCache, b: &mut Backend, state: &mut CallState) -> u32 {
        let pde = (u64::from(L1S[0]) << 12) | P | RW;
        let at = DIRECT_MAP + L2S[0] * 4096;
        mmu_calls::set_pxe_long(cache, b, state, ON, pde, at).unwrap();
        let page = DIRECT_MAP + L1S[0] * 4096;
        for i in 0..=KNOWN_ENTRIES as u32 {
            let pte = (u64::from(0x500 + i) << 12) | P | US | A;
            mmu_calls::set_pxe_long(cache, b, state, ON, pte, page + 0x800 + i * 8).unwrap();
        }
        b.end_of_call();
        mmu_calls::set_lazy_mode(state, b, VMI_LAZY_MMU).unwrap();
        assert!(!mmu_calls::quick_entry_update(
            cache,
            b,
            state,
            ON,
            page + 8,
            Some(0)
        ));
        mmu_calls::set_pxe_long(cache, b, state, ON, 0, page + 8).unwrap();
        assert_eq!(state.lazy_linear, (page | 0xFF8, L1S[0]));
        page
    }

    /// An address of the memo's page with any of bits 0-2 set fails the
    /// compare (the path no longer tests the alignment apart), and the
    /// general call refuses it before any store; the aligned entries of
    /// the page, the first and the last among them, are taken.
    #[test]
    fn a_misaligned_address_of_the_memos_page_is_declined() {
        let (mut cache, mut b, mut state) = setup();
        let page = lazy_with_memo(&mut cache, &mut b, &mut state);
        for offset in [1, 2, 3, 4, 5, 6, 7, 0xFFC, 0xFFF] {
            let ptep = page + offset;
            let (before, queued) = (b.model.guest.clone(), b.batch.len());
            assert!(
                !mmu_calls::quick_entry_update(&cache, &mut b, &state, ON, ptep, Some(0)),
                "the lazy path took {ptep:#x}"
            );
            let p = crash(mmu_calls::set_pxe_long(
                &mut cache, &mut b, &mut state, ON, 0, ptep,
            ));
            assert_eq!(p, Problem::EntryMisaligned { ptep });
            assert_eq!(b.model.guest, before, "nothing stored");
            assert_eq!(b.batch.len(), queued, "nothing queued");
        }
        for offset in [0, 0x10, 0xFF8] {
            assert!(
                mmu_calls::quick_entry_update(&cache, &mut b, &state, ON, page + offset, Some(0)),
                "the lazy path declined {:#x}",
                page + offset
            );
        }
    }

    /// No address passes the memo's "none" (page 0, which `ptep | 0xFF8`
    /// never is), and a memo of page 0 itself (a linear slot at address
    /// 0) takes only that page's aligned addresses.
    #[test]
    fn page_zero_and_the_memos_none() {
        let (mut cache, mut b, mut state) = setup();
        let page = lazy_with_memo(&mut cache, &mut b, &mut state);
        mmu_calls::set_linear_mapping(&mut state, 1, 0, 1, L1S[0]).unwrap();
        assert_eq!(state.lazy_linear, CallState::NO_FAULT_LINEAR);
        for ptep in [0, 4, 7, 8, 0xFF8, page + 16] {
            assert!(
                !mmu_calls::quick_entry_update(&cache, &mut b, &state, ON, ptep, Some(0)),
                "the lazy path took {ptep:#x} with no page in its memo"
            );
        }
        // (Entry 3: the queue's last write is of entry 1, which a write of
        // the same entry would merge with, ending the plain run.)
        mmu_calls::set_pxe_long(&mut cache, &mut b, &mut state, ON, 0, 0x18).unwrap();
        assert_eq!(state.lazy_linear, (0xFF8, L1S[0]));
        for ptep in [1, 4, 7, 0xFFC, 0x1000, 0x1008] {
            assert!(
                !mmu_calls::quick_entry_update(&cache, &mut b, &state, ON, ptep, Some(0)),
                "the lazy path took {ptep:#x}"
            );
        }
        assert!(mmu_calls::quick_entry_update(
            &cache,
            &mut b,
            &state,
            ON,
            0x10,
            Some(0)
        ));
    }
}
