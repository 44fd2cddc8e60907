//! The ROM's console: its diagnostics (bytes and hex numbers, with no
//! formatting machinery: core::fmt keeps pointers in read-only data, which a
//! position-independent ROM cannot carry) and the kernel's serial output.
//!
//! Where the bytes go depends on the domain (start_info.flags, kept in the
//! ROM state): dom0 writes Xen's console with CONSOLEIO_write (Xen's serial
//! line); a domU writes its console ring (console.domU, mapped by the loader
//! at CONSOLE_RING_VA), because a non-debug Xen drops a domU's console_io
//! writes. The ring logic is xen_vmi_rom::console_ring.

use xen_abi::hypercall::Hypervisor;
use xen_abi::xen::SIF_INITDOMAIN;
use xen_vmi_rom::console_ring::{self, Backend, MappedRing};
use xen_vmi_rom::layout::CONSOLE_RING_VA;
use xen_vmi_rom::rom_state::ROM_STATE_MAGIC;

use crate::xen::hypervisor;

/// Waits in a row, without the backend making room, before output is
/// dropped (each a SCHEDOP_yield: xenconsoled gets the CPU meanwhile).
const RING_MAX_WAITS: u32 = 100_000;

/// The domU console ring's event channel, when this domain is a domU.
fn ring_port() -> Option<u32> {
    let st = crate::runtime::rom_state();
    (st.magic == ROM_STATE_MAGIC && st.start_info_flags & SIF_INITDOMAIN == 0)
        .then_some(st.console_evtchn)
}

/// xenconsoled, as the ring writer sees it.
struct Xenconsoled {
    port: u32,
}

impl Backend for Xenconsoled {
    fn notify(&mut self) {
        // Nothing better can be done if the notification fails.
        let _ = hypervisor().evtchn_send(self.port);
    }

    fn wait(&mut self, attempt: u32) -> bool {
        let _ = hypervisor().sched_yield();
        attempt < RING_MAX_WAITS
    }
}

fn ring() -> MappedRing {
    // SAFETY: the loader maps the console page at CONSOLE_RING_VA in the ROM
    // area of every address space when the domain is a domU.
    unsafe { MappedRing::new(CONSOLE_RING_VA as usize) }
}

/// Writes bytes to this domain's console.
#[cfg_attr(feature = "image", optimize(size))]
pub fn write(bytes: &[u8]) {
    match ring_port() {
        // Nothing can be done if the console itself fails.
        Some(port) => {
            let _ = console_ring::write(&mut ring(), &mut Xenconsoled { port }, bytes);
            if bytes.ends_with(b"\n") {
                // Let dom0 read the line now, as console_io would have
                // written it: it stays live, and a crash Xen reports later
                // cannot take it down with the domain.
                let _ = console_ring::drain(&mut ring(), &mut Xenconsoled { port });
            }
        }
        None => {
            let _ = hypervisor().console_write(bytes);
        }
    }
}

/// Waits until xenconsoled has read the whole ring (a domU's last lines
/// before it shuts down or crashes); nothing to do for dom0.
#[cfg_attr(feature = "image", optimize(size))]
pub fn drain() {
    if let Some(port) = ring_port() {
        let _ = console_ring::drain(&mut ring(), &mut Xenconsoled { port });
    }
}

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

    /// A line of the ROM's own: "xen-vmi-rom: " then `s`. Out of line: the
    /// prefix and the line's set-up are not repeated at every report.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn rom(s: &[u8]) -> Self {
        Self::new().text(b"xen-vmi-rom: ").text(s)
    }

    #[cfg_attr(feature = "image", optimize(size))]
    pub fn text(mut self, s: &[u8]) -> Self {
        for &b in s {
            if self.len < self.buf.len() - 1 {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        self
    }

    #[cfg_attr(feature = "image", optimize(size))]
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
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn hex2(self, v: u8) -> Self {
        let digit = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
        self.text(&[digit(v >> 4), digit(v & 0xF)])
    }

    #[cfg_attr(feature = "image", optimize(size))]
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
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn print(mut self) {
        self.buf[self.len] = b'\n';
        self.len += 1;
        write(&self.buf[..self.len]);
    }
}
