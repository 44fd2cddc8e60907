//! The benchmarks (after lmbench's and the VMI proposal's table), each a
//! sequence of [`Platform`] operations and ring-3 runs that is the same on
//! every platform, checked for its effect (a benchmark that measured
//! something that did not happen fails), and timed with the cycle counter.
//!
//! Each benchmark runs one untimed warm-up (page tables, frame pool), then
//! `reps` timed repetitions of `ops` operations. A repetition's figures are
//! the cycles and hypercalls (where the platform can tell) of its timed
//! part; the run's one-off costs (entering and leaving ring 3 once) are
//! spread over the operations.

use core::fmt;

use crate::frames::{self, read_word, take, write_word};
use crate::kernel::{self, FaultMode, Process, PPID, STAT_RECORD, SYS_EXIT, SYS_YIELD};
use crate::platform::{
    Frame, Lazy, Mapped, Platform, SpaceId, UserExit, UserState, PAGE_SIZE, USER_EFLAGS,
};
use crate::sync::Global;
use crate::text::{failed, Text};
use crate::user::{
    Snippet, DATA_VA, FAULT_MAX_PAGES, FAULT_VA, LAZY_VA, MMAP_VA, STACK_TOP, STACK_VA, WS_VA,
};

/// Most timed repetitions in one run.
pub const MAX_REPS: usize = 32;
/// Operations of the warm-up repetition (at most).
pub const WARMUP_OPS: u32 = 16;

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Timed repetitions (1..=MAX_REPS).
    pub reps: usize,
    /// Operations per repetition (None: each benchmark's default).
    pub ops: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config { reps: 5, ops: None }
    }
}

/// One benchmark.
#[derive(Debug)]
pub struct Bench {
    /// Its name (the protocol line is `case bench_NAME: ...`).
    pub name: &'static str,
    /// Operations per repetition by default.
    pub default_ops: u32,
    /// What one operation is.
    pub operation: &'static str,
}

const fn bench(name: &'static str, default_ops: u32, operation: &'static str) -> Bench {
    Bench {
        name,
        default_ops,
        operation,
    }
}

/// Every benchmark, in run order.
pub static BENCHES: &[Bench] = &[
    bench(
        "null_syscall",
        2000,
        "int 0x80 round trip from a ring-3 loop",
    ),
    bench("getppid", 2000, "system call reading the parent's pid"),
    bench(
        "stat",
        2000,
        "system call copying a 96-byte stat64 to user memory",
    ),
    bench(
        "ctx_2p_0k",
        200,
        "switch between 2 processes, no working set",
    ),
    bench(
        "ctx_16p_64k",
        96,
        "switch between 16 processes reading 64 KiB each",
    ),
    bench(
        "fork_exit",
        20,
        "build a 16-page address space, run it, tear it down",
    ),
    bench(
        "fork_exec",
        20,
        "fork, then a fresh 16-page image in a new space, run, tear down both",
    ),
    bench(
        "mmap_1m",
        10,
        "map 1 MiB (lazy), touch each page, unmap (lazy), flush",
    ),
    bench(
        "prot_fault",
        200,
        "write to a read-only page, handler makes it writable",
    ),
    bench(
        "page_fault",
        200,
        "touch of an unmapped page, handler maps a frame",
    ),
    bench(
        "signal",
        1000,
        "raise a signal, run the handler on the user stack, sigreturn",
    ),
    bench(
        "divide_error",
        2000,
        "#DE from ring 3, handler skips the DIV",
    ),
    bench(
        "timer_irq",
        50,
        "one-shot alarm: cycles from expiry to the handler",
    ),
    bench("irq_pair", 20000, "interrupt disable + enable"),
    bench(
        "lazy_pte_1000",
        10,
        "1,000 PTE updates in lazy MMU mode, then the flush",
    ),
];

/// The index of a benchmark by name.
pub fn find(name: &str) -> Option<usize> {
    BENCHES.iter().position(|b| b.name == name)
}

/// Whether `selection` (`all`, or names separated by commas) picks `name`.
pub fn selected(selection: &str, name: &str) -> bool {
    selection == "all" || selection.split(',').any(|s| s == name)
}

/// Names in `selection` that are no benchmark.
pub fn unknown_names(selection: &str) -> impl Iterator<Item = &str> {
    selection
        .split(',')
        .filter(move |s| selection != "all" && !s.is_empty() && find(s).is_none())
}

/// The timed part of one repetition.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Cycles.
    pub cycles: u64,
    /// Hypercalls (None where the platform cannot tell).
    pub hypercalls: Option<u32>,
    /// The benchmark's extra figure (timer_irq: the whole round trip).
    pub extra: u64,
    /// Spurious faults the kernel resumed (faults its tables did not call
    /// for: the platform's doing).
    pub spurious_faults: u32,
}

impl Sample {
    fn add(&mut self, other: Sample) {
        self.cycles += other.cycles;
        self.hypercalls = self.hypercalls.zip(other.hypercalls).map(|(a, b)| a + b);
        self.extra += other.extra;
        self.spurious_faults += other.spurious_faults;
    }
}

/// A benchmark's figures: one sample per repetition.
#[derive(Clone, Copy, Debug)]
pub struct Figures {
    /// Operations per repetition.
    pub ops: u32,
    /// Repetitions.
    pub reps: usize,
    /// The samples.
    pub samples: [Sample; MAX_REPS],
    /// The name of the extra figure, if the benchmark has one.
    pub extra: Option<&'static str>,
}

impl fmt::Display for Figures {
    /// `cycles_per_op=X hypercalls_per_op=Y|-` (medians over the
    /// repetitions, one decimal), then `ops=N reps=R cycles=C1,C2,...
    /// hypercalls=H1,H2,...|-` and, for a benchmark with an extra figure,
    /// `NAME=E1,E2,...` (totals per repetition, for the scoreboard to
    /// divide by `ops`), and `spurious_faults=...` if the platform caused
    /// any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let samples = &self.samples[..self.reps];
        write!(f, "cycles_per_op=")?;
        per_op(f, self.median(|s| s.cycles), self.ops)?;
        write!(f, " hypercalls_per_op=")?;
        if samples.iter().any(|s| s.hypercalls.is_none()) {
            f.write_str("-")?;
        } else {
            per_op(
                f,
                self.median(|s| u64::from(s.hypercalls.unwrap_or(0))),
                self.ops,
            )?;
        }
        write!(f, " ops={} reps={} cycles=", self.ops, self.reps)?;
        for (i, s) in samples.iter().enumerate() {
            write!(f, "{}{}", if i > 0 { "," } else { "" }, s.cycles)?;
        }
        f.write_str(" hypercalls=")?;
        if samples.iter().any(|s| s.hypercalls.is_none()) {
            f.write_str("-")?;
        } else {
            for (i, s) in samples.iter().enumerate() {
                write!(
                    f,
                    "{}{}",
                    if i > 0 { "," } else { "" },
                    s.hypercalls.unwrap_or(0)
                )?;
            }
        }
        if let Some(name) = self.extra {
            write!(f, " {name}=")?;
            for (i, s) in samples.iter().enumerate() {
                write!(f, "{}{}", if i > 0 { "," } else { "" }, s.extra)?;
            }
        }
        if samples.iter().any(|s| s.spurious_faults != 0) {
            f.write_str(" spurious_faults=")?;
            for (i, s) in samples.iter().enumerate() {
                write!(f, "{}{}", if i > 0 { "," } else { "" }, s.spurious_faults)?;
            }
        }
        Ok(())
    }
}

impl Figures {
    /// The median over the repetitions of one figure of a sample.
    pub fn median(&self, figure: impl Fn(&Sample) -> u64) -> u64 {
        let mut v = [0u64; MAX_REPS];
        for (slot, s) in v.iter_mut().zip(&self.samples[..self.reps]) {
            *slot = figure(s);
        }
        let v = &mut v[..self.reps];
        v.sort_unstable();
        v[v.len() / 2]
    }
}

/// `total / ops` with one decimal.
fn per_op(f: &mut fmt::Formatter<'_>, total: u64, ops: u32) -> fmt::Result {
    let tenths = (total * 10 + u64::from(ops) / 2) / u64::from(ops.max(1));
    write!(f, "{}.{}", tenths / 10, tenths % 10)
}

/// Runs benchmark `index` and returns its figures, or why it failed.
pub fn run<P: Platform>(p: &mut P, index: usize, cfg: &Config) -> Result<Figures, Text> {
    let b = &BENCHES[index];
    let ops = cfg.ops.unwrap_or(b.default_ops).max(1);
    let reps = cfg.reps.clamp(1, MAX_REPS);
    let run = Run { ops, reps };
    kernel::reset();
    let result = match b.name {
        "null_syscall" => syscall_loop(p, run, kernel::SYS_NULL),
        "getppid" => syscall_loop(p, run, kernel::SYS_GETPPID),
        "stat" => syscall_loop(p, run, kernel::SYS_STAT),
        "ctx_2p_0k" => context_switch(p, run, 2, 0),
        "ctx_16p_64k" => context_switch(p, run, 16, 16),
        "fork_exit" => fork(p, run, false),
        "fork_exec" => fork(p, run, true),
        "mmap_1m" => mmap_1m(p, run),
        "prot_fault" => faults(p, run, FaultMode::Protect),
        "page_fault" => faults(p, run, FaultMode::Demand),
        "signal" => signal(p, run),
        "divide_error" => divide_error(p, run),
        "timer_irq" => timer_irq(p, run),
        "irq_pair" => irq_pair(p, run),
        "lazy_pte_1000" => lazy_pte_1000(p, run),
        other => Err(failed!("no implementation for benchmark {other}")),
    };
    kernel::reset();
    result
}

#[derive(Clone, Copy)]
struct Run {
    ops: u32,
    reps: usize,
}

impl Run {
    /// The warm-up, then the timed repetitions of `one(p, ops)`.
    fn repeat<P: Platform>(
        self,
        p: &mut P,
        extra: Option<&'static str>,
        mut one: impl FnMut(&mut P, u32) -> Result<Sample, Text>,
    ) -> Result<Figures, Text> {
        one(p, self.ops.min(WARMUP_OPS))?;
        let mut figures = Figures {
            ops: self.ops,
            reps: self.reps,
            samples: [Sample::default(); MAX_REPS],
            extra,
        };
        for r in 0..self.reps {
            figures.samples[r] = one(p, self.ops)?;
        }
        Ok(figures)
    }
}

/// Runs `f` timed: hypercalls are read outside the cycle window (reading
/// them may cost a trap).
fn timed<P: Platform, R>(p: &mut P, f: impl FnOnce(&mut P) -> R) -> (R, Sample) {
    let h0 = p.hypercalls();
    let t0 = p.cycles();
    let r = f(p);
    let t1 = p.cycles();
    let h1 = p.hypercalls();
    let sample = Sample {
        cycles: t1.wrapping_sub(t0),
        hypercalls: h0.zip(h1).map(|(a, b)| b.wrapping_sub(a)),
        extra: 0,
        spurious_faults: 0,
    };
    (r, sample)
}

/// The user run ended with `SYS_EXIT` (or, for processes, `SYS_YIELD`).
fn expect_exit(exit: &UserExit, call: u32) -> Result<(), Text> {
    if exit.vector == 0x80 && exit.state.eax == call {
        Ok(())
    } else {
        Err(failed!(
            "user run ended by vector {:#x} (error {:#x}) at eip {:#x} with eax {:#x}, expected system call {call}",
            exit.vector,
            exit.error_code,
            exit.state.eip,
            exit.state.eax
        ))
    }
}

fn start(snippet: Snippet) -> UserState {
    UserState {
        eip: snippet.address(),
        esp: STACK_TOP,
        eflags: USER_EFLAGS,
        ..UserState::default()
    }
}

/// Loads `space` and `kernel_stack` as a context switch does.
fn switch_to<P: Platform>(p: &mut P, space: SpaceId, kernel_stack: u32) {
    p.set_lazy(Lazy::Cpu);
    p.switch_space(space);
    p.set_kernel_stack(kernel_stack);
    p.set_lazy(Lazy::None);
}

/// Back to the kernel's space and stack.
fn switch_home<P: Platform>(p: &mut P) {
    let (space, stack) = (p.kernel_space(), p.default_kernel_stack());
    switch_to(p, space, stack);
}

/// The user stack and data pages of the kernel's own space (mapped once,
/// kept).
static BASICS: Global<bool> = Global::new(false);
/// The frame of the kernel space's user stack page.
static BASICS_STACK: Global<Frame> = Global::new(0);

fn map_basics<P: Platform>(p: &mut P) {
    if BASICS.with(|b| *b) {
        return;
    }
    let space = p.kernel_space();
    for va in [STACK_VA, DATA_VA] {
        let frame = take(p);
        p.map(space, va, frame, true);
        if va == STACK_VA {
            BASICS_STACK.with(|f| *f = frame);
        }
    }
    BASICS.with(|b| *b = true);
}

fn read_user(va: u32) -> u32 {
    // SAFETY: callers pass user pages the kernel's space maps.
    unsafe { (va as *const u32).read_volatile() }
}

fn write_user(va: u32, word: u32) {
    // SAFETY: callers pass user pages the kernel's space maps writable.
    unsafe { (va as *mut u32).write_volatile(word) }
}

// ---------------------------------------------------------------------------
// System calls, signals, traps.

fn syscall_loop<P: Platform>(p: &mut P, run: Run, nr: u32) -> Result<Figures, Text> {
    map_basics(p);
    run.repeat(p, None, |p, ops| {
        kernel::reset();
        for i in 0..STAT_RECORD.len() as u32 {
            write_user(DATA_VA + 4 * i, 0);
        }
        let state = UserState {
            ecx: ops,
            esi: nr,
            ebx: DATA_VA,
            ..start(Snippet::SyscallLoop)
        };
        let (exit, sample) = timed(p, |p| p.run_user(&state));
        expect_exit(&exit, SYS_EXIT)?;
        let c = kernel::counters();
        if c.syscalls != ops {
            return Err(failed!("{} system calls served, {ops} made", c.syscalls));
        }
        let want = if nr == kernel::SYS_GETPPID {
            ops.wrapping_mul(PPID)
        } else {
            0
        };
        if exit.state.ebp != want {
            return Err(failed!(
                "results summed to {:#x} in ring 3, expected {want:#x}",
                exit.state.ebp
            ));
        }
        if nr == kernel::SYS_STAT {
            for (i, w) in STAT_RECORD.iter().enumerate() {
                let got = read_user(DATA_VA + 4 * i as u32);
                if got != *w {
                    return Err(failed!("stat buffer word {i} is {got:#x}, not {w:#x}"));
                }
            }
        }
        Ok(sample)
    })
}

fn signal<P: Platform>(p: &mut P, run: Run) -> Result<Figures, Text> {
    map_basics(p);
    run.repeat(p, None, |p, ops| {
        kernel::reset();
        let state = UserState {
            ecx: ops,
            ..start(Snippet::SignalLoop)
        };
        let (exit, sample) = timed(p, |p| p.run_user(&state));
        expect_exit(&exit, SYS_EXIT)?;
        let c = kernel::counters();
        if c.signals != ops || c.sigreturns != ops || c.bad_sigframes != 0 {
            return Err(failed!(
                "{ops} raised: {} delivered, {} returns, {} bad frames",
                c.signals,
                c.sigreturns,
                c.bad_sigframes
            ));
        }
        if exit.state.esp != STACK_TOP || exit.state.ecx != 0 {
            return Err(failed!(
                "after the signals ESP {:#x} ECX {:#x}: the interrupted registers were not restored",
                exit.state.esp,
                exit.state.ecx
            ));
        }
        Ok(sample)
    })
}

fn divide_error<P: Platform>(p: &mut P, run: Run) -> Result<Figures, Text> {
    map_basics(p);
    run.repeat(p, None, |p, ops| {
        kernel::reset();
        let state = UserState {
            ecx: ops,
            ebp: 0,
            ..start(Snippet::DivideLoop)
        };
        let (exit, sample) = timed(p, |p| p.run_user(&state));
        expect_exit(&exit, SYS_EXIT)?;
        let n = kernel::counters().divide_errors;
        if n != ops {
            return Err(failed!("{n} divide errors taken, {ops} divisions by 0"));
        }
        Ok(sample)
    })
}

// ---------------------------------------------------------------------------
// Processes and address spaces.

/// The word a test page starts with.
fn marker(owner: u32, page: u32) -> u32 {
    0x8E4C_0000 ^ (owner << 8) ^ page
}

fn context_switch<P: Platform>(
    p: &mut P,
    run: Run,
    nprocs: usize,
    ws_pages: u32,
) -> Result<Figures, Text> {
    let mut procs = [None::<(Process, Frame)>; kernel::MAX_PROCS];
    let mut ws_frames = [[0 as Frame; 16]; kernel::MAX_PROCS];
    p.set_lazy(Lazy::Mmu);
    for (i, slot) in procs.iter_mut().enumerate().take(nprocs) {
        let space = p.create_space();
        let stack = take(p);
        p.map(space, STACK_VA, stack, true);
        let mut ws_sum = 0u32;
        for j in 0..ws_pages {
            let f = take(p);
            let m = marker(i as u32, j);
            write_word(f, 0, m);
            ws_sum = ws_sum.wrapping_add(m);
            ws_frames[i][j as usize] = f;
            p.map(space, WS_VA + j * PAGE_SIZE, f, true);
        }
        let process = Process {
            space,
            kernel_stack: kernel::kernel_stack_top(i),
            state: UserState {
                ebx: WS_VA,
                edx: ws_pages,
                ..start(Snippet::Process)
            },
            visits: 0,
            ws_sum,
        };
        *slot = Some((process, stack));
    }
    p.set_lazy(Lazy::None);
    let mut table = [kernel::Process {
        space: SpaceId(0),
        kernel_stack: 0,
        state: UserState::default(),
        visits: 0,
        ws_sum: 0,
    }; kernel::MAX_PROCS];
    for (t, s) in table.iter_mut().zip(procs.iter()).take(nprocs) {
        *t = s.expect("created above").0;
    }
    let result = run.repeat(p, None, |p, ops| {
        kernel::reset();
        // The run ends at the yield after `ops` switches.
        kernel::set_processes(&table[..nprocs], ops + 1);
        switch_to(p, table[0].space, table[0].kernel_stack);
        let (exit, sample) = timed(p, |p| p.run_user(&table[0].state));
        switch_home(p);
        expect_exit(&exit, SYS_YIELD)?;
        let c = kernel::counters();
        if c.switches != ops + 1 || c.bad_sums != 0 {
            return Err(failed!(
                "{} yields (expected {}), {} with a wrong working-set sum",
                c.switches,
                ops + 1,
                c.bad_sums
            ));
        }
        Ok(sample)
    });
    for (i, slot) in procs.iter().enumerate().take(nprocs) {
        let (process, stack) = slot.expect("created above");
        p.destroy_space(process.space, &process_mapped(ws_pages));
        frames::give(stack);
        for f in &ws_frames[i][..ws_pages as usize] {
            frames::give(*f);
        }
    }
    result
}

/// What a benchmark process's space maps (its VMAs): the stack page and
/// `ws_pages` pages from `WS_VA`.
fn process_mapped(ws_pages: u32) -> [Mapped; 2] {
    [
        Mapped {
            va: STACK_VA,
            pages: 1,
        },
        Mapped {
            va: WS_VA,
            pages: ws_pages,
        },
    ]
}

/// Pages of a forked process (shared with the parent) and of an exec'd
/// image.
const PROCESS_PAGES: u32 = 16;

/// The frames of an exec'd image: its pages, then its stack.
type Image = [Frame; PROCESS_PAGES as usize + 1];

fn fork<P: Platform>(p: &mut P, run: Run, exec: bool) -> Result<Figures, Text> {
    map_basics(p);
    let home = p.kernel_space();
    let parent_stack = BASICS_STACK.with(|f| *f);
    // The parent's pages, in the kernel's space.
    let mut parent = [0 as Frame; PROCESS_PAGES as usize];
    let mut parent_sum = 0u32;
    p.set_lazy(Lazy::Mmu);
    for (j, f) in parent.iter_mut().enumerate() {
        *f = take(p);
        let m = marker(1, j as u32);
        write_word(*f, 0, m);
        parent_sum = parent_sum.wrapping_add(m);
        p.map(home, WS_VA + j as u32 * PAGE_SIZE, *f, true);
    }
    p.set_lazy(Lazy::None);
    let result = run.repeat(p, None, |p, ops| {
        let (result, sample) = timed(p, |p| -> Result<(), Text> {
            for op in 0..ops {
                // fork: a new space sharing the parent's pages and stack
                // read-only (copy-on-write; never written here).
                let child = p.create_space();
                p.set_lazy(Lazy::Mmu);
                for (j, f) in parent.iter().enumerate() {
                    p.map(child, WS_VA + j as u32 * PAGE_SIZE, *f, false);
                }
                p.map(child, STACK_VA, parent_stack, false);
                p.set_lazy(Lazy::None);
                switch_to(p, child, kernel::kernel_stack_top(1));
                let (runs_in, image, want) = if exec {
                    let (space, image, sum) = exec_image(p, child, op);
                    (space, Some(image), sum)
                } else {
                    (child, None, parent_sum)
                };
                let state = UserState {
                    ebx: WS_VA,
                    edx: PROCESS_PAGES,
                    ecx: u32::from(exec),
                    ..start(Snippet::Child)
                };
                let exit = p.run_user(&state);
                // exit: back to the parent, the child's space goes.
                switch_home(p);
                p.destroy_space(runs_in, &process_mapped(PROCESS_PAGES));
                if let Some(image) = image {
                    image.iter().for_each(|f| frames::give(*f));
                }
                expect_exit(&exit, SYS_EXIT)?;
                if exit.state.ebp != want {
                    return Err(failed!(
                        "the child read {:#x} from its pages, expected {want:#x}",
                        exit.state.ebp
                    ));
                }
            }
            Ok(())
        });
        result?;
        Ok(sample)
    });
    p.set_lazy(Lazy::Mmu);
    for j in 0..PROCESS_PAGES {
        p.unmap(home, WS_VA + j * PAGE_SIZE);
    }
    p.set_lazy(Lazy::None);
    p.flush_tlb();
    for f in parent {
        frames::give(f);
    }
    result
}

/// exec in the running child: a fresh image (its pages "loaded" with a
/// marker each) and stack in a new space, which replaces the child's.
/// Returns the new space, the image's frames and the markers' sum.
fn exec_image<P: Platform>(p: &mut P, old: SpaceId, op: u32) -> (SpaceId, Image, u32) {
    let mut image: Image = [0; PROCESS_PAGES as usize + 1];
    let mut sum = 0u32;
    for (j, f) in image.iter_mut().enumerate() {
        *f = take(p);
        let m = marker(2 + op, j as u32);
        write_word(*f, 0, m);
        if j < PROCESS_PAGES as usize {
            sum = sum.wrapping_add(m);
        }
    }
    let new = p.create_space();
    p.set_lazy(Lazy::Mmu);
    for (j, f) in image.iter().take(PROCESS_PAGES as usize).enumerate() {
        p.map(new, WS_VA + j as u32 * PAGE_SIZE, *f, true);
    }
    p.map(new, STACK_VA, image[PROCESS_PAGES as usize], true);
    p.set_lazy(Lazy::None);
    switch_to(p, new, kernel::kernel_stack_top(1));
    p.destroy_space(old, &process_mapped(PROCESS_PAGES));
    (new, image, sum)
}

fn mmap_1m<P: Platform>(p: &mut P, run: Run) -> Result<Figures, Text> {
    const PAGES: u32 = 256;
    let home = p.kernel_space();
    let mut region = [0 as Frame; PAGES as usize];
    for f in region.iter_mut() {
        *f = take(p);
    }
    let mut generation = 0u32;
    let result = run.repeat(p, None, |p, ops| {
        let (_, sample) = timed(p, |p| {
            for _ in 0..ops {
                generation = generation.wrapping_add(1);
                p.set_lazy(Lazy::Mmu);
                for (j, f) in region.iter().enumerate() {
                    p.map(home, MMAP_VA + j as u32 * PAGE_SIZE, *f, true);
                }
                p.set_lazy(Lazy::None);
                for j in 0..PAGES {
                    write_user(MMAP_VA + j * PAGE_SIZE, generation ^ j);
                }
                p.set_lazy(Lazy::Mmu);
                for j in 0..PAGES {
                    p.unmap(home, MMAP_VA + j * PAGE_SIZE);
                }
                p.set_lazy(Lazy::None);
                p.flush_tlb();
            }
        });
        for (j, f) in region.iter().enumerate() {
            let got = read_word(*f, 0);
            if got != generation ^ j as u32 {
                return Err(failed!(
                    "page {j}'s frame holds {got:#x}, not the {:#x} written through the mapping",
                    generation ^ j as u32
                ));
            }
        }
        Ok(sample)
    });
    for f in region {
        frames::give(f);
    }
    result
}

fn faults<P: Platform>(p: &mut P, run: Run, mode: FaultMode) -> Result<Figures, Text> {
    map_basics(p);
    let home = p.kernel_space();
    let mut pages = [0 as Frame; FAULT_MAX_PAGES as usize];
    for f in pages.iter_mut() {
        *f = take(p);
    }
    let result = run.repeat(p, None, |p, ops| {
        let mut total = Sample {
            hypercalls: Some(0),
            ..Sample::default()
        };
        let mut left = ops;
        while left > 0 {
            let n = left.min(FAULT_MAX_PAGES);
            left -= n;
            kernel::reset();
            if mode == FaultMode::Protect {
                p.set_lazy(Lazy::Mmu);
                for (j, f) in pages.iter().enumerate().take(n as usize) {
                    p.map(home, FAULT_VA + j as u32 * PAGE_SIZE, *f, false);
                }
                p.set_lazy(Lazy::None);
            }
            kernel::set_fault_mode(mode, &pages[..n as usize]);
            let state = UserState {
                ecx: n,
                ebx: FAULT_VA,
                ..start(Snippet::StoreLoop)
            };
            let (exit, mut sample) = timed(p, |p| p.run_user(&state));
            let counters = kernel::counters();
            sample.spurious_faults = counters.spurious_faults;
            total.add(sample);
            let served = counters.faults;
            kernel::set_fault_mode(FaultMode::None, &[]);
            p.set_lazy(Lazy::Mmu);
            for j in 0..served.min(n) {
                p.unmap(home, FAULT_VA + j * PAGE_SIZE);
            }
            if mode == FaultMode::Protect {
                for j in served.min(n)..n {
                    p.unmap(home, FAULT_VA + j * PAGE_SIZE);
                }
            }
            p.set_lazy(Lazy::None);
            p.flush_tlb();
            expect_exit(&exit, SYS_EXIT)?;
            if served != n {
                return Err(failed!("{served} faults served for {n} pages written"));
            }
            for (j, f) in pages.iter().enumerate().take(n as usize) {
                let got = read_word(*f, 0);
                if got != n - j as u32 {
                    return Err(failed!(
                        "page {j}'s frame holds {got:#x} after the faulting store of {:#x}",
                        n - j as u32
                    ));
                }
            }
        }
        Ok(total)
    });
    for f in pages {
        frames::give(f);
    }
    result
}

fn lazy_pte_1000<P: Platform>(p: &mut P, run: Run) -> Result<Figures, Text> {
    const UPDATES: u32 = 1000;
    const FRAMES: usize = 8;
    let home = p.kernel_space();
    let mut set = [0 as Frame; FRAMES];
    for (k, f) in set.iter_mut().enumerate() {
        *f = take(p);
        write_word(*f, 0, marker(3, k as u32));
    }
    let map_all = |p: &mut P| {
        p.set_lazy(Lazy::Mmu);
        for j in 0..UPDATES {
            p.map(
                home,
                LAZY_VA + j * PAGE_SIZE,
                set[j as usize % FRAMES],
                true,
            );
        }
        p.set_lazy(Lazy::None);
    };
    let unmap_all = |p: &mut P| {
        p.set_lazy(Lazy::Mmu);
        for j in 0..UPDATES {
            p.unmap(home, LAZY_VA + j * PAGE_SIZE);
        }
        p.set_lazy(Lazy::None);
        p.flush_tlb();
    };
    // The updates take effect when lazy mode ends.
    map_all(p);
    let seen = [0, 499, UPDATES - 1].map(|j| (j, read_user(LAZY_VA + j * PAGE_SIZE)));
    unmap_all(p);
    for (j, got) in seen {
        let want = marker(3, j % FRAMES as u32);
        if got != want {
            set.iter().for_each(|f| frames::give(*f));
            return Err(failed!(
                "page {j} reads {got:#x} after the lazy updates, expected {want:#x}"
            ));
        }
    }
    let result = run.repeat(p, None, |p, ops| {
        let (_, sample) = timed(p, |p| {
            for op in 0..ops {
                if op % 2 == 0 {
                    map_all(p);
                } else {
                    unmap_all(p);
                }
            }
        });
        if ops % 2 == 1 {
            unmap_all(p);
        }
        Ok(sample)
    });
    for f in set {
        frames::give(f);
    }
    result
}

// ---------------------------------------------------------------------------
// Interrupts.

fn timer_irq<P: Platform>(p: &mut P, run: Run) -> Result<Figures, Text> {
    let hz = p.cycle_frequency().max(1_000_000);
    // Far enough ahead that arming is over before the expiry on every
    // platform (1 ms: a native local APIC timer is calibrated at each
    // arming, for 500 us).
    let ahead = hz / 1000;
    // An alarm may not fire before its expiry; a timer's rounding of the
    // interval is tolerated (as in the conformance cases).
    let tolerance = ahead / 200 + 2;
    run.repeat(p, Some("roundtrip"), |p, ops| {
        p.irq_disable();
        let mut latency = 0u64;
        let (result, whole) = timed(p, |p| -> Result<(), Text> {
            for _ in 0..ops {
                let (before, _) = p.timer_interrupts();
                let expiry = p.cycles() + ahead;
                p.arm_alarm(expiry);
                p.irq_enable();
                let give_up = expiry + hz;
                loop {
                    let (count, at) = p.timer_interrupts();
                    if count != before {
                        p.irq_disable();
                        if at + tolerance < expiry {
                            return Err(failed!(
                                "the alarm fired {} cycles before its expiry",
                                expiry - at
                            ));
                        }
                        latency += at.saturating_sub(expiry);
                        break;
                    }
                    if p.cycles() > give_up {
                        p.irq_disable();
                        return Err(failed!("no timer interrupt 1 s after the alarm's expiry"));
                    }
                    core::hint::spin_loop();
                }
            }
            Ok(())
        });
        result?;
        Ok(Sample {
            cycles: latency,
            hypercalls: whole.hypercalls,
            extra: whole.cycles,
            spurious_faults: 0,
        })
    })
}

fn irq_pair<P: Platform>(p: &mut P, run: Run) -> Result<Figures, Text> {
    run.repeat(p, None, |p, ops| {
        p.irq_enable();
        let (_, sample) = timed(p, |p| {
            for _ in 0..ops {
                p.irq_disable();
                p.irq_enable();
            }
        });
        p.irq_disable();
        Ok(sample)
    })
}
