//! DIR in a few lines on any Candle backbone: an MLP on a built-in synthetic long-tailed 1-D
//! regression task, trained five ways — vanilla, LDS, FDS, LDS+FDS, Balanced MSE — and
//! evaluated by shot (dirkit-core metrics).
//!
//! The task: targets are integer "ages" drawn from the AgeDB-DIR training histogram
//! (datasets/agedb-dir: dense 20–80, a thin tail on both sides); inputs are 8 noisy sinusoids
//! of the target. Test targets are balanced, 20 per age 0–100, so the tail counts as much as
//! the bulk, as in the DIR benchmarks.
//!
//! ```sh
//! cargo run --release --example regression_head                 # CPU, about half a minute
//! cargo run --release --example regression_head -- --epochs 40 --seed 3 --device cpu
//! ```

use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use dirkit::nn::fds::FdsConfig;
use dirkit::nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit::nn::loss::balanced_mse::BalancedMseConfig;
use dirkit::nn::loss::elementwise::RegressionLoss;
use dirkit::nn::train::{fill, seeded_init};
use dirkit::rng::SplitMix64;
use dirkit::{Binning, LabelDensity, LdsConfig, OutOfRange, RegressionReport, ShotThresholds};

const AGEDB_TRAIN: &str = include_str!("../datasets/agedb-dir/train_age_counts.csv");
const INPUTS: usize = 8;
const HIDDEN: usize = 64;

struct Args {
    epochs: usize,
    seed: u64,
    device: Device,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        epochs: 25,
        seed: 0,
        device: Device::cuda_if_available(0).map_err(|e| e.to_string())?,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => a.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--device" => {
                a.device = match value()?.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => Device::new_cuda(0).map_err(|e| format!("--device cuda: {e}"))?,
                    other => return Err(format!("--device {other}: expected cpu or cuda")),
                }
            }
            other => {
                return Err(format!(
                    "unknown argument {other} (--epochs N, --seed S, --device cpu|cuda)"
                ));
            }
        }
    }
    Ok(a)
}

/// The synthetic data set, deterministic from a seed.
struct Task {
    x_train: Vec<f32>,
    y_train: Vec<f64>,
    x_test: Vec<f32>,
    y_test: Vec<f64>,
}

fn make_task(seed: u64) -> Task {
    let counts: Vec<f64> = AGEDB_TRAIN
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(',').and_then(|(_, c)| c.trim().parse().ok()))
        .collect();
    let total: f64 = counts.iter().sum();
    let mut rng = SplitMix64::new(seed);
    let phases: Vec<f64> = (0..INPUTS)
        .map(|_| rng.uniform() * std::f64::consts::TAU)
        .collect();
    let embed = |y: f64, rng: &mut SplitMix64, out: &mut Vec<f32>| {
        let t = y / 100.0;
        for (j, p) in phases.iter().enumerate() {
            let freq = 1.5 * (j + 1) as f64;
            out.push(((freq * t * std::f64::consts::PI + p).sin() + 0.1 * rng.normal()) as f32);
        }
    };
    let (mut x_train, mut y_train) = (Vec::new(), Vec::new());
    for _ in 0..6000 {
        // Inverse-CDF draw from the AgeDB-DIR training histogram.
        let u = rng.uniform() * total;
        let mut acc = 0.0;
        let age = counts
            .iter()
            .position(|c| {
                acc += c;
                acc > u
            })
            .unwrap_or(counts.len() - 1);
        y_train.push(age as f64);
        embed(age as f64, &mut rng, &mut x_train);
    }
    let (mut x_test, mut y_test) = (Vec::new(), Vec::new());
    for age in 0..=100 {
        for _ in 0..20 {
            y_test.push(age as f64);
            embed(age as f64, &mut rng, &mut x_test);
        }
    }
    Task {
        x_train,
        y_train,
        x_test,
        y_test,
    }
}

/// Two ReLU layers: the "backbone" whose features the head sees.
struct Mlp {
    l1: Linear,
    l2: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.l2.forward(&self.l1.forward(x)?.relu()?)?.relu()
    }
}

#[derive(Clone, Copy)]
enum Method {
    Vanilla,
    Lds,
    Fds,
    LdsFds,
    BalancedMse,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Vanilla => "vanilla (L1)",
            Method::Lds => "LDS",
            Method::Fds => "FDS",
            Method::LdsFds => "LDS + FDS",
            Method::BalancedMse => "Balanced MSE (BMC)",
        }
    }
}

fn train_and_eval(
    method: Method,
    task: &Task,
    args: &Args,
    binning: Binning,
) -> candle_core::Result<RegressionReport> {
    let dev = &args.device;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
    let mlp = Mlp {
        l1: candle_nn::linear(INPUTS, HIDDEN, vb.pp("mlp.l1"))?,
        l2: candle_nn::linear(HIDDEN, HIDDEN, vb.pp("mlp.l2"))?,
    };
    let use_fds = matches!(method, Method::Fds | Method::LdsFds);
    let mut fds = FdsConfig::reference(HIDDEN, binning.n_bins, 0);
    fds.binning = binning;
    let config = RegressionHeadConfig {
        fds: use_fds.then_some(fds),
        loss: match method {
            Method::BalancedMse => HeadLoss::BalancedMse(BalancedMseConfig::default()),
            _ => HeadLoss::Pointwise(RegressionLoss::L1),
        },
        ..RegressionHeadConfig::new(HIDDEN)
    };
    let mut head = RegressionHead::new(config, vb.pp("head"))?;
    if matches!(method, Method::Lds | Method::LdsFds) {
        let lds = LabelDensity::fit(
            &task.y_train,
            binning,
            OutOfRange::Clip,
            &LdsConfig::default(),
        )
        .map_err(candle_core::Error::wrap)?;
        head = head.with_label_density(lds)?;
    }
    seeded_init(&varmap, args.seed)?;
    let mean = task.y_train.iter().sum::<f64>() / task.y_train.len() as f64;
    fill(&varmap, "head.linear.bias", mean)?;

    let params = ParamsAdamW {
        lr: 2e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let mut sigma_opt = match head.noise_sigma() {
        Some(s) => Some(AdamW::new(
            vec![s.clone()],
            ParamsAdamW {
                lr: 1e-2,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?),
        None => None,
    };
    let n = task.y_train.len();
    let x_all = Tensor::from_slice(&task.x_train, (n, INPUTS), dev)?;
    let y_all = Tensor::from_vec(
        task.y_train.iter().map(|&y| y as f32).collect::<Vec<_>>(),
        n,
        dev,
    )?;
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = SplitMix64::new(args.seed ^ 0x5eed);
    for epoch in 0..args.epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(128) {
            let idx = Tensor::from_slice(chunk, chunk.len(), dev)?;
            let (x, y) = (x_all.index_select(&idx, 0)?, y_all.index_select(&idx, 0)?);
            let step = head.forward_train(&mlp.forward(&x)?, &y, epoch)?;
            let grads = step.loss.backward()?;
            opt.step(&grads)?;
            if let Some(o) = &mut sigma_opt {
                o.step(&grads)?;
            }
        }
        if use_fds {
            // The reference's second pass: uncalibrated features of the whole training set.
            for chunk in (0..n).step_by(1024) {
                let len = 1024.min(n - chunk);
                let z = mlp.forward(&x_all.narrow(0, chunk, len)?)?.detach();
                head.collect_fds_stats(&z, &y_all.narrow(0, chunk, len)?)?;
            }
            head.end_epoch(epoch)?;
        }
    }
    let m = task.y_test.len();
    let x_test = Tensor::from_slice(&task.x_test, (m, INPUTS), dev)?;
    let pred: Vec<f32> = head.forward(&mlp.forward(&x_test)?)?.to_vec1()?;
    let pred: Vec<f64> = pred.into_iter().map(f64::from).collect();
    let (counts, _) = binning
        .counts(&task.y_train, OutOfRange::Clip)
        .map_err(candle_core::Error::wrap)?;
    RegressionReport::compute(
        &pred,
        &task.y_test,
        &binning,
        &counts,
        ShotThresholds::default(),
        OutOfRange::Clip,
    )
    .map_err(candle_core::Error::wrap)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("regression_head: error: {e}");
            std::process::exit(2);
        }
    };
    let task = make_task(args.seed);
    let binning = Binning::new(0.0, 1.0, 121).expect("valid AgeDB binning");
    let (counts, _) = binning
        .counts(&task.y_train, OutOfRange::Clip)
        .expect("finite labels");
    let shots = ShotThresholds::default().shots(&counts);
    let test_in = |s| {
        task.y_test
            .iter()
            .filter(|&&y| shots[y as usize] == s)
            .count()
    };
    println!(
        "synthetic long-tailed regression: {} train (AgeDB-DIR age histogram), {} balanced test \
         (many {} / medium {} / few {}), {} epochs, seed {}, device {:?}\n",
        task.y_train.len(),
        task.y_test.len(),
        test_in(dirkit::Shot::Many),
        test_in(dirkit::Shot::Medium),
        test_in(dirkit::Shot::Few),
        args.epochs,
        args.seed,
        args.device
    );
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "method", "MAE all", "many", "medium", "few", "G-mean", "time"
    );
    let fmt = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
    for method in [
        Method::Vanilla,
        Method::Lds,
        Method::Fds,
        Method::LdsFds,
        Method::BalancedMse,
    ] {
        let t = Instant::now();
        match train_and_eval(method, &task, &args, binning) {
            Ok(r) => println!(
                "{:<20} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6.1}s",
                method.name(),
                fmt(r.all.mae),
                fmt(r.many.mae),
                fmt(r.medium.mae),
                fmt(r.few.mae),
                fmt(r.all.gmean),
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("regression_head: {}: {e}", method.name());
                std::process::exit(1);
            }
        }
    }
}
