//! RankSim forward + backward on a batch of 256 × 512 features (f32, CPU) whose labels take about
//! 100 distinct values: the per-step cost the regulariser adds to training.
//! Run: `cargo bench -p dirkit-nn --bench ranksim`.

use std::hint::black_box;

use candle_core::{Device, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};
use dirkit_nn::loss::ranksim::{RankSim, RankSimConfig};

const B: usize = 256;
const D: usize = 512;
/// Integer labels drawn from 0..115: about 100 distinct values in a batch of 256.
const LABEL_RANGE: f64 = 115.0;

/// Seeded features in [-1, 1) and integer labels.
fn batch(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let features = (0..B * D).map(|_| (2.0 * next() - 1.0) as f32).collect();
    let labels = (0..B)
        .map(|_| (LABEL_RANGE * next()).floor() as f32)
        .collect();
    (features, labels)
}

fn ranksim(c: &mut Criterion) {
    let dev = Device::Cpu;
    let (features, labels) = batch(0x5eed);
    let mut distinct = labels.clone();
    distinct.sort_by(f32::total_cmp);
    distinct.dedup();
    eprintln!(
        "ranksim bench: {B} x {D} f32, {} distinct labels",
        distinct.len()
    );
    let x = Var::from_tensor(&Tensor::from_vec(features, (B, D), &dev).expect("features"))
        .expect("var");
    let y = Tensor::from_vec(labels, B, &dev).expect("labels");
    let mut rs = RankSim::new(RankSimConfig::default()).expect("default config");

    c.bench_function("ranksim_forward_256x512", |b| {
        b.iter(|| {
            let loss = rs.loss(x.as_tensor(), &y).expect("loss");
            black_box(loss.to_scalar::<f32>().expect("scalar"))
        })
    });
    c.bench_function("ranksim_forward_backward_256x512", |b| {
        b.iter(|| {
            let loss = rs.loss(x.as_tensor(), &y).expect("loss");
            let grads = loss.backward().expect("backward");
            black_box(grads.get(x.as_tensor()).is_some())
        })
    });
}

criterion_group!(benches, ranksim);
criterion_main!(benches);
