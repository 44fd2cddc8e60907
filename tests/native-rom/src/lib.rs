//! The native PC platform of the VMI judge.
//!
//! The native VMI ROM (this package's binary) does every VMI call with the
//! instruction or device it stands for; the generic VMI guest, run without
//! a ROM, does the same operations itself. Both take the device code from
//! here, so a case that passes natively and through the native ROM has
//! exercised the VMI plumbing, not two implementations of the hardware.
//!
//! * [`timebase`]: pure time arithmetic (PIT calibration, tick conversion,
//!   RTC calendar), host-tested.
//! * [`hw`] (i686 only): port I/O, CPU registers, the 8254 PIT, the HPET,
//!   the local APIC, the CMOS RTC, PCI configuration space, ACPI power-off
//!   and reset.
//! * [`alarm`] (i686 only): VMI alarms (SetAlarm / CancelAlarm semantics of
//!   `vmi_time.h`) on the HPET or the 8254 (IRQ 0) or the local APIC timer
//!   (LVTT).
//!
//! Everything here must stay free of panic paths and of statics holding
//! pointers: the ROM links it and has to run, unrelocated, wherever a kernel
//! maps it.
#![cfg_attr(not(test), no_std)]

pub mod timebase;

#[cfg(target_arch = "x86")]
pub mod alarm;
#[cfg(target_arch = "x86")]
pub mod hw;
