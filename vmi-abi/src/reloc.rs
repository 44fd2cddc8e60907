//! GetRelocationInfo results and what a kernel does with them.
//!
//! Mirrors `VMI_RELOCATION_*` and `struct vmi_relocation_info` of Linux's
//! `arch/x86/include/asm/vmi.h`, and the decisions `vmi_32.c` takes on them:
//! `patch_internal()` (inline call sites), `para_fill()` (ROM address used as
//! the op) and `para_wrap()` / `vmi_get_function()` (ROM address cached for a
//! C wrapper). The kernel calls ROM+0x88 with EAX = call number and gets the
//! 8-byte structure back in EDX:EAX.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `call rel32` opcode (Linux `MNEM_CALL`).
pub const CALL_REL32_OPCODE: u8 = 0xE8;
/// `jmp rel32` opcode (Linux `MNEM_JMP`).
pub const JMP_REL32_OPCODE: u8 = 0xE9;
/// One-byte `nop`, the filler after a patched instruction.
pub const NOP_OPCODE: u8 = 0x90;
/// Length of a `call`/`jmp rel32`; a patch site must be at least this long.
pub const REL32_INSN_LEN: usize = 5;

/// `VMI_RELOCATION_*` (vmi.h): how the kernel should reach a call.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmiRelocationType {
    /// 0: not implemented by the ROM, the kernel keeps its native code.
    None = 0,
    /// 1: `call eip`.
    CallRel = 1,
    /// 2: `jmp eip` (only acceptable at inline patch sites: IRET, SYSEXIT).
    JumpRel = 2,
    /// 3: nothing to do, the site becomes NOPs.
    Nop = 3,
}

impl VmiRelocationType {
    /// Every type, by value.
    pub const ALL: [VmiRelocationType; 4] = [
        VmiRelocationType::None,
        VmiRelocationType::CallRel,
        VmiRelocationType::JumpRel,
        VmiRelocationType::Nop,
    ];

    /// The type with this raw value, if defined.
    pub const fn from_u8(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(VmiRelocationType::None),
            1 => Some(VmiRelocationType::CallRel),
            2 => Some(VmiRelocationType::JumpRel),
            3 => Some(VmiRelocationType::Nop),
            _ => None,
        }
    }

    /// The raw value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The `VMI_RELOCATION_` suffix.
    pub const fn name(self) -> &'static str {
        match self {
            VmiRelocationType::None => "NONE",
            VmiRelocationType::CallRel => "CALL_REL",
            VmiRelocationType::JumpRel => "JUMP_REL",
            VmiRelocationType::Nop => "NOP",
        }
    }
}

/// `struct vmi_relocation_info` (vmi.h), 8 bytes, returned in EDX:EAX.
/// `eip` is a pointer in the C struct: 4 bytes on i386, so a u32 here.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct VmiRelocationInfo {
    /// 0: absolute address of the ROM code for the call (EAX).
    pub eip: u32,
    /// 4: a [`VmiRelocationType`] value (low byte of EDX).
    pub type_: u8,
    /// 5: reserved, zero.
    pub reserved: [u8; 3],
}

const _: () = assert!(size_of::<VmiRelocationInfo>() == 8);
const _: () = assert!(offset_of!(VmiRelocationInfo, eip) == 0);
const _: () = assert!(offset_of!(VmiRelocationInfo, type_) == 4);
const _: () = assert!(offset_of!(VmiRelocationInfo, reserved) == 5);

impl VmiRelocationInfo {
    /// "Not implemented": type NONE, eip 0.
    pub const NONE: Self = Self::new(0, VmiRelocationType::None);

    /// A relocation of type `kind` to `eip`, reserved bytes zero.
    pub const fn new(eip: u32, kind: VmiRelocationType) -> Self {
        VmiRelocationInfo {
            eip,
            type_: kind as u8,
            reserved: [0; 3],
        }
    }

    /// CALL_REL to `eip`.
    pub const fn call_rel(eip: u32) -> Self {
        Self::new(eip, VmiRelocationType::CallRel)
    }

    /// JUMP_REL to `eip`.
    pub const fn jump_rel(eip: u32) -> Self {
        Self::new(eip, VmiRelocationType::JumpRel)
    }

    /// NOP (eip 0).
    pub const fn nop() -> Self {
        Self::new(0, VmiRelocationType::Nop)
    }

    /// The type, or the unknown raw value.
    pub const fn relocation_type(self) -> Result<VmiRelocationType, u8> {
        match VmiRelocationType::from_u8(self.type_) {
            Some(t) => Ok(t),
            None => Err(self.type_),
        }
    }

    /// The u64 a regparm function returns for this struct: memory order,
    /// little-endian, so `eip` is the low half (EAX) and `type_` the lowest
    /// byte of the high half (EDX).
    pub const fn to_u64(self) -> u64 {
        let high = u32::from_le_bytes([
            self.type_,
            self.reserved[0],
            self.reserved[1],
            self.reserved[2],
        ]);
        (self.eip as u64) | ((high as u64) << 32)
    }

    /// Inverse of [`Self::to_u64`].
    pub const fn from_u64(value: u64) -> Self {
        let high = ((value >> 32) as u32).to_le_bytes();
        VmiRelocationInfo {
            eip: value as u32,
            type_: high[0],
            reserved: [high[1], high[2], high[3]],
        }
    }

    /// (EAX, EDX) as GetRelocationInfo returns them.
    pub const fn to_regs(self) -> (u32, u32) {
        let v = self.to_u64();
        (v as u32, (v >> 32) as u32)
    }

    /// From (EAX, EDX) as GetRelocationInfo returned them.
    pub const fn from_regs(eax: u32, edx: u32) -> Self {
        Self::from_u64((eax as u64) | ((edx as u64) << 32))
    }
}

/// `opcode rel32` at `site` reaching `target`: rel32 = target - (site + 5),
/// modulo 2^32 (Linux `patch_offset()`; the address space wraps on i386).
pub const fn encode_rel32(opcode: u8, site: u32, target: u32) -> [u8; REL32_INSN_LEN] {
    let rel = target
        .wrapping_sub(site)
        .wrapping_sub(REL32_INSN_LEN as u32)
        .to_le_bytes();
    [opcode, rel[0], rel[1], rel[2], rel[3]]
}

/// The target of a `call`/`jmp rel32` at `site` (inverse of [`encode_rel32`]).
pub const fn decode_rel32(site: u32, insn: [u8; REL32_INSN_LEN]) -> u32 {
    let rel = u32::from_le_bytes([insn[1], insn[2], insn[3], insn[4]]);
    site.wrapping_add(REL32_INSN_LEN as u32).wrapping_add(rel)
}

/// What to do with an inline patch site (Linux `patch_internal()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchAction {
    /// Put this `call`/`jmp rel32` at the start of the site, NOPs after it.
    Write {
        /// The 5 instruction bytes.
        insn: [u8; REL32_INSN_LEN],
    },
    /// The whole site becomes NOPs.
    NopFill,
    /// Leave the site's native code alone.
    KeepNative,
}

impl PatchAction {
    /// Bytes of new code at a site of `site_len` bytes: Linux's return value
    /// from the patch hook (5, 0, or `site_len`); the rest is NOP-padded.
    pub const fn used_len(&self, site_len: usize) -> usize {
        match self {
            PatchAction::Write { .. } => REL32_INSN_LEN,
            PatchAction::NopFill => 0,
            PatchAction::KeepNative => site_len,
        }
    }

    /// Applies the action to a copy of the site's bytes: instruction (if
    /// any) first, then single-byte NOPs up to the end of `site`.
    /// `KeepNative` leaves `site` unchanged. `site` must be at least 5 bytes
    /// for `Write` (as [`patch_site`] guarantees); a shorter one is left unchanged.
    pub fn apply(&self, site: &mut [u8]) {
        let used = match self {
            PatchAction::KeepNative => return,
            PatchAction::NopFill => 0,
            PatchAction::Write { insn } => match site.get_mut(..REL32_INSN_LEN) {
                Some(head) => {
                    head.copy_from_slice(insn);
                    REL32_INSN_LEN
                }
                None => return,
            },
        };
        site[used..].fill(NOP_OPCODE);
    }
}

/// Why a site cannot be patched (Linux would BUG()).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchError {
    /// CALL_REL / JUMP_REL for a site shorter than 5 bytes.
    SiteTooShort {
        /// Site length.
        len: usize,
    },
    /// A type value outside 0..=3.
    UnknownType(u8),
}

impl core::fmt::Display for PatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PatchError::SiteTooShort { len } => {
                write!(
                    f,
                    "patch site of {len} bytes cannot hold a {REL32_INSN_LEN}-byte call/jmp"
                )
            }
            PatchError::UnknownType(t) => write!(f, "unknown VMI relocation type {t}"),
        }
    }
}

/// Linux's `patch_internal()`: for a `len`-byte inline site at `site_addr`,
/// CALL_REL gives `call rel32`, JUMP_REL `jmp rel32` (both reaching
/// `reloc.eip`), NOP fills the site with NOPs, NONE keeps the native code.
pub const fn patch_site(
    reloc: VmiRelocationInfo,
    site_addr: u32,
    len: usize,
) -> Result<PatchAction, PatchError> {
    let opcode = match reloc.relocation_type() {
        Ok(VmiRelocationType::CallRel) => CALL_REL32_OPCODE,
        Ok(VmiRelocationType::JumpRel) => JMP_REL32_OPCODE,
        Ok(VmiRelocationType::Nop) => return Ok(PatchAction::NopFill),
        Ok(VmiRelocationType::None) => return Ok(PatchAction::KeepNative),
        Err(raw) => return Err(PatchError::UnknownType(raw)),
    };
    if len < REL32_INSN_LEN {
        return Err(PatchError::SiteTooShort { len });
    }
    Ok(PatchAction::Write {
        insn: encode_rel32(opcode, site_addr, reloc.eip),
    })
}

/// What `para_fill()` does with a paravirt op whose C signature matches the
/// VMI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillAction {
    /// CALL_REL: the op points straight at `eip` in the ROM.
    Direct(u32),
    /// NOP: the op becomes an empty function.
    EmptyFunction,
    /// NONE: the native op stays.
    KeepNative,
    /// Any other type (JUMP_REL included): Linux warns "unknown relocation
    /// type" and keeps the native op.
    Unusable(u8),
}

/// Linux's `para_fill()` decision.
pub const fn para_fill(reloc: VmiRelocationInfo) -> FillAction {
    match reloc.relocation_type() {
        Ok(VmiRelocationType::CallRel) => FillAction::Direct(reloc.eip),
        Ok(VmiRelocationType::Nop) => FillAction::EmptyFunction,
        Ok(VmiRelocationType::None) => FillAction::KeepNative,
        Ok(VmiRelocationType::JumpRel) => FillAction::Unusable(VmiRelocationType::JumpRel as u8),
        Err(raw) => FillAction::Unusable(raw),
    }
}

/// JUMP_REL answered for a call the kernel reaches through a function
/// pointer (Linux BUGs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JumpRelNotCallable;

/// Linux's `para_wrap()` / `vmi_get_function()` decision: CALL_REL gives the
/// ROM address to cache for a wrapper; NOP, NONE and unknown types leave the
/// native op (a NOP is deliberately not trusted to mean a no-op there);
/// JUMP_REL is an error.
pub const fn cached_function(reloc: VmiRelocationInfo) -> Result<Option<u32>, JumpRelNotCallable> {
    match reloc.relocation_type() {
        Ok(VmiRelocationType::CallRel) => Ok(Some(reloc.eip)),
        Ok(VmiRelocationType::JumpRel) => Err(JumpRelNotCallable),
        _ => Ok(None),
    }
}
