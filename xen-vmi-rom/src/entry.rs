//! The PV image's entry point, boot stack and Xen ELF notes.
//!
//! Xen's domain builder enters `_start` in ring 1 with paging on, `%esi` =
//! the virtual address of start_info (xen/include/public/xen.h, "start of
//! day" comment), a one-page boot stack, and events masked.

// The notes Xen's ELF loader reads (xen/include/public/elfnote.h). Numbers
// are XEN_ELFNOTE_*: 2 HYPERCALL_PAGE, 3 VIRT_BASE, 4 PADDR_OFFSET,
// 5 XEN_VERSION, 6 GUEST_OS, 8 LOADER, 9 PAE_MODE, 10 FEATURES,
// 12 HV_START_LOW. VIRT_BASE = PADDR_OFFSET = 0: virtual = pseudo-physical.
core::arch::global_asm!(
    r#"
    .macro xen_note_str type, text
        .balign 4
        .long 4, 2f - 1f, \type
        .asciz "Xen"
        .balign 4
    1:  .asciz "\text"
    2:  .balign 4
    .endm
    .macro xen_note_long type, value
        .balign 4
        .long 4, 4, \type
        .asciz "Xen"
        .balign 4
        .long \value
    .endm

    .pushsection .note.Xen, "a", @note
    xen_note_str  6, "xen-vmi-rom"
    xen_note_str  8, "generic"
    xen_note_str  5, "xen-3.0"
    xen_note_str  9, "yes"
    xen_note_str 10, "pae_pgdir_above_4gb"
    xen_note_long 2, hypercall_page
    xen_note_long 3, 0
    xen_note_long 4, 0
    xen_note_long 12, 0xF5800000
    .popsection

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
