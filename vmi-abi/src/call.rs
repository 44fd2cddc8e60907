//! VMI call numbers (API 3.0), their calling conventions and how Linux binds them.
//!
//! Numbers: `VMI_CALL_*` of Linux's `arch/x86/include/asm/vmi.h` (0-48,
//! 61-65, 73) and `arch/x86/include/asm/vmi_time.h` (66-71), unchanged from
//! 2.6.21 to 2.6.30. 49-60 (port I/O) and 72 (SetCallbacks) are absent from
//! Linux; their numbers come from VMware's own call list (`vmiCalls.h`, 2005,
//! which matches every number Linux defines), and no Linux kernel asks for them.
//!
//! Conventions: the ROM functions are regparm(3) C functions (EAX, EDX,
//! ECX, then the stack; a 64-bit value takes a register pair, low half first;
//! 32-bit results in EAX, 64-bit in EDX:EAX), except CPUID, IRET and SYSEXIT
//! (and the never-used string I/O calls). Argument lists are those of the
//! 2006 VMI specification's C prototypes (Appendix B of `vmi_spec.txt`) and of
//! the function pointers in `vmi_32.c` / `vmi_time.h`. Dummy arguments in that
//! specification exist only to steer the next argument into ECX or EDX.
//!
//! Linux binding: which `vmi_32.c` mechanism backs each call, see [`LinuxBinding`].

use crate::reloc::VmiRelocationType;

/// A VMI call number (`VMI_CALL_*`), the value passed in EAX to GetRelocationInfo.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VmiCall {
    /// 0 `VMI_CALL_CPUID`
    Cpuid = 0,
    /// 1 `VMI_CALL_WRMSR`
    Wrmsr = 1,
    /// 2 `VMI_CALL_RDMSR`
    Rdmsr = 2,
    /// 3 `VMI_CALL_SetGDT`
    SetGdt = 3,
    /// 4 `VMI_CALL_SetLDT`
    SetLdt = 4,
    /// 5 `VMI_CALL_SetIDT`
    SetIdt = 5,
    /// 6 `VMI_CALL_SetTR`
    SetTr = 6,
    /// 7 `VMI_CALL_GetGDT`
    GetGdt = 7,
    /// 8 `VMI_CALL_GetLDT`
    GetLdt = 8,
    /// 9 `VMI_CALL_GetIDT`
    GetIdt = 9,
    /// 10 `VMI_CALL_GetTR`
    GetTr = 10,
    /// 11 `VMI_CALL_WriteGDTEntry`
    WriteGdtEntry = 11,
    /// 12 `VMI_CALL_WriteLDTEntry`
    WriteLdtEntry = 12,
    /// 13 `VMI_CALL_WriteIDTEntry`
    WriteIdtEntry = 13,
    /// 14 `VMI_CALL_UpdateKernelStack`
    UpdateKernelStack = 14,
    /// 15 `VMI_CALL_SetCR0`
    SetCr0 = 15,
    /// 16 `VMI_CALL_SetCR2`
    SetCr2 = 16,
    /// 17 `VMI_CALL_SetCR3`
    SetCr3 = 17,
    /// 18 `VMI_CALL_SetCR4`
    SetCr4 = 18,
    /// 19 `VMI_CALL_GetCR0`
    GetCr0 = 19,
    /// 20 `VMI_CALL_GetCR2`
    GetCr2 = 20,
    /// 21 `VMI_CALL_GetCR3`
    GetCr3 = 21,
    /// 22 `VMI_CALL_GetCR4`
    GetCr4 = 22,
    /// 23 `VMI_CALL_WBINVD`
    Wbinvd = 23,
    /// 24 `VMI_CALL_SetDR`
    SetDr = 24,
    /// 25 `VMI_CALL_GetDR`
    GetDr = 25,
    /// 26 `VMI_CALL_RDPMC`
    Rdpmc = 26,
    /// 27 `VMI_CALL_RDTSC`
    Rdtsc = 27,
    /// 28 `VMI_CALL_CLTS`
    Clts = 28,
    /// 29 `VMI_CALL_EnableInterrupts`
    EnableInterrupts = 29,
    /// 30 `VMI_CALL_DisableInterrupts`
    DisableInterrupts = 30,
    /// 31 `VMI_CALL_GetInterruptMask`
    GetInterruptMask = 31,
    /// 32 `VMI_CALL_SetInterruptMask`
    SetInterruptMask = 32,
    /// 33 `VMI_CALL_IRET`
    Iret = 33,
    /// 34 `VMI_CALL_SYSEXIT`
    Sysexit = 34,
    /// 35 `VMI_CALL_Halt`
    Halt = 35,
    /// 36 `VMI_CALL_Reboot`
    Reboot = 36,
    /// 37 `VMI_CALL_Shutdown`
    Shutdown = 37,
    /// 38 `VMI_CALL_SetPxE`
    SetPxe = 38,
    /// 39 `VMI_CALL_SetPxELong`
    SetPxeLong = 39,
    /// 40 `VMI_CALL_UpdatePxE`
    UpdatePxe = 40,
    /// 41 `VMI_CALL_UpdatePxELong`
    UpdatePxeLong = 41,
    /// 42 `VMI_CALL_MachineToPhysical`
    MachineToPhysical = 42,
    /// 43 `VMI_CALL_PhysicalToMachine`
    PhysicalToMachine = 43,
    /// 44 `VMI_CALL_AllocatePage`
    AllocatePage = 44,
    /// 45 `VMI_CALL_ReleasePage`
    ReleasePage = 45,
    /// 46 `VMI_CALL_InvalPage`
    InvalPage = 46,
    /// 47 `VMI_CALL_FlushTLB`
    FlushTlb = 47,
    /// 48 `VMI_CALL_SetLinearMapping`
    SetLinearMapping = 48,
    /// 49 INL (VMware list only)
    Inl = 49,
    /// 50 INB (VMware list only)
    Inb = 50,
    /// 51 INW (VMware list only)
    Inw = 51,
    /// 52 INSL (VMware list only)
    Insl = 52,
    /// 53 INSB (VMware list only)
    Insb = 53,
    /// 54 INSW (VMware list only)
    Insw = 54,
    /// 55 OUTL (VMware list only)
    Outl = 55,
    /// 56 OUTB (VMware list only)
    Outb = 56,
    /// 57 OUTW (VMware list only)
    Outw = 57,
    /// 58 OUTSL (VMware list only)
    Outsl = 58,
    /// 59 OUTSB (VMware list only)
    Outsb = 59,
    /// 60 OUTSW (VMware list only)
    Outsw = 60,
    /// 61 `VMI_CALL_SetIOPLMask`
    SetIoplMask = 61,
    /// 62 `VMI_CALL_SetInitialAPState`
    SetInitialApState = 62,
    /// 63 `VMI_CALL_APICWrite`
    ApicWrite = 63,
    /// 64 `VMI_CALL_APICRead`
    ApicRead = 64,
    /// 65 `VMI_CALL_IODelay`
    IoDelay = 65,
    /// 66 `VMI_CALL_GetCycleFrequency` (vmi_time.h)
    GetCycleFrequency = 66,
    /// 67 `VMI_CALL_GetCycleCounter` (vmi_time.h)
    GetCycleCounter = 67,
    /// 68 `VMI_CALL_SetAlarm` (vmi_time.h)
    SetAlarm = 68,
    /// 69 `VMI_CALL_CancelAlarm` (vmi_time.h)
    CancelAlarm = 69,
    /// 70 `VMI_CALL_GetWallclockTime` (vmi_time.h)
    GetWallclockTime = 70,
    /// 71 `VMI_CALL_WallclockUpdated` (vmi_time.h)
    WallclockUpdated = 71,
    /// 72 SetCallbacks (VMware list only; semantics unpublished)
    SetCallbacks = 72,
    /// 73 `VMI_CALL_SetLazyMode`
    SetLazyMode = 73,
}

/// Number of call numbers in API 3.0 (0..=73; VMware's `NUM_VMI_CALLS`).
pub const VMI_NUM_CALLS: usize = 74;

/// Where a call number is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallSource {
    /// `VMI_CALL_*` in Linux's vmi.h.
    LinuxVmiH,
    /// `VMI_CALL_*` in Linux's vmi_time.h.
    LinuxVmiTimeH,
    /// Only in VMware's call list; no Linux kernel uses it.
    VmwareListOnly,
}

/// Width of one argument or result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgWidth {
    /// 32 bits (also pointers, selectors, smaller ints): one register or stack word.
    U32,
    /// 64 bits: a register pair (low half first) or two stack words.
    U64,
}

impl ArgWidth {
    /// Number of 32-bit words.
    pub const fn words(self) -> u32 {
        match self {
            ArgWidth::U32 => 1,
            ArgWidth::U64 => 2,
        }
    }
}

/// One argument of a regparm call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    /// Name in the VMI specification / Linux prototype (`dummy` = unused filler).
    pub name: &'static str,
    /// Width.
    pub width: ArgWidth,
}

/// Result of a regparm call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// Nothing.
    Void,
    /// EAX.
    U32,
    /// EDX:EAX.
    U64,
}

/// Argument registers of regparm(3), in assignment order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// First.
    Eax,
    /// Second.
    Edx,
    /// Third.
    Ecx,
}

const REGPARM_REGS: [Reg; 3] = [Reg::Eax, Reg::Edx, Reg::Ecx];

/// Where one regparm argument travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgLocation {
    /// A 32-bit argument in a register.
    Reg(Reg),
    /// A 64-bit argument in two registers.
    RegPair {
        /// Low 32 bits.
        lo: Reg,
        /// High 32 bits.
        hi: Reg,
    },
    /// On the stack; `esp_offset` counts from ESP at the ROM function's entry
    /// (the return address is at ESP+0, so the first stack argument at ESP+4).
    /// The caller pops it.
    Stack {
        /// Offset of the (low word of the) argument.
        esp_offset: u32,
        /// Width.
        width: ArgWidth,
    },
}

/// A regparm(3) C signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regparm {
    /// Arguments in order.
    pub args: &'static [Arg],
    /// Result.
    pub ret: Ret,
}

impl Regparm {
    /// Where argument `index` travels, by GCC's i386 regparm rule: arguments
    /// take EAX, EDX, ECX in order; a 64-bit one needs two consecutive free
    /// registers; the first argument that does not fit goes to the stack and
    /// so does every argument after it (GCC then marks the registers used up).
    pub const fn arg_location(&self, index: usize) -> Option<ArgLocation> {
        if index >= self.args.len() {
            return None;
        }
        let mut next_reg = 0usize;
        let mut regs_left = true;
        let mut stack = 4u32;
        let mut i = 0;
        while i <= index {
            let width = self.args[i].width;
            let words = width.words() as usize;
            let location = if regs_left && next_reg + words <= REGPARM_REGS.len() {
                let loc = match width {
                    ArgWidth::U32 => ArgLocation::Reg(REGPARM_REGS[next_reg]),
                    ArgWidth::U64 => ArgLocation::RegPair {
                        lo: REGPARM_REGS[next_reg],
                        hi: REGPARM_REGS[next_reg + 1],
                    },
                };
                next_reg += words;
                loc
            } else {
                regs_left = false;
                let loc = ArgLocation::Stack {
                    esp_offset: stack,
                    width,
                };
                stack += width.words() * 4;
                loc
            };
            if i == index {
                return Some(location);
            }
            i += 1;
        }
        None
    }

    /// Bytes of arguments the caller pushes.
    pub const fn stack_bytes(&self) -> u32 {
        let mut total = 0;
        let mut i = 0;
        while i < self.args.len() {
            if let Some(ArgLocation::Stack { width, .. }) = self.arg_location(i) {
                total += width.words() * 4;
            }
            i += 1;
        }
        total
    }
}

/// How a call is entered and what it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// An ordinary regparm(3) C function.
    Regparm(Regparm),
    /// Like the CPUID instruction: EAX = leaf, ECX = sub-leaf in; EAX, EBX,
    /// ECX, EDX out; only flags clobbered otherwise.
    Cpuid,
    /// Like the IRET instruction: the stack holds EIP, CS, EFLAGS (and ESP,
    /// SS when returning to user mode). Reached by `jmp` (JUMP_REL) or by
    /// `call` (CALL_REL: a return address then sits above the frame and is
    /// dropped). Does not return. Does not restore IOPL (use SetIOPLMask).
    Iret,
    /// Like STI; SYSEXIT: EDX = user EIP, ECX = user ESP; interrupts are
    /// enabled atomically with the return. Does not return.
    Sysexit,
    /// INS-like (2006 specification, unused): EDI = destination, EDX = port, ECX = count.
    StringIn,
    /// OUTS-like (2006 specification, unused): ESI = source, EDX = port, ECX = count.
    StringOut,
    /// No published definition.
    Unspecified,
}

/// Registers a call may change besides its outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clobbers {
    /// EAX, ECX, EDX and flags, like any C function.
    Standard,
    /// Flags only: EAX (unless it is the result), ECX, EDX must survive. The
    /// interrupt-flag calls are used as Linux's callee-save irq ops and are
    /// patched inline into code that keeps values in those registers.
    FlagsOnly,
    /// The call does not return (IRET, SYSEXIT).
    NoReturn,
}

/// How Linux 2.6.21-2.6.30 (`vmi_32.c`) binds a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinuxBinding {
    /// `para_fill`: the ROM address becomes the paravirt op itself, so the
    /// ROM function must match the op's C signature. NOP gives an empty op.
    Fill,
    /// `para_fill`, and the op's call sites are also patched inline with
    /// `call rel32` (`vmi_patch`): the four interrupt-flag calls.
    FillAndPatch,
    /// `para_wrap` / `vmi_get_function`: a Linux C wrapper calls the cached
    /// ROM address. NOP leaves the native op; JUMP_REL is a BUG.
    Wrap,
    /// Only reached from inline patch sites (`vmi_patch`); the pv op itself
    /// is poisoned, so the ROM must answer CALL_REL or JUMP_REL.
    PatchOnly,
    /// Timer group (`vmi_timer_ops`): enabled when GetCycleFrequency is not
    /// NONE, then every timer call is taken with `vmi_get_function`, so all
    /// of them must be CALL_REL (a NOP or NONE would be called through NULL).
    Timer,
    /// Never looked up.
    Unused,
}

impl LinuxBinding {
    /// True when a Linux kernel keeps working correctly if GetRelocationInfo
    /// answers `kind` for a call bound this way. False where it would BUG,
    /// print "unknown relocation type", or call through a poisoned or NULL
    /// pointer. For [`LinuxBinding::Timer`], NONE is fine only as the answer
    /// for GetCycleFrequency (it switches the whole group off); it is
    /// accepted here and the group rule is the ROM's to keep.
    pub const fn works_with(self, kind: VmiRelocationType) -> bool {
        use VmiRelocationType as T;
        match self {
            LinuxBinding::Fill | LinuxBinding::FillAndPatch | LinuxBinding::Wrap => {
                matches!(kind, T::None | T::CallRel | T::Nop)
            }
            LinuxBinding::PatchOnly => matches!(kind, T::CallRel | T::JumpRel),
            LinuxBinding::Timer => matches!(kind, T::None | T::CallRel),
            LinuxBinding::Unused => true,
        }
    }

    /// True if a Linux kernel asks for this call at all.
    pub const fn is_used(self) -> bool {
        !matches!(self, LinuxBinding::Unused)
    }
}

/// Everything known about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// The call.
    pub call: VmiCall,
    /// Where its number is defined.
    pub source: CallSource,
    /// How it is entered.
    pub convention: Convention,
    /// What it may clobber.
    pub clobbers: Clobbers,
    /// How Linux binds it.
    pub binding: LinuxBinding,
    /// The Linux op it backs (2.6.30 names; older names in parentheses), or
    /// what it does when Linux does not use it.
    pub linux_op: &'static str,
}

macro_rules! args {
    ($($name:literal : $w:ident),* $(,)?) => {
        &[$(Arg { name: $name, width: ArgWidth::$w }),*]
    };
}

macro_rules! regparm {
    ([$($args:tt)*] -> $ret:ident) => {
        Convention::Regparm(Regparm { args: args!($($args)*), ret: Ret::$ret })
    };
}

/// regparm(1) `u32 vmi_init(void)` at ROM+0x80: returns 0 on success (the
/// 2006 specification: -1 on failure; Linux treats any non-zero as failure).
pub const VMI_INIT_CONVENTION: Regparm = Regparm {
    args: &[],
    ret: Ret::U32,
};

/// regparm(2) `u64 get_reloc(int call)` at ROM+0x88: EAX = call number in,
/// [`crate::VmiRelocationInfo`] out in EDX:EAX.
pub const GET_RELOCATION_INFO_CONVENTION: Regparm = Regparm {
    args: args!("call": U32),
    ret: Ret::U64,
};

impl VmiCall {
    /// Every call, in number order.
    pub const ALL: [VmiCall; VMI_NUM_CALLS] = {
        let mut all = [VmiCall::Cpuid; VMI_NUM_CALLS];
        let mut n = 0;
        while n < VMI_NUM_CALLS {
            all[n] = match VmiCall::from_u32(n as u32) {
                Some(call) => call,
                None => panic!("VMI call numbers must be dense"),
            };
            n += 1;
        }
        all
    };

    /// The call with number `n`, if API 3.0 has one.
    pub const fn from_u32(n: u32) -> Option<Self> {
        use VmiCall::*;
        Some(match n {
            0 => Cpuid,
            1 => Wrmsr,
            2 => Rdmsr,
            3 => SetGdt,
            4 => SetLdt,
            5 => SetIdt,
            6 => SetTr,
            7 => GetGdt,
            8 => GetLdt,
            9 => GetIdt,
            10 => GetTr,
            11 => WriteGdtEntry,
            12 => WriteLdtEntry,
            13 => WriteIdtEntry,
            14 => UpdateKernelStack,
            15 => SetCr0,
            16 => SetCr2,
            17 => SetCr3,
            18 => SetCr4,
            19 => GetCr0,
            20 => GetCr2,
            21 => GetCr3,
            22 => GetCr4,
            23 => Wbinvd,
            24 => SetDr,
            25 => GetDr,
            26 => Rdpmc,
            27 => Rdtsc,
            28 => Clts,
            29 => EnableInterrupts,
            30 => DisableInterrupts,
            31 => GetInterruptMask,
            32 => SetInterruptMask,
            33 => Iret,
            34 => Sysexit,
            35 => Halt,
            36 => Reboot,
            37 => Shutdown,
            38 => SetPxe,
            39 => SetPxeLong,
            40 => UpdatePxe,
            41 => UpdatePxeLong,
            42 => MachineToPhysical,
            43 => PhysicalToMachine,
            44 => AllocatePage,
            45 => ReleasePage,
            46 => InvalPage,
            47 => FlushTlb,
            48 => SetLinearMapping,
            49 => Inl,
            50 => Inb,
            51 => Inw,
            52 => Insl,
            53 => Insb,
            54 => Insw,
            55 => Outl,
            56 => Outb,
            57 => Outw,
            58 => Outsl,
            59 => Outsb,
            60 => Outsw,
            61 => SetIoplMask,
            62 => SetInitialApState,
            63 => ApicWrite,
            64 => ApicRead,
            65 => IoDelay,
            66 => GetCycleFrequency,
            67 => GetCycleCounter,
            68 => SetAlarm,
            69 => CancelAlarm,
            70 => GetWallclockTime,
            71 => WallclockUpdated,
            72 => SetCallbacks,
            73 => SetLazyMode,
            _ => return None,
        })
    }

    /// The call number.
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// The VMI name, as after `VMI_CALL_` (e.g. "SetPxELong", "FlushTLB").
    pub const fn name(self) -> &'static str {
        use VmiCall::*;
        match self {
            Cpuid => "CPUID",
            Wrmsr => "WRMSR",
            Rdmsr => "RDMSR",
            SetGdt => "SetGDT",
            SetLdt => "SetLDT",
            SetIdt => "SetIDT",
            SetTr => "SetTR",
            GetGdt => "GetGDT",
            GetLdt => "GetLDT",
            GetIdt => "GetIDT",
            GetTr => "GetTR",
            WriteGdtEntry => "WriteGDTEntry",
            WriteLdtEntry => "WriteLDTEntry",
            WriteIdtEntry => "WriteIDTEntry",
            UpdateKernelStack => "UpdateKernelStack",
            SetCr0 => "SetCR0",
            SetCr2 => "SetCR2",
            SetCr3 => "SetCR3",
            SetCr4 => "SetCR4",
            GetCr0 => "GetCR0",
            GetCr2 => "GetCR2",
            GetCr3 => "GetCR3",
            GetCr4 => "GetCR4",
            Wbinvd => "WBINVD",
            SetDr => "SetDR",
            GetDr => "GetDR",
            Rdpmc => "RDPMC",
            Rdtsc => "RDTSC",
            Clts => "CLTS",
            EnableInterrupts => "EnableInterrupts",
            DisableInterrupts => "DisableInterrupts",
            GetInterruptMask => "GetInterruptMask",
            SetInterruptMask => "SetInterruptMask",
            Iret => "IRET",
            Sysexit => "SYSEXIT",
            Halt => "Halt",
            Reboot => "Reboot",
            Shutdown => "Shutdown",
            SetPxe => "SetPxE",
            SetPxeLong => "SetPxELong",
            UpdatePxe => "UpdatePxE",
            UpdatePxeLong => "UpdatePxELong",
            MachineToPhysical => "MachineToPhysical",
            PhysicalToMachine => "PhysicalToMachine",
            AllocatePage => "AllocatePage",
            ReleasePage => "ReleasePage",
            InvalPage => "InvalPage",
            FlushTlb => "FlushTLB",
            SetLinearMapping => "SetLinearMapping",
            Inl => "INL",
            Inb => "INB",
            Inw => "INW",
            Insl => "INSL",
            Insb => "INSB",
            Insw => "INSW",
            Outl => "OUTL",
            Outb => "OUTB",
            Outw => "OUTW",
            Outsl => "OUTSL",
            Outsb => "OUTSB",
            Outsw => "OUTSW",
            SetIoplMask => "SetIOPLMask",
            SetInitialApState => "SetInitialAPState",
            ApicWrite => "APICWrite",
            ApicRead => "APICRead",
            IoDelay => "IODelay",
            GetCycleFrequency => "GetCycleFrequency",
            GetCycleCounter => "GetCycleCounter",
            SetAlarm => "SetAlarm",
            CancelAlarm => "CancelAlarm",
            GetWallclockTime => "GetWallclockTime",
            WallclockUpdated => "WallclockUpdated",
            SetCallbacks => "SetCallbacks",
            SetLazyMode => "SetLazyMode",
        }
    }

    /// Where the number is defined.
    pub const fn source(self) -> CallSource {
        match self as u32 {
            49..=60 | 72 => CallSource::VmwareListOnly,
            66..=71 => CallSource::LinuxVmiTimeH,
            _ => CallSource::LinuxVmiH,
        }
    }

    /// Convention, clobbers and Linux binding of the call.
    pub const fn info(self) -> CallInfo {
        use LinuxBinding::*;
        use VmiCall::*;
        let std = Clobbers::Standard;
        let (convention, clobbers, binding, linux_op) = match self {
            Cpuid => (
                Convention::Cpuid,
                Clobbers::FlagsOnly,
                Wrap,
                "pv_cpu_ops.cpuid via vmi_cpuid (masks CPUID.1 EDX for vmi=disable_*)",
            ),
            Wrmsr => (
                regparm!(["val": U64, "reg": U32] -> Void),
                std,
                Unused,
                "wrmsr: ECX = MSR, EDX:EAX = value (Linux traps and emulates the instruction)",
            ),
            Rdmsr => (
                regparm!(["dummy": U64, "reg": U32] -> U64),
                std,
                Unused,
                "rdmsr: ECX = MSR, value in EDX:EAX (Linux traps and emulates the instruction)",
            ),
            SetGdt => (regparm!(["gdtr": U32] -> Void), std, Fill, "pv_cpu_ops.load_gdt"),
            SetLdt => (
                regparm!(["selector": U32] -> Void),
                std,
                Wrap,
                "pv_cpu_ops.set_ldt via vmi_set_ldt (GDT selector 0x88, or 0 for no LDT)",
            ),
            SetIdt => (regparm!(["idtr": U32] -> Void), std, Fill, "pv_cpu_ops.load_idt"),
            SetTr => (
                regparm!(["selector": U32] -> Void),
                std,
                Wrap,
                "pv_cpu_ops.load_tr_desc via vmi_set_tr (selector 0x80)",
            ),
            GetGdt => (regparm!(["gdtr": U32] -> Void), std, Fill, "pv_cpu_ops.store_gdt"),
            GetLdt => (regparm!([] -> U32), std, Unused, "sldt: returns the LDT selector"),
            GetIdt => (regparm!(["idtr": U32] -> Void), std, Fill, "pv_cpu_ops.store_idt"),
            GetTr => (regparm!([] -> U32), std, Fill, "pv_cpu_ops.store_tr"),
            WriteGdtEntry => (
                regparm!(["table": U32, "entry": U32, "desc_lo": U32, "desc_hi": U32] -> Void),
                std,
                Wrap,
                "pv_cpu_ops.write_gdt_entry via vmi_write_gdt_entry (filled directly up to 2.6.24); also load_tls",
            ),
            WriteLdtEntry => (
                regparm!(["table": U32, "entry": U32, "desc_lo": U32, "desc_hi": U32] -> Void),
                std,
                Wrap,
                "pv_cpu_ops.write_ldt_entry via vmi_write_ldt_entry (filled directly up to 2.6.24)",
            ),
            WriteIdtEntry => (
                regparm!(["table": U32, "entry": U32, "desc_lo": U32, "desc_hi": U32] -> Void),
                std,
                Wrap,
                "pv_cpu_ops.write_idt_entry via vmi_write_idt_entry (filled directly up to 2.6.24)",
            ),
            UpdateKernelStack => (
                regparm!(["selector": U32, "sp0": U32] -> Void),
                std,
                Wrap,
                "pv_cpu_ops.load_sp0 (load_esp0) via vmi_load_sp0: EAX = __KERNEL_DS, EDX = esp0",
            ),
            SetCr0 => (regparm!(["value": U32] -> Void), std, Fill, "pv_cpu_ops.write_cr0"),
            SetCr2 => (regparm!(["value": U32] -> Void), std, Fill, "pv_mmu_ops.write_cr2"),
            SetCr3 => (regparm!(["value": U32] -> Void), std, Fill, "pv_mmu_ops.write_cr3"),
            SetCr4 => (regparm!(["value": U32] -> Void), std, Fill, "pv_cpu_ops.write_cr4"),
            GetCr0 => (regparm!([] -> U32), std, Fill, "pv_cpu_ops.read_cr0"),
            GetCr2 => (regparm!([] -> U32), std, Fill, "pv_mmu_ops.read_cr2"),
            GetCr3 => (regparm!([] -> U32), std, Fill, "pv_mmu_ops.read_cr3"),
            GetCr4 => (regparm!([] -> U32), std, Fill, "pv_cpu_ops.read_cr4"),
            Wbinvd => (regparm!([] -> Void), std, Fill, "pv_cpu_ops.wbinvd"),
            SetDr => (regparm!(["regno": U32, "value": U32] -> Void), std, Fill, "pv_cpu_ops.set_debugreg"),
            GetDr => (regparm!(["regno": U32] -> U32), std, Fill, "pv_cpu_ops.get_debugreg"),
            Rdpmc => (
                regparm!(["dummy": U64, "counter": U32] -> U64),
                std,
                Unused,
                "rdpmc: ECX = counter, value in EDX:EAX (not yet used by Linux)",
            ),
            Rdtsc => (regparm!([] -> U64), std, Fill, "pv_cpu_ops.read_tsc"),
            Clts => (regparm!([] -> Void), std, Fill, "pv_cpu_ops.clts"),
            EnableInterrupts => (
                regparm!([] -> Void),
                Clobbers::FlagsOnly,
                FillAndPatch,
                "pv_irq_ops.irq_enable (delivers pending interrupts)",
            ),
            DisableInterrupts => (
                regparm!([] -> Void),
                Clobbers::FlagsOnly,
                FillAndPatch,
                "pv_irq_ops.irq_disable",
            ),
            GetInterruptMask => (
                regparm!([] -> U32),
                Clobbers::FlagsOnly,
                FillAndPatch,
                "pv_irq_ops.save_fl (0x200 = enabled)",
            ),
            SetInterruptMask => (
                regparm!(["mask": U32] -> Void),
                Clobbers::FlagsOnly,
                FillAndPatch,
                "pv_irq_ops.restore_fl (delivers pending interrupts when enabling)",
            ),
            Iret => (
                Convention::Iret,
                Clobbers::NoReturn,
                PatchOnly,
                "pv_cpu_ops.iret (INTERRUPT_RETURN sites)",
            ),
            Sysexit => (
                Convention::Sysexit,
                Clobbers::NoReturn,
                PatchOnly,
                "pv_cpu_ops.irq_enable_sysexit",
            ),
            Halt => (
                regparm!([] -> Void),
                std,
                Fill,
                "pv_irq_ops.safe_halt (2.6.21 with NO_IDLE_HZ: wrapped by vmi_safe_halt)",
            ),
            Reboot => (
                regparm!(["how": U32] -> Void),
                std,
                Unused,
                "reboot the VM: how = VMI_REBOOT_SOFT (INIT-like) or VMI_REBOOT_HARD (reset)",
            ),
            Shutdown => (
                regparm!([] -> Void),
                std,
                Unused,
                "halt with interrupts disabled: power-off for this CPU",
            ),
            SetPxe => (
                regparm!(["pte": U32, "ptep": U32, "flags": U32] -> Void),
                std,
                Wrap,
                "non-PAE set_pte, set_pte_at, set_pmd via vmi_ops.set_pte (vmi_get_function)",
            ),
            SetPxeLong => (
                regparm!(["pte": U64, "ptep": U32, "flags": U32] -> Void),
                std,
                Wrap,
                "PAE set_pte, set_pte_at, set_pmd, set_pud, pte_clear, pmd_clear via vmi_ops.set_pte",
            ),
            UpdatePxe => (
                regparm!(["ptep": U32, "flags": U32] -> Void),
                std,
                Wrap,
                "non-PAE pte_update, pte_update_defer via vmi_ops.update_pte (kernel already wrote *ptep)",
            ),
            UpdatePxeLong => (
                regparm!(["ptep": U32, "flags": U32] -> Void),
                std,
                Wrap,
                "PAE pte_update, pte_update_defer, set_pte_atomic via vmi_ops.update_pte",
            ),
            MachineToPhysical => (
                regparm!(["mfn": U32] -> U32),
                std,
                Unused,
                "reserved for Xen compatibility; signature is this project's choice (frame number in, frame number out)",
            ),
            PhysicalToMachine => (
                regparm!(["pfn": U32] -> U32),
                std,
                Unused,
                "reserved for Xen compatibility; signature is this project's choice (frame number in, frame number out)",
            ),
            AllocatePage => (
                regparm!(["pfn": U32, "flags": U32, "clone_pfn": U32, "start": U32, "count": U32] -> Void),
                std,
                Wrap,
                "alloc_pte, alloc_pmd, alloc_pmd_clone (alloc_pt, alloc_pd, alloc_pd_clone)",
            ),
            ReleasePage => (
                regparm!(["pfn": U32, "flags": U32] -> Void),
                std,
                Wrap,
                "release_pte, release_pmd (release_pt, release_pd); pgd_free from 2.6.29",
            ),
            InvalPage => (regparm!(["va": U32] -> Void), std, Fill, "pv_mmu_ops.flush_tlb_single"),
            FlushTlb => (
                regparm!(["how": U32] -> Void),
                std,
                Wrap,
                "flush_tlb_user (VMI_FLUSH_TLB), flush_tlb_kernel (VMI_FLUSH_TLB | VMI_FLUSH_GLOBAL)",
            ),
            SetLinearMapping => (
                regparm!(["slot": U32, "va": U32, "pages": U32, "pfn": U32] -> Void),
                std,
                Wrap,
                "vmi_bringup (slot 0 = lowmem), HIGHPTE kmap_atomic_pte (slots 1, 2)",
            ),
            Inl | Inb | Inw => (
                regparm!(["dummy": U32, "port": U32] -> U32),
                std,
                Unused,
                "port input: EDX = port, value in EAX (Linux executes in/out natively)",
            ),
            Insl | Insb | Insw => (
                Convention::StringIn,
                std,
                Unused,
                "string port input (Linux executes ins natively)",
            ),
            Outl | Outb | Outw => (
                regparm!(["value": U32, "port": U32] -> Void),
                std,
                Unused,
                "port output: EAX = value, EDX = port (Linux executes in/out natively)",
            ),
            Outsl | Outsb | Outsw => (
                Convention::StringOut,
                std,
                Unused,
                "string port output (Linux executes outs natively)",
            ),
            SetIoplMask => (
                regparm!(["mask": U32] -> Void),
                std,
                Fill,
                "pv_cpu_ops.set_iopl_mask (mask pre-shifted, e.g. 3 << 12)",
            ),
            SetInitialApState => (
                regparm!(["ap_state": U32, "apic_id": U32] -> Void),
                std,
                Wrap,
                "pv_apic_ops.startup_ipi_hook via vmi_startup_ipi_hook (SMP)",
            ),
            ApicWrite => (
                regparm!(["reg": U32, "value": U32] -> Void),
                std,
                Fill,
                "apic->write (apic_ops->write, pv_apic_ops.apic_write); reg = register offset",
            ),
            ApicRead => (
                regparm!(["reg": U32] -> U32),
                std,
                Fill,
                "apic->read (apic_ops->read, pv_apic_ops.apic_read); reg = register offset",
            ),
            IoDelay => (regparm!([] -> Void), std, Fill, "pv_cpu_ops.io_delay"),
            GetCycleFrequency => (
                regparm!([] -> U64),
                std,
                Timer,
                "vmi_timer_ops.get_cycle_frequency; its presence enables the VMI timer",
            ),
            GetCycleCounter => (
                regparm!(["counter": U32] -> U64),
                std,
                Timer,
                "vmi_timer_ops.get_cycle_counter (clocksource, sched_clock)",
            ),
            SetAlarm => (
                regparm!(["flags": U32, "expiry": U64, "period": U64] -> Void),
                std,
                Timer,
                "vmi_timer_ops.set_alarm (clockevent)",
            ),
            CancelAlarm => (
                regparm!(["flags": U32] -> U32),
                std,
                Timer,
                "vmi_timer_ops.cancel_alarm (1 = was armed)",
            ),
            GetWallclockTime => (
                regparm!([] -> U64),
                std,
                Timer,
                "vmi_timer_ops.get_wallclock (nanoseconds since the epoch)",
            ),
            WallclockUpdated => (
                regparm!([] -> U32),
                std,
                Timer,
                "vmi_timer_ops.wallclock_updated (looked up, never called)",
            ),
            SetCallbacks => (Convention::Unspecified, std, Unused, "semantics unpublished"),
            SetLazyMode => (
                regparm!(["mode": U32] -> Void),
                std,
                Wrap,
                "pv_cpu_ops.lazy_mode / pv_mmu_ops.lazy_mode enter, leave (set_lazy_mode)",
            ),
        };
        CallInfo {
            call: self,
            source: self.source(),
            convention,
            clobbers,
            binding,
            linux_op,
        }
    }
}
