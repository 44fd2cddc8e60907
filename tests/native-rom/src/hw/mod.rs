//! PC hardware access with the real instructions (i686).
//!
//! One wrapper per instruction or device register, in the style of the
//! x86_64 crate's `instructions` module: the unsafe contract is the
//! hardware's, stated on each function.

pub mod apic;
pub mod cpu;
pub mod hpet;
pub mod pci;
pub mod pit;
pub mod port;
pub mod power;
pub mod rtc;
