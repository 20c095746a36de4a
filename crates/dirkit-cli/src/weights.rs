//! `dirkit weights`: the per-bin re-weighting table of a training set.

use std::io::Write;

use dirkit_core::{
    Binning, Kernel, KernelKind, LabelDensity, LdsConfig, Numerics, Reweight, Shot, ShotThresholds,
};
use serde_json::json;

use crate::args::{Compat, Format, LdsArg, ReweightArg, WeightsArgs};
use crate::error::{CliError, Result};
use crate::labels::{Labels, parse_pair};
use crate::output::check_writable;
use crate::table::{Grid, human, label};

/// The LDS configuration the flags describe, validated.
pub fn lds_config(a: &WeightsArgs) -> Result<LdsConfig> {
    if a.beta.is_some() && a.reweight != ReweightArg::EffectiveNumber {
        return Err(CliError::Usage(
            "--beta applies to --reweight effective-number only".into(),
        ));
    }
    let reweight = match a.reweight {
        ReweightArg::None => Reweight::None,
        ReweightArg::Inverse => {
            let (clip_min, clip_max) = parse_pair("--inverse-clip", &a.inverse_clip)?;
            Reweight::Inverse { clip_min, clip_max }
        }
        ReweightArg::SqrtInverse => Reweight::SqrtInverse,
        ReweightArg::EffectiveNumber => Reweight::EffectiveNumber {
            beta: a.beta.unwrap_or(0.9999),
        },
    };
    let lds_arg = a.lds.unwrap_or(if reweight == Reweight::None {
        LdsArg::None
    } else {
        LdsArg::Gaussian
    });
    let kind = match lds_arg {
        LdsArg::None => None,
        LdsArg::Gaussian => Some(KernelKind::Gaussian),
        LdsArg::GaussianExact => Some(KernelKind::GaussianExact),
        LdsArg::Triangular => Some(KernelKind::Triangular),
        LdsArg::Laplace => Some(KernelKind::Laplace),
        LdsArg::Epanechnikov => Some(KernelKind::Epanechnikov),
    };
    let lds: Option<Kernel> = kind.map(|k| k.with(a.ks, a.sigma));
    let config = LdsConfig {
        reweight,
        lds,
        numerics: match a.compat {
            Some(Compat::Reference) => Numerics::Reference,
            None => Numerics::F64,
        },
    };
    config.validate()?;
    // σ and ks are checked even when smoothing is off, so a typo never passes silently.
    KernelKind::Gaussian.with(a.ks, a.sigma).validate()?;
    Ok(config)
}

/// Runs `dirkit weights` and writes the report to `out`.
pub fn run(a: &WeightsArgs, out: &mut dyn Write) -> Result<()> {
    let config = lds_config(a)?;
    let thresholds = a.bins.thresholds()?;
    let policy = a.bins.policy();
    for p in [&a.per_sample, &a.plot].into_iter().flatten() {
        check_writable(p, &a.input, a.force)?;
    }
    let labels = Labels::read(&a.input, a.column.as_deref(), a.count_column.as_deref())?;
    let span = labels.span();
    let width = a.bins.width(&labels)?;
    let binning = a.bins.binning(span, width, |s, e| {
        labels.values.iter().any(|&y| y >= s && y < e)
    })?;
    let (counts, dropped) = labels.bin_counts(&binning, policy)?;
    let mut density = if labels.counts.is_none() && config.numerics == Numerics::Reference {
        // Reference numerics sum over the samples in input order.
        LabelDensity::fit(&labels.values, binning, policy, &config)?
    } else {
        LabelDensity::from_counts(binning, counts, &config)?
    };
    density.out_of_range = policy;
    density.dropped = dropped;

    if let Some(path) = &a.per_sample {
        write_per_sample(path, &labels, &density, config.numerics)?;
    }
    if let Some(path) = &a.plot {
        let title = format!("{} — {}", labels.source, describe(&config));
        dirkit_plot::write_lds_plot(std::path::Path::new(path), &density, &title)
            .map_err(CliError::Usage)?;
    }
    let report = Report {
        labels: &labels,
        density: &density,
        thresholds,
        config: &config,
    };
    let text = match a.format {
        Format::Table => report.table(),
        Format::Csv => report.grid(true).csv(),
        Format::Markdown => format!(
            "{}\n\n{}",
            report.summary_lines().join("  \n"),
            report.grid(false).markdown()
        ),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report.json())
                .map_err(|e| CliError::Usage(e.to_string()))?;
            s.push('\n');
            s
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        })
}

/// One line describing the weighting, e.g. `sqrt-inverse, LDS gaussian ks=5 σ=2`.
pub fn describe(c: &LdsConfig) -> String {
    let rw = match c.reweight {
        Reweight::None => "no re-weighting".to_string(),
        Reweight::Inverse { clip_min, clip_max } => {
            format!("inverse (counts clipped to [{clip_min}, {clip_max}])")
        }
        Reweight::SqrtInverse => "sqrt-inverse".to_string(),
        Reweight::Power { alpha } => format!("power α={alpha}"),
        Reweight::EffectiveNumber { beta } => format!("effective-number β={beta}"),
    };
    let lds = match &c.lds {
        None => "no LDS".to_string(),
        Some(Kernel::Gaussian { ks, sigma }) => format!("LDS gaussian ks={ks} σ={sigma}"),
        Some(Kernel::GaussianExact { ks, sigma }) => {
            format!("LDS gaussian-exact ks={ks} σ={sigma}")
        }
        Some(Kernel::Laplace { ks, sigma }) => format!("LDS laplace ks={ks} σ={sigma}"),
        Some(Kernel::Triangular { ks }) => format!("LDS triangular ks={ks}"),
        Some(Kernel::Epanechnikov { ks }) => format!("LDS epanechnikov ks={ks}"),
        Some(Kernel::Custom { weights }) => format!("LDS custom ({} weights)", weights.len()),
    };
    let num = match c.numerics {
        Numerics::F64 => "",
        Numerics::Reference => ", reference numerics",
    };
    format!("{rw}, {lds}{num}")
}

fn write_per_sample(
    path: &str,
    labels: &Labels,
    density: &LabelDensity,
    numerics: Numerics,
) -> Result<()> {
    let io = |source| CliError::Io {
        path: path.to_string(),
        source,
    };
    // Streamed into one atomic write: a bad label stops it, and the target is left untouched.
    let mut bad_label = None;
    let written = dirkit_core::atomic::write_atomic(std::path::Path::new(path), |w| {
        if labels.has_header {
            w.write_all(b"weight\n")?;
        }
        for (i, &y) in labels.values.iter().enumerate() {
            let weight = density.sample_weight(y, i).map_err(|e| {
                bad_label = Some(e);
                std::io::Error::other("bad label")
            })?;
            match (weight, numerics) {
                (Some(x), Numerics::Reference) => writeln!(w, "{}", x as f32),
                (Some(x), Numerics::F64) => writeln!(w, "{x}"),
                (None, _) => writeln!(w),
            }?;
        }
        Ok(())
    });
    match bad_label {
        Some(e) => Err(labels.locate(e)),
        None => written.map_err(io),
    }
}

struct Report<'a> {
    labels: &'a Labels,
    density: &'a LabelDensity,
    thresholds: ShotThresholds,
    config: &'a LdsConfig,
}

impl Report<'_> {
    fn binning(&self) -> &Binning {
        &self.density.binning
    }

    fn shot_sizes(&self) -> [(Shot, usize, u64); 3] {
        Shot::ALL.map(|s| {
            let (bins, samples) = self
                .density
                .counts
                .iter()
                .filter(|&&c| self.thresholds.shot(c) == s)
                .fold((0, 0), |(b, n), &c| (b + 1, n + c));
            (s, bins, samples)
        })
    }

    fn summary_lines(&self) -> Vec<String> {
        let d = self.density;
        let b = self.binning();
        let empty = d.counts.iter().filter(|&&c| c == 0).count();
        let (lo, hi) = d.weight_range();
        let mut v = vec![
            format!("input: {}", self.labels.source),
            format!("weighting: {}", describe(self.config)),
            format!(
                "samples: {}{}",
                d.n_samples(),
                if d.dropped > 0 {
                    format!(" ({} dropped as out of range)", d.dropped)
                } else {
                    String::new()
                }
            ),
            format!(
                "bins: {} of width {} over [{}, {}), {} empty",
                b.n_bins,
                label(b.width),
                label(b.start),
                label(b.end()),
                empty
            ),
            format!(
                "imbalance ratio (max/min non-zero count): {}",
                human(d.imbalance_ratio(), 4)
            ),
            format!("weight range: {} to {}", human(lo, 4), human(hi, 4)),
        ];
        let shots: Vec<String> = self
            .shot_sizes()
            .iter()
            .map(|(s, bins, n)| format!("{s} {bins} bins / {n} samples"))
            .collect();
        v.push(format!(
            "shots (many > {}, few < {}): {}",
            self.thresholds.many,
            self.thresholds.few,
            shots.join(", ")
        ));
        v
    }

    fn grid(&self, exact: bool) -> Grid {
        let d = self.density;
        let b = self.binning();
        let mut g = Grid::new(&[
            "bin",
            "start",
            "end",
            "count",
            "transformed",
            "effective_density",
            "weight",
            "shot",
        ]);
        g.align[7] = crate::table::Align::Left;
        let num = |x: f64| {
            if exact {
                x.to_string()
            } else {
                format!("{x:.4}")
            }
        };
        for i in 0..b.n_bins {
            g.rows.push(vec![
                i.to_string(),
                if exact {
                    b.lower(i).to_string()
                } else {
                    label(b.lower(i))
                },
                if exact {
                    b.upper(i).to_string()
                } else {
                    label(b.upper(i))
                },
                d.counts[i].to_string(),
                num(d.transformed[i]),
                num(d.effective_density[i]),
                d.bin_weight[i].map(num).unwrap_or_default(),
                self.thresholds.shot(d.counts[i]).to_string(),
            ]);
        }
        g
    }

    fn table(&self) -> String {
        let mut s = self.summary_lines().join("\n");
        s.push_str("\n\n");
        s.push_str(&self.grid(false).text());
        s
    }

    fn json(&self) -> serde_json::Value {
        let d = self.density;
        let b = self.binning();
        let (lo, hi) = d.weight_range();
        let bins: Vec<_> = (0..b.n_bins)
            .map(|i| {
                json!({
                    "bin": i,
                    "start": b.lower(i),
                    "end": b.upper(i),
                    "count": d.counts[i],
                    "transformed": d.transformed[i],
                    "effective_density": d.effective_density[i],
                    "weight": d.bin_weight[i],
                    "shot": self.thresholds.shot(d.counts[i]),
                })
            })
            .collect();
        let shots: serde_json::Map<String, serde_json::Value> = self
            .shot_sizes()
            .iter()
            .map(|(s, bins, n)| (s.to_string(), json!({"bins": bins, "samples": n})))
            .collect();
        json!({
            "input": self.labels.source,
            "config": self.config,
            "binning": b,
            "out_of_range": d.out_of_range,
            "thresholds": self.thresholds,
            "summary": {
                "samples": d.n_samples(),
                "dropped": d.dropped,
                "bins": b.n_bins,
                "empty_bins": d.counts.iter().filter(|&&c| c == 0).count(),
                "imbalance_ratio": d.imbalance_ratio(),
                "weight_min": lo,
                "weight_max": hi,
                "shots": shots,
            },
            "bins": bins,
        })
    }
}
