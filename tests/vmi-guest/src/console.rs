//! The console: a 16550 UART at COM1 (0x3F8), driven with plain port I/O as
//! a Linux VMI kernel drives it, and the project's output protocol lines.

use core::fmt::{self, Write};

use native_rom::hw::port::{in8, out8};

/// COM1 base port.
pub const COM1: u16 = 0x3F8;
/// Transmit holding / receive buffer (DLAB 0).
pub const UART_DATA: u16 = 0;
/// Interrupt enable (DLAB 0).
pub const UART_IER: u16 = 1;
/// FIFO control.
pub const UART_FCR: u16 = 2;
/// Line control.
pub const UART_LCR: u16 = 3;
/// Modem control.
pub const UART_MCR: u16 = 4;
/// Line status.
pub const UART_LSR: u16 = 5;
/// Scratch register.
pub const UART_SCR: u16 = 7;
/// LSR: data ready.
pub const LSR_DATA_READY: u8 = 0x01;
/// LSR: transmit holding register empty.
pub const LSR_THR_EMPTY: u8 = 0x20;
/// MCR: DTR | RTS | OUT2.
pub const MCR_NORMAL: u8 = 0x0B;
/// MCR: loopback mode.
pub const MCR_LOOPBACK: u8 = 0x10;

/// Programs COM1 for 115200 8N1, FIFOs on, no UART interrupts.
pub fn init() {
    // SAFETY: COM1 belongs to the console; programming its line settings
    // has no effect outside the UART.
    unsafe {
        out8(COM1 + UART_IER, 0);
        out8(COM1 + UART_LCR, 0x80);
        out8(COM1 + UART_DATA, 1);
        out8(COM1 + UART_IER, 0);
        out8(COM1 + UART_LCR, 0x03);
        out8(COM1 + UART_FCR, 0xC7);
        out8(COM1 + UART_MCR, MCR_NORMAL);
    }
}

fn put_byte(b: u8) {
    // SAFETY: writing COM1's data register sends one byte; the LSR poll
    // only reads status.
    unsafe {
        let mut spins = 0u32;
        while in8(COM1 + UART_LSR) & LSR_THR_EMPTY == 0 && spins < 1_000_000 {
            spins += 1;
        }
        out8(COM1 + UART_DATA, b);
    }
}

/// Writer onto the UART (LF becomes CR LF).
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put_byte(b'\r');
            }
            put_byte(b);
        }
        Ok(())
    }
}

/// Prints formatted text.
pub fn print(args: fmt::Arguments<'_>) {
    let _ = Console.write_fmt(args);
}

/// `println!` onto the console.
macro_rules! kprintln {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => {{
        $crate::console::print(format_args!($($arg)*));
        $crate::console::print(format_args!("\n"));
    }};
}

pub(crate) use kprintln;

/// A short text kept without allocation (case details, fault reports);
/// what does not fit is cut, marked with "...". 200 bytes: every case's
/// outcome carries one.
pub type Text = bench_core::TextBuf<200>;
