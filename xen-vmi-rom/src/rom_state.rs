//! The state the loader hands the ROM, at [`ROM_STATE_VA`] in the private
//! area. The loader fills it before the kernel runs; from then on only the
//! ROM writes it. Plain `u32`s so that the layout is the same on the host
//! (tests) and on i686.
//!
//! [`ROM_STATE_VA`]: crate::layout::ROM_STATE_VA

/// "XVRS": a state the loader has filled in.
pub const ROM_STATE_MAGIC: u32 = u32::from_le_bytes(*b"XVRS");
/// Bumped when the layout changes.
pub const ROM_STATE_VERSION: u32 = 2;

/// Offset of the ROM's own stack top inside the state area: the ROM runs
/// its boot path (and nothing else) on it.
pub const ROM_BOOT_STACK_TOP: u32 = 0x1_0000;
/// Bytes of the boot stack.
pub const ROM_BOOT_STACK_SIZE: u32 = 0x2000;

/// What the loader tells the ROM.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RomState {
    /// [`ROM_STATE_MAGIC`].
    pub magic: u32,
    /// [`ROM_STATE_VERSION`].
    pub version: u32,
    /// start_info.flags (SIF_*): dom0 or domU decides the console.
    pub start_info_flags: u32,
    /// start_info.console.domU: ring MFN and event channel (domU only).
    pub console_mfn: u32,
    pub console_evtchn: u32,
    /// start_info.store_mfn / store_evtchn.
    pub store_mfn: u32,
    pub store_evtchn: u32,
    /// Entries of the k2m table at `K2M_VA` (kernel frames described).
    pub kernel_frame_limit: u32,
    /// End of kernel-physical RAM above 1 MiB.
    pub ram_end: u32,
    /// The address space the kernel starts in ("paging off": every kernel
    /// frame at its own address): the pinned L3's machine frame.
    pub boot_l3_mfn: u32,
    /// The ROM area's L1 tables (linked into every root's top L2).
    pub rom_area_l1_mfns: [u32; 4],
    /// Kernel entry point and the registers it gets (multiboot: EAX magic,
    /// EBX the info's kernel-physical address; the Linux 32-bit protocol:
    /// ESI the zero page's).
    pub entry: u32,
    pub entry_eax: u32,
    pub entry_ebx: u32,
    pub entry_esp: u32,
    pub entry_esi: u32,
    /// The GDT the kernel is entered with (kernel-physical base, limit),
    /// loaded by the ROM as if by LGDT; limit 0: none (Xen's flat ring-1
    /// selectors, the multiboot case).
    pub entry_gdt_base: u32,
    pub entry_gdt_limit: u32,
    /// The selectors of that GDT the kernel is entered with, as the kernel
    /// names them (RPL 0; the ROM raises the RPL to its ring, 1): CS, and
    /// DS = ES = FS = GS = SS. 0: Xen's flat ring-1 selectors.
    pub entry_cs: u32,
    pub entry_ds: u32,
    /// Frames the loader left for the ROM's page tables: their machine
    /// frames are at `pool_mfns_va`, `pool_free` of them unused from
    /// `pool_next`.
    pub pool_next: u32,
    pub pool_free: u32,
    /// Size of the ROM image at kernel-physical 0xC0000.
    pub rom_size: u32,
    /// The builder's root (start_info.pt_base), unpinned by the ROM once it
    /// has left it: its tables map every bootstrap frame writable, and as
    /// long as they are page tables no pool frame could become one.
    pub bootstrap_l3_mfn: u32,
    /// Written by the ROM: how often the kernel called VMI_Init (0: it
    /// never activated VMI, and runs on the ROM's emulation of native
    /// instructions only).
    pub vmi_init_calls: u32,
}

/// Where the ROM's trap path finds the state to resume the kernel with when
/// an emulated instruction changed its stack or code selector: EIP, CS,
/// EFLAGS, then ESP and SS (in `lss` order) at +12.
pub const RESUME_AT_OFFSET: u32 = 0xC0;
/// Where the ROM counts the hypercalls it makes for the kernel (a `u32`,
/// wrapping; a multicall counts once): read by the kernel through
/// [`ROM_STATS_PORT`](crate::ports::ROM_STATS_PORT), and incremented by the
/// assembly paths that trap into Xen without the Rust backend.
pub const HYPERCALL_COUNT_OFFSET: u32 = 0xD8;
/// Where the SYSENTER/SYSEXIT paths find the kernel's MSRs turned into
/// operands ([`FastSyscallSlots`]): they run in assembly with no registers
/// to spare.
pub const FAST_SYSCALL_OFFSET: u32 = 0xE0;

/// IA32_SYSENTER_CS/ESP/EIP (SDM vol. 3, "SYSENTER"/"SYSEXIT") as operands
/// for the ROM's SYSENTER entry (`lss`, then a far `jmp`) and its SYSEXIT
/// (an `iret` frame to ring 3), with the kernel's ring 0 compressed into
/// ring 1. The processor forms the selectors from SYSENTER_CS the same
/// way: code, +8 stack, +16 user code, +24 user stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastSyscallSlots {
    /// SYSENTER_ESP, then the stack selector (`lss` m16:32 order).
    pub entry_esp: u32,
    pub entry_ss: u32,
    /// SYSENTER_EIP, then the code selector (`jmp` m16:32 order).
    pub entry_eip: u32,
    pub entry_cs: u32,
    /// What SYSEXIT loads into CS and SS.
    pub exit_cs: u32,
    pub exit_ss: u32,
}

impl FastSyscallSlots {
    /// The operands for the MSR values `cs`, `esp`, `eip`.
    pub fn from_msrs(cs: u64, esp: u64, eip: u64) -> Self {
        let base = (cs as u32) & 0xFFFC;
        Self {
            entry_esp: esp as u32,
            entry_ss: (base + 8) | 1,
            entry_eip: eip as u32,
            entry_cs: base | 1,
            exit_cs: (base + 16) | 3,
            exit_ss: (base + 24) | 3,
        }
    }
}

/// The ROM's run-time state (virtual CPU, devices) starts here.
pub const ROM_RUNTIME_OFFSET: u32 = 0x100;
/// The table of pool machine frames follows the run-time state.
pub const POOL_MFNS_OFFSET: u32 = 0x4000;
/// Most pool frames the table holds (up to the boot stack).
pub const POOL_MFNS_MAX: u32 = (ROM_BOOT_STACK_TOP - ROM_BOOT_STACK_SIZE - POOL_MFNS_OFFSET) / 4;

const _: () = {
    assert!(core::mem::size_of::<RomState>() == 112);
    assert!(core::mem::size_of::<RomState>() as u32 <= RESUME_AT_OFFSET);
    assert!(RESUME_AT_OFFSET + 20 <= HYPERCALL_COUNT_OFFSET);
    assert!(HYPERCALL_COUNT_OFFSET + 4 <= FAST_SYSCALL_OFFSET);
    assert!(core::mem::size_of::<FastSyscallSlots>() == 24);
    assert!(core::mem::offset_of!(FastSyscallSlots, entry_eip) == 8);
    assert!(core::mem::offset_of!(FastSyscallSlots, exit_cs) == 16);
    assert!(FAST_SYSCALL_OFFSET + 24 <= ROM_RUNTIME_OFFSET);
    assert!(ROM_BOOT_STACK_TOP <= crate::layout::ROM_STATE_MAX);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_syscall_selectors_follow_sysenter_cs() {
        // Linux's GDT: kernel code 0x60, so user code 0x73 and data 0x7B.
        let s = FastSyscallSlots::from_msrs(0x60, 0xC040_0000, 0xC010_2000);
        assert_eq!((s.entry_cs, s.entry_ss), (0x61, 0x69));
        assert_eq!((s.exit_cs, s.exit_ss), (0x73, 0x7B));
        assert_eq!((s.entry_esp, s.entry_eip), (0xC040_0000, 0xC010_2000));
        // RPL bits in the MSR are ignored, as the processor does.
        assert_eq!(FastSyscallSlots::from_msrs(0x63, 0, 0).exit_cs, 0x73);
    }
}
