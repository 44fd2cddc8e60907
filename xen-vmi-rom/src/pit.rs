//! The PC's 8254 interval timer (ports 0x40-0x43) and the timer-2 gate and
//! OUT2 bits of system control port B (0x61).
//!
//! Behaviour follows the Intel 8254 datasheet (control word, counter latch
//! and read-back commands, the status byte, modes 0, 2, 3 and 4, the
//! read/write flip-flop of LSB-then-MSB access, BCD counting). Time is not
//! simulated tick by tick: the caller passes the current time (ns since any
//! fixed epoch, from Xen's system time) and the counters are computed from
//! it at the 8254's 1.193182 MHz. For channel 0 the model answers when
//! OUT0 next rises ([`Pit::next_irq0_edge`]), so the ROM can program a Xen
//! one-shot timer for it, and whether it rose since the ROM last looked
//! ([`Pit::take_irq0_edge`]), so it can raise IRQ0 on the PIC.
//!
//! Not modelled (documented divergences):
//! - Modes 1 and 5 (hardware-triggered one-shot and strobe): they need a
//!   rising gate, which channels 0 and 1 never see on a PC; a counter in
//!   these modes holds its count with OUT high, also on channel 2.
//! - A count written to a counter already running in mode 2 or 3 restarts
//!   it on the next clock (the chip would finish the current period or
//!   half-period first). Linux always writes a control word first.
//! - A control word cancels a pending count or status latch (the datasheet
//!   leaves this open).
//! - Before the first count after a control word the counter reads the
//!   count it held; the chip's counting element is undefined then.
//! - A count of 1 in modes 2 and 3 (illegal per the datasheet) gives an
//!   edge on every clock; the ROM should rate-limit the Xen timer.
//! - Channel 1 (DRAM refresh on old PCs) counts like the others and drives
//!   nothing. Port 0x61 bit 4 toggles every 15.085 us like the refresh
//!   request flip-flop; bits 6 and 7 (IOCHK, SERR) are always 0; the
//!   speaker (bit 1) makes no sound.

/// The 8254's input clock on a PC, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// Channel 0 data port.
pub const CHANNEL0_PORT: u16 = 0x40;
/// Channel 1 data port.
pub const CHANNEL1_PORT: u16 = 0x41;
/// Channel 2 data port.
pub const CHANNEL2_PORT: u16 = 0x42;
/// Mode/command register (write only).
pub const COMMAND_PORT: u16 = 0x43;
/// System control port B: timer 2 gate (bit 0), speaker (bit 1), OUT2
/// (bit 5, read only).
pub const PORT_B: u16 = 0x61;

/// Port B bits.
pub mod port_b {
    /// Timer 2 gate.
    pub const GATE2: u8 = 0x01;
    /// Speaker data enable.
    pub const SPEAKER: u8 = 0x02;
    /// The writable bits (parity and channel check enables included).
    pub const WRITABLE: u8 = 0x0F;
    /// Refresh request toggle (read only).
    pub const REFRESH: u8 = 0x10;
    /// Timer 2 OUT (read only).
    pub const OUT2: u8 = 0x20;
}

const NS_PER_S: u64 = 1_000_000_000;
/// Half-period of port B's refresh toggle: 15.085 us (18 PIT clocks).
const REFRESH_TOGGLE_NS: u64 = 15_085;

/// PIT clocks elapsed at `ns` (rounded down): the tick an instant falls in.
pub const fn ticks_at(ns: u64) -> u64 {
    (ns / NS_PER_S) * PIT_HZ + (ns % NS_PER_S) * PIT_HZ / NS_PER_S
}

/// The first instant (ns) at which `ticks_at` reaches `tick`.
pub const fn ns_at_tick(tick: u64) -> u64 {
    let whole = tick / PIT_HZ;
    let part = tick % PIT_HZ;
    whole
        .saturating_mul(NS_PER_S)
        .saturating_add((part * NS_PER_S).div_ceil(PIT_HZ))
}

/// How a counter's data port is read and written (control word bits 5-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Lsb,
    Msb,
    LsbMsb,
}

/// What the counting element is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After a control word and before a usable count (or in mode 1/5):
    /// CE holds `ce`, OUT holds `out`.
    Idle { ce: u32, out: bool },
    /// Counting: CE equals `start` at tick `anchor` and steps once per
    /// clock after it. `armed` (modes 0, 4): the terminal count is ahead.
    Counting {
        anchor: u64,
        start: u32,
        armed: bool,
    },
    /// Gate low: CE frozen at `ce`, OUT at `out`.
    Paused { ce: u32, out: bool, armed: bool },
}

/// One counter.
#[derive(Debug, Clone)]
struct Counter {
    /// Control word bits 5-0 (RW, mode, BCD), as the status byte shows.
    control: u8,
    mode: u8,
    access: Access,
    bcd: bool,
    /// The initial count N, as a number of clocks (0 written = 2^16, or
    /// 10^4 in BCD).
    initial: u32,
    state: State,
    gate: bool,
    /// The LSB of an LSB-then-MSB write waiting for its MSB.
    pending_lsb: Option<u8>,
    /// Unlatched LSB-then-MSB reads: the next one returns the MSB.
    read_msb_next: bool,
    /// The output latch (counter latch / read-back count).
    latch: Option<u16>,
    latch_msb_next: bool,
    /// A latched status byte (read-back), read before the count.
    status: Option<u8>,
}

impl Counter {
    const fn new(gate: bool) -> Counter {
        Counter {
            control: 0x30,
            mode: 0,
            access: Access::LsbMsb,
            bcd: false,
            initial: 0x1_0000,
            state: State::Idle { ce: 0, out: false },
            gate,
            pending_lsb: None,
            read_msb_next: false,
            latch: None,
            latch_msb_next: false,
            status: None,
        }
    }

    fn modulus(&self) -> u64 {
        if self.bcd {
            10_000
        } else {
            0x1_0000
        }
    }

    /// OUT right after a control word: low in mode 0, high otherwise.
    fn initial_out(&self) -> bool {
        self.mode != 0
    }

    /// CE (as a number of clocks, before BCD encoding) and OUT at `tick`.
    #[cfg_attr(feature = "image", optimize(size))]
    fn ce_and_out(&self, tick: u64) -> (u64, bool) {
        let modulus = self.modulus();
        match self.state {
            State::Idle { ce, out } | State::Paused { ce, out, .. } => {
                (u64::from(ce) % modulus, out)
            }
            State::Counting {
                anchor,
                start,
                armed,
            } => {
                let start = u64::from(start);
                // Before the load clock the count is not in CE yet: show
                // it as loaded, OUT as it was set.
                let elapsed = tick.saturating_sub(anchor);
                match self.mode {
                    0 | 4 => {
                        let ce = (start + modulus - elapsed % modulus) % modulus;
                        let out = if !armed {
                            true
                        } else if self.mode == 0 {
                            elapsed >= start
                        } else {
                            elapsed != start
                        };
                        (ce, out)
                    }
                    2 => {
                        let n = u64::from(self.initial);
                        let phase = elapsed % n;
                        ((n - phase) % modulus, n < 2 || phase != n - 1)
                    }
                    _ => {
                        // Mode 3: CE steps by two; high half first, of
                        // (N+1)/2 clocks for odd N.
                        let n = u64::from(self.initial);
                        let phase = elapsed % n;
                        let high_len = n.div_ceil(2);
                        let top = n & !1;
                        let (ce, out) = if phase < high_len {
                            (top.saturating_sub(2 * phase), true)
                        } else {
                            (top.saturating_sub(2 * (phase - high_len)), false)
                        };
                        (ce % modulus, out)
                    }
                }
            }
        }
    }

    /// The count a read shows at `tick` (BCD-encoded in BCD mode).
    fn read_count(&self, tick: u64) -> u16 {
        let (ce, _) = self.ce_and_out(tick);
        if self.bcd {
            to_bcd(ce as u32)
        } else {
            ce as u16
        }
    }

    fn out(&self, tick: u64) -> bool {
        self.ce_and_out(tick).1
    }

    /// The first rising edge of OUT strictly after `tick`, if one is due.
    fn next_edge_after(&self, tick: u64) -> Option<u64> {
        let State::Counting {
            anchor,
            start,
            armed,
        } = self.state
        else {
            return None;
        };
        let start = u64::from(start);
        match self.mode {
            0 | 4 if armed => {
                let edge = anchor + start + u64::from(self.mode == 4);
                (edge > tick).then_some(edge)
            }
            2 | 3 => {
                let n = u64::from(self.initial);
                let first = anchor + n;
                if tick < first {
                    Some(first)
                } else {
                    Some(anchor + ((tick - anchor) / n + 1) * n)
                }
            }
            _ => None,
        }
    }

    fn write_control(&mut self, value: u8, tick: u64) {
        let (ce, _) = self.ce_and_out(tick);
        self.control = value & 0x3F;
        self.mode = match (value >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        };
        self.access = match (value >> 4) & 3 {
            1 => Access::Lsb,
            2 => Access::Msb,
            _ => Access::LsbMsb,
        };
        self.bcd = value & 1 != 0;
        self.state = State::Idle {
            ce: ce as u32,
            out: self.initial_out(),
        };
        self.pending_lsb = None;
        self.read_msb_next = false;
        self.latch = None;
        self.latch_msb_next = false;
        self.status = None;
    }

    fn write_data(&mut self, value: u8, tick: u64) {
        let raw = match (self.access, self.pending_lsb.take()) {
            (Access::Lsb, _) => u16::from(value),
            (Access::Msb, _) => u16::from(value) << 8,
            (Access::LsbMsb, Some(lsb)) => u16::from_le_bytes([lsb, value]),
            (Access::LsbMsb, None) => {
                self.pending_lsb = Some(value);
                if self.mode == 0 {
                    // Mode 0: writing the first byte stops the count and
                    // OUT goes (or stays) low until the new count runs.
                    let (ce, _) = self.ce_and_out(tick);
                    self.state = State::Idle {
                        ce: ce as u32,
                        out: false,
                    };
                }
                return;
            }
        };
        self.load(raw, tick);
    }

    /// A complete count was written at `tick`: CE takes it on the next
    /// clock.
    fn load(&mut self, raw: u16, tick: u64) {
        let value = if self.bcd {
            from_bcd(raw)
        } else {
            u32::from(raw)
        };
        let n = if value == 0 {
            self.modulus() as u32
        } else {
            value
        };
        self.initial = n;
        self.state = match self.mode {
            0 | 2 | 3 | 4 if self.gate => State::Counting {
                anchor: tick + 1,
                start: n,
                armed: true,
            },
            0 | 2 | 3 | 4 => State::Paused {
                ce: n,
                out: self.initial_out(),
                armed: true,
            },
            _ => State::Idle { ce: n, out: true },
        };
    }

    fn set_gate(&mut self, high: bool, tick: u64) {
        if high == self.gate {
            return;
        }
        self.gate = high;
        match (self.state, high) {
            (
                State::Counting {
                    anchor,
                    start,
                    armed,
                },
                false,
            ) => {
                let (ce, out) = self.ce_and_out(tick);
                let elapsed = tick.saturating_sub(anchor);
                let still_armed = armed
                    && match self.mode {
                        0 => elapsed < u64::from(start),
                        _ => elapsed <= u64::from(start),
                    };
                self.state = State::Paused {
                    ce: ce as u32,
                    // Modes 2 and 3: a low gate forces OUT high.
                    out: out || matches!(self.mode, 2 | 3),
                    armed: still_armed,
                };
            }
            (State::Paused { ce, armed, .. }, true) => {
                self.state = match self.mode {
                    // Counting resumes where it stopped.
                    0 | 4 => State::Counting {
                        anchor: tick,
                        start: if ce == 0 && armed {
                            self.modulus() as u32
                        } else {
                            ce
                        },
                        armed,
                    },
                    // A rising gate reloads the initial count.
                    _ => State::Counting {
                        anchor: tick + 1,
                        start: self.initial,
                        armed: true,
                    },
                };
            }
            _ => {}
        }
    }

    fn latch_count(&mut self, tick: u64) {
        if self.latch.is_none() {
            self.latch = Some(self.read_count(tick));
            self.latch_msb_next = false;
        }
    }

    fn latch_status(&mut self, tick: u64) {
        if self.status.is_none() {
            let out = if self.out(tick) { 0x80 } else { 0 };
            let null_count = match self.state {
                State::Counting { anchor, .. } => tick < anchor,
                State::Idle { .. } => true,
                State::Paused { .. } => false,
            };
            let null = if null_count { 0x40 } else { 0 };
            self.status = Some(out | null | self.control);
        }
    }

    fn read_data(&mut self, tick: u64) -> u8 {
        if let Some(status) = self.status.take() {
            return status;
        }
        if let Some(latched) = self.latch {
            let [lsb, msb] = latched.to_le_bytes();
            return match self.access {
                Access::Lsb => {
                    self.latch = None;
                    lsb
                }
                Access::Msb => {
                    self.latch = None;
                    msb
                }
                Access::LsbMsb if self.latch_msb_next => {
                    self.latch = None;
                    self.latch_msb_next = false;
                    msb
                }
                Access::LsbMsb => {
                    self.latch_msb_next = true;
                    lsb
                }
            };
        }
        let [lsb, msb] = self.read_count(tick).to_le_bytes();
        match self.access {
            Access::Lsb => lsb,
            Access::Msb => msb,
            Access::LsbMsb => {
                self.read_msb_next = !self.read_msb_next;
                if self.read_msb_next {
                    lsb
                } else {
                    msb
                }
            }
        }
    }
}

/// Four BCD digits of `value` (< 10000).
fn to_bcd(value: u32) -> u16 {
    let mut out = 0u16;
    let mut v = value % 10_000;
    for shift in [0, 4, 8, 12] {
        out |= ((v % 10) as u16) << shift;
        v /= 10;
    }
    out
}

/// The number four BCD digits stand for (a nibble above 9 counts at face
/// value, as the chip's decimal counter would start from it).
fn from_bcd(raw: u16) -> u32 {
    let mut value = 0u32;
    for shift in [12, 8, 4, 0] {
        value = value * 10 + u32::from((raw >> shift) & 0xF);
    }
    value % 10_000
}

/// The 8254 and port B.
#[derive(Debug, Clone)]
pub struct Pit {
    counters: [Counter; 3],
    /// Port B bits 3-0 as written.
    port_b: u8,
    /// The last tick [`Pit::take_irq0_edge`] looked at.
    irq0_checked: u64,
    /// A rising OUT0 edge that happened before channel 0 was reprogrammed
    /// and that the ROM has not taken yet.
    irq0_edge_latched: bool,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// Power-on state: no counter programmed (so no IRQ0 edges), timer 2
    /// gate off. No BIOS ran before the kernel, and Linux programs channel
    /// 0 before it unmasks IRQ0.
    pub const fn new() -> Pit {
        Pit {
            counters: [Counter::new(true), Counter::new(true), Counter::new(false)],
            port_b: 0,
            irq0_checked: 0,
            irq0_edge_latched: false,
        }
    }

    /// Reads port 0x40-0x43 at time `now_ns` (0x43 is write-only: 0xFF,
    /// the floating bus).
    pub fn read(&mut self, port: u16, now_ns: u64) -> u8 {
        let tick = ticks_at(now_ns);
        match port {
            CHANNEL0_PORT..=CHANNEL2_PORT => {
                match self.counters.get_mut(usize::from(port - CHANNEL0_PORT)) {
                    Some(counter) => counter.read_data(tick),
                    None => 0xFF,
                }
            }
            _ => 0xFF,
        }
    }

    /// Writes port 0x40-0x43 at time `now_ns`.
    pub fn write(&mut self, port: u16, value: u8, now_ns: u64) {
        let tick = ticks_at(now_ns);
        match port {
            CHANNEL0_PORT..=CHANNEL2_PORT => {
                let index = usize::from(port - CHANNEL0_PORT);
                if index == 0 {
                    self.fold_irq0_edges(tick);
                }
                if let Some(counter) = self.counters.get_mut(index) {
                    counter.write_data(value, tick);
                }
            }
            COMMAND_PORT => self.write_command(value, tick),
            _ => {}
        }
    }

    /// Reads port 0x61 at `now_ns`: the written bits, the refresh toggle
    /// and OUT2.
    pub fn read_port_b(&self, now_ns: u64) -> u8 {
        let refresh = if (now_ns / REFRESH_TOGGLE_NS) & 1 != 0 {
            port_b::REFRESH
        } else {
            0
        };
        let out2 = if self.counters[2].out(ticks_at(now_ns)) {
            port_b::OUT2
        } else {
            0
        };
        (self.port_b & port_b::WRITABLE) | refresh | out2
    }

    /// Writes port 0x61 at `now_ns`: bit 0 is timer 2's gate.
    pub fn write_port_b(&mut self, value: u8, now_ns: u64) {
        self.port_b = value & port_b::WRITABLE;
        self.counters[2].set_gate(value & port_b::GATE2 != 0, ticks_at(now_ns));
    }

    /// Whether OUT0 rose since the last call (or since the PIT was
    /// created). The ROM calls it when its Xen timer fires (and may call
    /// it any time) and raises IRQ0 on the PIC when it says yes; several
    /// edges in between count as one, as for a PIC that was slow to look.
    pub fn take_irq0_edge(&mut self, now_ns: u64) -> bool {
        let tick = ticks_at(now_ns);
        self.fold_irq0_edges(tick);
        core::mem::replace(&mut self.irq0_edge_latched, false)
    }

    /// When OUT0 next rises after `now_ns` (ns on the caller's clock), or
    /// None when channel 0 will not raise IRQ0 again as programmed.
    pub fn next_irq0_edge(&self, now_ns: u64) -> Option<u64> {
        let tick = ticks_at(now_ns).max(self.irq0_checked);
        self.counters[0].next_edge_after(tick).map(ns_at_tick)
    }

    /// OUT of counter `channel` (0..=2) at `now_ns`.
    pub fn out(&self, channel: usize, now_ns: u64) -> bool {
        self.counters
            .get(channel)
            .is_some_and(|c| c.out(ticks_at(now_ns)))
    }

    /// Records an OUT0 edge in (irq0_checked, tick] before anything that
    /// changes channel 0's future.
    fn fold_irq0_edges(&mut self, tick: u64) {
        if tick < self.irq0_checked {
            return;
        }
        if self.counters[0]
            .next_edge_after(self.irq0_checked)
            .is_some_and(|edge| edge <= tick)
        {
            self.irq0_edge_latched = true;
        }
        self.irq0_checked = tick;
    }

    fn write_command(&mut self, value: u8, tick: u64) {
        let select = value >> 6;
        if select == 3 {
            // Read-back: bit 5 clear latches counts, bit 4 clear latches
            // status, bits 1-3 pick counters 0-2.
            for (index, counter) in self.counters.iter_mut().enumerate() {
                if value & (2 << index) == 0 {
                    continue;
                }
                if value & 0x10 == 0 {
                    counter.latch_status(tick);
                }
                if value & 0x20 == 0 {
                    counter.latch_count(tick);
                }
            }
            return;
        }
        let index = usize::from(select);
        let latch_only = value & 0x30 == 0;
        if index == 0 && !latch_only {
            self.fold_irq0_edges(tick);
        }
        if let Some(counter) = self.counters.get_mut(index) {
            if latch_only {
                counter.latch_count(tick);
            } else {
                counter.write_control(value, tick);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// 1 ms worth of PIT clocks (Linux's LATCH for HZ=1000).
    const LATCH_1MS: u16 = 1193;

    fn ns(tick: u64) -> u64 {
        ns_at_tick(tick)
    }

    fn latch_read(pit: &mut Pit, channel: u8, now: u64) -> u16 {
        pit.write(COMMAND_PORT, channel << 6, now);
        let port = CHANNEL0_PORT + u16::from(channel);
        let lsb = pit.read(port, now);
        let msb = pit.read(port, now);
        u16::from_le_bytes([lsb, msb])
    }

    #[test]
    fn clock_conversions() {
        assert_eq!(ticks_at(0), 0);
        assert_eq!(ticks_at(NS_PER_S), PIT_HZ);
        assert_eq!(ticks_at(838), 0);
        assert_eq!(ticks_at(839), 1);
        assert_eq!(ns_at_tick(1), 839);
        assert_eq!(ns_at_tick(PIT_HZ), NS_PER_S);
        // Ten years of uptime still converts without overflow.
        let t = 10 * 365 * 24 * 3600 * NS_PER_S;
        assert_eq!(ticks_at(ns_at_tick(ticks_at(t))), ticks_at(t));
    }

    /// Linux's periodic PIT setup: 0x34 (channel 0, LSB/MSB, mode 2,
    /// binary), then LATCH low and high; its clocksource reads the count
    /// with a latch command (0x00) and two reads.
    #[test]
    fn linux_periodic_mode2() {
        let mut pit = Pit::new();
        let t0 = 5 * NS_PER_S;
        let w = ticks_at(t0);
        assert_eq!(pit.next_irq0_edge(t0), None);
        pit.write(COMMAND_PORT, 0x34, t0);
        pit.write(CHANNEL0_PORT, (LATCH_1MS & 0xFF) as u8, t0);
        pit.write(CHANNEL0_PORT, (LATCH_1MS >> 8) as u8, t0);
        let anchor = w + 1;
        let n = u64::from(LATCH_1MS);
        assert_eq!(latch_read(&mut pit, 0, ns(anchor)), LATCH_1MS);
        assert_eq!(latch_read(&mut pit, 0, ns(anchor + 100)), LATCH_1MS - 100);
        assert_eq!(latch_read(&mut pit, 0, ns(anchor + n - 1)), 1);
        assert_eq!(latch_read(&mut pit, 0, ns(anchor + n)), LATCH_1MS);
        // OUT0 low only while the count is 1.
        assert!(pit.out(0, ns(anchor + n - 2)));
        assert!(!pit.out(0, ns(anchor + n - 1)));
        assert!(pit.out(0, ns(anchor + n)));
        // Edges every N clocks after the load.
        assert_eq!(pit.next_irq0_edge(t0), Some(ns(anchor + n)));
        assert!(!pit.take_irq0_edge(ns(anchor + n) - 1));
        assert_eq!(pit.next_irq0_edge(ns(anchor + n) - 1), Some(ns(anchor + n)));
        assert!(pit.take_irq0_edge(ns(anchor + n)));
        assert!(!pit.take_irq0_edge(ns(anchor + n)));
        assert_eq!(pit.next_irq0_edge(ns(anchor + n)), Some(ns(anchor + 2 * n)));
        // Several periods missed: one edge, next deadline the next period.
        assert!(pit.take_irq0_edge(ns(anchor + 5 * n + 3)));
        assert_eq!(
            pit.next_irq0_edge(ns(anchor + 5 * n + 3)),
            Some(ns(anchor + 6 * n))
        );
        // Reprogramming after an untaken edge keeps that edge.
        let late = ns(anchor + 6 * n + 1);
        pit.write(COMMAND_PORT, 0x34, late);
        assert!(pit.take_irq0_edge(late));
        assert_eq!(pit.next_irq0_edge(late), None, "no count yet");
    }

    /// Linux's one-shot clockevent: 0x38 (mode 4) and a count per event;
    /// the older one-shot users use mode 0 (0x30).
    #[test]
    fn one_shot_modes() {
        let mut pit = Pit::new();
        let t0 = 1_000_000;
        let w = ticks_at(t0);
        pit.write(COMMAND_PORT, 0x30, t0);
        assert!(!pit.out(0, t0), "mode 0: OUT low after the control word");
        pit.write(CHANNEL0_PORT, 100, t0);
        pit.write(CHANNEL0_PORT, 0, t0);
        // N + 1 clocks after the write OUT goes high, and stays.
        assert!(!pit.out(0, ns(w + 100)));
        assert!(pit.out(0, ns(w + 101)));
        assert!(pit.out(0, ns(w + 5000)));
        assert_eq!(pit.next_irq0_edge(t0), Some(ns(w + 101)));
        assert!(pit.take_irq0_edge(ns(w + 200)));
        assert_eq!(pit.next_irq0_edge(ns(w + 200)), None);
        // The count wraps after terminal count.
        assert_eq!(latch_read(&mut pit, 0, ns(w + 102)), 0xFFFF);
        // Mode 4: OUT high, low for one clock N+1 clocks after the write,
        // the edge one clock later.
        let t1 = ns(w + 10_000);
        let w1 = ticks_at(t1);
        pit.write(COMMAND_PORT, 0x38, t1);
        pit.write(CHANNEL0_PORT, 50, t1);
        pit.write(CHANNEL0_PORT, 0, t1);
        assert!(pit.out(0, ns(w1 + 50)));
        assert!(!pit.out(0, ns(w1 + 51)));
        assert!(pit.out(0, ns(w1 + 52)));
        assert_eq!(pit.next_irq0_edge(t1), Some(ns(w1 + 52)));
        assert!(!pit.take_irq0_edge(ns(w1 + 51)));
        assert!(pit.take_irq0_edge(ns(w1 + 52)));
        assert_eq!(pit.next_irq0_edge(ns(w1 + 52)), None);
    }

    #[test]
    fn mode0_first_byte_stops_counting() {
        let mut pit = Pit::new();
        pit.write(COMMAND_PORT, 0x30, 0);
        pit.write(CHANNEL0_PORT, 0x10, 0);
        pit.write(CHANNEL0_PORT, 0x00, 0);
        let t = ns(10);
        pit.write(CHANNEL0_PORT, 0x20, t);
        assert_eq!(latch_read(&mut pit, 0, ns(1000)), 0x10 - 9);
        assert!(!pit.out(0, ns(1000)));
        assert_eq!(pit.next_irq0_edge(ns(1000)), None);
        pit.write(CHANNEL0_PORT, 0x00, ns(1000));
        assert_eq!(pit.next_irq0_edge(ns(1000)), Some(ns(1001 + 0x20)));
    }

    /// Linux's pit_calibrate_tsc: gate on, speaker off, channel 2 mode 0
    /// with a 50 ms count, then poll port 0x61 bit 5 until OUT2 rises.
    #[test]
    fn linux_pit_calibrate_loop() {
        let mut pit = Pit::new();
        let mut now = 3 * NS_PER_S + 12_345;
        let latch: u16 = (PIT_HZ / 20) as u16;
        let b = pit.read_port_b(now);
        pit.write_port_b((b & !port_b::SPEAKER) | port_b::GATE2, now);
        pit.write(COMMAND_PORT, 0xB0, now);
        pit.write(CHANNEL2_PORT, (latch & 0xFF) as u8, now);
        pit.write(CHANNEL2_PORT, (latch >> 8) as u8, now);
        let start = now;
        let mut loops = 0u32;
        while pit.read_port_b(now) & port_b::OUT2 == 0 {
            // Each inb takes about a microsecond on a trapping port.
            now += 1_000;
            loops += 1;
            assert!(loops < 100_000);
        }
        let elapsed = now - start;
        // N + 1 clocks of 838.1 ns: 50 ms, to within the 1 us polling step.
        let expected = ns_at_tick(ticks_at(start) + u64::from(latch) + 1) - start;
        assert!(
            elapsed >= expected && elapsed < expected + 1_000,
            "{elapsed} vs {expected}"
        );
        assert!((49_900_000..50_100_000).contains(&elapsed));
        // Port B keeps the written bits and reports the gate.
        assert_eq!(pit.read_port_b(now) & port_b::WRITABLE, port_b::GATE2);
    }

    /// Linux's quick_pit_calibrate: channel 2 mode 0 from 0xFFFF, then
    /// unlatched LSB/MSB read pairs watching the MSB step down once per
    /// 256 clocks.
    #[test]
    fn linux_quick_pit_calibrate_msb_steps() {
        let mut pit = Pit::new();
        let mut now = 777;
        pit.write_port_b(port_b::GATE2, now);
        pit.write(COMMAND_PORT, 0xB0, now);
        pit.write(CHANNEL2_PORT, 0xFF, now);
        pit.write(CHANNEL2_PORT, 0xFF, now);
        let mut msbs = Vec::new();
        for _ in 0..3000 {
            now += 500;
            let _lsb = pit.read(CHANNEL2_PORT, now);
            let msb = pit.read(CHANNEL2_PORT, now);
            if msbs.last() != Some(&msb) {
                msbs.push(msb);
            }
        }
        // 1.5 ms: about 1790 clocks, so the MSB went 0xFF down to 0xF9.
        assert_eq!(msbs, (0xF9..=0xFF).rev().collect::<Vec<u8>>());
    }

    #[test]
    fn gate_pauses_mode0_and_restarts_mode2() {
        let mut pit = Pit::new();
        pit.write_port_b(port_b::GATE2, 0);
        pit.write(COMMAND_PORT, 0xB0, 0);
        pit.write(CHANNEL2_PORT, 100, 0);
        pit.write(CHANNEL2_PORT, 0, 0);
        assert_eq!(latch_read(&mut pit, 2, ns(41)), 60);
        pit.write_port_b(0, ns(41));
        assert_eq!(latch_read(&mut pit, 2, ns(500)), 60);
        assert_eq!(pit.read_port_b(ns(500)) & port_b::OUT2, 0);
        pit.write_port_b(port_b::GATE2, ns(500));
        assert_eq!(latch_read(&mut pit, 2, ns(530)), 30);
        assert_eq!(pit.read_port_b(ns(559)) & port_b::OUT2, 0);
        assert_ne!(pit.read_port_b(ns(560)) & port_b::OUT2, 0);
        // Mode 2 on channel 2: gate low forces OUT high and stops; the
        // rising gate reloads.
        pit.write(COMMAND_PORT, 0xB4, ns(1000));
        pit.write(CHANNEL2_PORT, 10, ns(1000));
        pit.write(CHANNEL2_PORT, 0, ns(1000));
        assert!(!pit.out(2, ns(1010)));
        pit.write_port_b(0, ns(1010));
        assert!(pit.out(2, ns(1010)));
        pit.write_port_b(port_b::GATE2, ns(2000));
        assert_eq!(latch_read(&mut pit, 2, ns(2001)), 10);
        assert_eq!(latch_read(&mut pit, 2, ns(2004)), 7);
    }

    #[test]
    fn mode3_square_wave() {
        let mut pit = Pit::new();
        pit.write_port_b(port_b::GATE2, 0);
        // Channel 2, LSB/MSB, mode 3, N = 10: five clocks high, five low.
        pit.write(COMMAND_PORT, 0xB6, 0);
        pit.write(CHANNEL2_PORT, 10, 0);
        pit.write(CHANNEL2_PORT, 0, 0);
        let outs: Vec<bool> = (1..21).map(|t| pit.out(2, ns(t))).collect();
        let expected: Vec<bool> = (0..20).map(|p| p % 10 < 5).collect();
        assert_eq!(outs, expected);
        let counts: Vec<u16> = (1..11).map(|t| latch_read(&mut pit, 2, ns(t))).collect();
        assert_eq!(counts, vec![10, 8, 6, 4, 2, 10, 8, 6, 4, 2]);
        // Odd N = 7: high for 4 clocks, low for 3.
        pit.write(COMMAND_PORT, 0xB6, ns(100));
        pit.write(CHANNEL2_PORT, 7, ns(100));
        pit.write(CHANNEL2_PORT, 0, ns(100));
        let outs: Vec<bool> = (101..108).map(|t| pit.out(2, ns(t))).collect();
        assert_eq!(outs, vec![true, true, true, true, false, false, false]);
        // IRQ0 in mode 3: one edge per period.
        pit.write(COMMAND_PORT, 0x36, ns(200));
        pit.write(CHANNEL0_PORT, 0, ns(200));
        pit.write(CHANNEL0_PORT, 0, ns(200));
        assert_eq!(pit.next_irq0_edge(ns(200)), Some(ns(201 + 65536)));
    }

    #[test]
    fn read_back_status_and_access_modes() {
        let mut pit = Pit::new();
        pit.write(COMMAND_PORT, 0x34, 0);
        // Null count until the load clock.
        pit.write(COMMAND_PORT, 0xE2, 0);
        assert_eq!(pit.read(CHANNEL0_PORT, 0), 0x40 | 0x34 | 0x80);
        pit.write(CHANNEL0_PORT, 0x00, 0);
        pit.write(CHANNEL0_PORT, 0x01, 0);
        // Read-back of count and status together: status first.
        pit.write(COMMAND_PORT, 0xC2, ns(11));
        assert_eq!(pit.read(CHANNEL0_PORT, ns(50)), 0x80 | 0x34);
        assert_eq!(pit.read(CHANNEL0_PORT, ns(50)), 0xF6);
        assert_eq!(pit.read(CHANNEL0_PORT, ns(50)), 0x00);
        // A second latch before reading is ignored.
        pit.write(COMMAND_PORT, 0x00, ns(20));
        pit.write(COMMAND_PORT, 0x00, ns(30));
        assert_eq!(pit.read(CHANNEL0_PORT, ns(40)), 237);
        assert_eq!(pit.read(CHANNEL0_PORT, ns(40)), 0);
        // LSB-only and MSB-only access.
        pit.write(COMMAND_PORT, 0x54, 0); // channel 1, LSB, mode 2
        pit.write(CHANNEL1_PORT, 18, 0);
        assert_eq!(pit.read(CHANNEL1_PORT, ns(5)), 14);
        pit.write(COMMAND_PORT, 0x64, 0); // channel 1, MSB, mode 2
        pit.write(CHANNEL1_PORT, 2, 0);
        assert_eq!(pit.read(CHANNEL1_PORT, ns(1)), 2);
        assert_eq!(pit.read(CHANNEL1_PORT, ns(2)), 1);
        // Port 0x43 reads as the floating bus.
        assert_eq!(pit.read(COMMAND_PORT, 0), 0xFF);
    }

    #[test]
    fn bcd_counting() {
        let mut pit = Pit::new();
        // Channel 0, LSB/MSB, mode 2, BCD, count 1000 (0x1000 in BCD).
        pit.write(COMMAND_PORT, 0x35, 0);
        pit.write(CHANNEL0_PORT, 0x00, 0);
        pit.write(CHANNEL0_PORT, 0x10, 0);
        assert_eq!(latch_read(&mut pit, 0, ns(1)), 0x1000);
        assert_eq!(latch_read(&mut pit, 0, ns(2)), 0x0999);
        assert_eq!(latch_read(&mut pit, 0, ns(1 + 999)), 0x0001);
        assert_eq!(pit.next_irq0_edge(0), Some(ns(1001)));
        // Count 0 in BCD means 10000.
        pit.write(COMMAND_PORT, 0x35, 0);
        pit.write(CHANNEL0_PORT, 0, 0);
        pit.write(CHANNEL0_PORT, 0, 0);
        assert_eq!(latch_read(&mut pit, 0, ns(2)), 0x9999);
        assert_eq!(pit.next_irq0_edge(0), Some(ns(10_001)));
        for v in [0, 1, 9, 10, 99, 1234, 9999] {
            assert_eq!(from_bcd(to_bcd(v)), v);
        }
    }

    #[test]
    fn refresh_toggle() {
        let pit = Pit::new();
        assert_eq!(pit.read_port_b(0) & port_b::REFRESH, 0);
        assert_ne!(pit.read_port_b(REFRESH_TOGGLE_NS) & port_b::REFRESH, 0);
        assert_eq!(pit.read_port_b(2 * REFRESH_TOGGLE_NS) & port_b::REFRESH, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// ns_at_tick is the exact inverse of ticks_at.
        #[test]
        fn conversions_are_inverse(tick in 0u64..(1 << 52)) {
            let ns = ns_at_tick(tick);
            prop_assert_eq!(ticks_at(ns), tick);
            if tick > 0 {
                prop_assert_eq!(ticks_at(ns - 1), tick - 1);
            }
        }

        /// Mode 2 at random times against the datasheet's formula, and the
        /// IRQ0 deadline protocol: nothing before the deadline, an edge at
        /// it, and the deadlines N clocks apart.
        #[test]
        fn mode2_matches_the_formula(
            n in 2u32..=65536, start_ns in 0u64..(1 << 40),
            probes in proptest::collection::vec(0u64..400_000, 1..20),
        ) {
            let mut pit = Pit::new();
            let raw = (n % 65536) as u16;
            pit.write(COMMAND_PORT, 0x34, start_ns);
            pit.write(CHANNEL0_PORT, raw as u8, start_ns);
            pit.write(CHANNEL0_PORT, (raw >> 8) as u8, start_ns);
            let anchor = ticks_at(start_ns) + 1;
            let n = u64::from(n);
            for p in probes {
                let tick = anchor + p;
                prop_assert_eq!(u64::from(latch_read(&mut pit, 0, ns(tick))), (n - p % n) % 65536);
                prop_assert_eq!(pit.out(0, ns(tick)), p % n != n - 1);
            }
            let mut now = start_ns;
            let mut previous: Option<u64> = None;
            for _ in 0..4 {
                let deadline = pit.next_irq0_edge(now).unwrap();
                prop_assert!(deadline > now);
                prop_assert!(!pit.take_irq0_edge(deadline - 1));
                prop_assert!(pit.take_irq0_edge(deadline));
                prop_assert_eq!((ticks_at(deadline) - anchor) % n, 0);
                if let Some(prev) = previous {
                    prop_assert_eq!(ticks_at(deadline) - ticks_at(prev), n);
                }
                previous = Some(deadline);
                now = deadline;
            }
        }

        /// Random port traffic never panics and port B's read-only bits
        /// stay consistent with OUT2.
        #[test]
        fn random_traffic_is_safe(ops in proptest::collection::vec((0u16..5, any::<u8>(), any::<bool>(), 0u64..10_000), 0..100)) {
            let mut pit = Pit::new();
            let mut now = 0u64;
            for (p, v, is_write, dt) in ops {
                now += dt;
                let port = if p == 4 { PORT_B } else { CHANNEL0_PORT + p };
                match (port, is_write) {
                    (PORT_B, true) => pit.write_port_b(v, now),
                    (PORT_B, false) => {
                        let b = pit.read_port_b(now);
                        prop_assert_eq!(b & port_b::OUT2 != 0, pit.out(2, now));
                        prop_assert_eq!(b & 0xC0, 0);
                    }
                    (_, true) => pit.write(port, v, now),
                    (_, false) => { pit.read(port, now); }
                }
                if let Some(deadline) = pit.next_irq0_edge(now) {
                    prop_assert!(deadline > now);
                }
                pit.take_irq0_edge(now);
            }
        }
    }
}
