//! Where things live, as the loader, the ROM and the kernel must agree.
//!
//! Two spaces (docs/boot-contract.md):
//! - the kernel's physical memory (its own numbering of frames, chosen by the
//!   loader): a PC's layout with the ROM at 0xC0000;
//! - the virtual address space: the kernel below `virtual_top`, the ROM's
//!   private area from there to the start of Xen's hole.

/// Start of Xen's hypervisor hole for a 32-bit PV domU on 64-bit Xen
/// (xen-x86_32.h `HYPERVISOR_VIRT_START_PAE`; a dom0 may see it higher).
pub const HYPERVISOR_VIRT_START: u32 = 0xF580_0000;

/// The ROM's private area: `virtual_top` in the ROM header. A VMI kernel
/// keeps its own mappings below it (Linux: `reserve_top_address`).
pub const ROM_AREA_START: u32 = 0xF500_0000;
/// End of the ROM's private area (exclusive): Xen's hole.
pub const ROM_AREA_END: u32 = HYPERVISOR_VIRT_START;

/// The ROM code's alias in the private area. Trap, event and failsafe entry
/// points registered with Xen point here, so they are valid in every
/// address space the kernel creates.
pub const ROM_CODE_VA: u32 = ROM_AREA_START;
/// Largest ROM image: the whole option-ROM area the kernel probes
/// (0xC0000-0xDFFFF; the header's 512-byte block count caps an image at
/// 255 blocks, just under it), and the code alias has this much room.
pub const ROM_CODE_MAX: u32 = 0x2_0000;
/// Offset in the ROM of the loader's entry (after the VMI jump points at
/// 0x80 and 0x88; not part of the VMI ABI).
pub const ROM_LOADER_ENTRY: u32 = 0x90;
/// Alias of the hypercall page Xen filled (XEN_ELFNOTE_HYPERCALL_PAGE).
pub const HYPERCALL_PAGE_VA: u32 = ROM_AREA_START + 0x2_0000;
/// shared_info (start_info.shared_info is its machine address).
pub const SHARED_INFO_VA: u32 = HYPERCALL_PAGE_VA + 0x1000;
/// The domU console ring (start_info.console.domU.mfn).
pub const CONSOLE_RING_VA: u32 = SHARED_INFO_VA + 0x1000;
/// The xenstore ring (start_info.store_mfn).
pub const XENSTORE_RING_VA: u32 = CONSOLE_RING_VA + 0x1000;
/// The ROM's state: written by the loader, owned by the ROM afterwards.
pub const ROM_STATE_VA: u32 = ROM_AREA_START + 0x3_0000;
/// Room for the ROM's state.
pub const ROM_STATE_MAX: u32 = 0x1_0000;
/// Page-sized windows through which the ROM reads and writes kernel frames
/// that the kernel itself may not have mapped (its page tables, above all).
pub const WINDOW_VA: u32 = ROM_AREA_START + 0x4_0000;
/// Number of window slots.
pub const WINDOW_SLOTS: u32 = 16;
/// Xen's copy of the kernel's LDT (the frame Xen walks for LDT selectors;
/// read-only, written with update_descriptor): one page, 512 descriptors.
pub const LDT_SHADOW_VA: u32 = WINDOW_VA + WINDOW_SLOTS * 0x1000;
/// The kernel-frame -> machine-frame table (one u32 per kernel frame).
pub const K2M_VA: u32 = ROM_AREA_START + 0x10_0000;
/// Kernel frames the table can describe (4 GiB of kernel-physical space).
pub const K2M_MAX_FRAMES: u32 = 0x10_0000;
/// The ROM's bookkeeping of the shadow page tables (docs/page-tables.md):
/// pool frames the ROM maps here itself when paging first needs them.
pub const SHADOW_HEAP_VA: u32 = ROM_AREA_START + 0x50_0000;
/// Room for that bookkeeping.
pub const SHADOW_HEAP_MAX: u32 = 0x10_0000;
/// Views of the kernel's page-table frames (and read-only views of shadow
/// frames): one page each, a cache the ROM remaps as it needs.
pub const TABLE_VIEW_VA: u32 = ROM_AREA_START + 0x60_0000;
/// Number of views (the last 2 MiB of the area: one ROM-area L1).
pub const TABLE_VIEW_SLOTS: u32 = 512;

/// Kernel-physical address of the ROM (the first slot of the option-ROM
/// area, where Linux's probe starts).
pub const ROM_KERNEL_PHYS: u32 = 0xC_0000;
/// End of low RAM (exclusive): 0x9F000-0xFFFFF is the reserved PC area.
pub const LOW_RAM_END: u32 = 0x9_F000;
/// Start of RAM above the ISA hole.
pub const HIGH_RAM_START: u32 = 0x10_0000;

/// PAE: the L3 slot covering the top GiB, whose L2 Xen shares its slots
/// `PAE_XEN_L2_FIRST..512` with (its M2P and hole).
pub const PAE_TOP_L3_SLOT: u32 = 3;
/// First L2 slot (of the L2 under L3 slot 3) that Xen owns.
pub const PAE_XEN_L2_FIRST: u32 = (HYPERVISOR_VIRT_START >> 21) & 511;

/// The L2 slots (under L3 slot 3) the ROM's private area occupies.
pub const fn rom_area_l2_slots() -> core::ops::Range<u32> {
    ((ROM_AREA_START >> 21) & 511)..((ROM_AREA_END >> 21) & 511)
}

/// Number of L1 tables the ROM area needs (one per 2 MiB).
pub const ROM_AREA_L1_TABLES: u32 = (ROM_AREA_END - ROM_AREA_START) >> 21;

const _: () = {
    assert!(ROM_AREA_START >> 30 == PAE_TOP_L3_SLOT);
    assert!(ROM_AREA_START.is_multiple_of(1 << 21));
    assert!(PAE_XEN_L2_FIRST == 428);
    assert!(ROM_CODE_VA + ROM_CODE_MAX <= HYPERCALL_PAGE_VA);
    assert!(XENSTORE_RING_VA + 0x1000 <= ROM_STATE_VA);
    assert!(ROM_STATE_VA + ROM_STATE_MAX <= WINDOW_VA);
    assert!(LDT_SHADOW_VA + 0x1000 <= K2M_VA);
    assert!(K2M_VA + K2M_MAX_FRAMES * 4 <= SHADOW_HEAP_VA);
    assert!(SHADOW_HEAP_VA + SHADOW_HEAP_MAX <= TABLE_VIEW_VA);
    assert!(TABLE_VIEW_VA.is_multiple_of(1 << 21));
    assert!(TABLE_VIEW_VA + TABLE_VIEW_SLOTS * 0x1000 == ROM_AREA_END);
    assert!(ROM_KERNEL_PHYS + ROM_CODE_MAX <= 0xE_0000);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rom_area_sits_just_below_xens_slots() {
        assert_eq!(rom_area_l2_slots(), 424..428);
        assert_eq!(ROM_AREA_L1_TABLES, 4);
        assert_eq!(rom_area_l2_slots().end, PAE_XEN_L2_FIRST);
    }

    #[test]
    fn rom_is_where_linux_probes_first() {
        // Linux scans 0xC0000..0xE0000 in 2 KiB steps.
        assert_eq!(ROM_KERNEL_PHYS, vmi_abi::VMI_PROBE_START);
        assert!(ROM_KERNEL_PHYS.is_multiple_of(2048));
    }
}
