//! The xenstore ring and wire protocol: `io/xs_wire.h` (interface
//! 0x00040e00).
//!
//! One page at machine frame `start_info.store_mfn`, notified through
//! `start_info.store_evtchn`. Each message is an [`XsdSockmsg`] header
//! followed by `len` payload bytes (NUL-separated strings).

// Constants keep Xen's spellings (`XS_READ`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENSTORE_RING_IDX`.
#[doc(alias = "XENSTORE_RING_IDX")]
pub type XenstoreRingIdx = u32;

/// `XENSTORE_RING_SIZE`.
pub const XENSTORE_RING_SIZE: u32 = 1024;

/// `MASK_XENSTORE_IDX`.
pub const fn mask_xenstore_idx(idx: XenstoreRingIdx) -> usize {
    (idx & (XENSTORE_RING_SIZE - 1)) as usize
}

/// `XENSTORE_PAYLOAD_MAX`: largest payload of one message.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// `XENSTORE_ABS_PATH_MAX`.
pub const XENSTORE_ABS_PATH_MAX: u32 = 3072;
/// `XENSTORE_REL_PATH_MAX`.
pub const XENSTORE_REL_PATH_MAX: u32 = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `XENSTORE_CONNECTED`.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `XENSTORE_ERROR_NONE`.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`.
pub const XENSTORE_ERROR_PROTO: u32 = 3;

// enum xsd_sockmsg_type
/// `XS_CONTROL` (= `XS_DEBUG`).
pub const XS_CONTROL: u32 = 0;
/// `XS_DEBUG`.
pub const XS_DEBUG: u32 = XS_CONTROL;
/// `XS_DIRECTORY`.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`.
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`.
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`.
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`.
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`.
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`.
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`: the payload is an errno name ("EINVAL").
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`.
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`.
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES` (20, `XS_RESTRICT`, was removed).
pub const XS_RESET_WATCHES: u32 = 21;
/// `XS_DIRECTORY_PART`.
pub const XS_DIRECTORY_PART: u32 = 22;
/// `XS_TYPE_COUNT`.
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`: guaranteed never to be a valid type.
pub const XS_INVALID: u32 = 0xFFFF;

/// `XS_WATCH_PATH`: index of the path in an `XS_WATCH_EVENT` payload.
pub const XS_WATCH_PATH: u32 = 0;
/// `XS_WATCH_TOKEN`.
pub const XS_WATCH_TOKEN: u32 = 1;

/// `struct xsd_sockmsg`: the header of every xenstore message.
#[doc(alias = "xsd_sockmsg")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct XsdSockmsg {
    /// `XS_*`.
    #[doc(alias = "type")]
    pub kind: u32,
    /// Echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

assert_abi_layout!(
    XsdSockmsg,
    size = 16,
    align = 4,
    kind = 0,
    req_id = 4,
    tx_id = 8,
    len = 12
);

/// `struct xenstore_domain_interface`.
#[doc(alias = "xenstore_domain_interface")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenstoreDomainInterface {
    /// Requests to the daemon.
    pub req: [u8; XENSTORE_RING_SIZE as usize],
    /// Replies and watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE as usize],
    pub req_cons: XenstoreRingIdx,
    pub req_prod: XenstoreRingIdx,
    pub rsp_cons: XenstoreRingIdx,
    pub rsp_prod: XenstoreRingIdx,
    /// `XENSTORE_SERVER_FEATURE_*`.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*`.
    pub error: u32,
}

assert_abi_layout!(
    XenstoreDomainInterface,
    size = 2076,
    align = 4,
    req = 0,
    rsp = 1024,
    req_cons = 2048,
    req_prod = 2052,
    rsp_cons = 2056,
    rsp_prod = 2060,
    server_features = 2064,
    connection = 2068,
    error = 2072,
);
