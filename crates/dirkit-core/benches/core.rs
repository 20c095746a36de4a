//! The label-density core on 10 million in-memory labels: counting, fitting LDS and writing
//! the per-sample weights. Run: `cargo bench -p dirkit-core --bench core`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dirkit_core::{Binning, LabelDensity, LdsConfig, OutOfRange};

const N: usize = 10_000_000;

/// Seeded long-tailed ages in [0, 120): dense in the 20s–40s, a thin tail beyond.
pub fn ages(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            (18.0 + 100.0 * u * u * u).floor()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let y = ages(N, 42);
    let bins = Binning::new(0.0, 1.0, 121).unwrap();
    let cfg = LdsConfig::default();
    let mut out = vec![0.0; N];
    let mut g = c.benchmark_group("core_10M_labels");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    // Memory-bandwidth reference: one read of the 80 MB of labels.
    g.bench_function("baseline_sum", |b| {
        b.iter(|| black_box(&y).iter().sum::<f64>())
    });
    g.bench_function("count", |b| {
        b.iter(|| bins.counts(black_box(&y), OutOfRange::Clip).unwrap())
    });
    g.bench_function("fit_lds", |b| {
        b.iter(|| LabelDensity::fit(black_box(&y), bins, OutOfRange::Clip, &cfg).unwrap())
    });
    g.bench_function("fit_lds_and_sample_weights", |b| {
        b.iter(|| {
            let fit = LabelDensity::fit(black_box(&y), bins, OutOfRange::Clip, &cfg).unwrap();
            fit.sample_weights_into(&y, &mut out).unwrap();
            black_box(out[N - 1])
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
