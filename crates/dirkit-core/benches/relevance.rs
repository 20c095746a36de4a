//! φ and SERA on 10 million values (the twin of `crates/dirkit-tabular/benches/twin.py`).
//! Run: `cargo bench -p dirkit-core --bench relevance`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dirkit_core::SplitMix64;
use dirkit_core::relevance::{Relevance, RelevanceConfig, sera_with_phi};

const N: usize = 10_000_000;

fn bench(c: &mut Criterion) {
    let mut g = SplitMix64::new(1);
    // Log-normal targets (high extremes) and noisy predictions.
    let y: Vec<f64> = (0..N).map(|_| (0.6 * g.normal()).exp() * 10.0).collect();
    let p: Vec<f64> = y.iter().map(|v| v + g.normal()).collect();
    let r = Relevance::from_targets(&y[..100_000], &RelevanceConfig::default()).unwrap();
    let phi = r.phi_all(&y);
    let mut group = c.benchmark_group("relevance_10M");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("phi", |b| b.iter(|| r.phi_all(black_box(&y))));
    group.bench_function("sera_given_phi", |b| {
        b.iter(|| sera_with_phi(black_box(&p), black_box(&y), &phi, 0.001).unwrap())
    });
    group.bench_function("control_points_from_targets", |b| {
        b.iter(|| Relevance::from_targets(black_box(&y), &RelevanceConfig::default()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
