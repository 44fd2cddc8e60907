//! The x86 and x86_32 parts of the public ABI: `arch-x86/xen.h` and
//! `arch-x86/xen-x86_32.h` (interface 0x00040e00), as seen by a 32-bit PAE PV
//! guest of the 64-bit hypervisor ("compat" guest, kernel in ring 1).
//!
//! Also here, because they are x86_32 facts the guest has to get exactly
//! right: the PAE page-table entry bits and geometry, and the part of the
//! address space the 64-bit Xen keeps for itself in a 32-bit guest.

// Constants keep Xen's spellings (`VGCF_in_kernel`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A `uint64_t` as the x86_32 ABI lays it out inside a structure: little
/// endian and only 4-byte aligned.
///
/// Rust's `u64` is 8-byte aligned on the x86_64 host, so a `repr(C)` structure
/// with a `u64` field would be laid out differently on the host than in the
/// i686 ROM; this type has the same layout on both.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct AbiU64 {
    lo: u32,
    hi: u32,
}

impl AbiU64 {
    /// Zero.
    pub const ZERO: Self = Self::new(0);

    /// Wraps `value`.
    #[inline]
    pub const fn new(value: u64) -> Self {
        Self {
            lo: value as u32,
            hi: (value >> 32) as u32,
        }
    }

    /// From its two 32-bit halves (the way a 32-bit guest passes a 64-bit
    /// value in two registers).
    #[inline]
    pub const fn from_halves(lo: u32, hi: u32) -> Self {
        Self { lo, hi }
    }

    /// The value.
    #[inline]
    pub const fn get(self) -> u64 {
        (self.hi as u64) << 32 | self.lo as u64
    }

    /// Replaces the value.
    #[inline]
    pub fn set(&mut self, value: u64) {
        *self = Self::new(value);
    }

    /// Bits 0..32.
    #[inline]
    pub const fn lo(self) -> u32 {
        self.lo
    }

    /// Bits 32..64.
    #[inline]
    pub const fn hi(self) -> u32 {
        self.hi
    }
}

impl From<u64> for AbiU64 {
    fn from(value: u64) -> Self {
        Self::new(value)
    }
}

impl From<AbiU64> for u64 {
    fn from(value: AbiU64) -> Self {
        value.get()
    }
}

impl core::fmt::Debug for AbiU64 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#x}", self.get())
    }
}

assert_abi_layout!(AbiU64, size = 8, align = 4);

/// `xen_ulong_t`: `unsigned long`, 32 bits on x86_32.
#[doc(alias = "xen_ulong_t")]
pub type XenUlong = u32;

/// `xen_pfn_t`: a frame number, 32 bits on x86_32 (`unsigned long`).
#[doc(alias = "xen_pfn_t")]
pub type XenPfn = u32;

/// A guest virtual address or `XEN_GUEST_HANDLE(...)` as stored in an ABI
/// structure: a 32-bit pointer on x86_32.
pub type GuestAddr = u32;

// ---------------------------------------------------------------------------
// Flat segment selectors (xen-x86_32.h). Xen's GDT entries 259..262 are in its
// reserved GDT area; the 64-bit Xen uses the same values for compat guests.

/// `FLAT_RING1_CS`: flat 4 GB ring-1 code segment, GDT index 259.
pub const FLAT_RING1_CS: u16 = 0xE019;
/// `FLAT_RING1_DS`: flat 4 GB ring-1 data segment, GDT index 260.
pub const FLAT_RING1_DS: u16 = 0xE021;
/// `FLAT_RING1_SS` (same descriptor as `FLAT_RING1_DS`).
pub const FLAT_RING1_SS: u16 = 0xE021;
/// `FLAT_RING3_CS`: flat 4 GB ring-3 code segment, GDT index 261.
pub const FLAT_RING3_CS: u16 = 0xE02B;
/// `FLAT_RING3_DS`: flat 4 GB ring-3 data segment, GDT index 262.
pub const FLAT_RING3_DS: u16 = 0xE033;
/// `FLAT_RING3_SS` (same descriptor as `FLAT_RING3_DS`).
pub const FLAT_RING3_SS: u16 = 0xE033;
/// `FLAT_KERNEL_CS` = `FLAT_RING1_CS`: the kernel runs in ring 1.
pub const FLAT_KERNEL_CS: u16 = FLAT_RING1_CS;
/// `FLAT_KERNEL_DS` = `FLAT_RING1_DS`.
pub const FLAT_KERNEL_DS: u16 = FLAT_RING1_DS;
/// `FLAT_KERNEL_SS` = `FLAT_RING1_SS`.
pub const FLAT_KERNEL_SS: u16 = FLAT_RING1_SS;
/// `FLAT_USER_CS` = `FLAT_RING3_CS`.
pub const FLAT_USER_CS: u16 = FLAT_RING3_CS;
/// `FLAT_USER_DS` = `FLAT_RING3_DS`.
pub const FLAT_USER_DS: u16 = FLAT_RING3_DS;
/// `FLAT_USER_SS` = `FLAT_RING3_SS`.
pub const FLAT_USER_SS: u16 = FLAT_RING3_SS;

// ---------------------------------------------------------------------------
// The hypervisor hole (xen-x86_32.h, and the 64-bit Xen's asm/config.h for
// compat guests).

/// `HYPERVISOR_VIRT_START_PAE`: everything from here to 4 GB belongs to Xen
/// in a PAE guest. The 64-bit Xen uses this value for every 32-bit domU
/// (`__HYPERVISOR_COMPAT_VIRT_START`); only a dom0 may lower it with
/// `XEN_ELFNOTE_HV_START_LOW`. `XENVER_platform_parameters` reports the
/// domain's actual value.
pub const HYPERVISOR_VIRT_START_PAE: u32 = 0xF580_0000;
/// `MACH2PHYS_VIRT_START_PAE`: start of the read-only machine-to-physical
/// table (`u32` per machine frame).
pub const MACH2PHYS_VIRT_START_PAE: u32 = 0xF580_0000;
/// `MACH2PHYS_VIRT_END_PAE`: end of the M2P in the public header. That is the
/// old 32-bit hypervisor's value; on the 64-bit Xen the compat M2P runs to
/// [`MACH2PHYS_COMPAT_VIRT_END`] (ask `XENMEM_machphys_mapping`).
pub const MACH2PHYS_VIRT_END_PAE: u32 = 0xF680_0000;
/// `MACH2PHYS_COMPAT_VIRT_END`: end of the read-only M2P a 32-bit guest sees
/// on the 64-bit Xen. Not in the public headers: Xen's
/// `arch/x86/include/asm/config.h`.
pub const MACH2PHYS_COMPAT_VIRT_END: u32 = 0xFFE0_0000;
/// `MACH2PHYS_COMPAT_NR_ENTRIES` for a domain whose hole starts at
/// [`HYPERVISOR_VIRT_START_PAE`]: machine frames the compat M2P can describe.
pub const MACH2PHYS_COMPAT_NR_ENTRIES: u32 =
    (MACH2PHYS_COMPAT_VIRT_END - MACH2PHYS_VIRT_START_PAE) / 4;

/// `FIRST_RESERVED_GDT_PAGE`: Xen's own GDT entries start in this page of a
/// guest GDT (arch-x86/xen.h).
pub const FIRST_RESERVED_GDT_PAGE: u32 = 14;
/// `FIRST_RESERVED_GDT_BYTE`.
pub const FIRST_RESERVED_GDT_BYTE: u32 = FIRST_RESERVED_GDT_PAGE * 4096;
/// `FIRST_RESERVED_GDT_ENTRY` (7168): a guest GDT given to `set_gdt` may have
/// at most this many entries.
pub const FIRST_RESERVED_GDT_ENTRY: u32 = FIRST_RESERVED_GDT_BYTE / 8;

/// `XEN_LEGACY_MAX_VCPUS`: vCPUs with a `vcpu_info` slot in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

// ---------------------------------------------------------------------------
// CR3 format (xen-x86_32.h). A 32-bit guest's CR3 holds a machine frame
// number rotated so that frames above 4 GB fit ("extended CR3").

/// `xen_pfn_to_cr3`: the CR3 value for page directory (L3) frame `pfn`.
#[inline]
pub const fn xen_pfn_to_cr3(pfn: u32) -> u32 {
    pfn.rotate_left(12)
}

/// `xen_cr3_to_pfn`: the frame number held in a CR3 value.
#[inline]
pub const fn xen_cr3_to_pfn(cr3: u32) -> u32 {
    cr3.rotate_right(12)
}

// ---------------------------------------------------------------------------
// Trap table (arch-x86/xen.h).

/// `struct trap_info`: one entry of the virtual IDT given to
/// `HYPERVISOR_set_trap_table`. A table ends at the first entry whose
/// `address` is 0.
#[doc(alias = "trap_info")]
#[doc(alias = "trap_info_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0-1: the DPL (which rings may raise the vector with `int n`);
    /// bit 2: deliver with events masked ("interrupt gate").
    pub flags: u8,
    /// Code selector of the handler (Xen raises its RPL to at least 1).
    pub cs: u16,
    /// Handler offset; 0 ends the table.
    pub address: u32,
}

assert_abi_layout!(
    TrapInfo,
    size = 8,
    align = 4,
    vector = 0,
    flags = 1,
    cs = 2,
    address = 4
);

impl TrapInfo {
    /// `flags` bit 2 (`TI_SET_IF(ti, 1)`): deliver with events masked.
    pub const FLAG_MASK_EVENTS: u8 = 1 << 2;
    /// `flags` bits 0-1: the DPL.
    pub const FLAGS_DPL_MASK: u8 = 3;

    /// An entry for `vector` at `cs:address`, callable by rings `<= dpl`,
    /// optionally delivered with events masked.
    pub const fn new(vector: u8, dpl: u8, mask_events: bool, cs: u16, address: u32) -> Self {
        let mut flags = dpl & Self::FLAGS_DPL_MASK;
        if mask_events {
            flags |= Self::FLAG_MASK_EVENTS;
        }
        Self {
            vector,
            flags,
            cs,
            address,
        }
    }

    /// The table terminator (address 0).
    pub const END: Self = Self {
        vector: 0,
        flags: 0,
        cs: 0,
        address: 0,
    };

    /// `TI_GET_DPL`.
    pub const fn dpl(&self) -> u8 {
        self.flags & Self::FLAGS_DPL_MASK
    }

    /// `TI_GET_IF`: whether events are masked on delivery.
    pub const fn masks_events(&self) -> bool {
        self.flags & Self::FLAG_MASK_EVENTS != 0
    }
}

// ---------------------------------------------------------------------------
// Register state (xen-x86_32.h) and the vCPU context (arch-x86/xen.h).

/// `struct cpu_user_regs` (x86_32): the general register frame, as in
/// `vcpu_guest_context.user_regs`.
#[doc(alias = "cpu_user_regs")]
#[doc(alias = "cpu_user_regs_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct CpuUserRegs {
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub esi: u32,
    pub edi: u32,
    pub ebp: u32,
    pub eax: u32,
    /// Private to Xen.
    pub error_code: u16,
    /// Private to Xen.
    pub entry_vector: u16,
    pub eip: u32,
    pub cs: u16,
    /// Events mask at the time of the frame; `eflags.IF == !saved_upcall_mask`.
    pub saved_upcall_mask: u8,
    pub _pad0: u8,
    pub eflags: u32,
    pub esp: u32,
    pub ss: u16,
    pub _pad1: u16,
    pub es: u16,
    pub _pad2: u16,
    pub ds: u16,
    pub _pad3: u16,
    pub fs: u16,
    pub _pad4: u16,
    pub gs: u16,
    pub _pad5: u16,
}

assert_abi_layout!(
    CpuUserRegs,
    size = 68,
    align = 4,
    ebx = 0,
    ecx = 4,
    edx = 8,
    esi = 12,
    edi = 16,
    ebp = 20,
    eax = 24,
    error_code = 28,
    entry_vector = 30,
    eip = 32,
    cs = 36,
    saved_upcall_mask = 38,
    _pad0 = 39,
    eflags = 40,
    esp = 44,
    ss = 48,
    _pad1 = 50,
    es = 52,
    _pad2 = 54,
    ds = 56,
    _pad3 = 58,
    fs = 60,
    _pad4 = 62,
    gs = 64,
    _pad5 = 66,
);

/// `VGCF_i387_valid` (= `VGCF_I387_VALID`): `fpu_ctxt` holds valid state.
pub const VGCF_i387_valid: u32 = 1 << 0;
/// `VGCF_in_kernel` (= `VGCF_IN_KERNEL`): the vCPU starts in kernel mode.
pub const VGCF_in_kernel: u32 = 1 << 2;
/// `VGCF_failsafe_disables_events`.
pub const VGCF_failsafe_disables_events: u32 = 1 << 3;
/// `VGCF_syscall_disables_events`.
pub const VGCF_syscall_disables_events: u32 = 1 << 4;
/// `VGCF_online`.
pub const VGCF_online: u32 = 1 << 5;

/// `struct vcpu_guest_context` (x86_32): the state `VCPUOP_initialise` loads
/// into a vCPU. 2800 bytes.
#[doc(alias = "vcpu_guest_context")]
#[doc(alias = "vcpu_guest_context_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VcpuGuestContext {
    /// User-level FPU registers (FXSAVE image).
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u32,
    pub user_regs: CpuUserRegs,
    /// The virtual IDT, indexed by vector.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u32,
    /// LDT entries.
    pub ldt_ents: u32,
    /// GDT machine frames.
    pub gdt_frames: [u32; 16],
    /// GDT entries.
    pub gdt_ents: u32,
    /// Virtual TSS SS1.
    pub kernel_ss: u32,
    /// Virtual TSS ESP1.
    pub kernel_sp: u32,
    /// CR0-CR7; CR3 is [`xen_pfn_to_cr3`] of the L3's machine frame.
    pub ctrlreg: [u32; 8],
    /// DR0-DR7.
    pub debugreg: [u32; 8],
    pub event_callback_cs: u32,
    pub event_callback_eip: u32,
    pub failsafe_callback_cs: u32,
    pub failsafe_callback_eip: u32,
    /// Bitmap of `VMASST_TYPE_*` assists to enable.
    pub vm_assist: u32,
}

assert_abi_layout!(
    VcpuGuestContext,
    size = 2800,
    align = 4,
    fpu_ctxt = 0,
    flags = 512,
    user_regs = 516,
    trap_ctxt = 584,
    ldt_base = 2632,
    ldt_ents = 2636,
    gdt_frames = 2640,
    gdt_ents = 2704,
    kernel_ss = 2708,
    kernel_sp = 2712,
    ctrlreg = 2716,
    debugreg = 2748,
    event_callback_cs = 2780,
    event_callback_eip = 2784,
    failsafe_callback_cs = 2788,
    failsafe_callback_eip = 2792,
    vm_assist = 2796,
);

// ---------------------------------------------------------------------------
// Per-vCPU and per-domain arch state in the shared-info page.

/// `struct arch_vcpu_info` (x86_32), inside each `vcpu_info`.
#[doc(alias = "arch_vcpu_info")]
#[doc(alias = "arch_vcpu_info_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ArchVcpuInfo {
    /// The virtual CR2: Xen writes the faulting address of a #PF here.
    pub cr2: u32,
    /// Pads `vcpu_info` to 64 bytes.
    pub pad: [u32; 5],
}

assert_abi_layout!(ArchVcpuInfo, size = 24, align = 4, cr2 = 0, pad = 4);

/// `struct arch_shared_info` (x86_32), at the end of `shared_info`.
#[doc(alias = "arch_shared_info")]
#[doc(alias = "arch_shared_info_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct ArchSharedInfo {
    /// Valid entries in the p2m reachable from the fields below.
    pub max_pfn: u32,
    /// Frame of the list of frames of the list of p2m frames (0: not set up).
    pub pfn_to_mfn_frame_list_list: u32,
    pub nmi_reason: u32,
    /// CR3 (in [`xen_pfn_to_cr3`] format) of the address space where
    /// `p2m_vaddr` is valid; 0 if the linear p2m is not published.
    pub p2m_cr3: u32,
    /// Virtual address of the linear p2m list.
    pub p2m_vaddr: u32,
    /// Odd while the guest changes the p2m mappings.
    pub p2m_generation: u32,
    /// High 32 bits of the wall-clock seconds (`shared_info.wc_sec`); x86_32
    /// only (`xen_wc_sec_hi`).
    pub wc_sec_hi: u32,
}

assert_abi_layout!(
    ArchSharedInfo,
    size = 28,
    align = 4,
    max_pfn = 0,
    pfn_to_mfn_frame_list_list = 4,
    nmi_reason = 8,
    p2m_cr3 = 12,
    p2m_vaddr = 16,
    p2m_generation = 20,
    wc_sec_hi = 24,
);

/// `struct xen_callback` (x86_32): a `cs:eip` callback address.
#[doc(alias = "xen_callback")]
#[doc(alias = "xen_callback_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenCallback {
    pub cs: u32,
    pub eip: u32,
}

assert_abi_layout!(XenCallback, size = 8, align = 4, cs = 0, eip = 4);

impl XenCallback {
    /// `cs:eip`.
    pub const fn new(cs: u16, eip: u32) -> Self {
        Self { cs: cs as u32, eip }
    }
}

// ---------------------------------------------------------------------------
// PAE page tables. These are x86 architecture facts (not in the public
// headers) with the names Xen and Linux use; Xen enforces the rules noted on
// each bit in arch/x86/mm.c.

/// `_PAGE_PRESENT`.
pub const _PAGE_PRESENT: u64 = 1 << 0;
/// `_PAGE_RW`: writable. Xen refuses it on mappings of page-table and
/// descriptor-table frames.
pub const _PAGE_RW: u64 = 1 << 1;
/// `_PAGE_USER`: accessible from ring 3 (ring 1 is a supervisor ring).
pub const _PAGE_USER: u64 = 1 << 2;
/// `_PAGE_PWT`: write-through (L1 only, and only with I/O or cache-flush
/// rights; forbidden in L2 and L3 entries).
pub const _PAGE_PWT: u64 = 1 << 3;
/// `_PAGE_PCD`: cache disable (same rules as `_PAGE_PWT`).
pub const _PAGE_PCD: u64 = 1 << 4;
/// `_PAGE_ACCESSED`.
pub const _PAGE_ACCESSED: u64 = 1 << 5;
/// `_PAGE_DIRTY`.
pub const _PAGE_DIRTY: u64 = 1 << 6;
/// `_PAGE_PSE` in an L2 entry (superpage; Xen refuses it for PV guests).
pub const _PAGE_PSE: u64 = 1 << 7;
/// `_PAGE_PAT` in an L1 entry (same rules as `_PAGE_PWT`).
pub const _PAGE_PAT: u64 = 1 << 7;
/// `_PAGE_GLOBAL` (L1 only).
pub const _PAGE_GLOBAL: u64 = 1 << 8;
/// `_PAGE_AVAIL`: the three software bits 9-11.
pub const _PAGE_AVAIL: u64 = 0x7 << 9;
/// `_PAGE_NX`: no execute (bit 63).
pub const _PAGE_NX: u64 = 1 << 63;
/// The machine-address bits of a PAE entry (bits 12-51).
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Flags Xen accepts in a PAE L3 entry of a compat guest (`l3_disallow_mask`
/// is `0xFFFFF198`: P, RW, US, A, D and the AVAIL bits are allowed).
pub const L3_ALLOWED_FLAGS: u64 =
    _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_AVAIL;

/// Bytes in a page.
pub const PAGE_SIZE: u32 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Entries in a PAE L1 or L2 table.
pub const PAE_ENTRIES_PER_TABLE: usize = 512;
/// Entries in the PAE L3 (page-directory-pointer table).
pub const PAE_L3_ENTRIES: usize = 4;
/// Bytes mapped by one L2 entry (2 MB).
pub const PAE_L2_ENTRY_SPAN: u32 = 1 << 21;
/// Bytes mapped by one L3 entry (1 GB).
pub const PAE_L3_ENTRY_SPAN: u32 = 1 << 30;

/// The L3 index of `va` (`l3_table_offset`).
#[inline]
pub const fn pae_l3_index(va: u32) -> usize {
    (va >> 30) as usize
}

/// The L2 index of `va` (`l2_table_offset`).
#[inline]
pub const fn pae_l2_index(va: u32) -> usize {
    ((va >> 21) & 0x1FF) as usize
}

/// The L1 index of `va` (`l1_table_offset`).
#[inline]
pub const fn pae_l1_index(va: u32) -> usize {
    ((va >> 12) & 0x1FF) as usize
}

/// The L3 slot whose L2 Xen shares with the guest (VA 0xC0000000-0xFFFFFFFF).
/// That L2 must be present before the L3 is pinned, may not be shared with
/// another L3 nor pinned alone, and the L3 entry cannot change afterwards.
pub const PAE_XEN_L3_SLOT: usize = 3;

/// The slots of the L2 under [`PAE_XEN_L3_SLOT`] that Xen fills with its own
/// entries (`l2_table_offset(HYPERVISOR_VIRT_START_PAE)` = 428 up to 511: the
/// read-only M2P and the rest of the hole). The guest cannot write them
/// (`-EPERM`, "L2 update in Xen-private area").
pub const PAE_XEN_PRIVATE_L2_SLOTS: core::ops::Range<usize> =
    pae_l2_index(HYPERVISOR_VIRT_START_PAE)..PAE_ENTRIES_PER_TABLE;

const _: () = assert!(PAE_XEN_PRIVATE_L2_SLOTS.start == 428);
const _: () = assert!(pae_l3_index(HYPERVISOR_VIRT_START_PAE) == PAE_XEN_L3_SLOT);

/// The frame number in PAE entry `pte` (bits 12-51).
#[inline]
pub const fn pte_frame(pte: u64) -> u64 {
    (pte & PTE_ADDR_MASK) >> PAGE_SHIFT
}

/// `pte` with its frame replaced by `frame`, keeping every flag bit.
#[inline]
pub const fn pte_with_frame(pte: u64, frame: u64) -> u64 {
    (pte & !PTE_ADDR_MASK) | ((frame << PAGE_SHIFT) & PTE_ADDR_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_u64_round_trips_and_splits() {
        let v = AbiU64::new(0x1234_5678_9ABC_DEF0);
        assert_eq!(v.get(), 0x1234_5678_9ABC_DEF0);
        assert_eq!(v.lo(), 0x9ABC_DEF0);
        assert_eq!(v.hi(), 0x1234_5678);
        assert_eq!(v.as_bytes(), &0x1234_5678_9ABC_DEF0u64.to_le_bytes());
        assert_eq!(AbiU64::from_halves(0x9ABC_DEF0, 0x1234_5678), v);
    }

    #[test]
    fn cr3_format_rotates_frames_above_4gb() {
        assert_eq!(xen_pfn_to_cr3(0x12345), 0x1234_5000);
        // Frame 0x100000 is at 4 GB: bit 20 of the frame goes to bit 0 of CR3.
        assert_eq!(xen_pfn_to_cr3(0x10_0000), 0x0000_0001);
        for pfn in [0u32, 1, 0xFFFFF, 0x10_0000, 0xABCDEF, 0xFFFF_FFFF] {
            assert_eq!(xen_cr3_to_pfn(xen_pfn_to_cr3(pfn)), pfn);
        }
    }

    #[test]
    fn pae_indices_and_xen_private_slots() {
        assert_eq!(pae_l3_index(0xC000_0000), 3);
        assert_eq!(pae_l2_index(0xF580_0000), 428);
        assert_eq!(pae_l1_index(0x0040_3000), 3);
        assert_eq!(PAE_XEN_PRIVATE_L2_SLOTS, 428..512);
        assert_eq!(MACH2PHYS_COMPAT_NR_ENTRIES, 0x0298_0000);
        assert_eq!(FIRST_RESERVED_GDT_ENTRY, 7168);
    }

    #[test]
    fn pte_frame_helpers_keep_flags() {
        let pte = _PAGE_NX | 0x0000_0012_3456_7000 | _PAGE_PRESENT | _PAGE_RW | _PAGE_AVAIL;
        assert_eq!(pte_frame(pte), 0x0123_4567);
        let moved = pte_with_frame(pte, 0xABC);
        assert_eq!(pte_frame(moved), 0xABC);
        assert_eq!(moved & !PTE_ADDR_MASK, pte & !PTE_ADDR_MASK);
    }

    #[test]
    fn trap_info_flags() {
        let t = TrapInfo::new(0x80, 3, true, FLAT_KERNEL_CS, 0x1000);
        assert_eq!(t.flags, 3 | 4);
        assert_eq!(t.dpl(), 3);
        assert!(t.masks_events());
    }
}
