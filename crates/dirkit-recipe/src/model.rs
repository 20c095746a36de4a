//! The network of a run — ResNet backbone and DIR head — with its optimisers: one training
//! step, predictions, the FDS statistics pass, and the state a checkpoint needs.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dirkit_compute::adam::{Adam, AdamParams};
use dirkit_compute::models::{ResNet, init_resnet};
use dirkit_compute::train::{MultiStepLr, fill, seeded_init};
use dirkit_core::{
    Gmm1d, GmmConfig, KernelKind, LabelDensity, LdsConfig, OutOfRange, PredictiveDist, Reweight,
};
use dirkit_nn::binned::{BinnedHead, BinnedHeadConfig};
use dirkit_nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit_nn::loss::balanced_mse::{
    BalancedMseConfig, BalancedMseVariant, BinPrior, GaussianMixture,
};
use dirkit_nn::loss::conr::ConrLoss;
use dirkit_nn::loss::ghm::GhmRConfig;
use dirkit_nn::loss::rnc::RncLoss;
use dirkit_nn::loss::uvote::{UvoteHead, uvote_norms};
use dirkit_nn::loss::vir::{VirConfig, VirHead, VirPrediction};

use crate::config::{LossSpec, RunConfig};
use crate::error::{RecipeError, Result};

/// Variable-name prefix of the backbone in the `VarMap`.
pub const BACKBONE: &str = "backbone";
/// Variable-name prefix of the head in the `VarMap`.
pub const HEAD: &str = "head";

enum Head {
    Regression(RegressionHead),
    Binned(BinnedHead),
    /// UVOTE's heads with the density of their re-weighting and, per head, the mean of
    /// `p^(−r_m)` over the training labels (so that each head's weights average 1 there).
    Uvote {
        head: UvoteHead,
        density: LabelDensity,
        norms: Vec<f64>,
    },
    /// VIR's head with the LDS weights of its evidence.
    Vir {
        head: VirHead,
        weights: LabelDensity,
    },
}

/// The density behind UVOTE's weights: raw counts (no clipping) smoothed by a gaussian of
/// σ = 2 bins over ±4 bins, the official code's KDE with bandwidth 2 on one-year bins.
fn uvote_density_config() -> LdsConfig {
    LdsConfig {
        reweight: Reweight::Inverse {
            clip_min: 0.0,
            clip_max: f64::MAX,
        },
        lds: Some(KernelKind::Gaussian.with(9, 2.0)),
        ..LdsConfig::default()
    }
}

/// Rank-N-Contrast's two stages.
struct RncStage {
    loss: RncLoss,
    pretrain_epochs: usize,
    fine_tune: bool,
    /// The second stage's learning rate on frozen features, relative to the run's.
    probe_scale: f64,
    /// Adam over the backbone alone, for the first stage.
    opt: Adam,
}

/// Backbone, head, optimisers and schedule of a run.
pub struct Model {
    varmap: VarMap,
    backbone: ResNet,
    head: Head,
    opt: Adam,
    sigma_opt: Option<Adam>,
    schedule: MultiStepLr,
    /// ConR and the LDS fit of its pushing weights.
    conr: Option<(ConrLoss, LabelDensity)>,
    rnc: Option<RncStage>,
    /// Run seed, epochs, and the steps taken in the current epoch (VIR's latent noise stream).
    seed: u64,
    epochs: usize,
    step_in_epoch: u64,
}

/// Whether a `VarMap` name is a batch norm's running statistic (state, not a parameter).
fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// The effective density of each label's bin.
fn per_sample(density: &LabelDensity, labels: &[f64]) -> Result<Vec<f64>> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let b = density
                .binning
                .bin(y, i, OutOfRange::Clip)?
                .ok_or_else(|| RecipeError::config(format!("label {y} outside the bins")))?;
            Ok(density.effective_density[b])
        })
        .collect()
}

/// Sets element `index` of the 1-D variable `name` (a bias) to `value`.
fn set_element(varmap: &VarMap, name: &str, index: usize, value: f64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|e| RecipeError::config(format!("the model's variables: {e}")))?;
    let var = data
        .get(name)
        .ok_or_else(|| RecipeError::config(format!("no variable {name}")))?;
    let mut v: Vec<f64> = var.as_tensor().to_dtype(DType::F64)?.to_vec1()?;
    let slot = v
        .get_mut(index)
        .ok_or_else(|| RecipeError::config(format!("{name} has no element {index}")))?;
    *slot = value;
    let len = v.len();
    let t = Tensor::from_vec(v, len, var.device())?.to_dtype(var.dtype())?;
    var.set(&t)?;
    Ok(())
}

/// The raw bias of VIR's β output that makes the head's predictive σ equal `sigma` when its
/// other raw outputs are 0: `σ² = β(1+ν)/(ν(α−1))` with `n = softplus_k(0) + n_min`,
/// `ν = ν₀ + n`, `α = α₀ + n/2`, and the inverse softplus `ln(e^{kβ} − 1)/k`.
fn vir_beta_bias(c: &VirConfig, sigma: f64) -> f64 {
    let k = c.softplus_sharpness;
    let n = std::f64::consts::LN_2 / k + c.min_evidence;
    let (nu, alpha) = (c.prior_nu + n, c.prior_alpha + n / 2.0);
    let beta = sigma * sigma * nu * (alpha - 1.0) / (1.0 + nu);
    // ln(e^{kβ} − 1)/k = β + ln(1 − e^{−kβ})/k, stable for large kβ.
    beta + (-(-k * beta).exp()).ln_1p() / k
}

/// Labels of a batch on the host.
fn host_labels(y: &Tensor) -> Result<Vec<f64>> {
    Ok(y.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?)
}

/// A (B) tensor of `values` in `like`'s dtype and device.
fn column(values: Vec<f64>, like: &Tensor) -> Result<Tensor> {
    let n = values.len();
    Ok(Tensor::from_vec(values, n, like.device())?.to_dtype(like.dtype())?)
}

impl Model {
    /// Builds and initialises the network of `config` for training labels `train_ages` (they
    /// fix the LDS weights, priors and the head's starting bias) on `device`, in f32.
    ///
    /// Initialisation is seeded by `config.seed`: torchvision's scheme for the backbone, PyTorch's
    /// `nn.Linear` default for the head, whose bias (regression head) starts at the mean training
    /// label so that short runs do not spend their first epochs walking to the label range.
    pub fn new(config: &RunConfig, train_ages: &[f64], device: &Device) -> Result<Self> {
        config.validate()?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let backbone = ResNet::new(config.arch.config(), vb.pp(BACKBONE))?;
        let dim = backbone.feature_dim();
        let density =
            |lds: &LdsConfig| LabelDensity::fit(train_ages, config.bins, OutOfRange::Clip, lds);
        let lds_weights = || density(&config.reweight.clone().unwrap_or_default());
        let head = if let LossSpec::Uvote { config: uv } = &config.loss {
            let density = LabelDensity::fit(
                train_ages,
                config.bins,
                OutOfRange::Clip,
                &uvote_density_config(),
            )?;
            let p = per_sample(&density, train_ages)?;
            let norms = uvote_norms(&p, &uv.exponents())?;
            Head::Uvote {
                head: UvoteHead::new(*uv, dim, vb.pp(HEAD))?,
                density,
                norms,
            }
        } else if let LossSpec::Vir { config: vc, prm } = &config.loss {
            let mut head = VirHead::new(*vc, dim, vb.pp(HEAD))?;
            if let Some(p) = prm {
                head = head.with_prm(p.clone())?;
            }
            Head::Vir {
                head,
                weights: lds_weights()?,
            }
        } else if let LossSpec::Binned { loss } = &config.loss {
            let lds = config.reweight.clone().unwrap_or_default();
            let head_config = BinnedHeadConfig {
                fds: config.fds.clone(),
                loss: loss.clone(),
                decoder: config.binned.decoder,
                prior: config.binned.prior,
                bias_init_tau: config.binned.bias_init_tau,
                ..BinnedHeadConfig::new(dim)
            };
            Head::Binned(BinnedHead::new(head_config, &density(&lds)?, vb.pp(HEAD))?)
        } else {
            let loss = match &config.loss {
                LossSpec::Pointwise { loss } => HeadLoss::Pointwise(*loss),
                LossSpec::Bmc => HeadLoss::BalancedMse(BalancedMseConfig::default()),
                LossSpec::Gai { components } => {
                    let gmm = Gmm1d::fit(
                        train_ages,
                        &GmmConfig {
                            k: *components,
                            seed: config.seed,
                            ..GmmConfig::default()
                        },
                    )?;
                    HeadLoss::BalancedMse(BalancedMseConfig {
                        variant: BalancedMseVariant::Gai(GaussianMixture::from_gmm(&gmm)?),
                        ..BalancedMseConfig::default()
                    })
                }
                LossSpec::Bni => {
                    let (counts, _) = config.bins.counts(train_ages, OutOfRange::Clip)?;
                    let prior = BinPrior::from_counts(&config.bins.values(), &counts)?;
                    HeadLoss::BalancedMse(BalancedMseConfig {
                        variant: BalancedMseVariant::Bni(prior),
                        ..BalancedMseConfig::default()
                    })
                }
                LossSpec::GhmR => HeadLoss::GhmR(GhmRConfig::default()),
                LossSpec::Binned { .. } | LossSpec::Uvote { .. } | LossSpec::Vir { .. } => {
                    unreachable!("handled above")
                }
            };
            let head_config = RegressionHeadConfig {
                fds: config.fds.clone(),
                loss,
                ranksim: config.ranksim.clone(),
                ..RegressionHeadConfig::new(dim)
            };
            let mut head = RegressionHead::new(head_config, vb.pp(HEAD))?;
            if let Some(lds) = &config.reweight {
                head = head.with_label_density(density(lds)?)?;
            }
            Head::Regression(head)
        };
        seeded_init(&varmap, config.seed)?;
        init_resnet(&varmap, config.seed)?;
        if !train_ages.is_empty() {
            let n = train_ages.len() as f64;
            let mean = train_ages.iter().sum::<f64>() / n;
            // The σ heads start at the spread of the labels (the error of predicting the mean),
            // so that a short run does not spend its epochs growing σ from about 1.
            let std = (train_ages.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(1e-3);
            match &head {
                Head::Regression(_) => fill(&varmap, &format!("{HEAD}.linear.bias"), mean)?,
                Head::Uvote { head, .. } => {
                    let c = head.config();
                    fill(&varmap, &format!("{HEAD}.mean.bias"), mean)?;
                    let s = (std / std::f64::consts::SQRT_2)
                        .ln()
                        .clamp(c.min_log_scale, c.max_log_scale);
                    fill(&varmap, &format!("{HEAD}.log_scale.bias"), s)?;
                }
                Head::Vir { head, .. } => {
                    let name = format!("{HEAD}.nig.bias");
                    set_element(&varmap, &name, 0, mean)?;
                    set_element(&varmap, &name, 2, vir_beta_bias(head.config(), std))?;
                }
                Head::Binned(_) => {}
            }
        }
        let conr = match &config.conr {
            Some(c) => Some((ConrLoss::new(*c)?, lds_weights()?)),
            None => None,
        };
        let params = AdamParams {
            lr: config.lr,
            weight_decay: config.weight_decay,
            ..AdamParams::default()
        };
        let opt = Adam::from_varmap(&varmap, |n| !is_running_stat(n), params)?;
        let sigma_opt = match &head {
            Head::Regression(h) => match h.noise_sigma() {
                Some(s) => Some(Adam::new(
                    vec![("noise_sigma".into(), s.clone())],
                    AdamParams {
                        lr: config.sigma_lr,
                        ..AdamParams::default()
                    },
                )?),
                None => None,
            },
            _ => None,
        };
        let rnc = match &config.rnc {
            Some(r) => Some(RncStage {
                loss: RncLoss::new(r.loss)?,
                pretrain_epochs: r.pretrain_epochs,
                fine_tune: r.fine_tune,
                probe_scale: r.probe_lr / config.lr,
                opt: Adam::from_varmap(
                    &varmap,
                    |n| n.starts_with(BACKBONE) && !is_running_stat(n),
                    params,
                )?,
            }),
            None => None,
        };
        Ok(Self {
            varmap,
            backbone,
            head,
            opt,
            sigma_opt,
            schedule: MultiStepLr {
                base: config.lr,
                milestones: config.milestones.clone(),
                gamma: config.lr_gamma,
            },
            conr,
            rnc,
            seed: config.seed,
            epochs: config.epochs,
            step_in_epoch: 0,
        })
    }

    /// The model's variables (backbone, head, batch-norm running statistics).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Number of trainable parameters (running statistics and Balanced MSE's σ excluded).
    pub fn parameter_count(&self) -> Result<usize> {
        Ok(self
            .named_vars()?
            .iter()
            .filter(|(k, _)| !is_running_stat(k))
            .map(|(_, v)| v.elem_count())
            .sum())
    }

    /// The Adam optimiser of the network.
    pub fn optimizer(&self) -> &Adam {
        &self.opt
    }

    /// Sets the learning rate of `epoch` from the step schedule and returns it.
    pub fn start_epoch(&mut self, epoch: usize) -> f64 {
        let mut lr = self.schedule.lr(epoch);
        if let Some(r) = &mut self.rnc {
            r.opt.set_lr(lr);
            if epoch >= r.pretrain_epochs && !r.fine_tune {
                lr *= r.probe_scale;
            }
        }
        self.opt.set_lr(lr);
        self.step_in_epoch = 0;
        lr
    }

    /// Whether `epoch` belongs to Rank-N-Contrast's pre-training stage (two views per batch,
    /// [`Model::pretrain_step`] instead of [`Model::train_step`]).
    pub fn is_pretraining(&self, epoch: usize) -> bool {
        self.rnc.as_ref().is_some_and(|r| epoch < r.pretrain_epochs)
    }

    /// One Rank-N-Contrast step on two augmented views `x1`, `x2` of the same images (labels
    /// `y`): both views through the backbone in one batch, the RnC loss, Adam on the backbone.
    pub fn pretrain_step(&mut self, x1: &Tensor, x2: &Tensor, y: &Tensor) -> Result<Tensor> {
        let Some(r) = &mut self.rnc else {
            return Err(RecipeError::config("pretrain_step without --rnc"));
        };
        let b = x1.dim(0)?;
        let features = self.backbone.forward_t(&Tensor::cat(&[x1, x2], 0)?, true)?;
        let loss =
            r.loss
                .loss_two_views(&features.narrow(0, 0, b)?, &features.narrow(0, b, b)?, y)?;
        let grads = loss.backward()?;
        r.opt.step(&grads)?;
        Ok(loss.detach().to_dtype(DType::F32)?)
    }

    /// One optimisation step on images `x` (N, 3, H, W) with targets `y` (N): forward in
    /// training mode, the head's loss (plus ConR), backward, Adam (and σ's optimiser). After
    /// Rank-N-Contrast pre-training the backbone is frozen (evaluation mode, no gradient)
    /// unless fine-tuned. Returns the loss as a detached f32 scalar on the model's device: on
    /// a GPU the step may still be running when this returns, and reading the value
    /// (`to_scalar`) waits for it, so a training loop reads it after queueing the next step.
    pub fn train_step(&mut self, x: &Tensor, y: &Tensor, epoch: usize) -> Result<Tensor> {
        if self.is_pretraining(epoch) {
            return Err(RecipeError::config(format!(
                "epoch {epoch} is a Rank-N-Contrast pre-training epoch: use pretrain_step"
            )));
        }
        let step_seed = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((epoch as u64) << 32)
            .wrapping_add(self.step_in_epoch);
        self.step_in_epoch += 1;
        let frozen = self.rnc.as_ref().is_some_and(|r| !r.fine_tune);
        let features = if frozen {
            self.backbone.forward_t(x, false)?.detach()
        } else {
            self.backbone.forward_t(x, true)?
        };
        let mut loss = match &mut self.head {
            Head::Regression(h) => h.forward_train(&features, y, epoch)?.loss,
            Head::Binned(h) => h.forward_train(&features, y, epoch)?.loss,
            Head::Uvote {
                head,
                density,
                norms,
            } => {
                let labels = host_labels(y)?;
                let p = per_sample(density, &labels)?;
                let exps = head.config().exponents();
                let m = exps.len();
                let mut w = Vec::with_capacity(p.len() * m);
                for pi in &p {
                    for (r, norm) in exps.iter().zip(norms.iter()) {
                        w.push(pi.powf(-r) / norm);
                    }
                }
                let w = Tensor::from_vec(w, (p.len(), m), features.device())?
                    .to_dtype(features.dtype())?;
                let out = head.forward(&features)?;
                head.loss(&out, y, Some(&w), epoch, self.epochs)?
            }
            Head::Vir { head, weights } => {
                let w = column(weights.sample_weights(&host_labels(y)?)?, &features)?;
                let out = head.forward_train(&features, y, Some(&w), epoch, step_seed)?;
                head.loss(&out, y)?
            }
        };
        if let Some((conr, density)) = &self.conr {
            let Head::Regression(h) = &self.head else {
                return Err(RecipeError::config("--conr needs the regression head"));
            };
            let pred = h.forward(&features)?.detach();
            let w = column(density.sample_weights(&host_labels(y)?)?, &features)?;
            let reg = conr.loss(&features, y, &pred, Some(&w))?;
            loss = (loss + (reg * conr.config().beta)?)?;
        }
        let grads = loss.backward()?;
        self.opt.step(&grads)?;
        if let Some(o) = &mut self.sigma_opt {
            o.step(&grads)?;
        }
        Ok(loss.detach().to_dtype(DType::F32)?)
    }

    /// Predicted targets (N) of images `x`: batch norm in evaluation mode, no FDS.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<f64>> {
        Ok(self.predict_with_sigma(x)?.0)
    }

    /// The distribution of the predicted σ, for the heads that predict one (UVOTE: Laplace,
    /// VIR: Gaussian of the Student-t's variance).
    pub fn uncertainty(&self) -> Option<PredictiveDist> {
        match &self.head {
            Head::Uvote { .. } => Some(PredictiveDist::Laplace),
            Head::Vir { .. } => Some(PredictiveDist::Gaussian),
            _ => None,
        }
    }

    /// Predicted targets (N) of images `x` and, for UVOTE and VIR, their standard deviations.
    pub fn predict_with_sigma(&self, x: &Tensor) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let features = self.backbone.forward_t(x, false)?;
        let pred = match &self.head {
            Head::Regression(h) => h.forward(&features)?,
            Head::Binned(h) => h.forward(&features)?,
            Head::Uvote { head, .. } => {
                let p = UvoteHead::predict(&head.forward(&features)?)?;
                return Ok((p.prediction, Some(p.sigma)));
            }
            Head::Vir { head, .. } => {
                let p = VirPrediction::from_params(&head.forward(&features)?)?;
                return Ok((p.prediction, Some(p.sigma)));
            }
        };
        Ok((pred.to_dtype(DType::F64)?.to_vec1()?, None))
    }

    /// Whether the head has FDS with second-pass statistics to collect after an epoch.
    pub fn wants_second_pass(&self) -> bool {
        let fds = match &self.head {
            Head::Regression(h) => h.fds(),
            Head::Binned(h) => h.fds(),
            Head::Vir { head, .. } => return head.prm().is_some(),
            Head::Uvote { .. } => None,
        };
        fds.is_some_and(|f| f.config().source == dirkit_nn::fds::StatsSource::SecondPass)
    }

    /// FDS's statistics pass on one training batch, as the reference does it: features of the
    /// augmented images with batch norm in training mode, no gradients.
    pub fn collect_fds_stats(&mut self, x: &Tensor, y: &Tensor) -> Result<()> {
        let features = self.backbone.forward_t(x, true)?.detach();
        match &mut self.head {
            Head::Regression(h) => h.collect_fds_stats(&features, y)?,
            Head::Binned(h) => h.collect_fds_stats(&features, y)?,
            Head::Vir { head, .. } => head.collect_stats(&features, y)?,
            Head::Uvote { .. } => {}
        }
        Ok(())
    }

    /// End of `epoch`: FDS updates its statistics and the next epoch's calibration.
    pub fn end_epoch(&mut self, epoch: usize) -> Result<()> {
        match &mut self.head {
            Head::Regression(h) => h.end_epoch(epoch)?,
            Head::Binned(h) => h.end_epoch(epoch)?,
            Head::Vir { head, .. } => head.end_epoch(epoch)?,
            Head::Uvote { .. } => {}
        }
        Ok(())
    }

    /// Balanced MSE's current noise σ, if that is the loss.
    pub fn noise_sigma(&self) -> Option<f64> {
        match &self.head {
            Head::Regression(h) => h
                .noise_sigma()
                .and_then(|s| s.as_tensor().to_dtype(DType::F64).ok())
                .and_then(|t| t.flatten_all().ok())
                .and_then(|t| t.to_vec1::<f64>().ok())
                .and_then(|v| v.first().copied()),
            _ => None,
        }
    }

    /// Everything besides the `VarMap` that a resumed run needs: the head's state (FDS, σ,
    /// GHM, RankSim) and both optimisers' moments, under the prefixes `head/`, `opt/`, `sigma/`.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        let head = match &self.head {
            Head::Regression(h) => h.state_tensors()?,
            Head::Binned(h) => h.state_tensors()?,
            Head::Vir { head, .. } => head.state_tensors()?,
            Head::Uvote { .. } => HashMap::new(),
        };
        for (k, v) in head {
            out.insert(format!("head/{k}"), v);
        }
        for (k, v) in self.opt.state_tensors()? {
            out.insert(format!("opt/{k}"), v);
        }
        if let Some(o) = &self.sigma_opt {
            for (k, v) in o.state_tensors()? {
                out.insert(format!("sigma/{k}"), v);
            }
        }
        if let Some(r) = &self.rnc {
            for (k, v) in r.opt.state_tensors()? {
                out.insert(format!("rnc/{k}"), v);
            }
        }
        Ok(out)
    }

    /// Restores [`Model::state_tensors`] (the `VarMap` is restored separately).
    pub fn load_state_tensors(&mut self, all: &HashMap<String, Tensor>) -> Result<()> {
        let with = |prefix: &str| -> HashMap<String, Tensor> {
            all.iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
                .collect()
        };
        match &mut self.head {
            Head::Regression(h) => h.load_state_tensors(&with("head/"))?,
            Head::Binned(h) => h.load_state_tensors(&with("head/"))?,
            Head::Vir { head, .. } => head.load_state_tensors(&with("head/"))?,
            Head::Uvote { .. } => {}
        }
        self.opt.load_state_tensors(&with("opt/"))?;
        if let Some(o) = &mut self.sigma_opt {
            o.load_state_tensors(&with("sigma/"))?;
        }
        if let Some(r) = &mut self.rnc {
            r.opt.load_state_tensors(&with("rnc/"))?;
        }
        Ok(())
    }

    /// The model's variables (running statistics included) in name order, for comparing two
    /// models.
    pub fn named_vars(&self) -> Result<Vec<(String, Var)>> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|e| RecipeError::config(format!("the model's variables: {e}")))?;
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }
}
