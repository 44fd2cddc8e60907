//! Interrupt and exception entry: 256 entry stubs, the common path that
//! saves a [`TrapFrame`] and returns through the paravirtual IRET site, and
//! the Rust dispatcher.
//!
//! The return path is Linux's INTERRUPT_RETURN: an inline site holding a
//! native `iretd`, which activation patches with a call or jump to the
//! ROM's IRET when the ROM asks for it (VMI_CALL_IRET is patch-only).
//!
//! What the dispatcher does with a trap, in order:
//! 1. from ring 3 while a case runs user code: the user service (if one is
//!    installed) serves it and resumes ring 3; an interrupt with a hook is
//!    the hook's; anything else ends the user run ([`crate::user`]);
//! 2. a hook installed for the vector handles it and returns to the
//!    interrupted code (#NM for lazy FPU, #DB for breakpoints, test gates);
//! 3. an exception inside [`catch`]: recorded, the catch returns it;
//! 4. other exceptions abort the running case (or the kernel);
//! 5. interrupts are counted ([`irq_count`]) and acknowledged.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::console::{kprintln, Text};
use crate::sync::Global;
use crate::{cases, pic, pv, user};
use bench_core::recovery::{call_with_recovery, resume, Context};

/// Vector of the first 8259 IRQ (IRQ n arrives as `IRQ_BASE + n`).
pub const IRQ_BASE: u32 = 0x20;
/// The vector the kernel programs into the local APIC timer LVT.
pub const VECTOR_APIC_TIMER: u32 = 0xF0;
/// The local APIC spurious vector.
pub const VECTOR_APIC_SPURIOUS: u32 = 0xFF;
/// The ring-3 system call gate.
pub const VECTOR_SYSCALL: u32 = 0x80;
/// A ring-0-only test gate (DPL 0).
pub const VECTOR_TEST: u32 = 0x81;
/// A second ring-0-only test gate. Not 0x82: a paravirtualized platform
/// may take that software-interrupt vector for its own calls (a kernel
/// raising it with `int` would not reach its IDT there).
pub const VECTOR_TEST2: u32 = 0x83;

/// Bytes per entry stub. The stubs of the vectors with an error code
/// (8, 10-14, 17, 21, 29, 30: Intel SDM vol. 3, "Exception and Interrupt
/// Reference") push only the vector; the others push a 0 error code first.
pub const STUB_SIZE: u32 = 16;

core::arch::global_asm!(
    r#"
    .text
    .balign 16
    .globl trap_stubs
trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .byte 0x68
    .long vec
    .else
    .byte 0x6a, 0
    .byte 0x68
    .long vec
    .endif
    jmp trap_common
    .set vec, vec + 1
    .endr

    // Segment registers as 32-bit pushes/pops, spelled out: the Intel
    // syntax assembler would emit the 16-bit forms and shift the frame.
trap_common:
    .byte 0x1E                  // push ds
    .byte 0x06                  // push es
    .byte 0x0F, 0xA0            // push fs
    .byte 0x0F, 0xA8            // push gs
    pushad
    // Through SS (the kernel's stack segment after the gate's stack
    // switch, or already the kernel's): DS may hold anything ring 3
    // loaded, a null selector or a segment with a base.
    mov ax, word ptr ss:[{kds}]
    mov ds, ax
    mov es, ax
    cld
    mov eax, esp
    push eax
    call {dispatch}
    add esp, 4
    popad
    .byte 0x0F, 0xA9            // pop gs
    .byte 0x0F, 0xA1            // pop fs
    .byte 0x07                  // pop es
    .byte 0x1F                  // pop ds
    add esp, 8
    .globl pv_iret_site
pv_iret_site:
    iretd
    .byte 0x90, 0x90, 0x90, 0x90
pv_iret_site_end:
    .pushsection .pv_sites, "a"
    .long pv_iret_site
    .byte pv_iret_site_end - pv_iret_site, {iret}, 0, 0
    .popsection

    // SYSENTER from ring 3 arrives here with CS/SS from IA32_SYSENTER_CS,
    // ESP = IA32_SYSENTER_ESP, interrupts off, nothing saved.
    .globl sysenter_entry
sysenter_entry:
    pushad
    mov ax, word ptr ss:[{kds}]
    mov ds, ax
    mov es, ax
    cld
    mov eax, esp
    push eax
    call {sysenter}
    ud2
    "#,
    kds = sym pv::KERNEL_DS,
    dispatch = sym trap_dispatch,
    sysenter = sym user::sysenter_dispatch,
    iret = const vmi_abi::VmiCall::Iret as u32,
);

extern "C" {
    static trap_stubs: u8;
    fn sysenter_entry();
}

/// Address of the entry stub of `vector`.
pub fn stub_address(vector: u32) -> u32 {
    (&raw const trap_stubs as u32) + (vector & 0xFF) * STUB_SIZE
}

/// Address of the SYSENTER entry point.
pub fn sysenter_entry_address() -> u32 {
    sysenter_entry as *const () as usize as u32
}

/// What the entry path saved, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    /// PUSHAD block.
    pub edi: u32,
    /// PUSHAD block.
    pub esi: u32,
    /// PUSHAD block.
    pub ebp: u32,
    /// PUSHAD block (ESP before PUSHAD, ignored by POPAD).
    pub esp_dummy: u32,
    /// PUSHAD block.
    pub ebx: u32,
    /// PUSHAD block.
    pub edx: u32,
    /// PUSHAD block.
    pub ecx: u32,
    /// PUSHAD block.
    pub eax: u32,
    /// Segment registers (low 16 bits meaningful).
    pub gs: u32,
    /// Segment register.
    pub fs: u32,
    /// Segment register.
    pub es: u32,
    /// Segment register.
    pub ds: u32,
    /// Vector number (pushed by the stub).
    pub vector: u32,
    /// Error code (pushed by the processor, or 0 by the stub).
    pub error_code: u32,
    /// Pushed by the processor.
    pub eip: u32,
    /// Pushed by the processor.
    pub cs: u32,
    /// Pushed by the processor.
    pub eflags: u32,
    /// Pushed by the processor on a privilege change only.
    pub user_esp: u32,
    /// Pushed by the processor on a privilege change only.
    pub user_ss: u32,
}

impl TrapFrame {
    /// Whether the trap came from ring 3.
    pub fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// An exception seen by [`catch`] or a hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    /// Exception vector.
    pub vector: u32,
    /// Error code (0 for exceptions without one).
    pub error_code: u32,
    /// EIP the processor pushed.
    pub eip: u32,
    /// CS the processor pushed.
    pub cs: u32,
    /// EFLAGS the processor pushed.
    pub eflags: u32,
    /// CR2 (GetCR2) for #PF, else 0.
    pub cr2: u32,
}

impl Fault {
    fn from_frame(frame: &TrapFrame) -> Self {
        Fault {
            vector: frame.vector & 0xFF,
            error_code: frame.error_code,
            eip: frame.eip,
            cs: frame.cs & 0xFFFF,
            eflags: frame.eflags,
            cr2: if frame.vector & 0xFF == 14 {
                pv::get_cr2()
            } else {
                0
            },
        }
    }
}

/// Short names of the exceptions, for messages.
pub fn exception_name(vector: u32) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "?15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "?22", "?23", "?24", "?25",
        "?26", "?27", "#HV", "#VC", "#SX", "?31",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (vector {}) error {:#x} at {:#x}:{:#010x}",
            exception_name(self.vector),
            self.vector,
            self.error_code,
            self.cs,
            self.eip
        )?;
        if self.vector == 14 {
            write!(f, " cr2 {:#010x}", self.cr2)?;
        }
        Ok(())
    }
}

/// A vector hook: handles the trap and returns true to resume the
/// interrupted code, or false to let the dispatcher carry on.
pub type Hook = fn(&mut TrapFrame) -> bool;

static HOOKS: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
/// The hooks of the interrupt vectors (32 and up) again, 0 for the
/// exceptions: the ones that take a trap from ring 3 even during a user
/// run, found by one load without comparing the vector first.
static INTERRUPT_HOOKS: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
static IRQ_COUNTS: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
static IRQ_LAST_CYCLES: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];
static CATCH_ARMED: AtomicBool = AtomicBool::new(false);
static CATCH_CONTEXT: Global<Context> = Global::new(Context::new());
static CAUGHT: Global<Option<Fault>> = Global::new(None);
/// `recovery_resume` value for a caught fault.
const RESUMED_BY_FAULT: u32 = 0xFA17_0000;

/// Installs (or with `None` removes) the hook of `vector`.
pub fn set_hook(vector: u32, hook: Option<Hook>) {
    let raw = hook.map_or(0, |h| h as usize as u32);
    let vector = (vector & 0xFF) as usize;
    HOOKS[vector].store(raw, Ordering::SeqCst);
    if vector >= 32 {
        INTERRUPT_HOOKS[vector].store(raw, Ordering::SeqCst);
    }
}

/// Whether `vector` is an interrupt with a hook (which takes the trap
/// even from ring 3 during a user run).
#[inline(always)]
fn interrupt_hooked(vector: u32) -> bool {
    INTERRUPT_HOOKS[(vector & 0xFF) as usize].load(Ordering::SeqCst) != 0
}

fn hook(vector: u32) -> Option<Hook> {
    let raw = HOOKS[(vector & 0xFF) as usize].load(Ordering::SeqCst);
    if raw == 0 {
        None
    } else {
        // SAFETY: only set_hook stores non-zero values, and those are
        // `Hook` function pointers.
        Some(unsafe { core::mem::transmute::<usize, Hook>(raw as usize) })
    }
}

/// Interrupts seen on `vector` so far.
pub fn irq_count(vector: u32) -> u32 {
    IRQ_COUNTS[(vector & 0xFF) as usize].load(Ordering::SeqCst)
}

/// Cycle counter (GetCycleCounter REAL) at the last interrupt on `vector`.
pub fn irq_last_cycles(vector: u32) -> u64 {
    IRQ_LAST_CYCLES[(vector & 0xFF) as usize].load(Ordering::SeqCst)
}

/// Runs `f`, catching the first exception it raises in ring 0: `Ok` with
/// `f`'s value if none, `Err` with the fault otherwise (the rest of `f` is
/// abandoned, the interrupt flag restored to its value before the call).
pub fn catch<F: FnMut() -> u32>(f: F) -> Result<u32, Fault> {
    let flags = pv::save_fl();
    CAUGHT.with(|c| *c = None);
    let previously = CATCH_ARMED.swap(true, Ordering::SeqCst);
    assert!(!previously, "nested catch");
    // SAFETY: CATCH_CONTEXT is armed only while this call runs; the
    // dispatcher resumes it with RESUMED_BY_FAULT after setting CAUGHT.
    let value = unsafe { call_with_recovery(CATCH_CONTEXT.as_ptr(), f) };
    CATCH_ARMED.store(false, Ordering::SeqCst);
    match CAUGHT.with(|c| c.take()) {
        Some(fault) if value == RESUMED_BY_FAULT => {
            pv::restore_fl(flags);
            Err(fault)
        }
        _ => Ok(value),
    }
}

/// Disarms a catch a case abort cut short.
pub fn reset_after_abort() {
    CATCH_ARMED.store(false, Ordering::SeqCst);
}

/// The Rust half of every interrupt and exception.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector & 0xFF;
    // An interrupt a case hooks is the case's to handle even over ring 3
    // (it returns there); the user service (benchmarks) may serve a trap
    // and resume ring 3; any other trap from ring 3 ends the user run.
    // A run with a service (a benchmark) is tested first, with as few
    // checks as the direct-PV kernel's dispatcher makes.
    if frame.is_from_user() && user::served_run() && !interrupt_hooked(vector) {
        if user::service(frame) {
            return;
        }
        user::user_trap(frame);
    }
    if frame.is_from_user() && user::running() && !interrupt_hooked(vector) {
        user::user_trap(frame);
    }
    if let Some(h) = hook(vector) {
        if h(frame) {
            return;
        }
    }
    if vector < 32 {
        let fault = Fault::from_frame(frame);
        if CATCH_ARMED.swap(false, Ordering::SeqCst) {
            CAUGHT.with(|c| *c = Some(fault));
            // SAFETY: CATCH_CONTEXT was armed by `catch`, whose frame is
            // below this handler's on the stack.
            unsafe { resume(CATCH_CONTEXT.as_ptr(), RESUMED_BY_FAULT) };
        }
        cases::abort_current(Text::from_fmt(format_args!("unexpected exception {fault}")));
    }
    IRQ_COUNTS[vector as usize].fetch_add(1, Ordering::SeqCst);
    if (IRQ_BASE..IRQ_BASE + 16).contains(&vector) {
        let irq = vector - IRQ_BASE;
        if pic::is_spurious(irq) {
            IRQ_COUNTS[vector as usize].fetch_sub(1, Ordering::SeqCst);
            return;
        }
        IRQ_LAST_CYCLES[vector as usize].store(pv::cycles_now(), Ordering::SeqCst);
        pic::eoi(irq);
    } else if vector == VECTOR_APIC_TIMER {
        IRQ_LAST_CYCLES[vector as usize].store(pv::cycles_now(), Ordering::SeqCst);
        pv::apic_write(native_rom::hw::apic::REG_EOI, 0);
    } else if vector != VECTOR_APIC_SPURIOUS && !(0x80..0x90).contains(&vector) {
        kprintln!(
            "trap: unexpected interrupt vector {vector:#x} at {:#x}",
            frame.eip
        );
    }
}
