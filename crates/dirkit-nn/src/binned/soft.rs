//! Losses over the whole predicted bin distribution for ordinal targets such as age
//! (methods.md §7): Gaussian soft labels (DLDL, Gao et al. 2017, and its v2 with an expectation
//! L1 term, Gao et al. 2018) and the mean-variance loss (Pan et al. 2018).

use candle_core::{D, Result, Tensor};

use super::common::check_labels;
use crate::error::{NnError, invalid};

/// Default DLDL label-distribution σ, in label units (methods.md §7).
pub const DLDL_SIGMA: f64 = 2.0;
/// Default mean-variance loss weight of the mean term λ1 (Pan et al. 2018).
pub const MV_LAMBDA_MEAN: f64 = 0.2;
/// Default mean-variance loss weight of the variance term λ2 (Pan et al. 2018).
pub const MV_LAMBDA_VARIANCE: f64 = 0.05;

/// `(1, C)` tensor of the bins' values (the decoded label of each class).
fn values_row(values: &[f64], logits: &Tensor) -> Result<Tensor> {
    let c = logits.dim(D::Minus1)?;
    if values.len() != c {
        return Err(NnError::shape(format!("{} bin values for {c} classes", values.len())).into());
    }
    Tensor::from_slice(values, (1, c), logits.device())?.to_dtype(logits.dtype())
}

/// `(N, 1)` continuous targets in the logits' dtype.
fn target_column(targets: &Tensor, logits: &Tensor) -> Result<Tensor> {
    let n = logits.dim(0)?;
    let t = targets.flatten_all()?;
    if t.dim(0)? != n {
        return Err(NnError::shape(format!("{} targets for {n} rows of logits", t.dim(0)?)).into());
    }
    t.to_dtype(logits.dtype())?.reshape((n, 1))
}

/// Gaussian label distributions `q_ik ∝ exp(−(v_k − y_i)² / 2σ²)` (N, C) over the bin values
/// `v`, each row summing to 1 (DLDL). `y` are the continuous targets (N).
pub fn gaussian_soft_labels(
    targets: &Tensor,
    bin_values: &[f64],
    sigma: f64,
    like: &Tensor,
) -> Result<Tensor> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return invalid("soft-label sigma", sigma, "a positive number");
    }
    let v = values_row(bin_values, like)?;
    let y = target_column(targets, like)?;
    let z = v
        .broadcast_sub(&y)?
        .sqr()?
        .affine(-0.5 / (sigma * sigma), 0.0)?;
    candle_nn::ops::softmax(&z, D::Minus1)
}

/// Per-sample soft-label losses against the predicted distribution `p = softmax(f)`:
/// `(KL(q‖p), −Σ q ln p)`. The two differ by the entropy of `q`, a constant, so they have the
/// same gradient; KL is what DLDL reports.
pub fn soft_label_terms(logits: &Tensor, soft: &Tensor) -> Result<(Tensor, Tensor)> {
    if logits.dims() != soft.dims() {
        return Err(NnError::shape(format!(
            "soft labels {:?} for logits {:?}",
            soft.dims(),
            logits.dims()
        ))
        .into());
    }
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let q = soft.to_dtype(logits.dtype())?.detach();
    let cross = (&q * &log_p)?.sum(D::Minus1)?.neg()?;
    // q ln q with 0 ln 0 = 0: entries of q that underflow to 0 contribute nothing.
    let q_log_q = q.ne(0.0)?.where_cond(&(&q * q.log()?)?, &q.zeros_like()?)?;
    let kl = (&cross + q_log_q.sum(D::Minus1)?)?;
    Ok((kl, cross))
}

/// The expected value `Σ_k p_k v_k` (N) of the predicted distribution: DEX decoding, and the
/// mean of the mean-variance loss.
pub fn expectation(logits: &Tensor, bin_values: &[f64]) -> Result<Tensor> {
    let v = values_row(bin_values, logits)?;
    let p = candle_nn::ops::softmax(logits, D::Minus1)?;
    p.broadcast_mul(&v)?.sum(D::Minus1)
}

/// The predicted distribution's variance `Σ_k p_k (v_k − m)²` (N).
pub fn variance(logits: &Tensor, bin_values: &[f64]) -> Result<Tensor> {
    let v = values_row(bin_values, logits)?;
    let p = candle_nn::ops::softmax(logits, D::Minus1)?;
    let m = p.broadcast_mul(&v)?.sum_keepdim(D::Minus1)?;
    (p * v.broadcast_sub(&m)?.sqr()?)?.sum(D::Minus1)
}

/// DLDL-v2 (Gao et al. 2018): mean KL to the Gaussian soft labels plus `lambda` times the mean
/// L1 error of the expectation.
pub fn dldl_v2(
    logits: &Tensor,
    targets: &Tensor,
    bin_values: &[f64],
    sigma: f64,
    lambda: f64,
) -> Result<Tensor> {
    let q = gaussian_soft_labels(targets, bin_values, sigma, logits)?;
    let (kl, _) = soft_label_terms(logits, &q)?;
    let y = target_column(targets, logits)?.flatten_all()?;
    let l1 = (expectation(logits, bin_values)? - y)?.abs()?.mean_all()?;
    kl.mean_all()? + (l1 * lambda)?
}

/// The mean-variance loss (Pan et al. 2018): `CE + λ1 · mean((m − y)²/2) + λ2 · mean(var)`,
/// with `m`, `var` the mean and variance of the predicted distribution over the bin values,
/// `labels` the target bins and `targets` the continuous targets.
pub fn mean_variance_loss(
    logits: &Tensor,
    labels: &Tensor,
    targets: &Tensor,
    bin_values: &[f64],
    lambda_mean: f64,
    lambda_variance: f64,
) -> Result<Tensor> {
    check_labels(logits, labels)?;
    let ce = super::softmax::cross_entropy(logits, labels)?;
    let y = target_column(targets, logits)?.flatten_all()?;
    let mean_term = (expectation(logits, bin_values)? - y)?.sqr()?.mean_all()? * 0.5;
    let var_term = variance(logits, bin_values)?.mean_all()?;
    ce + (mean_term? * lambda_mean)? + (var_term * lambda_variance)?
}
