//! Port I/O: the VMI port calls (INB..OUTSL, numbers from VMware's call
//! list; Linux never used them) checked against the native instructions on
//! the same device registers, IODelay, and the 16550 UART.
//!
//! Devices: the UART's scratch register (byte), PCI configuration
//! mechanism #1 (dword address latch 0xCF8, data 0xCFC) for word and dword
//! accesses; host bridge 00:00.0's cache line size register is writable.

use native_rom::hw::pci::config_address;
use native_rom::hw::port::{in16, in32, in8, out32, out8};

use super::{ensure, ensure_eq, ensure_same, pass, Outcome};
use crate::console::{
    COM1, LSR_DATA_READY, LSR_THR_EMPTY, MCR_LOOPBACK, MCR_NORMAL, UART_DATA, UART_LSR, UART_MCR,
    UART_SCR,
};
use crate::pv;
use vmi_abi::VmiCall;

const SCRATCH: u16 = COM1 + UART_SCR;
const PCI_ADDRESS: u16 = 0xCF8;
const PCI_DATA: u16 = 0xCFC;
/// 00:00.0 register 0x0C: cache line size (byte 0), latency timer (byte 1).
const HOST_BRIDGE_REG_0C: u32 = config_address(0, 0, 0, 0x0C);

fn via(calls: &[VmiCall]) -> &'static str {
    if calls
        .iter()
        .all(|c| pv::relocation(*c).relocation_type() == Ok(vmi_abi::VmiRelocationType::CallRel))
    {
        "VMI port calls"
    } else {
        "native instructions"
    }
}

pub fn port_calls_byte() -> Outcome {
    // SAFETY: the UART scratch register holds no state anyone else uses
    // (so do the accesses below).
    let saved = unsafe { in8(SCRATCH) };
    pv::port_out(1, SCRATCH, 0x5A);
    // SAFETY: as above.
    let native_read = unsafe { in8(SCRATCH) };
    // SAFETY: as above.
    unsafe { out8(SCRATCH, 0xA5) };
    let call_read = pv::port_in(1, SCRATCH);
    // SAFETY: as above.
    unsafe { out8(SCRATCH, saved) };
    ensure_eq!(
        native_read,
        0x5Au8,
        "scratch register read natively after OUTB"
    );
    ensure_eq!(
        call_read,
        0xA5u32,
        "INB of the scratch register written natively"
    );
    pass!(
        "OUTB/INB on the UART scratch register agree with IN/OUT ({})",
        via(&[VmiCall::Inb, VmiCall::Outb])
    )
}

pub fn port_calls_word_dword() -> Outcome {
    // SAFETY: PCI configuration reads of the host bridge, and (below) a
    // write of its cache line size that is restored.
    unsafe { out32(PCI_ADDRESS, config_address(0, 0, 0, 0)) };
    // SAFETY: as above.
    let ids = unsafe { in32(PCI_DATA) };
    pv::port_out(4, PCI_ADDRESS, config_address(0, 0, 0, 0));
    let latch = pv::port_in(4, PCI_ADDRESS);
    let dword = pv::port_in(4, PCI_DATA);
    let low = pv::port_in(2, PCI_DATA);
    let high = pv::port_in(2, PCI_DATA + 2);
    // OUTW of the cache line size register (byte 0 of register 0x0C).
    // SAFETY: as above.
    let saved = unsafe {
        out32(PCI_ADDRESS, HOST_BRIDGE_REG_0C);
        in16(PCI_DATA)
    };
    pv::port_out(4, PCI_ADDRESS, HOST_BRIDGE_REG_0C);
    pv::port_out(2, PCI_DATA, u32::from(saved & 0xFF00) | 0x10);
    // SAFETY: as above.
    let written = unsafe {
        out32(PCI_ADDRESS, HOST_BRIDGE_REG_0C);
        let w = in16(PCI_DATA);
        native_rom::hw::port::out16(PCI_DATA, saved);
        w
    };
    ensure!(
        ids != 0xFFFF_FFFF && ids != 0,
        "no host bridge at 00:00.0 ({ids:#x})"
    );
    ensure_eq!(
        latch,
        config_address(0, 0, 0, 0),
        "INL of the address latch after OUTL"
    );
    ensure_eq!(dword, ids, "INL of 00:00.0 register 0");
    ensure_eq!(low, ids & 0xFFFF, "INW of the vendor id");
    ensure_eq!(high, ids >> 16, "INW of the device id");
    ensure_eq!(written & 0xFF, 0x10u16, "cache line size after OUTW");
    pass!(
        "OUTL/INL/INW/OUTW on PCI configuration space agree with IN/OUT ({}), host bridge {ids:#010x}",
        via(&[VmiCall::Inl, VmiCall::Outl, VmiCall::Inw, VmiCall::Outw])
    )
}

pub fn port_calls_string() -> Outcome {
    // Bytes: OUTSB leaves the last byte in the scratch register; INSB reads
    // it back each time.
    pv::port_out_string(1, SCRATCH, &[0x11, 0x22, 0x33]);
    // SAFETY: the UART scratch register (see port_calls_byte).
    let last = unsafe { in8(SCRATCH) };
    let mut bytes = [0u8; 3];
    pv::port_in_string(1, SCRATCH, &mut bytes);
    // Dwords and words: the PCI address latch and the host bridge ids.
    let address = config_address(0, 0, 0, 0).to_le_bytes();
    pv::port_out_string(4, PCI_ADDRESS, &address);
    // SAFETY: PCI configuration reads.
    let (latch, ids) = unsafe { (in32(PCI_ADDRESS), in32(PCI_DATA)) };
    let mut dwords = [0u8; 8];
    pv::port_in_string(4, PCI_DATA, &mut dwords);
    let mut words = [0u8; 4];
    pv::port_in_string(2, PCI_DATA, &mut words);
    let cache_line = [0x10u8, 0x00];
    // SAFETY: PCI configuration access to the host bridge's register 0x0C.
    let saved = unsafe {
        out32(PCI_ADDRESS, HOST_BRIDGE_REG_0C);
        in16(PCI_DATA)
    };
    pv::port_out_string(2, PCI_DATA, &cache_line);
    // SAFETY: as above; the register is restored.
    let written = unsafe {
        let w = in16(PCI_DATA);
        native_rom::hw::port::out16(PCI_DATA, saved);
        w
    };
    ensure_eq!(last, 0x33u8, "scratch register after OUTSB");
    ensure_same!(bytes, [0x33u8; 3], "INSB of the scratch register");
    ensure_eq!(
        latch,
        config_address(0, 0, 0, 0),
        "address latch after OUTSL"
    );
    ensure_eq!(
        u32::from_le_bytes([dwords[0], dwords[1], dwords[2], dwords[3]]),
        ids,
        "INSL item 0"
    );
    ensure_eq!(
        u32::from_le_bytes([dwords[4], dwords[5], dwords[6], dwords[7]]),
        ids,
        "INSL item 1"
    );
    ensure_eq!(
        u16::from_le_bytes([words[0], words[1]]),
        ids as u16,
        "INSW item 0"
    );
    ensure_eq!(
        u16::from_le_bytes([words[2], words[3]]),
        ids as u16,
        "INSW item 1"
    );
    ensure_eq!(written & 0xFF, 0x10u16, "cache line size after OUTSW");
    pass!(
        "OUTSB/INSB, OUTSL/INSL, OUTSW/INSW agree with IN/OUT ({})",
        via(&[
            VmiCall::Insb,
            VmiCall::Outsb,
            VmiCall::Insl,
            VmiCall::Outsl,
            VmiCall::Insw,
            VmiCall::Outsw
        ])
    )
}

pub fn io_delay() -> Outcome {
    let start = pv::cycles_now();
    for _ in 0..1000 {
        pv::io_delay();
    }
    let cycles = pv::cycles_now() - start;
    let how = match pv::relocation(VmiCall::IoDelay).relocation_type() {
        Ok(vmi_abi::VmiRelocationType::Nop) => "NOP relocation: no code",
        Ok(vmi_abi::VmiRelocationType::CallRel) => "ROM call",
        _ => "native OUT 0x80",
    };
    pass!("1000 IODelay in {cycles} cycles ({how})")
}

pub fn uart_scratch_and_status() -> Outcome {
    // SAFETY: the scratch register is free; LSR reads only clear error bits.
    let (values, lsr) = unsafe {
        let saved = in8(SCRATCH);
        let mut values = [0u8; 3];
        for (i, v) in [0x00u8, 0xFF, 0x5A].into_iter().enumerate() {
            out8(SCRATCH, v);
            values[i] = in8(SCRATCH);
        }
        out8(SCRATCH, saved);
        let mut lsr = in8(COM1 + UART_LSR);
        let mut spins = 0;
        while lsr & 0x60 != 0x60 && spins < 1_000_000 {
            lsr = in8(COM1 + UART_LSR);
            spins += 1;
        }
        (values, lsr)
    };
    ensure_same!(values, [0x00u8, 0xFF, 0x5A], "scratch register read back");
    ensure!(
        lsr & LSR_THR_EMPTY != 0 && lsr & 0x40 != 0,
        "transmitter never idle (LSR {lsr:#x})"
    );
    pass!("scratch register holds values; LSR {lsr:#x} (THR empty, transmitter idle)")
}

pub fn uart_loopback() -> Outcome {
    // SAFETY: loopback mode keeps the byte inside the UART; the normal
    // modem control value is restored before anything else is printed.
    let (ready, byte) = unsafe {
        while in8(COM1 + UART_LSR) & LSR_DATA_READY != 0 {
            let _ = in8(COM1 + UART_DATA);
        }
        out8(COM1 + UART_MCR, MCR_NORMAL | MCR_LOOPBACK);
        out8(COM1 + UART_DATA, b'V');
        let mut spins = 0;
        while in8(COM1 + UART_LSR) & LSR_DATA_READY == 0 && spins < 1_000_000 {
            spins += 1;
        }
        let ready = in8(COM1 + UART_LSR) & LSR_DATA_READY != 0;
        let byte = in8(COM1 + UART_DATA);
        out8(COM1 + UART_MCR, MCR_NORMAL);
        (ready, byte)
    };
    ensure!(ready, "no byte received in loopback mode");
    ensure_eq!(byte, b'V', "byte received in loopback mode");
    pass!("byte sent in loopback mode came back")
}
