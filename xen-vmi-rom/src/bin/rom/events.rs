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
    Binding, Delivery, EventBitmaps, EventWords, LoneRomPort, PortTable, Route, ScanBudget,
    VcpuEventFlags, VcpuEvents, Vector, Wakeup,
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
    /// What the one-step path reads and leaves (`vmi_event_tick_entry`).
    lone: LoneTick,
}

/// The one-step path's state, read and written by `vmi_event_tick_entry`
/// (laid out for the assembly; events.rs keeps it current).
///
/// `armed_version` folds every condition the ROM can know in advance into
/// the one word the assembly compares: vcpu 0's time info version under
/// which a VIRQ_TIMER means the LVT timer's lone one-shot is due
/// (`alarm_version`, from time.rs) while `vector` is nonzero, `NEVER`
/// (odd, so no stable version) otherwise. `vector` is what
/// `refresh_tick_path` finds after every change of what it depends on:
/// VIRQ_TIMER bound as a lone ROM port, the LVT entry unmasked with a vector the APIC takes at once
/// (`VcpuEvents::lone_lvt_vector`: nothing requested, no scan unfinished,
/// its class above the processor priority's), and that vector's gate a
/// present 32-bit interrupt gate (`gate_*`). Its writers: `upcall`,
/// `poll`, `raise_vector`, the EOI and TPR writes, `bind_rom_port` (the
/// event state); `tick_gate_changed` (the LVT entry, APICWrite; the IDT,
/// desc.rs); the completion of a taken tick (disarms: the vector is in
/// service until the EOI); and `set_tick_alarm` (time.rs, the alarm
/// alone). What can change with none of them knowing is tested in the
/// assembly itself: the time info's version (Xen's), the paging queue and
/// a held context switch (the paging code's), the 8259's requests (the
/// port emulation's), the event words (Xen's).
#[repr(C)]
struct LoneTick {
    /// The time info version under which a VIRQ_TIMER is a tick to take
    /// in one step, or `NEVER`, or `TAKEN`: the assembly took a tick, whose
    /// completion in `VcpuEvents` and in the timer state waits for the
    /// next look at either (`state`, `time::state`).
    armed_version: u32,
    /// The gate's offset and selector, in this order: the far jump's
    /// pointer (m16:32).
    gate_offset: u32,
    gate_selector: u32,
    /// VIRQ_TIMER's port's bit in word 0 of the event words, or 0: not
    /// bound, or in another word (Xen gives the lowest free port, and the
    /// ROM binds a few; a port beyond 31 would take the general path).
    port_bit: u32,
    /// The IRET window's stops as bits of EIP & 255 (`bt` in the
    /// assembly on EIP's low byte). The kernel runs the ROM in place
    /// through page mappings, which keep an address's low 12 bits, so
    /// only these 3 of 256 values can be a stop (a stop at 3 of every 32
    /// bytes sent about a tenth of the ticks, landing anywhere in the
    /// kernel's code, to the exact test in Rust); `iret_window_start`
    /// then tests the window's bytes.
    window_stops: [u32; 8],
    /// The IRET window's address in the mapping `init` ran in: its page
    /// offset is the window's in every mapping.
    window_start: u32,
    /// The vector the path is armed for (the LVT entry's), or 0: not
    /// armed.
    vector: u32,
    /// The time info version under which a VIRQ_TIMER means the LVT
    /// timer's lone one-shot is due (time.rs `program`), or `NEVER`.
    alarm_version: u32,
    /// The vector whose gate `gate_offset` and `gate_selector` hold, or 0.
    gate_vector: u32,
}

// The far jump reads the selector right after the offset (m16:32).
const _: () = assert!(
    core::mem::offset_of!(LoneTick, gate_selector)
        == core::mem::offset_of!(LoneTick, gate_offset) + 4
);

/// No time info version: odd, and Xen's are even when stable.
const NEVER: u32 = u32::MAX;
/// No version either: the one-step path took a tick.
const TAKEN: u32 = u32::MAX - 2;

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

/// The event state, with a tick the one-step path took completed first
/// (`LoneTick::armed_version`): nothing looks at the scan's cursor or the APIC
/// before that.
pub fn state() -> &'static mut EventState {
    // SAFETY: the state page is mapped read-write in every address space;
    // `init` fills this part before any event can arrive, and the ROM runs
    // on one vCPU with events masked around every change (see `masked`).
    let st = unsafe { &mut *((ROM_STATE_VA + EVENT_STATE_OFFSET) as *mut EventState) };
    if st.lone.armed_version == TAKEN {
        complete_lone_tick(st);
    }
    st
}

/// The one-step path's fields, a taken tick left as it is (`state`
/// completes it).
fn lone() -> &'static mut LoneTick {
    // SAFETY: a part of the event state (see `state`).
    unsafe { &mut *(LONE_VA as *mut LoneTick) }
}

/// Whether the one-step path took a tick that is not completed yet
/// (time.rs completes it through `state` before it looks at its alarms).
pub fn tick_taken() -> bool {
    lone().armed_version == TAKEN
}

/// The rest of a tick `vmi_event_tick_entry` took (it cleared the port's
/// pending bit): the scan's cursor past the port and the vector in service,
/// as `VcpuEvents::take_lone_rom_port` leaves them, the delivery counted
/// (Halt waits for it), and the timer's part (time.rs). With events masked: `state` is also called from entries that
/// run with the kernel's flag (APICRead, Halt).
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn complete_lone_tick(st: &mut EventState) {
    let words = words();
    let saved = interrupt_mask(&words);
    disable_interrupts(&words);
    st.lone.armed_version = NEVER;
    match (st.lone_timer_port, Vector::new(st.lone.vector)) {
        (Some(lone), Ok(vector)) => st.vcpu.complete_lone_rom_port(lone, vector),
        _ => lone_tick_without_port(st.lone.vector),
    }
    st.delivered = st.delivered.wrapping_add(1);
    // Not armed again here: the vector is in service now, so nothing of
    // its class is taken alone before the EOI, whose refresh arms it.
    st.lone.vector = 0;
    crate::time::complete_lone_tick();
    if set_interrupt_mask(&words, saved) == Wakeup::DeliverNow {
        hypervisor().force_evtchn_callback();
    }
}

/// The kernel's EOI of the tick the one-step path took, before anything
/// looked at the event state: completed and ended in one step
/// (`VcpuEvents::complete_and_end_lone_rom_port`), with events masked (by
/// APICWrite's entry).
fn end_taken_tick() {
    // SAFETY: as in `state`, which is not called here: this completes the
    // taken tick itself.
    let st = unsafe { &mut *((ROM_STATE_VA + EVENT_STATE_OFFSET) as *mut EventState) };
    st.lone.armed_version = NEVER;
    match (st.lone_timer_port, Vector::new(st.lone.vector)) {
        (Some(lone), Ok(vector)) => {
            let _ended = st
                .vcpu
                .complete_and_end_lone_rom_port(&words(), lone, vector);
        }
        _ => lone_tick_without_port(st.lone.vector),
    }
    st.delivered = st.delivered.wrapping_add(1);
    crate::time::complete_lone_tick();
    refresh_tick_path(st);
}

/// A taken tick with no port to complete it with: the ROM's own state is
/// broken.
#[cold]
#[cfg_attr(feature = "image", optimize(size))]
fn lone_tick_without_port(vector: u32) -> ! {
    Line::rom(b"the timer tick's one-step path took vector ")
        .dec(vector)
        .text(b" without its port")
        .print();
    crate::xen::crash();
}

/// Arms the one-step path or not (`LoneTick`): after every change of the
/// event state and of the LVT entry or its gate.
#[inline(never)]
fn refresh_tick_path(st: &mut EventState) {
    let lvt = runtime().apic.0[crate::time::LVT_TIMER_INDEX];
    // The paging heap built (the assembly reads the queue's length, which
    // lives there; `heap_ready` never goes back), and the port unmasked
    // (the ROM never masks it: its events are the ROM's own; the
    // assembly then needs only the pending word).
    let vector = match st.vcpu.lone_lvt_vector(lvt) {
        Some(vector)
            if st.lone.port_bit != 0
                && u32::from(vector.get()) == st.lone.gate_vector
                && runtime().paging.heap_ready
                && words().mask_word(0) & st.lone.port_bit == 0 =>
        {
            u32::from(vector.get())
        }
        _ => 0,
    };
    st.lone.vector = vector;
    st.lone.armed_version = if vector != 0 {
        st.lone.alarm_version
    } else {
        NEVER
    };
}

/// Xen's timer serves the LVT timer's lone one-shot alone, and a
/// VIRQ_TIMER means it is due as long as vcpu 0's time info is at
/// `version` (time.rs `program`), or it does not (None); events masked.
/// The path stays armed or not as the event state says, for this alarm.
pub fn set_tick_alarm(version: Option<u32>) {
    let lone = lone();
    lone.alarm_version = version.unwrap_or(NEVER);
    // A taken tick stays marked until `state` completes it (which leaves
    // the path disarmed until the next refresh).
    if lone.armed_version != TAKEN {
        lone.armed_version = if lone.vector != 0 {
            lone.alarm_version
        } else {
            NEVER
        };
    }
}

/// Whether VIRQ_TIMER's port is pending in the event words (time.rs, right
/// after setting Xen's timer).
pub fn timer_port_pending() -> bool {
    let pending =
        (SHARED_INFO_VA + event_channel::abi::SHARED_INFO_EVTCHN_PENDING as u32) as *const u32;
    // SAFETY: word 0 of evtchn_pending in the mapped shared_info page,
    // which Xen sets bits in concurrently. (`port_bit` is 0 unless the
    // port is in word 0: then no arming needs the answer.)
    let word = unsafe { core::ptr::read_volatile(pending) };
    word & lone().port_bit != 0
}

/// The LVT timer entry or the IDT changed (APICWrite of the entry; desc.rs
/// `sync_trap_table`, after every LIDT, LGDT and IDT entry write), events
/// masked: the gate of the entry's vector is read again.
pub fn tick_gate_changed() {
    let st = state();
    let vector = runtime().apic.0[crate::time::LVT_TIMER_INDEX] & 0xFF;
    st.lone.gate_vector = 0;
    if Vector::new(vector).is_ok() {
        if let Some(gate) = crate::desc::idt_gate(vector).filter(|gate| gate.kind == 0xE) {
            st.lone.gate_offset = gate.offset;
            st.lone.gate_selector = u32::from(gate.selector);
            st.lone.gate_vector = vector;
        }
    }
    refresh_tick_path(st);
}

/// Where the assembly finds its fields.
const EVENT_STATE_VA: u32 = ROM_STATE_VA + EVENT_STATE_OFFSET;
const LONE_VA: u32 = EVENT_STATE_VA + core::mem::offset_of!(EventState, lone) as u32;
const RUNTIME_VA: u32 = ROM_STATE_VA + ROM_RUNTIME_OFFSET;
const HELD_SWITCH_VA: u32 = RUNTIME_VA
    + core::mem::offset_of!(Runtime, paging) as u32
    + core::mem::offset_of!(crate::paging::Paging, held) as u32
    + core::mem::offset_of!(crate::paging::HeldSwitch, held) as u32;
const PIC_VA: u32 = RUNTIME_VA
    + core::mem::offset_of!(Runtime, bus) as u32
    + core::mem::offset_of!(xen_vmi_rom::ports::IsaBus, pic) as u32;
/// The paging queue's length (mmu.rs builds the heap at SHADOW_HEAP_VA
/// before it sets `heap_ready`; no heap, no queue).
const BATCH_LEN_VA: u32 = xen_vmi_rom::layout::SHADOW_HEAP_VA
    + core::mem::offset_of!(crate::mmu::Heap, batch) as u32
    + mmu_batch::MmuBatch::<xen_vmi_rom::shadow_cache::Tag, { crate::mmu::BATCH }>::LEN_OFFSET
        as u32;

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
        || (bytes(0), bytes(1), bytes(8), bytes(10)) != (0x36, 0x80, 0x75, 0xCF)
    {
        Line::rom(b"the IRET window is not laid out as events.rs expects").print();
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
                lone: LoneTick {
                    armed_version: NEVER,
                    gate_offset: 0,
                    gate_selector: 0,
                    port_bit: 0,
                    window_start: window,
                    window_stops: IRET_WINDOW_STOPS.iter().fold([0; 8], |mut bits, stop| {
                        let byte = (window + stop) & 255;
                        bits[(byte / 32) as usize] |= 1 << (byte % 32);
                        bits
                    }),
                    vector: 0,
                    alarm_version: NEVER,
                    gate_vector: 0,
                },
            },
        );
    }
}

/// Records a port Xen bound for the ROM; its events go to the ROM's
/// handler for `tag`.
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
pub fn bind_rom_port(port: u32, binding: Binding, tag: u8) {
    if state()
        .ports
        .bind(port, binding, 0, Route::Rom(tag))
        .is_err()
    {
        Line::rom(b"event channel port ")
            .dec(port)
            .text(b" could not be recorded (out of range, taken, or no slot left)")
            .print();
    } else if tag == TAG_TIMER {
        let st = state();
        st.lone_timer_port = event_channel::Port::new(port)
            .ok()
            .and_then(|port| st.vcpu.lone_rom_port(&st.ports, port));
        st.lone.port_bit = match st.lone_timer_port {
            Some(lone) if lone.port().word() == 0 => lone.port().word_mask(),
            _ => 0,
        };
        refresh_tick_path(st);
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
    refresh_tick_path(st);
    note_deliverable();
    vector
}

/// Whether an upcall at `eip` stopped the ROM's IRET in its window (the
/// one-step path leaves that to the general path's `iret_window`).
extern "C" fn in_iret_window(eip: u32) -> bool {
    iret_window_start(eip, 1).is_some()
}

// Xen's event callback (boot.rs registers it through traps.rs
// `event_alias`): the timer tick's one-step path, in assembly, else the
// general path (`vmi_event_entry`, traps.rs) with every register as Xen
// left it. It addresses its state through SS only, so the interrupted
// code's DS and ES need no check. Its checks, the common case first: not
// at a stop of the ROM's IRET window (EIP's low byte against a bit map; at
// a stop, the window's own test); vcpu 0's time info version equal to `armed_version`, which holds
// every condition known in advance (`LoneTick`: then this VIRQ_TIMER is
// the alarm's, due); no context switch held and no update queued (once
// the paging heap is built; `paging::before_interrupt` would send them
// first); no unmasked request
// at the 8259 (the general path keeps its output signalled); then, taking
// the event words as a scan round does, VIRQ_TIMER's port the only pending
// unmasked port and its word the only selector bit
// (`VcpuEvents::take_lone_rom_port`; if not, what was taken goes back).
// Then the port's pending bit is cleared (word 0 is exchanged with zero,
// and masked ports' bits taken with it go back), the tick marked taken
// (`armed_version` TAKEN) for Rust to complete at its next look at the event
// or timer state, and the gate entered by a far return over Xen's frame
// with events still masked, as the general path's FORWARD does.
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_event_tick, "ax"
    .balign 16
    .globl vmi_event_tick_entry
vmi_event_tick_entry:
    push eax
    // Every access below goes through SS (the kernel's flat stack segment,
    // as Xen's bounce leaves it) and none through DS or ES, which are the
    // interrupted code's (a null or LDT selector in ring 3): no check of
    // them here, the kernel's gate gets them as the processor delivers
    // them. Only the Rust call at 7 needs them known-flat.
    // [esp + 4]: Xen's frame, EIP then CS. The window's stops: a bit
    // per value of EIP's low byte.
    movzx eax, byte ptr [esp + 4]
    bt ss:[{lone} + {window_stops}], eax
    jc 7f
1:  mov eax, ss:[{time_version}]
    cmp eax, ss:[{lone} + {armed}]
    jne 9f
    // Nothing held or queued (the heap is built: armed only then), no
    // unmasked request at the 8259: all of EAX zero.
    movzx eax, byte ptr ss:[{pic_unmasked}]
    or al, ss:[{held}]
    or eax, ss:[{batch_len}]
    jnz 9f
    // Taken as a scan round takes a lone port: upcall_pending cleared,
    // the selector taken (EAX zero), it holding word 0 (the port's: armed
    // only then) alone, then word 0 taken whole (EAX zero again): the
    // port's bit alone (unmasked: armed only then), or with masked ports
    // besides, whose bits go back.
    mov byte ptr ss:[{upcall_pending}], 0
    xchg ss:[{selector}], eax
    dec eax
    jnz 8f
    xchg ss:[{pending_word}], eax
    cmp eax, ss:[{lone} + {port_bit}]
    jne 4f
3:  mov dword ptr ss:[{lone} + {armed}], {taken}
    pop eax
    jmp fword ptr ss:[{lone} + {gate_offset}]
4:  // EAX: word 0 as taken, not the port's bit alone. Alone still if the
    // other ports pending are all masked (a domU's console and store
    // ports, which the ROM leaves masked): they go back without it.
    push eax
    mov eax, ss:[{mask_word}]
    not eax
    and eax, [esp]
    cmp eax, ss:[{lone} + {port_bit}]
    pop eax
    jne 5f
    xor eax, ss:[{lone} + {port_bit}]
    lock or ss:[{pending_word}], eax
    jmp 3b
5:  // Not alone after all (Xen raised another port meanwhile): word 0
    // goes back whole, and the selector bit taken with the signal Xen
    // gave with it, for the general path.
    lock or ss:[{pending_word}], eax
    mov eax, 1
    jmp 6f
8:  // The selector held other words: its bits (EAX + 1) go back.
    inc eax
6:  lock or ss:[{selector}], eax
    mov byte ptr ss:[{upcall_pending}], 1
    jmp 9f
7:  // EIP's low byte is a stop's: at one if its page offset is (the
    // stops lie within the window's first 11 bytes), and then, in ring 1
    // with the window's bytes there, it is the general path's.
    mov eax, [esp + 4]
    sub eax, ss:[{lone} + {window_start}]
    and eax, 0xFFF
    cmp eax, {window_last_stop}
    ja 1b
    test byte ptr [esp + 8], 2
    jnz 1b
    // The Rust test addresses memory through DS and ES: a known-flat
    // pair (traps.rs), else the general path.
    mov eax, es
    shl eax, 16
    // mov ax, ds (16-bit: the assembler would drop the prefix).
    .byte 0x66, 0x8C, 0xD8
    cmp eax, ss:[{flat_data}]
    je 2f
    cmp eax, ss:[{flat_data} + 4]
    jne 9f
2:  push ecx
    push edx
    push dword ptr [esp + 12]
    // Rust code: the interrupted code's direction flag cleared (its
    // EFLAGS in Xen's frame keeps it).
    cld
    call {in_window}
    add esp, 4
    pop edx
    pop ecx
    test al, al
    jz 1b
9:  pop eax
    jmp vmi_event_entry
    .popsection
    "#,
    lone = const LONE_VA,
    armed = const core::mem::offset_of!(LoneTick, armed_version),
    taken = const TAKEN,
    time_version = const SHARED_INFO_VA
        + (core::mem::offset_of!(xen_abi::xen::SharedInfo, vcpu_info)
            + core::mem::offset_of!(xen_abi::xen::VcpuInfo, time)
            + core::mem::offset_of!(xen_abi::xen::VcpuTimeInfo, version)) as u32,
    gate_offset = const core::mem::offset_of!(LoneTick, gate_offset),
    port_bit = const core::mem::offset_of!(LoneTick, port_bit),
    pending_word = const SHARED_INFO_VA + event_channel::abi::SHARED_INFO_EVTCHN_PENDING as u32,
    mask_word = const SHARED_INFO_VA + event_channel::abi::SHARED_INFO_EVTCHN_MASK as u32,
    window_stops = const core::mem::offset_of!(LoneTick, window_stops),
    window_start = const core::mem::offset_of!(LoneTick, window_start),
    window_last_stop = const IRET_WINDOW_STOPS[IRET_WINDOW_STOPS.len() - 1],
    held = const HELD_SWITCH_VA,
    batch_len = const BATCH_LEN_VA,
    pic_unmasked = const PIC_VA + xen_vmi_rom::pic::PicPair::MASTER_UNMASKED_OFFSET as u32,
    selector = const SHARED_INFO_VA + event_channel::abi::VCPU_INFO_PENDING_SEL as u32,
    upcall_pending = const SHARED_INFO_VA + event_channel::abi::VCPU_INFO_UPCALL_PENDING as u32,
    in_window = sym in_iret_window,
    flat_data = const crate::traps::quick::FLAT_DATA_VA,
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
#[cfg_attr(feature = "image", optimize(size))]
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
        refresh_tick_path(state());
        note_deliverable();
    });
}

/// Requests `vector` in the local APIC (the LVT timer outside an upcall).
/// Call with events masked.
pub fn raise_vector(vector: Vector) {
    let st = state();
    st.vcpu.raise_vector(&words(), vector);
    refresh_tick_path(st);
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
/// value). Called by APICWrite, whose entry masks events (entry.rs
/// `masked_entry!`) and delivers what became deliverable on its way out.
pub fn apic_write(index: usize, value: u32) -> bool {
    match index {
        0x0B => {
            if lone().armed_version == TAKEN {
                end_taken_tick();
            } else {
                let st = state();
                let _ended = st.vcpu.end_of_interrupt(&words());
                refresh_tick_path(st);
            }
            note_deliverable();
            true
        }
        0x08 => {
            let st = state();
            st.vcpu.set_task_priority(&words(), value as u8);
            refresh_tick_path(st);
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

/// The IRET window's bytes: `cmp byte ptr ss:[pending], 0` (8, through
/// SS: DS is what the IRET gives back), `jne` to the Xen path (2),
/// `iretd` (1); the Xen path follows.
const IRET_WINDOW_LEN: u32 = 11;
/// Where an event can stop it: at the cmp, the jne, the iretd.
const IRET_WINDOW_STOPS: [u32; 3] = [0, 8, 10];
/// The window's offset from `vmi_entry_iret`, which is 32-byte aligned,
/// so the window never crosses a page in any mapping of the ROM.
const IRET_WINDOW_OFFSET: u32 = 18;

/// Where the ROM's IRET window starts if an upcall at `eip` in `cs` stopped
/// it there: ring 1, at one of the window's stops in its 32-byte block
/// (any other EIP, nearly every upcall, is not in it), with the window's
/// own bytes there (the kernel may run the ROM through any mapping).
fn iret_window_start(eip: u32, cs: u32) -> Option<u32> {
    let stop = eip.wrapping_sub(IRET_WINDOW_OFFSET) & 31;
    if cs & 3 != 1 || !IRET_WINDOW_STOPS.contains(&stop) {
        return None;
    }
    // SAFETY: computes an address from EIP.
    let ours = unsafe { vmi_addr_iret_window() };
    let start = eip.wrapping_sub(stop);
    // SAFETY: `start` lies in the 32-byte block of the interrupted EIP
    // (checked above), so in its page, which is mapped; `ours` is the
    // ROM's own code.
    let same = (0..IRET_WINDOW_LEN)
        .all(|i| unsafe { ((start + i) as *const u8).read() == ((ours + i) as *const u8).read() });
    same.then_some(start)
}

/// The upcall stopped the ROM's IRET between clearing the mask and the
/// iretd (entry.rs): the kernel must get the event after the return, as
/// from the processor's IRET, not on the ROM's code. Found by
/// `iret_window_start`, it is sent on to the Xen path right after the
/// window with events still masked; Xen's iret then returns and delivers.
/// Returns whether it did.
pub fn iret_window(frame: &mut crate::traps::TrapFrame) -> bool {
    let Some(start) = iret_window_start(frame.eip, frame.cs) else {
        return false;
    };
    frame.eip = start + IRET_WINDOW_LEN;
    crate::traps::set_saved_mask(frame, true);
    true
}

/// Halt: wait until an interrupt has been delivered. SCHEDOP_block clears
/// the mask itself and returns at once if an event is pending, so an event
/// that came after the kernel's last check is never slept through; Xen
/// delivers the upcall on the way back. An upcall that finds nothing for
/// the kernel (a request the kernel masked meanwhile) is no wake-up: the
/// vCPU blocks again, as `hlt` stays halted.
#[cfg_attr(feature = "image", optimize(size))]
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
    Line::rom(b"interrupt vector ")
        .dec(u32::from(vector))
        .text(b" ")
        .text(what)
        .text(b"(")
        .hex(error_code)
        .text(b") to the kernel, as the processor does")
        .print();
    (exception, error_code)
}
