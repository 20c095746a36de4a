//! The CPU ops of `dirkit_compute::ops` against the candle ops they replace, forward + backward, f32,
//! on the activation shapes of [`ResNetConfig::cpu_small`](dirkit_compute::models::ResNetConfig) at
//! 32 px and batch 64 (one per stage: 64×16×32×32, 64×32×16×16, 64×64×8×8, 64×128×4×4):
//!
//! - `conv3x3/{candle,dirkit}/SHAPE`: a 3×3 stride-1 padding-1 convolution C → C, gradients of
//!   the input and the weight;
//! - `batch_norm/…`: training-mode batch norm (batch statistics, running-statistics update),
//!   gradients of the input, scale and shift;
//! - `batch_norm_relu/…`: the same followed by ReLU (candle: two ops; dirkit: one fused op);
//! - `relu/…`: ReLU alone;
//! - `linear/{candle,dirkit}/ROWSxIN->OUT`: a fully connected layer with bias (candle: matmul
//!   against the transposed weight plus a broadcast add), gradients of the input, weight and
//!   bias, on the regression-head MLP's hidden layer (256 × 64 → 256) and a ResNet-18 feature
//!   layer (256 × 512 → 512).
//!
//! Each iteration runs the forward and `backward()` from a gradient of ones. Threads: candle's
//! CPU thread pool, sized by `RAYON_NUM_THREADS` (or `CANDLE_NUM_THREADS`):
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench -p dirkit-compute --bench ops
//! RAYON_NUM_THREADS=1 cargo bench -p dirkit-compute --bench ops -- conv3x3   # one group
//! ```

use std::hint::black_box;
use std::time::Duration;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use dirkit_compute::models::batch_norm;
use dirkit_compute::ops::{Activation, batch_norm_t, conv2d, linear, relu};
use dirkit_core::rng::SplitMix64;

/// (batch, channels, side) of each stage's activations.
const SHAPES: [(usize, usize, usize); 4] = [(64, 16, 32), (64, 32, 16), (64, 64, 8), (64, 128, 4)];

/// A seeded uniform [-1, 1) f32 variable.
fn random(dims: &[usize], seed: u64) -> Var {
    let mut rng = SplitMix64::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect();
    Var::from_tensor(&Tensor::from_vec(v, dims, &Device::Cpu).expect("tensor")).expect("var")
}

fn name((n, c, s): (usize, usize, usize)) -> String {
    format!("{n}x{c}x{s}x{s}")
}

/// Benches `f` (a forward whose output is back-propagated from ones) as `group/impl/shape`.
fn bench_fwd_bwd(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    f: impl Fn() -> candle_core::Result<Tensor>,
) {
    g.bench_function(id, |b| {
        b.iter(|| {
            let y = f().expect("forward");
            black_box(y.backward().expect("backward"))
        })
    });
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g
}

fn conv(c: &mut Criterion) {
    let mut g = group(c, "conv3x3");
    for shape @ (n, ch, s) in SHAPES {
        let x = random(&[n, ch, s, s], 1);
        let w = random(&[ch, ch, 3, 3], 2);
        g.throughput(Throughput::Elements(n as u64));
        bench_fwd_bwd(&mut g, &format!("candle/{}", name(shape)), || {
            x.as_tensor().conv2d(w.as_tensor(), 1, 1, 1, 1)
        });
        bench_fwd_bwd(&mut g, &format!("dirkit/{}", name(shape)), || {
            conv2d(x.as_tensor(), w.as_tensor(), 1, 1)
        });
    }
    g.finish();
}

fn norm(c: &mut Criterion) {
    for (group_name, act) in [
        ("batch_norm", Activation::Identity),
        ("batch_norm_relu", Activation::Relu),
    ] {
        let mut g = group(c, group_name);
        for shape @ (n, ch, s) in SHAPES {
            let x = random(&[n, ch, s, s], 3);
            let vm = VarMap::new();
            let bn = batch_norm(ch, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
                .expect("batch norm");
            g.throughput(Throughput::Elements(n as u64));
            bench_fwd_bwd(&mut g, &format!("candle/{}", name(shape)), || {
                let y = bn.forward_t(x.as_tensor(), true)?;
                match act {
                    Activation::Identity => Ok(y),
                    Activation::Relu => y.relu(),
                }
            });
            bench_fwd_bwd(&mut g, &format!("dirkit/{}", name(shape)), || {
                batch_norm_t(&bn, x.as_tensor(), true, act)
            });
        }
        g.finish();
    }
}

fn rectifier(c: &mut Criterion) {
    let mut g = group(c, "relu");
    for shape @ (n, ch, s) in SHAPES {
        let x = random(&[n, ch, s, s], 4);
        g.throughput(Throughput::Elements(n as u64));
        bench_fwd_bwd(&mut g, &format!("candle/{}", name(shape)), || {
            x.as_tensor().relu()
        });
        bench_fwd_bwd(&mut g, &format!("dirkit/{}", name(shape)), || {
            relu(x.as_tensor())
        });
    }
    g.finish();
}

fn fully_connected(c: &mut Criterion) {
    let mut g = group(c, "linear");
    for (rows, inp, out) in [(256, 64, 256), (256, 512, 512)] {
        let x = random(&[rows, inp], 5);
        let w = random(&[out, inp], 6);
        let b = random(&[out], 7);
        let id = format!("{rows}x{inp}->{out}");
        g.throughput(Throughput::Elements(rows as u64));
        bench_fwd_bwd(&mut g, &format!("candle/{id}"), || {
            x.as_tensor()
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())
        });
        bench_fwd_bwd(&mut g, &format!("dirkit/{id}"), || {
            linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()))
        });
    }
    g.finish();
}

criterion_group!(benches, conv, norm, rectifier, fully_connected);
criterion_main!(benches);
