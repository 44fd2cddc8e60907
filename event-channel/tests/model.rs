//! Property tests: random interleavings of Xen raising ports, the kernel masking, unmasking,
//! enabling and disabling interrupts and sending EOIs, and the ROM taking upcalls, checked
//! against a plain model of the 2-level protocol, the round-robin scan and the local APIC.
//!
//! Invariants checked after every step:
//! - the shared pending and mask bits, the scan cursor, the virtual APIC's IRR/ISR and the
//!   interrupt flag equal the model's; every vector injected is the one the model picks;
//! - no port is taken by the scan while masked, and nothing is injected while interrupts
//!   are disabled (upcalls only run when Xen would deliver one, or when an operation
//!   reported `DeliverNow`, and `DeliverNow` is only ever reported with interrupts enabled);
//! - every pending unmasked port is signalled: `upcall_pending` is set and so is its
//!   selector bit (in `vcpu_info` or carried by an unfinished scan round), and a deliverable
//!   vector also keeps `upcall_pending` set, so nothing can be lost;
//! - each raise edge is delivered at most once, and repeated raises of a pending port
//!   coalesce (a pending bit is a bit).
//!
//! - an event the ROM consumes itself may raise a vector (the timer VIRQ becoming the local
//!   APIC timer's vector, `upcall_with`); that vector competes in the same upcall, and the
//!   port counts as delivered when the vector is injected;
//! - a poll (the kernel reading its interrupt controller with interrupts off) takes pending
//!   ports without injecting anything, and what it took is delivered later.
//!
//! At the end the kernel unmasks everything, enables interrupts and EOIs whatever it is
//! given, reacting only to what the implementation signals; then every raise must have been
//! delivered and nothing may be left pending.

use std::collections::{BTreeMap, BTreeSet};

use event_channel::{
    disable_interrupts, enable_interrupts, interrupt_mask, mask_port, raise_as_xen,
    set_interrupt_mask, unmask_port, with_events_masked, AtomicEventWords, Binding, Delivery,
    EventBitmaps, EventWords, FullPortTable, LoneRomPort, Port, PortTable, Route, ScanBudget,
    VcpuEventFlags, VcpuEvents, Vector, Wakeup,
};
use proptest::prelude::*;

const PORTS: usize = 1024;

/// What an event routed to the ROM with tag `t` raises: nothing, IRQ 0's vector, or the local
/// APIC timer's.
const ROM_RAISES: [Option<u8>; 3] = [None, Some(0x20), Some(0xEF)];

fn rom_raises(tag: u8) -> Option<u8> {
    ROM_RAISES[usize::from(tag) % ROM_RAISES.len()]
}

/// The specification, in the plainest terms.
#[derive(Clone, Debug)]
struct Model {
    pending: Vec<bool>,
    masked: Vec<bool>,
    cursor: usize,
    budget: usize,
    requested: [bool; 256],
    in_service: [bool; 256],
    task_priority: u8,
    interrupts_enabled: bool,
    /// Ports raised since they were last delivered.
    undelivered: BTreeSet<usize>,
    /// Ports taken by the scan whose vector has not been injected since.
    awaiting_vector: BTreeMap<u8, BTreeSet<usize>>,
    /// Ports taken by the scan for the ROM, not yet drained, with their tags.
    rom_queue: BTreeMap<usize, u8>,
    /// The ROM events drained, in order, since the log was last cleared.
    drained_log: Vec<usize>,
    /// Per vector: requests (ports taken, ROM raises) and injections.
    requests: [u32; 256],
    injections: [u32; 256],
}

impl Model {
    fn new(budget: usize) -> Model {
        Model {
            pending: vec![false; PORTS],
            masked: vec![false; PORTS],
            cursor: 0,
            budget,
            requested: [false; 256],
            in_service: [false; 256],
            task_priority: 0,
            interrupts_enabled: false,
            undelivered: BTreeSet::new(),
            awaiting_vector: BTreeMap::new(),
            rom_queue: BTreeMap::new(),
            drained_log: Vec::new(),
            requests: [0; 256],
            injections: [0; 256],
        }
    }

    fn processor_priority_class(&self) -> u8 {
        let in_service_class = (0..256)
            .rev()
            .find(|&v| self.in_service[v])
            .map_or(0, |v| v >> 4);
        (self.task_priority >> 4).max(in_service_class as u8)
    }

    fn deliverable(&self) -> Option<u8> {
        let highest = (0..256).rev().find(|&v| self.requested[v])?;
        ((highest >> 4) as u8 > self.processor_priority_class()).then_some(highest as u8)
    }

    /// One round: the first `budget` pending unmasked ports in circular order from the
    /// cursor. Returns how many were taken.
    fn round(&mut self, table: &PortTable) -> usize {
        let mut taken = 0;
        let start = self.cursor;
        for step in 0..PORTS {
            let port = (start + step) % PORTS;
            if !self.pending[port] || self.masked[port] {
                continue;
            }
            self.pending[port] = false;
            match table.get(Port::new(port as u32).unwrap()).unwrap().route() {
                Route::Vector(vector) => {
                    let v = vector.get();
                    self.requested[usize::from(v)] = true;
                    self.requests[usize::from(v)] += 1;
                    self.awaiting_vector.entry(v).or_default().insert(port);
                }
                Route::Rom(tag) => {
                    self.rom_queue.insert(port, tag);
                }
            }
            taken += 1;
            self.cursor = (port + 1) % PORTS;
            if taken == self.budget {
                break;
            }
        }
        taken
    }

    /// The ROM handles its events: delivered, or raising their vector.
    fn drain_rom_events(&mut self) {
        for (port, tag) in std::mem::take(&mut self.rom_queue) {
            self.drained_log.push(port);
            match rom_raises(tag) {
                None => {
                    self.undelivered.remove(&port);
                }
                Some(v) => {
                    self.requested[usize::from(v)] = true;
                    self.requests[usize::from(v)] += 1;
                    self.awaiting_vector.entry(v).or_default().insert(port);
                }
            }
        }
    }

    fn poll(&mut self, table: &PortTable) {
        let rounds = PORTS.div_ceil(self.budget);
        for _ in 0..rounds {
            let taken = self.round(table);
            self.drain_rom_events();
            if taken < self.budget {
                break;
            }
        }
    }

    fn upcall(&mut self, table: &PortTable) -> Option<u8> {
        loop {
            let taken = self.round(table);
            self.drain_rom_events();
            if let Some(vector) = self.deliverable() {
                self.requested[usize::from(vector)] = false;
                self.in_service[usize::from(vector)] = true;
                return Some(vector);
            }
            if taken < self.budget {
                return None;
            }
        }
    }

    fn end_of_interrupt(&mut self) -> Option<u8> {
        let vector = (0..256).rev().find(|&v| self.in_service[v])?;
        self.in_service[vector] = false;
        Some(vector as u8)
    }
}

struct Sim {
    bitmaps: EventBitmaps,
    flags: VcpuEventFlags,
    table: Box<PortTable>,
    vcpu: VcpuEvents,
    model: Model,
    ports: Vec<usize>,
    /// The ROM's one-step path for a lone event of its own (the timer tick): the first port
    /// routed to the ROM whose event raises a vector, tried before every upcall.
    lone_rom_port: Option<(LoneRomPort, Vector)>,
}

impl Sim {
    fn new(bindings: &BTreeMap<u32, Route>, budget: u32) -> Sim {
        let mut table = Box::new(FullPortTable::new());
        for (&port, &route) in bindings {
            table.bind(port, Binding::Ipi, 0, route).unwrap();
        }
        let budget = ScanBudget::new(budget).unwrap();
        let vcpu = VcpuEvents::new(0, budget).unwrap();
        let lone_rom_port = bindings.iter().find_map(|(&port, &route)| match route {
            Route::Rom(tag) => rom_raises(tag).and_then(|v| {
                let lone = vcpu.lone_rom_port(&table, Port::new(port).unwrap());
                assert_eq!(lone.is_some(), budget.get() >= 2, "a ROM port refused");
                lone.map(|lone| (lone, Vector::new(u32::from(v)).unwrap()))
            }),
            Route::Vector(_) => None,
        });
        Sim {
            bitmaps: EventBitmaps::new(),
            flags: VcpuEventFlags::new(),
            table,
            vcpu,
            model: Model::new(budget.get() as usize),
            ports: bindings.keys().map(|&port| port as usize).collect(),
            lone_rom_port,
        }
    }

    /// The ROM's lone-event path: when it takes the event, it must be exactly the upcall the
    /// model gives (that port drained, its vector injected); when it does not, nothing may
    /// have changed.
    fn try_lone_rom_port(&mut self) -> bool {
        let Some((lone, vector)) = self.lone_rom_port else {
            return false;
        };
        let words = AtomicEventWords::new(&self.bitmaps, &self.flags);
        words.set_upcall_mask(true);
        let state = |vcpu: &VcpuEvents, words: &AtomicEventWords<'_>| {
            (
                format!("{vcpu:?}"),
                pending_bits(words),
                words.selector(),
                words.upcall_pending(),
            )
        };
        let before = state(&self.vcpu, &words);
        // What a ROM arms its fast path with (the LVT entry naming `vector`, unmasked; masked,
        // never): it must agree with the refusals of the reference that depend on this state.
        let lvt = u32::from(vector.get());
        let armed = self.vcpu.lone_lvt_vector(lvt);
        assert_eq!(
            self.vcpu.lone_lvt_vector(lvt | 1 << 16),
            None,
            "a masked LVT entry armed"
        );
        let word = lone.port().word();
        let lone_in_words = words.selector() == 1 << word
            && words.pending_word(word) & !words.mask_word(word) == lone.port().word_mask();
        if !self.vcpu.take_lone_rom_port(&words, lone, vector) {
            assert_eq!(
                before,
                state(&self.vcpu, &words),
                "a refusal changed things"
            );
            if lone_in_words {
                assert_eq!(armed, None, "armed for a tick the reference refuses");
            }
            return false;
        }
        assert_eq!(
            armed,
            Some(vector),
            "not armed for a tick the reference takes"
        );
        self.model.drained_log.clear();
        let expected = self.model.upcall(&self.table);
        assert_eq!(expected, Some(vector.get()), "the lone path's vector");
        assert_eq!(
            self.model.drained_log,
            [lone.port().index()],
            "the lone path's event"
        );
        assert!(!words.upcall_pending() && !self.vcpu.has_local_work());
        self.inject(vector);
        true
    }

    fn words(&self) -> AtomicEventWords<'_> {
        AtomicEventWords::new(&self.bitmaps, &self.flags)
    }

    fn port(&self, index: &usize) -> Port {
        Port::new(self.ports[index % self.ports.len()] as u32).unwrap()
    }

    /// The ROM's upcall path: Xen's callback, or a forced one after `DeliverNow`.
    fn run_upcall(&mut self) {
        assert!(
            self.model.interrupts_enabled,
            "upcall while the kernel has interrupts off"
        );
        for _ in 0..64 {
            if self.try_lone_rom_port() {
                return;
            }
            let words = AtomicEventWords::new(&self.bitmaps, &self.flags);
            // Xen masks events on entry to the callback (the ROM does the same when forcing).
            words.set_upcall_mask(true);
            let masked_before: Vec<bool> = (0..PORTS).map(|p| self.model.masked[p]).collect();
            let pending_before = pending_bits(&words);
            let mut drained = Vec::new();
            let table = &self.table;
            let delivery = self
                .vcpu
                .upcall_with(table, &words, |port| rom_event(table, &mut drained, port));
            self.model.drained_log.clear();
            let expected = self.model.upcall(&self.table);
            // Safety: only unmasked ports were taken.
            for port in 0..PORTS {
                if pending_before[port] && !words.is_pending(Port::new(port as u32).unwrap()) {
                    assert!(!masked_before[port], "port {port} taken while masked");
                }
            }
            assert!(
                self.vcpu.take_rom_event().is_none(),
                "ROM events left queued"
            );
            assert!(
                self.model.rom_queue.is_empty(),
                "model ROM events left queued"
            );
            assert_eq!(drained, self.model.drained_log, "ROM events handed over");
            match (delivery, expected) {
                (Delivery::Inject(vector), Some(model_vector)) => {
                    assert_eq!(vector.get(), model_vector, "wrong vector injected");
                    self.inject(vector);
                    return;
                }
                (Delivery::Resume, None) => {
                    let wakeup = enable_interrupts(&words);
                    assert_eq!(wakeup == Wakeup::DeliverNow, words.upcall_pending());
                    if wakeup == Wakeup::Idle {
                        return;
                    }
                }
                (delivery, expected) => panic!("upcall gave {delivery:?}, model {expected:?}"),
            }
        }
        panic!("the upcall loop did not settle");
    }

    fn inject(&mut self, vector: Vector) {
        let v = vector.get();
        self.model.injections[usize::from(v)] += 1;
        assert!(
            self.model.injections[usize::from(v)] <= self.model.requests[usize::from(v)],
            "{vector} injected more often than requested"
        );
        for port in self.model.awaiting_vector.remove(&v).unwrap_or_default() {
            self.model.undelivered.remove(&port);
        }
        // Interrupt gate: the handler runs with the virtual IF clear.
        self.model.interrupts_enabled = false;
    }

    /// Reacts to a `Wakeup` the way the ROM must, after checking it was due.
    fn follow(&mut self, wakeup: Wakeup) {
        let words = self.words();
        let due = self.model.interrupts_enabled && words.upcall_pending();
        assert_eq!(
            wakeup == Wakeup::DeliverNow,
            due,
            "wakeup {wakeup:?} is wrong"
        );
        if wakeup == Wakeup::DeliverNow {
            self.run_upcall();
        }
    }

    fn unmask(&mut self, port: Port) {
        let wakeup = unmask_port(&self.words(), port);
        self.model.masked[port.index()] = false;
        self.follow(wakeup);
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Raise(index) => {
                let port = self.port(index);
                let new_edge = raise_as_xen(&self.words(), port);
                assert_eq!(new_edge, !self.model.pending[port.index()], "coalescing");
                self.model.pending[port.index()] = true;
                self.model.undelivered.insert(port.index());
            }
            Op::Mask(index) => {
                let port = self.port(index);
                mask_port(&self.words(), port);
                self.model.masked[port.index()] = true;
            }
            Op::Unmask(index) => self.unmask(self.port(index)),
            Op::Cli => {
                disable_interrupts(&self.words());
                self.model.interrupts_enabled = false;
            }
            Op::Sti => {
                let wakeup = enable_interrupts(&self.words());
                self.model.interrupts_enabled = true;
                self.follow(wakeup);
            }
            Op::Poll => {
                // The ROM's handler for the kernel's read of an interrupt controller: Xen
                // masked events for it, and it gives the kernel its flag back at the end.
                let words = AtomicEventWords::new(&self.bitmaps, &self.flags);
                let saved = interrupt_mask(&words);
                words.set_upcall_mask(true);
                let masked_before: Vec<bool> = self.model.masked.clone();
                let pending_before = pending_bits(&words);
                let mut drained = Vec::new();
                let table = &self.table;
                self.vcpu
                    .poll_with(table, &words, |port| rom_event(table, &mut drained, port));
                self.model.drained_log.clear();
                self.model.poll(&self.table);
                assert_eq!(
                    drained, self.model.drained_log,
                    "ROM events a poll handed over"
                );
                for port in 0..PORTS {
                    if pending_before[port] && !words.is_pending(Port::new(port as u32).unwrap()) {
                        assert!(!masked_before[port], "port {port} taken while masked");
                    }
                }
                let wakeup = set_interrupt_mask(&words, saved);
                self.follow(wakeup);
            }
            Op::XenReturn => {
                // Xen delivers an upcall when the vCPU has one pending and unmasked.
                let words = self.words();
                if words.upcall_pending() && !words.upcall_mask() {
                    self.run_upcall();
                }
            }
            Op::Eoi => {
                let words = AtomicEventWords::new(&self.bitmaps, &self.flags);
                let vcpu = &mut self.vcpu;
                let (ended, wakeup) = with_events_masked(&words, || vcpu.end_of_interrupt(&words));
                assert_eq!(ended.map(Vector::get), self.model.end_of_interrupt());
                self.follow(wakeup);
            }
            Op::EoiSpecific(index) => {
                let in_service: Vec<usize> =
                    (0..256).filter(|&v| self.model.in_service[v]).collect();
                if in_service.is_empty() {
                    return;
                }
                let v = in_service[index % in_service.len()];
                let vector = Vector::new(v as u32).unwrap();
                let words = AtomicEventWords::new(&self.bitmaps, &self.flags);
                let vcpu = &mut self.vcpu;
                let (ended, wakeup) =
                    with_events_masked(&words, || vcpu.end_of_interrupt_vector(&words, vector));
                assert!(ended);
                self.model.in_service[v] = false;
                self.follow(wakeup);
            }
            Op::SetTaskPriority(tpr) => {
                let words = AtomicEventWords::new(&self.bitmaps, &self.flags);
                let vcpu = &mut self.vcpu;
                let ((), wakeup) =
                    with_events_masked(&words, || vcpu.set_task_priority(&words, *tpr));
                self.model.task_priority = *tpr;
                self.follow(wakeup);
            }
            Op::RaiseVector(raw) => {
                let vector = Vector::new(*raw).unwrap();
                let words = AtomicEventWords::new(&self.bitmaps, &self.flags);
                let vcpu = &mut self.vcpu;
                let ((), wakeup) = with_events_masked(&words, || vcpu.raise_vector(&words, vector));
                self.model.requested[*raw as usize] = true;
                self.model.requests[*raw as usize] += 1;
                self.follow(wakeup);
            }
        }
        self.check();
    }

    fn check(&self) {
        let words = self.words();
        let model = &self.model;
        for raw in 0..PORTS {
            let port = Port::new(raw as u32).unwrap();
            assert_eq!(
                words.is_pending(port),
                model.pending[raw],
                "pending bit of {port}"
            );
            assert_eq!(
                words.is_masked(port),
                model.masked[raw],
                "mask bit of {port}"
            );
            // Nothing lost: a pending unmasked port is signalled.
            if model.pending[raw] && !model.masked[raw] {
                let word_bit = 1 << port.word();
                let selected = (words.selector() | self.vcpu.carried_selector()) & word_bit != 0;
                assert!(
                    selected && words.upcall_pending(),
                    "{port} pending but not signalled"
                );
            }
        }
        assert_eq!(
            self.vcpu.cursor().port().index(),
            model.cursor,
            "scan cursor"
        );
        for raw in 32..256 {
            let vector = Vector::new(raw as u32).unwrap();
            assert_eq!(
                self.vcpu.apic().is_requested(vector),
                model.requested[raw],
                "IRR {vector}"
            );
            assert_eq!(
                self.vcpu.apic().is_in_service(vector),
                model.in_service[raw],
                "ISR {vector}"
            );
        }
        assert_eq!(
            self.vcpu.apic().deliverable().map(Vector::get),
            model.deliverable()
        );
        if model.deliverable().is_some() {
            assert!(words.upcall_pending(), "deliverable vector not signalled");
        }
        assert_eq!(
            words.upcall_mask(),
            !model.interrupts_enabled,
            "interrupt flag"
        );
        assert_eq!(
            interrupt_mask(&words),
            if model.interrupts_enabled { 0x200 } else { 0 }
        );
    }

    /// The kernel at rest: unmasks everything, lowers TPR, enables interrupts, and from then
    /// on only reacts to what it is told (an injected vector gets its EOI and IRET; Xen
    /// delivers pending upcalls). Nothing else may be needed for every raise to arrive.
    fn settle(&mut self) {
        for port in self.ports.clone() {
            if self.model.masked[port] {
                self.unmask(Port::new(port as u32).unwrap());
                self.check();
            }
        }
        self.step(&Op::SetTaskPriority(0));
        for _ in 0..10_000 {
            let op = if self.model.in_service.iter().any(|&s| s) {
                Op::Eoi
            } else if !self.model.interrupts_enabled {
                Op::Sti
            } else if self.words().upcall_pending() && !self.words().upcall_mask() {
                Op::XenReturn
            } else {
                break;
            };
            self.step(&op);
        }
        let words = self.words();
        assert!(
            self.model.undelivered.is_empty(),
            "raises never delivered: {:?}",
            self.model.undelivered
        );
        assert!(
            (0..PORTS).all(|p| !words.is_pending(Port::new(p as u32).unwrap())),
            "left pending"
        );
        assert!(
            self.model.requested.iter().all(|&r| !r),
            "vectors left requested"
        );
        assert!(!words.upcall_pending(), "upcall still pending when idle");
        assert_eq!(self.vcpu.carried_selector(), 0);
        assert!(!self.vcpu.has_local_work());
    }
}

/// The ROM's handling of an event routed to it: logged, and its vector (if it raises one).
fn rom_event(table: &PortTable, drained: &mut Vec<usize>, port: Port) -> Option<Vector> {
    drained.push(port.index());
    let Route::Rom(tag) = table.get(port).unwrap().route() else {
        panic!("{port} handed to the ROM but routed to a vector");
    };
    rom_raises(tag).map(|v| Vector::new(u32::from(v)).unwrap())
}

fn pending_bits(words: &AtomicEventWords<'_>) -> Vec<bool> {
    (0..PORTS)
        .map(|p| words.is_pending(Port::new(p as u32).unwrap()))
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    Raise(usize),
    Mask(usize),
    Unmask(usize),
    Cli,
    Sti,
    XenReturn,
    Poll,
    Eoi,
    EoiSpecific(usize),
    SetTaskPriority(u8),
    RaiseVector(u32),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..16).prop_map(Op::Raise),
        2 => (0usize..16).prop_map(Op::Mask),
        2 => (0usize..16).prop_map(Op::Unmask),
        2 => Just(Op::Cli),
        3 => Just(Op::Sti),
        4 => Just(Op::XenReturn),
        2 => Just(Op::Poll),
        3 => Just(Op::Eoi),
        1 => (0usize..16).prop_map(Op::EoiSpecific),
        1 => prop::sample::select(vec![0u8, 0, 0x20, 0x35, 0x40, 0xE0, 0xFF])
            .prop_map(Op::SetTaskPriority),
        1 => prop::sample::select(vec![0x20u32, 0x31, 0x80, 0xEF]).prop_map(Op::RaiseVector),
    ]
}

fn port_strategy() -> impl Strategy<Value = u32> {
    // Spread over the whole range, crowded at both ends and inside one word, so scans cross
    // word boundaries, wrap around, and share words.
    prop_oneof![0u32..1024, 0u32..40, 990u32..1024, 64u32..96]
}

fn route_strategy() -> impl Strategy<Value = Route> {
    prop_oneof![
        // A few vectors shared between ports, across classes (PIC IRQ0/1/15, APIC timer, IPI).
        4 => prop::sample::select(vec![0x20u32, 0x21, 0x2F, 0x31, 0x41, 0xEF, 0xF0])
            .prop_map(|v| Route::vector(v).unwrap()),
        2 => (32u32..=255).prop_map(|v| Route::vector(v).unwrap()),
        2 => (0u8..3).prop_map(Route::Rom),
    ]
}

fn budget_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=3, Just(32), Just(1024)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn implementation_matches_model(
        bindings in prop::collection::btree_map(port_strategy(), route_strategy(), 1..10),
        budget in budget_strategy(),
        ops in prop::collection::vec(op_strategy(), 0..160),
    ) {
        let mut sim = Sim::new(&bindings, budget);
        sim.check();
        for op in &ops {
            sim.step(op);
        }
        sim.settle();
    }

    /// The fairness bound: a target port raised once is taken within
    /// `floor(d / B) + 1 <= ceil(1024 / B)` rounds, where `d` is the number of busy ports
    /// between the cursor and it, even though every busy port fires again after each round.
    #[test]
    fn fairness_bound_holds_under_busy_ports(
        busy in prop::collection::btree_set(0u32..1024, 0..300),
        target in 0u32..1024,
        start in 0u32..1024,
        budget in prop_oneof![1u32..=8, Just(32), 33u32..=1024],
    ) {
        let busy: BTreeSet<u32> = busy.into_iter().filter(|&p| p != target).collect();
        let mut table = Box::new(FullPortTable::new());
        for port in busy.iter().copied().chain([target]) {
            table.bind(port, Binding::Ipi, 0, Route::Rom(0)).unwrap();
        }
        let budget = ScanBudget::new(budget).unwrap();
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        let mut vcpu = VcpuEvents::new(0, budget).unwrap();
        disable_interrupts(&words);
        // Put the cursor at `start`: take the port just before it on its own.
        let before = (start + 1023) % 1024;
        if table.lookup(before).is_err() {
            table.bind(before, Binding::Ipi, 0, Route::Rom(0)).unwrap();
        }
        raise_as_xen(&words, Port::new(before).unwrap());
        vcpu.harvest(&table, &words);
        while vcpu.take_rom_event().is_some() {}
        prop_assert_eq!(vcpu.cursor().port().get(), start);

        for port in busy.iter().copied().chain([target]) {
            raise_as_xen(&words, Port::new(port).unwrap());
        }
        // Busy ports the scan meets before the target, in circular order from the cursor.
        let distance = |port: u32| (port + 1024 - start) % 1024;
        let ahead = busy.iter().filter(|&&p| distance(p) < distance(target)).count() as u32;
        let exact_bound = ahead / budget.get() + 1;
        let mut rounds = 0;
        'rounds: loop {
            rounds += 1;
            prop_assert!(rounds <= exact_bound, "not taken within {} rounds", exact_bound);
            vcpu.harvest(&table, &words);
            while let Some(port) = vcpu.take_rom_event() {
                if port.get() == target {
                    break 'rounds;
                }
                // Busy: it fires again at once.
                raise_as_xen(&words, port);
            }
        }
        prop_assert!(rounds <= budget.fairness_bound());
    }
}

#[derive(Clone, Debug)]
enum TableOp {
    Bind(u32, u8),
    Unbind(u32),
    Reroute(u32, u8),
}

fn table_op_strategy() -> impl Strategy<Value = TableOp> {
    let port = prop_oneof![0u32..12, 1000u32..1030];
    prop_oneof![
        3 => (port.clone(), 0u8..4).prop_map(|(p, t)| TableOp::Bind(p, t)),
        2 => port.clone().prop_map(TableOp::Unbind),
        1 => (port, 0u8..4).prop_map(|(p, t)| TableOp::Reroute(p, t)),
    ]
}

/// A vCPU state built from a TPR write, requested vectors and upcalls that put some in
/// service, with `port` bound as a ROM port; the same for the same arguments.
fn apic_state(
    words: &AtomicEventWords<'_>,
    table: &PortTable,
    tpr: u8,
    raised: &[u32],
    upcalls: usize,
) -> VcpuEvents {
    words.set_upcall_mask(true);
    let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
    vcpu.set_task_priority(words, tpr);
    for &raw in raised {
        vcpu.raise_vector(words, Vector::new(raw).unwrap());
    }
    for _ in 0..upcalls {
        let _ = vcpu.upcall_with(table, words, |_| None);
    }
    vcpu
}

proptest! {
    /// The EOI of a tick the ROM's fast path took (a vector it could take), in one step,
    /// leaves exactly what completing the take and then the EOI leave: the vCPU state, the
    /// event words, the vector ended.
    #[test]
    fn complete_and_end_matches_complete_then_eoi(
        tpr in prop_oneof![Just(0u8), any::<u8>()],
        raised in prop::collection::vec(32u32..256, 0..4),
        upcalls in 0usize..4,
        vector in 32u32..256,
        port in 0u32..1024,
    ) {
        let vector = Vector::new(vector).unwrap();
        let mut table = Box::new(FullPortTable::new());
        table.bind(port, Binding::Ipi, 0, Route::Rom(0)).unwrap();
        let (bitmaps_a, flags_a) = (EventBitmaps::new(), VcpuEventFlags::new());
        let (bitmaps_b, flags_b) = (EventBitmaps::new(), VcpuEventFlags::new());
        let words_a = AtomicEventWords::new(&bitmaps_a, &flags_a);
        let words_b = AtomicEventWords::new(&bitmaps_b, &flags_b);
        let mut a = apic_state(&words_a, &table, tpr, &raised, upcalls);
        let mut b = apic_state(&words_b, &table, tpr, &raised, upcalls);
        let lone = a.lone_rom_port(&table, Port::new(port).unwrap()).unwrap();
        // Only a vector the fast path could have taken (`complete_lone_rom_port`'s
        // requirement).
        if a.lone_lvt_vector(u32::from(vector.get())) != Some(vector) {
            return Ok(());
        }
        let ended_a = a.complete_and_end_lone_rom_port(&words_a, lone, vector);
        b.complete_lone_rom_port(lone, vector);
        let ended_b = b.end_of_interrupt(&words_b);
        prop_assert_eq!(ended_a, ended_b);
        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
        prop_assert_eq!(words_a.upcall_pending(), words_b.upcall_pending());
        prop_assert_eq!(words_a.selector(), words_b.selector());
    }
}

proptest! {
    /// A table with a few slots (the ROM's) against a map: the same answers, ports kept in
    /// ascending order, full at its capacity and usable again after an unbind.
    #[test]
    fn small_table_matches_a_map(ops in prop::collection::vec(table_op_strategy(), 0..80)) {
        const SLOTS: usize = 4;
        let mut table = PortTable::<SLOTS>::new();
        let mut model: BTreeMap<u32, u8> = BTreeMap::new();
        for op in &ops {
            match *op {
                TableOp::Bind(port, tag) => {
                    let got = table.bind(port, Binding::Ipi, 0, Route::Rom(tag));
                    let want = if port >= 1024 {
                        Err(event_channel::Error::PortOutOfRange(port))
                    } else if model.contains_key(&port) {
                        Err(event_channel::Error::PortInUse(Port::new(port).unwrap()))
                    } else if model.len() == SLOTS {
                        Err(event_channel::Error::TableFull(Port::new(port).unwrap()))
                    } else {
                        model.insert(port, tag);
                        Ok(Port::new(port).unwrap())
                    };
                    prop_assert_eq!(got, want);
                }
                TableOp::Unbind(port) => {
                    let got = table.unbind(port).map(|info| info.route());
                    let want = match Port::new(port) {
                        Err(e) => Err(e),
                        Ok(p) => model
                            .remove(&port)
                            .map(Route::Rom)
                            .ok_or(event_channel::Error::NotBound(p)),
                    };
                    prop_assert_eq!(got, want);
                }
                TableOp::Reroute(port, tag) => {
                    let got = table.reroute(port, Route::Rom(tag));
                    let want = match Port::new(port) {
                        Err(e) => Err(e),
                        Ok(p) => match model.get_mut(&port) {
                            Some(old) => Ok(Route::Rom(std::mem::replace(old, tag))),
                            None => Err(event_channel::Error::NotBound(p)),
                        },
                    };
                    prop_assert_eq!(got, want);
                }
            }
            let listed: Vec<(u32, Route)> =
                table.iter().map(|(port, info)| (port.get(), info.route())).collect();
            let expected: Vec<(u32, Route)> =
                model.iter().map(|(&port, &tag)| (port, Route::Rom(tag))).collect();
            prop_assert_eq!(listed, expected);
            prop_assert_eq!(table.len(), model.len());
            for raw in (0..12).chain(1000..1024) {
                let port = Port::new(raw).unwrap();
                prop_assert_eq!(
                    table.get(port).map(|info| info.route()),
                    model.get(&raw).map(|&tag| Route::Rom(tag))
                );
            }
        }
    }
}
