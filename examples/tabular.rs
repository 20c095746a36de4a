//! Imbalanced regression on real tables: the deep methods (LDS, DenseWeight, Balanced MSE, and
//! for the MLP the representation and uncertainty methods ConR, Rank-N-Contrast, UVOTE and VIR)
//! against the resampling family (RO, RU, GN, SMOTER, SMOGN, WERCS), with a small MLP trained
//! through dirkit's heads (Candle) and a weighted ridge regression (faer), on the red wine
//! quality and abalone data sets shipped in `datasets/`. Rank-N-Contrast needs two views of
//! each row: here the standardised features plus independent gaussian noise (σ 0.1), the
//! tabular stand-in for image augmentation; the MLP is pre-trained with it for half the epochs,
//! then its head is trained on the frozen features.
//!
//! For each data set: 5 seeded 80/20 train/test splits; φ from the training targets' box plot
//! (UBL convention), rare at φ ≥ 0.8; shots from the training histogram (bin width from
//! Freedman–Diaconis, many > 100, few < 20 samples); MAE by shot and SERA (step 0.001) on the
//! test set, as mean ± std over the splits.
//!
//! ```sh
//! cargo run --release --example tabular                       # about a minute on 2 cores
//! cargo run --release --example tabular -- --splits 2 --epochs 40 --out /tmp/tab
//! ```
//! Writes `results.md`, `results.csv` and `tabular.svg` to `--out` (default `target/tabular`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use clap::Parser;
use dirkit::compute::nn::{Linear, linear};
use dirkit::compute::train::{fill, seeded_init};
use dirkit::nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit::nn::loss::balanced_mse::BalancedMseConfig;
use dirkit::nn::loss::conr::{ConrConfig, ConrLoss};
use dirkit::nn::loss::elementwise::RegressionLoss;
use dirkit::nn::loss::rnc::{RncConfig, RncLoss};
use dirkit::nn::loss::uvote::{UvoteConfig, UvoteHead};
use dirkit::nn::loss::vir::{VirConfig, VirHead};
use dirkit::relevance::{BinRule, Relevance, RelevanceConfig, bin_width};
use dirkit::tabular::{Column, Frame, Method as Resampler, ResampleConfig, resample};
use dirkit::{
    Binning, DenseWeight, DenseWeightConfig, LabelDensity, LdsConfig, OutOfRange, RegressionReport,
    ShotThresholds, SplitMix64,
};
use faer::Side;
use faer::linalg::solvers::Solve;

/// Command-line flags.
#[derive(Parser)]
#[command(about = "Deep re-weighting vs resampling on real tabular regression data")]
struct Args {
    /// Train/test splits per data set (seeds 0..N).
    #[arg(long, default_value_t = 5)]
    splits: u64,
    /// MLP training epochs.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Folder for results.md, results.csv and tabular.svg.
    #[arg(long, default_value = "target/tabular")]
    out: PathBuf,
}

/// How a training set is prepared or weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    Plain,
    Lds,
    DenseWeight,
    BalancedMse,
    Conr,
    Rnc,
    Uvote,
    Vir,
    Resample(Resampler),
}

impl Method {
    const ALL: [Method; 14] = [
        Method::Plain,
        Method::Lds,
        Method::DenseWeight,
        Method::BalancedMse,
        Method::Conr,
        Method::Rnc,
        Method::Uvote,
        Method::Vir,
        Method::Resample(Resampler::Ro),
        Method::Resample(Resampler::Ru),
        Method::Resample(Resampler::Gn),
        Method::Resample(Resampler::Smoter),
        Method::Resample(Resampler::Smogn),
        Method::Resample(Resampler::Wercs),
    ];

    /// Methods that are a loss or a head of a network, with no ridge counterpart.
    fn network_only(self) -> bool {
        matches!(
            self,
            Method::BalancedMse | Method::Conr | Method::Rnc | Method::Uvote | Method::Vir
        )
    }

    fn name(self) -> &'static str {
        match self {
            Method::Plain => "plain",
            Method::Lds => "LDS",
            Method::DenseWeight => "DenseWeight",
            Method::BalancedMse => "Balanced MSE",
            Method::Conr => "ConR",
            Method::Rnc => "RnC",
            Method::Uvote => "UVOTE",
            Method::Vir => "VIR",
            Method::Resample(r) => match r {
                Resampler::Ro => "RO",
                Resampler::Ru => "RU",
                Resampler::Gn => "GN",
                Resampler::Smoter => "SMOTER",
                Resampler::Smogn => "SMOGN",
                Resampler::Wercs => "WERCS",
            },
        }
    }
}

struct Dataset {
    name: &'static str,
    file: &'static str,
    target: &'static str,
}

const DATASETS: [Dataset; 2] = [
    Dataset {
        name: "wine quality (red)",
        file: "datasets/wine-quality/winequality-red.csv",
        target: "quality",
    },
    Dataset {
        name: "abalone",
        file: "datasets/abalone/abalone.csv",
        target: "rings",
    },
];

const THRESHOLD: f64 = 0.8;
const MODELS: [&str; 2] = ["MLP", "ridge"];

/// The five numbers of one run: MAE all / many / medium / few, SERA.
type Scores = [Option<f64>; 5];

fn main() {
    dirkit::compute::memory::keep_freed_memory();
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("tabular: error: {e}");
        std::process::exit(2);
    }
}

fn run(args: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    // (dataset, model, method) → one Scores per split.
    let mut results: BTreeMap<(usize, usize, Method), Vec<Scores>> = BTreeMap::new();
    for (d, ds) in DATASETS.iter().enumerate() {
        let frame = Frame::read_csv(&root.join(ds.file), &[]).map_err(|e| e.to_string())?;
        let target = frame
            .column_index(ds.target, ds.file)
            .map_err(|e| e.to_string())?;
        println!(
            "{}: {} rows × {} columns, target '{}'",
            ds.name,
            frame.n_rows(),
            frame.names.len(),
            ds.target
        );
        for seed in 0..args.splits {
            let (train, test) = split(&frame, seed);
            for method in Method::ALL {
                for (m, _) in MODELS.iter().enumerate() {
                    if m == 1 && method.network_only() {
                        continue; // Losses and heads of networks.
                    }
                    let scores = evaluate(&train, &test, target, method, m, seed, args.epochs)
                        .map_err(|e| format!("{} split {seed} {}: {e}", ds.name, method.name()))?;
                    results.entry((d, m, method)).or_default().push(scores);
                }
            }
            println!(
                "  split {seed} done ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    report(args, &results, started.elapsed().as_secs_f64())
}

/// A seeded 80/20 split of the rows.
fn split(frame: &Frame, seed: u64) -> (Frame, Frame) {
    let n = frame.n_rows();
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix64::new(1000 + seed).shuffle(&mut order);
    let cut = n * 4 / 5;
    (rows(frame, &order[..cut]), rows(frame, &order[cut..]))
}

fn rows(frame: &Frame, idx: &[usize]) -> Frame {
    let columns = frame
        .columns
        .iter()
        .map(|c| match c {
            Column::Numeric(v) => Column::Numeric(idx.iter().map(|&i| v[i]).collect()),
            Column::Nominal { levels, codes } => Column::Nominal {
                levels: levels.clone(),
                codes: idx.iter().map(|&i| codes[i]).collect(),
            },
        })
        .collect();
    Frame {
        names: frame.names.clone(),
        columns,
    }
}

/// Features as a row-major matrix: numeric columns, nominal ones one-hot; standardised with
/// the statistics of `fit` (the training set).
struct Design {
    mean: Vec<f64>,
    sd: Vec<f64>,
}

fn raw_features(f: &Frame, target: usize) -> (Vec<f64>, usize) {
    let mut cols: Vec<Vec<f64>> = Vec::new();
    for (c, col) in f.columns.iter().enumerate() {
        if c == target {
            continue;
        }
        match col {
            Column::Numeric(v) => cols.push(v.clone()),
            Column::Nominal { levels, codes } => {
                for l in 0..levels.len() as u32 {
                    cols.push(codes.iter().map(|&x| f64::from(u8::from(x == l))).collect());
                }
            }
        }
    }
    let n = f.n_rows();
    let p = cols.len();
    let mut x = vec![0.0; n * p];
    for (j, c) in cols.iter().enumerate() {
        for i in 0..n {
            x[i * p + j] = c[i];
        }
    }
    (x, p)
}

impl Design {
    fn fit(x: &[f64], p: usize) -> Self {
        let n = x.len() / p;
        let mut mean = vec![0.0; p];
        let mut sd = vec![0.0; p];
        for j in 0..p {
            let m = (0..n).map(|i| x[i * p + j]).sum::<f64>() / n as f64;
            let v = (0..n).map(|i| (x[i * p + j] - m).powi(2)).sum::<f64>() / n as f64;
            mean[j] = m;
            sd[j] = if v > 0.0 { v.sqrt() } else { 1.0 };
        }
        Self { mean, sd }
    }

    fn apply(&self, x: &[f64]) -> Vec<f64> {
        let p = self.mean.len();
        x.iter()
            .enumerate()
            .map(|(k, v)| (v - self.mean[k % p]) / self.sd[k % p])
            .collect()
    }
}

fn evaluate(
    train: &Frame,
    test: &Frame,
    target: usize,
    method: Method,
    model: usize,
    seed: u64,
    epochs: usize,
) -> Result<Scores, String> {
    let y_train = train.columns[target].numbers().unwrap_or_default().to_vec();
    let y_test = test.columns[target].numbers().unwrap_or_default().to_vec();
    let phi = Relevance::from_targets(&y_train, &RelevanceConfig::default())
        .map_err(|e| e.to_string())?;
    // Shots and LDS bins from the original training targets.
    let width = bin_width(&y_train, BinRule::FreedmanDiaconis)
        .map_err(|e| e.to_string())?
        .width;
    let binning = Binning::auto(&y_train, width).map_err(|e| e.to_string())?;
    let (train_counts, _) = binning
        .counts(&y_train, OutOfRange::Clip)
        .map_err(|e| e.to_string())?;

    // The training set the model sees, and its per-sample weights.
    let fit_frame = match method {
        Method::Resample(r) => {
            let config = ResampleConfig {
                threshold: THRESHOLD,
                seed,
                ..ResampleConfig::new(r)
            };
            resample(train, target, &phi, &config)
                .map_err(|e| e.to_string())?
                .0
        }
        _ => rows(train, &(0..train.n_rows()).collect::<Vec<_>>()),
    };
    let y_fit = fit_frame.columns[target]
        .numbers()
        .unwrap_or_default()
        .to_vec();
    let weights: Option<Vec<f64>> = match method {
        Method::Lds => Some(
            LabelDensity::fit(&y_fit, binning, OutOfRange::Clip, &LdsConfig::default())
                .and_then(|l| l.sample_weights(&y_fit))
                .map_err(|e| e.to_string())?,
        ),
        Method::DenseWeight => {
            let w = DenseWeight::fit(&y_fit, DenseWeightConfig::default())
                .map_err(|e| e.to_string())?
                .weights(&y_fit);
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            Some(w.iter().map(|v| v / mean).collect())
        }
        _ => None,
    };
    // What the network methods take besides the loss weights: LDS weights for ConR's pushing
    // and VIR's evidence, and for UVOTE p^(−r_m) per head from the (unclipped, smoothed)
    // label density, each head's weights of mean 1.
    let aux: Option<Vec<f64>> = match method {
        Method::Conr | Method::Vir => Some(
            LabelDensity::fit(&y_fit, binning, OutOfRange::Clip, &LdsConfig::default())
                .and_then(|l| l.sample_weights(&y_fit))
                .map_err(|e| e.to_string())?,
        ),
        Method::Uvote => {
            let lds = LdsConfig {
                reweight: dirkit::Reweight::Inverse {
                    clip_min: 0.0,
                    clip_max: f64::MAX,
                },
                ..LdsConfig::default()
            };
            let density = LabelDensity::fit(&y_fit, binning, OutOfRange::Clip, &lds)
                .map_err(|e| e.to_string())?;
            let p: Vec<f64> = y_fit
                .iter()
                .enumerate()
                .map(|(i, &y)| {
                    let b = binning
                        .bin(y, i, OutOfRange::Clip)
                        .map_err(|e| e.to_string())?
                        .ok_or("label outside the bins")?;
                    Ok(density.effective_density[b])
                })
                .collect::<Result<_, String>>()?;
            let per_head =
                dirkit::nn::loss::uvote::uvote_weights(&p, &UvoteConfig::default().exponents())
                    .map_err(|e| e.to_string())?;
            // Row-major (n, M).
            Some(
                (0..p.len())
                    .flat_map(|i| per_head.iter().map(move |h| h[i]))
                    .collect(),
            )
        }
        _ => None,
    };
    let (x_fit_raw, p) = raw_features(&fit_frame, target);
    let (x_test_raw, _) = raw_features(test, target);
    let design = Design::fit(&x_fit_raw, p);
    let x_fit = design.apply(&x_fit_raw);
    let x_test = design.apply(&x_test_raw);
    let y_mean = y_fit.iter().sum::<f64>() / y_fit.len() as f64;
    let y_sd = (y_fit.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / y_fit.len() as f64)
        .sqrt()
        .max(1e-12);
    let ys: Vec<f64> = y_fit.iter().map(|v| (v - y_mean) / y_sd).collect();
    let pred_s = if model == 0 {
        mlp(
            &Fit {
                x: &x_fit,
                y: &ys,
                w: weights.as_deref(),
                aux: aux.as_deref(),
                // ConR's window: one training bin, in standardised units.
                window: binning.width / y_sd,
            },
            &x_test,
            p,
            method,
            seed,
            epochs,
        )
        .map_err(|e| e.to_string())?
    } else {
        ridge(&x_fit, &ys, weights.as_deref(), &x_test, p, 1.0)?
    };
    let pred: Vec<f64> = pred_s.iter().map(|v| v * y_sd + y_mean).collect();
    let report = RegressionReport::compute(
        &pred,
        &y_test,
        &binning,
        &train_counts,
        ShotThresholds::default(),
        OutOfRange::Clip,
    )
    .and_then(|r| {
        r.with_sera(
            &pred,
            &y_test,
            &binning,
            &train_counts,
            OutOfRange::Clip,
            &phi,
            0.001,
        )
    })
    .map_err(|e| e.to_string())?;
    Ok([
        report.all.mae,
        report.many.mae,
        report.medium.mae,
        report.few.mae,
        report.all.sera,
    ])
}

/// Weighted ridge regression on standardised features with an unpenalised intercept, solved by
/// faer's Cholesky factorisation of XᵀWX + λI.
fn ridge(
    x: &[f64],
    y: &[f64],
    w: Option<&[f64]>,
    x_test: &[f64],
    p: usize,
    lambda: f64,
) -> Result<Vec<f64>, String> {
    let n = y.len();
    let q = p + 1;
    let mut a = faer::Mat::<f64>::zeros(q, q);
    let mut b = faer::Mat::<f64>::zeros(q, 1);
    let row = |i: usize| std::iter::once(1.0).chain(x[i * p..(i + 1) * p].iter().copied());
    for i in 0..n {
        let wi = w.map_or(1.0, |w| w[i]);
        let r: Vec<f64> = row(i).collect();
        for j in 0..q {
            b[(j, 0)] += wi * r[j] * y[i];
            for k in 0..q {
                a[(j, k)] += wi * r[j] * r[k];
            }
        }
    }
    for j in 1..q {
        a[(j, j)] += lambda;
    }
    let beta = a
        .llt(Side::Lower)
        .map_err(|e| format!("ridge: {e:?}"))?
        .solve(&b);
    let nt = x_test.len() / p;
    Ok((0..nt)
        .map(|i| {
            beta[(0, 0)]
                + (0..p)
                    .map(|j| beta[(j + 1, 0)] * x_test[i * p + j])
                    .sum::<f64>()
        })
        .collect())
}

const HIDDEN: usize = 64;

struct Mlp {
    l1: Linear,
    l2: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.l2.forward(&self.l1.forward(x)?.relu()?)?.relu()
    }
}

/// The training rows of the MLP: standardised features (n × p) and targets, the methods'
/// per-sample loss weights and auxiliary weights, and ConR's window.
struct Fit<'a> {
    x: &'a [f64],
    y: &'a [f64],
    w: Option<&'a [f64]>,
    aux: Option<&'a [f64]>,
    window: f64,
}

/// The head on the MLP's features: dirkit's regression head or an uncertainty head.
enum Head {
    Point(Box<RegressionHead>),
    Uvote(UvoteHead),
    Vir(Box<VirHead>),
}

/// A two-layer MLP with dirkit's heads (MSE; Balanced MSE, ConR, UVOTE or VIR for those
/// methods; RnC pre-training first), Adam, mini-batches of 64, per-sample weights where the
/// method has them.
fn mlp(
    fit: &Fit,
    x_test: &[f64],
    p: usize,
    method: Method,
    seed: u64,
    epochs: usize,
) -> candle_core::Result<Vec<f64>> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let net = Mlp {
        l1: linear(p, HIDDEN, vb.pp("l1"))?,
        l2: linear(HIDDEN, HIDDEN, vb.pp("l2"))?,
    };
    let mut head = match method {
        Method::Uvote => Head::Uvote(UvoteHead::new(
            UvoteConfig::default(),
            HIDDEN,
            vb.pp("head"),
        )?),
        Method::Vir => Head::Vir(Box::new(VirHead::new(
            VirConfig::default(),
            HIDDEN,
            vb.pp("head"),
        )?)),
        _ => {
            let config = RegressionHeadConfig {
                loss: if method == Method::BalancedMse {
                    // σ starts at a tenth of the target's sd (the targets are standardised),
                    // the proportion of the paper's σ = 1 year for ages.
                    HeadLoss::BalancedMse(BalancedMseConfig {
                        init_sigma: 0.1,
                        ..BalancedMseConfig::default()
                    })
                } else {
                    HeadLoss::Pointwise(RegressionLoss::Mse)
                },
                ..RegressionHeadConfig::new(HIDDEN)
            };
            Head::Point(Box::new(RegressionHead::new(config, vb.pp("head"))?))
        }
    };
    seeded_init(&varmap, seed)?;
    match &head {
        Head::Point(_) => fill(&varmap, "head.linear.bias", 0.0)?,
        Head::Uvote(_) => fill(&varmap, "head.mean.bias", 0.0)?,
        Head::Vir(_) => {}
    }
    let conr = (method == Method::Conr)
        .then(|| {
            ConrLoss::new(ConrConfig {
                window: fit.window,
                ..ConrConfig::default()
            })
        })
        .transpose()?;
    let adam = |vars| {
        AdamW::new(
            vars,
            ParamsAdamW {
                lr: 1e-3,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
    };
    let mut opt = adam(varmap.all_vars())?;
    let mut sigma_opt = match &head {
        Head::Point(h) => match h.noise_sigma() {
            Some(s) => Some(adam(vec![s.clone()])?),
            None => None,
        },
        _ => None,
    };
    let n = fit.y.len();
    let to_f32 = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    let x_all = Tensor::from_vec(to_f32(fit.x), (n, p), &dev)?;
    let y_all = Tensor::from_vec(to_f32(fit.y), n, &dev)?;
    let w_all = fit
        .w
        .map(|w| Tensor::from_vec(to_f32(w), n, &dev))
        .transpose()?;
    let aux_all = match fit.aux {
        Some(a) => Some(Tensor::from_vec(to_f32(a), (n, a.len() / n), &dev)?),
        None => None,
    };
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    // Rank-N-Contrast: the first half of the epochs pre-train the MLP on two noisy views.
    let pretrain = if method == Method::Rnc { epochs / 2 } else { 0 };
    if pretrain > 0 {
        let rnc = RncLoss::new(RncConfig::default())?;
        // Adam over the MLP alone (the head has no part in this stage).
        let net_vars: Vec<candle_core::Var> = {
            let data = varmap
                .data()
                .lock()
                .map_err(|e| candle_core::Error::Msg(format!("the MLP's variables: {e}")))?;
            ["l1.weight", "l1.bias", "l2.weight", "l2.bias"]
                .iter()
                .filter_map(|k| data.get(*k).cloned())
                .collect()
        };
        let mut net_opt = adam(net_vars)?;
        let mut noise = SplitMix64::new(seed ^ 0x2a1e);
        for _ in 0..pretrain {
            rng.shuffle(&mut order);
            for chunk in order.chunks(64) {
                let idx = Tensor::from_slice(chunk, chunk.len(), &dev)?;
                let xb = x_all.index_select(&idx, 0)?;
                let yb = y_all.index_select(&idx, 0)?;
                let mut view = || -> candle_core::Result<Tensor> {
                    let e: Vec<f32> = (0..chunk.len() * p)
                        .map(|_| (0.1 * noise.normal()) as f32)
                        .collect();
                    &xb + Tensor::from_vec(e, (chunk.len(), p), &dev)?
                };
                let (v1, v2) = (view()?, view()?);
                let loss = rnc.loss_two_views(&net.forward(&v1)?, &net.forward(&v2)?, &yb)?;
                net_opt.step(&loss.backward()?)?;
            }
        }
    }
    for epoch in pretrain..epochs {
        rng.shuffle(&mut order);
        for (step, chunk) in order.chunks(64).enumerate() {
            let idx = Tensor::from_slice(chunk, chunk.len(), &dev)?;
            let xb = x_all.index_select(&idx, 0)?;
            let yb = y_all.index_select(&idx, 0)?;
            let z = net.forward(&xb)?;
            // After RnC pre-training the MLP is frozen: only the head learns.
            let z = if pretrain > 0 { z.detach() } else { z };
            let aux_b = aux_all
                .as_ref()
                .map(|a| a.index_select(&idx, 0))
                .transpose()?;
            let loss = match &mut head {
                Head::Point(h) => {
                    let step = match &w_all {
                        Some(wa) => {
                            h.forward_train_weighted(&z, &yb, &wa.index_select(&idx, 0)?, epoch)?
                        }
                        None => h.forward_train(&z, &yb, epoch)?,
                    };
                    match (&conr, &aux_b) {
                        (Some(c), Some(w)) => {
                            let pred = h.forward(&z)?.detach();
                            let reg = c.loss(&z, &yb, &pred, Some(&w.squeeze(1)?))?;
                            (step.loss + (reg * c.config().beta)?)?
                        }
                        _ => step.loss,
                    }
                }
                Head::Uvote(h) => {
                    let out = h.forward(&z)?;
                    h.loss(&out, &yb, aux_b.as_ref(), epoch, epochs)?
                }
                Head::Vir(h) => {
                    let w = aux_b.as_ref().map(|w| w.squeeze(1)).transpose()?;
                    let noise_seed = seed ^ ((epoch as u64) << 32) ^ step as u64;
                    let out = h.forward_train(&z, &yb, w.as_ref(), epoch, noise_seed)?;
                    h.loss(&out, &yb)?
                }
            };
            let grads = loss.backward()?;
            opt.step(&grads)?;
            if let Some(o) = &mut sigma_opt {
                o.step(&grads)?;
            }
        }
    }
    let nt = x_test.len() / p;
    let xt = Tensor::from_vec(to_f32(x_test), (nt, p), &dev)?;
    let z = net.forward(&xt)?;
    let pred: Vec<f64> = match &head {
        Head::Point(h) => h
            .forward(&z)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?,
        Head::Uvote(h) => UvoteHead::predict(&h.forward(&z)?)?.prediction,
        Head::Vir(h) => h.forward(&z)?.gamma.to_dtype(DType::F64)?.to_vec1()?,
    };
    Ok(pred)
}

fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some((m, s))
}

fn report(
    args: &Args,
    results: &BTreeMap<(usize, usize, Method), Vec<Scores>>,
    seconds: f64,
) -> Result<(), String> {
    let stat =
        |runs: &[Scores], k: usize| mean_std(&runs.iter().filter_map(|s| s[k]).collect::<Vec<_>>());
    let fmt = |v: Option<(f64, f64)>, digits: usize| {
        v.map_or("-".to_string(), |(m, s)| {
            format!("{m:.digits$} ± {s:.digits$}")
        })
    };
    let mut md = String::new();
    let mut csv = String::from(
        "dataset,model,method,splits,mae_all,mae_all_std,mae_many,mae_many_std,mae_medium,mae_medium_std,mae_few,mae_few_std,sera,sera_std\n",
    );
    for (d, ds) in DATASETS.iter().enumerate() {
        md.push_str(&format!(
            "### {} ({} splits, MAE in {} units, SERA summed over the test set)\n\n",
            ds.name, args.splits, ds.target
        ));
        md.push_str("| model | method | MAE all | MAE many | MAE medium | MAE few | SERA |\n");
        md.push_str("| :-- | :-- | --: | --: | --: | --: | --: |\n");
        for (m, model) in MODELS.iter().enumerate() {
            for method in Method::ALL {
                let Some(runs) = results.get(&(d, m, method)) else {
                    continue;
                };
                let cells: Vec<Option<(f64, f64)>> = (0..5).map(|k| stat(runs, k)).collect();
                md.push_str(&format!(
                    "| {model} | {} | {} | {} | {} | {} | {} |\n",
                    method.name(),
                    fmt(cells[0], 3),
                    fmt(cells[1], 3),
                    fmt(cells[2], 3),
                    fmt(cells[3], 3),
                    fmt(cells[4], 0)
                ));
                let mut line = format!("{},{model},{},{}", ds.name, method.name(), runs.len());
                for c in &cells {
                    match c {
                        Some((a, b)) => line.push_str(&format!(",{a},{b}")),
                        None => line.push_str(",,"),
                    }
                }
                csv.push_str(&line);
                csv.push('\n');
            }
        }
        md.push('\n');
    }
    md.push_str(&format!(
        "{} splits per data set, {} MLP epochs; {seconds:.0} s.\n",
        args.splits, args.epochs
    ));
    print!("\n{md}");
    let write = |name: &str, text: &str| {
        let p = args.out.join(name);
        dirkit::recipe::report::write_file(&p, text.as_bytes()).map_err(|e| e.to_string())
    };
    write("results.md", &md)?;
    write("results.csv", &csv)?;
    let methods: Vec<String> = Method::ALL.iter().map(|m| m.name().to_string()).collect();
    let panel = |d: usize| dirkit_plot::MethodPanel {
        y_desc: format!("{}: few-shot MAE", DATASETS[d].name),
        series: MODELS
            .iter()
            .enumerate()
            .map(|(m, model)| {
                (
                    model.to_string(),
                    Method::ALL
                        .iter()
                        .map(|&method| results.get(&(d, m, method)).and_then(|r| stat(r, 3)))
                        .collect(),
                )
            })
            .collect(),
    };
    let plot = args.out.join("tabular.svg");
    dirkit_plot::write_method_plot(
        &plot,
        "Few-shot MAE by method (mean ± std over splits)",
        &methods,
        &panel(0),
        &panel(1),
    )?;
    println!(
        "wrote {}, {} and {}",
        args.out.join("results.md").display(),
        args.out.join("results.csv").display(),
        plot.display()
    );
    Ok(())
}
