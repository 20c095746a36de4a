//! The network of a run — ResNet backbone and DIR head — with its optimisers: one training
//! step, predictions, the FDS statistics pass, and the state a checkpoint needs.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dirkit_compute::adam::{Adam, AdamParams};
use dirkit_compute::models::{ResNet, init_resnet};
use dirkit_compute::train::{MultiStepLr, fill, seeded_init};
use dirkit_core::{Gmm1d, GmmConfig, LabelDensity, LdsConfig, OutOfRange};
use dirkit_nn::binned::{BinnedHead, BinnedHeadConfig};
use dirkit_nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit_nn::loss::balanced_mse::{
    BalancedMseConfig, BalancedMseVariant, BinPrior, GaussianMixture,
};
use dirkit_nn::loss::ghm::GhmRConfig;

use crate::config::{LossSpec, RunConfig};
use crate::error::{RecipeError, Result};

/// Variable-name prefix of the backbone in the `VarMap`.
pub const BACKBONE: &str = "backbone";
/// Variable-name prefix of the head in the `VarMap`.
pub const HEAD: &str = "head";

enum Head {
    Regression(RegressionHead),
    Binned(BinnedHead),
}

/// Backbone, head, optimisers and schedule of a run.
pub struct Model {
    varmap: VarMap,
    backbone: ResNet,
    head: Head,
    opt: Adam,
    sigma_opt: Option<Adam>,
    schedule: MultiStepLr,
}

/// Whether a `VarMap` name is a batch norm's running statistic (state, not a parameter).
fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
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
        let head = if let LossSpec::Binned { loss } = &config.loss {
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
                LossSpec::Binned { .. } => unreachable!("handled above"),
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
        if matches!(head, Head::Regression(_)) && !train_ages.is_empty() {
            let mean = train_ages.iter().sum::<f64>() / train_ages.len() as f64;
            fill(&varmap, &format!("{HEAD}.linear.bias"), mean)?;
        }
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
            Head::Binned(_) => None,
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
        let lr = self.schedule.lr(epoch);
        self.opt.set_lr(lr);
        lr
    }

    /// One optimisation step on images `x` (N, 3, H, W) with targets `y` (N): forward in
    /// training mode, the head's loss, backward, Adam (and σ's optimiser). Returns the loss as a
    /// detached f32 scalar on the model's device: on a GPU the step may still be running when
    /// this returns, and reading the value (`to_scalar`) waits for it, so a training loop reads
    /// it after queueing the next step.
    pub fn train_step(&mut self, x: &Tensor, y: &Tensor, epoch: usize) -> Result<Tensor> {
        let features = self.backbone.forward_t(x, true)?;
        let step = match &mut self.head {
            Head::Regression(h) => h.forward_train(&features, y, epoch)?,
            Head::Binned(h) => h.forward_train(&features, y, epoch)?,
        };
        let grads = step.loss.backward()?;
        self.opt.step(&grads)?;
        if let Some(o) = &mut self.sigma_opt {
            o.step(&grads)?;
        }
        Ok(step.loss.detach().to_dtype(DType::F32)?)
    }

    /// Predicted targets (N) of images `x`: batch norm in evaluation mode, no FDS.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<f64>> {
        let features = self.backbone.forward_t(x, false)?;
        let pred = match &self.head {
            Head::Regression(h) => h.forward(&features)?,
            Head::Binned(h) => h.forward(&features)?,
        };
        Ok(pred.to_dtype(DType::F64)?.to_vec1()?)
    }

    /// Whether the head has FDS with second-pass statistics to collect after an epoch.
    pub fn wants_second_pass(&self) -> bool {
        let fds = match &self.head {
            Head::Regression(h) => h.fds(),
            Head::Binned(h) => h.fds(),
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
        }
        Ok(())
    }

    /// End of `epoch`: FDS updates its statistics and the next epoch's calibration.
    pub fn end_epoch(&mut self, epoch: usize) -> Result<()> {
        match &mut self.head {
            Head::Regression(h) => h.end_epoch(epoch)?,
            Head::Binned(h) => h.end_epoch(epoch)?,
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
            Head::Binned(_) => None,
        }
    }

    /// Everything besides the `VarMap` that a resumed run needs: the head's state (FDS, σ,
    /// GHM, RankSim) and both optimisers' moments, under the prefixes `head/`, `opt/`, `sigma/`.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        let head = match &self.head {
            Head::Regression(h) => h.state_tensors()?,
            Head::Binned(h) => h.state_tensors()?,
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
        }
        self.opt.load_state_tensors(&with("opt/"))?;
        if let Some(o) = &mut self.sigma_opt {
            o.load_state_tensors(&with("sigma/"))?;
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
