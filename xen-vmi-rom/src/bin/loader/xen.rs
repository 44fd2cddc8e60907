//! The image's access to Xen: the hypercall page Xen's builder filled
//! (XEN_ELFNOTE_HYPERCALL_PAGE) behind xen-abi's typed hypercalls.

use xen_abi::hypercall::{HypercallPage, Lowering, XenHypervisor};

extern "C" {
    /// Defined by linker.ld: the page the builder fills with the stubs.
    static hypercall_page: u8;
}

/// A hypercall backend without multicall scratch space.
pub fn hypervisor() -> XenHypervisor<'static> {
    // SAFETY: the linker places the hypercall page in the image and the
    // ELF note tells Xen's builder to fill exactly that page; the image is
    // never unmapped.
    Lowering::new(unsafe { HypercallPage::new(&raw const hypercall_page as usize) })
}

/// The page's address, for backends that carry multicall scratch.
pub fn hypercall_page_base() -> usize {
    &raw const hypercall_page as usize
}
