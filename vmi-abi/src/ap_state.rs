//! `struct vmi_ap_state`, the argument of SetInitialAPState.
//!
//! Mirrors Linux's `arch/x86/include/asm/vmi.h` (the 2006 specification's
//! `APState`, same layout). Natural i386 alignment: the u64 `efer` is only
//! 4-byte aligned and the struct is 92 bytes, so `efer` is an [`AbiU64`].
//!
//! Call: EAX = linear address of the structure, EDX = physical APIC id of
//! the processor to start. The state takes effect at that processor's
//! startup IPI; an AP without a state set first does not start. CR0 must
//! have PE and PG set; EFER.LME/LMA are unsupported. Linux zeroes the
//! structure, then fills cr0 = 0x80050023, cr3, cr4, efer (PAE+NX only),
//! eip, esp, cs/ss/ds/es/fs, gdtr/idtr, and leaves general registers 0.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A u64 laid out as i386 lays it out: two little-endian u32 halves, 4-byte
/// aligned (a Rust u64 is 8-byte aligned on the x86_64 host).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct AbiU64 {
    lo: u32,
    hi: u32,
}

const _: () = assert!(size_of::<AbiU64>() == 8);
const _: () = assert!(core::mem::align_of::<AbiU64>() == 4);

impl AbiU64 {
    /// From a value.
    pub const fn new(value: u64) -> Self {
        AbiU64 {
            lo: value as u32,
            hi: (value >> 32) as u32,
        }
    }
    /// The value.
    pub const fn get(self) -> u64 {
        (self.lo as u64) | ((self.hi as u64) << 32)
    }
    /// Replaces the value.
    pub fn set(&mut self, value: u64) {
        *self = Self::new(value);
    }
}

impl From<u64> for AbiU64 {
    fn from(value: u64) -> Self {
        Self::new(value)
    }
}

impl From<AbiU64> for u64 {
    fn from(value: AbiU64) -> Self {
        value.get()
    }
}

/// `struct vmi_ap_state` (vmi.h), 92 bytes.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VmiApState {
    /// 0x00
    pub cr0: u32,
    /// 0x04
    pub cr2: u32,
    /// 0x08
    pub cr3: u32,
    /// 0x0C
    pub cr4: u32,
    /// 0x10
    pub efer: AbiU64,
    /// 0x18
    pub eip: u32,
    /// 0x1C
    pub eflags: u32,
    /// 0x20
    pub eax: u32,
    /// 0x24
    pub ebx: u32,
    /// 0x28
    pub ecx: u32,
    /// 0x2C
    pub edx: u32,
    /// 0x30
    pub esp: u32,
    /// 0x34
    pub ebp: u32,
    /// 0x38
    pub esi: u32,
    /// 0x3C
    pub edi: u32,
    /// 0x40
    pub cs: u16,
    /// 0x42
    pub ss: u16,
    /// 0x44
    pub ds: u16,
    /// 0x46
    pub es: u16,
    /// 0x48
    pub fs: u16,
    /// 0x4A
    pub gs: u16,
    /// 0x4C
    pub ldtr: u16,
    /// 0x4E
    pub gdtr_limit: u16,
    /// 0x50
    pub gdtr_base: u32,
    /// 0x54
    pub idtr_base: u32,
    /// 0x58
    pub idtr_limit: u16,
    /// 0x5A: the C struct's tail padding, made explicit (zero).
    pub tail_padding: u16,
}

/// `sizeof(struct vmi_ap_state)` on i386.
pub const VMI_AP_STATE_SIZE: usize = 92;

const _: () = assert!(size_of::<VmiApState>() == VMI_AP_STATE_SIZE);
const _: () = assert!(core::mem::align_of::<VmiApState>() == 4);
const _: () = assert!(offset_of!(VmiApState, cr0) == 0x00);
const _: () = assert!(offset_of!(VmiApState, cr2) == 0x04);
const _: () = assert!(offset_of!(VmiApState, cr3) == 0x08);
const _: () = assert!(offset_of!(VmiApState, cr4) == 0x0C);
const _: () = assert!(offset_of!(VmiApState, efer) == 0x10);
const _: () = assert!(offset_of!(VmiApState, eip) == 0x18);
const _: () = assert!(offset_of!(VmiApState, eflags) == 0x1C);
const _: () = assert!(offset_of!(VmiApState, eax) == 0x20);
const _: () = assert!(offset_of!(VmiApState, ebx) == 0x24);
const _: () = assert!(offset_of!(VmiApState, ecx) == 0x28);
const _: () = assert!(offset_of!(VmiApState, edx) == 0x2C);
const _: () = assert!(offset_of!(VmiApState, esp) == 0x30);
const _: () = assert!(offset_of!(VmiApState, ebp) == 0x34);
const _: () = assert!(offset_of!(VmiApState, esi) == 0x38);
const _: () = assert!(offset_of!(VmiApState, edi) == 0x3C);
const _: () = assert!(offset_of!(VmiApState, cs) == 0x40);
const _: () = assert!(offset_of!(VmiApState, ss) == 0x42);
const _: () = assert!(offset_of!(VmiApState, ds) == 0x44);
const _: () = assert!(offset_of!(VmiApState, es) == 0x46);
const _: () = assert!(offset_of!(VmiApState, fs) == 0x48);
const _: () = assert!(offset_of!(VmiApState, gs) == 0x4A);
const _: () = assert!(offset_of!(VmiApState, ldtr) == 0x4C);
const _: () = assert!(offset_of!(VmiApState, gdtr_limit) == 0x4E);
const _: () = assert!(offset_of!(VmiApState, gdtr_base) == 0x50);
const _: () = assert!(offset_of!(VmiApState, idtr_base) == 0x54);
const _: () = assert!(offset_of!(VmiApState, idtr_limit) == 0x58);
const _: () = assert!(offset_of!(VmiApState, tail_padding) == 0x5A);

impl VmiApState {
    /// All fields zero, as Linux starts (`memset`).
    pub const ZERO: Self = VmiApState {
        cr0: 0,
        cr2: 0,
        cr3: 0,
        cr4: 0,
        efer: AbiU64::new(0),
        eip: 0,
        eflags: 0,
        eax: 0,
        ebx: 0,
        ecx: 0,
        edx: 0,
        esp: 0,
        ebp: 0,
        esi: 0,
        edi: 0,
        cs: 0,
        ss: 0,
        ds: 0,
        es: 0,
        fs: 0,
        gs: 0,
        ldtr: 0,
        gdtr_limit: 0,
        gdtr_base: 0,
        idtr_base: 0,
        idtr_limit: 0,
        tail_padding: 0,
    };
}
