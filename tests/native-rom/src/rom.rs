//! The ROM image: header, entry points, GetRelocationInfo's table, the
//! calls (assembly, one instruction where the call is one instruction),
//! and the Rust behind the few calls that need more.
//!
//! Every address the ROM hands out is computed from where it runs (CALL/POP
//! plus same-section offsets): no relocation, no pointer in any static, so
//! the image works wherever a kernel maps it (Linux: PAGE_OFFSET + 0xC0000).

use vmi_abi::builder::{build_header, jump_point, RomSpec};
use vmi_abi::VROM_HEADER_SIZE;

use native_rom::hw::{cpu, power};
use native_rom::{alarm, timebase};

/// Image size in 512-byte blocks; `rom.ld`'s ROM_SIZE is the same 16 KiB.
const ROM_BLOCKS: u8 = 32;
/// ROM offset of VMI_Init's code (the jump point at 0x80 leads here).
const VMI_INIT_AT: u32 = 0x90;
/// ROM offset of GetRelocationInfo's code (from the jump point at 0x88).
const GET_RELOC_AT: u32 = 0xA0;
/// ROM offset of the 16-bit BIOS init code.
const INIT16_AT: u32 = 0xB0;
/// "CALB": the calibration block was written by the init entry.
const CALIBRATION_MAGIC: u32 = 0x424C_4143;

/// The BIOS init entry at ROM+3: `jmp near` (E9 rel16) to the 16-bit init
/// code; rel16 counts from the end of the 3-byte instruction.
const fn bios_init_entry() -> [u8; 4] {
    let rel = (INIT16_AT - 6) as u16;
    [0xE9, rel as u8, (rel >> 8) as u8, 0x90]
}

const SPEC: RomSpec<'static> = RomSpec {
    rom_entry: bios_init_entry(),
    manufacturer: Some(b"VMI judge"),
    product: Some(b"native VMI ROM"),
    ..RomSpec::new(
        ROM_BLOCKS,
        0,
        jump_point(0x80, VMI_INIT_AT),
        jump_point(0x88, GET_RELOC_AT),
    )
};

/// The 144-byte VMI ROM header at offset 0 (virtual_top 0: this ROM claims
/// no virtual address space).
#[used]
#[link_section = ".rom.header"]
static ROM_HEADER: [u8; VROM_HEADER_SIZE] = match build_header(&SPEC) {
    Ok(header) => header,
    Err(_) => panic!("the native ROM's header spec is invalid"),
};

/// One reading as the BIOS-time init stores it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawReading {
    /// TSC before the latch, low half.
    pub before_lo: u32,
    /// TSC before the latch, high half.
    pub before_hi: u32,
    /// TSC after the count was read, low half.
    pub after_lo: u32,
    /// The latched count.
    pub count: u16,
    /// Unused.
    pub pad: u16,
}

impl RawReading {
    fn reading(self) -> timebase::CountReading {
        let before = (u64::from(self.before_hi) << 32) | u64::from(self.before_lo);
        let gap = self.after_lo.wrapping_sub(self.before_lo);
        timebase::CountReading {
            before,
            after: before.wrapping_add(u64::from(gap)),
            count: u32::from(self.count),
        }
    }
}

/// What the BIOS-time init measured (written into the image during POST).
#[repr(C)]
pub struct Calibration {
    /// [`CALIBRATION_MAGIC`] once written.
    pub magic: u32,
    /// Unused.
    pub reserved: u32,
    /// Readings at the start of the PIT countdown.
    pub early: [RawReading; timebase::CALIBRATION_READINGS],
    /// Readings [`timebase::CALIBRATION_PIT_TICKS`] later.
    pub late: [RawReading; timebase::CALIBRATION_READINGS],
}

core::arch::global_asm!(
    r#"
    .pushsection .rom.entry, "ax"
    .code32
    // ROM+0x90: VMI_Init. Nothing to set up: the calibration is done and
    // the hardware is the kernel's. Returns 0 (success).
vmi_init_code:
    xor eax, eax
    ret

    // ROM+0xA0: GetRelocationInfo.
    .org 0x10
    jmp rom_get_reloc

    // ROM+0xB0: the BIOS init entry (real mode, far-called at ROM+3, CS =
    // the ROM's segment). Reads the TSC around latched counts of PIT
    // channel 2 (four readings, then four more 20 ms later) and stores them
    // in the image while the BIOS still has the shadow writable; the rate
    // is computed at run time (timebase::rate_from_pit_readings).
    .org 0x20
    .code16
    pushad
    pushfd
    cli
    in al, 0x61
    and al, 0xFC
    or al, 0x01
    out 0x61, al
    mov al, 0xB0
    out 0x43, al
    mov al, 0xFF
    out 0x42, al
    out 0x42, al
    // CALL rel16 to the next instruction, then POP: BX = our offset in
    // the segment, i.e. in the ROM. (Spelled out: the assembler would
    // pick the 32-bit form and push 4 bytes.)
    .byte 0xE8, 0x00, 0x00
.Lcal_here:
    pop bx
    // Reading i at SI = 16 i: TSC before (8 bytes), TSC after (low
    // dword), the latched count.
    xor si, si
.Lcal_reading:
    cmp si, {readings} * 16
    jne .Lcal_read
.Lcal_wait:
    mov al, 0x80
    out 0x43, al
    in al, 0x42
    mov cl, al
    in al, 0x42
    mov ch, al
    mov ax, word ptr cs:[bx + .Lcal_readings_from_here + 12]
    sub ax, cx
    cmp ax, {ticks}
    jb .Lcal_wait
.Lcal_read:
    rdtsc
    mov dword ptr cs:[bx + si + .Lcal_readings_from_here], eax
    mov dword ptr cs:[bx + si + .Lcal_readings_from_here + 4], edx
    mov al, 0x80
    out 0x43, al
    in al, 0x42
    mov cl, al
    in al, 0x42
    mov ch, al
    rdtsc
    mov dword ptr cs:[bx + si + .Lcal_readings_from_here + 8], eax
    mov word ptr cs:[bx + si + .Lcal_readings_from_here + 12], cx
    add si, 16
    cmp si, {readings} * 32
    jb .Lcal_reading
    mov dword ptr cs:[bx + .Lcal_from_here], {magic}
    in al, 0x61
    and al, 0xFC
    out 0x61, al
    popfd
    popad
    // RETF with a 16-bit return frame (the BIOS did a 16-bit far call).
    .byte 0xCB
    .code32

    .balign 4
calibration:
    .long 0, 0
    .fill {readings} * 32, 1, 0
    // Same-section distances, as absolute symbols (Intel-syntax memory
    // operands take one symbol).
    .set .Lcal_from_here, calibration - .Lcal_here
    .set .Lcal_readings_from_here, calibration + 8 - .Lcal_here
    .set .Lcal_from_pc, calibration - .Lcal_pc
    .set .Ltable_from_pc, reloc_table - .Lreloc_pc

    // Calibration *rom_calibration(void): the block's current address.
    .globl rom_calibration
rom_calibration:
    call .Lcal_pc
.Lcal_pc:
    pop eax
    add eax, offset .Lcal_from_pc
    ret

    // GetRelocationInfo: EAX = call number; EDX:EAX = {{eip, type}}.
rom_get_reloc:
    cmp eax, {num_calls}
    jae .Lreloc_none
    cmp eax, {first_timer}
    jb .Lreloc_lookup
    cmp eax, {last_timer}
    ja .Lreloc_lookup
    push eax
    call rom_calibration
    cmp dword ptr [eax], {magic}
    pop eax
    jne .Lreloc_none
.Lreloc_lookup:
    call .Lreloc_pc
.Lreloc_pc:
    pop ecx
    lea ecx, [ecx + .Ltable_from_pc]
    mov edx, [ecx + eax * 8 + 4]
    mov eax, [ecx + eax * 8]
    test eax, eax
    jz .Lreloc_done
    add eax, ecx
.Lreloc_done:
    ret
.Lreloc_none:
    xor eax, eax
    xor edx, edx
    ret

    // One {{offset from reloc_table, type}} per call number. Types:
    // 0 NONE, 1 CALL_REL, 2 JUMP_REL, 3 NOP. The calls hardware has
    // nothing to do for (the page-table announcements, the linear mapping,
    // the lazy modes, the ISA delay) answer NOP: the kernel's sites become
    // NOPs and no call is made, as VMware's ROM answered them. The calls
    // the kernel's native code already does (main.rs, "NONE with code")
    // answer NONE with the address of their code: the kernel keeps its
    // instruction, and the code can still be called there.
    .balign 4
reloc_table:
    .long vmi_cpuid - reloc_table, 1            // 0 CPUID
    .long vmi_wrmsr - reloc_table, 1            // 1 WRMSR
    .long vmi_rdmsr - reloc_table, 1            // 2 RDMSR
    .long vmi_set_gdt - reloc_table, 1          // 3 SetGDT
    .long vmi_set_ldt - reloc_table, 1          // 4 SetLDT
    .long vmi_set_idt - reloc_table, 1          // 5 SetIDT
    .long vmi_set_tr - reloc_table, 1           // 6 SetTR
    .long vmi_get_gdt - reloc_table, 1          // 7 GetGDT
    .long vmi_get_ldt - reloc_table, 1          // 8 GetLDT
    .long vmi_get_idt - reloc_table, 1          // 9 GetIDT
    .long vmi_get_tr - reloc_table, 1           // 10 GetTR
    .long vmi_write_descriptor - reloc_table, 1 // 11 WriteGDTEntry
    .long vmi_write_descriptor - reloc_table, 1 // 12 WriteLDTEntry
    .long vmi_write_descriptor - reloc_table, 1 // 13 WriteIDTEntry
    .long vmi_update_kernel_stack - reloc_table, 0 // 14 UpdateKernelStack: NONE
    .long vmi_set_cr0 - reloc_table, 1          // 15 SetCR0
    .long vmi_set_cr2 - reloc_table, 1          // 16 SetCR2
    .long vmi_set_cr3 - reloc_table, 1          // 17 SetCR3
    .long vmi_set_cr4 - reloc_table, 1          // 18 SetCR4
    .long vmi_get_cr0 - reloc_table, 1          // 19 GetCR0
    .long vmi_get_cr2 - reloc_table, 0          // 20 GetCR2: NONE
    .long vmi_get_cr3 - reloc_table, 1          // 21 GetCR3
    .long vmi_get_cr4 - reloc_table, 1          // 22 GetCR4
    .long vmi_wbinvd - reloc_table, 1           // 23 WBINVD
    .long vmi_set_dr - reloc_table, 1           // 24 SetDR
    .long vmi_get_dr - reloc_table, 1           // 25 GetDR
    .long vmi_rdpmc - reloc_table, 1            // 26 RDPMC
    .long vmi_rdtsc - reloc_table, 1            // 27 RDTSC
    .long vmi_clts - reloc_table, 1             // 28 CLTS
    .long vmi_enable_interrupts - reloc_table, 0  // 29 EnableInterrupts: NONE
    .long vmi_disable_interrupts - reloc_table, 0 // 30 DisableInterrupts: NONE
    .long vmi_get_interrupt_mask - reloc_table, 0 // 31 GetInterruptMask: NONE
    .long vmi_set_interrupt_mask - reloc_table, 0 // 32 SetInterruptMask: NONE
    .long vmi_iret - reloc_table, 2             // 33 IRET (jump): Linux must patch it
    .long vmi_sysexit - reloc_table, 2          // 34 SYSEXIT (jump)
    .long vmi_halt - reloc_table, 1             // 35 Halt
    .long vmi_reboot - reloc_table, 1           // 36 Reboot
    .long vmi_shutdown - reloc_table, 1         // 37 Shutdown
    .long vmi_set_pxe - reloc_table, 1          // 38 SetPxE
    .long vmi_set_pxe_long - reloc_table, 0     // 39 SetPxELong: NONE
    .long 0, 3                                  // 40 UpdatePxE: NOP
    .long 0, 3                                  // 41 UpdatePxELong: NOP
    .long vmi_identity - reloc_table, 1         // 42 MachineToPhysical
    .long vmi_identity - reloc_table, 1         // 43 PhysicalToMachine
    .long 0, 3                                  // 44 AllocatePage: NOP
    .long 0, 3                                  // 45 ReleasePage: NOP
    .long vmi_inval_page - reloc_table, 1       // 46 InvalPage
    .long vmi_flush_tlb - reloc_table, 1        // 47 FlushTLB
    .long 0, 3                                  // 48 SetLinearMapping: NOP
    .long vmi_inl - reloc_table, 1              // 49 INL
    .long vmi_inb - reloc_table, 1              // 50 INB
    .long vmi_inw - reloc_table, 1              // 51 INW
    .long vmi_insl - reloc_table, 1             // 52 INSL
    .long vmi_insb - reloc_table, 1             // 53 INSB
    .long vmi_insw - reloc_table, 1             // 54 INSW
    .long vmi_outl - reloc_table, 1             // 55 OUTL
    .long vmi_outb - reloc_table, 1             // 56 OUTB
    .long vmi_outw - reloc_table, 1             // 57 OUTW
    .long vmi_outsl - reloc_table, 1            // 58 OUTSL
    .long vmi_outsb - reloc_table, 1            // 59 OUTSB
    .long vmi_outsw - reloc_table, 1            // 60 OUTSW
    .long vmi_set_iopl_mask - reloc_table, 1    // 61 SetIOPLMask
    .long 0, 0                                  // 62 SetInitialAPState: NONE
    .long vmi_apic_write - reloc_table, 1       // 63 APICWrite
    .long vmi_apic_read - reloc_table, 1        // 64 APICRead
    .long 0, 3                                  // 65 IODelay: NOP
    .long vmi_get_cycle_frequency - reloc_table, 1 // 66 GetCycleFrequency
    .long vmi_get_cycle_counter - reloc_table, 1   // 67 GetCycleCounter
    .long vmi_set_alarm - reloc_table, 1        // 68 SetAlarm
    .long vmi_cancel_alarm - reloc_table, 1     // 69 CancelAlarm
    .long vmi_get_wallclock - reloc_table, 1    // 70 GetWallclockTime
    .long vmi_wallclock_updated - reloc_table, 1 // 71 WallclockUpdated
    .long 0, 0                                  // 72 SetCallbacks: NONE
    .long 0, 3                                  // 73 SetLazyMode: NOP
reloc_table_end:
    .if (reloc_table_end - reloc_table) != {num_calls} * 8
    .error "reloc_table must have one entry per VMI call"
    .endif

    // The calls. regparm(3): EAX, EDX, ECX, then the stack; EBX, ESI, EDI,
    // EBP and DF are preserved.
vmi_cpuid:
    cpuid
    ret
vmi_wrmsr:
    wrmsr
    ret
vmi_rdmsr:
    rdmsr
    ret
vmi_set_gdt:
    lgdt [eax]
    ret
vmi_set_ldt:
    lldt ax
    ret
vmi_set_idt:
    lidt [eax]
    ret
vmi_set_tr:
    ltr ax
    ret
vmi_get_gdt:
    sgdt [eax]
    ret
vmi_get_ldt:
    xor eax, eax
    sldt ax
    ret
vmi_get_idt:
    sidt [eax]
    ret
vmi_get_tr:
    xor eax, eax
    str ax
    ret
    // EAX = table, EDX = index, ECX = low dword, [ESP+4] = high dword.
vmi_write_descriptor:
    mov [eax + edx * 8], ecx
    mov ecx, [esp + 4]
    mov [eax + edx * 8 + 4], ecx
    ret
    // EAX = SS0, EDX = ESP0: stored in the TSS that TR names, found
    // through the GDT (SGDT, the descriptor's base bytes 2-4 and 7); no
    // TSS loaded (TR null): nothing to do.
vmi_update_kernel_stack:
    sub esp, 8
    sgdt [esp + 2]
    str ecx
    and ecx, 0xFFF8
    jz .Luks_done
    add ecx, [esp + 4]
    mov [esp + 4], edx
    // Base 23:0 from bytes 2-4 (bits 31:8 of the dword at byte 1), base
    // 31:24 from byte 7 into the low byte, rotated into place.
    mov edx, [ecx + 1]
    mov dl, [ecx + 7]
    ror edx, 8
    mov ecx, [esp + 4]
    mov [edx + {tss_esp0}], ecx
    mov [edx + {tss_ss0}], ax
.Luks_done:
    add esp, 8
    ret
vmi_set_cr0:
    mov cr0, eax
    ret
vmi_set_cr2:
    mov cr2, eax
    ret
vmi_set_cr3:
    mov cr3, eax
    ret
vmi_set_cr4:
    mov cr4, eax
    ret
vmi_get_cr0:
    mov eax, cr0
    ret
vmi_get_cr2:
    mov eax, cr2
    ret
vmi_get_cr3:
    mov eax, cr3
    ret
vmi_get_cr4:
    mov eax, cr4
    ret
vmi_wbinvd:
    wbinvd
    ret
    // EAX = register number, EDX = value. DR4/DR5 and others: ignored.
vmi_set_dr:
    cmp eax, 0
    jne .Lsdr1
    mov dr0, edx
    ret
.Lsdr1:
    cmp eax, 1
    jne .Lsdr2
    mov dr1, edx
    ret
.Lsdr2:
    cmp eax, 2
    jne .Lsdr3
    mov dr2, edx
    ret
.Lsdr3:
    cmp eax, 3
    jne .Lsdr6
    mov dr3, edx
    ret
.Lsdr6:
    cmp eax, 6
    jne .Lsdr7
    mov dr6, edx
    ret
.Lsdr7:
    cmp eax, 7
    jne .Lsdr_done
    mov dr7, edx
.Lsdr_done:
    ret
    // EAX = register number -> EAX (0 for DR4/DR5 and others).
vmi_get_dr:
    cmp eax, 0
    jne .Lgdr1
    mov eax, dr0
    ret
.Lgdr1:
    cmp eax, 1
    jne .Lgdr2
    mov eax, dr1
    ret
.Lgdr2:
    cmp eax, 2
    jne .Lgdr3
    mov eax, dr2
    ret
.Lgdr3:
    cmp eax, 3
    jne .Lgdr6
    mov eax, dr3
    ret
.Lgdr6:
    cmp eax, 6
    jne .Lgdr7
    mov eax, dr6
    ret
.Lgdr7:
    cmp eax, 7
    jne .Lgdr_none
    mov eax, dr7
    ret
.Lgdr_none:
    xor eax, eax
    ret
vmi_rdpmc:
    rdpmc
    ret
vmi_rdtsc:
    rdtsc
    ret
vmi_clts:
    clts
    ret
    // The interrupt-flag calls clobber nothing but the flags (and EAX for
    // the result): Linux patches them inline into code that keeps values
    // in EAX, ECX and EDX.
vmi_enable_interrupts:
    sti
    ret
vmi_disable_interrupts:
    cli
    ret
vmi_get_interrupt_mask:
    pushfd
    pop eax
    and eax, 0x200
    ret
vmi_set_interrupt_mask:
    test eax, 0x200
    jz .Lsim_off
    sti
    ret
.Lsim_off:
    cli
    ret
    // Reached by a jump with the IRET frame on the stack.
vmi_iret:
    iretd
    // Reached by a jump with EDX = user EIP, ECX = user ESP.
vmi_sysexit:
    sti
    sysexit
vmi_halt:
    sti
    hlt
    ret
vmi_reboot:
    push eax
    call {reboot}
    ud2
vmi_shutdown:
    call {shutdown}
    ud2
    // EAX = entry, EDX = pointer, ECX = flags.
vmi_set_pxe:
    mov [edx], eax
    ret
    // EDX:EAX = entry, ECX = pointer, [ESP+4] = flags. Never visible as
    // present with a stale half (high half first when present).
vmi_set_pxe_long:
    test eax, 1
    jz .Lspl_not_present
    mov [ecx + 4], edx
    mov [ecx], eax
    ret
.Lspl_not_present:
    mov [ecx], eax
    mov [ecx + 4], edx
    ret
    // Frame number in EAX, the same frame number out.
vmi_identity:
    ret
vmi_inval_page:
    invlpg [eax]
    ret
    // EAX = VMI_FLUSH_TLB [| VMI_FLUSH_GLOBAL].
vmi_flush_tlb:
    test eax, 2
    jz .Lflush_local
    mov ecx, cr4
    test ecx, 0x80
    jz .Lflush_local
    mov edx, ecx
    and edx, 0xFFFFFF7F
    mov cr4, edx
    mov cr4, ecx
    ret
.Lflush_local:
    mov eax, cr3
    mov cr3, eax
    ret
    // Port calls: EDX = port; OUT: EAX = value; INS: EDI, ECX; OUTS: ESI, ECX.
vmi_inl:
    in eax, dx
    ret
vmi_inb:
    xor eax, eax
    in al, dx
    ret
vmi_inw:
    xor eax, eax
    in ax, dx
    ret
vmi_insl:
    rep insd
    ret
vmi_insb:
    rep insb
    ret
vmi_insw:
    rep insw
    ret
vmi_outl:
    out dx, eax
    ret
vmi_outb:
    out dx, al
    ret
vmi_outw:
    out dx, ax
    ret
vmi_outsl:
    rep outsd
    ret
vmi_outsb:
    rep outsb
    ret
vmi_outsw:
    rep outsw
    ret
    // EAX = IOPL mask (pre-shifted).
vmi_set_iopl_mask:
    pushfd
    and dword ptr [esp], 0xFFFFCFFF
    and eax, 0x3000
    or [esp], eax
    popfd
    ret
    // EAX = register offset, EDX = value; the APIC at its physical address.
vmi_apic_write:
    push eax
    push edx
    mov ecx, 0x1B
    rdmsr
    and eax, 0xFFFFF000
    pop edx
    pop ecx
    and ecx, 0x3F0
    mov [eax + ecx], edx
    ret
    // EAX = register offset -> EAX.
vmi_apic_read:
    push eax
    mov ecx, 0x1B
    rdmsr
    and eax, 0xFFFFF000
    pop ecx
    and ecx, 0x3F0
    mov eax, [eax + ecx]
    ret
vmi_get_cycle_frequency:
    jmp {cycle_frequency}
    // EAX = counter: real and available are the TSC, stolen and undefined 0.
vmi_get_cycle_counter:
    cmp eax, 1
    ja .Lgcc_zero
    rdtsc
    ret
.Lgcc_zero:
    xor eax, eax
    xor edx, edx
    ret
    // EAX = flags, EDX:ECX = expiry, [ESP+4] [ESP+8] = period.
vmi_set_alarm:
    push dword ptr [esp + 8]
    push dword ptr [esp + 8]
    push ecx
    push edx
    push eax
    call {set_alarm}
    add esp, 20
    ret
vmi_cancel_alarm:
    push eax
    call {cancel_alarm}
    add esp, 4
    ret
vmi_get_wallclock:
    jmp {wallclock}
vmi_wallclock_updated:
    xor eax, eax
    ret
    .popsection
    "#,
    ticks = const timebase::CALIBRATION_PIT_TICKS as u32,
    readings = const timebase::CALIBRATION_READINGS,
    magic = const CALIBRATION_MAGIC,
    num_calls = const vmi_abi::VMI_NUM_CALLS,
    first_timer = const vmi_abi::VmiCall::GetCycleFrequency as u32,
    last_timer = const vmi_abi::VmiCall::WallclockUpdated as u32,
    tss_esp0 = const cpu::TSS_ESP0,
    tss_ss0 = const cpu::TSS_SS0,
    reboot = sym rom_reboot,
    shutdown = sym rom_shutdown,
    cycle_frequency = sym rom_cycle_frequency,
    set_alarm = sym rom_set_alarm,
    cancel_alarm = sym rom_cancel_alarm,
    wallclock = sym rom_wallclock,
);

extern "C" {
    fn rom_calibration() -> *const Calibration;
}

/// The TSC frequency the init entry measured; 0 if it never ran.
fn tsc_hz() -> u64 {
    // SAFETY: rom_calibration returns the address of the block inside this
    // image, which is mapped wherever the ROM runs.
    let c = unsafe { &*rom_calibration() };
    if c.magic != CALIBRATION_MAGIC {
        return 0;
    }
    timebase::rate_from_pit_readings(
        &c.early.map(RawReading::reading),
        &c.late.map(RawReading::reading),
    )
}

extern "C" fn rom_cycle_frequency() -> u64 {
    tsc_hz()
}

extern "C" fn rom_set_alarm(flags: u32, expiry: u64, period: u64) {
    // SAFETY: the kernel asked for this alarm; its IDT handles the vector.
    unsafe { alarm::set_alarm(tsc_hz(), flags, expiry, period) }
}

extern "C" fn rom_cancel_alarm(flags: u32) -> u32 {
    // SAFETY: as rom_set_alarm.
    unsafe { alarm::cancel_alarm(flags) }
}

extern "C" fn rom_wallclock() -> u64 {
    // SAFETY: reading the RTC through ports 0x70/0x71, as the kernel asked.
    let seconds = unsafe { native_rom::hw::rtc::read_unix_seconds() };
    seconds.unwrap_or(0).saturating_mul(1_000_000_000)
}

extern "C" fn rom_reboot(how: u32) -> ! {
    // SAFETY: the kernel asked to reboot.
    unsafe { power::reset(how == vmi_abi::flags::VMI_REBOOT_HARD) }
}

extern "C" fn rom_shutdown() -> ! {
    // SAFETY: the kernel asked to power off.
    unsafe { power::acpi_power_off() };
    loop {
        // SAFETY: halt with interrupts off: this processor is done.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        // SAFETY: a ROM has nowhere to report to; stop this processor.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    }
}
