//! The benchmarks (`bench=all` or `bench=NAME,...` on the command line,
//! with `bench_reps=N` timed repetitions and `bench_ops=N` operations
//! each): the shared benchmark code of `bench_core` on this kernel's
//! platform ([`platform::VmiPlatform`]).
//!
//! Each benchmark runs as a case of the conformance runner (an exception
//! it did not expect fails that benchmark only) and prints the project's
//! protocol line, `case bench_NAME: PASS ops=... cycles=... hypercalls=...`.
//! The conformance cases do not run in this mode.

pub(crate) mod platform;

use core::sync::atomic::{AtomicUsize, Ordering};

use bench_core::{Config, Figures, BENCHES};

use crate::boot::BootInfo;
use crate::cases::{self, Case, Outcome, Status};
use crate::console::kprintln;
use crate::sync::Global;
use crate::{mm, pv, user};

use platform::VmiPlatform;

static SELECTED: AtomicUsize = AtomicUsize::new(0);
static CONFIG: Global<Config> = Global::new(Config { reps: 1, ops: None });
static FIGURES: Global<Option<Figures>> = Global::new(None);

/// Runs the selected benchmark as a case: its figures are kept for the
/// protocol line, which is longer than a case detail.
fn run_selected() -> Outcome {
    let index = SELECTED.load(Ordering::SeqCst);
    let cfg = CONFIG.with(|c| *c);
    match bench_core::benches::run(&mut VmiPlatform, index, &cfg) {
        Ok(fig) => {
            FIGURES.with(|f| *f = Some(fig));
            Outcome::pass(format_args!(""))
        }
        Err(why) => Outcome::fail(format_args!("{why}")),
    }
}

/// Back to the kernel's address space and stack, out of any lazy mode,
/// after a benchmark (one cut short by an exception may have left them).
fn restore_kernel_state() {
    use bench_core::Platform;
    let mut p = VmiPlatform;
    p.set_lazy(bench_core::Lazy::None);
    let (home, stack) = (p.kernel_space(), p.default_kernel_stack());
    p.switch_space(home);
    p.set_kernel_stack(stack);
    p.irq_disable();
}

/// Runs the benchmarks `selection` names and returns the verdict word.
pub fn run_all(boot: &BootInfo, selection: &str) -> &'static str {
    if !mm::paging_on() {
        let edx = pv::cpuid(1, 0)[3];
        if edx & (1 << 6) == 0 {
            kprintln!("bench: no PAE (CPUID.1:EDX.PAE clear): the benchmarks need it");
            return "SKIP";
        }
        mm::enable_paging(edx & (1 << 13) != 0);
    }
    platform::init();
    let cfg = bench_core::config_from(boot.option("bench_reps"), boot.option("bench_ops"));
    CONFIG.with(|c| *c = cfg);
    kprintln!(
        "bench: {} timed repetitions, {} operations each, cycle counter at {} Hz",
        cfg.reps,
        cfg.ops
            .map_or(bench_core::Text::from_fmt(format_args!("default")), |n| {
                bench_core::Text::from_fmt(format_args!("{n}"))
            }),
        pv::cycle_frequency()
    );
    user::set_service(Some(user::Service::Bench));
    let (mut passed, mut failed) = (0u32, 0u32);
    for name in bench_core::benches::unknown_names(selection) {
        kprintln!(
            "case bench_{name}: FAIL no such benchmark (bench= takes all or names from: {})",
            bench_core::NameList
        );
        failed += 1;
    }
    for (i, b) in BENCHES.iter().enumerate() {
        if !bench_core::benches::selected(selection, b.name) {
            continue;
        }
        SELECTED.store(i, Ordering::SeqCst);
        FIGURES.with(|f| *f = None);
        let outcome = cases::run_one(&Case {
            name: b.name,
            run: run_selected,
        });
        restore_kernel_state();
        match (outcome.status, FIGURES.with(|f| f.take())) {
            (Status::Pass, Some(fig)) => {
                kprintln!("case bench_{}: PASS {fig}", b.name);
                passed += 1;
            }
            _ => {
                kprintln!("case bench_{}: FAIL {}", b.name, outcome.detail);
                failed += 1;
            }
        }
    }
    user::set_service(None);
    platform::finish();
    kprintln!("benchmarks: {passed} passed, {failed} failed");
    if failed > 0 {
        "FAILURE"
    } else if passed == 0 {
        "SKIP"
    } else {
        "SUCCESS"
    }
}
