//! The kernel's paging on Xen, first version: the shadow is rebuilt from
//! the kernel's tables whenever the processor would drop its TLB (a CR3
//! load, FlushTLB, InvalPage, paging switched on). That is exact under the
//! x86 TLB rules a kernel already obeys (a changed entry need not be seen
//! before the flush), and simple; the cached, per-entry version of
//! docs/page-tables.md replaces the rebuild with the VMI notifications.
//!
//! Shadow frames come from the ROM's pool, are filled with mmu_update while
//! they are still ordinary pages, then pinned as a PAE root (Xen validates
//! them) and loaded with MMUEXT_NEW_BASEPTR; the previous shadow is then
//! unpinned and its frames go back to the pool.

use xen_abi::hypercall::Hypervisor;
use xen_abi::p2m::Mfn;
use xen_abi::xen::{MmuUpdate, MmuextOp, DOMID_SELF, UVMF_INVLPG};
use xen_vmi_rom::layout::{
    rom_area_l2_slots, HIGH_RAM_START, K2M_VA, LOW_RAM_END, PAE_TOP_L3_SLOT, WINDOW_VA,
};
use xen_vmi_rom::shadow_entry::{shadow, Level, ACCESSED, DIRTY, PRESENT, RW};

use crate::console::Line;
use crate::runtime::{pool_give, pool_take, rom_state, runtime};
use crate::xen::hypervisor;

/// Shadow frames one address space may use.
const MAX_FRAMES: usize = 512;

#[derive(Clone)]
pub struct Paging {
    /// The kernel's CR3 (the PDPT's kernel-physical address).
    pub cr3: u32,
    /// Whether the kernel has paging on (CR0.PG).
    pub enabled: bool,
    /// Frames of the shadow in use, the L3 first (0 entries: none).
    frames: [u32; MAX_FRAMES],
    count: usize,
    /// The fault (address, EIP) the last fault-driven rebuild was for.
    last_fill: (u32, u32),
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            cr3: 0,
            enabled: false,
            frames: [0; MAX_FRAMES],
            count: 0,
            last_fill: (0, 0),
        }
    }
}

/// The machine frame of kernel frame `kfn`, if it is the kernel's.
fn k2m(kfn: u64) -> Option<u64> {
    let limit = u64::from(rom_state().kernel_frame_limit);
    if kfn >= limit {
        return None;
    }
    // SAFETY: the k2m table at K2M_VA has kernel_frame_limit entries.
    let m = unsafe { core::ptr::read_volatile((K2M_VA as *const u32).add(kfn as usize)) };
    (m != u32::MAX).then_some(u64::from(m))
}

/// Maps kernel frame `kfn` at window `slot` and returns its entries there
/// (the tables are read in place: the ROM runs on the kernel's stack, which
/// has no room for copies). Writable: the ROM sets A and D in them.
fn window(slot: u32, kfn: u64) -> Option<&'static mut [u64; 512]> {
    // A table in the ROM's own frames is not a table the kernel may have.
    if is_rom_frame(kfn) {
        return None;
    }
    let mfn = k2m(kfn)?;
    let va = WINDOW_VA + slot * 4096;
    // SAFETY: the window slots are the ROM's own.
    unsafe {
        hypervisor().update_va_mapping(
            va,
            (mfn << 12) | PRESENT | RW | ACCESSED | DIRTY,
            UVMF_INVLPG,
        )
    }
    .ok()?;
    // SAFETY: the slot now maps the frame until it is remapped; the kernel
    // is inside a ROM call and touches nothing meanwhile (one vCPU).
    Some(unsafe { &mut *(va as *mut [u64; 512]) })
}

/// Entries for one fresh shadow frame, sent 32 per mmu_update.
struct Batch {
    mfn: u32,
    items: [MmuUpdate; 32],
    n: usize,
    ok: bool,
}

impl Batch {
    fn new(mfn: u32) -> Self {
        Self {
            mfn,
            items: [MmuUpdate::default(); 32],
            n: 0,
            ok: true,
        }
    }

    fn put(&mut self, index: usize, value: u64) {
        if value == 0 {
            return;
        }
        self.items[self.n] =
            MmuUpdate::normal_pt_update((u64::from(self.mfn) << 12) + index as u64 * 8, value);
        self.n += 1;
        if self.n == self.items.len() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.n > 0 {
            // SAFETY: the frame is a fresh pool frame, not a table yet.
            self.ok &=
                unsafe { hypervisor().mmu_update(&self.items[..self.n], u32::from(DOMID_SELF)) }
                    .is_ok();
            self.n = 0;
        }
    }

    fn finish(mut self) -> bool {
        self.flush();
        self.ok
    }
}

fn fresh_frame(new: &mut Paging) -> Option<u32> {
    if new.count == MAX_FRAMES {
        return None;
    }
    let mfn = pool_take()?;
    // SAFETY: clearing a pool frame nothing maps.
    unsafe { hypervisor().mmuext_op(&[MmuextOp::clear_page(Mfn(mfn))], u32::from(DOMID_SELF)) }
        .ok()?;
    new.frames[new.count] = mfn;
    new.count += 1;
    Some(mfn)
}

/// A frame of the PC's reserved area (0x9F000-0xFFFFF): the ROM, and the
/// empty bus around it, which the loader backs with one shared frame of
/// all-ones (docs/boot-contract.md). Read-only to the kernel, and never
/// one of its page tables.
fn is_rom_frame(kfn: u64) -> bool {
    (u64::from(LOW_RAM_END >> 12)..u64::from(HIGH_RAM_START >> 12)).contains(&kfn)
}

/// The shadow of the kernel's L1 table in frame `kfn`: a new frame.
fn shadow_l1(new: &mut Paging, kfn: u64) -> Option<u32> {
    let guest = window(2, kfn)?;
    let mfn = fresh_frame(new)?;
    let mut batch = Batch::new(mfn);
    for (i, g) in guest.iter_mut().enumerate() {
        let frame = (*g & xen_vmi_rom::shadow_entry::FRAME) >> 12;
        // Until the dirty-bit fault path exists, a writable page is mapped
        // writable at once and its entry marked dirty now: the kernel may
        // see D early (an extra writeback), never miss it (lost data).
        if *g & PRESENT != 0 {
            *g |= if *g & RW != 0 {
                DIRTY | ACCESSED
            } else {
                ACCESSED
            };
        }
        if let Ok(s) = shadow(*g, Level::L1, k2m) {
            // The ROM is read-only hardware to the kernel.
            batch.put(
                i,
                if is_rom_frame(frame) {
                    s.value & !RW
                } else {
                    s.value
                },
            );
        }
    }
    batch.finish().then_some(mfn)
}

/// Builds the shadow of the kernel's current tables and switches to it.
/// The new shadow is built in the run-time state's second slot (the
/// kernel's stack is small), then the two slots are swapped.
pub fn rebuild() -> bool {
    let rt = runtime();
    let cr3 = rt.paging.cr3;
    rt.paging_next.cr3 = cr3;
    rt.paging_next.enabled = true;
    rt.paging_next.count = 0;
    let ok = build(&mut rt.paging_next, cr3);
    if !ok {
        // Going on with the old shadow would keep mappings the kernel has
        // removed: a clean crash, with the figures that explain it.
        let st = rom_state();
        Line::new()
            .text(b"xen-vmi-rom: cannot shadow the kernel's page tables at CR3 ")
            .hex(cr3)
            .text(b": a table outside its memory, more than ")
            .dec(MAX_FRAMES as u32)
            .text(b" shadow frames, or the pool empty (")
            .dec(st.pool_free - st.pool_next)
            .text(b" of ")
            .dec(st.pool_free)
            .text(b" frames left)")
            .print();
        crate::xen::crash();
    }
    let mut xen = hypervisor();
    let l3 = Mfn(rt.paging_next.frames[0]);
    // SAFETY: pinning validates the new shadow; switching to it keeps the
    // ROM area (linked into its top L2) and maps what the kernel's tables do.
    let switched = unsafe {
        xen.mmuext_op(
            &[MmuextOp::pin_l3_table(l3), MmuextOp::new_baseptr(l3)],
            u32::from(DOMID_SELF),
        )
    };
    if switched.is_err() {
        Line::new()
            .text(b"xen-vmi-rom: Xen refused the shadow of the kernel's tables at CR3 ")
            .hex(cr3)
            .print();
        crate::xen::crash();
    }
    core::mem::swap(&mut rt.paging, &mut rt.paging_next);
    retire(&mut rt.paging_next);
    true
}

/// Unpins a shadow that is no longer the base and returns its frames.
fn retire(old: &mut Paging) {
    if old.count > 0 {
        // SAFETY: the old shadow is no longer the base; unpinning frees it.
        let _ = unsafe {
            hypervisor().mmuext_op(
                &[MmuextOp::unpin_table(Mfn(old.frames[0]))],
                u32::from(DOMID_SELF),
            )
        };
        release(old);
    }
}

fn release(p: &mut Paging) {
    for &mfn in p.frames[..p.count].iter().rev() {
        pool_give(mfn);
    }
    p.count = 0;
}

fn build(new: &mut Paging, cr3: u32) -> bool {
    let Some(l3) = fresh_frame(new) else {
        return false;
    };
    // The PDPT: 4 entries at CR3 (32-byte aligned) in a kernel frame.
    let Some(page) = window(0, u64::from(cr3 >> 12)) else {
        return false;
    };
    let off = ((cr3 & 0xFE0) / 8) as usize;
    let pdpt = [page[off], page[off + 1], page[off + 2], page[off + 3]];
    let mut l3_batch = Batch::new(l3);
    for (slot, &pdpte) in pdpt.iter().enumerate() {
        let top = slot as u32 == PAE_TOP_L3_SLOT;
        if pdpte & PRESENT == 0 && !top {
            continue;
        }
        let Some(l2) = fresh_frame(new) else {
            return false;
        };
        let mut l2_batch = Batch::new(l2);
        if pdpte & PRESENT != 0 {
            let Some(guest_l2) = window(1, (pdpte & xen_vmi_rom::shadow_entry::FRAME) >> 12) else {
                return false;
            };
            for (i, &pde) in guest_l2.iter().enumerate() {
                // The ROM's area and Xen's hole are not the kernel's.
                if top && i as u32 >= rom_area_l2_slots().start {
                    break;
                }
                if pde & PRESENT == 0 {
                    continue;
                }
                let Some(l1) = shadow_l1(new, (pde & xen_vmi_rom::shadow_entry::FRAME) >> 12)
                else {
                    return false;
                };
                if let Ok(s) = shadow(pde, Level::L2, |_| Some(u64::from(l1))) {
                    l2_batch.put(i, s.value);
                }
            }
        }
        if top {
            let st = rom_state();
            for (slot, mfn) in rom_area_l2_slots().zip(st.rom_area_l1_mfns) {
                l2_batch.put(
                    slot as usize,
                    (u64::from(mfn) << 12) | PRESENT | RW | ACCESSED,
                );
            }
        }
        if !l2_batch.finish() {
            return false;
        }
        l3_batch.put(slot, (u64::from(l2) << 12) | PRESENT);
    }
    l3_batch.finish()
}

/// SetCR3: a new address space; with paging on, the shadow follows.
pub extern "C" fn set_cr3(value: u32) {
    runtime().paging.cr3 = value;
    if runtime().paging.enabled {
        rebuild();
    }
}

pub extern "C" fn get_cr3() -> u32 {
    runtime().paging.cr3
}

/// CR0.PG from SetCR0: on, the kernel's tables (shadowed); off, back to the
/// "paging off" space the loader built.
pub fn set_paging(on: bool) {
    let rt = runtime();
    if on == rt.paging.enabled {
        return;
    }
    if on {
        rt.paging.enabled = true;
        if !rebuild() {
            rt.paging.enabled = false;
        }
    } else {
        let boot = Mfn(rom_state().boot_l3_mfn);
        // SAFETY: the loader's root stays pinned; it maps the ROM area too.
        let _ = unsafe {
            hypervisor().mmuext_op(&[MmuextOp::new_baseptr(boot)], u32::from(DOMID_SELF))
        };
        rt.paging.enabled = false;
        retire(&mut rt.paging);
    }
}

/// FlushTLB / InvalPage: whatever the kernel changed in its tables is seen
/// from now on.
pub extern "C" fn flush_tlb(_flags: u32) {
    if runtime().paging.enabled {
        rebuild();
    }
}

pub extern "C" fn inval_page(_va: u32) {
    flush_tlb(0);
}

/// A page fault with paging on: if the kernel's own tables allow the access
/// (a mapping it made since the last flush: the processor caches no
/// not-present entry, so a kernel need not flush before using it), bring the
/// shadow up to date and let the instruction run again. Otherwise the fault
/// is the kernel's.
pub fn page_fault(cr2: u32, error_code: u32, eip: u32) -> bool {
    let rt = runtime();
    if !rt.paging.enabled {
        return paging_turned_on_natively(cr2, error_code);
    }
    if !guest_allows(rt.paging.cr3, cr2, error_code) {
        return false;
    }
    // The same fault again right after a rebuild: the shadow cannot give
    // this access (it is the kernel's to handle), never loop.
    if rt.paging.last_fill == (cr2, eip) {
        rt.paging.last_fill = (0, 0);
        return false;
    }
    let ok = rebuild();
    runtime().paging.last_fill = (cr2, eip);
    ok
}

/// CR0.PG, set by a native `mov %cr0` before VMI activation (Linux's
/// head_32.S: `movl %cr0,%eax; orl $X86_CR0_PG,%eax; movl %eax,%cr0`),
/// never reaches the ROM: a ring-1 read of CR0 is Xen's to answer, with its
/// own CR0 where PG is always set, so the write back changes nothing Xen
/// checks and Xen takes it (emul-priv-op.c `write_cr`). The CR3 load before
/// it did reach the ROM (Xen refuses a kernel-physical CR3). The first
/// sign is then a page fault in the "paging off" space at an address the
/// kernel's tables map (its far jump to its own virtual addresses): the
/// kernel has turned paging on. The ROM switches to the kernel's tables and
/// takes CR0.PG (and CR4.PAE, which a ring-1 write of CR4 does not reach it
/// either, and without which no table it shadows would be valid) into its
/// view of the registers (docs/early-boot.md). Only before activation: a
/// VMI kernel turns paging on with SetCR0.
fn paging_turned_on_natively(cr2: u32, error_code: u32) -> bool {
    let rt = runtime();
    if rom_state().vmi_init_calls != 0 || rt.paging.cr3 == 0 {
        return false;
    }
    if !guest_allows(rt.paging.cr3, cr2, error_code) {
        return false;
    }
    Line::new()
        .text(b"xen-vmi-rom: the kernel turned paging on natively (CR0.PG through Xen): its tables at CR3 ")
        .hex(rt.paging.cr3)
        .text(b" from the fault at ")
        .hex(cr2)
        .print();
    rt.cr.cr0 |= 1 << 31;
    rt.cr.cr4 |= 1 << 5;
    set_paging(true);
    runtime().paging.enabled
}

/// Walks the kernel's tables for `va` and checks the access `error_code`
/// describes (bit 1 write, bit 2 user, bit 4 instruction fetch).
fn guest_allows(cr3: u32, va: u32, error_code: u32) -> bool {
    let frame = |e: u64| (e & xen_vmi_rom::shadow_entry::FRAME) >> 12;
    let Some(page) = window(0, u64::from(cr3 >> 12)) else {
        return false;
    };
    let pdpte = page[((cr3 & 0xFE0) / 8) as usize + (va >> 30) as usize];
    if pdpte & PRESENT == 0 {
        return false;
    }
    let Some(l2) = window(1, frame(pdpte)) else {
        return false;
    };
    let pde = l2[((va >> 21) & 511) as usize];
    if pde & PRESENT == 0 || pde & xen_vmi_rom::shadow_entry::PAT_OR_PSE != 0 {
        return false;
    }
    let Some(l1) = window(2, frame(pde)) else {
        return false;
    };
    let pte = l1[((va >> 12) & 511) as usize];
    let rights = pde & pte;
    let write = error_code & 2 != 0;
    let user = error_code & 4 != 0;
    let fetch = error_code & 16 != 0;
    let kfn = frame(pte);
    pte & PRESENT != 0
        && k2m(kfn).is_some()
        && !(write && is_rom_frame(kfn))
        && (!write || rights & RW != 0)
        && (!user || rights & xen_vmi_rom::shadow_entry::USER != 0)
        && (!fetch || (pde | pte) & xen_vmi_rom::shadow_entry::NX == 0)
}
