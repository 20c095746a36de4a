//! [`BinnedHead`]: the continuous target binned by dirkit-core and learned as classification,
//! with the same training-step API as [`crate::head::RegressionHead`].

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use dirkit_compute::nn::Linear;
use dirkit_core::{Binning, LabelDensity, OutOfRange};
use serde::{Deserialize, Serialize};

use super::decode::{Decoder, decode, decode_tensor};
use super::decouple::NormedLinear;
use super::loss::{BinnedLoss, LossState, TrainingBins};
use super::prior::{ClassPrior, prior_bias};
use crate::error::NnError;
use crate::fds::{Fds, FdsConfig};
use crate::head::TrainStep;

/// Where the prior `π` of the adjusting losses and decoders comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriorSource {
    /// Normalised training counts (the papers' choice).
    #[default]
    Counts,
    /// The normalised LDS effective density: no empty bins (dirkit's combination).
    Lds,
}

/// The classifier layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Classifier {
    /// `W x + b` (default).
    #[default]
    Linear,
    /// Cosine logits without bias (LDAM's normalised classifier).
    Cosine,
}

/// Configuration of a [`BinnedHead`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinnedHeadConfig {
    /// Feature dimension of the backbone's output.
    pub in_dim: usize,
    /// FDS on the features, if any (its bins are its own).
    pub fds: Option<FdsConfig>,
    /// The training loss (default cross entropy).
    pub loss: BinnedLoss,
    /// How logits become predictions (default the expectation).
    pub decoder: Decoder,
    /// Where the prior comes from (default the counts).
    pub prior: PriorSource,
    /// The classifier layer (default linear).
    pub classifier: Classifier,
    /// Initialise the bias to `τ ln π` with this τ (Menon et al. 2021), or `None` for the
    /// default initialisation. Linear classifier only.
    pub bias_init_tau: Option<f64>,
}

impl BinnedHeadConfig {
    /// Cross entropy, expectation decoding, count prior, linear classifier, no FDS.
    pub fn new(in_dim: usize) -> Self {
        Self {
            in_dim,
            fds: None,
            loss: BinnedLoss::CrossEntropy,
            decoder: Decoder::Expectation,
            prior: PriorSource::Counts,
            classifier: Classifier::Linear,
            bias_init_tau: None,
        }
    }
}

enum Layer {
    Linear(Linear),
    Cosine(NormedLinear),
}

/// A classification head over the bins of a continuous target: see the module documentation.
/// The bins, counts and LDS prior come from the [`LabelDensity`] fitted on the training labels.
pub struct BinnedHead {
    config: BinnedHeadConfig,
    binning: Binning,
    layer: Layer,
    fds: Option<Fds>,
    loss: LossState,
    bins: TrainingBins,
}

impl BinnedHead {
    /// Builds the head; the classifier's variables come from `vb`.
    pub fn new(
        config: BinnedHeadConfig,
        density: &LabelDensity,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        if config.in_dim == 0 {
            return Err(crate::error::bad("in_dim", 0, "at least 1").into());
        }
        let binning = density.binning;
        let k = binning.n_bins;
        let counts: Vec<f64> = density.counts.iter().map(|&c| c as f64).collect();
        let prior = match config.prior {
            PriorSource::Counts => ClassPrior::from_counts(&counts)?,
            PriorSource::Lds => ClassPrior::from_density(density)?,
        };
        let bins = TrainingBins {
            counts,
            prior,
            values: binning.values(),
        };
        let layer = match config.classifier {
            Classifier::Linear => {
                let linear = dirkit_compute::nn::linear(config.in_dim, k, vb.pp("linear"))?;
                if let (Some(tau), Some(b)) = (config.bias_init_tau, linear.bias()) {
                    let bias = prior_bias(&bins.prior, tau)?;
                    let t = Tensor::from_vec(bias, k, b.device())?.to_dtype(b.dtype())?;
                    if !b.is_variable() {
                        return Err(NnError::shape(
                            "bias_init_tau needs a VarBuilder backed by a VarMap".into(),
                        )
                        .into());
                    }
                    // A variable tensor: the Var shares its storage, so this sets the VarMap's.
                    candle_core::Var::from_tensor(b)?.set(&t)?;
                }
                Layer::Linear(linear)
            }
            Classifier::Cosine => {
                if config.bias_init_tau.is_some() {
                    return Err(NnError::shape(
                        "the cosine classifier has no bias to initialise".into(),
                    )
                    .into());
                }
                Layer::Cosine(NormedLinear::new(config.in_dim, k, vb.pp("cosine"))?)
            }
        };
        let fds = match &config.fds {
            Some(f) if f.feature_dim != config.in_dim => {
                return Err(NnError::shape(format!(
                    "FDS feature_dim {} differs from the head's in_dim {}",
                    f.feature_dim, config.in_dim
                ))
                .into());
            }
            Some(f) => Some(Fds::new(f.clone(), vb.device(), vb.dtype())?),
            None => None,
        };
        let loss = LossState::new(config.loss.clone(), &bins)?;
        Ok(Self {
            config,
            binning,
            layer,
            fds,
            loss,
            bins,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BinnedHeadConfig {
        &self.config
    }

    /// The bins' counts, prior and values.
    pub fn training_bins(&self) -> &TrainingBins {
        &self.bins
    }

    /// The binning of the target.
    pub fn binning(&self) -> &Binning {
        &self.binning
    }

    /// The FDS state, if the head has FDS.
    pub fn fds(&self) -> Option<&Fds> {
        self.fds.as_ref()
    }

    /// The bins (N, u32) of continuous `targets`, out-of-range values clipped to the end bins.
    pub fn bins_of(&self, targets: &Tensor) -> candle_core::Result<Tensor> {
        let y: Vec<f64> = targets.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let mut out = Vec::with_capacity(y.len());
        for (i, &v) in y.iter().enumerate() {
            let b = self
                .binning
                .bin(v, i, OutOfRange::Clip)
                .map_err(NnError::from)?
                .unwrap_or(0);
            out.push(b as u32);
        }
        let n = out.len();
        Tensor::from_vec(out, n, targets.device())
    }

    /// The logits (N, bins) of features, without FDS.
    pub fn logits(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        match &self.layer {
            Layer::Linear(l) => l.forward(features),
            Layer::Cosine(c) => c.forward(features),
        }
    }

    /// Decodes logits with the configured decoder (post-hoc adjustment toward the uniform prior).
    pub fn decode(&self, logits: &Tensor) -> candle_core::Result<Vec<f64>> {
        decode(
            logits,
            &self.bins.values,
            self.config.decoder,
            Some(&self.bins.prior),
            None,
        )
    }

    /// [`BinnedHead::decode`] as a tensor on the logits' device.
    fn decode_on_device(&self, logits: &Tensor) -> candle_core::Result<Tensor> {
        decode_tensor(
            logits,
            &self.bins.values,
            self.config.decoder,
            Some(&self.bins.prior),
            None,
        )
    }

    /// One training step: FDS (as in the regression head), the logits, the configured loss on
    /// the target bins, and the decoded predictions (N, detached).
    pub fn forward_train(
        &mut self,
        features: &Tensor,
        targets: &Tensor,
        epoch: usize,
    ) -> candle_core::Result<TrainStep> {
        let targets = targets.flatten_all()?;
        let z = match &mut self.fds {
            Some(f) => f.train_features(features, &targets, epoch)?,
            None => features.clone(),
        };
        let logits = self.logits(&z)?;
        let labels = self.bins_of(&targets)?;
        let loss = self
            .loss
            .compute(&logits, &labels, &targets, epoch, &self.bins)?;
        let predictions = self.decode_on_device(&logits.detach())?;
        Ok(TrainStep { loss, predictions })
    }

    /// Feeds uncalibrated features of a no-grad pass to FDS (second-pass statistics).
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
}

impl BinnedHead {
    /// The head's state that does not live in the caller's `VarMap` — configuration, training
    /// counts, GHM-C's moving-average counts, FDS statistics — as named tensors (the classifier's
    /// weights are saved with the `VarMap`).
    pub fn state_tensors(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        let mut m = match &self.fds {
            Some(f) => f.state_tensors()?,
            None => HashMap::new(),
        };
        let meta = serde_json::to_vec(&self.config).map_err(candle_core::Error::wrap)?;
        let n = meta.len();
        m.insert(
            "binned.config_json".into(),
            Tensor::from_vec(meta, n, &Device::Cpu)?,
        );
        let counts = self.bins.counts.clone();
        let k = counts.len();
        m.insert(
            "binned.counts".into(),
            Tensor::from_vec(counts, k, &Device::Cpu)?,
        );
        if let Some(g) = self.loss.ghm() {
            let acc = g.density().acc_sum().to_vec();
            let b = acc.len();
            m.insert(
                "binned.ghm_acc_sum".into(),
                Tensor::from_vec(acc, b, &Device::Cpu)?,
            );
        }
        Ok(m)
    }

    /// Saves [`BinnedHead::state_tensors`] to a safetensors file.
    pub fn save_state(&self, path: impl AsRef<Path>) -> candle_core::Result<()> {
        candle_core::safetensors::save(&self.state_tensors()?, path)
    }

    /// Restores the state saved by [`BinnedHead::save_state`] into a head built with the same
    /// configuration and training label density (the classifier's weights come back with the
    /// `VarMap`).
    pub fn load_state(&mut self, path: impl AsRef<Path>) -> candle_core::Result<()> {
        self.load_state_tensors(&candle_core::safetensors::load(path, &Device::Cpu)?)
    }

    /// Restores [`BinnedHead::state_tensors`] (e.g. read back from a checkpoint) into a head
    /// built with the same configuration and training label density.
    pub fn load_state_tensors(&mut self, m: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let get = |name: &str| {
            m.get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("binned head state lacks {name}")))
        };
        let meta: Vec<u8> = get("binned.config_json")?.to_vec1()?;
        let config: BinnedHeadConfig =
            serde_json::from_slice(&meta).map_err(candle_core::Error::wrap)?;
        let counts: Vec<f64> = get("binned.counts")?.to_vec1()?;
        if config != self.config || counts != self.bins.counts {
            return Err(NnError::shape(
                "the saved head was built with another configuration or training set".into(),
            )
            .into());
        }
        if let Some(g) = self.loss.ghm_mut() {
            let acc: Vec<f64> = get("binned.ghm_acc_sum")?.to_vec1()?;
            g.density_mut().set_acc_sum(&acc)?;
        }
        if let Some(f) = &mut self.fds {
            *f = Fds::from_state_tensors(m, f.device(), f.dtype())?;
        }
        Ok(())
    }
}

impl Module for BinnedHead {
    /// Inference: decoded predictions (N) of the features, without FDS.
    fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.decode_on_device(&self.logits(features)?)
    }
}
