//! `runner`: boot a guest under QEMU (bare, or on Xen as a domU or dom0),
//! stream its console, read its verdict and write reports. `tools/run`
//! builds what is stale and then calls this; see `runner --help`.

mod batch;
mod cpio;
mod domu;
mod protocol;
mod qemu;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use protocol::Verdict;

const USAGE: &str = "\
usage: runner [run] [options]        boot a guest and report its verdict
       runner parity A.json B.json   compare two reports' cases and statuses
       runner batch FILE.json        several domUs in one boot (see batch.rs)

modes (default --domu):
  --domu               Xen under QEMU with a Linux dom0 (tools/dom0/build) that
                       runs `xl create` of a domU: the PV image as kernel=,
                       the VMI kernel as ramdisk=
  --dom0               Xen under QEMU, the PV image as dom0
  --native             bare QEMU (no Xen): the VMI guest by QEMU's -kernel
                       (multiboot or bzImage), with the native VMI ROM as an
                       option ROM
  --no-rom             with --native: no option ROM at all
options:
  --icount             deterministic guest time (-icount shift=0)
  --json FILE          write the JSON report
  --junit FILE         write a JUnit XML report
  --timeout S          kill the run after S seconds (default 60; --domu: the
                       domU is destroyed S s after xl create, default 120):
                       verdict CRASH
  --quiet              print only the summary (and the console tail on failure)
  --xen FILE           hypervisor binary (default .cache/xen/xen-pv32)
  --pv-image FILE      PV image (default out/xen-vmi-rom.elf)
  --kernel FILE        VMI guest kernel (default out/vmi-guest.elf; with --dom0
                       it is loaded through the ROM, without it the PV image
                       runs its own Xen self-test): multiboot, ELF or bzImage
  --initrd FILE        the kernel's initrd (QEMU's -initrd natively; on Xen
                       bundled with the kernel into the one module the PV
                       image gets, docs/boot-contract.md)
  --pv-selftest        --domu: no VMI kernel, the PV image's own self-test
  --shared-cpu         --domu: one CPU for Xen, shared by dom0 and the domU
                       (default two: dom0 rarely preempts the domU)
  --option-rom FILE    native VMI ROM (default out/native-vmi.rom)
  --cmdline TEXT       guest command line
  --qemu-arg ARG       --dom0/--native: one more QEMU argument, appended last
                       (repeatable; tools/profile uses it)
  --memory MB          guest memory in MiB (default 64)
  --dom0-kernel FILE   --domu: dom0's kernel (default out/dom0/vmlinuz)
  --dom0-initrd FILE   --domu: dom0's initramfs (default out/dom0/initrd.gz)
exit codes: 0 SUCCESS, 3 SKIP, 4 ERROR, 5 FAILURE, 6 CRASH, 2 usage error";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("parity") => parity_cmd(&args[1..]),
        Some("run") => run_cmd(&args[1..]),
        Some("batch") => batch::batch_cmd(&args[1..]),
        Some("--help" | "-h") => {
            println!("{USAGE}");
            0
        }
        _ => run_cmd(&args),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

pub(crate) fn usage_error(msg: &str) -> i32 {
    eprintln!("runner: {msg}\n{USAGE}");
    2
}

fn parity_cmd(args: &[String]) -> i32 {
    let [a, b] = args else {
        return usage_error("parity takes two report files");
    };
    let load = |p: &str| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{p}: not JSON: {e}"))
    };
    let result = load(a).and_then(|va| load(b).and_then(|vb| report::parity(&va, &vb)));
    match result {
        Err(e) => {
            eprintln!("runner: parity: {e}");
            4
        }
        Ok(diffs) if diffs.is_empty() => {
            println!("parity: {a} and {b} agree");
            0
        }
        Ok(diffs) => {
            for d in &diffs {
                println!("parity: {d}");
            }
            println!("parity: {} difference(s) between {a} and {b}", diffs.len());
            5
        }
    }
}

fn run_cmd(args: &[String]) -> i32 {
    let mut cfg = qemu::RunConfig::default();
    let mut json_out: Option<PathBuf> = None;
    let mut junit_out: Option<PathBuf> = None;
    let mut pv_selftest = false;
    let mut timeout_given = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<String, i32> {
            it.next()
                .cloned()
                .ok_or_else(|| usage_error(&format!("{name} needs a value")))
        };
        let r: Result<(), i32> = (|| {
            match arg.as_str() {
                "--dom0" => cfg.mode = qemu::Mode::Dom0,
                "--domu" => cfg.mode = qemu::Mode::Domu,
                "--pv-selftest" => pv_selftest = true,
                "--shared-cpu" => cfg.shared_cpu = true,
                "--dom0-kernel" => cfg.dom0_kernel = value("--dom0-kernel")?.into(),
                "--dom0-initrd" => cfg.dom0_initrd = value("--dom0-initrd")?.into(),
                "--native" => cfg.mode = qemu::Mode::Native,
                "--no-rom" => cfg.no_rom = true,
                "--icount" => cfg.icount = true,
                "--quiet" => cfg.quiet = true,
                "--json" => json_out = Some(value("--json")?.into()),
                "--junit" => junit_out = Some(value("--junit")?.into()),
                "--timeout" => {
                    let v = value("--timeout")?;
                    timeout_given = true;
                    cfg.timeout_s = v
                        .parse()
                        .map_err(|_| usage_error(&format!("--timeout {v:?} is not a number")))?;
                }
                "--memory" => {
                    let v = value("--memory")?;
                    cfg.memory_mb = v
                        .parse()
                        .ok()
                        .filter(|&m| (4..=3072).contains(&m))
                        .ok_or_else(|| {
                            usage_error(&format!("--memory {v:?}: want 4..3072 (MiB)"))
                        })?;
                }
                "--xen" => cfg.xen = value("--xen")?.into(),
                "--pv-image" => cfg.pv_image = value("--pv-image")?.into(),
                "--kernel" => {
                    cfg.kernel = value("--kernel")?.into();
                    cfg.kernel_given = true;
                }
                "--initrd" => cfg.initrd = Some(value("--initrd")?.into()),
                "--option-rom" => cfg.option_rom = value("--option-rom")?.into(),
                "--cmdline" => cfg.cmdline = value("--cmdline")?,
                "--qemu-arg" => cfg.qemu_extra.push(value("--qemu-arg")?),
                other => return Err(usage_error(&format!("unknown argument {other:?}"))),
            }
            Ok(())
        })();
        if let Err(code) = r {
            return code;
        }
    }
    if !cfg.qemu_extra.is_empty() && cfg.mode == qemu::Mode::Domu {
        return usage_error(
            "--qemu-arg only works with --dom0 or --native (the domU mode boots a dom0 first)",
        );
    }
    if cfg.no_rom && cfg.mode != qemu::Mode::Native {
        return usage_error("--no-rom only makes sense with --native");
    }
    if cfg.initrd.is_some() && cfg.mode != qemu::Mode::Native && !cfg.kernel_given {
        return usage_error("--initrd on Xen needs the --kernel it belongs to");
    }
    if pv_selftest && cfg.mode != qemu::Mode::Domu {
        return usage_error("--pv-selftest only makes sense with --domu");
    }
    if cfg.shared_cpu && cfg.mode != qemu::Mode::Domu {
        return usage_error("--shared-cpu only makes sense with --domu");
    }
    if pv_selftest && cfg.kernel_given {
        return usage_error("--pv-selftest boots no VMI kernel: drop --kernel");
    }
    if cfg.mode == qemu::Mode::Domu {
        let timeout_s = if timeout_given { cfg.timeout_s } else { 120.0 };
        // The initrd travels with the kernel in the one module xl gives
        // the PV image (its ramdisk=), as on dom0.
        let mut cfg = cfg.clone();
        let _bundle = match cfg.initrd.take() {
            Some(initrd) => match qemu::Bundle::write(&cfg.kernel, &initrd) {
                Ok(b) => {
                    cfg.kernel = b.path().to_path_buf();
                    Some(b)
                }
                Err(e) => {
                    eprintln!("runner: {e}");
                    return Verdict::Error.exit_code();
                }
            },
            None => None,
        };
        return batch::single_domu(&cfg, pv_selftest, timeout_s, json_out, junit_out);
    }

    let outcome = match qemu::run(&cfg) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("runner: {e}");
            return Verdict::Error.exit_code();
        }
    };
    let report = report::Report {
        platform: cfg.platform_name(),
        transcript: &outcome.transcript,
        verdict: outcome.verdict,
        runner_note: outcome.note.clone(),
        seconds: outcome.seconds,
    };
    let mut write_failed = false;
    if let Some(p) = &json_out {
        let text = serde_json::to_string_pretty(&report.to_json()).expect("JSON of a Value");
        if let Err(e) = std::fs::write(p, text + "\n") {
            eprintln!("runner: cannot write {}: {e}", p.display());
            write_failed = true;
        }
    }
    if let Some(p) = &junit_out {
        if let Err(e) = std::fs::write(p, report.to_junit()) {
            eprintln!("runner: cannot write {}: {e}", p.display());
            write_failed = true;
        }
    }
    let t = &outcome.transcript;
    let count = |s| t.cases.iter().filter(|c| c.status == s).count();
    println!(
        "runner: {} on {}: {} cases ({} pass, {} fail, {} skip) in {:.1} s{}",
        outcome.verdict,
        cfg.platform_name(),
        t.cases.len(),
        count(protocol::CaseStatus::Pass),
        count(protocol::CaseStatus::Fail),
        count(protocol::CaseStatus::Skip),
        outcome.seconds,
        outcome
            .note
            .as_ref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default()
    );
    for p in &t.problems {
        println!("runner: problem in the guest's output: {p}");
    }
    if write_failed {
        return Verdict::Error.exit_code().max(outcome.verdict.exit_code());
    }
    outcome.verdict.exit_code()
}
