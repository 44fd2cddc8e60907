//! Memory and address spaces, the XenLinux way.
//!
//! * Frames: a pool in the image's .bss (the builder maps all of it), so
//!   a frame's pseudo-physical address is its virtual address; its machine
//!   frame comes from the builder's p2m list (start_info `mfn_list`), and
//!   back through Xen's read-only machine-to-phys table.
//! * Page-table entries hold machine frames.
//! * The kernel's space is the builder's (its L3 pinned by the builder);
//!   the user region is page directory 1 (L3 slot 1).
//! * A new space (`pgd_alloc`): an L3 sharing the kernel's directories 0
//!   and 2, a fresh directory 1, and directory 3 a copy of the kernel's
//!   (a 32-bit PAE guest's slot-3 directory holds Xen's own entries and
//!   may be referenced by one L3 only). Until it is first loaded it is
//!   built with plain writes; loading it pins it (XenLinux's
//!   `xen_pgd_pin`): every table frame remapped read-only and the L3
//!   pinned, queued with the CR3 load itself (`MMUEXT_NEW_BASEPTR`). From
//!   then on its entries change by `mmu_update` (queued in lazy mode) or,
//!   in the loaded space, `update_va_mapping`. Destroying a pinned space
//!   unpins it and makes its frames writable again in one batch
//!   (`xen_pgd_unpin`); its entries are never zapped through Xen.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use bench_core::sync::Global;
use bench_core::user::USER_BASE;
use bench_core::{frames, Frame, Mapped, SpaceId};
use xen_abi::hypercall::Hypervisor;
use xen_abi::p2m::Mfn;
use xen_abi::xen::{MmuextOp, StartInfo, UVMF_INVLPG, UVMF_NONE, UVMF_TLB_FLUSH};

use crate::console::fatal;
use crate::hv;
use crate::platform::PvPlatform;

const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_A: u64 = 1 << 5;
const PTE_D: u64 = 1 << 6;
const PTE_ADDR: u64 = 0x000F_FFFF_FFFF_F000;

/// The lowest start of the hypervisor hole the image accepts (its
/// HV_START_LOW note): a 32-bit PV guest's default. Xen may start the
/// hole higher for a dom0 on a small machine; `init` asks where.
pub const HV_START_LOW: u32 = 0xF580_0000;

/// Frames in the pool (8 MiB).
const POOL_FRAMES: usize = 2048;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static POOL: Global<[Page; POOL_FRAMES]> = Global::new([const { Page([0; 4096]) }; POOL_FRAMES]);
static NEXT_FRAME: AtomicUsize = AtomicUsize::new(0);
static MFN_LIST: AtomicU32 = AtomicU32::new(0);
/// Where Xen maps its read-only machine-to-phys table
/// (`XENMEM_machphys_mapping`): the start of the hypervisor hole.
static M2P: AtomicU32 = AtomicU32::new(HV_START_LOW);

/// A frame of the pool never handed out before (zero: .bss).
pub fn new_frame() -> Frame {
    let i = NEXT_FRAME.fetch_add(1, Ordering::Relaxed);
    if i >= POOL_FRAMES {
        fatal(format_args!(
            "pv-bench-guest: out of frames ({POOL_FRAMES} in the pool)"
        ));
    }
    POOL.as_ptr() as u32 + (i as u32) * 4096
}

/// The machine frame behind a kernel-mapped frame.
pub fn mfn(frame: Frame) -> u32 {
    let list = MFN_LIST.load(Ordering::Relaxed) as *const u32;
    // SAFETY: the builder maps the p2m list (nr_pages entries) for the
    // domain's life; every frame of the image is below nr_pages.
    unsafe { list.add((frame >> 12) as usize).read() }
}

/// The pseudo-physical frame (kernel address) behind a machine frame.
pub fn m2p(mfn: u32) -> Frame {
    // SAFETY: Xen maps its machine-to-phys table read-only at M2P_VA for a
    // 32-bit PAE guest; the frames asked about are this domain's.
    unsafe {
        ((M2P.load(Ordering::Relaxed) as *const u32)
            .add(mfn as usize)
            .read_volatile())
            << 12
    }
}

/// The machine address of `frame` (plus `offset`).
fn maddr(frame: Frame, offset: u32) -> u64 {
    (u64::from(mfn(frame)) << 12) | u64::from(offset)
}

/// The kernel's identity mapping of one of its frames.
fn kernel_pte(frame: Frame, writable: bool) -> u64 {
    maddr(frame, 0) | PTE_P | PTE_A | if writable { PTE_RW | PTE_D } else { 0 }
}

/// User page tables a space can have (2 MiB each, from USER_BASE).
const USER_SLOTS: usize = 32;
/// Spaces at once (the kernel's, 16 processes, fork's and exec's).
const MAX_SPACES: usize = 24;

#[derive(Clone, Copy)]
struct Space {
    used: bool,
    /// The L3 (kernel address).
    l3: Frame,
    /// Directory 1's machine address.
    user_l2_maddr: u64,
    /// Directory 1 (kernel address; 0 for the kernel's space, whose
    /// directories are the builder's).
    user_l2: Frame,
    /// Directory 3 (0 for the kernel's space).
    top_l2: Frame,
    pinned: bool,
    /// The user page tables (kernel addresses, 0: none).
    l1s: [Frame; USER_SLOTS],
}

const NO_SPACE: Space = Space {
    used: false,
    l3: 0,
    user_l2_maddr: 0,
    user_l2: 0,
    top_l2: 0,
    pinned: false,
    l1s: [0; USER_SLOTS],
};

static SPACES: Global<[Space; MAX_SPACES]> = Global::new([NO_SPACE; MAX_SPACES]);
static CURRENT: AtomicU32 = AtomicU32::new(0);

/// The kernel's space.
pub const KERNEL_SPACE: SpaceId = SpaceId(0);

/// Finds the machine-to-phys table and takes over the builder's page
/// tables as the kernel's space.
pub fn init(si: &StartInfo) {
    MFN_LIST.store(si.mfn_list, Ordering::SeqCst);
    match hv::hypervisor().machphys_mapping() {
        Ok(m) => M2P.store(m.v_start, Ordering::SeqCst),
        Err(e) => fatal(format_args!(
            "pv-bench-guest: XENMEM_machphys_mapping failed: {e:?}"
        )),
    }
    let l3 = si.pt_base;
    let l3e = |i: usize| -> u64 {
        // SAFETY: the builder maps its page tables read-only into the
        // initial mapping; pt_base is the L3.
        unsafe { ((l3 + 8 * i as u32) as *const u64).read_volatile() }
    };
    SPACES.with(|s| {
        s[0] = Space {
            used: true,
            l3,
            user_l2_maddr: l3e(1) & PTE_ADDR,
            user_l2: 0,
            top_l2: 0,
            pinned: true,
            l1s: [0; USER_SLOTS],
        };
    });
    if l3e(1) & PTE_P == 0 {
        fatal(format_args!(
            "pv-bench-guest: the builder left L3 slot 1 empty (it fills all four for a 32-bit guest)"
        ));
    }
    map_page_offset_alias(si.nr_pages, m2p(((l3e(3) & PTE_ADDR) >> 12) as u32));
}

/// Where XenLinux (and a Linux VMI kernel) maps low memory: PAGE_OFFSET,
/// in PDPT slot 3.
pub const PAGE_OFFSET: u32 = 0xC000_0000;
/// Most memory mapped there (the VMI guest's limit, `ALIAS_MAX`).
const PAGE_OFFSET_MAX_PAGES: u32 = (256 << 20) / 4096;

/// Maps the domain's memory at [`PAGE_OFFSET`] (read-only, supervisor),
/// through page tables linked into the kernel's PDPT-slot-3 directory
/// (`ktop`, the builder's).
///
/// Why: a XenLinux kernel runs at PAGE_OFFSET with its low memory mapped
/// there, as the VMI guest does (mm.rs `enable_paging`), so every new
/// space's slot-3 directory (a copy, since Xen never shares a 32-bit
/// guest's slot-3 L2) holds one entry per 2 MiB of memory, and every pin
/// validates them (`get_page_from_l2e`) and every unpin drops them. This
/// image runs at its pseudo-physical addresses instead (VIRT_BASE 0), so
/// without this its slot-3 directories would hold none of the kernel's
/// entries and a fork would cost Xen less than it costs XenLinux or the
/// VMI guest. Read-only, so the page-table frames among the pages need
/// no second read-only remap at a pin.
fn map_page_offset_alias(nr_pages: u32, ktop: Frame) {
    let pages = nr_pages.min(PAGE_OFFSET_MAX_PAGES);
    let first_slot = (PAGE_OFFSET >> 21) & 511;
    for (t, first) in (0..pages).step_by(512).enumerate() {
        let table = new_frame();
        for i in first..(first + 512).min(pages) {
            write_entry(table, i - first, kernel_pte(i * 4096, false));
        }
        // A page table must have no writable mapping when Xen types it.
        hv::update_va_mapping(table, kernel_pte(table, false), UVMF_INVLPG);
        let slot = first_slot + t as u32;
        hv::mmu_update(
            maddr(ktop, slot * 8),
            maddr(table, 0) | PTE_P | PTE_RW | PTE_A,
        );
    }
    hv::flush();
    // The alias reads what the identity map reads (a word of this code).
    let probe = (map_page_offset_alias as fn(u32, Frame)) as usize as u32 & !3;
    // SAFETY: `probe` is in the image, mapped at its pseudo-physical
    // address and, below `pages`, at PAGE_OFFSET plus that address.
    let (direct, alias) = unsafe {
        (
            (probe as *const u32).read_volatile(),
            ((PAGE_OFFSET + probe) as *const u32).read_volatile(),
        )
    };
    if direct != alias {
        fatal(format_args!(
            "pv-bench-guest: {:#x} reads {alias:#x} at PAGE_OFFSET, {direct:#x} directly",
            PAGE_OFFSET + probe
        ));
    }
}

/// Makes the pages from `start` to `end` user-accessible in the kernel's
/// identity map (the `.user` section: ring 3's code and data).
pub fn grant_user(start: u32, end: u32) {
    let mut va = start;
    while va < end {
        hv::update_va_mapping(va, kernel_pte(va, true) | PTE_US, UVMF_INVLPG);
        va += 4096;
    }
    hv::flush();
}

/// Reads fields of a space's record in place. (A copy of the record, 152
/// bytes, costs about 150 instructions: more than the guest's part of a
/// page-table update. A XenLinux kernel reaches its `mm` by pointer.)
fn space_field<R>(id: SpaceId, field: impl FnOnce(&Space) -> R) -> R {
    SPACES.with(|s| field(&s[id.0 as usize]))
}

/// The space loaded now.
pub fn current() -> SpaceId {
    SpaceId(CURRENT.load(Ordering::Relaxed))
}

/// The user page-table slot and entry index of `va`.
fn slot_of(va: u32) -> (usize, u32) {
    let slot = (va.wrapping_sub(USER_BASE) >> 21) as usize;
    if va < USER_BASE || slot >= USER_SLOTS {
        fatal(format_args!(
            "pv-bench-guest: {va:#x} is outside the user region this kernel maps"
        ));
    }
    (slot, (va >> 12) & 511)
}

fn user_pte(frame: Frame, writable: bool) -> u64 {
    maddr(frame, 0) | PTE_P | PTE_US | PTE_A | if writable { PTE_RW | PTE_D } else { 0 }
}

/// Reads entry `index` of a page table this kernel built.
fn read_entry(table: Frame, index: u32) -> u64 {
    // SAFETY: page tables are frames of the pool, mapped (read-only once
    // pinned) in the kernel's identity map.
    unsafe { ((table + 8 * index) as *const u64).read_volatile() }
}

/// Writes entry `index` of a page table that is not pinned (a plain page).
fn write_entry(table: Frame, index: u32, value: u64) {
    // SAFETY: an unpinned table is a writable pool frame of this kernel.
    unsafe { ((table + 8 * index) as *mut u64).write_volatile(value) }
}

/// A new address space (built with plain writes until it is loaded).
pub fn create() -> SpaceId {
    let kernel_l3 = space_field(KERNEL_SPACE, |s| s.l3);
    let id = SPACES
        .with(|s| s.iter().position(|x| !x.used))
        .unwrap_or_else(|| {
            fatal(format_args!(
                "pv-bench-guest: more than {MAX_SPACES} spaces"
            ))
        });
    let mut p = PvPlatform;
    let l3 = frames::take_zeroed(&mut p);
    let user_l2 = frames::take_zeroed(&mut p);
    let top_l2 = frames::take_zeroed(&mut p);
    let kl3 = |i: u32| read_entry(kernel_l3, i);
    // Directory 3 is the kernel's, copied whole, as XenLinux's `pgd_alloc`
    // copies the kernel's PMD into a zeroed page with `memcpy`: Xen checks
    // only the guest's slots when it validates the copy and rewrites its
    // own (the slots from the hypervisor hole up).
    copy_page(top_l2, m2p(((kl3(3) & PTE_ADDR) >> 12) as u32));
    write_entry(l3, 0, kl3(0));
    write_entry(l3, 1, maddr(user_l2, 0) | PTE_P);
    write_entry(l3, 2, kl3(2));
    write_entry(l3, 3, maddr(top_l2, 0) | PTE_P);
    SPACES.with(|s| {
        s[id] = Space {
            used: true,
            l3,
            user_l2_maddr: maddr(user_l2, 0),
            user_l2,
            top_l2,
            pinned: false,
            l1s: [0; USER_SLOTS],
        }
    });
    SpaceId(id as u32)
}

/// Copies a page as Linux's i386 `memcpy` does (`rep movsl`): under
/// QEMU's icount one instruction per word moved, where a loop takes
/// several.
fn copy_page(to: Frame, from: Frame) {
    // SAFETY: both are kernel-mapped pool or builder frames, `to` writable
    // and not a page table yet, `from` readable; the direction flag is
    // clear (the calling convention, and every trap entry clears it).
    unsafe {
        // ESI is LLVM's on i686: kept in a scratch register meanwhile.
        core::arch::asm!(
            "mov {saved}, esi",
            "mov esi, {from}",
            "rep movsd",
            "mov esi, {saved}",
            from = in(reg) from,
            saved = out(reg) _,
            inout("ecx") 1024u32 => _,
            inout("edi") to => _,
            options(nostack, preserves_flags),
        );
    }
}

/// The table frames of a space this kernel built.
fn table_frames(s: &Space) -> impl Iterator<Item = Frame> + '_ {
    [s.l3, s.user_l2, s.top_l2]
        .into_iter()
        .chain(s.l1s.iter().copied())
        .filter(|f| *f != 0)
}

/// Queues the remapping of a space's table frames in the kernel's map,
/// read-only for a pin or writable after an unpin, as XenLinux's
/// `xen_pgd_pin` / `xen_pgd_unpin` walk does: one `update_va_mapping` per
/// frame, the L3's last and the only one with a TLB flush.
fn queue_remap_tables(s: &Space, writable: bool) {
    for f in table_frames(s).filter(|f| *f != s.l3) {
        hv::update_va_mapping(f, kernel_pte(f, writable), UVMF_NONE);
    }
    hv::update_va_mapping(s.l3, kernel_pte(s.l3, writable), UVMF_TLB_FLUSH);
}

/// Queues the pin of a space: its tables read-only in the kernel's map,
/// then `MMUEXT_PIN_L3_TABLE` (Xen validates the whole tree).
fn queue_pin(id: SpaceId) {
    let l3 = SPACES.with(|sp| {
        let s = &mut sp[id.0 as usize];
        queue_remap_tables(s, false);
        s.pinned = true;
        s.l3
    });
    hv::mmuext(MmuextOp::pin_l3_table(Mfn(mfn(l3))));
}

/// Loads a space (pinning it first if it never was loaded).
pub fn switch(id: SpaceId) {
    let (l3, pinned) = space_field(id, |s| (s.l3, s.pinned));
    if !pinned {
        queue_pin(id);
    }
    hv::mmuext(MmuextOp::new_baseptr(Mfn(mfn(l3))));
    CURRENT.store(id.0, Ordering::Relaxed);
    hv::commit();
}

/// Frees a space that is not loaded.
pub fn destroy(id: SpaceId, mapped: &[Mapped]) {
    if id == KERNEL_SPACE || id == current() {
        fatal(format_args!(
            "pv-bench-guest: destroy of space {} (kernel or loaded)",
            id.0
        ));
    }
    SPACES.with(|sp| {
        let s = &mut sp[id.0 as usize];
        if s.pinned {
            hv::mmuext(MmuextOp::unpin_table(Mfn(mfn(s.l3))));
            queue_remap_tables(s, true);
        }
        // The frames go back to the pool writable.
        hv::flush();
        // Linux's exit clears the present entries of each VMA (XenLinux
        // after the unpin, with plain stores), as the VMI guest does.
        for range in mapped {
            range.for_each_table(|va, first, count| {
                let l1 = s.l1s[slot_of(va).0];
                if l1 != 0 {
                    frames::clear_present_entries(l1, first, count);
                }
            });
        }
        for f in table_frames(s) {
            frames::give(f);
        }
        *s = NO_SPACE;
    });
}

/// The page table of `va` in space `id`, created (and linked) if needed.
fn page_table(id: SpaceId, va: u32) -> Frame {
    let (slot, _) = slot_of(va);
    let l1 = space_field(id, |s| s.l1s[slot]);
    if l1 != 0 {
        return l1;
    }
    let (pinned, user_l2, user_l2_maddr) =
        space_field(id, |s| (s.pinned, s.user_l2, s.user_l2_maddr));
    let l1 = frames::take_zeroed(&mut PvPlatform);
    let pde = maddr(l1, 0) | PTE_P | PTE_RW | PTE_US | PTE_A;
    let index = (va >> 21) & 511;
    if pinned {
        // A page table joins a pinned tree read-only (Xen validates it as
        // the directory entry is written).
        hv::update_va_mapping(l1, kernel_pte(l1, false), 0);
        hv::mmu_update(user_l2_maddr + 8 * u64::from(index), pde);
    } else {
        write_entry(user_l2, index, pde);
    }
    SPACES.with(|sp| sp[id.0 as usize].l1s[slot] = l1);
    l1
}

/// Sets the entry of `va` in space `id`.
fn set_entry(id: SpaceId, va: u32, l1: Frame, index: u32, pte: u64) {
    if !space_field(id, |s| s.pinned) {
        write_entry(l1, index, pte);
        return;
    }
    if id == current() && !hv::lazy() {
        // The loaded space: Linux's set_pte_at for the current mm.
        hv::update_va_mapping(va, pte, 0);
    } else {
        hv::mmu_update(maddr(l1, 8 * index), pte);
    }
    hv::commit();
}

/// Maps `va` to `frame` in space `id`.
pub fn map(id: SpaceId, va: u32, frame: Frame, writable: bool) {
    let l1 = page_table(id, va);
    let (_, index) = slot_of(va);
    set_entry(id, va, l1, index, user_pte(frame, writable));
}

/// Clears the entry of `va` in space `id`.
pub fn unmap(id: SpaceId, va: u32) {
    let (slot, index) = slot_of(va);
    let l1 = space_field(id, |s| s.l1s[slot]);
    if l1 != 0 {
        set_entry(id, va, l1, index, 0);
    }
}

/// The entry of `va` in space `id`, as Xen holds it (queued updates
/// applied first).
fn entry_of(id: SpaceId, va: u32) -> Option<(Frame, u32, u64)> {
    if hv::lazy() {
        hv::flush();
    }
    let (slot, index) = slot_of(va);
    let l1 = space_field(id, |s| s.l1s[slot]);
    (l1 != 0).then(|| (l1, index, read_entry(l1, index)))
}

/// Changes the access of the present mapping of `va`.
pub fn protect(id: SpaceId, va: u32, writable: bool) {
    let Some((l1, index, pte)) = entry_of(id, va) else {
        return;
    };
    if pte & PTE_P == 0 {
        return;
    }
    let new = if writable {
        pte | PTE_RW | PTE_D
    } else {
        pte & !PTE_RW
    };
    set_entry(id, va, l1, index, new);
}

/// The present mapping of `va`: (frame, writable).
pub fn lookup(id: SpaceId, va: u32) -> Option<(Frame, bool)> {
    let (_, _, pte) = entry_of(id, va)?;
    (pte & PTE_P != 0).then(|| (m2p(((pte & PTE_ADDR) >> 12) as u32), pte & PTE_RW != 0))
}
