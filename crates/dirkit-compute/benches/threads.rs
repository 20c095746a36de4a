//! Whether threads pay for small work: matrix products from 16×16 to 2048×2048 (f32, CPU), by
//! candle's `matmul` (the `gemm` crate on rayon's pool, every product split) and by
//! [`dirkit_compute::ops::matmul`] (one thread below `PRODUCT_MIN_WORK` multiply-adds, the
//! kernels' pool above it), plus the 64×13 by 13×64 product of a 13-feature tabular MLP.
//!
//! - `matmul/{candle,dirkit}/MxK*KxN`: `a · b` alone;
//! - `linear/{candle,dirkit}/ROWSxIN->OUT`: a fully connected layer forward and backward
//!   (`candle_nn::Linear` against [`dirkit_compute::nn::Linear`]) on MLP shapes.
//!
//! Freed memory is kept in the process ([`dirkit_compute::memory`]), as in the examples. The
//! thread count is the process's (`RAYON_NUM_THREADS` sizes rayon's pool and, unless
//! `CANDLE_NUM_THREADS` is set, candle's). Compare one thread with the default by saving the
//! one-thread run as criterion's baseline; the second run prints each figure's change against it:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench -p dirkit-compute --bench threads -- --save-baseline one
//! cargo bench -p dirkit-compute --bench threads -- --baseline one
//! ```

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, criterion_group, criterion_main};
use dirkit_compute::nn;
use dirkit_compute::ops::matmul;
use dirkit_core::rng::SplitMix64;

/// A seeded uniform [-1, 1) f32 tensor.
fn random(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("tensor")
}

/// (m, k, n) of the products timed.
const PRODUCTS: [(usize, usize, usize); 9] = [
    (64, 13, 64),
    (16, 16, 16),
    (32, 32, 32),
    (64, 64, 64),
    (128, 128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
];

/// (rows, in, out) of the linear layers timed: a 13-feature tabular MLP's layers at batch 64,
/// the head-step MLP's hidden layer at batch 64 and 256, a ResNet-18 feature layer.
const LAYERS: [(usize, usize, usize); 5] = [
    (64, 13, 64),
    (64, 64, 256),
    (256, 64, 256),
    (256, 256, 256),
    (256, 512, 512),
];

fn products(c: &mut Criterion) {
    dirkit_compute::memory::keep_freed_memory();
    let mut g = c.benchmark_group("matmul");
    for (m, k, n) in PRODUCTS {
        let large = m * k * n >= 1 << 27;
        g.sample_size(if large { 10 } else { 50 });
        g.measurement_time(Duration::from_secs(if large { 4 } else { 2 }));
        let a = random(&[m, k], 1);
        let b = random(&[k, n], 2);
        let id = format!("{m}x{k}*{k}x{n}");
        g.bench_function(format!("candle/{id}"), |bench| {
            bench.iter(|| black_box(a.matmul(&b).expect("matmul")))
        });
        g.bench_function(format!("dirkit/{id}"), |bench| {
            bench.iter(|| black_box(matmul(&a, &b).expect("matmul")))
        });
    }
    g.finish();
}

fn layers(c: &mut Criterion) {
    let mut g = c.benchmark_group("linear");
    g.measurement_time(Duration::from_secs(2));
    for (rows, d_in, d_out) in LAYERS {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, candle_core::DType::F32, &Device::Cpu);
        let candle = candle_nn::linear(d_in, d_out, vb.pp("layer")).expect("layer");
        let dirkit = nn::Linear::from(candle.clone());
        let x = Var::from_tensor(&random(&[rows, d_in], 3)).expect("x");
        let id = format!("{rows}x{d_in}->{d_out}");
        let step = |layer: &dyn Module| {
            let y = layer.forward(x.as_tensor()).expect("forward");
            black_box(y.sum_all().and_then(|s| s.backward()).expect("backward"))
        };
        g.bench_function(format!("candle/{id}"), |bench| bench.iter(|| step(&candle)));
        g.bench_function(format!("dirkit/{id}"), |bench| bench.iter(|| step(&dirkit)));
    }
    g.finish();
}

criterion_group!(benches, products, layers);
criterion_main!(benches);
