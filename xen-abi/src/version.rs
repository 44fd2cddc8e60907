//! Version and capability queries: `version.h` (interface 0x00040e00).
//!
//! `HYPERVISOR_xen_version(cmd, arg)`. All commands return 0 on success
//! except `XENVER_version` (`major << 16 | minor`) and `XENVER_pagesize`.
//! `xen_version(XENVER_version, NULL)` is also the cheapest hypercall, which
//! Linux uses to force delivery of pending events.

// Constants keep Xen's spellings (`XENVER_get_features`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86_32::XenUlong;

/// `XENVER_version`: returns `major << 16 | minor` (arg NULL).
pub const XENVER_version: u32 = 0;
/// `XENVER_extraversion` (arg `xen_extraversion_t`).
pub const XENVER_extraversion: u32 = 1;
/// `XENVER_compile_info` (arg `struct xen_compile_info`).
pub const XENVER_compile_info: u32 = 2;
/// `XENVER_capabilities` (arg `xen_capabilities_info_t`): space-separated
/// guest types, e.g. containing "xen-3.0-x86_32p".
pub const XENVER_capabilities: u32 = 3;
/// `XENVER_changeset` (arg `xen_changeset_info_t`).
pub const XENVER_changeset: u32 = 4;
/// `XENVER_platform_parameters` (arg `struct xen_platform_parameters`).
pub const XENVER_platform_parameters: u32 = 5;
/// `XENVER_get_features` (arg `struct xen_feature_info`).
pub const XENVER_get_features: u32 = 6;
/// `XENVER_pagesize`: returns the page size (arg NULL).
pub const XENVER_pagesize: u32 = 7;
/// `XENVER_guest_handle` (arg `xen_domain_handle_t`, 16 bytes).
pub const XENVER_guest_handle: u32 = 8;
/// `XENVER_commandline` (arg `xen_commandline_t`).
pub const XENVER_commandline: u32 = 9;
/// `XENVER_build_id` (arg `struct xen_build_id`).
pub const XENVER_build_id: u32 = 10;

/// `XEN_EXTRAVERSION_LEN`: `sizeof(xen_extraversion_t)`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// `XEN_CAPABILITIES_INFO_LEN`: `sizeof(xen_capabilities_info_t)`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// `XEN_CHANGESET_INFO_LEN`: `sizeof(xen_changeset_info_t)`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
/// `sizeof(xen_commandline_t)`.
pub const XEN_COMMANDLINE_LEN: usize = 1024;
/// `sizeof(xen_domain_handle_t)`.
pub const XEN_DOMAIN_HANDLE_LEN: usize = 16;

/// `xen_extraversion_t`.
#[doc(alias = "xen_extraversion_t")]
pub type XenExtraversion = [u8; XEN_EXTRAVERSION_LEN];
/// `xen_capabilities_info_t`.
#[doc(alias = "xen_capabilities_info_t")]
pub type XenCapabilitiesInfo = [u8; XEN_CAPABILITIES_INFO_LEN];
/// `xen_changeset_info_t`.
#[doc(alias = "xen_changeset_info_t")]
pub type XenChangesetInfo = [u8; XEN_CHANGESET_INFO_LEN];
/// `xen_commandline_t`.
#[doc(alias = "xen_commandline_t")]
pub type XenCommandline = [u8; XEN_COMMANDLINE_LEN];
/// `xen_domain_handle_t`.
#[doc(alias = "xen_domain_handle_t")]
pub type XenDomainHandle = [u8; XEN_DOMAIN_HANDLE_LEN];

/// `struct xen_compile_info`.
#[doc(alias = "xen_compile_info")]
#[doc(alias = "xen_compile_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenCompileInfo {
    pub compiler: [u8; 64],
    pub compile_by: [u8; 16],
    pub compile_domain: [u8; 32],
    pub compile_date: [u8; 32],
}

assert_abi_layout!(
    XenCompileInfo,
    size = 144,
    align = 1,
    compiler = 0,
    compile_by = 64,
    compile_domain = 80,
    compile_date = 112,
);

/// `struct xen_platform_parameters` (x86_32).
#[doc(alias = "xen_platform_parameters")]
#[doc(alias = "xen_platform_parameters_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenPlatformParameters {
    /// Start of the hypervisor hole for this domain (0xF5800000 for a domU).
    pub virt_start: XenUlong,
}

assert_abi_layout!(XenPlatformParameters, size = 4, align = 4, virt_start = 0);

/// `struct xen_feature_info`.
#[doc(alias = "xen_feature_info")]
#[doc(alias = "xen_feature_info_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap.
    pub submap_idx: u32,
    /// OUT: the submap (`XENFEAT_*` bits).
    pub submap: u32,
}

assert_abi_layout!(
    XenFeatureInfo,
    size = 8,
    align = 4,
    submap_idx = 0,
    submap = 4
);

/// The result of `XENVER_version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct XenVersion {
    pub major: u16,
    pub minor: u16,
}

impl XenVersion {
    /// Decodes `major << 16 | minor`.
    pub const fn from_raw(raw: u32) -> Self {
        Self {
            major: (raw >> 16) as u16,
            minor: raw as u16,
        }
    }
}
