//! The ring-3 side of the benchmarks: small loops in the `.user.text`
//! section (which a kernel maps user-accessible, in every address space),
//! and the user region's layout.
//!
//! Every loop ends with `SYS_EXIT`; the kernel service resumes all the
//! other traps ([`crate::kernel`]).

#[cfg(target_arch = "x86")]
use crate::kernel::{SYS_EXIT, SYS_RAISE, SYS_SIGRETURN, SYS_YIELD};

/// Start of the user region (page directory 1 of a PAE space).
pub const USER_BASE: u32 = 0x4000_0000;
/// The user stack page.
pub const STACK_VA: u32 = USER_BASE;
/// Top of the user stack.
pub const STACK_TOP: u32 = STACK_VA + 4096;
/// A user data page (system call buffers).
pub const DATA_VA: u32 = USER_BASE + 0x1000;
/// A process's pages (working set, fork's shared pages, exec's image):
/// at most [`WS_MAX_PAGES`] pages, in their own page table.
pub const WS_VA: u32 = USER_BASE + (2 << 20);
/// Most pages at [`WS_VA`].
pub const WS_MAX_PAGES: u32 = 64;
/// Pages the fault benchmarks write (their own page table).
pub const FAULT_VA: u32 = USER_BASE + (4 << 20);
/// Most pages at [`FAULT_VA`] in one user run.
pub const FAULT_MAX_PAGES: u32 = 512;
/// The mmap benchmark's 1 MiB.
pub const MMAP_VA: u32 = USER_BASE + (6 << 20);
/// The lazy-mode benchmark's pages (two page tables).
pub const LAZY_VA: u32 = USER_BASE + (8 << 20);
/// End of the user region the benchmarks use.
pub const USER_END: u32 = USER_BASE + (12 << 20);

#[cfg(target_arch = "x86")]
core::arch::global_asm!(
    r#"
    .pushsection .user.text, "ax"

    // System calls: ECX calls (ECX > 0) of number ESI with EBX/EDX as
    // arguments; EBP sums the results. Then SYS_EXIT.
    .globl bench_user_syscall_loop
bench_user_syscall_loop:
2:  mov eax, esi
    int 0x80
    add ebp, eax
    dec ecx
    jnz 2b
    mov eax, {exit}
    int 0x80
    ud2

    // Stores: one word into each of ECX pages from EBX (the fault
    // benchmarks). Then SYS_EXIT.
    .globl bench_user_store_loop
bench_user_store_loop:
2:  mov dword ptr [ebx], ecx
    add ebx, 4096
    dec ecx
    jnz 2b
    mov eax, {exit}
    int 0x80
    ud2

    // ECX divisions of 1 by EBP (0): each raises #DE at the DIV, which the
    // kernel skips. Then SYS_EXIT.
    .globl bench_user_divide_loop
bench_user_divide_loop:
2:  xor edx, edx
    mov eax, 1
    .globl bench_user_divide_insn
bench_user_divide_insn:
    div ebp
    dec ecx
    jnz 2b
    mov eax, {exit}
    int 0x80
    ud2

    // ECX signals raised at itself; the kernel runs the handler below on
    // the user stack, which returns with SYS_SIGRETURN. Then SYS_EXIT.
    .globl bench_user_signal_loop
bench_user_signal_loop:
2:  mov eax, {raise}
    int 0x80
    dec ecx
    jnz 2b
    mov eax, {exit}
    int 0x80
    ud2

    // The signal handler, entered with ESP at the signal frame (the signal
    // number, then the interrupted registers): returns at once.
    .globl bench_user_signal_handler
bench_user_signal_handler:
    mov eax, {sigreturn}
    int 0x80
    ud2

    // A process: reads one word of each of EDX pages from EBX, summing
    // into EBP, then yields; forever (the kernel ends the run).
    .globl bench_user_process
bench_user_process:
2:  mov esi, ebx
    mov edi, edx
    test edi, edi
    jz 4f
3:  add ebp, dword ptr [esi]
    add esi, 4096
    dec edi
    jnz 3b
4:  mov eax, {yield_}
    int 0x80
    jmp 2b

    // A short-lived process (fork, exec): reads one word of each of EDX
    // pages from EBX into EBP, writes ECX into the first word of each
    // page if ECX is not 0, then SYS_EXIT.
    .globl bench_user_child
bench_user_child:
    mov esi, ebx
    mov edi, edx
2:  add ebp, dword ptr [esi]
    test ecx, ecx
    jz 3f
    mov dword ptr [esi], ecx
3:  add esi, 4096
    dec edi
    jnz 2b
    mov eax, {exit}
    int 0x80
    ud2

    .popsection
    "#,
    exit = const SYS_EXIT,
    raise = const SYS_RAISE,
    sigreturn = const SYS_SIGRETURN,
    yield_ = const SYS_YIELD,
);

#[cfg(target_arch = "x86")]
extern "C" {
    fn bench_user_syscall_loop();
    fn bench_user_store_loop();
    fn bench_user_divide_loop();
    fn bench_user_divide_insn();
    fn bench_user_signal_loop();
    fn bench_user_signal_handler();
    fn bench_user_process();
    fn bench_user_child();
}

/// The ring-3 entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snippet {
    /// `bench_user_syscall_loop`.
    SyscallLoop,
    /// `bench_user_store_loop`.
    StoreLoop,
    /// `bench_user_divide_loop`.
    DivideLoop,
    /// The DIV inside it (2 bytes: F7 F5).
    DivideInsn,
    /// `bench_user_signal_loop`.
    SignalLoop,
    /// `bench_user_signal_handler`.
    SignalHandler,
    /// `bench_user_process`.
    Process,
    /// `bench_user_child`.
    Child,
}

/// Bytes of the DIV at [`Snippet::DivideInsn`].
pub const DIVIDE_INSN_LEN: u32 = 2;

impl Snippet {
    /// Entry address.
    #[cfg(target_arch = "x86")]
    pub fn address(self) -> u32 {
        let f: unsafe extern "C" fn() = match self {
            Snippet::SyscallLoop => bench_user_syscall_loop,
            Snippet::StoreLoop => bench_user_store_loop,
            Snippet::DivideLoop => bench_user_divide_loop,
            Snippet::DivideInsn => bench_user_divide_insn,
            Snippet::SignalLoop => bench_user_signal_loop,
            Snippet::SignalHandler => bench_user_signal_handler,
            Snippet::Process => bench_user_process,
            Snippet::Child => bench_user_child,
        };
        f as *const () as usize as u32
    }

    /// Entry address (host builds have no ring-3 code).
    #[cfg(not(target_arch = "x86"))]
    pub fn address(self) -> u32 {
        0
    }
}
