//! `dirkit relevance`, and φ from the relevance flags for `eval --sera` and `resample`.

use std::io::Write;

use dirkit_core::relevance::{BoxPlot, ControlPoint, Extremes, Relevance, RelevanceConfig, bumps};
use serde_json::json;

use crate::args::{BoxPlotArg, ExtremesArg, Format, PhiArgs, RelevanceArgs};
use crate::error::{CliError, Result};
use crate::labels::Labels;
use crate::output::check_writable;
use crate::table::{Grid, human};
use dirkit_tabular::format_number as num;

impl PhiArgs {
    /// φ of `values`: the given control points, or the box plot's.
    pub fn relevance(&self, values: &[f64]) -> Result<Relevance> {
        if let Some(spec) = &self.control {
            return Ok(Relevance::from_control_points(&parse_control(spec)?)?);
        }
        Ok(Relevance::from_targets(values, &self.config())?)
    }

    /// The box-plot settings of the automatic control points.
    pub fn config(&self) -> RelevanceConfig {
        RelevanceConfig {
            extremes: match self.extremes {
                ExtremesArg::Both => Extremes::Both,
                ExtremesArg::High => Extremes::High,
                ExtremesArg::Low => Extremes::Low,
            },
            coef: self.coef,
            box_plot: match self.box_plot {
                BoxPlotArg::Ubl => BoxPlot::Ubl,
                BoxPlotArg::Smogn => BoxPlot::Smogn,
                BoxPlotArg::Adjusted => BoxPlot::Adjusted,
            },
        }
    }

    /// The given control points, if any.
    pub fn control_points(&self) -> Result<Option<Vec<ControlPoint>>> {
        self.control.as_deref().map(parse_control).transpose()
    }

    /// One line saying where φ came from.
    pub fn describe(&self) -> String {
        match &self.control {
            Some(c) => format!("control points {c}"),
            None => format!(
                "box plot ({}, coef {}, {} extremes)",
                match self.box_plot {
                    BoxPlotArg::Ubl => "UBL hinges",
                    BoxPlotArg::Smogn => "smogn quartiles",
                    BoxPlotArg::Adjusted => "adjusted, medcouple",
                },
                self.coef,
                match self.extremes {
                    ExtremesArg::Both => "both",
                    ExtremesArg::High => "high",
                    ExtremesArg::Low => "low",
                }
            ),
        }
    }
}

/// Parses `V:R[:S],…`.
fn parse_control(spec: &str) -> Result<Vec<ControlPoint>> {
    spec.split(',')
        .map(|item| {
            let bad = |why: &str| {
                CliError::Usage(format!(
                    "invalid --control point '{item}': {why} (expected VALUE:RELEVANCE[:SLOPE], e.g. 0:1,10:0)"
                ))
            };
            let parts: Vec<&str> = item.trim().split(':').collect();
            if !(2..=3).contains(&parts.len()) {
                return Err(bad("two or three numbers"));
            }
            let nums: Vec<f64> = parts
                .iter()
                .map(|p| p.trim().parse::<f64>().map_err(|_| bad("not a number")))
                .collect::<Result<_>>()?;
            Ok(ControlPoint {
                value: nums[0],
                relevance: nums[1],
                slope: nums.get(2).copied().unwrap_or(0.0),
            })
        })
        .collect()
}

/// Runs `dirkit relevance`.
pub fn run(a: &RelevanceArgs, out: &mut dyn Write) -> Result<()> {
    if let Some(p) = &a.plot {
        check_writable(p, &a.input, a.force)?;
    }
    let labels = Labels::read(&a.input, a.column.as_deref(), None)?;
    let y = &labels.values;
    let r = a.phi.relevance(y)?;
    let phi = r.phi_all(y);
    if let Some(path) = &a.plot {
        let title = format!("{} — relevance φ", labels.source);
        dirkit_plot::write_relevance_plot(std::path::Path::new(path), y, &r, 0.5, &title)
            .map_err(CliError::Usage)?;
    }
    let share = |t: f64| phi.iter().filter(|&&p| p >= t).count() as f64 / phi.len() as f64;
    let bs = bumps(y, &phi, 0.5)?;
    let text = match a.format {
        Format::Csv => {
            let mut s = String::with_capacity(y.len() * 16);
            s.push_str("value,relevance\n");
            for (v, p) in y.iter().zip(&phi) {
                s.push_str(&format!("{v},{p}\n"));
            }
            s
        }
        Format::Json => {
            let v = json!({
                "input": labels.source,
                "n": y.len(),
                "source": a.phi.describe(),
                "control_points": r.control_points(),
                "slopes": r.slopes(),
                "box_plot": r.box_plot(),
                "rare_share": {"0.5": share(0.5), "0.8": share(0.8)},
                "bumps": bs.iter().map(|b| json!({"lo": b.lo, "hi": b.hi, "rare": b.rare, "rows": b.rows.len()})).collect::<Vec<_>>(),
                "relevance": phi,
            });
            let mut s =
                serde_json::to_string_pretty(&v).map_err(|e| CliError::Usage(e.to_string()))?;
            s.push('\n');
            s
        }
        Format::Table | Format::Markdown => {
            let mut points = Grid::new(&["control point", "value", "relevance", "slope"]);
            for (i, (p, m)) in r.control_points().iter().zip(r.slopes()).enumerate() {
                points.rows.push(vec![
                    (i + 1).to_string(),
                    num(p.value),
                    human(p.relevance, 4),
                    human(*m, 4),
                ]);
            }
            let mut bumps_grid = Grid::new(&["bump", "targets", "rows", "share", "kind"]);
            for (i, b) in bs.iter().enumerate() {
                bumps_grid.rows.push(vec![
                    (i + 1).to_string(),
                    format!("{} to {}", num(b.lo), num(b.hi)),
                    b.rows.len().to_string(),
                    format!("{:.1}%", 100.0 * b.rows.len() as f64 / y.len() as f64),
                    if b.rare { "rare" } else { "normal" }.to_string(),
                ]);
            }
            let mut s = String::new();
            let md = a.format == Format::Markdown;
            let head = format!(
                "{}: {} values, φ from the {}",
                labels.source,
                y.len(),
                a.phi.describe()
            );
            if let Some(b) = r.box_plot() {
                let mut line = format!(
                    "box plot: whiskers {} / {}, hinges {} / {}, median {}; {} below and {} above the whiskers",
                    num(b.lower_whisker),
                    num(b.upper_whisker),
                    num(b.lower_hinge),
                    num(b.upper_hinge),
                    num(b.median),
                    b.n_low,
                    b.n_high
                );
                if let Some(mc) = b.medcouple {
                    line.push_str(&format!(", medcouple {}", human(mc, 4)));
                }
                s.push_str(&head);
                s.push_str(if md { "  \n" } else { "\n" });
                s.push_str(&line);
            } else {
                s.push_str(&head);
            }
            s.push_str("\n\n");
            s.push_str(&if md { points.markdown() } else { points.text() });
            s.push('\n');
            s.push_str(&format!(
                "rare share: {:.1}% with φ ≥ 0.5, {:.1}% with φ ≥ 0.8{}\n\n",
                100.0 * share(0.5),
                100.0 * share(0.8),
                if md { "  " } else { "" }
            ));
            s.push_str("bumps at φ = 0.5:\n\n");
            s.push_str(&if md {
                bumps_grid.markdown()
            } else {
                bumps_grid.text()
            });
            s
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        })
}
