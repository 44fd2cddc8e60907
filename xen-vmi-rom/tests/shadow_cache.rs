//! The shadow cache against a model of Xen's page-table memory.
//!
//! Random sequences of what a kernel does to its tables (entries written
//! and announced, tables allocated and released, CR3 loads, page faults,
//! INVLPG checks), with a pool small enough to force evictions. After every
//! step the model's machine memory must hold, for every cached root, the
//! shadow of the kernel's tables as computed here independently (invariant
//! 1 of `shadow_cache`), every frame taken from the pool must be accounted
//! for (invariant 3), and Xen's rules must hold for every op as it arrives
//! (a frame is cleared before use, a page table exactly while a validated
//! table links it or it is pinned, never cleared or given back while it
//! is one, ...).

use mmu_batch::Op;
use proptest::prelude::*;
use xen_vmi_rom::shadow_cache::{
    Access, Fault, Host, Kind, Note, ShadowCache, ShadowError, Tag, What, ENTRIES,
    KNOWN_DIR_ENTRIES, KNOWN_ENTRIES, KNOWN_SLOTS, MAX_TABLES, TOP_KERNEL_SLOTS,
};
use xen_vmi_rom::shadow_entry::{eager_bits, l1_value_settled};

mod support;
use support::*;

#[derive(Clone, Debug)]
enum Step {
    /// A page-table entry written (SetPxE) or changed natively and
    /// announced (UpdatePxE).
    SetPte {
        l1: usize,
        index: usize,
        value: u64,
    },
    SetPde {
        l2: usize,
        index: usize,
        value: u64,
    },
    SetPdpte {
        cr3: usize,
        slot: usize,
        value: u64,
    },
    AllocateL1 {
        l1: usize,
    },
    AllocateL2 {
        l2: usize,
    },
    ReleaseL1 {
        l1: usize,
    },
    ReleaseL2 {
        l2: usize,
    },
    ReleasePdpt {
        cr3: usize,
    },
    Load {
        cr3: usize,
    },
    Fault {
        slot: usize,
        pde: usize,
        pte: usize,
        write: bool,
        user: bool,
    },
    /// PDPT slot -> directory -> table -> page, each entry announced: a
    /// mapping the faults and loads then meet.
    Chain {
        cr3: usize,
        slot: usize,
        l2: usize,
        pde: usize,
        l1: usize,
        pte: usize,
        value: u64,
    },
    /// The last chain's root loaded, then a fault at its address.
    FaultLast {
        write: bool,
    },
    /// The same, then the kernel's update of the entry that maps the
    /// address (as its handler would make it), to `value`.
    FaultLastUpdate {
        write: bool,
        value: u64,
    },
    Verify {
        slot: usize,
        pde: usize,
        pte: usize,
    },
    /// A page table no step links (frame `SPARE_L1 + n`) announced: its
    /// record takes a known slot, giving up another table's in turn
    /// (only in [`step_giving_up_known`]'s sequences).
    AllocateSpareL1 {
        n: u32,
    },
}

/// The first frame of [`Step::AllocateSpareL1`]'s page tables.
const SPARE_L1: u32 = 0x2300;

fn pte_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        8 => (prop::sample::select(DATA.to_vec()), any::<u16>(), prop::bool::weighted(0.02))
            .prop_map(|(f, bits, reserved)| {
                let flags = u64::from(bits) & (RW | US | A | D | G | PWT | 0x200);
                (f << 12) | P | flags | if bits & 0x8000 != 0 { NX } else { 0 }
                    | if reserved { 1 << 55 } else { 0 }
            }),
    ]
}

fn pde_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        8 => (prop::sample::select(L1S.to_vec()), any::<u8>()).prop_map(|(f, bits)| {
            let flags = u64::from(bits) & (RW | US | A);
            (u64::from(f) << 12) | P | flags | if bits & 0x80 != 0 { NX } else { 0 }
        }),
        1 => Just((0x1000u64 << 12) | P | RW | PS),
        1 => Just((0xA8u64 << 12) | P | RW),
    ]
}

fn pdpte_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        6 => prop::sample::select(L2S.to_vec()).prop_map(|f| (u64::from(f) << 12) | P),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let l1 = 0..L1S.len();
    let l2 = 0..L2S.len();
    let index = prop::sample::select(INDICES.to_vec());
    prop_oneof![
        12 => (l1.clone(), index.clone(), pte_value()).prop_map(|(l1, index, value)| Step::SetPte { l1, index, value }),
        6 => (l2.clone(), index.clone(), pde_value()).prop_map(|(l2, index, value)| Step::SetPde { l2, index, value }),
        3 => (0..CR3S.len(), 0..4usize, pdpte_value()).prop_map(|(cr3, slot, value)| Step::SetPdpte { cr3, slot, value }),
        2 => l1.clone().prop_map(|l1| Step::AllocateL1 { l1 }),
        1 => l2.clone().prop_map(|l2| Step::AllocateL2 { l2 }),
        1 => l1.prop_map(|l1| Step::ReleaseL1 { l1 }),
        1 => l2.prop_map(|l2| Step::ReleaseL2 { l2 }),
        1 => (0..CR3S.len()).prop_map(|cr3| Step::ReleasePdpt { cr3 }),
        4 => (0..CR3S.len()).prop_map(|cr3| Step::Load { cr3 }),
        4 => (0..4usize, index.clone(), index.clone(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(slot, pde, pte, write, user)| Step::Fault { slot, pde, pte, write, user }),
        2 => (0..4usize, index.clone(), index.clone()).prop_map(|(slot, pde, pte)| Step::Verify { slot, pde, pte }),
        4 => (0..CR3S.len(), 0..4usize, 0..L2S.len(), index.clone(), 0..L1S.len(), index, pte_value())
            .prop_map(|(cr3, slot, l2, pde, l1, pte, value)| Step::Chain { cr3, slot, l2, pde, l1, pte, value }),
        4 => any::<bool>().prop_map(|write| Step::FaultLast { write }),
        4 => (any::<bool>(), pte_value()).prop_map(|(write, value)| Step::FaultLastUpdate { write, value }),
    ]
}

/// [`step`], with spare page tables announced often: each takes a known
/// slot, so the tables the steps link lose theirs in turn and their
/// entries' updates after a fault may take UpdatePxELong's path in
/// assembly (`ShadowCache::quick_fault_entry`, `FaultPath::update_kfn`),
/// among every other change between the fault and the update.
fn step_giving_up_known() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => step(),
        1 => (0..2 * KNOWN_SLOTS as u32).prop_map(|n| Step::AllocateSpareL1 { n }),
        2 => (any::<bool>(), pte_value()).prop_map(|(write, value)| Step::FaultLastUpdate { write, value }),
    ]
}

fn va(slot: usize, pde: usize, pte: usize) -> u32 {
    ((slot as u32) << 30) | ((pde as u32) << 21) | ((pte as u32) << 12) | 0x123
}

/// What Xen can walk from the loaded root: every frame reachable from its
/// L3 (the L3, its L2s, their L1s; the ROM area's L1s are not the
/// cache's), with its contents and whether it is pinned.
fn loaded_tree(cache: &ShadowCache, m: &Model) -> Vec<(u32, [u64; ENTRIES], bool)> {
    let Some(cr3) = cache.current_cr3() else {
        return Vec::new();
    };
    let (_, l3, _, _) = cache.roots().find(|r| r.0 == cr3).expect("the loaded root");
    let mut frames = vec![l3];
    for &l3e in &m.shadow(l3)[..4] {
        if l3e & P == 0 {
            continue;
        }
        let l2 = ((l3e & FRAME) >> 12) as u32;
        frames.push(l2);
        for &l2e in m.shadow(l2).iter() {
            let l1 = ((l2e & FRAME) >> 12) as u32;
            if l2e & P != 0 && !ROM_LINKS.contains(&l1) {
                frames.push(l1);
            }
        }
    }
    frames
        .into_iter()
        .map(|f| (f, *m.shadow(f), m.pinned.contains(&f)))
        .collect()
}

/// A call the ROM leaves queued past its end (`may_change_current` false,
/// AllocatePage, ReleasePage) must not have changed anything Xen walks
/// from the loaded root.
fn assert_detached(
    before: &[(u32, [u64; ENTRIES], bool)],
    cache: &ShadowCache,
    m: &Model,
    what: &str,
) {
    let after = loaded_tree(cache, m);
    assert_eq!(
        before.len(),
        after.len(),
        "{what}: left queued, but the loaded tree changed shape"
    );
    for (b, a) in before.iter().zip(&after) {
        assert!(
            b == a,
            "{what}: left queued, but shadow frame {:#x} of the loaded tree changed",
            b.0
        );
    }
}

fn run(steps: &[Step], pool: usize) -> (Box<ShadowCache>, Model) {
    run_loading(steps, pool, false)
}

thread_local! {
    /// The scratch frame's threshold `run` sets (`set_scratch_copy_min`):
    /// the ROM's `SCRATCH_COPY_MIN` unless a random test lowers it, so that
    /// the model's tables (writing at most `INDICES.len()` entries) take the
    /// scratch, fill it, and are copied or written from it.
    static SCRATCH_MIN: std::cell::Cell<u32> =
        const { std::cell::Cell::new(xen_vmi_rom::shadow_cache::SCRATCH_COPY_MIN) };
}

thread_local! {
    /// Whether `run` holds the model's ops back over each run of table
    /// changes (lazy MMU mode: they reach Xen at the next load, fault or
    /// INVLPG), so that a copy from the scratch frame stays queued while
    /// the next tables are written.
    static HOLD_LAZY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A threshold for a random sequence of `n` steps: 1 to 4.
fn scratch_min_for(n: usize) -> u32 {
    1 + n as u32 % 4
}

/// [`run`], with `switch_loads`: each CR3 load first tries the context
/// switch's way (`cached_root`, the PDPT read by the caller,
/// `load_unchanged_root`; the read refused every third time, as a host
/// without a cheap way to the entries may) and takes `load_root` only
/// when that answers None.
fn run_loading(steps: &[Step], pool: usize, switch_loads: bool) -> (Box<ShadowCache>, Model) {
    let mut loads = 0u32;
    // SAFETY: the cache is plain data for which all-zero bytes are valid
    // (its documentation), as the ROM relies on too.
    let mut cache: Box<ShadowCache> = unsafe { Box::new_zeroed().assume_init() };
    cache.reset(ROM_LINKS);
    cache.set_scratch_copy_min(SCRATCH_MIN.with(|c| c.get()));
    let mut m = Model::new(pool);
    // Running out of frames for the current root is the one legitimate
    // error (the ROM then crashes the guest): the run ends there.
    macro_rules! ok {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(ShadowError::OutOfFrames) if pool < 64 => return (cache, m),
                Err(e) => panic!("{e:?}"),
            }
        };
    }
    let mut last_chain = (0, CR3S[0]);
    m.validated_l1 = Some(Vec::new());
    let hold = HOLD_LAZY.with(|c| c.get());
    for step in steps {
        // Lazy MMU mode (`HOLD_LAZY`): the ops of a run of table changes
        // reach Xen together, at the next step that flushes the queue.
        let lazy = matches!(
            *step,
            Step::SetPte { .. }
                | Step::SetPde { .. }
                | Step::SetPdpte { .. }
                | Step::AllocateL1 { .. }
                | Step::AllocateL2 { .. }
                | Step::ReleaseL1 { .. }
                | Step::ReleaseL2 { .. }
                | Step::ReleasePdpt { .. }
                | Step::AllocateSpareL1 { .. }
                | Step::Chain { .. }
        );
        if hold && lazy && m.held.is_none() {
            m.held = Some(Vec::new());
        } else if !lazy && m.held.is_some() {
            m.release_held();
            check(&cache, &m);
        }
        // Calls the ROM would leave queued: their ops must not reach the
        // loaded tree (checked after the step).
        let detached = match *step {
            Step::SetPte { l1: t, .. } => !cache.may_change_current(L1S[t]),
            Step::SetPde { l2: t, .. } => !cache.may_change_current(L2S[t]),
            Step::SetPdpte { cr3, .. } => !cache.may_change_current(CR3S[cr3] >> 12),
            Step::AllocateL1 { .. }
            | Step::AllocateL2 { .. }
            | Step::ReleaseL1 { .. }
            | Step::ReleaseL2 { .. }
            | Step::ReleasePdpt { .. }
            | Step::AllocateSpareL1 { .. } => true,
            _ => false,
        };
        let before = detached.then(|| loaded_tree(&cache, &m));
        let entry_step = matches!(*step, Step::SetPte { .. } | Step::SetPde { .. });
        let (loaded, ops_before) = (cache.current_cr3().is_some(), m.ops);
        match *step {
            Step::SetPte { l1, index, value } => {
                let kfn = L1S[l1];
                m.guest_mut(kfn)[index] = value;
                let seen = ok!(entry_update(&mut cache, &mut m, kfn, index, value));
                assert_eq!(seen, !detached, "entry_changed's answer");
            }
            Step::SetPde { l2, index, value } => {
                let kfn = L2S[l2];
                m.guest_mut(kfn)[index] = value;
                let seen = ok!(cache.entry_changed(&mut m, kfn, index, value));
                assert_eq!(seen, !detached, "entry_changed's answer");
            }
            Step::SetPdpte { cr3, slot, value } => {
                let cr3 = CR3S[cr3];
                let index = ((cr3 & 0xFFF) / 8) as usize + slot;
                m.guest_mut(cr3 >> 12)[index] = value;
                let seen = ok!(cache.entry_changed(&mut m, cr3 >> 12, index, value));
                assert_eq!(seen, !detached, "entry_changed's answer");
            }
            Step::AllocateL1 { l1 } => {
                let kfn = L1S[l1];
                let zeroed = m.guest.get(&kfn).is_none_or(|t| t.iter().all(|&e| e == 0));
                ok!(cache.allocate_l1(&mut m, kfn, zeroed));
            }
            Step::AllocateSpareL1 { n } => {
                let kfn = SPARE_L1 + n;
                let zeroed = m.guest.get(&kfn).is_none_or(|t| t.iter().all(|&e| e == 0));
                ok!(cache.allocate_l1(&mut m, kfn, zeroed));
            }
            Step::AllocateL2 { l2 } => {
                let kfn = L2S[l2];
                let zeroed = m.guest.get(&kfn).is_none_or(|t| t.iter().all(|&e| e == 0));
                ok!(cache.allocate_l2(&mut m, kfn, zeroed, None));
            }
            Step::ReleaseL1 { l1 } => {
                if let Some((_, 0)) = cache.table(L1S[l1], Kind::L1) {
                    m.released_unlinked += 1;
                }
                cache.release(&mut m, L1S[l1], false);
                // Released with no link left: no record remains.
                let left = cache.table(L1S[l1], Kind::L1);
                assert!(left.is_none_or(|(_, refs)| refs > 0), "{left:?}");
            }
            Step::ReleaseL2 { l2 } => {
                if let Some((_, 0)) = cache.table(L2S[l2], Kind::L2) {
                    m.released_unlinked += 1;
                }
                cache.release(&mut m, L2S[l2], true);
                let left = cache.table(L2S[l2], Kind::L2);
                assert!(left.is_none_or(|(_, refs)| refs > 0), "{left:?}");
            }
            Step::ReleasePdpt { cr3 } => cache.release(&mut m, CR3S[cr3] >> 12, true),
            Step::Load { cr3 } => {
                let cr3 = CR3S[cr3];
                loads += 1;
                let switched = switch_loads
                    .then(|| cache.cached_root(cr3))
                    .flatten()
                    .filter(|_| !loads.is_multiple_of(3))
                    .and_then(|cached| {
                        let entry = |s| m.guest_entry(cached.kfn, cached.first + s);
                        cache.load_unchanged_root(cached, entry)
                    });
                if switch_loads {
                    SWITCH_LOADS.with(|c| {
                        let (taken, general) = c.get();
                        c.set(match switched {
                            Some(_) => (taken + 1, general),
                            None => (taken, general + 1),
                        });
                    });
                }
                let l3 = match switched {
                    Some(l3) => l3,
                    None => ok!(cache.load_root(&mut m, cr3)),
                };
                let (_, root_l3, _, pdpte) = cache.roots().find(|r| r.0 == cr3).unwrap();
                assert_eq!(l3, root_l3);
                let first = ((cr3 & 0xFFF) / 8) as usize;
                for (slot, e) in pdpte.iter().enumerate() {
                    assert_eq!(
                        *e,
                        m.guest_entry(cr3 >> 12, first + slot),
                        "PDPT entry {slot} as loaded"
                    );
                }
                assert_eq!(cache.current_cr3(), Some(cr3));
            }
            Step::Fault {
                slot,
                pde,
                pte,
                write,
                user,
            } => {
                ok!(fault(&mut cache, &mut m, va(slot, pde, pte), write, user))
            }
            Step::FaultLast { write } => {
                ok!(cache.load_root(&mut m, last_chain.1));
                m.check_validated(step);
                ok!(fault(&mut cache, &mut m, last_chain.0, write, false))
            }
            Step::FaultLastUpdate { write, value } => {
                let va = last_chain.0;
                ok!(cache.load_root(&mut m, last_chain.1));
                m.check_validated(step);
                ok!(fault(&mut cache, &mut m, va, write, true));
                m.check_validated(step);
                // The entry the kernel's tables use for the address, if
                // they reach a page table.
                let cr3 = last_chain.1;
                let pdpte = cache.roots().find(|r| r.0 == cr3).unwrap().3[(va >> 30) as usize];
                let pde =
                    m.guest_entry(((pdpte & FRAME) >> 12) as u32, ((va >> 21) & 511) as usize);
                let kfn = ((pde & FRAME) >> 12) as u32;
                if pdpte & P != 0 && pde & P != 0 && L1S.contains(&kfn) {
                    let index = ((va >> 12) & 511) as usize;
                    m.guest_mut(kfn)[index] = value;
                    ok!(entry_update(&mut cache, &mut m, kfn, index, value));
                }
            }
            Step::Chain {
                cr3,
                slot,
                l2,
                pde,
                l1,
                pte,
                value,
            } => {
                let cr3 = CR3S[cr3];
                last_chain = (va(slot, pde, pte), cr3);
                let writes = [
                    (
                        cr3 >> 12,
                        ((cr3 & 0xFFF) / 8) as usize + slot,
                        (u64::from(L2S[l2]) << 12) | P,
                    ),
                    (L2S[l2], pde, (u64::from(L1S[l1]) << 12) | P | RW | US),
                    (L1S[l1], pte, value),
                ];
                for (kfn, index, value) in writes {
                    m.guest_mut(kfn)[index] = value;
                    ok!(cache.entry_changed(&mut m, kfn, index, value));
                    m.check_validated(step);
                }
            }
            Step::Verify { slot, pde, pte } => {
                // Every change was announced: nothing to repair.
                let before = m.notes.len();
                let repaired =
                    ok!(cache.verify(&mut m, va(slot, pde, pte), |m, mfn, i| m.shadow(mfn)[i]));
                assert!(
                    !repaired,
                    "verify repaired an announced entry: {:?}",
                    &m.notes[before..]
                );
            }
        }
        if let Some(before) = before {
            assert_detached(&before, &cache, &m, &format!("{step:?}"));
            if entry_step && loaded && m.ops > ops_before {
                m.detached_writes += 1;
            }
        }
        check(&cache, &m);
        m.check_validated(step);
        check_directory_tests(&cache, &mut m, step);
        assert!(
            cache.lookup_cache_agrees(),
            "the last-hit record cache disagrees with the hash chains after {step:?}"
        );
        assert!(
            cache.fault_path_holds(&mut m),
            "the directory entry remembered from a fault is stale after {step:?}"
        );
        check_assembly_update_path(&cache, &m, step);
    }
    if m.held.is_some() {
        m.release_held();
        check(&cache, &m);
    }
    (cache, m)
}

thread_local! {
    /// Entries UpdatePxELong's path in assembly would take, found by
    /// `check_assembly_update_path` after the steps.
    static QUICK_NAMED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// After any step (whatever came between the fault and now: another
/// entry's update, a table announced or released, a directory entry
/// changed, a root loaded or freed, a known frame given up or settled),
/// every entry UpdatePxELong's path in assembly would take
/// (`quick_fault_entry`, tried at every frame and entry the steps use) is
/// the one `fault_entry` names, in a table with no known frame, not
/// read-only, with no other record: the Rust path's one-step update, never
/// another. At most one entry is ever named (the fault's).
fn check_assembly_update_path(cache: &ShadowCache, m: &Model, step: &Step) {
    let mut named = 0;
    let spares = (0..2 * KNOWN_SLOTS as u32).map(|n| SPARE_L1 + n);
    for kfn in L1S.iter().copied().chain(L2S).chain(spares) {
        for &index in &INDICES {
            let Some(q) = cache.quick_fault_entry(kfn, (index * 8) as u32) else {
                continue;
            };
            named += 1;
            assert_eq!(
                cache.fault_entry(kfn, index),
                Some(q),
                "after {step:?}: the assembly's update path takes {kfn:#x}:{index}, \
                 fault_entry does not name it"
            );
            assert!(
                cache.quick_update_table_unlisted(q) && !m.read_only_frame(u64::from(kfn)),
                "after {step:?}: the assembly's update path takes {kfn:#x}:{index}, \
                 a known or read-only frame's table"
            );
            for kind in [Kind::L2, Kind::Top] {
                assert_eq!(
                    cache.table(kfn, kind),
                    None,
                    "after {step:?}: the assembly's update path takes {kfn:#x}, also a {kind:?}"
                );
            }
        }
    }
    assert!(named <= 1, "after {step:?}: {named} entries named");
    QUICK_NAMED.with(|c| c.set(c.get() + named));
}

thread_local! {
    /// CR3 loads of `run_loading` with `switch_loads`: (the switch's way
    /// answered, `load_root` taken).
    static SWITCH_LOADS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// The random sequences load unchanged cached roots the switch's way, and
/// reach its other answers too (a root not cached or changed, the read
/// refused), so `a_switch_load_is_load_root` compares both.
#[test]
fn random_sequences_load_both_ways() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(step(), 60..120);
    for pool in [16, 4096] {
        for _ in 0..20 {
            let steps = strategy.new_tree(&mut runner).unwrap().current();
            run_loading(&steps, pool, true);
        }
    }
    let (taken, general) = SWITCH_LOADS.with(|c| c.get());
    assert!(
        taken > 50 && general > 50,
        "switch loads {taken}, general {general}"
    );
}

thread_local! {
    /// Entry updates `ShadowCache::fault_entry_changed` took in `run`.
    static FUSED_UPDATES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Of those, the ones `fault_entry_write_settled` took too.
    static SETTLED_UPDATES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Entry updates `ShadowCache::quick_fault_entry` (UpdatePxELong's
    /// path in assembly) named.
    static QUICK_UPDATES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A bitwise copy of the cache (plain data: integers, bools and enums, no
/// pointer and no `Drop`), to run the general path beside the quick one.
fn copy_of(cache: &ShadowCache) -> Box<ShadowCache> {
    // SAFETY: all-zero bytes are a valid cache (its documentation), and
    // the copy then takes every byte of a valid one.
    let mut copy: Box<ShadowCache> = unsafe { Box::new_zeroed().assume_init() };
    // SAFETY: two distinct, valid, aligned caches; the type has no
    // pointers or destructor, so the bytes are an independent value.
    unsafe { std::ptr::copy_nonoverlapping(cache, &mut *copy, 1) };
    copy
}

/// The kernel's entry `kfn:index` changed to `value` (already in the
/// model's guest memory), announced. Where `fault_entry_changed` takes it
/// (the entry of the last quick fault's address), it must do exactly what
/// the general path does, which runs beside it on a copy: `entry_changed`
/// (answering true), then the end of a call outside lazy mode naming the
/// fault's address, whose entry `loaded_entry_maddr` gives: the same
/// address and entry, the same one write queued, the same kernel and Xen
/// tables, notes and statistics, and the address taken in both.
fn entry_update(
    cache: &mut Box<ShadowCache>,
    m: &mut Model,
    kfn: u32,
    index: usize,
    value: u64,
) -> Result<bool, ShadowError> {
    // UpdatePxELong's path in assembly (`quick_fault_entry`): only where
    // `fault_entry` names the same entry, in a table with no known frame
    // (whose writes keep a list only the Rust path keeps) and not
    // read-only; never for an address that is not 8-aligned.
    let offset = (index as u32) * 8;
    let quick = cache.quick_fault_entry(kfn, offset);
    for misaligned in [offset + 1, offset + 4] {
        assert_eq!(
            cache.quick_fault_entry(kfn, misaligned),
            None,
            "the assembly's update path at offset {misaligned:#x}"
        );
    }
    if let Some(q) = quick {
        assert_eq!(
            cache.fault_entry(kfn, index),
            Some(q),
            "the assembly's update path names another entry than fault_entry"
        );
        assert!(
            cache.quick_update_table_unlisted(q) && !m.read_only_frame(u64::from(kfn)),
            "the assembly's update path takes a known or read-only frame's table"
        );
        QUICK_UPDATES.with(|c| c.set(c.get() + 1));
    }
    let (mut general, mut gm) = (copy_of(cache), m.clone());
    let general_seen = general.entry_changed(&mut gm, kfn, index, value);
    let general_va = general.take_fault_va();
    // The ROM's one-step write of an entry with nothing to add
    // (`fault_entry_write_settled`, its value from `l1_value_settled`), on
    // a copy: where it applies, the same write and the same cache after.
    let mut settled = copy_of(cache);
    let settled_write = settled.fault_entry(kfn, index).and_then(|target| {
        let v = l1_value_settled(value, |f| m.machine_frame(f), |f| m.read_only_frame(f))?;
        let mut sm = m.clone();
        Some(settled.fault_entry_write_settled(&mut sm, target, kfn, value, v))
    });
    let Some(w) = cache.fault_entry_changed(m, kfn, index, value) else {
        assert_eq!(
            settled_write, None,
            "the settled write where fault_entry_changed declines"
        );
        return cache.entry_changed(m, kfn, index, value);
    };
    if let Some(ws) = settled_write {
        assert_eq!(ws, w, "the settled write");
        // What the ROM's UpdatePxELong path in assembly has worked out
        // again to report Xen's refusal, the address already taken
        // (`paging::update_pxe_long_quick_refused`): the same write.
        assert_eq!(
            settled.fault_path_write_settled(ws.va, kfn, index as u16, value, ws.value),
            ws,
            "the fault path's write, for a refusal's report"
        );
        assert_eq!(
            settled.stats(),
            cache.stats(),
            "the settled write's statistics"
        );
        assert_eq!(
            settled.take_fault_va(),
            None,
            "the settled write takes the address"
        );
        SETTLED_UPDATES.with(|c| c.set(c.get() + 1));
    }
    let ctx = format!(
        "entry {kfn:#x}:{index} = {value:#x} after a fault at {:#x}",
        w.va
    );
    assert_eq!(general_seen, Ok(true), "{ctx}: entry_changed's answer");
    assert_eq!(general_va, Some(w.va), "{ctx}: the fault's address");
    loaded_entry_is_xens(&general, &gm, w.va);
    assert_eq!(
        general.loaded_entry_maddr(w.va),
        Some(w.entry_maddr),
        "{ctx}: the entry the address maps"
    );
    assert_eq!(w.tag.kfn, kfn, "{ctx}: the tag");
    assert_eq!(usize::from(w.tag.index), index, "{ctx}: the tag");
    m.push_pte_write(w.entry_maddr, w.value, w.tag);
    assert_eq!(m.ops, gm.ops, "{ctx}: ops queued");
    assert!(
        m.xen == gm.xen,
        "{ctx}: Xen's tables differ from the general path's"
    );
    assert!(m.guest == gm.guest, "{ctx}: the kernel's tables differ");
    assert_eq!(m.notes, gm.notes, "{ctx}: notes");
    assert_eq!(cache.stats(), general.stats(), "{ctx}: statistics");
    assert_eq!(
        cache.take_fault_va(),
        None,
        "{ctx}: the address is taken once"
    );
    FUSED_UPDATES.with(|c| c.set(c.get() + 1));
    Ok(true)
}

thread_local! {
    /// How the fault's quick directory test answered in `run`: (said
    /// current, full test only and equal, not equal).
    static DIRECTORY_TESTS: std::cell::Cell<(usize, usize, usize)> =
        const { std::cell::Cell::new((0, 0, 0)) };
}

/// The page fault's quick test of the directory entry (the mirror code
/// names the entry's record, `ShadowCache::directory_check`) may only say
/// "current" when the full comparison with the code the entry should have
/// says so too: checked for every directory entry the steps use.
fn check_directory_tests(cache: &ShadowCache, m: &mut Model, step: &Step) {
    for slot in 0..4 {
        for &pde in &INDICES {
            let Some((quick, equal)) = cache.directory_check(m, va(slot, pde, 0)) else {
                continue;
            };
            assert!(
                !quick || equal,
                "after {step:?}: the quick test calls directory entry {pde} of slot {slot} current, \
                 the full one does not"
            );
            DIRECTORY_TESTS.with(|c| {
                let (mut q, mut e, mut n) = c.get();
                match (quick, equal) {
                    (true, _) => q += 1,
                    (false, true) => e += 1,
                    (false, false) => n += 1,
                }
                c.set((q, e, n));
            });
        }
    }
}

thread_local! {
    /// Faults the one-step path's decision (`ShadowCache::quick_kernels_fault`)
    /// answered in the tests, before `kernels_fault` did.
    static QUICK_PATH_FAULTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// Faults `ShadowCache::kernels_fault` answered in the tests: (not
    /// mapped, mapped and denied).
    static QUICK_FAULTS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// The kernel's directory and leaf entries for `va` in the loaded root.
fn walked_entries(cache: &ShadowCache, m: &mut Model, va: u32) -> (u64, u64) {
    let cr3 = cache.current_cr3().expect("a loaded root");
    let pdpte = cache.roots().find(|r| r.0 == cr3).unwrap().3[(va >> 30) as usize];
    let pde = m.guest_entry(((pdpte & FRAME) >> 12) as u32, ((va >> 21) & 511) as usize);
    let pte = m.guest_entry(((pde & FRAME) >> 12) as u32, ((va >> 12) & 511) as usize);
    (pde, pte)
}

thread_local! {
    /// Addresses `ShadowCache::loaded_entry_maddr` named an entry for.
    static LOADED_ENTRIES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `ShadowCache::loaded_entry_maddr` against Xen's own walk of the loaded
/// shadow tables (what `update_va_mapping(va, ..)` writes: the L3 entry,
/// a present directory entry without PSE, the L1 entry of `va`): where it
/// names an entry, it is that one. The model applies every op at once, so
/// its tables are what Xen would hold with nothing queued.
fn loaded_entry_is_xens(cache: &ShadowCache, m: &Model, va: u32) {
    let Some(maddr) = cache.loaded_entry_maddr(va) else {
        return;
    };
    let cr3 = cache
        .current_cr3()
        .expect("an entry only with a loaded root");
    let l3 = cache.roots().find(|r| r.0 == cr3).unwrap().1;
    let l3e = m.xen[&l3][(va >> 30) as usize];
    assert!(l3e & P != 0, "va {va:#x}: L3 entry {l3e:#x}");
    let l2e = m.xen[&(((l3e & FRAME) >> 12) as u32)][((va >> 21) & 511) as usize];
    assert_eq!(l2e & (P | 0x80), P, "va {va:#x}: directory entry {l2e:#x}");
    let xens = (l2e & FRAME) + u64::from((va >> 12) & 511) * 8;
    assert_eq!(maddr, xens, "va {va:#x}: the entry Xen's walk finds");
    LOADED_ENTRIES.with(|c| c.set(c.get() + 1));
}

/// The #PF path's quick answer (`ShadowCache::kernels_fault`) against
/// `fault` at `va`, for every access kind (read, write, fetch; user or
/// supervisor) and CR0.WP set or clear: where it answers, `fault` must say
/// the fault is the kernel's, with the same P bit for the error code, and
/// change nothing (no op, no note, no statistic, the kernel's entries
/// as they were). Such a `fault` leaves the state as it was, so the next
/// kind is asked of the same state.
fn quick_kernel_faults(cache: &mut ShadowCache, m: &mut Model, va: u32) -> Result<(), ShadowError> {
    for kind in 0..16u32 {
        let access = Access {
            write: kind & 1 != 0,
            user: kind & 2 != 0,
            fetch: kind & 4 != 0 && kind & 1 == 0,
        };
        let wp = kind & 8 != 0;
        let (ops, notes, stats) = (m.ops, m.notes.len(), cache.stats());
        // The #PF one-step path's decision (in assembly in the ROM), asked
        // first: `kernels_fault` may remember a directory entry. Xen's P
        // bit varies with the kind: the path must not look at it.
        let error_code = [
            (access.write, 2),
            (access.user, 4),
            (access.fetch, 16),
            (kind & 4 != 0, 1),
        ]
        .iter()
        .fold(0, |code, &(set, bit)| if set { code | bit } else { code });
        let quick = wp
            .then(|| cache.quick_kernels_fault(m, va, error_code))
            .flatten();
        let answer = cache.kernels_fault(m, va, access, wp);
        if let Some(quick) = quick {
            assert_eq!(
                answer,
                Some(quick),
                "va {va:#x} {access:?}: the one-step path's decision is not kernels_fault's"
            );
            QUICK_PATH_FAULTS.with(|c| c.set(c.get() + 1));
        }
        let Some(mapped) = answer else {
            continue;
        };
        // Answered, the directory entry is remembered: the next such fault
        // takes the one-step path, with the same answer.
        if wp {
            assert!(
                cache.fault_path_remembers(va),
                "va {va:#x} {access:?}: kernels_fault answered without remembering the entry"
            );
            assert_eq!(
                cache.quick_kernels_fault(m, va, error_code),
                Some(mapped),
                "va {va:#x} {access:?}: the one-step path declines what kernels_fault answered"
            );
        }
        // The entries `fault` would set A or D in (it sets nothing else).
        let walked = walked_entries(cache, m, va);
        let ctx = format!("va {va:#x} {access:?} wp {wp}");
        assert_eq!(
            (m.ops, m.notes.len()),
            (ops, notes),
            "{ctx}: the quick answer queued or noted something"
        );
        assert_eq!(
            cache.fault(m, va, access, wp)?,
            Fault::Kernel,
            "{ctx}: the quick answer said the kernel's"
        );
        assert_eq!(
            cache.last_fault_mapped(),
            mapped,
            "{ctx}: P bit of the error code"
        );
        assert_eq!(
            (m.ops, m.notes.len()),
            (ops, notes),
            "{ctx}: fault queued or noted something"
        );
        assert!(cache.stats() == stats, "{ctx}: fault counted something");
        assert_eq!(
            walked_entries(cache, m, va),
            walked,
            "{ctx}: the kernel's entries changed"
        );
        QUICK_FAULTS.with(|c| {
            let (n, d) = c.get();
            c.set(if mapped { (n, d + 1) } else { (n + 1, d) });
        });
    }
    Ok(())
}

/// A fault is the kernel's exactly when its own tables (as loaded) deny
/// the access; otherwise A (and D) are set as the processor sets them.
fn fault(
    cache: &mut ShadowCache,
    m: &mut Model,
    va: u32,
    write: bool,
    user: bool,
) -> Result<(), ShadowError> {
    let access = Access {
        write,
        user,
        fetch: false,
    };
    let Some(cr3) = cache.current_cr3() else {
        assert_eq!(cache.fault(m, va, access, true)?, Fault::Kernel);
        return Ok(());
    };
    let pdpte = cache.roots().find(|r| r.0 == cr3).unwrap().3[(va >> 30) as usize];
    let top_rom = va >> 30 == 3 && ((va >> 21) & 511) as usize >= TOP_KERNEL_SLOTS;
    let (l2, i2) = (((pdpte & FRAME) >> 12) as u32, ((va >> 21) & 511) as usize);
    let pde = m.guest_entry(l2, i2);
    let (l1, i1) = (((pde & FRAME) >> 12) as u32, ((va >> 12) & 511) as usize);
    let pte = m.guest_entry(l1, i1);
    let rights = pde & pte;
    let kfn = (pte & FRAME) >> 12;
    let allowed = pdpte & P != 0
        && !top_rom
        && usable_pde(pde)
        && pte & P != 0
        && pte & 0x7FF0_0000_0000_0000 == 0
        && (!user || rights & US != 0)
        && (!write || rights & RW != 0)
        && (!write || (machine(kfn).is_some() && !(0xC0..0xD0).contains(&kfn)));
    loaded_entry_is_xens(cache, m, va);
    quick_kernel_faults(cache, m, va)?;
    let got = cache.fault(m, va, access, true)?;
    if !allowed {
        assert_eq!(got, Fault::Kernel, "va {va:#x}: pde {pde:#x} pte {pte:#x}");
        // The error code's P bit the kernel gets: its own tables' leaf.
        let mapped = pdpte & P != 0 && pde & P != 0 && (pde & PS != 0 || pte & P != 0);
        assert_eq!(
            cache.last_fault_mapped(),
            mapped,
            "va {va:#x}: pdpte {pdpte:#x} pde {pde:#x} pte {pte:#x}"
        );
        return Ok(());
    }
    assert_eq!(got, Fault::Fixed, "va {va:#x}: pde {pde:#x} pte {pte:#x}");
    // A supervisor entry got its A and D when it was shadowed, if not
    // before (shadow_entry::eager_bits).
    let want = pte | A | if write { D } else { 0 } | eager_bits(pte);
    assert_eq!(m.guest_entry(l1, i1), want, "A/D after the access");
    assert_eq!(m.guest_entry(l2, i2) & A, A, "directory A after the access");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A pool large enough that nothing is evicted.
    #[test]
    fn shadows_follow_the_kernels_tables(steps in prop::collection::vec(step(), 1..120)) {
        SCRATCH_MIN.with(|c| c.set(scratch_min_for(steps.len())));
        let (cache, m) = run(&steps, 4096);
        prop_assert_eq!(cache.stats().evictions, 0, "{:?}", m.notes.iter().find(|n| matches!(n, Note::Evicted { .. })));
    }

    /// A pool so small that cached shadows are dropped and rebuilt.
    #[test]
    fn shadows_survive_eviction(steps in prop::collection::vec(step(), 1..120)) {
        SCRATCH_MIN.with(|c| c.set(scratch_min_for(steps.len())));
        run(&steps, 16);
    }

    /// Table changes reaching Xen in lazy batches (the model holding ops
    /// back until a load, fault or INVLPG), with pools large and small.
    #[test]
    fn shadows_follow_lazy_batches(steps in prop::collection::vec(step(), 1..120), small in any::<bool>()) {
        SCRATCH_MIN.with(|c| c.set(scratch_min_for(steps.len())));
        HOLD_LAZY.with(|c| c.set(true));
        run(&steps, if small { 16 } else { 4096 });
    }

    /// A context switch's load (`cached_root`, then `load_unchanged_root`
    /// where it answers) leaves everything as `load_root` leaves it: the
    /// same roots, figures, ops to Xen, console notes and pool, and (with
    /// a pool small enough to evict) the same roots chosen for eviction.
    #[test]
    fn a_switch_load_is_load_root(
        steps in prop::collection::vec(step(), 1..120),
        pool in prop::sample::select(vec![16usize, 4096]),
    ) {
        let (general, gm) = run_loading(&steps, pool, false);
        let (switched, sm) = run_loading(&steps, pool, true);
        prop_assert_eq!(general.roots().collect::<Vec<_>>(), switched.roots().collect::<Vec<_>>());
        let order = |c: &ShadowCache| {
            let (roots, clock) = c.load_order();
            (roots.collect::<Vec<_>>(), clock)
        };
        prop_assert_eq!(order(&general), order(&switched));
        prop_assert_eq!(general.stats(), switched.stats());
        prop_assert_eq!(general.current_cr3(), switched.current_cr3());
        prop_assert_eq!(&gm.xen, &sm.xen);
        prop_assert_eq!(&gm.notes, &sm.notes);
        prop_assert_eq!(&gm.pool, &sm.pool);
        prop_assert_eq!(gm.ops, sm.ops);
    }
}

/// The A/D rule end to end: a fresh writable user mapping is not present
/// in the shadow until touched, read-only until written; the faults set A
/// then D in the kernel's entry and nothing else. A supervisor mapping gets
/// A and D when it is shadowed.
#[test]
fn accessed_then_dirty() {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 1,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::AllocateL1 { l1: 0 },
        Step::SetPde {
            l2: 0,
            index: 2,
            value: (u64::from(L1S[0]) << 12) | P | RW,
        },
        Step::SetPte {
            l1: 0,
            index: 7,
            value: (0x1000 << 12) | P | RW | US,
        },
        Step::SetPte {
            l1: 0,
            index: 8,
            value: (0x1001 << 12) | P | RW,
        },
        Step::Load { cr3: 0 },
    ];
    let (mut cache, mut m) = run(&steps, 64);
    let va = va(1, 2, 7);
    let l1 = cache.table(L1S[0], Kind::L1).unwrap().0;
    assert_eq!(m.shadow(l1)[7], 0, "not present before the first access");
    assert_eq!(
        cache.fault(&mut m, va, Access::default(), true).unwrap(),
        Fault::Fixed
    );
    assert_eq!(m.guest_entry(L1S[0], 7), (0x1000 << 12) | P | RW | US | A);
    assert_eq!(
        m.shadow(l1)[7],
        (0x10_1000 << 12) | P | US | A,
        "read-only until written"
    );
    let write = Access {
        write: true,
        ..Access::default()
    };
    assert_eq!(cache.fault(&mut m, va, write, true).unwrap(), Fault::Fixed);
    assert_eq!(
        m.guest_entry(L1S[0], 7),
        (0x1000 << 12) | P | RW | US | A | D
    );
    assert_eq!(m.shadow(l1)[7], (0x10_1000 << 12) | P | RW | US | A | D);
    // The supervisor page: marked and writable from the start.
    assert_eq!(m.guest_entry(L1S[0], 8), (0x1001 << 12) | P | RW | A | D);
    assert_eq!(m.shadow(l1)[8], (0x10_1001 << 12) | P | RW | A | D);
    assert_eq!(
        (cache.stats().accessed_faults, cache.stats().dirty_faults),
        (1, 1)
    );
    // A user access to a supervisor page is the kernel's fault, and
    // changes nothing.
    let user = Access {
        user: true,
        ..Access::default()
    };
    let supervisor_va = va + 0x1000;
    assert_eq!(
        cache.fault(&mut m, supervisor_va, user, true).unwrap(),
        Fault::Kernel
    );
}

/// Two address spaces, CR3S[0] and CR3S[1], sharing the kernel's top
/// directory (PDPT slot 3, four tables linked), the second with a user
/// directory in slot 0 too; nothing loaded yet.
fn two_roots_sharing_the_kernel_part() -> Vec<Step> {
    let mut steps = vec![
        Step::SetPdpte {
            cr3: 0,
            slot: 3,
            value: (u64::from(L2S[3]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 1,
            slot: 3,
            value: (u64::from(L2S[3]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 1,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
    ];
    for (i, l1) in L1S.iter().enumerate().take(4) {
        steps.push(Step::SetPde {
            l2: 3,
            index: i,
            value: (u64::from(*l1) << 12) | P | RW,
        });
    }
    steps
}

/// A new root whose kernel directory a cached root already uses gets its
/// top L2 by one copy; loading a cached root costs no op but the PDPT
/// check.
#[test]
fn second_root_copies_the_kernel_part() {
    let mut steps = two_roots_sharing_the_kernel_part();
    steps.push(Step::Load { cr3: 0 });
    let (mut cache, mut m) = run(&steps, 256);
    let before = m.ops;
    cache.load_root(&mut m, CR3S[1]).unwrap();
    check(&cache, &m);
    assert_eq!(cache.stats().tops_copied, 1);
    // Clear of the L2 under slot 0 (not pinned: the L3's pin types it),
    // copy, clear L3, L3 entries 3 and 0, pin.
    assert_eq!(m.ops - before, 6);
    let before = m.ops;
    cache.load_root(&mut m, CR3S[0]).unwrap();
    assert_eq!(m.ops, before, "a cached root is loaded as it is");
    // A change of the shared kernel directory reaches both roots.
    m.guest_mut(L2S[3])[5] = (u64::from(L1S[5]) << 12) | P;
    cache
        .entry_changed(&mut m, L2S[3], 5, (u64::from(L1S[5]) << 12) | P)
        .unwrap();
    check(&cache, &m);
}

/// A freed root's L3 and top L2 go to the next root as they are: its top
/// L2 holds the kernel part only while no top directory entry changed
/// since, and its L3 slots are written only where they differ.
#[test]
fn a_freed_roots_frames_are_reused_as_they_stand() {
    let mut steps = two_roots_sharing_the_kernel_part();
    steps.push(Step::Load { cr3: 1 });
    steps.push(Step::Load { cr3: 0 });
    let (mut cache, mut m) = run(&steps, 256);
    // Root 1 goes; the kernel part changes while it is gone.
    cache.release(&mut m, CR3S[1] >> 12, true);
    m.guest_mut(L2S[3])[5] = (u64::from(L1S[5]) << 12) | P;
    cache
        .entry_changed(&mut m, L2S[3], 5, (u64::from(L1S[5]) << 12) | P)
        .unwrap();
    cache.load_root(&mut m, CR3S[1]).unwrap();
    check(&cache, &m);
    // Gone again, nothing changed: the same frames (and the same clear
    // frame for the L2 under slot 0, freed with the root) need only the
    // pin: no copy, no clear, no L3 entry.
    cache.load_root(&mut m, CR3S[0]).unwrap();
    cache.release(&mut m, CR3S[1] >> 12, true);
    let before = m.ops;
    cache.load_root(&mut m, CR3S[1]).unwrap();
    check(&cache, &m);
    assert_eq!(m.ops - before, 1);
}

/// A kernel entry written and announced.
fn set_entry(cache: &mut ShadowCache, m: &mut Model, kfn: u32, index: usize, value: u64) {
    m.guest_mut(kfn)[index] = value;
    cache.entry_changed(m, kfn, index, value).unwrap();
    check(cache, m);
}

/// One fork and exit as the benchmark's (tests/bench-core `fork`): root 2
/// (the child, CR3S[2]: its own directory L2S[0] under slot 0, the kernel
/// part L2S[3] under slot 3) gets page table L1S[0] at directory entry 1
/// with `pages` entries and L1S[1] at entry 5 with one at `last`, is
/// loaded, root 0 loaded again, then the child torn down as Linux's exit
/// does (the tables cleared natively, unlinked, released, then the
/// directory and the PDPT). Returns the ops of the build, of the child's
/// load and of the teardown.
fn fork_and_exit(
    cache: &mut ShadowCache,
    m: &mut Model,
    pages: usize,
    last: usize,
) -> (usize, usize, usize) {
    fork_and_exit_ordered(cache, m, pages, last, false)
}

/// [`fork_and_exit`], the tables torn down in the other order when
/// `reversed` (the benchmark's exit frees its stack's table first, which
/// its fork builds second).
fn fork_and_exit_ordered(
    cache: &mut ShadowCache,
    m: &mut Model,
    pages: usize,
    last: usize,
    reversed: bool,
) -> (usize, usize, usize) {
    fork_and_exit_mapping(cache, m, pages, last, reversed, 0x1000)
}

/// [`fork_and_exit_ordered`], entry `j` of the tables mapping kernel frame
/// `first + j` (an exec maps fresh frames).
fn fork_and_exit_mapping(
    cache: &mut ShadowCache,
    m: &mut Model,
    pages: usize,
    last: usize,
    reversed: bool,
    first: u64,
) -> (usize, usize, usize) {
    let start = m.ops;
    cache.allocate_l2(m, L2S[0], true, None).unwrap();
    for (l1, index) in [(0, 1), (1, 5)] {
        cache.allocate_l1(m, L1S[l1], true).unwrap();
        set_entry(
            cache,
            m,
            L2S[0],
            index,
            (u64::from(L1S[l1]) << 12) | P | RW | US,
        );
        let entries: Vec<usize> = if l1 == 0 {
            (0..pages).collect()
        } else {
            vec![last]
        };
        for j in entries {
            set_entry(
                cache,
                m,
                L1S[l1],
                j,
                ((first + j as u64) << 12) | P | US | A,
            );
        }
    }
    let built = m.ops;
    cache.load_root(m, CR3S[2]).unwrap();
    check(cache, m);
    let loaded = m.ops;
    cache.load_root(m, CR3S[0]).unwrap();
    let back = m.ops;
    let mut tables = [(0, 1), (1, 5)];
    if reversed {
        tables.reverse();
    }
    for (l1, index) in tables {
        m.guest_mut(L1S[l1]).fill(0);
        set_entry(cache, m, L2S[0], index, 0);
        cache.release(m, L1S[l1], false);
        check(cache, m);
    }
    cache.release(m, L2S[0], true);
    cache.release(m, CR3S[2] >> 12, true);
    assert!(
        cache.roots().all(|r| r.0 != CR3S[2]),
        "the child's root is gone"
    );
    check(cache, m);
    (built - start, loaded - built, m.ops - back)
}

/// An exec's fresh page table on a kept frame (every entry another page):
/// its writes go into the scratch frame and onto the table's frame in one
/// copy, queued before the pin (nothing at the build); a copy not yet
/// flushed keeps the scratch from the next table, whose writes are queued
/// as before, and the scratch is taken again once it has gone out. Xen's
/// model applies the copy when it is released, so a scratch changed
/// meanwhile would leave a frame unlike its list (`check`).
#[test]
fn fresh_tables_are_filled_from_the_scratch_frame() {
    let (mut cache, mut m) = run(&[Step::Load { cr3: 0 }], 4096);
    let cache = &mut *cache;
    // Warmed up: the child's tables kept as they stand.
    fork_and_exit(cache, &mut m, 16, 511);
    let (_, same_load, _) = fork_and_exit(cache, &mut m, 16, 511);
    let round = |cache: &mut ShadowCache, m: &mut Model, first: u64| {
        let before = cache.stats();
        let ops = fork_and_exit_mapping(cache, m, 16, 511, false, first);
        let s = cache.stats();
        (
            s.scratch_writes - before.scratch_writes,
            s.scratch_copies - before.scratch_copies,
            ops,
        )
    };
    // The second table's one entry (another page too) is written.
    let (writes, copies, (build, load, _)) = round(cache, &mut m, 0x1800);
    assert_eq!((writes, copies), (16, 1));
    assert_eq!(
        (build, load),
        (1, same_load + 1),
        "the copy at the load (before its pin)"
    );
    // The queue held from here: the next table's copy stays queued.
    m.held = Some(Vec::new());
    let (writes, copies, _) = round(cache, &mut m, 0x1000);
    assert_eq!((writes, copies), (16, 1));
    let (writes, copies, (build, ..)) = round(cache, &mut m, 0x1800);
    assert_eq!(
        (writes, copies, build),
        (0, 0, 1 + 16),
        "the scratch is busy: the writes queued"
    );
    m.release_held();
    check(cache, &m);
    let (writes, copies, _) = round(cache, &mut m, 0x1000);
    assert_eq!((writes, copies), (16, 1), "the scratch free again");
    check(cache, &m);
}

/// A freed page table's shadow frame is kept with its entries listed and
/// taken as it is by the next page table: a fork that maps what the last
/// one did writes nothing into it and clears nothing; entries the new
/// table does not have are zeroed before the child's root reaches them;
/// a table with more entries than a slot lists is followed no more.
#[test]
fn a_freed_tables_frame_is_reused_as_it_stands() {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 3,
            value: (u64::from(L2S[3]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 2,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 2,
            slot: 3,
            value: (u64::from(L2S[3]) << 12) | P,
        },
        Step::Load { cr3: 0 },
    ];
    let (mut cache, mut m) = run(&steps, 256);
    let cache = &mut *cache;
    // The first fork: fresh frames.
    let (first_build, _, first_exit) = fork_and_exit(cache, &mut m, 16, 511);
    let s = cache.stats();
    assert_eq!((s.known_reused, s.known_writes_skipped), (0, 0), "{s:?}");
    // The same again: the two tables take the freed frames as they are
    // (in the order they were freed) and write none of their entries.
    let (build, load, exit) = fork_and_exit(cache, &mut m, 16, 511);
    let s = cache.stats();
    assert_eq!(
        (s.known_reused, s.known_writes_skipped, s.known_stale_zeroed),
        (2, 17, 0),
        "{s:?}"
    );
    assert_eq!(
        first_build,
        3 + 2 + 17,
        "the first build: three clears, the links, the entries"
    );
    assert_eq!(
        first_exit, 1,
        "the exit: the child's unpin; its directory's unlinks left out"
    );
    // The directory's frame was kept with its two links, which are the
    // new tables' (their frames are the old tables'): nothing written
    // (two unlinks at each exit, two links at the build left out).
    assert_eq!(
        (s.dirs_reused, s.dir_writes_skipped, s.dir_stale_zeroed),
        (1, 2 + 2 + 2, 0),
        "{s:?}"
    );
    assert_eq!(build, 0, "the build writes nothing");
    assert_eq!(load, 1, "the child's load is its pin alone");
    assert_eq!(exit, 1, "the exit is the child's unpin alone");
    // Torn down in the other order: each table still takes, at its link,
    // the kept frame last linked at the same directory entry.
    fork_and_exit_ordered(cache, &mut m, 16, 511, true);
    let before = cache.stats();
    let (build, load, _) = fork_and_exit(cache, &mut m, 16, 511);
    let s = cache.stats();
    assert_eq!(
        (
            s.known_writes_skipped - before.known_writes_skipped,
            s.known_stale_zeroed - before.known_stale_zeroed
        ),
        (17, 0),
        "{s:?}"
    );
    assert_eq!((build, load), (0, 1));
    // Fewer entries, another one in the second table: the rest is zeroed
    // before the child's root is pinned (`check` compares every entry a
    // root reaches with the kernel's).
    let before = cache.stats();
    let (_, load, _) = fork_and_exit(cache, &mut m, 10, 300);
    let s = cache.stats();
    assert_eq!(
        s.known_writes_skipped - before.known_writes_skipped,
        10,
        "{s:?}"
    );
    assert_eq!(
        s.known_stale_zeroed - before.known_stale_zeroed,
        6 + 1,
        "{s:?}"
    );
    assert_eq!(load, 1 + 7, "the pin and the stale entries' zeroes");
    // More entries than a slot lists: followed no more, cleared when freed.
    fork_and_exit(cache, &mut m, 40, 511);
    let before = cache.stats();
    fork_and_exit(cache, &mut m, 16, 511);
    let s = cache.stats();
    assert_eq!(
        s.known_reused - before.known_reused,
        1,
        "one table's frame kept: {s:?}"
    );
    // A page table linked from a directory the loaded root reaches: its
    // stale entries are zeroed at the link.
    fork_and_exit(cache, &mut m, 16, 511);
    cache.allocate_l1(&mut m, L1S[2], true).unwrap();
    let stale: usize = cache
        .known_frames()
        .filter(|f| f.1 == Some(L1S[2]))
        .map(|f| f.2.iter().flatten().filter(|e| e.2).count())
        .sum();
    assert!(stale > 0, "the table took a freed table's frame");
    let before = cache.stats();
    set_entry(cache, &mut m, L2S[3], 7, (u64::from(L1S[2]) << 12) | P | RW);
    let s = cache.stats();
    assert_eq!(
        (s.known_stale_zeroed - before.known_stale_zeroed) as usize,
        stale,
        "{s:?}"
    );
    // More page tables than slots: the oldest give theirs up (stale
    // entries zeroed first), every frame still accounted for.
    let tables: Vec<u32> = (0..KNOWN_SLOTS as u32 + 3).map(|k| 0x2010 + k).collect();
    for (k, &l1) in tables.iter().enumerate() {
        cache.allocate_l1(&mut m, l1, true).unwrap();
        set_entry(cache, &mut m, L2S[3], 8 + k, (u64::from(l1) << 12) | P | RW);
        for j in 0..3 {
            set_entry(cache, &mut m, l1, j, ((0x1000 + j as u64) << 12) | P | A);
        }
    }
    assert_eq!(
        cache.known_frames().count(),
        KNOWN_SLOTS,
        "every slot in use"
    );
    for (k, &l1) in tables.iter().enumerate() {
        m.guest_mut(l1).fill(0);
        set_entry(cache, &mut m, L2S[3], 8 + k, 0);
        cache.release(&mut m, l1, false);
        check(cache, &m);
    }
}

/// A page table of a space: its kernel frame, its directory entry, its
/// entries (index, value).
type SpaceTable = (u32, usize, Vec<(usize, u64)>);

/// A new space's user directory `l2` with page tables `tables` (table,
/// directory entry, its entries), as the benchmarks' fork and exec build
/// one. Returns the ops queued.
fn build_space(cache: &mut ShadowCache, m: &mut Model, l2: u32, tables: &[SpaceTable]) -> usize {
    let start = m.ops;
    cache.allocate_l2(m, l2, true, None).unwrap();
    for (l1, index, entries) in tables {
        cache.allocate_l1(m, *l1, true).unwrap();
        set_entry(cache, m, l2, *index, (u64::from(*l1) << 12) | P | RW | US);
        for &(j, value) in entries {
            set_entry(cache, m, *l1, j, value);
        }
    }
    m.ops - start
}

/// Space `cr3` (directory `l2`, page tables `tables`), not loaded, torn
/// down as Linux's exit does. Returns the ops queued.
fn tear_down_space(
    cache: &mut ShadowCache,
    m: &mut Model,
    cr3: u32,
    l2: u32,
    tables: &[SpaceTable],
) -> usize {
    let start = m.ops;
    for (l1, index, _) in tables {
        m.guest_mut(*l1).fill(0);
        set_entry(cache, m, l2, *index, 0);
        cache.release(m, *l1, false);
        check(cache, m);
    }
    cache.release(m, l2, true);
    cache.release(m, cr3 >> 12, true);
    check(cache, m);
    m.ops - start
}

/// The benchmarks' fork_exec, again and again: the child (root 2,
/// directory L2S[0]) maps the parent's pages read-only and is loaded, its
/// exec builds a second space (root 3, directory L2S[1]) with pages of its
/// own, loads it and tears the child down; then the parent's space is
/// loaded and the exec'd space torn down. Both directories' frames are
/// kept with their links, so after the first round neither build writes a
/// directory entry and neither exit unlinks one.
#[test]
fn fork_and_exec_keep_both_directories() {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 3,
            value: (u64::from(L2S[3]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 2,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 2,
            slot: 3,
            value: (u64::from(L2S[3]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 3,
            slot: 0,
            value: (u64::from(L2S[1]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 3,
            slot: 3,
            value: (u64::from(L2S[3]) << 12) | P,
        },
        Step::Load { cr3: 0 },
    ];
    let (mut cache, mut m) = run(&steps, 256);
    let cache = &mut *cache;
    let page = |f: u64, rw: bool| (f << 12) | P | US | A | if rw { RW | D } else { 0 };
    let child = [
        (
            L1S[0],
            1,
            (0..16)
                .map(|j| (j, page(0x1000 + j as u64, false)))
                .collect(),
        ),
        (L1S[1], 5, vec![(511, page(0x1100, false))]),
    ];
    let exec = [
        (
            L1S[2],
            1,
            (0..16)
                .map(|j| (j, page(0x1200 + j as u64, true)))
                .collect(),
        ),
        (L1S[3], 5, vec![(511, page(0x1300, true))]),
    ];
    let round = |cache: &mut ShadowCache, m: &mut Model| {
        let mut ops = build_space(cache, m, L2S[0], &child);
        cache.load_root(m, CR3S[2]).unwrap();
        check(cache, m);
        ops += build_space(cache, m, L2S[1], &exec);
        cache.load_root(m, CR3S[3]).unwrap();
        check(cache, m);
        ops += tear_down_space(cache, m, CR3S[2], L2S[0], &child);
        cache.load_root(m, CR3S[0]).unwrap();
        ops += tear_down_space(cache, m, CR3S[3], L2S[1], &exec);
        ops
    };
    round(cache, &mut m);
    let before = cache.stats();
    let start = m.ops;
    let ops = round(cache, &mut m);
    let s = cache.stats();
    assert_eq!(s.dirs_reused - before.dirs_reused, 2, "{s:?}");
    assert_eq!(
        s.dir_writes_skipped - before.dir_writes_skipped,
        8,
        "four links and four unlinks left out: {s:?}"
    );
    assert_eq!(
        s.known_writes_skipped - before.known_writes_skipped,
        34,
        "{s:?}"
    );
    // The builds and teardowns: the two unpins. The loads: the two pins
    // alone (each new root takes the spare L3 of the root freed first,
    // whose slot 0 names its directory's frame already).
    assert_eq!((ops, m.ops - start), (2, 2 + 2));
}

/// The user page entry `j` of the freed tables below maps.
fn stale_page(j: usize) -> u64 {
    ((0x1000 + j as u64) << 12) | P | US | A
}

/// A table (L1S[3]) under directory L2S[0] entry 5 with five entries
/// (`stale_page`), cleared natively, unlinked and released: its frame is
/// kept with its five entries listed; then a new table, L1S[4], takes it
/// as it stands, every entry stale.
fn take_freed_tables_frame(cache: &mut ShadowCache, m: &mut Model) {
    cache.allocate_l1(m, L1S[3], true).unwrap();
    set_entry(cache, m, L2S[0], 5, (u64::from(L1S[3]) << 12) | P | RW | US);
    for j in 0..5 {
        set_entry(cache, m, L1S[3], j, stale_page(j));
    }
    m.guest_mut(L1S[3]).fill(0);
    set_entry(cache, m, L2S[0], 5, 0);
    cache.release(m, L1S[3], false);
    check(cache, m);
    cache.allocate_l1(m, L1S[4], true).unwrap();
}

/// How many of table `kfn`'s known frame's listed entries are stale.
fn stale_entries(cache: &ShadowCache, kfn: u32) -> usize {
    cache
        .known_frames()
        .filter(|f| f.1 == Some(kfn))
        .map(|f| f.2.iter().flatten().filter(|e| e.2).count())
        .sum()
}

/// A kept frame's writes are looked up first at the list's hint (the
/// position after the last one found: a table written in the order its
/// last user wrote it) and otherwise searched: written in the listed
/// order, in reverse (every hint but one missing) or with a value that
/// differs in the middle, the writes left out, the writes queued, the
/// list and the shadow a root then reaches are the same either way.
#[test]
fn a_kept_frames_writes_agree_in_any_order() {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::Load { cr3: 0 },
    ];
    // The new table's writes: entries 0-4 of `stale_page`, entry 2 with
    // another frame when `changed`, in `order`.
    let outcome = |order: &[usize], changed: bool| {
        let (mut cache, mut m) = run(&steps, 256);
        let cache = &mut *cache;
        take_freed_tables_frame(cache, &mut m);
        assert_eq!(stale_entries(cache, L1S[4]), 5);
        let (before, ops) = (cache.stats(), m.ops);
        for &j in order {
            let value = if changed && j == 2 {
                ((0x1800 + j as u64) << 12) | P | US | A
            } else {
                stale_page(j)
            };
            set_entry(cache, &mut m, L1S[4], j, value);
        }
        let skipped = cache.stats().known_writes_skipped - before.known_writes_skipped;
        // Queued, or held in the scratch frame until the link below.
        let queued = m.ops - ops + (cache.stats().scratch_writes - before.scratch_writes) as usize;
        let mut listed: Vec<_> = cache
            .known_frames()
            .filter(|f| f.1 == Some(L1S[4]))
            .flat_map(|f| f.2.into_iter().flatten())
            .collect();
        listed.sort();
        // Linked where the loaded root reaches it: `check` compares every
        // entry with the kernel's.
        set_entry(
            cache,
            &mut m,
            L2S[0],
            6,
            (u64::from(L1S[4]) << 12) | P | RW | US,
        );
        check(cache, &m);
        (skipped, queued, listed)
    };
    let forward = [0, 1, 2, 3, 4];
    let reverse = [4, 3, 2, 1, 0];
    let same = outcome(&forward, false);
    assert_eq!((same.0, same.1), (5, 0), "nothing written: {same:?}");
    assert!(same.2.iter().all(|e| !e.2), "nothing stale: {same:?}");
    assert_eq!(outcome(&reverse, false), same);
    let changed = outcome(&forward, true);
    assert_eq!(
        (changed.0, changed.1),
        (4, 1),
        "entry 2 written: {changed:?}"
    );
    assert_eq!(outcome(&reverse, true), changed);
    assert_eq!(outcome(&[2, 0, 1, 3, 4], true), changed);
}

/// A freed table's frame taken with stale entries, then linked from a
/// directory that only a cached root other than the loaded one reaches
/// (pinned all the same): the stale entries are zeroed at that link,
/// before the directory's entry is written (`settle_if_reached` looks at
/// every cached root, not the loaded one alone); until then a write of
/// what the frame holds is left out.
#[test]
fn a_stale_table_linked_under_another_cached_root_is_settled_first() {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 2,
            slot: 0,
            value: (u64::from(L2S[1]) << 12) | P,
        },
        Step::Load { cr3: 2 },
        Step::Load { cr3: 0 },
    ];
    let (mut cache, mut m) = run(&steps, 256);
    let cache = &mut *cache;
    let page = stale_page;
    let before = cache.stats();
    take_freed_tables_frame(cache, &mut m);
    let stale = |cache: &ShadowCache| stale_entries(cache, L1S[4]);
    assert_eq!(cache.stats().known_reused - before.known_reused, 1);
    assert_eq!(stale(cache), 5);
    set_entry(cache, &mut m, L1S[4], 0, page(0));
    assert_eq!(
        cache.stats().known_writes_skipped - before.known_writes_skipped,
        1,
        "a write of what the unreached frame holds is left out"
    );
    assert_eq!(stale(cache), 4);
    // Linked where only root 2 (cached, pinned, not loaded) reaches it.
    assert!(cache.roots().any(|r| r.0 == CR3S[2]), "root 2 is cached");
    assert_eq!(cache.current_cr3(), Some(CR3S[0]));
    let frame = cache
        .known_frames()
        .find(|f| f.1 == Some(L1S[4]))
        .expect("the table's frame is known")
        .0;
    assert_eq!(m.typed(frame), None);
    m.validated_l1 = Some(Vec::new());
    let before = cache.stats();
    set_entry(
        cache,
        &mut m,
        L2S[1],
        7,
        (u64::from(L1S[4]) << 12) | P | RW | US,
    );
    assert_eq!(m.typed(frame), Some(PtType::L1), "root 2 reaches the table");
    assert!(
        m.validated_l1.iter().flatten().any(|v| v.0 == frame),
        "validated at the link"
    );
    m.check_validated(&"the link under root 2");
    assert_eq!(
        cache.stats().known_stale_zeroed - before.known_stale_zeroed,
        4,
        "the stale entries zeroed at the link"
    );
    assert_eq!(stale(cache), 0);
    check(cache, &m);
}

/// A table with stale entries linked from a directory no root reaches,
/// that directory's entry cloned into a new directory (AllocatePage with
/// a clone range), and the clone put under the loaded root's PDPT slot 1:
/// the stale entries are zeroed at the CR3 load, before the slot's write
/// makes the pinned root reach the table (`settle_linked`).
#[test]
fn a_stale_table_reached_through_a_cloned_directory_is_settled_first() {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::Load { cr3: 0 },
    ];
    let (mut cache, mut m) = run(&steps, 256);
    let cache = &mut *cache;
    take_freed_tables_frame(cache, &mut m);
    let stale = |cache: &ShadowCache| stale_entries(cache, L1S[4]);
    assert_eq!(
        stale(cache),
        5,
        "the freed table's frame taken as it stands"
    );
    // Linked from a directory no root reaches: left stale.
    cache.allocate_l2(&mut m, L2S[1], true, None).unwrap();
    let pde = (u64::from(L1S[4]) << 12) | P | RW | US;
    set_entry(cache, &mut m, L2S[1], 7, pde);
    assert_eq!(stale(cache), 5);
    // Its entry cloned into a new directory, still reached by no root.
    m.guest_mut(L2S[2])[7] = pde;
    cache
        .allocate_l2(&mut m, L2S[2], false, Some((L2S[1], 7..8)))
        .unwrap();
    check(cache, &m);
    assert_eq!(stale(cache), 5);
    // The clone under the loaded root's slot 1, taken at the CR3 load.
    let before = cache.stats();
    m.validated_l1 = Some(Vec::new());
    set_entry(
        cache,
        &mut m,
        CR3S[0] >> 12,
        1,
        (u64::from(L2S[2]) << 12) | P,
    );
    cache.load_root(&mut m, CR3S[0]).unwrap();
    assert!(
        m.validated_l1.iter().flatten().next().is_some(),
        "the slot's write validated the table"
    );
    m.check_validated(&"the clone under slot 1");
    assert_eq!(
        cache.stats().known_stale_zeroed - before.known_stale_zeroed,
        5
    );
    assert_eq!(stale(cache), 0);
    check(cache, &m);
}

/// ReleasePage of a table still linked keeps it (with a note) until the
/// link goes; then it is freed.
#[test]
fn release_of_a_live_table() {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::AllocateL1 { l1: 2 },
        Step::SetPde {
            l2: 0,
            index: 1,
            value: (u64::from(L1S[2]) << 12) | P | RW,
        },
        Step::SetPte {
            l1: 2,
            index: 0,
            value: (0x1001 << 12) | P | RW | A | D,
        },
        Step::Load { cr3: 0 },
        Step::ReleaseL1 { l1: 2 },
    ];
    let (mut cache, mut m) = run(&steps, 64);
    assert!(
        m.notes.contains(&Note::ReleasedLive {
            kfn: L1S[2],
            links: 1
        }),
        "{:?}",
        m.notes
    );
    assert!(cache.table(L1S[2], Kind::L1).is_some(), "kept while linked");
    m.guest_mut(L2S[0])[1] = 0;
    cache.entry_changed(&mut m, L2S[0], 1, 0).unwrap();
    assert!(
        cache.table(L1S[2], Kind::L1).is_none(),
        "freed with its last link"
    );
    check(&cache, &m);
}

/// One root, one directory, one table mapping page 1 (VA 0x1000 of slot
/// 0, to frame 0x1001, A/D set), loaded: the start of the cases that
/// change the kernel's tables natively.
fn one_page_loaded() -> (Box<ShadowCache>, Model) {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::AllocateL1 { l1: 0 },
        Step::SetPde {
            l2: 0,
            index: 0,
            value: (u64::from(L1S[0]) << 12) | P | RW,
        },
        Step::SetPte {
            l1: 0,
            index: 1,
            value: (0x1001 << 12) | P | RW | A | D,
        },
        Step::Load { cr3: 0 },
    ];
    run(&steps, 64)
}

/// A directory entry rewritten natively to name its table's frame plus
/// 2^32 pages (a frame field above 32 bits: not the kernel's RAM) is not
/// the same entry: neither the fault's quick directory test nor the
/// quick "the kernel's fault" answer may take the mirror for current, and
/// the fault reports the entry instead of mapping through the old table.
#[test]
fn a_directory_entry_with_high_frame_bits_is_not_its_table() {
    let (mut cache, mut m) = one_page_loaded();
    m.guest_mut(L1S[0])[2] = (0x1002 << 12) | P | RW | A | D;
    m.guest_mut(L2S[0])[0] = (1u64 << 44) | (u64::from(L1S[0]) << 12) | P | RW;
    assert_eq!(
        cache.directory_check(&mut m, va(0, 0, 2)),
        Some((false, false))
    );
    assert_eq!(
        cache.kernels_fault(&mut m, va(0, 0, 2), Access::default(), true),
        None
    );
    let before = m.notes.len();
    let outcome = cache
        .fault(&mut m, va(0, 0, 2), Access::default(), true)
        .unwrap();
    assert_ne!(outcome, Fault::Fixed, "mapped through the old table");
    assert_directory_entry_noted(&m, before);
    check(&cache, &m);
}

/// Among the notes since `before`: the kernel's unannounced change of
/// entry 0 of directory L2S[0].
fn assert_directory_entry_noted(m: &Model, before: usize) {
    assert!(
        m.notes[before..]
            .iter()
            .any(|n| matches!(n, Note::Unannounced { kfn, index: 0, .. } if *kfn == L2S[0])),
        "{:?}",
        &m.notes[before..]
    );
}

/// A change the kernel made without telling the ROM is found at the fault
/// it causes, or at INVLPG, and repaired with a note.
#[test]
fn unannounced_changes_are_repaired() {
    let (mut cache, mut m) = one_page_loaded();
    // A new mapping written natively: found at its first access.
    m.guest_mut(L1S[0])[2] = (0x1002 << 12) | P | RW | A | D;
    assert_eq!(
        cache
            .fault(&mut m, va(0, 0, 2), Access::default(), true)
            .unwrap(),
        Fault::Fixed
    );
    assert!(
        matches!(m.notes.last(), Some(Note::Unannounced { index: 2, .. })),
        "{:?}",
        m.notes
    );
    check(&cache, &m);
    // A mapping taken away natively: found at INVLPG.
    m.guest_mut(L1S[0])[1] = 0;
    let repaired = cache
        .verify(&mut m, va(0, 0, 1), |m, mfn, i| m.shadow(mfn)[i])
        .unwrap();
    assert!(repaired);
    check(&cache, &m);
    // A directory entry pointed at another table natively: the fault's
    // quick directory test must not take the mirror's code for current;
    // the fault links the new table and reports the directory entry.
    m.guest_mut(L1S[1])[3] = (0x1003 << 12) | P | RW | A | D;
    m.guest_mut(L2S[0])[0] = (u64::from(L1S[1]) << 12) | P | RW;
    assert_eq!(
        cache.directory_check(&mut m, va(0, 0, 3)),
        Some((false, false))
    );
    let before = m.notes.len();
    assert_eq!(
        cache
            .fault(&mut m, va(0, 0, 3), Access::default(), true)
            .unwrap(),
        Fault::Fixed
    );
    assert_directory_entry_noted(&m, before);
    check(&cache, &m);
    assert_eq!(
        cache.directory_check(&mut m, va(0, 0, 3)),
        Some((true, true))
    );
    // The same table, its rights taken away natively (the write is then
    // the kernel's fault, after the repair).
    m.guest_mut(L2S[0])[0] = (u64::from(L1S[1]) << 12) | P;
    assert_eq!(
        cache.directory_check(&mut m, va(0, 0, 3)),
        Some((false, false))
    );
    let write = Access {
        write: true,
        ..Access::default()
    };
    assert_eq!(
        cache.fault(&mut m, va(0, 0, 3), write, true).unwrap(),
        Fault::Kernel
    );
    assert!(cache.last_fault_mapped());
    check(&cache, &m);
    assert_eq!(
        cache.directory_check(&mut m, va(0, 0, 3)),
        Some((true, true))
    );
}

/// CR3 values that are not page tables are refused, naming what is wrong.
#[test]
fn bad_cr3() {
    // SAFETY: as in `run`.
    let mut cache: Box<ShadowCache> = unsafe { Box::new_zeroed().assume_init() };
    cache.reset(ROM_LINKS);
    let mut m = Model::new(16);
    assert_eq!(
        cache.load_root(&mut m, 0xA_0000),
        Err(ShadowError::Cr3NotRam { cr3: 0xA_0000 })
    );
    m.guest_mut(0x2200)[1] = (0x2100 << 12) | P | RW;
    assert!(matches!(
        cache.load_root(&mut m, 0x0220_0000),
        Err(ShadowError::BadPdpte { slot: 1, .. })
    ));
    assert_eq!(m.pool.len(), 16, "nothing taken");
}

/// The random sequences reach the paths the properties are about.
#[test]
fn random_sequences_reach_every_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(step(), 60..120);
    let mut totals = xen_vmi_rom::shadow_cache::Stats::default();
    let (mut released_live, mut unusable, mut not_ram) = (0, 0, 0);
    let (mut detached_writes, mut released_unlinked) = (0, 0);
    for pool in [16, 4096] {
        for _ in 0..25 {
            let steps = strategy.new_tree(&mut runner).unwrap().current();
            SCRATCH_MIN.with(|c| c.set(scratch_min_for(steps.len())));
            let (cache, m) = run(&steps, pool);
            let s = cache.stats();
            detached_writes += m.detached_writes;
            released_unlinked += m.released_unlinked;
            totals.roots_built += s.roots_built;
            totals.tops_copied += s.tops_copied;
            totals.accessed_faults += s.accessed_faults;
            totals.dirty_faults += s.dirty_faults;
            totals.evictions += s.evictions;
            totals.discovered += s.discovered;
            totals.known_reused += s.known_reused;
            totals.known_writes_skipped += s.known_writes_skipped;
            totals.known_stale_zeroed += s.known_stale_zeroed;
            totals.dirs_reused += s.dirs_reused;
            totals.dir_writes_skipped += s.dir_writes_skipped;
            totals.dir_stale_zeroed += s.dir_stale_zeroed;
            totals.scratch_copies += s.scratch_copies;
            totals.scratch_writes += s.scratch_writes;
            for n in &m.notes {
                match n {
                    Note::ReleasedLive { .. } => released_live += 1,
                    Note::UnusableTable { .. } => unusable += 1,
                    Note::NotKernelFrame { .. } => not_ram += 1,
                    _ => {}
                }
            }
        }
    }
    // The quick directory test of a fault answers for entries that name a
    // table, the full comparison for the rest (every change is announced
    // here: `unannounced_changes_are_repaired` has the unequal ones).
    let (quick, full_equal, unequal) = DIRECTORY_TESTS.with(|c| c.get());
    assert!(
        quick > 1000 && full_equal > 1000,
        "quick {quick}, full and equal {full_equal}, unequal {unequal}"
    );
    let (not_mapped, denied) = QUICK_FAULTS.with(|c| c.get());
    assert!(
        not_mapped > 100 && denied > 100,
        "quick kernel faults: {not_mapped} not mapped, {denied} denied"
    );
    // The one-step path's decision answers before `kernels_fault` often
    // (a fault under the directory entry of the one before).
    let one_step = QUICK_PATH_FAULTS.with(|c| c.get());
    assert!(one_step > 100, "one-step path faults: {one_step}");
    // The fault path's entry for update_va_mapping is named often.
    let loaded = LOADED_ENTRIES.with(|c| c.get());
    assert!(loaded > 100, "loaded entries named: {loaded}");
    // The kernel's update after a fault is taken in one step often.
    let fused = FUSED_UPDATES.with(|c| c.get());
    assert!(fused > 30, "updates taken with the fault's entry: {fused}");
    let settled = SETTLED_UPDATES.with(|c| c.get());
    eprintln!("updates with the fault's entry: {fused}, settled: {settled}");
    assert!(settled > 10, "settled writes: {settled} of {fused}");
    // The sequences use at most `KNOWN_SLOTS` tables, so a table keeps
    // its known frame and the assembly path rarely applies here; its
    // answers are checked whenever it does (`entry_update`), and
    // `assembly_update_path_takes_unlisted_tables_only` takes it.
    let quick = QUICK_UPDATES.with(|c| c.get());
    eprintln!("updates the assembly path takes: {quick}");
    assert!(totals.roots_built > 100, "{totals:?}");
    assert!(totals.tops_copied > 2, "{totals:?}");
    assert!(
        totals.accessed_faults > 20 && totals.dirty_faults > 5,
        "{totals:?}"
    );
    assert!(totals.evictions > 10, "{totals:?}");
    assert!(totals.discovered > 100, "{totals:?}");
    // Freed page tables' frames taken as they are, writes of what they
    // hold left out, stale entries zeroed before a root reaches them.
    assert!(
        totals.known_reused > 50
            && totals.known_writes_skipped > 30
            && totals.known_stale_zeroed > 20,
        "{totals:?}"
    );
    // Writes to an unreached frame held in the scratch frame, and some of
    // those tables filled by one copy (the rest written one by one).
    eprintln!(
        "scratch: {} writes, {} copies",
        totals.scratch_writes, totals.scratch_copies
    );
    assert!(
        totals.scratch_writes > 20 && totals.scratch_copies > 4,
        "{totals:?}"
    );
    // The same for freed directories' frames, and unlinks of directories
    // no pinned root reaches left out.
    eprintln!("{totals:?}");
    assert!(
        totals.dirs_reused > 20 && totals.dir_writes_skipped > 20 && totals.dir_stale_zeroed > 10,
        "{totals:?}"
    );
    assert!(released_live > 10 && unusable > 10 && not_ram > 10);
    assert!(
        detached_writes > 20,
        "{detached_writes} detached entry changes"
    );
    assert!(
        released_unlinked > 10,
        "{released_unlinked} releases of unlinked tables"
    );
}

/// The cache's ops through a real `mmu-batch` queue to a model of Xen that
/// refuses some writes: in lazy mode, a refused shadow entry is reported
/// once, naming the kernel's table, entry and value, and every other
/// update, queued before or after it, still takes effect.
mod through_the_queue {
    use super::*;
    use mmu_batch::{Call, Failure, FlushTarget, MmuBatch, Multicall};
    use xen_abi::xen::{MmuUpdate, MmuextOp};

    /// Xen refuses a write of this machine frame (a frame it would not let
    /// the domain map).
    const REFUSED_MFN: u64 = 0x10_1005;
    const EPERM: i32 = 1;

    struct Target<'a> {
        model: &'a mut Model,
        failures: &'a mut Vec<Failure<Tag>>,
        hypercalls: &'a mut usize,
    }

    impl Target<'_> {
        /// One request, as Xen would run it: 0 or a negated errno.
        fn update(&mut self, req: &MmuUpdate) -> i32 {
            if (u64::from(req.val) & FRAME) >> 12 == REFUSED_MFN {
                return -EPERM;
            }
            self.model.push(Op::MmuUpdate(*req), Tag::default());
            0
        }

        fn ext(&mut self, op: &MmuextOp) -> i32 {
            self.model.push(Op::Mmuext(*op), Tag::default());
            0
        }
    }

    impl FlushTarget<Tag> for Target<'_> {
        fn mmu_update(&mut self, reqs: &[MmuUpdate], pdone: &mut u32) -> i32 {
            *self.hypercalls += 1;
            for (i, r) in reqs.iter().enumerate() {
                let rc = self.update(r);
                if rc < 0 {
                    *pdone = i as u32;
                    return rc;
                }
            }
            *pdone = reqs.len() as u32;
            0
        }

        fn mmuext_op(&mut self, ops: &[MmuextOp], pdone: &mut u32) -> i32 {
            *self.hypercalls += 1;
            for (i, op) in ops.iter().enumerate() {
                let rc = self.ext(op);
                if rc < 0 {
                    *pdone = i as u32;
                    return rc;
                }
            }
            *pdone = ops.len() as u32;
            0
        }

        fn update_va_mapping(&mut self, _va: u32, _pte: u64, _flags: u32) -> i32 {
            panic!("the cache never maps by address")
        }

        fn stack_switch(&mut self, _ss: u32, _esp: u32) -> i32 {
            panic!("the cache never switches stacks")
        }

        fn multicall(&mut self, calls: &mut Multicall<'_>) -> i32 {
            *self.hypercalls += 1;
            for j in 0..calls.len() {
                let (result, done) = match calls.decode(j).expect("an entry the queue made") {
                    Call::MmuUpdate { reqs, .. } => {
                        let mut done = reqs.len();
                        let mut rc = 0;
                        for (i, r) in reqs.iter().enumerate() {
                            rc = self.update(r);
                            if rc < 0 {
                                done = i;
                                break;
                            }
                        }
                        (rc, done)
                    }
                    Call::MmuextOp { ops, .. } => {
                        ops.iter().for_each(|op| {
                            self.ext(op);
                        });
                        (0, ops.len())
                    }
                    Call::UpdateVaMapping { .. } | Call::StackSwitch { .. } => {
                        panic!("never queued")
                    }
                };
                calls.write_done(j, done as u32);
                calls.set_result(j, result);
            }
            0
        }

        fn failed(&mut self, failure: &Failure<Tag>) {
            self.failures.push(*failure);
        }
    }

    struct QueuedHost {
        model: Model,
        batch: Box<MmuBatch<Tag, 8>>,
        failures: Vec<Failure<Tag>>,
        hypercalls: usize,
    }

    impl QueuedHost {
        fn target(&mut self) -> (&mut MmuBatch<Tag, 8>, Target<'_>) {
            (
                &mut self.batch,
                Target {
                    model: &mut self.model,
                    failures: &mut self.failures,
                    hypercalls: &mut self.hypercalls,
                },
            )
        }
    }

    impl Host for QueuedHost {
        fn guest_entry(&mut self, kfn: u32, index: usize) -> u64 {
            self.model.guest_entry(kfn, index)
        }
        fn set_guest_bits(&mut self, kfn: u32, index: usize, bits: u64) {
            self.model.set_guest_bits(kfn, index, bits)
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
            self.model.take_frame()
        }
        fn give_frame(&mut self, mfn: u32) {
            self.model.give_frame(mfn)
        }
        fn push(&mut self, op: Op, tag: Tag) {
            let (batch, mut target) = self.target();
            let _ = batch.push(op, tag, &mut target);
        }
        // The queue's own way for a write, as the ROM's host takes it.
        fn push_pte_write(&mut self, maddr: u64, value: u64, tag: Tag) {
            let (batch, mut target) = self.target();
            let normal = mmu_batch::PteWrite::Normal;
            let _ = batch.push_pte_write(maddr, value, normal, tag, &mut target);
        }
        fn note(&mut self, note: Note) {
            self.model.note(note)
        }
    }

    #[derive(Clone, Debug)]
    enum QStep {
        Write {
            index: usize,
            frame: u64,
            refused: bool,
        },
        EnterLazy,
        LeaveLazy,
        EndOfCall,
        Barrier,
    }

    fn qstep() -> impl Strategy<Value = QStep> {
        prop_oneof![
            12 => (0..12usize, 0x1000..0x1004u64, prop::bool::weighted(0.1))
                .prop_map(|(index, frame, refused)| QStep::Write { index, frame, refused }),
            1 => Just(QStep::EnterLazy),
            1 => Just(QStep::LeaveLazy),
            2 => Just(QStep::EndOfCall),
            1 => Just(QStep::Barrier),
        ]
    }

    /// A host with one linked, loaded page table, its setup flushed.
    fn setup() -> (Box<ShadowCache>, QueuedHost, u32) {
        // SAFETY: as in `run`.
        let mut cache: Box<ShadowCache> = unsafe { Box::new_zeroed().assume_init() };
        cache.reset(ROM_LINKS);
        let mut host = QueuedHost {
            model: Model::new(64),
            batch: Box::new(MmuBatch::new()),
            failures: Vec::new(),
            hypercalls: 0,
        };
        let pdpte = (u64::from(L2S[0]) << 12) | P;
        host.model.guest_mut(CR3S[0] >> 12)[1] = pdpte;
        cache.allocate_l1(&mut host, L1S[0], true).unwrap();
        let pde = (u64::from(L1S[0]) << 12) | P | RW;
        host.model.guest_mut(L2S[0])[0] = pde;
        cache.load_root(&mut host, CR3S[0]).unwrap();
        let (batch, mut target) = host.target();
        batch.flush(&mut target).unwrap();
        let (mfn, _) = cache.table(L1S[0], Kind::L1).unwrap();
        (cache, host, mfn)
    }

    proptest! {
        /// Random entry writes (some naming a frame Xen refuses) with
        /// random flush points: Xen ends with the sequential result of the
        /// writes it accepted, and every refusal is reported once, naming
        /// a write that named the refused frame.
        #[test]
        fn refusals_and_flush_points(steps in prop::collection::vec(qstep(), 1..80)) {
            let (mut cache, mut host, mfn) = setup();
            let mut expected = [0u64; 12];
            let mut refused_writes = 0;
            for step in &steps {
                match *step {
                    QStep::Write { index, frame, refused } => {
                        let kfn = if refused { REFUSED_MFN - 0x10_0000 } else { frame };
                        let value = (kfn << 12) | P | RW | A | D;
                        host.model.guest_mut(L1S[0])[index] = value;
                        cache.entry_changed(&mut host, L1S[0], index, value).unwrap();
                        if refused {
                            refused_writes += 1;
                        } else {
                            expected[index] = expect_l1(value);
                        }
                    }
                    QStep::EnterLazy => host.batch.enter_lazy(),
                    QStep::LeaveLazy => {
                        let (batch, mut target) = host.target();
                        let _ = batch.leave_lazy(&mut target);
                    }
                    QStep::EndOfCall => {
                        let (batch, mut target) = host.target();
                        let _ = batch.end_of_call(&mut target);
                    }
                    QStep::Barrier => {
                        let (batch, mut target) = host.target();
                        let _ = batch.barrier(mmu_batch::Barrier::TlbFlush, &mut target);
                    }
                }
            }
            let (batch, mut target) = host.target();
            let _ = batch.leave_lazy(&mut target);
            prop_assert!(host.batch.is_empty());
            let shadow = host.model.shadow(mfn);
            for (i, want) in expected.iter().enumerate() {
                prop_assert_eq!(shadow[i], *want, "entry {}", i);
            }
            // Each report is a refused write (a refused write replaced by a
            // later one before it reached Xen is never submitted).
            prop_assert!(host.failures.len() <= refused_writes);
            for f in &host.failures {
                prop_assert_eq!(f.tag.kfn, L1S[0]);
                prop_assert_eq!((f.tag.guest & FRAME) >> 12, REFUSED_MFN - 0x10_0000);
            }
            prop_assert_eq!(host.batch.counters().failures as usize, host.failures.len());
        }
    }

    #[test]
    fn a_refused_entry_is_reported_once_and_nothing_else_is_lost() {
        // SAFETY: as in `run`.
        let mut cache: Box<ShadowCache> = unsafe { Box::new_zeroed().assume_init() };
        cache.reset(ROM_LINKS);
        let mut host = QueuedHost {
            model: Model::new(64),
            batch: Box::new(MmuBatch::new()),
            failures: Vec::new(),
            hypercalls: 0,
        };
        let set = |cache: &mut ShadowCache, host: &mut QueuedHost, kfn: u32, i: usize, v: u64| {
            host.model.guest_mut(kfn)[i] = v;
            cache.entry_changed(host, kfn, i, v).unwrap();
        };
        set(
            &mut cache,
            &mut host,
            CR3S[0] >> 12,
            1,
            (u64::from(L2S[0]) << 12) | P,
        );
        cache.allocate_l1(&mut host, L1S[0], true).unwrap();
        set(
            &mut cache,
            &mut host,
            L2S[0],
            0,
            (u64::from(L1S[0]) << 12) | P | RW,
        );
        cache.load_root(&mut host, CR3S[0]).unwrap();
        let (batch, mut target) = host.target();
        batch.flush(&mut target).unwrap();
        // A lazy batch of 20 entries, the 7th naming a frame Xen refuses.
        host.hypercalls = 0;
        host.batch.enter_lazy();
        let value = |i: u64| {
            let kfn = if i == 7 {
                REFUSED_MFN - 0x10_0000
            } else {
                0x1000 + i % 4
            };
            (kfn << 12) | P | RW | A | D
        };
        for i in 0..20u64 {
            set(&mut cache, &mut host, L1S[0], i as usize, value(i));
        }
        // The refused entry may be met by a flush of a full queue or at the
        // end of lazy mode: either way it is reported once.
        let (batch, mut target) = host.target();
        let _ = batch.leave_lazy(&mut target);
        assert!(batch.is_empty());
        assert_eq!(host.failures.len(), 1, "reported once");
        let tag = host.failures[0].tag;
        assert_eq!(
            (tag.what, tag.kfn, tag.index, tag.guest),
            (What::L1Entry, L1S[0], 7, value(7))
        );
        assert_eq!(tag.entry_address(), (u64::from(L1S[0]) << 12) + 7 * 8);
        // Every other entry took effect, before and after the refused one.
        let (mfn, _) = cache.table(L1S[0], Kind::L1).unwrap();
        let shadow = host.model.shadow(mfn);
        for i in 0..20u64 {
            if i != 7 {
                assert_eq!(shadow[i as usize], expect_l1(value(i)), "entry {i}");
            }
        }
        assert_eq!(shadow[7], 0, "the refused entry was never written");
        // A queue of 8: a hypercall per queue-full, one more for the
        // requests Xen skipped behind the refusal, one for the rest.
        assert!(
            host.hypercalls <= 20usize.div_ceil(8) + 2,
            "{} hypercalls",
            host.hypercalls
        );
    }
}

/// A fault's remembered directory entry (`FaultPath`) against the changes
/// the random sequences meet rarely: the PDPT slot of the loaded root
/// naming another (announced, so surviving) directory, the faulting table's
/// frame becoming a directory too, a frame that is a table and a directory
/// at once. After each, what is remembered still holds
/// (`fault_path_holds`), and the kernel's update of the fault's entry is
/// not taken in one step where the general path would write elsewhere.
#[test]
fn fault_path_follows_root_slots_and_records() {
    let user_pde = |l1: u32| (u64::from(l1) << 12) | P | RW | US;
    let write = Access {
        write: true,
        user: true,
        fetch: false,
    };
    let setup = || {
        run(
            &[
                Step::SetPdpte {
                    cr3: 0,
                    slot: 0,
                    value: (u64::from(L2S[0]) << 12) | P,
                },
                Step::AllocateL2 { l2: 0 },
                Step::AllocateL2 { l2: 1 },
                Step::AllocateL1 { l1: 0 },
                Step::AllocateL1 { l1: 1 },
                Step::SetPde {
                    l2: 0,
                    index: 0,
                    value: user_pde(L1S[0]),
                },
                Step::SetPde {
                    l2: 1,
                    index: 0,
                    value: user_pde(L1S[1]),
                },
                Step::Load { cr3: 0 },
            ],
            64,
        )
    };
    let page = (0x1001 << 12) | P | RW | US | A | D;

    // The root's slot 0 moves to the other directory.
    let (mut cache, mut m) = setup();
    let fault_va = va(0, 0, 1);
    assert_eq!(
        cache.kernels_fault(&mut m, fault_va, write, true),
        Some(false)
    );
    assert!(cache.fault_path_holds(&mut m));
    let pdpt = CR3S[0] >> 12;
    let first = ((CR3S[0] & 0xFFF) / 8) as usize;
    m.guest_mut(pdpt)[first] = (u64::from(L2S[1]) << 12) | P;
    cache
        .entry_changed(&mut m, pdpt, first, (u64::from(L2S[1]) << 12) | P)
        .unwrap();
    cache.load_root(&mut m, CR3S[0]).unwrap();
    assert!(
        cache.fault_path_holds(&mut m),
        "after the root slot changed"
    );
    m.guest_mut(L1S[0])[1] = page;
    assert_eq!(cache.fault_entry_changed(&mut m, L1S[0], 1, page), None);
    cache.entry_changed(&mut m, L1S[0], 1, page).unwrap();
    check(&cache, &m);

    // The root released while another is loaded, and its place taken by a
    // new root whose slot (0, or 3: the top directory, which a new root
    // takes without a slot change) names the other directory.
    for slot in [0, 3] {
        let (mut cache, mut m) = setup();
        let at = |cr3: u32| ((cr3 & 0xFFF) / 8) as usize + slot;
        let dir = |l2: u32| (u64::from(l2) << 12) | P;
        // The first root with the directory in `slot` instead, loaded.
        m.guest_mut(pdpt)[first] = 0;
        m.guest_mut(pdpt)[at(CR3S[0])] = dir(L2S[0]);
        cache.load_root(&mut m, CR3S[0]).unwrap();
        let fault_va = va(slot, 0, 1);
        assert_eq!(
            cache.kernels_fault(&mut m, fault_va, write, true),
            Some(false)
        );
        let other = CR3S[2];
        m.guest_mut(other >> 12)[at(other)] = dir(L2S[0]);
        cache.load_root(&mut m, other).unwrap();
        cache.release(&mut m, pdpt, true);
        assert!(
            cache.roots().all(|r| r.0 != CR3S[0]),
            "the first root is gone"
        );
        let third = CR3S[3];
        m.guest_mut(third >> 12)[at(third)] = dir(L2S[1]);
        cache.load_root(&mut m, third).unwrap();
        assert!(
            cache.fault_path_holds(&mut m),
            "slot {slot}: after the root was replaced"
        );
        m.guest_mut(L1S[0])[1] = page;
        assert_eq!(cache.fault_entry_changed(&mut m, L1S[0], 1, page), None);
        cache.entry_changed(&mut m, L1S[0], 1, page).unwrap();
        check(&cache, &m);
    }

    // The faulting table's frame announced as a directory as well.
    let (mut cache, mut m) = setup();
    assert_eq!(
        cache.kernels_fault(&mut m, fault_va, write, true),
        Some(false)
    );
    cache.allocate_l2(&mut m, L1S[0], false, None).unwrap();
    assert!(cache.fault_path_holds(&mut m), "after a directory record");
    m.guest_mut(L1S[0])[1] = page;
    assert_eq!(cache.fault_entry_changed(&mut m, L1S[0], 1, page), None);
    cache.entry_changed(&mut m, L1S[0], 1, page).unwrap();
    check(&cache, &m);

    // A directory whose entry 2 names itself: a fault under it is in a
    // table that is a directory too; its entry's change is the general
    // path's (the mirror follows).
    let (mut cache, mut m) = setup();
    m.guest_mut(L2S[0])[2] = user_pde(L2S[0]);
    cache
        .entry_changed(&mut m, L2S[0], 2, user_pde(L2S[0]))
        .unwrap();
    let self_mapped = va(0, 2, 7);
    assert_eq!(
        cache.kernels_fault(&mut m, self_mapped, write, true),
        Some(false)
    );
    assert!(cache.fault_path_holds(&mut m));
    let pde = user_pde(L1S[1]);
    m.guest_mut(L2S[0])[7] = pde;
    assert_eq!(cache.fault_entry_changed(&mut m, L2S[0], 7, pde), None);
    cache.entry_changed(&mut m, L2S[0], 7, pde).unwrap();
    check(&cache, &m);
    assert!(cache.fault_path_holds(&mut m));

    // And the usual case, for contrast: taken in one step.
    let (mut cache, mut m) = setup();
    assert_eq!(
        cache.kernels_fault(&mut m, fault_va, write, true),
        Some(false)
    );
    m.guest_mut(L1S[0])[1] = page;
    let w = entry_update(&mut cache, &mut m, L1S[0], 1, page).unwrap();
    assert!(w);
    assert_eq!(FUSED_UPDATES.with(|c| c.get()), 1);
    check(&cache, &m);
}

/// UpdatePxELong's path in assembly (`quick_fault_entry`) takes the
/// update of a fault's entry only in a table whose known frame is gone
/// (`FaultPath::update_kfn`): declined while the table's record has its
/// known frame (the Rust path keeps the frame's list), taken once enough
/// new tables have taken every known slot in turn, and then exactly the
/// general path's write (`entry_update`). Never at another entry of the
/// table, nor after the address was taken.
/// A user write, as the processor reports it in a #PF error code.
const USER_WRITE: Access = Access {
    write: true,
    user: true,
    fetch: false,
};

/// Root 0 loaded with one directory (L2S[0] in PDPT slot 0) linking one
/// page table (L1S[0] at entry 0), on a pool of `pool` frames.
fn one_table_loaded(pool: usize) -> (Box<ShadowCache>, Model) {
    let user_pde = (u64::from(L1S[0]) << 12) | P | RW | US;
    run(
        &[
            Step::SetPdpte {
                cr3: 0,
                slot: 0,
                value: (u64::from(L2S[0]) << 12) | P,
            },
            Step::AllocateL2 { l2: 0 },
            Step::AllocateL1 { l1: 0 },
            Step::SetPde {
                l2: 0,
                index: 0,
                value: user_pde,
            },
            Step::Load { cr3: 0 },
        ],
        pool,
    )
}

#[test]
fn assembly_update_path_takes_unlisted_tables_only() {
    let write = USER_WRITE;
    let (mut cache, mut m) = one_table_loaded(4096);
    let page = (0x1001 << 12) | P | RW | US | A | D;
    let fault_va = va(0, 0, 1);
    // A new table's record has a known frame: the assembly declines.
    assert_eq!(
        cache.kernels_fault(&mut m, fault_va, write, true),
        Some(false)
    );
    assert_eq!(
        cache.quick_fault_entry(L1S[0], 8),
        None,
        "a known frame's table"
    );
    assert!(cache.fault_path_holds(&mut m));
    m.guest_mut(L1S[0])[1] = page;
    assert!(entry_update(&mut cache, &mut m, L1S[0], 1, page).unwrap());
    check(&cache, &m);
    // Twice as many new tables as known slots: every slot given up in turn.
    for i in 0..2 * KNOWN_SLOTS as u32 {
        cache.allocate_l1(&mut m, 0x2300 + i, true).unwrap();
    }
    assert!(cache.fault_path_holds(&mut m));
    let fault_va = va(0, 0, 2);
    assert_eq!(
        cache.kernels_fault(&mut m, fault_va, write, true),
        Some(false)
    );
    assert!(cache.fault_path_holds(&mut m));
    let target = cache.quick_fault_entry(L1S[0], 16);
    assert!(target.is_some(), "an unlisted table's entry");
    assert_eq!(target, cache.fault_entry(L1S[0], 2));
    assert_eq!(cache.quick_fault_entry(L1S[0], 8), None, "another entry");
    assert_eq!(cache.quick_fault_entry(L1S[0], 20), None, "misaligned");
    assert_eq!(cache.quick_fault_entry(L1S[1], 16), None, "another frame");
    let before = QUICK_UPDATES.with(|c| c.get());
    m.guest_mut(L1S[0])[2] = page;
    assert!(entry_update(&mut cache, &mut m, L1S[0], 2, page).unwrap());
    assert_eq!(QUICK_UPDATES.with(|c| c.get()), before + 1);
    check(&cache, &m);
    assert_eq!(
        cache.quick_fault_entry(L1S[0], 16),
        None,
        "the address taken"
    );
}

/// Random sequences in which known slots are given up often
/// (`step_giving_up_known`): UpdatePxELong's path in assembly then takes
/// many of the kernel's updates after a fault, each exactly the general
/// path's (`entry_update`), and after every step whatever it would take
/// is `fault_entry`'s (`check_assembly_update_path`).
#[test]
fn random_sequences_reach_the_assembly_update_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(step_giving_up_known(), 60..160);
    let (quick_before, named_before) = (
        QUICK_UPDATES.with(|c| c.get()),
        QUICK_NAMED.with(|c| c.get()),
    );
    for pool in [16, 4096] {
        for _ in 0..25 {
            let steps = strategy.new_tree(&mut runner).unwrap().current();
            run(&steps, pool);
        }
    }
    let quick = QUICK_UPDATES.with(|c| c.get()) - quick_before;
    let named = QUICK_NAMED.with(|c| c.get()) - named_before;
    eprintln!("assembly update path: {quick} updates taken, named after {named} steps");
    assert!(quick > 30, "updates the assembly path takes: {quick}");
    assert!(named > 20, "steps after which it names an entry: {named}");
}

/// Page tables of the loaded space (frames `0x2400 + n`, linked at entry
/// `first + n` of its directory `dir`) announced and linked until the pool
/// runs dry. Returns how many were linked.
fn link_tables_until_dry(cache: &mut ShadowCache, m: &mut Model, dir: u32, first: usize) -> usize {
    for n in 0..ENTRIES - first {
        let l1 = 0x2400 + n as u32;
        match cache.allocate_l1(m, l1, true) {
            Ok(()) => {}
            Err(ShadowError::OutOfFrames) => return n,
            Err(e) => panic!("{e:?}"),
        }
        m.guest_mut(dir)[first + n] = (u64::from(l1) << 12) | P | RW;
        match cache.entry_changed(m, dir, first + n, (u64::from(l1) << 12) | P | RW) {
            Ok(_) => {}
            Err(ShadowError::OutOfFrames) => return n,
            Err(e) => panic!("{e:?}"),
        }
        check(cache, m);
    }
    panic!("the pool never ran dry");
}

/// The loaded space: PDPT slot 0 names directory L2S[1], loaded.
fn loaded_space(pool: usize) -> (Box<ShadowCache>, Model) {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 0,
            value: (u64::from(L2S[1]) << 12) | P,
        },
        Step::Load { cr3: 0 },
    ];
    run(&steps, pool)
}

/// Out of frames only when none is left: with the pool dry, the frame of
/// an announced directory nothing links (evicted, its frame then kept for
/// the next directory, `KnownDir`) goes to the next page table instead,
/// as every other frame an eviction frees does. When the pool is finally
/// out, every frame the cache holds is one the loaded space reaches.
#[test]
fn a_dry_pool_takes_an_evicted_directorys_frame() {
    const POOL: usize = 24;
    // The same space with no other directory: how many tables it takes.
    let (mut cache, mut m) = loaded_space(POOL);
    let alone = link_tables_until_dry(&mut cache, &mut m, L2S[1], 0);
    assert_eq!(cache.frames_in_use(), loaded_tree(&cache, &m).len());
    // Now with a directory announced (a fork's, under no root yet): one
    // frame of the pool is its, until the pool runs dry and the eviction
    // frees its record.
    let (mut cache, mut m) = loaded_space(POOL);
    cache.allocate_l2(&mut m, L2S[0], true, None).unwrap();
    check(&cache, &m);
    let linked = link_tables_until_dry(&mut cache, &mut m, L2S[1], 0);
    let kept: Vec<_> = cache.known_dirs().filter(|d| d.1.is_none()).collect();
    assert_eq!(
        (linked, cache.frames_in_use(), kept.len()),
        (alone, loaded_tree(&cache, &m).len(), 0),
        "out of frames with a frame kept for a directory: {kept:x?}"
    );
    check(&cache, &m);
}

/// Announced page tables nothing links (frames from `0x2800`) until every
/// record is in use: the next record needs an eviction. Returns how many.
fn fill_records(cache: &mut ShadowCache, m: &mut Model) -> u32 {
    let mut n = 0;
    while cache.records().iter().sum::<usize>() < MAX_TABLES {
        cache.allocate_l1(m, 0x2800 + n, true).unwrap();
        n += 1;
    }
    check(cache, m);
    n
}

/// A new directory taking a freed directory's frame as it stands
/// (`KnownDir`) while its record needs an eviction (`take_record` inside
/// `new_record`): the eviction frees another directory, whose frame is
/// kept in turn, and tables whose frames are kept or cleared; no frame is
/// handed out twice (the model's frame accounting and types), both kept
/// frames go to the next two directories, and a space built on them is
/// exact once loaded. Then the same with the pool dry: the kept frames are
/// given back whole.
#[test]
fn a_kept_directory_taken_while_its_record_evicts() {
    // The loaded space has no directory of its own (both `KnownDir` slots
    // for the directories below).
    let (mut cache, mut m) = run(&[Step::Load { cr3: 0 }], 4096);
    let cache = &mut *cache;
    // Directory L2S[0] with two tables linked, later freed with its
    // links: its frame kept with both entries listed, stale.
    let link = |l1: u32| (u64::from(l1) << 12) | P | RW | US;
    cache.allocate_l2(&mut m, L2S[0], true, None).unwrap();
    for (l1, index) in [(L1S[0], 1), (L1S[1], 5)] {
        cache.allocate_l1(&mut m, l1, true).unwrap();
        set_entry(cache, &mut m, L2S[0], index, link(l1));
        set_entry(cache, &mut m, l1, 0, stale_page(index));
    }
    // Another directory announced with a table linked, nothing linking it:
    // the eviction below frees it.
    cache.allocate_l2(&mut m, L2S[2], true, None).unwrap();
    set_entry(cache, &mut m, L2S[2], 9, link(L1S[2]));
    cache.release(&mut m, L2S[0], true);
    check(cache, &m);
    let kept = |cache: &ShadowCache| cache.known_dirs().filter(|d| d.1.is_none()).count();
    assert_eq!(kept(cache), 1);
    let filled = fill_records(cache, &mut m);
    let before = cache.stats();
    // The new directory: its frame is the kept one, its record made after
    // an eviction.
    cache.allocate_l2(&mut m, L2S[4], true, None).unwrap();
    check(cache, &m);
    let s = cache.stats();
    assert_eq!(
        (
            s.evictions - before.evictions,
            s.dirs_reused - before.dirs_reused
        ),
        (1, 1),
        "{s:?}"
    );
    assert_eq!(kept(cache), 1, "the evicted directory's frame kept");
    // Its entries as L2S[0]'s were, one the same, one another table.
    set_entry(cache, &mut m, L2S[4], 1, link(L1S[0]));
    set_entry(cache, &mut m, L2S[4], 7, link(L1S[3]));
    // The evicted directory comes back (its frame the other kept one).
    cache.allocate_l2(&mut m, L2S[2], true, None).unwrap();
    set_entry(cache, &mut m, L2S[2], 9, link(L1S[2]));
    assert_eq!(kept(cache), 0);
    for (cr3, l2) in [(2, L2S[4]), (3, L2S[2])] {
        let index = ((CR3S[cr3] & 0xFFF) / 8) as usize;
        m.guest_mut(CR3S[cr3] >> 12)[index] = (u64::from(l2) << 12) | P;
        cache.load_root(&mut m, CR3S[cr3]).unwrap();
        m.check_validated(&"load");
        check(cache, &m);
        for pde in [1, 5, 7, 9] {
            loaded_entry_is_xens(cache, &m, va(0, pde, 0));
        }
    }
    // The pool dry (the announced tables the eviction left released
    // first): every frame the cache holds ends up in a loaded tree.
    for n in 0..filled {
        cache.release(&mut m, 0x2800 + n, false);
    }
    check(cache, &m);
    m.pool_total -= m.pool.len();
    m.pool.clear();
    cache.load_root(&mut m, CR3S[2]).unwrap();
    let linked = link_tables_until_dry(cache, &mut m, L2S[4], 10);
    assert!(linked > 0);
    assert_eq!(kept(cache), 0);
    check(cache, &m);
}

/// Sets PDPT slot 0 of root `cr3` (an index of CR3S) to directory `l2`.
fn set_pdpt_slot0(m: &mut Model, cr3: usize, l2: u32) {
    let index = ((CR3S[cr3] & 0xFFF) / 8) as usize;
    m.guest_mut(CR3S[cr3] >> 12)[index] = (u64::from(l2) << 12) | P;
}

/// A kept directory frame with every listed entry stale, taken by a
/// directory with more entries than a `KnownDir` lists (some the same
/// links, some other tables at the same entries, some at new ones): the
/// directory is followed no more (its stale entries zeroed first), and
/// once loaded its shadow is exactly its entries, no stale link left.
#[test]
fn a_kept_directory_taken_by_a_larger_directory() {
    let (mut cache, mut m) = run(&[Step::Load { cr3: 0 }], 4096);
    let cache = &mut *cache;
    let link = |l1: u32| (u64::from(l1) << 12) | P | RW | US;
    let table = |n: usize| 0x2400 + n as u32;
    cache.allocate_l2(&mut m, L2S[0], true, None).unwrap();
    for n in 0..KNOWN_DIR_ENTRIES {
        cache.allocate_l1(&mut m, table(n), true).unwrap();
        set_entry(cache, &mut m, L2S[0], 2 * n, link(table(n)));
        set_entry(cache, &mut m, table(n), 0, stale_page(n));
    }
    cache.release(&mut m, L2S[0], true);
    check(cache, &m);
    assert_eq!(
        cache.known_dirs().filter(|d| d.1.is_none()).count(),
        1,
        "the freed directory's frame kept"
    );
    let before = cache.stats();
    cache.allocate_l2(&mut m, L2S[2], true, None).unwrap();
    assert_eq!(cache.stats().dirs_reused - before.dirs_reused, 1);
    // Entries 0 and 2: the same tables; 4: another table; 1, 3, 5 ...:
    // new entries, past what a slot lists.
    let mut entries = vec![(0, table(0)), (2, table(1)), (4, table(40))];
    entries.extend((0..KNOWN_DIR_ENTRIES).map(|n| (2 * n + 1, table(50 + n))));
    for &(index, l1) in &entries {
        cache.allocate_l1(&mut m, l1, true).unwrap();
        set_entry(cache, &mut m, L2S[2], index, link(l1));
        set_entry(cache, &mut m, l1, 3, stale_page(index));
    }
    let s = cache.stats();
    assert!(
        s.dir_stale_zeroed > before.dir_stale_zeroed,
        "the stale entries zeroed when the directory was given up: {s:?}"
    );
    assert!(cache.known_dirs().all(|d| d.1 != Some(L2S[2])));
    set_pdpt_slot0(&mut m, 2, L2S[2]);
    cache.load_root(&mut m, CR3S[2]).unwrap();
    m.check_validated(&"load");
    check(cache, &m);
    let l3 = cache.roots().find(|r| r.0 == CR3S[2]).unwrap().1;
    let dir = ((m.shadow(l3)[0] & FRAME) >> 12) as u32;
    let linked = m.shadow(dir).iter().filter(|&&e| e != 0).count();
    assert_eq!(linked, entries.len(), "the directory's links and no other");
}

/// [`set_entry`], then the queue order of what it validated checked
/// (`Model::check_validated`) for that call alone.
fn set_entry_checked(cache: &mut ShadowCache, m: &mut Model, kfn: u32, index: usize, value: u64) {
    set_entry(cache, m, kfn, index, value);
    m.check_validated(&(kfn, index, value));
}

/// Unlinks in a directory the loaded root does not reach are left out
/// (the frame keeps the old link, stale, and the cached root reaching it
/// is dropped): the space loaded again, with an entry unlinked, one
/// linked again with the same table, and one with another table, is
/// exactly the kernel's, and a second space sharing the directory, built
/// while the entries are stale, too.
#[test]
fn an_unlink_left_out_is_never_reached() {
    let (mut cache, mut m) = run(&[Step::Load { cr3: 0 }], 4096);
    let cache = &mut *cache;
    let link = |l1: u32| (u64::from(l1) << 12) | P | RW | US;
    cache.allocate_l2(&mut m, L2S[0], true, None).unwrap();
    for (n, &l1) in L1S[..4].iter().enumerate() {
        cache.allocate_l1(&mut m, l1, true).unwrap();
        set_entry_checked(cache, &mut m, L2S[0], n, link(l1));
        set_entry_checked(cache, &mut m, l1, 0, stale_page(n));
    }
    set_pdpt_slot0(&mut m, 2, L2S[0]);
    cache.load_root(&mut m, CR3S[2]).unwrap();
    check(cache, &m);
    cache.load_root(&mut m, CR3S[0]).unwrap();
    m.check_validated(&"setup");
    for round in 0..3 {
        let before = cache.stats();
        // Entries 0-2 unlinked (their pages first), entry 1 linked again,
        // entry 2's table released and entry 2 linked again.
        for (index, &l1) in L1S[..3].iter().enumerate() {
            set_entry_checked(cache, &mut m, l1, 0, 0);
            set_entry_checked(cache, &mut m, L2S[0], index, 0);
        }
        cache.release(&mut m, L1S[2], false);
        m.check_validated(&"release");
        set_entry_checked(cache, &mut m, L2S[0], 1, link(L1S[1]));
        set_entry_checked(cache, &mut m, L1S[1], 0, stale_page(1));
        // Even rounds: another table at entry 2; odd rounds: the same
        // table announced again.
        let other = if round % 2 == 0 { L1S[5] } else { L1S[2] };
        cache.allocate_l1(&mut m, other, true).unwrap();
        m.check_validated(&"allocate");
        set_entry_checked(cache, &mut m, L2S[0], 2, link(other));
        set_entry_checked(cache, &mut m, other, 9, stale_page(9));
        let s = cache.stats();
        assert!(
            s.dir_writes_skipped > before.dir_writes_skipped,
            "round {round}: {s:?}"
        );
        assert!(cache.current_cr3() == Some(CR3S[0]));
        // A second space sharing the directory, then the first again.
        set_pdpt_slot0(&mut m, 3, L2S[0]);
        for cr3 in [3, 2, 0] {
            cache.load_root(&mut m, CR3S[cr3]).unwrap();
            m.check_validated(&(round, cr3));
            check(cache, &m);
        }
        // Back as the round began: L1S[0] and L1S[2] at entries 0 and 2,
        // with their pages.
        set_entry_checked(cache, &mut m, L2S[0], 0, link(L1S[0]));
        set_entry_checked(cache, &mut m, L1S[0], 0, stale_page(0));
        if other != L1S[2] {
            set_entry_checked(cache, &mut m, other, 9, 0);
            set_entry_checked(cache, &mut m, L2S[0], 2, 0);
            cache.release(&mut m, other, false);
            cache.allocate_l1(&mut m, L1S[2], true).unwrap();
            m.check_validated(&"allocate");
            set_entry_checked(cache, &mut m, L2S[0], 2, link(L1S[2]));
        } else {
            set_entry_checked(cache, &mut m, L1S[2], 9, 0);
        }
        set_entry_checked(cache, &mut m, L1S[2], 0, stale_page(2));
        check(cache, &m);
    }
}

/// A fault's one-step update of a page table whose frame is followed
/// (`KnownFrame`: a new table takes a free slot) stops following it: the
/// loaded root reaches the table, so no write to it is ever left out, and
/// each update would pay the list's upkeep. The update is the general
/// path's, and the next one may take the path in assembly.
#[test]
fn a_faults_update_stops_following_the_table() {
    let write = USER_WRITE;
    let (mut cache, mut m) = one_table_loaded(64);
    let followed = |cache: &ShadowCache| cache.known_frames().any(|k| k.1 == Some(L1S[0]));
    assert!(followed(&cache), "a new table's frame is followed");
    for (n, index) in [1usize, 2].into_iter().enumerate() {
        let fault_va = va(0, 0, index);
        assert_eq!(
            cache.kernels_fault(&mut m, fault_va, write, true),
            Some(false)
        );
        let page = ((0x1001 + n as u64) << 12) | P | RW | US | A | D;
        m.guest_mut(L1S[0])[index] = page;
        // The one-step update beside the general path (`entry_update`:
        // the same write, ops, tables and statistics).
        let fused = FUSED_UPDATES.with(|c| c.get());
        assert_eq!(
            entry_update(&mut cache, &mut m, L1S[0], index, page),
            Ok(true)
        );
        assert_eq!(
            FUSED_UPDATES.with(|c| c.get()),
            fused + 1,
            "update {n}: taken in one step"
        );
        assert!(
            !followed(&cache),
            "update {n}: the table is followed no more"
        );
        assert!(
            cache
                .quick_fault_entry(L1S[0], (index * 8) as u32)
                .is_none(),
            "update {n}: the address is taken"
        );
        check(&cache, &m);
    }
    // The path in assembly may take the table's next fault.
    let fault_va = va(0, 0, 3);
    assert_eq!(
        cache.kernels_fault(&mut m, fault_va, write, true),
        Some(false)
    );
    assert!(
        cache.quick_fault_entry(L1S[0], 3 * 8).is_some(),
        "no known frame keeps UpdatePxELong's path in assembly away"
    );
}

/// Root 2's child as [`fork_and_exit_mapping`] builds it, with one page
/// table (L1S[0] at directory entry 1) whose entries are `writes`, in that
/// order, loaded, then torn down; checked at every step.
fn fork_one_table(cache: &mut ShadowCache, m: &mut Model, writes: &[(usize, u64)]) {
    cache.allocate_l2(m, L2S[0], true, None).unwrap();
    cache.allocate_l1(m, L1S[0], true).unwrap();
    set_entry(cache, m, L2S[0], 1, (u64::from(L1S[0]) << 12) | P | RW | US);
    for &(j, value) in writes {
        set_entry(cache, m, L1S[0], j, value);
    }
    cache.load_root(m, CR3S[2]).unwrap();
    check(cache, m);
    cache.load_root(m, CR3S[0]).unwrap();
    check(cache, m);
    m.guest_mut(L1S[0]).fill(0);
    set_entry(cache, m, L2S[0], 1, 0);
    cache.release(m, L1S[0], false);
    cache.release(m, L2S[0], true);
    cache.release(m, CR3S[2] >> 12, true);
    check(cache, m);
}

/// A table whose writes the scratch frame holds and that comes to list
/// more entries than a slot does is followed no more: the scratch's
/// writes reach its frame first (one copy, or with fewer than the
/// threshold each as a write) and the write that overflowed is queued
/// behind them; its frame is then exactly its entries at the load.
#[test]
fn a_table_overflowing_its_list_on_the_scratch_frame() {
    let steps = [
        Step::SetPdpte {
            cr3: 0,
            slot: 3,
            value: (u64::from(L2S[3]) << 12) | P,
        },
        Step::SetPdpte {
            cr3: 2,
            slot: 0,
            value: (u64::from(L2S[0]) << 12) | P,
        },
        Step::Load { cr3: 0 },
    ];
    let page = |frame: u64| (frame << 12) | P | US | A;
    let listed = KNOWN_ENTRIES;
    // Many fresh writes: the copy.
    let (mut cache, mut m) = run(&steps, 4096);
    let warm: Vec<_> = (0..16).map(|j| (j, page(0x1000 + j as u64))).collect();
    fork_one_table(&mut cache, &mut m, &warm);
    fork_one_table(&mut cache, &mut m, &warm);
    let before = cache.stats();
    let fresh: Vec<_> = (0..listed + 8)
        .map(|j| (j, page(0x1800 + j as u64)))
        .collect();
    fork_one_table(&mut cache, &mut m, &fresh);
    let s = cache.stats();
    assert_eq!(s.scratch_copies - before.scratch_copies, 1, "{s:?}");
    assert_eq!(s.scratch_writes - before.scratch_writes, listed as u32);
    // One fresh write, then the listed ones unchanged (left out) and one
    // more: the fresh one written from the list at the overflow.
    let (mut cache, mut m) = run(&steps, 4096);
    cache.set_scratch_copy_min(listed as u32);
    let warm: Vec<_> = (0..listed).map(|j| (j, page(0x1000 + j as u64))).collect();
    fork_one_table(&mut cache, &mut m, &warm);
    fork_one_table(&mut cache, &mut m, &warm);
    let before = cache.stats();
    let mut writes = vec![(0, page(0x1800))];
    writes.extend_from_slice(&warm[1..]);
    writes.push((listed, page(0x1900)));
    fork_one_table(&mut cache, &mut m, &writes);
    let s = cache.stats();
    assert_eq!(
        (
            s.scratch_writes - before.scratch_writes,
            s.scratch_copies - before.scratch_copies
        ),
        (1, 0),
        "{s:?}"
    );
}

/// A copy from the scratch frame names the kernel table whose frame it
/// fills (what the ROM prints if Xen refuses it): at the load, and when the
/// table's record goes before anything reached it (an exec that fails
/// after it built its tables).
#[test]
fn a_copy_from_the_scratch_frame_names_its_table() {
    let (mut cache, mut m) = run(&[Step::Load { cr3: 0 }], 4096);
    let cache = &mut *cache;
    fork_and_exit(cache, &mut m, 16, 511);
    fork_and_exit(cache, &mut m, 16, 511);
    // Copied at the load.
    m.fills.clear();
    fork_and_exit_mapping(cache, &mut m, 16, 511, false, 0x1800);
    let table = cache.known_frames().map(|f| f.0).collect::<Vec<_>>();
    assert_eq!(m.fills.len(), 1);
    let (frame, tag) = m.fills[0];
    assert!(table.contains(&frame));
    assert_eq!((tag.what, tag.kfn), (What::FillTable, L1S[0]));
    // Freed before its space is loaded: unlinked and released.
    m.fills.clear();
    build_unloaded_child(cache, &mut m, 0x1000);
    assert!(cache.scratch_owner_frame().is_some(), "the scratch taken");
    m.guest_mut(L1S[0]).fill(0);
    set_entry(cache, &mut m, L2S[0], 1, 0);
    cache.release(&mut m, L1S[0], false);
    check(cache, &m);
    assert_eq!(m.fills.len(), 1, "the copy before the frame is kept");
    assert_eq!(
        (m.fills[0].1.what, m.fills[0].1.kfn),
        (What::FillTable, L1S[0])
    );
}

/// A child's space built and not loaded: its directory (`L2S[0]`) and one
/// table (`L1S[0]`, linked at entry 1) whose first 16 entries map kernel
/// frames from `first` on, user read-only.
fn build_unloaded_child(cache: &mut ShadowCache, m: &mut Model, first: u64) {
    cache.allocate_l2(m, L2S[0], true, None).unwrap();
    cache.allocate_l1(m, L1S[0], true).unwrap();
    set_entry(cache, m, L2S[0], 1, (u64::from(L1S[0]) << 12) | P | RW | US);
    for j in 0..16 {
        set_entry(cache, m, L1S[0], j, ((first + j as u64) << 12) | P | US | A);
    }
}

/// Every shadow dropped (`drop_all`: paging off, or the ROM's rebuild)
/// while a table's writes are in the scratch frame, and while a copy from
/// it is still queued: its frame is filled before it is kept, the scratch
/// is not taken again before the copy has gone out, and the spaces built
/// next are exact.
#[test]
fn dropping_every_shadow_with_the_scratch_frame_in_use() {
    for held in [false, true] {
        let (mut cache, mut m) = run(&[Step::Load { cr3: 0 }], 4096);
        let cache = &mut *cache;
        fork_and_exit(cache, &mut m, 16, 511);
        fork_and_exit(cache, &mut m, 16, 511);
        if held {
            // A fresh child loaded: its copy queued (held) at the load.
            m.held = Some(Vec::new());
            fork_and_exit_mapping(cache, &mut m, 16, 511, false, 0x1800);
        }
        // A fresh child built, not loaded: its writes in the scratch (or
        // queued, while a copy is).
        build_unloaded_child(cache, &mut m, 0x1C00);
        assert_eq!(cache.scratch_owner_frame().is_some(), !held);
        cache.drop_all(&mut m);
        assert!(cache.scratch_owner_frame().is_none());
        if held {
            m.release_held();
        }
        check(cache, &m);
        // Built again and used: the child's table as the kernel has it.
        cache.load_root(&mut m, CR3S[0]).unwrap();
        check(cache, &m);
        fork_and_exit_mapping(cache, &mut m, 16, 511, false, 0x1900);
        fork_and_exit_mapping(cache, &mut m, 16, 511, false, 0x1A00);
        check(cache, &m);
    }
}

proptest! {
    /// The lazy path in assembly (entry.rs, `lazy_entry_update`) writes an
    /// L1 entry's tag by `quick_table_layout`: the kernel's entry, the
    /// frame, and the index zero-extended as one 32-bit word at
    /// `TAG_INDEX_WHAT` (which also makes `what` L1Entry). Over whatever
    /// tag the bytes held before, that is the tag `Tag { what: L1Entry,
    /// kfn, index, guest }`.
    #[test]
    fn tag_written_by_layout(
        before_what in 0usize..13,
        before in any::<(u32, u16, u64)>(),
        kfn in any::<u32>(),
        index in 0u16..512,
        guest in any::<u64>(),
    ) {
        use xen_vmi_rom::shadow_cache::quick_table_layout as layout;
        let whats = [
            What::L1Entry,
            What::L2Entry,
            What::TopEntry,
            What::Pdpte,
            What::RomLink,
            What::Clear,
            What::Pin,
            What::Unpin,
            What::CopyTop,
            What::FillTable,
            What::NewBase,
            What::Tlb,
            What::StackSwitch,
        ];
        let mut tag = Tag {
            what: whats[before_what],
            kfn: before.0,
            index: before.1,
            guest: before.2,
        };
        let bytes = (&raw mut tag).cast::<u8>();
        // SAFETY: each write is inside the tag (the layout's asserts) and
        // leaves every field a valid value: `what` 0 is L1Entry, the byte
        // above it padding.
        unsafe {
            bytes.add(layout::TAG_GUEST).cast::<u64>().write_unaligned(guest);
            bytes.add(layout::TAG_KFN).cast::<u32>().write_unaligned(kfn);
            bytes
                .add(layout::TAG_INDEX_WHAT)
                .cast::<u32>()
                .write_unaligned(u32::from(index));
        }
        prop_assert_eq!(tag, Tag { what: What::L1Entry, kfn, index, guest });
    }
}
