//! The MC146818 CMOS real-time clock (ports 0x70/0x71).

use super::port::{in8, out8};
use crate::timebase::{bcd_to_binary, unix_seconds};

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;
/// Index port bit 7 keeps NMIs masked while the index is written.
const NMI_DISABLE: u8 = 0x80;
const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const STATUS_A: u8 = 0x0A;
const STATUS_B: u8 = 0x0B;
/// Status A: an update cycle is in progress (the time registers may be
/// inconsistent).
const STATUS_A_UIP: u8 = 0x80;
/// Status B: values are binary, not BCD.
const STATUS_B_BINARY: u8 = 0x04;
/// Status B: 24-hour mode.
const STATUS_B_24H: u8 = 0x02;
/// Hours register bit 7 in 12-hour mode: PM.
const HOURS_PM: u8 = 0x80;

/// Reads CMOS register `index`.
///
/// # Safety
/// Must not interleave with another user of ports 0x70/0x71.
pub unsafe fn read_register(index: u8) -> u8 {
    // SAFETY: per the caller.
    unsafe {
        out8(INDEX, NMI_DISABLE | index);
        in8(DATA)
    }
}

/// Writes CMOS register `index`.
///
/// # Safety
/// As [`read_register`]; CMOS bytes hold firmware configuration.
pub unsafe fn write_register(index: u8, value: u8) {
    // SAFETY: per the caller.
    unsafe {
        out8(INDEX, NMI_DISABLE | index);
        out8(DATA, value);
    }
}

/// The RTC's date and time as seconds since 1970-01-01 00:00:00 (the RTC
/// keeps whatever zone the firmware set; QEMU's default is UTC). Reads
/// twice until two reads agree, outside an update cycle. `None` if the
/// registers hold no valid date.
///
/// # Safety
/// As [`read_register`].
pub unsafe fn read_unix_seconds() -> Option<u64> {
    // SAFETY: per the caller.
    let read = || unsafe {
        while read_register(STATUS_A) & STATUS_A_UIP != 0 {}
        [
            read_register(SECONDS),
            read_register(MINUTES),
            read_register(HOURS),
            read_register(DAY),
            read_register(MONTH),
            read_register(YEAR),
        ]
    };
    let mut regs = read();
    let mut tries = 0;
    loop {
        let again = read();
        if again == regs || tries > 10 {
            break;
        }
        regs = again;
        tries += 1;
    }
    // SAFETY: per the caller.
    let status_b = unsafe { read_register(STATUS_B) };
    let decode = |v: u8| {
        if status_b & STATUS_B_BINARY != 0 {
            v
        } else {
            bcd_to_binary(v)
        }
    };
    let [sec, min, hour_raw, day, month, year] = regs;
    let pm = hour_raw & HOURS_PM != 0;
    let mut hour = decode(hour_raw & !HOURS_PM);
    if status_b & STATUS_B_24H == 0 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    // The RTC keeps two year digits; this platform is after 2000.
    let year = 2000 + u32::from(decode(year));
    unix_seconds(
        year,
        u32::from(decode(month)),
        u32::from(decode(day)),
        u32::from(hour),
        u32::from(decode(min)),
        u32::from(decode(sec)),
    )
}
