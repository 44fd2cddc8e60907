//! The VMI timer on Xen (vmi_time.h): the cycle counter is the TSC, scaled
//! to Xen's system time through vcpu_time_info; an alarm is a Xen one-shot
//! timer (VCPUOP_set_singleshot_timer) whose VIRQ_TIMER event the ROM turns
//! into IRQ0 (through the virtual 8259) or the local APIC timer vector, as
//! the alarm's flags say. Stolen time comes from the vCPU's runstate.

use core::sync::atomic::{AtomicU32, Ordering};

use vmi_abi::time::{
    VMI_ALARM_IS_PERIODIC, VMI_ALARM_WIRED_LVTT, VMI_CYCLES_AVAILABLE, VMI_CYCLES_REAL,
    VMI_CYCLES_STOLEN,
};
use xen_abi::hypercall::Hypervisor;
use xen_abi::vcpu::{RUNSTATE_offline, RUNSTATE_runnable};
use xen_abi::xen::VIRQ_TIMER;

use crate::runtime::{rdtsc, runtime, shared_info, time_snapshot, upcall_pending};
use crate::xen::hypervisor;

/// An armed VMI alarm.
#[derive(Clone, Copy, Default)]
pub struct Alarm {
    pub armed: bool,
    pub lvtt: bool,
    /// Next expiry, in cycles (TSC).
    pub next: u64,
    /// 0 for a one-shot alarm.
    pub period: u64,
    /// The local APIC timer interrupt is raised and not yet delivered.
    pub lvtt_pending: bool,
}

/// Binds VIRQ_TIMER (at boot) and stops the 10 ms periodic timer Xen gives
/// every PV vCPU: timer interrupts happen when the kernel asks for them.
pub fn init() {
    let mut xen = hypervisor();
    let _ = xen.vcpu_stop_periodic_timer(0);
    if let Ok(port) = xen.evtchn_bind_virq(VIRQ_TIMER, 0) {
        runtime().timer_port = port;
    }
}

/// GetCycleFrequency: the TSC rate Xen measured (vcpu_time_info scale).
pub extern "C" fn get_cycle_frequency() -> u64 {
    time_snapshot().tsc_frequency_hz().unwrap_or(0)
}

fn stolen_cycles() -> u64 {
    let Ok(rs) = hypervisor().vcpu_get_runstate_info(0) else {
        return 0;
    };
    let stolen_ns =
        rs.time[RUNSTATE_runnable as usize].get() + rs.time[RUNSTATE_offline as usize].get();
    let hz = get_cycle_frequency();
    ((u128::from(stolen_ns) * u128::from(hz)) / 1_000_000_000) as u64
}

/// GetCycleCounter(counter): real (the TSC), available (real minus
/// stolen), stolen (time runnable or offline: another domain had the CPU).
pub extern "C" fn get_cycle_counter(counter: u32) -> u64 {
    match counter {
        VMI_CYCLES_REAL => rdtsc(),
        VMI_CYCLES_AVAILABLE => rdtsc().saturating_sub(stolen_cycles()),
        VMI_CYCLES_STOLEN => stolen_cycles(),
        _ => 0,
    }
}

fn arm_xen_timer(cycles: u64) {
    let snap = time_snapshot();
    // An expiry already past (or before the snapshot's TSC stamp, where the
    // scaling would wrap) fires at once, as a native timer would.
    let now = rdtsc();
    let deadline = snap.system_time_at(cycles.max(now).max(snap.tsc_timestamp.get()));
    let _ = hypervisor().vcpu_set_singleshot_timer(0, deadline, 0);
}

/// SetAlarm(flags, expiry, period): expiry and period in cycles of the
/// counter the flags name (the real one: Linux's only choice).
pub extern "C" fn set_alarm(flags: u32, exp_lo: u32, exp_hi: u32, per_lo: u32, per_hi: u32) {
    // Only the real counter drives alarms (vmi_time.h: Linux never asks for
    // another; the native ROM ignores such a request too).
    if flags & vmi_abi::time::VMI_ALARM_COUNTER_MASK != VMI_CYCLES_REAL {
        return;
    }
    let alarm = &mut runtime().alarm;
    alarm.armed = true;
    alarm.lvtt = flags & VMI_ALARM_WIRED_LVTT != 0;
    alarm.next = (u64::from(exp_hi) << 32) | u64::from(exp_lo);
    alarm.period = if flags & VMI_ALARM_IS_PERIODIC != 0 {
        (u64::from(per_hi) << 32) | u64::from(per_lo)
    } else {
        0
    };
    let next = alarm.next;
    arm_xen_timer(next);
}

/// CancelAlarm(flags): 1 if an alarm was armed.
pub extern "C" fn cancel_alarm(_flags: u32) -> u32 {
    let alarm = &mut runtime().alarm;
    let was = alarm.armed;
    alarm.armed = false;
    let _ = hypervisor().vcpu_stop_singleshot_timer(0);
    u32::from(was)
}

/// VIRQ_TIMER fired: raise the alarm's interrupt if it is due, and set the
/// next Xen timer (a periodic alarm keeps its phase).
pub fn timer_event() {
    let rt = runtime();
    if !rt.alarm.armed {
        return;
    }
    let now = rdtsc();
    if now < rt.alarm.next {
        let next = rt.alarm.next;
        arm_xen_timer(next);
        return;
    }
    if rt.alarm.lvtt {
        rt.alarm.lvtt_pending = true;
    } else {
        rt.bus.pic.pulse_irq(0);
    }
    match (now - rt.alarm.next).checked_div(rt.alarm.period) {
        // A one-shot alarm (period 0) is done.
        None => rt.alarm.armed = false,
        Some(gone) => {
            // Skip the periods already gone (one interrupt for them, as a
            // late periodic timer gives), without looping over them.
            let step = (gone + 1).saturating_mul(rt.alarm.period);
            rt.alarm.next = rt.alarm.next.saturating_add(step);
            let next = rt.alarm.next;
            arm_xen_timer(next);
        }
    }
}

/// The interrupt the kernel would take now if its IF were set: the local
/// APIC timer first (higher priority), then the 8259's output.
pub fn next_vector(take: bool) -> Option<u8> {
    let rt = runtime();
    let lvt = rt.apic.0[0x320 >> 4];
    if rt.alarm.lvtt_pending && lvt & (1 << 16) == 0 {
        if take {
            rt.alarm.lvtt_pending = false;
        }
        return Some(lvt as u8);
    }
    if rt.bus.pic.int_output() {
        return Some(if take { rt.bus.pic.acknowledge() } else { 0 });
    }
    None
}

/// After a device changed state (an EOI, an unmask): if an interrupt can be
/// delivered, make sure the kernel takes it when its IF allows, by keeping
/// Xen's upcall_pending set (the flag every interrupt-enable path checks).
pub fn note_deliverable() {
    if next_vector(false).is_some() {
        upcall_pending().store(1, Ordering::SeqCst);
    }
}

/// Serves pending events without delivering anything: for a kernel that
/// looks at its interrupt controller with interrupts disabled (Xen does not
/// upcall then, so the timer's request would otherwise stay unseen).
pub fn poll() {
    let si = shared_info();
    let port = runtime().timer_port;
    let word = (port / 32) as usize;
    let pending_ptr = (&raw const si.evtchn_pending[word]).cast_mut();
    // SAFETY: a word of the mapped shared_info page Xen sets bits in.
    let was = unsafe { AtomicU32::from_ptr(pending_ptr) }
        .fetch_and(!(1 << (port % 32)), Ordering::SeqCst);
    if was & (1 << (port % 32)) != 0 {
        timer_event();
        note_deliverable();
    }
}

/// The local APIC's interrupt request register, as far as the ROM raises
/// interrupts through it (the timer): 32 bits of IRR word `index`.
pub fn apic_irr_word(index: usize) -> u32 {
    let rt = runtime();
    let vector = (rt.apic.0[0x320 >> 4] & 0xFF) as usize;
    if rt.alarm.lvtt_pending && vector / 32 == index {
        1 << (vector % 32)
    } else {
        0
    }
}

/// The upcall: consume pending event ports (the timer is the one the ROM
/// serves today; anything else is cleared and ignored), then pick the
/// interrupt to deliver, if any.
pub fn upcall() -> Option<u8> {
    let si = shared_info();
    upcall_pending().store(0, Ordering::SeqCst);
    let sel_ptr = (&raw const si.vcpu_info[0].evtchn_pending_sel).cast_mut();
    // SAFETY: a word of the mapped shared_info page Xen sets bits in.
    let sel = unsafe { AtomicU32::from_ptr(sel_ptr) }.swap(0, Ordering::SeqCst);
    let timer_port = runtime().timer_port;
    for word in 0..32u32 {
        if sel & (1 << word) == 0 {
            continue;
        }
        let pending_ptr = (&raw const si.evtchn_pending[word as usize]).cast_mut();
        let mask = si.evtchn_mask[word as usize];
        // SAFETY: as above.
        let pending =
            unsafe { AtomicU32::from_ptr(pending_ptr) }.fetch_and(mask, Ordering::SeqCst) & !mask;
        if timer_port / 32 == word && pending & (1 << (timer_port % 32)) != 0 {
            timer_event();
        }
    }
    next_vector(true)
}
