//! The PCI bus a VMI kernel finds: one host bridge at 00:00.0 (an i440FX,
//! 8086:1237, as QEMU's pc machine has), so a kernel probing configuration
//! mechanism #1 sees a working bus with nothing else on it. A PV domain has
//! no PCI devices of its own; passthrough is out of scope.

/// Enable bit of the configuration address (bit 31).
const ENABLE: u32 = 1 << 31;

/// Bits a kernel may change, per header dword: the command register's
/// enables (0x04) and the cache line size and latency timer (0x0C).
const WRITABLE: [u32; 16] = {
    let mut w = [0u32; 16];
    w[1] = 0x0000_0147;
    w[3] = 0x0000_FFFF;
    w
};

/// The host bridge's configuration header (the first 64 bytes; the rest
/// of its 256 read as zero).
#[derive(Debug, Clone)]
pub struct HostBridge {
    header: [u32; 16],
}

impl Default for HostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl HostBridge {
    pub const fn new() -> Self {
        let mut header = [0u32; 16];
        // Device 1237, vendor 8086.
        header[0] = 0x1237_8086;
        // Memory and bus-master decoding enabled.
        header[1] = 0x0000_0006;
        // Class 06 (bridge), subclass 00 (host), revision 02.
        header[2] = 0x0600_0002;
        Self { header }
    }

    /// The dword at configuration address `address` (as written to 0xCF8);
    /// all-ones where no device answers, as on a real bus.
    pub fn config_read(&self, address: u32) -> u32 {
        match Self::register(address) {
            Some(r) if r < 16 => self.header[r],
            Some(_) => 0,
            None => u32::MAX,
        }
    }

    /// A write of `value` to the bytes `lanes` (bit i = byte i) of the
    /// dword at `address`; only writable bits change.
    pub fn config_write(&mut self, address: u32, lanes: u32, value: u32) {
        if let Some(r) = Self::register(address).filter(|&r| r < 16) {
            let mut mask = 0u32;
            for i in 0..4 {
                if lanes & (1 << i) != 0 {
                    mask |= 0xFF << (8 * i);
                }
            }
            let mask = mask & WRITABLE[r];
            self.header[r] = (self.header[r] & !mask) | (value & mask);
        }
    }

    /// The header dword index for 00:00.0, None for any other function.
    fn register(address: u32) -> Option<usize> {
        let enabled = address & ENABLE != 0;
        let bus_device_fn = (address >> 8) & 0xFFFF;
        (enabled && bus_device_fn == 0).then_some(((address & 0xFC) >> 2) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_bridge_answers() {
        let b = HostBridge::new();
        assert_eq!(b.config_read(0x8000_0000), 0x1237_8086);
        assert_eq!(b.config_read(0x8000_0008) >> 16, 0x0600);
        assert_eq!(b.config_read(0x0000_0000), u32::MAX, "enable bit clear");
        assert_eq!(b.config_read(0x8000_0800), u32::MAX, "device 1");
        assert_eq!(b.config_read(0x8001_0000), u32::MAX, "bus 1");
        assert_eq!(b.config_read(0x8000_0001), 0x1237_8086, "low bits ignored");
        assert_eq!(b.config_read(0x8000_00FC), 0, "past the header");
    }

    #[test]
    fn only_writable_bits_change() {
        let mut b = HostBridge::new();
        b.config_write(0x8000_000C, 0b0001, 0xFFFF_FF10);
        assert_eq!(b.config_read(0x8000_000C), 0x10, "cache line size only");
        b.config_write(0x8000_0000, 0b1111, 0);
        assert_eq!(b.config_read(0x8000_0000), 0x1237_8086, "ids are read-only");
        b.config_write(0x8000_0804, 0b1111, 0x7);
        assert_eq!(
            b.config_read(0x8000_0004),
            0x6,
            "another device's write is lost"
        );
    }
}
