//! [`BinnedLoss`], the configured loss of a [`super::BinnedHead`], and its per-run state.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::common::{Reduction, reduce};
use super::prior::ClassPrior;
use super::sigmoid::{
    GhmC, class_balanced_sigmoid, one_hot_targets, sigmoid_focal_elementwise, zlpr_terms,
};
use super::soft::{dldl_v2, gaussian_soft_labels, mean_variance_loss, soft_label_terms};
use super::softmax::{
    Drw, balanced_softmax_terms, class_balanced_weights, cross_entropy_terms, ldam_margins,
    ldam_terms, logit_adjusted_terms, softmax_focal_terms, truncated_ce_terms,
};
use crate::error::invalid;

/// Which class-balanced loss (Cui et al. 2019).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassBalancedKind {
    /// Weighted softmax cross entropy, `Σ w_y ℓ / N` (the official code's reduction).
    Softmax,
    /// Weighted one-hot sigmoid BCE, summed over classes, divided by N.
    Sigmoid,
    /// Weighted sigmoid focal loss with this `γ`, summed over classes, divided by N.
    Focal {
        /// Focusing parameter γ.
        gamma: f64,
    },
}

/// A loss for a binned target; the parameters' defaults are the papers'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BinnedLoss {
    /// Plain cross entropy.
    CrossEntropy,
    /// Logit-adjusted loss `CE(f + τ ln π)` (τ = 1).
    LogitAdjusted {
        /// Adjustment strength τ.
        tau: f64,
    },
    /// Balanced softmax `CE(f + ln π)`; empty bins need the LDS prior or clamped counts (the
    /// head clamps counts to 1).
    BalancedSoftmax,
    /// LDAM (margins ∝ n^{-1/4}, largest `max_margin`, scale `s`) with optional deferred
    /// re-weighting from `drw_epoch` with class-balanced `drw_beta`, reduced as `Σ wℓ / Σ w`.
    Ldam {
        /// Largest margin (0.5).
        max_margin: f64,
        /// Logit scale s (30).
        scale: f64,
        /// First DRW epoch (0-based; 160 in the paper), or `None` for no re-weighting.
        drw_epoch: Option<usize>,
        /// Class-balanced β of DRW (0.9999).
        drw_beta: f64,
    },
    /// Class-balanced loss by effective number with `beta` (0.9999).
    ClassBalanced {
        /// β of the effective number.
        beta: f64,
        /// Softmax, sigmoid or focal form.
        form: ClassBalancedKind,
    },
    /// Softmax focal loss `−α(1 − p_y)^γ ln p_y` (γ = 2, α = 1).
    Focal {
        /// Focusing parameter γ.
        gamma: f64,
        /// Scalar weight α.
        alpha: f64,
    },
    /// Sigmoid focal loss on one-hot targets, mean over all elements (γ = 2, α = 0.25).
    SigmoidFocal {
        /// Focusing parameter γ.
        gamma: f64,
        /// `α_t` balance, or `None` for none.
        alpha: Option<f64>,
    },
    /// GHM-C on one-hot targets (10 bins, momentum 0.75).
    GhmC {
        /// Gradient-norm bins.
        bins: usize,
        /// EMA momentum of the bin counts.
        momentum: f64,
    },
    /// ZLPR on one-hot targets.
    Zlpr,
    /// Hard-truncated cross entropy (margin 0.6), smooth with `sharpness`.
    TruncatedCe {
        /// True-class probability above which a sample stops contributing.
        margin: f64,
        /// Sigmoid sharpness of the smooth form, or `None` for the hard step.
        sharpness: Option<f64>,
    },
    /// DLDL: KL to Gaussian soft labels of width `sigma` (label units), plus `lambda` × the L1
    /// error of the expectation (DLDL-v2; `lambda = 0` is DLDL).
    SoftLabels {
        /// σ of the label distribution (2).
        sigma: f64,
        /// Weight of the expectation L1 term (0).
        lambda: f64,
    },
    /// Mean-variance loss (λ1 = 0.2, λ2 = 0.05).
    MeanVariance {
        /// Weight of the mean term.
        lambda_mean: f64,
        /// Weight of the variance term.
        lambda_variance: f64,
    },
}

impl BinnedLoss {
    /// Logit adjustment with τ = 1.
    pub fn logit_adjusted() -> Self {
        Self::LogitAdjusted { tau: 1.0 }
    }

    /// LDAM-DRW with the paper's parameters (margin 0.5, s = 30, DRW from `drw_epoch`, β =
    /// 0.9999).
    pub fn ldam_drw(drw_epoch: usize) -> Self {
        Self::Ldam {
            max_margin: super::softmax::LDAM_MAX_MARGIN,
            scale: super::softmax::LDAM_SCALE,
            drw_epoch: Some(drw_epoch),
            drw_beta: super::softmax::CB_BETA,
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let positive = |name, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                invalid(name, v, "a positive number")
            }
        };
        let non_negative = |name, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                invalid(name, v, "a non-negative number")
            }
        };
        match *self {
            Self::CrossEntropy | Self::BalancedSoftmax | Self::Zlpr => Ok(()),
            Self::LogitAdjusted { tau } => non_negative("tau", tau),
            Self::Ldam {
                max_margin,
                scale,
                drw_beta,
                ..
            } => {
                positive("ldam max_margin", max_margin)?;
                positive("ldam scale", scale)?;
                beta_ok(drw_beta)
            }
            Self::ClassBalanced { beta, form } => {
                if let ClassBalancedKind::Focal { gamma } = form {
                    non_negative("focal gamma", gamma)?;
                }
                beta_ok(beta)
            }
            Self::Focal { gamma, alpha } => {
                non_negative("focal gamma", gamma)?;
                positive("focal alpha", alpha)
            }
            Self::SigmoidFocal { gamma, alpha } => {
                non_negative("focal gamma", gamma)?;
                match alpha {
                    Some(a) if !(0.0..=1.0).contains(&a) => {
                        invalid("focal alpha", a, "a number in [0, 1]")
                    }
                    _ => Ok(()),
                }
            }
            Self::GhmC { bins, momentum } => GhmC::new(bins, momentum).map(|_| ()),
            Self::TruncatedCe { margin, sharpness } => {
                if !(margin > 0.0 && margin <= 1.0) {
                    return invalid("truncation margin", margin, "a probability in (0, 1]");
                }
                sharpness.map_or(Ok(()), |k| positive("truncation sharpness", k))
            }
            Self::SoftLabels { sigma, lambda } => {
                positive("soft-label sigma", sigma)?;
                non_negative("soft-label lambda", lambda)
            }
            Self::MeanVariance {
                lambda_mean,
                lambda_variance,
            } => {
                non_negative("mean-variance lambda_mean", lambda_mean)?;
                non_negative("mean-variance lambda_variance", lambda_variance)
            }
        }
    }
}

fn beta_ok(beta: f64) -> Result<()> {
    if (0.0..1.0).contains(&beta) {
        Ok(())
    } else {
        invalid("class-balanced beta", beta, "a number in [0, 1)")
    }
}

/// What a binned loss knows about the training set: per-bin counts and the prior.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingBins {
    /// Training samples per bin.
    pub counts: Vec<f64>,
    /// The prior the adjusting losses use (from the counts or the LDS density).
    pub prior: ClassPrior,
    /// The value of each bin (what it decodes to).
    pub values: Vec<f64>,
}

/// A [`BinnedLoss`] ready to train: its fixed per-class quantities and its state (GHM-C).
pub(crate) struct LossState {
    loss: BinnedLoss,
    class_weights: Option<Vec<f64>>,
    margins: Option<Vec<f64>>,
    drw: Option<Drw>,
    ghm: Option<GhmC>,
    balanced_prior: Option<ClassPrior>,
}

impl LossState {
    pub(crate) fn new(loss: BinnedLoss, bins: &TrainingBins) -> Result<Self> {
        loss.validate()?;
        let mut s = Self {
            loss: loss.clone(),
            class_weights: None,
            margins: None,
            drw: None,
            ghm: None,
            balanced_prior: None,
        };
        match loss {
            BinnedLoss::Ldam {
                max_margin,
                drw_epoch,
                drw_beta,
                ..
            } => {
                s.margins = Some(ldam_margins(&bins.counts, max_margin)?);
                if let Some(e) = drw_epoch {
                    s.drw = Some(Drw::new(&bins.counts, drw_beta, e)?);
                }
            }
            BinnedLoss::ClassBalanced { beta, .. } => {
                s.class_weights = Some(class_balanced_weights(&bins.counts, beta)?);
            }
            BinnedLoss::GhmC { bins: b, momentum } => s.ghm = Some(GhmC::new(b, momentum)?),
            BinnedLoss::BalancedSoftmax => {
                // Counts have empty bins; an LDS prior has none and is used as it is.
                s.balanced_prior = Some(if bins.prior.probabilities().iter().all(|&p| p > 0.0) {
                    bins.prior.clone()
                } else {
                    ClassPrior::from_counts_clamped(&bins.counts, 1.0)?
                });
            }
            _ => {}
        }
        Ok(s)
    }

    /// GHM-C's state, when that is the loss.
    pub(crate) fn ghm_mut(&mut self) -> Option<&mut GhmC> {
        self.ghm.as_mut()
    }

    /// GHM-C's state, when that is the loss.
    pub(crate) fn ghm(&self) -> Option<&GhmC> {
        self.ghm.as_ref()
    }

    /// The loss of one batch: `labels` are the target bins, `targets` the continuous values.
    pub(crate) fn compute(
        &mut self,
        logits: &Tensor,
        labels: &Tensor,
        targets: &Tensor,
        epoch: usize,
        bins: &TrainingBins,
    ) -> Result<Tensor> {
        let mean = |t: Tensor| reduce(&t, None, Reduction::Mean);
        match &self.loss {
            BinnedLoss::CrossEntropy => mean(cross_entropy_terms(logits, labels)?),
            BinnedLoss::LogitAdjusted { tau } => {
                mean(logit_adjusted_terms(logits, labels, &bins.prior, *tau)?)
            }
            BinnedLoss::BalancedSoftmax => {
                let prior = self.balanced_prior.as_ref().unwrap_or(&bins.prior);
                mean(balanced_softmax_terms(logits, labels, prior)?)
            }
            BinnedLoss::Ldam { scale, .. } => {
                let margins = self.margins.as_deref().unwrap_or_default();
                let terms = ldam_terms(logits, labels, margins, *scale)?;
                match &self.drw {
                    Some(d) => {
                        let w = super::common::class_weights_of(
                            &d.weights_at(epoch),
                            &labels.flatten_all()?.to_dtype(candle_core::DType::U32)?,
                            logits.dtype(),
                        )?;
                        reduce(&terms, Some(&w), Reduction::WeightedMean)
                    }
                    None => mean(terms),
                }
            }
            BinnedLoss::ClassBalanced { form, .. } => {
                let w = self.class_weights.as_deref().unwrap_or_default();
                match form {
                    ClassBalancedKind::Softmax => {
                        let ws = super::common::class_weights_of(
                            w,
                            &labels.flatten_all()?.to_dtype(candle_core::DType::U32)?,
                            logits.dtype(),
                        )?;
                        reduce(
                            &cross_entropy_terms(logits, labels)?,
                            Some(&ws),
                            Reduction::Mean,
                        )
                    }
                    ClassBalancedKind::Sigmoid => class_balanced_sigmoid(logits, labels, w, 0.0),
                    ClassBalancedKind::Focal { gamma } => {
                        class_balanced_sigmoid(logits, labels, w, *gamma)
                    }
                }
            }
            BinnedLoss::Focal { gamma, alpha } => {
                mean(softmax_focal_terms(logits, labels, *gamma, *alpha)?)
            }
            BinnedLoss::SigmoidFocal { gamma, alpha } => {
                let t = one_hot_targets(logits, labels)?;
                sigmoid_focal_elementwise(logits, &t, *gamma, *alpha)?.mean_all()
            }
            BinnedLoss::GhmC { .. } => {
                let t = one_hot_targets(logits, labels)?;
                match &mut self.ghm {
                    Some(g) => g.loss(logits, &t, None),
                    None => candle_core::bail!("GHM-C state missing"),
                }
            }
            BinnedLoss::Zlpr => mean(zlpr_terms(logits, &one_hot_targets(logits, labels)?)?),
            BinnedLoss::TruncatedCe { margin, sharpness } => {
                mean(truncated_ce_terms(logits, labels, *margin, *sharpness)?)
            }
            BinnedLoss::SoftLabels { sigma, lambda } => {
                if *lambda > 0.0 {
                    dldl_v2(logits, targets, &bins.values, *sigma, *lambda)
                } else {
                    let q = gaussian_soft_labels(targets, &bins.values, *sigma, logits)?;
                    mean(soft_label_terms(logits, &q)?.0)
                }
            }
            BinnedLoss::MeanVariance {
                lambda_mean,
                lambda_variance,
            } => mean_variance_loss(
                logits,
                labels,
                targets,
                &bins.values,
                *lambda_mean,
                *lambda_variance,
            ),
        }
    }
}
