//! The multiboot packaging of the generic VMI guest (the kernel is the
//! library, src/lib.rs): the multiboot (v1) header, and the 32-bit entry a
//! multiboot loader jumps to (protected mode, paging off, interrupts off,
//! EAX = 0x2BADB002, EBX = physical address of the multiboot information).
//!
//! Numbers: the Multiboot Specification 0.6.96, "Header magic fields",
//! "Machine state".
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod entry {
    use vmi_guest::boot::{BOOT_STACK, STACK_SIZE};

    /// Header magic the loader looks for in the first 8 KiB of the image.
    const MULTIBOOT_HEADER_MAGIC: u32 = 0x1BAD_B002;
    /// Header flags: bit 0 = page-align modules, bit 1 = pass memory
    /// information.
    const MULTIBOOT_HEADER_FLAGS: u32 = 0x0000_0003;

    core::arch::global_asm!(
        r#"
        .pushsection .text.multiboot, "ax"
        .balign 4
        .long {magic}
        .long {flags}
        .long -({magic} + {flags})
        .popsection

        .pushsection .text.entry, "ax"
        .globl _start
    _start:
        cli
        cld
        mov esi, eax
        mov ebp, ebx
        mov edi, offset __bss_start
        mov ecx, offset __bss_end
        sub ecx, edi
        xor eax, eax
        rep stosb
        mov esp, offset {stack} + {stack_size}
        push ebp
        push esi
        call {main}
        ud2
        .popsection
        "#,
        magic = const MULTIBOOT_HEADER_MAGIC,
        flags = const MULTIBOOT_HEADER_FLAGS,
        stack = sym BOOT_STACK,
        stack_size = const STACK_SIZE,
        main = sym vmi_guest::kmain::kmain,
    );
}

/// A host build only exists so that workspace-wide host checks can run;
/// the kernel is the i686 image built by tools/build-images.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("vmi-guest is an i686 kernel image: build it with tools/build-images");
}
