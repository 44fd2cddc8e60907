//! The state the loader hands the ROM, at [`ROM_STATE_VA`] in the private
//! area. The loader fills it before the kernel runs; from then on only the
//! ROM writes it. Plain `u32`s so that the layout is the same on the host
//! (tests) and on i686.
//!
//! [`ROM_STATE_VA`]: crate::layout::ROM_STATE_VA

/// "XVRS": a state the loader has filled in.
pub const ROM_STATE_MAGIC: u32 = u32::from_le_bytes(*b"XVRS");
/// Bumped when the layout changes.
pub const ROM_STATE_VERSION: u32 = 1;

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
    /// EBX the info's kernel-physical address).
    pub entry: u32,
    pub entry_eax: u32,
    pub entry_ebx: u32,
    pub entry_esp: u32,
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
/// The ROM's run-time state (virtual CPU, devices) starts here.
pub const ROM_RUNTIME_OFFSET: u32 = 0x100;
/// The table of pool machine frames follows the run-time state.
pub const POOL_MFNS_OFFSET: u32 = 0x4000;
/// Most pool frames the table holds (up to the boot stack).
pub const POOL_MFNS_MAX: u32 = (ROM_BOOT_STACK_TOP - ROM_BOOT_STACK_SIZE - POOL_MFNS_OFFSET) / 4;

const _: () = {
    assert!(core::mem::size_of::<RomState>() == 88);
    assert!(core::mem::size_of::<RomState>() as u32 <= RESUME_AT_OFFSET);
    assert!(RESUME_AT_OFFSET + 20 <= HYPERCALL_COUNT_OFFSET);
    assert!(HYPERCALL_COUNT_OFFSET + 4 <= ROM_RUNTIME_OFFSET);
    assert!(ROM_BOOT_STACK_TOP <= crate::layout::ROM_STATE_MAX);
};
