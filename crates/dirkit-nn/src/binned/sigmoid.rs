//! Per-class sigmoid losses for a binned target (methods.md §7): sigmoid focal loss (Lin et al.
//! 2017, torchvision's form), the class-balanced sigmoid and focal losses (Cui et al. 2019),
//! GHM-C (Li et al. 2019) and ZLPR, the multi-label softmax-like loss (Su 2022). Targets are
//! `(N, C)` in `{0, 1}` ([`one_hot_targets`] makes them from labels).

use candle_core::{D, DType, Result, Tensor};

use super::common::{
    bce_with_logits, check_labels, check_targets, class_weights_of, log_sigmoid_pair,
};
use super::softmax::check_focal;
use crate::error::NnError;
use crate::loss::ghm::GradientDensity;

/// Default sigmoid-focal `α` (Lin et al. 2017).
pub const FOCAL_ALPHA: f64 = 0.25;
/// Default focal `γ` (Lin et al. 2017).
pub const FOCAL_GAMMA: f64 = 2.0;
/// Default GHM-C bins (Li et al. 2019).
pub const GHMC_BINS: usize = 10;
/// Default GHM-C EMA momentum of the bin counts (Li et al. 2019; mmdetection uses 0.75).
pub const GHMC_MOMENTUM: f64 = 0.75;

/// One-hot `(N, C)` targets in the logits' dtype from `N` labels.
pub fn one_hot_targets(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (_, c, y) = check_labels(logits, labels)?;
    super::common::one_hot(&y, c, logits.dtype())
}

/// Element-wise sigmoid focal loss `α_t (1 − p_t)^γ · BCE(x, t)` (N, C), with `p_t` the
/// probability of the target and `α_t = α t + (1 − α)(1 − t)`; `alpha = None` drops `α_t`
/// (torchvision's `alpha = −1`). Reduce with `mean_all` (torchvision), `sum_all`, or divide the
/// sum by the number of positives (RetinaNet).
pub fn sigmoid_focal_elementwise(
    logits: &Tensor,
    targets: &Tensor,
    gamma: f64,
    alpha: Option<f64>,
) -> Result<Tensor> {
    check_focal(gamma, alpha.unwrap_or(1.0))?;
    let t = check_targets(logits, targets)?;
    let (log_p, log_q) = log_sigmoid_pair(logits)?;
    let bce = ((&t * &log_p)? + (t.affine(-1.0, 1.0)? * &log_q)?)?.neg()?;
    // 1 − p_t = t·(1 − p) + (1 − t)·p.
    let one_minus_pt = ((&t * log_q.exp()?)? + (t.affine(-1.0, 1.0)? * log_p.exp()?)?)?;
    let mut loss = (one_minus_pt.powf(gamma)? * bce)?;
    if let Some(a) = alpha {
        loss = (loss * t.affine(2.0 * a - 1.0, 1.0 - a)?)?;
    }
    Ok(loss)
}

/// The class-balanced sigmoid loss of Cui et al. 2019: element-wise BCE (γ = 0) or sigmoid
/// focal loss (γ > 0, no `α_t`) on one-hot targets, each row weighted by its class's
/// class-balanced weight ([`super::softmax::class_balanced_weights`]), summed and divided by
/// the number of positives (`N`).
pub fn class_balanced_sigmoid(
    logits: &Tensor,
    labels: &Tensor,
    class_weights: &[f64],
    gamma: f64,
) -> Result<Tensor> {
    let (n, c, y) = check_labels(logits, labels)?;
    if class_weights.len() != c {
        return Err(NnError::shape(format!(
            "{} class weights for {c} classes",
            class_weights.len()
        ))
        .into());
    }
    let targets = super::common::one_hot(&y, c, logits.dtype())?;
    let elementwise = if gamma == 0.0 {
        bce_with_logits(logits, &targets)?
    } else {
        sigmoid_focal_elementwise(logits, &targets, gamma, None)?
    };
    let w = class_weights_of(class_weights, &y, logits.dtype())?.reshape((n, 1))?;
    elementwise.broadcast_mul(&w)?.sum_all()? / n as f64
}

/// GHM-C, the classification half of the gradient harmonizing mechanism (Li et al. 2019):
/// element-wise BCE weighted by the inverse density of the gradient norm `g = |σ(x) − t|`
/// ([`GradientDensity`], shared with GHM-R), summed and divided by the number of valid
/// elements. Stateful: with momentum the bin counts are a moving average across calls.
#[derive(Debug, Clone, PartialEq)]
pub struct GhmC {
    density: GradientDensity,
}

impl GhmC {
    /// `bins` equal intervals of `g` (default [`GHMC_BINS`]) and EMA `momentum` in `[0, 1)`
    /// (default [`GHMC_MOMENTUM`]; 0 uses the batch's counts only).
    pub fn new(bins: usize, momentum: f64) -> Result<Self> {
        Ok(Self {
            density: GradientDensity::new(bins, momentum)?,
        })
    }

    /// The gradient-density state (its moving-average counts).
    pub fn density(&self) -> &GradientDensity {
        &self.density
    }

    /// Mutable gradient-density state, to restore its counts from a checkpoint.
    pub fn density_mut(&mut self) -> &mut GradientDensity {
        &mut self.density
    }

    /// The loss of `(N, C)` logits against `(N, C)` targets; `valid` (`(N, C)` or `N`, non-zero =
    /// counted) leaves elements out of the density and the loss. The weights carry no gradient.
    pub fn loss(
        &mut self,
        logits: &Tensor,
        targets: &Tensor,
        valid: Option<&Tensor>,
    ) -> Result<Tensor> {
        let t = check_targets(logits, targets)?;
        let (n, c) = logits.dims2()?;
        let mask: Vec<bool> = match valid {
            None => vec![true; n * c],
            Some(v) => {
                let v = match v.dims() {
                    [m] if *m == n => v.reshape((n, 1))?.broadcast_as((n, c))?.contiguous()?,
                    [a, b] if (*a, *b) == (n, c) => v.clone(),
                    dims => {
                        return Err(NnError::shape(format!(
                            "valid mask {dims:?} for logits ({n}, {c})"
                        ))
                        .into());
                    }
                };
                v.to_dtype(DType::F64)?
                    .flatten_all()?
                    .to_vec1::<f64>()?
                    .iter()
                    .map(|&x| x != 0.0)
                    .collect()
            }
        };
        let p: Vec<f64> = candle_nn::ops::sigmoid(&logits.detach())?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        let tv: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let g: Vec<f64> = mask
            .iter()
            .zip(p.iter().zip(&tv))
            .filter(|(m, _)| **m)
            .map(|(_, (p, t))| (p - t).abs())
            .collect();
        let tot = g.len().max(1) as f64;
        let w_valid = self.density.weights(&g);
        let mut w = vec![0.0; n * c];
        let mut it = w_valid.into_iter();
        for (wi, m) in w.iter_mut().zip(&mask) {
            if *m {
                *wi = it.next().unwrap_or(0.0);
            }
        }
        let w = Tensor::from_vec(w, (n, c), logits.device())?.to_dtype(logits.dtype())?;
        (bce_with_logits(logits, &t)? * w)?.sum_all()? / tot
    }
}

/// Per-sample ZLPR loss (Su 2022) for multi-label targets `(N, C)` in `{0, 1}`:
/// `ln(1 + Σ_{neg} e^{s_i}) + ln(1 + Σ_{pos} e^{−s_j})`. Classes are masked by selection (a
/// `−∞` logit), not by adding `±1e12`, which overflows in half precision.
pub fn zlpr_terms(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let t = check_targets(logits, targets)?;
    let (n, _) = logits.dims2()?;
    let positive = t.ne(0.0)?;
    let neg_inf = logits.ones_like()?.affine(0.0, f64::NEG_INFINITY)?;
    let zeros = Tensor::zeros((n, 1), logits.dtype(), logits.device())?;
    let lse = |selected: Tensor| -> Result<Tensor> {
        Tensor::cat(&[&zeros, &selected], 1)?.log_sum_exp(D::Minus1)
    };
    let neg_part = lse(positive.where_cond(&neg_inf, logits)?)?;
    let pos_part = lse(positive.where_cond(&logits.neg()?, &neg_inf)?)?;
    neg_part + pos_part
}
