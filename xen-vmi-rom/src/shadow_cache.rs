//! The cached shadows of the kernel's page tables (docs/page-tables.md,
//! "Keeping shadows exact"): which of the kernel's tables have a shadow,
//! what every shadow entry must hold, and the Xen operations that keep
//! them so as the kernel changes its tables.
//!
//! Pure bookkeeping: the kernel's memory, its frame numbers, the frame pool
//! and the queue of Xen operations are behind [`Host`], which the ROM
//! implements on Xen (views of kernel frames, the k2m table, `mmu-batch`)
//! and the host tests on a model.
//!
//! # Objects
//!
//! - An **L1 record** per kernel page table that has a shadow: a shadow
//!   L1 whose entries are [`shadow_entry::shadow`] of the kernel's, with
//!   the A/D rule.
//! - An **L2 record** per kernel page directory used in PDPT slots 0-2 (or
//!   announced with AllocatePage): a shadow L2, and a mirror that says
//!   which L1 record each entry links (and with what rights).
//! - A **top record** per kernel page directory used in PDPT slot 3: only
//!   the mirror. Xen gives the L2 under slot 3 its own type
//!   (`pae_xen_l2`: never shared between L3s, never pinned alone, slots
//!   428-511 Xen's), so every root has its own copy of it.
//! - A **root** per kernel PDPT (CR3 value) that has been loaded: a pinned
//!   shadow L3, its own top L2 (the top record's entries, then the ROM
//!   area's four L1s in slots 424-427), and the PDPT entries it was built
//!   from.
//!
//! # Only roots are pinned
//!
//! Xen gives a frame a page-table type while something holds a type
//! reference to it: a pin, or an entry of a validated table that links it
//! (`get_page_type` in `xen/arch/x86/mm.c`). Linking a frame of no type
//! validates it then, entry by entry, and the last reference gone drops
//! the type again (the table's own links with it). So only the roots' L3s
//! are pinned (`MMUEXT_PIN_L3_TABLE`, which validates the whole tree under
//! it); L1s and L2s are typed exactly while a cached root reaches them, as
//! a XenLinux kernel pins only its PGDs. A shadow no root reaches has no
//! type: Xen takes writes to it as plain data (`do_mmu_update`, the
//! `PGT_writable_page` case) and checks them when a root's tables come to
//! link it (a refusal then names that link or the root's pin, not the
//! entry: Xen checks the table whole). That is how a new address space is
//! built: its tables written with no check and no pin per table, and
//! checked once at its first load, as direct PV does.
//!
//! A frame that stops being a table is cleared (`MMUEXT_CLEAR_PAGE`, queued
//! behind whatever dropped its last link; a directory whose entries were
//! all unlinked is clear already, a freed root's frames are kept as they
//! are, [`SPARE_ROOT_FRAMES`]) and kept for the next table
//! ([`CLEAN_FRAMES`] of them), which then needs no clear of its own: the
//! ops that tear an address space down go before the calls that build the
//! next, and those are page-table writes alone, one run in the queue. A
//! page table's frame whose non-zero entries the cache lists
//! ([`KnownFrame`], [`KNOWN_SLOTS`] of them) is kept as it is instead, for
//! the next page table, which writes only the entries that differ; the
//! entries it does not have are zeroed before a pinned root can reach it.
//! When those differ in many entries (an exec maps fresh frames), the
//! writes go into the host's scratch frame instead ([`Scratch`]) and onto
//! the table's frame in one `MMUEXT_COPY_PAGE` at that same point.
//!
//! # Invariants (checked by `tests/shadow_cache.rs` against a model of Xen)
//!
//! 1. Every kernel table reachable from a cached root's PDPT entries has a
//!    record, and its shadow holds, entry for entry, the shadow of the
//!    kernel's entry (as of the last change the kernel announced).
//! 2. A record's `refs` counts the mirror entries (of L2 and top records)
//!    and root slots that link it; a record with no links is freed unless
//!    the kernel announced it (AllocatePage) and has not released it.
//! 3. Every frame taken from the pool belongs to exactly one record or
//!    root, or is kept clear for the next one, or is kept as a freed
//!    root's frame ([`SPARE_ROOT_FRAMES`]) or a freed page table's
//!    ([`KnownFrame`]), until it is given back, after the ops that drop
//!    its last type reference are queued. A [`KnownFrame`] holds exactly
//!    the entries it lists (the rest 0), but for the scratch's owner
//!    ([`Scratch`]): the scratch frame holds them, and the owner's frame
//!    differs from it only at entries written to the scratch alone. One
//!    with stale entries (its record's table does not have them), and the
//!    scratch's owner, is reached by no pinned root.
//! 4. Ops are queued in an order Xen accepts: a frame is clear (or holds
//!    exactly what the ROM knows it holds) before its entries are
//!    written, an L1 exists before an entry links it, a frame
//!    is cleared or given back only behind the op that drops its last
//!    type reference, an L3 is complete before it is pinned (its slot 3
//!    cannot change afterwards), the scratch frame does not change while
//!    a copy from it may still be queued.

use mmu_batch::{Op, PteWrite};
use xen_abi::p2m::Mfn;
use xen_abi::xen::MmuextOp;

use crate::layout::rom_area_l2_slots;
use crate::shadow_entry::{
    eager_bits, l1_value_quick, shadow, Level, Refusal, ACCESSED, DIRTY, FRAME, NX, PAT_OR_PSE,
    PRESENT, RW, USER,
};

/// Entries in a page table.
pub const ENTRIES: usize = 512;
/// Records (L1, L2 and top) the cache holds.
pub const MAX_TABLES: usize = 1024;
/// Mirrors (one per L2 or top record).
pub const MAX_MIRRORS: usize = 64;
/// Roots (address spaces) the cache holds.
pub const MAX_ROOTS: usize = 32;
const _: () = assert!(
    MAX_ROOTS <= u32::BITS as usize,
    "live_roots has a bit per root"
);
/// Mirror entries per bit of `ShadowCache::mirror_groups`.
const MIRROR_GROUP: usize = 32;
const _: () = assert!(ENTRIES / MIRROR_GROUP <= u16::BITS as usize);
/// Slots of the hint that finds a cached root by its CR3.
const ROOT_HINTS: usize = 64;
/// Frames kept cleared for the next shadow table ("Only roots are
/// pinned"): enough for the tables of a few address spaces torn down
/// before the next are built; beyond that a frame goes back to the pool.
pub const CLEAN_FRAMES: usize = 64;
/// Freed roots whose L3 and top L2 are kept as they are for the next roots
/// ("Only roots are pinned"): a fork's new root takes its parent's top L2
/// by `MMUEXT_COPY_PAGE`, which overwrites the whole frame, and its L3
/// needs only the slots (of four, the only ones a root's L3 ever has
/// written) whose entry differs from the old root's; clearing either
/// when the old root went was wasted.
pub const SPARE_ROOT_FRAMES: usize = 4;
/// L1 shadow frames whose non-zero entries the cache lists
/// ([`KnownFrame`]): a freed page table's frame is kept as it is, with its
/// list, for the next page table instead of being cleared.
pub const KNOWN_SLOTS: usize = 8;
/// Entries a [`KnownFrame`] lists: a table with more non-zero entries is
/// no longer followed (its frame is cleared when freed, as before).
pub const KNOWN_ENTRIES: usize = 32;
const _: () = assert!(KNOWN_ENTRIES <= u32::BITS as usize && KNOWN_SLOTS <= u8::BITS as usize);
/// L2 shadow frames of page directories (PDPT slots 0-2) whose non-zero
/// entries the cache lists ([`KnownDir`]): a freed directory's frame is
/// kept with its links for the next directory, so that neither the unlinks
/// at an exit nor the links of the next fork need a write.
pub const KNOWN_DIRS: usize = 2;
/// Entries a [`KnownDir`] lists: a directory with more non-zero entries is
/// no longer followed.
pub const KNOWN_DIR_ENTRIES: usize = 8;
const _: () = assert!(
    KNOWN_DIR_ENTRIES <= u8::BITS as usize && KNOWN_DIRS <= u32::BITS as usize,
    "a stale bit per listed entry in a u8, a dirs_stale bit per slot in a u32"
);
const BUCKETS: usize = 1024;
/// Writes to an unreached page table's frame that make one
/// `MMUEXT_COPY_PAGE` from the scratch frame ([`Host::scratch_frame`])
/// worth its cost: Xen's copy of a page, with the ROM's push, measured at
/// about 2,800 instructions (fork_exec, dom0), the scratch's upkeep about
/// 400 per table; a write put in the scratch instead of the queue saves
/// about 300 (Xen's `mmu_update` request on a frame of no type and the
/// queue's push, less the store). Fewer go out as writes. A table takes
/// the scratch only while its frame has a stale entry at list position
/// `SCRATCH_COPY_MIN - 1` or beyond (its last user had at least that many
/// entries: the new one likely writes as many).
pub const SCRATCH_COPY_MIN: u32 = 10;

/// The first L2 slot under PDPT slot 3 that is not the kernel's: the
/// ROM's area (`virtual_top`), then Xen's.
pub const TOP_KERNEL_SLOTS: usize = rom_area_l2_slots().start as usize;

/// What a queued op is for (the ROM prints it when Xen refuses one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum What {
    /// A shadow L1 entry for the kernel's entry `kfn:index` = `guest`.
    #[default]
    L1Entry,
    /// A shadow L2 entry (PDPT slots 0-2) for the kernel's `kfn:index`.
    L2Entry,
    /// A root's top L2 entry for the kernel's `kfn:index`.
    TopEntry,
    /// A shadow L3 entry for the kernel's PDPT entry `kfn:index`.
    Pdpte,
    /// A root's link to the ROM's area.
    RomLink,
    /// Clearing a fresh shadow frame for the kernel table `kfn`.
    Clear,
    /// Pinning a root's shadow L3 (`kfn`: its PDPT). Xen validates the
    /// whole tree under it then.
    Pin,
    /// Unpinning it.
    Unpin,
    /// Copying a sibling root's top L2 into a new root's.
    CopyTop,
    /// Copying the scratch frame, which holds a page table's entries, onto
    /// its shadow frame (`kfn`: the kernel's table).
    FillTable,
    /// Loading a root (`kfn:index`: its PDPT).
    NewBase,
    /// A TLB flush or INVLPG for the kernel.
    Tlb,
    /// UpdateKernelStack in lazy CPU mode (`guest`: ss << 32 | esp0),
    /// queued with the context switch's base switch.
    StackSwitch,
}

/// The guest side of a queued op, for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tag {
    /// What the op is for.
    pub what: What,
    /// The kernel frame of the table (a root: its PDPT's frame).
    pub kfn: u32,
    /// The entry in it (a root: the PDPT's first entry).
    pub index: u16,
    /// The kernel's entry that produced the op (or the address flushed).
    pub guest: u64,
}

impl Tag {
    /// The kernel-physical address of the entry.
    pub fn entry_address(&self) -> u64 {
        (u64::from(self.kfn) << 12) + u64::from(self.index) * 8
    }
}

/// Something the ROM should say on the console (nothing here is fatal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// An entry maps a frame that is not the kernel's RAM: the shadow maps
    /// the read-only empty page instead (reads see zeros, writes fault).
    NotKernelFrame { kfn: u32, index: u16, entry: u64 },
    /// A page-directory entry that names no usable page table (a 2 MiB
    /// page, which Xen does not give PV guests, or a frame that is not
    /// RAM): left out of the shadow.
    UnusableTable { kfn: u32, index: u16, entry: u64 },
    /// An entry with bits the architecture reserves: left out of the shadow
    /// (natively, a reserved-bit page fault on use).
    ReservedBits { kfn: u32, index: u16, entry: u64 },
    /// ReleasePage of a table still linked: it stays a table until the
    /// last link goes.
    ReleasedLive { kfn: u32, links: u16 },
    /// ReleasePage of the PDPT frame of the loaded address space: ignored.
    ReleasedCurrentRoot { cr3: u32 },
    /// An entry the kernel changed without telling the ROM (no SetPxE or
    /// UpdatePxE), found at a fault or an INVLPG and repaired.
    Unannounced {
        va: u32,
        kfn: u32,
        index: u16,
        entry: u64,
    },
    /// The pool ran dry: cached shadows were dropped to make room.
    Evicted { roots: u32, tables: u32 },
}

/// Why the cache could not do what was asked; the ROM crashes the guest
/// with the figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowError {
    /// No frame left in the pool, even after dropping every cached shadow
    /// not in use.
    OutOfFrames,
    /// No record or mirror left, likewise.
    OutOfRecords,
    /// A CR3 whose PDPT is not in the kernel's RAM.
    Cr3NotRam { cr3: u32 },
    /// A PDPT entry with reserved bits set, or naming a frame that is not
    /// RAM (natively: #GP on the CR3 load).
    BadPdpte { cr3: u32, slot: u8, entry: u64 },
}

/// What the ROM provides: the kernel's memory and frame numbers, the
/// frame pool and the queue of Xen operations.
pub trait Host {
    /// Entry `index` of kernel frame `kfn` as the kernel's memory holds it.
    fn guest_entry(&mut self, kfn: u32, index: usize) -> u64;
    /// Entries `first..first + out.len()` of kernel frame `kfn` (a PDPT's
    /// four at a CR3 load): a host that maps the frame once overrides it.
    fn guest_entries(&mut self, kfn: u32, first: usize, out: &mut [u64]) {
        for (k, e) in out.iter_mut().enumerate() {
            *e = self.guest_entry(kfn, first + k);
        }
    }
    /// A cached root's four PDPT entries at a CR3 load: those of kernel
    /// frame `kfn` from `first`, as [`guest_entries`](Self::guest_entries)
    /// reads them, or None if `kfn` is not the kernel's RAM (as
    /// [`machine_frame`](Self::machine_frame) answers). `hint` is the
    /// host's own note of where it found the frame last time, kept with
    /// the root (0 at first): a host whose way to the frame is a lookup
    /// can check the noted place instead (a context switch's load reads
    /// its PDPT there). Whatever `hint` holds, the entries are the frame's.
    #[inline]
    fn root_pdpt(&mut self, kfn: u32, first: usize, hint: &mut u16) -> Option<[u64; 4]> {
        let _ = hint;
        self.machine_frame(u64::from(kfn))?;
        let mut pdpt = [0; 4];
        self.guest_entries(kfn, first, &mut pdpt);
        Some(pdpt)
    }
    /// [`guest_entry`](Self::guest_entry) for the #PF path's quick answer
    /// (`ShadowCache::kernels_fault`): the same value, by whatever way is
    /// cheapest for a host to inline there. `hint` is the host's own note
    /// of where it found the frame last time (kept by the caller for the
    /// next read of the same frame; any value is allowed, a stale one only
    /// costs the usual look-up).
    fn fault_entry(&mut self, kfn: u32, index: usize, hint: &mut u16) -> u64 {
        let _ = hint;
        self.guest_entry(kfn, index)
    }
    /// Sets `bits` in that entry (the A and D bits the processor would set).
    fn set_guest_bits(&mut self, kfn: u32, index: usize, bits: u64);
    /// The machine frame of kernel frame `kfn`, if it is the kernel's RAM
    /// (or the ROM's image).
    fn machine_frame(&self, kfn: u64) -> Option<u64>;
    /// Frames the kernel may only read (the ROM's image).
    fn read_only_frame(&self, kfn: u64) -> bool;
    /// The machine frame of the read-only empty page that stands for
    /// frames the kernel does not have.
    fn hole_frame(&self) -> u64;
    /// A frame from the pool (not mapped anywhere, not a table; its
    /// contents unknown).
    fn take_frame(&mut self) -> Option<u32>;
    /// Gives a frame back (the op that drops its last type reference is
    /// queued already).
    fn give_frame(&mut self, mfn: u32);
    /// Queues an op.
    fn push(&mut self, op: Op, tag: Tag);
    /// Queues a shadow entry write: `value` into the entry at machine
    /// address `maddr` (`MMU_NORMAL_PT_UPDATE`), exactly as
    /// [`push`](Self::push) of `Op::pte_write` does; a host whose queue has
    /// a cheaper way for it (`MmuBatch::push_pte_write`) overrides it.
    fn push_pte_write(&mut self, maddr: u64, value: u64, tag: Tag) {
        self.push(Op::pte_write(maddr, value, PteWrite::Normal), tag);
    }
    /// Reports something worth a console line.
    fn note(&mut self, note: Note);
    /// The machine frame of the host's scratch frame, 0 when it has none:
    /// a frame of no type that the host maps writable for itself (so Xen
    /// never lets it become a table) and that the cache fills with
    /// [`scratch_store`](Self::scratch_store) and copies onto an unreached
    /// page table's frame with one `MMUEXT_COPY_PAGE` ([`SCRATCH_COPY_MIN`]).
    fn scratch_frame(&self) -> u32 {
        0
    }
    /// A plain store of `value` into entry `index` of the scratch frame.
    fn scratch_store(&mut self, index: usize, value: u64) {
        let _ = (index, value);
    }
    /// A count that grows past its value at a push only once the queue has
    /// been flushed whole since (every op queued before it reached Xen):
    /// a copy from the scratch frame reads the frame when Xen runs it, so
    /// the scratch may change only after that. (A count that wraps or is
    /// reset only keeps the scratch from being used for a while.)
    fn flush_count(&self) -> u32 {
        0
    }
}

/// Kind of a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    #[default]
    Free = 0,
    L1 = 1,
    L2 = 2,
    Top = 3,
}

/// The kernel announced the table (AllocatePage).
const ANNOUNCED: u8 = 1;
/// The kernel released it (ReleasePage) while it was still linked.
const RELEASED: u8 = 2;

#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Table {
    kfn: u32,
    /// The shadow frame (0 for a top record).
    mfn: u32,
    kind: Kind,
    flags: u8,
    refs: u16,
    /// Mirror slot + 1 (L2 and top records); for an L1 record its
    /// [`KnownFrame`] slot + 1 (0: its frame's contents are not listed).
    mirror: u16,
    /// Hash chain or free list: record + 1.
    next: u16,
}

const _: () = assert!(core::mem::size_of::<Table>() == 16);

/// A mirror entry: the L1 record + 1 the shadow entry links (bits 0-10),
/// the kernel entry's RW, US and NX as shadowed (bits 11-13), or
/// `UNUSABLE` for a present entry left out of the shadow.
type Code = u16;
const CODE_RECORD: Code = 0x7FF;
const CODE_RW: Code = 1 << 11;
const CODE_US: Code = 1 << 12;
const CODE_NX: Code = 1 << 13;
const CODE_UNUSABLE: Code = 1 << 14;

const _: () = assert!(MAX_TABLES < CODE_RECORD as usize);

/// A cached root found for a CR3 load
/// ([`ShadowCache::cached_root`]): where its PDPT's entries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedRoot {
    root: usize,
    /// The PDPT's kernel frame and its first entry's index.
    pub kfn: u32,
    pub first: usize,
    /// The host's note of where it found the frame last
    /// (`Host::root_pdpt`).
    pub pdpt_hint: u16,
}

/// A root: one kernel PDPT (a CR3 value) with its shadow L3 and top L2.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Root {
    cr3: u32,
    /// Shadow L3 (0: free slot).
    l3: u32,
    /// The root's own top L2.
    top: u32,
    /// Record + 1 in each PDPT slot (slot 3: a top record).
    slots: [u16; 4],
    /// The kernel's PDPT entries the shadow was built from (like the
    /// processor's PDPTE registers, read at each CR3 load).
    pdpte: [u64; 4],
    /// Last load (for eviction).
    stamp: u32,
    /// The host's note of where it found the PDPT's frame last
    /// (`Host::root_pdpt`).
    pdpt_hint: u16,
}

/// Frames whose clear is queued, kept for the next shadow table.
#[derive(Clone, Copy, Debug)]
struct CleanFrames {
    frames: [u32; CLEAN_FRAMES],
    len: u16,
}

/// The frames of freed roots (their unpin is queued: no type), not
/// cleared ([`SPARE_ROOT_FRAMES`]): per root its L3, its top L2 and the
/// shadow frames its L3's four entries name (0: the entry is 0; the rest
/// of the L3 is 0).
#[derive(Clone, Copy, Debug)]
struct SpareRoots {
    l3s: [u32; SPARE_ROOT_FRAMES],
    tops: [u32; SPARE_ROOT_FRAMES],
    linked: [[u32; 4]; SPARE_ROOT_FRAMES],
    /// The top record + 1 whose entries the top L2 holds, and the
    /// `ShadowCache::top_epoch` then.
    top_as: [(u32, u32); SPARE_ROOT_FRAMES],
    len: u32,
    /// Where the oldest is (the `len` kept follow it, round the ring).
    first: u32,
}

impl SpareRoots {
    /// The frames of the root freed first (a ring from `first`): a
    /// process's spaces tend to be freed in the order they are made again
    /// (fork_exec frees the child's, then the exec'd one's), so each new
    /// root takes the L3 whose slots already name its directories' frames
    /// (kept, `KnownDir`).
    fn pop(&mut self) -> Option<RootFrames> {
        self.len = self.len.checked_sub(1)?;
        let k = self.first as usize % SPARE_ROOT_FRAMES;
        self.first = self.first.wrapping_add(1);
        let entries = self.linked[k].map(|mfn| match mfn {
            0 => 0,
            mfn => (u64::from(mfn) << 12) | PRESENT,
        });
        Some(RootFrames {
            l3: self.l3s[k],
            held: entries,
            top: self.tops[k],
            top_clean: false,
            top_as: self.top_as[k],
        })
    }
}

/// An L1 shadow frame whose every non-zero entry is listed (entries not
/// listed are 0 once the ops queued so far are applied: it was clear, or
/// kept with its list, when its record took it, and every write to it since
/// went through `ShadowCache::known_write`), so that the frame of a freed
/// page table need not be cleared: the next page table takes it as it is
/// (Linux's exit frees a process's page tables in address order and fork
/// builds the next one's in the same order, usually the same entries with
/// the same values), writes only the entries that differ, and the entries
/// its own table does not have (*stale*, a bit each) are zeroed before any
/// pinned root can reach the frame (`ShadowCache::settle_known`). A frame
/// no pinned root reaches has no type in Xen, so its contents are plain
/// data until then ("Only roots are pinned").
#[derive(Clone, Copy, Debug)]
struct KnownFrame {
    /// The shadow frame (0: the slot is free).
    mfn: u32,
    /// The L1 record + 1 the frame is the shadow of (0: kept for the next
    /// page table, every entry stale).
    owner: u16,
    len: u8,
    /// Where the entry after the last one found is listed (a table is
    /// written in the order its last user wrote it).
    hint: u8,
    /// A bit per listed entry the owner's table does not have: its shadow
    /// is 0 though the frame holds the entry.
    stale: u32,
    /// The directory entry index + 1 its record was last linked at (0:
    /// none), and whether the record has written nothing yet and is linked
    /// nowhere: its frame may still be exchanged for a kept one that was
    /// linked at the same index (`ShadowCache::match_known`).
    link: u16,
    untouched: bool,
    index: [u16; KNOWN_ENTRIES],
    value: [u64; KNOWN_ENTRIES],
}

/// An L2 shadow frame (a page directory of PDPT slots 0-2) whose every
/// non-zero entry is listed, as [`KnownFrame`] for page tables: a
/// directory no pinned root reaches has no type in Xen, so when the kernel
/// clears one of its entries (Linux's exit unlinks each page table of a
/// space it no longer runs in) the frame may go on holding the old link,
/// *stale*, instead of being written (`ShadowCache::known_dir_write`, which
/// first drops the cached roots other than the loaded one that reach the
/// directory: the kernel is tearing that space down). A freed directory's
/// frame is kept with its list for the next directory, whose links of the
/// same page-table frames at the same entries then need no write; the
/// entries it does not have are zeroed before any pinned root can reach
/// it (`ShadowCache::settle_dir`, at every root slot written and every
/// pin).
#[derive(Clone, Copy, Debug)]
struct KnownDir {
    /// The shadow frame (0: the slot is free).
    mfn: u32,
    /// The L2 record + 1 the frame is the shadow of (0: kept for the next
    /// directory, every entry stale).
    owner: u16,
    len: u8,
    /// A bit per listed entry the owner's directory does not have.
    stale: u8,
    index: [u16; KNOWN_DIR_ENTRIES],
    value: [u64; KNOWN_DIR_ENTRIES],
}

/// The scratch frame ([`Host::scratch_frame`]): the writes of one page
/// table whose frame no pinned root reaches (a kept frame being filled
/// again, [`KnownFrame`] with stale entries) are stored in it instead of
/// being queued, and one `MMUEXT_COPY_PAGE` puts the whole page on the
/// table's frame before anything can make a pinned root reach it (where
/// its stale entries would be zeroed: `ShadowCache::settle_known`), or
/// before the frame is kept again. The scratch holds the owner's listed
/// entries with their values (the list is the frame's contents once the
/// copy is applied) and 0 everywhere else.
#[derive(Clone, Copy, Debug, Default)]
struct Scratch {
    /// The `known` slot + 1 whose writes the scratch holds (0: none).
    owner: u8,
    /// Whether a copy from the scratch may still be queued: until the
    /// host's `flush_count` passes `sent`, the scratch must not change.
    in_flight: bool,
    /// How many of `index` the scratch may hold not 0.
    len: u8,
    /// Writes the owner stored in it (modulo 256).
    writes: u8,
    /// [`SCRATCH_COPY_MIN`] (a test may set another).
    min: u8,
    /// A bit per list position of the owner written to the scratch and
    /// not yet to the frame.
    written: u32,
    sent: u32,
    /// The host's scratch frame, as it named it when the owner took it.
    frame: u32,
    /// The entries the scratch may hold not 0 (the last owner's list).
    index: [u16; KNOWN_ENTRIES],
}

/// The frames of a new root (`ShadowCache::root_frames`).
#[derive(Clone, Copy, Debug)]
struct RootFrames {
    l3: u32,
    /// What the L3's four entries hold.
    held: [u64; 4],
    top: u32,
    /// Whether the top L2 is clear.
    top_clean: bool,
    /// The top record + 1 whose entries the top L2 holds, with the
    /// `ShadowCache::top_epoch` then ((0, 0): none).
    top_as: (u32, u32),
}

/// No L3 entry the ROM writes is all ones: "not known".
const NOT_HELD: u64 = u64::MAX;

/// Figures for the benchmarks and the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tables found by walking the kernel's tables (not announced).
    pub discovered: u32,
    /// Tables created at AllocatePage.
    pub announced: u32,
    /// Roots built.
    pub roots_built: u32,
    /// Of those, with the top L2 copied from a sibling root (or an old
    /// root's top L2 taken as it is, holding the same entries).
    pub tops_copied: u32,
    /// Faults that set A in a kernel entry.
    pub accessed_faults: u32,
    /// Faults that set D.
    pub dirty_faults: u32,
    /// Entries repaired at a fault or INVLPG.
    pub repaired: u32,
    /// Times the pool ran dry and shadows were dropped.
    pub evictions: u32,
    /// Page tables that took a freed page table's frame as it was
    /// ([`KnownFrame`]) instead of a clear one.
    pub known_reused: u32,
    /// Shadow L1 writes left out because the frame held the value.
    pub known_writes_skipped: u32,
    /// Stale entries zeroed before a pinned root could reach them.
    pub known_stale_zeroed: u32,
    /// Page directories that took a freed directory's frame as it was
    /// ([`KnownDir`]).
    pub dirs_reused: u32,
    /// Shadow L2 writes left out: links of a value the frame held, and
    /// unlinks of a directory no pinned root reaches.
    pub dir_writes_skipped: u32,
    /// Stale directory entries zeroed before a pinned root could reach
    /// them.
    pub dir_stale_zeroed: u32,
    /// Page tables' frames filled from the scratch frame by one copy
    /// ([`SCRATCH_COPY_MIN`] writes or more).
    pub scratch_copies: u32,
    /// Writes that went into the scratch frame instead of the queue.
    pub scratch_writes: u32,
}

/// The access a page fault was for (error code bits 1, 2 and 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    pub user: bool,
    pub fetch: bool,
}

impl Access {
    /// From a #PF error code.
    pub const fn from_error_code(code: u32) -> Self {
        Self {
            write: code & 2 != 0,
            user: code & 4 != 0,
            fetch: code & 16 != 0,
        }
    }
}

/// What a page fault was, as far as the kernel's tables say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The kernel's tables do not allow the access: the fault is the
    /// kernel's.
    Kernel,
    /// The kernel's tables allow it and the shadow now does too (A or D
    /// set, or a stale entry repaired): run the instruction again.
    Fixed,
    /// A supervisor write to a page the kernel's entry makes read-only,
    /// allowed because the kernel cleared CR0.WP: the shadow entry
    /// (`l1_mfn:index`) must be made writable for the one write.
    WriteProtectOff {
        l1_mfn: u32,
        index: u16,
        /// The shadow value to put back afterwards.
        value: u64,
    },
}

/// The kernel's tables walked for one address (what the processor reads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub pdpte: u64,
    /// Frame of the page directory and the entry's index in it.
    pub l2_kfn: u32,
    pub pde_index: u16,
    pub pde: u64,
    /// Frame of the page table (0 if the walk stopped before it).
    pub l1_kfn: u32,
    pub pte_index: u16,
    pub pte: u64,
}

impl Walk {
    /// The kernel frame the address maps to, if the walk reached a present
    /// leaf (a 4 KiB page, or a frame of a 2 MiB page).
    pub fn frame(&self, va: u32) -> Option<u32> {
        if self.pdpte & PRESENT == 0 || self.pde & PRESENT == 0 {
            return None;
        }
        if self.pde & PAT_OR_PSE != 0 {
            return Some(((self.pde & FRAME) >> 12) as u32 + ((va >> 12) & 511));
        }
        (self.pte & PRESENT != 0).then_some(((self.pte & FRAME) >> 12) as u32)
    }
}

/// The shadows. All-zero bytes are a valid (empty, unusable) state; call
/// [`reset`](Self::reset) before use. Lives in the ROM's heap (about
/// 84 KiB), so it is never moved or copied.
pub struct ShadowCache {
    tables: [Table; MAX_TABLES],
    buckets: [u16; BUCKETS],
    free_tables: u16,
    mirrors: [[Code; ENTRIES]; MAX_MIRRORS],
    /// Per mirror, a bit per group of [`MIRROR_GROUP`] entries that may
    /// hold a code other than 0 (set by `link`, the only writer of a
    /// mirror entry; all cleared when `free_record` empties the mirror), so
    /// that emptying a directory's mirror reads only the groups it used.
    mirror_groups: [u16; MAX_MIRRORS],
    mirror_used: [bool; MAX_MIRRORS],
    roots: [Root; MAX_ROOTS],
    /// A bit per root slot that holds a cached root (`l3 != 0`): the loops
    /// over the roots visit only those.
    live_roots: u32,
    /// Root + 1 the processor uses now (0: none, paging off).
    current: u16,
    /// Root + 1 last found for the CR3s of each hint slot (checked before
    /// use: a stale one costs a search).
    root_hints: [u8; ROOT_HINTS],
    clock: u32,
    /// The ROM area's L1s, linked into every top L2.
    rom_links: [u32; 4],
    clean: CleanFrames,
    /// Freed roots' frames, not cleared, for the next roots.
    spares: SpareRoots,
    /// L1 frames with their non-zero entries listed: page tables' and
    /// freed ones kept for the next page tables.
    known: [KnownFrame; KNOWN_SLOTS],
    /// A bit per `known` slot whose record's table has stale entries.
    known_stale: u32,
    /// Page directories' frames with their entries listed.
    dirs: [KnownDir; KNOWN_DIRS],
    /// A bit per `dirs` slot whose record's directory has stale entries.
    dirs_stale: u32,
    /// The slot a new directory takes when none is free (round robin).
    dirs_next: u32,
    /// The slot a new table takes when none is free (round robin).
    known_next: u32,
    /// Changes of any top record's mirror (and frees of top records) so
    /// far: a freed root's top L2 still holds its top record's entries
    /// while this is what it was when the root went.
    top_epoch: u32,
    stats: Stats,
    /// Whether the kernel's tables, as the last `fault` walked them, map
    /// its address to a present page (for the error code of a fault that
    /// is the kernel's, without a second walk; one flag, not the walk: the
    /// fault path is hot). [`kernels_fault`](Self::kernels_fault) returns
    /// its answer instead of keeping it here.
    fault_mapped: bool,
    /// The address of the last fault [`kernels_fault`](Self::kernels_fault)
    /// gave the kernel, until [`take_fault_va`](Self::take_fault_va): the
    /// kernel's handler usually updates the entry that maps it next.
    fault_va: Option<u32>,
    /// The directory entry the last page fault found shadowed as it is
    /// ([`FaultPath`]): the next fault under it, and the kernel's update of
    /// the faulting entry, need not look it up again.
    fault_path: FaultPath,
    /// The records of the frame `entry_changed` looked up last (a lazy
    /// batch writes one table entry after entry): `last_kfn`'s records,
    /// valid while `last_valid`. Every record created or freed clears it,
    /// so it never disagrees with the hash chains.
    last_kfn: u32,
    last_records: FrameRecords,
    last_valid: bool,
    /// The same for the last frame whose page table's frame is a
    /// [`KnownFrame`] (never in `last_records`), cleared with `last_valid`.
    known_kfn: u32,
    known_records: FrameRecords,
    known_valid: bool,
    /// The writes held in the host's scratch frame ([`Scratch`]).
    scratch: Scratch,
}

/// A directory entry of the loaded root that a page fault found shadowed
/// as it is (`directory_named` held for it): root `current`'s PDPT slot and
/// entry `dir` (an address >> 21), the kernel's entry `pde` as it was
/// then, in kernel frame `l2_kfn`, the L1 record it links and that
/// table's frame, and whether the frame has no other record (no directory
/// record: its entries' changes are `write_l1`'s alone). Valid while
/// `dir` is an address's and `current` the loaded root's: every change of
/// what that answer depends on (a mirror entry, a record created or freed,
/// a root slot, a root freed, everything dropped) forgets it
/// ([`forget_fault_path`](ShadowCache::forget_fault_path): `dir` becomes
/// [`FaultPath::NO_DIR`], which no address >> 21 matches), and the
/// kernel's entry is read again and compared, so a change the kernel made
/// without telling is seen as before. Every use compares `dir` with the
/// fault's; the #PF one-step path in assembly then compares `current` with
/// the loaded root's ([`ShadowCache::quick_kernels_fault`]).
#[derive(Clone, Copy, Debug)]
struct FaultPath {
    /// Root + 1 (0 only with `dir` `NO_DIR`).
    current: u16,
    /// The host's hints for reading the directory and the table
    /// (`Host::fault_entry`): kept whatever else changes.
    l2_hint: u16,
    l1_hint: u16,
    /// L1 record + 1.
    l1: u16,
    /// The L1's kernel frame has no L2 or top record.
    only_l1: bool,
    dir: u32,
    /// The directory entry's byte offset in its table, `(dir & 511) * 8`
    /// (for the #PF one-step path's read of it; below 4096).
    pde_offset: u16,
    l2_kfn: u32,
    l1_kfn: u32,
    pde: u64,
    /// `l2_kfn + 1` and `l1_kfn + 1`, the view slots' tags for those
    /// frames (`Views`: a slot's tag is its frame + 1), so the #PF
    /// one-step path compares a slot's tag with one load.
    l2_tag: u32,
    l1_tag: u32,
    /// `l1_kfn` when the kernel's update of an entry of that table may
    /// take SetPxELong's and UpdatePxELong's path in assembly (entry.rs): the frame has no
    /// other record (`only_l1`), its L1 record no known frame (`mirror`
    /// 0: a known frame's writes keep its list, which only the Rust path
    /// does) and it is not a read-only frame (`Host::read_only_frame`,
    /// the general call's refusal); else [`FaultPath::NO_UPDATE`]. Set
    /// with the path; a record's `mirror` becomes non-zero only for a new
    /// record (`attach_known`), which forgets the path, so this never
    /// names a table the assembly must not write (it may stay `NO_UPDATE`
    /// after the mirror is given up: the Rust path then takes it).
    update_kfn: u32,
}

impl FaultPath {
    /// `dir` of nothing remembered: above every address >> 21.
    const NO_DIR: u32 = u32::MAX;
    /// `update_kfn` of a table UpdatePxELong's assembly path declines:
    /// no frame's number (frames are below 2^32 - 1).
    const NO_UPDATE: u32 = u32::MAX;
}

impl Default for FaultPath {
    fn default() -> Self {
        Self {
            current: 0,
            l2_hint: 0,
            l1_hint: 0,
            l1: 0,
            only_l1: false,
            dir: Self::NO_DIR,
            pde_offset: 0,
            l2_kfn: 0,
            l1_kfn: 0,
            pde: 0,
            l2_tag: 0,
            l1_tag: 0,
            update_kfn: Self::NO_UPDATE,
        }
    }
}

/// Where the ROM's #PF one-step path (traps.rs, in assembly) finds what it
/// reads and writes of the cache, as byte offsets in [`ShadowCache`]: the
/// loaded root, the remembered directory entry ([`FaultPath`]) and the
/// last quick fault's address (`fault_va`). What it does with
/// them is [`ShadowCache::quick_kernels_fault`].
#[doc(hidden)]
pub mod quick_fault_layout {
    use super::{FaultPath, ShadowCache};
    use core::mem::offset_of;

    /// `ShadowCache::current`, a u16.
    pub const CURRENT: usize = offset_of!(ShadowCache, current);
    const PATH: usize = offset_of!(ShadowCache, fault_path);
    /// `FaultPath::current`, a u16.
    pub const PATH_CURRENT: usize = PATH + offset_of!(FaultPath, current);
    /// `FaultPath::dir`, a u32 (`NO_DIR` when forgotten).
    pub const PATH_DIR: usize = PATH + offset_of!(FaultPath, dir);
    /// `FaultPath::l2_hint` and `l1_hint`, u16 view slots.
    pub const PATH_L2_HINT: usize = PATH + offset_of!(FaultPath, l2_hint);
    pub const PATH_L1_HINT: usize = PATH + offset_of!(FaultPath, l1_hint);
    /// `FaultPath::pde_offset`, a u16.
    pub const PATH_PDE_OFFSET: usize = PATH + offset_of!(FaultPath, pde_offset);
    /// `FaultPath::pde`, a u64 (low word first).
    pub const PATH_PDE: usize = PATH + offset_of!(FaultPath, pde);
    /// `FaultPath::l2_tag` and `l1_tag`, u32 view-slot tags (frame + 1).
    pub const PATH_L2_TAG: usize = PATH + offset_of!(FaultPath, l2_tag);
    pub const PATH_L1_TAG: usize = PATH + offset_of!(FaultPath, l1_tag);
    /// `FaultPath::update_kfn`, a u32 ([`NO_UPDATE`]: none).
    pub const PATH_UPDATE_KFN: usize = PATH + offset_of!(FaultPath, update_kfn);
    /// `FaultPath::update_kfn` of no table the assembly may write.
    pub const NO_UPDATE: u32 = FaultPath::NO_UPDATE;
    /// `ShadowCache::fault_va`, an `Option<u32>`: `Some(va)` is the words
    /// 1 and `va` (checked below), so the assembly stores those two.
    pub const FAULT_VA: usize = offset_of!(ShadowCache, fault_va);

    const _: () = {
        assert!(core::mem::size_of::<Option<u32>>() == 8);
        // SAFETY: both types are 8 bytes; a padding byte in `Some`'s
        // representation would stop this constant's evaluation (the
        // words are then not what the assembly stores).
        let some: [u32; 2] = unsafe { core::mem::transmute(Some(0x1234_5678u32)) };
        assert!(some[0] == 1 && some[1] == 0x1234_5678);
        assert!(core::mem::size_of::<bool>() == 1);
    };
}

/// Where the ROM's lazy SetPxELong and UpdatePxELong path in assembly
/// (entry.rs, `lazy_entry_update`) finds what it reads of the cache, as
/// byte offsets in [`ShadowCache`] (and in a [`Tag`]): the last-hit record
/// cache and the records' shadow frames. What it does with them is
/// `mmu_calls::quick_entry_update` ([`ShadowCache::quick_page_table`],
/// [`ShadowCache::quick_l1_write`]).
#[doc(hidden)]
pub mod quick_table_layout {
    use super::{FrameRecords, ShadowCache, Table, Tag, What, MAX_TABLES};
    use core::mem::{offset_of, size_of};

    /// `ShadowCache::last_valid`, a bool.
    pub const LAST_VALID: usize = offset_of!(ShadowCache, last_valid);
    /// `ShadowCache::last_kfn`, a u32.
    pub const LAST_KFN: usize = offset_of!(ShadowCache, last_kfn);
    const LAST: usize = offset_of!(ShadowCache, last_records);
    /// `last_records.l1`, `.l2` and `.top`, u16 record links (+ 1).
    pub const LAST_L1: usize = LAST + offset_of!(FrameRecords, l1);
    pub const LAST_L2: usize = LAST + offset_of!(FrameRecords, l2);
    pub const LAST_TOP: usize = LAST + offset_of!(FrameRecords, top);
    /// `tables[i].mfn` (a u32) is at `TABLE_MFN + (i << TABLE_SHIFT)`, for
    /// `i` below `MAX_TABLES` (a record link less one always is).
    pub const TABLE_MFN: usize = offset_of!(ShadowCache, tables) + offset_of!(Table, mfn);
    pub const TABLE_SHIFT: u32 = size_of::<Table>().trailing_zeros();
    /// A [`Tag`]'s fields: `kfn` (u32), `index` (u16), `guest` (u64, low
    /// word first), `what` (a byte: `L1_ENTRY` for [`What::L1Entry`]).
    pub const TAG_KFN: usize = offset_of!(Tag, kfn);
    pub const TAG_INDEX: usize = offset_of!(Tag, index);
    pub const TAG_GUEST: usize = offset_of!(Tag, guest);
    pub const TAG_WHAT: usize = offset_of!(Tag, what);
    pub const L1_ENTRY: u8 = What::L1Entry as u8;
    /// Where an L1 entry's tag takes its `index` and `what` as one 32-bit
    /// store of the index zero-extended: `what` is the next byte and
    /// `L1_ENTRY` is 0, and the byte above it is the tag's padding (no
    /// field's: asserted), which a store may write.
    pub const TAG_INDEX_WHAT: usize = TAG_INDEX;

    /// Whether the byte ranges `[a, a + a_len)` and `[b, b + b_len)` do
    /// not overlap.
    const fn apart(a: usize, a_len: usize, b: usize, b_len: usize) -> bool {
        a + a_len <= b || b + b_len <= a
    }

    /// The path writes a tag field by field, and a plain run's slot holds
    /// nothing else (`MmuBatch::WRITE_SLOT`): a field added to [`Tag`]
    /// must be written there too. This pattern names every field, so such
    /// a field fails the build here.
    #[allow(dead_code)]
    const fn every_tag_field_is_written(tag: Tag) {
        let Tag {
            what: _,
            kfn: _,
            index: _,
            guest: _,
        } = tag;
    }

    const _: () = {
        assert!(TAG_WHAT == TAG_INDEX + 2 && L1_ENTRY == 0);
        assert!(TAG_INDEX_WHAT + 4 <= size_of::<Tag>());
        assert!(apart(TAG_KFN, 4, TAG_INDEX_WHAT, 4));
        assert!(apart(TAG_GUEST, 8, TAG_INDEX_WHAT, 4));
        assert!(1 << TABLE_SHIFT == size_of::<Table>());
        assert!(MAX_TABLES.is_power_of_two());
        assert!(size_of::<bool>() == 1 && size_of::<What>() == 1);
        assert!(size_of::<FrameRecords>() == 6);
        // The path reads `l2` and `top` as one 32-bit word.
        assert!(LAST_TOP == LAST_L2 + 2);
    };
}

/// The shadow write of the entry a page fault's address maps, for the
/// kernel's update of it ([`ShadowCache::fault_entry_changed`]): the
/// entry's machine address, its new shadow value and tag, and the address
/// it maps in the loaded root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedWrite {
    pub va: u32,
    pub entry_maddr: u64,
    pub value: u64,
    pub tag: Tag,
}

/// The entry [`ShadowCache::fault_entry`] found to map the last quick
/// fault's address: that address, the L1 record (+ 1) and the entry's
/// index, for [`ShadowCache::fault_entry_write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultEntry {
    va: u32,
    l1: u16,
    index: u16,
}

/// The first 32-bit word of an `Option<u32>` (its discriminant:
/// initialized bytes whatever the variant, or the constant below fails to
/// compile).
const fn option_first_word(v: &Option<u32>) -> u32 {
    // SAFETY: an `Option<u32>` is 8 bytes, 4-aligned (asserted below).
    unsafe { *(v as *const Option<u32>).cast::<u32>() }
}

// `Option<u32>` as [`ShadowCache::FAULT_VA_OFFSET`] says: a first 32-bit
// word that is 0 for None and not for Some, read as the assembly reads it.
const _: () = {
    assert!(core::mem::size_of::<Option<u32>>() == 8);
    assert!(core::mem::align_of::<Option<u32>>() >= 4);
    assert!(option_first_word(&None) == 0);
    assert!(option_first_word(&Some(0)) != 0);
    assert!(option_first_word(&Some(u32::MAX)) != 0);
};

/// The records of one kernel frame, record + 1 each (0: none): at most
/// one per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FrameRecords {
    l1: u16,
    l2: u16,
    top: u16,
}

impl FrameRecords {
    fn as_options(self) -> [Option<usize>; 3] {
        [self.l1, self.l2, self.top].map(|r| (r as usize).checked_sub(1))
    }
}

/// What [`ShadowCache::entry_changed_deferred`] leaves for
/// [`ShadowCache::reaches_current`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reach(ReachState);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReachState {
    /// A frame with no directory record: its L1 record + 1 (0: none).
    PageTable(u16),
    /// A directory's change, worked out before it.
    Known(bool),
}

/// A page table's L1 record as [`ShadowCache::quick_page_table`] found
/// it (record + 1, never 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuickTable {
    link: u16,
}

/// A shadow L1 write worked out by [`ShadowCache::quick_l1_write`]: what
/// `write_l1_inline` pushes (`Host::push_pte_write`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuickWrite {
    pub entry_maddr: u64,
    pub value: u64,
    pub tag: Tag,
}

impl core::fmt::Debug for ShadowCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ShadowCache")
            .field("current", &self.current)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn frame_of(entry: u64) -> u32 {
    ((entry & FRAME) >> 12) as u32
}

fn entry_maddr(mfn: u32, index: usize) -> u64 {
    (u64::from(mfn) << 12) + index as u64 * 8
}

/// Bits of a PDPT entry the architecture reserves (SDM: PDPTE bits 1, 2,
/// 5-8 and 52-63).
const PDPTE_RESERVED: u64 = 0xFFF0_0000_0000_01E6;

impl ShadowCache {
    /// Builds an empty cache at `this` (zeroed, then [`reset`]), with no
    /// temporary copy of it: the ROM runs on small kernel stacks.
    ///
    /// [`reset`]: Self::reset
    ///
    /// # Safety
    ///
    /// `this` must be valid for writes of `Self` and suitably aligned.
    pub unsafe fn init_in_place(this: *mut Self, rom_links: [u32; 4]) {
        // SAFETY: the caller vouches for `this`; every field is an integer,
        // a bool or an enum whose zero is a variant (`Kind::Free`), so the
        // zeroed bytes are a valid value to call `reset` on.
        unsafe {
            core::ptr::write_bytes(this, 0, 1);
            (*this).reset(rom_links);
        }
    }

    /// Empties the cache (nothing is queued: the caller has already left
    /// every shadow, or never had one). `rom_links` are the machine frames
    /// of the ROM area's four L1s.
    pub fn reset(&mut self, rom_links: [u32; 4]) {
        for (i, t) in self.tables.iter_mut().enumerate() {
            *t = Table {
                next: if i + 1 < MAX_TABLES { i as u16 + 2 } else { 0 },
                ..Table::default()
            };
        }
        self.free_tables = 1;
        self.buckets.fill(0);
        self.mirror_used.fill(false);
        // Free mirrors are all zero (`take_mirror` relies on it).
        for mirror in &mut self.mirrors {
            mirror.fill(0);
        }
        self.mirror_groups.fill(0);
        self.roots.fill(Root::default());
        self.live_roots = 0;
        self.root_hints.fill(0);
        self.current = 0;
        self.clock = 0;
        self.rom_links = rom_links;
        self.clean.len = 0;
        self.spares.len = 0;
        // The scratch keeps its contents: what it may hold not 0 is the
        // list of its owner, if it has one, which it gives up (nothing is
        // queued, and no copy is made: every shadow is gone).
        if let Some(k) = (self.scratch.owner as usize).checked_sub(1) {
            self.scratch_close(k, true);
        }
        self.scratch.in_flight = false;
        self.scratch.min = SCRATCH_COPY_MIN as u8;
        for k in &mut self.known {
            k.mfn = 0;
            k.owner = 0;
            k.len = 0;
            k.stale = 0;
        }
        self.known_stale = 0;
        for d in &mut self.dirs {
            d.mfn = 0;
            d.owner = 0;
            d.len = 0;
            d.stale = 0;
        }
        self.dirs_stale = 0;
        self.stats = Stats::default();
        self.fault_mapped = false;
        self.fault_va = None;
        self.fault_path = FaultPath::default();
        self.last_valid = false;
        self.known_valid = false;
    }

    /// The figures so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The CR3 of the root in use, if paging is on.
    pub fn current_cr3(&self) -> Option<u32> {
        self.current_root().map(|r| self.roots[r].cr3)
    }

    /// Every cached root's CR3 with the clock of its last load, and the
    /// clock now: the order roots are evicted in (for tests).
    pub fn load_order(&self) -> (impl Iterator<Item = (u32, u32)> + '_, u32) {
        let roots = self.roots.iter().filter(|r| r.l3 != 0);
        (roots.map(|r| (r.cr3, r.stamp)), self.clock)
    }

    fn current_root(&self) -> Option<usize> {
        (self.current as usize).checked_sub(1)
    }

    /// Every cached root: (CR3, shadow L3, top L2, the PDPT entries it was
    /// built from).
    pub fn roots(&self) -> impl Iterator<Item = (u32, u32, u32, [u64; 4])> + '_ {
        self.debug_check_summaries();
        self.roots
            .iter()
            .filter(|r| r.l3 != 0)
            .map(|r| (r.cr3, r.l3, r.top, r.pdpte))
    }

    /// The bookkeeping that summarises other fields agrees with them (in
    /// debug builds: the host tests read `roots` after every step).
    fn debug_check_summaries(&self) {
        if cfg!(debug_assertions) {
            let live = (0..MAX_ROOTS)
                .filter(|&r| self.roots[r].l3 != 0)
                .fold(0u32, |m, r| m | 1 << r);
            assert_eq!(self.live_roots, live, "live_roots against the roots");
            for root in self.roots.iter().filter(|r| r.l3 != 0) {
                for slot in 0..4 {
                    assert_eq!(
                        root.pdpte[slot] & PRESENT != 0,
                        root.slots[slot] != 0,
                        "root {:#x} slot {slot}: linked exactly where its entry is present",
                        root.cr3
                    );
                }
            }
            for (m, mirror) in self.mirrors.iter().enumerate() {
                for (index, &code) in mirror.iter().enumerate() {
                    let group = 1 << (index / MIRROR_GROUP);
                    assert!(
                        code == 0 || self.mirror_groups[m] & group != 0,
                        "mirror {m} entry {index} outside its written groups"
                    );
                }
            }
        }
    }

    /// The shadow frame and link count of the record of `kfn` of `kind`.
    pub fn table(&self, kfn: u32, kind: Kind) -> Option<(u32, u16)> {
        self.find(kfn, kind)
            .map(|i| (self.tables[i].mfn, self.tables[i].refs))
    }

    /// Frames the cache holds (records, roots, and the frames kept clear
    /// for the next tables).
    pub fn frames_in_use(&self) -> usize {
        let tables = self
            .tables
            .iter()
            .filter(|t| t.kind != Kind::Free && t.mfn != 0)
            .count();
        tables
            + 2 * self.roots.iter().filter(|r| r.l3 != 0).count()
            + self.clean_frames().len()
            + self.spare_root_frames().count()
            + self
                .known
                .iter()
                .filter(|k| k.mfn != 0 && k.owner == 0)
                .count()
            + self
                .dirs
                .iter()
                .filter(|d| d.mfn != 0 && d.owner == 0)
                .count()
    }

    /// Every page directory's frame whose entries the cache lists
    /// ([`KnownDir`]), as [`known_frames`](Self::known_frames). For the
    /// tests.
    #[allow(clippy::type_complexity)]
    pub fn known_dirs(
        &self,
    ) -> impl Iterator<
        Item = (
            u32,
            Option<u32>,
            [Option<(usize, u64, bool)>; KNOWN_DIR_ENTRIES],
        ),
    > + '_ {
        self.dirs.iter().filter(|d| d.mfn != 0).map(|d| {
            let owner = (d.owner as usize)
                .checked_sub(1)
                .map(|i| self.tables[i].kfn);
            let entries = core::array::from_fn(|p| {
                (p < d.len as usize)
                    .then(|| (d.index[p] as usize, d.value[p], d.stale & 1 << p != 0))
            });
            (d.mfn, owner, entries)
        })
    }

    /// Every L1 frame whose entries the cache lists ([`KnownFrame`]): the
    /// frame, its record's kernel frame (None: kept for the next page
    /// table), and the entries listed (index, value, and whether it is
    /// stale: the record's table does not have it), every other entry
    /// being 0. For the tests.
    #[allow(clippy::type_complexity)]
    pub fn known_frames(
        &self,
    ) -> impl Iterator<
        Item = (
            u32,
            Option<u32>,
            [Option<(usize, u64, bool)>; KNOWN_ENTRIES],
        ),
    > + '_ {
        self.known.iter().filter(|k| k.mfn != 0).map(|k| {
            let owner = (k.owner as usize)
                .checked_sub(1)
                .map(|i| self.tables[i].kfn);
            let entries = core::array::from_fn(|p| {
                (p < k.len as usize)
                    .then(|| (k.index[p] as usize, k.value[p], k.stale & 1 << p != 0))
            });
            (k.mfn, owner, entries)
        })
    }

    /// The frames of freed roots kept, not cleared, for the next roots
    /// (no type: their unpin is queued).
    pub fn spare_root_frames(&self) -> impl Iterator<Item = u32> + '_ {
        let ring = (0..self.spares.len)
            .map(|j| self.spares.first.wrapping_add(j) as usize % SPARE_ROOT_FRAMES);
        ring.clone()
            .map(|k| self.spares.l3s[k])
            .chain(ring.map(|k| self.spares.tops[k]))
    }

    /// The frames kept clear for the next shadow tables.
    pub fn clean_frames(&self) -> &[u32] {
        &self.clean.frames[..self.clean.len as usize]
    }

    /// Records in use, by kind (L1, L2, top).
    pub fn records(&self) -> [usize; 3] {
        let count = |k| self.tables.iter().filter(|t| t.kind == k).count();
        [count(Kind::L1), count(Kind::L2), count(Kind::Top)]
    }

    // -----------------------------------------------------------------
    // Records

    fn bucket(kfn: u32) -> usize {
        (kfn.wrapping_mul(0x9E37_79B1) >> 22) as usize % BUCKETS
    }

    fn find(&self, kfn: u32, kind: Kind) -> Option<usize> {
        let mut link = self.buckets[Self::bucket(kfn)];
        while let Some(i) = (link as usize).checked_sub(1) {
            let t = &self.tables[i];
            if t.kfn == kfn && t.kind == kind {
                return Some(i);
            }
            link = t.next;
        }
        None
    }

    /// Records of `kfn` (up to one per kind: L1, L2, top), in one walk of
    /// its hash chain.
    #[inline(never)]
    fn records_of(&self, kfn: u32) -> FrameRecords {
        let mut found = FrameRecords::default();
        let mut link = self.buckets[Self::bucket(kfn)];
        while link != 0 {
            let t = &self.tables[usize::from(link - 1) % MAX_TABLES];
            if t.kfn == kfn {
                match t.kind {
                    Kind::L1 => found.l1 = link,
                    Kind::L2 => found.l2 = link,
                    Kind::Top => found.top = link,
                    Kind::Free => {}
                }
            }
            link = t.next;
        }
        found
    }

    /// Whether the last-hit cache holds `kfn`'s records (every SetPxE
    /// asks; a batch asks for the same table 512 times in a row).
    #[inline(always)]
    fn records_cached(&self, kfn: u32) -> bool {
        self.last_valid && self.last_kfn == kfn
    }

    /// `kfn`'s records when the last-hit cache misses (once per table of
    /// a batch), cached: in `last_records`, or for a frame whose page
    /// table's frame is a [`KnownFrame`] in `known_records`, so that
    /// `entry_changed`'s inline path never writes such a table (its
    /// writes go through `known_write`, out of line, and the plain page
    /// tables' path is as it was).
    fn records_uncached(&mut self, kfn: u32) -> FrameRecords {
        if self.known_valid && self.known_kfn == kfn {
            return self.known_records;
        }
        let found = self.records_of(kfn);
        let known = (found.l1 as usize)
            .checked_sub(1)
            .is_some_and(|i| self.tables[i % MAX_TABLES].mirror != 0);
        if known {
            self.known_kfn = kfn;
            self.known_records = found;
            self.known_valid = true;
        } else {
            self.last_kfn = kfn;
            self.last_records = found;
            self.last_valid = true;
        }
        found
    }

    /// Whether the last-hit cache of frame records agrees with the hash
    /// chains (for the property tests: it must, after any sequence of
    /// calls).
    #[doc(hidden)]
    pub fn lookup_cache_agrees(&self) -> bool {
        (!self.last_valid || self.records_of(self.last_kfn) == self.last_records)
            && (!self.known_valid || self.records_of(self.known_kfn) == self.known_records)
    }

    /// A frame for a shadow table, and whether it is clear already (one
    /// kept clear, else one from the pool); the caller queues its clear
    /// if not (or overwrites it whole).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn take_frame<H: Host>(&mut self, host: &mut H) -> Result<(u32, bool), ShadowError> {
        for attempt in 0..2 {
            if let Some(len) = self.clean.len.checked_sub(1) {
                self.clean.len = len;
                return Ok((self.clean.frames[len as usize], true));
            }
            if let Some(mfn) = host.take_frame() {
                return Ok((mfn, false));
            }
            // A freed page table's frame kept with its entries: no type,
            // not clear.
            if let Some(mfn) = self.take_kept_frame() {
                return Ok((mfn, false));
            }
            // A freed root's frames: untyped, but not clear (its top L2
            // cleared and kept).
            if let Some(spare) = self.spares.pop() {
                let tag = Tag {
                    what: What::Clear,
                    ..Tag::default()
                };
                self.release_frame(host, spare.top, tag);
                return Ok((spare.l3, false));
            }
            if attempt == 0 {
                self.evict(host);
                // Freed directories' frames cleared and kept clear, the
                // eviction's own among them (here, not in `evict`, which
                // may run while `new_record` holds one it is taking).
                for d in 0..KNOWN_DIRS {
                    if self.dirs[d].owner == 0 {
                        self.give_up_dir(host, d);
                    }
                }
            }
        }
        Err(ShadowError::OutOfFrames)
    }

    /// A frame taken by [`take_frame`](Self::take_frame) and not used (a
    /// later step failed): back where it came from.
    #[cfg_attr(feature = "image", optimize(size))]
    fn untake<H: Host>(&mut self, host: &mut H, mfn: u32, clean: bool) {
        if clean && (self.clean.len as usize) < CLEAN_FRAMES {
            self.clean.frames[self.clean.len as usize] = mfn;
            self.clean.len += 1;
        } else {
            host.give_frame(mfn);
        }
    }

    /// Frame `mfn` is no table any more: the op that drops its last type
    /// reference is queued. It is cleared and kept for the next table, or
    /// given back when enough are kept.
    fn release_frame<H: Host>(&mut self, host: &mut H, mfn: u32, tag: Tag) {
        self.release_frame_as(host, mfn, tag, true);
    }

    /// [`release_frame`](Self::release_frame) of a frame that is clear
    /// already (once the ops queued so far are applied) unless `clear`.
    #[cfg_attr(feature = "image", optimize(size))]
    fn release_frame_as<H: Host>(&mut self, host: &mut H, mfn: u32, tag: Tag, clear: bool) {
        if (self.clean.len as usize) < CLEAN_FRAMES {
            if clear {
                host.push(Op::Mmuext(MmuextOp::clear_page(Mfn(mfn))), tag);
            }
            self.clean.frames[self.clean.len as usize] = mfn;
            self.clean.len += 1;
        } else {
            host.give_frame(mfn);
        }
    }

    // -----------------------------------------------------------------
    // Known L1 frames ([`KnownFrame`])

    /// A slot holding a freed page table's frame, kept for the next one.
    #[cfg_attr(feature = "image", optimize(size))]
    fn kept_known(&self) -> Option<usize> {
        (0..KNOWN_SLOTS).find(|&k| self.known[k].mfn != 0 && self.known[k].owner == 0)
    }

    /// A kept page table's frame, out of its slot.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn take_kept_frame(&mut self) -> Option<u32> {
        let k = self.kept_known()?;
        Some(core::mem::take(&mut self.known[k].mfn))
    }

    /// The frame for a new L1 record, whether it is clear, and the slot of
    /// a freed page table's frame taken as it is (any: the link exchanges
    /// it for the one that mapped the same addresses, `match_known`).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn take_l1_frame<H: Host>(
        &mut self,
        host: &mut H,
    ) -> Result<(u32, bool, Option<usize>), ShadowError> {
        if let Some(k) = self.kept_known() {
            return Ok((self.known[k].mfn, true, Some(k)));
        }
        let (mfn, clean) = self.take_frame(host)?;
        Ok((mfn, clean, None))
    }

    /// New L1 record `i` on its frame: the kept frame's slot `kept` with
    /// its entries (all stale), or else (a frame clear once the ops queued
    /// are applied) a free slot, or the next slot in turn given up.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn attach_known<H: Host>(&mut self, host: &mut H, i: usize, kept: Option<usize>) {
        let k = match kept {
            Some(k) => {
                self.stats.known_reused += 1;
                k
            }
            None => {
                // A free slot, else the next in turn, given up (a free one
                // is only emptied).
                let k = match self.known.iter().position(|k| k.mfn == 0) {
                    Some(k) => k,
                    None => {
                        self.known_next = self.known_next.wrapping_add(1);
                        self.known_next as usize % KNOWN_SLOTS
                    }
                };
                self.give_up_known(host, k);
                k
            }
        };
        let f = &mut self.known[k];
        f.mfn = self.tables[i].mfn;
        f.owner = i as u16 + 1;
        f.hint = 0;
        f.untouched = true;
        if f.stale != 0 {
            self.known_stale |= 1 << k;
        }
        self.tables[i].mirror = k as u16 + 1;
    }

    /// Slot `k` freed: its record's table no longer followed (the stale
    /// entries zeroed first; its frame cleared when the record goes), or
    /// its kept frame cleared and kept clear.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn give_up_known<H: Host>(&mut self, host: &mut H, k: usize) {
        let (owner, mfn) = (
            self.known[k % KNOWN_SLOTS].owner,
            self.known[k % KNOWN_SLOTS].mfn,
        );
        match (owner as usize).checked_sub(1) {
            Some(i) => {
                self.settle_known(host, k);
                self.tables[i % MAX_TABLES].mirror = 0;
                // Its writes may take the inline path now (`records_uncached`).
                self.last_valid = false;
                self.known_valid = false;
            }
            None if mfn != 0 => {
                let tag = Tag {
                    what: What::Clear,
                    ..Tag::default()
                };
                self.release_frame(host, mfn, tag);
            }
            None => {}
        }
        let f = &mut self.known[k % KNOWN_SLOTS];
        f.mfn = 0;
        f.owner = 0;
        f.len = 0;
        f.stale = 0;
        f.link = 0;
    }

    /// The record's page table of slot `k` has no stale entry any more:
    /// each is zeroed (one write each, queued before whatever makes a
    /// pinned root reach the frame).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn settle_known<H: Host>(&mut self, host: &mut H, k: usize) {
        let k = k % KNOWN_SLOTS;
        // The scratch's writes: one copy, or written here with the zeroes.
        let mut written = 0;
        if self.scratch.owner as usize == k + 1 {
            written = self.scratch_flush(host, k, false);
        }
        self.known_stale &= !(1 << k);
        let kfn = (self.known[k].owner as usize)
            .checked_sub(1)
            .map_or(0, |i| self.tables[i % MAX_TABLES].kfn);
        let f = &mut self.known[k];
        let stale = core::mem::take(&mut f.stale);
        let tag = Tag {
            what: What::L1Entry,
            kfn,
            ..Tag::default()
        };
        self.stats.known_stale_zeroed +=
            Self::write_listed(host, f.mfn, stale, written, &f.index, &mut f.value, tag);
    }

    /// A kept frame's listed entries (a bit each in `zero` or `keep`,
    /// positions in its list `index` / `value`) are written: one write
    /// each, queued in list order with `tag` naming the entry; those of
    /// `zero` (stale entries) get 0, and so do their listed values, those
    /// of `keep` their listed value (the scratch's writes). Returns how
    /// many were zeroed. Shared by page tables' and page directories' kept
    /// frames (`settle_known`, `settle_dir`).
    fn write_listed<H: Host>(
        host: &mut H,
        mfn: u32,
        zero: u32,
        keep: u32,
        index: &[u16],
        value: &mut [u64],
        tag: Tag,
    ) -> u32 {
        let mut mask = zero | keep;
        while mask != 0 {
            let p = mask.trailing_zeros() as usize % index.len();
            mask &= mask - 1;
            if zero & 1 << p != 0 {
                value[p] = 0;
            }
            let write = Op::pte_write(
                entry_maddr(mfn, index[p] as usize),
                value[p],
                PteWrite::Normal,
            );
            let tag = Tag {
                index: index[p],
                ..tag
            };
            Self::push_rare(host, write, tag);
        }
        zero.count_ones()
    }

    /// Before a pinned root may come to reach L1 records it did not (a
    /// root slot written, a root pinned): every linked record's stale
    /// entries are zeroed.
    #[inline(always)]
    fn settle_linked<H: Host>(&mut self, host: &mut H) {
        if self.known_stale | self.dirs_stale | u32::from(self.scratch.owner) != 0 {
            self.settle_linked_records(host);
        }
    }

    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn settle_linked_records<H: Host>(&mut self, host: &mut H) {
        // The scratch's owner counts as stale: no pinned root reaches it.
        let mut stale = self.known_stale | Self::scratch_bit(self.scratch.owner);
        while stale != 0 {
            let k = stale.trailing_zeros() as usize % KNOWN_SLOTS;
            stale &= stale - 1;
            let owner = self.known[k].owner as usize;
            if owner != 0 && self.tables[(owner - 1) % MAX_TABLES].refs > 0 {
                self.settle_known(host, k);
            }
        }
        // Directories are linked from root slots only: one linked now is
        // about to be reached.
        let mut stale = self.dirs_stale;
        while stale != 0 {
            let d = stale.trailing_zeros() as usize % KNOWN_DIRS;
            stale &= stale - 1;
            let owner = self.dirs[d].owner as usize;
            if owner != 0 && self.tables[(owner - 1) % MAX_TABLES].refs > 0 {
                self.settle_dir(host, d);
            }
        }
    }

    /// `link` of L1 record `l1` (with a slot) at directory entry `index`:
    /// a record that took a kept frame and has neither written an entry
    /// nor been linked before takes instead the kept frame last linked at
    /// this index, if another (a process's tables are built in whatever
    /// order its kernel likes: the frame that mapped the same addresses
    /// last time likely holds the same entries); its own goes back to the
    /// kept ones. Nothing queued names the frame yet, so the exchange is
    /// the cache's alone. The slot then remembers the index.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn match_known(&mut self, l1: usize, index: usize) {
        let l1 = l1 % MAX_TABLES;
        let k = (self.tables[l1].mirror as usize - 1) % KNOWN_SLOTS;
        let link = index as u16 + 1;
        let f = &self.known[k];
        let (untouched, stale, old_link, owner) = (f.untouched, f.stale, f.link, f.owner);
        let mut slot = k;
        if untouched && stale != 0 && old_link != link && self.tables[l1].refs == 1 {
            let other = (0..KNOWN_SLOTS).find(|&o| {
                let o = &self.known[o];
                o.mfn != 0 && o.owner == 0 && o.link == link
            });
            if let Some(o) = other {
                // The record moves to slot `o`, slot `k` is kept as it
                // was.
                self.known[o].owner = owner;
                self.known[o].hint = 0;
                self.known[k].owner = 0;
                self.known_stale &= !(1 << k);
                if self.known[o].stale != 0 {
                    self.known_stale |= 1 << o;
                }
                self.tables[l1].mfn = self.known[o].mfn;
                self.tables[l1].mirror = o as u16 + 1;
                slot = o;
            }
        }
        let f = &mut self.known[slot];
        f.link = link;
        f.untouched = false;
    }

    /// `link` of record `l1` into directory record `dir` (of `kind`): a
    /// directory a pinned root reaches (a top record, or an L2 in a root
    /// slot) gets no table with stale entries.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn settle_if_reached<H: Host>(&mut self, host: &mut H, dir: usize, kind: Kind, l1: usize) {
        let Some(k) = (self.tables[l1 % MAX_TABLES].mirror as usize).checked_sub(1) else {
            return;
        };
        if (self.known_stale | Self::scratch_bit(self.scratch.owner)) & (1 << (k % KNOWN_SLOTS))
            == 0
        {
            return;
        }
        let link = dir as u16 + 1;
        let reached = kind == Kind::Top
            || self
                .live_roots()
                .any(|r| self.roots[r].slots[..3].contains(&link));
        if reached {
            self.settle_known(host, k);
        }
    }

    /// Record `l1`'s frame gets `value` in entry `index`: true when it
    /// holds that already and need not be written. Every write to an L1
    /// record's frame comes here first. Only a table with stale entries
    /// (no pinned root reaches it: a freed table's frame being filled
    /// again) leaves writes out, so a table the loaded root reaches is
    /// written as before (the fault's quick update,
    /// `fault_entry_changed`, writes what `entry_changed` writes).
    #[inline(always)]
    fn known_write<H: Host>(&mut self, host: &mut H, l1: usize, index: usize, value: u64) -> bool {
        match (self.tables[l1 % MAX_TABLES].mirror as usize).checked_sub(1) {
            None => false,
            Some(k) => {
                // Its callers write a table the loaded root reaches, never
                // the scratch's owner (which no pinned root reaches): the
                // write they queue is the frame's, not the scratch's.
                debug_assert_ne!(usize::from(self.scratch.owner), k % KNOWN_SLOTS + 1);
                self.known_write_listed(host, k, index, value)
            }
        }
    }

    /// [`known_write`](Self::known_write) of a kept frame's write when the
    /// slot's hint names the entry (a table written in the order its last
    /// user wrote it: every write of a fork's child), inline in
    /// [`write_l1`](Self::write_l1); else the search, out of line. The
    /// same answer and upkeep either way (a listed entry is listed once).
    #[inline(always)]
    fn known_write_hinted<H: Host>(
        &mut self,
        host: &mut H,
        l1: usize,
        index: usize,
        value: u64,
    ) -> bool {
        let Some(k) = (self.tables[l1 % MAX_TABLES].mirror as usize).checked_sub(1) else {
            return false;
        };
        let k = k % KNOWN_SLOTS;
        let f = &mut self.known[k];
        let p = f.hint as usize;
        if p < (f.len as usize).min(KNOWN_ENTRIES) && f.index[p] as usize == index {
            let unreached = f.stale != 0;
            f.untouched = false;
            return self.known_write_found(k, p, value, unreached);
        }
        self.known_write_listed(host, k, index, value)
    }

    /// Slot `k` lists the entry at position `p`: no longer stale, and
    /// true (no write) when the frame holds `value` there already and no
    /// pinned root reaches it (`unreached`: the slot had stale entries
    /// before this write).
    #[inline(always)]
    fn known_write_found(&mut self, k: usize, p: usize, value: u64, unreached: bool) -> bool {
        let k = k % KNOWN_SLOTS;
        let p = p % KNOWN_ENTRIES;
        let f = &mut self.known[k];
        f.hint = p as u8 + 1;
        f.stale &= !(1 << p);
        if f.stale == 0 {
            self.known_stale &= !(1 << k);
        }
        if f.value[p] == value && unreached {
            self.stats.known_writes_skipped += 1;
            return true;
        }
        f.value[p] = value;
        false
    }

    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn known_write_listed<H: Host>(
        &mut self,
        host: &mut H,
        k: usize,
        index: usize,
        value: u64,
    ) -> bool {
        let k = k % KNOWN_SLOTS;
        let f = &mut self.known[k];
        let unreached = f.stale != 0;
        f.untouched = false;
        let len = (f.len as usize).min(KNOWN_ENTRIES);
        let hint = f.hint as usize;
        let found = if hint < len && f.index[hint] as usize == index {
            Some(hint)
        } else {
            f.index[..len].iter().position(|&i| i as usize == index)
        };
        if let Some(p) = found {
            return self.known_write_found(k, p, value, unreached);
        }
        if value == 0 && unreached {
            // Not listed: the frame holds 0 there.
            self.stats.known_writes_skipped += 1;
            return true;
        }
        if value == 0 {
            return false;
        }
        if len < KNOWN_ENTRIES {
            f.index[len] = index as u16;
            f.value[len] = value;
            f.len = len as u8 + 1;
            f.hint = f.len;
            return false;
        }
        // More entries than a slot lists: the table is followed no more.
        self.give_up_known(host, k);
        false
    }

    /// The `known_stale` bit of the scratch's owner `owner` (a slot + 1;
    /// 0: none, no bit).
    #[inline(always)]
    fn scratch_bit(owner: u8) -> u32 {
        (1u32 << (owner as usize % (KNOWN_SLOTS + 1))) >> 1
    }

    /// [`write_l1`](Self::write_l1) of a write record `l1`'s list has taken
    /// (its value listed, or an entry not listed: 0) and its frame must
    /// get: stored in the scratch frame instead of queued when the frame
    /// is the scratch's owner, or becomes it (the frame has stale
    /// entries, so no pinned root reaches it, and the scratch is free: no
    /// copy from it may still be queued). True: stored there. The owner's
    /// frame gets the scratch before anything can make a pinned root reach
    /// it (`settle_known`) or it is kept again (`free_record`).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn scratch_write<H: Host>(&mut self, host: &mut H, l1: usize, index: usize) -> bool {
        let Some(k) = (self.tables[l1 % MAX_TABLES].mirror as usize).checked_sub(1) else {
            return false;
        };
        let k = k % KNOWN_SLOTS;
        if self.scratch.owner as usize != k + 1 && !self.scratch_take(host, k) {
            return false;
        }
        // The write's list position is the hint's (`known_write_found`
        // and an append leave it there, and it is never beyond the list).
        let f = &self.known[k];
        let p = (f.hint as usize).wrapping_sub(1);
        if f.index.get(p).is_some_and(|&i| usize::from(i) == index) {
            host.scratch_store(index, f.value[p]);
            self.scratch.written |= 1 << p;
        }
        // Else the entry is not listed: 0, as the scratch holds it.
        // (Counted modulo 256: a count that wrapped only costs the copy.)
        self.scratch.writes = self.scratch.writes.wrapping_add(1);
        self.stats.scratch_writes += 1;
        true
    }

    /// Slot `k` becomes the scratch's owner if it may (it has stale
    /// entries, so no pinned root reaches its frame, enough of them,
    /// [`SCRATCH_COPY_MIN`], and no copy from the scratch may still be
    /// queued): the scratch then holds what the frame holds (its list, 0
    /// elsewhere).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn scratch_take<H: Host>(&mut self, host: &mut H, k: usize) -> bool {
        let k = k % KNOWN_SLOTS;
        let sc = &self.scratch;
        let frame = host.scratch_frame();
        if sc.owner != 0
            || self.known[k]
                .stale
                .wrapping_shr(u32::from(sc.min.wrapping_sub(1)))
                == 0
            || frame == 0
            || (sc.in_flight && host.flush_count() <= sc.sent)
        {
            return false;
        }
        for &i in sc.index.iter().take(sc.len as usize) {
            host.scratch_store(i as usize, 0);
        }
        let f = &self.known[k];
        for (&i, &value) in f.index.iter().zip(&f.value).take(f.len as usize) {
            host.scratch_store(i as usize, value);
        }
        let sc = &mut self.scratch;
        sc.owner = k as u8 + 1;
        sc.frame = frame;
        sc.written = 0;
        sc.writes = 0;
        sc.in_flight = false;
        true
    }

    /// The scratch gives its owner (slot `k`) up, holding the owner's
    /// list. With [`SCRATCH_COPY_MIN`] writes or more, or `copy`, they go
    /// to the owner's frame in one copy of the whole page (queued: the
    /// scratch must not change until it has reached Xen), and the answer
    /// is 0; else the list positions written to the scratch alone are the
    /// answer, for the caller to write (`settle_known`).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn scratch_flush<H: Host>(&mut self, host: &mut H, k: usize, copy: bool) -> u32 {
        let Some(tag) = self.scratch_close(k, copy) else {
            return core::mem::take(&mut self.scratch.written);
        };
        let copy = MmuextOp::copy_page(
            Mfn(self.known[k % KNOWN_SLOTS].mfn),
            Mfn(self.scratch.frame),
        );
        Self::push_rare(host, Op::Mmuext(copy), tag);
        self.scratch.sent = host.flush_count();
        0
    }

    /// [`scratch_flush`](Self::scratch_flush)'s bookkeeping: the tag of
    /// the copy when there is one (its written positions then forgotten).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn scratch_close(&mut self, k: usize, copy: bool) -> Option<Tag> {
        let f = &self.known[k % KNOWN_SLOTS];
        let sc = &mut self.scratch;
        sc.owner = 0;
        sc.index = f.index;
        sc.len = f.len;
        if !copy && sc.writes < sc.min {
            return None;
        }
        sc.written = 0;
        sc.in_flight = true;
        self.stats.scratch_copies += 1;
        let kfn = (f.owner as usize)
            .checked_sub(1)
            .map_or(0, |i| self.tables[i % MAX_TABLES].kfn);
        Some(Tag {
            what: What::FillTable,
            kfn,
            ..Tag::default()
        })
    }

    /// Test hook: the scratch's threshold ([`SCRATCH_COPY_MIN`]) is `min`
    /// (1 to 32) instead, so that the model's small tables reach it.
    #[doc(hidden)]
    pub fn set_scratch_copy_min(&mut self, min: u32) {
        self.scratch.min = min.clamp(1, KNOWN_ENTRIES as u32) as u8;
    }

    /// The frame the scratch holds writes for (not applied yet: the frame
    /// holds its list once they are), if any, with the entries written to
    /// the scratch alone (every other entry of the frame is the
    /// scratch's). For the tests.
    pub fn scratch_owner_frame(&self) -> Option<(u32, [Option<usize>; KNOWN_ENTRIES])> {
        let k = (self.scratch.owner as usize).checked_sub(1)? % KNOWN_SLOTS;
        let f = &self.known[k];
        let written = core::array::from_fn(|p| {
            (self.scratch.written & 1 << p != 0).then_some(f.index[p] as usize)
        });
        Some((f.mfn, written))
    }

    /// L1 record `i` goes: its frame is kept as it is, every entry it
    /// holds stale, for the next page table.
    #[inline(never)]
    fn keep_known(&mut self, k: usize) {
        let k = k % KNOWN_SLOTS;
        self.known_stale &= !(1 << k);
        let f = &mut self.known[k];
        let mut n = 0;
        for p in 0..(f.len as usize).min(KNOWN_ENTRIES) {
            if f.value[p] != 0 {
                f.index[n] = f.index[p];
                f.value[n] = f.value[p];
                n += 1;
            }
        }
        f.len = n as u8;
        f.stale = if n >= KNOWN_ENTRIES {
            u32::MAX
        } else {
            (1 << n) - 1
        };
        f.owner = 0;
        f.hint = 0;
    }

    // -----------------------------------------------------------------
    // Known directory frames ([`KnownDir`])

    /// The `dirs` slot of L2 record `i`, if its frame is listed.
    #[inline(never)]
    fn dir_slot(&self, i: usize) -> Option<usize> {
        let owner = i as u16 + 1;
        (0..KNOWN_DIRS).find(|&d| self.dirs[d].owner == owner && self.dirs[d].mfn != 0)
    }

    /// A slot holding a freed directory's frame, kept for the next one.
    fn kept_dir(&self) -> Option<usize> {
        (0..KNOWN_DIRS).find(|&d| self.dirs[d].mfn != 0 && self.dirs[d].owner == 0)
    }

    /// New L2 record `i` on its frame (clear once the ops queued are
    /// applied, or the kept frame of slot `kept` with its entries, all
    /// stale): the slot `kept`, else a free one, else the next in turn
    /// given up (its directory followed no more, or its kept frame cleared
    /// and kept clear): the directories made last are the ones followed.
    #[inline(never)]
    fn attach_dir<H: Host>(&mut self, host: &mut H, i: usize, kept: Option<usize>) {
        let d = match kept {
            Some(d) => {
                self.stats.dirs_reused += 1;
                d
            }
            None => {
                let d = match self.dirs.iter().position(|d| d.mfn == 0) {
                    Some(d) => d,
                    None => {
                        self.dirs_next = self.dirs_next.wrapping_add(1);
                        self.dirs_next as usize % KNOWN_DIRS
                    }
                };
                self.give_up_dir(host, d);
                d
            }
        };
        let f = &mut self.dirs[d % KNOWN_DIRS];
        f.mfn = self.tables[i].mfn;
        f.owner = i as u16 + 1;
        if f.stale != 0 {
            self.dirs_stale |= 1 << d;
        }
    }

    /// Slot `d` emptied: its record's directory followed no more (its stale
    /// entries zeroed first), or its kept frame cleared and kept clear.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn give_up_dir<H: Host>(&mut self, host: &mut H, d: usize) {
        let d = d % KNOWN_DIRS;
        let f = self.dirs[d];
        if f.owner != 0 {
            self.settle_dir(host, d);
        } else if f.mfn != 0 {
            let tag = Tag {
                what: What::Clear,
                ..Tag::default()
            };
            self.release_frame(host, f.mfn, tag);
        }
        self.dirs_stale &= !(1 << d);
        let f = &mut self.dirs[d];
        f.mfn = 0;
        f.owner = 0;
        f.len = 0;
        f.stale = 0;
    }

    /// L2 record `i` goes, nothing linking it: its frame, if listed, is
    /// kept as it is, every listed entry stale (true).
    #[inline(never)]
    fn keep_dir(&mut self, i: usize) -> bool {
        let Some(d) = self.dir_slot(i) else {
            return false;
        };
        let d = d % KNOWN_DIRS;
        self.dirs_stale &= !(1 << d);
        let f = &mut self.dirs[d];
        f.owner = 0;
        f.stale = ((1u32 << f.len) - 1) as u8;
        true
    }

    /// The listed entries of slot `d` that its record's directory does not
    /// have are zeroed (one write each, queued before whatever makes a
    /// pinned root reach the frame).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn settle_dir<H: Host>(&mut self, host: &mut H, d: usize) {
        let d = d % KNOWN_DIRS;
        self.dirs_stale &= !(1 << d);
        let f = &mut self.dirs[d];
        let stale = u32::from(core::mem::take(&mut f.stale));
        // No kernel frame in the tag: Xen refuses no write of 0 (the
        // frame may have no record any more).
        let tag = Tag {
            what: What::L2Entry,
            ..Tag::default()
        };
        self.stats.dir_stale_zeroed +=
            Self::write_listed(host, f.mfn, stale, 0, &f.index, &mut f.value, tag);
    }

    /// L2 record `i` (slot `d`) gets `value` in entry `index`: true when
    /// the write is left out. A link of the value a stale entry holds is
    /// left out (stale entries exist only while no pinned root reaches the
    /// frame), and so is an unlink once no cached root reaches the
    /// directory: the cached roots other than the loaded one that reach it
    /// are dropped first (the kernel clears entries of a directory of a
    /// space it does not run in when it tears that space down), and the
    /// frame keeps the old link, stale. Not when the loaded root or a root
    /// being built reaches it. A directory with more entries than a slot
    /// lists is followed no more. False for a directory not followed.
    #[inline(never)]
    fn known_dir_write<H: Host>(
        &mut self,
        host: &mut H,
        i: usize,
        index: usize,
        value: u64,
    ) -> bool {
        let Some(d) = self.dir_slot(i) else {
            return false;
        };
        let d = d % KNOWN_DIRS;
        let len = self.dirs[d].len as usize % (KNOWN_DIR_ENTRIES + 1);
        let Some(p) = self.dirs[d].index[..len]
            .iter()
            .position(|&x| x as usize == index)
        else {
            // Not listed: the frame holds 0 there.
            if value == 0 {
                return true;
            }
            if len < KNOWN_DIR_ENTRIES {
                let f = &mut self.dirs[d];
                f.index[len] = index as u16;
                f.value[len] = value;
                f.len += 1;
            } else {
                self.give_up_dir(host, d);
            }
            return false;
        };
        let bit = 1u8 << p;
        let stale = self.dirs[d].stale & bit != 0;
        // The frame holds the value already (a write of it would change
        // nothing, typed or not).
        let mut skip = self.dirs[d].value[p] == value;
        let mut keep_stale = false;
        if !skip && value == 0 {
            keep_stale = stale || {
                let link = i as u16 + 1;
                let current = self.current_root();
                let mut unreached = true;
                for r in self.live_roots() {
                    if self.roots[r].slots[..3].contains(&link) {
                        if Some(r) == current || self.is_building(r) {
                            unreached = false;
                            break;
                        }
                        self.free_root(host, r);
                    }
                }
                unreached
            };
            skip = keep_stale;
        }
        if skip {
            self.stats.dir_writes_skipped += 1;
        }
        let f = &mut self.dirs[d];
        if keep_stale {
            // The frame keeps the old link, stale.
            f.stale |= bit;
            self.dirs_stale |= 1 << d;
            return true;
        }
        f.value[p] = value;
        f.stale &= !bit;
        if f.stale == 0 {
            self.dirs_stale &= !(1 << d);
        }
        skip
    }

    fn take_record<H: Host>(&mut self, host: &mut H) -> Result<usize, ShadowError> {
        if self.free_tables == 0 {
            self.evict(host);
        }
        let i = (self.free_tables as usize)
            .checked_sub(1)
            .ok_or(ShadowError::OutOfRecords)?;
        self.free_tables = self.tables[i].next;
        Ok(i)
    }

    fn take_mirror<H: Host>(&mut self, host: &mut H) -> Result<usize, ShadowError> {
        for attempt in 0..2 {
            if let Some(m) = self.mirror_used.iter().position(|u| !u) {
                // A free mirror is all zero: `free_record` clears what it
                // unlinks (no 1 KiB fill here).
                debug_assert!(self.mirrors[m].iter().all(|&c| c == 0));
                self.mirror_used[m] = true;
                return Ok(m);
            }
            if attempt == 0 {
                self.evict(host);
            }
        }
        Err(ShadowError::OutOfRecords)
    }

    fn mirror(&self, i: usize) -> &[Code; ENTRIES] {
        &self.mirrors[self.tables[i].mirror as usize - 1]
    }

    fn mirror_mut(&mut self, i: usize) -> &mut [Code; ENTRIES] {
        &mut self.mirrors[self.tables[i].mirror as usize - 1]
    }

    /// A new record for `kfn` with one link (the caller's); for L1 and L2 a
    /// fresh shadow frame, clear (not pinned: "Only roots are pinned").
    #[cfg_attr(feature = "image", optimize(size))]
    fn new_record<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        kind: Kind,
    ) -> Result<usize, ShadowError> {
        // A kept L1 or directory frame (`kept`) is taken for good only
        // once the record is made: until then its slot still holds it.
        let (mfn, clean, kept) = match kind {
            Kind::L1 => self.take_l1_frame(host)?,
            Kind::L2 => match self.kept_dir() {
                Some(d) => (self.dirs[d].mfn, true, Some(d)),
                None => {
                    let (mfn, clean) = self.take_frame(host)?;
                    (mfn, clean, None)
                }
            },
            _ => (0, true, None),
        };
        let mirror = match kind {
            Kind::L2 | Kind::Top => match self.take_mirror(host) {
                Ok(m) => m as u16 + 1,
                Err(e) => {
                    if mfn != 0 && kept.is_none() {
                        self.untake(host, mfn, clean);
                    }
                    return Err(e);
                }
            },
            _ => 0,
        };
        let i = match self.take_record(host) {
            Ok(i) => i,
            Err(e) => {
                if mfn != 0 && kept.is_none() {
                    self.untake(host, mfn, clean);
                }
                if mirror != 0 {
                    self.mirror_used[mirror as usize - 1] = false;
                }
                return Err(e);
            }
        };
        let b = Self::bucket(kfn);
        self.tables[i] = Table {
            kfn,
            mfn,
            kind,
            flags: 0,
            refs: 1,
            mirror,
            next: self.buckets[b],
        };
        self.buckets[b] = i as u16 + 1;
        self.last_valid = false;
        self.known_valid = false;
        self.forget_fault_path();
        if mfn != 0 && !clean {
            let tag = Tag {
                what: What::Clear,
                kfn,
                index: 0,
                guest: 0,
            };
            host.push(Op::Mmuext(MmuextOp::clear_page(Mfn(mfn))), tag);
        }
        if kind == Kind::L1 {
            self.attach_known(host, i, kept);
            // The new table's first write (its link's or the kernel's
            // first SetPxE) finds its records in `known_records` at once
            // instead of missing both caches (`records_uncached` would
            // cache the same: the record has a known frame now).
            self.known_kfn = kfn;
            self.known_records = self.records_of(kfn);
            self.known_valid = true;
        } else if kind == Kind::L2 {
            self.attach_dir(host, i, kept);
        }
        Ok(i)
    }

    /// Removes record `i` (its links are gone, and with them the shadow's
    /// type in Xen): its mirror's links are dropped, its frame cleared and
    /// kept, or given back.
    fn free_record<H: Host>(&mut self, host: &mut H, i: usize) {
        let t = self.tables[i];
        // A page table whose writes the scratch holds: they are queued for
        // its frame, which then holds its list (kept below), while the
        // record still names the table (the copy's tag).
        if let Some(k) = (t.mirror as usize).checked_sub(1) {
            if t.kind == Kind::L1 && self.scratch.owner as usize == k % KNOWN_SLOTS + 1 {
                self.scratch_flush(host, k, true);
            }
        }
        // Unhook from the hash chain before anything below can look it up.
        self.last_valid = false;
        self.known_valid = false;
        self.forget_fault_path();
        let b = Self::bucket(t.kfn);
        let mut link = &mut self.buckets[b];
        while *link as usize != i + 1 {
            let j = *link as usize - 1;
            link = &mut self.tables[j].next;
        }
        *link = t.next;
        self.tables[i] = Table {
            next: self.free_tables,
            ..Table::default()
        };
        self.free_tables = i as u16 + 1;
        // Whether the shadow L2 still has an entry that is not 0: one per
        // linked mirror code (`link` writes `code_value` of every code it
        // stores, and that is 0 exactly for a code naming no record).
        let mut linked = false;
        if t.kind == Kind::L1 {
            if let Some(k) = (t.mirror as usize).checked_sub(1) {
                // Kept as it is, its entries listed, for the next table.
                self.keep_known(k);
                return;
            }
        }
        if t.kind == Kind::Top {
            // Its index may name another top record next.
            self.top_epoch = self.top_epoch.wrapping_add(1);
        }
        if t.kind != Kind::L1 && t.mirror != 0 {
            let m = t.mirror as usize - 1;
            // Only the groups `link` wrote (a directory links few tables),
            // four entries at a time; the mirror is left all zero for its
            // next user.
            let mut groups = core::mem::take(&mut self.mirror_groups[m]);
            while groups != 0 {
                let group = groups.trailing_zeros() as usize * MIRROR_GROUP;
                groups &= groups - 1;
                for first in (group..group + MIRROR_GROUP).step_by(4) {
                    let codes = &mut self.mirrors[m][first..first + 4];
                    if codes[0] | codes[1] | codes[2] | codes[3] == 0 {
                        continue;
                    }
                    let codes: [Code; 4] = [codes[0], codes[1], codes[2], codes[3]];
                    self.mirrors[m][first..first + 4].fill(0);
                    for code in codes {
                        if let Some(l1) = ((code & CODE_RECORD) as usize).checked_sub(1) {
                            linked = true;
                            self.unlink(host, l1);
                        }
                    }
                }
            }
            debug_assert!(self.mirrors[m].iter().all(|&c| c == 0));
            self.mirror_used[m] = false;
        }
        if t.mfn == 0 {
            return;
        }
        if t.kind == Kind::L2 && self.keep_dir(i) {
            // Nothing links it, so no root: kept as it is, every entry
            // stale, for the next directory.
            return;
        }
        let tag = Tag {
            what: What::Clear,
            kfn: t.kfn,
            index: 0,
            guest: 0,
        };
        // A directory whose mirror linked nothing is clear already, once
        // the writes that unlinked its entries are applied (queued before
        // this): kept with no clear of its own (Linux clears a directory's
        // entries before it frees it).
        let clear = t.kind != Kind::L2 || linked;
        self.release_frame_as(host, t.mfn, tag, clear);
    }

    /// Drops one link of record `i`, freeing it when none is left and the
    /// kernel does not hold it announced.
    #[cfg_attr(feature = "image", optimize(size))]
    fn unlink<H: Host>(&mut self, host: &mut H, i: usize) {
        let t = &mut self.tables[i];
        t.refs -= 1;
        if t.refs == 0 && (t.flags & ANNOUNCED == 0 || t.flags & RELEASED != 0) {
            self.free_record(host, i);
        }
    }

    /// Drops every cached shadow not in use: the roots other than the
    /// current one, then every record nothing links.
    #[cfg_attr(feature = "image", optimize(size))]
    fn evict<H: Host>(&mut self, host: &mut H) {
        let mut roots = 0;
        for r in 0..MAX_ROOTS {
            if self.roots[r].l3 != 0 && Some(r) != self.current_root() && !self.is_building(r) {
                self.free_root(host, r);
                roots += 1;
            }
        }
        let mut tables = 0;
        for i in 0..MAX_TABLES {
            let t = self.tables[i];
            if t.kind != Kind::Free && t.refs == 0 {
                self.free_record(host, i);
                tables += 1;
            }
        }
        self.stats.evictions += 1;
        host.note(Note::Evicted { roots, tables });
    }

    /// A root under construction (its stamp is u32::MAX until done).
    fn is_building(&self, r: usize) -> bool {
        self.roots[r].stamp == u32::MAX
    }

    // -----------------------------------------------------------------
    // Entries

    /// The shadow of the kernel's L1 entry `entry` (at `kfn:index`).
    #[inline]
    fn l1_value<H: Host>(
        &self,
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
        say: bool,
    ) -> u64 {
        Self::l1_value_inline(host, kfn, index, entry, say)
    }

    /// [`l1_value`](Self::l1_value), inline where one call frame counts
    /// (the kernel's update after a page fault, `fault_entry_changed`):
    /// the quick rule inline, the general one out of line.
    #[inline(always)]
    fn l1_value_inline<H: Host>(
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
        say: bool,
    ) -> u64 {
        let quick = l1_value_quick(
            entry,
            |f| host.machine_frame(f),
            |f| host.read_only_frame(f),
        );
        match quick {
            Some(value) => value,
            None => Self::l1_value_general(host, kfn, index, entry, say),
        }
    }

    /// `l1_value` by the general rule (an entry `l1_value_quick` leaves
    /// to it).
    #[cold]
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn l1_value_general<H: Host>(
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
        say: bool,
    ) -> u64 {
        match shadow(entry, Level::L1, |f| host.machine_frame(f)) {
            Ok(s) if s.value != 0 && host.read_only_frame(u64::from(frame_of(entry))) => {
                s.value & !RW
            }
            Ok(s) => s.value,
            Err(refusal) => Self::refused_l1_value(host, kfn, index, entry, say, refusal),
        }
    }

    /// `l1_value` of an entry that cannot be shadowed as written: the
    /// read-only empty page or nothing, with a note when `say`.
    #[cold]
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn refused_l1_value<H: Host>(
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
        say: bool,
        refusal: Refusal,
    ) -> u64 {
        let note = |host: &mut H, n| {
            if say {
                host.note(n)
            }
        };
        let index16 = index as u16;
        match refusal {
            Refusal::NotKernelFrame { .. } => {
                note(
                    host,
                    Note::NotKernelFrame {
                        kfn,
                        index: index16,
                        entry,
                    },
                );
                if entry & ACCESSED == 0 {
                    0
                } else {
                    (host.hole_frame() << 12) | PRESENT | ACCESSED | (entry & (USER | NX))
                }
            }
            Refusal::LargePage | Refusal::ReservedBits { .. } => {
                note(
                    host,
                    Note::ReservedBits {
                        kfn,
                        index: index16,
                        entry,
                    },
                );
                0
            }
        }
    }

    /// `host.push` in one out-of-line copy, for rare paths.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn push_rare<H: Host>(host: &mut H, op: Op, tag: Tag) {
        host.push(op, tag);
    }

    fn push_write<H: Host>(host: &mut H, mfn: u32, index: usize, value: u64, tag: Tag) {
        host.push_pte_write(entry_maddr(mfn, index), value, tag);
    }

    /// Record `l1` (an L1) follows the kernel's entry `index` = `entry`;
    /// a supervisor entry gets its A and D now (`eager_bits`).
    #[inline(never)]
    fn write_l1<H: Host>(&mut self, host: &mut H, l1: usize, index: usize, entry: u64) {
        let (mfn, value, tag) = self.l1_shadow::<H, false>(host, l1, index, entry);
        if self.known_write_hinted(host, l1, index, value) {
            return;
        }
        // The scratch only for a frame with stale entries or its owner (a
        // table the loaded root reaches has none: no call).
        if self.known_stale | u32::from(self.scratch.owner) != 0
            && self.scratch_write(host, l1, index)
        {
            return;
        }
        Self::push_write(host, mfn, index, value, tag);
    }

    /// [`write_l1`](Self::write_l1) of a record with no [`KnownFrame`],
    /// inline in `entry_changed` (every SetPxE of a page table's entry).
    #[inline(always)]
    fn write_l1_inline<H: Host>(&mut self, host: &mut H, l1: usize, index: usize, entry: u64) {
        let (mfn, value, tag) = self.l1_shadow::<H, false>(host, l1, index, entry);
        Self::push_write(host, mfn, index, value, tag);
    }

    /// What [`write_l1`](Self::write_l1) writes (the shadow frame, the
    /// value and its tag), for a caller that writes it whatever the frame
    /// holds; `INLINE`: with [`l1_value`](Self::l1_value) inline too.
    #[inline(always)]
    fn l1_write<H: Host, const INLINE: bool>(
        &mut self,
        host: &mut H,
        l1: usize,
        index: usize,
        entry: u64,
    ) -> (u32, u64, Tag) {
        let (mfn, value, tag) = self.l1_shadow::<H, INLINE>(host, l1, index, entry);
        self.known_write(host, l1, index, value);
        (mfn, value, tag)
    }

    /// The shadow frame, value and tag of record `l1`'s entry `index` for
    /// the kernel's `entry`, the kernel's entry given its eager bits first.
    #[inline(always)]
    fn l1_shadow<H: Host, const INLINE: bool>(
        &mut self,
        host: &mut H,
        l1: usize,
        index: usize,
        entry: u64,
    ) -> (u32, u64, Tag) {
        let Table { kfn, mfn, .. } = self.tables[l1 % MAX_TABLES];
        let eager = eager_bits(entry);
        if eager != 0 {
            host.set_guest_bits(kfn, index, eager);
        }
        let entry = entry | eager;
        let value = if INLINE {
            Self::l1_value_inline(host, kfn, index, entry, true)
        } else {
            self.l1_value(host, kfn, index, entry, true)
        };
        let tag = Tag {
            what: What::L1Entry,
            kfn,
            index: index as u16,
            guest: entry,
        };
        (mfn, value, tag)
    }

    /// The L1 record of kernel frame `kfn`, with one more link; discovered
    /// (shadowed from the kernel's entries) if it has none yet.
    fn acquire_l1<H: Host>(&mut self, host: &mut H, kfn: u32) -> Result<usize, ShadowError> {
        if let Some(i) = self.find(kfn, Kind::L1) {
            self.tables[i].refs += 1;
            return Ok(i);
        }
        let i = self.new_record(host, kfn, Kind::L1)?;
        self.stats.discovered += 1;
        self.fill_l1(host, i, 0..ENTRIES);
        Ok(i)
    }

    fn fill_l1<H: Host>(&mut self, host: &mut H, i: usize, range: core::ops::Range<usize>) {
        let kfn = self.tables[i].kfn;
        for index in range {
            let entry = host.guest_entry(kfn, index);
            if entry & PRESENT != 0 {
                self.write_l1(host, i, index, entry);
            }
        }
    }

    /// The record of page directory `kfn` as `kind` (L2 or top), with one
    /// more link; discovered if it has none yet.
    fn acquire_l2<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        kind: Kind,
    ) -> Result<usize, ShadowError> {
        if let Some(i) = self.find(kfn, kind) {
            self.tables[i].refs += 1;
            return Ok(i);
        }
        let i = self.new_record(host, kfn, kind)?;
        self.stats.discovered += 1;
        self.fill_l2(host, i, 0..ENTRIES)?;
        Ok(i)
    }

    fn fill_l2<H: Host>(
        &mut self,
        host: &mut H,
        i: usize,
        range: core::ops::Range<usize>,
    ) -> Result<(), ShadowError> {
        let kfn = self.tables[i].kfn;
        for index in range {
            let entry = host.guest_entry(kfn, index);
            if entry & PRESENT != 0 {
                self.link(host, i, index, entry)?;
            }
        }
        Ok(())
    }

    /// The mirror code for the kernel's directory entry `entry` linking
    /// record `l1`.
    fn code(entry: u64, l1: Option<usize>) -> Code {
        match l1 {
            None if entry & PRESENT != 0 => CODE_UNUSABLE,
            None => 0,
            Some(l1) => {
                (l1 as Code + 1)
                    | if entry & RW != 0 { CODE_RW } else { 0 }
                    | if entry & USER != 0 { CODE_US } else { 0 }
                    | if entry & NX != 0 { CODE_NX } else { 0 }
            }
        }
    }

    /// The shadow directory entry a mirror code stands for.
    fn code_value(&self, code: Code) -> u64 {
        let Some(l1) = ((code & CODE_RECORD) as usize).checked_sub(1) else {
            return 0;
        };
        (u64::from(self.tables[l1].mfn) << 12)
            | PRESENT
            | ACCESSED
            | if code & CODE_RW != 0 { RW } else { 0 }
            | if code & CODE_US != 0 { USER } else { 0 }
            | if code & CODE_NX != 0 { NX } else { 0 }
    }

    /// Record `i` (L2 or top) follows the kernel's directory entry `index`
    /// = `entry`: the L1 it names gets a record and a link, the shadow
    /// entry (in the L2's frame, or in every top L2 of the roots using the
    /// top record) is written, the old link dropped.
    fn link<H: Host>(
        &mut self,
        host: &mut H,
        i: usize,
        index: usize,
        entry: u64,
    ) -> Result<(), ShadowError> {
        let Table { kfn, mfn, kind, .. } = self.tables[i];
        if kind == Kind::Top && index >= TOP_KERNEL_SLOTS {
            // The ROM's area and Xen's: not the kernel's (virtual_top).
            return Ok(());
        }
        let note = Note::UnusableTable {
            kfn,
            index: index as u16,
            entry,
        };
        let l1 = if entry & PRESENT == 0 {
            None
        } else {
            match shadow(entry, Level::L2, |f| host.machine_frame(f)) {
                Ok(_) => Some(self.acquire_l1(host, frame_of(entry))?),
                Err(Refusal::ReservedBits { .. }) => {
                    host.note(Note::ReservedBits {
                        kfn,
                        index: index as u16,
                        entry,
                    });
                    None
                }
                Err(_) => {
                    host.note(note);
                    None
                }
            }
        };
        let code = Self::code(entry, l1);
        if let Some(l1) = l1 {
            if self.tables[l1 % MAX_TABLES].mirror != 0 {
                self.match_known(l1, index);
            }
            if self.known_stale | u32::from(self.scratch.owner) != 0 {
                self.settle_if_reached(host, i, kind, l1);
            }
        }
        self.forget_fault_path();
        let old = core::mem::replace(&mut self.mirror_mut(i)[index], code);
        if code != 0 {
            self.mirror_groups[self.tables[i].mirror as usize - 1] |= 1 << (index / MIRROR_GROUP);
        }
        let value = self.code_value(code);
        let tag = Tag {
            what: if kind == Kind::Top {
                What::TopEntry
            } else {
                What::L2Entry
            },
            kfn,
            index: index as u16,
            guest: entry,
        };
        if old != code {
            if kind == Kind::L2 {
                if !self.known_dir_write(host, i, index, value) {
                    Self::push_write(host, mfn, index, value, tag);
                }
            } else {
                // Freed roots' top L2s no longer follow (`top_epoch`).
                self.top_epoch = self.top_epoch.wrapping_add(1);
                for r in self.live_roots() {
                    let root = self.roots[r];
                    if root.l3 != 0 && root.slots[3] as usize == i + 1 {
                        Self::push_write(host, root.top, index, value, tag);
                    }
                }
            }
        }
        if let Some(old_l1) = ((old & CODE_RECORD) as usize).checked_sub(1) {
            self.unlink(host, old_l1);
        }
        Ok(())
    }

    /// The kernel's entry `index` of frame `kfn` now holds `entry` (it was
    /// written with SetPxE, or natively and announced with UpdatePxE):
    /// every shadow of that table follows. A frame with no record is not a
    /// table any cached root reaches, so nothing else needs to change. A
    /// PDPT entry is read at the next CR3 load, as the processor does.
    /// Returns [`may_change_current`](Self::may_change_current) as it was
    /// before the change (one lookup for both).
    pub fn entry_changed<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
    ) -> Result<bool, ShadowError> {
        let reach = self.entry_changed_deferred(host, kfn, index, entry)?;
        Ok(self.reaches_current(reach))
    }

    /// [`entry_changed`](Self::entry_changed), with the answer to
    /// `may_change_current` left for [`reaches_current`]
    /// (Self::reaches_current) to work out when the caller needs it (the
    /// end of a call in a lazy batch does not). Inline: the body of every
    /// SetPxELong and UpdatePxELong (the directory case is out of line).
    #[inline(always)]
    pub fn entry_changed_deferred<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
    ) -> Result<Reach, ShadowError> {
        self.entry_changed_with::<H, true, true>(host, kfn, index, entry)
    }

    /// [`entry_changed_deferred`](Self::entry_changed_deferred) with the
    /// L1 write of the last-hit cache's table out of line (`write_l1`):
    /// UpdatePxELong's general call, whose usual case in a lazy batch is
    /// the ROM's path in assembly.
    #[inline(always)]
    pub fn entry_changed_deferred_lean<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
    ) -> Result<Reach, ShadowError> {
        self.entry_changed_with::<H, true, false>(host, kfn, index, entry)
    }

    /// [`entry_changed_deferred`](Self::entry_changed_deferred) with the
    /// L1 write out of line (`write_l1`): for a copy of the calls kept
    /// small (the 4-byte calls).
    #[inline(always)]
    pub fn entry_changed_deferred_small<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
    ) -> Result<Reach, ShadowError> {
        self.entry_changed_with::<H, false, false>(host, kfn, index, entry)
    }

    #[inline(always)]
    fn entry_changed_with<H: Host, const INLINE: bool, const INLINE_HIT: bool>(
        &mut self,
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
    ) -> Result<Reach, ShadowError> {
        if !INLINE {
            return self.entry_changed_general(host, kfn, index, entry);
        }
        if !self.records_cached(kfn) {
            // A miss. A write to a page table whose frame is a
            // `KnownFrame` (the records `records_uncached` keeps in
            // `known_records`, an L1 record alone: every write of a fork's
            // child and of an exec's new tables) goes straight to
            // `write_l1`, which is all `entry_changed_general` would do for
            // it, with no general frame; every other miss goes there.
            let records = self.known_records;
            if self.known_valid && self.known_kfn == kfn && records.l2 == 0 && records.top == 0 {
                if let Some(i) = (records.l1 as usize).checked_sub(1) {
                    self.write_l1(host, i, index, entry);
                    return Ok(Reach(ReachState::PageTable(records.l1)));
                }
            }
            return self.entry_changed_general(host, kfn, index, entry);
        }
        // A hit. With `INLINE_HIT` the L1 write inline; else out of line
        // too (`write_l1`): the usual hit, a lazy batch's next entry of a
        // plain page table, is the ROM's path in assembly
        // (`mmu_calls::quick_entry_update`), and what comes here is the
        // rest (outside lazy mode, eager bits, a queue that is no plain
        // run).
        let records = self.last_records;
        if INLINE_HIT {
            self.entry_changed_records::<H, true>(host, records, index, entry)
        } else {
            self.entry_changed_records::<H, false>(host, records, index, entry)
        }
    }

    /// The quick update's record (`mmu_calls::quick_entry_update`): the L1
    /// record of `kfn` when the last-hit record cache holds `kfn` and its
    /// records are a page table's alone (no directory record) with an L1
    /// record, the case in which [`entry_changed_deferred`]
    /// (Self::entry_changed_deferred) is `write_l1_inline` of that record
    /// and nothing else. The last-hit cache never holds a table whose
    /// frame is a [`KnownFrame`] (`records_uncached`), so neither does
    /// this. None: any other case (nothing read but the cache).
    #[inline(always)]
    pub fn quick_page_table(&self, kfn: u32) -> Option<QuickTable> {
        let r = self.last_records;
        if !self.records_cached(kfn) || r.l2 != 0 || r.top != 0 || r.l1 == 0 {
            return None;
        }
        Some(QuickTable { link: r.l1 })
    }

    /// What `write_l1_inline(l1, index, entry)` writes, worked out with no
    /// change made: the shadow frame, the value and the tag. None when the
    /// kernel's entry needs eager bits (`eager_bits`: a supervisor entry
    /// without A, or writable without D; the ROM's path in assembly
    /// leaves those to the general call) or its value needs the general
    /// rule (`l1_value_quick` declines: the general rule may say something
    /// on the console), so that the caller can still decline.
    #[inline(always)]
    pub fn quick_l1_write<H: Host>(
        &self,
        host: &H,
        table: QuickTable,
        index: usize,
        entry: u64,
    ) -> Option<QuickWrite> {
        let Table { kfn, mfn, .. } = self.tables[usize::from(table.link - 1) % MAX_TABLES];
        if eager_bits(entry) != 0 {
            return None;
        }
        let value = l1_value_quick(
            entry,
            |f| host.machine_frame(f),
            |f| host.read_only_frame(f),
        )?;
        Some(QuickWrite {
            entry_maddr: entry_maddr(mfn, index),
            value,
            tag: Tag {
                what: What::L1Entry,
                kfn,
                index: index as u16,
                guest: entry,
            },
        })
    }

    /// `entry_changed` out of line: the 4-byte calls' (the L1 write out of
    /// line too), and the inline path's when the last-hit cache misses on
    /// anything but a known frame's page table (`entry_changed_with`).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn entry_changed_general<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
    ) -> Result<Reach, ShadowError> {
        let records = if self.records_cached(kfn) {
            self.last_records
        } else {
            self.records_uncached(kfn)
        };
        self.entry_changed_records::<H, false>(host, records, index, entry)
    }

    /// `entry_changed` of a frame with `records`.
    #[inline(always)]
    fn entry_changed_records<H: Host, const INLINE: bool>(
        &mut self,
        host: &mut H,
        records: FrameRecords,
        index: usize,
        entry: u64,
    ) -> Result<Reach, ShadowError> {
        // A page table's entry (the usual SetPxE): writing it changes no
        // record's links and no root, so what it reaches is the same after
        // as before. A directory's: what it reaches is taken first.
        let table_only = records.l2 == 0 && records.top == 0;
        let reaches_current = !table_only && self.records_reach_current(records);
        // One call site of the L1 write: with two, the compiler keeps it
        // out of line (about 35 instructions more per lazy SetPxELong).
        if let Some(i) = (records.l1 as usize).checked_sub(1) {
            if INLINE {
                self.write_l1_inline(host, i, index, entry);
            } else {
                self.write_l1(host, i, index, entry);
            }
        }
        if table_only {
            return Ok(Reach(ReachState::PageTable(records.l1)));
        }
        self.directory_entry_changed(host, records, index, entry)
            .map(|()| Reach(ReachState::Known(reaches_current)))
    }

    /// Whether the change [`entry_changed_deferred`]
    /// (Self::entry_changed_deferred) made may change a shadow the loaded
    /// address space reaches: `may_change_current` as it was before it.
    #[inline(always)]
    pub fn reaches_current(&self, reach: Reach) -> bool {
        match reach.0 {
            ReachState::Known(reaches) => reaches,
            // What `records_reach_current` says of a frame with at most an
            // L1 record.
            ReachState::PageTable(l1) => {
                self.current != 0
                    && l1 != 0
                    && self.tables[usize::from(l1 - 1) % MAX_TABLES].refs > 0
            }
        }
    }

    /// `entry_changed` for a frame that is a page directory (of PDPT slots
    /// 0-2, of slot 3, or both): every mirror follows.
    #[inline(never)]
    fn directory_entry_changed<H: Host>(
        &mut self,
        host: &mut H,
        records: FrameRecords,
        index: usize,
        entry: u64,
    ) -> Result<(), ShadowError> {
        let [_, l2, top] = records.as_options();
        // A link of our own on each directory record while it changes: an
        // eviction on the way (the new entry's table needing a frame) must
        // not free a record nothing else links (an announced directory).
        // line (a fork's four directory writes paid about 500 instructions
        // for them).
        if let Some(i) = l2 {
            self.tables[i].refs += 1;
        }
        if let Some(i) = top {
            self.tables[i].refs += 1;
        }
        let mut result = match l2 {
            Some(i) => self.link(host, i, index, entry),
            None => Ok(()),
        };
        if let (Ok(()), Some(i)) = (&result, top) {
            result = self.link(host, i, index, entry);
        }
        if let Some(i) = l2 {
            self.unlink(host, i);
        }
        if let Some(i) = top {
            self.unlink(host, i);
        }
        result
    }

    /// Whether a change to the entries of kernel frame `kfn` may change a
    /// shadow the loaded address space reaches (Xen walks only that one).
    /// False means the ops `entry_changed` queues for it touch only shadows
    /// no loaded root reaches, and new frames: they may wait in the queue
    /// past the end of the call, to go out with the next hypercall, and
    /// nothing the kernel can observe differs (a fault, an interrupt, a
    /// TLB flush and a CR3 load all flush the queue first). Conservative:
    /// an L1 record anything links counts as reached (which directories
    /// link it is not kept); L2 and top records are linked only from root
    /// slots, so the loaded root's four slots decide.
    ///
    /// AllocatePage and ReleasePage need no such test: the records they
    /// create, free or unpin have no links (a new table is not linked yet;
    /// a freed record has none left), and the roots they drop are not the
    /// loaded one.
    pub fn may_change_current(&self, kfn: u32) -> bool {
        self.records_reach_current(self.records_of(kfn))
    }

    #[inline]
    fn records_reach_current(&self, records: FrameRecords) -> bool {
        let Some(r) = self.current_root() else {
            return false;
        };
        if records.l1 != 0 && self.tables[usize::from(records.l1 - 1) % MAX_TABLES].refs > 0 {
            return true;
        }
        if records.l2 == 0 && records.top == 0 {
            return false;
        }
        let slots = self.roots[r % MAX_ROOTS].slots;
        [records.l2, records.top]
            .into_iter()
            .any(|i| i != 0 && slots.contains(&i))
    }

    // -----------------------------------------------------------------
    // AllocatePage / ReleasePage

    /// AllocatePage(`kfn`, L1): the frame becomes a page table. Its shadow
    /// is made now (so that the entries the kernel writes next go straight
    /// into it); `zeroed`: the kernel promises the frame is zero (VMI
    /// PAGE_ZEROED), so it is not read.
    pub fn allocate_l1<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        zeroed: bool,
    ) -> Result<(), ShadowError> {
        let i = match self.find(kfn, Kind::L1) {
            Some(i) => {
                self.tables[i].refs += 1;
                i
            }
            None => {
                let i = self.new_record(host, kfn, Kind::L1)?;
                self.stats.announced += 1;
                if !zeroed {
                    self.fill_l1(host, i, 0..ENTRIES);
                }
                i
            }
        };
        self.tables[i].flags = ANNOUNCED;
        self.unlink(host, i);
        Ok(())
    }

    /// AllocatePage(`kfn`, L2), possibly a clone: entries `range` were
    /// copied by the kernel from another directory. A clone whose source is
    /// a PDPT (Linux's pgd_ctor: `clone_kfn` is a root's PDPT frame, or the
    /// range lies within a PDPT's four entries) is about PDPT entries,
    /// which the next CR3 load reads: nothing to do.
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn allocate_l2<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        zeroed: bool,
        clone: Option<(u32, core::ops::Range<usize>)>,
    ) -> Result<(), ShadowError> {
        if let Some((source, range)) = &clone {
            // The cached roots only (a bit each), not the 32 slots.
            let mut live = self.live_roots;
            let mut source_is_pdpt = false;
            while live != 0 {
                let r = live.trailing_zeros() as usize % MAX_ROOTS;
                live &= live - 1;
                source_is_pdpt |= self.roots[r].cr3 >> 12 == *source;
            }
            if source_is_pdpt || range.end <= 4 {
                return Ok(());
            }
        }
        let i = match self.find(kfn, Kind::L2) {
            Some(i) => {
                self.tables[i].refs += 1;
                i
            }
            None => {
                let i = self.new_record(host, kfn, Kind::L2)?;
                self.stats.announced += 1;
                let range = match clone {
                    Some((_, range)) => range.start.min(ENTRIES)..range.end.min(ENTRIES),
                    None if zeroed => 0..0,
                    None => 0..ENTRIES,
                };
                if let Err(e) = self.fill_l2(host, i, range) {
                    self.unlink(host, i);
                    return Err(e);
                }
                i
            }
        };
        self.tables[i].flags = ANNOUNCED;
        self.unlink(host, i);
        Ok(())
    }

    /// ReleasePage(`kfn`, level): the frame stops being a page table.
    /// Cached address spaces other than the current one that reach it are
    /// dropped (the kernel is tearing them down). A table the current
    /// address space still reaches keeps its shadow until its last link
    /// goes (the processor would keep using it too), with a note; one
    /// linked only from tables no address space uses goes with them.
    /// Released PDPT frames drop their roots (Linux 2.6.29+ releases a pgd
    /// this way).
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn release<H: Host>(&mut self, host: &mut H, kfn: u32, directory: bool) {
        if directory {
            for r in self.live_roots() {
                let root = self.roots[r];
                if root.l3 == 0 || root.cr3 >> 12 != kfn {
                    continue;
                }
                if Some(r) == self.current_root() {
                    host.note(Note::ReleasedCurrentRoot { cr3: root.cr3 });
                } else {
                    self.free_root(host, r);
                }
            }
        }
        let kinds: &[Kind] = if directory {
            &[Kind::L2, Kind::Top]
        } else {
            &[Kind::L1]
        };
        for &kind in kinds {
            let Some(i) = self.find(kfn, kind) else {
                continue;
            };
            self.tables[i].flags |= RELEASED;
            if self.tables[i].refs == 0 {
                // Nothing links it (a page table whose directory entry the
                // kernel cleared first, as Linux's free_pte_range does), so
                // no root reaches it (`reaches` follows links, and `refs`
                // counts them all): it goes now, without a look at the
                // roots, which cost 4 mirrors of 512 entries per root.
                self.free_record(host, i);
                continue;
            }
            // Hold it while the roots that reach it go.
            self.tables[i].refs += 1;
            for r in self.live_roots() {
                if self.roots[r].l3 != 0 && Some(r) != self.current_root() && self.reaches(r, i) {
                    self.free_root(host, r);
                }
            }
            let live = self.current_root().is_some_and(|r| self.reaches(r, i));
            if live {
                host.note(Note::ReleasedLive {
                    kfn,
                    links: self.tables[i].refs - 1,
                });
            }
            self.unlink(host, i);
        }
    }

    /// Whether root `r` links record `i` (in a PDPT slot or from one of its
    /// directories). Root slots link directories (L2 and top records) and
    /// mirror entries link page tables (L1 records) only, so only an L1
    /// record's question needs the mirrors read.
    fn reaches(&self, r: usize, i: usize) -> bool {
        let slots = self.roots[r].slots;
        if slots.contains(&(i as u16 + 1)) {
            return true;
        }
        if self.tables[i].kind != Kind::L1 {
            return false;
        }
        slots.iter().any(|&slot| {
            let Some(d) = (slot as usize).checked_sub(1) else {
                return false;
            };
            self.mirror(d)
                .iter()
                .any(|&code| (code & CODE_RECORD) as usize == i + 1)
        })
    }

    // -----------------------------------------------------------------
    // Roots

    /// The cached root of `cr3`: the one its hint slot names when that is
    /// it (a context switch among many spaces then needs no search), else
    /// the first found, which becomes the slot's hint.
    #[inline(always)]
    fn find_root(&mut self, cr3: u32) -> Option<usize> {
        self.hinted_root(cr3).or_else(|| self.search_root(cr3))
    }

    /// The cached root of `cr3` if its hint slot names it.
    #[inline(always)]
    fn hinted_root(&self, cr3: u32) -> Option<usize> {
        let r = (self.root_hints[Self::root_hint_slot(cr3)] as usize).checked_sub(1)?;
        let root = &self.roots[r];
        (root.l3 != 0 && root.cr3 == cr3).then_some(r)
    }

    /// [`find_root`](Self::find_root) past its hint.
    #[inline(never)]
    fn search_root(&mut self, cr3: u32) -> Option<usize> {
        let r = self.roots.iter().position(|r| r.l3 != 0 && r.cr3 == cr3)?;
        self.root_hints[Self::root_hint_slot(cr3)] = r as u8 + 1;
        Some(r)
    }

    /// The slots of the cached roots, in order (a copy of the mask: a
    /// root freed on the way is still visited, so callers check `l3`).
    fn live_roots(&self) -> impl Iterator<Item = usize> + use<> {
        let mut live = self.live_roots;
        core::iter::from_fn(move || {
            let r = live.trailing_zeros() as usize;
            live &= live.wrapping_sub(1);
            (r < MAX_ROOTS).then_some(r)
        })
    }

    fn root_hint_slot(cr3: u32) -> usize {
        // A PDPT is 32-byte aligned; Linux gives each its own frame.
        ((cr3 >> 5) ^ (cr3 >> 12)) as usize % ROOT_HINTS
    }

    /// The kernel's PDPT at `cr3` as the processor reads it at a CR3 load
    /// (not checked yet: [`check_pdpt`](Self::check_pdpt)).
    fn read_pdpt<H: Host>(host: &mut H, cr3: u32, pdpt: &mut [u64; 4]) -> Result<(), ShadowError> {
        let kfn = cr3 >> 12;
        if host.machine_frame(u64::from(kfn)).is_none() {
            return Err(ShadowError::Cr3NotRam { cr3 });
        }
        let first = ((cr3 & 0xFE0) >> 3) as usize;
        host.guest_entries(kfn, first, pdpt);
        Ok(())
    }

    /// The PDPT entries checked as a CR3 load checks them.
    fn check_pdpt<H: Host>(host: &mut H, cr3: u32, pdpt: &[u64; 4]) -> Result<(), ShadowError> {
        for (slot, e) in pdpt.iter().enumerate() {
            let bad =
                *e & PDPTE_RESERVED != 0 || host.machine_frame(u64::from(frame_of(*e))).is_none();
            if *e & PRESENT != 0 && bad {
                return Err(ShadowError::BadPdpte {
                    cr3,
                    slot: slot as u8,
                    entry: *e,
                });
            }
        }
        Ok(())
    }

    fn root_tag(cr3: u32, what: What, slot: usize, guest: u64) -> Tag {
        Tag {
            what,
            kfn: cr3 >> 12,
            index: ((cr3 & 0xFE0) >> 3) as u16 + slot as u16,
            guest,
        }
    }

    /// CR3 load with paging on: the root for `cr3`, built if it is not
    /// cached, its PDPT entries read again (as the processor reads them at
    /// every CR3 load). Returns the shadow L3 to load (the caller queues
    /// MMUEXT_NEW_BASEPTR and flushes).
    ///
    /// A root to build or follow is out of line (`load_new_root`,
    /// `load_changed_root`); a context switch's load of an unchanged root
    /// can be had without a host ([`cached_root`](Self::cached_root)).
    #[inline]
    pub fn load_root<H: Host>(&mut self, host: &mut H, cr3: u32) -> Result<u32, ShadowError> {
        let cr3 = cr3 & !0x1F;
        let Some(r) = self.find_root(cr3) else {
            return self.load_new_root(host, cr3);
        };
        // A cached root: its PDPT read where the host found it last
        // (`Host::root_pdpt`).
        let root = &mut self.roots[r];
        let first = ((cr3 & 0xFE0) >> 3) as usize;
        let Some(pdpt) = host.root_pdpt(cr3 >> 12, first, &mut root.pdpt_hint) else {
            return Err(ShadowError::Cr3NotRam { cr3 });
        };
        self.clock = self.clock.wrapping_add(1).min(u32::MAX - 1);
        // Folded, not `pdpte == pdpt` (a byte-wise memcmp call, 250
        // instructions in the ROM) nor slot by slot with a branch each:
        // the entries as the root was built from them. A root's slot is
        // linked exactly where its recorded entry is present (the two
        // change together, in `set_root_slot` and where a root is built),
        // so equal entries mean every slot follows them.
        let root = &mut self.roots[r];
        let mut differ = 0;
        for (s, &entry) in pdpt.iter().enumerate() {
            differ |= root.pdpte[s] ^ entry;
        }
        debug_assert!((0..4).all(|s| (root.pdpte[s] & PRESENT != 0) == (root.slots[s] != 0)));
        if differ == 0 {
            // The PDPT as the root was built from (the usual context
            // switch): checked then, and every slot already follows it
            // (`set_root_slot` would change none).
            root.stamp = self.clock;
            self.current = r as u16 + 1;
            return Ok(root.l3);
        }
        self.load_changed_root(host, cr3, &pdpt, Some(r))
    }

    /// The first half of [`load_root`](Self::load_root)'s usual case (a
    /// context switch's): `cr3`'s cached root, if its hint slot names it
    /// (no search: a CR3 whose root is not there, as a new space's first
    /// load, is left to `load_root`, which searches once), and where its
    /// PDPT's entries are (the frame, the first entry, and the host's
    /// note of where it found them last, `Host::root_pdpt`). Nothing
    /// changes.
    #[inline(always)]
    pub fn cached_root(&self, cr3: u32) -> Option<CachedRoot> {
        let cr3 = cr3 & !0x1F;
        let root = self.hinted_root(cr3)?;
        Some(CachedRoot {
            root,
            kfn: cr3 >> 12,
            first: ((cr3 & 0xFE0) >> 3) as usize,
            pdpt_hint: self.roots[root].pdpt_hint,
        })
    }

    /// The second half: when the PDPT `cached` names (`entry(s)`: entry
    /// `s` of the four, as the host reads it) is the one the root was
    /// built from, the root is loaded as [`load_root`](Self::load_root)
    /// loads it, and its shadow L3 returned. None otherwise, with nothing
    /// changed: the caller then takes `load_root`.
    #[inline(always)]
    pub fn load_unchanged_root(
        &mut self,
        cached: CachedRoot,
        mut entry: impl FnMut(usize) -> u64,
    ) -> Option<u32> {
        let r = cached.root;
        // Folded as `load_root` folds them, each entry read as it is
        // compared.
        // (In 32-bit halves: one register for the fold on i686.)
        let mut differ = 0u32;
        for s in 0..4 {
            let d = self.roots[r].pdpte[s] ^ entry(s);
            differ |= d as u32 | (d >> 32) as u32;
        }
        if differ != 0 {
            return None;
        }
        // As `load_root` for an unchanged PDPT.
        let clock = self.clock.wrapping_add(1).min(u32::MAX - 1);
        self.clock = clock;
        self.roots[r].stamp = clock;
        self.current = r as u16 + 1;
        Some(self.roots[r].l3)
    }

    /// [`load_root`](Self::load_root) of a CR3 no cached root has: its
    /// PDPT read and a root built.
    #[inline(never)]
    fn load_new_root<H: Host>(&mut self, host: &mut H, cr3: u32) -> Result<u32, ShadowError> {
        let mut pdpt = [0; 4];
        Self::read_pdpt(host, cr3, &mut pdpt)?;
        self.clock = self.clock.wrapping_add(1).min(u32::MAX - 1);
        self.load_changed_root(host, cr3, &pdpt, None)
    }

    /// [`load_root`](Self::load_root) of a root not cached, or whose PDPT
    /// changed.
    #[inline(never)]
    fn load_changed_root<H: Host>(
        &mut self,
        host: &mut H,
        cr3: u32,
        pdpt: &[u64; 4],
        cached: Option<usize>,
    ) -> Result<u32, ShadowError> {
        let pdpt = *pdpt;
        Self::check_pdpt(host, cr3, &pdpt)?;
        if let Some(r) = cached {
            // Not to be evicted while its slots change.
            self.roots[r].stamp = u32::MAX;
            for (slot, &entry) in pdpt.iter().enumerate() {
                self.set_root_slot(host, r, slot, entry, NOT_HELD)?;
            }
            self.roots[r].stamp = self.clock;
            self.current = r as u16 + 1;
            return Ok(self.roots[r].l3);
        }
        let r = match (!self.live_roots).trailing_zeros() as usize {
            r if r < MAX_ROOTS => r,
            _ => {
                // The least recently loaded root that is not in use.
                let current = self.current_root();
                let r = (0..MAX_ROOTS)
                    .filter(|&r| Some(r) != current)
                    .min_by_key(|&r| self.roots[r].stamp)
                    .expect("more than one root slot");
                self.free_root(host, r);
                r
            }
        };
        let RootFrames {
            l3,
            held,
            top,
            top_clean,
            top_as,
        } = self.root_frames(host, cr3, pdpt[3])?;
        self.roots[r] = Root {
            cr3,
            l3,
            top,
            slots: [0; 4],
            pdpte: [0; 4],
            stamp: u32::MAX,
            pdpt_hint: 0,
        };
        self.live_roots |= 1 << r;
        self.stats.roots_built += 1;
        // The top L2 first: a copy of a sibling's when one uses the same
        // kernel directory (a new process under a shared kernel PMD), else
        // built entry by entry.
        let top_record = if pdpt[3] & PRESENT != 0 {
            Some(self.acquire_l2(host, frame_of(pdpt[3]), Kind::Top)?)
        } else {
            None
        };
        let sibling = top_record.and_then(|t| {
            self.live_roots().find(|&o| {
                let o = &self.roots[o];
                o.l3 != 0 && o.cr3 != cr3 && o.slots[3] as usize == t + 1
            })
        });
        // An old root's top L2 that holds the top record's entries as
        // they are now (no top mirror changed since, `top_epoch`) needs
        // nothing: the ROM's links are the same in every top L2, and Xen
        // fills its own slots when the pin validates it.
        let holds_entries = top_record.is_some_and(|t| top_as == (t as u32 + 1, self.top_epoch));
        if holds_entries {
            self.stats.tops_copied += 1;
        } else if let Some(s) = sibling {
            host.push(
                Op::Mmuext(MmuextOp::copy_page(Mfn(top), Mfn(self.roots[s].top))),
                Self::root_tag(cr3, What::CopyTop, 3, pdpt[3]),
            );
            self.stats.tops_copied += 1;
        } else {
            if !top_clean {
                host.push(
                    Op::Mmuext(MmuextOp::clear_page(Mfn(top))),
                    Self::root_tag(cr3, What::Clear, 3, pdpt[3]),
                );
            }
            if let Some(t) = top_record {
                let kfn = self.tables[t].kfn;
                for index in 0..TOP_KERNEL_SLOTS {
                    let code = self.mirror(t)[index];
                    if code & CODE_RECORD != 0 {
                        let tag = Tag {
                            what: What::TopEntry,
                            kfn,
                            index: index as u16,
                            guest: 0,
                        };
                        Self::push_write(host, top, index, self.code_value(code), tag);
                    }
                }
            }
            for (k, slot) in rom_area_l2_slots().enumerate() {
                let link = (u64::from(self.rom_links[k]) << 12) | PRESENT | RW | ACCESSED;
                Self::push_write(
                    host,
                    top,
                    slot as usize,
                    link,
                    Self::root_tag(cr3, What::RomLink, 3, 0),
                );
            }
        }
        self.roots[r].slots[3] = top_record.map_or(0, |t| t as u16 + 1);
        self.roots[r].pdpte[3] = pdpt[3];
        // Each slot is written unless the L3 holds its value already (an
        // old root's L3 is untyped: a write of the same value would change
        // nothing).
        for (slot, &entry) in pdpt.iter().enumerate().take(3) {
            self.set_root_slot(host, r, slot, entry, held[slot])?;
        }
        self.settle_linked(host);
        host.push(
            Op::Mmuext(MmuextOp::pin_l3_table(Mfn(l3))),
            Self::root_tag(cr3, What::Pin, 0, 0),
        );
        self.roots[r].stamp = self.clock;
        self.current = r as u16 + 1;
        Ok(l3)
    }

    /// The frames of a new root (`cr3`, PDPT entry 3 `pdpte3`): its L3,
    /// made ready up to its slot 3 (cleared if its contents are unknown,
    /// the link to the top L2 written unless it holds it), with what its
    /// slots 0-2 hold; and its top L2, with whether it is clear. A freed
    /// root's frames first ([`SPARE_ROOT_FRAMES`]): its top L2 is then a
    /// frame of unknown contents to the caller (copied over or cleared),
    /// its L3 holds the four entries it was freed with.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn root_frames<H: Host>(
        &mut self,
        host: &mut H,
        cr3: u32,
        pdpte3: u64,
    ) -> Result<RootFrames, ShadowError> {
        // A freed root's pair holds its own top link in slot 3.
        if let Some(spare) = self.spares.pop() {
            debug_assert_eq!(spare.held[3], (u64::from(spare.top) << 12) | PRESENT);
            return Ok(spare);
        }
        let (l3, l3_clean) = self.take_frame(host)?;
        let (top, top_clean) = match self.take_frame(host) {
            Ok(f) => f,
            Err(e) => {
                self.untake(host, l3, l3_clean);
                return Err(e);
            }
        };
        // One out-of-line push for both (a new root not on a freed root's
        // frames is rare): the same ops as `host.push` and `push_write`.
        if !l3_clean {
            Self::push_rare(
                host,
                Op::Mmuext(MmuextOp::clear_page(Mfn(l3))),
                Self::root_tag(cr3, What::Clear, 0, 0),
            );
        }
        Self::push_rare(
            host,
            Op::pte_write(
                entry_maddr(l3, 3),
                (u64::from(top) << 12) | PRESENT,
                PteWrite::Normal,
            ),
            Self::root_tag(cr3, What::Pdpte, 3, pdpte3),
        );
        Ok(RootFrames {
            l3,
            held: [0, 0, 0, (u64::from(top) << 12) | PRESENT],
            top,
            top_clean,
            top_as: (0, 0),
        })
    }

    /// Root `r`'s PDPT slot follows the kernel's entry; `held`: the value
    /// its L3 entry is known to hold (a new root on an old root's L3), to
    /// be written unless it is the new one, or [`NOT_HELD`].
    fn set_root_slot<H: Host>(
        &mut self,
        host: &mut H,
        r: usize,
        slot: usize,
        entry: u64,
        held: u64,
    ) -> Result<(), ShadowError> {
        let same = held == NOT_HELD && {
            let root = &self.roots[r];
            root.pdpte[slot] == entry && (entry & PRESENT == 0) == (root.slots[slot] == 0)
        };
        if same {
            return Ok(());
        }
        self.forget_fault_path();
        let root = self.roots[r];
        let kind = if slot == 3 { Kind::Top } else { Kind::L2 };
        let new = if entry & PRESENT != 0 {
            Some(self.acquire_l2(host, frame_of(entry), kind)?)
        } else {
            None
        };
        let old = (root.slots[slot] as usize).checked_sub(1);
        // The directory's tables come to be reached by a pinned root.
        self.settle_linked(host);
        self.roots[r].slots[slot] = new.map_or(0, |i| i as u16 + 1);
        self.roots[r].pdpte[slot] = entry;
        if slot < 3 {
            let value = new.map_or(0, |i| (u64::from(self.tables[i].mfn) << 12) | PRESENT);
            if held == value {
                // The old root's L3 holds it already.
            } else {
                Self::push_write(
                    host,
                    root.l3,
                    slot,
                    value,
                    Self::root_tag(root.cr3, What::Pdpte, slot, entry),
                );
            }
        } else if new != old {
            // Slot 3 of a pinned L3 cannot change (Xen): the root keeps its
            // top L2 and takes the new directory's entries into it.
            let kfn = frame_of(entry);
            for index in 0..TOP_KERNEL_SLOTS {
                let before = old.map_or(0, |t| self.mirror(t)[index]);
                let after = new.map_or(0, |t| self.mirror(t)[index]);
                if before & CODE_RECORD != 0 || after & CODE_RECORD != 0 {
                    let tag = Tag {
                        what: What::TopEntry,
                        kfn,
                        index: index as u16,
                        guest: entry,
                    };
                    Self::push_write(host, root.top, index, self.code_value(after), tag);
                }
            }
        }
        if let Some(old) = old {
            self.unlink(host, old);
        }
        Ok(())
    }

    fn free_root<H: Host>(&mut self, host: &mut H, r: usize) {
        self.forget_fault_path();
        let root = self.roots[r];
        host.push(
            Op::Mmuext(MmuextOp::unpin_table(Mfn(root.l3))),
            Self::root_tag(root.cr3, What::Unpin, 0, 0),
        );
        // Unpinned, the L3 has no type left (the ROM never drops the loaded
        // root), nor its top L2, which only the L3 linked.
        self.keep_root_frames(host, &root);
        self.roots[r] = Root::default();
        self.live_roots &= !(1 << r);
        if self.current as usize == r + 1 {
            self.current = 0;
        }
        for slot in root.slots {
            if let Some(i) = (slot as usize).checked_sub(1) {
                self.unlink(host, i);
            }
        }
    }

    /// A freed root's L3 and top L2 are kept as they are for the next roots
    /// while there is room ([`SPARE_ROOT_FRAMES`]), else cleared and kept
    /// or given back; the L3 with its four entries as `set_root_slot` and
    /// the build wrote them (its directories' records are still linked).
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn keep_root_frames<H: Host>(&mut self, host: &mut H, root: &Root) {
        let clear = Self::root_tag(root.cr3, What::Clear, 0, 0);
        let mut linked = [root.top; 4];
        for (slot, mfn) in linked.iter_mut().enumerate().take(3) {
            *mfn = match (root.slots[slot] as usize).checked_sub(1) {
                Some(i) => self.tables[i % MAX_TABLES].mfn,
                None => 0,
            };
        }
        if (self.spares.len as usize) < SPARE_ROOT_FRAMES {
            let k = self.spares.first.wrapping_add(self.spares.len) as usize % SPARE_ROOT_FRAMES;
            self.spares.l3s[k] = root.l3;
            self.spares.tops[k] = root.top;
            self.spares.linked[k] = linked;
            self.spares.top_as[k] = (u32::from(root.slots[3]), self.top_epoch);
            self.spares.len += 1;
        } else {
            self.release_frame(host, root.l3, clear);
            self.release_frame(host, root.top, clear);
        }
    }

    /// Paging goes off, or the caller is about to drop everything: no root
    /// is in use any more (the caller has loaded another base).
    pub fn leave_root(&mut self) {
        self.current = 0;
    }

    /// Drops every shadow (the caller has left them all: paging off, or
    /// the boot space loaded). Before activation, a flush drops what the
    /// kernel may have changed natively; this is the simple exact way.
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn drop_all<H: Host>(&mut self, host: &mut H) {
        self.current = 0;
        self.forget_fault_path();
        for r in 0..MAX_ROOTS {
            if self.roots[r].l3 != 0 {
                self.free_root(host, r);
            }
        }
        for i in 0..MAX_TABLES {
            let t = &mut self.tables[i];
            if t.kind != Kind::Free {
                // Announced or not, nothing links it any more.
                t.flags |= RELEASED;
                if t.refs == 0 {
                    self.free_record(host, i);
                }
            }
        }
    }

    // -----------------------------------------------------------------
    // Walks and faults

    /// The kernel's tables walked for `va` in the current root (PDPT
    /// entries as loaded, directories and tables as they are now).
    pub fn walk<H: Host>(&self, host: &mut H, va: u32) -> Option<Walk> {
        self.walk_inline(host, va)
    }

    /// `walk`, inlined into `fault` (every page fault walks: no call, no
    /// walk copied out through memory).
    #[inline(always)]
    fn walk_inline<H: Host>(&self, host: &mut H, va: u32) -> Option<Walk> {
        let r = self.current_root()?;
        let mut w = Walk {
            pdpte: self.roots[r].pdpte[(va >> 30) as usize],
            ..Walk::default()
        };
        if w.pdpte & PRESENT == 0 {
            return Some(w);
        }
        w.l2_kfn = frame_of(w.pdpte);
        w.pde_index = ((va >> 21) & 511) as u16;
        w.pde = host.guest_entry(w.l2_kfn, w.pde_index.into());
        if w.pde & PRESENT == 0 || w.pde & PAT_OR_PSE != 0 {
            return Some(w);
        }
        w.l1_kfn = frame_of(w.pde);
        w.pte_index = ((va >> 12) & 511) as u16;
        w.pte = host.guest_entry(w.l1_kfn, w.pte_index.into());
        Some(w)
    }

    /// A page fault at `va` for `access`, with paging on. `wp`: the
    /// kernel's CR0.WP. Sets A (and D) in the kernel's entries as the
    /// processor would and brings the shadow entry up to date when the
    /// kernel's tables allow the access.
    pub fn fault<H: Host>(
        &mut self,
        host: &mut H,
        va: u32,
        access: Access,
        wp: bool,
    ) -> Result<Fault, ShadowError> {
        self.fault_mapped = false;
        let Some(r) = self.current_root() else {
            return Ok(Fault::Kernel);
        };
        let Some(w) = self.walk_inline(host, va) else {
            return Ok(Fault::Kernel);
        };
        self.fault_mapped = w.frame(va).is_some();
        let slot = (va >> 30) as usize;
        let index2 = usize::from(w.pde_index);
        if w.pdpte & PRESENT == 0 || (slot == 3 && index2 >= TOP_KERNEL_SLOTS) {
            return Ok(Fault::Kernel);
        }
        let Some(l2) = (self.roots[r].slots[slot] as usize).checked_sub(1) else {
            return Ok(Fault::Kernel);
        };
        // The directory entry as the shadow has it: a change the kernel did
        // not announce is taken now.
        let dir_repaired = !self.directory_current(host, self.mirror(l2)[index2], w.pde);
        if dir_repaired {
            self.link(host, l2, index2, w.pde)?;
            self.note_repair(host, va, w.l2_kfn, w.pde_index, w.pde);
        }
        if w.pde & PRESENT == 0 || w.pde & PAT_OR_PSE != 0 || w.pte & PRESENT == 0 {
            return Ok(Fault::Kernel);
        }
        let Some(l1) = ((self.mirror(l2)[index2] & CODE_RECORD) as usize).checked_sub(1) else {
            return Ok(Fault::Kernel);
        };
        let rights = w.pde & w.pte;
        let frame = u64::from(frame_of(w.pte));
        let not_ram = host.machine_frame(frame).is_none();
        let reserved = shadow(w.pte, Level::L1, |_| Some(0)).is_err();
        let denied = (access.user && rights & USER == 0)
            || (access.fetch && (w.pde | w.pte) & NX != 0)
            || (access.write && (access.user || wp) && rights & RW == 0)
            || (access.write && (not_ram || host.read_only_frame(frame)))
            || reserved;
        if denied {
            return Ok(Fault::Kernel);
        }
        // Allowed: what the processor sets on the way.
        if w.pde & ACCESSED == 0 {
            host.set_guest_bits(w.l2_kfn, index2, ACCESSED);
        }
        let bits = ACCESSED | if access.write { DIRTY } else { 0 };
        let pte = w.pte | bits;
        let index1 = usize::from(w.pte_index);
        if pte != w.pte {
            host.set_guest_bits(w.l1_kfn, index1, bits & !w.pte);
        }
        let missing_a = w.pte & ACCESSED == 0;
        let missing_d = access.write && w.pte & DIRTY == 0;
        if missing_a {
            self.stats.accessed_faults += 1;
        }
        if missing_d {
            self.stats.dirty_faults += 1;
        }
        let value = self.l1_value(host, w.l1_kfn, index1, pte, false);
        self.write_l1(host, l1, index1, pte);
        if access.write && rights & RW == 0 {
            // A supervisor write to a read-only page with CR0.WP clear.
            return Ok(Fault::WriteProtectOff {
                l1_mfn: self.tables[l1].mfn,
                index: index1 as u16,
                value,
            });
        }
        if !missing_a && !missing_d && !dir_repaired {
            // Xen passes on only faults the shadow denies (a spurious one
            // it resolves itself): with A and D already in the kernel's
            // entry and the directory right, the shadow entry was stale.
            self.note_repair(host, va, w.l1_kfn, w.pte_index, pte);
        }
        Ok(Fault::Fixed)
    }

    /// The quick answer to a page fault that is the kernel's, for the
    /// ROM's #PF path: `Some(mapped)` when [`fault`](Self::fault) would
    /// answer `Fault::Kernel` and change nothing (no repair, no A or D bit,
    /// nothing queued), with `mapped` the error code's P bit (what
    /// [`last_fault_mapped`](Self::last_fault_mapped) says after `fault`);
    /// None when only `fault` can tell. It answers the two usual
    /// kernel faults, in a directory entry the shadow mirrors as it is
    /// (`directory_named`): the leaf entry not present (a page not mapped
    /// yet), or its rights denying the access (a user access to a
    /// supervisor page; a write to a read-only page from user mode or with
    /// CR0.WP set). Everything else (no shadowed directory, the ROM's slots,
    /// a large page, an unannounced change, A/D tracking, a frame that is
    /// not the kernel's RAM, the CR0.WP-clear write) is `fault`'s.
    #[inline(always)]
    pub fn kernels_fault<H: Host>(
        &mut self,
        host: &mut H,
        va: u32,
        access: Access,
        wp: bool,
    ) -> Option<bool> {
        let r = self.current_root()?;
        let index2 = ((va >> 21) & 511) as usize;
        let fp = self.fault_path;
        // Under the directory entry of the last fault (a process touching
        // page after page), nothing the answer depends on has changed since
        // (`FaultPath`) but the kernel's entry, read again and compared.
        let same_dir = fp.current == self.current && fp.dir == va >> 21;
        let l2_kfn = if same_dir {
            fp.l2_kfn
        } else {
            let slot = (va >> 30) as usize;
            let pdpte = self.roots[r].pdpte[slot];
            if pdpte & PRESENT == 0 || (slot == 3 && index2 >= TOP_KERNEL_SLOTS) {
                return None;
            }
            frame_of(pdpte)
        };
        // `walk`'s reads, in its order.
        let pde = host.fault_entry(l2_kfn, index2, &mut self.fault_path.l2_hint);
        let remembered = same_dir && pde == fp.pde;
        if !remembered && !self.fault_directory(host, r, va, l2_kfn, pde) {
            return None;
        }
        let index1 = ((va >> 12) & 511) as usize;
        let pte = host.fault_entry(frame_of(pde), index1, &mut self.fault_path.l1_hint);
        let mapped = pte & PRESENT != 0;
        if mapped {
            let rights = pde & pte;
            let denied = (access.user && rights & USER == 0)
                || (access.write && (access.user || wp) && rights & RW == 0);
            if !denied {
                return None;
            }
        }
        self.fault_va = Some(va);
        Some(mapped)
    }

    /// The ROM's #PF one-step path (traps.rs, `vmi_page_fault_quick`, in
    /// assembly), step for step, for the tests: [`kernels_fault`]'s answer
    /// for a fault at `va` with #PF error code `error_code` and CR0.WP set
    /// (the path declines when it is clear), when `va` is under the
    /// remembered directory entry ([`FaultPath`]: `dir` matches, which says
    /// something is remembered, and `current` is the loaded root's) and
    /// the kernel's entry there still reads as remembered. The leaf entry
    /// not present: the kernel's, P clear. Present: denied when a right the
    /// access needs is missing from the directory and leaf entries
    /// together, that is when `error_code & (RW | USER)` (W and U.S sit at
    /// RW's and USER's bits) has a bit `pde & pte` lacks: a write needs RW
    /// (CR0.WP set), a user access USER; then the kernel's, P set. None:
    /// the path declines, and the general path (`kernels_fault`, then
    /// `fault`) decides. Reads only; the assembly then leaves what
    /// `kernels_fault` leaves (`fault_va`).
    ///
    /// [`kernels_fault`]: Self::kernels_fault
    #[doc(hidden)]
    pub fn quick_kernels_fault<H: Host>(
        &self,
        host: &mut H,
        va: u32,
        error_code: u32,
    ) -> Option<bool> {
        let fp = &self.fault_path;
        if fp.dir != va >> 21 || fp.current != self.current {
            return None;
        }
        let pde = host.guest_entry(fp.l2_kfn, usize::from(fp.pde_offset / 8));
        if pde != fp.pde {
            return None;
        }
        // The assembly reads the low words only: P, RW and USER are there.
        let pte = host.guest_entry(fp.l1_kfn, ((va >> 12) & 511) as usize) as u32;
        if pte & PRESENT as u32 == 0 {
            return Some(false);
        }
        let missing = error_code & (RW | USER) as u32 & !(pde as u32 & pte);
        (missing != 0).then_some(true)
    }

    /// Whether a fault at `va` is under the remembered directory entry
    /// of the loaded root ([`FaultPath`]), for the tests.
    #[doc(hidden)]
    pub fn fault_path_remembers(&self, va: u32) -> bool {
        let fp = &self.fault_path;
        fp.current != 0 && fp.current == self.current && fp.dir == va >> 21
    }

    /// Whether the shadow has directory entry `pde` (of `va` in root `r`,
    /// the PDPT slot's entry present and the kernel's, at frame `l2_kfn`)
    /// as it is, for `kernels_fault` (`directory_named`: present, a table
    /// with its record, unchanged); if so it is remembered for the next
    /// fault (`FaultPath`). False for everything else (no shadowed
    /// directory, a large page, an unannounced change). Out of line: the
    /// first fault under a directory entry comes here, the next ones find
    /// it remembered.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn fault_directory<H: Host>(
        &mut self,
        host: &mut H,
        r: usize,
        va: u32,
        l2_kfn: u32,
        pde: u64,
    ) -> bool {
        let Some(l2) = (self.roots[r].slots[(va >> 30) as usize] as usize).checked_sub(1) else {
            return false;
        };
        let code = self.mirror(l2)[((va >> 21) & 511) as usize];
        if !self.directory_named(host, code, pde) {
            return false;
        }
        let l1 = code & CODE_RECORD;
        let l1_kfn = frame_of(pde);
        let records = self.records_of(l1_kfn);
        let only_l1 = records.l2 == 0 && records.top == 0;
        let update_kfn = if only_l1
            && self.tables[usize::from(l1 - 1) % MAX_TABLES].mirror == 0
            && !host.read_only_frame(u64::from(l1_kfn))
        {
            l1_kfn
        } else {
            FaultPath::NO_UPDATE
        };
        self.fault_path = FaultPath {
            current: r as u16 + 1,
            l2_hint: self.fault_path.l2_hint,
            l1_hint: self.fault_path.l1_hint,
            l1,
            only_l1,
            dir: va >> 21,
            pde_offset: (((va >> 21) & 511) * 8) as u16,
            l2_kfn,
            l1_kfn,
            pde,
            l2_tag: l2_kfn.wrapping_add(1),
            l1_tag: l1_kfn.wrapping_add(1),
            update_kfn,
        };
        true
    }

    /// For the property tests: whether the remembered directory entry
    /// (`FaultPath`), if it is for the loaded root, still says what
    /// looking it up again says: the PDPT slot's entry and record, the
    /// mirror code naming the L1 record, that record the entry's table
    /// (`directory_named` of the entry as remembered), the table's frame
    /// and its other records. True when nothing is remembered for the
    /// loaded root.
    #[doc(hidden)]
    pub fn fault_path_holds<H: Host>(&self, host: &mut H) -> bool {
        let fp = self.fault_path;
        // Forgotten: the directory is no address's (`NO_DIR`). Remembered:
        // a root's (the #PF one-step path compares `dir` alone for both).
        if fp.dir == FaultPath::NO_DIR {
            return true;
        }
        if fp.current == 0 {
            return false;
        }
        if fp.current != self.current {
            return true;
        }
        let r = usize::from(fp.current) - 1;
        let (slot, index2) = ((fp.dir >> 9) as usize, (fp.dir & 511) as usize);
        let pdpte = self.roots[r].pdpte[slot];
        let Some(l2) = (self.roots[r].slots[slot] as usize).checked_sub(1) else {
            return false;
        };
        let code = self.mirror(l2)[index2];
        let records = self.records_of(fp.l1_kfn);
        pdpte & PRESENT != 0
            && !(slot == 3 && index2 >= TOP_KERNEL_SLOTS)
            && frame_of(pdpte) == fp.l2_kfn
            && code & CODE_RECORD == fp.l1
            && self.directory_named(host, code, fp.pde)
            && frame_of(fp.pde) == fp.l1_kfn
            && u32::from(fp.pde_offset) == (fp.dir & 511) * 8
            && records.l1 == fp.l1
            && fp.only_l1 == (records.l2 == 0 && records.top == 0)
            && fp.l2_tag == fp.l2_kfn.wrapping_add(1)
            && fp.l1_tag == fp.l1_kfn.wrapping_add(1)
            && (fp.update_kfn == FaultPath::NO_UPDATE
                || (fp.update_kfn == fp.l1_kfn
                    && fp.only_l1
                    && self.tables[usize::from(fp.l1 - 1) % MAX_TABLES].mirror == 0
                    && !host.read_only_frame(u64::from(fp.l1_kfn))))
    }

    /// Forgets the directory entry the last fault found ([`FaultPath`]):
    /// something it depended on changes.
    #[inline(always)]
    fn forget_fault_path(&mut self) {
        // No address's directory: every use of the entry compares `dir`
        // (one store on the paths that forget it, fork's among them).
        self.fault_path.dir = FaultPath::NO_DIR;
    }

    /// The kernel's entry `index` of frame `kfn` changed to `entry`, and it
    /// is the one that maps the address of the last fault
    /// [`kernels_fault`](Self::kernels_fault) answered, in a directory entry
    /// remembered since (`FaultPath`: the loaded root's, nothing changed
    /// since), in a frame that is a page table only (its one record that
    /// L1): what [`entry_changed`](Self::entry_changed) does for it except
    /// queueing the shadow write, which is returned with that address
    /// instead (the address is then taken, as
    /// [`take_fault_va`](Self::take_fault_va) takes it). Exactly the write
    /// `entry_changed` would queue, and its entry the one
    /// [`loaded_entry_maddr`](Self::loaded_entry_maddr) names for the
    /// address; `entry_changed` would answer true (the L1 is linked from
    /// the loaded root). None, with nothing changed: ask `entry_changed`.
    #[inline(always)]
    pub fn fault_entry_changed<H: Host>(
        &mut self,
        host: &mut H,
        kfn: u32,
        index: usize,
        entry: u64,
    ) -> Option<MappedWrite> {
        let target = self.fault_entry(kfn, index)?;
        Some(self.fault_entry_write(host, target, entry))
    }

    /// The first half of [`fault_entry_changed`](Self::fault_entry_changed),
    /// which reads nothing of the kernel's: whether entry `index` of kernel
    /// frame `kfn` is the one that maps the last quick fault's address in
    /// its remembered directory entry, a page table only. It can be asked
    /// before the kernel's entry is stored or read (SetPxELong and
    /// UpdatePxELong then decline any other update at once); None, with
    /// nothing changed: not that entry.
    #[inline(always)]
    pub fn fault_entry(&self, kfn: u32, index: usize) -> Option<FaultEntry> {
        let va = self.fault_va?;
        let fp = self.fault_path;
        // The directory entry and the index in one compare: `dir` is the
        // address >> 21, so (dir << 9) | index is the address >> 12 for an
        // index below 512 (tested).
        let page = (fp.dir << 9) | index as u32;
        if fp.current == 0
            || fp.current != self.current
            || fp.l1_kfn != kfn
            || !fp.only_l1
            || index >= ENTRIES
            || va >> 12 != page
        {
            return None;
        }
        Some(FaultEntry {
            va,
            l1: fp.l1,
            index: index as u16,
        })
    }

    /// The ROM's SetPxELong and UpdatePxELong paths in assembly (entry.rs,
    /// `vmi_entry_set_pxe_long`, `vmi_entry_update_pxe_long`: SetPxELong's
    /// stores the new entry through the view slot once these tests pass,
    /// before the shared write), step for step, for the tests: the
    /// entry at byte offset `offset` (the address's low 12 bits) of kernel
    /// frame `kfn` is the one [`fault_entry`](Self::fault_entry) names,
    /// in a table the assembly may write itself (`FaultPath::update_kfn`:
    /// no other record, no known frame, not read-only). A fault's address
    /// is kept, `kfn` is the path's `update_kfn`, the path is the loaded
    /// root's (`current`; a forgotten path's `dir` matches no address),
    /// under the fault's directory entry, and `offset` is 8-aligned and
    /// the fault's entry's. Some is always `fault_entry`'s answer (the
    /// tests hold it to that); None: the Rust path decides.
    #[doc(hidden)]
    pub fn quick_fault_entry(&self, kfn: u32, offset: u32) -> Option<FaultEntry> {
        let va = self.fault_va?;
        let fp = &self.fault_path;
        if fp.update_kfn != kfn
            || fp.current != self.current
            || va >> 21 != fp.dir
            || (va >> 9) & 0xFF8 != offset & 0xFFF
        {
            return None;
        }
        Some(FaultEntry {
            va,
            l1: fp.l1,
            index: ((offset & 0xFFF) >> 3) as u16,
        })
    }

    /// For the tests: whether the table of entry `target` has no known
    /// frame (`mirror` 0), whose writes the Rust path alone keeps listed.
    #[doc(hidden)]
    pub fn quick_update_table_unlisted(&self, target: FaultEntry) -> bool {
        self.tables[usize::from(target.l1 - 1) % MAX_TABLES].mirror == 0
    }

    /// The second half of [`fault_entry_changed`](Self::fault_entry_changed):
    /// the entry [`fault_entry`](Self::fault_entry) named is now `entry`
    /// (nothing of the cache changed in between): its eager bits, its
    /// shadow write, and the fault's address taken.
    #[inline(always)]
    pub fn fault_entry_write<H: Host>(
        &mut self,
        host: &mut H,
        target: FaultEntry,
        entry: u64,
    ) -> MappedWrite {
        self.fault_va = None;
        let l1 = usize::from(target.l1 - 1);
        let index = usize::from(target.index);
        let kfn = self.tables[l1 % MAX_TABLES].kfn;
        self.follow_no_more_at_fault(host, l1, kfn);
        let (mfn, value, tag) = self.l1_write::<H, true>(host, l1, index, entry);
        MappedWrite {
            va: target.va,
            entry_maddr: entry_maddr(mfn, index),
            value,
            tag,
        }
    }

    /// A fault's one-step update of L1 record `l1`'s table: if its frame
    /// is followed ([`KnownFrame`]), it is followed no more
    /// (`give_up_known`). Following pays when a table is built while no
    /// pinned root reaches it and freed soon after (a fork's child: its
    /// frame is kept as it is, no clear, and the next child's writes of the
    /// same values are left out), but a table the kernel fills by faults
    /// is one the loaded root reaches, where no write is ever left out:
    /// there each update paid the list's upkeep (about 100 instructions,
    /// page_fault's table of up to 32 pages) for one clear saved when the
    /// table goes, and kept UpdatePxELong's path in assembly away. The
    /// fault was under the loaded root, so the table has no stale entry and
    /// nothing is queued. The table (kernel frame `kfn`, the path's L1
    /// with no other record: `fault_entry`) then has no known frame, so
    /// unless it is read-only the next updates of its entries may take
    /// UpdatePxELong's path in assembly (`FaultPath::update_kfn`).
    #[inline(always)]
    fn follow_no_more_at_fault<H: Host>(&mut self, host: &mut H, l1: usize, kfn: u32) {
        if let Some(k) = (self.tables[l1 % MAX_TABLES].mirror as usize).checked_sub(1) {
            self.give_up_known(host, k);
        }
        if !host.read_only_frame(u64::from(kfn)) {
            self.fault_path.update_kfn = kfn;
        }
    }

    /// [`fault_entry_write`](Self::fault_entry_write) of an entry with
    /// nothing for the ROM to add (no eager bits) whose shadow value
    /// `value` the caller has worked out as `write_l1` would
    /// (`shadow_entry::l1_value_settled`), `kfn` the frame `target` was
    /// found for: the same write, with nothing of the kernel's touched and
    /// the value not computed again.
    #[inline(always)]
    pub fn fault_entry_write_settled<H: Host>(
        &mut self,
        host: &mut H,
        target: FaultEntry,
        kfn: u32,
        entry: u64,
        value: u64,
    ) -> MappedWrite {
        self.fault_va = None;
        let l1 = usize::from(target.l1 - 1);
        self.follow_no_more_at_fault(host, l1, kfn);
        self.fault_path_write_settled(target.va, kfn, target.index, entry, value)
    }

    /// What [`fault_entry_write_settled`](Self::fault_entry_write_settled)
    /// answers for entry `index` of the remembered fault path's L1 table
    /// (kernel frame `kfn`), the fault's address `va`, once
    /// [`fault_entry`](Self::fault_entry) has named it, without taking the
    /// fault's address: for the ROM's SetPxELong and UpdatePxELong paths in assembly, which
    /// does the write itself and needs this only to report Xen's refusal.
    #[inline(always)]
    pub fn fault_path_write_settled(
        &self,
        va: u32,
        kfn: u32,
        index: u16,
        entry: u64,
        value: u64,
    ) -> MappedWrite {
        debug_assert_eq!(eager_bits(entry), 0);
        let target = FaultEntry {
            va,
            l1: self.fault_path.l1,
            index,
        };
        let index = usize::from(target.index);
        // The table's frame is the entry's (`FaultPath`: the L1 record is
        // the frame's), which the caller has: only the shadow is read.
        let mfn = self.tables[usize::from(target.l1 - 1) % MAX_TABLES].mfn;
        debug_assert_eq!(
            self.tables[usize::from(target.l1 - 1) % MAX_TABLES].kfn,
            kfn
        );
        MappedWrite {
            va: target.va,
            entry_maddr: entry_maddr(mfn, index),
            value,
            tag: Tag {
                what: What::L1Entry,
                kfn,
                index: target.index,
                guest: entry,
            },
        }
    }

    /// Where the address of the last quick fault is kept (a byte offset in
    /// the cache), for a reader in assembly: its first 32-bit word is 0
    /// exactly when there is none (checked below). The ROM's SetPxELong
    /// and UpdatePxELong entries try the one-step update only when there
    /// is one ([`fault_entry`](Self::fault_entry) needs it).
    pub const FAULT_VA_OFFSET: usize = core::mem::offset_of!(Self, fault_va);

    /// The address of the last fault [`kernels_fault`](Self::kernels_fault)
    /// answered, once.
    #[inline(always)]
    pub fn take_fault_va(&mut self) -> Option<u32> {
        self.fault_va.take()
    }

    /// The machine address of the shadow L1 entry that maps `va` in the
    /// loaded root, as the mirrors say the shadow directories link it:
    /// with nothing queued, that is the entry Xen's own walk of the loaded
    /// tables finds for `va` (what `update_va_mapping` writes). None when
    /// the path ends earlier (no root, a PDPT slot or directory entry
    /// without a linked L1, the ROM's own slots).
    #[inline(always)]
    pub fn loaded_entry_maddr(&self, va: u32) -> Option<u64> {
        let r = self.current_root()?;
        let slot = (va >> 30) as usize;
        let index2 = ((va >> 21) & 511) as usize;
        if slot == 3 && index2 >= TOP_KERNEL_SLOTS {
            return None;
        }
        let root = &self.roots[r];
        if root.pdpte[slot] & PRESENT == 0 {
            return None;
        }
        let l2 = (root.slots[slot] as usize).checked_sub(1)?;
        // A linked code stands for a present entry naming the record's
        // shadow frame (`code_value`).
        let l1 = ((self.mirror(l2)[index2] & CODE_RECORD) as usize).checked_sub(1)?;
        let t = &self.tables[l1];
        if t.kind != Kind::L1 {
            return None;
        }
        Some((u64::from(t.mfn) << 12) | (u64::from((va >> 12) & 511) << 3))
    }

    /// Whether the kernel's tables, as the last [`fault`](Self::fault)
    /// walked them, map its address to a present page (the P bit of the
    /// error code the kernel must see when the fault is its own).
    pub fn last_fault_mapped(&self) -> bool {
        self.fault_mapped
    }

    /// Whether mirror code `code` is the one directory entry `pde` should
    /// have now (`expected_code`): every page fault asks, so the usual
    /// answer is found without the hash chain (`directory_named`).
    #[inline(always)]
    fn directory_current<H: Host>(&self, host: &mut H, code: Code, pde: u64) -> bool {
        self.directory_named(host, code, pde) || code == self.expected_code(host, pde)
    }

    /// A sufficient test for `code == expected_code(pde)`: the code names
    /// live L1 record `l1`, that record is the one for the entry's frame (a
    /// frame has at most one record of a kind, so `find` would answer
    /// `l1`), the entry's rights are the code's, and the entry can be
    /// shadowed (present, no large page, no reserved bit 52-62, the
    /// kernel's frame: what `shadow` at L2 asks).
    #[inline(always)]
    fn directory_named<H: Host>(&self, host: &mut H, code: Code, pde: u64) -> bool {
        /// Bits 52-62 of an L2 entry (reserved; `shadow` refuses them).
        const L2_HIGH_RESERVED: u64 = 0x7FF0_0000_0000_0000;
        let Some(l1) = ((code & CODE_RECORD) as usize).checked_sub(1) else {
            return false;
        };
        let t = &self.tables[l1];
        pde & (PRESENT | PAT_OR_PSE | L2_HIGH_RESERVED) == PRESENT
            // The whole frame field: `frame_of` keeps 32 bits, and an
            // entry naming the table's frame plus 2^32 pages is another
            // frame (not the kernel's: `shadow` refuses it).
            && (pde & FRAME) >> 12 == u64::from(t.kfn)
            && t.kind == Kind::L1
            && code == Self::code(pde, Some(l1))
            && host.machine_frame(u64::from(t.kfn)).is_some()
    }

    /// For the property tests: the quick directory test of
    /// [`fault`](Self::fault) against the full one, for `va` in the loaded
    /// root. None when `va` has no shadowed directory entry; else (the
    /// quick test's answer, whether the mirror holds `expected_code`).
    /// The quick test may only say yes when the codes are equal.
    #[doc(hidden)]
    pub fn directory_check<H: Host>(&self, host: &mut H, va: u32) -> Option<(bool, bool)> {
        let r = self.current_root()?;
        let w = self.walk(host, va)?;
        let slot = (va >> 30) as usize;
        let index2 = usize::from(w.pde_index);
        if w.pdpte & PRESENT == 0 || (slot == 3 && index2 >= TOP_KERNEL_SLOTS) {
            return None;
        }
        let l2 = (self.roots[r].slots[slot] as usize).checked_sub(1)?;
        let code = self.mirror(l2)[index2];
        let quick = self.directory_named(host, code, w.pde);
        Some((quick, code == self.expected_code(host, w.pde)))
    }

    /// The mirror code a directory entry should have now.
    fn expected_code<H: Host>(&self, host: &mut H, pde: u64) -> Code {
        if pde & PRESENT == 0 {
            return 0;
        }
        if shadow(pde, Level::L2, |f| host.machine_frame(f)).is_err() {
            return CODE_UNUSABLE;
        }
        match self.find(frame_of(pde), Kind::L1) {
            Some(l1) => Self::code(pde, Some(l1)),
            // A table without a record: never equal to a stored code, so
            // the entry is linked again.
            None => !0,
        }
    }

    fn note_repair<H: Host>(&mut self, host: &mut H, va: u32, kfn: u32, index: u16, entry: u64) {
        self.stats.repaired += 1;
        host.note(Note::Unannounced {
            va,
            kfn,
            index,
            entry,
        });
    }

    /// INVLPG `va` (or InvalPage): what the kernel changed natively for
    /// `va` without telling the ROM is taken into the shadow (the
    /// processor, too, would see it after the INVLPG). Returns whether
    /// anything was repaired. `shadow_entry` reads an entry of a shadow
    /// frame.
    pub fn verify<H: Host>(
        &mut self,
        host: &mut H,
        va: u32,
        mut shadow_entry: impl FnMut(&mut H, u32, usize) -> u64,
    ) -> Result<bool, ShadowError> {
        let Some(r) = self.current_root() else {
            return Ok(false);
        };
        let Some(w) = self.walk(host, va) else {
            return Ok(false);
        };
        let slot = (va >> 30) as usize;
        let index2 = usize::from(w.pde_index);
        if w.pdpte & PRESENT == 0 || (slot == 3 && index2 >= TOP_KERNEL_SLOTS) {
            return Ok(false);
        }
        let Some(l2) = (self.roots[r].slots[slot] as usize).checked_sub(1) else {
            return Ok(false);
        };
        if self.mirror(l2)[index2] != self.expected_code(host, w.pde) {
            self.link(host, l2, index2, w.pde)?;
            self.note_repair(host, va, w.l2_kfn, w.pde_index, w.pde);
            return Ok(true);
        }
        let Some(l1) = ((self.mirror(l2)[index2] & CODE_RECORD) as usize).checked_sub(1) else {
            return Ok(false);
        };
        let index1 = usize::from(w.pte_index);
        let want = self.l1_value(host, w.l1_kfn, index1, w.pte | eager_bits(w.pte), false);
        let mfn = self.tables[l1].mfn;
        let have = shadow_entry(host, mfn, index1);
        // The processor sets A and D in the shadow entry itself.
        if (have ^ want) & !(ACCESSED | DIRTY) == 0 {
            return Ok(false);
        }
        self.write_l1(host, l1, index1, w.pte);
        self.note_repair(host, va, w.l1_kfn, w.pte_index, w.pte);
        Ok(true)
    }
}
