//! The built-in learners of the selection engine: a weighted ridge regression (faer) and a
//! two-layer MLP with dirkit's heads (Candle), both on standardised features and targets.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use dirkit_compute::nn::{Linear, linear};
use dirkit_compute::train::{fill, seeded_init};
use dirkit_core::SplitMix64;
use dirkit_nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit_nn::loss::balanced_mse::BalancedMseConfig;
use dirkit_nn::loss::conr::{ConrConfig, ConrLoss};
use dirkit_nn::loss::elementwise::RegressionLoss;
use dirkit_nn::loss::rnc::{RncConfig, RncLoss};
use dirkit_nn::loss::uvote::{UvoteConfig, UvoteHead};
use dirkit_nn::loss::vir::{VirConfig, VirHead};
use dirkit_tabular::{Column, Frame};
use faer::Side;
use faer::linalg::solvers::Solve;

use super::Method;
use crate::error::{RecipeError, Result};

/// Features as a row-major matrix (n × p): numeric columns as they are, nominal ones one-hot
/// with the levels of `frame`'s column (levels are shared by frames cut from one table).
pub(crate) fn raw_features(frame: &Frame, target: usize) -> (Vec<f64>, usize) {
    let mut cols: Vec<Vec<f64>> = Vec::new();
    for (c, col) in frame.columns.iter().enumerate() {
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
    let n = frame.n_rows();
    let p = cols.len();
    let mut x = vec![0.0; n * p];
    for (j, c) in cols.iter().enumerate() {
        for i in 0..n {
            x[i * p + j] = c[i];
        }
    }
    (x, p)
}

/// Per-column mean and standard deviation of the rows a model is fitted on (a constant column
/// keeps sd 1), applied unchanged to the rows it predicts.
pub(crate) struct Standardise {
    mean: Vec<f64>,
    sd: Vec<f64>,
}

impl Standardise {
    pub(crate) fn fit(x: &[f64], p: usize) -> Self {
        let n = x.len() / p.max(1);
        let mut mean = vec![0.0; p];
        let mut sd = vec![1.0; p];
        for j in 0..p {
            let m = (0..n).map(|i| x[i * p + j]).sum::<f64>() / n as f64;
            let v = (0..n).map(|i| (x[i * p + j] - m).powi(2)).sum::<f64>() / n as f64;
            mean[j] = m;
            if v > 0.0 {
                sd[j] = v.sqrt();
            }
        }
        Self { mean, sd }
    }

    pub(crate) fn apply(&self, x: &[f64]) -> Vec<f64> {
        let p = self.mean.len();
        x.iter()
            .enumerate()
            .map(|(k, v)| (v - self.mean[k % p]) / self.sd[k % p])
            .collect()
    }
}

/// Weighted ridge regression on standardised features with an unpenalised intercept, solved by
/// faer's Cholesky factorisation of XᵀWX + λI. `x` is n × p row-major.
pub(crate) fn ridge(
    x: &[f64],
    y: &[f64],
    w: Option<&[f64]>,
    x_test: &[f64],
    p: usize,
    lambda: f64,
) -> Result<Vec<f64>> {
    let n = y.len();
    let q = p + 1;
    let mut a = faer::Mat::<f64>::zeros(q, q);
    let mut b = faer::Mat::<f64>::zeros(q, 1);
    let mut r = vec![1.0; q];
    for i in 0..n {
        let wi = w.map_or(1.0, |w| w[i]);
        r[1..].copy_from_slice(&x[i * p..(i + 1) * p]);
        for j in 0..q {
            let wr = wi * r[j];
            b[(j, 0)] += wr * y[i];
            for k in 0..=j {
                a[(j, k)] += wr * r[k];
            }
        }
    }
    for j in 0..q {
        for k in j + 1..q {
            a[(j, k)] = a[(k, j)];
        }
    }
    for j in 1..q {
        a[(j, j)] += lambda;
    }
    let beta = a
        .llt(Side::Lower)
        .map_err(|e| {
            RecipeError::config(format!(
                "ridge: the weighted normal equations are singular ({e:?}); raise the ridge λ"
            ))
        })?
        .solve(&b);
    let nt = x_test.len() / p.max(1);
    Ok((0..nt)
        .map(|i| {
            beta[(0, 0)]
                + (0..p)
                    .map(|j| beta[(j + 1, 0)] * x_test[i * p + j])
                    .sum::<f64>()
        })
        .collect())
}

/// Settings of the MLP learner. Defaults: 64 hidden units, 100 epochs, batches of 64, Adam at
/// learning rate 1e-3.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpConfig {
    /// Width of both hidden layers (default 64).
    pub hidden: usize,
    /// Training epochs (default 100; Rank-N-Contrast pre-trains for the first half).
    pub epochs: usize,
    /// Mini-batch size (default 64).
    pub batch: usize,
    /// Adam's learning rate (default 1e-3).
    pub lr: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            epochs: 100,
            batch: 64,
            lr: 1e-3,
        }
    }
}

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
/// per-sample loss weights, their auxiliary weights (LDS weights for ConR and VIR, n × M head
/// weights for UVOTE) and ConR's window in standardised target units.
pub(crate) struct MlpFit<'a> {
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub p: usize,
    pub w: Option<&'a [f64]>,
    pub aux: Option<&'a [f64]>,
    pub window: f64,
}

enum Head {
    Point(Box<RegressionHead>),
    Uvote(UvoteHead),
    Vir(Box<VirHead>),
}

/// Trains the MLP with dirkit's head for `method` (MSE; Balanced MSE, ConR, UVOTE or VIR;
/// Rank-N-Contrast pre-training on two noisy views, σ 0.1, then the head on frozen features)
/// and predicts `x_test`.
pub(crate) fn mlp(
    fit: &MlpFit,
    x_test: &[f64],
    method: Method,
    seed: u64,
    c: &MlpConfig,
) -> candle_core::Result<Vec<f64>> {
    let dev = Device::Cpu;
    let p = fit.p;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let net = Mlp {
        l1: linear(p, c.hidden, vb.pp("l1"))?,
        l2: linear(c.hidden, c.hidden, vb.pp("l2"))?,
    };
    let mut head = match method {
        Method::Uvote => Head::Uvote(UvoteHead::new(
            UvoteConfig::default(),
            c.hidden,
            vb.pp("head"),
        )?),
        Method::Vir => Head::Vir(Box::new(VirHead::new(
            VirConfig::default(),
            c.hidden,
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
                ..RegressionHeadConfig::new(c.hidden)
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
                lr: c.lr,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
    };
    let mut opt = adam(varmap.all_vars())?;
    let mut sigma_opt = match &head {
        Head::Point(h) => h.noise_sigma().map(|s| adam(vec![s.clone()])).transpose()?,
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
    let aux_all = fit
        .aux
        .map(|a| Tensor::from_vec(to_f32(a), (n, a.len() / n), &dev))
        .transpose()?;
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let pretrain = if method == Method::Rnc {
        c.epochs / 2
    } else {
        0
    };
    if pretrain > 0 {
        let rnc = RncLoss::new(RncConfig::default())?;
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
            for chunk in order.chunks(c.batch) {
                // Rank-N-Contrast needs at least two rows to contrast.
                if chunk.len() < 2 {
                    continue;
                }
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
    for epoch in pretrain..c.epochs {
        rng.shuffle(&mut order);
        for (step, chunk) in order.chunks(c.batch).enumerate() {
            let idx = Tensor::from_slice(chunk, chunk.len(), &dev)?;
            let xb = x_all.index_select(&idx, 0)?;
            let yb = y_all.index_select(&idx, 0)?;
            let z = net.forward(&xb)?;
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
                        (Some(cl), Some(w)) => {
                            let pred = h.forward(&z)?.detach();
                            let reg = cl.loss(&z, &yb, &pred, Some(&w.squeeze(1)?))?;
                            (step.loss + (reg * cl.config().beta)?)?
                        }
                        _ => step.loss,
                    }
                }
                Head::Uvote(h) => {
                    let out = h.forward(&z)?;
                    h.loss(&out, &yb, aux_b.as_ref(), epoch, c.epochs)?
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
    let nt = x_test.len() / p.max(1);
    let xt = Tensor::from_vec(to_f32(x_test), (nt, p), &dev)?;
    let z = net.forward(&xt)?;
    match &head {
        Head::Point(h) => h
            .forward(&z)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1(),
        Head::Uvote(h) => Ok(UvoteHead::predict(&h.forward(&z)?)?.prediction),
        Head::Vir(h) => h.forward(&z)?.gamma.to_dtype(DType::F64)?.to_vec1(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows x (n × 2) with y = 2 + 3·x₁ − x₂ exactly.
    fn linear(n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut rng = SplitMix64::new(3);
        let x: Vec<f64> = (0..2 * n).map(|_| rng.normal()).collect();
        let y = (0..n)
            .map(|i| 2.0 + 3.0 * x[2 * i] - x[2 * i + 1])
            .collect();
        (x, y)
    }

    #[test]
    fn ridge_recovers_an_exact_linear_map_as_lambda_vanishes() {
        let (x, y) = linear(50);
        let test = [0.5, -1.0, 2.0, 0.25];
        let p = ridge(&x, &y, None, &test, 2, 1e-10).unwrap();
        assert!((p[0] - (2.0 + 1.5 + 1.0)).abs() < 1e-8, "{p:?}");
        assert!((p[1] - (2.0 + 6.0 - 0.25)).abs() < 1e-8, "{p:?}");
    }

    #[test]
    fn integer_weights_equal_repeated_rows() {
        let (x, mut y) = linear(30);
        for (i, v) in y.iter_mut().enumerate() {
            *v += if i % 3 == 0 { 0.7 } else { -0.2 };
        }
        let w: Vec<f64> = (0..30).map(|i| f64::from(1 + (i % 3) as u32)).collect();
        let (mut xr, mut yr) = (Vec::new(), Vec::new());
        for i in 0..30 {
            for _ in 0..(1 + i % 3) {
                xr.extend_from_slice(&x[2 * i..2 * i + 2]);
                yr.push(y[i]);
            }
        }
        let test = [0.3, 0.1, -2.0, 1.0];
        let weighted = ridge(&x, &y, Some(&w), &test, 2, 1.0).unwrap();
        let repeated = ridge(&xr, &yr, None, &test, 2, 1.0).unwrap();
        for (a, b) in weighted.iter().zip(&repeated) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }
}
