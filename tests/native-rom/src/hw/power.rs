//! Turning the machine off and resetting it.
//!
//! Power-off: ACPI S5 through the PIIX4 power-management function (the PC
//! chipset QEMU's `pc` machine emulates): PM1a_CNT at PMBASE+4 with SLP_EN
//! and SLP_TYP. A kernel would take SLP_TYP from the DSDT's `_S5` object;
//! QEMU's DSDT declares `_S5` = 0, which is fixed here (no AML interpreter
//! in a ROM). Reset: the reset control register 0xCF9 (PIIX3/PIIX4), then
//! the keyboard controller's reset line, then a triple fault.

use core::arch::asm;

use super::pci;
use super::port::{out16, out8};

/// PIIX4 power management function: bus 0, device 1, function 3 on the
/// `pc` machine.
const PIIX4_PM: (u8, u8, u8) = (0, 1, 3);
/// Vendor:device of the PIIX4 PM function (Intel 82371AB, 0x8086:0x7113).
const PIIX4_PM_ID: u32 = 0x7113_8086;
/// PMBA: PM I/O base register (bits 15-6).
const PMBA: u8 = 0x40;
/// PMREGMISC: bit 0 enables the PM I/O space.
const PMREGMISC: u8 = 0x80;
/// PM1a_CNT offset in the PM I/O space.
const PM1_CNT: u16 = 4;
/// PM1_CNT.SLP_EN.
const SLP_EN: u16 = 1 << 13;
/// SLP_TYP for S5 on QEMU's PIIX4 (its DSDT's `_S5`).
const SLP_TYP_S5: u16 = 0;

/// The reset control register.
const RESET_CONTROL: u16 = 0xCF9;
/// Reset control: full reset (bit 2 = do it, bit 1 = hard reset).
const RESET_HARD: u8 = 0x06;
/// Reset control: soft reset (INIT, bit 2 only).
const RESET_SOFT: u8 = 0x04;
/// Keyboard controller command port.
const KBC_COMMAND: u16 = 0x64;
/// Keyboard controller command: pulse the reset line.
const KBC_PULSE_RESET: u8 = 0xFE;

/// Requests ACPI S5 (power off). Returns only if the chipset has no
/// enabled PIIX4 PM function or the request did not take.
///
/// # Safety
/// Ends the machine.
pub unsafe fn acpi_power_off() {
    let (bus, dev, func) = PIIX4_PM;
    // SAFETY: per the caller; configuration reads of 00:01.3 are harmless.
    unsafe {
        if pci::read32(bus, dev, func, 0) != PIIX4_PM_ID {
            return;
        }
        if pci::read32(bus, dev, func, PMREGMISC) & 1 == 0 {
            return;
        }
        let pm_base = (pci::read32(bus, dev, func, PMBA) & 0xFFC0) as u16;
        if pm_base == 0 {
            return;
        }
        out16(pm_base + PM1_CNT, SLP_EN | (SLP_TYP_S5 << 10));
    }
}

/// Resets the machine: `hard` = full reset through 0xCF9, otherwise a soft
/// (INIT) reset through 0xCF9; then the keyboard controller; then a triple
/// fault (an empty IDT and an exception). Never returns.
///
/// # Safety
/// Ends the running system.
pub unsafe fn reset(hard: bool) -> ! {
    // SAFETY: per the caller.
    unsafe {
        out8(RESET_CONTROL, if hard { RESET_HARD } else { RESET_SOFT });
        for _ in 0..1000 {
            super::port::io_delay();
        }
        out8(KBC_COMMAND, KBC_PULSE_RESET);
        for _ in 0..1000 {
            super::port::io_delay();
        }
        let empty = super::cpu::DescriptorTablePointer { limit: 0, base: 0 };
        super::cpu::lidt(&empty);
        asm!("int3", options(noreturn));
    }
}
