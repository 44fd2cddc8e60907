//! Fuzzing the ROM's descriptor checks (`xen_vmi_rom::descriptors`, used
//! by the ROM's desc.rs for LGDT, LLDT, LTR, LIDT, `int n` and the choice
//! of gates Xen delivers directly) with arbitrary descriptors, against the
//! SDM's rules written out here field by field (SDM vol. 3, "Segment
//! Descriptors", "IDT Descriptors"; vol. 2, INT n). No input panics.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use xen_vmi_rom::descriptors::{
    decode_gate, descriptor_base, direct_gate, for_xen, gate_segment_fault, idt_entry_offset,
    idt_gate, is_code_descriptor, is_flat_data, is_tss_or_ldt, ldt_descriptor, selector_offset,
    software_interrupt_gate, trap_table_dpl, tss_descriptor, usable, Gate, SegmentUse, SelectorIn,
    GENERAL_PROTECTION, SEGMENT_NOT_PRESENT,
};

/// A descriptor's fields, as the SDM draws them.
#[derive(Clone, Copy, Debug)]
struct Fields {
    present: bool,
    dpl: u8,
    /// S: code or data (true), system (false).
    segment: bool,
    /// The 4-bit type.
    kind: u8,
}

fn fields(d: u64) -> Fields {
    Fields {
        present: d >> 47 & 1 == 1,
        dpl: (d >> 45 & 3) as u8,
        segment: d >> 44 & 1 == 1,
        kind: (d >> 40 & 0xF) as u8,
    }
}

/// A gate built from its fields (the inverse of the SDM's figure).
fn gate_bytes(selector: u16, offset: u32, kind: u8, dpl: u8, present: bool, segment: bool) -> u64 {
    let lo = (u32::from(selector) << 16) | (offset & 0xFFFF);
    let hi = (offset & 0xFFFF_0000)
        | u32::from(present) << 15
        | u32::from(dpl & 3) << 13
        | u32::from(segment) << 12
        | u32::from(kind & 0xF) << 8;
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Mostly descriptors with interesting types, some anything at all.
fn descriptor() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        5 => (any::<u16>(), any::<u32>(), 0..16u8, 0..4u8, any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(sel, off, kind, dpl, p, s)| gate_bytes(sel, off, kind, dpl, p, s)),
    ]
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    Config {
        cases,
        // Failures found are kept (and run first) in the corpus file beside
        // this one; cargo runs tests from the package's directory.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/fuzz_descriptors.proptest-regressions",
        ))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Xen never gets a code or data descriptor of DPL 0 (the kernel's
    /// ring 0 is ring 1), nor a TSS or LDT descriptor (the ROM's own
    /// business); nothing else of a descriptor changes.
    #[test]
    fn what_xen_gets(d in descriptor()) {
        let f = fields(d);
        let x = for_xen(d);
        let tss_or_ldt = !f.segment && matches!(f.kind, 1 | 2 | 3 | 9 | 11);
        prop_assert_eq!(is_tss_or_ldt(d), tss_or_ldt);
        if tss_or_ldt {
            prop_assert_eq!(x, 0);
        } else if f.segment {
            prop_assert!(fields(x).dpl >= 1);
            prop_assert_eq!(x & !(3 << 45), d & !(3 << 45));
            prop_assert_eq!(fields(x).dpl, f.dpl.max(1));
        } else {
            prop_assert_eq!(x, d);
        }
    }

    /// Gates decode to their fields.
    #[test]
    fn gates_decode(sel in any::<u16>(), off in any::<u32>(), kind in 0..16u8, dpl in 0..4u8, p in any::<bool>(), s in any::<bool>()) {
        let e = decode_gate(gate_bytes(sel, off, kind, dpl, p, s));
        prop_assert_eq!(e.gate, Gate { selector: sel, offset: off, kind, dpl });
        prop_assert_eq!((e.present, e.system), (p, !s));
    }

    /// Delivery goes through a present interrupt or trap gate only (a code
    /// or data descriptor whose type reads 0xE or 0xF is no gate).
    #[test]
    fn delivery_gates(d in descriptor()) {
        let f = fields(d);
        let want = f.present && !f.segment && matches!(f.kind, 0xE | 0xF);
        prop_assert_eq!(idt_gate(Some(d)).is_some(), want);
        prop_assert_eq!(idt_gate(None), None);
    }

    /// `int n` from `cpl`: the SDM's order of checks.
    #[test]
    fn software_interrupts(d in descriptor(), cpl in 0..4u8, beyond in prop::bool::weighted(0.1)) {
        let f = fields(d);
        let entry = (!beyond).then_some(d);
        let want = if beyond || f.segment || !matches!(f.kind, 0xE | 0xF) || f.dpl < cpl {
            Err(GENERAL_PROTECTION)
        } else if !f.present {
            Err(SEGMENT_NOT_PRESENT)
        } else {
            Ok(decode_gate(d).gate)
        };
        prop_assert_eq!(software_interrupt_gate(entry, cpl), want);
    }

    /// A software interrupt's gate enters a present code segment; any
    /// other descriptor is #GP, a code segment not present #NP, and a
    /// selector naming no descriptor #GP.
    #[test]
    fn gate_segments(d in descriptor(), named in prop::bool::weighted(0.9)) {
        let f = fields(d);
        let code = f.kind & 8 != 0;
        let want = if !named || !f.segment || !code {
            Some(GENERAL_PROTECTION)
        } else if !f.present {
            Some(SEGMENT_NOT_PRESENT)
        } else {
            None
        };
        let desc = named.then_some(d);
        prop_assert_eq!(gate_segment_fault(desc), want);
        prop_assert_eq!(gate_segment_fault(desc).is_none(), named && is_code_descriptor(d));
    }

    /// Xen delivers directly only the listed vectors, through a delivery
    /// gate with a code segment, and #BP and #OF (which Xen's IDT admits
    /// from every ring) only through a gate of DPL 3, the one that admits
    /// every caller natively; the trap table's DPL keeps ring 3 out of
    /// every vector but #BP, #OF and the system call, and is never 0 for
    /// those.
    #[test]
    fn direct_delivery(vector in 0..300u32, d in descriptor(), code in any::<bool>()) {
        let gate = idt_gate(Some(d));
        let direct = direct_gate(vector, gate, |_| code);
        let listed = [0, 3, 4, 5, 6, 16, 17, 19, 0x80].contains(&vector);
        let admits_all = ![3, 4].contains(&vector) || gate.is_some_and(|g| g.dpl == 3);
        prop_assert_eq!(direct.is_some(), listed && gate.is_some() && code && admits_all);
        prop_assert_eq!(direct, direct.and(gate));
        let dpl = trap_table_dpl(vector, gate);
        if [3, 4, 0x80].contains(&vector) {
            prop_assert!(dpl >= 1);
            prop_assert_eq!(dpl, gate.map_or(1, |g| g.dpl.max(1)));
        } else {
            prop_assert_eq!(dpl, 0);
        }
    }

    /// An IDT entry is read only within the limit.
    #[test]
    fn idt_limits(vector in any::<u32>(), limit in any::<u16>()) {
        let got = idt_entry_offset(vector, limit);
        let within = limit != 0 && vector < 256 && u64::from(vector) * 8 + 7 <= u64::from(limit);
        prop_assert_eq!(got, within.then(|| vector * 8));
    }

    /// Segment registers take what the SDM lets them hold.
    #[test]
    fn segment_loads(d in descriptor()) {
        let f = fields(d);
        let code = f.kind & 8 != 0;
        let rw = f.kind & 2 != 0;
        let ok = f.present && f.segment;
        prop_assert_eq!(usable(d, SegmentUse::Code), ok && code);
        prop_assert_eq!(usable(d, SegmentUse::Stack), ok && !code && rw);
        prop_assert_eq!(usable(d, SegmentUse::Data), ok && (!code || rw));
        prop_assert_eq!(is_code_descriptor(d), ok && code);
    }

    /// Known-flat data segments (the ROM's entries keep DS/ES holding one):
    /// a flat writable data descriptor with one bit flipped stays flat only
    /// when the bit is one the ROM's accesses do not depend on (accessed,
    /// DPL, AVL, L, D/B); any descriptor is flat only when its base, limit,
    /// granularity and type say so, field by field.
    #[test]
    fn flat_data(bit in 0..64u32, d in descriptor()) {
        /// Present, DPL 3, writable data, G, D/B, limit 0xFFFFF, base 0.
        const FLAT: u64 = 0x00CF_F200_0000_FFFF;
        prop_assert!(is_flat_data(FLAT));
        let harmless = matches!(bit, 40 | 45 | 46 | 52 | 53 | 54);
        prop_assert_eq!(is_flat_data(FLAT ^ (1 << bit)), harmless);
        let f = fields(d);
        let base = (d >> 16 & 0xFF_FFFF) | (d >> 32 & 0xFF00_0000);
        let limit = (d & 0xFFFF) | (d >> 32 & 0xF_0000);
        let granular = d >> 55 & 1 == 1;
        let want = f.present && f.segment && f.kind & 0b1110 == 0b0010 && base == 0
            && limit == 0xF_FFFF && granular;
        prop_assert_eq!(is_flat_data(d), want);
    }

    /// Selectors: GDT entry 0 is nothing; an LDT selector is nothing when
    /// no LDT is loaded; both within their table.
    #[test]
    fn selectors(selector in any::<u16>(), gdt_limit in any::<u16>(), ldt in prop::option::of(0..600u32)) {
        let index = u32::from(selector >> 3);
        let want = if selector & 4 != 0 {
            ldt.filter(|&n| index < n).map(|_| SelectorIn::Ldt(index * 8))
        } else if index != 0 && index * 8 + 8 <= u32::from(gdt_limit) + 1 {
            Some(SelectorIn::Gdt(index * 8))
        } else {
            None
        };
        prop_assert_eq!(selector_offset(selector, gdt_limit, ldt), want);
    }

    /// LLDT and LTR take a present LDT / 32-bit TSS descriptor only, at
    /// its base; Xen's LDT copy gets at most one frame of entries.
    #[test]
    fn ldt_and_tss(d in descriptor(), index in 0..16u32) {
        let f = fields(d);
        let (lo, hi) = (d as u32, (d >> 32) as u32);
        let base = (hi & 0xFF00_0000) | ((hi & 0xFF) << 16) | (lo >> 16);
        prop_assert_eq!(descriptor_base(lo, hi), base);
        let limit = (hi & 0xF_0000) | (lo & 0xFFFF);
        let ldt = f.present && !f.segment && f.kind == 2;
        prop_assert_eq!(ldt_descriptor(d), ldt.then(|| (base, ((limit + 1) / 8).min(512))));
        let tss = index != 0 && f.present && !f.segment && matches!(f.kind, 9 | 11);
        prop_assert_eq!(tss_descriptor(index, d), tss.then_some(base));
    }
}
