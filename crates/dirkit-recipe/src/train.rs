//! One training run from its settings to its written report: the body of the age-estimation
//! example's default mode, of `--resume`, and of every run of [`crate::compare`].

use std::path::Path;

use candle_core::Device;

use crate::config::RunConfig;
use crate::data::RunData;
use crate::error::Result;
use crate::flags::describe;
use crate::report::{
    EvalReport, write_density_plot, write_predictions_with_sigma, write_uncertainty_figure,
};
use crate::run::{RunOptions, Trainer, prepare_run_dir};

/// Trains (or resumes) one run in `out` and writes its report, predictions and figures
/// (`report.json`, `predictions.csv`, `label_density`, `test_mae_by_age` and, for UVOTE and VIR,
/// `uncertainty` as PNG and SVG), printing its description, progress and test table; returns
/// the test report of the best epoch. `config: None` resumes the run in `out` (`epochs` may
/// extend it).
pub fn train_and_report(
    config: Option<RunConfig>,
    out: &Path,
    epochs: Option<usize>,
    progress: bool,
    dev: &Device,
) -> Result<EvalReport> {
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
