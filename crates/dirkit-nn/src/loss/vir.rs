//! VIR, variational imbalanced regression (Wang & Wang, NeurIPS 2023): a variational latent on
//! the backbone's features and a Normal-Inverse-Gamma (NIG) evidential head whose pseudo-counts
//! are re-weighted by the label-density weights, giving a prediction with aleatoric and
//! epistemic uncertainty.
//!
//! - **Latent.** The features h are the latent mean; a linear layer with a softplus gives its
//!   variance `v = softplus(W h) + 10⁻⁶`. Training samples `z = h + ε √v` (ε seeded);
//!   inference uses `z = h`.
//! - **Head** (the official conjugate-prior module, `--use_cdm`): a linear layer gives
//!   `(x̄, n, ω)` with `n = softplus_{0.1}(·) + 2` and `ω = softplus_{0.1}(·)`
//!   (`softplus_k(x) = ln(1 + e^{kx}) / k`). With the NIG prior (ν₀, α₀) = (0, 0.3) and the
//!   per-sample weight w (the LDS weights in training, 1 at inference), the NIG parameters are
//!   `γ = x̄, ν = ν₀ + n w, α = α₀ + n w / 2, β = ω` — the re-weighting acts on the evidence.
//! - **Loss**: `mean_i NLL_i + λ |y_i − γ_i| (2ν_i + α_i)` with the NIG negative log-likelihood
//!   `NLL = ½ ln(π/ν) − α ln(2β(1+ν)) + (α + ½) ln(ν (y−γ)² + 2β(1+ν)) + ln Γ(α) − ln Γ(α + ½)`
//!   and λ = 0.01.
//! - **Uncertainty**: aleatoric `β/(α−1)`, epistemic `β/(ν(α−1))`, and the predictive (Student-t)
//!   standard deviation `√(β(1+ν)/(ν(α−1)))` reported as σ.
//!
//! [`VirHead::with_prm`] adds the official probabilistic re-weighting module
//! ([`Prm`](crate::loss::prm::Prm)): the latent's per-label statistics smoothed across
//! neighbouring labels, calibrating `(h, v)` before sampling, with a statistics pass after each
//! epoch ([`VirHead::collect_stats`], [`VirHead::end_epoch`]) as FDS. The official image
//! reconstruction decoder is not part of this head.

use std::collections::HashMap;

use candle_core::{DType, Module, Shape, Tensor};
use candle_nn::VarBuilder;
use dirkit_compute::host_op::{Differentiable, HostGrad1, HostOp1, apply_host};
use dirkit_compute::nn::Linear;
use dirkit_core::special::{digamma, ln_gamma};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, invalid};
use crate::loss::elementwise::{abs, as_batch, pred_target, weighted_mean};
use crate::loss::prm::{Prm, PrmConfig};

/// Settings of [`VirHead`]; defaults are the official AgeDB-DIR ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VirConfig {
    /// Prior pseudo-count ν₀ ≥ 0 of the NIG mean (official: 0).
    pub prior_nu: f64,
    /// Prior shape α₀ ≥ 0 of the NIG variance (official: 0.3).
    pub prior_alpha: f64,
    /// Weight λ ≥ 0 of the evidence regulariser `|y − γ|(2ν + α)` (official: 0.01).
    pub reg: f64,
    /// Sharpness k > 0 of the head's softplus (official: 0.1).
    pub softplus_sharpness: f64,
    /// Smallest pseudo-count n the head can output (official: 2).
    pub min_evidence: f64,
    /// Sample the variational latent in training (`false`: use the features as they are).
    pub variational: bool,
}

impl Default for VirConfig {
    fn default() -> Self {
        Self {
            prior_nu: 0.0,
            prior_alpha: 0.3,
            reg: 0.01,
            softplus_sharpness: 0.1,
            min_evidence: 2.0,
            variational: true,
        }
    }
}

impl VirConfig {
    /// Checks every setting is finite and in range; α₀ + n_min/2 must exceed 1 so that the
    /// variance `β/(α−1)` exists at inference.
    pub fn check(&self) -> candle_core::Result<()> {
        let nonneg = [
            ("prior_nu", self.prior_nu),
            ("prior_alpha", self.prior_alpha),
            ("reg", self.reg),
        ];
        for (name, v) in nonneg {
            if !(v.is_finite() && v >= 0.0) {
                return invalid(name, v, "a finite value >= 0");
            }
        }
        if !(self.softplus_sharpness.is_finite() && self.softplus_sharpness > 0.0) {
            return invalid(
                "softplus_sharpness",
                self.softplus_sharpness,
                "a finite value > 0",
            );
        }
        if !(self.min_evidence.is_finite() && self.prior_alpha + self.min_evidence / 2.0 > 1.0) {
            return invalid(
                "min_evidence",
                self.min_evidence,
                "finite, with prior_alpha + min_evidence / 2 > 1",
            );
        }
        if self.prior_nu + self.min_evidence <= 0.0 {
            return invalid(
                "min_evidence",
                self.min_evidence,
                "prior_nu + min_evidence > 0",
            );
        }
        Ok(())
    }
}

/// `ln(1 + e^{kx}) / k`, computed as `relu(x) + ln(1 + e^{−k|x|}) / k` so it never overflows.
pub fn softplus(x: &Tensor, k: f64) -> candle_core::Result<Tensor> {
    let tail = (x.abs()? * (-k))?.exp()?.affine(1.0, 1.0)?.log()?;
    x.relu()? + (tail / k)?
}

/// `ln Γ(x)` element-wise with the digamma gradient (x > 0), on the host in f64.
#[derive(Debug, Clone, Copy)]
struct LnGamma;

impl HostOp1 for LnGamma {
    fn name(&self) -> &'static str {
        "ln-gamma"
    }

    fn compute(&self, input: &[f64], shape: &Shape) -> candle_core::Result<(Vec<f64>, Shape)> {
        Ok((input.iter().map(|&x| ln_gamma(x)).collect(), shape.clone()))
    }
}

struct Digamma;

impl HostOp1 for Digamma {
    fn name(&self) -> &'static str {
        "digamma"
    }

    fn compute(&self, input: &[f64], shape: &Shape) -> candle_core::Result<(Vec<f64>, Shape)> {
        Ok((input.iter().map(|&x| digamma(x)).collect(), shape.clone()))
    }
}

impl HostGrad1 for LnGamma {
    fn grad(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Tensor> {
        apply_host(&Digamma, arg)?.mul(grad_res)
    }
}

/// `ln Γ(x)` of a tensor (x > 0), differentiable (the gradient is the digamma function).
pub fn ln_gamma_tensor(x: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op1(Differentiable(LnGamma))
}

/// Normal-Inverse-Gamma parameters for a batch, each (B).
#[derive(Debug, Clone)]
pub struct NigParams {
    /// Mean γ of the prediction.
    pub gamma: Tensor,
    /// Pseudo-count ν > 0 of the mean.
    pub nu: Tensor,
    /// Shape α > 0 of the variance.
    pub alpha: Tensor,
    /// Scale β > 0 of the variance.
    pub beta: Tensor,
}

impl NigParams {
    /// Checks the four are (B) or (B, 1) of one length and returns them as (B).
    pub fn new(
        gamma: &Tensor,
        nu: &Tensor,
        alpha: &Tensor,
        beta: &Tensor,
    ) -> candle_core::Result<Self> {
        let (gamma, nu) = pred_target(gamma, nu)?;
        let (_, alpha) = pred_target(&gamma, alpha)?;
        let (_, beta) = pred_target(&gamma, beta)?;
        Ok(Self {
            gamma,
            nu,
            alpha,
            beta,
        })
    }
}

/// Per-sample NIG negative log-likelihood of targets (B) (the formula in the module docs).
pub fn nig_nll_terms(target: &Tensor, p: &NigParams) -> candle_core::Result<Tensor> {
    let (gamma, y) = pred_target(&p.gamma, target)?;
    let two_b_lambda = ((&p.nu + 1.0)? * &p.beta)?.affine(2.0, 0.0)?;
    let sq = (&y - &gamma)?.sqr()?;
    let half_log_pi_over_nu = (p.nu.log()?.neg()? + std::f64::consts::PI.ln())?.affine(0.5, 0.0)?;
    let a = (&p.alpha * two_b_lambda.log()?)?;
    let b = ((&p.alpha + 0.5)? * ((&p.nu * sq)? + &two_b_lambda)?.log()?)?;
    let lg = (ln_gamma_tensor(&p.alpha)? - ln_gamma_tensor(&(&p.alpha + 0.5)?)?)?;
    ((half_log_pi_over_nu - a)? + b)? + lg
}

/// Per-sample evidence regulariser `|y − γ| (2ν + α)`.
pub fn nig_reg_terms(target: &Tensor, p: &NigParams) -> candle_core::Result<Tensor> {
    let (gamma, y) = pred_target(&p.gamma, target)?;
    let evidence = ((&p.nu * 2.0)? + &p.alpha)?;
    abs(&(y - gamma)?)? * evidence
}

/// The evidential loss `mean_i w_i (NLL_i + λ |y_i − γ_i| (2ν_i + α_i))`, weights optional (VIR
/// re-weights through the evidence instead and passes `None`).
pub fn nig_loss(
    target: &Tensor,
    p: &NigParams,
    reg: f64,
    weights: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let terms = (nig_nll_terms(target, p)? + (nig_reg_terms(target, p)? * reg)?)?;
    weighted_mean(terms, weights)
}

/// The conjugate-prior transform of the head's raw outputs (B, 3) = (x̄, n, ω) into NIG
/// parameters, with the evidence n scaled by per-sample weights (B) (`None`: 1; not
/// differentiated). See the module documentation for the formulas.
pub fn nig_from_raw(
    raw: &Tensor,
    weights: Option<&Tensor>,
    config: &VirConfig,
) -> candle_core::Result<NigParams> {
    let c = config;
    let (b, k) = raw.dims2().map_err(|_| {
        NnError::shape(format!(
            "vir: raw head output must be (B, 3), got {:?}",
            raw.shape()
        ))
    })?;
    if k != 3 {
        return Err(NnError::shape(format!(
            "vir: raw head output must be (B, 3), got {:?}",
            raw.shape()
        ))
        .into());
    }
    let x_bar = raw.narrow(1, 0, 1)?.squeeze(1)?;
    let n = (softplus(&raw.narrow(1, 1, 1)?.squeeze(1)?, c.softplus_sharpness)? + c.min_evidence)?;
    let omega = softplus(&raw.narrow(1, 2, 1)?.squeeze(1)?, c.softplus_sharpness)?;
    let n = match weights {
        Some(w) => {
            let w = as_batch(w, "weights")?.to_dtype(n.dtype())?;
            if w.dim(0)? != b {
                return Err(NnError::shape(format!(
                    "vir: {} weights for a batch of {b}",
                    w.dim(0)?
                ))
                .into());
            }
            (n * w.detach())?
        }
        None => n,
    };
    Ok(NigParams {
        gamma: x_bar,
        nu: (&n + c.prior_nu)?,
        alpha: n.affine(0.5, c.prior_alpha)?,
        beta: omega,
    })
}

/// A VIR prediction per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct VirPrediction {
    /// γ, the predicted value.
    pub prediction: Vec<f64>,
    /// Aleatoric variance β/(α−1).
    pub aleatoric: Vec<f64>,
    /// Epistemic variance β/(ν(α−1)).
    pub epistemic: Vec<f64>,
    /// Predictive standard deviation √(aleatoric + epistemic) (label units).
    pub sigma: Vec<f64>,
}

impl VirPrediction {
    /// Uncertainties from NIG parameters (α > 1 expected; α ≤ 1 gives +∞ variances).
    pub fn from_params(p: &NigParams) -> candle_core::Result<Self> {
        let v = |t: &Tensor| -> candle_core::Result<Vec<f64>> { t.to_dtype(DType::F64)?.to_vec1() };
        let (g, nu, a, b) = (v(&p.gamma)?, v(&p.nu)?, v(&p.alpha)?, v(&p.beta)?);
        let mut out = Self {
            prediction: g,
            aleatoric: Vec::with_capacity(nu.len()),
            epistemic: Vec::with_capacity(nu.len()),
            sigma: Vec::with_capacity(nu.len()),
        };
        for i in 0..nu.len() {
            let excess = a[i] - 1.0;
            let (al, ep) = if excess > 0.0 {
                (b[i] / excess, b[i] / (nu[i] * excess))
            } else {
                (f64::INFINITY, f64::INFINITY)
            };
            out.aleatoric.push(al);
            out.epistemic.push(ep);
            out.sigma.push((al + ep).sqrt());
        }
        Ok(out)
    }
}

/// The output of [`VirHead::forward_train`]: NIG parameters and the latent's variance.
#[derive(Debug, Clone)]
pub struct VirTrainOutput {
    /// NIG parameters with the evidence re-weighted.
    pub params: NigParams,
    /// The latent's variance (B, D).
    pub latent_var: Tensor,
}

/// VIR's variational latent and conjugate-prior NIG head on features (B, D) of any backbone.
pub struct VirHead {
    config: VirConfig,
    latent_var: Linear,
    head: Linear,
    prm: Option<Prm>,
}

impl VirHead {
    /// Builds the head for `in_dim` features; weights from `vb` (`latent_var.*`, `nig.*`).
    pub fn new(config: VirConfig, in_dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        config.check()?;
        if in_dim == 0 {
            return invalid("in_dim", 0, "at least 1");
        }
        Ok(Self {
            config,
            latent_var: dirkit_compute::nn::linear(in_dim, in_dim, vb.pp("latent_var"))?,
            head: dirkit_compute::nn::linear(in_dim, 3, vb.pp("nig"))?,
            prm: None,
        })
    }

    /// Adds the probabilistic re-weighting module over the latent (official: bins 3…99 of
    /// AgeDB, gaussian ks 5 σ 2, momentum 0.9, calibrating from epoch 1).
    pub fn with_prm(mut self, config: PrmConfig) -> candle_core::Result<Self> {
        let dim = self.latent_var.weight().dim(0)?;
        self.prm = Some(Prm::new(config, dim)?);
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &VirConfig {
        &self.config
    }

    /// The probabilistic re-weighting module, if any.
    pub fn prm(&self) -> Option<&Prm> {
        self.prm.as_ref()
    }

    /// NIG parameters of latents z (B, D) with evidence weights (B) (`None`: 1).
    fn nig(&self, z: &Tensor, weights: Option<&Tensor>) -> candle_core::Result<NigParams> {
        nig_from_raw(&self.head.forward(z)?, weights, &self.config)
    }

    /// The latent's variance `softplus(W h) + 10⁻⁶` for features h (B, D).
    pub fn latent_variance(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        softplus(&self.latent_var.forward(features)?, 1.0)? + 1e-6
    }

    /// Training forward at `epoch`: the latent `(h, v)` calibrated by the PRM (when present and
    /// active, with the labels (B)), sampled with standard-normal noise from `seed` (when
    /// [`VirConfig::variational`]), and the evidence re-weighted by `weights` (B).
    pub fn forward_train(
        &self,
        features: &Tensor,
        labels: &Tensor,
        weights: Option<&Tensor>,
        epoch: usize,
        seed: u64,
    ) -> candle_core::Result<VirTrainOutput> {
        let var = self.latent_variance(features)?;
        let (mean, var) = match &self.prm {
            Some(p) => p.calibrate(features, &var, labels, epoch)?,
            None => (features.clone(), var),
        };
        let z = if self.config.variational {
            let mut rng = dirkit_core::SplitMix64::new(seed);
            let eps: Vec<f64> = (0..mean.elem_count()).map(|_| rng.normal()).collect();
            let eps = Tensor::from_vec(eps, mean.shape(), mean.device())?.to_dtype(mean.dtype())?;
            (&mean + (eps * var.sqrt()?)?)?
        } else {
            mean
        };
        Ok(VirTrainOutput {
            params: self.nig(&z, weights)?,
            latent_var: var,
        })
    }

    /// The PRM's statistics pass: latent means and variances of features (B, D) (not
    /// differentiated) with labels (B). No-op without a PRM.
    pub fn collect_stats(&mut self, features: &Tensor, labels: &Tensor) -> candle_core::Result<()> {
        if self.prm.is_none() {
            return Ok(());
        }
        let features = features.detach();
        let var = self.latent_variance(&features)?.detach();
        if let Some(p) = &mut self.prm {
            p.accumulate(&features, &var, labels)?;
        }
        Ok(())
    }

    /// End of `epoch`: the PRM updates its statistics and calibration. No-op without a PRM.
    pub fn end_epoch(&mut self, epoch: usize) -> candle_core::Result<()> {
        match &mut self.prm {
            Some(p) => p.end_epoch(epoch),
            None => Ok(()),
        }
    }

    /// The PRM's checkpoint state (empty without one).
    pub fn state_tensors(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        match &self.prm {
            Some(p) => p.state_tensors(),
            None => Ok(HashMap::new()),
        }
    }

    /// Restores [`VirHead::state_tensors`].
    pub fn load_state_tensors(&mut self, m: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        match &mut self.prm {
            Some(p) => p.load_state_tensors(m),
            None => Ok(()),
        }
    }

    /// Inference: the latent mean, evidence weight 1.
    pub fn forward(&self, features: &Tensor) -> candle_core::Result<NigParams> {
        self.nig(features, None)
    }

    /// The VIR loss of a training output against targets (B): [`nig_loss`] with λ, unweighted
    /// (the weights are already in the evidence).
    pub fn loss(&self, out: &VirTrainOutput, targets: &Tensor) -> candle_core::Result<Tensor> {
        nig_loss(targets, &out.params, self.config.reg, None)
    }
}
