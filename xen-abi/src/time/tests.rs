use alloc::collections::VecDeque;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::arch_x86_32::AbiU64;

/// The formula of `xen.h` in 128-bit arithmetic: the model the 96-bit
/// computation must match.
fn scale_model(delta: u64, mul: u32, shift: i8) -> u64 {
    let shifted = if shift >= 0 {
        if shift >= 64 {
            0
        } else {
            delta << shift
        }
    } else if shift <= -64 {
        0
    } else {
        delta >> -shift
    };
    ((shifted as u128 * mul as u128) >> 32) as u64
}

#[test]
fn scale_worked_examples() {
    // 2 GHz TSC: 0.5 ns per tick, mul = 2^31, no shift.
    assert_eq!(scale_delta(1000, 0x8000_0000, 0), 500);
    // 3 GHz: shift -1, mul = 2/3 * 2^32 (rounded down); one second of ticks
    // comes out one ns short because mul is rounded down.
    assert_eq!(scale_delta(3_000_000_000, 2_863_311_530, -1), 999_999_999);
    // 100 MHz: 10 ns per tick, shift 4, mul = 0.625 * 2^32.
    assert_eq!(scale_delta(100_000_000, 2_684_354_560, 4), 1_000_000_000);
    // Deltas near 2^64: the 96-bit product does not overflow.
    assert_eq!(
        scale_delta(u64::MAX, u32::MAX, 0),
        18_446_744_069_414_584_319
    );
    assert_eq!(
        scale_delta(u64::MAX, u32::MAX, -1),
        9_223_372_034_707_292_159
    );
    assert_eq!(
        scale_delta(u64::MAX, 0x8000_0000, 0),
        9_223_372_036_854_775_807
    );
    // A left shift loses the top bits, as in Xen: (2^63 + 12345) << 1 wraps
    // to 24690.
    assert_eq!(scale_delta((1 << 63) + 12345, u32::MAX, 1), 24_689);
    // Shifts of 64 or more leave nothing.
    assert_eq!(scale_delta(u64::MAX, u32::MAX, 64), 0);
    assert_eq!(scale_delta(u64::MAX, u32::MAX, -64), 0);
    assert_eq!(scale_delta(u64::MAX, 0, 0), 0);
}

#[test]
fn tsc_frequency_examples() {
    assert_eq!(tsc_frequency_hz(0x8000_0000, 0), Some(2_000_000_000));
    assert_eq!(tsc_frequency_hz(2_863_311_530, -1), Some(3_000_000_000));
    assert_eq!(tsc_frequency_hz(2_684_354_560, 4), Some(100_000_000));
    assert_eq!(tsc_frequency_hz(0, 0), None);
    assert_eq!(tsc_frequency_hz(1, -2), Some(17_179_869_184_000_000_000));
    assert_eq!(tsc_frequency_hz(1, -3), None, "does not fit in 64 bits");
}

#[test]
fn system_time_from_a_snapshot() {
    let info = VcpuTimeInfo {
        version: 2,
        tsc_timestamp: AbiU64::new(10_000),
        system_time: AbiU64::new(5_000_000_000),
        tsc_to_system_mul: 0x8000_0000,
        tsc_shift: 0,
        ..Default::default()
    };
    assert_eq!(info.system_time_at(10_000), 5_000_000_000);
    assert_eq!(info.system_time_at(12_000), 5_000_001_000);
    assert_eq!(info.tsc_frequency_hz(), Some(2_000_000_000));
}

#[test]
fn ns_to_tsc_examples() {
    assert_eq!(ns_to_tsc_delta(500, 0x8000_0000, 0), Some(1000));
    assert_eq!(
        ns_to_tsc_delta(1_000_000_000, 2_684_354_560, 4),
        Some(100_000_000)
    );
    assert_eq!(ns_to_tsc_delta(0, 2_684_354_560, 4), Some(0));
    assert_eq!(ns_to_tsc_delta(1, 0, 0), None);
    assert_eq!(ns_to_tsc_delta(u64::MAX, 1, 0), None);
}

proptest! {
    #[test]
    fn scale_matches_the_128_bit_model(delta in any::<u64>(), mul in any::<u32>(), shift in -70i8..70) {
        prop_assert_eq!(scale_delta(delta, mul, shift), scale_model(delta, mul, shift));
    }

    #[test]
    fn scale_matches_the_model_near_the_top(delta in (u64::MAX - 1_000_000)..=u64::MAX, mul in any::<u32>(), shift in -8i8..8) {
        prop_assert_eq!(scale_delta(delta, mul, shift), scale_model(delta, mul, shift));
    }

    /// `ns_to_tsc_delta` gives the smallest delta that reaches `ns`.
    #[test]
    fn ns_to_tsc_is_the_least_inverse(ns in any::<u64>(), mul in 1u32.., shift in -6i8..6) {
        match ns_to_tsc_delta(ns, mul, shift) {
            Some(delta) => {
                prop_assert!(scale_model(delta, mul, shift) >= ns);
                if delta > 0 {
                    prop_assert!(scale_model(delta - 1, mul, shift) < ns);
                }
                if shift > 0 {
                    prop_assert!(delta <= u64::MAX >> shift);
                }
            }
            None => {
                // No 64-bit delta reaches ns without losing bits in the shift.
                let top = if shift > 0 { u64::MAX >> shift } else { u64::MAX };
                prop_assert!(scale_model(top, mul, shift) < ns);
            }
        }
    }
}

/// Simulated shared memory: a `vcpu_time_info` that a simulated Xen updates
/// between the reader's loads, field by field, as a script says.
struct SimulatedTimeInfo {
    memory: VcpuTimeInfo,
    /// One entry per load the reader makes: what Xen does just before it.
    script: VecDeque<Step>,
    /// An update in progress: the values still to be written.
    pending: Option<VcpuTimeInfo>,
    loads: usize,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Nothing,
    /// Start an update to the committed state with this system time: bump
    /// the version to odd and write the first half of the fields.
    Begin(u64),
    /// Finish the update under way: write the rest, bump the version to even.
    Finish,
}

/// The consistent state with version `version` (2, 4, 6, ...): the same
/// derivation for the writer and the checker.
fn committed(version: u32, system_time: u64) -> VcpuTimeInfo {
    VcpuTimeInfo {
        version,
        tsc_timestamp: AbiU64::new(system_time * 2),
        system_time: AbiU64::new(system_time),
        tsc_to_system_mul: 0x8000_0000 | version,
        tsc_shift: (version % 5) as i8 - 2,
        ..Default::default()
    }
}

impl SimulatedTimeInfo {
    fn new(script: impl IntoIterator<Item = Step>) -> Self {
        Self {
            memory: committed(2, 1000),
            script: script.into_iter().collect(),
            pending: None,
            loads: 0,
        }
    }

    fn xen_step(&mut self) {
        self.loads += 1;
        let step = self.script.pop_front().unwrap_or(Step::Finish);
        match step {
            Step::Begin(system_time) if self.pending.is_none() => {
                let next = committed(self.memory.version + 2, system_time);
                self.memory.version += 1;
                self.memory.tsc_timestamp = next.tsc_timestamp;
                self.pending = Some(next);
            }
            Step::Finish => {
                if let Some(next) = self.pending.take() {
                    self.memory.system_time = next.system_time;
                    self.memory.tsc_to_system_mul = next.tsc_to_system_mul;
                    self.memory.tsc_shift = next.tsc_shift;
                    self.memory.version = next.version;
                }
            }
            Step::Begin(_) | Step::Nothing => {}
        }
    }
}

impl SeqlockSource for SimulatedTimeInfo {
    type Snapshot = VcpuTimeInfo;

    fn read_version(&mut self) -> u32 {
        self.xen_step();
        self.memory.version
    }

    fn read_snapshot(&mut self) -> VcpuTimeInfo {
        self.xen_step();
        self.memory
    }
}

#[test]
fn seqlock_retries_across_an_update() {
    // The first read sees an update begin before the data is copied (torn
    // snapshot with an even starting version): it must be discarded.
    let mut sim = SimulatedTimeInfo::new([
        Step::Nothing,
        Step::Begin(7777),
        Step::Nothing,
        Step::Finish,
    ]);
    let got = read_consistent(&mut sim);
    assert_eq!(got, committed(4, 7777));
    assert!(sim.loads > 3, "retried");

    // A version read while odd is not even tried.
    let mut sim =
        SimulatedTimeInfo::new([Step::Begin(5), Step::Finish, Step::Nothing, Step::Nothing]);
    assert_eq!(read_consistent(&mut sim), committed(4, 5));

    // Quiet memory: one attempt, three loads.
    let mut sim = SimulatedTimeInfo::new([]);
    sim.script.extend([Step::Nothing; 3]);
    assert_eq!(read_consistent(&mut sim), committed(2, 1000));
    assert_eq!(sim.loads, 3);
}

proptest! {
    /// Whatever the interleaving of Xen's updates with the loads, the
    /// snapshot returned is one that Xen committed, never a mix.
    #[test]
    fn seqlock_never_returns_a_torn_snapshot(script in proptest::collection::vec(
        prop_oneof![Just(Step::Nothing), (1u64..1_000_000).prop_map(Step::Begin), Just(Step::Finish)],
        0..40,
    )) {
        let mut sim = SimulatedTimeInfo::new(script);
        let got = read_consistent(&mut sim);
        prop_assert_eq!(got.version % 2, 0);
        prop_assert_eq!(got, committed(got.version, got.system_time.get()));
    }
}

#[test]
fn volatile_sources_read_real_memory() {
    let info = committed(6, 123);
    // SAFETY: `info` is a live, aligned vcpu_time_info for the whole test.
    let mut source = unsafe { VolatileTimeInfo::new(&info) };
    assert_eq!(read_consistent(&mut source), info);

    let mut shared = <SharedInfo as zerocopy::FromZeros>::new_zeroed();
    shared.wc_version = 2;
    shared.wc_sec = 0x8000_0001;
    shared.wc_nsec = 999_999_999;
    shared.arch.wc_sec_hi = 1;
    // SAFETY: `shared` lives for the whole test.
    let mut wall = unsafe { VolatileWallClock::new(&shared) };
    let wc = read_consistent(&mut wall);
    assert_eq!(
        wc,
        WallClock {
            sec: 0x1_8000_0001,
            nsec: 999_999_999
        }
    );

    // now(): system time at a TSC value, wall clock = wc + system time.
    let (system, clock) = now(&mut source, &mut wall, info.tsc_timestamp.get());
    assert_eq!(system, 123);
    assert_eq!(
        clock,
        WallClock {
            sec: 0x1_8000_0002,
            nsec: 122
        }
    );
}

#[test]
fn wallclock_arithmetic() {
    let wc = WallClock::from_shared(100, 1_500_000_000, 0);
    assert_eq!(
        wc,
        WallClock {
            sec: 101,
            nsec: 500_000_000
        }
    );
    assert_eq!(wc.at_system_time(0), wc);
    assert_eq!(
        wc.at_system_time(499_999_999),
        WallClock {
            sec: 101,
            nsec: 999_999_999
        }
    );
    assert_eq!(
        wc.at_system_time(500_000_000),
        WallClock { sec: 102, nsec: 0 }
    );
    assert_eq!(
        wc.at_system_time(3_700_000_001),
        WallClock {
            sec: 105,
            nsec: 200_000_001
        }
    );
    assert_eq!(
        WallClock {
            sec: u64::MAX,
            nsec: 0
        }
        .plus_ns(2 * NSEC_PER_SEC)
        .sec,
        u64::MAX
    );
    let samples: Vec<u64> = (0..50).map(|i| i * 123_456_789).collect();
    for pair in samples.windows(2) {
        assert!(wc.at_system_time(pair[0]) < wc.at_system_time(pair[1]));
    }
}
