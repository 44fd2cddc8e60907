//! The VMI page-table calls (SetPxE, SetPxELong, UpdatePxE, UpdatePxELong,
//! AllocatePage, ReleasePage, SetLinearMapping, SetLazyMode, and the
//! activated paths of FlushTLB and InvalPage) as pure logic over the
//! shadow cache, host-testable: the ROM's `paging.rs` wraps each in an
//! `extern "C"` entry, and `tests/fuzz_calls.rs` drives them with random
//! arguments against a model of Xen (docs/fuzzing.md).
//!
//! What the ROM provides is the [`CallHost`] trait: the shadow cache's
//! [`Host`] (kernel frames, the pool, the queue) plus reading and storing
//! the kernel's entries through views and the queue's flush points. A call
//! never prints or crashes by itself: an invalid argument comes back as a
//! [`Rejection`] naming the call and the argument, whose
//! [`outcome`](Rejection::outcome) says what the ROM does with it (the
//! call was ignored or carried out in a defined way after the line, or the
//! domain is crashed), and whose [`describe`](Rejection::describe) writes
//! the console line.

use mmu_batch::{Barrier, Op};
use vmi_abi::flags::{
    LazyMode, VMI_FLUSH_GLOBAL, VMI_FLUSH_TLB, VMI_LINEAR_MAP_SLOTS, VMI_PAGE_CLONE,
    VMI_PAGE_LEVEL_MASK, VMI_PAGE_PD, VMI_PAGE_PDP, VMI_PAGE_PT, VMI_PAGE_ZEROED,
};
use xen_abi::xen::MmuextOp;

use crate::shadow_cache::{Host, MappedWrite, Reach, ShadowCache, ShadowError, Tag, What, ENTRIES};
use crate::shadow_entry::{l1_value_settled, FRAME, PAT_OR_PSE, PRESENT};

/// SetLinearMapping slots (vmi.h: slot 0 the lowmem direct map, 1 and 2
/// HIGHPTE's kmap_atomic_pte windows).
pub const LINEAR_SLOTS: usize = VMI_LINEAR_MAP_SLOTS as usize;

/// One SetLinearMapping slot: `pages` pages from virtual address `va` map
/// kernel frames `pfn`, `pfn + 1`, ... (`pages` 0: unused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinearSlot {
    pub va: u32,
    pub pages: u32,
    pub pfn: u32,
}

/// What the calls remember between calls (in the ROM, part of the paging
/// state in the run-time area).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallState {
    pub linear: [LinearSlot; LINEAR_SLOTS],
    /// The slots of `linear` in use, in slot order, then empty ones: what
    /// an entry call searches (the first slot holding an address is the
    /// same either way, and the one a kernel uses is found first when it
    /// is not slot 0). Kept by [`set_linear_mapping`].
    pub in_use: [LinearSlot; LINEAR_SLOTS],
    /// The lazy mode the kernel is in (SetLazyMode): lazy modes do not nest
    /// (Linux's paravirt enter_lazy insists on LAZY_NONE before entering).
    pub lazy: LazyMode,
    /// The page of entry addresses the last one-step update after a page
    /// fault ([`fault_entry_update`]) found in a linear slot, with paging
    /// on: the page's address with bits 0-11 set and its kernel frame,
    /// what `linear_entry_frame` says for every address in that page
    /// (never frame u32::MAX, the fault path's "no table" the ROM's paths
    /// in assembly compare it with), or [`CallState::NO_FAULT_LINEAR`]. Forgotten whenever a slot changes
    /// ([`set_linear_mapping`]): the kernel's handler updates entry after
    /// entry of one page table, one compare.
    pub fault_linear: (u32, u32),
    /// The same for the lazy update's path ([`quick_entry_update`]): the
    /// page of entry addresses it last found in a linear slot (with
    /// paging on), as the page's address with bits 3-11 set (`ptep |
    /// 0xFF8` equals it for an 8-aligned `ptep` in the page alone: the
    /// ROM's path in assembly tests page and alignment in one compare),
    /// and its kernel frame, never a frame of the ROM's area, or
    /// [`CallState::NO_FAULT_LINEAR`]. Forgotten with `fault_linear`.
    pub lazy_linear: (u32, u32),
}

impl CallState {
    /// `fault_linear` of no page: page 0, which no address with bits 0-11
    /// set equals, and a frame no page table has (beyond every frame the
    /// ROM's k2m table can describe, and not `u32::MAX`, the fault path's
    /// "no table" for UpdatePxELong's path in assembly). That path tests
    /// the page and the entry's offset in one compare (`ptep ^ page ^
    /// offset` is 0xFFF), which page 0 passes for an address in page 0
    /// with bits 0-2 set; it then compares the frame, which this one
    /// fails, so such an address takes the general call's refusal. As
    /// `lazy_linear` it matches nothing at all: `ptep | 0xFF8` is never 0.
    pub const NO_FAULT_LINEAR: (u32, u32) = (0, u32::MAX - 1);

    /// Paging goes off: the lazy path's page memo (`lazy_linear`, kept
    /// only with paging on) is forgotten, so that a page it holds says
    /// paging is on (the ROM's lazy path in assembly relies on it instead
    /// of testing paging).
    pub fn paging_off(&mut self) {
        self.lazy_linear = Self::NO_FAULT_LINEAR;
    }
}

impl Default for CallState {
    fn default() -> Self {
        CallState {
            linear: [LinearSlot::default(); LINEAR_SLOTS],
            in_use: [LinearSlot::default(); LINEAR_SLOTS],
            lazy: LazyMode::None,
            fault_linear: Self::NO_FAULT_LINEAR,
            lazy_linear: Self::NO_FAULT_LINEAR,
        }
    }
}

/// What the calls need from the ROM beyond the shadow cache's host.
pub trait CallHost: Host {
    /// The kernel's 8-byte entry `index` of frame `kfn` (None: the frame is
    /// not the kernel's RAM).
    fn read_entry(&mut self, kfn: u32, index: usize) -> Option<u64>;
    /// Stores 4 bytes (`long` false) or 8 bytes at byte `offset` of kernel
    /// frame `kfn`; `offset` is aligned to the store's size, so the store
    /// stays inside the frame. False: the frame is not the kernel's RAM.
    fn store_entry(&mut self, kfn: u32, offset: u32, value: u64, long: bool) -> bool;
    /// Kernel frame `kfn` is a page table the kernel is about to fill: a
    /// view of it may be mapped ahead, through the queue.
    fn prefetch(&mut self, kfn: u32);
    /// The shadow entry `index` of machine frame `mfn` as it will be once
    /// the queue is flushed.
    fn shadow_entry(&mut self, mfn: u32, index: usize) -> u64;
    /// Flushes the queue for `reason` (lazy mode or not).
    fn barrier(&mut self, reason: Barrier);
    /// The end of a call: outside lazy mode the queue is flushed.
    fn end_of_call(&mut self);
    /// [`end_of_call`](Self::end_of_call), when `va` of the loaded address
    /// space is mapped by the shadow entry at machine address
    /// `entry_maddr`: a lone update of that entry may go to Xen by its
    /// virtual address (update_va_mapping), which costs Xen less.
    fn end_of_call_mapped(&mut self, va: u32, entry_maddr: u64) {
        let _ = (va, entry_maddr);
        self.end_of_call();
    }
    /// Whether [`end_of_call`](Self::end_of_call) does nothing now (the
    /// queue is in lazy mode): a call may then skip working out whether
    /// it needs one. False (the default) is always right.
    fn queue_is_lazy(&self) -> bool {
        false
    }
    /// Whether [`write_mapped`](Self::write_mapped) may end a call now
    /// (the ROM: nothing queued, outside lazy mode). False: updates take
    /// the general way.
    fn mapped_write_ready(&self) -> bool {
        false
    }
    /// The shadow write `w` of the entry that maps `w.va` in the loaded
    /// address space (`ShadowCache::fault_entry_changed`) ends the call,
    /// [`mapped_write_ready`](Self::mapped_write_ready) having said so with
    /// nothing queued since: what queueing it and
    /// [`end_of_call_mapped`](Self::end_of_call_mapped) do (the ROM issues
    /// it at once, `MmuBatch::write_mapped`: the same hypercall, without
    /// the queue).
    fn write_mapped(&mut self, w: MappedWrite) {
        self.push_pte_write(w.entry_maddr, w.value, w.tag);
        self.end_of_call_mapped(w.va, w.entry_maddr);
    }
    /// Whether a `PteWrite::Normal` write to `entry_maddr` pushed now only
    /// appends it to the queue (`MmuBatch::appends_write`). False (the
    /// default) is always right.
    fn appends_write(&self, entry_maddr: u64) -> bool {
        let _ = entry_maddr;
        false
    }
    /// Queue MMU updates from now on, until [`leave_lazy`](Self::leave_lazy).
    fn enter_lazy(&mut self);
    /// Stop queueing and flush.
    fn leave_lazy(&mut self);
}

/// The call a rejection is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    SetPxE,
    SetPxELong,
    UpdatePxE,
    UpdatePxELong,
    AllocatePage,
    ReleasePage,
    SetLinearMapping,
    SetLazyMode,
    FlushTlb,
    InvalPage,
}

/// What was wrong with the arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The entry address is not aligned to the size of the entry (4 bytes
    /// for SetPxE/UpdatePxE, 8 for the Long calls): a pte_t pointer always
    /// is, and an unaligned store could straddle two frames.
    EntryMisaligned { ptep: u32 },
    /// The entry address maps nothing in the kernel's address space (nor
    /// in a SetLinearMapping slot).
    EntryNotMapped { ptep: u32 },
    /// The entry address maps a frame that is not the kernel's RAM.
    EntryNotRam { ptep: u32, kfn: u32 },
    /// The shadows cannot follow (the pool is exhausted, or a CR3 is not a
    /// page table).
    Shadow(ShadowError),
    /// AllocatePage/ReleasePage of a frame that is not the kernel's RAM.
    NotKernelFrame { pfn: u32 },
    /// AllocatePage/ReleasePage flags with no level the ABI defines for a
    /// 32-bit kernel (exactly one of PT, PD, PDP).
    UnknownLevel { flags: u32 },
    /// AllocatePage with CLONE on a level other than a page directory.
    CloneNotDirectory { flags: u32 },
    /// AllocatePage CLONE range beyond a table's 512 entries.
    CloneRange { start: u32, count: u32 },
    /// SetLinearMapping slot beyond the ABI's 4.
    LinearSlot { slot: u32 },
    /// SetLinearMapping of an address that is not page-aligned, or a range
    /// past the end of the address space or of the frame numbers.
    LinearRange {
        slot: u32,
        va: u32,
        pages: u32,
        pfn: u32,
    },
    /// SetLazyMode of a mode the ABI does not define (0 NONE, 1 MMU, 2 CPU).
    UnknownLazyMode { mode: u32 },
    /// SetLazyMode entering a lazy mode while in one (they do not nest).
    NestedLazyMode { mode: u32, current: u32 },
    /// FlushTLB flags other than VMI_FLUSH_TLB (always set) and
    /// VMI_FLUSH_GLOBAL.
    FlushFlags { flags: u32 },
}

/// What the ROM does after the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call did what the line says (nothing, or its defined fallback)
    /// and the kernel goes on.
    Continue,
    /// The kernel's tables and Xen's can no longer be kept exact: the ROM
    /// crashes the domain (SCHEDOP_shutdown(crash)).
    Crash,
}

/// An invalid argument: the call, what was wrong, and what the ROM does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub call: Call,
    pub problem: Problem,
}

/// Where a console line is written (the ROM's `Line`; a string in tests).
pub trait Sink {
    fn text(&mut self, s: &[u8]);
    /// 0x and 8 hex digits.
    fn hex(&mut self, v: u32);
    fn dec(&mut self, v: u32);
    /// 0x and 16 hex digits.
    fn hex64(&mut self, v: u64) {
        self.text(b"0x");
        for byte in v.to_be_bytes() {
            let digit = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
            self.text(&[digit(byte >> 4), digit(byte & 0xF)]);
        }
    }
}

impl Rejection {
    pub const fn outcome(&self) -> Outcome {
        match self.problem {
            Problem::EntryMisaligned { .. }
            | Problem::EntryNotMapped { .. }
            | Problem::EntryNotRam { .. }
            | Problem::Shadow(_) => Outcome::Crash,
            _ => Outcome::Continue,
        }
    }

    /// The console line: "xen-vmi-rom: <call>: <argument and value>: <what
    /// happens>". Each arm writes its own words (a table of string slices
    /// would hold absolute pointers, which the ROM cannot carry).
    pub fn describe<S: Sink>(&self, out: &mut S) {
        out.text(b"xen-vmi-rom: ");
        match self.call {
            Call::SetPxE => out.text(b"SetPxE"),
            Call::SetPxELong => out.text(b"SetPxELong"),
            Call::UpdatePxE => out.text(b"UpdatePxE"),
            Call::UpdatePxELong => out.text(b"UpdatePxELong"),
            Call::AllocatePage => out.text(b"AllocatePage"),
            Call::ReleasePage => out.text(b"ReleasePage"),
            Call::SetLinearMapping => out.text(b"SetLinearMapping"),
            Call::SetLazyMode => out.text(b"SetLazyMode"),
            Call::FlushTlb => out.text(b"FlushTLB"),
            Call::InvalPage => out.text(b"InvalPage"),
        }
        out.text(b": ");
        match self.problem {
            Problem::EntryMisaligned { ptep } => {
                out.text(b"the entry address ");
                out.hex(ptep);
                out.text(b" is not aligned to the entry's size");
            }
            Problem::EntryNotMapped { ptep } => {
                out.text(b"the entry address ");
                out.hex(ptep);
                out.text(
                    b" is not mapped in the kernel's address space (nor in a SetLinearMapping slot)",
                );
            }
            Problem::EntryNotRam { ptep, kfn } => {
                out.text(b"the entry address ");
                out.hex(ptep);
                out.text(b" is in frame ");
                out.hex(kfn);
                out.text(b", not the kernel's RAM");
            }
            Problem::Shadow(e) => describe_shadow_error(e, out),
            Problem::NotKernelFrame { pfn } => {
                out.text(b"pfn ");
                out.hex(pfn);
                out.text(b" is not a frame of the kernel's RAM: ignored");
            }
            Problem::UnknownLevel { flags } => {
                out.text(b"flags ");
                out.hex(flags);
                out.text(b" name no page-table level (one of PT 1, PD 2, PDP 4): ignored");
            }
            Problem::CloneNotDirectory { flags } => {
                out.text(b"flags ");
                out.hex(flags);
                out.text(b": CLONE is for a page directory: cloning ignored");
            }
            Problem::CloneRange { start, count } => {
                out.text(b"clone range start ");
                out.dec(start);
                out.text(b" count ");
                out.dec(count);
                out.text(b" goes beyond a table's 512 entries: the whole table is read");
            }
            Problem::LinearSlot { slot } => {
                out.text(b"slot ");
                out.dec(slot);
                out.text(b" is not one of the ABI's 4: ignored");
            }
            Problem::LinearRange {
                slot,
                va,
                pages,
                pfn,
            } => {
                out.text(b"slot ");
                out.dec(slot);
                out.text(b" va ");
                out.hex(va);
                out.text(b" pages ");
                out.hex(pages);
                out.text(b" pfn ");
                out.hex(pfn);
                out.text(b": unaligned, or beyond 4 GiB or frame 2^32: ignored");
            }
            Problem::UnknownLazyMode { mode } => {
                out.text(b"mode ");
                out.dec(mode);
                out.text(b" is not NONE 0, MMU 1 or CPU 2: taken as NONE");
            }
            Problem::NestedLazyMode { mode, current } => {
                out.text(b"mode ");
                out.dec(mode);
                out.text(b" entered while in lazy mode ");
                out.dec(current);
                if mode == current {
                    out.text(b" (lazy modes do not nest): the batch goes on");
                } else {
                    out.text(b" (lazy modes do not nest): queued updates flushed, mode ");
                    out.dec(mode);
                    out.text(b" from now on");
                }
            }
            Problem::FlushFlags { flags } => {
                out.text(b"flags ");
                out.hex(flags);
                out.text(b" have bits other than TLB 1 and GLOBAL 2: flushed all the same");
            }
        }
    }
}

fn describe_shadow_error<S: Sink>(e: ShadowError, out: &mut S) {
    match e {
        ShadowError::OutOfFrames => {
            out.text(b"no frame left for the shadow page tables: give the domain more memory")
        }
        ShadowError::OutOfRecords => {
            out.text(b"more page tables in use at once than the ROM can shadow")
        }
        ShadowError::Cr3NotRam { cr3 } => {
            out.text(b"CR3 ");
            out.hex(cr3);
            out.text(b" is not a page table: its frame is not the kernel's RAM");
        }
        ShadowError::BadPdpte { cr3, slot, entry } => {
            out.text(b"CR3 ");
            out.hex(cr3);
            out.text(b" is not a page table: PDPT entry ");
            out.dec(u32::from(slot));
            out.text(b" = ");
            out.hex64(entry);
            out.text(b" has reserved bits or names a frame that is not RAM (natively #GP)");
        }
    }
}

/// Paging as the entry-address calls see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    /// CR0.PG: off, an entry address is the entry's physical address.
    pub enabled: bool,
}

#[cfg_attr(feature = "image", optimize(size))]
fn reject(call: Call, problem: Problem) -> Result<(), Rejection> {
    Err(Rejection { call, problem })
}

/// The kernel frame holding the entry the kernel addresses as `ptep`:
/// paging off, the address itself; in a SetLinearMapping slot, the slot's
/// frame; otherwise the kernel's tables walked (a 2 MiB page included).
#[inline]
pub fn entry_frame<H: Host>(
    cache: &ShadowCache,
    host: &mut H,
    state: &CallState,
    paging: Paging,
    ptep: u32,
) -> Option<u32> {
    linear_entry_frame(state, paging, ptep).or_else(|| walked_entry_frame(cache, host, ptep))
}

/// [`entry_frame`] when no walk is needed (paging off, or the address in
/// a SetLinearMapping slot); None: walk the kernel's tables.
#[inline(always)]
fn linear_entry_frame(state: &CallState, paging: Paging, ptep: u32) -> Option<u32> {
    if !paging.enabled {
        return Some(ptep >> 12);
    }
    // The first slot holding the address (an empty slot, `pages` 0, holds
    // none), searched in `in_use` (the slots in use first, so the kernel's
    // is among the first tests), the four tests written out: by reference
    // (a copy of the slots was a 12-word `rep movs` per call) and unrolled
    // (the loop cost a third more).
    let page_in = |s: &LinearSlot| ptep.wrapping_sub(s.va) / 4096;
    let [s0, s1, s2, s3] = &state.in_use;
    let slot = if page_in(s0) < s0.pages {
        Some(s0)
    } else if page_in(s1) < s1.pages {
        Some(s1)
    } else if page_in(s2) < s2.pages {
        Some(s2)
    } else if page_in(s3) < s3.pages {
        Some(s3)
    } else {
        None
    };
    if let Some(s) = slot {
        // SetLinearMapping checked that the slot's last frame fits in 32
        // bits (`pfn + pages - 1`), and the page is below `pages`: the sum
        // cannot wrap (a checked add cost 4 more instructions per call).
        let page = page_in(s);
        debug_assert!(s.pfn.checked_add(page).is_some());
        return Some(s.pfn.wrapping_add(page));
    }
    None
}

/// [`entry_frame`] of an address in no SetLinearMapping slot: out of line
/// (an entry call of a kernel that registers its direct map never walks).
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn walked_entry_frame<H: Host>(cache: &ShadowCache, host: &mut H, ptep: u32) -> Option<u32> {
    // The frame from the walk, computed here in full: a frame number
    // beyond 32 bits is no frame of the kernel's (cut to 32 bits it would
    // alias one), and a 2 MiB page's base is bits 21 up (bit 12 is PAT).
    // The walk reads each table at its frame number cut to 32 bits: a
    // table beyond that is none of the kernel's, and what was read there is
    // not its entry.
    let w = cache.walk(host, ptep)?;
    let beyond = |e: u64| (e & FRAME) >> 12 > u64::from(u32::MAX);
    if w.pdpte & PRESENT == 0 || w.pde & PRESENT == 0 || beyond(w.pdpte) {
        return None;
    }
    let frame = if w.pde & PAT_OR_PSE != 0 {
        ((w.pde & FRAME & !LARGE_PAGE_LOW) >> 12) + u64::from((ptep >> 12) & 511)
    } else if w.pte & PRESENT != 0 && !beyond(w.pde) {
        (w.pte & FRAME) >> 12
    } else {
        return None;
    };
    u32::try_from(frame).ok()
}

/// Bits 12-20 of a 2 MiB page's directory entry: PAT and reserved, not
/// part of the page's base (SDM vol. 3, "PAE paging", PDE mapping a 2-MByte
/// page).
const LARGE_PAGE_LOW: u64 = 0x1F_F000;

/// The kernel's entry at `ptep` changed (stored here first if `store` =
/// (value, long)): every shadow of its table follows. One copy for the
/// 4-byte calls (SetPxE, UpdatePxE: a PAE kernel uses them only for the
/// odd half-entry); the 8-byte ones, every page-table update of a PAE
/// kernel, have [`entry_changed_inline`] in their own entry.
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn entry_changed<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    state: &mut CallState,
    paging: Paging,
    call: Call,
    ptep: u32,
    store: Option<(u64, bool)>,
) -> Result<(), Rejection> {
    entry_changed_with::<H, false>(cache, host, state, paging, call, ptep, store)
}

/// [`entry_changed`], inline in SetPxELong's and UpdatePxELong's entries:
/// the call, the store and the host are then known there (no argument
/// block, no call, no test of what the call is): about 15 instructions
/// less per update, with the store inline too about 25.
#[inline(always)]
fn entry_changed_inline<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    state: &mut CallState,
    paging: Paging,
    call: Call,
    ptep: u32,
    store: Option<(u64, bool)>,
) -> Result<(), Rejection> {
    entry_changed_with::<H, true>(cache, host, state, paging, call, ptep, store)
}

/// The body of [`entry_changed_inline`] (`INLINE`) and of the 4-byte
/// calls' [`entry_changed`] (the shadow's L1 write out of line there).
#[inline(always)]
fn entry_changed_with<H: CallHost, const INLINE: bool>(
    cache: &mut ShadowCache,
    host: &mut H,
    state: &mut CallState,
    paging: Paging,
    call: Call,
    ptep: u32,
    store: Option<(u64, bool)>,
) -> Result<(), Rejection> {
    let long = matches!(call, Call::SetPxELong | Call::UpdatePxELong);
    let size = if long { 8 } else { 4 };
    if !ptep.is_multiple_of(size) {
        return reject(call, Problem::EntryMisaligned { ptep });
    }
    // `entry_frame`, its ways apart: the usual one's frame needs no test
    // of an Option where they would meet. First the lazy path's page memo
    // (`CallState::lazy_linear`, what `linear_entry_frame` says for its
    // page with paging on, never a frame of the ROM's area): the
    // updates that path declines (a known frame's table, a directory)
    // then skip the slots' search.
    // A frame found in a slot with paging on is kept in the memo (the
    // lazy path declines a page it does not know: its next update finds
    // it there).
    let (memo_page, memo_frame) = state.lazy_linear;
    let kfn = if paging.enabled && (ptep | 0xFFF) ^ 7 == memo_page {
        memo_frame
    } else {
        let (kfn, linear) = match linear_entry_frame(state, paging, ptep) {
            Some(kfn) => (kfn, paging.enabled),
            None => match walked_entry_frame(cache, host, ptep) {
                Some(kfn) => (kfn, false),
                None => return reject(call, Problem::EntryNotMapped { ptep }),
            },
        };
        // The ROM's image and the empty bus around it are read-only
        // hardware to the kernel: a store there would change the ROM
        // itself.
        if host.read_only_frame(u64::from(kfn)) {
            return reject(call, Problem::EntryNotRam { ptep, kfn });
        }
        if linear {
            state.lazy_linear = ((ptep | 0xFFF) ^ 7, kfn);
        }
        kfn
    };
    let not_ram = Problem::EntryNotRam { ptep, kfn };
    if let Some((value, long)) = store {
        if !host.store_entry(kfn, ptep & 0xFFF, value, long) {
            return reject(call, not_ram);
        }
    }
    let index = ((ptep & 0xFFF) >> 3) as usize;
    let entry = match store {
        // The value just stored, whole: no need to read it back.
        Some((value, true)) => value,
        _ => match host.read_entry(kfn, index) {
            Some(entry) => entry,
            None => return reject(call, not_ram),
        },
    };
    let reach = if INLINE && call == Call::SetPxELong {
        cache.entry_changed_deferred(host, kfn, index, entry)
    } else if INLINE {
        cache.entry_changed_deferred_lean(host, kfn, index, entry)
    } else {
        cache.entry_changed_deferred_small(host, kfn, index, entry)
    };
    let reach = reach.map_err(|e| Rejection {
        call,
        problem: Problem::Shadow(e),
    })?;
    end_of_entry_call(cache, host, state, reach);
    // Otherwise the ops touch only shadows no loaded root reaches (and new
    // frames): they wait in the queue past the call's end, to go out with
    // the next hypercall (the comment below).
    Ok(())
}

/// The end of an entry call whose change `entry_changed_deferred` left as
/// `reach`: the general path's and [`quick_entry_update`]'s, one copy.
#[inline(always)]
fn end_of_entry_call<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    state: &CallState,
    reach: Reach,
) {
    if state.lazy == LazyMode::Mmu && host.queue_is_lazy() {
        // The end of a call in a lazy queue does nothing, whatever the
        // change reaches: that is not worked out.
        return;
    }
    let reaches_loaded = cache.reaches_current(reach);
    if reaches_loaded {
        match state.lazy {
            // A lazy MMU batch: the end of the call is one test (the
            // queue goes out at the mode's end).
            LazyMode::Mmu => host.end_of_call(),
            // Lazy CPU mode defers the context switch, not page-table
            // updates of the space the kernel runs in: they are in effect
            // when the call returns, as outside any lazy mode.
            LazyMode::Cpu => host.barrier(Barrier::CoherentRead),
            // After a page fault given to the kernel, its handler's update
            // of the faulting address's entry (the usual next call) can
            // name that address: Xen then finds the entry by its own walk
            // of the loaded tables, the one the mirrors describe.
            LazyMode::None => {
                cache.take_fault_va();
                host.end_of_call();
            }
        }
    }
}

/// SetPxELong (`store`: the value) or UpdatePxELong (None) in a lazy MMU
/// batch, in its usual case: the decisions of the ROM's path in assembly
/// (entry.rs, `lazy_entry_update`), step for step, which also declines
/// when its memo of the kernel's view (`kernel_view`'s first compare)
/// misses. The entry's page is the page memo's (`CallState::lazy_linear`,
/// which the general call keeps: a page first met goes the general way,
/// and the next update of it finds its frame there); the last-hit record
/// cache holds that frame's records (`ShadowCache::quick_page_table`: a
/// page table's alone, no known frame); lazy MMU mode (in the ROM the
/// kernel has then activated, the heap is built and no switch is held;
/// the queue is lazy); the address 8-aligned (paging is on: the memo
/// holds a page only then, `CallState::paging_off`); an entry with no
/// eager bits whose shadow value the quick rule gives
/// (`ShadowCache::quick_l1_write`); a queue that appends the write
/// (`CallHost::appends_write`). Then the store, the shadow write queued,
/// and nothing at the call's end (a lazy queue's). True: done, exactly as
/// the general call does it (the same store, queued write and tag,
/// counters, and an `Ok`). False: not that case, take the general call;
/// nothing has changed. tests/fuzz_calls.rs holds it to the general
/// call, which it runs on a copy of the state before each update this
/// takes.
#[inline(always)]
pub fn quick_entry_update<H: CallHost>(
    cache: &ShadowCache,
    host: &mut H,
    state: &CallState,
    paging: Paging,
    ptep: u32,
    store: Option<u64>,
) -> bool {
    // The page and the alignment in one compare (the memo's page has
    // bits 3-11 set, 0-2 clear).
    let (page, kfn) = state.lazy_linear;
    if ptep | 0xFF8 != page {
        return false;
    }
    let Some(table) = cache.quick_page_table(kfn) else {
        return false;
    };
    // Paging is on: the memo holds a page only then (`paging_off`).
    debug_assert!(paging.enabled);
    debug_assert!(ptep.is_multiple_of(8));
    if state.lazy != LazyMode::Mmu {
        return false;
    }
    // The queue is lazy in a lazy mode (`set_lazy_mode`): the assembly
    // does not test it.
    debug_assert!(host.queue_is_lazy());
    let index = ((ptep & 0xFFF) >> 3) as usize;
    let entry = match store {
        Some(value) => value,
        None => match host.read_entry(kfn, index) {
            Some(entry) => entry,
            None => return false,
        },
    };
    let Some(w) = cache.quick_l1_write(host, table, index, entry) else {
        return false;
    };
    if !host.appends_write(w.entry_maddr) {
        return false;
    }
    if let Some(value) = store {
        if !host.store_entry(kfn, ptep & 0xFFF, value, true) {
            return false;
        }
    }
    host.push_pte_write(w.entry_maddr, w.value, w.tag);
    true
}

/// SetPxELong (`store`: the value) or UpdatePxELong (None) of the entry
/// that maps the address of the page fault last given to the kernel (its
/// handler's usual next call), outside lazy mode, in one step: the entry
/// in a SetLinearMapping slot, named by `ShadowCache::fault_entry` (asked
/// before the kernel's entry is stored or read, so that any other update
/// is declined after a few tests), the new entry one with nothing for
/// the ROM to add (`shadow_entry::l1_value_settled`: present and
/// accessed, no A or D bit to set first, a frame the general rule would
/// not refuse), and nothing queued; then the shadow value as
/// `entry_changed` computes it and the write ended by its address (`CallHost::write_mapped`, in the ROM one
/// `update_va_mapping`), with no record look-up, no queue and no look-up
/// of the entry the address maps. True: done, exactly as the general call
/// does it (an `Ok` with the same store, shadow write, end and counters;
/// a refusal from Xen reported as the queued write's). False: not that
/// case, take the general call; nothing observable has changed (a store
/// already made is of the value the general call stores again). The ROM
/// calls it from SetPxELong's and UpdatePxELong's entry stubs outside
/// lazy mode, before the general call, so the lazy path's code is its own.
#[inline(always)]
pub fn fault_entry_update<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    state: &mut CallState,
    paging: Paging,
    ptep: u32,
    store: Option<u64>,
) -> bool {
    if state.lazy != LazyMode::None || !ptep.is_multiple_of(8) {
        return false;
    }
    let (page, frame) = state.fault_linear;
    let kfn = if paging.enabled && ptep | 0xFFF == page {
        frame
    } else {
        let Some(kfn) = linear_entry_frame(state, paging, ptep) else {
            return false;
        };
        // Not the last frame, u32::MAX: the paths in assembly compare the
        // memo's frame with the fault path's `update_kfn`, whose "no
        // table" that is (`quick_fault_layout::NO_UPDATE`).
        if paging.enabled && kfn != u32::MAX {
            state.fault_linear = (ptep | 0xFFF, kfn);
        }
        kfn
    };
    let index = ((ptep & 0xFFF) >> 3) as usize;
    let Some(target) = cache.fault_entry(kfn, index) else {
        return false;
    };
    // The general call's checks before its store, where it rejects.
    if host.read_only_frame(u64::from(kfn)) {
        return false;
    }
    let entry = match store {
        Some(value) => {
            if !host.store_entry(kfn, ptep & 0xFFF, value, true) {
                return false;
            }
            value
        }
        None => match host.read_entry(kfn, index) {
            Some(entry) => entry,
            None => return false,
        },
    };
    // An entry with A or D bits to add, or one the general rule must
    // decide, takes the general way.
    let settled = l1_value_settled(
        entry,
        |f| host.machine_frame(f),
        |f| host.read_only_frame(f),
    );
    let Some(value) = settled else {
        return false;
    };
    if !host.mapped_write_ready() {
        return false;
    }
    let w = cache.fault_entry_write_settled(host, target, kfn, entry, value);
    host.write_mapped(w);
    true
}

// A call whose ops touch no shadow the loaded address space reaches
// (`ShadowCache::may_change_current` false, AllocatePage, ReleasePage)
// ends without flushing: its ops go out with the next hypercall (the end
// of a call that does reach the loaded space, a lazy mode's end, a fault,
// an interrupt, a TLB flush, a CR3 load; each flushes first), and nothing
// the kernel can observe differs. Linux's fork and exit build and tear
// down the other address space this way, as XenLinux builds a new one with
// plain writes and pins it at its first load. AllocatePage's view prefetch
// changes only the ROM's own view slot, which stays pending (and is
// flushed) until used.

/// SetPxE(pte, ptep, flags): a 32-bit store (in a PAE table, one half of
/// an entry).
pub fn set_pxe<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    state: &mut CallState,
    paging: Paging,
    pte: u32,
    ptep: u32,
) -> Result<(), Rejection> {
    let store = Some((u64::from(pte), false));
    entry_changed(cache, host, state, paging, Call::SetPxE, ptep, store)
}

/// SetPxELong(pte low, pte high, ptep, flags): an 8-byte store.
#[inline]
pub fn set_pxe_long<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    state: &mut CallState,
    paging: Paging,
    pte: u64,
    ptep: u32,
) -> Result<(), Rejection> {
    let store = Some((pte, true));
    entry_changed_inline(cache, host, state, paging, Call::SetPxELong, ptep, store)
}

/// UpdatePxE / UpdatePxELong(ptep, flags): the kernel wrote the entry
/// itself.
#[inline]
pub fn update_pxe<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    state: &mut CallState,
    paging: Paging,
    ptep: u32,
    long: bool,
) -> Result<(), Rejection> {
    if long {
        entry_changed_inline(cache, host, state, paging, Call::UpdatePxELong, ptep, None)
    } else {
        entry_changed(cache, host, state, paging, Call::UpdatePxE, ptep, None)
    }
}

/// A frame of the kernel's RAM (not the ROM's read-only area): one that
/// can hold a page table.
fn kernel_ram<H: Host>(host: &H, pfn: u32) -> bool {
    host.machine_frame(u64::from(pfn)).is_some() && !host.read_only_frame(u64::from(pfn))
}

/// The level named by AllocatePage/ReleasePage flags: exactly one of PT,
/// PD, PDP (PML4 has no meaning for a 32-bit kernel).
fn level(flags: u32) -> Option<u32> {
    match flags & VMI_PAGE_LEVEL_MASK {
        l @ (VMI_PAGE_PT | VMI_PAGE_PD | VMI_PAGE_PDP) => Some(l),
        _ => None,
    }
}

/// AllocatePage(pfn, flags, clone pfn, start, count): `pfn` becomes a page
/// table of the level in `flags`. A PDPT (PDP) needs nothing: it is read at
/// each CR3 load. A CLONE of a directory names the entries the kernel
/// copied from `clone_pfn`. A rejection with [`Outcome::Continue`] may
/// come with the call done (a bad clone range: the table is read whole).
pub fn allocate_page<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    pfn: u32,
    flags: u32,
    clone_pfn: u32,
    start: u32,
    count: u32,
) -> Result<(), Rejection> {
    let call = Call::AllocatePage;
    if !kernel_ram(host, pfn) {
        return reject(call, Problem::NotKernelFrame { pfn });
    }
    let Some(level) = level(flags) else {
        return reject(call, Problem::UnknownLevel { flags });
    };
    let mut clone = flags & VMI_PAGE_CLONE != 0;
    let mut note = None;
    if clone && level != VMI_PAGE_PD {
        note = Some(Problem::CloneNotDirectory { flags });
        clone = false;
    }
    let end = start.checked_add(count);
    if clone && end.is_none_or(|end| end as usize > ENTRIES) {
        note = Some(Problem::CloneRange { start, count });
        clone = false;
    }
    // The shadow of a clone is made from the cloned range alone, which is
    // right only if the rest is zero: without ZEROED (Linux always sends
    // it, VMI_PAGE_L2 has it) the whole table is read.
    let promised_zero = flags & VMI_PAGE_ZEROED != 0;
    if clone && !promised_zero {
        clone = false;
    }
    let zeroed = promised_zero && flags & VMI_PAGE_CLONE == 0;
    let result = match level {
        VMI_PAGE_PT => cache.allocate_l1(host, pfn, zeroed),
        VMI_PAGE_PD => {
            let range = start as usize..(start + count) as usize;
            cache.allocate_l2(host, pfn, zeroed, clone.then_some((clone_pfn, range)))
        }
        _ => Ok(()),
    };
    result.map_err(|e| Rejection {
        call,
        problem: Problem::Shadow(e),
    })?;
    if level != VMI_PAGE_PDP {
        // Its entries come next: its view goes out with this call's work.
        host.prefetch(pfn);
    }
    // Detached: no flush at the call's end (see `entry_changed`).
    match note {
        Some(problem) => reject(call, problem),
        None => Ok(()),
    }
}

/// ReleasePage(pfn, flags): the frame stops being a page table (Linux
/// releases a PAE PDPT with the L2 flag, so PD and PDP both mean "a
/// directory or a PDPT").
pub fn release_page<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    pfn: u32,
    flags: u32,
) -> Result<(), Rejection> {
    let call = Call::ReleasePage;
    if !kernel_ram(host, pfn) {
        return reject(call, Problem::NotKernelFrame { pfn });
    }
    let Some(level) = level(flags) else {
        return reject(call, Problem::UnknownLevel { flags });
    };
    cache.release(host, pfn, level != VMI_PAGE_PT);
    // Detached: no flush at the call's end (see `entry_changed`).
    Ok(())
}

/// SetLinearMapping(slot, va, pages, pfn): where the kernel maps its page
/// tables (slot 0 its direct map, 1 and 2 HIGHPTE's temporary mappings):
/// entry addresses there need no walk. `pages` 0 empties the slot.
#[cfg_attr(feature = "image", optimize(size))]
pub fn set_linear_mapping(
    state: &mut CallState,
    slot: u32,
    va: u32,
    pages: u32,
    pfn: u32,
) -> Result<(), Rejection> {
    let call = Call::SetLinearMapping;
    let Some(s) = state.linear.get_mut(slot as usize) else {
        return reject(call, Problem::LinearSlot { slot });
    };
    // The last page and the last frame must exist: va + pages * 4096 - 1
    // within 4 GiB, pfn + pages - 1 within 32 bits.
    let fits = pages == 0
        || (va.is_multiple_of(4096)
            && u64::from(va) + u64::from(pages) * 4096 <= 1 << 32
            && pfn.checked_add(pages - 1).is_some());
    if !fits {
        let problem = Problem::LinearRange {
            slot,
            va,
            pages,
            pfn,
        };
        return reject(call, problem);
    }
    *s = LinearSlot { va, pages, pfn };
    let mut in_use = [LinearSlot::default(); LINEAR_SLOTS];
    for (to, from) in in_use
        .iter_mut()
        .zip(state.linear.iter().filter(|s| s.pages != 0))
    {
        *to = *from;
    }
    state.in_use = in_use;
    state.fault_linear = CallState::NO_FAULT_LINEAR;
    state.lazy_linear = CallState::NO_FAULT_LINEAR;
    Ok(())
}

/// SetLazyMode(mode): MMU batches the shadow updates until the mode ends
/// (or a flush point); CPU batches a context switch's CR3 load and
/// UpdateKernelStack the same way, to go out as one multicall at the
/// mode's end (XenLinux's lazy CPU mode); NONE ends a lazy mode, and a
/// change from one lazy mode to the other flushes the queue first. An
/// unknown mode is taken as NONE; entering a mode while in one (Linux never
/// does: its enter_lazy insists on NONE) still enters it, with a line.
pub fn set_lazy_mode<H: CallHost>(
    state: &mut CallState,
    host: &mut H,
    mode: u32,
) -> Result<(), Rejection> {
    let call = Call::SetLazyMode;
    let (new, problem) = match LazyMode::from_u32(mode) {
        None => (LazyMode::None, Some(Problem::UnknownLazyMode { mode })),
        Some(LazyMode::None) => (LazyMode::None, None),
        Some(m) if state.lazy != LazyMode::None => {
            let current = state.lazy as u32;
            (m, Some(Problem::NestedLazyMode { mode, current }))
        }
        Some(m) => (m, None),
    };
    // NONE ends a batch, and a change from one lazy mode to the other
    // sends the first one's batch on its own. Entering a mode from NONE
    // does not flush: ops calls left queued (detached, see
    // `entry_changed`) go out with the mode's batch.
    if new == LazyMode::None || (state.lazy != LazyMode::None && new != state.lazy) {
        host.leave_lazy();
    }
    if new != LazyMode::None {
        host.enter_lazy();
    }
    state.lazy = new;
    match problem {
        Some(problem) => reject(call, problem),
        None => Ok(()),
    }
}

/// FlushTLB(flags) once activated, with paging on: everything the kernel
/// changed before is seen from now on. MMUEXT_TLB_FLUSH_LOCAL drops global
/// entries too (Xen toggles CR4.PGE), so VMI_FLUSH_GLOBAL needs nothing
/// more.
pub fn flush_tlb<H: CallHost>(host: &mut H, flags: u32) -> Result<(), Rejection> {
    host.push(
        Op::Mmuext(MmuextOp::tlb_flush_local()),
        Tag {
            what: What::Tlb,
            ..Tag::default()
        },
    );
    host.barrier(Barrier::TlbFlush);
    flush_flags(flags)
}

/// FlushTLB's flags: VMI_FLUSH_TLB (always set), maybe VMI_FLUSH_GLOBAL.
pub fn flush_flags(flags: u32) -> Result<(), Rejection> {
    if flags & !(VMI_FLUSH_TLB | VMI_FLUSH_GLOBAL) != 0 || flags & VMI_FLUSH_TLB == 0 {
        return reject(Call::FlushTlb, Problem::FlushFlags { flags });
    }
    Ok(())
}

/// InvalPage(va) once activated: the mapping of `va` as the kernel's
/// tables have it now, checked against the shadow (a change the kernel
/// made without telling is taken, with a note), then flushed.
#[cfg_attr(feature = "image", optimize(size))]
pub fn inval_page<H: CallHost>(
    cache: &mut ShadowCache,
    host: &mut H,
    va: u32,
) -> Result<(), Rejection> {
    cache
        .verify(host, va, |h, mfn, i| h.shadow_entry(mfn, i))
        .map_err(|e| Rejection {
            call: Call::InvalPage,
            problem: Problem::Shadow(e),
        })?;
    host.push(
        Op::Mmuext(MmuextOp::invlpg_local(va)),
        Tag {
            what: What::Tlb,
            guest: u64::from(va),
            ..Tag::default()
        },
    );
    host.barrier(Barrier::TlbFlush);
    Ok(())
}
