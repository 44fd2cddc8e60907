//! The kernel's paging on Xen (docs/page-tables.md): the VMI MMU calls and
//! the paths that meet the kernel's page tables (CR3 loads, TLB flushes,
//! page faults), over the cached shadows of `xen_vmi_rom::shadow_cache`.
//!
//! Two regimes. Before the kernel activates VMI (its first VMI MMU call)
//! it may write its tables natively, so every CR3 load, TLB flush and
//! INVLPG drops the shadows and builds the current one again from the
//! kernel's tables (exact under the TLB rules native code obeys), and a
//! page fault fills in what was mapped since. From activation on, the
//! notifications the ABI promises (SetPxE, UpdatePxE, AllocatePage,
//! ReleasePage) keep the shadows exact, and they stay cached per address
//! space: a CR3 switch is one MMUEXT_NEW_BASEPTR.
//!
//! Every Xen operation goes through the `mmu-batch` queue: outside lazy
//! MMU mode it is flushed at the end of each call, in lazy mode at the
//! mode's end, before a TLB flush or CR3 switch, before a page fault is
//! looked at, before an interrupt reaches the kernel, and when full.

use mmu_batch::{Barrier, Op};
use xen_abi::p2m::Mfn;
use xen_abi::xen::MmuextOp;
use xen_vmi_rom::layout::HYPERVISOR_VIRT_START;
use xen_vmi_rom::mmu_calls::{self, CallHost, CallState, Outcome, Problem, Rejection, Sink};
use xen_vmi_rom::shadow_cache::{Access, Fault, ShadowCache, ShadowError, Tag, What};

use crate::console::Line;
use crate::mmu::{barrier, end_of_call, fatal, heap, k2m, RomHost};
use crate::runtime::{rom_state, runtime};
use crate::traps::{saved_mask, set_saved_mask, TrapFrame};

/// Page-fault error code bit 0: the page was present (a protection fault).
const PF_PRESENT: u32 = 1;
use xen_vmi_rom::shadow_entry::RW;

/// CR0.WP.
const CR0_WP: u32 = 1 << 16;
/// CR0.PG.
const CR0_PG: u32 = 1 << 31;

/// The kernel's paging as the ROM keeps it (the shadows themselves are in
/// the heap, `mmu::Heap`).
#[derive(Clone, Copy, Default)]
pub struct Paging {
    /// The kernel's CR3 (its PDPT's kernel-physical address).
    pub cr3: u32,
    /// CR0.PG.
    pub enabled: bool,
    /// The kernel has made a VMI MMU call: its tables change only through
    /// the calls from now on.
    pub activated: bool,
    /// The heap is mapped and built.
    pub heap_ready: bool,
    /// What the VMI MMU calls keep between calls (SetLinearMapping slots,
    /// the lazy mode).
    pub calls: CallState,
    /// The last fault the shadow was fixed for (address, EIP, error code):
    /// the same fault again means the shadow cannot give the access. None
    /// is (0, 0, 0), or any triple whose error code no #PF has
    /// (`forget_last_fix`, one store for a context switch's calls).
    pub last_fix: (u32, u32, u32),
    /// Xen's read-only machine-to-physical table for this guest: where it
    /// starts and the largest machine frame in it (0, 0 until asked).
    pub m2p: (u32, u32),
    /// A supervisor write to a read-only page with CR0.WP clear, let
    /// through for one instruction.
    pub write_step: WriteStep,
    /// A context switch held back out of the queue (`HeldSwitch`).
    pub held: HeldSwitch,
}

/// The usual context switch (lazy CPU mode, the queue empty, a cached
/// address space loaded as it was built): its `MMUEXT_NEW_BASEPTR` and
/// `stack_switch` are kept here instead of being pushed, and go out at
/// SetLazyMode(NONE) as the queue's two-entry multicall
/// (`MmuBatch::leave_lazy_switching`), the same hypercall the queue would make
/// of them. Whatever else reaches the heap first (a call, a fault, an
/// interrupt: `mmu::heap`) pushes them into the queue before anything
/// else, so the queue's order is the calls' order as if they had been
/// pushed at once.
#[derive(Clone, Copy, Default)]
pub struct HeldSwitch {
    /// A switch is held (`base` is its shadow L3 and the kernel's CR3).
    pub held: bool,
    base: (u32, u32),
    /// UpdateKernelStack's (ss, esp0), if it came.
    stack: Option<(u32, u32)>,
}

/// One instruction's write to a read-only page, allowed because the
/// kernel cleared CR0.WP: the shadow entry is made writable, the
/// instruction runs again single-stepped with events masked, and the trap
/// after it puts the entry back. (Ring 1 always honours read-only pages,
/// so WP clear cannot be had from the processor itself.)
#[derive(Clone, Copy, Default)]
pub struct WriteStep {
    pub active: bool,
    /// The shadow entry and its read-only value.
    l1_mfn: u32,
    index: u16,
    value: u64,
    /// The page written.
    va: u32,
    /// The kernel's own event mask and trap flag before the step.
    masked: bool,
    trap_flag: bool,
}

/// EFLAGS.TF.
const EFLAGS_TF: u32 = 1 << 8;
/// The single-step (debug) exception.
const DEBUG_VECTOR: u32 = 1;

fn new_base(host: &mut RomHost<'_>, l3: u32, cr3: u32) {
    use xen_vmi_rom::shadow_cache::Host;
    let (op, tag) = new_base_op(l3, cr3);
    host.push(op, tag);
}

fn new_base_op(l3: u32, cr3: u32) -> (Op, Tag) {
    (
        Op::Mmuext(MmuextOp::new_baseptr(Mfn(l3))),
        Tag {
            what: What::NewBase,
            kfn: cr3 >> 12,
            index: ((cr3 & 0xFE0) >> 3) as u16,
            guest: 0,
        },
    )
}

fn stack_switch_op(ss: u32, esp0: u32) -> (Op, Tag) {
    (
        Op::StackSwitch { ss, esp: esp0 },
        Tag {
            what: What::StackSwitch,
            guest: (u64::from(ss) << 32) | u64::from(esp0),
            ..Tag::default()
        },
    )
}

/// The held switch (`HeldSwitch`) goes into the queue, ahead of whatever
/// is about to be pushed or flushed: `mmu::heap` calls it whenever one is
/// held, so no path reaches the queue past it.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
pub fn push_held_switch(heap: &mut crate::mmu::Heap) {
    let held = core::mem::take(&mut runtime().paging.held);
    let (_, mut host) = heap.split();
    use xen_vmi_rom::shadow_cache::Host;
    let (op, tag) = new_base_op(held.base.0, held.base.1);
    host.push(op, tag);
    if let Some((ss, esp0)) = held.stack {
        let (op, tag) = stack_switch_op(ss, esp0);
        host.push(op, tag);
    }
}

/// Loads the shadow of the kernel's current CR3 (paging is on). One copy
/// for every path: a context switch's load of an unchanged cached root
/// is [`switch_cr3`]'s.
#[inline(never)]
fn load(call: &[u8]) {
    let cr3 = runtime().paging.cr3;
    if !runtime().paging.activated {
        rebuild(call);
        return;
    }
    let heap = heap();
    let (cache, mut host) = heap.split();
    let l3 = cache
        .load_root(&mut host, cr3)
        .unwrap_or_else(|e| fatal(call, e));
    if lazy_cpu() && host.batch.is_empty() {
        // The usual switch: held, not queued (`HeldSwitch`).
        runtime().paging.held = HeldSwitch {
            held: true,
            base: (l3, cr3),
            stack: None,
        };
        return;
    }
    new_base(&mut host, l3, cr3);
    if lazy_cpu() {
        // The kernel runs on its own mappings, the same in every address
        // space, until the mode ends; a fault or an interrupt before that
        // flushes the queue first (`page_fault`, `before_interrupt`).
        return;
    }
    barrier(host.batch, Barrier::BaseSwitch);
}

/// The kernel is in lazy CPU mode (SetLazyMode(CPU), Linux's context
/// switch): a CR3 load and UpdateKernelStack wait in the queue until the
/// mode ends, and go out as one multicall.
fn lazy_cpu() -> bool {
    runtime().paging.calls.lazy == vmi_abi::flags::LazyMode::Cpu
}

/// UpdateKernelStack in a context switch (lazy CPU mode, a base switch
/// held, `HeldSwitch`): the stack switch is held with it. False (nothing
/// done) otherwise.
#[inline(always)]
pub fn hold_stack_switch(ss: u32, esp0: u32) -> bool {
    let p = &mut runtime().paging;
    if lazy_cpu() && p.heap_ready && p.held.held && p.held.stack.is_none() {
        p.held.stack = Some((ss, esp0));
        return true;
    }
    false
}

/// UpdateKernelStack in lazy CPU mode: the stack switch joins the queue
/// behind the CR3 load (XenLinux's lazy CPU mode does the same), so a
/// context switch is one multicall at the mode's end. No trap from ring 3
/// can come before: the kernel is in ring 1 until then. Returns false
/// outside lazy CPU mode (the caller switches at once).
pub fn queue_stack_switch(ss: u32, esp0: u32) -> bool {
    if !lazy_cpu() || !runtime().paging.heap_ready {
        return false;
    }
    if hold_stack_switch(ss, esp0) {
        return true;
    }
    let heap = heap();
    let (_, mut host) = heap.split();
    use xen_vmi_rom::shadow_cache::Host;
    let (op, tag) = stack_switch_op(ss, esp0);
    host.push(op, tag);
    true
}

/// Drops every shadow and builds the current one again from the kernel's
/// tables (before activation, at every flush).
#[cfg_attr(feature = "image", optimize(size))]
fn rebuild(call: &[u8]) {
    let cr3 = runtime().paging.cr3;
    let heap = heap();
    let (cache, mut host) = heap.split();
    if cache.current_cr3().is_some() {
        // Off the shadows before they are unpinned: the loader's root maps
        // the ROM area and the kernel's frames.
        new_base(&mut host, rom_state().boot_l3_mfn, 0);
    }
    cache.drop_all(&mut host);
    let l3 = cache
        .load_root(&mut host, cr3)
        .unwrap_or_else(|e| fatal(call, e));
    new_base(&mut host, l3, cr3);
    barrier(host.batch, Barrier::BaseSwitch);
}

/// A VMI call came since the last fixed fault (a fix repeated with a call
/// in between is progress, not a loop): as `last_fix = (0, 0, 0)` does,
/// with one store. A #PF error code uses the low bits only (SDM vol. 3,
/// "Page-Fault Error Code"), so no fault's triple has this one's.
#[inline(always)]
pub(crate) fn forget_last_fix(p: &mut Paging) {
    p.last_fix.2 = u32::MAX;
}

/// The first VMI MMU call: what the kernel wrote natively until now is
/// read once more, then trusted to change only through the calls.
#[inline]
fn activate() {
    let p = &mut runtime().paging;
    // A fix repeated with a call in between is progress, not a loop (one
    // store: every MMU call's frame makes it).
    forget_last_fix(p);
    if p.activated {
        return;
    }
    if p.enabled {
        rebuild(b"VMI activation");
    }
    runtime().paging.activated = true;
}

/// SetCR3 (and a native CR3 load): a new address space; with paging on,
/// its shadow is loaded.
pub extern "C" fn set_cr3(value: u32) {
    runtime().paging.cr3 = value;
    if runtime().paging.enabled {
        load(b"SetCR3");
    }
}

/// A native `mov %cr3` (the #GP path: Xen takes the value for a machine
/// frame and refuses it). A kernel cannot turn paging on natively in a way
/// the ROM sees: Xen's own emulation reads CR0 with PG already set (the
/// processor's real CR0) and accepts writing it back unchanged, so a
/// kernel's `mov %cr0` setting PG never reaches the ROM. Its CR3 load does,
/// and comes just before (Linux's head code: CR3, then CR0.PG, then the
/// jump to the kernel's virtual addresses): from there the kernel's tables
/// are the address space, as they would be an instruction later natively.
/// CR4.PAE (SDM vol. 3, "CR4").
const CR4_PAE: u32 = 1 << 5;

pub fn native_set_cr3(value: u32) {
    runtime().paging.cr3 = value;
    if runtime().paging.enabled {
        load(b"mov to CR3");
        return;
    }
    // What the kernel reads natively from now on is Xen's CR0 (PG and WP
    // set), and a write that keeps them never traps: the ROM's view
    // follows. Likewise CR4.PAE: Xen takes a ring-1 CR4 write itself (its
    // PAE is always set), and the kernel's PAE tables mean PAE paging.
    runtime().cr.cr0 |= CR0_PG | CR0_WP;
    runtime().cr.cr4 |= CR4_PAE;
    set_paging(true);
}

/// SetCR3 through the VMI call.
pub extern "fastcall" fn vmi_set_cr3(value: u32) {
    if !switch_cr3(value) {
        set_cr3_general(value);
    }
}

/// SetCR3 through the VMI call, when it is not [`switch_cr3`]'s case.
#[inline(never)]
fn set_cr3_general(value: u32) {
    activate();
    set_cr3(value);
}

/// SetCR3 in a context switch (lazy CPU mode, nothing held or queued, a
/// cached root whose PDPT is unchanged and read through the view its
/// root noted): what `activate`, `set_cr3` and `load` do then, with no
/// host to build and nothing else to test. False (nothing changed but
/// the cache's root hint) for any other case, which takes the general
/// path.
#[inline(always)]
fn switch_cr3(value: u32) -> bool {
    let p = &mut runtime().paging;
    if !(p.activated
        && p.enabled
        && p.heap_ready
        && !p.held.held
        && p.calls.lazy == vmi_abi::flags::LazyMode::Cpu)
    {
        return false;
    }
    let heap = crate::mmu::built_heap();
    if !heap.batch.is_empty() {
        return false;
    }
    let Some(cached) = heap.cache.cached_root(value) else {
        return false;
    };
    let Some(page) = heap.views.noted_view(cached.pdpt_hint, cached.kfn) else {
        return false;
    };
    let first = cached.first;
    // SAFETY: the view maps the whole frame; the index stays in it.
    let entry = |s: usize| unsafe { page.add((first + s) & 511).read_volatile() };
    let Some(l3) = heap.cache.load_unchanged_root(cached, entry) else {
        return false;
    };
    forget_last_fix(p);
    p.cr3 = value;
    p.held = HeldSwitch {
        held: true,
        base: (l3, value),
        stack: None,
    };
    true
}

pub extern "C" fn get_cr3() -> u32 {
    runtime().paging.cr3
}

/// CR0.PG from SetCR0: on, the kernel's tables (shadowed); off, back to the
/// "paging off" space the loader built. The shadows stay cached.
pub fn set_paging(on: bool) {
    let rt = runtime();
    if on == rt.paging.enabled {
        return;
    }
    rt.paging.enabled = on;
    if on {
        load(b"SetCR0 (paging on)");
    } else {
        let heap = heap();
        let (cache, mut host) = heap.split();
        new_base(&mut host, rom_state().boot_l3_mfn, 0);
        cache.leave_root();
        // No quick fault's address with paging off: UpdatePxELong's path
        // in assembly (entry.rs) relies on it instead of testing
        // `enabled` (a fault is the kernel's quick one only with paging
        // on, `kernels_page_fault`).
        let _ = cache.take_fault_va();
        // Nor a page in the lazy path's memo: that path (entry.rs) relies
        // on it instead of testing `enabled` too.
        rt.paging.calls.paging_off();
        barrier(host.batch, Barrier::BaseSwitch);
    }
}

/// FlushTLB(flags) (`mmu_calls::flush_tlb`); being a VMI call, it
/// activates first, so the shadows are cached from here on.
pub extern "C" fn vmi_flush_tlb(flags: u32) {
    activate();
    if runtime().paging.enabled {
        let (_, mut host) = heap().split();
        finish(mmu_calls::flush_tlb(&mut host, flags));
    } else {
        finish(mmu_calls::flush_flags(flags));
    }
}

/// InvalPage (and a native INVLPG): the mapping of `va` as the kernel's
/// tables have it now, checked against the shadow (a change the kernel
/// made without telling is taken, with a note), then flushed.
#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn inval_page(va: u32) {
    if !runtime().paging.enabled {
        return;
    }
    if !runtime().paging.activated {
        rebuild(b"InvalPage");
        return;
    }
    let (cache, mut host) = heap().split();
    finish(mmu_calls::inval_page(cache, &mut host, va));
}

pub extern "C" fn vmi_inval_page(va: u32) {
    activate();
    inval_page(va);
}

/// A page fault with paging on. Updates queued in a lazy mode go out
/// first and the access is retried (one of them may be what it needs).
/// Then, if the kernel's own tables allow the access, A and D are set in
/// its entries as the processor would, the shadow entry follows, and the
/// instruction runs again; otherwise the fault is the kernel's.
pub fn page_fault(cr2: u32, frame: &mut TrapFrame) -> bool {
    let rt = runtime();
    if !rt.paging.enabled {
        return false;
    }
    let wp = rt.cr.cr0 & CR0_WP != 0;
    let heap = heap();
    if heap.batch.is_lazy() && !heap.batch.is_empty() {
        barrier(&mut heap.batch, Barrier::CoherentRead);
        return true;
    }
    // Outside lazy mode only calls that touch no shadow of the loaded
    // space leave ops queued (`mmu_calls`, detached calls): none of them is
    // what this access needs, so the fault is looked at now and they go
    // out with its own work (the barrier below).
    let (cache, mut host) = heap.split();
    let outcome = cache
        .fault(
            &mut host,
            cr2,
            Access::from_error_code(frame.error_code),
            wp,
        )
        .unwrap_or_else(|e| fatal(b"page fault", e));
    let key = (cr2, frame.eip, frame.error_code);
    let resume = match outcome {
        Fault::Fixed if runtime().paging.last_fix != key => {
            runtime().paging.last_fix = key;
            true
        }
        // Fixed twice for the same access: the shadow cannot give it.
        Fault::Fixed => {
            runtime().paging.last_fix = (0, 0, 0);
            false
        }
        Fault::WriteProtectOff {
            l1_mfn,
            index,
            value,
        } => {
            write_shadow(&mut host, l1_mfn, index, value | RW);
            runtime().paging.write_step = WriteStep {
                active: true,
                l1_mfn,
                index,
                value,
                va: cr2 & !0xFFF,
                masked: saved_mask(frame) != 0,
                trap_flag: frame.eflags & EFLAGS_TF != 0,
            };
            set_saved_mask(frame, true);
            frame.eflags |= EFLAGS_TF;
            true
        }
        Fault::Kernel => {
            runtime().paging.last_fix = (0, 0, 0);
            // The error code's P bit is the kernel's tables' (SDM vol. 3,
            // "Page-Fault Error Code": 1 for a protection violation), not
            // the shadow's: a user page is shadowed only on first access,
            // so the processor says "not present" for a page the kernel
            // maps read-only, which the kernel must see as a write to a
            // present page.
            let mapped = cache.last_fault_mapped();
            frame.error_code = (frame.error_code & !PF_PRESENT) | u32::from(mapped);
            false
        }
    };
    // What the fault queued (A/D bits, a repair), and the detached calls'
    // ops: usually nothing for a fault that is the kernel's.
    if !host.batch.is_empty() {
        barrier(host.batch, Barrier::CoherentRead);
    }
    resume
}

fn write_shadow(host: &mut RomHost<'_>, l1_mfn: u32, index: u16, value: u64) {
    use xen_vmi_rom::shadow_cache::Host;
    host.push(
        Op::pte_write(
            (u64::from(l1_mfn) << 12) + u64::from(index) * 8,
            value,
            mmu_batch::PteWrite::Normal,
        ),
        Tag {
            what: What::L1Entry,
            guest: value,
            ..Tag::default()
        },
    );
}

/// Any trap while a WP-clear write is single-stepped ends it: the shadow
/// entry is read-only again (and its writable TLB entry gone), the
/// kernel's mask and trap flag are back. Returns true when the trap was
/// the step's own and nothing else is to be done with it.
pub fn end_write_step(frame: &mut TrapFrame) -> bool {
    let step = runtime().paging.write_step;
    if !step.active || frame.vector >= 256 {
        return false;
    }
    runtime().paging.write_step.active = false;
    let heap = heap();
    let (_, mut host) = heap.split();
    write_shadow(&mut host, step.l1_mfn, step.index, step.value);
    use xen_vmi_rom::shadow_cache::Host;
    host.push(
        Op::Mmuext(MmuextOp::invlpg_local(step.va)),
        Tag {
            what: What::Tlb,
            guest: u64::from(step.va),
            ..Tag::default()
        },
    );
    barrier(host.batch, Barrier::TlbFlush);
    set_saved_mask(frame, step.masked);
    if !step.trap_flag {
        frame.eflags &= !EFLAGS_TF;
    }
    frame.vector == DEBUG_VECTOR && !step.trap_flag
}

/// Before an interrupt reaches the kernel's handler: queued updates go out
/// (the handler may use the mappings).
pub fn before_interrupt() {
    if runtime().paging.heap_ready && !heap().batch.is_empty() {
        barrier(&mut heap().batch, Barrier::EventsEnable);
    }
}

// ---------------------------------------------------------------------------
// Page-table entries: the calls' logic is `xen_vmi_rom::mmu_calls`
// (host-tested, docs/fuzzing.md); here the ROM's host for it and the
// extern "C" entries.

impl CallHost for RomHost<'_> {
    #[inline]
    fn read_entry(&mut self, kfn: u32, index: usize) -> Option<u64> {
        self.read(kfn, index)
    }

    #[inline]
    fn store_entry(&mut self, kfn: u32, offset: u32, value: u64, long: bool) -> bool {
        self.write(kfn, offset, value, long)
    }

    fn prefetch(&mut self, kfn: u32) {
        RomHost::prefetch(self, kfn);
    }

    fn shadow_entry(&mut self, mfn: u32, index: usize) -> u64 {
        RomHost::shadow_entry(self, mfn, index)
    }

    fn barrier(&mut self, reason: Barrier) {
        barrier(self.batch, reason);
    }

    // Always inline: in a lazy batch the end of a call is one test.
    #[inline(always)]
    fn end_of_call(&mut self) {
        end_of_call(self.batch);
    }

    #[inline(always)]
    fn end_of_call_mapped(&mut self, va: u32, entry_maddr: u64) {
        crate::mmu::end_of_call_mapped(self.batch, va, entry_maddr);
    }

    #[inline(always)]
    fn queue_is_lazy(&self) -> bool {
        self.batch.is_lazy()
    }

    #[inline(always)]
    fn mapped_write_ready(&self) -> bool {
        self.batch.is_idle()
    }

    #[inline(always)]
    fn write_mapped(&mut self, w: xen_vmi_rom::shadow_cache::MappedWrite) {
        crate::mmu::write_mapped(self.batch, w);
    }

    fn enter_lazy(&mut self) {
        self.batch.enter_lazy();
    }

    fn leave_lazy(&mut self) {
        if let Err(f) = self.batch.leave_lazy(&mut crate::mmu::XenTarget) {
            crate::mmu::refused(f);
        }
    }
}

/// A console line as the calls' diagnostics write it.
struct LineSink(Option<Line>);

// Out of line: each moves the 164-byte line in and out, which inlined at
// every word of `Rejection::describe` took 11 KiB of the image.
impl Sink for LineSink {
    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn text(&mut self, s: &[u8]) {
        self.0 = self.0.take().map(|l| l.text(s));
    }

    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn hex(&mut self, v: u32) {
        self.0 = self.0.take().map(|l| l.hex(v));
    }

    #[inline(never)]
    #[cfg_attr(feature = "image", optimize(size))]
    fn dec(&mut self, v: u32) {
        self.0 = self.0.take().map(|l| l.dec(v));
    }
}

/// A call's verdict: a rejection is printed, and the domain crashed when
/// the ABI leaves no way on. Inline: the usual verdict (none) is one test.
#[inline]
fn finish(result: Result<(), Rejection>) {
    if let Err(r) = result {
        reject(r);
    }
}

/// A rejection's console line, and the crash when it calls for one.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
fn reject(r: Rejection) {
    if r.problem == Problem::Shadow(ShadowError::OutOfFrames) {
        // With the pool's figures.
        fatal(b"", ShadowError::OutOfFrames);
    }
    let mut line = LineSink(Some(Line::new()));
    r.describe(&mut line);
    if let Some(l) = line.0 {
        l.print();
    }
    if r.outcome() == Outcome::Crash {
        crate::xen::crash();
    }
}

fn call_paging() -> mmu_calls::Paging {
    mmu_calls::Paging {
        enabled: runtime().paging.enabled,
    }
}

/// The four entry calls' common frame: the shadows' host, the calls'
/// state and paging as they see them, the verdict printed.
fn entry_call(
    call: impl FnOnce(
        &mut ShadowCache,
        &mut RomHost<'_>,
        &mut CallState,
        mmu_calls::Paging,
    ) -> Result<(), Rejection>,
) {
    activate();
    let (cache, mut host) = heap().split();
    let calls = &mut runtime().paging.calls;
    finish(call(cache, &mut host, calls, call_paging()));
}

/// SetPxE(pte, ptep, flags): a 32-bit store (in a PAE table, one half of
/// an entry).
pub extern "C" fn set_pxe(pte: u32, ptep: u32, _flags: u32) {
    entry_call(|c, h, s, p| mmu_calls::set_pxe(c, h, s, p, pte, ptep));
}

/// SetPxELong(pte low, pte high, ptep, flags): the entry stub passes the
/// kernel's EAX in ECX, its EDX as it is and its ECX on the stack, and
/// leaves the flags on the caller's stack (unused, `entry.rs`): two moves
/// instead of the three pushes and the pop of a C call, and as measured
/// the register allocation the lazy update likes best.
pub extern "fastcall" fn set_pxe_long(lo: u32, hi: u32, ptep: u32) {
    let value = (u64::from(hi) << 32) | u64::from(lo);
    entry_call(|c, h, s, p| mmu_calls::set_pxe_long(c, h, s, p, value, ptep));
}

/// UpdatePxE(ptep, flags): the kernel wrote the entry itself.
pub extern "C" fn update_pxe(ptep: u32, _flags: u32) {
    entry_call(|c, h, s, p| mmu_calls::update_pxe(c, h, s, p, ptep, false));
}

/// UpdatePxELong(ptep, flags): the flags are unused (the entry stub
/// passes the address alone, in ECX).
pub extern "fastcall" fn update_pxe_long(ptep: u32) {
    entry_call(|c, h, s, p| mmu_calls::update_pxe(c, h, s, p, ptep, true));
}

/// SetPxELong's one-step path (`mmu_calls::fault_entry_update`) where
/// its path in assembly (entry.rs) declines: the entry stub calls it
/// outside lazy mode with ECX the entry's address and
/// EDX pointing at the new value's two halves (low, high: the stub's own
/// pushes of the kernel's EDX, then EAX), before the general call. True:
/// done.
pub extern "fastcall" fn set_pxe_long_after_fault(ptep: u32, value: &[u32; 2]) -> bool {
    let value = (u64::from(value[1]) << 32) | u64::from(value[0]);
    fault_entry_update(ptep, Some(value))
}

/// UpdatePxELong's one-step path, as [`set_pxe_long_after_fault`] (ECX
/// the entry's address).
pub extern "fastcall" fn update_pxe_long_after_fault(ptep: u32) -> bool {
    fault_entry_update(ptep, None)
}

/// Xen refused the `update_va_mapping` of SetPxELong's or UpdatePxELong's
/// path in assembly (entry.rs, `quick_update_write`; ECX Xen's answer):
/// reported as `MmuBatch::write_mapped_idle` reports it
/// (`mapped_write_refused`, then the crash of `mmu::refused`), with the
/// write's machine address, value and tag worked out again as the Rust
/// path's `fault_entry_write_settled` does. Nothing the assembly read has
/// changed since: the entry's frame is the page memo's, its index the
/// fault's address's (the assembly compared the two; the address is
/// still kept, the assembly takes it only after Xen's success), its value
/// (SetPxELong's stored by then) is read again through the view, and the
/// fault path is kept.
#[cold]
#[inline(never)]
#[cfg_attr(feature = "image", optimize(size))]
pub extern "fastcall" fn update_pxe_long_quick_refused(result: i32) -> ! {
    let kfn = runtime().paging.calls.fault_linear.1;
    let (cache, mut host) = crate::mmu::built_heap().split();
    let va = cache.take_fault_va().unwrap_or(0);
    let index = (va >> 12) & 511;
    let entry = host.read(kfn, index as usize).unwrap_or(0);
    let value = xen_vmi_rom::shadow_entry::l1_value_settled(entry, crate::mmu::k2m, |f| {
        crate::mmu::is_rom_frame(f)
    })
    .unwrap_or(0);
    let w = cache.fault_path_write_settled(va, kfn, index as u16, entry, value);
    match host.batch.mapped_write_refused(
        w.entry_maddr,
        w.value,
        w.tag,
        result,
        &mut crate::mmu::XenTarget,
    ) {
        Err(f) => crate::mmu::refused(f),
        Ok(()) => crate::xen::crash(),
    }
}

/// The kernel's update of the entry of the page fault it was just given,
/// in one step, or false with nothing observable done (the general call
/// follows and does everything, the activation and `last_fix` included).
/// The call's frame as `entry_call` makes it, for a kernel already
/// activated (the general call activates) with no context switch held
/// (`heap` would queue it first: the general call does), with
/// [`FaultHost`] for host. The entry stub has seen the heap built.
#[inline(always)]
fn fault_entry_update(ptep: u32, store: Option<u64>) -> bool {
    let p = &runtime().paging;
    if !p.activated || p.held.held {
        return false;
    }
    let cache = &mut crate::mmu::built_heap().cache;
    let paging = call_paging();
    let calls = &mut runtime().paging.calls;
    let done = mmu_calls::fault_entry_update(cache, &mut FaultHost, calls, paging, ptep, store);
    if done {
        // As `activate` at every call: a fix repeated with a call in
        // between is progress, not a loop (one store, as the path in
        // assembly does it).
        forget_last_fix(&mut runtime().paging);
    }
    done
}

/// The one-step path's host: the ROM's (`RomHost`), made afresh by each
/// method instead of once before the call. Its parts are the heap's, at
/// fixed addresses: in a method inline, the `RomHost` folds away, and one
/// that goes out of line (a view missed, a refused entry's note) builds it
/// on its own way only. Made once, the five words stood on the stack at
/// every fault's update.
struct FaultHost;

impl FaultHost {
    #[inline(always)]
    fn rom(&mut self) -> RomHost<'_> {
        let heap = crate::mmu::built_heap_parts();
        RomHost {
            batch: heap.batch,
            views: heap.views,
            notes: heap.notes,
            hole_mfn: heap.hole_mfn,
            activated: runtime().paging.activated,
        }
    }
}

impl xen_vmi_rom::shadow_cache::Host for FaultHost {
    #[inline(always)]
    fn guest_entry(&mut self, kfn: u32, index: usize) -> u64 {
        self.rom().guest_entry(kfn, index)
    }

    #[inline(always)]
    fn guest_entries(&mut self, kfn: u32, first: usize, out: &mut [u64]) {
        self.rom().guest_entries(kfn, first, out)
    }

    #[inline(always)]
    fn root_pdpt(&mut self, kfn: u32, first: usize, hint: &mut u16) -> Option<[u64; 4]> {
        self.rom().root_pdpt(kfn, first, hint)
    }

    #[inline(always)]
    fn fault_entry(&mut self, kfn: u32, index: usize, hint: &mut u16) -> u64 {
        self.rom().fault_entry(kfn, index, hint)
    }

    #[inline(always)]
    fn set_guest_bits(&mut self, kfn: u32, index: usize, bits: u64) {
        self.rom().set_guest_bits(kfn, index, bits)
    }

    #[inline(always)]
    fn machine_frame(&self, kfn: u64) -> Option<u64> {
        k2m(kfn)
    }

    #[inline(always)]
    fn read_only_frame(&self, kfn: u64) -> bool {
        crate::mmu::is_rom_frame(kfn)
    }

    #[inline(always)]
    fn hole_frame(&self) -> u64 {
        u64::from(crate::mmu::built_heap_parts().hole_mfn)
    }

    #[inline(always)]
    fn take_frame(&mut self) -> Option<u32> {
        self.rom().take_frame()
    }

    #[inline(always)]
    fn give_frame(&mut self, mfn: u32) {
        self.rom().give_frame(mfn)
    }

    #[inline(always)]
    fn push(&mut self, op: Op, tag: Tag) {
        self.rom().push(op, tag)
    }

    #[inline(always)]
    fn push_pte_write(&mut self, maddr: u64, value: u64, tag: Tag) {
        self.rom().push_pte_write(maddr, value, tag)
    }

    #[inline(always)]
    fn note(&mut self, note: xen_vmi_rom::shadow_cache::Note) {
        self.rom().note(note)
    }

    fn scratch_frame(&self) -> u32 {
        crate::mmu::scratch_mfn()
    }

    fn scratch_store(&mut self, index: usize, value: u64) {
        crate::mmu::scratch_store(index, value);
    }

    fn flush_count(&self) -> u32 {
        crate::mmu::queue_flushes(crate::mmu::built_heap_parts().batch)
    }
}

impl CallHost for FaultHost {
    #[inline(always)]
    fn read_entry(&mut self, kfn: u32, index: usize) -> Option<u64> {
        self.rom().read(kfn, index)
    }

    #[inline(always)]
    fn store_entry(&mut self, kfn: u32, offset: u32, value: u64, long: bool) -> bool {
        // `RomHost::write` inline (the way through the trait is left out
        // of line here).
        self.rom().write(kfn, offset, value, long)
    }

    #[inline(always)]
    fn prefetch(&mut self, kfn: u32) {
        CallHost::prefetch(&mut self.rom(), kfn)
    }

    #[inline(always)]
    fn shadow_entry(&mut self, mfn: u32, index: usize) -> u64 {
        CallHost::shadow_entry(&mut self.rom(), mfn, index)
    }

    #[inline(always)]
    fn barrier(&mut self, reason: Barrier) {
        self.rom().barrier(reason)
    }

    #[inline(always)]
    fn end_of_call(&mut self) {
        self.rom().end_of_call()
    }

    #[inline(always)]
    fn end_of_call_mapped(&mut self, va: u32, entry_maddr: u64) {
        self.rom().end_of_call_mapped(va, entry_maddr)
    }

    #[inline(always)]
    fn queue_is_lazy(&self) -> bool {
        crate::mmu::built_heap_parts().batch.is_lazy()
    }

    #[inline(always)]
    fn mapped_write_ready(&self) -> bool {
        crate::mmu::built_heap_parts().batch.is_idle()
    }

    #[inline(always)]
    fn write_mapped(&mut self, w: xen_vmi_rom::shadow_cache::MappedWrite) {
        self.rom().write_mapped(w)
    }

    #[inline(always)]
    fn enter_lazy(&mut self) {
        self.rom().enter_lazy()
    }

    #[inline(always)]
    fn leave_lazy(&mut self) {
        self.rom().leave_lazy()
    }
}

/// AllocatePage(pfn, flags, clone pfn, start, count).
pub extern "C" fn allocate_page(pfn: u32, flags: u32, clone_pfn: u32, start: u32, count: u32) {
    activate();
    let (cache, mut host) = heap().split();
    finish(mmu_calls::allocate_page(
        cache, &mut host, pfn, flags, clone_pfn, start, count,
    ));
}

/// ReleasePage(pfn, flags).
pub extern "C" fn release_page(pfn: u32, flags: u32) {
    activate();
    let (cache, mut host) = heap().split();
    finish(mmu_calls::release_page(cache, &mut host, pfn, flags));
}

/// SetLinearMapping(slot, va, pages, pfn).
#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn set_linear_mapping(slot: u32, va: u32, pages: u32, pfn: u32) {
    activate();
    finish(mmu_calls::set_linear_mapping(
        &mut runtime().paging.calls,
        slot,
        va,
        pages,
        pfn,
    ));
}

/// SetLazyMode(mode). A context switch's pair (CPU from NONE, then NONE
/// from CPU), with the shadows cached, is what `mmu_calls::set_lazy_mode`
/// does for these two valid changes (no flush entering, the batch out
/// leaving), with fewer checks on the way. Entering is a few stores, here
/// with no frame of its own; the rest is out of line.
pub extern "fastcall" fn set_lazy_mode(mode: u32) {
    use vmi_abi::flags::LazyMode;
    let p = &mut runtime().paging;
    if p.activated
        && p.heap_ready
        && p.calls.lazy == LazyMode::None
        && mode == vmi_abi::flags::VMI_LAZY_CPU
    {
        forget_last_fix(p);
        p.calls.lazy = LazyMode::Cpu;
        // No switch is held outside lazy CPU mode (SetLazyMode(NONE) and
        // `mmu::heap` take it out), so nothing to queue first.
        debug_assert!(!p.held.held);
        crate::mmu::built_heap().batch.enter_lazy();
        return;
    }
    if p.activated
        && p.heap_ready
        && p.calls.lazy == LazyMode::Cpu
        && mode == vmi_abi::flags::VMI_LAZY_NONE
    {
        leave_lazy_cpu_mode();
        return;
    }
    if p.activated && p.heap_ready {
        set_lazy_mmu_mode(mode);
        return;
    }
    set_lazy_mode_general(mode);
}

/// SetLazyMode once activated with the shadows cached, other than a
/// context switch's pair: a batch of page-table updates (MMU from NONE:
/// the queue goes lazy; NONE from MMU: it goes out, as
/// `mmu_calls::set_lazy_mode` does for these two valid changes, with
/// nothing held outside lazy CPU mode), the rest by the general call.
#[inline(never)]
fn set_lazy_mmu_mode(mode: u32) {
    use vmi_abi::flags::LazyMode;
    let p = &mut runtime().paging;
    match (p.calls.lazy, mode) {
        (LazyMode::None, vmi_abi::flags::VMI_LAZY_MMU) => {
            forget_last_fix(p);
            p.calls.lazy = LazyMode::Mmu;
            debug_assert!(!p.held.held);
            crate::mmu::built_heap().batch.enter_lazy();
        }
        (LazyMode::Mmu, vmi_abi::flags::VMI_LAZY_NONE) => {
            forget_last_fix(p);
            p.calls.lazy = LazyMode::None;
            debug_assert!(!p.held.held);
            leave_lazy_queue();
        }
        _ => set_lazy_mode_general(mode),
    }
}

/// SetLazyMode(NONE) from lazy CPU mode, with the shadows cached.
#[inline(never)]
fn leave_lazy_cpu_mode() {
    use vmi_abi::flags::LazyMode;
    let p = &mut runtime().paging;
    forget_last_fix(p);
    p.calls.lazy = LazyMode::None;
    // Taken out before `heap()`, which would queue it; a base switch
    // without its stack switch goes in as pushed.
    match p.held.stack {
        Some(stack) if p.held.held => {
            p.held.held = false;
            let issued = crate::mmu::built_heap().batch.leave_lazy_switching(
                MmuextOp::new_baseptr(Mfn(p.held.base.0)),
                stack,
                held_switch_tags,
                &mut crate::mmu::XenTarget,
            );
            if let Err(f) = issued {
                crate::mmu::refused(f);
            }
        }
        _ => leave_lazy_queue(),
    }
}

/// The tags of the switch just taken out of `HeldSwitch` (still there,
/// no longer held): asked for only if Xen refused part of it.
#[cold]
#[inline(never)]
fn held_switch_tags() -> (Tag, Tag) {
    let held = &runtime().paging.held;
    let (l3, cr3) = held.base;
    let (ss, esp0) = held.stack.unwrap_or_default();
    (new_base_op(l3, cr3).1, stack_switch_op(ss, esp0).1)
}

/// SetLazyMode(NONE) from CPU with no switch held whole, or from MMU:
/// the queue (with a held base switch pushed first, `mmu::heap`) goes out.
#[inline(never)]
fn leave_lazy_queue() {
    if let Err(f) = heap().batch.leave_lazy(&mut crate::mmu::XenTarget) {
        crate::mmu::refused(f);
    }
}

/// SetLazyMode when it is neither of a context switch's pair.
#[inline(never)]
fn set_lazy_mode_general(mode: u32) {
    activate();
    let (_, mut host) = heap().split();
    finish(mmu_calls::set_lazy_mode(
        &mut runtime().paging.calls,
        &mut host,
        mode,
    ));
}

/// PhysicalToMachine(pfn): the machine frame behind a kernel frame
/// (0xFFFFFFFF if it is not the kernel's).
pub extern "C" fn physical_to_machine(pfn: u32) -> u32 {
    k2m(u64::from(pfn)).map_or(u32::MAX, |m| m as u32)
}

/// MachineToPhysical(mfn): the kernel frame a machine frame holds, from
/// Xen's machine-to-physical table (which the loader set to the kernel's
/// numbering); 0xFFFFFFFF for a frame that is not the kernel's.
#[cfg_attr(feature = "image", optimize(size))]
pub extern "C" fn machine_to_physical(mfn: u32) -> u32 {
    let p = &mut runtime().paging;
    if p.m2p.0 == 0 {
        // Xen places a 32-bit guest's M2P at the top of its hole, as large
        // as the machine's memory needs (XENMEM_machphys_mapping says where).
        use xen_abi::hypercall::Hypervisor;
        match crate::xen::hypervisor().machphys_mapping() {
            Ok(m) => p.m2p = (m.v_start, m.max_mfn),
            Err(_) => return u32::MAX,
        }
    }
    let (start, max_mfn) = p.m2p;
    if mfn > max_mfn || start < HYPERVISOR_VIRT_START {
        return u32::MAX;
    }
    // SAFETY: Xen maps the read-only M2P from `start` for every machine
    // frame up to `max_mfn`, in every address space of a PV guest.
    let pfn = unsafe { ((start as *const u32).add(mfn as usize)).read_volatile() };
    if k2m(u64::from(pfn)) == Some(u64::from(mfn)) {
        pfn
    } else {
        u32::MAX
    }
}
