//! The core of the public ABI: `xen.h` (interface 0x00040e00) for x86_32.
//!
//! Hypercall numbers, VIRQs, MMU commands and flags, domain ids, and the
//! structures every PV guest touches: `start_info`, `shared_info`,
//! `vcpu_info`, `vcpu_time_info`, `mmu_update`, `mmuext_op`,
//! `multicall_entry`.

// Constants keep Xen's spellings (`__HYPERVISOR_mmu_update`, `VIRQ_TIMER`).
#![allow(non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86_32::{AbiU64, ArchSharedInfo, ArchVcpuInfo, XEN_LEGACY_MAX_VCPUS};
use crate::p2m::{Mfn, Pfn};

// ---------------------------------------------------------------------------
// Hypercall numbers (`__HYPERVISOR_*`). A call goes to
// `hypercall_page + nr * 32`.

/// `__HYPERVISOR_set_trap_table`.
pub const __HYPERVISOR_set_trap_table: u32 = 0;
/// `__HYPERVISOR_mmu_update`.
pub const __HYPERVISOR_mmu_update: u32 = 1;
/// `__HYPERVISOR_set_gdt`.
pub const __HYPERVISOR_set_gdt: u32 = 2;
/// `__HYPERVISOR_stack_switch`.
pub const __HYPERVISOR_stack_switch: u32 = 3;
/// `__HYPERVISOR_set_callbacks`.
pub const __HYPERVISOR_set_callbacks: u32 = 4;
/// `__HYPERVISOR_fpu_taskswitch`.
pub const __HYPERVISOR_fpu_taskswitch: u32 = 5;
/// `__HYPERVISOR_sched_op_compat` (the pre-0x00030101 `sched_op`).
pub const __HYPERVISOR_sched_op_compat: u32 = 6;
/// `__HYPERVISOR_platform_op` (formerly `dom0_op`).
pub const __HYPERVISOR_platform_op: u32 = 7;
/// `__HYPERVISOR_set_debugreg`.
pub const __HYPERVISOR_set_debugreg: u32 = 8;
/// `__HYPERVISOR_get_debugreg`.
pub const __HYPERVISOR_get_debugreg: u32 = 9;
/// `__HYPERVISOR_update_descriptor`.
pub const __HYPERVISOR_update_descriptor: u32 = 10;
/// `__HYPERVISOR_memory_op`.
pub const __HYPERVISOR_memory_op: u32 = 12;
/// `__HYPERVISOR_multicall`.
pub const __HYPERVISOR_multicall: u32 = 13;
/// `__HYPERVISOR_update_va_mapping`.
pub const __HYPERVISOR_update_va_mapping: u32 = 14;
/// `__HYPERVISOR_set_timer_op`.
pub const __HYPERVISOR_set_timer_op: u32 = 15;
/// `__HYPERVISOR_event_channel_op_compat` (the pre-0x00030202 form).
pub const __HYPERVISOR_event_channel_op_compat: u32 = 16;
/// `__HYPERVISOR_xen_version`.
pub const __HYPERVISOR_xen_version: u32 = 17;
/// `__HYPERVISOR_console_io`.
pub const __HYPERVISOR_console_io: u32 = 18;
/// `__HYPERVISOR_physdev_op_compat` (the pre-0x00030202 form).
pub const __HYPERVISOR_physdev_op_compat: u32 = 19;
/// `__HYPERVISOR_grant_table_op`.
pub const __HYPERVISOR_grant_table_op: u32 = 20;
/// `__HYPERVISOR_vm_assist`.
pub const __HYPERVISOR_vm_assist: u32 = 21;
/// `__HYPERVISOR_update_va_mapping_otherdomain`.
pub const __HYPERVISOR_update_va_mapping_otherdomain: u32 = 22;
/// `__HYPERVISOR_iret` (x86 only). Its stub does not return: jump to it.
pub const __HYPERVISOR_iret: u32 = 23;
/// `__HYPERVISOR_vcpu_op`.
pub const __HYPERVISOR_vcpu_op: u32 = 24;
/// `__HYPERVISOR_set_segment_base` (x86-64 only).
pub const __HYPERVISOR_set_segment_base: u32 = 25;
/// `__HYPERVISOR_mmuext_op`.
pub const __HYPERVISOR_mmuext_op: u32 = 26;
/// `__HYPERVISOR_xsm_op`.
pub const __HYPERVISOR_xsm_op: u32 = 27;
/// `__HYPERVISOR_nmi_op`.
pub const __HYPERVISOR_nmi_op: u32 = 28;
/// `__HYPERVISOR_sched_op`.
pub const __HYPERVISOR_sched_op: u32 = 29;
/// `__HYPERVISOR_callback_op`.
pub const __HYPERVISOR_callback_op: u32 = 30;
/// `__HYPERVISOR_xenoprof_op`.
pub const __HYPERVISOR_xenoprof_op: u32 = 31;
/// `__HYPERVISOR_event_channel_op`.
pub const __HYPERVISOR_event_channel_op: u32 = 32;
/// `__HYPERVISOR_physdev_op`.
pub const __HYPERVISOR_physdev_op: u32 = 33;
/// `__HYPERVISOR_hvm_op`.
pub const __HYPERVISOR_hvm_op: u32 = 34;
/// `__HYPERVISOR_sysctl`.
pub const __HYPERVISOR_sysctl: u32 = 35;
/// `__HYPERVISOR_domctl`.
pub const __HYPERVISOR_domctl: u32 = 36;
/// `__HYPERVISOR_kexec_op`.
pub const __HYPERVISOR_kexec_op: u32 = 37;
/// `__HYPERVISOR_tmem_op`.
pub const __HYPERVISOR_tmem_op: u32 = 38;
/// `__HYPERVISOR_argo_op`.
pub const __HYPERVISOR_argo_op: u32 = 39;
/// `__HYPERVISOR_xenpmu_op`.
pub const __HYPERVISOR_xenpmu_op: u32 = 40;
/// `__HYPERVISOR_dm_op`.
pub const __HYPERVISOR_dm_op: u32 = 41;
/// `__HYPERVISOR_hypfs_op`.
pub const __HYPERVISOR_hypfs_op: u32 = 42;
/// `__HYPERVISOR_arch_0`.
pub const __HYPERVISOR_arch_0: u32 = 48;
/// `__HYPERVISOR_arch_1`.
pub const __HYPERVISOR_arch_1: u32 = 49;
/// `__HYPERVISOR_arch_2`.
pub const __HYPERVISOR_arch_2: u32 = 50;
/// `__HYPERVISOR_arch_3`.
pub const __HYPERVISOR_arch_3: u32 = 51;
/// `__HYPERVISOR_arch_4`.
pub const __HYPERVISOR_arch_4: u32 = 52;
/// `__HYPERVISOR_arch_5`.
pub const __HYPERVISOR_arch_5: u32 = 53;
/// `__HYPERVISOR_arch_6`.
pub const __HYPERVISOR_arch_6: u32 = 54;
/// `__HYPERVISOR_arch_7`.
pub const __HYPERVISOR_arch_7: u32 = 55;

/// Bytes per stub in the hypercall page: hypercall `nr` is at `nr * 32`.
pub const HYPERCALL_STUB_SIZE: u32 = 32;

/// The Xen name of hypercall `nr` (without `__HYPERVISOR_`), for diagnostics.
pub const fn hypercall_name(nr: u32) -> Option<&'static str> {
    Some(match nr {
        0 => "set_trap_table",
        1 => "mmu_update",
        2 => "set_gdt",
        3 => "stack_switch",
        4 => "set_callbacks",
        5 => "fpu_taskswitch",
        6 => "sched_op_compat",
        7 => "platform_op",
        8 => "set_debugreg",
        9 => "get_debugreg",
        10 => "update_descriptor",
        12 => "memory_op",
        13 => "multicall",
        14 => "update_va_mapping",
        15 => "set_timer_op",
        16 => "event_channel_op_compat",
        17 => "xen_version",
        18 => "console_io",
        19 => "physdev_op_compat",
        20 => "grant_table_op",
        21 => "vm_assist",
        22 => "update_va_mapping_otherdomain",
        23 => "iret",
        24 => "vcpu_op",
        25 => "set_segment_base",
        26 => "mmuext_op",
        27 => "xsm_op",
        28 => "nmi_op",
        29 => "sched_op",
        30 => "callback_op",
        31 => "xenoprof_op",
        32 => "event_channel_op",
        33 => "physdev_op",
        34 => "hvm_op",
        35 => "sysctl",
        36 => "domctl",
        37 => "kexec_op",
        38 => "tmem_op",
        39 => "argo_op",
        40 => "xenpmu_op",
        41 => "dm_op",
        42 => "hypfs_op",
        48 => "arch_0",
        49 => "arch_1",
        50 => "arch_2",
        51 => "arch_3",
        52 => "arch_4",
        53 => "arch_5",
        54 => "arch_6",
        55 => "arch_7",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Virtual interrupts (`enum virq`). "V" ones are per vCPU, "G" ones global
// (normally bound by dom0).

/// `VIRQ_TIMER` (V): timer set with `set_timer_op` / `VCPUOP_*_timer` fired.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG` (V): dump debug information.
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE` (G, dom0): bytes on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC` (G, dom0): exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF` (G, dom0): trace buffer records available.
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_DEBUGGER` (G, dom0): a domain paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// `VIRQ_XENOPROF` (V): new profiling sample.
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_CON_RING` (G, dom0): bytes on the console.
pub const VIRQ_CON_RING: u32 = 8;
/// `VIRQ_PCPU_STATE` (G, dom0): physical CPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// `VIRQ_MEM_EVENT` (G, dom0): a memory event occurred.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// `VIRQ_ARGO` (G): Argo message notification.
pub const VIRQ_ARGO: u32 = 11;
/// `VIRQ_ENOMEM` (G, dom0): hypervisor heap low.
pub const VIRQ_ENOMEM: u32 = 12;
/// `VIRQ_XENPMU` (V): PMC interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// `VIRQ_ARCH_0`; the architecture VIRQs are 16..=23.
pub const VIRQ_ARCH_0: u32 = 16;
/// `VIRQ_ARCH_7`.
pub const VIRQ_ARCH_7: u32 = 23;
/// `NR_VIRQS`.
pub const NR_VIRQS: u32 = 24;

// ---------------------------------------------------------------------------
// HYPERVISOR_mmu_update commands: the low two bits of `mmu_update.ptr`.

/// `MMU_NORMAL_PT_UPDATE`: checked `*ptr = val`; `ptr` is the machine address
/// of the entry.
pub const MMU_NORMAL_PT_UPDATE: u32 = 0;
/// `MMU_MACHPHYS_UPDATE`: `ptr` is a machine address in the frame, `val` the
/// pseudo-physical frame to record in the M2P.
pub const MMU_MACHPHYS_UPDATE: u32 = 1;
/// `MMU_PT_UPDATE_PRESERVE_AD`: like `MMU_NORMAL_PT_UPDATE`, but the entry's
/// current Accessed/Dirty bits are ORed into `val` atomically.
pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 2;
/// `MMU_PT_UPDATE_NO_TRANSLATE`: checked `*ptr = val`, `val` never translated.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u32 = 3;

// ---------------------------------------------------------------------------
// HYPERVISOR_mmuext_op commands (`enum mmuext_cmd`).

/// `MMUEXT_PIN_L1_TABLE`: validate and pin an L1 (`arg1.mfn`).
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `MMUEXT_PIN_L2_TABLE`.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `MMUEXT_PIN_L3_TABLE`: the root of a PAE guest's address space.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `MMUEXT_PIN_L4_TABLE` (a no-op for a 32-bit guest).
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `MMUEXT_UNPIN_TABLE` (`arg1.mfn`).
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `MMUEXT_NEW_BASEPTR`: switch to the L3 at `arg1.mfn`.
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `MMUEXT_TLB_FLUSH_LOCAL`.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `MMUEXT_INVLPG_LOCAL` (`arg1.linear_addr`).
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `MMUEXT_TLB_FLUSH_MULTI` (`arg2.vcpumask`: address of a vCPU bitmap).
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// `MMUEXT_INVLPG_MULTI` (`arg1.linear_addr`, `arg2.vcpumask`).
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// `MMUEXT_TLB_FLUSH_ALL`.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `MMUEXT_INVLPG_ALL` (`arg1.linear_addr`).
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `MMUEXT_FLUSH_CACHE` (needs cache-flush permission).
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// `MMUEXT_SET_LDT` (`arg1.linear_addr`, `arg2.nr_ents`).
pub const MMUEXT_SET_LDT: u32 = 13;
/// `MMUEXT_NEW_USER_BASEPTR` (x86-64 only; `-EINVAL` for a 32-bit guest).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `MMUEXT_CLEAR_PAGE` (`arg1.mfn`).
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `MMUEXT_COPY_PAGE` (`arg1.mfn` destination, `arg2.src_mfn`).
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// `MMUEXT_FLUSH_CACHE_GLOBAL`.
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// `MMUEXT_MARK_SUPER` (`-EOPNOTSUPP` in 4.17).
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// `MMUEXT_UNMARK_SUPER` (`-EOPNOTSUPP` in 4.17).
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

// ---------------------------------------------------------------------------
// HYPERVISOR_update_va_mapping flags (`enum uvm_flags`).

/// `UVMF_NONE`: no flush.
pub const UVMF_NONE: u32 = 0;
/// `UVMF_TLB_FLUSH`: flush the whole TLB(s).
pub const UVMF_TLB_FLUSH: u32 = 1;
/// `UVMF_INVLPG`: flush only the one entry.
pub const UVMF_INVLPG: u32 = 2;
/// `UVMF_FLUSHTYPE_MASK`.
pub const UVMF_FLUSHTYPE_MASK: u32 = 3;
/// `UVMF_MULTI`: flush a subset of vCPUs; OR the address of a vCPU bitmap
/// into the flags.
pub const UVMF_MULTI: u32 = 0;
/// `UVMF_LOCAL`: flush this vCPU only (`UVMF_MULTI` with a null bitmap).
pub const UVMF_LOCAL: u32 = 0;
/// `UVMF_ALL`: flush every vCPU.
pub const UVMF_ALL: u32 = 1 << 2;

// ---------------------------------------------------------------------------
// HYPERVISOR_console_io commands.

/// `CONSOLEIO_write`.
pub const CONSOLEIO_write: u32 = 0;
/// `CONSOLEIO_read`.
pub const CONSOLEIO_read: u32 = 1;

// ---------------------------------------------------------------------------
// HYPERVISOR_vm_assist.

/// `VMASST_CMD_enable`.
pub const VMASST_CMD_enable: u32 = 0;
/// `VMASST_CMD_disable`.
pub const VMASST_CMD_disable: u32 = 1;
/// `VMASST_TYPE_4gb_segments`: emulate full 4 GB segment limits (moot on the
/// 64-bit Xen, which does not truncate limits).
pub const VMASST_TYPE_4gb_segments: u32 = 0;
/// `VMASST_TYPE_4gb_segments_notify`: trap (vector 15) when the above is used.
pub const VMASST_TYPE_4gb_segments_notify: u32 = 1;
/// `VMASST_TYPE_writable_pagetables`: emulate ring-1 writes to read-only L1
/// page-table pages.
pub const VMASST_TYPE_writable_pagetables: u32 = 2;
/// `VMASST_TYPE_pae_extended_cr3`: PAE page directories above 4 GB.
pub const VMASST_TYPE_pae_extended_cr3: u32 = 3;
/// `VMASST_TYPE_architectural_iopl`: IOPL behaves as on hardware.
pub const VMASST_TYPE_architectural_iopl: u32 = 4;
/// `VMASST_TYPE_runstate_update_flag`: `XEN_RUNSTATE_UPDATE` in runstate areas.
pub const VMASST_TYPE_runstate_update_flag: u32 = 5;
/// `VMASST_TYPE_m2p_strict` (64-bit guests only).
pub const VMASST_TYPE_m2p_strict: u32 = 32;

// ---------------------------------------------------------------------------
// Domain ids.

/// `domid_t`.
#[doc(alias = "domid_t")]
pub type DomId = u16;

/// `DOMID_FIRST_RESERVED`: ids from here on are not ordinary domains.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
/// `DOMID_SELF`: the calling domain.
pub const DOMID_SELF: DomId = 0x7FF0;
/// `DOMID_IO`: I/O memory (privileged `mmu_update` foreign domain).
pub const DOMID_IO: DomId = 0x7FF1;
/// `DOMID_XEN`: Xen's own pages.
pub const DOMID_XEN: DomId = 0x7FF2;
/// `DOMID_COW`: copy-on-write shared pages.
pub const DOMID_COW: DomId = 0x7FF3;
/// `DOMID_INVALID`: pages with unknown owner.
pub const DOMID_INVALID: DomId = 0x7FF4;
/// `DOMID_IDLE`: the idle domain.
pub const DOMID_IDLE: DomId = 0x7FFF;
/// `DOMID_MASK`: valid domain id bits.
pub const DOMID_MASK: DomId = 0x7FFF;

// ---------------------------------------------------------------------------
// struct mmu_update

/// `struct mmu_update`: one request of `HYPERVISOR_mmu_update`.
///
/// `ptr` holds the machine address of the target (8-byte aligned) with the
/// command (`MMU_*`) in its low two bits.
#[doc(alias = "mmu_update")]
#[doc(alias = "mmu_update_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MmuUpdate {
    /// Machine address of the entry, ORed with the `MMU_*` command.
    pub ptr: AbiU64,
    /// New contents of the entry (or the PFN, for `MMU_MACHPHYS_UPDATE`).
    pub val: AbiU64,
}

assert_abi_layout!(MmuUpdate, size = 16, align = 4, ptr = 0, val = 8);

impl MmuUpdate {
    /// `MMU_NORMAL_PT_UPDATE`: write `val` into the page-table entry at
    /// machine address `entry_maddr` (8-byte aligned), validated by Xen.
    pub const fn normal_pt_update(entry_maddr: u64, val: u64) -> Self {
        Self::with_command(MMU_NORMAL_PT_UPDATE, entry_maddr, val)
    }

    /// `MMU_PT_UPDATE_PRESERVE_AD`: like [`normal_pt_update`](Self::normal_pt_update)
    /// but Xen keeps the entry's current Accessed/Dirty bits.
    pub const fn pt_update_preserve_ad(entry_maddr: u64, val: u64) -> Self {
        Self::with_command(MMU_PT_UPDATE_PRESERVE_AD, entry_maddr, val)
    }

    /// `MMU_MACHPHYS_UPDATE`: record that machine frame `mfn` backs
    /// pseudo-physical frame `pfn`.
    pub const fn machphys_update(mfn: Mfn, pfn: Pfn) -> Self {
        Self::with_command(MMU_MACHPHYS_UPDATE, (mfn.0 as u64) << 12, pfn.0 as u64)
    }

    /// A request with command `cmd` (`MMU_*`) on machine address `maddr`.
    pub const fn with_command(cmd: u32, maddr: u64, val: u64) -> Self {
        Self {
            ptr: AbiU64::new((maddr & !3) | (cmd as u64 & 3)),
            val: AbiU64::new(val),
        }
    }

    /// The `MMU_*` command.
    pub const fn command(&self) -> u32 {
        (self.ptr.get() & 3) as u32
    }

    /// The machine address (command bits cleared).
    pub const fn machine_addr(&self) -> u64 {
        self.ptr.get() & !3
    }
}

// ---------------------------------------------------------------------------
// struct mmuext_op

/// `struct mmuext_op` (x86_32): one request of `HYPERVISOR_mmuext_op`.
///
/// On x86_32 both unions are one 32-bit word: `arg1` is `mfn` or
/// `linear_addr`, `arg2` is `nr_ents`, `vcpumask` (a guest address) or
/// `src_mfn`, depending on `cmd`.
#[doc(alias = "mmuext_op")]
#[doc(alias = "mmuext_op_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MmuextOp {
    /// `MMUEXT_*`.
    pub cmd: u32,
    /// `arg1.mfn` or `arg1.linear_addr`.
    pub arg1: u32,
    /// `arg2.nr_ents`, `arg2.vcpumask` or `arg2.src_mfn`.
    pub arg2: u32,
}

assert_abi_layout!(MmuextOp, size = 12, align = 4, cmd = 0, arg1 = 4, arg2 = 8);

impl MmuextOp {
    const fn op(cmd: u32, arg1: u32, arg2: u32) -> Self {
        Self { cmd, arg1, arg2 }
    }
    /// `MMUEXT_PIN_L1_TABLE`.
    pub const fn pin_l1_table(mfn: Mfn) -> Self {
        Self::op(MMUEXT_PIN_L1_TABLE, mfn.0, 0)
    }
    /// `MMUEXT_PIN_L2_TABLE`.
    pub const fn pin_l2_table(mfn: Mfn) -> Self {
        Self::op(MMUEXT_PIN_L2_TABLE, mfn.0, 0)
    }
    /// `MMUEXT_PIN_L3_TABLE`: pin the root (PDPT) of a PAE address space.
    pub const fn pin_l3_table(mfn: Mfn) -> Self {
        Self::op(MMUEXT_PIN_L3_TABLE, mfn.0, 0)
    }
    /// `MMUEXT_UNPIN_TABLE`.
    pub const fn unpin_table(mfn: Mfn) -> Self {
        Self::op(MMUEXT_UNPIN_TABLE, mfn.0, 0)
    }
    /// `MMUEXT_NEW_BASEPTR`: load the L3 at machine frame `mfn`.
    pub const fn new_baseptr(mfn: Mfn) -> Self {
        Self::op(MMUEXT_NEW_BASEPTR, mfn.0, 0)
    }
    /// `MMUEXT_TLB_FLUSH_LOCAL`.
    pub const fn tlb_flush_local() -> Self {
        Self::op(MMUEXT_TLB_FLUSH_LOCAL, 0, 0)
    }
    /// `MMUEXT_INVLPG_LOCAL`.
    pub const fn invlpg_local(linear_addr: u32) -> Self {
        Self::op(MMUEXT_INVLPG_LOCAL, linear_addr, 0)
    }
    /// `MMUEXT_TLB_FLUSH_MULTI`: `vcpumask` is the guest address of a vCPU
    /// bitmap.
    pub const fn tlb_flush_multi(vcpumask: u32) -> Self {
        Self::op(MMUEXT_TLB_FLUSH_MULTI, 0, vcpumask)
    }
    /// `MMUEXT_INVLPG_MULTI`.
    pub const fn invlpg_multi(linear_addr: u32, vcpumask: u32) -> Self {
        Self::op(MMUEXT_INVLPG_MULTI, linear_addr, vcpumask)
    }
    /// `MMUEXT_TLB_FLUSH_ALL`.
    pub const fn tlb_flush_all() -> Self {
        Self::op(MMUEXT_TLB_FLUSH_ALL, 0, 0)
    }
    /// `MMUEXT_INVLPG_ALL`.
    pub const fn invlpg_all(linear_addr: u32) -> Self {
        Self::op(MMUEXT_INVLPG_ALL, linear_addr, 0)
    }
    /// `MMUEXT_FLUSH_CACHE`.
    pub const fn flush_cache() -> Self {
        Self::op(MMUEXT_FLUSH_CACHE, 0, 0)
    }
    /// `MMUEXT_FLUSH_CACHE_GLOBAL`.
    pub const fn flush_cache_global() -> Self {
        Self::op(MMUEXT_FLUSH_CACHE_GLOBAL, 0, 0)
    }
    /// `MMUEXT_SET_LDT`: `linear_addr` page aligned, at most 8192 entries.
    pub const fn set_ldt(linear_addr: u32, nr_ents: u32) -> Self {
        Self::op(MMUEXT_SET_LDT, linear_addr, nr_ents)
    }
    /// `MMUEXT_CLEAR_PAGE`.
    pub const fn clear_page(mfn: Mfn) -> Self {
        Self::op(MMUEXT_CLEAR_PAGE, mfn.0, 0)
    }
    /// `MMUEXT_COPY_PAGE`: copy frame `src` to frame `dst`.
    pub const fn copy_page(dst: Mfn, src: Mfn) -> Self {
        Self::op(MMUEXT_COPY_PAGE, dst.0, src.0)
    }
}

// ---------------------------------------------------------------------------
// struct multicall_entry

/// `struct multicall_entry` (x86_32): one hypercall of `HYPERVISOR_multicall`.
///
/// `args` hold the register arguments in order (64-bit values split lo, hi).
/// Xen writes the call's return value into `result`; a debug Xen overwrites
/// the rest of the entry with 0xAA bytes, so only `result` may be relied on
/// afterwards.
#[doc(alias = "multicall_entry")]
#[doc(alias = "multicall_entry_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct MulticallEntry {
    /// `__HYPERVISOR_*`.
    pub op: u32,
    /// The call's result (a `long`: negative errno on failure).
    pub result: u32,
    /// Arguments 1-6 (only 1-5 are used).
    pub args: [u32; 6],
}

assert_abi_layout!(
    MulticallEntry,
    size = 32,
    align = 4,
    op = 0,
    result = 4,
    args = 8
);

// ---------------------------------------------------------------------------
// Time

/// `XEN_PVCLOCK_TSC_STABLE_BIT` in `vcpu_time_info.flags`.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED` in `vcpu_time_info.flags`.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info`: the per-vCPU system-time parameters Xen keeps
/// up to date, read under the `version` seqlock (see [`crate::time`]).
///
/// System time (ns since boot) =
/// `system_time + (((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32`,
/// shifting right for a negative `tsc_shift`.
#[doc(alias = "vcpu_time_info")]
#[doc(alias = "vcpu_time_info_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the fields; changes on every update.
    pub version: u32,
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: AbiU64,
    /// System time (ns) at the last update.
    pub system_time: AbiU64,
    /// TSC-to-ns multiplier, a 32.32 fixed-point fraction.
    pub tsc_to_system_mul: u32,
    /// Power-of-two pre-scaling of the TSC delta.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*`.
    pub flags: u8,
    pub pad1: [u8; 2],
}

assert_abi_layout!(
    VcpuTimeInfo,
    size = 32,
    align = 4,
    version = 0,
    pad0 = 4,
    tsc_timestamp = 8,
    system_time = 16,
    tsc_to_system_mul = 24,
    tsc_shift = 28,
    flags = 29,
    pad1 = 30,
);

// ---------------------------------------------------------------------------
// struct vcpu_info / shared_info

/// `struct vcpu_info`: per-vCPU event and time state, 64 bytes; vCPU `n`'s
/// lives at `shared_info + n * 64` (or where `VCPUOP_register_vcpu_info` put
/// it).
///
/// Xen delivers an event upcall only while `evtchn_upcall_pending != 0` and
/// `evtchn_upcall_mask == 0`; the mask is the guest's "cli" flag.
#[doc(alias = "vcpu_info")]
#[doc(alias = "vcpu_info_t")]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending; the guest clears it before
    /// scanning.
    pub evtchn_upcall_pending: u8,
    /// Non-zero: no upcalls (events masked).
    pub evtchn_upcall_mask: u8,
    pub _pad0: [u8; 2],
    /// Bit `i`: look at word `i` of `shared_info.evtchn_pending`.
    pub evtchn_pending_sel: u32,
    pub arch: ArchVcpuInfo,
    pub time: VcpuTimeInfo,
}

assert_abi_layout!(
    VcpuInfo,
    size = 64,
    align = 4,
    evtchn_upcall_pending = 0,
    evtchn_upcall_mask = 1,
    evtchn_pending_sel = 4,
    arch = 8,
    arch.cr2 = 8,
    time = 32,
    time.version = 32,
    time.system_time = 48,
);

/// `struct shared_info` (x86_32): the page Xen shares with the domain, at
/// the machine address in `start_info.shared_info` (the guest maps it
/// itself).
#[doc(alias = "shared_info")]
#[doc(alias = "shared_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level event channels: port `p` is bit `p % 32` of word `p / 32`.
    pub evtchn_pending: [u32; 32],
    /// Masked ports, same indexing; only the guest writes it.
    pub evtchn_mask: [u32; 32],
    /// Wall-clock seqlock (odd while updating).
    pub wc_version: u32,
    /// Wall clock (UTC) at system time 0: seconds, low 32 bits (high bits in
    /// `arch.wc_sec_hi`).
    pub wc_sec: u32,
    /// Wall clock at system time 0: nanoseconds.
    pub wc_nsec: u32,
    pub arch: ArchSharedInfo,
}

assert_abi_layout!(
    SharedInfo,
    size = 2344,
    align = 4,
    vcpu_info = 0,
    evtchn_pending = 2048,
    evtchn_mask = 2176,
    wc_version = 2304,
    wc_sec = 2308,
    wc_nsec = 2312,
    arch = 2316,
    arch.wc_sec_hi = 2340,
);

// ---------------------------------------------------------------------------
// struct start_info

/// `MAX_GUEST_CMDLINE`.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `SIF_PRIVILEGED`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN`: the domain is the initial control domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`: `mod_start` is a multiboot module list.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`: `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`: the tools understand a virtually mapped p2m.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// `SIF_PM_MASK`: reserved for power-management options.
pub const SIF_PM_MASK: u32 = 0xFF << 8;

/// The `console` union of `start_info`: `domU {mfn, evtchn}` for a domU,
/// `dom0 {info_off, info_size}` for dom0. Both are two 32-bit words.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct StartInfoConsole {
    /// `console.domU.mfn` (machine frame of the console ring), or
    /// `console.dom0.info_off` (offset of a `dom0_vga_console_info` in the
    /// start-info page).
    #[doc(alias = "info_off")]
    pub mfn: u32,
    /// `console.domU.evtchn`, or `console.dom0.info_size`.
    #[doc(alias = "info_size")]
    pub evtchn: u32,
}

assert_abi_layout!(StartInfoConsole, size = 8, align = 4, mfn = 0, evtchn = 4);

impl StartInfoConsole {
    /// `console.dom0.info_off`.
    pub const fn dom0_info_off(&self) -> u32 {
        self.mfn
    }
    /// `console.dom0.info_size`.
    pub const fn dom0_info_size(&self) -> u32 {
        self.evtchn
    }
}

/// `struct start_info` (x86_32): what the domain builder tells a PV guest;
/// its virtual address arrives in `%esi` at the entry point.
#[doc(alias = "start_info")]
#[doc(alias = "start_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, e.g. "xen-3.0-x86_32p", NUL padded.
    pub magic: [u8; 32],
    /// Pages allocated to the domain.
    pub nr_pages: u32,
    /// MACHINE address of the shared-info page (not mapped for the guest).
    pub shared_info: u32,
    /// `SIF_*`.
    pub flags: u32,
    /// Machine frame of the xenstore ring.
    pub store_mfn: u32,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    pub console: StartInfoConsole,
    /// VIRTUAL address of the top-level page table (the PAE L3).
    pub pt_base: u32,
    /// Bootstrap page-table frames, starting at `pt_base`.
    pub nr_pt_frames: u32,
    /// VIRTUAL address of the p2m array (`u32` MFN per PFN).
    pub mfn_list: u32,
    /// VIRTUAL address of the module (initrd), or its PFN with
    /// `SIF_MOD_START_PFN`.
    pub mod_start: u32,
    /// Module size in bytes.
    pub mod_len: u32,
    /// Command line, NUL terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial p2m table (x86-64 `INIT_P2M` only).
    pub first_p2m_pfn: u32,
    /// Frames of the initial p2m table.
    pub nr_p2m_frames: u32,
}

assert_abi_layout!(
    StartInfo,
    size = 1112,
    align = 4,
    magic = 0x000,
    nr_pages = 0x020,
    shared_info = 0x024,
    flags = 0x028,
    store_mfn = 0x02C,
    store_evtchn = 0x030,
    console = 0x034,
    console.evtchn = 0x038,
    pt_base = 0x03C,
    nr_pt_frames = 0x040,
    mfn_list = 0x044,
    mod_start = 0x048,
    mod_len = 0x04C,
    cmd_line = 0x050,
    first_p2m_pfn = 0x450,
    nr_p2m_frames = 0x454,
);

/// The bytes of `buf` up to (not including) its first NUL.
fn until_nul(buf: &[u8]) -> &[u8] {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..len]
}

impl StartInfo {
    /// `magic` without its NUL padding.
    pub fn magic_bytes(&self) -> &[u8] {
        until_nul(&self.magic)
    }

    /// `cmd_line` up to its NUL.
    pub fn cmd_line_bytes(&self) -> &[u8] {
        until_nul(&self.cmd_line)
    }

    /// Whether `magic` starts with "xen-3.0" (every 3.x/4.x PV guest type).
    pub fn magic_is_xen_3_0(&self) -> bool {
        self.magic.starts_with(b"xen-3.0")
    }

    /// `SIF_INITDOMAIN`: this is dom0, `console` holds the dom0 variant.
    pub const fn is_initial_domain(&self) -> bool {
        self.flags & SIF_INITDOMAIN != 0
    }

    /// `SIF_PRIVILEGED`.
    pub const fn is_privileged(&self) -> bool {
        self.flags & SIF_PRIVILEGED != 0
    }
}

#[cfg(test)]
mod tests {
    use zerocopy::FromZeros;

    use super::*;

    #[test]
    fn mmu_update_packs_command_in_low_bits() {
        let u = MmuUpdate::normal_pt_update(0x1_2345_6788, 0x8000_0001_2345_6067);
        assert_eq!(u.command(), MMU_NORMAL_PT_UPDATE);
        assert_eq!(u.machine_addr(), 0x1_2345_6788);
        let u = MmuUpdate::pt_update_preserve_ad(0x1000, 7);
        assert_eq!(u.ptr.get(), 0x1002);
        let u = MmuUpdate::machphys_update(Mfn(0x12345), Pfn(0x42));
        assert_eq!(u.ptr.get(), 0x1234_5001);
        assert_eq!(u.val.get(), 0x42);
        // Bytes as Xen reads them: ptr then val, little endian.
        let bytes = u.as_bytes();
        assert_eq!(&bytes[0..8], &0x1234_5001u64.to_le_bytes());
        assert_eq!(&bytes[8..16], &0x42u64.to_le_bytes());
    }

    #[test]
    fn mmuext_constructors_fill_the_right_words() {
        assert_eq!(
            MmuextOp::pin_l3_table(Mfn(9)),
            MmuextOp {
                cmd: 2,
                arg1: 9,
                arg2: 0
            }
        );
        assert_eq!(
            MmuextOp::set_ldt(0x8000, 3),
            MmuextOp {
                cmd: 13,
                arg1: 0x8000,
                arg2: 3
            }
        );
        assert_eq!(
            MmuextOp::copy_page(Mfn(1), Mfn(2)),
            MmuextOp {
                cmd: 17,
                arg1: 1,
                arg2: 2
            }
        );
        assert_eq!(MmuextOp::invlpg_multi(0x4000, 0x9000).arg2, 0x9000);
    }

    #[test]
    fn start_info_string_helpers() {
        let mut si = StartInfo::new_zeroed();
        si.magic[..15].copy_from_slice(b"xen-3.0-x86_32p");
        si.cmd_line[..5].copy_from_slice(b"ro q\0");
        si.flags = SIF_INITDOMAIN | SIF_PRIVILEGED;
        assert_eq!(si.magic_bytes(), b"xen-3.0-x86_32p");
        assert!(si.magic_is_xen_3_0());
        assert_eq!(si.cmd_line_bytes(), b"ro q");
        assert!(si.is_initial_domain() && si.is_privileged());
    }

    #[test]
    fn hypercall_names() {
        assert_eq!(hypercall_name(__HYPERVISOR_mmu_update), Some("mmu_update"));
        assert_eq!(hypercall_name(__HYPERVISOR_arch_7), Some("arch_7"));
        assert_eq!(hypercall_name(11), None);
        assert_eq!(hypercall_name(56), None);
    }
}
