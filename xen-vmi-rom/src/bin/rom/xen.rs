//! The ROM's hypercalls go through the hypercall page's alias in the
//! private area, valid in every address space, and are counted (the
//! statistics port, `xen_vmi_rom::ports::ROM_STATS_PORT`).

use xen_abi::hypercall::Hypervisor;
use xen_abi::hypercall::{HypercallPage, IretFrame, Lowering, RawHypercall};
use xen_abi::sched::SHUTDOWN_crash;
use xen_vmi_rom::layout::{HYPERCALL_PAGE_VA, ROM_STATE_VA};
use xen_vmi_rom::rom_state::HYPERCALL_COUNT_OFFSET;

/// The hypercall count's address (the assembly paths add to it too).
pub const HYPERCALL_COUNT_VA: u32 = ROM_STATE_VA + HYPERCALL_COUNT_OFFSET;

/// The hypercall page, with every call counted.
pub struct CountedPage(HypercallPage);

fn count_one() {
    let p = HYPERCALL_COUNT_VA as *mut u32;
    // SAFETY: the ROM state page is mapped read-write in every address
    // space; one vCPU, and the assembly increments are single instructions.
    unsafe { p.write_volatile(p.read_volatile().wrapping_add(1)) };
}

/// `HYPERVISOR_multicall(list, count)`, counted: the page's stub called
/// with the two arguments in EBX and ECX, and nothing else set up (the
/// general `raw_hypercall` passes the fourth argument and the stub through
/// a block in memory, for ESI, which a multicall does not use). A debug
/// Xen overwrites the argument registers a hypercall does not use (EDX,
/// ESI, EDI here): declared, ESI saved around the call.
///
/// # Safety
///
/// `list` must address `count` multicall entries (xen.h, `multicall_entry`)
/// whose calls and arguments are valid for what Xen does with them, in
/// memory mapped in every address space for the whole call.
#[inline(always)]
pub unsafe fn multicall(list: u32, count: u32) -> i32 {
    count_one();
    let ret: u32;
    // SAFETY: the stub follows the hypercall convention: it changes EAX and
    // (in a debug Xen) the argument registers, all declared or saved, plus
    // flags; the caller vouches for the entries Xen reads and writes. The
    // stack is balanced.
    unsafe {
        core::arch::asm!(
            "push esi",
            "call eax",
            "pop esi",
            inout("eax") HYPERCALL_PAGE_VA + xen_abi::xen::__HYPERVISOR_multicall * 32 => ret,
            inout("ebx") list => _,
            inout("ecx") count => _,
            out("edx") _,
            out("edi") _,
        );
    }
    ret as i32
}

/// Hypercalls the ROM has made so far.
pub fn hypercall_count() -> u32 {
    // SAFETY: as in `count_one`.
    unsafe { (HYPERCALL_COUNT_VA as *const u32).read_volatile() }
}

impl RawHypercall for CountedPage {
    fn guest_addr(&mut self, ptr: *const u8) -> u32 {
        self.0.guest_addr(ptr)
    }

    unsafe fn raw_hypercall(&mut self, op: u32, args: [u32; 5]) -> isize {
        count_one();
        // SAFETY: the caller's contract is the same as ours.
        unsafe { self.0.raw_hypercall(op, args) }
    }

    unsafe fn raw_iret(&mut self, frame: *mut IretFrame) -> ! {
        count_one();
        // SAFETY: the caller's contract is the same as ours.
        unsafe { self.0.raw_iret(frame) }
    }
}

pub fn hypervisor() -> Lowering<'static, CountedPage> {
    // SAFETY: the loader maps the page Xen filled at HYPERCALL_PAGE_VA in
    // the ROM area, which every address space of the kernel shares.
    Lowering::new(CountedPage(unsafe {
        HypercallPage::new(HYPERCALL_PAGE_VA as usize)
    }))
}

/// Ends the domain as crashed (after a diagnostic has been printed); a
/// kernel that never called VMI_Init is named as such.
#[cfg_attr(feature = "image", optimize(size))]
pub fn crash() -> ! {
    crate::runtime::flush_console();
    report_never_activated();
    loop {
        let _ = hypervisor().sched_shutdown(SHUTDOWN_crash);
    }
}

/// The line that says a kernel ran without ever activating VMI.
#[cfg_attr(feature = "image", optimize(size))]
fn report_never_activated() {
    if crate::runtime::rom_state().vmi_init_calls == 0 {
        crate::console::Line::rom(
            b"the kernel never activated VMI (it did not call VMI_Init at ROM+0x80): \
                    it ran on the ROM's emulation of native instructions only",
        )
        .print();
    }
}

/// A native `hlt` with the kernel's interrupts disabled: the processor
/// would stay halted for good, so the domain ends here, powered off by a
/// kernel that activated VMI (a deliberate stop), crashed by one that never
/// did (a kernel without VMI support, or one that died before activating).
#[cfg_attr(feature = "image", optimize(size))]
pub fn kernel_stopped(eip: u32) -> ! {
    crate::runtime::flush_console();
    crate::console::Line::rom(b"the kernel halted with interrupts disabled at eip ")
        .hex(eip)
        .text(b": nothing can resume it, the domain ends")
        .print();
    if crate::runtime::rom_state().vmi_init_calls == 0 {
        crash();
    }
    loop {
        let _ = hypervisor().sched_shutdown(xen_abi::sched::SHUTDOWN_poweroff);
    }
}
