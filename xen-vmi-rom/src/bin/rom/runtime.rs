//! The ROM's run-time state, at a fixed address in the private area
//! (ROM_STATE_VA + ROM_RUNTIME_OFFSET): the device models and the virtual
//! CPU the kernel sees. The image itself is read-only.

use core::sync::atomic::AtomicU8;
use xen_abi::time::{read_consistent, VolatileTimeInfo};

use xen_abi::xen::{SharedInfo, VcpuTimeInfo};
use xen_vmi_rom::decode::Width;
use xen_vmi_rom::layout::{ROM_STATE_VA, SHARED_INFO_VA};
use xen_vmi_rom::ports::{IoHost, IsaBus};
use xen_vmi_rom::rom_state::{RomState, POOL_MFNS_OFFSET, ROM_RUNTIME_OFFSET};
use xen_vmi_rom::uart::SerialSink;

use crate::console::Line;
use crate::cpu_calls::{ApicRegs, ControlRegs, Msrs, INITIAL_CR0};
use crate::desc::TableRegs;
use crate::paging::Paging;

/// Bytes of kernel console output collected before they go to Xen.
const CONSOLE_LINE: usize = 256;

pub struct Runtime {
    pub bus: IsaBus,
    /// The kernel's descriptor-table registers and the shadow GDT.
    pub tables: TableRegs,
    /// CR0 and CR4 as the kernel sees them.
    pub cr: ControlRegs,
    /// The virtual local APIC's registers.
    pub apic: ApicRegs,
    /// MSRs kept for the kernel.
    pub msrs: Msrs,
    /// The kernel's paging (its shadows live in the heap, mmu.rs).
    pub paging: Paging,
    console: [u8; CONSOLE_LINE],
    console_len: usize,
}

const _: () = assert!(
    ROM_RUNTIME_OFFSET as usize + core::mem::size_of::<Runtime>() <= POOL_MFNS_OFFSET as usize
);

/// The ROM's state. One vCPU: the kernel's calls and the ROM's handlers
/// run with events masked around any change, so there is no concurrency.
/// (Trap and event handlers do: Xen masks events for them. The VMI calls
/// that change shared state mask events in their entry (entry.rs,
/// `masked_entry`); the others touch nothing an upcall changes.)
pub fn runtime() -> &'static mut Runtime {
    // SAFETY: the loader maps the state pages read-write at ROM_STATE_VA in
    // every address space, and `init` has filled this part in.
    unsafe { &mut *((ROM_STATE_VA + ROM_RUNTIME_OFFSET) as *mut Runtime) }
}

/// Fills the run-time state in place (the bus holds an 8 KiB bitmap, too
/// big to build on the ROM's stack).
pub fn init() {
    let rt = (ROM_STATE_VA + ROM_RUNTIME_OFFSET) as *mut Runtime;
    // SAFETY: the area is mapped, writable and not yet in use; every field
    // is plain data for which all-zero bytes are a valid value, and `reset`
    // then puts the devices in their power-on state.
    unsafe {
        core::ptr::write_bytes(rt.cast::<u8>(), 0, core::mem::size_of::<Runtime>());
        (*rt).bus.reset();
        (*rt).cr.cr0 = INITIAL_CR0;
        (*rt).tables.flat_data = [crate::desc::NO_FLAT_DATA; 2];
        core::ptr::write(&raw mut (*rt).apic, ApicRegs::default());
        core::ptr::write(&raw mut (*rt).paging, Paging::default());
    }
}

pub fn shared_info() -> &'static SharedInfo {
    // SAFETY: the loader maps shared_info at SHARED_INFO_VA in the ROM area.
    unsafe { &*(SHARED_INFO_VA as *const SharedInfo) }
}

pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A consistent copy of vcpu 0's vcpu_time_info (its version protocol).
pub fn time_snapshot() -> VcpuTimeInfo {
    // SAFETY: vcpu 0's time info is in the mapped shared_info page.
    let mut src = unsafe { VolatileTimeInfo::new(&raw const shared_info().vcpu_info[0].time) };
    read_consistent(&mut src)
}

/// Xen system time now (ns since the domain's boot).
pub fn system_time_ns() -> u64 {
    time_snapshot().system_time_at(rdtsc())
}

/// vcpu 0's evtchn_upcall_pending (offset 0) or evtchn_upcall_mask
/// (offset 1; the kernel's interrupt flag, inverted; events.rs reaches it
/// through the event-channel crate).
fn vcpu_flag(offset: usize) -> &'static AtomicU8 {
    let base = (&raw const shared_info().vcpu_info[0]).cast::<u8>();
    // SAFETY: bytes of the mapped shared_info page; Xen and the ROM change
    // them with single-byte stores.
    unsafe { AtomicU8::from_ptr(base.add(offset).cast_mut()) }
}

pub fn upcall_pending() -> &'static AtomicU8 {
    vcpu_flag(0)
}

/// Wall-clock time now (ns since 1970, UTC): Xen's wall clock at system
/// time 0 (shared_info wc_*, read under wc_version) plus system time.
#[cfg_attr(feature = "image", optimize(size))]
pub fn wallclock_ns() -> u64 {
    let si = shared_info();
    loop {
        // SAFETY: fields of the mapped shared_info page Xen updates.
        let (v, sec, sec_hi, nsec, v2) = unsafe {
            let v = core::ptr::read_volatile(&raw const si.wc_version);
            let sec = core::ptr::read_volatile(&raw const si.wc_sec);
            let sec_hi = core::ptr::read_volatile(&raw const si.arch.wc_sec_hi);
            let nsec = core::ptr::read_volatile(&raw const si.wc_nsec);
            (
                v,
                sec,
                sec_hi,
                nsec,
                core::ptr::read_volatile(&raw const si.wc_version),
            )
        };
        if v & 1 == 0 && v == v2 {
            let base =
                ((u64::from(sec_hi) << 32) | u64::from(sec)) * 1_000_000_000 + u64::from(nsec);
            return base + system_time_ns();
        }
    }
}

/// The devices' view of the outside: the console and the clock.
pub struct Host<'a> {
    console: &'a mut [u8; CONSOLE_LINE],
    console_len: &'a mut usize,
}

impl Runtime {
    /// The bus and the host it talks to, borrowed apart.
    pub fn split(&mut self) -> (&mut IsaBus, Host<'_>) {
        (
            &mut self.bus,
            Host {
                console: &mut self.console,
                console_len: &mut self.console_len,
            },
        )
    }
}

impl SerialSink for Host<'_> {
    fn put_byte(&mut self, byte: u8) {
        if *self.console_len == CONSOLE_LINE {
            self.flush();
        }
        self.console[*self.console_len] = byte;
        *self.console_len += 1;
    }

    fn flush(&mut self) {
        if *self.console_len > 0 {
            // Xen's serial line for dom0, the console ring for a domU.
            crate::console::write(&self.console[..*self.console_len]);
            *self.console_len = 0;
        }
    }
}

impl IoHost for Host<'_> {
    fn now_ns(&mut self) -> u64 {
        system_time_ns()
    }

    fn set_irq0_deadline(&mut self, deadline_ns: Option<u64>) {
        crate::time::set_pit_deadline(deadline_ns);
    }

    fn wallclock_seconds(&mut self) -> u64 {
        wallclock_ns() / 1_000_000_000
    }

    // Cold text, out of line: the bus's report stays small.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn report_unclaimed(&mut self, port: u16, width: Width, write: bool) {
        Line::rom(b"the kernel ")
            .text(if write { b"wrote" } else { b"read " })
            .text(b" port ")
            .hex(u32::from(port))
            .text(b" (")
            .dec(width.bytes())
            .text(b" bytes), which nothing decodes: reads give all-ones, writes are dropped")
            .print();
    }
}

/// The loader's hand-over (pool bookkeeping is the ROM's from then on).
pub fn rom_state() -> &'static mut RomState {
    // SAFETY: the loader filled the state at ROM_STATE_VA, mapped read-write
    // in every address space.
    unsafe { &mut *(ROM_STATE_VA as *mut RomState) }
}

/// A machine frame from the pool the loader left, or None when it is empty.
pub fn pool_take() -> Option<u32> {
    let st = rom_state();
    if st.pool_next >= st.pool_free {
        return None;
    }
    let table = (ROM_STATE_VA + POOL_MFNS_OFFSET) as *const u32;
    // SAFETY: the loader wrote `pool_free` entries of the table.
    let mfn = unsafe { core::ptr::read(table.add(st.pool_next as usize)) };
    st.pool_next += 1;
    Some(mfn)
}

/// Gives a frame back to the pool (the frames are interchangeable).
pub fn pool_give(mfn: u32) {
    let st = rom_state();
    if st.pool_next == 0 {
        return;
    }
    st.pool_next -= 1;
    let table = (ROM_STATE_VA + POOL_MFNS_OFFSET) as *mut u32;
    // SAFETY: the slot lies in the loader's table, below pool_free entries.
    unsafe { core::ptr::write(table.add(st.pool_next as usize), mfn) };
}

/// Pushes out what the kernel wrote to COM1 and has not ended with a
/// newline yet (before the ROM blocks, shuts down or crashes the domain).
#[cfg_attr(feature = "image", optimize(size))]
pub fn flush_console() {
    let (_, mut host) = runtime().split();
    host.flush();
    crate::console::drain();
}
