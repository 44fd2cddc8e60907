//! Stress (`stress=N` on the command line, instead of the cases): N page
//! table updates in lazy MMU batches, address spaces created, cloned,
//! switched to and destroyed by the thousand, all under a storm of fast
//! periodic alarms with interrupts masked and unmasked at random; at the
//! end the kernel's tables, the translation the processor uses and a model
//! the test kept must agree exactly (docs/reliability.md).
//!
//! Every choice comes from a seeded generator (`stress_seed=X`), so a run
//! is the same sequence of calls on every platform. `stress_spaces=S` sets
//! how many address spaces the churn makes (N / 100 by default).
//!
//! The figures are printed as case lines of the project's protocol:
//! `stress_pte_updates`, `stress_address_spaces`, `stress_timer_storm`,
//! `stress_agreement`, then one `stress:` summary line.

use native_rom::hw::apic;
use vmi_abi::flags::{
    PageLevel, VMI_FLUSH_TLB, VMI_LAZY_MMU, VMI_LAZY_NONE, VMI_PAGE_CLONE, VMI_PAGE_L1_PAE,
    VMI_PAGE_L2_PAE,
};
use vmi_abi::time::{AlarmFlags, AlarmWiring, CycleCounter};

use crate::boot::BootInfo;
use crate::cases::{self, Case, Outcome, Status};
use crate::console::kprintln;
use crate::mm::{self, KERNEL_RW, PAGE_SIZE, PTE_A, PTE_ADDR, PTE_D, PTE_P, PTE_RW, PTE_US};
use crate::pv;
use crate::sync::Global;
use crate::trap::{catch, irq_count, Fault, VECTOR_APIC_TIMER};

/// The pages the updates play on: their own 8 MiB of the test region
/// (four page tables), away from the cases' test addresses.
const STRESS_VA: u32 = mm::TEST_BASE + (128 << 20);
/// Pages in the region.
const PAGES: usize = 2048;
/// Frames the pages map, each tagged with its own frame number.
const FRAMES: usize = 64;
/// Where a churned space maps its page (its own directory for the test
/// gigabyte; nothing there in the kernel's space).
const CHURN_VA: u32 = mm::TEST_BASE + (192 << 20);
/// Spaces alive at once during the churn.
const LIVE: usize = 4;
/// Alarm rate of the storm.
const STORM_HZ: u64 = 2000;
/// The second word of a tagged frame: its number, inverted.
const TAG_CHECK: u32 = 0xFFFF_FFFF;
/// Flags an update may carry: present, writable, user (A and D are the
/// processor's).
const MODEL_BITS: u64 = PTE_ADDR | PTE_P | PTE_RW | PTE_US;

/// xorshift64* (Vigna): a fast generator with a fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n`.
    fn below(&mut self, n: u32) -> u32 {
        ((self.next() >> 32) % u64::from(n)) as u32
    }
    /// True once in `n`.
    fn one_in(&mut self, n: u32) -> bool {
        self.below(n) == 0
    }
}

/// The run's state, kept between its cases.
struct State {
    rng: Rng,
    updates: u32,
    spaces_wanted: u32,
    frames: [u32; FRAMES],
    /// The entry the test last wrote for each page (0: none).
    model: [u64; PAGES],
    figures: Figures,
    storm: Storm,
    /// The first mismatch seen, if any.
    first_mismatch: Option<Mismatch>,
}

#[derive(Clone, Copy)]
struct Figures {
    applied: u32,
    batches: u32,
    flushes: u32,
    spot_checks: u32,
    spaces: u32,
    clones: u32,
    switches: u32,
    pages_checked: u32,
    mapped: u32,
    unmapped: u32,
    mismatches: u32,
    cycles: u64,
}

#[derive(Clone, Copy)]
struct Mismatch {
    va: u32,
    what: &'static str,
    want: u64,
    got: u64,
}

/// Interrupt masking at random, and what was seen while masked.
#[derive(Clone, Copy)]
struct Storm {
    masked: bool,
    count_at_mask: u32,
    sections: u32,
    while_masked: u32,
    start_count: u32,
    start_cycles: u64,
    ticks: u32,
    elapsed: u64,
}

/// The state lives in a static (the model is 16 KiB), filled by `setup`.
static STATE: Global<State> = Global::new(State {
    rng: Rng(1),
    updates: 0,
    spaces_wanted: 0,
    frames: [0; FRAMES],
    model: [0; PAGES],
    figures: Figures::ZERO,
    storm: Storm::ZERO,
    first_mismatch: None,
});

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(f)
}

fn alarm_flags() -> u32 {
    AlarmFlags::new(CycleCounter::Real, AlarmWiring::Lvtt, true).0
}

fn to_ms(cycles: u64) -> u64 {
    cycles * 1000 / pv::cycle_frequency()
}

fn tag(frame: u32) -> u32 {
    frame >> 12
}

/// A fresh frame whose first two words are its number and its inverse.
fn tagged_frame() -> u32 {
    let f = mm::alloc_frame();
    // SAFETY: a fresh identity-mapped frame.
    unsafe {
        (f as *mut u32).write_volatile(tag(f));
        ((f + 4) as *mut u32).write_volatile(tag(f) ^ TAG_CHECK);
    }
    f
}

fn page_va(page: usize) -> u32 {
    STRESS_VA + page as u32 * PAGE_SIZE
}

fn read_word(va: u32) -> Result<u32, Fault> {
    // SAFETY: a read that may fault, inside catch.
    catch(|| unsafe { (va as *const u32).read_volatile() })
}

fn write_word(va: u32, value: u32) -> Result<u32, Fault> {
    catch(|| {
        // SAFETY: a write that may fault, inside catch, to a tagged frame's
        // third word onwards (the tags stay).
        unsafe { (va as *mut u32).write_volatile(value) };
        0
    })
}

impl Figures {
    const ZERO: Figures = Figures {
        applied: 0,
        batches: 0,
        flushes: 0,
        spot_checks: 0,
        spaces: 0,
        clones: 0,
        switches: 0,
        pages_checked: 0,
        mapped: 0,
        unmapped: 0,
        mismatches: 0,
        cycles: 0,
    };
}

impl Storm {
    const ZERO: Storm = Storm {
        masked: false,
        count_at_mask: 0,
        sections: 0,
        while_masked: 0,
        start_count: 0,
        start_cycles: 0,
        ticks: 0,
        elapsed: 0,
    };

    /// Masks or unmasks interrupts, once in a while.
    fn maybe_toggle(&mut self, rng: &mut Rng) {
        if !rng.one_in(32) {
            return;
        }
        if self.masked {
            let seen = irq_count(VECTOR_APIC_TIMER).wrapping_sub(self.count_at_mask);
            self.while_masked += seen;
            self.masked = false;
            // Both ways a kernel unmasks: STI, or restoring saved flags.
            if rng.one_in(2) {
                pv::irq_enable();
            } else {
                pv::restore_fl(pv::save_fl() | (1 << 9));
            }
        } else {
            if rng.one_in(2) {
                pv::irq_disable();
            } else {
                pv::restore_fl(pv::save_fl() & !(1 << 9));
            }
            self.masked = true;
            self.sections += 1;
            self.count_at_mask = irq_count(VECTOR_APIC_TIMER);
        }
    }
}

impl State {
    fn mismatch(&mut self, va: u32, what: &'static str, want: u64, got: u64) {
        self.figures.mismatches += 1;
        if self.first_mismatch.is_none() {
            self.first_mismatch = Some(Mismatch {
                va,
                what,
                want,
                got,
            });
        }
    }

    /// Checks one page's translation against the model (after a flush or
    /// InvalPage of it): the tagged frame it maps, or a not-present #PF.
    fn check_translation(&mut self, page: usize, write: bool) {
        let va = page_va(page);
        let want = self.model[page];
        self.figures.pages_checked += 1;
        if want & PTE_P == 0 {
            self.figures.unmapped += 1;
            match read_word(va) {
                Err(f) if f.vector == 14 && f.error_code & 0x1F == 0 && f.cr2 == va => {}
                Err(f) => {
                    self.mismatch(va, "fault on an unmapped page", 0, u64::from(f.error_code))
                }
                Ok(v) => self.mismatch(va, "read of an unmapped page gave a word", 0, u64::from(v)),
            }
            return;
        }
        self.figures.mapped += 1;
        let frame = (want & PTE_ADDR) as u32;
        match (read_word(va), read_word(va + 4)) {
            (Ok(t), Ok(c)) if t == tag(frame) && c == tag(frame) ^ TAG_CHECK => {}
            (Ok(t), _) => self.mismatch(
                va,
                "tag of the frame reached",
                u64::from(tag(frame)),
                u64::from(t),
            ),
            (Err(f), _) => self.mismatch(va, "a mapped page faulted", 0, u64::from(f.error_code)),
        }
        if !write {
            return;
        }
        let slot = va + 8 + (page as u32 % 1000) * 4;
        let value = 0x5700_0000 | page as u32;
        match write_word(slot, value) {
            Ok(_) if want & PTE_RW != 0 => match read_word(slot) {
                Ok(v) if v == value => {}
                other => self.mismatch(
                    va,
                    "word written back",
                    u64::from(value),
                    other.map_or(u64::MAX, u64::from),
                ),
            },
            Ok(_) => self.mismatch(va, "write to a read-only page did not fault", 0, 1),
            Err(f)
                if want & PTE_RW == 0
                    && f.vector == 14
                    && f.error_code & 0x1F == 3
                    && f.cr2 == slot => {}
            Err(f) => self.mismatch(
                va,
                "write fault",
                u64::from(want & PTE_RW != 0),
                u64::from(f.error_code),
            ),
        }
    }
}

fn setup(boot: &BootInfo, updates: u32) {
    let seed = boot
        .option("stress_seed")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
        | 1;
    let spaces_wanted = boot
        .option("stress_spaces")
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or((updates / 100).max(100));
    let frames: [u32; FRAMES] = core::array::from_fn(|_| tagged_frame());
    // The region's page tables first (the kernel's, through the calls).
    for t in 0..PAGES / 512 {
        let _ = mm::pte_ptr(page_va(t * 512));
    }
    STATE.with(|s| {
        s.rng = Rng(seed);
        s.updates = updates;
        s.spaces_wanted = spaces_wanted;
        s.frames = frames;
    });
}

/// Case stress_pte_updates: the updates, in lazy batches ended at random
/// (SetLazyMode NONE, or a FlushTLB inside the batch), with protection
/// changes written natively and announced with UpdatePxELong, and spot
/// checks of the translation after each flush. Starts the storm.
fn pte_updates() -> Outcome {
    with_state(|st| {
        let period = pv::cycle_frequency() / STORM_HZ;
        pv::apic_write(apic::REG_LVT_TIMER, VECTOR_APIC_TIMER);
        st.storm.start_count = irq_count(VECTOR_APIC_TIMER);
        st.storm.start_cycles = pv::cycles_now();
        pv::set_alarm(alarm_flags(), st.storm.start_cycles + period, period);
        pv::irq_enable();
        let start = pv::cycles_now();
        let mut lazy = false;
        for _ in 0..st.updates {
            st.storm.maybe_toggle(&mut st.rng);
            if !lazy && st.rng.one_in(4) {
                pv::set_lazy_mode(VMI_LAZY_MMU);
                lazy = true;
                st.figures.batches += 1;
            }
            let page = st.rng.below(PAGES as u32) as usize;
            let va = page_va(page);
            let ptep = mm::entry(
                (mm::read_entry(mm::pde_ptr(&mm::kernel_space().expect("paging is on"), va))
                    & PTE_ADDR) as u32,
                (va >> 12) & 511,
            );
            let old = st.model[page];
            let kind = st.rng.below(16);
            let flags = if lazy {
                mm::deferred_flags(PageLevel::Pt, va)
            } else {
                mm::current_as_flags(PageLevel::Pt, va)
            };
            let new = if kind == 15 && old & PTE_P != 0 {
                // A protection change the way Linux write-protects for fork:
                // the entry stored natively, then announced.
                let new = old ^ PTE_RW;
                // SAFETY: the kernel's own page table for the region.
                unsafe { pv::store_pxe_long(ptep, new) };
                pv::update_pxe_long(ptep, flags);
                new
            } else {
                let new = match kind {
                    0..=2 => 0,
                    3..=5 => u64::from(st.frames[st.rng.below(FRAMES as u32) as usize]) | PTE_P,
                    _ => u64::from(st.frames[st.rng.below(FRAMES as u32) as usize]) | KERNEL_RW,
                };
                pv::set_pxe_long(new, ptep, flags);
                new
            };
            st.model[page] = new;
            st.figures.applied += 1;
            if lazy && st.rng.one_in(64) {
                if st.rng.one_in(4) {
                    // A flush inside the batch: what was queued is in
                    // effect from here on, and the batch goes on.
                    pv::flush_tlb(VMI_FLUSH_TLB);
                } else {
                    pv::set_lazy_mode(VMI_LAZY_NONE);
                    lazy = false;
                    pv::flush_tlb(VMI_FLUSH_TLB);
                }
                st.figures.flushes += 1;
                for _ in 0..2 {
                    let p = st.rng.below(PAGES as u32) as usize;
                    st.check_translation(p, false);
                    st.figures.spot_checks += 1;
                }
            } else if !lazy && st.rng.one_in(16) {
                pv::inval_page(va);
                st.check_translation(page, false);
                st.figures.spot_checks += 1;
            }
        }
        if lazy {
            pv::set_lazy_mode(VMI_LAZY_NONE);
        }
        pv::flush_tlb(VMI_FLUSH_TLB);
        let took = pv::cycles_now() - start;
        st.figures.cycles += took;
        let f = st.figures;
        if let Some(m) = st.first_mismatch {
            return Outcome::fail(format_args!(
                "{} mismatches in spot checks; first at {:#x}: {} expected {:#x}, got {:#x}",
                f.mismatches, m.va, m.what, m.want, m.got
            ));
        }
        Outcome::pass(format_args!(
            "{} updates applied in {} lazy batches, {} flushes, {} spot checks, mismatches 0 ({} ms)",
            f.applied,
            f.batches,
            f.flushes,
            f.spot_checks,
            to_ms(took)
        ))
    })
}

/// A space as Linux's fork makes one (the kernel's upper half copied and
/// announced with AllocatePage CLONE), with its own directory for the test
/// gigabyte and one page mapped at CHURN_VA.
#[derive(Clone, Copy, Default)]
struct Space {
    pdpt: u32,
    pd1: u32,
    pt: u32,
    frame: u32,
}

fn zero(frame: u32) {
    // SAFETY: a frame of the churn's pool, identity mapped, not a table
    // (released, or never announced).
    unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE_SIZE as usize) };
}

impl Space {
    fn build(&mut self, clone_from: u32, frame: u32) {
        let kernel = mm::kernel_space().expect("paging is on");
        for f in [self.pdpt, self.pd1, self.pt] {
            zero(f);
        }
        for k in 2..4 {
            let e = mm::read_entry(mm::entry(clone_from, k));
            // SAFETY: the fresh PDPT frame, identity mapped.
            unsafe { pv::store_pxe_long(mm::entry(self.pdpt, k), e) };
        }
        pv::allocate_page(
            self.pdpt >> 12,
            VMI_PAGE_L2_PAE | VMI_PAGE_CLONE,
            clone_from >> 12,
            2,
            2,
        );
        pv::allocate_page(self.pd1 >> 12, VMI_PAGE_L2_PAE, 0, 0, 0);
        pv::allocate_page(self.pt >> 12, VMI_PAGE_L1_PAE, 0, 0, 0);
        pv::set_pxe_long(
            u64::from(frame) | KERNEL_RW,
            mm::entry(self.pt, (CHURN_VA >> 12) & 511),
            PageLevel::Pt.bit(),
        );
        pv::set_pxe_long(
            u64::from(self.pt) | PTE_P | PTE_RW,
            mm::entry(self.pd1, (CHURN_VA >> 21) & 511),
            PageLevel::Pd.bit(),
        );
        for (k, d) in [(0, kernel.pd[0]), (1, self.pd1)] {
            pv::set_pxe_long(
                u64::from(d) | PTE_P,
                mm::entry(self.pdpt, k),
                PageLevel::Pdp.bit(),
            );
        }
        self.frame = frame;
    }

    fn destroy(&mut self) {
        pv::set_pxe_long(
            0,
            mm::entry(self.pt, (CHURN_VA >> 12) & 511),
            PageLevel::Pt.bit(),
        );
        pv::set_pxe_long(
            0,
            mm::entry(self.pd1, (CHURN_VA >> 21) & 511),
            PageLevel::Pd.bit(),
        );
        pv::release_page(self.pt >> 12, VMI_PAGE_L1_PAE);
        pv::release_page(self.pd1 >> 12, VMI_PAGE_L2_PAE);
        pv::release_page(self.pdpt >> 12, VMI_PAGE_L2_PAE);
        self.frame = 0;
    }
}

static POOL: Global<[Space; LIVE]> = Global::new(
    [Space {
        pdpt: 0,
        pd1: 0,
        pt: 0,
        frame: 0,
    }; LIVE],
);

/// Case stress_address_spaces: spaces made (half of them cloned from
/// another live space's PDPT rather than the kernel's), switched to and
/// read through, destroyed, their frames reused for the next ones.
fn address_spaces() -> Outcome {
    let kernel = mm::kernel_space().expect("paging is on");
    POOL.with(|pool| {
        for s in pool.iter_mut() {
            if s.pdpt == 0 {
                *s = Space {
                    pdpt: mm::alloc_frame(),
                    pd1: mm::alloc_frame(),
                    pt: mm::alloc_frame(),
                    frame: 0,
                };
            }
        }
    });
    with_state(|st| {
        let start = pv::cycles_now();
        while st.figures.spaces < st.spaces_wanted {
            st.storm.maybe_toggle(&mut st.rng);
            let slot = st.rng.below(LIVE as u32) as usize;
            let frame = st.frames[st.rng.below(FRAMES as u32) as usize];
            let live_other = POOL.with(|p| {
                p.iter()
                    .enumerate()
                    .find(|(i, s)| *i != slot && s.frame != 0)
                    .map(|(_, s)| s.pdpt)
            });
            let mut space = POOL.with(|p| p[slot]);
            if space.frame != 0 {
                space.destroy();
            }
            let from = match live_other {
                Some(other) if st.rng.one_in(2) => {
                    st.figures.clones += 1;
                    other
                }
                _ => kernel.pdpt,
            };
            space.build(from, frame);
            st.figures.spaces += 1;
            POOL.with(|p| p[slot] = space);
            // Into a random live space: its page is its frame; back in the
            // kernel's, the address is not mapped.
            let visit = POOL.with(|p| p[st.rng.below(LIVE as u32) as usize]);
            if visit.frame != 0 {
                pv::set_cr3(visit.pdpt);
                let seen = read_word(CHURN_VA);
                let stress_page = read_word(STRESS_VA);
                pv::set_cr3(kernel.pdpt);
                st.figures.switches += 1;
                match seen {
                    Ok(v) if v == tag(visit.frame) => {}
                    other => st.mismatch(
                        CHURN_VA,
                        "tag through a churned space",
                        u64::from(tag(visit.frame)),
                        other.map_or(u64::MAX, u64::from),
                    ),
                }
                if stress_page.is_ok() {
                    st.mismatch(
                        STRESS_VA,
                        "a churned space maps the kernel's test region",
                        0,
                        1,
                    );
                }
            }
            match read_word(CHURN_VA) {
                Err(f) if f.vector == 14 && f.cr2 == CHURN_VA => {}
                other => st.mismatch(
                    CHURN_VA,
                    "the churn address in the kernel's space",
                    0,
                    other.map_or(u64::MAX, u64::from),
                ),
            }
        }
        POOL.with(|p| {
            for s in p.iter_mut().filter(|s| s.frame != 0) {
                s.destroy();
            }
        });
        let took = pv::cycles_now() - start;
        st.figures.cycles += took;
        let f = st.figures;
        if let Some(m) = st.first_mismatch {
            return Outcome::fail(format_args!(
                "{} mismatches; first at {:#x}: {} expected {:#x}, got {:#x}",
                f.mismatches, m.va, m.what, m.want, m.got
            ));
        }
        Outcome::pass(format_args!(
            "{} spaces created and destroyed ({} cloned from a live space, {} at once), {} switched to and read through, mismatches 0 ({} ms)",
            f.spaces, f.clones, LIVE, f.switches, to_ms(took)
        ))
    })
}

/// Case stress_timer_storm: the alarm stopped; the ticks counted, none
/// while masked, none more than the periods elapsed.
fn timer_storm() -> Outcome {
    with_state(|st| {
        if st.storm.masked {
            st.storm.while_masked +=
                irq_count(VECTOR_APIC_TIMER).wrapping_sub(st.storm.count_at_mask);
            st.storm.masked = false;
        }
        pv::irq_disable();
        let was_armed = pv::cancel_alarm(alarm_flags());
        pv::apic_write(apic::REG_LVT_TIMER, apic::LVT_MASKED | VECTOR_APIC_TIMER);
        let s = &mut st.storm;
        s.elapsed = pv::cycles_now() - s.start_cycles;
        s.ticks = irq_count(VECTOR_APIC_TIMER).wrapping_sub(s.start_count);
        let period = pv::cycle_frequency() / STORM_HZ;
        let periods = s.elapsed / period;
        let ms = to_ms(s.elapsed);
        if was_armed != 1 {
            return Outcome::fail(format_args!(
                "CancelAlarm of the storm's alarm returned {was_armed}"
            ));
        }
        if s.while_masked != 0 {
            return Outcome::fail(format_args!(
                "{} ticks delivered while interrupts were masked ({} masked sections)",
                s.while_masked, s.sections
            ));
        }
        if u64::from(s.ticks) > periods + 1 {
            return Outcome::fail(format_args!("{} ticks in {periods} periods", s.ticks));
        }
        if periods >= 20 && s.ticks == 0 {
            return Outcome::fail(format_args!("no tick in {periods} periods of the alarm"));
        }
        Outcome::pass(format_args!(
            "{} ticks of a {STORM_HZ} Hz alarm over {ms} ms ({periods} periods), {} masked sections, 0 ticks while masked",
            s.ticks, s.sections
        ))
    })
}

/// Case stress_agreement: for every page of the region, the kernel's entry
/// equals the model's, and the processor's translation (every page read
/// and written) reaches the frame the model says, with the A and D bits
/// the accesses must set, or faults where the model maps nothing.
fn agreement() -> Outcome {
    let space = mm::kernel_space().expect("paging is on");
    with_state(|st| {
        pv::flush_tlb(VMI_FLUSH_TLB);
        let start = pv::cycles_now();
        let checked_before = st.figures.pages_checked;
        let (mapped0, unmapped0) = (st.figures.mapped, st.figures.unmapped);
        for page in 0..PAGES {
            let va = page_va(page);
            let ptep = mm::pte_ptr_in(&space, va).expect("the region's tables exist");
            let want = st.model[page];
            let before = mm::read_entry(ptep);
            if before & MODEL_BITS != want & MODEL_BITS {
                st.mismatch(va, "the kernel's entry", want, before);
            }
            st.check_translation(page, true);
            let after = mm::read_entry(ptep);
            if want & PTE_P != 0 {
                let need = PTE_A | if want & PTE_RW != 0 { PTE_D } else { 0 };
                if after & need != need {
                    st.mismatch(va, "A/D bits after reading and writing", need, after);
                }
            }
        }
        // Clean up: the region unmapped (in one batch), for a later run.
        pv::set_lazy_mode(VMI_LAZY_MMU);
        for page in 0..PAGES {
            let va = page_va(page);
            if st.model[page] != 0 {
                let ptep = mm::pte_ptr_in(&space, va).expect("the region's tables exist");
                pv::set_pxe_long(0, ptep, mm::deferred_flags(PageLevel::Pt, va));
                st.model[page] = 0;
            }
        }
        pv::set_lazy_mode(VMI_LAZY_NONE);
        pv::flush_tlb(VMI_FLUSH_TLB);
        st.figures.cycles += pv::cycles_now() - start;
        let f = st.figures;
        let (checked, mapped, unmapped) = (
            f.pages_checked - checked_before,
            f.mapped - mapped0,
            f.unmapped - unmapped0,
        );
        if let Some(m) = st.first_mismatch {
            return Outcome::fail(format_args!(
                "{checked} pages checked, mismatches {}; first at {:#x}: {} expected {:#x}, got {:#x}",
                f.mismatches, m.va, m.what, m.want, m.got
            ));
        }
        Outcome::pass(format_args!(
            "{checked} pages checked ({mapped} mapped: tag, write and A/D; {unmapped} unmapped: #PF): tables, translation and model agree, mismatches 0"
        ))
    })
}

static CASES: &[Case] = &[
    Case {
        name: "stress_pte_updates",
        run: pte_updates,
    },
    Case {
        name: "stress_address_spaces",
        run: address_spaces,
    },
    Case {
        name: "stress_timer_storm",
        run: timer_storm,
    },
    Case {
        name: "stress_agreement",
        run: agreement,
    },
];

/// Runs the stress (`stress=N`: N page table updates) and returns the
/// verdict word.
pub fn run_all(boot: &BootInfo, updates: &str) -> &'static str {
    let Ok(updates) = updates.parse::<u32>() else {
        kprintln!("stress: stress={updates} is not a number of updates");
        return "ERROR";
    };
    if !mm::paging_on() {
        let edx = pv::cpuid(1, 0)[3];
        if edx & (1 << 6) == 0 {
            kprintln!("stress: no PAE (CPUID.1:EDX.PAE clear): the stress needs it");
            return "SKIP";
        }
        mm::enable_paging(edx & (1 << 13) != 0);
    }
    setup(boot, updates);
    let calls_before = mm::rom_calls();
    let t0 = pv::cycles_now();
    let (mut passed, mut failed) = (0u32, 0u32);
    for case in CASES {
        pv::irq_disable();
        let outcome = cases::run_one(case);
        pv::irq_disable();
        let word = if outcome.status == Status::Pass {
            passed += 1;
            "PASS"
        } else {
            failed += 1;
            "FAIL"
        };
        kprintln!("case {}: {} {}", case.name, word, outcome.detail);
    }
    let ms = to_ms(pv::cycles_now() - t0);
    let f = with_state(|st| st.figures);
    let ticks = with_state(|st| st.storm.ticks);
    kprintln!(
        "stress: {} updates, {} spaces, {} timer ticks, {} pages checked, mismatches {}, {} ms, {} hypervisor calls",
        f.applied,
        f.spaces,
        ticks,
        f.pages_checked,
        f.mismatches,
        ms,
        mm::Calls(mm::rom_calls_since(calls_before))
    );
    if failed > 0 {
        "FAILURE"
    } else if passed == 0 {
        "SKIP"
    } else {
        "SUCCESS"
    }
}
