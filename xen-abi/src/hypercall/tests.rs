use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::arch_x86_32::{_PAGE_PRESENT, _PAGE_RW, FLAT_KERNEL_CS};
use crate::p2m::Mfn;

// ---------------------------------------------------------------------------
// The recording backend

#[test]
fn recorder_defaults_to_success_and_decodes() {
    let mut xen = Recorder::new();
    xen.console_write(b"hello\n").unwrap();
    xen.set_timer_op(0x1_2345_6789).unwrap();
    // SAFETY: the recorder changes nothing.
    unsafe { xen.update_va_mapping(0x8000_0000, 0x1_2345_6067, UVMF_INVLPG) }.unwrap();
    assert_eq!(
        xen.calls(),
        [
            RecordedCall::ConsoleIo(RecordedConsoleIo::Write(b"hello\n".to_vec())),
            RecordedCall::SetTimerOp {
                deadline_ns: 0x1_2345_6789
            },
            RecordedCall::UpdateVaMapping {
                va: 0x8000_0000,
                pte: 0x1_2345_6067,
                flags: UVMF_INVLPG
            },
        ]
    );
    assert_eq!(
        xen.calls()[2].hypercall_nr(),
        __HYPERVISOR_update_va_mapping
    );
}

#[test]
fn recorder_scripted_results_map_to_errors_and_values() {
    let mut xen = Recorder::new();
    xen.push_error(XenError::ENOSYS)
        .push_ret(0x0004_0011)
        .push_ret(-4096)
        .push_ret(-22);
    assert_eq!(
        xen.memory_map(&mut [E820Entry::default(); 4]),
        Err(XenError::ENOSYS)
    );
    assert_eq!(
        xen.xen_version(),
        Ok(XenVersion {
            major: 4,
            minor: 17
        })
    );
    // get_debugreg of a value above 0x7FFFFFFF comes back as a negative long.
    assert_eq!(xen.get_debugreg(6), Ok(-4096i32 as u32));
    assert_eq!(
        xen.sched_shutdown(crate::sched::SHUTDOWN_poweroff),
        Err(XenError::EINVAL)
    );
    assert_eq!(xen.pending_replies(), 0);
    // With the queue empty, the default is 0.
    assert_eq!(xen.sched_yield(), Ok(()));
}

#[test]
fn recorder_outputs_fill_out_parameters() {
    let mut xen = Recorder::new();
    xen.push_output(
        0,
        &EvtchnAllocUnbound {
            dom: DOMID_SELF,
            remote_dom: 0,
            port: 17,
        },
    );
    assert_eq!(xen.evtchn_alloc_unbound(0), Ok(17));

    let map = [
        E820Entry::new(0, 0x9_F000, E820_RAM),
        E820Entry::new(0x10_0000, 0x3FF0_0000, E820_RAM),
    ];
    xen.push_output(0, &map[..]);
    let mut buf = [E820Entry::default(); 8];
    assert_eq!(xen.memory_map(&mut buf), Ok(2));
    assert_eq!(&buf[..2], &map);

    let mut status = EvtchnStatus::query(DOMID_SELF, 3);
    status.status = EVTCHNSTAT_interdomain;
    status.u = [0, 9];
    xen.push_output(0, &status);
    assert_eq!(
        xen.evtchn_status(DOMID_SELF, 3).unwrap().binding(),
        EvtchnBinding::Interdomain { dom: 0, port: 9 }
    );

    xen.push_output(
        0,
        &XenMachphysMapping {
            v_start: 0xF580_0000,
            v_end: 0xFFE0_0000,
            max_mfn: 0x297_FFFF,
        },
    );
    assert_eq!(xen.machphys_mapping().unwrap().nr_entries(), 0x298_0000);

    assert_eq!(
        xen.take_calls(),
        [
            RecordedCall::EventChannelOp(RecordedEvtchnOp::AllocUnbound {
                dom: DOMID_SELF,
                remote_dom: 0
            }),
            RecordedCall::MemoryOp(RecordedMemoryOp::MemoryMap { capacity: 8 }),
            RecordedCall::EventChannelOp(RecordedEvtchnOp::Status {
                dom: DOMID_SELF,
                port: 3
            }),
            RecordedCall::MemoryOp(RecordedMemoryOp::MachphysMapping),
        ]
    );
    assert!(xen.calls().is_empty());
}

#[test]
fn recorder_batch_errors_report_progress() {
    let reqs = [
        MmuUpdate::normal_pt_update(0x1000, 0x2067),
        MmuUpdate::normal_pt_update(0x1008, 0x3067),
        MmuUpdate::normal_pt_update(0x1010, 0x4067),
    ];
    let mut xen = Recorder::new();
    // SAFETY: the recorder changes nothing.
    unsafe { xen.mmu_update(&reqs, DOMID_SELF as u32) }.unwrap();
    // Xen stopped at the third request with EINVAL after doing two.
    xen.push_output(XenError::EINVAL.to_ret(), &2u32);
    // SAFETY: as above.
    let err = unsafe { xen.mmu_update(&reqs, DOMID_SELF as u32) }.unwrap_err();
    assert_eq!(
        err,
        BatchError {
            error: XenError::EINVAL,
            done: 2
        }
    );

    let ops = [
        MmuextOp::pin_l3_table(Mfn(5)),
        MmuextOp::new_baseptr(Mfn(5)),
    ];
    xen.push_output(XenError::EBUSY.to_ret(), &0u32);
    // SAFETY: as above.
    let err = unsafe { xen.mmuext_op(&ops, DOMID_SELF as u32) }.unwrap_err();
    assert_eq!(
        err,
        BatchError {
            error: XenError::EBUSY,
            done: 0
        }
    );
    assert_eq!(
        xen.calls()[0],
        RecordedCall::MmuUpdate {
            reqs: reqs.to_vec(),
            foreign_dom: DOMID_SELF as u32
        }
    );
    assert_eq!(
        xen.calls()[2],
        RecordedCall::MmuextOp {
            ops: ops.to_vec(),
            foreign_dom: DOMID_SELF as u32
        }
    );
}

#[test]
fn recorder_decodes_multicalls_and_scripts_entry_results() {
    let reqs = [MmuUpdate::normal_pt_update(0x5000, 0x6067)];
    let ops = [MmuextOp::tlb_flush_local()];
    let mut calls = [
        Call::UpdateVaMapping {
            va: 0x4000,
            pte: 0x7067,
            flags: UVMF_NONE,
        },
        Call::MmuUpdate {
            reqs: &reqs,
            done: None,
            foreign_dom: DOMID_SELF as u32,
        },
        Call::MmuextOp {
            ops: &ops,
            done: None,
            foreign_dom: DOMID_SELF as u32,
        },
    ];
    let mut results = [99; 3];
    let mut xen = Recorder::new();
    xen.push_multicall(0, [0, XenError::EPERM.to_ret()]);
    // SAFETY: the recorder changes nothing.
    unsafe { xen.multicall(&mut calls, &mut results) }.unwrap();
    // Entries beyond the scripted list get 0.
    assert_eq!(results, [0, -1, 0]);
    assert_eq!(
        xen.calls(),
        [RecordedCall::Multicall(vec![
            RecordedCall::UpdateVaMapping {
                va: 0x4000,
                pte: 0x7067,
                flags: UVMF_NONE
            },
            RecordedCall::MmuUpdate {
                reqs: reqs.to_vec(),
                foreign_dom: DOMID_SELF as u32
            },
            RecordedCall::MmuextOp {
                ops: ops.to_vec(),
                foreign_dom: DOMID_SELF as u32
            },
        ])]
    );

    // A refused list: every entry reports the hypercall's error.
    let mut calls = [Call::SchedOp(SchedOp::Yield), Call::SchedOp(SchedOp::Block)];
    let mut results = [0; 2];
    xen.push_error(XenError::EFAULT);
    // SAFETY: as above.
    let outcome = unsafe { xen.multicall(&mut calls, &mut results) };
    assert_eq!(outcome, Err(XenError::EFAULT));
    assert_eq!(results, [-14, -14]);

    // Mismatched lengths are refused before any call.
    let mut calls = [Call::SchedOp(SchedOp::Yield)];
    let mut results = [0; 2];
    let before = xen.calls().len();
    // SAFETY: as above.
    let outcome = unsafe { xen.multicall(&mut calls, &mut results) };
    assert_eq!(outcome, Err(XenError::EINVAL));
    assert_eq!(xen.calls().len(), before);
}

#[test]
fn recorder_records_iret_and_panics() {
    let mut frame = IretFrame {
        eax: 1,
        eip: 0xC010_0000,
        cs: 0xE019,
        eflags: 0x202,
        esp: 0,
        ss: 0,
    };
    let mut xen = Recorder::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the recorder only reads the frame.
        unsafe { xen.iret(&mut frame) }
    }));
    assert!(outcome.is_err());
    assert_eq!(xen.calls(), [RecordedCall::Iret(frame)]);
    assert_eq!(xen.calls()[0].hypercall_nr(), __HYPERVISOR_iret);
}

#[test]
fn wrappers_validate_before_calling() {
    let mut xen = Recorder::new();
    let no_terminator = [TrapInfo::new(14, 0, true, FLAT_KERNEL_CS, 0x1234)];
    // SAFETY: refused before reaching the recorder.
    let outcome = unsafe { xen.set_trap_table(&no_terminator) };
    assert_eq!(outcome, Err(XenError::EINVAL));
    // SAFETY: as above.
    assert_eq!(unsafe { xen.set_gdt(&[1], 513) }, Err(XenError::EINVAL));
    assert!(xen.calls().is_empty());
    let table = [
        TrapInfo::new(14, 0, true, FLAT_KERNEL_CS, 0x1234),
        TrapInfo::END,
    ];
    // SAFETY: the recorder changes nothing.
    unsafe { xen.set_trap_table(&table) }.unwrap();
    assert_eq!(xen.calls(), [RecordedCall::SetTrapTable(table.to_vec())]);
}

#[test]
fn gnttab_setup_reports_status() {
    let mut xen = Recorder::new();
    let mut frames = [0u32; 2];
    xen.push_output(0, &[0x1234u32, 0x5678][..]);
    assert_eq!(
        xen.gnttab_setup_table(DOMID_SELF, &mut frames),
        Ok(GNTST_okay)
    );
    assert_eq!(frames, [0x1234, 0x5678]);
    assert_eq!(
        xen.calls(),
        [RecordedCall::GrantTableOp(RecordedGnttabOp::SetupTable {
            dom: DOMID_SELF,
            nr_frames: 2
        })]
    );
}

// ---------------------------------------------------------------------------
// Lowering to registers, against a simulated Xen on the host.

/// Guest addresses are tokens: the n-th distinct host pointer becomes
/// `n << 16`, and an address resolves back to pointer + offset, so the fake
/// hypervisor can read and write what a real one would.
#[derive(Default)]
struct FakeXen {
    pointers: Vec<*const u8>,
    /// Every hypercall trap: (op, args).
    traps: Vec<RawCall>,
    /// Every call Xen executed, multicall entries included.
    executed: Vec<RawCall>,
    /// Return value for the next executed call (default 0).
    next_ret: Vec<isize>,
}

impl FakeXen {
    fn resolve(&self, addr: u32) -> *mut u8 {
        let index = (addr >> 16) as usize;
        assert!(
            index >= 1 && index <= self.pointers.len(),
            "unknown guest address {addr:#x}"
        );
        self.pointers[index - 1]
            .wrapping_add((addr & 0xFFFF) as usize)
            .cast_mut()
    }

    /// # Safety
    ///
    /// `addr` must resolve to a live `T` the test lent.
    unsafe fn read<T: FromBytes>(&self, addr: u32) -> T {
        // SAFETY: per the contract; unaligned reads for packed structures.
        unsafe { core::ptr::read_unaligned(self.resolve(addr).cast::<T>()) }
    }

    /// # Safety
    ///
    /// `addr` must resolve to a live, writable `T` the test lent.
    unsafe fn write<T: IntoBytes + Immutable>(&self, addr: u32, value: T) {
        // SAFETY: per the contract.
        unsafe { core::ptr::write_unaligned(self.resolve(addr).cast::<T>(), value) }
    }

    /// Writes two RAM entries into the map at `map_addr`, as Xen would.
    ///
    /// # Safety
    ///
    /// `map_addr` must resolve to a `xen_memory_map` whose buffer resolves
    /// to `nr_entries` writable entries.
    unsafe fn fill_memory_map(&self, map_addr: u32) {
        // SAFETY: per the contract.
        let mut map: XenMemoryMap = unsafe { self.read(map_addr) };
        let entries = [
            E820Entry::new(0, 0xA_0000, E820_RAM),
            E820Entry::new(0x10_0000, 0x100_0000, E820_RAM),
        ];
        for (i, e) in entries.iter().enumerate().take(map.nr_entries as usize) {
            // SAFETY: within the buffer's `nr_entries`.
            unsafe { self.write(map.buffer + (i * 20) as u32, *e) };
        }
        map.nr_entries = map.nr_entries.min(2);
        // SAFETY: per the contract.
        unsafe { self.write(map_addr, map) };
    }

    /// Fills the frame list of the `gnttab_setup_table` at `arg_addr`.
    ///
    /// # Safety
    ///
    /// `arg_addr` must resolve to a `gnttab_setup_table` whose frame list
    /// resolves to `nr_frames` writable entries.
    unsafe fn fill_grant_frames(&self, arg_addr: u32) {
        // SAFETY: per the contract.
        let mut arg: GnttabSetupTable = unsafe { self.read(arg_addr) };
        for i in 0..arg.nr_frames {
            // SAFETY: within the list's `nr_frames`.
            unsafe { self.write(arg.frame_list + 4 * i, 0x100 + i) };
        }
        arg.status = GNTST_okay;
        // SAFETY: per the contract.
        unsafe { self.write(arg_addr, arg) };
    }

    /// Executes one call the way Xen would, for the few the tests use.
    ///
    /// # Safety
    ///
    /// Addresses in `call` must resolve to what the ABI says.
    unsafe fn execute(&mut self, call: RawCall) -> isize {
        self.executed.push(call);
        let ret = if self.next_ret.is_empty() {
            0
        } else {
            self.next_ret.remove(0)
        };
        let [a0, a1, a2, ..] = call.args;
        match (call.op, a0) {
            (__HYPERVISOR_memory_op, XENMEM_memory_map) => {
                // SAFETY: `a1` is the xen_memory_map the lowering built,
                // its buffer the test's.
                unsafe { self.fill_memory_map(a1) }
            }
            (__HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound) => {
                // SAFETY: `a1` is the test's evtchn_alloc_unbound.
                let mut arg: EvtchnAllocUnbound = unsafe { self.read(a1) };
                arg.port = 40 + arg.remote_dom as u32;
                // SAFETY: as above.
                unsafe { self.write(a1, arg) };
            }
            (__HYPERVISOR_mmu_update, _) if a2 != 0 => {
                // SAFETY: `a2` is the test's pdone.
                unsafe { self.write(a2, call.args[1]) };
            }
            (__HYPERVISOR_grant_table_op, GNTTABOP_setup_table) => {
                // SAFETY: `a1` is the gnttab_setup_table the lowering built,
                // its frame list the test's.
                unsafe { self.fill_grant_frames(a1) }
            }
            _ => {}
        }
        ret
    }
}

impl RawHypercall for FakeXen {
    fn guest_addr(&mut self, ptr: *const u8) -> u32 {
        let index = match self.pointers.iter().position(|&p| p == ptr) {
            Some(i) => i,
            None => {
                self.pointers.push(ptr);
                self.pointers.len() - 1
            }
        };
        ((index + 1) as u32) << 16
    }

    unsafe fn raw_hypercall(&mut self, op: u32, args: [u32; 5]) -> isize {
        let call = RawCall { op, args };
        self.traps.push(call);
        if op != __HYPERVISOR_multicall {
            // SAFETY: forwarded from the caller.
            return unsafe { self.execute(call) };
        }
        for i in 0..args[1] {
            let entry_addr = args[0] + 32 * i;
            // SAFETY: the multicall list the lowering built.
            let mut entry: MulticallEntry = unsafe { self.read(entry_addr) };
            let [a0, a1, a2, a3, a4, _] = entry.args;
            // SAFETY: forwarded.
            let ret = unsafe {
                self.execute(RawCall {
                    op: entry.op,
                    args: [a0, a1, a2, a3, a4],
                })
            };
            entry.result = ret as u32;
            // SAFETY: as above.
            unsafe { self.write(entry_addr, entry) };
        }
        0
    }

    unsafe fn raw_iret(&mut self, _frame: *mut IretFrame) -> ! {
        panic!("iret");
    }
}

/// The register image of a call whose arguments are all values.
fn lowered_registers(call: Call<'_>) -> RawCall {
    let mut xen = Lowering::new(FakeXen::default());
    // SAFETY: the fake hypervisor only touches what the call lends.
    unsafe { xen.hypercall(call) };
    xen.raw().traps[0]
}

#[test]
fn value_arguments_go_in_register_order() {
    // 64-bit values are split low, high (xen-x86_32.h, hypercall-defs.c).
    assert_eq!(
        lowered_registers(Call::UpdateVaMapping {
            va: 0xC000_1000,
            pte: 0x8000_0001_2345_6063,
            flags: UVMF_INVLPG | UVMF_ALL
        }),
        RawCall {
            op: 14,
            args: [0xC000_1000, 0x2345_6063, 0x8000_0001, 6, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::UpdateVaMappingOtherdomain {
            va: 1,
            pte: 2,
            flags: 3,
            domid: 7
        }),
        RawCall {
            op: 22,
            args: [1, 2, 0, 3, 7]
        }
    );
    assert_eq!(
        lowered_registers(Call::SetTimerOp {
            deadline_ns: 0x0000_0012_3456_789A
        }),
        RawCall {
            op: 15,
            args: [0x3456_789A, 0x12, 0, 0, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::UpdateDescriptor {
            machine_addr: 0x1_0000_2008,
            descriptor: 0x00CF_9A00_0000_FFFF
        }),
        RawCall {
            op: 10,
            args: [0x2008, 1, 0xFFFF, 0x00CF_9A00, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::SetCallbacks {
            event: XenCallback::new(0xE019, 0x1111),
            failsafe: XenCallback::new(0xE019, 0x2222)
        }),
        RawCall {
            op: 4,
            args: [0xE019, 0x1111, 0xE019, 0x2222, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::StackSwitch {
            ss: 0xE021,
            esp: 0x9000
        }),
        RawCall {
            op: 3,
            args: [0xE021, 0x9000, 0, 0, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::FpuTaskswitch { set: true }),
        RawCall {
            op: 5,
            args: [1, 0, 0, 0, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::VmAssist {
            cmd: VMASST_CMD_enable,
            kind: VMASST_TYPE_writable_pagetables
        }),
        RawCall {
            op: 21,
            args: [0, 2, 0, 0, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::GetDebugreg { reg: 7 }),
        RawCall {
            op: 9,
            args: [7, 0, 0, 0, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::SchedOp(SchedOp::Block)),
        RawCall {
            op: 29,
            args: [1, 0, 0, 0, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::XenVersion(XenVersionOp::Version)),
        RawCall {
            op: 17,
            args: [0, 0, 0, 0, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::VcpuOp {
            vcpu: 2,
            op: VcpuOp::StopPeriodicTimer
        }),
        RawCall {
            op: 24,
            args: [VCPUOP_stop_periodic_timer, 2, 0, 0, 0]
        }
    );
    assert_eq!(
        lowered_registers(Call::Raw {
            op: 99,
            args: [1, 2, 3, 4, 5]
        }),
        RawCall {
            op: 99,
            args: [1, 2, 3, 4, 5]
        }
    );
}

#[test]
fn structures_are_passed_by_address_and_read_back() {
    let mut xen = Lowering::new(FakeXen::default());

    // memory_map: Xen reads {nr_entries, buffer} and updates nr_entries.
    let mut buf = [E820Entry::default(); 4];
    assert_eq!(xen.memory_map(&mut buf), Ok(2));
    assert_eq!(buf[1], E820Entry::new(0x10_0000, 0x100_0000, E820_RAM));
    let trap = xen.raw().traps[0];
    assert_eq!(
        (trap.op, trap.args[0]),
        (__HYPERVISOR_memory_op, XENMEM_memory_map)
    );

    // alloc_unbound: the struct is the caller's, Xen writes the port into it.
    assert_eq!(xen.evtchn_alloc_unbound(2), Ok(42));

    // mmu_update: pointer to the requests, count, pdone, foreigndom.
    let reqs = [MmuUpdate::normal_pt_update(0x1000, _PAGE_PRESENT | _PAGE_RW); 3];
    // SAFETY: the fake hypervisor only touches what the call lends.
    unsafe { xen.mmu_update(&reqs, DOMID_SELF as u32) }.unwrap();
    let trap = *xen.raw().traps.last().unwrap();
    assert_eq!(trap.op, __HYPERVISOR_mmu_update);
    assert_eq!(trap.args[1], 3);
    assert_eq!(trap.args[3], DOMID_SELF as u32);
    // SAFETY: the address of `reqs`, still alive.
    let first: MmuUpdate = unsafe { xen.raw().read(trap.args[0]) };
    assert_eq!(first, reqs[0]);

    // sched_shutdown: the reason is in a structure Xen reads.
    let _ = xen.sched_shutdown(crate::sched::SHUTDOWN_crash);
    let trap = *xen.raw().traps.last().unwrap();
    assert_eq!(
        (trap.op, trap.args[0]),
        (__HYPERVISOR_sched_op, SCHEDOP_shutdown)
    );

    // gnttab setup: the frame list comes back, and the status.
    let mut frames = [0u32; 3];
    assert_eq!(
        xen.gnttab_setup_table(DOMID_SELF, &mut frames),
        Ok(GNTST_okay)
    );
    assert_eq!(frames, [0x100, 0x101, 0x102]);
    assert_eq!(
        xen.raw().traps.last().unwrap().args[2],
        1,
        "one gnttab_setup_table structure"
    );

    // console_io(cmd, count, buffer).
    xen.console_write(b"abc").unwrap();
    let trap = *xen.raw().traps.last().unwrap();
    assert_eq!(
        (trap.op, trap.args[0], trap.args[1]),
        (__HYPERVISOR_console_io, CONSOLEIO_write, 3)
    );
    // SAFETY: the address of the literal, still alive.
    let bytes: [u8; 3] = unsafe { xen.raw().read(trap.args[2]) };
    assert_eq!(&bytes, b"abc");
}

#[test]
fn memory_map_failure_reports_no_entries() {
    let mut fake = FakeXen::default();
    fake.next_ret.push(XenError::ENOSYS.to_ret());
    let mut xen = Lowering::new(fake);
    let mut buf = [E820Entry::default(); 4];
    let mut nr_entries = 7;
    // SAFETY: the fake hypervisor only touches what the call lends.
    let ret = unsafe {
        xen.hypercall(Call::MemoryOp(MemoryOp::MemoryMap {
            buffer: &mut buf,
            nr_entries: &mut nr_entries,
        }))
    };
    assert_eq!(ret, -38);
    assert_eq!(nr_entries, 0);
}

fn five_calls<'a>(reqs: &'a [MmuUpdate], done: &'a mut u32) -> [Call<'a>; 5] {
    [
        Call::UpdateVaMapping {
            va: 0x1000,
            pte: 0x2067,
            flags: UVMF_NONE,
        },
        Call::MmuUpdate {
            reqs,
            done: Some(done),
            foreign_dom: DOMID_SELF as u32,
        },
        Call::EventChannelOp(EvtchnOp::Send(EvtchnSend { port: 3 })),
        Call::SchedOp(SchedOp::Shutdown(crate::sched::SchedShutdown { reason: 9 })),
        Call::SetTimerOp { deadline_ns: 5 },
    ]
}

#[test]
fn multicalls_are_chunked_to_the_scratch_size() {
    let mut scratch = MulticallScratch::<2>::new();
    let fake = FakeXen {
        next_ret: vec![0, 0, -1, 0, -22],
        ..Default::default()
    };
    let mut xen = Lowering::with_multicall_scratch(fake, &mut scratch);
    let reqs = [MmuUpdate::normal_pt_update(0x3000, 0x4067); 4];
    let mut done = 0;
    let mut calls = five_calls(&reqs, &mut done);
    let mut results = [0; 5];
    // SAFETY: the fake hypervisor only touches what the calls lend.
    unsafe { xen.multicall(&mut calls, &mut results) }.unwrap();
    assert_eq!(results, [0, 0, -1, 0, -22]);
    let fake = xen.raw();
    // Three multicall traps of 2, 2 and 1 entries.
    assert_eq!(
        fake.traps
            .iter()
            .map(|t| (t.op, t.args[1]))
            .collect::<Vec<_>>(),
        [(13, 2), (13, 2), (13, 1)]
    );
    // The entries in order, arguments as for a direct call.
    let ops: Vec<u32> = fake.executed.iter().map(|c| c.op).collect();
    assert_eq!(ops, [14, 1, 32, 29, 15]);
    assert_eq!(fake.executed[0].args, [0x1000, 0x2067, 0, UVMF_NONE, 0]);
    assert_eq!(fake.executed[4].args, [5, 0, 0, 0, 0]);
    // The second entry's pdone was written through its own address.
    assert_eq!(done, 4);
    // The by-value arguments of entries 3 and 4 went through separate slots.
    // SAFETY: the slots belong to the scratch, still alive.
    let (port, reason): (u32, u32) = unsafe {
        let fake = xen.raw();
        (
            fake.read(fake.executed[2].args[1]),
            fake.read(fake.executed[3].args[1]),
        )
    };
    assert_eq!((port, reason), (3, 9));
}

#[test]
fn multicalls_without_scratch_are_issued_one_by_one() {
    let fake = FakeXen {
        next_ret: vec![0, 0, -1, 0, -22],
        ..Default::default()
    };
    let mut xen = Lowering::new(fake);
    let reqs = [MmuUpdate::normal_pt_update(0x3000, 0x4067); 2];
    let mut done = 0;
    let mut calls = five_calls(&reqs, &mut done);
    let mut results = [0; 5];
    // SAFETY: the fake hypervisor only touches what the calls lend.
    unsafe { xen.multicall(&mut calls, &mut results) }.unwrap();
    assert_eq!(results, [0, 0, -1, 0, -22]);
    assert_eq!(
        xen.raw().traps.iter().map(|t| t.op).collect::<Vec<_>>(),
        [14, 1, 32, 29, 15]
    );
    assert_eq!(done, 2);
}

#[test]
fn nested_multicalls_are_refused() {
    let mut scratch = MulticallScratch::<4>::new();
    let mut xen = Lowering::with_multicall_scratch(FakeXen::default(), &mut scratch);
    let mut inner: [Call<'_>; 0] = [];
    let mut inner_results: [isize; 0] = [];
    let mut calls = [
        Call::SchedOp(SchedOp::Yield),
        Call::Multicall {
            calls: &mut inner,
            results: &mut inner_results,
        },
    ];
    let mut results = [0; 2];
    // SAFETY: nothing is issued.
    let outcome = unsafe { xen.multicall(&mut calls, &mut results) };
    assert_eq!(outcome, Err(XenError::EINVAL));
    assert!(xen.raw().traps.is_empty());
}

#[test]
fn a_refused_multicall_marks_the_rest_failed() {
    // A hypervisor that refuses the multicall list itself.
    struct Refusing(FakeXen);
    impl RawHypercall for Refusing {
        fn guest_addr(&mut self, ptr: *const u8) -> u32 {
            self.0.guest_addr(ptr)
        }
        unsafe fn raw_hypercall(&mut self, op: u32, args: [u32; 5]) -> isize {
            self.0.traps.push(RawCall { op, args });
            XenError::EFAULT.to_ret()
        }
        unsafe fn raw_iret(&mut self, _frame: *mut IretFrame) -> ! {
            panic!("iret");
        }
    }
    let mut scratch = MulticallScratch::<2>::new();
    let mut xen = Lowering::with_multicall_scratch(Refusing(FakeXen::default()), &mut scratch);
    let mut calls = [
        Call::SchedOp(SchedOp::Yield),
        Call::SchedOp(SchedOp::Yield),
        Call::SchedOp(SchedOp::Yield),
    ];
    let mut results = [0; 3];
    // SAFETY: nothing is executed.
    let outcome = unsafe { xen.multicall(&mut calls, &mut results) };
    assert_eq!(outcome, Err(XenError::EFAULT));
    assert_eq!(results, [-14; 3]);
    assert_eq!(xen.raw().0.traps.len(), 1, "stopped after the refused list");
}
