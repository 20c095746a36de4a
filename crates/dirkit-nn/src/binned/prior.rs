//! Per-bin priors `π_b` of a binned target (methods.md §7): from the training counts, or from
//! the LDS effective density, normalised to sum to 1. The LDS prior is dirkit's own
//! combination: the kernel spreads mass into empty bins, so it needs no empty-bin clamp.

use candle_core::{DType, Device, Result, Tensor};
use dirkit_core::LabelDensity;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, invalid};

/// `ε` added to `π` inside the logarithms of logit adjustment (methods.md §7).
pub const PRIOR_EPS: f64 = 1e-12;

/// Class probabilities of the bins of a discretised target, summing to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassPrior {
    pi: Vec<f64>,
}

impl ClassPrior {
    /// `π_b = n_b / Σ n` from per-bin training counts; empty bins keep `π_b = 0` (logit
    /// adjustment then relies on its `ε`).
    pub fn from_counts(counts: &[f64]) -> Result<Self> {
        Self::from_probabilities(counts)
    }

    /// Counts raised to at least `min` before normalising, the balanced-softmax convention
    /// for empty bins (`min = 1`).
    pub fn from_counts_clamped(counts: &[f64], min: f64) -> Result<Self> {
        if !(min.is_finite() && min > 0.0) {
            return invalid("prior count clamp", min, "a positive number");
        }
        check(counts)?;
        let clamped: Vec<f64> = counts.iter().map(|&c| c.max(min)).collect();
        Self::from_probabilities(&clamped)
    }

    /// The normalised LDS effective density of a fitted [`LabelDensity`] (one entry per bin of
    /// its binning).
    pub fn from_density(density: &LabelDensity) -> Result<Self> {
        Self::from_probabilities(&density.effective_density)
    }

    /// The uniform prior over `bins` classes, the usual balanced test prior.
    pub fn uniform(bins: usize) -> Result<Self> {
        if bins == 0 {
            return invalid("prior bins", 0, "at least 1");
        }
        Ok(Self {
            pi: vec![1.0 / bins as f64; bins],
        })
    }

    /// Any non-negative masses (a known test prior, say), normalised to sum to 1.
    pub fn from_probabilities(mass: &[f64]) -> Result<Self> {
        check(mass)?;
        let total: f64 = mass.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return invalid("prior total mass", total, "a positive finite sum");
        }
        Ok(Self {
            pi: mass.iter().map(|&m| m / total).collect(),
        })
    }

    /// Number of bins (classes).
    pub fn len(&self) -> usize {
        self.pi.len()
    }

    /// Always false: a prior has at least one bin.
    pub fn is_empty(&self) -> bool {
        self.pi.is_empty()
    }

    /// The probabilities `π_b`.
    pub fn probabilities(&self) -> &[f64] {
        &self.pi
    }

    /// `ln(π_b^τ + ε)` per bin — the official logit-adjustment code's form, which is
    /// `τ ln π_b` wherever `π_b^τ ≫ ε` and stays finite for empty bins; `ε = 0` needs every
    /// `π_b > 0`. `τ ≥ 0`.
    pub fn log_scaled(&self, tau: f64, eps: f64) -> Result<Vec<f64>> {
        if !(tau.is_finite() && tau >= 0.0) {
            return invalid("tau", tau, "a non-negative number");
        }
        if eps == 0.0
            && let Some(b) = self.pi.iter().position(|&p| p <= 0.0)
        {
            return Err(NnError::shape(format!(
                "bin {b} has prior 0 and ε = 0: clamp the counts or use the LDS prior"
            ))
            .into());
        }
        Ok(self.pi.iter().map(|&p| (p.powf(tau) + eps).ln()).collect())
    }

    /// [`ClassPrior::log_scaled`] as a `(1, C)` tensor to add to logits.
    pub fn log_tensor(&self, tau: f64, eps: f64, device: &Device, dtype: DType) -> Result<Tensor> {
        let v = self.log_scaled(tau, eps)?;
        Tensor::from_vec(v, (1, self.len()), device)?.to_dtype(dtype)
    }

    /// Checks that the prior has `classes` bins.
    pub(crate) fn expect_len(&self, classes: usize) -> Result<()> {
        if self.len() != classes {
            return Err(NnError::shape(format!(
                "the prior has {} bins but the logits have {classes} classes",
                self.len()
            ))
            .into());
        }
        Ok(())
    }
}

fn check(mass: &[f64]) -> Result<()> {
    if mass.is_empty() {
        return invalid("prior bins", 0, "at least 1");
    }
    if let Some((b, &m)) = mass
        .iter()
        .enumerate()
        .find(|(_, m)| !(m.is_finite() && **m >= 0.0))
    {
        return invalid(
            "prior mass",
            format!("{m} (bin {b})"),
            "finite and non-negative",
        );
    }
    Ok(())
}

/// Classifier bias `τ · ln π_b` (Menon et al. 2021's initialisation: the logits start at the
/// training prior, so the weights learn only what the prior does not explain), computed as
/// `ln(π_b^τ + ε)` like the loss, so empty bins get `ln ε`.
pub fn prior_bias(prior: &ClassPrior, tau: f64) -> Result<Vec<f64>> {
    prior.log_scaled(tau, PRIOR_EPS)
}
