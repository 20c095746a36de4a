//! ConR, contrastive regularisation for imbalanced regression (Keramati et al., ICLR 2024): a
//! term added to any regression loss that pulls together features of samples with similar
//! labels and pushes apart *hard negatives* — samples whose labels differ but whose predictions
//! are close — with a strength that grows with the label distance and the anchor's rarity.
//!
//! For features z (L2-normalised), labels y, predictions ŷ (not differentiated) and per-sample
//! weights w (the LDS weights, 1 without re-weighting), window ω and temperature τ:
//! positives of anchor i are the j ≠ i with |y_i − y_j| ≤ ω; negatives the j with
//! |y_i − y_j| > ω and |ŷ_i − ŷ_j| ≤ ω; with `s_ij = z_i·z_j / τ` and the pushing weight
//! `S_ij = w_i · exp(e·|y_i − y_j|)`,
//!
//! `ℓ_i = −1/|P_i| Σ_{j∈P_i} log( e^{s_ij} / (Σ_{p∈P_i} e^{s_ip} + Σ_{k∈N_i} S_ik e^{s_ik}) )`,
//! `L = 1/n Σ_i w_i · ℓ_i · [N_i ≠ ∅]`.
//!
//! An anchor without positives contributes 0 (the official code divides by |P_i| = 0 and
//! returns NaN). The official code also adds e⁰ = 1 to the denominator for every non-positive j
//! (the self pair included) because it exponentiates a masked product; [`ConrConfig::
//! official_denominator`] reproduces that. Defaults are the official AgeDB-DIR ones: ω = 1,
//! τ = 0.07, e = 0.01, and the term enters the total loss with β = 4.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, invalid};

/// Settings of [`ConrLoss`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConrConfig {
    /// Label window ω > 0 (label units): positives within it, negatives beyond it.
    pub window: f64,
    /// Temperature τ > 0 of the cosine similarities (official: 0.07).
    pub temperature: f64,
    /// Growth rate e ≥ 0 of the pushing weight with label distance (official: 0.01).
    pub eta: f64,
    /// Weight β ≥ 0 of the term in the total loss (official: 4); used by callers that add it.
    pub beta: f64,
    /// Add 1 per non-positive pair to the denominator, as the official code does.
    pub official_denominator: bool,
}

impl Default for ConrConfig {
    fn default() -> Self {
        Self {
            window: 1.0,
            temperature: 0.07,
            eta: 0.01,
            beta: 4.0,
            official_denominator: false,
        }
    }
}

impl ConrConfig {
    /// Checks ω > 0, τ > 0, e ≥ 0, β ≥ 0, all finite.
    pub fn check(&self) -> candle_core::Result<()> {
        if !(self.window.is_finite() && self.window > 0.0) {
            return invalid("window", self.window, "a finite value > 0");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return invalid("temperature", self.temperature, "a finite value > 0");
        }
        if !(self.eta.is_finite() && self.eta >= 0.0) {
            return invalid("eta", self.eta, "a finite value >= 0");
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return invalid("beta", self.beta, "a finite value >= 0");
        }
        Ok(())
    }
}

/// The ConR regulariser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConrLoss {
    config: ConrConfig,
}

impl ConrLoss {
    /// The regulariser with a checked configuration.
    pub fn new(config: ConrConfig) -> candle_core::Result<Self> {
        config.check()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &ConrConfig {
        &self.config
    }

    /// ConR of features (n×D) with labels and predictions (n or n×1; predictions are not
    /// differentiated) and optional per-sample weights (n; 1 when `None`). Returns a scalar
    /// (unscaled by β); differentiable with respect to the features.
    pub fn loss(
        &self,
        features: &Tensor,
        labels: &Tensor,
        predictions: &Tensor,
        weights: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (n, _) = features.dims2().map_err(|_| {
            NnError::shape(format!(
                "conr: features must be (n, D), got {:?}",
                features.shape()
            ))
        })?;
        let host = |t: &Tensor, what: &str| -> candle_core::Result<Vec<f64>> {
            let v: Vec<f64> = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
            if v.len() != n {
                return Err(
                    NnError::shape(format!("conr: {} {what} for {n} features", v.len())).into(),
                );
            }
            Ok(v)
        };
        let y = host(labels, "labels")?;
        if let Some((i, v)) = y.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return invalid("label", format!("{v} at row {i}"), "finite labels");
        }
        let p = host(&predictions.detach(), "predictions")?;
        let w = match weights {
            Some(t) => host(&t.detach(), "weights")?,
            None => vec![1.0; n],
        };
        let c = &self.config;
        // Constant masks and weights of the pairs.
        let mut pos = vec![0.0f64; n * n];
        let mut push = vec![0.0f64; n * n];
        let mut extra = vec![0.0f64; n];
        let mut anchor = vec![0.0f64; n];
        // A row with neither positives nor negatives has an empty denominator; it is weighted 0,
        // and 1 in its denominator keeps its logarithm (and gradient) finite.
        let mut guard = vec![0.0f64; n];
        for i in 0..n {
            let (mut n_pos, mut n_neg) = (0usize, 0usize);
            for j in 0..n {
                let dy = (y[i] - y[j]).abs();
                if dy <= c.window {
                    if j != i {
                        pos[i * n + j] = 1.0;
                        n_pos += 1;
                    }
                } else if (p[i] - p[j]).abs() <= c.window {
                    push[i * n + j] = w[i] * (c.eta * dy).exp();
                    n_neg += 1;
                }
            }
            if c.official_denominator {
                extra[i] = (n - n_pos) as f64;
            }
            // w_i / (n |P_i|) for anchors with a positive and a negative, else 0.
            if n_pos > 0 && n_neg > 0 {
                anchor[i] = w[i] / (n as f64 * n_pos as f64);
            }
            if n_pos == 0 && n_neg == 0 {
                guard[i] = 1.0;
            }
        }
        let dev = features.device();
        let dt = features.dtype();
        let mat = |v: Vec<f64>| Tensor::from_vec(v, (n, n), dev)?.to_dtype(dt);
        let col = |v: Vec<f64>| Tensor::from_vec(v, (n, 1), dev)?.to_dtype(dt);
        let norm = features
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        let z = features.broadcast_div(&norm)?;
        let s = (dirkit_compute::ops::matmul(&z, &z.t()?)? / c.temperature)?;
        // Shift each row by its largest similarity (constant) so the exponentials stay finite.
        let m = s.detach().max_keepdim(1)?;
        let e = s.broadcast_sub(&m)?.exp()?;
        let pos_t = mat(pos)?;
        let denom = ((&e * &pos_t)?.sum_keepdim(1)?
            + (&e * mat(push)?)?.sum_keepdim(1)?
            + col(extra)?.mul(&m.neg()?.exp()?)?
            + col(guard)?)?;
        // log(denominator) − s_ij over the positives, in shifted terms.
        let log_denom = (denom.log()? + &m)?;
        let per_pair = (log_denom.broadcast_sub(&s)? * pos_t)?;
        (per_pair.sum_keepdim(1)? * col(anchor)?)?.sum_all()
    }
}
