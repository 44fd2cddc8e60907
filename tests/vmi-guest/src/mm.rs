//! Physical frames and PAE page tables, all written through the VMI MMU
//! calls (AllocatePage, SetPxELong, ...), as a Linux VMI kernel writes its
//! page tables through its paravirt ops.
//!
//! Layout of the kernel's address space (PAE: PDPT -> 4 page directories
//! -> page tables of 512 64-bit entries, Intel SDM vol. 3 "PAE Paging"):
//! * 0 .. RAM top (at most 1 GiB): identity map, supervisor only except the
//!   `.user` section's pages;
//! * 0x4000_0000 .. 0x7FFF_FFFF: the cases' test mappings;
//! * 0xC000_0000 .. (at most 256 MiB): an alias of low memory (Linux's
//!   PAGE_OFFSET direct map; announced with SetLinearMapping slot 0);
//! * 0xFED0_0000 and 0xFEE0_0000: the HPET and local APIC pages, 1:1 and
//!   uncached, unless the ROM's `virtual_top` reserves those addresses.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use vmi_abi::flags::{
    PageLevel, PxeUpdateFlags, VMI_LAZY_MMU, VMI_LAZY_NONE, VMI_PAGE_L1_PAE, VMI_PAGE_L2_PAE,
};

use crate::pv;
use crate::sync::Global;

/// Page size.
pub const PAGE_SIZE: u32 = 4096;
/// Present.
pub const PTE_P: u64 = 1 << 0;
/// Writable.
pub const PTE_RW: u64 = 1 << 1;
/// User accessible.
pub const PTE_US: u64 = 1 << 2;
/// Write-through.
pub const PTE_PWT: u64 = 1 << 3;
/// Cache disable.
pub const PTE_PCD: u64 = 1 << 4;
/// Accessed.
pub const PTE_A: u64 = 1 << 5;
/// Dirty.
pub const PTE_D: u64 = 1 << 6;
/// Global.
pub const PTE_G: u64 = 1 << 8;
/// No-execute (with EFER.NXE).
pub const PTE_NX: u64 = 1 << 63;
/// Frame address bits of a PAE entry.
pub const PTE_ADDR: u64 = 0x000F_FFFF_FFFF_F000;

/// Where the alias of low memory starts (Linux's PAGE_OFFSET).
pub const ALIAS_BASE: u32 = 0xC000_0000;
/// Most memory aliased.
pub const ALIAS_MAX: u32 = 256 << 20;
/// Most memory identity mapped (page directory 0).
pub const IDENTITY_MAX: u32 = 1 << 30;
/// First test address (page directory 1).
pub const TEST_BASE: u32 = 0x4000_0000;

/// A PAE address space: the PDPT and its four page directories (frames).
#[derive(Clone, Copy, Debug)]
pub struct AddressSpace {
    /// Physical address of the page-directory-pointer table.
    pub pdpt: u32,
    /// Physical addresses of the four page directories.
    pub pd: [u32; 4],
}

static KERNEL_AS: Global<Option<AddressSpace>> = Global::new(None);
static PAGING: AtomicBool = AtomicBool::new(false);
static NEXT_FRAME: AtomicU32 = AtomicU32::new(0);
static FRAME_LIMIT: AtomicU32 = AtomicU32::new(0);
static MAPPED_TOP: AtomicU32 = AtomicU32::new(0);
static ALIAS_SIZE: AtomicU32 = AtomicU32::new(0);

extern "C" {
    static __image_end: u8;
    static __user_start: u8;
    static __user_end: u8;
}

/// Whether paging is on (the enable case succeeded).
pub fn paging_on() -> bool {
    PAGING.load(Ordering::SeqCst)
}

/// The kernel's address space.
pub fn kernel_space() -> Option<AddressSpace> {
    KERNEL_AS.with(|k| *k)
}

/// Bytes of low memory reachable at [`ALIAS_BASE`].
pub fn alias_size() -> u32 {
    ALIAS_SIZE.load(Ordering::SeqCst)
}

/// A zeroed frame (physical address, identity mapped).
pub fn alloc_frame() -> u32 {
    if NEXT_FRAME.load(Ordering::SeqCst) == 0 {
        let end = &raw const __image_end as u32;
        NEXT_FRAME.store(end.next_multiple_of(PAGE_SIZE), Ordering::SeqCst);
        let top = crate::kmain::boot_info().ram_top.min(IDENTITY_MAX);
        FRAME_LIMIT.store(top & !(PAGE_SIZE - 1), Ordering::SeqCst);
    }
    let frame = NEXT_FRAME.fetch_add(PAGE_SIZE, Ordering::SeqCst);
    assert!(
        frame + PAGE_SIZE <= FRAME_LIMIT.load(Ordering::SeqCst),
        "out of page frames"
    );
    // SAFETY: a fresh frame of RAM above the image, identity mapped (or
    // paging off); nobody else uses it.
    unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE_SIZE as usize) };
    frame
}

/// The entry `index` of the table in frame `table`.
pub fn entry(table: u32, index: u32) -> *mut u64 {
    (table + (index & 511) * 8) as *mut u64
}

/// Reads a page-table entry.
// The pointer is a page-table entry of the kernel's own tables, as the
// VMI call this stands for takes it (its callers' contract, unchanged since
// the module became part of the guest's library).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn read_entry(ptep: *mut u64) -> u64 {
    // SAFETY: callers pass entries of the kernel's own tables (identity
    // mapped frames).
    unsafe { ptep.read_volatile() }
}

/// The flag word of an update to an entry of the current address space
/// that maps `va` (Linux's `vmi_flags_addr`).
pub fn current_as_flags(level: PageLevel, va: u32) -> u32 {
    PxeUpdateFlags::new(level, Some(va), false).0
}

/// As [`current_as_flags`], with VMI_PAGE_DEFER (`vmi_flags_addr_defer`).
pub fn deferred_flags(level: PageLevel, va: u32) -> u32 {
    PxeUpdateFlags::new(level, Some(va), true).0
}

fn pd_index(va: u32) -> u32 {
    (va >> 21) & 511
}

fn pt_index(va: u32) -> u32 {
    (va >> 12) & 511
}

/// The page directory entry that covers `va` in `space`.
pub fn pde_ptr(space: &AddressSpace, va: u32) -> *mut u64 {
    entry(space.pd[(va >> 30) as usize], pd_index(va))
}

/// The PTE of `va` in `space`, if its page table exists.
pub fn pte_ptr_in(space: &AddressSpace, va: u32) -> Option<*mut u64> {
    let pde = read_entry(pde_ptr(space, va));
    (pde & PTE_P != 0).then(|| entry((pde & PTE_ADDR) as u32, pt_index(va)))
}

/// The PTE of `va` in the kernel's space, creating its page table
/// (AllocatePage L1 + the directory entry) if needed.
pub fn pte_ptr(va: u32) -> *mut u64 {
    let space = kernel_space().expect("paging is on");
    if let Some(p) = pte_ptr_in(&space, va) {
        return p;
    }
    let pt = alloc_frame();
    pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
    pv::set_pxe_long(
        u64::from(pt) | PTE_P | PTE_RW | PTE_US,
        pde_ptr(&space, va),
        current_as_flags(PageLevel::Pd, va),
    );
    entry(pt, pt_index(va))
}

/// Maps `va` to `phys` with `flags` in the kernel's space (SetPxELong in
/// the current address space, then InvalPage).
pub fn map(va: u32, phys: u32, flags: u64) {
    let ptep = pte_ptr(va);
    pv::set_pxe_long(
        u64::from(phys) | flags,
        ptep,
        current_as_flags(PageLevel::Pt, va),
    );
    pv::inval_page(va);
}

/// Removes the mapping of `va` (SetPxELong 0, as Linux's `pte_clear`).
pub fn unmap(va: u32) {
    let ptep = pte_ptr(va);
    pv::set_pxe_long(0, ptep, current_as_flags(PageLevel::Pt, va));
    pv::inval_page(va);
}

/// The ordinary flags of a kernel data mapping.
pub const KERNEL_RW: u64 = PTE_P | PTE_RW;

fn user_range() -> (u32, u32) {
    (&raw const __user_start as u32, &raw const __user_end as u32)
}

/// Builds the kernel's page tables through the VMI MMU calls (in lazy MMU
/// mode), announces the alias with SetLinearMapping slot 0, and turns on
/// PAE paging with SetCR4, SetCR3 and SetCR0 (PG | WP). Returns the space.
pub fn enable_paging(global_pages: bool) -> AddressSpace {
    let ram_top = crate::kmain::boot_info().ram_top.min(IDENTITY_MAX);
    let mapped_top = ram_top.next_multiple_of(2 << 20);
    let (user_start, user_end) = user_range();
    pv::set_lazy_mode(VMI_LAZY_MMU);
    let pdpt = alloc_frame();
    let pd = [alloc_frame(), alloc_frame(), alloc_frame(), alloc_frame()];
    for d in pd {
        pv::allocate_page(d >> 12, VMI_PAGE_L2_PAE, 0, 0, 0);
    }
    let alias_top = if pv::va_usable(ALIAS_BASE + ALIAS_MAX - 1) {
        mapped_top.min(ALIAS_MAX)
    } else {
        0
    };
    let mut chunk = 0;
    while chunk < mapped_top {
        let pt = alloc_frame();
        pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
        for i in 0..512u32 {
            let phys = chunk + i * PAGE_SIZE;
            if phys >= ram_top {
                // Past the end of RAM: nothing to map.
                break;
            }
            let user = phys >= user_start && phys < user_end;
            let flags = KERNEL_RW | if user { PTE_US } else { 0 };
            pv::set_pxe_long(u64::from(phys) | flags, entry(pt, i), PageLevel::Pt.bit());
        }
        let pde = u64::from(pt) | PTE_P | PTE_RW | PTE_US;
        pv::set_pxe_long(pde, entry(pd[0], pd_index(chunk)), PageLevel::Pd.bit());
        if chunk < alias_top {
            pv::set_pxe_long(
                pde,
                entry(pd[3], pd_index(ALIAS_BASE + chunk)),
                PageLevel::Pd.bit(),
            );
        }
        chunk += 2 << 20;
    }
    // The local APIC and the HPET, 1:1 and uncached (each in its own 2 MiB
    // region of the last gigabyte).
    let apic = (pv::rdmsr(native_rom::hw::apic::IA32_APIC_BASE) as u32) & !(PAGE_SIZE - 1);
    for mmio in [apic, native_rom::hw::hpet::HPET_BASE] {
        if !pv::va_usable(mmio) || mmio < ALIAS_BASE + ALIAS_MAX {
            continue;
        }
        let pt = alloc_frame();
        pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
        let pte = u64::from(mmio) | KERNEL_RW | PTE_PCD | PTE_PWT;
        pv::set_pxe_long(pte, entry(pt, pt_index(mmio)), PageLevel::Pt.bit());
        pv::set_pxe_long(
            u64::from(pt) | PTE_P | PTE_RW,
            entry(pd[3], pd_index(mmio)),
            PageLevel::Pd.bit(),
        );
    }
    for (k, d) in pd.iter().enumerate() {
        pv::set_pxe_long(
            u64::from(*d) | PTE_P,
            entry(pdpt, k as u32),
            PageLevel::Pdp.bit(),
        );
    }
    pv::set_lazy_mode(VMI_LAZY_NONE);

    let space = AddressSpace { pdpt, pd };
    KERNEL_AS.with(|k| *k = Some(space));
    MAPPED_TOP.store(mapped_top, Ordering::SeqCst);
    let mut cr4 = pv::get_cr4() | native_rom::hw::cpu::CR4_PAE;
    if global_pages {
        cr4 |= native_rom::hw::cpu::CR4_PGE;
    }
    pv::set_cr4(cr4);
    pv::set_cr3(pdpt);
    pv::set_cr0(pv::get_cr0() | native_rom::hw::cpu::CR0_PG | native_rom::hw::cpu::CR0_WP);
    PAGING.store(true, Ordering::SeqCst);
    if alias_top != 0 {
        pv::set_linear_mapping(0, ALIAS_BASE, alias_top / PAGE_SIZE, 0);
        ALIAS_SIZE.store(alias_top, Ordering::SeqCst);
    }
    space
}

/// Identity-mapped bytes.
pub fn mapped_top() -> u32 {
    MAPPED_TOP.load(Ordering::SeqCst)
}

/// The VMI ROM's statistics port: a 32-bit read gives how many hypervisor
/// calls the ROM has made so far. Not PC hardware: with no such ROM
/// nothing decodes the port and the read gives all ones.
pub const ROM_STATS_PORT: u16 = 0x5A0;

/// The ROM's count of hypervisor calls, if it keeps one.
pub fn rom_calls() -> Option<u32> {
    let n = pv::port_in(4, ROM_STATS_PORT);
    (n != u32::MAX).then_some(n)
}

/// Calls the ROM made since `before` (a `rom_calls` reading).
pub fn rom_calls_since(before: Option<u32>) -> Option<u32> {
    Some(rom_calls()?.wrapping_sub(before?))
}

/// A count of ROM calls for a case's detail: the number, or a word saying
/// there are no figures on this platform.
pub struct Calls(pub Option<u32>);

impl core::fmt::Display for Calls {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("-"),
        }
    }
}
