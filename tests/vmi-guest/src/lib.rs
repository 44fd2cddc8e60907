//! The generic VMI guest: a kernel that knows only the VMI ABI (API 3.0, as
//! Linux's CONFIG_VMI used it) and the PC it boots on.
//!
//! This library is the kernel. Two packagings boot it: `vmi-guest`, a
//! multiboot kernel (src/main.rs), and `vmi-guest-bzimage`, a bzImage
//! entered by the Linux 32-bit boot protocol that first does a Linux-style
//! early boot (src/bin/bzimage/). Either way the kernel sets up its own GDT,
//! IDT and TSS, looks for a VMI ROM exactly as Linux does (0xC0000-0xE0000
//! in 2 KiB steps, [`vmi_abi::check_rom`]), and if one is accepted calls
//! VMI_Init, asks GetRelocationInfo for every call and honours the answers
//! the way Linux's paravirt patching does. From then on every privileged
//! operation goes through [`pv`], the platform ops table: a VMI call, a
//! patched inline site, or (without a ROM) the native instruction. Port I/O
//! stays native, as in Linux's VMI kernels (only the `io_port_calls_*`
//! cases use the VMI port calls, to check them against the instructions).
//!
//! Before activation, like Linux's early boot, the kernel runs natively:
//! CLI, LGDT/LIDT/LTR, segment loads, CR0 reads and writes, port I/O to the
//! UART, the 8259s and the 8254, and reads of the option ROM area (with
//! paging off in the multiboot packaging; the bzImage packaging turns
//! paging on natively first). A hypervisor's ROM must let those through or
//! emulate them.
//!
//! It then runs the conformance cases ([`cases`]) and prints the project's
//! output protocol: `case NAME: PASS|FAIL|SKIP detail` per case, one
//! `Test result: ...` line, then powers off (VMI Shutdown with a ROM; the
//! isa-debug-exit port natively).
//!
//! Command line: `vmi=off` ignores any ROM; `only=TEXT` runs the cases
//! whose names contain TEXT; `exit=reboot` ends with a reboot instead of a
//! power-off; `bench=all` or `bench=NAME,...` runs benchmarks instead of
//! the cases ([`bench`]; `bench_reps=N`, `bench_ops=N`); `stress=N` runs
//! the stress instead ([`stress`]: N page table updates, address space
//! churn and a timer storm; `stress_spaces=N`, `stress_seed=N`).
#![cfg_attr(target_os = "none", no_std)]
// The library is the kernel of the two packagings, not an API: its public
// items are shared with them only, and Debug output of pages, tables and
// stacks would only add formatting code to the images.
#![allow(missing_debug_implementations)]

#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod cases;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod desc;
#[cfg(target_os = "none")]
pub mod kmain;
#[cfg(target_os = "none")]
pub mod mm;
#[cfg(target_os = "none")]
pub mod pic;
#[cfg(target_os = "none")]
pub mod probe;
#[cfg(target_os = "none")]
pub mod pv;
#[cfg(target_os = "none")]
#[cfg(target_os = "none")]
pub mod stress;
#[cfg(target_os = "none")]
pub mod sync;
#[cfg(target_os = "none")]
pub mod trap;
#[cfg(target_os = "none")]
pub mod user;
