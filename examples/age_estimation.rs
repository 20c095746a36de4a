//! Age estimation end to end, the DIR papers' benchmark recipe: a ResNet trained with dirkit's
//! heads (LDS weights, FDS, Balanced MSE, RankSim, ConR, Rank-N-Contrast, the UVOTE and VIR
//! uncertainty heads, the discretized-label losses) on a folder in the AgeDB-DIR layout — or,
//! with no data flags, on the built-in synthetic faces — with progress bars, best/last
//! checkpoints, `--resume`, and the test report by shot. With no method flag it trains LDS
//! (square-root-inverse weights, Gaussian kernel), the recipe that helps on long-tailed ages;
//! `--vanilla` trains the plain L1 baseline.
//!
//! ```sh
//! cargo run --release --example age_estimation                       # built-in data, LDS
//! cargo run --release --example age_estimation -- --vanilla          # the L1 baseline
//! cargo run --release --example age_estimation -- --lds --fds        # LDS + FDS
//! cargo run --release --example age_estimation -- --loss bmc --seed 1
//! cargo run --release --example age_estimation -- --conr --lds       # ConR + LDS
//! cargo run --release --example age_estimation -- --rnc              # Rank-N-Contrast
//! cargo run --release --example age_estimation -- --loss uvote       # predicts σ too
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
//! `test_mae_by_age.{png,svg}` and, for UVOTE and VIR, `uncertainty.{png,svg}`. The flags and
//! the work behind them live in `dirkit-recipe` (`flags`, `train`, `compare`, `speed`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};
use dirkit::recipe::flags::{RunFlags, device};
use dirkit::recipe::train::train_and_report;
use dirkit::recipe::{RecipeError, compare, fresh_run_dir, speed};

/// Train and evaluate an age regressor with dirkit (DIR recipe).
#[derive(Parser, Debug)]
#[command(name = "age_estimation", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// The run's settings.
    #[command(flatten)]
    run: RunFlags,
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
    /// When the index has bad rows, list every one (default: the first five and a count).
    #[arg(long)]
    list_bad: bool,

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
lr x0.1 at 2/3 and 8/9 of the run) with LDS weights, and a CPU-sized default on the built-in \
data; --vanilla trains plain L1. Threads: RAYON_NUM_THREADS (default: all cores).";

/// The pairwise bench's memory column: each method in a fresh process of this program.
fn pairwise_memory_in_children() -> Result<String, RecipeError> {
    let fail = |e: String| RecipeError::config(e);
    let exe = std::env::current_exe().map_err(|e| fail(format!("this program's path: {e}")))?;
    let mut t =
        String::from("\npeak resident memory of a process running two steps at batch 1024:\n");
    for (i, name) in speed::PAIRWISE.iter().enumerate() {
        let out = std::process::Command::new(&exe)
            .args(std::env::args().skip(1))
            .args(["--bench-memory-of", &i.to_string()])
            .output()
            .map_err(|e| fail(format!("running {}: {e}", exe.display())))?;
        let line = match out.status.success() {
            true => String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
                .into(),
            false => format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        };
        t.push_str(&format!("{name:<16} {line}\n"));
    }
    Ok(t)
}

fn run(matches: &clap::ArgMatches, cli: &Cli) -> Result<(), RecipeError> {
    let dev = device(cli.device.as_deref())?;
    let progress = !cli.no_progress;
    if cli.resume {
        let given = RunFlags::resume_conflicts(matches);
        if !given.is_empty() {
            return Err(RecipeError::config(format!(
                "--resume continues the saved run with its own settings; drop {}",
                given.join(", ")
            )));
        }
        let out = cli.out.clone().expect("clap requires --out with --resume");
        train_and_report(None, &out, cli.run.epochs, progress, &dev)?;
        return Ok(());
    }
    let config = cli.run.config()?;
    if let Some(i) = cli.bench_memory_of {
        println!("{}", speed::pairwise_memory(&config, i, &dev)?);
    } else if cli.bench_pairwise {
        print!("{}", speed::pairwise_table(&config, cli.bench_steps, &dev)?);
        print!("{}", pairwise_memory_in_children()?);
    } else if cli.bench {
        print!(
            "{}",
            speed::throughput_table(&config, cli.bench_steps, &dev)?
        );
    } else if cli.compare {
        let root = cli
            .out
            .clone()
            .unwrap_or_else(|| "runs/age_estimation/compare".into());
        let table = compare::compare(&config, &cli.seeds, &root, progress, &dev)?;
        println!("\n{table}\nwrote {}", root.join("results.md").display());
    } else {
        if cli.run.default_method() {
            println!(
                "method: LDS, square-root-inverse weights smoothed by a Gaussian kernel (the \
                 default: it lowers the few-shot error on long-tailed ages); --vanilla trains \
                 the plain L1 baseline\n"
            );
        }
        let out = match &cli.out {
            Some(o) => o.clone(),
            None => fresh_run_dir(Path::new("runs/age_estimation")),
        };
        train_and_report(Some(config), &out, None, progress, &dev)?;
    }
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
