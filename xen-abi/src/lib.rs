//! The Xen public ABI as a 32-bit PAE paravirtual guest sees it.
#![cfg_attr(not(test), no_std)]
