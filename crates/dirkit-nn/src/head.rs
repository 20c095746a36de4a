//! A regression head that adds DIR to any Candle backbone in a few lines: a linear layer on
//! the backbone's features, optional FDS, a configured loss, per-sample LDS weights and the
//! optional RankSim regulariser.
//!
//! ```no_run
//! # use candle_core::{DType, Device, Module, Tensor};
//! # use candle_nn::{VarBuilder, VarMap};
//! use dirkit_core::{Binning, LabelDensity, LdsConfig, OutOfRange};
//! use dirkit_nn::fds::FdsConfig;
//! use dirkit_nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
//! use dirkit_nn::loss::elementwise::RegressionLoss;
//! # fn main() -> candle_core::Result<()> {
//! # let (train_labels, device) = (vec![30.0f64; 8], Device::Cpu);
//! # let (features, targets) = (Tensor::zeros((8, 64), DType::F32, &device)?, Tensor::zeros(8, DType::F32, &device)?);
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
//! let config = RegressionHeadConfig {
//!     fds: Some(FdsConfig::new(64)),                       // FDS on the 64-d features
//!     loss: HeadLoss::Pointwise(RegressionLoss::L1),
//!     ..RegressionHeadConfig::new(64)
//! };
//! let lds = LabelDensity::fit(&train_labels, Binning::new(0.0, 1.0, 121).unwrap(),
//!                             OutOfRange::Clip, &LdsConfig::default()).unwrap();
//! let mut head = RegressionHead::new(config, vb.pp("head"))?.with_label_density(lds)?;
//! // In the training loop (features = backbone(x)):
//! let epoch = 0;
//! let step = head.forward_train(&features, &targets, epoch)?;   // step.loss.backward() …
//! // After the epoch, a no-grad pass feeds FDS, then:
//! head.collect_fds_stats(&features, &targets)?;
//! head.end_epoch(epoch)?;
//! // Inference: no FDS, no weights.
//! let predictions = head.forward(&features)?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use dirkit_compute::nn::Linear;
use dirkit_core::LabelDensity;
use serde::{Deserialize, Serialize};

use crate::error::NnError;
use crate::fds::{Fds, FdsConfig};
use crate::loss::balanced_mse::{BalancedMse, BalancedMseConfig};
use crate::loss::elementwise::RegressionLoss;
use crate::loss::ghm::{GhmR, GhmRConfig};
use crate::loss::ranksim::{RankSim, RankSimConfig};

/// The loss a head trains with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadLoss {
    /// A point-wise loss (L1, MSE, Huber, focal), multiplied by the per-sample LDS weights
    /// when the head has a label density.
    Pointwise(RegressionLoss),
    /// Balanced MSE (BMC, GAI or BNI) with a learnable noise σ ([`RegressionHead::noise_sigma`]).
    BalancedMse(BalancedMseConfig),
    /// GHM-R (gradient-density weighted authentic smooth L1).
    GhmR(GhmRConfig),
}

/// Configuration of a [`RegressionHead`]: input feature size, optional FDS, the loss and the
/// optional RankSim regulariser. Default loss: L1, the DIR benchmarks' training loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionHeadConfig {
    /// Feature dimension of the backbone's output.
    pub in_dim: usize,
    /// Feature distribution smoothing on the features, if any.
    pub fds: Option<FdsConfig>,
    /// The training loss.
    pub loss: HeadLoss,
    /// RankSim on the (uncalibrated) features, added to the loss, if any.
    pub ranksim: Option<RankSimConfig>,
}

impl RegressionHeadConfig {
    /// L1 loss, no FDS, no RankSim, for `in_dim` features.
    pub fn new(in_dim: usize) -> Self {
        Self {
            in_dim,
            fds: None,
            loss: HeadLoss::Pointwise(RegressionLoss::L1),
            ranksim: None,
        }
    }
}

/// What one training step computed.
#[derive(Debug, Clone)]
pub struct TrainStep {
    /// The scalar loss to call `backward()` on.
    pub loss: Tensor,
    /// Predictions (B), from the calibrated features.
    pub predictions: Tensor,
}

enum LossState {
    Pointwise(RegressionLoss),
    BalancedMse(BalancedMse),
    GhmR(GhmR),
}

impl LossState {
    fn is_pointwise(&self) -> bool {
        matches!(self, LossState::Pointwise(_))
    }
}

/// Linear regression head with DIR training: see the module documentation.
pub struct RegressionHead {
    config: RegressionHeadConfig,
    linear: Linear,
    fds: Option<Fds>,
    loss: LossState,
    ranksim: Option<RankSim>,
    density: Option<LabelDensity>,
}

impl RegressionHead {
    /// Builds the head; its linear layer's weights come from `vb` (so they live in the
    /// caller's `VarMap` and optimiser). Balanced MSE's σ is a separate variable: add
    /// [`RegressionHead::noise_sigma`] to an optimiser of its own, or leave it out to freeze it.
    pub fn new(config: RegressionHeadConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        if config.in_dim == 0 {
            return Err(crate::error::bad("in_dim", 0, "at least 1").into());
        }
        let linear = dirkit_compute::nn::linear(config.in_dim, 1, vb.pp("linear"))?;
        let fds = match &config.fds {
            Some(f) => {
                if f.feature_dim != config.in_dim {
                    return Err(NnError::shape(format!(
                        "FDS feature_dim {} differs from the head's in_dim {}",
                        f.feature_dim, config.in_dim
                    ))
                    .into());
                }
                Some(Fds::new(f.clone(), vb.device(), vb.dtype())?)
            }
            None => None,
        };
        let loss = match &config.loss {
            HeadLoss::Pointwise(l) => {
                l.validate()?;
                LossState::Pointwise(*l)
            }
            HeadLoss::BalancedMse(c) => {
                LossState::BalancedMse(BalancedMse::new(c.clone(), vb.device(), vb.dtype())?)
            }
            HeadLoss::GhmR(c) => LossState::GhmR(GhmR::new(*c)?),
        };
        let ranksim = config.ranksim.clone().map(RankSim::new).transpose()?;
        Ok(Self {
            config,
            linear,
            fds,
            loss,
            ranksim,
            density: None,
        })
    }

    /// Trains with per-sample weights from a fitted label density (LDS). Point-wise losses only.
    pub fn with_label_density(mut self, density: LabelDensity) -> candle_core::Result<Self> {
        if !self.loss.is_pointwise() {
            return Err(NnError::shape(
                "per-sample LDS weights apply to point-wise losses, not Balanced MSE or GHM-R"
                    .into(),
            )
            .into());
        }
        self.density = Some(density);
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &RegressionHeadConfig {
        &self.config
    }

    /// The FDS state, if the head has FDS.
    pub fn fds(&self) -> Option<&Fds> {
        self.fds.as_ref()
    }

    /// Balanced MSE's learnable noise σ, if that is the loss.
    pub fn noise_sigma(&self) -> Option<&candle_core::Var> {
        match &self.loss {
            LossState::BalancedMse(b) => Some(b.sigma()),
            _ => None,
        }
    }

    /// Per-sample weights (B) of `targets` from the label density, on the targets' device.
    fn weights(&self, targets: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let Some(d) = &self.density else {
            return Ok(None);
        };
        let y: Vec<f64> = targets.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let w = d.sample_weights(&y).map_err(NnError::from)?;
        let n = w.len();
        Ok(Some(
            Tensor::from_vec(w, n, targets.device())?.to_dtype(targets.dtype())?,
        ))
    }

    /// One training step: (online FDS statistics,) FDS calibration from `epoch`'s snapshot,
    /// the linear prediction, the configured loss with LDS weights, plus RankSim.
    /// `features` (B×in_dim), `targets` (B or B×1).
    pub fn forward_train(
        &mut self,
        features: &Tensor,
        targets: &Tensor,
        epoch: usize,
    ) -> candle_core::Result<TrainStep> {
        self.step(features, targets, None, epoch)
    }

    /// [`RegressionHead::forward_train`] with the caller's per-sample weights (B; DenseWeight,
    /// relevance or any other scheme) in place of the label density's. Point-wise losses only.
    pub fn forward_train_weighted(
        &mut self,
        features: &Tensor,
        targets: &Tensor,
        weights: &Tensor,
        epoch: usize,
    ) -> candle_core::Result<TrainStep> {
        if !self.loss.is_pointwise() {
            return Err(NnError::shape(
                "per-sample weights apply to point-wise losses, not Balanced MSE or GHM-R".into(),
            )
            .into());
        }
        self.step(features, targets, Some(weights), epoch)
    }

    fn step(
        &mut self,
        features: &Tensor,
        targets: &Tensor,
        weights: Option<&Tensor>,
        epoch: usize,
    ) -> candle_core::Result<TrainStep> {
        let targets = targets.flatten_all()?;
        let z = match &mut self.fds {
            Some(f) => f.train_features(features, &targets, epoch)?,
            None => features.clone(),
        };
        let predictions = self.linear.forward(&z)?.flatten_all()?;
        let targets = targets.to_dtype(predictions.dtype())?;
        let w = match (self.loss.is_pointwise(), weights) {
            (true, Some(w)) => Some(w.flatten_all()?.to_dtype(predictions.dtype())?),
            (true, None) => self.weights(&targets)?,
            _ => None,
        };
        let mut loss = match &mut self.loss {
            LossState::Pointwise(l) => l.compute(&predictions, &targets, w.as_ref())?,
            LossState::BalancedMse(b) => b.loss(&predictions, &targets)?,
            LossState::GhmR(g) => g.loss(&predictions, &targets)?,
        };
        if let Some(r) = &mut self.ranksim {
            loss = (loss + r.loss(features, &targets)?)?;
        }
        Ok(TrainStep { loss, predictions })
    }

    /// Feeds uncalibrated features of a no-grad pass to FDS ([`crate::fds::StatsSource::SecondPass`]).
    /// A no-op without FDS or with online statistics (they are collected in
    /// [`RegressionHead::forward_train`]).
    pub fn collect_fds_stats(
        &mut self,
        features: &Tensor,
        targets: &Tensor,
    ) -> candle_core::Result<()> {
        match &mut self.fds {
            Some(f) => f.collect_second_pass(features, targets),
            None => Ok(()),
        }
    }

    /// End-of-epoch hook: updates the FDS statistics and calibration for the next epoch.
    pub fn end_epoch(&mut self, epoch: usize) -> candle_core::Result<()> {
        match &mut self.fds {
            Some(f) => f.end_epoch(epoch),
            None => Ok(()),
        }
    }

    /// The head's state that does not live in the caller's `VarMap` — configuration, label
    /// density, FDS statistics, Balanced MSE's σ, GHM-R's moving-average counts, RankSim's random
    /// stream position — as named
    /// tensors (the linear layer's
    /// weights are saved with the `VarMap`).
    pub fn state_tensors(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        let mut m = match &self.fds {
            Some(f) => f.state_tensors()?,
            None => HashMap::new(),
        };
        let meta =
            serde_json::to_vec(&(&self.config, &self.density)).map_err(candle_core::Error::wrap)?;
        let n = meta.len();
        m.insert(
            "head.config_json".into(),
            Tensor::from_vec(meta, n, &Device::Cpu)?,
        );
        if let Some(s) = self.noise_sigma() {
            m.insert(
                "head.noise_sigma".into(),
                s.as_tensor().to_dtype(DType::F64)?,
            );
        }
        if let Some(r) = &self.ranksim {
            let state = r.rng_state();
            m.insert(
                "head.ranksim_rng".into(),
                Tensor::new(&[(state >> 32) as u32, state as u32], &Device::Cpu)?,
            );
        }
        if let LossState::GhmR(g) = &self.loss {
            let acc = g.density().acc_sum().to_vec();
            let b = acc.len();
            m.insert(
                "head.ghm_acc_sum".into(),
                Tensor::from_vec(acc, b, &Device::Cpu)?,
            );
        }
        Ok(m)
    }

    /// Saves [`RegressionHead::state_tensors`] to a safetensors file.
    pub fn save_state(&self, path: impl AsRef<Path>) -> candle_core::Result<()> {
        candle_core::safetensors::save(&self.state_tensors()?, path)
    }

    /// Restores the state saved by [`RegressionHead::save_state`] into a head built with the
    /// same configuration (the linear weights come back with the `VarMap`).
    pub fn load_state(&mut self, path: impl AsRef<Path>) -> candle_core::Result<()> {
        self.load_state_tensors(&candle_core::safetensors::load(path, &Device::Cpu)?)
    }

    /// Restores [`RegressionHead::state_tensors`] (e.g. read back from a checkpoint) into a
    /// head built with the same configuration.
    pub fn load_state_tensors(&mut self, m: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let meta: Vec<u8> = m
            .get("head.config_json")
            .ok_or_else(|| candle_core::Error::Msg("head state lacks head.config_json".into()))?
            .to_vec1()?;
        let (config, density): (RegressionHeadConfig, Option<LabelDensity>) =
            serde_json::from_slice(&meta).map_err(candle_core::Error::wrap)?;
        if config != self.config {
            return Err(NnError::shape(
                "the saved head was built with another configuration".into(),
            )
            .into());
        }
        self.density = density;
        if let Some(f) = &mut self.fds {
            let w = self.linear.weight();
            *f = Fds::from_state_tensors(m, w.device(), w.dtype())?;
        }
        if let (Some(s), Some(t)) = (self.noise_sigma(), m.get("head.noise_sigma")) {
            s.set(&t.to_dtype(s.dtype())?.to_device(s.device())?)?;
        }
        if let LossState::GhmR(g) = &mut self.loss {
            let acc: Vec<f64> = m
                .get("head.ghm_acc_sum")
                .ok_or_else(|| candle_core::Error::Msg("head state lacks head.ghm_acc_sum".into()))?
                .to_vec1()?;
            g.density_mut().set_acc_sum(&acc)?;
        }
        if let (Some(r), Some(t)) = (&mut self.ranksim, m.get("head.ranksim_rng")) {
            let words: Vec<u32> = t.to_vec1()?;
            match words[..] {
                [hi, lo] => r.set_rng_state((u64::from(hi) << 32) | u64::from(lo)),
                _ => {
                    return Err(
                        NnError::shape("head.ranksim_rng must hold two u32 words".into()).into(),
                    );
                }
            }
        }
        Ok(())
    }
}

impl Module for RegressionHead {
    /// Inference: the linear prediction (B) of the features, without FDS or weights.
    fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.linear.forward(features)?.flatten_all()
    }
}
