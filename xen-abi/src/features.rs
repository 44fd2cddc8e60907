//! Feature flags reported by `XENVER_get_features`: `features.h`
//! (interface 0x00040e00).
//!
//! Submap 0 holds bits 0-31; a feature `f` is present if bit `f % 32` of
//! submap `f / 32` is set.

// Constants keep Xen's spellings (`XENFEAT_writable_page_tables`).
#![allow(non_upper_case_globals)]

/// `XENFEAT_writable_page_tables`: the guest may write its page tables
/// directly (auto-translated guests).
pub const XENFEAT_writable_page_tables: u32 = 0;
/// `XENFEAT_writable_descriptor_tables`.
pub const XENFEAT_writable_descriptor_tables: u32 = 1;
/// `XENFEAT_auto_translated_physmap`: Xen translates PFNs itself.
pub const XENFEAT_auto_translated_physmap: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel`: the kernel runs in ring 0.
pub const XENFEAT_supervisor_mode_kernel: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb`: a PAE L3 may be above 4 GB (set when the
/// `pae_extended_cr3` assist is on).
pub const XENFEAT_pae_pgdir_above_4gb: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad`: `MMU_PT_UPDATE_PRESERVE_AD` exists.
pub const XENFEAT_mmu_pt_update_preserve_ad: u32 = 5;
/// `XENFEAT_highmem_assist`: `MMUEXT_{CLEAR,COPY}_PAGE` exist.
pub const XENFEAT_highmem_assist: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits`.
pub const XENFEAT_gnttab_map_avail_bits: u32 = 7;
/// `XENFEAT_hvm_callback_vector`.
pub const XENFEAT_hvm_callback_vector: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`.
pub const XENFEAT_hvm_safe_pvclock: u32 = 9;
/// `XENFEAT_hvm_pirqs`.
pub const XENFEAT_hvm_pirqs: u32 = 10;
/// `XENFEAT_dom0`: operation as dom0 is supported.
pub const XENFEAT_dom0: u32 = 11;
/// `XENFEAT_grant_map_identity`.
pub const XENFEAT_grant_map_identity: u32 = 12;
/// `XENFEAT_memory_op_vnode_supported`.
pub const XENFEAT_memory_op_vnode_supported: u32 = 13;
/// `XENFEAT_ARM_SMCCC_supported`.
pub const XENFEAT_ARM_SMCCC_supported: u32 = 14;
/// `XENFEAT_linux_rsdp_unrestricted`.
pub const XENFEAT_linux_rsdp_unrestricted: u32 = 15;
/// `XENFEAT_not_direct_mapped`.
pub const XENFEAT_not_direct_mapped: u32 = 16;
/// `XENFEAT_direct_mapped`.
pub const XENFEAT_direct_mapped: u32 = 17;
/// `XENFEAT_NR_SUBMAPS`: 32-bit submaps there are.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// The name of feature `feature` as `XEN_ELFNOTE_FEATURES` spells it.
pub const fn feature_name(feature: u32) -> Option<&'static str> {
    Some(match feature {
        0 => "writable_page_tables",
        1 => "writable_descriptor_tables",
        2 => "auto_translated_physmap",
        3 => "supervisor_mode_kernel",
        4 => "pae_pgdir_above_4gb",
        5 => "mmu_pt_update_preserve_ad",
        6 => "highmem_assist",
        7 => "gnttab_map_avail_bits",
        8 => "hvm_callback_vector",
        9 => "hvm_safe_pvclock",
        10 => "hvm_pirqs",
        11 => "dom0",
        12 => "grant_map_identity",
        13 => "memory_op_vnode_supported",
        14 => "ARM_SMCCC_supported",
        15 => "linux_rsdp_unrestricted",
        16 => "not_direct_mapped",
        17 => "direct_mapped",
        _ => return None,
    })
}

/// Whether `submap` (submap number `feature / 32`) has `feature`.
pub const fn submap_has(submap: u32, feature: u32) -> bool {
    submap & (1 << (feature % 32)) != 0
}
