//! Processor state instructions: control, debug and descriptor-table
//! registers, MSRs, the TSC, CPUID, the interrupt flag.
//!
//! These are what a kernel executes natively; each VMI call of the native
//! ROM is one of them (the ROM's entry points are assembly, these are for
//! the Rust side of the ROM and the guest's native platform).

use core::arch::asm;

/// The 6-byte operand of LGDT/LIDT/SGDT/SIDT (`struct desc_ptr`).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescriptorTablePointer {
    /// Table size in bytes minus one.
    pub limit: u16,
    /// Linear address of the table.
    pub base: u32,
}

const _: () = assert!(core::mem::size_of::<DescriptorTablePointer>() == 6);

/// EFLAGS.IF.
pub const EFLAGS_IF: u32 = 1 << 9;
/// EFLAGS.IOPL (both bits).
pub const EFLAGS_IOPL: u32 = 3 << 12;
/// EFLAGS.RF (resume flag: suppresses an instruction breakpoint once).
pub const EFLAGS_RF: u32 = 1 << 16;

/// RDTSC.
#[inline]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC reads the time-stamp counter; it faults only with
    // CR4.TSD set outside ring 0, which kernel code never is.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// RDMSR.
///
/// # Safety
/// `msr` must exist (else #GP); reading some MSRs has side effects.
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: per the caller.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// WRMSR.
///
/// # Safety
/// `msr` must exist and accept `value`; an MSR can change anything about
/// the processor.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: per the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// RDPMC.
///
/// # Safety
/// Faults (#GP, or #UD on a processor without counters) unless the counter
/// exists.
#[inline]
pub unsafe fn rdpmc(counter: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: per the caller.
    unsafe {
        asm!("rdpmc", in("ecx") counter, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// CPUID: (EAX, EBX, ECX, EDX) of `leaf`/`subleaf`.
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: CPUID exists on every processor this runs on (i686) and only
    // writes the four registers. EBX is not reserved on i686.
    unsafe {
        asm!("cpuid", inout("eax") leaf => a, out("ebx") b, inout("ecx") subleaf => c, out("edx") d,
             options(nomem, nostack, preserves_flags))
    };
    [a, b, c, d]
}

macro_rules! control_register {
    ($read:ident, $write:ident, $reg:literal, $doc:literal) => {
        #[doc = concat!("Reads ", $doc, ".")]
        #[inline]
        pub fn $read() -> u32 {
            let value: u32;
            // SAFETY: reading a control register has no side effect; kernel
            // code runs in ring 0 where it is allowed.
            unsafe { asm!(concat!("mov {}, ", $reg), out(reg) value, options(nomem, nostack, preserves_flags)) };
            value
        }

        #[doc = concat!("Writes ", $doc, ".")]
        ///
        /// # Safety
        /// Changes paging, protection or caching; the new value must keep
        /// the running code and its data mapped and usable.
        #[inline]
        pub unsafe fn $write(value: u32) {
            // SAFETY: per the caller.
            unsafe { asm!(concat!("mov ", $reg, ", {}"), in(reg) value, options(nostack, preserves_flags)) };
        }
    };
}

control_register!(read_cr0, write_cr0, "cr0", "CR0");
control_register!(
    read_cr2,
    write_cr2,
    "cr2",
    "CR2 (the last page-fault address)"
);
control_register!(read_cr3, write_cr3, "cr3", "CR3 (page-table root)");
control_register!(read_cr4, write_cr4, "cr4", "CR4");

/// CR0.PE: protected mode.
pub const CR0_PE: u32 = 1 << 0;
/// CR0.MP: WAIT/FWAIT honours TS.
pub const CR0_MP: u32 = 1 << 1;
/// CR0.EM: x87 emulation (faults every x87 instruction).
pub const CR0_EM: u32 = 1 << 2;
/// CR0.TS: task switched (the next x87 instruction faults with #NM).
pub const CR0_TS: u32 = 1 << 3;
/// CR0.ET: extension type (hard-wired 1 on i486 and later).
pub const CR0_ET: u32 = 1 << 4;
/// CR0.NE: native x87 error reporting.
pub const CR0_NE: u32 = 1 << 5;
/// CR0.WP: write protection applies to ring 0.
pub const CR0_WP: u32 = 1 << 16;
/// CR0.PG: paging.
pub const CR0_PG: u32 = 1 << 31;
/// CR4.TSD: RDTSC is privileged.
pub const CR4_TSD: u32 = 1 << 2;
/// CR4.DE: debug extensions (DR4/DR5 fault).
pub const CR4_DE: u32 = 1 << 3;
/// CR4.PSE: 4 MiB / 2 MiB pages.
pub const CR4_PSE: u32 = 1 << 4;
/// CR4.PAE: physical address extension (3-level page tables).
pub const CR4_PAE: u32 = 1 << 5;
/// CR4.PGE: global pages.
pub const CR4_PGE: u32 = 1 << 7;
/// CR4.PCE: RDPMC allowed in ring 3.
pub const CR4_PCE: u32 = 1 << 8;
/// CR4.OSFXSR: FXSAVE/FXRSTOR and SSE enabled.
pub const CR4_OSFXSR: u32 = 1 << 9;

/// Reads debug register `n` (0-3, 6, 7); other numbers read 0.
#[inline]
pub fn read_dr(n: u32) -> u32 {
    let value: u32;
    // SAFETY: reading a debug register in ring 0 has no side effect. DR4
    // and DR5 are never touched (they fault with CR4.DE).
    unsafe {
        match n {
            0 => asm!("mov {}, dr0", out(reg) value, options(nomem, nostack, preserves_flags)),
            1 => asm!("mov {}, dr1", out(reg) value, options(nomem, nostack, preserves_flags)),
            2 => asm!("mov {}, dr2", out(reg) value, options(nomem, nostack, preserves_flags)),
            3 => asm!("mov {}, dr3", out(reg) value, options(nomem, nostack, preserves_flags)),
            6 => asm!("mov {}, dr6", out(reg) value, options(nomem, nostack, preserves_flags)),
            7 => asm!("mov {}, dr7", out(reg) value, options(nomem, nostack, preserves_flags)),
            _ => value = 0,
        }
    }
    value
}

/// Writes debug register `n` (0-3, 6, 7); other numbers are ignored.
///
/// # Safety
/// An enabled breakpoint raises #DB, which the kernel must handle.
#[inline]
pub unsafe fn write_dr(n: u32, value: u32) {
    // SAFETY: per the caller.
    unsafe {
        match n {
            0 => asm!("mov dr0, {}", in(reg) value, options(nomem, nostack, preserves_flags)),
            1 => asm!("mov dr1, {}", in(reg) value, options(nomem, nostack, preserves_flags)),
            2 => asm!("mov dr2, {}", in(reg) value, options(nomem, nostack, preserves_flags)),
            3 => asm!("mov dr3, {}", in(reg) value, options(nomem, nostack, preserves_flags)),
            6 => asm!("mov dr6, {}", in(reg) value, options(nomem, nostack, preserves_flags)),
            7 => asm!("mov dr7, {}", in(reg) value, options(nomem, nostack, preserves_flags)),
            _ => {}
        }
    }
}

/// The current EFLAGS.
#[inline]
pub fn read_eflags() -> u32 {
    let flags: u32;
    // SAFETY: PUSHF/POP only touch the stack slot they use.
    unsafe { asm!("pushfd", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags
}

/// CLI.
///
/// # Safety
/// Interrupts stay off until re-enabled; the caller owns that.
#[inline]
pub unsafe fn cli() {
    // SAFETY: per the caller.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// STI.
///
/// # Safety
/// Pending interrupts are delivered after the next instruction; the IDT
/// must be ready for them.
#[inline]
pub unsafe fn sti() {
    // SAFETY: per the caller.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// STI; HLT: waits for an interrupt with interrupts enabled (the STI
/// shadow makes the pair atomic, so a wakeup cannot be lost).
///
/// # Safety
/// As [`sti`]; returns after the interrupt handler ran.
#[inline]
pub unsafe fn safe_halt() {
    // SAFETY: per the caller.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

/// Sets EFLAGS.IOPL to the bits of `mask` (pre-shifted, `3 << 12` = IOPL 3).
///
/// # Safety
/// Ring 3 code running with a non-zero IOPL may do port I/O and CLI/STI.
#[inline]
pub unsafe fn set_iopl_mask(mask: u32) {
    // SAFETY: per the caller; POPF in ring 0 may change IOPL.
    unsafe {
        asm!(
            "pushfd",
            "and dword ptr [esp], {clear}",
            "or dword ptr [esp], {bits}",
            "popfd",
            clear = const !EFLAGS_IOPL,
            bits = in(reg) mask & EFLAGS_IOPL,
        )
    };
}

/// CLTS: clears CR0.TS.
///
/// # Safety
/// The next x87 instruction no longer faults: the caller owns the FPU state.
#[inline]
pub unsafe fn clts() {
    // SAFETY: per the caller.
    unsafe { asm!("clts", options(nomem, nostack, preserves_flags)) };
}

/// WBINVD: writes back and invalidates the caches.
#[inline]
pub fn wbinvd() {
    // SAFETY: memory contents are unchanged by a write-back and invalidate.
    unsafe { asm!("wbinvd", options(nostack, preserves_flags)) };
}

/// INVLPG: drops the TLB entry for the page holding `va`.
#[inline]
pub fn invlpg(va: u32) {
    // SAFETY: invalidating a TLB entry only makes the next access walk the
    // page tables, which is always correct.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

/// Flushes the TLB: reloads CR3 (non-global entries); with `global`, also
/// toggles CR4.PGE, which drops global entries as well.
pub fn flush_tlb(global: bool) {
    let cr4 = read_cr4();
    if global && cr4 & CR4_PGE != 0 {
        // SAFETY: clearing and restoring PGE changes nothing but the TLB.
        unsafe {
            write_cr4(cr4 & !CR4_PGE);
            write_cr4(cr4);
        }
    } else {
        // SAFETY: reloading the current CR3 changes nothing but the TLB.
        unsafe { write_cr3(read_cr3()) };
    }
}

/// LGDT.
///
/// # Safety
/// The table must stay valid for as long as it is loaded.
#[inline]
pub unsafe fn lgdt(ptr: &DescriptorTablePointer) {
    // SAFETY: per the caller.
    unsafe { asm!("lgdt [{}]", in(reg) ptr, options(readonly, nostack, preserves_flags)) };
}

/// LIDT.
///
/// # Safety
/// As [`lgdt`], and every gate the processor may use must be valid.
#[inline]
pub unsafe fn lidt(ptr: &DescriptorTablePointer) {
    // SAFETY: per the caller.
    unsafe { asm!("lidt [{}]", in(reg) ptr, options(readonly, nostack, preserves_flags)) };
}

/// SGDT.
#[inline]
pub fn sgdt() -> DescriptorTablePointer {
    let mut ptr = DescriptorTablePointer::default();
    // SAFETY: SGDT writes 6 bytes to the given operand.
    unsafe { asm!("sgdt [{}]", in(reg) &mut ptr, options(nostack, preserves_flags)) };
    ptr
}

/// SIDT.
#[inline]
pub fn sidt() -> DescriptorTablePointer {
    let mut ptr = DescriptorTablePointer::default();
    // SAFETY: SIDT writes 6 bytes to the given operand.
    unsafe { asm!("sidt [{}]", in(reg) &mut ptr, options(nostack, preserves_flags)) };
    ptr
}

/// LLDT (0 = no LDT).
///
/// # Safety
/// `selector` must name an LDT descriptor in the GDT (else #GP).
#[inline]
pub unsafe fn lldt(selector: u16) {
    // SAFETY: per the caller.
    unsafe { asm!("lldt {0:x}", in(reg) selector, options(nostack, preserves_flags)) };
}

/// SLDT: the LDT register.
#[inline]
pub fn read_ldtr() -> u16 {
    let selector: u32;
    // SAFETY: SLDT reads LDTR. The register form zero-extends.
    unsafe { asm!("xor {0:e}, {0:e}", "sldt {0:x}", out(reg) selector, options(nomem, nostack)) };
    selector as u16
}

/// LTR.
///
/// # Safety
/// `selector` must name an available TSS descriptor (else #GP); LTR marks
/// it busy.
#[inline]
pub unsafe fn ltr(selector: u16) {
    // SAFETY: per the caller.
    unsafe { asm!("ltr {0:x}", in(reg) selector, options(nostack, preserves_flags)) };
}

/// STR: the task register.
#[inline]
pub fn read_tr() -> u16 {
    let selector: u32;
    // SAFETY: STR reads TR.
    unsafe { asm!("xor {0:e}, {0:e}", "str {0:x}", out(reg) selector, options(nomem, nostack)) };
    selector as u16
}

/// The current CS selector.
#[inline]
pub fn read_cs() -> u16 {
    let cs: u32;
    // SAFETY: reading CS has no side effect.
    unsafe { asm!("xor {0:e}, {0:e}", "mov {0:x}, cs", out(reg) cs, options(nomem, nostack)) };
    cs as u16
}

/// The linear base address of the descriptor `selector` names in the GDT
/// `gdt_base` (for system descriptors such as a TSS: the 32-bit base split
/// over bytes 2-4 and 7 of the descriptor).
///
/// # Safety
/// `gdt_base + (selector & !7)` must be a readable descriptor.
pub unsafe fn descriptor_base(gdt_base: u32, selector: u16) -> u32 {
    let desc = (gdt_base + u32::from(selector & !7)) as *const u32;
    // SAFETY: per the caller, both dwords of the descriptor are readable.
    let (low, high) = unsafe { (desc.read_volatile(), desc.add(1).read_volatile()) };
    (low >> 16) | ((high & 0xFF) << 16) | (high & 0xFF00_0000)
}

/// Offset of `esp0` in the 32-bit TSS.
pub const TSS_ESP0: u32 = 4;
/// Offset of `ss0` in the 32-bit TSS.
pub const TSS_SS0: u32 = 8;

/// Sets the ring-0 stack of the current task (TSS.ss0:esp0, found through
/// TR and the GDT): the stack the processor switches to when an interrupt
/// or trap enters ring 0 from an outer ring. Does nothing when no task
/// register is loaded.
///
/// # Safety
/// The loaded TSS must be mapped writable; `ss:esp0` must be a valid stack.
pub unsafe fn set_ring0_stack(ss: u16, esp0: u32) {
    let tr = read_tr();
    if tr & !7 == 0 {
        return;
    }
    let gdt = sgdt();
    // SAFETY: TR names a descriptor inside the loaded GDT (LTR checked it).
    let tss = unsafe { descriptor_base(gdt.base, tr) };
    // SAFETY: per the caller, the TSS is writable.
    unsafe {
        ((tss + TSS_ESP0) as *mut u32).write_volatile(esp0);
        ((tss + TSS_SS0) as *mut u32).write_volatile(u32::from(ss));
    }
}
