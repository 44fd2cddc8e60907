//! Events and time, the XenLinux way: the interrupt flag is the upcall
//! mask in `vcpu_info` (no hypercall to disable or enable), pending events
//! are handled where they are found (the two-level scan of `shared_info`),
//! the timer is VIRQ_TIMER on a one-shot `VCPUOP_set_singleshot_timer`,
//! and the cycle counter is the TSC, scaled with `vcpu_time_info`.

use core::sync::atomic::{compiler_fence, AtomicU32, AtomicU64, Ordering};

use xen_abi::hypercall::Hypervisor;
use xen_abi::time::{read_consistent, VolatileTimeInfo};
use xen_abi::xen::{SharedInfo, StartInfo, VcpuInfo, UVMF_INVLPG, VIRQ_TIMER};

use crate::console::fatal;
use crate::hv;

/// A page of the image the shared-info frame is mapped over (the builder
/// maps the image; this page's own frame is simply not used).
#[repr(C, align(4096))]
pub struct SharedInfoPage([u8; 4096]);

/// The page (the entry path's assembly names it).
pub static mut SHARED_INFO_PAGE: SharedInfoPage = SharedInfoPage([0; 4096]);

/// The shared-info page's address.
pub fn shared_info() -> *mut SharedInfo {
    (&raw mut SHARED_INFO_PAGE).cast()
}

/// vCPU 0's `vcpu_info`.
pub fn vcpu() -> *mut VcpuInfo {
    // SAFETY: vcpu_info[0] is at the start of the mapped shared-info page.
    unsafe { (&raw mut (*shared_info()).vcpu_info).cast() }
}

static TIMER_PORT: AtomicU32 = AtomicU32::new(u32::MAX);
static TIMER_COUNT: AtomicU32 = AtomicU32::new(0);
static TIMER_LAST: AtomicU64 = AtomicU64::new(0);

/// Maps shared_info (its machine address is in start_info), binds
/// VIRQ_TIMER and stops the periodic timer Xen starts for every vCPU.
pub fn init(si: &StartInfo) {
    let pte = u64::from(si.shared_info) | 0x63; // P | RW | A | D
    hv::update_va_mapping(shared_info() as u32, pte, UVMF_INVLPG);
    hv::flush();
    let mut xen = hv::hypervisor();
    let _ = xen.vcpu_stop_periodic_timer(0);
    match xen.evtchn_bind_virq(VIRQ_TIMER, 0) {
        Ok(port) => TIMER_PORT.store(port, Ordering::SeqCst),
        Err(e) => fatal(format_args!(
            "pv-bench-guest: EVTCHNOP_bind_virq(VIRQ_TIMER) failed: {e:?}"
        )),
    }
}

/// Masks events (the paravirtual CLI).
#[inline(always)]
pub fn irq_disable() {
    // SAFETY: vcpu_info is mapped; a byte store is atomic against Xen.
    unsafe { (&raw mut (*vcpu()).evtchn_upcall_mask).write_volatile(1) };
    compiler_fence(Ordering::SeqCst);
}

/// Unmasks events (the paravirtual STI); an event already pending is
/// handled here and now, with events masked again meanwhile (Mini-OS's
/// `force_evtchn_callback`, without the hypercall pvops makes).
#[inline(always)]
pub fn irq_enable() {
    compiler_fence(Ordering::SeqCst);
    let v = vcpu();
    // SAFETY: as irq_disable; pending is read after the unmask.
    unsafe {
        (&raw mut (*v).evtchn_upcall_mask).write_volatile(0);
        compiler_fence(Ordering::SeqCst);
        while (&raw const (*v).evtchn_upcall_pending).read_volatile() != 0 {
            (&raw mut (*v).evtchn_upcall_mask).write_volatile(1);
            demux();
            (&raw mut (*v).evtchn_upcall_mask).write_volatile(0);
            compiler_fence(Ordering::SeqCst);
        }
    }
}

/// Handles pending events (events masked): the two-level scan of
/// `shared_info` (selector word, then pending & ~mask).
pub fn demux() {
    let si = shared_info();
    let v = vcpu();
    // SAFETY: shared_info is mapped; the words are updated with atomic
    // operations as Xen updates them.
    unsafe {
        (&raw mut (*v).evtchn_upcall_pending).write_volatile(0);
        let sel = AtomicU32::from_ptr(&raw mut (*v).evtchn_pending_sel).swap(0, Ordering::SeqCst);
        let mut words = sel;
        while words != 0 {
            let i = words.trailing_zeros() as usize;
            words &= words - 1;
            let pending = AtomicU32::from_ptr(&raw mut (*si).evtchn_pending[i]);
            let mask = (&raw const (*si).evtchn_mask[i]).read_volatile();
            let mut bits = pending.load(Ordering::SeqCst) & !mask;
            while bits != 0 {
                let j = bits.trailing_zeros();
                bits &= bits - 1;
                pending.fetch_and(!(1 << j), Ordering::SeqCst);
                event(i as u32 * 32 + j);
            }
        }
    }
}

fn event(port: u32) {
    if port == TIMER_PORT.load(Ordering::Relaxed) {
        TIMER_LAST.store(rdtsc(), Ordering::Relaxed);
        TIMER_COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

/// Timer interrupts so far and the TSC at the last one's handler.
pub fn timer_interrupts() -> (u32, u64) {
    (
        TIMER_COUNT.load(Ordering::Relaxed),
        TIMER_LAST.load(Ordering::Relaxed),
    )
}

/// The TSC (a PV guest reads it natively).
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear for the kernel).
    unsafe { core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

fn time_info() -> xen_abi::xen::VcpuTimeInfo {
    // SAFETY: vcpu_info's time area is mapped and aligned.
    let mut src = unsafe { VolatileTimeInfo::new(&raw const (*vcpu()).time) };
    read_consistent(&mut src)
}

/// TSC cycles per second (Xen's scale of the TSC to its system time).
pub fn cycle_frequency() -> u64 {
    time_info().tsc_frequency_hz().unwrap_or(0)
}

/// Arms the one-shot timer for TSC value `expiry` (one hypercall).
pub fn arm_alarm(expiry: u64) {
    let snap = time_info();
    let deadline = snap.system_time_at(expiry.max(snap.tsc_timestamp.get()));
    if let Err(e) = hv::hypervisor().vcpu_set_singleshot_timer(0, deadline, 0) {
        fatal(format_args!(
            "pv-bench-guest: VCPUOP_set_singleshot_timer failed: {e:?}"
        ));
    }
}
