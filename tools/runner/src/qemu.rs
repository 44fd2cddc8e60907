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
    /// Bare QEMU: the VMI guest by multiboot, with (or without) the native ROM.
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
    pub option_rom: PathBuf,
    pub cmdline: String,
    /// --domu: one CPU for Xen, shared by dom0 and the domU.
    pub shared_cpu: bool,
    /// The Linux dom0 of the domU mode (tools/dom0/build links them here).
    pub dom0_kernel: PathBuf,
    pub dom0_initrd: PathBuf,
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
            option_rom: "out/native-vmi.rom".into(),
            cmdline: String::new(),
            shared_cpu: false,
            dom0_kernel: "out/dom0/vmlinuz".into(),
            dom0_initrd: "out/dom0/initrd.gz".into(),
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
            cmd.args(["-machine", "q35,accel=tcg", "-cpu", "max", "-m", "512"]);
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
    if cfg.icount {
        cmd.args(["-icount", "shift=0,align=off,sleep=off"]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(cmd)
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

pub fn run(cfg: &RunConfig) -> Result<Outcome, String> {
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

    let (verdict, note) = if transcript.verdict.is_some() {
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
