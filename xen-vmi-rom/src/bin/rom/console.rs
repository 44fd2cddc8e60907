//! The ROM's diagnostics: bytes and hex numbers onto Xen's console, with no
//! formatting machinery (core::fmt keeps pointers in read-only data, which a
//! position-independent ROM cannot carry).

use xen_abi::hypercall::Hypervisor;

use crate::xen::hypervisor;

/// A line being assembled on the stack.
pub struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    pub fn new() -> Self {
        Self {
            buf: [0; 160],
            len: 0,
        }
    }

    pub fn text(mut self, s: &[u8]) -> Self {
        for &b in s {
            if self.len < self.buf.len() - 1 {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        self
    }

    pub fn hex(self, v: u32) -> Self {
        let mut digits = [0u8; 10];
        digits[0] = b'0';
        digits[1] = b'x';
        for i in 0..8 {
            let nibble = (v >> (28 - 4 * i)) & 0xF;
            digits[2 + i] = if nibble < 10 {
                b'0' + nibble as u8
            } else {
                b'a' + (nibble - 10) as u8
            };
        }
        self.text(&digits)
    }

    /// One byte as two hex digits.
    pub fn hex2(self, v: u8) -> Self {
        let digit = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
        self.text(&[digit(v >> 4), digit(v & 0xF)])
    }

    pub fn dec(self, mut v: u32) -> Self {
        let mut digits = [0u8; 10];
        let mut n = 0;
        loop {
            digits[9 - n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.text(&digits[10 - n..])
    }

    /// Prints the line (a newline is added).
    pub fn print(mut self) {
        self.buf[self.len] = b'\n';
        self.len += 1;
        // Nothing can be done if the console itself fails.
        let _ = hypervisor().console_write(&self.buf[..self.len]);
    }
}
