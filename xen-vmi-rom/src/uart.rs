//! A 16550A UART, as the kernel's serial driver sees it at COM1.
//!
//! Register behaviour follows the National Semiconductor PC16550D
//! datasheet (register summary, IIR priority table, FIFO control, loopback
//! description). The transmitter is never slow: a byte written to THR goes
//! to the ROM's [`SerialSink`] (the Xen console) at once, so LSR always
//! reports THRE and TEMT. The receiver is a 16-byte FIFO (one holding
//! register with FIFOs off) the ROM fills from the console's input.
//!
//! Not modelled (documented divergences):
//! - Line timing: baud rate, character length and parity are stored and
//!   read back but do not slow anything down; the character-timeout
//!   interrupt (FIFO mode, fewer bytes than the trigger level) is pending
//!   as soon as such bytes wait, as if four character times had passed.
//! - Parity, framing and break errors are never produced (the console
//!   delivers clean bytes); LSR bit 7 is therefore always 0. Setting break
//!   (LCR bit 6) does not send a break.
//! - Overrun happens only in loopback mode: the ROM feeds input only while
//!   there is room ([`Uart::input_space`]).
//! - DMA mode (FCR bit 3) is stored and ignored; there is no TX FIFO to
//!   clear (FCR bit 2 has nothing to do).
//! - The modem inputs outside loopback are those of a connected null-modem
//!   cable: CTS, DSR and DCD asserted, RI not; they never change.

/// I/O base of COM1.
pub const COM1_BASE: u16 = 0x3F8;
/// ISA IRQ line of COM1.
pub const COM1_IRQ: u8 = 4;
/// I/O base of COM2 (the model works there as well).
pub const COM2_BASE: u16 = 0x2F8;
/// ISA IRQ line of COM2.
pub const COM2_IRQ: u8 = 3;
/// The UART decodes eight consecutive ports.
pub const UART_PORTS: u16 = 8;

/// Register offsets from the base (PC16550D register summary).
pub mod reg {
    /// RBR (read) / THR (write) with LCR.DLAB = 0; DLL with DLAB = 1.
    pub const DATA: u8 = 0;
    /// IER with DLAB = 0; DLM with DLAB = 1.
    pub const IER: u8 = 1;
    /// IIR (read) / FCR (write).
    pub const IIR_FCR: u8 = 2;
    /// LCR.
    pub const LCR: u8 = 3;
    /// MCR.
    pub const MCR: u8 = 4;
    /// LSR.
    pub const LSR: u8 = 5;
    /// MSR.
    pub const MSR: u8 = 6;
    /// SCR (scratch).
    pub const SCR: u8 = 7;
}

/// IER bits.
pub mod ier {
    /// Received data available (and character timeout in FIFO mode).
    pub const RDA: u8 = 0x01;
    /// Transmitter holding register empty.
    pub const THRE: u8 = 0x02;
    /// Receiver line status.
    pub const RLS: u8 = 0x04;
    /// Modem status.
    pub const MS: u8 = 0x08;
}

/// IIR values (bits 3-0) and the FIFO-enabled bits.
pub mod iir {
    /// No interrupt pending.
    pub const NONE: u8 = 0x01;
    /// Receiver line status (highest priority).
    pub const RLS: u8 = 0x06;
    /// Received data available (trigger level reached).
    pub const RDA: u8 = 0x04;
    /// Character timeout (FIFO mode).
    pub const TIMEOUT: u8 = 0x0C;
    /// Transmitter holding register empty.
    pub const THRE: u8 = 0x02;
    /// Modem status (lowest priority).
    pub const MS: u8 = 0x00;
    /// Bits 7-6: both set when the FIFOs are enabled.
    pub const FIFOS_ENABLED: u8 = 0xC0;
}

/// FCR bits.
pub mod fcr {
    /// Enable both FIFOs (other bits are ignored unless it is set).
    pub const ENABLE: u8 = 0x01;
    /// Clear the receive FIFO (self-clearing).
    pub const CLEAR_RX: u8 = 0x02;
    /// Clear the transmit FIFO (self-clearing).
    pub const CLEAR_TX: u8 = 0x04;
    /// DMA mode select.
    pub const DMA_MODE: u8 = 0x08;
    /// Receiver trigger level (bits 7-6: 1, 4, 8, 14 bytes).
    pub const TRIGGER_MASK: u8 = 0xC0;
}

/// LCR bits.
pub mod lcr {
    /// Divisor latch access.
    pub const DLAB: u8 = 0x80;
}

/// MCR bits.
pub mod mcr {
    /// Data terminal ready.
    pub const DTR: u8 = 0x01;
    /// Request to send.
    pub const RTS: u8 = 0x02;
    /// OUT1.
    pub const OUT1: u8 = 0x04;
    /// OUT2: on a PC it enables the UART's IRQ driver.
    pub const OUT2: u8 = 0x08;
    /// Loopback.
    pub const LOOP: u8 = 0x10;
    /// The bits the 16550A implements (5-7 read as 0).
    pub const IMPLEMENTED: u8 = 0x1F;
}

/// LSR bits.
pub mod lsr {
    /// Data ready.
    pub const DR: u8 = 0x01;
    /// Overrun error.
    pub const OE: u8 = 0x02;
    /// Parity error.
    pub const PE: u8 = 0x04;
    /// Framing error.
    pub const FE: u8 = 0x08;
    /// Break interrupt.
    pub const BI: u8 = 0x10;
    /// Transmitter holding register empty.
    pub const THRE: u8 = 0x20;
    /// Transmitter empty.
    pub const TEMT: u8 = 0x40;
    /// Error in receiver FIFO.
    pub const FIFO_ERROR: u8 = 0x80;
}

/// MSR bits.
pub mod msr {
    /// Delta CTS.
    pub const DCTS: u8 = 0x01;
    /// Delta DSR.
    pub const DDSR: u8 = 0x02;
    /// Trailing edge of RI.
    pub const TERI: u8 = 0x04;
    /// Delta DCD.
    pub const DDCD: u8 = 0x08;
    /// Clear to send.
    pub const CTS: u8 = 0x10;
    /// Data set ready.
    pub const DSR: u8 = 0x20;
    /// Ring indicator.
    pub const RI: u8 = 0x40;
    /// Data carrier detect.
    pub const DCD: u8 = 0x80;
}

/// Depth of the 16550A's receive FIFO.
pub const RX_FIFO_DEPTH: usize = 16;

/// Where transmitted bytes go: the ROM implements this on the Xen console
/// (console_io for dom0, the console ring for a domU).
pub trait SerialSink {
    /// One byte written to THR (outside loopback).
    fn put_byte(&mut self, byte: u8);
    /// Called after a `'\n'` has been put: push what is buffered out. The
    /// ROM may also flush on its own (before blocking or shutting down).
    fn flush(&mut self);
}

/// The modem inputs of a connected null-modem cable (outside loopback).
const EXTERNAL_MODEM_INPUTS: u8 = msr::CTS | msr::DSR | msr::DCD;

/// One 16550A.
#[derive(Debug, Clone)]
pub struct Uart {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    /// FCR bits that persist: ENABLE, DMA_MODE, TRIGGER_MASK (0 when the
    /// FIFOs are off).
    fcr: u8,
    /// Latched LSR error bits (OE/PE/FE/BI), cleared by reading LSR.
    lsr_errors: u8,
    /// Latched MSR delta bits (3-0), cleared by reading MSR.
    msr_deltas: u8,
    /// The modem inputs (MSR bits 7-4) as last seen, to derive deltas.
    modem_inputs: u8,
    rx: [u8; RX_FIFO_DEPTH],
    rx_head: u8,
    rx_len: u8,
    /// What RBR reads when nothing is queued: the last byte received.
    rbr_last: u8,
    /// The THRE interrupt condition: set when THR empties (at once after
    /// every write) or when ETBEI goes 0 -> 1 with THR empty; cleared by
    /// writing THR or reading IIR while it is the reported source.
    thre_pending: bool,
    irq_level: bool,
    irq_edge: bool,
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart {
    /// The state a PC BIOS leaves COM1 in: 115200 baud (divisor 1), 8N1,
    /// interrupts off, FIFOs off, modem outputs off.
    pub const fn new() -> Uart {
        Uart {
            ier: 0,
            lcr: 0x03,
            mcr: 0,
            scr: 0,
            dll: 1,
            dlm: 0,
            fcr: 0,
            lsr_errors: 0,
            msr_deltas: 0,
            modem_inputs: EXTERNAL_MODEM_INPUTS,
            rx: [0; RX_FIFO_DEPTH],
            rx_head: 0,
            rx_len: 0,
            rbr_last: 0,
            thre_pending: false,
            irq_level: false,
            irq_edge: false,
        }
    }

    /// Reads register `offset` (0..=7; higher bits ignored). Reads of RBR,
    /// IIR, LSR and MSR have the side effects the datasheet gives them.
    pub fn read(&mut self, offset: u8) -> u8 {
        let dlab = self.lcr & lcr::DLAB != 0;
        let value = match offset & 7 {
            reg::DATA if dlab => self.dll,
            reg::DATA => self.pop_rx(),
            reg::IER if dlab => self.dlm,
            reg::IER => self.ier,
            reg::IIR_FCR => {
                let id = self.interrupt_id();
                // Reading IIR while THRE is the source acknowledges it.
                if id & 0x0F == iir::THRE {
                    self.thre_pending = false;
                }
                id
            }
            reg::LCR => self.lcr,
            reg::MCR => self.mcr,
            reg::LSR => {
                let value = self.line_status();
                self.lsr_errors = 0;
                value
            }
            reg::MSR => {
                let value = self.modem_inputs | self.msr_deltas;
                self.msr_deltas = 0;
                value
            }
            _ => self.scr,
        };
        self.update_irq();
        value
    }

    /// Writes register `offset` (0..=7). THR bytes go to `sink`, or to the
    /// receiver in loopback mode.
    pub fn write<S: SerialSink>(&mut self, offset: u8, value: u8, sink: &mut S) {
        let dlab = self.lcr & lcr::DLAB != 0;
        match offset & 7 {
            reg::DATA if dlab => self.dll = value,
            reg::DATA => {
                self.thre_pending = false;
                self.update_irq();
                if self.loopback() {
                    self.receive(value);
                } else {
                    sink.put_byte(value);
                    if value == b'\n' {
                        sink.flush();
                    }
                }
                // The byte is gone at once: THR is empty again.
                self.thre_pending = true;
            }
            reg::IER if dlab => self.dlm = value,
            reg::IER => {
                let value = value & 0x0F;
                if value & ier::THRE != 0 && self.ier & ier::THRE == 0 {
                    // THRE is always 1 here: enabling the interrupt raises it.
                    self.thre_pending = true;
                }
                self.ier = value;
            }
            reg::IIR_FCR => self.write_fcr(value),
            reg::LCR => self.lcr = value,
            reg::MCR => {
                self.mcr = value & mcr::IMPLEMENTED;
                self.update_modem_inputs();
            }
            // LSR and MSR are read-only (LSR writes are a factory test).
            reg::LSR | reg::MSR => {}
            _ => self.scr = value,
        }
        self.update_irq();
    }

    /// Queues one byte of console input. Returns false (and drops nothing:
    /// the ROM keeps the byte) when the receiver is full or in loopback,
    /// where the receiver listens to the transmitter only.
    pub fn push_input(&mut self, byte: u8) -> bool {
        if self.input_space() == 0 {
            return false;
        }
        self.enqueue(byte);
        self.update_irq();
        true
    }

    /// How many bytes [`Uart::push_input`] would accept now.
    pub fn input_space(&self) -> usize {
        if self.loopback() {
            0
        } else {
            self.rx_capacity() - usize::from(self.rx_len)
        }
    }

    /// The interrupt output as the PC wires it: an interrupt is pending and
    /// MCR.OUT2 enables the driver (forced off in loopback, where the
    /// outputs are disconnected). The ROM routes it to IRQ4 (COM1).
    pub fn irq_level(&self) -> bool {
        self.irq_level
    }

    /// Whether the interrupt output rose since the last call. A THR write
    /// drops the THRE interrupt and raises it again within one access; the
    /// edge-triggered 8259 must see that as a new request.
    pub fn take_irq_edge(&mut self) -> bool {
        core::mem::replace(&mut self.irq_edge, false)
    }

    /// IIR as a read would return it, without the read's side effect.
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn interrupt_id(&self) -> u8 {
        let fifo_bits = if self.fifo_enabled() {
            iir::FIFOS_ENABLED
        } else {
            0
        };
        let rls = self.ier & ier::RLS != 0 && self.lsr_errors != 0;
        let rda = self.ier & ier::RDA != 0 && usize::from(self.rx_len) >= self.rx_trigger();
        let timeout = self.ier & ier::RDA != 0 && self.fifo_enabled() && self.rx_len > 0;
        let thre = self.ier & ier::THRE != 0 && self.thre_pending;
        let ms = self.ier & ier::MS != 0 && self.msr_deltas != 0;
        let id = if rls {
            iir::RLS
        } else if rda {
            iir::RDA
        } else if timeout {
            iir::TIMEOUT
        } else if thre {
            iir::THRE
        } else if ms {
            iir::MS
        } else {
            iir::NONE
        };
        fifo_bits | id
    }

    /// LSR as a read would return it, without clearing the error bits.
    pub fn line_status(&self) -> u8 {
        let dr = if self.rx_len > 0 { lsr::DR } else { 0 };
        dr | self.lsr_errors | lsr::THRE | lsr::TEMT
    }

    /// The divisor latch (DLM:DLL); the baud rate is 115200 / divisor.
    pub fn divisor(&self) -> u16 {
        u16::from_le_bytes([self.dll, self.dlm])
    }

    /// Whether MCR.LOOP is set.
    pub fn loopback(&self) -> bool {
        self.mcr & mcr::LOOP != 0
    }

    /// Whether the FIFOs are enabled (FCR bit 0).
    pub fn fifo_enabled(&self) -> bool {
        self.fcr & fcr::ENABLE != 0
    }

    fn write_fcr(&mut self, value: u8) {
        // PC16550D: changing FCR bit 0 clears both FIFOs, and the other
        // bits are only written while bit 0 is (or becomes) 1.
        let enable = value & fcr::ENABLE != 0;
        if enable != self.fifo_enabled() {
            self.clear_rx();
        }
        if !enable {
            self.fcr = 0;
            return;
        }
        if value & fcr::CLEAR_RX != 0 {
            self.clear_rx();
        }
        self.fcr = value & (fcr::ENABLE | fcr::DMA_MODE | fcr::TRIGGER_MASK);
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            RX_FIFO_DEPTH
        } else {
            1
        }
    }

    /// Bytes that raise "received data available": 1 without FIFOs, else
    /// the level FCR bits 7-6 select.
    fn rx_trigger(&self) -> usize {
        if !self.fifo_enabled() {
            return 1;
        }
        match self.fcr >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        }
    }

    fn clear_rx(&mut self) {
        self.rx_head = 0;
        self.rx_len = 0;
    }

    fn enqueue(&mut self, byte: u8) {
        let tail = (usize::from(self.rx_head) + usize::from(self.rx_len)) % RX_FIFO_DEPTH;
        if let Some(slot) = self.rx.get_mut(tail) {
            *slot = byte;
        }
        self.rx_len += 1;
    }

    /// A byte arriving at the receiver from the (looped-back) line.
    fn receive(&mut self, byte: u8) {
        if usize::from(self.rx_len) < self.rx_capacity() {
            self.enqueue(byte);
        } else {
            self.lsr_errors |= lsr::OE;
            if !self.fifo_enabled() {
                // The 16450-mode holding register is overwritten; a full
                // FIFO keeps its contents and loses the new byte.
                if let Some(slot) = self.rx.get_mut(usize::from(self.rx_head)) {
                    *slot = byte;
                }
            }
        }
    }

    fn pop_rx(&mut self) -> u8 {
        if self.rx_len > 0 {
            self.rbr_last = self.rx.get(usize::from(self.rx_head)).copied().unwrap_or(0);
            self.rx_head = ((usize::from(self.rx_head) + 1) % RX_FIFO_DEPTH) as u8;
            self.rx_len -= 1;
        }
        self.rbr_last
    }

    /// Recomputes the modem inputs after an MCR change and latches deltas.
    fn update_modem_inputs(&mut self) {
        let inputs = if self.loopback() {
            // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
            let mut v = 0;
            if self.mcr & mcr::DTR != 0 {
                v |= msr::DSR;
            }
            if self.mcr & mcr::RTS != 0 {
                v |= msr::CTS;
            }
            if self.mcr & mcr::OUT1 != 0 {
                v |= msr::RI;
            }
            if self.mcr & mcr::OUT2 != 0 {
                v |= msr::DCD;
            }
            v
        } else {
            EXTERNAL_MODEM_INPUTS
        };
        let changed = inputs ^ self.modem_inputs;
        if changed & msr::CTS != 0 {
            self.msr_deltas |= msr::DCTS;
        }
        if changed & msr::DSR != 0 {
            self.msr_deltas |= msr::DDSR;
        }
        if changed & msr::DCD != 0 {
            self.msr_deltas |= msr::DDCD;
        }
        if self.modem_inputs & msr::RI != 0 && inputs & msr::RI == 0 {
            self.msr_deltas |= msr::TERI;
        }
        self.modem_inputs = inputs;
    }

    #[cfg_attr(feature = "image", optimize(size))]
    fn update_irq(&mut self) {
        let level =
            self.interrupt_id() & iir::NONE == 0 && self.mcr & mcr::OUT2 != 0 && !self.loopback();
        if level && !self.irq_level {
            self.irq_edge = true;
        }
        self.irq_level = level;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    /// A console that records what it got.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        flushed_at: Vec<usize>,
    }

    impl SerialSink for Recorder {
        fn put_byte(&mut self, byte: u8) {
            self.bytes.push(byte);
        }
        fn flush(&mut self) {
            self.flushed_at.push(self.bytes.len());
        }
    }

    fn out(uart: &mut Uart, sink: &mut Recorder, offset: u8, value: u8) {
        uart.write(offset, value, sink);
    }

    /// The probe the Linux 8250 driver runs on a legacy port (autoconfig),
    /// followed by its startup checks: every value read must be what a
    /// 16550A answers, so the driver settles on PORT_16550A.
    #[test]
    fn linux_8250_probe_finds_a_16550a() {
        let mut u = Uart::new();
        let mut sink = Recorder::default();
        // IER scratch test: write 0, read back low nibble; write 0x0F, read.
        let saved_ier = u.read(reg::IER);
        out(&mut u, &mut sink, reg::IER, 0);
        assert_eq!(u.read(reg::IER) & 0x0F, 0);
        out(&mut u, &mut sink, reg::IER, 0x0F);
        assert_eq!(u.read(reg::IER) & 0x0F, 0x0F);
        out(&mut u, &mut sink, reg::IER, saved_ier);
        // Loopback test: MCR = LOOP | OUT2 | RTS gives MSR high nibble
        // DCD | CTS.
        let saved_mcr = u.read(reg::MCR);
        let saved_lcr = u.read(reg::LCR);
        out(
            &mut u,
            &mut sink,
            reg::MCR,
            mcr::LOOP | mcr::OUT2 | mcr::RTS,
        );
        assert_eq!(u.read(reg::MSR) & 0xF0, 0x90);
        out(&mut u, &mut sink, reg::MCR, saved_mcr);
        // EFR probe of later chips: LCR = 0xBF, write 0 at offset 2 (FCR
        // on a 16550A).
        out(&mut u, &mut sink, reg::LCR, 0xBF);
        out(&mut u, &mut sink, reg::IIR_FCR, 0);
        out(&mut u, &mut sink, reg::LCR, 0);
        // FIFO detection: enable FIFOs, IIR bits 7-6 = 11 means 16550A.
        out(&mut u, &mut sink, reg::IIR_FCR, fcr::ENABLE);
        assert_eq!(u.read(reg::IIR_FCR) >> 6, 3);
        // 16550A refinements: with DLAB set (LCR 0x80) or LCR 0xBF the
        // register at offset 2 must not read 0 (no EFR: not a 16650).
        out(&mut u, &mut sink, reg::LCR, 0x80);
        assert_ne!(u.read(reg::IIR_FCR), 0);
        out(&mut u, &mut sink, reg::LCR, 0xBF);
        assert_ne!(u.read(reg::IIR_FCR), 0);
        // National SuperIO check: offset 2 under LCR 0xE0 must not follow
        // MCR.LOOP (bit 4 of IIR is always 0).
        out(&mut u, &mut sink, reg::LCR, 0);
        let status1 = u.read(reg::MCR);
        out(&mut u, &mut sink, reg::LCR, 0xE0);
        let status2 = u.read(reg::IIR_FCR);
        assert_eq!((status1 ^ status2) & mcr::LOOP, 0);
        out(&mut u, &mut sink, reg::LCR, 0);
        out(&mut u, &mut sink, reg::MCR, status1 ^ mcr::LOOP);
        out(&mut u, &mut sink, reg::LCR, 0xE0);
        let status2 = u.read(reg::IIR_FCR);
        out(&mut u, &mut sink, reg::LCR, 0);
        out(&mut u, &mut sink, reg::MCR, status1);
        assert_eq!((status1 ^ status2) & mcr::LOOP, 0, "not an NS16550A");
        // TI16750 check: FCR bit 5 (64-byte FIFO) is not implemented, so
        // IIR bits 7-5 read 110 with and without DLAB.
        out(&mut u, &mut sink, reg::IIR_FCR, fcr::ENABLE | 0x20);
        let s1 = u.read(reg::IIR_FCR) >> 5;
        out(&mut u, &mut sink, reg::IIR_FCR, fcr::ENABLE);
        out(&mut u, &mut sink, reg::LCR, 0x80);
        out(&mut u, &mut sink, reg::IIR_FCR, fcr::ENABLE | 0x20);
        let s2 = u.read(reg::IIR_FCR) >> 5;
        out(&mut u, &mut sink, reg::IIR_FCR, fcr::ENABLE);
        out(&mut u, &mut sink, reg::LCR, 0);
        assert_eq!((s1, s2), (6, 6));
        // XScale UUE check: IER bit 6 does not stick.
        let ier_saved = u.read(reg::IER);
        out(&mut u, &mut sink, reg::IER, ier_saved | 0x40);
        assert_eq!(u.read(reg::IER) & 0x40, 0);
        out(&mut u, &mut sink, reg::IER, ier_saved);
        // Restore LCR, clear FIFOs (ENABLE, ENABLE|CLEAR, 0), read RBR.
        out(&mut u, &mut sink, reg::LCR, saved_lcr);
        out(&mut u, &mut sink, reg::IIR_FCR, fcr::ENABLE);
        out(
            &mut u,
            &mut sink,
            reg::IIR_FCR,
            fcr::ENABLE | fcr::CLEAR_RX | fcr::CLEAR_TX,
        );
        out(&mut u, &mut sink, reg::IIR_FCR, 0);
        u.read(reg::DATA);
        out(&mut u, &mut sink, reg::IER, 0);
        // Startup: FCR = 0xC7 (enable, clear both, trigger 14) then the
        // usual 8-byte trigger; LSR must not read 0xFF.
        out(&mut u, &mut sink, reg::IIR_FCR, 0xC7);
        assert_eq!(u.read(reg::IIR_FCR), 0xC1);
        out(&mut u, &mut sink, reg::IIR_FCR, 0x81);
        assert_ne!(u.read(reg::LSR), 0xFF);
        assert_eq!(u.read(reg::LSR), lsr::THRE | lsr::TEMT);
        // Line setup: DLAB, divisor 1, 8N1.
        out(&mut u, &mut sink, reg::LCR, 0x83);
        out(&mut u, &mut sink, reg::DATA, 1);
        out(&mut u, &mut sink, reg::IER, 0);
        out(&mut u, &mut sink, reg::LCR, 0x03);
        assert_eq!(u.divisor(), 1);
        out(&mut u, &mut sink, reg::MCR, mcr::OUT2 | mcr::RTS | mcr::DTR);
        // TX-enable test: enabling THRI must raise IIR = THRE at once.
        out(&mut u, &mut sink, reg::IER, ier::THRE);
        let lsr_v = u.read(reg::LSR);
        let iir_v = u.read(reg::IIR_FCR);
        out(&mut u, &mut sink, reg::IER, 0);
        assert!(lsr_v & lsr::TEMT != 0);
        assert_eq!(iir_v, 0xC2, "THRE interrupt on enabling ETBEI");
        // THRE re-assertion test: after the IIR read cleared it, enabling
        // ETBEI again re-raises it.
        out(&mut u, &mut sink, reg::IER, ier::THRE);
        let iir1 = u.read(reg::IIR_FCR);
        out(&mut u, &mut sink, reg::IER, 0);
        out(&mut u, &mut sink, reg::IER, ier::THRE);
        let iir2 = u.read(reg::IIR_FCR);
        out(&mut u, &mut sink, reg::IER, 0);
        assert_eq!((iir1 & 0x0F, iir2 & 0x0F), (iir::THRE, iir::THRE));
        assert!(sink.bytes.is_empty(), "nothing was transmitted");
    }

    #[test]
    fn thre_interrupt_driven_transmit() {
        let mut u = Uart::new();
        let mut sink = Recorder::default();
        out(&mut u, &mut sink, reg::MCR, mcr::OUT2);
        assert!(!u.irq_level());
        out(&mut u, &mut sink, reg::IER, ier::THRE);
        assert!(u.irq_level());
        assert!(u.take_irq_edge());
        assert!(!u.take_irq_edge());
        // The ISR identifies THRE (which clears it) and writes a byte: the
        // line drops at the write and rises again when THR empties.
        assert_eq!(u.read(reg::IIR_FCR), iir::THRE);
        assert!(!u.irq_level());
        out(&mut u, &mut sink, reg::DATA, b'h');
        assert!(u.irq_level());
        assert!(u.take_irq_edge());
        // Writing without reading IIR: the line was high, drops, rises.
        out(&mut u, &mut sink, reg::DATA, b'\n');
        assert!(u.take_irq_edge());
        assert_eq!(sink.bytes, b"h\n");
        assert_eq!(sink.flushed_at, vec![2]);
        // Disabling ETBEI clears the request; OUT2 gates the line.
        out(&mut u, &mut sink, reg::IER, 0);
        assert!(!u.irq_level());
        out(&mut u, &mut sink, reg::IER, ier::THRE);
        assert!(u.irq_level());
        out(&mut u, &mut sink, reg::MCR, 0);
        assert!(!u.irq_level());
        assert_eq!(u.interrupt_id(), iir::THRE);
    }

    #[test]
    fn receive_interrupts_by_trigger_level() {
        let mut u = Uart::new();
        let mut sink = Recorder::default();
        out(&mut u, &mut sink, reg::MCR, mcr::OUT2);
        out(&mut u, &mut sink, reg::IER, ier::RDA);
        // 16450 mode: one holding register.
        assert_eq!(u.input_space(), 1);
        assert!(u.push_input(b'a'));
        assert!(!u.push_input(b'b'));
        assert_eq!(u.interrupt_id(), iir::RDA);
        assert!(u.irq_level());
        assert_eq!(u.read(reg::LSR) & lsr::DR, lsr::DR);
        assert_eq!(u.read(reg::DATA), b'a');
        assert_eq!(u.interrupt_id(), iir::NONE);
        assert!(!u.irq_level());
        assert_eq!(u.read(reg::LSR) & lsr::DR, 0);
        // FIFO mode, trigger 4: below it the timeout interrupt, at it RDA.
        out(&mut u, &mut sink, reg::IIR_FCR, fcr::ENABLE | 0x40);
        assert_eq!(u.input_space(), RX_FIFO_DEPTH);
        for b in b"xyz" {
            assert!(u.push_input(*b));
        }
        assert_eq!(u.interrupt_id(), iir::FIFOS_ENABLED | iir::TIMEOUT);
        assert!(u.push_input(b'w'));
        assert_eq!(u.interrupt_id(), iir::FIFOS_ENABLED | iir::RDA);
        let mut got = Vec::new();
        while u.read(reg::LSR) & lsr::DR != 0 {
            got.push(u.read(reg::DATA));
        }
        assert_eq!(got, b"xyzw");
        assert_eq!(u.interrupt_id(), 0xC1);
        // Clearing the RX FIFO drops queued input.
        for _ in 0..RX_FIFO_DEPTH {
            assert!(u.push_input(b'q'));
        }
        assert!(!u.push_input(b'q'));
        out(&mut u, &mut sink, reg::IIR_FCR, fcr::ENABLE | fcr::CLEAR_RX);
        assert_eq!(u.read(reg::LSR) & lsr::DR, 0);
        // Turning FIFOs off clears them too.
        assert!(u.push_input(b'r'));
        out(&mut u, &mut sink, reg::IIR_FCR, 0);
        assert_eq!(u.read(reg::LSR) & lsr::DR, 0);
        assert_eq!(u.interrupt_id(), iir::NONE);
    }

    #[test]
    fn loopback_per_datasheet() {
        let mut u = Uart::new();
        let mut sink = Recorder::default();
        out(&mut u, &mut sink, reg::IER, ier::RDA | ier::MS | ier::RLS);
        out(&mut u, &mut sink, reg::MCR, mcr::LOOP | mcr::OUT2);
        // Entering loopback changed CTS and DSR (now from RTS/DTR = 0).
        assert_eq!(u.interrupt_id(), iir::MS);
        let m = u.read(reg::MSR);
        assert_eq!(m, msr::DCD | msr::DCTS | msr::DDSR);
        // Interrupts work inside the UART but the IRQ line is off.
        assert!(!u.irq_level());
        assert!(!u.push_input(b'x'), "the line input is disconnected");
        out(&mut u, &mut sink, reg::DATA, b'L');
        assert!(sink.bytes.is_empty(), "nothing reaches the console");
        assert_eq!(u.interrupt_id(), iir::RDA);
        // Second byte with the holding register full: overrun, the new
        // byte replaces the old one (16450 mode).
        out(&mut u, &mut sink, reg::DATA, b'M');
        assert_eq!(u.interrupt_id(), iir::RLS);
        assert_eq!(u.read(reg::LSR), lsr::DR | lsr::OE | lsr::THRE | lsr::TEMT);
        assert_eq!(u.read(reg::LSR), lsr::DR | lsr::THRE | lsr::TEMT);
        assert_eq!(u.read(reg::DATA), b'M');
        // RI trailing edge: OUT1 1 -> 0.
        out(&mut u, &mut sink, reg::MCR, mcr::LOOP | mcr::OUT1);
        assert_eq!(u.read(reg::MSR), msr::RI | msr::DDCD);
        out(&mut u, &mut sink, reg::MCR, mcr::LOOP);
        assert_eq!(u.read(reg::MSR), msr::TERI);
        out(&mut u, &mut sink, reg::MCR, mcr::LOOP | mcr::DTR | mcr::RTS);
        assert_eq!(
            u.read(reg::MSR),
            msr::DSR | msr::CTS | msr::DDSR | msr::DCTS
        );
        // Leaving loopback restores the cable's inputs.
        out(&mut u, &mut sink, reg::MCR, 0);
        assert_eq!(u.read(reg::MSR), msr::CTS | msr::DSR | msr::DCD | msr::DDCD);
        out(&mut u, &mut sink, reg::DATA, b'!');
        assert_eq!(sink.bytes, b"!");
    }

    #[test]
    fn divisor_latch_and_scratch() {
        let mut u = Uart::new();
        let mut sink = Recorder::default();
        out(&mut u, &mut sink, reg::LCR, 0x80 | 0x1B);
        out(&mut u, &mut sink, reg::DATA, 0x0C);
        out(&mut u, &mut sink, reg::IER, 0x01);
        assert_eq!(u.read(reg::DATA), 0x0C);
        assert_eq!(u.read(reg::IER), 0x01);
        out(&mut u, &mut sink, reg::LCR, 0x1B);
        assert_eq!(u.divisor(), 0x010C);
        assert_eq!(u.read(reg::IER), 0, "IER untouched by DLM writes");
        assert_eq!(u.read(reg::LCR), 0x1B);
        assert!(sink.bytes.is_empty(), "DLL writes are not data");
        for v in [0x00, 0x55, 0xAA, 0xFF] {
            out(&mut u, &mut sink, reg::SCR, v);
            assert_eq!(u.read(reg::SCR), v);
        }
        out(&mut u, &mut sink, reg::MCR, 0xFF);
        assert_eq!(u.read(reg::MCR), 0x1F);
    }

    #[derive(Debug, Clone)]
    enum Action {
        Read(u8),
        Write(u8, u8),
        Push(u8),
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            (0u8..8).prop_map(Action::Read),
            (0u8..8, any::<u8>()).prop_map(|(o, v)| Action::Write(o, v)),
            // Mostly sane control values so that loopback, DLAB and FIFOs
            // all come and go.
            (
                prop_oneof![Just(3u8), Just(4), Just(2), Just(1)],
                prop_oneof![
                    Just(0u8),
                    Just(0x80),
                    Just(0x03),
                    Just(0x10),
                    Just(0x18),
                    Just(0x0F),
                    Just(0x01),
                    Just(0xC7),
                    Just(0x41),
                    Just(0x02),
                    any::<u8>()
                ]
            )
                .prop_map(|(o, v)| Action::Write(o, v)),
            any::<u8>().prop_map(Action::Push),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random register traffic against a model that tracks only what
        /// the datasheet makes observable: the data path (bytes in, in
        /// order, to the right place), the register bits that must read
        /// as zero, and the IRQ line's gating.
        #[test]
        fn random_traffic_matches_the_data_model(actions in proptest::collection::vec(action(), 0..200)) {
            let mut u = Uart::new();
            let mut sink = Recorder::default();
            let mut expected_out: Vec<u8> = Vec::new();
            let mut rx: VecDeque<u8> = VecDeque::new();
            let mut lcr_v = 0x03u8;
            let mut mcr_v = 0u8;
            let mut fifo = false;
            let mut scr_v = 0u8;
            for a in actions {
                match a {
                    Action::Push(b) => {
                        let room = mcr_v & mcr::LOOP == 0 && rx.len() < if fifo { 16 } else { 1 };
                        prop_assert_eq!(u.input_space() > 0, room);
                        prop_assert_eq!(u.push_input(b), room);
                        if room { rx.push_back(b); }
                    }
                    Action::Write(o, v) => {
                        let dlab = lcr_v & 0x80 != 0;
                        match o {
                            0 if !dlab => {
                                if mcr_v & mcr::LOOP != 0 {
                                    let cap = if fifo { 16 } else { 1 };
                                    if rx.len() < cap { rx.push_back(v); } else if !fifo { *rx.back_mut().unwrap() = v; }
                                } else {
                                    expected_out.push(v);
                                }
                            }
                            2 => {
                                let en = v & 1 != 0;
                                if en != fifo || (en && v & 2 != 0) { rx.clear(); }
                                fifo = en;
                            }
                            3 => lcr_v = v,
                            4 => mcr_v = v & 0x1F,
                            7 => scr_v = v,
                            _ => {}
                        }
                        u.write(o, v, &mut sink);
                    }
                    Action::Read(o) => {
                        let dlab = lcr_v & 0x80 != 0;
                        let v = u.read(o);
                        match o {
                            0 if !dlab => {
                                if let Some(b) = rx.pop_front() { prop_assert_eq!(v, b); }
                            }
                            1 if !dlab => prop_assert_eq!(v & 0xF0, 0),
                            2 => {
                                prop_assert_eq!(v & 0x30, 0);
                                prop_assert_eq!(v & 0xC0, if fifo { 0xC0 } else { 0 });
                            }
                            3 => prop_assert_eq!(v, lcr_v),
                            4 => prop_assert_eq!(v, mcr_v),
                            5 => {
                                prop_assert_eq!(v & 0x60, 0x60);
                                prop_assert_eq!(v & 1 != 0, !rx.is_empty());
                                prop_assert_eq!(v & 0x9C, 0);
                            }
                            7 => prop_assert_eq!(v, scr_v),
                            _ => {}
                        }
                    }
                }
                // The line is an interrupt pending, gated by OUT2, off in loopback.
                let pending = u.interrupt_id() & 1 == 0;
                prop_assert_eq!(u.irq_level(), pending && mcr_v & mcr::OUT2 != 0 && mcr_v & mcr::LOOP == 0);
                prop_assert_eq!(u.line_status() & 1 != 0, !rx.is_empty());
            }
            prop_assert_eq!(&sink.bytes, &expected_out);
            let newlines: Vec<usize> = expected_out.iter().enumerate()
                .filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
            prop_assert_eq!(sink.flushed_at, newlines);
        }
    }
}
