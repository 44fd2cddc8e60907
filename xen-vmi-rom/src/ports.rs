//! The I/O port space the kernel sees: what the ROM's #GP handler does
//! with an emulated IN, OUT, INS or OUTS.
//!
//! A PC's ISA bus with a few devices on it:
//!
//! | ports | device |
//! |---|---|
//! | 0x3F8-0x3FF | COM1, a 16550A ([`crate::uart`]) on the Xen console, IRQ4 |
//! | 0x20-0x21, 0xA0-0xA1 | the 8259A pair ([`crate::pic`]) |
//! | 0x40-0x43, 0x61 | the 8254 and port B ([`crate::pit`]) |
//! | 0x70, 0x71 | the CMOS clock ([`crate::rtc`]) |
//! | 0x80, 0xED | POST code and I/O delay ports: writes do nothing |
//! | 0xCF8-0xCFF | PCI configuration mechanism 1: a host bridge at 00:00.0 ([`crate::pci`]), all-ones elsewhere |
//! | anything else | nothing: reads all-ones, writes vanish, reported once per port |
//!
//! The devices are byte-wide, as on the ISA bus: a 16- or 32-bit access is
//! split into byte accesses at consecutive ports (the bus's own cycle
//! splitting), each going to whatever decodes that port. An access to
//! nothing at all is one unclaimed access at its first port. The port
//! number wraps at 0xFFFF (the CPU would put a dword access at 0xFFFF on
//! ports up to 0x10002; no device lives there).

use crate::decode::Width;
use crate::pci::HostBridge;
use crate::pic::PicPair;
use crate::pit::Pit;
use crate::rtc::Rtc;
use crate::uart::{SerialSink, Uart, COM1_BASE, COM1_IRQ, UART_PORTS};

/// The PIT's line on the master PIC.
pub const PIT_IRQ: u8 = 0;
/// POST diagnostic code port (Linux's `outb_p` delay also writes it).
pub const POST_PORT: u16 = 0x80;
/// The alternative I/O delay port (Linux `io_delay=0xed`).
pub const DELAY_PORT: u16 = 0xED;
/// PCI configuration address register (mechanism 1).
pub const PCI_CONFIG_ADDRESS: u16 = 0xCF8;
/// PCI configuration data window (mechanism 1; 0xCFC-0xCFF).
pub const PCI_CONFIG_DATA: u16 = 0xCFC;

/// What the ROM provides to the devices: the console behind COM1 (through
/// [`SerialSink`]), the time, the Xen timer, and a way to say that the
/// kernel touched a port nothing answers.
/// The ROM's statistics port: a 32-bit `in` returns how many hypercalls
/// the ROM has made so far (wrapping). Not a PC device: on hardware, or
/// under a native VMI ROM, nothing decodes it and the read gives all ones,
/// which a kernel takes as "no figures". Benchmarks and the conformance
/// cases read it around an operation to count the hypercalls it cost.
pub const ROM_STATS_PORT: u16 = 0x5A0;

pub trait IoHost: SerialSink {
    /// Current time in ns on a clock that never goes backwards (Xen's
    /// system time). Asked only on PIT and port B accesses.
    fn now_ns(&mut self) -> u64;
    /// Arms (Some, an instant on the `now_ns` clock) or cancels (None) the
    /// one-shot timer for the PIT's next IRQ0 edge. Called only when the
    /// deadline changes. When it fires, the ROM calls
    /// [`IsaBus::poll_timer`].
    fn set_irq0_deadline(&mut self, deadline_ns: Option<u64>);
    /// The kernel accessed `port`, which nothing decodes: said once per
    /// port (the first access's size and direction).
    fn report_unclaimed(&mut self, port: u16, width: Width, write: bool);
    /// Wall-clock time (seconds since 1970, UTC) for the CMOS clock.
    fn wallclock_seconds(&mut self) -> u64;
}

/// What decodes a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// COM1.
    Com1,
    /// Master or slave 8259A.
    Pic,
    /// The 8254 (0x40-0x43).
    Pit,
    /// System control port B (0x61).
    PortB,
    /// POST code or I/O delay port: silent no-op.
    PostOrDelay,
    /// PCI configuration mechanism 1 registers: all-ones, silently.
    PciConfig,
    /// The CMOS real-time clock (0x70/0x71).
    Rtc,
    /// Nothing: all-ones, reported.
    Nothing,
}

/// The device at `port`.
pub const fn device_at(port: u16) -> Device {
    match port {
        p if p >= COM1_BASE && p < COM1_BASE + UART_PORTS => Device::Com1,
        0x20 | 0x21 | 0xA0 | 0xA1 => Device::Pic,
        0x40..=0x43 => Device::Pit,
        0x61 => Device::PortB,
        POST_PORT | DELAY_PORT => Device::PostOrDelay,
        0xCF8..=0xCFF => Device::PciConfig,
        crate::rtc::INDEX_PORT | crate::rtc::DATA_PORT => Device::Rtc,
        _ => Device::Nothing,
    }
}

/// Bitmap words for one bit per port.
const REPORTED_WORDS: usize = 65536 / 32;

/// The kernel's I/O port space.
#[derive(Debug, Clone)]
pub struct IsaBus {
    /// COM1 on the Xen console.
    pub com1: Uart,
    /// The interrupt controllers.
    pub pic: PicPair,
    /// The interval timer and port B.
    pub pit: Pit,
    /// The CMOS clock.
    pub rtc: Rtc,
    /// PCI configuration address register (0xCF8).
    pci_address: u32,
    /// The one PCI function.
    pub pci: HostBridge,
    /// The deadline last given to [`IoHost::set_irq0_deadline`].
    irq0_deadline: Option<u64>,
    /// Ports already reported as unclaimed.
    reported: [u32; REPORTED_WORDS],
}

impl Default for IsaBus {
    fn default() -> Self {
        Self::new()
    }
}

impl IsaBus {
    /// Every device in its power-on state, nothing reported yet.
    pub const fn new() -> IsaBus {
        IsaBus {
            com1: Uart::new(),
            pic: PicPair::new(),
            pit: Pit::new(),
            rtc: Rtc::new(),
            pci_address: 0,
            pci: HostBridge::new(),
            irq0_deadline: None,
            reported: [0; REPORTED_WORDS],
        }
    }

    /// Puts the bus back to [`IsaBus::new`]'s state in place (the bitmap
    /// is 8 KiB: no copy through the stack).
    pub fn reset(&mut self) {
        self.com1 = Uart::new();
        self.pic = PicPair::new();
        self.pit = Pit::new();
        self.rtc = Rtc::new();
        self.pci_address = 0;
        self.pci = HostBridge::new();
        self.irq0_deadline = None;
        self.reported.fill(0);
    }

    /// An IN of `width` at `port`: the value for AL/AX/EAX (zero-extended).
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn read<H: IoHost>(&mut self, host: &mut H, port: u16, width: Width) -> u32 {
        if let Some(value) = self.pci_read(port, width) {
            return value;
        }
        match self.whole_access(port, width) {
            Some(Device::Nothing) => {
                self.report(host, port, width, false);
                width.mask()
            }
            Some(_) => width.mask(),
            None => {
                let mut value = 0u32;
                for i in 0..width.bytes() {
                    let byte_port = port.wrapping_add(i as u16);
                    let byte = match self.read_byte(host, byte_port) {
                        Some(b) => b,
                        None => {
                            self.report(host, byte_port, Width::Byte, false);
                            0xFF
                        }
                    };
                    value |= u32::from(byte) << (8 * i);
                }
                value
            }
        }
    }

    /// An OUT of `width` at `port` with `value` (its low `width` bits).
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn write<H: IoHost>(&mut self, host: &mut H, port: u16, width: Width, value: u32) {
        if self.pci_write(port, width, value) {
            return;
        }
        match self.whole_access(port, width) {
            Some(Device::Nothing) => self.report(host, port, width, true),
            Some(_) => {}
            None => {
                for i in 0..width.bytes() {
                    let byte_port = port.wrapping_add(i as u16);
                    let byte = (value >> (8 * i)) as u8;
                    if !self.write_byte(host, byte_port, byte) {
                        self.report(host, byte_port, Width::Byte, true);
                    }
                }
            }
        }
    }

    /// PCI configuration mechanism #1 (PCI Local Bus spec 3.2.2.3.2): only a
    /// 32-bit access to 0xCF8 is the address register; 0xCFC-0xCFF are the
    /// selected dword's byte lanes. Other accesses fall through (all-ones).
    fn pci_read(&mut self, port: u16, width: Width) -> Option<u32> {
        match port {
            PCI_CONFIG_ADDRESS if width == Width::Dword => Some(self.pci_address),
            0xCFC..=0xCFF => {
                let lane = u32::from(port - 0xCFC);
                let dword = self.pci.config_read(self.pci_address);
                Some((dword >> (8 * lane)) & width.mask())
            }
            _ => None,
        }
    }

    fn pci_write(&mut self, port: u16, width: Width, value: u32) -> bool {
        match port {
            PCI_CONFIG_ADDRESS if width == Width::Dword => {
                self.pci_address = value;
                true
            }
            0xCFC..=0xCFF => {
                let lane = u32::from(port - 0xCFC);
                let lanes = ((1u32 << width.bytes()) - 1) << lane;
                self.pci
                    .config_write(self.pci_address, lanes & 0xF, value << (8 * lane));
                true
            }
            _ => false,
        }
    }

    /// Queues a byte of console input for COM1; false when its receiver has
    /// no room (keep the byte for later).
    pub fn push_console_input(&mut self, byte: u8) -> bool {
        let accepted = self.com1.push_input(byte);
        self.route_com1();
        accepted
    }

    /// How many bytes of console input COM1 takes now.
    pub fn console_input_space(&self) -> usize {
        self.com1.input_space()
    }

    /// The ROM's timer for IRQ0 fired (or it wants to catch up): raise
    /// IRQ0 on the PIC if OUT0 rose, and re-arm for the next edge.
    #[inline]
    pub fn poll_timer<H: IoHost>(&mut self, host: &mut H) {
        // Every change to channel 0 (a write to 0x40 or 0x43) is followed
        // by `service_timer`, which takes any edge it latched and records
        // the next one: with no next edge recorded, OUT0 will not rise as
        // programmed and nothing is latched, so there is nothing to look
        // at (the common case of a kernel on VMI alarms, which never
        // starts the PIT; the look costs 64-bit divisions).
        if self.irq0_deadline.is_none() {
            return;
        }
        self.poll_running_timer(host);
    }

    /// `poll_timer` with an edge recorded: the clock read and the look.
    /// Out of line, optimized for size: only a kernel on the PIT gets here.
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn poll_running_timer<H: IoHost>(&mut self, host: &mut H) {
        let now = host.now_ns();
        self.service_timer(host, now);
    }

    /// Whether `port` has been reported as unclaimed.
    pub fn was_reported(&self, port: u16) -> bool {
        let (word, bit) = bitmap_slot(port);
        self.reported.get(word).is_some_and(|w| w & bit != 0)
    }

    /// The device if every byte of the access goes to the same place that
    /// needs no byte splitting (nothing, or silent all-ones), else None.
    #[cfg_attr(feature = "image", optimize(size))]
    fn whole_access(&self, port: u16, width: Width) -> Option<Device> {
        let first = device_at(port);
        if !matches!(
            first,
            Device::Nothing | Device::PciConfig | Device::PostOrDelay
        ) {
            return None;
        }
        let same = (1..width.bytes()).all(|i| device_at(port.wrapping_add(i as u16)) == first);
        same.then_some(first)
    }

    /// One byte read; None when nothing decodes the port.
    fn read_byte<H: IoHost>(&mut self, host: &mut H, port: u16) -> Option<u8> {
        Some(match device_at(port) {
            Device::Com1 => {
                let value = self.com1.read((port - COM1_BASE) as u8);
                self.route_com1();
                value
            }
            Device::Pic => self.pic.read(port),
            Device::Pit => {
                let now = host.now_ns();
                self.pit.read(port, now)
            }
            Device::PortB => {
                let now = host.now_ns();
                self.pit.read_port_b(now)
            }
            Device::Rtc => {
                let now = host.wallclock_seconds();
                self.rtc.read(port, now)
            }
            Device::PostOrDelay | Device::PciConfig => 0xFF,
            Device::Nothing => return None,
        })
    }

    /// One byte written; false when nothing decodes the port.
    fn write_byte<H: IoHost>(&mut self, host: &mut H, port: u16, value: u8) -> bool {
        match device_at(port) {
            Device::Com1 => {
                self.com1.write((port - COM1_BASE) as u8, value, host);
                self.route_com1();
            }
            Device::Pic => self.pic.write(port, value),
            Device::Pit => {
                let now = host.now_ns();
                self.pit.write(port, value, now);
                self.service_timer(host, now);
            }
            Device::PortB => {
                let now = host.now_ns();
                self.pit.write_port_b(value, now);
            }
            Device::Rtc => self.rtc.write(port, value),
            Device::PostOrDelay | Device::PciConfig => {}
            Device::Nothing => return false,
        }
        true
    }

    /// COM1's interrupt output to IRQ4; a rise inside the last access is a
    /// new edge even when the line ends where it started.
    #[cfg_attr(feature = "image", optimize(size))]
    fn route_com1(&mut self) {
        if self.com1.take_irq_edge() {
            self.pic.set_irq(COM1_IRQ, false);
        }
        self.pic.set_irq(COM1_IRQ, self.com1.irq_level());
    }

    #[cfg_attr(feature = "image", optimize(size))]
    fn service_timer<H: IoHost>(&mut self, host: &mut H, now: u64) {
        if self.pit.take_irq0_edge(now) {
            self.pic.pulse_irq(PIT_IRQ);
        }
        let deadline = self.pit.next_irq0_edge(now);
        if deadline != self.irq0_deadline {
            self.irq0_deadline = deadline;
            host.set_irq0_deadline(deadline);
        }
    }

    fn report<H: IoHost>(&mut self, host: &mut H, port: u16, width: Width, write: bool) {
        let (word, bit) = bitmap_slot(port);
        if let Some(w) = self.reported.get_mut(word) {
            if *w & bit == 0 {
                *w |= bit;
                host.report_unclaimed(port, width, write);
            }
        }
    }
}

fn bitmap_slot(port: u16) -> (usize, u32) {
    (usize::from(port / 32), 1u32 << (port % 32))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::pic::{MASTER_CMD, MASTER_DATA, SLAVE_CMD, SLAVE_DATA};
    use crate::pit::{ns_at_tick, ticks_at, PIT_HZ};
    use crate::uart::{ier, mcr};

    /// A ROM stand-in: a console, a clock the test moves, a Xen timer.
    #[derive(Default)]
    struct Host {
        console: Vec<u8>,
        flushes: usize,
        now: u64,
        /// Nanoseconds each PIT/port B access takes (the clock moves).
        step: u64,
        deadlines: Vec<Option<u64>>,
        reports: Vec<(u16, Width, bool)>,
    }

    impl SerialSink for Host {
        fn put_byte(&mut self, byte: u8) {
            self.console.push(byte);
        }
        fn flush(&mut self) {
            self.flushes += 1;
        }
    }

    impl IoHost for Host {
        fn now_ns(&mut self) -> u64 {
            self.now += self.step;
            self.now
        }
        fn set_irq0_deadline(&mut self, deadline_ns: Option<u64>) {
            self.deadlines.push(deadline_ns);
        }
        fn report_unclaimed(&mut self, port: u16, width: Width, write: bool) {
            self.reports.push((port, width, write));
        }
        fn wallclock_seconds(&mut self) -> u64 {
            1_795_564_800
        }
    }

    fn outb(bus: &mut IsaBus, host: &mut Host, port: u16, value: u8) {
        bus.write(host, port, Width::Byte, u32::from(value));
    }

    fn inb(bus: &mut IsaBus, host: &mut Host, port: u16) -> u8 {
        bus.read(host, port, Width::Byte) as u8
    }

    fn linux_pic_init(bus: &mut IsaBus, host: &mut Host) {
        for (port, value) in [
            (MASTER_DATA, 0xFF),
            (SLAVE_DATA, 0xFF),
            (MASTER_CMD, 0x11),
            (MASTER_DATA, 0x30),
            (MASTER_DATA, 0x04),
            (MASTER_DATA, 0x01),
            (SLAVE_CMD, 0x11),
            (SLAVE_DATA, 0x38),
            (SLAVE_DATA, 0x02),
            (SLAVE_DATA, 0x01),
            (MASTER_DATA, 0xFB),
            (SLAVE_DATA, 0xFF),
        ] {
            outb(bus, host, port, value);
        }
    }

    #[test]
    fn device_map() {
        assert_eq!(device_at(0x3F8), Device::Com1);
        assert_eq!(device_at(0x3FF), Device::Com1);
        assert_eq!(device_at(0x3F7), Device::Nothing);
        assert_eq!(device_at(0x400), Device::Nothing);
        assert_eq!(device_at(0x2F8), Device::Nothing, "no COM2");
        assert_eq!(device_at(0x20), Device::Pic);
        assert_eq!(device_at(0xA1), Device::Pic);
        assert_eq!(device_at(0x22), Device::Nothing);
        assert_eq!(device_at(0x43), Device::Pit);
        assert_eq!(device_at(0x44), Device::Nothing);
        assert_eq!(device_at(0x61), Device::PortB);
        assert_eq!(device_at(0x80), Device::PostOrDelay);
        assert_eq!(device_at(0xED), Device::PostOrDelay);
        assert_eq!(device_at(0xCF8), Device::PciConfig);
        assert_eq!(device_at(0xCFF), Device::PciConfig);
        assert_eq!(device_at(0x60), Device::Nothing);
    }

    #[test]
    fn empty_bus_reads_all_ones_and_reports_once() {
        let mut bus = IsaBus::new();
        let mut host = Host::default();
        assert_eq!(bus.read(&mut host, 0x1234, Width::Dword), 0xFFFF_FFFF);
        assert_eq!(bus.read(&mut host, 0x1234, Width::Word), 0xFFFF);
        assert_eq!(bus.read(&mut host, 0x1234, Width::Byte), 0xFF);
        bus.write(&mut host, 0x1234, Width::Byte, 0);
        bus.write(&mut host, 0x64, Width::Byte, 0xFE);
        bus.write(&mut host, 0x64, Width::Byte, 0xFE);
        assert_eq!(inb(&mut bus, &mut host, 0x64), 0xFF);
        assert_eq!(
            host.reports,
            vec![(0x1234, Width::Dword, false), (0x64, Width::Byte, true)]
        );
        assert!(bus.was_reported(0x1234) && bus.was_reported(0x64));
        assert!(
            !bus.was_reported(0x1235),
            "a wide access reports its first port"
        );
        // Silent no-ops.
        outb(&mut bus, &mut host, 0x80, 0x42);
        outb(&mut bus, &mut host, 0xED, 0);
        assert_eq!(inb(&mut bus, &mut host, 0x80), 0xFF);
        assert_eq!(host.reports.len(), 2);
        bus.reset();
        assert!(!bus.was_reported(0x1234));
    }

    /// Linux's PCI probing: the type 1 check writes CONFIG_ADDRESS and reads
    /// it back as a dword (byte accesses are not the address register),
    /// then finds the host bridge at 00:00.0 and nothing else.
    #[test]
    fn pci_config_has_one_host_bridge() {
        let mut bus = IsaBus::new();
        let mut host = Host::default();
        outb(&mut bus, &mut host, 0xCFB, 0x01);
        assert_eq!(bus.read(&mut host, PCI_CONFIG_ADDRESS, Width::Dword), 0);
        bus.write(&mut host, PCI_CONFIG_ADDRESS, Width::Dword, 0x8000_0000);
        assert_eq!(
            bus.read(&mut host, PCI_CONFIG_ADDRESS, Width::Dword),
            0x8000_0000
        );
        assert_eq!(
            bus.read(&mut host, PCI_CONFIG_DATA, Width::Dword),
            0x1237_8086
        );
        assert_eq!(
            bus.read(&mut host, PCI_CONFIG_DATA + 2, Width::Word),
            0x1237
        );
        assert_eq!(bus.read(&mut host, PCI_CONFIG_DATA + 1, Width::Byte), 0x80);
        bus.write(&mut host, PCI_CONFIG_ADDRESS, Width::Dword, 0x8000_0800);
        assert_eq!(
            bus.read(&mut host, PCI_CONFIG_DATA, Width::Dword),
            0xFFFF_FFFF
        );
        assert!(host.reports.is_empty(), "PCI ports are never reported");
    }

    #[test]
    fn wide_accesses_split_into_bytes() {
        let mut bus = IsaBus::new();
        let mut host = Host::default();
        // outw 0x3F8, 0x0241: THR <- 'A', IER <- 0x02.
        bus.write(&mut host, 0x3F8, Width::Word, 0x0241);
        assert_eq!(host.console, b"A");
        assert_eq!(inb(&mut bus, &mut host, 0x3F9), ier::THRE);
        // inw 0x3FE: MSR then SCR.
        outb(&mut bus, &mut host, 0x3FF, 0x5A);
        assert_eq!(bus.read(&mut host, 0x3FE, Width::Word), 0x5AB0);
        // inw 0x3FF: SCR and port 0x400 (nothing, reported as a byte).
        assert_eq!(bus.read(&mut host, 0x3FF, Width::Word), 0xFF5A);
        assert_eq!(host.reports, vec![(0x400, Width::Byte, false)]);
        // outl 0x3F8 with DLAB: DLL, DLM, FCR, LCR in one go.
        outb(&mut bus, &mut host, 0x3FB, 0x83);
        bus.write(&mut host, 0x3F8, Width::Dword, 0x0301_0003);
        assert_eq!(bus.com1.divisor(), 3);
        assert!(bus.com1.fifo_enabled());
        assert_eq!(inb(&mut bus, &mut host, 0x3FB), 0x03);
        assert_eq!(host.console, b"A", "DLL writes are not data");
        // A dword at 0xFFFE wraps around to ports 0 and 1.
        assert_eq!(bus.read(&mut host, 0xFFFE, Width::Dword), 0xFFFF_FFFF);
    }

    /// A serial console driver using THRE interrupts through the PIC.
    #[test]
    fn com1_interrupts_reach_the_pic() {
        let mut bus = IsaBus::new();
        let mut host = Host::default();
        linux_pic_init(&mut bus, &mut host);
        outb(&mut bus, &mut host, MASTER_DATA, 0xEB); // unmask IRQ4
        outb(&mut bus, &mut host, 0x3FC, mcr::OUT2 | mcr::DTR | mcr::RTS);
        assert!(!bus.pic.int_output());
        outb(&mut bus, &mut host, 0x3F9, ier::THRE);
        assert!(bus.pic.int_output());
        assert_eq!(bus.pic.acknowledge(), 0x34);
        // The handler: IIR says THRE, it sends "ok\n", acks the PIC.
        assert_eq!(inb(&mut bus, &mut host, 0x3FA) & 0x0F, 0x02);
        for b in b"ok\n" {
            outb(&mut bus, &mut host, 0x3F8, *b);
        }
        outb(&mut bus, &mut host, MASTER_CMD, 0x64);
        assert_eq!(host.console, b"ok\n");
        assert_eq!(host.flushes, 1);
        // THR emptied again after the last byte: another interrupt.
        assert!(bus.pic.int_output());
        assert_eq!(bus.pic.acknowledge(), 0x34);
        // A handler that writes THR without reading IIR: the line drops
        // and rises within the OUT, which the edge-triggered PIC must see.
        outb(&mut bus, &mut host, 0x3F8, b'z');
        outb(&mut bus, &mut host, MASTER_CMD, 0x64);
        assert!(bus.pic.int_output());
        assert_eq!(bus.pic.acknowledge(), 0x34);
        assert_eq!(host.console, b"ok\nz");
        outb(&mut bus, &mut host, 0x3F9, 0);
        outb(&mut bus, &mut host, MASTER_CMD, 0x64);
        assert!(!bus.pic.int_output());
        // Console input with receive interrupts.
        outb(&mut bus, &mut host, 0x3F9, ier::RDA);
        assert!(bus.push_console_input(b'x'));
        assert!(!bus.push_console_input(b'y'), "16450 mode holds one byte");
        assert!(bus.pic.int_output());
        assert_eq!(bus.pic.acknowledge(), 0x34);
        assert_eq!(inb(&mut bus, &mut host, 0x3F8), b'x');
        outb(&mut bus, &mut host, MASTER_CMD, 0x64);
        assert!(!bus.pic.int_output());
        assert_eq!(bus.console_input_space(), 1);
    }

    /// Linux's periodic tick: the PIT programmed through the bus arms the
    /// ROM's timer; when it fires, IRQ0 reaches the CPU.
    #[test]
    fn pit_ticks_reach_the_pic() {
        let mut bus = IsaBus::new();
        let mut host = Host {
            now: 2 * 1_000_000_000,
            ..Host::default()
        };
        linux_pic_init(&mut bus, &mut host);
        let latch = (PIT_HZ / 100) as u16;
        outb(&mut bus, &mut host, 0x43, 0x34);
        outb(&mut bus, &mut host, 0x40, latch as u8);
        assert_eq!(host.deadlines, vec![], "half a count changes nothing");
        outb(&mut bus, &mut host, 0x40, (latch >> 8) as u8);
        let anchor = ticks_at(host.now) + 1;
        let first = ns_at_tick(anchor + u64::from(latch));
        assert_eq!(host.deadlines, vec![Some(first)]);
        outb(&mut bus, &mut host, MASTER_DATA, 0xFA);
        // Too early: nothing.
        host.now = first - 1;
        bus.poll_timer(&mut host);
        assert!(!bus.pic.int_output());
        host.now = first;
        bus.poll_timer(&mut host);
        assert!(bus.pic.int_output());
        assert_eq!(bus.pic.acknowledge(), 0x30);
        outb(&mut bus, &mut host, MASTER_CMD, 0x60);
        let second = ns_at_tick(anchor + 2 * u64::from(latch));
        assert_eq!(host.deadlines, vec![Some(first), Some(second)]);
        host.now = second + 5;
        bus.poll_timer(&mut host);
        assert_eq!(bus.pic.acknowledge(), 0x30);
        // Stopping the timer (control word, no count) cancels the deadline.
        outb(&mut bus, &mut host, 0x43, 0x30);
        assert_eq!(host.deadlines.last(), Some(&None));
    }

    /// pit_calibrate_tsc through the bus, with time moving 1 us per
    /// trapped access.
    #[test]
    fn linux_pit_calibration_through_the_bus() {
        let mut bus = IsaBus::new();
        let mut host = Host {
            now: 1_000_000_000,
            step: 1_000,
            ..Host::default()
        };
        let latch = (PIT_HZ / 20) as u16;
        let b = inb(&mut bus, &mut host, 0x61);
        outb(&mut bus, &mut host, 0x61, (b & !0x02) | 0x01);
        outb(&mut bus, &mut host, 0x43, 0xB0);
        outb(&mut bus, &mut host, 0x42, latch as u8);
        outb(&mut bus, &mut host, 0x42, (latch >> 8) as u8);
        let start = host.now;
        let mut loops = 0;
        while inb(&mut bus, &mut host, 0x61) & 0x20 == 0 {
            loops += 1;
            assert!(loops < 100_000);
        }
        let elapsed = host.now - start;
        assert!((49_999_000..50_002_000).contains(&elapsed), "{elapsed}");
        assert!(host.deadlines.is_empty(), "channel 2 never arms IRQ0");
        assert!(host.reports.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random accesses anywhere: no panic, unclaimed reads all-ones,
        /// each port reported at most once and only if nothing decodes it.
        #[test]
        fn random_accesses(accesses in proptest::collection::vec((
            prop_oneof![any::<u16>(), 0x3F6u16..0x402, 0x1Eu16..0x23, 0x3Fu16..0x45,
                        0x60u16..0x62, 0x9Eu16..0xA3, 0xCF6u16..0xD01, Just(0xFFFEu16)],
            prop_oneof![Just(Width::Byte), Just(Width::Word), Just(Width::Dword)],
            any::<u32>(), any::<bool>()), 0..200)) {
            let mut bus = IsaBus::new();
            let mut host = Host { step: 700, ..Host::default() };
            for (port, width, value, write) in accesses {
                if write {
                    bus.write(&mut host, port, width, value);
                } else {
                    let v = bus.read(&mut host, port, width);
                    prop_assert_eq!(v & !width.mask(), 0);
                    let bytes = (0..width.bytes()).map(|i| device_at(port.wrapping_add(i as u16)));
                    if bytes.clone().all(|d| matches!(d, Device::Nothing)) {
                        prop_assert_eq!(v, width.mask());
                    }
                }
            }
            let mut seen = std::collections::HashSet::new();
            for (port, _, _) in &host.reports {
                prop_assert!(seen.insert(*port), "port {:#x} reported twice", port);
                prop_assert_eq!(device_at(*port), Device::Nothing);
                prop_assert!(bus.was_reported(*port));
            }
            // The UART only ever sent what was written to THR: nothing
            // here checks contents, but the deadline list must be
            // consistent: each entry differs from the previous.
            for pair in host.deadlines.windows(2) {
                prop_assert_ne!(pair[0], pair[1]);
            }
        }
    }
}
