//! The queue of pending page-table work for the VMI ROM on Xen, packed into
//! as few hypercalls as the exactness rules below allow.
//!
//! The ROM turns VMI page-table calls into shadow-table work: `mmu_update`
//! requests (the machine address of a shadow entry and its new value),
//! `mmuext_op`s (pin, unpin, new base pointer, TLB maintenance, LDT) and
//! `update_va_mapping`s. It pushes them into an [`MmuBatch`] with a tag of its
//! own (the guest address and value that produced the op), and tells the
//! queue where the VMI ABI requires them to have reached Xen. The queue
//! issues them through a [`FlushTarget`]: the ROM implements it on the
//! hypercall page, tests on a model of Xen.
//!
//! Pure logic: no allocation, no pointers kept between calls, no `unsafe`.
//! Interface: `xen/include/public/xen.h` (interface 0x00040e00), through
//! [`xen_abi::xen`].
//!
//! # What Xen does with a batch
//!
//! The rules below rest on these semantics, read from Xen 4.17
//! (`xen/include/public/xen.h` for the interface, `xen/arch/x86/mm.c`,
//! `xen/arch/x86/x86_64/compat/mm.c` and `xen/common/multicall.c` for the
//! behaviour a 32-bit PV guest gets):
//!
//! - `HYPERVISOR_mmu_update(reqs, count, pdone, foreigndom)` (`xen.h`
//!   declares `pdone` as the output count of completed requests) applies the requests in order and **stops at the first one it refuses**,
//!   returning that request's error; `*pdone` receives the number applied
//!   before it. A preempted call is continued by Xen transparently, `pdone`
//!   still counting from the start. When Xen rejects the whole list before
//!   looking at a request (a bad list address, a bad `foreigndom`), `*pdone`
//!   is not written, so the queue zeroes it first.
//! - `HYPERVISOR_mmuext_op(ops, count, pdone, foreigndom)` has the same
//!   contract (`do_mmuext_op`; the 32-on-64 translation `compat_mmuext_op`
//!   converts in chunks but keeps it: the count is of ops done before the
//!   failing one).
//! - `HYPERVISOR_update_va_mapping(va, pte_lo, pte_hi, flags)` is one
//!   request: it takes effect or fails.
//! - `HYPERVISOR_multicall(entries, count)` runs **every** entry in order and
//!   writes each one's own return value into its `result`, **whatever the
//!   earlier entries returned**; it stops early only on a fault reading or
//!   writing the list itself (the hypercall then returns that fault) or at an
//!   `iret` entry (never queued here). A debug Xen overwrites the rest of each
//!   entry after running it, so only `result` (and `pdone` words, which live
//!   outside the entries) may be read back. An `mmu_update` or `mmuext_op`
//!   entry stops at its first failure exactly as the direct call does, and
//!   reports how far it got through its own `pdone` pointer.
//!
//! # Packing
//!
//! A flush lays the queue out as hypercalls, front to back:
//!
//! 1. Consecutive `mmu_update` requests form a *run*, and so do consecutive
//!    `mmuext_op`s; a run is one entry with a count, its requests contiguous
//!    in the queue's own argument storage (pvops Linux's
//!    `xen_mc_extend_args` idea). Each `update_va_mapping` and each
//!    `stack_switch` (a context switch's kernel stack, queued with its
//!    `MMUEXT_NEW_BASEPTR` in lazy CPU mode) is its own entry.
//! 2. Because a run can stop half way while a multicall goes on with its
//!    next entry, **an entry of two or more requests is always the last entry
//!    of its hypercall**: the requests Xen skipped behind a failure are then
//!    issued again before anything queued after them, so no later op (a TLB
//!    flush, a pin, another write) ever runs ahead of them.
//! 3. A run of at most [`SPLIT_RUN_MAX`] requests with more work behind it is
//!    split into single-request entries (which cannot stop half way), so the
//!    work behind it shares the multicall. A longer run ends the hypercall.
//! 4. A hypercall of one entry is made directly (`mmu_update`, `mmuext_op`
//!    or `update_va_mapping`), never as a one-entry multicall. A queue of one
//!    live op (the end of most calls outside lazy mode) skips the layout
//!    altogether and makes that call from the op itself; when that op is a
//!    page-table write, from the request its push built (rule 5), inline
//!    in [`MmuBatch::end_of_call`].
//! 5. A queue that is one run of live `mmu_update` requests (no other op, no
//!    merge: the common lazy batch of page-table writes) is laid out
//!    already: each push builds its request where Xen reads it, so the flush
//!    is one `mmu_update` on that array, with no run search, no copy and, when
//!    Xen applies everything, no per-op bookkeeping. It is the call the rules
//!    above give for that queue; a refusal is settled by the general path.
//!    While the queue is such a run its slots are only sure to hold their
//!    tags (a host writing by [`MmuBatch::WRITE_SLOT`] stores nothing else):
//!    each op is its request in that array, and the slots get their ops
//!    when the run ends with ops still queued (another kind of op, a merge,
//!    a refusal, [`MmuBatch::abandon`], [`MmuBatch::end_plain_run`]).
//! 6. Any other queue whose every slot is live (nothing merged away or
//!    dropped: a fork's mix of unpins, clears, writes, pins and the switch)
//!    is laid out in place: each op's push builds its arguments in the
//!    argument arrays at its own slot index, so a run's requests are
//!    contiguous where the slots stand, each entry is written once with
//!    its pointers, and the rounds above follow one another without a
//!    search for live slots, a copy or a compaction. The entries are exactly those of rules 1-4; at the first
//!    refusal (or an entry Xen did not run) the rounds so far are resolved
//!    as the general path resolves them and it takes over (model-tested
//!    against the general path, `MmuBatch::set_in_place_layout_off`).
//!
//! So N writes in lazy mode cost one `mmu_update` per queue-full, a write
//! and its INVLPG one multicall, a long run and the flush behind it two
//! direct calls. Order is otherwise kept exactly.
//!
//! Multicall entry layout (x86_32, 32-bit words): `mmu_update` and
//! `mmuext_op` entries carry `args = [address of the requests, count, address
//! of a pdone word or 0 for a single request, DOMID_SELF (0x7FF0)]`;
//! `update_va_mapping` entries carry `[va, pte_lo, pte_hi, flags]`.
//!
//! # Merging
//!
//! A `MMU_NORMAL_PT_UPDATE` pushed directly after a page-table write
//! (`MMU_NORMAL_PT_UPDATE` or `MMU_PT_UPDATE_PRESERVE_AD`) of the same
//! machine address replaces it: the last value wins and the earlier write is
//! never submitted ([`Counters::merges`]). "Directly after" is what makes it
//! exact: nothing sits between the two that could observe the intermediate
//! value. That excludes more than flushes, new base pointers and pins: a
//! write of *another* entry can observe it too, through Xen's checks (linking
//! the page that holds the entry as a page table validates all its entries;
//! mapping a frame writable and using it as a page table exclude each
//! other), and so can `update_va_mapping`, whose target entry the queue
//! cannot know. A `MMU_PT_UPDATE_PRESERVE_AD` successor never replaces: it
//! keeps the A/D bits of whatever it overwrites.
//!
//! The replaced write keeps its slot. If the write that replaced it fails,
//! it is **revived** and issued after all ([`Counters::revived`]), so the
//! entry ends with the value it would have had without the merge. Such a
//! write therefore ends its hypercall, like a run. A replaced write that is
//! never submitted cannot fail, so a refusal it would have met is not
//! reported: the entry's final value never depended on it. What a merge does
//! change is the old value the replacing write meets, which Xen looks at only
//! to skip reference counting when the frame and the bits that affect
//! translation (present, writable, caching) are unchanged (the fast path of
//! `mod_l1_entry` and its higher-level siblings in `mm.c`).
//!
//! # Dropping
//!
//! A full TLB flush (`MMUEXT_TLB_FLUSH_LOCAL` or `_ALL`) pushed while
//! earlier TLB maintenance it covers is still queued drops that maintenance
//! ([`Counters::dropped_flushes`], [`Op::covered_by`]): both would be issued
//! in the same flush, before the guest runs again, and nothing Xen does in
//! between reads the guest's TLB. Only maintenance that cannot fail is
//! dropped, so no failure is hidden.
//!
//! # Flush points
//!
//! - Outside lazy mode ops wait only until [`MmuBatch::end_of_call`], which
//!   the ROM calls at the end of every VMI call: one call's ops go out
//!   together, and nothing waits past the call.
//! - [`MmuBatch::enter_lazy`] / [`MmuBatch::leave_lazy`] (VMI SetLazyMode):
//!   in lazy mode ops stay queued across calls; leaving flushes.
//!   [`MmuBatch::leave_lazy_switching`] leaves with a context switch the
//!   caller held back out of the queue (its base pointer and stack
//!   switch): what pushing both and leaving would do, and on an empty queue
//!   the two-entry multicall laid out straight from them.
//! - [`MmuBatch::barrier`], in lazy mode or not, for the points where the ABI
//!   needs the updates to have happened: a read it promises coherent, a TLB
//!   flush / INVLPG / CR3 switch (queue the flush op, then the barrier: it goes
//!   out behind the updates it covers), and re-enabling events (a handler
//!   may touch the mappings). The ROM keeps events masked while ops are
//!   queued.
//! - A push into a full queue flushes it first.
//!
//! # Failures
//!
//! Every failed op is reported once, in queue order, through
//! [`FlushTarget::failed`] as a [`Failure`]: its tag, the op, Xen's errno and
//! the [`Cause`]. The flush then goes on: the requests behind it that Xen
//! skipped are issued again, ahead of everything queued after them, and the
//! flush returns the first failure and the count ([`Failures`]). Afterwards
//! the queue is empty and Xen's tables are exactly the result of applying the
//! queued ops in order, minus the failed ones; the caller decides what the
//! failure means (the ROM: a diagnostic and a clean guest crash).
#![cfg_attr(not(test), no_std)]

mod batch;
mod op;
mod target;

pub use batch::{Barrier, Counters, FlushReason, MmuBatch, WriteSlotLayout, SPLIT_RUN_MAX};
pub use op::{Op, PteWrite};
pub use target::{Call, Cause, Failure, Failures, FlushTarget, Multicall, NOT_RUN};
