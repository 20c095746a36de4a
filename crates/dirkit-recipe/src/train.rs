//! One training run from its settings to its written report: the body of the age-estimation
//! example's default mode, of `--resume`, and of every run of [`crate::compare`].

use std::path::Path;

use candle_core::Device;

use crate::config::{DataSource, RunConfig};
use crate::data::RunData;
use crate::error::Result;
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

/// What a run trains on and how, in four lines (data, model, method, schedule), printed at its
/// start.
pub fn describe(config: &RunConfig, data: &RunData, params: usize) -> String {
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
