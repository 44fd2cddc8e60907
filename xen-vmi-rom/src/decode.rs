//! Decoder for the privileged instructions a ring-1 kernel traps on.
//!
//! A VMI kernel runs in ring 1 on Xen. The instructions it may still execute
//! natively (port I/O, descriptor-table and control-register loads before it
//! activates VMI, MSR access, ...) fault there with #GP, which Xen bounces
//! to the ROM's handler. The handler hands the bytes at the faulting EIP to
//! [`decode`], which names the operation, its operands and the exact length
//! of the instruction, so the ROM can emulate it and step over it.
//!
//! Encodings follow the Intel SDM Vol. 2 (chapter 2, "Instruction Format";
//! appendix A, opcode map) for a 32-bit code segment (CS.D = 1): default
//! operand and address size 32 bits, 0x66 selects 16-bit operands, 0x67
//! 16-bit addressing (refused: a kernel running in a flat 32-bit segment
//! does not use it, and the ROM would rather say so than guess).
//!
//! A second family faults only because of ring compression: Xen runs the
//! kernel in ring 1, so an instruction that loads SS or returns with an
//! RPL-0 selector of the kernel's own (MOV SS, POP SS, LSS, RETF, IRET) is
//! #GP there, where in ring 0 it is not (docs/traps-and-privilege.md,
//! "Rings"). The decoder names every segment-loading and far-transfer
//! instruction — MOV Sreg, POP Sreg, LDS/LES/LFS/LGS/LSS, far JMP/CALL/RET,
//! IRET — with its segment, operand, operand size and immediate, so the ROM
//! can redo it with the selector's RPL raised to 1. LAR, LSL, VERR and VERW
//! never fault but are decoded too, for a ROM that wants to interpret them.
//!
//! Not every decoded instruction can trap in ring 1 on every machine:
//! SGDT/SIDT/SLDT/STR/SMSW fault only with CR4.UMIP, RDTSC/RDTSCP only with
//! CR4.TSD, CPUID only with CPUID faulting, PUSHF/POPF never fault for IOPL
//! in protected mode and IRET only for the RPL above (they are decoded for
//! IOPL-sensitive virtualization, where the ROM meets them on its own
//! paths). The decoder does not judge that; it only says what the bytes
//! are.
//!
//! Errors are values: every input gives `Ok` or a [`DecodeError`], never a
//! panic, and an `Ok` length never exceeds 15 nor the input.

/// Architectural limit on the length of one instruction; a longer one
/// (prefixes included) raises #GP natively.
pub const MAX_INSN_LEN: usize = 15;

/// Operand size of a data transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// 8 bits (AL).
    Byte,
    /// 16 bits (AX; 0x66 prefix in a 32-bit segment).
    Word,
    /// 32 bits (EAX; the default in a 32-bit segment).
    Dword,
}

impl Width {
    /// Size in bytes (1, 2 or 4).
    pub const fn bytes(self) -> u32 {
        match self {
            Width::Byte => 1,
            Width::Word => 2,
            Width::Dword => 4,
        }
    }

    /// Mask of the bits an operand of this size holds; also what an empty
    /// bus returns for a read of this size.
    pub const fn mask(self) -> u32 {
        match self {
            Width::Byte => 0xFF,
            Width::Word => 0xFFFF,
            Width::Dword => 0xFFFF_FFFF,
        }
    }

    /// The width for a size in bytes, if it is 1, 2 or 4.
    pub const fn from_bytes(bytes: u32) -> Option<Width> {
        match bytes {
            1 => Some(Width::Byte),
            2 => Some(Width::Word),
            4 => Some(Width::Dword),
            _ => None,
        }
    }
}

/// A 32-bit general register, numbered as ModRM.reg / ModRM.rm encode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg32 {
    /// EAX (0).
    Eax = 0,
    /// ECX (1).
    Ecx = 1,
    /// EDX (2).
    Edx = 2,
    /// EBX (3).
    Ebx = 3,
    /// ESP (4).
    Esp = 4,
    /// EBP (5).
    Ebp = 5,
    /// ESI (6).
    Esi = 6,
    /// EDI (7).
    Edi = 7,
}

impl Reg32 {
    /// The register a 3-bit ModRM/SIB field names (only the low 3 bits of
    /// `field` are used).
    pub const fn from_field(field: u8) -> Reg32 {
        match field & 7 {
            0 => Reg32::Eax,
            1 => Reg32::Ecx,
            2 => Reg32::Edx,
            3 => Reg32::Ebx,
            4 => Reg32::Esp,
            5 => Reg32::Ebp,
            6 => Reg32::Esi,
            _ => Reg32::Edi,
        }
    }
}

/// The general registers of the faulting context, as the ROM's #GP handler
/// saved them. The decoder's operands are evaluated against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Regs {
    /// EAX.
    pub eax: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
    /// EBX.
    pub ebx: u32,
    /// ESP at the faulting instruction (the kernel's, not the handler's).
    pub esp: u32,
    /// EBP.
    pub ebp: u32,
    /// ESI.
    pub esi: u32,
    /// EDI.
    pub edi: u32,
}

impl Regs {
    /// The value of `reg`.
    pub const fn get(&self, reg: Reg32) -> u32 {
        match reg {
            Reg32::Eax => self.eax,
            Reg32::Ecx => self.ecx,
            Reg32::Edx => self.edx,
            Reg32::Ebx => self.ebx,
            Reg32::Esp => self.esp,
            Reg32::Ebp => self.ebp,
            Reg32::Esi => self.esi,
            Reg32::Edi => self.edi,
        }
    }

    /// Sets all 32 bits of `reg`.
    pub fn set(&mut self, reg: Reg32, value: u32) {
        let slot = match reg {
            Reg32::Eax => &mut self.eax,
            Reg32::Ecx => &mut self.ecx,
            Reg32::Edx => &mut self.edx,
            Reg32::Ebx => &mut self.ebx,
            Reg32::Esp => &mut self.esp,
            Reg32::Ebp => &mut self.ebp,
            Reg32::Esi => &mut self.esi,
            Reg32::Edi => &mut self.edi,
        };
        *slot = value;
    }

    /// Writes the low `width` bits of `reg` (AL/AX/EAX for `Reg32::Eax`),
    /// keeping the rest, as a sized register write does in 32-bit mode.
    pub fn set_sized(&mut self, reg: Reg32, width: Width, value: u32) {
        let mask = width.mask();
        let merged = (self.get(reg) & !mask) | (value & mask);
        self.set(reg, merged);
    }

    /// The low `width` bits of `reg`.
    pub const fn get_sized(&self, reg: Reg32, width: Width) -> u32 {
        self.get(reg) & width.mask()
    }
}

/// A segment register, as a prefix or a default names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// ES (prefix 0x26).
    Es,
    /// CS (prefix 0x2E).
    Cs,
    /// SS (prefix 0x36).
    Ss,
    /// DS (prefix 0x3E).
    Ds,
    /// FS (prefix 0x64).
    Fs,
    /// GS (prefix 0x65).
    Gs,
}

impl Segment {
    /// The segment register a 3-bit Sreg field names (MOV Sreg, ModRM.reg:
    /// ES 0, CS 1, SS 2, DS 3, FS 4, GS 5); None for 6 and 7, which are
    /// reserved (#UD). Only the low 3 bits of `field` are used.
    pub const fn from_field(field: u8) -> Option<Segment> {
        match field & 7 {
            0 => Some(Segment::Es),
            1 => Some(Segment::Cs),
            2 => Some(Segment::Ss),
            3 => Some(Segment::Ds),
            4 => Some(Segment::Fs),
            5 => Some(Segment::Gs),
            _ => None,
        }
    }
}

/// A 32-bit memory operand: `segment:[base + index * scale + disp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemOperand {
    /// The segment the access goes through: the override prefix if there
    /// was one, else SS for an ESP or EBP base and DS otherwise.
    pub segment: Segment,
    /// Base register, if any (none for the disp32-only forms).
    pub base: Option<Reg32>,
    /// Index register, if any (SIB.index = 100 means none).
    pub index: Option<Reg32>,
    /// Scale applied to the index: 1, 2, 4 or 8.
    pub scale: u8,
    /// Displacement (disp8 sign-extended, or disp32).
    pub disp: i32,
}

impl MemOperand {
    /// The offset within `segment` (wrapping at 4 GiB, as 32-bit address
    /// arithmetic does).
    #[cfg_attr(feature = "image", optimize(size))]
    pub fn offset(&self, regs: &Regs) -> u32 {
        let base = self.base.map_or(0, |r| regs.get(r));
        let index = self.index.map_or(0, |r| regs.get(r));
        base.wrapping_add(index.wrapping_mul(u32::from(self.scale)))
            .wrapping_add(self.disp as u32)
    }
}

/// A ModRM r/m operand: a register or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RmOperand {
    /// ModRM.mod = 11: the register in ModRM.rm.
    Reg(Reg32),
    /// A memory operand.
    Mem(MemOperand),
}

/// Where IN/OUT take their port number from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortOperand {
    /// An 8-bit immediate (E4-E7).
    Imm(u8),
    /// The DX register (EC-EF, INS/OUTS).
    Dx,
}

impl PortOperand {
    /// The port number.
    pub const fn port(self, regs: &Regs) -> u16 {
        match self {
            PortOperand::Imm(p) => p as u16,
            PortOperand::Dx => regs.edx as u16,
        }
    }
}

/// Where a far JMP or CALL finds its target selector:offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FarTarget {
    /// ptr16:32 (ptr16:16 with 0x66) in the instruction itself (EA, 9A).
    /// With a 16-bit operand size `offset` is the 16-bit value,
    /// zero-extended (it becomes IP and the top of EIP is cleared).
    Direct {
        /// The selector loaded into CS.
        selector: u16,
        /// The new EIP.
        offset: u32,
    },
    /// m16:32 (m16:16 with 0x66) in memory (FF /5, FF /3): the offset at
    /// the operand's address (4 or 2 bytes), the selector right after it.
    Indirect(MemOperand),
}

/// A control register that exists in 32-bit mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlReg {
    /// CR0.
    Cr0,
    /// CR2 (page-fault linear address).
    Cr2,
    /// CR3 (page-directory base).
    Cr3,
    /// CR4.
    Cr4,
}

/// A decoded privileged (or IOPL-/CR4-sensitive) operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// IN AL/AX/EAX, port (E4, E5, EC, ED).
    In {
        /// The port.
        port: PortOperand,
        /// Transfer size; the destination is AL, AX or EAX.
        width: Width,
    },
    /// OUT port, AL/AX/EAX (E6, E7, EE, EF).
    Out {
        /// The port.
        port: PortOperand,
        /// Transfer size; the source is AL, AX or EAX.
        width: Width,
    },
    /// INS (6C, 6D): port DX to `ES:[EDI]`, EDI stepped by the caller per
    /// EFLAGS.DF. The destination segment is always ES (no override).
    Ins {
        /// Element size.
        width: Width,
        /// REP (F3) or REPNE (F2, which the CPU treats the same for INS):
        /// repeat ECX times.
        rep: bool,
    },
    /// OUTS (6E, 6F): `segment:[ESI]` to port DX, ESI stepped by the caller
    /// per EFLAGS.DF.
    Outs {
        /// Element size.
        width: Width,
        /// REP (F3) or REPNE (F2): repeat ECX times.
        rep: bool,
        /// Source segment: DS unless overridden.
        segment: Segment,
    },
    /// CLI (FA).
    Cli,
    /// STI (FB).
    Sti,
    /// HLT (F4).
    Hlt,
    /// LGDT m16&32 (0F 01 /2).
    Lgdt {
        /// The 6-byte pseudo-descriptor (limit16, base32).
        mem: MemOperand,
        /// `Word` (0x66 prefix): only 24 bits of the base are loaded, the
        /// top byte is zero.
        width: Width,
    },
    /// LIDT m16&32 (0F 01 /3).
    Lidt {
        /// The 6-byte pseudo-descriptor (limit16, base32).
        mem: MemOperand,
        /// `Word` (0x66 prefix): only 24 bits of the base are loaded.
        width: Width,
    },
    /// SGDT m (0F 01 /0): stores limit16 and the full base32 (every
    /// processor since the P6 stores all 32 bits whatever the operand size).
    Sgdt(MemOperand),
    /// SIDT m (0F 01 /1): as SGDT.
    Sidt(MemOperand),
    /// SLDT r/m16 (0F 00 /0).
    Sldt {
        /// Destination.
        dest: RmOperand,
        /// Memory: always `Word`; register: `Dword` (zero-extended) or
        /// `Word` with 0x66.
        width: Width,
    },
    /// STR r/m16 (0F 00 /1).
    Str {
        /// Destination.
        dest: RmOperand,
        /// As for SLDT.
        width: Width,
    },
    /// LLDT r/m16 (0F 00 /2).
    Lldt(RmOperand),
    /// LTR r/m16 (0F 00 /3).
    Ltr(RmOperand),
    /// MOV r32, CRn (0F 20 /r; ModRM.mod is ignored, always a register).
    MovFromCr {
        /// Source control register.
        cr: ControlReg,
        /// Destination register.
        reg: Reg32,
    },
    /// MOV CRn, r32 (0F 22 /r).
    MovToCr {
        /// Destination control register.
        cr: ControlReg,
        /// Source register.
        reg: Reg32,
    },
    /// MOV r32, DRn (0F 21 /r). DR4/DR5 alias DR6/DR7 when CR4.DE is clear
    /// and are #UD when it is set: the caller decides.
    MovFromDr {
        /// Debug register number 0..=7.
        dr: u8,
        /// Destination register.
        reg: Reg32,
    },
    /// MOV DRn, r32 (0F 23 /r).
    MovToDr {
        /// Debug register number 0..=7.
        dr: u8,
        /// Source register.
        reg: Reg32,
    },
    /// CLTS (0F 06).
    Clts,
    /// INVD (0F 08).
    Invd,
    /// WBINVD (0F 09).
    Wbinvd,
    /// INVLPG m (0F 01 /7, memory form).
    Invlpg(MemOperand),
    /// WRMSR (0F 30): ECX = MSR, EDX:EAX = value.
    Wrmsr,
    /// RDTSC (0F 31).
    Rdtsc,
    /// RDMSR (0F 32).
    Rdmsr,
    /// SYSEXIT (0F 35): to ring 3 at EDX with ESP = ECX, selectors from
    /// IA32_SYSENTER_CS.
    Sysexit,
    /// RDPMC (0F 33).
    Rdpmc,
    /// RDTSCP (0F 01 F9): traps with CR4.TSD like RDTSC.
    Rdtscp,
    /// XSETBV (0F 01 D1): privileged.
    Xsetbv,
    /// CPUID (0F A2).
    Cpuid,
    /// LMSW r/m16 (0F 01 /6).
    Lmsw(RmOperand),
    /// SMSW r/m (0F 01 /4).
    Smsw {
        /// Destination.
        dest: RmOperand,
        /// Memory: always `Word`; register: `Dword` or `Word` with 0x66.
        width: Width,
    },
    /// IRET/IRETD (CF). Faults in ring 1 when the frame's CS has RPL 0 (a
    /// return may not raise privilege).
    Iret {
        /// `Dword` (IRETD: EIP, CS, EFLAGS and, to an outer ring, ESP and
        /// SS popped as 4-byte slots) or `Word` (0x66: the 16-bit frame, IP,
        /// CS, FLAGS, [SP, SS] in 2-byte slots).
        width: Width,
    },
    /// PUSHF/PUSHFD (9C).
    Pushf {
        /// `Dword` or `Word` (0x66).
        width: Width,
    },
    /// POPF/POPFD (9D).
    Popf {
        /// `Dword` or `Word` (0x66).
        width: Width,
    },
    /// INT imm8 (CD ib).
    Int(u8),
    /// INT3 (CC).
    Int3,
    /// MOV Sreg, r/m16 (8E /r). Loading SS with an RPL-0 selector faults in
    /// ring 1; the other segments accept it. MOV CS and the reserved Sreg
    /// fields 6 and 7 are [`DecodeError::UndefinedSegmentRegister`]. Loading
    /// SS also blocks interrupts and debug traps until after the next
    /// instruction.
    MovToSreg {
        /// The segment register loaded: ES, SS, DS, FS or GS.
        sreg: Segment,
        /// The selector: the low 16 bits of a register, or 16 bits read
        /// from memory (whatever the operand size).
        src: RmOperand,
    },
    /// POP Sreg: POP ES (07), POP SS (17), POP DS (1F), POP FS (0F A1),
    /// POP GS (0F A9). As for MOV SS, POP SS blocks interrupts for one
    /// instruction.
    PopSreg {
        /// The segment register loaded: ES, SS, DS, FS or GS.
        sreg: Segment,
        /// The stack slot: `Dword` (4 bytes popped, the selector in the low
        /// 16 bits) or `Word` (0x66: 2 bytes popped).
        width: Width,
    },
    /// LDS (C5), LES (C4), LSS (0F B2), LFS (0F B4), LGS (0F B5):
    /// `sreg:dest` from a far pointer in memory. A register operand is
    /// [`DecodeError::MemoryOperandRequired`], except for C4/C5, where it
    /// is a VEX prefix (reported as [`Op::Unknown`]).
    LoadFarPointer {
        /// The segment register loaded with the pointer's selector.
        sreg: Segment,
        /// The general register loaded with the pointer's offset.
        dest: Reg32,
        /// m16:32: the offset (4 bytes; 2 with `Word`) at the operand's
        /// address, then the 16-bit selector.
        mem: MemOperand,
        /// `Dword` (m16:32, `dest` written whole) or `Word` (0x66: m16:16, only
        /// the low 16 bits of `dest` written).
        width: Width,
    },
    /// RETF (CB) and RETF imm16 (CA iw): pops EIP then CS (and, to an outer
    /// ring, ESP then SS after releasing `release` bytes). Faults in ring 1
    /// when the popped CS has RPL 0.
    RetFar {
        /// The stack slots: `Dword` (4 bytes each) or `Word` (0x66: 2 bytes
        /// each, IP and CS).
        width: Width,
        /// Bytes of parameters released from the stack after popping CS:IP
        /// (the imm16 of CA; 0 for CB).
        release: u16,
    },
    /// JMP FAR ptr16:32 (EA cd/cp) or JMP FAR m16:32 (FF /5, memory only).
    JmpFar {
        /// The new CS:EIP.
        target: FarTarget,
        /// `Dword` (ptr16:32 / m16:32) or `Word` (0x66: ptr16:16 / m16:16).
        width: Width,
    },
    /// CALL FAR ptr16:32 (9A cd/cp) or CALL FAR m16:32 (FF /3, memory
    /// only). Pushes CS then the return EIP.
    CallFar {
        /// The new CS:EIP.
        target: FarTarget,
        /// `Dword` (ptr16:32 / m16:32, 4-byte pushes) or `Word` (0x66:
        /// ptr16:16 / m16:16, 2-byte pushes).
        width: Width,
    },
    /// LAR r32, r32/m16 (0F 02 /r): the access rights of the descriptor
    /// `src` selects, ZF set when it is visible from the current privilege
    /// level. An unusable selector clears ZF rather than faulting.
    Lar {
        /// Destination, written only when ZF is set.
        dest: Reg32,
        /// The selector: the low 16 bits of a register or 16 bits of memory.
        src: RmOperand,
        /// Size of the write to `dest`: `Dword`, or `Word` with 0x66.
        width: Width,
    },
    /// LSL r32, r32/m16 (0F 03 /r): the byte-granular limit of the
    /// descriptor `src` selects; as LAR.
    Lsl {
        /// Destination, written only when ZF is set.
        dest: Reg32,
        /// The selector, as for LAR.
        src: RmOperand,
        /// Size of the write to `dest`: `Dword`, or `Word` with 0x66.
        width: Width,
    },
    /// VERR r/m16 (0F 00 /4): ZF = the segment `src` selects is readable
    /// from the current privilege level. The selector is 16 bits whatever
    /// the operand size.
    Verr(RmOperand),
    /// VERW r/m16 (0F 00 /5): as VERR, for writable.
    Verw(RmOperand),
    /// Anything else. The ROM cannot step over it: it reflects the fault
    /// to the kernel. The `len` of the decoded [`Insn`] then counts only
    /// the bytes looked at (prefixes, opcode, ModRM where the opcode has
    /// one), not the instruction.
    Unknown {
        /// The opcode: one byte, or 0x0Fxx for the two-byte map.
        opcode: u16,
    },
}

/// A decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// What it does.
    pub op: Op,
    /// Its length in bytes, prefixes included (1..=15); EIP + len is the
    /// next instruction. See [`Op::Unknown`] for the one exception.
    pub len: u8,
}

/// Why the bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the instruction did (the caller gave fewer
    /// bytes than the instruction needs, e.g. at the end of a mapping).
    Truncated,
    /// More than 15 bytes: #GP natively.
    TooLong,
    /// A LOCK prefix on one of the decoded instructions, none of which
    /// accepts it: #UD natively.
    LockPrefix,
    /// A control register that does not exist in 32-bit mode (CR1, CR5-7):
    /// #UD natively.
    UndefinedControlRegister,
    /// 16-bit addressing (0x67 prefix) on a memory operand or string
    /// instruction: not supported by the ROM.
    Unsupported16BitAddressing,
    /// MOV Sreg, r/m16 (8E) naming CS or the reserved Sreg fields 6 and 7:
    /// #UD natively.
    UndefinedSegmentRegister,
    /// A register operand where the instruction takes only memory (LSS,
    /// LFS, LGS; far JMP and CALL through FF /5 and FF /3): #UD natively.
    MemoryOperandRequired,
}

/// Prefix state collected before the opcode.
#[derive(Debug, Clone, Copy, Default)]
struct Prefixes {
    operand16: bool,
    address16: bool,
    lock: bool,
    /// F2 or F3 seen (the last one wins natively; INS/OUTS treat both as REP).
    rep: bool,
    segment: Option<Segment>,
}

/// Reads the instruction bytes, enforcing both the input's end and the
/// architectural 15-byte limit.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<u8, DecodeError> {
        if self.pos >= MAX_INSN_LEN {
            return Err(DecodeError::TooLong);
        }
        let byte = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(byte)
    }

    fn next_u16(&mut self) -> Result<u16, DecodeError> {
        let low = self.next()?;
        let high = self.next()?;
        Ok(u16::from_le_bytes([low, high]))
    }

    #[cfg_attr(feature = "image", optimize(size))]
    fn next_u32(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for shift in [0, 8, 16, 24] {
            value |= u32::from(self.next()?) << shift;
        }
        Ok(value)
    }

    /// The length so far; never above 15 (see `next`).
    fn len(&self) -> u8 {
        self.pos as u8
    }
}

/// Decodes the instruction at the start of `bytes` (the bytes at the
/// faulting EIP; only the first 15 are ever read).
#[cfg_attr(feature = "image", optimize(size))]
pub fn decode(bytes: &[u8]) -> Result<Insn, DecodeError> {
    let mut cur = Cursor { bytes, pos: 0 };
    let mut pfx = Prefixes::default();
    let opcode = loop {
        let byte = cur.next()?;
        match byte {
            0x26 => pfx.segment = Some(Segment::Es),
            0x2E => pfx.segment = Some(Segment::Cs),
            0x36 => pfx.segment = Some(Segment::Ss),
            0x3E => pfx.segment = Some(Segment::Ds),
            0x64 => pfx.segment = Some(Segment::Fs),
            0x65 => pfx.segment = Some(Segment::Gs),
            0x66 => pfx.operand16 = true,
            0x67 => pfx.address16 = true,
            0xF0 => pfx.lock = true,
            0xF2 | 0xF3 => pfx.rep = true,
            _ => break byte,
        }
    };
    let op = if opcode == 0x0F {
        let opcode2 = cur.next()?;
        decode_0f(&mut cur, &pfx, opcode2)?
    } else {
        decode_one_byte(&mut cur, &pfx, opcode)?
    };
    if pfx.lock && !matches!(op, Op::Unknown { .. }) {
        return Err(DecodeError::LockPrefix);
    }
    Ok(Insn { op, len: cur.len() })
}

/// 16 or 32 bits by the 0x66 prefix.
fn operand_width(pfx: &Prefixes) -> Width {
    if pfx.operand16 {
        Width::Word
    } else {
        Width::Dword
    }
}

/// The width an opcode's low bit (w) selects: byte, or word/dword.
fn w_width(opcode: u8, pfx: &Prefixes) -> Width {
    if opcode & 1 == 0 {
        Width::Byte
    } else {
        operand_width(pfx)
    }
}

fn decode_one_byte(cur: &mut Cursor<'_>, pfx: &Prefixes, opcode: u8) -> Result<Op, DecodeError> {
    Ok(match opcode {
        0xE4 | 0xE5 => Op::In {
            port: PortOperand::Imm(cur.next()?),
            width: w_width(opcode, pfx),
        },
        0xE6 | 0xE7 => Op::Out {
            port: PortOperand::Imm(cur.next()?),
            width: w_width(opcode, pfx),
        },
        0xEC | 0xED => Op::In {
            port: PortOperand::Dx,
            width: w_width(opcode, pfx),
        },
        0xEE | 0xEF => Op::Out {
            port: PortOperand::Dx,
            width: w_width(opcode, pfx),
        },
        0x6C..=0x6F => {
            // The string forms address memory through ESI/EDI (SI/DI with
            // 0x67) and count in ECX (CX).
            if pfx.address16 {
                return Err(DecodeError::Unsupported16BitAddressing);
            }
            let width = w_width(opcode, pfx);
            if opcode < 0x6E {
                Op::Ins {
                    width,
                    rep: pfx.rep,
                }
            } else {
                Op::Outs {
                    width,
                    rep: pfx.rep,
                    segment: pfx.segment.unwrap_or(Segment::Ds),
                }
            }
        }
        0xFA => Op::Cli,
        0xFB => Op::Sti,
        0xF4 => Op::Hlt,
        0xCF => Op::Iret {
            width: operand_width(pfx),
        },
        0x9C => Op::Pushf {
            width: operand_width(pfx),
        },
        0x9D => Op::Popf {
            width: operand_width(pfx),
        },
        0xCD => Op::Int(cur.next()?),
        0xCC => Op::Int3,
        0x8E => {
            let modrm = cur.next()?;
            let sreg = match Segment::from_field(modrm >> 3) {
                Some(Segment::Cs) | None => return Err(DecodeError::UndefinedSegmentRegister),
                Some(sreg) => sreg,
            };
            Op::MovToSreg {
                sreg,
                src: rm_operand(cur, pfx, modrm)?,
            }
        }
        0x07 | 0x17 | 0x1F => Op::PopSreg {
            sreg: match opcode {
                0x07 => Segment::Es,
                0x17 => Segment::Ss,
                _ => Segment::Ds,
            },
            width: operand_width(pfx),
        },
        0xC4 | 0xC5 => {
            let modrm = cur.next()?;
            if modrm >> 6 == 3 {
                // In protected mode a register form of LES/LDS is the
                // second byte of a VEX prefix (SDM Vol. 2, 2.3.5): another
                // instruction entirely.
                Op::Unknown {
                    opcode: u16::from(opcode),
                }
            } else {
                let sreg = if opcode == 0xC4 {
                    Segment::Es
                } else {
                    Segment::Ds
                };
                load_far_pointer(cur, pfx, modrm, sreg)?
            }
        }
        0xCA => Op::RetFar {
            width: operand_width(pfx),
            release: cur.next_u16()?,
        },
        0xCB => Op::RetFar {
            width: operand_width(pfx),
            release: 0,
        },
        0xEA | 0x9A => {
            let width = operand_width(pfx);
            // ptr16:32 is stored offset first, then the selector.
            let offset = match width {
                Width::Word => u32::from(cur.next_u16()?),
                _ => cur.next_u32()?,
            };
            let target = FarTarget::Direct {
                selector: cur.next_u16()?,
                offset,
            };
            if opcode == 0xEA {
                Op::JmpFar { target, width }
            } else {
                Op::CallFar { target, width }
            }
        }
        0xFF => {
            let modrm = cur.next()?;
            match (modrm >> 3) & 7 {
                reg @ (3 | 5) => {
                    if modrm >> 6 == 3 {
                        return Err(DecodeError::MemoryOperandRequired);
                    }
                    let target = FarTarget::Indirect(mem_operand(cur, pfx, modrm)?);
                    let width = operand_width(pfx);
                    if reg == 5 {
                        Op::JmpFar { target, width }
                    } else {
                        Op::CallFar { target, width }
                    }
                }
                // INC, DEC, near CALL/JMP, PUSH: not ours.
                _ => Op::Unknown {
                    opcode: u16::from(opcode),
                },
            }
        }
        _ => Op::Unknown {
            opcode: u16::from(opcode),
        },
    })
}

fn decode_0f(cur: &mut Cursor<'_>, pfx: &Prefixes, opcode: u8) -> Result<Op, DecodeError> {
    let unknown = Op::Unknown {
        opcode: 0x0F00 | u16::from(opcode),
    };
    Ok(match opcode {
        0x00 => {
            let modrm = cur.next()?;
            let width_for = |rm: &RmOperand| match rm {
                RmOperand::Reg(_) => operand_width(pfx),
                RmOperand::Mem(_) => Width::Word,
            };
            match (modrm >> 3) & 7 {
                0 => {
                    let dest = rm_operand(cur, pfx, modrm)?;
                    Op::Sldt {
                        width: width_for(&dest),
                        dest,
                    }
                }
                1 => {
                    let dest = rm_operand(cur, pfx, modrm)?;
                    Op::Str {
                        width: width_for(&dest),
                        dest,
                    }
                }
                2 => Op::Lldt(rm_operand(cur, pfx, modrm)?),
                3 => Op::Ltr(rm_operand(cur, pfx, modrm)?),
                4 => Op::Verr(rm_operand(cur, pfx, modrm)?),
                5 => Op::Verw(rm_operand(cur, pfx, modrm)?),
                // The undefined /6 and /7.
                _ => unknown,
            }
        }
        0x01 => {
            let modrm = cur.next()?;
            let reg = (modrm >> 3) & 7;
            if modrm >> 6 == 3 {
                // The register forms of group 7 are other instructions
                // entirely (VMX, MONITOR/MWAIT, XGETBV, SVM, ...), except
                // SMSW and LMSW.
                match (reg, modrm & 7) {
                    (4, rm) => Op::Smsw {
                        dest: RmOperand::Reg(Reg32::from_field(rm)),
                        width: operand_width(pfx),
                    },
                    (6, rm) => Op::Lmsw(RmOperand::Reg(Reg32::from_field(rm))),
                    (2, 1) => Op::Xsetbv,
                    (7, 1) => Op::Rdtscp,
                    _ => unknown,
                }
            } else {
                match reg {
                    0 => Op::Sgdt(mem_operand(cur, pfx, modrm)?),
                    1 => Op::Sidt(mem_operand(cur, pfx, modrm)?),
                    2 => Op::Lgdt {
                        mem: mem_operand(cur, pfx, modrm)?,
                        width: operand_width(pfx),
                    },
                    3 => Op::Lidt {
                        mem: mem_operand(cur, pfx, modrm)?,
                        width: operand_width(pfx),
                    },
                    4 => Op::Smsw {
                        dest: RmOperand::Mem(mem_operand(cur, pfx, modrm)?),
                        width: Width::Word,
                    },
                    6 => Op::Lmsw(RmOperand::Mem(mem_operand(cur, pfx, modrm)?)),
                    7 => Op::Invlpg(mem_operand(cur, pfx, modrm)?),
                    _ => unknown,
                }
            }
        }
        0x20..=0x23 => {
            // MOV to/from CRn/DRn: ModRM.mod is ignored (SDM: "the 2 bits
            // in the mod field are ignored"), the operand is always the
            // register in ModRM.rm, and there is never a SIB or
            // displacement.
            let modrm = cur.next()?;
            let number = (modrm >> 3) & 7;
            let reg = Reg32::from_field(modrm);
            match opcode {
                0x20 => Op::MovFromCr {
                    cr: control_reg(number)?,
                    reg,
                },
                0x22 => Op::MovToCr {
                    cr: control_reg(number)?,
                    reg,
                },
                0x21 => Op::MovFromDr { dr: number, reg },
                _ => Op::MovToDr { dr: number, reg },
            }
        }
        0x06 => Op::Clts,
        0x08 => Op::Invd,
        0x09 => Op::Wbinvd,
        0x30 => Op::Wrmsr,
        0x31 => Op::Rdtsc,
        0x32 => Op::Rdmsr,
        0x33 => Op::Rdpmc,
        0x35 => Op::Sysexit,
        0xA2 => Op::Cpuid,
        0x02 | 0x03 => {
            let modrm = cur.next()?;
            let dest = Reg32::from_field(modrm >> 3);
            let src = rm_operand(cur, pfx, modrm)?;
            let width = operand_width(pfx);
            if opcode == 0x02 {
                Op::Lar { dest, src, width }
            } else {
                Op::Lsl { dest, src, width }
            }
        }
        0xA1 => Op::PopSreg {
            sreg: Segment::Fs,
            width: operand_width(pfx),
        },
        0xA9 => Op::PopSreg {
            sreg: Segment::Gs,
            width: operand_width(pfx),
        },
        0xB2 | 0xB4 | 0xB5 => {
            let modrm = cur.next()?;
            if modrm >> 6 == 3 {
                return Err(DecodeError::MemoryOperandRequired);
            }
            let sreg = match opcode {
                0xB2 => Segment::Ss,
                0xB4 => Segment::Fs,
                _ => Segment::Gs,
            };
            load_far_pointer(cur, pfx, modrm, sreg)?
        }
        _ => unknown,
    })
}

/// LDS/LES/LSS/LFS/LGS once the ModRM byte is known to name memory.
fn load_far_pointer(
    cur: &mut Cursor<'_>,
    pfx: &Prefixes,
    modrm: u8,
    sreg: Segment,
) -> Result<Op, DecodeError> {
    Ok(Op::LoadFarPointer {
        sreg,
        dest: Reg32::from_field(modrm >> 3),
        mem: mem_operand(cur, pfx, modrm)?,
        width: operand_width(pfx),
    })
}

fn control_reg(number: u8) -> Result<ControlReg, DecodeError> {
    match number {
        0 => Ok(ControlReg::Cr0),
        2 => Ok(ControlReg::Cr2),
        3 => Ok(ControlReg::Cr3),
        4 => Ok(ControlReg::Cr4),
        _ => Err(DecodeError::UndefinedControlRegister),
    }
}

#[cfg_attr(feature = "image", optimize(size))]
fn rm_operand(cur: &mut Cursor<'_>, pfx: &Prefixes, modrm: u8) -> Result<RmOperand, DecodeError> {
    if modrm >> 6 == 3 {
        Ok(RmOperand::Reg(Reg32::from_field(modrm)))
    } else {
        mem_operand(cur, pfx, modrm).map(RmOperand::Mem)
    }
}

/// The memory operand of a ModRM byte whose mod is not 11 (SDM Vol. 2,
/// tables 2-2 and 2-3: 32-bit addressing forms with ModRM and SIB).
#[cfg_attr(feature = "image", optimize(size))]
fn mem_operand(cur: &mut Cursor<'_>, pfx: &Prefixes, modrm: u8) -> Result<MemOperand, DecodeError> {
    if pfx.address16 {
        return Err(DecodeError::Unsupported16BitAddressing);
    }
    let mode = modrm >> 6;
    let rm = modrm & 7;
    let (base, index, scale) = if rm == 4 {
        let sib = cur.next()?;
        let index = match (sib >> 3) & 7 {
            4 => None,
            i => Some(Reg32::from_field(i)),
        };
        let scale = 1u8 << (sib >> 6);
        // SIB.base = 101 with mod = 00: no base, a disp32 follows.
        let base = if sib & 7 == 5 && mode == 0 {
            None
        } else {
            Some(Reg32::from_field(sib))
        };
        (base, index, scale)
    } else if rm == 5 && mode == 0 {
        // ModRM.rm = 101 with mod = 00: disp32 alone.
        (None, None, 1)
    } else {
        (Some(Reg32::from_field(rm)), None, 1)
    };
    let disp = match mode {
        1 => i32::from(cur.next()? as i8),
        2 => cur.next_u32()? as i32,
        _ if base.is_none() => cur.next_u32()? as i32,
        _ => 0,
    };
    let default_segment = match base {
        Some(Reg32::Esp) | Some(Reg32::Ebp) => Segment::Ss,
        _ => Segment::Ds,
    };
    Ok(MemOperand {
        segment: pfx.segment.unwrap_or(default_segment),
        base,
        index,
        scale,
        disp,
    })
}

/// A software interrupt found by the bytes around a trap: the vector the
/// instruction names and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftwareInterrupt {
    /// 3 for INT3 (CC), 4 for INTO (CE), n for INT n (CD n).
    pub vector: u8,
    /// Its length from where it was found to start: its prefixes included
    /// when read forwards ([`int_n_at`]), from the opcode on when read
    /// backwards ([`software_interrupt_before`]: 1 for CC and CE, 2 for
    /// CD n).
    pub len: u8,
}

/// An `INT n` (CD n) at a fault's EIP (`byte_at(k)`: the byte k bytes on,
/// read in order and no further than the instruction), behind any
/// segment, operand-size, address-size or REP prefixes, which INT n
/// ignores. None for anything else, LOCK included (INT n with LOCK is #UD,
/// raised before any gate is looked at) and an instruction past 15 bytes
/// (#GP(0)). Agrees with [`decode`]'s `Op::Int`.
// Out of line and small in the ROM: on its rare paths only.
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
pub fn int_n_at(mut byte_at: impl FnMut(u32) -> u8) -> Option<SoftwareInterrupt> {
    // At most 13 prefixes leave room for CD n within 15 bytes.
    for k in 0..MAX_INSN_LEN as u32 - 1 {
        match byte_at(k) {
            0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0x67 | 0xF2 | 0xF3 => {}
            0xCD => {
                return Some(SoftwareInterrupt {
                    vector: byte_at(k + 1),
                    len: k as u8 + 2,
                })
            }
            _ => return None,
        }
    }
    None
}

/// The software interrupt that ends where a trap of vector `arrived`
/// returns to, from the bytes before that address (`byte_before(k)`: the
/// byte k bytes before it, asked for k = 1 and only then, if needed, 2).
///
/// A trap reports the address after its instruction, and vectors 3 and 4
/// come only from software (ICEBP, F1, is vector 1): INT3 (CC) or `INT 3`
/// (CD 03), INTO (CE) or `INT 4` (CD 04). The one-byte and two-byte forms
/// end in different bytes (the opcode against the immediate), so the last
/// byte decides, and the byte before it is read only for CD n: a one-byte
/// INT3 first on a page may follow an unmapped one. An `INT n` also
/// arrives as vector 2n mod 256 under QEMU's TCG (docs/traps-and-
/// privilege.md, the n * 16 + 2 error code Xen divides by 8): n = 2 or
/// 0x82 as 4, 0x40 or 0xC0 as 0x80; never as 3 (odd). Prefixes before the
/// opcode are not counted: read backwards, a prefix byte cannot be told
/// from the end of the instruction before (`mov al, 0x66; int3`).
// Out of line and small in the ROM: on its rare paths only.
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
pub fn software_interrupt_before(
    arrived: u8,
    mut byte_before: impl FnMut(u32) -> u8,
) -> Option<SoftwareInterrupt> {
    let last = byte_before(1);
    let one_byte = match arrived {
        3 => 0xCC,
        4 => 0xCE,
        // No other vector has a one-byte form (INT1 is not checked
        // against its gate's DPL and never reaches here).
        _ => 0,
    };
    if one_byte != 0 && last == one_byte {
        return Some(SoftwareInterrupt {
            vector: arrived,
            len: 1,
        });
    }
    let int_n = last == arrived || last.wrapping_mul(2) == arrived;
    (int_n && byte_before(2) == 0xCD).then_some(SoftwareInterrupt {
        vector: last,
        len: 2,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(bytes: &[u8]) -> Insn {
        match decode(bytes) {
            Ok(insn) => insn,
            Err(e) => panic!("{bytes:02x?}: {e:?}"),
        }
    }

    fn mem(
        segment: Segment,
        base: Option<Reg32>,
        index: Option<Reg32>,
        scale: u8,
        disp: i32,
    ) -> MemOperand {
        MemOperand {
            segment,
            base,
            index,
            scale,
            disp,
        }
    }

    /// Real encodings, assembled by hand from the SDM (each cross-checked
    /// with a disassembler), with the expected operation and length. Kept
    /// out of rustfmt so each encoding stays on one line under its mnemonic.
    #[test]
    #[rustfmt::skip]
    fn table_of_real_encodings() {
        use Reg32::*;
        use Segment::*;
        let cases: &[(&[u8], Op, u8)] = &[
            // in al, 0x60
            (&[0xE4, 0x60], Op::In { port: PortOperand::Imm(0x60), width: Width::Byte }, 2),
            // in eax, 0x40
            (&[0xE5, 0x40], Op::In { port: PortOperand::Imm(0x40), width: Width::Dword }, 2),
            // in ax, 0x40
            (&[0x66, 0xE5, 0x40], Op::In { port: PortOperand::Imm(0x40), width: Width::Word }, 3),
            // out 0x80, al
            (&[0xE6, 0x80], Op::Out { port: PortOperand::Imm(0x80), width: Width::Byte }, 2),
            // out 0x43, eax
            (&[0xE7, 0x43], Op::Out { port: PortOperand::Imm(0x43), width: Width::Dword }, 2),
            // in al, dx
            (&[0xEC], Op::In { port: PortOperand::Dx, width: Width::Byte }, 1),
            // in eax, dx
            (&[0xED], Op::In { port: PortOperand::Dx, width: Width::Dword }, 1),
            // in ax, dx
            (&[0x66, 0xED], Op::In { port: PortOperand::Dx, width: Width::Word }, 2),
            // out dx, al
            (&[0xEE], Op::Out { port: PortOperand::Dx, width: Width::Byte }, 1),
            // out dx, ax
            (&[0x66, 0xEF], Op::Out { port: PortOperand::Dx, width: Width::Word }, 2),
            // out dx, eax
            (&[0xEF], Op::Out { port: PortOperand::Dx, width: Width::Dword }, 1),
            // insb
            (&[0x6C], Op::Ins { width: Width::Byte, rep: false }, 1),
            // rep insd
            (&[0xF3, 0x6D], Op::Ins { width: Width::Dword, rep: true }, 2),
            // rep insw
            (&[0x66, 0xF3, 0x6D], Op::Ins { width: Width::Word, rep: true }, 3),
            // outsb
            (&[0x6E], Op::Outs { width: Width::Byte, rep: false, segment: Ds }, 1),
            // rep outs dx, dword ptr fs:[esi]
            (&[0x64, 0xF3, 0x6F], Op::Outs { width: Width::Dword, rep: true, segment: Fs }, 3),
            // repne outsb (F2 acts as REP here)
            (&[0xF2, 0x6E], Op::Outs { width: Width::Byte, rep: true, segment: Ds }, 2),
            // cli / sti / hlt
            (&[0xFA], Op::Cli, 1),
            (&[0xFB], Op::Sti, 1),
            (&[0xF4], Op::Hlt, 1),
            // lgdt [eax]
            (&[0x0F, 0x01, 0x10], Op::Lgdt { mem: mem(Ds, Some(Eax), None, 1, 0), width: Width::Dword }, 3),
            // lgdt [0x00c01234]  (mod 00, rm 101: disp32 alone)
            (&[0x0F, 0x01, 0x15, 0x34, 0x12, 0xC0, 0x00], Op::Lgdt { mem: mem(Ds, None, None, 1, 0x00C0_1234), width: Width::Dword }, 7),
            // o16 lgdt [ebx]  (24-bit base)
            (&[0x66, 0x0F, 0x01, 0x13], Op::Lgdt { mem: mem(Ds, Some(Ebx), None, 1, 0), width: Width::Word }, 4),
            // lidt [esp+4]  (SIB 24: base esp, no index; disp8)
            (&[0x0F, 0x01, 0x5C, 0x24, 0x04], Op::Lidt { mem: mem(Ss, Some(Esp), None, 1, 4), width: Width::Dword }, 5),
            // lidt [ebp-8]
            (&[0x0F, 0x01, 0x5D, 0xF8], Op::Lidt { mem: mem(Ss, Some(Ebp), None, 1, -8), width: Width::Dword }, 4),
            // lidt cs:[ebp-8]
            (&[0x2E, 0x0F, 0x01, 0x5D, 0xF8], Op::Lidt { mem: mem(Cs, Some(Ebp), None, 1, -8), width: Width::Dword }, 5),
            // lgdt [eax+ecx*4+0x12345678]  (mod 10, SIB 88)
            (&[0x0F, 0x01, 0x94, 0x88, 0x78, 0x56, 0x34, 0x12], Op::Lgdt { mem: mem(Ds, Some(Eax), Some(Ecx), 4, 0x1234_5678), width: Width::Dword }, 8),
            // lgdt [esi*8+0x1000]  (mod 00, SIB F5: no base, disp32)
            (&[0x0F, 0x01, 0x14, 0xF5, 0x00, 0x10, 0x00, 0x00], Op::Lgdt { mem: mem(Ds, None, Some(Esi), 8, 0x1000), width: Width::Dword }, 8),
            // lidt [ebp+edi*2+0]  (mod 01, SIB 7D: base ebp needs disp8)
            (&[0x0F, 0x01, 0x5C, 0x7D, 0x00], Op::Lidt { mem: mem(Ss, Some(Ebp), Some(Edi), 2, 0), width: Width::Dword }, 5),
            // lgdt gs:[edx+ebx]  (SIB 1A)
            (&[0x65, 0x0F, 0x01, 0x14, 0x1A], Op::Lgdt { mem: mem(Gs, Some(Edx), Some(Ebx), 1, 0), width: Width::Dword }, 5),
            // sgdt [edi]
            (&[0x0F, 0x01, 0x07], Op::Sgdt(mem(Ds, Some(Edi), None, 1, 0)), 3),
            // sidt [esi+0x10]
            (&[0x0F, 0x01, 0x4E, 0x10], Op::Sidt(mem(Ds, Some(Esi), None, 1, 0x10)), 4),
            // sldt eax
            (&[0x0F, 0x00, 0xC0], Op::Sldt { dest: RmOperand::Reg(Eax), width: Width::Dword }, 3),
            // sldt word [ecx]
            (&[0x0F, 0x00, 0x01], Op::Sldt { dest: RmOperand::Mem(mem(Ds, Some(Ecx), None, 1, 0)), width: Width::Word }, 3),
            // str dx  (o16)
            (&[0x66, 0x0F, 0x00, 0xCA], Op::Str { dest: RmOperand::Reg(Edx), width: Width::Word }, 4),
            // lldt ax
            (&[0x0F, 0x00, 0xD0], Op::Lldt(RmOperand::Reg(Eax)), 3),
            // lldt word [ebx+0x20]
            (&[0x0F, 0x00, 0x53, 0x20], Op::Lldt(RmOperand::Mem(mem(Ds, Some(Ebx), None, 1, 0x20))), 4),
            // ltr ax
            (&[0x0F, 0x00, 0xD8], Op::Ltr(RmOperand::Reg(Eax)), 3),
            // ltr word [esp]
            (&[0x0F, 0x00, 0x1C, 0x24], Op::Ltr(RmOperand::Mem(mem(Ss, Some(Esp), None, 1, 0))), 4),
            // mov cr3, eax
            (&[0x0F, 0x22, 0xD8], Op::MovToCr { cr: ControlReg::Cr3, reg: Eax }, 3),
            // mov eax, cr0
            (&[0x0F, 0x20, 0xC0], Op::MovFromCr { cr: ControlReg::Cr0, reg: Eax }, 3),
            // mov cr0, ecx
            (&[0x0F, 0x22, 0xC1], Op::MovToCr { cr: ControlReg::Cr0, reg: Ecx }, 3),
            // mov edx, cr2
            (&[0x0F, 0x20, 0xD2], Op::MovFromCr { cr: ControlReg::Cr2, reg: Edx }, 3),
            // mov cr4, edi
            (&[0x0F, 0x22, 0xE7], Op::MovToCr { cr: ControlReg::Cr4, reg: Edi }, 3),
            // mov ebx, cr4 written with mod 00 (ignored: still a register)
            (&[0x0F, 0x20, 0x23], Op::MovFromCr { cr: ControlReg::Cr4, reg: Ebx }, 3),
            // mov eax, dr6
            (&[0x0F, 0x21, 0xF0], Op::MovFromDr { dr: 6, reg: Eax }, 3),
            // mov dr7, edx
            (&[0x0F, 0x23, 0xFA], Op::MovToDr { dr: 7, reg: Edx }, 3),
            // mov dr0, esi
            (&[0x0F, 0x23, 0xC6], Op::MovToDr { dr: 0, reg: Esi }, 3),
            // clts / invd / wbinvd
            (&[0x0F, 0x06], Op::Clts, 2),
            (&[0x0F, 0x08], Op::Invd, 2),
            (&[0x0F, 0x09], Op::Wbinvd, 2),
            // invlpg [eax]
            (&[0x0F, 0x01, 0x38], Op::Invlpg(mem(Ds, Some(Eax), None, 1, 0)), 3),
            // invlpg [ebx+0x1000]
            (&[0x0F, 0x01, 0xBB, 0x00, 0x10, 0x00, 0x00], Op::Invlpg(mem(Ds, Some(Ebx), None, 1, 0x1000)), 7),
            // wrmsr / rdtsc / rdmsr / rdpmc / cpuid
            (&[0x0F, 0x30], Op::Wrmsr, 2),
            (&[0x0F, 0x31], Op::Rdtsc, 2),
            (&[0x0F, 0x32], Op::Rdmsr, 2),
            (&[0x0F, 0x33], Op::Rdpmc, 2),
            (&[0x0F, 0x35], Op::Sysexit, 2),
            (&[0x0F, 0xA2], Op::Cpuid, 2),
            // rdtscp / xsetbv
            (&[0x0F, 0x01, 0xF9], Op::Rdtscp, 3),
            (&[0x0F, 0x01, 0xD1], Op::Xsetbv, 3),
            // lmsw ax
            (&[0x0F, 0x01, 0xF0], Op::Lmsw(RmOperand::Reg(Eax)), 3),
            // lmsw word [ecx]
            (&[0x0F, 0x01, 0x31], Op::Lmsw(RmOperand::Mem(mem(Ds, Some(Ecx), None, 1, 0))), 3),
            // smsw eax
            (&[0x0F, 0x01, 0xE0], Op::Smsw { dest: RmOperand::Reg(Eax), width: Width::Dword }, 3),
            // smsw word [edx]
            (&[0x0F, 0x01, 0x22], Op::Smsw { dest: RmOperand::Mem(mem(Ds, Some(Edx), None, 1, 0)), width: Width::Word }, 3),
            // iretd / iret (o16)
            (&[0xCF], Op::Iret { width: Width::Dword }, 1),
            (&[0x66, 0xCF], Op::Iret { width: Width::Word }, 2),
            // pushfd / popfd / popf (o16)
            (&[0x9C], Op::Pushf { width: Width::Dword }, 1),
            (&[0x9D], Op::Popf { width: Width::Dword }, 1),
            (&[0x66, 0x9D], Op::Popf { width: Width::Word }, 2),
            // int 0x80 / int3 / int 3 (the two-byte form is INT n)
            (&[0xCD, 0x80], Op::Int(0x80), 2),
            (&[0xCC], Op::Int3, 1),
            (&[0xCD, 0x03], Op::Int(3), 2),
            // in al, dx preceded by a segment override (ignored)
            (&[0x3E, 0xEC], Op::In { port: PortOperand::Dx, width: Width::Byte }, 2),
            // in al, dx with a 0x67 prefix (no memory operand: harmless)
            (&[0x67, 0xEC], Op::In { port: PortOperand::Dx, width: Width::Byte }, 2),
            // mov eax, [eax] is not ours
            (&[0x8B, 0x00], Op::Unknown { opcode: 0x8B }, 1),
            // ud2
            (&[0x0F, 0x0B], Op::Unknown { opcode: 0x0F0B }, 2),
            // vmcall (0F 01 C1): a register form of group 7 that is not ours
            (&[0x0F, 0x01, 0xC1], Op::Unknown { opcode: 0x0F01 }, 3),
            // 0F 00 /6: undefined (objdump: "(bad)")
            (&[0x0F, 0x00, 0xF0], Op::Unknown { opcode: 0x0F00 }, 3),
        ];
        for (bytes, op, len) in cases {
            let insn = ok(bytes);
            assert_eq!(insn.op, *op, "{bytes:02x?}");
            assert_eq!(insn.len, *len, "{bytes:02x?}");
        }
    }

    /// The segment-loading and far-transfer instructions (ring
    /// compression) and LAR/LSL/VERR/VERW: real encodings, each checked
    /// with `objdump -D -b binary -m i386` (its AT&T text beside it).
    #[test]
    #[rustfmt::skip]
    fn table_of_segment_and_far_transfer_encodings() {
        use Reg32::*;
        use Segment::*;
        use RmOperand::{Mem, Reg};
        let cases: &[(&[u8], Op, u8)] = &[
            // mov %eax,%ds
            (&[0x8E, 0xD8], Op::MovToSreg { sreg: Ds, src: Reg(Eax) }, 2),
            // mov %eax,%ss
            (&[0x8E, 0xD0], Op::MovToSreg { sreg: Ss, src: Reg(Eax) }, 2),
            // mov %eax,%es
            (&[0x8E, 0xC0], Op::MovToSreg { sreg: Es, src: Reg(Eax) }, 2),
            // mov %ebx,%fs
            (&[0x8E, 0xE3], Op::MovToSreg { sreg: Fs, src: Reg(Ebx) }, 2),
            // mov %ecx,%gs
            (&[0x8E, 0xE9], Op::MovToSreg { sreg: Gs, src: Reg(Ecx) }, 2),
            // mov %ax,%ss  (0x66 changes nothing: the selector is 16 bits)
            (&[0x66, 0x8E, 0xD0], Op::MovToSreg { sreg: Ss, src: Reg(Eax) }, 3),
            // mov (%eax),%ss
            (&[0x8E, 0x10], Op::MovToSreg { sreg: Ss, src: Mem(mem(Ds, Some(Eax), None, 1, 0)) }, 2),
            // mov 0x4(%esp),%ss
            (&[0x8E, 0x54, 0x24, 0x04], Op::MovToSreg { sreg: Ss, src: Mem(mem(Ss, Some(Esp), None, 1, 4)) }, 4),
            // mov 0x12345678,%gs
            (&[0x8E, 0x2D, 0x78, 0x56, 0x34, 0x12], Op::MovToSreg { sreg: Gs, src: Mem(mem(Ds, None, None, 1, 0x1234_5678)) }, 6),
            // mov %ss:(%eax),%ds
            (&[0x36, 0x8E, 0x18], Op::MovToSreg { sreg: Ds, src: Mem(mem(Ss, Some(Eax), None, 1, 0)) }, 3),
            // pop %es / pop %ss / pop %ds / pop %fs / pop %gs
            (&[0x07], Op::PopSreg { sreg: Es, width: Width::Dword }, 1),
            (&[0x17], Op::PopSreg { sreg: Ss, width: Width::Dword }, 1),
            (&[0x1F], Op::PopSreg { sreg: Ds, width: Width::Dword }, 1),
            (&[0x0F, 0xA1], Op::PopSreg { sreg: Fs, width: Width::Dword }, 2),
            (&[0x0F, 0xA9], Op::PopSreg { sreg: Gs, width: Width::Dword }, 2),
            // popw %ss / popw %gs
            (&[0x66, 0x17], Op::PopSreg { sreg: Ss, width: Width::Word }, 2),
            (&[0x66, 0x0F, 0xA9], Op::PopSreg { sreg: Gs, width: Width::Word }, 3),
            // lds (%ebx),%eax
            (&[0xC5, 0x03], Op::LoadFarPointer { sreg: Ds, dest: Eax, mem: mem(Ds, Some(Ebx), None, 1, 0), width: Width::Dword }, 2),
            // les 0x8(%ebp),%ecx
            (&[0xC4, 0x4D, 0x08], Op::LoadFarPointer { sreg: Es, dest: Ecx, mem: mem(Ss, Some(Ebp), None, 1, 8), width: Width::Dword }, 3),
            // lss 0xc01000,%esp
            (&[0x0F, 0xB2, 0x25, 0x00, 0x10, 0xC0, 0x00], Op::LoadFarPointer { sreg: Ss, dest: Esp, mem: mem(Ds, None, None, 1, 0x00C0_1000), width: Width::Dword }, 7),
            // lfs 0x8(%esp),%ecx
            (&[0x0F, 0xB4, 0x4C, 0x24, 0x08], Op::LoadFarPointer { sreg: Fs, dest: Ecx, mem: mem(Ss, Some(Esp), None, 1, 8), width: Width::Dword }, 5),
            // lgs (%esi),%esi
            (&[0x0F, 0xB5, 0x36], Op::LoadFarPointer { sreg: Gs, dest: Esi, mem: mem(Ds, Some(Esi), None, 1, 0), width: Width::Dword }, 3),
            // lss (%eax),%sp  (m16:16)
            (&[0x66, 0x0F, 0xB2, 0x20], Op::LoadFarPointer { sreg: Ss, dest: Esp, mem: mem(Ds, Some(Eax), None, 1, 0), width: Width::Word }, 4),
            // lss %es:(%eax),%esp
            (&[0x26, 0x0F, 0xB2, 0x20], Op::LoadFarPointer { sreg: Ss, dest: Esp, mem: mem(Es, Some(Eax), None, 1, 0), width: Width::Dword }, 4),
            // vzeroupper (C5 with mod 11 is VEX): not LDS
            (&[0xC5, 0xF8, 0x77], Op::Unknown { opcode: 0xC5 }, 2),
            // vbroadcastss (%eax),%xmm0 (C4 with mod 11 is VEX): not LES
            (&[0xC4, 0xE2, 0x79, 0x18, 0x00], Op::Unknown { opcode: 0xC4 }, 2),
            // lret / lret $0x8
            (&[0xCB], Op::RetFar { width: Width::Dword, release: 0 }, 1),
            (&[0xCA, 0x08, 0x00], Op::RetFar { width: Width::Dword, release: 8 }, 3),
            // lretw / lretw $0x4
            (&[0x66, 0xCB], Op::RetFar { width: Width::Word, release: 0 }, 2),
            (&[0x66, 0xCA, 0x04, 0x00], Op::RetFar { width: Width::Word, release: 4 }, 4),
            // ljmp $0x60,$0x12345678
            (&[0xEA, 0x78, 0x56, 0x34, 0x12, 0x60, 0x00], Op::JmpFar { target: FarTarget::Direct { selector: 0x60, offset: 0x1234_5678 }, width: Width::Dword }, 7),
            // ljmpw $0x10,$0x1234
            (&[0x66, 0xEA, 0x34, 0x12, 0x10, 0x00], Op::JmpFar { target: FarTarget::Direct { selector: 0x10, offset: 0x1234 }, width: Width::Word }, 6),
            // lcall $0x60,$0xc01000
            (&[0x9A, 0x00, 0x10, 0xC0, 0x00, 0x60, 0x00], Op::CallFar { target: FarTarget::Direct { selector: 0x60, offset: 0x00C0_1000 }, width: Width::Dword }, 7),
            // lcallw $0x8,$0x1234
            (&[0x66, 0x9A, 0x34, 0x12, 0x08, 0x00], Op::CallFar { target: FarTarget::Direct { selector: 0x08, offset: 0x1234 }, width: Width::Word }, 6),
            // ljmp *0xc02000
            (&[0xFF, 0x2D, 0x00, 0x20, 0xC0, 0x00], Op::JmpFar { target: FarTarget::Indirect(mem(Ds, None, None, 1, 0x00C0_2000)), width: Width::Dword }, 6),
            // ljmp *0x0(%ebp)
            (&[0xFF, 0x6D, 0x00], Op::JmpFar { target: FarTarget::Indirect(mem(Ss, Some(Ebp), None, 1, 0)), width: Width::Dword }, 3),
            // ljmpw *(%eax)
            (&[0x66, 0xFF, 0x28], Op::JmpFar { target: FarTarget::Indirect(mem(Ds, Some(Eax), None, 1, 0)), width: Width::Word }, 3),
            // lcall *(%esp)
            (&[0xFF, 0x1C, 0x24], Op::CallFar { target: FarTarget::Indirect(mem(Ss, Some(Esp), None, 1, 0)), width: Width::Dword }, 3),
            // lcall *0x10(%esi)
            (&[0xFF, 0x5E, 0x10], Op::CallFar { target: FarTarget::Indirect(mem(Ds, Some(Esi), None, 1, 0x10)), width: Width::Dword }, 3),
            // lcallw *(%ebx)
            (&[0x66, 0xFF, 0x1B], Op::CallFar { target: FarTarget::Indirect(mem(Ds, Some(Ebx), None, 1, 0)), width: Width::Word }, 3),
            // jmp *%eax / call *%eax / push (%eax): the rest of group 5 is not ours
            (&[0xFF, 0xE0], Op::Unknown { opcode: 0xFF }, 2),
            (&[0xFF, 0xD0], Op::Unknown { opcode: 0xFF }, 2),
            (&[0xFF, 0x30], Op::Unknown { opcode: 0xFF }, 2),
            // iret / iretw
            (&[0xCF], Op::Iret { width: Width::Dword }, 1),
            (&[0x66, 0xCF], Op::Iret { width: Width::Word }, 2),
            // lar %ecx,%eax
            (&[0x0F, 0x02, 0xC1], Op::Lar { dest: Eax, src: Reg(Ecx), width: Width::Dword }, 3),
            // lar (%ebx),%eax
            (&[0x0F, 0x02, 0x03], Op::Lar { dest: Eax, src: Mem(mem(Ds, Some(Ebx), None, 1, 0)), width: Width::Dword }, 3),
            // lar %ax,%bx
            (&[0x66, 0x0F, 0x02, 0xD8], Op::Lar { dest: Ebx, src: Reg(Eax), width: Width::Word }, 4),
            // lsl %eax,%ecx
            (&[0x0F, 0x03, 0xC8], Op::Lsl { dest: Ecx, src: Reg(Eax), width: Width::Dword }, 3),
            // lsl 0x4(%esp),%eax
            (&[0x0F, 0x03, 0x44, 0x24, 0x04], Op::Lsl { dest: Eax, src: Mem(mem(Ss, Some(Esp), None, 1, 4)), width: Width::Dword }, 5),
            // verr %ax / verr (%eax)
            (&[0x0F, 0x00, 0xE0], Op::Verr(Reg(Eax)), 3),
            (&[0x0F, 0x00, 0x20], Op::Verr(Mem(mem(Ds, Some(Eax), None, 1, 0))), 3),
            // verw %bx / verw 0x4(%esi)
            (&[0x0F, 0x00, 0xEB], Op::Verw(Reg(Ebx)), 3),
            (&[0x0F, 0x00, 0x6E, 0x04], Op::Verw(Mem(mem(Ds, Some(Esi), None, 1, 4))), 4),
        ];
        for (bytes, op, len) in cases {
            let insn = ok(bytes);
            assert_eq!(insn.op, *op, "{bytes:02x?}");
            assert_eq!(insn.len, *len, "{bytes:02x?}");
        }
    }

    #[test]
    fn segment_and_far_transfer_errors() {
        // mov %eax,%cs: #UD natively
        assert_eq!(
            decode(&[0x8E, 0xC8]),
            Err(DecodeError::UndefinedSegmentRegister)
        );
        // mov %eax,%? (Sreg 6, 7): reserved
        assert_eq!(
            decode(&[0x8E, 0xF0]),
            Err(DecodeError::UndefinedSegmentRegister)
        );
        assert_eq!(
            decode(&[0x8E, 0xF8]),
            Err(DecodeError::UndefinedSegmentRegister)
        );
        // lss with a register operand (objdump: "(bad)")
        assert_eq!(
            decode(&[0x0F, 0xB2, 0xC0]),
            Err(DecodeError::MemoryOperandRequired)
        );
        assert_eq!(
            decode(&[0x0F, 0xB4, 0xC0]),
            Err(DecodeError::MemoryOperandRequired)
        );
        assert_eq!(
            decode(&[0x0F, 0xB5, 0xC0]),
            Err(DecodeError::MemoryOperandRequired)
        );
        // ljmp/lcall through a register (FF E8, FF D8; objdump: "(bad)")
        assert_eq!(
            decode(&[0xFF, 0xE8]),
            Err(DecodeError::MemoryOperandRequired)
        );
        assert_eq!(
            decode(&[0xFF, 0xD8]),
            Err(DecodeError::MemoryOperandRequired)
        );
        // lock pop %ss / lock lss (%eax),%esp / lock lret
        assert_eq!(decode(&[0xF0, 0x17]), Err(DecodeError::LockPrefix));
        assert_eq!(
            decode(&[0xF0, 0x0F, 0xB2, 0x20]),
            Err(DecodeError::LockPrefix)
        );
        assert_eq!(decode(&[0xF0, 0xCB]), Err(DecodeError::LockPrefix));
        // addr16 lds (%bp,%di),%eax; addr16 mov (%bx,%si),%ss
        assert_eq!(
            decode(&[0x67, 0xC5, 0x03]),
            Err(DecodeError::Unsupported16BitAddressing)
        );
        assert_eq!(
            decode(&[0x67, 0x8E, 0x10]),
            Err(DecodeError::Unsupported16BitAddressing)
        );
        // addr16 mov %ax,%ss: no memory, so fine
        assert_eq!(
            ok(&[0x67, 0x8E, 0xD0]).op,
            Op::MovToSreg {
                sreg: Segment::Ss,
                src: RmOperand::Reg(Reg32::Eax)
            }
        );
        // Truncated immediates: ljmp missing the selector's high byte,
        // lretw $imm missing its high byte, ljmpw missing the selector.
        assert_eq!(
            decode(&[0xEA, 0x78, 0x56, 0x34, 0x12, 0x60]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode(&[0x66, 0xCA, 0x04]), Err(DecodeError::Truncated));
        assert_eq!(
            decode(&[0x66, 0xEA, 0x34, 0x12]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode(&[0x0F, 0xB2]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0xC4]), Err(DecodeError::Truncated));
    }

    #[test]
    fn segment_fields_name_the_registers() {
        let expected = [
            Some(Segment::Es),
            Some(Segment::Cs),
            Some(Segment::Ss),
            Some(Segment::Ds),
            Some(Segment::Fs),
            Some(Segment::Gs),
            None,
            None,
        ];
        for (field, sreg) in (0u8..).zip(expected) {
            assert_eq!(Segment::from_field(field), sreg);
            assert_eq!(Segment::from_field(field | 0xF8), sreg);
        }
    }

    #[test]
    fn effective_addresses_evaluate_against_the_registers() {
        let regs = Regs {
            eax: 0x1000,
            ecx: 3,
            edx: 0x2000_0000,
            ebx: 0x10,
            esp: 0xC000_8000,
            ebp: 0xC000_9000,
            esi: 0x40,
            edi: 0xFFFF_FFF0,
        };
        // lgdt [eax+ecx*4+0x12345678]
        let insn = ok(&[0x0F, 0x01, 0x94, 0x88, 0x78, 0x56, 0x34, 0x12]);
        let Op::Lgdt { mem, .. } = insn.op else {
            panic!()
        };
        assert_eq!(mem.offset(&regs), 0x1000 + 12 + 0x1234_5678);
        // lidt [ebp-8]
        let Op::Lidt { mem, .. } = ok(&[0x0F, 0x01, 0x5D, 0xF8]).op else {
            panic!()
        };
        assert_eq!(mem.offset(&regs), 0xC000_8FF8);
        // lgdt [esi*8+0x1000]
        let Op::Lgdt { mem, .. } = ok(&[0x0F, 0x01, 0x14, 0xF5, 0x00, 0x10, 0x00, 0x00]).op else {
            panic!()
        };
        assert_eq!(mem.offset(&regs), 0x1200);
        // invlpg [edi+0x20]: wraps at 4 GiB
        let Op::Invlpg(mem) = ok(&[0x0F, 0x01, 0x7F, 0x20]).op else {
            panic!()
        };
        assert_eq!(mem.offset(&regs), 0x10);
        // in al, dx takes the low 16 bits of EDX
        let Op::In { port, .. } = ok(&[0xEC]).op else {
            panic!()
        };
        let regs = Regs {
            edx: 0x1234_03F8,
            ..regs
        };
        assert_eq!(port.port(&regs), 0x3F8);
    }

    #[test]
    fn sized_register_writes_keep_the_upper_bits() {
        let mut regs = Regs {
            eax: 0x1122_3344,
            ..Regs::default()
        };
        regs.set_sized(Reg32::Eax, Width::Byte, 0xFFAB);
        assert_eq!(regs.eax, 0x1122_33AB);
        regs.set_sized(Reg32::Eax, Width::Word, 0xBEEF);
        assert_eq!(regs.eax, 0x1122_BEEF);
        regs.set_sized(Reg32::Eax, Width::Dword, 0xCAFE_F00D);
        assert_eq!(regs.eax, 0xCAFE_F00D);
        assert_eq!(regs.get_sized(Reg32::Eax, Width::Word), 0xF00D);
        for i in 0..8 {
            let r = Reg32::from_field(i);
            assert_eq!(r as u8, i);
            regs.set(r, u32::from(i) * 0x0101_0101);
            assert_eq!(regs.get(r), u32::from(i) * 0x0101_0101);
        }
    }

    #[test]
    fn errors() {
        // lock cli
        assert_eq!(decode(&[0xF0, 0xFA]), Err(DecodeError::LockPrefix));
        // lock lgdt [eax]
        assert_eq!(
            decode(&[0xF0, 0x0F, 0x01, 0x10]),
            Err(DecodeError::LockPrefix)
        );
        // lock mov cr0, eax (AMD's alternative CR8 encoding; #UD here)
        assert_eq!(
            decode(&[0xF0, 0x0F, 0x22, 0xC0]),
            Err(DecodeError::LockPrefix)
        );
        // lock add [eax], eax is not ours: Unknown, not an error
        assert_eq!(
            decode(&[0xF0, 0x01, 0x00]).map(|i| i.op),
            Ok(Op::Unknown { opcode: 0x01 })
        );
        // mov cr1, eax / mov eax, cr5 / mov cr7, eax
        assert_eq!(
            decode(&[0x0F, 0x22, 0xC8]),
            Err(DecodeError::UndefinedControlRegister)
        );
        assert_eq!(
            decode(&[0x0F, 0x20, 0xE8]),
            Err(DecodeError::UndefinedControlRegister)
        );
        assert_eq!(
            decode(&[0x0F, 0x22, 0xF8]),
            Err(DecodeError::UndefinedControlRegister)
        );
        // addr16 lgdt [bx+si]
        assert_eq!(
            decode(&[0x67, 0x0F, 0x01, 0x10]),
            Err(DecodeError::Unsupported16BitAddressing)
        );
        // addr16 rep insb
        assert_eq!(
            decode(&[0x67, 0xF3, 0x6C]),
            Err(DecodeError::Unsupported16BitAddressing)
        );
        // addr16 lldt ax: register operand, no addressing involved
        assert_eq!(
            ok(&[0x67, 0x0F, 0x00, 0xD0]).op,
            Op::Lldt(RmOperand::Reg(Reg32::Eax))
        );
        // Truncations.
        assert_eq!(decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0x66]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0xE4]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0x0F]), Err(DecodeError::Truncated));
        assert_eq!(
            decode(&[0x0F, 0x01, 0x15, 0x34, 0x12, 0xC0]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode(&[0x0F, 0x01, 0x54]), Err(DecodeError::Truncated));
        // 14 prefixes + in al, dx = 15 bytes: fine; 15 prefixes: too long.
        let mut bytes = [0x3Eu8; 16];
        bytes[14] = 0xEC;
        assert_eq!(ok(&bytes).len, 15);
        bytes[14] = 0x3E;
        bytes[15] = 0xEC;
        assert_eq!(decode(&bytes), Err(DecodeError::TooLong));
        // 13 prefixes + lgdt [0x...] = 20 bytes: too long inside the operand.
        let mut bytes = [0x66u8; 20];
        bytes[13..20].copy_from_slice(&[0x0F, 0x01, 0x15, 0, 0, 0, 0]);
        assert_eq!(decode(&bytes), Err(DecodeError::TooLong));
    }

    #[test]
    fn last_segment_override_wins() {
        // es cs gs outsb
        assert_eq!(
            ok(&[0x26, 0x2E, 0x65, 0x6E]).op,
            Op::Outs {
                width: Width::Byte,
                rep: false,
                segment: Segment::Gs
            }
        );
        // ss ds lgdt [esp]: DS overrides the SS default of an ESP base
        let Op::Lgdt { mem, .. } = ok(&[0x36, 0x3E, 0x0F, 0x01, 0x14, 0x24]).op else {
            panic!()
        };
        assert_eq!(mem.segment, Segment::Ds);
    }

    /// Length of a ModRM memory form, computed straight from the SDM's
    /// tables: the independent model the decoder is checked against.
    fn model_modrm_len(modrm: u8, sib: u8) -> usize {
        let (mode, rm) = (modrm >> 6, modrm & 7);
        let has_sib = rm == 4;
        let disp = match mode {
            1 => 1,
            2 => 4,
            _ if rm == 5 || (has_sib && sib & 7 == 5) => 4,
            _ => 0,
        };
        1 + usize::from(has_sib) + disp
    }

    /// The address the SDM's tables give for a ModRM memory form.
    fn model_address(modrm: u8, sib: u8, disp_bytes: &[u8], regs: &Regs) -> u32 {
        let (mode, rm) = (modrm >> 6, modrm & 7);
        let reg = |n: u8| regs.get(Reg32::from_field(n));
        let disp = match mode {
            1 => disp_bytes[0] as i8 as i32 as u32,
            _ => u32::from_le_bytes([disp_bytes[0], disp_bytes[1], disp_bytes[2], disp_bytes[3]]),
        };
        let mut addr: u64 = 0;
        if rm == 4 {
            let (scale, index, base) = (sib >> 6, (sib >> 3) & 7, sib & 7);
            if index != 4 {
                addr += u64::from(reg(index)) << scale;
            }
            if !(base == 5 && mode == 0) {
                addr += u64::from(reg(base));
            }
        } else if !(rm == 5 && mode == 0) {
            addr += u64::from(reg(rm));
        }
        if mode != 0 || rm == 5 || (rm == 4 && sib & 7 == 5) {
            addr += u64::from(disp);
        }
        addr as u32
    }

    /// The opcodes of the segment-loading and far-transfer instructions and
    /// of LAR, LSL, VERR, VERW (0F 00 is group 6 with SLDT...LTR).
    const SEGMENT_OPCODES: &[&[u8]] = &[
        &[0x8E],
        &[0x07],
        &[0x17],
        &[0x1F],
        &[0x0F, 0xA1],
        &[0x0F, 0xA9],
        &[0xC4],
        &[0xC5],
        &[0x0F, 0xB2],
        &[0x0F, 0xB4],
        &[0x0F, 0xB5],
        &[0xCA],
        &[0xCB],
        &[0xEA],
        &[0x9A],
        &[0xFF],
        &[0xCF],
        &[0x0F, 0x02],
        &[0x0F, 0x03],
        &[0x0F, 0x00],
    ];

    /// Every opcode (or opcode pair) the decoder gives a meaning to.
    const KNOWN_OPCODES: &[&[u8]] = &[
        &[0x0F, 0x01],
        &[0x0F, 0x00],
        &[0x0F, 0x20],
        &[0x0F, 0x22],
        &[0xE4],
        &[0x6D],
        &[0xCD],
        &[0x8E],
        &[0x07],
        &[0x17],
        &[0x1F],
        &[0x0F, 0xA1],
        &[0x0F, 0xA9],
        &[0xC4],
        &[0xC5],
        &[0x0F, 0xB2],
        &[0x0F, 0xB4],
        &[0x0F, 0xB5],
        &[0xCA],
        &[0xCB],
        &[0xEA],
        &[0x9A],
        &[0xFF],
        &[0xCF],
        &[0x0F, 0x02],
        &[0x0F, 0x03],
    ];

    fn arb_regs() -> impl Strategy<Value = Regs> {
        proptest::array::uniform8(any::<u32>()).prop_map(|r| Regs {
            eax: r[0],
            ecx: r[1],
            edx: r[2],
            ebx: r[3],
            esp: r[4],
            ebp: r[5],
            esi: r[6],
            edi: r[7],
        })
    }

    /// `int_n_at` over a byte slice, and how far it read.
    fn int_n(bytes: &[u8]) -> (Option<SoftwareInterrupt>, usize) {
        let mut furthest = 0;
        let found = int_n_at(|k| {
            furthest = furthest.max(k as usize + 1);
            bytes[k as usize]
        });
        (found, furthest)
    }

    #[test]
    fn int_n_at_skips_prefixes() {
        let int = |vector, len| Some(SoftwareInterrupt { vector, len });
        assert_eq!(int_n(&[0xCD, 0x81]).0, int(0x81, 2));
        assert_eq!(int_n(&[0x3E, 0xCD, 0x81]).0, int(0x81, 3));
        assert_eq!(int_n(&[0x66, 0xF3, 0x2E, 0xCD, 0x03]).0, int(3, 5));
        assert_eq!(int_n(&[0xF0, 0xCD, 0x81]).0, None);
        assert_eq!(int_n(&[0xCC, 0xCD]).0, None);
        assert_eq!(int_n(&[0x3E, 0xCE, 0xCD]).0, None);
        let mut longest = vec![0x3E; 13];
        longest.extend([0xCD, 0x81]);
        assert_eq!(int_n(&longest), (int(0x81, 15), 15));
        let mut too_long = vec![0x3E; 14];
        too_long.extend([0xCD, 0x81]);
        assert_eq!(int_n(&too_long), (None, 14));
    }

    /// What ends before a trap's return address, from the two bytes there
    /// (`[2 before, 1 before]`), and which of them were read.
    fn ending(arrived: u8, bytes: [u8; 2]) -> (Option<SoftwareInterrupt>, bool) {
        let mut read_second = false;
        let found = software_interrupt_before(arrived, |k| {
            read_second |= k == 2;
            bytes[2 - k as usize]
        });
        (found, read_second)
    }

    #[test]
    fn software_interrupt_before_tells_the_forms_apart() {
        let int = |vector, len| Some(SoftwareInterrupt { vector, len });
        #[rustfmt::skip]
        let cases: &[(u8, [u8; 2], Option<SoftwareInterrupt>)] = &[
            // INT3 and INT 3: both vector 3, told apart by the last byte.
            (3, [0x90, 0xCC], int(3, 1)),
            (3, [0xCD, 0x03], int(3, 2)),
            // `mov al, 0xCD; int3`: the CD is the previous instruction's.
            (3, [0xCD, 0xCC], int(3, 1)),
            // A prefix before INT3 is not counted (it cannot be told from
            // an immediate 0x66 ending the instruction before).
            (3, [0x66, 0xCC], int(3, 1)),
            (4, [0x04, 0xCE], int(4, 1)),
            (4, [0xCD, 0x04], int(4, 2)),
            (0x80, [0xCD, 0x80], int(0x80, 2)),
            // QEMU's INT n error code, Xen's vector 2n mod 256.
            (4, [0xCD, 0x02], int(2, 2)),
            (4, [0xCD, 0x82], int(0x82, 2)),
            (0x80, [0xCD, 0x40], int(0x40, 2)),
            (0x80, [0xCD, 0xC0], int(0xC0, 2)),
            // Nothing that raises the vector ends there.
            (3, [0x90, 0x03], None),
            (3, [0xCD, 0x01], None),
            (3, [0x90, 0xCE], None),
            (4, [0x90, 0xCC], None),
            (4, [0xCD, 0x03], None),
            (0x80, [0x90, 0xCE], None),
            (0x80, [0x90, 0xCC], None),
            (0x80, [0xCC, 0x80], None),
        ];
        for &(arrived, bytes, want) in cases {
            assert_eq!(
                ending(arrived, bytes).0,
                want,
                "vector {arrived:#x}, bytes {bytes:02x?}"
            );
        }
    }

    /// Every pair of bytes, for each vector that reaches a stub from
    /// software: a result is an encoding that raises the vector and ends
    /// in those bytes, there is one whenever such an encoding does, and the
    /// byte two before is read only when the last is no one-byte form.
    #[test]
    fn software_interrupt_before_matches_the_encodings() {
        for arrived in [3u8, 4, 0x80] {
            let one_byte = match arrived {
                3 => Some(0xCC),
                4 => Some(0xCE),
                _ => None,
            };
            for b in 0..=0xFFFFu16 {
                let bytes = [(b >> 8) as u8, b as u8];
                let (found, read_second) = ending(arrived, bytes);
                let one = one_byte == Some(bytes[1]);
                let raises = |n: u8| n == arrived || n.wrapping_mul(2) == arrived;
                let two = bytes[0] == 0xCD && raises(bytes[1]);
                let want = if one {
                    Some(SoftwareInterrupt {
                        vector: arrived,
                        len: 1,
                    })
                } else if two {
                    Some(SoftwareInterrupt {
                        vector: bytes[1],
                        len: 2,
                    })
                } else {
                    None
                };
                assert_eq!(found, want, "vector {arrived:#x}, bytes {bytes:02x?}");
                assert!(
                    !(one && read_second),
                    "read before a one-byte form: {bytes:02x?}"
                );
                // Both forms can never fit the same bytes.
                assert!(!(one && two), "{bytes:02x?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

        /// No input panics; an Ok length fits the input and the limit;
        /// the decoder reads exactly `len` bytes (the same answer from the
        /// first `len` bytes alone, Truncated from one fewer).
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(insn) = decode(&bytes) {
                let len = usize::from(insn.len);
                prop_assert!(len >= 1);
                prop_assert!(len <= MAX_INSN_LEN);
                prop_assert!(len <= bytes.len());
                if !matches!(insn.op, Op::Unknown { .. }) {
                    prop_assert_eq!(decode(&bytes[..len]), Ok(insn));
                    prop_assert_eq!(decode(&bytes[..len - 1]), Err(DecodeError::Truncated));
                }
            }
        }

        /// `int_n_at` finds exactly the INT n that `decode` names, with
        /// its length, behind any prefixes (LOCK and too long: neither),
        /// and reads no byte past the instruction.
        #[test]
        fn int_n_at_agrees_with_decode(
            prefixes in proptest::collection::vec(prop_oneof![
                Just(0x26u8), Just(0x2E), Just(0x36), Just(0x3E), Just(0x64), Just(0x65),
                Just(0x66), Just(0x67), Just(0xF0), Just(0xF2), Just(0xF3),
            ], 0..16),
            opcode in prop_oneof![Just(0xCDu8), Just(0xCC), Just(0xCE), any::<u8>()],
            tail in proptest::collection::vec(any::<u8>(), 16),
        ) {
            let mut bytes = prefixes.clone();
            bytes.push(opcode);
            bytes.extend(&tail);
            let (found, read) = int_n(&bytes);
            let want = match decode(&bytes) {
                Ok(Insn { op: Op::Int(n), len }) => Some(SoftwareInterrupt { vector: n, len }),
                _ => None,
            };
            prop_assert_eq!(found, want);
            if let Some(insn) = found {
                prop_assert_eq!(read, usize::from(insn.len));
            }
        }

        /// The same, biased towards the opcodes the decoder knows, behind
        /// random prefixes.
        #[test]
        fn known_opcodes_behind_prefixes(
            prefixes in proptest::collection::vec(prop_oneof![
                Just(0x26u8), Just(0x2E), Just(0x36), Just(0x3E), Just(0x64),
                Just(0x65), Just(0x66), Just(0x67), Just(0xF2), Just(0xF3), Just(0xF0)], 0..16),
            opcode in proptest::sample::select(KNOWN_OPCODES),
            tail in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            let mut bytes = prefixes.clone();
            bytes.extend_from_slice(opcode);
            bytes.extend_from_slice(&tail);
            match decode(&bytes) {
                Ok(insn) => {
                    let len = usize::from(insn.len);
                    prop_assert!(len <= MAX_INSN_LEN && len <= bytes.len());
                    let unknown = matches!(insn.op, Op::Unknown { .. });
                    prop_assert!(!prefixes.contains(&0xF0) || unknown);
                    prop_assert_eq!(decode(&bytes[..len]), Ok(insn));
                }
                // The 16th byte would be needed: natively #GP, whatever follows.
                Err(DecodeError::TooLong) => prop_assert!(bytes.len() >= MAX_INSN_LEN),
                Err(DecodeError::LockPrefix) => prop_assert!(prefixes.contains(&0xF0)),
                Err(DecodeError::Unsupported16BitAddressing) => prop_assert!(prefixes.contains(&0x67)),
                Err(DecodeError::UndefinedSegmentRegister) => prop_assert_eq!(opcode, &[0x8E][..]),
                Err(DecodeError::MemoryOperandRequired) => {
                    prop_assert!([&[0x0F, 0xB2][..], &[0x0F, 0xB4], &[0x0F, 0xB5], &[0xFF]].contains(&opcode));
                }
                Err(DecodeError::UndefinedControlRegister) => {
                    prop_assert!([&[0x0F, 0x20][..], &[0x0F, 0x22]].contains(&opcode));
                }
                Err(DecodeError::Truncated) => {}
            }
        }

        /// The segment-loading and far-transfer instructions, LAR, LSL,
        /// VERR and VERW behind up to 7 prefixes (so that even the longest
        /// form fits in 15 bytes), with random ModRM, SIB, displacement and
        /// immediate bytes: operation, operands and length as the SDM's
        /// opcode map and ModRM tables give them, computed independently
        /// of the decoder; and exactly `len` bytes read.
        #[test]
        fn segment_and_far_transfers_match_the_model(
            prefixes in proptest::collection::vec(proptest::sample::select(
                &[0x26u8, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0xF2, 0xF3][..]), 0..8),
            opcode in proptest::sample::select(SEGMENT_OPCODES),
            tail: [u8; 12],
            regs in arb_regs(),
        ) {
            let mut bytes = prefixes.clone();
            bytes.extend_from_slice(opcode);
            bytes.extend_from_slice(&tail);
            let at = prefixes.len() + opcode.len();
            let width = if prefixes.contains(&0x66) { Width::Word } else { Width::Dword };
            let overrides = [0x26u8, 0x2E, 0x36, 0x3E, 0x64, 0x65];
            let sregs = [Segment::Es, Segment::Cs, Segment::Ss, Segment::Ds, Segment::Fs, Segment::Gs];
            let segment_override = prefixes.iter().rev()
                .find_map(|p| overrides.iter().position(|o| o == p).map(|i| sregs[i]));

            let (modrm, sib) = (tail[0], tail[1]);
            let (mode, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
            let rm_len = if mode == 3 { 1 } else { model_modrm_len(modrm, sib) };
            let disp_at = 1 + usize::from(rm == 4);
            let expected_address = model_address(modrm, sib, &tail[disp_at..], &regs);
            let base = if rm == 4 {
                (!(sib & 7 == 5 && mode == 0)).then_some(sib & 7)
            } else {
                (!(rm == 5 && mode == 0)).then_some(rm)
            };
            let default_segment =
                if matches!(base, Some(4) | Some(5)) { Segment::Ss } else { Segment::Ds };
            let expected_segment = segment_override.unwrap_or(default_segment);

            let result = decode(&bytes);
            // The memory operand the decoder found, checked against the
            // model, then used to build the expected operation.
            let decoded_mem = match result.map(|insn| insn.op) {
                Ok(Op::MovToSreg { src: RmOperand::Mem(m), .. }
                    | Op::LoadFarPointer { mem: m, .. }
                    | Op::JmpFar { target: FarTarget::Indirect(m), .. }
                    | Op::CallFar { target: FarTarget::Indirect(m), .. }
                    | Op::Lar { src: RmOperand::Mem(m), .. }
                    | Op::Lsl { src: RmOperand::Mem(m), .. }
                    | Op::Verr(RmOperand::Mem(m))
                    | Op::Verw(RmOperand::Mem(m))) => {
                    prop_assert!(mode != 3);
                    prop_assert_eq!(m.offset(&regs), expected_address);
                    prop_assert_eq!(m.segment, expected_segment);
                    Some(m)
                }
                _ => None,
            };
            let mem = decoded_mem.unwrap_or(MemOperand {
                segment: Segment::Ds, base: None, index: None, scale: 0, disp: 0,
            });
            let src = if mode == 3 { RmOperand::Reg(Reg32::from_field(rm)) } else { RmOperand::Mem(mem) };
            let dest = Reg32::from_field(reg);
            let le16 = |i: usize| u16::from_le_bytes([tail[i], tail[i + 1]]);
            let le32 = |i: usize| u32::from_le_bytes([tail[i], tail[i + 1], tail[i + 2], tail[i + 3]]);
            let unknown = |opcode: u16, len: usize| Ok((Op::Unknown { opcode }, len));
            let expected: Result<(Op, usize), DecodeError> = match opcode {
                [0x8E] => match reg {
                    1 | 6 | 7 => Err(DecodeError::UndefinedSegmentRegister),
                    _ => Ok((Op::MovToSreg { sreg: sregs[usize::from(reg)], src }, at + rm_len)),
                },
                [0x07] => Ok((Op::PopSreg { sreg: Segment::Es, width }, at)),
                [0x17] => Ok((Op::PopSreg { sreg: Segment::Ss, width }, at)),
                [0x1F] => Ok((Op::PopSreg { sreg: Segment::Ds, width }, at)),
                [0x0F, 0xA1] => Ok((Op::PopSreg { sreg: Segment::Fs, width }, at)),
                [0x0F, 0xA9] => Ok((Op::PopSreg { sreg: Segment::Gs, width }, at)),
                [op @ (0xC4 | 0xC5)] if mode == 3 => unknown(u16::from(*op), at + 1),
                [0x0F, 0xB2 | 0xB4 | 0xB5] if mode == 3 => Err(DecodeError::MemoryOperandRequired),
                [0xC4] | [0xC5] | [0x0F, 0xB2] | [0x0F, 0xB4] | [0x0F, 0xB5] => {
                    let sreg = match opcode {
                        [0xC4] => Segment::Es,
                        [0xC5] => Segment::Ds,
                        [0x0F, 0xB2] => Segment::Ss,
                        [0x0F, 0xB4] => Segment::Fs,
                        _ => Segment::Gs,
                    };
                    Ok((Op::LoadFarPointer { sreg, dest, mem, width }, at + rm_len))
                }
                [0xCA] => Ok((Op::RetFar { width, release: le16(0) }, at + 2)),
                [0xCB] => Ok((Op::RetFar { width, release: 0 }, at)),
                [op @ (0xEA | 0x9A)] => {
                    let (offset, selector_at) = match width {
                        Width::Word => (u32::from(le16(0)), 2),
                        _ => (le32(0), 4),
                    };
                    let target = FarTarget::Direct { selector: le16(selector_at), offset };
                    let op = if *op == 0xEA { Op::JmpFar { target, width } } else { Op::CallFar { target, width } };
                    Ok((op, at + selector_at + 2))
                }
                [0xFF] => match reg {
                    3 | 5 if mode == 3 => Err(DecodeError::MemoryOperandRequired),
                    3 => Ok((Op::CallFar { target: FarTarget::Indirect(mem), width }, at + rm_len)),
                    5 => Ok((Op::JmpFar { target: FarTarget::Indirect(mem), width }, at + rm_len)),
                    _ => unknown(0xFF, at + 1),
                },
                [0xCF] => Ok((Op::Iret { width }, at)),
                [0x0F, 0x02] => Ok((Op::Lar { dest, src, width }, at + rm_len)),
                [0x0F, 0x03] => Ok((Op::Lsl { dest, src, width }, at + rm_len)),
                _ => match reg {
                    // 0F 00: the /0-/3 forms are covered by the first table.
                    4 => Ok((Op::Verr(src), at + rm_len)),
                    5 => Ok((Op::Verw(src), at + rm_len)),
                    0..=3 => return Ok(()),
                    _ => unknown(0x0F00, at + 1),
                },
            };
            prop_assert_eq!(result.map(|insn| (insn.op, usize::from(insn.len))), expected);
            if let Ok(insn) = result {
                let len = usize::from(insn.len);
                prop_assert!(len <= MAX_INSN_LEN);
                if !matches!(insn.op, Op::Unknown { .. }) {
                    prop_assert_eq!(decode(&bytes[..len]), Ok(insn));
                    prop_assert_eq!(decode(&bytes[..len - 1]), Err(DecodeError::Truncated));
                }
            }
        }

        /// Every ModRM memory form of LGDT has the length and address the
        /// SDM's tables give.
        #[test]
        fn memory_forms_match_the_model(
            mode in 0u8..3, reg_rm in 0u8..8, sib: u8, disp: [u8; 4], regs in arb_regs(),
            segment_prefix in proptest::option::of(0usize..6),
        ) {
            let modrm = (mode << 6) | (2 << 3) | reg_rm;
            let mut bytes = Vec::new();
            let overrides = [0x26u8, 0x2E, 0x36, 0x3E, 0x64, 0x65];
            if let Some(i) = segment_prefix {
                bytes.push(overrides[i]);
            }
            bytes.extend_from_slice(&[0x0F, 0x01, modrm]);
            let rest_len = model_modrm_len(modrm, sib) - 1;
            let mut rest = Vec::new();
            if reg_rm == 4 {
                rest.push(sib);
            }
            rest.extend_from_slice(&disp);
            bytes.extend_from_slice(&rest[..rest_len]);
            let insn = decode(&bytes).unwrap();
            prop_assert_eq!(usize::from(insn.len), bytes.len());
            let Op::Lgdt { mem, width } = insn.op else { panic!("{insn:?}") };
            prop_assert_eq!(width, Width::Dword);
            let disp_at = usize::from(reg_rm == 4);
            prop_assert_eq!(mem.offset(&regs), model_address(modrm, sib, &rest[disp_at..].iter().chain(&[0u8; 4]).copied().collect::<Vec<_>>(), &regs));
            let expected_segment = match segment_prefix {
                Some(i) => [Segment::Es, Segment::Cs, Segment::Ss, Segment::Ds, Segment::Fs, Segment::Gs][i],
                None => {
                    // SS when the base register (per the SDM tables) is ESP or EBP.
                    let base = if reg_rm == 4 {
                        (!(sib & 7 == 5 && mode == 0)).then_some(sib & 7)
                    } else {
                        (!(reg_rm == 5 && mode == 0)).then_some(reg_rm)
                    };
                    if matches!(base, Some(4) | Some(5)) { Segment::Ss } else { Segment::Ds }
                }
            };
            prop_assert_eq!(mem.segment, expected_segment);
            // ESP can never be an index.
            prop_assert_ne!(mem.index, Some(Reg32::Esp));
        }
    }
}
