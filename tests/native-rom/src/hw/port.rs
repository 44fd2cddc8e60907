//! x86 port I/O instructions.

use core::arch::asm;

/// `in al, dx`.
///
/// # Safety
/// Reading a device port can change the device's state (e.g. acknowledge an
/// interrupt or consume received data).
#[doc(alias = "inb")]
#[inline]
pub unsafe fn in8(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller accepts the device side effects; the instruction
    // touches no memory.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// `in ax, dx`.
///
/// # Safety
/// As [`in8`].
#[doc(alias = "inw")]
#[inline]
pub unsafe fn in16(port: u16) -> u16 {
    let value: u16;
    // SAFETY: as in8.
    unsafe {
        asm!("in ax, dx", out("ax") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// `in eax, dx`.
///
/// # Safety
/// As [`in8`].
#[doc(alias = "inl")]
#[inline]
pub unsafe fn in32(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as in8.
    unsafe {
        asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// `out dx, al`.
///
/// # Safety
/// Writing a device port can do anything the device does (reset the
/// machine, reprogram interrupts, ...).
#[doc(alias = "outb")]
#[inline]
pub unsafe fn out8(port: u16, value: u8) {
    // SAFETY: the caller accepts the device side effects.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// `out dx, ax`.
///
/// # Safety
/// As [`out8`].
#[doc(alias = "outw")]
#[inline]
pub unsafe fn out16(port: u16, value: u16) {
    // SAFETY: as out8.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}

/// `out dx, eax`.
///
/// # Safety
/// As [`out8`].
#[doc(alias = "outl")]
#[inline]
pub unsafe fn out32(port: u16, value: u32) {
    // SAFETY: as out8.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Port 0x80, the POST code port: writing it takes about a microsecond on
/// the ISA bus, the classic I/O delay (Linux's native `io_delay`).
pub const IO_DELAY_PORT: u16 = 0x80;

/// One ISA bus delay: `out 0x80, al`.
pub fn io_delay() {
    // SAFETY: port 0x80 is the POST diagnostic port; writing it has no
    // effect besides the bus cycle.
    unsafe { out8(IO_DELAY_PORT, 0) };
}
