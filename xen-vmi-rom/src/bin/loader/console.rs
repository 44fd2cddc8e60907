//! Console output of the PV image: Xen's console_io (dom0 writes reach the
//! serial line directly).

use core::fmt::{self, Write};

use xen_abi::hypercall::Hypervisor;

use crate::xen;

/// A line-buffered writer onto CONSOLEIO_write.
pub struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    pub fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            // Nothing useful can be done if the console itself fails.
            let _ = xen::hypervisor().console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    /// Print one line: the text followed by a newline, written as one
    /// console_io call where it fits.
    pub fn line(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.write_fmt(args);
        let _ = self.write_str("\n");
        self.flush();
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}
