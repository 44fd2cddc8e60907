//! The real-mode setup of the bzImage packaging: what a boot loader that
//! follows the Linux boot protocol's real-mode path (QEMU's `-kernel`)
//! enters, at offset 0x200 of the image in real mode, with CS = the setup's
//! segment + 0x20 (Documentation/x86/boot.txt, "RUNNING THE KERNEL").
//!
//! It does what Linux's own setup does for a 32-bit kernel, in little:
//! masks the 8259s, fills the boot parameters ("zero page") from the
//! header the loader filled in and from the BIOS memory map (INT 15h
//! AX=E820), opens the A20 gate, loads a GDT with the boot protocol's flat
//! `__BOOT_CS` (0x10) and `__BOOT_DS` (0x18), switches to protected mode and
//! jumps to `code32_start` with ESI = the boot parameters, EBX = EBP = EDI
//! = 0, as the 32-bit boot protocol wants. A loader that uses the 32-bit
//! protocol itself never runs this code.
//!
//! Offsets are relative to the setup's start (section `.setup`, linked at
//! 0); vmi-pack fills `setup_sects`, `syssize` and `init_size` once the
//! sizes are known.

/// Where the boot parameters are built (setup-relative; the setup itself
/// stays below 4 KiB, guest-bzimage.ld).
pub const BOOT_PARAMS: u32 = 0x1000;
/// Top of the setup's stack (setup-relative), above the boot parameters.
pub const SETUP_STACK_TOP: u32 = 0x3000;

core::arch::global_asm!(
    r#"
    .pushsection .setup, "ax"
    .code16

    /* The boot sector (a PC BIOS never boots this image from a disk). */
    .org 0x1F1
    .byte 0                 /* 0x1F1 setup_sects (vmi-pack) */
    .word 0                 /* 0x1F2 root_flags */
    .long 0                 /* 0x1F4 syssize (vmi-pack) */
    .word 0                 /* 0x1F8 ram_size */
    .word 0xFFFF            /* 0x1FA vid_mode: normal */
    .word 0                 /* 0x1FC root_dev */
    .word 0xAA55            /* 0x1FE boot_flag */

    .org 0x200
    .byte 0xEB              /* 0x200 jump over the header */
    .byte 2f - 1f
1:  .ascii "HdrS"           /* 0x202 header */
    .word 0x020A            /* 0x206 version: 2.10 */
    .long 0                 /* 0x208 realmode_swtch */
    .word 0x1000            /* 0x20C start_sys_seg (obsolete) */
    .word .Lkernel_version - 0x200  /* 0x20E kernel_version */
    .byte 0                 /* 0x210 type_of_loader (the loader's) */
    .byte 0x01              /* 0x211 loadflags: LOADED_HIGH */
    .word 0x8000            /* 0x212 setup_move_size */
    .long 0x100000          /* 0x214 code32_start */
    .long 0                 /* 0x218 ramdisk_image (the loader's) */
    .long 0                 /* 0x21C ramdisk_size (the loader's) */
    .long 0                 /* 0x220 bootsect_kludge */
    .word 0                 /* 0x224 heap_end_ptr */
    .byte 0                 /* 0x226 ext_loader_ver */
    .byte 0                 /* 0x227 ext_loader_type */
    .long 0                 /* 0x228 cmd_line_ptr (the loader's) */
    .long 0x37FFFFFF        /* 0x22C initrd_addr_max */
    .long 0x1000            /* 0x230 kernel_alignment */
    .byte 0                 /* 0x234 relocatable_kernel: no */
    .byte 0                 /* 0x235 min_alignment */
    .word 0                 /* 0x236 xloadflags (2.12; 0: not 64-bit) */
    .long 2047              /* 0x238 cmdline_size */
    .long 0                 /* 0x23C hardware_subarch (the loader's) */
    .quad 0                 /* 0x240 hardware_subarch_data */
    .long 0                 /* 0x248 payload_offset: not compressed */
    .long 0                 /* 0x24C payload_length */
    .quad 0                 /* 0x250 setup_data */
    .quad 0x100000          /* 0x258 pref_address */
    .long 0                 /* 0x260 init_size (vmi-pack) */
2:
    .org 0x264

    /* Real mode, CS = setup segment + 0x20, IP = 0 at 0x200. */
    cli
    cld
    movw %cs, %ax
    subw $0x20, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw ${stack}, %sp
    /* CS:IP with the setup's own segment, so offsets are setup-relative. */
    pushw %ax
    pushw $3f
    lretw
3:
    /* Every 8259 IRQ masked: interrupts stay off until the kernel's. */
    movb $0xFF, %al
    outb %al, $0xA1
    outb %al, $0x21

    /* Boot parameters: zero, then the header as the loader left it. */
    movw ${bp}, %di
    movw $4096, %cx
    xorb %al, %al
    rep stosb
    movw $0x1F1, %si
    movw ${bp} + 0x1F1, %di
    movw $0x264 - 0x1F1, %cx
    rep movsb

    /* The BIOS memory map (INT 15h, AX=E820, EDX="SMAP", 20-byte
       entries into ES:DI), at most 128 entries. */
    xorl %ebx, %ebx
    xorw %bp, %bp
    movw ${bp} + 0x2D0, %di
4:  movl $0xE820, %eax
    movl $20, %ecx
    movl $0x534D4150, %edx
    int $0x15
    jc 5f
    cmpl $0x534D4150, %eax
    jne 5f
    incw %bp
    addw $20, %di
    cmpw $128, %bp
    jae 5f
    testl %ebx, %ebx
    jnz 4b
5:  movw %bp, %ax
    movb %al, {bp} + 0x1E8

    /* A20 through the fast gate (port 0x92 bit 1; bit 0 would reset). */
    inb $0x92, %al
    orb $0x02, %al
    andb $0xFE, %al
    outb %al, $0x92

    /* EBX = the setup's linear address. */
    xorl %ebx, %ebx
    movw %ds, %bx
    shll $4, %ebx
    leal .Lboot_gdt(%ebx), %eax
    movl %eax, .Lgdt_pointer + 2
    lgdtl .Lgdt_pointer
    lidtl .Lnull_idt
    leal {bp}(%ebx), %esi
    leal {stack}(%ebx), %edx
    leal .Lprotected(%ebx), %eax
    movl %cr0, %ecx
    orb $0x01, %cl
    movl %ecx, %cr0
    /* Far return into the 32-bit code segment: protected mode. */
    pushl $0x10
    pushl %eax
    lretl

    .code32
.Lprotected:
    movw $0x18, %cx
    movw %cx, %ds
    movw %cx, %es
    movw %cx, %fs
    movw %cx, %gs
    movw %cx, %ss
    movl %edx, %esp
    movl 0x214(%esi), %eax
    xorl %ebx, %ebx
    xorl %ebp, %ebp
    xorl %edi, %edi
    jmp *%eax

    .balign 8
.Lboot_gdt:
    .quad 0
    .quad 0
    .quad 0x00CF9A000000FFFF    /* 0x10 __BOOT_CS: flat 4 GiB, execute/read */
    .quad 0x00CF92000000FFFF    /* 0x18 __BOOT_DS: flat 4 GiB, read/write */
.Lgdt_pointer:
    .word 31
    .long 0
.Lnull_idt:
    .word 0
    .long 0
.Lkernel_version:
    .asciz "vmi-guest (bzImage packaging of the generic VMI guest)"
    .balign 512, 0
    .popsection
    "#,
    bp = const BOOT_PARAMS,
    stack = const SETUP_STACK_TOP,
    options(att_syntax)
);
