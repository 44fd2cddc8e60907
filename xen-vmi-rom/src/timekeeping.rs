//! The arithmetic of the VMI timer on Xen, kept apart from the ROM so it can
//! be tested on the host: when an alarm's interrupt is due and when it next
//! expires ([`Alarm`]), and the available/stolen cycle counters built from
//! Xen's runstate ([`CycleCounters`]), and the Xen deadline of an alarm
//! ([`alarm_deadline_ns`]).
//!
//! # The tick rule
//!
//! An interrupt line or vector holds one request: an 8259's IRR bit latches
//! one edge, a local APIC's IRR bit one timer expiry. Edges that come while
//! the request is still latched (the kernel has interrupts off, or has not
//! acknowledged the previous one) are not counted twice; the hardware has
//! nowhere to count them. The ROM sees a periodic alarm only when it looks
//! (Xen's timer event, or the kernel enabling interrupts or reading its
//! interrupt controller), and follows the same rule: every look that finds
//! one or more expiries since the previous look raises the interrupt once.
//! So a tick is never lost while the kernel's masked stretch is shorter than
//! a period (it is delayed to the end of the stretch), a longer stretch
//! leaves exactly one tick for it, as on hardware, and the alarm keeps its
//! phase: the next expiry is the first one of the original grid
//! (`first + k * period`) after the look, never `look + period`.

use xen_abi::time::scale_delta;
use xen_abi::xen::VcpuTimeInfo;

/// Xen's system time (ns) to set its one-shot timer to for an alarm at
/// cycle `expiry`, through the time info `snap`, so that the TSC is past
/// `expiry` (the alarm due: [`Alarm::look`]) whenever Xen runs the timer.
/// Xen runs a timer only once `expires < now` (xen/common/timer.c), and
/// its `now` is the TSC through the scale the time info copies
/// (`get_s_time_fixed`), rounded down as `system_time_at` is, so never
/// decreasing in the TSC: past the expiry's time, the TSC is past the
/// expiry. Where the TSC is the processor's own (`emulated_slack_ns`
/// None) the deadline is that time, as a direct-PV kernel sets it (the
/// time of the cycle before would do as well, without that cycle of
/// margin against a scale Xen has changed and not yet published). Where
/// Xen emulates the TSC, a read is scaled from system time with a scale
/// of its own, rounded down, and may show a cycle or two less: the slack
/// is added. An expiry before the snapshot's stamp (the scaling would
/// wrap) is past: the stamp's time, which fires at once. An expiry so far
/// ahead that its time is past Xen's signed system time (s_time_t: a
/// deadline of 2^63 or more is negative there and runs at once), or that
/// the scale's left shift would wrap (a kernel's "never", u64::MAX), is
/// [`NEVER_NS`]: no run reaches it.
pub fn alarm_deadline_ns(snap: &VcpuTimeInfo, expiry: u64, emulated_slack_ns: Option<u64>) -> u64 {
    let delta = expiry.saturating_sub(snap.tsc_timestamp.get());
    let shift = snap.tsc_shift;
    if shift > 0 && delta != 0 && delta.leading_zeros() < shift as u32 {
        return NEVER_NS;
    }
    let time =
        snap.system_time
            .get()
            .saturating_add(scale_delta(delta, snap.tsc_to_system_mul, shift));
    match emulated_slack_ns {
        None => time.min(NEVER_NS),
        Some(slack) => time.saturating_add(slack).min(NEVER_NS),
    }
}

/// The latest deadline Xen's timer takes (STIME_MAX, xen/include/xen/time.h:
/// the largest s_time_t).
pub const NEVER_NS: u64 = i64::MAX as u64;

/// The slack [`alarm_deadline_ns`] adds where Xen emulates the TSC: one
/// TSC period (at `frequency` Hz, 0 if unknown: a nanosecond) and a
/// nanosecond.
pub const fn emulated_tsc_slack_ns(frequency: u64) -> u64 {
    match frequency {
        0 => 2,
        hz => 1 + 1_000_000_000u64.div_ceil(hz),
    }
}

/// An armed VMI alarm, in cycles of the real counter (vmi_time.h:
/// `SetAlarm(flags, expiry, period)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Alarm {
    /// The next expiry not yet raised.
    next: u64,
    /// 0 for a one-shot alarm.
    period: u64,
}

/// What a look at an alarm found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// One or more expiries happened since the previous look: raise the
    /// interrupt (once).
    pub raise: bool,
    /// The alarm after the look: `None` once a one-shot has fired.
    pub alarm: Option<Alarm>,
}

impl Alarm {
    /// An alarm expiring at `expiry` and then every `period` cycles (a
    /// `period` of 0: once).
    pub const fn new(expiry: u64, period: u64) -> Alarm {
        Alarm {
            next: expiry,
            period,
        }
    }

    /// The next expiry not yet raised.
    pub const fn next(&self) -> u64 {
        self.next
    }

    /// The period (0 for a one-shot).
    pub const fn period(&self) -> u64 {
        self.period
    }

    /// The alarm looked at when the cycle counter reads `now`: whether to
    /// raise its interrupt, and what is left armed. Expiries already past
    /// count as one (see the module's tick rule); a periodic alarm keeps its
    /// phase, and the skip over the periods gone is computed, not looped.
    pub fn look(self, now: u64) -> Expiry {
        if now < self.next {
            return Expiry {
                raise: false,
                alarm: Some(self),
            };
        }
        let alarm = if self.period == 0 {
            None
        } else {
            Some(self.first_after(now))
        };
        Expiry { raise: true, alarm }
    }

    /// A periodic alarm due at `now` moved to the first expiry of its grid
    /// after `now`; an alarm so far out that it cannot be represented
    /// stops at the end of time. Out of line, optimized for size: the
    /// 64-bit division and the saturating product are for periodic alarms
    /// only (a kernel's boot-time tick), not for the one-shots after it.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn first_after(self, now: u64) -> Alarm {
        let gone = (now - self.next) / self.period;
        let step = (gone + 1).saturating_mul(self.period);
        Alarm {
            next: self.next.saturating_add(step),
            period: self.period,
        }
    }
}

/// GetCycleCounter's available and stolen counters, from the real counter
/// and the stolen time Xen reports, made what the VMI interface promises
/// (vmi_time.h: stolen is time the vCPU was ready but not running,
/// available is the rest): both never go backwards, and neither exceeds the
/// real counter.
///
/// Xen's runstate times only grow, but their conversion to cycles uses a
/// scale Xen recalibrates, so a raw value may step back by a few cycles, or
/// stolen grow a little faster than the real counter. The counters hold
/// their last value rather than follow such a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleCounters {
    stolen: u64,
    available: u64,
}

impl CycleCounters {
    /// Nothing read yet.
    pub const fn new() -> CycleCounters {
        CycleCounters {
            stolen: 0,
            available: 0,
        }
    }

    /// (available, stolen) when the real counter reads `real` and Xen's
    /// stolen time comes to `raw_stolen` cycles. `real` must not go
    /// backwards between calls (it is the TSC).
    pub fn read(&mut self, real: u64, raw_stolen: u64) -> (u64, u64) {
        let stolen = raw_stolen.max(self.stolen).min(real);
        let available = (real - stolen).max(self.available).min(real);
        self.stolen = stolen;
        self.available = available;
        (available, stolen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_shot_fires_once_even_when_looked_at_late() {
        let alarm = Alarm::new(1_000, 0);
        assert_eq!(
            alarm.look(999),
            Expiry {
                raise: false,
                alarm: Some(alarm)
            }
        );
        assert_eq!(
            alarm.look(5_000),
            Expiry {
                raise: true,
                alarm: None
            }
        );
    }

    #[test]
    fn an_expiry_in_the_past_fires_at_the_first_look() {
        let alarm = Alarm::new(0, 0);
        assert!(alarm.look(123_456).raise);
        let periodic = Alarm::new(10, 100).look(1_000_000);
        assert!(periodic.raise);
        assert_eq!(periodic.alarm.unwrap().next(), 1_000_010);
    }

    #[test]
    fn periodic_keeps_its_phase_and_coalesces() {
        let alarm = Alarm::new(100, 10);
        // On time: one raise, next on the grid.
        let e = alarm.look(100);
        assert!(e.raise);
        assert_eq!(e.alarm.unwrap().next(), 110);
        // Three periods late (113, 120, 130 gone): one raise, next at 140.
        let e = e.alarm.unwrap().look(135);
        assert!(e.raise);
        assert_eq!(e.alarm.unwrap().next(), 140);
        // Before the next expiry: nothing.
        assert!(!e.alarm.unwrap().look(139).raise);
    }

    #[test]
    fn the_end_of_time_saturates() {
        let e = Alarm::new(u64::MAX - 5, 10).look(u64::MAX);
        assert!(e.raise);
        assert_eq!(e.alarm.unwrap().next(), u64::MAX);
    }

    #[test]
    fn counters_hold_against_a_step_back() {
        let mut c = CycleCounters::new();
        assert_eq!(c.read(1_000, 100), (900, 100));
        // Xen's scale moved: the raw stolen value fell, then grew faster
        // than the real counter.
        assert_eq!(c.read(1_010, 90), (910, 100));
        assert_eq!(c.read(1_020, 150), (910, 150));
        // Stolen can never exceed the real counter.
        assert_eq!(c.read(1_030, 5_000), (910, 1_030));
    }

    #[test]
    fn a_stretch_of_stolen_time_added_at_once_holds_available() {
        // Xen adds the time the vCPU waited to the runstate when it runs
        // again, all at once: here 5000 cycles reported between two reads
        // 100 apart. Available holds its value until the real counter has
        // caught up with the stolen stretch, then moves on from there.
        let mut c = CycleCounters::new();
        assert_eq!(c.read(10_000, 1_000), (9_000, 1_000));
        assert_eq!(c.read(10_100, 6_000), (9_000, 6_000));
        assert_eq!(c.read(14_000, 6_000), (9_000, 6_000));
        assert_eq!(c.read(15_500, 6_000), (9_500, 6_000));
        // The same across the 2^32 boundary of both counters (the ROM
        // keeps them as 64-bit values on a 32-bit processor).
        let base = (1u64 << 32) - 50;
        let mut c = CycleCounters::new();
        assert_eq!(c.read(base + 1_000, 1_000), (base, 1_000));
        assert_eq!(c.read(base + 1_100, 1_080), (base + 20, 1_080));
        assert_eq!(c.read(base + 1_200, 90_000), (base + 20, 90_000));
        assert_eq!(c.read(base + 100_000, 90_000), (base + 10_000, 90_000));
    }

    /// The expiries of an alarm (`first`, then every `period`) in the
    /// half-open window (after, upto].
    fn expiries_in(first: u64, period: u64, after: Option<u64>, upto: u64) -> u64 {
        let count_upto = |t: u64| -> u64 {
            if t < first {
                0
            } else {
                // A one-shot (period 0) expires once.
                (t - first).checked_div(period).map_or(1, |whole| whole + 1)
            }
        };
        count_upto(upto) - after.map_or(0, count_upto)
    }

    /// Xen's time info with the TSC stamp, system time and scale given.
    fn time_snapshot(stamp: u64, system_time: u64, mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo {
            tsc_timestamp: stamp.into(),
            system_time: system_time.into(),
            tsc_to_system_mul: mul,
            tsc_shift: shift,
            ..VcpuTimeInfo::default()
        }
    }

    proptest! {
        /// A native TSC's deadline lets Xen's timer run (`now > deadline`)
        /// at no cycle up to the expiry and is the expiry's own time (a
        /// direct-PV kernel's deadline); an emulated TSC's is that plus the
        /// slack.
        #[test]
        fn alarm_deadlines_never_let_the_timer_run_early(
            stamp in 0u64..1 << 40,
            system_time in 0u64..1 << 50,
            mul in 1u32..,
            shift in -4i8..4,
            ahead in 0u64..1 << 32,
            before in 0u64..1 << 20,
            slack in 0u64..1000,
        ) {
            let snap = time_snapshot(stamp, system_time, mul, shift);
            let expiry = stamp + ahead;
            let deadline = alarm_deadline_ns(&snap, expiry, None);
            let not_past = expiry.saturating_sub(before).max(stamp);
            prop_assert!(snap.system_time_at(not_past) <= deadline);
            prop_assert_eq!(deadline, snap.system_time_at(expiry));
            let emulated = alarm_deadline_ns(&snap, expiry, Some(slack));
            prop_assert_eq!(emulated, deadline + slack);
        }

        /// An expiry however far ahead (a kernel's "never", u64::MAX) gives
        /// a deadline Xen reads as a time no earlier than any TSC up to the
        /// expiry could reach: within its signed system time (s_time_t; a
        /// deadline at 2^63 or more is negative there and runs at once),
        /// and not wrapped by the scaling's shift to an earlier time.
        #[test]
        fn far_alarm_deadlines_stay_far(
            stamp in 0u64..1 << 40,
            system_time in 0u64..1 << 50,
            mul in 1u32..,
            shift in -4i8..4,
            ahead in prop_oneof![Just(u64::MAX), 1u64 << 40.., 0u64..1 << 32],
            slack in prop_oneof![Just(None), (0u64..1000).prop_map(Some)],
        ) {
            let snap = time_snapshot(stamp, system_time, mul, shift);
            let expiry = stamp.saturating_add(ahead);
            let deadline = alarm_deadline_ns(&snap, expiry, slack);
            prop_assert!(deadline <= i64::MAX as u64, "deadline {:#x} negative for Xen", deadline);
            // The TSC a run can reach (2^40 cycles: minutes at any rate)
            // converts without wrapping: Xen's own time at that TSC.
            let reachable = expiry.min(stamp + (1 << 40));
            prop_assert!(
                snap.system_time_at(reachable) <= deadline,
                "deadline {:#x} before the time {:#x} of TSC {:#x} (expiry {:#x})",
                deadline, snap.system_time_at(reachable), reachable, expiry
            );
        }

        /// Against the grid of expiries: a look raises exactly when at least
        /// one expiry fell since the previous look (never early, never a
        /// window with an expiry left silent), and what stays armed expires
        /// at the first grid point after the look.
        #[test]
        fn looks_follow_the_grid(
            first in 0u64..10_000,
            period in prop_oneof![Just(0u64), 1u64..3_000],
            steps in prop::collection::vec(0u64..7_000, 1..60),
        ) {
            let mut alarm = Some(Alarm::new(first, period));
            let mut previous: Option<u64> = None;
            let mut now = 0u64;
            let mut raised = 0u64;
            for step in steps {
                now += step;
                let due = expiries_in(first, period, previous, now);
                match alarm {
                    Some(a) => {
                        let e = a.look(now);
                        prop_assert_eq!(e.raise, due > 0, "look at {} after {:?}", now, previous);
                        raised += u64::from(e.raise);
                        alarm = e.alarm;
                        match alarm {
                            Some(left) => {
                                prop_assert!(left.next() > now);
                                prop_assert_eq!(expiries_in(first, period, Some(now), left.next() - 1), 0);
                                prop_assert_eq!(expiries_in(first, period, Some(now), left.next()), 1);
                            }
                            None => prop_assert!(period == 0 && now >= first),
                        }
                    }
                    None => prop_assert_eq!(due, 0, "a fired one-shot has no more expiries"),
                }
                previous = Some(now);
            }
            // Never more raises than expiries.
            prop_assert!(raised <= expiries_in(first, period, None, now));
        }

        /// Whatever Xen reports, the counters never go back and never pass
        /// the real counter.
        #[test]
        fn counters_are_monotonic_and_bounded(
            steps in prop::collection::vec((0u64..1_000, 0u64..2_000), 1..100),
        ) {
            let mut c = CycleCounters::new();
            let (mut real, mut last) = (0u64, (0u64, 0u64));
            for (advance, raw) in steps {
                real += advance;
                let (available, stolen) = c.read(real, raw);
                prop_assert!(available >= last.0 && stolen >= last.1);
                prop_assert!(available <= real && stolen <= real);
                last = (available, stolen);
            }
        }

        /// A runstate that only grows, in stretches of any size added at
        /// once (a preempted vCPU), from a real counter near 2^32: available
        /// never steps back, and stolen follows Xen exactly while Xen's
        /// figure stays below the real counter.
        #[test]
        fn stolen_stretches_never_step_available_back(
            start in (1u64 << 32) - 100_000..(1u64 << 32) + 100_000,
            steps in prop::collection::vec((0u64..50_000, prop_oneof![Just(0u64), 0u64..200_000]), 1..100),
        ) {
            let mut c = CycleCounters::new();
            let (mut real, mut raw, mut last) = (start, 0u64, (0u64, 0u64));
            for (advance, stretch) in steps {
                real += advance;
                raw += stretch;
                let (available, stolen) = c.read(real, raw);
                prop_assert!(available >= last.0, "available {} after {}", available, last.0);
                prop_assert!(stolen >= last.1);
                prop_assert!(available <= real && stolen <= real);
                prop_assert_eq!(stolen, raw.min(real));
                last = (available, stolen);
            }
        }
    }
}
