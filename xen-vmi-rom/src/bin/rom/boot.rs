//! The loader's handover (ROM+0x90): install the trap table and callbacks,
//! switch to the kernel's first address space, and enter the kernel.

use xen_abi::arch_x86_32::{TrapInfo, XenCallback, FLAT_RING1_CS};
use xen_abi::hypercall::Hypervisor;
use xen_abi::p2m::Mfn;
use xen_abi::xen::{MmuextOp, DOMID_SELF};
use xen_vmi_rom::layout::ROM_STATE_VA;
use xen_vmi_rom::rom_state::{RomState, RESUME_AT_OFFSET, ROM_BOOT_STACK_TOP, ROM_STATE_MAGIC};

use crate::console::Line;
use crate::traps;
use crate::xen::{crash, hypervisor};

// Entered from the loader's stack, which vanishes with its address space:
// move to the ROM's boot stack (in the private area) first.
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_loader_entry, "ax"
    .globl vmi_loader_entry
vmi_loader_entry:
    mov eax, [esp + 4]
    mov esp, {stack_top}
    push eax
    call {boot}
    ud2
    .popsection
    "#,
    stack_top = const ROM_STATE_VA + ROM_BOOT_STACK_TOP,
    boot = sym rom_boot,
);

extern "C" {
    /// The entry above, for the header's jump point.
    pub fn vmi_loader_entry();
}

// Enters the kernel: registers and selectors per the boot contract, flags
// with IF set (the virtual IF is the upcall mask, which stays set until the
// kernel enables interrupts). The far jump goes through the resume slot,
// which nothing else uses before the kernel runs: (entry, CS) in `ljmp`
// order. A data selector of 0 keeps Xen's flat ring-1 ones.
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_enter_kernel, "ax"
    .globl vmi_enter_kernel
vmi_enter_kernel:
    mov eax, [esp + 4]
    mov [{resume}], eax
    mov eax, [esp + 24]
    mov [{resume} + 4], eax
    mov ecx, [esp + 28]
    test ecx, ecx
    jz 1f
    mov ds, cx
    mov es, cx
    mov fs, cx
    mov gs, cx
    mov ss, cx
1:  mov eax, [esp + 8]
    mov ebx, [esp + 12]
    mov esi, [esp + 20]
    mov esp, [esp + 16]
    xor ecx, ecx
    xor edx, edx
    xor edi, edi
    xor ebp, ebp
    jmp fword ptr [{resume}]
    .popsection
    "#,
    resume = const ROM_STATE_VA + RESUME_AT_OFFSET,
);

extern "C" {
    fn vmi_enter_kernel(entry: u32, eax: u32, ebx: u32, esp: u32, esi: u32, cs: u32, ds: u32) -> !;
}

/// The code selector the ROM runs with (Xen's flat ring-1 one).
fn current_cs() -> u32 {
    let cs: u32;
    // SAFETY: reads a segment register.
    unsafe {
        core::arch::asm!("mov {0:e}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    cs & 0xFFFF
}

#[cfg_attr(feature = "image", optimize(size))]
extern "C" fn rom_boot(state: *mut RomState) -> ! {
    // SAFETY: the loader passes ROM_STATE_VA, mapped and filled.
    let st = unsafe { &*state };
    if st.magic != ROM_STATE_MAGIC {
        Line::rom(b"ROM state at ")
            .hex(state as u32)
            .text(b" was not filled by the loader")
            .print();
        crash();
    }
    crate::runtime::init();
    crate::events::init();
    crate::time::init();
    let mut xen = hypervisor();
    let mut table = [TrapInfo::default(); 33];
    for (vector, entry) in table.iter_mut().take(32).enumerate() {
        // int3 and into may be raised from user mode; the rest only by the
        // processor (DPL 0 keeps `int n` from ring 3 out).
        let dpl = if vector == 3 || vector == 4 { 3 } else { 0 };
        *entry = TrapInfo {
            vector: vector as u8,
            // Bit 2: Xen masks events for the ROM's handler (the kernel's
            // flag is saved in the frame and given back on return).
            flags: dpl | 4,
            cs: FLAT_RING1_CS,
            address: traps::stub_alias(vector as u32),
        };
    }
    let callback = |addr| XenCallback {
        cs: u32::from(FLAT_RING1_CS),
        eip: addr,
    };
    // SAFETY: the handlers live in the ROM's alias, mapped in every address
    // space; the table ends with a zero entry.
    let traps_ok = unsafe { xen.set_trap_table(&table) };
    // SAFETY: as above, for the event and failsafe callbacks.
    let callbacks_ok = unsafe {
        xen.set_callbacks(
            callback(traps::event_alias()),
            callback(traps::failsafe_alias()),
        )
    };
    // SAFETY: the boot root maps the ROM area (this code, its stack and
    // state) exactly as the loader's tables do.
    let base_ok = unsafe {
        xen.mmuext_op(
            &[MmuextOp::new_baseptr(Mfn(st.boot_l3_mfn))],
            u32::from(DOMID_SELF),
        )
    };
    // SAFETY: the builder's root is no longer in use (base_ok); unpinning
    // it frees its frames' types, nothing more.
    let unpin_ok = unsafe {
        xen.mmuext_op(
            &[MmuextOp::unpin_table(Mfn(st.bootstrap_l3_mfn))],
            u32::from(DOMID_SELF),
        )
    };
    if traps_ok.is_err() || callbacks_ok.is_err() || base_ok.is_err() || unpin_ok.is_err() {
        Line::rom(b"Xen refused the ROM's trap table, callbacks, the kernel's address space or unpinning the builder's")
            .print();
        crash();
    }
    // A kernel entered by the Linux 32-bit protocol starts with the boot
    // GDT the loader wrote, loaded as the kernel's own LGDT would load it
    // (Xen gets DPL 1 for its ring-0 descriptors), and its selectors with
    // RPL 1: the kernel runs in ring 1 (docs/early-boot.md).
    if st.entry_gdt_limit != 0
        && !crate::desc::load_gdt(st.entry_gdt_base, st.entry_gdt_limit as u16)
    {
        Line::rom(b"Xen refused the kernel's boot GDT at ")
            .hex(st.entry_gdt_base)
            .print();
        crash();
    }
    let ring = |selector: u32| if selector == 0 { 0 } else { selector | 1 };
    let cs = if st.entry_cs == 0 {
        current_cs()
    } else {
        ring(st.entry_cs)
    };
    Line::rom(b"ROM ready, entering the kernel at ")
        .hex(st.entry)
        .print();
    // SAFETY: the kernel's image and first address space are in place, and
    // the selectors name descriptors Xen accepted (or are Xen's own).
    unsafe {
        vmi_enter_kernel(
            st.entry,
            st.entry_eax,
            st.entry_ebx,
            st.entry_esp,
            st.entry_esi,
            cs,
            ring(st.entry_ds),
        )
    }
}
