//! SYSENTER and SYSEXIT (SDM vol. 2) for a kernel in ring 1.
//!
//! SYSENTER from ring 3 enters Xen, which bounces it to the callback
//! registered as CALLBACKTYPE_sysenter (xen/include/public/callback.h) on
//! the kernel stack of stack_switch, with a frame of its own (null EIP and
//! CS): the processor pushes nothing, so the ROM's entry drops that frame,
//! loads the kernel's SYSENTER_ESP and jumps to its SYSENTER_EIP, events
//! masked as IF is cleared. Xen only offers this where the processor has
//! SYSENTER in long mode (Intel); elsewhere it clears CPUID's SEP bit and
//! a kernel does not use it.
//!
//! SYSEXIT faults in ring 1 (CPL 0 only), so both the VMI call (Linux's
//! irq_enable_sysexit: `sti; sysexit`) and an emulated `sysexit` become an
//! `iret` frame to ring 3 built from EDX/ECX and the selectors SYSENTER_CS
//! gives, through the IRET path (entry.rs), which restores the event mask.

use xen_abi::arch_x86_32::{XenCallback, FLAT_RING1_CS};
use xen_abi::callback::{CALLBACKF_mask_events, CALLBACKTYPE_sysenter};
use xen_abi::hypercall::Hypervisor;
use xen_vmi_rom::layout::{ROM_STATE_VA, SHARED_INFO_VA};
use xen_vmi_rom::rom_state::{FastSyscallSlots, FAST_SYSCALL_OFFSET};

use crate::console::Line;
use crate::xen::hypervisor;

const SLOTS_VA: u32 = ROM_STATE_VA + FAST_SYSCALL_OFFSET;

core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_calls, "ax"
    // Xen's callback: its frame is dropped with the stack it is on.
    .globl vmi_sysenter_entry
vmi_sysenter_entry:
    // Through SS: DS and ES are the user's (the kernel's entry gets them,
    // as SYSENTER leaves them).
    lss esp, ss:[{slots}]
    jmp fword ptr ss:[{slots} + 8]

    // SYSEXIT (jumped to): `sti; sysexit`.
    .globl vmi_entry_sysexit
vmi_entry_sysexit:
    push dword ptr ss:[{slots} + 20]
    push ecx
    pushfd
    or dword ptr [esp], 0x200
    push dword ptr ss:[{slots} + 16]
    push edx
    jmp vmi_entry_iret

    // An emulated `sysexit`: the kernel's IF (the event mask) as it is.
    .globl vmi_sysexit_keep_flag
vmi_sysexit_keep_flag:
    push dword ptr ss:[{slots} + 20]
    push ecx
    pushfd
    or dword ptr [esp], 0x200
    cmp byte ptr ss:[{mask}], 0
    je 1f
    and dword ptr [esp], ~0x200
1:  push dword ptr ss:[{slots} + 16]
    push edx
    jmp vmi_entry_iret
    .popsection
    "#,
    slots = const SLOTS_VA,
    mask = const SHARED_INFO_VA + 1,
);

/// Where an emulated `sysexit` resumes (in the ROM's alias).
pub fn sysexit_emulation_alias() -> u32 {
    // SAFETY: computes an address from EIP.
    crate::traps::alias(unsafe { crate::traps::vmi_addr_sysexit_keep_flag() })
}

/// The kernel wrote one of the SYSENTER MSRs: the slots follow, and Xen's
/// callback points at the ROM's entry while SYSENTER_CS names a segment
/// (at 0 otherwise, so that Xen raises #GP(0) as the processor does).
pub fn msrs_changed(cs: u64, esp: u64, eip: u64) {
    let slots = FastSyscallSlots::from_msrs(cs, esp, eip);
    // SAFETY: the ROM state page is mapped read-write in every address
    // space; the entry reads the slots only with events masked, and the
    // kernel changes its MSRs with no SYSENTER in flight on its one vCPU.
    unsafe { (SLOTS_VA as *mut FastSyscallSlots).write_volatile(slots) };
    let eip = if cs as u32 & 0xFFFC != 0 {
        // SAFETY: computes an address from EIP.
        crate::traps::alias(unsafe { crate::traps::vmi_addr_sysenter_entry() })
    } else {
        0
    };
    let address = XenCallback {
        cs: u32::from(FLAT_RING1_CS),
        eip,
    };
    // SAFETY: the entry lives in the ROM's alias, mapped in every address
    // space (or 0: no callback).
    let result = unsafe {
        hypervisor().callback_register(CALLBACKTYPE_sysenter, CALLBACKF_mask_events, address)
    };
    if let Err(e) = result {
        Line::rom(b"Xen refused the SYSENTER callback: error ")
            .dec(e.errno().unsigned_abs())
            .print();
    }
}
