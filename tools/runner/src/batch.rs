//! The domU mode's commands: one domU (`runner [--domu] ...`, tools/run's
//! default), and a batch of domU scenarios in one boot (`runner batch
//! FILE.json`, for tools/test), each with its own verdict and reports.
//!
//! A batch file:
//!
//! ```json
//! {"steps": [
//!   {"domu": {"name": "guest", "kernel": "out/vmi-guest.elf", "cmdline": "",
//!             "memory": 64, "timeout": 120, "json": "a.json", "junit": "a.xml",
//!             "log": "a.log"}},
//!   {"parallel": [{"name": "p1", ...}, {"name": "p2", ...}]},
//!   {"cycles": 10, "domu": {"name": "cyc", ...}, "json": "cycles.json"}
//! ]}
//! ```
//!
//! `kernel` defaults to out/vmi-guest.elf; `null` boots the PV image's own
//! self-test. A batch exits 0 when every domU ran to an end (whatever its
//! verdict: the reports say), 4 for bad input, 6 when the boot itself died.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::domu::{self, DomuRun, DomuSpec, Machine, Step};
use crate::protocol::Verdict;
use crate::qemu::RunConfig;
use crate::report::Report;

fn machine(cfg: &RunConfig) -> Machine {
    Machine {
        xen: cfg.xen.clone(),
        dom0_kernel: cfg.dom0_kernel.clone(),
        dom0_initrd: cfg.dom0_initrd.clone(),
        pv_image: cfg.pv_image.clone(),
        icount: cfg.icount,
        quiet: cfg.quiet,
        shared_cpu: cfg.shared_cpu,
    }
}

/// A domain name from a kernel's file name ("vmi-guest" for vmi-guest.elf).
pub fn name_from(kernel: Option<&Path>) -> String {
    let stem = kernel
        .and_then(|k| k.file_stem())
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_else(|| "xen-vmi-rom".into());
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(32)
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "k-");
    }
    name
}

/// Writes the reports a spec asks for; false if one could not be written.
fn write_reports(spec: &DomuSpec, d: &DomuRun, verdict: Verdict, note: Option<&str>) -> bool {
    let report = Report {
        platform: "xen-domU",
        transcript: &d.transcript,
        verdict,
        runner_note: note.map(str::to_string),
        seconds: d.seconds(),
    };
    let mut ok = true;
    let mut write = |p: &PathBuf, text: String| {
        if let Err(e) = std::fs::write(p, text) {
            eprintln!("runner: cannot write {}: {e}", p.display());
            ok = false;
        }
    };
    if let Some(p) = &spec.json {
        let mut v = report.to_json();
        v["name"] = json!(d.name);
        if let Some(end) = &d.end {
            v["end"] = json!(end);
        }
        write(
            p,
            serde_json::to_string_pretty(&v).expect("JSON of a Value") + "\n",
        );
    }
    if let Some(p) = &spec.junit {
        write(p, report.to_junit());
    }
    if let Some(p) = &spec.log {
        let mut text = d.lines.join("\n");
        text.push('\n');
        if let Some(n) = note {
            text += &format!("runner: {verdict}: {n}\n");
        }
        write(p, text);
    }
    ok
}

fn print_tail(lines: &[String]) {
    println!("runner: last {} console lines:", lines.len());
    for l in lines {
        println!("  | {l}");
    }
}

/// `runner [--domu] [--kernel F] ...`: one domU, its verdict as the exit code.
pub fn single_domu(
    cfg: &RunConfig,
    pv_selftest: bool,
    timeout_s: f64,
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
) -> i32 {
    let kernel = (!pv_selftest).then(|| cfg.kernel.clone());
    let mut cmdline = cfg.cmdline.clone();
    if pv_selftest {
        // The self-test compares start_info's page count with this.
        cmdline = format!("xen.mem_mb={} {cmdline}", cfg.memory_mb)
            .trim()
            .to_string();
    }
    let spec = DomuSpec {
        name: name_from(kernel.as_deref()),
        kernel,
        cmdline,
        memory_mb: cfg.memory_mb,
        timeout_s: timeout_s.ceil().max(1.0) as u32,
        json,
        junit,
        log: None,
    };
    let steps = [Step::One(spec.clone())];
    let outcome = match domu::run(&machine(cfg), &steps) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("runner: {e}");
            return Verdict::Error.exit_code();
        }
    };
    let d = outcome.watch.get(&spec.name).expect("the spec's domU");
    let (verdict, mut note) = d.verdict();
    if d.end.is_none() {
        if let Some(p) = &outcome.problem {
            note = Some(p.clone());
        }
    }
    let write_ok = write_reports(&spec, d, verdict, note.as_deref());
    if verdict == Verdict::Crash || (cfg.quiet && verdict != Verdict::Success) {
        print_tail(if d.lines.is_empty() {
            &outcome.watch.tail
        } else {
            d.tail()
        });
    }
    println!(
        "runner: {} on xen-domU{} (the whole run {:.1} s)",
        verdict,
        domu::summary(d, verdict, note.as_deref())
            .split_once(':')
            .map(|(_, rest)| format!(":{rest}"))
            .unwrap_or_default(),
        outcome.seconds
    );
    for p in &d.transcript.problems {
        println!("runner: problem in the guest's output: {p}");
    }
    if write_ok {
        verdict.exit_code()
    } else {
        Verdict::Error.exit_code().max(verdict.exit_code())
    }
}

fn parse_spec(v: &Value) -> Result<DomuSpec, String> {
    let obj = v.as_object().ok_or("a domU must be a JSON object")?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a domU needs a \"name\"")?;
    let mut spec = DomuSpec::new(name);
    for (k, val) in obj {
        let path = || -> Result<PathBuf, String> {
            val.as_str()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{name}: {k} must be a string"))
        };
        let num = || -> Result<u32, String> {
            val.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("{name}: {k} must be a number"))
        };
        match k.as_str() {
            "name" => {}
            "kernel" => spec.kernel = if val.is_null() { None } else { Some(path()?) },
            "cmdline" => {
                spec.cmdline = val
                    .as_str()
                    .ok_or_else(|| format!("{name}: cmdline must be a string"))?
                    .to_string()
            }
            "memory" => spec.memory_mb = num()?,
            "timeout" => spec.timeout_s = num()?,
            "json" => spec.json = Some(path()?),
            "junit" => spec.junit = Some(path()?),
            "log" => spec.log = Some(path()?),
            other => return Err(format!("{name}: unknown field {other:?}")),
        }
    }
    Ok(spec)
}

/// The steps of a batch file.
pub fn parse_batch(text: &str) -> Result<Vec<Step>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let steps = v
        .get("steps")
        .and_then(Value::as_array)
        .ok_or("a batch needs \"steps\": [...]")?;
    steps
        .iter()
        .map(|s| {
            if let Some(d) = s.get("parallel") {
                let ds = d.as_array().ok_or("\"parallel\" must be a list")?;
                Ok(Step::Parallel(
                    ds.iter().map(parse_spec).collect::<Result<_, _>>()?,
                ))
            } else if let Some(n) = s.get("cycles") {
                let count = n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or("\"cycles\" must be a positive number")?;
                let domu = parse_spec(s.get("domu").ok_or("cycles need a \"domu\"")?)?;
                let json = s.get("json").and_then(Value::as_str).map(PathBuf::from);
                Ok(Step::Cycles { count, domu, json })
            } else if let Some(d) = s.get("domu") {
                Ok(Step::One(parse_spec(d)?))
            } else {
                Err(format!("unknown step {s}"))
            }
        })
        .collect()
}

/// `runner batch FILE.json [options]`: the options of the domU mode that
/// concern the machine (--xen, --pv-image, --dom0-*, --icount,
/// --shared-cpu, --quiet).
pub fn batch_cmd(args: &[String]) -> i32 {
    let Some((file, rest)) = args.split_first() else {
        return crate::usage_error("batch takes a file");
    };
    let mut cfg = RunConfig::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(a.clone());
        let r = match a.as_str() {
            "--quiet" => {
                cfg.quiet = true;
                Ok(())
            }
            "--icount" => {
                cfg.icount = true;
                Ok(())
            }
            "--shared-cpu" => {
                cfg.shared_cpu = true;
                Ok(())
            }
            "--xen" => value().map(|v| cfg.xen = v.into()),
            "--pv-image" => value().map(|v| cfg.pv_image = v.into()),
            "--dom0-kernel" => value().map(|v| cfg.dom0_kernel = v.into()),
            "--dom0-initrd" => value().map(|v| cfg.dom0_initrd = v.into()),
            other => return crate::usage_error(&format!("batch: unknown argument {other:?}")),
        };
        if let Err(flag) = r {
            return crate::usage_error(&format!("{flag} needs a value"));
        }
    }
    let steps = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| parse_batch(&t))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("runner: batch {file}: {e}");
            return Verdict::Error.exit_code();
        }
    };
    let outcome = match domu::run(&machine(&cfg), &steps) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("runner: {e}");
            return Verdict::Error.exit_code();
        }
    };
    let w = &outcome.watch;
    let mut all_ended = true;
    let mut write_ok = true;
    for step in &steps {
        let specs = step.domus();
        let mut runs = Vec::new();
        for spec in &specs {
            let d = w.get(&spec.name).expect("a domU of the steps");
            let (verdict, note) = d.verdict();
            all_ended &= d.end.is_some();
            write_ok &= write_reports(spec, d, verdict, note.as_deref());
            println!("runner: {}", domu::summary(d, verdict, note.as_deref()));
            if verdict != Verdict::Success && !cfg.quiet {
                print_tail(d.tail());
            }
            runs.push(json!({"name": d.name, "result": verdict.to_string(),
                             "end": d.end, "note": note, "seconds": d.seconds()}));
        }
        if let Step::Cycles { count, domu, json } = step {
            let before = w.free_memory_of(&format!("{}-before", domu.name));
            let after = w.free_memory_of(&format!("{}-after", domu.name));
            println!(
                "runner: cycles {}: {count} domUs created and destroyed; dom0's free_memory {} MiB before, {} MiB after",
                domu.name,
                before.map_or("?".into(), |n| n.to_string()),
                after.map_or("?".into(), |n| n.to_string()),
            );
            if let Some(p) = json {
                let v = json!({"platform": "xen-domU", "cycles": count,
                               "free_memory_before": before, "free_memory_after": after,
                               "runs": runs});
                if let Err(e) =
                    std::fs::write(p, serde_json::to_string_pretty(&v).expect("JSON") + "\n")
                {
                    eprintln!("runner: cannot write {}: {e}", p.display());
                    write_ok = false;
                }
            }
        }
    }
    println!(
        "runner: batch of {} step(s) in {:.1} s",
        steps.len(),
        outcome.seconds
    );
    if let Some(p) = &outcome.problem {
        println!("runner: the batch's boot did not finish: {p}");
        print_tail(&w.tail);
        return Verdict::Crash.exit_code();
    }
    if !all_ended {
        return Verdict::Crash.exit_code();
    }
    if write_ok {
        0
    } else {
        Verdict::Error.exit_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_kernels() {
        assert_eq!(name_from(Some(Path::new("out/vmi-guest.elf"))), "vmi-guest");
        assert_eq!(name_from(Some(Path::new("a/My_Kernel.bin"))), "my-kernel");
        assert_eq!(name_from(Some(Path::new("2.6.30-vmi"))), "k-2-6");
        assert_eq!(name_from(None), "xen-vmi-rom");
        for n in ["vmi-guest", "my-kernel", "k-2-6", "xen-vmi-rom"] {
            assert!(domu::check_name(n).is_ok());
        }
    }

    #[test]
    fn batch_files_parse() {
        let steps = parse_batch(
            r#"{"steps": [
                {"domu": {"name": "g", "cmdline": "only=cr2", "memory": 32, "json": "g.json"}},
                {"parallel": [{"name": "a", "kernel": null}, {"name": "b"}]},
                {"cycles": 3, "domu": {"name": "c", "timeout": 20}, "json": "c.json"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(steps.len(), 3);
        let Step::One(g) = &steps[0] else { panic!() };
        assert_eq!((g.memory_mb, g.cmdline.as_str()), (32, "only=cr2"));
        assert_eq!(g.kernel.as_deref(), Some(Path::new("out/vmi-guest.elf")));
        let Step::Parallel(p) = &steps[1] else {
            panic!()
        };
        assert_eq!(p[0].kernel, None);
        assert_eq!(steps[2].domus().len(), 3);
        assert!(
            parse_batch(r#"{"steps": [{"domu": {"name": "x", "colour": 1}}]}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(parse_batch(r#"{"steps": [{"cycles": 0, "domu": {"name": "x"}}]}"#).is_err());
        assert!(parse_batch("[]").is_err());
    }
}
