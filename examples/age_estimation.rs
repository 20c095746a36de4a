//! Age estimation end to end, the DIR papers' benchmark recipe: a ResNet trained with dirkit's
//! heads (LDS weights, FDS, Balanced MSE, RankSim, the discretized-label losses) on a folder in
//! the AgeDB-DIR layout — or, with no data flags, on the built-in synthetic faces — with
//! progress bars, best/last checkpoints, `--resume`, and the test report by shot.
//!
//! ```sh
//! cargo run --release --example age_estimation                       # built-in data, CPU
//! cargo run --release --example age_estimation -- --lds --fds        # LDS + FDS
//! cargo run --release --example age_estimation -- --loss bmc --seed 1
//! cargo run --release --example age_estimation -- --csv agedb.csv --data-dir data/agedb
//! cargo run --release --example age_estimation -- --resume --out runs/age_estimation/run-001
//! cargo run --release --example age_estimation -- --compare --seeds 0,1,2   # results table
//! cargo run --release --example age_estimation -- --bench                   # images/s
//! ```
//!
//! A run writes into `--out` (default: the first free `runs/age_estimation/run-NNN`):
//! `last.safetensors` / `best.safetensors` (weights, batch-norm statistics, FDS and optimiser
//! state, settings), `run.json` (settings and per-epoch history), `report.json`,
//! `predictions.csv`, `label_density.{png,svg}` and `test_mae_by_age.{png,svg}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::Device;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, parser::ValueSource};
use dirkit::nn::fds::{Covariance, FdsConfig, FullCovariance, StatsSource};
use dirkit::nn::loss::ranksim::RankSimConfig;
use dirkit::recipe::report::{write_density_plot, write_predictions};
use dirkit::recipe::{
    Arch, DataSource, EvalReport, LossSpec, RecipeError, RunConfig, RunData, RunOptions, Trainer,
    fresh_run_dir, prepare_run_dir, scaled_milestones, speed,
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
    /// Train on the rows that load when the index has bad rows (default: stop and list them).
    #[arg(long)]
    skip_bad: bool,
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

    /// Loss: l1, mse, huber, focal-l1, focal-mse, bmc, gai, bni, ghm-r, binned-ce, binned-la,
    /// binned-bs, binned-ldam, binned-focal, binned-cb, binned-dldl, binned-mv.
    #[arg(long, default_value = "l1")]
    loss: String,
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

    /// Train vanilla, LDS, FDS, LDS+FDS and Balanced MSE for every --seeds and print the
    /// mean ± std table (runs go under --out, default runs/age_estimation/compare).
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
                None => csv
                    .parent()
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
    let (report, pred) = trainer.test_best()?;
    println!(
        "\ntest, best epoch {} by validation MAE ({} images):\n{}",
        report.epoch + 1,
        pred.len(),
        report.table()
    );
    report.write_json(&out.join("report.json"))?;
    write_predictions(
        &out.join("predictions.csv"),
        &trainer.data().test.ages(),
        &pred,
        trainer.data().test.paths().as_deref(),
    )?;
    for ext in ["png", "svg"] {
        report.write_plot(
            &out.join(format!("test_mae_by_age.{ext}")),
            &trainer.config().bins,
            "test MAE by age",
        )?;
    }
    println!(
        "\nwrote {}/{{report.json, predictions.csv, run.json, best.safetensors, \
         last.safetensors, label_density.png/svg, test_mae_by_age.png/svg}}",
        out.display()
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

/// Trains the five methods for every seed and prints the results table (markdown).
fn compare(base: &RunConfig, cli: &Cli, dev: &Device) -> Result<(), RecipeError> {
    let root = cli
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/age_estimation/compare"));
    let dim = base.arch.config().feature_dim();
    let lds = LdsConfig::default();
    let fds = FdsConfig::new(dim);
    type Method = (
        &'static str,
        &'static str,
        Option<LdsConfig>,
        Option<FdsConfig>,
        LossSpec,
    );
    let methods: [Method; 5] = [
        ("vanilla", "Vanilla (L1)", None, None, LossSpec::L1),
        ("lds", "LDS", Some(lds.clone()), None, LossSpec::L1),
        ("fds", "FDS", None, Some(fds.clone()), LossSpec::L1),
        ("lds-fds", "LDS + FDS", Some(lds), Some(fds), LossSpec::L1),
        ("bmc", "Balanced MSE (BMC)", None, None, LossSpec::Bmc),
    ];
    let mut rows = Vec::new();
    for (key, name, reweight, fds, loss) in methods {
        let mut reports = Vec::new();
        for &seed in &cli.seeds {
            let config = RunConfig {
                reweight: reweight.clone(),
                fds: fds.clone(),
                loss: loss.clone(),
                ranksim: None,
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
    }
    let seeds: Vec<String> = cli.seeds.iter().map(u64::to_string).collect();
    let table = format!(
        "Test MAE (mean ± std over seeds {}; best epoch by validation MAE)\n\n\
         | Method | MAE All | Many | Medium | Few | G-mean All |\n\
         |---|---|---|---|---|---|\n{}\n",
        seeds.join(", "),
        rows.join("\n")
    );
    println!("\n{table}");
    let path = root.join("results.md");
    std::fs::write(&path, &table).map_err(|e| RecipeError::io(&path, e))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Measures images/s of this configuration and of ResNet-18 at 64 and 224 px, FDS on.
fn bench(base: &RunConfig, cli: &Cli, dev: &Device) -> Result<(), RecipeError> {
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

fn run() -> Result<(), RecipeError> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).map_err(|e| fail(e.to_string()))?;
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
    let config = run_config(&cli)?;
    if cli.bench {
        return bench(&config, &cli, &dev);
    }
    if cli.compare {
        return compare(&config, &cli, &dev);
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
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("age_estimation: error: {e}");
            ExitCode::FAILURE
        }
    }
}
