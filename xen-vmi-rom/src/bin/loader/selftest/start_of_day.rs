//! Cases on the state Xen's domain builder hands a 32-bit PAE PV guest
//! (xen.h "start of day" comment; xg_dom_x86.c / pv/dom0_build.c layout).

use xen_abi::arch_x86_32::{_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW};
use xen_abi::hypercall::Hypervisor;
use xen_abi::time::{read_consistent, VolatileTimeInfo};
use xen_abi::xen::UVMF_INVLPG;
use xen_abi::xen::{SharedInfo, StartInfo};

use super::{c_str, option, Run, Status};
use crate::xen::hypervisor;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The virtual page shared_info gets mapped over (its original frame is
/// simply given up).
static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc has no memory effects; Xen leaves it unintercepted for PV.
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// System time now (ns), from vcpu 0's vcpu_time_info under its version
/// protocol.
pub fn system_time_ns(shared: &SharedInfo) -> u64 {
    // SAFETY: the time info lives in the mapped shared_info page for the
    // image's whole life.
    let mut src = unsafe { VolatileTimeInfo::new(&raw const shared.vcpu_info[0].time) };
    let snapshot = read_consistent(&mut src);
    snapshot.system_time_at(rdtsc())
}

/// Runs the start-of-day cases; returns shared_info once it is mapped.
pub fn run(r: &mut Run<'_>, si: &StartInfo, cl: &str) -> Option<&'static SharedInfo> {
    let magic = c_str(si.magic_bytes());
    r.check(
        "start_info_magic",
        si.magic_is_xen_3_0() && magic.starts_with("xen-3.0-x86_32p"),
        format_args!("{magic}"),
    );

    // The runner says how much memory it gave the domain: dom0_mem for dom0,
    // xl's memory= for a domU.
    let given = option(cl, "xen.dom0_mem_mb").or_else(|| option(cl, "xen.mem_mb"));
    match given.and_then(|v| v.parse::<u32>().ok()) {
        Some(mb) => r.check(
            "start_info_nr_pages",
            si.nr_pages == mb * 256,
            format_args!("{} pages, expected {} for {mb} MiB", si.nr_pages, mb * 256),
        ),
        None => r.report(
            "start_info_nr_pages",
            Status::Skip,
            format_args!("no xen.dom0_mem_mb= or xen.mem_mb= on the command line to compare with"),
        ),
    }

    // The bootstrap L3 (pt_base, mapped read-only by the builder) must have
    // slot 3 present: Xen requires the top 1 GiB's L2 (it holds Xen's slots).
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

    let mut xen = hypervisor();
    let mut caps = [0u8; 1024];
    let mut extra = [0u8; 16];
    let version = xen.xen_version();
    let caps_rc = xen.xen_capabilities(&mut caps);
    let extra_rc = xen.xen_extraversion(&mut extra);
    let (caps, extra) = (c_str(&caps), c_str(&extra));
    match version {
        Ok(v) => r.check(
            "xen_version",
            v.major >= 4 && caps_rc.is_ok() && extra_rc.is_ok() && caps.contains("xen-3.0-x86_32p"),
            format_args!(
                "{}.{}{extra}, capabilities \"{}\"",
                v.major,
                v.minor,
                caps.trim()
            ),
        ),
        Err(e) => r.check(
            "xen_version",
            false,
            format_args!("XENVER_version failed: {}", e.name()),
        ),
    }

    let rc = xen.console_write(b"xen-vmi-rom: console_io probe\n");
    if crate::console::is_ring() {
        // A non-debug Xen refuses a domU's console_io (XSM's default
        // policy): this console is the ring, which this very line crossed.
        r.check(
            "console_io_write",
            rc.is_ok() || rc == Err(xen_abi::errno::XenError::EPERM),
            format_args!("CONSOLEIO_write: {rc:?} (a domU: the console ring carries this line)"),
        );
    } else {
        r.check(
            "console_io_write",
            rc.is_ok(),
            format_args!("CONSOLEIO_write: {rc:?}"),
        );
    }

    let va = (&raw const SHARED_INFO_PAGE) as u32;
    let pte = u64::from(si.shared_info) | (_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY);
    // SAFETY: the page remapped is the image's own, used only as shared_info.
    let rc = unsafe { xen.update_va_mapping(va, pte, UVMF_INVLPG) };
    // SAFETY: after a successful update_va_mapping the page is shared_info,
    // which stays mapped for the image's life.
    let shared = rc.ok().map(|()| unsafe { &*(va as *const SharedInfo) });
    let (mask, tversion) = shared.map_or((0, 0), |s| {
        // SAFETY: plain reads of fields Xen updates concurrently.
        unsafe {
            (
                core::ptr::read_volatile(&raw const s.vcpu_info[0].evtchn_upcall_mask),
                core::ptr::read_volatile(&raw const s.vcpu_info[0].time.version),
            )
        }
    });
    let mapped = shared.is_some() && mask == 1 && tversion != 0 && tversion.is_multiple_of(2);
    r.check(
        "shared_info_mapped",
        mapped,
        format_args!("update_va_mapping {rc:?}, upcall mask {mask}, time version {tversion}"),
    );

    match shared.filter(|_| mapped) {
        Some(s) => {
            let t0 = system_time_ns(s);
            let mut t1 = t0;
            let mut spin = 0u32;
            while t1 <= t0 && spin < 10_000_000 {
                spin += 1;
                t1 = system_time_ns(s);
            }
            let t2 = system_time_ns(s);
            r.check(
                "system_time_monotonic",
                t0 > 0 && t1 > t0 && t2 >= t1,
                format_args!("{t0} ns, then {t1} ns, then {t2} ns"),
            );
        }
        None => r.report(
            "system_time_monotonic",
            Status::Skip,
            format_args!("shared_info is not mapped"),
        ),
    }

    // p2m (start_info.mfn_list) and Xen's read-only m2p must agree on the
    // frame holding the image's first page (pseudo-physical 1 MiB). The m2p
    // starts at the bottom of the hypervisor hole, which Xen may place above
    // 0xF5800000 for a dom0: ask it (XENMEM_machphys_mapping).
    let pfn = 0x100u32;
    match xen.machphys_mapping() {
        Ok(m) => {
            // SAFETY: mfn_list is mapped by the builder, nr_pages entries long.
            let mfn = unsafe { core::ptr::read_volatile((si.mfn_list as *const u32).add(0x100)) };
            let in_range = mfn <= m.max_mfn && m.v_start + mfn * 4 < m.v_end;
            let back = if in_range {
                // SAFETY: the m2p is mapped read-only at v_start for every
                // 32-bit PV guest, one u32 per machine frame up to max_mfn.
                unsafe { core::ptr::read_volatile((m.v_start as *const u32).add(mfn as usize)) }
            } else {
                u32::MAX
            };
            r.check(
                "p2m_m2p_roundtrip",
                in_range && back == pfn,
                format_args!(
                    "m2p at {:#x}..{:#x}: pfn {pfn:#x} -> mfn {mfn:#x} -> pfn {back:#x}",
                    m.v_start, m.v_end
                ),
            );
        }
        Err(e) => r.check(
            "p2m_m2p_roundtrip",
            false,
            format_args!("XENMEM_machphys_mapping failed: {}", e.name()),
        ),
    }

    shared.filter(|_| mapped)
}
