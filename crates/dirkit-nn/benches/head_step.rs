//! Training steps of a regression-head MLP on the CPU, side by side with
//! `benches/head_step_torch.py` (the identical PyTorch model, data and optimiser):
//!
//! features x (256 × 64) → Linear(64, 256) → ReLU → [`RegressionHead`] (Linear(256, 1), the
//! loss) → backward → AdamW (lr 1e-3, weight decay 0.01, decoupled) over every parameter.
//!
//! - `mlp/candle`: the same MLP from candle's own pieces (`candle_nn::Linear`, `Tensor::relu`,
//!   a hand-written L1, `candle_nn::AdamW`), the baseline the kernels replace;
//! - `mlp/dirkit`: [`dirkit_compute::ops::linear`] and [`dirkit_compute::ops::relu`], the head with L1, dirkit's
//!   fused [`Adam`] in AdamW mode;
//! - `loss/<name>`: the dirkit step with each regression loss — L1, MSE, Huber (β 1),
//!   focal-L1 / focal-MSE (sigmoid, β 0.2, γ 1), Balanced MSE BMC / GAI (a fixed 3-component
//!   mixture) / BNI (a fixed 97-bin prior), L1 with LDS weights, L1 with FDS calibration of the
//!   256-d hidden features (diagonal, 97 bins).
//!
//! `head_step_b64/mlp/{candle,dirkit}` time the same two steps at batch 64.
//!
//! Run, with the thread count the PyTorch side uses:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench -p dirkit-nn --bench head_step
//! /work/torch-venv/bin/python crates/dirkit-nn/benches/head_step_torch.py --threads 1
//! ```
//!
//! Whether the default thread count ever loses to one thread (criterion prints each figure's
//! change against the saved one-thread run):
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench -p dirkit-nn --bench head_step -- --save-baseline one
//! cargo bench -p dirkit-nn --bench head_step -- --baseline one
//! ```
//!
//! The bench keeps freed memory in the process ([`dirkit_compute::memory`]), as the examples do.
//!
//! Data and initial weights come from a counter-based splitmix64 stream (as in the FDS bench),
//! so both sides start from the same numbers; each prints the first step's loss per
//! configuration (`HEAD_STEP_CHECK=1` here) to show they compute the same thing.

use std::hint::black_box;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use criterion::{Criterion, criterion_group, criterion_main};
use dirkit_compute::adam::{Adam, AdamParams};
use dirkit_compute::ops;
use dirkit_core::{Binning, LabelDensity, LdsConfig, OutOfRange};
use dirkit_nn::fds::FdsConfig;
use dirkit_nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit_nn::loss::balanced_mse::{
    BalancedMseConfig, BalancedMseVariant, BinPrior, GaussianMixture,
};
use dirkit_nn::loss::elementwise::{FocalActivation, FocalConfig, RegressionLoss};

#[path = "common/streams.rs"]
mod streams;
use streams::{BIN_START, uniforms};

/// Rows of the main batch (the PyTorch twin's); the thread-count comparison also runs 64.
const BATCH: usize = 256;
const D_IN: usize = 64;
const HIDDEN: usize = 256;
const N_BINS: usize = 97;

/// `bound · (2u − 1)` from `stream`, as f32 values of `dims`.
fn uniform_tensor(stream: u64, dims: &[usize], bound: f64) -> Tensor {
    let n = dims.iter().product();
    let v: Vec<f32> = uniforms(stream, n)
        .iter()
        .map(|u| (bound * (2.0 * u - 1.0)) as f32)
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("tensor")
}

/// One batch of `rows`: features `2u − 1` and AgeDB-like long-tailed ages 3…99.
fn batch(rows: usize) -> (Tensor, Tensor) {
    let ages: Vec<f32> = streams::ages(rows).iter().map(|&a| a as f32).collect();
    let y = Tensor::from_vec(ages, rows, &Device::Cpu).expect("ages");
    (uniform_tensor(5, &[rows, D_IN], 1.0), y)
}

/// Sets the MLP's four tensors: PyTorch's default `U(±1/√fan_in)` from fixed streams, the
/// output bias at 40 (near the mean age).
fn init(vm: &VarMap, trunk: &str, head: &str) {
    let data = vm.data().lock().expect("varmap");
    let set = |name: &str, t: Tensor| data[name].set(&t).expect("set");
    let b1 = 1.0 / (D_IN as f64).sqrt();
    let b2 = 1.0 / (HIDDEN as f64).sqrt();
    set(
        &format!("{trunk}.weight"),
        uniform_tensor(10, &[HIDDEN, D_IN], b1),
    );
    set(&format!("{trunk}.bias"), uniform_tensor(11, &[HIDDEN], b1));
    set(
        &format!("{head}.weight"),
        uniform_tensor(12, &[1, HIDDEN], b2),
    );
    set(
        &format!("{head}.bias"),
        Tensor::new(&[40f32], &Device::Cpu).expect("bias"),
    );
}

/// The hidden layer's parameters in a dirkit-kernel linear layer.
struct Trunk {
    weight: Tensor,
    bias: Tensor,
}

impl Trunk {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = ops::linear(x, &self.weight, Some(&self.bias)).expect("linear");
        ops::relu(&h).expect("relu")
    }
}

/// The dirkit step: hidden layer, head with `loss`, AdamW.
struct DirkitStep {
    trunk: Trunk,
    head: RegressionHead,
    opt: Adam,
    x: Tensor,
    y: Tensor,
    epoch: usize,
}

/// What a `loss/…` configuration adds to the head.
enum Extra {
    None,
    Lds,
    Fds,
}

impl DirkitStep {
    fn new(loss: HeadLoss, extra: Extra, rows: usize) -> Self {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let w = vb
            .pp("trunk")
            .get_with_hints((HIDDEN, D_IN), "weight", candle_nn::Init::Const(0.0))
            .expect("weight");
        let b = vb
            .pp("trunk")
            .get_with_hints(HIDDEN, "bias", candle_nn::Init::Const(0.0))
            .expect("bias");
        let fds = matches!(extra, Extra::Fds).then(|| FdsConfig::reference(HIDDEN, 100, 3));
        let config = RegressionHeadConfig {
            fds,
            loss,
            ..RegressionHeadConfig::new(HIDDEN)
        };
        let mut head = RegressionHead::new(config, vb.pp("head")).expect("head");
        init(&vm, "trunk", "head.linear");
        let (x, y) = batch(rows);
        let ages: Vec<f64> = y
            .to_dtype(DType::F64)
            .and_then(|t| t.to_vec1())
            .expect("ages");
        if matches!(extra, Extra::Lds) {
            let binning = Binning::new(BIN_START, 1.0, N_BINS).expect("binning");
            let density =
                LabelDensity::fit(&ages, binning, OutOfRange::Clip, &LdsConfig::default())
                    .expect("density");
            head = head.with_label_density(density).expect("lds");
        }
        let trunk = Trunk { weight: w, bias: b };
        let mut epoch = 0;
        if matches!(extra, Extra::Fds) {
            // One statistics epoch so that the step calibrates (epoch 1 ≥ start_smooth).
            let h = trunk.forward(&x).detach();
            head.collect_fds_stats(&h, &y).expect("stats");
            head.end_epoch(0).expect("end epoch");
            epoch = 1;
            let z = head
                .fds()
                .expect("fds")
                .calibrate(&h, &y, epoch)
                .expect("calibrate");
            let moved = (z - &h)
                .and_then(|d| d.abs())
                .and_then(|d| d.max_all())
                .and_then(|d| d.to_scalar::<f32>())
                .expect("diff");
            assert!(moved > 0.0, "FDS must calibrate in the timed step");
        }
        let mut named: Vec<(String, Var)> = vm
            .data()
            .lock()
            .expect("varmap")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(s) = head.noise_sigma() {
            named.push(("noise_sigma".into(), s.clone()));
        }
        let opt = Adam::new(named, AdamParams::adamw()).expect("adam");
        Self {
            trunk,
            head,
            opt,
            x,
            y,
            epoch,
        }
    }

    fn step(&mut self) -> Tensor {
        let h = self.trunk.forward(&self.x);
        let out = self
            .head
            .forward_train(&h, &self.y, self.epoch)
            .expect("forward");
        self.opt.backward_step(&out.loss).expect("step");
        out.loss
    }
}

/// The same MLP from candle's own layers and optimiser.
struct CandleStep {
    l1: Linear,
    l2: Linear,
    opt: AdamW,
    x: Tensor,
    y: Tensor,
}

impl CandleStep {
    fn new(rows: usize) -> Self {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let l1 = candle_nn::linear(D_IN, HIDDEN, vb.pp("trunk")).expect("l1");
        let l2 = candle_nn::linear(HIDDEN, 1, vb.pp("head")).expect("l2");
        init(&vm, "trunk", "head");
        let opt = AdamW::new(vm.all_vars(), ParamsAdamW::default()).expect("adamw");
        let (x, y) = batch(rows);
        Self { l1, l2, opt, x, y }
    }

    fn step(&mut self) -> Tensor {
        let h = self.l1.forward(&self.x).and_then(|h| h.relu()).expect("l1");
        let loss = self
            .l2
            .forward(&h)
            .and_then(|p| p.flatten_all())
            .and_then(|p| p - &self.y)
            .and_then(|d| d.abs())
            .and_then(|d| d.mean_all())
            .expect("loss");
        self.opt.backward_step(&loss).expect("step");
        loss
    }
}

/// The head losses timed, by name (shared with head_step_torch.py).
fn losses() -> Vec<(&'static str, HeadLoss, Extra)> {
    let focal = |activation| FocalConfig {
        activation,
        ..FocalConfig::default()
    };
    let centres: Vec<f64> = (0..N_BINS).map(|b| BIN_START + b as f64).collect();
    let probs: Vec<f64> = centres
        .iter()
        .map(|c| (-(c - 38.0) * (c - 38.0) / (2.0 * 400.0)).exp() + 0.01)
        .collect();
    let gmm = GaussianMixture::new(&[0.5, 0.3, 0.2], &[30.0, 45.0, 70.0], &[64.0, 100.0, 225.0])
        .expect("gmm");
    let bni = BinPrior::new(&centres, &probs).expect("prior");
    let bmse = |variant| {
        HeadLoss::BalancedMse(BalancedMseConfig {
            variant,
            ..Default::default()
        })
    };
    vec![
        ("l1", HeadLoss::Pointwise(RegressionLoss::L1), Extra::None),
        ("mse", HeadLoss::Pointwise(RegressionLoss::Mse), Extra::None),
        (
            "huber",
            HeadLoss::Pointwise(RegressionLoss::Huber { beta: 1.0 }),
            Extra::None,
        ),
        (
            "focal-l1",
            HeadLoss::Pointwise(RegressionLoss::FocalL1(focal(FocalActivation::Sigmoid))),
            Extra::None,
        ),
        (
            "focal-mse",
            HeadLoss::Pointwise(RegressionLoss::FocalMse(focal(FocalActivation::Sigmoid))),
            Extra::None,
        ),
        ("bmc", bmse(BalancedMseVariant::Bmc), Extra::None),
        ("gai", bmse(BalancedMseVariant::Gai(gmm)), Extra::None),
        ("bni", bmse(BalancedMseVariant::Bni(bni)), Extra::None),
        (
            "l1+lds",
            HeadLoss::Pointwise(RegressionLoss::L1),
            Extra::Lds,
        ),
        (
            "l1+fds",
            HeadLoss::Pointwise(RegressionLoss::L1),
            Extra::Fds,
        ),
    ]
}

fn bench(c: &mut Criterion) {
    // As the examples do: without it the batch-256 step spends half its time in page faults.
    dirkit_compute::memory::keep_freed_memory();
    let check = std::env::var_os("HEAD_STEP_CHECK").is_some();
    let first = |t: Tensor| t.to_scalar::<f32>().expect("scalar");
    if check {
        println!(
            "first-step loss: mlp/candle {:.6}",
            first(CandleStep::new(BATCH).step())
        );
        for (name, loss, extra) in losses() {
            println!(
                "first-step loss: {name} {:.6}",
                first(DirkitStep::new(loss, extra, BATCH).step())
            );
        }
    }
    let mut g = c.benchmark_group("head_step_b64");
    let mut candle = CandleStep::new(64);
    g.bench_function("mlp/candle", |b| b.iter(|| black_box(candle.step())));
    let mut dirkit = DirkitStep::new(HeadLoss::Pointwise(RegressionLoss::L1), Extra::None, 64);
    g.bench_function("mlp/dirkit", |b| b.iter(|| black_box(dirkit.step())));
    g.finish();
    let mut g = c.benchmark_group("head_step_b256");
    let mut candle = CandleStep::new(BATCH);
    g.bench_function("mlp/candle", |b| b.iter(|| black_box(candle.step())));
    let mut dirkit = DirkitStep::new(HeadLoss::Pointwise(RegressionLoss::L1), Extra::None, BATCH);
    g.bench_function("mlp/dirkit", |b| b.iter(|| black_box(dirkit.step())));
    for (name, loss, extra) in losses() {
        let mut s = DirkitStep::new(loss, extra, BATCH);
        g.bench_function(format!("loss/{name}"), |b| b.iter(|| black_box(s.step())));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
