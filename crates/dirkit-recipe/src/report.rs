//! The final report of a run: dirkit-core's shot metrics on the test predictions, the error of
//! every label bin, a text table, JSON, a predictions CSV and the two figures.

use std::fmt::Write as _;
use std::path::Path;

use dirkit_core::{
    Binning, LabelDensity, OutOfRange, RegressionReport, Shot, ShotThresholds, UncertaintyReport,
};
use dirkit_plot::{LabelError, write_error_by_label_plot, write_lds_plot, write_uncertainty_plot};
use serde::{Deserialize, Serialize};

use crate::error::{RecipeError, Result};

/// Test error of the samples of one label bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinError {
    /// Lower edge of the bin (label units; the age for one-year bins).
    pub label: f64,
    /// Test samples in the bin.
    pub n: usize,
    /// Their mean absolute error, `None` without samples.
    pub mae: Option<f64>,
    /// Training samples in the bin.
    pub train_count: u64,
    /// The bin's shot by its training count.
    pub shot: Shot,
}

/// A run's evaluation on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Which split (`"test"`, `"val"`).
    pub split: String,
    /// The epoch (0-based) whose weights were evaluated.
    pub epoch: usize,
    /// MAE, MSE, G-mean overall and by shot, balanced MAE, Pearson's r (dirkit-core).
    pub metrics: RegressionReport,
    /// Error of every label bin, in label order.
    pub by_bin: Vec<BinError>,
    /// NLL, interval coverage and sparsification of the predicted σ (UVOTE, VIR).
    #[serde(default)]
    pub uncertainty: Option<UncertaintyReport>,
}

impl EvalReport {
    /// Evaluates `predictions` against `targets` with the bins and the training counts that
    /// define the shots (thresholds: many > 100, few < 20). Targets outside the bins are
    /// clipped into the end bins, as in training.
    pub fn compute(
        split: &str,
        epoch: usize,
        predictions: &[f64],
        targets: &[f64],
        bins: &Binning,
        train_counts: &[u64],
    ) -> Result<Self> {
        let thresholds = ShotThresholds::default();
        let metrics = RegressionReport::compute(
            predictions,
            targets,
            bins,
            train_counts,
            thresholds,
            OutOfRange::Clip,
        )?;
        let mut sums = vec![(0usize, 0.0f64); bins.n_bins];
        for (i, (&p, &t)) in predictions.iter().zip(targets).enumerate() {
            if let Some(b) = bins.bin(t, i, OutOfRange::Clip)? {
                sums[b].0 += 1;
                sums[b].1 += (p - t).abs();
            }
        }
        let by_bin = sums
            .iter()
            .enumerate()
            .map(|(b, &(n, s))| BinError {
                label: bins.lower(b),
                n,
                mae: (n > 0).then(|| s / n as f64),
                train_count: train_counts.get(b).copied().unwrap_or(0),
                shot: thresholds.shot(train_counts.get(b).copied().unwrap_or(0)),
            })
            .collect();
        Ok(Self {
            split: split.to_string(),
            epoch,
            metrics,
            by_bin,
            uncertainty: None,
        })
    }

    /// The table of the DIR papers: rows All / Many / Medium / Few, columns samples, MAE, MSE,
    /// G-mean.
    pub fn table(&self) -> String {
        let fmt = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<8} {:>7} {:>9} {:>10} {:>9}",
            "shot", "samples", "MAE", "MSE", "G-mean"
        );
        let m = &self.metrics;
        for (name, g) in [
            ("All", &m.all),
            ("Many", &m.many),
            ("Medium", &m.medium),
            ("Few", &m.few),
        ] {
            let _ = writeln!(
                s,
                "{:<8} {:>7} {:>9} {:>10} {:>9}",
                name,
                g.n,
                fmt(g.mae),
                fmt(g.mse),
                fmt(g.gmean)
            );
        }
        let _ = write!(
            s,
            "balanced MAE (mean over bins) {}, Pearson r {}",
            fmt(m.balanced_mae),
            fmt(m.pearson_r)
        );
        if let Some(u) = &self.uncertainty {
            let _ = write!(s, "\n{}", u.summary());
        }
        s
    }

    /// Writes the report as pretty JSON to `path` (atomically: the old file or the new one).
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| RecipeError::io(path, e))?;
        write_file(path, (json + "\n").as_bytes())
    }

    /// Writes the error-by-label figure (`.png` or `.svg` by extension).
    pub fn write_plot(&self, path: &Path, bins: &Binning, title: &str) -> Result<()> {
        let errors: Vec<LabelError> = self
            .by_bin
            .iter()
            .enumerate()
            .map(|(b, e)| LabelError {
                lower: bins.lower(b),
                upper: bins.upper(b),
                mae: e.mae,
                train_count: e.train_count,
                shot: e.shot,
            })
            .collect();
        write_error_by_label_plot(path, &errors, self.metrics.all.mae, title)
            .map_err(|e| RecipeError::io(path, e))
    }
}

/// Writes the training label distribution with its effective density (LDS) and weights.
pub fn write_density_plot(path: &Path, density: &LabelDensity, title: &str) -> Result<()> {
    write_lds_plot(path, density, title).map_err(|e| RecipeError::io(path, e))
}

/// Writes the uncertainty figure (sparsification and interval coverage) of predictions with σ.
pub fn write_uncertainty_figure(
    path: &Path,
    report: &UncertaintyReport,
    predictions: &[f64],
    sigma: &[f64],
    targets: &[f64],
    title: &str,
) -> Result<()> {
    write_uncertainty_plot(path, report, predictions, sigma, targets, title)
        .map_err(|e| RecipeError::io(path, e))
}

/// Writes `index,target,prediction` rows (and the image path when known) to `path`.
pub fn write_predictions(
    path: &Path,
    targets: &[f64],
    predictions: &[f64],
    names: Option<&[String]>,
) -> Result<()> {
    write_predictions_with_sigma(path, targets, predictions, None, names)
}

/// [`write_predictions`] with a `sigma` column (the predicted standard deviation, label units)
/// after `prediction` when given.
pub fn write_predictions_with_sigma(
    path: &Path,
    targets: &[f64],
    predictions: &[f64],
    sigma: Option<&[f64]>,
    names: Option<&[String]>,
) -> Result<()> {
    let mut s = String::from("index,target,prediction");
    if sigma.is_some() {
        s.push_str(",sigma");
    }
    s.push_str(if names.is_some() { ",path\n" } else { "\n" });
    for (i, (t, p)) in targets.iter().zip(predictions).enumerate() {
        let _ = write!(s, "{i},{t},{p}");
        if let Some(sd) = sigma.and_then(|v| v.get(i)) {
            let _ = write!(s, ",{sd}");
        }
        if let Some(n) = names.and_then(|n| n.get(i)) {
            let quoted = n.replace('"', "\"\"");
            let _ = write!(s, ",\"{quoted}\"");
        }
        s.push('\n');
    }
    write_file(path, s.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file in the same folder renamed into place, so
/// that a crash or a full disk never leaves a torn file or loses the previous one.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    dirkit_core::atomic::write_atomic(path, |w| w.write_all(bytes))
        .map_err(|e| RecipeError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_errors_average_the_bins_samples() {
        let bins = Binning::new(0.0, 1.0, 4).expect("bins");
        let targets = [0.0, 0.5, 2.0, 2.0, 9.0];
        let preds = [1.0, 0.5, 1.0, 4.0, 3.0];
        let counts = [200, 50, 0, 5];
        let r = EvalReport::compute("test", 3, &preds, &targets, &bins, &counts).expect("ok");
        assert_eq!(r.by_bin[0].n, 2);
        assert_eq!(r.by_bin[0].mae, Some(0.5));
        assert_eq!(r.by_bin[1].mae, None);
        assert_eq!(r.by_bin[2].mae, Some(1.5));
        assert_eq!(r.by_bin[3].mae, Some(6.0), "9 is clipped into the last bin");
        assert_eq!(r.by_bin[0].shot, Shot::Many);
        assert_eq!(r.by_bin[1].shot, Shot::Medium);
        assert_eq!(r.by_bin[3].shot, Shot::Few);
        assert_eq!(r.metrics.all.mae, Some((1.0 + 0.0 + 1.0 + 2.0 + 6.0) / 5.0));
        let table = r.table();
        assert!(table.contains("All") && table.contains("2.000"), "{table}");
    }
}
