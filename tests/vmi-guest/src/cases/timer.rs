//! Time: GetCycleFrequency against the PIT, the cycle counters,
//! GetWallclockTime against the RTC, APICRead/APICWrite, alarms (one-shot,
//! periodic, cancel, re-arm) on IRQ 0 and on the local APIC timer, and Halt
//! waking on an interrupt.
//!
//! Timing bounds are loose where the host can delay a TCG guest (an alarm
//! may be late, never early); under `-icount` everything is exact.

use vmi_abi::time::{
    AlarmFlags, AlarmWiring, CycleCounter, VMI_CYCLES_AVAILABLE, VMI_CYCLES_REAL, VMI_CYCLES_STOLEN,
};

use native_rom::hw::{apic, pit, rtc};
use native_rom::timebase::PIT_HZ;

use super::{ensure, ensure_eq, pass, Outcome};
use crate::trap::{irq_count, irq_last_cycles, IRQ_BASE, VECTOR_APIC_TIMER};
use crate::{pic, pv};

/// Cycles per second of the platform's cycle counter.
pub(super) fn hz() -> u64 {
    pv::cycle_frequency()
}

/// `n` milliseconds in cycles.
pub(super) fn ms(n: u64) -> u64 {
    hz() * n / 1000
}

/// Busy-waits `cycles` (interrupts as they are).
pub(super) fn spin(cycles: u64) {
    let start = pv::cycles_now();
    while pv::cycles_now().wrapping_sub(start) < cycles {
        core::hint::spin_loop();
    }
}

/// Busy-waits until `cond` holds or `timeout` cycles pass.
pub(super) fn wait_until(timeout: u64, mut cond: impl FnMut() -> bool) -> bool {
    let start = pv::cycles_now();
    while !cond() {
        if pv::cycles_now().wrapping_sub(start) > timeout {
            return cond();
        }
        core::hint::spin_loop();
    }
    true
}

/// Where an alarm arrives.
#[derive(Clone, Copy)]
pub(super) struct Wire {
    pub wiring: AlarmWiring,
    pub vector: u32,
}

pub(super) const IRQ0: Wire = Wire {
    wiring: AlarmWiring::Irq0,
    vector: IRQ_BASE,
};
pub(super) const LVTT: Wire = Wire {
    wiring: AlarmWiring::Lvtt,
    vector: VECTOR_APIC_TIMER,
};

impl Wire {
    pub(super) fn flags(self, periodic: bool) -> u32 {
        AlarmFlags::new(CycleCounter::Real, self.wiring, periodic).0
    }

    /// Routes the alarm's interrupt: IRQ 0 unmasked at the 8259, or the
    /// LVT timer entry unmasked with the kernel's vector.
    pub(super) fn connect(self) {
        match self.wiring {
            AlarmWiring::Irq0 => pic::unmask(0),
            AlarmWiring::Lvtt => pv::apic_write(apic::REG_LVT_TIMER, VECTOR_APIC_TIMER),
        }
    }

    pub(super) fn disconnect(self) {
        match self.wiring {
            AlarmWiring::Irq0 => pic::mask(0),
            AlarmWiring::Lvtt => {
                pv::apic_write(apic::REG_LVT_TIMER, apic::LVT_MASKED | VECTOR_APIC_TIMER)
            }
        }
    }

    /// Whether the alarm's interrupt is requested but not yet delivered
    /// (the 8259's IRR bit, or the local APIC's IRR bit for the vector).
    pub(super) fn pending(self) -> bool {
        match self.wiring {
            AlarmWiring::Irq0 => pic::irr() & 1 != 0,
            AlarmWiring::Lvtt => {
                let reg = apic::REG_IRR + (self.vector / 32) * 0x10;
                pv::apic_read(reg) & (1 << (self.vector % 32)) != 0
            }
        }
    }

    /// How early an alarm may fire: the timer's rounding of the interval.
    fn slack(self, interval: u64) -> u64 {
        let tick = hz() / PIT_HZ + 1;
        interval / 200 + 2 * tick
    }
}

pub fn cycle_frequency_matches_pit() -> Outcome {
    let f = hz();
    ensure!(f >= 1_000_000, "GetCycleFrequency {f} Hz");
    // SAFETY: the kernel owns PIT channel 2.
    let measured = unsafe { pit::calibrate_with(pv::cycles_now) };
    let diff = measured.abs_diff(f);
    ensure!(
        diff <= f / 50,
        "cycle counter runs at {measured} Hz against the PIT, GetCycleFrequency says {f} Hz"
    );
    pass!("GetCycleFrequency {f} Hz; measured against the PIT {measured} Hz")
}

pub fn cycle_counters_monotonic() -> Outcome {
    let mut prev = [0u64; 3];
    let counters = [VMI_CYCLES_REAL, VMI_CYCLES_AVAILABLE, VMI_CYCLES_STOLEN];
    let first = [
        pv::cycle_counter(VMI_CYCLES_REAL),
        pv::cycle_counter(VMI_CYCLES_AVAILABLE),
    ];
    for i in 0..500 {
        for (k, c) in counters.iter().enumerate() {
            let v = pv::cycle_counter(*c);
            ensure!(
                v >= prev[k],
                "counter {c} went back at read {i}: {:#x} then {v:#x}",
                prev[k]
            );
            prev[k] = v;
        }
    }
    ensure!(prev[0] > first[0], "the real counter did not advance");
    ensure!(prev[1] > first[1], "the available counter did not advance");
    for bad in [3u32, 0xFF] {
        ensure_eq!(
            pv::cycle_counter(bad),
            0u64,
            "GetCycleCounter of an undefined counter"
        );
    }
    pass!("real, available, stolen non-decreasing over 500 reads (stolen {}); undefined counters read 0", prev[2])
}

/// 2020-01-01T00:00:00Z.
const YEAR_2020: u64 = 1_577_836_800;

pub fn wallclock_matches_rtc() -> Outcome {
    let ns = pv::wallclock_ns();
    let secs = ns / 1_000_000_000;
    ensure!(secs >= YEAR_2020, "GetWallclockTime {ns} ns is before 2020");
    // SAFETY: the kernel owns the CMOS ports.
    let rtc = unsafe { rtc::read_unix_seconds() };
    let updated = pv::wallclock_updated();
    ensure!(updated <= 1, "WallclockUpdated returned {updated}");
    match rtc {
        Some(r) => {
            ensure!(
                r.abs_diff(secs) <= 2,
                "GetWallclockTime {secs} s, RTC {r} s"
            );
            pass!("wall clock {secs} s since the epoch, RTC agrees")
        }
        None => pass!("wall clock {secs} s since the epoch (no RTC to compare)"),
    }
}

pub fn apic_read_write() -> Outcome {
    let version = pv::apic_read(apic::REG_VERSION);
    let (v, max_lvt) = (version & 0xFF, (version >> 16) & 0xFF);
    ensure!(
        (0x10..=0x1F).contains(&v),
        "APIC version register {version:#x}: not an integrated APIC"
    );
    ensure!(
        max_lvt >= 3,
        "APIC version register {version:#x}: only {} LVT entries",
        max_lvt + 1
    );
    let saved = pv::apic_read(apic::REG_TPR);
    pv::apic_write(apic::REG_TPR, 0x20);
    let tpr = pv::apic_read(apic::REG_TPR);
    pv::apic_write(apic::REG_TPR, saved);
    ensure_eq!(tpr & 0xFF, 0x20u32, "TPR after APICWrite");
    ensure_eq!(
        pv::apic_read(apic::REG_TPR) & 0xFF,
        saved & 0xFF,
        "TPR restored"
    );
    let lvtt = pv::apic_read(apic::REG_LVT_TIMER);
    ensure_eq!(
        lvtt & 0x1_00FF,
        apic::LVT_MASKED | VECTOR_APIC_TIMER,
        "LVT timer as the kernel programmed it"
    );
    pass!("version {version:#x}, TPR and LVT timer read back")
}

fn oneshot(wire: Wire) -> Outcome {
    let delay = ms(10);
    wire.connect();
    let flags = wire.flags(false);
    let before = irq_count(wire.vector);
    let t0 = pv::cycles_now();
    pv::set_alarm(flags, t0 + delay, 0);
    pv::irq_enable();
    let fired = wait_until(hz(), || irq_count(wire.vector) > before);
    let fired_at = irq_last_cycles(wire.vector);
    spin(3 * delay);
    pv::irq_disable();
    let total = irq_count(wire.vector) - before;
    let was_armed = pv::cancel_alarm(flags);
    wire.disconnect();
    ensure!(fired, "no interrupt within 1 s of a 10 ms one-shot alarm");
    ensure_eq!(total, 1u32, "interrupts from one one-shot alarm");
    ensure_eq!(was_armed, 0u32, "CancelAlarm after the one-shot fired");
    let elapsed = fired_at.wrapping_sub(t0);
    ensure!(
        elapsed + wire.slack(delay) >= delay,
        "fired early: after {elapsed} of {delay} cycles"
    );
    ensure!(
        elapsed < delay + hz() / 2,
        "fired {elapsed} cycles after arming, asked for {delay}"
    );
    pass!(
        "one interrupt {} us after arming (asked 10000 us)",
        elapsed * 1_000_000 / hz()
    )
}

/// A periodic alarm, counted over a window of 10 periods: never more
/// interrupts than periods (a timer is never early), and at least a third
/// of them (a busy host can make the emulator drop ticks; under -icount
/// the count is exact). Then CancelAlarm stops it.
fn periodic(wire: Wire) -> Outcome {
    const PERIODS: u64 = 10;
    let period = ms(20);
    let flags = wire.flags(true);
    wire.connect();
    let before = irq_count(wire.vector);
    let t0 = pv::cycles_now();
    pv::set_alarm(flags, t0 + period, period);
    pv::irq_enable();
    while pv::cycles_now().wrapping_sub(t0) < PERIODS * period {
        core::hint::spin_loop();
    }
    pv::irq_disable();
    let counted = u64::from(irq_count(wire.vector) - before);
    let was_armed = pv::cancel_alarm(flags);
    pv::irq_enable();
    spin(ms(1));
    pv::irq_disable();
    let settled = irq_count(wire.vector);
    pv::irq_enable();
    spin(4 * period);
    pv::irq_disable();
    let after_cancel = irq_count(wire.vector) - settled;
    let again = pv::cancel_alarm(flags);
    wire.disconnect();
    ensure!(
        counted <= PERIODS,
        "{counted} interrupts in {PERIODS} periods of 20 ms: the alarm runs fast"
    );
    ensure!(
        counted * 3 >= PERIODS,
        "{counted} interrupts in {PERIODS} periods of 20 ms: the alarm runs slow or stopped"
    );
    ensure_eq!(was_armed, 1u32, "CancelAlarm of the running periodic alarm");
    ensure_eq!(after_cancel, 0u32, "interrupts after CancelAlarm");
    ensure_eq!(again, 0u32, "second CancelAlarm");
    pass!("{counted} interrupts in {PERIODS} periods of 20 ms; cancelled, silent afterwards")
}

fn cancel(wire: Wire) -> Outcome {
    let flags = wire.flags(false);
    wire.connect();
    let before = irq_count(wire.vector);
    pv::set_alarm(flags, pv::cycles_now() + ms(100), 0);
    let was_armed = pv::cancel_alarm(flags);
    pv::irq_enable();
    spin(ms(150));
    pv::irq_disable();
    let fired = irq_count(wire.vector) - before;
    let again = pv::cancel_alarm(flags);
    wire.disconnect();
    ensure_eq!(was_armed, 1u32, "CancelAlarm of a pending one-shot");
    ensure_eq!(fired, 0u32, "interrupts from a cancelled alarm");
    ensure_eq!(again, 0u32, "second CancelAlarm");
    pass!("a pending 100 ms one-shot cancelled: CancelAlarm 1, no interrupt in 150 ms, then 0")
}

pub fn alarm_irq0_oneshot() -> Outcome {
    oneshot(IRQ0)
}

pub fn alarm_irq0_periodic() -> Outcome {
    periodic(IRQ0)
}

pub fn alarm_irq0_cancel() -> Outcome {
    cancel(IRQ0)
}

pub fn alarm_lvtt_oneshot() -> Outcome {
    oneshot(LVTT)
}

pub fn alarm_lvtt_periodic() -> Outcome {
    periodic(LVTT)
}

pub fn alarm_lvtt_cancel() -> Outcome {
    cancel(LVTT)
}

pub fn alarm_rearm_replaces() -> Outcome {
    let wire = LVTT;
    let flags = wire.flags(false);
    wire.connect();
    let before = irq_count(wire.vector);
    pv::set_alarm(flags, pv::cycles_now() + ms(200), 0);
    let t_rearm = pv::cycles_now();
    pv::set_alarm(flags, t_rearm + ms(5), 0);
    pv::irq_enable();
    spin(ms(300));
    pv::irq_disable();
    let fired = irq_count(wire.vector) - before;
    let at = irq_last_cycles(wire.vector).wrapping_sub(t_rearm);
    wire.disconnect();
    ensure_eq!(
        fired,
        1u32,
        "interrupts after re-arming (the first alarm must be gone)"
    );
    ensure!(
        at + wire.slack(ms(5)) >= ms(5) && at < ms(150),
        "fired {at} cycles after re-arming for 5 ms"
    );
    pass!(
        "re-armed 200 ms alarm to 5 ms: one interrupt after {} us",
        at * 1_000_000 / hz()
    )
}

pub fn alarm_stolen_counter_ignored() -> Outcome {
    let wire = LVTT;
    let flags = AlarmFlags::new(CycleCounter::Stolen, wire.wiring, false).0;
    wire.connect();
    let before = irq_count(wire.vector);
    let stolen = pv::cycle_counter(VMI_CYCLES_STOLEN);
    pv::set_alarm(flags, stolen + ms(1), 0);
    pv::irq_enable();
    spin(ms(20));
    pv::irq_disable();
    let fired = irq_count(wire.vector) - before;
    let was_armed = pv::cancel_alarm(flags);
    wire.disconnect();
    ensure_eq!(
        fired,
        0u32,
        "interrupts from an alarm on the stolen counter"
    );
    ensure_eq!(
        was_armed,
        0u32,
        "CancelAlarm after an alarm on the stolen counter"
    );
    pass!("SetAlarm on the stolen counter did nothing")
}

pub fn halt_wakes_on_interrupt() -> Outcome {
    let wire = LVTT;
    let flags = wire.flags(false);
    wire.connect();
    let before = irq_count(wire.vector);
    pv::irq_disable();
    let t0 = pv::cycles_now();
    pv::set_alarm(flags, t0 + ms(5), 0);
    pv::halt();
    let t1 = pv::cycles_now();
    let enabled = pv::save_fl();
    pv::irq_disable();
    let fired = irq_count(wire.vector) - before;
    wire.disconnect();
    ensure_eq!(fired, 1u32, "interrupts when Halt returned");
    ensure!(enabled != 0, "Halt returned with interrupts disabled");
    let slept = t1.wrapping_sub(t0);
    ensure!(
        slept + wire.slack(ms(5)) >= ms(5),
        "Halt returned after {slept} cycles, before the 5 ms alarm"
    );
    pass!("Halt slept {} us until the alarm", slept * 1_000_000 / hz())
}
