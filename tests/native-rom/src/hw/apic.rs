//! The local APIC in xAPIC mode, by memory-mapped registers.
//!
//! Register offsets: Intel SDM vol. 3, "Local APIC Register Address Map".
//! The registers are reached at their physical address (IA32_APIC_BASE):
//! with paging off that is the linear address, with paging on the kernel
//! must map that page 1:1 (the VMI guest does; see the ROM's notes).

use core::ptr;

use super::cpu::rdmsr;

/// IA32_APIC_BASE MSR.
pub const IA32_APIC_BASE: u32 = 0x1B;
/// IA32_APIC_BASE: this is the bootstrap processor.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE: APIC globally enabled.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;

/// Local APIC ID register.
pub const REG_ID: u32 = 0x20;
/// Version register (bits 7-0 version, 23-16 max LVT entry).
pub const REG_VERSION: u32 = 0x30;
/// Task priority register.
pub const REG_TPR: u32 = 0x80;
/// End-of-interrupt register.
pub const REG_EOI: u32 = 0xB0;
/// Interrupt request register, first of eight (vectors 0-31; +0x10 per 32).
pub const REG_IRR: u32 = 0x200;
/// Spurious interrupt vector register (bit 8 = APIC software enable).
pub const REG_SVR: u32 = 0xF0;
/// LVT timer register.
pub const REG_LVT_TIMER: u32 = 0x320;
/// Timer initial count.
pub const REG_TIMER_INITIAL: u32 = 0x380;
/// Timer current count.
pub const REG_TIMER_CURRENT: u32 = 0x390;
/// Timer divide configuration.
pub const REG_TIMER_DIVIDE: u32 = 0x3E0;

/// SVR: APIC software enable.
pub const SVR_ENABLE: u32 = 1 << 8;
/// LVT: entry masked.
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT timer mode field (bits 18-17).
pub const LVT_TIMER_MODE_MASK: u32 = 3 << 17;
/// LVT timer mode: periodic.
pub const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// Divide configuration value for "divide by 1".
pub const TIMER_DIVIDE_BY_1: u32 = 0xB;

/// Physical (= accessed linear) address of the local APIC registers.
pub fn base() -> u32 {
    // SAFETY: IA32_APIC_BASE exists on every processor with a local APIC,
    // which the PC platform this targets has (CPUID.1:EDX.APIC).
    (unsafe { rdmsr(IA32_APIC_BASE) } as u32) & 0xFFFF_F000
}

/// Reads APIC register `reg` (an offset such as [`REG_LVT_TIMER`]).
///
/// # Safety
/// The APIC page must be mapped at its physical address; `reg` must be a
/// register offset (16-byte aligned, below 0x400).
pub unsafe fn read(reg: u32) -> u32 {
    // SAFETY: per the caller.
    unsafe { ptr::read_volatile((base() + (reg & 0x3F0)) as *const u32) }
}

/// Writes APIC register `reg`.
///
/// # Safety
/// As [`read`]; the write takes effect on the interrupt system.
pub unsafe fn write(reg: u32, value: u32) {
    // SAFETY: per the caller.
    unsafe { ptr::write_volatile((base() + (reg & 0x3F0)) as *mut u32, value) }
}
