//! The bzImage packaging of the generic VMI guest (the kernel is the
//! library, src/lib.rs).
//!
//! A Linux/x86 bzImage (boot protocol 2.10): a real-mode setup for loaders
//! that run it ([`setup`]), and a 32-bit entry at 1 MiB (`code32_start`)
//! for loaders that use the 32-bit boot protocol, entered in protected mode
//! with paging off, interrupts off, CS = `__BOOT_CS` (0x10) and DS = ES =
//! SS = `__BOOT_DS` (0x18) of a loader's GDT, ESI = the boot parameters
//! (Documentation/x86/boot.txt, "32-bit BOOT PROTOCOL").
//!
//! The entry does what Linux's head_32.S does first: reload the data
//! segments (unless the loader set KEEP_SEGMENTS), clear BSS, copy the boot
//! parameters out of the way. Then [`early`] does a Linux-style early boot
//! natively, before any VMI ROM is looked for, recording what it saw; the
//! common kernel ([`vmi_guest::kmain::run`]) reports those records as the
//! first cases, once the console is up, and then runs the usual suite.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod early;
#[cfg(target_os = "none")]
mod setup;

#[cfg(target_os = "none")]
mod entry {
    use vmi_guest::boot::{BOOT_STACK, STACK_SIZE};

    core::arch::global_asm!(
        r#"
        .pushsection .text.entry, "ax"
        .globl _start
    _start:
        cld
        cli
        /* loadflags KEEP_SEGMENTS: the loader asks for its segments as
           they are; else reload __BOOT_DS (head_32.S does the same). */
        testb $0x40, 0x211(%esi)
        jnz 1f
        movl $0x18, %eax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
    1:
        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        xorl %eax, %eax
        rep stosb
        /* The boot parameters, out of the way (ESI still points at them). */
        movl ${params}, %edi
        movl $1024, %ecx
        rep movsl
        movl ${stack} + {stack_size}, %esp
        call {main}
        ud2
        .popsection
        "#,
        params = sym crate::early::BOOT_PARAMS,
        stack = sym BOOT_STACK,
        stack_size = const STACK_SIZE,
        main = sym crate::early::early_main,
        options(att_syntax)
    );
}

/// A host build only exists so that workspace-wide host checks can run;
/// the kernel is the i686 image built by tools/build-images.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("vmi-guest-bzimage is an i686 kernel image: build it with tools/build-images");
}
