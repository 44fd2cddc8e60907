//! System time and wall clock from `struct vcpu_time_info` and
//! `struct shared_info` (`xen.h`).
//!
//! Xen publishes, per vCPU, a TSC timestamp, the system time (ns since boot)
//! at that timestamp, and a scale: a power-of-two shift and a 32.32
//! fixed-point multiplier. System time now is
//! `system_time + ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32`
//! (a negative shift shifts right). The product is 96 bits wide; it is
//! computed exactly here, without `u128`.
//!
//! Both `vcpu_time_info` and the wall clock are read under a seqlock: the
//! version is odd while Xen updates, and changes with every update. The
//! reader ([`read_consistent`]) works over a [`SeqlockSource`] so that host
//! tests can interleave simulated updates with the reads; on the guest,
//! [`VolatileTimeInfo`] and [`VolatileWallClock`] read shared memory.

use core::sync::atomic::{fence, Ordering};

use crate::xen::{SharedInfo, VcpuTimeInfo};

/// Nanoseconds per second.
pub const NSEC_PER_SEC: u64 = 1_000_000_000;

/// Scales a TSC delta to nanoseconds: `((delta << shift) * mul_frac) >> 32`,
/// shifting right by `-shift` when `shift` is negative.
///
/// The shift is 64-bit, as in Xen (bits shifted out are lost; a shift of 64
/// or more gives 0); the multiplication keeps all 96 bits of the product, so
/// the result (bits 32..96) never overflows.
pub const fn scale_delta(delta: u64, mul_frac: u32, shift: i8) -> u64 {
    let shifted = if shift >= 0 {
        match delta.checked_shl(shift as u32) {
            Some(v) => v,
            None => 0,
        }
    } else {
        match delta.checked_shr(shift.unsigned_abs() as u32) {
            Some(v) => v,
            None => 0,
        }
    };
    // shifted * mul = hi * 2^32 + lo, with hi = (shifted >> 32) * mul and
    // lo = (shifted & 0xFFFFFFFF) * mul; bits 32.. of that are
    // hi + (lo >> 32), which is below (2^32 - 1) * 2^32.
    let mul = mul_frac as u64;
    let lo = (shifted as u32 as u64) * mul;
    let hi = (shifted >> 32) * mul;
    hi + (lo >> 32)
}

/// The smallest TSC delta that [`scale_delta`] turns into at least `ns`
/// nanoseconds (for programming a deadline given in nanoseconds as a TSC
/// value, or the reverse). `None` if there is none in 64 bits or `mul_frac`
/// is 0.
pub fn ns_to_tsc_delta(ns: u64, mul_frac: u32, shift: i8) -> Option<u64> {
    if mul_frac == 0 {
        return None;
    }
    if ns == 0 {
        return Some(0);
    }
    // The scaled value, before the final >> 32, must reach ns << 32: the
    // shifted delta must be at least q = ceil(ns * 2^32 / mul).
    let q = ((ns as u128) << 32).div_ceil(mul_frac as u128);
    let delta = if shift >= 0 {
        // delta << shift >= q, with no bits lost in the shift.
        let delta = q.div_ceil(1u128 << shift as u32);
        if delta > (u64::MAX >> shift as u32) as u128 {
            return None;
        }
        delta
    } else {
        // floor(delta / 2^k) >= q  <=>  delta >= q * 2^k.
        let k = shift.unsigned_abs() as u32;
        if k >= 64 {
            return None;
        }
        q.checked_mul(1u128 << k)?
    };
    u64::try_from(delta).ok()
}

/// The TSC frequency (Hz) a scale describes:
/// `((10^9 << 32) / mul) >> shift` (`<< -shift` for a negative shift).
/// `None` if `mul_frac` is 0 or the result does not fit.
pub const fn tsc_frequency_hz(mul_frac: u32, shift: i8) -> Option<u64> {
    if mul_frac == 0 {
        return None;
    }
    let base = (NSEC_PER_SEC << 32) / mul_frac as u64;
    if shift >= 0 {
        base.checked_shr(shift as u32)
    } else {
        let k = shift.unsigned_abs() as u32;
        if k >= 64 || base > (u64::MAX >> k) {
            None
        } else {
            Some(base << k)
        }
    }
}

impl VcpuTimeInfo {
    /// System time (ns since boot) at TSC value `tsc`, from a consistent
    /// snapshot. A `tsc` before `tsc_timestamp` wraps, as in Xen's own
    /// readers; snapshots are taken after reading the TSC's update, so it does
    /// not happen on a coherent TSC.
    pub const fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.wrapping_sub(self.tsc_timestamp.get());
        self.system_time.get().wrapping_add(scale_delta(
            delta,
            self.tsc_to_system_mul,
            self.tsc_shift,
        ))
    }

    /// The TSC frequency (Hz) this snapshot's scale describes.
    pub const fn tsc_frequency_hz(&self) -> Option<u64> {
        tsc_frequency_hz(self.tsc_to_system_mul, self.tsc_shift)
    }
}

/// Something read under a seqlock: a version word (odd while the writer is
/// at work, changed by every update) and the data it protects.
pub trait SeqlockSource {
    /// What one read of the data gives.
    type Snapshot;
    /// Reads the version word.
    fn read_version(&mut self) -> u32;
    /// Reads the protected data (possibly torn, if an update is under way).
    fn read_snapshot(&mut self) -> Self::Snapshot;
}

/// Reads a consistent snapshot: retries until the version was even before
/// the read and unchanged after it.
pub fn read_consistent<S: SeqlockSource>(source: &mut S) -> S::Snapshot {
    loop {
        let before = source.read_version();
        if before & 1 == 0 {
            // The data must be read after the version, and the version
            // re-read after the data (x86 keeps loads in order; the fences
            // keep the compiler from moving them).
            fence(Ordering::Acquire);
            let snapshot = source.read_snapshot();
            fence(Ordering::Acquire);
            if source.read_version() == before {
                return snapshot;
            }
        }
        core::hint::spin_loop();
    }
}

/// A `vcpu_time_info` in shared memory, read with volatile loads.
#[derive(Debug)]
pub struct VolatileTimeInfo {
    info: *const VcpuTimeInfo,
}

impl VolatileTimeInfo {
    /// Reads the `vcpu_time_info` at `info`.
    ///
    /// # Safety
    ///
    /// `info` must point to a mapped, 4-byte aligned `vcpu_time_info` (in
    /// the shared-info page or a registered time area) for as long as this
    /// value is used.
    pub const unsafe fn new(info: *const VcpuTimeInfo) -> Self {
        Self { info }
    }
}

impl SeqlockSource for VolatileTimeInfo {
    type Snapshot = VcpuTimeInfo;

    fn read_version(&mut self) -> u32 {
        // SAFETY: `new`'s contract: `info` is valid and aligned; Xen changes
        // it concurrently, hence the volatile read.
        unsafe { core::ptr::read_volatile(&raw const (*self.info).version) }
    }

    fn read_snapshot(&mut self) -> VcpuTimeInfo {
        // SAFETY: as above; a torn read is detected by the version check.
        unsafe { core::ptr::read_volatile(self.info) }
    }
}

/// The wall clock: UTC time as seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct WallClock {
    pub sec: u64,
    /// Below [`NSEC_PER_SEC`] once normalised.
    pub nsec: u32,
}

impl WallClock {
    /// From the shared-info fields: `wc_sec`, `wc_nsec`, and `wc_sec_hi`
    /// (`arch.wc_sec_hi` on x86_32), normalised.
    pub const fn from_shared(wc_sec: u32, wc_nsec: u32, wc_sec_hi: u32) -> Self {
        let sec = (wc_sec_hi as u64) << 32 | wc_sec as u64;
        Self { sec, nsec: 0 }.plus_ns(wc_nsec as u64)
    }

    /// This time plus `ns` nanoseconds (seconds saturate).
    pub const fn plus_ns(self, ns: u64) -> Self {
        let total_nsec = self.nsec as u64 + ns % NSEC_PER_SEC;
        let carry = total_nsec / NSEC_PER_SEC;
        Self {
            sec: self
                .sec
                .saturating_add(ns / NSEC_PER_SEC)
                .saturating_add(carry),
            nsec: (total_nsec % NSEC_PER_SEC) as u32,
        }
    }

    /// Xen's wall clock is the time at system time 0: the time now is the
    /// wall clock plus the system time.
    pub const fn at_system_time(self, system_ns: u64) -> Self {
        self.plus_ns(system_ns)
    }
}

/// The wall-clock fields of a `shared_info` page, read with volatile loads
/// under `wc_version`.
#[derive(Debug)]
pub struct VolatileWallClock {
    shared: *const SharedInfo,
}

impl VolatileWallClock {
    /// Reads the wall clock of the shared-info page at `shared`.
    ///
    /// # Safety
    ///
    /// `shared` must point to the mapped shared-info page for as long as
    /// this value is used.
    pub const unsafe fn new(shared: *const SharedInfo) -> Self {
        Self { shared }
    }
}

impl SeqlockSource for VolatileWallClock {
    type Snapshot = WallClock;

    fn read_version(&mut self) -> u32 {
        // SAFETY: `new`'s contract: the page is mapped; Xen changes it
        // concurrently, hence the volatile read.
        unsafe { core::ptr::read_volatile(&raw const (*self.shared).wc_version) }
    }

    fn read_snapshot(&mut self) -> WallClock {
        // SAFETY: as above; a torn read is detected by the version check.
        unsafe {
            let sec = core::ptr::read_volatile(&raw const (*self.shared).wc_sec);
            let nsec = core::ptr::read_volatile(&raw const (*self.shared).wc_nsec);
            let sec_hi = core::ptr::read_volatile(&raw const (*self.shared).arch.wc_sec_hi);
            WallClock::from_shared(sec, nsec, sec_hi)
        }
    }
}

/// System time and wall-clock time now, given the TSC value `tsc` read just
/// before: both reads are consistent snapshots.
pub fn now<T, W>(time: &mut T, wall_clock: &mut W, tsc: u64) -> (u64, WallClock)
where
    T: SeqlockSource<Snapshot = VcpuTimeInfo>,
    W: SeqlockSource<Snapshot = WallClock>,
{
    let system_ns = read_consistent(time).system_time_at(tsc);
    (
        system_ns,
        read_consistent(wall_clock).at_system_time(system_ns),
    )
}

#[cfg(test)]
mod tests;
