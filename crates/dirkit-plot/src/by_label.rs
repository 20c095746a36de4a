//! A run's test error per label value (e.g. MAE per year of age) as bars coloured by shot, over
//! the training count of each label value, so the error can be read against the tail.

use std::path::Path;

use dirkit_core::Shot;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{
    Draw, DrawResult, FAMILY, GRID_COLOUR, draw_legend, format_tick, nice_top, write_figure,
};

const MANY_COLOUR: RGBColor = RGBColor(44, 123, 182);
const MEDIUM_COLOUR: RGBColor = RGBColor(253, 174, 97);
const FEW_COLOUR: RGBColor = RGBColor(215, 25, 28);
const COUNT_COLOUR: RGBColor = RGBColor(158, 188, 218);
const Y_LABEL_AREA: u32 = 80;

/// The error of the test samples whose label falls in one bin `[lower, upper)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelError {
    /// Lower edge of the bin, in label units.
    pub lower: f64,
    /// Upper edge of the bin, in label units.
    pub upper: f64,
    /// Mean absolute error of the bin's test samples (label units), `None` without test samples.
    pub mae: Option<f64>,
    /// Training samples in the bin.
    pub train_count: u64,
    /// The bin's shot by its training count.
    pub shot: Shot,
}

/// Writes the error-by-label figure of `bins` (in label order) to `path` (.svg or .png):
/// MAE bars coloured many / medium / few shot with a dashed line at `overall_mae`, above the
/// training counts. Errors are one line naming the path.
pub fn write_error_by_label_plot(
    path: &Path,
    bins: &[LabelError],
    overall_mae: Option<f64>,
    title: &str,
) -> Result<(), String> {
    let fail = |why: &str| format!("cannot write plot {}: {why}", path.display());
    if bins.is_empty() {
        return Err(fail("no bins to draw"));
    }
    if bins
        .iter()
        .any(|b| !(b.lower.is_finite() && b.upper.is_finite() && b.upper > b.lower))
    {
        return Err(fail("every bin needs finite edges with upper > lower"));
    }
    let figure = Figure {
        title,
        bins,
        overall: overall_mae.filter(|m| m.is_finite()),
        x_range: (bins[0].lower, bins[bins.len() - 1].upper),
    };
    write_figure(path, &figure)
}

struct Figure<'a> {
    title: &'a str,
    bins: &'a [LabelError],
    overall: Option<f64>,
    x_range: (f64, f64),
}

fn colour(shot: Shot) -> RGBColor {
    match shot {
        Shot::Many => MANY_COLOUR,
        Shot::Medium => MEDIUM_COLOUR,
        Shot::Few => FEW_COLOUR,
    }
}

impl Figure<'_> {
    fn draw_errors<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let (x0, x1) = self.x_range;
        let highest = self
            .bins
            .iter()
            .filter_map(|b| b.mae)
            .chain(self.overall)
            .filter(|m| m.is_finite())
            .fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(8)
            .margin_bottom(4)
            .x_label_area_size(28)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x0..x1, 0.0..nice_top(highest * 1.25))?;
        chart
            .configure_mesh()
            .y_desc("test MAE")
            .bold_line_style(GRID_COLOUR)
            .light_line_style(TRANSPARENT)
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .y_label_formatter(&|y| format_tick(*y))
            .x_label_formatter(&|x| format_tick(*x))
            .draw()?;
        for (shot, name) in [
            (Shot::Many, "many-shot"),
            (Shot::Medium, "medium-shot"),
            (Shot::Few, "few-shot"),
        ] {
            let c = colour(shot);
            chart
                .draw_series(
                    self.bins
                        .iter()
                        .filter(|b| b.shot == shot)
                        .filter_map(|b| b.mae.filter(|m| m.is_finite()).map(|m| (b, m)))
                        .map(move |(b, m)| {
                            Rectangle::new([(b.lower, 0.0), (b.upper, m)], c.filled())
                        }),
                )?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], c.filled()));
        }
        if let Some(m) = self.overall {
            chart
                .draw_series(DashedLineSeries::new(
                    [(x0, m), (x1, m)],
                    8,
                    5,
                    BLACK.mix(0.7).stroke_width(1),
                ))?
                .label(format!("all: {m:.2}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.7)));
        }
        draw_legend(&mut chart, 15)
    }

    fn draw_counts<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let (x0, x1) = self.x_range;
        let highest = self.bins.iter().map(|b| b.train_count).max().unwrap_or(0) as f64;
        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(8)
            .margin_bottom(8)
            .x_label_area_size(48)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x0..x1, 0.0..nice_top(highest * 1.1))?;
        chart
            .configure_mesh()
            .x_desc("label")
            .y_desc("training samples")
            .bold_line_style(GRID_COLOUR)
            .light_line_style(TRANSPARENT)
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .y_label_formatter(&|y| format_tick(*y))
            .x_label_formatter(&|x| format_tick(*x))
            .draw()?;
        chart.draw_series(self.bins.iter().filter(|b| b.train_count > 0).map(|b| {
            Rectangle::new(
                [(b.lower, 0.0), (b.upper, b.train_count as f64)],
                COUNT_COLOUR.filled(),
            )
        }))?;
        Ok(())
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
        self.draw_errors(area)
    }

    fn draw_bottom<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        self.draw_counts(area)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins() -> Vec<LabelError> {
        (0..50)
            .map(|a| LabelError {
                lower: a as f64,
                upper: a as f64 + 1.0,
                mae: (a % 9 != 0).then_some(1.0 + (a as f64 - 25.0).abs() / 5.0),
                train_count: (300.0 * (-(a as f64 - 25.0).powi(2) / 80.0).exp()) as u64,
                shot: match a {
                    15..=35 => Shot::Many,
                    10..=40 => Shot::Medium,
                    _ => Shot::Few,
                },
            })
            .collect()
    }

    #[test]
    fn svg_names_the_shots_and_the_overall_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mae.svg");
        write_error_by_label_plot(&path, &bins(), Some(4.25), "test MAE by age").expect("writes");
        let svg = std::fs::read_to_string(&path).expect("readable");
        for text in [
            "test MAE by age",
            "many-shot",
            "medium-shot",
            "few-shot",
            "all: 4.25",
            "training samples",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }

    #[test]
    fn png_has_the_figure_size_and_bad_input_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mae.png");
        write_error_by_label_plot(&path, &bins(), None, "t").expect("writes");
        let png = std::fs::read(&path).expect("readable");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        assert_eq!(width, crate::SIZE.0);
        let e = write_error_by_label_plot(&path, &[], None, "t").expect_err("empty");
        assert!(e.contains("mae.png") && e.contains("no bins"), "{e}");
        let mut bad = bins();
        bad[3].upper = bad[3].lower;
        let e = write_error_by_label_plot(&path, &bad, None, "t").expect_err("empty bin");
        assert!(e.contains("upper > lower"), "{e}");
    }
}
