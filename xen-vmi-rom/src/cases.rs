//! The image's sanity cases on the state Xen hands a 32-bit PAE PV guest,
//! printed under the project's guest output protocol.

use core::fmt;

use crate::console::Console;
use crate::hv::{self, StartInfo};

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

enum Status {
    Pass,
    Fail,
    Skip,
}

struct Run<'a> {
    con: &'a mut Console,
    failed: bool,
    passed: u32,
}

impl Run<'_> {
    fn report(&mut self, name: &str, status: Status, detail: fmt::Arguments<'_>) {
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

    fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) {
        let status = if ok { Status::Pass } else { Status::Fail };
        self.report(name, status, detail);
    }
}

/// The guest command line (start_info.cmd_line, NUL-terminated).
fn cmdline(si: &StartInfo) -> &str {
    let len = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(0);
    core::str::from_utf8(&si.cmd_line[..len]).unwrap_or("")
}

fn option<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn parse_u32(s: &str) -> Option<u32> {
    s.parse().ok()
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The virtual page shared_info gets mapped over (its original frame is
/// simply given up).
static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

const PTE_PRESENT_RW_ACCESSED_DIRTY: u64 = 0x1 | 0x2 | 0x20 | 0x40;
const UVMF_INVLPG: u32 = 2;

fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc has no memory effects; Xen leaves it unintercepted for PV.
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// vcpu_time_info at shared_info + 32 (vcpu 0), read under its version
/// protocol; returns nanoseconds of system time now.
fn system_time_ns(shared: *const u8) -> u64 {
    let t = shared.wrapping_add(32);
    let rd32 = |off: usize| {
        // SAFETY: `t` points into the mapped shared_info page.
        unsafe { core::ptr::read_volatile(t.add(off) as *const u32) }
    };
    loop {
        let v = rd32(0);
        let tsc_stamp = u64::from(rd32(8)) | (u64::from(rd32(12)) << 32);
        let sys = u64::from(rd32(16)) | (u64::from(rd32(20)) << 32);
        let mul = rd32(24);
        let shift = (rd32(28) & 0xFF) as u8 as i8;
        let now = rdtsc();
        if v & 1 == 0 && rd32(0) == v {
            let mut delta = now.wrapping_sub(tsc_stamp);
            delta = if shift >= 0 {
                delta << shift
            } else {
                delta >> -shift
            };
            let scaled = ((u128::from(delta) * u128::from(mul)) >> 32) as u64;
            return sys.wrapping_add(scaled);
        }
    }
}

pub fn run_all(con: &mut Console, si: &StartInfo) -> Verdict {
    let cl = cmdline(si);
    con.line(format_args!("xen-vmi-rom: PV image, command line {cl:?}"));
    let mut r = Run {
        con,
        failed: false,
        passed: 0,
    };

    let magic_len = si.magic.iter().position(|&b| b == 0).unwrap_or(32);
    let magic = core::str::from_utf8(&si.magic[..magic_len]).unwrap_or("?");
    r.check(
        "start_info_magic",
        magic.starts_with("xen-3.0-x86_32p"),
        format_args!("{magic}"),
    );

    match option(cl, "xen.dom0_mem_mb").and_then(parse_u32) {
        Some(mb) => r.check(
            "start_info_nr_pages",
            si.nr_pages == mb * 256,
            format_args!("{} pages, expected {} for {mb} MiB", si.nr_pages, mb * 256),
        ),
        None => r.report(
            "start_info_nr_pages",
            Status::Skip,
            format_args!("no xen.dom0_mem_mb= on the command line to compare with"),
        ),
    }

    // The bootstrap L3 (pt_base, mapped read-only by the builder) must have
    // its slot 3 present: Xen requires the top 1 GiB's L2 (its own slots).
    let l3 = si.pt_base as *const u64;
    // SAFETY: pt_base is the mapped virtual address of the L3 page.
    let l3e3 = unsafe { core::ptr::read_volatile(l3.add(3)) };
    r.check(
        "start_info_page_tables",
        si.pt_base.is_multiple_of(4096) && si.nr_pt_frames >= 2 && l3e3 & 1 == 1,
        format_args!(
            "pt_base {:#x}, {} frames, L3[3] {:#x}",
            si.pt_base, si.nr_pt_frames, l3e3
        ),
    );

    let mut capabilities = [0u8; 1024];
    let ver = hv::xen_version(0, core::ptr::null_mut());
    let caps_rc = hv::xen_version(3, capabilities.as_mut_ptr());
    let caps_len = capabilities.iter().position(|&b| b == 0).unwrap_or(0);
    let caps = core::str::from_utf8(&capabilities[..caps_len]).unwrap_or("");
    r.check(
        "xen_version",
        ver >> 16 >= 4 && caps_rc == 0 && caps.contains("xen-3.0-x86_32p"),
        format_args!("{}.{}, capabilities \"{caps}\"", ver >> 16, ver & 0xFFFF),
    );

    let probe = b"xen-vmi-rom: console_io probe\n";
    let rc = hv::console_io_raw(0, probe.len() as u32, probe.as_ptr());
    r.check(
        "console_io_write",
        rc == 0,
        format_args!("CONSOLEIO_write returned {rc}"),
    );

    let va = (&raw const SHARED_INFO_PAGE) as u32;
    let rc = hv::update_va_mapping(
        va,
        u64::from(si.shared_info) | PTE_PRESENT_RW_ACCESSED_DIRTY,
        UVMF_INVLPG,
    );
    let shared = va as *const u8;
    // SAFETY: after a successful update_va_mapping the page is shared_info;
    // bytes 0/1 are vcpu 0's evtchn_upcall_pending/mask, 32 its time version.
    let (mask, tversion) = unsafe {
        (
            core::ptr::read_volatile(shared.add(1)),
            core::ptr::read_volatile(shared.add(32) as *const u32),
        )
    };
    let mapped = rc == 0 && mask == 1 && tversion != 0 && tversion.is_multiple_of(2);
    r.check(
        "shared_info_mapped",
        mapped,
        format_args!("update_va_mapping {rc}, upcall mask {mask}, time version {tversion}"),
    );

    if mapped {
        let t0 = system_time_ns(shared);
        let mut spin = 0u32;
        let mut t1 = t0;
        while t1 <= t0 && spin < 10_000_000 {
            spin += 1;
            t1 = system_time_ns(shared);
        }
        let t2 = system_time_ns(shared);
        r.check(
            "system_time_monotonic",
            t0 > 0 && t1 > t0 && t2 >= t1,
            format_args!("{t0} ns, then {t1} ns, then {t2} ns"),
        );
    } else {
        r.report(
            "system_time_monotonic",
            Status::Skip,
            format_args!("shared_info is not mapped"),
        );
    }

    // p2m (start_info.mfn_list) and Xen's read-only m2p must agree on the
    // frame holding the image's first page (pseudo-physical 1 MiB). The m2p
    // starts at the bottom of the hypervisor hole, which Xen may place above
    // 0xF5800000 for a dom0: ask it (XENMEM_machphys_mapping).
    let pfn = 0x100u32;
    match hv::machphys_mapping() {
        Ok((m2p_start, m2p_end, max_mfn)) => {
            // SAFETY: mfn_list is mapped by the builder, nr_pages entries long.
            let mfn =
                unsafe { core::ptr::read_volatile((si.mfn_list as *const u32).add(pfn as usize)) };
            let in_range = mfn <= max_mfn && m2p_start + mfn * 4 < m2p_end;
            let back = if in_range {
                // SAFETY: the m2p is mapped read-only at m2p_start for every
                // 32-bit PV guest, one u32 per machine frame up to max_mfn.
                unsafe { core::ptr::read_volatile((m2p_start as *const u32).add(mfn as usize)) }
            } else {
                u32::MAX
            };
            r.check(
                "p2m_m2p_roundtrip",
                in_range && back == pfn,
                format_args!(
                    "m2p at {m2p_start:#x}..{m2p_end:#x}: pfn {pfn:#x} -> mfn {mfn:#x} -> pfn {back:#x}"
                ),
            );
        }
        Err(rc) => r.check(
            "p2m_m2p_roundtrip",
            false,
            format_args!("XENMEM_machphys_mapping failed: {rc}"),
        ),
    }

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
