//! SMOTER and SMOGN on 2k, 20k and 200k rows × 10 numeric columns (9 features and a
//! log-normal target, as `make_table.py`), φ from the box plot, balance strategy, k = 5.
//! The Python twin is `twin.py`. Run: `cargo bench -p dirkit-tabular --bench tabular`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dirkit_core::SplitMix64;
use dirkit_core::relevance::{Relevance, RelevanceConfig};
use dirkit_tabular::{Column, Frame, Method, ResampleConfig, resample};

fn table(rows: usize, cols: usize, seed: u64) -> Frame {
    let mut g = SplitMix64::new(seed);
    let w: Vec<f64> = (0..cols - 1)
        .map(|_| g.normal() / ((cols - 1) as f64).sqrt())
        .collect();
    let mut columns: Vec<Vec<f64>> = vec![Vec::with_capacity(rows); cols];
    for _ in 0..rows {
        let mut s = 0.0;
        for (c, wc) in w.iter().enumerate() {
            let x = g.normal();
            s += x * wc;
            columns[c].push(x);
        }
        columns[cols - 1].push((0.6 * s + 0.4 * g.normal()).exp() * 10.0);
    }
    Frame {
        names: (0..cols - 1)
            .map(|i| format!("x{i}"))
            .chain(["y".into()])
            .collect(),
        columns: columns.into_iter().map(Column::Numeric).collect(),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_10_columns");
    group.sample_size(10);
    for rows in [2_000usize, 20_000, 200_000] {
        let f = table(rows, 10, 1);
        let y = f.columns[9].numbers().unwrap();
        let phi = Relevance::from_targets(y, &RelevanceConfig::default()).unwrap();
        for method in [Method::Smoter, Method::Smogn] {
            let cfg = ResampleConfig::new(method);
            group.bench_function(format!("{}_{rows}", method.name()), |b| {
                b.iter(|| resample(black_box(&f), 9, &phi, &cfg).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
