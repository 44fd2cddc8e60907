//! vCPU operations: `vcpu.h` (interface 0x00040e00), x86_32 layout.
//!
//! `HYPERVISOR_vcpu_op(cmd, vcpuid, arg)` with `cmd` one of `VCPUOP_*`.

// Constants keep Xen's spellings (`VCPUOP_set_singleshot_timer`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86_32::AbiU64;

/// `VCPUOP_initialise`: load a `vcpu_guest_context` into a vCPU that has not
/// run yet.
pub const VCPUOP_initialise: u32 = 0;
/// `VCPUOP_up`: start an initialised vCPU.
pub const VCPUOP_up: u32 = 1;
/// `VCPUOP_down`: stop a vCPU (the caller, if it names itself).
pub const VCPUOP_down: u32 = 2;
/// `VCPUOP_is_up`: returns 1 if the vCPU is up.
pub const VCPUOP_is_up: u32 = 3;
/// `VCPUOP_get_runstate_info` (`struct vcpu_runstate_info`).
pub const VCPUOP_get_runstate_info: u32 = 4;
/// `VCPUOP_register_runstate_memory_area`: Xen keeps a runstate copy at a
/// guest virtual address up to date.
pub const VCPUOP_register_runstate_memory_area: u32 = 5;
/// `VCPUOP_set_periodic_timer` (`struct vcpu_set_periodic_timer`). A PV
/// vCPU starts with a 10 ms periodic timer.
pub const VCPUOP_set_periodic_timer: u32 = 6;
/// `VCPUOP_stop_periodic_timer` (arg NULL).
pub const VCPUOP_stop_periodic_timer: u32 = 7;
/// `VCPUOP_set_singleshot_timer` (`struct vcpu_set_singleshot_timer`).
pub const VCPUOP_set_singleshot_timer: u32 = 8;
/// `VCPUOP_stop_singleshot_timer` (arg NULL).
pub const VCPUOP_stop_singleshot_timer: u32 = 9;
/// `VCPUOP_register_vcpu_info` (`struct vcpu_register_vcpu_info`).
pub const VCPUOP_register_vcpu_info: u32 = 10;
/// `VCPUOP_send_nmi` (arg NULL).
pub const VCPUOP_send_nmi: u32 = 11;
/// `VCPUOP_get_physid` (`struct vcpu_get_physid`).
pub const VCPUOP_get_physid: u32 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`.
pub const VCPUOP_register_vcpu_time_memory_area: u32 = 13;

/// `RUNSTATE_running`: on a physical CPU.
pub const RUNSTATE_running: i32 = 0;
/// `RUNSTATE_runnable`: runnable but not scheduled (stolen time).
pub const RUNSTATE_runnable: i32 = 1;
/// `RUNSTATE_blocked`: blocked (idle).
pub const RUNSTATE_blocked: i32 = 2;
/// `RUNSTATE_offline`: neither runnable nor blocked (down, or preempted by
/// the hypervisor; also counts as stolen time).
pub const RUNSTATE_offline: i32 = 3;

/// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while Xen updates a
/// registered runstate area (with `VMASST_TYPE_runstate_update_flag`).
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the timeout has passed.
pub const VCPU_SSHOTTMR_future: u32 = 1 << 0;

/// `struct vcpu_runstate_info` (x86_32: the `uint64_t`s are 4-byte aligned,
/// 44 bytes).
#[doc(alias = "vcpu_runstate_info")]
#[doc(alias = "vcpu_runstate_info_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*`.
    pub state: i32,
    /// System time (ns) the current state was entered, possibly with
    /// [`XEN_RUNSTATE_UPDATE`].
    pub state_entry_time: AbiU64,
    /// Time (ns) spent in each `RUNSTATE_*`.
    pub time: [AbiU64; 4],
}

assert_abi_layout!(
    VcpuRunstateInfo,
    size = 44,
    align = 4,
    state = 0,
    state_entry_time = 4,
    time = 12,
);

/// `struct vcpu_register_runstate_memory_area`: a guest virtual address
/// (the union of a handle and a `uint64_t`; a 32-bit pointer fills the low
/// half).
#[doc(alias = "vcpu_register_runstate_memory_area")]
#[doc(alias = "vcpu_register_runstate_memory_area_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuRegisterRunstateMemoryArea {
    pub addr: AbiU64,
}

assert_abi_layout!(
    VcpuRegisterRunstateMemoryArea,
    size = 8,
    align = 4,
    addr = 0
);

/// `struct vcpu_register_time_memory_area`: same shape, for a copy of
/// `vcpu_time_info`.
#[doc(alias = "vcpu_register_time_memory_area")]
#[doc(alias = "vcpu_register_time_memory_area_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuRegisterTimeMemoryArea {
    pub addr: AbiU64,
}

assert_abi_layout!(VcpuRegisterTimeMemoryArea, size = 8, align = 4, addr = 0);

/// `struct vcpu_set_periodic_timer`.
#[doc(alias = "vcpu_set_periodic_timer")]
#[doc(alias = "vcpu_set_periodic_timer_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuSetPeriodicTimer {
    pub period_ns: AbiU64,
}

assert_abi_layout!(VcpuSetPeriodicTimer, size = 8, align = 4, period_ns = 0);

/// `struct vcpu_set_singleshot_timer` (x86_32: 12 bytes).
#[doc(alias = "vcpu_set_singleshot_timer")]
#[doc(alias = "vcpu_set_singleshot_timer_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time (ns).
    pub timeout_abs_ns: AbiU64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}

assert_abi_layout!(
    VcpuSetSingleshotTimer,
    size = 12,
    align = 4,
    timeout_abs_ns = 0,
    flags = 8
);

/// `struct vcpu_register_vcpu_info`: move this vCPU's `vcpu_info` to
/// `offset` in machine frame `mfn`.
#[doc(alias = "vcpu_register_vcpu_info")]
#[doc(alias = "vcpu_register_vcpu_info_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuRegisterVcpuInfo {
    pub mfn: AbiU64,
    pub offset: u32,
    pub rsvd: u32,
}

assert_abi_layout!(
    VcpuRegisterVcpuInfo,
    size = 16,
    align = 4,
    mfn = 0,
    offset = 8,
    rsvd = 12
);

/// `struct vcpu_get_physid`.
#[doc(alias = "vcpu_get_physid")]
#[doc(alias = "vcpu_get_physid_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuGetPhysid {
    /// APIC id in bits 0-31, ACPI id in bits 32-63.
    pub phys_id: AbiU64,
}

assert_abi_layout!(VcpuGetPhysid, size = 8, align = 4, phys_id = 0);

impl VcpuRunstateInfo {
    /// Time (ns) the vCPU was runnable or offline while it wanted to run:
    /// the "stolen" time of `RUNSTATE_runnable` plus `RUNSTATE_offline`.
    pub fn stolen_ns(&self) -> u64 {
        self.time[RUNSTATE_runnable as usize]
            .get()
            .wrapping_add(self.time[RUNSTATE_offline as usize].get())
    }
}
