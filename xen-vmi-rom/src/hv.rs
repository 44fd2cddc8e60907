//! The few Xen services the image uses, over the hypercall page.
//!
//! Interim: these go through xen-abi's backend once that crate lands.

use core::arch::asm;

pub const SHUTDOWN_REBOOT: u32 = 1;
pub const SHUTDOWN_CRASH: u32 = 3;

/// start_info (xen.h), the fields the image reads; x86_32 layout.
#[repr(C)]
pub struct StartInfo {
    pub magic: [u8; 32],
    pub nr_pages: u32,
    pub shared_info: u32,
    pub flags: u32,
    pub store_mfn: u32,
    pub store_evtchn: u32,
    pub console_mfn: u32,
    pub console_evtchn: u32,
    pub pt_base: u32,
    pub nr_pt_frames: u32,
    pub mfn_list: u32,
    pub mod_start: u32,
    pub mod_len: u32,
    pub cmd_line: [u8; 1024],
    pub first_p2m_pfn: u32,
    pub nr_p2m_frames: u32,
}
const _: () = assert!(core::mem::size_of::<StartInfo>() == 1112);

extern "C" {
    static hypercall_page: u8;
}

fn stub(nr: u32) -> u32 {
    (&raw const hypercall_page as u32) + nr * 32
}

/// # Safety
/// The arguments must be valid for hypercall `nr` (pointers to live memory).
unsafe fn call4(nr: u32, a1: u32, a2: u32, a3: u32, a4: u32) -> i32 {
    let ret: i32;
    // SAFETY: the caller vouches for the arguments; esi cannot be an asm
    // operand on i686, so it is saved and loaded by hand; all argument
    // registers count as clobbered (debug Xen scribbles on them).
    unsafe {
        asm!(
            "push esi",
            "mov esi, edi",
            "call eax",
            "pop esi",
            inout("eax") stub(nr) => ret,
            inout("ebx") a1 => _,
            inout("ecx") a2 => _,
            inout("edx") a3 => _,
            inout("edi") a4 => _,
        );
    }
    ret
}

pub fn console_write(bytes: &[u8]) {
    // SAFETY: CONSOLEIO_write (0) reads `len` bytes from a live buffer.
    unsafe { call4(18, 0, bytes.len() as u32, bytes.as_ptr() as u32, 0) };
}

pub fn xen_version(cmd: u32, arg: *mut u8) -> i32 {
    // SAFETY: the caller passes a buffer of the size XENVER_<cmd> needs.
    unsafe { call4(17, cmd, arg as u32, 0, 0) }
}

pub fn update_va_mapping(va: u32, pte: u64, flags: u32) -> i32 {
    // SAFETY: remapping a page of our own image is the caller's business.
    unsafe { call4(14, va, pte as u32, (pte >> 32) as u32, flags) }
}

pub fn shutdown(reason: u32) -> ! {
    let arg = [reason];
    loop {
        // SAFETY: SCHEDOP_shutdown (2) reads a struct sched_shutdown.
        unsafe { call4(29, 2, arg.as_ptr() as u32, 0, 0) };
    }
}

pub fn console_io_raw(cmd: u32, count: u32, buf: *const u8) -> i32 {
    // SAFETY: count bytes at buf are readable.
    unsafe { call4(18, cmd, count, buf as u32, 0) }
}

/// XENMEM_machphys_mapping (memory.h): where Xen's read-only m2p lives for
/// this guest: (v_start, v_end, max_mfn).
pub fn machphys_mapping() -> Result<(u32, u32, u32), i32> {
    let mut m = [0u32; 3];
    // SAFETY: memory_op (12) with XENMEM_machphys_mapping (12) writes the
    // three-word struct xen_machphys_mapping.
    let rc = unsafe { call4(12, 12, m.as_mut_ptr() as u32, 0, 0) };
    if rc == 0 {
        Ok((m[0], m[1], m[2]))
    } else {
        Err(rc)
    }
}
