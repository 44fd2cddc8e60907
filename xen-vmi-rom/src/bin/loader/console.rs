//! Console output of the PV image. dom0 writes Xen's console_io (straight
//! to the serial line); a domU writes its console ring (start_info
//! console.domU), because a non-debug Xen drops a domU's console_io
//! writes. [`init`] decides which, once, from start_info.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use xen_abi::arch_x86_32::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW};
use xen_abi::hypercall::Hypervisor;
use xen_abi::xen::{SharedInfo, StartInfo, SIF_INITDOMAIN, UVMF_INVLPG};
use xen_vmi_rom::console_ring::{self, Backend, MappedRing};

use crate::xen;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The virtual page the console ring is mapped over (its own frame is
/// given up).
static mut RING_PAGE: Page = Page([0; 4096]);

/// The virtual page shared_info is mapped over, to mask the console's port.
static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

/// The ring's event channel + 1 once the ring is mapped; 0: console_io.
static RING_PORT_PLUS_ONE: AtomicU32 = AtomicU32::new(0);

/// Waits in a row, without xenconsoled making room, before output is
/// dropped (each a SCHEDOP_yield).
const RING_MAX_WAITS: u32 = 100_000;

/// Chooses the console: for a domU, maps its console ring.
pub fn init(si: &StartInfo) {
    if si.flags & SIF_INITDOMAIN != 0 {
        return;
    }
    let va = (&raw const RING_PAGE) as u32;
    let pte =
        (u64::from(si.console.mfn) << 12) | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
    // SAFETY: the page remapped is the image's own, used only for the ring.
    if unsafe { xen::hypervisor().update_va_mapping(va, pte, UVMF_INVLPG) }.is_err() {
        return;
    }
    let shared_va = (&raw const SHARED_INFO_PAGE) as u32;
    let pte = u64::from(si.shared_info) | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
    // SAFETY: the page remapped is the image's own, used only for shared_info.
    if unsafe { xen::hypervisor().update_va_mapping(shared_va, pte, UVMF_INVLPG) }.is_ok() {
        // SAFETY: mapped just above, for the image's life.
        let shared = unsafe { &*(shared_va as *const SharedInfo) };
        silence_ring_ports(shared, &[si.console.evtchn, si.store_evtchn]);
    }
    RING_PORT_PLUS_ONE.store(si.console.evtchn + 1, Ordering::Relaxed);
}

/// A word of the shared_info page, as an atomic.
fn shared_word(word: &u32) -> &AtomicU32 {
    // SAFETY: words of the mapped shared_info page, which Xen and the guest
    // change with atomic operations.
    unsafe { AtomicU32::from_ptr((word as *const u32).cast_mut()) }
}

/// Masks the event channels of the domU's console and xenstore rings and
/// drops what is pending on them. Nothing in the image or the ROM waits for
/// these events (the console ring is polled through out_cons; xenstore is
/// not used), but they are unmasked at the start of a domU, and
/// xenconsoled's and xenstored's notifications (xenstored sends one when
/// the domain is introduced) would otherwise reach the kernel as upcalls
/// with no interrupt behind them. The only ports bound this early are
/// these two, so once they are quiet nothing is pending.
fn silence_ring_ports(shared: &SharedInfo, ports: &[u32]) {
    for &port in ports {
        let (word, bit) = ((port / 32) as usize, 1u32 << (port % 32));
        shared_word(&shared.evtchn_mask[word]).fetch_or(bit, Ordering::SeqCst);
        shared_word(&shared.evtchn_pending[word]).fetch_and(!bit, Ordering::SeqCst);
    }
    let still_pending = (0..32).any(|w| {
        shared_word(&shared.evtchn_pending[w]).load(Ordering::SeqCst)
            & !shared_word(&shared.evtchn_mask[w]).load(Ordering::SeqCst)
            != 0
    });
    if !still_pending {
        let vcpu = &shared.vcpu_info[0];
        shared_word(&vcpu.evtchn_pending_sel).store(0, Ordering::SeqCst);
        // SAFETY: evtchn_upcall_pending is a byte of the mapped page.
        unsafe { AtomicU8::from_ptr((&raw const vcpu.evtchn_upcall_pending).cast_mut()) }
            .store(0, Ordering::SeqCst);
    }
}

struct Xenconsoled {
    port: u32,
}

impl Backend for Xenconsoled {
    fn notify(&mut self) {
        let _ = xen::hypervisor().evtchn_send(self.port);
    }

    fn wait(&mut self, attempt: u32) -> bool {
        let _ = xen::hypervisor().sched_yield();
        attempt < RING_MAX_WAITS
    }
}

fn ring() -> Option<(MappedRing, Xenconsoled)> {
    let port = RING_PORT_PLUS_ONE.load(Ordering::Relaxed).checked_sub(1)?;
    // SAFETY: init mapped the console page at RING_PAGE before it set the
    // port, and the mapping stays for the image's life.
    let page = unsafe { MappedRing::new((&raw const RING_PAGE) as usize) };
    Some((page, Xenconsoled { port }))
}

/// Writes bytes to this domain's console.
pub fn write_bytes(bytes: &[u8]) {
    // Nothing useful can be done if the console itself fails.
    match ring() {
        Some((mut page, mut backend)) => {
            let _ = console_ring::write(&mut page, &mut backend, bytes);
        }
        None => {
            let _ = xen::hypervisor().console_write(bytes);
        }
    }
}

/// Waits until xenconsoled has read everything (before a shutdown).
pub fn drain() {
    if let Some((mut page, mut backend)) = ring() {
        let _ = console_ring::drain(&mut page, &mut backend);
    }
}

/// Whether the console is a domU's ring.
pub fn is_ring() -> bool {
    ring().is_some()
}

/// A line-buffered console writer.
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
            write_bytes(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    /// Print one line: the text followed by a newline, written at once
    /// where it fits.
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
