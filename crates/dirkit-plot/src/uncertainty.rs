//! The uncertainty figure: the sparsification curve of the predicted σ against the oracle's,
//! and the observed coverage of the central intervals against their nominal probability.

use std::path::Path;

use dirkit_core::{PredictiveDist, UncertaintyReport};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Draw, DrawResult, draw_legend, draw_mesh, nice_top, write_figure};

const SIGMA_COLOUR: RGBColor = RGBColor(33, 102, 172);
const ORACLE_COLOUR: RGBColor = RGBColor(120, 120, 120);
const COVERAGE_COLOUR: RGBColor = RGBColor(215, 48, 39);

/// Writes the uncertainty figure to `path` (.svg or .png): on top the relative MAE left after
/// removing the largest σ (and, for reference, the largest errors) as a function of the fraction
/// removed; below, the fraction of targets inside the central p-interval of the predicted
/// distribution for p = 0.05 … 0.95 against p (on the diagonal when calibrated). `report` comes
/// from the same predictions. Errors are one line naming the path.
pub fn write_uncertainty_plot(
    path: &Path,
    report: &UncertaintyReport,
    predictions: &[f64],
    sigma: &[f64],
    targets: &[f64],
    title: &str,
) -> Result<(), String> {
    let n = predictions.len().min(sigma.len()).min(targets.len());
    if n == 0 {
        return Err(format!(
            "cannot write plot {}: no predictions",
            path.display()
        ));
    }
    let coverage = (1..=19)
        .map(|k| {
            let p = k as f64 / 20.0;
            let h = report.dist.half_width(p);
            let inside = (0..n)
                .filter(|&i| (targets[i] - predictions[i]).abs() <= h * sigma[i])
                .count();
            (p, inside as f64 / n as f64)
        })
        .collect();
    let figure = Figure {
        title,
        report,
        coverage,
    };
    write_figure(path, &figure)
}

struct Figure<'a> {
    title: &'a str,
    report: &'a UncertaintyReport,
    /// (nominal, observed) coverage.
    coverage: Vec<(f64, f64)>,
}

impl Draw for Figure<'_> {
    fn title(&self) -> &str {
        self.title
    }

    fn draw_top<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let curve = &self.report.sparsification;
        let top = nice_top(
            curve
                .iter()
                .map(|p| p.by_sigma.max(p.oracle))
                .fold(0.0, f64::max)
                * 1.1,
        );
        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(8)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..1.0, 0.0..top)?;
        draw_mesh(
            &mut chart,
            Some("fraction removed"),
            "MAE of the rest / MAE of all",
        )?;
        let label = format!("removing the largest σ (AUSE {:.3})", self.report.ause);
        for (points, colour, name) in [
            (
                curve
                    .iter()
                    .map(|p| (p.removed, p.by_sigma))
                    .collect::<Vec<_>>(),
                SIGMA_COLOUR,
                label.as_str(),
            ),
            (
                curve.iter().map(|p| (p.removed, p.oracle)).collect(),
                ORACLE_COLOUR,
                "removing the largest errors (oracle)",
            ),
        ] {
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        draw_legend(&mut chart, 15)?;
        Ok(())
    }

    fn draw_bottom<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(8)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        let dist = match self.report.dist {
            PredictiveDist::Gaussian => "gaussian",
            PredictiveDist::Laplace => "laplace",
        };
        draw_mesh(
            &mut chart,
            Some(&format!(
                "nominal probability of the central interval ({dist})"
            )),
            "observed coverage",
        )?;
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                ORACLE_COLOUR.stroke_width(1),
            ))?
            .label("calibrated")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], ORACLE_COLOUR));
        chart
            .draw_series(LineSeries::new(
                self.coverage.clone(),
                COVERAGE_COLOUR.stroke_width(2),
            ))?
            .label("observed")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], COVERAGE_COLOUR.stroke_width(2))
            });
        chart.draw_series(
            self.coverage
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 3, COVERAGE_COLOUR.filled())),
        )?;
        draw_legend(&mut chart, 15)?;
        Ok(())
    }
}
