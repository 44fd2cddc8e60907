//! The interrupt flag: DisableInterrupts, EnableInterrupts,
//! GetInterruptMask, SetInterruptMask (patched inline sites), IRET
//! restoring it, and pending interrupts delivered when it is re-enabled.

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

use super::timer::{hz, ms, wait_until, Wire, IRQ0, LVTT};
use super::{ensure, ensure_eq, pass, Outcome};
use crate::pv;
use crate::trap::{self, irq_count, TrapFrame, VECTOR_TEST2};

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
