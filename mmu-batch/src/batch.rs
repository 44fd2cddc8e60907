//! The queue itself: [`MmuBatch`], its flush API and its counters.
//!
//! The crate documentation states the rules (packing, merging, dropping,
//! flush points, failures); this module implements them and says where.

// Hypercall numbers keep Xen's spellings (`__HYPERVISOR_mmu_update`), also
// where they are matched on.
#![allow(non_upper_case_globals)]

use core::fmt;

use xen_abi::xen::{
    __HYPERVISOR_mmu_update, __HYPERVISOR_mmuext_op, __HYPERVISOR_stack_switch,
    __HYPERVISOR_update_va_mapping, MmuUpdate, MmuextOp, MulticallEntry, DOMID_SELF,
    MMU_NORMAL_PT_UPDATE,
};

use crate::op::{request_replaces, Op, PteWrite};
use crate::target::{Cause, Failure, Failures, FlushTarget, Multicall, NOT_RUN};

/// The longest run of same-kind requests that is split into single
/// multicall entries when more work follows it in the same flush.
///
/// A run of two or more requests in one entry can stop half way (Xen stops
/// `mmu_update`/`mmuext_op` at the first refused request), so such an entry
/// must be the last of its hypercall. Splitting a short run costs Xen one
/// multicall entry per request (32 bytes and one dispatch each) and saves a
/// whole hypercall; past a few requests the extra hypercall is the cheaper
/// of the two. Measured under the benchmarks (docs/benchmarks.md): 8 lets a
/// fork's unpins and pins (a run of 6) share the multicall of the writes
/// after them, one hypercall fewer at no cost in guest instructions; 32
/// would split the child's 17 entries too, one hypercall fewer again for
/// about 2% more instructions (each multicall entry is a dispatch in Xen).
pub const SPLIT_RUN_MAX: usize = 8;

/// A point where the ROM needs everything queued so far to have reached
/// Xen. Every barrier flushes the whole queue, in lazy mode or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// The VMI call about to return reads state the ABI promises coherent
    /// with the updates made so far (read-your-writes).
    CoherentRead,
    /// A TLB flush or INVLPG was just queued: it must reach Xen now, behind
    /// the updates it is meant to cover.
    TlbFlush,
    /// A new base pointer (CR3 load) was just queued, with the pins it needs.
    BaseSwitch,
    /// Events are about to be re-enabled: a handler may run and touch the
    /// mappings.
    EventsEnable,
}

/// Why a flush happened (the per-reason counters are indexed by
/// [`FlushReason::index`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushReason {
    /// [`MmuBatch::end_of_call`] outside lazy mode.
    EndOfCall,
    /// [`MmuBatch::leave_lazy`].
    LeaveLazy,
    /// The queue was full when an op was pushed.
    Capacity,
    /// [`MmuBatch::flush`].
    Explicit,
    /// [`MmuBatch::barrier`].
    Barrier(Barrier),
}

impl FlushReason {
    /// Number of distinct reasons.
    pub const COUNT: usize = 8;

    /// Dense index in `0..COUNT`.
    pub const fn index(self) -> usize {
        match self {
            FlushReason::EndOfCall => 0,
            FlushReason::LeaveLazy => 1,
            FlushReason::Capacity => 2,
            FlushReason::Explicit => 3,
            FlushReason::Barrier(Barrier::CoherentRead) => 4,
            FlushReason::Barrier(Barrier::TlbFlush) => 5,
            FlushReason::Barrier(Barrier::BaseSwitch) => 6,
            FlushReason::Barrier(Barrier::EventsEnable) => 7,
        }
    }
}

/// Counters for benchmarks (never reset by the queue itself).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Hypercalls issued: direct calls plus multicalls.
    pub hypercalls: u64,
    /// Of those, `HYPERVISOR_multicall`s.
    pub multicalls: u64,
    /// Entries in all multicalls.
    pub multicall_entries: u64,
    /// Requests submitted to Xen (`mmu_update` requests, `mmuext_op`s,
    /// `update_va_mapping`s), re-issued ones counted again.
    pub requests: u64,
    /// Ops pushed.
    pub pushes: u64,
    /// Page-table writes replaced by a later write of the same entry and
    /// never submitted (unless revived, see `revived`).
    pub merges: u64,
    /// TLB maintenance dropped because a later full flush covered it.
    pub dropped_flushes: u64,
    /// Ops that failed (each reported once).
    pub failures: u64,
    /// Requests skipped by Xen behind a failed one and submitted again.
    pub reissued: u64,
    /// Merged-away writes submitted after all, because the write that
    /// replaced them failed.
    pub revived: u64,
    /// Flushes of a non-empty queue.
    pub flushes: u64,
    /// Flushes of a non-empty queue per [`FlushReason::index`].
    pub flushes_by_reason: [u64; FlushReason::COUNT],
}

impl Counters {
    /// All zero.
    pub const ZERO: Self = Self {
        hypercalls: 0,
        multicalls: 0,
        multicall_entries: 0,
        requests: 0,
        pushes: 0,
        merges: 0,
        dropped_flushes: 0,
        failures: 0,
        reissued: 0,
        revived: 0,
        flushes: 0,
        flushes_by_reason: [0; FlushReason::COUNT],
    };

    /// Flushes for `reason`.
    pub const fn flushes_for(&self, reason: FlushReason) -> u64 {
        self.flushes_by_reason[reason.index()]
    }
}

/// Where a queued op stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum State {
    /// To be submitted.
    Live,
    /// Replaced by the write in the next slot; submitted only if that one
    /// fails.
    Superseded,
    /// Covered by a later full TLB flush in the queue; never submitted.
    Dropped,
    /// Applied or failed (or superseded by an applied write) during this
    /// flush; removed at the next compaction.
    Resolved,
}

#[derive(Clone, Copy, Debug)]
struct Slot<Tag> {
    op: Op,
    tag: Tag,
    state: State,
}

/// The requests of entry `j` of the hypercall being issued: positions
/// `first..first + count` of the argument arrays.
#[derive(Clone, Copy, Debug)]
struct Span {
    first: usize,
    count: usize,
}

/// What Xen did with one entry.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// Every request applied.
    Done,
    /// `applied` requests applied, the next one failed, the rest not run.
    Stopped {
        applied: usize,
        errno: i32,
        cause: Cause,
    },
}

impl Outcome {
    /// From a call's result and `pdone` (`xen.h`: mmu_update/mmuext_op stop
    /// at the first failure; `pdone` counts the requests before it).
    fn from_result(result: i32, done: u32, count: usize) -> Self {
        if result >= 0 {
            Outcome::Done
        } else {
            Outcome::Stopped {
                // A count past the failing request cannot be (Xen adds only
                // the requests before it); clamp rather than trust it.
                applied: (done as usize).min(count - 1),
                errno: result.checked_neg().unwrap_or(i32::MAX),
                cause: Cause::Refused,
            }
        }
    }
}

/// The queue of pending page-table work for one vCPU: `N` ops, each with a
/// caller `Tag`, and the argument storage Xen reads them from.
///
/// See the crate documentation for the rules. The queue holds no pointers
/// between calls: it can live in a `static` (it is built by the `const`
/// [`new`](Self::new)) and be moved freely while it is not being flushed.
pub struct MmuBatch<Tag, const N: usize> {
    slots: [Option<Slot<Tag>>; N],
    len: usize,
    /// Whether every queued op is a live `mmu_update` request that also
    /// sits, as Xen reads it, at the same index of `reqs` (pushes build it
    /// there): the queue is then one run, and a flush hands Xen
    /// `reqs[..len]` as it stands (`flush_plain_run`). True for an empty
    /// queue; any other op or a merge makes it false until the queue is
    /// empty again. While it holds, a slot below `len` is sure to hold
    /// only its tag (the ROM's writes in assembly, by `WRITE_SLOT`, store
    /// nothing else): its op is the request at its index of `reqs` and it
    /// is live, and `fill_mirrored_slots` writes both in when the run
    /// ends with ops still queued (a write pushed in a lazy batch stores
    /// its request once, not twice).
    mirrored: bool,
    /// Whether every queued op is live (nothing merged away or dropped
    /// since the queue was last empty): the in-place layout's condition
    /// (`flush_in_place`). Every push builds its request or `mmuext_op`
    /// at its own slot index of `reqs` / `exts`, so such a queue is laid
    /// out already. `mirrored` implies it.
    all_live: bool,
    /// Test switch: flushes skip the in-place layout (`flush_in_place`)
    /// and take the general path, so that tests can compare the two.
    in_place_off: bool,
    lazy: bool,
    counters: Counters,
    // Argument storage of the hypercall being issued. Multicall entries
    // point into `reqs`, `exts` and `done` (pvops Linux's extend-the-last-
    // entry idea: a run of requests is one entry with a count).
    calls: [MulticallEntry; N],
    reqs: [MmuUpdate; N],
    exts: [MmuextOp; N],
    done: [u32; N],
    spans: [Span; N],
    /// Argument position -> queue slot it came from.
    arg_slot: [usize; N],
    /// The context-switch pair's own multicall (`leave_lazy_switching`):
    /// what never changes (the hypercalls, the unused arguments) is laid
    /// out once, when the queue is built; each switch writes only its op,
    /// its stack and the words Xen may have written: the results, and the
    /// `mmuext_op` entry's four arguments, which a continuation rewrites
    /// and `multicall.c` copies back into the entry (after a base switch
    /// Xen drops the old base's reference in one, `old_guest_table` in
    /// `do_mmuext_op`, with the result in place of `foreigndom`).
    switch_calls: [MulticallEntry; 2],
    switch_ext: [MmuextOp; 1],
    /// Switches `leave_lazy_switching` issued on an empty queue, each one
    /// push of two ops, one flush at the lazy mode's end and one
    /// two-entry multicall: added into [`counters`](Self::counters) when
    /// they are read, not counted field by field on every switch.
    switch_pairs: u64,
    /// Writes [`write_mapped_idle`](MmuBatch::write_mapped_idle) issued,
    /// each one push, one flush at the end of a call and one
    /// `update_va_mapping` of one request: added into
    /// [`counters`](Self::counters) when they are read (one add on the
    /// fault's update instead of five). 8-byte aligned, as the counters
    /// are: one add to memory and one add with carry on i686.
    mapped_writes: AlignedCount,
}

/// [`MmuBatch::WRITE_SLOT`]: byte offsets in the queue (`reqs`, `slots`,
/// `pushes`, `len`) and in a slot (`tag_at`) of what a write that
/// [`MmuBatch::appends_write`] changes. In the mirrored queue such a write
/// goes to, a slot holds only its tag: its op is the request at the same
/// index of `reqs`, and it is live.
#[derive(Clone, Copy, Debug)]
pub struct WriteSlotLayout {
    /// The request array (16-byte `mmu_update` requests).
    pub reqs: usize,
    /// The slot array, `slot_size` bytes a slot.
    pub slots: usize,
    pub slot_size: usize,
    /// The caller's tag in a slot.
    pub tag_at: usize,
    /// `Counters::pushes` (a u64) and `len` (a usize).
    pub pushes: usize,
    pub len: usize,
}

/// A 64-bit count kept 8-byte aligned (`MmuBatch::mapped_writes`).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(8))]
struct AlignedCount(u64);

/// [`MmuBatch::switch_calls`] as laid out once.
const SWITCH_CALLS: [MulticallEntry; 2] = [
    MulticallEntry {
        op: __HYPERVISOR_mmuext_op,
        result: NOT_RUN as u32,
        args: [0, 1, 0, DOMID_SELF as u32, 0, 0],
    },
    MulticallEntry {
        op: __HYPERVISOR_stack_switch,
        result: NOT_RUN as u32,
        args: [0; 6],
    },
];
/// [`MmuBatch::switch_ext`] until the first switch writes it.
const SWITCH_EXT: MmuextOp = MmuextOp {
    cmd: 0,
    arg1: 0,
    arg2: 0,
};

impl<Tag, const N: usize> fmt::Debug for MmuBatch<Tag, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmuBatch")
            .field("capacity", &N)
            .field("len", &self.len)
            .field("lazy", &self.lazy)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<Tag: Copy, const N: usize> Default for MmuBatch<Tag, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Tag: Copy, const N: usize> MmuBatch<Tag, N> {
    /// The number of ops the queue holds.
    pub const CAPACITY: usize = N;

    /// What every queue's type must meet, evaluated wherever one is built
    /// ([`new`](Self::new), [`init_in_place`](Self::init_in_place)), for
    /// each tag type, capacity and target.
    const BUILD_CHECKS: () = {
        assert!(N > 0, "an MmuBatch needs room for at least one op");
        assert!(N <= u32::MAX as usize, "counts are 32-bit in the ABI");
        // A plain run's tags are read where `TAG_AT` says (its own check).
        let _ = Self::TAG_AT;
    };

    /// An empty queue, not in lazy mode.
    pub const fn new() -> Self {
        let () = Self::BUILD_CHECKS;
        Self {
            slots: [None; N],
            len: 0,
            mirrored: true,
            all_live: true,
            in_place_off: false,
            lazy: false,
            counters: Counters::ZERO,
            calls: [MulticallEntry {
                op: 0,
                result: 0,
                args: [0; 6],
            }; N],
            reqs: [MmuUpdate::normal_pt_update(0, 0); N],
            exts: [MmuextOp {
                cmd: 0,
                arg1: 0,
                arg2: 0,
            }; N],
            done: [0; N],
            spans: [Span { first: 0, count: 0 }; N],
            arg_slot: [0; N],
            switch_calls: SWITCH_CALLS,
            switch_ext: [SWITCH_EXT],
            switch_pairs: 0,
            mapped_writes: AlignedCount(0),
        }
    }

    /// Builds an empty queue (the same as [`new`](Self::new)) at `this`,
    /// field by field, with no temporary copy of the queue: it is tens of
    /// KiB and the ROM that keeps one runs on small kernel stacks.
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes of `Self` and suitably aligned; any
    /// previous value there is overwritten without being dropped.
    pub unsafe fn init_in_place(this: *mut Self) {
        let () = Self::BUILD_CHECKS;
        // SAFETY: every field is written through `this`, which the caller
        // vouches for, one element at a time; none of them needs dropping.
        unsafe {
            let slots = (&raw mut (*this).slots).cast::<Option<Slot<Tag>>>();
            let calls = (&raw mut (*this).calls).cast::<MulticallEntry>();
            let reqs = (&raw mut (*this).reqs).cast::<MmuUpdate>();
            let exts = (&raw mut (*this).exts).cast::<MmuextOp>();
            let done = (&raw mut (*this).done).cast::<u32>();
            let spans = (&raw mut (*this).spans).cast::<Span>();
            let arg_slot = (&raw mut (*this).arg_slot).cast::<usize>();
            for i in 0..N {
                slots.add(i).write(None);
                calls.add(i).write(MulticallEntry {
                    op: 0,
                    result: 0,
                    args: [0; 6],
                });
                reqs.add(i).write(MmuUpdate::normal_pt_update(0, 0));
                exts.add(i).write(MmuextOp {
                    cmd: 0,
                    arg1: 0,
                    arg2: 0,
                });
                done.add(i).write(0);
                spans.add(i).write(Span { first: 0, count: 0 });
                arg_slot.add(i).write(0);
            }
            (&raw mut (*this).len).write(0);
            (&raw mut (*this).mirrored).write(true);
            (&raw mut (*this).all_live).write(true);
            (&raw mut (*this).in_place_off).write(false);
            (&raw mut (*this).lazy).write(false);
            (&raw mut (*this).counters).write(Counters::ZERO);
            (&raw mut (*this).switch_calls).write(SWITCH_CALLS);
            (&raw mut (*this).switch_ext).write([SWITCH_EXT]);
            (&raw mut (*this).switch_pairs).write(0);
            (&raw mut (*this).mapped_writes).write(AlignedCount(0));
        }
    }

    /// Whether lazy mode is on.
    pub fn is_lazy(&self) -> bool {
        self.lazy
    }

    /// Queue slots in use (merged-away writes and dropped flushes keep
    /// their slot until the next flush).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where `len()` is kept in the batch (a byte offset, a `usize`), for
    /// a reader in assembly (the ROM's timer tick path sends a tick the
    /// general way while anything is queued).
    pub const LEN_OFFSET: usize = core::mem::offset_of!(Self, len);

    /// Where the counters are kept in the batch (a byte offset): a host
    /// that places the batch at a fixed address keeps them 8-byte aligned
    /// there, so that each push's count is one add to memory (at an
    /// address that is only 4-byte aligned the ROM's compiler splits the
    /// 64-bit add into loads and stores).
    pub const COUNTERS_OFFSET: usize = core::mem::offset_of!(Self, counters);

    /// Where [`is_idle`](Self::is_idle)'s two flags and the mapped-write
    /// count (8-byte aligned, a `u64`) are kept (byte offsets), for the
    /// ROM's UpdatePxELong path in assembly, which does what
    /// [`write_mapped_idle`](Self::write_mapped_idle) does.
    pub const MIRRORED_OFFSET: usize = core::mem::offset_of!(Self, mirrored);
    pub const LAZY_OFFSET: usize = core::mem::offset_of!(Self, lazy);
    pub const MAPPED_WRITES_OFFSET: usize = core::mem::offset_of!(Self, mapped_writes);

    /// Whether [`push_pte_write`](Self::push_pte_write) of a
    /// `PteWrite::Normal` write to `entry_maddr` would do no more than
    /// append it: room in the queue, a mirrored queue (every slot a live
    /// request at its index of the argument array), and a last request of
    /// another entry (so nothing is superseded). It then counts the push,
    /// builds the request at `reqs[len]`, writes the tag into `slots[len]`
    /// (the mirrored queue's slots hold nothing else), and adds one to
    /// `len`: what the ROM's lazy
    /// SetPxELong and UpdatePxELong do in assembly in this case
    /// ([`WRITE_SLOT`](Self::WRITE_SLOT) says where).
    #[inline]
    pub fn appends_write(&self, entry_maddr: u64) -> bool {
        self.len < N
            && self.mirrored
            && self
                .len
                .checked_sub(1)
                .is_none_or(|last| self.reqs[last].machine_addr() != entry_maddr)
    }

    /// Where [`appends_write`](Self::appends_write)'s write goes, as byte
    /// offsets, for a host that makes it in assembly.
    ///
    /// Naming it checks, where the host builds (its tag type, its target),
    /// that a slot's tag can be written alone: `Some`'s payload is the
    /// slot's bytes and the option's niche is not in the tag. A tag type
    /// that would hold the niche fails the build:
    ///
    /// ```compile_fail
    /// #[derive(Clone, Copy)]
    /// #[repr(u64)]
    /// enum Wide {
    ///     Only,
    /// }
    /// let _ = mmu_batch::MmuBatch::<Wide, 4>::WRITE_SLOT;
    /// ```
    ///
    /// while the same with a plain integer tag builds:
    ///
    /// ```
    /// let _ = mmu_batch::MmuBatch::<u64, 4>::WRITE_SLOT;
    /// ```
    pub const WRITE_SLOT: WriteSlotLayout = {
        use core::mem::{offset_of, size_of};
        // `Some(slot)` is the slot's bytes as they stand: the option
        // takes its niche inside the slot.
        assert!(size_of::<Option<Slot<Tag>>>() == size_of::<Slot<Tag>>());
        // A host's write of a tag alone leaves the slot's variant as it
        // was (`None` stays `None`, a stale `Some` stays `Some`): the
        // option's niche is not in the tag. Else a tag written into a
        // `None` could make it a `Some` with no valid op, or a `Some`
        // `None`, before `fill_mirrored_slots` runs.
        assert!(
            Self::tag_bytes_keep_none(0x00) && Self::tag_bytes_keep_none(0xFF),
            "the tag must not hold the slot's niche"
        );
        WriteSlotLayout {
            reqs: offset_of!(Self, reqs),
            slots: offset_of!(Self, slots),
            slot_size: size_of::<Option<Slot<Tag>>>(),
            tag_at: Self::TAG_AT,
            pushes: offset_of!(Self, counters) + offset_of!(Counters, pushes),
            len: offset_of!(Self, len),
        }
    };

    /// Where a slot's tag is in its `Option` (a byte offset): `Some`'s
    /// payload is the slot's bytes as they stand, the option's niche
    /// inside them, so the tag is where it is in a `Slot`. Asserted here,
    /// at compile time for every tag type and target a queue is built for
    /// (`BUILD_CHECKS`): an option no bigger than its payload has no byte
    /// outside it, so the payload starts at offset 0. (The unit test
    /// `mirrored_tag_is_the_slots_tag` below checks it at run time too.)
    const TAG_AT: usize = {
        use core::mem::{offset_of, size_of};
        assert!(
            size_of::<Option<Slot<Tag>>>() == size_of::<Slot<Tag>>(),
            "Some(slot) must be the slot's bytes (its niche inside it)"
        );
        offset_of!(Slot<Tag>, tag)
    };

    /// Whether writing `byte` over the tag bytes of a `None` slot leaves it
    /// `None`. True for both 0x00 and 0xFF only if the option's niche is
    /// outside the tag (the niche is one scalar field: inside the tag, one
    /// of the two patterns reads as another variant than `None`).
    const fn tag_bytes_keep_none(byte: u8) -> bool {
        let mut slot = core::mem::MaybeUninit::new(None::<Slot<Tag>>);
        // SAFETY: `TAG_AT..TAG_AT + size_of::<Tag>()` is inside the
        // option (`TAG_AT`: the payload is at offset 0); the read is of the
        // option's variant alone, whose niche bytes the `None` wrote (or
        // the tag's bytes, if it were there).
        unsafe {
            let bytes = slot.as_mut_ptr().cast::<u8>().add(Self::TAG_AT);
            bytes.write_bytes(byte, core::mem::size_of::<Tag>());
            (*slot.as_ptr()).is_none()
        }
    }

    /// The tag of a mirrored queue's slot `at` (below `len`).
    #[inline(always)]
    fn mirrored_tag(&self, at: usize) -> Tag {
        debug_assert!(self.mirrored && at < self.len);
        let slot = (&raw const self.slots[at]).cast::<u8>();
        // SAFETY: in a mirrored queue every slot below `len` had its tag
        // written whole at `TAG_AT` by its push (the whole slot by
        // `append_write` or `append_live`, the tag alone by a host's write
        // by `WRITE_SLOT`).
        unsafe { slot.add(Self::TAG_AT).cast::<Tag>().read_unaligned() }
    }

    /// Ends the mirrored run (if it is one) with its ops still queued: each
    /// slot below `len` gets its op (the request at its index of `reqs`)
    /// and `Live`, as a push outside a mirrored queue builds it, so that
    /// anything that reads slots may: before a merge marks a slot, in a
    /// crash's `abandon` and in `end_plain_run`. (`make_room`, for an op
    /// that is no write, and `flush_plain_run`, after a refusal, know the
    /// queue is a plain run and fill it in directly.)
    #[inline(always)]
    fn end_mirrored(&mut self) {
        if self.mirrored {
            self.fill_mirrored_slots();
        }
        // Also here, where the compiler sees it: what follows inline
        // knows the queue is no plain run.
        self.mirrored = false;
    }

    /// [`end_mirrored`](Self::end_mirrored)'s work, out of line (a lazy
    /// batch of writes ends by a flush, which needs no slot).
    #[inline(never)]
    fn fill_mirrored_slots(&mut self) {
        let len = self.len.min(N);
        for (slot, req) in self.slots[..len].iter_mut().zip(&self.reqs[..len]) {
            // The op and the state, around the tag that is there already.
            let slot = (slot as *mut Option<Slot<Tag>>).cast::<Slot<Tag>>();
            // SAFETY: `Some`'s payload is the slot's bytes as they stand
            // (`TAG_AT`) and the writes are in bounds (raw places, no
            // reference to a slot that may not be valid yet); its tag was
            // written whole by the push (mirrored), so once a valid op and
            // state are written every field of the slot is valid, the
            // option's niche among them: the bytes are `Some` of it.
            unsafe {
                (&raw mut (*slot).op).write(Op::MmuUpdate(*req));
                (&raw mut (*slot).state).write(State::Live);
            }
        }
        self.mirrored = false;
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        // The context-switch pairs, as `push` of both ops and a flush of
        // them at the lazy mode's end would have counted them.
        let n = self.switch_pairs;
        let mut c = self.counters;
        c.pushes += 2 * n;
        c.flushes += n;
        c.flushes_by_reason[FlushReason::LeaveLazy.index()] += n;
        c.hypercalls += n;
        c.multicalls += n;
        c.multicall_entries += 2 * n;
        c.requests += 2 * n;
        // The mapped writes, as `push` and the mapped end of the call
        // would have counted them.
        let w = self.mapped_writes.0;
        c.pushes += w;
        c.flushes += w;
        c.flushes_by_reason[FlushReason::EndOfCall.index()] += w;
        c.hypercalls += w;
        c.requests += w;
        c
    }

    /// Zeroes the counters.
    pub fn reset_counters(&mut self) {
        self.counters = Counters::ZERO;
        self.switch_pairs = 0;
        self.mapped_writes = AlignedCount(0);
    }

    /// Test hook: with `off`, a flush of a queue that is not one plain run
    /// takes the general layout (`pack`, compaction between rounds) even
    /// when every slot is live, instead of the in-place one; the two must
    /// make the same hypercalls and report the same refusals.
    #[doc(hidden)]
    pub fn set_in_place_layout_off(&mut self, off: bool) {
        self.in_place_off = off;
    }

    /// The ops that will be submitted, in order, with their tags (merged-
    /// away writes and dropped flushes left out).
    pub fn pending(&self) -> impl Iterator<Item = (Op, Tag)> + '_ {
        // A mirrored queue's from `reqs` and the tags, any other from its
        // slots.
        let (mirrored, general) = if self.mirrored {
            (self.len, 0)
        } else {
            (0, self.len)
        };
        (0..mirrored)
            .map(|at| (Op::MmuUpdate(self.reqs[at]), self.mirrored_tag(at)))
            .chain(
                self.slots[..general]
                    .iter()
                    .flatten()
                    .filter(|slot| slot.state == State::Live)
                    .map(|slot| (slot.op, slot.tag)),
            )
    }

    /// Ends a plain run of queued writes (a lazy batch's, whose slots
    /// hold only their tags, the requests being in the argument array) as
    /// the next op that is no such write would: every queued op then has
    /// its slot. Nothing observable changes: the same ops are pending, and
    /// a flush makes the same hypercalls (the in-place layout's entries
    /// for a run are the plain run's) and reports the same failures. For a
    /// caller about to walk [`pending`](Self::pending) before it pushes
    /// such an op anyway (the ROM's InvalPage check): inlined, the walk
    /// then reads slots alone.
    #[inline(always)]
    pub fn end_plain_run(&mut self) {
        self.end_mirrored();
        // An empty queue stays a plain run (`mirrored`'s rule): it is
        // idle (`is_idle`, a page fault's update goes out mapped) and
        // appends (`appends_write`), as if nothing had been called. With
        // ops queued the run is over until the next flush. (Inlined, the
        // walk of `pending` that follows still knows that a queue with
        // ops is no plain run.)
        self.mirrored = self.len == 0;
    }

    /// Queues `op`. If the queue is full it is flushed first (whatever the
    /// mode); otherwise nothing is issued here. Returns the failures of that
    /// flush, if any; `op` is queued either way.
    ///
    /// A `MMU_NORMAL_PT_UPDATE` of the entry the previous push wrote
    /// replaces it; a full TLB flush drops the queued TLB maintenance it
    /// covers (crate documentation, "Merging" and "Dropping").
    ///
    /// Inline (a lazy batch pushes hundreds of writes in a row): the full
    /// queue's flush and a full TLB flush's dropping are out of line.
    #[inline]
    pub fn push<T: FlushTarget<Tag>>(
        &mut self,
        op: Op,
        tag: Tag,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        let flushed = self.make_room(&op, target);
        // Dropping: TLB maintenance queued earlier in this same flush, which
        // this full flush redoes before the guest can run again.
        if op.is_full_flush() {
            self.drop_covered(&op);
        }
        // The op's arguments, built where Xen will read them (the plain
        // run's and the in-place layout's). Any other op than a write ends
        // the plain run (`make_room` has filled its slots in).
        match op {
            Op::MmuUpdate(req) => self.reqs[self.len] = req,
            Op::Mmuext(ext) => {
                self.exts[self.len] = ext;
                self.mirrored = false;
            }
            _ => self.mirrored = false,
        }

        self.append_live(op, tag);
        flushed
    }

    /// Queues `op` as a live slot behind the others (`make_room` has made
    /// room for it).
    #[inline(always)]
    fn append_live(&mut self, op: Op, tag: Tag) {
        self.slots[self.len] = Some(Slot {
            op,
            tag,
            state: State::Live,
        });
        self.len += 1;
    }

    /// What every push does before it queues `op`: a full queue is
    /// flushed, and `op` supersedes the op pushed just before it when it
    /// replaces it. Only that one, so that nothing between the two can have
    /// observed the value being replaced (crate documentation, "Merging").
    #[inline(always)]
    fn make_room<T: FlushTarget<Tag>>(
        &mut self,
        op: &Op,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        let flushed = if self.len >= N {
            self.flush_full(target)
        } else {
            Ok(())
        };
        debug_assert!(self.len < N, "a flush empties the queue");
        self.counters.pushes += 1;
        if let Some(last) = self.len.checked_sub(1) {
            // In a mirrored queue every slot is a live `mmu_update` and
            // `reqs[last]` is its request: the test reads just that (a
            // lazy batch's every push makes it).
            let replaces = if self.mirrored {
                match op {
                    Op::MmuUpdate(req) => request_replaces(req, &self.reqs[last]),
                    // Any other op ends the plain run: its slots are filled
                    // in now (`push` clears `mirrored`), before anything
                    // reads them (`drop_covered`).
                    _ => {
                        self.fill_mirrored_slots();
                        false
                    }
                }
            } else {
                let prev = self.slot(last);
                prev.state == State::Live && op.replaces(&prev.op)
            };
            if replaces {
                self.supersede(last);
            }
        }
        flushed
    }

    /// `push` into a full queue: it is flushed first.
    #[cold]
    #[inline(never)]
    fn flush_full<T: FlushTarget<Tag>>(&mut self, target: &mut T) -> Result<(), Failures<Tag>> {
        self.flush_for(FlushReason::Capacity, target)
    }

    /// The queued TLB maintenance the full flush `op` covers is dropped
    /// (crate documentation, "Dropping").
    #[inline(never)]
    fn drop_covered(&mut self, op: &Op) {
        let mut dropped = 0;
        for slot in self.slots[..self.len].iter_mut().flatten() {
            if slot.state == State::Live && slot.op.covered_by(op) {
                slot.state = State::Dropped;
                dropped += 1;
            }
        }
        if dropped != 0 {
            self.all_live = false;
        }
        self.counters.dropped_flushes += dropped;
    }

    /// Queues a shadow page-table write: `val` into the entry at machine
    /// address `entry_maddr`. The same as [`push`](Self::push) of
    /// [`Op::pte_write`] (a write is no TLB flush, so nothing is dropped),
    /// with the op built in its slot rather than passed in: the ROM's
    /// every SetPxE.
    #[inline(always)]
    pub fn push_pte_write<T: FlushTarget<Tag>>(
        &mut self,
        entry_maddr: u64,
        val: u64,
        mode: PteWrite,
        tag: Tag,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        let req = MmuUpdate::with_command(mode.command(), entry_maddr, val);
        let mut at = self.len;
        let mut flushed = Ok(());
        if at >= N {
            // A full queue is flushed first; a flush empties it (refused
            // or not: the write is queued either way).
            flushed = self.flush_full(target);
            debug_assert_eq!(self.len, 0, "a flush empties the queue");
            at = 0;
        }
        // `make_room` and `append_live` written out for a write (every
        // SetPxE of a batch): the index below the capacity needs no check,
        // the previous slot is found by `get` (none before the first: the
        // index wraps), and no flush result is carried.
        self.counters.pushes += 1;
        let last = at.wrapping_sub(1);
        let replaces = if self.mirrored {
            // Every slot is a live request, at the same index of `reqs`.
            self.reqs
                .get(last)
                .is_some_and(|prev| request_replaces(&req, prev))
        } else {
            match self.slots.get(last) {
                Some(Some(prev)) => {
                    prev.state == State::Live
                        && matches!(&prev.op, Op::MmuUpdate(p) if request_replaces(&req, p))
                }
                _ => false,
            }
        };
        if replaces {
            self.supersede(last);
        }
        self.append_write(at, req, tag);
        flushed
    }

    /// Queues the write `req` as a live slot at `at` (`len`, below the
    /// capacity), its request also where Xen reads it (after a merge or
    /// another kind of op the general layout rebuilds `reqs`). The whole
    /// slot is built here, in a mirrored queue too (more than it needs,
    /// `mirrored`: one store sequence, not a branch at every call site).
    #[inline(always)]
    fn append_write(&mut self, at: usize, req: MmuUpdate, tag: Tag) {
        self.reqs[at] = req;
        self.slots[at] = Some(Slot {
            op: Op::MmuUpdate(req),
            tag,
            state: State::Live,
        });
        self.len = at + 1;
    }

    /// The op in slot `last` is replaced by the one being pushed (crate
    /// documentation, "Merging"): out of line, a batch rarely writes one
    /// entry twice in a row.
    #[inline(never)]
    fn supersede(&mut self, last: usize) {
        // Neither the mirrored array nor the in-place layout holds a
        // queue with a dead slot.
        self.end_mirrored();
        self.slot_mut(last).state = State::Superseded;
        self.counters.merges += 1;
        self.all_live = false;
    }

    /// Queues an `mmuext_op` (build it with `MmuextOp::pin_l1_table`,
    /// `new_baseptr`, `invlpg_local`, `tlb_flush_all`, `set_ldt`, ...). See
    /// [`push`](Self::push).
    pub fn push_mmuext<T: FlushTarget<Tag>>(
        &mut self,
        op: MmuextOp,
        tag: Tag,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        self.push(Op::Mmuext(op), tag, target)
    }

    /// Queues an `update_va_mapping(va, pte, flags)`. See
    /// [`push`](Self::push).
    pub fn push_update_va_mapping<T: FlushTarget<Tag>>(
        &mut self,
        va: u32,
        pte: u64,
        flags: u32,
        tag: Tag,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        self.push(Op::UpdateVaMapping { va, pte, flags }, tag, target)
    }

    /// Queues a `stack_switch(ss, esp)`. See [`push`](Self::push).
    pub fn push_stack_switch<T: FlushTarget<Tag>>(
        &mut self,
        ss: u32,
        esp: u32,
        tag: Tag,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        self.push(Op::StackSwitch { ss, esp }, tag, target)
    }

    /// Enters lazy mode (VMI SetLazyMode with a mode other than NONE): ops
    /// stay queued until [`leave_lazy`](Self::leave_lazy), a
    /// [`barrier`](Self::barrier), or a full queue. Entering twice is the
    /// same as entering once.
    pub fn enter_lazy(&mut self) {
        self.lazy = true;
    }

    /// Leaves lazy mode and flushes the queue.
    pub fn leave_lazy<T: FlushTarget<Tag>>(&mut self, target: &mut T) -> Result<(), Failures<Tag>> {
        self.lazy = false;
        self.flush_for(FlushReason::LeaveLazy, target)
    }

    /// Leaves lazy mode with a context switch the caller held back out of
    /// the queue (lazy CPU mode): its `MMUEXT_NEW_BASEPTR` (`base`) and
    /// `stack_switch(ss, esp)`, tagged by `tags` (asked for only if the
    /// ops must be queued or reported). The same as pushing both and then
    /// [`leave_lazy`](Self::leave_lazy): on an empty queue that is the
    /// two-entry multicall, issued from the pair's own entries
    /// (`switch_calls`, laid out once: only the changing words are
    /// written), and when both entries succeed nothing is queued at all;
    /// otherwise the two ops take their slots and the flush goes on as
    /// usual.
    ///
    /// Inline (every context switch): the queued case and the settling
    /// after a refusal are out of line.
    #[inline(always)]
    pub fn leave_lazy_switching<T: FlushTarget<Tag>>(
        &mut self,
        base: MmuextOp,
        (ss, esp): (u32, u32),
        tags: impl FnOnce() -> (Tag, Tag),
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        self.lazy = false;
        // Laid out first: the other paths read it from there.
        self.switch_ext[0] = base;
        if self.len != 0 || N < 2 || Op::Mmuext(base).is_full_flush() {
            return self.switch_queued((ss, esp), tags(), target);
        }
        let ext = (&raw const self.switch_ext[0]).expose_provenance() as u32;
        let [ref mut base_call, ref mut stack_call] = self.switch_calls;
        base_call.result = NOT_RUN as u32;
        base_call.args[..4].copy_from_slice(&[ext, 1, 0, u32::from(DOMID_SELF)]);
        stack_call.result = NOT_RUN as u32;
        stack_call.args[0] = ss;
        stack_call.args[1] = esp;
        debug_assert!(self.switch_layout_intact());
        // Counted whatever Xen answers, as the general path counts a flush
        // before it settles the results.
        self.switch_pairs += 1;
        let list_result = {
            let mut calls = Multicall::laid_out(
                &mut self.switch_calls,
                &[],
                &self.switch_ext,
                &mut self.done[..2],
            );
            target.multicall(&mut calls)
        };
        // Both results and the list's in one test.
        if (list_result as u32 | self.switch_calls[0].result | self.switch_calls[1].result) == 0 {
            return Ok(());
        }
        self.switch_refused(tags(), list_result, target)
    }

    /// Whether `switch_calls` still holds what is laid out once
    /// (`SWITCH_CALLS`) where no switch writes.
    fn switch_layout_intact(&self) -> bool {
        let [base, stack] = &self.switch_calls;
        let [laid_base, laid_stack] = &SWITCH_CALLS;
        base.op == laid_base.op
            && base.args[4..] == laid_base.args[4..]
            && stack.op == laid_stack.op
            && stack.args[2..] == laid_stack.args[2..]
    }

    /// [`leave_lazy_switching`](Self::leave_lazy_switching) with ops
    /// queued (or a queue too small for the pair): both are pushed behind
    /// them and the queue flushed.
    #[cold]
    #[inline(never)]
    fn switch_queued<T: FlushTarget<Tag>>(
        &mut self,
        (ss, esp): (u32, u32),
        (base_tag, stack_tag): (Tag, Tag),
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        let base = self.switch_ext[0];
        let pushed = self.push(Op::Mmuext(base), base_tag, target);
        let pushed = pushed.and(self.push(Op::StackSwitch { ss, esp }, stack_tag, target));
        pushed.and(self.flush_for(FlushReason::LeaveLazy, target))
    }

    /// [`leave_lazy_switching`](Self::leave_lazy_switching)'s multicall
    /// met a refusal, or did not run whole (`list_result`).
    #[cold]
    #[inline(never)]
    fn switch_refused<T: FlushTarget<Tag>>(
        &mut self,
        (base_tag, stack_tag): (Tag, Tag),
        list_result: i32,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        // The pair as laid out (Xen reads the op and the stack switch's
        // arguments, it never writes them).
        let base = self.switch_ext[0];
        let [ss, esp, ..] = self.switch_calls[1].args;
        // Settled in the general path's storage, as if the pair had been
        // laid out there.
        self.calls[..2].copy_from_slice(&self.switch_calls);
        self.exts[0] = self.switch_ext[0];
        for entry in 0..2 {
            self.spans[entry] = Span {
                first: entry,
                count: 1,
            };
            self.arg_slot[entry] = entry;
        }
        // What Xen refused or did not run is settled as a flush of the
        // two queued ops would settle it.
        self.slots[0] = Some(Slot {
            op: Op::Mmuext(base),
            tag: base_tag,
            state: State::Live,
        });
        self.slots[1] = Some(Slot {
            op: Op::StackSwitch { ss, esp },
            tag: stack_tag,
            state: State::Live,
        });
        self.len = 2;
        self.mirrored = false;
        let mut failures = None;
        self.settle_multicall(2, list_result, target, &mut failures);
        self.finish_flush(target, failures)
    }

    /// Flushes the queue because of `reason`, in lazy mode or not; lazy mode
    /// stays as it was.
    pub fn barrier<T: FlushTarget<Tag>>(
        &mut self,
        reason: Barrier,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        self.flush_for(FlushReason::Barrier(reason), target)
    }

    /// The end of a VMI call: outside lazy mode the queue is flushed (so
    /// every op pushed during the call is issued before the call returns,
    /// in as few hypercalls as the rules allow); in lazy mode nothing
    /// happens.
    #[inline(always)]
    pub fn end_of_call<T: FlushTarget<Tag>>(
        &mut self,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        if self.lazy {
            Ok(())
        } else if self.len == 1 && self.mirrored {
            // The usual end of a call outside lazy mode: one page-table
            // write, its request laid out already.
            self.issue_mirrored_single(FlushReason::EndOfCall, target)
        } else {
            self.flush_for(FlushReason::EndOfCall, target)
        }
    }

    /// [`end_of_call`](Self::end_of_call), told that virtual address `va`
    /// of the loaded address space is mapped by the page-table entry at
    /// machine address `entry_maddr` (the caller has checked it against
    /// the tables Xen walks). When the queue is that entry's lone normal
    /// update, it goes out as `update_va_mapping(va, val, 0)`: Xen then
    /// finds the entry through its linear map of the loaded tables and
    /// writes it as `mmu_update` would (the same validation, no flush with
    /// flags 0), for about 180 of Xen's instructions fewer. Anything else
    /// ends as `end_of_call` does.
    #[inline(always)]
    pub fn end_of_call_mapped<T: FlushTarget<Tag>>(
        &mut self,
        target: &mut T,
        va: u32,
        entry_maddr: u64,
    ) -> Result<(), Failures<Tag>> {
        if !self.lazy
            && self.len == 1
            && self.mirrored
            && self.reqs[0].ptr.get() == entry_maddr | u64::from(MMU_NORMAL_PT_UPDATE)
        {
            self.counters.flushes += 1;
            self.counters.flushes_by_reason[FlushReason::EndOfCall.index()] += 1;
            self.counters.hypercalls += 1;
            self.counters.requests += 1;
            let result = target.update_va_mapping(va, self.reqs[0].val.get(), 0);
            self.len = 0;
            if result >= 0 {
                return Ok(());
            }
            return self.single_refused(result, target);
        }
        self.end_of_call(target)
    }

    /// Whether nothing is queued, outside lazy mode: a write the
    /// [`write_mapped`](Self::write_mapped) way can go out at once.
    #[inline(always)]
    pub fn is_idle(&self) -> bool {
        self.len == 0 && self.mirrored && !self.lazy
    }

    /// A normal write of the page-table entry at machine address
    /// `entry_maddr` ending a VMI call, `va` of the loaded address space
    /// being mapped by that entry, on an idle queue ([`is_idle`]
    /// (Self::is_idle)): what `push_pte_write` with [`PteWrite::Normal`]
    /// then [`end_of_call_mapped`](Self::end_of_call_mapped)`(va,
    /// entry_maddr)` do there (entries, counters and failures alike), that
    /// is one `update_va_mapping(va, val, 0)`, issued here without the
    /// queue's slot, request or checks (the kernel's update of the entry of
    /// a page fault it was just given). A refusal is reported as the mapped
    /// end reports it. None, with nothing done, when the queue is not idle.
    #[inline(always)]
    pub fn write_mapped<T: FlushTarget<Tag>>(
        &mut self,
        target: &mut T,
        va: u32,
        entry_maddr: u64,
        val: u64,
        tag: Tag,
    ) -> Option<Result<(), Failures<Tag>>> {
        if !self.is_idle() {
            return None;
        }
        Some(self.write_mapped_idle(target, va, entry_maddr, val, tag))
    }

    /// [`write_mapped`](Self::write_mapped) when the caller has just seen
    /// [`is_idle`](Self::is_idle) say true, with nothing pushed, flushed or
    /// switched since (the ROM's one-step update after a page fault tests
    /// it right before): the same hypercall, counters and failures, without
    /// testing it again. On a queue that is not idle the write would pass
    /// what is queued: a caller's bug, caught by a debug assertion.
    #[inline(always)]
    pub fn write_mapped_idle<T: FlushTarget<Tag>>(
        &mut self,
        target: &mut T,
        va: u32,
        entry_maddr: u64,
        val: u64,
        tag: Tag,
    ) -> Result<(), Failures<Tag>> {
        debug_assert!(self.is_idle(), "a mapped write on a busy queue");
        self.mapped_writes.0 += 1;
        let result = target.update_va_mapping(va, val, 0);
        if result >= 0 {
            return Ok(());
        }
        self.mapped_write_refused(entry_maddr, val, tag, result, target)
    }

    /// [`write_mapped`](Self::write_mapped)'s `update_va_mapping` refused:
    /// reported as the queued write's refusal would be. Public for a
    /// caller that made [`write_mapped_idle`](Self::write_mapped_idle)'s
    /// count and hypercall itself (the ROM's path in assembly).
    #[cold]
    #[inline(never)]
    pub fn mapped_write_refused<T: FlushTarget<Tag>>(
        &mut self,
        entry_maddr: u64,
        val: u64,
        tag: Tag,
        result: i32,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        let op = Op::pte_write(entry_maddr, val, PteWrite::Normal);
        self.single_refusal(tag, op, result, target)
    }

    /// The flush of a queue that is one live `mmu_update` request, laid
    /// out in `reqs[0]` by its push (`len` 1, `mirrored`): the request as
    /// its own `mmu_update`, with the counters [`flush_for`](Self::flush_for)
    /// keeps. It is what [`issue_single`](Self::issue_single) does with
    /// that queue, without the dispatch and the copy of the slot: inline,
    /// a page-table update outside lazy mode ends in one test and the
    /// hypercall. A refusal is reported as `issue_single` reports it.
    #[inline(always)]
    fn issue_mirrored_single<T: FlushTarget<Tag>>(
        &mut self,
        reason: FlushReason,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        debug_assert!(self.len == 1 && self.mirrored);
        self.counters.flushes += 1;
        self.counters.flushes_by_reason[reason.index()] += 1;
        self.counters.hypercalls += 1;
        self.counters.requests += 1;
        let mut done = 0;
        let result = target.mmu_update(&self.reqs[..1], &mut done);
        // Slot 0 is not read again before a push overwrites it (as after
        // `flush_plain_run`): nothing to clear.
        self.len = 0;
        if result >= 0 {
            return Ok(());
        }
        self.single_refused(result, target)
    }

    /// [`issue_mirrored_single`](Self::issue_mirrored_single) after Xen
    /// refused the request: the failure of slot 0, reported once.
    #[cold]
    #[inline(never)]
    fn single_refused<T: FlushTarget<Tag>>(
        &mut self,
        result: i32,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        // The queue was mirrored (its `len`, 1, already given back): the
        // op is `reqs[0]`, the slot holds the tag.
        debug_assert!(self.mirrored && self.len == 0);
        // SAFETY: as `mirrored_tag`'s: slot 0 had its tag written by the
        // push of the request just refused.
        let tag = unsafe {
            (&raw const self.slots[0])
                .cast::<u8>()
                .add(Self::TAG_AT)
                .cast::<Tag>()
                .read_unaligned()
        };
        self.single_refusal(tag, Op::MmuUpdate(self.reqs[0]), result, target)
    }

    /// Reports the refusal of a queue's only op, sent as its own call
    /// (`result` is Xen's negative errno): one failure, told to the target
    /// and returned.
    fn single_refusal<T: FlushTarget<Tag>>(
        &mut self,
        tag: Tag,
        op: Op,
        result: i32,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        let failure = Failure {
            tag,
            op,
            errno: result.checked_neg().unwrap_or(i32::MAX),
            cause: Cause::Refused,
        };
        self.counters.failures += 1;
        target.failed(&failure);
        Err(Failures {
            first: failure,
            count: 1,
        })
    }

    /// Flushes the queue now (teardown, or before a crash report that
    /// wants Xen's tables current).
    pub fn flush<T: FlushTarget<Tag>>(&mut self, target: &mut T) -> Result<(), Failures<Tag>> {
        self.flush_for(FlushReason::Explicit, target)
    }

    /// Empties the queue without issuing anything, handing every op that
    /// would have been submitted to `each`, in order (the crash path: no op
    /// disappears unseen). Returns how many there were.
    pub fn abandon(&mut self, mut each: impl FnMut(&Op, &Tag)) -> usize {
        self.end_mirrored();
        let mut count = 0;
        for slot in self.slots[..self.len].iter_mut() {
            if let Some(s) = slot.take() {
                if s.state == State::Live {
                    each(&s.op, &s.tag);
                    count += 1;
                }
            }
        }
        self.len = 0;
        self.mirrored = true;
        self.all_live = true;
        count
    }

    // -----------------------------------------------------------------
    // Flushing

    /// Issues hypercalls until every queued op has taken effect or failed.
    /// One copy per target: its callers are many and it is not small.
    #[inline(never)]
    fn flush_for<T: FlushTarget<Tag>>(
        &mut self,
        reason: FlushReason,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        if self.len == 0 {
            return Ok(());
        }
        if self.len == 1 && self.mirrored {
            return self.issue_mirrored_single(reason, target);
        }
        self.counters.flushes += 1;
        self.counters.flushes_by_reason[reason.index()] += 1;
        if self.len == 1 {
            if let Some(slot) = self.slots[0].filter(|s| s.state == State::Live) {
                return self.issue_single(slot, target);
            }
        }
        if self.mirrored {
            return self.flush_plain_run(target);
        }
        if !self.in_place_off && self.all_live {
            // Ok written here rather than carried out of
            // `flush_in_place` (a copy of the whole result per flush).
            return match self.flush_in_place(target) {
                None => Ok(()),
                Some(handed_over) => handed_over,
            };
        }
        self.finish_flush(target, None)
    }

    /// A queue that is one run of live `mmu_update` requests, already laid
    /// out in `reqs[..len]` by the pushes (the common lazy batch of
    /// SetPxE writes): one direct `mmu_update` on them, with no run search,
    /// no copy and no compaction. It is the call [`pack`](Self::pack) would
    /// lay out (a run with nothing behind it is one entry, issued directly).
    /// On full success the queue is simply emptied; after a refusal the
    /// entry is settled and the rest finished by the general path, which
    /// re-issues what Xen skipped behind the refused request.
    fn flush_plain_run<T: FlushTarget<Tag>>(
        &mut self,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        let count = self.len;
        self.counters.hypercalls += 1;
        self.counters.requests += count as u64;
        let mut done = 0;
        let result = target.mmu_update(&self.reqs[..count], &mut done);
        if result >= 0 {
            // Slots at and past `len` are never read before a push
            // overwrites them: nothing to clear.
            self.len = 0;
            return Ok(());
        }
        // The general path's bookkeeping for that one entry, then its
        // settling (only after a refusal: a per-op cost is fine here).
        self.fill_mirrored_slots();
        self.spans[0] = Span { first: 0, count };
        for (pos, slot) in self.arg_slot[..count].iter_mut().enumerate() {
            *slot = pos;
        }
        let mut failures = None;
        self.settle(
            0,
            Outcome::from_result(result, done, count),
            target,
            &mut failures,
        );
        self.finish_flush(target, failures)
    }

    /// A queue whose every slot is live (nothing merged away or dropped:
    /// a fork's mix of unpins, clears, writes, pins and base switches,
    /// `all_live`): each op's arguments are at its own slot index of the
    /// argument arrays already (its push built them there), so a run's
    /// requests are `first..first + count` where the slots stand, and the
    /// hypercalls are laid out with no search for live slots, no copy and
    /// no compaction, each entry written once with its pointers in place.
    /// The entries are [`pack`](Self::pack)'s (the same runs, splits and
    /// ends of a hypercall; with every slot live no entry can revive a
    /// merged-away write). While every entry succeeds the next round starts
    /// behind the last one; at the first refusal (or an entry Xen did not
    /// run) the rounds so far are resolved as the general path resolves
    /// them, that round is settled as it settles it, and the general path
    /// finishes (its result returned). None: every op took effect. The
    /// caller has checked that every slot is live.
    fn flush_in_place<T: FlushTarget<Tag>>(
        &mut self,
        target: &mut T,
    ) -> Option<Result<(), Failures<Tag>>> {
        debug_assert!(self.all_live);
        let len = self.len;
        let mut start = 0;
        while start < len {
            let (entries, end, requests) = self.pack_in_place(start);
            if let Some(handed_over) = self.issue_in_place(start, entries, requests, target) {
                return Some(handed_over);
            }
            start = end;
        }
        // Slots at and past `len` are never read before a push overwrites
        // them: nothing to clear.
        self.len = 0;
        self.mirrored = true;
        None
    }

    /// The hypercall number of the op in live slot `idx`.
    #[inline(always)]
    fn kind_at(&self, idx: usize) -> u32 {
        self.slot(idx).op.hypercall()
    }

    /// [`pack`](Self::pack) for the in-place layout of live slots
    /// `start..len`: returns the entry count, the slot the next round
    /// starts at and the requests laid out.
    fn pack_in_place(&mut self, start: usize) -> (usize, usize, usize) {
        let len = self.len;
        let mut entries = 0;
        let mut idx = start;
        while idx < len {
            let kind = self.kind_at(idx);
            let mut run = 1;
            if kind != __HYPERVISOR_update_va_mapping && kind != __HYPERVISOR_stack_switch {
                while idx + run < len && self.kind_at(idx + run) == kind {
                    run += 1;
                }
            }
            let after = idx + run;
            // One entry that ends the hypercall, or single entries.
            let ends = run > 1 && (run > SPLIT_RUN_MAX || after == len);
            let (count, singles) = if ends { (run, 1) } else { (1, run) };
            for k in 0..singles {
                self.emit_in_place(entries, idx + k, count);
                entries += 1;
            }
            if ends {
                return (entries, after, after - start);
            }
            idx = after;
        }
        (entries, len, len - start)
    }

    /// [`emit`](Self::emit) and [`Multicall::new`] in one, for the
    /// in-place layout: entry `entry` for the `count` requests at slots
    /// `first..first + count`, whose arguments are at the same positions,
    /// with its pointers in place, its `pdone` word cleared and its result
    /// [`NOT_RUN`].
    fn emit_in_place(&mut self, entry: usize, first: usize, count: usize) {
        let (op, args) = match self.slot(first).op {
            Op::MmuUpdate(_) => (
                __HYPERVISOR_mmu_update,
                self.run_args(self.reqs.as_ptr().wrapping_add(first), entry, count),
            ),
            Op::Mmuext(_) => (
                __HYPERVISOR_mmuext_op,
                self.run_args(self.exts.as_ptr().wrapping_add(first), entry, count),
            ),
            Op::UpdateVaMapping { va, pte, flags } => (
                __HYPERVISOR_update_va_mapping,
                [va, pte as u32, (pte >> 32) as u32, flags, 0, 0],
            ),
            Op::StackSwitch { ss, esp } => (__HYPERVISOR_stack_switch, [ss, esp, 0, 0, 0, 0]),
        };
        self.calls[entry] = MulticallEntry {
            op,
            result: NOT_RUN as u32,
            args,
        };
        self.done[entry] = 0;
        self.spans[entry] = Span { first, count };
    }

    /// The arguments of an `mmu_update` / `mmuext_op` entry `entry` for
    /// `count` requests at `requests` (`emit`'s layout, as
    /// [`Multicall::new`] leaves it): a `pdone` word for two or more.
    #[inline(always)]
    fn run_args<R>(&mut self, requests: *const R, entry: usize, count: usize) -> [u32; 6] {
        // Exposed, not just converted: Xen reads the requests and writes
        // the count behind an `asm!` the compiler cannot see through (so
        // the count's pointer comes from a mutable borrow).
        let pdone = if count > 1 {
            self.done
                .as_mut_ptr()
                .wrapping_add(entry)
                .expose_provenance() as u32
        } else {
            0
        };
        [
            requests.expose_provenance() as u32,
            count as u32,
            pdone,
            u32::from(DOMID_SELF),
            0,
            0,
        ]
    }

    /// Issues a round of the in-place layout (slots `start..` laid out as
    /// `entries`, `requests` in all), as [`issue`](Self::issue) does. None
    /// when every entry succeeded; otherwise the general path takes the
    /// queue over from here and its result is returned.
    fn issue_in_place<T: FlushTarget<Tag>>(
        &mut self,
        start: usize,
        entries: usize,
        requests: usize,
        target: &mut T,
    ) -> Option<Result<(), Failures<Tag>>> {
        let mut failures = None;
        if entries == 1 {
            self.counters.hypercalls += 1;
            let Span { first, count } = self.spans[0];
            self.counters.requests += count as u64;
            let mut done = 0;
            let result = match self.slot(first).op {
                Op::MmuUpdate(_) => target.mmu_update(&self.reqs[first..first + count], &mut done),
                Op::Mmuext(_) => target.mmuext_op(&self.exts[first..first + count], &mut done),
                Op::UpdateVaMapping { va, pte, flags } => target.update_va_mapping(va, pte, flags),
                Op::StackSwitch { ss, esp } => target.stack_switch(ss, esp),
            };
            if result >= 0 {
                return None;
            }
            self.hand_over(start);
            self.settle(
                0,
                Outcome::from_result(result, done, count),
                target,
                &mut failures,
            );
        } else {
            // `call_multicall`'s count and call, on the entries laid out
            // with their pointers.
            self.counters.hypercalls += 1;
            self.counters.multicalls += 1;
            self.counters.multicall_entries += entries as u64;
            self.counters.requests += requests as u64;
            let list_result = {
                let mut calls = Multicall::laid_out(
                    &mut self.calls[..entries],
                    &self.reqs,
                    &self.exts,
                    &mut self.done[..entries],
                );
                target.multicall(&mut calls)
            };
            // `settle_multicall` takes an entry that ran with a result of
            // 0 or more as done, whatever the list's own result.
            if self.calls[..entries].iter().all(|c| c.result as i32 >= 0) {
                return None;
            }
            self.hand_over(start);
            self.settle_multicall(entries, list_result, target, &mut failures);
        }
        Some(self.finish_flush(target, failures))
    }

    /// The in-place layout hands the queue to the general path before
    /// settling a round that met a refusal: the rounds before it are
    /// resolved (as their settling and compaction left them there), and
    /// every argument position names its own slot.
    #[cold]
    #[inline(never)]
    fn hand_over(&mut self, start: usize) {
        self.mirrored = false;
        self.all_live = false;
        for idx in 0..self.len {
            self.arg_slot[idx] = idx;
            if idx < start {
                self.slot_mut(idx).state = State::Resolved;
            }
        }
    }

    /// The rest of a flush: hypercalls until every live op has taken
    /// effect or failed (`failures`: those met so far).
    fn finish_flush<T: FlushTarget<Tag>>(
        &mut self,
        target: &mut T,
        mut failures: Option<Failures<Tag>>,
    ) -> Result<(), Failures<Tag>> {
        loop {
            self.compact();
            if self.next_live(0).is_none() {
                break;
            }
            // Each round resolves at least one op (a hypercall's first
            // request is applied or failed), so this ends.
            let entries = self.pack();
            self.issue(entries, target, &mut failures);
        }
        debug_assert_eq!(self.len, 0);
        self.mirrored = true;
        self.all_live = true;
        match failures {
            None => Ok(()),
            Some(failures) => Err(failures),
        }
    }

    /// A queue of one live op (the end of most calls outside lazy mode):
    /// the op as its own hypercall, with no packing. It is what
    /// [`pack`](Self::pack) and [`issue`](Self::issue) would make of it (a
    /// one-request entry issued directly), in fewer instructions.
    fn issue_single<T: FlushTarget<Tag>>(
        &mut self,
        slot: Slot<Tag>,
        target: &mut T,
    ) -> Result<(), Failures<Tag>> {
        self.slots[0] = None;
        self.len = 0;
        self.mirrored = true;
        self.all_live = true;
        self.counters.hypercalls += 1;
        self.counters.requests += 1;
        let mut done = 0;
        let result = match slot.op {
            Op::MmuUpdate(req) => target.mmu_update(core::slice::from_ref(&req), &mut done),
            Op::Mmuext(op) => target.mmuext_op(core::slice::from_ref(&op), &mut done),
            Op::UpdateVaMapping { va, pte, flags } => target.update_va_mapping(va, pte, flags),
            Op::StackSwitch { ss, esp } => target.stack_switch(ss, esp),
        };
        if result >= 0 {
            return Ok(());
        }
        self.single_refusal(slot.tag, slot.op, result, target)
    }

    /// Lays out the next hypercall from the front of the queue into
    /// `calls`/`spans` and the argument arrays; returns its entry count.
    ///
    /// Runs of consecutive same-kind requests become one entry with a count
    /// (`update_va_mapping` is always alone). An entry that can stop half
    /// way (two or more requests) or whose failure revives a merged-away
    /// write ends the hypercall, so that whatever Xen skips goes out before
    /// anything queued behind it. A short run with more work behind it is
    /// split into single entries instead (see [`SPLIT_RUN_MAX`]).
    fn pack(&mut self) -> usize {
        let mut entries = 0;
        let mut pos = 0;
        let mut next = self.next_live(0);
        while let Some(start) = next {
            let (run_len, after) = self.run_at(start);
            if run_len > 1 && (run_len > SPLIT_RUN_MAX || after.is_none()) {
                self.emit(entries, &mut pos, start, run_len);
                return entries + 1;
            }
            let mut idx = start;
            for k in 0..run_len {
                if k > 0 {
                    idx = self
                        .next_live(idx + 1)
                        .expect("the run has run_len live slots");
                }
                self.emit(entries, &mut pos, idx, 1);
                entries += 1;
                if self.has_superseded_predecessor(idx) {
                    return entries;
                }
            }
            next = after;
        }
        entries
    }

    /// The run starting at live slot `start`: its number of requests and the
    /// first live slot after it.
    fn run_at(&self, start: usize) -> (usize, Option<usize>) {
        let kind = self.slot(start).op.hypercall();
        let mut len = 1;
        let mut next = self.next_live(start + 1);
        if kind == __HYPERVISOR_update_va_mapping || kind == __HYPERVISOR_stack_switch {
            return (len, next);
        }
        while let Some(idx) = next {
            if self.slot(idx).op.hypercall() != kind {
                break;
            }
            len += 1;
            next = self.next_live(idx + 1);
        }
        (len, next)
    }

    /// Writes entry `entry` for `count` requests starting at live slot
    /// `start`, their arguments at `*pos..`.
    ///
    /// Layout (x86_32 `struct multicall_entry`): `mmu_update` and
    /// `mmuext_op` get `args = [requests, count, pdone, DOMID_SELF]`, where
    /// `pdone` is 0 for a single request (its result says everything);
    /// `update_va_mapping` gets `[va, pte_lo, pte_hi, flags]`. The pointer
    /// arguments hold array indices until [`Multicall::new`] turns them into
    /// addresses.
    fn emit(&mut self, entry: usize, pos: &mut usize, start: usize, count: usize) {
        let first = *pos;
        let head = self.slot(start).op;
        let mut call = MulticallEntry {
            op: head.hypercall(),
            result: 0,
            args: [0; 6],
        };
        if let Op::UpdateVaMapping { va, pte, flags } = head {
            call.args[..4].copy_from_slice(&[va, pte as u32, (pte >> 32) as u32, flags]);
            self.arg_slot[first] = start;
            *pos += 1;
        } else if let Op::StackSwitch { ss, esp } = head {
            call.args[..2].copy_from_slice(&[ss, esp]);
            self.arg_slot[first] = start;
            *pos += 1;
        } else {
            let mut idx = start;
            for k in 0..count {
                if k > 0 {
                    idx = self
                        .next_live(idx + 1)
                        .expect("the run has count live slots");
                }
                match self.slot(idx).op {
                    Op::MmuUpdate(req) => self.reqs[*pos] = req,
                    Op::Mmuext(op) => self.exts[*pos] = op,
                    Op::UpdateVaMapping { .. } | Op::StackSwitch { .. } => {
                        unreachable!("runs are of one kind")
                    }
                }
                self.arg_slot[*pos] = idx;
                *pos += 1;
            }
            call.args[..4].copy_from_slice(&[
                first as u32,
                count as u32,
                u32::from(count > 1),
                u32::from(DOMID_SELF),
            ]);
        }
        self.calls[entry] = call;
        self.spans[entry] = Span { first, count };
    }

    /// Issues the `entries` laid out by [`pack`](Self::pack): one entry as a
    /// direct hypercall, several as one multicall; then settles each entry
    /// Xen ran.
    fn issue<T: FlushTarget<Tag>>(
        &mut self,
        entries: usize,
        target: &mut T,
        failures: &mut Option<Failures<Tag>>,
    ) {
        if entries == 1 {
            self.counters.hypercalls += 1;
            let Span { first, count } = self.spans[0];
            self.counters.requests += count as u64;
            let mut done = 0;
            let result = match self.calls[0].op {
                __HYPERVISOR_mmu_update => {
                    target.mmu_update(&self.reqs[first..first + count], &mut done)
                }
                __HYPERVISOR_mmuext_op => {
                    target.mmuext_op(&self.exts[first..first + count], &mut done)
                }
                _ => match self.slot(self.arg_slot[first]).op {
                    Op::UpdateVaMapping { va, pte, flags } => {
                        target.update_va_mapping(va, pte, flags)
                    }
                    Op::StackSwitch { ss, esp } => target.stack_switch(ss, esp),
                    _ => unreachable!("a run's kind is its first entry's"),
                },
            };
            self.settle(
                0,
                Outcome::from_result(result, done, count),
                target,
                failures,
            );
            return;
        }

        let list_result = self.call_multicall(entries, target);
        self.settle_multicall(entries, list_result, target, failures);
    }

    /// The `entries` laid out as one `HYPERVISOR_multicall`, counted;
    /// returns the hypercall's own result (each entry's is in its
    /// `result`). Out of line: the general path's rounds only.
    #[inline(never)]
    fn call_multicall<T: FlushTarget<Tag>>(&mut self, entries: usize, target: &mut T) -> i32 {
        self.counters.hypercalls += 1;
        self.counters.multicalls += 1;
        self.counters.multicall_entries += entries as u64;
        self.counters.requests += self.spans[..entries]
            .iter()
            .map(|span| span.count as u64)
            .sum::<u64>();
        let mut calls = Multicall::new(
            &mut self.calls[..entries],
            &self.reqs,
            &self.exts,
            &mut self.done[..entries],
        );
        target.multicall(&mut calls)
    }

    /// Settles each entry of a multicall Xen ran (`list_result` is the
    /// hypercall's own result). Not inlined: the ROM's image is small and
    /// this runs only after a failure or from the general flush.
    #[inline(never)]
    fn settle_multicall<T: FlushTarget<Tag>>(
        &mut self,
        entries: usize,
        list_result: i32,
        target: &mut T,
        failures: &mut Option<Failures<Tag>>,
    ) {
        // multicall.c: every entry runs in order and gets its own result,
        // whatever the others returned; only a fault on the list itself
        // stops early, and then the hypercall's own result is that fault.
        for j in 0..entries {
            let result = self.calls[j].result as i32;
            if result == NOT_RUN {
                if list_result < 0 {
                    let errno = list_result.checked_neg().unwrap_or(i32::MAX);
                    let outcome = Outcome::Stopped {
                        applied: 0,
                        errno,
                        cause: Cause::BatchRejected,
                    };
                    self.settle(j, outcome, target, failures);
                } else if j == 0 {
                    let outcome = Outcome::Stopped {
                        applied: 0,
                        errno: 0,
                        cause: Cause::NotRun,
                    };
                    self.settle(j, outcome, target, failures);
                }
                // Entries not run stay queued, in order, for the next round.
                break;
            }
            let outcome = Outcome::from_result(result, self.done[j], self.spans[j].count);
            self.settle(j, outcome, target, failures);
        }
    }

    /// Records what Xen did with entry `entry`: applied requests are
    /// resolved, a failed one is resolved and reported (reviving the write it
    /// replaced, if any), and the requests behind it stay live, to be issued
    /// again at the front of the queue.
    fn settle<T: FlushTarget<Tag>>(
        &mut self,
        entry: usize,
        outcome: Outcome,
        target: &mut T,
        failures: &mut Option<Failures<Tag>>,
    ) {
        let Span { first, count } = self.spans[entry];
        let applied = match outcome {
            Outcome::Done => count,
            Outcome::Stopped { applied, .. } => applied,
        };
        for pos in first..first + applied {
            self.slot_mut(self.arg_slot[pos]).state = State::Resolved;
        }
        let Outcome::Stopped { errno, cause, .. } = outcome else {
            return;
        };
        let idx = self.arg_slot[first + applied];
        let slot = self.slot_mut(idx);
        slot.state = State::Resolved;
        let failure = Failure {
            tag: slot.tag,
            op: slot.op,
            errno,
            cause,
        };
        self.counters.failures += 1;
        self.counters.reissued += (count - applied - 1) as u64;
        target.failed(&failure);
        match failures {
            None => {
                *failures = Some(Failures {
                    first: failure,
                    count: 1,
                })
            }
            Some(failures) => failures.count += 1,
        }
        // The failed write had replaced the one before it: that one now
        // decides the entry's value, so it goes out after all.
        if self.has_superseded_predecessor(idx) {
            self.slot_mut(idx - 1).state = State::Live;
            self.counters.revived += 1;
        }
    }

    /// Removes resolved and dropped slots, and superseded ones whose
    /// replacement is gone, keeping the order of the rest.
    fn compact(&mut self) {
        // A superseded slot always sits right before the write that replaced
        // it (merging only looks at the previous push, and compaction keeps
        // them together), so walk backwards.
        let mut keep_next = false;
        for slot in self.slots[..self.len].iter_mut().rev().flatten() {
            let keep = match slot.state {
                State::Live => true,
                State::Superseded => keep_next,
                State::Dropped | State::Resolved => false,
            };
            if !keep {
                slot.state = State::Resolved;
            }
            keep_next = keep;
        }
        let mut kept = 0;
        for read in 0..self.len {
            if self.slot(read).state != State::Resolved {
                // A slot that stays where it is is not copied onto itself
                // (a 40-byte move: most flushes keep every slot in place).
                if kept != read {
                    self.slots[kept] = self.slots[read];
                }
                kept += 1;
            }
        }
        for slot in &mut self.slots[kept..self.len] {
            *slot = None;
        }
        self.len = kept;
    }

    // -----------------------------------------------------------------
    // Slot helpers

    fn slot(&self, idx: usize) -> &Slot<Tag> {
        self.slots[idx]
            .as_ref()
            .expect("slots below len are filled")
    }

    fn slot_mut(&mut self, idx: usize) -> &mut Slot<Tag> {
        self.slots[idx]
            .as_mut()
            .expect("slots below len are filled")
    }

    /// The first live slot at or after `from`.
    fn next_live(&self, from: usize) -> Option<usize> {
        (from..self.len).find(|&idx| self.slot(idx).state == State::Live)
    }

    /// Whether the slot before `idx` holds a write that `idx` replaced.
    fn has_superseded_predecessor(&self, idx: usize) -> bool {
        idx > 0 && self.slot(idx - 1).state == State::Superseded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tag shaped as the ROM's (`shadow_cache::Tag`: an enum byte, a
    /// frame, an index and the kernel's entry).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum What {
        A,
        B,
        C,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct RomTag {
        what: What,
        kfn: u32,
        index: u16,
        guest: u64,
    }

    type Batch = MmuBatch<RomTag, 4>;

    /// The tag alone into slot `at`, as a host's write by `WRITE_SLOT`.
    fn write_tag(b: &mut Batch, at: usize, tag: RomTag) {
        let slot = (&raw mut b.slots[at]).cast::<u8>();
        // SAFETY: `TAG_AT` is inside the slot (the option is the slot's
        // size) and the write is of a tag.
        unsafe {
            slot.add(Batch::TAG_AT)
                .cast::<RomTag>()
                .write_unaligned(tag)
        }
    }

    /// `TAG_AT` (and so `WRITE_SLOT.tag_at`) is where `Some(slot)` keeps
    /// its tag, and a tag written there leaves the option's variant, op
    /// and state as they were: a mirrored slot's stale contents stay a
    /// valid value, and `None` stays `None`.
    #[test]
    fn mirrored_tag_is_the_slots_tag() {
        let ops = [
            Op::MmuUpdate(MmuUpdate::normal_pt_update(
                0x1234_5678_9008,
                0x8000_0000_0000_0067,
            )),
            Op::Mmuext(MmuextOp::tlb_flush_local()),
            Op::UpdateVaMapping {
                va: 0xC000_0000,
                pte: u64::MAX,
                flags: 2,
            },
            Op::StackSwitch { ss: 0x69, esp: 1 },
        ];
        let tags = [
            RomTag {
                what: What::A,
                kfn: 7,
                index: 511,
                guest: 0x0123_4567_89AB_CDEF,
            },
            RomTag {
                what: What::C,
                kfn: u32::MAX,
                index: 0,
                guest: u64::MAX,
            },
        ];
        let mut b: Box<Batch> = Box::default();
        for op in ops {
            for (state, tag) in [State::Live, State::Resolved].into_iter().zip(tags) {
                b.slots[0] = Some(Slot {
                    op,
                    tag: tags[1],
                    state,
                });
                b.mirrored = true;
                b.len = 1;
                assert_eq!(b.mirrored_tag(0), tags[1]);
                write_tag(&mut b, 0, tag);
                assert_eq!(b.mirrored_tag(0), tag);
                let slot = b.slots[0].expect("still Some");
                assert_eq!((slot.op, slot.tag, slot.state), (op, tag, state));
            }
        }
        b.slots[1] = None;
        write_tag(&mut b, 1, tags[0]);
        assert!(b.slots[1].is_none(), "a tag written into None");
        b.len = 2;
        assert_eq!(b.mirrored_tag(1), tags[0]);
        // Filled in: slot 0 held a stale op and state, slot 1 was None.
        let reqs = [
            MmuUpdate::normal_pt_update(0x5000, 0x67),
            MmuUpdate::normal_pt_update(0x5008, 0),
        ];
        b.reqs[..2].copy_from_slice(&reqs);
        b.fill_mirrored_slots();
        assert!(!b.mirrored);
        for (at, tag) in [tags[1], tags[0]].into_iter().enumerate() {
            let slot = b.slots[at].expect("filled in");
            assert_eq!(
                (slot.op, slot.tag, slot.state),
                (Op::MmuUpdate(reqs[at]), tag, State::Live)
            );
        }
        let _ = What::B;
    }
}
