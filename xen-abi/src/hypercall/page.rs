//! The real backend of the i686 guest: calls into the hypercall page.
//!
//! Xen fills the page named by `XEN_ELFNOTE_HYPERCALL_PAGE` with one 32-byte
//! stub per hypercall (`mov $nr, %eax; int $0x82; ret`; for `iret`:
//! `push %eax; mov $23, %eax; int $0x82`). Arguments go in `ebx, ecx, edx,
//! esi, edi` (`arch-x86/xen-x86_32.h`), the result comes back in `eax`. A
//! debug Xen overwrites the argument registers a hypercall uses with
//! 0xdeadf00d, so all five are treated as clobbered.

use core::arch::asm;

use super::{IretFrame, RawHypercall};
use crate::xen::{__HYPERVISOR_iret, HYPERCALL_STUB_SIZE};

/// The hypercall page, at the address the image was given at run time (the
/// ROM is position independent, so the address is a value, not a symbol).
#[derive(Clone, Copy, Debug)]
pub struct HypercallPage {
    base: usize,
}

impl HypercallPage {
    /// The hypercall page at virtual address `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the address of the page Xen filled with hypercall
    /// stubs for this domain, mapped executable for as long as this value or
    /// a copy of it is used.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    /// The page's address.
    pub const fn base(&self) -> usize {
        self.base
    }

    /// The address of hypercall `nr`'s stub.
    pub const fn stub_addr(&self, nr: u32) -> usize {
        self.base + (nr * HYPERCALL_STUB_SIZE) as usize
    }
}

impl RawHypercall for HypercallPage {
    fn guest_addr(&mut self, ptr: *const u8) -> u32 {
        // A pointer of the 32-bit guest is its virtual address.
        ptr as usize as u32
    }

    unsafe fn raw_hypercall(&mut self, op: u32, args: [u32; 5]) -> isize {
        // Rust does not accept esi as an asm operand on i686 (LLVM may use it
        // as a base pointer), so the fourth argument and the stub address
        // travel in memory, addressed through eax (which the stub overwrites
        // with the hypercall number anyway): esi is saved, loaded, and
        // restored around the call.
        let esi_and_stub: [u32; 2] = [args[3], self.stub_addr(op) as u32];
        let ret: u32;
        // SAFETY: the stub follows the hypercall convention: it changes eax
        // and (in a debug Xen) the argument registers, all declared here,
        // plus flags; esi is restored by the pop. No `nomem`: Xen reads and
        // writes guest memory through the arguments, whose validity the
        // caller guarantees. The stack is balanced (push/pop around a
        // call/ret).
        unsafe {
            asm!(
                "push esi",
                "mov esi, dword ptr [eax]",
                "call dword ptr [eax + 4]",
                "pop esi",
                inout("eax") esi_and_stub.as_ptr() => ret,
                inout("ebx") args[0] => _,
                inout("ecx") args[1] => _,
                inout("edx") args[2] => _,
                inout("edi") args[4] => _,
            );
        }
        // `eax` is a C long: sign-extend.
        ret as i32 as isize
    }

    unsafe fn raw_iret(&mut self, frame: *mut IretFrame) -> ! {
        let stub = self.stub_addr(__HYPERVISOR_iret);
        // SAFETY: the caller guarantees `frame` is a valid, writable frame.
        let (eax, stack) = unsafe { ((*frame).eax, &raw mut (*frame).eip) };
        // SAFETY: the stub is jumped to with esp at `frame.eip`; its
        // `push %eax` refills `frame.eax`, and Xen pops the frame and resumes
        // at `frame.eip`. The caller accepts that this stack is abandoned.
        unsafe {
            asm!(
                "mov esp, {stack}",
                "jmp {stub}",
                stack = in(reg) stack,
                stub = in(reg) stub,
                in("eax") eax,
                options(noreturn),
            );
        }
    }
}
