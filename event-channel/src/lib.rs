//! Xen 2-level event channels for a 32-bit PV guest, as the VMI ROM needs them to deliver
//! Xen events as interrupts to a VMI kernel's IDT vectors.
//!
//! Pure logic over the shared words of `xen/include/public/xen.h` (`shared_info`'s
//! `evtchn_pending[32]` and `evtchn_mask[32]`, `vcpu_info`'s `evtchn_upcall_pending`,
//! `evtchn_upcall_mask` and `evtchn_pending_sel`), reached through the [`EventWords`] trait;
//! [`AtomicEventWords`] implements it with real atomics over views that match the page.
//!
//! - [`enable_interrupts`], [`disable_interrupts`], [`interrupt_mask`],
//!   [`set_interrupt_mask`]: the VMI interrupt-flag calls on `evtchn_upcall_mask`.
//! - [`mask_port`], [`unmask_port`] (with the lost-edge rule), [`raise_as_xen`].
//! - [`PortTable`]: bound ports (a fixed number of slots, any port numbers), what they are,
//!   and the IDT vector each goes to.
//! - [`VcpuEvents`]: the fair round-robin scan, the virtual local APIC ([`VirtualApic`]) and
//!   the upcall that yields the vector to inject.
//!
//! How the ROM uses it:
//! 1. Bind ports with Xen, then record them with [`PortTable::bind`].
//! 2. Xen's event callback (events masked by Xen): [`VcpuEvents::upcall_with`], whose
//!    closure handles the events routed to the ROM (and may raise a vector for them, as the
//!    timer VIRQ raises the local APIC timer's); then inject the [`Delivery::Inject`]
//!    vector, or resume the interrupted context with [`enable_interrupts`] and loop on
//!    [`Wakeup::DeliverNow`]. ([`VcpuEvents::upcall`] leaves ROM events queued for
//!    [`VcpuEvents::take_rom_event`] instead.) A kernel reading its interrupt controller with
//!    interrupts off: [`VcpuEvents::poll_with`].
//! 3. VMI interrupt-flag calls: the free functions; on [`Wakeup::DeliverNow`], run the upcall
//!    path before returning to the kernel.
//! 4. The kernel's EOI or TPR write: [`VcpuEvents::end_of_interrupt`] /
//!    [`VcpuEvents::set_task_priority`] inside [`with_events_masked`].
//! 5. VMI `Halt` (interrupts enabled): if [`enable_interrupts`] reports
//!    [`Wakeup::DeliverNow`], deliver instead of blocking; otherwise `SCHEDOP_block`, which
//!    Xen refuses to sleep in while an upcall is pending.
#![cfg_attr(not(test), no_std)]

pub mod abi;
mod apic;
mod flag;
mod mask;
mod port;
mod table;
mod vcpu;
mod words;

pub use apic::VirtualApic;
pub use flag::{
    disable_interrupts, enable_interrupts, interrupt_mask, set_interrupt_mask, with_events_masked,
    Wakeup,
};
pub use mask::{mask_port, raise_as_xen, unmask_port};
pub use port::{Error, Port, PortSet, Vector};
pub use table::{virq_is_per_vcpu, Binding, FullPortTable, PortInfo, PortTable, Route};
pub use vcpu::{Delivery, Harvest, LoneRomPort, ScanBudget, ScanCursor, VcpuEvents};
pub use words::{AtomicEventWords, EventBitmaps, EventWords, VcpuEventFlags};
