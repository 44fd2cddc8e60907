//! Checked port and vector numbers, a fixed set of ports, and the crate's error type.
//!
//! A 2-level event channel port (`evtchn_port_t` in `xen/include/public/event_channel.h`) is
//! valid below `EVTCHN_2L_NR_CHANNELS` (1024 on x86_32); its pending and mask bits are bit
//! `port % 32` of word `port / 32`, and its selector bit is `port / 32`.

use core::fmt;

use crate::abi::{BITS_PER_WORD, EVTCHN_2L_NR_CHANNELS, EVTCHN_WORDS, FIRST_EXTERNAL_VECTOR};

/// An event channel port below 1024, the 2-level limit on x86_32.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Port(u16);

impl Port {
    /// Checks that `raw` is a 2-level port.
    #[inline]
    pub const fn new(raw: u32) -> Result<Port, Error> {
        if raw < EVTCHN_2L_NR_CHANNELS as u32 {
            Ok(Port(raw as u16))
        } else {
            Err(Error::PortOutOfRange(raw))
        }
    }

    /// The port at `bit` of pending/mask word `word`.
    ///
    /// Panics if `word >= 32` or `bit >= 32`.
    #[inline]
    pub const fn from_word_bit(word: usize, bit: u32) -> Port {
        assert!(word < EVTCHN_WORDS && bit < BITS_PER_WORD as u32);
        Port((word * BITS_PER_WORD) as u16 + bit as u16)
    }

    /// The port number.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// Index into the table of all ports (`0..1024`).
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Which `evtchn_pending` / `evtchn_mask` word holds this port, which is also its
    /// selector bit in `evtchn_pending_sel`.
    #[inline]
    pub const fn word(self) -> usize {
        self.0 as usize / BITS_PER_WORD
    }

    /// The port's bit number inside its word.
    #[inline]
    pub const fn bit(self) -> u32 {
        self.0 as u32 % BITS_PER_WORD as u32
    }

    /// The port's bit inside its word, as a mask.
    #[inline]
    pub const fn word_mask(self) -> u32 {
        1 << self.bit()
    }

    /// The next port in scan order, wrapping from 1023 to 0.
    #[inline]
    pub const fn next(self) -> Port {
        Port(((self.0 as usize + 1) % EVTCHN_2L_NR_CHANNELS) as u16)
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// An IDT vector an external interrupt may use: 32..=255.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Vector(u8);

impl Vector {
    /// Checks that `raw` is an external-interrupt vector (32..=255); 0..=31 are exceptions.
    #[inline]
    pub const fn new(raw: u32) -> Result<Vector, Error> {
        if raw >= FIRST_EXTERNAL_VECTOR && raw <= u8::MAX as u32 {
            Ok(Vector(raw as u8))
        } else {
            Err(Error::VectorOutOfRange(raw))
        }
    }

    /// The vector number.
    #[inline]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The local-APIC priority class, vector bits 7:4 (Intel SDM vol. 3, "Interrupt, Task,
    /// and Processor Priority").
    #[inline]
    pub const fn priority_class(self) -> u8 {
        self.0 >> 4
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vector {:#04X}", self.0)
    }
}

/// A set of ports: one bit per port, laid out like `evtchn_pending`, with a summary word
/// (bit `w` set iff word `w` has a port, as Xen's selector summarises `evtchn_pending`), so
/// emptiness and the lowest port cost one word's look, not 32.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PortSet {
    words: [u32; EVTCHN_WORDS],
    nonempty_words: u32,
}

const _: () = assert!(EVTCHN_WORDS == 32, "the summary is one bit per word");

impl PortSet {
    /// The empty set.
    pub const EMPTY: PortSet = PortSet {
        words: [0; EVTCHN_WORDS],
        nonempty_words: 0,
    };

    /// Adds `port`; returns whether it was absent.
    #[inline]
    pub fn insert(&mut self, port: Port) -> bool {
        let word = &mut self.words[port.word()];
        let was_absent = *word & port.word_mask() == 0;
        *word |= port.word_mask();
        self.nonempty_words |= 1 << port.word();
        was_absent
    }

    /// Removes `port`; returns whether it was present.
    #[inline]
    pub fn remove(&mut self, port: Port) -> bool {
        let word = &mut self.words[port.word()];
        let was_present = *word & port.word_mask() != 0;
        *word &= !port.word_mask();
        if *word == 0 {
            self.nonempty_words &= !(1 << port.word());
        }
        was_present
    }

    /// Whether `port` is in the set.
    #[inline]
    pub fn contains(&self, port: Port) -> bool {
        self.words[port.word()] & port.word_mask() != 0
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.nonempty_words == 0
    }

    /// The lowest port in the set.
    pub fn first(&self) -> Option<Port> {
        if self.nonempty_words == 0 {
            return None;
        }
        let word = self.nonempty_words.trailing_zeros() as usize;
        Some(Port::from_word_bit(word, self.words[word].trailing_zeros()))
    }

    /// Removes and returns the lowest port in the set.
    pub fn pop_first(&mut self) -> Option<Port> {
        let port = self.first()?;
        self.remove(port);
        Some(port)
    }

    /// The number of ports in the set.
    pub fn len(&self) -> usize {
        self.words
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    /// The ports in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = Port> + '_ {
        (0..EVTCHN_2L_NR_CHANNELS as u32)
            .filter_map(|raw| Port::new(raw).ok())
            .filter(|&port| self.contains(port))
    }
}

/// Why a port, vector or binding request was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// The port is not below `EVTCHN_2L_NR_CHANNELS` (1024).
    PortOutOfRange(u32),
    /// The vector is not an external-interrupt vector (32..=255).
    VectorOutOfRange(u32),
    /// The vCPU is not below `XEN_LEGACY_MAX_VCPUS` (32).
    VcpuOutOfRange(u32),
    /// The VIRQ is not below `NR_VIRQS` (24).
    VirqOutOfRange(u32),
    /// A global VIRQ must be bound on vCPU 0 (Xen's `evtchn_bind_virq` returns -EINVAL).
    GlobalVirqOffVcpu0 {
        /// The VIRQ.
        virq: u32,
        /// The vCPU that was asked for.
        vcpu: u32,
    },
    /// The port already has a binding.
    PortInUse(Port),
    /// The table has no room for another port (it holds a fixed number of them).
    TableFull(Port),
    /// This VIRQ is already bound for that vCPU (Xen's `evtchn_bind_virq` returns -EEXIST).
    VirqInUse {
        /// The VIRQ.
        virq: u32,
        /// The vCPU.
        vcpu: u32,
        /// The port it is bound to.
        port: Port,
    },
    /// The port has no binding.
    NotBound(Port),
    /// Per-vCPU VIRQs and IPIs cannot move to another vCPU (Xen's `evtchn_bind_vcpu`
    /// returns -EINVAL for them).
    NotMovable(Port),
    /// A scan budget must be 1..=1024 ports.
    BudgetOutOfRange(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::PortOutOfRange(port) => {
                write!(
                    f,
                    "event channel port {port} is not below {EVTCHN_2L_NR_CHANNELS}"
                )
            }
            Error::VectorOutOfRange(vector) => {
                write!(
                    f,
                    "vector {vector} is not an external interrupt vector (32..=255)"
                )
            }
            Error::VcpuOutOfRange(vcpu) => write!(f, "vcpu {vcpu} is out of range"),
            Error::VirqOutOfRange(virq) => write!(f, "VIRQ {virq} is out of range"),
            Error::GlobalVirqOffVcpu0 { virq, vcpu } => {
                write!(f, "global VIRQ {virq} must be bound on vcpu 0, not {vcpu}")
            }
            Error::PortInUse(port) => write!(f, "{port} is already bound"),
            Error::TableFull(port) => write!(f, "no room left in the port table for {port}"),
            Error::VirqInUse { virq, vcpu, port } => {
                write!(f, "VIRQ {virq} of vcpu {vcpu} is already bound to {port}")
            }
            Error::NotBound(port) => write!(f, "{port} is not bound"),
            Error::NotMovable(port) => write!(f, "{port} cannot move to another vcpu"),
            Error::BudgetOutOfRange(budget) => write!(f, "scan budget {budget} is not 1..=1024"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_set_summary_follows_its_words() {
        let p = |raw| Port::new(raw).unwrap();
        let mut set = PortSet::EMPTY;
        assert!(set.is_empty() && set.first().is_none());
        assert!(set.insert(p(70)) && set.insert(p(65)) && set.insert(p(1000)));
        assert!(!set.insert(p(65)), "a port is in the set once");
        assert_eq!(set.first(), Some(p(65)));
        // Emptying word 2 leaves the lowest port in word 31.
        assert_eq!(set.pop_first(), Some(p(65)));
        assert!(set.remove(p(70)) && !set.remove(p(70)));
        assert_eq!(set.first(), Some(p(1000)));
        assert_eq!(set.len(), 1);
        assert_eq!(set.pop_first(), Some(p(1000)));
        assert!(set.is_empty() && set.pop_first().is_none());
        assert_eq!(set, PortSet::EMPTY, "the summary is cleared with its words");
    }

    #[test]
    fn port_range_and_geometry() {
        assert_eq!(Port::new(1024), Err(Error::PortOutOfRange(1024)));
        assert_eq!(Port::new(u32::MAX), Err(Error::PortOutOfRange(u32::MAX)));
        let port = Port::new(1023).unwrap();
        assert_eq!(
            (port.word(), port.bit(), port.word_mask()),
            (31, 31, 1 << 31)
        );
        assert_eq!(port.next(), Port::new(0).unwrap());
        let port = Port::new(37).unwrap();
        assert_eq!((port.word(), port.bit()), (1, 5));
        assert_eq!(Port::from_word_bit(1, 5), port);
        assert_eq!(port.next().get(), 38);
    }

    #[test]
    fn vector_range() {
        assert_eq!(Vector::new(31), Err(Error::VectorOutOfRange(31)));
        assert_eq!(Vector::new(0), Err(Error::VectorOutOfRange(0)));
        assert_eq!(Vector::new(256), Err(Error::VectorOutOfRange(256)));
        assert_eq!(Vector::new(32).unwrap().get(), 32);
        assert_eq!(Vector::new(255).unwrap().priority_class(), 15);
        assert_eq!(Vector::new(0x31).unwrap().priority_class(), 3);
    }

    #[test]
    fn port_set_operations() {
        let mut set = PortSet::EMPTY;
        assert!(set.is_empty());
        assert_eq!(set.first(), None);
        let a = Port::new(700).unwrap();
        let b = Port::new(3).unwrap();
        assert!(set.insert(a));
        assert!(!set.insert(a));
        assert!(set.insert(b));
        assert_eq!(set.len(), 2);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![b, a]);
        assert_eq!(set.pop_first(), Some(b));
        assert!(!set.contains(b));
        assert!(set.remove(a));
        assert!(!set.remove(a));
        assert!(set.is_empty());
    }
}
