//! The native VMI ROM: a VMI API 3.0 option ROM whose every call is the
//! real instruction or device, with no hypervisor behind it. It is the
//! judge's reference platform: a VMI kernel run through it must behave as
//! it does on bare hardware, and the Xen ROM is held to the same results.
//!
//! The image (see `rom.ld`): the 144-byte VMI ROM header
//! ([`vmi_abi::build_header`]: option ROM 0xAA55, "cVmi", API 3.0, PCI data
//! structure 15AD:0801, PnP header, license "GPL v2"), the VMI_Init and
//! GetRelocationInfo jump points at +0x80/+0x88, a 16-bit BIOS init entry,
//! the call table, the calls, and the checksum byte last
//! (tools/build-images fixes it after `objcopy -O binary`).
//!
//! # Where its state lives
//! An option ROM is read-only once the BIOS has finished POST, and the VMI
//! ABI gives a ROM no memory of its own. This ROM needs one fact that the
//! hardware does not keep: the TSC frequency. The 16-bit init entry (run by
//! the BIOS during POST, while the ROM's shadow RAM is still writable)
//! reads the TSC around latched counts of PIT channel 2, 20 ms apart, and
//! writes the readings into the image ([`Calibration`]). Everything else is read back from the
//! devices at each call (alarm state from the PIT and the local APIC
//! timer, the kernel stack from TR and the GDT). So the ROM has no writable
//! state at run time, needs nothing from the kernel, and is reentrant.
//! Without the calibration (a loader that does not run the init entry) the
//! timer calls answer NONE to GetRelocationInfo, and a kernel keeps its
//! native timer, as Linux does.
//!
//! # NONE with code
//! Where the call is what the kernel's own native code already does (the
//! interrupt flag: CLI, STI, PUSHF, POPF; GetCR2; UpdateKernelStack,
//! which a kernel does by writing its TSS; SetPxELong, the entry's store),
//! the answer is NONE, so a kernel keeps its native code, as a Linux VMI
//! kernel does for NONE (`patch_internal` leaves the inline site,
//! `para_fill`, `para_wrap` and `vmi_get_function` the native op): a call
//! into the ROM would only add the call and the return. The answer still
//! carries the address of the ROM's code (Linux ignores it), and the
//! guest's conformance cases call it there directly (`*_rom_entry_direct`,
//! `irq_rom_entries_direct`), so that code is held to the calls' effects
//! all the same. IRET and SYSEXIT stay JUMP_REL: Linux's `activate_vmi`
//! points its IRET and SYSEXIT ops at poison addresses because they must
//! always be patched, so a NONE there would leave a jump to the poison.
//!
//! # What each call does
//! * Descriptor tables, control and debug registers, MSRs, TSC, PMCs,
//!   CPUID, WBINVD, CLTS, INVLPG, the interrupt flag, IRET (an IRETD,
//!   jumped to), SYSEXIT (JUMP_REL to STI; SYSEXIT), Halt (STI; HLT),
//!   SetIOPLMask (POPF): the instruction.
//! * UpdateKernelStack: writes ss0:esp0 of the TSS that TR names.
//! * Page-table updates: SetPxE/SetPxELong store the entry (64-bit entries
//!   high half first when becoming present); UpdatePxE(Long),
//!   AllocatePage, ReleasePage, SetLinearMapping and SetLazyMode have
//!   nothing to do on hardware and answer a NOP relocation (the kernel
//!   makes no call at all); FlushTLB reloads CR3 (toggling CR4.PGE for
//!   global flushes). MachineToPhysical/PhysicalToMachine: identity.
//! * Port I/O calls: the IN/OUT/INS/OUTS instructions. IODelay: NOP
//!   relocation (a ROM call would already take longer than the ISA delay).
//! * APICRead/APICWrite: the local APIC's registers at their physical
//!   address (IA32_APIC_BASE). With paging on, the kernel must map that page
//!   1:1 (and the HPET's, 0xFED00000, for IRQ 0 alarms); the ROM has no
//!   other way to reach them.
//! * Timer: GetCycleFrequency from the calibration, GetCycleCounter = TSC
//!   (real and available; stolen is 0), SetAlarm/CancelAlarm on HPET timer
//!   0 in LegacyReplacement mode (IRQ 0 one-shots), the 8254's channel 0
//!   (IRQ 0 periodic), or the local APIC timer (LVTT), see
//!   [`native_rom::alarm`]; GetWallclockTime from the CMOS RTC;
//!   WallclockUpdated is always 0.
//! * Shutdown: ACPI S5 on the PIIX4 (QEMU's `pc` machine), else halt with
//!   interrupts off. Reboot: reset control register 0xCF9, keyboard
//!   controller, triple fault.
//! * Not implemented (NONE): SetInitialAPState (this ROM starts no
//!   application processors), SetCallbacks (no published semantics).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod rom;

/// A host build only exists for workspace-wide host checks; the ROM is the
/// i686 image built by tools/build-images.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("native-rom is an i686 option ROM image: build it with tools/build-images");
}
