//! The PV image's entry point, boot stack and Xen ELF notes.
//!
//! Xen's domain builder enters `_start` in ring 1 with paging on, `%esi` =
//! the virtual address of start_info (xen/include/public/xen.h, "start of
//! day" comment), a one-page boot stack, and events masked.

use xen_abi::elfnote::*;
use xen_abi::xen_elf_note;

// The notes Xen's ELF loader reads (elfnote.h). VIRT_BASE = PADDR_OFFSET = 0:
// virtual = pseudo-physical; "generic" loader; PAE with extended CR3 ("yes"),
// which lets Xen place page-table roots above 4 GiB.
xen_elf_note!(static NOTE_GUEST_OS = string(XEN_ELFNOTE_GUEST_OS, "xen-vmi-rom"));
xen_elf_note!(static NOTE_LOADER = string(XEN_ELFNOTE_LOADER, "generic"));
xen_elf_note!(static NOTE_XEN_VERSION = string(XEN_ELFNOTE_XEN_VERSION, "xen-3.0"));
xen_elf_note!(static NOTE_PAE_MODE = string(XEN_ELFNOTE_PAE_MODE, "yes"));
xen_elf_note!(static NOTE_FEATURES = string(XEN_ELFNOTE_FEATURES, "pae_pgdir_above_4gb"));
xen_elf_note!(static NOTE_VIRT_BASE = numeric(XEN_ELFNOTE_VIRT_BASE, 0));
xen_elf_note!(static NOTE_PADDR_OFFSET = numeric(XEN_ELFNOTE_PADDR_OFFSET, 0));
xen_elf_note!(static NOTE_HV_START_LOW = numeric(XEN_ELFNOTE_HV_START_LOW, 0xF580_0000));
xen_elf_note!(static NOTE_HYPERCALL_PAGE = address(XEN_ELFNOTE_HYPERCALL_PAGE, &raw const hypercall_page));

extern "C" {
    static hypercall_page: u8;
}

core::arch::global_asm!(
    r#"
    .pushsection .text.hypercall_page, "ax"
    .fill 4096, 1, 0xCC
    .popsection

    .pushsection .text.entry, "ax"
    .globl _start
_start:
    cld
    mov esp, offset {stack} + {stack_size}
    push esi
    call {main}
    ud2
    .popsection
    "#,
    stack = sym BOOT_STACK,
    stack_size = const BOOT_STACK_SIZE,
    main = sym crate::pv_main,
);

const BOOT_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct BootStack([u8; BOOT_STACK_SIZE]);

/// The stack the image runs on (the builder's single page is too small for
/// formatted console output). Only the entry code touches it, by address.
static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);
