//! The VMI ROM interface, API 3.0, exactly as Linux's CONFIG_VMI used it.
//!
//! Linux 2.6.21 to 2.6.30 did not change it: `arch/x86/include/asm/vmi.h`,
//! `arch/x86/include/asm/vmi_time.h` (earlier `include/asm-i386/`), and the
//! users `arch/x86/kernel/vmi_32.c` and `vmiclock_32.c`. Where Linux is
//! silent, the 2006 VMI specification (`vmi_spec.txt`, posted to LKML) and
//! VMware's call list fill in, and the docs say so.
//!
//! Shared by the Xen ROM, the native VMI ROM and the generic VMI guest; it
//! knows nothing about any hypervisor.
//!
//! * [`rom`]: the option ROM header ([`VromHeader`], [`PciHeader`],
//!   [`PnpHeader`]), Linux's acceptance rules ([`check_rom`]) and probing.
//! * [`builder`]: building a header ([`RomSpec`], [`build_header`]) and the
//!   BIOS checksum ([`verify_checksum`], [`fix_checksum`]).
//! * [`call`]: call numbers ([`VmiCall`]) with their conventions and Linux binding.
//! * [`reloc`]: GetRelocationInfo's answer ([`VmiRelocationInfo`]) and the
//!   patching Linux does with it ([`patch_site`]).
//! * [`flags`], [`time`], [`ap_state`]: arguments of the MMU, timer and SMP calls.
//!
//! # Boot protocol in brief
//! The kernel scans 0xC0000..0xE0000 in 2 KiB steps for a ROM [`check_rom`]
//! accepts, keeps `virtual_top..4 GiB` out of its own address space, calls
//! ROM+0x80 (VMI_Init, 0 = success, anything else = stay native), then asks
//! ROM+0x88 for each call number it wants and binds or patches what it gets.
//!
//! # Processor-state calls
//! * Halt: halt with interrupts enabled (the STI; HLT pair, atomically): the
//!   vcpu is descheduled ("halted") until an interrupt or other work is
//!   pending; every VMI halt is a "safe" halt.
//! * Shutdown: halt with interrupts disabled; power-off of this processor.
//! * Reboot(how): [`flags::VMI_REBOOT_SOFT`] acts like an INIT IPI (some
//!   APIC and CR state survives), [`flags::VMI_REBOOT_HARD`] like a reset.
//!   Linux binds neither Reboot nor Shutdown (it reboots and powers off via
//!   the usual hardware paths).
#![cfg_attr(not(test), no_std)]

pub mod ap_state;
pub mod builder;
pub mod call;
pub mod flags;
pub mod reloc;
pub mod rom;
pub mod time;

pub use ap_state::{AbiU64, VmiApState, VMI_AP_STATE_SIZE};
pub use builder::{
    build_header, byte_sum, declared_rom_size, fix_checksum, fix_checksum_at, jump_point,
    verify_checksum, write_rom_header, BuildError, ChecksumError, RomSpec,
};
pub use call::{
    Arg, ArgLocation, ArgWidth, CallInfo, CallSource, Clobbers, Convention, LinuxBinding, Reg,
    Regparm, Ret, VmiCall, GET_RELOCATION_INFO_CONVENTION, VMI_INIT_CONVENTION, VMI_NUM_CALLS,
};
pub use reloc::{
    cached_function, decode_rel32, encode_rel32, para_fill, patch_site, FillAction,
    JumpRelNotCallable, PatchAction, PatchError, VmiRelocationInfo, VmiRelocationType,
};
pub use rom::{
    check_rom, probe_addresses, probe_rom_area, probe_rom_area_reporting, ByteStr, PciHeader,
    PnpHeader, RomInfo, RomPart, RomRejection, RomWarning, VromHeader, GET_RELOCATION_INFO_OFFSET,
    OPTION_ROM_SIGNATURE, PCI_DEVICE_ID_VMWARE_VMI, PCI_VENDOR_ID_VMWARE, ROM_BLOCK_SIZE,
    VMI_API_REV_MAJOR, VMI_API_REV_MINOR, VMI_INIT_OFFSET, VMI_PROBE_END, VMI_PROBE_START,
    VMI_PROBE_STEP, VMI_SIGNATURE, VROM_HEADER_SIZE,
};
