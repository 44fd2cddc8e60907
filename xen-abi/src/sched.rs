//! Scheduler operations: `sched.h` (interface 0x00040e00), x86_32 layout.
//!
//! `HYPERVISOR_sched_op(cmd, arg)` with `cmd` one of `SCHEDOP_*`.

// Constants keep Xen's spellings (`SCHEDOP_shutdown`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86_32::{AbiU64, GuestAddr};
use crate::xen::DomId;

/// `SCHEDOP_yield`: give up the CPU voluntarily (arg NULL).
pub const SCHEDOP_yield: u32 = 0;
/// `SCHEDOP_block`: sleep until an event is pending; clears
/// `evtchn_upcall_mask` while blocking (arg NULL).
pub const SCHEDOP_block: u32 = 1;
/// `SCHEDOP_shutdown`: stop the domain (`struct sched_shutdown`).
pub const SCHEDOP_shutdown: u32 = 2;
/// `SCHEDOP_poll`: block until one of a set of ports is pending or a timeout
/// (`struct sched_poll`).
pub const SCHEDOP_poll: u32 = 3;
/// `SCHEDOP_remote_shutdown`: shut another domain down
/// (`struct sched_remote_shutdown`).
pub const SCHEDOP_remote_shutdown: u32 = 4;
/// `SCHEDOP_shutdown_code`: record the reason a later shutdown will report,
/// without shutting down (`struct sched_shutdown`).
pub const SCHEDOP_shutdown_code: u32 = 5;
/// `SCHEDOP_watchdog` (`struct sched_watchdog`).
pub const SCHEDOP_watchdog: u32 = 6;
/// `SCHEDOP_pin_override` (`struct sched_pin_override`).
pub const SCHEDOP_pin_override: u32 = 7;

/// `SHUTDOWN_poweroff`: exited normally; clean up and kill.
pub const SHUTDOWN_poweroff: u32 = 0;
/// `SHUTDOWN_reboot`: clean up, kill and restart.
pub const SHUTDOWN_reboot: u32 = 1;
/// `SHUTDOWN_suspend`: clean up, save suspend info, kill.
pub const SHUTDOWN_suspend: u32 = 2;
/// `SHUTDOWN_crash`: tell the controller we crashed.
pub const SHUTDOWN_crash: u32 = 3;
/// `SHUTDOWN_watchdog`: restart because the watchdog expired.
pub const SHUTDOWN_watchdog: u32 = 4;
/// `SHUTDOWN_soft_reset`.
pub const SHUTDOWN_soft_reset: u32 = 5;
/// `SHUTDOWN_MAX`: the largest valid reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// `struct sched_shutdown`.
#[doc(alias = "sched_shutdown")]
#[doc(alias = "sched_shutdown_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

assert_abi_layout!(SchedShutdown, size = 4, align = 4, reason = 0);

/// `struct sched_poll` (x86_32).
#[doc(alias = "sched_poll")]
#[doc(alias = "sched_poll_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct SchedPoll {
    /// Guest address of an array of `evtchn_port_t`.
    pub ports: GuestAddr,
    /// Entries in `ports`.
    pub nr_ports: u32,
    /// Absolute system time (ns) to give up at; 0 waits forever.
    pub timeout: AbiU64,
}

assert_abi_layout!(
    SchedPoll,
    size = 16,
    align = 4,
    ports = 0,
    nr_ports = 4,
    timeout = 8
);

/// `struct sched_remote_shutdown`.
#[doc(alias = "sched_remote_shutdown")]
#[doc(alias = "sched_remote_shutdown_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct SchedRemoteShutdown {
    pub domain_id: DomId,
    pub _pad0: u16,
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

assert_abi_layout!(
    SchedRemoteShutdown,
    size = 8,
    align = 4,
    domain_id = 0,
    reason = 4
);

/// `struct sched_watchdog`.
#[doc(alias = "sched_watchdog")]
#[doc(alias = "sched_watchdog_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct SchedWatchdog {
    /// Watchdog id (0 to create a new one).
    pub id: u32,
    /// Timeout in seconds (0 to destroy).
    pub timeout: u32,
}

assert_abi_layout!(SchedWatchdog, size = 8, align = 4, id = 0, timeout = 4);
