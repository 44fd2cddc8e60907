//! The benchmarks' platform on this kernel: every operation through the
//! paravirt ops of [`crate::pv`] (a VMI call, or the native instruction
//! without a ROM), with the page-table work a Linux VMI kernel does for
//! the same job (AllocatePage / ReleasePage, CLONE for the kernel's part,
//! SetPxELong with the current-address-space hint, lazy modes).

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bench_core::{frames, Frame, Lazy, Mapped, Platform, SpaceId, UserExit, UserFrame, UserState};
use vmi_abi::flags::{
    PageLevel, VMI_FLUSH_TLB, VMI_LAZY_CPU, VMI_LAZY_MMU, VMI_LAZY_NONE, VMI_PAGE_CLONE,
    VMI_PAGE_CURRENT_AS, VMI_PAGE_DEFER, VMI_PAGE_L1_PAE, VMI_PAGE_L2_PAE, VMI_PAGE_VA_MASK,
};
use vmi_abi::time::{AlarmFlags, AlarmWiring, CycleCounter};

use crate::desc::{USER_CS, USER_DS};
use crate::mm::{self, PTE_A, PTE_ADDR, PTE_D, PTE_P, PTE_RW, PTE_US};
use crate::trap::{self, TrapFrame, VECTOR_APIC_TIMER};
use crate::{kmain, pv, user};
use bench_core::user::{USER_BASE, USER_END};
use native_rom::hw::apic;

/// The hypercall count port a hypervisor's ROM may decode (32-bit read;
/// all ones where nothing answers).
const HYPERCALL_COUNT_PORT: u16 = 0x5A0;

/// The address space loaded now (its PDPT).
static CURRENT: AtomicU32 = AtomicU32::new(0);
/// The flag bits an update of the loaded space carries besides its level
/// and address: VMI_PAGE_CURRENT_AS, and VMI_PAGE_DEFER inside lazy MMU
/// mode (kept with the mode, so a SetPxELong's flags cost one compare and
/// two ORs on the ROM's path, and nothing natively).
static CURRENT_SPACE_FLAGS: AtomicU32 = AtomicU32::new(VMI_PAGE_CURRENT_AS);
static LVTT_CONNECTED: AtomicBool = AtomicBool::new(false);

/// The platform handle (all state is in the kernel's globals).
#[derive(Debug)]
pub struct VmiPlatform;

/// The SetLinearMapping slot the benchmarks' direct map goes in (slot 0,
/// Linux's, is the guest's alias; 1 and 2 are HIGHPTE's).
const DIRECT_MAP_SLOT: u32 = 3;

/// Records the kernel's space as the current one (paging is on), and
/// tells the ROM where the page tables are mapped, as a Linux VMI kernel
/// does for its direct map at boot (`vmi_init`: SetLinearMapping(0,
/// PAGE_OFFSET, ...)): this kernel's direct map is the identity map,
/// where every page table the benchmarks build is written.
pub fn init() {
    let home = mm::kernel_space().expect("paging is on").pdpt;
    CURRENT.store(home, Ordering::SeqCst);
    CURRENT_SPACE_FLAGS.store(VMI_PAGE_CURRENT_AS, Ordering::SeqCst);
    pv::set_linear_mapping(DIRECT_MAP_SLOT, 0, mm::mapped_top() / mm::PAGE_SIZE, 0);
}

/// Masks the local APIC timer's LVT entry again if a benchmark unmasked
/// it; the direct map's slot is given back.
pub fn finish() {
    if LVTT_CONNECTED.swap(false, Ordering::SeqCst) {
        pv::apic_write(apic::REG_LVT_TIMER, apic::LVT_MASKED | VECTOR_APIC_TIMER);
    }
    pv::set_linear_mapping(DIRECT_MAP_SLOT, 0, 0, 0);
}

/// The page directory covering `va` in `space` (read from its PDPT).
fn directory(space: SpaceId, va: u32) -> u32 {
    (mm::read_entry(mm::entry(space.0, va >> 30)) & PTE_ADDR) as u32
}

/// The page table covering `va` in `space`, if present.
fn page_table(space: SpaceId, va: u32) -> Option<u32> {
    let pde = mm::read_entry(mm::entry(directory(space, va), (va >> 21) & 511));
    (pde & PTE_P != 0).then_some((pde & PTE_ADDR) as u32)
}

/// Linux's `vmi_flags_addr(_defer)`: the current-space hint with the
/// address, and DEFER inside lazy MMU mode (the bits `PxeUpdateFlags::new`
/// puts together, from [`CURRENT_SPACE_FLAGS`]).
#[inline(always)]
fn update_flags(level: PageLevel, space: SpaceId, va: u32) -> u32 {
    if space.0 == CURRENT.load(Ordering::Relaxed) {
        level.bit() | CURRENT_SPACE_FLAGS.load(Ordering::Relaxed) | (va & VMI_PAGE_VA_MASK)
    } else {
        level.bit()
    }
}

/// A user entry as Linux builds one (and as the direct-PV kernel does):
/// Accessed from the start (x86's protection map, `PAGE_SHARED` and
/// friends, includes `_PAGE_ACCESSED`), Dirty with write access (a
/// writable anonymous entry is installed by a write fault,
/// `pte_mkwrite(pte_mkdirty(..))`).
fn user_pte(frame: Frame, writable: bool) -> u64 {
    u64::from(frame) | PTE_P | PTE_US | PTE_A | if writable { PTE_RW | PTE_D } else { 0 }
}

impl Platform for VmiPlatform {
    fn print(&mut self, args: fmt::Arguments<'_>) {
        crate::console::print(args);
    }

    fn cycles(&mut self) -> u64 {
        pv::cycles_now()
    }

    fn cycle_frequency(&mut self) -> u64 {
        pv::cycle_frequency()
    }

    fn hypercalls(&mut self) -> Option<u32> {
        let v = pv::port_in(4, HYPERCALL_COUNT_PORT);
        (v != u32::MAX).then_some(v)
    }

    fn irq_disable(&mut self) {
        pv::irq_disable();
    }

    fn irq_enable(&mut self) {
        pv::irq_enable();
    }

    fn new_frame(&mut self) -> Frame {
        mm::alloc_frame()
    }

    fn kernel_space(&mut self) -> SpaceId {
        SpaceId(mm::kernel_space().expect("paging is on").pdpt)
    }

    fn current_space(&mut self) -> SpaceId {
        SpaceId(CURRENT.load(Ordering::Relaxed))
    }

    /// A new PDPT as a Linux VMI kernel builds one (`pgd_alloc`, PAE with
    /// the kernel's PMD shared, which VMI keeps: `pv_info.shared_kernel_pmd`
    /// is 1): slot 3 is the kernel's own directory, announced as
    /// `pgd_ctor` does, AllocatePage(PDPT, L2 | CLONE, the kernel's PDPT,
    /// 3, 1); the user region's directory (slot 1) fresh and announced;
    /// directories 0 and 2 shared with the kernel's space (the benchmarks
    /// map nothing there).
    fn create_space(&mut self) -> SpaceId {
        let kernel = mm::kernel_space().expect("paging is on");
        let pdpt = frames::take_zeroed(self);
        let user = frames::take_zeroed(self);
        pv::allocate_page(user >> 12, VMI_PAGE_L2_PAE, 0, 0, 0);
        for (k, d) in [kernel.pd[0], user, kernel.pd[2], kernel.pd[3]]
            .iter()
            .enumerate()
        {
            pv::set_pxe_long(
                u64::from(*d) | PTE_P,
                mm::entry(pdpt, k as u32),
                PageLevel::Pdp.bit(),
            );
        }
        pv::allocate_page(
            pdpt >> 12,
            VMI_PAGE_L2_PAE | VMI_PAGE_CLONE,
            kernel.pdpt >> 12,
            3,
            1,
        );
        SpaceId(pdpt)
    }

    /// Linux's `exit_mmap` + `pgd_free` for a PAE VMI kernel: the user
    /// entries cleared natively (a full teardown needs no paravirt
    /// update), each page table unlinked (SetPxELong) and released, the
    /// space's own directory released (`pgd_mop_up_pmds`), then the PDPT
    /// (`vmi_pgd_free`: ReleasePage(PDPT, L2)).
    fn destroy_space(&mut self, space: SpaceId, mapped: &[Mapped]) {
        // Each VMA's present entries cleared natively, as Linux's exit
        // does (`unmap_vmas`; the ROM is told nothing until ReleasePage).
        for range in mapped {
            range.for_each_table(|va, first, count| {
                if let Some(pt) = page_table(space, va) {
                    frames::clear_present_entries(pt, first, count);
                }
            });
        }
        // The page tables unlinked and released, walking only the
        // directory entries of the user region (where every benchmark
        // maps), as Linux's `free_pgtables` walks only the entries from
        // the first VMA to the last: not all 512 of the directory.
        let user = directory(space, USER_BASE);
        let first = (USER_BASE >> 21) & 511;
        for i in first..first + ((USER_END - USER_BASE) >> 21) {
            let pdep = mm::entry(user, i);
            let pde = mm::read_entry(pdep);
            if pde & PTE_P == 0 {
                continue;
            }
            let pt = (pde & PTE_ADDR) as u32;
            pv::set_pxe_long(0, pdep, PageLevel::Pd.bit());
            pv::release_page(pt >> 12, VMI_PAGE_L1_PAE);
            frames::give(pt);
        }
        pv::release_page(user >> 12, VMI_PAGE_L2_PAE);
        pv::release_page(space.0 >> 12, VMI_PAGE_L2_PAE);
        frames::give(user);
        frames::give(space.0);
    }

    fn switch_space(&mut self, space: SpaceId) {
        pv::set_cr3(space.0);
        CURRENT.store(space.0, Ordering::Relaxed);
    }

    fn set_kernel_stack(&mut self, top: u32) {
        pv::update_kernel_stack(pv::kernel_ds(), top);
    }

    fn default_kernel_stack(&mut self) -> u32 {
        kmain::ring0_stack_top()
    }

    fn set_lazy(&mut self, mode: Lazy) {
        let (vmi, space_flags) = match mode {
            Lazy::None => (VMI_LAZY_NONE, VMI_PAGE_CURRENT_AS),
            Lazy::Mmu => (VMI_LAZY_MMU, VMI_PAGE_CURRENT_AS | VMI_PAGE_DEFER),
            Lazy::Cpu => (VMI_LAZY_CPU, VMI_PAGE_CURRENT_AS),
        };
        pv::set_lazy_mode(vmi);
        CURRENT_SPACE_FLAGS.store(space_flags, Ordering::Relaxed);
    }

    fn map(&mut self, space: SpaceId, va: u32, frame: Frame, writable: bool) {
        let pt = match page_table(space, va) {
            Some(pt) => pt,
            None => {
                let pt = frames::take_zeroed(self);
                pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
                let pdep = mm::entry(directory(space, va), (va >> 21) & 511);
                pv::set_pxe_long_with(u64::from(pt) | PTE_P | PTE_RW | PTE_US, pdep, || {
                    update_flags(PageLevel::Pd, space, va)
                });
                pt
            }
        };
        pv::set_pxe_long_with(
            user_pte(frame, writable),
            mm::entry(pt, (va >> 12) & 511),
            || update_flags(PageLevel::Pt, space, va),
        );
    }

    /// Linux's `ptep_get_and_clear` (munmap's `zap_pte_range`): the entry
    /// cleared by the kernel itself, then `pte_update`, UpdatePxELong with
    /// the current-space hint (`vmi_update_pte`).
    fn unmap(&mut self, space: SpaceId, va: u32) {
        if let Some(pt) = page_table(space, va) {
            let ptep = mm::entry(pt, (va >> 12) & 511);
            // SAFETY: an entry of this space's own page table.
            unsafe { pv::store_pxe_long(ptep, 0) };
            pv::update_pxe_long_with(ptep, || update_flags(PageLevel::Pt, space, va));
        }
    }

    fn protect(&mut self, space: SpaceId, va: u32, writable: bool) {
        let Some(pt) = page_table(space, va) else {
            return;
        };
        let ptep = mm::entry(pt, (va >> 12) & 511);
        let pte = mm::read_entry(ptep);
        // Write access comes with Dirty, as Linux's write-fault path
        // (`do_wp_page`: `pte_mkdirty(pte_mkwrite(..))`) installs it.
        let new = if writable {
            pte | PTE_RW | PTE_D
        } else {
            pte & !PTE_RW
        };
        // Linux's `ptep_set_access_flags` (write fault) and
        // `ptep_set_wrprotect` (fork): the kernel writes the entry itself,
        // then `pte_update_defer` / `pte_update`: UpdatePxELong.
        // SAFETY: an entry of this space's own page table.
        unsafe { pv::store_pxe_long(ptep, new) };
        pv::update_pxe_long_with(ptep, || update_flags(PageLevel::Pt, space, va));
    }

    fn lookup(&mut self, space: SpaceId, va: u32) -> Option<(Frame, bool)> {
        let pte = mm::read_entry(mm::entry(page_table(space, va)?, (va >> 12) & 511));
        (pte & PTE_P != 0).then_some(((pte & PTE_ADDR) as u32, pte & PTE_RW != 0))
    }

    fn flush_tlb(&mut self) {
        pv::flush_tlb(VMI_FLUSH_TLB);
    }

    fn invalidate_page(&mut self, va: u32) {
        pv::inval_page(va);
    }

    fn run_user(&mut self, start: &UserState) -> UserExit {
        let frame = user::UserFrame {
            eip: start.eip,
            cs: u32::from(USER_CS),
            eflags: start.eflags,
            esp: start.esp,
            ss: u32::from(USER_DS),
            eax: start.eax,
            ebx: start.ebx,
            ecx: start.ecx,
            edx: start.edx,
            esi: start.esi,
            edi: start.edi,
            ebp: start.ebp,
        };
        let exit = user::run_frame(&frame);
        let f = &exit.frame;
        UserExit {
            vector: f.vector & 0xFF,
            error_code: f.error_code,
            state: f.state(),
        }
    }

    /// A one-shot alarm on the real counter wired to the local APIC timer,
    /// as a Linux VMI kernel with a local APIC arms it (the handler stamps
    /// the cycle counter before its EOI).
    fn arm_alarm(&mut self, expiry: u64) {
        if !LVTT_CONNECTED.swap(true, Ordering::SeqCst) {
            pv::apic_write(apic::REG_LVT_TIMER, VECTOR_APIC_TIMER);
        }
        let flags = AlarmFlags::new(CycleCounter::Real, AlarmWiring::Lvtt, false).0;
        pv::set_alarm(flags, expiry, 0);
    }

    fn timer_interrupts(&mut self) -> (u32, u64) {
        (
            trap::irq_count(VECTOR_APIC_TIMER),
            trap::irq_last_cycles(VECTOR_APIC_TIMER),
        )
    }
}

impl UserFrame for TrapFrame {
    fn vector(&self) -> u32 {
        self.vector & 0xFF
    }

    fn error_code(&self) -> u32 {
        self.error_code
    }

    fn state(&self) -> UserState {
        UserState {
            eax: self.eax,
            ebx: self.ebx,
            ecx: self.ecx,
            edx: self.edx,
            esi: self.esi,
            edi: self.edi,
            ebp: self.ebp,
            eip: self.eip,
            esp: self.user_esp,
            eflags: self.eflags,
        }
    }

    fn set_state(&mut self, s: &UserState) {
        self.eax = s.eax;
        self.ebx = s.ebx;
        self.ecx = s.ecx;
        self.edx = s.edx;
        self.esi = s.esi;
        self.edi = s.edi;
        self.ebp = s.ebp;
        self.eip = s.eip;
        self.user_esp = s.esp;
        self.eflags = s.eflags;
    }

    fn eax(&self) -> u32 {
        self.eax
    }

    fn set_eax(&mut self, value: u32) {
        self.eax = value;
    }

    fn ebx(&self) -> u32 {
        self.ebx
    }

    fn eip(&self) -> u32 {
        self.eip
    }

    fn set_eip(&mut self, value: u32) {
        self.eip = value;
    }

    fn esp(&self) -> u32 {
        self.user_esp
    }

    fn set_esp(&mut self, value: u32) {
        self.user_esp = value;
    }
}

/// The user service the trap path calls for every trap from ring 3 during
/// a benchmark's user run.
#[inline(always)]
pub fn service(frame: &mut TrapFrame) -> bool {
    let fault_address = if frame.vector & 0xFF == 14 {
        pv::get_cr2()
    } else {
        0
    };
    bench_core::kernel::user_trap(&mut VmiPlatform, frame, fault_address)
}
