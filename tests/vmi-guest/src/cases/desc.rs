//! Descriptor tables through the VMI calls: SetGDT/GetGDT, WriteGDTEntry,
//! SetIDT/GetIDT, WriteIDTEntry, SetLDT/GetLDT, WriteLDTEntry, SetTR/GetTR,
//! and that the processor then uses what was written.

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use native_rom::hw::cpu::DescriptorTablePointer;

use super::{ensure, ensure_eq, fail, pass, Outcome};
use crate::desc::{
    self, descriptor, descriptor_access, selector, Table, ACCESS_KERNEL_DATA, ACCESS_TSS_BUSY_BIT,
    FLAGS_BYTE, GDT, GDT_ALT, GDT_ENTRIES, GDT_SPARE, GDT_TSS, GDT_TSS_ALT, IDT, IDT_ALT, LDT,
    LDT_SELECTOR, TSS_ALT_SELECTOR, TSS_SELECTOR,
};
use crate::pv;
use crate::sync::Global;
use crate::trap::{self, catch, stub_address, TrapFrame, VECTOR_TEST, VECTOR_TEST2};

/// Loads FS.
fn load_fs(sel: u16) {
    // SAFETY: loading FS either succeeds (the case's own descriptor) or
    // faults inside a catch; nothing else uses FS.
    unsafe { asm!("mov fs, {0:x}", in(reg) sel, options(nostack, preserves_flags)) };
}

/// Loads FS with `sel` inside a catch, then the null selector again: the
/// fault the load raised, if any.
fn load_fs_caught(sel: u16) -> Result<u32, trap::Fault> {
    let result = catch(|| {
        load_fs(sel);
        0
    });
    load_fs(0);
    result
}

/// Reads the dword at FS:offset.
fn read_fs(offset: u32) -> u32 {
    let value: u32;
    // SAFETY: as load_fs; a limit violation faults inside a catch.
    unsafe {
        asm!("mov {0}, fs:[{1}]", out(reg) value, in(reg) offset, options(nostack, preserves_flags))
    };
    value
}

/// Writes the dword at FS:offset.
fn write_fs(offset: u32, value: u32) {
    // SAFETY: as read_fs; the segment covers the case's buffer.
    unsafe {
        asm!("mov fs:[{1}], {0}", in(reg) value, in(reg) offset, options(nostack, preserves_flags))
    };
}

static BUFFER: Global<[u32; 4]> = Global::new([0; 4]);

/// Ignores the accessed bit the processor sets in a descriptor it loads.
const fn without_accessed(desc: u64) -> u64 {
    desc & !(1 << 40)
}

pub fn gdt_get_matches_loaded() -> Outcome {
    let p = pv::get_gdt();
    let want = desc::gdt_pointer();
    let (base, limit) = (p.base, p.limit);
    ensure_eq!(base, want.base, "GetGDT base");
    ensure_eq!(limit, want.limit, "GetGDT limit");
    pass!("base {base:#x} limit {limit:#x}")
}

pub fn gdt_set_relocated_table() -> Outcome {
    let alt = Table::base(&GDT_ALT);
    for i in 0..GDT_ENTRIES {
        pv::write_gdt_entry(alt, i as u32, Table::read(&GDT, i));
    }
    let alt_ptr = DescriptorTablePointer {
        limit: (GDT_ENTRIES * 8 - 1) as u16,
        base: alt,
    };
    pv::set_gdt(&alt_ptr);
    let got = pv::get_gdt();
    // The segment registers reload from the new table.
    let ds = pv::kernel_ds();
    // SAFETY: the copy holds the same flat kernel data segment.
    unsafe {
        asm!("mov fs, {0:x}", "mov ax, fs", "mov ds, ax", "mov es, ax", in(reg) ds, out("ax") _)
    };
    load_fs(0);
    pv::set_gdt(&desc::gdt_pointer());
    // SAFETY: back to the kernel GDT, same selectors.
    unsafe { asm!("mov ds, {0:x}", "mov es, {0:x}", in(reg) ds) };
    let back = pv::get_gdt();
    let (got_base, back_base) = (got.base, back.base);
    ensure_eq!(got_base, alt, "GetGDT base after SetGDT(copy)");
    ensure_eq!(
        back_base,
        Table::base(&GDT),
        "GetGDT base after SetGDT(original)"
    );
    pass!("GDT moved to {alt:#x} and back; segments reloaded from the copy")
}

pub fn gdt_write_entry_segment_base() -> Outcome {
    BUFFER.with(|b| *b = [0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444]);
    let base = BUFFER.as_ptr() as u32;
    let d = descriptor(base, 15, ACCESS_KERNEL_DATA, FLAGS_BYTE);
    pv::write_gdt_entry(Table::base(&GDT), GDT_SPARE as u32, d);
    ensure_eq!(
        without_accessed(Table::read(&GDT, GDT_SPARE)),
        d,
        "GDT entry after WriteGDTEntry"
    );
    let sel = selector(GDT_SPARE, pv::kernel_rpl());
    let result = catch(|| {
        load_fs(sel);
        let second = read_fs(4);
        write_fs(8, 0xCAFE_F00D);
        load_fs(0);
        second
    });
    let second = match result {
        Ok(v) => v,
        Err(f) => fail!("using the new segment faulted: {f}"),
    };
    ensure_eq!(
        second,
        0x2222_2222u32,
        "FS:[4] through a segment based at the buffer"
    );
    ensure_eq!(
        BUFFER.with(|b| b[2]),
        0xCAFE_F00Du32,
        "buffer word 2 after writing FS:[8]"
    );
    pass!("segment based at {base:#x} reads and writes the buffer")
}

pub fn gdt_not_present_segment_faults() -> Outcome {
    let index = GDT_SPARE + 1;
    // Access byte 0x12: data, read/write, DPL 0, not present.
    pv::write_gdt_entry(
        Table::base(&GDT),
        index as u32,
        descriptor(0, 0xF_FFFF, 0x12, desc::FLAGS_4K_32BIT),
    );
    let sel = selector(index, pv::kernel_rpl());
    match load_fs_caught(sel) {
        Ok(_) => fail!("loading a not-present segment did not fault"),
        Err(f) => {
            ensure_eq!(f.vector, 11u32, "vector (#NP)");
            ensure_eq!(
                f.error_code,
                u32::from(sel & !3),
                "#NP error code (the selector)"
            );
            pass!("#NP with error code {:#x}", f.error_code)
        }
    }
}

/// A descriptor the processor stores but cannot use as a segment: a
/// present 32-bit interrupt gate written into the GDT (a hypervisor may
/// refuse to hold it; the kernel's table must still read back what was
/// written, and loading it as a segment must raise #GP(selector)).
pub fn gdt_write_entry_gate_descriptor() -> Outcome {
    let index = GDT_SPARE + 2;
    let old = Table::read(&GDT, index);
    // Access byte 0x8E: present, DPL 0, system, 32-bit interrupt gate.
    let gate = descriptor(0x0010_2000, 0x8, 0x8E, 0);
    pv::write_gdt_entry(Table::base(&GDT), index as u32, gate);
    let readback = Table::read(&GDT, index);
    let sel = selector(index, pv::kernel_rpl());
    let result = load_fs_caught(sel);
    pv::write_gdt_entry(Table::base(&GDT), index as u32, old);
    ensure_eq!(readback, gate, "GDT entry after WriteGDTEntry");
    match result {
        Ok(_) => fail!("loading a gate descriptor into FS did not fault"),
        Err(f) => {
            ensure_eq!(f.vector, 13u32, "vector (#GP)");
            ensure_eq!(
                f.error_code,
                u32::from(sel & !3),
                "#GP error code (the selector)"
            );
            pass!(
                "gate descriptor kept in the GDT; loading it: #GP({:#x})",
                f.error_code
            )
        }
    }
}

pub fn idt_get_matches_loaded() -> Outcome {
    let p = pv::get_idt();
    let want = desc::idt_pointer();
    let (base, limit) = (p.base, p.limit);
    ensure_eq!(base, want.base, "GetIDT base");
    ensure_eq!(limit, want.limit, "GetIDT limit");
    pass!("base {base:#x} limit {limit:#x}")
}

static LAST_TEST_VECTOR: AtomicU32 = AtomicU32::new(0);

fn record_test_vector(frame: &mut TrapFrame) -> bool {
    LAST_TEST_VECTOR.store(frame.vector & 0xFF, Ordering::SeqCst);
    true
}

fn int_test_gate() -> u32 {
    LAST_TEST_VECTOR.store(0, Ordering::SeqCst);
    // SAFETY: the test gates' hooks return straight away.
    unsafe { asm!("int 0x81") };
    LAST_TEST_VECTOR.load(Ordering::SeqCst)
}

fn with_test_hooks<R>(f: impl FnOnce() -> R) -> R {
    trap::set_hook(VECTOR_TEST, Some(record_test_vector));
    trap::set_hook(VECTOR_TEST2, Some(record_test_vector));
    let r = f();
    trap::set_hook(VECTOR_TEST, None);
    trap::set_hook(VECTOR_TEST2, None);
    r
}

pub fn idt_set_relocated_table() -> Outcome {
    let alt = Table::base(&IDT_ALT);
    let cs = pv::kernel_cs();
    for v in 0..256u32 {
        // In the copy, vector 0x81 leads to the 0x82 stub.
        let gate = if v == VECTOR_TEST {
            desc::gate(stub_address(VECTOR_TEST2), cs, desc::GATE_INTERRUPT)
        } else {
            Table::read(&IDT, v as usize)
        };
        pv::write_idt_entry(alt, v, gate);
    }
    let (through_copy, got, through_original) = with_test_hooks(|| {
        pv::set_idt(&DescriptorTablePointer {
            limit: 256 * 8 - 1,
            base: alt,
        });
        let got = pv::get_idt();
        let through_copy = int_test_gate();
        pv::set_idt(&desc::idt_pointer());
        (through_copy, got, int_test_gate())
    });
    let got_base = got.base;
    ensure_eq!(got_base, alt, "GetIDT base after SetIDT(copy)");
    ensure_eq!(
        through_copy,
        VECTOR_TEST2,
        "vector seen for INT 0x81 through the copy"
    );
    ensure_eq!(
        through_original,
        VECTOR_TEST,
        "vector seen for INT 0x81 through the original"
    );
    pass!("INT 0x81 went through the relocated IDT, then the original again")
}

pub fn idt_write_entry_new_gate() -> Outcome {
    let idt = Table::base(&IDT);
    let original = Table::read(&IDT, VECTOR_TEST as usize);
    let redirected = desc::gate(
        stub_address(VECTOR_TEST2),
        pv::kernel_cs(),
        desc::GATE_INTERRUPT,
    );
    let (seen, raw, restored) = with_test_hooks(|| {
        pv::write_idt_entry(idt, VECTOR_TEST, redirected);
        let raw = Table::read(&IDT, VECTOR_TEST as usize);
        let seen = int_test_gate();
        pv::write_idt_entry(idt, VECTOR_TEST, original);
        (seen, raw, int_test_gate())
    });
    ensure_eq!(raw, redirected, "IDT entry after WriteIDTEntry");
    ensure_eq!(seen, VECTOR_TEST2, "vector seen through the rewritten gate");
    ensure_eq!(
        restored,
        VECTOR_TEST,
        "vector seen after restoring the gate"
    );
    pass!("gate 0x81 rewritten and restored, both honoured")
}

pub fn ldt_set_and_get() -> Outcome {
    pv::set_ldt(LDT_SELECTOR);
    let loaded = pv::get_ldt();
    pv::set_ldt(0);
    let cleared = pv::get_ldt();
    ensure_eq!(loaded, LDT_SELECTOR, "GetLDT after SetLDT");
    ensure_eq!(cleared, 0u16, "GetLDT after SetLDT(0)");
    pass!("LDTR {LDT_SELECTOR:#x}, then 0")
}

/// Selector of LDT entry `index` (TI = 1).
fn ldt_selector(index: u16) -> u16 {
    (index << 3) | 4 | pv::kernel_rpl()
}

pub fn ldt_write_entry_segment() -> Outcome {
    BUFFER.with(|b| *b = [0xA0A0_A0A0, 0xB1B1_B1B1, 0, 0]);
    let d = descriptor(BUFFER.as_ptr() as u32, 15, ACCESS_KERNEL_DATA, FLAGS_BYTE);
    pv::write_ldt_entry(Table::base(&LDT), 1, d);
    ensure_eq!(
        without_accessed(Table::read(&LDT, 1)),
        d,
        "LDT entry after WriteLDTEntry"
    );
    pv::set_ldt(LDT_SELECTOR);
    let result = catch(|| {
        load_fs(ldt_selector(1));
        let v = read_fs(4);
        load_fs(0);
        v
    });
    pv::set_ldt(0);
    match result {
        Ok(v) => ensure_eq!(v, 0xB1B1_B1B1u32, "FS:[4] through the LDT segment"),
        Err(f) => fail!("loading the LDT segment faulted: {f}"),
    }
    pass!("LDT segment reads the buffer")
}

pub fn ldt_null_selector_faults() -> Outcome {
    pv::set_ldt(0);
    let sel = ldt_selector(1);
    let result = catch(|| {
        load_fs(sel);
        0
    });
    load_fs(0);
    match result {
        Ok(_) => fail!("an LDT selector loaded with no LDT"),
        Err(f) => {
            ensure_eq!(f.vector, 13u32, "vector (#GP)");
            ensure_eq!(
                f.error_code,
                u32::from(sel & !3),
                "#GP error code (the selector)"
            );
            pass!("#GP with error code {:#x}", f.error_code)
        }
    }
}

pub fn tr_get_matches_loaded() -> Outcome {
    ensure_eq!(pv::get_tr(), TSS_SELECTOR, "GetTR");
    let access = descriptor_access(Table::read(&GDT, GDT_TSS));
    ensure!(
        access & ACCESS_TSS_BUSY_BIT != 0,
        "the loaded TSS descriptor is not busy (access {access:#x})"
    );
    pass!("TR {TSS_SELECTOR:#x}, descriptor busy")
}

pub fn tr_set_marks_tss_busy() -> Outcome {
    let gdt = Table::base(&GDT);
    desc::TSS_ALT.with(|alt| {
        desc::TSS.with(|t| {
            alt.esp0 = t.esp0;
            alt.ss0 = t.ss0;
        })
    });
    pv::write_gdt_entry(
        gdt,
        GDT_TSS_ALT as u32,
        desc::tss_descriptor(&desc::TSS_ALT),
    );
    let before = descriptor_access(Table::read(&GDT, GDT_TSS_ALT));
    pv::set_tr(TSS_ALT_SELECTOR);
    let loaded = pv::get_tr();
    let after = descriptor_access(Table::read(&GDT, GDT_TSS_ALT));
    pv::write_gdt_entry(gdt, GDT_TSS as u32, desc::tss_descriptor(&desc::TSS));
    pv::set_tr(TSS_SELECTOR);
    let back = pv::get_tr();
    ensure_eq!(before & ACCESS_TSS_BUSY_BIT, 0u8, "busy bit before SetTR");
    ensure_eq!(loaded, TSS_ALT_SELECTOR, "GetTR after SetTR");
    ensure!(
        after & ACCESS_TSS_BUSY_BIT != 0,
        "SetTR left the TSS descriptor available (access {after:#x})"
    );
    ensure_eq!(back, TSS_SELECTOR, "GetTR after restoring");
    pass!("TR {TSS_ALT_SELECTOR:#x} (descriptor now busy), then back to {TSS_SELECTOR:#x}")
}
