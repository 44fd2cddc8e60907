//! The image's cases, printed under the project's guest output protocol
//! (`case NAME: PASS|FAIL|SKIP detail`, then one verdict line).
//!
//! - [`start_of_day`]: the state Xen's builder hands a 32-bit PAE PV guest;
//! - [`hypercalls`]: the xen-abi crate against the real hypervisor.

mod hypercalls;
mod start_of_day;

use core::fmt;

use xen_abi::xen::StartInfo;

use crate::console::Console;

/// XTF's result words; the worst reported status wins.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Success,
    Skip,
    Failure,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Success => "SUCCESS",
            Verdict::Skip => "SKIP",
            Verdict::Failure => "FAILURE",
        })
    }
}

pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// The run's bookkeeping: prints each case and remembers the worst.
pub struct Run<'a> {
    pub con: &'a mut Console,
    failed: bool,
    passed: u32,
}

impl Run<'_> {
    pub fn report(&mut self, name: &str, status: Status, detail: fmt::Arguments<'_>) {
        let word = match status {
            Status::Pass => {
                self.passed += 1;
                "PASS"
            }
            Status::Fail => {
                self.failed = true;
                "FAIL"
            }
            Status::Skip => "SKIP",
        };
        self.con.line(format_args!("case {name}: {word} {detail}"));
    }

    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) {
        let status = if ok { Status::Pass } else { Status::Fail };
        self.report(name, status, detail);
    }
}

/// A `key=value` word of the guest command line (start_info.cmd_line).
pub fn option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn cmdline(si: &StartInfo) -> &str {
    core::str::from_utf8(si.cmd_line_bytes()).unwrap_or("")
}

/// NUL-terminated bytes as text, for details.
pub fn c_str(bytes: &[u8]) -> &str {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..len]).unwrap_or("?")
}

pub fn run_all(con: &mut Console, si: &StartInfo) -> Verdict {
    let cl = cmdline(si);
    con.line(format_args!("xen-vmi-rom: PV image, command line {cl:?}"));
    let mut r = Run {
        con,
        failed: false,
        passed: 0,
    };
    rom_image(&mut r);
    let shared = start_of_day::run(&mut r, si, cl);
    hypercalls::run(&mut r, si, shared);

    match option(cl, "selftest") {
        Some("fail") => r.report(
            "selftest_fail",
            Status::Fail,
            format_args!("requested by selftest=fail on the command line"),
        ),
        Some("hang") => {
            r.con
                .line(format_args!("xen-vmi-rom: selftest=hang: spinning forever"));
            loop {
                core::hint::spin_loop();
            }
        }
        _ => {}
    }

    if r.failed {
        Verdict::Failure
    } else if r.passed == 0 {
        Verdict::Skip
    } else {
        Verdict::Success
    }
}

/// The ROM the image carries is one Linux's probe would accept, with a
/// valid option-ROM checksum and the private area as virtual_top.
fn rom_image(r: &mut Run<'_>) {
    let rom = crate::VMI_ROM;
    match vmi_abi::check_rom(rom) {
        Ok(info) => {
            let checksum_ok = vmi_abi::verify_checksum(rom).is_ok();
            let top = info.header.virtual_top;
            r.check(
                "rom_image_valid",
                checksum_ok && top == xen_vmi_rom::layout::ROM_AREA_START,
                format_args!(
                    "{} bytes, checksum ok {checksum_ok}, virtual_top {top:#x}: {info}",
                    rom.len()
                ),
            );
        }
        Err(e) => r.check(
            "rom_image_valid",
            false,
            format_args!("{} bytes, refused: {}", rom.len(), e.describe()),
        ),
    }
}
