//! Callback registration: `callback.h` (interface 0x00040e00), x86_32 layout.
//!
//! `HYPERVISOR_callback_op(CALLBACKOP_*, &struct)`. On x86_32 a callback
//! address is a `cs:eip` pair ([`XenCallback`]).

// Constants keep Xen's spellings (`CALLBACKTYPE_event`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use crate::arch_x86_32::XenCallback;

/// `CALLBACKTYPE_event`: event (upcall) delivery.
pub const CALLBACKTYPE_event: u16 = 0;
/// `CALLBACKTYPE_failsafe`: Xen could not restore guest segment state.
pub const CALLBACKTYPE_failsafe: u16 = 1;
/// `CALLBACKTYPE_syscall`: 64-bit guests only (`-ENOSYS` here).
pub const CALLBACKTYPE_syscall: u16 = 2;
/// `CALLBACKTYPE_sysenter_deprecated`.
pub const CALLBACKTYPE_sysenter_deprecated: u16 = 3;
/// `CALLBACKTYPE_nmi`: NMI delivery (only `eip` is used).
pub const CALLBACKTYPE_nmi: u16 = 4;
/// `CALLBACKTYPE_sysenter`: `sysenter` from 32-bit user space (Intel).
pub const CALLBACKTYPE_sysenter: u16 = 5;
/// `CALLBACKTYPE_syscall32`: `syscall` from 32-bit user space (AMD).
pub const CALLBACKTYPE_syscall32: u16 = 7;

/// `CALLBACKF_mask_events`: mask events on entry (ignored for event and NMI
/// callbacks, which always mask).
pub const CALLBACKF_mask_events: u16 = 1 << 0;

/// `CALLBACKOP_register`.
pub const CALLBACKOP_register: u32 = 0;
/// `CALLBACKOP_unregister`.
pub const CALLBACKOP_unregister: u32 = 1;

/// `struct callback_register` (x86_32).
#[doc(alias = "callback_register")]
#[doc(alias = "callback_register_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct CallbackRegister {
    /// `CALLBACKTYPE_*`.
    #[doc(alias = "type")]
    pub kind: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    pub address: XenCallback,
}

assert_abi_layout!(
    CallbackRegister,
    size = 12,
    align = 4,
    kind = 0,
    flags = 2,
    address = 4,
    address.cs = 4,
    address.eip = 8,
);

/// `struct callback_unregister`.
#[doc(alias = "callback_unregister")]
#[doc(alias = "callback_unregister_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct CallbackUnregister {
    /// `CALLBACKTYPE_*`.
    #[doc(alias = "type")]
    pub kind: u16,
    pub _unused: u16,
}

assert_abi_layout!(
    CallbackUnregister,
    size = 4,
    align = 2,
    kind = 0,
    _unused = 2
);
