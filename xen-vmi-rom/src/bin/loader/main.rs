//! xen-vmi-rom: the Xen PV image that carries the VMI ROM.
//!
//! Today the image boots on Xen as a 32-bit PAE PV guest and checks the
//! start-of-day state Xen hands it (the seed of the loader); the ROM and the
//! loading of a VMI kernel build on it.
#![no_std]
#![no_main]

mod boot;
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
    // SAFETY: Xen passes the address of the mapped start_info page in %esi,
    // and nothing else writes it while the image runs.
    let si = unsafe { &*(start_info as *const StartInfo) };
    console::init(si);
    let mut con = Console::new();
    if si.mod_len > 0 {
        boot_kernel(&mut con, si);
    }
    let verdict = selftest::run_all(&mut con, si);
    con.line(format_args!("Test result: {verdict}"));
    // A dom0 that asks for reboot makes Xen reset the machine, which with
    // QEMU's -no-reboot ends the run.
    shutdown(SHUTDOWN_reboot)
}

/// Loads the module as the VMI kernel and hands over to the ROM; on any
/// error, says what was wrong and crashes the domain.
fn boot_kernel(con: &mut Console, si: &StartInfo) -> ! {
    // SAFETY: the builder maps the module at mod_start (a virtual address:
    // the image does not ask for SIF_MOD_START_PFN), mod_len bytes.
    let module =
        unsafe { core::slice::from_raw_parts(si.mod_start as *const u8, si.mod_len as usize) };
    // The kernel gets the command line minus the loader's own options.
    let mut cmdline = [0u8; 1024];
    let mut n = 0;
    let own = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
    for word in own
        .split_ascii_whitespace()
        .filter(|w| !w.starts_with("xen."))
    {
        let w = word.as_bytes();
        if n + w.len() + 1 > cmdline.len() {
            break;
        }
        if n > 0 {
            cmdline[n] = b' ';
            n += 1;
        }
        cmdline[n..n + w.len()].copy_from_slice(w);
        n += w.len();
    }
    match boot::boot(con, si, module, &cmdline[..n]) {
        Ok(()) => {
            let entry = xen_vmi_rom::layout::ROM_CODE_VA + xen_vmi_rom::layout::ROM_LOADER_ENTRY;
            // SAFETY: boot() mapped the ROM's alias at ROM_CODE_VA and filled
            // its state; the entry at +0x90 takes the state's address and
            // never returns (it switches to the kernel's address space).
            let enter: extern "C" fn(u32) -> ! = unsafe { core::mem::transmute(entry as usize) };
            enter(xen_vmi_rom::layout::ROM_STATE_VA)
        }
        Err(e) => {
            e.report(con);
            shutdown(SHUTDOWN_crash)
        }
    }
}

fn shutdown(reason: u32) -> ! {
    // A domU's last lines are still in its console ring: let xenconsoled
    // read them before the domain goes.
    console::drain();
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
