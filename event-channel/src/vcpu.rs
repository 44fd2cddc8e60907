//! One vCPU's event delivery: the fair two-level scan, and the way from a Xen upcall to the
//! IDT vector the kernel expects.
//!
//! # The scan
//!
//! `xen/include/public/xen.h` describes the 2-level search: exchange `evtchn_pending_sel`
//! with 0, and for each selector bit `i` look at `evtchn_pending[i] & ~evtchn_mask[i]`. The
//! guest clears a port's pending bit before it handles the port, so a raise during handling
//! sets it again and is not lost. Here, "handling" means requesting the port's vector in the
//! [`VirtualApic`] (or queueing it for the ROM).
//!
//! The scan is round-robin. It starts at a cursor (selector word and bit), walks the 1024
//! ports in circular order from there, takes at most [`ScanBudget`] ports per round, and
//! leaves the cursor just after the last port it took. Selector bits of words it did not
//! finish stay with the vCPU (and `evtchn_upcall_pending` stays set), so the next round
//! resumes where this one stopped. Within one round a port is taken at most once, even if
//! it is raised again while the round runs.
//!
//! **Fairness bound.** With budget `B`, a port that is pending and unmasked when a round
//! starts, and stays unmasked, is taken within `N = ceil(1024 / B)` rounds, however busy the
//! other ports are ([`ScanBudget::fairness_bound`]). Proof: let `d` be the number of ports
//! from the cursor (inclusive) to the port (exclusive) in circular order, `d <= 1023`. A
//! round that does not take the port takes `B` ports, all inside that stretch, and leaves the
//! cursor after them, so `d` drops by at least `B`; a round that starts with `d < B` takes
//! the port. So the port is taken in round `floor(d / B) + 1 <= ceil(1024 / B)`. The bound is
//! tight: with every port raised again after each round and the port just behind the cursor,
//! it takes exactly `N` rounds. With the default budget of 32 ports, `N = 32`; with
//! [`ScanBudget::UNLIMITED`], `N = 1`.
//!
//! Fairness here is between ports. Which requested vector the kernel gets first is the
//! local APIC's priority order, as on hardware.
//!
//! # Delivery
//!
//! [`VcpuEvents::upcall`] turns an upcall into at most one vector to inject: the virtual
//! APIC puts that vector in service, and every other requested vector is of an equal or lower
//! class (the highest goes first), so none may be taken before the kernel's EOI. The other
//! vectors wait in the `IRR`, which is the queue; they come out one per interrupt window, in
//! priority order, as the kernel EOIs and re-enables interrupts.
//!
//! Whenever this state holds work the kernel has not seen (a deliverable vector, a scan
//! round left unfinished, an event for the ROM), `evtchn_upcall_pending` is set. So the
//! check in [`crate::enable_interrupts`] is complete, and Xen itself will not block the vCPU
//! in `SCHEDOP_block` while such work waits.
//!
//! # Re-entry
//!
//! Every `&mut self` method must run with the vCPU's upcall mask set, as Xen's event callback
//! does and as [`crate::with_events_masked`] arranges; otherwise an upcall could re-enter this
//! state half-way. Debug builds assert it.

use crate::abi::{EVTCHN_2L_NR_CHANNELS, EVTCHN_WORDS, XEN_LEGACY_MAX_VCPUS};
use crate::apic::VirtualApic;
use crate::port::{Error, Port, PortSet, Vector};
use crate::table::{PortInfo, PortTable, Route};

use crate::words::EventWords;

/// Where the next scan round starts: a selector word and a bit inside it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ScanCursor(Port);

impl ScanCursor {
    /// The cursor at `port`.
    #[inline]
    pub const fn at(port: Port) -> ScanCursor {
        ScanCursor(port)
    }

    /// The first port the next round looks at.
    #[inline]
    pub const fn port(self) -> Port {
        self.0
    }

    /// The selector word (index into `evtchn_pending`) the next round starts in.
    #[inline]
    pub const fn word(self) -> usize {
        self.0.word()
    }

    /// The bit inside that word the next round starts at.
    #[inline]
    pub const fn bit(self) -> u32 {
        self.0.bit()
    }
}

/// How many ports one scan round may take: 1..=1024.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ScanBudget(u16);

impl ScanBudget {
    /// One word's worth of ports per round: fairness bound 32 rounds.
    pub const DEFAULT: ScanBudget = ScanBudget(32);
    /// Every pending port in one round: fairness bound 1 round.
    pub const UNLIMITED: ScanBudget = ScanBudget(EVTCHN_2L_NR_CHANNELS as u16);

    /// A budget of `ports` per round.
    #[inline]
    pub const fn new(ports: u32) -> Result<ScanBudget, Error> {
        if ports >= 1 && ports <= EVTCHN_2L_NR_CHANNELS as u32 {
            Ok(ScanBudget(ports as u16))
        } else {
            Err(Error::BudgetOutOfRange(ports))
        }
    }

    /// Ports per round.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// `ceil(1024 / budget)`: the most rounds a pending unmasked port waits before the scan
    /// takes it (see the module documentation for the proof).
    #[inline]
    pub const fn fairness_bound(self) -> u32 {
        (EVTCHN_2L_NR_CHANNELS as u32).div_ceil(self.0 as u32)
    }
}

impl Default for ScanBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one scan round did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Harvest {
    /// Ports taken (pending bit cleared and routed).
    pub consumed: u32,
    /// The budget ran out; the next round continues from the cursor.
    pub budget_exhausted: bool,
}

/// What the ROM does at the end of an upcall.
#[must_use = "an Inject vector must be delivered to the kernel"]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Delivery {
    /// Enter the kernel's IDT handler for this vector, with an interrupt frame whose saved
    /// EFLAGS.IF is 1. Events stay masked (the kernel's virtual IF is 0 in the handler, as
    /// with an interrupt gate; for a trap gate, re-enable with
    /// [`crate::enable_interrupts`] after building the frame). The vector is now in service
    /// until the kernel's EOI.
    Inject(Vector),
    /// Nothing for the kernel now: return to the interrupted context, re-enabling events
    /// with [`crate::enable_interrupts`], and run the upcall again if that reports
    /// [`crate::Wakeup::DeliverNow`].
    Resume,
}

/// One vCPU's event-delivery state: scan cursor, unfinished selector bits, virtual APIC and
/// the events that belong to the ROM itself.
#[derive(Clone, Debug)]
pub struct VcpuEvents {
    vcpu: u8,
    budget: ScanBudget,
    cursor: ScanCursor,
    carried_selector: u32,
    apic: VirtualApic,
    rom_events: PortSet,
    spurious: u32,
}

impl VcpuEvents {
    /// The state of `vcpu` (0..32), scanning at most `budget` ports per round.
    pub const fn new(vcpu: u32, budget: ScanBudget) -> Result<VcpuEvents, Error> {
        if vcpu >= XEN_LEGACY_MAX_VCPUS {
            return Err(Error::VcpuOutOfRange(vcpu));
        }
        Ok(VcpuEvents {
            vcpu: vcpu as u8,
            budget,
            cursor: ScanCursor(Port::from_word_bit(0, 0)),
            carried_selector: 0,
            apic: VirtualApic::new(),
            rom_events: PortSet::EMPTY,
            spurious: 0,
        })
    }

    /// The vCPU this state belongs to.
    #[inline]
    pub fn vcpu(&self) -> u32 {
        u32::from(self.vcpu)
    }

    /// Ports per scan round.
    #[inline]
    pub fn budget(&self) -> ScanBudget {
        self.budget
    }

    /// Where the next scan round starts.
    #[inline]
    pub fn cursor(&self) -> ScanCursor {
        self.cursor
    }

    /// Selector bits of words a budget-limited round did not finish.
    #[inline]
    pub fn carried_selector(&self) -> u32 {
        self.carried_selector
    }

    /// The virtual APIC.
    #[inline]
    pub fn apic(&self) -> &VirtualApic {
        &self.apic
    }

    /// How many pending ports without a binding the scan has cleared (stale bits of closed
    /// ports; worth a diagnostic).
    #[inline]
    pub fn spurious_events(&self) -> u32 {
        self.spurious
    }

    /// Whether this state holds work: a deliverable vector, an unfinished scan round, or an
    /// event for the ROM. `evtchn_upcall_pending` is set whenever this is true.
    pub fn has_local_work(&self) -> bool {
        self.carried_selector != 0
            || self.apic.deliverable().is_some()
            || !self.rom_events.is_empty()
    }

    /// Takes the next event routed to [`Route::Rom`] (lowest port first). The ROM drains
    /// these after each upcall, before it injects anything.
    pub fn take_rom_event(&mut self) -> Option<Port> {
        self.rom_events.pop_first()
    }

    /// One scan round: clears `evtchn_upcall_pending`, takes the selector, and moves up to
    /// the budget of pending unmasked ports of this vCPU into the virtual APIC (or the ROM's
    /// queue), clearing each pending bit first.
    pub fn harvest<W: EventWords + ?Sized, const SLOTS: usize>(
        &mut self,
        ports: &PortTable<SLOTS>,
        words: &W,
    ) -> Harvest {
        debug_assert!(words.upcall_mask(), "scan with events unmasked");
        let harvest = self.scan_round(ports, words);
        self.signal_local_work(words);
        harvest
    }

    /// Xen's event callback (or a forced one after [`crate::Wakeup::DeliverNow`]): scan, and
    /// pick the vector to inject.
    ///
    /// Call it with events masked, for an interrupted context whose virtual IF was 1 (Xen
    /// only calls back when `evtchn_upcall_mask` was 0, and masks it on entry). It scans
    /// rounds until a vector is deliverable or nothing pending is left, then either
    /// acknowledges the highest deliverable vector ([`Delivery::Inject`]) or reports
    /// [`Delivery::Resume`]. Events for the ROM wait in [`Self::take_rom_event`].
    pub fn upcall<W: EventWords + ?Sized, const SLOTS: usize>(
        &mut self,
        ports: &PortTable<SLOTS>,
        words: &W,
    ) -> Delivery {
        debug_assert!(words.upcall_mask(), "upcall with events unmasked");
        let delivery = loop {
            let harvest = self.scan_round(ports, words);
            if let Some(vector) = self.apic.acknowledge() {
                break Delivery::Inject(vector);
            }
            if !harvest.budget_exhausted {
                break Delivery::Resume;
            }
        };
        self.signal_local_work(words);
        delivery
    }

    /// [`Self::upcall`] for a ROM that consumes some events itself: after each scan round,
    /// before anything is acknowledged, every event routed to [`Route::Rom`] goes to
    /// `on_rom_event`, and the vector it returns, if any, is requested as if the port had been
    /// routed there (a timer VIRQ becoming the local APIC timer's vector). So an interrupt a
    /// ROM event raises competes for delivery in the same upcall, by priority, with every
    /// other requested vector. The ROM queue is empty afterwards.
    pub fn upcall_with<W, const SLOTS: usize>(
        &mut self,
        ports: &PortTable<SLOTS>,
        words: &W,
        mut on_rom_event: impl FnMut(Port) -> Option<Vector>,
    ) -> Delivery
    where
        W: EventWords + ?Sized,
    {
        debug_assert!(words.upcall_mask(), "upcall with events unmasked");
        let delivery = loop {
            let harvest = self.scan_round(ports, words);
            self.drain_rom_events(&mut on_rom_event);
            if let Some(vector) = self.apic.acknowledge() {
                break Delivery::Inject(vector);
            }
            if !harvest.budget_exhausted {
                break Delivery::Resume;
            }
        };
        self.signal_local_work(words);
        delivery
    }

    /// `port` as a [`LoneRomPort`] of this vCPU: routed to the ROM ([`Route::Rom`]), notifying
    /// this vCPU, and a scan budget of two or more (a budget of one ends even a lone port's
    /// round as exhausted, see `scan_round`). None otherwise. The token stands for the
    /// binding as it is now: take a new one whenever `port` is bound again.
    pub fn lone_rom_port<const SLOTS: usize>(
        &self,
        ports: &PortTable<SLOTS>,
        port: Port,
    ) -> Option<LoneRomPort> {
        let info = ports.get(port)?;
        (matches!(info.route(), Route::Rom(_)) && self.owns(Some(info)) && self.budget.get() >= 2)
            .then_some(LoneRomPort(port))
    }

    /// [`Self::upcall_with`] in one step for the upcall a ROM meets most often, a lone event of
    /// its own that raises `vector` (the timer VIRQ becoming the local APIC timer's vector),
    /// when nothing else can take part: the port ([`Self::lone_rom_port`]) is the only pending
    /// unmasked port and the only selector bit set, no scan round is unfinished, nothing is
    /// requested in the APIC, and `vector` is deliverable at once (its class above the
    /// processor priority's). Then the port is taken as the scan's lone-port case takes it
    /// (pending bit cleared, cursor just past it), `vector` goes in service and true is
    /// returned: the state is what `upcall_with` leaves when `on_rom_event(port)` answers
    /// `vector`, and `vector` is the one to inject. Otherwise nothing has changed (a selector
    /// taken meanwhile is given back, with `evtchn_upcall_pending`) and the caller runs
    /// [`Self::upcall_with`]. Call it with events masked, as an upcall.
    ///
    /// The caller decides beforehand, without changing anything, that the port's event does
    /// raise `vector` and nothing else.
    #[inline]
    pub fn take_lone_rom_port<W: EventWords + ?Sized>(
        &mut self,
        words: &W,
        lone: LoneRomPort,
        vector: Vector,
    ) -> bool {
        debug_assert!(words.upcall_mask(), "upcall with events unmasked");
        let port = lone.0;
        let word = port.word();
        // Looked at first without changing anything (the refusals are exact).
        if words.selector() != 1 << word
            || words.pending_word(word) & !words.mask_word(word) != port.word_mask()
            || self
                .lone_vector_floor()
                .is_none_or(|floor| vector.priority_class() <= floor)
        {
            return false;
        }
        // Then taken as a scan round takes it: upcall_pending cleared, then the selector, so
        // a port raised from here on sets both again.
        words.clear_upcall_pending();
        let selector = words.take_selector();
        if selector != 1 << word
            || words.pending_word(word) & !words.mask_word(word) != port.word_mask()
            || !words.test_and_clear_pending(port)
        {
            give_back(words, selector);
            return false;
        }
        self.complete_lone_rom_port(lone, vector);
        true
    }

    /// The priority class a vector's must be above for [`Self::take_lone_rom_port`] to take
    /// it now, or None when it takes none (a scan round unfinished, an event for the ROM
    /// queued, a vector requested): the processor priority's class otherwise. For a ROM that
    /// keeps this figure beside its own fast path, to be taken again after every change of
    /// this state.
    pub fn lone_vector_floor(&self) -> Option<u8> {
        (self.carried_selector == 0
            && self.rom_events.is_empty()
            && self.apic.highest_requested().is_none())
        .then(|| self.apic.processor_priority() >> 4)
    }

    /// The vector a lone event of the ROM's that expires the local APIC timer would raise, for
    /// [`Self::take_lone_rom_port`] to take now, given the LVT timer entry `lvt`: the entry
    /// unmasked (bit 16), its vector 32 or above (the APIC delivers none below), and that
    /// vector's class above [`Self::lone_vector_floor`]. None when any of these fails: the
    /// general path's rules decide then. For a ROM that arms its fast path with the answer; it
    /// is only as current as its inputs, so take it again after every change of this state and
    /// of the entry.
    pub fn lone_lvt_vector(&self, lvt: u32) -> Option<Vector> {
        const LVT_MASKED: u32 = 1 << 16;
        if lvt & LVT_MASKED != 0 {
            return None;
        }
        let vector = Vector::new(lvt & 0xFF).ok()?;
        let floor = self.lone_vector_floor()?;
        (vector.priority_class() > floor).then_some(vector)
    }

    /// The part of [`Self::take_lone_rom_port`] inside this state, once the port has been
    /// taken from the event words (its pending bit cleared as the scan's lone-port case
    /// clears it): the cursor just past the port, `vector` in service. For a ROM that takes
    /// the words itself on its fast path (the checks of [`Self::take_lone_rom_port`] made,
    /// against [`Self::lone_vector_floor`]), and completes here before anything else looks at
    /// this state.
    #[inline]
    pub fn complete_lone_rom_port(&mut self, lone: LoneRomPort, vector: Vector) {
        self.cursor = ScanCursor(lone.0.next());
        self.apic.enter_in_service(vector);
    }

    /// [`Self::complete_lone_rom_port`] and then the kernel's [`Self::end_of_interrupt`], in one
    /// step: for the EOI of the vector a ROM's fast path took, when nothing has changed this
    /// state since. The vector then goes in service above everything in service (its class
    /// above [`Self::lone_vector_floor`], which also means nothing requested, no scan
    /// unfinished, no ROM event queued: what [`Self::complete_lone_rom_port`] requires too) and
    /// the EOI ends the highest vector in service, so only the scan's cursor moves. A caller
    /// that breaks that gets both steps (and `complete_lone_rom_port`'s debug assertion).
    /// Returns the vector ended, as [`Self::end_of_interrupt`] does.
    pub fn complete_and_end_lone_rom_port<W: EventWords + ?Sized>(
        &mut self,
        words: &W,
        lone: LoneRomPort,
        vector: Vector,
    ) -> Option<Vector> {
        if self
            .lone_vector_floor()
            .is_some_and(|floor| vector.priority_class() > floor)
        {
            self.cursor = ScanCursor(lone.0.next());
            Some(vector)
        } else {
            self.complete_lone_rom_port(lone, vector);
            self.end_of_interrupt(words)
        }
    }

    /// Takes every pending event of this vCPU without delivering anything: for a kernel that
    /// looks at its interrupt controllers with interrupts disabled (Xen does not call back
    /// then, so requests that came in meanwhile would stay unseen). Events for the ROM go to
    /// `on_rom_event` as in [`Self::upcall_with`]; requested vectors wait in the `IRR` and
    /// keep `evtchn_upcall_pending` set. Scans at most [`ScanBudget::fairness_bound`] rounds,
    /// so a port Xen keeps raising cannot hold the caller; returns the ports taken.
    pub fn poll_with<W, const SLOTS: usize>(
        &mut self,
        ports: &PortTable<SLOTS>,
        words: &W,
        mut on_rom_event: impl FnMut(Port) -> Option<Vector>,
    ) -> u32
    where
        W: EventWords + ?Sized,
    {
        debug_assert!(words.upcall_mask(), "poll with events unmasked");
        let mut consumed = 0;
        for _ in 0..self.budget.fairness_bound() {
            let harvest = self.scan_round(ports, words);
            consumed += harvest.consumed;
            self.drain_rom_events(&mut on_rom_event);
            if !harvest.budget_exhausted {
                break;
            }
        }
        self.signal_local_work(words);
        consumed
    }

    fn drain_rom_events(&mut self, on_rom_event: &mut impl FnMut(Port) -> Option<Vector>) {
        while let Some(port) = self.rom_events.pop_first() {
            if let Some(vector) = on_rom_event(port) {
                self.apic.request(vector);
            }
        }
    }

    /// Requests `vector` on behalf of the ROM (an emulated device's interrupt, a
    /// self-IPI). Call with events masked; the [`crate::Wakeup`] of re-enabling reports it.
    pub fn raise_vector<W: EventWords + ?Sized>(&mut self, words: &W, vector: Vector) {
        debug_assert!(words.upcall_mask(), "raise with events unmasked");
        self.apic.request(vector);
        self.signal_local_work(words);
    }

    /// The kernel's non-specific EOI (local APIC EOI register); returns the vector it ended.
    pub fn end_of_interrupt<W: EventWords + ?Sized>(&mut self, words: &W) -> Option<Vector> {
        debug_assert!(words.upcall_mask(), "EOI with events unmasked");
        let ended = self.apic.end_of_interrupt();
        self.signal_local_work(words);
        ended
    }

    /// The kernel's specific EOI of `vector` (8259 OCW2 with SL); returns whether it was in
    /// service.
    pub fn end_of_interrupt_vector<W: EventWords + ?Sized>(
        &mut self,
        words: &W,
        vector: Vector,
    ) -> bool {
        debug_assert!(words.upcall_mask(), "EOI with events unmasked");
        let ended = self.apic.end_of_interrupt_vector(vector);
        self.signal_local_work(words);
        ended
    }

    /// The kernel's write of the local APIC task priority register.
    pub fn set_task_priority<W: EventWords + ?Sized>(&mut self, words: &W, task_priority: u8) {
        debug_assert!(words.upcall_mask(), "TPR write with events unmasked");
        self.apic.set_task_priority(task_priority);
        self.signal_local_work(words);
    }

    /// Keeps `evtchn_upcall_pending` set while this state holds work, so that the plain
    /// check of the interrupt-flag functions, and Xen's own check before blocking, see it.
    fn signal_local_work<W: EventWords + ?Sized>(&self, words: &W) {
        if self.has_local_work() {
            let _already = words.test_and_set_upcall_pending();
        }
    }

    /// Whether the scan of this vCPU may take a port whose binding is `info`: it notifies
    /// this vCPU, or it has no binding at all (a stale bit of a closed port, cleared and
    /// counted).
    fn owns(&self, info: Option<&PortInfo>) -> bool {
        info.is_none_or(|info| info.vcpu() == u32::from(self.vcpu))
    }

    fn dispatch(&mut self, info: Option<&PortInfo>, port: Port) {
        match info.map(|info| info.route()) {
            Some(Route::Vector(vector)) => self.apic.request(vector),
            Some(Route::Rom(_)) => {
                self.rom_events.insert(port);
            }
            None => self.spurious = self.spurious.wrapping_add(1),
        }
    }

    fn scan_round<W: EventWords + ?Sized, const SLOTS: usize>(
        &mut self,
        ports: &PortTable<SLOTS>,
        words: &W,
    ) -> Harvest {
        // Clear upcall_pending before taking the selector: a port raised after the exchange
        // finds its selector bit clear and sets both again, so the next round sees it.
        words.clear_upcall_pending();
        let selector = self.carried_selector | words.take_selector();
        self.carried_selector = 0;
        let budget = self.budget.get();
        let start = self.cursor;
        // The common case, one word flagged with one port pending and unmasked in it (a
        // timer tick): the walk below would take exactly that port wherever the cursor is,
        // and leave the cursor after it; a budget of one would also end the round there,
        // which the walk reports (so it is left to the walk).
        if selector.is_power_of_two() && budget > 1 {
            let word = selector.trailing_zeros() as usize;
            let active = words.pending_word(word) & !words.mask_word(word);
            if active.is_power_of_two() {
                let port = Port::from_word_bit(word, active.trailing_zeros());
                let info = ports.get(port);
                if !self.owns(info) || !words.test_and_clear_pending(port) {
                    return Harvest {
                        consumed: 0,
                        budget_exhausted: false,
                    };
                }
                self.dispatch(info, port);
                self.cursor = ScanCursor(port.next());
                return Harvest {
                    consumed: 1,
                    budget_exhausted: false,
                };
            }
        }
        let mut consumed = 0;
        // Steps 0..=32 visit the words in circular order from the cursor's word. That word
        // comes twice: at step 0 for the bits from the cursor's bit up, at step 32 for the
        // bits below it, so the walk is exactly the 1024 ports in circular order. Only the
        // steps whose word has its selector bit set are walked, in that order: bit `s` of
        // `steps` is step `s` (the selector rotated so that the cursor's word is bit 0, which
        // stands for steps 0 and 32).
        let rotated = selector.rotate_right(start.word() as u32);
        let mut steps = u64::from(rotated & !1)
            | if rotated & 1 != 0 {
                1 | 1 << EVTCHN_WORDS
            } else {
                0
            };
        while steps != 0 {
            let step = steps.trailing_zeros() as usize;
            steps &= steps - 1;
            let word = (start.word() + step) % EVTCHN_WORDS;
            let mut window = match step {
                0 => u32::MAX << start.bit(),
                EVTCHN_WORDS => !(u32::MAX << start.bit()),
                _ => u32::MAX,
            };
            loop {
                let active = words.pending_word(word) & !words.mask_word(word) & window;
                if active == 0 {
                    break;
                }
                let bit = active.trailing_zeros();
                // Never revisit this bit or a lower one in this round: a port raised again
                // while the round runs waits for the next one.
                window &= u32::MAX.checked_shl(bit + 1).unwrap_or(0);
                let port = Port::from_word_bit(word, bit);
                let info = ports.get(port);
                if !self.owns(info) || !words.test_and_clear_pending(port) {
                    continue;
                }
                self.dispatch(info, port);
                consumed += 1;
                self.cursor = ScanCursor(port.next());
                if consumed == budget {
                    self.carried_selector = selector & unfinished_words(start.word(), step);
                    return Harvest {
                        consumed,
                        budget_exhausted: true,
                    };
                }
            }
        }
        Harvest {
            consumed,
            budget_exhausted: false,
        }
    }
}

/// A port whose lone event [`VcpuEvents::take_lone_rom_port`] may take: checked once by
/// [`VcpuEvents::lone_rom_port`] (routed to the ROM, notifying that vCPU).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LoneRomPort(Port);

impl LoneRomPort {
    /// The port.
    #[inline]
    pub const fn port(self) -> Port {
        self.0
    }
}

/// Xen raised another port while a lone one was being taken: the selector bits taken go back,
/// with the signal Xen gave with them, as if never taken (out of line: it is rare).
#[cold]
#[inline(never)]
fn give_back<W: EventWords + ?Sized>(words: &W, selector: u32) {
    let mut bits = selector;
    while bits != 0 {
        let _ = words.test_and_set_selector(bits.trailing_zeros() as usize);
        bits &= bits - 1;
    }
    let _ = words.test_and_set_upcall_pending();
}

/// The selector bits of the words a round starting in `start_word` still had to visit when
/// it stopped at `step`: the current word and every later one, up to and including the low
/// half of the start word.
fn unfinished_words(start_word: usize, step: usize) -> u32 {
    (step..EVTCHN_WORDS).fold(1 << start_word, |bits, later| {
        bits | 1 << ((start_word + later) % EVTCHN_WORDS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flag::{disable_interrupts, enable_interrupts, Wakeup};
    use crate::mask::{mask_port, raise_as_xen};
    use crate::table::{Binding, FullPortTable};
    use crate::words::{AtomicEventWords, EventBitmaps, VcpuEventFlags};

    fn port(raw: u32) -> Port {
        Port::new(raw).unwrap()
    }

    fn vector(raw: u32) -> Vector {
        Vector::new(raw).unwrap()
    }

    /// Binds every listed port as an IPI of vCPU 0 routed to the ROM, so the ROM queue shows
    /// exactly which ports a round took.
    fn rom_table(ports: &[u32]) -> PortTable {
        let mut table = FullPortTable::new();
        for &raw in ports {
            table.bind(raw, Binding::Ipi, 0, Route::Rom(0)).unwrap();
        }
        table
    }

    fn drain(vcpu: &mut VcpuEvents) -> Vec<u32> {
        core::iter::from_fn(|| vcpu.take_rom_event())
            .map(Port::get)
            .collect()
    }

    #[test]
    fn lone_lvt_vector_follows_the_entry_and_the_apic() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        let masked = 1 << 16;
        assert_eq!(vcpu.lone_lvt_vector(0xEF), Some(vector(0xEF)));
        // Other bits of the entry (timer mode, delivery status) do not matter.
        assert_eq!(vcpu.lone_lvt_vector(0x2_10EF), Some(vector(0xEF)));
        assert_eq!(vcpu.lone_lvt_vector(masked | 0xEF), None, "masked");
        assert_eq!(vcpu.lone_lvt_vector(0x1F), None, "an exception vector");
        // The task priority's class holds its own class and below.
        vcpu.set_task_priority(&words, 0xE0);
        assert_eq!(vcpu.lone_lvt_vector(0xEF), None, "class 0xE at TPR 0xE0");
        assert_eq!(vcpu.lone_lvt_vector(0xF0), Some(vector(0xF0)));
        vcpu.set_task_priority(&words, 0);
        // A vector in service holds its class until the EOI.
        vcpu.raise_vector(&words, vector(0x51));
        assert_eq!(vcpu.lone_lvt_vector(0xEF), None, "a vector requested");
        let mut injected = None;
        let table = rom_table(&[]);
        words.set_upcall_mask(true);
        if let Delivery::Inject(v) = vcpu.upcall_with(&table, &words, |_| None) {
            injected = Some(v);
        }
        assert_eq!(injected, Some(vector(0x51)));
        assert_eq!(vcpu.lone_lvt_vector(0x5F), None, "class 5 in service");
        assert_eq!(vcpu.lone_lvt_vector(0x60), Some(vector(0x60)));
        let _ = vcpu.end_of_interrupt(&words);
        assert_eq!(vcpu.lone_lvt_vector(0x5F), Some(vector(0x5F)));
    }

    #[test]
    fn a_rom_event_raises_its_vector_in_the_same_upcall() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        // The ROM's own table: the timer VIRQ handled by the ROM, an IPI to 0x31.
        let mut table = PortTable::<4>::new();
        table
            .bind(1, Binding::Virq(crate::abi::VIRQ_TIMER), 0, Route::Rom(0))
            .unwrap();
        table
            .bind(2, Binding::Ipi, 0, Route::vector(0x31).unwrap())
            .unwrap();
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        disable_interrupts(&words);
        let _ = raise_as_xen(&words, port(1));
        let _ = raise_as_xen(&words, port(2));
        let mut seen = Vec::new();
        // The timer becomes the local APIC timer's 0xEF, which outranks the IPI's 0x31.
        let delivery = vcpu.upcall_with(&table, &words, |p| {
            seen.push(p.get());
            Some(vector(0xEF))
        });
        assert_eq!(delivery, Delivery::Inject(vector(0xEF)));
        assert_eq!(seen, [1]);
        assert!(vcpu.apic().is_requested(vector(0x31)));
        assert!(
            !words.upcall_pending(),
            "0x31 waits for the EOI of 0xEF, nothing to signal yet"
        );
        // With interrupts off, a poll takes the timer again without injecting anything.
        let _ = raise_as_xen(&words, port(1));
        assert_eq!(vcpu.poll_with(&table, &words, |_| Some(vector(0xEF))), 1);
        assert!(vcpu.apic().is_requested(vector(0xEF)));
        assert!(vcpu.apic().is_in_service(vector(0xEF)));
        assert_eq!(vcpu.end_of_interrupt(&words), Some(vector(0xEF)));
        assert!(words.upcall_pending(), "the new 0xEF is deliverable again");
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0xEF)));
        assert_eq!(vcpu.end_of_interrupt(&words), Some(vector(0xEF)));
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0x31)));
    }

    /// Everything `take_lone_rom_port` may change or must leave alone.
    fn snapshot(vcpu: &VcpuEvents, words: &AtomicEventWords<'_>) -> String {
        format!(
            "{:?} {:?} {} {} pending {:?} selector {:#x} upcall_pending {}",
            vcpu.cursor,
            vcpu.apic,
            vcpu.carried_selector,
            vcpu.rom_events.len(),
            (0..EVTCHN_WORDS)
                .map(|w| words.pending_word(w))
                .collect::<Vec<_>>(),
            words.selector(),
            words.upcall_pending()
        )
    }

    #[test]
    fn a_lone_rom_port_is_taken_in_one_step_as_the_upcall_takes_it() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        let mut table = PortTable::<4>::new();
        table
            .bind(33, Binding::Virq(crate::abi::VIRQ_TIMER), 0, Route::Rom(0))
            .unwrap();
        table
            .bind(34, Binding::Ipi, 0, Route::vector(0x31).unwrap())
            .unwrap();
        table
            .bind(2, Binding::Ipi, 0, Route::vector(0x41).unwrap())
            .unwrap();
        let (timer, tick) = (port(33), vector(0xEF));
        disable_interrupts(&words);
        let probe = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        let lone = probe.lone_rom_port(&table, timer).unwrap();
        assert_eq!(lone.port(), timer);
        // Only a port routed to the ROM, with a budget above one, qualifies.
        assert_eq!(probe.lone_rom_port(&table, port(34)), None);
        assert_eq!(probe.lone_rom_port(&table, port(35)), None);
        let one = VcpuEvents::new(0, ScanBudget::new(1).unwrap()).unwrap();
        assert_eq!(one.lone_rom_port(&table, timer), None);

        // The lone tick: taken, cursor past it, 0xEF in service; the general path on a twin
        // state gives the same.
        let mut fast = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        let _ = raise_as_xen(&words, timer);
        let mut twin = fast.clone();
        assert!(fast.take_lone_rom_port(&words, lone, tick));
        let after_fast = snapshot(&fast, &words);
        let _ = raise_as_xen(&words, timer);
        assert_eq!(
            twin.upcall_with(&table, &words, |p| (p == timer).then_some(tick)),
            Delivery::Inject(tick)
        );
        assert_eq!(after_fast, snapshot(&twin, &words));
        assert_eq!(fast.cursor(), ScanCursor::at(port(34)));
        assert!(fast.apic().is_in_service(tick) && !words.upcall_pending());

        // Not alone, and every case is left exactly as it was for the general path.
        let refused = |vcpu: &mut VcpuEvents, why: &str| {
            let before = snapshot(vcpu, &words);
            assert!(
                !vcpu.take_lone_rom_port(&words, lone, tick),
                "taken with {why}"
            );
            assert_eq!(before, snapshot(vcpu, &words), "changed with {why}");
        };
        // Another port pending in the same word, or in another word.
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        let _ = raise_as_xen(&words, timer);
        let _ = raise_as_xen(&words, port(34));
        refused(&mut vcpu, "another port pending in its word");
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0x31)));
        let _ = vcpu.take_rom_event();
        let _ = vcpu.end_of_interrupt(&words);
        let _ = raise_as_xen(&words, timer);
        let _ = raise_as_xen(&words, port(2));
        refused(&mut vcpu, "another word flagged");
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0x41)));
        let _ = vcpu.take_rom_event();
        // The tick's own vector still in service, and a request waiting in the IRR.
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        let _ = raise_as_xen(&words, timer);
        assert!(vcpu.take_lone_rom_port(&words, lone, tick));
        let _ = raise_as_xen(&words, timer);
        refused(&mut vcpu, "its vector in service");
        let _ = vcpu.end_of_interrupt(&words);
        vcpu.raise_vector(&words, vector(0x31));
        refused(&mut vcpu, "a vector requested");
        // The task priority at the tick's class.
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        assert_eq!(vcpu.lone_vector_floor(), Some(0));
        vcpu.set_task_priority(&words, 0xE0);
        assert_eq!(vcpu.lone_vector_floor(), Some(0xE));
        refused(&mut vcpu, "TPR at its class");
        vcpu.raise_vector(&words, vector(0x31));
        assert_eq!(vcpu.lone_vector_floor(), None, "a vector requested");
        vcpu.set_task_priority(&words, 0);
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0x31)));
        assert_eq!(
            vcpu.lone_vector_floor(),
            None,
            "the tick left queued for the ROM"
        );
        assert_eq!(vcpu.take_rom_event(), Some(timer));
        assert_eq!(vcpu.lone_vector_floor(), Some(0x3), "0x31 in service");
        // Completing a lone port taken elsewhere (a ROM's assembly) is the rest of the take.
        let _ = raise_as_xen(&words, timer);
        let mut split = vcpu.clone();
        assert!(vcpu.take_lone_rom_port(&words, lone, tick));
        let taken = snapshot(&vcpu, &words);
        assert!(split
            .lone_vector_floor()
            .is_some_and(|f| tick.priority_class() > f));
        split.complete_lone_rom_port(lone, tick);
        assert_eq!(taken, snapshot(&split, &words));
        assert_eq!(split.lone_vector_floor(), Some(0xE));
        let _ = split.end_of_interrupt(&words);
        let _ = split.end_of_interrupt(&words);
        let mut vcpu = split;
        // Masked: nothing to take.
        vcpu.set_task_priority(&words, 0);
        mask_port(&words, timer);
        refused(&mut vcpu, "the port masked");
    }

    #[test]
    fn a_lone_port_behind_the_cursor_is_taken_and_the_cursor_moves_past_it() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        let table = rom_table(&[3, 40, 41]);
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        disable_interrupts(&words);
        // Take 41 first, so that the cursor stands at 42, past 3 and 40.
        let _ = raise_as_xen(&words, port(41));
        assert_eq!(vcpu.harvest(&table, &words).consumed, 1);
        assert_eq!(drain(&mut vcpu), [41]);
        assert_eq!(vcpu.cursor(), ScanCursor::at(port(42)));
        // One port pending in one word, behind the cursor: taken, cursor after it.
        let _ = raise_as_xen(&words, port(40));
        assert_eq!(
            vcpu.harvest(&table, &words),
            Harvest {
                consumed: 1,
                budget_exhausted: false
            }
        );
        assert_eq!(drain(&mut vcpu), [40]);
        assert_eq!(vcpu.cursor(), ScanCursor::at(port(41)));
        // A masked lone port is left pending; two in one word go the walk's way, in
        // circular order from the cursor (41, then 40), the cursor ending after 40.
        mask_port(&words, port(3));
        let _ = raise_as_xen(&words, port(3));
        assert_eq!(vcpu.harvest(&table, &words).consumed, 0);
        assert!(
            words.pending_word(0) & 1 << 3 != 0,
            "a masked port stays pending"
        );
        let _ = raise_as_xen(&words, port(40));
        let _ = raise_as_xen(&words, port(41));
        assert_eq!(vcpu.harvest(&table, &words).consumed, 2);
        assert_eq!(drain(&mut vcpu), [40, 41]);
        assert_eq!(vcpu.cursor(), ScanCursor::at(port(41)));
    }

    #[test]
    fn budget_range_and_bound() {
        assert_eq!(ScanBudget::new(0), Err(Error::BudgetOutOfRange(0)));
        assert_eq!(ScanBudget::new(1025), Err(Error::BudgetOutOfRange(1025)));
        assert_eq!(ScanBudget::new(1).unwrap().fairness_bound(), 1024);
        assert_eq!(ScanBudget::new(3).unwrap().fairness_bound(), 342);
        assert_eq!(ScanBudget::DEFAULT.fairness_bound(), 32);
        assert_eq!(ScanBudget::UNLIMITED.fairness_bound(), 1);
        assert_eq!(
            VcpuEvents::new(32, ScanBudget::DEFAULT).unwrap_err(),
            Error::VcpuOutOfRange(32)
        );
    }

    #[test]
    fn round_resumes_at_cursor_and_wraps_inside_the_cursor_word() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        // Ports 65 and 70 share word 2 with the cursor's start; 1000 is in word 31; 3 in 0.
        let table = rom_table(&[3, 65, 66, 70, 1000]);
        let mut vcpu = VcpuEvents::new(0, ScanBudget::new(2).unwrap()).unwrap();
        for raw in [3, 65, 66, 70, 1000] {
            let _ = raise_as_xen(&words, port(raw));
        }
        assert_eq!(
            vcpu.harvest(&table, &words),
            Harvest {
                consumed: 2,
                budget_exhausted: true
            }
        );
        assert_eq!(drain(&mut vcpu), [3, 65]);
        assert_eq!(vcpu.cursor().port(), port(66));
        assert_eq!((vcpu.cursor().word(), vcpu.cursor().bit()), (2, 2));
        assert!(
            words.upcall_pending(),
            "unfinished work keeps the upcall pending"
        );
        // 65 fires again: it lies behind the cursor, so 66 and 70 go first.
        let _ = raise_as_xen(&words, port(65));
        assert_eq!(vcpu.harvest(&table, &words).consumed, 2);
        assert_eq!(drain(&mut vcpu), [66, 70]);
        // Next: 1000, then wrapping through word 0 back to word 2's low bits.
        assert_eq!(vcpu.harvest(&table, &words).consumed, 2);
        assert_eq!(drain(&mut vcpu), [65, 1000]);
        assert_eq!(vcpu.cursor().port(), port(66), "65 was the last one taken");
        assert_eq!(
            vcpu.harvest(&table, &words),
            Harvest {
                consumed: 0,
                budget_exhausted: false
            }
        );
        assert_eq!(vcpu.carried_selector(), 0);
        assert!(!words.upcall_pending());
        assert_eq!(bitmaps_pending(&words), 0);
    }

    fn bitmaps_pending(words: &impl EventWords) -> u32 {
        (0..EVTCHN_WORDS)
            .map(|word| words.pending_word(word).count_ones())
            .sum()
    }

    #[test]
    fn masked_ports_stay_pending_and_unbound_ones_are_cleared() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        let mut table = rom_table(&[1, 2]);
        table.bind(40, Binding::Ipi, 1, Route::Rom(0)).unwrap();
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        mask_port(&words, port(2));
        for raw in [1, 2, 40, 500] {
            let _ = raise_as_xen(&words, port(raw));
        }
        // Port 40 notifies vCPU 1; force its word into our selector anyway.
        let _ = words.test_and_set_selector(1);
        assert_eq!(vcpu.harvest(&table, &words).consumed, 2);
        assert_eq!(drain(&mut vcpu), [1]);
        assert_eq!(vcpu.spurious_events(), 1, "port 500 has no binding");
        assert!(words.is_pending(port(2)), "masked: left for the unmask");
        assert!(
            words.is_pending(port(40)),
            "another vCPU's port is left alone"
        );
        assert!(!words.is_pending(port(500)));
    }

    #[test]
    fn upcall_injects_highest_and_queues_the_rest() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        let mut table = FullPortTable::new();
        table
            .bind(1, Binding::Virq(0), 0, Route::vector(0x20).unwrap())
            .unwrap();
        table.bind(2, Binding::Console, 0, Route::Rom(7)).unwrap();
        table
            .bind(3, Binding::Ipi, 0, Route::vector(0xF0).unwrap())
            .unwrap();
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        assert_eq!(enable_interrupts(&words), Wakeup::Idle);
        let _ = raise_as_xen(&words, port(1));
        let _ = raise_as_xen(&words, port(3));
        // Xen would call back now; it masks events on entry.
        assert!(words.upcall_pending());
        disable_interrupts(&words);
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0xF0)));
        assert!(vcpu.apic().is_requested(vector(0x20)));
        assert!(
            !words.upcall_pending(),
            "0x20 is blocked by 0xF0 in service"
        );
        assert!(!vcpu.has_local_work());
        // The console fires while the handler runs; the kernel EOIs and returns with IF=1.
        let _ = raise_as_xen(&words, port(2));
        assert_eq!(vcpu.end_of_interrupt(&words), Some(vector(0xF0)));
        assert!(vcpu.has_local_work(), "0x20 became deliverable");
        assert_eq!(enable_interrupts(&words), Wakeup::DeliverNow);
        disable_interrupts(&words);
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0x20)));
        assert!(words.upcall_pending(), "the ROM's event is still queued");
        assert_eq!(vcpu.take_rom_event(), Some(port(2)));
        assert_eq!(vcpu.take_rom_event(), None);
        assert_eq!(vcpu.end_of_interrupt(&words), Some(vector(0x20)));
        assert_eq!(enable_interrupts(&words), Wakeup::DeliverNow);
        disable_interrupts(&words);
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Resume);
        assert!(!words.upcall_pending());
        assert_eq!(enable_interrupts(&words), Wakeup::Idle);
    }

    #[test]
    fn upcall_keeps_scanning_past_blocked_vectors() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        let mut table = FullPortTable::new();
        table
            .bind(0, Binding::Ipi, 0, Route::vector(0x30).unwrap())
            .unwrap();
        table
            .bind(900, Binding::Ipi, 0, Route::vector(0x80).unwrap())
            .unwrap();
        let mut vcpu = VcpuEvents::new(0, ScanBudget::new(1).unwrap()).unwrap();
        disable_interrupts(&words);
        vcpu.raise_vector(&words, vector(0x40));
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0x40)));
        // 0x40 in service. Port 0's vector is blocked, so the round limit of 1 must not stop
        // the upcall before port 900's higher vector.
        let _ = raise_as_xen(&words, port(0));
        let _ = raise_as_xen(&words, port(900));
        assert_eq!(vcpu.upcall(&table, &words), Delivery::Inject(vector(0x80)));
        assert!(vcpu.apic().is_requested(vector(0x30)));
        assert!(vcpu.apic().is_in_service(vector(0x40)));
    }

    /// Shared words with Xen acting on another CPU in the middle of a scan.
    struct Interfering<'a> {
        inner: AtomicEventWords<'a>,
        /// Raised right after the guest exchanges the selector.
        raise_after_take: core::cell::Cell<Option<Port>>,
        /// When the guest clears port p's pending bit, port p - 1 fires.
        raise_lower_on_clear: bool,
    }

    impl EventWords for Interfering<'_> {
        fn pending_word(&self, word: usize) -> u32 {
            self.inner.pending_word(word)
        }
        fn mask_word(&self, word: usize) -> u32 {
            self.inner.mask_word(word)
        }
        fn test_and_set_pending(&self, port: Port) -> bool {
            self.inner.test_and_set_pending(port)
        }
        fn test_and_clear_pending(&self, port: Port) -> bool {
            let was = self.inner.test_and_clear_pending(port);
            if self.raise_lower_on_clear && port.get() > 0 {
                let _ = raise_as_xen(&self.inner, Port::new(port.get() - 1).unwrap());
            }
            was
        }
        fn set_mask(&self, port: Port) {
            self.inner.set_mask(port)
        }
        fn clear_mask(&self, port: Port) {
            self.inner.clear_mask(port)
        }
        fn selector(&self) -> u32 {
            self.inner.selector()
        }
        fn take_selector(&self) -> u32 {
            let taken = self.inner.take_selector();
            if let Some(port) = self.raise_after_take.take() {
                let _ = raise_as_xen(&self.inner, port);
            }
            taken
        }
        fn test_and_set_selector(&self, word: usize) -> bool {
            self.inner.test_and_set_selector(word)
        }
        fn upcall_pending(&self) -> bool {
            self.inner.upcall_pending()
        }
        fn test_and_set_upcall_pending(&self) -> bool {
            self.inner.test_and_set_upcall_pending()
        }
        fn clear_upcall_pending(&self) {
            self.inner.clear_upcall_pending()
        }
        fn upcall_mask(&self) -> bool {
            self.inner.upcall_mask()
        }
        fn set_upcall_mask(&self, masked: bool) {
            self.inner.set_upcall_mask(masked)
        }
    }

    #[test]
    fn a_port_raised_behind_the_scan_waits_for_the_next_round() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let all: Vec<u32> = (0..32).collect();
        let table = rom_table(&all);
        let words = Interfering {
            inner: AtomicEventWords::new(&bitmaps, &flags),
            raise_after_take: core::cell::Cell::new(None),
            raise_lower_on_clear: true,
        };
        let mut vcpu = VcpuEvents::new(0, ScanBudget::UNLIMITED).unwrap();
        disable_interrupts(&words);
        let _ = raise_as_xen(&words, port(31));
        // Taking 31 makes 30 fire; it lies behind the scan, so this round ends.
        assert_eq!(vcpu.harvest(&table, &words).consumed, 1);
        assert_eq!(drain(&mut vcpu), [31]);
        assert!(words.is_pending(port(30)));
        assert!(words.upcall_pending(), "Xen signalled the new edge");
        // Each round takes exactly one port of the cascade.
        assert_eq!(vcpu.harvest(&table, &words).consumed, 1);
        assert_eq!(drain(&mut vcpu), [30]);
    }

    #[test]
    fn an_edge_after_the_selector_exchange_stays_signalled() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        // Port 2 is a stale bit with no binding: the round takes it but leaves no local work
        // that would set upcall_pending by itself.
        let table = rom_table(&[900]);
        let words = Interfering {
            inner: AtomicEventWords::new(&bitmaps, &flags),
            raise_after_take: core::cell::Cell::new(Some(port(900))),
            raise_lower_on_clear: false,
        };
        let mut vcpu = VcpuEvents::new(0, ScanBudget::DEFAULT).unwrap();
        disable_interrupts(&words);
        let _ = raise_as_xen(&words, port(2));
        assert_eq!(vcpu.harvest(&table, &words).consumed, 1);
        assert_eq!(vcpu.spurious_events(), 1);
        assert!(!vcpu.has_local_work());
        // Port 900 fired after the exchange: its selector bit and upcall_pending must
        // survive the round (upcall_pending is cleared before the exchange, not after).
        assert!(words.is_pending(port(900)));
        assert_eq!(words.selector(), 1 << 28);
        assert!(words.upcall_pending());
        assert_eq!(vcpu.harvest(&table, &words).consumed, 1);
        assert_eq!(drain(&mut vcpu), [900]);
    }

    #[test]
    fn fairness_bound_is_tight_for_a_budget_of_one() {
        let bitmaps = EventBitmaps::new();
        let flags = VcpuEventFlags::new();
        let words = AtomicEventWords::new(&bitmaps, &flags);
        let all: Vec<u32> = (0..1024).collect();
        let table = rom_table(&all);
        let mut vcpu = VcpuEvents::new(0, ScanBudget::new(1).unwrap()).unwrap();
        disable_interrupts(&words);
        // Move the cursor to port 1, so port 0 is the last in circular order.
        let _ = raise_as_xen(&words, port(0));
        assert_eq!(vcpu.harvest(&table, &words).consumed, 1);
        let _ = drain(&mut vcpu);
        for &raw in &all {
            let _ = raise_as_xen(&words, port(raw));
        }
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert_eq!(vcpu.harvest(&table, &words).consumed, 1);
            let taken = drain(&mut vcpu);
            if taken == [0] {
                break;
            }
            // Busy: everything taken fires again at once.
            let _ = raise_as_xen(&words, port(taken[0]));
        }
        assert_eq!(rounds, ScanBudget::new(1).unwrap().fairness_bound());
    }
}
