//! Hypercalls, counted, and the XenLinux-style batch.
//!
//! Every hypercall goes through the hypercall page Xen's builder filled
//! (XEN_ELFNOTE_HYPERCALL_PAGE) and is counted, a multicall as one, as the
//! VMI ROM counts its own: the two Xen flavours of the scoreboard report
//! hypercalls per operation the same way.
//!
//! The batch is the per-CPU multicall buffer of Linux's Xen support
//! (`arch/x86/xen/multicalls.c`): in a lazy mode, page-table updates,
//! MMU extended operations, `update_va_mapping` and `stack_switch` are
//! queued in order; consecutive `mmu_update` (or `mmuext_op`) requests
//! extend the same multicall entry; at the end of the lazy mode (or when
//! a buffer fills) the queue goes to Xen as one hypercall: the entry
//! itself if there is only one, else one `HYPERVISOR_multicall`. Outside
//! a lazy mode each operation is flushed at once, the same way.

use core::sync::atomic::{AtomicU32, Ordering};

use xen_abi::hypercall::{HypercallPage, IretFrame, Lowering, RawHypercall};
use xen_abi::xen::{
    __HYPERVISOR_mmu_update, __HYPERVISOR_mmuext_op, __HYPERVISOR_multicall,
    __HYPERVISOR_stack_switch, __HYPERVISOR_update_va_mapping, MmuUpdate, MmuextOp, MulticallEntry,
    DOMID_SELF,
};

use bench_core::sync::Global;

extern "C" {
    /// Defined by the linker script: the page the builder fills.
    static hypercall_page: u8;
}

static HYPERCALLS: AtomicU32 = AtomicU32::new(0);

/// Hypercalls issued so far (a multicall counts as one).
pub fn hypercall_count() -> u32 {
    HYPERCALLS.load(Ordering::Relaxed)
}

/// The hypercall page, every call counted.
#[derive(Debug)]
pub struct CountedPage(HypercallPage);

impl CountedPage {
    fn new() -> Self {
        // SAFETY: the linker places the hypercall page in the image and the
        // ELF note has Xen's builder fill exactly that page; never unmapped.
        CountedPage(unsafe { HypercallPage::new(&raw const hypercall_page as usize) })
    }
}

impl RawHypercall for CountedPage {
    fn guest_addr(&mut self, ptr: *const u8) -> u32 {
        self.0.guest_addr(ptr)
    }

    unsafe fn raw_hypercall(&mut self, op: u32, args: [u32; 5]) -> isize {
        HYPERCALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the same as ours.
        unsafe { self.0.raw_hypercall(op, args) }
    }

    unsafe fn raw_iret(&mut self, frame: *mut IretFrame) -> ! {
        HYPERCALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the same as ours.
        unsafe { self.0.raw_iret(frame) }
    }
}

/// The typed hypercalls of xen-abi over the counted page (set-up calls).
pub fn hypervisor() -> Lowering<'static, CountedPage> {
    Lowering::new(CountedPage::new())
}

/// One raw hypercall (counted).
///
/// # Safety
/// The arguments must be valid for hypercall `op` (guest addresses
/// pointing at what Xen reads or writes).
pub unsafe fn hypercall(op: u32, args: [u32; 5]) -> isize {
    // SAFETY: per the caller.
    unsafe { CountedPage::new().raw_hypercall(op, args) }
}

/// Multicall entries one flush can carry.
const ENTRIES: usize = 64;
/// `mmu_update` requests one flush can carry (16 KiB): a lazy section of
/// 1,000 updates goes as one request list.
const MMU_REQUESTS: usize = 1024;
/// `mmuext_op` requests one flush can carry.
const EXT_REQUESTS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Other,
    Mmu,
    Ext,
}

struct Batch {
    entries: [MulticallEntry; ENTRIES],
    count: usize,
    mmu: [MmuUpdate; MMU_REQUESTS],
    mmu_count: usize,
    ext: [MmuextOp; EXT_REQUESTS],
    ext_count: usize,
    last: Last,
    /// In a lazy mode: flush only at its end (or when full).
    lazy: bool,
}

const NO_ENTRY: MulticallEntry = MulticallEntry {
    op: 0,
    result: 0,
    args: [0; 6],
};

static BATCH: Global<Batch> = Global::new(Batch {
    entries: [NO_ENTRY; ENTRIES],
    count: 0,
    mmu: [MmuUpdate {
        ptr: xen_abi::AbiU64::new(0),
        val: xen_abi::AbiU64::new(0),
    }; MMU_REQUESTS],
    mmu_count: 0,
    ext: [MmuextOp {
        cmd: 0,
        arg1: 0,
        arg2: 0,
    }; EXT_REQUESTS],
    ext_count: 0,
    last: Last::Other,
    lazy: false,
});

impl Batch {
    fn full(&self) -> bool {
        self.count == ENTRIES || self.mmu_count == MMU_REQUESTS || self.ext_count == EXT_REQUESTS
    }

    fn push_entry(&mut self, op: u32, args: [u32; 6]) {
        self.entries[self.count] = MulticallEntry {
            op,
            result: 0,
            args,
        };
        self.count += 1;
        self.last = Last::Other;
    }
}

/// Enters or leaves a lazy mode (leaving flushes what was queued).
pub fn set_lazy(lazy: bool) {
    let flush_now = BATCH.with(|b| {
        b.lazy = lazy;
        !lazy
    });
    if flush_now {
        flush();
    }
}

/// Whether a lazy mode is on.
pub fn lazy() -> bool {
    BATCH.with(|b| b.lazy)
}

/// Flushes if not in a lazy mode (after an operation's requests).
pub fn commit() {
    if !lazy() {
        flush();
    }
}

/// Flushes first if there is no room for one more entry and request.
fn make_room() {
    if BATCH.with(|b| b.full()) {
        flush();
    }
}

/// Queues an `mmu_update` request (`ptr` = machine address of the entry).
pub fn mmu_update(ptr: u64, val: u64) {
    make_room();
    BATCH.with(|b| {
        b.mmu[b.mmu_count] = MmuUpdate::normal_pt_update(ptr, val);
        if b.last == Last::Mmu {
            b.entries[b.count - 1].args[1] += 1;
        } else {
            let list = &raw const b.mmu[b.mmu_count] as u32;
            b.push_entry(
                __HYPERVISOR_mmu_update,
                [list, 1, 0, u32::from(DOMID_SELF), 0, 0],
            );
            b.last = Last::Mmu;
        }
        b.mmu_count += 1;
    });
}

/// Queues an `mmuext_op` request.
pub fn mmuext(op: MmuextOp) {
    make_room();
    BATCH.with(|b| {
        b.ext[b.ext_count] = op;
        if b.last == Last::Ext {
            b.entries[b.count - 1].args[1] += 1;
        } else {
            let list = &raw const b.ext[b.ext_count] as u32;
            b.push_entry(
                __HYPERVISOR_mmuext_op,
                [list, 1, 0, u32::from(DOMID_SELF), 0, 0],
            );
            b.last = Last::Ext;
        }
        b.ext_count += 1;
    });
}

/// Queues `update_va_mapping(va, pte, flags)` (the current page tables).
pub fn update_va_mapping(va: u32, pte: u64, flags: u32) {
    make_room();
    BATCH.with(|b| {
        b.push_entry(
            __HYPERVISOR_update_va_mapping,
            [va, pte as u32, (pte >> 32) as u32, flags, 0, 0],
        )
    });
}

/// Queues `stack_switch(ss, esp)`.
pub fn stack_switch(ss: u16, esp: u32) {
    make_room();
    BATCH.with(|b| b.push_entry(__HYPERVISOR_stack_switch, [u32::from(ss), esp, 0, 0, 0, 0]));
}

/// Sends the queue to Xen: one hypercall. A refused request is a bug of
/// this kernel: it says which and crashes the domain.
pub fn flush() {
    let (count, single) = BATCH.with(|b| (b.count, b.entries[0]));
    if count == 0 {
        return;
    }
    let failed = if count == 1 {
        let a = single.args;
        // SAFETY: the entry was built by the queueing functions above: its
        // argument addresses point into BATCH's request arrays, which stay
        // put until the reset below.
        let rc = unsafe { hypercall(single.op, [a[0], a[1], a[2], a[3], a[4]]) };
        (rc < 0).then_some((single.op, rc))
    } else {
        let list = BATCH.with(|b| b.entries.as_ptr() as u32);
        // SAFETY: `count` entries built as above; Xen writes their results.
        let rc = unsafe { hypercall(__HYPERVISOR_multicall, [list, count as u32, 0, 0, 0]) };
        if rc < 0 {
            Some((__HYPERVISOR_multicall, rc))
        } else {
            BATCH.with(|b| {
                b.entries[..count]
                    .iter()
                    .find(|e| (e.result as i32) < 0)
                    .map(|e| (e.op, e.result as i32 as isize))
            })
        }
    };
    BATCH.with(|b| {
        b.count = 0;
        b.mmu_count = 0;
        b.ext_count = 0;
        b.last = Last::Other;
    });
    if let Some((op, rc)) = failed {
        crate::console::fatal(format_args!(
            "pv-bench-guest: Xen refused hypercall {} ({}) of a batch of {count}: error {rc}",
            op,
            xen_abi::xen::hypercall_name(op).unwrap_or("?")
        ));
    }
}
