//! Ring 3 against what only the kernel (and the hypervisor's ROM) may
//! touch: the area above `virtual_top` the ROM keeps for itself, the ROM
//! image as the kernel maps it, the kernel's page tables and descriptor
//! tables. Every access must fault (#PF from user mode, CR2 = the address)
//! and change nothing.

use super::{ensure, pass, skip, Outcome};
use crate::desc::GDT;
use crate::user::{self, Snippet, UserRegs};
use crate::{mm, pv};

/// EFLAGS for the user runs: IF set.
const USER_EFLAGS: u32 = 0x202;
/// #PF error code bit: the access came from user mode.
const PF_USER: u32 = 1 << 2;
/// #PF error code bit: the access was a write.
const PF_WRITE: u32 = 1 << 1;

/// Runs a ring-3 load (`write` false) or store of `addr`: how it ended.
fn user_access(addr: u32, write: bool) -> user::UserExit {
    let regs = UserRegs {
        ebx: addr,
        ecx: 0xBAD0_BAD0,
        ..UserRegs::default()
    };
    let snippet = if write { Snippet::Store } else { Snippet::Load };
    user::run_iret(snippet, regs, USER_EFLAGS)
}

/// Runs a ring-3 load (`write` false) or store of `addr` and checks it
/// faulted as a user-mode #PF at `addr`: None if so, else the failure.
fn user_access_faults(what: &str, addr: u32, write: bool) -> Option<Outcome> {
    let exit = user_access(addr, write);
    let f = &exit.frame;
    let want_error = PF_USER | if write { PF_WRITE } else { 0 };
    if f.vector != 14 || f.error_code & (PF_USER | PF_WRITE) != want_error || exit.cr2 != addr {
        return Some(Outcome::fail(format_args!(
            "ring 3 {} of {what} at {addr:#x}: vector {:#x} error {:#x} cr2 {:#x}, expected #PF from user mode",
            if write { "write" } else { "read" },
            f.vector,
            f.error_code,
            exit.cr2
        )));
    }
    None
}

pub fn user_cannot_reach_rom_or_tables() -> Outcome {
    let Some(space) = mm::kernel_space() else {
        skip!("paging is not enabled (mmu_enable_pae_paging failed)");
    };
    let gdt = GDT.as_ptr() as u32;
    let gdt_before = kernel_word(gdt);
    // The ROM's private area (or, with no ROM, the same top of the address
    // space, which nothing maps).
    let top = match pv::virtual_top() {
        0 => 0xFFC0_0000,
        t => t,
    };
    let checks: [(&str, u32, bool); 5] = [
        ("the area above virtual_top", top, false),
        ("the area above virtual_top", top, true),
        ("the kernel's page directory", space.pd[3], false),
        ("the kernel's page directory", space.pd[3], true),
        ("the GDT", gdt, true),
    ];
    let mut tried = 0;
    for (what, addr, write) in checks {
        if let Some(o) = user_access_faults(what, addr, write) {
            return o;
        }
        tried += 1;
    }
    // The ROM image where the kernel mapped it, if there is one.
    if let Some((base, _)) = pv::rom_extent() {
        if let Some(o) = user_access_faults("the VMI ROM", base, false) {
            return o;
        }
        tried += 1;
    }
    ensure!(
        kernel_word(gdt) == gdt_before,
        "the GDT's first word changed under a faulting ring-3 write"
    );
    pass!("{tried} ring-3 accesses to the ROM's area, the ROM, the page directory and the GDT: each #PF from user mode")
}

fn kernel_word(addr: u32) -> u32 {
    // SAFETY: a kernel address of the kernel's own tables, mapped.
    unsafe { (addr as *const u32).read_volatile() }
}

/// A user page of its own, away from the other cases' test addresses.
const USER_RO_VA: u32 = mm::TEST_BASE + 0x0060_0000;

/// The #PF error code a ring-3 access gets is the processor's for the
/// kernel's tables: a write to a present read-only user page is a
/// protection fault (P set), also on its very first access; an access to
/// an address with no mapping is a not-present fault (P clear).
pub fn user_fault_error_codes() -> Outcome {
    if mm::kernel_space().is_none() {
        skip!("paging is not enabled (mmu_enable_pae_paging failed)");
    }
    let frame = mm::alloc_frame();
    mm::map(USER_RO_VA, frame, mm::PTE_P | mm::PTE_US);
    let read_only = user_access(USER_RO_VA, true);
    mm::unmap(USER_RO_VA);
    let unmapped = user_access(USER_RO_VA, true);
    let (ro, un) = (&read_only.frame, &unmapped.frame);
    ensure!(
        ro.vector == 14 && ro.error_code & 7 == 7 && read_only.cr2 == USER_RO_VA,
        "ring-3 write to a read-only user page: vector {:#x} error {:#x} cr2 {:#x}, expected #PF(7)",
        ro.vector,
        ro.error_code,
        read_only.cr2
    );
    ensure!(
        un.vector == 14 && un.error_code & 7 == 6 && unmapped.cr2 == USER_RO_VA,
        "ring-3 write to an unmapped address: vector {:#x} error {:#x} cr2 {:#x}, expected #PF(6)",
        un.vector,
        un.error_code,
        unmapped.cr2
    );
    pass!("first write to a read-only user page: #PF(7); to an unmapped one: #PF(6)")
}

/// Every ring-3 read and write of what the kernel maps supervisor-only —
/// the GDT, the IDT, a page table, the page directory, the ROM image —
/// is a protection #PF with the processor's exact error code (SDM vol. 3,
/// "Page-Fault Error Code": P set, U set, W for a write; no RSVD, no I/D),
/// CR2 the address, and leaves the word there unchanged.
pub fn user_cannot_touch_tables_exact_codes() -> Outcome {
    let Some(space) = mm::kernel_space() else {
        skip!("paging is not enabled (mmu_enable_pae_paging failed)");
    };
    let page_table = (mm::read_entry(mm::pde_ptr(&space, 0)) & mm::PTE_ADDR) as u32;
    let mut targets: [Option<(&str, u32)>; 5] = [
        Some(("the GDT", crate::desc::gdt_pointer().base)),
        Some(("the IDT", crate::desc::idt_pointer().base)),
        Some(("a page table", page_table)),
        Some(("the page directory", space.pd[0])),
        None,
    ];
    if let Some((base, _)) = pv::rom_extent() {
        targets[4] = Some(("the VMI ROM", base));
    }
    let mut tried = 0;
    for (what, addr) in targets.into_iter().flatten() {
        let before = kernel_word(addr);
        for write in [false, true] {
            let exit = user_access(addr, write);
            let f = &exit.frame;
            let want = 1 | PF_USER | if write { PF_WRITE } else { 0 };
            ensure!(
                f.vector == 14 && f.error_code & 0x1F == want && exit.cr2 == addr,
                "ring 3 {} of {what} at {addr:#x}: vector {:#x} error {:#x} cr2 {:#x}, expected #PF({want:#x})",
                if write { "write" } else { "read" },
                f.vector,
                f.error_code,
                exit.cr2
            );
            tried += 1;
        }
        ensure!(
            kernel_word(addr) == before,
            "{what}'s first word changed under a faulting ring-3 write"
        );
    }
    let rom = if targets[4].is_some() {
        ", the ROM"
    } else {
        " (no ROM here)"
    };
    pass!("{tried} ring-3 reads and writes of the GDT, IDT, a page table, the page directory{rom}: #PF(5) / #PF(7), nothing changed")
}
