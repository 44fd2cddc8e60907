//! The VMI call entry points and the table GetRelocationInfo answers from.
//!
//! The kernel calls ROM code directly with regparm(3) (vmi.h): arguments in
//! EAX, EDX, ECX; EAX, ECX, EDX and flags may be clobbered. The interrupt
//! flag calls and CPUID are stricter (flags only; CPUID's own outputs) and
//! IRET is jumped to with the return frame on the stack: those are written
//! in assembly here. The rest are `extern "C"` functions (cpu_calls.rs)
//! behind a three-push thunk.
//!
//! The table holds, per call number, the entry's offset from the table and
//! the relocation type in the top byte: no absolute address anywhere, so
//! the answers are right through whatever mapping the kernel uses.

use vmi_abi::{VmiCall, VmiRelocationInfo, VmiRelocationType};
use xen_vmi_rom::layout::{HYPERCALL_PAGE_VA, SHARED_INFO_VA};

use crate::cpu_calls;

/// A regparm(3) entry `$entry` for the `extern "C"` function `$handler`.
macro_rules! regparm_entry {
    ($entry:literal => $handler:path) => {
        core::arch::global_asm!(
            ".pushsection .text.vmi_calls, \"ax\"",
            concat!(".globl ", $entry),
            concat!($entry, ":"),
            "push ecx",
            "push edx",
            "push eax",
            "call {handler}",
            "add esp, 12",
            "ret",
            ".popsection",
            handler = sym $handler,
        );
    };
}

/// The way into a stub that runs with events masked: the caller's flag
/// (vcpu_info's evtchn_upcall_mask, xen.h) saved in EBX, pushed first,
/// and the mask set. `masked_way_out!` undoes it.
macro_rules! masked_way_in {
    () => {
        concat!(
            "push ebx\n",
            "movzx ebx, byte ptr [{mask}]\n",
            "mov byte ptr [{mask}], 1",
        )
    };
}

/// The way out of a stub that masked events on entry (the caller's flag
/// saved in EBX, pushed there): the flag restored, and an event that came
/// while masked delivered now if the caller had events on, as
/// EnableInterrupts does (vcpu_info's evtchn_upcall_mask and
/// evtchn_upcall_pending, xen.h). One template piece for `global_asm!`,
/// whose `{mask}` and `{pending}` operands the user names.
macro_rules! masked_way_out {
    () => {
        concat!(
            "mov byte ptr [{mask}], bl\n",
            "test bl, bl\n",
            "jnz 1f\n",
            "cmp byte ptr [{pending}], 0\n",
            "je 1f\n",
            "call vmi_force_upcall\n",
            "1:\n",
            "pop ebx\n",
            "ret",
        )
    };
}

/// The masked call around `$handler`, for [`masked_entry`]: the kernel's
/// flag is kept in EBX (callee-saved), events masked for the `$call`
/// lines (which call `{handler}`), the flag restored afterwards and a
/// pending event delivered then, as EnableInterrupts does.
macro_rules! masked_around {
    ($entry:literal => $handler:path; $($call:expr),+ $(,)?) => {
        core::arch::global_asm!(
            ".pushsection .text.vmi_calls, \"ax\"",
            concat!(".globl ", $entry),
            concat!($entry, ":"),
            masked_way_in!(),
            $($call,)+
            masked_way_out!(),
            ".popsection",
            handler = sym $handler,
            mask = const SHARED_INFO_VA + 1,
            pending = const SHARED_INFO_VA,
        );
    };
}

/// A regparm(3) entry that runs `$handler` with events masked: the calls
/// that change state an event could meet half-done (the shadow tables, the
/// descriptor tables, the alarm and the interrupt controllers).
macro_rules! masked_entry {
    ($entry:literal => $handler:path, $stack_args:literal) => {
        masked_around!($entry => $handler;
            // The caller's stack arguments, past EBX and the return address.
            concat!(".rept ", $stack_args),
            concat!("push dword ptr [esp + 4 * ", $stack_args, " + 4]"),
            ".endr",
            "push ecx",
            "push edx",
            "push eax",
            "call {handler}",
            concat!("add esp, 12 + 4 * ", $stack_args),
        );
    };
}

/// [`masked_entry`] for an `extern "fastcall"` handler of one or two
/// arguments (ECX, EDX): the kernel's EAX goes to ECX, its EDX stays,
/// and nothing is copied to the stack. For the calls of a context switch
/// (SetCR3, SetLazyMode, UpdateKernelStack), where the copies were a tenth
/// of the ROM's work.
///
/// A kernel makes them with interrupts off (Linux's scheduler switches
/// under its runqueue lock, with interrupts disabled): then the handler is
/// jumped to, since masking, restoring the flag and looking for a pending
/// event would all leave things as they are (the handlers give the mask
/// back as they found it: `events::masked`). With the flag set, the
/// kernel's flag is known to be clear, so nothing is kept in a register.
macro_rules! masked_fastcall_entry {
    ($entry:literal => $handler:path) => {
        core::arch::global_asm!(
            ".pushsection .text.vmi_calls, \"ax\"",
            concat!(".globl ", $entry),
            concat!($entry, ":"),
            "mov ecx, eax",
            "cmp byte ptr [{mask}], 0",
            "jne {handler}",
            "mov byte ptr [{mask}], 1",
            "call {handler}",
            "mov byte ptr [{mask}], 0",
            "cmp byte ptr [{pending}], 0",
            "jne vmi_force_upcall",
            "ret",
            ".popsection",
            handler = sym $handler,
            mask = const SHARED_INFO_VA + 1,
            pending = const SHARED_INFO_VA,
        );
    };
}

/// [`masked_entry`] for the timer's calls (SetAlarm, APICWrite), which a
/// kernel makes from its interrupt handler or with interrupts off: with
/// the kernel's flag already masked the handler is called with the
/// kernel's arguments and nothing else (as [`masked_fastcall_entry`]
/// does); otherwise events are masked around it and the flag given back
/// clear, a pending event delivered then.
macro_rules! masked_timer_entry {
    ($entry:literal => $handler:path, $stack_args:literal) => {
        core::arch::global_asm!(
            ".pushsection .text.vmi_calls, \"ax\"",
            concat!(".globl ", $entry),
            concat!($entry, ":"),
            "cmp byte ptr [{mask}], 0",
            "jne 2f",
            "mov byte ptr [{mask}], 1",
            "call 3f",
            "mov byte ptr [{mask}], 0",
            "cmp byte ptr [{pending}], 0",
            "jne vmi_force_upcall",
            "ret",
            // Masked: the caller's stack arguments are past the return
            // address.
            "2:",
            concat!(".rept ", $stack_args),
            concat!("push dword ptr [esp + 4 * ", $stack_args, "]"),
            ".endr",
            "push ecx",
            "push edx",
            "push eax",
            "call {handler}",
            concat!("add esp, 12 + 4 * ", $stack_args),
            "ret",
            // Unmasked: past this path's return address too.
            "3:",
            concat!(".rept ", $stack_args),
            concat!("push dword ptr [esp + 4 * ", $stack_args, " + 4]"),
            ".endr",
            "push ecx",
            "push edx",
            "push eax",
            "call {handler}",
            concat!("add esp, 12 + 4 * ", $stack_args),
            "ret",
            ".popsection",
            handler = sym $handler,
            mask = const SHARED_INFO_VA + 1,
            pending = const SHARED_INFO_VA,
        );
    };
}

/// Where the kernel's lazy mode is kept (`CallState::lazy`, a `LazyMode`:
/// `repr(u32)`, `VMI_LAZY_NONE` 0), for the stubs below.
const LAZY_MODE_VA: u32 = xen_vmi_rom::layout::ROM_STATE_VA
    + xen_vmi_rom::rom_state::ROM_RUNTIME_OFFSET
    + core::mem::offset_of!(crate::runtime::Runtime, paging) as u32
    + core::mem::offset_of!(crate::paging::Paging, calls) as u32
    + core::mem::offset_of!(xen_vmi_rom::mmu_calls::CallState, lazy) as u32;
/// Whether the heap is built (`Paging::heap_ready`, a bool).
const HEAP_READY_VA: u32 = xen_vmi_rom::layout::ROM_STATE_VA
    + xen_vmi_rom::rom_state::ROM_RUNTIME_OFFSET
    + core::mem::offset_of!(crate::runtime::Runtime, paging) as u32
    + core::mem::offset_of!(crate::paging::Paging, heap_ready) as u32;
const _: () = assert!(
    core::mem::size_of::<vmi_abi::flags::LazyMode>() == 4
        && vmi_abi::flags::LazyMode::None as u32 == 0
        && vmi_abi::flags::LazyMode::Mmu as u32 == 1
        && vmi_abi::flags::LazyMode::Cpu as u32 == 2
);

// SetAlarm(flags, expiry: u64 in EDX:ECX, period: u64 on the stack): five
// words for the handler.
masked_timer_entry!("vmi_entry_set_alarm" => crate::time::set_alarm, "2");
masked_entry!("vmi_entry_cancel_alarm" => crate::time::cancel_alarm, "0");
regparm_entry!("vmi_entry_get_cycle_frequency" => crate::time::get_cycle_frequency);
// GetCycleCounter: with the IRET entry below (its place there is part of
// the tick's one-step path).
masked_entry!("vmi_entry_write_gdt_entry" => cpu_calls::write_gdt_entry, "1");
masked_entry!("vmi_entry_write_ldt_entry" => cpu_calls::write_ldt_entry, "1");
masked_entry!("vmi_entry_write_idt_entry" => cpu_calls::write_idt_entry, "1");
regparm_entry!("vmi_entry_get_cr0" => cpu_calls::get_cr0);
masked_entry!("vmi_entry_set_cr0" => cpu_calls::set_cr0, "0");
// GetCR2: every page fault's handler asks, so it is one load of Xen's
// copy (vcpu_info.arch.cr2, cpu_calls::get_cr2) instead of a call.
core::arch::global_asm!(
    ".pushsection .text.vmi_calls, \"ax\"",
    ".globl vmi_entry_get_cr2",
    "vmi_entry_get_cr2:",
    "mov eax, dword ptr [{cr2}]",
    "ret",
    ".popsection",
    cr2 = const SHARED_INFO_VA + crate::cpu_calls::CR2_OFFSET,
);
regparm_entry!("vmi_entry_set_cr2" => cpu_calls::set_cr2);
regparm_entry!("vmi_entry_get_cr4" => cpu_calls::get_cr4);
regparm_entry!("vmi_entry_set_cr4" => cpu_calls::set_cr4);
// Paging (paging.rs): everything that changes the shadows runs with
// events masked. SetPxELong(pte in EDX:EAX, ptep in ECX, flags on the
// stack); AllocatePage(pfn, flags, clone pfn, start and count on the
// stack); SetLinearMapping(slot, va, pages, pfn on the stack).
masked_fastcall_entry!("vmi_entry_set_cr3" => crate::paging::vmi_set_cr3);
regparm_entry!("vmi_entry_get_cr3" => crate::paging::get_cr3);
masked_entry!("vmi_entry_flush_tlb" => crate::paging::vmi_flush_tlb, "0");
masked_entry!("vmi_entry_inval_page" => crate::paging::vmi_inval_page, "0");
masked_entry!("vmi_entry_set_pxe" => crate::paging::set_pxe, "0");
masked_entry!("vmi_entry_update_pxe" => crate::paging::update_pxe, "0");
// SetPxELong(pte in EDX:EAX, ptep in ECX, flags on the stack) and
// UpdatePxELong(ptep in EAX, flags in EDX). The flags (a hint of which
// address space the entry is in) are not needed: the shadows know which
// tables the loaded space reaches. Both stubs are the masked entry of
// `masked_after_fault_entry` (the one-step path after a page fault tried
// first outside lazy mode; UpdatePxELong's usual case of it in assembly,
// below) with, in lazy MMU mode, the usual update in assembly first
// (`lazy_entry_update`). SetPxELong's general handler takes the value's
// halves in ECX and EDX and the address on the stack; its one-step path
// the address in ECX, EDX pointing at the value's halves (low, high)
// pushed below it, with the address kept on top.
core::arch::global_asm!(
    ".pushsection .text.vmi_calls, \"ax\"",
    // `mmu_calls::quick_entry_update` (tests/fuzz_calls.rs holds it to the
    // general call), for SetPxELong (`set` 1: EDX:EAX the new entry, ECX
    // its address) or UpdatePxELong (0: EAX the address), in lazy MMU
    // mode (tested by the stub), EBX the caller's event mask as the stub
    // saved it. Every test is made before the first change; a decline
    // leaves the registers as the stub had them and goes to the general
    // handler (`6f`), the update done to the stub's way out (`7f`).
    ".macro lazy_entry_update set",
    ".if \\set == 0",
    "mov ecx, eax",
    ".endif",
    // In lazy MMU mode the kernel has activated and the heap is built
    // (SetLazyMode enters the mode only then, and both stay so): the
    // cache may be read. First the last-hit record cache's records: a
    // page table's alone (`quick_page_table`: no L2 or top record, two
    // u16 in a row; a fork's writes of a new table with a known frame,
    // after its directory's, decline here).
    "cmp dword ptr [{cache} + {last_l2}], 0",
    "jne 6f",
    "push esi",
    // The entry's kernel frame (`linear_entry_frame`): the page memo's
    // (`CallState::lazy_linear`, its page's address | 0xFF8, so that the
    // one compare also finds the address 8-aligned: with bits 0-2 set it
    // differs), else the general call (which keeps the page it finds
    // there in the memo).
    "mov esi, ecx",
    "or esi, 0xFF8",
    "cmp esi, [{memo_page}]",
    "jne 58f",
    "mov esi, [{memo_kfn}]",
    // The last-hit record cache holds that frame's records.
    "cmp [{cache} + {last_kfn}], esi",
    "jne 58f",
    "cmp byte ptr [{cache} + {last_valid}], 0",
    "je 58f",
    // `activate` and `heap` with nothing more to do (no switch is held in
    // lazy MMU mode: one is held only in lazy CPU mode, and entering MMU
    // mode from there goes through `heap`, which queues it; the queue is
    // lazy in a lazy mode, `queue_is_lazy`), the address aligned (the
    // memo's compare; paging is on: the memo holds a page only then,
    // `CallState::paging_off`); then what
    // `activate` does at every call: `last_fix` forgotten (the general
    // handler would do it again).
    // The queue a plain run (`mirrored`) with room: early, as a batch
    // with other ops queued (a new table's) declines every write.
    "cmp byte ptr [{batch} + {mirrored}], 0",
    "je 58f",
    "cmp dword ptr [{batch} + {len}], {capacity}",
    "jae 58f",
    // (`or` with all ones: the store of -1 in fewer bytes.)
    "or dword ptr [{last_fix} + 8], -1",
    "push ebx",
    "push edi",
    ".if \\set",
    "push ebp",
    ".endif",
    // The L1 record's link (record + 1, 0: none; the shift sets ZF for
    // 0) and its table's machine frame.
    "movzx edi, word ptr [{cache} + {last_l1}]",
    "shl edi, {table_shift}",
    "jz 59f",
    "mov edi, [{cache} + {table_mfn} + edi - (1 << {table_shift})]",
    // The kernel's view of the frame: the memo's (`kernel_view`'s first
    // compare; else the general call looks it up). ECX the entry's offset
    // in it (from here a decline rebuilds the address from EDI), EDI:EBX
    // the shadow entry's machine address (`entry_maddr`). SetPxELong
    // keeps the entry's address in the view in EBP for its store;
    // UpdatePxELong reads the entry as the kernel wrote it (`read_entry`)
    // through EBX first.
    "cmp [{view_kfn}], esi",
    "jne 59f",
    ".if \\set",
    "mov ebp, [{view_va}]",
    "test ebp, ebp",
    "jz 59f",
    "and ecx, 0xFF8",
    "add ebp, ecx",
    ".else",
    "mov ebx, [{view_va}]",
    "test ebx, ebx",
    "jz 59f",
    "and ecx, 0xFF8",
    "mov eax, [ebx + ecx]",
    "mov edx, [ebx + ecx + 4]",
    ".endif",
    "mov ebx, edi",
    "shr ebx, 20",
    "shl edi, 12",
    "or edi, ecx",
    // The queue appends the write (`MmuBatch::appends_write`): room and
    // a mirrored queue (above), the last request (if any) of another
    // entry. An empty queue's "last request" is the 16 bytes before the
    // array, inside the queue: if they happen to name the entry, a
    // decline.
    "mov esi, [{batch} + {len}]",
    "shl esi, 4",
    "mov ecx, [{batch} + {reqs} + esi - 16]",
    "and ecx, -4",
    "cmp ecx, edi",
    "jne 55f",
    "cmp [{batch} + {reqs} + esi - 12], ebx",
    "je 57f",
    "55:",
    // The request's address in `reqs[len]` now (nothing reads a request
    // at or past `len`, so a decline below leaves nothing changed); ESI
    // keeps `len` * 16 for its value, EBX and ECX are free.
    "mov [{batch} + {reqs} + esi], edi",
    "mov [{batch} + {reqs} + esi + 4], ebx",
    // A not-present entry: no eager bits (`eager_bits`), the shadow value
    // 0 (`l1_value_quick`). Else no eager bits: a user entry, or a
    // supervisor one accessed and, if writable, dirty.
    "test al, {p}",
    "jz 61f",
    "test al, {u}",
    "jnz 56f",
    "mov ebx, eax",
    "and ebx, {a_rw_d}",
    "cmp ebx, {a_rw}",
    "je 57f",
    "test bl, {a}",
    "jz 57f",
    "56:",
    // The shadow value of a present entry (`l1_value_quick`): bits 44-62
    // clear (else the general rule); the frame, (low >> 12) | (high <<
    // 20), `k2m` of it (below `kernel_frame_limit`, its word not all
    // ones), not in the PC's reserved area (the general rule's writable
    // test; the ROM's frames are left to the general call).
    "test edx, 0x7FFFF000",
    "jnz 57f",
    "mov ebx, eax",
    "shrd ebx, edx, 12",
    "cmp ebx, [{frame_limit}]",
    "jae 57f",
    "lea ecx, [ebx - {ro_first}]",
    "cmp ecx, {ro_count}",
    "jb 57f",
    "mov ebx, [{k2m} + ebx * 4]",
    "cmp ebx, -1",
    "je 57f",
    // Done from here. SetPxELong's store, the high half first for a
    // present entry (`RomHost::write`).
    ".if \\set",
    "mov [ebp + 4], edx",
    "mov [ebp], eax",
    ".endif",
    // Not accessed: 0. Else the high half machine >> 20 | NX, stored,
    // then the low half machine << 12 | the flags `low & kept & (!RW |
    // (low >> 5) & RW)` into EBX.
    "test al, {a}",
    "jz 62f",
    // The high half: NX (bit 31 of EDX) moved down 12 and the machine
    // frame's top 12 bits shifted in under it (`shld`).
    "mov ecx, edx",
    "and ecx, 0x80000000",
    "shr ecx, 12",
    "shld ecx, ebx, 12",
    "mov [{batch} + {reqs} + esi + 12], ecx",
    "mov ecx, eax",
    "shr ecx, 5",
    "or ecx, {not_rw}",
    "and ecx, {kept}",
    "and ecx, eax",
    "shl ebx, 12",
    "or ebx, ecx",
    "jmp 63f",
    "61:",
    ".if \\set",
    "mov [ebp], eax",
    "mov [ebp + 4], edx",
    ".endif",
    "62:",
    "xor ebx, ebx",
    "mov [{batch} + {reqs} + esi + 12], ebx",
    "63:",
    // `push_pte_write` appending (`MmuBatch::WRITE_SLOT`): the request
    // (its address, EDI with command 0: MMU_NORMAL_PT_UPDATE, and the
    // value's high half stored above; EBX the low half) at `reqs[len]`
    // and its tag (`What::L1Entry`, the frame, the index, the kernel's
    // entry) in `slots[len]`, the slot's only words a mirrored queue
    // keeps (its op and state are implied until the run ends); the push
    // counted, `len` one more. Nothing at the call's end: the queue is
    // lazy.
    "mov [{batch} + {reqs} + esi + 8], ebx",
    "imul esi, dword ptr [{batch} + {len}], {slot_bytes}",
    "mov [{batch} + {slots} + esi + {tag_at} + {tag_guest}], eax",
    "mov [{batch} + {slots} + esi + {tag_at} + {tag_guest} + 4], edx",
    // The index, zero-extended: with `what` (`L1Entry`, 0) and the tag's
    // padding byte above it, one store (`TAG_INDEX_WHAT`).
    "and edi, 0xFFF",
    "shr edi, 3",
    "mov [{batch} + {slots} + esi + {tag_at} + {tag_index_what}], edi",
    "mov ecx, [{cache} + {last_kfn}]",
    "mov [{batch} + {slots} + esi + {tag_at} + {tag_kfn}], ecx",
    "add dword ptr [{batch} + {pushes}], 1",
    "adc dword ptr [{batch} + {pushes} + 4], 0",
    "inc dword ptr [{batch} + {len}]",
    ".if \\set",
    "pop ebp",
    ".endif",
    "pop edi",
    "pop ebx",
    "pop esi",
    // The stub's way out (`7f`), here; a caller with events masked (EBX
    // 1) finds the mask as it left it (set at the stub's entry).
    "test bl, bl",
    "jnz 1f",
    "mov byte ptr [{mask}], bl",
    "cmp byte ptr [{pending}], 0",
    "je 1f",
    "call vmi_force_upcall",
    "1:",
    "pop ebx",
    "ret",
    "57:",
    // A decline once ECX no longer holds the entry's address: that
    // address again, the memo's page (`| 0xFF8`, cancelled) with the
    // entry's offset (EDI's bits 0-11; `ptep` is 8-aligned).
    "mov ecx, edi",
    "and ecx, 0xFFF",
    "xor ecx, 0xFF8",
    "xor ecx, [{memo_page}]",
    "59:",
    ".if \\set",
    "pop ebp",
    ".endif",
    "pop edi",
    "pop ebx",
    "58:",
    "pop esi",
    ".if \\set == 0",
    "mov eax, ecx",
    ".endif",
    "jmp 6f",
    ".endm",
    ".globl vmi_entry_set_pxe_long",
    "vmi_entry_set_pxe_long:",
    masked_way_in!(),
    // Lazy mode: none (0) below MMU (1), CPU (2) above.
    "cmp dword ptr [{lazy}], {lazy_mmu}",
    "jb 5f",
    "ja 6f",
    "lazy_entry_update 1",
    "6:",
    "push ecx",
    "mov ecx, eax",
    "call {set_handler}",
    "7:",
    masked_way_out!(),
    "5:",
    // Outside lazy mode: SetPxELong's one-step path after a fault in
    // assembly, UpdatePxELong's (below) with the store before the
    // write: the same state tested (see there; nothing is changed before
    // the last test, and the view is not touched before the queue is
    // seen idle), with ECX the entry's address, EDX:EAX the new entry
    // and ESI the only register free (saved).
    "cmp word ptr [{activated}], 0x0101",
    "jne 6b",
    "cmp dword ptr [{cache} + {fault_va}], 0",
    "je 6b",
    "push esi",
    "mov esi, [{cache} + {fault_va} + 4]",
    "shr esi, 9",
    "and esi, 0xFF8",
    "xor esi, ecx",
    "xor esi, [{fault_linear_page}]",
    "cmp esi, 0xFFF",
    "jne 3f",
    "mov esi, [{cache} + {fault_va} + 4]",
    "shr esi, 21",
    "cmp esi, [{cache} + {path_dir}]",
    "jne 3f",
    "mov si, [{cache} + {path_current}]",
    "cmp si, [{cache} + {current}]",
    "jne 3f",
    // The view slot's tag the frame + 1 (`l1_hint`, as below): its tag
    // less 1 compared with the memo's frame, and then with the path's
    // `update_kfn` (the slot is read again for the store: one register).
    // The hint is always a slot's number (`Views`), so the tag is read
    // before the frames are compared.
    "movzx esi, word ptr [{cache} + {path_l1_hint}]",
    "mov esi, [{view_tags} + esi * 4]",
    "dec esi",
    "cmp esi, [{fault_linear_frame}]",
    "jne 3f",
    "cmp esi, [{cache} + {path_update_kfn}]",
    "jne 3f",
    // No switch held, the queue idle (short jumps: last).
    "cmp byte ptr [{held}], 0",
    "jne 3f",
    "cmp dword ptr [{batch_len}], 0",
    "jne 3f",
    "cmp byte ptr [{batch_mirrored}], 0",
    "je 3f",
    "cmp byte ptr [{batch_lazy}], 0",
    "jne 3f",
    "movzx esi, word ptr [{cache} + {path_l1_hint}]",
    "shl esi, 12",
    // The store (`RomHost::write`), the high half first (the entry the
    // write takes is present; one that is not is stored again, low half
    // first, by the Rust path the write declines to). Then the shared
    // write with ECX the entry's offset and EAX 1, odd: SetPxELong's
    // (UpdatePxELong's EAX, the entry's address, is 8-aligned there), so
    // that a decline comes back here (`.Lset_pxe_long_declined`).
    "and ecx, 0xFFF",
    "mov [{views} + ecx + esi + 4], edx",
    "mov [{views} + ecx + esi], eax",
    "mov eax, 1",
    "test bl, bl",
    "jnz .Lfault_update_write_masked",
    "jmp .Lfault_update_write_unmasked",
    "3:",
    "pop esi",
    "4:",
    // The one-step path in Rust, then the general call.
    "push ecx",
    "push edx",
    "push eax",
    "mov edx, esp",
    "call {set_fast}",
    "test al, al",
    "jz 8f",
    "add esp, 12",
    "jmp 7b",
    "8:",
    "pop eax",
    "pop edx",
    "pop ecx",
    "jmp 6b",
    // The shared write declined after the store (the entry is one it
    // leaves to the Rust path, EBX the flag as the stub saved it): the
    // entry's address again (the memo's page with the fault's entry's
    // offset, which it was compared with) and the new entry read back
    // through the view slot, then the Rust path as before the store.
    ".Lset_pxe_long_declined:",
    "mov ecx, [{cache} + {fault_va} + 4]",
    "shr ecx, 9",
    "and ecx, 0xFF8",
    "movzx eax, word ptr [{cache} + {path_l1_hint}]",
    "shl eax, 12",
    "add eax, ecx",
    "mov edx, [{views} + eax + 4]",
    "mov eax, [{views} + eax]",
    "xor ecx, 0xFFF",
    "xor ecx, [{fault_linear_page}]",
    "jmp 4b",
    ".globl vmi_entry_update_pxe_long",
    "vmi_entry_update_pxe_long:",
    masked_way_in!(),
    // Lazy mode: none (0) below MMU (1), CPU (2) above.
    "cmp dword ptr [{lazy}], {lazy_mmu}",
    "jb 5f",
    "ja 6f",
    "lazy_entry_update 0",
    "6:",
    "mov ecx, eax",
    "call {handler}",
    "7:",
    masked_way_out!(),
    // The write and the way out of UpdatePxELong's path in assembly
    // (below; SetPxELong's joins it after its store), for a caller with events masked (`masked` 1: the flag
    // saved in EBX was 1, so the mask stays as it is, and EBX is free) or
    // not (0: the mask cleared after the write, and an event pending
    // delivered, as the stub's way out does). ESI (saved) holds the view
    // slot's page offset, ECX the entry's offset in it.
    ".macro quick_update_write masked",
    // ESI the entry's low half, EBX its high.
    "mov ebx, [{views} + ecx + esi + 4]",
    "mov esi, [{views} + ecx + esi]",
    // `shadow_entry::l1_value_settled(entry)`: present and accessed; not
    // a supervisor writable entry that is not dirty; bits 44-62 clear.
    // Of P, RW, U/S, A and D (`settled_bits`) with P, RW and A flipped
    // (`settled_flip`): not all clear (RW alone), P and A clear (the
    // `xor` sets ZF for the first test). The tests of shadow_entry.rs
    // hold this write, step for step (`quick_write_steps`), to
    // `l1_value_settled`.
    "mov ecx, esi",
    "and ecx, {settled_bits}",
    "xor ecx, {settled_flip}",
    "jz 3f",
    "test ecx, {present_accessed}",
    "jnz 3f",
    "test ebx, 0x7FFFF000",
    "jnz 3f",
    // The frame, (low >> 12) | (high << 20), and `k2m` of it (mmu.rs):
    // below `kernel_frame_limit`, its word in the table not all ones. A
    // frame in the PC's reserved area (`read_only`: the ROM's, mapped
    // without RW) is the Rust path's: below 1 MiB a frame is tested
    // again (low RAM is the path's).
    "mov ecx, esi",
    "shrd ecx, ebx, 12",
    "cmp ecx, [{frame_limit}]",
    "jae 3f",
    "cmp ecx, {high_first}",
    "jb 2f",
    "1:",
    "mov ecx, [{k2m} + ecx * 4]",
    "cmp ecx, -1",
    "je 3f",
    // RW kept only from D (`writable`, `(low >> 5) & RW`): the flags
    // `low & kept & (!RW | writable)`, RW cleared when D is clear.
    "test esi, {d}",
    "jnz 11f",
    "and esi, {not_rw}",
    "11:",
    "and esi, {kept}",
    // The value: the low half machine << 12 | the flags, the high
    // machine >> 20 | NX (the machine frame is 32 bits: `FRAME` keeps it).
    "mov edx, ecx",
    "shl ecx, 12",
    "or ecx, esi",
    "shr edx, 20",
    "and ebx, 0x80000000",
    "or edx, ebx",
    // The write (`fault_entry_write_settled`, `write_mapped_idle`): the
    // mapped-write count and the hypercall count,
    // `update_va_mapping(va, val, 0)` (xen.h: EBX va, ECX and EDX the new
    // entry's low and high halves, ESI the flags, 0: no flush; through
    // the hypercall page, 32 bytes per call), then the fault's address
    // taken (a refusal's report reads it) and `last_fix` forgotten
    // (`paging::forget_last_fix`).
    "mov ebx, [{cache} + {fault_va} + 4]",
    "add dword ptr [{mapped_writes}], 1",
    "adc dword ptr [{mapped_writes} + 4], 0",
    "inc dword ptr [{hypercall_count}]",
    "xor esi, esi",
    "mov eax, {update_va_mapping_stub}",
    "call eax",
    "test eax, eax",
    "js 9f",
    "mov dword ptr [{cache} + {fault_va}], 0",
    "mov dword ptr [{last_fix} + 8], -1",
    "pop esi",
    ".if \\masked",
    "pop ebx",
    "ret",
    ".else",
    "xor ebx, ebx",
    "jmp 7b",
    ".endif",
    "2:",
    "cmp ecx, {rom_first}",
    "jb 1b",
    "3:",
    // Declined: the Rust path, with EBX the flag as the stub saved it
    // (SetPxELong's, EAX odd, after its store).
    "pop esi",
    "mov ebx, \\masked",
    "test al, 1",
    "jnz .Lset_pxe_long_declined",
    "jmp 4f",
    "9:",
    "mov ecx, eax",
    "call {refused}",
    ".endm",
    "5:",
    // `paging::fault_entry_update`'s and `mmu_calls::fault_entry_update`'s
    // state: the kernel activated and the heap built (`Paging`'s
    // `activated` and `heap_ready`, two bytes in a row, asserted below,
    // each 1; lazy mode is off, seen above); else the general call (the
    // Rust one-step path declines a kernel not activated at once,
    // `paging::fault_entry_update`, and needs the heap). Paging is on: a quick fault's address is kept only then
    // (`paging::set_paging` takes it when paging goes off; the path's
    // root is then no longer the loaded one either: `leave_root`). The
    // address of a quick fault kept (else nothing for the one-step path:
    // the general call); no switch held; `host.mapped_write_ready()`
    // (`MmuBatch::is_idle`: nothing queued, mirrored, not lazy; so every
    // view slot is mapped, none pending), tested before anything is read.
    "cmp word ptr [{activated}], 0x0101",
    "jne 6b",
    "cmp dword ptr [{cache} + {fault_va}], 0",
    "je 6b",
    // (EDX, the flags, is free: one test of the held flag, the queue's
    // length and its lazy flag, each zero, with the mirrored flag, a
    // bool, flipped.)
    "movzx edx, byte ptr [{batch_mirrored}]",
    "xor dl, 1",
    "or dl, [{held}]",
    "or dl, [{batch_lazy}]",
    "or edx, [{batch_len}]",
    "jnz 4f",
    // `ShadowCache::quick_fault_entry` (the host tests hold it to
    // `fault_entry`). The entry's address in the page of the page memo
    // (`CallState::fault_linear`: `ptep | 0xFFF` and its frame) and at
    // the fault's entry's offset, `(va >> 9) & 0xFF8` (so 8-aligned):
    // `ptep ^ (page | 0xFFF) ^ offset` is 0xFFF. ECX keeps the offset.
    "mov ecx, [{cache} + {fault_va} + 4]",
    "shr ecx, 9",
    "and ecx, 0xFF8",
    "mov edx, eax",
    "xor edx, [{fault_linear_page}]",
    "xor edx, ecx",
    "cmp edx, 0xFFF",
    "jne 4f",
    // The memo's frame the remembered path's `update_kfn` (its L1 with no
    // other record, no known frame, not read-only:
    // `host.read_only_frame(kfn)` is settled there), the fault's
    // directory entry the path's, the path's root the loaded one.
    "mov edx, [{fault_linear_frame}]",
    "cmp edx, [{cache} + {path_update_kfn}]",
    "jne 4f",
    "push esi",
    "mov esi, [{cache} + {fault_va} + 4]",
    "shr esi, 21",
    "cmp esi, [{cache} + {path_dir}]",
    "jne 31f",
    "mov si, [{cache} + {path_current}]",
    "cmp si, [{cache} + {current}]",
    "jne 31f",
    // `host.read_entry(kfn, index)`'s view slot: the one the fault path
    // remembered for its L1 (`l1_hint`), still that frame's (its tag
    // `kfn + 1`, as the #PF path's read, traps.rs): the slot the view
    // look-up finds, a frame's only one.
    "inc edx",
    "movzx esi, word ptr [{cache} + {path_l1_hint}]",
    "cmp [{view_tags} + esi * 4], edx",
    "jne 31f",
    "shl esi, 12",
    // SetPxELong's path joins here after its store (above).
    ".Lfault_update_write:",
    "test bl, bl",
    "jz .Lfault_update_write_unmasked",
    ".Lfault_update_write_masked:",
    "quick_update_write 1",
    ".Lfault_update_write_unmasked:",
    "quick_update_write 0",
    "31:",
    "pop esi",
    "4:",
    // The one-step path in Rust, then the general call.
    "push eax",
    "mov ecx, eax",
    "call {fast}",
    "test al, al",
    "pop eax",
    "jnz 7b",
    "jmp 6b",
    ".popsection",
    handler = sym crate::paging::update_pxe_long,
    fast = sym crate::paging::update_pxe_long_after_fault,
    set_handler = sym crate::paging::set_pxe_long,
    set_fast = sym crate::paging::set_pxe_long_after_fault,
    lazy_mmu = const vmi_abi::flags::LazyMode::Mmu as u32,
    batch = const quick_update::BATCH_VA,
    ro_first = const xen_vmi_rom::layout::LOW_RAM_END >> 12,
    memo_page = const quick_update::LAZY_LINEAR_VA,
    memo_kfn = const quick_update::LAZY_LINEAR_VA + 4,
    ro_count = const (xen_vmi_rom::layout::HIGH_RAM_START - xen_vmi_rom::layout::LOW_RAM_END) >> 12,
    last_valid = const tables::LAST_VALID,
    last_kfn = const tables::LAST_KFN,
    last_l1 = const tables::LAST_L1,
    last_l2 = const tables::LAST_L2,
    table_shift = const tables::TABLE_SHIFT,
    table_mfn = const tables::TABLE_MFN,
    view_kfn = const crate::mmu::LAST_KERNEL_KFN_VA,
    view_va = const crate::mmu::LAST_KERNEL_VA_VA,
    len = const quick_update::Batch::LEN_OFFSET,
    capacity = const crate::mmu::BATCH,
    mirrored = const quick_update::Batch::MIRRORED_OFFSET,
    reqs = const quick_update::WRITE.reqs,
    slots = const quick_update::WRITE.slots,
    slot_bytes = const quick_update::WRITE.slot_size,
    tag_at = const quick_update::WRITE.tag_at,
    pushes = const quick_update::WRITE.pushes,
    tag_kfn = const tables::TAG_KFN,
    tag_index_what = const tables::TAG_INDEX_WHAT,
    tag_guest = const tables::TAG_GUEST,
    p = const shadow_entry::PRESENT as u32,
    a = const shadow_entry::ACCESSED as u32,
    u = const shadow_entry::USER as u32,
    a_rw = const (shadow_entry::ACCESSED | shadow_entry::RW) as u32,
    a_rw_d = const (shadow_entry::ACCESSED | shadow_entry::RW | shadow_entry::DIRTY) as u32,
    refused = sym crate::paging::update_pxe_long_quick_refused,
    lazy = const LAZY_MODE_VA,
    fault_va = const quick_update::FAULT_VA,
    held = const quick_update::HELD_VA,
    activated = const quick_update::ACTIVATED_VA,
    batch_len = const quick_update::BATCH_VA + quick_update::Batch::LEN_OFFSET as u32,
    batch_mirrored = const quick_update::BATCH_VA + quick_update::Batch::MIRRORED_OFFSET as u32,
    batch_lazy = const quick_update::BATCH_VA + quick_update::Batch::LAZY_OFFSET as u32,
    mapped_writes = const quick_update::BATCH_VA
        + quick_update::Batch::MAPPED_WRITES_OFFSET as u32,
    fault_linear_page = const quick_update::FAULT_LINEAR_VA,
    fault_linear_frame = const quick_update::FAULT_LINEAR_VA + 4,
    cache = const quick_update::CACHE_VA,
    current = const layout::CURRENT,
    path_current = const layout::PATH_CURRENT,
    path_dir = const layout::PATH_DIR,
    path_update_kfn = const layout::PATH_UPDATE_KFN,
    path_l1_hint = const layout::PATH_L1_HINT,
    rom_first = const xen_vmi_rom::layout::LOW_RAM_END >> 12,
    high_first = const xen_vmi_rom::layout::HIGH_RAM_START >> 12,
    view_tags = const crate::mmu::VIEW_TAGS_VA,
    views = const xen_vmi_rom::layout::TABLE_VIEW_VA,
    present_accessed = const (shadow_entry::PRESENT | shadow_entry::ACCESSED) as u32,
    settled_flip = const (shadow_entry::PRESENT | shadow_entry::ACCESSED | shadow_entry::RW) as u32,
    d = const shadow_entry::DIRTY as u32,
    settled_bits = const (shadow_entry::PRESENT
        | shadow_entry::ACCESSED
        | shadow_entry::USER
        | shadow_entry::RW
        | shadow_entry::DIRTY) as u32,
    not_rw = const !(shadow_entry::RW as u32),
    kept = const (shadow_entry::PRESENT
        | shadow_entry::RW
        | shadow_entry::USER
        | shadow_entry::ACCESSED
        | shadow_entry::DIRTY
        | shadow_entry::GLOBAL
        | shadow_entry::AVAIL) as u32,
    frame_limit = const xen_vmi_rom::layout::ROM_STATE_VA
        + core::mem::offset_of!(xen_vmi_rom::rom_state::RomState, kernel_frame_limit) as u32,
    k2m = const xen_vmi_rom::layout::K2M_VA,
    hypercall_count = const crate::xen::HYPERCALL_COUNT_VA,
    update_va_mapping_stub = const HYPERCALL_PAGE_VA
        + xen_abi::xen::__HYPERVISOR_update_va_mapping * xen_abi::xen::HYPERCALL_STUB_SIZE,
    last_fix = const quick_update::LAST_FIX_VA,
    mask = const SHARED_INFO_VA + 1,
    pending = const SHARED_INFO_VA,
);

use xen_vmi_rom::shadow_cache::quick_fault_layout as layout;
use xen_vmi_rom::shadow_cache::quick_table_layout as tables;
use xen_vmi_rom::shadow_entry;

/// Where SetPxELong's and UpdatePxELong's paths in assembly find the state they read and
/// writes: the run-time state's (mapped in every address space) and the
/// heap's (once `heap_ready`, which the stub tests first).
mod quick_update {
    use crate::paging::{HeldSwitch, Paging};
    use crate::runtime::Runtime;
    use core::mem::offset_of;

    const PAGING_VA: u32 = xen_vmi_rom::layout::ROM_STATE_VA
        + xen_vmi_rom::rom_state::ROM_RUNTIME_OFFSET
        + offset_of!(Runtime, paging) as u32;
    /// `Paging::activated` (a bool) and `held.held` (a bool).
    pub const ACTIVATED_VA: u32 = PAGING_VA + offset_of!(Paging, activated) as u32;
    pub const HELD_VA: u32 =
        PAGING_VA + (offset_of!(Paging, held) + offset_of!(HeldSwitch, held)) as u32;
    /// `CallState::fault_linear`: the page (address | 0xFFF), then its
    /// frame (u32 each).
    pub const FAULT_LINEAR_VA: u32 = PAGING_VA
        + (offset_of!(Paging, calls) + offset_of!(xen_vmi_rom::mmu_calls::CallState, fault_linear))
            as u32;
    /// `Paging::last_fix`, three words zeroed.
    pub const LAST_FIX_VA: u32 = PAGING_VA + offset_of!(Paging, last_fix) as u32;
    const HEAP_VA: u32 = xen_vmi_rom::layout::SHADOW_HEAP_VA;
    pub const CACHE_VA: u32 = HEAP_VA + offset_of!(crate::mmu::Heap, cache) as u32;
    /// `ShadowCache::fault_va`: 0 in its first word is None (checked in
    /// `quick_fault_layout`).
    pub const FAULT_VA: usize = super::layout::FAULT_VA;
    pub type Batch = mmu_batch::MmuBatch<xen_vmi_rom::shadow_cache::Tag, { crate::mmu::BATCH }>;
    pub const BATCH_VA: u32 = HEAP_VA + offset_of!(crate::mmu::Heap, batch) as u32;
    /// Where a write the queue appends goes (`MmuBatch::appends_write`).
    pub const WRITE: mmu_batch::WriteSlotLayout = Batch::WRITE_SLOT;
    /// `CallState::lazy_linear`: the page (address | 0xFF8), then its
    /// frame (u32 each, as `fault_linear`).
    pub const LAZY_LINEAR_VA: u32 = PAGING_VA
        + (offset_of!(Paging, calls) + offset_of!(xen_vmi_rom::mmu_calls::CallState, lazy_linear))
            as u32;

    const _: () = {
        let fault_linear: (u32, u32) = (1, 2);
        // SAFETY: a pair of u32 is 8 bytes of two u32s (asserted).
        let words: [u32; 2] = unsafe { core::mem::transmute(fault_linear) };
        assert!(words[0] == 1 && words[1] == 2);
        assert!(core::mem::size_of::<bool>() == 1);
        assert!(core::mem::size_of::<usize>() == 4);
        assert!(Batch::MAPPED_WRITES_OFFSET.is_multiple_of(8) && BATCH_VA.is_multiple_of(8));
        assert!(core::mem::size_of::<(u32, u32, u32)>() == 12);
        // The lazy path reads the 16 bytes before `reqs` for an empty
        // queue's last request: inside the queue.
        assert!(WRITE.reqs >= 16);
        // The path reads `activated` and `heap_ready` as one 16-bit word.
        assert!(super::HEAP_READY_VA == ACTIVATED_VA + 1);
        // The page memo's "none" fails the frame compare (its page alone
        // passes for an address in page 0 with bits 0-2 set): no page
        // table's frame (k2m describes frames below K2M_MAX_FRAMES) and
        // not the path's "no table".
        let none = xen_vmi_rom::mmu_calls::CallState::NO_FAULT_LINEAR;
        assert!(none.0 == 0 && none.1 >= xen_vmi_rom::layout::K2M_MAX_FRAMES);
        assert!(none.1 != super::layout::NO_UPDATE);
    };
}
regparm_entry!("vmi_entry_machine_to_physical" => crate::paging::machine_to_physical);
regparm_entry!("vmi_entry_physical_to_machine" => crate::paging::physical_to_machine);
masked_entry!("vmi_entry_allocate_page" => crate::paging::allocate_page, "2");
masked_entry!("vmi_entry_release_page" => crate::paging::release_page, "0");
masked_entry!("vmi_entry_set_linear_mapping" => crate::paging::set_linear_mapping, "1");
masked_fastcall_entry!("vmi_entry_set_lazy_mode" => crate::paging::set_lazy_mode);
regparm_entry!("vmi_entry_clts" => cpu_calls::clts);
regparm_entry!("vmi_entry_set_dr" => cpu_calls::set_dr);
regparm_entry!("vmi_entry_get_dr" => cpu_calls::get_dr);
masked_entry!("vmi_entry_set_gdt" => cpu_calls::set_gdt, "0");
masked_entry!("vmi_entry_set_idt" => cpu_calls::set_idt, "0");
regparm_entry!("vmi_entry_get_gdt" => cpu_calls::get_gdt);
regparm_entry!("vmi_entry_get_idt" => cpu_calls::get_idt);
masked_entry!("vmi_entry_set_tr" => cpu_calls::set_tr, "0");
masked_entry!("vmi_entry_set_ldt" => cpu_calls::set_ldt, "0");
regparm_entry!("vmi_entry_get_ldt" => cpu_calls::get_ldt);
regparm_entry!("vmi_entry_get_tr" => cpu_calls::get_tr);
// Masked: its held case is a test and a store of the held switch, which
// an event's handler (`heap()` pushing the held switch) must not split,
// and its other cases push onto the queue. The VMI ABI does not promise a
// caller with interrupts off.
masked_fastcall_entry!("vmi_entry_update_kernel_stack" => cpu_calls::update_kernel_stack);
regparm_entry!("vmi_entry_wbinvd" => cpu_calls::wbinvd);
regparm_entry!("vmi_entry_halt" => cpu_calls::halt);
regparm_entry!("vmi_entry_shutdown" => cpu_calls::shutdown);
regparm_entry!("vmi_entry_reboot" => cpu_calls::reboot);
masked_timer_entry!("vmi_entry_apic_write" => cpu_calls::apic_write, "0");
regparm_entry!("vmi_entry_set_iopl_mask" => cpu_calls::set_iopl_mask);
regparm_entry!("vmi_entry_apic_read" => cpu_calls::apic_read);
regparm_entry!("vmi_entry_get_wallclock_time" => cpu_calls::get_wallclock_time);
regparm_entry!("vmi_entry_wallclock_updated" => cpu_calls::wallclock_updated);

// The interrupt flag is vcpu 0's evtchn_upcall_mask (shared_info + 1,
// inverted); evtchn_upcall_pending is at + 0. Re-enabling with an event
// pending makes a hypercall (any return lets Xen deliver the upcall).
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_calls, "ax"
    .globl vmi_entry_disable_interrupts
vmi_entry_disable_interrupts:
    mov byte ptr [{mask}], 1
    ret

    .globl vmi_entry_enable_interrupts
vmi_entry_enable_interrupts:
    mov byte ptr [{mask}], 0
    cmp byte ptr [{pending}], 0
    jne vmi_force_upcall
    ret

    .globl vmi_entry_get_interrupt_mask
vmi_entry_get_interrupt_mask:
    movzx eax, byte ptr [{mask}]
    xor eax, 1
    shl eax, 9
    ret

    .globl vmi_entry_set_interrupt_mask
vmi_entry_set_interrupt_mask:
    test eax, 0x200
    jz 1f
    mov byte ptr [{mask}], 0
    cmp byte ptr [{pending}], 0
    jne vmi_force_upcall
    ret
1:  mov byte ptr [{mask}], 1
    ret

    // xen_version(0, NULL) with every register kept.
vmi_force_upcall:
    inc dword ptr [{count}]
    push eax
    push ebx
    push ecx
    push edx
    xor ebx, ebx
    xor ecx, ecx
    mov eax, {xen_version}
    call eax
    pop edx
    pop ecx
    pop ebx
    pop eax
    ret

    // IRET (jumped to, frame at ESP): the frame's IF becomes the upcall
    // mask, then a real iret (ring 1 may iret to ring 1 or 3). The
    // processor changes IF and returns at once; here an event that comes
    // between clearing the mask and the iretd would be delivered on the
    // ROM's code in ring 1, not after the return. The upcall recognises
    // that window (events::iret_window, which knows its bytes and layout:
    // entry 32-byte aligned, window at +18) and finishes the IRET through
    // Xen instead, as it is finished when an event is already pending:
    // Xen's iret (hypercall 23; its stub pushes EAX) restores EIP, CS,
    // EFLAGS (and ESP, SS for ring 3) and the upcall mask from the frame's
    // IF, and delivers the event on its way out, with the frame of the
    // context the IRET returned to.
    .balign 32
    .globl vmi_entry_iret
vmi_entry_iret:
    test dword ptr [esp + 8], 0x200
    jz 2f
    // Through SS, the kernel's flat stack segment: DS holds what the
    // IRET gives back (a user's null or LDT selector).
    mov byte ptr ss:[{mask}], 0
    .globl vmi_iret_window
vmi_iret_window:
    cmp byte ptr ss:[{pending}], 0
    jne 3f
    iretd
    .globl vmi_iret_via_xen
vmi_iret_via_xen:
3:  mov byte ptr ss:[{mask}], 1
    inc dword ptr ss:[{count}]
    push {xen_iret}
    ret
2:  mov byte ptr ss:[{mask}], 1
    iretd

    // CPUID as Xen's policy for this guest has it: the forced-emulation
    // prefix (ud2a; "xen") makes Xen emulate the cpuid after it. Xen hides
    // PGE from PV guests (its own TLB flushes are global); the ROM offers
    // it back, because a flush the ROM makes is always a whole one: a
    // global page is never stale after a FlushTLB(GLOBAL) or a CR4.PGE
    // toggle, and surviving a non-global flush is only a TLB's right,
    // not a duty (SDM vol. 3, "Global Pages").
    .globl vmi_entry_cpuid
vmi_entry_cpuid:
    push eax
    .byte 0x0f, 0x0b, 0x78, 0x65, 0x6e
    cpuid
    cmp dword ptr [esp], 1
    jne 1f
    or edx, 1 << 13
1:  lea esp, [esp + 4]
    ret

    // GetCycleCounter(counter in EAX) -> u64 in EDX:EAX. The real counter
    // is the TSC itself (time.rs): answered by the instruction here, since
    // a kernel reads it around everything it times (and Linux's
    // sched_clock on every scheduler decision); the others go to the
    // handler. The TSC is read first, the counter asked for kept in ECX
    // (regparm(3) lets it go): the value is the counter as close to the
    // call as the processor's would be (an interrupt handler stamping its
    // entry gets the time it came in).
    //
    // A kernel waiting for its timer spins here, so ticks land on these
    // instructions. The tick's one-step path (events.rs) sends every tick
    // whose EIP has the low byte of one of the IRET window's stops to a
    // slower exact test: in this section, a fixed distance after the
    // window and within 256 bytes of it, no byte of the stub shares such a
    // low byte, whatever the ROM's layout (tools/build-images checks it).
    .globl vmi_entry_get_cycle_counter
vmi_entry_get_cycle_counter:
    mov ecx, eax
    rdtsc
    cmp ecx, {real}
    jne 1f
    ret
1:  push ecx
    call {handler}
    add esp, 4
    ret
    .globl vmi_entry_get_cycle_counter_end
vmi_entry_get_cycle_counter_end:

    .popsection
    "#,
    mask = const SHARED_INFO_VA + 1,
    pending = const SHARED_INFO_VA,
    xen_version = const HYPERCALL_PAGE_VA + 17 * 32,
    count = const crate::xen::HYPERCALL_COUNT_VA,
    xen_iret = const HYPERCALL_PAGE_VA + 23 * 32,
    real = const vmi_abi::time::VMI_CYCLES_REAL,
    handler = sym crate::time::get_cycle_counter,
);

// The answers, by call number: 8 bytes each, the entry's offset from the
// table (signed: entries may precede it) and the relocation type (0 NONE).
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_calls, "ax"
    .balign 4
    .globl vmi_call_table
vmi_call_table:
    .macro call_rel n, entry
    .org vmi_call_table + \n * 8
    .long \entry - vmi_call_table, 1
    .endm
    .macro jump_rel n, entry
    .org vmi_call_table + \n * 8
    .long \entry - vmi_call_table, 2
    .endm
    .macro nop_rel n
    .org vmi_call_table + \n * 8
    .long 0, 3
    .endm
    call_rel 0, vmi_entry_cpuid
    call_rel 3, vmi_entry_set_gdt
    call_rel 4, vmi_entry_set_ldt
    call_rel 5, vmi_entry_set_idt
    call_rel 6, vmi_entry_set_tr
    call_rel 7, vmi_entry_get_gdt
    call_rel 8, vmi_entry_get_ldt
    call_rel 9, vmi_entry_get_idt
    call_rel 10, vmi_entry_get_tr
    call_rel 11, vmi_entry_write_gdt_entry
    call_rel 12, vmi_entry_write_ldt_entry
    call_rel 13, vmi_entry_write_idt_entry
    call_rel 14, vmi_entry_update_kernel_stack
    call_rel 15, vmi_entry_set_cr0
    call_rel 16, vmi_entry_set_cr2
    call_rel 17, vmi_entry_set_cr3
    call_rel 18, vmi_entry_set_cr4
    call_rel 19, vmi_entry_get_cr0
    call_rel 20, vmi_entry_get_cr2
    call_rel 21, vmi_entry_get_cr3
    call_rel 22, vmi_entry_get_cr4
    call_rel 23, vmi_entry_wbinvd
    call_rel 24, vmi_entry_set_dr
    call_rel 25, vmi_entry_get_dr
    call_rel 28, vmi_entry_clts
    call_rel 29, vmi_entry_enable_interrupts
    call_rel 30, vmi_entry_disable_interrupts
    call_rel 31, vmi_entry_get_interrupt_mask
    call_rel 32, vmi_entry_set_interrupt_mask
    jump_rel 33, vmi_entry_iret
    jump_rel 34, vmi_entry_sysexit
    call_rel 35, vmi_entry_halt
    call_rel 36, vmi_entry_reboot
    call_rel 37, vmi_entry_shutdown
    call_rel 38, vmi_entry_set_pxe
    call_rel 39, vmi_entry_set_pxe_long
    call_rel 40, vmi_entry_update_pxe
    call_rel 41, vmi_entry_update_pxe_long
    call_rel 42, vmi_entry_machine_to_physical
    call_rel 43, vmi_entry_physical_to_machine
    call_rel 44, vmi_entry_allocate_page
    call_rel 45, vmi_entry_release_page
    call_rel 46, vmi_entry_inval_page
    call_rel 47, vmi_entry_flush_tlb
    call_rel 48, vmi_entry_set_linear_mapping
    call_rel 61, vmi_entry_set_iopl_mask
    call_rel 63, vmi_entry_apic_write
    call_rel 64, vmi_entry_apic_read
    nop_rel 65
    call_rel 66, vmi_entry_get_cycle_frequency
    call_rel 67, vmi_entry_get_cycle_counter
    call_rel 68, vmi_entry_set_alarm
    call_rel 69, vmi_entry_cancel_alarm
    call_rel 70, vmi_entry_get_wallclock_time
    call_rel 71, vmi_entry_wallclock_updated
    call_rel 73, vmi_entry_set_lazy_mode
    .org vmi_call_table + {count} * 8
    .popsection
    "#,
    count = const vmi_abi::VMI_NUM_CALLS,
);

// The table's run-time address, from EIP (AT&T: see traps.rs).
core::arch::global_asm!(
    r#"
    .pushsection .text.vmi_calls, "ax"
    .globl vmi_addr_call_table
vmi_addr_call_table:
    call 1f
1:  popl %eax
    leal (vmi_call_table - 1b)(%eax), %eax
    ret
    .popsection
    "#,
    options(att_syntax)
);

extern "C" {
    fn vmi_addr_call_table() -> u32;
}

/// GetRelocationInfo's answer for call number `call`. Calls the ROM does
/// not route into itself answer NONE: the kernel keeps the native
/// instruction, which traps in ring 1 and is emulated (emulate.rs).
pub fn relocation(call: u32) -> VmiRelocationInfo {
    let none = VmiRelocationInfo::new(0, VmiRelocationType::None);
    if VmiCall::from_u32(call).is_none() || call as usize >= vmi_abi::VMI_NUM_CALLS {
        crate::console::Line::rom(b"GetRelocationInfo: call number ")
            .dec(call)
            .text(b" is not in the VMI API 3.0: answered NONE")
            .print();
        return none;
    }
    // SAFETY: computes an address from EIP.
    let table = unsafe { vmi_addr_call_table() };
    // SAFETY: the table has VMI_NUM_CALLS two-word entries in the ROM's code.
    let (offset, kind) = unsafe {
        let e = (table as *const u32).add(2 * call as usize);
        (core::ptr::read(e), core::ptr::read(e.add(1)))
    };
    let kind = match kind {
        1 => VmiRelocationType::CallRel,
        2 => VmiRelocationType::JumpRel,
        3 => VmiRelocationType::Nop,
        _ => return none,
    };
    let eip = if kind == VmiRelocationType::Nop {
        0
    } else {
        table.wrapping_add(offset)
    };
    VmiRelocationInfo::new(eip, kind)
}
