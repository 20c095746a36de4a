//! UVOTE, the uncertainty voting ensemble for imbalanced regression (Jiang et al., GCPR 2024):
//! M heads on a shared backbone, each predicting a Laplace distribution (a mean μ and a log
//! scale s, `b = e^s`) and trained with the Laplace negative log-likelihood
//!
//! `ℓ = ln(2b) + |y − μ| / b`,
//!
//! head m's loss re-weighted per sample by `p(y)^(−r_m)` (p the label density, normalised to
//! mean 1) with `r_m` spread evenly over [0, 1] — head 0 unweighted, the last one inverse
//! density. In the progressive schedule (the official `--dynamic_loss`) heads m ≥ 1 enter with
//! the factor `(epoch / epochs)²`, so the ensemble starts as one unweighted head and
//! specialises over training. At inference each sample takes the head with the smallest
//! predicted scale; its uncertainty is the Laplace standard deviation `√2 · b`.
//!
//! As the official code, the log scale is clamped to [−5, 5] (the gradient is 0 outside) and the
//! loss is the batch mean of each head's weighted NLL, summed over heads. The official weights
//! come from a Gaussian KDE of the labels with bandwidth 2; [`uvote_weights`] takes any density
//! per sample (the recipe passes the LDS effective density, the same estimate on bins).

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use dirkit_compute::nn::Linear;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, bad, invalid};
use crate::loss::elementwise::{abs, pred_target, weighted_mean};

/// Settings of [`UvoteHead`]. Defaults: 2 heads (the official AgeDB-DIR setting), log scale in
/// [−5, 5], the progressive schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UvoteConfig {
    /// Number of heads M ≥ 1.
    pub heads: usize,
    /// Lower clamp of the predicted log scale (official: −5).
    pub min_log_scale: f64,
    /// Upper clamp of the predicted log scale (official: 5).
    pub max_log_scale: f64,
    /// Weight heads m ≥ 1 by `(epoch / epochs)²`; otherwise every head has weight 1.
    pub progressive: bool,
}

impl Default for UvoteConfig {
    fn default() -> Self {
        Self {
            heads: 2,
            min_log_scale: -5.0,
            max_log_scale: 5.0,
            progressive: true,
        }
    }
}

impl UvoteConfig {
    /// Checks M ≥ 1 and finite clamps with min < max.
    pub fn check(&self) -> candle_core::Result<()> {
        if self.heads == 0 {
            return invalid("heads", 0, "at least 1 (the number of UVOTE heads)");
        }
        if !(self.min_log_scale.is_finite()
            && self.max_log_scale.is_finite()
            && self.min_log_scale < self.max_log_scale)
        {
            return invalid(
                "min_log_scale",
                format!("[{}, {}]", self.min_log_scale, self.max_log_scale),
                "finite clamps of the log scale with min < max",
            );
        }
        Ok(())
    }

    /// The re-weighting exponents `r_m`, evenly spaced over [0, 1] (`[0]` for one head).
    pub fn exponents(&self) -> Vec<f64> {
        let m = self.heads;
        if m <= 1 {
            return vec![0.0; m];
        }
        (0..m).map(|i| i as f64 / (m - 1) as f64).collect()
    }

    /// The factor of head `m`'s loss at `epoch` (0-based) of `epochs`: 1 for head 0 or without
    /// the progressive schedule, `(epoch / epochs)²` otherwise.
    pub fn head_factor(&self, m: usize, epoch: usize, epochs: usize) -> f64 {
        if m == 0 || !self.progressive || epochs == 0 {
            1.0
        } else {
            (epoch as f64 / epochs as f64).powi(2)
        }
    }
}

/// Each head's normaliser `mean_i p_i^(−r_m)` over the given samples' label densities `p_i > 0`
/// (any scale): head m's weight of a sample is `p^(−r_m)` divided by it, so that the weights
/// average 1 over these samples (the training set).
pub fn uvote_norms(density: &[f64], exponents: &[f64]) -> candle_core::Result<Vec<f64>> {
    if let Some((i, p)) = density
        .iter()
        .enumerate()
        .find(|(_, p)| !(p.is_finite() && **p > 0.0))
    {
        return Err(bad(
            "density",
            format!("{p} at sample {i}"),
            "a finite label density > 0 for every sample",
        )
        .into());
    }
    let n = density.len().max(1) as f64;
    Ok(exponents
        .iter()
        .map(|&r| density.iter().map(|p| p.powf(-r)).sum::<f64>() / n)
        .collect())
}

/// Per-sample weights of each head: `w_m(i) = p_i^(−r_m)` normalised to mean 1 over the given
/// samples ([`uvote_norms`]), from each sample's label density `p_i > 0` (any scale). Returns M
/// rows of n weights.
pub fn uvote_weights(density: &[f64], exponents: &[f64]) -> candle_core::Result<Vec<Vec<f64>>> {
    let norms = uvote_norms(density, exponents)?;
    Ok(exponents
        .iter()
        .zip(norms)
        .map(|(&r, norm)| density.iter().map(|p| p.powf(-r) / norm).collect())
        .collect())
}

/// The per-sample Laplace NLL `ln(2b) + |y − μ|/b` with `s = clamp(log_scale, lo, hi)`,
/// `b = e^s`; mean, log scale and target are (B) or (B, 1). Returns (B).
pub fn laplace_nll_terms(
    mean: &Tensor,
    log_scale: &Tensor,
    target: &Tensor,
    lo: f64,
    hi: f64,
) -> candle_core::Result<Tensor> {
    let (mu, y) = pred_target(mean, target)?;
    let (s, _) = pred_target(log_scale, target)?;
    let s = s.clamp(lo, hi)?;
    let err = abs(&(y - mu)?)?;
    s.affine(1.0, std::f64::consts::LN_2)? + (err * s.neg()?.exp()?)?
}

/// `mean_i w_i · (ln(2b_i) + |y_i − μ_i| / b_i)` (weights optional, as the official
/// `weighted_l1nll_loss`), with the log scale clamped to [`lo`, `hi`].
pub fn laplace_nll(
    mean: &Tensor,
    log_scale: &Tensor,
    target: &Tensor,
    weights: Option<&Tensor>,
    lo: f64,
    hi: f64,
) -> candle_core::Result<Tensor> {
    weighted_mean(laplace_nll_terms(mean, log_scale, target, lo, hi)?, weights)
}

/// The M heads' outputs for a batch: means and clamped log scales, each (B, M).
#[derive(Debug, Clone)]
pub struct UvoteOutput {
    /// Predicted means μ, (B, M).
    pub means: Tensor,
    /// Predicted log scales s = ln b, clamped, (B, M).
    pub log_scales: Tensor,
}

/// The ensemble's answer for each sample: the head with the smallest scale.
#[derive(Debug, Clone, PartialEq)]
pub struct UvotePrediction {
    /// The chosen head's mean.
    pub prediction: Vec<f64>,
    /// The chosen head's Laplace standard deviation `√2 · b` (label units).
    pub sigma: Vec<f64>,
    /// The chosen head's index.
    pub head: Vec<usize>,
}

/// UVOTE's M Laplace heads on shared features: a mean layer and a log-scale layer, each
/// D → M (the official code trains the log-scale layer at a tenth of the learning rate; its
/// variables sit under `log_scale` in the `VarBuilder` so a caller can do the same).
pub struct UvoteHead {
    config: UvoteConfig,
    mean: Linear,
    log_scale: Linear,
}

impl UvoteHead {
    /// Builds the head for `in_dim` features; weights from `vb` (`mean.*`, `log_scale.*`).
    pub fn new(config: UvoteConfig, in_dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        config.check()?;
        if in_dim == 0 {
            return invalid("in_dim", 0, "at least 1");
        }
        let mean = dirkit_compute::nn::linear(in_dim, config.heads, vb.pp("mean"))?;
        let log_scale = dirkit_compute::nn::linear(in_dim, config.heads, vb.pp("log_scale"))?;
        Ok(Self {
            config,
            mean,
            log_scale,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UvoteConfig {
        &self.config
    }

    /// Means and clamped log scales of every head for features (B, D).
    pub fn forward(&self, features: &Tensor) -> candle_core::Result<UvoteOutput> {
        let c = &self.config;
        Ok(UvoteOutput {
            means: self.mean.forward(features)?,
            log_scales: self
                .log_scale
                .forward(features)?
                .clamp(c.min_log_scale, c.max_log_scale)?,
        })
    }

    /// The training loss `Σ_m c_m · mean_i w_m(i) ℓ_m(i)` of an output against targets (B),
    /// with per-head weights (B, M) (from [`uvote_weights`]; `None`: all 1) and the head
    /// factors `c_m` of [`UvoteConfig::head_factor`] at `epoch` of `epochs`.
    pub fn loss(
        &self,
        out: &UvoteOutput,
        targets: &Tensor,
        weights: Option<&Tensor>,
        epoch: usize,
        epochs: usize,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let m = c.heads;
        if let Some(w) = weights
            && w.dims() != out.means.dims()
        {
            return Err(NnError::shape(format!(
                "uvote: weights must be (B, M) = {:?}, got {:?}",
                out.means.dims(),
                w.dims()
            ))
            .into());
        }
        let mut total: Option<Tensor> = None;
        for h in 0..m {
            let factor = c.head_factor(h, epoch, epochs);
            let w = weights.map(|w| w.narrow(1, h, 1)).transpose()?;
            let l = laplace_nll(
                &out.means.narrow(1, h, 1)?,
                &out.log_scales.narrow(1, h, 1)?,
                targets,
                w.as_ref(),
                c.min_log_scale,
                c.max_log_scale,
            )?;
            let l = if factor == 1.0 { l } else { (l * factor)? };
            total = Some(match total {
                Some(t) => (t + l)?,
                None => l,
            });
        }
        total.ok_or_else(|| NnError::shape("uvote: no head".into()).into())
    }

    /// The ensemble's prediction: per sample the head of smallest log scale (the first on
    /// ties), its mean and its standard deviation `√2 · e^s`.
    pub fn predict(out: &UvoteOutput) -> candle_core::Result<UvotePrediction> {
        let means: Vec<Vec<f64>> = out.means.to_dtype(DType::F64)?.to_vec2()?;
        let scales: Vec<Vec<f64>> = out.log_scales.to_dtype(DType::F64)?.to_vec2()?;
        let mut p = UvotePrediction {
            prediction: Vec::with_capacity(means.len()),
            sigma: Vec::with_capacity(means.len()),
            head: Vec::with_capacity(means.len()),
        };
        for (mu, s) in means.iter().zip(&scales) {
            let mut best = 0;
            for (h, v) in s.iter().enumerate() {
                if *v < s[best] {
                    best = h;
                }
            }
            p.prediction.push(mu[best]);
            p.sigma.push(std::f64::consts::SQRT_2 * s[best].exp());
            p.head.push(best);
        }
        Ok(p)
    }
}
