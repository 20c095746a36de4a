//! The method-comparison figure: one metric per method as mean ± std over repeated runs, for
//! several models, in two panels (two data sets, or two metrics).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Draw, DrawResult, FAMILY, GRID_COLOUR, draw_legend, format_tick, write_figure};

const SERIES_COLOURS: [RGBColor; 4] = [
    RGBColor(33, 102, 172),
    RGBColor(215, 48, 39),
    RGBColor(77, 146, 33),
    RGBColor(118, 42, 131),
];

/// One model's points: a name and, per method, (mean, std) or `None`.
pub type MethodSeries = (String, Vec<Option<(f64, f64)>>);

/// One panel of [`write_method_plot`]: a y-axis name and, per model, one (mean, std) per method
/// (`None` where the model does not run the method).
#[derive(Debug, Clone)]
pub struct MethodPanel {
    /// Panel heading and y-axis description, e.g. "wine: few-shot MAE".
    pub y_desc: String,
    /// (model name, one value per method).
    pub series: Vec<MethodSeries>,
}

/// Writes a two-panel comparison of `methods` to `path` (.svg or .png): each model is a colour,
/// each method a position on the x axis, each point the mean with a ±std bar. Errors are one line
/// naming the path.
pub fn write_method_plot(
    path: &Path,
    title: &str,
    methods: &[String],
    top: &MethodPanel,
    bottom: &MethodPanel,
) -> Result<(), String> {
    write_figure(
        path,
        &Figure {
            title,
            methods,
            panels: [top, bottom],
        },
    )
}

struct Figure<'a> {
    title: &'a str,
    methods: &'a [String],
    panels: [&'a MethodPanel; 2],
}

impl Figure<'_> {
    fn panel<DB>(&self, area: &DrawingArea<DB, Shift>, p: &MethodPanel, last: bool) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let values = p.series.iter().flat_map(|s| s.1.iter().flatten());
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &(m, s)| {
            (l.min(m - s), h.max(m + s))
        });
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        let pad = 0.08 * (hi - lo);
        let n = self.methods.len() as f64;
        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(8)
            .margin_bottom(if last { 8 } else { 4 })
            .x_label_area_size(if last { 48 } else { 28 })
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..n - 0.5, (lo - pad)..(hi + pad))?;
        let methods = self.methods;
        chart
            .configure_mesh()
            .y_desc(p.y_desc.as_str())
            .x_labels(methods.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < methods.len() {
                    methods[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format_tick(*y))
            .bold_line_style(GRID_COLOUR)
            .light_line_style(TRANSPARENT)
            // Smaller method names when many share the axis (about 60 px each at 14).
            .label_style((FAMILY, if methods.len() > 10 { 11 } else { 14 }))
            .axis_desc_style((FAMILY, 16))
            .draw()?;
        let k = p.series.len().max(1) as f64;
        for (s, (name, vals)) in p.series.iter().enumerate() {
            let colour = SERIES_COLOURS[s % SERIES_COLOURS.len()];
            let offset = (s as f64 - (k - 1.0) / 2.0) * 0.18;
            let pts: Vec<(f64, f64, f64)> = vals
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|(m, sd)| (i as f64 + offset, m, sd)))
                .collect();
            chart.draw_series(pts.iter().map(|&(x, m, sd)| {
                PathElement::new(vec![(x, m - sd), (x, m + sd)], colour.stroke_width(2))
            }))?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(x, m, _)| Circle::new((x, m), 5, colour.filled())),
                )?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        }
        draw_legend(&mut chart, 14)
    }
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
        self.panel(area, self.panels[0], false)
    }

    fn draw_bottom<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        self.panel(area, self.panels[1], true)
    }
}
