//! Building the QEMU command line for each platform, running it with a hard
//! timeout, and streaming its console into a transcript.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::protocol::{Transcript, Verdict};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Xen under QEMU with a Linux dom0; our PV image as a domU (domu.rs).
    Domu,
    /// Xen under QEMU, our PV image as dom0.
    Dom0,
    /// Bare QEMU: the VMI guest by QEMU's `-kernel` (multiboot or bzImage),
    /// with (or without) the native ROM.
    Native,
}

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub mode: Mode,
    pub no_rom: bool,
    pub icount: bool,
    pub quiet: bool,
    pub timeout_s: f64,
    pub memory_mb: u32,
    pub xen: PathBuf,
    pub pv_image: PathBuf,
    pub kernel: PathBuf,
    /// `--kernel` was given: on Xen, the kernel goes in as the second
    /// multiboot module (the PV image loads it through the ROM).
    pub kernel_given: bool,
    /// The kernel's initrd.
    pub initrd: Option<PathBuf>,
    pub option_rom: PathBuf,
    pub cmdline: String,
    /// --domu: one CPU for Xen, shared by dom0 and the domU.
    pub shared_cpu: bool,
    /// The Linux dom0 of the domU mode (tools/dom0/build links them here).
    pub dom0_kernel: PathBuf,
    pub dom0_initrd: PathBuf,
    /// `--qemu-arg`: extra QEMU arguments, appended last (profiling:
    /// tools/profile adds single-step exec logging).
    pub qemu_extra: Vec<String>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Domu,
            no_rom: false,
            icount: false,
            quiet: false,
            timeout_s: 60.0,
            memory_mb: 64,
            xen: ".cache/xen/xen-pv32".into(),
            pv_image: "out/xen-vmi-rom.elf".into(),
            kernel: "out/vmi-guest.elf".into(),
            kernel_given: false,
            initrd: None,
            option_rom: "out/native-vmi.rom".into(),
            cmdline: String::new(),
            shared_cpu: false,
            dom0_kernel: "out/dom0/vmlinuz".into(),
            dom0_initrd: "out/dom0/initrd.gz".into(),
            qemu_extra: Vec::new(),
        }
    }
}

impl RunConfig {
    pub fn platform_name(&self) -> &'static str {
        match (self.mode, self.no_rom) {
            (Mode::Domu, _) => "xen-domU",
            (Mode::Dom0, _) => "xen-dom0",
            (Mode::Native, false) => "native-rom",
            (Mode::Native, true) => "native",
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub transcript: Transcript,
    pub verdict: Verdict,
    pub note: Option<String>,
    pub seconds: f64,
}

/// Console lines that end a run early, with what they mean.
struct ConsoleSign {
    needle: &'static str,
    verdict: Verdict,
    note: &'static str,
}

/// Xen's own words when it cannot run a 32-bit PV guest (xen/arch/x86/pv/
/// dom0_build.c and setup.c in 4.17), and when dom0 or Xen died.
const CONSOLE_SIGNS: &[ConsoleSign] = &[
    ConsoleSign {
        needle: "Found 32-bit PV kernel, but CONFIG_PV32 missing",
        verdict: Verdict::Skip,
        note: "this Xen has no 32-bit PV support (built without CONFIG_PV32): \
               use the PV32 build from tools/setup",
    },
    ConsoleSign {
        needle: "Disabling PV32 due to CET",
        verdict: Verdict::Skip,
        note: "this Xen disabled 32-bit PV because it uses CET: boot it with pv=32 \
               or without CET",
    },
    ConsoleSign {
        needle: "Mismatch between Xen and DOM0 kernel",
        verdict: Verdict::Skip,
        note: "this Xen cannot run a 32-bit PAE PV dom0 (no PV32 support?)",
    },
    ConsoleSign {
        needle: "Dom0 crashed",
        verdict: Verdict::Crash,
        note: "the guest (dom0) crashed",
    },
    ConsoleSign {
        needle: ") crashed on cpu#",
        verdict: Verdict::Crash,
        note: "the guest crashed (Xen's register dump is above)",
    },
    ConsoleSign {
        needle: "Panic on CPU",
        verdict: Verdict::Crash,
        note: "Xen panicked",
    },
];

/// QEMU's CPU for Xen runs: TCG's `max` (`host` needs KVM, under which Xen
/// fails), said to be Intel: Xen offers a 32-bit PV guest SYSENTER only on
/// Intel (on AMD there is none in long mode), and TCG executes it from
/// compatibility mode either way (docs/traps-and-privilege.md).
///
/// Without SVM: an Intel processor never has it, and with it Xen (seeing
/// SVM) loads a 64-bit PV guest's segment state with VMLOAD from a
/// per-CPU block it VMSAVEd when it brought the CPU up. VMLOAD also loads
/// the SYSENTER MSRs, and the boot CPU's block was saved before Xen moved
/// that CPU to its final stack: every switch to a 64-bit dom0 put the boot
/// stack back into SYSENTER_ESP, and the next SYSENTER on that CPU (a
/// 32-bit domU sharing it) double-faulted Xen (docs/domu.md). Harmless on
/// AMD, where SYSENTER does not exist in long mode.
pub const XEN_CPU: &str = "max,vendor=GenuineIntel,-svm";

fn require_file(what: &str, p: &Path, hint: &str) -> Result<(), String> {
    if p.is_file() {
        Ok(())
    } else {
        Err(format!("{what} {} does not exist ({hint})", p.display()))
    }
}

/// The QEMU argv for the configuration.
pub fn command(cfg: &RunConfig) -> Result<Command, String> {
    let mut cmd;
    match cfg.mode {
        Mode::Domu => return Err("the domU mode boots through domu.rs".into()),
        Mode::Dom0 => {
            require_file("hypervisor", &cfg.xen, "run tools/setup")?;
            require_file("PV image", &cfg.pv_image, "run tools/build-images")?;
            cmd = Command::new("qemu-system-x86_64");
            // Xen nested under KVM dies with emulation failures here: TCG only.
            cmd.args(["-machine", "q35,accel=tcg", "-cpu", XEN_CPU, "-m", "512"]);
            cmd.arg("-kernel").arg(&cfg.xen);
            // smap=0: QEMU TCG SMAP/iret bug. smep=0: with SMEP Xen flips CR4
            // on every 32-bit PV transition and TCG flushes its whole TLB.
            let mb = cfg.memory_mb;
            cmd.arg("-append").arg(format!(
                "console=com1 com1=115200,8n1 dom0_mem={mb}M,max:{mb}M dom0_max_vcpus=1 \
                 smap=0 smep=0"
            ));
            // A multiboot module string is "file args"; ',' separates modules,
            // so a literal comma is doubled.
            // The guest is told its memory size so it can check start_info.
            let mut module = format!("{} xen.dom0_mem_mb={mb}", cfg.pv_image.display());
            if !cfg.cmdline.is_empty() {
                module.push(' ');
                module.push_str(&cfg.cmdline);
            }
            let mut modules = module.replace(',', ",,");
            if cfg.kernel_given {
                require_file(
                    "VMI kernel",
                    &cfg.kernel,
                    "give an existing file to --kernel",
                )?;
                modules.push(',');
                modules.push_str(&cfg.kernel.display().to_string().replace(',', ",,"));
            }
            cmd.arg("-initrd").arg(modules);
        }
        Mode::Native => {
            require_file(
                "VMI guest kernel",
                &cfg.kernel,
                "run tools/build-images; the VMI guest lands with the VMI-side issue",
            )?;
            cmd = Command::new("qemu-system-i386");
            cmd.args(["-machine", "pc,accel=tcg", "-cpu", "max"]);
            cmd.arg("-m").arg(cfg.memory_mb.to_string());
            cmd.arg("-kernel").arg(&cfg.kernel);
            if let Some(initrd) = &cfg.initrd {
                require_file("initrd", initrd, "give an existing file to --initrd")?;
                cmd.arg("-initrd").arg(initrd);
            }
            if !cfg.cmdline.is_empty() {
                cmd.arg("-append").arg(&cfg.cmdline);
            }
            if !cfg.no_rom {
                require_file("native VMI ROM", &cfg.option_rom, "run tools/build-images")?;
                cmd.arg("-option-rom").arg(&cfg.option_rom);
            }
            cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
        }
    }
    headless(&mut cmd, cfg.icount);
    cmd.args(&cfg.qemu_extra);
    Ok(cmd)
}

/// What every QEMU the runner starts has: no display, no monitor, the
/// first serial port on stdout (the console the runner reads), no reboot
/// (a triple fault ends the run), and under `icount` one TSC tick per
/// guest instruction with idle time skipped, so that cycle counts are
/// deterministic.
pub(crate) fn headless(cmd: &mut Command, icount: bool) {
    cmd.args([
        "-display",
        "none",
        "-vga",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
    ]);
    if icount {
        cmd.args(["-icount", "shift=0,align=off,sleep=off"]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}

pub(crate) enum Event {
    Line(String),
    Closed,
}

pub(crate) fn pump<R: Read + Send + 'static>(r: R, tx: mpsc::Sender<Event>, prefix: &'static str) {
    thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\r', '\n']);
                    if tx.send(Event::Line(format!("{prefix}{line}"))).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Event::Closed);
    });
}

pub(crate) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Xen's messages once dom0 has gone: the run is over.
const END_OF_RUN: &[&str] = &[
    "Hardware Dom0 halted",
    "Hardware Dom0 shutdown",
    "Hardware Dom0 crashed",
];

/// Lines of console kept for the tail printed on a crash.
const TAIL_LINES: usize = 25;
/// After the verdict, how long QEMU gets to exit by itself.
const GRACE_AFTER_VERDICT: Duration = Duration::from_secs(5);

/// The one module the PV image gets for `kernel` and `initrd`: a bundle
/// (xen_vmi_rom::bundle, what `vmi-pack bundle` writes) in a temporary
/// file, removed when the run ends.
pub struct Bundle(PathBuf);

impl Bundle {
    /// Where the bundle is (until it is dropped).
    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(kernel: &Path, initrd: &Path) -> Result<Self, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let (k, rd) = (read(kernel)?, read(initrd)?);
        let layout = u32::try_from(k.len())
            .ok()
            .zip(u32::try_from(rd.len()).ok())
            .and_then(|(kl, rl)| xen_vmi_rom::bundle::header(kl, rl))
            .ok_or_else(|| {
                format!(
                    "{} and {} do not fit in one bundle",
                    kernel.display(),
                    initrd.display()
                )
            })?;
        let mut b = vec![0u8; layout.total as usize];
        b[..xen_vmi_rom::bundle::HEADER_SIZE].copy_from_slice(&layout.header);
        let (ko, ro) = (layout.kernel_offset as usize, layout.initrd_offset as usize);
        b[ko..ko + k.len()].copy_from_slice(&k);
        if !rd.is_empty() {
            b[ro..ro + rd.len()].copy_from_slice(&rd);
        }
        let path = std::env::temp_dir().join(format!("runner-bundle-{}.bin", std::process::id()));
        std::fs::write(&path, b).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What the ROM says when a kernel never called VMI_Init
/// (xen-vmi-rom/src/bin/rom/xen.rs).
const NEVER_ACTIVATED: &str = "the kernel never activated VMI";

pub fn run(cfg: &RunConfig) -> Result<Outcome, String> {
    // On Xen the initrd travels with the kernel in one module.
    let mut bundled = cfg.clone();
    let _bundle = match (&cfg.initrd, cfg.mode) {
        (Some(initrd), Mode::Dom0) => {
            let b = Bundle::write(&cfg.kernel, initrd)?;
            bundled.kernel = b.0.clone();
            bundled.initrd = None;
            Some(b)
        }
        _ => None,
    };
    let cfg = &bundled;
    let mut cmd = command(cfg)?;
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

    let deadline = start + Duration::from_secs_f64(cfg.timeout_s.max(0.1));
    let mut transcript = Transcript::default();
    let mut tail: Vec<String> = Vec::new();
    let mut open_streams = 2;
    let mut sign: Option<&ConsoleSign> = None;
    let mut verdict_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut never_activated = false;

    while open_streams > 0 {
        let now = Instant::now();
        let limit = match verdict_at {
            Some(t) => (t + GRACE_AFTER_VERDICT).min(deadline),
            None => deadline,
        };
        if now >= limit {
            timed_out = verdict_at.is_none();
            break;
        }
        match rx.recv_timeout(limit - now) {
            Ok(Event::Line(line)) => {
                if !cfg.quiet {
                    println!("{line}");
                }
                transcript.feed(&line);
                never_activated |= line.contains(NEVER_ACTIVATED);
                if transcript.verdict.is_some() && verdict_at.is_none() {
                    verdict_at = Some(Instant::now());
                }
                // Xen's last words after the guest's verdict: nothing more
                // will come (a halted machine does not end QEMU by itself).
                if transcript.verdict.is_some() && END_OF_RUN.iter().any(|m| line.contains(m)) {
                    tail.push(line);
                    break;
                }
                if sign.is_none() {
                    sign = CONSOLE_SIGNS.iter().find(|s| line.contains(s.needle));
                    if sign.is_some() && transcript.verdict.is_none() {
                        // Xen said why the guest cannot (or can no longer)
                        // run; give it a moment for its last words, then stop.
                        verdict_at = Some(Instant::now() - GRACE_AFTER_VERDICT / 2);
                    }
                }
                tail.push(line);
                if tail.len() > TAIL_LINES {
                    tail.remove(0);
                }
            }
            Ok(Event::Closed) => open_streams -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    kill(&mut child);
    let seconds = start.elapsed().as_secs_f64();

    let (verdict, note) = if never_activated {
        // Whatever the guest concluded, the ROM served a kernel that never
        // used it: the run did not test what it was for.
        (
            transcript.final_verdict().max(Verdict::Error),
            Some(
                "the kernel never activated VMI (it never called VMI_Init): \
                 it ran on the ROM's emulation of native instructions only"
                    .to_string(),
            ),
        )
    } else if transcript.verdict.is_some() {
        (transcript.final_verdict(), None)
    } else if let Some(s) = sign {
        (s.verdict, Some(s.note.to_string()))
    } else if timed_out {
        (
            Verdict::Crash,
            Some(format!("no verdict within the {} s timeout", cfg.timeout_s)),
        )
    } else {
        (
            Verdict::Crash,
            Some("QEMU exited without a verdict from the guest".to_string()),
        )
    };
    if verdict == Verdict::Crash || (cfg.quiet && verdict != Verdict::Success) {
        println!("runner: last {} console lines:", tail.len());
        for l in &tail {
            println!("  | {l}");
        }
    }
    Ok(Outcome {
        transcript,
        verdict,
        note,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(cfg: &RunConfig) -> Vec<String> {
        command(cfg)
            .unwrap()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn dom0_command_line() {
        let dir = std::env::temp_dir().join(format!("runner-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let xen = dir.join("xen");
        let pv = dir.join("pv.elf");
        std::fs::write(&xen, b"x").unwrap();
        std::fs::write(&pv, b"x").unwrap();
        let cfg = RunConfig {
            mode: Mode::Dom0,
            xen: xen.clone(),
            pv_image: pv.clone(),
            cmdline: "a=1,2".into(),
            icount: true,
            ..RunConfig::default()
        };
        let a = argv(&cfg);
        let i = a.iter().position(|x| x == "-initrd").unwrap();
        assert_eq!(
            a[i + 1],
            format!("{} xen.dom0_mem_mb=64 a=1,,2", pv.display())
        );
        assert!(a.iter().any(|x| x.contains("dom0_mem=64M,max:64M")));
        assert!(a.windows(2).any(|w| w[0] == "-icount"));
        assert_eq!(cfg.platform_name(), "xen-dom0");
        let extra = RunConfig {
            qemu_extra: vec!["-d".into(), "exec".into()],
            ..cfg.clone()
        };
        let b = argv(&extra);
        assert_eq!(
            b[b.len() - 2..],
            ["-d", "exec"],
            "extra QEMU arguments come last"
        );
        assert_eq!(b.len(), a.len() + 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_initrd_goes_to_qemu_natively_and_into_a_bundle_on_xen() {
        let dir = std::env::temp_dir().join(format!("runner-initrd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (kernel, initrd) = (dir.join("k"), dir.join("rd"));
        std::fs::write(&kernel, b"\x7fELF kernel bytes").unwrap();
        std::fs::write(&initrd, [7u8; 5000]).unwrap();
        let cfg = RunConfig {
            mode: Mode::Native,
            no_rom: true,
            kernel: kernel.clone(),
            initrd: Some(initrd.clone()),
            ..RunConfig::default()
        };
        let a = argv(&cfg);
        let i = a.iter().position(|x| x == "-initrd").unwrap();
        assert_eq!(a[i + 1], initrd.display().to_string());
        let b = Bundle::write(&kernel, &initrd).unwrap();
        let bytes = std::fs::read(&b.0).unwrap();
        let parts = xen_vmi_rom::bundle::unpack(&bytes).unwrap();
        assert_eq!(parts.kernel, b"\x7fELF kernel bytes");
        assert_eq!(parts.initrd, Some(&[7u8; 5000][..]));
        let path = b.0.clone();
        drop(b);
        assert!(!path.exists(), "the bundle is removed after the run");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_files_are_named() {
        let cfg = RunConfig {
            mode: Mode::Dom0,
            xen: "/nonexistent/xen".into(),
            ..RunConfig::default()
        };
        let e = command(&cfg).unwrap_err();
        assert!(
            e.contains("hypervisor /nonexistent/xen does not exist"),
            "{e}"
        );
        let cfg = RunConfig {
            mode: Mode::Native,
            kernel: "/nonexistent/k".into(),
            ..RunConfig::default()
        };
        assert!(command(&cfg).unwrap_err().contains("VMI guest kernel"));
    }
}
