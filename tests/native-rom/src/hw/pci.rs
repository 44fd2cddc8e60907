//! PCI configuration space through configuration mechanism #1 (ports
//! 0xCF8 address / 0xCFC data), PCI Local Bus specification 3.0 §3.2.2.3.2.

use super::port::{in32, out32};

/// CONFIG_ADDRESS.
pub const CONFIG_ADDRESS: u16 = 0xCF8;
/// CONFIG_DATA.
pub const CONFIG_DATA: u16 = 0xCFC;

/// The CONFIG_ADDRESS value for a register of bus/device/function.
pub const fn config_address(bus: u8, device: u8, function: u8, offset: u8) -> u32 {
    0x8000_0000
        | (bus as u32) << 16
        | ((device as u32) & 0x1F) << 11
        | ((function as u32) & 7) << 8
        | (offset as u32 & 0xFC)
}

/// Reads the dword at `offset` (rounded down to 4) of a function's
/// configuration space.
///
/// # Safety
/// Must not interleave with another user of 0xCF8/0xCFC.
pub unsafe fn read32(bus: u8, device: u8, function: u8, offset: u8) -> u32 {
    // SAFETY: per the caller.
    unsafe {
        out32(
            CONFIG_ADDRESS,
            config_address(bus, device, function, offset),
        );
        in32(CONFIG_DATA)
    }
}

/// Writes the dword at `offset`.
///
/// # Safety
/// As [`read32`]; configuration writes reprogram devices.
pub unsafe fn write32(bus: u8, device: u8, function: u8, offset: u8, value: u32) {
    // SAFETY: per the caller.
    unsafe {
        out32(
            CONFIG_ADDRESS,
            config_address(bus, device, function, offset),
        );
        out32(CONFIG_DATA, value);
    }
}
