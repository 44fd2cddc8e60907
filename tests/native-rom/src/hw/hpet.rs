//! The HPET (IA-PC HPET specification 1.0a), used for one-shot alarms
//! wired to IRQ 0: timer 0 in LegacyReplacement mode drives IRQ 0 in place
//! of the 8254's channel 0 (section 2.3.9 of the specification).
//!
//! Why not the 8254 for those: a pending 8254 one-shot cannot be cancelled
//! without one more edge on IRQ 0 in QEMU's model (it ignores a bare
//! control word and keeps the old count running), so CancelAlarm would
//! leave a stray interrupt behind; an HPET timer stops when its interrupt
//! enable bit is cleared. Periodic IRQ 0 alarms stay on the 8254: QEMU's
//! periodic HPET timer can fire twice per period under `-icount` (its
//! callback may run a tick before the comparator and still raise the
//! interrupt), and the 8254's rate generator stops cleanly.
//!
//! Registers are reached at the fixed PC address 0xFED00000 (the one
//! QEMU's `pc` machine and most chipsets use; a kernel would read it from
//! the ACPI HPET table). With paging on the kernel must map that page 1:1.
//! 64-bit registers are accessed as two dwords.

use core::ptr;

/// Physical (= accessed linear) address of the HPET registers.
pub const HPET_BASE: u32 = 0xFED0_0000;

const GENERAL_CAPABILITIES: u32 = 0x000;
const GENERAL_CONFIGURATION: u32 = 0x010;
const MAIN_COUNTER: u32 = 0x0F0;
const TIMER0_CONFIGURATION: u32 = 0x100;
const TIMER0_COMPARATOR: u32 = 0x108;

/// GCAP_ID: LegacyReplacement routing supported.
const CAP_LEGACY_ROUTE: u32 = 1 << 15;
/// GEN_CONF: the main counter runs and timers may interrupt.
const CONF_ENABLE: u32 = 1 << 0;
/// GEN_CONF: timer 0 drives IRQ 0 (and timer 1 IRQ 8).
const CONF_LEGACY_ROUTE: u32 = 1 << 1;
/// Tn_CONF: interrupt enabled.
const TIMER_INT_ENABLE: u32 = 1 << 2;
/// Tn_CONF: periodic.
const TIMER_PERIODIC: u32 = 1 << 3;
/// Tn_CONF: the next comparator write sets the comparator itself (periodic mode).
const TIMER_VAL_SET: u32 = 1 << 6;
/// Longest tick the specification allows (100 ns, in femtoseconds).
const MAX_PERIOD_FS: u32 = 100_000_000;

fn reg(offset: u32) -> *mut u32 {
    (HPET_BASE + offset) as *mut u32
}

/// # Safety
/// The HPET page must be mapped 1:1.
unsafe fn read(offset: u32) -> u32 {
    // SAFETY: per the caller.
    unsafe { ptr::read_volatile(reg(offset)) }
}

/// # Safety
/// As [`read`]; the write reprograms the timer block.
unsafe fn write(offset: u32, value: u32) {
    // SAFETY: per the caller.
    unsafe { ptr::write_volatile(reg(offset), value) }
}

/// The counter tick in femtoseconds if an HPET with LegacyReplacement
/// routing answers at [`HPET_BASE`], else `None`.
///
/// # Safety
/// The page at [`HPET_BASE`] must be mapped 1:1 (open bus reads are fine).
pub unsafe fn period_fs() -> Option<u32> {
    // SAFETY: per the caller.
    let (caps, period) = unsafe { (read(GENERAL_CAPABILITIES), read(GENERAL_CAPABILITIES + 4)) };
    let vendor = caps >> 16;
    let usable = vendor != 0
        && vendor != 0xFFFF
        && caps & CAP_LEGACY_ROUTE != 0
        && (1..=MAX_PERIOD_FS).contains(&period);
    usable.then_some(period)
}

/// Starts the main counter with LegacyReplacement routing (timer 0 owns
/// IRQ 0 from now on; the 8254's channel 0 no longer reaches it).
///
/// # Safety
/// As [`period_fs`], with an HPET present.
pub unsafe fn enable_legacy() {
    // SAFETY: per the caller.
    unsafe {
        let conf = read(GENERAL_CONFIGURATION);
        let want = conf | CONF_ENABLE | CONF_LEGACY_ROUTE;
        if conf != want {
            write(GENERAL_CONFIGURATION, want);
        }
    }
}

/// Whether LegacyReplacement routing is on (timer 0 owns IRQ 0).
///
/// # Safety
/// As [`enable_legacy`].
pub unsafe fn legacy_enabled() -> bool {
    // SAFETY: per the caller.
    unsafe { read(GENERAL_CONFIGURATION) & CONF_LEGACY_ROUTE != 0 }
}

/// Gives IRQ 0 back to the 8254 (LegacyReplacement routing off; the main
/// counter keeps running). Timer 0 must be stopped first.
///
/// # Safety
/// As [`enable_legacy`].
pub unsafe fn disable_legacy() {
    // SAFETY: per the caller.
    unsafe {
        let conf = read(GENERAL_CONFIGURATION);
        if conf & CONF_LEGACY_ROUTE != 0 {
            write(GENERAL_CONFIGURATION, conf & !CONF_LEGACY_ROUTE);
        }
    }
}

/// The main counter.
///
/// # Safety
/// As [`enable_legacy`].
pub unsafe fn counter() -> u64 {
    // SAFETY: per the caller; hi-lo-hi guards against a carry between
    // the two dword reads.
    unsafe {
        loop {
            let hi = read(MAIN_COUNTER + 4);
            let lo = read(MAIN_COUNTER);
            if read(MAIN_COUNTER + 4) == hi {
                return (u64::from(hi) << 32) | u64::from(lo);
            }
        }
    }
}

/// Arms timer 0: one interrupt when the main counter reaches `first`, then
/// (if `period` is not 0) one every `period` ticks. Edge triggered, so
/// every expiry is one IRQ 0 edge.
///
/// # Safety
/// As [`enable_legacy`]; the interrupt must be handled.
pub unsafe fn start_timer0(first: u64, period: u64) {
    // SAFETY: per the caller. The write sequence follows the VAL_SET
    // protocol with 32-bit accesses: with VAL_SET a comparator half write
    // sets the comparator (and clears VAL_SET); without it, in periodic
    // mode, it sets the period.
    unsafe {
        write(TIMER0_CONFIGURATION, 0);
        if period == 0 {
            write(TIMER0_COMPARATOR + 4, (first >> 32) as u32);
            write(TIMER0_COMPARATOR, first as u32);
            write(TIMER0_CONFIGURATION, TIMER_INT_ENABLE);
        } else {
            write(TIMER0_CONFIGURATION, TIMER_PERIODIC | TIMER_VAL_SET);
            write(TIMER0_COMPARATOR + 4, (first >> 32) as u32);
            write(TIMER0_CONFIGURATION, TIMER_PERIODIC | TIMER_VAL_SET);
            write(TIMER0_COMPARATOR, first as u32);
            write(TIMER0_COMPARATOR, period as u32);
            write(TIMER0_COMPARATOR + 4, (period >> 32) as u32);
            write(TIMER0_CONFIGURATION, TIMER_PERIODIC | TIMER_INT_ENABLE);
        }
    }
}

/// Stops timer 0; returns whether it was armed (a one-shot whose
/// comparator is still ahead of the counter, or a periodic timer).
///
/// # Safety
/// As [`enable_legacy`].
pub unsafe fn stop_timer0() -> bool {
    // SAFETY: per the caller.
    unsafe {
        let conf = read(TIMER0_CONFIGURATION);
        let comparator =
            (u64::from(read(TIMER0_COMPARATOR + 4)) << 32) | u64::from(read(TIMER0_COMPARATOR));
        let now = counter();
        write(TIMER0_CONFIGURATION, 0);
        conf & TIMER_INT_ENABLE != 0 && (conf & TIMER_PERIODIC != 0 || comparator > now)
    }
}
