//! Boot sequence, in the order a Linux VMI kernel does the same things:
//! native descriptor tables first, then the ROM probe and activation, then
//! CPU setup again through the ops (Linux's `cpu_init` runs after
//! `activate_vmi`), then the work (here: the cases), then power-off.

use core::arch::asm;
use core::panic::PanicInfo;

use native_rom::hw::cpu::{self, CR0_EM, CR0_MP, CR0_NE, CR0_TS};
use native_rom::hw::{apic, pit};

use crate::boot::{BootInfo, Stack, MULTIBOOT_BOOTLOADER_MAGIC, STACK_SIZE};
use crate::console::{self, kprintln, Text};
use crate::desc::{self, Table, GDT, IDT};
use crate::sync::Global;
use crate::trap::{self, VECTOR_APIC_SPURIOUS, VECTOR_SYSCALL};
use crate::{bench, cases, pic, probe, pv, stress};

/// The stack the processor switches to on traps from ring 3 (TSS esp0).
pub static RING0_STACK: Global<Stack> = Global::new(Stack([0; STACK_SIZE]));

/// Top of [`RING0_STACK`].
pub fn ring0_stack_top() -> u32 {
    RING0_STACK.as_ptr() as u32 + STACK_SIZE as u32
}

/// What the loader told the kernel.
pub static BOOT: Global<Option<BootInfo>> = Global::new(None);

/// A copy of the boot information.
pub fn boot_info() -> BootInfo {
    BOOT.with(|b| *b)
        .expect("boot information is set before anything asks")
}

/// What a packaging adds to the common boot (src/lib.rs): the bzImage
/// packaging's early-boot results and its step after activation.
pub struct Packaging {
    /// Runs right after VMI activation (or the decision to run natively),
    /// before the CPU setup through the platform ops.
    pub after_activation: fn(),
    /// Cases reported before the suite (their results may have been
    /// recorded long before the console was up).
    pub cases: &'static [cases::Case],
}

/// The multiboot packaging adds nothing.
pub static MULTIBOOT: Packaging = Packaging {
    after_activation: || {},
    cases: &[],
};

/// Entered from the multiboot packaging's `_start` with the multiboot
/// registers.
pub extern "C" fn kmain(magic: u32, mbi: u32) -> ! {
    console::init();
    kprintln!("--- VMI guest: generic VMI kernel (VMI API 3.0) ---");
    if magic != MULTIBOOT_BOOTLOADER_MAGIC {
        kprintln!("boot: not started by a multiboot loader (EAX {magic:#x})");
        kprintln!("Test result: ERROR");
        power_off();
    }
    // SAFETY: a multiboot loader passed `mbi` in EBX.
    let boot = unsafe { BootInfo::from_multiboot(mbi) };
    run(boot, &MULTIBOOT)
}

/// The boot common to the packagings, from the native CPU setup on: the
/// ROM probe and activation, the CPU setup through the ops, the cases, the
/// power-off.
pub fn run(boot: BootInfo, packaging: &Packaging) -> ! {
    BOOT.with(|b| *b = Some(boot));
    kprintln!(
        "boot: command line \"{}\", RAM up to {:#x}",
        boot.cmdline(),
        boot.ram_top
    );

    early_cpu_setup();
    if boot.option("paging") == Some("early") {
        // Like Linux's head code: page tables built and paging turned on
        // with native instructions, before any VMI ROM is looked for.
        let space = crate::mm::enable_paging(false);
        kprintln!(
            "boot: paging on before VMI activation (PDPT {:#x})",
            space.pdpt
        );
    }

    let rom = if boot.option("vmi") == Some("off") {
        kprintln!("vmi: vmi=off on the command line: not looking for a ROM");
        None
    } else {
        probe::find_vmi_rom()
    };
    match rom {
        Some(rom) => match pv::activate(rom.base, rom.size, rom.virtual_top) {
            Ok(()) => {}
            Err(pv::ActivationError::InitFailed(status)) => {
                kprintln!("vmi: VMI ROM failed to initialize (VMI_Init returned {status:#x}): running natively");
            }
        },
        None => kprintln!("vmi: no usable VMI ROM: running natively"),
    }
    if !pv::vmi_active() {
        kprintln!("vmi: platform: native instructions");
    }
    (packaging.after_activation)();

    cpu_init();
    let verdict = match (boot.option("bench"), boot.option("stress")) {
        (Some(selection), _) => bench::run_all(&boot, selection),
        (None, Some(updates)) => stress::run_all(&boot, updates),
        (None, None) => cases::run_all(&boot, packaging.cases),
    };
    kprintln!("Test result: {verdict}");
    finish(&boot)
}

/// The IDT gate for `vector`: interrupt gates, DPL 3 for the vectors ring 3
/// may raise with INT n / INT3 / INTO.
fn idt_gate(vector: u32, cs: u16) -> u64 {
    let attr = match vector {
        3 | 4 | VECTOR_SYSCALL => desc::GATE_INTERRUPT_USER,
        _ => desc::GATE_INTERRUPT,
    };
    desc::gate(trap::stub_address(vector), cs, attr)
}

/// Reloads CS and the data segment registers (FS/GS become null).
fn reload_segments(cs: u16, ds: u16) {
    // SAFETY: `cs`/`ds` name the flat kernel segments of the loaded GDT, so
    // code and data stay where they are.
    unsafe {
        asm!(
            "pushl {cs:e}",
            "pushl $2f",
            "lretl",
            "2:",
            "movw {ds:x}, %ds",
            "movw {ds:x}, %es",
            "movw {ds:x}, %ss",
            "xorl {cs:e}, {cs:e}",
            "movw {cs:x}, %fs",
            "movw {cs:x}, %gs",
            cs = inout(reg) u32::from(cs) => _,
            ds = in(reg) ds,
            options(att_syntax),
        )
    };
}

/// Descriptor tables, TSS, FPU control bits, interrupt controller, with
/// native instructions (before VMI activation, as Linux's head code does).
fn early_cpu_setup() {
    GDT.with(|gdt| {
        for (index, d) in desc::kernel_gdt_entries() {
            gdt.0[index] = d;
        }
    });
    let cs = desc::selector(desc::GDT_KERNEL_CODE, 0);
    let ds = desc::selector(desc::GDT_KERNEL_DATA, 0);
    // SAFETY: the GDT static is filled and stays valid.
    unsafe { cpu::lgdt(&desc::gdt_pointer()) };
    reload_segments(cs, ds);
    IDT.with(|idt| {
        for v in 0..256u32 {
            idt.0[v as usize] = idt_gate(v, cs);
        }
    });
    // SAFETY: every gate points at an entry stub.
    unsafe { cpu::lidt(&desc::idt_pointer()) };
    desc::TSS.with(|t| {
        t.esp0 = ring0_stack_top();
        t.ss0 = u32::from(ds);
    });
    // SAFETY: the TSS descriptor is available (fresh GDT).
    unsafe { cpu::ltr(desc::TSS_SELECTOR) };
    // SAFETY: x87 with native error reporting, WAIT honouring TS; no
    // emulation. Paging stays as the loader left it (off).
    unsafe { cpu::write_cr0((cpu::read_cr0() | CR0_MP | CR0_NE) & !(CR0_EM | CR0_TS)) };
    pic::init();
    // SAFETY: stops the BIOS's 18.2 Hz tick; IRQ 0 is masked anyway.
    unsafe { pit::stop_channel0() };
}

/// CPU setup through the platform ops (after activation): every descriptor
/// rewritten with WriteGDTEntry / WriteIDTEntry, the tables, TR, LDT and
/// the kernel stack loaded with the VMI calls, the segment registers
/// reloaded with the kernel's RPL.
fn cpu_init() {
    let cs = pv::kernel_cs();
    let ds = pv::kernel_ds();
    let gdt = Table::base(&GDT);
    for (index, d) in desc::kernel_gdt_entries() {
        pv::write_gdt_entry(gdt, index as u32, d);
    }
    pv::set_gdt(&desc::gdt_pointer());
    reload_segments(cs, ds);
    let idt = Table::base(&IDT);
    for v in 0..256u32 {
        pv::write_idt_entry(idt, v, idt_gate(v, cs));
    }
    pv::set_idt(&desc::idt_pointer());
    pv::set_ldt(0);
    pv::set_tr(desc::TSS_SELECTOR);
    pv::update_kernel_stack(ds, ring0_stack_top());
    pv::set_cr0((pv::get_cr0() | CR0_MP | CR0_NE) & !(CR0_EM | CR0_TS));
    // The local APIC, software-enabled with its spurious vector, timer LVT
    // masked until a case arms it.
    pv::apic_write(apic::REG_SVR, apic::SVR_ENABLE | VECTOR_APIC_SPURIOUS);
    pv::apic_write(
        apic::REG_LVT_TIMER,
        apic::LVT_MASKED | trap::VECTOR_APIC_TIMER,
    );
}

/// Ends the run: reboot if asked, else power off.
fn finish(boot: &BootInfo) -> ! {
    if boot.option("exit") == Some("reboot") {
        kprintln!("vmi-guest: rebooting (exit=reboot)");
        pv::irq_disable();
        pv::reboot(vmi_abi::flags::VMI_REBOOT_HARD);
        kprintln!("vmi-guest: Reboot returned");
    }
    power_off()
}

/// Shutdown through the platform (the ROM's Shutdown, or the test
/// machine's isa-debug-exit port natively); the debug-exit port if a ROM's
/// Shutdown returns.
pub fn power_off() -> ! {
    pv::irq_disable();
    if pv::vmi_active() {
        pv::shutdown();
        kprintln!("vmi-guest: VMI Shutdown returned; exiting through the isa-debug-exit port");
    }
    // SAFETY: the kernel is done; the write ends QEMU.
    unsafe { native_rom::hw::port::out32(pv::DEBUG_EXIT_PORT, 0) };
    loop {
        // SAFETY: nothing left to do; interrupts stay off.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let text = Text::from_fmt(format_args!("panic: {info}"));
    cases::abort_current(text)
}
