//! The VMI calls about the processor: control and debug registers, the
//! descriptor tables, the kernel stack, halt and power (vmi.h call list;
//! argument registers per vmi_abi::VmiCall::info).
//!
//! Each is an `extern "C"` function behind a regparm(3) entry (entry.rs),
//! so the arguments arrive in order: EAX, EDX, ECX, then the stack.

use xen_abi::hypercall::Hypervisor;
use xen_abi::sched::{SHUTDOWN_poweroff, SHUTDOWN_reboot};

use crate::desc;
use crate::runtime::{runtime, shared_info};
use crate::xen::hypervisor;

/// CR0.TS: the kernel's lazy FPU switching, which Xen keeps per vCPU.
const CR0_TS: u32 = 1 << 3;

/// The control registers as the kernel sees them. CR0 and CR4 hold what
/// the kernel wrote (with TS kept in step with Xen's fpu_taskswitch); CR2
/// is Xen's (vcpu_info.arch.cr2, written on every page fault).
#[derive(Clone, Copy, Default)]
pub struct ControlRegs {
    pub cr0: u32,
    pub cr4: u32,
}

/// Power-on values after a multiboot loader: protected mode (PE) with the
/// math coprocessor's ET bit, paging off; CR4 clear.
pub const INITIAL_CR0: u32 = 0x11;

pub extern "C" fn get_cr0() -> u32 {
    runtime().cr.cr0
}

/// CR0.PG: paging.
const CR0_PG: u32 = 1 << 31;
/// CR0.WP: supervisor writes obey read-only pages.
const CR0_WP: u32 = 1 << 16;

#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn set_cr0(value: u32) {
    let cr = &mut runtime().cr;
    let old = cr.cr0;
    if (old ^ value) & CR0_TS != 0 {
        let _ = hypervisor().fpu_taskswitch(value & CR0_TS != 0);
    }
    cr.cr0 = value;
    if (old ^ value) & (CR0_PG | CR0_WP) != 0 {
        // The #PF one-step path takes both as set (traps.rs).
        crate::traps::disarm_page_fault_path();
    }
    if (old ^ value) & CR0_PG != 0 {
        crate::paging::set_paging(value & CR0_PG != 0);
    }
}

pub extern "C" fn clts() {
    set_cr0(runtime().cr.cr0 & !CR0_TS);
}

/// Where vCPU 0's CR2 is in shared_info (`vcpu_info[0].arch.cr2`): the
/// GetCR2 entry (entry.rs) loads it directly.
pub const CR2_OFFSET: u32 = (core::mem::offset_of!(xen_abi::xen::SharedInfo, vcpu_info)
    + core::mem::offset_of!(xen_abi::xen::VcpuInfo, arch)
    + core::mem::offset_of!(xen_abi::arch_x86_32::ArchVcpuInfo, cr2))
    as u32;
const _: () = assert!(CR2_OFFSET == 8);

pub extern "C" fn get_cr2() -> u32 {
    let cr2 = &raw const shared_info().vcpu_info[0].arch.cr2;
    // SAFETY: a field of the mapped shared_info page Xen writes on faults.
    unsafe { core::ptr::read_volatile(cr2) }
}

pub extern "C" fn set_cr2(value: u32) {
    let cr2 = (&raw const shared_info().vcpu_info[0].arch.cr2).cast_mut();
    // SAFETY: as above; the kernel owns the value between faults.
    unsafe { core::ptr::write_volatile(cr2, value) };
}

pub extern "C" fn get_cr4() -> u32 {
    runtime().cr.cr4
}

/// CR4.TSD and CR4.DE: the bits of CR4 Xen lets a PV kernel control
/// (pv_fixup_guest_cr4); the rest (PAE, PGE, ...) are Xen's and only kept
/// here as the kernel's view.
const CR4_XEN_GUEST_BITS: u32 = (1 << 2) | (1 << 3);

pub extern "C" fn set_cr4(value: u32) {
    let old = runtime().cr.cr4;
    runtime().cr.cr4 = value;
    if (old ^ value) & CR4_XEN_GUEST_BITS != 0 {
        let bits = value & CR4_XEN_GUEST_BITS;
        // SAFETY: Xen emulates a ring-1 write of CR4, taking only the bits
        // a PV guest controls; nothing else changes.
        unsafe {
            core::arch::asm!("mov cr4, {0}", in(reg) bits, options(nostack, preserves_flags))
        };
    }
}

#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn set_dr(reg: u32, value: u32) {
    let _ = hypervisor().set_debugreg(reg, value);
}

#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn get_dr(reg: u32) -> u32 {
    hypervisor().get_debugreg(reg).unwrap_or(0)
}

/// SetGDT / SetIDT: EAX points at the 6-byte limit/base.
fn pseudo(ptr: u32) -> (u32, u16) {
    // SAFETY: the kernel's own memory.
    unsafe {
        (
            core::ptr::read_unaligned((ptr + 2) as *const u32),
            core::ptr::read_unaligned(ptr as *const u16),
        )
    }
}

fn store_pseudo(ptr: u32, base: u32, limit: u16) {
    // SAFETY: the kernel's own memory, given for the result.
    unsafe {
        core::ptr::write_unaligned(ptr as *mut u16, limit);
        core::ptr::write_unaligned((ptr + 2) as *mut u32, base);
    }
}

pub extern "C" fn set_gdt(ptr: u32) {
    let (base, limit) = pseudo(ptr);
    desc::load_gdt(base, limit);
}

pub extern "C" fn set_idt(ptr: u32) {
    let (base, limit) = pseudo(ptr);
    desc::load_idt(base, limit);
}

pub extern "C" fn get_gdt(ptr: u32) {
    let t = runtime().tables;
    store_pseudo(ptr, t.gdt_base, t.gdt_limit);
}

pub extern "C" fn get_idt(ptr: u32) {
    let t = runtime().tables;
    store_pseudo(ptr, t.idt_base, t.idt_limit);
}

pub extern "C" fn set_tr(selector: u32) {
    desc::load_tr(selector as u16);
}

pub extern "C" fn get_tr() -> u32 {
    u32::from(runtime().tables.tr)
}

/// UpdateKernelStack(ss, esp0): where Xen switches to on a trap from user
/// mode (stack_switch; Xen raises the selector's RPL to 1). In a context
/// switch it joins the held base switch (a few stores, with no frame of
/// its own); the rest is out of line.
pub extern "fastcall" fn update_kernel_stack(ss: u32, esp0: u32) {
    if crate::paging::hold_stack_switch(ss, esp0) {
        return;
    }
    update_kernel_stack_otherwise(ss, esp0);
}

/// UpdateKernelStack with no base switch held to join.
#[inline(never)]
fn update_kernel_stack_otherwise(ss: u32, esp0: u32) {
    // In lazy CPU mode it goes with the context switch's CR3 load.
    if crate::paging::queue_stack_switch(ss, esp0) {
        return;
    }
    // SAFETY: tells Xen the kernel's stack for the next entry from ring 3.
    let _ = unsafe { hypervisor().stack_switch(ss, esp0) };
}

pub extern "C" fn wbinvd() {
    // A PV domain without cache-flush rights cannot flush caches, and it
    // need not: its memory is coherent for it.
}

/// Halt: wait for an interrupt with interrupts enabled. SCHEDOP_block
/// clears the upcall mask itself and returns at once if an event is
/// already pending, so the sti/hlt race cannot lose a wake-up.
#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn halt() {
    crate::events::halt();
}

#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn shutdown() -> ! {
    crate::runtime::flush_console();
    loop {
        let _ = hypervisor().sched_shutdown(SHUTDOWN_poweroff);
    }
}

#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn reboot(_how: u32) -> ! {
    crate::runtime::flush_console();
    loop {
        let _ = hypervisor().sched_shutdown(SHUTDOWN_reboot);
    }
}

/// The local APIC's registers as the kernel last wrote them (offsets
/// 0x000-0x3F0 in 16-byte steps). A PV vCPU has no APIC: this is the
/// register file of the virtual one; its timer and interrupt delivery come
/// with the ROM's event and time work (the interrupts issue), until then a
/// write is kept and read back, nothing more.
#[derive(Clone, Copy)]
pub struct ApicRegs(pub [u32; 64]);

impl Default for ApicRegs {
    fn default() -> Self {
        let mut r = [0u32; 64];
        // Version register: an integrated APIC (0x14) with 6 LVT entries.
        r[0x30 >> 4] = 0x0005_0014;
        // Every LVT entry comes out of reset masked; SVR holds vector 0xFF.
        for lvt in [0x320, 0x330, 0x340, 0x350, 0x360, 0x370] {
            r[lvt >> 4] = 1 << 16;
        }
        r[0xF0 >> 4] = 0xFF;
        Self(r)
    }
}

/// The register a kernel names: an offset, or an address in the APIC page.
fn apic_index(reg: u32) -> usize {
    ((reg & 0x3F0) >> 4) as usize
}

pub extern "C" fn apic_write(reg: u32, value: u32) {
    let index = apic_index(reg);
    // EOI (kept nowhere) and TPR change what may be delivered (events.rs).
    if crate::events::apic_write(index, value) {
        return;
    }
    store_apic_register(index, value);
}

/// APICWrite of a register other than EOI: kept for APICRead, and the LVT
/// timer entry re-read by the tick path. Rare (a kernel writes its LVT
/// entries at boot): out of line, optimized for size.
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn store_apic_register(index: usize, value: u32) {
    // ID, version, the in-service/trigger/request bitmaps and the current
    // count are read-only; EOI is write-only and keeps nothing.
    if matches!(index, 0x03 | 0x10..=0x27 | 0x39 | 0x0B) {
        return;
    }
    runtime().apic.0[index] = value;
    // The timer tick's one-step path is armed for the LVT entry's vector
    // and its gate (events.rs `LoneTick`).
    if index == crate::time::LVT_TIMER_INDEX {
        crate::events::tick_gate_changed();
    }
}

#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn apic_read(reg: u32) -> u32 {
    let index = apic_index(reg);
    // IRR, ISR and PPR: the event state's (events.rs).
    if let Some(value) = crate::events::apic_read(index) {
        return value;
    }
    runtime().apic.0[index]
}

/// GetWallclockTime: nanoseconds since 1970 (UTC), a 64-bit result in
/// EDX:EAX (vmi_time.h).
pub extern "C" fn get_wallclock_time() -> u64 {
    crate::runtime::wallclock_ns()
}

/// WallclockUpdated: whether the wall clock was set since the last call;
/// Xen's wall clock only moves with system time, so never.
pub extern "C" fn wallclock_updated() -> u32 {
    0
}

/// WriteGDTEntry(base, index, low word, high word on the stack).
pub extern "C" fn write_gdt_entry(base: u32, index: u32, lo: u32, hi: u32) {
    desc::write_entry(desc::TableKind::Gdt, base, index, lo, hi);
}

/// WriteLDTEntry: as WriteGDTEntry (the LDT itself is loaded by SetLDT).
pub extern "C" fn write_ldt_entry(base: u32, index: u32, lo: u32, hi: u32) {
    desc::write_entry(desc::TableKind::Ldt, base, index, lo, hi);
}

/// WriteIDTEntry: as WriteGDTEntry, for a gate.
pub extern "C" fn write_idt_entry(base: u32, index: u32, lo: u32, hi: u32) {
    desc::write_entry(desc::TableKind::Idt, base, index, lo, hi);
}

/// IA32_SYSENTER_CS (SDM vol. 4); IA32_SYSENTER_ESP and _EIP follow it:
/// the kernel's SYSENTER entry.
pub const MSR_SYSENTER_CS: u32 = 0x174;

/// The MSRs a kernel writes that Xen does not take from a PV guest, kept
/// as the kernel wrote them. Any other MSR Xen did not emulate faults as it
/// would on a processor without it.
#[derive(Clone, Copy, Default)]
pub struct Msrs {
    pub sysenter: [u64; 3],
}

fn msr_slot(msr: u32) -> Option<usize> {
    match msr {
        MSR_SYSENTER_CS..=0x176 => Some((msr - MSR_SYSENTER_CS) as usize),
        _ => None,
    }
}

#[cfg_attr(feature = "image", optimize(size))]
pub fn read_msr(msr: u32) -> Option<u64> {
    msr_slot(msr).map(|i| runtime().msrs.sysenter[i])
}

#[cfg_attr(feature = "image", optimize(size))]
pub fn write_msr(msr: u32, value: u64) -> bool {
    match msr_slot(msr) {
        Some(i) => {
            let msrs = &mut runtime().msrs.sysenter;
            msrs[i] = value;
            let [cs, esp, eip] = *msrs;
            crate::fast_syscall::msrs_changed(cs, esp, eip);
            true
        }
        None => false,
    }
}

/// SetIOPLMask(mask): the IOPL field of EFLAGS (bits 12-13) the kernel
/// wants; a ring-1 popf cannot change it, Xen keeps a virtual IOPL
/// (PHYSDEVOP_set_iopl) that decides which rings may do port I/O.
#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn set_iopl_mask(mask: u32) {
    let _ = hypervisor().physdev_set_iopl((mask >> 12) & 3);
}

/// SetLDT(selector): the LDT named in the kernel's GDT, or none.
pub extern "C" fn set_ldt(selector: u32) {
    desc::load_ldt(selector as u16);
}

/// GetLDT: the selector last loaded.
pub extern "C" fn get_ldt() -> u32 {
    u32::from(runtime().tables.ldt)
}
