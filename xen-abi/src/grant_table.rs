//! Grant tables: `grant_table.h` (interface 0x00040e00), x86_32 layout.
//!
//! `HYPERVISOR_grant_table_op(cmd, uop, count)` with `cmd` one of
//! `GNTTABOP_*` and `uop` an array of `count` structures. Each structure has
//! its own `status` (`GNTST_*`); the hypercall's return value only says
//! whether the array could be processed.

// Constants keep Xen's spellings (`GNTTABOP_setup_table`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86_32::{AbiU64, GuestAddr};
use crate::xen::DomId;

/// `grant_ref_t`.
#[doc(alias = "grant_ref_t")]
pub type GrantRef = u32;
/// `grant_handle_t`.
#[doc(alias = "grant_handle_t")]
pub type GrantHandle = u32;

/// `GNTTABOP_map_grant_ref`.
pub const GNTTABOP_map_grant_ref: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`.
pub const GNTTABOP_unmap_grant_ref: u32 = 1;
/// `GNTTABOP_setup_table`.
pub const GNTTABOP_setup_table: u32 = 2;
/// `GNTTABOP_dump_table`.
pub const GNTTABOP_dump_table: u32 = 3;
/// `GNTTABOP_transfer`.
pub const GNTTABOP_transfer: u32 = 4;
/// `GNTTABOP_copy`.
pub const GNTTABOP_copy: u32 = 5;
/// `GNTTABOP_query_size`.
pub const GNTTABOP_query_size: u32 = 6;
/// `GNTTABOP_unmap_and_replace`.
pub const GNTTABOP_unmap_and_replace: u32 = 7;
/// `GNTTABOP_set_version`.
pub const GNTTABOP_set_version: u32 = 8;
/// `GNTTABOP_get_status_frames`.
pub const GNTTABOP_get_status_frames: u32 = 9;
/// `GNTTABOP_get_version`.
pub const GNTTABOP_get_version: u32 = 10;
/// `GNTTABOP_swap_grant_ref`.
pub const GNTTABOP_swap_grant_ref: u32 = 11;
/// `GNTTABOP_cache_flush`.
pub const GNTTABOP_cache_flush: u32 = 12;

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries kept for the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `GTF_invalid`.
pub const GTF_invalid: u16 = 0;
/// `GTF_permit_access`.
pub const GTF_permit_access: u16 = 1;
/// `GTF_accept_transfer`.
pub const GTF_accept_transfer: u16 = 2;
/// `GTF_transitive`.
pub const GTF_transitive: u16 = 3;
/// `GTF_type_mask`.
pub const GTF_type_mask: u16 = 3;
/// `GTF_readonly`.
pub const GTF_readonly: u16 = 1 << 2;
/// `GTF_reading`.
pub const GTF_reading: u16 = 1 << 3;
/// `GTF_writing`.
pub const GTF_writing: u16 = 1 << 4;
/// `GTF_PWT`.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD`.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT`.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page`.
pub const GTF_sub_page: u16 = 1 << 8;
/// `GTF_transfer_committed`.
pub const GTF_transfer_committed: u16 = 1 << 2;
/// `GTF_transfer_completed`.
pub const GTF_transfer_completed: u16 = 1 << 3;

/// `GNTMAP_device_map`.
pub const GNTMAP_device_map: u32 = 1 << 0;
/// `GNTMAP_host_map`.
pub const GNTMAP_host_map: u32 = 1 << 1;
/// `GNTMAP_readonly`.
pub const GNTMAP_readonly: u32 = 1 << 2;
/// `GNTMAP_application_map`.
pub const GNTMAP_application_map: u32 = 1 << 3;
/// `GNTMAP_contains_pte`.
pub const GNTMAP_contains_pte: u32 = 1 << 4;
/// `GNTMAP_guest_avail_mask`.
pub const GNTMAP_guest_avail_mask: u32 = !0 << 16;

/// `GNTST_okay`.
pub const GNTST_okay: i16 = 0;
/// `GNTST_general_error`.
pub const GNTST_general_error: i16 = -1;
/// `GNTST_bad_domain`.
pub const GNTST_bad_domain: i16 = -2;
/// `GNTST_bad_gntref`.
pub const GNTST_bad_gntref: i16 = -3;
/// `GNTST_bad_handle`.
pub const GNTST_bad_handle: i16 = -4;
/// `GNTST_bad_virt_addr`.
pub const GNTST_bad_virt_addr: i16 = -5;
/// `GNTST_bad_dev_addr`.
pub const GNTST_bad_dev_addr: i16 = -6;
/// `GNTST_no_device_space`.
pub const GNTST_no_device_space: i16 = -7;
/// `GNTST_permission_denied`.
pub const GNTST_permission_denied: i16 = -8;
/// `GNTST_bad_page`.
pub const GNTST_bad_page: i16 = -9;
/// `GNTST_bad_copy_arg`.
pub const GNTST_bad_copy_arg: i16 = -10;
/// `GNTST_address_too_big`.
pub const GNTST_address_too_big: i16 = -11;
/// `GNTST_eagain`.
pub const GNTST_eagain: i16 = -12;
/// `GNTST_no_space`.
pub const GNTST_no_space: i16 = -13;

/// `struct grant_entry_v1`: one entry of a version-1 grant table. Write
/// `domid` and `frame` first, then (after a write barrier) `flags`.
#[doc(alias = "grant_entry_v1")]
#[doc(alias = "grant_entry_v1_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct GrantEntryV1 {
    /// `GTF_*`.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: DomId,
    /// The frame (a GFN; for a PV guest its MFN).
    pub frame: u32,
}

assert_abi_layout!(
    GrantEntryV1,
    size = 8,
    align = 4,
    flags = 0,
    domid = 2,
    frame = 4
);

/// `struct gnttab_setup_table` (x86_32).
#[doc(alias = "gnttab_setup_table")]
#[doc(alias = "gnttab_setup_table_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct GnttabSetupTable {
    /// IN.
    pub dom: DomId,
    pub _pad0: u16,
    /// IN: frames wanted.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    pub _pad1: u16,
    /// IN: guest address of a `xen_pfn_t` array; OUT: for a PV guest, the
    /// MFNs of the table frames (map them yourself).
    pub frame_list: GuestAddr,
}

assert_abi_layout!(
    GnttabSetupTable,
    size = 16,
    align = 4,
    dom = 0,
    nr_frames = 4,
    status = 8,
    frame_list = 12,
);

/// `struct gnttab_query_size`.
#[doc(alias = "gnttab_query_size")]
#[doc(alias = "gnttab_query_size_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct GnttabQuerySize {
    /// IN.
    pub dom: DomId,
    pub _pad0: u16,
    /// OUT.
    pub nr_frames: u32,
    /// OUT.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    pub _pad1: u16,
}

assert_abi_layout!(
    GnttabQuerySize,
    size = 16,
    align = 4,
    dom = 0,
    nr_frames = 4,
    max_nr_frames = 8,
    status = 12,
);

/// `struct gnttab_map_grant_ref` (x86_32).
#[doc(alias = "gnttab_map_grant_ref")]
#[doc(alias = "gnttab_map_grant_ref_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct GnttabMapGrantRef {
    /// IN: virtual address, or PTE machine address with `GNTMAP_contains_pte`.
    pub host_addr: AbiU64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN.
    #[doc(alias = "ref")]
    pub grant_ref: GrantRef,
    /// IN.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT.
    pub handle: GrantHandle,
    /// OUT.
    pub dev_bus_addr: AbiU64,
}

assert_abi_layout!(
    GnttabMapGrantRef,
    size = 32,
    align = 4,
    host_addr = 0,
    flags = 8,
    grant_ref = 12,
    dom = 16,
    status = 18,
    handle = 20,
    dev_bus_addr = 24,
);

/// `struct gnttab_unmap_grant_ref` (x86_32).
#[doc(alias = "gnttab_unmap_grant_ref")]
#[doc(alias = "gnttab_unmap_grant_ref_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct GnttabUnmapGrantRef {
    /// IN.
    pub host_addr: AbiU64,
    /// IN.
    pub dev_bus_addr: AbiU64,
    /// IN.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
    pub _pad0: u16,
}

assert_abi_layout!(
    GnttabUnmapGrantRef,
    size = 24,
    align = 4,
    host_addr = 0,
    dev_bus_addr = 8,
    handle = 16,
    status = 20,
);
