//! Flag words and small enumerations passed to VMI calls.
//!
//! Page and flush flags: `VMI_PAGE_*` and `VMI_FLUSH_*` of Linux's
//! `arch/x86/include/asm/vmi.h`. Lazy modes: the raw integers `vmi_32.c`
//! passes to SetLazyMode (Linux has no macro for them). Reboot modes, the
//! interrupt mask value and the linear-map slot count: the 2006 VMI
//! specification (`vmi_spec.txt`), which Linux 2.6.21-2.6.30 agrees with
//! where it uses them.

/// AllocatePage/ReleasePage: allocate a PAE shadow.
pub const VMI_PAGE_PAE: u32 = 0x10;
/// AllocatePage: clone entries `start..start+count` from `clone_pfn`'s shadow.
pub const VMI_PAGE_CLONE: u32 = 0x20;
/// AllocatePage: the page is already zero.
pub const VMI_PAGE_ZEROED: u32 = 0x40;

/// Level bit (all page calls): page table (L1).
pub const VMI_PAGE_PT: u32 = 0x01;
/// Level bit: page directory (L2).
pub const VMI_PAGE_PD: u32 = 0x02;
/// Level bit: page directory pointer table (L3).
pub const VMI_PAGE_PDP: u32 = 0x04;
/// Level bit: PML4 (unused on i386).
pub const VMI_PAGE_PML4: u32 = 0x08;
/// No level ("for debugging" in vmi.h).
pub const VMI_PAGE_NORMAL: u32 = 0x00;
/// The four level bits.
pub const VMI_PAGE_LEVEL_MASK: u32 = VMI_PAGE_PT | VMI_PAGE_PD | VMI_PAGE_PDP | VMI_PAGE_PML4;

/// SetPxE/UpdatePxE: the entry is in the current address space and
/// `flags & VMI_PAGE_VA_MASK` is the virtual address it maps.
/// (Same bit as [`VMI_PAGE_PAE`], different call.)
pub const VMI_PAGE_CURRENT_AS: u32 = 0x10;
/// SetPxE/UpdatePxE: the update may be queued until the next TLB
/// invalidation. (Same bit as [`VMI_PAGE_CLONE`], different call.)
pub const VMI_PAGE_DEFER: u32 = 0x20;
/// SetPxE/UpdatePxE: the virtual address bits, valid with [`VMI_PAGE_CURRENT_AS`].
pub const VMI_PAGE_VA_MASK: u32 = 0xFFFF_F000;

/// `VMI_PAGE_L1` of a CONFIG_X86_PAE kernel: PT | PAE | ZEROED = 0x51.
pub const VMI_PAGE_L1_PAE: u32 = VMI_PAGE_PT | VMI_PAGE_PAE | VMI_PAGE_ZEROED;
/// `VMI_PAGE_L2` of a CONFIG_X86_PAE kernel: PD | PAE | ZEROED = 0x52.
pub const VMI_PAGE_L2_PAE: u32 = VMI_PAGE_PD | VMI_PAGE_PAE | VMI_PAGE_ZEROED;
/// `VMI_PAGE_L1` of a non-PAE kernel: PT | ZEROED = 0x41.
pub const VMI_PAGE_L1_NON_PAE: u32 = VMI_PAGE_PT | VMI_PAGE_ZEROED;
/// `VMI_PAGE_L2` of a non-PAE kernel: PD | ZEROED = 0x42.
pub const VMI_PAGE_L2_NON_PAE: u32 = VMI_PAGE_PD | VMI_PAGE_ZEROED;

/// `VMI_PAGE_L1` for a kernel built with (`pae`) or without PAE.
pub const fn vmi_page_l1(pae: bool) -> u32 {
    if pae {
        VMI_PAGE_L1_PAE
    } else {
        VMI_PAGE_L1_NON_PAE
    }
}

/// `VMI_PAGE_L2` for a kernel built with (`pae`) or without PAE.
pub const fn vmi_page_l2(pae: bool) -> u32 {
    if pae {
        VMI_PAGE_L2_PAE
    } else {
        VMI_PAGE_L2_NON_PAE
    }
}

/// FlushTLB: flush non-global TLB entries (always set).
pub const VMI_FLUSH_TLB: u32 = 0x01;
/// FlushTLB: flush global entries too.
pub const VMI_FLUSH_GLOBAL: u32 = 0x02;

/// A page-table level named by exactly one level bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageLevel {
    /// [`VMI_PAGE_PT`].
    Pt,
    /// [`VMI_PAGE_PD`].
    Pd,
    /// [`VMI_PAGE_PDP`].
    Pdp,
    /// [`VMI_PAGE_PML4`].
    Pml4,
}

impl PageLevel {
    /// The level bit.
    pub const fn bit(self) -> u32 {
        match self {
            PageLevel::Pt => VMI_PAGE_PT,
            PageLevel::Pd => VMI_PAGE_PD,
            PageLevel::Pdp => VMI_PAGE_PDP,
            PageLevel::Pml4 => VMI_PAGE_PML4,
        }
    }

    /// The level of a flag word, if exactly one level bit is set.
    pub const fn from_flags(flags: u32) -> Option<Self> {
        match flags & VMI_PAGE_LEVEL_MASK {
            VMI_PAGE_PT => Some(PageLevel::Pt),
            VMI_PAGE_PD => Some(PageLevel::Pd),
            VMI_PAGE_PDP => Some(PageLevel::Pdp),
            VMI_PAGE_PML4 => Some(PageLevel::Pml4),
            _ => None,
        }
    }
}

/// The `flags` argument of AllocatePage / ReleasePage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageAllocFlags(pub u32);

impl PageAllocFlags {
    /// Level of the page (Linux: PT or PD only).
    pub const fn level(self) -> Option<PageLevel> {
        PageLevel::from_flags(self.0)
    }
    /// [`VMI_PAGE_PAE`] set.
    pub const fn pae(self) -> bool {
        self.0 & VMI_PAGE_PAE != 0
    }
    /// [`VMI_PAGE_CLONE`] set: `clone_pfn`, `start`, `count` are meaningful.
    pub const fn clone(self) -> bool {
        self.0 & VMI_PAGE_CLONE != 0
    }
    /// [`VMI_PAGE_ZEROED`] set.
    pub const fn zeroed(self) -> bool {
        self.0 & VMI_PAGE_ZEROED != 0
    }
}

/// The `flags` argument of SetPxE, SetPxELong, UpdatePxE, UpdatePxELong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PxeUpdateFlags(pub u32);

impl PxeUpdateFlags {
    /// The flag word Linux builds (`vmi_flags_addr` / `vmi_flags_addr_defer`):
    /// the level bit; if the entry belongs to the current address space,
    /// CURRENT_AS with the page-aligned virtual address it maps, and DEFER
    /// if the update may wait. Linux never sets DEFER without CURRENT_AS, so
    /// `defer` is ignored when `current_as_va` is `None`.
    pub const fn new(level: PageLevel, current_as_va: Option<u32>, defer: bool) -> Self {
        match current_as_va {
            Some(va) => PxeUpdateFlags(
                level.bit()
                    | VMI_PAGE_CURRENT_AS
                    | (va & VMI_PAGE_VA_MASK)
                    | if defer { VMI_PAGE_DEFER } else { 0 },
            ),
            None => PxeUpdateFlags(level.bit()),
        }
    }
    /// Level of the table the entry lives in.
    pub const fn level(self) -> Option<PageLevel> {
        PageLevel::from_flags(self.0)
    }
    /// [`VMI_PAGE_CURRENT_AS`] set.
    pub const fn current_as(self) -> bool {
        self.0 & VMI_PAGE_CURRENT_AS != 0
    }
    /// [`VMI_PAGE_DEFER`] set.
    pub const fn defer(self) -> bool {
        self.0 & VMI_PAGE_DEFER != 0
    }
    /// The virtual address the entry maps, when CURRENT_AS says it is valid.
    pub const fn va(self) -> Option<u32> {
        if self.current_as() {
            Some(self.0 & VMI_PAGE_VA_MASK)
        } else {
            None
        }
    }
}

/// SetLazyMode argument: leave lazy mode; queued updates must be done now.
pub const VMI_LAZY_NONE: u32 = 0;
/// SetLazyMode argument: MMU updates may be queued until the mode is left.
pub const VMI_LAZY_MMU: u32 = 1;
/// SetLazyMode argument: CPU state updates (e.g. CR3 with kernel stack on a
/// context switch) may be queued until the mode is left.
pub const VMI_LAZY_CPU: u32 = 2;

/// The modes of SetLazyMode. Linux 2.6.24+ sends CPU (2) or MMU (1) on
/// entering and NONE (0) on leaving; up to 2.6.23 a "flush" request is sent
/// as NONE followed by re-entering the current mode. The same values were
/// `VMI_DEFER_NONE/MMU/CPU` of the 2006 SetDeferredMode.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LazyMode {
    /// [`VMI_LAZY_NONE`].
    None = VMI_LAZY_NONE,
    /// [`VMI_LAZY_MMU`].
    Mmu = VMI_LAZY_MMU,
    /// [`VMI_LAZY_CPU`].
    Cpu = VMI_LAZY_CPU,
}

impl LazyMode {
    /// The mode with this raw value.
    pub const fn from_u32(raw: u32) -> Option<Self> {
        match raw {
            VMI_LAZY_NONE => Some(LazyMode::None),
            VMI_LAZY_MMU => Some(LazyMode::Mmu),
            VMI_LAZY_CPU => Some(LazyMode::Cpu),
            _ => None,
        }
    }
}

/// Reboot argument: soft reboot, like an INIT IPI (some APIC and CR state kept).
pub const VMI_REBOOT_SOFT: u32 = 0;
/// Reboot argument: hard reboot, like a hardware reset.
pub const VMI_REBOOT_HARD: u32 = 1;

/// GetInterruptMask result / SetInterruptMask argument meaning "interrupts
/// enabled": the position of EFLAGS.IF.
pub const VMI_INTERRUPT_MASK_ENABLED: u32 = 0x200;

/// SetIOPLMask takes the EFLAGS IOPL field in place (IOPL 3 = `3 << 12`).
pub const VMI_IOPL_MASK: u32 = 0x3000;

/// Number of SetLinearMapping slots (2006 specification).
pub const VMI_LINEAR_MAP_SLOTS: u32 = 4;
/// Slot Linux uses for the lowmem direct map (`__PAGE_OFFSET`, frame 0).
pub const VMI_LINEAR_MAP_SLOT_LOWMEM: u32 = 0;
/// Slot Linux uses for the KM_PTE0 atomic kmap of a highmem page table.
pub const VMI_LINEAR_MAP_SLOT_KM_PTE0: u32 = 1;
/// Slot Linux uses for the KM_PTE1 atomic kmap of a highmem page table.
pub const VMI_LINEAR_MAP_SLOT_KM_PTE1: u32 = 2;
