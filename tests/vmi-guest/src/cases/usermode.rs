//! Ring 3: entered by the paravirtual IRET and SYSEXIT, left by INT 0x80,
//! SYSENTER and faults; the kernel stack switch (UpdateKernelStack), the
//! IOPL mask, privileged instructions, CR4.TSD.

use native_rom::hw::cpu::{CR4_TSD, EFLAGS_IF, EFLAGS_IOPL};

use super::{ensure, ensure_eq, pass, skip, Outcome};
use crate::boot::Stack;
use crate::desc::{Table, IDT, USER_CS, USER_DS};
use crate::pv;
use crate::sync::Global;
use crate::trap::{TrapFrame, VECTOR_SYSCALL, VECTOR_TEST};
use crate::user::{self, Snippet, UserExit, UserRegs, VECTOR_SYSENTER};

/// EFLAGS for ring 3: IF set, reserved bit 1 set, IOPL 0.
const USER_EFLAGS: u32 = EFLAGS_IF | 0x2;

fn run(snippet: Snippet, regs: UserRegs) -> UserExit {
    user::run_iret(snippet, regs, USER_EFLAGS)
}

fn describe(exit: &UserExit) -> crate::console::Text {
    let f = &exit.frame;
    crate::console::Text::from_fmt(format_args!(
        "vector {:#x} error {:#x} eip {:#x} cs {:#x}",
        f.vector, f.error_code, f.eip, f.cs
    ))
}

pub fn iret_and_int80() -> Outcome {
    let regs = UserRegs {
        eax: 0x1234_5678,
        ebx: 0x9ABC_DEF0,
        ecx: 0x1111,
        edx: 0x2222,
    };
    let exit = run(Snippet::Syscall, regs);
    let f = &exit.frame;
    ensure_eq!(f.vector, VECTOR_SYSCALL, "vector of the exit");
    ensure_eq!(f.cs & 0xFFFF, u32::from(USER_CS), "CS pushed by INT 0x80");
    ensure_eq!(
        f.user_ss & 0xFFFF,
        u32::from(USER_DS),
        "SS pushed by INT 0x80"
    );
    ensure_eq!(f.user_esp, user::user_stack_top(), "ESP pushed by INT 0x80");
    ensure_eq!(
        f.eip,
        Snippet::Syscall.address() + 2,
        "EIP pushed by INT 0x80 (after it)"
    );
    ensure_eq!(f.ds & 0xFFFF, u32::from(USER_DS), "DS in ring 3");
    ensure_eq!(f.eax, regs.eax, "EAX carried into ring 3 and back");
    ensure_eq!(f.ebx, regs.ebx, "EBX carried into ring 3 and back");
    ensure!(
        f.eflags & EFLAGS_IF != 0,
        "IF clear in ring 3 (EFLAGS {:#x})",
        f.eflags
    );
    pass!(
        "IRET to {:#x}:{:#x}, INT 0x80 back with registers intact",
        f.cs,
        Snippet::Syscall.address()
    )
}

pub fn fault_returns_to_kernel() -> Outcome {
    let exit = run(Snippet::Ud2, UserRegs::default());
    let f = &exit.frame;
    ensure_eq!(f.vector, 6u32, "vector (#UD)");
    ensure_eq!(f.cs & 0xFFFF, u32::from(USER_CS), "CS pushed");
    ensure_eq!(f.eip, Snippet::Ud2.address(), "EIP pushed (the UD2)");
    pass!("#UD from ring 3 reached the kernel: {}", describe(&exit))
}

pub fn privileged_instructions_fault() -> Outcome {
    for (snippet, name) in [(Snippet::Cli, "CLI"), (Snippet::Hlt, "HLT")] {
        let exit = run(snippet, UserRegs::default());
        let f = &exit.frame;
        ensure!(
            f.vector == 13 && f.error_code == 0,
            "{name} in ring 3 (IOPL 0): {}",
            describe(&exit)
        );
        ensure_eq!(f.eip, snippet.address(), "EIP of the #GP");
    }
    pass!("CLI and HLT in ring 3 raise #GP(0)")
}

pub fn breakpoint_gate() -> Outcome {
    let exit = run(Snippet::Int3, UserRegs::default());
    let f = &exit.frame;
    ensure_eq!(f.vector, 3u32, "vector (#BP through a DPL 3 gate)");
    ensure_eq!(
        f.eip,
        Snippet::Int3.address() + 1,
        "EIP pushed (after INT3)"
    );
    pass!("INT3 from ring 3 delivered as #BP")
}

pub fn dpl0_gate_faults() -> Outcome {
    let exit = run(Snippet::IntTestGate, UserRegs::default());
    let f = &exit.frame;
    ensure_eq!(f.vector, 13u32, "vector (#GP)");
    ensure_eq!(
        f.error_code,
        (VECTOR_TEST << 3) | 2,
        "#GP error code (IDT index | IDT bit)"
    );
    pass!(
        "INT 0x81 (DPL 0 gate) from ring 3 raised #GP({:#x})",
        f.error_code
    )
}

/// INT3 from ring 3 through a #BP gate of DPL 0: natively #GP with the
/// gate's IDT error code (3 << 3 | 2) at the INT3, since INT3, like INT n
/// and INTO, is refused by a gate whose DPL is below the caller's CPL (SDM
/// vol. 2, INT n/INTO/INT3). The kernel's own INT3 through that gate is
/// still #BP with EIP after it.
pub fn breakpoint_dpl0_gate_faults() -> Outcome {
    const BP: u32 = 3;
    // Bits 45-46 of a gate: its DPL.
    const GATE_DPL: u64 = 3 << 45;
    let idt = Table::base(&IDT);
    let good = Table::read(&IDT, BP as usize);
    pv::write_idt_entry(idt, BP, good & !GATE_DPL);
    let exit = run(Snippet::Int3, UserRegs::default());
    let kernel = super::exceptions::raise_int3();
    pv::write_idt_entry(idt, BP, good);
    let f = &exit.frame;
    ensure!(
        f.vector == 13 && f.error_code == (BP << 3) | 2,
        "INT3 from ring 3 through a DPL 0 gate: {}, expected #GP({:#x})",
        describe(&exit),
        (BP << 3) | 2
    );
    ensure_eq!(f.eip, Snippet::Int3.address(), "EIP of the #GP (the INT3)");
    ensure_eq!(f.cs & 0xFFFF, u32::from(USER_CS), "CS pushed");
    let (vector, eip, after) = kernel;
    ensure_eq!(
        vector,
        BP,
        "vector of the kernel's INT3 through the DPL 0 gate"
    );
    ensure_eq!(eip, after, "EIP of the kernel's #BP (after the INT3)");
    pass!(
        "INT3 through a DPL 0 gate: #GP({:#x}) from ring 3, #BP in ring 0",
        f.error_code
    )
}

const SWITCH_STACK_SIZE: usize = crate::boot::STACK_SIZE;
static STACK_A: Global<Stack> = Global::new(Stack([0; SWITCH_STACK_SIZE]));
static STACK_B: Global<Stack> = Global::new(Stack([0; SWITCH_STACK_SIZE]));

/// The top (initial ESP) of one of the cases' switch stacks.
fn stack_top(stack: &Global<Stack>) -> u32 {
    stack.as_ptr() as u32 + SWITCH_STACK_SIZE as u32
}

/// Whether a ring-0 entry's frame sits in the top 512 bytes of the
/// kernel's own ring-0 stack (where it lands once that stack is restored).
fn on_kernel_stack(exit: &UserExit) -> bool {
    let top = crate::kmain::ring0_stack_top();
    exit.frame_address < top && exit.frame_address > top - 512
}

/// Whether the exit's frame lies at the top of `stack` (within the bytes a
/// ring-3 entry needs).
fn frame_on(exit: &UserExit, stack: &Global<Stack>) -> bool {
    let base = stack.as_ptr() as u32;
    let top = base + SWITCH_STACK_SIZE as u32;
    let addr = exit.frame_address;
    addr >= base && addr < top && top - addr <= 256 + core::mem::size_of::<TrapFrame>() as u32
}

pub fn kernel_stack_switch() -> Outcome {
    let ds = pv::kernel_ds();
    pv::update_kernel_stack(ds, stack_top(&STACK_A));
    let on_a = run(Snippet::Syscall, UserRegs::default());
    pv::update_kernel_stack(ds, stack_top(&STACK_B));
    let on_b = run(Snippet::Syscall, UserRegs::default());
    pv::update_kernel_stack(ds, crate::kmain::ring0_stack_top());
    let back = run(Snippet::Syscall, UserRegs::default());
    ensure!(
        frame_on(&on_a, &STACK_A),
        "entry frame at {:#x}, not at the top of stack A ({:#x})",
        on_a.frame_address,
        stack_top(&STACK_A)
    );
    ensure!(
        frame_on(&on_b, &STACK_B),
        "entry frame at {:#x}, not at the top of stack B ({:#x})",
        on_b.frame_address,
        stack_top(&STACK_B)
    );
    ensure!(
        on_kernel_stack(&back),
        "entry frame at {:#x} after restoring the kernel stack",
        back.frame_address
    );
    pass!("ring 0 entries used stack A, then B, then the kernel stack again")
}

/// The ROM's UpdateKernelStack code, called directly by the address
/// GetRelocationInfo gave (CALL_REL, or NONE with code: the native ROM's
/// writes the TSS's ss0:esp0, which a kernel writes itself, as Linux's
/// `native_load_sp0`): ring-3 entries then land on the stack it was given.
pub fn kernel_stack_rom_entry_direct() -> Outcome {
    if !pv::vmi_active() {
        skip!("no VMI ROM: no ROM code to call");
    }
    let Some(update) = pv::rom_entry(vmi_abi::VmiCall::UpdateKernelStack) else {
        skip!("the ROM gives no code for UpdateKernelStack");
    };
    let ds = pv::kernel_ds();
    // SAFETY: the ROM's UpdateKernelStack (regparm: EAX = SS, EDX = ESP0);
    // stack B is this case's own, free while the kernel runs here.
    unsafe { pv::rom_call(update, u32::from(ds), stack_top(&STACK_B), 0, [0, 0]) };
    let on_b = run(Snippet::Syscall, UserRegs::default());
    pv::update_kernel_stack(ds, crate::kmain::ring0_stack_top());
    let back = run(Snippet::Syscall, UserRegs::default());
    ensure!(
        frame_on(&on_b, &STACK_B),
        "entry frame at {:#x}, not at the top of stack B ({:#x}) given to the ROM's code",
        on_b.frame_address,
        stack_top(&STACK_B)
    );
    ensure!(
        on_kernel_stack(&back),
        "entry frame at {:#x} after restoring the kernel stack",
        back.frame_address
    );
    pass!(
        "the ROM's UpdateKernelStack at {update:#x} (relocation {}) moved ring-0 entries to \
         stack B",
        pv::relocation(vmi_abi::VmiCall::UpdateKernelStack).type_
    )
}

static SYSENTER_STACK: Global<Stack> = Global::new(Stack([0; SWITCH_STACK_SIZE]));
const IA32_SYSENTER_CS: u32 = 0x174;
const IA32_SYSENTER_ESP: u32 = 0x175;
const IA32_SYSENTER_EIP: u32 = 0x176;

pub fn sysexit_sysenter() -> Outcome {
    if pv::cpuid(1, 0)[3] & (1 << 11) == 0 {
        skip!("no SYSENTER/SYSEXIT (CPUID.1:EDX.SEP clear)");
    }
    let stack_top = SYSENTER_STACK.as_ptr() as u32 + SWITCH_STACK_SIZE as u32;
    let saved = [IA32_SYSENTER_CS, IA32_SYSENTER_ESP, IA32_SYSENTER_EIP].map(pv::rdmsr);
    pv::wrmsr(IA32_SYSENTER_CS, u64::from(pv::kernel_cs() & !3));
    pv::wrmsr(IA32_SYSENTER_ESP, u64::from(stack_top));
    pv::wrmsr(
        IA32_SYSENTER_EIP,
        u64::from(crate::trap::sysenter_entry_address()),
    );
    let exit = user::run_sysexit();
    for (msr, value) in [IA32_SYSENTER_CS, IA32_SYSENTER_ESP, IA32_SYSENTER_EIP]
        .into_iter()
        .zip(saved)
    {
        pv::wrmsr(msr, value);
    }
    let f = &exit.frame;
    ensure_eq!(f.vector, VECTOR_SYSENTER, "exit (SYSENTER)");
    ensure_eq!(
        f.ebx & 0xFFFF,
        u32::from(USER_CS),
        "CS in ring 3 after SYSEXIT"
    );
    ensure_eq!(
        f.esi & 0xFFFF,
        u32::from(USER_DS),
        "SS in ring 3 after SYSEXIT"
    );
    ensure!(
        f.eax & EFLAGS_IF != 0,
        "SYSEXIT left interrupts disabled in ring 3 (EFLAGS {:#x})",
        f.eax
    );
    let addr = exit.frame_address;
    ensure!(
        addr < stack_top && addr >= stack_top - 256,
        "SYSENTER arrived on {addr:#x}, not the SYSENTER stack"
    );
    pass!("SYSEXIT to ring 3 with IF set, SYSENTER back on the SYSENTER stack")
}

pub fn iopl_mask() -> Outcome {
    let port_regs = UserRegs {
        edx: 0x61,
        ..UserRegs::default()
    };
    pv::set_iopl_mask(3 << 12);
    let with_iopl3 = user::run_iret(Snippet::PortIn, port_regs, USER_EFLAGS | EFLAGS_IOPL);
    let cli_iopl3 = user::run_iret(Snippet::Cli, UserRegs::default(), USER_EFLAGS | EFLAGS_IOPL);
    pv::set_iopl_mask(0);
    let with_iopl0 = user::run_iret(Snippet::PortIn, port_regs, USER_EFLAGS);
    ensure!(
        with_iopl3.frame.vector == VECTOR_SYSCALL,
        "IN from ring 3 with IOPL 3: {}",
        describe(&with_iopl3)
    );
    ensure!(
        cli_iopl3.frame.vector == VECTOR_SYSCALL,
        "CLI from ring 3 with IOPL 3: {}",
        describe(&cli_iopl3)
    );
    ensure!(
        with_iopl0.frame.vector == 13 && with_iopl0.frame.eip == Snippet::PortIn.address(),
        "IN from ring 3 with IOPL 0: {}",
        describe(&with_iopl0)
    );
    pass!("IOPL 3: ring 3 port I/O and CLI allowed; IOPL 0: #GP")
}

pub fn rdtsc_cr4_tsd() -> Outcome {
    let cr4 = pv::get_cr4();
    pv::set_cr4(cr4 | CR4_TSD);
    let denied = run(Snippet::Rdtsc, UserRegs::default());
    pv::set_cr4(cr4 & !CR4_TSD);
    let allowed = run(Snippet::Rdtsc, UserRegs::default());
    pv::set_cr4(cr4);
    ensure!(
        denied.frame.vector == 13,
        "RDTSC in ring 3 with CR4.TSD: {}",
        describe(&denied)
    );
    ensure!(
        allowed.frame.vector == VECTOR_SYSCALL,
        "RDTSC in ring 3 without CR4.TSD: {}",
        describe(&allowed)
    );
    ensure!(
        allowed.frame.eax != 0 || allowed.frame.edx != 0,
        "RDTSC in ring 3 returned 0"
    );
    pass!("ring 3 RDTSC faults with CR4.TSD, works without")
}

/// An address no case maps (the test region's, between the pages the
/// paging cases use), for a ring-3 fault on an unmapped page.
const UNMAPPED_VA: u32 = crate::mm::TEST_BASE + (100 << 20) + 0x124;

/// The LDT entry the data-segment cases give ring 3: a writable DPL-3 data
/// segment with a 4 GiB limit and a non-zero base, `SHIFTED_BASE`.
const SHIFTED_LDT_INDEX: u16 = 2;
const SHIFTED_BASE: u32 = 0x0000_1000;

/// Ring 3 loads `selector` into DS and ES, then faults on an unmapped page
/// through SS, then (a second run) reads its own word through SS and ends
/// by INT 0x80: the kernel's handlers get #PF (CR2 the address, error code
/// "user read, not present") and the system call, their frames holding
/// `selector` in DS and ES, as the processor leaves them (the gate's entry
/// loads its own). A platform addressing its own memory through the
/// interrupted code's DS on the way would fault on a null one or, on a
/// segment with a base, read and write elsewhere.
fn data_segments_reach_kernel(selector: u16, what: &str) -> Outcome {
    if crate::mm::kernel_space().is_none() {
        skip!("paging is not enabled (mmu_enable_pae_paging failed): no page to fault on");
    }
    let exit = run(
        Snippet::SegmentsLoad,
        UserRegs {
            ebx: UNMAPPED_VA,
            edx: u32::from(selector),
            ..UserRegs::default()
        },
    );
    let f = &exit.frame;
    ensure!(
        f.vector == 14,
        "ring 3 with DS = ES = {selector:#x} reading an unmapped page: {}",
        describe(&exit)
    );
    ensure_eq!(exit.cr2, UNMAPPED_VA, "CR2 of the fault");
    ensure_eq!(f.error_code, 4u32, "error code (user read, not present)");
    ensure_eq!(f.cs & 0xFFFF, u32::from(USER_CS), "CS pushed");
    ensure_eq!(f.ds & 0xFFFF, u32::from(selector), "DS in the #PF frame");
    ensure_eq!(f.es & 0xFFFF, u32::from(selector), "ES in the #PF frame");
    // SAFETY: the user word is the kernel's to write while no user code runs.
    unsafe { user::USER_WORD.as_ptr().write_volatile(0x5E6_0000) };
    let exit = run(
        Snippet::SegmentsLoad,
        UserRegs {
            ebx: user::USER_WORD.as_ptr() as u32,
            edx: u32::from(selector),
            ..UserRegs::default()
        },
    );
    let f = &exit.frame;
    ensure!(
        f.vector == VECTOR_SYSCALL,
        "ring 3 with DS = ES = {selector:#x} reading its own word: {}",
        describe(&exit)
    );
    ensure_eq!(f.eax, 0x5E6_0000u32, "EAX read through SS");
    ensure_eq!(f.ds & 0xFFFF, u32::from(selector), "DS at INT 0x80");
    ensure_eq!(f.es & 0xFFFF, u32::from(selector), "ES at INT 0x80");
    pass!("ring 3 with DS = ES = {selector:#x} ({what}): #PF(4) at cr2 {UNMAPPED_VA:#x} and INT 0x80 reach the kernel with them kept")
}

/// DS and ES null (legal in ring 3).
pub fn null_data_segments_page_fault() -> Outcome {
    data_segments_reach_kernel(0, "null")
}

/// Gives ring 3 an LDT data segment based at `SHIFTED_BASE` and runs `f`
/// with its selector; the LDT is unloaded after.
pub fn with_shifted_ldt_segment(f: impl FnOnce(u16) -> Outcome) -> Outcome {
    use crate::desc::{descriptor, Table, ACCESS_USER_DATA, FLAGS_4K_32BIT, LDT, LDT_SELECTOR};
    let d = descriptor(SHIFTED_BASE, 0xF_FFFF, ACCESS_USER_DATA, FLAGS_4K_32BIT);
    pv::write_ldt_entry(Table::base(&LDT), u32::from(SHIFTED_LDT_INDEX), d);
    pv::set_ldt(LDT_SELECTOR);
    let outcome = f((SHIFTED_LDT_INDEX << 3) | 4 | 3);
    pv::set_ldt(0);
    outcome
}

/// DS and ES an LDT data segment with a non-zero base (what Linux's
/// modify_ldt gives a program).
pub fn ldt_data_segments_page_fault() -> Outcome {
    with_shifted_ldt_segment(|selector| {
        data_segments_reach_kernel(selector, "an LDT segment based at 0x1000")
    })
}
