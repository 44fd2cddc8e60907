//! VMI alarms on real timers: SetAlarm and CancelAlarm as `vmi_time.h`
//! defines them (see `vmi_abi::time`). One-shot alarms wired to IRQ 0 run
//! on HPET timer 0 in LegacyReplacement mode, periodic ones on the 8254's
//! channel 0 (rate generator); without an HPET, all IRQ 0 alarms use the
//! 8254. Alarms wired to the LVT timer run on the local APIC timer and
//! arrive through the LVT entry the kernel programmed (its vector and mask
//! bit are kept).
//!
//! The real and available counters are both the TSC here (no time is ever
//! stolen from a machine without a hypervisor), so an expiry is a TSC value.
//!
//! Hardware limits, and how they show:
//! * Periodic alarms start one period after the call, not at `expiry`:
//!   neither the APIC timer nor the 8254 can have a first period of its own
//!   without an interrupt handler, which a ROM does not have. Linux passes
//!   expiry = now, so this is off by one period at most.
//! * IRQ 0 periods longer than 54.9 ms (the 8254's 16-bit count at
//!   1.193 MHz) are cut to 54.9 ms.
//! * The local APIC timer's rate is measured against the TSC at each
//!   SetAlarm (500 us), so arming an LVTT alarm takes that long.
//! * Without an HPET, IRQ 0 one-shots further out than 54.9 ms fire at
//!   54.9 ms, and cancelling a pending one may still deliver it (see
//!   `hw::hpet` for why).
//!
//! The alarm state lives in the timers themselves (mode, count, output),
//! so nothing here needs writable memory.

use vmi_abi::time::{AlarmFlags, AlarmWiring, CycleCounter};

use crate::hw::cpu::rdtsc;
use crate::hw::{apic, hpet, pit};
use crate::timebase::{
    apic_count_for, elapsed, mul_div, pit_count_for, CountReading, CALIBRATION_READINGS,
};

/// Femtoseconds per second.
const FS_PER_SECOND: u64 = 1_000_000_000_000_000;

/// The local APIC timer is measured over 1/2000 s of TSC cycles.
const APIC_MEASURE_FRACTION: u64 = 2_000;

/// Arms the alarm `flags` names: counter | wiring | mode. `expiry` is an
/// absolute TSC value; a non-zero `period` with the periodic mode bit makes
/// it periodic. Arming replaces the previous alarm on the same timer. An
/// alarm on the stolen or an unknown counter does nothing, as the VMI
/// timer interface specifies. `tsc_hz` is the calibrated TSC rate.
///
/// # Safety
/// Programs HPET timer 0 (or PIT channel 0) or the local APIC timer, which
/// raise interrupts; the HPET and APIC pages must be mapped at their
/// physical addresses.
pub unsafe fn set_alarm(tsc_hz: u64, flags: u32, expiry: u64, period: u64) {
    let flags = AlarmFlags(flags);
    match flags.counter() {
        Some(CycleCounter::Real | CycleCounter::Available) => {}
        _ => return,
    }
    let periodic = flags.is_periodic() && period != 0;
    match flags.wiring() {
        AlarmWiring::Irq0 => {
            // SAFETY: per the caller (the HPET page is mapped 1:1).
            let hpet_period_fs = unsafe { hpet::period_fs() };
            // SAFETY: per the caller; the previous IRQ 0 alarm goes first.
            unsafe { stop_irq0(hpet_period_fs.is_some()) };
            match hpet_period_fs {
                Some(period_fs) if !periodic => {
                    let hpet_hz = FS_PER_SECOND.checked_div(u64::from(period_fs)).unwrap_or(0);
                    // SAFETY: an HPET is present; per the caller.
                    unsafe {
                        hpet::enable_legacy();
                        let now = rdtsc();
                        let ahead = mul_div(expiry.saturating_sub(now), hpet_hz, tsc_hz).max(1);
                        hpet::start_timer0(hpet::counter().wrapping_add(ahead), 0);
                    }
                }
                _ if periodic => {
                    let count = pit_count_for(period, tsc_hz, 2);
                    // SAFETY: per the caller.
                    unsafe { pit::start_channel0(pit::MODE_RATE, count) };
                }
                _ => {
                    let count = pit_count_for(expiry.saturating_sub(rdtsc()), tsc_hz, 1);
                    // SAFETY: per the caller.
                    unsafe { pit::start_channel0(pit::MODE_ONESHOT, count) };
                }
            }
        }
        AlarmWiring::Lvtt => {
            // SAFETY: per the caller.
            unsafe {
                apic::write(apic::REG_TIMER_INITIAL, 0);
                apic::write(apic::REG_TIMER_DIVIDE, apic::TIMER_DIVIDE_BY_1);
                let lvtt = apic::read(apic::REG_LVT_TIMER) & !apic::LVT_TIMER_MODE_MASK;
                let (apic_ticks, tsc_cycles) = measure_apic_timer(tsc_hz);
                let interval = if periodic {
                    period
                } else {
                    expiry.saturating_sub(rdtsc())
                };
                let mode = if periodic {
                    apic::LVT_TIMER_PERIODIC
                } else {
                    0
                };
                apic::write(apic::REG_LVT_TIMER, lvtt | mode);
                apic::write(
                    apic::REG_TIMER_INITIAL,
                    apic_count_for(interval, apic_ticks, tsc_cycles),
                );
            }
        }
    }
}

/// Disarms the alarm on the timer `flags` wires to; returns 1 if it was
/// armed (a one-shot not yet fired, or a periodic one), else 0.
///
/// # Safety
/// As [`set_alarm`].
pub unsafe fn cancel_alarm(flags: u32) -> u32 {
    match AlarmFlags(flags).wiring() {
        AlarmWiring::Irq0 => {
            // SAFETY: per the caller (the HPET page is mapped 1:1).
            let has_hpet = unsafe { hpet::period_fs() }.is_some();
            // SAFETY: per the caller.
            u32::from(unsafe { stop_irq0(has_hpet) })
        }
        AlarmWiring::Lvtt => {
            // SAFETY: per the caller.
            unsafe {
                let initial = apic::read(apic::REG_TIMER_INITIAL);
                let periodic = apic::read(apic::REG_LVT_TIMER) & apic::LVT_TIMER_PERIODIC != 0;
                let current = apic::read(apic::REG_TIMER_CURRENT);
                apic::write(apic::REG_TIMER_INITIAL, 0);
                u32::from(initial != 0 && (periodic || current != 0))
            }
        }
    }
}

/// Stops whatever drives IRQ 0 alarms: the HPET's timer 0 if it owns
/// IRQ 0 (then IRQ 0 goes back to the 8254), and the 8254's channel 0.
/// Returns whether an alarm was armed.
///
/// # Safety
/// As [`set_alarm`].
unsafe fn stop_irq0(has_hpet: bool) -> bool {
    // SAFETY: per the caller.
    unsafe {
        if has_hpet && hpet::legacy_enabled() {
            let armed = hpet::stop_timer0();
            hpet::disable_legacy();
            pit::stop_channel0();
            armed
        } else {
            let armed = pit::status_is_armed(pit::channel0_status());
            pit::stop_channel0();
            armed
        }
    }
}

/// Measures the local APIC timer against the TSC: returns (APIC ticks,
/// TSC cycles) between readings about 500 us apart, each taken as the
/// tightest of a few TSC-bracketed reads of the current count (a virtual
/// CPU can be descheduled between any two instructions). Leaves the timer
/// stopped.
///
/// # Safety
/// Takes the APIC timer (one-shot, counting from the maximum, so it cannot
/// expire during the measurement).
unsafe fn measure_apic_timer(tsc_hz: u64) -> (u64, u64) {
    let window = (tsc_hz / APIC_MEASURE_FRACTION).max(1);
    let reading = || {
        let before = rdtsc();
        // SAFETY: per the caller.
        let count = unsafe { apic::read(apic::REG_TIMER_CURRENT) };
        CountReading {
            before,
            after: rdtsc(),
            count,
        }
    };
    // SAFETY: per the caller.
    unsafe {
        let lvtt = apic::read(apic::REG_LVT_TIMER);
        apic::write(apic::REG_LVT_TIMER, lvtt & !apic::LVT_TIMER_MODE_MASK);
        apic::write(apic::REG_TIMER_INITIAL, u32::MAX);
        let early: [CountReading; CALIBRATION_READINGS] = core::array::from_fn(|_| reading());
        let start = early[0].before;
        while rdtsc().wrapping_sub(start) < window {}
        let late: [CountReading; CALIBRATION_READINGS] = core::array::from_fn(|_| reading());
        apic::write(apic::REG_TIMER_INITIAL, 0);
        apic::write(apic::REG_LVT_TIMER, lvtt);
        elapsed(&early, &late, u32::MAX).map_or((1, 1), |(cycles, ticks)| (ticks, cycles))
    }
}
