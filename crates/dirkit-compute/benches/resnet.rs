//! ResNet training-step throughput on the CPU: one forward in training mode (batch statistics),
//! an L1 loss on a linear head, the backward pass and an AdamW step (lr 1e-3, weight decay
//! 0.01, PyTorch's `AdamW` defaults) over [`trainable_vars`], in images per second:
//!
//! - `cpu_small_32px_b64`: [`ResNetConfig::cpu_small`] (width 16, small stem), 64 × 3 × 32 × 32;
//! - `resnet18_64px_b16`: [`ResNetConfig::resnet18`] (ImageNet stem), 16 × 3 × 64 × 64;
//!
//! each with dirkit's fused [`Adam`] in AdamW mode, and with `/candle_adamw` candle's `AdamW`
//! (a dozen tensor-wide ops per variable) for comparison;
//! - `maxpool_*`: the stem pool alone (3×3, stride 2, padding 1) forward + backward on a
//!   ResNet-18 stem output at 64 px (16 × 64 × 32 × 32), CPU op versus the device-generic
//!   composition.
//!
//! Threads: candle's CPU kernels use `RAYON_NUM_THREADS` (default: the physical cores). The
//! reference numbers are single-threaded:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench -p dirkit-compute --bench resnet
//! ```
//!
//! `RESNET_BENCH_SAMPLES` sets criterion's sample count (default and minimum 10).

use std::hint::black_box;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Linear, Module, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use dirkit_compute::adam::{Adam, AdamParams};
use dirkit_compute::models::{
    ResNet, ResNetConfig, init_resnet, max_pool2d, max_pool2d_shifted, trainable_vars,
};
use dirkit_core::rng::SplitMix64;

/// A seeded uniform [-1, 1) f32 tensor.
fn random(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("tensor")
}

/// The optimiser a step ends with.
enum Opt {
    Dirkit(Adam),
    Candle(AdamW),
}

/// A network, its head and optimiser, and one fixed batch.
struct Setup {
    net: ResNet,
    head: Linear,
    opt: Opt,
    x: Tensor,
    y: Tensor,
}

impl Setup {
    fn new(config: ResNetConfig, batch: usize, size: usize, candle_adamw: bool) -> Self {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let net = ResNet::new(config, vb.pp("backbone")).expect("resnet");
        let head = candle_nn::linear(net.feature_dim(), 1, vb.pp("head")).expect("head");
        dirkit_compute::train::seeded_init(&vm, 0).expect("init");
        init_resnet(&vm, 0).expect("init");
        let opt = if candle_adamw {
            Opt::Candle(AdamW::new(trainable_vars(&vm), ParamsAdamW::default()).expect("adamw"))
        } else {
            let keep =
                |name: &str| !name.ends_with("running_mean") && !name.ends_with("running_var");
            Opt::Dirkit(Adam::from_varmap(&vm, keep, AdamParams::adamw()).expect("adam"))
        };
        Self {
            net,
            head,
            opt,
            x: random(&[batch, 3, size, size], 1),
            y: random(&[batch, 1], 2),
        }
    }

    fn step(&mut self) -> f32 {
        let features = self.net.forward_t(&self.x, true).expect("forward");
        let pred = self.head.forward(&features).expect("head");
        let loss = (pred - &self.y)
            .and_then(|d| d.abs())
            .and_then(|d| d.mean_all())
            .expect("loss");
        match &mut self.opt {
            Opt::Dirkit(o) => o.backward_step(&loss).expect("step"),
            Opt::Candle(o) => o.backward_step(&loss).expect("step"),
        }
        loss.to_scalar().expect("scalar")
    }
}

fn samples() -> usize {
    std::env::var("RESNET_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn resnet(c: &mut Criterion) {
    eprintln!(
        "threads: RAYON_NUM_THREADS={} -> candle uses {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "(unset)".into()),
        dirkit_compute::ops::pool::threads()
    );
    let mut g = c.benchmark_group("resnet");
    g.sample_size(samples().max(10))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500));
    let cases = [
        ("cpu_small_32px_b64", ResNetConfig::cpu_small(), 64, 32),
        ("resnet18_64px_b16", ResNetConfig::resnet18(), 16, 64),
    ];
    for (name, config, batch, size) in cases {
        g.throughput(Throughput::Elements(batch as u64));
        for candle_adamw in [false, true] {
            let mut setup = Setup::new(config, batch, size, candle_adamw);
            let id = match candle_adamw {
                true => format!("{name}/candle_adamw"),
                false => name.to_string(),
            };
            g.bench_function(id, |b| b.iter(|| black_box(setup.step())));
        }
    }

    let x = candle_core::Var::from_tensor(&random(&[16, 64, 32, 32], 3)).expect("var");
    type Pool = fn(&Tensor, usize, usize, usize) -> candle_core::Result<Tensor>;
    let pools: [(&str, Pool); 2] = [
        ("maxpool_cpu_op_16x64x32x32", max_pool2d),
        ("maxpool_shifted_16x64x32x32", max_pool2d_shifted),
    ];
    g.throughput(Throughput::Elements(16));
    for (name, pool) in pools {
        g.bench_function(name, |b| {
            b.iter(|| {
                let y = pool(x.as_tensor(), 3, 2, 1).expect("pool");
                black_box(y.sum_all().and_then(|s| s.backward()).expect("backward"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, resnet);
criterion_main!(benches);
