//! GetRelocationInfo results: packing into EDX:EAX and Linux's patch logic.

use proptest::prelude::*;
use vmi_abi::reloc::{CALL_REL32_OPCODE, JMP_REL32_OPCODE, NOP_OPCODE};
use vmi_abi::*;
use zerocopy::{FromBytes, IntoBytes};

#[test]
fn packs_eip_in_eax_and_type_in_the_low_byte_of_edx() {
    let r = VmiRelocationInfo::call_rel(0xC000_1234);
    assert_eq!(r.to_u64(), 0x0000_0001_C000_1234);
    assert_eq!(r.to_regs(), (0xC000_1234, 0x0000_0001));
    let j = VmiRelocationInfo::jump_rel(0xFFC0_0090);
    assert_eq!(j.to_regs(), (0xFFC0_0090, 2));
    assert_eq!(VmiRelocationInfo::nop().to_u64(), 3 << 32);
    assert_eq!(VmiRelocationInfo::NONE.to_u64(), 0);
    // Reserved bytes sit above the type byte.
    let odd = VmiRelocationInfo {
        eip: 1,
        type_: 0x7F,
        reserved: [0xAA, 0xBB, 0xCC],
    };
    assert_eq!(odd.to_u64(), 0xCCBB_AA7F_0000_0001);
    assert_eq!(odd.relocation_type(), Err(0x7F));
    assert_eq!(r.relocation_type(), Ok(VmiRelocationType::CallRel));
}

proptest! {
    #[test]
    fn u64_round_trip(value in any::<u64>()) {
        let r = VmiRelocationInfo::from_u64(value);
        prop_assert_eq!(r.to_u64(), value);
        let (eax, edx) = r.to_regs();
        prop_assert_eq!(VmiRelocationInfo::from_regs(eax, edx), r);
        // Linux reads the u64 through a struct pointer: memory order must agree.
        prop_assert_eq!(r.as_bytes(), &value.to_le_bytes()[..]);
        prop_assert_eq!(VmiRelocationInfo::read_from_bytes(&value.to_le_bytes()).unwrap(), r);
    }

    #[test]
    fn struct_round_trip(eip in any::<u32>(), type_ in any::<u8>(), reserved in any::<[u8; 3]>()) {
        let r = VmiRelocationInfo { eip, type_, reserved };
        prop_assert_eq!(VmiRelocationInfo::from_u64(r.to_u64()), r);
        prop_assert_eq!(r.to_u64() as u32, eip);
        prop_assert_eq!((r.to_u64() >> 32) as u8, type_);
    }

    #[test]
    fn rel32_reaches_the_target(site in any::<u32>(), target in any::<u32>(), call in any::<bool>(), len in 5usize..32) {
        let reloc = if call { VmiRelocationInfo::call_rel(target) } else { VmiRelocationInfo::jump_rel(target) };
        let action = patch_site(reloc, site, len).unwrap();
        let PatchAction::Write { insn } = action else { panic!("expected a write, got {action:?}") };
        prop_assert_eq!(insn[0], if call { CALL_REL32_OPCODE } else { JMP_REL32_OPCODE });
        // rel32 = target - (site + 5) modulo 2^32, computed independently in i64.
        let rel = (i64::from(target) - (i64::from(site) + 5)).rem_euclid(1 << 32) as u32;
        prop_assert_eq!(u32::from_le_bytes([insn[1], insn[2], insn[3], insn[4]]), rel);
        prop_assert_eq!(decode_rel32(site, insn), target);
        prop_assert_eq!(action.used_len(len), 5);
    }
}

#[test]
fn patch_site_bytes() {
    // call from 0xC0100000 back to 0xC0000080: rel = 0xC0000080 - 0xC0100005 = -0xFFF85.
    let a = patch_site(VmiRelocationInfo::call_rel(0xC000_0080), 0xC010_0000, 6).unwrap();
    assert_eq!(
        a,
        PatchAction::Write {
            insn: [0xE8, 0x7B, 0x00, 0xF0, 0xFF]
        }
    );
    // jmp forward: 0xC0100000 -> 0xFFC01000: rel = 0x3FB00FFB.
    let a = patch_site(VmiRelocationInfo::jump_rel(0xFFC0_1000), 0xC010_0000, 5).unwrap();
    assert_eq!(
        a,
        PatchAction::Write {
            insn: [0xE9, 0xFB, 0x0F, 0xB0, 0x3F]
        }
    );
    // Wraparound: site near the top of the address space, target near 0.
    let a = patch_site(VmiRelocationInfo::call_rel(0x0000_0010), 0xFFFF_FFF0, 5).unwrap();
    assert_eq!(
        a,
        PatchAction::Write {
            insn: [0xE8, 0x1B, 0x00, 0x00, 0x00]
        }
    );
    // ... and the other way round.
    let a = patch_site(VmiRelocationInfo::jump_rel(0xFFFF_FF00), 0x0000_0010, 5).unwrap();
    assert_eq!(
        a,
        PatchAction::Write {
            insn: [0xE9, 0xEB, 0xFE, 0xFF, 0xFF]
        }
    );
    // Target == site + 5: rel 0.
    let a = patch_site(VmiRelocationInfo::call_rel(0x1005), 0x1000, 5).unwrap();
    assert_eq!(
        a,
        PatchAction::Write {
            insn: [0xE8, 0, 0, 0, 0]
        }
    );
}

#[test]
fn patch_site_other_types_and_errors() {
    assert_eq!(
        patch_site(VmiRelocationInfo::nop(), 0x1000, 1),
        Ok(PatchAction::NopFill)
    );
    assert_eq!(
        patch_site(VmiRelocationInfo::NONE, 0x1000, 0),
        Ok(PatchAction::KeepNative)
    );
    assert_eq!(
        patch_site(VmiRelocationInfo::call_rel(0x2000), 0x1000, 4),
        Err(PatchError::SiteTooShort { len: 4 })
    );
    assert_eq!(
        patch_site(VmiRelocationInfo::jump_rel(0x2000), 0x1000, 0),
        Err(PatchError::SiteTooShort { len: 0 })
    );
    let unknown = VmiRelocationInfo {
        eip: 0x2000,
        type_: 7,
        reserved: [0; 3],
    };
    assert_eq!(
        patch_site(unknown, 0x1000, 10),
        Err(PatchError::UnknownType(7))
    );
    assert_eq!(PatchAction::NopFill.used_len(7), 0);
    assert_eq!(PatchAction::KeepNative.used_len(7), 7);
    assert!(PatchError::UnknownType(7).to_string().contains('7'));
}

#[test]
fn apply_writes_the_instruction_and_nop_pads() {
    let native = [0xFF, 0x15, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60];
    let mut site = native;
    let a = patch_site(VmiRelocationInfo::call_rel(0x1234_5678), 0x1000, site.len()).unwrap();
    a.apply(&mut site);
    assert_eq!(site[..5], encode_rel32(0xE8, 0x1000, 0x1234_5678));
    assert_eq!(site[5..], [NOP_OPCODE; 3]);

    let mut site = native;
    PatchAction::NopFill.apply(&mut site);
    assert_eq!(site, [NOP_OPCODE; 8]);

    let mut site = native;
    PatchAction::KeepNative.apply(&mut site);
    assert_eq!(site, native);

    // A too-short buffer for a write is left alone rather than half written.
    let mut short = [1u8, 2, 3];
    PatchAction::Write {
        insn: [0xE8, 0, 0, 0, 0],
    }
    .apply(&mut short);
    assert_eq!(short, [1, 2, 3]);
}

#[test]
fn fill_and_wrap_decisions_match_vmi_32_c() {
    assert_eq!(
        para_fill(VmiRelocationInfo::call_rel(0xABC)),
        FillAction::Direct(0xABC)
    );
    assert_eq!(
        para_fill(VmiRelocationInfo::nop()),
        FillAction::EmptyFunction
    );
    assert_eq!(para_fill(VmiRelocationInfo::NONE), FillAction::KeepNative);
    assert_eq!(
        para_fill(VmiRelocationInfo::jump_rel(0xABC)),
        FillAction::Unusable(2)
    );
    assert_eq!(
        para_fill(VmiRelocationInfo {
            eip: 0,
            type_: 9,
            reserved: [0; 3]
        }),
        FillAction::Unusable(9)
    );

    assert_eq!(
        cached_function(VmiRelocationInfo::call_rel(0xABC)),
        Ok(Some(0xABC))
    );
    assert_eq!(cached_function(VmiRelocationInfo::nop()), Ok(None));
    assert_eq!(cached_function(VmiRelocationInfo::NONE), Ok(None));
    assert_eq!(
        cached_function(VmiRelocationInfo::jump_rel(0xABC)),
        Err(JumpRelNotCallable)
    );
}

#[test]
fn jump_points_are_relative_jumps_into_the_rom() {
    let p = jump_point(0x80, 0x400);
    assert_eq!(p[0], 0xE9);
    assert_eq!(decode_rel32(0x80, [p[0], p[1], p[2], p[3], p[4]]), 0x400);
    assert_eq!(p[5..], [0xCC; 3]);
    // Position independence: the same bytes reach the same offset wherever the ROM sits.
    for base in [0xC_0000u32, 0xFFC0_0000, 0xF580_0000] {
        assert_eq!(
            decode_rel32(
                base + 0x88,
                jump_point(0x88, 0x1F0)[..5].try_into().unwrap()
            ),
            base + 0x1F0
        );
    }
}
