//! The method comparison of the age-estimation recipe: vanilla, LDS, FDS, LDS + FDS, Balanced
//! MSE, RnC, ConR, ConR + LDS, UVOTE and VIR trained on one base configuration for several
//! seeds, summarised as mean ± std tables of the test report (the example's `--compare`).
//! Finished runs are read back and interrupted ones resumed, so a comparison can be stopped and
//! started again.

use std::path::Path;

use candle_core::Device;
use dirkit_core::LdsConfig;
use dirkit_nn::fds::FdsConfig;
use dirkit_nn::loss::conr::ConrConfig;
use dirkit_nn::loss::rnc::RncConfig;

use crate::config::{LossSpec, RncSpec, RunConfig};
use crate::error::{RecipeError, Result};
use crate::report::{EvalReport, write_file};
use crate::run::LAST;
use crate::train::train_and_report;

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Method {
    /// Folder-name key, e.g. `lds-fds`.
    pub key: &'static str,
    /// Row name, e.g. `LDS + FDS`.
    pub name: &'static str,
    /// Its settings (the base configuration's data, model and schedule).
    pub config: RunConfig,
}

/// The ten compared methods on `base`'s data, model and schedule; every DIR setting of `base`
/// (loss, re-weighting, FDS, RankSim, ConR, RnC) is replaced by the method's own.
pub fn methods(base: &RunConfig) -> Result<Vec<Method>> {
    let plain = RunConfig {
        loss: LossSpec::L1,
        reweight: None,
        fds: None,
        ranksim: None,
        conr: None,
        rnc: None,
        ..base.clone()
    };
    let lds = Some(LdsConfig::default());
    let fds = Some(FdsConfig::new(base.arch.config().feature_dim()));
    let conr = Some(ConrConfig::default());
    let rnc = Some(RncSpec {
        pretrain_epochs: (base.epochs / 2).max(1),
        loss: RncConfig::default(),
        fine_tune: false,
        probe_lr: 0.05,
    });
    let uvote: LossSpec = "uvote".parse()?;
    let vir: LossSpec = "vir".parse()?;
    let with = |key, name, set: &dyn Fn(&mut RunConfig)| {
        let mut config = plain.clone();
        set(&mut config);
        Method { key, name, config }
    };
    Ok(vec![
        with("vanilla", "Vanilla (L1)", &|_| {}),
        with("lds", "LDS", &|c| c.reweight = lds.clone()),
        with("fds", "FDS", &|c| c.fds = fds.clone()),
        with("lds-fds", "LDS + FDS", &|c| {
            c.reweight = lds.clone();
            c.fds = fds.clone();
        }),
        with("bmc", "Balanced MSE (BMC)", &|c| c.loss = LossSpec::Bmc),
        with("rnc", "RnC (L1 on frozen features)", &|c| c.rnc = rnc),
        with("conr", "ConR (L1)", &|c| c.conr = conr),
        with("conr-lds", "ConR + LDS", &|c| {
            c.conr = conr;
            c.reweight = lds.clone();
        }),
        with("uvote", "UVOTE (M = 2)", &|c| c.loss = uvote.clone()),
        with("vir", "VIR", &|c| c.loss = vir.clone()),
    ])
}

/// `mean ± sample std` with two decimals (the mean alone for one value).
pub fn mean_std(v: &[f64]) -> String {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return format!("{mean:.2}");
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    format!("{mean:.2} ± {:.2}", var.sqrt())
}

/// The report of `method` at `seed` in `root/<key>-seed<seed>`: read back when finished,
/// resumed when interrupted, trained otherwise.
fn report_of(
    method: &Method,
    seed: u64,
    root: &Path,
    progress: bool,
    dev: &Device,
) -> Result<EvalReport> {
    let out = root.join(format!("{}-seed{seed}", method.key));
    println!("\n=== {}, seed {seed} -> {}", method.name, out.display());
    let report_file = out.join("report.json");
    if report_file.exists() {
        println!("(finished earlier: reading its report.json)");
        let text =
            std::fs::read_to_string(&report_file).map_err(|e| RecipeError::io(&report_file, e))?;
        return serde_json::from_str(&text).map_err(|e| RecipeError::io(&report_file, e));
    }
    if out.join(LAST).exists() {
        println!("(interrupted earlier: resuming it)");
        return train_and_report(None, &out, None, progress, dev);
    }
    let config = RunConfig {
        seed,
        ..method.config.clone()
    };
    train_and_report(Some(config), &out, None, progress, dev)
}

/// Trains (or reads back) every method of [`methods`] for every seed under `root`, writes
/// `root/results.md` and returns its text: test MAE all / many / medium / few and G-mean, and
/// for the methods that predict σ its NLL, interval coverage, σ–error correlation and AUSE.
pub fn compare(
    base: &RunConfig,
    seeds: &[u64],
    root: &Path,
    progress: bool,
    dev: &Device,
) -> Result<String> {
    if seeds.is_empty() {
        return Err(RecipeError::config("--seeds: expected at least one seed"));
    }
    let mut rows = Vec::new();
    let mut uncertainty_rows = Vec::new();
    for method in methods(base)? {
        let reports = seeds
            .iter()
            .map(|&seed| report_of(&method, seed, root, progress, dev))
            .collect::<Result<Vec<_>>>()?;
        let col = |f: &dyn Fn(&EvalReport) -> Option<f64>| {
            let v: Vec<f64> = reports.iter().filter_map(f).collect();
            if v.len() == reports.len() {
                mean_std(&v)
            } else {
                "-".into()
            }
        };
        let name = method.name;
        rows.push(format!(
            "| {name} | {} | {} | {} | {} | {} |",
            col(&|r| r.metrics.all.mae),
            col(&|r| r.metrics.many.mae),
            col(&|r| r.metrics.medium.mae),
            col(&|r| r.metrics.few.mae),
            col(&|r| r.metrics.all.gmean),
        ));
        if reports.iter().any(|r| r.uncertainty.is_some()) {
            let u = |f: fn(&dirkit_core::UncertaintyReport) -> f64| {
                col(&|r: &EvalReport| r.uncertainty.as_ref().map(f))
            };
            uncertainty_rows.push(format!(
                "| {name} | {} | {} | {} | {} | {} |",
                u(|u| u.nll),
                u(|u| u.coverage_50),
                u(|u| u.coverage_90),
                u(|u| u.sigma_error_correlation),
                u(|u| u.ause),
            ));
        }
    }
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let mut table = format!(
        "Test MAE (mean ± std over seeds {}; best epoch by validation MAE)\n\n\
         | Method | MAE All | Many | Medium | Few | G-mean All |\n\
         |---|---|---|---|---|---|\n{}\n",
        seeds.join(", "),
        rows.join("\n")
    );
    if !uncertainty_rows.is_empty() {
        table.push_str(&format!(
            "\nPredicted σ on the test set (NLL in nats; coverage of the central 50% and \
             90% intervals; Pearson correlation of σ and |error|; AUSE)\n\n\
             | Method | NLL | 50% coverage | 90% coverage | corr(σ, error) | AUSE |\n\
             |---|---|---|---|---|---|\n{}\n",
            uncertainty_rows.join("\n")
        ));
    }
    write_file(&root.join("results.md"), table.as_bytes())?;
    Ok(table)
}
