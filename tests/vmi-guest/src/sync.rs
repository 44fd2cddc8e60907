//! Kernel globals on a single processor: bench-core's `Global`, shared by
//! both test kernels. In this kernel interrupt handlers touch only atomics,
//! never a `Global` that non-interrupt code may be lending, so lends never
//! overlap.

pub use bench_core::sync::Global;
