//! Physical-device operations: `physdev.h` (interface 0x00040e00), x86_32
//! layout.
//!
//! `HYPERVISOR_physdev_op(PHYSDEVOP_*, &struct)`. A PV guest uses it for the
//! virtual IOPL and I/O bitmap that decide whether its `in`/`out`
//! instructions are allowed (they trap and are emulated by Xen).

// Constants keep Xen's spellings (`PHYSDEVOP_set_iopl`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86_32::GuestAddr;

/// `PHYSDEVOP_IRQ_UNMASK_NOTIFY` (obsolete).
pub const PHYSDEVOP_IRQ_UNMASK_NOTIFY: u32 = 4;
/// `PHYSDEVOP_irq_status_query`.
pub const PHYSDEVOP_irq_status_query: u32 = 5;
/// `PHYSDEVOP_set_iopl` (`struct physdev_set_iopl`).
pub const PHYSDEVOP_set_iopl: u32 = 6;
/// `PHYSDEVOP_set_iobitmap` (`struct physdev_set_iobitmap`).
pub const PHYSDEVOP_set_iobitmap: u32 = 7;
/// `PHYSDEVOP_apic_read`.
pub const PHYSDEVOP_apic_read: u32 = 8;
/// `PHYSDEVOP_apic_write`.
pub const PHYSDEVOP_apic_write: u32 = 9;
/// `PHYSDEVOP_alloc_irq_vector`.
pub const PHYSDEVOP_alloc_irq_vector: u32 = 10;
/// `PHYSDEVOP_free_irq_vector`.
pub const PHYSDEVOP_free_irq_vector: u32 = 11;
/// `PHYSDEVOP_eoi`.
pub const PHYSDEVOP_eoi: u32 = 12;
/// `PHYSDEVOP_map_pirq`.
pub const PHYSDEVOP_map_pirq: u32 = 13;
/// `PHYSDEVOP_unmap_pirq`.
pub const PHYSDEVOP_unmap_pirq: u32 = 14;
/// `PHYSDEVOP_manage_pci_add`.
pub const PHYSDEVOP_manage_pci_add: u32 = 15;
/// `PHYSDEVOP_manage_pci_remove`.
pub const PHYSDEVOP_manage_pci_remove: u32 = 16;
/// `PHYSDEVOP_pirq_eoi_gmfn_v1`.
pub const PHYSDEVOP_pirq_eoi_gmfn_v1: u32 = 17;
/// `PHYSDEVOP_restore_msi`.
pub const PHYSDEVOP_restore_msi: u32 = 19;
/// `PHYSDEVOP_manage_pci_add_ext`.
pub const PHYSDEVOP_manage_pci_add_ext: u32 = 20;
/// `PHYSDEVOP_setup_gsi`.
pub const PHYSDEVOP_setup_gsi: u32 = 21;
/// `PHYSDEVOP_get_free_pirq`.
pub const PHYSDEVOP_get_free_pirq: u32 = 23;
/// `PHYSDEVOP_pci_mmcfg_reserved`.
pub const PHYSDEVOP_pci_mmcfg_reserved: u32 = 24;
/// `PHYSDEVOP_pci_device_add`.
pub const PHYSDEVOP_pci_device_add: u32 = 25;
/// `PHYSDEVOP_pci_device_remove`.
pub const PHYSDEVOP_pci_device_remove: u32 = 26;
/// `PHYSDEVOP_restore_msi_ext`.
pub const PHYSDEVOP_restore_msi_ext: u32 = 27;
/// `PHYSDEVOP_pirq_eoi_gmfn_v2` (= `PHYSDEVOP_pirq_eoi_gmfn`).
pub const PHYSDEVOP_pirq_eoi_gmfn_v2: u32 = 28;
/// `PHYSDEVOP_dbgp_op`.
pub const PHYSDEVOP_dbgp_op: u32 = 29;
/// `PHYSDEVOP_prepare_msix`.
pub const PHYSDEVOP_prepare_msix: u32 = 30;
/// `PHYSDEVOP_release_msix`.
pub const PHYSDEVOP_release_msix: u32 = 31;

/// `XENIRQSTAT_needs_eoi` in `physdev_irq_status_query.flags`.
pub const XENIRQSTAT_needs_eoi: u32 = 1 << 0;
/// `XENIRQSTAT_shared`.
pub const XENIRQSTAT_shared: u32 = 1 << 1;

/// `struct physdev_set_iopl`: the virtual IOPL (0-3) of the calling vCPU.
#[doc(alias = "physdev_set_iopl")]
#[doc(alias = "physdev_set_iopl_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct PhysdevSetIopl {
    pub iopl: u32,
}

assert_abi_layout!(PhysdevSetIopl, size = 4, align = 4, iopl = 0);

/// `struct physdev_set_iobitmap` (x86_32): the I/O permission bitmap (a set
/// bit denies the port, as in a TSS). Xen keeps the address and reads the
/// bitmap on every trapped I/O instruction.
#[doc(alias = "physdev_set_iobitmap")]
#[doc(alias = "physdev_set_iobitmap_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct PhysdevSetIobitmap {
    /// Guest address of the bitmap.
    pub bitmap: GuestAddr,
    /// Ports covered by the bitmap.
    pub nr_ports: u32,
}

assert_abi_layout!(
    PhysdevSetIobitmap,
    size = 8,
    align = 4,
    bitmap = 0,
    nr_ports = 4
);

/// `struct physdev_eoi`.
#[doc(alias = "physdev_eoi")]
#[doc(alias = "physdev_eoi_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct PhysdevEoi {
    pub irq: u32,
}

assert_abi_layout!(PhysdevEoi, size = 4, align = 4, irq = 0);

/// `struct physdev_irq_status_query`.
#[doc(alias = "physdev_irq_status_query")]
#[doc(alias = "physdev_irq_status_query_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct PhysdevIrqStatusQuery {
    /// IN.
    pub irq: u32,
    /// OUT: `XENIRQSTAT_*`.
    pub flags: u32,
}

assert_abi_layout!(
    PhysdevIrqStatusQuery,
    size = 8,
    align = 4,
    irq = 0,
    flags = 4
);
