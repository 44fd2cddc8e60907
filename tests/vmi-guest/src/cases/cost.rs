//! What the hot VMI calls cost in hypercalls, where the ROM can tell: a
//! hypervisor ROM may count its hypercalls at I/O port 0x5A0 (32-bit
//! read). On hardware nothing decodes the port and the read
//! gives all ones: no figures, nothing to check.

use super::{ensure, pass, Outcome};
use crate::pv;
use crate::trap::{self, TrapFrame, VECTOR_TEST};

/// The hypercall count port (not a PC device).
const HYPERCALL_COUNT_PORT: u16 = 0x5A0;

/// Repetitions per call: enough that a stray hypercall per call shows.
const ROUNDS: u32 = 200;

fn hypercalls() -> Option<u32> {
    let v = pv::port_in(4, HYPERCALL_COUNT_PORT);
    (v != u32::MAX).then_some(v)
}

/// Hypercalls `ROUNDS` runs of `f` cost, or None without the port.
fn cost(mut f: impl FnMut()) -> Option<u32> {
    let start = hypercalls()?;
    for _ in 0..ROUNDS {
        f();
    }
    // The port read itself is emulated without a hypercall.
    Some(hypercalls()?.wrapping_sub(start))
}

fn return_at_once(_frame: &mut TrapFrame) -> bool {
    true
}

pub fn hot_call_hypercalls() -> Outcome {
    let Some(irq_pair) = cost(|| {
        pv::irq_disable();
        pv::irq_enable();
    }) else {
        pass!("no hypercall count port: no hypervisor under the calls, none made");
    };
    trap::set_hook(VECTOR_TEST, Some(return_at_once));
    let int_iret = cost(|| {
        // SAFETY: the test gate's hook returns straight away (IRET).
        unsafe { core::arch::asm!("int 0x81") };
    });
    trap::set_hook(VECTOR_TEST, None);
    let stack = cost(|| pv::update_kernel_stack(pv::kernel_ds(), crate::kmain::ring0_stack_top()));
    let save_restore = cost(|| {
        let flags = pv::save_fl();
        pv::irq_disable();
        pv::restore_fl(flags);
    });
    let (Some(int_iret), Some(stack), Some(save_restore)) = (int_iret, stack, save_restore) else {
        pass!("the hypercall count port went away");
    };
    ensure!(
        irq_pair == 0 && save_restore == 0,
        "interrupt-mask calls made hypercalls with nothing pending: {irq_pair} for {ROUNDS} \
         Disable/Enable pairs, {save_restore} for {ROUNDS} save/disable/restore"
    );
    ensure!(
        int_iret == 0,
        "{int_iret} hypercalls for {ROUNDS} int 0x81 + IRET round trips"
    );
    ensure!(
        stack <= ROUNDS,
        "{stack} hypercalls for {ROUNDS} UpdateKernelStack calls"
    );
    pass!(
        "hypercalls per call: Disable+Enable {irq_pair}/{ROUNDS}, save/disable/restore \
         {save_restore}/{ROUNDS}, int+IRET {int_iret}/{ROUNDS}, UpdateKernelStack {stack}/{ROUNDS}"
    )
}
