//! Ring 3: entering user mode by IRET (the paravirtual IRET site) or by
//! SYSEXIT (its own patch site), and coming back by INT 0x80, SYSENTER or
//! any exception.
//!
//! A user run is a recovery point ([`crate::recovery`]): the kernel saves
//! its registers, drops to ring 3, and the first trap from ring 3 records
//! what happened ([`UserExit`]) and resumes the kernel where it left,
//! unless a user service ([`set_service`]: the benchmarks' kernel) serves
//! the trap and resumes ring 3.
//!
//! The user code is a set of small assembly snippets in the `.user.text`
//! section, the only code pages ring 3 may execute once paging is on.

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::desc::{USER_CS, USER_DS};
use crate::sync::Global;
use crate::trap::TrapFrame;
use bench_core::recovery::{call_with_recovery, resume, Context};

/// Size of the user stack page.
pub const USER_STACK_SIZE: usize = 4096;

/// The user stack (in the user-accessible data page).
#[repr(C, align(4096))]
pub struct UserStack(pub [u8; USER_STACK_SIZE]);

/// Ring 3's stack.
#[link_section = ".user.data"]
pub static USER_STACK: Global<UserStack> = Global::new(UserStack([0; USER_STACK_SIZE]));

/// A word ring 3 may read and write (the user data page).
#[link_section = ".user.data"]
pub static USER_WORD: Global<u32> = Global::new(0);

core::arch::global_asm!(
    r#"
    .pushsection .user.text, "ax"
    // INT 0x80 with the registers the kernel set.
    .globl user_syscall
user_syscall:
    int 0x80
    ud2

    // Each of these traps at its first instruction.
    .globl user_ud2
user_ud2:
    ud2
    .globl user_cli
user_cli:
    cli
    int 0x80
    .globl user_hlt
user_hlt:
    hlt
    int 0x80
    .globl user_int3
user_int3:
    int3
    int 0x80
    .globl user_int_test_gate
user_int_test_gate:
    int 0x81
    int 0x80

    // Spins until [EBX] becomes non-zero or ECX counts down to 0, then
    // INT 0x80 (with interrupts as the IRET frame set them).
    .globl user_wait_word
user_wait_word:
    cmp dword ptr [ebx], 0
    jne 1f
    dec ecx
    jnz user_wait_word
1:  int 0x80

    // EAX = [EBX], then INT 0x80.
    .globl user_load
user_load:
    mov eax, [ebx]
    int 0x80

    // [EBX] = ECX, then INT 0x80.
    .globl user_store
user_store:
    mov [ebx], ecx
    int 0x80

    // DS and ES = DX (a null selector, or any data segment ring 3 may
    // load), then EAX = SS:[EBX] and INT 0x80 with them still so.
    .globl user_segments_load
user_segments_load:
    mov ds, dx
    mov es, dx
    mov eax, ss:[ebx]
    int 0x80

    // DS and ES = DX, then spins until SS:[EBX] becomes non-zero or ECX
    // counts down to 0, then INT 0x80.
    .globl user_segments_wait
user_segments_wait:
    mov ds, dx
    mov es, dx
2:  cmp dword ptr ss:[ebx], 0
    jne 3f
    dec ecx
    jnz 2b
3:  int 0x80

    // EDX:EAX = TSC, then INT 0x80.
    .globl user_rdtsc
user_rdtsc:
    rdtsc
    int 0x80

    // AL = in(DX), then INT 0x80.
    .globl user_port_in
user_port_in:
    in al, dx
    int 0x80

    // After SYSEXIT: EAX = EFLAGS, EBX = CS, ESI = SS, then SYSENTER.
    .globl user_sysenter
user_sysenter:
    pushfd
    pop eax
    mov ebx, cs
    mov esi, ss
    sysenter
    ud2
    .popsection

    .text
    // jump_to_user_iret(const UserFrame *frame): loads the user data
    // segments and general registers, builds the IRET frame, and leaves by
    // the paravirtual IRET site.
    .globl jump_to_user_iret
jump_to_user_iret:
    mov eax, [esp + 4]
    push dword ptr [eax + 16]
    push dword ptr [eax + 12]
    push dword ptr [eax + 8]
    push dword ptr [eax + 4]
    push dword ptr [eax]
    mov cx, {user_ds}
    mov ds, cx
    mov es, cx
    xor ecx, ecx
    mov fs, cx
    mov gs, cx
    mov ebx, [eax + 24]
    mov ecx, [eax + 28]
    mov edx, [eax + 32]
    mov esi, [eax + 36]
    mov edi, [eax + 40]
    mov ebp, [eax + 44]
    mov eax, [eax + 20]
    jmp pv_iret_site

    // jump_to_user_sysexit(u32 eip, u32 esp): SYSEXIT's registers (EDX =
    // EIP, ECX = ESP), then the paravirtual SYSEXIT site, which enables
    // interrupts as it leaves (Linux's irq_enable_sysexit).
    .globl jump_to_user_sysexit
jump_to_user_sysexit:
    mov edx, [esp + 4]
    mov ecx, [esp + 8]
    mov ax, {user_ds}
    mov ds, ax
    mov es, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    .globl pv_sysexit_site
pv_sysexit_site:
    sti
    sysexit
    .byte 0x90, 0x90
pv_sysexit_site_end:
    .pushsection .pv_sites, "a"
    .long pv_sysexit_site
    .byte pv_sysexit_site_end - pv_sysexit_site, {sysexit}, 0, 0
    .popsection
    "#,
    user_ds = const USER_DS,
    sysexit = const vmi_abi::VmiCall::Sysexit as u32,
);

extern "C" {
    fn jump_to_user_iret(frame: *const UserFrame) -> !;
    fn jump_to_user_sysexit(eip: u32, esp: u32) -> !;
    fn user_syscall();
    fn user_ud2();
    fn user_cli();
    fn user_hlt();
    fn user_int3();
    fn user_int_test_gate();
    fn user_wait_word();
    fn user_load();
    fn user_store();
    fn user_rdtsc();
    fn user_segments_load();
    fn user_segments_wait();
    fn user_port_in();
    fn user_sysenter();
}

/// The user snippets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snippet {
    /// INT 0x80 with the given registers.
    Syscall,
    /// UD2.
    Ud2,
    /// CLI (privileged unless IOPL 3).
    Cli,
    /// HLT (always privileged).
    Hlt,
    /// INT3.
    Int3,
    /// INT 0x81 (a DPL-0 gate).
    IntTestGate,
    /// Spin until [EBX] != 0 or ECX runs out.
    WaitWord,
    /// EAX = [EBX].
    Load,
    /// [EBX] = ECX.
    Store,
    /// RDTSC.
    Rdtsc,
    /// DS = ES = DX, then EAX = SS:[EBX].
    SegmentsLoad,
    /// DS = ES = DX, then spin until SS:[EBX] != 0 or ECX runs out.
    SegmentsWait,
    /// IN AL, DX.
    PortIn,
    /// Report EFLAGS/CS/SS and SYSENTER (after SYSEXIT).
    Sysenter,
}

impl Snippet {
    /// Entry address.
    pub fn address(self) -> u32 {
        let f: unsafe extern "C" fn() = match self {
            Snippet::Syscall => user_syscall,
            Snippet::Ud2 => user_ud2,
            Snippet::Cli => user_cli,
            Snippet::Hlt => user_hlt,
            Snippet::Int3 => user_int3,
            Snippet::IntTestGate => user_int_test_gate,
            Snippet::WaitWord => user_wait_word,
            Snippet::Load => user_load,
            Snippet::Store => user_store,
            Snippet::Rdtsc => user_rdtsc,
            Snippet::SegmentsLoad => user_segments_load,
            Snippet::SegmentsWait => user_segments_wait,
            Snippet::PortIn => user_port_in,
            Snippet::Sysenter => user_sysenter,
        };
        f as *const () as usize as u32
    }
}

/// What `jump_to_user_iret` loads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserFrame {
    /// 0: EIP.
    pub eip: u32,
    /// 4: CS.
    pub cs: u32,
    /// 8: EFLAGS.
    pub eflags: u32,
    /// 12: ESP.
    pub esp: u32,
    /// 16: SS.
    pub ss: u32,
    /// 20: EAX.
    pub eax: u32,
    /// 24: EBX.
    pub ebx: u32,
    /// 28: ECX.
    pub ecx: u32,
    /// 32: EDX.
    pub edx: u32,
    /// 36: ESI.
    pub esi: u32,
    /// 40: EDI.
    pub edi: u32,
    /// 44: EBP.
    pub ebp: u32,
}

/// General registers for a user run.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserRegs {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// How a user run ended.
#[derive(Clone, Copy, Debug)]
pub struct UserExit {
    /// The trap frame (for SYSENTER: only the general registers are set,
    /// vector 0xFFFF_FFFF).
    pub frame: TrapFrame,
    /// Address of the frame: where the ring-0 entry put it (the kernel
    /// stack the processor switched to).
    pub frame_address: u32,
    /// CR2 at the trap (GetCR2), for page faults.
    pub cr2: u32,
}

/// Vector recorded for a SYSENTER exit.
pub const VECTOR_SYSENTER: u32 = 0xFFFF_FFFF;

static RUNNING: AtomicBool = AtomicBool::new(false);
static CONTEXT: Global<Context> = Global::new(Context::new());
static EXIT: Global<Option<UserExit>> = Global::new(None);

/// Whether a user run is in progress.
pub fn running() -> bool {
    RUNNING.load(Ordering::SeqCst)
}

/// Top of the user stack.
pub fn user_stack_top() -> u32 {
    USER_STACK.as_ptr() as u32 + USER_STACK_SIZE as u32
}

fn run(enter: impl FnMut() -> u32) -> UserExit {
    let flags = crate::pv::save_fl();
    EXIT.with(|e| *e = None);
    RUNNING.store(true, Ordering::SeqCst);
    RUN_SERVICE.store(SERVICE.load(Ordering::SeqCst), Ordering::SeqCst);
    // SAFETY: CONTEXT is armed only while this runs; user_trap and
    // sysenter_dispatch resume it after recording the exit.
    unsafe { call_with_recovery(CONTEXT.as_ptr(), enter) };
    RUN_SERVICE.store(0, Ordering::SeqCst);
    RUNNING.store(false, Ordering::SeqCst);
    crate::pv::restore_fl(flags);
    EXIT.with(|e| e.take())
        .expect("user run ended without an exit record")
}

/// Runs `snippet` in ring 3 (entered by IRET with `eflags`), until its first
/// trap back to ring 0.
pub fn run_iret(snippet: Snippet, regs: UserRegs, eflags: u32) -> UserExit {
    let frame = UserFrame {
        eip: snippet.address(),
        cs: u32::from(USER_CS),
        eflags,
        esp: user_stack_top(),
        ss: u32::from(USER_DS),
        eax: regs.eax,
        ebx: regs.ebx,
        ecx: regs.ecx,
        edx: regs.edx,
        esi: 0,
        edi: 0,
        ebp: 0,
    };
    run_frame(&frame)
}

/// Runs ring-3 code as `frame` describes (entered by IRET), until a trap
/// back to ring 0 that the user service (if any) does not resume.
pub fn run_frame(frame: &UserFrame) -> UserExit {
    run(|| {
        // SAFETY: the caller's frame describes ring-3 code and stack the
        // page tables let ring 3 use; the trap back resumes CONTEXT.
        unsafe { jump_to_user_iret(frame) }
    })
}

/// Who serves traps from ring 3 during a run (resumes ring 3 after a
/// served system call or a fixed fault) instead of ending the run.
///
/// A closed set, not a function pointer: the trap path calls the service
/// directly, and the service's address is never taken, so the compiler
/// keeps one copy of the benchmarks' kernel code (bench-core's `user_trap`
/// and what it calls), the one inlined in the trap path. A second,
/// address-taken copy made bench-core's `raise` and `sigreturn` two-caller
/// functions, which the compiler then called out of line
/// (docs/benchmarks.md, "Traps from ring 3").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The benchmarks' kernel ([`crate::bench::platform::service`]).
    Bench,
}

/// The installed service: 0 none, otherwise `Service as u8 + 1`.
static SERVICE: AtomicU8 = AtomicU8::new(0);
/// The service of the run in progress (0: no run, or a run without a
/// service), the same encoding: the trap path's one test for "a trap from
/// ring 3 the service is offered" while a benchmark runs.
static RUN_SERVICE: AtomicU8 = AtomicU8::new(0);

/// Installs (or with `None` removes) the user service; it serves the runs
/// started from then on.
pub fn set_service(service: Option<Service>) {
    SERVICE.store(service.map_or(0, |s| s as u8 + 1), Ordering::SeqCst);
}

/// Whether a run with a user service is in progress.
#[inline(always)]
pub fn served_run() -> bool {
    RUN_SERVICE.load(Ordering::SeqCst) != 0
}

/// Offers a trap from ring 3 during a run with a service ([`served_run`])
/// to the service: true if it resumes ring 3.
#[inline(always)]
pub fn service(frame: &mut TrapFrame) -> bool {
    // `Service::Bench` is the only service: the benchmarks' kernel,
    // inlined in the trap path as the direct-PV kernel inlines its own, so
    // the two kernels' trap paths differ in their platform layer only
    // (docs/benchmarks.md).
    crate::bench::platform::service(frame)
}

/// Runs the SYSENTER snippet in ring 3 entered by SYSEXIT (the SYSENTER
/// MSRs must be set); it reports EFLAGS, CS and SS and comes back by
/// SYSENTER.
pub fn run_sysexit() -> UserExit {
    let eip = Snippet::Sysenter.address();
    let esp = user_stack_top();
    run(|| {
        // SAFETY: as run_iret; SYSENTER comes back to sysenter_entry.
        unsafe { jump_to_user_sysexit(eip, esp) }
    })
}

/// Called by the trap dispatcher for a trap from ring 3 during a run.
pub fn user_trap(frame: &mut TrapFrame) -> ! {
    let exit = UserExit {
        frame: *frame,
        frame_address: frame as *mut TrapFrame as u32,
        cr2: if frame.vector & 0xFF == 14 {
            crate::pv::get_cr2()
        } else {
            0
        },
    };
    EXIT.with(|e| *e = Some(exit));
    // SAFETY: a run is in progress (checked by the dispatcher), so CONTEXT
    // is armed by `run`, whose frame is on the kernel stack.
    unsafe { resume(CONTEXT.as_ptr(), 1) }
}

/// The PUSHAD block the SYSENTER entry saves.
#[repr(C)]
pub struct PushadRegs {
    /// EDI.
    pub edi: u32,
    /// ESI.
    pub esi: u32,
    /// EBP.
    pub ebp: u32,
    /// ESP (ignored).
    pub esp: u32,
    /// EBX.
    pub ebx: u32,
    /// EDX.
    pub edx: u32,
    /// ECX.
    pub ecx: u32,
    /// EAX.
    pub eax: u32,
}

/// The Rust half of the SYSENTER entry.
pub extern "C" fn sysenter_dispatch(regs: &PushadRegs) -> ! {
    if !running() {
        crate::cases::abort_current(crate::console::Text::from_fmt(format_args!(
            "SYSENTER with no user run in progress"
        )));
    }
    let frame = TrapFrame {
        edi: regs.edi,
        esi: regs.esi,
        ebp: regs.ebp,
        ebx: regs.ebx,
        edx: regs.edx,
        ecx: regs.ecx,
        eax: regs.eax,
        vector: VECTOR_SYSENTER,
        cs: u32::from(native_rom::hw::cpu::read_cs()),
        ..TrapFrame::default()
    };
    let exit = UserExit {
        frame,
        frame_address: regs as *const PushadRegs as u32,
        cr2: 0,
    };
    EXIT.with(|e| *e = Some(exit));
    // SAFETY: a run is in progress, CONTEXT is armed (see user_trap).
    unsafe { resume(CONTEXT.as_ptr(), 1) }
}

/// Forgets a user run a case abort cut short.
pub fn reset_after_abort() {
    RUN_SERVICE.store(0, Ordering::SeqCst);
    RUNNING.store(false, Ordering::SeqCst);
}
