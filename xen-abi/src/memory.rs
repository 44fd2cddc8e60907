//! Memory reservation and memory-map operations: `memory.h` (interface
//! 0x00040e00), x86_32 layout.
//!
//! `HYPERVISOR_memory_op(cmd, arg)` with `cmd` one of `XENMEM_*`. The
//! reservation commands return how many extents they processed.

// Constants keep Xen's spellings (`XENMEM_memory_map`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::arch_x86_32::{GuestAddr, XenPfn, XenUlong};
use crate::xen::DomId;

/// `XENMEM_increase_reservation`: allocate extents (returns MFNs).
pub const XENMEM_increase_reservation: u32 = 0;
/// `XENMEM_decrease_reservation`: free the extents at the given frames.
pub const XENMEM_decrease_reservation: u32 = 1;
/// `XENMEM_maximum_ram_page`: highest machine frame (arg NULL).
pub const XENMEM_maximum_ram_page: u32 = 2;
/// `XENMEM_current_reservation`: pages the domain has (arg `&domid_t`).
pub const XENMEM_current_reservation: u32 = 3;
/// `XENMEM_maximum_reservation`: pages the domain may have (arg `&domid_t`).
pub const XENMEM_maximum_reservation: u32 = 4;
/// `XENMEM_machphys_mfn_list`.
pub const XENMEM_machphys_mfn_list: u32 = 5;
/// `XENMEM_populate_physmap`: back the given PFNs with memory.
pub const XENMEM_populate_physmap: u32 = 6;
/// `XENMEM_add_to_physmap`.
pub const XENMEM_add_to_physmap: u32 = 7;
/// `XENMEM_memory_map`: the domain's pseudo-physical E820 map. `-ENOSYS` if
/// the toolstack set none (then RAM is `start_info.nr_pages` from 0).
pub const XENMEM_memory_map: u32 = 9;
/// `XENMEM_machine_memory_map`: the host E820 map (privileged).
pub const XENMEM_machine_memory_map: u32 = 10;
/// `XENMEM_exchange`.
pub const XENMEM_exchange: u32 = 11;
/// `XENMEM_machphys_mapping`: where the read-only M2P is mapped.
pub const XENMEM_machphys_mapping: u32 = 12;
/// `XENMEM_set_memory_map` (toolstack).
pub const XENMEM_set_memory_map: u32 = 13;
/// `XENMEM_maximum_gpfn`: highest pseudo-physical frame (arg `&domid_t`).
pub const XENMEM_maximum_gpfn: u32 = 14;
/// `XENMEM_remove_from_physmap`.
pub const XENMEM_remove_from_physmap: u32 = 15;
/// `XENMEM_set_pod_target`.
pub const XENMEM_set_pod_target: u32 = 16;
/// `XENMEM_get_pod_target`.
pub const XENMEM_get_pod_target: u32 = 17;
/// `XENMEM_add_to_physmap_batch`.
pub const XENMEM_add_to_physmap_batch: u32 = 23;
/// `XENMEM_claim_pages`.
pub const XENMEM_claim_pages: u32 = 24;
/// `XENMEM_machphys_compat_mfn_list`.
pub const XENMEM_machphys_compat_mfn_list: u32 = 25;
/// `XENMEM_get_vnumainfo`.
pub const XENMEM_get_vnumainfo: u32 = 26;
/// `XENMEM_reserved_device_memory_map`.
pub const XENMEM_reserved_device_memory_map: u32 = 27;
/// `XENMEM_acquire_resource`.
pub const XENMEM_acquire_resource: u32 = 28;

/// `XENMEMF_address_bits(x)`: restrict allocations below `2^x`.
#[allow(non_snake_case)]
pub const fn XENMEMF_address_bits(bits: u32) -> u32 {
    bits & 0xFF
}
/// `XENMEMF_node(x)`: allocate from NUMA node `x`.
#[allow(non_snake_case)]
pub const fn XENMEMF_node(node: u32) -> u32 {
    (node + 1) << 8
}
/// `XENMEMF_populate_on_demand`.
pub const XENMEMF_populate_on_demand: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`.
pub const XENMEMF_exact_node_request: u32 = 1 << 17;
/// `XENMEMF_vnode`.
pub const XENMEMF_vnode: u32 = 1 << 18;

/// `XENMAPSPACE_shared_info`.
pub const XENMAPSPACE_shared_info: u32 = 0;
/// `XENMAPSPACE_grant_table`.
pub const XENMAPSPACE_grant_table: u32 = 1;
/// `XENMAPSPACE_gmfn`.
pub const XENMAPSPACE_gmfn: u32 = 2;
/// `XENMAPSPACE_gmfn_range`.
pub const XENMAPSPACE_gmfn_range: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`.
pub const XENMAPSPACE_gmfn_foreign: u32 = 4;
/// `XENMAPSPACE_dev_mmio` (Arm only).
pub const XENMAPSPACE_dev_mmio: u32 = 5;

/// `struct xen_memory_reservation` (x86_32): for increase/decrease
/// reservation and populate physmap.
#[doc(alias = "xen_memory_reservation")]
#[doc(alias = "xen_memory_reservation_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenMemoryReservation {
    /// Guest address of an array of `nr_extents` `xen_pfn_t`.
    pub extent_start: GuestAddr,
    /// Extents in the array.
    pub nr_extents: XenUlong,
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*`.
    pub mem_flags: u32,
    /// The domain (`DOMID_SELF` for an unprivileged one).
    pub domid: DomId,
    pub _pad0: u16,
}

assert_abi_layout!(
    XenMemoryReservation,
    size = 20,
    align = 4,
    extent_start = 0,
    nr_extents = 4,
    extent_order = 8,
    mem_flags = 12,
    domid = 16,
);

/// `struct xen_memory_map` (x86_32).
#[doc(alias = "xen_memory_map")]
#[doc(alias = "xen_memory_map_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenMemoryMap {
    /// In: entries `buffer` can hold. Out: entries written.
    pub nr_entries: u32,
    /// Guest address of an array of [`E820Entry`].
    pub buffer: GuestAddr,
}

assert_abi_layout!(
    XenMemoryMap,
    size = 8,
    align = 4,
    nr_entries = 0,
    buffer = 4
);

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI reclaimable.
pub const E820_ACPI: u32 = 3;
/// E820 type: ACPI NVS.
pub const E820_NVS: u32 = 4;
/// E820 type: unusable.
pub const E820_UNUSABLE: u32 = 5;

/// One entry of a memory map in the BIOS `INT 15h, EAX=E820h` format, as
/// `XENMEM_memory_map` writes it: 20 bytes, packed.
#[doc(alias = "e820entry")]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C, packed)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*`.
    #[doc(alias = "type")]
    pub kind: u32,
}

assert_abi_layout!(
    E820Entry,
    size = 20,
    align = 1,
    addr = 0,
    size = 8,
    kind = 16
);

impl E820Entry {
    /// An entry for `[addr, addr + size)` of type `kind`.
    pub const fn new(addr: u64, size: u64, kind: u32) -> Self {
        Self { addr, size, kind }
    }

    /// One past the last address (saturating).
    pub const fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}

/// `struct xen_machphys_mapping` (x86_32): the virtual range of the read-only
/// M2P and the largest MFN it can translate.
#[doc(alias = "xen_machphys_mapping")]
#[doc(alias = "xen_machphys_mapping_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenMachphysMapping {
    pub v_start: XenUlong,
    pub v_end: XenUlong,
    /// Largest MFN the M2P can look up.
    pub max_mfn: XenUlong,
}

assert_abi_layout!(
    XenMachphysMapping,
    size = 12,
    align = 4,
    v_start = 0,
    v_end = 4,
    max_mfn = 8
);

impl XenMachphysMapping {
    /// `u32` entries between `v_start` and `v_end`.
    pub const fn nr_entries(&self) -> u32 {
        self.v_end.saturating_sub(self.v_start) / 4
    }
}

/// `struct xen_machphys_mfn_list` (x86_32).
#[doc(alias = "xen_machphys_mfn_list")]
#[doc(alias = "xen_machphys_mfn_list_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenMachphysMfnList {
    pub max_extents: u32,
    /// Guest address of a `xen_pfn_t` array.
    pub extent_start: GuestAddr,
    pub nr_extents: u32,
}

assert_abi_layout!(
    XenMachphysMfnList,
    size = 12,
    align = 4,
    max_extents = 0,
    extent_start = 4,
    nr_extents = 8,
);

/// `struct xen_add_to_physmap` (x86_32).
#[doc(alias = "xen_add_to_physmap")]
#[doc(alias = "xen_add_to_physmap_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenAddToPhysmap {
    pub domid: DomId,
    /// Pages, for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space.
    pub idx: XenUlong,
    /// Where the page should appear.
    pub gpfn: XenPfn,
}

assert_abi_layout!(
    XenAddToPhysmap,
    size = 16,
    align = 4,
    domid = 0,
    size = 2,
    space = 4,
    idx = 8,
    gpfn = 12,
);

/// `struct xen_remove_from_physmap` (x86_32).
#[doc(alias = "xen_remove_from_physmap")]
#[doc(alias = "xen_remove_from_physmap_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenRemoveFromPhysmap {
    pub domid: DomId,
    pub _pad0: u16,
    pub gpfn: XenPfn,
}

assert_abi_layout!(
    XenRemoveFromPhysmap,
    size = 8,
    align = 4,
    domid = 0,
    gpfn = 4
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_entry_is_the_bios_byte_format() {
        let e = E820Entry::new(0x10_0000, 0x3FF0_0000, E820_RAM);
        let mut expected = [0u8; 20];
        expected[0..8].copy_from_slice(&0x10_0000u64.to_le_bytes());
        expected[8..16].copy_from_slice(&0x3FF0_0000u64.to_le_bytes());
        expected[16..20].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(e.as_bytes(), &expected);
        assert_eq!(E820Entry::read_from_bytes(&expected).unwrap(), e);
        assert_eq!(e.end(), 0x4000_0000);
        // An array has a 20-byte stride, as Xen writes it.
        let map = [e, E820Entry::new(0xF000_0000, 0x1000, E820_RESERVED)];
        assert_eq!(map.as_bytes().len(), 40);
        assert_eq!(&map.as_bytes()[20..28], &0xF000_0000u64.to_le_bytes());
    }

    #[test]
    fn machphys_entries() {
        let m = XenMachphysMapping {
            v_start: 0xF580_0000,
            v_end: 0xFFE0_0000,
            max_mfn: 0,
        };
        assert_eq!(m.nr_entries(), 0x0298_0000);
        assert_eq!(XENMEMF_node(0), 0x100);
        assert_eq!(XENMEMF_address_bits(32), 32);
    }
}
