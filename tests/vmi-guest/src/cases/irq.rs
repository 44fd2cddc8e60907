//! The interrupt flag: DisableInterrupts, EnableInterrupts,
//! GetInterruptMask, SetInterruptMask (patched inline sites), IRET
//! restoring it, and pending interrupts delivered when it is re-enabled;
//! ticks delayed (never dropped) by a masked stretch, and the hardware's
//! one latched edge when the stretch spans several; EOI with nothing in
//! service; an interrupt whose IDT gate is missing; an interrupt over a
//! ring-3 frame with another nested on it; what masking costs in
//! hypercalls where the ROM counts them.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use vmi_abi::VmiCall;

use native_rom::hw::apic;

use super::timer::{halt_until_count, hypercalls, hz, ms, spin, wait_until, Wire, IRQ0, LVTT};
use super::{ensure, ensure_eq, fail, pass, skip, Outcome};
use crate::console::Text;
use crate::desc::{Table, IDT, USER_CS, USER_DS};
use crate::sync::Global;
use crate::trap::{self, irq_count, irq_last_cycles, Fault, TrapFrame, VECTOR_TEST2};
use crate::user::{self, Snippet, UserRegs, USER_WORD};
use crate::{pic, pv};

pub fn irq_disable_enable_mask() -> Outcome {
    pv::irq_disable();
    let off = pv::save_fl();
    pv::irq_enable();
    let on = pv::save_fl();
    pv::irq_disable();
    let off_again = pv::save_fl();
    ensure_eq!(off, 0u32, "GetInterruptMask after DisableInterrupts");
    ensure_eq!(on, 0x200u32, "GetInterruptMask after EnableInterrupts");
    ensure_eq!(
        off_again,
        0u32,
        "GetInterruptMask after DisableInterrupts again"
    );
    pass!("mask 0 / 0x200 / 0")
}

pub fn irq_set_interrupt_mask() -> Outcome {
    pv::restore_fl(0x200);
    let on = pv::save_fl();
    pv::restore_fl(0);
    let off = pv::save_fl();
    pv::restore_fl(0xFFFF_FFFF);
    let all_bits = pv::save_fl();
    pv::restore_fl(!0x200);
    let no_if = pv::save_fl();
    ensure_eq!(
        on,
        0x200u32,
        "GetInterruptMask after SetInterruptMask(0x200)"
    );
    ensure_eq!(off, 0u32, "GetInterruptMask after SetInterruptMask(0)");
    ensure_eq!(
        all_bits,
        0x200u32,
        "GetInterruptMask after SetInterruptMask(~0)"
    );
    ensure_eq!(
        no_if,
        0u32,
        "GetInterruptMask after SetInterruptMask(~0x200)"
    );
    pass!("SetInterruptMask follows the IF bit only")
}

static MASK_IN_HANDLER: AtomicU32 = AtomicU32::new(0xFFFF);

fn record_mask(_frame: &mut TrapFrame) -> bool {
    MASK_IN_HANDLER.store(pv::save_fl(), Ordering::SeqCst);
    true
}

fn int_test2() {
    // SAFETY: the hook on the test gate returns straight away.
    unsafe { asm!("int 0x83") };
}

pub fn irq_iret_restores_flag() -> Outcome {
    trap::set_hook(VECTOR_TEST2, Some(record_mask));
    pv::irq_enable();
    int_test2();
    let in_handler_on = MASK_IN_HANDLER.load(Ordering::SeqCst);
    let after_on = pv::save_fl();
    pv::irq_disable();
    int_test2();
    let after_off = pv::save_fl();
    trap::set_hook(VECTOR_TEST2, None);
    ensure_eq!(in_handler_on, 0u32, "mask inside an interrupt-gate handler");
    ensure_eq!(
        after_on,
        0x200u32,
        "mask after IRET to code that had interrupts enabled"
    );
    ensure_eq!(
        after_off,
        0u32,
        "mask after IRET to code that had them disabled"
    );
    pass!("interrupt gate clears the mask, IRET restores it (both ways)")
}

/// An alarm that expires while interrupts are disabled stays pending (its
/// request visible in the interrupt controller) and is delivered by the
/// call that enables them, before that call returns.
fn pending_delivered(wire: Wire, enable: fn()) -> Outcome {
    let flags = wire.flags(false);
    wire.connect();
    pv::irq_disable();
    let before = irq_count(wire.vector);
    pv::set_alarm(flags, pv::cycles_now() + ms(1), 0);
    let requested = wait_until(hz(), || wire.pending());
    let while_disabled = irq_count(wire.vector) - before;
    enable();
    let right_after = irq_count(wire.vector) - before;
    pv::irq_disable();
    wire.disconnect();
    ensure!(
        requested,
        "the alarm's interrupt was not requested within 1 s"
    );
    ensure_eq!(while_disabled, 0u32, "interrupts delivered while disabled");
    ensure_eq!(
        right_after,
        1u32,
        "interrupts delivered by the call that enabled them"
    );
    pass!("the alarm requested while disabled was delivered on enabling")
}

pub fn irq_pending_delivered_on_enable() -> Outcome {
    pending_delivered(IRQ0, pv::irq_enable)
}

pub fn irq_pending_delivered_on_restore() -> Outcome {
    pending_delivered(LVTT, || pv::restore_fl(0x200))
}

/// A local APIC timer tick while IRQ 0 waits at the 8259 (its edge latched
/// while interrupts were off): enabling them takes both, once each, the
/// second right after the first handler's EOI and IRET, with no further
/// event to bring it. (A ROM may take a lone tick in one step; the 8259's
/// request must survive it. Which comes first is the platform's timing: a
/// native APIC timer, calibrated at SetAlarm, may expire after the
/// enable.)
pub fn irq_lvtt_tick_with_irq0_waiting() -> Outcome {
    IRQ0.connect();
    LVTT.connect();
    pv::irq_disable();
    let before = (irq_count(LVTT.vector), irq_count(IRQ0.vector));
    pv::set_alarm(IRQ0.flags(false), pv::cycles_now() + ms(1), 0);
    let irq0_requested = wait_until(hz(), || IRQ0.pending());
    // The LVT timer's one-shot expires with interrupts still off, and
    // nothing looks at the APIC meanwhile (a look would take the tick
    // early).
    pv::set_alarm(LVTT.flags(false), pv::cycles_now() + ms(1), 0);
    spin(ms(3));
    pv::irq_enable();
    let both = wait_until(ms(500), || {
        irq_count(LVTT.vector) != before.0 && irq_count(IRQ0.vector) != before.1
    });
    pv::irq_disable();
    let taken = (
        irq_count(LVTT.vector) - before.0,
        irq_count(IRQ0.vector) - before.1,
    );
    let (lvtt_at, irq0_at) = (irq_last_cycles(LVTT.vector), irq_last_cycles(IRQ0.vector));
    LVTT.disconnect();
    IRQ0.disconnect();
    ensure!(irq0_requested, "IRQ 0's alarm was not requested within 1 s");
    ensure!(
        both,
        "within 500 ms of enabling: {} LVT timer and {} IRQ 0 interrupts",
        taken.0,
        taken.1
    );
    ensure_eq!(taken.0, 1u32, "LVT timer interrupts");
    ensure_eq!(taken.1, 1u32, "IRQ 0 interrupts");
    let (first, gap) = if lvtt_at < irq0_at {
        ("the LVT timer", irq0_at - lvtt_at)
    } else {
        ("IRQ 0", lvtt_at - irq0_at)
    };
    pass!(
        "both taken once after enabling, {first} first, the other {} us after it",
        gap * 1_000_000 / hz()
    )
}

/// The task priority holds a timer tick of its class: with TPR at 0xF0 the
/// LVT timer's vector (0xF0) is requested (IRR) and not delivered, though
/// interrupts are enabled; lowering TPR delivers it, once. (A ROM's
/// one-step path for a lone tick must leave it to the general rules.)
pub fn irq_lvtt_tick_held_by_tpr() -> Outcome {
    LVTT.connect();
    let saved = pv::apic_read(apic::REG_TPR);
    pv::apic_write(apic::REG_TPR, 0xF0);
    let before = irq_count(LVTT.vector);
    pv::irq_enable();
    pv::set_alarm(LVTT.flags(false), pv::cycles_now() + ms(1), 0);
    spin(ms(5));
    let while_held = irq_count(LVTT.vector) - before;
    let requested = LVTT.pending();
    let lowered_at = pv::cycles_now();
    pv::apic_write(apic::REG_TPR, saved);
    // Taken at the write's next instruction boundary, which an emulator
    // may place a little later.
    let delivered = wait_until(ms(100), || irq_count(LVTT.vector) != before);
    let after = irq_last_cycles(LVTT.vector).wrapping_sub(lowered_at);
    spin(ms(2));
    pv::irq_disable();
    let total = irq_count(LVTT.vector) - before;
    LVTT.disconnect();
    ensure_eq!(while_held, 0u32, "interrupts while TPR was 0xF0");
    ensure!(requested, "the tick was not requested (IRR) while held");
    ensure!(delivered, "not delivered within 100 ms of lowering TPR");
    ensure_eq!(total, 1u32, "interrupts from one one-shot alarm");
    pass!(
        "held in the IRR while TPR was 0xF0, delivered once {} us after it came down",
        after * 1_000_000 / hz()
    )
}

/// Interrupts a stand-in handler took (`count_and_eoi`) and the cycle
/// counter at the last one.
static STAND_IN_COUNT: AtomicU32 = AtomicU32::new(0);

/// A stand-in handler for an LVT timer interrupt: counts it and EOIs it.
fn count_and_eoi(_frame: &mut TrapFrame) -> bool {
    STAND_IN_COUNT.fetch_add(1, Ordering::SeqCst);
    pv::apic_write(apic::REG_EOI, 0);
    true
}

/// A vector the kernel's tables give a gate (every one but
/// [`VECTOR_NO_GATE`] has one) and nothing else uses.
const VECTOR_RETARGET: u32 = 0xE0;

/// One LVT timer one-shot armed with interrupts enabled and `change` made
/// right after, well before its expiry (20 ms ahead: a native SetAlarm
/// of the LVT timer calibrates it for 500 us first): the interrupts on the
/// LVT timer's vector, and those the stand-in handler on `stand_in` took,
/// within 40 ms.
fn tick_after_change(stand_in: u32, change: impl FnOnce()) -> (u32, u32) {
    LVTT.connect();
    STAND_IN_COUNT.store(0, Ordering::SeqCst);
    trap::set_hook(stand_in, Some(count_and_eoi));
    let before = irq_count(LVTT.vector);
    pv::irq_enable();
    pv::set_alarm(LVTT.flags(false), pv::cycles_now() + ms(20), 0);
    change();
    spin(ms(40));
    pv::irq_disable();
    let counts = (
        irq_count(LVTT.vector) - before,
        STAND_IN_COUNT.load(Ordering::SeqCst),
    );
    trap::set_hook(stand_in, None);
    let _ = pv::cancel_alarm(LVTT.flags(false));
    LVTT.disconnect();
    counts
}

/// The LVT timer entry changed after the alarm was armed, before its
/// expiry: the expiry goes where the entry says then, as on the APIC
/// (which reads the entry when the count reaches zero): to the new vector,
/// once; nowhere while the entry is masked, and the expiry is not latched.
/// (A ROM that prepares the tick's delivery when the alarm is armed must
/// follow the entry.)
pub fn irq_lvtt_changed_after_arming() -> Outcome {
    let retargeted = tick_after_change(VECTOR_RETARGET, || {
        pv::apic_write(apic::REG_LVT_TIMER, VECTOR_RETARGET)
    });
    let masked = tick_after_change(VECTOR_RETARGET, || {
        pv::apic_write(apic::REG_LVT_TIMER, apic::LVT_MASKED | LVTT.vector)
    });
    let requested = LVTT.pending();
    ensure_eq!(
        retargeted.0,
        0u32,
        "interrupts on the old vector after retargeting the entry"
    );
    ensure_eq!(
        retargeted.1,
        1u32,
        "interrupts on the new vector after retargeting the entry"
    );
    ensure_eq!(
        masked.0 + masked.1,
        0u32,
        "interrupts after masking the entry"
    );
    ensure!(!requested, "the masked entry's expiry shows in the IRR");
    pass!("retargeted: on vector {VECTOR_RETARGET:#x} once; masked: none, not requested")
}

/// The LVT timer vector's IDT gate rewritten (WriteIDTEntry) after the
/// alarm was armed, before its expiry: the interrupt enters through the
/// new gate, once. (A ROM that prepares the tick's delivery when the alarm
/// is armed must follow the IDT.)
pub fn irq_lvtt_gate_rewritten_after_arming() -> Outcome {
    let idt = Table::base(&IDT);
    let original = Table::read(&IDT, LVTT.vector as usize);
    // The same gate with the offset of another vector's stub: the
    // dispatcher then sees that vector.
    let target = trap::stub_address(VECTOR_TEST2);
    let redirected = (original & 0x0000_FFFF_FFFF_0000)
        | u64::from(target & 0xFFFF)
        | (u64::from(target >> 16) << 48);
    let counts = tick_after_change(VECTOR_TEST2, || {
        pv::write_idt_entry(idt, LVTT.vector, redirected)
    });
    pv::write_idt_entry(idt, LVTT.vector, original);
    ensure_eq!(
        counts.0,
        0u32,
        "interrupts through the old gate after rewriting it"
    );
    ensure_eq!(
        counts.1,
        1u32,
        "interrupts through the new gate after rewriting it"
    );
    pass!("the tick entered through the rewritten gate, once")
}

/// A periodic alarm with a masked stretch starting right after a tick
/// (the tick's handler time `t`) and ending at `t + stretch`: what the
/// enable delivers, and when the next tick comes.
struct Stretch {
    /// Interrupts during the stretch.
    while_masked: u32,
    /// The request was visible in the interrupt controller at its end.
    requested: bool,
    /// Interrupts delivered by the call that enabled them.
    on_enable: u32,
    /// How long after the enable the delivered one ran (cycles).
    delivered_after: u64,
    /// The next tick's handler time, from `t`, and the interrupts up to it.
    next_tick_at: u64,
    next_count: u32,
    /// The longest the guest saw no time pass in its own loop, or in the
    /// enable call (cycles): a host that stopped the emulator.
    stalled: u64,
}

fn masked_stretch(wire: Wire, period: u64, stretch: u64) -> Option<Stretch> {
    let flags = wire.flags(true);
    wire.connect();
    pv::set_alarm(flags, pv::cycles_now() + period, period);
    let base = irq_count(wire.vector);
    // Halt returns right after a tick's handler: interrupts go off there.
    let ticking = halt_until_count(wire.vector, base + 2, 50 * period + hz());
    let c = irq_count(wire.vector);
    let t = irq_last_cycles(wire.vector);
    let (mut last, mut stalled) = (pv::cycles_now(), 0u64);
    while last.wrapping_sub(t) < stretch {
        let now = pv::cycles_now();
        stalled = stalled.max(now.wrapping_sub(last));
        last = now;
    }
    let while_masked = irq_count(wire.vector) - c;
    let requested = wire.pending();
    let t_on = pv::cycles_now();
    pv::irq_enable();
    let on_enable = irq_count(wire.vector) - c;
    stalled = stalled.max(pv::cycles_now().wrapping_sub(t_on));
    let delivered_after = irq_last_cycles(wire.vector).wrapping_sub(t_on);
    let next = halt_until_count(wire.vector, c + on_enable + 1, 6 * period);
    let next_tick_at = irq_last_cycles(wire.vector).wrapping_sub(t);
    let next_count = irq_count(wire.vector) - c;
    let _ = pv::cancel_alarm(flags);
    pv::irq_enable();
    spin(ms(2));
    pv::irq_disable();
    wire.disconnect();
    (ticking && next).then_some(Stretch {
        while_masked,
        requested,
        on_enable,
        delivered_after,
        next_tick_at,
        next_count,
        stalled,
    })
}

/// Runs `masked_stretch` and `check` on both wires; an attempt whose
/// timing a busy host disturbed (the guest stalled for an eighth of a
/// period, or a latency check failed) is tried again, up to 6 times: under
/// -icount the first attempt is exact, and a wrong platform fails them all.
/// (A host running other work takes the emulator off its CPU for a few ms
/// at a time: the 20 ms period leaves a quarter of it, 5 ms, for that.)
fn stretch_on_both_wires(
    period: u64,
    stretch: u64,
    check: impl Fn(&Stretch) -> Check,
) -> ([u64; 2], Option<Text>) {
    let mut figures = [0u64; 2];
    for (i, wire) in [IRQ0, LVTT].into_iter().enumerate() {
        let mut last = Text::new();
        let mut done = false;
        for attempt in 1..=6 {
            let Some(s) = masked_stretch(wire, period, stretch) else {
                let why =
                    Text::from_fmt(format_args!("wire {i}: the periodic alarm stopped ticking"));
                return (figures, Some(why));
            };
            match check(&s) {
                Check {
                    figure, why: None, ..
                } => {
                    figures[i] = figure;
                    done = true;
                    break;
                }
                Check {
                    timing,
                    why: Some(why),
                    ..
                } => {
                    let disturbed = timing || s.stalled > period / 8;
                    last = Text::from_fmt(format_args!(
                        "wire {i}, attempt {attempt} (stalled {} us): {why}",
                        s.stalled * 1_000_000 / hz()
                    ));
                    if !disturbed {
                        return (figures, Some(last));
                    }
                }
            }
        }
        if !done {
            return (figures, Some(last));
        }
    }
    (figures, None)
}

/// A stretch's check: its figure, or what was wrong (`why`) and whether a
/// late host could explain it (`timing`).
struct Check {
    figure: u64,
    timing: bool,
    why: Option<Text>,
}

fn good(figure: u64) -> Check {
    Check {
        figure,
        timing: false,
        why: None,
    }
}

fn miss(timing: bool, args: core::fmt::Arguments<'_>) -> Check {
    Check {
        figure: 0,
        timing,
        why: Some(Text::from_fmt(args)),
    }
}

/// Interrupts masked for 1.5 periods (30 ms) right after a tick: the tick that
/// falls inside is delayed to the enable, and the next one comes on the
/// alarm's phase (2 periods after the first), so none is lost.
pub fn irq_masked_tick_delayed() -> Outcome {
    let period = ms(20);
    let result = stretch_on_both_wires(period, period * 3 / 2, |s| {
        let us = |c: u64| c * 1_000_000 / hz();
        if s.while_masked != 0 {
            return miss(
                false,
                format_args!("{} interrupts while masked", s.while_masked),
            );
        }
        if !s.requested {
            return miss(
                false,
                format_args!("the tick inside is not requested at the end"),
            );
        }
        if s.on_enable != 1 {
            return miss(
                false,
                format_args!("{} interrupts delivered by the enable", s.on_enable),
            );
        }
        if s.delivered_after >= period / 4 {
            return miss(
                true,
                format_args!(
                    "the delayed tick ran {} us after the enable",
                    us(s.delivered_after)
                ),
            );
        }
        if s.next_count != 2 {
            return miss(
                true,
                format_args!("{} interrupts up to the next tick", s.next_count),
            );
        }
        let off = s.next_tick_at.abs_diff(2 * period);
        if off >= period / 4 {
            return miss(
                true,
                format_args!(
                    "the next tick came {} us after the one before the stretch, not {}",
                    us(s.next_tick_at),
                    us(2 * period)
                ),
            );
        }
        good(us(off))
    });
    match result {
        ([irq0, lvtt], None) => pass!(
            "tick inside 30 ms masked: delivered by the enable, next on the 20 ms phase ({irq0} us off on IRQ 0, {lvtt} us on the LVT timer)"
        ),
        (_, Some(why)) => fail!("{why}"),
    }
}

/// Masked for 3.5 periods (70 ms): the interrupt controller holds one request for
/// the three ticks inside (an IRR bit latches one edge), so the enable
/// delivers one, and the next tick comes on the phase, 4 periods after the
/// first. Native hardware's rule; a ROM must not make up the others.
pub fn irq_masked_ticks_coalesce() -> Outcome {
    let period = ms(20);
    let result = stretch_on_both_wires(period, period * 7 / 2, |s| {
        let us = |c: u64| c * 1_000_000 / hz();
        if s.while_masked != 0 {
            return miss(
                false,
                format_args!("{} interrupts while masked", s.while_masked),
            );
        }
        if !s.requested {
            return miss(false, format_args!("no request at the end of the stretch"));
        }
        if s.on_enable != 1 {
            return miss(
                false,
                format_args!("{} interrupts for the 3 ticks inside", s.on_enable),
            );
        }
        if s.next_count != 2 {
            return miss(
                true,
                format_args!("{} interrupts up to the next tick", s.next_count),
            );
        }
        let off = s.next_tick_at.abs_diff(4 * period);
        if off >= period / 4 {
            return miss(
                true,
                format_args!(
                    "the next tick came {} us after the one before the stretch, not {}",
                    us(s.next_tick_at),
                    us(4 * period)
                ),
            );
        }
        good(us(off))
    });
    match result {
        ([irq0, lvtt], None) => pass!(
            "3 ticks inside 70 ms masked: one interrupt on enabling, then the 20 ms phase ({irq0} us off on IRQ 0, {lvtt} us on the LVT timer)"
        ),
        (_, Some(why)) => fail!("{why}"),
    }
}

/// EOI with nothing in service (local APIC EOI register, 8259
/// non-specific and specific EOI) changes nothing: requests waiting with
/// interrupts off stay requested, and each is delivered once on enabling.
pub fn irq_eoi_without_interrupt() -> Outcome {
    pv::irq_disable();
    pv::apic_write(apic::REG_EOI, 0);
    pic::eoi(0);
    IRQ0.connect();
    LVTT.connect();
    let before = (irq_count(IRQ0.vector), irq_count(LVTT.vector));
    let now = pv::cycles_now();
    pv::set_alarm(IRQ0.flags(false), now + ms(1), 0);
    pv::set_alarm(LVTT.flags(false), now + ms(1), 0);
    let requested = wait_until(hz(), || IRQ0.pending() && LVTT.pending());
    pv::apic_write(apic::REG_EOI, 0);
    pic::eoi(0);
    pic::specific_eoi(0);
    let still = (IRQ0.pending(), LVTT.pending());
    let while_off = (
        irq_count(IRQ0.vector) - before.0,
        irq_count(LVTT.vector) - before.1,
    );
    pv::irq_enable();
    spin(ms(2));
    pv::irq_disable();
    let after = (
        irq_count(IRQ0.vector) - before.0,
        irq_count(LVTT.vector) - before.1,
    );
    IRQ0.disconnect();
    LVTT.disconnect();
    ensure!(
        requested,
        "the two alarms were not both requested within 1 s"
    );
    ensure!(
        still == (true, true),
        "after EOIs with nothing in service: IRQ 0 requested {}, LVT timer requested {}",
        still.0,
        still.1
    );
    ensure_eq!(while_off.0 + while_off.1, 0u32, "interrupts while disabled");
    ensure_eq!(after.0, 1u32, "IRQ 0 interrupts on enabling");
    ensure_eq!(after.1, 1u32, "LVT timer interrupts on enabling");
    pass!("APIC EOI, 8259 EOI and specific EOI with nothing in service: no effect; both requests delivered once")
}

/// The local APIC's in-service register (eight 32-bit words, 0x10 apart).
const APIC_REG_ISR: u32 = 0x100;

/// A vector the kernel never set up: its IDT gate is not present.
const VECTOR_NO_GATE: u32 = 0xE8;

/// How an LVT timer interrupt on [`VECTOR_NO_GATE`] went with `entry` in
/// its IDT slot: the exception it raised, and whether the vector was in
/// service before the kernel's EOI and after it.
fn undeliverable(entry: u64) -> Result<(Fault, bool, bool), &'static str> {
    let idt = Table::base(&IDT);
    let isr_reg = APIC_REG_ISR + (VECTOR_NO_GATE / 32) * 0x10;
    let isr_bit = 1 << (VECTOR_NO_GATE % 32);
    pv::write_idt_entry(idt, VECTOR_NO_GATE, entry);
    pv::apic_write(apic::REG_LVT_TIMER, VECTOR_NO_GATE);
    let result = trap::catch(|| {
        pv::set_alarm(LVTT.flags(false), pv::cycles_now() + ms(1), 0);
        pv::irq_enable();
        let _ = wait_until(ms(200), || false);
        pv::irq_disable();
        0
    });
    pv::irq_disable();
    let in_service = pv::apic_read(isr_reg) & isr_bit != 0;
    pv::apic_write(apic::REG_EOI, 0);
    let after_eoi = pv::apic_read(isr_reg) & isr_bit != 0;
    LVTT.disconnect();
    let _ = pv::cancel_alarm(LVTT.flags(false));
    match result {
        Ok(_) => Err("no exception within 200 ms"),
        Err(fault) => Ok((fault, in_service, after_eoi)),
    }
}

/// The LVT timer routed to a vector the kernel never set up: an IDT slot
/// of zeros (no gate type) raises #GP, a 32-bit interrupt gate with P
/// clear raises #NP, each with the vector's IDT error code (index << 3 |
/// IDT, plus EXT for an external event; QEMU's TCG leaves EXT clear), as
/// the processor checks them (SDM vol. 2, INT n: type, then present). The
/// vector stays in service until the kernel's EOI.
pub fn irq_vector_without_gate() -> Outcome {
    let gate = Table::read(&IDT, VECTOR_NO_GATE as usize);
    let never_set = undeliverable(0);
    let not_present = undeliverable(gate & !(1 << 47));
    pv::write_idt_entry(Table::base(&IDT), VECTOR_NO_GATE, gate);
    let mut codes = [0u32; 2];
    for (i, (result, want, name)) in [
        (never_set, 13u32, "an IDT slot of zeros"),
        (not_present, 11u32, "a gate not present"),
    ]
    .into_iter()
    .enumerate()
    {
        let (fault, in_service, after_eoi) = match result {
            Ok(seen) => seen,
            Err(why) => fail!("{name} on vector {VECTOR_NO_GATE:#x}: {why}"),
        };
        ensure!(
            fault.vector == want,
            "{name}: {} instead of vector {want}",
            fault
        );
        ensure_eq!(
            fault.error_code & !1,
            (VECTOR_NO_GATE << 3) | 2,
            "error code without EXT (index << 3 | IDT)"
        );
        ensure!(
            in_service,
            "{name}: vector {VECTOR_NO_GATE:#x} not in service before the EOI"
        );
        ensure!(
            !after_eoi,
            "{name}: vector {VECTOR_NO_GATE:#x} still in service after the EOI"
        );
        codes[i] = fault.error_code;
    }
    pass!(
        "vector {VECTOR_NO_GATE:#x}: zeros #GP({:#x}), gate not present #NP({:#x}); in service until the EOI",
        codes[0],
        codes[1]
    )
}

/// What the hooks of `irq_nested_over_user_frame` saw: each frame (and
/// its address) is written by its own handler only, and read after both
/// are done; the outer handler waits for the inner one on an atomic.
static OUTER_FRAME: Global<Option<(TrapFrame, u32)>> = Global::new(None);
static INNER_FRAME: Global<Option<(TrapFrame, u32)>> = Global::new(None);
static INNER_SEEN: AtomicBool = AtomicBool::new(false);
static INNER_WAITED: AtomicBool = AtomicBool::new(false);

/// IRQ 0 nested over the LVT timer's handler: recorded and acknowledged.
fn nested_inner(frame: &mut TrapFrame) -> bool {
    let at = frame as *mut TrapFrame as u32;
    INNER_FRAME.with(|f| *f = Some((*frame, at)));
    INNER_SEEN.store(true, Ordering::SeqCst);
    pic::eoi(0);
    true
}

/// The LVT timer's interrupt over ring 3: records its frame, EOIs, then
/// enables interrupts inside the handler until IRQ 0 nests on it, and lets
/// the user code finish.
fn nested_outer(frame: &mut TrapFrame) -> bool {
    let at = frame as *mut TrapFrame as u32;
    OUTER_FRAME.with(|f| *f = Some((*frame, at)));
    pv::apic_write(apic::REG_EOI, 0);
    pv::set_alarm(IRQ0.flags(false), pv::cycles_now() + ms(1), 0);
    pv::irq_enable();
    let waited = wait_until(ms(500), || INNER_SEEN.load(Ordering::SeqCst));
    pv::irq_disable();
    INNER_WAITED.store(waited, Ordering::SeqCst);
    // SAFETY: the user word is ring 3's to read; the kernel writes it once.
    unsafe { USER_WORD.as_ptr().write_volatile(1) };
    true
}

/// A timer interrupt arriving while ring 3 runs: the kernel's handler gets
/// a ring-3 frame (user CS, ESP, SS) on the ring-0 stack the kernel named,
/// can take another interrupt nested on it (a kernel frame right below),
/// and returns to ring 3, which carries on.
pub fn irq_nested_over_user_frame() -> Outcome {
    OUTER_FRAME.with(|f| *f = None);
    INNER_FRAME.with(|f| *f = None);
    INNER_SEEN.store(false, Ordering::SeqCst);
    INNER_WAITED.store(false, Ordering::SeqCst);
    USER_WORD.with(|w| *w = 0);
    trap::set_hook(LVTT.vector, Some(nested_outer));
    trap::set_hook(IRQ0.vector, Some(nested_inner));
    LVTT.connect();
    IRQ0.connect();
    pv::set_alarm(LVTT.flags(false), pv::cycles_now() + ms(2), 0);
    let spins = 0x4000_0000;
    let exit = user::run_iret(
        Snippet::WaitWord,
        UserRegs {
            ebx: USER_WORD.as_ptr() as u32,
            ecx: spins,
            ..UserRegs::default()
        },
        0x202,
    );
    pv::irq_disable();
    trap::set_hook(LVTT.vector, None);
    trap::set_hook(IRQ0.vector, None);
    LVTT.disconnect();
    IRQ0.disconnect();
    let _ = pv::cancel_alarm(IRQ0.flags(false));
    let (outer_seen, inner_seen) = (OUTER_FRAME.with(|f| *f), INNER_FRAME.with(|f| *f));
    ensure_eq!(
        exit.frame.vector,
        trap::VECTOR_SYSCALL,
        "how the user run ended"
    );
    ensure!(
        exit.frame.ecx != 0,
        "ring 3 spun {spins} times without the interrupt coming back to it"
    );
    let Some((outer, outer_at)) = outer_seen else {
        fail!("no LVT timer interrupt over ring 3");
    };
    ensure_eq!(
        outer.cs & 0xFFFF,
        u32::from(USER_CS),
        "CS of the interrupted ring-3 code"
    );
    ensure_eq!(
        outer.user_ss & 0xFFFF,
        u32::from(USER_DS),
        "SS of ring 3 in the frame"
    );
    ensure_eq!(
        outer.user_esp,
        user::user_stack_top(),
        "ESP of ring 3 in the frame"
    );
    let code = Snippet::WaitWord.address();
    ensure!(
        (code..code + 16).contains(&outer.eip),
        "EIP {:#x} outside the user loop at {code:#x}",
        outer.eip
    );
    ensure_eq!(
        outer_at + core::mem::size_of::<TrapFrame>() as u32,
        crate::kmain::ring0_stack_top(),
        "end of the ring-3 frame (the ring-0 stack's top)"
    );
    ensure!(
        INNER_WAITED.load(Ordering::SeqCst),
        "IRQ 0 did not nest on the handler within 500 ms"
    );
    let Some((inner, inner_at)) = inner_seen else {
        fail!("no nested IRQ 0");
    };
    ensure_eq!(
        inner.cs & 3,
        u32::from(pv::kernel_rpl()),
        "RPL of the nested frame's CS (the handler's ring)"
    );
    ensure!(
        inner_at < outer_at,
        "nested frame at {inner_at:#x} not below the outer one at {outer_at:#x}"
    );
    ensure!(
        inner.eflags & 0x200 != 0,
        "the nested interrupt's frame has IF clear"
    );
    pass!(
        "LVT timer over ring 3 at eip {:#x}: frame ends at the ring-0 stack top; IRQ 0 nested {} bytes below; back to ring 3, which finished",
        outer.eip,
        outer_at - inner_at
    )
}

/// Records the LVT timer's interrupt over ring 3 and lets ring 3 finish.
fn user_interrupt(frame: &mut TrapFrame) -> bool {
    let at = frame as *mut TrapFrame as u32;
    OUTER_FRAME.with(|f| *f = Some((*frame, at)));
    pv::apic_write(apic::REG_EOI, 0);
    // SAFETY: the user word is ring 3's to read; the kernel writes it once.
    unsafe { USER_WORD.as_ptr().write_volatile(1) };
    true
}

/// An interrupt already pending when the kernel IRETs to ring 3 with IF
/// set: the processor changes IF and returns at once, so the interrupt
/// comes right after the return, with a ring-3 frame at the first user
/// instruction (a kernel frame inside the IRET would let a kernel's
/// return-to-user checks miss what its handler asked for).
pub fn irq_pending_at_iret_to_user() -> Outcome {
    OUTER_FRAME.with(|f| *f = None);
    USER_WORD.with(|w| *w = 0);
    pv::irq_disable();
    LVTT.connect();
    pv::set_alarm(LVTT.flags(false), 0, 0);
    let requested = wait_until(ms(200), || LVTT.pending());
    trap::set_hook(LVTT.vector, Some(user_interrupt));
    let exit = user::run_iret(
        Snippet::WaitWord,
        UserRegs {
            ebx: USER_WORD.as_ptr() as u32,
            ecx: 0x4000_0000,
            ..UserRegs::default()
        },
        0x202,
    );
    pv::irq_disable();
    trap::set_hook(LVTT.vector, None);
    LVTT.disconnect();
    ensure!(
        requested,
        "the alarm's interrupt was not requested within 200 ms"
    );
    ensure_eq!(
        exit.frame.vector,
        trap::VECTOR_SYSCALL,
        "how the user run ended"
    );
    let Some((frame, at)) = OUTER_FRAME.with(|f| *f) else {
        fail!("the pending interrupt never came");
    };
    ensure_eq!(
        frame.cs & 0xFFFF,
        u32::from(USER_CS),
        "CS in the interrupt's frame"
    );
    ensure_eq!(
        frame.eip,
        Snippet::WaitWord.address(),
        "EIP in the interrupt's frame (the first user instruction)"
    );
    ensure_eq!(
        frame.user_esp,
        user::user_stack_top(),
        "user ESP in the frame"
    );
    ensure_eq!(
        at + core::mem::size_of::<TrapFrame>() as u32,
        crate::kmain::ring0_stack_top(),
        "end of the frame (the ring-0 stack's top)"
    );
    pass!(
        "taken right after the IRET, over ring 3 at its first instruction {:#x}",
        frame.eip
    )
}

/// What a DisableInterrupts/EnableInterrupts pair costs in hypercalls:
/// with nothing pending (the goal: none), and with an interrupt pending
/// (requested while interrupts were off), which the enable delivers, the
/// handler's EOI and IRET included. Figures only where the ROM counts.
pub fn irq_mask_hypercalls() -> Outcome {
    const QUIET_PAIRS: u32 = 200;
    const PENDING_PAIRS: u32 = 20;
    let Some(start) = hypercalls() else {
        pass!("no hypercall count at port 0x5A0 here: no figures");
    };
    for _ in 0..QUIET_PAIRS {
        pv::irq_disable();
        pv::irq_enable();
    }
    let quiet = hypercalls().unwrap_or(start).wrapping_sub(start);
    pv::irq_disable();
    LVTT.connect();
    let (mut pending_cost, mut delivered) = (0u32, 0u32);
    for _ in 0..PENDING_PAIRS {
        let before = irq_count(LVTT.vector);
        pv::set_alarm(LVTT.flags(false), 0, 0);
        if !wait_until(ms(100), || LVTT.pending()) {
            break;
        }
        let c0 = hypercalls().unwrap_or(0);
        pv::irq_disable();
        pv::irq_enable();
        let c1 = hypercalls().unwrap_or(0);
        pv::irq_disable();
        pending_cost += c1.wrapping_sub(c0);
        delivered += irq_count(LVTT.vector) - before;
    }
    LVTT.disconnect();
    ensure_eq!(delivered, PENDING_PAIRS, "interrupts the enables delivered");
    ensure_eq!(
        quiet,
        0u32,
        "hypercalls for Disable/Enable pairs with nothing pending"
    );
    pass!(
        "hypercalls per Disable/EnableInterrupts pair: {quiet}/{QUIET_PAIRS} with nothing pending, {pending_cost}/{PENDING_PAIRS} with an interrupt pending (delivered, EOI, IRET)"
    )
}

/// Register markers a direct call into the ROM must give back (ECX, EDX).
const ECX_MARK: u32 = 0xC0C1_C2C3;
const EDX_MARK: u32 = 0xD0D1_D2D3;

/// Calls the ROM's code at `eip` with EAX = `eax` and markers in ECX and
/// EDX; returns EAX, ECX and EDX after.
fn call_marked(eip: u32, eax: u32) -> [u32; 3] {
    let (a, c, d): (u32, u32, u32);
    // SAFETY: `eip` is the ROM's code for an interrupt-flag call, which
    // takes EAX (SetInterruptMask) and changes at most EAX and the flags;
    // every register it could touch is an output here anyway.
    unsafe {
        asm!(
            "call {f}",
            f = in(reg) eip,
            inlateout("eax") eax => a,
            inlateout("ecx") ECX_MARK => c,
            inlateout("edx") EDX_MARK => d,
        )
    };
    [a, c, d]
}

/// The ROM's code for the interrupt-flag calls, called directly by the
/// addresses GetRelocationInfo gave. A ROM may answer NONE for them (the
/// native ROM does: each is one instruction on hardware, so a kernel keeps
/// its own CLI, STI, PUSHF and POPF) and still give its code; this holds
/// that code to the calls' effects and to what Linux's inline sites need
/// (ECX and EDX kept; EAX too but for GetInterruptMask's result), whatever
/// the kernel's sites were patched to.
pub fn irq_rom_entries_direct() -> Outcome {
    if !pv::vmi_active() {
        skip!("no VMI ROM: no ROM code to call");
    }
    let calls = [
        VmiCall::DisableInterrupts,
        VmiCall::EnableInterrupts,
        VmiCall::GetInterruptMask,
        VmiCall::SetInterruptMask,
    ];
    let [Some(disable), Some(enable), Some(get), Some(set)] = calls.map(pv::rom_entry) else {
        let missing = calls.iter().find(|c| pv::rom_entry(**c).is_none());
        skip!(
            "the ROM gives no code for {}",
            missing.map_or("?", |c| c.name())
        );
    };
    // Each ROM call starts from the other state, set by the kernel's own
    // calls, so a call that did nothing shows.
    let saved = pv::save_fl();
    pv::irq_enable();
    let off = call_marked(disable, 0x1234_5678);
    let off_mask = pv::save_fl();
    let off_get = call_marked(get, 0x5A5A_5A5A);
    let on = call_marked(enable, 0x8765_4321);
    let on_mask = pv::save_fl();
    let on_get = call_marked(get, 0);
    let set_off = call_marked(set, !0x200);
    let set_off_mask = pv::save_fl();
    let set_on = call_marked(set, 0x200);
    let set_on_mask = pv::save_fl();
    pv::restore_fl(saved);
    let marks = |r: [u32; 3]| [r[1], r[2]] == [ECX_MARK, EDX_MARK];
    ensure!(
        [off, on, off_get, on_get, set_off, set_on]
            .into_iter()
            .all(marks),
        "ECX/EDX not kept: Disable {off:x?}, Enable {on:x?}, GetMask {off_get:x?} \
         {on_get:x?}, SetMask {set_off:x?} {set_on:x?}"
    );
    ensure_eq!(off[0], 0x1234_5678u32, "EAX after DisableInterrupts");
    ensure_eq!(on[0], 0x8765_4321u32, "EAX after EnableInterrupts");
    ensure_eq!(off_mask, 0u32, "mask after the ROM's DisableInterrupts");
    ensure_eq!(
        off_get[0] & 0x200,
        0u32,
        "the ROM's GetInterruptMask, disabled"
    );
    ensure_eq!(on_mask, 0x200u32, "mask after the ROM's EnableInterrupts");
    ensure_eq!(
        on_get[0] & 0x200,
        0x200u32,
        "the ROM's GetInterruptMask, enabled"
    );
    ensure_eq!(
        set_off_mask,
        0u32,
        "mask after the ROM's SetInterruptMask(~0x200)"
    );
    ensure_eq!(
        set_on_mask,
        0x200u32,
        "mask after the ROM's SetInterruptMask(0x200)"
    );
    pass!(
        "Disable/Enable/GetInterruptMask/SetInterruptMask at {disable:#x} {enable:#x} \
         {get:#x} {set:#x} (relocations {} {} {} {})",
        pv::relocation(VmiCall::DisableInterrupts).type_,
        pv::relocation(VmiCall::EnableInterrupts).type_,
        pv::relocation(VmiCall::GetInterruptMask).type_,
        pv::relocation(VmiCall::SetInterruptMask).type_
    )
}

/// Jumps to the ROM's IRET code at `eip` with a frame returning here, to
/// the kernel's code segment, with the interrupt flag `interrupts`.
fn iret_through(eip: u32, interrupts: bool) {
    let flags = (read_eflags() & !0x200) | if interrupts { 0x200 } else { 0 };
    // SAFETY: an IRET frame (EIP, CS, EFLAGS) for a return to the label in
    // this kernel's code at its own privilege level: the ROM's IRET code
    // pops it and comes back, the stack as before. Every register an IRET
    // through a hypervisor might use is an output.
    unsafe {
        asm!(
            "push {flags}",
            "push {cs}",
            // The CALL pushes the frame's EIP: the JMP after it.
            "call 3f",
            "jmp 4f",
            "3: jmp {f}",
            "4:",
            flags = inout(reg) flags => _,
            cs = inout(reg) u32::from(pv::kernel_cs()) => _,
            f = inout(reg) eip => _,
            out("eax") _,
            out("ecx") _,
            out("edx") _,
        )
    }
}

fn read_eflags() -> u32 {
    let flags: u32;
    // SAFETY: reads EFLAGS.
    unsafe { asm!("pushfd", "pop {}", out(reg) flags) };
    flags
}

/// The ROM's IRET code, jumped to directly by the address
/// GetRelocationInfo gave (JUMP_REL, or NONE with code: the native ROM's
/// is the IRETD itself): it returns to the frame's EIP and CS with the
/// frame's interrupt flag, both ways.
pub fn irq_iret_rom_entry_direct() -> Outcome {
    if !pv::vmi_active() {
        skip!("no VMI ROM: no ROM code to call");
    }
    let Some(iret) = pv::rom_entry(VmiCall::Iret) else {
        skip!("the ROM gives no code for IRET");
    };
    let saved = pv::save_fl();
    pv::irq_disable();
    iret_through(iret, true);
    let on = pv::save_fl();
    iret_through(iret, false);
    let off = pv::save_fl();
    pv::restore_fl(saved);
    ensure_eq!(on, 0x200u32, "mask after the ROM's IRET to a frame with IF");
    ensure_eq!(off, 0u32, "mask after the ROM's IRET to a frame without IF");
    pass!(
        "the ROM's IRET at {iret:#x} (relocation {}) returned with IF set, then clear",
        pv::relocation(VmiCall::Iret).type_
    )
}

/// A timer interrupt over ring 3 whose DS and ES hold an LDT data segment
/// with a non-zero base: the kernel's handler gets them in its frame, its
/// IRET gives them back to ring 3 (whose loop then ends by INT 0x80, DS
/// and ES still so). A platform addressing its memory through the
/// interrupted code's DS on the way in (or on the IRET) would read and
/// write elsewhere.
pub fn irq_over_user_ldt_data_segments() -> Outcome {
    super::usermode::with_shifted_ldt_segment(irq_over_user_data_segments)
}

/// The selector ring 3 runs `SegmentsWait` with.
static WAIT_SELECTOR: AtomicU32 = AtomicU32::new(0);

/// The LVT timer over `SegmentsWait`: once ring 3 has loaded its data
/// segments (an earlier interrupt, before its first instruction, is
/// acknowledged and the alarm set again), recorded, and ring 3 let finish.
fn segments_wait_interrupt(frame: &mut TrapFrame) -> bool {
    if frame.ds & 0xFFFF != WAIT_SELECTOR.load(Ordering::SeqCst) {
        pv::apic_write(apic::REG_EOI, 0);
        pv::set_alarm(LVTT.flags(false), pv::cycles_now() + ms(1), 0);
        return true;
    }
    user_interrupt(frame)
}

fn irq_over_user_data_segments(selector: u16) -> Outcome {
    OUTER_FRAME.with(|f| *f = None);
    USER_WORD.with(|w| *w = 0);
    WAIT_SELECTOR.store(u32::from(selector), Ordering::SeqCst);
    trap::set_hook(LVTT.vector, Some(segments_wait_interrupt));
    LVTT.connect();
    pv::set_alarm(LVTT.flags(false), pv::cycles_now() + ms(2), 0);
    let spins = 0x4000_0000;
    let exit = user::run_iret(
        Snippet::SegmentsWait,
        UserRegs {
            ebx: USER_WORD.as_ptr() as u32,
            ecx: spins,
            edx: u32::from(selector),
            ..UserRegs::default()
        },
        0x202,
    );
    pv::irq_disable();
    trap::set_hook(LVTT.vector, None);
    LVTT.disconnect();
    ensure_eq!(
        exit.frame.vector,
        trap::VECTOR_SYSCALL,
        "how the user run ended"
    );
    ensure!(
        exit.frame.ecx != 0,
        "ring 3 spun {spins} times without the interrupt coming back to it"
    );
    let Some((frame, _)) = OUTER_FRAME.with(|f| *f) else {
        fail!("no LVT timer interrupt over ring 3");
    };
    ensure_eq!(
        frame.cs & 0xFFFF,
        u32::from(USER_CS),
        "CS of the interrupted code"
    );
    let want = u32::from(selector);
    ensure_eq!(frame.ds & 0xFFFF, want, "DS in the interrupt's frame");
    ensure_eq!(frame.es & 0xFFFF, want, "ES in the interrupt's frame");
    ensure_eq!(
        exit.frame.ds & 0xFFFF,
        want,
        "DS back in ring 3 after the IRET"
    );
    ensure_eq!(
        exit.frame.es & 0xFFFF,
        want,
        "ES back in ring 3 after the IRET"
    );
    pass!(
        "LVT timer over ring 3 with DS = ES = {selector:#x} (LDT, base 0x1000) at eip {:#x}: in the frame, back after the IRET",
        frame.eip
    )
}
