//! Exceptions and events from Xen: the ROM's entry stubs.
//!
//! Xen bounces an exception to the handler in the trap table with, on the
//! ring-1 stack: [error code], EIP, CS (saved upcall mask in bits 16-23),
//! EFLAGS, and ESP/SS when it came from ring 3 (xen.h, compat bounce
//! frame). Each vector has a 9-byte stub that makes the frame uniform
//! (a 0 error code where the processor pushes none) and records the vector.

use crate::console::Line;
use crate::xen::crash;
use xen_vmi_rom::decode::SoftwareInterrupt;

/// Vectors for which the processor pushes an error code (#DF, #TS, #NP,
/// #SS, #GP, #PF, #AC, #CP, #VC, #SX); `int n` never pushes one, and
/// vectors from 32 up are never exceptions.
const fn has_error_code(v: u32) -> bool {
    matches!(v, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// Bytes per stub: `push 0` (where the processor pushes no error code),
/// `push imm8`, `jmp rel32`, each encoded by hand so every stub has the
/// same size (9 bytes, 288 for the 32 exceptions instead of 512 at 16: the
/// image has a size limit, `ROM_CODE_MAX`).
const STUB_SIZE: u32 = 9;

/// The stubs of vectors 32-255, which only an `int n` could reach, and of
/// those Xen's trap table lets through only 0x80 (the others get DPL 0:
/// `descriptors::trap_table_dpl`, so an `int n` is a #GP in vector 13's
/// stub), and that only when the kernel's gate is not one Xen delivers
/// directly (`descriptors::direct_gate`): a rare trap. 4 bytes each (`push imm8`, `jmp rel8`) in groups of 32, each group
/// followed by its hub (16 bytes: the error code word put under the vector
/// word, `jmp rel32` to the common path), two instructions more per trap
/// than a 9-byte stub and 1,008 bytes less for the 224.
const SOFT_STUB_SIZE: u32 = 4;
const SOFT_STUBS_PER_HUB: u32 = 32;
const SOFT_HUB_SIZE: u32 = 16;
const SOFT_GROUP_SIZE: u32 = SOFT_STUBS_PER_HUB * SOFT_STUB_SIZE + SOFT_HUB_SIZE;
const _: () = assert!((256 - 32) % SOFT_STUBS_PER_HUB == 0);
// The first stub of a group reaches its hub with a rel8.
const _: () = assert!(SOFT_STUBS_PER_HUB * SOFT_STUB_SIZE - 4 <= 127);

/// The stub of `vector`, from the start of the stubs.
const fn stub_offset(vector: u32) -> u32 {
    if vector < 32 {
        vector * STUB_SIZE
    } else {
        let n = vector - 32;
        32 * STUB_SIZE
            + (n / SOFT_STUBS_PER_HUB) * SOFT_GROUP_SIZE
            + (n % SOFT_STUBS_PER_HUB) * SOFT_STUB_SIZE
    }
}
const _: () = assert!(
    stub_offset(31) == 279
        && stub_offset(32) == 288
        && stub_offset(63) == 288 + 31 * 4
        && stub_offset(64) == 288 + 144
        && stub_offset(255) == 288 + 6 * 144 + 31 * 4
);

core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_trap_stubs, "ax"
    .balign 16
    .globl vmi_trap_stubs
vmi_trap_stubs:
    .set vec, 0
    .rept 32
    .if vec == {page_fault_vector}
    // #PF: straight to its one-step path, which pushes the vector word
    // only when it leaves the fault to the general path.
    .byte 0xE9
    .long vmi_page_fault_quick - (. + 4)
    .byte 0xCC, 0xCC, 0xCC, 0xCC
    .else
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    .byte 0x6A, 0x00
    .endif
    // push imm8 of vec - 128 (sign-extended; the common path adds 128
    // back), so that every vector fits a two-byte push.
    .byte 0x6A, (vec - 128) & 0xFF
    .byte 0xE9
    .long vmi_trap_stub_common - (. + 4)
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .byte 0xCC, 0xCC
    .endif
    .endif
    .set vec, vec + 1
    .endr
    .if . - vmi_trap_stubs != 32 * {stub_size}
    .error "a trap stub is not STUB_SIZE bytes"
    .endif
    // Vectors 32-255 (`SOFT_STUB_SIZE`): push imm8 of vec - 128, jmp rel8
    // to the group's hub, which copies that word down and puts the error
    // code word (0) where it was, as a 9-byte stub's two pushes leave them.
    .rept (256 - 32) / {soft_per_hub}
    .rept {soft_per_hub}
    .byte 0x6A, (vec - 128) & 0xFF
    .byte 0xEB, 1f - (. + 1)
    .set vec, vec + 1
    .endr
1:  push dword ptr [esp]
    mov dword ptr [esp + 4], 0
    .byte 0xE9
    .long vmi_trap_stub_common - (. + 4)
    .endr
    .if . - vmi_trap_stubs != 32 * {stub_size} + (256 - 32) / {soft_per_hub} * {soft_group}
    .error "a soft trap stub or hub is not SOFT_STUB_SIZE or SOFT_HUB_SIZE bytes"
    .endif

    // DS and ES at an entry from Xen are the interrupted code's (Xen
    // reloads only CS and SS on a bounce): a known-flat pair
    // (`TableRegs::flat_data`, read through SS, the kernel's flat stack
    // segment) is used as it is, anything else (a null selector, an LDT
    // segment with a base) makes the ROM's accesses fault or land
    // elsewhere. ECX (clobbered) gets ES:DS.
    .macro data_segments_known_flat other
    mov ecx, es
    shl ecx, 16
    // mov cx, ds, with its operand-size prefix: the assembler would drop
    // it, and the 32-bit form zero-extends.
    .byte 0x66, 0x8C, 0xD9
    cmp ecx, ss:[{flat_data}]
    je .Lknown_flat\@
    cmp ecx, ss:[{flat_data} + 4]
    jne \other
.Lknown_flat\@:
    .endm

    // The general entries' check, after PUSHAD: not known-flat, DS and ES
    // saved with the frame's address and replaced by SS's selector (and
    // the pair learnt if flat, `desc::note_flat_data`); the frame's exit
    // (`vmi_data_segments_back`) loads them back.
    .macro data_segments_for_rom
    data_segments_known_flat 5f
    jmp 6f
5:  // Both SS's selector (the kernel's stack segment, flat: the kernel's
    // own, or the ROM's code interrupted after an entry loaded it, by a
    // fill-in fault or an event once the kernel's flag is back): nothing
    // to save (the slot may hold the interrupted entry's pair), only to
    // learn.
    mov eax, ss
    mov edx, eax
    shl edx, 16
    or edx, eax
    cmp ecx, edx
    je 8f
    mov ds, ax
    mov es, ax
    mov [{saved_segments}], ecx
    mov [{saved_frame}], esp
8:  push ecx
    call {note_segments}
    add esp, 4
6:
    .endm

vmi_trap_stub_common:
    add dword ptr [esp], 128
    // Falls through: the event and failsafe entries push their full
    // numbers and enter below.
vmi_trap_common:
    // Xen's bounce keeps the direction flag as the interrupted code left
    // it (a user `std` before a fault or an event); the Rust code behind
    // this entry (its `rep movs` copies) needs it clear, as the i386 ABI
    // says. The frame's EFLAGS keeps the interrupted code's DF.
    cld
    // One spare word below the stub's two: the far pointer of a forward
    // is written into these slots, so no global slot is ever in use.
    sub esp, 4
    pushad
    data_segments_for_rom
    mov eax, esp
    push eax
    call {trap}
vmi_trap_returned:
    add esp, 4
    cmp esp, [{saved_frame}]
    je 7f
3:  test eax, eax
    jnz 1f
    // Back to Xen's frame through the ROM's IRET: the kernel's flag from
    // the frame's IF, a pending event delivered after the return.
    popad
    add esp, 12
    jmp vmi_entry_iret
1:  cmp eax, 3
    je 4f
    cmp eax, 2
    popad
    je 2f
    // To the kernel's handler, no error code: the stub's two words hold
    // the gate's offset and selector.
    add esp, 4
    retf
2:  // With Xen's error code kept: the spare word and the vector slot hold
    // the gate's offset and selector.
    retf
4:  // Resume on another stack or code selector (ring compression). The
    // slot is a global: events stay masked (as Xen entered the ROM) until
    // its words are on the new stack, and the ROM's IRET then gives the
    // kernel its flag back from the slot's EFLAGS.IF, delivering what is
    // pending after the return. An event taken before the slot was read
    // could otherwise refill it (its handler's own ring compression).
    popad
    // Through SS: DS may be the interrupted code's again.
    lss esp, ss:[{resume} + 12]
    push dword ptr ss:[{resume} + 8]
    push dword ptr ss:[{resume} + 4]
    push dword ptr ss:[{resume}]
    jmp vmi_entry_iret
7:  // This frame's entry replaced DS and ES: theirs again, whichever way
    // out (to the kernel's gate as the processor delivers, with the
    // interrupted code's data segments; the ROM's IRET reads through SS).
    call vmi_data_segments_back
    jmp 3b

    // DS and ES as `data_segments_for_rom` saved them; EAX and ESP kept.
vmi_data_segments_back:
    push eax
    mov dword ptr [{saved_frame}], 0
    mov eax, [{saved_segments}]
    mov ds, ax
    shr eax, 16
    mov es, ax
    pop eax
    ret

    // #PF: the same frame, entering `rom_page_fault` (the kernel's usual
    // page fault found in one step; every other one goes on to `rom_trap`).
vmi_page_fault_common:
    cld
    mov dword ptr [esp], {page_fault_vector}
    sub esp, 4
    pushad
    data_segments_for_rom
    mov eax, esp
    push eax
    call {page_fault}
    // The usual outcome first: to the kernel's gate with Xen's error code
    // kept (as the common path's FORWARD_WITH_ERROR_CODE below).
    cmp eax, {forward_with_error_code}
    jne vmi_trap_returned
    add esp, 4
    cmp esp, [{saved_frame}]
    jne 1f
    call vmi_data_segments_back
1:  popad
    retf

    // #PF, the one-step path (`vmi_page_fault_quick` below): the kernel's
    // usual fault under the directory entry of the one before (the
    // remembered `FaultPath`), decided as `ShadowCache::quick_kernels_fault`
    // says (the host tests hold it to `kernels_fault`), Xen's frame then the
    // kernel's through its cached interrupt gate. Whatever it does not
    // answer goes to the path above with the vector word the stub would
    // have pushed: `rom_page_fault`, which decides again from the start
    // (nothing is changed before the answer). Stack on entry: Xen's frame
    // (error code first); ECX and EDX are saved below it.

    // Every memory operand below goes through SS, the kernel's flat
    // stack segment (Xen loads it on the bounce): DS and ES are the
    // interrupted code's, whatever they hold, and stay so for the
    // kernel's gate, as the processor delivers a fault (the general path
    // replaces and restores them, `data_segments_for_rom`).

    // ECX: the byte offset of the view slot the fault path remembered
    // (`hint`, a u16 slot number) for the kernel frame whose slot tag is
    // `tag` (a u32, the frame + 1: `FaultPath::l2_tag`, `l1_tag`), if the
    // slot is still that frame's (a slot `Views::lookup` gave); else on
    // to 9 (the general path). Clobbers EDX.
    .macro page_fault_quick_view hint, tag
    movzx ecx, word ptr ss:[{cache} + \hint]
    mov edx, ss:[{cache} + \tag]
    cmp ss:[{view_tags} + ecx * 4], edx
    jne 9f
    shl ecx, 12
    .endm

    // The gate as it was read, and its code segment's descriptor's high
    // word (`ForwardGate::current`): last, once the fault is known to be
    // the kernel's, so that a declined fault does not pay for it. First
    // the fault's address goes where `kernels_page_fault` leaves it (the
    // kernel's update of its entry, `Some(va)`): a read of the kernel's
    // IDT or GDT may fault (its page not shadowed yet: the ROM fills it in
    // and the read runs again), and that fault writes Xen's CR2, which the
    // way out (to the gate, or to the general path when the gate changed:
    // 8 below) sets back from it.
    .macro page_fault_quick_gate_current
    mov edx, ss:[{cr2}]
    mov dword ptr ss:[{cache} + {fault_va}], 1
    mov ss:[{cache} + {fault_va} + 4], edx
    mov ecx, ss:[{gate} + {gate_addr}]
    mov edx, ss:[ecx]
    cmp edx, ss:[{gate} + {gate_raw}]
    jne 8f
    mov edx, ss:[ecx + 4]
    cmp edx, ss:[{gate} + {gate_raw} + 4]
    jne 8f
    mov ecx, ss:[{gate} + {segment_addr}]
    mov edx, ss:[ecx + 4]
    cmp edx, ss:[{gate} + {segment_raw} + 4]
    jne 8f
    .endm

    // CR2 the fault's again for the kernel's handler (GetCR2), as the
    // processor's reads of the gate would have left it; the rest of what
    // `kernels_page_fault` leaves (the "same fault fixed twice" guard
    // forgotten: `paging::forget_last_fix`, an error code no #PF has),
    // then the kernel's gate, the error code kept, Xen's frame its own.
    .macro page_fault_quick_to_gate
    mov edx, ss:[{cache} + {fault_va} + 4]
    mov ss:[{cr2}], edx
    mov dword ptr ss:[{last_fix} + 8], -1
    pop edx
    pop ecx
    // As the general path's handler leaves it (its Rust code needs it).
    cld
    jmp fword ptr ss:[{gate}]
    .endm
    .globl vmi_page_fault_quick
vmi_page_fault_quick:
    push ecx
    push edx
    // Armed (`ForwardGate::one_step`): paging on, the heap built, CR0.WP
    // set, no write step, the gate a usable interrupt gate (a trap gate
    // gives the kernel its flag back). Then what changes at any time: no
    // context switch held, nothing queued (the views are all mapped).
    cmp byte ptr ss:[{gate} + {gate_one_step}], 0
    je 9f
    // (The held flag, a bool, and the queue's length in one test.)
    movzx edx, byte ptr ss:[{held}]
    or edx, ss:[{batch_len}]
    jnz 9f
    // Under the remembered directory entry (its `dir` matching says one is
    // remembered), of the loaded root.
    mov edx, ss:[{cr2}]
    shr edx, 21
    cmp edx, ss:[{cache} + {path_dir}]
    jne 9f
    mov cx, ss:[{cache} + {path_current}]
    cmp cx, ss:[{cache} + {current}]
    jne 9f
    // The kernel's directory entry through the view slot it was read
    // through, as remembered.
    page_fault_quick_view {path_l2_hint}, {path_l2_tag}
    // The entry's offset, the remembered directory's (compared above):
    // below 4096, so a 16-bit add to the slot's offset never carries.
    add cx, word ptr ss:[{cache} + {path_pde_offset}]
    mov edx, ss:[{views} + ecx]
    cmp edx, ss:[{cache} + {path_pde}]
    jne 9f
    mov edx, ss:[{views} + ecx + 4]
    cmp edx, ss:[{cache} + {path_pde} + 4]
    jne 9f
    // The leaf entry's low word (P, RW, U/S) through its view slot.
    page_fault_quick_view {path_l1_hint}, {path_l1_tag}
    mov edx, ss:[{cr2}]
    shr edx, 9
    and edx, 0xFF8
    mov ecx, ss:[{views} + ecx + edx]
    test cl, 1
    jz 2f
    // Present: the kernel's when the access lacks a right (the error
    // code's W and U/S bits sit at RW's and U/S's), else the general
    // path's (A and D, a stale shadow entry).
    and ecx, ss:[{cache} + {path_pde}]
    not ecx
    and ecx, [esp + 8]
    test cl, 6
    jz 9f
    page_fault_quick_gate_current
    // The error code's P bit from the kernel's tables.
    or dword ptr [esp + 8], 1
    page_fault_quick_to_gate
2:  // Not present: the kernel's, P clear.
    page_fault_quick_gate_current
    and dword ptr [esp + 8], -2
    page_fault_quick_to_gate
8:  // The gate or its segment changed (natively): declined after the
    // fault's address was noted and the kernel's tables read, and a read
    // that faulted (the ROM filled the page in) left its own address in
    // Xen's CR2. The fault's again, and the address noted forgotten, so
    // that the general path decides from the fault as Xen gave it (not
    // from the gate's address and its page's rights).
    mov edx, ss:[{cache} + {fault_va} + 4]
    mov ss:[{cr2}], edx
    mov dword ptr ss:[{cache} + {fault_va}], 0
9:  pop edx
    pop ecx
    // The general path, with the stub's vector word it expects.
    push {page_fault_vector} - 128
    jmp vmi_page_fault_common

    .balign 16
    .globl vmi_event_entry
vmi_event_entry:
    push 0
    push 256
    jmp vmi_trap_common

    .balign 16
    .globl vmi_failsafe_entry
vmi_failsafe_entry:
    push 0
    push 257
    jmp vmi_trap_common

    .popsection
    "#,
    trap = sym rom_trap,
    page_fault = sym rom_page_fault,
    page_fault_vector = const PAGE_FAULT,
    forward_with_error_code = const FORWARD_WITH_ERROR_CODE,
    stub_size = const STUB_SIZE,
    soft_per_hub = const SOFT_STUBS_PER_HUB,
    soft_group = const SOFT_GROUP_SIZE,
    resume = const xen_vmi_rom::layout::ROM_STATE_VA + xen_vmi_rom::rom_state::RESUME_AT_OFFSET,
    held = const quick::HELD_VA,
    batch_len = const quick::BATCH_LEN_VA,
    gate = const quick::GATE_VA,
    gate_one_step = const core::mem::offset_of!(crate::desc::ForwardGate, one_step),
    gate_addr = const core::mem::offset_of!(crate::desc::ForwardGate, gate_addr),
    gate_raw = const core::mem::offset_of!(crate::desc::ForwardGate, gate_raw),
    segment_addr = const core::mem::offset_of!(crate::desc::ForwardGate, segment_addr),
    segment_raw = const core::mem::offset_of!(crate::desc::ForwardGate, segment_raw),
    cr2 = const xen_vmi_rom::layout::SHARED_INFO_VA + crate::cpu_calls::CR2_OFFSET,
    cache = const quick::CACHE_VA,
    current = const layout::CURRENT,
    path_dir = const layout::PATH_DIR,
    path_current = const layout::PATH_CURRENT,
    path_l2_hint = const layout::PATH_L2_HINT,
    path_l1_hint = const layout::PATH_L1_HINT,
    path_l2_tag = const layout::PATH_L2_TAG,
    path_l1_tag = const layout::PATH_L1_TAG,
    path_pde = const layout::PATH_PDE,
    path_pde_offset = const layout::PATH_PDE_OFFSET,
    fault_va = const layout::FAULT_VA,
    view_tags = const crate::mmu::VIEW_TAGS_VA,
    views = const xen_vmi_rom::layout::TABLE_VIEW_VA,
    last_fix = const quick::LAST_FIX_VA,
    flat_data = const quick::FLAT_DATA_VA,
    saved_segments = const quick::SAVED_SEGMENTS_VA,
    saved_frame = const quick::SAVED_FRAME_VA,
    note_segments = sym rom_note_data_segments,
);

use xen_vmi_rom::shadow_cache::quick_fault_layout as layout;

/// Where `vmi_page_fault_quick` finds the state it reads and writes: the
/// run-time state's (at ROM_STATE_VA + ROM_RUNTIME_OFFSET, mapped in every
/// address space) and the heap's (at SHADOW_HEAP_VA once `heap_ready`).
pub(crate) mod quick {
    use crate::paging::{HeldSwitch, Paging};
    use crate::runtime::Runtime;
    use core::mem::offset_of;

    const RUNTIME_VA: u32 =
        xen_vmi_rom::layout::ROM_STATE_VA + xen_vmi_rom::rom_state::ROM_RUNTIME_OFFSET;
    const PAGING_VA: u32 = RUNTIME_VA + offset_of!(Runtime, paging) as u32;
    pub const HELD_VA: u32 =
        PAGING_VA + (offset_of!(Paging, held) + offset_of!(HeldSwitch, held)) as u32;
    /// `Paging::last_fix`, three words the path zeroes.
    pub const LAST_FIX_VA: u32 = PAGING_VA + offset_of!(Paging, last_fix) as u32;
    pub const GATE_VA: u32 = RUNTIME_VA
        + (offset_of!(Runtime, tables) + offset_of!(crate::desc::TableRegs, page_fault_gate))
            as u32;
    const TABLES_VA: u32 = RUNTIME_VA + offset_of!(Runtime, tables) as u32;
    /// `TableRegs::flat_data`, also read by the tick path (events.rs).
    pub const FLAT_DATA_VA: u32 = TABLES_VA + offset_of!(crate::desc::TableRegs, flat_data) as u32;
    pub const SAVED_SEGMENTS_VA: u32 =
        TABLES_VA + offset_of!(crate::desc::TableRegs, saved_data_segments) as u32;
    pub const SAVED_FRAME_VA: u32 =
        TABLES_VA + offset_of!(crate::desc::TableRegs, saved_data_frame) as u32;
    const HEAP_VA: u32 = xen_vmi_rom::layout::SHADOW_HEAP_VA;
    pub const CACHE_VA: u32 = HEAP_VA + offset_of!(crate::mmu::Heap, cache) as u32;
    /// The paging queue's length (no heap, no queue).
    pub const BATCH_LEN_VA: u32 = HEAP_VA
        + offset_of!(crate::mmu::Heap, batch) as u32
        + mmu_batch::MmuBatch::<xen_vmi_rom::shadow_cache::Tag, { crate::mmu::BATCH }>::LEN_OFFSET
            as u32;

    const _: () = {
        assert!(core::mem::size_of::<(u32, u32, u32)>() == 12);
        assert!(core::mem::size_of::<bool>() == 1);
    };
}

// Run-time addresses of ROM symbols, computed from EIP: a symbol's address
// held anywhere (a GOT slot, a static) would be absolute and wrong once the
// kernel maps the ROM elsewhere. (AT&T syntax: LLVM's Intel parser takes no
// symbol difference in a memory operand.)
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_runtime_addresses, "ax"
    .macro runtime_address name, target
    .globl \name
\name:
    call 1f
1:  popl %eax
    leal (\target - 1b)(%eax), %eax
    ret
    .endm
    runtime_address vmi_addr_rom_base, vmi_rom_header
    runtime_address vmi_addr_trap_stubs, vmi_trap_stubs
    runtime_address vmi_addr_page_fault_quick, vmi_page_fault_quick
    // Xen's event callback: the timer tick's one-step path first (events.rs).
    runtime_address vmi_addr_event_entry, vmi_event_tick_entry
    runtime_address vmi_addr_failsafe_entry, vmi_failsafe_entry
    runtime_address vmi_addr_sysenter_entry, vmi_sysenter_entry
    runtime_address vmi_addr_sysexit_keep_flag, vmi_sysexit_keep_flag
    .popsection
    "#,
    options(att_syntax)
);

extern "C" {
    fn vmi_addr_rom_base() -> u32;
    fn vmi_addr_trap_stubs() -> u32;
    fn vmi_addr_page_fault_quick() -> u32;
    fn vmi_addr_event_entry() -> u32;
    fn vmi_addr_failsafe_entry() -> u32;
    // fast_syscall.rs: SYSENTER's callback and the emulated SYSEXIT.
    pub fn vmi_addr_sysenter_entry() -> u32;
    pub fn vmi_addr_sysexit_keep_flag() -> u32;
}

/// The address `addr` (in the mapping the ROM runs through now) has in the ROM's alias (valid in every address space),
/// whatever mapping the ROM is running through now.
pub fn alias(addr: u32) -> u32 {
    // SAFETY: the helpers only compute an address from EIP.
    let base = unsafe { vmi_addr_rom_base() };
    xen_vmi_rom::layout::ROM_CODE_VA + (addr - base)
}

/// The trap table entry for `vector`: its stub's, but #PF's goes
/// straight to the stub's target, the one-step path (one jump less per
/// page fault; the stub stays for its place in the table).
pub fn stub_alias(vector: u32) -> u32 {
    const _: () = assert!(!has_error_code(0) && has_error_code(13));
    if vector == PAGE_FAULT {
        // SAFETY: computes an address from EIP.
        return alias(unsafe { vmi_addr_page_fault_quick() });
    }
    // SAFETY: computes an address from EIP.
    alias(unsafe { vmi_addr_trap_stubs() } + stub_offset(vector))
}

pub fn event_alias() -> u32 {
    // SAFETY: computes an address from EIP.
    alias(unsafe { vmi_addr_event_entry() })
}

pub fn failsafe_alias() -> u32 {
    // SAFETY: computes an address from EIP.
    alias(unsafe { vmi_addr_failsafe_entry() })
}

/// What the stubs leave on the stack (pushad order reversed, then the
/// stub's words, then Xen's frame).
#[repr(C)]
pub struct TrapFrame {
    pub edi: u32,
    pub esi: u32,
    pub ebp: u32,
    pub esp_at_pushad: u32,
    pub ebx: u32,
    pub edx: u32,
    pub ecx: u32,
    pub eax: u32,
    /// The common path's spare word (see the assembly).
    pub spare: u32,
    pub vector: u32,
    pub error_code: u32,
    pub eip: u32,
    pub cs: u32,
    pub eflags: u32,
}

const EXCEPTION_NAMES: &[u8] =
    b"DE DB NMIBP OF BR UD NM DF CSOTS NP SS GP PF 15 MF AC MC XM VE CP ";

/// Vector of #GP.
const GENERAL_PROTECTION: u32 = 13;
/// Vector of #PF.
const PAGE_FAULT: u32 = 14;
/// What the event entry pushes as its vector.
const EVENT_UPCALL: u32 = 256;
/// What the failsafe entry pushes as its vector.
const FAILSAFE: u32 = 257;

/// What the assembly does after `rom_trap`. RESUME returns to Xen's frame
/// through the ROM's IRET (entry.rs): the kernel's flag comes from the
/// frame's IF, and an event pending is delivered after the return, with
/// the frame of the context returned to (ring 3 included), not on the
/// ROM's code.
const RESUME: u32 = 0;
const FORWARD: u32 = 1;
const FORWARD_WITH_ERROR_CODE: u32 = 2;
const RESUME_AT: u32 = 3;

/// Sends the exception to the kernel's IDT gate, as the processor would:
/// through an interrupt gate the (virtual) IF is cleared. A gate whose
/// selector is not a code segment raises #GP(selector) instead, and one
/// naming a code segment not present #NP(selector), as the processor does
/// (SDM vol. 3, "Interrupt and Exception Handling"; vol. 2, INT n).
/// The gate is read once (every forwarded exception, each page fault the
/// kernel handles, comes this way).
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn forward(frame: &mut TrapFrame) -> Option<u32> {
    let vector = frame.vector;
    let gate = crate::desc::idt_gate(vector)?;
    if let Some(fault) = crate::desc::gate_segment_fault(gate.selector) {
        return undeliverable_gate(frame, gate.selector, fault);
    }
    Some(deliver_through(frame, &gate, has_error_code(vector)))
}

/// `forward` of a #PF, inlined into the page-fault path: through the gate
/// read and checked in advance (`desc::ForwardGate`, kept by every path
/// that changes the IDT, GDT or LDT, and compared with the tables as they
/// are now), with the error code's presence a constant; a gate that is not
/// usable, or whose descriptors changed natively, reads the tables again,
/// in `forward`, which raises what the processor would.
#[inline(always)]
fn forward_page_fault(frame: &mut TrapFrame) -> Option<u32> {
    const _: () = assert!(has_error_code(PAGE_FAULT));
    let cached = &crate::runtime::runtime().tables.page_fault_gate;
    let Some(gate) = cached.current() else {
        return forward(frame);
    };
    // A trap gate leaves the interrupt flag as it was (`deliver_through`).
    if gate.trap {
        restore_events(frame);
    }
    frame.spare = gate.offset;
    frame.vector = u32::from(gate.selector);
    Some(FORWARD_WITH_ERROR_CODE)
}

/// CR0.WP.
const CR0_WP: u32 = 1 << 16;

/// Arms the #PF one-step path (`vmi_page_fault_quick`) when what it takes
/// as known holds now: paging on, the heap built, CR0.WP set (then
/// `kernels_fault`'s rights rule is the path's one), no write step, and the
/// cached #PF gate a usable interrupt gate (`ForwardGate::one_step`).
/// Every #PF the path leaves to the general one that `kernels_page_fault`
/// then answers comes here (the next one under the same directory entry
/// is the path's; a fault that is not the kernel's pays nothing). Whatever
/// undoes one of these disarms it: a new gate (`page_fault_gate_changed`),
/// a CR0 write changing PG or WP (`set_cr0`, the only way paging goes off
/// or WP clears); the heap stays, and a write step starts only at a fault
/// with CR0.WP clear (`Fault::WriteProtectOff`), so after a disarm, and
/// ends before the next #PF is looked at (`rom_trap`).
#[inline(always)]
fn arm_page_fault_path() {
    let rt = crate::runtime::runtime();
    let gate = &mut rt.tables.page_fault_gate;
    if gate.one_step {
        // Armed, all of it still holds (see above): the path declined
        // this fault for what it tests itself.
        return;
    }
    // Here paging is on, the heap built and no write step
    // (`kernels_page_fault` answered), but each is tested: this is rare.
    gate.one_step = gate.usable
        && !gate.trap
        && rt.paging.enabled
        && rt.paging.heap_ready
        && rt.cr.cr0 & CR0_WP != 0
        && !rt.paging.write_step.active;
}

/// Disarms the #PF one-step path (`arm_page_fault_path`).
pub fn disarm_page_fault_path() {
    crate::runtime::runtime().tables.page_fault_gate.one_step = false;
}

/// The usual #PF the kernel gets: its own tables do not map the page, or
/// deny the access, and nothing is queued (`ShadowCache::kernels_fault`).
/// Does what `paging::page_fault` does for such a fault (`Fault::Kernel`:
/// the "same fault fixed twice" guard reset, the error code's P bit from
/// the kernel's tables, whatever the reads queued sent) without the general
/// walk, and says so; false: `paging::page_fault` decides, from the start.
#[inline(always)]
fn kernels_page_fault(cr2: u32, frame: &mut TrapFrame) -> bool {
    /// The error code's P bit: a protection violation (SDM vol. 3,
    /// "Page-Fault Error Code").
    const PF_PRESENT: u32 = 1;
    let rt = crate::runtime::runtime();
    if !rt.paging.enabled {
        return false;
    }
    let wp = rt.cr.cr0 & CR0_WP != 0;
    let heap = crate::mmu::heap();
    if !heap.batch.is_empty() {
        return false;
    }
    let (cache, mut host) = heap.split();
    let access = xen_vmi_rom::shadow_cache::Access::from_error_code(frame.error_code);
    let Some(mapped) = cache.kernels_fault(&mut host, cr2, access, wp) else {
        return false;
    };
    crate::paging::forget_last_fix(&mut crate::runtime::runtime().paging);
    frame.error_code = (frame.error_code & !PF_PRESENT) | u32::from(mapped);
    if !host.batch.is_empty() {
        crate::mmu::barrier(host.batch, mmu_batch::Barrier::CoherentRead);
    }
    true
}

/// The kernel's gate for the frame's exception names no present code
/// segment: delivering it faults, with `fault` (#GP, or #NP for a code
/// segment not present). SDM vol. 3, "Interrupt 8--Double Fault
/// Exception" (table "Conditions for Generating a Double Fault"): that
/// fault (the gate's selector with EXT), contributory itself, during a
/// contributory exception (#DE #TS #NP #SS #GP) or a #PF is a #DF(0);
/// during #DF itself a triple fault (shutdown); otherwise it is delivered
/// on its own.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn undeliverable_gate(frame: &mut TrapFrame, selector: u16, fault: u32) -> Option<u32> {
    let line = crate::console::Line::rom(b"IDT gate ")
        .dec(frame.vector)
        .text(b" names selector ")
        .hex(u32::from(selector))
        .text(b", not a present code segment: ");
    if frame.vector == DOUBLE_FAULT {
        line.text(b"a triple fault (natively the processor shuts down)")
            .print();
        crate::xen::crash();
    }
    if matches!(frame.vector, 0 | 10..=14) {
        line.text(b"#DF to the kernel").print();
        frame.error_code = 0;
        frame.vector = DOUBLE_FAULT;
    } else {
        let name: &[u8] = if fault == xen_vmi_rom::descriptors::SEGMENT_NOT_PRESENT {
            b"#NP to the kernel"
        } else {
            b"#GP to the kernel"
        };
        line.text(name).print();
        frame.error_code = u32::from(selector & 0xFFFC) | 1;
        frame.vector = fault;
    }
    forward(frame)
}

/// Vector of #DF.
const DOUBLE_FAULT: u32 = 8;

/// An external interrupt: the upcall's frame (Xen's bounce frame, no error
/// code) becomes the interrupt frame of `vector`'s gate. Xen masked events
/// for the upcall; a trap gate leaves the kernel's IF as it was.
fn interrupt(frame: &mut TrapFrame, vector: u8) -> u32 {
    // The handler may use mappings the kernel updated in lazy mode.
    crate::paging::before_interrupt();
    if let Some(how) = forward_vector(frame, u32::from(vector), false) {
        return how;
    }
    interrupt_without_gate(frame, vector)
}

/// `interrupt` when the kernel's IDT has no usable gate for `vector`: the
/// processor's #NP or #GP with the vector's IDT error code, delivered like
/// any exception (events.rs). Rare: out of line, optimized for size.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn interrupt_without_gate(frame: &mut TrapFrame, vector: u8) -> u32 {
    let (exception, error_code) = crate::events::undeliverable(vector);
    frame.vector = exception;
    frame.error_code = error_code;
    forward(frame).unwrap_or_else(|| {
        crate::console::Line::rom(b"and the kernel's IDT has no gate for that exception either")
            .print();
        crate::xen::crash()
    })
}

fn forward_vector(frame: &mut TrapFrame, vector: u32, error_code: bool) -> Option<u32> {
    let gate = crate::desc::idt_gate(vector)?;
    Some(deliver_through(frame, &gate, error_code))
}

/// Makes the frame enter `gate` (the assembly's FORWARD paths).
fn deliver_through(frame: &mut TrapFrame, gate: &crate::desc::Gate, error_code: bool) -> u32 {
    // A trap gate leaves the interrupt flag as it was; an interrupt gate
    // clears it, and Xen already masked events for the ROM's handler.
    if gate.kind == 0xF {
        restore_events(frame);
    }
    if error_code {
        frame.spare = gate.offset;
        frame.vector = u32::from(gate.selector);
        FORWARD_WITH_ERROR_CODE
    } else {
        frame.vector = gate.offset;
        frame.error_code = u32::from(gate.selector);
        FORWARD
    }
}

/// The kernel's interrupt flag when Xen entered the ROM: Xen masks events
/// for the ROM's handlers (trap table flag bit 2) and keeps the previous
/// mask in bits 16-23 of the frame's CS slot (the compat bounce frame).
pub fn saved_mask(frame: &TrapFrame) -> u8 {
    (frame.cs >> 16) as u8
}

/// Sets the mask the kernel gets back (an emulated cli/sti/iret), and the
/// frame's IF with it (Xen's frame has IF = !mask; the RESUME path returns
/// through the ROM's IRET, which takes the flag from IF).
pub fn set_saved_mask(frame: &mut TrapFrame, masked: bool) {
    frame.cs = (frame.cs & 0xFF00_FFFF) | (u32::from(masked) << 16);
    frame.eflags = (frame.eflags & !EFLAGS_IF) | if masked { 0 } else { EFLAGS_IF };
}

/// EFLAGS.IF.
const EFLAGS_IF: u32 = 1 << 9;

/// Gives the kernel back its interrupt flag before returning to it; an
/// event that came while the ROM ran is delivered at once if it may be.
fn restore_events(frame: &TrapFrame) {
    if saved_mask(frame) == 0 {
        crate::emulate::enable_events_and_deliver();
    }
}

/// Vector of #BP (`int3`), raised by ring 1 and 3 straight through Xen.
const BREAKPOINT: u32 = 3;
/// Vector of #OF (`into`), raised by ring 1 and 3 straight through Xen.
const OVERFLOW: u32 = 4;
/// The system-call vector, raised straight through Xen.
const SYSCALL: u32 = 0x80;

/// The byte at `addr`: code the processor has just fetched.
fn code_byte(addr: u32) -> u8 {
    // SAFETY: the kernel (or its user code) executed or faulted on this
    // byte, so it is mapped; a byte read, no alignment needed.
    unsafe { (addr as *const u8).read() }
}

/// The `int n`, `int3` or `into` this trap stands for (its vector and
/// length), with the frame's EIP moved onto the instruction, or None.
///
/// - #GP whose error code names IDT entry n (bit 1 set, bit 0 clear) at an
///   `int n` (CD n, after any prefixes: `decode::int_n_at`): Xen refused
///   it (trap_table_dpl). The processor's code is `n * 8 + 2`; QEMU's TCG
///   in long mode gives `n * 16 + 2`, and Xen then takes the wrong vector
///   from it; both are recognised, from the instruction itself, so the
///   kernel sees the processor's answer.
/// - #BP, #OF or 0x80, the vectors Xen passes through (for #BP and #OF at
///   any ring, whatever the DPL in its table), entered through the ROM's
///   stub: the kernel's gate is not one Xen may deliver (`desc::direct_gate`:
///   not present, no code segment, or for #BP and #OF a DPL below 3), so the
///   processor's answer may be a #NP or #GP at the instruction, or the gate
///   entered past it, not a forward (which would have no gate, or report
///   the #GP of an external event, EXT set, past the instruction). The
///   instruction is found from Xen's EIP after it
///   (`decode::software_interrupt_before`: `int3` or `int 3`, `into` or
///   `int 4`, or an `int n` with QEMU's error code that Xen shifted onto
///   4 or 0x80).
fn software_interrupt(frame: &mut TrapFrame) -> Option<SoftwareInterrupt> {
    match frame.vector {
        GENERAL_PROTECTION => {
            if frame.error_code & 3 != 2 {
                return None;
            }
            let at = frame.eip;
            let insn = xen_vmi_rom::decode::int_n_at(|k| code_byte(at.wrapping_add(k)))?;
            let n = u32::from(insn.vector);
            let names_n = frame.error_code == n * 8 + 2 || frame.error_code == n * 16 + 2;
            names_n.then_some(insn)
        }
        v @ (BREAKPOINT | OVERFLOW | SYSCALL) => {
            let after = frame.eip;
            let insn = xen_vmi_rom::decode::software_interrupt_before(v as u8, |k| {
                code_byte(after.wrapping_sub(k))
            })?;
            frame.eip = after.wrapping_sub(u32::from(insn.len));
            Some(insn)
        }
        _ => None,
    }
}

/// Raises a software interrupt (EIP on the instruction) as the processor
/// would: through the kernel's gate past the instruction, or #GP/#NP with
/// the gate's IDT error code (n * 8 + 2) at it. The gate's DPL is checked
/// against the caller for `int3` and `into` as for `int n` (SDM vol. 2,
/// INT n/INTO/INT3; ICEBP is the one that skips it). Out of line: rare.
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn raise_software_interrupt(frame: &mut TrapFrame, insn: SoftwareInterrupt) -> Option<u32> {
    let n = u32::from(insn.vector);
    // Ring compression: the kernel's ring 0 runs in ring 1.
    let cpl = if frame.cs & 3 == 3 { 3 } else { 0 };
    match crate::desc::software_interrupt_gate(n, cpl) {
        Ok(gate) => match crate::desc::gate_segment_fault(gate.selector) {
            None => {
                frame.eip = frame.eip.wrapping_add(u32::from(insn.len));
                Some(deliver_through(frame, &gate, false))
            }
            // A gate naming no code segment, #GP(selector), or a code
            // segment not present, #NP(selector); EXT clear for a software
            // interrupt.
            Some(fault) => {
                frame.vector = fault;
                frame.error_code = u32::from(gate.selector & 0xFFFC);
                forward(frame)
            }
        },
        Err(fault) => {
            frame.vector = fault;
            frame.error_code = n * 8 + 2;
            forward(frame)
        }
    }
}

/// An entry from Xen found DS and ES (`es_ds`: DS low, ES high) not a
/// known-flat pair and replaced them: a pair of one flat GDT selector is
/// learnt, so that the next entry with it takes no detour.
#[cfg_attr(feature = "image", optimize(size))]
extern "C" fn rom_note_data_segments(es_ds: u32) {
    if es_ds >> 16 == es_ds & 0xFFFF {
        crate::desc::note_flat_data(es_ds as u16);
    }
}

/// Xen's #PF bounce (the stub of vector 14 enters here): the kernel's
/// usual page fault (`kernels_page_fault`) goes straight to its gate; a
/// fault during the WP-clear write step, and every fault the shadow must
/// look at, takes `rom_trap`'s general path.
extern "C" fn rom_page_fault(frame: &mut TrapFrame) -> u32 {
    if !crate::runtime::runtime().paging.write_step.active {
        let cr2 = crate::cpu_calls::get_cr2();
        if kernels_page_fault(cr2, frame) {
            arm_page_fault_path();
            return forward_page_fault(frame).unwrap_or_else(|| unhandled(frame));
        }
    }
    rom_trap(frame)
}

// Kept optimized for speed although no benchmark times it: a real guest's
// device interrupts, its faults off the quick path and #GP emulation all
// come through here.
extern "C" fn rom_trap(frame: &mut TrapFrame) -> u32 {
    // A write the ROM let through with CR0.WP clear (paging.rs) ends at the
    // single-step trap after it, or at whatever else interrupts it.
    if crate::paging::end_write_step(frame) {
        return RESUME;
    }
    let v = frame.vector;
    // A page fault first (the commonest trap the ROM takes): it is never
    // an `int n` (`software_interrupt` looks at #GP, #BP, #OF and 0x80
    // only).
    if v == PAGE_FAULT {
        let cr2 = crate::cpu_calls::get_cr2();
        if crate::paging::page_fault(cr2, frame) {
            return RESUME;
        }
        if let Some(how) = forward_page_fault(frame) {
            return how;
        }
        unhandled(frame);
    }
    if let Some(insn) = software_interrupt(frame) {
        if let Some(how) = raise_software_interrupt(frame, insn) {
            return how;
        }
    }
    if v == GENERAL_PROTECTION {
        match crate::emulate::general_protection(frame) {
            // RESUME gives the kernel its flag back (the assembly).
            crate::emulate::Outcome::Resume => return RESUME,
            // The kernel's flag comes back in the assembly, after the
            // resume slot has been read (see RESUME_AT there).
            crate::emulate::Outcome::ResumeAt => return RESUME_AT,
            crate::emulate::Outcome::NotMine => {}
        }
    }
    if v < 256 {
        if let Some(how) = forward(frame) {
            return how;
        }
    }
    if v == EVENT_UPCALL {
        // An event inside the ROM's IRET: Xen finishes it and delivers.
        if crate::events::iret_window(frame) {
            return RESUME;
        }
        // Xen only upcalls with events unmasked: the kernel's IF was set.
        return match crate::events::upcall() {
            Some(vector) => interrupt(frame, vector),
            None => RESUME,
        };
    }
    if v == FAILSAFE {
        failsafe(frame);
    }
    unhandled(frame)
}

/// Xen's failsafe callback: a console line naming the segment register
/// Xen could not reload, and the domain crashed. Cold text, out of line.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn failsafe(frame: &TrapFrame) -> ! {
    // Xen's failsafe frame starts with the four data segment registers
    // it could not reload (DS, ES, FS, GS), then EIP and CS.
    let words = (&raw const frame.eip).cast::<u32>();
    // SAFETY: the failsafe frame is on this stack above the stub's words.
    let (ds, eip, cs) = unsafe { (words.read(), words.add(4).read(), words.add(5).read()) };
    Line::rom(
        b"Xen's failsafe callback: a segment register could not be reloaded on return to eip ",
    )
    .hex(eip)
    .text(b" cs ")
    .hex(cs & 0xFFFF)
    .text(b" (ds was ")
    .hex(ds & 0xFFFF)
    .text(b")")
    .print();
    crash();
}

/// An exception nobody handles (no gate in the kernel's IDT): a console
/// line naming it, and the domain crashed.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn unhandled(frame: &TrapFrame) -> ! {
    let v = frame.vector;
    let line = Line::rom(b"");
    let line = if v < 22 {
        let i = (v * 3) as usize;
        line.text(b"unhandled #")
            .text(EXCEPTION_NAMES[i..i + 3].trim_ascii_end())
    } else {
        line.text(b"unhandled exception ").dec(v)
    };
    let mut line = line.text(b" at eip ").hex(frame.eip);
    // The bytes at EIP, for an instruction the ROM does not emulate; not
    // for a fault on fetching them (#PF at EIP itself).
    let fetch_fault = v == PAGE_FAULT && crate::cpu_calls::get_cr2() & !0xFFF == frame.eip & !0xFFF;
    if !fetch_fault {
        let mut bytes = [0u8; 8];
        let n = (4096 - (frame.eip & 0xFFF)).min(8) as usize;
        // SAFETY: the kernel was executing at EIP and its page did not
        // fault, so it is mapped.
        unsafe { core::ptr::copy_nonoverlapping(frame.eip as *const u8, bytes.as_mut_ptr(), n) };
        line = line.text(b" (bytes");
        for b in &bytes[..n] {
            line = line.text(b" ").hex2(*b);
        }
        line = line.text(b")");
    }
    line.text(b" cs ")
        .hex(frame.cs & 0xFFFF)
        .text(b" error code ")
        .hex(frame.error_code)
        .print();
    crash();
}
