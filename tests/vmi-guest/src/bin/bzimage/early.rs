//! The Linux-style early boot of the bzImage packaging (docs/early-boot.md).
//!
//! In the order the brief of the project and Linux's head_32.S give it, all
//! natively, before any VMI ROM is looked for: its own GDT and a far jump
//! to its own code selector, the data segments reloaded, an IDT loaded,
//! PAE page tables written entry by entry (an identity map and an alias of
//! it at 0xC0000000, Linux's PAGE_OFFSET, through one page directory as
//! Linux's PAE head does), CR4.PAE, CR3, CR0.PG, a far jump into the alias;
//! then output on the 16550 at 0x3F8, CPUID and MSR reads, and CLI/STI/HLT
//! around an interrupt of the PIT. Each step's result is recorded; the
//! common kernel reports them as the first cases once its console is up.
//!
//! The kernel probes for the ROM and activates VMI with paging on, through
//! these tables, as Linux does; right after, [`after_activation`] checks
//! that the state came through (CR0.PG, CR3, CR4.PAE, a mapping) and turns
//! paging off again, so the usual suite starts from the same state as in
//! the multiboot packaging.

use core::arch::asm;
use core::fmt;

use native_rom::hw::cpu::{self, CR0_PE, CR0_PG};
use native_rom::hw::{apic, pit};
use vmi_guest::boot::BootInfo;
use vmi_guest::cases::{Case, Outcome, Status};
use vmi_guest::console::{self, Text};
use vmi_guest::desc::{self, Table};
use vmi_guest::kmain::{self, Packaging};
use vmi_guest::sync::Global;
use vmi_guest::trap::{self, TrapFrame};
use vmi_guest::{pic, pv};

/// A line on the console.
macro_rules! say {
    ($($arg:tt)*) => {{
        console::print(format_args!($($arg)*));
        console::print(format_args!("\n"));
    }};
}

/// A page of memory.
#[repr(C, align(4096))]
pub struct Page(pub [u8; 4096]);

/// A PAE page table, page directory or (in its first 32 bytes) PDPT.
#[repr(C, align(4096))]
struct PageTable([u64; 512]);

/// The boot parameters ("zero page"), copied here by the entry code.
pub static BOOT_PARAMS: Global<Page> = Global::new(Page([0; 4096]));

// Zero-page offsets (Documentation/x86/zero-page.txt, boot.txt).
const BP_E820_ENTRIES: usize = 0x1E8;
const BP_HEADER: usize = 0x202;
const BP_VERSION: usize = 0x206;
const BP_TYPE_OF_LOADER: usize = 0x210;
const BP_LOADFLAGS: usize = 0x211;
const BP_CODE32_START: usize = 0x214;
const BP_RAMDISK_IMAGE: usize = 0x218;
const BP_RAMDISK_SIZE: usize = 0x21C;
const BP_CMD_LINE_PTR: usize = 0x228;
const BP_HARDWARE_SUBARCH: usize = 0x23C;
const BP_E820_MAP: usize = 0x2D0;

/// Linux's GDT selectors of the kernel's code and data (`__KERNEL_CS`,
/// `__KERNEL_DS`: entries 12 and 13), which the early GDT uses.
const EARLY_CS: u16 = 0x60;
const EARLY_DS: u16 = 0x68;

/// Linux's PAE head: identity PTEs present and writable, PDEs present,
/// writable, user, accessed, dirty (`PTE_IDENT_ATTR`, `PDE_IDENT_ATTR`).
const PTE_IDENT: u64 = 0x003;
const PDE_IDENT: u64 = 0x067;
/// A PDPT entry: present (PAE reserves the other low bits).
const PDPTE_PRESENT: u64 = 0x001;
/// What the early tables map at 0 and at [`PAGE_OFFSET`].
const EARLY_MAP: u32 = 16 << 20;
const EARLY_PTS: usize = (EARLY_MAP >> 21) as usize;
/// Linux's PAGE_OFFSET.
const PAGE_OFFSET: u32 = 0xC000_0000;
/// The test mappings made after the CR3 load: the 2 MiB after the early
/// map, in the alias (the same page directory serves both).
const TEST_VA: u32 = PAGE_OFFSET + EARLY_MAP;
const CR4_PAE: u32 = 1 << 5;
/// The option-ROM area, read through both mappings (Linux probes for the
/// VMI ROM through PAGE_OFFSET).
const OPTION_ROM_AREA: u32 = 0xC_0000;

static EARLY_GDT: Global<Table> = Global::new(Table([0; 512]));
static EARLY_IDT: Global<Table> = Global::new(Table([0; 512]));
static PDPT: Global<PageTable> = Global::new(PageTable([0; 512]));
static PD: Global<PageTable> = Global::new(PageTable([0; 512]));
static PTS: Global<[PageTable; EARLY_PTS + 1]> =
    Global::new([const { PageTable([0; 512]) }; EARLY_PTS + 1]);
/// Three frames the test mappings point at, each with its own first word.
static TEST_FRAMES: Global<[Page; 3]> = Global::new([const { Page([0; 4096]) }; 3]);
const TEST_MAGIC: [u32; 3] = [0x5EED_A000, 0x5EED_B000, 0x5EED_C000];
/// A word written through the identity map and read through the alias.
static ALIAS_PROBE: Global<u32> = Global::new(0);

/// The checks, in report order.
#[derive(Clone, Copy)]
enum Check {
    BootParams,
    Initrd,
    GdtReload,
    IdtLoad,
    PteWrites,
    PagingEnable,
    Uart,
    CpuidMsr,
    CliStiHlt,
    StateAfterActivation,
}
const CHECKS: usize = 10;

static RESULTS: Global<[Option<(Status, Text)>; CHECKS]> = Global::new([None; CHECKS]);

fn record(check: Check, outcome: Outcome) {
    RESULTS.with(|r| r[check as usize] = Some((outcome.status, outcome.detail)));
}

fn pass(check: Check, args: fmt::Arguments<'_>) {
    record(check, Outcome::pass(args));
}

fn fail(check: Check, args: fmt::Arguments<'_>) {
    record(check, Outcome::fail(args));
}

fn reported(check: Check) -> Outcome {
    match RESULTS.with(|r| r[check as usize].take()) {
        Some((status, detail)) => Outcome { status, detail },
        None => Outcome::fail(format_args!(
            "no result recorded (the early boot did not run this step)"
        )),
    }
}

/// The early cases, reported before the suite.
static EARLY_CASES: [Case; CHECKS] = [
    Case {
        name: "early_boot_params",
        run: || reported(Check::BootParams),
    },
    Case {
        name: "early_initrd",
        run: || reported(Check::Initrd),
    },
    Case {
        name: "early_gdt_reload_far_jump",
        run: || reported(Check::GdtReload),
    },
    Case {
        name: "early_idt_load",
        run: || reported(Check::IdtLoad),
    },
    Case {
        name: "early_native_pte_writes",
        run: || reported(Check::PteWrites),
    },
    Case {
        name: "early_paging_enable",
        run: || reported(Check::PagingEnable),
    },
    Case {
        name: "early_uart_output",
        run: || reported(Check::Uart),
    },
    Case {
        name: "early_cpuid_msr",
        run: || reported(Check::CpuidMsr),
    },
    Case {
        name: "early_cli_sti_hlt",
        run: || reported(Check::CliStiHlt),
    },
    Case {
        name: "early_state_after_activation",
        run: || reported(Check::StateAfterActivation),
    },
];

/// What the bzImage packaging adds to the common boot.
static BZIMAGE: Packaging = Packaging {
    after_activation,
    cases: &EARLY_CASES,
};

fn bp_u8(off: usize) -> u8 {
    BOOT_PARAMS.with(|p| p.0[off])
}

fn bp_u16(off: usize) -> u16 {
    BOOT_PARAMS.with(|p| u16::from_le_bytes([p.0[off], p.0[off + 1]]))
}

fn bp_u32(off: usize) -> u32 {
    BOOT_PARAMS.with(|p| u32::from_le_bytes(p.0[off..off + 4].try_into().expect("4 bytes")))
}

fn bp_u64(off: usize) -> u64 {
    BOOT_PARAMS.with(|p| u64::from_le_bytes(p.0[off..off + 8].try_into().expect("8 bytes")))
}

fn phys_ptr<T>(addr: u32) -> *mut T {
    addr as *mut T
}

/// Entered from `_start` on the boot stack, with the boot parameters
/// copied and BSS clear.
/// A hypervisor ROM's count of the hypercalls it made (I/O port 0x5A0,
/// 32-bit; all ones where nothing decodes the port: no figures).
fn hypercalls() -> Option<u32> {
    // SAFETY: a read of a port no PC device decodes changes nothing.
    let v = unsafe { native_rom::hw::port::in32(0x5A0) };
    (v != u32::MAX).then_some(v)
}

/// The count when the early boot started and when it was done.
static EARLY_HYPERCALLS: Global<(Option<u32>, Option<u32>)> = Global::new((None, None));

pub extern "C" fn early_main() -> ! {
    let start = hypercalls();
    let (ram_top, cmdline) = boot_params();
    initrd();
    gdt_reload_far_jump();
    idt_load();
    paging();
    uart();
    cpuid_msr();
    cli_sti_hlt();
    EARLY_HYPERCALLS.with(|h| *h = (start, hypercalls()));
    // The common kernel takes over with paging on (its own GDT next).
    pv::KERNEL_DS.store(
        desc::selector(desc::GDT_KERNEL_DATA, 0),
        core::sync::atomic::Ordering::SeqCst,
    );
    kmain::run(BootInfo::new(ram_top, &cmdline.0[..cmdline.1]), &BZIMAGE)
}

/// The command line, copied from the loader's memory.
struct Cmdline([u8; 256], usize);

/// The boot parameters as the loader (or our real-mode setup) left them:
/// what the kernel needs (RAM above 1 MiB, command line), and a record of
/// what a Linux kernel would check.
fn boot_params() -> (u32, Cmdline) {
    let mut cmdline = Cmdline([0; 256], 0);
    let ptr = bp_u32(BP_CMD_LINE_PTR);
    if ptr != 0 {
        while cmdline.1 < cmdline.0.len() {
            // SAFETY: paging is off; the loader's NUL-terminated command
            // line lies in RAM at this physical address.
            let b = unsafe { phys_ptr::<u8>(ptr + cmdline.1 as u32).read_volatile() };
            if b == 0 {
                break;
            }
            cmdline.0[cmdline.1] = b;
            cmdline.1 += 1;
        }
    }
    // RAM from 1 MiB to its end (the E820 entry holding 1 MiB), as a
    // multiboot loader's mem_upper gives it.
    let entries = usize::from(bp_u8(BP_E820_ENTRIES)).min(128);
    let mut ram_top = 0;
    for i in 0..entries {
        let at = BP_E820_MAP + i * 20;
        let (addr, size, kind) = (bp_u64(at), bp_u64(at + 8), bp_u32(at + 16));
        if kind == 1 && addr <= 0x10_0000 && addr + size > 0x10_0000 {
            ram_top = (addr + size).min(0xFFFF_F000) as u32;
        }
    }
    let header = bp_u32(BP_HEADER);
    let version = bp_u16(BP_VERSION);
    let loader = bp_u8(BP_TYPE_OF_LOADER);
    let subarch = bp_u32(BP_HARDWARE_SUBARCH);
    let code32 = bp_u32(BP_CODE32_START);
    // The header the image carries (2.10), or the one a loader of an ELF
    // kernel makes up (it carries none): 2.02 at least.
    if header != u32::from_le_bytes(*b"HdrS") || version < 0x0202 {
        fail(
            Check::BootParams,
            format_args!("no setup header: magic {header:#x}, version {version:#x}"),
        );
    } else if bp_u8(BP_LOADFLAGS) & 1 == 0 || code32 != 0x10_0000 {
        fail(
            Check::BootParams,
            format_args!(
                "loadflags {:#x}, code32_start {code32:#x}",
                bp_u8(BP_LOADFLAGS)
            ),
        );
    } else if loader == 0 || ptr == 0 {
        fail(
            Check::BootParams,
            format_args!("the loader left type_of_loader {loader:#x}, cmd_line_ptr {ptr:#x}"),
        );
    } else if subarch != 0 {
        fail(
            Check::BootParams,
            format_args!("hardware_subarch {subarch}: not a PC"),
        );
    } else if ram_top < 0x20_0000 {
        fail(
            Check::BootParams,
            format_args!("{entries} E820 entries, no RAM from 1 MiB up"),
        );
    } else {
        pass(Check::BootParams, format_args!(
            "setup header of protocol {}.{:02}, loader {loader:#x}, command line at {ptr:#x}, {entries} E820 entries, RAM 1 MiB..{ram_top:#x}",
            version >> 8,
            version & 0xFF
        ));
    }
    (ram_top, cmdline)
}

/// The initrd the loader placed, if any: the layout tools/test gives it
/// (16 bytes "vmi-guest initrd", its length, an FNV-1a hash of the rest).
fn initrd() {
    let (image, size) = (bp_u32(BP_RAMDISK_IMAGE), bp_u32(BP_RAMDISK_SIZE));
    if size == 0 {
        record(
            Check::Initrd,
            Outcome::skip(format_args!("no initrd given")),
        );
        return;
    }
    if size < 24 {
        fail(
            Check::Initrd,
            format_args!("initrd of {size} bytes at {image:#x}: too short"),
        );
        return;
    }
    // SAFETY: paging is off; the loader put `size` bytes at `image`.
    let bytes = unsafe { core::slice::from_raw_parts(phys_ptr::<u8>(image), size as usize) };
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let hash = bytes[24..].iter().fold(0x811C_9DC5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    if &bytes[..16] != b"vmi-guest initrd" {
        fail(
            Check::Initrd,
            format_args!(
                "initrd of {size} bytes at {image:#x} does not start with \"vmi-guest initrd\""
            ),
        );
    } else if word(16) != size || word(20) != hash {
        fail(Check::Initrd, format_args!(
            "initrd at {image:#x}: {size} bytes, hash {hash:#x}; its header says {} bytes, hash {:#x}",
            word(16),
            word(20)
        ));
    } else {
        pass(
            Check::Initrd,
            format_args!("{size} bytes at {image:#x}, intact"),
        );
    }
}

/// Its own GDT (flat code and data at Linux's 0x60 and 0x68, and at the
/// common kernel's 0x08 and 0x10), a far jump to its code selector, the
/// data segments reloaded (SS too: `mov %ss` with an RPL-0 selector).
fn gdt_reload_far_jump() {
    EARLY_GDT.with(|g| {
        g.0[desc::GDT_KERNEL_CODE] = desc::flat_segment(desc::ACCESS_KERNEL_CODE);
        g.0[desc::GDT_KERNEL_DATA] = desc::flat_segment(desc::ACCESS_KERNEL_DATA);
        g.0[usize::from(EARLY_CS >> 3)] = desc::flat_segment(desc::ACCESS_KERNEL_CODE);
        g.0[usize::from(EARLY_DS >> 3)] = desc::flat_segment(desc::ACCESS_KERNEL_DATA);
    });
    let pointer = cpu::DescriptorTablePointer {
        limit: (EARLY_DS + 7),
        base: Table::base(&EARLY_GDT),
    };
    pv::KERNEL_DS.store(EARLY_DS, core::sync::atomic::Ordering::SeqCst);
    let (cs, ds, ss): (u32, u32, u32);
    // SAFETY: the GDT holds flat code and data at the selectors loaded, so
    // code and data stay where they are.
    unsafe {
        asm!(
            "lgdtl ({ptr})",
            "ljmp ${cs}, $2f",
            "2:",
            "movw ${ds}, %ax",
            "movw %ax, %ds",
            "movw %ax, %es",
            "movw %ax, %fs",
            "movw %ax, %gs",
            "movw %ax, %ss",
            "movl %cs, %ecx",
            "movl %ds, %edx",
            "movl %ss, %eax",
            ptr = in(reg) &pointer,
            cs = const EARLY_CS,
            ds = const EARLY_DS,
            out("eax") ss,
            out("ecx") cs,
            out("edx") ds,
            options(att_syntax),
        )
    };
    // The selectors' RPL is the ring the kernel runs in (1 under a
    // hypervisor that compresses rings); the index is what was loaded.
    let (cs, ds, ss) = (cs & 0xFFF8, ds & 0xFFF8, ss & 0xFFF8);
    if (cs, ds, ss)
        == (
            u32::from(EARLY_CS),
            u32::from(EARLY_DS),
            u32::from(EARLY_DS),
        )
    {
        let base = Table::base(&EARLY_GDT);
        pass(
            Check::GdtReload,
            format_args!(
                "own GDT at {base:#x}, far jump to {EARLY_CS:#x}, DS ES FS GS SS {EARLY_DS:#x}"
            ),
        );
    } else {
        fail(Check::GdtReload, format_args!(
            "after the far jump and reloads: CS {cs:#x} DS {ds:#x} SS {ss:#x}, expected {EARLY_CS:#x} and {EARLY_DS:#x}"
        ));
    }
}

static BREAKPOINT_AT: Global<(u32, u32, u32)> = Global::new((0, 0, 0));

fn breakpoint_hook(frame: &mut TrapFrame) -> bool {
    // The upper half of the CS slot is undefined (a hypervisor may keep
    // its own state there): the selector is the low 16 bits.
    BREAKPOINT_AT.with(|b| *b = (b.0 + 1, frame.eip, frame.cs & 0xFFFF));
    true
}

/// An IDT of interrupt gates to the kernel's entry stubs, loaded with LIDT
/// and tried with `int3` (the gate's handler counts it and returns).
fn idt_load() {
    EARLY_IDT.with(|idt| {
        for v in 0..256u32 {
            idt.0[v as usize] = desc::gate(trap::stub_address(v), EARLY_CS, desc::GATE_INTERRUPT);
        }
    });
    let pointer = cpu::DescriptorTablePointer {
        limit: 256 * 8 - 1,
        base: Table::base(&EARLY_IDT),
    };
    // SAFETY: every gate points at an entry stub of the kernel.
    unsafe { cpu::lidt(&pointer) };
    trap::set_hook(3, Some(breakpoint_hook));
    let after: u32;
    // SAFETY: int3 enters the gate just loaded, whose hook returns.
    unsafe {
        asm!(
            "int3",
            "2: movl $2b, {after}",
            after = out(reg) after,
            options(att_syntax)
        )
    };
    trap::set_hook(3, None);
    let (hits, eip, cs) = BREAKPOINT_AT.with(|b| *b);
    if hits == 1 && eip == after && cs & 0xFFF8 == u32::from(EARLY_CS) {
        let base = Table::base(&EARLY_IDT);
        pass(
            Check::IdtLoad,
            format_args!(
                "IDT at {base:#x}: int3 reached its gate with return address {eip:#x}, CS {cs:#x}"
            ),
        );
    } else {
        fail(
            Check::IdtLoad,
            format_args!(
                "int3: {hits} entries, return address {eip:#x} (want {after:#x}), CS {cs:#x}"
            ),
        );
    }
}

fn table_phys(t: &Global<PageTable>) -> u32 {
    t.as_ptr() as u32
}

fn pt_phys(i: usize) -> u32 {
    PTS.as_ptr() as u32 + (i as u32) * 4096
}

fn frame_phys(i: usize) -> u32 {
    TEST_FRAMES.as_ptr() as u32 + (i as u32) * 4096
}

/// A native write of one page-table entry (low half last, as Linux's PAE
/// set_pte does).
fn write_entry(table: u32, index: usize, value: u64) {
    let e = phys_ptr::<u32>(table + (index as u32) * 8);
    // SAFETY: an entry of one of the early tables (static, identity
    // mapped or paging off).
    unsafe {
        e.add(1).write_volatile((value >> 32) as u32);
        e.write_volatile(value as u32);
    }
}

fn read_word(va: u32) -> u32 {
    // SAFETY: callers read mappings the early tables make.
    unsafe { phys_ptr::<u32>(va).read_volatile() }
}

/// The PAE tables, PAE, CR3, PG and a far jump into the alias; then the
/// mappings made before and after the CR3 load and after PG, and a
/// changed entry made visible with INVLPG.
fn paging() {
    TEST_FRAMES.with(|f| {
        for (i, frame) in f.iter_mut().enumerate() {
            frame.0[..4].copy_from_slice(&TEST_MAGIC[i].to_le_bytes());
        }
    });
    // Before the CR3 load: the identity map of the first 16 MiB, through
    // one page directory that the PDPT's first and last entries share.
    for i in 0..EARLY_PTS {
        for j in 0..512 {
            let phys = ((i * 512 + j) as u64) << 12;
            write_entry(pt_phys(i), j, phys | PTE_IDENT);
        }
        write_entry(table_phys(&PD), i, u64::from(pt_phys(i)) | PDE_IDENT);
    }
    let pdpt = table_phys(&PDPT);
    write_entry(pdpt, 0, u64::from(table_phys(&PD)) | PDPTE_PRESENT);
    write_entry(pdpt, 3, u64::from(table_phys(&PD)) | PDPTE_PRESENT);
    // SAFETY: PAE with paging still off changes nothing yet; CR3 names the
    // PDPT just written.
    unsafe {
        cpu::write_cr4(cpu::read_cr4() | CR4_PAE);
        cpu::write_cr3(pdpt);
    }
    // After the CR3 load, before paging is on: the first test page.
    write_entry(pt_phys(EARLY_PTS), 0, u64::from(frame_phys(0)) | PTE_IDENT);
    write_entry(
        table_phys(&PD),
        EARLY_PTS,
        u64::from(pt_phys(EARLY_PTS)) | PDE_IDENT,
    );
    let alias_eip: u32;
    // SAFETY: the tables map the code running here at its own address and
    // at PAGE_OFFSET + it; the far jumps stay in the flat code segment.
    unsafe {
        asm!(
            "movl %cr0, %eax",
            "orl ${pg}, %eax",
            "movl %eax, %cr0",
            "ljmp ${cs}, $2f + {offset}",
            "2: call 3f",
            "3: popl {eip}",
            "ljmp ${cs}, $4f",
            "4:",
            pg = const CR0_PG,
            cs = const EARLY_CS,
            offset = const PAGE_OFFSET,
            eip = out(reg) alias_eip,
            out("eax") _,
            options(att_syntax)
        )
    };
    // The same memory through both mappings.
    ALIAS_PROBE.with(|p| *p = 0xA11A_5ED0);
    let alias = read_word(ALIAS_PROBE.as_ptr() as u32 + PAGE_OFFSET);
    // Linux's scans of the BIOS area (EBDA, option ROMs, DMI, the MP
    // table, the ACPI RSDP) read every page of 0x9F000-0xFFFFF through
    // PAGE_OFFSET: whatever is there, it reads.
    let mut bios_area = 0u32;
    for page in (0x9_F000..0x10_0000).step_by(4096) {
        bios_area ^= read_word(PAGE_OFFSET + page);
    }
    let mut rom_same = true;
    for off in (0..16).step_by(4) {
        rom_same &=
            read_word(OPTION_ROM_AREA + off) == read_word(OPTION_ROM_AREA + PAGE_OFFSET + off);
    }
    if alias_eip < PAGE_OFFSET {
        fail(
            Check::PagingEnable,
            format_args!("the far jump into the alias ran at {alias_eip:#x}"),
        );
    } else if alias != 0xA11A_5ED0 || !rom_same {
        fail(
            Check::PagingEnable,
            format_args!(
                "identity and alias differ: probe {alias:#x}, option-ROM area same: {rom_same}"
            ),
        );
    } else {
        pass(Check::PagingEnable, format_args!(
            "PAE paging on with CR3 {pdpt:#x}: code ran at {alias_eip:#x} (alias), data and the option-ROM area the same through both maps, the BIOS area readable (xor {bios_area:#x})"
        ));
    }

    // The mapping written after the CR3 load; one written with paging on
    // (a not-present entry made present needs no flush); one changed and
    // flushed with INVLPG.
    let after_cr3 = read_word(TEST_VA);
    write_entry(pt_phys(EARLY_PTS), 1, u64::from(frame_phys(1)) | PTE_IDENT);
    let after_pg = read_word(TEST_VA + 0x1000);
    write_entry(pt_phys(EARLY_PTS), 0, u64::from(frame_phys(2)) | PTE_IDENT);
    cpu::invlpg(TEST_VA);
    let remapped = read_word(TEST_VA);
    let got = [after_cr3, after_pg, remapped];
    let want = [TEST_MAGIC[0], TEST_MAGIC[1], TEST_MAGIC[2]];
    if got == want {
        pass(Check::PteWrites, format_args!(
            "tables written natively before the CR3 load; entries written after it, after PG and changed with INVLPG all took effect at {TEST_VA:#x}"
        ));
    } else {
        fail(Check::PteWrites, format_args!(
            "at {TEST_VA:#x}: after the CR3 load, after PG, after INVLPG read {got:#x?}, expected {want:#x?}"
        ));
    }
}

/// The console on COM1 with IN/OUT before any ROM: scratch register, line
/// status, and the first lines.
fn uart() {
    use native_rom::hw::port::{in8, out8};
    use vmi_guest::console::{COM1, LSR_THR_EMPTY, UART_LSR, UART_SCR};
    console::init();
    // SAFETY: COM1 is the console's; the scratch register holds nothing.
    let (scratch, lsr) = unsafe {
        out8(COM1 + UART_SCR, 0x5A);
        let a = in8(COM1 + UART_SCR);
        out8(COM1 + UART_SCR, 0xA5);
        (
            u16::from(a) << 8 | u16::from(in8(COM1 + UART_SCR)),
            in8(COM1 + UART_LSR),
        )
    };
    say!("--- VMI guest: generic VMI kernel (VMI API 3.0), bzImage packaging ---");
    say!("early: Linux 32-bit boot protocol; GDT, IDT and PAE paging set up natively (results follow as early_* cases)");
    if scratch == 0x5AA5 && lsr & LSR_THR_EMPTY != 0 {
        pass(Check::Uart, format_args!("16550 at {COM1:#x}: scratch register holds what was written, THR empty, two lines out"));
    } else {
        fail(
            Check::Uart,
            format_args!(
                "16550 at {COM1:#x}: scratch read back {scratch:#x} (want 0x5aa5), LSR {lsr:#x}"
            ),
        );
    }
}

/// CPUID (vendor, PAE and MSR bits) and MSRs (the APIC base, and one
/// written and read back) natively.
fn cpuid_msr() {
    let leaf0 = cpu::cpuid(0, 0);
    let edx = cpu::cpuid(1, 0)[3];
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&leaf0[1].to_le_bytes());
    vendor[4..8].copy_from_slice(&leaf0[3].to_le_bytes());
    vendor[8..].copy_from_slice(&leaf0[2].to_le_bytes());
    // SAFETY: IA32_APIC_BASE exists where CPUID.1:EDX.APIC is set (checked
    // below before use); IA32_SYSENTER_ESP exists with SEP and takes any
    // value, restored after.
    let (apic_base, esp_back) = unsafe {
        let base = cpu::rdmsr(apic::IA32_APIC_BASE);
        let saved = cpu::rdmsr(0x175);
        cpu::wrmsr(0x175, 0xFEED_F000);
        let back = cpu::rdmsr(0x175);
        cpu::wrmsr(0x175, saved);
        (base, back)
    };
    let printable = vendor.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    let name = core::str::from_utf8(&vendor).unwrap_or("?");
    if leaf0[0] < 1 || !printable {
        fail(
            Check::CpuidMsr,
            format_args!("CPUID.0: max leaf {:#x}, vendor {vendor:x?}", leaf0[0]),
        );
    } else if edx & (1 << 6) == 0 || edx & (1 << 5) == 0 {
        fail(
            Check::CpuidMsr,
            format_args!("CPUID.1:EDX {edx:#x} lacks PAE or MSR"),
        );
    } else if apic_base & apic::APIC_BASE_BSP == 0 || esp_back != 0xFEED_F000 {
        fail(Check::CpuidMsr, format_args!(
            "IA32_APIC_BASE {apic_base:#x} (want the BSP bit), IA32_SYSENTER_ESP read back {esp_back:#x}"
        ));
    } else {
        pass(Check::CpuidMsr, format_args!(
            "vendor \"{name}\", CPUID.1:EDX {edx:#x} has PAE and MSR; IA32_APIC_BASE {apic_base:#x}; IA32_SYSENTER_ESP written and read back"
        ));
    }
}

/// CLI, STI and HLT around the PIT's IRQ 0: the PIT (mode 0, 1 ms) raises
/// it while interrupts are off, the PIC shows it requested, and `sti; hlt`
/// takes it (the halt ends with the interrupt, its handler ran once).
fn cli_sti_hlt() {
    const IRQ0_VECTOR: u32 = trap::IRQ_BASE;
    pic::init();
    // SAFETY: the PIT is the kernel's; channel 0 counts 1193 ticks once.
    unsafe { pit::start_channel0(0, 1193) };
    pic::unmask(0);
    let start = cpu::rdtsc();
    let mut requested = false;
    while cpu::rdtsc().wrapping_sub(start) < 4_000_000_000 {
        if pic::irr() & 1 != 0 {
            requested = true;
            break;
        }
    }
    let before = trap::irq_count(IRQ0_VECTOR);
    if requested {
        // SAFETY: IRQ 0's gate is an entry stub that acknowledges it; the
        // interrupt is pending, so the halt ends at once.
        unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
    let taken = trap::irq_count(IRQ0_VECTOR) - before;
    pic::mask(0);
    // SAFETY: stops channel 0 again.
    unsafe { pit::stop_channel0() };
    if !requested {
        fail(
            Check::CliStiHlt,
            format_args!("the PIT's IRQ 0 never showed in the PIC's request register"),
        );
    } else if taken != 1 {
        fail(
            Check::CliStiHlt,
            format_args!("sti; hlt took {taken} IRQ 0 interrupts, expected 1"),
        );
    } else {
        pass(
            Check::CliStiHlt,
            format_args!("IRQ 0 requested while interrupts were off; sti; hlt took it once"),
        );
    }
}

/// Right after activation (or the decision to run natively), still on the
/// early tables: what came through, then paging off again for the suite.
fn after_activation() {
    let (cr0, cr3, cr4) = (pv::get_cr0(), pv::get_cr3(), pv::get_cr4());
    let mapped = read_word(TEST_VA);
    let pdpt = table_phys(&PDPT);
    let platform = if pv::vmi_active() {
        "through the VMI ROM"
    } else {
        "natively"
    };
    if cr0 & (CR0_PG | CR0_PE) != CR0_PG | CR0_PE || cr3 != pdpt || cr4 & CR4_PAE == 0 {
        fail(Check::StateAfterActivation, format_args!(
            "read {platform}: CR0 {cr0:#x}, CR3 {cr3:#x} (want {pdpt:#x}), CR4 {cr4:#x}: paging state lost"
        ));
    } else if mapped != TEST_MAGIC[2] {
        fail(
            Check::StateAfterActivation,
            format_args!(
                "the early mapping at {TEST_VA:#x} reads {mapped:#x}, expected {:#x}",
                TEST_MAGIC[2]
            ),
        );
    } else {
        let cost = match EARLY_HYPERCALLS.with(|h| *h) {
            (Some(a), Some(b)) => Text::from_fmt(format_args!(
                "; the early boot cost the ROM {} hypercalls",
                b.wrapping_sub(a)
            )),
            _ => Text::new(),
        };
        pass(Check::StateAfterActivation, format_args!(
            "read {platform}: CR0 {cr0:#x} (PG), CR3 {cr3:#x}, CR4 {cr4:#x} (PAE); the early mappings still in effect{cost}"
        ));
    }
    // The suite starts as in the multiboot packaging: paging off.
    pv::set_cr0(pv::get_cr0() & !CR0_PG);
    pv::set_cr4(pv::get_cr4() & !CR4_PAE);
}
