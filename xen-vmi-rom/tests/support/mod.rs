//! What the host tests of the ROM's paging share: a model of the kernel's
//! memory and of Xen's page-table memory (the shadow cache's `Host`), the
//! frames a test kernel uses, and the check that what Xen holds is the
//! shadow of the kernel's tables computed independently (invariants 1 and 3
//! of `shadow_cache`). Used by tests/shadow_cache.rs and tests/fuzz_calls.rs.
//!
//! The model keeps Xen's page types as `xen/arch/x86/mm.c` does for a PV
//! guest: a frame is a page table of one level while type references hold
//! it (a pin, an entry of a validated table linking it); the first
//! reference validates every entry (taking the references those entries
//! hold in turn), the last one gone drops them again. A write to a frame
//! with no type is plain data (`do_mmu_update`'s `PGT_writable_page`
//! case); a write to a typed one is checked at its level and moves the
//! references of the old and new entry. Where Xen would refuse, the model
//! panics with the rule: the ROM's ops must never meet a refusal.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use mmu_batch::Op;
use xen_abi::xen::{
    MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE, MMUEXT_INVLPG_LOCAL, MMUEXT_NEW_BASEPTR,
    MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_TLB_FLUSH_LOCAL,
    MMUEXT_UNPIN_TABLE, MMU_NORMAL_PT_UPDATE,
};
use xen_vmi_rom::shadow_cache::{Host, Note, ShadowCache, Tag, ENTRIES, TOP_KERNEL_SLOTS};

pub const P: u64 = 1;
pub const RW: u64 = 2;
pub const US: u64 = 4;
pub const PWT: u64 = 8;
pub const A: u64 = 0x20;
pub const D: u64 = 0x40;
pub const PS: u64 = 0x80;
pub const G: u64 = 0x100;
pub const NX: u64 = 1 << 63;
pub const FRAME: u64 = 0x000F_FFFF_FFFF_F000;

/// Kernel frames 0..0x3000 are RAM except the ISA hole 0xA0..0x100, where
/// 0xC0..0xD0 is the ROM (read-only).
pub fn machine(kfn: u64) -> Option<u64> {
    match kfn {
        0xC0..0xD0 => Some(0x20_0000 + kfn),
        0xA0..0x100 => None,
        0..0x3000 => Some(0x10_0000 + kfn),
        _ => None,
    }
}
pub const HOLE: u64 = 0x30_0000;
pub const ROM_LINKS: [u32; 4] = [0x31_0000, 0x31_0001, 0x31_0002, 0x31_0003];
pub const POOL_BASE: u32 = 0x40_0000;
/// The host's scratch frame (`Host::scratch_frame`): the ROM's own, mapped
/// writable by it, so Xen never lets it become a table.
pub const SCRATCH: u32 = 0x32_0000;

/// Data frames pages may map (a few odd ones: the hole, the ROM).
pub const DATA: [u64; 8] = [0x1000, 0x1001, 0x1002, 0x1003, 0xA5, 0xC1, 0x1004, 0x1005];
/// Frames used as page tables and directories, and PDPT frames.
pub const L1S: [u32; 8] = [
    0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007,
];
pub const L2S: [u32; 5] = [0x2100, 0x2101, 0x2102, 0x2103, 0x2104];
pub const CR3S: [u32; 4] = [0x0220_0000, 0x0220_0020, 0x0220_1000, 0x0220_1FE0];
/// Entry indices the steps touch (both ends of a table, the top's edge).
pub const INDICES: [usize; 8] = [0, 1, 2, 7, 423, 424, 510, 511];

/// A page-table type Xen gives a frame (`PGT_l1_page_table` ...; `TopL2`
/// is an L2 with `PGT_pae_xen_l2`, the one under a PAE L3's slot 3, which
/// Xen never lets two L3s share).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtType {
    L1,
    L2,
    TopL2,
    L3,
}

#[derive(Clone, Default)]
pub struct Model {
    pub guest: HashMap<u32, [u64; ENTRIES]>,
    pub xen: HashMap<u32, [u64; ENTRIES]>,
    pub pinned: HashSet<u32>,
    /// Frames with a page-table type: the type and its reference count
    /// (pins and links from validated tables).
    pub types: HashMap<u32, (PtType, u32)>,
    /// Frames mapped writable by entries of validated L1s, and how often
    /// (Xen's `PGT_writable_page` references: such a frame cannot become a
    /// table).
    pub writable: HashMap<u32, u32>,
    pub pool: Vec<u32>,
    pub pool_total: usize,
    pub notes: Vec<Note>,
    pub ops: usize,
    /// Entry changes with a root loaded that queued ops the ROM would
    /// leave queued past the call.
    pub detached_writes: usize,
    /// ReleasePage of a table nothing linked (the record freed at once,
    /// without a look at the roots).
    pub released_unlinked: usize,
    /// When set: each L1 and L2 frame validated (its first type
    /// reference) with its entries then, for
    /// [`check_validated`](Self::check_validated).
    pub validated_l1: Option<Vec<(u32, [u64; ENTRIES])>>,
    /// When set: ops pushed are held here, as a queue not flushed yet,
    /// until [`release_held`](Self::release_held) applies them (and Xen's
    /// rules that depend on their effects, and `check`, wait till then).
    pub held: Option<Vec<Op>>,
    /// The scratch frame as it was when each held copy from it was
    /// pushed: it must not change until the copy is applied.
    pub held_scratch: Vec<[u64; ENTRIES]>,
    /// The number of ops held at each `check_validated` while ops are
    /// held: it is asked again at each as they are released (it checks
    /// the ops since the last time).
    pub held_calls: Vec<usize>,
    /// Flushes so far (`Host::flush_count`): each op applied at its push
    /// counts one, a release of held ops one.
    pub flushes: u32,
    /// The copies from the scratch frame pushed, with their tags: the
    /// frame they fill and the kernel table the tag names.
    pub fills: Vec<(u32, Tag)>,
}

impl Model {
    pub fn new(pool: usize) -> Self {
        Model {
            pool: (0..pool as u32).map(|i| POOL_BASE + i).rev().collect(),
            pool_total: pool,
            // The scratch frame: clear, and mapped writable (by the ROM's
            // own L1, which the model does not hold: one reference).
            xen: HashMap::from([(SCRATCH, [0; ENTRIES])]),
            writable: HashMap::from([(SCRATCH, 1)]),
            ..Model::default()
        }
    }

    /// Applies the held ops in order and stops holding.
    pub fn release_held(&mut self) {
        let mut snapshots = std::mem::take(&mut self.held_scratch).into_iter();
        let mut calls = std::mem::take(&mut self.held_calls).into_iter().peekable();
        for (n, op) in self.held.take().unwrap_or_default().into_iter().enumerate() {
            while calls.next_if(|&end| end <= n).is_some() {
                self.check_validated(&"a held call");
            }
            if Self::copies_scratch(&op) {
                assert!(
                    snapshots.next().as_ref() == Some(self.shadow(SCRATCH)),
                    "the scratch frame changed while a copy from it was queued"
                );
            }
            self.apply(op);
        }
        self.check_validated(&"a held call");
        self.flushes += 1;
    }

    fn copies_scratch(op: &Op) -> bool {
        matches!(op, Op::Mmuext(e) if e.cmd == MMUEXT_COPY_PAGE && e.arg2 == SCRATCH)
    }

    /// A plain store into the scratch frame, as the ROM makes through its
    /// writable mapping.
    pub fn store_scratch(&mut self, index: usize, value: u64) {
        self.xen.get_mut(&SCRATCH).expect("the scratch frame")[index] = value;
    }

    pub fn guest_mut(&mut self, kfn: u32) -> &mut [u64; ENTRIES] {
        self.guest.entry(kfn).or_insert([0; ENTRIES])
    }

    pub fn shadow(&self, mfn: u32) -> &[u64; ENTRIES] {
        self.xen
            .get(&mfn)
            .unwrap_or_else(|| panic!("shadow frame {mfn:#x} was never cleared or copied"))
    }

    /// The type of `mfn` while it has one.
    pub fn typed(&self, mfn: u32) -> Option<PtType> {
        self.types
            .get(&mfn)
            .and_then(|&(t, refs)| (refs > 0).then_some(t))
    }

    /// `get_page_type(mfn, level)`: one more type reference, the frame
    /// validated if it had none.
    fn get_type(&mut self, mfn: u32, level: PtType) {
        if ROM_LINKS.contains(&mfn) {
            // The ROM area's L1s: tables of the loader's, typed for good.
            assert_eq!(
                level,
                PtType::L1,
                "ROM area L1 {mfn:#x} linked as {level:?}"
            );
            return;
        }
        if let Some(t) = self.typed(mfn) {
            assert!(
                t == level && level != PtType::TopL2,
                "Xen refuses: frame {mfn:#x}, a {t:?} table, linked as {level:?}"
            );
            self.types.get_mut(&mfn).unwrap().1 += 1;
            return;
        }
        assert_eq!(
            self.writable.get(&mfn).copied().unwrap_or(0),
            0,
            "Xen refuses: frame {mfn:#x} is mapped writable, it cannot become a {level:?} table"
        );
        let table = *self
            .xen
            .get(&mfn)
            .unwrap_or_else(|| panic!("frame {mfn:#x} linked as {level:?}, never cleared"));
        let entries = if level == PtType::L3 { 4 } else { ENTRIES };
        for (i, &e) in table.iter().enumerate().take(entries) {
            if e & P != 0 {
                self.get_entry(level, i, e);
            }
        }
        self.types.insert(mfn, (level, 1));
        if level == PtType::L1 || level == PtType::L2 {
            if let Some(log) = &mut self.validated_l1 {
                log.push((mfn, table));
            }
        }
    }

    /// Queue order of the zeroing of stale entries (a freed table's frame
    /// taken as it stands): no entry an L1 held when it was validated (a
    /// link from a reached directory, a root slot written, a pin) is
    /// zeroed later in the same call, while it is still a table. A stale
    /// entry zeroed behind the op that made a pinned root reach its frame
    /// would be checked and referenced by Xen, and visible to its walks,
    /// until then; the end-of-step `check` cannot see that. Starts a new
    /// log.
    pub fn check_validated(&mut self, what: &dyn std::fmt::Debug) {
        if let Some(held) = &self.held {
            // Asked again when the ops held so far are released.
            self.held_calls.push(held.len());
            return;
        }
        let Some(log) = self.validated_l1.replace(Vec::new()) else {
            return;
        };
        for (mfn, at) in log {
            if !matches!(self.typed(mfn), Some(PtType::L1 | PtType::L2)) {
                continue;
            }
            let now = self.shadow(mfn);
            for (i, (&was, &is)) in at.iter().zip(now.iter()).enumerate() {
                assert!(
                    was == 0 || is != 0,
                    "{what:?}: table {mfn:#x} validated with entry {i} = {was:#x}, zeroed after it"
                );
            }
        }
    }

    /// `put_page_type`: the last reference gone, the frame's entries drop
    /// theirs and it has no type any more.
    fn put_type(&mut self, mfn: u32) {
        if ROM_LINKS.contains(&mfn) {
            return;
        }
        let (t, refs) = self.types[&mfn];
        assert!(refs > 0, "type reference of {mfn:#x} dropped twice");
        if refs > 1 {
            self.types.insert(mfn, (t, refs - 1));
            return;
        }
        self.types.remove(&mfn);
        let table = *self.shadow(mfn);
        let entries = if t == PtType::L3 { 4 } else { ENTRIES };
        for (i, &e) in table.iter().enumerate().take(entries) {
            if e & P != 0 {
                self.put_entry(t, i, e);
            }
        }
    }

    /// The references a valid entry `e` at `index` of a `level` table holds.
    fn get_entry(&mut self, level: PtType, index: usize, e: u64) {
        let frame = ((e & FRAME) >> 12) as u32;
        match level {
            PtType::L1 => {
                if e & RW != 0 {
                    assert!(
                        self.typed(frame).is_none(),
                        "Xen refuses: an L1 entry maps page table {frame:#x} writable"
                    );
                    *self.writable.entry(frame).or_default() += 1;
                }
            }
            PtType::L2 | PtType::TopL2 => self.get_type(frame, PtType::L1),
            PtType::L3 => self.get_type(
                frame,
                if index == 3 {
                    PtType::TopL2
                } else {
                    PtType::L2
                },
            ),
        }
    }

    fn put_entry(&mut self, level: PtType, _index: usize, e: u64) {
        let frame = ((e & FRAME) >> 12) as u32;
        match level {
            PtType::L1 => {
                if e & RW != 0 {
                    let n = self.writable.get_mut(&frame).expect("a counted mapping");
                    *n -= 1;
                    if *n == 0 {
                        self.writable.remove(&frame);
                    }
                }
            }
            PtType::L2 | PtType::TopL2 | PtType::L3 => self.put_type(frame),
        }
    }

    /// One op as Xen runs it, with Xen's rules asserted.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::MmuUpdate(u) => {
                assert_eq!(u.command(), MMU_NORMAL_PT_UPDATE);
                let maddr = u.machine_addr();
                let mfn = (maddr >> 12) as u32;
                let index = (maddr as usize & 0xFFF) / 8;
                let new = u64::from(u.val);
                let old = self
                    .xen
                    .get(&mfn)
                    .unwrap_or_else(|| panic!("write to {maddr:#x}: frame not cleared first"))
                    [index];
                if let Some(level) = self.typed(mfn) {
                    // mod_lN_entry: the new entry checked and referenced,
                    // then the old one's references dropped.
                    assert!(
                        !(level == PtType::L3 && index == 3),
                        "Xen refuses: slot 3 of an L3 in use changes"
                    );
                    if new & P != 0 {
                        self.get_entry(level, index, new);
                    }
                    self.xen.get_mut(&mfn).unwrap()[index] = new;
                    if old & P != 0 {
                        self.put_entry(level, index, old);
                    }
                } else {
                    // No type: a plain write, checked when the frame is
                    // linked.
                    self.xen.get_mut(&mfn).unwrap()[index] = new;
                }
            }
            Op::Mmuext(e) => {
                let mfn = e.arg1;
                match e.cmd {
                    MMUEXT_CLEAR_PAGE => {
                        assert!(
                            self.typed(mfn).is_none(),
                            "Xen refuses to clear {mfn:#x}: it is a page table"
                        );
                        self.xen.insert(mfn, [0; ENTRIES]);
                    }
                    MMUEXT_COPY_PAGE => {
                        assert!(
                            self.typed(mfn).is_none(),
                            "Xen refuses to copy onto {mfn:#x}: it is a page table"
                        );
                        assert_ne!(mfn, SCRATCH, "a copy onto the scratch frame");
                        let src = *self.shadow(e.arg2);
                        self.xen.insert(mfn, src);
                    }
                    MMUEXT_PIN_L1_TABLE | MMUEXT_PIN_L2_TABLE | MMUEXT_PIN_L3_TABLE => {
                        assert!(self.xen.contains_key(&mfn), "pinning an unknown frame");
                        assert!(self.pinned.insert(mfn), "pinning {mfn:#x} twice");
                        let level = match e.cmd {
                            MMUEXT_PIN_L1_TABLE => PtType::L1,
                            MMUEXT_PIN_L2_TABLE => PtType::L2,
                            _ => PtType::L3,
                        };
                        self.get_type(mfn, level);
                    }
                    MMUEXT_UNPIN_TABLE => {
                        assert!(self.pinned.remove(&mfn), "unpinning {mfn:#x}, not pinned");
                        self.put_type(mfn);
                    }
                    // What the call layer adds: a base switch (to a pinned
                    // L3) and TLB maintenance.
                    MMUEXT_NEW_BASEPTR => {
                        assert!(self.pinned.contains(&mfn), "new base {mfn:#x} not pinned");
                    }
                    MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_INVLPG_LOCAL => {}
                    other => panic!("unexpected mmuext op {other}"),
                }
            }
            Op::UpdateVaMapping { .. } => panic!("the cache never maps by address"),
            Op::StackSwitch { .. } => panic!("the cache never switches stacks"),
        }
    }
}

impl Host for Model {
    fn guest_entry(&mut self, kfn: u32, index: usize) -> u64 {
        self.guest.get(&kfn).map_or(0, |t| t[index])
    }

    fn set_guest_bits(&mut self, kfn: u32, index: usize, bits: u64) {
        self.guest_mut(kfn)[index] |= bits;
    }

    fn machine_frame(&self, kfn: u64) -> Option<u64> {
        machine(kfn)
    }

    fn read_only_frame(&self, kfn: u64) -> bool {
        (0xC0..0xD0).contains(&kfn)
    }

    fn hole_frame(&self) -> u64 {
        HOLE
    }

    fn take_frame(&mut self) -> Option<u32> {
        self.pool.pop()
    }

    fn give_frame(&mut self, mfn: u32) {
        if self.held.is_some() {
            // The unpin or unlink that dropped its type may still be held.
            self.pool.push(mfn);
            return;
        }
        assert!(
            !self.pinned.contains(&mfn),
            "frame {mfn:#x} given back while pinned"
        );
        assert!(
            self.typed(mfn).is_none(),
            "frame {mfn:#x} given back while a page table"
        );
        assert!(!self.pool.contains(&mfn), "frame {mfn:#x} given back twice");
        assert!((POOL_BASE..POOL_BASE + self.pool_total as u32).contains(&mfn));
        self.xen.remove(&mfn);
        self.pool.push(mfn);
    }

    fn push(&mut self, op: Op, tag: Tag) {
        self.ops += 1;
        if let Op::Mmuext(e) = &op {
            if Self::copies_scratch(&op) {
                self.fills.push((e.arg1, tag));
            }
        }
        if let Some(held) = &mut self.held {
            held.push(op);
            if Self::copies_scratch(&op) {
                self.held_scratch.push(*self.shadow(SCRATCH));
            }
            return;
        }
        self.apply(op);
        self.flushes += 1;
    }

    fn note(&mut self, note: Note) {
        self.notes.push(note);
    }

    fn scratch_frame(&self) -> u32 {
        SCRATCH
    }

    fn scratch_store(&mut self, index: usize, value: u64) {
        self.store_scratch(index, value);
    }

    fn flush_count(&self) -> u32 {
        self.flushes
    }
}

/// The shadow of a kernel L1 entry, written out again here: frame through
/// `machine`, the hole page for frames that are not RAM, the ROM read-only,
/// not present until accessed, read-only until dirty, cache bits dropped.
pub fn expect_l1(g: u64) -> u64 {
    if g & P == 0 || g & 0x7FF0_0000_0000_0000 != 0 || g & A == 0 {
        return 0;
    }
    let kfn = (g & FRAME) >> 12;
    match machine(kfn) {
        None => (HOLE << 12) | P | A | (g & (US | NX)),
        Some(m) => {
            let mut v = (m << 12) | (g & (P | RW | US | A | D | G | 0xE00 | NX)) | A;
            if g & D == 0 || (0xC0..0xD0).contains(&kfn) {
                v &= !RW;
            }
            v
        }
    }
}

/// Whether a kernel directory entry names a table the shadow links.
pub fn usable_pde(g: u64) -> bool {
    g & P != 0
        && g & PS == 0
        && g & 0x7FF0_0000_0000_0000 == 0
        && machine((g & FRAME) >> 12).is_some()
}

/// The shadow directory entry `s` shadows the kernel's `g`, and the table
/// it links holds the shadow of the kernel's table.
pub fn check_pde(m: &Model, s: u64, g: u64, what: &str, seen: &mut HashSet<(u32, u32)>) {
    if !usable_pde(g) {
        assert_eq!(s, 0, "{what}: kernel entry {g:#x} unusable, shadow {s:#x}");
        return;
    }
    assert_eq!(
        s & (P | RW | US | NX),
        g & (P | RW | US | NX),
        "{what}: rights of {g:#x} vs {s:#x}"
    );
    let l1 = ((s & FRAME) >> 12) as u32;
    assert_eq!(
        m.typed(l1),
        Some(PtType::L1),
        "{what}: shadow L1 {l1:#x} is not an L1 table in Xen"
    );
    let kfn = ((g & FRAME) >> 12) as u32;
    if !seen.insert((l1, kfn)) {
        return;
    }
    let shadow = m.shadow(l1);
    for k in 0..ENTRIES {
        let ge = m.guest.get(&kfn).map_or(0, |t| t[k]);
        assert_eq!(
            shadow[k],
            expect_l1(ge),
            "{what}: L1 {kfn:#x}[{k}] kernel {ge:#x}"
        );
    }
}

/// Invariant 1 for every cached root, invariant 3 for the pool.
/// A kept frame's listing (page table's or page directory's, `kind`):
/// every entry listed holds its value and is listed once, every other one
/// is 0, and stale entries only while no pinned root reaches the frame
/// (no type), as are a frame's no table owns any more.
fn check_kept_listing(
    m: &Model,
    kind: &str,
    mfn: u32,
    owner: Option<u32>,
    entries: impl IntoIterator<Item = Option<(usize, u64, bool)>>,
    pending: bool,
) {
    // A frame whose writes the scratch holds: the scratch is what the
    // frame will hold, and no pinned root may reach the frame meanwhile.
    let shadow = m.shadow(if pending { SCRATCH } else { mfn });
    let mut listed = [false; ENTRIES];
    let mut stale = false;
    for (index, value, is_stale) in entries.into_iter().flatten() {
        assert_eq!(
            shadow[index], value,
            "known {kind} {mfn:#x} (owner {owner:x?}) entry {index}: listed {value:#x}"
        );
        assert!(
            !listed[index],
            "known {kind} {mfn:#x} lists entry {index} twice"
        );
        listed[index] = true;
        assert!(
            is_stale || owner.is_some(),
            "a kept {kind}'s entries are stale"
        );
        stale |= is_stale;
    }
    for (index, &e) in shadow.iter().enumerate() {
        assert!(
            listed[index] || e == 0,
            "known {kind} {mfn:#x} (owner {owner:x?}) entry {index} = {e:#x} is not listed"
        );
    }
    if stale || owner.is_none() || pending {
        assert!(
            m.typed(mfn).is_none(),
            "known {kind} {mfn:#x} (owner {owner:x?}) with stale entries is a page table"
        );
    }
}

pub fn check(cache: &ShadowCache, m: &Model) {
    if m.held.is_some() {
        // Xen's state waits for the held ops: checked after their release.
        return;
    }
    let seen = &mut HashSet::new();
    for (cr3, l3, top, pdpte) in cache.roots() {
        assert!(m.pinned.contains(&l3), "root {cr3:#x}: L3 not pinned");
        let l3e = m.shadow(l3);
        for slot in 0..3 {
            let g = pdpte[slot];
            if g & P == 0 {
                assert_eq!(l3e[slot], 0, "root {cr3:#x} slot {slot}");
                continue;
            }
            let l2 = ((l3e[slot] & FRAME) >> 12) as u32;
            assert_eq!(
                m.typed(l2),
                Some(PtType::L2),
                "root {cr3:#x} slot {slot}: L2 {l2:#x} is not an L2 table in Xen"
            );
            let kfn = ((g & FRAME) >> 12) as u32;
            let shadow = m.shadow(l2);
            for j in 0..ENTRIES {
                let ge = m.guest.get(&kfn).map_or(0, |t| t[j]);
                if shadow[j] != 0 || ge != 0 {
                    check_pde(
                        m,
                        shadow[j],
                        ge,
                        &format!("root {cr3:#x} slot {slot} L2 {kfn:#x}[{j}]"),
                        seen,
                    );
                }
            }
        }
        assert_eq!(
            l3e[3],
            (u64::from(top) << 12) | P,
            "root {cr3:#x}: top link"
        );
        assert_eq!(m.typed(top), Some(PtType::TopL2), "root {cr3:#x}: top L2");
        let t = m.shadow(top);
        for (j, &s) in t.iter().enumerate().take(TOP_KERNEL_SLOTS) {
            let ge = if pdpte[3] & P != 0 {
                let kfn = ((pdpte[3] & FRAME) >> 12) as u32;
                m.guest.get(&kfn).map_or(0, |t| t[j])
            } else {
                0
            };
            if s != 0 || ge != 0 {
                check_pde(m, s, ge, &format!("root {cr3:#x} top[{j}]"), seen);
            }
        }
        for (k, link) in ROM_LINKS.iter().enumerate() {
            assert_eq!(
                t[TOP_KERNEL_SLOTS + k],
                (u64::from(*link) << 12) | P | RW | A
            );
        }
    }
    for &f in cache.clean_frames() {
        assert!(m.typed(f).is_none(), "kept frame {f:#x} is a page table");
        assert!(
            m.shadow(f).iter().all(|&e| e == 0),
            "kept frame {f:#x} is not clear"
        );
    }
    let pending = cache.scratch_owner_frame().map(|(mfn, written)| {
        assert!(
            cache.known_frames().any(|f| f.0 == mfn && f.1.is_some()),
            "the scratch holds writes for {mfn:#x}, not a page table's known frame"
        );
        // The frame differs from the scratch only where the scratch took
        // writes (so they may still go out one by one).
        let (frame, scratch) = (m.shadow(mfn), m.shadow(SCRATCH));
        for i in 0..ENTRIES {
            assert!(
                frame[i] == scratch[i] || written.contains(&Some(i)),
                "frame {mfn:#x} entry {i} = {:#x}, the scratch {:#x}, not written there",
                frame[i],
                scratch[i]
            );
        }
        mfn
    });
    for (mfn, owner, entries) in cache.known_frames() {
        check_kept_listing(m, "frame", mfn, owner, entries, Some(mfn) == pending);
    }
    for (mfn, owner, entries) in cache.known_dirs() {
        check_kept_listing(m, "directory", mfn, owner, entries, false);
    }
    for f in cache.spare_root_frames() {
        assert!(
            m.typed(f).is_none(),
            "spare root frame {f:#x} is a page table"
        );
    }
    assert_eq!(
        m.pool_total - m.pool.len(),
        cache.frames_in_use(),
        "frames out of the pool vs frames the cache holds"
    );
}
