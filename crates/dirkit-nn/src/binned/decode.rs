//! Decoding a predicted bin distribution back to a continuous value (methods.md §7): the value
//! of the arg-max bin, the expectation over bins (DEX, Rothe et al. 2018), or the arg-max after
//! post-hoc logit adjustment toward a test prior.

use candle_core::{D, DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::prior::ClassPrior;
use super::soft::expectation;
use super::softmax::posthoc_adjust;
use crate::error::NnError;

/// How logits become a continuous prediction.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decoder {
    /// The value of the most probable bin.
    Argmax,
    /// `Σ_k p_k v_k`, the expected value (default: lower error on ordinal targets, and
    /// differentiable).
    #[default]
    Expectation,
    /// Arg-max of `f − τ ln π + ln π^t` (Menon et al. 2021), toward the uniform test prior
    /// unless the decoder is given another one.
    Adjusted {
        /// Adjustment strength τ (1 = the Bayes-optimal correction).
        tau: f64,
    },
}

/// Index of the largest logit of each row (N), first index on ties.
pub fn argmax_bins(logits: &Tensor) -> Result<Vec<usize>> {
    let idx: Vec<u32> = logits.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1()?;
    Ok(idx.into_iter().map(|i| i as usize).collect())
}

/// Decodes `(N, C)` logits to `N` values (a tensor in the logits' dtype and device, no host
/// copy) with the bins' `values`; `train_prior` is needed by [`Decoder::Adjusted`],
/// `test_prior` (uniform when `None`) only there.
pub fn decode_tensor(
    logits: &Tensor,
    values: &[f64],
    decoder: Decoder,
    train_prior: Option<&ClassPrior>,
    test_prior: Option<&ClassPrior>,
) -> Result<Tensor> {
    let c = logits.dim(D::Minus1)?;
    if values.len() != c {
        return Err(NnError::shape(format!("{} bin values for {c} classes", values.len())).into());
    }
    let by_argmax = |l: &Tensor| -> Result<Tensor> {
        let v = Tensor::from_slice(values, c, l.device())?.to_dtype(l.dtype())?;
        v.index_select(&l.argmax(D::Minus1)?, 0)
    };
    match decoder {
        Decoder::Argmax => by_argmax(logits),
        Decoder::Expectation => expectation(logits, values),
        Decoder::Adjusted { tau } => {
            let prior = train_prior.ok_or_else(|| {
                NnError::shape("the adjusted decoder needs the training prior".into())
            })?;
            by_argmax(&posthoc_adjust(logits, prior, tau, test_prior)?)
        }
    }
}

/// [`decode_tensor`] as host `f64` values.
pub fn decode(
    logits: &Tensor,
    values: &[f64],
    decoder: Decoder,
    train_prior: Option<&ClassPrior>,
    test_prior: Option<&ClassPrior>,
) -> Result<Vec<f64>> {
    decode_tensor(logits, values, decoder, train_prior, test_prior)?
        .to_dtype(DType::F64)?
        .to_vec1()
}
