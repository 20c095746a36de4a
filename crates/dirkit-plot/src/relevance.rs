//! The relevance figure: the histogram of a target with its rare samples marked, and φ with its
//! control points and the rare threshold.

use std::path::Path;

use dirkit_core::relevance::Relevance;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Draw, DrawResult, draw_legend, draw_mesh, nice_top, write_figure};

const NORMAL_COLOUR: RGBColor = RGBColor(158, 188, 218);
const RARE_COLOUR: RGBColor = RGBColor(215, 48, 39);
const PHI_COLOUR: RGBColor = RGBColor(33, 102, 172);

/// Writes the relevance figure of `values` under `relevance` to `path` (.svg or .png): a
/// histogram (one bar per value for whole numbers spanning at most 200, else 40 bars), bars of rare bins (φ at the bin centre ≥ `threshold`) in red, over φ with
/// its control points and the threshold. Errors are one line naming the path.
pub fn write_relevance_plot(
    path: &Path,
    values: &[f64],
    relevance: &Relevance,
    threshold: f64,
    title: &str,
) -> Result<(), String> {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(format!(
            "cannot write plot {}: no finite value",
            path.display()
        ));
    }
    let span = if hi > lo { hi - lo } else { 1.0 };
    // Whole-number targets (grades, counts) get one bar per value; others 40 bars.
    let integers = values
        .iter()
        .filter(|v| v.is_finite())
        .all(|v| v.fract() == 0.0);
    let (start, width, bins) = if integers && span <= 200.0 {
        (lo - 0.5, 1.0, span as usize + 1)
    } else {
        (lo, span / 40.0, 40)
    };
    let (x0, x1) = (
        start - 0.03 * span,
        start + width * bins as f64 + 0.03 * span,
    );
    let mut counts = vec![0u64; bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = (((v - start) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let bars = counts
        .iter()
        .enumerate()
        .map(|(b, &c)| {
            let l = start + b as f64 * width;
            let rare = relevance.phi(l + 0.5 * width) >= threshold;
            (l, l + width, c as f64, rare)
        })
        .collect();
    let curve = (0..=400)
        .map(|i| {
            let x = x0 + (x1 - x0) * i as f64 / 400.0;
            (x, relevance.phi(x))
        })
        .collect();
    let points = relevance
        .control_points()
        .iter()
        .map(|p| (p.value, p.relevance))
        .collect();
    let figure = Figure {
        title,
        x_range: (x0, x1),
        bars,
        curve,
        points,
        threshold,
    };
    write_figure(path, &figure)
}

struct Figure<'a> {
    title: &'a str,
    x_range: (f64, f64),
    /// (left, right, count, rare) per histogram bin.
    bars: Vec<(f64, f64, f64, bool)>,
    curve: Vec<(f64, f64)>,
    points: Vec<(f64, f64)>,
    threshold: f64,
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
        let top = nice_top(self.bars.iter().map(|b| b.2).fold(0.0, f64::max) * 1.15);
        let (x0, x1) = self.x_range;
        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(8)
            .x_label_area_size(28)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, 0.0..top)?;
        draw_mesh(&mut chart, None, "samples")?;
        for (rare, colour, name) in [
            (false, NORMAL_COLOUR, "normal"),
            (true, RARE_COLOUR, "rare"),
        ] {
            chart
                .draw_series(
                    self.bars.iter().filter(|b| b.3 == rare && b.2 > 0.0).map(
                        move |&(l, r, c, _)| Rectangle::new([(l, 0.0), (r, c)], colour.filled()),
                    ),
                )?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 20, y + 6)], colour.filled())
                });
        }
        draw_legend(&mut chart, 15)
    }

    fn draw_bottom<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let (x0, x1) = self.x_range;
        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(8)
            .margin_bottom(8)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, -0.05..1.1)?;
        draw_mesh(&mut chart, Some("target"), "relevance φ")?;
        chart.draw_series(DashedLineSeries::new(
            [(x0, self.threshold), (x1, self.threshold)],
            8,
            5,
            BLACK.mix(0.6).stroke_width(1),
        ))?;
        chart.draw_series(LineSeries::new(
            self.curve.iter().copied(),
            PHI_COLOUR.stroke_width(2),
        ))?;
        chart.draw_series(
            self.points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 5, PHI_COLOUR.filled())),
        )?;
        Ok(())
    }
}
