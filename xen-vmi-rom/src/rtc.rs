//! The MC146818 real-time clock and CMOS (ports 0x70/0x71), as far as a
//! kernel reads the time from it: the date and time registers in BCD,
//! 24-hour mode, status registers A-D, the century byte (0x32), and the
//! rest of the 128 bytes as plain RAM. The time is the Xen wall clock at
//! the moment of the read, so an update is never in progress (UIP clear)
//! and no alarm or periodic interrupt is modelled.

/// Index register: bit 7 is the NMI mask, bits 0-6 the register.
pub const INDEX_PORT: u16 = 0x70;
/// Data register.
pub const DATA_PORT: u16 = 0x71;

/// Register numbers (MC146818 data sheet).
pub const REG_SECONDS: u8 = 0x00;
pub const REG_MINUTES: u8 = 0x02;
pub const REG_HOURS: u8 = 0x04;
pub const REG_WEEKDAY: u8 = 0x06;
pub const REG_DAY: u8 = 0x07;
pub const REG_MONTH: u8 = 0x08;
pub const REG_YEAR: u8 = 0x09;
pub const REG_A: u8 = 0x0A;
pub const REG_B: u8 = 0x0B;
pub const REG_C: u8 = 0x0C;
pub const REG_D: u8 = 0x0D;
pub const REG_CENTURY: u8 = 0x32;

/// Status A as a BIOS leaves it: 32.768 kHz time base, 1024 Hz rate, UIP 0.
const STATUS_A: u8 = 0x26;
/// Status B: 24-hour mode, BCD, no interrupts enabled.
const STATUS_B_24H: u8 = 0x02;
/// Status D: the battery is good (valid RAM and time).
const STATUS_D_VRT: u8 = 0x80;

/// The clock's state: the index latch and the CMOS bytes.
#[derive(Debug, Clone)]
pub struct Rtc {
    index: u8,
    cmos: [u8; 128],
}

impl Default for Rtc {
    fn default() -> Self {
        Self::new()
    }
}

/// A civil date and time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 1 = Sunday ... 7 = Saturday, as the RTC counts.
    pub weekday: u32,
}

/// Seconds since 1970-01-01 00:00 UTC to a civil date (proleptic Gregorian,
/// the days-from-civil algorithm run backwards).
pub const fn date_of(unix_seconds: u64) -> DateTime {
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    DateTime {
        year: year as u32,
        month: month as u32,
        day: day as u32,
        hour: (secs / 3600) as u32,
        minute: (secs / 60 % 60) as u32,
        second: (secs % 60) as u32,
        // 1970-01-01 was a Thursday (5 when Sunday is 1).
        weekday: ((days + 4) % 7 + 1) as u32,
    }
}

const fn bcd(v: u32) -> u8 {
    (((v / 10) % 10) << 4 | (v % 10)) as u8
}

impl Rtc {
    pub const fn new() -> Rtc {
        let mut cmos = [0u8; 128];
        cmos[REG_A as usize] = STATUS_A;
        cmos[REG_B as usize] = STATUS_B_24H;
        cmos[REG_D as usize] = STATUS_D_VRT;
        Rtc { index: 0, cmos }
    }

    /// A write to 0x70 (index; bit 7, the NMI mask, is ignored) or 0x71.
    pub fn write(&mut self, port: u16, value: u8) {
        if port == INDEX_PORT {
            self.index = value & 0x7F;
            return;
        }
        match self.index {
            // The clock registers follow the wall clock; C and D are
            // read-only; A's UIP bit is read-only.
            REG_SECONDS..=REG_YEAR | REG_C | REG_D | REG_CENTURY => {}
            REG_A => self.cmos[REG_A as usize] = value & 0x7F,
            i => self.cmos[i as usize] = value,
        }
    }

    /// A read of 0x71 (0x70 reads back as all-ones, as on most chipsets),
    /// with the wall clock at `unix_seconds`.
    pub fn read(&mut self, port: u16, unix_seconds: u64) -> u8 {
        if port == INDEX_PORT {
            return 0xFF;
        }
        let t = date_of(unix_seconds);
        let binary = self.cmos[REG_B as usize] & 0x04 != 0;
        let enc = |v: u32| if binary { v as u8 } else { bcd(v) };
        match self.index {
            REG_SECONDS => enc(t.second),
            REG_MINUTES => enc(t.minute),
            REG_HOURS => enc(t.hour),
            REG_WEEKDAY => enc(t.weekday),
            REG_DAY => enc(t.day),
            REG_MONTH => enc(t.month),
            REG_YEAR => enc(t.year % 100),
            REG_CENTURY => enc(t.year / 100),
            // Reading C clears the (never set) interrupt flags.
            REG_C => 0,
            i => self.cmos[i as usize],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(
            date_of(0),
            DateTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                weekday: 5
            }
        );
        // 2000-02-29 12:34:56 UTC, a Tuesday.
        assert_eq!(
            date_of(951_827_696),
            DateTime {
                year: 2000,
                month: 2,
                day: 29,
                hour: 12,
                minute: 34,
                second: 56,
                weekday: 3
            }
        );
        // 2026-11-25 00:00:00 UTC, a Wednesday.
        let d = date_of(1_795_564_800);
        assert_eq!((d.year, d.month, d.day, d.weekday), (2026, 11, 25, 4));
    }

    proptest::proptest! {
        #[test]
        fn dates_are_consecutive(s in 0u64..4_102_444_800) {
            let a = date_of(s);
            let b = date_of(s + 86_400);
            proptest::prop_assert!(a.month >= 1 && a.month <= 12 && a.day >= 1 && a.day <= 31);
            proptest::prop_assert_eq!(b.weekday, a.weekday % 7 + 1);
            let next_day = (b.year, b.month, b.day) > (a.year, a.month, a.day);
            proptest::prop_assert!(next_day);
        }
    }

    #[test]
    fn registers_in_bcd_and_binary() {
        let mut rtc = Rtc::new();
        let t = 951_827_696; // 2000-02-29 12:34:56
        let rd = |rtc: &mut Rtc, reg: u8| {
            rtc.write(INDEX_PORT, reg | 0x80);
            rtc.read(DATA_PORT, t)
        };
        assert_eq!(rd(&mut rtc, REG_SECONDS), 0x56);
        assert_eq!(rd(&mut rtc, REG_HOURS), 0x12);
        assert_eq!(rd(&mut rtc, REG_MONTH), 0x02);
        assert_eq!(rd(&mut rtc, REG_YEAR), 0x00);
        assert_eq!(rd(&mut rtc, REG_CENTURY), 0x20);
        assert_eq!(rd(&mut rtc, REG_A) & 0x80, 0, "never an update in progress");
        assert_eq!(rd(&mut rtc, REG_D), 0x80);
        rtc.write(INDEX_PORT, REG_B);
        rtc.write(DATA_PORT, STATUS_B_24H | 0x04);
        assert_eq!(rd(&mut rtc, REG_SECONDS), 56);
        // Plain CMOS RAM keeps what is written; the clock does not.
        rtc.write(INDEX_PORT, 0x40);
        rtc.write(DATA_PORT, 0xA5);
        assert_eq!(rd(&mut rtc, 0x40), 0xA5);
        rtc.write(INDEX_PORT, REG_SECONDS);
        rtc.write(DATA_PORT, 0x11);
        assert_eq!(rd(&mut rtc, REG_SECONDS), 56);
    }
}
