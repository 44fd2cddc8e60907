//! The domU mode: Xen under QEMU with a Linux dom0 (built by tools/dom0/build
//! from Debian's packages), which runs `xl create` of domUs whose `kernel=`
//! is the PV image and whose `ramdisk=` is a VMI kernel, and relays their
//! consoles to the serial line.
//!
//! The run's files (the PV image, the kernels, one xl config per domU and
//! `/job/run.sh`, which calls the functions of tools/dom0/init) go to dom0
//! as a cpio archive appended to the cached initramfs. Several domUs can
//! share one boot (one after the other, side by side, or create/destroy
//! cycles): the dom0 prefixes each domU's console lines with `(NAME) ` and
//! says how each one ended, and this module splits the console accordingly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cpio;
use crate::protocol::{CaseStatus, Transcript, Verdict};
use crate::qemu::{headless, kill, pump, Event};

/// Memory the dom0 gets (dom0_mem), and QEMU's machine at least.
const DOM0_MB: u32 = 384;
const MACHINE_MIN_MB: u32 = 1024;
/// Time the machine gets to boot Xen and dom0 and to power off, on top of
/// the domUs' own limits.
const BOOT_BUDGET_S: f64 = 90.0;
/// Lines of console kept for the tail printed on a failure.
const TAIL_LINES: usize = 25;
/// Where the PV image goes inside dom0.
const PV_IMAGE_IN_DOM0: &str = "/job/xen-vmi-rom.elf";

/// One domU: the PV image as `kernel=`, `kernel` as `ramdisk=`.
#[derive(Clone, Debug, PartialEq)]
pub struct DomuSpec {
    /// The domain's name (also its console prefix and its report's name).
    pub name: String,
    /// The VMI kernel; None boots the PV image alone (its own self-test).
    pub kernel: Option<PathBuf>,
    pub cmdline: String,
    pub memory_mb: u32,
    /// The dom0 destroys the domain this long after `xl create`.
    pub timeout_s: u32,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// A file for the domU's console (and xl's words about it).
    pub log: Option<PathBuf>,
}

impl DomuSpec {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            kernel: Some("out/vmi-guest.elf".into()),
            cmdline: String::new(),
            memory_mb: 64,
            timeout_s: 120,
            json: None,
            junit: None,
            log: None,
        }
    }
}

/// What the dom0 does, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    One(DomuSpec),
    /// These domUs run at the same time.
    Parallel(Vec<DomuSpec>),
    /// `count` domUs made from one spec (named NAME-1 .. NAME-count), one
    /// after the other, with dom0's free memory before and after.
    Cycles {
        count: u32,
        domu: DomuSpec,
        json: Option<PathBuf>,
    },
}

impl Step {
    /// The domUs this step creates, in order.
    pub fn domus(&self) -> Vec<DomuSpec> {
        match self {
            Step::One(d) => vec![d.clone()],
            Step::Parallel(ds) => ds.clone(),
            Step::Cycles { count, domu, .. } => (1..=*count)
                .map(|i| DomuSpec {
                    name: format!("{}-{i}", domu.name),
                    ..domu.clone()
                })
                .collect(),
        }
    }
}

/// Where Xen, the dom0 and the PV image come from.
#[derive(Clone, Debug)]
pub struct Machine {
    pub xen: PathBuf,
    pub dom0_kernel: PathBuf,
    pub dom0_initrd: PathBuf,
    pub pv_image: PathBuf,
    pub icount: bool,
    pub quiet: bool,
    /// One CPU for Xen, shared by dom0 and the domUs.
    pub shared_cpu: bool,
}

/// A domain name xl accepts and the console prefix can carry.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_lowercase();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "domU name {name:?}: use 1-40 of a-z, 0-9 and '-', starting with a letter"
        ))
    }
}

/// A string in xl's config syntax (libxlu: double quotes, backslash escapes).
fn xl_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The xl config of one domU: what a user writes on a real Xen host (see
/// docs/domu.example.cfg), with dom0-side paths.
pub fn xl_config(spec: &DomuSpec, ramdisk_in_dom0: Option<&str>) -> String {
    let mut cfg = format!(
        "name = {}\ntype = \"pv\"\nkernel = {}\n",
        xl_string(&spec.name),
        xl_string(PV_IMAGE_IN_DOM0)
    );
    if let Some(r) = ramdisk_in_dom0 {
        cfg += &format!("ramdisk = {}\n", xl_string(r));
    }
    if !spec.cmdline.is_empty() {
        cfg += &format!("extra = {}\n", xl_string(&spec.cmdline));
    }
    cfg += &format!(
        "memory = {}\nvcpus = 1\non_poweroff = \"destroy\"\non_reboot = \"destroy\"\non_crash = \"destroy\"\n",
        spec.memory_mb
    );
    cfg
}

/// The run's files for dom0, as a cpio archive, and /job/run.sh's text.
///
/// `pin_to_cpu1`: every domU runs on CPU 1 (dom0 is pinned to CPU 0), so that
/// dom0 never preempts a domU (see `command`).
pub fn job_archive(
    steps: &[Step],
    pv_image: &Path,
    pin_to_cpu1: bool,
) -> Result<(Vec<u8>, String), String> {
    let mut archive = cpio::Archive::new();
    archive.dir("job");
    archive.dir("job/k");
    let pv = std::fs::read(pv_image).map_err(|e| {
        format!(
            "PV image {}: {e} (run tools/build-images)",
            pv_image.display()
        )
    })?;
    archive.file(&PV_IMAGE_IN_DOM0[1..], &pv, false);
    let mut kernels: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut names = Vec::new();
    for spec in steps.iter().flat_map(Step::domus) {
        check_name(&spec.name)?;
        if names.contains(&spec.name) {
            return Err(format!("two domUs are named {:?}", spec.name));
        }
        names.push(spec.name.clone());
        if spec.cmdline.chars().any(char::is_control) {
            return Err(format!(
                "the command line of {} has a control character",
                spec.name
            ));
        }
        if spec.memory_mb < 1 {
            return Err(format!("{}: memory must be at least 1 MiB", spec.name));
        }
        let ramdisk = match &spec.kernel {
            None => None,
            Some(k) => {
                if !k.is_file() {
                    return Err(format!(
                        "VMI kernel {} does not exist (give an existing file to --kernel)",
                        k.display()
                    ));
                }
                let next = kernels.len();
                let entry = kernels.entry(k.clone()).or_insert_with(|| {
                    let base: String = k
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    format!("/job/k/{next}-{base}")
                });
                Some(entry.clone())
            }
        };
        let mut cfg = xl_config(&spec, ramdisk.as_deref());
        if pin_to_cpu1 {
            cfg += "cpus = \"1\"\n";
        }
        archive.file(&format!("job/{}.cfg", spec.name), cfg.as_bytes(), false);
    }
    for (path, in_dom0) in &kernels {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        archive.file(&in_dom0[1..], &data, false);
    }
    let script = run_script(steps);
    archive.file("job/run.sh", script.as_bytes(), true);
    Ok((archive.finish(), script))
}

/// /job/run.sh: calls of tools/dom0/init's functions (names and numbers
/// only, checked before, so no quoting is needed).
pub fn run_script(steps: &[Step]) -> String {
    let mut s = String::from("# written by the runner (tools/runner/src/domu.rs)\n");
    for step in steps {
        match step {
            Step::One(d) => s += &format!("domu {} {}\n", d.name, d.timeout_s),
            Step::Parallel(ds) => {
                let mut pids = Vec::new();
                for (i, d) in ds.iter().enumerate() {
                    s += &format!("domu {} {} &\np{i}=$!\n", d.name, d.timeout_s);
                    pids.push(format!("$p{i}"));
                }
                s += &format!("wait {}\n", pids.join(" "));
            }
            Step::Cycles { domu, .. } => {
                s += &format!("settle_free_memory {}-before\n", domu.name);
                for d in step.domus() {
                    s += &format!("domu {} {}\n", d.name, d.timeout_s);
                }
                s += &format!("settle_free_memory {}-after\n", domu.name);
            }
        }
    }
    s
}

/// What became of one domU, from the console.
#[derive(Clone, Debug, Default)]
pub struct DomuRun {
    pub name: String,
    pub timeout_s: u32,
    pub transcript: Transcript,
    /// Every line about it: its console, xl's words, the end.
    pub lines: Vec<String>,
    /// How it ended (tools/dom0/init's word), None if it never did.
    pub end: Option<String>,
    /// xl's own output when `xl create` failed.
    pub xl: Vec<String>,
    pub started: Option<Instant>,
    pub ended: Option<Instant>,
}

impl DomuRun {
    /// The verdict and, when the runner decided it, why.
    pub fn verdict(&self) -> (Verdict, Option<String>) {
        let Some(end) = self.end.as_deref() else {
            return (
                Verdict::Crash,
                Some(
                    "the run ended before this domU did (dom0 or Xen died, or the run's time limit)"
                        .into(),
                ),
            );
        };
        let guest = self.transcript.verdict.is_some();
        match end {
            "create-failed" => {
                let said = self.xl.join(" ");
                if said.contains("not supported by xen kernel") {
                    (
                        Verdict::Skip,
                        Some(
                            "this Xen has no 32-bit PV support (built without CONFIG_PV32): \
                             use the PV32 build from tools/setup"
                                .into(),
                        ),
                    )
                } else {
                    let last = self
                        .xl
                        .iter()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .cloned()
                        .unwrap_or_default();
                    (
                        Verdict::Error,
                        Some(format!("xl create failed: {}", last.trim())),
                    )
                }
            }
            "timeout" => (
                Verdict::Crash,
                Some(format!(
                    "no end within the {} s limit: the domU was destroyed",
                    self.timeout_s
                )),
            ),
            "crash" if guest => (
                Verdict::Crash,
                Some("the domU crashed after its verdict".into()),
            ),
            "crash" => (Verdict::Crash, Some("the domU crashed".into())),
            _ if guest => (self.transcript.final_verdict(), None),
            other => (
                Verdict::Crash,
                Some(format!("the domU ended ({other}) without a verdict")),
            ),
        }
    }

    pub fn seconds(&self) -> f64 {
        match (self.started, self.ended) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }

    fn push(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }

    pub fn tail(&self) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(TAIL_LINES)..]
    }
}

/// Console lines of Xen or dom0 that end the whole run.
const FATAL_SIGNS: &[(&str, &str)] = &[
    ("Panic on CPU", "Xen panicked"),
    ("Kernel panic - not syncing", "the dom0 kernel panicked"),
    ("Hardware Dom0 crashed", "the dom0 crashed"),
];

/// The whole run's console, split per domU.
#[derive(Debug, Default)]
pub struct Watch {
    pub domus: Vec<DomuRun>,
    /// `settle_free_memory LABEL` figures (MiB), in order.
    pub free_memory: Vec<(String, u64)>,
    /// Why the run cannot go on ("dom0: error: ..." or a fatal sign).
    pub fatal: Option<String>,
    pub job_done: bool,
    /// The last lines of everything, for a run that dies.
    pub tail: Vec<String>,
}

impl Watch {
    pub fn new(steps: &[Step]) -> Self {
        let domus = steps
            .iter()
            .flat_map(Step::domus)
            .map(|d| DomuRun {
                name: d.name.clone(),
                timeout_s: d.timeout_s,
                ..DomuRun::default()
            })
            .collect();
        Self {
            domus,
            ..Self::default()
        }
    }

    fn domu(&mut self, name: &str) -> Option<&mut DomuRun> {
        self.domus.iter_mut().find(|d| d.name == name)
    }

    pub fn get(&self, name: &str) -> Option<&DomuRun> {
        self.domus.iter().find(|d| d.name == name)
    }

    /// One console line.
    pub fn feed(&mut self, line: &str, now: Instant) {
        self.tail.push(line.to_string());
        if self.tail.len() > TAIL_LINES {
            self.tail.remove(0);
        }
        // "(NAME) text": a domU's console.
        if let Some((name, _)) = line.strip_prefix('(').and_then(|r| r.split_once(") ")) {
            if let Some(d) = self.domu(name) {
                d.transcript.feed(line);
                d.push(line);
                return;
            }
        }
        if let Some(rest) = line.strip_prefix("dom0: ") {
            if let Some(rest) = rest.strip_prefix("domu ") {
                if let Some((name, what)) = rest.split_once(": ") {
                    if let Some(d) = self.domu(name) {
                        d.push(line);
                        if what.starts_with("xl create") {
                            d.started = Some(now);
                        } else if let Some(why) = what.strip_prefix("end ") {
                            d.end = Some(why.trim().to_string());
                            d.ended = Some(now);
                        }
                    }
                }
            } else if let Some(rest) = rest.strip_prefix("xl ") {
                if let Some((name, said)) = rest.split_once(": ") {
                    if let Some(d) = self.domu(name) {
                        d.xl.push(said.to_string());
                        d.push(line);
                    }
                }
            } else if let Some(rest) = rest.strip_prefix("free_memory ") {
                let mut words = rest.split_whitespace();
                if let (Some(label), Some(n)) = (words.next(), words.next()) {
                    if let Ok(n) = n.parse() {
                        self.free_memory.push((label.to_string(), n));
                    }
                }
            } else if let Some(why) = rest.strip_prefix("error: ") {
                self.fatal.get_or_insert_with(|| format!("dom0: {why}"));
            } else if rest.trim() == "job done" {
                self.job_done = true;
            }
            return;
        }
        if let Some((_, what)) = FATAL_SIGNS.iter().find(|(s, _)| line.contains(s)) {
            self.fatal.get_or_insert_with(|| what.to_string());
        }
    }

    pub fn free_memory_of(&self, label: &str) -> Option<u64> {
        self.free_memory
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, n)| *n)
    }
}

/// How the whole boot went.
pub struct BootOutcome {
    pub watch: Watch,
    pub seconds: f64,
    /// Why the boot did not finish its job, if it did not.
    pub problem: Option<String>,
}

fn require_file(what: &str, p: &Path, hint: &str) -> Result<(), String> {
    if p.is_file() {
        Ok(())
    } else {
        Err(format!("{what} {} does not exist ({hint})", p.display()))
    }
}

/// QEMU's memory: dom0's, plus the most the domUs use at once, plus room.
fn machine_mb(steps: &[Step]) -> u32 {
    let most = steps
        .iter()
        .map(|s| match s {
            Step::One(d) | Step::Cycles { domu: d, .. } => d.memory_mb,
            Step::Parallel(ds) => ds.iter().map(|d| d.memory_mb).sum(),
        })
        .max()
        .unwrap_or(0);
    (DOM0_MB + 128 + most).max(MACHINE_MIN_MB)
}

/// The QEMU argv.
pub fn command(m: &Machine, steps: &[Step], initrd: &Path) -> Result<Command, String> {
    require_file("hypervisor", &m.xen, "run tools/setup")?;
    require_file("dom0 kernel", &m.dom0_kernel, "run tools/dom0/build")?;
    let mut cmd = Command::new("qemu-system-x86_64");
    // Xen nested under KVM dies with emulation failures here: TCG only.
    cmd.args(["-machine", "q35,accel=tcg", "-cpu", crate::qemu::XEN_CPU]);
    cmd.arg("-m").arg(machine_mb(steps).to_string());
    // Two CPUs, dom0 pinned to CPU 0 and the domUs to CPU 1 (job_archive):
    // dom0 never takes the CPU from a running domU, as on a host where dom0
    // has CPUs of its own. With one CPU shared, the domU is preempted at any
    // instruction while dom0 relays its console, and an event delivered
    // where it resumes exposes a race in the ROM (docs/domu.md, "Known
    // problems"): --shared-cpu shows it.
    cmd.arg("-smp").arg(if m.shared_cpu { "1" } else { "2" });
    cmd.arg("-kernel").arg(&m.xen);
    // smap=0: QEMU TCG SMAP/iret bug. smep=0: with SMEP Xen flips CR4 on
    // every 32-bit PV transition and TCG flushes its whole TLB.
    cmd.arg("-append").arg(format!(
        "console=com1 com1=115200,8n1 dom0_mem={DOM0_MB}M,max:{DOM0_MB}M dom0_max_vcpus=1 \
         smap=0 smep=0{}",
        if m.shared_cpu { "" } else { " dom0_vcpus_pin" }
    ));
    // Multiboot modules: "file args", ',' between modules (a literal
    // comma doubled).
    let modules = format!(
        "{} console=hvc0 quiet,{}",
        m.dom0_kernel.display().to_string().replace(',', ",,"),
        initrd.display().to_string().replace(',', ",,")
    );
    cmd.arg("-initrd").arg(modules);
    headless(&mut cmd, m.icount);
    Ok(cmd)
}

/// The time limit of the whole boot.
fn boot_limit_s(steps: &[Step]) -> f64 {
    let domus: f64 = steps
        .iter()
        .map(|s| match s {
            Step::One(d) => f64::from(d.timeout_s),
            Step::Parallel(ds) => f64::from(ds.iter().map(|d| d.timeout_s).max().unwrap_or(0)),
            Step::Cycles { count, domu, .. } => f64::from(*count) * f64::from(domu.timeout_s),
        })
        .sum();
    domus + BOOT_BUDGET_S
}

/// After the job is done (or dom0 gave up), how long QEMU gets to exit.
const GRACE: Duration = Duration::from_secs(5);

/// Boots the machine once and runs every step.
pub fn run(m: &Machine, steps: &[Step]) -> Result<BootOutcome, String> {
    require_file(
        "dom0 initramfs",
        &m.dom0_initrd,
        "run tools/dom0/build (tools/setup does)",
    )?;
    let (job, _) = job_archive(steps, &m.pv_image, !m.shared_cpu)?;
    let mut initrd = std::fs::read(&m.dom0_initrd)
        .map_err(|e| format!("dom0 initramfs {}: {e}", m.dom0_initrd.display()))?;
    // Linux reads an appended archive only from a 4-byte boundary.
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    initrd.extend_from_slice(&job);
    let initrd_path = std::env::temp_dir().join(format!(
        "xen-vmi-rom-dom0-{}-{}.img",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::write(&initrd_path, &initrd)
        .map_err(|e| format!("cannot write {}: {e}", initrd_path.display()))?;
    let result = boot(m, steps, &initrd_path);
    let _ = std::fs::remove_file(&initrd_path);
    result
}

fn boot(m: &Machine, steps: &[Step], initrd: &Path) -> Result<BootOutcome, String> {
    let mut cmd = command(m, steps, initrd)?;
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot start {:?}: {e} (run tools/setup)",
            cmd.get_program()
        )
    })?;
    let (tx, rx) = mpsc::channel();
    pump(child.stdout.take().expect("piped stdout"), tx.clone(), "");
    pump(child.stderr.take().expect("piped stderr"), tx, "qemu: ");

    let limit_s = boot_limit_s(steps);
    let deadline = start + Duration::from_secs_f64(limit_s);
    let mut watch = Watch::new(steps);
    let mut open_streams = 2;
    let mut finishing: Option<Instant> = None;
    let mut timed_out = false;
    while open_streams > 0 {
        let now = Instant::now();
        let limit = finishing.map_or(deadline, |t| (t + GRACE).min(deadline));
        if now >= limit {
            timed_out = finishing.is_none();
            break;
        }
        match rx.recv_timeout(limit - now) {
            Ok(Event::Line(line)) => {
                if !m.quiet {
                    println!("{line}");
                }
                watch.feed(&line, Instant::now());
                if finishing.is_none() && (watch.job_done || watch.fatal.is_some()) {
                    finishing = Some(Instant::now());
                }
            }
            Ok(Event::Closed) => open_streams -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    kill(&mut child);
    let problem = if let Some(f) = &watch.fatal {
        Some(f.clone())
    } else if watch.job_done {
        None
    } else if timed_out {
        Some(format!("the run did not finish within {limit_s} s"))
    } else {
        Some("QEMU exited before dom0 finished its job".to_string())
    };
    Ok(BootOutcome {
        watch,
        seconds: start.elapsed().as_secs_f64(),
        problem,
    })
}

/// The one-line summary of a domU.
pub fn summary(d: &DomuRun, verdict: Verdict, note: Option<&str>) -> String {
    let t = &d.transcript;
    let count = |s| t.cases.iter().filter(|c| c.status == s).count();
    format!(
        "{} ({}): {} cases ({} pass, {} fail, {} skip) in {:.1} s{}",
        verdict,
        d.name,
        t.cases.len(),
        count(CaseStatus::Pass),
        count(CaseStatus::Fail),
        count(CaseStatus::Skip),
        d.seconds(),
        note.map(|n| format!(": {n}")).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> DomuSpec {
        DomuSpec {
            kernel: None,
            ..DomuSpec::new(name)
        }
    }

    #[test]
    fn xl_config_quotes_and_omits() {
        let mut d = spec("guest");
        d.cmdline = r#"a="b c" d\e"#.into();
        d.memory_mb = 96;
        let cfg = xl_config(&d, Some("/job/k/0-vmi-guest.elf"));
        assert!(cfg.contains("name = \"guest\"\n"), "{cfg}");
        assert!(cfg.contains("kernel = \"/job/xen-vmi-rom.elf\"\n"));
        assert!(cfg.contains("ramdisk = \"/job/k/0-vmi-guest.elf\"\n"));
        assert!(cfg.contains(r#"extra = "a=\"b c\" d\\e""#), "{cfg}");
        assert!(cfg.contains("memory = 96\n"));
        assert!(cfg.contains("on_crash = \"destroy\"\n"));
        let cfg = xl_config(&spec("g"), None);
        assert!(!cfg.contains("ramdisk") && !cfg.contains("extra"), "{cfg}");
    }

    /// The config the runner hands xl says what the documented example
    /// says, key for key: the runs test what a user would type.
    #[test]
    fn xl_config_keys_are_the_documented_examples() {
        let keys = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.split('=').next().unwrap().trim().to_string())
                .collect()
        };
        let example = include_str!("../../../docs/domu.example.cfg");
        let mut d = spec("vmi-guest");
        d.cmdline = "console=ttyS0".into();
        assert_eq!(keys(&xl_config(&d, Some("/job/k/0-k"))), keys(example));
        for line in ["type = \"pv\"", "vcpus = 1", "on_crash = \"destroy\""] {
            assert!(example.contains(line), "{line}");
        }
    }

    #[test]
    fn qemu_command_line() {
        let dir = std::env::temp_dir().join(format!("runner-domu-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |n: &str| {
            let p = dir.join(n);
            std::fs::write(&p, b"x").unwrap();
            p
        };
        let mut m = Machine {
            xen: file("xen"),
            dom0_kernel: file("vmlinuz"),
            dom0_initrd: file("initrd.gz"),
            pv_image: file("pv.elf"),
            icount: false,
            quiet: true,
            shared_cpu: false,
        };
        let argv = |m: &Machine, steps: &[Step]| -> Vec<String> {
            command(m, steps, Path::new("/tmp/job,1.img"))
                .unwrap()
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let after =
            |a: &[String], flag: &str| a[a.iter().position(|x| x == flag).unwrap() + 1].clone();
        let a = argv(&m, &[Step::One(spec("g"))]);
        assert_eq!(after(&a, "-smp"), "2");
        assert_eq!(after(&a, "-m"), "1024");
        assert_eq!(
            after(&a, "-initrd"),
            format!(
                "{} console=hvc0 quiet,/tmp/job,,1.img",
                m.dom0_kernel.display()
            )
        );
        assert!(after(&a, "-append").contains("dom0_mem=384M,max:384M"));
        assert!(after(&a, "-append").ends_with(" dom0_vcpus_pin"));
        m.shared_cpu = true;
        let mut big = spec("big");
        big.memory_mb = 700;
        let a = argv(&m, &[Step::Parallel(vec![big, spec("small")])]);
        assert_eq!(after(&a, "-smp"), "1");
        assert!(!after(&a, "-append").contains("pin"));
        assert_eq!(after(&a, "-m"), (384 + 128 + 764).to_string());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("vmi-guest-2").is_ok());
        for bad in ["", "XEN", "a b", "a)", "1abc", &"x".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn script_runs_steps_in_order() {
        let steps = vec![
            Step::One(spec("a")),
            Step::Parallel(vec![spec("b"), spec("c")]),
            Step::Cycles {
                count: 2,
                domu: spec("cyc"),
                json: None,
            },
        ];
        let s = run_script(&steps);
        let body: Vec<&str> = s.lines().skip(1).collect();
        assert_eq!(
            body,
            [
                "domu a 120",
                "domu b 120 &",
                "p0=$!",
                "domu c 120 &",
                "p1=$!",
                "wait $p0 $p1",
                "settle_free_memory cyc-before",
                "domu cyc-1 120",
                "domu cyc-2 120",
                "settle_free_memory cyc-after",
            ]
        );
        assert_eq!(machine_mb(&steps), MACHINE_MIN_MB);
    }

    #[test]
    fn missing_kernel_and_duplicate_names_are_refused() {
        let dir = std::env::temp_dir().join(format!("runner-domu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pv = dir.join("pv.elf");
        std::fs::write(&pv, b"pv").unwrap();
        let mut d = spec("a");
        d.kernel = Some("/nonexistent/vmlinux".into());
        let e = job_archive(&[Step::One(d)], &pv, true).unwrap_err();
        assert!(
            e.contains("VMI kernel /nonexistent/vmlinux does not exist"),
            "{e}"
        );
        let e = job_archive(&[Step::One(spec("a")), Step::One(spec("a"))], &pv, true).unwrap_err();
        assert!(e.contains("two domUs are named"), "{e}");
        let (bytes, script) = job_archive(&[Step::One(spec("a"))], &pv, true).unwrap();
        let has_pin = |b: &[u8]| b.windows(10).any(|w| w == b"cpus = \"1\"");
        assert!(has_pin(&bytes));
        assert!(!has_pin(
            &job_archive(&[Step::One(spec("a"))], &pv, false).unwrap().0
        ));
        assert!(script.contains("domu a 120"));
        assert_eq!(bytes.len() % 4, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn feed_all(w: &mut Watch, lines: &[&str]) {
        let t0 = Instant::now();
        for (i, l) in lines.iter().enumerate() {
            w.feed(l, t0 + Duration::from_millis(100 * i as u64));
        }
    }

    #[test]
    fn console_is_split_per_domu() {
        let steps = vec![Step::Parallel(vec![spec("a"), spec("b")])];
        let mut w = Watch::new(&steps);
        feed_all(
            &mut w,
            &[
                "(XEN) case x: PASS not a domU",
                "dom0: domu a: xl create (limit 120 s)",
                "dom0: domu b: xl create (limit 120 s)",
                "(a) case one: PASS",
                "(b) case one: FAIL no",
                "(a) Test result: SUCCESS",
                "(b) Test result: FAILURE",
                "dom0: domu a: end poweroff",
                "dom0: domu b: end crash",
                "dom0: job done",
            ],
        );
        assert!(w.job_done && w.fatal.is_none());
        let a = w.get("a").unwrap();
        assert_eq!(a.transcript.cases.len(), 1);
        assert_eq!(a.verdict(), (Verdict::Success, None));
        assert!((a.seconds() - 0.6).abs() < 1e-9);
        let b = w.get("b").unwrap();
        assert_eq!(b.verdict().0, Verdict::Crash);
        assert_eq!(b.transcript.cases[0].status, CaseStatus::Fail);
    }

    #[test]
    fn endings_without_a_verdict() {
        let steps = vec![
            Step::One(spec("t")),
            Step::One(spec("c")),
            Step::One(spec("x")),
            Step::One(spec("p")),
            Step::One(spec("n")),
        ];
        let mut w = Watch::new(&steps);
        feed_all(
            &mut w,
            &[
                "dom0: domu t: end timeout",
                "(c) xen-vmi-rom: the module (12 bytes) is not a kernel",
                "dom0: domu c: end crash",
                "dom0: xl x: Parsing config from /job/x.cfg",
                "dom0: xl x: libxl: error: xc_dom_compat_check: guest type xen-3.0-x86_32p not supported by xen kernel, sorry",
                "dom0: domu x: end create-failed",
                "dom0: domu p: end poweroff",
            ],
        );
        let v = |n: &str| w.get(n).unwrap().verdict();
        assert_eq!(v("t").0, Verdict::Crash);
        assert!(v("t").1.unwrap().contains("120 s limit"));
        assert_eq!(v("c"), (Verdict::Crash, Some("the domU crashed".into())));
        assert_eq!(v("x").0, Verdict::Skip);
        assert_eq!(v("p").0, Verdict::Crash);
        assert!(v("p").1.unwrap().contains("without a verdict"));
        assert!(v("n").1.unwrap().contains("before this domU did"));
        assert!(w.get("c").unwrap().lines[0].contains("not a kernel"));
    }

    #[test]
    fn xl_failure_names_xls_last_words() {
        let mut w = Watch::new(&[Step::One(spec("m"))]);
        feed_all(
            &mut w,
            &[
                "dom0: xl m: libxl: error: libxl_create.c: cannot allocate",
                "dom0: domu m: end create-failed",
            ],
        );
        let (v, note) = w.get("m").unwrap().verdict();
        assert_eq!(v, Verdict::Error);
        assert!(note.unwrap().contains("cannot allocate"));
    }

    #[test]
    fn dom0_figures_and_fatal_lines() {
        let mut w = Watch::new(&[]);
        feed_all(
            &mut w,
            &[
                "dom0: free_memory cyc-before 624",
                "dom0: free_memory cyc-after 623",
                "[    3.0] Kernel panic - not syncing: VFS",
            ],
        );
        assert_eq!(w.free_memory_of("cyc-before"), Some(624));
        assert_eq!(w.free_memory_of("cyc-after"), Some(623));
        assert_eq!(w.fatal.as_deref(), Some("the dom0 kernel panicked"));
        let mut w = Watch::new(&[]);
        feed_all(&mut w, &["dom0: error: insmod xenfs failed"]);
        assert_eq!(w.fatal.as_deref(), Some("dom0: insmod xenfs failed"));
    }
}
