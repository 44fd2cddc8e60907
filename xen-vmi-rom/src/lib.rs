//! xen-vmi-rom: the VMI ROM for Xen and the PV loader that carries it.
//!
//! This library is the host-testable part shared by the two i686 images
//! (`src/bin/rom`, the position-independent ROM; `src/bin/loader`, the Xen
//! PV image): the memory layout both agree on, and the pure logic behind
//! them. Design notes: docs/boot-contract.md, docs/page-tables.md.
#![cfg_attr(not(test), no_std)]
// The ROM must fit the option-ROM header's 255 blocks of 512 bytes. Its
// cold code (boot, decoding and port emulation, error reports) is marked
// `optimize(size)` so the hot paths can stay at opt-level 2; the pinned
// i686 toolchain accepts the attribute (RUSTC_BOOTSTRAP), the host build
// never sees it.
#![cfg_attr(feature = "image", feature(optimize_attribute))]

pub mod boot_plan;
pub mod bundle;
pub mod console_ring;
pub mod descriptors;
pub mod kernel_image;
pub mod layout;
pub mod linux_boot;
pub mod mmu_calls;
pub mod rom_state;
pub mod rtc;
pub mod shadow_cache;
pub mod shadow_entry;
pub mod timekeeping;

pub mod decode;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod ports;
pub mod uart;
