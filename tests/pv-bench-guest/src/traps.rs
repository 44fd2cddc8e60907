//! Traps, events and ring 3, the XenLinux way.
//!
//! * The virtual IDT is a trap table (`set_trap_table`): exceptions and
//!   `int 0x80` reach their entry stubs straight from Xen's bounce frame
//!   ([error code], EIP, CS with the saved upcall mask in bits 16-23,
//!   EFLAGS with IF = !saved mask, and ESP/SS from ring 3: `xen.h`, the
//!   compat bounce frame). Every vector is delivered with events masked
//!   (flag bit 2, an interrupt gate), as the VMI guest's IDT does.
//! * The event callback (`set_callbacks`) enters the same common path.
//! * The entry and exit code is the VMI guest's (`trap_common`: the same
//!   segment and register saves), with the paravirtual parts replaced: the
//!   return is a native IRET after restoring the upcall mask from the
//!   frame's IF and checking for a pending event (XenLinux's
//!   `restore_all`; an event found pending is handled before returning).
//!   No hypercall on the way in or out.
//! * Ring 3 runs on Xen's flat user segments; traps from it arrive on the
//!   stack given by `stack_switch`.

use core::sync::atomic::{AtomicBool, Ordering};

use bench_core::recovery::{call_with_recovery, resume, Context};
use bench_core::{UserExit, UserFrame, UserState};
use xen_abi::arch_x86_32::{
    TrapInfo, XenCallback, FLAT_KERNEL_CS, FLAT_KERNEL_DS, FLAT_USER_CS, FLAT_USER_DS,
};
use xen_abi::hypercall::Hypervisor;

use crate::console::fatal;
use crate::events;
use crate::platform::PvPlatform;
use bench_core::sync::Global;

/// The "vector" the event callback pushes.
pub const VECTOR_EVENT: u32 = 0x100;
/// The "vector" the failsafe callback pushes.
pub const VECTOR_FAILSAFE: u32 = 0x101;
/// The system call vector.
pub const VECTOR_SYSCALL: u32 = 0x80;
/// Bytes per entry stub.
const STUB_SIZE: u32 = 16;

core::arch::global_asm!(
    r#"
    .text
    .balign 16
    .globl pv_trap_stubs
pv_trap_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .byte 0x68
    .long vec
    .else
    .byte 0x6a, 0
    .byte 0x68
    .long vec
    .endif
    jmp pv_trap_common
    .set vec, vec + 1
    .endr

    .balign 16
    .globl pv_syscall_stub
pv_syscall_stub:
    .byte 0x6a, 0
    .byte 0x68
    .long {syscall}
    jmp pv_trap_common

    .balign 16
    .globl pv_event_entry
pv_event_entry:
    .byte 0x6a, 0
    .byte 0x68
    .long {event}
    jmp pv_trap_common

    .balign 16
    .globl pv_failsafe_entry
pv_failsafe_entry:
    .byte 0x6a, 0
    .byte 0x68
    .long {failsafe}
    jmp pv_trap_common

    // Segment registers as 32-bit pushes/pops, spelled out (as in the VMI
    // guest's entry path).
pv_trap_common:
    .byte 0x1E                  // push ds
    .byte 0x06                  // push es
    .byte 0x0F, 0xA0            // push fs
    .byte 0x0F, 0xA8            // push gs
    pushad
    mov ax, {kds}
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

    // The return: EIP, CS, EFLAGS[, ESP, SS] at ESP. With IF set in the
    // frame, events are unmasked first and a pending one is handled on
    // this frame before the IRET; an event Xen delivers between the unmask
    // and the IRET nests on this stack and comes back here.
    .globl pv_iret
pv_iret:
    test byte ptr [esp + 9], 2
    jz 3f
    mov byte ptr [{vcpu} + 1], 0
    cmp byte ptr [{vcpu}], 0
    jne 4f
3:  iretd
4:  mov byte ptr [{vcpu} + 1], 1
    .byte 0x6a, 0
    .byte 0x68
    .long {event}
    jmp pv_trap_common

    // pv_jump_to_user(const UserEntry *entry): Xen's flat user segments,
    // the IRET frame and the general registers, then the return path.
    .globl pv_jump_to_user
pv_jump_to_user:
    mov eax, [esp + 4]
    push {uds}
    push dword ptr [eax + 8]
    push dword ptr [eax + 4]
    push {ucs}
    push dword ptr [eax]
    mov cx, {uds}
    mov ds, cx
    mov es, cx
    xor ecx, ecx
    mov fs, cx
    mov gs, cx
    mov ebx, [eax + 16]
    mov ecx, [eax + 20]
    mov edx, [eax + 24]
    mov esi, [eax + 28]
    mov edi, [eax + 32]
    mov ebp, [eax + 36]
    mov eax, [eax + 12]
    jmp pv_iret

    "#,
    syscall = const VECTOR_SYSCALL,
    event = const VECTOR_EVENT,
    failsafe = const VECTOR_FAILSAFE,
    kds = const FLAT_KERNEL_DS,
    uds = const FLAT_USER_DS,
    ucs = const FLAT_USER_CS,
    vcpu = sym events::SHARED_INFO_PAGE,
    dispatch = sym trap_dispatch,
);

extern "C" {
    static pv_trap_stubs: u8;
    fn pv_syscall_stub();
    fn pv_event_entry();
    fn pv_failsafe_entry();
    fn pv_jump_to_user(entry: *const UserEntry) -> !;
}

/// What the entry path saved, lowest address first (the VMI guest's
/// layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub edi: u32,
    pub esi: u32,
    pub ebp: u32,
    pub esp_dummy: u32,
    pub ebx: u32,
    pub edx: u32,
    pub ecx: u32,
    pub eax: u32,
    pub gs: u32,
    pub fs: u32,
    pub es: u32,
    pub ds: u32,
    pub vector: u32,
    pub error_code: u32,
    pub eip: u32,
    /// CS, with Xen's saved upcall mask in bits 16-23.
    pub cs: u32,
    pub eflags: u32,
    /// From ring 3 only.
    pub user_esp: u32,
    /// From ring 3 only.
    pub user_ss: u32,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 76);

impl TrapFrame {
    fn is_from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

/// Installs the trap table and the callbacks, and the ring-1 stack for
/// traps from ring 3.
pub fn init(ring1_stack_top: u32) {
    let stubs = &raw const pv_trap_stubs as u32;
    let mut table = [TrapInfo::default(); 34];
    for v in 0..32u32 {
        // INT3 and INTO may be raised from ring 3 (DPL 3), as in the VMI
        // guest's IDT.
        let dpl = if v == 3 || v == 4 { 3 } else { 0 };
        table[v as usize] =
            TrapInfo::new(v as u8, dpl, true, FLAT_KERNEL_CS, stubs + v * STUB_SIZE);
    }
    table[32] = TrapInfo::new(
        VECTOR_SYSCALL as u8,
        3,
        true,
        FLAT_KERNEL_CS,
        pv_syscall_stub as *const () as usize as u32,
    );
    let mut xen = crate::hv::hypervisor();
    // SAFETY: the table ends with a zero entry; every handler is an entry
    // stub of this kernel, which handles every vector it installs.
    let r = unsafe { xen.set_trap_table(&table) };
    if let Err(e) = r {
        fatal(format_args!("pv-bench-guest: set_trap_table failed: {e:?}"));
    }
    let event = XenCallback::new(FLAT_KERNEL_CS, pv_event_entry as *const () as usize as u32);
    let failsafe = XenCallback::new(
        FLAT_KERNEL_CS,
        pv_failsafe_entry as *const () as usize as u32,
    );
    // SAFETY: both are entry points of this kernel that save and restore
    // every register.
    if let Err(e) = unsafe { xen.set_callbacks(event, failsafe) } {
        fatal(format_args!("pv-bench-guest: set_callbacks failed: {e:?}"));
    }
    crate::hv::stack_switch(FLAT_KERNEL_DS, ring1_stack_top);
    crate::hv::flush();
}

/// What `pv_jump_to_user` loads.
#[repr(C)]
#[derive(Debug)]
struct UserEntry {
    eip: u32,
    eflags: u32,
    esp: u32,
    eax: u32,
    ebx: u32,
    ecx: u32,
    edx: u32,
    esi: u32,
    edi: u32,
    ebp: u32,
}

static RUNNING: AtomicBool = AtomicBool::new(false);
static CONTEXT: Global<Context> = Global::new(Context::new());
static EXIT: Global<Option<UserExit>> = Global::new(None);

/// Runs ring-3 code until the kernel service declines a trap from it.
pub fn run_user(start: &UserState) -> UserExit {
    let entry = UserEntry {
        eip: start.eip,
        eflags: start.eflags,
        esp: start.esp,
        eax: start.eax,
        ebx: start.ebx,
        ecx: start.ecx,
        edx: start.edx,
        esi: start.esi,
        edi: start.edi,
        ebp: start.ebp,
    };
    EXIT.with(|e| *e = None);
    RUNNING.store(true, Ordering::SeqCst);
    let enter_user = || -> u32 {
        // SAFETY: `entry` is alive meanwhile; the code and stack it names
        // are user-accessible; the trap that ends the run resumes CONTEXT.
        unsafe { pv_jump_to_user(&raw const entry) }
    };
    // SAFETY: CONTEXT is armed only during this call; trap_dispatch
    // resumes it after recording the exit.
    unsafe { call_with_recovery(CONTEXT.as_ptr(), enter_user) };
    RUNNING.store(false, Ordering::SeqCst);
    // The run ended in the trap path, which Xen entered with events masked:
    // the kernel carries on with them masked.
    EXIT.with(|e| e.take())
        .expect("user run ended without an exit record")
}

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
    "#GP", "#PF", "?15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "?22", "?23", "?24", "?25",
    "?26", "?27", "#HV", "#VC", "#SX", "?31",
];

/// The Rust half of every exception, system call and event.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector;
    if vector == VECTOR_EVENT {
        events::demux();
        return;
    }
    if vector == VECTOR_FAILSAFE {
        // Xen's failsafe frame: DS, ES, FS, GS it could not reload, then
        // EIP and CS (the stub's words hold 0 and the vector).
        fatal(format_args!(
            "pv-bench-guest: Xen's failsafe callback (a segment register could not be reloaded): \
             ds {:#x} on return to eip {:#x}",
            frame.eip & 0xFFFF,
            frame.user_ss
        ));
    }
    if frame.is_from_user() && RUNNING.load(Ordering::SeqCst) {
        let fault_address = if vector == 14 {
            // SAFETY: vcpu_info is mapped; Xen wrote CR2 there before the
            // bounce, and events stay masked until the IRET.
            unsafe { (&raw const (*events::vcpu()).arch.cr2).read_volatile() }
        } else {
            0
        };
        if bench_core::kernel::user_trap(&mut PvPlatform, frame, fault_address) {
            return;
        }
        let exit = UserExit {
            vector,
            error_code: frame.error_code,
            state: frame.state(),
        };
        EXIT.with(|e| *e = Some(exit));
        // SAFETY: a run is in progress, so CONTEXT was armed by run_user,
        // whose frame is on the boot stack.
        unsafe { resume(CONTEXT.as_ptr(), 1) };
    }
    let name = EXCEPTION_NAMES
        .get(vector as usize)
        .copied()
        .unwrap_or("vector");
    let cr2 = if vector == 14 {
        // SAFETY: as above.
        unsafe { (&raw const (*events::vcpu()).arch.cr2).read_volatile() }
    } else {
        0
    };
    fatal(format_args!(
        "pv-bench-guest: unexpected {name} ({vector:#x}) error {:#x} at {:#x}:{:#010x} cr2 {cr2:#x}",
        frame.error_code,
        frame.cs & 0xFFFF,
        frame.eip
    ));
}

impl UserFrame for TrapFrame {
    fn vector(&self) -> u32 {
        self.vector
    }

    fn error_code(&self) -> u32 {
        self.error_code
    }

    fn state(&self) -> UserState {
        UserState {
            eax: self.eax,
            ebx: self.ebx,
            ecx: self.ecx,
            edx: self.edx,
            esi: self.esi,
            edi: self.edi,
            ebp: self.ebp,
            eip: self.eip,
            esp: self.user_esp,
            eflags: self.eflags,
        }
    }

    fn set_state(&mut self, s: &UserState) {
        self.eax = s.eax;
        self.ebx = s.ebx;
        self.ecx = s.ecx;
        self.edx = s.edx;
        self.esi = s.esi;
        self.edi = s.edi;
        self.ebp = s.ebp;
        self.eip = s.eip;
        self.user_esp = s.esp;
        self.eflags = s.eflags;
    }

    fn eax(&self) -> u32 {
        self.eax
    }

    fn set_eax(&mut self, value: u32) {
        self.eax = value;
    }

    fn ebx(&self) -> u32 {
        self.ebx
    }

    fn eip(&self) -> u32 {
        self.eip
    }

    fn set_eip(&mut self, value: u32) {
        self.eip = value;
    }

    fn esp(&self) -> u32 {
        self.user_esp
    }

    fn set_esp(&mut self, value: u32) {
        self.user_esp = value;
    }
}
