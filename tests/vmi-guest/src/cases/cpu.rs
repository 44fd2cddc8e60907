//! Control registers, CPUID, MSRs, the TSC, RDPMC, WBINVD, lazy CPU mode.

use super::{ensure, ensure_eq, ensure_same, fail, pass, skip, Outcome};
use crate::pv;
use crate::trap::{catch, exception_name};
use native_rom::hw::apic::{APIC_BASE_BSP, APIC_BASE_ENABLE, IA32_APIC_BASE};
use native_rom::hw::cpu::{CR0_EM, CR0_MP, CR0_NE, CR0_PE, CR0_TS, CR4_TSD};

/// IA32_SYSENTER_ESP, an MSR any kernel may write.
const IA32_SYSENTER_ESP: u32 = 0x175;

pub fn cr0_protected_mode_bits() -> Outcome {
    let cr0 = pv::get_cr0();
    ensure!(cr0 & CR0_PE != 0, "CR0.PE clear ({cr0:#x})");
    ensure!(cr0 & CR0_MP != 0, "CR0.MP clear ({cr0:#x})");
    ensure!(cr0 & CR0_NE != 0, "CR0.NE clear ({cr0:#x})");
    ensure!(cr0 & (CR0_EM | CR0_TS) == 0, "CR0.EM or TS set ({cr0:#x})");
    pass!("CR0 {cr0:#x}: PE MP NE set, EM TS clear")
}

pub fn cr0_ts_set_and_clts() -> Outcome {
    let cr0 = pv::get_cr0();
    pv::set_cr0(cr0 | CR0_TS);
    let set = pv::get_cr0();
    pv::clts();
    let cleared = pv::get_cr0();
    ensure!(set & CR0_TS != 0, "SetCR0(TS) did not set TS ({set:#x})");
    ensure_eq!(cleared, cr0 & !CR0_TS, "CR0 after CLTS");
    pass!("TS set by SetCR0, cleared by CLTS")
}

pub fn cr2_write_read() -> Outcome {
    let saved = pv::get_cr2();
    for value in [0x1234_5678u32, 0xDEAD_B000, 0] {
        pv::set_cr2(value);
        ensure_eq!(pv::get_cr2(), value, "GetCR2 after SetCR2");
    }
    pv::set_cr2(saved);
    pass!("three values written and read back")
}

/// The ROM's GetCR2 code, called directly by the address
/// GetRelocationInfo gave (CALL_REL, or NONE with code: the native ROM's
/// is the MOV itself, which a kernel keeps): it reads what SetCR2 wrote.
pub fn cr2_rom_entry_direct() -> Outcome {
    if !pv::vmi_active() {
        skip!("no VMI ROM: no ROM code to call");
    }
    let Some(get_cr2) = pv::rom_entry(vmi_abi::VmiCall::GetCr2) else {
        skip!("the ROM gives no code for GetCR2");
    };
    let saved = pv::get_cr2();
    let mut read = [0u32; 2];
    for (i, value) in [0x7654_3210u32, 0xC0DE_F000].into_iter().enumerate() {
        pv::set_cr2(value);
        // SAFETY: the ROM's GetCR2 (regparm: result in EAX).
        read[i] = unsafe { pv::rom_call(get_cr2, 0, 0, 0, [0, 0]) } as u32;
    }
    pv::set_cr2(saved);
    ensure_same!(
        read,
        [0x7654_3210u32, 0xC0DE_F000],
        "the ROM's GetCR2 after SetCR2"
    );
    pass!(
        "the ROM's GetCR2 at {get_cr2:#x} (relocation {}) read both values back",
        pv::relocation(vmi_abi::VmiCall::GetCr2).type_
    )
}

pub fn cr4_write_read() -> Outcome {
    let cr4 = pv::get_cr4();
    pv::set_cr4(cr4 | CR4_TSD);
    let set = pv::get_cr4();
    pv::set_cr4(cr4 & !CR4_TSD);
    let cleared = pv::get_cr4();
    ensure_eq!(set, cr4 | CR4_TSD, "CR4 after setting TSD");
    ensure_eq!(cleared, cr4 & !CR4_TSD, "CR4 after clearing TSD");
    pv::set_cr4(cr4);
    pass!("CR4.TSD set and cleared (CR4 {cr4:#x})")
}

fn vendor(regs: [u32; 4]) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&regs[1].to_le_bytes());
    v[4..8].copy_from_slice(&regs[3].to_le_bytes());
    v[8..].copy_from_slice(&regs[2].to_le_bytes());
    v
}

pub fn cpuid_basic_leaves() -> Outcome {
    let leaf0 = pv::cpuid(0, 0);
    ensure!(leaf0[0] >= 1, "CPUID.0 max leaf {:#x}", leaf0[0]);
    let v = vendor(leaf0);
    ensure!(
        v.iter().all(|b| b.is_ascii_graphic() || *b == b' '),
        "vendor string not printable: {v:?}"
    );
    let ext = pv::cpuid(0x8000_0000, 0);
    ensure!(
        ext[0] >= 0x8000_0001,
        "CPUID.80000000 max leaf {:#x}",
        ext[0]
    );
    let name = core::str::from_utf8(&v).unwrap_or("?");
    pass!(
        "vendor \"{name}\", max leaf {:#x}, max extended leaf {:#x}",
        leaf0[0],
        ext[0]
    )
}

pub fn cpuid_required_features() -> Outcome {
    let edx = pv::cpuid(1, 0)[3];
    let needed = [
        (0, "FPU"),
        (4, "TSC"),
        (5, "MSR"),
        (6, "PAE"),
        (8, "CX8"),
        (9, "APIC"),
        (11, "SEP"),
        (13, "PGE"),
    ];
    for (bit, name) in needed {
        ensure!(edx & (1 << bit) != 0, "CPUID.1:EDX lacks {name} ({edx:#x})");
    }
    pass!("CPUID.1:EDX {edx:#x} has FPU TSC MSR PAE CX8 APIC SEP PGE")
}

pub fn msr_write_read() -> Outcome {
    let saved = pv::rdmsr(IA32_SYSENTER_ESP);
    let mut failed = None;
    for value in [0x1234_5678u64, 0xFFFF_F000, 0] {
        pv::wrmsr(IA32_SYSENTER_ESP, value);
        let got = pv::rdmsr(IA32_SYSENTER_ESP);
        if got != value {
            failed = Some((value, got));
            break;
        }
    }
    pv::wrmsr(IA32_SYSENTER_ESP, saved);
    if let Some((want, got)) = failed {
        fail!("IA32_SYSENTER_ESP: wrote {want:#x}, read {got:#x}");
    }
    pass!("IA32_SYSENTER_ESP written and read back three times")
}

pub fn msr_apic_base() -> Outcome {
    let v = pv::rdmsr(IA32_APIC_BASE);
    ensure!(v & APIC_BASE_BSP != 0, "IA32_APIC_BASE {v:#x} lacks BSP");
    ensure!(
        v & APIC_BASE_ENABLE != 0,
        "IA32_APIC_BASE {v:#x}: APIC disabled"
    );
    pass!("IA32_APIC_BASE {v:#x}")
}

pub fn rdtsc_monotonic() -> Outcome {
    let first = pv::rdtsc();
    let mut prev = first;
    for i in 0..1000 {
        let t = pv::rdtsc();
        ensure!(
            t >= prev,
            "RDTSC went back at read {i}: {prev:#x} then {t:#x}"
        );
        prev = t;
    }
    ensure!(prev > first, "RDTSC did not advance over 1000 reads");
    pass!("1000 reads, non-decreasing, advanced by {}", prev - first)
}

/// RDPMC of counter 0: a value (twice, not going back) where the CPU has
/// the counter, or the fault the instruction raises where it has not (#GP,
/// or #UD on an emulator without a PMU): either way what the instruction
/// does, which is what the VMI call must do.
pub fn rdpmc_counter() -> Outcome {
    let max = pv::cpuid(0, 0)[0];
    let pmu = if max >= 0xA { pv::cpuid(0xA, 0)[0] } else { 0 };
    let first = catch(|| pv::rdpmc(0) as u32);
    match first {
        Ok(a) => {
            let b = catch(|| pv::rdpmc(0) as u32);
            match b {
                Ok(b) => pass!("counter 0 read twice ({a:#x}, {b:#x}); CPUID leaf 0xA {pmu:#x}"),
                Err(f) => fail!("second RDPMC of counter 0 faulted after the first worked: {f}"),
            }
        }
        Err(f) if f.vector == 6 || f.vector == 13 => {
            pass!("RDPMC of counter 0 raised {} as the instruction does here (CPUID leaf 0xA {pmu:#x})", exception_name(f.vector))
        }
        Err(f) => fail!("RDPMC of counter 0: {f}"),
    }
}

pub fn wbinvd_keeps_memory() -> Outcome {
    let mut buf = [0u32; 64];
    for (i, w) in buf.iter_mut().enumerate() {
        *w = 0x5A5A_0000 | i as u32;
    }
    let ptr = buf.as_mut_ptr();
    // SAFETY: volatile writes to a local array.
    unsafe { ptr.add(7).write_volatile(0x1357_9BDF) };
    pv::wbinvd();
    // SAFETY: volatile read of the same local array.
    let got = unsafe { ptr.add(7).read_volatile() };
    ensure_eq!(got, 0x1357_9BDFu32, "word written before WBINVD");
    ensure!(
        buf.iter()
            .enumerate()
            .all(|(i, w)| i == 7 || *w == 0x5A5A_0000 | i as u32),
        "buffer changed"
    );
    pass!("memory unchanged across WBINVD")
}

pub fn lazy_cpu_mode() -> Outcome {
    use vmi_abi::flags::{VMI_LAZY_CPU, VMI_LAZY_NONE};
    let cr0 = pv::get_cr0();
    pv::set_lazy_mode(VMI_LAZY_CPU);
    pv::set_cr0(cr0 | CR0_TS);
    pv::update_kernel_stack(pv::kernel_ds(), crate::kmain::ring0_stack_top());
    pv::set_lazy_mode(VMI_LAZY_NONE);
    let after = pv::get_cr0();
    pv::clts();
    ensure!(
        after & CR0_TS != 0,
        "CR0.TS written in lazy CPU mode is not set after leaving it ({after:#x})"
    );
    ensure_eq!(pv::get_cr0(), cr0, "CR0 after CLTS");
    pass!("CR0 write queued in lazy CPU mode is in effect after SetLazyMode(NONE)")
}

/// GetRelocationInfo for numbers outside the API (the next free number and
/// a wild one): NONE, so a kernel keeps its native code (vmi_32.c treats
/// NONE as "not provided").
pub fn reloc_unknown_call_none() -> Outcome {
    let (Some(next), Some(wild)) = (
        pv::relocation_info(vmi_abi::VMI_NUM_CALLS as u32),
        pv::relocation_info(0xBAD_CA11),
    ) else {
        skip!("no VMI ROM: nothing to ask");
    };
    for (n, info) in [(vmi_abi::VMI_NUM_CALLS as u32, next), (0xBAD_CA11, wild)] {
        ensure!(
            info.relocation_type() == Ok(vmi_abi::VmiRelocationType::None),
            "GetRelocationInfo({n:#x}) answered {info:?}, not NONE"
        );
    }
    pass!(
        "calls {:#x} and 0xbadca11 answered NONE",
        vmi_abi::VMI_NUM_CALLS
    )
}
