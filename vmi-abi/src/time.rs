//! The VMI timer interface.
//!
//! Mirrors Linux's `arch/x86/include/asm/vmi_time.h` (unchanged 2.6.21-2.6.30)
//! and the timer section of the 2006 VMI specification.
//!
//! A vcpu is always running, halted (after Halt, until work is pending) or
//! ready (runnable but not running). Real time advances in all three states;
//! stolen time is the time spent ready; available time is the rest (running
//! or halted). Each has a 64-bit cycle counter ([`CycleCounter`]), counting
//! at the rate GetCycleFrequency returns.
//!
//! Alarms (SetAlarm, CancelAlarm): `flags` = counter | wiring | mode.
//! `expiry` is an absolute value of that counter; `period` 0 means one-shot
//! whatever the mode bit says. Arming an armed alarm cancels it first. An
//! alarm on the stolen counter or an unknown counter does nothing.
//! CancelAlarm returns 1 if the alarm was armed (a one-shot not yet fired, or
//! a periodic one), else 0. The alarm is delivered as IRQ 0 or through the
//! local APIC timer LVT entry (the vector the kernel programmed there).

/// Real-time counter.
pub const VMI_CYCLES_REAL: u32 = 0;
/// Available-time counter (running or halted).
pub const VMI_CYCLES_AVAILABLE: u32 = 1;
/// Stolen-time counter (ready, not running).
pub const VMI_CYCLES_STOLEN: u32 = 2;

/// Number of counters that can carry an alarm (real and available).
pub const VMI_ALARM_COUNTERS: u32 = 2;
/// Bits of `flags` naming the counter.
pub const VMI_ALARM_COUNTER_MASK: u32 = 0x0000_00FF;
/// Deliver the alarm as IRQ 0.
pub const VMI_ALARM_WIRED_IRQ0: u32 = 0x0000_0000;
/// Deliver the alarm through the local APIC timer LVT entry.
pub const VMI_ALARM_WIRED_LVTT: u32 = 0x0001_0000;
/// One-shot alarm.
pub const VMI_ALARM_IS_ONESHOT: u32 = 0x0000_0000;
/// Periodic alarm.
pub const VMI_ALARM_IS_PERIODIC: u32 = 0x0000_0100;
/// Default alarm rate of Linux's 2.6.21 tick code (`CONFIG_VMI_ALARM_HZ`).
pub const CONFIG_VMI_ALARM_HZ: u32 = 100;
/// GetWallclockTime counts nanoseconds (2006 specification `VMI_WALLCLOCK_HZ`).
pub const VMI_WALLCLOCK_HZ: u64 = 1_000_000_000;

/// The three cycle counters.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CycleCounter {
    /// [`VMI_CYCLES_REAL`].
    Real = VMI_CYCLES_REAL,
    /// [`VMI_CYCLES_AVAILABLE`].
    Available = VMI_CYCLES_AVAILABLE,
    /// [`VMI_CYCLES_STOLEN`].
    Stolen = VMI_CYCLES_STOLEN,
}

impl CycleCounter {
    /// The counter with this number (GetCycleCounter returns 0 for any other).
    pub const fn from_u32(raw: u32) -> Option<Self> {
        match raw {
            VMI_CYCLES_REAL => Some(CycleCounter::Real),
            VMI_CYCLES_AVAILABLE => Some(CycleCounter::Available),
            VMI_CYCLES_STOLEN => Some(CycleCounter::Stolen),
            _ => None,
        }
    }
}

/// How an alarm is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmWiring {
    /// [`VMI_ALARM_WIRED_IRQ0`].
    Irq0,
    /// [`VMI_ALARM_WIRED_LVTT`].
    Lvtt,
}

/// The `flags` argument of SetAlarm / CancelAlarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AlarmFlags(pub u32);

impl AlarmFlags {
    /// counter | wiring | mode.
    pub const fn new(counter: CycleCounter, wiring: AlarmWiring, periodic: bool) -> Self {
        let wiring = match wiring {
            AlarmWiring::Irq0 => VMI_ALARM_WIRED_IRQ0,
            AlarmWiring::Lvtt => VMI_ALARM_WIRED_LVTT,
        };
        let mode = if periodic {
            VMI_ALARM_IS_PERIODIC
        } else {
            VMI_ALARM_IS_ONESHOT
        };
        AlarmFlags(counter as u32 | wiring | mode)
    }

    /// Linux 2.6.22+ `VMI_ONESHOT`: one-shot on the real counter.
    pub const fn linux_oneshot(wiring: AlarmWiring) -> Self {
        Self::new(CycleCounter::Real, wiring, false)
    }

    /// Linux 2.6.22+ `VMI_PERIODIC`: periodic on the real counter.
    pub const fn linux_periodic(wiring: AlarmWiring) -> Self {
        Self::new(CycleCounter::Real, wiring, true)
    }

    /// The raw counter number.
    pub const fn counter_number(self) -> u32 {
        self.0 & VMI_ALARM_COUNTER_MASK
    }

    /// The counter, if a defined one.
    pub const fn counter(self) -> Option<CycleCounter> {
        CycleCounter::from_u32(self.counter_number())
    }

    /// Delivery.
    pub const fn wiring(self) -> AlarmWiring {
        if self.0 & VMI_ALARM_WIRED_LVTT != 0 {
            AlarmWiring::Lvtt
        } else {
            AlarmWiring::Irq0
        }
    }

    /// Periodic mode bit (a zero period still means one-shot).
    pub const fn is_periodic(self) -> bool {
        self.0 & VMI_ALARM_IS_PERIODIC != 0
    }

    /// Bits no definition covers.
    pub const fn unknown_bits(self) -> u32 {
        self.0 & !(VMI_ALARM_COUNTER_MASK | VMI_ALARM_WIRED_LVTT | VMI_ALARM_IS_PERIODIC)
    }
}
