//! Where a flush goes: the [`FlushTarget`] the ROM implements on Xen's
//! hypercall page (and tests implement on a model), the [`Multicall`] list it
//! is handed, and the [`Failure`] it reports.
//!
//! The calls mirror `xen/include/public/xen.h`: `HYPERVISOR_mmu_update`,
//! `HYPERVISOR_mmuext_op`, `HYPERVISOR_update_va_mapping` and
//! `HYPERVISOR_multicall` with `struct multicall_entry` as a 32-bit guest
//! lays it out (one 32-bit word per argument, 64-bit values split low word
//! first).

// Hypercall numbers keep Xen's spellings (`__HYPERVISOR_mmu_update`), also
// where they are matched on.
#![allow(non_upper_case_globals)]

use xen_abi::xen::{
    __HYPERVISOR_mmu_update, __HYPERVISOR_mmuext_op, __HYPERVISOR_stack_switch,
    __HYPERVISOR_update_va_mapping, MmuUpdate, MmuextOp, MulticallEntry,
};
use xen_abi::XenError;

use crate::op::Op;

/// Value the queue writes into `multicall_entry.result` before the call.
/// Xen overwrites `result` of every entry it runs with that call's return
/// value, which for the three MMU hypercalls is 0 or a negated errno
/// (`-4095..=-1`); an entry still holding this value was not run.
pub const NOT_RUN: i32 = i32::MIN;

/// The hypercalls a flush makes. The ROM implements it on the hypercall
/// page; tests implement it on a model of Xen.
///
/// Every method returns the hypercall's raw result as Xen returns it in
/// `%eax`: 0 on success, a negated errno on failure. The queue always names
/// itself as the page owner: the real calls pass `DOMID_SELF` as
/// `foreigndom` (and the queue puts `DOMID_SELF` into multicall entries).
pub trait FlushTarget<Tag> {
    /// `HYPERVISOR_mmu_update(reqs, reqs.len(), pdone, DOMID_SELF)`.
    ///
    /// Xen applies the requests in order and stops at the first one it
    /// refuses; `*pdone` gets the number applied before it. `*pdone` is 0
    /// when called and must be left alone by a backend that has no count to
    /// give (Xen does not write it when it rejects the whole list early).
    fn mmu_update(&mut self, reqs: &[MmuUpdate], pdone: &mut u32) -> i32;

    /// `HYPERVISOR_mmuext_op(ops, ops.len(), pdone, DOMID_SELF)`, with the
    /// same stop-at-first-failure and `pdone` contract as
    /// [`mmu_update`](Self::mmu_update).
    fn mmuext_op(&mut self, ops: &[MmuextOp], pdone: &mut u32) -> i32;

    /// `HYPERVISOR_update_va_mapping(va, pte_lo, pte_hi, flags)` (the 32-bit
    /// ABI passes the 64-bit entry as two words).
    fn update_va_mapping(&mut self, va: u32, pte: u64, flags: u32) -> i32;

    /// `HYPERVISOR_stack_switch(ss, esp)`: takes effect or fails (0 or a
    /// negated errno, as the others).
    fn stack_switch(&mut self, ss: u32, esp: u32) -> i32;

    /// `HYPERVISOR_multicall(calls.entries_mut(), calls.len())`.
    ///
    /// The real backend passes the entries' address and count and nothing
    /// else: the entries hold the guest addresses of their arguments, which
    /// live in the queue. A model uses [`Multicall::decode`],
    /// [`Multicall::set_result`] and [`Multicall::write_done`] instead.
    fn multicall(&mut self, calls: &mut Multicall<'_>) -> i32;

    /// A queued op failed. Called once per failure, in queue order, before
    /// the flush that found it returns (the flush itself goes on with the
    /// rest of the queue).
    fn failed(&mut self, failure: &Failure<Tag>);
}

/// Why an op failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Xen ran the request and refused it: the errno is that request's own
    /// result (a direct call's return value, or the multicall entry's
    /// `result` with `pdone` pointing at this request).
    Refused,
    /// The multicall hypercall itself failed (its return value is the errno)
    /// before it reached the entry carrying this op, the first one not run.
    BatchRejected,
    /// The backend returned success for a multicall but ran none of its
    /// entries (`errno` is 0). Xen does not do this; the op is failed so
    /// that the flush still ends.
    NotRun,
}

/// A queued op that did not take effect, in the caller's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure<Tag> {
    /// The tag the op was queued with (for the ROM: the guest address and
    /// value that produced it).
    pub tag: Tag,
    /// The op as queued.
    pub op: Op,
    /// The positive Xen errno (22 for `EINVAL`); 0 for [`Cause::NotRun`].
    pub errno: i32,
    /// How the failure was learnt.
    pub cause: Cause,
}

impl<Tag> Failure<Tag> {
    /// The errno as a [`XenError`].
    pub fn error(&self) -> XenError {
        XenError::from_errno(self.errno)
    }
}

/// What a flush that met failures returns: the first failure (all of them
/// went to [`FlushTarget::failed`]) and how many there were. The queue is
/// empty and consistent either way: every other op took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failures<Tag> {
    /// The first failure, in queue order.
    pub first: Failure<Tag>,
    /// How many ops failed in this flush (at least 1).
    pub count: u32,
}

/// One multicall entry decoded back into its hypercall and arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call<'a> {
    /// `mmu_update(reqs, count, pdone, foreigndom)`.
    MmuUpdate {
        /// The requests `args[0]` and `args[1]` name.
        reqs: &'a [MmuUpdate],
        /// Whether `args[2]` points at a `pdone` word (it is 0 for a single
        /// request, whose result alone tells everything).
        pdone: bool,
        /// `args[3]`.
        foreigndom: u32,
    },
    /// `mmuext_op(ops, count, pdone, foreigndom)`.
    MmuextOp {
        /// The ops `args[0]` and `args[1]` name.
        ops: &'a [MmuextOp],
        /// Whether `args[2]` points at a `pdone` word.
        pdone: bool,
        /// `args[3]`.
        foreigndom: u32,
    },
    /// `update_va_mapping(va, pte_lo, pte_hi, flags)`.
    UpdateVaMapping {
        /// `args[0]`.
        va: u32,
        /// `args[1] | args[2] << 32`.
        pte: u64,
        /// `args[3]`.
        flags: u32,
    },
    /// `stack_switch(ss, esp)`.
    StackSwitch {
        /// `args[0]`.
        ss: u32,
        /// `args[1]`.
        esp: u32,
    },
}

/// The entries of one `HYPERVISOR_multicall`, with the argument storage
/// they point into (the queue's own arrays).
///
/// Pointer arguments are guest virtual addresses as a 32-bit guest sees
/// them. In the ROM they are the real addresses of the queue's arrays; on a
/// 64-bit host they are those addresses truncated to 32 bits, which is
/// still enough for [`decode`](Self::decode) to find the slices again
/// (offsets within the arrays are unchanged by the truncation).
#[derive(Debug)]
pub struct Multicall<'a> {
    entries: &'a mut [MulticallEntry],
    reqs: &'a [MmuUpdate],
    ops: &'a [MmuextOp],
    done: &'a mut [u32],
}

/// The low 32 bits of an address, as the guest ABI stores pointers.
fn addr32<T>(ptr: *const T) -> u32 {
    ptr.addr() as u32
}

/// Index of the element at 32-bit address `addr` in `slice`, if `addr`
/// points at one (or one past the end, for an empty slice start).
fn index_in<T>(slice: &[T], addr: u32) -> Option<usize> {
    let size = core::mem::size_of::<T>() as u32;
    let offset = addr.wrapping_sub(addr32(slice.as_ptr()));
    let index = (offset / size) as usize;
    (offset % size == 0 && index <= slice.len()).then_some(index)
}

impl<'a> Multicall<'a> {
    /// Fills in the pointer arguments of `entries` (whose `args[0]` holds,
    /// for now, the index of the first request in `reqs` or `ops`, and whose
    /// `args[2]` is nonzero when the entry needs a `pdone` word) and wraps
    /// them for the call. Entry `j`'s `pdone` word is `done[j]`.
    pub(crate) fn new(
        entries: &'a mut [MulticallEntry],
        reqs: &'a [MmuUpdate],
        ops: &'a [MmuextOp],
        done: &'a mut [u32],
    ) -> Self {
        // Clear the counts and results before any pointer to them is taken:
        // the hypercall writes them through those pointers.
        for (entry, done) in entries.iter_mut().zip(done.iter_mut()) {
            entry.result = NOT_RUN as u32;
            *done = 0;
        }
        let done_base = done.as_mut_ptr();
        for (j, entry) in entries.iter_mut().enumerate() {
            let args_base: *const u8 = match entry.op {
                __HYPERVISOR_mmu_update => {
                    reqs.as_ptr().wrapping_add(entry.args[0] as usize).cast()
                }
                __HYPERVISOR_mmuext_op => ops.as_ptr().wrapping_add(entry.args[0] as usize).cast(),
                _ => continue,
            };
            // Exposed, not just converted: Xen reads the requests and writes
            // the count behind an `asm!` the compiler cannot see through.
            entry.args[0] = args_base.expose_provenance() as u32;
            if entry.args[2] != 0 {
                entry.args[2] = done_base.wrapping_add(j).expose_provenance() as u32;
            }
        }
        Self {
            entries,
            reqs,
            ops,
            done,
        }
    }

    /// Wraps `entries` laid out with their argument pointers in place,
    /// every `result` already [`NOT_RUN`] and every `pdone` word an entry
    /// points at cleared (the queue's context-switch pair,
    /// `MmuBatch::leave_lazy_switching`, and its in-place layout).
    pub(crate) fn laid_out(
        entries: &'a mut [MulticallEntry],
        reqs: &'a [MmuUpdate],
        ops: &'a [MmuextOp],
        done: &'a mut [u32],
    ) -> Self {
        debug_assert!(entries.iter().all(|e| e.result == NOT_RUN as u32));
        Self {
            entries,
            reqs,
            ops,
            done,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries (never, for a list the queue issues).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as Xen reads them.
    pub fn entries(&self) -> &[MulticallEntry] {
        self.entries
    }

    /// The entries, for the real hypercall: pass
    /// `entries_mut().as_mut_ptr()` and `len()`.
    pub fn entries_mut(&mut self) -> &mut [MulticallEntry] {
        self.entries
    }

    /// Entry `index` decoded: the hypercall and its arguments, with pointer
    /// arguments resolved into the queue's storage. `None` if the entry is
    /// not one the queue produces or a pointer does not point where it must.
    pub fn decode(&self, index: usize) -> Option<Call<'_>> {
        let entry = self.entries.get(index)?;
        let count = entry.args[1] as usize;
        match entry.op {
            __HYPERVISOR_mmu_update => {
                let first = index_in(self.reqs, entry.args[0])?;
                let reqs = self.reqs.get(first..first.checked_add(count)?)?;
                let pdone = self.pdone_slot(entry)?.is_some();
                Some(Call::MmuUpdate {
                    reqs,
                    pdone,
                    foreigndom: entry.args[3],
                })
            }
            __HYPERVISOR_mmuext_op => {
                let first = index_in(self.ops, entry.args[0])?;
                let ops = self.ops.get(first..first.checked_add(count)?)?;
                let pdone = self.pdone_slot(entry)?.is_some();
                Some(Call::MmuextOp {
                    ops,
                    pdone,
                    foreigndom: entry.args[3],
                })
            }
            __HYPERVISOR_update_va_mapping => Some(Call::UpdateVaMapping {
                va: entry.args[0],
                pte: u64::from(entry.args[1]) | u64::from(entry.args[2]) << 32,
                flags: entry.args[3],
            }),
            __HYPERVISOR_stack_switch => Some(Call::StackSwitch {
                ss: entry.args[0],
                esp: entry.args[1],
            }),
            _ => None,
        }
    }

    /// The `pdone` word of an `mmu_update` or `mmuext_op` entry:
    /// `Some(None)` for a null `args[2]`, `Some(Some(slot))` for a pointer to
    /// `done[slot]`, `None` for a pointer anywhere else.
    fn pdone_slot(&self, entry: &MulticallEntry) -> Option<Option<usize>> {
        match entry.args[2] {
            0 => Some(None),
            addr => index_in(self.done, addr)
                .filter(|&slot| slot < self.done.len())
                .map(Some),
        }
    }

    /// Stores entry `index`'s result, as Xen does after running it.
    pub fn set_result(&mut self, index: usize, result: i32) {
        self.entries[index].result = result as u32;
    }

    /// Writes `value` to the `pdone` word entry `index`'s `args[2]` points
    /// at, as Xen does. Returns false (and writes nothing) if the entry has
    /// no `pdone` pointer.
    pub fn write_done(&mut self, index: usize, value: u32) -> bool {
        let Some(entry) = self.entries.get(index) else {
            return false;
        };
        if !matches!(entry.op, __HYPERVISOR_mmu_update | __HYPERVISOR_mmuext_op) {
            return false;
        }
        match self.pdone_slot(entry) {
            Some(Some(slot)) => {
                self.done[slot] = value;
                true
            }
            _ => false,
        }
    }
}
