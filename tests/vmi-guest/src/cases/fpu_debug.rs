//! Lazy FPU switching (CR0.TS, #NM, CLTS) and the debug registers
//! (SetDR/GetDR, data and instruction breakpoints raising #DB).

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use native_rom::hw::cpu::{CR0_TS, EFLAGS_RF};

use super::{ensure, ensure_eq, fail, pass, Outcome};
use crate::pv;
use crate::sync::Global;
use crate::trap::{self, catch, TrapFrame};

static NM_COUNT: AtomicU32 = AtomicU32::new(0);

/// #NM handler of a lazy-FPU kernel: give the FPU back (CLTS), retry.
fn lazy_fpu_nm(_frame: &mut TrapFrame) -> bool {
    NM_COUNT.fetch_add(1, Ordering::SeqCst);
    pv::clts();
    true
}

/// FLD1; FSTP to `out`: 1.0f32 = 0x3F80_0000.
fn x87_store_one(out: &mut u32) {
    // SAFETY: x87 instructions on the kernel's own FPU state; the store
    // writes the 4 bytes of `out`.
    unsafe { asm!("fld1", "fstp dword ptr [{0}]", in(reg) out as *mut u32, options(nostack)) };
}

pub fn fpu_lazy_switch_nm() -> Outcome {
    pv::clts();
    // SAFETY: resets the kernel's own x87 state.
    unsafe { asm!("fninit", options(nomem, nostack)) };
    NM_COUNT.store(0, Ordering::SeqCst);
    trap::set_hook(7, Some(lazy_fpu_nm));
    pv::set_cr0(pv::get_cr0() | CR0_TS);
    let mut first = 0u32;
    x87_store_one(&mut first);
    let after_first = NM_COUNT.load(Ordering::SeqCst);
    let ts_after = pv::get_cr0() & CR0_TS;
    let mut second = 0u32;
    x87_store_one(&mut second);
    let after_second = NM_COUNT.load(Ordering::SeqCst);
    trap::set_hook(7, None);
    ensure_eq!(
        after_first,
        1u32,
        "#NM count after the first x87 instruction with TS set"
    );
    ensure_eq!(ts_after, 0u32, "CR0.TS after the #NM handler's CLTS");
    ensure_eq!(first, 0x3F80_0000u32, "FLD1/FSTP result after the retry");
    ensure_eq!(
        after_second,
        1u32,
        "#NM count after a second x87 instruction"
    );
    ensure_eq!(second, 0x3F80_0000u32, "second FLD1/FSTP result");
    pass!("first x87 use raised #NM, CLTS in the handler, retried; no second #NM")
}

pub fn fpu_wait_with_ts_faults() -> Outcome {
    pv::set_cr0(pv::get_cr0() | CR0_TS);
    let result = catch(|| {
        // SAFETY: FWAIT with CR0.MP and TS set raises #NM, caught here.
        unsafe { asm!("fwait", options(nomem, nostack)) };
        0
    });
    pv::clts();
    match result {
        Ok(_) => fail!("FWAIT with MP and TS set did not fault"),
        Err(f) => {
            ensure_eq!(f.vector, 7u32, "vector (#NM)");
            pass!("FWAIT raised #NM")
        }
    }
}

/// DR7 bit 10 reads as 1.
const DR7_FIXED: u32 = 1 << 10;
/// DR7: local enable of breakpoint 0.
const DR7_L0: u32 = 1;
/// DR7: breakpoint 0 on data writes (R/W0 = 01), 4 bytes (LEN0 = 11).
const DR7_BP0_WRITE_4: u32 = (1 << 16) | (3 << 18);
/// DR6: breakpoint 0 hit.
const DR6_B0: u32 = 1;

pub fn debug_registers_write_read() -> Outcome {
    let values = [0x0010_0000u32, 0x0020_0004, 0x0030_0008, 0x0040_000C];
    for (n, v) in values.iter().enumerate() {
        pv::set_dr(n as u32, *v);
    }
    // Conditions set, no breakpoint enabled.
    let dr7 = 0xFFFF_0000 | DR7_FIXED;
    pv::set_dr(7, dr7);
    let got = [
        pv::get_dr(0),
        pv::get_dr(1),
        pv::get_dr(2),
        pv::get_dr(3),
        pv::get_dr(7),
    ];
    for n in 0..4 {
        pv::set_dr(n as u32, 0);
    }
    pv::set_dr(7, DR7_FIXED);
    for n in 0..4 {
        ensure_eq!(got[n], values[n], "DR0-3 read back");
    }
    ensure_eq!(got[4], dr7, "DR7 read back");
    pass!("DR0-DR3 and DR7 read back")
}

static DB_COUNT: AtomicU32 = AtomicU32::new(0);
static DB_DR6: AtomicU32 = AtomicU32::new(0);
static DB_EIP: AtomicU32 = AtomicU32::new(0);

/// #DB handler: record DR6 and EIP, clear DR6; for an instruction
/// breakpoint (a fault) set RF so the instruction runs on return.
fn record_debug(frame: &mut TrapFrame) -> bool {
    DB_COUNT.fetch_add(1, Ordering::SeqCst);
    DB_DR6.store(pv::get_dr(6), Ordering::SeqCst);
    DB_EIP.store(frame.eip, Ordering::SeqCst);
    pv::set_dr(6, 0);
    frame.eflags |= EFLAGS_RF;
    true
}

fn reset_debug_record() {
    DB_COUNT.store(0, Ordering::SeqCst);
    DB_DR6.store(0, Ordering::SeqCst);
    DB_EIP.store(0, Ordering::SeqCst);
    pv::set_dr(6, 0);
}

static WATCHED: Global<u32> = Global::new(0);

pub fn debug_data_breakpoint() -> Outcome {
    reset_debug_record();
    trap::set_hook(1, Some(record_debug));
    let addr = WATCHED.as_ptr() as u32;
    pv::set_dr(0, addr);
    pv::set_dr(7, DR7_FIXED | DR7_L0 | DR7_BP0_WRITE_4);
    // SAFETY: a volatile write of the case's own word.
    unsafe { WATCHED.as_ptr().write_volatile(0x600D_CAFE) };
    let count = DB_COUNT.load(Ordering::SeqCst);
    pv::set_dr(7, DR7_FIXED);
    pv::set_dr(0, 0);
    trap::set_hook(1, None);
    ensure_eq!(count, 1u32, "#DB count after writing the watched word");
    let dr6 = DB_DR6.load(Ordering::SeqCst);
    ensure!(dr6 & DR6_B0 != 0, "DR6 {dr6:#x} lacks B0");
    ensure_eq!(
        WATCHED.with(|w| *w),
        0x600D_CAFEu32,
        "the watched word (the write completes before #DB)"
    );
    pass!("write to {addr:#x} raised #DB, DR6 {dr6:#x}")
}

core::arch::global_asm!(
    r#"
    .text
    .globl breakpoint_target
breakpoint_target:
    mov eax, 0x4242
    ret
    "#
);

extern "C" {
    fn breakpoint_target() -> u32;
}

pub fn debug_instruction_breakpoint() -> Outcome {
    reset_debug_record();
    trap::set_hook(1, Some(record_debug));
    let target = breakpoint_target as *const () as usize as u32;
    pv::set_dr(0, target);
    pv::set_dr(7, DR7_FIXED | DR7_L0);
    // SAFETY: the target only sets EAX; the #DB handler sets RF to resume.
    let value = unsafe { breakpoint_target() };
    let count = DB_COUNT.load(Ordering::SeqCst);
    pv::set_dr(7, DR7_FIXED);
    pv::set_dr(0, 0);
    trap::set_hook(1, None);
    ensure_eq!(
        count,
        1u32,
        "#DB count after calling the breakpointed function"
    );
    ensure_eq!(
        DB_EIP.load(Ordering::SeqCst),
        target,
        "EIP of the #DB (a fault, before the instruction)"
    );
    let dr6 = DB_DR6.load(Ordering::SeqCst);
    ensure!(dr6 & DR6_B0 != 0, "DR6 {dr6:#x} lacks B0");
    ensure_eq!(value, 0x4242u32, "result of the function resumed with RF");
    pass!("execution of {target:#x} raised #DB, resumed with RF")
}
