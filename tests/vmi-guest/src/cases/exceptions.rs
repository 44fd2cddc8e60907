//! Exceptions raised in ring 0 and delivered to the kernel's IDT handlers,
//! with the vector, error code and EIP the processor defines.

use super::{ensure, ensure_eq, fail, pass, Outcome};
use crate::desc::{selector, Table, GDT, GDT_SPARE, IDT};
use crate::pv;
use crate::trap::{catch, Fault, TrapFrame, VECTOR_TEST};
use core::sync::atomic::{AtomicU32, Ordering};

core::arch::global_asm!(
    r#"
    .text
    .globl exc_divide
exc_divide:
    xor edx, edx
    mov eax, 1
    xor ecx, ecx
    .globl exc_divide_insn
exc_divide_insn:
    div ecx
    ret

    .globl exc_ud2
exc_ud2:
    .globl exc_ud2_insn
exc_ud2_insn:
    ud2
    ret

    // Loads FS with a selector past the GDT limit.
    .globl exc_bad_selector
exc_bad_selector:
    mov eax, 0x3F8
    .globl exc_bad_selector_insn
exc_bad_selector_insn:
    mov fs, ax
    ret

    .globl exc_int3
exc_int3:
    int3
    .globl exc_int3_after
exc_int3_after:
    ret

    // A kernel-mode system call, for the cases that take its gate away.
    .globl exc_int80
exc_int80:
    .globl exc_int80_insn
exc_int80_insn:
    int 0x80
    ret

    // `int 3` in its two-byte form (CD 03; an assembler may shorten the
    // mnemonic to INT3).
    .globl exc_int_3
exc_int_3:
    .byte 0xCD, 0x03
    ret

    // `int 0x81` behind a DS override and an operand-size prefix, which
    // INT n ignores.
    .globl exc_prefixed_int_test
exc_prefixed_int_test:
    .byte 0x3E, 0x66, 0xCD, 0x81
    .globl exc_prefixed_int_test_after
exc_prefixed_int_test_after:
    ret

    .globl exc_into
exc_into:
    mov al, 0x7F
    add al, 1
    .globl exc_into_insn
exc_into_insn:
    into
    .globl exc_into_after
exc_into_after:
    ret

    // BOUND EAX, [ECX] with EAX above the upper bound.
    .globl exc_bound
exc_bound:
    sub esp, 8
    mov dword ptr [esp], 0
    mov dword ptr [esp + 4], 10
    mov ecx, esp
    mov eax, 11
    .globl exc_bound_insn
exc_bound_insn:
    .byte 0x62, 0x01
    add esp, 8
    ret
    "#
);

extern "C" {
    fn exc_divide();
    fn exc_divide_insn();
    fn exc_ud2();
    fn exc_ud2_insn();
    fn exc_bad_selector();
    fn exc_bad_selector_insn();
    fn exc_int3();
    fn exc_int3_after();
    fn exc_int80();
    fn exc_int80_insn();
    fn exc_int_3();
    fn exc_prefixed_int_test();
    fn exc_prefixed_int_test_after();
    fn exc_into();
    fn exc_into_insn();
    fn exc_into_after();
    fn exc_bound();
    fn exc_bound_insn();
}

fn raise(f: unsafe extern "C" fn()) -> Result<u32, Fault> {
    catch(|| {
        // SAFETY: each snippet raises its exception (caught here) and
        // otherwise only touches scratch registers and its own stack slots.
        unsafe { f() };
        0
    })
}

fn expect(
    what: &str,
    snippet: unsafe extern "C" fn(),
    vector: u32,
    error_code: u32,
    eip: unsafe extern "C" fn(),
) -> Outcome {
    match raise(snippet) {
        Ok(_) => fail!("{what}: no exception"),
        Err(f) => {
            ensure_eq!(f.vector, vector, "vector");
            ensure_eq!(f.error_code, error_code, "error code");
            ensure_eq!(f.eip, eip as usize as u32, "EIP pushed");
            ensure_eq!(f.cs, u32::from(crate::pv::kernel_cs()), "CS pushed");
            pass!("{what}: {f}")
        }
    }
}

pub fn divide_error() -> Outcome {
    expect("DIV by zero", exc_divide, 0, 0, exc_divide_insn)
}

pub fn invalid_opcode() -> Outcome {
    expect("UD2", exc_ud2, 6, 0, exc_ud2_insn)
}

pub fn general_protection() -> Outcome {
    expect(
        "selector past the GDT limit",
        exc_bad_selector,
        13,
        0x3F8,
        exc_bad_selector_insn,
    )
}

pub fn breakpoint() -> Outcome {
    expect(
        "INT3 (a trap: EIP after it)",
        exc_int3,
        3,
        0,
        exc_int3_after,
    )
}

/// The kernel's INT3 (`exc_int3`): the vector delivered (0xFFFF_FFFF if
/// none), the EIP pushed, and the address after the INT3.
pub fn raise_int3() -> (u32, u32, u32) {
    let after = exc_int3_after as *const () as usize as u32;
    match raise(exc_int3) {
        Ok(_) => (u32::MAX, 0, after),
        Err(f) => (f.vector, f.eip, after),
    }
}

pub fn overflow() -> Outcome {
    expect("INTO with OF set (a trap)", exc_into, 4, 0, exc_into_after)
}

pub fn bound_range() -> Outcome {
    expect("BOUND out of range", exc_bound, 5, 0, exc_bound_insn)
}

/// An exception whose IDT gate names a data segment: the processor raises
/// #GP with the gate's selector in the error code instead of delivering it.
pub fn gate_bad_selector() -> Outcome {
    const UD: u32 = 6;
    let idt = Table::base(&IDT);
    let good = Table::read(&IDT, UD as usize);
    let ds = u64::from(pv::kernel_ds());
    // The gate's selector lives in bits 16-31.
    let bad = (good & !0xFFFF_0000) | (ds << 16);
    pv::write_idt_entry(idt, UD, bad);
    let result = raise(exc_ud2);
    pv::write_idt_entry(idt, UD, good);
    match result {
        Ok(_) => fail!("UD2 through a gate naming a data segment: no exception"),
        Err(f) => {
            ensure_eq!(f.vector, 13u32, "vector (#GP instead of #UD)");
            ensure!(
                u64::from(f.error_code & 0xFFFC) == ds & 0xFFFC,
                "#GP error code {:#x}: expected the gate's selector {:#x}",
                f.error_code,
                ds
            );
            pass!(
                "#GP with error code {:#x} (the gate's selector)",
                f.error_code
            )
        }
    }
}

/// The #GP gate itself names a data segment, then a #GP: natively the
/// #GP its delivery raises while a #GP is delivered is a double fault
/// (SDM vol. 3, "Interrupt 8—Double Fault Exception", contributory after
/// contributory), delivered through the #DF gate with error code 0.
pub fn gp_gate_bad_selector_double_fault() -> Outcome {
    const GP: u32 = 13;
    const DF: u32 = 8;
    let idt = Table::base(&IDT);
    let good = Table::read(&IDT, GP as usize);
    let ds = u64::from(pv::kernel_ds());
    let bad = (good & !0xFFFF_0000) | (ds << 16);
    pv::write_idt_entry(idt, GP, bad);
    let result = raise(exc_bad_selector);
    pv::write_idt_entry(idt, GP, good);
    match result {
        Err(f) if f.vector == DF && f.error_code == 0 => {
            pass!("#GP through a #GP gate naming a data segment: #DF(0)")
        }
        Ok(_) => fail!("a selector past the GDT limit loaded without a fault"),
        Err(f) => fail!("#GP through a #GP gate naming a data segment: {f}, expected #DF(0)"),
    }
}

/// A kernel-mode `int 0x80` whose gate is not present, then whose gate
/// names a data segment: natively #NP with the gate's IDT error code
/// ((0x80 << 3) | 2: the vector, IDT bit) at the INT, then #GP with the
/// gate's selector (SDM vol. 3, "Interrupt 11" and "Interrupt 13"). The
/// error code names the vector the platform saw, so a paravirtual entry
/// that loses or widens it (a vector above 0x7F pushed as a sign-extended
/// byte) shows here as a wrong error code or a wrong gate.
pub fn syscall_gate_undeliverable() -> Outcome {
    const SYSCALL: u32 = 0x80;
    const NP: u32 = 11;
    const GP: u32 = 13;
    let idt = Table::base(&IDT);
    let good = Table::read(&IDT, SYSCALL as usize);
    let ds = u64::from(pv::kernel_ds());
    // Bit 47: the gate's present bit; bits 16-31: its selector.
    pv::write_idt_entry(idt, SYSCALL, good & !(1 << 47));
    let absent = raise(exc_int80);
    pv::write_idt_entry(idt, SYSCALL, (good & !0xFFFF_0000) | (ds << 16));
    let data_segment = raise(exc_int80);
    pv::write_idt_entry(idt, SYSCALL, good);
    let insn = exc_int80_insn as *const () as usize as u32;
    let cs = u32::from(pv::kernel_cs());
    let absent = match absent {
        Ok(_) => fail!("int 0x80 through a gate not present: no exception"),
        Err(f) => f,
    };
    ensure_eq!(absent.vector, NP, "vector, gate not present (#NP)");
    ensure_eq!(
        absent.error_code,
        (SYSCALL << 3) | 2,
        "#NP error code (vector 0x80, IDT)"
    );
    ensure_eq!(absent.eip, insn, "EIP pushed for #NP (the INT)");
    ensure_eq!(absent.cs, cs, "CS pushed for #NP");
    let data_segment = match data_segment {
        Ok(_) => fail!("int 0x80 through a gate naming a data segment: no exception"),
        Err(f) => f,
    };
    ensure_eq!(
        data_segment.vector,
        GP,
        "vector, gate naming a data segment (#GP)"
    );
    ensure!(
        u64::from(data_segment.error_code & 0xFFFC) == ds & 0xFFFC,
        "#GP error code {:#x}: expected the gate's selector {:#x}",
        data_segment.error_code,
        ds
    );
    ensure_eq!(data_segment.eip, insn, "EIP pushed for #GP (the INT)");
    pass!(
        "int 0x80 in ring 0: gate not present #NP({:#x}), gate naming a data segment #GP({:#x})",
        absent.error_code,
        data_segment.error_code
    )
}

/// What a software interrupt raised in ring 0 through a gate the processor
/// cannot use must give: `vector` with `error_code`, reported at the
/// instruction itself (a fault during delivery: the saved EIP is the INT3,
/// INTO or INT n, not the one after it).
fn expect_at(
    what: &str,
    result: Result<u32, Fault>,
    vector: u32,
    error_code: u32,
    insn: unsafe extern "C" fn(),
) -> Outcome {
    let f = match result {
        Ok(_) => fail!("{what}: no exception"),
        Err(f) => f,
    };
    let insn = insn as usize as u32;
    let cs = u32::from(pv::kernel_cs());
    ensure!(
        f.vector == vector && f.error_code == error_code && f.eip == insn && f.cs == cs,
        "{what}: {f}, expected vector {vector} error {error_code:#x} at {cs:#x}:{insn:#x} (the instruction)"
    );
    pass!("{what}: {f}")
}

/// #NP.
const SEGMENT_NOT_PRESENT: u32 = 11;
/// #GP.
const GENERAL_PROTECTION: u32 = 13;
/// Bit 47 of a gate: present.
const GATE_PRESENT: u64 = 1 << 47;

/// INT3 (CC) and `int 3` (CD 03) in ring 0 with the #BP gate not present:
/// natively #NP with the gate's IDT error code (3 << 3 | 2: the vector, IDT
/// bit, EXT clear for a software interrupt) at each instruction (SDM vol. 2,
/// INT n/INTO/INT3: the gate checks; vol. 3, "Interrupt 11"). The one-byte
/// and the two-byte form both trap with EIP after them when delivered, so
/// a platform that sees only that EIP must tell which it was.
pub fn int3_gate_not_present() -> Outcome {
    const BP: u32 = 3;
    let idt = Table::base(&IDT);
    let good = Table::read(&IDT, BP as usize);
    pv::write_idt_entry(idt, BP, good & !GATE_PRESENT);
    let one_byte = raise(exc_int3);
    let two_bytes = raise(exc_int_3);
    pv::write_idt_entry(idt, BP, good);
    let code = (BP << 3) | 2;
    let first = expect_at("INT3", one_byte, SEGMENT_NOT_PRESENT, code, exc_int3);
    if first.status != super::Status::Pass {
        return first;
    }
    let second = expect_at(
        "INT 3 (CD 03)",
        two_bytes,
        SEGMENT_NOT_PRESENT,
        code,
        exc_int_3,
    );
    if second.status != super::Status::Pass {
        return second;
    }
    pass!("INT3 and INT 3 through a #BP gate not present: #NP({code:#x}) at each")
}

/// INTO with OF set in ring 0, the #OF gate not present: natively #NP with
/// error code 4 << 3 | 2 at the INTO.
pub fn into_gate_not_present() -> Outcome {
    const OF: u32 = 4;
    let idt = Table::base(&IDT);
    let good = Table::read(&IDT, OF as usize);
    pv::write_idt_entry(idt, OF, good & !GATE_PRESENT);
    let result = raise(exc_into);
    pv::write_idt_entry(idt, OF, good);
    expect_at(
        "INTO through a gate not present",
        result,
        SEGMENT_NOT_PRESENT,
        (OF << 3) | 2,
        exc_into_insn,
    )
}

/// INTO with OF set in ring 0, the #OF gate naming a data segment:
/// natively #GP with the gate's selector (EXT clear: a software interrupt)
/// at the INTO, not a #GP past it as for an external event.
pub fn into_gate_data_segment() -> Outcome {
    const OF: u32 = 4;
    let idt = Table::base(&IDT);
    let good = Table::read(&IDT, OF as usize);
    let ds = u32::from(pv::kernel_ds());
    // The gate's selector lives in bits 16-31.
    pv::write_idt_entry(idt, OF, (good & !0xFFFF_0000) | (u64::from(ds) << 16));
    let result = raise(exc_into);
    pv::write_idt_entry(idt, OF, good);
    expect_at(
        "INTO through a gate naming a data segment",
        result,
        GENERAL_PROTECTION,
        ds & 0xFFFC,
        exc_into_insn,
    )
}

/// Runs `f` with a selector naming a copy of the kernel's code segment
/// marked not present (a GDT entry no other case uses), then restores the
/// entry.
fn with_absent_code_segment<R>(f: impl FnOnce(u16) -> R) -> R {
    let index = GDT_SPARE + 3;
    let gdt = Table::base(&GDT);
    let old_entry = Table::read(&GDT, index);
    let code = Table::read(&GDT, usize::from(pv::kernel_cs() >> 3));
    // Bit 47 of a segment descriptor is its present bit, as for a gate.
    pv::write_gdt_entry(gdt, index as u32, code & !GATE_PRESENT);
    let result = f(selector(index, pv::kernel_rpl()));
    pv::write_gdt_entry(gdt, index as u32, old_entry);
    result
}

/// Runs `snippet` with IDT gate `vector` naming `selector` instead of its
/// own code segment, then restores the gate.
fn raise_through_selector(
    vector: u32,
    selector: u16,
    snippet: unsafe extern "C" fn(),
) -> Result<u32, Fault> {
    let idt = Table::base(&IDT);
    let good = Table::read(&IDT, vector as usize);
    // The gate's selector lives in bits 16-31.
    let bad = (good & !0xFFFF_0000) | (u64::from(selector) << 16);
    pv::write_idt_entry(idt, vector, bad);
    let result = raise(snippet);
    pv::write_idt_entry(idt, vector, good);
    result
}

/// INTO with OF set in ring 0, the #OF gate naming a copy of the kernel's
/// code segment marked not present: natively #NP with that selector (EXT
/// clear) at the INTO (SDM vol. 2, INT n: the gate's code segment is
/// checked after the gate, its presence last).
pub fn into_gate_code_segment_not_present() -> Outcome {
    const OF: u32 = 4;
    let (absent, result) =
        with_absent_code_segment(|absent| (absent, raise_through_selector(OF, absent, exc_into)));
    expect_at(
        "INTO through a gate naming a code segment not present",
        result,
        SEGMENT_NOT_PRESENT,
        u32::from(absent & 0xFFFC),
        exc_into_insn,
    )
}

/// UD2 with the #UD gate naming a code segment not present: natively #NP
/// with that selector (EXT set on hardware for an exception's delivery;
/// QEMU's TCG leaves it clear, so only the selector bits are compared) at
/// the UD2, a fault.
pub fn gate_code_segment_not_present() -> Outcome {
    const UD: u32 = 6;
    let (absent, result) =
        with_absent_code_segment(|absent| (absent, raise_through_selector(UD, absent, exc_ud2)));
    let f = match result {
        Ok(_) => fail!("UD2 through a gate naming a code segment not present: no exception"),
        Err(f) => f,
    };
    let insn = exc_ud2_insn as *const () as usize as u32;
    ensure!(
        f.vector == SEGMENT_NOT_PRESENT && f.error_code & 0xFFFC == u32::from(absent & 0xFFFC) && f.eip == insn,
        "UD2 through a gate naming a code segment not present: {f}, expected #NP({:#x}) at {insn:#x}",
        absent & 0xFFFC
    );
    pass!("UD2 through a gate naming a code segment not present: {f}")
}

/// Where the test gate's hook found the last `int 0x81` returning to.
static TEST_GATE_EIP: AtomicU32 = AtomicU32::new(0);

fn record_test_gate_eip(frame: &mut TrapFrame) -> bool {
    TEST_GATE_EIP.store(frame.eip, Ordering::SeqCst);
    true
}

/// `int 0x81` with two prefixes (3E 66 CD 81) in ring 0, through the test
/// gate (DPL 0): natively delivered like the bare INT, with EIP after the
/// whole instruction, prefixes included. A platform that must look at the
/// instruction to check the gate (the INT faults in a less privileged
/// ring) has to read past the prefixes to find it.
pub fn prefixed_int_n() -> Outcome {
    TEST_GATE_EIP.store(0, Ordering::SeqCst);
    crate::trap::set_hook(VECTOR_TEST, Some(record_test_gate_eip));
    let result = raise(exc_prefixed_int_test);
    crate::trap::set_hook(VECTOR_TEST, None);
    let after = exc_prefixed_int_test_after as *const () as usize as u32;
    if let Err(f) = result {
        fail!("3E 66 CD 81 in ring 0: {f}, expected the DPL 0 gate 0x81 entered");
    }
    let eip = TEST_GATE_EIP.load(Ordering::SeqCst);
    ensure_eq!(eip, after, "EIP pushed by the prefixed INT 0x81 (after it)");
    pass!("3E 66 CD 81 in ring 0 entered gate 0x81, EIP {eip:#x} after its 4 bytes")
}
