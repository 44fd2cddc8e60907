//! The benchmarks of the project's scoreboard, shared by every kernel that
//! runs them: the generic VMI guest (its platform is the VMI ROM, or the
//! native instructions) and the direct-PV kernel (which calls its
//! hypervisor itself). The same benchmark code, kernel services and ring-3
//! loops run on each; only the [`Platform`] (the privileged operations)
//! differs.
//!
//! * [`platform`]: the [`Platform`] and [`UserFrame`] traits;
//! * [`benches`]: the benchmarks, their table and the figures they report;
//! * [`kernel`]: what the kernel does for a trap from ring 3 during a
//!   benchmark (system calls, signals, faults, process switches);
//! * [`user`]: the ring-3 loops and the user region's layout;
//! * [`frames`]: the frame pool, so repetitions reuse memory.
//!
//! Output protocol (the project's): one line per benchmark,
//! `case bench_NAME: PASS cycles_per_op=X hypercalls_per_op=Y ops=N reps=R
//! cycles=C1,... hypercalls=H1,...` (medians per operation, then the totals
//! per repetition; `-` for hypercalls where the platform cannot count
//! them), or `case bench_NAME: FAIL why`.
#![cfg_attr(not(test), no_std)]
// A failure carries its reason as a fixed-size text by value (no
// allocator in these kernels); failures are the cold path.
#![allow(clippy::result_large_err)]

pub mod benches;
pub mod frames;
pub mod kernel;
pub mod platform;
#[cfg(target_arch = "x86")]
pub mod recovery;
pub mod sync;
pub mod text;
pub mod user;

pub use benches::{Config, Figures, BENCHES};
pub use platform::{Frame, Lazy, Mapped, Platform, SpaceId, UserExit, UserFrame, UserState};
pub use text::{Text, TextBuf};

/// The configuration from the values of the command line's `bench_reps=`
/// and `bench_ops=` options (defaults where absent or not a number).
pub fn config_from(bench_reps: Option<&str>, bench_ops: Option<&str>) -> Config {
    let mut cfg = Config::default();
    if let Some(r) = bench_reps.and_then(|v| v.parse::<usize>().ok()) {
        cfg.reps = r.clamp(1, benches::MAX_REPS);
    }
    if let Some(n) = bench_ops.and_then(|v| v.parse::<u32>().ok()) {
        cfg.ops = Some(n.max(1));
    }
    cfg
}

/// Runs the benchmarks `selection` names (`all`, or names separated by
/// commas), printing one protocol line each; an unknown name is a FAIL
/// line of its own. Returns (passed, failed). For kernels without a case
/// runner of their own (the generic VMI guest runs each benchmark as a
/// case, so that an unexpected exception fails just that one).
pub fn run_selected<P: Platform>(p: &mut P, selection: &str, cfg: &Config) -> (u32, u32) {
    let (mut passed, mut failed) = (0, 0);
    for name in benches::unknown_names(selection) {
        p.print(format_args!(
            "case bench_{name}: FAIL no such benchmark (bench= takes all or names from: {})\n",
            NameList
        ));
        failed += 1;
    }
    for (i, b) in BENCHES.iter().enumerate() {
        if !benches::selected(selection, b.name) {
            continue;
        }
        match benches::run(p, i, cfg) {
            Ok(fig) => {
                p.print(format_args!("case bench_{}: PASS {fig}\n", b.name));
                passed += 1;
            }
            Err(why) => {
                p.print(format_args!("case bench_{}: FAIL {why}\n", b.name));
                failed += 1;
            }
        }
    }
    (passed, failed)
}

/// The benchmark names, comma separated.
#[derive(Debug)]
pub struct NameList;

impl core::fmt::Display for NameList {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in BENCHES.iter().enumerate() {
            write!(f, "{}{}", if i > 0 { "," } else { "" }, b.name)?;
        }
        Ok(())
    }
}
