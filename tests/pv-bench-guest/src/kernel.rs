//! Entry (Xen ELF notes, the boot stack), start of day and the run.

use core::panic::PanicInfo;

use xen_abi::elfnote::*;
use xen_abi::hypercall::Hypervisor;
use xen_abi::sched::{SHUTDOWN_poweroff, SHUTDOWN_reboot};
use xen_abi::xen::StartInfo;
use xen_abi::xen_elf_note;

use crate::console::{self, kprintln};
use crate::platform::{self, PvPlatform};
use crate::{events, hv, mm, traps};

// The notes Xen's ELF loader reads (elfnote.h): VIRT_BASE = PADDR_OFFSET =
// 0 (virtual = pseudo-physical), the "generic" loader, PAE with extended
// CR3, the hypercall page, and the hypervisor hole where a 32-bit guest's
// is by default (the machine-to-phys table at 0xF5800000).
xen_elf_note!(static NOTE_GUEST_OS = string(XEN_ELFNOTE_GUEST_OS, "pv-bench-guest"));
xen_elf_note!(static NOTE_LOADER = string(XEN_ELFNOTE_LOADER, "generic"));
xen_elf_note!(static NOTE_XEN_VERSION = string(XEN_ELFNOTE_XEN_VERSION, "xen-3.0"));
xen_elf_note!(static NOTE_PAE_MODE = string(XEN_ELFNOTE_PAE_MODE, "yes"));
xen_elf_note!(static NOTE_FEATURES = string(XEN_ELFNOTE_FEATURES, "pae_pgdir_above_4gb"));
xen_elf_note!(static NOTE_VIRT_BASE = numeric(XEN_ELFNOTE_VIRT_BASE, 0));
xen_elf_note!(static NOTE_PADDR_OFFSET = numeric(XEN_ELFNOTE_PADDR_OFFSET, 0));
xen_elf_note!(static NOTE_HV_START_LOW = numeric(XEN_ELFNOTE_HV_START_LOW, mm::HV_START_LOW));
xen_elf_note!(static NOTE_HYPERCALL_PAGE = address(XEN_ELFNOTE_HYPERCALL_PAGE, &raw const hypercall_page));

extern "C" {
    static hypercall_page: u8;
    static __user_start: u8;
    static __user_end: u8;
}

const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct BootStack([u8; BOOT_STACK_SIZE]);

/// The stack the kernel runs on (the builder's single page is too small).
/// Only the entry code touches it, by address.
static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

core::arch::global_asm!(
    r#"
    .pushsection .text.hypercall_page, "ax"
    .fill 4096, 1, 0xCC
    .popsection

    .pushsection .text.entry, "ax"
    .globl _start
_start:
    cld
    mov esp, offset {stack} + {stack_size}
    push esi
    call {main}
    ud2
    .popsection
    "#,
    stack = sym BOOT_STACK,
    stack_size = const BOOT_STACK_SIZE,
    main = sym pv_main,
);

/// The value of `key=value` on the command line.
fn option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Called by the entry code with start_info's address (%esi).
extern "C" fn pv_main(start_info: u32) -> ! {
    // SAFETY: Xen passes the address of the mapped start_info page, which
    // nothing else writes while the kernel runs.
    let si = unsafe { &*(start_info as *const StartInfo) };
    mm::init(si);
    events::init(si);
    if !si.is_initial_domain() {
        // A domU writes its console ring (start_info console.domU; the
        // page is inside the builder's mapping, at its pseudo-physical
        // address).
        console::use_ring(mm::m2p(si.console.mfn), si.console.evtchn);
    }
    kprintln!("--- pv-bench-guest: direct-PV benchmark kernel (XenLinux-style platform) ---");
    traps::init(platform::ring1_stack_top());
    mm::grant_user(&raw const __user_start as u32, &raw const __user_end as u32);
    let cmdline = core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("");
    let selection = option(cmdline, "bench").unwrap_or("all");
    let cfg = bench_core::config_from(option(cmdline, "bench_reps"), option(cmdline, "bench_ops"));
    kprintln!(
        "bench: {} timed repetitions, {} operations each, cycle counter at {} Hz",
        cfg.reps,
        match cfg.ops {
            Some(n) => bench_core::Text::from_fmt(format_args!("{n}")),
            None => bench_core::Text::from_fmt(format_args!("default")),
        },
        events::cycle_frequency()
    );
    let (passed, failed) = bench_core::run_selected(&mut PvPlatform, selection, &cfg);
    kprintln!("benchmarks: {passed} passed, {failed} failed");
    let verdict = if failed > 0 {
        "FAILURE"
    } else if passed == 0 {
        "SKIP"
    } else {
        "SUCCESS"
    };
    kprintln!("Test result: {verdict}");
    console::flush();
    // A dom0 that asks for a reboot makes Xen reset the machine, which
    // with QEMU's -no-reboot ends the run; a domU powers off.
    let reason = if si.is_initial_domain() {
        SHUTDOWN_reboot
    } else {
        SHUTDOWN_poweroff
    };
    loop {
        let _ = hv::hypervisor().sched_shutdown(reason);
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    console::fatal(format_args!("pv-bench-guest: panic: {info}"))
}
