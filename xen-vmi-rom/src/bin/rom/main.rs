//! The VMI ROM for Xen (API 3.0).
//!
//! A position-independent blob: the kernel finds it at 0xC0000 in its own
//! physical memory, calls VMI_Init at +0x80 and GetRelocationInfo at +0x88,
//! then calls the answers directly. Its state lives at a fixed address in
//! the private area (layout.rs), never in the image.
#![no_std]
#![no_main]
// The ROM must fit the option-ROM header's 255 blocks of 512 bytes. Its
// cold code (boot, decoding and port emulation, error reports) is marked
// `optimize(size)` so the hot paths can stay at opt-level 2; the pinned
// i686 toolchain accepts the attribute (RUSTC_BOOTSTRAP), the host build
// never sees it.
#![feature(optimize_attribute)]

mod boot;
mod calls;
mod console;
mod cpu_calls;
mod desc;
mod emulate;
mod entry;
mod events;
mod fast_syscall;
mod header;
mod mmu;
mod paging;
mod runtime;
mod time;
mod traps;
mod xen;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Built with panic=immediate-abort: a panic is a ud2, which Xen turns
    // into a #UD the ROM's own trap handler reports; nothing can be printed
    // here without formatting machinery the ROM does not carry.
    loop {
        core::hint::spin_loop();
    }
}
