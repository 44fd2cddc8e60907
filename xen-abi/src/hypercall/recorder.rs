//! A recording hypercall backend for host tests (this crate's, and with
//! feature `recorder`, those of crates built on it).
//!
//! [`Recorder`] implements [`Hypervisor`]: every call is recorded decoded
//! (a [`RecordedCall`] with copies of its inputs: the `mmu_update` requests,
//! the multicall entries, the console bytes, ...) and answered from a queue
//! of scripted [`Reply`]s (default: return 0).
//!
//! Outputs: with [`Reply::Output`], the scripted bytes are copied into the
//! call's output (the `&mut` structure, the buffer, or the `done` count of
//! `mmu_update`/`mmuext_op`); for `XENMEM_memory_map` the entry count becomes
//! `bytes / 20`. Without output bytes, a successful `mmu_update` or
//! `mmuext_op` reports all requests done and `GNTTABOP_setup_table` reports
//! `GNTST_okay`; nothing else is written.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use zerocopy::{Immutable, IntoBytes};

use super::{
    Call, CallbackOp, ConsoleIo, EvtchnOp, GnttabOp, Hypervisor, IretFrame, MemoryOp, PhysdevOp,
    Reservation, SchedOp, VcpuOp, XenVersionOp,
};
use crate::arch_x86_32::{TrapInfo, VcpuGuestContext, XenCallback};
use crate::callback::CallbackRegister;
use crate::errno::XenError;
use crate::event_channel::EvtchnPort;
use crate::grant_table::{GNTST_general_error, GNTST_okay};
use crate::memory::{E820Entry, XenAddToPhysmap};
use crate::xen::*;

/// A scripted answer to one hypercall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Return `ret`.
    Ret(isize),
    /// Copy `out` into the call's output, then return `ret`.
    Output { ret: isize, out: Vec<u8> },
    /// For a multicall: the hypercall returns `ret` and entry `i` gets
    /// `results[i]` (0 for entries beyond the list).
    Multicall { ret: isize, results: Vec<isize> },
}

/// A decoded `XENMEM_*` reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedReservation {
    /// The extent list as passed in.
    pub extents: Vec<u32>,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: DomId,
}

/// A decoded [`MemoryOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedMemoryOp {
    IncreaseReservation(RecordedReservation),
    DecreaseReservation(RecordedReservation),
    PopulatePhysmap(RecordedReservation),
    MaximumRamPage,
    CurrentReservation(DomId),
    MaximumReservation(DomId),
    MaximumGpfn(DomId),
    /// `XENMEM_memory_map` with room for `capacity` entries.
    MemoryMap {
        capacity: usize,
    },
    /// `XENMEM_machine_memory_map` with room for `capacity` entries.
    MachineMemoryMap {
        capacity: usize,
    },
    MachphysMapping,
    AddToPhysmap(XenAddToPhysmap),
}

/// A decoded [`EvtchnOp`] (inputs only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedEvtchnOp {
    AllocUnbound {
        dom: DomId,
        remote_dom: DomId,
    },
    BindInterdomain {
        remote_dom: DomId,
        remote_port: EvtchnPort,
    },
    BindVirq {
        virq: u32,
        vcpu: u32,
    },
    BindIpi {
        vcpu: u32,
    },
    Close {
        port: EvtchnPort,
    },
    Send {
        port: EvtchnPort,
    },
    Status {
        dom: DomId,
        port: EvtchnPort,
    },
    BindVcpu {
        port: EvtchnPort,
        vcpu: u32,
    },
    Unmask {
        port: EvtchnPort,
    },
}

/// A decoded [`ConsoleIo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedConsoleIo {
    /// The bytes written.
    Write(Vec<u8>),
    /// A read into a buffer of `capacity` bytes.
    Read { capacity: usize },
}

/// A decoded [`PhysdevOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedPhysdevOp {
    SetIopl {
        iopl: u32,
    },
    /// `bitmap` is the host address passed.
    SetIobitmap {
        bitmap: usize,
        nr_ports: u32,
    },
    Eoi {
        irq: u32,
    },
    IrqStatusQuery {
        irq: u32,
    },
}

/// A decoded [`GnttabOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedGnttabOp {
    SetupTable { dom: DomId, nr_frames: u32 },
    QuerySize { dom: DomId },
}

/// A decoded [`VcpuOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedVcpuOp {
    Initialise(Box<VcpuGuestContext>),
    Up,
    Down,
    IsUp,
    GetRunstateInfo,
    /// `addr` is the host address passed.
    RegisterRunstateMemoryArea {
        addr: usize,
    },
    SetPeriodicTimer {
        period_ns: u64,
    },
    StopPeriodicTimer,
    SetSingleshotTimer {
        timeout_abs_ns: u64,
        flags: u32,
    },
    StopSingleshotTimer,
    RegisterVcpuInfo {
        mfn: u64,
        offset: u32,
    },
    SendNmi,
    GetPhysid,
    /// `addr` is the host address passed.
    RegisterVcpuTimeMemoryArea {
        addr: usize,
    },
}

/// A decoded [`SchedOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedSchedOp {
    Yield,
    Block,
    Shutdown {
        reason: u32,
    },
    ShutdownCode {
        reason: u32,
    },
    Poll {
        ports: Vec<EvtchnPort>,
        timeout_ns: u64,
    },
    RemoteShutdown {
        domain_id: DomId,
        reason: u32,
    },
}

/// A decoded [`CallbackOp`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedCallbackOp {
    Register(CallbackRegister),
    Unregister { kind: u16 },
}

/// One hypercall as the [`Recorder`] saw it, with copies of its inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedCall {
    SetTrapTable(Vec<TrapInfo>),
    MmuUpdate {
        reqs: Vec<MmuUpdate>,
        foreign_dom: u32,
    },
    SetGdt {
        frames: Vec<u32>,
        entries: u32,
    },
    StackSwitch {
        ss: u32,
        esp: u32,
    },
    SetCallbacks {
        event: XenCallback,
        failsafe: XenCallback,
    },
    FpuTaskswitch {
        set: bool,
    },
    SetDebugreg {
        reg: u32,
        value: u32,
    },
    GetDebugreg {
        reg: u32,
    },
    UpdateDescriptor {
        machine_addr: u64,
        descriptor: u64,
    },
    MemoryOp(RecordedMemoryOp),
    /// The entries, decoded, in order.
    Multicall(Vec<RecordedCall>),
    UpdateVaMapping {
        va: u32,
        pte: u64,
        flags: u32,
    },
    UpdateVaMappingOtherdomain {
        va: u32,
        pte: u64,
        flags: u32,
        domid: DomId,
    },
    SetTimerOp {
        deadline_ns: u64,
    },
    EventChannelOp(RecordedEvtchnOp),
    /// `submap_idx` for `XENVER_get_features`.
    XenVersion {
        cmd: u32,
        submap_idx: Option<u32>,
    },
    ConsoleIo(RecordedConsoleIo),
    PhysdevOp(RecordedPhysdevOp),
    GrantTableOp(RecordedGnttabOp),
    VmAssist {
        cmd: u32,
        kind: u32,
    },
    VcpuOp {
        vcpu: u32,
        op: RecordedVcpuOp,
    },
    MmuextOp {
        ops: Vec<MmuextOp>,
        foreign_dom: u32,
    },
    SchedOp(RecordedSchedOp),
    CallbackOp(RecordedCallbackOp),
    Raw {
        op: u32,
        args: [u32; 5],
    },
    Iret(IretFrame),
}

impl RecordedCall {
    /// Decodes `call`.
    pub fn decode(call: &Call<'_>) -> Self {
        match call {
            Call::SetTrapTable(table) => RecordedCall::SetTrapTable(table.to_vec()),
            Call::MmuUpdate {
                reqs, foreign_dom, ..
            } => RecordedCall::MmuUpdate {
                reqs: reqs.to_vec(),
                foreign_dom: *foreign_dom,
            },
            Call::SetGdt { frames, entries } => RecordedCall::SetGdt {
                frames: frames.to_vec(),
                entries: *entries,
            },
            Call::StackSwitch { ss, esp } => RecordedCall::StackSwitch { ss: *ss, esp: *esp },
            Call::SetCallbacks { event, failsafe } => RecordedCall::SetCallbacks {
                event: *event,
                failsafe: *failsafe,
            },
            Call::FpuTaskswitch { set } => RecordedCall::FpuTaskswitch { set: *set },
            Call::SetDebugreg { reg, value } => RecordedCall::SetDebugreg {
                reg: *reg,
                value: *value,
            },
            Call::GetDebugreg { reg } => RecordedCall::GetDebugreg { reg: *reg },
            Call::UpdateDescriptor {
                machine_addr,
                descriptor,
            } => RecordedCall::UpdateDescriptor {
                machine_addr: *machine_addr,
                descriptor: *descriptor,
            },
            Call::MemoryOp(op) => RecordedCall::MemoryOp(decode_memory_op(op)),
            Call::Multicall { calls, .. } => {
                RecordedCall::Multicall(calls.iter().map(Self::decode).collect())
            }
            Call::UpdateVaMapping { va, pte, flags } => RecordedCall::UpdateVaMapping {
                va: *va,
                pte: *pte,
                flags: *flags,
            },
            Call::UpdateVaMappingOtherdomain {
                va,
                pte,
                flags,
                domid,
            } => RecordedCall::UpdateVaMappingOtherdomain {
                va: *va,
                pte: *pte,
                flags: *flags,
                domid: *domid,
            },
            Call::SetTimerOp { deadline_ns } => RecordedCall::SetTimerOp {
                deadline_ns: *deadline_ns,
            },
            Call::EventChannelOp(op) => RecordedCall::EventChannelOp(decode_evtchn_op(op)),
            Call::XenVersion(op) => {
                let (cmd, submap_idx) = match op {
                    XenVersionOp::Version => (crate::version::XENVER_version, None),
                    XenVersionOp::Extraversion(_) => (crate::version::XENVER_extraversion, None),
                    XenVersionOp::CompileInfo(_) => (crate::version::XENVER_compile_info, None),
                    XenVersionOp::Capabilities(_) => (crate::version::XENVER_capabilities, None),
                    XenVersionOp::Changeset(_) => (crate::version::XENVER_changeset, None),
                    XenVersionOp::PlatformParameters(_) => {
                        (crate::version::XENVER_platform_parameters, None)
                    }
                    XenVersionOp::GetFeatures(info) => {
                        (crate::version::XENVER_get_features, Some(info.submap_idx))
                    }
                    XenVersionOp::Pagesize => (crate::version::XENVER_pagesize, None),
                    XenVersionOp::GuestHandle(_) => (crate::version::XENVER_guest_handle, None),
                    XenVersionOp::Commandline(_) => (crate::version::XENVER_commandline, None),
                };
                RecordedCall::XenVersion { cmd, submap_idx }
            }
            Call::ConsoleIo(ConsoleIo::Write(bytes)) => {
                RecordedCall::ConsoleIo(RecordedConsoleIo::Write(bytes.to_vec()))
            }
            Call::ConsoleIo(ConsoleIo::Read(buf)) => {
                RecordedCall::ConsoleIo(RecordedConsoleIo::Read {
                    capacity: buf.len(),
                })
            }
            Call::PhysdevOp(op) => RecordedCall::PhysdevOp(match op {
                PhysdevOp::SetIopl(arg) => RecordedPhysdevOp::SetIopl { iopl: arg.iopl },
                PhysdevOp::SetIobitmap { bitmap, nr_ports } => RecordedPhysdevOp::SetIobitmap {
                    bitmap: *bitmap as usize,
                    nr_ports: *nr_ports,
                },
                PhysdevOp::Eoi(arg) => RecordedPhysdevOp::Eoi { irq: arg.irq },
                PhysdevOp::IrqStatusQuery(arg) => {
                    RecordedPhysdevOp::IrqStatusQuery { irq: arg.irq }
                }
            }),
            Call::GrantTableOp(op) => RecordedCall::GrantTableOp(match op {
                GnttabOp::SetupTable { dom, frames, .. } => RecordedGnttabOp::SetupTable {
                    dom: *dom,
                    nr_frames: frames.len() as u32,
                },
                GnttabOp::QuerySize(arg) => RecordedGnttabOp::QuerySize { dom: arg.dom },
            }),
            Call::VmAssist { cmd, kind } => RecordedCall::VmAssist {
                cmd: *cmd,
                kind: *kind,
            },
            Call::VcpuOp { vcpu, op } => RecordedCall::VcpuOp {
                vcpu: *vcpu,
                op: decode_vcpu_op(op),
            },
            Call::MmuextOp {
                ops, foreign_dom, ..
            } => RecordedCall::MmuextOp {
                ops: ops.to_vec(),
                foreign_dom: *foreign_dom,
            },
            Call::SchedOp(op) => RecordedCall::SchedOp(match op {
                SchedOp::Yield => RecordedSchedOp::Yield,
                SchedOp::Block => RecordedSchedOp::Block,
                SchedOp::Shutdown(arg) => RecordedSchedOp::Shutdown { reason: arg.reason },
                SchedOp::ShutdownCode(arg) => RecordedSchedOp::ShutdownCode { reason: arg.reason },
                SchedOp::Poll { ports, timeout_ns } => RecordedSchedOp::Poll {
                    ports: ports.to_vec(),
                    timeout_ns: *timeout_ns,
                },
                SchedOp::RemoteShutdown(arg) => RecordedSchedOp::RemoteShutdown {
                    domain_id: arg.domain_id,
                    reason: arg.reason,
                },
            }),
            Call::CallbackOp(op) => RecordedCall::CallbackOp(match op {
                CallbackOp::Register(arg) => RecordedCallbackOp::Register(*arg),
                CallbackOp::Unregister(arg) => RecordedCallbackOp::Unregister { kind: arg.kind },
            }),
            Call::Raw { op, args } => RecordedCall::Raw {
                op: *op,
                args: *args,
            },
        }
    }

    /// The `__HYPERVISOR_*` number (`__HYPERVISOR_iret` for an iret).
    pub fn hypercall_nr(&self) -> u32 {
        match self {
            RecordedCall::SetTrapTable(_) => __HYPERVISOR_set_trap_table,
            RecordedCall::MmuUpdate { .. } => __HYPERVISOR_mmu_update,
            RecordedCall::SetGdt { .. } => __HYPERVISOR_set_gdt,
            RecordedCall::StackSwitch { .. } => __HYPERVISOR_stack_switch,
            RecordedCall::SetCallbacks { .. } => __HYPERVISOR_set_callbacks,
            RecordedCall::FpuTaskswitch { .. } => __HYPERVISOR_fpu_taskswitch,
            RecordedCall::SetDebugreg { .. } => __HYPERVISOR_set_debugreg,
            RecordedCall::GetDebugreg { .. } => __HYPERVISOR_get_debugreg,
            RecordedCall::UpdateDescriptor { .. } => __HYPERVISOR_update_descriptor,
            RecordedCall::MemoryOp(_) => __HYPERVISOR_memory_op,
            RecordedCall::Multicall(_) => __HYPERVISOR_multicall,
            RecordedCall::UpdateVaMapping { .. } => __HYPERVISOR_update_va_mapping,
            RecordedCall::UpdateVaMappingOtherdomain { .. } => {
                __HYPERVISOR_update_va_mapping_otherdomain
            }
            RecordedCall::SetTimerOp { .. } => __HYPERVISOR_set_timer_op,
            RecordedCall::EventChannelOp(_) => __HYPERVISOR_event_channel_op,
            RecordedCall::XenVersion { .. } => __HYPERVISOR_xen_version,
            RecordedCall::ConsoleIo(_) => __HYPERVISOR_console_io,
            RecordedCall::PhysdevOp(_) => __HYPERVISOR_physdev_op,
            RecordedCall::GrantTableOp(_) => __HYPERVISOR_grant_table_op,
            RecordedCall::VmAssist { .. } => __HYPERVISOR_vm_assist,
            RecordedCall::VcpuOp { .. } => __HYPERVISOR_vcpu_op,
            RecordedCall::MmuextOp { .. } => __HYPERVISOR_mmuext_op,
            RecordedCall::SchedOp(_) => __HYPERVISOR_sched_op,
            RecordedCall::CallbackOp(_) => __HYPERVISOR_callback_op,
            RecordedCall::Raw { op, .. } => *op,
            RecordedCall::Iret(_) => __HYPERVISOR_iret,
        }
    }
}

fn decode_reservation(r: &Reservation<'_>) -> RecordedReservation {
    RecordedReservation {
        extents: r.extents.to_vec(),
        extent_order: r.extent_order,
        mem_flags: r.mem_flags,
        domid: r.domid,
    }
}

fn decode_memory_op(op: &MemoryOp<'_>) -> RecordedMemoryOp {
    match op {
        MemoryOp::IncreaseReservation(r) => {
            RecordedMemoryOp::IncreaseReservation(decode_reservation(r))
        }
        MemoryOp::DecreaseReservation(r) => {
            RecordedMemoryOp::DecreaseReservation(decode_reservation(r))
        }
        MemoryOp::PopulatePhysmap(r) => RecordedMemoryOp::PopulatePhysmap(decode_reservation(r)),
        MemoryOp::MaximumRamPage => RecordedMemoryOp::MaximumRamPage,
        MemoryOp::CurrentReservation(d) => RecordedMemoryOp::CurrentReservation(*d),
        MemoryOp::MaximumReservation(d) => RecordedMemoryOp::MaximumReservation(*d),
        MemoryOp::MaximumGpfn(d) => RecordedMemoryOp::MaximumGpfn(*d),
        MemoryOp::MemoryMap { buffer, .. } => RecordedMemoryOp::MemoryMap {
            capacity: buffer.len(),
        },
        MemoryOp::MachineMemoryMap { buffer, .. } => RecordedMemoryOp::MachineMemoryMap {
            capacity: buffer.len(),
        },
        MemoryOp::MachphysMapping(_) => RecordedMemoryOp::MachphysMapping,
        MemoryOp::AddToPhysmap(arg) => RecordedMemoryOp::AddToPhysmap(*arg),
    }
}

fn decode_evtchn_op(op: &EvtchnOp<'_>) -> RecordedEvtchnOp {
    match op {
        EvtchnOp::AllocUnbound(a) => RecordedEvtchnOp::AllocUnbound {
            dom: a.dom,
            remote_dom: a.remote_dom,
        },
        EvtchnOp::BindInterdomain(a) => RecordedEvtchnOp::BindInterdomain {
            remote_dom: a.remote_dom,
            remote_port: a.remote_port,
        },
        EvtchnOp::BindVirq(a) => RecordedEvtchnOp::BindVirq {
            virq: a.virq,
            vcpu: a.vcpu,
        },
        EvtchnOp::BindIpi(a) => RecordedEvtchnOp::BindIpi { vcpu: a.vcpu },
        EvtchnOp::Close(a) => RecordedEvtchnOp::Close { port: a.port },
        EvtchnOp::Send(a) => RecordedEvtchnOp::Send { port: a.port },
        EvtchnOp::Status(a) => RecordedEvtchnOp::Status {
            dom: a.dom,
            port: a.port,
        },
        EvtchnOp::BindVcpu(a) => RecordedEvtchnOp::BindVcpu {
            port: a.port,
            vcpu: a.vcpu,
        },
        EvtchnOp::Unmask(a) => RecordedEvtchnOp::Unmask { port: a.port },
    }
}

fn decode_vcpu_op(op: &VcpuOp<'_>) -> RecordedVcpuOp {
    match op {
        VcpuOp::Initialise(ctx) => RecordedVcpuOp::Initialise(Box::new(**ctx)),
        VcpuOp::Up => RecordedVcpuOp::Up,
        VcpuOp::Down => RecordedVcpuOp::Down,
        VcpuOp::IsUp => RecordedVcpuOp::IsUp,
        VcpuOp::GetRunstateInfo(_) => RecordedVcpuOp::GetRunstateInfo,
        VcpuOp::RegisterRunstateMemoryArea(area) => RecordedVcpuOp::RegisterRunstateMemoryArea {
            addr: *area as usize,
        },
        VcpuOp::SetPeriodicTimer(arg) => RecordedVcpuOp::SetPeriodicTimer {
            period_ns: arg.period_ns.get(),
        },
        VcpuOp::StopPeriodicTimer => RecordedVcpuOp::StopPeriodicTimer,
        VcpuOp::SetSingleshotTimer(arg) => RecordedVcpuOp::SetSingleshotTimer {
            timeout_abs_ns: arg.timeout_abs_ns.get(),
            flags: arg.flags,
        },
        VcpuOp::StopSingleshotTimer => RecordedVcpuOp::StopSingleshotTimer,
        VcpuOp::RegisterVcpuInfo(arg) => RecordedVcpuOp::RegisterVcpuInfo {
            mfn: arg.mfn.get(),
            offset: arg.offset,
        },
        VcpuOp::SendNmi => RecordedVcpuOp::SendNmi,
        VcpuOp::GetPhysid(_) => RecordedVcpuOp::GetPhysid,
        VcpuOp::RegisterVcpuTimeMemoryArea(area) => RecordedVcpuOp::RegisterVcpuTimeMemoryArea {
            addr: *area as usize,
        },
    }
}

/// The bytes a scripted output is copied into, if the call has an output.
fn output_bytes<'c>(call: &'c mut Call<'_>) -> Option<&'c mut [u8]> {
    Some(match call {
        Call::MmuUpdate { done, .. } | Call::MmuextOp { done, .. } => {
            done.as_deref_mut()?.as_mut_bytes()
        }
        Call::MemoryOp(op) => match op {
            MemoryOp::IncreaseReservation(r)
            | MemoryOp::DecreaseReservation(r)
            | MemoryOp::PopulatePhysmap(r) => r.extents.as_mut_bytes(),
            MemoryOp::MemoryMap { buffer, .. } | MemoryOp::MachineMemoryMap { buffer, .. } => {
                buffer.as_mut_bytes()
            }
            MemoryOp::MachphysMapping(m) => m.as_mut_bytes(),
            _ => return None,
        },
        Call::EventChannelOp(op) => match op {
            EvtchnOp::AllocUnbound(a) => a.as_mut_bytes(),
            EvtchnOp::BindInterdomain(a) => a.as_mut_bytes(),
            EvtchnOp::BindVirq(a) => a.as_mut_bytes(),
            EvtchnOp::BindIpi(a) => a.as_mut_bytes(),
            EvtchnOp::Status(a) => a.as_mut_bytes(),
            _ => return None,
        },
        Call::XenVersion(op) => match op {
            XenVersionOp::Extraversion(b) => b.as_mut_bytes(),
            XenVersionOp::CompileInfo(i) => i.as_mut_bytes(),
            XenVersionOp::Capabilities(b) => b.as_mut_bytes(),
            XenVersionOp::Changeset(b) => b.as_mut_bytes(),
            XenVersionOp::PlatformParameters(p) => p.as_mut_bytes(),
            XenVersionOp::GetFeatures(i) => i.as_mut_bytes(),
            XenVersionOp::GuestHandle(h) => h.as_mut_bytes(),
            XenVersionOp::Commandline(b) => b.as_mut_bytes(),
            XenVersionOp::Version | XenVersionOp::Pagesize => return None,
        },
        Call::ConsoleIo(ConsoleIo::Read(buf)) => buf,
        Call::PhysdevOp(PhysdevOp::IrqStatusQuery(q)) => q.as_mut_bytes(),
        Call::GrantTableOp(GnttabOp::SetupTable { frames, .. }) => frames.as_mut_bytes(),
        Call::GrantTableOp(GnttabOp::QuerySize(q)) => q.as_mut_bytes(),
        Call::VcpuOp {
            op: VcpuOp::GetRunstateInfo(info),
            ..
        } => info.as_mut_bytes(),
        Call::VcpuOp {
            op: VcpuOp::GetPhysid(id),
            ..
        } => id.as_mut_bytes(),
        _ => return None,
    })
}

/// Applies a reply's effects on a non-multicall `call`.
fn apply_outputs(call: &mut Call<'_>, ret: isize, out: Option<&[u8]>) {
    if let Some(out) = out {
        if let Some(dst) = output_bytes(call) {
            let n = out.len().min(dst.len());
            dst[..n].copy_from_slice(&out[..n]);
        }
    }
    match call {
        Call::MmuUpdate {
            reqs,
            done: Some(done),
            ..
        } if out.is_none() && ret >= 0 => {
            **done = reqs.len() as u32;
        }
        Call::MmuextOp {
            ops,
            done: Some(done),
            ..
        } if out.is_none() && ret >= 0 => {
            **done = ops.len() as u32;
        }
        Call::MemoryOp(
            MemoryOp::MemoryMap { buffer, nr_entries }
            | MemoryOp::MachineMemoryMap { buffer, nr_entries },
        ) => {
            let written = out.map_or(0, |o| o.len() / core::mem::size_of::<E820Entry>());
            **nr_entries = written.min(buffer.len()) as u32;
        }
        Call::GrantTableOp(GnttabOp::SetupTable { status, .. }) => {
            **status = if ret == 0 {
                GNTST_okay
            } else {
                GNTST_general_error
            };
        }
        _ => {}
    }
}

/// The recording backend. See the module documentation.
#[derive(Debug, Default)]
pub struct Recorder {
    calls: Vec<RecordedCall>,
    replies: VecDeque<Reply>,
}

impl Recorder {
    /// No calls recorded, no replies scripted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `reply` for the next unanswered call.
    pub fn push_reply(&mut self, reply: Reply) -> &mut Self {
        self.replies.push_back(reply);
        self
    }

    /// Queues a plain return value.
    pub fn push_ret(&mut self, ret: isize) -> &mut Self {
        self.push_reply(Reply::Ret(ret))
    }

    /// Queues a failure with `error`.
    pub fn push_error(&mut self, error: XenError) -> &mut Self {
        self.push_ret(error.to_ret())
    }

    /// Queues a return value with output bytes (the bytes of `out`).
    pub fn push_output<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        ret: isize,
        out: &T,
    ) -> &mut Self {
        self.push_reply(Reply::Output {
            ret,
            out: out.as_bytes().to_vec(),
        })
    }

    /// Queues a multicall reply: the hypercall returns `ret`, entry `i`
    /// gets `results[i]`.
    pub fn push_multicall(
        &mut self,
        ret: isize,
        results: impl IntoIterator<Item = isize>,
    ) -> &mut Self {
        self.push_reply(Reply::Multicall {
            ret,
            results: results.into_iter().collect(),
        })
    }

    /// The calls so far, oldest first.
    pub fn calls(&self) -> &[RecordedCall] {
        &self.calls
    }

    /// Takes the calls so far, leaving none recorded.
    pub fn take_calls(&mut self) -> Vec<RecordedCall> {
        core::mem::take(&mut self.calls)
    }

    /// Scripted replies not used yet.
    pub fn pending_replies(&self) -> usize {
        self.replies.len()
    }
}

impl Hypervisor for Recorder {
    unsafe fn hypercall(&mut self, mut call: Call<'_>) -> isize {
        self.calls.push(RecordedCall::decode(&call));
        let reply = self.replies.pop_front().unwrap_or(Reply::Ret(0));
        if let Call::Multicall { calls, results } = &mut call {
            let (ret, scripted) = match reply {
                Reply::Multicall { ret, results } => (ret, results),
                Reply::Ret(ret) | Reply::Output { ret, .. } => (ret, Vec::new()),
            };
            for (i, (entry, result)) in calls.iter_mut().zip(results.iter_mut()).enumerate() {
                *result = if ret < 0 {
                    ret
                } else {
                    scripted.get(i).copied().unwrap_or(0)
                };
                apply_outputs(entry, *result, None);
            }
            return ret;
        }
        match reply {
            Reply::Ret(ret) | Reply::Multicall { ret, .. } => {
                apply_outputs(&mut call, ret, None);
                ret
            }
            Reply::Output { ret, out } => {
                apply_outputs(&mut call, ret, Some(&out));
                ret
            }
        }
    }

    unsafe fn iret(&mut self, frame: *mut IretFrame) -> ! {
        // SAFETY: the caller guarantees `frame` points to a valid frame.
        let frame = unsafe { *frame };
        self.calls.push(RecordedCall::Iret(frame));
        panic!("HYPERVISOR_iret does not return (recorded {frame:?})");
    }
}
