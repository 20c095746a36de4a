//! Softmax losses for a binned target (methods.md §7): cross entropy, logit adjustment
//! (Menon et al. 2021) and its pairwise-margin general form, balanced softmax (Ren et al.
//! 2020), LDAM with deferred re-weighting (Cao et al. 2019), class-balanced weights (Cui et al.
//! 2019), softmax focal loss (Lin et al. 2017) and the hard-truncated cross entropy (Su).
//!
//! Each loss has a `*_terms` function returning the per-sample terms `(N)`, to be reduced with
//! [`reduce`](super::common::reduce) (optionally with per-sample weights), and the common
//! cases have a one-call mean. Logits are `(N, C)`, labels `N` integers in `0..C`.

use candle_core::{D, Result, Tensor};

use super::common::{check_labels, class_weights_of, pick};
use super::prior::{ClassPrior, PRIOR_EPS};
use crate::error::{NnError, invalid};

/// Default LDAM scale `s` (Cao et al. 2019).
pub const LDAM_SCALE: f64 = 30.0;
/// Default largest LDAM margin (Cao et al. 2019).
pub const LDAM_MAX_MARGIN: f64 = 0.5;
/// Default class-balanced `β` (Cui et al. 2019; LDAM-DRW's re-weighting).
pub const CB_BETA: f64 = 0.9999;
/// Default epoch from which DRW re-weights (Cao et al. 2019: 160 of 200 on CIFAR).
pub const DRW_EPOCH: usize = 160;

/// Per-sample cross entropy `−ln softmax(f)_y` (N).
pub fn cross_entropy_terms(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (_, _, y) = check_labels(logits, labels)?;
    pick(&candle_nn::ops::log_softmax(logits, D::Minus1)?, &y)?.neg()
}

/// Mean cross entropy.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    cross_entropy_terms(logits, labels)?.mean_all()
}

/// Per-sample logit-adjusted loss `CE(f + ln(π^τ + ε))` (Menon et al. 2021; the official
/// code's form of `τ ln π`, see [`ClassPrior::log_scaled`]), `ε` = [`PRIOR_EPS`]; τ = 1 is the
/// paper's default.
pub fn logit_adjusted_terms(
    logits: &Tensor,
    labels: &Tensor,
    prior: &ClassPrior,
    tau: f64,
) -> Result<Tensor> {
    let adjusted = add_log_prior(logits, prior, tau, PRIOR_EPS)?;
    cross_entropy_terms(&adjusted, labels)
}

/// Per-sample balanced softmax `CE(f + ln π)` (Ren et al. 2020): logit adjustment with τ = 1
/// and no `ε`, so every bin needs `π > 0` (counts clamped with
/// [`ClassPrior::from_counts_clamped`], or the LDS prior).
pub fn balanced_softmax_terms(
    logits: &Tensor,
    labels: &Tensor,
    prior: &ClassPrior,
) -> Result<Tensor> {
    let adjusted = add_log_prior(logits, prior, 1.0, 0.0)?;
    cross_entropy_terms(&adjusted, labels)
}

/// `f + ln(π^τ + ε)` broadcast over the rows.
fn add_log_prior(logits: &Tensor, prior: &ClassPrior, tau: f64, eps: f64) -> Result<Tensor> {
    prior.expect_len(logits.dim(D::Minus1)?)?;
    let log_prior = prior.log_tensor(tau, eps, logits.device(), logits.dtype())?;
    logits.broadcast_add(&log_prior)
}

/// `f − ln(π^τ + ε)` broadcast over the rows.
fn sub_log_prior(logits: &Tensor, prior: &ClassPrior, tau: f64, eps: f64) -> Result<Tensor> {
    prior.expect_len(logits.dim(D::Minus1)?)?;
    let log_prior = prior.log_tensor(tau, eps, logits.device(), logits.dtype())?;
    logits.broadcast_sub(&log_prior)
}

/// Post-hoc logit adjustment `f − ln(π^τ + ε) + ln(π^t + ε)` (`≈ f − τ ln π + ln π^t`): the logits of a model trained on
/// prior `π` re-targeted to the test prior `π^t` (uniform when `None`, where the last term is
/// a constant and is dropped), since `P^t(y|x) ∝ P(y|x) π^t_y / π_y` when `P(x|y)` is shared.
pub fn posthoc_adjust(
    logits: &Tensor,
    train_prior: &ClassPrior,
    tau: f64,
    test_prior: Option<&ClassPrior>,
) -> Result<Tensor> {
    let mut out = sub_log_prior(logits, train_prior, tau, PRIOR_EPS)?;
    if let Some(t) = test_prior {
        out = add_log_prior(&out, t, 1.0, PRIOR_EPS)?;
    }
    Ok(out)
}

/// The pairwise-margin general form of Menon et al. 2021 (their eq. 10):
/// `α_y · ln(1 + Σ_{y'≠y} exp(Δ_{yy'} + f_{y'} − f_y))`, with `alpha` (C) and `delta` (C×C,
/// row-major, the diagonal ignored). `Δ_{yy'} = τ ln(π_{y'}/π_y)` gives logit adjustment,
/// `α = 1/π` with `Δ = 0` weighted cross entropy, `Δ_{yy'} = m_y` LDAM without its scale.
pub fn pairwise_margin_terms(
    logits: &Tensor,
    labels: &Tensor,
    alpha: &[f64],
    delta: &[f64],
) -> Result<Tensor> {
    let (n, c, y) = check_labels(logits, labels)?;
    if alpha.len() != c || delta.len() != c * c {
        return Err(NnError::shape(format!(
            "pairwise margins need {c} alphas and {c}×{c} deltas, got {} and {}",
            alpha.len(),
            delta.len()
        ))
        .into());
    }
    if let Some(v) = alpha.iter().chain(delta).find(|v| !v.is_finite()) {
        return invalid("pairwise alpha/delta", v, "finite values");
    }
    // Zero the diagonal so the `y' = y` term is exp(0) = 1: the "1 +" of the formula.
    let mut d = delta.to_vec();
    for k in 0..c {
        d[k * c + k] = 0.0;
    }
    let (dev, dt) = (logits.device(), logits.dtype());
    let rows = y.flatten_all()?;
    let delta_rows = Tensor::from_vec(d, (c, c), dev)?
        .to_dtype(dt)?
        .index_select(&rows, 0)?;
    let f_y = pick(logits, &y)?.reshape((n, 1))?;
    let z = (delta_rows + logits.broadcast_sub(&f_y)?)?;
    let alpha_y = class_weights_of(alpha, &y, dt)?;
    z.log_sum_exp(D::Minus1)? * alpha_y
}

/// LDAM margins `m_j ∝ n_j^{-1/4}`, scaled so the largest is `max_margin` (Cao et al. 2019;
/// default [`LDAM_MAX_MARGIN`]). Empty classes count as 1 sample.
pub fn ldam_margins(counts: &[f64], max_margin: f64) -> Result<Vec<f64>> {
    if !(max_margin.is_finite() && max_margin > 0.0) {
        return invalid("ldam max_margin", max_margin, "a positive number");
    }
    if let Some(c) = counts.iter().find(|c| !(c.is_finite() && **c >= 0.0)) {
        return invalid("ldam class count", c, "finite and non-negative");
    }
    let raw: Vec<f64> = counts.iter().map(|&n| n.max(1.0).powf(-0.25)).collect();
    let top = raw.iter().cloned().fold(0.0, f64::max);
    Ok(raw.iter().map(|&m| m * max_margin / top).collect())
}

/// Per-sample LDAM loss `CE(s · (f − m_y 1_y))` (Cao et al. 2019): the true class's logit is
/// lowered by its margin before scaling by `s` (default [`LDAM_SCALE`]). The paper applies it
/// to cosine logits (a normalised classifier, [`super::decouple::NormedLinear`]).
pub fn ldam_terms(logits: &Tensor, labels: &Tensor, margins: &[f64], scale: f64) -> Result<Tensor> {
    let (n, c, y) = check_labels(logits, labels)?;
    if margins.len() != c {
        return Err(
            NnError::shape(format!("{} LDAM margins for {c} classes", margins.len())).into(),
        );
    }
    if !(scale.is_finite() && scale > 0.0) {
        return invalid("ldam scale", scale, "a positive number");
    }
    let dt = logits.dtype();
    let m_y = class_weights_of(margins, &y, dt)?.reshape((n, 1))?;
    let shifted = logits.broadcast_sub(&super::common::one_hot(&y, c, dt)?.broadcast_mul(&m_y)?)?;
    cross_entropy_terms(&(shifted * scale)?, labels)
}

/// Class-balanced weights by effective number, `(1 − β)/(1 − β^{n_c})` normalised to sum to
/// `C` (Cui et al. 2019; default β = [`CB_BETA`]); `β = 0` gives all ones. Empty classes
/// count as 1 sample.
pub fn class_balanced_weights(counts: &[f64], beta: f64) -> Result<Vec<f64>> {
    if !(0.0..1.0).contains(&beta) {
        return invalid("class-balanced beta", beta, "a number in [0, 1)");
    }
    if counts.is_empty() {
        return invalid("class-balanced classes", 0, "at least 1");
    }
    if let Some(c) = counts.iter().find(|c| !(c.is_finite() && **c >= 0.0)) {
        return invalid("class-balanced count", c, "finite and non-negative");
    }
    let raw: Vec<f64> = counts
        .iter()
        .map(|&n| {
            if beta == 0.0 {
                1.0
            } else {
                (1.0 - beta) / (1.0 - beta.powf(n.max(1.0)))
            }
        })
        .collect();
    let total: f64 = raw.iter().sum();
    let c = counts.len() as f64;
    Ok(raw.iter().map(|&w| w * c / total).collect())
}

/// The deferred re-weighting schedule of LDAM-DRW: per-class weights of 1 before `epoch`, the
/// class-balanced weights (β) from then on (Cao et al. 2019).
#[derive(Debug, Clone, PartialEq)]
pub struct Drw {
    /// First re-weighted epoch (0-based; default [`DRW_EPOCH`]).
    pub epoch: usize,
    /// Class-balanced weights used from `epoch` on.
    pub weights: Vec<f64>,
}

impl Drw {
    /// The schedule for `counts` with class-balanced `beta` from `epoch` on.
    pub fn new(counts: &[f64], beta: f64, epoch: usize) -> Result<Self> {
        Ok(Self {
            epoch,
            weights: class_balanced_weights(counts, beta)?,
        })
    }

    /// The per-class weights in `epoch`.
    pub fn weights_at(&self, epoch: usize) -> Vec<f64> {
        if epoch >= self.epoch {
            self.weights.clone()
        } else {
            vec![1.0; self.weights.len()]
        }
    }
}

/// Per-sample softmax focal loss `−α (1 − p_y)^γ ln p_y` (Lin et al. 2017); `γ = 0, α = 1` is
/// cross entropy.
pub fn softmax_focal_terms(
    logits: &Tensor,
    labels: &Tensor,
    gamma: f64,
    alpha: f64,
) -> Result<Tensor> {
    check_focal(gamma, alpha)?;
    let (_, _, y) = check_labels(logits, labels)?;
    let log_p = pick(&candle_nn::ops::log_softmax(logits, D::Minus1)?, &y)?;
    let modulator = log_p.exp()?.affine(-1.0, 1.0)?.powf(gamma)?;
    (modulator * log_p)?.affine(-alpha, 0.0)
}

/// The focal loss of the LDAM-DRW code: `(1 − e^{−ℓ})^γ ℓ` with `ℓ = w_y · CE`, i.e. the
/// "probability" is taken from the *weighted* cross entropy — a quirk of that implementation,
/// kept here to reproduce its numbers (without weights it is the softmax focal loss).
pub fn ldam_repo_focal_terms(
    logits: &Tensor,
    labels: &Tensor,
    class_weights: Option<&[f64]>,
    gamma: f64,
) -> Result<Tensor> {
    check_focal(gamma, 1.0)?;
    let mut ce = cross_entropy_terms(logits, labels)?;
    if let Some(w) = class_weights {
        let (_, c, y) = check_labels(logits, labels)?;
        if w.len() != c {
            return Err(
                NnError::shape(format!("{} class weights for {c} classes", w.len())).into(),
            );
        }
        ce = (ce * class_weights_of(w, &y, logits.dtype())?)?;
    }
    let modulator = ce.neg()?.exp()?.affine(-1.0, 1.0)?.powf(gamma)?;
    modulator * ce
}

pub(crate) fn check_focal(gamma: f64, alpha: f64) -> Result<()> {
    if !(gamma.is_finite() && gamma >= 0.0) {
        return invalid("focal gamma", gamma, "a non-negative number");
    }
    if !alpha.is_finite() {
        return invalid("focal alpha", alpha, "a finite number");
    }
    Ok(())
}

/// Per-sample hard-truncated cross entropy (Su): only samples whose true-class probability is
/// below `margin` (e.g. 0.6) contribute, `CE · 1[p_y < m]`; with `sharpness = Some(k)` the
/// step becomes `σ(k (m − p_y))`, a smooth loss whose gradient also flows through the gate.
pub fn truncated_ce_terms(
    logits: &Tensor,
    labels: &Tensor,
    margin: f64,
    sharpness: Option<f64>,
) -> Result<Tensor> {
    if !(margin > 0.0 && margin <= 1.0) {
        return invalid("truncation margin", margin, "a probability in (0, 1]");
    }
    let ce = cross_entropy_terms(logits, labels)?;
    let p_y = ce.neg()?.exp()?;
    let gate = match sharpness {
        None => p_y.lt(margin)?.to_dtype(ce.dtype())?,
        Some(k) if k.is_finite() && k > 0.0 => {
            candle_nn::ops::sigmoid(&p_y.affine(-k, k * margin)?)?
        }
        Some(k) => return invalid("truncation sharpness", k, "a positive number"),
    };
    ce * gate
}
