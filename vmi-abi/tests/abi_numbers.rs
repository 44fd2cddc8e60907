//! Every number, size and offset of the crate against the values written out
//! from Linux 2.6.30's `arch/x86/include/asm/vmi.h` and `vmi_time.h` (and,
//! where named, the 2006 `vmi_spec.txt` / VMware's call list).

use core::mem::{align_of, offset_of, size_of};

use vmi_abi::ap_state::{AbiU64, VmiApState};
use vmi_abi::flags::*;
use vmi_abi::rom::{PCI_HEADER_SIZE, PNP_HEADER_SIZE};
use vmi_abi::time::*;
use vmi_abi::*;
use zerocopy::IntoBytes;

#[test]
fn rom_constants_match_vmi_h() {
    // vmi.h: #define VMI_SIGNATURE 0x696d5663 /* "cVmi" */
    assert_eq!(VMI_SIGNATURE, 0x696d5663);
    assert_eq!(VMI_SIGNATURE.to_le_bytes(), *b"cVmi");
    // vmi.h: PCI_VENDOR_ID_VMWARE 0x15AD, PCI_DEVICE_ID_VMWARE_VMI 0x0801
    assert_eq!(PCI_VENDOR_ID_VMWARE, 0x15AD);
    assert_eq!(PCI_DEVICE_ID_VMWARE_VMI, 0x0801);
    // vmi.h: VMI_API_REV_MAJOR 3, VMI_API_REV_MINOR 0
    assert_eq!(VMI_API_REV_MAJOR, 3);
    assert_eq!(VMI_API_REV_MINOR, 0);
    // check_vmi_rom: rom_signature != 0xaa55
    assert_eq!(OPTION_ROM_SIGNATURE, 0xaa55);
    assert_eq!(OPTION_ROM_SIGNATURE.to_le_bytes(), [0x55, 0xAA]);
    // probe_vmi_rom: for (base = 0xC0000; base < 0xE0000; base += 2048)
    assert_eq!(
        (VMI_PROBE_START, VMI_PROBE_END, VMI_PROBE_STEP),
        (0xC0000, 0xE0000, 2048)
    );
    let probes: Vec<u32> = probe_addresses().collect();
    assert_eq!(probes.len(), 64);
    assert_eq!(probes[0], 0xC0000);
    assert_eq!(probes[1], 0xC0800);
    assert_eq!(*probes.last().unwrap(), 0xDF800);
    // struct vrom_header: vmi_init at 0x80, get_reloc at 0x88; 512-byte rom_length units.
    assert_eq!(VMI_INIT_OFFSET, 0x80);
    assert_eq!(GET_RELOCATION_INFO_OFFSET, 0x88);
    assert_eq!(ROM_BLOCK_SIZE, 512);
}

#[test]
fn vrom_header_layout_matches_vmi_h() {
    // struct vrom_header, __attribute__((packed)), offsets as gcc -m32 lays it out.
    let expected: &[(&str, usize, usize)] = &[
        ("rom_signature", offset_of!(VromHeader, rom_signature), 0x00),
        ("rom_length", offset_of!(VromHeader, rom_length), 0x02),
        ("rom_entry", offset_of!(VromHeader, rom_entry), 0x03),
        ("rom_pad0", offset_of!(VromHeader, rom_pad0), 0x07),
        (
            "vrom_signature",
            offset_of!(VromHeader, vrom_signature),
            0x08,
        ),
        (
            "api_version_min",
            offset_of!(VromHeader, api_version_min),
            0x0C,
        ),
        (
            "api_version_maj",
            offset_of!(VromHeader, api_version_maj),
            0x0D,
        ),
        ("jump_slots", offset_of!(VromHeader, jump_slots), 0x0E),
        ("reserved1", offset_of!(VromHeader, reserved1), 0x0F),
        ("virtual_top", offset_of!(VromHeader, virtual_top), 0x10),
        ("reserved2", offset_of!(VromHeader, reserved2), 0x14),
        ("license_offs", offset_of!(VromHeader, license_offs), 0x16),
        (
            "pci_header_offs",
            offset_of!(VromHeader, pci_header_offs),
            0x18,
        ),
        (
            "pnp_header_offs",
            offset_of!(VromHeader, pnp_header_offs),
            0x1A,
        ),
        ("rom_pad3", offset_of!(VromHeader, rom_pad3), 0x1C),
        ("reserved", offset_of!(VromHeader, reserved), 0x20),
        ("vmi_init", offset_of!(VromHeader, vmi_init), 0x80),
        ("get_reloc", offset_of!(VromHeader, get_reloc), 0x88),
    ];
    for &(name, got, want) in expected {
        assert_eq!(got, want, "vrom_header.{name}");
    }
    assert_eq!(size_of::<VromHeader>(), 144);
    assert_eq!(VROM_HEADER_SIZE, 144);
    assert_eq!(align_of::<VromHeader>(), 1);
}

#[test]
fn pci_and_pnp_header_layouts_match_vmi_h() {
    // struct pci_header (packed): sig[4] vendorID deviceID vpdData size rev class subclass
    // interface chunks rom_version_min rom_version_maj codetype lastRom reserved.
    let pci: &[(&str, usize, usize)] = &[
        ("sig", offset_of!(PciHeader, sig), 0),
        ("vendorID", offset_of!(PciHeader, vendor_id), 4),
        ("deviceID", offset_of!(PciHeader, device_id), 6),
        ("vpdData", offset_of!(PciHeader, vpd_data), 8),
        ("size", offset_of!(PciHeader, size), 10),
        ("rev", offset_of!(PciHeader, rev), 12),
        ("class", offset_of!(PciHeader, class_code), 13),
        ("chunks", offset_of!(PciHeader, chunks), 16),
        (
            "rom_version_min",
            offset_of!(PciHeader, rom_version_min),
            18,
        ),
        (
            "rom_version_maj",
            offset_of!(PciHeader, rom_version_maj),
            19,
        ),
        ("codetype", offset_of!(PciHeader, codetype), 20),
        ("lastRom", offset_of!(PciHeader, last_rom), 21),
        ("reserved", offset_of!(PciHeader, reserved), 22),
    ];
    for &(name, got, want) in pci {
        assert_eq!(got, want, "pci_header.{name}");
    }
    assert_eq!(size_of::<PciHeader>(), 24);
    assert_eq!(PCI_HEADER_SIZE, 24);

    // struct pnp_header (packed): sig[4] rev size next res devID manufacturer_offset product_offset.
    let pnp: &[(&str, usize, usize)] = &[
        ("sig", offset_of!(PnpHeader, sig), 0),
        ("rev", offset_of!(PnpHeader, rev), 4),
        ("size", offset_of!(PnpHeader, size), 5),
        ("next", offset_of!(PnpHeader, next), 6),
        ("res", offset_of!(PnpHeader, reserved), 8),
        ("devID", offset_of!(PnpHeader, dev_id), 10),
        (
            "manufacturer_offset",
            offset_of!(PnpHeader, manufacturer_offset),
            14,
        ),
        ("product_offset", offset_of!(PnpHeader, product_offset), 16),
    ];
    for &(name, got, want) in pnp {
        assert_eq!(got, want, "pnp_header.{name}");
    }
    assert_eq!(size_of::<PnpHeader>(), 18);
    assert_eq!(PNP_HEADER_SIZE, 18);
}

#[test]
fn relocation_constants_and_layout_match_vmi_h() {
    // VMI_RELOCATION_NONE 0, CALL_REL 1, JUMP_REL 2, NOP 3.
    assert_eq!(VmiRelocationType::None as u8, 0);
    assert_eq!(VmiRelocationType::CallRel as u8, 1);
    assert_eq!(VmiRelocationType::JumpRel as u8, 2);
    assert_eq!(VmiRelocationType::Nop as u8, 3);
    for raw in 0..=255u8 {
        let parsed = VmiRelocationType::from_u8(raw);
        assert_eq!(
            parsed.map(|t| t.as_u8()),
            if raw <= 3 { Some(raw) } else { None }
        );
    }
    // struct vmi_relocation_info { unsigned char *eip; unsigned char type; unsigned char reserved[3]; }
    assert_eq!(size_of::<VmiRelocationInfo>(), 8);
    assert_eq!(offset_of!(VmiRelocationInfo, eip), 0);
    assert_eq!(offset_of!(VmiRelocationInfo, type_), 4);
    assert_eq!(offset_of!(VmiRelocationInfo, reserved), 5);
}

#[test]
fn page_and_flush_flags_match_vmi_h() {
    let expected: &[(&str, u32, u32)] = &[
        ("VMI_PAGE_PAE", VMI_PAGE_PAE, 0x10),
        ("VMI_PAGE_CLONE", VMI_PAGE_CLONE, 0x20),
        ("VMI_PAGE_ZEROED", VMI_PAGE_ZEROED, 0x40),
        ("VMI_PAGE_PT", VMI_PAGE_PT, 0x01),
        ("VMI_PAGE_PD", VMI_PAGE_PD, 0x02),
        ("VMI_PAGE_PDP", VMI_PAGE_PDP, 0x04),
        ("VMI_PAGE_PML4", VMI_PAGE_PML4, 0x08),
        ("VMI_PAGE_NORMAL", VMI_PAGE_NORMAL, 0x00),
        ("VMI_PAGE_CURRENT_AS", VMI_PAGE_CURRENT_AS, 0x10),
        ("VMI_PAGE_DEFER", VMI_PAGE_DEFER, 0x20),
        ("VMI_PAGE_VA_MASK", VMI_PAGE_VA_MASK, 0xfffff000),
        // CONFIG_X86_PAE: L1 = PT|PAE|ZEROED, L2 = PD|PAE|ZEROED; else without PAE.
        ("VMI_PAGE_L1 (PAE)", VMI_PAGE_L1_PAE, 0x51),
        ("VMI_PAGE_L2 (PAE)", VMI_PAGE_L2_PAE, 0x52),
        ("VMI_PAGE_L1 (!PAE)", VMI_PAGE_L1_NON_PAE, 0x41),
        ("VMI_PAGE_L2 (!PAE)", VMI_PAGE_L2_NON_PAE, 0x42),
        ("VMI_FLUSH_TLB", VMI_FLUSH_TLB, 0x01),
        ("VMI_FLUSH_GLOBAL", VMI_FLUSH_GLOBAL, 0x02),
        // vmi_32.c: vmi_ops.set_lazy_mode(0 / 1 / 2) on leave / enter MMU / enter CPU.
        ("lazy none", VMI_LAZY_NONE, 0),
        ("lazy MMU", VMI_LAZY_MMU, 1),
        ("lazy CPU", VMI_LAZY_CPU, 2),
        // vmi_spec.txt: VMI_REBOOT_SOFT 0x0, VMI_REBOOT_HARD 0x1, mask 0x200, 4 map slots.
        ("VMI_REBOOT_SOFT", VMI_REBOOT_SOFT, 0),
        ("VMI_REBOOT_HARD", VMI_REBOOT_HARD, 1),
        ("interrupt mask IF", VMI_INTERRUPT_MASK_ENABLED, 0x200),
        ("VMI_LINEAR_MAP_SLOTS", VMI_LINEAR_MAP_SLOTS, 4),
    ];
    for &(name, got, want) in expected {
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(vmi_page_l1(true), 0x51);
    assert_eq!(vmi_page_l2(false), 0x42);
    assert_eq!(LazyMode::from_u32(1), Some(LazyMode::Mmu));
    assert_eq!(LazyMode::from_u32(3), None);
    assert_eq!(LazyMode::Cpu as u32, 2);
}

#[test]
fn flag_words_decode_like_linux_builds_them() {
    // vmi_flags_addr_defer(mm, 0xB7F3_4567, VMI_PAGE_PT, 1) in the current address space:
    let f = PxeUpdateFlags::new(PageLevel::Pt, Some(0xB7F3_4567), true);
    assert_eq!(f.0, 0xB7F3_4000 | 0x20 | 0x10 | 0x01);
    assert_eq!(
        (f.level(), f.current_as(), f.defer(), f.va()),
        (Some(PageLevel::Pt), true, true, Some(0xB7F3_4000))
    );
    // Not the current address space: level only, DEFER dropped as in Linux.
    let f = PxeUpdateFlags::new(PageLevel::Pd, None, true);
    assert_eq!(f.0, VMI_PAGE_PD);
    assert_eq!((f.current_as(), f.defer(), f.va()), (false, false, None));
    // alloc_pmd_clone: VMI_PAGE_L2 | VMI_PAGE_CLONE.
    let a = PageAllocFlags(VMI_PAGE_L2_PAE | VMI_PAGE_CLONE);
    assert_eq!(
        (a.level(), a.pae(), a.clone(), a.zeroed()),
        (Some(PageLevel::Pd), true, true, true)
    );
    assert_eq!(PageLevel::from_flags(VMI_PAGE_PT | VMI_PAGE_PD), None);
    assert_eq!(PageLevel::from_flags(0x40), None);
}

#[test]
fn timer_constants_match_vmi_time_h() {
    let expected: &[(&str, u32, u32)] = &[
        ("VMI_CYCLES_REAL", VMI_CYCLES_REAL, 0),
        ("VMI_CYCLES_AVAILABLE", VMI_CYCLES_AVAILABLE, 1),
        ("VMI_CYCLES_STOLEN", VMI_CYCLES_STOLEN, 2),
        ("VMI_ALARM_COUNTERS", VMI_ALARM_COUNTERS, 2),
        ("VMI_ALARM_COUNTER_MASK", VMI_ALARM_COUNTER_MASK, 0x000000ff),
        ("VMI_ALARM_WIRED_IRQ0", VMI_ALARM_WIRED_IRQ0, 0x00000000),
        ("VMI_ALARM_WIRED_LVTT", VMI_ALARM_WIRED_LVTT, 0x00010000),
        ("VMI_ALARM_IS_ONESHOT", VMI_ALARM_IS_ONESHOT, 0x00000000),
        ("VMI_ALARM_IS_PERIODIC", VMI_ALARM_IS_PERIODIC, 0x00000100),
        ("CONFIG_VMI_ALARM_HZ", CONFIG_VMI_ALARM_HZ, 100),
    ];
    for &(name, got, want) in expected {
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(VMI_WALLCLOCK_HZ, 1_000_000_000);
    // vmiclock_32.c: VMI_PERIODIC = IS_PERIODIC | CYCLES_REAL | wiring (LVTT after bsp init).
    assert_eq!(AlarmFlags::linux_periodic(AlarmWiring::Lvtt).0, 0x0001_0100);
    assert_eq!(AlarmFlags::linux_oneshot(AlarmWiring::Irq0).0, 0);
    // 2.6.21 vmitime.c: WIRED_IRQ0 | IS_PERIODIC | CYCLES_AVAILABLE.
    let f = AlarmFlags::new(CycleCounter::Available, AlarmWiring::Irq0, true);
    assert_eq!(f.0, 0x0000_0101);
    assert_eq!(
        (f.counter(), f.wiring(), f.is_periodic(), f.unknown_bits()),
        (Some(CycleCounter::Available), AlarmWiring::Irq0, true, 0)
    );
    let odd = AlarmFlags(0x8001_0205);
    assert_eq!(
        (
            odd.counter_number(),
            odd.counter(),
            odd.wiring(),
            odd.is_periodic()
        ),
        (5, None, AlarmWiring::Lvtt, false)
    );
    assert_eq!(odd.unknown_bits(), 0x8000_0200);
}

#[test]
fn ap_state_layout_matches_vmi_h() {
    // struct vmi_ap_state with natural i386 alignment (u64 efer 4-byte aligned).
    let expected: &[(&str, usize, usize)] = &[
        ("cr0", offset_of!(VmiApState, cr0), 0x00),
        ("cr2", offset_of!(VmiApState, cr2), 0x04),
        ("cr3", offset_of!(VmiApState, cr3), 0x08),
        ("cr4", offset_of!(VmiApState, cr4), 0x0C),
        ("efer", offset_of!(VmiApState, efer), 0x10),
        ("eip", offset_of!(VmiApState, eip), 0x18),
        ("eflags", offset_of!(VmiApState, eflags), 0x1C),
        ("eax", offset_of!(VmiApState, eax), 0x20),
        ("ebx", offset_of!(VmiApState, ebx), 0x24),
        ("ecx", offset_of!(VmiApState, ecx), 0x28),
        ("edx", offset_of!(VmiApState, edx), 0x2C),
        ("esp", offset_of!(VmiApState, esp), 0x30),
        ("ebp", offset_of!(VmiApState, ebp), 0x34),
        ("esi", offset_of!(VmiApState, esi), 0x38),
        ("edi", offset_of!(VmiApState, edi), 0x3C),
        ("cs", offset_of!(VmiApState, cs), 0x40),
        ("ss", offset_of!(VmiApState, ss), 0x42),
        ("ds", offset_of!(VmiApState, ds), 0x44),
        ("es", offset_of!(VmiApState, es), 0x46),
        ("fs", offset_of!(VmiApState, fs), 0x48),
        ("gs", offset_of!(VmiApState, gs), 0x4A),
        ("ldtr", offset_of!(VmiApState, ldtr), 0x4C),
        ("gdtr_limit", offset_of!(VmiApState, gdtr_limit), 0x4E),
        ("gdtr_base", offset_of!(VmiApState, gdtr_base), 0x50),
        ("idtr_base", offset_of!(VmiApState, idtr_base), 0x54),
        ("idtr_limit", offset_of!(VmiApState, idtr_limit), 0x58),
    ];
    for &(name, got, want) in expected {
        assert_eq!(got, want, "vmi_ap_state.{name}");
    }
    assert_eq!(size_of::<VmiApState>(), 92);
    assert_eq!(align_of::<VmiApState>(), 4);

    // The u64 is stored low word first, as on i386.
    let mut ap = VmiApState::ZERO;
    ap.efer.set(0x0000_0800_0000_0D01);
    ap.cr0 = 0x8005_0023;
    ap.idtr_limit = 2047;
    let bytes = ap.as_bytes();
    assert_eq!(&bytes[0x10..0x18], &0x0000_0800_0000_0D01u64.to_le_bytes());
    assert_eq!(&bytes[0..4], &0x8005_0023u32.to_le_bytes());
    assert_eq!(&bytes[0x58..0x5A], &2047u16.to_le_bytes());
    assert_eq!(u64::from(AbiU64::from(u64::MAX - 5)), u64::MAX - 5);
    assert_eq!(VmiApState::ZERO, VmiApState::default());
}

/// Every API 3.0 call number with its name: vmi.h (0-48, 61-65, 73),
/// vmi_time.h (66-71), VMware's vmiCalls.h (49-60, 72).
const CALL_TABLE: [(u32, &str); 74] = [
    (0, "CPUID"),
    (1, "WRMSR"),
    (2, "RDMSR"),
    (3, "SetGDT"),
    (4, "SetLDT"),
    (5, "SetIDT"),
    (6, "SetTR"),
    (7, "GetGDT"),
    (8, "GetLDT"),
    (9, "GetIDT"),
    (10, "GetTR"),
    (11, "WriteGDTEntry"),
    (12, "WriteLDTEntry"),
    (13, "WriteIDTEntry"),
    (14, "UpdateKernelStack"),
    (15, "SetCR0"),
    (16, "SetCR2"),
    (17, "SetCR3"),
    (18, "SetCR4"),
    (19, "GetCR0"),
    (20, "GetCR2"),
    (21, "GetCR3"),
    (22, "GetCR4"),
    (23, "WBINVD"),
    (24, "SetDR"),
    (25, "GetDR"),
    (26, "RDPMC"),
    (27, "RDTSC"),
    (28, "CLTS"),
    (29, "EnableInterrupts"),
    (30, "DisableInterrupts"),
    (31, "GetInterruptMask"),
    (32, "SetInterruptMask"),
    (33, "IRET"),
    (34, "SYSEXIT"),
    (35, "Halt"),
    (36, "Reboot"),
    (37, "Shutdown"),
    (38, "SetPxE"),
    (39, "SetPxELong"),
    (40, "UpdatePxE"),
    (41, "UpdatePxELong"),
    (42, "MachineToPhysical"),
    (43, "PhysicalToMachine"),
    (44, "AllocatePage"),
    (45, "ReleasePage"),
    (46, "InvalPage"),
    (47, "FlushTLB"),
    (48, "SetLinearMapping"),
    (49, "INL"),
    (50, "INB"),
    (51, "INW"),
    (52, "INSL"),
    (53, "INSB"),
    (54, "INSW"),
    (55, "OUTL"),
    (56, "OUTB"),
    (57, "OUTW"),
    (58, "OUTSL"),
    (59, "OUTSB"),
    (60, "OUTSW"),
    (61, "SetIOPLMask"),
    (62, "SetInitialAPState"),
    (63, "APICWrite"),
    (64, "APICRead"),
    (65, "IODelay"),
    (66, "GetCycleFrequency"),
    (67, "GetCycleCounter"),
    (68, "SetAlarm"),
    (69, "CancelAlarm"),
    (70, "GetWallclockTime"),
    (71, "WallclockUpdated"),
    (72, "SetCallbacks"),
    (73, "SetLazyMode"),
];

#[test]
fn call_numbers_and_names_match_the_headers() {
    assert_eq!(VMI_NUM_CALLS, 74);
    assert_eq!(VmiCall::ALL.len(), CALL_TABLE.len());
    for (call, &(number, name)) in VmiCall::ALL.iter().zip(CALL_TABLE.iter()) {
        assert_eq!(call.number(), number, "{name}");
        assert_eq!(*call as u32, number, "{name}");
        assert_eq!(call.name(), name);
        assert_eq!(VmiCall::from_u32(number), Some(*call));
        assert_eq!(call.info().call, *call);
    }
    for n in [74, 75, 128, 0x8000_0000, u32::MAX] {
        assert_eq!(VmiCall::from_u32(n), None);
    }
    // Spot checks against the C macros by name.
    assert_eq!(VmiCall::SetPxeLong as u32, 39); // VMI_CALL_SetPxELong
    assert_eq!(VmiCall::SetInitialApState as u32, 62); // VMI_CALL_SetInitialAPState
    assert_eq!(VmiCall::SetLazyMode as u32, 73); // VMI_CALL_SetLazyMode
    assert_eq!(VmiCall::GetCycleFrequency as u32, 66); // vmi_time.h
}

#[test]
fn call_sources_follow_the_headers() {
    for call in VmiCall::ALL {
        let n = call.number();
        let want = match n {
            49..=60 | 72 => CallSource::VmwareListOnly,
            66..=71 => CallSource::LinuxVmiTimeH,
            _ => CallSource::LinuxVmiH,
        };
        assert_eq!(call.source(), want, "{}", call.name());
        assert_eq!(call.info().source, want);
    }
    let linux_defined = VmiCall::ALL
        .iter()
        .filter(|c| c.source() != CallSource::VmwareListOnly)
        .count();
    assert_eq!(linux_defined, 61);
}
