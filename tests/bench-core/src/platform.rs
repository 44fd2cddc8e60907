//! What a kernel gives the benchmarks: the [`Platform`] (its privileged
//! operations, at the level of Linux's paravirt ops), and the
//! [`UserFrame`] view of its trap frame.
//!
//! Each operation's contract is the native one; a platform does the
//! cheapest correct thing for it (a VMI call, a hypercall batch, the
//! instruction). The benchmarks call the same operations in the same
//! order on every platform.

use core::fmt;

/// A 4 KiB frame, by the address the kernel maps it at (identity mapped:
/// the physical address natively, the pseudo-physical one on a
/// paravirtualized platform).
pub type Frame = u32;

/// Page size.
pub const PAGE_SIZE: u32 = 4096;

/// A range of user pages a space maps (Linux: a VMA), from `va` (page
/// aligned) for `pages` pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub va: u32,
    pub pages: u32,
}

impl Mapped {
    /// Calls `f(va, first, count)` for each page table the range crosses:
    /// `va` an address the table covers, `first` the range's first entry
    /// in it and `count` its entries there (Linux's `zap_pmd_range` step
    /// from one 2 MiB boundary to the next).
    pub fn for_each_table(&self, mut f: impl FnMut(u32, u32, u32)) {
        let mut va = self.va;
        let mut left = self.pages;
        while left > 0 {
            let first = (va >> 12) & 511;
            let count = left.min(512 - first);
            f(va, first, count);
            va = va.wrapping_add(count * PAGE_SIZE);
            left -= count;
        }
    }
}

/// An address space, as the platform names it (a page-directory-pointer
/// table's address, or an index into the platform's own table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceId(pub u32);

/// Lazy modes (Linux's `paravirt_lazy_mode`; VMI's SetLazyMode numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lazy {
    /// Updates take effect at once.
    None,
    /// Page-table updates may be queued until the mode ends.
    Mmu,
    /// CPU state updates (address space, kernel stack) may be queued
    /// until the mode ends (Linux's context switch).
    Cpu,
}

/// The user-visible registers of a ring-3 context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct UserState {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
    /// ESI.
    pub esi: u32,
    /// EDI.
    pub edi: u32,
    /// EBP.
    pub ebp: u32,
    /// EIP.
    pub eip: u32,
    /// ESP.
    pub esp: u32,
    /// EFLAGS.
    pub eflags: u32,
}

/// EFLAGS.IF.
pub const EFLAGS_IF: u32 = 1 << 9;
/// The EFLAGS bits ring 3 may choose (CF PF AF ZF SF TF DF OF; Intel SDM
/// vol. 1 "EFLAGS Register"): what a sigreturn takes from user memory.
pub const EFLAGS_USER_MASK: u32 = 0x0DD5;
/// EFLAGS for ring 3: IF set, reserved bit 1 set, IOPL 0.
pub const USER_EFLAGS: u32 = EFLAGS_IF | 0x2;

/// How a user run ended: the trap that the kernel service did not resume
/// from (a `SYS_EXIT`, or something unexpected).
#[derive(Clone, Copy, Debug, Default)]
pub struct UserExit {
    /// The trap's vector.
    pub vector: u32,
    /// Its error code (0 where there is none).
    pub error_code: u32,
    /// The registers at the trap.
    pub state: UserState,
}

/// The trap frame of a trap from ring 3, as the kernel service reads and
/// changes it (returning to ring 3 resumes with the changed registers).
pub trait UserFrame {
    /// Exception or interrupt vector.
    fn vector(&self) -> u32;
    /// Error code (0 where the processor pushes none).
    fn error_code(&self) -> u32;
    /// All user registers.
    fn state(&self) -> UserState;
    /// Replaces all user registers (the segment registers stay: every
    /// process runs on the same flat user segments).
    fn set_state(&mut self, state: &UserState);
    /// EAX (system call number on entry, result on return).
    fn eax(&self) -> u32;
    /// Sets EAX.
    fn set_eax(&mut self, value: u32);
    /// EBX (first system call argument).
    fn ebx(&self) -> u32;
    /// EIP.
    fn eip(&self) -> u32;
    /// Sets EIP.
    fn set_eip(&mut self, value: u32);
    /// ESP (ring 3's stack pointer).
    fn esp(&self) -> u32;
    /// Sets ESP.
    fn set_esp(&mut self, value: u32);
}

/// A kernel's privileged operations, as the benchmarks use them.
///
/// The implementations are zero-sized handles on the kernel's own state:
/// the trap path makes a new one to call [`crate::kernel::user_trap`].
pub trait Platform {
    /// Prints console text.
    fn print(&mut self, args: fmt::Arguments<'_>);
    /// The cycle counter (the TSC, read as the platform reads it).
    fn cycles(&mut self) -> u64;
    /// Cycles per second of [`Platform::cycles`].
    fn cycle_frequency(&mut self) -> u64;
    /// Hypercalls issued so far, where the platform can tell (None
    /// natively: no hypervisor, no figures).
    fn hypercalls(&mut self) -> Option<u32>;

    /// Disables interrupts (CLI, or its paravirtual form).
    fn irq_disable(&mut self);
    /// Enables interrupts; pending ones are delivered.
    fn irq_enable(&mut self);

    /// A frame never handed out before, zeroed and mapped read-write in
    /// the kernel's identity map (the pool in [`crate::frames`] keeps the
    /// frames it has and asks for more only when it runs out).
    fn new_frame(&mut self) -> Frame;

    /// The kernel's own address space (its user region is the
    /// benchmarks' too).
    fn kernel_space(&mut self) -> SpaceId;
    /// The address space loaded now.
    fn current_space(&mut self) -> SpaceId;
    /// A new address space: the kernel part as in the kernel's space, the
    /// user region empty (Linux's `pgd_alloc`).
    fn create_space(&mut self) -> SpaceId;
    /// Frees an address space that is not loaded, with its page tables
    /// (Linux's `exit_mmap` + `pgd_free`); the frames its user pages
    /// mapped stay the caller's. `mapped` lists every range the space
    /// maps (its VMAs): the teardown clears entries only there, as
    /// Linux's `unmap_vmas` walks only the VMAs' addresses.
    fn destroy_space(&mut self, space: SpaceId, mapped: &[Mapped]);
    /// Loads an address space (a CR3 load).
    fn switch_space(&mut self, space: SpaceId);
    /// The stack traps from ring 3 arrive on (TSS esp0).
    fn set_kernel_stack(&mut self, top: u32);
    /// The kernel stack the platform runs user code with outside the
    /// benchmarks.
    fn default_kernel_stack(&mut self) -> u32;
    /// Enters or leaves a lazy mode (leaving applies what was queued).
    fn set_lazy(&mut self, mode: Lazy);

    /// Maps user page `va` of `space` to `frame` (it was not present; no
    /// TLB flush is needed). Creates the page table if needed.
    fn map(&mut self, space: SpaceId, va: u32, frame: Frame, writable: bool);
    /// Clears the mapping of `va` in `space`; the caller flushes the TLB.
    fn unmap(&mut self, space: SpaceId, va: u32);
    /// Changes the access of the present mapping of `va` in `space`.
    /// Making it writable after a write fault needs no flush (the fault
    /// dropped the TLB entry); making it read-only, the caller flushes.
    fn protect(&mut self, space: SpaceId, va: u32, writable: bool);
    /// The present mapping of `va` in `space` as the kernel's own page
    /// tables hold it: (frame, writable).
    fn lookup(&mut self, space: SpaceId, va: u32) -> Option<(Frame, bool)>;
    /// Flushes the non-global TLB entries.
    fn flush_tlb(&mut self);
    /// Flushes the TLB entry of `va`.
    fn invalidate_page(&mut self, va: u32);

    /// Runs ring-3 code from `start` (interrupts enabled there) until the
    /// kernel service ([`crate::kernel::user_trap`]) declines to resume a
    /// trap; returns that trap.
    fn run_user(&mut self, start: &UserState) -> UserExit;

    /// Arms a one-shot alarm for cycle count `expiry` (its interrupt is
    /// counted by [`Platform::timer_interrupts`]).
    fn arm_alarm(&mut self, expiry: u64);
    /// Timer interrupts taken so far, and the cycle counter read at the
    /// start of the last one's handler.
    fn timer_interrupts(&mut self) -> (u32, u64);
}
