//! The direct-PV benchmark kernel: the benchmarks of `bench_core` on a
//! platform layer that calls Xen itself, as XenLinux does (machine frames
//! in page-table entries, pinned read-only page tables, `mmu_update` and
//! `mmuext_op` batched in multicalls in lazy modes, the upcall mask in
//! `vcpu_info` as the interrupt flag, `set_trap_table`, `stack_switch`,
//! a native IRET with the mask restored). It is the bar the VMI ROM is
//! measured against: the same benchmark code, kernel services and ring-3
//! loops as the generic VMI guest, with this kernel's platform instead of
//! the VMI calls.
//!
//! A 32-bit PAE PV image (Xen ELF notes; VIRT_BASE 0, so virtual =
//! pseudo-physical), booted as dom0 (`runner --dom0 --pv-image ...`) or as
//! a domU. Command line: `bench=all|NAME,...`, `bench_reps=N`,
//! `bench_ops=N`; output: the project's protocol lines, then the verdict.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod events;
#[cfg(target_os = "none")]
mod hv;
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
mod mm;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod traps;

/// A host build only exists so that workspace-wide host checks can run;
/// the kernel is the i686 image built by tools/build-images.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pv-bench-guest is an i686 PV kernel image: build it with tools/build-images");
}
