//! The ROM's hypercalls go through the hypercall page's alias in the
//! private area, valid in every address space.

use xen_abi::hypercall::Hypervisor;
use xen_abi::hypercall::{HypercallPage, Lowering, XenHypervisor};
use xen_abi::sched::SHUTDOWN_crash;
use xen_vmi_rom::layout::HYPERCALL_PAGE_VA;

pub fn hypervisor() -> XenHypervisor<'static> {
    // SAFETY: the loader maps the page Xen filled at HYPERCALL_PAGE_VA in
    // the ROM area, which every address space of the kernel shares.
    Lowering::new(unsafe { HypercallPage::new(HYPERCALL_PAGE_VA as usize) })
}

/// Ends the domain as crashed (after a diagnostic has been printed).
pub fn crash() -> ! {
    crate::runtime::flush_console();
    loop {
        let _ = hypervisor().sched_shutdown(SHUTDOWN_crash);
    }
}
