//! Hypercalls: the [`Hypervisor`] trait, typed calls ([`Call`]), wrappers
//! returning `Result<_, XenError>`, and the backends.
//!
//! # Design
//!
//! A hypercall is described by a [`Call`]: an enum with one variant per
//! hypercall (and one per sub-command where the argument structure differs),
//! holding Rust references to the buffers Xen reads or writes. A backend
//! implements [`Hypervisor::hypercall`] for a `Call`:
//!
//! - [`Lowering`] turns the call into the x86_32 register convention (arguments
//!   in `ebx, ecx, edx, esi, edi`, 64-bit values split low/high, structures
//!   passed by guest address) and hands it to a [`RawHypercall`]: on i686 that
//!   is `HypercallPage` (`call hypercall_page + nr * 32`);
//! - `Recorder` (host tests, or feature `recorder`) records each call
//!   decoded (`RecordedCall`) and returns scripted results.
//!
//! The wrappers ([`Hypervisor::console_write`], [`Hypervisor::mmu_update`],
//! ...) are provided methods of the trait. Those that cannot break memory
//! safety are safe; those that change mappings, descriptor tables, the trap
//! table, callbacks, the kernel stack or another vCPU's state are `unsafe`.
//!
//! Argument structures that Xen expects in memory but that a `Call` holds by
//! value (or that contain guest pointers) are built in an [`ArgSlot`]; for a
//! multicall the backend needs one slot and one [`MulticallEntry`] per entry,
//! from a [`MulticallScratch`] the caller provides, because the ROM runs on the
//! guest kernel's small stack.

// Constants keep Xen's spellings.
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86_32::{AbiU64, TrapInfo, VcpuGuestContext, XenCallback};
use crate::callback::*;
use crate::errno::XenError;
use crate::event_channel::*;
use crate::grant_table::*;
use crate::memory::*;
use crate::physdev::*;
use crate::sched::*;
use crate::vcpu::*;
use crate::version::*;
use crate::xen::*;

#[cfg(target_arch = "x86")]
mod page;
#[cfg(any(test, feature = "recorder"))]
mod recorder;

#[cfg(target_arch = "x86")]
pub use page::HypercallPage;

/// The real backend of the i686 guest: typed calls lowered onto the
/// hypercall page, with multicall scratch space borrowed for `'s`.
#[cfg(target_arch = "x86")]
pub type XenHypervisor<'s> = Lowering<'s, HypercallPage>;
#[cfg(any(test, feature = "recorder"))]
pub use recorder::{
    RecordedCall, RecordedCallbackOp, RecordedConsoleIo, RecordedEvtchnOp, RecordedGnttabOp,
    RecordedMemoryOp, RecordedPhysdevOp, RecordedReservation, RecordedSchedOp, RecordedVcpuOp,
    Recorder, Reply,
};

// ---------------------------------------------------------------------------
// Typed calls

/// One hypercall with typed arguments. See the module documentation.
///
/// Buffers are borrowed for the duration of the call. Where Xen keeps an
/// address beyond the call (I/O bitmap, runstate and time areas), the call
/// holds a raw pointer and its wrapper is `unsafe`.
#[derive(Debug)]
pub enum Call<'a> {
    /// `set_trap_table(table)`: install the virtual IDT. Xen reads entries up
    /// to the first with `address == 0`, which must be inside the slice. An
    /// empty slice passes NULL, which clears the table.
    SetTrapTable(&'a [TrapInfo]),
    /// `mmu_update(reqs, count, pdone, foreigndom)`.
    MmuUpdate {
        reqs: &'a [MmuUpdate],
        /// Receives how many requests were done.
        done: Option<&'a mut u32>,
        /// `DOMID_SELF`, or the foreign domain in bits 0-15 (and PFD+1 in
        /// bits 16-31).
        foreign_dom: u32,
    },
    /// `set_gdt(frame_list, entries)`: `frames` are machine frames.
    SetGdt { frames: &'a [u32], entries: u32 },
    /// `stack_switch(ss, esp)`: the ring-1 stack for traps from ring 3.
    StackSwitch { ss: u32, esp: u32 },
    /// `set_callbacks(event_cs, event_eip, failsafe_cs, failsafe_eip)`.
    SetCallbacks {
        event: XenCallback,
        failsafe: XenCallback,
    },
    /// `fpu_taskswitch(set)`: set (true) or clear the virtual CR0.TS.
    FpuTaskswitch { set: bool },
    /// `set_debugreg(reg, value)`.
    SetDebugreg { reg: u32, value: u32 },
    /// `get_debugreg(reg)`: returns the value.
    GetDebugreg { reg: u32 },
    /// `update_descriptor(ma_lo, ma_hi, desc_lo, desc_hi)`: `machine_addr` is
    /// the machine address of an 8-byte descriptor in a GDT/LDT frame.
    UpdateDescriptor { machine_addr: u64, descriptor: u64 },
    /// `memory_op(cmd, arg)`.
    MemoryOp(MemoryOp<'a>),
    /// `multicall(entries, nr_calls)`: issue `calls` in order as one
    /// hypercall; `results[i]` receives call `i`'s result. The lengths must
    /// match and no entry may itself be a multicall (else `-EINVAL`, nothing
    /// issued). Returns 0 if the list was processed.
    Multicall {
        calls: &'a mut [Call<'a>],
        results: &'a mut [isize],
    },
    /// `update_va_mapping(va, pte_lo, pte_hi, flags)`: `flags` is `UVMF_*`,
    /// ORed with the guest address of a vCPU bitmap for `UVMF_MULTI`.
    UpdateVaMapping { va: u32, pte: u64, flags: u32 },
    /// `update_va_mapping_otherdomain(va, pte_lo, pte_hi, flags, domid)`.
    UpdateVaMappingOtherdomain {
        va: u32,
        pte: u64,
        flags: u32,
        domid: DomId,
    },
    /// `set_timer_op(lo, hi)`: one-shot timer at absolute system time
    /// `deadline_ns` (0 cancels); fires `VIRQ_TIMER`.
    SetTimerOp { deadline_ns: u64 },
    /// `event_channel_op(cmd, arg)`.
    EventChannelOp(EvtchnOp<'a>),
    /// `xen_version(cmd, arg)`.
    XenVersion(XenVersionOp<'a>),
    /// `console_io(cmd, count, buffer)`.
    ConsoleIo(ConsoleIo<'a>),
    /// `physdev_op(cmd, arg)`.
    PhysdevOp(PhysdevOp<'a>),
    /// `grant_table_op(cmd, uop, 1)`.
    GrantTableOp(GnttabOp<'a>),
    /// `vm_assist(cmd, type)`: `VMASST_CMD_*`, `VMASST_TYPE_*`.
    VmAssist { cmd: u32, kind: u32 },
    /// `vcpu_op(cmd, vcpuid, arg)`.
    VcpuOp { vcpu: u32, op: VcpuOp<'a> },
    /// `mmuext_op(ops, count, pdone, foreigndom)`.
    MmuextOp {
        ops: &'a [MmuextOp],
        /// Receives how many operations were done.
        done: Option<&'a mut u32>,
        foreign_dom: u32,
    },
    /// `sched_op(cmd, arg)`.
    SchedOp(SchedOp<'a>),
    /// `callback_op(cmd, arg)`.
    CallbackOp(CallbackOp),
    /// Any hypercall, arguments as the registers hold them. Guest addresses
    /// among `args` are the caller's responsibility.
    Raw { op: u32, args: [u32; 5] },
}

/// `XENMEM_*` commands of [`Call::MemoryOp`].
#[derive(Debug)]
pub enum MemoryOp<'a> {
    /// `XENMEM_increase_reservation`: `extents` receives the new MFNs.
    IncreaseReservation(Reservation<'a>),
    /// `XENMEM_decrease_reservation`: free the frames listed in `extents`.
    DecreaseReservation(Reservation<'a>),
    /// `XENMEM_populate_physmap`: back the PFNs in `extents` with memory.
    PopulatePhysmap(Reservation<'a>),
    /// `XENMEM_maximum_ram_page`.
    MaximumRamPage,
    /// `XENMEM_current_reservation`.
    CurrentReservation(DomId),
    /// `XENMEM_maximum_reservation`.
    MaximumReservation(DomId),
    /// `XENMEM_maximum_gpfn`.
    MaximumGpfn(DomId),
    /// `XENMEM_memory_map`: `nr_entries` receives the entries written.
    MemoryMap {
        buffer: &'a mut [E820Entry],
        nr_entries: &'a mut u32,
    },
    /// `XENMEM_machine_memory_map` (privileged).
    MachineMemoryMap {
        buffer: &'a mut [E820Entry],
        nr_entries: &'a mut u32,
    },
    /// `XENMEM_machphys_mapping`.
    MachphysMapping(&'a mut XenMachphysMapping),
    /// `XENMEM_add_to_physmap`.
    AddToPhysmap(XenAddToPhysmap),
}

/// The arguments of a reservation command (`struct xen_memory_reservation`
/// without its guest pointer).
#[derive(Debug)]
pub struct Reservation<'a> {
    /// In or out, depending on the command: one frame per extent.
    pub extents: &'a mut [u32],
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*`.
    pub mem_flags: u32,
    pub domid: DomId,
}

/// `EVTCHNOP_*` commands of [`Call::EventChannelOp`].
#[derive(Debug)]
pub enum EvtchnOp<'a> {
    /// `EVTCHNOP_alloc_unbound` (`port` out).
    AllocUnbound(&'a mut EvtchnAllocUnbound),
    /// `EVTCHNOP_bind_interdomain` (`local_port` out).
    BindInterdomain(&'a mut EvtchnBindInterdomain),
    /// `EVTCHNOP_bind_virq` (`port` out).
    BindVirq(&'a mut EvtchnBindVirq),
    /// `EVTCHNOP_bind_ipi` (`port` out).
    BindIpi(&'a mut EvtchnBindIpi),
    /// `EVTCHNOP_close`.
    Close(EvtchnClose),
    /// `EVTCHNOP_send`.
    Send(EvtchnSend),
    /// `EVTCHNOP_status` (`status`, `vcpu`, `u` out).
    Status(&'a mut EvtchnStatus),
    /// `EVTCHNOP_bind_vcpu`.
    BindVcpu(EvtchnBindVcpu),
    /// `EVTCHNOP_unmask`.
    Unmask(EvtchnUnmask),
}

/// `XENVER_*` commands of [`Call::XenVersion`].
#[derive(Debug)]
pub enum XenVersionOp<'a> {
    /// `XENVER_version`: returns `major << 16 | minor`.
    Version,
    /// `XENVER_extraversion`.
    Extraversion(&'a mut XenExtraversion),
    /// `XENVER_compile_info`.
    CompileInfo(&'a mut XenCompileInfo),
    /// `XENVER_capabilities`.
    Capabilities(&'a mut XenCapabilitiesInfo),
    /// `XENVER_changeset`.
    Changeset(&'a mut XenChangesetInfo),
    /// `XENVER_platform_parameters`.
    PlatformParameters(&'a mut XenPlatformParameters),
    /// `XENVER_get_features` (`submap_idx` in, `submap` out).
    GetFeatures(&'a mut XenFeatureInfo),
    /// `XENVER_pagesize`: returns the page size.
    Pagesize,
    /// `XENVER_guest_handle`.
    GuestHandle(&'a mut XenDomainHandle),
    /// `XENVER_commandline`.
    Commandline(&'a mut XenCommandline),
}

/// `CONSOLEIO_*` commands of [`Call::ConsoleIo`].
#[derive(Debug)]
pub enum ConsoleIo<'a> {
    /// `CONSOLEIO_write`.
    Write(&'a [u8]),
    /// `CONSOLEIO_read`: returns the bytes read.
    Read(&'a mut [u8]),
}

/// `PHYSDEVOP_*` commands of [`Call::PhysdevOp`].
#[derive(Debug)]
pub enum PhysdevOp<'a> {
    /// `PHYSDEVOP_set_iopl`.
    SetIopl(PhysdevSetIopl),
    /// `PHYSDEVOP_set_iobitmap`: Xen keeps `bitmap` and reads it on every
    /// trapped I/O instruction.
    SetIobitmap { bitmap: *const u8, nr_ports: u32 },
    /// `PHYSDEVOP_eoi`.
    Eoi(PhysdevEoi),
    /// `PHYSDEVOP_irq_status_query` (`flags` out).
    IrqStatusQuery(&'a mut PhysdevIrqStatusQuery),
}

/// `GNTTABOP_*` commands of [`Call::GrantTableOp`] (one structure each).
#[derive(Debug)]
pub enum GnttabOp<'a> {
    /// `GNTTABOP_setup_table`: `frames` receives the table's frames (MFNs for
    /// a PV guest), `status` the `GNTST_*` result.
    SetupTable {
        dom: DomId,
        frames: &'a mut [u32],
        status: &'a mut i16,
    },
    /// `GNTTABOP_query_size`.
    QuerySize(&'a mut GnttabQuerySize),
}

/// `VCPUOP_*` commands of [`Call::VcpuOp`].
#[derive(Debug)]
pub enum VcpuOp<'a> {
    /// `VCPUOP_initialise`.
    Initialise(&'a VcpuGuestContext),
    /// `VCPUOP_up`.
    Up,
    /// `VCPUOP_down`.
    Down,
    /// `VCPUOP_is_up`: returns 1 if up.
    IsUp,
    /// `VCPUOP_get_runstate_info`.
    GetRunstateInfo(&'a mut VcpuRunstateInfo),
    /// `VCPUOP_register_runstate_memory_area`: Xen keeps updating `*area`.
    RegisterRunstateMemoryArea(*mut VcpuRunstateInfo),
    /// `VCPUOP_set_periodic_timer`.
    SetPeriodicTimer(VcpuSetPeriodicTimer),
    /// `VCPUOP_stop_periodic_timer`.
    StopPeriodicTimer,
    /// `VCPUOP_set_singleshot_timer`.
    SetSingleshotTimer(VcpuSetSingleshotTimer),
    /// `VCPUOP_stop_singleshot_timer`.
    StopSingleshotTimer,
    /// `VCPUOP_register_vcpu_info`.
    RegisterVcpuInfo(VcpuRegisterVcpuInfo),
    /// `VCPUOP_send_nmi`.
    SendNmi,
    /// `VCPUOP_get_physid`.
    GetPhysid(&'a mut VcpuGetPhysid),
    /// `VCPUOP_register_vcpu_time_memory_area`: Xen keeps updating `*area`.
    RegisterVcpuTimeMemoryArea(*mut VcpuTimeInfo),
}

/// `SCHEDOP_*` commands of [`Call::SchedOp`].
#[derive(Debug)]
pub enum SchedOp<'a> {
    /// `SCHEDOP_yield`.
    Yield,
    /// `SCHEDOP_block`.
    Block,
    /// `SCHEDOP_shutdown`.
    Shutdown(SchedShutdown),
    /// `SCHEDOP_shutdown_code`.
    ShutdownCode(SchedShutdown),
    /// `SCHEDOP_poll`: block until one of `ports` is pending, or until
    /// system time `timeout_ns` (0: no timeout).
    Poll {
        ports: &'a [EvtchnPort],
        timeout_ns: u64,
    },
    /// `SCHEDOP_remote_shutdown`.
    RemoteShutdown(SchedRemoteShutdown),
}

/// `CALLBACKOP_*` commands of [`Call::CallbackOp`].
#[derive(Debug)]
pub enum CallbackOp {
    /// `CALLBACKOP_register`.
    Register(CallbackRegister),
    /// `CALLBACKOP_unregister`.
    Unregister(CallbackUnregister),
}

impl Call<'_> {
    /// The `__HYPERVISOR_*` number the call is issued with.
    pub fn hypercall_nr(&self) -> u32 {
        match self {
            Call::SetTrapTable(_) => __HYPERVISOR_set_trap_table,
            Call::MmuUpdate { .. } => __HYPERVISOR_mmu_update,
            Call::SetGdt { .. } => __HYPERVISOR_set_gdt,
            Call::StackSwitch { .. } => __HYPERVISOR_stack_switch,
            Call::SetCallbacks { .. } => __HYPERVISOR_set_callbacks,
            Call::FpuTaskswitch { .. } => __HYPERVISOR_fpu_taskswitch,
            Call::SetDebugreg { .. } => __HYPERVISOR_set_debugreg,
            Call::GetDebugreg { .. } => __HYPERVISOR_get_debugreg,
            Call::UpdateDescriptor { .. } => __HYPERVISOR_update_descriptor,
            Call::MemoryOp(_) => __HYPERVISOR_memory_op,
            Call::Multicall { .. } => __HYPERVISOR_multicall,
            Call::UpdateVaMapping { .. } => __HYPERVISOR_update_va_mapping,
            Call::UpdateVaMappingOtherdomain { .. } => __HYPERVISOR_update_va_mapping_otherdomain,
            Call::SetTimerOp { .. } => __HYPERVISOR_set_timer_op,
            Call::EventChannelOp(_) => __HYPERVISOR_event_channel_op,
            Call::XenVersion(_) => __HYPERVISOR_xen_version,
            Call::ConsoleIo(_) => __HYPERVISOR_console_io,
            Call::PhysdevOp(_) => __HYPERVISOR_physdev_op,
            Call::GrantTableOp(_) => __HYPERVISOR_grant_table_op,
            Call::VmAssist { .. } => __HYPERVISOR_vm_assist,
            Call::VcpuOp { .. } => __HYPERVISOR_vcpu_op,
            Call::MmuextOp { .. } => __HYPERVISOR_mmuext_op,
            Call::SchedOp(_) => __HYPERVISOR_sched_op,
            Call::CallbackOp(_) => __HYPERVISOR_callback_op,
            Call::Raw { op, .. } => *op,
        }
    }
}

// ---------------------------------------------------------------------------
// Lowering to the register convention

/// Memory for an argument structure Xen reads (and may write) through a
/// pointer, when the [`Call`] does not hold one in the caller's memory.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ArgSlot {
    words: [u32; 6],
}

/// The structures that go through an [`ArgSlot`] all fit.
const _: () = {
    let cap = core::mem::size_of::<ArgSlot>();
    assert!(core::mem::size_of::<XenMemoryReservation>() <= cap);
    assert!(core::mem::size_of::<XenMemoryMap>() <= cap);
    assert!(core::mem::size_of::<XenAddToPhysmap>() <= cap);
    assert!(core::mem::size_of::<GnttabSetupTable>() <= cap);
    assert!(core::mem::size_of::<SchedPoll>() <= cap);
    assert!(core::mem::size_of::<SchedRemoteShutdown>() <= cap);
    assert!(core::mem::size_of::<VcpuRegisterVcpuInfo>() <= cap);
    assert!(core::mem::size_of::<VcpuSetSingleshotTimer>() <= cap);
    assert!(core::mem::size_of::<CallbackRegister>() <= cap);
    assert!(core::mem::size_of::<PhysdevSetIobitmap>() <= cap);
};

impl ArgSlot {
    /// An empty slot (usable in a `static`).
    pub const EMPTY: Self = Self { words: [0; 6] };

    /// Stores `value` at the start of the slot and returns the slot's address.
    fn put<T: IntoBytes + Immutable>(&mut self, value: &T) -> *const u8 {
        let bytes = value.as_bytes();
        self.words.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
        self.words.as_ptr().cast()
    }

    /// Reads back a `T` from the start of the slot.
    fn get<T: FromBytes>(&self) -> T {
        match T::read_from_prefix(self.words.as_bytes()) {
            Ok((value, _)) => value,
            // Every `T` read back is one that was stored, and all fit (checked
            // above); nothing else is read.
            Err(_) => unreachable!("argument structure larger than ArgSlot"),
        }
    }
}

/// A call lowered to the register convention: `op` in `eax`, `args` in
/// `ebx, ecx, edx, esi, edi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawCall {
    pub op: u32,
    pub args: [u32; 5],
}

impl RawCall {
    const fn new(op: u32, args: [u32; 5]) -> Self {
        Self { op, args }
    }
}

/// The frame `HYPERVISOR_iret` pops, with the slot below it that the iret
/// stub's `push %eax` fills. Returning to ring 1 uses `eip`, `cs`, `eflags`;
/// returning to ring 3 also `esp`, `ss`. `eflags.IF` becomes the inverse of
/// the events mask.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct IretFrame {
    /// Restored into `%eax`.
    pub eax: u32,
    pub eip: u32,
    pub cs: u32,
    pub eflags: u32,
    pub esp: u32,
    pub ss: u32,
}

assert_abi_layout!(
    IretFrame,
    size = 24,
    align = 4,
    eax = 0,
    eip = 4,
    cs = 8,
    eflags = 12,
    esp = 16,
    ss = 20,
);

fn addr_of_slice<T>(raw: &mut impl RawHypercall, slice: &[T]) -> u32 {
    raw.guest_addr(slice.as_ptr().cast())
}

fn addr_of<T>(raw: &mut impl RawHypercall, value: &T) -> u32 {
    raw.guest_addr((value as *const T).cast())
}

fn addr_of_opt_u32(raw: &mut impl RawHypercall, value: &Option<&mut u32>) -> u32 {
    match value {
        Some(v) => addr_of(raw, &**v),
        None => 0,
    }
}

fn len_u32(len: usize) -> u32 {
    // Slices handed to Xen by a 32-bit guest never exceed 2^32 elements; on
    // the host saturate rather than wrap.
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn split(value: u64) -> (u32, u32) {
    (value as u32, (value >> 32) as u32)
}

impl Call<'_> {
    /// Lowers the call to registers, building any argument structure in
    /// `slot`, with guest addresses from `raw`. A multicall is lowered by
    /// [`Lowering`] itself, never here.
    pub fn lower(&mut self, slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> RawCall {
        match self {
            Call::SetTrapTable(table) => {
                let table = if table.is_empty() {
                    0
                } else {
                    addr_of_slice(raw, table)
                };
                RawCall::new(__HYPERVISOR_set_trap_table, [table, 0, 0, 0, 0])
            }
            Call::MmuUpdate {
                reqs,
                done,
                foreign_dom,
            } => RawCall::new(
                __HYPERVISOR_mmu_update,
                [
                    addr_of_slice(raw, reqs),
                    len_u32(reqs.len()),
                    addr_of_opt_u32(raw, done),
                    *foreign_dom,
                    0,
                ],
            ),
            Call::SetGdt { frames, entries } => RawCall::new(
                __HYPERVISOR_set_gdt,
                [addr_of_slice(raw, frames), *entries, 0, 0, 0],
            ),
            Call::StackSwitch { ss, esp } => {
                RawCall::new(__HYPERVISOR_stack_switch, [*ss, *esp, 0, 0, 0])
            }
            Call::SetCallbacks { event, failsafe } => RawCall::new(
                __HYPERVISOR_set_callbacks,
                [event.cs, event.eip, failsafe.cs, failsafe.eip, 0],
            ),
            Call::FpuTaskswitch { set } => {
                RawCall::new(__HYPERVISOR_fpu_taskswitch, [*set as u32, 0, 0, 0, 0])
            }
            Call::SetDebugreg { reg, value } => {
                RawCall::new(__HYPERVISOR_set_debugreg, [*reg, *value, 0, 0, 0])
            }
            Call::GetDebugreg { reg } => {
                RawCall::new(__HYPERVISOR_get_debugreg, [*reg, 0, 0, 0, 0])
            }
            Call::UpdateDescriptor {
                machine_addr,
                descriptor,
            } => {
                let (ma_lo, ma_hi) = split(*machine_addr);
                let (d_lo, d_hi) = split(*descriptor);
                RawCall::new(
                    __HYPERVISOR_update_descriptor,
                    [ma_lo, ma_hi, d_lo, d_hi, 0],
                )
            }
            Call::MemoryOp(op) => {
                let (cmd, arg) = op.lower(slot, raw);
                RawCall::new(__HYPERVISOR_memory_op, [cmd, arg, 0, 0, 0])
            }
            Call::Multicall { .. } => {
                // An empty multicall: harmless, and never reached (Lowering
                // handles multicalls before lowering single calls).
                RawCall::new(__HYPERVISOR_multicall, [0, 0, 0, 0, 0])
            }
            Call::UpdateVaMapping { va, pte, flags } => {
                let (lo, hi) = split(*pte);
                RawCall::new(__HYPERVISOR_update_va_mapping, [*va, lo, hi, *flags, 0])
            }
            Call::UpdateVaMappingOtherdomain {
                va,
                pte,
                flags,
                domid,
            } => {
                let (lo, hi) = split(*pte);
                RawCall::new(
                    __HYPERVISOR_update_va_mapping_otherdomain,
                    [*va, lo, hi, *flags, *domid as u32],
                )
            }
            Call::SetTimerOp { deadline_ns } => {
                let (lo, hi) = split(*deadline_ns);
                RawCall::new(__HYPERVISOR_set_timer_op, [lo, hi, 0, 0, 0])
            }
            Call::EventChannelOp(op) => {
                let (cmd, arg) = op.lower(slot, raw);
                RawCall::new(__HYPERVISOR_event_channel_op, [cmd, arg, 0, 0, 0])
            }
            Call::XenVersion(op) => {
                let (cmd, arg) = op.lower(raw);
                RawCall::new(__HYPERVISOR_xen_version, [cmd, arg, 0, 0, 0])
            }
            Call::ConsoleIo(ConsoleIo::Write(bytes)) => RawCall::new(
                __HYPERVISOR_console_io,
                [
                    CONSOLEIO_write,
                    len_u32(bytes.len()),
                    addr_of_slice(raw, bytes),
                    0,
                    0,
                ],
            ),
            Call::ConsoleIo(ConsoleIo::Read(buf)) => RawCall::new(
                __HYPERVISOR_console_io,
                [
                    CONSOLEIO_read,
                    len_u32(buf.len()),
                    addr_of_slice(raw, buf),
                    0,
                    0,
                ],
            ),
            Call::PhysdevOp(op) => {
                let (cmd, arg) = op.lower(slot, raw);
                RawCall::new(__HYPERVISOR_physdev_op, [cmd, arg, 0, 0, 0])
            }
            Call::GrantTableOp(op) => {
                let (cmd, arg) = op.lower(slot, raw);
                RawCall::new(__HYPERVISOR_grant_table_op, [cmd, arg, 1, 0, 0])
            }
            Call::VmAssist { cmd, kind } => {
                RawCall::new(__HYPERVISOR_vm_assist, [*cmd, *kind, 0, 0, 0])
            }
            Call::VcpuOp { vcpu, op } => {
                let (cmd, arg) = op.lower(slot, raw);
                RawCall::new(__HYPERVISOR_vcpu_op, [cmd, *vcpu, arg, 0, 0])
            }
            Call::MmuextOp {
                ops,
                done,
                foreign_dom,
            } => RawCall::new(
                __HYPERVISOR_mmuext_op,
                [
                    addr_of_slice(raw, ops),
                    len_u32(ops.len()),
                    addr_of_opt_u32(raw, done),
                    *foreign_dom,
                    0,
                ],
            ),
            Call::SchedOp(op) => {
                let (cmd, arg) = op.lower(slot, raw);
                RawCall::new(__HYPERVISOR_sched_op, [cmd, arg, 0, 0, 0])
            }
            Call::CallbackOp(op) => {
                let (cmd, arg) = match op {
                    CallbackOp::Register(reg) => (CALLBACKOP_register, slot.put(reg)),
                    CallbackOp::Unregister(unreg) => (CALLBACKOP_unregister, slot.put(unreg)),
                };
                RawCall::new(
                    __HYPERVISOR_callback_op,
                    [cmd, raw.guest_addr(arg), 0, 0, 0],
                )
            }
            Call::Raw { op, args } => RawCall::new(*op, *args),
        }
    }

    /// After Xen returned `ret`: copies results that Xen wrote into `slot`
    /// back to where the call wants them.
    pub fn complete(&mut self, slot: &ArgSlot, ret: isize) {
        match self {
            Call::MemoryOp(
                MemoryOp::MemoryMap { nr_entries, .. }
                | MemoryOp::MachineMemoryMap { nr_entries, .. },
            ) => {
                // Xen updates nr_entries only on success; report nothing
                // written otherwise rather than the capacity.
                **nr_entries = if ret == 0 {
                    slot.get::<XenMemoryMap>().nr_entries
                } else {
                    0
                };
            }
            Call::GrantTableOp(GnttabOp::SetupTable { status, .. }) => {
                **status = slot.get::<GnttabSetupTable>().status;
            }
            _ => {}
        }
    }
}

fn reservation_arg(r: &Reservation<'_>, slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> u32 {
    let arg = XenMemoryReservation {
        extent_start: addr_of_slice(raw, r.extents),
        nr_extents: len_u32(r.extents.len()),
        extent_order: r.extent_order,
        mem_flags: r.mem_flags,
        domid: r.domid,
        _pad0: 0,
    };
    raw.guest_addr(slot.put(&arg))
}

fn memory_map_arg(buffer: &[E820Entry], slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> u32 {
    let map = XenMemoryMap {
        nr_entries: len_u32(buffer.len()),
        buffer: addr_of_slice(raw, buffer),
    };
    raw.guest_addr(slot.put(&map))
}

impl MemoryOp<'_> {
    fn lower(&mut self, slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> (u32, u32) {
        match self {
            MemoryOp::IncreaseReservation(r) => {
                (XENMEM_increase_reservation, reservation_arg(r, slot, raw))
            }
            MemoryOp::DecreaseReservation(r) => {
                (XENMEM_decrease_reservation, reservation_arg(r, slot, raw))
            }
            MemoryOp::PopulatePhysmap(r) => {
                (XENMEM_populate_physmap, reservation_arg(r, slot, raw))
            }
            MemoryOp::MaximumRamPage => (XENMEM_maximum_ram_page, 0),
            MemoryOp::CurrentReservation(dom) => {
                (XENMEM_current_reservation, raw.guest_addr(slot.put(dom)))
            }
            MemoryOp::MaximumReservation(dom) => {
                (XENMEM_maximum_reservation, raw.guest_addr(slot.put(dom)))
            }
            MemoryOp::MaximumGpfn(dom) => (XENMEM_maximum_gpfn, raw.guest_addr(slot.put(dom))),
            MemoryOp::MemoryMap { buffer, .. } => {
                (XENMEM_memory_map, memory_map_arg(buffer, slot, raw))
            }
            MemoryOp::MachineMemoryMap { buffer, .. } => {
                (XENMEM_machine_memory_map, memory_map_arg(buffer, slot, raw))
            }
            MemoryOp::MachphysMapping(mapping) => {
                (XENMEM_machphys_mapping, addr_of(raw, &**mapping))
            }
            MemoryOp::AddToPhysmap(arg) => (XENMEM_add_to_physmap, raw.guest_addr(slot.put(arg))),
        }
    }
}

impl EvtchnOp<'_> {
    fn lower(&mut self, slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> (u32, u32) {
        match self {
            EvtchnOp::AllocUnbound(arg) => (EVTCHNOP_alloc_unbound, addr_of(raw, &**arg)),
            EvtchnOp::BindInterdomain(arg) => (EVTCHNOP_bind_interdomain, addr_of(raw, &**arg)),
            EvtchnOp::BindVirq(arg) => (EVTCHNOP_bind_virq, addr_of(raw, &**arg)),
            EvtchnOp::BindIpi(arg) => (EVTCHNOP_bind_ipi, addr_of(raw, &**arg)),
            EvtchnOp::Close(arg) => (EVTCHNOP_close, raw.guest_addr(slot.put(arg))),
            EvtchnOp::Send(arg) => (EVTCHNOP_send, raw.guest_addr(slot.put(arg))),
            EvtchnOp::Status(arg) => (EVTCHNOP_status, addr_of(raw, &**arg)),
            EvtchnOp::BindVcpu(arg) => (EVTCHNOP_bind_vcpu, raw.guest_addr(slot.put(arg))),
            EvtchnOp::Unmask(arg) => (EVTCHNOP_unmask, raw.guest_addr(slot.put(arg))),
        }
    }
}

impl XenVersionOp<'_> {
    fn lower(&mut self, raw: &mut impl RawHypercall) -> (u32, u32) {
        match self {
            XenVersionOp::Version => (XENVER_version, 0),
            XenVersionOp::Extraversion(buf) => (XENVER_extraversion, addr_of(raw, &**buf)),
            XenVersionOp::CompileInfo(info) => (XENVER_compile_info, addr_of(raw, &**info)),
            XenVersionOp::Capabilities(buf) => (XENVER_capabilities, addr_of(raw, &**buf)),
            XenVersionOp::Changeset(buf) => (XENVER_changeset, addr_of(raw, &**buf)),
            XenVersionOp::PlatformParameters(p) => (XENVER_platform_parameters, addr_of(raw, &**p)),
            XenVersionOp::GetFeatures(info) => (XENVER_get_features, addr_of(raw, &**info)),
            XenVersionOp::Pagesize => (XENVER_pagesize, 0),
            XenVersionOp::GuestHandle(handle) => (XENVER_guest_handle, addr_of(raw, &**handle)),
            XenVersionOp::Commandline(buf) => (XENVER_commandline, addr_of(raw, &**buf)),
        }
    }
}

impl PhysdevOp<'_> {
    fn lower(&mut self, slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> (u32, u32) {
        match self {
            PhysdevOp::SetIopl(arg) => (PHYSDEVOP_set_iopl, raw.guest_addr(slot.put(arg))),
            PhysdevOp::SetIobitmap { bitmap, nr_ports } => {
                let bitmap = if bitmap.is_null() {
                    0
                } else {
                    raw.guest_addr(*bitmap)
                };
                let arg = PhysdevSetIobitmap {
                    bitmap,
                    nr_ports: *nr_ports,
                };
                (PHYSDEVOP_set_iobitmap, raw.guest_addr(slot.put(&arg)))
            }
            PhysdevOp::Eoi(arg) => (PHYSDEVOP_eoi, raw.guest_addr(slot.put(arg))),
            PhysdevOp::IrqStatusQuery(arg) => (PHYSDEVOP_irq_status_query, addr_of(raw, &**arg)),
        }
    }
}

impl GnttabOp<'_> {
    fn lower(&mut self, slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> (u32, u32) {
        match self {
            GnttabOp::SetupTable { dom, frames, .. } => {
                let arg = GnttabSetupTable {
                    dom: *dom,
                    _pad0: 0,
                    nr_frames: len_u32(frames.len()),
                    // Left as an error unless Xen reports success.
                    status: GNTST_general_error,
                    _pad1: 0,
                    frame_list: addr_of_slice(raw, frames),
                };
                (GNTTABOP_setup_table, raw.guest_addr(slot.put(&arg)))
            }
            GnttabOp::QuerySize(arg) => (GNTTABOP_query_size, addr_of(raw, &**arg)),
        }
    }
}

impl VcpuOp<'_> {
    fn lower(&mut self, slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> (u32, u32) {
        match self {
            VcpuOp::Initialise(ctx) => (VCPUOP_initialise, addr_of(raw, &**ctx)),
            VcpuOp::Up => (VCPUOP_up, 0),
            VcpuOp::Down => (VCPUOP_down, 0),
            VcpuOp::IsUp => (VCPUOP_is_up, 0),
            VcpuOp::GetRunstateInfo(info) => (VCPUOP_get_runstate_info, addr_of(raw, &**info)),
            VcpuOp::RegisterRunstateMemoryArea(area) => {
                let arg = VcpuRegisterRunstateMemoryArea {
                    addr: AbiU64::new(raw.guest_addr(area.cast_const().cast()) as u64),
                };
                (
                    VCPUOP_register_runstate_memory_area,
                    raw.guest_addr(slot.put(&arg)),
                )
            }
            VcpuOp::SetPeriodicTimer(arg) => {
                (VCPUOP_set_periodic_timer, raw.guest_addr(slot.put(arg)))
            }
            VcpuOp::StopPeriodicTimer => (VCPUOP_stop_periodic_timer, 0),
            VcpuOp::SetSingleshotTimer(arg) => {
                (VCPUOP_set_singleshot_timer, raw.guest_addr(slot.put(arg)))
            }
            VcpuOp::StopSingleshotTimer => (VCPUOP_stop_singleshot_timer, 0),
            VcpuOp::RegisterVcpuInfo(arg) => {
                (VCPUOP_register_vcpu_info, raw.guest_addr(slot.put(arg)))
            }
            VcpuOp::SendNmi => (VCPUOP_send_nmi, 0),
            VcpuOp::GetPhysid(arg) => (VCPUOP_get_physid, addr_of(raw, &**arg)),
            VcpuOp::RegisterVcpuTimeMemoryArea(area) => {
                let arg = VcpuRegisterTimeMemoryArea {
                    addr: AbiU64::new(raw.guest_addr(area.cast_const().cast()) as u64),
                };
                (
                    VCPUOP_register_vcpu_time_memory_area,
                    raw.guest_addr(slot.put(&arg)),
                )
            }
        }
    }
}

impl SchedOp<'_> {
    fn lower(&mut self, slot: &mut ArgSlot, raw: &mut impl RawHypercall) -> (u32, u32) {
        match self {
            SchedOp::Yield => (SCHEDOP_yield, 0),
            SchedOp::Block => (SCHEDOP_block, 0),
            SchedOp::Shutdown(arg) => (SCHEDOP_shutdown, raw.guest_addr(slot.put(arg))),
            SchedOp::ShutdownCode(arg) => (SCHEDOP_shutdown_code, raw.guest_addr(slot.put(arg))),
            SchedOp::Poll { ports, timeout_ns } => {
                let arg = SchedPoll {
                    ports: addr_of_slice(raw, ports),
                    nr_ports: len_u32(ports.len()),
                    timeout: AbiU64::new(*timeout_ns),
                };
                (SCHEDOP_poll, raw.guest_addr(slot.put(&arg)))
            }
            SchedOp::RemoteShutdown(arg) => {
                (SCHEDOP_remote_shutdown, raw.guest_addr(slot.put(arg)))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Backends

/// The bottom of a hypercall backend: issues a call already lowered to
/// registers. [`Lowering`] turns it into a [`Hypervisor`].
pub trait RawHypercall {
    /// The guest address Xen should use for host pointer `ptr` (on the i686
    /// guest, the pointer's value).
    fn guest_addr(&mut self, ptr: *const u8) -> u32;

    /// Issues hypercall `op` with `args` in `ebx, ecx, edx, esi, edi` and
    /// returns `eax`, sign-extended.
    ///
    /// # Safety
    ///
    /// As for [`Hypervisor::hypercall`]; in addition every guest address in
    /// `args`, and in the structures they point to, must be valid for what
    /// Xen does with it.
    unsafe fn raw_hypercall(&mut self, op: u32, args: [u32; 5]) -> isize;

    /// Jumps to the `HYPERVISOR_iret` stub with the stack pointer at
    /// `&frame.eip`.
    ///
    /// # Safety
    ///
    /// As for [`Hypervisor::iret`].
    unsafe fn raw_iret(&mut self, frame: *mut IretFrame) -> !;
}

/// Entries and argument slots a [`Lowering`] backend builds multicalls in.
/// `N` entries per `HYPERVISOR_multicall`; longer lists go in chunks of `N`.
#[derive(Debug)]
#[repr(C)]
pub struct MulticallScratch<const N: usize> {
    entries: [MulticallEntry; N],
    slots: [ArgSlot; N],
}

impl<const N: usize> MulticallScratch<N> {
    /// Zeroed scratch space (usable in a `static`).
    pub const fn new() -> Self {
        Self {
            entries: [MulticallEntry {
                op: 0,
                result: 0,
                args: [0; 6],
            }; N],
            slots: [ArgSlot::EMPTY; N],
        }
    }
}

impl<const N: usize> Default for MulticallScratch<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`Hypervisor`] over a [`RawHypercall`]: lowers each [`Call`] to the
/// x86_32 register convention.
///
/// Without multicall scratch space ([`Lowering::new`]), the entries of a
/// [`Call::Multicall`] are issued as separate hypercalls: same results, more
/// traps. With [`Lowering::with_multicall_scratch`], they are issued as
/// `HYPERVISOR_multicall`s of up to `N` entries (the entries of a multicall
/// are independent hypercalls executed in order, so chunking does not change
/// the outcome).
#[derive(Debug)]
pub struct Lowering<'s, R> {
    raw: R,
    entries: &'s mut [MulticallEntry],
    slots: &'s mut [ArgSlot],
}

impl<R: RawHypercall> Lowering<'static, R> {
    /// A backend without multicall scratch space.
    pub fn new(raw: R) -> Self {
        Self {
            raw,
            entries: &mut [],
            slots: &mut [],
        }
    }
}

impl<'s, R: RawHypercall> Lowering<'s, R> {
    /// A backend that builds multicalls in `scratch`.
    pub fn with_multicall_scratch<const N: usize>(
        raw: R,
        scratch: &'s mut MulticallScratch<N>,
    ) -> Self {
        Self {
            raw,
            entries: &mut scratch.entries,
            slots: &mut scratch.slots,
        }
    }

    /// The raw backend.
    pub fn raw(&self) -> &R {
        &self.raw
    }

    /// The raw backend, mutably.
    pub fn raw_mut(&mut self) -> &mut R {
        &mut self.raw
    }

    /// Issues one non-multicall call.
    ///
    /// # Safety
    ///
    /// As for [`Hypervisor::hypercall`].
    unsafe fn issue_single(&mut self, call: &mut Call<'_>) -> isize {
        let mut slot = ArgSlot::EMPTY;
        let lowered = call.lower(&mut slot, &mut self.raw);
        // SAFETY: the caller upholds the hypercall's contract; the guest
        // addresses in `lowered` point at `slot` (live until after the call)
        // or at buffers `call` borrows for its whole duration.
        let ret = unsafe { self.raw.raw_hypercall(lowered.op, lowered.args) };
        call.complete(&slot, ret);
        ret
    }

    /// Issues the entries of a multicall, in chunks of the scratch size.
    ///
    /// # Safety
    ///
    /// As for [`Hypervisor::hypercall`], for every entry.
    unsafe fn issue_multicall(&mut self, calls: &mut [Call<'_>], results: &mut [isize]) -> isize {
        let nested = calls.iter().any(|c| matches!(c, Call::Multicall { .. }));
        if calls.len() != results.len() || nested {
            return XenError::EINVAL.to_ret();
        }
        let capacity = self.entries.len().min(self.slots.len());
        if capacity == 0 {
            for (call, result) in calls.iter_mut().zip(results.iter_mut()) {
                // SAFETY: forwarded from the caller, entry by entry.
                *result = unsafe { self.issue_single(call) };
            }
            return 0;
        }
        let mut start = 0;
        while start < calls.len() {
            let end = (start + capacity).min(calls.len());
            let chunk = &mut calls[start..end];
            for (i, call) in chunk.iter_mut().enumerate() {
                let lowered = call.lower(&mut self.slots[i], &mut self.raw);
                let [a0, a1, a2, a3, a4] = lowered.args;
                self.entries[i] = MulticallEntry {
                    op: lowered.op,
                    result: 0,
                    args: [a0, a1, a2, a3, a4, 0],
                };
            }
            let list = addr_of_slice(&mut self.raw, &self.entries[..chunk.len()]);
            // SAFETY: `list` addresses `chunk.len()` initialised entries in
            // scratch space this backend borrows exclusively; their argument
            // addresses point at `self.slots` or at buffers the calls borrow.
            let ret = unsafe {
                self.raw.raw_hypercall(
                    __HYPERVISOR_multicall,
                    [list, len_u32(chunk.len()), 0, 0, 0],
                )
            };
            if ret < 0 {
                // The list itself was refused: no entry's result is known.
                for result in &mut results[start..] {
                    *result = ret;
                }
                return ret;
            }
            for (i, call) in chunk.iter_mut().enumerate() {
                // `result` is a C long: sign-extend the 32-bit value.
                let result = self.entries[i].result as i32 as isize;
                results[start + i] = result;
                call.complete(&self.slots[i], result);
            }
            start = end;
        }
        0
    }
}

impl<R: RawHypercall> Hypervisor for Lowering<'_, R> {
    unsafe fn hypercall(&mut self, mut call: Call<'_>) -> isize {
        match &mut call {
            Call::Multicall { calls, results } => {
                // SAFETY: forwarded from the caller.
                unsafe { self.issue_multicall(calls, results) }
            }
            // SAFETY: forwarded from the caller.
            _ => unsafe { self.issue_single(&mut call) },
        }
    }

    unsafe fn iret(&mut self, frame: *mut IretFrame) -> ! {
        // SAFETY: forwarded from the caller.
        unsafe { self.raw.raw_iret(frame) }
    }
}

// ---------------------------------------------------------------------------
// The trait and its wrappers

/// An `mmu_update` or `mmuext_op` batch that stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchError {
    /// Why Xen stopped.
    pub error: XenError,
    /// Requests done before the failing one (the failing one is at this
    /// index).
    pub done: u32,
}

fn unit(ret: isize) -> Result<(), XenError> {
    XenError::from_ret(ret).map(|_| ())
}

/// The hypercall interface. Implemented by [`Lowering`] (over the real
/// `HypercallPage` on i686) and by `Recorder` for host tests.
pub trait Hypervisor {
    /// Issues `call` and returns Xen's raw result: a `long`, negative errno
    /// on failure ([`XenError::from_ret`] splits it).
    ///
    /// # Safety
    ///
    /// The call's effect must not break what the running Rust code relies
    /// on: it must not unmap, remap, make read-only or give away memory that
    /// live references point to (`mmu_update`, `update_va_mapping`,
    /// `mmuext_op`, `decrease_reservation`, grant operations), nor replace the
    /// trap table, callbacks, kernel stack, descriptors or vCPU state in a
    /// way the code is not prepared for. Raw pointers in the call (and guest
    /// addresses in [`Call::Raw`] arguments) must be valid for as long as Xen
    /// uses them, which for `PHYSDEVOP_set_iobitmap` and the registered
    /// runstate and time areas is until they are replaced.
    unsafe fn hypercall(&mut self, call: Call<'_>) -> isize;

    /// `HYPERVISOR_iret`: returns from an exception or event frame through
    /// Xen. The stub is jumped to, not called; it pushes `frame.eax` into
    /// `frame`'s first word and Xen pops the rest (`eip, cs, eflags`, and
    /// `esp, ss` for an outer ring).
    ///
    /// # Safety
    ///
    /// `frame` must point to a writable, 4-byte aligned [`IretFrame`] that
    /// stays valid until Xen has read it; returning to the same ring, the
    /// resumed code's stack pointer ends just past `frame.eflags`. The
    /// current stack is abandoned without unwinding: nothing on it may need
    /// to run or stay valid.
    unsafe fn iret(&mut self, frame: *mut IretFrame) -> !;

    /// [`hypercall`](Self::hypercall) with [`Call::Raw`].
    ///
    /// # Safety
    ///
    /// As for [`hypercall`](Self::hypercall); guest addresses in `args` must
    /// be valid for what Xen does with them.
    unsafe fn hypercall_raw(&mut self, op: u32, args: [u32; 5]) -> isize {
        // SAFETY: forwarded from the caller.
        unsafe { self.hypercall(Call::Raw { op, args }) }
    }

    // --- set_trap_table, set_gdt, stack_switch, callbacks ------------------

    /// `HYPERVISOR_set_trap_table`. `table` must contain a terminating entry
    /// (`address == 0`), else `EINVAL` without a hypercall. An empty `table`
    /// clears the trap table.
    ///
    /// # Safety
    ///
    /// The handlers become the targets of every exception: they must be
    /// valid entry points for Xen's exception frames.
    unsafe fn set_trap_table(&mut self, table: &[TrapInfo]) -> Result<(), XenError> {
        if !table.is_empty() && !table.iter().any(|t| t.address == 0) {
            return Err(XenError::EINVAL);
        }
        // SAFETY: forwarded from the caller; Xen reads the slice only up to
        // the terminator checked above.
        unit(unsafe { self.hypercall(Call::SetTrapTable(table)) })
    }

    /// `HYPERVISOR_set_gdt`: `frames` are the machine frames of a GDT of
    /// `entries` descriptors (at most `FIRST_RESERVED_GDT_ENTRY`; the frames
    /// must have no writable mapping).
    ///
    /// # Safety
    ///
    /// Segment registers in use must stay valid with the new GDT.
    unsafe fn set_gdt(&mut self, frames: &[u32], entries: u32) -> Result<(), XenError> {
        if entries as usize > frames.len() * 512 {
            return Err(XenError::EINVAL);
        }
        // SAFETY: forwarded from the caller.
        unit(unsafe { self.hypercall(Call::SetGdt { frames, entries }) })
    }

    /// `HYPERVISOR_stack_switch`: `ss:esp` becomes the ring-1 stack for
    /// traps and events taken in ring 3.
    ///
    /// # Safety
    ///
    /// `ss:esp` must be a valid, writable stack for Xen's frames.
    unsafe fn stack_switch(&mut self, ss: u32, esp: u32) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe { self.hypercall(Call::StackSwitch { ss, esp }) })
    }

    /// `HYPERVISOR_set_callbacks`: event and failsafe callbacks.
    ///
    /// # Safety
    ///
    /// Both must be valid entry points for Xen's event / failsafe frames.
    unsafe fn set_callbacks(
        &mut self,
        event: XenCallback,
        failsafe: XenCallback,
    ) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe { self.hypercall(Call::SetCallbacks { event, failsafe }) })
    }

    /// `HYPERVISOR_callback_op(CALLBACKOP_register)`.
    ///
    /// # Safety
    ///
    /// `address` must be a valid entry point for callback `kind`.
    unsafe fn callback_register(
        &mut self,
        kind: u16,
        flags: u16,
        address: XenCallback,
    ) -> Result<(), XenError> {
        let arg = CallbackRegister {
            kind,
            flags,
            address,
        };
        // SAFETY: forwarded from the caller.
        unit(unsafe { self.hypercall(Call::CallbackOp(CallbackOp::Register(arg))) })
    }

    /// `HYPERVISOR_callback_op(CALLBACKOP_unregister)`.
    ///
    /// # Safety
    ///
    /// Nothing may depend on callback `kind` being delivered.
    unsafe fn callback_unregister(&mut self, kind: u16) -> Result<(), XenError> {
        let arg = CallbackUnregister { kind, _unused: 0 };
        // SAFETY: forwarded from the caller.
        unit(unsafe { self.hypercall(Call::CallbackOp(CallbackOp::Unregister(arg))) })
    }

    // --- CPU state -----------------------------------------------------------

    /// `HYPERVISOR_fpu_taskswitch`: set (true) or clear the virtual CR0.TS.
    fn fpu_taskswitch(&mut self, set: bool) -> Result<(), XenError> {
        // SAFETY: only the virtual CR0.TS changes; no memory is involved.
        unit(unsafe { self.hypercall(Call::FpuTaskswitch { set }) })
    }

    /// `HYPERVISOR_set_debugreg`.
    fn set_debugreg(&mut self, reg: u32, value: u32) -> Result<(), XenError> {
        // SAFETY: debug registers can only cause #DB traps, not memory
        // changes.
        unit(unsafe { self.hypercall(Call::SetDebugreg { reg, value }) })
    }

    /// `HYPERVISOR_get_debugreg`.
    fn get_debugreg(&mut self, reg: u32) -> Result<u32, XenError> {
        // SAFETY: a read of a virtual register.
        XenError::from_ret(unsafe { self.hypercall(Call::GetDebugreg { reg }) }).map(|v| v as u32)
    }

    /// `HYPERVISOR_update_descriptor`: write the 8-byte `descriptor` at
    /// machine address `machine_addr` (8-byte aligned, in a GDT/LDT frame or
    /// a writable page).
    ///
    /// # Safety
    ///
    /// Segment registers that use the descriptor must stay valid.
    unsafe fn update_descriptor(
        &mut self,
        machine_addr: u64,
        descriptor: u64,
    ) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe {
            self.hypercall(Call::UpdateDescriptor {
                machine_addr,
                descriptor,
            })
        })
    }

    /// `HYPERVISOR_vm_assist(cmd, type)`.
    fn vm_assist(&mut self, cmd: u32, kind: u32) -> Result<(), XenError> {
        // SAFETY: assists change how Xen emulates guest operations, not the
        // guest's memory.
        unit(unsafe { self.hypercall(Call::VmAssist { cmd, kind }) })
    }

    // --- MMU -------------------------------------------------------------------

    /// `HYPERVISOR_mmu_update`: all of `reqs`, in order.
    ///
    /// # Safety
    ///
    /// The updates must not unmap or change memory live references use.
    unsafe fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        foreign_dom: u32,
    ) -> Result<(), BatchError> {
        let mut done = 0;
        // SAFETY: forwarded from the caller.
        let ret = unsafe {
            self.hypercall(Call::MmuUpdate {
                reqs,
                done: Some(&mut done),
                foreign_dom,
            })
        };
        XenError::from_ret(ret)
            .map(|_| ())
            .map_err(|error| BatchError { error, done })
    }

    /// `HYPERVISOR_mmuext_op`: all of `ops`, in order.
    ///
    /// # Safety
    ///
    /// The operations (base pointer switch, unpin, LDT, ...) must not break
    /// memory live references use.
    unsafe fn mmuext_op(&mut self, ops: &[MmuextOp], foreign_dom: u32) -> Result<(), BatchError> {
        let mut done = 0;
        // SAFETY: forwarded from the caller.
        let ret = unsafe {
            self.hypercall(Call::MmuextOp {
                ops,
                done: Some(&mut done),
                foreign_dom,
            })
        };
        XenError::from_ret(ret)
            .map(|_| ())
            .map_err(|error| BatchError { error, done })
    }

    /// `HYPERVISOR_update_va_mapping(va, pte, flags)`: set the L1 entry that
    /// maps `va` in the current address space (the L2 entry must be present)
    /// and flush per `flags` (`UVMF_*`).
    ///
    /// # Safety
    ///
    /// The mapping change must not break live references.
    unsafe fn update_va_mapping(&mut self, va: u32, pte: u64, flags: u32) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe { self.hypercall(Call::UpdateVaMapping { va, pte, flags }) })
    }

    /// `HYPERVISOR_update_va_mapping_otherdomain`.
    ///
    /// # Safety
    ///
    /// As for [`update_va_mapping`](Self::update_va_mapping).
    unsafe fn update_va_mapping_otherdomain(
        &mut self,
        va: u32,
        pte: u64,
        flags: u32,
        domid: DomId,
    ) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe {
            self.hypercall(Call::UpdateVaMappingOtherdomain {
                va,
                pte,
                flags,
                domid,
            })
        })
    }

    /// `HYPERVISOR_multicall`: `results[i]` receives the raw result of
    /// `calls[i]`. `Ok` means the list was processed; check each result.
    ///
    /// # Safety
    ///
    /// As for [`hypercall`](Self::hypercall), for every entry.
    unsafe fn multicall<'a>(
        &mut self,
        calls: &'a mut [Call<'a>],
        results: &'a mut [isize],
    ) -> Result<(), XenError> {
        if calls.len() != results.len() {
            return Err(XenError::EINVAL);
        }
        // SAFETY: forwarded from the caller.
        unit(unsafe { self.hypercall(Call::Multicall { calls, results }) })
    }

    // --- Time ------------------------------------------------------------------

    /// `HYPERVISOR_set_timer_op`: fire `VIRQ_TIMER` at system time
    /// `deadline_ns` (0 cancels).
    fn set_timer_op(&mut self, deadline_ns: u64) -> Result<(), XenError> {
        // SAFETY: only a timer changes.
        unit(unsafe { self.hypercall(Call::SetTimerOp { deadline_ns }) })
    }

    // --- Event channels ----------------------------------------------------

    /// `EVTCHNOP_alloc_unbound` in `DOMID_SELF` for `remote_dom`: the new port.
    fn evtchn_alloc_unbound(&mut self, remote_dom: DomId) -> Result<EvtchnPort, XenError> {
        let mut arg = EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom,
            port: 0,
        };
        // SAFETY: Xen writes only `arg`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::EventChannelOp(EvtchnOp::AllocUnbound(&mut arg))) })?;
        Ok(arg.port)
    }

    /// `EVTCHNOP_bind_interdomain`: the local port.
    fn evtchn_bind_interdomain(
        &mut self,
        remote_dom: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError> {
        let mut arg = EvtchnBindInterdomain {
            remote_dom,
            _pad0: 0,
            remote_port,
            local_port: 0,
        };
        // SAFETY: Xen writes only `arg`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::EventChannelOp(EvtchnOp::BindInterdomain(&mut arg))) })?;
        Ok(arg.local_port)
    }

    /// `EVTCHNOP_bind_virq`: the port `virq` of `vcpu` is delivered on.
    fn evtchn_bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<EvtchnPort, XenError> {
        let mut arg = EvtchnBindVirq {
            virq,
            vcpu,
            port: 0,
        };
        // SAFETY: Xen writes only `arg`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::EventChannelOp(EvtchnOp::BindVirq(&mut arg))) })?;
        Ok(arg.port)
    }

    /// `EVTCHNOP_bind_ipi`: a new IPI port delivered to `vcpu`.
    fn evtchn_bind_ipi(&mut self, vcpu: u32) -> Result<EvtchnPort, XenError> {
        let mut arg = EvtchnBindIpi { vcpu, port: 0 };
        // SAFETY: Xen writes only `arg`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::EventChannelOp(EvtchnOp::BindIpi(&mut arg))) })?;
        Ok(arg.port)
    }

    /// `EVTCHNOP_close`.
    fn evtchn_close(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        // SAFETY: no guest memory changes.
        unit(unsafe { self.hypercall(Call::EventChannelOp(EvtchnOp::Close(EvtchnClose { port }))) })
    }

    /// `EVTCHNOP_send`.
    fn evtchn_send(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        // SAFETY: no guest memory changes (beyond the event bitmaps, which
        // Xen owns the protocol of).
        unit(unsafe { self.hypercall(Call::EventChannelOp(EvtchnOp::Send(EvtchnSend { port }))) })
    }

    /// `EVTCHNOP_unmask`.
    fn evtchn_unmask(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        // SAFETY: as for `evtchn_send`.
        unit(unsafe {
            self.hypercall(Call::EventChannelOp(EvtchnOp::Unmask(EvtchnUnmask {
                port,
            })))
        })
    }

    /// `EVTCHNOP_bind_vcpu`.
    fn evtchn_bind_vcpu(&mut self, port: EvtchnPort, vcpu: u32) -> Result<(), XenError> {
        let arg = EvtchnBindVcpu { port, vcpu };
        // SAFETY: no guest memory changes.
        unit(unsafe { self.hypercall(Call::EventChannelOp(EvtchnOp::BindVcpu(arg))) })
    }

    /// `EVTCHNOP_status` of `port` in `dom`.
    fn evtchn_status(&mut self, dom: DomId, port: EvtchnPort) -> Result<EvtchnStatus, XenError> {
        let mut arg = EvtchnStatus::query(dom, port);
        // SAFETY: Xen writes only `arg`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::EventChannelOp(EvtchnOp::Status(&mut arg))) })?;
        Ok(arg)
    }

    // --- Version -----------------------------------------------------------------

    /// `XENVER_version`.
    fn xen_version(&mut self) -> Result<XenVersion, XenError> {
        // SAFETY: a query without memory arguments.
        let raw =
            XenError::from_ret(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::Version)) })?;
        Ok(XenVersion::from_raw(raw as u32))
    }

    /// The cheapest hypercall, issued for its side effect: on return Xen
    /// delivers any pending event upcall (Linux `force_evtchn_callback`).
    fn force_evtchn_callback(&mut self) {
        // SAFETY: a query without memory arguments. Its result does not
        // matter.
        let _ = unsafe { self.hypercall(Call::XenVersion(XenVersionOp::Version)) };
    }

    /// `XENVER_get_features`: submap `submap_idx` of `XENFEAT_*` bits.
    fn xen_get_features(&mut self, submap_idx: u32) -> Result<u32, XenError> {
        let mut info = XenFeatureInfo {
            submap_idx,
            submap: 0,
        };
        // SAFETY: Xen writes only `info`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::GetFeatures(&mut info))) })?;
        Ok(info.submap)
    }

    /// `XENVER_platform_parameters`.
    fn xen_platform_parameters(&mut self) -> Result<XenPlatformParameters, XenError> {
        let mut params = XenPlatformParameters::default();
        // SAFETY: Xen writes only `params`, borrowed for the call.
        unit(unsafe {
            self.hypercall(Call::XenVersion(XenVersionOp::PlatformParameters(
                &mut params,
            )))
        })?;
        Ok(params)
    }

    /// `XENVER_capabilities` into `buf` (NUL-terminated list of guest types).
    fn xen_capabilities(&mut self, buf: &mut XenCapabilitiesInfo) -> Result<(), XenError> {
        // SAFETY: Xen writes only `buf`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::Capabilities(buf))) })
    }

    /// `XENVER_extraversion` into `buf`.
    fn xen_extraversion(&mut self, buf: &mut XenExtraversion) -> Result<(), XenError> {
        // SAFETY: Xen writes only `buf`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::Extraversion(buf))) })
    }

    /// `XENVER_changeset` into `buf`.
    fn xen_changeset(&mut self, buf: &mut XenChangesetInfo) -> Result<(), XenError> {
        // SAFETY: Xen writes only `buf`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::Changeset(buf))) })
    }

    /// `XENVER_compile_info`.
    fn xen_compile_info(&mut self, info: &mut XenCompileInfo) -> Result<(), XenError> {
        // SAFETY: Xen writes only `info`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::CompileInfo(info))) })
    }

    /// `XENVER_commandline` into `buf` (Xen's own command line).
    fn xen_commandline(&mut self, buf: &mut XenCommandline) -> Result<(), XenError> {
        // SAFETY: Xen writes only `buf`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::Commandline(buf))) })
    }

    /// `XENVER_guest_handle` into `buf`.
    fn xen_guest_handle(&mut self, buf: &mut XenDomainHandle) -> Result<(), XenError> {
        // SAFETY: Xen writes only `buf`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::GuestHandle(buf))) })
    }

    /// `XENVER_pagesize`.
    fn xen_pagesize(&mut self) -> Result<usize, XenError> {
        // SAFETY: a query without memory arguments.
        XenError::from_ret(unsafe { self.hypercall(Call::XenVersion(XenVersionOp::Pagesize)) })
    }

    // --- Console -----------------------------------------------------------------

    /// `CONSOLEIO_write`: to Xen's console (for a domU, non-printable bytes
    /// are dropped and output is line buffered).
    fn console_write(&mut self, bytes: &[u8]) -> Result<(), XenError> {
        // SAFETY: Xen only reads `bytes`.
        unit(unsafe { self.hypercall(Call::ConsoleIo(ConsoleIo::Write(bytes))) })
    }

    /// `CONSOLEIO_read`: bytes read into `buf`.
    fn console_read(&mut self, buf: &mut [u8]) -> Result<usize, XenError> {
        // SAFETY: Xen writes only `buf`, borrowed for the call.
        XenError::from_ret(unsafe { self.hypercall(Call::ConsoleIo(ConsoleIo::Read(buf))) })
    }

    // --- Scheduler -----------------------------------------------------------------

    /// `SCHEDOP_yield`.
    fn sched_yield(&mut self) -> Result<(), XenError> {
        // SAFETY: no memory arguments.
        unit(unsafe { self.hypercall(Call::SchedOp(SchedOp::Yield)) })
    }

    /// `SCHEDOP_block`: sleep until an event is pending. Xen clears
    /// `evtchn_upcall_mask` while blocking, so a pending event's upcall runs
    /// before this returns.
    fn sched_block(&mut self) -> Result<(), XenError> {
        // SAFETY: no memory arguments.
        unit(unsafe { self.hypercall(Call::SchedOp(SchedOp::Block)) })
    }

    /// `SCHEDOP_shutdown` with `SHUTDOWN_*` `reason`. Returns only if Xen
    /// refused, or for `SHUTDOWN_suspend` (1: suspend was cancelled).
    fn sched_shutdown(&mut self, reason: u32) -> Result<usize, XenError> {
        // SAFETY: the domain stops; nothing in this domain is changed.
        XenError::from_ret(unsafe {
            self.hypercall(Call::SchedOp(SchedOp::Shutdown(SchedShutdown { reason })))
        })
    }

    /// `SCHEDOP_shutdown_code`: record `reason` for a later shutdown.
    fn sched_shutdown_code(&mut self, reason: u32) -> Result<(), XenError> {
        // SAFETY: no guest memory changes.
        unit(unsafe {
            self.hypercall(Call::SchedOp(SchedOp::ShutdownCode(SchedShutdown {
                reason,
            })))
        })
    }

    /// `SCHEDOP_poll`: block until one of `ports` is pending or system time
    /// `timeout_ns` passes (0: no timeout).
    fn sched_poll(&mut self, ports: &[EvtchnPort], timeout_ns: u64) -> Result<(), XenError> {
        // SAFETY: Xen only reads `ports`.
        unit(unsafe { self.hypercall(Call::SchedOp(SchedOp::Poll { ports, timeout_ns })) })
    }

    // --- Memory ------------------------------------------------------------------

    /// `XENMEM_memory_map`: the entries written to `buffer`. `ENOSYS` if the
    /// toolstack set no map.
    fn memory_map(&mut self, buffer: &mut [E820Entry]) -> Result<usize, XenError> {
        let mut nr_entries = 0;
        // SAFETY: Xen writes only `buffer` (bounded by its length) and the
        // argument structure.
        let ret = unsafe {
            self.hypercall(Call::MemoryOp(MemoryOp::MemoryMap {
                buffer: &mut *buffer,
                nr_entries: &mut nr_entries,
            }))
        };
        unit(ret)?;
        Ok((nr_entries as usize).min(buffer.len()))
    }

    /// `XENMEM_machine_memory_map` (privileged): the host's map.
    fn machine_memory_map(&mut self, buffer: &mut [E820Entry]) -> Result<usize, XenError> {
        let mut nr_entries = 0;
        // SAFETY: as for `memory_map`.
        let ret = unsafe {
            self.hypercall(Call::MemoryOp(MemoryOp::MachineMemoryMap {
                buffer: &mut *buffer,
                nr_entries: &mut nr_entries,
            }))
        };
        unit(ret)?;
        Ok((nr_entries as usize).min(buffer.len()))
    }

    /// `XENMEM_machphys_mapping`: where the read-only M2P is.
    fn machphys_mapping(&mut self) -> Result<XenMachphysMapping, XenError> {
        let mut mapping = XenMachphysMapping::default();
        // SAFETY: Xen writes only `mapping`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::MemoryOp(MemoryOp::MachphysMapping(&mut mapping))) })?;
        Ok(mapping)
    }

    /// `XENMEM_current_reservation`: pages `domid` has.
    fn current_reservation(&mut self, domid: DomId) -> Result<usize, XenError> {
        // SAFETY: a query; Xen reads the domain id only.
        XenError::from_ret(unsafe {
            self.hypercall(Call::MemoryOp(MemoryOp::CurrentReservation(domid)))
        })
    }

    /// `XENMEM_maximum_reservation`: pages `domid` may have.
    fn maximum_reservation(&mut self, domid: DomId) -> Result<usize, XenError> {
        // SAFETY: a query; Xen reads the domain id only.
        XenError::from_ret(unsafe {
            self.hypercall(Call::MemoryOp(MemoryOp::MaximumReservation(domid)))
        })
    }

    /// `XENMEM_maximum_gpfn`: the highest pseudo-physical frame of `domid`.
    fn maximum_gpfn(&mut self, domid: DomId) -> Result<usize, XenError> {
        // SAFETY: a query; Xen reads the domain id only.
        XenError::from_ret(unsafe { self.hypercall(Call::MemoryOp(MemoryOp::MaximumGpfn(domid))) })
    }

    /// `XENMEM_maximum_ram_page`: the highest machine frame.
    fn maximum_ram_page(&mut self) -> Result<usize, XenError> {
        // SAFETY: a query without memory arguments.
        XenError::from_ret(unsafe { self.hypercall(Call::MemoryOp(MemoryOp::MaximumRamPage)) })
    }

    /// `XENMEM_increase_reservation`: allocate `extents.len()` extents of
    /// `2^order` pages for `DOMID_SELF`; `extents` receives their MFNs.
    /// Returns how many were allocated.
    fn increase_reservation(
        &mut self,
        extents: &mut [u32],
        order: u32,
        mem_flags: u32,
    ) -> Result<usize, XenError> {
        let r = Reservation {
            extents,
            extent_order: order,
            mem_flags,
            domid: DOMID_SELF,
        };
        // SAFETY: Xen writes only `extents`; no existing mapping changes.
        XenError::from_ret(unsafe {
            self.hypercall(Call::MemoryOp(MemoryOp::IncreaseReservation(r)))
        })
    }

    /// `XENMEM_populate_physmap`: back the PFNs in `extents` (`2^order`
    /// pages each) with memory; `extents` receives the frames. Returns how
    /// many were populated.
    fn populate_physmap(
        &mut self,
        extents: &mut [u32],
        order: u32,
        mem_flags: u32,
    ) -> Result<usize, XenError> {
        let r = Reservation {
            extents,
            extent_order: order,
            mem_flags,
            domid: DOMID_SELF,
        };
        // SAFETY: only unpopulated PFNs gain memory; Xen writes `extents`.
        XenError::from_ret(unsafe { self.hypercall(Call::MemoryOp(MemoryOp::PopulatePhysmap(r))) })
    }

    /// `XENMEM_decrease_reservation`: give back the frames in `extents`
    /// (`2^order` pages each). Returns how many were released.
    ///
    /// # Safety
    ///
    /// Nothing may still use the frames (they must be unmapped first).
    unsafe fn decrease_reservation(
        &mut self,
        extents: &mut [u32],
        order: u32,
    ) -> Result<usize, XenError> {
        let r = Reservation {
            extents,
            extent_order: order,
            mem_flags: 0,
            domid: DOMID_SELF,
        };
        // SAFETY: forwarded from the caller.
        XenError::from_ret(unsafe {
            self.hypercall(Call::MemoryOp(MemoryOp::DecreaseReservation(r)))
        })
    }

    /// `XENMEM_add_to_physmap`.
    ///
    /// # Safety
    ///
    /// The page that appears at `arg.gpfn` replaces what was there.
    unsafe fn add_to_physmap(&mut self, arg: XenAddToPhysmap) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe { self.hypercall(Call::MemoryOp(MemoryOp::AddToPhysmap(arg))) })
    }

    // --- physdev -----------------------------------------------------------------

    /// `PHYSDEVOP_set_iopl`: the virtual IOPL (0-3).
    fn physdev_set_iopl(&mut self, iopl: u32) -> Result<(), XenError> {
        // SAFETY: only I/O permission changes.
        unit(unsafe {
            self.hypercall(Call::PhysdevOp(PhysdevOp::SetIopl(PhysdevSetIopl { iopl })))
        })
    }

    /// `PHYSDEVOP_set_iobitmap`: Xen keeps `bitmap` (covering `nr_ports`
    /// ports; null with 0 to remove).
    ///
    /// # Safety
    ///
    /// `bitmap` must stay valid and readable (`nr_ports / 8` bytes, rounded
    /// up) until it is replaced.
    unsafe fn physdev_set_iobitmap(
        &mut self,
        bitmap: *const u8,
        nr_ports: u32,
    ) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe {
            self.hypercall(Call::PhysdevOp(PhysdevOp::SetIobitmap { bitmap, nr_ports }))
        })
    }

    /// `PHYSDEVOP_eoi`.
    fn physdev_eoi(&mut self, irq: u32) -> Result<(), XenError> {
        // SAFETY: no guest memory changes.
        unit(unsafe { self.hypercall(Call::PhysdevOp(PhysdevOp::Eoi(PhysdevEoi { irq }))) })
    }

    // --- vCPUs -------------------------------------------------------------------

    /// `VCPUOP_initialise` for a vCPU that has not run.
    ///
    /// # Safety
    ///
    /// `ctx` defines code, stack and page tables the vCPU will run with.
    unsafe fn vcpu_initialise(
        &mut self,
        vcpu: u32,
        ctx: &VcpuGuestContext,
    ) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::Initialise(ctx),
            })
        })
    }

    /// `VCPUOP_up`.
    ///
    /// # Safety
    ///
    /// The vCPU starts running its initialised context.
    unsafe fn vcpu_up(&mut self, vcpu: u32) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::Up,
            })
        })
    }

    /// `VCPUOP_down`.
    fn vcpu_down(&mut self, vcpu: u32) -> Result<(), XenError> {
        // SAFETY: the vCPU stops; no memory changes.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::Down,
            })
        })
    }

    /// `VCPUOP_is_up`.
    fn vcpu_is_up(&mut self, vcpu: u32) -> Result<bool, XenError> {
        // SAFETY: a query without memory arguments.
        Ok(XenError::from_ret(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::IsUp,
            })
        })? != 0)
    }

    /// `VCPUOP_get_runstate_info`.
    fn vcpu_get_runstate_info(&mut self, vcpu: u32) -> Result<VcpuRunstateInfo, XenError> {
        let mut info = VcpuRunstateInfo::default();
        // SAFETY: Xen writes only `info`, borrowed for the call.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::GetRunstateInfo(&mut info),
            })
        })?;
        Ok(info)
    }

    /// `VCPUOP_register_runstate_memory_area`: Xen keeps `*area` up to date.
    ///
    /// # Safety
    ///
    /// `area` must stay valid and mapped until replaced; it changes under
    /// the guest's feet (read it with volatile reads).
    unsafe fn vcpu_register_runstate_memory_area(
        &mut self,
        vcpu: u32,
        area: *mut VcpuRunstateInfo,
    ) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::RegisterRunstateMemoryArea(area),
            })
        })
    }

    /// `VCPUOP_register_vcpu_time_memory_area`: Xen keeps `*area` up to
    /// date.
    ///
    /// # Safety
    ///
    /// As for [`vcpu_register_runstate_memory_area`](Self::vcpu_register_runstate_memory_area).
    unsafe fn vcpu_register_vcpu_time_memory_area(
        &mut self,
        vcpu: u32,
        area: *mut VcpuTimeInfo,
    ) -> Result<(), XenError> {
        // SAFETY: forwarded from the caller.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::RegisterVcpuTimeMemoryArea(area),
            })
        })
    }

    /// `VCPUOP_register_vcpu_info`: move `vcpu`'s `vcpu_info` to `offset`
    /// in machine frame `mfn`.
    ///
    /// # Safety
    ///
    /// The frame must stay owned and mapped for Xen's use from now on.
    unsafe fn vcpu_register_vcpu_info(
        &mut self,
        vcpu: u32,
        mfn: u64,
        offset: u32,
    ) -> Result<(), XenError> {
        let arg = VcpuRegisterVcpuInfo {
            mfn: AbiU64::new(mfn),
            offset,
            rsvd: 0,
        };
        // SAFETY: forwarded from the caller.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::RegisterVcpuInfo(arg),
            })
        })
    }

    /// `VCPUOP_set_periodic_timer`.
    fn vcpu_set_periodic_timer(&mut self, vcpu: u32, period_ns: u64) -> Result<(), XenError> {
        let arg = VcpuSetPeriodicTimer {
            period_ns: AbiU64::new(period_ns),
        };
        // SAFETY: only a timer changes.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::SetPeriodicTimer(arg),
            })
        })
    }

    /// `VCPUOP_stop_periodic_timer`.
    fn vcpu_stop_periodic_timer(&mut self, vcpu: u32) -> Result<(), XenError> {
        // SAFETY: only a timer changes.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::StopPeriodicTimer,
            })
        })
    }

    /// `VCPUOP_set_singleshot_timer` at system time `timeout_abs_ns`;
    /// `flags` is `VCPU_SSHOTTMR_*` (with `VCPU_SSHOTTMR_future`, `ETIME` if
    /// already passed).
    fn vcpu_set_singleshot_timer(
        &mut self,
        vcpu: u32,
        timeout_abs_ns: u64,
        flags: u32,
    ) -> Result<(), XenError> {
        let arg = VcpuSetSingleshotTimer {
            timeout_abs_ns: AbiU64::new(timeout_abs_ns),
            flags,
        };
        // SAFETY: only a timer changes.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::SetSingleshotTimer(arg),
            })
        })
    }

    /// `VCPUOP_stop_singleshot_timer`.
    fn vcpu_stop_singleshot_timer(&mut self, vcpu: u32) -> Result<(), XenError> {
        // SAFETY: only a timer changes.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::StopSingleshotTimer,
            })
        })
    }

    /// `VCPUOP_send_nmi`.
    fn vcpu_send_nmi(&mut self, vcpu: u32) -> Result<(), XenError> {
        // SAFETY: the NMI is delivered through the registered callback.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::SendNmi,
            })
        })
    }

    /// `VCPUOP_get_physid`.
    fn vcpu_get_physid(&mut self, vcpu: u32) -> Result<u64, XenError> {
        let mut arg = VcpuGetPhysid::default();
        // SAFETY: Xen writes only `arg`, borrowed for the call.
        unit(unsafe {
            self.hypercall(Call::VcpuOp {
                vcpu,
                op: VcpuOp::GetPhysid(&mut arg),
            })
        })?;
        Ok(arg.phys_id.get())
    }

    // --- Grant tables ------------------------------------------------------------

    /// `GNTTABOP_setup_table` for `dom`: `frames` receives the table's frames.
    /// Returns the operation's `GNTST_*` status (check for `GNTST_okay`).
    fn gnttab_setup_table(&mut self, dom: DomId, frames: &mut [u32]) -> Result<i16, XenError> {
        let mut status = GNTST_general_error;
        // SAFETY: Xen writes only `frames` (bounded by its length) and the
        // argument structure; nothing gets mapped.
        unit(unsafe {
            self.hypercall(Call::GrantTableOp(GnttabOp::SetupTable {
                dom,
                frames,
                status: &mut status,
            }))
        })?;
        Ok(status)
    }

    /// `GNTTABOP_query_size` for `dom`.
    fn gnttab_query_size(&mut self, dom: DomId) -> Result<GnttabQuerySize, XenError> {
        let mut arg = GnttabQuerySize {
            dom,
            ..Default::default()
        };
        // SAFETY: Xen writes only `arg`, borrowed for the call.
        unit(unsafe { self.hypercall(Call::GrantTableOp(GnttabOp::QuerySize(&mut arg))) })?;
        Ok(arg)
    }
}

#[cfg(test)]
mod tests;
