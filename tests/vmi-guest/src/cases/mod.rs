//! The conformance cases and their runner.
//!
//! Each case is a function returning PASS, FAIL (with what differed) or
//! SKIP (with why it cannot apply). The names are the same on every
//! platform; a case that needs something a platform lacks says SKIP and
//! why. Cases run in table order: first those that need no paging, then
//! `mmu_enable_pae_paging`, then those that need paging.
//!
//! An exception a case did not expect aborts just that case (FAIL with the
//! exception), and the run goes on.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::boot::BootInfo;
use crate::console::{kprintln, Text};
use crate::sync::Global;
use bench_core::recovery::{call_with_recovery, resume, Context};

mod cost;
mod cpu;
mod desc;
mod exceptions;
mod fpu_debug;
mod io;
mod irq;
mod isolation;
mod mmu;
mod timer;
mod usermode;

/// Result of one case.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    /// The platform behaved as specified.
    Pass,
    /// It did not.
    Fail,
    /// The case cannot apply here.
    Skip,
}

/// Status and detail.
pub struct Outcome {
    /// The status.
    pub status: Status,
    /// What was checked, what differed, or why skipped.
    pub detail: Text,
}

impl Outcome {
    /// PASS.
    pub fn pass(args: fmt::Arguments<'_>) -> Self {
        Outcome {
            status: Status::Pass,
            detail: Text::from_fmt(args),
        }
    }
    /// FAIL.
    pub fn fail(args: fmt::Arguments<'_>) -> Self {
        Outcome {
            status: Status::Fail,
            detail: Text::from_fmt(args),
        }
    }
    /// SKIP.
    pub fn skip(args: fmt::Arguments<'_>) -> Self {
        Outcome {
            status: Status::Skip,
            detail: Text::from_fmt(args),
        }
    }
}

/// Returns PASS with a formatted detail.
macro_rules! pass {
    ($($arg:tt)*) => { return $crate::cases::Outcome::pass(format_args!($($arg)*)) };
}
/// Returns FAIL with a formatted detail.
macro_rules! fail {
    ($($arg:tt)*) => { return $crate::cases::Outcome::fail(format_args!($($arg)*)) };
}
/// Returns SKIP with a formatted reason.
macro_rules! skip {
    ($($arg:tt)*) => { return $crate::cases::Outcome::skip(format_args!($($arg)*)) };
}
/// FAIL unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return $crate::cases::Outcome::fail(format_args!($($arg)*));
        }
    };
}
/// FAIL unless `got == want`, naming what was compared.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $what:expr) => {{
        let (got, want) = ($got, $want);
        if got != want {
            return $crate::cases::Outcome::fail(format_args!(
                "{}: expected {:#x}, got {:#x}",
                $what, want, got
            ));
        }
    }};
}

/// FAIL unless `got == want`, for values shown with `{:x?}` (arrays).
macro_rules! ensure_same {
    ($got:expr, $want:expr, $what:expr) => {{
        let (got, want) = ($got, $want);
        if got != want {
            return $crate::cases::Outcome::fail(format_args!(
                "{}: expected {:x?}, got {:x?}",
                $what, want, got
            ));
        }
    }};
}

/// FAIL unless a read through a mapping (`Result<u32, Fault>`) gave `want`.
macro_rules! ensure_word {
    ($got:expr, $want:expr, $what:expr) => {{
        let want: u32 = $want;
        match $got {
            Ok(v) if v == want => {}
            Ok(v) => {
                return $crate::cases::Outcome::fail(format_args!(
                    "{}: expected {:#x}, got {:#x}",
                    $what, want, v
                ))
            }
            Err(f) => {
                return $crate::cases::Outcome::fail(format_args!(
                    "{}: expected {:#x}, got {}",
                    $what, want, f
                ))
            }
        }
    }};
}

pub(crate) use {ensure, ensure_eq, ensure_same, ensure_word, fail, pass, skip};

/// A case: its protocol name and its function.
pub struct Case {
    /// Name on the `case NAME:` line.
    pub name: &'static str,
    /// The check.
    pub run: fn() -> Outcome,
}

const fn case(name: &'static str, run: fn() -> Outcome) -> Case {
    Case { name, run }
}

/// Every case, in run order.
pub static ALL: &[Case] = &[
    // Descriptor tables.
    case("gdt_get_matches_loaded", desc::gdt_get_matches_loaded),
    case("gdt_set_relocated_table", desc::gdt_set_relocated_table),
    case(
        "gdt_write_entry_segment_base",
        desc::gdt_write_entry_segment_base,
    ),
    case(
        "gdt_not_present_segment_faults",
        desc::gdt_not_present_segment_faults,
    ),
    case(
        "gdt_write_entry_gate_descriptor",
        desc::gdt_write_entry_gate_descriptor,
    ),
    case("idt_get_matches_loaded", desc::idt_get_matches_loaded),
    case("idt_set_relocated_table", desc::idt_set_relocated_table),
    case("idt_write_entry_new_gate", desc::idt_write_entry_new_gate),
    case("ldt_set_and_get", desc::ldt_set_and_get),
    case("ldt_write_entry_segment", desc::ldt_write_entry_segment),
    case("ldt_null_selector_faults", desc::ldt_null_selector_faults),
    case("tr_get_matches_loaded", desc::tr_get_matches_loaded),
    case("tr_set_marks_tss_busy", desc::tr_set_marks_tss_busy),
    // Control registers.
    case("cr0_protected_mode_bits", cpu::cr0_protected_mode_bits),
    case("cr0_ts_set_and_clts", cpu::cr0_ts_set_and_clts),
    case("cr2_write_read", cpu::cr2_write_read),
    case("cr2_rom_entry_direct", cpu::cr2_rom_entry_direct),
    case("cr4_write_read", cpu::cr4_write_read),
    // Interrupt flag.
    case("irq_disable_enable_mask", irq::irq_disable_enable_mask),
    case("irq_set_interrupt_mask", irq::irq_set_interrupt_mask),
    case("irq_iret_restores_flag", irq::irq_iret_restores_flag),
    case("irq_rom_entries_direct", irq::irq_rom_entries_direct),
    case("irq_iret_rom_entry_direct", irq::irq_iret_rom_entry_direct),
    // Exceptions.
    case("exc_divide_error", exceptions::divide_error),
    case("exc_invalid_opcode", exceptions::invalid_opcode),
    case("exc_general_protection", exceptions::general_protection),
    case("exc_breakpoint", exceptions::breakpoint),
    case("exc_overflow", exceptions::overflow),
    case("exc_bound_range", exceptions::bound_range),
    case("exc_gate_bad_selector", exceptions::gate_bad_selector),
    case(
        "exc_gate_code_segment_not_present",
        exceptions::gate_code_segment_not_present,
    ),
    case(
        "exc_gp_gate_bad_selector_double_fault",
        exceptions::gp_gate_bad_selector_double_fault,
    ),
    case(
        "exc_syscall_gate_undeliverable",
        exceptions::syscall_gate_undeliverable,
    ),
    case(
        "exc_int3_gate_not_present",
        exceptions::int3_gate_not_present,
    ),
    case(
        "exc_into_gate_not_present",
        exceptions::into_gate_not_present,
    ),
    case(
        "exc_into_gate_data_segment",
        exceptions::into_gate_data_segment,
    ),
    case(
        "exc_into_gate_code_segment_not_present",
        exceptions::into_gate_code_segment_not_present,
    ),
    case("exc_prefixed_int_n", exceptions::prefixed_int_n),
    // FPU and debug registers.
    case("fpu_lazy_switch_nm", fpu_debug::fpu_lazy_switch_nm),
    case(
        "fpu_wait_with_ts_faults",
        fpu_debug::fpu_wait_with_ts_faults,
    ),
    case(
        "debug_registers_write_read",
        fpu_debug::debug_registers_write_read,
    ),
    case("debug_data_breakpoint", fpu_debug::debug_data_breakpoint),
    case(
        "debug_instruction_breakpoint",
        fpu_debug::debug_instruction_breakpoint,
    ),
    // Processor identification and model-specific state.
    case("reloc_unknown_call_none", cpu::reloc_unknown_call_none),
    case("cpuid_basic_leaves", cpu::cpuid_basic_leaves),
    case("cpuid_required_features", cpu::cpuid_required_features),
    case("msr_write_read", cpu::msr_write_read),
    case("msr_apic_base", cpu::msr_apic_base),
    case("rdtsc_monotonic", cpu::rdtsc_monotonic),
    case("rdpmc_counter", cpu::rdpmc_counter),
    case("wbinvd_keeps_memory", cpu::wbinvd_keeps_memory),
    // User mode.
    case("user_iret_and_int80", usermode::iret_and_int80),
    case(
        "user_fault_returns_to_kernel",
        usermode::fault_returns_to_kernel,
    ),
    case(
        "user_privileged_instructions_fault",
        usermode::privileged_instructions_fault,
    ),
    case("user_breakpoint_gate", usermode::breakpoint_gate),
    case("user_dpl0_gate_faults", usermode::dpl0_gate_faults),
    case(
        "user_breakpoint_dpl0_gate_faults",
        usermode::breakpoint_dpl0_gate_faults,
    ),
    case("user_kernel_stack_switch", usermode::kernel_stack_switch),
    case(
        "user_kernel_stack_rom_entry_direct",
        usermode::kernel_stack_rom_entry_direct,
    ),
    case("user_sysexit_sysenter", usermode::sysexit_sysenter),
    case("user_iopl_mask", usermode::iopl_mask),
    case("user_rdtsc_cr4_tsd", usermode::rdtsc_cr4_tsd),
    // Port I/O and the UART.
    case("io_port_calls_byte", io::port_calls_byte),
    case("io_port_calls_word_dword", io::port_calls_word_dword),
    case("io_port_calls_string", io::port_calls_string),
    case("io_delay", io::io_delay),
    case("uart_scratch_and_status", io::uart_scratch_and_status),
    case("uart_loopback", io::uart_loopback),
    // Time.
    case(
        "cycle_frequency_matches_pit",
        timer::cycle_frequency_matches_pit,
    ),
    case("cycle_counters_monotonic", timer::cycle_counters_monotonic),
    case("wallclock_matches_rtc", timer::wallclock_matches_rtc),
    case("apic_read_write", timer::apic_read_write),
    case("alarm_irq0_oneshot", timer::alarm_irq0_oneshot),
    case("alarm_irq0_periodic", timer::alarm_irq0_periodic),
    case("alarm_irq0_cancel", timer::alarm_irq0_cancel),
    case("alarm_lvtt_oneshot", timer::alarm_lvtt_oneshot),
    case("alarm_lvtt_periodic", timer::alarm_lvtt_periodic),
    case("alarm_lvtt_cancel", timer::alarm_lvtt_cancel),
    case("alarm_rearm_replaces", timer::alarm_rearm_replaces),
    case("alarm_rate_irq0_100hz", timer::alarm_rate_irq0_100hz),
    case("alarm_rate_lvtt_100hz", timer::alarm_rate_lvtt_100hz),
    case("alarm_rate_irq0_1000hz", timer::alarm_rate_irq0_1000hz),
    case("alarm_rate_lvtt_1000hz", timer::alarm_rate_lvtt_1000hz),
    case("pit_rate_irq0_1000hz", timer::pit_rate_irq0_1000hz),
    case(
        "alarm_past_expiry_fires_once",
        timer::alarm_past_expiry_fires_once,
    ),
    case(
        "alarm_expired_at_cancel_delivered",
        timer::alarm_expired_at_cancel_delivered,
    ),
    case(
        "alarm_lvtt_masked_not_latched",
        timer::alarm_lvtt_masked_not_latched,
    ),
    case(
        "alarm_irq0_masked_latched",
        timer::alarm_irq0_masked_latched,
    ),
    case(
        "alarm_stolen_counter_ignored",
        timer::alarm_stolen_counter_ignored,
    ),
    case(
        "irq_pending_delivered_on_enable",
        irq::irq_pending_delivered_on_enable,
    ),
    case(
        "irq_pending_delivered_on_restore",
        irq::irq_pending_delivered_on_restore,
    ),
    case(
        "irq_lvtt_tick_with_irq0_waiting",
        irq::irq_lvtt_tick_with_irq0_waiting,
    ),
    case("irq_lvtt_tick_held_by_tpr", irq::irq_lvtt_tick_held_by_tpr),
    case(
        "irq_lvtt_changed_after_arming",
        irq::irq_lvtt_changed_after_arming,
    ),
    case(
        "irq_lvtt_gate_rewritten_after_arming",
        irq::irq_lvtt_gate_rewritten_after_arming,
    ),
    case("irq_masked_tick_delayed", irq::irq_masked_tick_delayed),
    case("irq_masked_ticks_coalesce", irq::irq_masked_ticks_coalesce),
    case("irq_eoi_without_interrupt", irq::irq_eoi_without_interrupt),
    case("irq_vector_without_gate", irq::irq_vector_without_gate),
    case(
        "irq_nested_over_user_frame",
        irq::irq_nested_over_user_frame,
    ),
    case(
        "irq_pending_at_iret_to_user",
        irq::irq_pending_at_iret_to_user,
    ),
    case(
        "irq_over_user_ldt_data_segments",
        irq::irq_over_user_ldt_data_segments,
    ),
    case("irq_mask_hypercalls", irq::irq_mask_hypercalls),
    case("halt_wakes_on_interrupt", timer::halt_wakes_on_interrupt),
    case(
        "halt_alarm_already_pending",
        timer::halt_alarm_already_pending,
    ),
    case(
        "stolen_time_monotonic_bounded",
        timer::stolen_time_monotonic_bounded,
    ),
    case("lazy_cpu_mode", cpu::lazy_cpu_mode),
    case("rom_hot_call_hypercalls", cost::hot_call_hypercalls),
    // Paging.
    case("mmu_enable_pae_paging", mmu::enable_pae_paging),
    // Ring 3's data segments at a fault on an unmapped page (paging on).
    case(
        "user_null_data_segments_page_fault",
        usermode::null_data_segments_page_fault,
    ),
    case(
        "user_ldt_data_segments_page_fault",
        usermode::ldt_data_segments_page_fault,
    ),
    case("mmu_identity_and_alias", mmu::identity_and_alias),
    case("mmu_set_pxe_long_maps_page", mmu::set_pxe_long_maps_page),
    case(
        "mmu_set_pxe_long_rom_entry_direct",
        mmu::set_pxe_long_rom_entry_direct,
    ),
    case("mmu_pte_clear_not_present", mmu::pte_clear_not_present),
    case(
        "mmu_page_fault_gate_stored_natively",
        mmu::page_fault_gate_stored_natively,
    ),
    case("mmu_page_fault_trap_gate", mmu::page_fault_trap_gate),
    case(
        "mmu_page_fault_cr2_idt_alias_not_accessed",
        mmu::page_fault_cr2_idt_alias_not_accessed,
    ),
    case(
        "mmu_page_fault_gate_stored_natively_idt_alias_not_accessed",
        mmu::page_fault_gate_stored_natively_idt_alias_not_accessed,
    ),
    case("mmu_read_only_write_faults", mmu::read_only_write_faults),
    case("mmu_cr0_wp_semantics", mmu::cr0_wp_semantics),
    case("mmu_update_pxe_long", mmu::update_pxe_long),
    case(
        "mmu_update_after_fault_interrupts_on",
        mmu::update_after_fault_interrupts_on,
    ),
    case(
        "mmu_set_after_fault_through_alias",
        mmu::set_after_fault_through_alias,
    ),
    case("mmu_set_pxe_low_half", mmu::set_pxe_low_half),
    case("mmu_update_pxe_low_half", mmu::update_pxe_low_half),
    case("mmu_accessed_dirty_bits", mmu::accessed_dirty_bits),
    case(
        "mmu_fault_with_direction_flag_set",
        mmu::fault_with_direction_flag_set,
    ),
    case("mmu_inval_page", mmu::inval_page),
    case("mmu_flush_tlb_local", mmu::flush_tlb_local),
    case("mmu_flush_tlb_global", mmu::flush_tlb_global),
    case(
        "mmu_allocate_release_page_table",
        mmu::allocate_release_page_table,
    ),
    case("mmu_clone_page_directory", mmu::clone_page_directory),
    case(
        "mmu_cr3_switch_address_spaces",
        mmu::cr3_switch_address_spaces,
    ),
    case("mmu_lazy_cpu_switch_orders", mmu::lazy_cpu_switch_orders),
    case("mmu_lazy_mode_batch", mmu::lazy_mode_batch),
    case(
        "mmu_lazy_mode_flush_before_tlb_flush",
        mmu::lazy_mode_flush_before_tlb_flush,
    ),
    case("mmu_set_linear_mapping", mmu::set_linear_mapping),
    case(
        "mmu_machine_physical_roundtrip",
        mmu::machine_physical_roundtrip,
    ),
    case("mmu_nx_execute_faults", mmu::nx_execute_faults),
    case(
        "mmu_user_supervisor_page_faults",
        mmu::user_supervisor_page_faults,
    ),
    case("mmu_rom_runs_at_alias", mmu::rom_runs_at_alias),
    case(
        "user_cannot_reach_rom_or_tables",
        isolation::user_cannot_reach_rom_or_tables,
    ),
    case("user_fault_error_codes", isolation::user_fault_error_codes),
    case(
        "mmu_protection_changes_after_flush",
        mmu::protection_changes_after_flush,
    ),
    case(
        "mmu_accessed_dirty_cleared_and_set_again",
        mmu::accessed_dirty_cleared_and_set_again,
    ),
    case("mmu_fork_clone_cow_teardown", mmu::fork_clone_cow_teardown),
    case(
        "mmu_fork_teardown_fork_forgets",
        mmu::fork_teardown_fork_forgets,
    ),
    case("mmu_lazy_batch_thousands", mmu::lazy_batch_thousands),
    case("mmu_hypercall_counts", mmu::hypercall_counts),
    case(
        "mmu_user_cannot_read_rom_or_page_tables",
        mmu::user_cannot_read_rom_or_page_tables,
    ),
    case("mmu_bad_frame_reads_empty", mmu::bad_frame_reads_empty),
    case(
        "mmu_page_table_mapped_writable",
        mmu::page_table_mapped_writable,
    ),
    case("mmu_release_live_table", mmu::release_live_table),
    case("mmu_lazy_mode_nested", mmu::lazy_mode_nested),
    case("mmu_lazy_mode_undefined", mmu::lazy_mode_undefined),
    case(
        "mmu_cr3_low_bits_unaligned_pdpt",
        mmu::cr3_low_bits_unaligned_pdpt,
    ),
    case(
        "user_cannot_touch_tables_exact_codes",
        isolation::user_cannot_touch_tables_exact_codes,
    ),
    case("crash_mmu_bad_cr3", mmu::crash_bad_cr3),
    case("crash_mmu_cr3_not_ram", mmu::crash_cr3_not_ram),
    case("crash_mmu_cr3_garbage", mmu::crash_cr3_garbage),
];

static CASE_CONTEXT: Global<Context> = Global::new(Context::new());
static CASE_RUNNING: AtomicBool = AtomicBool::new(false);
static ABORT: Global<Option<Text>> = Global::new(None);
static OUTCOME: Global<Option<Outcome>> = Global::new(None);
const ABORTED: u32 = 0xAB0F_0000;

/// Ends the running case with FAIL `why` (an exception it did not expect, a
/// panic). Outside a case the kernel cannot go on: ERROR and power-off.
pub fn abort_current(why: Text) -> ! {
    if CASE_RUNNING.swap(false, Ordering::SeqCst) {
        ABORT.with(|a| *a = Some(why));
        // SAFETY: CASE_CONTEXT is armed by run_one while a case runs; this
        // code runs on top of that case's frames.
        unsafe { resume(CASE_CONTEXT.as_ptr(), ABORTED) };
    }
    kprintln!("vmi-guest: {why}");
    kprintln!("Test result: ERROR");
    crate::kmain::power_off()
}

/// Runs one case: an exception it did not expect (or a panic) fails it
/// and the kernel carries on.
pub(crate) fn run_one(case: &Case) -> Outcome {
    OUTCOME.with(|o| *o = None);
    ABORT.with(|a| *a = None);
    CASE_RUNNING.store(true, Ordering::SeqCst);
    let run = case.run;
    // SAFETY: CASE_CONTEXT is armed for this call only; abort_current
    // resumes it with ABORTED.
    let value = unsafe {
        call_with_recovery(CASE_CONTEXT.as_ptr(), || {
            let outcome = run();
            OUTCOME.with(|o| *o = Some(outcome));
            0
        })
    };
    CASE_RUNNING.store(false, Ordering::SeqCst);
    if value == ABORTED {
        crate::user::reset_after_abort();
        crate::trap::reset_after_abort();
        crate::pv::irq_disable();
        // A case that was cut short may have left a table of its own
        // loaded: the next cases run with the kernel's own IDT again.
        crate::pv::set_idt(&crate::desc::idt_pointer());
        let why = ABORT.with(|a| a.take()).unwrap_or_default();
        return Outcome {
            status: Status::Fail,
            detail: why,
        };
    }
    OUTCOME
        .with(|o| o.take())
        .unwrap_or_else(|| Outcome::fail(format_args!("case returned no outcome")))
}

/// Runs `first`, then the suite (those whose name contains `only=` from
/// the command line, or one of its `|`-separated parts, if given) and
/// returns the verdict word.
pub fn run_all(boot: &BootInfo, first: &[Case]) -> &'static str {
    let only = boot.option("only");
    let selected = |name: &str| only.is_none_or(|o| o.split('|').any(|part| name.contains(part)));
    let (mut passed, mut failed, mut skipped) = (0u32, 0u32, 0u32);
    // The run's length in processor cycles (deterministic under QEMU's
    // -icount): the figure runs on different platforms are compared by.
    let start = crate::pv::rdtsc();
    for case in first.iter().chain(ALL) {
        if !selected(case.name) {
            continue;
        }
        crate::pv::irq_disable();
        // A case whose outcome may be the end of the run (a platform may
        // stop a kernel that does something invalid) runs only when the
        // command line names it exactly.
        let outcome = if case.name.starts_with("crash_") && only != Some(case.name) {
            Outcome::skip(format_args!(
                "may end the run on purpose: run alone with only={}",
                case.name
            ))
        } else {
            run_one(case)
        };
        crate::pv::irq_disable();
        let word = match outcome.status {
            Status::Pass => {
                passed += 1;
                "PASS"
            }
            Status::Fail => {
                failed += 1;
                "FAIL"
            }
            Status::Skip => {
                skipped += 1;
                "SKIP"
            }
        };
        kprintln!("case {}: {} {}", case.name, word, outcome.detail);
    }
    let cycles = crate::pv::rdtsc().wrapping_sub(start);
    kprintln!("cases: {passed} passed, {failed} failed, {skipped} skipped ({cycles} cycles)");
    if failed > 0 {
        "FAILURE"
    } else if passed == 0 {
        "SKIP"
    } else {
        "SUCCESS"
    }
}
