//! Element-wise regression losses (methods.md §6): MSE, L1, Huber and the Focal-R losses
//! focal-MSE / focal-L1 (Yang et al. 2021, "Delving into Deep Imbalanced Regression"), each
//! with optional per-sample weights, plus [`RegressionLoss`], one configured loss a head holds.
//!
//! Every loss is `mean_i w_i · l(e_i)` with `e = pred - target` and `w_i = 1` without weights
//! (the mean is over the batch, not over `Σ w`, as in the reference code). Predictions and
//! targets may each be `(B)` or `(B, 1)`: both are read as `B` values, so a `(B, 1)` head output
//! never broadcasts silently against `(B)` labels.

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, invalid};

/// Focal-R default `β` (Yang et al. 2021, official `loss.py`).
pub const FOCAL_BETA: f64 = 0.2;
/// Focal-R default `γ` (Yang et al. 2021, official `loss.py`).
pub const FOCAL_GAMMA: f64 = 1.0;
/// Default Huber threshold `β` (the DIR reference code).
pub const HUBER_BETA: f64 = 1.0;

/// Reads a `(B)` or `(B, 1)` tensor as `(B)`; any other shape is an error naming `what`.
pub(crate) fn as_batch(t: &Tensor, what: &str) -> Result<Tensor> {
    match t.dims() {
        [_] => Ok(t.clone()),
        [b, 1] => t.reshape(*b),
        dims => Err(NnError::shape(format!(
            "{what} must have shape (B) or (B, 1), got {dims:?}"
        ))
        .into()),
    }
}

/// Checks `pred` and `target` and returns both as `(B)` tensors in `pred`'s dtype (`B >= 1`).
pub(crate) fn pred_target(pred: &Tensor, target: &Tensor) -> Result<(Tensor, Tensor)> {
    let p = as_batch(pred, "pred")?;
    let t = as_batch(target, "target")?;
    let (bp, bt) = (p.dim(0)?, t.dim(0)?);
    if bp != bt {
        return Err(NnError::shape(format!(
            "pred has {bp} values ({:?}) but target has {bt} ({:?})",
            pred.dims(),
            target.dims()
        ))
        .into());
    }
    if bp == 0 {
        return Err(NnError::shape("empty batch (B = 0): the mean is undefined".into()).into());
    }
    let dtype = p.dtype();
    Ok((p, t.to_dtype(dtype)?))
}

/// Checks optional per-sample weights against a batch of `b` values and returns them as `(B)`
/// in `dtype`. The weights are used as given (not detached).
fn batch_weights(weights: Option<&Tensor>, b: usize, dtype: DType) -> Result<Option<Tensor>> {
    let Some(w) = weights else { return Ok(None) };
    let w1 = as_batch(w, "weights")?;
    if w1.dim(0)? != b {
        return Err(NnError::shape(format!(
            "weights have {} values ({:?}) but the batch has {b}",
            w1.dim(0)?,
            w.dims()
        ))
        .into());
    }
    Ok(Some(w1.to_dtype(dtype)?))
}

/// `mean_i w_i · terms_i` (weights optional), the reduction shared by every loss of this file.
pub(crate) fn weighted_mean(terms: Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
    let b = terms.dim(0)?;
    match batch_weights(weights, b, terms.dtype())? {
        Some(w) => (terms * w)?.mean_all(),
        None => terms.mean_all(),
    }
}

/// `|e|` with the subgradient 0 at `e = 0` (as PyTorch; candle's `abs` uses +1 there), and a
/// cheaper backward than `abs` (a multiplication instead of a comparison and a select).
pub(crate) fn abs(e: &Tensor) -> Result<Tensor> {
    e * e.sign()?.detach()
}

fn check_beta(name: &'static str, beta: f64) -> Result<()> {
    if beta.is_finite() && beta > 0.0 {
        Ok(())
    } else {
        invalid(name, beta, "a finite number > 0")
    }
}

/// Mean squared error `mean_i w_i (ŷ_i - y_i)²`, the plain regression loss (weights from LDS,
/// inverse frequency or DenseWeight make it the weighted MSE of the DIR papers).
pub fn mse(pred: &Tensor, target: &Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
    let (p, t) = pred_target(pred, target)?;
    weighted_mean((p - t)?.sqr()?, weights)
}

/// Mean absolute error `mean_i w_i |ŷ_i - y_i|`, with gradient 0 at `e = 0` (as PyTorch).
pub fn l1(pred: &Tensor, target: &Tensor, weights: Option<&Tensor>) -> Result<Tensor> {
    let (p, t) = pred_target(pred, target)?;
    weighted_mean(abs(&(p - t)?)?, weights)
}

/// Huber (smooth L1) loss: `0.5 e²/β` where `|e| < β`, else `|e| - 0.5 β`, weighted mean.
/// `β > 0`; the DIR reference code uses `β = 1` ([`HUBER_BETA`]).
pub fn huber(
    pred: &Tensor,
    target: &Tensor,
    beta: f64,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    check_beta("huber beta", beta)?;
    let (p, t) = pred_target(pred, target)?;
    let e = (p - t)?;
    let abs = abs(&e)?;
    let quadratic = (e.sqr()? * (0.5 / beta))?;
    let linear = (&abs - 0.5 * beta)?;
    let terms = abs.lt(beta)?.where_cond(&quadratic, &linear)?;
    weighted_mean(terms, weights)
}

/// The squashing function of Focal-R's modulating factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FocalActivation {
    /// `g = 2·sigmoid(β|e|) - 1` (the reference default).
    #[default]
    Sigmoid,
    /// `g = tanh(β|e|)`.
    Tanh,
}

/// Focal-R hyper-parameters (Yang et al. 2021): the factor `g^γ` scales each sample's loss by
/// how large its error is. Defaults `β = 0.2`, `γ = 1`, sigmoid, from the official code.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FocalConfig {
    /// Error scale `β > 0` inside the activation (default 0.2).
    pub beta: f64,
    /// Exponent `γ > 0` of the factor (default 1).
    pub gamma: f64,
    /// Sigmoid (default) or tanh.
    pub activation: FocalActivation,
}

impl Default for FocalConfig {
    fn default() -> Self {
        Self {
            beta: FOCAL_BETA,
            gamma: FOCAL_GAMMA,
            activation: FocalActivation::Sigmoid,
        }
    }
}

impl FocalConfig {
    /// Checks `β` and `γ` are finite and positive.
    pub fn validate(&self) -> Result<()> {
        check_beta("focal beta", self.beta)?;
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return invalid("focal gamma", self.gamma, "a finite number > 0");
        }
        Ok(())
    }

    /// The factor `g(|e|)^γ`, differentiable in `e` (the gradient flows through it, as in the
    /// official code).
    fn factor(&self, abs_e: &Tensor) -> Result<Tensor> {
        let x = (abs_e * self.beta)?;
        let g = match self.activation {
            FocalActivation::Sigmoid => ((candle_nn::ops::sigmoid(&x)? * 2.0)? - 1.0)?,
            FocalActivation::Tanh => x.tanh()?,
        };
        if self.gamma == 1.0 {
            Ok(g)
        } else if self.gamma > 1.0 {
            g.powf(self.gamma)
        } else {
            // d(g^γ)/dg = γ g^(γ-1) is infinite at g = 0 (e = 0) for γ < 1, and 0 · inf is
            // NaN; a floor keeps the gradient finite and changes the value only where
            // g < floor, where the term is negligible anyway.
            let floor = if g.dtype() == DType::F16 {
                6.2e-5
            } else {
                1e-30
            };
            g.maximum(floor)?.powf(self.gamma)
        }
    }
}

/// Focal-R MSE: `mean_i w_i e_i² · g(|e_i|)^γ` (Yang et al. 2021, `weighted_focal_mse_loss`).
pub fn focal_mse(
    pred: &Tensor,
    target: &Tensor,
    config: &FocalConfig,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    config.validate()?;
    let (p, t) = pred_target(pred, target)?;
    let e = (p - t)?;
    let factor = config.factor(&abs(&e)?)?;
    weighted_mean((e.sqr()? * factor)?, weights)
}

/// Focal-R L1: `mean_i w_i |e_i| · g(|e_i|)^γ` (Yang et al. 2021, `weighted_focal_l1_loss`).
pub fn focal_l1(
    pred: &Tensor,
    target: &Tensor,
    config: &FocalConfig,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    config.validate()?;
    let (p, t) = pred_target(pred, target)?;
    let abs = abs(&(p - t)?)?;
    let factor = config.factor(&abs)?;
    weighted_mean((abs * factor)?, weights)
}

fn default_huber_beta() -> f64 {
    HUBER_BETA
}

/// One configured element-wise loss, as a regression head holds it. Serialises as
/// `{"kind": "mse"}`, `{"kind": "huber", "beta": 1.0}`, `{"kind": "focal-l1", "beta": 0.2,
/// "gamma": 1.0, "activation": "sigmoid"}` (missing fields take the paper defaults). The
/// default is MSE.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RegressionLoss {
    /// Mean absolute error, [`l1`].
    L1,
    /// Mean squared error, [`mse`] (default).
    #[default]
    Mse,
    /// Huber loss, [`huber`].
    Huber {
        /// Threshold between the quadratic and linear parts (default 1).
        #[serde(default = "default_huber_beta")]
        beta: f64,
    },
    /// Focal-R L1, [`focal_l1`].
    FocalL1(FocalConfig),
    /// Focal-R MSE, [`focal_mse`].
    FocalMse(FocalConfig),
}

impl RegressionLoss {
    /// Checks the hyper-parameters (Huber `β > 0`, focal `β, γ > 0`, all finite).
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::L1 | Self::Mse => Ok(()),
            Self::Huber { beta } => check_beta("huber beta", *beta),
            Self::FocalL1(c) | Self::FocalMse(c) => c.validate(),
        }
    }

    /// The scalar loss `mean_i w_i l(ŷ_i - y_i)`; `pred`, `target` and `weights` are `(B)` or
    /// `(B, 1)`.
    pub fn compute(
        &self,
        pred: &Tensor,
        target: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        match self {
            Self::L1 => l1(pred, target, weights),
            Self::Mse => mse(pred, target, weights),
            Self::Huber { beta } => huber(pred, target, *beta, weights),
            Self::FocalL1(c) => focal_l1(pred, target, c, weights),
            Self::FocalMse(c) => focal_mse(pred, target, c, weights),
        }
    }
}
