//! The benchmarks' platform on the direct-PV kernel: each operation is
//! what a XenLinux kernel does for it (see [`crate::mm`], [`crate::events`],
//! [`crate::hv`]).

use core::fmt;

use bench_core::{Frame, Lazy, Mapped, Platform, SpaceId, UserExit, UserState};
use xen_abi::arch_x86_32::FLAT_KERNEL_DS;
use xen_abi::xen::MmuextOp;

use crate::{events, hv, mm, traps};

/// The platform handle (all state is in the kernel's globals).
#[derive(Debug)]
pub struct PvPlatform;

/// The ring-1 stack traps from ring 3 arrive on outside the benchmarks'
/// processes.
#[repr(C, align(16))]
struct Stack([u8; 65536]);

static RING1_STACK: bench_core::sync::Global<Stack> =
    bench_core::sync::Global::new(Stack([0; 65536]));

/// Top of the default ring-1 stack.
pub fn ring1_stack_top() -> u32 {
    RING1_STACK.as_ptr() as u32 + 65536
}

impl Platform for PvPlatform {
    fn print(&mut self, args: fmt::Arguments<'_>) {
        crate::console::print(args);
    }

    fn cycles(&mut self) -> u64 {
        events::rdtsc()
    }

    fn cycle_frequency(&mut self) -> u64 {
        events::cycle_frequency()
    }

    fn hypercalls(&mut self) -> Option<u32> {
        Some(hv::hypercall_count())
    }

    fn irq_disable(&mut self) {
        events::irq_disable();
    }

    fn irq_enable(&mut self) {
        events::irq_enable();
    }

    fn new_frame(&mut self) -> Frame {
        mm::new_frame()
    }

    fn kernel_space(&mut self) -> SpaceId {
        mm::KERNEL_SPACE
    }

    fn current_space(&mut self) -> SpaceId {
        mm::current()
    }

    fn create_space(&mut self) -> SpaceId {
        mm::create()
    }

    fn destroy_space(&mut self, space: SpaceId, mapped: &[Mapped]) {
        mm::destroy(space, mapped);
    }

    fn switch_space(&mut self, space: SpaceId) {
        mm::switch(space);
    }

    /// `stack_switch` (queued with the CR3 load in lazy CPU mode).
    fn set_kernel_stack(&mut self, top: u32) {
        hv::stack_switch(FLAT_KERNEL_DS, top);
        hv::commit();
    }

    fn default_kernel_stack(&mut self) -> u32 {
        ring1_stack_top()
    }

    fn set_lazy(&mut self, mode: Lazy) {
        hv::set_lazy(mode != Lazy::None);
    }

    fn map(&mut self, space: SpaceId, va: u32, frame: Frame, writable: bool) {
        mm::map(space, va, frame, writable);
    }

    fn unmap(&mut self, space: SpaceId, va: u32) {
        mm::unmap(space, va);
    }

    fn protect(&mut self, space: SpaceId, va: u32, writable: bool) {
        mm::protect(space, va, writable);
    }

    fn lookup(&mut self, space: SpaceId, va: u32) -> Option<(Frame, bool)> {
        mm::lookup(space, va)
    }

    fn flush_tlb(&mut self) {
        hv::mmuext(MmuextOp::tlb_flush_local());
        hv::commit();
    }

    fn invalidate_page(&mut self, va: u32) {
        hv::mmuext(MmuextOp::invlpg_local(va));
        hv::commit();
    }

    fn run_user(&mut self, start: &UserState) -> UserExit {
        traps::run_user(start)
    }

    fn arm_alarm(&mut self, expiry: u64) {
        events::arm_alarm(expiry);
    }

    fn timer_interrupts(&mut self) -> (u32, u64) {
        events::timer_interrupts()
    }
}
