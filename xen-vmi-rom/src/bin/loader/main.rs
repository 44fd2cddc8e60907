//! xen-vmi-rom: the Xen PV image that carries the VMI ROM.
//!
//! Today the image boots on Xen as a 32-bit PAE PV guest and checks the
//! start-of-day state Xen hands it (the seed of the loader); the ROM and the
//! loading of a VMI kernel build on it.
#![no_std]
#![no_main]

mod console;
mod entry;
mod selftest;
mod xen;

use core::panic::PanicInfo;

use xen_abi::hypercall::Hypervisor;
use xen_abi::sched::{SHUTDOWN_crash, SHUTDOWN_reboot};
use xen_abi::xen::StartInfo;

use crate::console::Console;

/// Called by the entry code with start_info's virtual address.
extern "C" fn pv_main(start_info: u32) -> ! {
    let mut con = Console::new();
    // SAFETY: Xen passes the address of the mapped start_info page in %esi,
    // and nothing else writes it while the image runs.
    let si = unsafe { &*(start_info as *const StartInfo) };
    let verdict = selftest::run_all(&mut con, si);
    con.line(format_args!("Test result: {verdict}"));
    // A dom0 that asks for reboot makes Xen reset the machine, which with
    // QEMU's -no-reboot ends the run.
    shutdown(SHUTDOWN_reboot)
}

fn shutdown(reason: u32) -> ! {
    loop {
        let _ = xen::hypervisor().sched_shutdown(reason);
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let mut con = Console::new();
    con.line(format_args!("xen-vmi-rom: panic: {info}"));
    shutdown(SHUTDOWN_crash)
}

/// The VMI ROM this image carries (out/vmi-rom.bin, finalised and checked by
/// tools/build-images); the loader copies it to kernel-physical 0xC0000.
pub static VMI_ROM: &[u8] = include_bytes!(env!("VMI_ROM_BIN"));
