//! The 8254 programmable interval timer: channel 0 (wired to IRQ 0) for
//! alarms when there is no HPET, channel 2 (gated through port 0x61) for
//! measuring the TSC.
//!
//! Port and command layout: the Intel 8254 data sheet (ports 0x40-0x43,
//! control word SC1 SC0 RW1 RW0 M2 M1 M0 BCD; read-back command 11xxxxxx).

use super::port::{in8, out8};
use crate::hw::cpu::rdtsc;
use crate::timebase::{
    rate_from_pit_readings, CountReading, CALIBRATION_PIT_TICKS, CALIBRATION_READINGS,
};

const CHANNEL0: u16 = 0x40;
const CHANNEL2: u16 = 0x42;
const COMMAND: u16 = 0x43;
/// System control port B: bit 0 = channel 2 gate, bit 1 = speaker data.
const PORT_B: u16 = 0x61;
const PORT_B_GATE2: u8 = 0x01;
const PORT_B_SPEAKER: u8 = 0x02;

/// Control word: channel 0, low byte then high byte, binary, mode in bits 3-1.
const CH0_LOHI: u8 = 0x30;
/// Control word: channel 2, low byte then high byte, mode 0, binary.
const CH2_LOHI_MODE0: u8 = 0xB0;
/// Control word: latch channel 2's count.
const CH2_LATCH: u8 = 0x80;
/// Read-back command: latch the status (not the count) of channel 0.
const READBACK_STATUS_CH0: u8 = 0xE2;

/// Mode 0: interrupt on terminal count (one-shot).
pub const MODE_ONESHOT: u8 = 0;
/// Mode 1: hardware-retriggerable one-shot; channel 0's gate never
/// triggers, so a channel left in mode 1 is idle.
pub const MODE_IDLE: u8 = 1;
/// Mode 2: rate generator (periodic).
pub const MODE_RATE: u8 = 2;
/// Mode 3: square wave (periodic; what the BIOS leaves running at 18.2 Hz).
pub const MODE_SQUARE: u8 = 3;

/// Latches channel 2's count and reads it (low byte, high byte).
///
/// # Safety
/// Channel 2 must be programmed for low/high byte access.
unsafe fn latch_channel2() -> u16 {
    // SAFETY: per the caller.
    unsafe {
        out8(COMMAND, CH2_LATCH);
        let lo = in8(CHANNEL2);
        let hi = in8(CHANNEL2);
        u16::from_le_bytes([lo, hi])
    }
}

/// `read` around a latch of channel 2's count.
///
/// # Safety
/// As [`latch_channel2`].
unsafe fn reading(read: &mut impl FnMut() -> u64) -> CountReading {
    let before = read();
    // SAFETY: per the caller.
    let count = unsafe { latch_channel2() };
    let after = read();
    CountReading {
        before,
        after,
        count: u32::from(count),
    }
}

/// The rate of a counter (ticks per second) against PIT channel 2: a few
/// readings of `read` around latched counts at the start and after
/// [`CALIBRATION_PIT_TICKS`], the tightest of each group used (see
/// [`crate::timebase::CALIBRATION_READINGS`]). The speaker stays off; port
/// 0x61 is restored.
///
/// # Safety
/// Takes channel 2 and the speaker gate for about 20 ms.
pub unsafe fn calibrate_with(mut read: impl FnMut() -> u64) -> u64 {
    // SAFETY: per the caller we own channel 2 and the port 0x61 bits.
    unsafe {
        let saved = in8(PORT_B);
        out8(PORT_B, (saved & !PORT_B_SPEAKER) | PORT_B_GATE2);
        out8(COMMAND, CH2_LOHI_MODE0);
        out8(CHANNEL2, 0xFF);
        out8(CHANNEL2, 0xFF);
        let mut early = [CountReading::default(); CALIBRATION_READINGS];
        for r in early.iter_mut() {
            *r = reading(&mut read);
        }
        let start = early[0].count as u16;
        while start.wrapping_sub(latch_channel2()) < CALIBRATION_PIT_TICKS {}
        let mut late = [CountReading::default(); CALIBRATION_READINGS];
        for r in late.iter_mut() {
            *r = reading(&mut read);
        }
        out8(PORT_B, saved);
        rate_from_pit_readings(&early, &late)
    }
}

/// The TSC rate in Hz, measured against PIT channel 2.
///
/// # Safety
/// As [`calibrate_with`].
pub unsafe fn calibrate_tsc() -> u64 {
    // SAFETY: per the caller.
    unsafe { calibrate_with(rdtsc) }
}

/// Starts channel 0 in `mode` with `count` (the count is loaded at once,
/// which restarts the channel).
///
/// # Safety
/// Channel 0 drives IRQ 0: the interrupt controller and IDT must be ready
/// for what this schedules.
pub unsafe fn start_channel0(mode: u8, count: u16) {
    // SAFETY: per the caller.
    unsafe {
        out8(COMMAND, CH0_LOHI | ((mode & 7) << 1));
        out8(CHANNEL0, count as u8);
        out8(CHANNEL0, (count >> 8) as u8);
    }
}

/// Stops channel 0 without another rising edge on IRQ 0: a mode-1 control
/// word with no count. Mode 1 only starts on a gate edge, which channel 0
/// (gate tied high) never sees; QEMU's 8254 lets the old count run out and
/// then finds no further transition, so no interrupt follows.
///
/// # Safety
/// As [`start_channel0`].
pub unsafe fn stop_channel0() {
    // SAFETY: per the caller.
    unsafe { out8(COMMAND, CH0_LOHI | (MODE_IDLE << 1)) };
}

/// The latched status byte of channel 0: bit 7 = output, bits 3-1 = mode.
///
/// # Safety
/// Must not interleave with another reader of channel 0.
pub unsafe fn channel0_status() -> u8 {
    // SAFETY: per the caller.
    unsafe {
        out8(COMMAND, READBACK_STATUS_CH0);
        in8(CHANNEL0)
    }
}

/// Whether a channel 0 status shows a pending alarm: a one-shot whose
/// output is still low (terminal count not reached) or a periodic mode.
pub const fn status_is_armed(status: u8) -> bool {
    let out_high = status & 0x80 != 0;
    match (status >> 1) & 7 {
        0 => !out_high,
        2 | 3 | 6 | 7 => true,
        _ => false,
    }
}
