//! FDS costs at AgeDB-DIR scale (97 bins, D = 2048, f32 features on the CPU), the same work,
//! data and seeds as `benches/fds_torch.py` (the PyTorch CPU comparison):
//!
//! - `accumulate_{diag,full}_12000x2048`: one epoch of statistics, `Fds::accumulate` over
//!   12,000 × 2048 features in batches of 256 (count, mean, M2 and, for full, the co-moment, f64,
//!   Chan merge), from empty epoch statistics. The full one includes the first read of the
//!   statistics (`Fds::epoch_stats`), which folds in the rows still waiting per bin;
//! - `end_epoch_diag_2048`, `end_epoch_full_256`: `Fds::end_epoch` after one epoch of
//!   statistics. Full covariance is measured at D = 256: at D = 2048 it is 3 × 97 dense 2048²
//!   decompositions (two symmetric eigendecompositions and an SVD per bin), far too slow to
//!   repeat in a benchmark;
//! - `calibrate_{diag,full}_256x2048`: `Fds::calibrate` of a 256 × 2048 batch (the first 256
//!   training rows). The full maps at D = 2048 are installed without the decompositions
//!   (`Fds::install_full_transforms_for_bench`): applying them costs the same whatever their
//!   values.
//!
//! Data: a counter-based splitmix64 stream per purpose, AgeDB-like long-tailed ages 3…99 (97
//! bins, 2 to 281 rows each) and features `2u − 1 + 0.02·(age − 50)` in f32 — bit for bit what
//! the Python script builds (both print the same checksums).
//!
//! Threads: candle's CPU kernels and FDS's own parallel loops use `RAYON_NUM_THREADS`
//! (default: the physical cores). Compare with the same count in PyTorch:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench -p dirkit-nn --bench fds
//! /tmp/fds-torch-venv/bin/python crates/dirkit-nn/benches/fds_torch.py --threads 1
//! ```
//!
//! `FDS_BENCH_SAMPLES` sets criterion's sample count (default and minimum 10). Filter with
//! criterion's usual argument, e.g. `cargo bench -p dirkit-nn --bench fds -- calibrate`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use dirkit_nn::fds::{Covariance, Fds, FdsConfig, FullCovariance};

#[path = "common/streams.rs"]
mod streams;
use streams::{BIN_START, uniforms};

const N_ROWS: usize = 12_000;
const BATCH: usize = 256;
const DIM: usize = 2048;
const DIM_FULL_END_EPOCH: usize = 256;
const N_BINS: usize = 97;

/// AgeDB-like long-tailed ages 3…99 and features `2u − 1 + 0.02·(age − 50)` (f32).
fn dataset(dim: usize) -> (Vec<f32>, Vec<f32>) {
    let ages = streams::ages(N_ROWS);
    let u = uniforms(5, N_ROWS * dim);
    let feats = u
        .iter()
        .enumerate()
        .map(|(j, &u)| (2.0 * u - 1.0 + 0.02 * (ages[j / dim] - 50.0)) as f32)
        .collect();
    (ages.iter().map(|&a| a as f32).collect(), feats)
}

/// The training set as 256-row batches, plus the bin-count checksum fds_torch.py prints.
struct Data {
    batches: Vec<(Tensor, Tensor)>,
}

impl Data {
    fn new(dim: usize) -> Self {
        let (ages, feats) = dataset(dim);
        let batches = (0..N_ROWS)
            .step_by(BATCH)
            .map(|lo| {
                let hi = (lo + BATCH).min(N_ROWS);
                let z =
                    Tensor::from_slice(&feats[lo * dim..hi * dim], (hi - lo, dim), &Device::Cpu)
                        .expect("features");
                let y = Tensor::from_slice(&ages[lo..hi], hi - lo, &Device::Cpu).expect("labels");
                (z, y)
            })
            .collect();
        if dim == DIM {
            let mut counts = [0usize; N_BINS];
            for &a in &ages {
                counts[((a as f64 - BIN_START).floor() as usize).min(N_BINS - 1)] += 1;
            }
            let checksum: usize = counts.iter().enumerate().map(|(i, c)| (i + 1) * c).sum();
            let bits: u64 = feats.iter().map(|x| x.to_bits() as u64).sum();
            eprintln!(
                "data: {N_ROWS} x {dim}, {} non-empty bins of {N_BINS}, counts min {} max {}, \
                 checksum {checksum}, feature bit sum {bits}",
                counts.iter().filter(|&&c| c > 0).count(),
                counts.iter().min().unwrap_or(&0),
                counts.iter().max().unwrap_or(&0),
            );
        }
        Self { batches }
    }

    fn epoch(&self, fds: &mut Fds) {
        for (z, y) in &self.batches {
            fds.accumulate(z, y).expect("accumulate");
        }
    }
}

fn config(dim: usize, covariance: Covariance) -> FdsConfig {
    let mut c = FdsConfig::new(dim);
    c.covariance = covariance;
    c
}

fn samples() -> usize {
    std::env::var("FDS_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn fds(c: &mut Criterion) {
    eprintln!(
        "threads: RAYON_NUM_THREADS={} -> candle uses {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "(unset)".into()),
        dirkit_compute::ops::pool::threads()
    );
    let dev = Device::Cpu;
    let data = Data::new(DIM);
    let (zc, yc) = data.batches[0].clone();
    let full = Covariance::Full(FullCovariance::default());

    let mut g = c.benchmark_group("fds");
    g.sample_size(samples().max(10))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500));

    // Diagonal, D = 2048.
    g.bench_function("accumulate_diag_12000x2048", |b| {
        b.iter_batched(
            || Fds::new(config(DIM, Covariance::Diagonal), &dev, DType::F32).expect("fds"),
            |mut f| {
                data.epoch(&mut f);
                f
            },
            BatchSize::PerIteration,
        )
    });
    let mut diag = Fds::new(config(DIM, Covariance::Diagonal), &dev, DType::F32).expect("fds");
    data.epoch(&mut diag);
    let e = &diag.epoch_stats().bins;
    eprintln!(
        "check: sum of bin means {:.9e}, sum of M2 {:.9e}",
        e.iter().flat_map(|b| &b.mean).sum::<f64>(),
        e.iter().flat_map(|b| &b.m2).sum::<f64>()
    );
    g.bench_function("end_epoch_diag_2048", |b| {
        b.iter_batched(
            || diag.clone(),
            |mut f| {
                f.end_epoch(0).expect("end_epoch");
                f
            },
            BatchSize::PerIteration,
        )
    });
    diag.end_epoch(0).expect("end_epoch");
    g.bench_function("calibrate_diag_256x2048", |b| {
        b.iter(|| black_box(diag.calibrate(&zc, &yc, 1).expect("calibrate")))
    });

    // Full covariance, end of epoch at D = 256. (Setup outside the closures: criterion calls
    // them once per sample.)
    {
        let data = Data::new(DIM_FULL_END_EPOCH);
        let mut f = Fds::new(config(DIM_FULL_END_EPOCH, full), &dev, DType::F32).expect("fds");
        data.epoch(&mut f);
        eprintln!(
            "check (D = {DIM_FULL_END_EPOCH}): sum of co-moments {:.9e}",
            f.epoch_stats()
                .bins
                .iter()
                .flat_map(|b| &b.comoment)
                .sum::<f64>()
        );
        g.bench_function("end_epoch_full_256", |b| {
            b.iter_batched(
                || f.clone(),
                |mut f| {
                    f.end_epoch(0).expect("end_epoch");
                    f
                },
                BatchSize::PerIteration,
            )
        });
    }

    // Full covariance, D = 2048: 97 co-moments of 2048² f64 (3.1 GiB) per epoch, allocated
    // once and cleared in place by `end_epoch` between epochs (outside the timing), as in
    // training; the warm-up epochs touch the memory first.
    {
        let mut cfg = config(DIM, full);
        // `end_epoch` then only clears the epoch statistics.
        cfg.start_update = usize::MAX;
        let mut f = Fds::new(cfg, &dev, DType::F32).expect("fds");
        g.bench_function("accumulate_full_12000x2048", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    f.end_epoch(0).expect("reset");
                    let t = Instant::now();
                    data.epoch(&mut f);
                    // Reading the statistics folds in the rows still waiting per bin.
                    black_box(f.epoch_stats());
                    total += t.elapsed();
                }
                total
            })
        });
    }

    // Full calibration at D = 2048 with maps installed directly (see the module docs).
    {
        let mut means = Fds::new(config(DIM, Covariance::Diagonal), &dev, DType::F32).expect("fds");
        data.epoch(&mut means);
        let bins = &means.epoch_stats().bins;
        let shift: Vec<Vec<f64>> = bins.iter().map(|s| s.mean.clone()).collect();
        let eye = Tensor::eye(DIM, DType::F32, &dev).expect("eye");
        // Bins with one sample pass unchanged, as their all-zero covariance makes them.
        let matrices = bins
            .iter()
            .map(|s| {
                (s.count > 1).then(|| {
                    let noise = Tensor::randn(0f32, 0.01, (DIM, DIM), &dev).expect("noise");
                    (&eye + noise).expect("matrix")
                })
            })
            .collect();
        let mut f = Fds::new(config(DIM, full), &dev, DType::F32).expect("fds");
        f.install_full_transforms_for_bench(0, &shift, &shift, matrices)
            .expect("maps");
        g.bench_function("calibrate_full_256x2048", |b| {
            b.iter(|| black_box(f.calibrate(&zc, &yc, 1).expect("calibrate")))
        });
    }
    g.finish();
}

criterion_group!(benches, fds);
criterion_main!(benches);
