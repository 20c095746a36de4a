//! dirkit's figures, written as SVG or PNG: the label density with its LDS smoothing and
//! weights ([`write_lds_plot`]), a run's error per label value ([`write_error_by_label_plot`]),
//! a target's relevance φ ([`write_relevance_plot`]), a comparison of methods over repeated
//! runs ([`write_method_plot`]), a method selection's trade-off ([`write_pareto_plot`]) and the calibration of predicted uncertainty
//! ([`write_uncertainty_plot`]).
//!
//! Text is laid out (and, in PNG, rasterised) with an embedded font registered through plotters'
//! `ab_glyph` feature, so no system font library is needed. Every writer picks the format from
//! the extension (`.svg` or `.png`, case-insensitive) and reports failures as one line naming
//! the path.

#![warn(missing_docs)]

mod by_label;
mod lds;
mod methods;
mod pareto;
mod relevance;
mod uncertainty;

use std::error::Error;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

pub use by_label::{LabelError, write_error_by_label_plot};
pub use lds::write_lds_plot;
pub use methods::{MethodPanel, MethodSeries, write_method_plot};
pub use pareto::{ParetoPoint, write_pareto_plot};
pub use relevance::write_relevance_plot;
pub use uncertainty::write_uncertainty_plot;

/// Figure size in pixels (SVG user units).
pub const SIZE: (u32, u32) = (1000, 700);
/// The font family every text element uses, registered with the embedded font.
const FAMILY: &str = "sans-serif";
/// Go Regular (BSD-3-Clause, see `assets/LICENSE`).
const FONT: &[u8] = include_bytes!("../assets/Go-Regular.ttf");
const GRID_COLOUR: RGBColor = RGBColor(235, 235, 235);

type DrawResult = Result<(), Box<dyn Error>>;

/// A figure of two panels stacked under a title (3/5 and 2/5 of the height), the layout of
/// every dirkit figure.
trait Draw {
    fn title(&self) -> &str;

    fn draw_top<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static;

    fn draw_bottom<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static;
}

/// Draws `figure`'s title and its two panels on `root`.
fn draw_panels<DB>(figure: &impl Draw, root: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let body = root
        .margin(10, 4, 4, 4)
        .titled(figure.title(), (FAMILY, 26))?;
    let split = body.dim_in_pixel().1 * 3 / 5;
    let (top, bottom) = body.split_vertically(split);
    figure.draw_top(&top)?;
    figure.draw_bottom(&bottom)?;
    root.present()?;
    Ok(())
}

enum Format {
    Svg,
    Png,
}

/// Draws `figure` into `path` as SVG or PNG by the extension.
fn write_figure(path: &Path, figure: &impl Draw) -> Result<(), String> {
    let fail = |why: &dyn std::fmt::Display| format!("cannot write plot {}: {why}", path.display());
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match extension.as_deref() {
        Some("svg") => Format::Svg,
        Some("png") => Format::Png,
        _ => return Err(fail(&"unsupported extension (expected .svg or .png)")),
    };
    register_embedded_font().map_err(|e| fail(&e))?;
    // Drawn into a temporary sibling with the same extension (so the PNG encoder is chosen the
    // same way) and renamed over `path`: a failure never leaves a torn figure or loses the old
    // one.
    let drawing_error = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    dirkit_core::atomic::replace_with(path, |tmp| match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
                draw_panels(figure, &root).map_err(|e| drawing_error(&e))?;
            }
            std::fs::write(tmp, svg)
        }
        Format::Png => {
            // Creating the file first reports a bad directory or permission as a plain I/O error;
            // the bitmap backend only touches the file when it saves.
            std::fs::File::create(tmp)?;
            let root = BitMapBackend::new(tmp, SIZE).into_drawing_area();
            draw_panels(figure, &root).map_err(|e| drawing_error(&e))
        }
    })
    .map_err(|e| fail(&e))
}

/// Registers the embedded font once per process; every later call reports the first outcome.
fn register_embedded_font() -> Result<(), &'static str> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err("the embedded font could not be loaded")
    }
}

/// A chart with two f64 axes, as every dirkit panel.
type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Grid, tick labels and axis names in the house style (light grid, no minor lines).
fn draw_mesh<'a, DB>(chart: &mut Chart<'a, DB>, x_desc: Option<&str>, y_desc: &str) -> DrawResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
{
    let mut mesh = chart.configure_mesh();
    mesh.y_desc(y_desc)
        .bold_line_style(GRID_COLOUR)
        .light_line_style(TRANSPARENT)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .x_label_formatter(&|x| format_tick(*x))
        .y_label_formatter(&|y| format_tick(*y));
    if let Some(x) = x_desc {
        mesh.x_desc(x);
    }
    mesh.draw()?;
    Ok(())
}

/// The series legend in the upper right corner on a white box.
fn draw_legend<'a, DB>(chart: &mut Chart<'a, DB>, font_size: u32) -> DrawResult
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .label_font((FAMILY, font_size))
        .draw()?;
    Ok(())
}

/// A positive, finite axis top: `value` when it is one, else 1.
fn nice_top(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        1.0
    }
}

/// Tick text without trailing zeros: `20`, `0.025`, `1.5e-5`.
fn format_tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs();
    if !(1e-4..1e6).contains(&magnitude) {
        return format!("{v:.1e}");
    }
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_text_drops_trailing_zeros() {
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(20.0), "20");
        assert_eq!(format_tick(0.025), "0.025");
        assert_eq!(format_tick(2.5e-6), "2.5e-6");
    }
}
