//! The kernel side of the benchmarks: what the kernel does for a trap from
//! ring 3 while a benchmark runs user code ([`user_trap`]), its system
//! calls, signal delivery, the fault handlers and the process switch, and
//! the kernel stacks of the benchmark processes.
//!
//! System call numbers are Linux i386's where an equivalent exists; the
//! work each does is the kernel-side core of its Linux counterpart, small
//! and the same on every platform.

use crate::platform::{
    Frame, Lazy, Platform, SpaceId, UserFrame, UserState, EFLAGS_USER_MASK, PAGE_SIZE, USER_EFLAGS,
};
use crate::sync::Global;
use crate::user::{Snippet, DIVIDE_INSN_LEN, FAULT_MAX_PAGES, FAULT_VA, USER_BASE, USER_END};

/// Returns 0 at once (no Linux equivalent: the bare round trip).
pub const SYS_NULL: u32 = 0;
/// Ends the user run (Linux `exit`).
pub const SYS_EXIT: u32 = 1;
/// Raises [`SIGNAL`] at the caller (Linux `kill(getpid(), sig)`).
pub const SYS_RAISE: u32 = 37;
/// The parent's process id (Linux `getppid`).
pub const SYS_GETPPID: u32 = 64;
/// Returns from a signal handler (Linux `sigreturn`).
pub const SYS_SIGRETURN: u32 = 119;
/// Gives the processor to the next process (Linux `sched_yield`).
pub const SYS_YIELD: u32 = 158;
/// Copies a `struct stat64` to the buffer at EBX (Linux `stat64`'s copy
/// to user space).
pub const SYS_STAT: u32 = 195;

/// The signal [`SYS_RAISE`] raises (Linux SIGUSR1).
pub const SIGNAL: u32 = 10;
/// `-EFAULT`: a bad user pointer.
pub const EFAULT: u32 = (-14i32) as u32;

/// Bytes of a `struct stat64` on i386.
pub const STAT_BYTES: u32 = 96;
/// Bytes of the signal frame: the signal number, then the interrupted
/// registers.
pub const SIGFRAME_BYTES: u32 = 4 + core::mem::size_of::<UserState>() as u32;

/// Most benchmark processes.
pub const MAX_PROCS: usize = 16;
/// Bytes of each benchmark process's kernel stack.
pub const KERNEL_STACK_BYTES: usize = 8192;

/// The process ids of the kernel's task list: the benchmark's process
/// and its parent.
const PID_INIT: u32 = 1;
const PID_BENCH: u32 = 1000;

/// A task, as far as `getppid` looks.
#[derive(Clone, Copy)]
struct Task {
    pid: u32,
    /// Index of the parent in [`TASKS`].
    parent: usize,
}

static TASKS: [Task; 2] = [
    Task {
        pid: PID_INIT,
        parent: 0,
    },
    Task {
        pid: PID_BENCH,
        parent: 0,
    },
];

/// The task running user code (index in [`TASKS`]).
static CURRENT_TASK: Global<usize> = Global::new(1);

/// What `SYS_GETPPID` answers.
pub const PPID: u32 = PID_INIT;

/// The `struct stat64` the stat call copies (a fixed, recognisable one).
pub const STAT_RECORD: [u32; (STAT_BYTES / 4) as usize] = {
    let mut r = [0u32; (STAT_BYTES / 4) as usize];
    let mut i = 0;
    while i < r.len() {
        r[i] = 0x57A7_0000 + i as u32;
        i += 1;
    }
    r
};

/// How #PF from ring 3 is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Not at all: the run ends.
    None,
    /// A write to a read-only page of the fault area becomes writable
    /// (the protection-fault benchmark).
    Protect,
    /// A not-present page of the fault area gets the next frame of the
    /// demand list (the page-fault benchmark).
    Demand,
}

/// A benchmark process.
#[derive(Clone, Copy, Debug)]
pub struct Process {
    /// Its address space.
    pub space: SpaceId,
    /// Its kernel stack.
    pub kernel_stack: u32,
    /// Its user registers while it does not run.
    pub state: UserState,
    /// Times it yielded.
    pub visits: u32,
    /// The sum of its working set's first words: each visit adds it to
    /// its EBP.
    pub ws_sum: u32,
}

const NO_PROCESS: Process = Process {
    space: SpaceId(0),
    kernel_stack: 0,
    state: UserState {
        eax: 0,
        ebx: 0,
        ecx: 0,
        edx: 0,
        esi: 0,
        edi: 0,
        ebp: 0,
        eip: 0,
        esp: 0,
        eflags: 0,
    },
    visits: 0,
    ws_sum: 0,
};

/// What the kernel counted while user code ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// System calls served (all numbers, SYS_EXIT excluded).
    pub syscalls: u32,
    /// Faults served.
    pub faults: u32,
    /// Spurious faults: the kernel's tables already allowed the access
    /// (resumed as they are, as Linux does).
    pub spurious_faults: u32,
    /// Signals delivered.
    pub signals: u32,
    /// Signal returns.
    pub sigreturns: u32,
    /// Bad signal frames seen at a return.
    pub bad_sigframes: u32,
    /// Divide errors skipped.
    pub divide_errors: u32,
    /// Process switches.
    pub switches: u32,
    /// Yields whose running sum was not the expected one.
    pub bad_sums: u32,
}

struct State {
    counters: Counters,
    fault_mode: FaultMode,
    demand: [Frame; FAULT_MAX_PAGES as usize],
    demand_count: usize,
    demand_next: usize,
    procs: [Process; MAX_PROCS],
    nprocs: usize,
    current: usize,
    switch_target: u32,
}

static STATE: Global<State> = Global::new(State {
    counters: Counters {
        syscalls: 0,
        faults: 0,
        spurious_faults: 0,
        signals: 0,
        sigreturns: 0,
        bad_sigframes: 0,
        divide_errors: 0,
        switches: 0,
        bad_sums: 0,
    },
    fault_mode: FaultMode::None,
    demand: [0; FAULT_MAX_PAGES as usize],
    demand_count: 0,
    demand_next: 0,
    procs: [NO_PROCESS; MAX_PROCS],
    nprocs: 0,
    current: 0,
    switch_target: 0,
});

/// A kernel stack of a benchmark process.
#[repr(C, align(16))]
pub struct KernelStack(pub [u8; KERNEL_STACK_BYTES]);

impl core::fmt::Debug for KernelStack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KernelStack({} bytes)", KERNEL_STACK_BYTES)
    }
}

static KERNEL_STACKS: Global<[KernelStack; MAX_PROCS]> =
    Global::new([const { KernelStack([0; KERNEL_STACK_BYTES]) }; MAX_PROCS]);

/// Top of benchmark process `i`'s kernel stack.
pub fn kernel_stack_top(i: usize) -> u32 {
    assert!(i < MAX_PROCS, "no kernel stack {i}");
    KERNEL_STACKS.as_ptr() as u32 + ((i + 1) * KERNEL_STACK_BYTES) as u32
}

/// Clears the counters and the service's configuration.
pub fn reset() {
    STATE.with(|s| {
        s.counters = Counters::default();
        s.fault_mode = FaultMode::None;
        s.demand_count = 0;
        s.demand_next = 0;
        s.nprocs = 0;
        s.current = 0;
        s.switch_target = 0;
    });
}

/// The counters now.
pub fn counters() -> Counters {
    STATE.with(|s| s.counters)
}

/// Serves #PF from ring 3 as `mode` says; for [`FaultMode::Demand`],
/// `frames` are mapped in order at the faulting pages.
pub fn set_fault_mode(mode: FaultMode, frames: &[Frame]) {
    STATE.with(|s| {
        s.fault_mode = mode;
        let n = frames.len().min(s.demand.len());
        s.demand[..n].copy_from_slice(&frames[..n]);
        s.demand_count = n;
        s.demand_next = 0;
    });
}

/// Sets up the processes `SYS_YIELD` switches between (process 0 runs
/// first); the run ends at the `target`-th switch.
pub fn set_processes(procs: &[Process], target: u32) {
    STATE.with(|s| {
        let n = procs.len().min(MAX_PROCS);
        s.procs[..n].copy_from_slice(&procs[..n]);
        s.nprocs = n;
        s.current = 0;
        s.switch_target = target;
    });
}

/// Whether `[addr, addr + len)` is inside the user region and 4-aligned.
fn user_range_ok(addr: u32, len: u32) -> bool {
    addr & 3 == 0 && addr >= USER_BASE && addr.checked_add(len).is_some_and(|end| end <= USER_END)
}

/// Copies words to user memory (the current address space maps it).
fn copy_to_user(dst: u32, words: &[u32]) {
    // SAFETY: the caller checked the range is in the user region, which the
    // running benchmark mapped writable in the current space; the kernel
    // may write user pages (no SMAP).
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), dst as *mut u32, words.len()) };
}

/// Copies words from user memory.
fn copy_from_user(src: u32, words: &mut [u32]) {
    // SAFETY: as copy_to_user, reading.
    unsafe { core::ptr::copy_nonoverlapping(src as *const u32, words.as_mut_ptr(), words.len()) };
}

const STATE_WORDS: usize = core::mem::size_of::<UserState>() / 4;
/// Index of ESP in [`state_to_words`]'s order (the signal frame's).
const SAVED_ESP_WORD: u32 = 8;

fn state_to_words(s: &UserState) -> [u32; STATE_WORDS] {
    [
        s.eax, s.ebx, s.ecx, s.edx, s.esi, s.edi, s.ebp, s.eip, s.esp, s.eflags,
    ]
}

fn state_from_words(w: &[u32; STATE_WORDS]) -> UserState {
    UserState {
        eax: w[0],
        ebx: w[1],
        ecx: w[2],
        edx: w[3],
        esi: w[4],
        edi: w[5],
        ebp: w[6],
        eip: w[7],
        esp: w[SAVED_ESP_WORD as usize],
        eflags: w[9],
    }
}

/// The kernel service for a trap from ring 3 during a benchmark's user
/// run: true to resume ring 3 (with the frame as changed), false to end
/// the run there. `fault_address` is CR2 for #PF (0 otherwise). It and
/// the system call are inlined in each kernel's trap dispatcher, so that
/// the two Xen kernels' trap paths have the same shape whatever their
/// compiler makes of the rest (the VMI guest's dispatcher is larger, and
/// was left with calls the direct-PV kernel's inlines).
#[inline(always)]
pub fn user_trap<P: Platform + ?Sized, F: UserFrame + ?Sized>(
    p: &mut P,
    frame: &mut F,
    fault_address: u32,
) -> bool {
    match frame.vector() {
        0x80 => system_call(p, frame),
        0 => divide_error(frame),
        14 => page_fault(p, frame, fault_address),
        _ => false,
    }
}

/// Inlined: see `user_trap`.
#[inline(always)]
fn system_call<P: Platform + ?Sized, F: UserFrame + ?Sized>(p: &mut P, frame: &mut F) -> bool {
    let nr = frame.eax();
    if nr == SYS_EXIT {
        return false;
    }
    STATE.with(|s| s.counters.syscalls += 1);
    match nr {
        SYS_NULL => frame.set_eax(0),
        SYS_GETPPID => {
            let ppid = CURRENT_TASK.with(|&mut t| TASKS[TASKS[t].parent].pid);
            frame.set_eax(ppid);
        }
        SYS_STAT => {
            let buf = frame.ebx();
            if user_range_ok(buf, STAT_BYTES) {
                copy_to_user(buf, &STAT_RECORD);
                frame.set_eax(0);
            } else {
                frame.set_eax(EFAULT);
            }
        }
        SYS_RAISE => return raise(frame),
        SYS_SIGRETURN => return sigreturn(frame),
        SYS_YIELD => return yield_to_next(p, frame),
        _ => return false,
    }
    true
}

/// Delivers [`SIGNAL`]: the interrupted registers (with the call's result,
/// 0) go in a signal frame on the user stack, and ring 3 resumes in the
/// handler with ESP at the frame (Linux's `setup_frame`, reduced).
///
/// Inlined, and written so that the code does not depend on what the
/// compiler can prove about its caller: the frame keeps the registers the
/// handler inherits, only EAX, EIP and ESP are written.
#[inline(always)]
fn raise<F: UserFrame + ?Sized>(frame: &mut F) -> bool {
    let at = frame.esp().wrapping_sub(SIGFRAME_BYTES) & !3;
    if !user_range_ok(at, SIGFRAME_BYTES) {
        return false;
    }
    let mut interrupted = frame.state();
    interrupted.eax = 0;
    copy_to_user(at, &[SIGNAL]);
    copy_to_user(at + 4, &state_to_words(&interrupted));
    frame.set_eax(0);
    frame.set_eip(Snippet::SignalHandler.address());
    frame.set_esp(at);
    STATE.with(|s| s.counters.signals += 1);
    true
}

/// Returns from the handler: the registers come back from the signal
/// frame at ESP (only the user-settable flags from it).
///
/// Inlined (see `raise`): the signal number and the saved stack pointer
/// are checked before the registers are copied into the frame, so the copy
/// is straight loads and stores.
#[inline(always)]
fn sigreturn<F: UserFrame + ?Sized>(frame: &mut F) -> bool {
    let at = frame.esp();
    if !user_range_ok(at, SIGFRAME_BYTES) {
        return false;
    }
    let mut head = [0u32; 1];
    copy_from_user(at, &mut head);
    let mut saved_esp = [0u32; 1];
    copy_from_user(at + 4 + 4 * SAVED_ESP_WORD, &mut saved_esp);
    let good = head[0] == SIGNAL && user_range_ok(saved_esp[0].wrapping_sub(4), 4);
    STATE.with(|s| {
        s.counters.sigreturns += 1;
        if !good {
            s.counters.bad_sigframes += 1;
        }
    });
    if !good {
        return false;
    }
    let mut words = [0u32; STATE_WORDS];
    copy_from_user(at + 4, &mut words);
    let mut restored = state_from_words(&words);
    // The stack pointer checked above, not a second read of it.
    restored.esp = saved_esp[0];
    restored.eflags = (restored.eflags & EFLAGS_USER_MASK) | USER_EFLAGS;
    frame.set_state(&restored);
    true
}

/// `SYS_YIELD`: saves the running process's registers, checks its running
/// sum, and switches to the next process (address space and kernel stack
/// in lazy CPU mode, as Linux's context switch), or ends the run at the
/// target number of switches.
fn yield_to_next<P: Platform + ?Sized, F: UserFrame + ?Sized>(p: &mut P, frame: &mut F) -> bool {
    let running = frame.state();
    let next = STATE.with(|s| {
        if s.nprocs == 0 {
            return None;
        }
        let cur = &mut s.procs[s.current];
        cur.visits += 1;
        if running.ebp != cur.visits.wrapping_mul(cur.ws_sum) {
            s.counters.bad_sums += 1;
        }
        cur.state = running;
        s.counters.switches += 1;
        if s.counters.switches >= s.switch_target {
            return None;
        }
        s.current = (s.current + 1) % s.nprocs;
        Some(s.procs[s.current])
    });
    let Some(next) = next else {
        return false;
    };
    p.set_lazy(Lazy::Cpu);
    p.switch_space(next.space);
    p.set_kernel_stack(next.kernel_stack);
    p.set_lazy(Lazy::None);
    frame.set_state(&next.state);
    true
}

fn divide_error<F: UserFrame + ?Sized>(frame: &mut F) -> bool {
    if frame.eip() != Snippet::DivideInsn.address() {
        return false;
    }
    frame.set_eip(frame.eip() + DIVIDE_INSN_LEN);
    STATE.with(|s| s.counters.divide_errors += 1);
    true
}

/// #PF error code bit: a write (Intel SDM vol. 3, "Interrupt 14").
const PF_WRITE: u32 = 1 << 1;

/// #PF from ring 3 in the fault area, decided by the kernel's own page
/// tables (as Linux's `handle_mm_fault`; the error code only says whether
/// it was a write): a write to a read-only page becomes writable
/// (protection mode), a page without mapping gets the next demand frame
/// (demand mode), and an access the tables already allow is a spurious
/// fault, resumed as it is.
fn page_fault<P: Platform + ?Sized, F: UserFrame + ?Sized>(
    p: &mut P,
    frame: &mut F,
    fault_address: u32,
) -> bool {
    let page = fault_address & !(PAGE_SIZE - 1);
    if !(FAULT_VA..FAULT_VA + FAULT_MAX_PAGES * PAGE_SIZE).contains(&page) {
        return false;
    }
    let write = frame.error_code() & PF_WRITE != 0;
    let (mode, demand) = STATE.with(|s| {
        let frame = (s.demand_next < s.demand_count).then(|| s.demand[s.demand_next]);
        (s.fault_mode, frame)
    });
    let space = p.current_space();
    let spurious = match (mode, p.lookup(space, page)) {
        (FaultMode::None, _) => return false,
        (_, Some((_, writable))) if writable || !write => true,
        (FaultMode::Protect, Some(_)) => {
            p.protect(space, page, true);
            false
        }
        (FaultMode::Demand, None) => {
            let Some(new) = demand else {
                return false;
            };
            p.map(space, page, new, true);
            STATE.with(|s| s.demand_next += 1);
            false
        }
        _ => return false,
    };
    STATE.with(|s| {
        if spurious {
            s.counters.spurious_faults += 1;
        } else {
            s.counters.faults += 1;
        }
    });
    true
}
