//! Descriptor tables: the kernel's GDT, IDT, LDT and TSS as the processor
//! would see them, made real on Xen (docs/traps-and-privilege.md).
//!
//! The kernel's GDT stays its own, writable, with the values it wrote. Xen
//! loads a shadow: ROM frames holding a copy of the kernel's descriptors,
//! each checked by Xen (`check_descriptor`, which raises DPL 0 to DPL 1 for
//! a ring-1 kernel) through `update_descriptor`. As on hardware, a change
//! the kernel makes to its table natively takes effect when it loads the
//! table again; after VMI activation WriteGDTEntry keeps both exact.

use xen_abi::arch_x86_32::{TrapInfo, FLAT_RING1_CS};
use xen_abi::arch_x86_32::{_PAGE_ACCESSED, _PAGE_PRESENT};
use xen_abi::hypercall::Hypervisor;
use xen_abi::p2m::Mfn;
use xen_abi::xen::{MmuUpdate, MmuextOp, DOMID_SELF};
pub use xen_vmi_rom::descriptors::Gate;
use xen_vmi_rom::descriptors::{self, for_xen, usable, SegmentUse, SelectorIn};
use xen_vmi_rom::layout::{LDT_SHADOW_VA, ROM_AREA_START};

use crate::console::Line;
use crate::runtime::{pool_take, runtime};
use crate::xen::hypervisor;

/// Shadow GDT frames: 1024 descriptors (Linux's GDT has 32).
pub const GDT_FRAMES: usize = 2;
/// Descriptors the shadow holds.
pub const GDT_MAX_ENTRIES: u32 = (GDT_FRAMES * 512) as u32;

/// The kernel's view of its descriptor-table registers.
#[derive(Clone, Copy, Default)]
pub struct TableRegs {
    pub gdt_base: u32,
    pub gdt_limit: u16,
    pub idt_base: u32,
    pub idt_limit: u16,
    pub tr: u16,
    /// Machine frames of the shadow GDT (0 until first needed).
    pub gdt_mfns: [u32; GDT_FRAMES],
    /// Entries loaded into Xen from the kernel's table.
    pub gdt_loaded: u32,
    /// The LDT selector, and the kernel's LDT (base, entries in Xen's copy).
    pub ldt: u16,
    pub ldt_base: u32,
    pub ldt_loaded: u32,
    /// Machine frame of Xen's copy of the LDT (0 until first needed).
    pub ldt_mfn: u32,
    /// The kernel's #PF gate as the ROM's page-fault path forwards through
    /// it (`page_fault_gate_changed`).
    pub page_fault_gate: ForwardGate,
    /// The known-flat data selectors (`is_flat_data`), each as DS's value
    /// in the low half and ES's in the high half, most recent first:
    /// entries from Xen whose DS and ES hold one of these pairs use them as
    /// they are; any other pair is saved and replaced by SS's selector for
    /// the ROM's work (traps.rs, `data_segments_known_flat`). Only GDT
    /// selectors are learnt, and a change of their descriptor (SetGDT,
    /// WriteGDTEntry of that entry) forgets them all. `NO_FLAT_DATA` when
    /// empty.
    pub flat_data: [u32; 2],
    /// An entry that replaced DS and ES: their values (DS low, ES high),
    /// and the address of its register frame (0: none), whose exit loads
    /// them back (traps.rs). One at a time: inside the ROM DS and ES are
    /// known-flat, so a nested entry never replaces them.
    pub saved_data_segments: u32,
    pub saved_data_frame: u32,
}

/// An empty `TableRegs::flat_data` slot: DS and ES both 0xFFFF, LDT entry
/// 8191, which no segment register holds here (Xen's copy of the LDT is
/// one frame, 512 entries).
pub const NO_FLAT_DATA: u32 = 0xFFFF_FFFF;

/// Records `selector` as known-flat when DS and ES both held it at an entry
/// from Xen and it names a flat data segment (`is_flat_data`) of the loaded
/// GDT (LDT selectors are never recorded: LLDT changes them wholesale).
pub fn note_flat_data(selector: u16) {
    let regs = &mut runtime().tables;
    let index = u32::from(selector >> 3);
    if selector & 4 != 0
        || index == 0
        || index >= regs.gdt_loaded
        || index * 8 + 7 > u32::from(regs.gdt_limit)
    {
        return;
    }
    let pair = u32::from(selector) * 0x1_0001;
    if regs.flat_data[0] != pair
        && descriptors::is_flat_data(read_descriptor(regs.gdt_base + index * 8))
    {
        regs.flat_data = [pair, regs.flat_data[0]];
    }
}

/// Forgets the known-flat selectors (a GDT descriptor they may name changed).
fn forget_flat_data() {
    runtime().tables.flat_data = [NO_FLAT_DATA; 2];
}

/// An IDT gate the ROM forwards through, read and checked in advance:
/// `usable` when the kernel's IDT has a present interrupt or trap gate for
/// the vector whose selector names a present code segment (what `forward`
/// in traps.rs checks at each exception), with its offset, selector and
/// kind; otherwise the forward takes the general path, which reads the
/// tables and raises what the processor would.
///
/// The gate and the code segment's descriptor are kept as they were read,
/// with their addresses: the forward compares both with the tables as
/// they are at the fault (two 8-byte reads), so that a kernel storing into
/// its loaded IDT or GDT natively (what the processor would see at the
/// next delivery) takes the general path, which reads them afresh.
///
/// Laid out for the #PF one-step path (traps.rs, `vmi_page_fault_quick`):
/// `offset` then `selector` are its far jump's pointer (m16:32).
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct ForwardGate {
    pub offset: u32,
    pub selector: u16,
    /// A trap gate (0xF): the kernel's interrupt flag is left as it was.
    pub trap: bool,
    pub usable: bool,
    /// The #PF one-step path may run (traps.rs `arm_page_fault_path`, a
    /// byte the assembly tests): cleared by every new read of the gate.
    pub one_step: bool,
    /// IDT[14] as read, and where (the loaded IDT's base + 14 * 8).
    pub gate_addr: u32,
    pub gate_raw: u64,
    /// The gate's code-segment descriptor as read, and where (the GDT or
    /// the LDT, by the selector).
    pub segment_addr: u32,
    pub segment_raw: u64,
}

const _: () = assert!(
    core::mem::offset_of!(ForwardGate, selector) == core::mem::offset_of!(ForwardGate, offset) + 4
);

impl ForwardGate {
    /// The cached gate, if usable and the gate and its segment's
    /// descriptor are still what was read (None: the forward reads the
    /// tables, as the processor would). Of the segment's descriptor only
    /// the high word counts: it alone says whether it is a present code
    /// segment (`descriptors::is_code_descriptor`), all a forward asks of
    /// it (the rest, base and limit, is Xen's copy's at the far transfer).
    /// The #PF one-step path (traps.rs) makes the same three compares.
    #[inline(always)]
    pub fn current(&self) -> Option<&Self> {
        (self.usable
            && read_descriptor(self.gate_addr) == self.gate_raw
            && read_descriptor(self.segment_addr) >> 32 == self.segment_raw >> 32)
            .then_some(self)
    }
}

/// Vector of #PF.
const PAGE_FAULT: u32 = 14;

/// Reads the kernel's #PF gate and its code segment again (`ForwardGate`):
/// after every change of what they are read from, that is every IDT, GDT
/// and LDT load and entry write the kernel makes (LIDT, LGDT, LLDT and
/// Write*Entry, whose paths end here). A kernel changes its tables through
/// these calls (vmi.h); a native store into a loaded table is not seen by
/// Xen's trap table, GDT or LDT copies either.
#[cfg_attr(feature = "image", optimize(size))]
pub fn page_fault_gate_changed() {
    let regs = runtime().tables;
    let gate = descriptors::idt_entry_offset(PAGE_FAULT, regs.idt_limit).and_then(|offset| {
        let gate_addr = regs.idt_base + offset;
        let gate_raw = read_descriptor(gate_addr);
        let g = descriptors::idt_gate(Some(gate_raw))?;
        let segment_addr = code_segment_address(g.selector)?;
        Some(ForwardGate {
            offset: g.offset,
            selector: g.selector,
            trap: g.kind == 0xF,
            usable: true,
            // Armed again by the next #PF's general path.
            one_step: false,
            gate_addr,
            gate_raw,
            segment_addr,
            segment_raw: read_descriptor(segment_addr),
        })
    });
    runtime().tables.page_fault_gate = gate.unwrap_or_default();
}

/// Gets (on first use: takes from the pool and clears) the shadow frames.
fn shadow_frames() -> Option<[u32; GDT_FRAMES]> {
    if runtime().tables.gdt_mfns[0] == 0 {
        crate::mmu::before_foreign_take();
    }
    let regs = &mut runtime().tables;
    if regs.gdt_mfns[0] == 0 {
        for slot in regs.gdt_mfns.iter_mut() {
            let mfn = pool_take()?;
            // SAFETY: clearing a pool frame nothing maps.
            unsafe {
                hypervisor().mmuext_op(&[MmuextOp::clear_page(Mfn(mfn))], u32::from(DOMID_SELF))
            }
            .ok()?;
            *slot = mfn;
        }
    }
    Some(regs.gdt_mfns)
}

/// The descriptor at `addr` of a table the kernel loaded, read as the
/// processor reads it at a delivery or a segment load: CR2 stays as it is.
/// The ROM's read may fault (the table's page not shadowed yet: the ROM
/// fills it in and the read runs again), which writes Xen's CR2, the
/// kernel's (vcpu_info.arch.cr2), perhaps of a #PF on its way to the
/// kernel's handler; it is put back.
fn read_descriptor(addr: u32) -> u64 {
    let cr2 = crate::cpu_calls::get_cr2();
    // SAFETY: an address inside the table the kernel loaded; a bad one
    // faults the kernel as the processor's own access would.
    let descriptor = unsafe { core::ptr::read_unaligned(addr as *const u64) };
    crate::cpu_calls::set_cr2(cr2);
    descriptor
}

/// The kernel's segment registers now: `cs` (the interrupted CS for an
/// emulated instruction; the ROM's handlers run on the kernel's stack and
/// data segments), SS, DS, ES, FS, GS.
fn live_selectors(cs: u16) -> [(u16, SegmentUse); 6] {
    let (ss, ds, es, fs, gs): (u32, u32, u32, u32, u32);
    // SAFETY: reads segment registers.
    unsafe {
        core::arch::asm!(
            "mov {ss:e}, ss", "mov {ds:e}, ds", "mov {es:e}, es", "mov {fs:e}, fs", "mov {gs:e}, gs",
            ss = out(reg) ss, ds = out(reg) ds, es = out(reg) es, fs = out(reg) fs, gs = out(reg) gs,
            options(nomem, nostack, preserves_flags)
        )
    };
    let data = |s: u32| (s as u16, SegmentUse::Data);
    [
        (cs, SegmentUse::Code),
        (ss as u16, SegmentUse::Stack),
        data(ds),
        data(es),
        data(fs),
        data(gs),
    ]
}

/// LGDT: the kernel's table at `base`, `limit` bytes - 1, with the ROM's
/// own CS taken as the kernel's (a VMI call).
pub fn load_gdt(base: u32, limit: u16) -> bool {
    let cs: u32;
    // SAFETY: reads CS.
    unsafe {
        core::arch::asm!("mov {0:e}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    load_gdt_for(base, limit, cs as u16)
}

/// LGDT with the kernel interrupted at code selector `kernel_cs`.
///
/// A processor keeps a segment register's descriptor in its cache until
/// the register is loaded again, so a kernel may load a GDT that no longer
/// has the descriptors it is running on (Linux's head_32.S loads its own
/// GDT, whose entries 2 and 3 are empty, while CS, DS and SS still hold the
/// boot protocol's 0x10 and 0x18). Xen reloads CS and SS on every return to
/// the guest, and the data registers when it switches vCPUs, from the GDT:
/// for a selector in use whose new descriptor it could not load, the ROM
/// keeps the one of the previous table in Xen's copy (the cached
/// descriptor), until the kernel loads a table again.
#[cfg_attr(feature = "image", optimize(size))]
pub fn load_gdt_for(base: u32, limit: u16, kernel_cs: u16) -> bool {
    let Some(frames) = shadow_frames() else {
        Line::rom(b"no frames left for the GDT").print();
        return false;
    };
    let entries = (u32::from(limit) + 1) / 8;
    let loaded = entries.min(GDT_MAX_ENTRIES);
    if loaded < entries {
        Line::rom(b"the kernel's GDT has ")
            .dec(entries)
            .text(b" entries; Xen gets the first ")
            .dec(loaded)
            .print();
    }
    let old = runtime().tables;
    // Selectors in use whose new descriptor will not do, and the previous
    // table's one that will (what the processor has cached).
    let mut kept: [Option<(u32, u64)>; 6] = [None; 6];
    for (slot, (selector, u)) in kept.iter_mut().zip(live_selectors(kernel_cs)) {
        let index = u32::from(selector >> 3);
        if selector & 4 != 0 || index == 0 || index >= GDT_MAX_ENTRIES {
            continue;
        }
        let new = if index < loaded {
            read_descriptor(base + index * 8)
        } else {
            0
        };
        if usable(new, u) || index >= old.gdt_loaded {
            continue;
        }
        let cached = read_descriptor(old.gdt_base + index * 8);
        if usable(cached, u) {
            *slot = Some((index, cached));
        }
    }
    let xen_entries = kept
        .iter()
        .flatten()
        .map(|&(i, _)| i + 1)
        .fold(loaded.max(1), u32::max);
    let mut xen = hypervisor();
    let previous = old.gdt_loaded;
    // SAFETY: the shadow frames hold only descriptors Xen accepted (or
    // zeroes); none is mapped anywhere.
    if unsafe { xen.set_gdt(&frames, xen_entries) }.is_err() {
        return false;
    }
    for i in 0..xen_entries.max(previous) {
        let mut desc = match kept.iter().flatten().find(|&&(k, _)| k == i) {
            Some(&(_, cached)) => cached,
            None if i < loaded => read_descriptor(base + i * 8),
            None => 0,
        };
        // TSS and LDT descriptors are Xen's business, not the guest's
        // (check_descriptor takes only code, data and call gates): the ROM
        // reads them from the kernel's own table on LTR and LLDT.
        desc = for_xen(desc);
        let maddr = (u64::from(frames[(i / 512) as usize]) << 12) + u64::from(i % 512) * 8;
        // SAFETY: writes one entry of the shadow GDT, which Xen validates.
        if unsafe { xen.update_descriptor(maddr, desc) }.is_err() {
            Line::rom(b"Xen refused GDT entry ")
                .dec(i)
                .text(b" (")
                .hex((desc >> 32) as u32)
                .text(b":")
                .hex(desc as u32)
                .text(b"): left empty, a load of its selector will fault")
                .print();
            // SAFETY: a null descriptor is always accepted.
            let _ = unsafe { xen.update_descriptor(maddr, 0) };
        }
    }
    let regs = &mut runtime().tables;
    regs.gdt_base = base;
    regs.gdt_limit = limit;
    regs.gdt_loaded = xen_entries;
    forget_flat_data();
    // Which gates Xen may deliver directly depends on their code segments.
    if regs.idt_limit != 0 {
        sync_trap_table(0..256);
    }
    page_fault_gate_changed();
    true
}

/// LIDT: exceptions the ROM does not handle go to the kernel's gates, and
/// Xen learns which vectors ring 3 may raise with `int n` (the gates' DPL).
pub fn load_idt(base: u32, limit: u16) {
    let regs = &mut runtime().tables;
    regs.idt_base = base;
    regs.idt_limit = limit;
    sync_trap_table(0..256);
}

/// The DPL Xen's trap table gets for `vector`. Only #BP, #OF and 0x80
/// have gates ring 1 and 3 may raise in Xen's own IDT (Xen's traps.c):
/// `int3`, `into` and `int $0x80` come straight through, and their DPL
/// here is what Xen checks, with ring compression (the kernel's ring 0 is
/// ring 1, so a DPL-0 gate admits ring 1 and keeps ring 3 out). Any other
/// `int n` faults in Xen, which delivers it itself only if this DPL
/// admits the caller: DPL 0 admits nobody, so every such `int n` reaches
/// the ROM as #GP and is checked against the kernel's gate there
/// (traps.rs `software_interrupt`), with the processor's error code even
/// where the platform reports it wrongly (docs/traps-and-privilege.md).
fn trap_table_dpl(vector: u32) -> u8 {
    descriptors::trap_table_dpl(vector, idt_gate(vector))
}

/// The kernel's gate for `vector` when Xen may deliver it without the ROM:
/// the system call (0x80) and the exceptions the ROM has no business with
/// (#DE, #BP, #OF, #BR, #UD, #MF, #AC, #XM), through a present interrupt or
/// trap gate whose selector is a present code segment (anything else needs
/// the ROM's processor-exact answer). The ROM keeps #DB (its single steps),
/// NMI, #NM, the fault vectors it emulates or shadows (#GP, #PF), the
/// segment faults, and every other `int n` (their DPL check, and QEMU's
/// int-n error code, docs/traps-and-privilege.md). Saves the ROM's trap
/// path on every system call (docs/benchmarks.md: about 200 guest
/// instructions per trap).
fn direct_gate(vector: u32) -> Option<Gate> {
    if !descriptors::is_direct_vector(vector) {
        return None;
    }
    descriptors::direct_gate(vector, idt_gate(vector), is_code_segment)
}

/// Points Xen's trap table entries for `vectors` at the ROM's stubs, with
/// the DPL `trap_table_dpl` gives. Sent 32 at a time to keep the kernel's
/// stack small.
#[cfg_attr(feature = "image", optimize(size))]
pub fn sync_trap_table(vectors: core::ops::Range<u32>) {
    let mut chunk = [TrapInfo::default(); 33];
    let mut n = 0;
    let mut xen = hypervisor();
    for v in vectors {
        let dpl = trap_table_dpl(v);
        chunk[n] = match direct_gate(v) {
            // Xen bounces the trap straight to the kernel's handler with
            // the frame the ROM would forward (compat bounce frame: the
            // saved mask in CS bits 16-23, IF in EFLAGS from it), masking
            // events for an interrupt gate (flag bit 2) as the processor
            // clears IF; the kernel's ring 0 is ring 1.
            Some(gate) => TrapInfo {
                vector: v as u8,
                flags: dpl | if gate.kind == 0xE { 4 } else { 0 },
                cs: (gate.selector & !3) | 1,
                address: gate.offset,
            },
            None => TrapInfo {
                vector: v as u8,
                // Bit 2: events masked in the ROM's handler (see boot.rs).
                flags: dpl | 4,
                cs: FLAT_RING1_CS,
                address: crate::traps::stub_alias(v),
            },
        };
        n += 1;
        if n == 32 {
            chunk[n] = TrapInfo::default();
            // SAFETY: the stubs live in the ROM's alias, valid in every
            // address space; the chunk ends with a zero entry.
            let _ = unsafe { xen.set_trap_table(&chunk[..=n]) };
            n = 0;
        }
    }
    if n > 0 {
        chunk[n] = TrapInfo::default();
        // SAFETY: as above.
        let _ = unsafe { xen.set_trap_table(&chunk[..=n]) };
    }
    crate::events::tick_gate_changed();
    page_fault_gate_changed();
}

/// The kernel's present interrupt or trap gate for `vector`.
pub fn idt_gate(vector: u32) -> Option<Gate> {
    descriptors::idt_gate(idt_entry(vector))
}

/// The kernel's IDT entry for `vector`, if within its limit.
fn idt_entry(vector: u32) -> Option<u64> {
    let regs = runtime().tables;
    let offset = descriptors::idt_entry_offset(vector, regs.idt_limit)?;
    Some(read_descriptor(regs.idt_base + offset))
}

/// What `int n` at privilege level `cpl` finds in the kernel's IDT
/// (`descriptors::software_interrupt_gate`): the gate, or the vector to
/// raise.
pub fn software_interrupt_gate(vector: u32, cpl: u8) -> Result<Gate, u32> {
    descriptors::software_interrupt_gate(idt_entry(vector), cpl)
}

/// LTR: the TSS named by `selector` in the kernel's GDT; its SS0:ESP0 is
/// where Xen switches stacks on a trap from ring 3 (stack_switch).
#[cfg_attr(feature = "image", optimize(size))]
pub fn load_tr(selector: u16) -> bool {
    let regs = runtime().tables;
    let index = u32::from(selector >> 3);
    if selector & 4 != 0 || index * 8 + 7 > u32::from(regs.gdt_limit) {
        return false;
    }
    let addr = regs.gdt_base + index * 8;
    let d = read_descriptor(addr);
    let hi = (d >> 32) as u32;
    // A present 32-bit TSS, not null: else the processor's #GP, which is
    // the kernel's.
    let Some(base) = descriptors::tss_descriptor(index, d) else {
        return false;
    };
    // LTR marks the descriptor busy in the kernel's GDT (type 9 -> 11), as
    // the processor does; the kernel may look.
    // SAFETY: the descriptor's high word in the kernel's own GDT.
    unsafe { core::ptr::write_unaligned((addr + 4) as *mut u32, hi | (1 << 9)) };
    // SAFETY: the TSS lies in the kernel's memory where its descriptor says.
    let (esp0, ss0) = unsafe {
        (
            core::ptr::read_unaligned((base + 4) as *const u32),
            core::ptr::read_unaligned((base + 8) as *const u16),
        )
    };
    // SAFETY: tells Xen the kernel's ring-0 stack; Xen raises the
    // selector's RPL to 1 itself.
    let ok = unsafe { hypervisor().stack_switch(u32::from(ss0), esp0) }.is_ok();
    runtime().tables.tr = selector;
    ok
}

/// WriteGDTEntry / WriteLDTEntry / WriteIDTEntry (vmi.h: table base, entry
/// number, the descriptor's low and high words): the kernel's table gets
/// the entry, and what Xen holds follows when the table is the loaded one.
#[cfg_attr(feature = "image", optimize(size))]
pub fn write_entry(kind: TableKind, base: u32, index: u32, lo: u32, hi: u32) {
    let addr = base.wrapping_add(index * 8);
    // SAFETY: the kernel names an entry of its own table.
    unsafe { core::ptr::write_unaligned(addr as *mut u64, (u64::from(hi) << 32) | u64::from(lo)) };
    let regs = runtime().tables;
    match kind {
        TableKind::Gdt if base == regs.gdt_base && index < regs.gdt_loaded => {
            if regs
                .flat_data
                .iter()
                .any(|&pair| pair >> 3 & 0x1FFF == index)
            {
                forget_flat_data();
            }
            let desc = for_xen((u64::from(hi) << 32) | u64::from(lo));
            let maddr = (u64::from(regs.gdt_mfns[(index / 512) as usize]) << 12)
                + u64::from(index % 512) * 8;
            // SAFETY: one entry of the shadow GDT, validated by Xen.
            if unsafe { hypervisor().update_descriptor(maddr, desc) }.is_err() {
                Line::rom(b"WriteGDTEntry: Xen refused entry ")
                    .dec(index)
                    .text(b" (")
                    .hex(hi)
                    .text(b":")
                    .hex(lo)
                    .text(b"): a load of its selector will fault")
                    .print();
                // SAFETY: a null descriptor is always accepted.
                let _ = unsafe { hypervisor().update_descriptor(maddr, 0) };
            }
        }
        TableKind::Idt if base == regs.idt_base && index < 256 => sync_trap_table(index..index + 1),
        TableKind::Ldt if regs.ldt != 0 && base == regs.ldt_base && index < regs.ldt_loaded => {
            let desc = for_xen((u64::from(hi) << 32) | u64::from(lo));
            let maddr = (u64::from(regs.ldt_mfn) << 12) + u64::from(index) * 8;
            // SAFETY: one entry of Xen's LDT copy, validated by Xen.
            if unsafe { hypervisor().update_descriptor(maddr, desc) }.is_err() {
                // SAFETY: a null descriptor is always accepted.
                let _ = unsafe { hypervisor().update_descriptor(maddr, 0) };
            }
        }
        _ => {}
    }
    // The #PF gate or its code segment may be the entry just written, for
    // an IDT entry also through an address other than the loaded base (an
    // alias of the loaded table: `sync_trap_table` runs only for the base).
    // A usable cache is compared with both descriptors at each fault, so a
    // GDT or LDT write elsewhere (Linux's TLS entries at every switch)
    // leaves it as it is; an unusable one may become usable.
    let gate = &runtime().tables.page_fault_gate;
    if kind == TableKind::Idt || !gate.usable || addr == gate.segment_addr {
        page_fault_gate_changed();
    }
}

/// Which table a Write*Entry call names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Gdt,
    Ldt,
    Idt,
}

/// Gets (on first use: takes from the pool, clears and maps read-only at
/// LDT_SHADOW_VA) the frame of Xen's LDT copy.
fn ldt_frame() -> Option<u32> {
    if runtime().tables.ldt_mfn == 0 {
        crate::mmu::before_foreign_take();
    }
    let regs = &mut runtime().tables;
    if regs.ldt_mfn == 0 {
        let mfn = pool_take()?;
        let mut xen = hypervisor();
        // SAFETY: clearing a pool frame nothing maps.
        unsafe { xen.mmuext_op(&[MmuextOp::clear_page(Mfn(mfn))], u32::from(DOMID_SELF)) }.ok()?;
        let st = crate::runtime::rom_state();
        let index = (LDT_SHADOW_VA - ROM_AREA_START) >> 12;
        let l1 = st.rom_area_l1_mfns[(index / 512) as usize];
        let pte = MmuUpdate::normal_pt_update(
            (u64::from(l1) << 12) + u64::from(index % 512) * 8,
            (u64::from(mfn) << 12) | _PAGE_PRESENT | _PAGE_ACCESSED,
        );
        // SAFETY: maps the LDT copy read-only in the ROM area, a slot
        // nothing else uses.
        unsafe { xen.mmu_update(&[pte], u32::from(DOMID_SELF)) }.ok()?;
        regs.ldt_mfn = mfn;
    }
    Some(regs.ldt_mfn)
}

/// LLDT / SetLDT: the LDT the kernel's GDT descriptor `selector` names, or
/// none for a null selector.
#[cfg_attr(feature = "image", optimize(size))]
pub fn load_ldt(selector: u16) -> bool {
    let mut xen = hypervisor();
    if selector & !3 == 0 {
        // SAFETY: an empty LDT.
        let ok =
            unsafe { xen.mmuext_op(&[MmuextOp::set_ldt(0, 0)], u32::from(DOMID_SELF)) }.is_ok();
        runtime().tables.ldt = 0;
        page_fault_gate_changed();
        return ok;
    }
    let regs = runtime().tables;
    let index = u32::from(selector >> 3);
    if selector & 4 != 0 || index * 8 + 7 > u32::from(regs.gdt_limit) {
        return false;
    }
    let d = read_descriptor(regs.gdt_base + index * 8);
    // Not a present LDT descriptor: #GP, the kernel's.
    let Some((base, entries)) = descriptors::ldt_descriptor(d) else {
        return false;
    };
    let Some(mfn) = ldt_frame() else {
        Line::rom(b"no frame left for the LDT").print();
        return false;
    };
    for i in 0..entries.max(regs.ldt_loaded) {
        let desc = if i < entries {
            for_xen(read_descriptor(base + i * 8))
        } else {
            0
        };
        // SAFETY: one entry of Xen's LDT copy, validated by Xen.
        if unsafe { xen.update_descriptor((u64::from(mfn) << 12) + u64::from(i) * 8, desc) }
            .is_err()
        {
            // SAFETY: a null descriptor is always accepted.
            let _ = unsafe { xen.update_descriptor((u64::from(mfn) << 12) + u64::from(i) * 8, 0) };
        }
    }
    // SAFETY: the copy is mapped read-only at LDT_SHADOW_VA in every
    // address space (the ROM area).
    let ok = unsafe {
        xen.mmuext_op(
            &[MmuextOp::set_ldt(LDT_SHADOW_VA, entries)],
            u32::from(DOMID_SELF),
        )
    }
    .is_ok();
    let t = &mut runtime().tables;
    t.ldt = selector;
    t.ldt_base = base;
    t.ldt_loaded = entries;
    page_fault_gate_changed();
    ok
}

/// Whether `selector` names a present code segment in the kernel's GDT or
/// LDT (what an IDT gate must point at).
pub fn is_code_segment(selector: u16) -> bool {
    code_segment_address(selector).is_some()
}

/// Where `selector`'s descriptor is (the GDT or the LDT), if it is in its
/// table's limit and names a present code segment.
fn code_segment_address(selector: u16) -> Option<u32> {
    let addr = descriptor_address(selector)?;
    descriptors::is_code_descriptor(read_descriptor(addr)).then_some(addr)
}

/// Where `selector`'s descriptor is (the GDT or the LDT), if it is in its
/// table's limit.
fn descriptor_address(selector: u16) -> Option<u32> {
    let regs = runtime().tables;
    // No LDT loaded (LLDT of a null selector): no LDT selector is valid.
    let ldt = (regs.ldt != 0).then_some(regs.ldt_loaded);
    Some(
        match descriptors::selector_offset(selector, regs.gdt_limit, ldt)? {
            SelectorIn::Gdt(offset) => regs.gdt_base + offset,
            SelectorIn::Ldt(offset) => regs.ldt_base + offset,
        },
    )
}

/// What delivery through a gate naming `selector` raises for the segment
/// (`descriptors::gate_segment_fault`): None, the gate is entered; #GP or
/// #NP, with the selector as error code.
#[cfg_attr(feature = "image", optimize(size))]
pub fn gate_segment_fault(selector: u16) -> Option<u32> {
    descriptors::gate_segment_fault(descriptor_address(selector).map(read_descriptor))
}
