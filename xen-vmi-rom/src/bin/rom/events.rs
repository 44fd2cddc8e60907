//! Xen's events, delivered as the interrupts the kernel expects: the
//! event-channel crate's fair two-level scan and virtual local APIC over
//! vcpu 0's words in shared_info, the ports the ROM has bound, and the
//! 8259 model's output (docs/interrupts-and-time.md, "Delivery").
//!
//! Every port the ROM binds today is its own (`Route::Rom`): VIRQ_TIMER
//! drives the VMI alarms and the PIT model (time.rs), which raise IRQ 0 on
//! the 8259 or the local APIC timer's vector. A port the kernel should see
//! directly (an IPI) would be bound with `Route::Vector` and arrive through
//! the same APIC model. Which interrupt the kernel takes first: the local
//! APIC's highest deliverable vector (its priority rules: TPR, in-service
//! classes), then the 8259's output, which reaches the processor as ExtINT,
//! past the APIC's priority logic.
//!
//! The state lives in the ROM's state page, right after the run-time state
//! (runtime.rs) and apart from it, so the upcall can hand the timer's event
//! to code that uses the run-time state while this state is borrowed.

use core::sync::atomic::Ordering;

use event_channel::{
    disable_interrupts, enable_interrupts, interrupt_mask, set_interrupt_mask, AtomicEventWords,
    Binding, Delivery, EventBitmaps, LoneRomPort, PortTable, Route, ScanBudget, VcpuEventFlags,
    VcpuEvents, Vector, Wakeup,
};
use xen_abi::hypercall::Hypervisor;
use xen_vmi_rom::layout::{ROM_STATE_VA, SHARED_INFO_VA};
use xen_vmi_rom::rom_state::{POOL_MFNS_OFFSET, ROM_RUNTIME_OFFSET};

use crate::console::Line;
use crate::runtime::{runtime, upcall_pending, Runtime};
use crate::xen::hypervisor;

/// Ports the ROM can bind: the timer today, the console and xenstore
/// channels and a few IPIs later.
const PORT_SLOTS: usize = 8;

/// Tags of the events the ROM consumes itself (`Route::Rom`).
pub const TAG_TIMER: u8 = 0;

/// The event state.
pub struct EventState {
    ports: PortTable<PORT_SLOTS>,
    vcpu: VcpuEvents,
    /// Interrupts delivered to the kernel so far (Halt waits for one).
    delivered: u32,
    /// VIRQ_TIMER's port, once bound and fit for the tick's one-step path.
    lone_timer_port: Option<LoneRomPort>,
}

/// Where the event state lives: after the run-time state, 64-byte aligned.
pub const EVENT_STATE_OFFSET: u32 =
    (ROM_RUNTIME_OFFSET + core::mem::size_of::<Runtime>() as u32 + 63) & !63;
/// Where the timer state (time.rs) lives: after the event state.
pub const TIME_STATE_OFFSET: u32 =
    (EVENT_STATE_OFFSET + core::mem::size_of::<EventState>() as u32 + 63) & !63;

const _: () = assert!(
    TIME_STATE_OFFSET + core::mem::size_of::<crate::time::TimeState>() as u32 <= POOL_MFNS_OFFSET,
    "the event and timer state must fit below the pool table"
);

pub fn state() -> &'static mut EventState {
    // SAFETY: the state page is mapped read-write in every address space;
    // `init` fills this part before any event can arrive, and the ROM runs
    // on one vCPU with events masked around every change (see `masked`).
    unsafe { &mut *((ROM_STATE_VA + EVENT_STATE_OFFSET) as *mut EventState) }
}

/// vcpu 0's event words in shared_info, as the event-channel crate sees
/// them.
pub fn words() -> AtomicEventWords<'static> {
    // SAFETY: shared_info is mapped at SHARED_INFO_VA; its evtchn_pending
    // and evtchn_mask arrays start at 0x800 and vcpu 0's event fields at 0,
    // laid out as the crate's views (they assert the x86_32 offsets).
    unsafe {
        AtomicEventWords::new(
            &*((SHARED_INFO_VA + event_channel::abi::SHARED_INFO_EVTCHN_PENDING as u32)
                as *const EventBitmaps),
            &*(SHARED_INFO_VA as *const VcpuEventFlags),
        )
    }
}

pub fn init() {
    // The IRET window must be laid out as `iret_window` expects.
    // SAFETY: computes an address from EIP; reads the ROM's own code.
    let window = unsafe { vmi_addr_iret_window() };
    // SAFETY: as above.
    let bytes = |at: u32| unsafe { ((window + at) as *const u8).read() };
    if !(window - IRET_WINDOW_OFFSET).is_multiple_of(32)
        || (bytes(0), bytes(7), bytes(9)) != (0x80, 0x75, 0xCF)
    {
        Line::new()
            .text(b"xen-vmi-rom: the IRET window is not laid out as events.rs expects")
            .print();
        crate::xen::crash();
    }
    let st = (ROM_STATE_VA + EVENT_STATE_OFFSET) as *mut EventState;
    // SAFETY: the area is mapped, writable, not in use yet, and inside the
    // state page (asserted above).
    unsafe {
        core::ptr::write(
            st,
            EventState {
                ports: PortTable::new(),
                vcpu: match VcpuEvents::new(0, ScanBudget::DEFAULT) {
                    Ok(vcpu) => vcpu,
                    Err(_) => crate::xen::crash(),
                },
                delivered: 0,
                lone_timer_port: None,
            },
        );
    }
}

/// Records a port Xen bound for the ROM; its events go to the ROM's
/// handler for `tag`.
pub fn bind_rom_port(port: u32, binding: Binding, tag: u8) {
    if state()
        .ports
        .bind(port, binding, 0, Route::Rom(tag))
        .is_err()
    {
        Line::new()
            .text(b"xen-vmi-rom: event channel port ")
            .dec(port)
            .text(b" could not be recorded (out of range, taken, or no slot left)")
            .print();
    } else if tag == TAG_TIMER {
        let st = state();
        st.lone_timer_port = event_channel::Port::new(port)
            .ok()
            .and_then(|port| st.vcpu.lone_rom_port(&st.ports, port));
    }
}

/// The event of a ROM port: the vector it raises in the local APIC, if any.
fn rom_event(ports: &PortTable<PORT_SLOTS>, port: event_channel::Port) -> Option<Vector> {
    match ports.get(port).map(|info| info.route()) {
        Some(Route::Rom(TAG_TIMER)) => crate::time::timer_event(),
        _ => None,
    }
}

/// Xen's upcall (events masked by Xen; the kernel's IF was set): the
/// vector to deliver now, acknowledged (the APIC's in service, or the
/// 8259's INTA cycle), or None.
pub fn upcall() -> Option<u8> {
    let words = words();
    let st = state();
    let ports = &st.ports;
    let vector = match st
        .vcpu
        .upcall_with(ports, &words, |port| rom_event(ports, port))
    {
        Delivery::Inject(vector) => Some(vector.get()),
        Delivery::Resume => {
            let pic = &mut runtime().bus.pic;
            pic.int_output().then(|| pic.acknowledge())
        }
    };
    if vector.is_some() {
        st.delivered = st.delivered.wrapping_add(1);
    }
    note_deliverable();
    vector
}

/// Xen's bounce frame on the kernel's stack as the event entry finds it
/// (xen.h, compat bounce frame): EIP, CS (the saved upcall mask in bits
/// 16-23), EFLAGS, and ESP, SS from ring 3.
#[repr(C)]
pub struct UpcallFrame {
    pub eip: u32,
    pub cs: u32,
    pub eflags: u32,
}

/// Xen's upcall, first the one-step path for the timer tick, the upcall a
/// kernel on a one-shot LVT timer alarm (a tickless Linux) gets most: when
/// VIRQ_TIMER's port is the only event pending, the LVT timer's one-shot is
/// the only deadline Xen's timer serves and is due, its vector goes in
/// service at once (nothing requested, its class above the processor
/// priority), and the kernel's gate for it is an interrupt gate, the tick
/// is taken as the general path would take it (`events::upcall`,
/// `time::timer_event`, then `traps.rs` `interrupt`): the port's pending bit
/// cleared and the scan's cursor moved past it, the alarm gone and Xen's
/// one-shot spent with nothing to re-arm, the vector in service, lazy
/// updates flushed, and the upcall's frame sent through the gate with
/// events still masked (IF clear in the handler). Every other upcall, or
/// one that stopped the ROM in its IRET window, goes to the general path
/// with nothing changed (`vmi_event_entry`, traps.rs).
///
/// Returns the gate's selector (high half) and offset (low half), or 0
/// for the general path.
extern "C" fn lone_tick(frame: &UpcallFrame) -> u64 {
    let st = state();
    let Some(lone) = st.lone_timer_port else {
        return 0;
    };
    if may_be_in_iret_window(frame.eip, frame.cs) {
        return 0;
    }
    let Some(vector) = crate::time::lone_lvtt_tick_due() else {
        return 0;
    };
    // The handler may use mappings the kernel updated in lazy mode (the
    // general path's `interrupt` flushes them the same way, before it
    // reads the gate).
    if lazy_updates_queued() {
        crate::paging::before_interrupt();
    }
    let Some((offset, selector)) = interrupt_gate(vector) else {
        return 0;
    };
    if !st.vcpu.take_lone_rom_port(&words(), lone, vector) {
        return 0;
    }
    crate::time::lone_lvtt_tick_taken();
    st.delivered = st.delivered.wrapping_add(1);
    note_deliverable();
    (u64::from(selector) << 32) | u64::from(offset)
}

/// Whether the paging queue holds updates (`paging::before_interrupt`
/// sends them), looked at without `mmu::heap`, whose out-of-line path
/// builds the heap: it is built once `heap_ready` is set.
#[inline]
fn lazy_updates_queued() -> bool {
    if !runtime().paging.heap_ready {
        return false;
    }
    // SAFETY: with heap_ready set, mmu.rs has built its Heap at
    // SHADOW_HEAP_VA, mapped in every address space; read only, with
    // events masked (nothing else runs).
    let heap = unsafe { &*(xen_vmi_rom::layout::SHADOW_HEAP_VA as *const crate::mmu::Heap) };
    !heap.batch.is_empty()
}

/// The kernel's gate for `vector` if it is a present 32-bit interrupt gate
/// (SDM vol. 3, "IDT Descriptors": P, DPL, S clear, type 1110) with a
/// non-zero offset: its offset and selector. Anything else (a trap gate,
/// which gives the flag back; no usable gate, the processor's #GP or #NP)
/// is for the general path (traps.rs `interrupt`).
#[inline]
fn interrupt_gate(vector: Vector) -> Option<(u32, u16)> {
    const P_S_TYPE: u32 = 0x9F00;
    const PRESENT_INTERRUPT_GATE: u32 = 0x8E00;
    let tables = &runtime().tables;
    let at = u32::from(vector.get()) * 8;
    if tables.idt_limit == 0 || at + 7 > u32::from(tables.idt_limit) {
        return None;
    }
    // SAFETY: inside the IDT the kernel loaded (checked against its
    // limit), as `desc::idt_gate` reads it; a bad table faults the kernel
    // as the processor's own access would.
    let (lo, hi) = unsafe {
        let entry = (tables.idt_base + at) as *const u32;
        (entry.read_unaligned(), entry.add(1).read_unaligned())
    };
    let offset = (hi & 0xFFFF_0000) | (lo & 0xFFFF);
    (hi & P_S_TYPE == PRESENT_INTERRUPT_GATE && offset != 0).then_some((offset, (lo >> 16) as u16))
}

// Xen's event callback (boot.rs registers it through traps.rs
// `event_alias`): `lone_tick` first; its gate is entered with a far return
// over Xen's frame, as the general path's FORWARD does. The three
// registers `lone_tick` may clobber are kept; the general path starts
// with them as Xen left them.
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_event_tick, "ax"
    .balign 16
    .globl vmi_event_tick_entry
vmi_event_tick_entry:
    push ecx
    push edx
    push eax
    lea eax, [esp + 12]
    push eax
    call {lone_tick}
    add esp, 4
    test eax, eax
    jz 1f
    // [esp]: EAX, EDX, ECX as saved; they become EAX, the gate's offset
    // and its selector.
    mov ecx, [esp + 8]
    mov [esp + 8], edx
    mov edx, [esp + 4]
    mov [esp + 4], eax
    pop eax
    retf
1:  pop eax
    pop edx
    pop ecx
    jmp vmi_event_entry
    .popsection
    "#,
    lone_tick = sym lone_tick,
);

/// Runs `f` with events masked, then gives the kernel's flag back and
/// delivers what became deliverable if the flag allows (as
/// EnableInterrupts does). Inside a trap handler or a masked VMI entry the
/// mask is already set: the flag is given back by their own exit path.
pub fn masked<R>(f: impl FnOnce() -> R) -> R {
    let words = words();
    let saved = interrupt_mask(&words);
    disable_interrupts(&words);
    let result = f();
    if set_interrupt_mask(&words, saved) == Wakeup::DeliverNow {
        hypervisor().force_evtchn_callback();
    }
    result
}

/// Takes the pending events without delivering anything (a kernel
/// reading its interrupt controllers with interrupts off sees the requests
/// made meanwhile, as on hardware).
pub fn poll() {
    masked(|| {
        let words = words();
        let st = state();
        let ports = &st.ports;
        st.vcpu
            .poll_with(ports, &words, |port| rom_event(ports, port));
        // What is due by the clock, even before Xen's timer (late by up to
        // its slop) says so.
        crate::time::catch_up();
        note_deliverable();
    });
}

/// Requests `vector` in the local APIC (the LVT timer outside an upcall).
/// Call with events masked.
pub fn raise_vector(vector: Vector) {
    state().vcpu.raise_vector(&words(), vector);
}

/// Keeps evtchn_upcall_pending set while the 8259 has an interrupt for the
/// processor (the APIC model keeps it set for its own), so that every
/// interrupt-enable path, and Xen before blocking, sees it.
pub fn note_deliverable() {
    if runtime().bus.pic.int_output() {
        upcall_pending().store(1, Ordering::SeqCst);
    }
}

/// Word `word` of a 256-bit APIC register: bit n for vector 32 * word + n
/// (vectors below 32 are never requested).
fn vector_bits(word: usize, test: impl Fn(Vector) -> bool) -> u32 {
    (0..32u32).fold(0, |acc, bit| match Vector::new(word as u32 * 32 + bit) {
        Ok(v) if test(v) => acc | 1 << bit,
        _ => acc,
    })
}

/// The local APIC registers the event state answers for: IRR (0x200-
/// 0x270), ISR (0x100-0x170) and the processor priority (0xA0). `index` is
/// the register's offset / 16.
pub fn apic_read(index: usize) -> Option<u32> {
    match index {
        0x0A => Some(u32::from(state().vcpu.apic().processor_priority())),
        0x10..=0x17 => {
            let apic = state().vcpu.apic();
            Some(vector_bits(index - 0x10, |v| apic.is_in_service(v)))
        }
        0x20..=0x27 => {
            poll();
            let apic = state().vcpu.apic();
            Some(vector_bits(index - 0x20, |v| apic.is_requested(v)))
        }
        _ => None,
    }
}

/// The local APIC registers whose writes change delivery: EOI (0x0B; a
/// write with nothing in service does nothing, as on the APIC) and TPR
/// (0x08). Returns true when the write needs nothing more (EOI keeps no
/// value).
pub fn apic_write(index: usize, value: u32) -> bool {
    match index {
        0x0B => {
            masked(|| {
                let _ended = state().vcpu.end_of_interrupt(&words());
                note_deliverable();
            });
            true
        }
        0x08 => {
            masked(|| state().vcpu.set_task_priority(&words(), value as u8));
            false
        }
        _ => false,
    }
}

// The run-time address of the IRET window (entry.rs), from EIP (AT&T: see
// traps.rs).
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_event_addresses, "ax"
    .globl vmi_addr_iret_window
vmi_addr_iret_window:
    call 1f
1:  popl %eax
    leal (vmi_iret_window - 1b)(%eax), %eax
    ret
    .popsection
    "#,
    options(att_syntax)
);

extern "C" {
    fn vmi_addr_iret_window() -> u32;
}

/// The IRET window's bytes: `cmp byte ptr [pending], 0` (7), `jne` to
/// the Xen path (2), `iretd` (1); the Xen path follows.
const IRET_WINDOW_LEN: u32 = 10;
/// Where an event can stop it: at the cmp, the jne, the iretd.
const IRET_WINDOW_STOPS: [u32; 3] = [0, 7, 9];
/// The window's offset from `vmi_entry_iret`, which is 32-byte aligned,
/// so the window never crosses a page in any mapping of the ROM.
const IRET_WINDOW_OFFSET: u32 = 17;

/// Whether an upcall at `eip` in `cs` may have stopped the ROM's IRET in
/// its window: ring 1, at one of the window's stops in its 32-byte block.
/// Any other EIP (nearly every upcall) is not in it.
#[inline]
fn may_be_in_iret_window(eip: u32, cs: u32) -> bool {
    let in_block = eip.wrapping_sub(IRET_WINDOW_OFFSET) & 31;
    cs & 3 == 1 && IRET_WINDOW_STOPS.contains(&in_block)
}

/// The upcall stopped the ROM's IRET between clearing the mask and the
/// iretd (entry.rs): the kernel must get the event after the return, as
/// from the processor's IRET, not on the ROM's code. Found by the window's
/// own bytes (the kernel may run the ROM through any mapping), it is sent
/// on to the Xen path right after the window with events still masked;
/// Xen's iret then returns and delivers. Returns whether it did.
pub fn iret_window(frame: &mut crate::traps::TrapFrame) -> bool {
    if !may_be_in_iret_window(frame.eip, frame.cs) {
        return false;
    }
    let stop = frame.eip.wrapping_sub(IRET_WINDOW_OFFSET) & 31;
    // SAFETY: computes an address from EIP.
    let ours = unsafe { vmi_addr_iret_window() };
    let start = frame.eip.wrapping_sub(stop);
    // SAFETY: `start` lies in the 32-byte block of the interrupted EIP
    // (checked above), so in its page, which is mapped; `ours` is the
    // ROM's own code.
    let same = (0..IRET_WINDOW_LEN)
        .all(|i| unsafe { ((start + i) as *const u8).read() == ((ours + i) as *const u8).read() });
    if same {
        frame.eip = start + IRET_WINDOW_LEN;
        crate::traps::set_saved_mask(frame, true);
    }
    same
}

/// Halt: wait until an interrupt has been delivered. SCHEDOP_block clears
/// the mask itself and returns at once if an event is pending, so an event
/// that came after the kernel's last check is never slept through; Xen
/// delivers the upcall on the way back. An upcall that finds nothing for
/// the kernel (a request the kernel masked meanwhile) is no wake-up: the
/// vCPU blocks again, as `hlt` stays halted.
pub fn halt() {
    crate::runtime::flush_console();
    let before = state().delivered;
    loop {
        let _ = hypervisor().sched_block();
        if state().delivered != before {
            return;
        }
    }
}

/// The kernel's flag given back on leaving a ROM handler or entry (Xen
/// masked events for it): pending work is delivered now if the flag is
/// set.
pub fn enable_and_deliver() {
    if enable_interrupts(&words()) == Wakeup::DeliverNow {
        hypervisor().force_evtchn_callback();
    }
}

/// An interrupt whose IDT entry cannot be used: the exception the
/// processor raises for it, with the IDT error code (SDM vol. 3, "Error
/// Code": index << 3, IDT bit 1, EXT bit 0 for an external event), and a
/// console line naming the vector. In the processor's order (SDM vol. 2,
/// INT n pseudocode): beyond the IDT's limit, or not a gate type (an entry
/// never written is all zeros): #GP; a gate not present: #NP. A present
/// 16-bit or task gate is refused with #GP too (the ROM delivers through
/// 32-bit interrupt and trap gates only; no VMI kernel uses the others).
pub fn undeliverable(vector: u8) -> (u32, u32) {
    let tables = runtime().tables;
    let error_code = (u32::from(vector) << 3) | 2 | 1;
    let (exception, what): (u32, &[u8]) = if u32::from(vector) * 8 + 7 > u32::from(tables.idt_limit)
    {
        (13, b"lies beyond the IDT's limit: #GP")
    } else {
        // SAFETY: inside the IDT the kernel loaded (checked against its
        // limit); a bad table faults the kernel as the processor would.
        let hi = unsafe {
            core::ptr::read_unaligned((tables.idt_base + u32::from(vector) * 8 + 4) as *const u32)
        };
        // Type and S (bits 8-12): system gates only.
        let gate_type = (hi >> 8) & 0x1F;
        if !matches!(gate_type, 0x5 | 0x6 | 0x7 | 0xE | 0xF) {
            (13, b"has no gate in the kernel's IDT: #GP")
        } else if hi & (1 << 15) == 0 {
            (11, b"has a gate that is not present: #NP")
        } else {
            (
                13,
                b"has a 16-bit or task gate, which the ROM does not deliver: #GP",
            )
        }
    };
    Line::new()
        .text(b"xen-vmi-rom: interrupt vector ")
        .dec(u32::from(vector))
        .text(b" ")
        .text(what)
        .text(b"(")
        .hex(error_code)
        .text(b") to the kernel, as the processor does")
        .print();
    (exception, error_code)
}
