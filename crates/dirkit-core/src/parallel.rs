//! How many threads a data-parallel pass over labels uses.

/// Labels per thread below which a pass stays on the calling thread: spawning costs tens of
/// microseconds, a million labels take about a millisecond.
pub const MIN_PER_THREAD: usize = 1 << 20;

/// Number of parts to split `n` items into: 1 for small inputs, at most the number of cores
/// (`std::thread::available_parallelism`).
pub fn parts(n: usize) -> usize {
    parts_of(n, MIN_PER_THREAD)
}

/// [`parts`] for items that each cost more than a label: `min_per_thread` of them per thread.
pub fn parts_of(n: usize, min_per_thread: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    (n / min_per_thread.max(1)).clamp(1, cores)
}
