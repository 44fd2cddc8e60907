//! The platform ops table, Linux paravirt style: every privileged operation
//! of the kernel is one function here, bound at activation to
//!
//! * the VMI ROM's code (relocation CALL_REL: a regparm(3) call of the
//!   address GetRelocationInfo gave, through [`rom_call`]),
//! * nothing (relocation NOP, for calls without a result that Linux binds
//!   directly, `para_fill`; its wrapped calls keep the native op, see
//!   [`bind`]),
//! * the native instruction (relocation NONE, or no ROM at all).
//!
//! The hot operations are inline patch sites instead (a `.pv_sites` table,
//! as Linux's `.parainstructions`): the interrupt flag, IRET and SYSEXIT,
//! the control registers, InvalPage, UpdateKernelStack, SetLazyMode and
//! SetPxELong. A site holds the native instruction (padded to the 5 bytes
//! of a call with one multi-byte NOP) and activation rewrites it with
//! `call`/`jmp rel32` to the ROM's entry or NOPs, as Linux's `vmi_patch`
//! and `paravirt_patch_call` do ([`vmi_abi::patch_site`]): a patched call
//! is a direct `call rel32` with the arguments already in EAX, EDX, ECX
//! and only the stack words the call has. A call with a stack argument the
//! native code does not need (SetPxELong's flags) has a branch site
//! instead: a 5-byte NOP the patcher turns into a `jmp` to the ROM path
//! (Linux's static branches), so natively the flags are never computed.
//!
//! Register conventions of each call: `vmi_abi::VmiCall::info`.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};

use native_rom::alarm;
use native_rom::hw::cpu::{self, DescriptorTablePointer};
use native_rom::hw::{apic, pit, port, power, rtc};
use vmi_abi::call::{Convention, Ret};
use vmi_abi::{
    patch_site, PatchAction, VmiCall, VmiRelocationInfo, VmiRelocationType, VMI_NUM_CALLS,
};

use crate::console::kprintln;
use crate::desc;

/// Kernel data selector with the kernel's RPL (the entry code loads it).
pub static KERNEL_DS: AtomicU16 = AtomicU16::new(desc::selector(desc::GDT_KERNEL_DATA, 0));
/// Kernel code selector with the kernel's RPL.
pub static KERNEL_CS: AtomicU16 = AtomicU16::new(desc::selector(desc::GDT_KERNEL_CODE, 0));
static KERNEL_RPL: AtomicU16 = AtomicU16::new(0);

/// Binding of one call: 0 = native, 1 = nothing (NOP), else the ROM address.
static TABLE: [AtomicU32; VMI_NUM_CALLS] = [const { AtomicU32::new(NATIVE) }; VMI_NUM_CALLS];
/// The raw GetRelocationInfo answers (0 before activation).
static RELOCS: [AtomicU64; VMI_NUM_CALLS] = [const { AtomicU64::new(0) }; VMI_NUM_CALLS];
static ACTIVE: AtomicBool = AtomicBool::new(false);
static ROM_BASE: AtomicU32 = AtomicU32::new(0);
static ROM_SIZE: AtomicU32 = AtomicU32::new(0);
static VIRTUAL_TOP: AtomicU32 = AtomicU32::new(0);
static NATIVE_TSC_HZ: AtomicU64 = AtomicU64::new(0);

const NATIVE: u32 = 0;
const NOTHING: u32 = 1;

/// The kernel's privilege level (CS & 3 after VMI_Init; 0 natively).
pub fn kernel_rpl() -> u16 {
    KERNEL_RPL.load(Ordering::SeqCst)
}

/// Kernel code selector.
pub fn kernel_cs() -> u16 {
    KERNEL_CS.load(Ordering::SeqCst)
}

/// Kernel data selector.
pub fn kernel_ds() -> u16 {
    KERNEL_DS.load(Ordering::SeqCst)
}

/// Whether a VMI ROM is active.
pub fn vmi_active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}

/// (base, size in bytes) of the active ROM.
pub fn rom_extent() -> Option<(u32, u32)> {
    vmi_active().then(|| {
        (
            ROM_BASE.load(Ordering::SeqCst),
            ROM_SIZE.load(Ordering::SeqCst),
        )
    })
}

/// The ROM's `virtual_top`: the kernel keeps `virtual_top..4 GiB` free
/// (0 = nothing reserved, as Linux computes `-virtual_top`).
pub fn virtual_top() -> u32 {
    VIRTUAL_TOP.load(Ordering::SeqCst)
}

/// Whether the kernel may use virtual address `va` (not reserved for the
/// hypervisor by the ROM's `virtual_top`).
pub fn va_usable(va: u32) -> bool {
    let top = virtual_top();
    top == 0 || va < top
}

/// The GetRelocationInfo answer for `call` (NONE without a ROM).
pub fn relocation(call: VmiCall) -> VmiRelocationInfo {
    VmiRelocationInfo::from_u64(RELOCS[call as usize].load(Ordering::SeqCst))
}

/// The address of the ROM's own code for `call`, whatever the relocation
/// type: CALL_REL and JUMP_REL give one, and a ROM may give one with NONE
/// too (keep the native instruction, which is what the code does; the
/// native ROM does for the calls that are one instruction on hardware), so
/// the conformance cases can still hold that code to the call's effect by
/// calling it directly. None without a ROM, or for a NOP or a bare NONE.
pub fn rom_entry(call: VmiCall) -> Option<u32> {
    let reloc = relocation(call);
    (vmi_active() && reloc.relocation_type() != Ok(VmiRelocationType::Nop) && reloc.eip != 0)
        .then_some(reloc.eip)
}

fn target(call: VmiCall) -> u32 {
    TABLE[call as usize].load(Ordering::Relaxed)
}

/// Calls ROM code at `eip` with regparm(3) registers and two stack words
/// (a callee with fewer stack arguments ignores the extra ones; the caller
/// pops them, as regparm's caller does). Returns EDX:EAX.
///
/// # Safety
/// `eip` must be the ROM's entry for a call whose convention these
/// registers satisfy, and the call's effect must be acceptable.
pub unsafe fn rom_call(eip: u32, eax: u32, edx: u32, ecx: u32, stack: [u32; 2]) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: per the caller. A regparm(3) function may clobber EAX, ECX,
    // EDX and the flags and must keep EBX, ESI, EDI, EBP and DF clear.
    unsafe {
        asm!(
            "push dword ptr [{stack} + 4]",
            "push dword ptr [{stack}]",
            "call {f}",
            "add esp, 8",
            f = in(reg) eip,
            stack = in(reg) &stack,
            inlateout("eax") eax => lo,
            inlateout("edx") edx => hi,
            inlateout("ecx") ecx => _,
        )
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// [`rom_call`] for a call without stack arguments: registers only.
///
/// # Safety
/// As [`rom_call`].
#[inline(always)]
unsafe fn rom_call_regs(eip: u32, eax: u32, edx: u32, ecx: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: per the caller (regparm(3), as rom_call).
    unsafe {
        asm!(
            "call {f}",
            f = in(reg) eip,
            inlateout("eax") eax => lo,
            inlateout("edx") edx => hi,
            inlateout("ecx") ecx => _,
        )
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// [`rom_call`] for a call with one stack argument.
///
/// # Safety
/// As [`rom_call`].
#[inline(always)]
unsafe fn rom_call_1(eip: u32, eax: u32, edx: u32, ecx: u32, stack0: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: per the caller (regparm(3), as rom_call); the word pushed
    // here is the call's only stack argument, popped after the return.
    unsafe {
        asm!(
            "push {s0}",
            "call {f}",
            "add esp, 4",
            f = in(reg) eip,
            s0 = in(reg) stack0,
            inlateout("eax") eax => lo,
            inlateout("edx") edx => hi,
            inlateout("ecx") ecx => _,
        )
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

// A ROM call with the registers and exactly the stack words the call has
// (vmi.h's regparm(3) prototypes): no word pushed that the callee does not
// take.
macro_rules! rom {
    ($eip:expr) => {
        rom!($eip, 0, 0, 0)
    };
    ($eip:expr, $a:expr) => {
        rom!($eip, $a, 0, 0)
    };
    ($eip:expr, $a:expr, $d:expr) => {
        rom!($eip, $a, $d, 0)
    };
    ($eip:expr, $a:expr, $d:expr, $c:expr) => {
        // SAFETY: `$eip` is what GetRelocationInfo returned (CALL_REL) for
        // this call, and the arguments follow its regparm convention
        // (vmi_abi::VmiCall::info).
        unsafe { rom_call_regs($eip, $a as u32, $d as u32, $c as u32) }
    };
    ($eip:expr, $a:expr, $d:expr, $c:expr, $s0:expr) => {
        // SAFETY: as above; the call's one stack argument is pushed.
        unsafe { rom_call_1($eip, $a as u32, $d as u32, $c as u32, $s0 as u32) }
    };
    ($eip:expr, $a:expr, $d:expr, $c:expr, $s0:expr, $s1:expr) => {
        // SAFETY: as above; the call's two stack arguments are pushed.
        unsafe {
            rom_call(
                $eip,
                $a as u32,
                $d as u32,
                $c as u32,
                [$s0 as u32, $s1 as u32],
            )
        }
    };
}

/// Binds `call` and runs the native code, nothing, or the ROM's code.
macro_rules! op {
    ($call:ident, native => $native:expr, rom($eip:ident) => $rom:expr) => {
        match target(VmiCall::$call) {
            NATIVE => $native,
            NOTHING => Default::default(),
            $eip => $rom,
        }
    };
}

// ---------------------------------------------------------------------------
// Inline patch sites: interrupt flag, IRET (trap.rs), SYSEXIT (user.rs).

// The interrupt-flag sites are inline where they are used, as Linux's
// paravirt sites are (`cli` or `sti` padded to the 5 bytes of a call with
// one 4-byte NOP, as Linux pads with its ideal NOPs; the patched call into
// the ROM clobbers nothing but flags, vmi.h): each use records its own
// `.pv_sites` entry. Numeric labels, since the code is repeated at every
// inlined use.
macro_rules! irq_flag_site {
    ($insn:literal, $call:expr) => {
        // SAFETY: the site is the native instruction or, once patched, a
        // call to the ROM's entry, which keeps every register but flags;
        // the IDT handles every vector.
        unsafe {
            core::arch::asm!(
                concat!("2: ", $insn),
                ".byte 0x0f, 0x1f, 0x40, 0x00",
                "3:",
                ".pushsection .pv_sites, \"a\"",
                ".long 2b",
                ".byte 3b - 2b, {call}, 0, 0",
                ".popsection",
                call = const $call as u32,
            )
        }
    };
}

core::arch::global_asm!(
    r#"
    .text
    .globl pv_save_fl
pv_save_fl:
.Lsave_site:  pushfd
    pop eax
    .byte 0x0f, 0x1f, 0x00
.Lsave_end:  ret
    .pushsection .pv_sites, "a"
    .long .Lsave_site
    .byte .Lsave_end - .Lsave_site, {save}, 0, 0
    .popsection

    // restore_fl(mask): the native site calls a helper that sets IF from
    // the mask and leaves the other flags (IOPL!) alone.
    .globl pv_restore_fl
pv_restore_fl:
    mov eax, [esp + 4]
.Lrest_site:  call native_restore_fl
.Lrest_end:  ret
    .pushsection .pv_sites, "a"
    .long .Lrest_site
    .byte .Lrest_end - .Lrest_site, {restore}, 0, 0
    .popsection

native_restore_fl:
    test eax, 0x200
    jz .Lrestore_cli
    sti
    ret
.Lrestore_cli:
    cli
    ret
    "#,
    save = const VmiCall::GetInterruptMask as u32,
    restore = const VmiCall::SetInterruptMask as u32,
);

extern "C" {
    fn pv_save_fl() -> u32;
    fn pv_restore_fl(mask: u32);
    static __pv_sites_start: PatchSite;
    static __pv_sites_end: PatchSite;
}

/// One `.pv_sites` record: a call site (`len` >= 5 bytes of native code
/// at `addr`), or a branch site (`len` [`BRANCH_UNLESS_NATIVE`] or
/// [`BRANCH_TO_ROM_CODE`]: a 5-byte NOP at `addr`, the ROM path at
/// `addr + 5 + branch_to`).
#[repr(C)]
struct PatchSite {
    addr: u32,
    len: u8,
    call: u8,
    branch_to: i16,
}

const _: () = assert!(core::mem::size_of::<PatchSite>() == 8);

/// Branch site kind: taken unless the call stays native (a NOP relocation
/// takes it too, to a ROM path whose call site is NOPs: the native code,
/// which does something, must be skipped).
const BRANCH_UNLESS_NATIVE: u8 = 0;
/// Branch site kind: taken only when the call is bound to ROM code (the
/// native code does nothing, so a NOP relocation is the native path).
const BRANCH_TO_ROM_CODE: u8 = 1;

/// The `.pv_sites` record of the call site between local labels `2:` and
/// `3:` (its call number is the asm's `call` operand).
macro_rules! call_site_record {
    () => {
        concat!(
            ".pushsection .pv_sites, \"a\"\n",
            ".long 2b\n",
            ".byte 3b - 2b, {call}, 0, 0\n",
            ".popsection",
        )
    };
}

/// Whether `CALL`'s sites go to the ROM: a branch site of kind `KIND`
/// ([`BRANCH_UNLESS_NATIVE`] or [`BRANCH_TO_ROM_CODE`]), natively a 5-byte
/// NOP that falls through to the native code (false); activation turns it
/// into a `jmp` to the ROM path (true).
#[inline(always)]
fn rom_bound<const CALL: u8, const KIND: u8>() -> bool {
    // SAFETY: the site is a NOP, or once patched a jump to the label; it
    // touches no memory, stack or flags.
    unsafe {
        asm!(
            "2: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
            "3:",
            ".pushsection .pv_sites, \"a\"",
            ".long 2b",
            ".byte {kind}, {call}",
            ".short {rom} - 3b",
            ".popsection",
            kind = const KIND,
            call = const CALL,
            rom = label { return true; },
            options(nomem, nostack, preserves_flags),
        );
    }
    false
}

/// DisableInterrupts (`irq_disable`): an inline site, native CLI or a call
/// to the ROM's DisableInterrupts.
#[inline(always)]
pub fn irq_disable() {
    irq_flag_site!("cli", VmiCall::DisableInterrupts);
}

/// EnableInterrupts (`irq_enable`): an inline site, native STI or a call
/// to the ROM's EnableInterrupts; pending interrupts are delivered.
#[inline(always)]
pub fn irq_enable() {
    irq_flag_site!("sti", VmiCall::EnableInterrupts);
}

/// GetInterruptMask (`save_fl`): 0x200 if interrupts are enabled, else 0.
pub fn save_fl() -> u32 {
    // SAFETY: the site reads the flags (natively) or calls GetInterruptMask.
    unsafe { pv_save_fl() & cpu::EFLAGS_IF }
}

/// SetInterruptMask (`restore_fl`): enables interrupts iff `mask` has 0x200.
pub fn restore_fl(mask: u32) {
    // SAFETY: as irq_enable / irq_disable.
    unsafe { pv_restore_fl(mask & cpu::EFLAGS_IF) }
}

// ---------------------------------------------------------------------------
/// GetRelocationInfo's answer for any number, asked now (None without an
/// active ROM).
pub fn relocation_info(call: u32) -> Option<VmiRelocationInfo> {
    if !vmi_active() {
        return None;
    }
    let get_reloc = ROM_BASE.load(Ordering::SeqCst) + vmi_abi::GET_RELOCATION_INFO_OFFSET as u32;
    Some(VmiRelocationInfo::from_u64(rom!(get_reloc, call)))
}

// Activation.

/// Why activation did not happen.
#[derive(Debug)]
pub enum ActivationError {
    /// VMI_Init returned non-zero.
    InitFailed(u32),
}

/// Calls VMI_Init at `rom_base + 0x80`, asks GetRelocationInfo (ROM+0x88)
/// for every call, binds the ops and patches the inline sites: Linux's
/// `activate_vmi`. `size` and `virtual_top` come from the ROM's header.
/// Interrupts must be off.
pub fn activate(rom_base: u32, size: u32, virtual_top: u32) -> Result<(), ActivationError> {
    let init = rom_base + vmi_abi::VMI_INIT_OFFSET as u32;
    let get_reloc = rom_base + vmi_abi::GET_RELOCATION_INFO_OFFSET as u32;
    // VMI_Init: regparm(1) u32 (void).
    let status = rom!(init) as u32;
    if status != 0 {
        return Err(ActivationError::InitFailed(status));
    }
    let rpl = cpu::read_cs() & 3;
    KERNEL_RPL.store(rpl, Ordering::SeqCst);
    KERNEL_CS.store(desc::selector(desc::GDT_KERNEL_CODE, rpl), Ordering::SeqCst);
    KERNEL_DS.store(desc::selector(desc::GDT_KERNEL_DATA, rpl), Ordering::SeqCst);
    ROM_BASE.store(rom_base, Ordering::SeqCst);
    ROM_SIZE.store(size, Ordering::SeqCst);
    VIRTUAL_TOP.store(virtual_top, Ordering::SeqCst);

    let mut counts = [0u32; 4];
    for call in VmiCall::ALL {
        // GetRelocationInfo: regparm(2) u64 (int call).
        let raw = rom!(get_reloc, call as u32);
        RELOCS[call as usize].store(raw, Ordering::SeqCst);
        let reloc = VmiRelocationInfo::from_u64(raw);
        let binding = bind(call, reloc);
        TABLE[call as usize].store(binding, Ordering::SeqCst);
        if let Ok(kind) = reloc.relocation_type() {
            counts[kind as usize] += 1;
        }
    }
    patch_all_sites();
    ACTIVE.store(true, Ordering::SeqCst);
    kprintln!(
        "vmi: active, kernel RPL {rpl}: {} calls CALL_REL, {} JUMP_REL, {} NOP, {} NONE",
        counts[1],
        counts[2],
        counts[3],
        counts[0]
    );
    Ok(())
}

/// Whether the kernel needs a value back from `call` (a NOP cannot stand
/// for it).
fn returns_value(call: VmiCall) -> bool {
    match call.info().convention {
        Convention::Regparm(r) => !matches!(r.ret, Ret::Void),
        Convention::Cpuid | Convention::StringIn => true,
        _ => false,
    }
}

/// Whether Linux binds `call` through a wrapper (`para_wrap`) or
/// `vmi_get_function`, which take only CALL_REL and keep the native op for
/// NOP as for NONE ("NOPs deliberately ignored": a NOP VMI call need not be
/// a NOP op). So a ROM answering NOP for UpdateKernelStack leaves the
/// kernel writing its TSS, for SetPxELong storing its entries, for
/// FlushTLB flushing: never nothing where the native op does something.
fn nop_keeps_native(call: VmiCall) -> bool {
    matches!(
        call,
        VmiCall::Cpuid
            | VmiCall::SetLdt
            | VmiCall::SetTr
            | VmiCall::WriteGdtEntry
            | VmiCall::WriteLdtEntry
            | VmiCall::WriteIdtEntry
            | VmiCall::UpdateKernelStack
            | VmiCall::SetLazyMode
            | VmiCall::FlushTlb
            | VmiCall::SetPxe
            | VmiCall::SetPxeLong
            | VmiCall::UpdatePxe
            | VmiCall::UpdatePxeLong
            | VmiCall::AllocatePage
            | VmiCall::ReleasePage
            | VmiCall::SetLinearMapping
            | VmiCall::SetInitialApState
    )
}

/// The binding of a call from its relocation (Linux's `para_fill` /
/// `para_wrap` / `vmi_get_function` rules; patch-only calls are bound by
/// their sites).
fn bind(call: VmiCall, reloc: VmiRelocationInfo) -> u32 {
    match reloc.relocation_type() {
        Ok(VmiRelocationType::CallRel) if reloc.eip > NOTHING => reloc.eip,
        Ok(VmiRelocationType::Nop) if nop_keeps_native(call) => NATIVE,
        Ok(VmiRelocationType::Nop) if !returns_value(call) => NOTHING,
        Ok(VmiRelocationType::Nop) => {
            kprintln!(
                "vmi: NOP relocation for {}, which returns a value: keeping the native instruction",
                call.name()
            );
            NATIVE
        }
        Ok(VmiRelocationType::None) => NATIVE,
        Ok(VmiRelocationType::JumpRel) if matches!(call, VmiCall::Iret | VmiCall::Sysexit) => {
            NATIVE
        }
        Ok(kind) => {
            kprintln!(
                "vmi: unusable relocation {} (eip {:#x}) for {}",
                kind.name(),
                reloc.eip,
                call.name()
            );
            NATIVE
        }
        Err(raw) => {
            kprintln!("vmi: unknown relocation type {raw} for {}", call.name());
            NATIVE
        }
    }
}

/// Multi-byte NOPs of 1 to 9 bytes (Intel SDM vol. 2B, "NOP", recommended
/// multi-byte sequences): a site's padding is one instruction.
const NOPS: [&[u8]; 9] = [
    &[0x90],
    &[0x66, 0x90],
    &[0x0F, 0x1F, 0x00],
    &[0x0F, 0x1F, 0x40, 0x00],
    &[0x0F, 0x1F, 0x44, 0x00, 0x00],
    &[0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00],
    &[0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/// Fills `bytes` (the rest of a site after its new instruction) so that it
/// costs one instruction: a multi-byte NOP, or a short jump over the rest
/// (Linux pads with its ideal NOPs the same way, `add_nops`).
fn fill_padding(bytes: &mut [u8]) {
    match bytes.len() {
        0 => {}
        n @ 1..=9 => bytes.copy_from_slice(NOPS[n - 1]),
        n => {
            // jmp rel8 past the end; the skipped bytes are NOPs for anyone
            // disassembling the site.
            let skip = (n - 2).min(127);
            bytes[0] = 0xEB;
            bytes[1] = skip as u8;
            bytes[2..].fill(vmi_abi::reloc::NOP_OPCODE);
        }
    }
}

/// Rewrites one site's bytes: `insn` (if any) first, the padding after it.
///
/// # Safety
/// `addr..addr + len` must be a site in the kernel's own (writable) text
/// that no code runs while it is rewritten.
unsafe fn rewrite_site(addr: u32, len: usize, insn: Option<[u8; vmi_abi::reloc::REL32_INSN_LEN]>) {
    // SAFETY: per the caller.
    let bytes = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) };
    let used = match insn {
        Some(insn) => {
            bytes[..insn.len()].copy_from_slice(&insn);
            insn.len()
        }
        None => 0,
    };
    fill_padding(&mut bytes[used..]);
}

fn patch_all_sites() {
    // The linker script brackets the .pv_sites records with these symbols.
    let (start, end) = (&raw const __pv_sites_start, &raw const __pv_sites_end);
    let count = (end as usize - start as usize) / core::mem::size_of::<PatchSite>();
    let mut patched = [0u32; 2];
    for i in 0..count {
        // SAFETY: i < count: a record inside the section (each is a PatchSite).
        let site = unsafe { start.add(i).read() };
        let Some(call) = VmiCall::from_u32(u32::from(site.call)) else {
            kprintln!(
                "vmi: .pv_sites record {i} at {:#x} names no VMI call ({}): left native",
                site.addr,
                site.call
            );
            continue;
        };
        let len = usize::from(site.len);
        if site.len == BRANCH_UNLESS_NATIVE || site.len == BRANCH_TO_ROM_CODE {
            // A branch site: to the ROM path unless the call stays native
            // (or, for the second kind, unless it is bound to nothing).
            let binding = target(call);
            if binding != NATIVE && (site.len == BRANCH_UNLESS_NATIVE || binding != NOTHING) {
                let end = site.addr + vmi_abi::reloc::REL32_INSN_LEN as u32;
                let rom_path = end.wrapping_add(site.branch_to as i32 as u32);
                let jump =
                    vmi_abi::encode_rel32(vmi_abi::reloc::JMP_REL32_OPCODE, site.addr, rom_path);
                // SAFETY: the record's 5-byte site in the kernel's text;
                // interrupts are off while activation patches.
                unsafe { rewrite_site(site.addr, vmi_abi::reloc::REL32_INSN_LEN, Some(jump)) };
                patched[1] += 1;
            }
            continue;
        }
        let insn = if matches!(call, VmiCall::Iret | VmiCall::Sysexit) {
            // Jumped-to sites: JUMP_REL (or CALL_REL) as the ROM says; an
            // IRET or SYSEXIT cannot become nothing: keep the native one.
            let reloc = relocation(call);
            match patch_site(reloc, site.addr, len) {
                Ok(PatchAction::Write { insn }) => Some(insn),
                Ok(PatchAction::NopFill) => {
                    kprintln!(
                        "vmi: NOP relocation for {}: keeping the native instruction",
                        call.name()
                    );
                    continue;
                }
                Ok(PatchAction::KeepNative) => {
                    // Linux points these ops at poison addresses and needs
                    // them patched; this kernel keeps the native one and
                    // says so.
                    kprintln!(
                        "vmi: NONE relocation for {}: keeping the native instruction",
                        call.name()
                    );
                    continue;
                }
                Err(e) => {
                    kprintln!(
                        "vmi: cannot patch the {} site at {:#x}: {e}",
                        call.name(),
                        site.addr
                    );
                    continue;
                }
            }
        } else {
            // Called sites follow the call's binding (so a NOP answer for a
            // call that returns a value keeps the native code, as bind says).
            match target(call) {
                NATIVE => continue,
                NOTHING => None,
                eip if len >= vmi_abi::reloc::REL32_INSN_LEN => Some(vmi_abi::encode_rel32(
                    vmi_abi::reloc::CALL_REL32_OPCODE,
                    site.addr,
                    eip,
                )),
                _ => {
                    kprintln!(
                        "vmi: cannot patch the {} site at {:#x}: {len} bytes cannot hold a call",
                        call.name(),
                        site.addr
                    );
                    continue;
                }
            }
        };
        // SAFETY: the site lies in the kernel's own (writable) text and no
        // code runs it while interrupts are off here.
        unsafe { rewrite_site(site.addr, len, insn) };
        patched[0] += 1;
    }
    // Serialize after modifying code (CPUID is serializing).
    let _ = cpu::cpuid(0, 0);
    kprintln!(
        "vmi: {} call sites and {} branch sites patched",
        patched[0],
        patched[1]
    );
}

// ---------------------------------------------------------------------------
// The ops.

/// CPUID.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    match target(VmiCall::Cpuid) {
        NATIVE | NOTHING => cpu::cpuid(leaf, subleaf),
        eip => {
            let (a, b, c, d): (u32, u32, u32, u32);
            // SAFETY: the ROM's CPUID entry takes EAX/ECX and returns EAX,
            // EBX, ECX, EDX like the instruction, clobbering only flags.
            unsafe {
                asm!("call edi", in("edi") eip, inlateout("eax") leaf => a, out("ebx") b,
                     inlateout("ecx") subleaf => c, out("edx") d)
            };
            [a, b, c, d]
        }
    }
}

/// WRMSR.
pub fn wrmsr(msr: u32, value: u64) {
    op!(Wrmsr,
        // SAFETY: the cases write MSRs they restore or that are theirs.
        native => unsafe { cpu::wrmsr(msr, value) },
        rom(eip) => { rom!(eip, value as u32, (value >> 32) as u32, msr); })
}

/// RDMSR.
pub fn rdmsr(msr: u32) -> u64 {
    op!(Rdmsr,
        // SAFETY: the cases read MSRs that exist on this processor.
        native => unsafe { cpu::rdmsr(msr) },
        rom(eip) => rom!(eip, 0, 0, msr))
}

/// SetGDT.
pub fn set_gdt(ptr: &DescriptorTablePointer) {
    op!(SetGdt,
        // SAFETY: the kernel's tables are statics that stay valid.
        native => unsafe { cpu::lgdt(ptr) },
        rom(eip) => { rom!(eip, ptr as *const _ as u32); })
}

/// GetGDT.
pub fn get_gdt() -> DescriptorTablePointer {
    op!(GetGdt, native => cpu::sgdt(), rom(eip) => {
        let mut p = DescriptorTablePointer::default();
        rom!(eip, &mut p as *mut _ as u32);
        p
    })
}

/// SetIDT.
pub fn set_idt(ptr: &DescriptorTablePointer) {
    op!(SetIdt,
        // SAFETY: the kernel's tables are statics that stay valid.
        native => unsafe { cpu::lidt(ptr) },
        rom(eip) => { rom!(eip, ptr as *const _ as u32); })
}

/// GetIDT.
pub fn get_idt() -> DescriptorTablePointer {
    op!(GetIdt, native => cpu::sidt(), rom(eip) => {
        let mut p = DescriptorTablePointer::default();
        rom!(eip, &mut p as *mut _ as u32);
        p
    })
}

/// SetLDT (0 = no LDT).
pub fn set_ldt(selector: u16) {
    op!(SetLdt,
        // SAFETY: callers pass 0 or a selector of an LDT descriptor.
        native => unsafe { cpu::lldt(selector) },
        rom(eip) => { rom!(eip, selector); })
}

/// GetLDT.
pub fn get_ldt() -> u16 {
    op!(GetLdt, native => cpu::read_ldtr(), rom(eip) => rom!(eip) as u16)
}

/// SetTR.
pub fn set_tr(selector: u16) {
    op!(SetTr,
        // SAFETY: callers pass a selector of an available TSS descriptor.
        native => unsafe { cpu::ltr(selector) },
        rom(eip) => { rom!(eip, selector); })
}

/// GetTR.
pub fn get_tr() -> u16 {
    op!(GetTr, native => cpu::read_tr(), rom(eip) => rom!(eip) as u16)
}

fn write_table_entry(table: u32, index: u32, desc: u64) {
    // SAFETY: callers pass one of the kernel's descriptor tables and an
    // index inside it.
    unsafe { ((table + index * 8) as *mut u64).write_volatile(desc) }
}

/// WriteGDTEntry.
pub fn write_gdt_entry(table: u32, index: u32, desc: u64) {
    op!(WriteGdtEntry,
        native => write_table_entry(table, index, desc),
        rom(eip) => { rom!(eip, table, index, desc as u32, (desc >> 32) as u32); })
}

/// WriteLDTEntry.
pub fn write_ldt_entry(table: u32, index: u32, desc: u64) {
    op!(WriteLdtEntry,
        native => write_table_entry(table, index, desc),
        rom(eip) => { rom!(eip, table, index, desc as u32, (desc >> 32) as u32); })
}

/// WriteIDTEntry.
pub fn write_idt_entry(table: u32, index: u32, desc: u64) {
    op!(WriteIdtEntry,
        native => write_table_entry(table, index, desc),
        rom(eip) => { rom!(eip, table, index, desc as u32, (desc >> 32) as u32); })
}

/// UpdateKernelStack: the stack ring-0 entries from ring 3 switch to.
/// Natively the kernel writes its TSS (the site's two stores); through a
/// ROM the site is a call with SS in EAX and ESP0 in EDX (the case then
/// proves the ROM made it effective).
#[inline(always)]
pub fn update_kernel_stack(ss: u16, esp0: u32) {
    // SAFETY: the site stores into the kernel's own TSS (desc::TSS, whose
    // esp0/ss0 offsets desc.rs checks) or, patched, calls the ROM's
    // UpdateKernelStack (regparm: EAX, EDX; EAX, ECX, EDX clobbered).
    unsafe {
        asm!(
            "2: mov dword ptr [{tss} + 4], edx",
            "mov dword ptr [{tss} + 8], eax",
            "3:",
            call_site_record!(),
            call = const VmiCall::UpdateKernelStack as u32,
            tss = sym desc::TSS,
            inout("eax") u32::from(ss) => _,
            inout("edx") esp0 => _,
            out("ecx") _,
        )
    }
}

// The control register sites: `mov` to or from the register with EAX, 3
// bytes, padded with a 2-byte NOP; patched, a call to the ROM's Get/Set
// call (regparm: the value in EAX).
macro_rules! cr_ops {
    ($get:ident, $set:ident, $getcall:ident, $setcall:ident, $cr:literal) => {
        /// Reads the control register (VMI Get call).
        #[inline(always)]
        pub fn $get() -> u32 {
            let value: u32;
            // SAFETY: reading a control register (or the ROM's Get call,
            // which clobbers only EAX, ECX, EDX and flags).
            unsafe {
                asm!(
                    concat!("2: mov eax, ", $cr),
                    ".byte 0x66, 0x90",
                    "3:",
                    call_site_record!(),
                    call = const VmiCall::$getcall as u32,
                    out("eax") value,
                    out("ecx") _,
                    out("edx") _,
                )
            };
            value
        }

        /// Writes the control register (VMI Set call).
        #[inline(always)]
        pub fn $set(value: u32) {
            // SAFETY: the kernel and its cases keep their own code and
            // data mapped across control register writes; patched, the
            // ROM's Set call (regparm, EAX).
            unsafe {
                asm!(
                    concat!("2: mov ", $cr, ", eax"),
                    ".byte 0x66, 0x90",
                    "3:",
                    call_site_record!(),
                    call = const VmiCall::$setcall as u32,
                    inout("eax") value => _,
                    out("ecx") _,
                    out("edx") _,
                )
            }
        }
    };
}

cr_ops!(get_cr0, set_cr0, GetCr0, SetCr0, "cr0");
cr_ops!(get_cr2, set_cr2, GetCr2, SetCr2, "cr2");
cr_ops!(get_cr3, set_cr3, GetCr3, SetCr3, "cr3");
cr_ops!(get_cr4, set_cr4, GetCr4, SetCr4, "cr4");

/// WBINVD.
pub fn wbinvd() {
    op!(Wbinvd, native => cpu::wbinvd(), rom(eip) => { rom!(eip); })
}

/// SetDR.
pub fn set_dr(n: u32, value: u32) {
    op!(SetDr,
        // SAFETY: the kernel handles #DB.
        native => unsafe { cpu::write_dr(n, value) },
        rom(eip) => { rom!(eip, n, value); })
}

/// GetDR.
pub fn get_dr(n: u32) -> u32 {
    op!(GetDr, native => cpu::read_dr(n), rom(eip) => rom!(eip, n) as u32)
}

/// RDPMC.
pub fn rdpmc(counter: u32) -> u64 {
    op!(Rdpmc,
        // SAFETY: the case only reads counters CPUID reports.
        native => unsafe { cpu::rdpmc(counter) },
        rom(eip) => rom!(eip, 0, 0, counter))
}

/// RDTSC.
pub fn rdtsc() -> u64 {
    op!(Rdtsc, native => cpu::rdtsc(), rom(eip) => rom!(eip))
}

/// CLTS.
pub fn clts() {
    op!(Clts,
        // SAFETY: the kernel owns the FPU state.
        native => unsafe { cpu::clts() },
        rom(eip) => { rom!(eip); })
}

/// Halt: waits for an interrupt with interrupts enabled ("all VMI halts
/// are safe"); returns after the handler ran.
pub fn halt() {
    op!(Halt,
        // SAFETY: the IDT handles every vector.
        native => unsafe { cpu::safe_halt() },
        rom(eip) => { rom!(eip); })
}

/// Reboot (`how` = VMI_REBOOT_SOFT / VMI_REBOOT_HARD). Returns only if the
/// ROM's Reboot does.
pub fn reboot(how: u32) {
    op!(Reboot,
        // SAFETY: the kernel is done.
        native => unsafe { power::reset(how == vmi_abi::flags::VMI_REBOOT_HARD) },
        rom(eip) => { rom!(eip, how); })
}

/// The isa-debug-exit port QEMU's test machine has (the runner adds the
/// device): the native "power switch" of the judge's machine.
pub const DEBUG_EXIT_PORT: u16 = 0xF4;

/// Shutdown: powers the machine off. Returns only if that did not work.
pub fn shutdown() {
    op!(Shutdown,
        // SAFETY: the kernel is done; the write ends QEMU.
        native => unsafe { port::out32(DEBUG_EXIT_PORT, 0) },
        rom(eip) => { rom!(eip); })
}

/// SetPxE: a 32-bit page-table entry store (in PAE tables: the low half).
// The pointer is a page-table entry of the kernel's own tables, as the
// VMI call this stands for takes it (its callers' contract, unchanged since
// the module became part of the guest's library).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn set_pxe(pte: u32, ptep: *mut u32, flags: u32) {
    op!(SetPxe,
        // SAFETY: callers pass entries of the kernel's own page tables.
        native => unsafe { ptep.write_volatile(pte) },
        rom(eip) => { rom!(eip, pte, ptep as u32, flags); })
}

/// Stores a 64-bit entry so that it is never seen present with a stale
/// half: high half first when it becomes present, low half first otherwise.
///
/// # Safety
/// `ptep` must be an entry of a page table the kernel owns.
pub unsafe fn store_pxe_long(ptep: *mut u64, pte: u64) {
    let halves = ptep as *mut u32;
    // SAFETY: per the caller.
    unsafe {
        if pte & 1 != 0 {
            halves.add(1).write_volatile((pte >> 32) as u32);
            halves.write_volatile(pte as u32);
        } else {
            halves.write_volatile(pte as u32);
            halves.add(1).write_volatile((pte >> 32) as u32);
        }
    }
}

/// SetPxELong: a 64-bit (PAE) page-table entry store.
// The pointer is a page-table entry of the kernel's own tables, as the
// VMI call this stands for takes it (its callers' contract, unchanged since
// the module became part of the guest's library).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[inline(always)]
pub fn set_pxe_long(pte: u64, ptep: *mut u64, flags: u32) {
    set_pxe_long_with(pte, ptep, || flags)
}

/// SetPxELong with the flags computed only when the ROM takes them (Linux's
/// `vmi_set_pte_at` computes its `vmi_flags_addr` in the ROM's wrapper
/// too): natively the entry is stored and nothing else is done. Through
/// the ROM: a branch site to a direct call with EDX:EAX = entry, ECX =
/// pointer and the flags as the one stack word.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[inline(always)]
pub fn set_pxe_long_with(pte: u64, ptep: *mut u64, flags: impl FnOnce() -> u32) {
    if rom_bound::<{ VmiCall::SetPxeLong as u8 }, BRANCH_UNLESS_NATIVE>() {
        let flags = flags();
        // SAFETY: the call site (a NOP until activation patches it with a
        // call to the ROM's SetPxELong) gets its regparm arguments and its
        // one stack word, popped after it.
        unsafe {
            asm!(
                "push {flags}",
                "2: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
                "3:",
                call_site_record!(),
                "add esp, 4",
                call = const VmiCall::SetPxeLong as u32,
                flags = in(reg) flags,
                inout("eax") pte as u32 => _,
                inout("edx") (pte >> 32) as u32 => _,
                inout("ecx") ptep as u32 => _,
            )
        }
    } else {
        // SAFETY: callers pass entries of the kernel's own page tables.
        unsafe { store_pxe_long(ptep, pte) }
    }
}

/// UpdatePxE: the kernel already wrote `*ptep` (32-bit entry).
pub fn update_pxe(ptep: *mut u32, flags: u32) {
    op!(UpdatePxe, native => {}, rom(eip) => { rom!(eip, ptep as u32, flags); })
}

/// UpdatePxELong: the kernel already wrote `*ptep` (64-bit entry).
#[inline(always)]
pub fn update_pxe_long(ptep: *mut u64, flags: u32) {
    update_pxe_long_with(ptep, || flags)
}

/// UpdatePxELong with the flags computed only when the ROM's code takes
/// them (Linux's `pte_update`, `vmi_update_pte`): natively, and through a
/// ROM answering NOP, nothing at all (a branch site left a NOP); through
/// the ROM's code a direct call with EAX = pointer, EDX = flags.
#[inline(always)]
pub fn update_pxe_long_with(ptep: *mut u64, flags: impl FnOnce() -> u32) {
    if rom_bound::<{ VmiCall::UpdatePxeLong as u8 }, BRANCH_TO_ROM_CODE>() {
        let flags = flags();
        // SAFETY: the call site (a NOP until activation patches it with a
        // call to the ROM's UpdatePxELong) gets its regparm arguments.
        unsafe {
            asm!(
                "2: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
                "3:",
                call_site_record!(),
                call = const VmiCall::UpdatePxeLong as u32,
                inout("eax") ptep as u32 => _,
                inout("edx") flags => _,
                out("ecx") _,
            )
        }
    }
}

/// MachineToPhysical (frame numbers; identity natively).
pub fn machine_to_physical(mfn: u32) -> u32 {
    op!(MachineToPhysical, native => mfn, rom(eip) => rom!(eip, mfn) as u32)
}

/// PhysicalToMachine (frame numbers; identity natively).
pub fn physical_to_machine(pfn: u32) -> u32 {
    op!(PhysicalToMachine, native => pfn, rom(eip) => rom!(eip, pfn) as u32)
}

/// AllocatePage: `pfn` becomes a page table of the level in `flags`
/// (with VMI_PAGE_CLONE: entries `start..start+count` copied from
/// `clone_pfn`, which the kernel has already done in memory).
pub fn allocate_page(pfn: u32, flags: u32, clone_pfn: u32, start: u32, count: u32) {
    op!(AllocatePage, native => {}, rom(eip) => { rom!(eip, pfn, flags, clone_pfn, start, count); })
}

/// ReleasePage: `pfn` is no longer a page table.
pub fn release_page(pfn: u32, flags: u32) {
    op!(ReleasePage, native => {}, rom(eip) => { rom!(eip, pfn, flags); })
}

/// InvalPage: an inline site, `invlpg [eax]` padded with a 2-byte NOP,
/// or a call to the ROM's InvalPage (EAX = address).
#[inline(always)]
pub fn inval_page(va: u32) {
    // SAFETY: INVLPG only drops a TLB entry; patched, the ROM's call
    // (regparm, EAX; EAX, ECX, EDX clobbered).
    unsafe {
        asm!(
            "2: invlpg [eax]",
            ".byte 0x66, 0x90",
            "3:",
            call_site_record!(),
            call = const VmiCall::InvalPage as u32,
            inout("eax") va => _,
            out("ecx") _,
            out("edx") _,
        )
    }
}

/// FlushTLB (`how` = VMI_FLUSH_TLB, optionally | VMI_FLUSH_GLOBAL).
pub fn flush_tlb(how: u32) {
    op!(FlushTlb,
        native => cpu::flush_tlb(how & vmi_abi::flags::VMI_FLUSH_GLOBAL != 0),
        rom(eip) => { rom!(eip, how); })
}

/// SetLinearMapping: `pages` pages from frame `pfn` are mapped at `va`
/// (slot 0: the kernel's linear map of physical memory).
pub fn set_linear_mapping(slot: u32, va: u32, pages: u32, pfn: u32) {
    op!(SetLinearMapping, native => {}, rom(eip) => { rom!(eip, slot, va, pages, pfn); })
}

/// The port I/O calls (INB/INW/INL): EDX = port, value in EAX.
pub fn port_in(width: u8, port_number: u16) -> u32 {
    let call = match width {
        1 => VmiCall::Inb,
        2 => VmiCall::Inw,
        _ => VmiCall::Inl,
    };
    match target(call) {
        NATIVE | NOTHING => {
            // SAFETY: the cases read ports of devices they own.
            unsafe {
                match width {
                    1 => u32::from(port::in8(port_number)),
                    2 => u32::from(port::in16(port_number)),
                    _ => port::in32(port_number),
                }
            }
        }
        eip => {
            let value = rom!(eip, 0, port_number) as u32;
            match width {
                1 => value & 0xFF,
                2 => value & 0xFFFF,
                _ => value,
            }
        }
    }
}

/// The port I/O calls (OUTB/OUTW/OUTL): EAX = value, EDX = port.
pub fn port_out(width: u8, port_number: u16, value: u32) {
    let call = match width {
        1 => VmiCall::Outb,
        2 => VmiCall::Outw,
        _ => VmiCall::Outl,
    };
    match target(call) {
        NATIVE => {
            // SAFETY: the cases write ports of devices they own.
            unsafe {
                match width {
                    1 => port::out8(port_number, value as u8),
                    2 => port::out16(port_number, value as u16),
                    _ => port::out32(port_number, value),
                }
            }
        }
        NOTHING => {}
        eip => {
            rom!(eip, value, port_number);
        }
    }
}

/// INSB/INSW/INSL: `count` items from `port_number` into `buf` (EDI = dst,
/// EDX = port, ECX = count, as the string instruction).
pub fn port_in_string(width: u8, port_number: u16, buf: &mut [u8]) {
    let (call, size) = match width {
        1 => (VmiCall::Insb, 1),
        2 => (VmiCall::Insw, 2),
        _ => (VmiCall::Insl, 4),
    };
    let count = buf.len() / size;
    let dst = buf.as_mut_ptr();
    match target(call) {
        NATIVE | NOTHING => {
            // SAFETY: `buf` holds `count` items; DF is clear (Rust ABI).
            unsafe {
                match width {
                    1 => {
                        asm!("rep insb", inout("edi") dst => _, inout("ecx") count => _, in("dx") port_number)
                    }
                    2 => {
                        asm!("rep insw", inout("edi") dst => _, inout("ecx") count => _, in("dx") port_number)
                    }
                    _ => {
                        asm!("rep insd", inout("edi") dst => _, inout("ecx") count => _, in("dx") port_number)
                    }
                }
            }
        }
        eip => {
            // SAFETY: the ROM's INS entry stores `count` items at EDI like
            // the instruction; `buf` holds them.
            unsafe {
                asm!("call ebx", in("ebx") eip, inout("edi") dst => _, inout("ecx") count => _,
                     inout("edx") u32::from(port_number) => _, out("eax") _)
            };
        }
    }
}

/// OUTSB/OUTSW/OUTSL: `count` items from `buf` to `port_number` (ESI =
/// src, EDX = port, ECX = count).
pub fn port_out_string(width: u8, port_number: u16, buf: &[u8]) {
    let (call, size) = match width {
        1 => (VmiCall::Outsb, 1),
        2 => (VmiCall::Outsw, 2),
        _ => (VmiCall::Outsl, 4),
    };
    let count = buf.len() / size;
    let src = buf.as_ptr();
    // ESI cannot be an asm operand on i686 (LLVM's base pointer): the asm
    // saves it and loads it from another register.
    let (insn_target, native) = match target(call) {
        NATIVE | NOTHING => (0, true),
        eip => (eip, false),
    };
    // SAFETY: `buf` holds `count` items; the ROM's OUTS entry reads them at
    // ESI like the instruction. ESI is restored.
    unsafe {
        if native {
            match width {
                1 => asm!("push esi", "mov esi, {s}", "rep outsb", "pop esi", s = in(reg) src,
                          inout("ecx") count => _, in("dx") port_number),
                2 => asm!("push esi", "mov esi, {s}", "rep outsw", "pop esi", s = in(reg) src,
                          inout("ecx") count => _, in("dx") port_number),
                _ => asm!("push esi", "mov esi, {s}", "rep outsd", "pop esi", s = in(reg) src,
                          inout("ecx") count => _, in("dx") port_number),
            }
        } else {
            asm!("push esi", "mov esi, edi", "call ebx", "pop esi", in("edi") src, in("ebx") insn_target,
                 inout("ecx") count => _, inout("edx") u32::from(port_number) => _, out("eax") _);
        }
    }
}

/// SetIOPLMask (`mask` pre-shifted: `3 << 12` = IOPL 3).
pub fn set_iopl_mask(mask: u32) {
    op!(SetIoplMask,
        // SAFETY: the cases restore IOPL 0.
        native => unsafe { cpu::set_iopl_mask(mask) },
        rom(eip) => { rom!(eip, mask); })
}

/// APICWrite (register offset, value).
pub fn apic_write(reg: u32, value: u32) {
    op!(ApicWrite,
        // SAFETY: the APIC page is mapped 1:1 (paging off, or the kernel's
        // page tables map it).
        native => unsafe { apic::write(reg, value) },
        rom(eip) => { rom!(eip, reg, value); })
}

/// APICRead.
pub fn apic_read(reg: u32) -> u32 {
    op!(ApicRead,
        // SAFETY: as apic_write.
        native => unsafe { apic::read(reg) },
        rom(eip) => rom!(eip, reg) as u32)
}

/// IODelay.
pub fn io_delay() {
    op!(IoDelay, native => port::io_delay(), rom(eip) => { rom!(eip); })
}

/// The native TSC rate, measured once against the PIT.
fn native_tsc_hz() -> u64 {
    let cached = NATIVE_TSC_HZ.load(Ordering::SeqCst);
    if cached != 0 {
        return cached;
    }
    // SAFETY: the kernel owns PIT channel 2.
    let hz = unsafe { pit::calibrate_tsc() };
    NATIVE_TSC_HZ.store(hz, Ordering::SeqCst);
    hz
}

/// GetCycleFrequency: cycles per second of the cycle counters.
pub fn cycle_frequency() -> u64 {
    op!(GetCycleFrequency, native => native_tsc_hz(), rom(eip) => rom!(eip))
}

/// GetCycleCounter (VMI_CYCLES_REAL, _AVAILABLE, _STOLEN; 0 for others).
pub fn cycle_counter(counter: u32) -> u64 {
    op!(GetCycleCounter,
        native => match counter {
            vmi_abi::time::VMI_CYCLES_REAL | vmi_abi::time::VMI_CYCLES_AVAILABLE => cpu::rdtsc(),
            _ => 0,
        },
        rom(eip) => rom!(eip, counter))
}

/// The real-time cycle counter now.
pub fn cycles_now() -> u64 {
    cycle_counter(vmi_abi::time::VMI_CYCLES_REAL)
}

/// SetAlarm (flags, absolute expiry, period; cycles).
pub fn set_alarm(flags: u32, expiry: u64, period: u64) {
    op!(SetAlarm,
        // SAFETY: the IDT handles IRQ 0 and the LVTT vector.
        native => unsafe { alarm::set_alarm(native_tsc_hz(), flags, expiry, period) },
        rom(eip) => { rom!(eip, flags, expiry as u32, (expiry >> 32) as u32, period as u32, (period >> 32) as u32); })
}

/// CancelAlarm: 1 if the alarm was armed.
pub fn cancel_alarm(flags: u32) -> u32 {
    op!(CancelAlarm,
        // SAFETY: as set_alarm.
        native => unsafe { alarm::cancel_alarm(flags) },
        rom(eip) => rom!(eip, flags) as u32)
}

/// GetWallclockTime: nanoseconds since the epoch.
pub fn wallclock_ns() -> u64 {
    op!(GetWallclockTime,
        // SAFETY: the kernel owns the CMOS ports.
        native => unsafe { rtc::read_unix_seconds() }.unwrap_or(0).saturating_mul(1_000_000_000),
        rom(eip) => rom!(eip))
}

/// WallclockUpdated: 1 once after the wall clock jumped.
pub fn wallclock_updated() -> u32 {
    op!(WallclockUpdated, native => 0, rom(eip) => rom!(eip) as u32)
}

/// SetLazyMode (VMI_LAZY_NONE / _MMU / _CPU): an inline site, natively a
/// 5-byte NOP (hardware has no lazy mode), patched with a call to the ROM's
/// SetLazyMode (EAX = mode) or left NOPs for a NOP relocation.
#[inline(always)]
pub fn set_lazy_mode(mode: u32) {
    // SAFETY: a NOP, or the ROM's call (regparm, EAX; EAX, ECX, EDX
    // clobbered); queued updates the ROM flushes are the kernel's own.
    unsafe {
        asm!(
            "2: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
            "3:",
            call_site_record!(),
            call = const VmiCall::SetLazyMode as u32,
            inout("eax") mode => _,
            out("ecx") _,
            out("edx") _,
        )
    }
}
