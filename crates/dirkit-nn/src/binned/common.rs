//! Shape checks, label handling and reductions shared by the discretised-label losses.

use candle_core::{D, DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::NnError;

/// How per-sample (or per-element) loss terms become one number. The losses' defaults follow
/// their reference implementations, so the choice is explicit where they disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// `Σ_i w_i ℓ_i / N` (`w = 1` without weights): the official class-balanced (TF) and
    /// logit-adjustment code.
    #[default]
    Mean,
    /// `Σ_i w_i ℓ_i / Σ_i w_i`: PyTorch's `cross_entropy(weight=…)`, used by LDAM-DRW.
    WeightedMean,
    /// `Σ_i w_i ℓ_i`.
    Sum,
}

/// `(N, C)` logits and `N` class labels: checks the shapes and that every label is below `C`,
/// and returns `(N, C, labels as a (N, 1) u32 tensor on the logits' device)`.
pub(crate) fn check_labels(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize, Tensor)> {
    let (n, c) = match logits.dims() {
        [n, c] => (*n, *c),
        dims => {
            return Err(NnError::shape(format!("logits must be (N, C), got {dims:?}")).into());
        }
    };
    if n == 0 || c == 0 {
        return Err(NnError::shape(format!("empty logits {:?}", logits.dims())).into());
    }
    let flat = labels.flatten_all()?;
    if flat.dim(0)? != n {
        return Err(NnError::shape(format!(
            "{} labels ({:?}) for {n} rows of logits",
            flat.dim(0)?,
            labels.dims()
        ))
        .into());
    }
    let host: Vec<i64> = flat.to_dtype(DType::I64)?.to_vec1()?;
    if let Some((i, &y)) = host
        .iter()
        .enumerate()
        .find(|(_, y)| **y < 0 || **y >= c as i64)
    {
        return Err(NnError::shape(format!(
            "label {y} of sample {i} is outside the {c} classes 0..{c}"
        ))
        .into());
    }
    let col = flat
        .to_dtype(DType::U32)?
        .to_device(logits.device())?
        .reshape((n, 1))?;
    Ok((n, c, col))
}

/// Row-wise `t[i, labels[i]]` as `(N)`; `labels` is the `(N, 1)` column of [`check_labels`].
pub(crate) fn pick(t: &Tensor, labels: &Tensor) -> Result<Tensor> {
    t.gather(labels, 1)?.squeeze(1)
}

/// One-hot `(N, C)` targets in `dtype` from the `(N, 1)` label column.
pub(crate) fn one_hot(labels: &Tensor, c: usize, dtype: DType) -> Result<Tensor> {
    let n = labels.dim(0)?;
    let classes = Tensor::arange(0u32, c as u32, labels.device())?.reshape((1, c))?;
    labels
        .broadcast_as((n, c))?
        .eq(&classes.broadcast_as((n, c))?)?
        .to_dtype(dtype)
}

/// Per-class weights (`C` values) as the per-sample weights `w_{y_i}` (`N`).
pub(crate) fn class_weights_of(
    class_weights: &[f64],
    labels: &Tensor,
    dtype: DType,
) -> Result<Tensor> {
    let w =
        Tensor::from_slice(class_weights, class_weights.len(), labels.device())?.to_dtype(dtype)?;
    w.index_select(&labels.flatten_all()?, 0)
}

/// Checks optional per-sample weights (`N`) and converts them to `dtype`.
pub(crate) fn sample_weights(
    weights: Option<&Tensor>,
    n: usize,
    dtype: DType,
) -> Result<Option<Tensor>> {
    let Some(w) = weights else { return Ok(None) };
    let w1 = w.flatten_all()?;
    if w1.dim(0)? != n {
        return Err(NnError::shape(format!(
            "{} weights ({:?}) for a batch of {n}",
            w1.dim(0)?,
            w.dims()
        ))
        .into());
    }
    Ok(Some(w1.to_dtype(dtype)?))
}

/// Reduces per-sample terms `(N)` with optional weights `(N)`.
pub fn reduce(terms: &Tensor, weights: Option<&Tensor>, reduction: Reduction) -> Result<Tensor> {
    let n = terms.dim(0)?;
    let w = sample_weights(weights, n, terms.dtype())?;
    let weighted = match &w {
        Some(w) => (terms * w)?,
        None => terms.clone(),
    };
    match reduction {
        Reduction::Mean => weighted.mean_all(),
        Reduction::Sum => weighted.sum_all(),
        Reduction::WeightedMean => match &w {
            Some(w) => weighted.sum_all()?.broadcast_div(&w.sum_all()?),
            None => weighted.mean_all(),
        },
    }
}

/// `ln σ(x)` and `ln σ(−x)` (= `ln(1 − σ(x))`) element-wise, from a log-softmax over `[0, x]`:
/// stable for any `x` and with the exact gradient at `x = 0`, where formulas built from
/// `relu` and `abs` take the wrong one-sided derivative.
pub(crate) fn log_sigmoid_pair(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let pair = Tensor::stack(&[&x.zeros_like()?, x], D::Minus1)?;
    let ls = candle_nn::ops::log_softmax(&pair, D::Minus1)?;
    let pos = ls.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
    let neg = ls.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
    Ok((pos, neg))
}

/// Element-wise binary cross entropy with logits, `−[y ln σ(x) + (1 − y) ln σ(−x)]`.
pub(crate) fn bce_with_logits(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (pos, neg) = log_sigmoid_pair(x)?;
    let one_minus_y = y.affine(-1.0, 1.0)?;
    ((y * pos)? + (one_minus_y * neg)?)?.neg()
}

/// Checks `(N, C)` float targets against `(N, C)` logits and converts them to the logits' dtype.
pub(crate) fn check_targets(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.dims() != targets.dims() || logits.rank() != 2 {
        return Err(NnError::shape(format!(
            "logits {:?} and targets {:?} must both be (N, C)",
            logits.dims(),
            targets.dims()
        ))
        .into());
    }
    targets.to_dtype(logits.dtype())
}
