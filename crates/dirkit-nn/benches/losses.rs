//! Forward + backward of each regression loss on a batch of 256 (f32, CPU): the per-step cost a
//! loss adds to training. Run: `cargo bench -p dirkit-nn --bench losses`.

use std::hint::black_box;

use candle_core::{DType, Device, Result, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};
use dirkit_nn::loss::balanced_mse::{
    BalancedMse, BalancedMseConfig, BalancedMseVariant, BinPrior, GaussianMixture,
};
use dirkit_nn::loss::elementwise::{FocalActivation, FocalConfig, RegressionLoss};
use dirkit_nn::loss::ghm::{GhmR, GhmRConfig};

const B: usize = 256;

/// Seeded long-tailed labels in [0, 100) and predictions within a few units of them.
fn batch(seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut y = Vec::with_capacity(B);
    let mut p = Vec::with_capacity(B);
    for _ in 0..B {
        let u = next();
        let label = 18.0 + 80.0 * u * u * u;
        y.push(label as f32);
        p.push((label + 10.0 * (next() - 0.5)) as f32);
    }
    (p, y)
}

fn step(pred: &Var, mut loss: impl FnMut(&Tensor) -> Result<Tensor>) -> f32 {
    let l = loss(pred.as_tensor()).expect("loss");
    let grads = l.backward().expect("backward");
    black_box(grads.get(pred.as_tensor()).is_some());
    l.to_scalar::<f32>().expect("scalar")
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let (p, y) = batch(7);
    let pred = Var::from_slice(&p, B, &dev).expect("pred");
    let target = Tensor::from_slice(&y, B, &dev).expect("target");
    let weights = Tensor::from_vec(
        (0..B)
            .map(|i| 0.5 + (i % 7) as f32 / 4.0)
            .collect::<Vec<_>>(),
        B,
        &dev,
    )
    .expect("weights");

    let mut g = c.benchmark_group("loss_fwd_bwd_b256_f32");
    let elementwise = [
        ("mse", RegressionLoss::Mse),
        ("l1", RegressionLoss::L1),
        ("huber", RegressionLoss::Huber { beta: 1.0 }),
        (
            "focal_mse_sigmoid",
            RegressionLoss::FocalMse(FocalConfig::default()),
        ),
        (
            "focal_l1_tanh",
            RegressionLoss::FocalL1(FocalConfig {
                activation: FocalActivation::Tanh,
                ..FocalConfig::default()
            }),
        ),
    ];
    for (name, loss) in elementwise {
        g.bench_function(name, |b| {
            b.iter(|| step(&pred, |x| loss.compute(x, &target, None)))
        });
        g.bench_function(format!("{name}_weighted"), |b| {
            b.iter(|| step(&pred, |x| loss.compute(x, &target, Some(&weights))))
        });
    }

    // Priors of the size a real run has: a 5-component mixture and 100 one-unit bins.
    let mixture = GaussianMixture::new(
        &[0.3, 0.3, 0.2, 0.15, 0.05],
        &[25.0, 35.0, 45.0, 60.0, 85.0],
        &[9.0, 16.0, 25.0, 64.0, 100.0],
    )
    .expect("mixture");
    let centres: Vec<f64> = (0..100).map(|b| b as f64).collect();
    let counts: Vec<u64> = (0..100u64).map(|b| 1 + (b * 37) % 53).collect();
    let prior = BinPrior::from_counts(&centres, &counts).expect("bins");
    for (name, variant) in [
        ("bmc", BalancedMseVariant::Bmc),
        ("gai_k5", BalancedMseVariant::Gai(mixture)),
        ("bni_100bins", BalancedMseVariant::Bni(prior)),
    ] {
        let cfg = BalancedMseConfig {
            variant,
            ..BalancedMseConfig::default()
        };
        let loss = BalancedMse::new(cfg, &dev, DType::F32).expect("balanced mse");
        g.bench_function(format!("balanced_mse_{name}"), |b| {
            b.iter(|| step(&pred, |x| loss.loss(x, &target)))
        });
    }

    for momentum in [0.0, 0.75] {
        let mut ghm = GhmR::new(GhmRConfig {
            momentum,
            ..GhmRConfig::default()
        })
        .expect("ghm");
        g.bench_function(format!("ghm_r_momentum{momentum}"), |b| {
            b.iter(|| step(&pred, |x| ghm.loss(x, &target)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
