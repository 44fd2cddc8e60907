//! The few Xen public-ABI numbers this crate needs, defined locally.
//!
//! They mirror `xen/include/public/xen.h` (`EVTCHN_2L_NR_CHANNELS`, the `VIRQ_*` numbers, the
//! x86_32 `shared_info` / `vcpu_info` layout), `xen/include/public/arch-x86/xen.h`
//! (`XEN_LEGACY_MAX_VCPUS`) and `xen/include/public/event_channel.h`. The workspace's `xen-abi`
//! crate is the eventual owner; these copies keep this crate independent until the lead unifies
//! them.

/// Bits in one `xen_ulong_t`, which is `unsigned long` (32 bits) on x86_32 (`arch-x86/xen.h`).
pub const BITS_PER_WORD: usize = 32;

/// Words in `shared_info.evtchn_pending[]` and `evtchn_mask[]` (`xen.h`:
/// `sizeof(xen_ulong_t) * 8` of them). It is also the number of bits of
/// `vcpu_info.evtchn_pending_sel` that are used: selector bit `i` stands for word `i`.
pub const EVTCHN_WORDS: usize = 32;

/// `EVTCHN_2L_NR_CHANNELS` (`xen.h`): `sizeof(xen_ulong_t) * sizeof(xen_ulong_t) * 64`,
/// which is 1024 ports on x86_32.
pub const EVTCHN_2L_NR_CHANNELS: usize = 1024;

/// `XEN_LEGACY_MAX_VCPUS` (`arch-x86/xen.h`): `shared_info` holds this many `vcpu_info`s.
pub const XEN_LEGACY_MAX_VCPUS: u32 = 32;

/// `NR_VIRQS` (`xen.h`): VIRQ numbers are `0..NR_VIRQS`.
pub const NR_VIRQS: u32 = 24;

/// `VIRQ_TIMER` (`xen.h`): per-vCPU; fires when `set_timer_op` or the periodic timer expires.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG` (`xen.h`): per-vCPU; the debug key request.
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE` (`xen.h`): global; input on the Xen emergency console (dom0 only).
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC` (`xen.h`): global; a domain crashed or shut down (dom0 only).
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_XENOPROF` (`xen.h`): per-vCPU.
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_XENPMU` (`xen.h`): per-vCPU.
pub const VIRQ_XENPMU: u32 = 13;

/// Offset of `shared_info.evtchn_pending[32]` in the x86_32 `shared_info` page (after
/// `vcpu_info[XEN_LEGACY_MAX_VCPUS]`, 64 bytes each).
pub const SHARED_INFO_EVTCHN_PENDING: usize = 0x800;
/// Offset of `shared_info.evtchn_mask[32]` in the x86_32 `shared_info` page.
pub const SHARED_INFO_EVTCHN_MASK: usize = 0x880;
/// Size of one x86_32 `vcpu_info`; vCPU `n`'s lives at `shared_info + n * VCPU_INFO_SIZE`.
pub const VCPU_INFO_SIZE: usize = 64;
/// Offset of `vcpu_info.evtchn_upcall_pending` (u8).
pub const VCPU_INFO_UPCALL_PENDING: usize = 0;
/// Offset of `vcpu_info.evtchn_upcall_mask` (u8; 1 = events masked, the guest's "cli").
pub const VCPU_INFO_UPCALL_MASK: usize = 1;
/// Offset of `vcpu_info.evtchn_pending_sel` (`xen_ulong_t`, u32 on x86_32).
pub const VCPU_INFO_PENDING_SEL: usize = 4;

/// EFLAGS.IF (Intel SDM vol. 1, 3.4.3.3). VMI `GetInterruptMask` returns it when interrupts
/// are enabled and `SetInterruptMask` takes it (vmi-abi.md, calls 31 and 32).
pub const EFLAGS_IF: u32 = 0x200;

/// The first vector an external interrupt may use: 0..=31 are reserved for exceptions
/// (Intel SDM vol. 3, 6.2).
pub const FIRST_EXTERNAL_VECTOR: u32 = 32;

const _: () = assert!(BITS_PER_WORD * EVTCHN_WORDS == EVTCHN_2L_NR_CHANNELS);
// The selector is one u32 with a bit per word.
const _: () = assert!(EVTCHN_WORDS <= u32::BITS as usize);
const _: () = assert!(SHARED_INFO_EVTCHN_PENDING == XEN_LEGACY_MAX_VCPUS as usize * VCPU_INFO_SIZE);
const _: () = assert!(SHARED_INFO_EVTCHN_MASK == SHARED_INFO_EVTCHN_PENDING + EVTCHN_WORDS * 4);
