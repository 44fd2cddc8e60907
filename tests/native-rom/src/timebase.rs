//! Time arithmetic of the native platform: TSC calibration against the 8254
//! PIT, cycle-to-tick conversions for the alarm timers, and the RTC's
//! calendar time as seconds since the Unix epoch.
//!
//! Pure functions (no hardware access, no panics: the ROM links them and
//! must stay free of panic paths), host-tested.

/// Input clock of the 8254 PIT in Hz (the PC's 14.31818 MHz crystal / 12).
pub const PIT_HZ: u64 = 1_193_182;

/// Longest count an 8254 channel takes (a written 0 means 65536, which the
/// alarm code never uses so that "count 0" is never ambiguous).
pub const PIT_MAX_COUNT: u64 = 0xFFFF;

/// PIT ticks between the early and the late readings of a calibration:
/// 23864 ticks, 20 ms (one tick of error is 42 ppm).
pub const CALIBRATION_PIT_TICKS: u16 = 23_864;

/// Readings taken at each end of a calibration; the one whose counter
/// reads are closest together is used. A virtual CPU can be descheduled
/// for milliseconds at any point: a reading it interrupted shows a wide
/// gap and is not used (polling the PIT's output for the end of a count
/// would instead see the end late, and every such sample would be long).
pub const CALIBRATION_READINGS: usize = 4;

/// A counter read just before and just after reading a down-counting
/// timer (PIT channel 2's latched count, the local APIC timer's current
/// count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountReading {
    /// Counter before the timer was read.
    pub before: u64,
    /// Counter after the timer was read.
    pub after: u64,
    /// The timer's count.
    pub count: u32,
}

impl CountReading {
    /// Counter ticks the reading took.
    pub const fn gap(&self) -> u64 {
        self.after.wrapping_sub(self.before)
    }

    /// Counter value at the middle of the reading.
    pub const fn midpoint(&self) -> u64 {
        self.before.wrapping_add(self.gap() / 2)
    }
}

/// The reading with the smallest gap.
pub fn tightest(readings: &[CountReading]) -> Option<CountReading> {
    readings.iter().copied().min_by_key(CountReading::gap)
}

/// (counter ticks, timer ticks) between the tightest `early` and the
/// tightest `late` reading of a timer counting down modulo `count_mask + 1`.
/// `None` if a group is empty or the timer did not move.
pub fn elapsed(
    early: &[CountReading],
    late: &[CountReading],
    count_mask: u32,
) -> Option<(u64, u64)> {
    let (a, b) = (tightest(early)?, tightest(late)?);
    let ticks = a.count.wrapping_sub(b.count) & count_mask;
    if ticks == 0 {
        return None;
    }
    Some((b.midpoint().wrapping_sub(a.midpoint()), u64::from(ticks)))
}

/// A counter's rate in ticks per second from readings around latched
/// counts of the PIT (16-bit, [`PIT_HZ`]); 0 when they give none.
pub fn rate_from_pit_readings(early: &[CountReading], late: &[CountReading]) -> u64 {
    match elapsed(early, late, 0xFFFF) {
        Some((counter, ticks)) => mul_div(counter, PIT_HZ, ticks),
        None => 0,
    }
}

/// The median of five values (no panic path: the ROM links it).
pub fn median5(values: [u64; 5]) -> u64 {
    for x in values {
        let below = values.iter().filter(|y| **y < x).count();
        let equal = values.iter().filter(|y| **y == x).count();
        if below <= 2 && 2 < below + equal {
            return x;
        }
    }
    values[2]
}

/// `value * mul / div` without intermediate overflow, rounded down; 0 when
/// `div` is 0 (a caller never divides by an uncalibrated 0, but the ROM must
/// not have a panic path).
pub const fn mul_div(value: u64, mul: u64, div: u64) -> u64 {
    if div == 0 {
        return 0;
    }
    let wide = (value as u128) * (mul as u128) / (div as u128);
    if wide > u64::MAX as u128 {
        u64::MAX
    } else {
        wide as u64
    }
}

/// TSC frequency from a calibration: `tsc_cycles` elapsed while the PIT
/// counted `pit_ticks`.
pub const fn tsc_hz_from_pit(tsc_cycles: u64, pit_ticks: u64) -> u64 {
    mul_div(tsc_cycles, PIT_HZ, pit_ticks)
}

/// PIT count for an interval of `cycles` TSC cycles, clamped to what one
/// 8254 count can hold: at least `min` (1 for a one-shot, 2 for the rate
/// generator, whose count 1 is illegal), at most [`PIT_MAX_COUNT`].
pub const fn pit_count_for(cycles: u64, tsc_hz: u64, min: u64) -> u16 {
    let ticks = mul_div(cycles, PIT_HZ, tsc_hz);
    let clamped = if ticks < min {
        min
    } else if ticks > PIT_MAX_COUNT {
        PIT_MAX_COUNT
    } else {
        ticks
    };
    clamped as u16
}

/// Local APIC timer count for `cycles` TSC cycles, given a measured ratio
/// of `apic_ticks` APIC timer ticks per `tsc_cycles` TSC cycles; at least 1,
/// at most `u32::MAX`.
pub const fn apic_count_for(cycles: u64, apic_ticks: u64, tsc_cycles: u64) -> u32 {
    let count = mul_div(cycles, apic_ticks, tsc_cycles);
    if count == 0 {
        1
    } else if count > u32::MAX as u64 {
        u32::MAX
    } else {
        count as u32
    }
}

/// A BCD byte as the RTC stores it, as a binary number.
pub const fn bcd_to_binary(bcd: u8) -> u8 {
    (bcd >> 4) * 10 + (bcd & 0x0F)
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian calendar),
/// or `None` for a date before 1970 or an impossible month/day.
pub const fn days_since_epoch(year: u32, month: u32, day: u32) -> Option<u64> {
    if year < 1970 || month < 1 || month > 12 || day < 1 || day > 31 {
        return None;
    }
    // Count years from March so that the leap day ends a year.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y % 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719468 = days from 0000-03-01 to 1970-01-01.
    let days = era as u64 * 146_097 + day_of_era as u64;
    if days < 719_468 {
        None
    } else {
        Some(days - 719_468)
    }
}

/// Seconds since the Unix epoch for a calendar time.
pub const fn unix_seconds(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<u64> {
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    match days_since_epoch(year, month, day) {
        Some(days) => Some(days * 86_400 + hour as u64 * 3600 + minute as u64 * 60 + second as u64),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_is_exact_for_large_values_and_safe_for_zero() {
        assert_eq!(mul_div(u64::MAX, 3, 3), u64::MAX);
        assert_eq!(mul_div(1 << 40, 1 << 30, 1 << 20), 1 << 50);
        assert_eq!(mul_div(7, 1, 0), 0);
        assert_eq!(mul_div(u64::MAX, u64::MAX, 1), u64::MAX);
        assert_eq!(mul_div(10, 3, 4), 7);
    }

    #[test]
    fn calibration_of_a_1ghz_tsc() {
        // 20 ms at 1 GHz: 20e6 cycles over 23864 ticks.
        let hz = tsc_hz_from_pit(20_000_000, u64::from(CALIBRATION_PIT_TICKS));
        let expected = 20_000_000u64 * PIT_HZ / 23_864;
        assert_eq!(hz, expected);
        assert!((999_000_000..=1_001_000_000).contains(&hz), "{hz}");
    }

    fn reading(before: u64, after: u64, count: u16) -> CountReading {
        CountReading {
            before,
            after,
            count: u32::from(count),
        }
    }

    #[test]
    fn rate_uses_the_tightest_readings() {
        // A 1 GHz counter: 20 ms = 23864 PIT ticks = 20_000_000 cycles
        // (within rounding). The wide readings (a stall) must not count.
        let early = [
            reading(1000, 9_001_000, 60_000),
            reading(10_000_000, 10_000_100, 59_990),
            reading(10_001_000, 10_001_300, 59_989),
        ];
        let ticks = 23_864u64;
        let cycles = ticks * 1_000_000_000 / PIT_HZ;
        let end = 10_000_050 + cycles;
        let late = [
            reading(end - 50, end + 50, (59_990 - ticks) as u16),
            reading(end + 100, end + 4_000_100, (59_990 - ticks - 5) as u16),
        ];
        let hz = rate_from_pit_readings(&early, &late);
        assert!((999_990_000..=1_000_010_000).contains(&hz), "{hz}");
        assert_eq!(rate_from_pit_readings(&[], &late), 0);
        assert_eq!(rate_from_pit_readings(&early, &[reading(5, 6, 59_990)]), 0);
    }

    #[test]
    fn elapsed_of_a_32_bit_timer() {
        let early = [
            CountReading {
                before: 100,
                after: 140,
                count: 5,
            },
            CountReading {
                before: 150,
                after: 160,
                count: 3,
            },
        ];
        let late = [CountReading {
            before: 10_150,
            after: 10_160,
            count: 3u32.wrapping_sub(4000),
        }];
        assert_eq!(elapsed(&early, &late, u32::MAX), Some((10_000, 4000)));
        assert_eq!(
            elapsed(
                &early,
                &[CountReading {
                    before: 9,
                    after: 9,
                    count: 3
                }],
                u32::MAX
            ),
            None
        );
    }

    #[test]
    fn count_wraps_are_handled() {
        let early = [reading(0, 10, 100)];
        let late = [reading(1_000_000, 1_000_010, 100u16.wrapping_sub(1193))];
        assert_eq!(
            rate_from_pit_readings(&early, &late),
            1_000_000 * PIT_HZ / 1193
        );
    }

    #[test]
    fn median_of_five() {
        assert_eq!(median5([5, 1, 4, 2, 3]), 3);
        assert_eq!(median5([7, 7, 7, 7, 7]), 7);
        assert_eq!(median5([1, 9, 9, 1, 5]), 5);
        assert_eq!(median5([2, 2, 9, 9, 9]), 9);
        assert_eq!(median5([u64::MAX, 0, 100, 101, 99]), 100);
        // Against sorting, for every arrangement of a few small values.
        for a in 0..4u64 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        for e in 0..4 {
                            let v = [a, b, c, d, e];
                            let mut sorted = v;
                            sorted.sort_unstable();
                            assert_eq!(median5(v), sorted[2], "{v:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pit_counts_are_clamped() {
        let hz = 1_000_000_000;
        // 1 ms = 1193 ticks.
        assert_eq!(pit_count_for(1_000_000, hz, 1), 1193);
        assert_eq!(pit_count_for(0, hz, 1), 1);
        assert_eq!(pit_count_for(0, hz, 2), 2);
        assert_eq!(pit_count_for(10 * hz, hz, 1), 0xFFFF);
        assert_eq!(pit_count_for(5, 0, 1), 1);
    }

    #[test]
    fn apic_counts_are_clamped() {
        assert_eq!(apic_count_for(1000, 1, 1), 1000);
        assert_eq!(apic_count_for(1000, 1, 4), 250);
        assert_eq!(apic_count_for(0, 1, 1), 1);
        assert_eq!(apic_count_for(u64::MAX, 1, 1), u32::MAX);
        assert_eq!(apic_count_for(1000, 1, 0), 1);
    }

    #[test]
    fn bcd() {
        assert_eq!(bcd_to_binary(0x59), 59);
        assert_eq!(bcd_to_binary(0x00), 0);
        assert_eq!(bcd_to_binary(0x99), 99);
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(days_since_epoch(1970, 1, 1), Some(0));
        assert_eq!(days_since_epoch(1970, 3, 1), Some(59));
        assert_eq!(days_since_epoch(2000, 3, 1), Some(11_017));
        assert_eq!(unix_seconds(2000, 1, 1, 0, 0, 0), Some(946_684_800));
        assert_eq!(unix_seconds(2024, 2, 29, 12, 34, 56), Some(1_709_210_096));
        assert_eq!(unix_seconds(2038, 1, 19, 3, 14, 8), Some(1 << 31));
        assert_eq!(days_since_epoch(1969, 12, 31), None);
        assert_eq!(days_since_epoch(2020, 13, 1), None);
        assert_eq!(unix_seconds(2020, 1, 1, 24, 0, 0), None);
    }

    #[test]
    fn days_advance_by_one_per_day_across_years() {
        let mut prev = days_since_epoch(1970, 1, 1).unwrap();
        for year in 1970..2101u32 {
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let lengths = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, &len) in lengths.iter().enumerate() {
                for d in 1..=len {
                    if (year, m, d) == (1970, 0, 1) {
                        continue;
                    }
                    let days = days_since_epoch(year, m as u32 + 1, d).unwrap();
                    assert_eq!(days, prev + 1, "{year}-{}-{d}", m + 1);
                    prev = days;
                }
            }
        }
    }
}
