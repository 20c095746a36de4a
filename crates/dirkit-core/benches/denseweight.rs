//! DenseWeight fits and training-set weights: integer ages (few distinct values, summed term by
//! term) and continuous labels (Hermite expansions above 2,048 distinct values).
//! Run: `cargo bench -p dirkit-core --bench denseweight`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dirkit_core::{DenseWeight, DenseWeightConfig, SplitMix64};

/// Seeded gamma(2, 10)-distributed labels (sum of two exponentials): continuous, right-skewed.
fn gamma2(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| -10.0 * ((1.0 - rng.uniform()) * (1.0 - rng.uniform())).ln())
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("denseweight");
    g.sample_size(10);
    for n in [10_000usize, 100_000, 1_000_000] {
        let y = gamma2(n, 7);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("fit_and_weights_continuous_{n}"), |b| {
            b.iter(|| {
                let dw = DenseWeight::fit(black_box(&y), DenseWeightConfig::default()).unwrap();
                black_box(dw.weights(&y))
            })
        });
    }
    let ages: Vec<f64> = gamma2(10_000_000, 8).iter().map(|v| v.round()).collect();
    g.throughput(Throughput::Elements(ages.len() as u64));
    g.bench_function("fit_and_weights_integer_10M", |b| {
        b.iter(|| {
            let dw = DenseWeight::fit(black_box(&ages), DenseWeightConfig::default()).unwrap();
            black_box(dw.weights(&ages))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
