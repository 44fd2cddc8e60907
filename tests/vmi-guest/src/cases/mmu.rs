//! Paging through the VMI MMU calls: PAE tables built with AllocatePage and
//! SetPxELong and enabled with SetCR4/SetCR3/SetCR0; then SetPxE(Long),
//! UpdatePxE(Long), A/D bits, InvalPage, FlushTLB (local, global),
//! AllocatePage/ReleasePage (with CLONE), CR3 switches, lazy MMU mode,
//! SetLinearMapping, MachineToPhysical/PhysicalToMachine, NX and U/S.
//!
//! Only guarantees are checked, never stale-TLB behaviour (a hypervisor may
//! make an update visible earlier than the hardware would).

use vmi_abi::flags::{
    PageLevel, VMI_FLUSH_GLOBAL, VMI_FLUSH_TLB, VMI_LAZY_MMU, VMI_LAZY_NONE, VMI_PAGE_CLONE,
    VMI_PAGE_L1_PAE, VMI_PAGE_L2_PAE,
};
use vmi_abi::{VmiCall, VmiRelocationInfo, VmiRelocationType};

use native_rom::hw::cpu::{CR0_PG, CR0_WP, CR4_PAE, EFLAGS_IF};

use super::{ensure, ensure_eq, ensure_word, fail, pass, skip, Outcome};
use crate::mm::{
    self, AddressSpace, KERNEL_RW, PAGE_SIZE, PTE_A, PTE_ADDR, PTE_D, PTE_G, PTE_NX, PTE_P, PTE_RW,
    PTE_US,
};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::console::Text;
use crate::pv;
use crate::sync::Global;
use crate::trap::{catch, Fault};
use crate::user::{self, Snippet, UserRegs};

/// The test page.
const TEST_VA: u32 = mm::TEST_BASE;
/// Pages for the lazy-mode batch (their own page table).
const LAZY_VA: u32 = mm::TEST_BASE + (2 << 20);
/// A region whose page table a case creates and releases.
const FRESH_VA: u32 = mm::TEST_BASE + (64 << 20);
/// Pages for the local flush case.
const FLUSH_VA: u32 = mm::TEST_BASE + (4 << 20);
/// Page for the linear-mapping case's view of a page table.
const KMAP_VA: u32 = mm::TEST_BASE + (6 << 20);
/// A region for the linear-mapping case's page table.
const KMAP_TARGET_VA: u32 = mm::TEST_BASE + (8 << 20);

/// The word each test frame starts with (frame address ^ marker).
const MARKER: u32 = 0x5EED_0000;

/// Whether paging was tried (a case run alone turns it on first).
static ENABLE_TRIED: AtomicBool = AtomicBool::new(false);

fn require_paging() -> Option<Outcome> {
    if !mm::paging_on() && !ENABLE_TRIED.load(Ordering::SeqCst) {
        let _ = enable_pae_paging();
    }
    (!mm::paging_on()).then(|| {
        Outcome::skip(format_args!(
            "paging is not enabled (mmu_enable_pae_paging failed)"
        ))
    })
}

macro_rules! need_paging {
    () => {
        if let Some(o) = require_paging() {
            return o;
        }
    };
}

/// A fresh frame whose words are `frame ^ MARKER + index`.
fn marked_frame() -> u32 {
    let f = mm::alloc_frame();
    for i in 0..(PAGE_SIZE / 4) {
        // SAFETY: a fresh identity-mapped frame.
        unsafe { ((f + i * 4) as *mut u32).write_volatile((f ^ MARKER).wrapping_add(i)) };
    }
    f
}

fn mark(frame: u32) -> u32 {
    frame ^ MARKER
}

fn read32(va: u32) -> Result<u32, Fault> {
    // SAFETY: a read that may fault, inside catch.
    catch(|| unsafe { (va as *const u32).read_volatile() })
}

fn write32(va: u32, value: u32) -> Result<u32, Fault> {
    catch(|| {
        // SAFETY: a write that may fault, inside catch; the cases only
        // write their own test pages.
        unsafe { (va as *mut u32).write_volatile(value) };
        0
    })
}

pub fn enable_pae_paging() -> Outcome {
    ENABLE_TRIED.store(true, Ordering::SeqCst);
    if mm::paging_on() {
        let space = mm::kernel_space().expect("paging is on");
        ensure_eq!(pv::get_cr3(), space.pdpt, "GetCR3");
        pass!(
            "PAE paging already on (turned on at boot), PDPT {:#x}",
            space.pdpt
        );
    }
    let edx = pv::cpuid(1, 0)[3];
    if edx & (1 << 6) == 0 {
        skip!("no PAE (CPUID.1:EDX.PAE clear)");
    }
    let pge = edx & (1 << 13) != 0;
    let before = mm::rom_calls();
    let space = mm::enable_paging(pge);
    let calls = mm::rom_calls_since(before);
    let (cr0, cr3, cr4) = (pv::get_cr0(), pv::get_cr3(), pv::get_cr4());
    ensure!(
        cr0 & CR0_PG != 0 && cr0 & CR0_WP != 0,
        "CR0 {cr0:#x} after SetCR0(PG | WP)"
    );
    ensure_eq!(cr3, space.pdpt, "GetCR3");
    ensure!(cr4 & CR4_PAE != 0, "CR4 {cr4:#x} lacks PAE");
    static PROBE: Global<u32> = Global::new(0x1234_ABCD);
    // SAFETY: reading a static through its (identity-mapped) address.
    let v = unsafe { PROBE.as_ptr().read_volatile() };
    ensure_eq!(v, 0x1234_ABCDu32, "a static read with paging on");
    pass!(
        "PAE paging on: {} MiB identity, {} MiB alias at {:#x}, PDPT {:#x}{} ({} hypervisor calls to build and load the tables)",
        mm::mapped_top() >> 20,
        mm::alias_size() >> 20,
        mm::ALIAS_BASE,
        space.pdpt,
        if pge { ", global pages" } else { "" },
        mm::Calls(calls)
    )
}

pub fn identity_and_alias() -> Outcome {
    need_paging!();
    if mm::alias_size() == 0 {
        skip!(
            "the ROM's virtual_top leaves no room for the alias at {:#x}",
            mm::ALIAS_BASE
        );
    }
    static WORD: Global<u32> = Global::new(0);
    let phys = WORD.as_ptr() as u32;
    let alias = mm::ALIAS_BASE + phys;
    // SAFETY: the static is written through its identity address.
    unsafe { WORD.as_ptr().write_volatile(0xA11A_5001) };
    let through_alias = read32(alias);
    let _ = write32(alias, 0xA11A_5002);
    // SAFETY: as above.
    let back = unsafe { WORD.as_ptr().read_volatile() };
    ensure_eq!(
        through_alias.unwrap_or(0),
        0xA11A_5001u32,
        "word read through the alias"
    );
    ensure_eq!(
        back,
        0xA11A_5002u32,
        "word written through the alias, read 1:1"
    );
    pass!("{phys:#x} and {alias:#x} are the same memory")
}

pub fn set_pxe_long_maps_page() -> Outcome {
    need_paging!();
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let first = read32(TEST_VA);
    let wrote = write32(TEST_VA + 8, 0x0BAD_F00D);
    // SAFETY: f is an identity-mapped test frame.
    let in_frame = unsafe { ((f + 8) as *const u32).read_volatile() };
    let pte = mm::read_entry(mm::pte_ptr(TEST_VA));
    mm::map(TEST_VA, g, KERNEL_RW);
    let second = read32(TEST_VA);
    mm::unmap(TEST_VA);
    ensure_word!(first, mark(f), "first word through the new mapping");
    ensure!(wrote.is_ok(), "writing through the mapping faulted");
    ensure_eq!(
        in_frame,
        0x0BAD_F00Du32,
        "frame word written through the mapping"
    );
    ensure_eq!(
        pte & !(PTE_A | PTE_D),
        u64::from(f) | KERNEL_RW,
        "PTE as stored"
    );
    ensure_word!(second, mark(g), "first word after remapping");
    pass!("{TEST_VA:#x} mapped to {f:#x}, then {g:#x}")
}

/// The ROM's SetPxELong code, called directly by the address
/// GetRelocationInfo gave (CALL_REL, or NONE with code: the native ROM's
/// stores the entry, which a kernel stores itself, as Linux keeps its
/// native `set_pte` when `vmi_get_function` finds no CALL_REL): it maps
/// the test page to one frame, then another, then unmaps it.
pub fn set_pxe_long_rom_entry_direct() -> Outcome {
    if !pv::vmi_active() {
        skip!("no VMI ROM: no ROM code to call");
    }
    need_paging!();
    let Some(set_pxe_long) = pv::rom_entry(VmiCall::SetPxeLong) else {
        skip!("the ROM gives no code for SetPxELong");
    };
    let ptep = mm::pte_ptr(TEST_VA);
    let flags = mm::current_as_flags(PageLevel::Pt, TEST_VA);
    let store = |pte: u64| {
        // SAFETY: the ROM's SetPxELong (regparm: EDX:EAX = entry, ECX =
        // pointer, the flags as its one stack word) on the test page's
        // entry in the kernel's own page table.
        unsafe {
            pv::rom_call(
                set_pxe_long,
                pte as u32,
                (pte >> 32) as u32,
                ptep as u32,
                [flags, 0],
            )
        };
        pv::inval_page(TEST_VA);
    };
    let (f, g) = (marked_frame(), marked_frame());
    store(u64::from(f) | KERNEL_RW);
    let first = read32(TEST_VA);
    let pte = mm::read_entry(ptep);
    store(u64::from(g) | KERNEL_RW);
    let second = read32(TEST_VA);
    store(0);
    let cleared = mm::read_entry(ptep);
    let gone = read32(TEST_VA);
    ensure_word!(first, mark(f), "first word through the ROM's mapping");
    ensure_eq!(
        pte & !(PTE_A | PTE_D),
        u64::from(f) | KERNEL_RW,
        "PTE as the ROM stored it"
    );
    ensure_word!(second, mark(g), "first word after the ROM remapped");
    ensure_eq!(cleared, 0u64, "PTE after the ROM cleared it");
    ensure!(
        gone.is_err(),
        "the page still reads after the ROM cleared its entry"
    );
    pass!(
        "the ROM's SetPxELong at {set_pxe_long:#x} (relocation {}) mapped {TEST_VA:#x} to \
         {f:#x}, then {g:#x}, then cleared it",
        pv::relocation(VmiCall::SetPxeLong).type_
    )
}

/// FAIL unless `result` is a #PF with `error_code` (low 5 bits) and `cr2`.
fn page_fault_mismatch(
    result: Result<u32, Fault>,
    error_code: u32,
    cr2: u32,
    what: &str,
) -> Option<Outcome> {
    match result {
        Ok(v) => Some(Outcome::fail(format_args!(
            "{what}: no page fault (read {v:#x})"
        ))),
        Err(f) if f.vector != 14 => Some(Outcome::fail(format_args!("{what}: {f}, expected #PF"))),
        Err(f) if f.error_code & 0x1F != error_code || f.cr2 != cr2 => {
            Some(Outcome::fail(format_args!(
                "{what}: #PF error {:#x} CR2 {:#x}, expected error {error_code:#x} CR2 {cr2:#x}",
                f.error_code, f.cr2
            )))
        }
        Err(_) => None,
    }
}

/// Returns FAIL unless a #PF as described happened.
macro_rules! ensure_page_fault {
    ($result:expr, $error_code:expr, $cr2:expr, $what:expr) => {
        if let Some(o) = page_fault_mismatch($result, $error_code, $cr2, $what) {
            return o;
        }
    };
}

pub fn pte_clear_not_present() -> Outcome {
    need_paging!();
    let f = marked_frame();
    mm::map(TEST_VA, f, KERNEL_RW);
    let before = read32(TEST_VA + 0x10);
    mm::unmap(TEST_VA);
    let read = read32(TEST_VA + 0x10);
    let write = write32(TEST_VA + 0x20, 1);
    let cr2 = pv::get_cr2();
    ensure!(before.is_ok(), "read before clearing faulted");
    ensure_page_fault!(read, 0, TEST_VA + 0x10, "read of a cleared PTE");
    ensure_page_fault!(write, 2, TEST_VA + 0x20, "write of a cleared PTE");
    ensure_eq!(cr2, TEST_VA + 0x20, "GetCR2 after the fault");
    pass!("cleared PTE: read #PF(0), write #PF(2), CR2 = the address")
}

/// The kernel stores a new #PF gate into its loaded IDT natively (no
/// WriteIDTEntry): the processor reads the gate at each delivery, so the
/// next page fault goes through the new gate (here the #GP stub, which
/// reports vector 13 with the #PF's error code), and through the old one
/// again once it is stored back.
pub fn page_fault_gate_stored_natively() -> Outcome {
    need_paging!();
    const PF: usize = 14;
    const GP: usize = 13;
    let f = marked_frame();
    mm::map(TEST_VA, f, KERNEL_RW);
    mm::unmap(TEST_VA);
    let gate = (crate::desc::Table::base(&crate::desc::IDT) as *mut u64).wrapping_add(PF);
    let original = crate::desc::Table::read(&crate::desc::IDT, PF);
    let redirected = crate::desc::Table::read(&crate::desc::IDT, GP);
    let before = read32(TEST_VA + 0x30);
    // SAFETY: the kernel's own IDT entry 14, stored as a kernel may; the
    // #GP stub it names handles a frame with an error code, as #PF's.
    unsafe { gate.write_volatile(redirected) };
    let through_new = read32(TEST_VA + 0x30);
    // SAFETY: as above, the entry as it was.
    unsafe { gate.write_volatile(original) };
    let through_old = read32(TEST_VA + 0x30);
    ensure_page_fault!(before, 0, TEST_VA + 0x30, "read before the store");
    match through_new {
        Err(f) if f.vector == GP as u32 && f.error_code & 7 == 0 => {}
        other => {
            fail!("a page fault after storing the #GP gate into IDT[14]: {other:?}, expected vector 13 with error code 0");
        }
    }
    ensure_page_fault!(
        through_old,
        0,
        TEST_VA + 0x30,
        "read after storing the gate back"
    );
    pass!("IDT[14] stored natively: the next #PF went through the new gate, then the old one again")
}

/// What the #PF hook of [`page_fault_trap_gate`] saw at the handler's
/// entry: the interrupt flag (GetInterruptMask), the frame's EFLAGS.IF,
/// and CR2; `seen` counts the faults.
struct HandlerView {
    seen: u32,
    flag: u32,
    frame_flag: u32,
    cr2: u32,
}

static PF_HANDLER_VIEW: Global<HandlerView> = Global::new(HandlerView {
    seen: 0,
    flag: 0,
    frame_flag: 0,
    cr2: 0,
});

/// The #PF hook of [`page_fault_trap_gate`]: records, then lets the
/// dispatcher hand the fault to the catch.
fn record_page_fault(frame: &mut crate::trap::TrapFrame) -> bool {
    // First: nothing between the gate and here changes the flag or CR2.
    let flag = pv::save_fl();
    let cr2 = pv::get_cr2();
    PF_HANDLER_VIEW.with(|v| {
        v.seen += 1;
        v.flag = flag;
        v.frame_flag = frame.eflags & EFLAGS_IF;
        v.cr2 = cr2;
    });
    false
}

/// One fault of [`page_fault_trap_gate`] taken with interrupts enabled:
/// FAIL unless it is a #PF with `error_code` at `va` and the handler saw
/// CR2 = `va`, the interrupted code's IF set and its own flag `inside`
/// (an interrupt gate clears it, a trap gate leaves it as it was).
fn fault_through_gate(
    va: u32,
    write: bool,
    error_code: u32,
    inside: bool,
    what: &str,
) -> Option<Outcome> {
    PF_HANDLER_VIEW.with(|v| v.seen = 0);
    let flags = pv::save_fl();
    pv::irq_enable();
    let result = if write { write32(va, 1) } else { read32(va) };
    pv::restore_fl(flags);
    let view = PF_HANDLER_VIEW.with(|v| (v.seen, v.flag, v.frame_flag, v.cr2));
    if let Some(o) = page_fault_mismatch(result, error_code, va, what) {
        return Some(o);
    }
    let (seen, flag, frame_flag, cr2) = view;
    let expected = if inside { EFLAGS_IF } else { 0 };
    if seen != 1 || flag != expected || frame_flag != EFLAGS_IF || cr2 != va {
        return Some(Outcome::fail(format_args!(
            "{what}: the handler saw {seen} fault(s), its interrupt flag {flag:#x} \
             (expected {expected:#x}), the frame's IF {frame_flag:#x} (expected {EFLAGS_IF:#x}), \
             CR2 {cr2:#x} (expected {va:#x})"
        )));
    }
    None
}

/// IDT[14] becomes a trap gate (WriteIDTEntry), and back: a page fault
/// taken with interrupts enabled reaches the handler with the interrupt
/// flag still set through the trap gate (SDM vol. 3: only an interrupt
/// gate clears IF), clear through the interrupt gate, with the error code
/// and CR2 of the access each time (a not-present read, a write to a
/// read-only page; each twice in a row under the same directory entry, as
/// a process touching page after page faults).
pub fn page_fault_trap_gate() -> Outcome {
    need_paging!();
    const PF: usize = 14;
    /// Type bit 0 of a gate's access byte: a trap gate (0xF), not an
    /// interrupt gate (0xE).
    const TRAP_TYPE_BIT: u64 = 1 << 40;
    let absent = marked_frame();
    let read_only = marked_frame();
    mm::map(TEST_VA, absent, KERNEL_RW);
    mm::unmap(TEST_VA);
    mm::map(TEST_VA + PAGE_SIZE, read_only, PTE_P);
    let idt = crate::desc::Table::base(&crate::desc::IDT);
    let original = crate::desc::Table::read(&crate::desc::IDT, PF);
    if (original >> 40) & 0x9F != 0x8E {
        mm::unmap(TEST_VA + PAGE_SIZE);
        fail!("IDT[14] is {original:#x}, not a present 32-bit interrupt gate");
    }
    crate::trap::set_hook(PF as u32, Some(record_page_fault));
    let faults = [
        (TEST_VA + 0x40, false, 0, "a read of a not-present page"),
        (TEST_VA + 0x80, false, 0, "the next read of it"),
        (
            TEST_VA + PAGE_SIZE + 0x40,
            true,
            3,
            "a write to a read-only page",
        ),
        (TEST_VA + PAGE_SIZE + 0x80, true, 3, "the next write to it"),
    ];
    let run = |inside: bool, gate: &str| -> Option<Outcome> {
        faults.iter().find_map(|&(va, write, error_code, what)| {
            let what = Text::from_fmt(format_args!("{what} through the {gate}"));
            fault_through_gate(va, write, error_code, inside, what.as_str())
        })
    };
    let before = run(false, "interrupt gate");
    pv::write_idt_entry(idt, PF as u32, original | TRAP_TYPE_BIT);
    let through_trap_gate = run(true, "trap gate");
    pv::write_idt_entry(idt, PF as u32, original);
    let after = run(false, "interrupt gate stored back");
    crate::trap::set_hook(PF as u32, None);
    mm::unmap(TEST_VA + PAGE_SIZE);
    if let Some(outcome) = before.or(through_trap_gate).or(after) {
        return outcome;
    }
    pass!(
        "#PF through a trap gate: IF still set in the handler; through the interrupt gate \
         (before and after) clear; error codes 0 and 3 and CR2 right each time"
    )
}

/// The set-up of the two IDT-alias cases: the test page's directory entry
/// made and its page unmapped again, the IDT's frame mapped at `alias`
/// read-only for the user with A clear, and the IDT loaded through it.
/// Returns the IDT's frame and the alias's flags.
fn load_idt_through_unaccessed_alias(alias: u32) -> (u32, u64) {
    let idt = crate::desc::Table::base(&crate::desc::IDT);
    let not_accessed = PTE_P | PTE_US;
    mm::map(TEST_VA, marked_frame(), KERNEL_RW);
    mm::unmap(TEST_VA);
    mm::map(alias, idt, not_accessed);
    pv::set_idt(&native_rom::hw::cpu::DescriptorTablePointer {
        limit: 256 * 8 - 1,
        base: alias,
    });
    (idt, not_accessed)
}

/// The kernel loads its IDT through an alias that is a user page with A
/// clear (read-only), and takes page faults: the processor reads the #PF
/// gate through the alias at each delivery (setting A), and CR2 stays the
/// fault's address; the handler's GetCR2 must give that address, not the
/// gate's (a platform that reads the gate in software may fault on it).
/// A is cleared again before each fault (SetPxELong of the entry), and
/// the two faults are under one directory entry (the first one after the
/// IDT load, then the next).
pub fn page_fault_cr2_idt_alias_not_accessed() -> Outcome {
    need_paging!();
    /// The IDT's alias, under the test page's directory entry.
    const ALIAS_VA: u32 = TEST_VA + 0x10_000;
    let (idt, not_accessed) = load_idt_through_unaccessed_alias(ALIAS_VA);
    mm::map(ALIAS_VA, idt, not_accessed);
    let first = read32(TEST_VA + 0x50);
    mm::map(ALIAS_VA, idt, not_accessed);
    let second = read32(TEST_VA + 0x90);
    pv::set_idt(&crate::desc::idt_pointer());
    mm::unmap(ALIAS_VA);
    ensure_page_fault!(
        first,
        0,
        TEST_VA + 0x50,
        "the first read of a not-present page, the IDT through its alias"
    );
    ensure_page_fault!(
        second,
        0,
        TEST_VA + 0x90,
        "the next read under the same directory entry"
    );
    pass!("IDT loaded through a not-yet-accessed user alias: each #PF's CR2 is its own address")
}

/// GetCR2 as the #GP handler of
/// [`page_fault_gate_stored_natively_idt_alias_not_accessed`] saw it.
static GP_HANDLER_CR2: Global<u32> = Global::new(0);

/// The #GP hook of that case: records GetCR2, then lets the dispatcher
/// hand the fault to the catch.
fn record_cr2_at_gp(_: &mut crate::trap::TrapFrame) -> bool {
    let cr2 = pv::get_cr2();
    GP_HANDLER_CR2.with(|c| *c = cr2);
    false
}

/// The two cases before together: the kernel's IDT loaded through a
/// read-only user alias with A clear, and a new #PF gate (the #GP stub's)
/// stored into it natively after a first page fault under the test page's
/// directory entry. The next write to the not-present page goes through
/// the new gate with its own error code (2: a write, not present) and
/// CR2 its own address, as the processor delivers it: a platform that
/// reads the gate in software and faults on the alias (A clear) must not
/// take the gate's address for the fault's, nor the alias's rights (a
/// write to a read-only page) for the page's.
pub fn page_fault_gate_stored_natively_idt_alias_not_accessed() -> Outcome {
    need_paging!();
    const PF: usize = 14;
    const GP: u32 = 13;
    /// The IDT's alias, under the test page's directory entry.
    const ALIAS_VA: u32 = TEST_VA + 0x10_000;
    let (idt, not_accessed) = load_idt_through_unaccessed_alias(ALIAS_VA);
    let first = write32(TEST_VA + 0x50, 1);
    let gate = (idt as *mut u64).wrapping_add(PF);
    let original = crate::desc::Table::read(&crate::desc::IDT, PF);
    let redirected = crate::desc::Table::read(&crate::desc::IDT, GP as usize);
    // SAFETY: the kernel's own IDT entry 14, stored as a kernel may; the
    // #GP stub it names handles a frame with an error code, as #PF's.
    unsafe { gate.write_volatile(redirected) };
    mm::map(ALIAS_VA, idt, not_accessed);
    GP_HANDLER_CR2.with(|c| *c = 0);
    crate::trap::set_hook(GP, Some(record_cr2_at_gp));
    let second = write32(TEST_VA + 0x90, 1);
    crate::trap::set_hook(GP, None);
    let cr2_seen = GP_HANDLER_CR2.with(|c| *c);
    // SAFETY: as above, the entry as it was.
    unsafe { gate.write_volatile(original) };
    pv::set_idt(&crate::desc::idt_pointer());
    mm::unmap(ALIAS_VA);
    ensure_page_fault!(
        first,
        2,
        TEST_VA + 0x50,
        "the first write to a not-present page, the IDT through its alias"
    );
    match second {
        Err(f) if f.vector == GP && f.error_code & 7 == 2 && cr2_seen == TEST_VA + 0x90 => {}
        other => {
            fail!(
                "the next write after storing the #GP gate into IDT[14] (alias with A clear): \
                 {other:?}, its handler's CR2 {cr2_seen:#x}; expected vector 13 with error code 2 \
                 and CR2 {:#x}",
                TEST_VA + 0x90
            );
        }
    }
    pass!(
        "IDT[14] stored natively, the IDT through a not-yet-accessed alias: the next #PF went \
         through the new gate with its own error code and CR2"
    )
}

pub fn read_only_write_faults() -> Outcome {
    need_paging!();
    let f = marked_frame();
    mm::map(TEST_VA, f, PTE_P);
    let read = read32(TEST_VA);
    let write = write32(TEST_VA + 4, 7);
    mm::unmap(TEST_VA);
    ensure_word!(read, mark(f), "read of a read-only page");
    ensure_page_fault!(
        write,
        3,
        TEST_VA + 4,
        "ring 0 write to a read-only page with CR0.WP"
    );
    pass!("read-only page: read works, write #PF(3)")
}

pub fn cr0_wp_semantics() -> Outcome {
    need_paging!();
    let f = marked_frame();
    mm::map(TEST_VA, f, PTE_P);
    let cr0 = pv::get_cr0();
    pv::set_cr0(cr0 & !CR0_WP);
    let without_wp = write32(TEST_VA + 4, 0x0000_3150);
    pv::set_cr0(cr0);
    let with_wp = write32(TEST_VA + 8, 1);
    mm::unmap(TEST_VA);
    // SAFETY: identity-mapped test frame.
    let stored = unsafe { ((f + 4) as *const u32).read_volatile() };
    ensure!(
        without_wp.is_ok(),
        "ring 0 write to a read-only page with CR0.WP clear faulted"
    );
    ensure_eq!(stored, 0x0000_3150u32, "word written with WP clear");
    ensure_page_fault!(
        with_wp,
        3,
        TEST_VA + 8,
        "ring 0 write with CR0.WP set again"
    );
    pass!("WP clear: ring 0 writes read-only pages; WP set: #PF")
}

pub fn update_pxe_long() -> Outcome {
    need_paging!();
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let _ = read32(TEST_VA);
    let ptep = mm::pte_ptr(TEST_VA);
    // The kernel writes the entry itself, then tells the ROM.
    // SAFETY: an entry of the kernel's test page table.
    unsafe { pv::store_pxe_long(ptep, u64::from(g) | KERNEL_RW) };
    pv::update_pxe_long(ptep, mm::current_as_flags(PageLevel::Pt, TEST_VA));
    pv::inval_page(TEST_VA);
    let now = read32(TEST_VA);
    mm::unmap(TEST_VA);
    ensure_word!(
        now,
        mark(g),
        "word after a native PTE write + UpdatePxELong"
    );
    pass!("native PTE write announced with UpdatePxELong took effect")
}

pub fn set_pxe_low_half() -> Outcome {
    need_paging!();
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let ptep = mm::pte_ptr(TEST_VA);
    pv::set_pxe(
        g | KERNEL_RW as u32,
        ptep as *mut u32,
        mm::current_as_flags(PageLevel::Pt, TEST_VA),
    );
    pv::inval_page(TEST_VA);
    let now = read32(TEST_VA);
    let pte = mm::read_entry(ptep);
    mm::unmap(TEST_VA);
    ensure_eq!(
        pte & !(PTE_A | PTE_D),
        u64::from(g) | KERNEL_RW,
        "PTE after SetPxE of its low half"
    );
    ensure_word!(now, mark(g), "word after SetPxE");
    pass!("32-bit SetPxE of a PAE entry's low half remapped the page")
}

pub fn update_pxe_low_half() -> Outcome {
    need_paging!();
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let ptep = mm::pte_ptr(TEST_VA) as *mut u32;
    // SAFETY: the low half of an entry of the kernel's test page table.
    unsafe { ptep.write_volatile(g | KERNEL_RW as u32) };
    pv::update_pxe(ptep, mm::current_as_flags(PageLevel::Pt, TEST_VA));
    pv::inval_page(TEST_VA);
    let now = read32(TEST_VA);
    mm::unmap(TEST_VA);
    ensure_word!(
        now,
        mark(g),
        "word after a native low-half write + UpdatePxE"
    );
    pass!("native 32-bit PTE write announced with UpdatePxE took effect")
}

/// A and D as the processor sets them, on a user page (the kernel's own
/// mappings carry A and D from the start in most kernels; a hypervisor may
/// set them early there, where a fault could not be taken).
pub fn accessed_dirty_bits() -> Outcome {
    need_paging!();
    let f = marked_frame();
    mm::map(TEST_VA, f, KERNEL_RW | PTE_US);
    let ptep = mm::pte_ptr(TEST_VA);
    let fresh = mm::read_entry(ptep);
    let _ = read32(TEST_VA);
    let after_read = mm::read_entry(ptep);
    let _ = write32(TEST_VA, 1);
    let after_write = mm::read_entry(ptep);
    mm::unmap(TEST_VA);
    ensure_eq!(fresh & (PTE_A | PTE_D), 0u64, "A/D of a fresh PTE");
    ensure_eq!(after_read & (PTE_A | PTE_D), PTE_A, "A/D after a read");
    ensure_eq!(
        after_write & (PTE_A | PTE_D),
        PTE_A | PTE_D,
        "A/D after a write"
    );
    pass!("user page: A set by a read, D by a write, visible in the kernel's PTE")
}

/// One write with the direction flag set, to `va`; returns EFLAGS after it.
fn write_with_df_set(va: u32, value: u32) -> u32 {
    let flags: u32;
    // SAFETY: `va` is a page the case mapped writable; DF is set only
    // around the one store and cleared before Rust code runs again; the
    // flags are read through the stack (pushfd/pop).
    unsafe {
        core::arch::asm!(
            "std",
            "mov dword ptr [{va}], {value}",
            "pushfd",
            "pop {flags}",
            "cld",
            va = in(reg) va,
            value = in(reg) value,
            flags = lateout(reg) flags,
        )
    };
    flags
}

/// Write faults taken with the direction flag set (as after a `std` in the
/// interrupted code; the i386 ABI lets compiled code assume DF clear, and
/// hardware leaves it alone on an exception). First, the first write to
/// each of eight user pages (no A/D yet, so a hypervisor that tracks them
/// serves the fault itself) must land in its own frame, set A and D, and
/// leave DF set for the interrupted code. Then the same with sixteen
/// updates and an InvalPage queued in lazy MMU mode, which such a fault
/// must put in effect first: every queued mapping must hold after the mode.
pub fn fault_with_direction_flag_set() -> Outcome {
    need_paging!();
    const PAGES: usize = 8;
    const QUEUED: usize = 16;
    const EFLAGS_DF: u32 = 1 << 10;
    let frames: [u32; PAGES] = core::array::from_fn(|_| marked_frame());
    let page = |i: usize| FLUSH_VA + i as u32 * PAGE_SIZE;
    for (i, &f) in frames.iter().enumerate() {
        mm::map(page(i), f, KERNEL_RW | PTE_US);
    }
    let mut df_after = [0u32; PAGES];
    for (i, &f) in frames.iter().enumerate().take(PAGES - 1) {
        df_after[i] = write_with_df_set(page(i), !mark(f));
    }
    // The last page's first write with the lazy queue holding work.
    let queued: [u32; QUEUED] = core::array::from_fn(|_| marked_frame());
    let lazy_page = |i: usize| LAZY_VA + i as u32 * PAGE_SIZE;
    let _ = mm::pte_ptr(LAZY_VA);
    pv::set_lazy_mode(VMI_LAZY_MMU);
    for (i, &f) in queued.iter().enumerate() {
        pv::set_pxe_long(
            u64::from(f) | KERNEL_RW | PTE_A | PTE_D,
            mm::pte_ptr(lazy_page(i)),
            mm::deferred_flags(PageLevel::Pt, lazy_page(i)),
        );
    }
    pv::inval_page(lazy_page(0));
    df_after[PAGES - 1] = write_with_df_set(page(PAGES - 1), !mark(frames[PAGES - 1]));
    pv::set_lazy_mode(VMI_LAZY_NONE);
    pv::flush_tlb(VMI_FLUSH_TLB);
    let seen: [Result<u32, Fault>; QUEUED] = core::array::from_fn(|i| read32(lazy_page(i)));
    for i in 0..QUEUED {
        pv::set_pxe_long(
            0,
            mm::pte_ptr(lazy_page(i)),
            mm::current_as_flags(PageLevel::Pt, lazy_page(i)),
        );
    }
    pv::flush_tlb(VMI_FLUSH_TLB);
    let entries: [u64; PAGES] = core::array::from_fn(|i| mm::read_entry(mm::pte_ptr(page(i))));
    for i in 0..PAGES {
        mm::unmap(page(i));
    }
    for (i, &f) in frames.iter().enumerate() {
        // SAFETY: the frame is identity-mapped (marked_frame).
        let word = unsafe { (f as *const u32).read_volatile() };
        ensure!(
            word == !mark(f),
            "word 0 of page {i}'s frame after its write: {word:#x}, expected {:#x}",
            !mark(f)
        );
        ensure_eq!(
            entries[i] & (PTE_A | PTE_D),
            PTE_A | PTE_D,
            format_args!("A/D of page {i} after the write")
        );
        ensure!(
            df_after[i] & EFLAGS_DF != 0,
            "DF clear after page {i}'s write fault (EFLAGS {:#x})",
            df_after[i]
        );
    }
    for (i, &f) in queued.iter().enumerate() {
        ensure_word!(seen[i], mark(f), "queued page {i} after the lazy mode");
    }
    pass!(
        "{PAGES} first writes with DF set (the last with {QUEUED} updates and an InvalPage \
         queued) landed in their frames, A/D set, DF kept; the queue held"
    )
}

pub fn inval_page() -> Outcome {
    need_paging!();
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let first = read32(TEST_VA);
    pv::set_pxe_long(
        u64::from(g) | KERNEL_RW,
        mm::pte_ptr(TEST_VA),
        mm::current_as_flags(PageLevel::Pt, TEST_VA),
    );
    pv::inval_page(TEST_VA);
    let second = read32(TEST_VA);
    mm::unmap(TEST_VA);
    ensure_word!(first, mark(f), "word before remapping");
    ensure_word!(second, mark(g), "word after remapping + InvalPage");
    pass!("InvalPage made the new mapping visible")
}

/// Maps four pages, touches them, remaps them with SetPxELong only, then
/// FlushTLB(`how`): FAIL unless all four show their new frames.
fn remap_and_flush(how: u32, flags: u64) -> Option<Outcome> {
    let pages: [(u32, u32, u32); 4] = core::array::from_fn(|i| {
        (
            FLUSH_VA + i as u32 * PAGE_SIZE,
            marked_frame(),
            marked_frame(),
        )
    });
    for &(va, old, _) in &pages {
        mm::map(va, old, flags);
        let _ = read32(va);
    }
    for &(va, _, new) in &pages {
        pv::set_pxe_long(
            u64::from(new) | flags,
            mm::pte_ptr(va),
            mm::current_as_flags(PageLevel::Pt, va),
        );
    }
    pv::flush_tlb(how);
    let seen = pages.map(|(va, _, _)| read32(va));
    for &(va, _, _) in &pages {
        mm::unmap(va);
    }
    pages
        .iter()
        .zip(seen)
        .find_map(|(&(va, _, new), got)| match got {
            Ok(v) if v == mark(new) => None,
            other => Some(Outcome::fail(format_args!(
                "page {va:#x} after FlushTLB({how:#x}): {other:x?}, want {:#x}",
                mark(new)
            ))),
        })
}

pub fn flush_tlb_local() -> Outcome {
    need_paging!();
    if let Some(o) = remap_and_flush(VMI_FLUSH_TLB, KERNEL_RW) {
        return o;
    }
    pass!("4 remapped pages visible after FlushTLB(TLB)")
}

pub fn flush_tlb_global() -> Outcome {
    need_paging!();
    if pv::get_cr4() & native_rom::hw::cpu::CR4_PGE == 0 {
        skip!("no global pages (CPUID.1:EDX.PGE clear)");
    }
    if let Some(o) = remap_and_flush(VMI_FLUSH_TLB | VMI_FLUSH_GLOBAL, KERNEL_RW | PTE_G) {
        return o;
    }
    pass!("4 remapped global pages visible after FlushTLB(TLB | GLOBAL)")
}

pub fn allocate_release_page_table() -> Outcome {
    need_paging!();
    let space = mm::kernel_space().expect("paging is on");
    let pdep = mm::pde_ptr(&space, FRESH_VA);
    ensure_eq!(
        mm::read_entry(pdep),
        0u64,
        "directory entry of the fresh region"
    );
    let f = marked_frame();
    let pt = mm::alloc_frame();
    pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
    pv::set_pxe_long(
        u64::from(pt) | PTE_P | PTE_RW | PTE_US,
        pdep,
        mm::current_as_flags(PageLevel::Pd, FRESH_VA),
    );
    let ptep = mm::entry(pt, (FRESH_VA >> 12) & 511);
    pv::set_pxe_long(
        u64::from(f) | KERNEL_RW,
        ptep,
        mm::current_as_flags(PageLevel::Pt, FRESH_VA),
    );
    let mapped = read32(FRESH_VA);
    pv::set_pxe_long(0, ptep, mm::current_as_flags(PageLevel::Pt, FRESH_VA));
    pv::set_pxe_long(0, pdep, mm::current_as_flags(PageLevel::Pd, FRESH_VA));
    pv::flush_tlb(VMI_FLUSH_TLB);
    pv::release_page(pt >> 12, VMI_PAGE_L1_PAE);
    let gone = read32(FRESH_VA);
    ensure_word!(mapped, mark(f), "word through the new page table");
    ensure_page_fault!(gone, 0, FRESH_VA, "read after the page table was released");
    pass!("page table {pt:#x} allocated, used, unlinked and released")
}

/// A second address space: its own PDPT, page directories 0 and 2 shared
/// with the kernel, directory 1 fresh (mapping TEST_VA to `frame`), and
/// directory 3 a clone of the kernel's (AllocatePage with VMI_PAGE_CLONE).
struct SecondSpace {
    space: AddressSpace,
}

impl SecondSpace {
    fn new(frame: u32) -> Self {
        let kernel = mm::kernel_space().expect("paging is on");
        let pdpt = mm::alloc_frame();
        let pd1 = mm::alloc_frame();
        pv::allocate_page(pd1 >> 12, VMI_PAGE_L2_PAE, 0, 0, 0);
        let pt = mm::alloc_frame();
        pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
        pv::set_pxe_long(
            u64::from(frame) | KERNEL_RW,
            mm::entry(pt, (TEST_VA >> 12) & 511),
            PageLevel::Pt.bit(),
        );
        pv::set_pxe_long(
            u64::from(pt) | PTE_P | PTE_RW | PTE_US,
            mm::entry(pd1, (TEST_VA >> 21) & 511),
            PageLevel::Pd.bit(),
        );
        // Clone the kernel part: copy the entries, then tell the ROM
        // (Linux's pgd_ctor: clone_pgd_range, then alloc_pmd_clone).
        let pd3 = mm::alloc_frame();
        // SAFETY: both are identity-mapped page-directory frames.
        unsafe { core::ptr::copy_nonoverlapping(kernel.pd[3] as *const u64, pd3 as *mut u64, 512) };
        pv::allocate_page(
            pd3 >> 12,
            VMI_PAGE_L2_PAE | VMI_PAGE_CLONE,
            kernel.pd[3] >> 12,
            0,
            512,
        );
        let pd = [kernel.pd[0], pd1, kernel.pd[2], pd3];
        for (k, d) in pd.iter().enumerate() {
            pv::set_pxe_long(
                u64::from(*d) | PTE_P,
                mm::entry(pdpt, k as u32),
                PageLevel::Pdp.bit(),
            );
        }
        SecondSpace {
            space: AddressSpace { pdpt, pd },
        }
    }

    fn release(self) {
        let pt =
            (mm::read_entry(mm::entry(self.space.pd[1], (TEST_VA >> 21) & 511)) & PTE_ADDR) as u32;
        pv::release_page(pt >> 12, VMI_PAGE_L1_PAE);
        pv::release_page(self.space.pd[1] >> 12, VMI_PAGE_L2_PAE);
        pv::release_page(self.space.pd[3] >> 12, VMI_PAGE_L2_PAE);
    }
}

pub fn clone_page_directory() -> Outcome {
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let g = marked_frame();
    let second = SecondSpace::new(g);
    let (pd3, second_root) = (second.space.pd[3], second.space.pdpt);
    let same = (0..512).all(|i| {
        mm::read_entry(mm::entry(pd3, i)) & !PTE_A
            == mm::read_entry(mm::entry(kernel.pd[3], i)) & !PTE_A
    });
    static WORD: Global<u32> = Global::new(0x0C10_0E5D);
    let alias = mm::ALIAS_BASE + WORD.as_ptr() as u32;
    pv::set_cr3(second.space.pdpt);
    let cr3 = pv::get_cr3();
    let through_clone = if mm::alias_size() != 0 {
        read32(alias)
    } else {
        Ok(0x0C10_0E5D)
    };
    let test = read32(TEST_VA);
    pv::set_cr3(kernel.pdpt);
    second.release();
    ensure!(same, "the cloned directory differs from the kernel's");
    ensure_eq!(cr3, second_root, "GetCR3 in the second space");
    ensure_word!(
        through_clone,
        0x0C10_0E5Du32,
        "alias word through the cloned directory"
    );
    ensure_word!(test, mark(g), "test page in the second space");
    pass!("directory cloned with AllocatePage(CLONE); the new space runs the kernel and sees its own test page")
}

pub fn cr3_switch_address_spaces() -> Outcome {
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let second = SecondSpace::new(g);
    let mut seen = [0u32; 6];
    for (i, s) in seen.iter_mut().enumerate() {
        let root = if i % 2 == 0 {
            second.space.pdpt
        } else {
            kernel.pdpt
        };
        pv::set_cr3(root);
        *s = read32(TEST_VA).unwrap_or(0);
    }
    pv::set_cr3(kernel.pdpt);
    let cr3 = pv::get_cr3();
    second.release();
    mm::unmap(TEST_VA);
    ensure_eq!(cr3, kernel.pdpt, "GetCR3 after switching back");
    for (i, s) in seen.iter().enumerate() {
        let want = if i % 2 == 0 { mark(g) } else { mark(f) };
        ensure_eq!(*s, want, "test page after a CR3 switch");
    }
    pass!("six SetCR3 switches, each space sees its own page at {TEST_VA:#x}")
}

/// A context switch in lazy CPU mode (SetCR3 and UpdateKernelStack
/// between SetLazyMode(CPU) and SetLazyMode(NONE), Linux's switch_to),
/// with other work in between: the plain pair, a page-table update of the
/// new space before the mode ends, the stack before the CR3 load, two CR3
/// loads, and an interrupt taken between the calls (its handler reads the
/// test page: the new space, as natively). After each the test page is
/// the loaded space's, and a plain switch between cached spaces is one
/// hypercall where the ROM counts them.
pub fn lazy_cpu_switch_orders() -> Outcome {
    use super::timer::{hz, ms, wait_until, IRQ0};
    use vmi_abi::flags::{VMI_LAZY_CPU, VMI_LAZY_NONE};
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let (f, g, h) = (marked_frame(), marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let second = SecondSpace::new(g);
    let second_pt =
        (mm::read_entry(mm::entry(second.space.pd[1], (TEST_VA >> 21) & 511)) & PTE_ADDR) as u32;
    let stack = || pv::update_kernel_stack(pv::kernel_ds(), crate::kmain::ring0_stack_top());
    let switch = |root: u32| {
        pv::set_lazy_mode(VMI_LAZY_CPU);
        pv::set_cr3(root);
        stack();
        pv::set_lazy_mode(VMI_LAZY_NONE);
        read32(TEST_VA).unwrap_or(0)
    };
    // The plain pair, there and back (once first: the second space's
    // first load builds its root).
    switch(second.space.pdpt);
    switch(kernel.pdpt);
    let before = mm::rom_calls();
    let plain = [switch(second.space.pdpt), switch(kernel.pdpt)];
    let plain_calls = mm::rom_calls_since(before);
    // A page-table update of the new space between SetCR3 and the end.
    pv::set_lazy_mode(VMI_LAZY_CPU);
    pv::set_cr3(second.space.pdpt);
    pv::set_pxe_long(
        u64::from(h) | KERNEL_RW,
        mm::entry(second_pt, (TEST_VA >> 12) & 511),
        PageLevel::Pt.bit(),
    );
    stack();
    pv::set_lazy_mode(VMI_LAZY_NONE);
    let updated = read32(TEST_VA).unwrap_or(0);
    // The stack first, then the CR3 load.
    pv::set_lazy_mode(VMI_LAZY_CPU);
    stack();
    pv::set_cr3(kernel.pdpt);
    pv::set_lazy_mode(VMI_LAZY_NONE);
    let stack_first = read32(TEST_VA).unwrap_or(0);
    // Two CR3 loads in one switch: the last one stays.
    pv::set_lazy_mode(VMI_LAZY_CPU);
    pv::set_cr3(second.space.pdpt);
    pv::set_cr3(kernel.pdpt);
    stack();
    pv::set_lazy_mode(VMI_LAZY_NONE);
    let twice = read32(TEST_VA).unwrap_or(0);
    // An interrupt between SetCR3 and UpdateKernelStack.
    static IN_HANDLER: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    fn read_test_page(_: &mut crate::trap::TrapFrame) -> bool {
        // SAFETY: the test page is mapped in both spaces.
        let word = unsafe { (TEST_VA as *const u32).read_volatile() };
        IN_HANDLER.store(word, Ordering::SeqCst);
        false
    }
    IN_HANDLER.store(0, Ordering::SeqCst);
    crate::trap::set_hook(IRQ0.vector, Some(read_test_page));
    IRQ0.connect();
    pv::irq_disable();
    let count = crate::trap::irq_count(IRQ0.vector);
    pv::set_alarm(IRQ0.flags(false), pv::cycles_now() + ms(1), 0);
    let requested = wait_until(hz(), || IRQ0.pending());
    pv::set_lazy_mode(VMI_LAZY_CPU);
    pv::set_cr3(second.space.pdpt);
    pv::irq_enable();
    pv::irq_disable();
    stack();
    pv::set_lazy_mode(VMI_LAZY_NONE);
    let delivered = crate::trap::irq_count(IRQ0.vector) - count;
    let interrupted = read32(TEST_VA).unwrap_or(0);
    IRQ0.disconnect();
    crate::trap::set_hook(IRQ0.vector, None);
    let in_handler = IN_HANDLER.load(Ordering::SeqCst);
    pv::set_cr3(kernel.pdpt);
    let cr3 = pv::get_cr3();
    second.release();
    mm::unmap(TEST_VA);
    ensure_eq!(
        plain[0],
        mark(g),
        "test page after the switch to the second space"
    );
    ensure_eq!(plain[1], mark(f), "test page after the switch back");
    ensure_eq!(
        updated,
        mark(h),
        "test page remapped between SetCR3 and SetLazyMode(NONE)"
    );
    ensure_eq!(
        stack_first,
        mark(f),
        "test page after UpdateKernelStack, then SetCR3"
    );
    ensure_eq!(twice, mark(f), "test page after two SetCR3 in one switch");
    ensure!(
        requested,
        "the alarm's interrupt was not requested within 1 s"
    );
    ensure_eq!(
        delivered,
        1u32,
        "interrupts taken between SetCR3 and SetLazyMode(NONE)"
    );
    ensure_eq!(
        in_handler,
        mark(h),
        "test page as the interrupt handler read it"
    );
    ensure_eq!(
        interrupted,
        mark(h),
        "test page after the interrupted switch"
    );
    ensure_eq!(cr3, kernel.pdpt, "GetCR3 at the end");
    if let Some(calls) = plain_calls {
        ensure_eq!(calls, 2u32, "hypercalls for two plain switches");
    }
    pass!(
        "lazy CPU switches: plain ({}), with an update, stack first, two CR3 loads, interrupted: each space sees its own page",
        match plain_calls {
            Some(_) => "1 hypercall each",
            None => "no ROM figures",
        }
    )
}

pub fn lazy_mode_batch() -> Outcome {
    need_paging!();
    const PAGES: u32 = 64;
    let mut frames = [0u32; PAGES as usize];
    for f in frames.iter_mut() {
        *f = marked_frame();
    }
    let _ = mm::pte_ptr(LAZY_VA);
    pv::set_lazy_mode(VMI_LAZY_MMU);
    for (i, f) in frames.iter().enumerate() {
        let va = LAZY_VA + i as u32 * PAGE_SIZE;
        pv::set_pxe_long(
            u64::from(*f) | KERNEL_RW,
            mm::pte_ptr(va),
            mm::deferred_flags(PageLevel::Pt, va),
        );
    }
    // The kernel reads its own page tables while still in lazy mode.
    let mut pte_mismatch = None;
    for (i, f) in frames.iter().enumerate() {
        let pte = mm::read_entry(mm::pte_ptr(LAZY_VA + i as u32 * PAGE_SIZE));
        if pte & PTE_ADDR != u64::from(*f) && pte_mismatch.is_none() {
            pte_mismatch = Some((i, pte));
        }
    }
    pv::set_lazy_mode(VMI_LAZY_NONE);
    pv::flush_tlb(VMI_FLUSH_TLB);
    let mut bad_read = None;
    for (i, f) in frames.iter().enumerate() {
        let got = read32(LAZY_VA + i as u32 * PAGE_SIZE);
        if got.map_err(|_| 0u32) != Ok(mark(*f)) && bad_read.is_none() {
            bad_read = Some((i, got));
        }
    }
    pv::set_lazy_mode(VMI_LAZY_MMU);
    for i in 0..PAGES {
        let va = LAZY_VA + i * PAGE_SIZE;
        pv::set_pxe_long(0, mm::pte_ptr(va), mm::deferred_flags(PageLevel::Pt, va));
    }
    pv::set_lazy_mode(VMI_LAZY_NONE);
    pv::flush_tlb(VMI_FLUSH_TLB);
    let gone = read32(LAZY_VA + 5 * PAGE_SIZE);
    if let Some((i, pte)) = pte_mismatch {
        fail!("PTE {i} read in lazy mode is {pte:#x}, the update is not visible");
    }
    if let Some((i, got)) = bad_read {
        fail!("page {i} after leaving lazy mode: {got:?}");
    }
    ensure_page_fault!(
        gone,
        0,
        LAZY_VA + 5 * PAGE_SIZE,
        "page cleared in lazy mode"
    );
    pass!("{PAGES} deferred updates: visible in the tables during lazy mode, in effect after it; cleared likewise")
}

pub fn lazy_mode_flush_before_tlb_flush() -> Outcome {
    need_paging!();
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let _ = read32(TEST_VA);
    pv::set_lazy_mode(VMI_LAZY_MMU);
    pv::set_pxe_long(
        u64::from(g) | KERNEL_RW,
        mm::pte_ptr(TEST_VA),
        mm::deferred_flags(PageLevel::Pt, TEST_VA),
    );
    pv::inval_page(TEST_VA);
    let inside = read32(TEST_VA);
    pv::set_lazy_mode(VMI_LAZY_NONE);
    mm::unmap(TEST_VA);
    ensure_word!(
        inside,
        mark(g),
        "word after a deferred update + InvalPage, still in lazy mode"
    );
    pass!("a deferred update is in effect after InvalPage inside lazy mode")
}

pub fn set_linear_mapping() -> Outcome {
    need_paging!();
    // Like a HIGHPTE kernel: a page table reachable only through a
    // temporary mapping announced in slot 1 (KM_PTE0), its entries written
    // through that mapping.
    let f = marked_frame();
    let pt = mm::alloc_frame();
    pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
    mm::map(KMAP_VA, pt, KERNEL_RW);
    pv::set_linear_mapping(
        vmi_abi::flags::VMI_LINEAR_MAP_SLOT_KM_PTE0,
        KMAP_VA,
        1,
        pt >> 12,
    );
    let index = (KMAP_TARGET_VA >> 12) & 511;
    let ptep_through_kmap = (KMAP_VA + index * 8) as *mut u64;
    pv::set_pxe_long(
        u64::from(f) | KERNEL_RW,
        ptep_through_kmap,
        PageLevel::Pt.bit(),
    );
    let space = mm::kernel_space().expect("paging is on");
    let pdep = mm::pde_ptr(&space, KMAP_TARGET_VA);
    pv::set_pxe_long(
        u64::from(pt) | PTE_P | PTE_RW,
        pdep,
        mm::current_as_flags(PageLevel::Pd, KMAP_TARGET_VA),
    );
    let through = read32(KMAP_TARGET_VA);
    let stored = mm::read_entry(mm::entry(pt, index));
    pv::set_pxe_long(0, pdep, mm::current_as_flags(PageLevel::Pd, KMAP_TARGET_VA));
    pv::flush_tlb(VMI_FLUSH_TLB);
    mm::unmap(KMAP_VA);
    pv::release_page(pt >> 12, VMI_PAGE_L1_PAE);
    ensure_eq!(
        stored & PTE_ADDR,
        u64::from(f),
        "PTE written through the slot-1 mapping, read 1:1"
    );
    ensure_word!(through, mark(f), "word through that PTE");
    pass!("page table written through a SetLinearMapping slot-1 view maps its page")
}

pub fn machine_physical_roundtrip() -> Outcome {
    need_paging!();
    let frame = mm::alloc_frame() >> 12;
    let image = (set_pxe_long_maps_page as *const () as usize as u32) >> 12;
    let pfns = [0x100u32, image, frame, 0x9E];
    let mut mfns = [0u32; 4];
    for (i, pfn) in pfns.iter().enumerate() {
        mfns[i] = pv::physical_to_machine(*pfn);
        ensure_eq!(
            pv::machine_to_physical(mfns[i]),
            *pfn,
            "MachineToPhysical(PhysicalToMachine(pfn))"
        );
    }
    for i in 0..4 {
        for j in i + 1..4 {
            ensure!(
                mfns[i] != mfns[j],
                "frames {:#x} and {:#x} map to the same machine frame",
                pfns[i],
                pfns[j]
            );
        }
    }
    let identity = pfns.iter().zip(mfns.iter()).all(|(p, m)| p == m);
    pass!(
        "four frames round-trip{}",
        if identity {
            " (identity: no hypervisor)"
        } else {
            ""
        }
    )
}

pub fn nx_execute_faults() -> Outcome {
    need_paging!();
    const IA32_EFER: u32 = 0xC000_0080;
    const EFER_NXE: u64 = 1 << 11;
    let max_ext = pv::cpuid(0x8000_0000, 0)[0];
    if max_ext < 0x8000_0001 || pv::cpuid(0x8000_0001, 0)[3] & (1 << 20) == 0 {
        skip!("no NX (CPUID.80000001:EDX.NX clear)");
    }
    let efer = pv::rdmsr(IA32_EFER);
    pv::wrmsr(IA32_EFER, efer | EFER_NXE);
    let code = mm::alloc_frame();
    // SAFETY: a fresh frame: MOV EAX, 0x5EED; RET.
    unsafe {
        core::ptr::copy_nonoverlapping(
            [0xB8u8, 0xED, 0x5E, 0, 0, 0xC3].as_ptr(),
            code as *mut u8,
            6,
        )
    };
    let call = || {
        // SAFETY: the page holds MOV EAX, imm32; RET, or faults (caught).
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(TEST_VA as usize) };
        f()
    };
    mm::map(TEST_VA, code, PTE_P | PTE_NX);
    let denied = catch(call);
    mm::map(TEST_VA, code, PTE_P);
    let allowed = catch(call);
    mm::unmap(TEST_VA);
    pv::wrmsr(IA32_EFER, efer);
    ensure_page_fault!(denied, 0x11, TEST_VA, "call into an NX page");
    ensure_word!(allowed, 0x5EEDu32, "call into the same page without NX");
    pass!("instruction fetch from an NX page: #PF(0x11); without NX it runs")
}

pub fn user_supervisor_page_faults() -> Outcome {
    need_paging!();
    static KERNEL_WORD: Global<u32> = Global::new(0x5EC2_E700);
    let kernel_addr = KERNEL_WORD.as_ptr() as u32;
    let user_addr = user::USER_WORD.as_ptr() as u32;
    let flags = 0x202;
    let denied = user::run_iret(
        Snippet::Load,
        UserRegs {
            ebx: kernel_addr,
            ..UserRegs::default()
        },
        flags,
    );
    let stored = user::run_iret(
        Snippet::Store,
        UserRegs {
            ebx: user_addr,
            ecx: 0x0005_E400,
            ..UserRegs::default()
        },
        flags,
    );
    let loaded = user::run_iret(
        Snippet::Load,
        UserRegs {
            ebx: user_addr,
            ..UserRegs::default()
        },
        flags,
    );
    let d = &denied.frame;
    ensure!(
        d.vector == 14 && d.error_code & 7 == 5,
        "ring 3 read of a supervisor page: vector {:#x} error {:#x}",
        d.vector,
        d.error_code
    );
    ensure_eq!(denied.cr2, kernel_addr, "CR2 of the user-mode fault");
    ensure_eq!(
        stored.frame.vector,
        crate::trap::VECTOR_SYSCALL,
        "ring 3 write of a user page"
    );
    ensure_eq!(
        loaded.frame.eax,
        0x0005_E400u32,
        "ring 3 read of a user page"
    );
    ensure_eq!(
        user::USER_WORD.with(|w| *w),
        0x0005_E400u32,
        "user word seen by the kernel"
    );
    pass!("ring 3: supervisor page #PF(5) with CR2, user page read and written")
}

pub fn rom_runs_at_alias() -> Outcome {
    need_paging!();
    let Some((base, size)) = pv::rom_extent() else {
        skip!("no VMI ROM: nothing to relocate");
    };
    if mm::alias_size() == 0 || base >= mm::alias_size() {
        skip!("the ROM at {base:#x} has no alias in this address space");
    }
    let alias = mm::ALIAS_BASE + base;
    let get_reloc = alias + vmi_abi::GET_RELOCATION_INFO_OFFSET as u32;
    let mut checked = 0;
    for call in [VmiCall::GetCr0, VmiCall::GetCycleCounter, VmiCall::GetCr3] {
        let original = pv::relocation(call);
        // SAFETY: GetRelocationInfo through the alias of the ROM: regparm,
        // EAX = call number.
        let raw = unsafe { pv::rom_call(get_reloc, call as u32, 0, 0, [0, 0]) };
        let moved = VmiRelocationInfo::from_u64(raw);
        ensure_eq!(
            moved.type_,
            original.type_,
            "relocation type through the alias"
        );
        if original.relocation_type() != Ok(VmiRelocationType::CallRel) {
            continue;
        }
        let (o, m) = (original.eip, moved.eip);
        ensure!(
            o >= base && o < base + size,
            "{} at {o:#x}, outside the ROM",
            call.name()
        );
        ensure_eq!(m, alias + (o - base), "entry of the call through the alias");
        // SAFETY: the same ROM function at its alias address; these three
        // calls only read state (regparm, EAX = argument).
        let via_alias = unsafe { pv::rom_call(m, 0, 0, 0, [0, 0]) } as u32;
        let direct = match call {
            VmiCall::GetCr0 => pv::get_cr0(),
            VmiCall::GetCr3 => pv::get_cr3(),
            _ => via_alias,
        };
        ensure_eq!(
            via_alias,
            direct,
            "result of the call made through the alias"
        );
        checked += 1;
    }
    pass!("GetRelocationInfo and {checked} calls work through the ROM's alias at {alias:#x}")
}

// ---------------------------------------------------------------------------
// Part 2: address spaces, batches, figures, bad input.

/// Region for the batch of thousands (16 MiB: eight page tables).
const BULK_VA: u32 = mm::TEST_BASE + (16 << 20);
/// Pages in the batch.
const BULK_PAGES: u32 = 4096;
/// Frames the batch's pages map, in turn.
const BULK_FRAMES: usize = 64;
/// A lazy batch of N updates may cost ceil(N / B) + 2 calls into the
/// hypervisor, with a batch B of at least this many updates.
const MIN_BATCH: u32 = 32;

fn lazy_bound(n: u32) -> u32 {
    n.div_ceil(MIN_BATCH) + 2
}

/// FAIL unless `calls` (if there are figures) is at most `bound`.
macro_rules! ensure_calls_at_most {
    ($calls:expr, $bound:expr, $what:expr) => {
        if let Some(c) = $calls {
            ensure!(
                c <= $bound,
                "{}: {} calls into the hypervisor, at most {} allowed",
                $what,
                c,
                $bound
            );
        }
    };
}

pub fn lazy_batch_thousands() -> Outcome {
    need_paging!();
    let frames: [u32; BULK_FRAMES] = core::array::from_fn(|_| marked_frame());
    // The page tables first: the batch is only the entries.
    for t in 0..BULK_PAGES / 512 {
        let _ = mm::pte_ptr(BULK_VA + t * 512 * PAGE_SIZE);
    }
    let fill = |clear: bool| {
        let before = mm::rom_calls();
        pv::set_lazy_mode(VMI_LAZY_MMU);
        for i in 0..BULK_PAGES {
            let va = BULK_VA + i * PAGE_SIZE;
            let pte = if clear {
                0
            } else {
                u64::from(frames[i as usize % BULK_FRAMES]) | KERNEL_RW
            };
            pv::set_pxe_long(pte, mm::pte_ptr(va), mm::deferred_flags(PageLevel::Pt, va));
        }
        pv::set_lazy_mode(VMI_LAZY_NONE);
        let calls = mm::rom_calls_since(before);
        pv::flush_tlb(VMI_FLUSH_TLB);
        calls
    };
    let mapped = fill(false);
    let bad = (0..BULK_PAGES).find_map(|i| {
        let want = mark(frames[i as usize % BULK_FRAMES]);
        match read32(BULK_VA + i * PAGE_SIZE) {
            Ok(v) if v == want => None,
            other => Some((i, other)),
        }
    });
    let cleared = fill(true);
    let gone = read32(BULK_VA + 1234 * PAGE_SIZE);
    if let Some((i, got)) = bad {
        fail!("page {i} of the batch: {got:x?}");
    }
    ensure_page_fault!(
        gone,
        0,
        BULK_VA + 1234 * PAGE_SIZE,
        "a page cleared in the batch"
    );
    let bound = lazy_bound(BULK_PAGES);
    ensure_calls_at_most!(mapped, bound, "mapping the batch");
    ensure_calls_at_most!(cleared, bound, "clearing the batch");
    pass!(
        "{BULK_PAGES} PTE updates in lazy mode: {} hypervisor calls to map, {} to clear (bound {bound}); every page read back",
        mm::Calls(mapped),
        mm::Calls(cleared)
    )
}

/// A second address space as Linux's fork builds one: a fresh PDPT whose
/// kernel part is copied from the kernel's and announced with
/// AllocatePage(CLONE) (pgd_ctor), its own directory for the test region,
/// and the kernel's identity directory shared.
struct Child {
    pdpt: u32,
    pd1: u32,
    pt: u32,
}

impl Child {
    fn new(pte: u64) -> Self {
        let kernel = mm::kernel_space().expect("paging is on");
        let pdpt = mm::alloc_frame();
        for k in 2..4 {
            let e = mm::read_entry(mm::entry(kernel.pdpt, k));
            // SAFETY: the fresh PDPT frame, identity mapped.
            unsafe { pv::store_pxe_long(mm::entry(pdpt, k), e) };
        }
        pv::allocate_page(
            pdpt >> 12,
            VMI_PAGE_L2_PAE | VMI_PAGE_CLONE,
            kernel.pdpt >> 12,
            2,
            2,
        );
        let pd1 = mm::alloc_frame();
        pv::allocate_page(pd1 >> 12, VMI_PAGE_L2_PAE, 0, 0, 0);
        let pt = mm::alloc_frame();
        pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
        pv::set_pxe_long(
            pte,
            mm::entry(pt, (TEST_VA >> 12) & 511),
            PageLevel::Pt.bit(),
        );
        pv::set_pxe_long(
            u64::from(pt) | PTE_P | PTE_RW | PTE_US,
            mm::entry(pd1, (TEST_VA >> 21) & 511),
            PageLevel::Pd.bit(),
        );
        for (k, d) in [(0, kernel.pd[0]), (1, pd1)] {
            pv::set_pxe_long(
                u64::from(d) | PTE_P,
                mm::entry(pdpt, k),
                PageLevel::Pdp.bit(),
            );
        }
        Child { pdpt, pd1, pt }
    }

    /// Torn down in Linux's order: the entries, the table, the directory,
    /// then the PDPT (pgd_free).
    fn tear_down(self) {
        pv::set_pxe_long(
            0,
            mm::entry(self.pt, (TEST_VA >> 12) & 511),
            PageLevel::Pt.bit(),
        );
        pv::set_pxe_long(
            0,
            mm::entry(self.pd1, (TEST_VA >> 21) & 511),
            PageLevel::Pd.bit(),
        );
        pv::release_page(self.pt >> 12, VMI_PAGE_L1_PAE);
        pv::release_page(self.pd1 >> 12, VMI_PAGE_L2_PAE);
        pv::release_page(self.pdpt >> 12, VMI_PAGE_L2_PAE);
    }
}

pub fn fork_clone_cow_teardown() -> Outcome {
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let f = marked_frame();
    // The parent's page, written once.
    mm::map(TEST_VA, f, KERNEL_RW | PTE_US);
    let first = write32(TEST_VA + 16, 0x9A4E_0001);
    // Fork: both sides read-only (the parent's entry write-protected
    // natively and announced, as Linux's ptep_set_wrprotect).
    let pptep = mm::pte_ptr(TEST_VA);
    let flags = mm::current_as_flags(PageLevel::Pt, TEST_VA);
    let parent_pte = mm::read_entry(pptep);
    // SAFETY: the kernel's own test page table.
    unsafe { pv::store_pxe_long(pptep, parent_pte & !PTE_RW) };
    pv::update_pxe_long(pptep, flags);
    pv::inval_page(TEST_VA);
    let child = Child::new(parent_pte & !PTE_RW);
    let before = mm::rom_calls();
    pv::set_cr3(child.pdpt);
    let build = mm::rom_calls_since(before);
    let child_read = read32(TEST_VA + 16);
    let child_fault = write32(TEST_VA + 16, 0xC41D_0002);
    // The child's copy-on-write: its own copy, writable.
    let copy = mm::alloc_frame();
    // SAFETY: both frames are identity mapped; `copy` is fresh.
    unsafe { core::ptr::copy_nonoverlapping(f as *const u8, copy as *mut u8, PAGE_SIZE as usize) };
    pv::set_pxe_long(
        u64::from(copy) | KERNEL_RW | PTE_US,
        mm::entry(child.pt, (TEST_VA >> 12) & 511),
        flags,
    );
    pv::inval_page(TEST_VA);
    let child_write = write32(TEST_VA + 16, 0xC41D_0002);
    let child_sees = read32(TEST_VA + 16);
    let before = mm::rom_calls();
    pv::set_cr3(kernel.pdpt);
    let back = mm::rom_calls_since(before);
    let parent_sees = read32(TEST_VA + 16);
    let parent_fault = write32(TEST_VA + 16, 0x9A4E_0003);
    // The parent is the frame's last user: writable again.
    pv::set_pxe_long(parent_pte, pptep, flags);
    pv::inval_page(TEST_VA);
    let parent_write = write32(TEST_VA + 16, 0x9A4E_0003);
    child.tear_down();
    let parent_after = read32(TEST_VA + 16);
    mm::unmap(TEST_VA);
    // SAFETY: identity-mapped frames.
    let (in_f, in_copy) = unsafe {
        (
            ((f + 16) as *const u32).read_volatile(),
            ((copy + 16) as *const u32).read_volatile(),
        )
    };
    ensure!(first.is_ok(), "the parent's first write faulted");
    ensure_word!(child_read, 0x9A4E_0001, "the child reads the shared page");
    ensure_page_fault!(
        child_fault,
        3,
        TEST_VA + 16,
        "the child's write to the shared page"
    );
    ensure!(child_write.is_ok(), "the child's write to its copy faulted");
    ensure_word!(child_sees, 0xC41D_0002, "the child's copy");
    ensure_word!(
        parent_sees,
        0x9A4E_0001,
        "the parent's page after the child wrote"
    );
    ensure_page_fault!(
        parent_fault,
        3,
        TEST_VA + 16,
        "the parent's write before its copy-on-write"
    );
    ensure!(
        parent_write.is_ok(),
        "the parent's write after its copy-on-write faulted"
    );
    ensure_word!(
        parent_after,
        0x9A4E_0003,
        "the parent's page after the child was torn down"
    );
    ensure_eq!(in_f, 0x9A4E_0003u32, "the shared frame");
    ensure_eq!(in_copy, 0xC41D_0002u32, "the child's frame");
    pass!(
        "child built with AllocatePage(CLONE) (first CR3 load {} hypervisor calls, back {}), copy-on-write by write-protect faults on both sides, torn down",
        mm::Calls(build),
        mm::Calls(back)
    )
}

/// The test page mapped to a fresh marked frame, with the address of its
/// entry both in the kernel's table and through that table's alias (a
/// SetLinearMapping slot, the way Linux reaches its page tables), and the
/// update flags of a table of the current space.
struct AliasedTestPage {
    frame: u32,
    ptep: *mut u64,
    alias: *mut u64,
    flags: u32,
}

/// Maps [`AliasedTestPage`]; when the test page's table lies beyond the
/// alias, the page is unmapped again and the table's address returned.
fn aliased_test_page() -> Result<AliasedTestPage, u32> {
    let frame = marked_frame();
    mm::map(TEST_VA, frame, KERNEL_RW);
    let ptep = mm::pte_ptr(TEST_VA);
    let table = ptep as u32;
    if table + 8 > mm::alias_size() {
        mm::unmap(TEST_VA);
        return Err(table);
    }
    Ok(AliasedTestPage {
        frame,
        ptep,
        alias: (mm::ALIAS_BASE + table) as *mut u64,
        flags: mm::current_as_flags(PageLevel::Pt, TEST_VA),
    })
}

/// [`aliased_test_page`] as (frame, entry, entry through the alias,
/// flags), or the case's SKIP naming the table.
macro_rules! aliased_test_page_or_skip {
    () => {
        match aliased_test_page() {
            Ok(page) => (page.frame, page.ptep, page.alias, page.flags),
            Err(table) => skip!("the test page table at {table:#x} has no alias"),
        }
    };
}

/// A write-protect fault the kernel answers with interrupts on: two
/// supervisor writes to a read-only page fault (CR0.WP set; the second
/// under the directory entry the first one's walk found), then the kernel
/// enables interrupts, makes the entry writable natively through the
/// alias of its page table (a SetLinearMapping slot, as Linux reaches its
/// tables) and announces it with UpdatePxELong. Twice over (a platform
/// may learn the alias's page in the first round): each time the flag is
/// still on after the call, and the next write goes through to the frame.
pub fn update_after_fault_interrupts_on() -> Outcome {
    need_paging!();
    let (f, ptep, alias, flags) = aliased_test_page_or_skip!();
    let writable = mm::read_entry(ptep) | PTE_RW | PTE_A | PTE_D;
    let was = pv::save_fl();
    let mut rounds = [(false, false, 0u32, false); 2];
    for (round, r) in rounds.iter_mut().enumerate() {
        // SAFETY: the kernel's own test page table.
        unsafe { pv::store_pxe_long(ptep, writable & !PTE_RW) };
        pv::update_pxe_long(ptep, flags);
        pv::inval_page(TEST_VA);
        let first = write32(TEST_VA, 1).is_err();
        let second = write32(TEST_VA, 2).is_err();
        pv::irq_enable();
        // SAFETY: the same entry, through the alias of its table.
        unsafe { pv::store_pxe_long(alias, writable) };
        pv::update_pxe_long(alias, flags);
        let on = pv::save_fl();
        pv::restore_fl(was);
        let written = write32(TEST_VA + 4, 0x5EC0_0000 + round as u32).is_ok();
        *r = (first, second, on, written);
    }
    // SAFETY: the test page's frame, identity mapped.
    let word = unsafe { ((f + 4) as *const u32).read_volatile() };
    mm::unmap(TEST_VA);
    for (round, &(first, second, on, written)) in rounds.iter().enumerate() {
        ensure!(
            first && second,
            "round {round}: writes to the read-only page faulted: {first}, {second}"
        );
        ensure_eq!(
            on,
            EFLAGS_IF,
            format_args!(
                "round {round}: the interrupt flag after UpdatePxELong with interrupts on"
            )
        );
        ensure!(
            written,
            "round {round}: the write after the entry was made writable faulted"
        );
    }
    ensure_eq!(word, 0x5EC0_0001u32, "the page's frame after both rounds");
    pass!("write-protect faults answered with interrupts on: UpdatePxELong through the table's alias keeps the flag on and the page writable")
}

/// Page faults the kernel answers with SetPxELong through the alias of
/// its page table (a SetLinearMapping slot, as Linux's handler installs
/// the faulting page with `set_pte_at`), round after round on one entry:
/// entries a platform may install as they are (present, accessed, dirty)
/// and entries it must finish itself (not accessed yet; writable and
/// clean). Each round the entry is cleared first, so the write faults;
/// after the SetPxELong the write goes through to the frame, and the entry
/// reads as stored with A and D set (as the processor's write sets them).
/// The second half of the rounds makes the SetPxELong with interrupts on,
/// as Linux's handler does: the flag is still on after the call, both
/// where the platform installs the entry and where it finishes it.
pub fn set_after_fault_through_alias() -> Outcome {
    need_paging!();
    let (f, ptep, alias, flags) = aliased_test_page_or_skip!();
    let page = u64::from(f) | KERNEL_RW;
    let once = [
        page | PTE_A | PTE_D,
        page | PTE_A | PTE_D,
        page,
        page | PTE_A | PTE_D,
        page | PTE_A,
        page | PTE_A | PTE_D,
    ];
    let values: [u64; 12] = core::array::from_fn(|i| once[i % once.len()]);
    let was = pv::save_fl();
    let mut rounds = [(false, false, 0u64, 0u32); 12];
    for (round, (r, &value)) in rounds.iter_mut().zip(&values).enumerate() {
        let interrupts_on = round >= once.len();
        pv::set_pxe_long(0, ptep, flags);
        pv::inval_page(TEST_VA);
        let faulted = write32(TEST_VA + 8, round as u32).is_err();
        if interrupts_on {
            pv::irq_enable();
        }
        pv::set_pxe_long(value, alias, flags);
        let on = pv::save_fl();
        pv::restore_fl(was);
        let written = write32(TEST_VA + 8, 0x5E70_0000 + round as u32).is_ok();
        let expected_flag = if interrupts_on { EFLAGS_IF } else { was };
        *r = (faulted, written, mm::read_entry(ptep), on ^ expected_flag);
    }
    // SAFETY: the test page's frame, identity mapped.
    let word = unsafe { ((f + 8) as *const u32).read_volatile() };
    mm::unmap(TEST_VA);
    for (round, (&(faulted, written, entry, flag_changed), &value)) in
        rounds.iter().zip(&values).enumerate()
    {
        ensure!(
            faulted,
            "round {round}: the write to the cleared entry did not fault"
        );
        ensure_eq!(
            flag_changed,
            0,
            format_args!("round {round}: the interrupt flag changed by SetPxELong({value:#x})")
        );
        ensure!(
            written,
            "round {round}: the write after SetPxELong({value:#x}) faulted"
        );
        ensure_eq!(
            entry,
            value | PTE_A | PTE_D,
            format_args!("round {round}: the entry after SetPxELong({value:#x}) and a write")
        );
    }
    ensure_eq!(word, 0x5E70_000Bu32, "the page's frame after the rounds");
    pass!("faults answered by SetPxELong through the table's alias, with interrupts off and on: entries installed as stored, A and D added by the write, the flag kept")
}

/// A forked space torn down while another is loaded, then a second fork
/// that maps less: the second child sees only its own mappings. Its page
/// table's neighbour (the first child's second table, one directory entry
/// on) and the entry after its page were the first child's and must fault
/// in the second, as natively (an implementation that reuses the first
/// child's page-directory or page-table memory must not show them).
pub fn fork_teardown_fork_forgets() -> Outcome {
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let (f, g, h) = (marked_frame(), marked_frame(), marked_frame());
    let user_page = |frame: u32| u64::from(frame) | KERNEL_RW | PTE_US;
    let next_va = TEST_VA + (2 << 20);
    // The first child: TEST_VA and the page after it, and a second page
    // table one directory entry on mapping `h`.
    let first = Child::new(user_page(f));
    pv::set_pxe_long(
        user_page(g),
        mm::entry(first.pt, ((TEST_VA >> 12) + 1) & 511),
        PageLevel::Pt.bit(),
    );
    let second_pt = mm::alloc_frame();
    pv::allocate_page(second_pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
    pv::set_pxe_long(
        user_page(h),
        mm::entry(second_pt, (next_va >> 12) & 511),
        PageLevel::Pt.bit(),
    );
    pv::set_pxe_long(
        u64::from(second_pt) | PTE_P | PTE_RW | PTE_US,
        mm::entry(first.pd1, (next_va >> 21) & 511),
        PageLevel::Pd.bit(),
    );
    pv::set_cr3(first.pdpt);
    let first_reads = [
        read32(TEST_VA),
        read32(TEST_VA + PAGE_SIZE),
        read32(next_va),
    ];
    pv::set_cr3(kernel.pdpt);
    // Torn down while not loaded, as Linux's exit after the switch away:
    // the tables cleared natively, unlinked, released.
    for (pt, va) in [(first.pt, TEST_VA + PAGE_SIZE), (second_pt, next_va)] {
        // SAFETY: the first child's page tables, identity mapped.
        unsafe { pv::store_pxe_long(mm::entry(pt, (va >> 12) & 511), 0) };
    }
    pv::set_pxe_long(
        0,
        mm::entry(first.pd1, (next_va >> 21) & 511),
        PageLevel::Pd.bit(),
    );
    pv::release_page(second_pt >> 12, VMI_PAGE_L1_PAE);
    first.tear_down();
    // The second child maps TEST_VA alone.
    let second = Child::new(user_page(f));
    pv::set_cr3(second.pdpt);
    let own = read32(TEST_VA);
    let next_page = read32(TEST_VA + PAGE_SIZE);
    let next_table = read32(next_va);
    pv::set_cr3(kernel.pdpt);
    second.tear_down();
    for (k, (got, frame)) in first_reads.iter().zip([f, g, h]).enumerate() {
        if *got != Ok(mark(frame)) {
            fail!("the first child's page {k}: {got:x?}");
        }
    }
    ensure_word!(own, mark(f), "the second child's page");
    ensure_page_fault!(
        next_page,
        0,
        TEST_VA + PAGE_SIZE,
        "the first child's second page, in the second child"
    );
    ensure_page_fault!(
        next_table,
        0,
        next_va,
        "the first child's second page table, in the second child"
    );
    pass!("a second fork after a teardown sees its own page only; the first child's page and page table are gone")
}

pub fn accessed_dirty_cleared_and_set_again() -> Outcome {
    need_paging!();
    let f = marked_frame();
    mm::map(TEST_VA, f, KERNEL_RW | PTE_US);
    let _ = write32(TEST_VA, 5);
    let ptep = mm::pte_ptr(TEST_VA);
    let flags = mm::current_as_flags(PageLevel::Pt, TEST_VA);
    let dirty = mm::read_entry(ptep);
    // Page aging and writeback: A and D cleared natively and announced,
    // then the TLB entry dropped (Linux's ptep_clear_flush_young and
    // clear_page_dirty_for_io).
    // SAFETY: the kernel's own test page table.
    unsafe { pv::store_pxe_long(ptep, dirty & !(PTE_A | PTE_D)) };
    pv::update_pxe_long(ptep, flags);
    pv::inval_page(TEST_VA);
    let cleared = mm::read_entry(ptep);
    let _ = read32(TEST_VA);
    let after_read = mm::read_entry(ptep);
    let _ = write32(TEST_VA, 6);
    let after_write = mm::read_entry(ptep);
    mm::unmap(TEST_VA);
    ensure_eq!(
        dirty & (PTE_A | PTE_D),
        PTE_A | PTE_D,
        "A/D after the first write"
    );
    ensure_eq!(cleared & (PTE_A | PTE_D), 0u64, "A/D after clearing");
    ensure_eq!(after_read & (PTE_A | PTE_D), PTE_A, "A/D after a read");
    ensure_eq!(
        after_write & (PTE_A | PTE_D),
        PTE_A | PTE_D,
        "A/D after a write"
    );
    pass!("A and D cleared and announced come back with the next read and write")
}

pub fn protection_changes_after_flush() -> Outcome {
    need_paging!();
    let f = marked_frame();
    mm::map(TEST_VA, f, KERNEL_RW);
    let ptep = mm::pte_ptr(TEST_VA);
    let flags = mm::current_as_flags(PageLevel::Pt, TEST_VA);
    let writable = write32(TEST_VA, 1);
    pv::set_pxe_long(u64::from(f) | PTE_P, ptep, flags);
    pv::inval_page(TEST_VA);
    let read_only = write32(TEST_VA + 4, 2);
    pv::set_pxe_long(u64::from(f) | KERNEL_RW, ptep, flags);
    pv::flush_tlb(VMI_FLUSH_TLB);
    let writable_again = write32(TEST_VA + 8, 3);
    // Supervisor only, then user: ring 3's view follows.
    let user_denied = user::run_iret(
        Snippet::Load,
        UserRegs {
            ebx: TEST_VA,
            ..UserRegs::default()
        },
        0x202,
    );
    pv::set_pxe_long(u64::from(f) | KERNEL_RW | PTE_US, ptep, flags);
    pv::inval_page(TEST_VA);
    let user_allowed = user::run_iret(
        Snippet::Load,
        UserRegs {
            ebx: TEST_VA + 8,
            ..UserRegs::default()
        },
        0x202,
    );
    mm::unmap(TEST_VA);
    ensure!(writable.is_ok(), "write to a writable page faulted");
    ensure_page_fault!(
        read_only,
        3,
        TEST_VA + 4,
        "write after making the page read-only"
    );
    ensure!(
        writable_again.is_ok(),
        "write after making it writable again faulted"
    );
    let d = &user_denied.frame;
    ensure!(
        d.vector == 14 && d.error_code & 7 == 5,
        "ring 3 read of the supervisor page: vector {:#x} error {:#x}",
        d.vector,
        d.error_code
    );
    ensure_eq!(
        user_allowed.frame.eax,
        3u32,
        "ring 3 read after the page became a user page"
    );
    pass!("read-only, writable, supervisor, user: each in effect after InvalPage or FlushTLB")
}

pub fn user_cannot_read_rom_or_page_tables() -> Outcome {
    need_paging!();
    let space = mm::kernel_space().expect("paging is on");
    // A page table of the kernel's (the one mapping its first 2 MiB) and
    // the hypervisor's reserved top of the address space, if there is one.
    let table = (mm::read_entry(mm::pde_ptr(&space, 0)) & PTE_ADDR) as u32;
    let top = pv::virtual_top();
    let mut targets = [Some(table), None, None];
    if top != 0 {
        targets[1] = Some(top);
        targets[2] = Some(top.wrapping_add(0x30_0000));
    }
    let mut checked = 0;
    for target in targets.into_iter().flatten() {
        let exit = user::run_iret(
            Snippet::Load,
            UserRegs {
                ebx: target,
                ..UserRegs::default()
            },
            0x202,
        );
        let f = &exit.frame;
        ensure!(
            f.vector == 14 && f.error_code & 6 == 4 && exit.cr2 == target,
            "ring 3 read of {target:#x}: vector {:#x} error {:#x} CR2 {:#x}, expected a user-mode #PF",
            f.vector,
            f.error_code,
            exit.cr2
        );
        checked += 1;
    }
    pass!("ring 3 reads of a page table and of the reserved top fault ({checked} addresses)")
}

pub fn hypercall_counts() -> Outcome {
    need_paging!();
    const N: u32 = 32;
    let kernel = mm::kernel_space().expect("paging is on");
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let ptep = mm::pte_ptr(TEST_VA);
    let flags = mm::current_as_flags(PageLevel::Pt, TEST_VA);
    let before = mm::rom_calls();
    for i in 0..N {
        let frame = if i % 2 == 0 { g } else { f };
        pv::set_pxe_long(u64::from(frame) | KERNEL_RW, ptep, flags);
    }
    let updates = mm::rom_calls_since(before);
    let before = mm::rom_calls();
    for _ in 0..N {
        pv::inval_page(TEST_VA);
    }
    let invalidations = mm::rom_calls_since(before);
    let seen = read32(TEST_VA);
    let before = mm::rom_calls();
    for _ in 0..N {
        pv::flush_tlb(VMI_FLUSH_TLB);
    }
    let flushes = mm::rom_calls_since(before);
    let child = Child::new(u64::from(g) | KERNEL_RW | PTE_US);
    // Built and its page touched once (A set) before the count.
    pv::set_cr3(child.pdpt);
    let _ = read32(TEST_VA);
    pv::set_cr3(kernel.pdpt);
    let before = mm::rom_calls();
    let mut child_sees = Ok(0);
    for _ in 0..N {
        pv::set_cr3(child.pdpt);
        child_sees = read32(TEST_VA);
        pv::set_cr3(kernel.pdpt);
    }
    let switches = mm::rom_calls_since(before);
    let parent_sees = read32(TEST_VA);
    child.tear_down();
    mm::unmap(TEST_VA);
    ensure_word!(seen, mark(f), "the page after the last update");
    ensure_word!(child_sees, mark(g), "the child's page");
    ensure_word!(
        parent_sees,
        mark(f),
        "the kernel's page after switching back"
    );
    ensure_calls_at_most!(updates, N, "PTE updates outside lazy mode");
    ensure_calls_at_most!(invalidations, N, "InvalPage");
    ensure_calls_at_most!(flushes, N, "FlushTLB");
    ensure_calls_at_most!(switches, 2 * N, "CR3 switches between cached spaces");
    pass!(
        "hypervisor calls for {N} each: PTE updates {}, InvalPage {}, FlushTLB {}; {} CR3 switches {}",
        mm::Calls(updates),
        mm::Calls(invalidations),
        mm::Calls(flushes),
        2 * N,
        mm::Calls(switches)
    )
}

/// A frame beyond the end of RAM and below 4 GiB, in the PC's PCI hole.
const NOT_RAM: u32 = 0xE000_0000;

pub fn bad_frame_reads_empty() -> Outcome {
    need_paging!();
    mm::map(TEST_VA, NOT_RAM, PTE_P);
    let pte = mm::read_entry(mm::pte_ptr(TEST_VA));
    let read = read32(TEST_VA);
    mm::unmap(TEST_VA);
    ensure_eq!(pte & PTE_ADDR, u64::from(NOT_RAM), "the entry as written");
    let v = match read {
        Ok(v) if v == 0 || v == u32::MAX => v,
        other => fail!("reading a frame no memory backs gave {other:x?}, not an empty bus"),
    };
    pass!("a mapping of {NOT_RAM:#x} (no memory there) reads as an empty bus ({v:#x})")
}

pub fn page_table_mapped_writable() -> Outcome {
    need_paging!();
    let (f, g) = (marked_frame(), marked_frame());
    mm::map(TEST_VA, f, KERNEL_RW);
    let before = read32(TEST_VA);
    let space = mm::kernel_space().expect("paging is on");
    let table = (mm::read_entry(mm::pde_ptr(&space, TEST_VA)) & PTE_ADDR) as u32;
    // The live page table mapped writable, its entry for TEST_VA written
    // through that mapping with a plain store (no SetPxE, no UpdatePxE),
    // then the TLB entry dropped.
    mm::map(KMAP_VA, table, KERNEL_RW);
    let through = (KMAP_VA + ((TEST_VA >> 12) & 511) * 8) as *mut u64;
    // SAFETY: the kernel's own page table, through its new mapping.
    unsafe { pv::store_pxe_long(through, u64::from(g) | KERNEL_RW) };
    pv::inval_page(TEST_VA);
    let after = read32(TEST_VA);
    mm::unmap(KMAP_VA);
    mm::unmap(TEST_VA);
    ensure_word!(before, mark(f), "the page before");
    ensure_word!(after, mark(g), "the page after the store and InvalPage");
    pass!(
        "an entry stored through a writable mapping of its page table is in effect after InvalPage"
    )
}

pub fn release_live_table() -> Outcome {
    need_paging!();
    let space = mm::kernel_space().expect("paging is on");
    let pdep = mm::pde_ptr(&space, FRESH_VA);
    let f = marked_frame();
    let pt = mm::alloc_frame();
    pv::allocate_page(pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
    pv::set_pxe_long(
        u64::from(pt) | PTE_P | PTE_RW,
        pdep,
        mm::current_as_flags(PageLevel::Pd, FRESH_VA),
    );
    pv::set_pxe_long(
        u64::from(f) | KERNEL_RW,
        mm::entry(pt, (FRESH_VA >> 12) & 511),
        mm::current_as_flags(PageLevel::Pt, FRESH_VA),
    );
    let mapped = read32(FRESH_VA);
    // Released while still linked: the processor still walks it.
    pv::release_page(pt >> 12, VMI_PAGE_L1_PAE);
    pv::flush_tlb(VMI_FLUSH_TLB);
    let still = read32(FRESH_VA);
    pv::set_pxe_long(0, pdep, mm::current_as_flags(PageLevel::Pd, FRESH_VA));
    pv::flush_tlb(VMI_FLUSH_TLB);
    let gone = read32(FRESH_VA);
    ensure_word!(mapped, mark(f), "the page through the new table");
    ensure_word!(
        still,
        mark(f),
        "the page after ReleasePage of its linked table"
    );
    ensure_page_fault!(gone, 0, FRESH_VA, "the page after the table was unlinked");
    pass!("a page table released while linked kept mapping until unlinked")
}

/// Loads a CR3 whose PDPT has a reserved bit set in an entry: #GP(0) by
/// the SDM ("MOV to CR3" with PAE); a hypervisor may instead end the
/// guest, saying why. Runs only alone (the run's `only=` names it), as its
/// outcome may be the end of the run.
pub fn crash_bad_cr3() -> Outcome {
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let bad = mm::alloc_frame();
    // Entry 0: present, with RW (reserved in a PDPT entry), naming the
    // kernel's first directory.
    // SAFETY: a fresh identity-mapped frame.
    unsafe { pv::store_pxe_long(mm::entry(bad, 0), u64::from(kernel.pd[0]) | PTE_P | PTE_RW) };
    let result = catch(|| {
        pv::set_cr3(bad);
        0
    });
    pv::set_cr3(kernel.pdpt);
    match result {
        Err(f) if f.vector == 13 && f.error_code == 0 => {}
        Ok(_) => skip!(
            "this processor loaded the PDPT without checking its entries (QEMU's TCG does not)"
        ),
        Err(f) => fail!("SetCR3 of a PDPT with a reserved bit: {f}, expected #GP(0)"),
    }
    pass!("SetCR3 of a PDPT with a reserved bit set: #GP(0)")
}

/// SetLazyMode(MMU) twice, then one SetLazyMode(NONE): lazy modes do not
/// nest (vmi.h: the call sets the mode), so the one NONE ends the batch
/// and every update queued in it is in effect after the TLB flush.
pub fn lazy_mode_nested() -> Outcome {
    need_paging!();
    let (f, g) = (marked_frame(), marked_frame());
    let (a, b) = (LAZY_VA, LAZY_VA + PAGE_SIZE);
    let (pa, pb) = (mm::pte_ptr(a), mm::pte_ptr(b));
    pv::set_lazy_mode(VMI_LAZY_MMU);
    pv::set_pxe_long(
        u64::from(f) | KERNEL_RW,
        pa,
        mm::deferred_flags(PageLevel::Pt, a),
    );
    // The mistake: entering the mode again while in it.
    pv::set_lazy_mode(VMI_LAZY_MMU);
    pv::set_pxe_long(
        u64::from(g) | KERNEL_RW,
        pb,
        mm::deferred_flags(PageLevel::Pt, b),
    );
    pv::set_lazy_mode(VMI_LAZY_NONE);
    pv::flush_tlb(VMI_FLUSH_TLB);
    let (ra, rb) = (read32(a), read32(b));
    mm::unmap(a);
    mm::unmap(b);
    ensure_word!(
        ra,
        mark(f),
        "the page mapped before the nested SetLazyMode(MMU)"
    );
    ensure_word!(rb, mark(g), "the page mapped after it");
    pass!("SetLazyMode(MMU) twice, NONE once: both updates in effect (modes do not nest)")
}

/// SetLazyMode with a mode vmi.h does not define (7) in the middle of an
/// MMU batch: taken as NONE, so the batch ends and its update is in effect
/// after the TLB flush (natively the call does nothing and the update was
/// in effect at once).
pub fn lazy_mode_undefined() -> Outcome {
    need_paging!();
    const UNDEFINED_MODE: u32 = 7;
    let f = marked_frame();
    let ptep = mm::pte_ptr(LAZY_VA);
    pv::set_lazy_mode(VMI_LAZY_MMU);
    pv::set_pxe_long(
        u64::from(f) | KERNEL_RW,
        ptep,
        mm::deferred_flags(PageLevel::Pt, LAZY_VA),
    );
    pv::set_lazy_mode(UNDEFINED_MODE);
    pv::flush_tlb(VMI_FLUSH_TLB);
    let r = read32(LAZY_VA);
    pv::set_lazy_mode(VMI_LAZY_NONE);
    mm::unmap(LAZY_VA);
    ensure_word!(
        r,
        mark(f),
        "the page mapped before SetLazyMode({UNDEFINED_MODE})"
    );
    pass!("SetLazyMode({UNDEFINED_MODE}) ends an MMU batch: its update is in effect")
}

/// A CR3 whose low 5 bits are set, naming a PDPT that is 32-byte aligned
/// but not page aligned: with PAE, CR3 bits 31:5 are the PDPT's address
/// and bits 4:0 are ignored (SDM vol. 3, "Use of CR3 with PAE Paging"), so
/// the space is the kernel's, and GetCR3 gives the value loaded.
pub fn cr3_low_bits_unaligned_pdpt() -> Outcome {
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let f = marked_frame();
    mm::map(TEST_VA, f, KERNEL_RW);
    let frame = mm::alloc_frame();
    const PDPT_OFFSET: u32 = 0x60;
    for k in 0..4 {
        let e = mm::read_entry(mm::entry(kernel.pdpt, k));
        // SAFETY: a fresh identity-mapped frame, not a table yet.
        unsafe { pv::store_pxe_long(mm::entry(frame, PDPT_OFFSET / 8 + k), e) };
    }
    let cr3 = frame + PDPT_OFFSET + 0x18;
    let result = catch(|| {
        pv::set_cr3(cr3);
        // SAFETY: a read that may fault, inside catch.
        let v = unsafe { (TEST_VA as *const u32).read_volatile() };
        let got = pv::get_cr3();
        pv::set_cr3(kernel.pdpt);
        if got == cr3 {
            v
        } else {
            GETCR3_DIFFERS
        }
    });
    pv::set_cr3(kernel.pdpt);
    mm::unmap(TEST_VA);
    match result {
        Ok(v) if v == mark(f) => {}
        Ok(v) if v == GETCR3_DIFFERS => fail!("GetCR3 did not give {cr3:#x} back"),
        Ok(v) => fail!("through CR3 {cr3:#x}: read {v:#x}, expected {:#x}", mark(f)),
        Err(fault) => fail!("with CR3 {cr3:#x}: {fault}"),
    }
    pass!("CR3 {cr3:#x} (PDPT at offset {PDPT_OFFSET:#x} of its frame, low bits set): the kernel's space; GetCR3 gives it back")
}

/// What [`cr3_low_bits_unaligned_pdpt`]'s probe returns when GetCR3 differs
/// (no marked frame holds it: marks are frame addresses ^ MARKER).
const GETCR3_DIFFERS: u32 = 0xDEAD_C3C3;

/// Loads a CR3 whose frame is not RAM (nothing backs 0xE0000000): on
/// hardware the PDPT read finds all ones, reserved bits, #GP(0); a
/// hypervisor may end the guest instead, saying why. Runs only alone.
pub fn crash_cr3_not_ram() -> Outcome {
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let result = catch(|| {
        pv::set_cr3(NOT_RAM);
        0
    });
    pv::set_cr3(kernel.pdpt);
    match result {
        Err(f) if f.vector == 13 && f.error_code == 0 => {
            pass!("SetCR3 of {NOT_RAM:#x} (not RAM): #GP(0)")
        }
        Ok(_) => fail!("SetCR3 of {NOT_RAM:#x} (not RAM) returned"),
        Err(f) => fail!("SetCR3 of {NOT_RAM:#x} (not RAM): {f}, expected #GP(0)"),
    }
}

/// Loads a CR3 naming a frame of garbage (words of a seeded generator,
/// entry 0 marked present): its PDPT entries have reserved bits, #GP(0)
/// natively; a hypervisor may end the guest instead, saying which entry.
/// Runs only alone.
pub fn crash_cr3_garbage() -> Outcome {
    need_paging!();
    let kernel = mm::kernel_space().expect("paging is on");
    let frame = mm::alloc_frame();
    let mut x: u32 = 0x1234_5679;
    for i in 0..PAGE_SIZE / 4 {
        // xorshift32 (Marsaglia): garbage, the same on every run.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // SAFETY: a fresh identity-mapped frame.
        unsafe { ((frame + i * 4) as *mut u32).write_volatile(x | u32::from(i == 0)) };
    }
    let result = catch(|| {
        pv::set_cr3(frame);
        0
    });
    pv::set_cr3(kernel.pdpt);
    match result {
        Err(f) if f.vector == 13 && f.error_code == 0 => {
            pass!("SetCR3 of a frame of garbage: #GP(0)")
        }
        Ok(_) => skip!(
            "this processor loaded the PDPT without checking its entries (QEMU's TCG does not)"
        ),
        Err(f) => fail!("SetCR3 of a frame of garbage: {f}, expected #GP(0)"),
    }
}
