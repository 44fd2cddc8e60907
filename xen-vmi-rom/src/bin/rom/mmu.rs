//! What the shadow cache (`xen_vmi_rom::shadow_cache`) runs on in the ROM:
//! its heap in the private area, views of the kernel's page-table frames,
//! the frame pool, and the queue of Xen operations (`mmu-batch`) issued on
//! the hypercall page, with every refusal reported with the kernel entry
//! that produced it.

use core::sync::atomic::{AtomicU32, Ordering};

use mmu_batch::{Barrier, Failure, Failures, FlushTarget, MmuBatch, Multicall, Op};
use xen_abi::hypercall::{Call, Hypervisor, RawHypercall};
use xen_abi::p2m::Mfn;
use xen_abi::xen::{
    __HYPERVISOR_mmu_update, __HYPERVISOR_update_va_mapping, MmuUpdate, MmuextOp, DOMID_SELF,
    MMUEXT_CLEAR_PAGE, UVMF_INVLPG,
};
use xen_vmi_rom::layout::{
    HIGH_RAM_START, K2M_VA, LOW_RAM_END, SHADOW_HEAP_MAX, SHADOW_HEAP_VA, TABLE_VIEW_SLOTS,
    TABLE_VIEW_VA,
};
use xen_vmi_rom::shadow_cache::{Host, Note, ShadowCache, ShadowError, Tag, What};
use xen_vmi_rom::shadow_entry::{ACCESSED, DIRTY, PRESENT, RW};

use crate::console::Line;
use crate::runtime::{pool_give, pool_take, rom_state, runtime};
use crate::xen::hypervisor;

/// Ops the queue holds: in lazy mode N page-table writes cost
/// ceil(N / BATCH) hypercalls.
pub const BATCH: usize = 1024;

/// Everything the shadows need that does not fit the run-time state.
pub struct Heap {
    pub cache: ShadowCache,
    pub batch: MmuBatch<Tag, BATCH>,
    pub views: Views,
    pub notes: NoteCounts,
    /// The read-only empty page standing for frames the kernel does not
    /// have (a pool frame, cleared, never mapped writable).
    pub hole_mfn: u32,
    /// The machine frame of `scratch`.
    pub scratch_mfn: u32,
    /// The shadow cache's scratch frame (`Host::scratch_frame`): a page
    /// of the heap, mapped writable for good (so Xen never lets the frame
    /// become a table).
    pub scratch: ScratchPage,
}

/// A page of the heap on a page of its own.
#[repr(C, align(4096))]
pub struct ScratchPage(pub [u64; 512]);

const HEAP_PAGES: usize = core::mem::size_of::<Heap>().div_ceil(4096);
// The queue's counters 8-byte aligned at their fixed address (the heap is
// page aligned): each push counts with one add to memory
// (`MmuBatch::COUNTERS_OFFSET`; pad `ShadowCache` when this fails).
const _: () = assert!(
    (core::mem::offset_of!(Heap, batch) + MmuBatch::<Tag, BATCH>::COUNTERS_OFFSET)
        .is_multiple_of(8),
    "the queue's counters are not 8-byte aligned in the heap"
);
const _: () = assert!(HEAP_PAGES * 4096 <= SHADOW_HEAP_MAX as usize);
/// The heap's page that is the scratch frame (`build_heap` notes its
/// machine frame), and its address.
const SCRATCH_PAGE: usize = core::mem::offset_of!(Heap, scratch) / 4096;
const SCRATCH_VA: u32 = SHADOW_HEAP_VA + (SCRATCH_PAGE * 4096) as u32;

/// The scratch frame's machine frame (the heap is built).
#[inline(always)]
pub fn scratch_mfn() -> u32 {
    let heap = SHADOW_HEAP_VA as *const Heap;
    // SAFETY: the heap is built (`paging.heap_ready`, every caller is a
    // shadow cache's host); one word read through the raw pointer, no
    // reference to the heap made.
    unsafe { (&raw const (*heap).scratch_mfn).read() }
}

/// The queue's flushes so far (`Host::flush_count`): every flush it
/// counts sends all it held (a context switch's pair and a mapped write
/// are counted on an empty queue).
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
pub fn queue_flushes(batch: &MmuBatch<Tag, BATCH>) -> u32 {
    batch.counters().flushes as u32
}

/// A plain store into entry `index` of the scratch frame.
#[inline(always)]
pub fn scratch_store(index: usize, value: u64) {
    // SAFETY: SCRATCH_VA maps the scratch frame read-write (build_heap);
    // index < 512 keeps the store inside it.
    unsafe {
        (SCRATCH_VA as *mut u64)
            .add(index & 511)
            .write_volatile(value)
    }
}
/// The heap's page-table entries: ROM-area L1 number 2 covers
/// 0xF5400000-0xF55FFFFF.
const HEAP_AREA_L1: usize = 2;
const HEAP_FIRST_ENTRY: usize = ((SHADOW_HEAP_VA >> 12) & 511) as usize;
const _: () =
    assert!((SHADOW_HEAP_VA - xen_vmi_rom::layout::ROM_AREA_START) >> 21 == HEAP_AREA_L1 as u32);

/// Where the views' tags are (`Views::tags`: kernel frame + 1 per slot),
/// for the #PF one-step path (traps.rs), which reads the kernel's entries
/// through the view slots a fault remembered.
pub const VIEW_TAGS_VA: u32 = SHADOW_HEAP_VA
    + (core::mem::offset_of!(Heap, views) + core::mem::offset_of!(Views, tags)) as u32;

/// The heap, mapped and built the first time paging needs it. Inline:
/// every page-table call starts here, and once built it is one test.
#[inline]
pub fn heap() -> &'static mut Heap {
    if !runtime().paging.heap_ready {
        build_heap();
    }
    let heap = built_heap();
    if runtime().paging.held.held {
        // A context switch held out of the queue goes in first.
        crate::paging::push_held_switch(heap);
    }
    heap
}

/// The heap once `paging.heap_ready`, as it stands: a held context switch
/// is not queued (the caller knows none is held, or is issuing it).
#[inline(always)]
pub fn built_heap() -> &'static mut Heap {
    debug_assert!(runtime().paging.heap_ready);
    // SAFETY: build_heap mapped HEAP_PAGES pages at SHADOW_HEAP_VA (in the
    // ROM area, so in every address space) and built a Heap there before
    // setting heap_ready; one vCPU, and the paging paths run with events
    // masked, so no other reference to it is live.
    unsafe { &mut *(SHADOW_HEAP_VA as *mut Heap) }
}

/// The built heap's parts other than the shadow cache, borrowed apart
/// from it, for a host made where it is needed (paging.rs, the one-step
/// update after a page fault, which holds the cache meanwhile).
pub struct HeapParts {
    pub batch: &'static mut MmuBatch<Tag, BATCH>,
    pub views: &'static mut Views,
    pub notes: &'static mut NoteCounts,
    pub hole_mfn: u32,
}

/// [`HeapParts`] of the built heap (`paging.heap_ready`), each borrowed
/// alone: a borrow of the cache is left as it is. The caller keeps at most
/// one of these at a time.
#[inline(always)]
pub fn built_heap_parts() -> HeapParts {
    debug_assert!(runtime().paging.heap_ready);
    let heap = SHADOW_HEAP_VA as *mut Heap;
    // SAFETY: as in `built_heap`; the fields are reached through the raw
    // pointer one by one, so no reference to the whole heap (or to its
    // cache) is made here.
    unsafe {
        HeapParts {
            batch: &mut (*heap).batch,
            views: &mut (*heap).views,
            notes: &mut (*heap).notes,
            hole_mfn: (*heap).hole_mfn,
        }
    }
}

#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn build_heap() {
    let st = rom_state();
    let area_l1 = u64::from(st.rom_area_l1_mfns[HEAP_AREA_L1]) << 12;
    let mut reqs = [MmuUpdate::default(); 16];
    let mut n = 0;
    let mut xen = hypervisor();
    let mut scratch = 0;
    for page in 0..HEAP_PAGES {
        let Some(mfn) = pool_take() else {
            out_of_frames();
        };
        if page == SCRATCH_PAGE {
            scratch = mfn;
        }
        reqs[n] = MmuUpdate::normal_pt_update(
            area_l1 + ((HEAP_FIRST_ENTRY + page) * 8) as u64,
            (u64::from(mfn) << 12) | PRESENT | RW | ACCESSED | DIRTY,
        );
        n += 1;
        if n == reqs.len() || page + 1 == HEAP_PAGES {
            // SAFETY: maps pool frames (no other mapping, not tables) at VAs
            // of the ROM area nothing uses yet.
            if unsafe { xen.mmu_update(&reqs[..n], u32::from(DOMID_SELF)) }.is_err() {
                Line::rom(b"Xen refused to map the ROM's shadow bookkeeping").print();
                crate::xen::crash();
            }
            n = 0;
        }
    }
    let Some(hole) = pool_take() else {
        out_of_frames();
    };
    // SAFETY: clears a pool frame nothing maps.
    if unsafe { xen.mmuext_op(&[MmuextOp::clear_page(Mfn(hole))], u32::from(DOMID_SELF)) }.is_err()
    {
        out_of_frames();
    }
    let heap = SHADOW_HEAP_VA as *mut Heap;
    // SAFETY: the pages are mapped read-write just above; each part is
    // built in place (no temporary copy on the kernel's small stack).
    unsafe {
        ShadowCache::init_in_place(&raw mut (*heap).cache, st.rom_area_l1_mfns);
        MmuBatch::init_in_place(&raw mut (*heap).batch);
        Views::init_in_place(&raw mut (*heap).views);
        (&raw mut (*heap).notes).write(NoteCounts::default());
        (&raw mut (*heap).hole_mfn).write(hole);
        (&raw mut (*heap).scratch_mfn).write(scratch);
        // Clear, as the shadow cache takes it (a pool frame's contents
        // are unknown).
        (&raw mut (*heap).scratch).write_bytes(0, 1);
    }
    runtime().paging.heap_ready = true;
}

#[cfg_attr(feature = "image", optimize(size))]
fn out_of_frames() -> ! {
    let st = rom_state();
    Line::rom(b"no frame left for the shadow page tables (pool of ")
        .dec(st.pool_free)
        .text(b" frames all in use): give the domain more memory")
        .print();
    crate::xen::crash();
}

// ---------------------------------------------------------------------------
// Frames

/// The machine frame of kernel frame `kfn`, if it is the kernel's (RAM or
/// the ROM's image).
#[inline]
pub fn k2m(kfn: u64) -> Option<u64> {
    let limit = u64::from(rom_state().kernel_frame_limit);
    if kfn >= limit {
        return None;
    }
    // SAFETY: the k2m table at K2M_VA has kernel_frame_limit entries.
    let m = unsafe { core::ptr::read_volatile((K2M_VA as *const u32).add(kfn as usize)) };
    (m != u32::MAX).then_some(u64::from(m))
}

/// A frame of the PC's reserved area (0x9F000-0xFFFFF): the ROM, and the
/// empty bus around it, which the loader backs with one shared frame of
/// all-ones (docs/boot-contract.md). Read-only hardware to the kernel, and
/// never one of its page tables.
pub fn is_rom_frame(kfn: u64) -> bool {
    (u64::from(LOW_RAM_END >> 12)..u64::from(HIGH_RAM_START >> 12)).contains(&kfn)
}

// ---------------------------------------------------------------------------
// Views

const VIEW_WAYS: usize = 4;
const VIEW_SETS: usize = TABLE_VIEW_SLOTS as usize / VIEW_WAYS;
/// Tag bit of a read-only view of a shadow frame (by machine frame).
const SHADOW_VIEW: u32 = 1 << 31;

/// Page-sized views of kernel frames (read-write) and shadow frames
/// (read-only: Xen lets a page table have read-only mappings), a 4-way
/// set-associative cache over TABLE_VIEW_SLOTS slots. A slot is remapped
/// at once with update_va_mapping (a miss), or through the queue when the
/// ROM knows it will need it (`RomHost::prefetch`): then it is *pending*
/// until the queue is flushed.
pub struct Views {
    /// Key + 1 per slot (0: empty).
    tags: [u32; TABLE_VIEW_SLOTS as usize],
    /// Slots whose mapping is still queued.
    pending: [u64; TABLE_VIEW_SLOTS as usize / 64],
    /// Next way to replace, per set.
    next: [u8; VIEW_SETS],
    /// Views mapped at once (hypercalls) so far.
    pub misses: u32,
    /// The kernel frame whose view `kernel_view` gave last, and that
    /// view's address, so that the next look-up of the same frame (a
    /// batch's next entry of the same table) is one compare. Set only for
    /// a view that is mapped and not pending; dropped (`drop_kernel_memo`:
    /// frame u32::MAX, address 0) by `replace` (the slot may be the one)
    /// and by a slot made pending.
    last_kernel_kfn: u32,
    last_kernel_va: u32,
}

/// Where the ROM's lazy SetPxELong and UpdatePxELong path in assembly
/// (entry.rs) finds the kernel view memo (`Views::last_kernel_kfn` and
/// `last_kernel_va`, u32 each): what `RomHost::kernel_view` compares
/// first.
pub const LAST_KERNEL_KFN_VA: u32 = SHADOW_HEAP_VA
    + (core::mem::offset_of!(Heap, views) + core::mem::offset_of!(Views, last_kernel_kfn)) as u32;
pub const LAST_KERNEL_VA_VA: u32 = SHADOW_HEAP_VA
    + (core::mem::offset_of!(Heap, views) + core::mem::offset_of!(Views, last_kernel_va)) as u32;

impl Views {
    /// # Safety
    /// `this` must be valid for writes and aligned.
    unsafe fn init_in_place(this: *mut Self) {
        // SAFETY: the caller vouches for `this`; integers only.
        unsafe {
            core::ptr::write_bytes(this, 0, 1);
            (*this).drop_kernel_memo();
        }
    }

    fn va(slot: usize) -> *mut u64 {
        (TABLE_VIEW_VA + slot as u32 * 4096) as *mut u64
    }

    fn set(key: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B1) >> 25) as usize % VIEW_SETS
    }

    #[inline]
    fn lookup(&self, key: u32) -> Option<usize> {
        let first = Self::set(key) * VIEW_WAYS;
        (first..first + VIEW_WAYS).find(|&slot| self.tags[slot] == key.wrapping_add(1))
    }

    /// The slot `key` gets (its old tag dropped).
    fn replace(&mut self, key: u32) -> usize {
        self.drop_kernel_memo();
        let set = Self::set(key);
        let way = usize::from(self.next[set]);
        self.next[set] = ((way + 1) % VIEW_WAYS) as u8;
        let slot = set * VIEW_WAYS + way;
        self.tags[slot] = key.wrapping_add(1);
        slot
    }

    fn drop_kernel_memo(&mut self) {
        self.last_kernel_kfn = u32::MAX;
        self.last_kernel_va = 0;
    }

    /// The view of kernel frame `kfn` in view slot `slot` (a root's note,
    /// `Host::root_pdpt`), if that slot is a view of it in use: tagged
    /// with it and not pending. A slot tagged with a kernel frame maps
    /// that frame, and exists only for a frame `k2m` knows (as
    /// `RomHost::read_mapped`), so what it reads is `guest_entries`'s.
    #[inline(always)]
    pub fn noted_view(&self, slot: u16, kfn: u32) -> Option<*const u64> {
        let slot = usize::from(slot) % TABLE_VIEW_SLOTS as usize;
        if self.tags[slot] != kfn.wrapping_add(1) || self.is_pending(slot) {
            return None;
        }
        Some(Self::va(slot))
    }

    fn is_pending(&self, slot: usize) -> bool {
        self.pending[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn set_pending(&mut self, slot: usize, pending: bool) {
        let bit = 1 << (slot % 64);
        if pending {
            self.drop_kernel_memo();
            self.pending[slot / 64] |= bit;
        } else {
            self.pending[slot / 64] &= !bit;
        }
    }

    /// Whether any slot is pending (its mapping still queued).
    fn any_pending(&self) -> bool {
        self.pending.iter().any(|&w| w != 0)
    }

    fn clear_pending(&mut self) {
        self.pending = [0; TABLE_VIEW_SLOTS as usize / 64];
    }
}

/// The view entries' page table: ROM-area L1 number 3 maps TABLE_VIEW_VA.
const VIEW_AREA_L1: usize = 3;
const _: () =
    assert!((TABLE_VIEW_VA - xen_vmi_rom::layout::ROM_AREA_START) >> 21 == VIEW_AREA_L1 as u32);

// ---------------------------------------------------------------------------
// The queue's way to Xen

/// `mmu-batch`'s hypercalls, on the hypercall page (counted by the
/// statistics port like every other).
pub struct XenTarget;

impl FlushTarget<Tag> for XenTarget {
    // Straight to the hypercall page, registers laid out here (`xen.h`:
    // mmu_update(reqs, count, pdone, foreigndom)): every page-table update
    // ends in this call, and the general lowering (`Call::lower`, its
    // argument slot and its match over every hypercall) cost about 85
    // instructions more per call.
    #[inline]
    fn mmu_update(&mut self, reqs: &[MmuUpdate], pdone: &mut u32) -> i32 {
        let mut xen = hypervisor();
        let raw = xen.raw_mut();
        let args = [
            raw.guest_addr(reqs.as_ptr().cast()),
            reqs.len() as u32,
            raw.guest_addr(core::ptr::from_mut(pdone).cast_const().cast()),
            u32::from(DOMID_SELF),
            0,
        ];
        // SAFETY: shadow tables and the ROM's views only; the shadow cache
        // keeps every mapping the kernel relies on. The requests and the
        // count word stay where they are (the queue, or the caller's
        // stack) for the whole call.
        unsafe { raw.raw_hypercall(__HYPERVISOR_mmu_update, args) as i32 }
    }

    fn mmuext_op(&mut self, ops: &[MmuextOp], pdone: &mut u32) -> i32 {
        let call = Call::MmuextOp {
            ops,
            done: Some(pdone),
            foreign_dom: u32::from(DOMID_SELF),
        };
        // SAFETY: as above (pins, base switches, TLB maintenance).
        unsafe { hypervisor().hypercall(call) as i32 }
    }

    // Straight to the hypercall page too (`xen.h`: update_va_mapping(va,
    // val_lo, val_hi, flags) for a 32-bit guest): the end of a fault's
    // entry update (`MmuBatch::end_of_call_mapped`).
    #[inline]
    fn update_va_mapping(&mut self, va: u32, pte: u64, flags: u32) -> i32 {
        let mut xen = hypervisor();
        let raw = xen.raw_mut();
        let args = [va, pte as u32, (pte >> 32) as u32, flags, 0];
        // SAFETY: as above: an entry of the loaded shadow tables.
        unsafe { raw.raw_hypercall(__HYPERVISOR_update_va_mapping, args) as i32 }
    }

    fn stack_switch(&mut self, ss: u32, esp: u32) -> i32 {
        // SAFETY: tells Xen the kernel's stack for the next entry from
        // ring 3 (UpdateKernelStack, queued in lazy CPU mode).
        unsafe { hypervisor().hypercall(Call::StackSwitch { ss, esp }) as i32 }
    }

    fn multicall(&mut self, calls: &mut Multicall<'_>) -> i32 {
        let count = calls.len() as u32;
        let list = calls.entries_mut().as_mut_ptr() as u32;
        // SAFETY: the entries and the arguments they point at live in the
        // queue (the ROM's heap, mapped in every address space) for the
        // whole call; each entry is one of the calls above.
        unsafe { crate::xen::multicall(list, count) }
    }

    #[cfg_attr(feature = "image", optimize(size))]
    fn failed(&mut self, failure: &Failure<Tag>) {
        let t = failure.tag;
        let line = Line::rom(b"Xen refused ");
        // Each arm prints its own words: a table of string slices would
        // hold absolute pointers, which the ROM cannot carry.
        let line = match t.what {
            What::L1Entry => line.text(b"the shadow of page-table entry"),
            What::L2Entry | What::TopEntry => line.text(b"the shadow of page-directory entry"),
            What::Pdpte => line.text(b"the shadow of PDPT entry"),
            What::RomLink => line.text(b"the ROM area's link for the PDPT entry"),
            What::Clear | What::FillTable => {
                line.text(b"clearing or filling a shadow frame for the table holding")
            }
            What::Pin => line.text(b"pinning the shadow of the table holding"),
            What::Unpin => line.text(b"unpinning the shadow of the table holding"),
            What::CopyTop => line.text(b"copying a top L2 for the PDPT entry"),
            What::NewBase => line.text(b"loading the address space of PDPT entry"),
            What::Tlb => line.text(b"a TLB flush for entry"),
            What::StackSwitch => line.text(b"the kernel stack switch (ss << 32 | esp0)"),
        };
        let line = line.text(b" ").hex(t.entry_address() as u32).text(b" = ");
        let line = hex64(line, t.guest)
            .text(b" (errno ")
            .dec(failure.errno as u32)
            .text(b")");
        // Only roots are pinned (shadow_cache, "Only roots are pinned"):
        // Xen checks a table of no type whole when a root's tables first
        // link it, so the entry it refused may be one under this one.
        let line = match t.what {
            What::L2Entry | What::TopEntry | What::Pdpte | What::Pin => line.text(
                b": Xen checked the shadow tables it links then, the refusal may be one of their entries",
            ),
            _ => line,
        };
        line.print();
    }
}

/// A 64-bit value as 0x and 16 hex digits.
#[cfg_attr(feature = "image", optimize(size))]
pub fn hex64(line: Line, v: u64) -> Line {
    let mut line = line.text(b"0x");
    for byte in v.to_be_bytes() {
        line = line.hex2(byte);
    }
    line
}

/// After a flush that met refusals (each reported by `failed`): the
/// kernel's tables and Xen's now disagree, which the ROM never lets the
/// kernel run with.
#[cold]
#[cfg_attr(feature = "image", optimize(size))]
pub fn refused(f: Failures<Tag>) -> ! {
    Line::rom(b"")
        .dec(f.count)
        .text(b" shadow update(s) refused (the kernel's tables and Xen's would disagree): crashing the domain")
        .print();
    crate::xen::crash();
}

/// Flushes the queue for `reason` (or crashes the domain if Xen refused
/// anything).
pub fn barrier(batch: &mut MmuBatch<Tag, BATCH>, reason: Barrier) {
    if let Err(f) = batch.barrier(reason, &mut XenTarget) {
        refused(f);
    }
}

/// Before a frame is taken from the pool for anything but a shadow table
/// (desc.rs: the GDT and LDT copies, used at once by direct hypercalls):
/// the queue may still hold ops naming a frame the shadow cache gave back
/// (an unpin, a clear, a copy onto a kept table's frame), which Xen would
/// run after that use, on the frame's new contents or type. They go out
/// first. The cache's own takes need nothing: its ops on a frame it takes
/// are queued behind them. (Found in session 9's reviews.)
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
pub fn before_foreign_take() {
    // A held context switch needs nothing: it is held only while nothing
    // is queued (`paging::load`), and stays held.
    if runtime().paging.heap_ready && !built_heap().batch.is_empty() {
        barrier(&mut built_heap().batch, Barrier::CoherentRead);
    }
}

/// The end of a VMI call: outside lazy mode, its ops go out now.
#[inline(always)]
pub fn end_of_call(batch: &mut MmuBatch<Tag, BATCH>) {
    if let Err(f) = batch.end_of_call(&mut XenTarget) {
        refused(f);
    }
}

/// [`end_of_call`], `va` being mapped by the shadow entry at
/// `entry_maddr` in the loaded tables (`MmuBatch::end_of_call_mapped`).
#[inline(always)]
pub fn end_of_call_mapped(batch: &mut MmuBatch<Tag, BATCH>, va: u32, entry_maddr: u64) {
    if let Err(f) = batch.end_of_call_mapped(&mut XenTarget, va, entry_maddr) {
        refused(f);
    }
}

/// The shadow write of the entry that maps `w.va` in the loaded tables,
/// ending a call, the queue idle (`RomHost::mapped_write_ready` said so
/// right before, with nothing pushed since: `MmuBatch::write_mapped_idle`,
/// one `update_va_mapping`).
#[inline(always)]
pub fn write_mapped(batch: &mut MmuBatch<Tag, BATCH>, w: xen_vmi_rom::shadow_cache::MappedWrite) {
    if let Err(f) = batch.write_mapped_idle(&mut XenTarget, w.va, w.entry_maddr, w.value, w.tag) {
        refused(f);
    }
}

/// A shadow-cache error: the guest cannot go on.
#[cfg_attr(feature = "image", optimize(size))]
pub fn fatal(call: &[u8], e: ShadowError) -> ! {
    let line = Line::rom(b"").text(call).text(b": ");
    match e {
        ShadowError::OutOfFrames => out_of_frames(),
        ShadowError::OutOfRecords => line
            .text(b"more page tables in use at once than the ROM can shadow")
            .print(),
        ShadowError::Cr3NotRam { cr3 } => line
            .text(b"CR3 ")
            .hex(cr3)
            .text(b" is not a page table: its frame is not the kernel's RAM")
            .print(),
        ShadowError::BadPdpte { cr3, slot, entry } => hex64(
            line.text(b"CR3 ")
                .hex(cr3)
                .text(b" is not a page table: PDPT entry ")
                .dec(u32::from(slot))
                .text(b" = "),
            entry,
        )
        .text(b" has reserved bits or names a frame that is not RAM (natively #GP)")
        .print(),
    }
    crate::xen::crash();
}

// ---------------------------------------------------------------------------
// The cache's host

/// Console lines said so far, per kind of note (the first few of each are
/// printed, then one line saying the rest are not).
#[derive(Default)]
pub struct NoteCounts {
    counts: [u32; 7],
}

/// Lines printed per kind of note.
const NOTES_SHOWN: u32 = 8;

/// The shadow cache's view of the ROM: borrows the heap's other parts.
pub struct RomHost<'a> {
    pub batch: &'a mut MmuBatch<Tag, BATCH>,
    pub views: &'a mut Views,
    pub notes: &'a mut NoteCounts,
    pub hole_mfn: u32,
    /// Whether the kernel has activated VMI (before, a native change of its
    /// tables is the rule, not a note).
    pub activated: bool,
}

impl Heap {
    /// The cache and its host, borrowed apart.
    pub fn split(&mut self) -> (&mut ShadowCache, RomHost<'_>) {
        (
            &mut self.cache,
            RomHost {
                batch: &mut self.batch,
                views: &mut self.views,
                notes: &mut self.notes,
                hole_mfn: self.hole_mfn,
                activated: runtime().paging.activated,
            },
        )
    }
}

impl RomHost<'_> {
    /// The view of `key` mapped as `pte`: at once on a miss; a pending
    /// slot is made real by flushing the queue. Inline: a hit (every
    /// SetPxE's store, in a table the kernel fills entry after entry) is a
    /// few instructions; the rest is out of line.
    #[inline]
    fn view(&mut self, key: u32, pte: u64) -> *mut u64 {
        if let Some(slot) = self.views.lookup(key) {
            if !self.views.is_pending(slot) {
                return Views::va(slot);
            }
        }
        self.view_slow(key, pte)
    }

    /// `view` for a pending slot or a miss.
    #[inline(never)]
    fn view_slow(&mut self, key: u32, pte: u64) -> *mut u64 {
        if let Some(slot) = self.views.lookup(key) {
            if self.views.is_pending(slot) {
                self.make_real();
            }
            return Views::va(slot);
        }
        self.view_miss(key, pte)
    }

    /// A pending view is about to be used: the queue (holding its
    /// mapping) goes out.
    #[cold]
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn make_real(&mut self) {
        barrier(self.batch, Barrier::CoherentRead);
        self.views.clear_pending();
    }

    /// `view` when `key` has no slot: one is mapped now.
    #[cold]
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn view_miss(&mut self, key: u32, pte: u64) -> *mut u64 {
        if self.views.any_pending() {
            // The slot replaced now may have a mapping still queued, which
            // would land after this one.
            barrier(self.batch, Barrier::CoherentRead);
            self.views.clear_pending();
        }
        let slot = self.views.replace(key);
        self.views.misses += 1;
        let va = Views::va(slot);
        // SAFETY: the view slots are the ROM's own; the frame is the
        // kernel's RAM (read-write) or a shadow table (read-only).
        let ok = unsafe { hypervisor().update_va_mapping(va as u32, pte, UVMF_INVLPG) };
        if ok.is_err() {
            Line::rom(b"Xen refused a view of frame ")
                .hex((pte >> 12) as u32)
                .print();
            crate::xen::crash();
        }
        va
    }

    /// `root_pdpt` when the noted slot is not the frame's (or is
    /// pending): the view as `guest_entries` gets it, its slot noted.
    #[inline(never)]
    fn root_pdpt_view(&mut self, kfn: u32, hint: &mut u16) -> Option<*mut u64> {
        let page = self.kernel_view_unkept(kfn)?;
        if let Some(slot) = self.views.lookup(kfn) {
            *hint = slot as u16;
        }
        Some(page)
    }

    /// Kernel frame `kfn`, read-write (None: not the kernel's). Inline:
    /// the frame of the last call (a batch writes one table entry after
    /// entry) is one compare; a view exists only for a frame `k2m` knows,
    /// so that answer is the look-up's.
    #[inline(always)]
    fn kernel_view(&mut self, kfn: u32) -> Option<*mut u64> {
        // A null pointer for none inside: the hit's answer then needs no
        // second test where the two ways meet. A memo dropped holds frame
        // u32::MAX and null, which is also that frame's answer (beyond
        // `kernel_frame_limit`: not the kernel's).
        let page = if self.views.last_kernel_kfn == kfn {
            self.views.last_kernel_va as *mut u64
        } else {
            self.kernel_view_lookup(kfn)
        };
        (!page.is_null()).then_some(page)
    }

    /// `kernel_view` by the look-up alone (the memo neither read nor
    /// kept), inline.
    #[inline]
    fn kernel_view_unkept(&mut self, kfn: u32) -> Option<*mut u64> {
        let mfn = k2m(u64::from(kfn))?;
        Some(self.view(kfn, (mfn << 12) | PRESENT | RW | ACCESSED | DIRTY))
    }

    /// `kernel_view` by the look-up (its answer kept for the next call);
    /// null: not the kernel's frame. Out of line: taken once per table in
    /// a batch.
    #[inline(never)]
    fn kernel_view_lookup(&mut self, kfn: u32) -> *mut u64 {
        let Some(mfn) = k2m(u64::from(kfn)) else {
            return core::ptr::null_mut();
        };
        let va = self.view(kfn, (mfn << 12) | PRESENT | RW | ACCESSED | DIRTY);
        // The view is mapped and not pending now (`view` made it real).
        self.views.last_kernel_kfn = kfn;
        self.views.last_kernel_va = va as u32;
        va
    }

    /// A view of kernel frame `kfn` the ROM is about to need (a page table
    /// the kernel just announced), mapped through the queue: it goes out
    /// with the call's other work instead of costing a hypercall of its
    /// own when first used.
    pub fn prefetch(&mut self, kfn: u32) {
        let Some(mfn) = k2m(u64::from(kfn)) else {
            return;
        };
        if self.views.lookup(kfn).is_some() {
            return;
        }
        let slot = self.views.replace(kfn);
        self.views.set_pending(slot, true);
        let area_l1 = u64::from(rom_state().rom_area_l1_mfns[VIEW_AREA_L1]) << 12;
        let pte = (mfn << 12) | PRESENT | RW | ACCESSED | DIRTY;
        let tag = Tag {
            what: What::Tlb,
            kfn,
            ..Tag::default()
        };
        self.push(
            Op::pte_write(area_l1 + slot as u64 * 8, pte, mmu_batch::PteWrite::Normal),
            tag,
        );
        self.push(
            Op::Mmuext(MmuextOp::invlpg_local(Views::va(slot) as u32)),
            tag,
        );
    }

    /// The kernel's 8-byte entry at `kfn:index`, read through a view.
    /// Inline: every UpdatePxELong reads the entry the kernel wrote.
    #[inline(always)]
    pub fn read(&mut self, kfn: u32, index: usize) -> Option<u64> {
        let page = self.kernel_view(kfn)?;
        // SAFETY: the view maps the whole frame; index < 512.
        Some(unsafe { page.add(index & 511).read_volatile() })
    }

    /// Writes 4 or 8 bytes at byte `offset` of kernel frame `kfn` (a
    /// SetPxE or SetPxELong store). Inline: every SetPxELong stores.
    #[inline(always)]
    pub fn write(&mut self, kfn: u32, offset: u32, value: u64, long: bool) -> bool {
        let Some(page) = self.kernel_view(kfn) else {
            return false;
        };
        let at = page.cast::<u8>().wrapping_add((offset & 0xFFF) as usize);
        // SAFETY: inside the viewed frame (offset within the page, aligned
        // as the kernel's own store would be); events are masked and there
        // is one vCPU, so no one sees a half-written entry.
        unsafe {
            if long {
                let halves = at.cast::<u32>();
                // High half first when the entry becomes present: never a
                // present entry with a stale frame (as Linux's set_pte).
                if value & PRESENT != 0 {
                    halves.add(1).write_volatile((value >> 32) as u32);
                    halves.write_volatile(value as u32);
                } else {
                    halves.write_volatile(value as u32);
                    halves.add(1).write_volatile((value >> 32) as u32);
                }
            } else {
                at.cast::<u32>().write_volatile(value as u32);
            }
        }
        true
    }

    /// The shadow entry at `mfn:index` as it will be once the queue is
    /// flushed: the last queued write of it, else what Xen holds.
    pub fn shadow_entry(&mut self, mfn: u32, index: usize) -> u64 {
        let maddr = (u64::from(mfn) << 12) + (index as u64 & 511) * 8;
        // Only InvalPage's check asks, right before it queues its INVLPG,
        // which ends a plain run of writes anyway: ended here, the walk
        // reads the slots alone. With nothing queued (the usual case: a
        // protection fault's update went out at its call's end) there is
        // nothing to walk or end.
        if !self.batch.is_empty() {
            self.batch.end_plain_run();
            let mut queued = None;
            for (op, _) in self.batch.pending() {
                match op {
                    Op::MmuUpdate(u) if u.machine_addr() == maddr => {
                        queued = Some(u64::from(u.val))
                    }
                    Op::Mmuext(e) if e.cmd == MMUEXT_CLEAR_PAGE && e.arg1 == mfn => {
                        queued = Some(0)
                    }
                    _ => {}
                }
            }
            if let Some(v) = queued {
                return v;
            }
        }
        let page = self.view(
            SHADOW_VIEW | mfn,
            (u64::from(mfn) << 12) | PRESENT | ACCESSED,
        );
        // SAFETY: the read-only view maps the whole frame; index < 512.
        unsafe { page.add(index & 511).read_volatile() }
    }

    fn note_kind(note: &Note) -> usize {
        match note {
            Note::NotKernelFrame { .. } => 0,
            Note::UnusableTable { .. } => 1,
            Note::ReservedBits { .. } => 2,
            Note::ReleasedLive { .. } => 3,
            Note::ReleasedCurrentRoot { .. } => 4,
            Note::Unannounced { .. } => 5,
            Note::Evicted { .. } => 6,
        }
    }
}

impl Host for RomHost<'_> {
    // Out of line: its callers are the fault path's fall-back and the
    // shadows' fills, not the entry calls (which read inline).
    #[inline(never)]
    fn guest_entry(&mut self, kfn: u32, index: usize) -> u64 {
        // A frame the kernel does not have holds no table.
        self.read(kfn, index).unwrap_or(0)
    }

    // The #PF path: the two reads inline when their views are mapped (the
    // common case), first at the hint, the view slot that held the frame
    // last time (checked as the look-up checks a slot: its tag, and no
    // mapping still queued: none with the queue empty, as it is on this
    // path, since every view mapping goes out with the queue), then by the
    // look-up; otherwise `read`'s way.
    // A kernel frame's view exists only for a frame `k2m` knows
    // (`kernel_view` and `prefetch` ask it first; the table is fixed after
    // boot), so the value is `read`'s. Views are keyed by frame, shadow
    // frames with `SHADOW_VIEW` (bit 31) set: the callers pass kernel
    // frames of the kernel's RAM (a loaded PDPT entry's, or the table of a
    // directory entry `directory_named` accepted), below that bit.
    #[inline(always)]
    fn fault_entry(&mut self, kfn: u32, index: usize, hint: &mut u16) -> u64 {
        debug_assert!(kfn & SHADOW_VIEW == 0, "a kernel frame with bit 31 set");
        let slot = usize::from(*hint);
        let hit = self.views.tags.get(slot) == Some(&kfn.wrapping_add(1));
        if hit && (self.batch.is_empty() || !self.views.is_pending(slot)) {
            // SAFETY: the view maps the whole frame; the index stays in it.
            return unsafe { Views::va(slot).add(index & 511).read_volatile() };
        }
        match self.views.lookup(kfn) {
            Some(slot) if !self.views.is_pending(slot) => {
                *hint = slot as u16;
                // SAFETY: as above.
                unsafe { Views::va(slot).add(index & 511).read_volatile() }
            }
            _ => self.guest_entry(kfn, index),
        }
    }

    fn guest_entries(&mut self, kfn: u32, first: usize, out: &mut [u64]) {
        // One view for the run (a CR3 load's four PDPT entries), by the
        // look-up as it stands: a switch's PDPT is rarely the frame of the
        // last entry call, and the memo's upkeep would cost the switch.
        let Some(page) = self.kernel_view_unkept(kfn) else {
            out.fill(0);
            return;
        };
        for (k, e) in out.iter_mut().enumerate() {
            // SAFETY: the view maps the whole frame; the index stays in it.
            *e = unsafe { page.add((first + k) & 511).read_volatile() };
        }
    }

    // A CR3 load of a cached root: the view slot its PDPT's frame had
    // last time (`Views::noted_view`), else the view as
    // `guest_entries` gets it, its slot noted.
    #[inline(always)]
    fn root_pdpt(&mut self, kfn: u32, first: usize, hint: &mut u16) -> Option<[u64; 4]> {
        let page = match self.views.noted_view(*hint, kfn) {
            Some(page) => page,
            None => self.root_pdpt_view(kfn, hint)?,
        };
        let mut pdpt = [0; 4];
        for (k, e) in pdpt.iter_mut().enumerate() {
            // SAFETY: the view maps the whole frame; the index stays in it.
            *e = unsafe { page.add((first + k) & 511).read_volatile() };
        }
        Some(pdpt)
    }

    fn set_guest_bits(&mut self, kfn: u32, index: usize, bits: u64) {
        let Some(page) = self.kernel_view(kfn) else {
            return;
        };
        // A and D are in the low half; the processor sets them with a
        // locked operation, and so does the ROM.
        // SAFETY: the low half of an 8-byte entry inside the viewed frame.
        let low = unsafe { AtomicU32::from_ptr(page.add(index & 511).cast::<u32>()) };
        low.fetch_or(bits as u32, Ordering::SeqCst);
    }

    #[inline]
    fn machine_frame(&self, kfn: u64) -> Option<u64> {
        k2m(kfn)
    }

    #[inline]
    fn read_only_frame(&self, kfn: u64) -> bool {
        is_rom_frame(kfn)
    }

    fn hole_frame(&self) -> u64 {
        u64::from(self.hole_mfn)
    }

    fn take_frame(&mut self) -> Option<u32> {
        pool_take()
    }

    fn give_frame(&mut self, mfn: u32) {
        pool_give(mfn);
    }

    #[inline]
    fn push(&mut self, op: Op, tag: Tag) {
        if let Err(f) = self.batch.push(op, tag, &mut XenTarget) {
            refused(f);
        }
    }

    #[inline(always)]
    fn scratch_frame(&self) -> u32 {
        scratch_mfn()
    }

    fn scratch_store(&mut self, index: usize, value: u64) {
        scratch_store(index, value);
    }

    fn flush_count(&self) -> u32 {
        queue_flushes(self.batch)
    }

    #[inline(always)]
    fn push_pte_write(&mut self, maddr: u64, value: u64, tag: Tag) {
        let normal = mmu_batch::PteWrite::Normal;
        if let Err(f) = self
            .batch
            .push_pte_write(maddr, value, normal, tag, &mut XenTarget)
        {
            refused(f);
        }
    }

    #[cfg_attr(feature = "image", optimize(size))]
    fn note(&mut self, note: Note) {
        if matches!(note, Note::Unannounced { .. }) && !self.activated {
            // Before activation the kernel writes its tables natively: the
            // fault path filling the shadow is the normal way.
            return;
        }
        if let Note::NotKernelFrame { entry, .. } = note {
            // The PC's legacy area below 1 MiB (VGA, BIOS): every kernel
            // maps it in its direct map, and the empty page it gets is what
            // an empty bus would give.
            let frame = ((entry & xen_vmi_rom::shadow_entry::FRAME) >> 12) as u32;
            if (LOW_RAM_END >> 12..HIGH_RAM_START >> 12).contains(&frame) {
                return;
            }
        }
        let kind = Self::note_kind(&note);
        let count = &mut self.notes.counts[kind];
        *count += 1;
        if *count > NOTES_SHOWN {
            return;
        }
        let line = Line::rom(b"");
        // A function, not a closure: the attribute reaches it (cold text).
        #[cfg_attr(feature = "image", optimize(size))]
        fn entry_line(line: Line, kfn: u32, index: u16, entry: u64) -> Line {
            hex64(
                line.hex((kfn << 12) + u32::from(index) * 8).text(b" = "),
                entry,
            )
        }
        let line = match note {
            Note::NotKernelFrame { kfn, index, entry } => {
                entry_line(line.text(b"page-table entry "), kfn, index, entry).text(
                    b" maps a frame that is not the kernel's RAM: mapped to a read-only empty page",
                )
            }
            Note::UnusableTable { kfn, index, entry } => {
                entry_line(line.text(b"page-directory entry "), kfn, index, entry).text(
                    b" names no page table the ROM can shadow (2 MiB page or not RAM): left out",
                )
            }
            Note::ReservedBits { kfn, index, entry } => {
                entry_line(line.text(b"entry "), kfn, index, entry)
                    .text(b" has reserved bits set: left out (natively a reserved-bit fault)")
            }
            Note::ReleasedLive { kfn, links } => line
                .text(b"ReleasePage(")
                .hex(kfn)
                .text(b"): the page table is still linked from ")
                .dec(u32::from(links))
                .text(b" place(s): it stays a page table until unlinked"),
            Note::ReleasedCurrentRoot { cr3 } => line
                .text(b"ReleasePage of the PDPT of the loaded address space (CR3 ")
                .hex(cr3)
                .text(b"): ignored"),
            Note::Unannounced {
                va,
                kfn,
                index,
                entry,
            } => hex64(
                line.text(b"the kernel changed entry ")
                    .hex((kfn << 12) + u32::from(index) * 8)
                    .text(b" (for va ")
                    .hex(va)
                    .text(b") without SetPxE/UpdatePxE, to "),
                entry,
            )
            .text(b": shadow updated"),
            Note::Evicted { roots, tables } => line
                .text(b"shadow pool full: dropped ")
                .dec(roots)
                .text(b" cached address space(s) and ")
                .dec(tables)
                .text(b" unlinked table(s)"),
        };
        line.print();
        if *count == NOTES_SHOWN {
            Line::rom(b"(further lines of this kind are not shown)").print();
        }
    }
}
