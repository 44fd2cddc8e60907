//! The Xen public ABI as a 32-bit PAE paravirtual guest ("xen-3.0-x86_32p") sees it.
//!
//! This crate is the one place where the Xen 3.0 PV interface, as served by
//! Xen 4.17 to a 32-bit guest running on the 64-bit hypervisor, is spelled.
//! Each module mirrors one header of `xen/include/public/` (interface version
//! `0x00040e00`, checked against the headers of RELEASE-4.17.5):
//!
//! | module | public header |
//! |---|---|
//! | [`xen`] | `xen.h` |
//! | [`arch_x86_32`] | `arch-x86/xen.h`, `arch-x86/xen-x86_32.h` |
//! | [`event_channel`] | `event_channel.h` |
//! | [`sched`] | `sched.h` |
//! | [`vcpu`] | `vcpu.h` |
//! | [`callback`] | `callback.h` |
//! | [`physdev`] | `physdev.h` |
//! | [`memory`] | `memory.h` |
//! | [`features`] | `features.h` |
//! | [`elfnote`] | `elfnote.h` |
//! | [`version`] | `version.h` |
//! | [`console`] | `io/console.h` |
//! | [`xenstore`] | `io/xs_wire.h` |
//! | [`grant_table`] | `grant_table.h` |
//! | [`errno`] | `errno.h` |
//!
//! On top of the definitions: [`hypercall`] (the [`hypercall::Hypervisor`]
//! trait, typed calls and wrappers, the real i686 backend and a recording
//! backend for host tests), [`p2m`] (pseudo-physical <-> machine frames) and
//! [`time`] (system time and wall clock from `vcpu_time_info`).
//!
//! Layout: on x86_32 a `uint64_t` inside a structure is only 4-byte aligned,
//! while Rust's `u64` is 8-byte aligned on the x86_64 host. ABI structures
//! therefore hold 64-bit fields as [`AbiU64`], which is 4-byte aligned on both,
//! and every structure is followed by compile-time size and offset assertions
//! that fire in the host build and in the i686 build alike.
#![cfg_attr(not(test), no_std)]

#[cfg(any(test, feature = "recorder"))]
extern crate alloc;

/// Asserts at compile time the size, alignment and field offsets of an ABI
/// structure, as the x86_32 C ABI lays it out (the values are the public
/// headers' layout compiled with `gcc -m32`).
macro_rules! assert_abi_layout {
    ($ty:ty, size = $size:expr, align = $align:expr $(, $($field:ident).+ = $off:expr)* $(,)?) => {
        const _: () = {
            assert!(::core::mem::size_of::<$ty>() == $size);
            assert!(::core::mem::align_of::<$ty>() == $align);
            $( assert!(::core::mem::offset_of!($ty, $($field).+) == $off); )*
        };
    };
}

pub mod arch_x86_32;
pub mod callback;
pub mod console;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hypercall;
pub mod memory;
pub mod p2m;
pub mod physdev;
pub mod sched;
pub mod time;
pub mod vcpu;
pub mod version;
pub mod xen;
pub mod xenstore;

pub use arch_x86_32::{AbiU64, GuestAddr, XenPfn, XenUlong};
pub use errno::XenError;
pub use p2m::{Mfn, Pfn};
pub use xen::DomId;
