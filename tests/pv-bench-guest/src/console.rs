//! Console output: `console_io` for dom0 (a dom0's writes reach Xen's
//! serial line); for a domU, its console ring (start_info `console.domU`,
//! `io/console.h`) and an event to the backend.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};

use xen_abi::console::{mask_xencons_idx, XenconsInterface, XENCONS_OUT_RING_SIZE};
use xen_abi::hypercall::Hypervisor;
use xen_abi::sched::SHUTDOWN_crash;

use crate::hv;
use bench_core::sync::Global;

/// The domU console ring's address (0: dom0, write with console_io).
static RING: AtomicU32 = AtomicU32::new(0);
static RING_EVTCHN: AtomicU32 = AtomicU32::new(0);

/// Uses the console ring at `ring` (mapped) and its event channel.
pub fn use_ring(ring: u32, evtchn: u32) {
    RING_EVTCHN.store(evtchn, Ordering::SeqCst);
    RING.store(ring, Ordering::SeqCst);
}

struct Line {
    buf: [u8; 512],
    len: usize,
}

static LINE: Global<Line> = Global::new(Line {
    buf: [0; 512],
    len: 0,
});

fn write_out(bytes: &[u8]) {
    let ring = RING.load(Ordering::SeqCst);
    if ring == 0 {
        // Nothing useful can be done if the console itself fails.
        let _ = hv::hypervisor().console_write(bytes);
        return;
    }
    let intf = ring as *mut XenconsInterface;
    for &b in bytes {
        // SAFETY: the ring page is mapped read-write for the kernel's
        // lifetime; the backend only moves out_cons.
        unsafe {
            loop {
                let cons = (&raw const (*intf).out_cons).read_volatile();
                let prod = (&raw const (*intf).out_prod).read_volatile();
                if prod.wrapping_sub(cons) < XENCONS_OUT_RING_SIZE {
                    let slot = mask_xencons_idx(prod, XENCONS_OUT_RING_SIZE);
                    (&raw mut (*intf).output[slot]).write_volatile(b);
                    core::sync::atomic::fence(Ordering::Release);
                    (&raw mut (*intf).out_prod).write_volatile(prod.wrapping_add(1));
                    break;
                }
                let _ = hv::hypervisor().evtchn_send(RING_EVTCHN.load(Ordering::SeqCst));
            }
        }
    }
    let _ = hv::hypervisor().evtchn_send(RING_EVTCHN.load(Ordering::SeqCst));
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            let full = LINE.with(|l| {
                l.buf[l.len] = b;
                l.len += 1;
                b == b'\n' || l.len == l.buf.len()
            });
            if full {
                flush();
            }
        }
        Ok(())
    }
}

/// Writes what is buffered.
pub fn flush() {
    let mut out = [0u8; 512];
    let n = LINE.with(|l| {
        let n = l.len;
        out[..n].copy_from_slice(&l.buf[..n]);
        l.len = 0;
        n
    });
    if n > 0 {
        write_out(&out[..n]);
    }
}

/// Prints formatted text (buffered up to the end of the line).
pub fn print(args: fmt::Arguments<'_>) {
    let _ = Console.write_fmt(args);
}

/// Prints a line.
macro_rules! kprintln {
    ($($arg:tt)*) => {{
        $crate::console::print(format_args!($($arg)*));
        $crate::console::print(format_args!("\n"));
    }};
}
pub(crate) use kprintln;

/// Says what went wrong and crashes the domain.
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    print(args);
    print(format_args!("\n"));
    flush();
    loop {
        let _ = hv::hypervisor().sched_shutdown(SHUTDOWN_crash);
    }
}
