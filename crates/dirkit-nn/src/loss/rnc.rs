//! Rank-N-Contrast (Zha et al., NeurIPS 2023): a contrastive loss that orders features by label
//! distance. For an anchor i and a positive j, the positive's similarity is contrasted against
//! every sample k at least as far from i in label as j is:
//!
//! `L = −1/(n(n−1)) Σ_i Σ_{j≠i} log( exp(s_ij) / Σ_{k≠i, d(y_i,y_k) ≥ d(y_i,y_j)} exp(s_ik) )`
//!
//! with `s_ij = −‖z_i − z_j‖₂ / τ` (τ = 2 by default) and `d` the L1 label distance, over the
//! `n = 2B` features of two augmented views of a batch of B samples. The official code uses the
//! encoder's features as they are; [`RncConfig::normalize`] L2-normalises them first.
//!
//! The loss and its gradient are computed on the host in f64 by the custom op [`RncOp`] in
//! O(n²·D + n² log n) — no n³ mask — once per step (the backward pass takes the gradient the
//! forward pass computed), and the result returns to the features' device.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Shape, Tensor};
use dirkit_compute::host_op::{Differentiable, HostGrad1, HostOp1, apply_host};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, invalid};

/// Settings of [`RncLoss`]. Defaults: τ = 2, features as they are (the official code).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RncConfig {
    /// Temperature τ > 0 dividing the negative L2 distance.
    pub temperature: f64,
    /// L2-normalise each feature vector before the distances.
    pub normalize: bool,
}

impl Default for RncConfig {
    fn default() -> Self {
        Self {
            temperature: 2.0,
            normalize: false,
        }
    }
}

impl RncConfig {
    /// Checks τ is finite and > 0.
    pub fn check(&self) -> candle_core::Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return invalid("temperature", self.temperature, "a finite value > 0");
        }
        Ok(())
    }
}

/// The Rank-N-Contrast loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RncLoss {
    config: RncConfig,
}

impl RncLoss {
    /// The loss with a checked configuration.
    pub fn new(config: RncConfig) -> candle_core::Result<Self> {
        config.check()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &RncConfig {
        &self.config
    }

    /// The loss of two views (B×D each, row i of both from sample i) with labels (B) or (B×L):
    /// the rows of both views are the n = 2B features. Two identical views (no augmentation)
    /// are refused.
    pub fn loss_two_views(
        &self,
        view1: &Tensor,
        view2: &Tensor,
        labels: &Tensor,
    ) -> candle_core::Result<Tensor> {
        if view1.dims() != view2.dims() {
            return Err(NnError::shape(format!(
                "rnc: the two views differ in shape ({:?} vs {:?})",
                view1.shape(),
                view2.shape()
            ))
            .into());
        }
        // Identical views carry no augmentation: every positive pair would sit at distance 0.
        if view1.dim(0)? > 0
            && view1
                .sub(view2)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?
                == 0.0
        {
            return Err(NnError::shape(
                "rnc: the two views are identical; Rank-N-Contrast needs two different \
                 augmentations of each sample"
                    .into(),
            )
            .into());
        }
        let features = Tensor::cat(&[view1, view2], 0)?;
        let labels = labels_matrix(labels, view1.dim(0)?)?;
        let labels = Tensor::cat(&[&labels, &labels], 0)?;
        self.loss(&features, &labels)
    }

    /// The loss over n features (n×D) with their labels (n) or (n×L). Fewer than two features
    /// give 0.
    pub fn loss(&self, features: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
        let (n, _) = features.dims2().map_err(|_| {
            NnError::shape(format!(
                "rnc: features must be (n, D), got {:?}",
                features.shape()
            ))
        })?;
        let labels = labels_matrix(labels, n)?;
        let label_values: Vec<Vec<f64>> = labels.to_dtype(DType::F64)?.to_vec2()?;
        // A NaN label has no rank among the others: refuse it rather than rank garbage.
        for (i, row) in label_values.iter().enumerate() {
            if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                return invalid("label", format!("{v} at row {i}"), "finite labels");
            }
        }
        let z = if self.config.normalize {
            let norm = features
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12, f64::MAX)?;
            features.broadcast_div(&norm)?
        } else {
            features.clone()
        };
        let op = RncOp {
            temperature: self.config.temperature,
            labels: label_values,
            grad: Arc::default(),
        };
        z.apply_op1(Differentiable(op))
    }
}

/// Labels as an (n, L) tensor, checking the count.
fn labels_matrix(labels: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    let m = match labels.rank() {
        1 => labels.unsqueeze(1)?,
        2 => labels.clone(),
        _ => {
            return Err(NnError::shape(format!(
                "rnc: labels must be (n) or (n, L), got {:?}",
                labels.shape()
            ))
            .into());
        }
    };
    if m.dim(0)? != n {
        return Err(NnError::shape(format!("rnc: {} labels for {n} features", m.dim(0)?)).into());
    }
    Ok(m)
}

/// The Rank-N-Contrast loss as a custom op on the features (n×D): scalar out, gradient on
/// the features in `bwd`. Labels (n rows of L values) are part of the op.
#[derive(Debug, Clone)]
pub struct RncOp {
    temperature: f64,
    labels: Vec<Vec<f64>>,
    /// The gradient the forward pass computed with the loss, taken by the backward pass.
    grad: Arc<Mutex<Option<Vec<f64>>>>,
}

/// Loss and feature gradient of Rank-N-Contrast on the host (features row-major n×D).
pub fn rnc_loss_and_grad(
    features: &[f64],
    d: usize,
    labels: &[Vec<f64>],
    temperature: f64,
) -> (f64, Vec<f64>) {
    let n = labels.len();
    let mut grad = vec![0.0; n * d];
    if n < 2 {
        return (0.0, grad);
    }
    let row = |i: usize| &features[i * d..(i + 1) * d];
    // Pairwise distances (symmetric).
    let mut dist = vec![0.0; n * n];
    for i in 0..n {
        for k in i + 1..n {
            let s: f64 = row(i)
                .iter()
                .zip(row(k))
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            dist[i * n + k] = s.sqrt();
            dist[k * n + i] = s.sqrt();
        }
    }
    let label_dist = |i: usize, k: usize| -> f64 {
        labels[i]
            .iter()
            .zip(&labels[k])
            .map(|(a, b)| (a - b).abs())
            .sum()
    };
    let scale = 1.0 / (n * (n - 1)) as f64;
    let mut loss = 0.0;
    // g[i*n+k] = ∂L/∂s_ik.
    let mut g = vec![0.0; n * n];
    let mut order: Vec<usize> = Vec::with_capacity(n - 1);
    let mut ld = vec![0.0; n];
    let mut e = vec![0.0; n];
    let mut denom = vec![0.0; n];
    for i in 0..n {
        order.clear();
        order.extend((0..n).filter(|&k| k != i));
        for &k in &order {
            ld[k] = label_dist(i, k);
        }
        // Logits, shifted by the row's largest for stable exponentials (the loss is unchanged).
        let smax = order
            .iter()
            .map(|&k| -dist[i * n + k] / temperature)
            .fold(f64::NEG_INFINITY, f64::max);
        for &k in &order {
            e[k] = (-dist[i * n + k] / temperature - smax).exp();
        }
        // Descending label distance: the denominator of positive j sums every k with
        // ld[k] ≥ ld[j], i.e. a running sum over this order taken at the end of j's tie group.
        order.sort_by(|&a, &b| ld[b].total_cmp(&ld[a]).then(a.cmp(&b)));
        let mut acc = 0.0;
        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            while end < order.len() && ld[order[end]] == ld[order[start]] {
                acc += e[order[end]];
                end += 1;
            }
            for &j in &order[start..end] {
                denom[j] = acc;
            }
            start = end;
        }
        // Ascending label distance: C_k = Σ over positives j with ld[j] ≤ ld[k] of 1/S_j.
        let mut inv_acc = 0.0;
        let mut end = order.len();
        while end > 0 {
            let mut start = end;
            while start > 0 && ld[order[start - 1]] == ld[order[end - 1]] {
                inv_acc += 1.0 / denom[order[start - 1]];
                start -= 1;
            }
            for &k in &order[start..end] {
                // Positive term of k (coefficient 1) against its share in the denominators.
                g[i * n + k] = -scale * (1.0 - e[k] * inv_acc);
            }
            end = start;
        }
        for &j in &order {
            let s_ij = -dist[i * n + j] / temperature - smax;
            loss -= scale * (s_ij - denom[j].ln());
        }
    }
    // s_ik = −‖z_i − z_k‖/τ: ∂s_ik/∂z_i = −(z_i − z_k)/(τ‖·‖), and the opposite for z_k; the
    // gradient at zero distance is taken as 0 (as torch's norm).
    for i in 0..n {
        for k in 0..n {
            let dik = dist[i * n + k];
            if i == k || dik == 0.0 {
                continue;
            }
            let c = g[i * n + k] / (temperature * dik);
            for t in 0..d {
                let diff = features[i * d + t] - features[k * d + t];
                grad[i * d + t] -= c * diff;
                grad[k * d + t] += c * diff;
            }
        }
    }
    (loss, grad)
}

impl HostOp1 for RncOp {
    fn name(&self) -> &'static str {
        "rank-n-contrast"
    }

    fn compute(&self, input: &[f64], shape: &Shape) -> candle_core::Result<(Vec<f64>, Shape)> {
        let (_, d) = shape.dims2()?;
        let (loss, grad) = rnc_loss_and_grad(input, d, &self.labels, self.temperature);
        if let Ok(mut slot) = self.grad.lock() {
            *slot = Some(grad);
        }
        Ok((vec![loss], Shape::from(())))
    }
}

/// The gradient of [`RncOp`] as a host op on the same features.
struct RncGrad<'a>(&'a RncOp);

impl HostOp1 for RncGrad<'_> {
    fn name(&self) -> &'static str {
        "rank-n-contrast-grad"
    }

    fn compute(&self, input: &[f64], shape: &Shape) -> candle_core::Result<(Vec<f64>, Shape)> {
        let (_, d) = shape.dims2()?;
        let (_, grad) = rnc_loss_and_grad(input, d, &self.0.labels, self.0.temperature);
        Ok((grad, shape.clone()))
    }
}

impl HostGrad1 for RncOp {
    fn grad(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Tensor> {
        // The forward pass's gradient when it is there (the usual loss → backward), else again.
        let cached = self.grad.lock().ok().and_then(|mut slot| slot.take());
        let grad = match cached {
            Some(g) => Tensor::from_vec(g, arg.shape(), arg.device())?.to_dtype(arg.dtype())?,
            None => apply_host(&RncGrad(self), arg)?,
        };
        grad.broadcast_mul(grad_res)
    }
}
