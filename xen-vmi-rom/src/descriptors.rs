//! The checks the ROM makes on the kernel's descriptors (GDT, LDT and IDT
//! entries, selectors), as pure functions of their 8 bytes: the ROM's
//! `desc.rs` reads the tables and talks to Xen, this decides. Fuzzed by
//! tests/fuzz_descriptors.rs against the SDM's rules written out there
//! (docs/fuzzing.md). Bit positions: SDM vol. 3, "Segment Descriptors" and
//! "IDT Descriptors".

/// Descriptor high word: present (P).
const P: u32 = 1 << 15;
/// Descriptor high word: code or data segment (S), not a system descriptor.
const S: u32 = 1 << 12;
/// Segment type bit 3: code.
const CODE: u32 = 1 << 11;
/// Segment type bit 1: readable (code) / writable (data).
const READ_WRITE: u32 = 1 << 9;

/// An IDT gate's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    pub selector: u16,
    pub offset: u32,
    /// The 4-bit type: 0xE interrupt gate (clears IF), 0xF trap gate.
    pub kind: u8,
    /// Which rings may raise the vector with `int n`.
    pub dpl: u8,
}

/// An IDT entry decoded: the gate's fields, whether it is present, and
/// whether it is a system descriptor (S clear).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdtEntry {
    pub gate: Gate,
    pub present: bool,
    pub system: bool,
}

/// Decodes an 8-byte IDT entry.
pub const fn decode_gate(d: u64) -> IdtEntry {
    let (lo, hi) = (d as u32, (d >> 32) as u32);
    IdtEntry {
        gate: Gate {
            selector: (lo >> 16) as u16,
            offset: (hi & 0xFFFF_0000) | (lo & 0xFFFF),
            kind: ((hi >> 8) & 0xF) as u8,
            dpl: ((hi >> 13) & 3) as u8,
        },
        present: hi & P != 0,
        system: hi & S == 0,
    }
}

/// The IDT entry of `vector` in a table of `limit` + 1 bytes (None: beyond
/// the limit, or no IDT loaded when `limit` is 0). Returns the entry's
/// byte offset in the table.
pub const fn idt_entry_offset(vector: u32, limit: u16) -> Option<u32> {
    if limit == 0 || vector > 255 || vector * 8 + 7 > limit as u32 {
        None
    } else {
        Some(vector * 8)
    }
}

/// A present interrupt or trap gate (what an exception or interrupt is
/// delivered through).
pub fn idt_gate(entry: Option<u64>) -> Option<Gate> {
    let e = decode_gate(entry?);
    (e.present && e.system && matches!(e.gate.kind, 0xE | 0xF)).then_some(e.gate)
}

/// #GP.
pub const GENERAL_PROTECTION: u32 = 13;
/// #NP.
pub const SEGMENT_NOT_PRESENT: u32 = 11;

/// What `int n` at privilege level `cpl` finds in the IDT entry (None:
/// beyond the limit), in the order the processor checks (SDM vol. 2, INT
/// n, protected mode): not an interrupt/trap gate, #GP; a gate DPL below
/// `cpl`, #GP; not present, #NP. The error is the vector to raise (the
/// error code is n * 8 + 2). Task gates are not offered on Xen: #GP too.
pub fn software_interrupt_gate(entry: Option<u64>, cpl: u8) -> Result<Gate, u32> {
    let Some(d) = entry else {
        return Err(GENERAL_PROTECTION);
    };
    let e = decode_gate(d);
    if !e.system || !matches!(e.gate.kind, 0xE | 0xF) || e.gate.dpl < cpl {
        return Err(GENERAL_PROTECTION);
    }
    if !e.present {
        return Err(SEGMENT_NOT_PRESENT);
    }
    Ok(e.gate)
}

/// The vectors Xen may deliver straight to the kernel's gate: the system
/// call (0x80) and the exceptions the ROM has no business with (#DE, #BP,
/// #OF, #BR, #UD, #MF, #AC, #XM).
pub const fn is_direct_vector(vector: u32) -> bool {
    matches!(vector, 0 | 3 | 4 | 5 | 6 | 16 | 17 | 19 | 0x80)
}

/// The kernel's gate for `vector` when Xen may deliver it without the ROM:
/// a direct vector whose gate is a present interrupt or trap gate with a
/// present code segment for its selector (`code_segment` answers that),
/// and for #BP and #OF a gate of DPL 3. Xen's own IDT admits `int3`,
/// `into` and `int 3`/`int 4` from every ring and bounces them to the
/// trap table's entry without looking at its DPL, where the processor
/// refuses them, #GP(n * 8 + 2), to a caller above the gate's DPL: a lower
/// DPL therefore sends them to the ROM's stub, which checks it.
pub fn direct_gate(
    vector: u32,
    gate: Option<Gate>,
    code_segment: impl FnOnce(u16) -> bool,
) -> Option<Gate> {
    if !is_direct_vector(vector) {
        return None;
    }
    let gate = gate.filter(|g| !matches!(vector, 3 | 4) || g.dpl == 3)?;
    code_segment(gate.selector).then_some(gate)
}

/// The DPL Xen's trap table gets for `vector`: #BP, #OF and the system
/// call keep the kernel's gate DPL (ring compression: at least 1, the
/// kernel's ring 0 being ring 1); every other vector 0, so an `int n` for
/// it comes to the ROM as #GP and is checked there. Xen checks the DPL for
/// 0x80 only: #BP and #OF reach their entry from any ring (`direct_gate`).
pub fn trap_table_dpl(vector: u32, gate: Option<Gate>) -> u8 {
    match vector {
        3 | 4 | 0x80 => gate.map_or(0, |g| g.dpl).max(1),
        _ => 0,
    }
}

/// What Xen gets for the kernel's descriptor: TSS and LDT descriptors are
/// the ROM's (empty in Xen's table); a code or data descriptor of DPL 0 is
/// raised to DPL 1, as Xen's check_descriptor does for present ones, and
/// here for not-present ones too, so loading one faults #NP as it would in
/// ring 0 and not #GP on the privilege check.
pub const fn for_xen(desc: u64) -> u64 {
    if is_tss_or_ldt(desc) {
        return 0;
    }
    let code_or_data = desc & (1 << 44) != 0;
    let dpl = (desc >> 45) & 3;
    if code_or_data && dpl == 0 {
        desc | (1 << 45)
    } else {
        desc
    }
}

/// The 32-bit base of a segment descriptor (words low, high): bits 16-31
/// of the low word, bits 0-7 and 24-31 of the high word.
pub const fn descriptor_base(lo: u32, hi: u32) -> u32 {
    (hi & 0xFF00_0000) | ((hi & 0xFF) << 16) | (lo >> 16)
}

/// The 20-bit limit field of a segment descriptor.
pub const fn descriptor_limit(lo: u32, hi: u32) -> u32 {
    (hi & 0x000F_0000) | (lo & 0xFFFF)
}

/// A system descriptor of type LDT (2) or TSS (1, 3, 9, 11).
pub const fn is_tss_or_ldt(desc: u64) -> bool {
    let hi = (desc >> 32) as u32;
    let system = hi & S == 0;
    let kind = (hi >> 8) & 0xF;
    system && matches!(kind, 1 | 2 | 3 | 9 | 11)
}

/// What a segment register needs of its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentUse {
    Code,
    Stack,
    Data,
}

/// Whether `desc` is a present segment `u` can hold: CS a code segment,
/// SS a writable data segment, a data register data or readable code.
pub const fn usable(desc: u64, u: SegmentUse) -> bool {
    let hi = (desc >> 32) as u32;
    let (present, segment) = (hi & P != 0, hi & S != 0);
    let (code, rw) = (hi & CODE != 0, hi & READ_WRITE != 0);
    present
        && segment
        && match u {
            SegmentUse::Code => code,
            SegmentUse::Stack => !code && rw,
            SegmentUse::Data => !code || rw,
        }
}

/// A segment the ROM may address its own memory through: a present,
/// writable, expand-up data segment with base 0 and a 4 GiB limit (G set,
/// limit field 0xFFFFF). DS or ES holding a selector of one needs no
/// reload at the ROM's entries from Xen (traps.rs, "known-flat").
pub const fn is_flat_data(desc: u64) -> bool {
    /// Segment type bit 2 of a data segment: expand-down.
    const EXPAND_DOWN: u32 = 1 << 10;
    /// Granularity: the limit counts 4 KiB units.
    const GRANULARITY: u32 = 1 << 23;
    let (lo, hi) = (desc as u32, (desc >> 32) as u32);
    usable(desc, SegmentUse::Stack)
        && hi & EXPAND_DOWN == 0
        && hi & GRANULARITY != 0
        && descriptor_base(lo, hi) == 0
        && descriptor_limit(lo, hi) == 0xF_FFFF
}

/// A present code segment (what an IDT gate's selector must name).
pub const fn is_code_descriptor(desc: u64) -> bool {
    let hi = (desc >> 32) as u32;
    hi & P != 0 && hi & S != 0 && hi & CODE != 0
}

/// What delivering an exception or a software interrupt through a gate
/// raises for the gate's code segment, from its descriptor (None: null or
/// beyond its table) (SDM vol. 2, INT n, protected mode): no code segment,
/// #GP; a code segment not present, #NP; both with the selector as error
/// code (and EXT for an exception). None: a present code segment, entered.
/// (The check of its DPL against the caller's is not made: a
/// ring-compressed kernel's segments are DPL 0 in its own table, and the
/// ROM enters the gate as if that check passed.)
pub fn gate_segment_fault(desc: Option<u64>) -> Option<u32> {
    let Some(desc) = desc else {
        return Some(GENERAL_PROTECTION);
    };
    let hi = (desc >> 32) as u32;
    if hi & S == 0 || hi & CODE == 0 {
        Some(GENERAL_PROTECTION)
    } else if hi & P == 0 {
        Some(SEGMENT_NOT_PRESENT)
    } else {
        None
    }
}

/// Where the descriptor `selector` names lives: the byte offset from the
/// GDT's base (`Gdt`) or the LDT's (`Ldt`), if the table has it. The GDT
/// has `gdt_limit` + 1 bytes, and its entry 0 is no descriptor; `ldt` is
/// the number of entries of the loaded LDT (None: no LDT loaded, so no
/// LDT selector is valid).
pub fn selector_offset(selector: u16, gdt_limit: u16, ldt: Option<u32>) -> Option<SelectorIn> {
    let index = u32::from(selector >> 3);
    if selector & 4 != 0 {
        let entries = ldt?;
        (index < entries).then_some(SelectorIn::Ldt(index * 8))
    } else {
        (index != 0 && index * 8 + 7 <= u32::from(gdt_limit)).then_some(SelectorIn::Gdt(index * 8))
    }
}

/// Which table a selector's descriptor is in, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorIn {
    Gdt(u32),
    Ldt(u32),
}

/// Entries Xen's LDT copy holds at most (one frame).
pub const LDT_MAX_ENTRIES: u32 = 512;

/// LLDT's descriptor: a present LDT (system type 2) gives its base and
/// how many entries Xen gets (the limit's, at most one frame of them).
pub const fn ldt_descriptor(desc: u64) -> Option<(u32, u32)> {
    let (lo, hi) = (desc as u32, (desc >> 32) as u32);
    if hi & P == 0 || (hi >> 8) & 0x1F != 0x02 {
        return None;
    }
    let entries = (descriptor_limit(lo, hi) + 1) / 8;
    let entries = if entries < LDT_MAX_ENTRIES {
        entries
    } else {
        LDT_MAX_ENTRIES
    };
    Some((descriptor_base(lo, hi), entries))
}

/// LTR's descriptor: a present 32-bit TSS (type 9 available, 11 busy), not
/// GDT entry 0. Returns the TSS's base.
pub const fn tss_descriptor(index: u32, desc: u64) -> Option<u32> {
    let (lo, hi) = (desc as u32, (desc >> 32) as u32);
    if index == 0 || hi & P == 0 || !matches!((hi >> 8) & 0x1F, 0x09 | 0x0B) {
        return None;
    }
    Some(descriptor_base(lo, hi))
}
