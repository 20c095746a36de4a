//! Age estimation end to end, the DIR papers' benchmark recipe: a ResNet trained with dirkit's
//! heads (LDS weights, FDS, Balanced MSE, RankSim, ConR, Rank-N-Contrast, the UVOTE and VIR
//! uncertainty heads, the discretized-label losses) on a folder in
//! the AgeDB-DIR layout — or, with no data flags, on the built-in synthetic faces — with
//! progress bars, best/last checkpoints, `--resume`, and the test report by shot.
//!
//! ```sh
//! cargo run --release --example age_estimation                       # built-in data, CPU
//! cargo run --release --example age_estimation -- --lds --fds        # LDS + FDS
//! cargo run --release --example age_estimation -- --loss bmc --seed 1
//! cargo run --release --example age_estimation -- --conr --lds          # ConR + LDS
//! cargo run --release --example age_estimation -- --rnc                  # Rank-N-Contrast
//! cargo run --release --example age_estimation -- --loss uvote           # predicts σ too
//! cargo run --release --example age_estimation -- --loss vir
//! cargo run --release --example age_estimation -- --csv agedb.csv --data-dir data/agedb
//! cargo run --release --example age_estimation -- --resume --out runs/age_estimation/run-001
//! cargo run --release --example age_estimation -- --compare --seeds 0,1,2   # results table
//! cargo run --release --example age_estimation -- --bench                   # images/s
//! ```
//!
//! A run writes into `--out` (default: the first free `runs/age_estimation/run-NNN`):
//! `last.safetensors` / `best.safetensors` (weights, batch-norm statistics, FDS and optimiser
//! state, settings), `run.json` (settings and per-epoch history), `report.json`,
//! `predictions.csv` (with a `sigma` column for UVOTE and VIR), `label_density.{png,svg}`,
//! `test_mae_by_age.{png,svg}` and, for UVOTE and VIR, `uncertainty.{png,svg}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::Device;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, parser::ValueSource};
use dirkit::nn::fds::{Covariance, FdsConfig, FullCovariance, StatsSource};
use dirkit::nn::loss::conr::ConrConfig;
use dirkit::nn::loss::ranksim::RankSimConfig;
use dirkit::nn::loss::rnc::RncConfig;
use dirkit::recipe::report::{
    write_density_plot, write_predictions_with_sigma, write_uncertainty_figure,
};
use dirkit::recipe::{
    Arch, DataSource, EvalReport, LossSpec, RecipeError, RncSpec, RunConfig, RunData, RunOptions,
    Trainer, fresh_run_dir, prepare_run_dir, scaled_milestones, speed,
};
use dirkit::{KernelKind, LdsConfig, Reweight};

/// Epochs of the built-in default run.
const DEFAULT_EPOCHS: usize = 5;

/// Train and evaluate an age regressor with dirkit (DIR recipe).
#[derive(Parser, Debug)]
#[command(name = "age_estimation", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// Index CSV with columns age,path,split (the AgeDB-DIR / IMDB-WIKI-DIR layout; build one
    /// with `dirkit split`). Without it the built-in synthetic faces are used.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Folder the CSV's paths are relative to (default: the CSV's folder).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Train on the rows that load when the index has bad rows (default: stop and show the
    /// first few).
    #[arg(long)]
    skip_bad: bool,
    /// When the index has bad rows, list every one (default: the first five and a count).
    #[arg(long)]
    list_bad: bool,
    /// Seed of the built-in synthetic faces.
    #[arg(long, default_value_t = 0)]
    data_seed: u64,
    /// Training images of the built-in data (their ages keep the AgeDB-DIR proportions).
    #[arg(long, default_value_t = 12_208)]
    train_images: usize,
    /// Validation and test images per age 1–101 of the built-in data.
    #[arg(long, default_value_t = 30)]
    eval_per_age: usize,

    /// Backbone: cpu-small, resnet18, resnet34, resnet50 [default: cpu-small on the built-in
    /// data, resnet50 on a folder].
    #[arg(long)]
    arch: Option<String>,
    /// Input side in pixels [default: 32 built-in, 224 folder].
    #[arg(long)]
    image_size: Option<u32>,

    /// Loss: l1, mse, huber, focal-l1, focal-mse, bmc, gai, bni, ghm-r, uvote, vir, binned-ce,
    /// binned-la, binned-bs, binned-ldam, binned-focal, binned-cb, binned-dldl, binned-mv.
    /// uvote and vir predict a σ per image as well.
    #[arg(long, default_value = "l1")]
    loss: String,
    /// UVOTE's number of heads M (--loss uvote).
    #[arg(long, default_value_t = 2)]
    uvote_heads: usize,
    /// Per-sample re-weighting: none, inverse, sqrt-inv [default: none; sqrt-inv with --lds].
    #[arg(long)]
    reweight: Option<String>,
    /// Label distribution smoothing of the re-weighting density.
    #[arg(long)]
    lds: bool,
    /// LDS kernel: gaussian, gaussian-exact, triangular, laplace, epanechnikov.
    #[arg(long, default_value = "gaussian")]
    lds_kernel: String,
    /// LDS kernel window (odd, in bins).
    #[arg(long, default_value_t = 5)]
    lds_ks: usize,
    /// LDS kernel σ (in bins).
    #[arg(long, default_value_t = 2.0)]
    lds_sigma: f64,

    /// Feature distribution smoothing on the backbone's features.
    #[arg(long)]
    fds: bool,
    /// FDS kernel: gaussian, gaussian-exact, triangular, laplace, epanechnikov.
    #[arg(long, default_value = "gaussian")]
    fds_kernel: String,
    /// FDS kernel window (odd, in bins).
    #[arg(long, default_value_t = 5)]
    fds_ks: usize,
    /// FDS kernel σ (in bins).
    #[arg(long, default_value_t = 2.0)]
    fds_sigma: f64,
    /// First epoch (0-based) whose statistics update FDS's running statistics.
    #[arg(long, default_value_t = 0)]
    start_update: usize,
    /// First epoch (0-based) that FDS calibrates.
    #[arg(long, default_value_t = 1)]
    start_smooth: usize,
    /// FDS's running-statistics momentum.
    #[arg(long, default_value_t = 0.9)]
    fds_mmt: f64,
    /// FDS bins: one per label in bucket-start..bucket-num.
    #[arg(long, default_value_t = 100)]
    bucket_num: usize,
    /// First label with its own FDS bin (lower labels pool into it).
    #[arg(long, default_value_t = 3)]
    bucket_start: usize,
    /// FDS covariance: diagonal (the reference) or full.
    #[arg(long, default_value = "diagonal")]
    fds_cov: String,
    /// FDS statistics: second-pass (the reference: a pass over the training set after each
    /// epoch) or online (collected during training).
    #[arg(long, default_value = "second-pass")]
    fds_stats: String,

    /// The RankSim regulariser on the features.
    #[arg(long)]
    ranksim: bool,
    /// RankSim's interpolation λ.
    #[arg(long, default_value_t = 2.0)]
    ranksim_lambda: f64,
    /// RankSim's weight γ in the loss.
    #[arg(long, default_value_t = 100.0)]
    ranksim_gamma: f64,

    /// The ConR contrastive regulariser on the features (regression head; any point-wise loss
    /// or Balanced MSE, with or without LDS).
    #[arg(long)]
    conr: bool,
    /// ConR's weight β in the loss.
    #[arg(long, default_value_t = 4.0)]
    conr_beta: f64,
    /// ConR's label window ω (label units): positives within it.
    #[arg(long, default_value_t = 1.0)]
    conr_window: f64,
    /// ConR's temperature τ.
    #[arg(long, default_value_t = 0.07)]
    conr_temperature: f64,

    /// Rank-N-Contrast: pre-train the backbone with the RnC loss on two augmented views for
    /// --rnc-epochs, then train the head on the frozen features.
    #[arg(long)]
    rnc: bool,
    /// RnC pre-training epochs, out of --epochs [default: half of them].
    #[arg(long)]
    rnc_epochs: Option<usize>,
    /// RnC's temperature τ.
    #[arg(long, default_value_t = 2.0)]
    rnc_temperature: f64,
    /// Train the backbone in RnC's second stage too (default: frozen, a linear probe).
    #[arg(long)]
    rnc_fine_tune: bool,
    /// Learning rate of RnC's linear probe on the frozen features (before the step decay).
    #[arg(long, default_value_t = 0.05)]
    rnc_probe_lr: f64,

    /// Training epochs [default: 10 built-in, 90 folder].
    #[arg(long)]
    epochs: Option<usize>,
    /// Training batch size [default: 64 built-in, 256 folder].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Adam weight decay (L2).
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Epochs (0-based, comma-separated) where the learning rate is multiplied by 0.1
    /// [default: 60,80 of 90, scaled to --epochs].
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<usize>>,
    /// Seed of initialisation, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu or cuda [default: cuda when built with it and a GPU is present].
    #[arg(long)]
    device: Option<String>,

    /// Run directory [default: the first free runs/age_estimation/run-NNN].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint (its settings; --epochs may extend).
    #[arg(long, requires = "out")]
    resume: bool,
    /// No progress bars (the per-epoch lines stay).
    #[arg(long)]
    no_progress: bool,

    /// Train vanilla, LDS, FDS, LDS+FDS, Balanced MSE, RnC, ConR, ConR+LDS, UVOTE and VIR for
    /// every --seeds and print the mean ± std table (runs go under --out, default
    /// runs/age_estimation/compare; finished runs are read back).
    #[arg(long, action = ArgAction::SetTrue)]
    compare: bool,
    /// Seeds of --compare.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Measure training images/s (this configuration, ResNet-18 at 64 and 224 px; FDS on),
    /// data loading and compute apart, instead of training.
    #[arg(long)]
    bench: bool,
    /// Timed steps per --bench configuration.
    #[arg(long, default_value_t = 5)]
    bench_steps: usize,
    /// With --bench: instead, the step time of the pairwise losses (ConR, RnC) against a plain
    /// L1 step on this configuration's backbone at batch 64 and 256, and the peak memory of a
    /// step of each at batch 1024.
    #[arg(long, requires = "bench")]
    bench_pairwise: bool,
    /// Internal: measure the peak memory of one --bench-pairwise method in this process.
    #[arg(long, hide = true, requires = "bench_pairwise")]
    bench_memory_of: Option<usize>,
}

const AFTER_HELP: &str = "Defaults mirror the DIR recipe (Adam lr 1e-3, weight decay 1e-4, \
lr x0.1 at 2/3 and 8/9 of the run, L1) with a CPU-sized default on the built-in data. \
Threads: RAYON_NUM_THREADS (default: all cores).";

/// Flags a resumed run must not change (its settings come from the checkpoint).
const RUN_FLAGS: &[&str] = &[
    "csv",
    "data_dir",
    "skip_bad",
    "data_seed",
    "arch",
    "image_size",
    "loss",
    "reweight",
    "lds",
    "lds_kernel",
    "lds_ks",
    "lds_sigma",
    "fds",
    "fds_kernel",
    "fds_ks",
    "fds_sigma",
    "start_update",
    "start_smooth",
    "fds_mmt",
    "bucket_num",
    "bucket_start",
    "fds_cov",
    "fds_stats",
    "ranksim",
    "ranksim_lambda",
    "ranksim_gamma",
    "uvote_heads",
    "conr",
    "conr_beta",
    "conr_window",
    "conr_temperature",
    "rnc",
    "rnc_epochs",
    "rnc_temperature",
    "rnc_fine_tune",
    "rnc_probe_lr",
    "batch_size",
    "lr",
    "weight_decay",
    "milestones",
    "seed",
];

fn fail(message: impl std::fmt::Display) -> RecipeError {
    RecipeError::config(message)
}

fn device(name: Option<&str>) -> Result<Device, RecipeError> {
    match name {
        None => Device::cuda_if_available(0).map_err(RecipeError::from),
        Some("cpu") => Ok(Device::Cpu),
        Some("cuda") => Device::new_cuda(0).map_err(|e| fail(format!("--device cuda: {e}"))),
        Some(other) => Err(fail(format!("--device {other}: expected cpu or cuda"))),
    }
}

fn kernel(kind: &str, ks: usize, sigma: f64, flag: &str) -> Result<dirkit::Kernel, RecipeError> {
    let kind: KernelKind = kind.parse().map_err(|e| fail(format!("--{flag}: {e}")))?;
    let k = kind.with(ks, sigma);
    k.validate().map_err(|e| fail(format!("--{flag}: {e}")))?;
    Ok(k)
}

/// The run's settings from the flags.
fn run_config(cli: &Cli) -> Result<RunConfig, RecipeError> {
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
    c.loss = cli.loss.parse()?;
    let reweight = match cli.reweight.as_deref() {
        None if cli.lds => Some(Reweight::SqrtInverse),
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
        && cli.lds
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

fn describe(config: &RunConfig, data: &RunData, params: usize) -> String {
    let method = {
        let mut parts = vec![format!("{:?}", config.loss)];
        if let Some(r) = &config.reweight {
            parts.push(format!(
                "reweight {:?}{}",
                r.reweight,
                r.lds
                    .as_ref()
                    .map_or(String::new(), |k| format!(" + LDS {k:?}"))
            ));
        }
        if let Some(f) = &config.fds {
            parts.push(format!("FDS {:?} ({:?})", f.covariance, f.source));
        }
        if config.ranksim.is_some() {
            parts.push("RankSim".into());
        }
        if let Some(c) = &config.conr {
            parts.push(format!("ConR {c:?}"));
        }
        if let Some(r) = &config.rnc {
            parts.push(format!(
                "Rank-N-Contrast pre-training {} epochs (τ {}), then the head on {} features",
                r.pretrain_epochs,
                r.loss.temperature,
                if r.fine_tune { "fine-tuned" } else { "frozen" }
            ));
        }
        parts.join(", ")
    };
    let source = match &config.data {
        DataSource::Synthetic { seed, size, .. } => {
            format!("built-in synthetic faces (seed {seed}, {size} px)")
        }
        DataSource::Folder { csv, root } => {
            format!("{} (images under {})", csv.display(), root.display())
        }
    };
    let skipped = if data.skipped_rows > 0 {
        format!(", {} bad rows skipped", data.skipped_rows)
    } else {
        String::new()
    };
    format!(
        "data: {source}: train {} / val {} / test {}{skipped}\n\
         model: {:?} at {} px, {} parameters\n\
         method: {method}\n\
         schedule: {} epochs, batch {}, Adam lr {} (x{} at {:?}), weight decay {}, seed {}",
        data.train.len(),
        data.val.len(),
        data.test.len(),
        config.arch,
        config.image_size,
        params,
        config.epochs,
        config.batch_size,
        config.lr,
        config.lr_gamma,
        config.milestones,
        config.weight_decay,
        config.seed,
    )
}

/// Trains (or resumes) one run and writes its report; returns the test report.
/// `config: None` resumes the run in `out` (`epochs` extends it).
fn train_one(
    config: Option<RunConfig>,
    out: &Path,
    epochs: Option<usize>,
    progress: bool,
    dev: &Device,
) -> Result<EvalReport, RecipeError> {
    let options = RunOptions {
        out: out.to_path_buf(),
        progress,
        verbose: true,
    };
    let mut trainer = match config {
        Some(config) => {
            prepare_run_dir(out)?;
            let data = RunData::load(&config)?;
            Trainer::new(config, data, dev.clone(), options)?
        }
        None => Trainer::resume(epochs, dev.clone(), options)?,
    };
    println!(
        "{}\ndevice: {dev:?}; run directory: {}\n",
        describe(
            trainer.config(),
            trainer.data(),
            trainer.model().parameter_count()?
        ),
        out.display()
    );
    if trainer.state().epochs_done > 0 {
        println!("resuming after epoch {}", trainer.state().epochs_done);
    }
    let density = trainer.label_density()?;
    for ext in ["png", "svg"] {
        write_density_plot(
            &out.join(format!("label_density.{ext}")),
            &density,
            "training labels: empirical and effective density",
        )?;
    }
    trainer.fit()?;
    let (report, pred, sigma) = trainer.test_best_with_sigma()?;
    println!(
        "\ntest, best epoch {} by validation MAE ({} images):\n{}",
        report.epoch + 1,
        pred.len(),
        report.table()
    );
    report.write_json(&out.join("report.json"))?;
    let ages = trainer.data().test.ages();
    write_predictions_with_sigma(
        &out.join("predictions.csv"),
        &ages,
        &pred,
        sigma.as_deref(),
        trainer.data().test.paths().as_deref(),
    )?;
    if let (Some(u), Some(s)) = (&report.uncertainty, &sigma) {
        for ext in ["png", "svg"] {
            write_uncertainty_figure(
                &out.join(format!("uncertainty.{ext}")),
                u,
                &pred,
                s,
                &ages,
                "test: sparsification and interval coverage of the predicted σ",
            )?;
        }
    }
    for ext in ["png", "svg"] {
        report.write_plot(
            &out.join(format!("test_mae_by_age.{ext}")),
            &trainer.config().bins,
            "test MAE by age",
        )?;
    }
    println!(
        "\nwrote {}/{{report.json, predictions.csv, run.json, best.safetensors, \
         last.safetensors, label_density.png/svg, test_mae_by_age.png/svg{}}}",
        out.display(),
        if sigma.is_some() {
            ", uncertainty.png/svg"
        } else {
            ""
        }
    );
    Ok(report)
}

/// mean ± sample std.
fn mean_std(v: &[f64]) -> String {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return format!("{mean:.2}");
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    format!("{mean:.2} ± {:.2}", var.sqrt())
}

/// Trains the ten methods for every seed and prints the results tables (markdown).
fn compare(base: &RunConfig, cli: &Cli, dev: &Device) -> Result<(), RecipeError> {
    let root = cli
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/age_estimation/compare"));
    let dim = base.arch.config().feature_dim();
    let lds = LdsConfig::default();
    let fds = FdsConfig::new(dim);
    let conr = ConrConfig::default();
    let rnc = RncSpec {
        pretrain_epochs: (base.epochs / 2).max(1),
        loss: RncConfig::default(),
        fine_tune: false,
        probe_lr: 0.05,
    };
    let uvote: LossSpec = "uvote".parse()?;
    let vir: LossSpec = "vir".parse()?;
    /// (key, row name, reweight, FDS, loss, ConR, RnC).
    type Method = (
        &'static str,
        &'static str,
        Option<LdsConfig>,
        Option<FdsConfig>,
        LossSpec,
        Option<ConrConfig>,
        Option<RncSpec>,
    );
    let l1 = LossSpec::L1;
    let methods: [Method; 10] = [
        (
            "vanilla",
            "Vanilla (L1)",
            None,
            None,
            l1.clone(),
            None,
            None,
        ),
        (
            "lds",
            "LDS",
            Some(lds.clone()),
            None,
            l1.clone(),
            None,
            None,
        ),
        (
            "fds",
            "FDS",
            None,
            Some(fds.clone()),
            l1.clone(),
            None,
            None,
        ),
        (
            "lds-fds",
            "LDS + FDS",
            Some(lds.clone()),
            Some(fds),
            l1.clone(),
            None,
            None,
        ),
        (
            "bmc",
            "Balanced MSE (BMC)",
            None,
            None,
            LossSpec::Bmc,
            None,
            None,
        ),
        (
            "rnc",
            "RnC (L1 on frozen features)",
            None,
            None,
            l1.clone(),
            None,
            Some(rnc),
        ),
        (
            "conr",
            "ConR (L1)",
            None,
            None,
            l1.clone(),
            Some(conr),
            None,
        ),
        (
            "conr-lds",
            "ConR + LDS",
            Some(lds),
            None,
            l1,
            Some(conr),
            None,
        ),
        ("uvote", "UVOTE (M = 2)", None, None, uvote, None, None),
        ("vir", "VIR", None, None, vir, None, None),
    ];
    let mut rows = Vec::new();
    let mut uncertainty_rows = Vec::new();
    for (key, name, reweight, fds, loss, conr, rnc) in methods {
        let mut reports = Vec::new();
        for &seed in &cli.seeds {
            let config = RunConfig {
                reweight: reweight.clone(),
                fds: fds.clone(),
                loss: loss.clone(),
                ranksim: None,
                conr,
                rnc,
                seed,
                ..base.clone()
            };
            let out = root.join(format!("{key}-seed{seed}"));
            println!("\n=== {name}, seed {seed} -> {}", out.display());
            let report = if out.join("report.json").exists() {
                let text = std::fs::read_to_string(out.join("report.json"))
                    .map_err(|e| RecipeError::io(out.join("report.json"), e))?;
                println!("(finished earlier: reading its report.json)");
                serde_json::from_str(&text)
                    .map_err(|e| RecipeError::io(out.join("report.json"), e))?
            } else if out.join(dirkit::recipe::run::LAST).exists() {
                println!("(interrupted earlier: resuming it)");
                train_one(None, &out, None, !cli.no_progress, dev)?
            } else {
                train_one(Some(config), &out, None, !cli.no_progress, dev)?
            };
            reports.push(report);
        }
        let col = |f: &dyn Fn(&EvalReport) -> Option<f64>| {
            let v: Vec<f64> = reports.iter().filter_map(f).collect();
            if v.len() == reports.len() {
                mean_std(&v)
            } else {
                "-".into()
            }
        };
        rows.push(format!(
            "| {name} | {} | {} | {} | {} | {} |",
            col(&|r| r.metrics.all.mae),
            col(&|r| r.metrics.many.mae),
            col(&|r| r.metrics.medium.mae),
            col(&|r| r.metrics.few.mae),
            col(&|r| r.metrics.all.gmean),
        ));
        if reports.iter().any(|r| r.uncertainty.is_some()) {
            uncertainty_rows.push(format!(
                "| {name} | {} | {} | {} | {} | {} |",
                col(&|r| r.uncertainty.as_ref().map(|u| u.nll)),
                col(&|r| r.uncertainty.as_ref().map(|u| u.coverage_50)),
                col(&|r| r.uncertainty.as_ref().map(|u| u.coverage_90)),
                col(&|r| r.uncertainty.as_ref().map(|u| u.sigma_error_correlation)),
                col(&|r| r.uncertainty.as_ref().map(|u| u.ause)),
            ));
        }
    }
    let seeds: Vec<String> = cli.seeds.iter().map(u64::to_string).collect();
    let table = format!(
        "Test MAE (mean ± std over seeds {}; best epoch by validation MAE)\n\n\
         | Method | MAE All | Many | Medium | Few | G-mean All |\n\
         |---|---|---|---|---|---|\n{}\n",
        seeds.join(", "),
        rows.join("\n")
    );
    let table = if uncertainty_rows.is_empty() {
        table
    } else {
        format!(
            "{table}\nPredicted σ on the test set (NLL in nats; coverage of the central 50% and \
             90% intervals; Pearson correlation of σ and |error|; AUSE)\n\n\
             | Method | NLL | 50% coverage | 90% coverage | corr(σ, error) | AUSE |\n\
             |---|---|---|---|---|---|\n{}\n",
            uncertainty_rows.join("\n")
        )
    };
    println!("\n{table}");
    let path = root.join("results.md");
    dirkit::recipe::report::write_file(&path, table.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The process's peak resident memory in MiB (Linux; `None` elsewhere).
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Step time of ConR and RnC against plain L1 at batch 64 and 256, and the peak memory of a
/// process stepping each at batch 1024, on this configuration's backbone.
fn bench_pairwise(base: &RunConfig, cli: &Cli, dev: &Device) -> Result<(), RecipeError> {
    let methods: [(&str, Option<ConrConfig>, Option<RncSpec>); 3] = [
        ("L1", None, None),
        ("L1 + ConR", Some(ConrConfig::default()), None),
        (
            "RnC (2 views)",
            None,
            Some(RncSpec {
                pretrain_epochs: 1,
                loss: RncConfig::default(),
                fine_tune: false,
                probe_lr: 0.05,
            }),
        ),
    ];
    let config = |conr, rnc, batch| RunConfig {
        loss: LossSpec::L1,
        reweight: None,
        fds: None,
        ranksim: None,
        conr,
        rnc,
        batch_size: batch,
        epochs: base.epochs.max(2),
        ..base.clone()
    };
    let data = RunData::load(base)?;
    println!(
        "{:?} at {} px, threads: {} (RAYON_NUM_THREADS), device {dev:?}, {} timed steps each \
         after 1 warm-up\n",
        base.arch,
        base.image_size,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into()),
        cli.bench_steps
    );
    println!(
        "{:<16} {:>6} {:>10} {:>12} {:>16}",
        "method", "batch", "step ms", "step img/s", "vs L1 per image"
    );
    for batch in [64, 256] {
        let mut plain = f64::NAN;
        for (name, conr, rnc) in &methods {
            let c = config(*conr, *rnc, batch);
            let s = speed::measure(&c, &data, dev, 1, cli.bench_steps)?;
            // RnC's step carries two views: compare per image of the batch.
            let per_image = s.step_ms / batch as f64 / if rnc.is_some() { 2.0 } else { 1.0 };
            if conr.is_none() && rnc.is_none() {
                plain = per_image;
            }
            println!(
                "{:<16} {:>6} {:>10.1} {:>12.1} {:>+15.1}%",
                name,
                batch,
                s.step_ms,
                s.step_images_per_second,
                100.0 * (per_image / plain - 1.0)
            );
        }
    }
    // Each method in a fresh process, so that one's freed memory does not hide another's peak.
    println!("\npeak resident memory of a process running two steps at batch 1024:");
    let exe = std::env::current_exe().map_err(|e| fail(format!("this program's path: {e}")))?;
    for (i, (name, _, _)) in methods.iter().enumerate() {
        let out = std::process::Command::new(&exe)
            .args(std::env::args().skip(1))
            .args(["--bench-memory-of", &i.to_string()])
            .output()
            .map_err(|e| fail(format!("running {}: {e}", exe.display())))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("").to_string();
        if out.status.success() {
            println!("{name:<16} {line}");
        } else {
            println!(
                "{name:<16} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// The child of [`bench_pairwise`]: one warm-up and one timed step of method `i` at batch 1024,
/// then the process's peak memory.
fn bench_memory_child(base: &RunConfig, i: usize, dev: &Device) -> Result<(), RecipeError> {
    let (conr, rnc) = match i {
        0 => (None, None),
        1 => (Some(ConrConfig::default()), None),
        _ => (
            None,
            Some(RncSpec {
                pretrain_epochs: 1,
                loss: RncConfig::default(),
                fine_tune: false,
                probe_lr: 0.05,
            }),
        ),
    };
    let c = RunConfig {
        loss: LossSpec::L1,
        reweight: None,
        fds: None,
        ranksim: None,
        conr,
        rnc,
        batch_size: 1024,
        epochs: base.epochs.max(2),
        ..base.clone()
    };
    let data = RunData::load(&c)?;
    let s = speed::measure(&c, &data, dev, 1, 1)?;
    match peak_memory_mib() {
        Some(p) => println!("{p:>8.0} MiB peak, step {:.0} ms", s.step_ms),
        None => println!("(no /proc/self/status here) step {:.0} ms", s.step_ms),
    }
    Ok(())
}

/// Measures images/s of this configuration and of ResNet-18 at 64 and 224 px, FDS on.
fn bench(base: &RunConfig, cli: &Cli, dev: &Device) -> Result<(), RecipeError> {
    if let Some(i) = cli.bench_memory_of {
        return bench_memory_child(base, i, dev);
    }
    if cli.bench_pairwise {
        return bench_pairwise(base, cli, dev);
    }
    let with_fds = |mut c: RunConfig| {
        if c.fds.is_none() {
            c.fds = Some(FdsConfig::new(c.arch.config().feature_dim()));
        }
        c
    };
    let mut cases = vec![("this configuration", with_fds(base.clone()))];
    for (size, batch) in [(64, 64), (224, 16)] {
        let c = RunConfig {
            arch: Arch::Resnet18,
            image_size: size,
            batch_size: batch,
            fds: None,
            ..base.clone()
        };
        cases.push((
            if size == 64 {
                "ResNet-18 64 px"
            } else {
                "ResNet-18 224 px"
            },
            with_fds(c),
        ));
    }
    println!(
        "threads: {} (RAYON_NUM_THREADS), device {dev:?}, {} timed steps each after 1 warm-up\n",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into()),
        cli.bench_steps
    );
    println!(
        "{:<20} {:>6} {:>6} {:>10} {:>10} {:>12} {:>12}",
        "configuration", "px", "batch", "load ms", "step ms", "step img/s", "epoch img/s"
    );
    let mut data: Option<(u32, RunData)> = None;
    for (name, config) in cases {
        if data.as_ref().is_none_or(|(s, _)| *s != config.image_size) {
            data = Some((config.image_size, RunData::load(&config)?));
        }
        let (_, d) = data.as_ref().expect("loaded above");
        let s = speed::measure(&config, d, dev, 1, cli.bench_steps)?;
        println!(
            "{:<20} {:>6} {:>6} {:>10.1} {:>10.1} {:>12.1} {:>12.1}",
            name,
            s.image_size,
            s.batch_size,
            s.load_ms,
            s.step_ms,
            s.step_images_per_second,
            s.pipeline_images_per_second
        );
    }
    Ok(())
}

fn run(matches: &clap::ArgMatches, cli: &Cli) -> Result<(), RecipeError> {
    let dev = device(cli.device.as_deref())?;
    if cli.resume {
        let given: Vec<String> = RUN_FLAGS
            .iter()
            .filter(|f| matches.value_source(f) == Some(ValueSource::CommandLine))
            .map(|f| format!("--{}", f.replace('_', "-")))
            .collect();
        if !given.is_empty() {
            return Err(fail(format!(
                "--resume continues the saved run with its own settings; drop {}",
                given.join(", ")
            )));
        }
        let out = cli.out.clone().expect("clap requires --out with --resume");
        train_one(None, &out, cli.epochs, !cli.no_progress, &dev)?;
        return Ok(());
    }
    let config = run_config(cli)?;
    if cli.bench {
        return bench(&config, cli, &dev);
    }
    if cli.compare {
        return compare(&config, cli, &dev);
    }
    let out = match &cli.out {
        Some(o) => o.clone(),
        None => fresh_run_dir(Path::new("runs/age_estimation")),
    };
    train_one(Some(config), &out, None, !cli.no_progress, &dev)?;
    Ok(())
}

fn main() -> ExitCode {
    // Steps reuse their freed tensors' memory instead of faulting in fresh pages (glibc).
    dirkit::compute::memory::keep_freed_memory();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(&matches, &cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                RecipeError::Data(d) if cli.list_bad => {
                    eprintln!("age_estimation: error: {}", d.full_list())
                }
                e => eprintln!("age_estimation: error: {e}"),
            }
            // As the dirkit binary: 2 for any refused input or failed run.
            ExitCode::from(2)
        }
    }
}
