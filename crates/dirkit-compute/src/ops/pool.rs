//! The threads the CPU kernels split their work over: candle's own barrier pool
//! (`candle_core::utils::barrier_pool`, `CANDLE_NUM_THREADS` or `RAYON_NUM_THREADS` threads,
//! the caller included), which candle's element-wise ops use too.
//!
//! A training step alternates hundreds of these kernels with candle's ops, and candle's workers
//! spin for a while after each of its ops. A second pool beside it would either sleep between
//! kernels (waking a thread costs tens of microseconds on a virtual machine, paid per kernel) or
//! compete with candle's spinning workers for the same cores; sharing candle's pool avoids both.
//! Work is claimed in batches from a shared counter, so a worker that starts late takes less,
//! and results do not depend on who computed them.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// Whether this thread is running a participant of a job (a nested job runs inline).
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

/// Threads a job can use, the caller included: candle's pool size (`CANDLE_NUM_THREADS`, else
/// `RAYON_NUM_THREADS`, else the physical cores).
pub fn threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// Runs `f` with every kernel it calls kept on the calling thread: for code that splits its
/// work over threads of its own (scoped threads each running kernels), where a kernel that
/// reached for the pool would wait for the other threads' jobs instead of computing.
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the thread's previous state, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_JOB.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(IN_JOB.with(|flag| flag.replace(true)));
    f()
}

/// Calls `body` on this thread and on every worker of the pool (once each) and returns when
/// all have returned; a panic in any of them is resumed here. Inside another job (or with a
/// pool of one) `body` runs once, on this thread.
pub(crate) fn run(body: &(dyn Fn() + Sync)) {
    if IN_JOB.with(Cell::get) || threads() == 1 {
        return body();
    }
    let panic: Mutex<Option<Box<dyn Any + Send>>> = Mutex::new(None);
    // Panics are caught inside each participant: one escaping into the pool would poison its
    // call lock, and every later candle op on the pool would fail.
    candle_core::utils::barrier_pool().execute(|_| {
        IN_JOB.with(|f| f.set(true));
        let outcome = catch_unwind(AssertUnwindSafe(body));
        IN_JOB.with(|f| f.set(false));
        if let Err(payload) = outcome {
            lock(&panic).get_or_insert(payload);
        }
    });
    if let Some(payload) = lock(&panic).take() {
        resume_unwind(payload);
    }
}

/// Locks `m`, also after a panic elsewhere poisoned it (every critical section here is a
/// single store or take).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Batches of consecutive tasks a job's participants claim, per thread: several, so that a
/// participant that starts late or runs slow leaves its share to the others, and few, so that
/// claiming costs little next to tiny tasks (a batch-norm plane of 16 values).
const BATCHES_PER_THREAD: usize = 8;

/// `f(scratch, task)` for every task, results in task order; on the pool when `parallel`,
/// with scratch made by `init` once per participating thread (once in all otherwise).
/// Participants claim consecutive batches of tasks.
pub(crate) fn map_tasks_with<I, R, S, G, F>(tasks: Vec<I>, parallel: bool, init: G, f: F) -> Vec<R>
where
    I: Send,
    R: Send,
    G: Fn() -> S + Sync,
    F: Fn(&mut S, I) -> R + Sync,
{
    let n = tasks.len();
    if !parallel || n < 2 || threads() == 1 {
        let mut scratch = init();
        return tasks.into_iter().map(|t| f(&mut scratch, t)).collect();
    }
    let per_batch = n.div_ceil(threads() * BATCHES_PER_THREAD).max(1);
    let mut batches: Vec<Mutex<Vec<I>>> = Vec::with_capacity(n.div_ceil(per_batch));
    let mut rest = tasks.into_iter();
    loop {
        let batch: Vec<I> = rest.by_ref().take(per_batch).collect();
        if batch.is_empty() {
            break;
        }
        batches.push(Mutex::new(batch));
    }
    let results: Vec<Mutex<Vec<R>>> = batches.iter().map(|_| Mutex::new(Vec::new())).collect();
    let next = AtomicUsize::new(0);
    run(&|| {
        let mut scratch = None;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(batch) = batches.get(i) else { break };
            let batch = std::mem::take(&mut *lock(batch));
            let s = scratch.get_or_insert_with(&init);
            let out: Vec<R> = batch.into_iter().map(|t| f(s, t)).collect();
            *lock(&results[i]) = out;
        }
    });
    let out: Vec<R> = results
        .into_iter()
        .flat_map(|r| r.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    assert_eq!(out.len(), n, "every task ran");
    out
}

/// `f(task)` for every task, results in task order; on the pool when `parallel`.
pub(crate) fn map_tasks<I, R, F>(tasks: Vec<I>, parallel: bool, f: F) -> Vec<R>
where
    I: Send,
    R: Send,
    F: Fn(I) -> R + Sync,
{
    map_tasks_with(tasks, parallel, || (), |_, t| f(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device::Cpu;

    #[test]
    fn every_task_runs_once_and_results_keep_task_order() {
        for parallel in [false, true] {
            let tasks: Vec<usize> = (0..1000).collect();
            let out = map_tasks(tasks, parallel, |i| i * i);
            assert_eq!(out, (0..1000).map(|i| i * i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn scratch_is_made_once_per_participant_at_most() {
        let made = AtomicUsize::new(0);
        let out = map_tasks_with(
            (0..200).collect(),
            true,
            || {
                made.fetch_add(1, Ordering::Relaxed);
                Vec::<usize>::new()
            },
            |scratch, i: usize| {
                scratch.push(i);
                i + 1
            },
        );
        assert_eq!(out, (1..=200).collect::<Vec<_>>());
        let made = made.load(Ordering::Relaxed);
        assert!((1..=threads()).contains(&made), "{made} scratch buffers");
    }

    #[test]
    fn on_this_thread_keeps_jobs_on_the_caller_and_restores_after_a_panic() {
        let here = std::thread::current().id();
        let ids = on_this_thread(|| {
            map_tasks((0..64).collect(), true, |_: usize| {
                std::thread::current().id()
            })
        });
        assert!(ids.iter().all(|&id| id == here));
        let caught = catch_unwind(|| on_this_thread(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(
            !IN_JOB.with(Cell::get),
            "the flag is restored after a panic"
        );
    }

    #[test]
    fn nested_and_concurrent_jobs_run_and_finish() {
        let out: Vec<Vec<usize>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|k| {
                    s.spawn(move || {
                        map_tasks((0..50).collect(), true, |i: usize| {
                            map_tasks((0..10).collect(), true, |j: usize| i * j + k)
                                .iter()
                                .sum::<usize>()
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("job"))
                .collect()
        });
        for (k, v) in out.iter().enumerate() {
            let want: Vec<usize> = (0..50).map(|i| 45 * i + 10 * k).collect();
            assert_eq!(v, &want);
        }
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_pool_keeps_working() -> candle_core::Result<()> {
        let caught = catch_unwind(|| {
            map_tasks((0..64).collect(), true, |i: usize| {
                assert!(i != 37, "task {i} failed");
                i
            })
        });
        assert!(caught.is_err());
        let out = map_tasks((0..64).collect(), true, |i: usize| 2 * i);
        assert_eq!(out, (0..64).map(|i| 2 * i).collect::<Vec<_>>());
        // candle's own ops on the same pool still run.
        let ones = candle_core::Tensor::ones(1 << 20, candle_core::DType::F32, &Cpu)?;
        let sum: f32 = (&ones + &ones)?.sum_all()?.to_scalar()?;
        assert_eq!(sum, 2.0 * (1 << 20) as f32);
        Ok(())
    }
}
