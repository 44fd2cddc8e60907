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
    /// What the one-step path reads and leaves (`vmi_event_tick_entry`).
    lone: LoneTick,
}

/// The one-step path's state, read and written by `vmi_event_tick_entry`
/// (laid out for the assembly; events.rs keeps it current).
#[repr(C)]
struct LoneTick {
    /// The selector bit of VIRQ_TIMER's port's word (1 << word).
    selector_bit: u32,
    /// The port's bit in its word.
    port_bit: u32,
    /// The port number (its bit in `evtchn_pending` as one bit string).
    port: u32,
    /// The address of `evtchn_pending[word]` (`evtchn_mask[word]` is 0x80
    /// above it).
    pending_word_va: u32,
    /// `VcpuEvents::lone_vector_floor` as of the last change of the event
    /// state, at least 1 (the LVT vector's class must be above it, so the
    /// vector is 32 or more, as the APIC delivers), or 16 (nothing is
    /// above it): no lone port, or a tick taken and not yet completed.
    class_floor: u32,
    /// A tick the assembly took whose completion in `VcpuEvents` waits for
    /// the next look at the event state (`state`): its vector, or 0.
    taken_vector: u32,
}

/// The floor that lets no vector through.
const FLOOR_NONE: u32 = 16;

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
/// (`LoneTick::taken_vector`): nothing looks at the scan's cursor or the
/// APIC before that.
pub fn state() -> &'static mut EventState {
    // SAFETY: the state page is mapped read-write in every address space;
    // `init` fills this part before any event can arrive, and the ROM runs
    // on one vCPU with events masked around every change (see `masked`).
    let st = unsafe { &mut *((ROM_STATE_VA + EVENT_STATE_OFFSET) as *mut EventState) };
    if st.lone.taken_vector != 0 {
        complete_lone_tick(st);
    }
    st
}

/// The rest of a tick `vmi_event_tick_entry` took (it cleared the port's
/// pending bit and counted the delivery): the scan's cursor past the port,
/// the vector in service, as `VcpuEvents::take_lone_rom_port` leaves them.
#[cold]
#[inline(never)]
fn complete_lone_tick(st: &mut EventState) {
    let taken = core::mem::replace(&mut st.lone.taken_vector, 0);
    match (st.lone_timer_port, Vector::new(taken)) {
        (Some(lone), Ok(vector)) => st.vcpu.complete_lone_rom_port(lone, vector),
        _ => {
            Line::new()
                .text(b"xen-vmi-rom: the timer tick's one-step path left vector ")
                .dec(taken)
                .text(b" without its port")
                .print();
            crate::xen::crash();
        }
    }
}

/// Takes `VcpuEvents::lone_vector_floor` again for the one-step path:
/// after every change of the event state (an upcall, a poll, a raised
/// vector, an EOI, a TPR write, a binding).
#[inline(never)]
fn refresh_lone_floor(st: &mut EventState) {
    // Vectors below 32 are not delivered (the general path's
    // `time::timer_event` reports such an LVT entry): floor 1 at least.
    st.lone.class_floor = match st.lone_timer_port {
        Some(_) => st
            .vcpu
            .lone_vector_floor()
            .map_or(FLOOR_NONE, |floor| u32::from(floor).max(1)),
        None => FLOOR_NONE,
    };
}

/// Where the assembly finds its fields.
const EVENT_STATE_VA: u32 = ROM_STATE_VA + EVENT_STATE_OFFSET;
const LONE_VA: u32 = EVENT_STATE_VA + core::mem::offset_of!(EventState, lone) as u32;
const DELIVERED_VA: u32 = EVENT_STATE_VA + core::mem::offset_of!(EventState, delivered) as u32;
const RUNTIME_VA: u32 = ROM_STATE_VA + ROM_RUNTIME_OFFSET;
const TABLES_VA: u32 = RUNTIME_VA + core::mem::offset_of!(Runtime, tables) as u32;
const IDT_BASE_VA: u32 = TABLES_VA + core::mem::offset_of!(crate::desc::TableRegs, idt_base) as u32;
const IDT_LIMIT_VA: u32 =
    TABLES_VA + core::mem::offset_of!(crate::desc::TableRegs, idt_limit) as u32;
const LVT_TIMER_VA: u32 = RUNTIME_VA
    + core::mem::offset_of!(Runtime, apic) as u32
    + core::mem::offset_of!(crate::cpu_calls::ApicRegs, 0) as u32
    + 4 * crate::time::LVT_TIMER_INDEX as u32;
const LVT_MASKED: u32 = crate::time::LVT_MASKED;

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
                lone: LoneTick {
                    selector_bit: 0,
                    port_bit: 0,
                    port: 0,
                    pending_word_va: 0,
                    class_floor: FLOOR_NONE,
                    taken_vector: 0,
                },
            },
        );
    }
}

/// Records a port Xen bound for the ROM; its events go to the ROM's
/// handler for `tag`.
#[inline(never)]
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
        if let Some(lone) = st.lone_timer_port {
            let port = lone.port();
            st.lone.selector_bit = 1 << port.word();
            st.lone.port_bit = port.word_mask();
            st.lone.port = port.get();
            st.lone.pending_word_va = SHARED_INFO_VA
                + event_channel::abi::SHARED_INFO_EVTCHN_PENDING as u32
                + 4 * port.word() as u32;
        }
        refresh_lone_floor(st);
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
    refresh_lone_floor(st);
    note_deliverable();
    vector
}

/// The one-step path's last check (`vmi_event_tick_entry`): nothing else
/// to do with the tick, that is no queued page-table update to send before
/// the handler runs (the general path's `paging::before_interrupt`) and no
/// 8259 output to keep signalled (`note_deliverable`). Either sends the
/// tick the general way.
extern "C" fn lone_tick_quiet() -> bool {
    !lazy_updates_queued() && !runtime().bus.pic.int_output()
}

/// Whether an upcall at `eip` stopped the ROM's IRET in its window (the
/// one-step path leaves that to the general path's `iret_window`).
extern "C" fn in_iret_window(eip: u32) -> bool {
    iret_window_start(eip, 1).is_some()
}

/// Whether the paging queue holds updates, or a context switch is held
/// out of it (`paging::before_interrupt` sends both), looked at without
/// `mmu::heap`, which would move a held switch into the queue: the heap
/// is built once `heap_ready` is set.
#[inline]
fn lazy_updates_queued() -> bool {
    let paging = &runtime().paging;
    if !paging.heap_ready {
        return false;
    }
    if paging.held.held {
        return true;
    }
    // SAFETY: with heap_ready set, mmu.rs has built its Heap at
    // SHADOW_HEAP_VA, mapped in every address space; read only, with
    // events masked (nothing else runs).
    let heap = unsafe { &*(xen_vmi_rom::layout::SHADOW_HEAP_VA as *const crate::mmu::Heap) };
    !heap.batch.is_empty()
}

// Xen's event callback (boot.rs registers it through traps.rs
// `event_alias`): the timer tick's one-step path, in assembly,
// else the general path (`vmi_event_entry`, traps.rs) with every register
// as Xen left it. Its checks, in order: not at a stop of the ROM's IRET
// window; the LVT timer's lone one-shot due (time.rs); its LVT entry
// unmasked with a vector whose class is above the floor, so from 32 up and
// taken alone by the APIC at once (`VcpuEvents::lone_vector_floor`); the
// kernel's gate a present 32-bit interrupt gate within the IDT's limit;
// nothing else to do (`lone_tick_quiet`); then, taking the event words as
// a scan round does, VIRQ_TIMER's port the only pending unmasked port and
// its word the only selector bit (`VcpuEvents::take_lone_rom_port`; if
// not, what was taken goes back). Then the port's pending bit is cleared,
// the delivery counted, the alarm's and the APIC's bookkeeping left for
// Rust to complete on its next look at their state
// (`LoneTick::taken_vector`, time.rs `lone_taken`), and the gate entered
// by a far return over Xen's frame with events still masked, as the
// general path's FORWARD does.
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_event_tick, "ax"
    .balign 16
    .globl vmi_event_tick_entry
vmi_event_tick_entry:
    push ecx
    push edx
    push eax
    push ebx
    // [esp + 16]: Xen's frame, EIP then CS.
    mov eax, [esp + 16]
    sub eax, {window_offset}
    and eax, 31
    cmp eax, 9
    jbe 7f
1:  rdtsc
    cmp eax, [{expiry}]
    sbb edx, [{expiry} + 4]
    jb 9f
    mov ecx, [{lvt}]
    test ecx, {lvt_masked}
    jnz 9f
    movzx ecx, cl
    mov eax, ecx
    shr eax, 4
    cmp eax, [{lone} + {floor}]
    jbe 9f
    // EBX: the gate, kept across the call (callee-saved).
    lea eax, [8 * ecx + 7]
    movzx edx, word ptr [{idt_limit}]
    cmp eax, edx
    ja 9f
    mov ebx, [{idt_base}]
    lea ebx, [ebx + 8 * ecx]
    mov eax, [ebx + 4]
    and eax, {p_s_type}
    cmp eax, {interrupt_gate}
    jne 9f
    call {quiet}
    test al, al
    jz 9f
    // Taken as a scan round takes a lone port: upcall_pending cleared,
    // the selector taken, it and the port's word holding only the port,
    // its pending bit cleared.
    mov byte ptr [{upcall_pending}], 0
    xor eax, eax
    xchg [{selector}], eax
    cmp eax, [{lone} + {selector_bit}]
    jne 6f
    mov edx, [{lone} + {pending_word}]
    mov ecx, [edx + {mask_above}]
    not ecx
    and ecx, [edx]
    cmp ecx, [{lone} + {port_bit}]
    jne 6f
    mov ecx, [{lone} + {port}]
    lock btr [{pending}], ecx
    jnc 6f
    movzx ecx, byte ptr [{lvt}]
    mov [{lone} + {taken_vector}], ecx
    mov dword ptr [{lone} + {floor}], {floor_none}
    mov dword ptr [{time_taken}], 1
    mov dword ptr [{expiry}], -1
    mov dword ptr [{expiry} + 4], -1
    inc dword ptr [{delivered}]
    // The gate's offset (EAX: bits 31-16 from the high word, 15-0 from
    // the low one) and selector (ECX).
    mov eax, [ebx + 4]
    mov ax, word ptr [ebx]
    movzx ecx, word ptr [ebx + 2]
    pop ebx
    // [esp]: EAX, EDX, ECX as saved; they become EAX, the offset and the
    // selector.
    mov edx, [esp + 8]
    mov [esp + 8], ecx
    mov ecx, edx
    mov edx, [esp + 4]
    mov [esp + 4], eax
    pop eax
    retf
6:  // Not alone after all (Xen raised another port meanwhile): the
    // selector bits taken (EAX) go back with the signal Xen gave with
    // them, for the general path.
    lock or [{selector}], eax
    mov byte ptr [{upcall_pending}], 1
    jmp 9f
7:  // EIP at 0..9 in its block: at one of the window's stops, in ring 1,
    // with the window's bytes there, it is the general path's.
    test byte ptr [esp + 20], 2
    jnz 1b
    mov ecx, {window_stops}
    bt ecx, eax
    jnc 1b
    push dword ptr [esp + 16]
    call {in_window}
    add esp, 4
    test al, al
    jz 1b
9:  pop ebx
    pop eax
    pop edx
    pop ecx
    jmp vmi_event_entry
    .popsection
    "#,
    window_offset = const IRET_WINDOW_OFFSET,
    window_stops = const (1 << IRET_WINDOW_STOPS[0]) | (1 << IRET_WINDOW_STOPS[1]) | (1 << IRET_WINDOW_STOPS[2]),
    expiry = const crate::time::LONE_LVTT_EXPIRY_VA,
    time_taken = const crate::time::LONE_TAKEN_VA,
    lvt = const LVT_TIMER_VA,
    lvt_masked = const LVT_MASKED,
    lone = const LONE_VA,
    floor = const core::mem::offset_of!(LoneTick, class_floor),
    floor_none = const FLOOR_NONE,
    selector_bit = const core::mem::offset_of!(LoneTick, selector_bit),
    port_bit = const core::mem::offset_of!(LoneTick, port_bit),
    port = const core::mem::offset_of!(LoneTick, port),
    pending_word = const core::mem::offset_of!(LoneTick, pending_word_va),
    taken_vector = const core::mem::offset_of!(LoneTick, taken_vector),
    mask_above = const event_channel::abi::SHARED_INFO_EVTCHN_MASK - event_channel::abi::SHARED_INFO_EVTCHN_PENDING,
    selector = const SHARED_INFO_VA + event_channel::abi::VCPU_INFO_PENDING_SEL as u32,
    upcall_pending = const SHARED_INFO_VA + event_channel::abi::VCPU_INFO_UPCALL_PENDING as u32,
    pending = const SHARED_INFO_VA + event_channel::abi::SHARED_INFO_EVTCHN_PENDING as u32,
    idt_base = const IDT_BASE_VA,
    idt_limit = const IDT_LIMIT_VA,
    p_s_type = const 0x9F00,
    interrupt_gate = const 0x8E00,
    delivered = const DELIVERED_VA,
    quiet = sym lone_tick_quiet,
    in_window = sym in_iret_window,
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
        refresh_lone_floor(state());
        note_deliverable();
    });
}

/// Requests `vector` in the local APIC (the LVT timer outside an upcall).
/// Call with events masked.
pub fn raise_vector(vector: Vector) {
    let st = state();
    st.vcpu.raise_vector(&words(), vector);
    refresh_lone_floor(st);
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
                let st = state();
                let _ended = st.vcpu.end_of_interrupt(&words());
                refresh_lone_floor(st);
                note_deliverable();
            });
            true
        }
        0x08 => {
            masked(|| {
                let st = state();
                st.vcpu.set_task_priority(&words(), value as u8);
                refresh_lone_floor(st);
            });
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
