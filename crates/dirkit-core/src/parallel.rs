//! How many threads a data-parallel pass over labels uses.

/// Labels per thread below which a pass stays on the calling thread: spawning costs tens of
/// microseconds, a million labels take about a millisecond.
pub const MIN_PER_THREAD: usize = 1 << 20;

/// Number of parts to split `n` items into: 1 for small inputs, at most the number of cores
/// (`std::thread::available_parallelism`).
pub fn parts(n: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    (n / MIN_PER_THREAD).clamp(1, cores)
}
