//! What a run is: data, backbone, head and loss, schedule, seed. Serialised into every
//! checkpoint and `run.json`, so a run can be resumed and its numbers traced back to settings.

use std::path::PathBuf;
use std::str::FromStr;

use dirkit_compute::models::ResNetConfig;
use dirkit_core::{Binning, LdsConfig};
use dirkit_nn::binned::{BinnedLoss, Decoder, PriorSource};
use dirkit_nn::fds::FdsConfig;
use dirkit_nn::loss::conr::ConrConfig;
use dirkit_nn::loss::elementwise::{FocalConfig, RegressionLoss};
use dirkit_nn::loss::prm::PrmConfig;
use dirkit_nn::loss::ranksim::RankSimConfig;
use dirkit_nn::loss::rnc::RncConfig;
use dirkit_nn::loss::uvote::UvoteConfig;
use dirkit_nn::loss::vir::VirConfig;
use serde::{Deserialize, Serialize};

use crate::error::{RecipeError, Result};

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DataSource {
    /// The built-in synthetic faces (`dirkit_data::faces`), generated in memory from `seed`:
    /// training ages follow the AgeDB-DIR histogram scaled to `train_total` images, validation
    /// and test hold `per_age` images of every age 1–101.
    Synthetic {
        /// Generator seed (independent of the training seed).
        seed: u64,
        /// Rendered image side in pixels.
        size: u32,
        /// Training images (12,208 = AgeDB-DIR's training split).
        train_total: usize,
        /// Validation and test images per age.
        per_age: usize,
    },
    /// A CSV `age,path,split` (the AgeDB-DIR / IMDB-WIKI-DIR layout) with paths relative to
    /// `root`.
    Folder {
        /// The index file.
        csv: PathBuf,
        /// Directory the `path` column is relative to.
        root: PathBuf,
    },
}

/// The backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// [`ResNetConfig::cpu_small`]: width 16, 3×3 stem, 0.70 M parameters, 128 features.
    CpuSmall,
    /// ResNet-18 (torchvision layout), 512 features.
    Resnet18,
    /// ResNet-34, 512 features.
    Resnet34,
    /// ResNet-50, the DIR papers' backbone, 2048 features.
    Resnet50,
}

impl Arch {
    /// The backbone's configuration.
    pub fn config(self) -> ResNetConfig {
        match self {
            Arch::CpuSmall => ResNetConfig::cpu_small(),
            Arch::Resnet18 => ResNetConfig::resnet18(),
            Arch::Resnet34 => ResNetConfig::resnet34(),
            Arch::Resnet50 => ResNetConfig::resnet50(),
        }
    }
}

impl FromStr for Arch {
    type Err = RecipeError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "cpu-small" => Arch::CpuSmall,
            "resnet18" => Arch::Resnet18,
            "resnet34" => Arch::Resnet34,
            "resnet50" => Arch::Resnet50,
            _ => {
                return Err(RecipeError::config(format!(
                    "--arch {s}: expected cpu-small, resnet18, resnet34 or resnet50"
                )));
            }
        })
    }
}

/// The training loss; the point-wise ones and Balanced MSE train a regression head, `Binned`
/// a classification head over the label bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LossSpec {
    /// A point-wise loss (L1, MSE, Huber, focal-R), weighted by `reweight` if set.
    Pointwise {
        /// The loss.
        loss: RegressionLoss,
    },
    /// Balanced MSE by batch Monte-Carlo.
    Bmc,
    /// Balanced MSE with a `components`-Gaussian mixture fitted to the training labels.
    Gai {
        /// Mixture components (the paper: 8 on AgeDB-DIR).
        components: usize,
    },
    /// Balanced MSE with the binned training label frequencies.
    Bni,
    /// GHM-R.
    GhmR,
    /// A discretized-label loss over the label bins.
    Binned {
        /// The classification loss.
        loss: BinnedLoss,
    },
    /// UVOTE: M Laplace heads with density re-weighting, the smallest predicted scale votes;
    /// predicts σ.
    Uvote {
        /// The heads' settings.
        config: UvoteConfig,
    },
    /// VIR: variational latent and evidential (NIG) head with re-weighted evidence; predicts σ.
    Vir {
        /// The head's settings.
        config: VirConfig,
        /// Its probabilistic re-weighting module over the latent (`None`: without).
        #[serde(default)]
        prm: Option<PrmConfig>,
    },
}

impl LossSpec {
    /// L1, the DIR benchmarks' training loss.
    pub const L1: LossSpec = LossSpec::Pointwise {
        loss: RegressionLoss::L1,
    };

    /// The command-line names [`FromStr`] accepts.
    pub const NAMES: &'static str = "l1, mse, huber, focal-l1, focal-mse, bmc, gai, bni, ghm-r, \
        uvote, vir, binned-ce, binned-la, binned-bs, binned-ldam, binned-focal, binned-cb, binned-dldl, \
        binned-mv";

    /// Whether the loss trains a [`BinnedHead`](dirkit_nn::binned::BinnedHead).
    pub fn is_binned(&self) -> bool {
        matches!(self, LossSpec::Binned { .. })
    }

    /// Whether the loss trains an uncertainty head (UVOTE, VIR) that predicts σ.
    pub fn is_uncertainty(&self) -> bool {
        matches!(self, LossSpec::Uvote { .. } | LossSpec::Vir { .. })
    }

    /// Whether the loss trains the [`RegressionHead`](dirkit_nn::head::RegressionHead).
    pub fn is_regression_head(&self) -> bool {
        !self.is_binned() && !self.is_uncertainty()
    }
}

impl FromStr for LossSpec {
    type Err = RecipeError;
    /// The command-line names, each with the papers' default parameters.
    fn from_str(s: &str) -> Result<Self> {
        let pointwise = |loss| LossSpec::Pointwise { loss };
        let binned = |loss| LossSpec::Binned { loss };
        Ok(match s {
            "l1" => pointwise(RegressionLoss::L1),
            "mse" => pointwise(RegressionLoss::Mse),
            "huber" => pointwise(RegressionLoss::Huber { beta: 1.0 }),
            "focal-l1" => pointwise(RegressionLoss::FocalL1(FocalConfig::default())),
            "focal-mse" => pointwise(RegressionLoss::FocalMse(FocalConfig::default())),
            "bmc" => LossSpec::Bmc,
            "gai" => LossSpec::Gai { components: 8 },
            "bni" => LossSpec::Bni,
            "ghm-r" => LossSpec::GhmR,
            "uvote" => LossSpec::Uvote {
                config: UvoteConfig::default(),
            },
            "vir" => LossSpec::Vir {
                config: VirConfig::default(),
                prm: Some(PrmConfig::reference(100, 3)),
            },
            "binned-ce" => binned(BinnedLoss::CrossEntropy),
            "binned-la" => binned(BinnedLoss::logit_adjusted()),
            "binned-bs" => binned(BinnedLoss::BalancedSoftmax),
            "binned-ldam" => binned(BinnedLoss::Ldam {
                max_margin: 0.5,
                scale: 30.0,
                drw_epoch: None,
                drw_beta: 0.9999,
            }),
            "binned-focal" => binned(BinnedLoss::Focal {
                gamma: 2.0,
                alpha: 1.0,
            }),
            "binned-cb" => binned(BinnedLoss::ClassBalanced {
                beta: 0.9999,
                form: dirkit_nn::binned::ClassBalancedKind::Softmax,
            }),
            "binned-dldl" => binned(BinnedLoss::SoftLabels {
                sigma: 2.0,
                lambda: 0.0,
            }),
            "binned-mv" => binned(BinnedLoss::MeanVariance {
                lambda_mean: 0.2,
                lambda_variance: 0.05,
            }),
            _ => {
                return Err(RecipeError::config(format!(
                    "--loss {s}: expected one of {}",
                    LossSpec::NAMES
                )));
            }
        })
    }
}

/// Settings of the binned head (used when the loss is [`LossSpec::Binned`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinnedOptions {
    /// How logits become an age (default arg-max: on ages, mass leaks to far bins under the
    /// expectation).
    pub decoder: Decoder,
    /// Prior of the adjusting losses (default the LDS effective density: no empty bins).
    pub prior: PriorSource,
    /// Initialise the classifier bias to `τ ln π` (None: the default initialisation).
    pub bias_init_tau: Option<f64>,
}

impl Default for BinnedOptions {
    fn default() -> Self {
        Self {
            decoder: Decoder::Argmax,
            prior: PriorSource::Lds,
            bias_init_tau: None,
        }
    }
}

/// Rank-N-Contrast's two-stage recipe: the backbone is first trained with the RnC loss on two
/// augmented views of each batch, then the head is trained on its features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RncSpec {
    /// Epochs of the first stage (counted in the run's `epochs`, which must be larger).
    pub pretrain_epochs: usize,
    /// The loss's settings (τ = 2).
    pub loss: RncConfig,
    /// Train the backbone in the second stage too (default: frozen, the paper's linear probe).
    pub fine_tune: bool,
    /// Learning rate of the second stage on frozen features, before the run's step decay
    /// (official linear probe: 0.05; a linear layer on fixed features needs far larger steps
    /// than the network's 1e-3 to converge in a few epochs). Unused when fine-tuning.
    #[serde(default = "default_probe_lr")]
    pub probe_lr: f64,
}

fn default_probe_lr() -> f64 {
    0.05
}

impl RncSpec {
    /// `pretrain_epochs` of RnC (τ 2), then a linear probe on the frozen backbone at lr 0.05.
    pub fn new(pretrain_epochs: usize) -> Self {
        Self {
            pretrain_epochs,
            loss: RncConfig::default(),
            fine_tune: false,
            probe_lr: default_probe_lr(),
        }
    }
}

/// Everything that determines a run's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The images.
    pub data: DataSource,
    /// Side the images are resized to before cropping (pixels).
    pub image_size: u32,
    /// The backbone.
    pub arch: Arch,
    /// The loss (and through it, the head).
    pub loss: LossSpec,
    /// Per-sample re-weighting of point-wise losses (`None`: none); its kernel is LDS. For the
    /// binned head it supplies the LDS prior; for VIR's evidence and ConR's pushing weights the
    /// sample weights (`None`: the LDS default, sqrt-inverse with a gaussian kernel).
    pub reweight: Option<LdsConfig>,
    /// FDS on the backbone's features, if any (its `feature_dim` must be the backbone's).
    pub fds: Option<FdsConfig>,
    /// The RankSim regulariser, if any (regression head only).
    pub ranksim: Option<RankSimConfig>,
    /// The ConR regulariser on the backbone's features, if any (regression head only); its
    /// pushing weights are the LDS weights of `reweight` (or the LDS default).
    #[serde(default)]
    pub conr: Option<ConrConfig>,
    /// Rank-N-Contrast pre-training of the backbone, if any.
    #[serde(default)]
    pub rnc: Option<RncSpec>,
    /// Binned-head settings.
    pub binned: BinnedOptions,
    /// Label bins for LDS, shots and the report (default one per year, 0–120).
    pub bins: Binning,
    /// Training epochs.
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Evaluation batch size (no gradients; only memory bound).
    pub eval_batch_size: usize,
    /// Adam's learning rate before the first milestone.
    pub lr: f64,
    /// Epochs (0-based) at which the learning rate is multiplied by `lr_gamma`.
    pub milestones: Vec<usize>,
    /// Step-decay factor.
    pub lr_gamma: f64,
    /// Adam's (L2, PyTorch-style) weight decay.
    pub weight_decay: f64,
    /// Learning rate of Balanced MSE's noise σ (its own optimiser, not decayed).
    pub sigma_lr: f64,
    /// Seed of initialisation, shuffling, augmentation and every other random choice.
    pub seed: u64,
    /// Train on the rows that load when the index has bad rows (else stop with the list).
    pub skip_bad: bool,
}

/// Side of the built-in synthetic faces and of the CPU default run.
pub const SYNTHETIC_SIZE: u32 = 32;

impl RunConfig {
    /// The DIR papers' AgeDB-DIR / IMDB-WIKI-DIR recipe on a data folder: ResNet-50 at 224 px,
    /// L1, Adam lr 1e-3 (weight decay 1e-4), batch 256, 90 epochs, lr × 0.1 at 60 and 80.
    pub fn reference(csv: PathBuf, root: PathBuf) -> Self {
        Self {
            data: DataSource::Folder { csv, root },
            image_size: 224,
            arch: Arch::Resnet50,
            loss: LossSpec::L1,
            reweight: None,
            fds: None,
            ranksim: None,
            conr: None,
            rnc: None,
            binned: BinnedOptions::default(),
            bins: Binning {
                start: 0.0,
                width: 1.0,
                n_bins: 121,
            },
            epochs: 90,
            batch_size: 256,
            eval_batch_size: 256,
            lr: 1e-3,
            milestones: vec![60, 80],
            lr_gamma: 0.1,
            weight_decay: 1e-4,
            sigma_lr: 1e-2,
            seed: 0,
            skip_bad: false,
        }
    }

    /// The built-in default run: the synthetic faces (seed 0, 32 px, 12,208 training images,
    /// 30 per age for validation and test) on [`Arch::CpuSmall`], batch 64, `epochs` epochs
    /// with the reference's milestones scaled to the run (at 2/3 and 8/9 of it).
    pub fn synthetic(epochs: usize) -> Self {
        Self {
            data: DataSource::Synthetic {
                seed: 0,
                size: SYNTHETIC_SIZE,
                train_total: 12_208,
                per_age: 30,
            },
            image_size: SYNTHETIC_SIZE,
            arch: Arch::CpuSmall,
            batch_size: 64,
            milestones: scaled_milestones(epochs),
            epochs,
            ..Self::reference(PathBuf::new(), PathBuf::new())
        }
    }

    /// Checks the settings that the parts do not check themselves.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(RecipeError::config("epochs must be at least 1"));
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(RecipeError::config("batch sizes must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(RecipeError::config(format!(
                "lr {}: expected a finite number > 0",
                self.lr
            )));
        }
        if !(16..=1024).contains(&self.image_size) {
            return Err(RecipeError::config(format!(
                "image size {}: expected 16 to 1024 pixels",
                self.image_size
            )));
        }
        self.bins.validate().map_err(RecipeError::config)?;
        if let Some(r) = &self.reweight {
            r.validate().map_err(RecipeError::config)?;
        }
        if self.ranksim.is_some() && !self.loss.is_regression_head() {
            return Err(RecipeError::config(
                "--ranksim works with the regression head; a binned or uncertainty loss was \
                 chosen",
            ));
        }
        if let Some(c) = &self.conr {
            c.check()
                .map_err(|e| RecipeError::config(format!("--conr: {e}")))?;
            if !self.loss.is_regression_head() {
                return Err(RecipeError::config(
                    "--conr regularises the regression head's features; a binned or \
                     uncertainty loss was chosen",
                ));
            }
        }
        if let Some(r) = &self.rnc {
            r.loss
                .check()
                .map_err(|e| RecipeError::config(format!("--rnc: {e}")))?;
            if !(r.probe_lr.is_finite() && r.probe_lr > 0.0) {
                return Err(RecipeError::config(format!(
                    "--rnc-probe-lr {}: expected a finite number > 0",
                    r.probe_lr
                )));
            }
            if self.epochs < 2 {
                return Err(RecipeError::config(format!(
                    "--rnc needs at least 2 epochs (pre-training, then the head); --epochs is {}",
                    self.epochs
                )));
            }
            if r.pretrain_epochs == 0 || r.pretrain_epochs >= self.epochs {
                return Err(RecipeError::config(format!(
                    "--rnc-epochs {}: expected 1 to {} (pre-training epochs out of --epochs {}, \
                     leaving at least one for the head)",
                    r.pretrain_epochs,
                    self.epochs.saturating_sub(1),
                    self.epochs
                )));
            }
        }
        match &self.loss {
            LossSpec::Uvote { config } => config
                .check()
                .map_err(|e| RecipeError::config(format!("--loss uvote: {e}")))?,
            LossSpec::Vir { config, prm } => {
                config
                    .check()
                    .map_err(|e| RecipeError::config(format!("--loss vir: {e}")))?;
                if let Some(p) = prm {
                    p.check()
                        .map_err(|e| RecipeError::config(format!("--loss vir (PRM): {e}")))?;
                }
            }
            _ => {}
        }
        if self.fds.is_some() && self.loss.is_uncertainty() {
            return Err(RecipeError::config(
                "--fds calibrates the regression and binned heads' features; UVOTE and VIR \
                 heads have their own",
            ));
        }
        if self.reweight.is_some()
            && matches!(
                self.loss,
                LossSpec::Bmc | LossSpec::Gai { .. } | LossSpec::Bni | LossSpec::GhmR
            )
        {
            return Err(RecipeError::config(
                "--reweight/--lds weight point-wise losses; Balanced MSE and GHM-R re-balance \
                 on their own",
            ));
        }
        if let Some(f) = &self.fds {
            let d = self.arch.config().feature_dim();
            if f.feature_dim != d {
                return Err(RecipeError::config(format!(
                    "FDS feature_dim {} differs from the backbone's {d} features",
                    f.feature_dim
                )));
            }
        }
        Ok(())
    }
}

/// The reference milestones (60 and 80 of 90 epochs) scaled to `epochs`: `⌊2E/3⌋` and
/// `⌊8E/9⌋`, dropped where they fall on epoch 0 or repeat.
pub fn scaled_milestones(epochs: usize) -> Vec<usize> {
    let mut m: Vec<usize> = [epochs * 2 / 3, epochs * 8 / 9]
        .into_iter()
        .filter(|&e| e > 0 && e < epochs)
        .collect();
    m.dedup();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_scale_like_the_reference() {
        assert_eq!(scaled_milestones(90), vec![60, 80]);
        assert_eq!(scaled_milestones(9), vec![6, 8]);
        assert_eq!(scaled_milestones(2), vec![1]);
        assert!(scaled_milestones(1).is_empty());
    }

    #[test]
    fn every_loss_name_parses_and_unknown_names_list_them() {
        for name in LossSpec::NAMES.split(',').map(str::trim) {
            let spec: LossSpec = name.parse().expect(name);
            assert_eq!(spec.is_binned(), name.starts_with("binned-"), "{name}");
        }
        let e = "l3".parse::<LossSpec>().unwrap_err().to_string();
        assert!(e.contains("--loss l3") && e.contains("focal-mse"), "{e}");
    }

    #[test]
    fn config_round_trips_through_json_and_validates() {
        let mut c = RunConfig::synthetic(12);
        c.fds = Some(FdsConfig::new(128));
        c.reweight = Some(LdsConfig::default());
        c.validate().expect("valid");
        let json = serde_json::to_string(&c).expect("serialises");
        let back: RunConfig = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, c);
        c.fds = Some(FdsConfig::new(512));
        assert!(c.validate().unwrap_err().to_string().contains("128"));
        c.fds = None;
        c.loss = LossSpec::Bmc;
        assert!(c.validate().is_err(), "LDS weights with BMC are refused");
    }
}
