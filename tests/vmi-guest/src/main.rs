//! The generic VMI guest: a kernel that knows only the VMI ABI (API 3.0, as
//! Linux's CONFIG_VMI used it) and the PC it boots on.
//!
//! Booted by multiboot (QEMU `-kernel`), it sets up its own GDT, IDT and
//! TSS, looks for a VMI ROM exactly as Linux does (0xC0000-0xE0000 in 2 KiB
//! steps, [`vmi_abi::check_rom`]), and if one is accepted calls VMI_Init,
//! asks GetRelocationInfo for every call and honours the answers the way
//! Linux's paravirt patching does. From then on every privileged operation
//! goes through [`pv`], the platform ops table: a VMI call, a patched inline
//! site, or (without a ROM) the native instruction. Port I/O stays native,
//! as in Linux's VMI kernels (only the `io_port_calls_*` cases use the VMI
//! port calls, to check them against the instructions).
//!
//! Before activation, like Linux's early boot, the kernel runs natively:
//! CLI, LGDT/LIDT/LTR, segment loads, CR0 reads and writes, port I/O to the
//! UART, the 8259s and the 8254, and reads of the option ROM area, all with
//! paging off. A hypervisor's ROM must let those through or emulate them.
//!
//! It then runs the conformance cases ([`cases`]) and prints the project's
//! output protocol: `case NAME: PASS|FAIL|SKIP detail` per case, one
//! `Test result: ...` line, then powers off (VMI Shutdown with a ROM; the
//! isa-debug-exit port natively).
//!
//! Command line (multiboot): `vmi=off` ignores any ROM; `only=TEXT` runs the
//! cases whose names contain TEXT; `exit=reboot` ends with a reboot instead
//! of a power-off; `bench=all` or `bench=NAME,...` runs benchmarks instead
//! of the cases ([`bench`]; `bench_reps=N`, `bench_ops=N`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod cases;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod desc;
#[cfg(target_os = "none")]
mod kmain;
#[cfg(target_os = "none")]
mod mm;
#[cfg(target_os = "none")]
mod pic;
#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod pv;
#[cfg(target_os = "none")]
mod recovery;
#[cfg(target_os = "none")]
mod sync;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod user;

/// A host build only exists so that workspace-wide host checks can run;
/// the kernel is the i686 image built by tools/build-images.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("vmi-guest is an i686 kernel image: build it with tools/build-images");
}
