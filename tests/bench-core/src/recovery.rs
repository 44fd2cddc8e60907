//! Recovery points: a minimal setjmp/longjmp for both test kernels.
//!
//! [`call_with_recovery`] runs a function; if, while it runs, something
//! (an exception the case expected, a return from user mode, an exception
//! that aborts a case) calls [`resume`] on the same [`Context`], execution
//! continues as if `call_with_recovery` had returned the resumed value. The
//! frames in between are abandoned, not unwound: they hold nothing that
//! needs dropping (no_std, no allocation, no locks).

use core::ffi::c_void;

/// Callee-saved registers and the stack pointer at the recovery point.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Context {
    ebx: u32,
    esi: u32,
    edi: u32,
    ebp: u32,
    esp: u32,
}

impl Context {
    /// An unarmed context.
    pub const fn new() -> Self {
        Context {
            ebx: 0,
            esi: 0,
            edi: 0,
            ebp: 0,
            esp: 0,
        }
    }
}

core::arch::global_asm!(
    r#"
    .text
    // u32 bench_recovery_call(Context *ctx, u32 (*f)(void *), void *arg)
    .globl bench_recovery_call
bench_recovery_call:
    mov eax, [esp + 4]
    mov [eax], ebx
    mov [eax + 4], esi
    mov [eax + 8], edi
    mov [eax + 12], ebp
    mov [eax + 16], esp
    push dword ptr [esp + 12]
    call dword ptr [esp + 12]
    add esp, 4
    ret

    // void bench_recovery_resume(Context *ctx, u32 value): returns `value` from
    // the bench_recovery_call that filled ctx.
    .globl bench_recovery_resume
bench_recovery_resume:
    mov ecx, [esp + 4]
    mov eax, [esp + 8]
    mov ebx, [ecx]
    mov esi, [ecx + 4]
    mov edi, [ecx + 8]
    mov ebp, [ecx + 12]
    mov esp, [ecx + 16]
    ret
    "#
);

extern "C" {
    fn bench_recovery_call(
        ctx: *mut Context,
        f: extern "C" fn(*mut c_void) -> u32,
        arg: *mut c_void,
    ) -> u32;
    fn bench_recovery_resume(ctx: *mut Context, value: u32) -> !;
}

extern "C" fn trampoline<F: FnMut() -> u32>(arg: *mut c_void) -> u32 {
    // SAFETY: `arg` is the `&mut F` call_with_recovery passed, alive for
    // the duration of the call.
    let f = unsafe { &mut *(arg as *mut F) };
    f()
}

/// Runs `f` with `ctx` as its recovery point; returns what `f` returns, or
/// the value given to [`resume`] on `ctx` while `f` ran.
///
/// # Safety
/// `ctx` must stay valid while armed; values `f` returns must be told apart
/// from resume values by the caller.
pub unsafe fn call_with_recovery<F: FnMut() -> u32>(ctx: *mut Context, mut f: F) -> u32 {
    // SAFETY: per the caller; the trampoline matches `F`.
    unsafe { bench_recovery_call(ctx, trampoline::<F>, &mut f as *mut F as *mut c_void) }
}

/// Jumps back to the recovery point of `ctx`, making its
/// [`call_with_recovery`] return `value`.
///
/// # Safety
/// `ctx` must be armed by a `call_with_recovery` that has not returned yet
/// (its frame is still on the current stack, below the caller's).
pub unsafe fn resume(ctx: *mut Context, value: u32) -> ! {
    // SAFETY: per the caller.
    unsafe { bench_recovery_resume(ctx, value) }
}
