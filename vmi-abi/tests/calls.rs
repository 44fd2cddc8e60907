//! Calling conventions and Linux bindings of the VMI calls.

use proptest::prelude::*;
use vmi_abi::*;

fn regparm(call: VmiCall) -> Regparm {
    match call.info().convention {
        Convention::Regparm(r) => r,
        other => panic!("{} is not regparm: {other:?}", call.name()),
    }
}

fn locations(r: &Regparm) -> Vec<ArgLocation> {
    (0..r.args.len())
        .map(|i| r.arg_location(i).unwrap())
        .collect()
}

use ArgLocation::{Reg as R, RegPair, Stack};
use Reg::{Eax, Ecx, Edx};

#[test]
fn register_assignment_matches_the_documented_registers() {
    // SetPxELong(u64 pte, pte_t *ptep, unsigned flags): EDX:EAX, ECX, stack.
    let r = regparm(VmiCall::SetPxeLong);
    assert_eq!(
        locations(&r),
        [
            RegPair { lo: Eax, hi: Edx },
            R(Ecx),
            Stack {
                esp_offset: 4,
                width: ArgWidth::U32
            }
        ]
    );
    assert_eq!(r.stack_bytes(), 4);
    // SetAlarm(u32 flags, u64 expiry, u64 period): EAX, EDX(lo):ECX(hi), period on the stack.
    let r = regparm(VmiCall::SetAlarm);
    assert_eq!(
        locations(&r),
        [
            R(Eax),
            RegPair { lo: Edx, hi: Ecx },
            Stack {
                esp_offset: 4,
                width: ArgWidth::U64
            }
        ]
    );
    assert_eq!(r.stack_bytes(), 8);
    // AllocatePage(pfn, flags, clonepfn, start, count): EAX, EDX, ECX, stack, stack.
    let r = regparm(VmiCall::AllocatePage);
    assert_eq!(
        locations(&r),
        [
            R(Eax),
            R(Edx),
            R(Ecx),
            Stack {
                esp_offset: 4,
                width: ArgWidth::U32
            },
            Stack {
                esp_offset: 8,
                width: ArgWidth::U32
            }
        ]
    );
    // WriteGDTEntry(base, entry, lo, hi): hi is ST(1) in the 2006 spec = first stack word.
    assert_eq!(
        regparm(VmiCall::WriteGdtEntry).arg_location(3),
        Some(Stack {
            esp_offset: 4,
            width: ArgWidth::U32
        })
    );
    // RDMSR(u64 dummy, u32 reg): the dummy steers reg into ECX.
    assert_eq!(regparm(VmiCall::Rdmsr).arg_location(1), Some(R(Ecx)));
    assert_eq!(regparm(VmiCall::Rdpmc).arg_location(1), Some(R(Ecx)));
    // WRMSR(u64 val, u32 reg): EAX = low, EDX = high, ECX = MSR, like the instruction.
    assert_eq!(
        locations(&regparm(VmiCall::Wrmsr)),
        [RegPair { lo: Eax, hi: Edx }, R(Ecx)]
    );
    // INB(dummy, port): port in EDX, like the instruction.
    assert_eq!(regparm(VmiCall::Inb).arg_location(1), Some(R(Edx)));
    // SetInitialAPState(ap_state, apic_id): EAX, EDX.
    assert_eq!(
        locations(&regparm(VmiCall::SetInitialApState)),
        [R(Eax), R(Edx)]
    );
    assert_eq!(regparm(VmiCall::SetInitialApState).arg_location(2), None);
    // Results.
    assert_eq!(regparm(VmiCall::Rdtsc).ret, Ret::U64);
    assert_eq!(regparm(VmiCall::GetCycleCounter).ret, Ret::U64);
    assert_eq!(regparm(VmiCall::GetInterruptMask).ret, Ret::U32);
    assert_eq!(regparm(VmiCall::CancelAlarm).ret, Ret::U32);
    assert_eq!(regparm(VmiCall::SetCr3).ret, Ret::Void);
    // The two fixed entry points.
    assert_eq!(VMI_INIT_CONVENTION.args.len(), 0);
    assert_eq!(VMI_INIT_CONVENTION.ret, Ret::U32);
    assert_eq!(GET_RELOCATION_INFO_CONVENTION.arg_location(0), Some(R(Eax)));
    assert_eq!(GET_RELOCATION_INFO_CONVENTION.ret, Ret::U64);
}

#[test]
fn a_64_bit_argument_that_does_not_fit_sends_the_rest_to_the_stack() {
    // GCC: (u32, u32, u64, u32): the u64 needs two registers, only ECX is left,
    // so it goes on the stack and ECX stays unused for the last argument too.
    static ARGS: [Arg; 4] = [
        Arg {
            name: "a",
            width: ArgWidth::U32,
        },
        Arg {
            name: "b",
            width: ArgWidth::U32,
        },
        Arg {
            name: "c",
            width: ArgWidth::U64,
        },
        Arg {
            name: "d",
            width: ArgWidth::U32,
        },
    ];
    let r = Regparm {
        args: &ARGS,
        ret: Ret::Void,
    };
    assert_eq!(
        locations(&r),
        [
            R(Eax),
            R(Edx),
            Stack {
                esp_offset: 4,
                width: ArgWidth::U64
            },
            Stack {
                esp_offset: 12,
                width: ArgWidth::U32
            }
        ]
    );
    assert_eq!(r.stack_bytes(), 12);
}

/// Straightforward model of GCC's i386 regparm(3) assignment.
fn model_locations(widths: &[ArgWidth]) -> Vec<ArgLocation> {
    let regs = [Eax, Edx, Ecx];
    let mut free = 3usize;
    let mut next = 0usize;
    let mut stack = 4u32;
    let mut out = Vec::new();
    for &w in widths {
        let words = if w == ArgWidth::U64 { 2 } else { 1 };
        if words <= free {
            out.push(if words == 1 {
                R(regs[next])
            } else {
                RegPair {
                    lo: regs[next],
                    hi: regs[next + 1],
                }
            });
            next += words;
            free -= words;
        } else {
            free = 0;
            out.push(Stack {
                esp_offset: stack,
                width: w,
            });
            stack += 4 * words as u32;
        }
    }
    out
}

proptest! {
    #[test]
    fn arg_location_matches_the_model(widths in proptest::collection::vec(prop_oneof![Just(ArgWidth::U32), Just(ArgWidth::U64)], 0..7)) {
        let args: Vec<Arg> = widths.iter().map(|&width| Arg { name: "x", width }).collect();
        let args: &'static [Arg] = Box::leak(args.into_boxed_slice());
        let r = Regparm { args, ret: Ret::Void };
        let model = model_locations(&widths);
        prop_assert_eq!(locations(&r), model.clone());
        prop_assert_eq!(r.arg_location(widths.len()), None);
        let stack: u32 = model.iter().map(|l| match l { Stack { width, .. } => width.words() * 4, _ => 0 }).sum();
        prop_assert_eq!(r.stack_bytes(), stack);
    }
}

#[test]
fn only_the_documented_calls_are_not_c_functions() {
    for call in VmiCall::ALL {
        let want = match call {
            VmiCall::Cpuid => Some(Convention::Cpuid),
            VmiCall::Iret => Some(Convention::Iret),
            VmiCall::Sysexit => Some(Convention::Sysexit),
            VmiCall::Insb | VmiCall::Insw | VmiCall::Insl => Some(Convention::StringIn),
            VmiCall::Outsb | VmiCall::Outsw | VmiCall::Outsl => Some(Convention::StringOut),
            VmiCall::SetCallbacks => Some(Convention::Unspecified),
            _ => None,
        };
        match (want, call.info().convention) {
            (None, Convention::Regparm(r)) => assert!(r.args.len() <= 5, "{}", call.name()),
            (Some(w), got) => assert_eq!(got, w, "{}", call.name()),
            (None, got) => panic!("{} unexpectedly {got:?}", call.name()),
        }
    }
}

#[test]
fn argument_counts_follow_the_prototypes() {
    // (call, argument count, 64-bit argument indexes) from the prototypes in
    // vmi_32.c's vmi_ops / vmi_timer_ops and vmi_spec.txt Appendix B.
    let table: &[(VmiCall, usize, &[usize])] = &[
        (VmiCall::SetGdt, 1, &[]),
        (VmiCall::SetLdt, 1, &[]),
        (VmiCall::GetLdt, 0, &[]),
        (VmiCall::WriteIdtEntry, 4, &[]),
        (VmiCall::UpdateKernelStack, 2, &[]),
        (VmiCall::SetDr, 2, &[]),
        (VmiCall::GetDr, 1, &[]),
        (VmiCall::SetPxe, 3, &[]),
        (VmiCall::SetPxeLong, 3, &[0]),
        (VmiCall::UpdatePxe, 2, &[]),
        (VmiCall::UpdatePxeLong, 2, &[]),
        (VmiCall::AllocatePage, 5, &[]),
        (VmiCall::ReleasePage, 2, &[]),
        (VmiCall::SetLinearMapping, 4, &[]),
        (VmiCall::FlushTlb, 1, &[]),
        (VmiCall::ApicWrite, 2, &[]),
        (VmiCall::ApicRead, 1, &[]),
        (VmiCall::SetAlarm, 3, &[1, 2]),
        (VmiCall::CancelAlarm, 1, &[]),
        (VmiCall::GetCycleCounter, 1, &[]),
        (VmiCall::SetLazyMode, 1, &[]),
        (VmiCall::Reboot, 1, &[]),
        (VmiCall::Halt, 0, &[]),
        (VmiCall::Shutdown, 0, &[]),
        (VmiCall::Wrmsr, 2, &[0]),
        (VmiCall::Rdmsr, 2, &[0]),
    ];
    for &(call, count, wide) in table {
        let r = regparm(call);
        assert_eq!(r.args.len(), count, "{}", call.name());
        for (i, arg) in r.args.iter().enumerate() {
            let want = if wide.contains(&i) {
                ArgWidth::U64
            } else {
                ArgWidth::U32
            };
            assert_eq!(arg.width, want, "{} argument {i}", call.name());
        }
    }
}

#[test]
fn linux_binding_matches_vmi_32_c() {
    use LinuxBinding::*;
    // activate_vmi() of 2.6.30, written out.
    let fill = [
        3, 5, 7, 9, 10, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 35, 46, 61, 63, 64, 65,
    ];
    let fill_and_patch = [29, 30, 31, 32];
    let wrap = [
        0, 4, 6, 11, 12, 13, 14, 38, 39, 40, 41, 44, 45, 47, 48, 62, 73,
    ];
    let patch_only = [33, 34];
    let timer = [66, 67, 68, 69, 70, 71];
    for call in VmiCall::ALL {
        let n = call.number();
        let want = if fill.contains(&n) {
            Fill
        } else if fill_and_patch.contains(&n) {
            FillAndPatch
        } else if wrap.contains(&n) {
            Wrap
        } else if patch_only.contains(&n) {
            PatchOnly
        } else if timer.contains(&n) {
            Timer
        } else {
            Unused
        };
        assert_eq!(call.info().binding, want, "{}", call.name());
        assert_eq!(call.info().binding.is_used(), want != Unused);
        assert!(!call.info().linux_op.is_empty(), "{}", call.name());
    }
    // Unused by Linux: MSRs, RDPMC, GetLDT, Reboot, Shutdown, M2P, P2M, port I/O, SetCallbacks.
    let unused: Vec<u32> = VmiCall::ALL
        .iter()
        .filter(|c| !c.info().binding.is_used())
        .map(|c| c.number())
        .collect();
    let mut want: Vec<u32> = vec![1, 2, 8, 26, 36, 37, 42, 43];
    want.extend(49..=60);
    want.push(72);
    assert_eq!(unused, want);
}

#[test]
fn clobbers_follow_the_specification() {
    for call in VmiCall::ALL {
        let want = match call {
            VmiCall::EnableInterrupts
            | VmiCall::DisableInterrupts
            | VmiCall::GetInterruptMask
            | VmiCall::SetInterruptMask
            | VmiCall::Cpuid => Clobbers::FlagsOnly,
            VmiCall::Iret | VmiCall::Sysexit => Clobbers::NoReturn,
            _ => Clobbers::Standard,
        };
        assert_eq!(call.info().clobbers, want, "{}", call.name());
    }
}

#[test]
fn relocation_types_linux_survives() {
    use VmiRelocationType::*;
    let table: &[(LinuxBinding, [bool; 4])] = &[
        //                         NONE  CALL   JUMP   NOP
        (LinuxBinding::Fill, [true, true, false, true]),
        (LinuxBinding::FillAndPatch, [true, true, false, true]),
        (LinuxBinding::Wrap, [true, true, false, true]),
        (LinuxBinding::PatchOnly, [false, true, true, false]),
        (LinuxBinding::Timer, [true, true, false, false]),
        (LinuxBinding::Unused, [true, true, true, true]),
    ];
    for &(binding, ok) in table {
        for (kind, want) in [None, CallRel, JumpRel, Nop].into_iter().zip(ok) {
            assert_eq!(binding.works_with(kind), want, "{binding:?} with {kind:?}");
        }
    }
}
