//! The VMI timer on Xen (vmi_time.h) and the PIT's IRQ 0: the cycle
//! counter is the TSC, scaled to Xen's system time through vcpu_time_info;
//! alarms (one per wiring, as on hardware: the 8254/HPET behind IRQ 0 and
//! the local APIC timer) and the PIT model's next IRQ 0 edge share one Xen
//! one-shot timer (VCPUOP_set_singleshot_timer) at the earliest of their
//! deadlines. Its VIRQ_TIMER event (events.rs) makes the ROM look at both:
//! an alarm due raises IRQ 0 on the 8259 or the local APIC timer's vector,
//! as its flags say; a PIT edge raises IRQ 0. Stolen time comes from the
//! runstate area Xen keeps up to date in the ROM's state.
//!
//! How late looks count (one raise for any number of expiries since the
//! last look, the phase kept): xen_vmi_rom::timekeeping, "The tick rule".

use event_channel::{Binding, Vector};
use vmi_abi::time::{
    VMI_ALARM_COUNTER_MASK, VMI_ALARM_IS_PERIODIC, VMI_ALARM_WIRED_LVTT, VMI_CYCLES_AVAILABLE,
    VMI_CYCLES_REAL, VMI_CYCLES_STOLEN,
};
use xen_abi::hypercall::Hypervisor;
use xen_abi::vcpu::{RUNSTATE_offline, RUNSTATE_runnable, VcpuRunstateInfo, XEN_RUNSTATE_UPDATE};
use xen_abi::xen::{VMASST_CMD_enable, VIRQ_TIMER};
use xen_vmi_rom::layout::ROM_STATE_VA;
use xen_vmi_rom::timekeeping::{alarm_deadline_ns, emulated_tsc_slack_ns, Alarm, CycleCounters};

use crate::console::Line;
use crate::events::TIME_STATE_OFFSET;
use crate::runtime::{rdtsc, runtime, time_snapshot};
use crate::xen::hypervisor;

/// `VMASST_TYPE_runstate_update_flag` (xen.h): Xen marks a runstate area
/// update in progress with XEN_RUNSTATE_UPDATE in state_entry_time.
const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;

/// The local APIC's LVT timer register (offset 0x320 / 16) and its mask bit.
pub const LVT_TIMER_INDEX: usize = 0x32;
pub const LVT_MASKED: u32 = 1 << 16;

/// An armed alarm and the counter its expiry is on.
#[derive(Clone, Copy)]
struct ArmedAlarm {
    alarm: Alarm,
    /// VMI_CYCLES_REAL or VMI_CYCLES_AVAILABLE.
    counter: u32,
}

/// The Xen one-shot timer (ns of system time).
#[derive(Clone, Copy, Default)]
struct XenTimer {
    /// The PIT model's next IRQ 0 edge.
    pit_ns: Option<u64>,
    /// What Xen holds now (None once it fired).
    armed_ns: Option<u64>,
    /// VIRQ_TIMER's port was not pending right after Xen took `armed_ns`:
    /// every VIRQ_TIMER from then on is that deadline's (Xen raises it
    /// for nothing else once the periodic timer is stopped, and its timers
    /// never run early: `expires < now`, xen/common/timer.c).
    clean: bool,
}

/// The timer state (in the ROM's state page, see events.rs).
pub struct TimeState {
    /// The alarms: [wired to IRQ 0, wired to the LVT timer].
    alarms: [Option<ArmedAlarm>; 2],
    xen: XenTimer,
    counters: CycleCounters,
    /// GetCycleFrequency's answer, fixed at boot: the TSC's rate does not
    /// change, while Xen's scale is recalibrated now and then.
    frequency: u64,
    /// Where Xen emulates the TSC, what an alarm's deadline adds to its
    /// expiry's time (`timekeeping::alarm_deadline_ns`); None with the
    /// processor's TSC. Fixed at boot (`emulated_tsc_slack`).
    emulated_tsc_slack_ns: Option<u64>,
    /// Xen keeps this vCPU's runstate here (registered at boot).
    runstate: VcpuRunstateInfo,
    runstate_registered: bool,
    /// An LVT vector below 32 was reported (once).
    bad_lvt_vector_reported: bool,
    /// Xen's 10 ms periodic timer was stopped at boot: VIRQ_TIMER then
    /// comes from the ROM's one-shot only, which the tick path's version
    /// compare relies on (`program`).
    periodic_stopped: bool,
}

/// The timer state, with a tick the one-step path took completed first
/// (events.rs completes both parts): nothing looks at the alarms or Xen's
/// timer before that.
fn state() -> &'static mut TimeState {
    if crate::events::tick_taken() {
        let _ = crate::events::state();
    }
    raw_state()
}

/// The timer state as it is.
fn raw_state() -> &'static mut TimeState {
    // SAFETY: the state page is mapped read-write in every address space;
    // `init` fills this part first. Callers hold no other reference to it
    // across a call that takes one (the PIT's deadline callback).
    unsafe { &mut *((ROM_STATE_VA + TIME_STATE_OFFSET) as *mut TimeState) }
}

/// The timer's part of a tick the one-step path took (the LVT timer's
/// one-shot, the only deadline Xen's timer served, due), for events.rs
/// to complete with its own: Xen's one-shot is spent, the alarm has fired
/// and is gone (`Alarm::look` of a one-shot past its expiry), and
/// `program` has nothing left to arm (the PIT has no edge and Xen now
/// holds nothing), so no hypercall.
pub fn complete_lone_tick() {
    let st = raw_state();
    st.xen.armed_ns = None;
    st.alarms[1] = None;
    crate::events::set_tick_alarm(None);
}

/// Binds VIRQ_TIMER, stops the 10 ms periodic timer Xen gives every PV
/// vCPU (timer interrupts happen when the kernel asks for them), registers
/// the runstate area and fixes the cycle frequency.
pub fn init() {
    let st = (ROM_STATE_VA + TIME_STATE_OFFSET) as *mut TimeState;
    // SAFETY: the area is mapped, writable and not in use yet.
    unsafe {
        core::ptr::write(
            st,
            TimeState {
                alarms: [None; 2],
                xen: XenTimer::default(),
                counters: CycleCounters::new(),
                frequency: time_snapshot().tsc_frequency_hz().unwrap_or(0),
                emulated_tsc_slack_ns: None,
                runstate: VcpuRunstateInfo::default(),
                runstate_registered: false,
                bad_lvt_vector_reported: false,
                periodic_stopped: false,
            },
        );
    }
    raw_state().emulated_tsc_slack_ns = emulated_tsc_slack(raw_state().frequency);
    let mut xen = hypervisor();
    raw_state().periodic_stopped = xen.vcpu_stop_periodic_timer(0).is_ok();
    match xen.evtchn_bind_virq(VIRQ_TIMER, 0) {
        Ok(port) => crate::events::bind_rom_port(port, Binding::Virq(VIRQ_TIMER), 0),
        Err(_) => Line::rom(b"Xen refused to bind VIRQ_TIMER: no alarms, no PIT ticks").print(),
    }
    let _ = xen.vm_assist(VMASST_CMD_enable, VMASST_TYPE_RUNSTATE_UPDATE_FLAG);
    // SAFETY: the area is in the ROM's state page, mapped at the same
    // address in every address space, for as long as the domain lives.
    let registered =
        unsafe { xen.vcpu_register_runstate_memory_area(0, &raw mut state().runstate) };
    state().runstate_registered = registered.is_ok();
}

/// GetCycleFrequency: the TSC rate Xen measured (vcpu_time_info scale).
pub extern "C" fn get_cycle_frequency() -> u64 {
    // Fixed at boot: no need to complete a taken tick (this entry runs
    // with the kernel's flag).
    raw_state().frequency
}

/// Xen's stolen time (runnable or offline: another domain had the CPU, or
/// the vCPU was paused), in ns.
fn stolen_ns() -> u64 {
    let st = state();
    if !st.runstate_registered {
        return hypervisor().vcpu_get_runstate_info(0).map_or(0, |rs| {
            rs.time[RUNSTATE_runnable as usize].get() + rs.time[RUNSTATE_offline as usize].get()
        });
    }
    let area = &raw const st.runstate;
    loop {
        // SAFETY: the registered area, which Xen rewrites on every
        // state change: read with volatile reads under its update flag.
        let (before, runnable, offline, after) = unsafe {
            let before = core::ptr::read_volatile(&raw const (*area).state_entry_time).get();
            let runnable =
                core::ptr::read_volatile(&raw const (*area).time[RUNSTATE_runnable as usize]);
            let offline =
                core::ptr::read_volatile(&raw const (*area).time[RUNSTATE_offline as usize]);
            let after = core::ptr::read_volatile(&raw const (*area).state_entry_time).get();
            (before, runnable.get(), offline.get(), after)
        };
        if before & XEN_RUNSTATE_UPDATE == 0 && before == after {
            return runnable + offline;
        }
    }
}

/// `ns` in cycles at GetCycleFrequency's rate, in 64-bit steps (whole
/// seconds, then the rest: no product overflows below 18 GHz).
fn ns_to_cycles(ns: u64) -> u64 {
    const NS_PER_S: u64 = 1_000_000_000;
    let hz = get_cycle_frequency();
    (ns / NS_PER_S)
        .saturating_mul(hz)
        .saturating_add((ns % NS_PER_S) * hz / NS_PER_S)
}

/// (available, stolen) now, in cycles (monotonic, bounded by the real
/// counter: timekeeping::CycleCounters). Call with events masked: the
/// counters' last values are a read-modify-write, and a timer upcall that
/// read them in the middle (its alarms on the available counter) would
/// leave the older pair behind, or a torn 64-bit half.
#[cfg_attr(feature = "image", optimize(size))]
fn available_and_stolen(real: u64) -> (u64, u64) {
    state().counters.read(real, ns_to_cycles(stolen_ns()))
}

/// GetCycleCounter(counter): real (the TSC), available (real minus
/// stolen), stolen (time runnable or offline); 0 for any other counter.
#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn get_cycle_counter(counter: u32) -> u64 {
    match counter {
        VMI_CYCLES_REAL => rdtsc(),
        // GetCycleCounter runs with the kernel's flag (a regparm entry):
        // masked for the counters' update, the real counter read inside.
        VMI_CYCLES_AVAILABLE => crate::events::masked(|| available_and_stolen(rdtsc()).0),
        VMI_CYCLES_STOLEN => crate::events::masked(|| available_and_stolen(rdtsc()).1),
        _ => 0,
    }
}

/// Which alarm slot the flags' wiring names.
fn wiring(flags: u32) -> usize {
    usize::from(flags & VMI_ALARM_WIRED_LVTT != 0)
}

/// SetAlarm(flags, expiry, period): expiry and period in cycles of the
/// counter the flags name. The real and the available counter drive alarms
/// (the native ROM takes both too); on the stolen counter or an unknown
/// one, nothing happens (vmi_time.h). Arming replaces the alarm of the
/// same wiring (an expiry of the old one already past is raised first, as
/// the hardware's request would stay latched); a periodic alarm needs a
/// period.
pub extern "C" fn set_alarm(flags: u32, exp_lo: u32, exp_hi: u32, per_lo: u32, per_hi: u32) {
    let counter = flags & VMI_ALARM_COUNTER_MASK;
    if counter != VMI_CYCLES_REAL && counter != VMI_CYCLES_AVAILABLE {
        return;
    }
    look_now();
    let expiry = (u64::from(exp_hi) << 32) | u64::from(exp_lo);
    let period = if flags & VMI_ALARM_IS_PERIODIC != 0 {
        (u64::from(per_hi) << 32) | u64::from(per_lo)
    } else {
        0
    };
    state().alarms[wiring(flags)] = Some(ArmedAlarm {
        alarm: Alarm::new(expiry, period),
        counter,
    });
    program();
}

/// CancelAlarm(flags): 1 if the alarm of that wiring was armed (a one-shot
/// not yet expired, or a periodic one). An expiry already past is raised
/// first, as the timer would have raised it.
pub extern "C" fn cancel_alarm(flags: u32) -> u32 {
    look_now();
    let was = state().alarms[wiring(flags)].take().is_some();
    program();
    u32::from(was)
}

/// The alarms and the PIT looked at now: IRQ 0 raised on the 8259 for
/// what is due on it; the LVT timer's vector returned for the caller to
/// request (or None: not due, LVT masked, or a vector the APIC refuses).
fn look() -> Option<Vector> {
    let mut lvtt_due = false;
    // No alarm armed (SetAlarm after a one-shot fired): no counter to read
    // (an emulated TSC costs a trap).
    if state().alarms.iter().any(Option::is_some) {
        lvtt_due = look_at_alarms();
    }
    // The PIT: an OUT0 edge since the last look raises IRQ 0, and the next
    // one becomes its deadline (set_pit_deadline, below).
    let rt = runtime();
    let (bus, mut host) = rt.split();
    bus.poll_timer(&mut host);
    if lvtt_due {
        lvt_vector()
    } else {
        None
    }
}

/// The alarms looked at now: IRQ 0 raised for one due on it; whether the
/// LVT timer's is due.
fn look_at_alarms() -> bool {
    let real = rdtsc();
    let on_available =
        |armed: &Option<ArmedAlarm>| armed.is_some_and(|a| a.counter == VMI_CYCLES_AVAILABLE);
    let available = if state().alarms.iter().any(on_available) {
        available_and_stolen(real).0
    } else {
        real
    };
    let mut lvtt_due = false;
    for slot in 0..2 {
        let Some(armed) = state().alarms[slot] else {
            continue;
        };
        let now = if armed.counter == VMI_CYCLES_AVAILABLE {
            available
        } else {
            real
        };
        let e = armed.alarm.look(now);
        state().alarms[slot] = e.alarm.map(|alarm| ArmedAlarm { alarm, ..armed });
        if !e.raise {
            continue;
        }
        if slot == 0 {
            // A rising edge on IRQ 0: the 8259 latches it (IRR) even while
            // the line is masked (IMR), as the chip does.
            runtime().bus.pic.pulse_irq(0);
        } else {
            lvtt_due = true;
        }
    }
    lvtt_due
}

/// The LVT timer's vector, if an expiry reaches the APIC: not while the
/// entry is masked (the APIC drops it then), and not for a vector below
/// 32, which the APIC flags as illegal (0-15) or reserves for exceptions.
fn lvt_vector() -> Option<Vector> {
    let lvt = runtime().apic.0[LVT_TIMER_INDEX];
    if lvt & LVT_MASKED != 0 {
        return None;
    }
    let vector = Vector::new(lvt & 0xFF).ok();
    let st = state();
    if vector.is_none() && !st.bad_lvt_vector_reported {
        st.bad_lvt_vector_reported = true;
        report_bad_lvt_vector(lvt);
    }
    vector
}

/// The console line for an LVT timer entry naming a vector below 32
/// (once). Cold text, out of line.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn report_bad_lvt_vector(lvt: u32) {
    Line::rom(b"the LVT timer names vector ")
        .dec(lvt & 0xFF)
        .text(b", below 32: its expiries are not delivered")
        .print();
}

/// VIRQ_TIMER fired (events.rs, inside the upcall or a poll): Xen's
/// one-shot is spent; look at the alarms and the PIT, and set the next one.
/// Returns the LVT timer's vector when its alarm is due.
pub fn timer_event() -> Option<Vector> {
    state().xen.armed_ns = None;
    let vector = look();
    program();
    vector
}

/// Looks at the alarms and the PIT now, outside an event (SetAlarm,
/// CancelAlarm, a kernel reading its interrupt controllers): what is due is
/// requested exactly when the hardware would have requested it, not when
/// Xen's timer (which may be late by its slop) says so. Call with events
/// masked.
///
/// A request found here is flagged for delivery at once (the LVT timer's
/// vector by `raise_vector`, IRQ 0 on the 8259 by `note_deliverable`):
/// the look may take the expiry Xen's timer was set for, and the re-arm
/// then stops that timer, so no VIRQ_TIMER comes to flag it. Unflagged,
/// an IRQ 0 edge latched here waited in the 8259 past the kernel's next
/// STI until some later event or unmask, and was counted by whatever ran
/// then (an alarm cancelled just after its expiry, with interrupts off).
pub fn catch_up() {
    look_now();
    program();
}

/// `catch_up` without setting Xen's timer, for a caller that changes the
/// alarms next and then sets it once (SetAlarm, CancelAlarm).
fn look_now() {
    if let Some(vector) = look() {
        crate::events::raise_vector(vector);
    }
    crate::events::note_deliverable();
}

/// Sets Xen's one-shot timer to the earliest deadline of the alarms and
/// the PIT (no hypercall when it is already there). An alarm's expiry
/// becomes system time through Xen's scale as it is now, rounded up so the
/// timer never fires before the counter gets there; an expiry on the
/// available counter is moved by the time stolen so far (if more is stolen
/// meanwhile, the look finds it early and the timer is set again).
fn program() {
    let mut want = state().xen.pit_ns;
    // The LVT timer's one-shot, if it is all Xen's timer serves.
    let lone = matches!(
        state().alarms,
        [None, Some(armed)]
            if want.is_none() && armed.counter == VMI_CYCLES_REAL && armed.alarm.period() == 0
    );
    // No alarm armed (a one-shot that has just fired): only the PIT's
    // deadline counts, and no clock needs reading.
    if state().alarms.iter().all(Option::is_none) {
        set_xen_timer(want);
        crate::events::set_tick_alarm(None);
        return;
    }
    let snap = time_snapshot();
    let mut stolen_shift = None;
    for slot in 0..2 {
        let Some(armed) = state().alarms[slot] else {
            continue;
        };
        let mut real = armed.alarm.next();
        if armed.counter == VMI_CYCLES_AVAILABLE {
            // The counters read once (an emulated TSC costs a trap).
            let shift = *stolen_shift.get_or_insert_with(stolen_so_far);
            real = real.saturating_add(shift);
        }
        let ns = alarm_deadline_ns(&snap, real, state().emulated_tsc_slack_ns);
        want = Some(want.map_or(ns, |w| w.min(ns)));
    }
    let clean = set_xen_timer(want);
    // A VIRQ_TIMER of this deadline (`clean`) comes at a system time past
    // it, so at a TSC past the alarm's expiry as long as the scale
    // it was computed with holds (`snap.version` unchanged:
    // `alarm_deadline_ns`)
    // and Xen's periodic timer, the only other source of VIRQ_TIMER, is
    // stopped: the tick the upcall may take in one step (events.rs
    // `vmi_event_tick_entry`), with no TSC read (a trap where Xen
    // emulates it).
    let one_step = lone && clean && state().periodic_stopped;
    crate::events::set_tick_alarm(one_step.then_some(snap.version));
}

/// The cycles stolen so far: what moves an expiry on the available
/// counter onto the real one. Out of line, optimized for size: alarms on
/// the available counter are rare (kernels arm the real one).
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn stolen_so_far() -> u64 {
    let now = rdtsc();
    now - available_and_stolen(now).0
}

/// Whether Xen emulates the TSC (its CPUID time leaf; assumed so if the
/// leaf cannot be read): the slack `timekeeping::alarm_deadline_ns` adds
/// then, None with the processor's own TSC (dom0 under the default
/// tsc_mode; a domU's is emulated where Xen does not trust the host's
/// TSC, as under QEMU).
#[cfg_attr(feature = "image", optimize(size))]
fn emulated_tsc_slack(frequency: u64) -> Option<u64> {
    let emulated = match xen_cpuid(XEN_CPUID_BASE, 0) {
        [max, XEN_SIGNATURE_EBX, XEN_SIGNATURE_ECX, XEN_SIGNATURE_EDX]
            if max >= XEN_CPUID_BASE + XEN_CPUID_TIME_LEAF =>
        {
            xen_cpuid(XEN_CPUID_BASE + XEN_CPUID_TIME_LEAF, 0)[0] & XEN_CPUID_TSC_EMULATED != 0
        }
        _ => true,
    };
    emulated.then(|| emulated_tsc_slack_ns(frequency))
}

/// Xen's CPUID leaves for a PV guest start here (arch-x86/cpuid.h; a PV
/// domain is never a Viridian one, whose leaves move up by 0x100).
const XEN_CPUID_BASE: u32 = 0x4000_0000;
/// "XenVMMXenVMM" in EBX, ECX, EDX of the base leaf (arch-x86/cpuid.h).
const XEN_SIGNATURE_EBX: u32 = 0x566e_6558;
const XEN_SIGNATURE_ECX: u32 = 0x6558_4d4d;
const XEN_SIGNATURE_EDX: u32 = 0x4d4d_566e;
/// The time leaf (base + 3), subleaf 0: EAX's features.
const XEN_CPUID_TIME_LEAF: u32 = 3;
/// XEN_CPUID_TSC_EMULATED: this domain's rdtsc is emulated by Xen.
const XEN_CPUID_TSC_EMULATED: u32 = 1 << 0;

/// CPUID as Xen answers it for this guest: the forced-emulation prefix
/// (ud2a; "xen") before it, as the ROM's CPUID entry uses (entry.rs).
fn xen_cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: Xen emulates the prefixed cpuid for a PV guest; it only
    // writes the four registers (EBX through a scratch register, which
    // the compiler may keep for itself).
    unsafe {
        core::arch::asm!(
            "xchg {b:e}, ebx",
            ".byte 0x0f, 0x0b, 0x78, 0x65, 0x6e",
            "cpuid",
            "xchg {b:e}, ebx",
            b = out(reg) b,
            inout("eax") leaf => a,
            inout("ecx") subleaf => c,
            out("edx") d,
            options(nomem, nostack, preserves_flags),
        );
    }
    [a, b, c, d]
}

/// Sets Xen's one-shot timer to `want` (None: stopped), with no hypercall
/// when it holds that already. Returns `XenTimer::clean`.
fn set_xen_timer(want: Option<u64>) -> bool {
    let st = state();
    if want == st.xen.armed_ns {
        // Clean only while that deadline's VIRQ_TIMER is not already
        // waiting (it may have fired with the kernel's events masked).
        return st.xen.clean && !crate::events::timer_port_pending();
    }
    st.xen.armed_ns = want;
    let mut xen = hypervisor();
    match want {
        // A deadline already past fires at once (no VCPU_SSHOTTMR_future).
        Some(ns) => {
            let _ = xen.vcpu_set_singleshot_timer(0, ns, 0);
        }
        None => {
            let _ = xen.vcpu_stop_singleshot_timer(0);
        }
    }
    st.xen.clean = !crate::events::timer_port_pending();
    st.xen.clean
}

/// The PIT model's next IRQ 0 edge changed (ports.rs, through the host
/// interface in runtime.rs).
pub fn set_pit_deadline(deadline_ns: Option<u64>) {
    state().xen.pit_ns = deadline_ns;
    program();
}

/// A kernel reading its interrupt controllers (8259 OCW3, the APIC's IRR)
/// with interrupts off sees what was requested meanwhile.
pub fn poll() {
    crate::events::poll();
}

/// After the kernel changed an interrupt controller (an EOI, an unmask):
/// an interrupt now deliverable is flagged (events.rs).
pub fn note_deliverable() {
    crate::events::note_deliverable();
}
