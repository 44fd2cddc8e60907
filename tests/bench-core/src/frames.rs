//! The frame pool: frames the benchmarks and the platforms' address
//! spaces take and give back, so that repeated operations reuse the same
//! memory (the kernels' own frame allocators only ever hand out new
//! frames).

use crate::platform::{Frame, Platform, PAGE_SIZE};
use crate::sync::Global;

/// Frames the pool can hold at once (16 MiB).
pub const POOL_CAPACITY: usize = 4096;

struct Pool {
    free: [Frame; POOL_CAPACITY],
    count: usize,
}

static POOL: Global<Pool> = Global::new(Pool {
    free: [0; POOL_CAPACITY],
    count: 0,
});

/// A frame, mapped read-write in the kernel's identity map; its contents
/// are whatever its last user left.
pub fn take<P: Platform + ?Sized>(p: &mut P) -> Frame {
    match POOL.with(|pool| {
        pool.count = pool.count.checked_sub(1)?;
        Some(pool.free[pool.count])
    }) {
        Some(frame) => frame,
        None => p.new_frame(),
    }
}

/// A zeroed frame (for a page table).
pub fn take_zeroed<P: Platform + ?Sized>(p: &mut P) -> Frame {
    let frame = take(p);
    zero(frame);
    frame
}

/// Gives a frame back. It must be mapped read-write in the kernel's
/// identity map again (no longer a page table on a platform that makes
/// page tables read-only).
pub fn give(frame: Frame) {
    POOL.with(|pool| {
        assert!(pool.count < POOL_CAPACITY, "frame pool overflow");
        pool.free[pool.count] = frame;
        pool.count += 1;
    });
}

/// Frames in the pool now.
pub fn available() -> usize {
    POOL.with(|pool| pool.count)
}

/// Fills a frame with zeros.
///
/// With `rep stosd`, as Linux's i386 `clear_page` does: the builtin
/// memset's word loop costs four instructions a word (about 4,100 a
/// page), which made every page a guest zeroes (its new tables, and on
/// direct PV also the tables Xen uses) count several times its real
/// price in the fork rows.
pub fn zero(frame: Frame) {
    #[cfg(target_arch = "x86")]
    // SAFETY: pool frames are identity mapped read-write and owned by
    // whoever took them; `rep stosd` writes PAGE_SIZE / 4 words from
    // `frame` upwards (the direction flag is clear, as the ABI keeps it)
    // and changes only EDI, ECX and memory.
    unsafe {
        core::arch::asm!(
            "rep stosd",
            inout("edi") frame => _,
            inout("ecx") PAGE_SIZE / 4 => _,
            in("eax") 0u32,
            options(nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "x86"))]
    // SAFETY: as above.
    unsafe {
        core::ptr::write_bytes(frame as *mut u8, 0, PAGE_SIZE as usize)
    };
}

/// Clears the present entries `first..first + count` of a page table
/// that no longer maps anything a processor may walk (a space being torn
/// down, not loaded), with plain stores: what Linux's exit does on every
/// platform (`zap_pte_range` over each VMA's part of each table, clearing
/// each present entry natively; XenLinux first unpins, so its tables are
/// writable again). Both benchmark kernels call it for the ranges a dying
/// space maps (see [`crate::Mapped`]), so the teardown's loop counts alike
/// on both sides and walks no more entries than Linux's does.
pub fn clear_present_entries(table: Frame, first: u32, count: u32) {
    let end = (first + count).min(PAGE_SIZE / 8);
    let entries = table as *mut u64;
    for i in first as usize..end as usize {
        // SAFETY: the table is a pool frame, identity mapped read-write by
        // the time its space is torn down; `i` stays inside the page.
        unsafe {
            let entry = entries.add(i);
            if entry.read() != 0 {
                entry.write(0);
            }
        }
    }
}

/// Writes `word` at the start of a frame (through the identity map).
pub fn write_word(frame: Frame, offset: u32, word: u32) {
    // SAFETY: as in `zero`; offset is inside the page.
    unsafe { ((frame + (offset & (PAGE_SIZE - 4))) as *mut u32).write_volatile(word) };
}

/// Reads a word of a frame (through the identity map).
pub fn read_word(frame: Frame, offset: u32) -> u32 {
    // SAFETY: as in `zero`.
    unsafe { ((frame + (offset & (PAGE_SIZE - 4))) as *const u32).read_volatile() }
}
