//! The two 8259A interrupt controllers, remapped to vectors 0x20-0x2F and
//! driven with plain port I/O (as a Linux VMI kernel does).

use core::sync::atomic::{AtomicU16, Ordering};

use native_rom::hw::port::{in8, out8};

use crate::trap::IRQ_BASE;

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xA0;
const SLAVE_DATA: u16 = 0xA1;
/// OCW2: non-specific end of interrupt.
const EOI: u8 = 0x20;
/// OCW2: specific end of interrupt (the level in bits 0-2).
const SPECIFIC_EOI: u8 = 0x60;
/// OCW3: read the in-service register on the next command-port read.
const READ_ISR: u8 = 0x0B;
/// OCW3: read the interrupt request register on the next command-port read.
const READ_IRR: u8 = 0x0A;

static MASK: AtomicU16 = AtomicU16::new(0xFFFF);

/// Initializes both controllers (ICW1-4: edge triggered, cascade on IRQ 2,
/// 8086 mode), vectors 0x20-0x27 and 0x28-0x2F, every IRQ masked except the
/// cascade.
pub fn init() {
    // SAFETY: the 8259s are the kernel's; every IRQ ends up masked.
    unsafe {
        out8(MASTER_COMMAND, 0x11);
        out8(SLAVE_COMMAND, 0x11);
        out8(MASTER_DATA, IRQ_BASE as u8);
        out8(SLAVE_DATA, IRQ_BASE as u8 + 8);
        out8(MASTER_DATA, 0x04);
        out8(SLAVE_DATA, 0x02);
        out8(MASTER_DATA, 0x01);
        out8(SLAVE_DATA, 0x01);
    }
    MASK.store(0xFFFB, Ordering::SeqCst);
    write_mask();
}

fn write_mask() {
    let mask = MASK.load(Ordering::SeqCst);
    // SAFETY: writing the interrupt mask registers only (un)masks IRQs.
    unsafe {
        out8(MASTER_DATA, mask as u8);
        out8(SLAVE_DATA, (mask >> 8) as u8);
    }
}

/// Unmasks `irq` (0-15).
pub fn unmask(irq: u32) {
    MASK.fetch_and(!(1 << (irq & 15)), Ordering::SeqCst);
    write_mask();
}

/// Masks `irq` (0-15).
pub fn mask(irq: u32) {
    MASK.fetch_or(1 << (irq & 15), Ordering::SeqCst);
    write_mask();
}

/// Acknowledges `irq`.
pub fn eoi(irq: u32) {
    // SAFETY: a non-specific EOI ends the highest-priority IRQ in service,
    // which is the one being handled.
    unsafe {
        if irq >= 8 {
            out8(SLAVE_COMMAND, EOI);
        }
        out8(MASTER_COMMAND, EOI);
    }
}

/// A specific EOI for master `irq` (OCW2 with SL: 0x60 | level), as
/// Linux's i8259 code sends; with that level not in service it does
/// nothing.
pub fn specific_eoi(irq: u32) {
    // SAFETY: an EOI only ends an in-service level.
    unsafe { out8(MASTER_COMMAND, SPECIFIC_EOI | (irq & 7) as u8) };
}

/// The interrupt request register of both controllers (bit n = IRQ n
/// requested and not yet acknowledged).
pub fn irr() -> u16 {
    // SAFETY: OCW3 selects the IRR for the next read of each command port;
    // reading it changes nothing.
    unsafe {
        out8(MASTER_COMMAND, READ_IRR);
        out8(SLAVE_COMMAND, READ_IRR);
        u16::from(in8(MASTER_COMMAND)) | (u16::from(in8(SLAVE_COMMAND)) << 8)
    }
}

/// Whether an IRQ 7 or 15 is spurious (not in service): the 8259 signals
/// those when a request goes away before it is acknowledged; they get no
/// EOI (or only the master's, for 15).
pub fn is_spurious(irq: u32) -> bool {
    if irq != 7 && irq != 15 {
        return false;
    }
    let (command, bit) = if irq == 7 {
        (MASTER_COMMAND, 0x80)
    } else {
        (SLAVE_COMMAND, 0x80)
    };
    // SAFETY: OCW3 selects the ISR for the next read of the command port.
    let isr = unsafe {
        out8(command, READ_ISR);
        in8(command)
    };
    if isr & bit != 0 {
        return false;
    }
    if irq == 15 {
        // SAFETY: the master did raise its cascade line; acknowledge it.
        unsafe { out8(MASTER_COMMAND, EOI) };
    }
    true
}
