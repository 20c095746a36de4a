//! The age-estimation recipe's command-line flags (clap), shared by `examples/age_estimation.rs`
//! and anything else that trains a run from flags: [`RunFlags`] builds a validated
//! [`RunConfig`]; [`RunFlags::resume_conflicts`] names the flags a resumed run must not change.
//! With no method flag the run is LDS with square-root-inverse weights (the recipe that helps
//! on long-tailed ages); `--vanilla` is the plain L1 baseline.

use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::parser::ValueSource;
use dirkit_core::{KernelKind, LdsConfig, Reweight};
use dirkit_nn::fds::{Covariance, FdsConfig, FullCovariance, StatsSource};
use dirkit_nn::loss::conr::ConrConfig;
use dirkit_nn::loss::ranksim::RankSimConfig;
use dirkit_nn::loss::rnc::RncConfig;

use crate::config::{Arch, DataSource, LossSpec, RncSpec, RunConfig, scaled_milestones};
use crate::error::{RecipeError, Result};

/// Epochs of the built-in default run.
pub const DEFAULT_EPOCHS: usize = 5;

/// The settings of one training run as flags: data, model, method, schedule, seed.
#[derive(clap::Args, Debug, Clone)]
pub struct RunFlags {
    /// Index CSV with columns age,path,split (the AgeDB-DIR / IMDB-WIKI-DIR layout; build one
    /// with `dirkit split`). Without it the built-in synthetic faces are used.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Folder the CSV's paths are relative to (default: the CSV's folder).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Train on the rows that load when the index has bad rows (default: stop and show the
    /// first few).
    #[arg(long)]
    pub skip_bad: bool,
    /// Seed of the built-in synthetic faces.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Training images of the built-in data (their ages keep the AgeDB-DIR proportions).
    #[arg(long, default_value_t = 12_208)]
    pub train_images: usize,
    /// Validation and test images per age 1–101 of the built-in data.
    #[arg(long, default_value_t = 30)]
    pub eval_per_age: usize,

    /// Backbone: cpu-small, resnet18, resnet34, resnet50 [default: cpu-small on the built-in
    /// data, resnet50 on a folder].
    #[arg(long)]
    pub arch: Option<String>,
    /// Input side in pixels [default: 32 built-in, 224 folder].
    #[arg(long)]
    pub image_size: Option<u32>,

    /// Loss: l1, mse, huber, focal-l1, focal-mse, bmc, gai, bni, ghm-r, uvote, vir, binned-ce,
    /// binned-la, binned-bs, binned-ldam, binned-focal, binned-cb, binned-dldl, binned-mv.
    /// uvote and vir predict a σ per image as well [default: l1].
    #[arg(long)]
    pub loss: Option<String>,
    /// The plain baseline: L1 with no re-weighting. Without any method flag the run is LDS
    /// (square-root-inverse weights, Gaussian kernel), the recipe that helps on long-tailed
    /// ages.
    #[arg(long, conflicts_with_all = ["lds", "reweight"])]
    pub vanilla: bool,
    /// UVOTE's number of heads M (--loss uvote).
    #[arg(long, default_value_t = 2)]
    pub uvote_heads: usize,
    /// Per-sample re-weighting: none, inverse, sqrt-inv [default: sqrt-inv with LDS when no
    /// method flag is given, sqrt-inv with --lds, else none].
    #[arg(long)]
    pub reweight: Option<String>,
    /// Label distribution smoothing of the re-weighting density.
    #[arg(long)]
    pub lds: bool,
    /// LDS kernel: gaussian, gaussian-exact, triangular, laplace, epanechnikov.
    #[arg(long, default_value = "gaussian")]
    pub lds_kernel: String,
    /// LDS kernel window (odd, in bins).
    #[arg(long, default_value_t = 5)]
    pub lds_ks: usize,
    /// LDS kernel σ (in bins).
    #[arg(long, default_value_t = 2.0)]
    pub lds_sigma: f64,

    /// Feature distribution smoothing on the backbone's features.
    #[arg(long)]
    pub fds: bool,
    /// FDS kernel: gaussian, gaussian-exact, triangular, laplace, epanechnikov.
    #[arg(long, default_value = "gaussian")]
    pub fds_kernel: String,
    /// FDS kernel window (odd, in bins).
    #[arg(long, default_value_t = 5)]
    pub fds_ks: usize,
    /// FDS kernel σ (in bins).
    #[arg(long, default_value_t = 2.0)]
    pub fds_sigma: f64,
    /// First epoch (0-based) whose statistics update FDS's running statistics.
    #[arg(long, default_value_t = 0)]
    pub start_update: usize,
    /// First epoch (0-based) that FDS calibrates.
    #[arg(long, default_value_t = 1)]
    pub start_smooth: usize,
    /// FDS's running-statistics momentum.
    #[arg(long, default_value_t = 0.9)]
    pub fds_mmt: f64,
    /// FDS bins: one per label in bucket-start..bucket-num.
    #[arg(long, default_value_t = 100)]
    pub bucket_num: usize,
    /// First label with its own FDS bin (lower labels pool into it).
    #[arg(long, default_value_t = 3)]
    pub bucket_start: usize,
    /// FDS covariance: diagonal (the reference) or full.
    #[arg(long, default_value = "diagonal")]
    pub fds_cov: String,
    /// FDS statistics: second-pass (the reference: a pass over the training set after each
    /// epoch) or online (collected during training).
    #[arg(long, default_value = "second-pass")]
    pub fds_stats: String,

    /// The RankSim regulariser on the features.
    #[arg(long)]
    pub ranksim: bool,
    /// RankSim's interpolation λ.
    #[arg(long, default_value_t = 2.0)]
    pub ranksim_lambda: f64,
    /// RankSim's weight γ in the loss.
    #[arg(long, default_value_t = 100.0)]
    pub ranksim_gamma: f64,

    /// The ConR contrastive regulariser on the features (regression head; any point-wise loss
    /// or Balanced MSE, with or without LDS).
    #[arg(long)]
    pub conr: bool,
    /// ConR's weight β in the loss.
    #[arg(long, default_value_t = 4.0)]
    pub conr_beta: f64,
    /// ConR's label window ω (label units): positives within it.
    #[arg(long, default_value_t = 1.0)]
    pub conr_window: f64,
    /// ConR's temperature τ.
    #[arg(long, default_value_t = 0.07)]
    pub conr_temperature: f64,

    /// Rank-N-Contrast: pre-train the backbone with the RnC loss on two augmented views for
    /// --rnc-epochs, then train the head on the frozen features.
    #[arg(long)]
    pub rnc: bool,
    /// RnC pre-training epochs, out of --epochs [default: half of them].
    #[arg(long)]
    pub rnc_epochs: Option<usize>,
    /// RnC's temperature τ.
    #[arg(long, default_value_t = 2.0)]
    pub rnc_temperature: f64,
    /// Train the backbone in RnC's second stage too (default: frozen, a linear probe).
    #[arg(long)]
    pub rnc_fine_tune: bool,
    /// Learning rate of RnC's linear probe on the frozen features (before the step decay).
    #[arg(long, default_value_t = 0.05)]
    pub rnc_probe_lr: f64,

    /// Training epochs [default: 10 built-in, 90 folder].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Training batch size [default: 64 built-in, 256 folder].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Adam weight decay (L2).
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Epochs (0-based, comma-separated) where the learning rate is multiplied by 0.1
    /// [default: 60,80 of 90, scaled to --epochs].
    #[arg(long, value_delimiter = ',')]
    pub milestones: Option<Vec<usize>>,
    /// Seed of initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn fail(message: impl std::fmt::Display) -> RecipeError {
    RecipeError::config(message)
}

/// The device named by `--device` (`cpu` or `cuda`; default: CUDA when built with it and a GPU
/// is present).
pub fn device(name: Option<&str>) -> Result<Device> {
    match name {
        None => Device::cuda_if_available(0).map_err(RecipeError::from),
        Some("cpu") => Ok(Device::Cpu),
        Some("cuda") => Device::new_cuda(0).map_err(|e| fail(format!("--device cuda: {e}"))),
        Some(other) => Err(fail(format!("--device {other}: expected cpu or cuda"))),
    }
}

fn kernel(kind: &str, ks: usize, sigma: f64, flag: &str) -> Result<dirkit_core::Kernel> {
    let kind: KernelKind = kind.parse().map_err(|e| fail(format!("--{flag}: {e}")))?;
    let k = kind.with(ks, sigma);
    k.validate().map_err(|e| fail(format!("--{flag}: {e}")))?;
    Ok(k)
}

impl RunFlags {
    /// The run flags given on the command line, as `--name`, except `--epochs` (a resumed run
    /// may extend itself): the settings of a resumed run come from its checkpoint, so these
    /// are refused with `--resume`.
    pub fn resume_conflicts(matches: &clap::ArgMatches) -> Vec<String> {
        let cmd = <RunFlags as clap::Args>::augment_args(clap::Command::new("run"));
        cmd.get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| *id != "epochs")
            .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
            .map(|id| format!("--{}", id.replace('_', "-")))
            .collect()
    }

    /// Whether no method flag was given, so that the run is the default LDS recipe.
    pub fn default_method(&self) -> bool {
        !(self.vanilla
            || self.loss.is_some()
            || self.reweight.is_some()
            || self.lds
            || self.fds
            || self.ranksim
            || self.conr
            || self.rnc)
    }

    /// The run's settings from the flags (validated).
    pub fn config(&self) -> Result<RunConfig> {
        let cli = self;
        let mut c = match &cli.csv {
            Some(csv) => {
                let root = match &cli.data_dir {
                    Some(d) => d.clone(),
                    // `index.csv` has the empty parent "": its folder is the current one.
                    None => csv
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
                };
                RunConfig::reference(csv.clone(), root)
            }
            None => {
                if cli.data_dir.is_some() {
                    return Err(fail("--data-dir needs --csv (the index of the images)"));
                }
                if cli.eval_per_age == 0 {
                    return Err(fail("--eval-per-age must be at least 1"));
                }
                let mut c = RunConfig::synthetic(DEFAULT_EPOCHS);
                if let DataSource::Synthetic {
                    seed,
                    train_total,
                    per_age,
                    ..
                } = &mut c.data
                {
                    *seed = cli.data_seed;
                    *train_total = cli.train_images;
                    *per_age = cli.eval_per_age;
                }
                c
            }
        };
        if let Some(a) = &cli.arch {
            c.arch = a.parse::<Arch>()?;
        }
        if let Some(s) = cli.image_size {
            c.image_size = s;
        }
        if let Some(e) = cli.epochs {
            c.epochs = e;
            c.milestones = scaled_milestones(e);
        }
        if let Some(m) = &cli.milestones {
            c.milestones = m.clone();
        }
        if let Some(b) = cli.batch_size {
            c.batch_size = b;
            c.eval_batch_size = b.max(64);
        }
        c.lr = cli.lr;
        c.weight_decay = cli.weight_decay;
        c.seed = cli.seed;
        c.skip_bad = cli.skip_bad;
        c.loss = cli.loss.as_deref().unwrap_or("l1").parse()?;
        let reweight = match cli.reweight.as_deref() {
            None if cli.lds || cli.default_method() => Some(Reweight::SqrtInverse),
            None | Some("none") => None,
            Some("inverse") => Some(Reweight::INVERSE),
            Some("sqrt-inv" | "sqrt_inv") => Some(Reweight::SqrtInverse),
            Some(other) => {
                return Err(fail(format!(
                    "--reweight {other}: expected none, inverse or sqrt-inv"
                )));
            }
        };
        if cli.lds && reweight.is_none() {
            return Err(fail(
                "--lds smooths the re-weighting density: drop --reweight none",
            ));
        }
        c.reweight = reweight.map(|r| LdsConfig {
            reweight: r,
            lds: None,
            ..LdsConfig::default()
        });
        if let Some(r) = &mut c.reweight
            && (cli.lds || cli.default_method())
        {
            r.lds = Some(kernel(
                &cli.lds_kernel,
                cli.lds_ks,
                cli.lds_sigma,
                "lds-kernel",
            )?);
        }
        if cli.fds {
            let dim = c.arch.config().feature_dim();
            let mut f = FdsConfig::reference(dim, cli.bucket_num, cli.bucket_start);
            f.kernel = kernel(&cli.fds_kernel, cli.fds_ks, cli.fds_sigma, "fds-kernel")?;
            f.start_update = cli.start_update;
            f.start_smooth = cli.start_smooth;
            f.momentum = Some(cli.fds_mmt);
            f.covariance = match cli.fds_cov.as_str() {
                "diagonal" => Covariance::Diagonal,
                "full" => Covariance::Full(FullCovariance::default()),
                other => {
                    return Err(fail(format!(
                        "--fds-cov {other}: expected diagonal or full"
                    )));
                }
            };
            f.source = match cli.fds_stats.as_str() {
                "second-pass" => StatsSource::SecondPass,
                "online" => StatsSource::Online,
                other => {
                    return Err(fail(format!(
                        "--fds-stats {other}: expected second-pass or online"
                    )));
                }
            };
            f.validate().map_err(|e| fail(format!("--fds: {e}")))?;
            c.fds = Some(f);
        }
        if cli.ranksim {
            c.ranksim = Some(RankSimConfig {
                lambda: cli.ranksim_lambda,
                gamma: cli.ranksim_gamma,
                seed: cli.seed,
                ..RankSimConfig::default()
            });
        }
        if let LossSpec::Uvote { config } = &mut c.loss {
            config.heads = cli.uvote_heads;
        } else if cli.uvote_heads != 2 {
            return Err(fail("--uvote-heads needs --loss uvote"));
        }
        if cli.conr {
            c.conr = Some(ConrConfig {
                beta: cli.conr_beta,
                window: cli.conr_window,
                temperature: cli.conr_temperature,
                ..ConrConfig::default()
            });
        }
        if cli.rnc {
            c.rnc = Some(RncSpec {
                pretrain_epochs: cli.rnc_epochs.unwrap_or((c.epochs / 2).max(1)),
                loss: RncConfig {
                    temperature: cli.rnc_temperature,
                    ..RncConfig::default()
                },
                fine_tune: cli.rnc_fine_tune,
                probe_lr: cli.rnc_probe_lr,
            });
        } else if cli.rnc_epochs.is_some() || cli.rnc_fine_tune {
            return Err(fail("--rnc-epochs and --rnc-fine-tune need --rnc"));
        }
        c.validate()?;
        Ok(c)
    }
}
