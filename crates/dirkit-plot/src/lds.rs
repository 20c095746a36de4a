//! The LDS figure: the empirical and the effective label density over the bins, and the weight a
//! sample of each bin gets.

use std::path::Path;

use dirkit_core::LabelDensity;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{
    Draw, DrawResult, FAMILY, GRID_COLOUR, draw_legend, format_tick, nice_top, write_figure,
};

/// Space left of both plotting areas for the y tick labels and description; equal in both panels
/// so that their label axes line up.
const Y_LABEL_AREA: u32 = 80;
const MARGIN_LEFT: u32 = 10;
const MARGIN_RIGHT: u32 = 30;

const EMPIRICAL_COLOUR: RGBColor = RGBColor(158, 188, 218);
const EFFECTIVE_COLOUR: RGBColor = RGBColor(215, 48, 39);
const WEIGHT_COLOUR: RGBColor = RGBColor(33, 102, 172);

/// Writes the LDS figure for `density` to `path`; the format comes from the extension (.svg or
/// .png, case-insensitive).
///
/// Errors (unsupported extension, I/O failure, drawing failure) are one line naming the path.
pub fn write_lds_plot(path: &Path, density: &LabelDensity, title: &str) -> Result<(), String> {
    density
        .binning
        .validate()
        .map_err(|e| format!("cannot write plot {}: {e}", path.display()))?;
    let figure = Figure::new(density, title);
    write_figure(path, &figure)
}

/// What the figure shows, in label units, computed once from the fitted density.
struct Figure<'a> {
    title: &'a str,
    /// Left and right edge of the label axis.
    x_range: (f64, f64),
    /// `(lower edge, upper edge, empirical density)` of every bin.
    empirical: Vec<(f64, f64, f64)>,
    /// `(bin centre, normalised effective density)` of every bin, with the axis edges.
    effective: Vec<(f64, f64)>,
    effective_name: &'static str,
    /// `(bin centre, weight)` of every bin with a weight.
    weights: Vec<(f64, f64)>,
}

impl<'a> Figure<'a> {
    fn new(density: &LabelDensity, title: &'a str) -> Self {
        let bins = &density.binning;
        let width = bins.width;
        let total: f64 = density.counts.iter().map(|&n| n as f64).sum();
        let empirical = density
            .counts
            .iter()
            .take(bins.n_bins)
            .enumerate()
            .map(|(b, &n)| {
                let d = if total > 0.0 {
                    n as f64 / total / width
                } else {
                    0.0
                };
                (bins.lower(b), bins.upper(b), d)
            })
            .collect();
        let mass: f64 = density
            .effective_density
            .iter()
            .filter(|d| d.is_finite() && **d > 0.0)
            .sum();
        let mut effective: Vec<(f64, f64)> = density
            .effective_density
            .iter()
            .take(bins.n_bins)
            .enumerate()
            .filter(|(_, d)| d.is_finite())
            .map(|(b, &d)| {
                let d = if mass > 0.0 { d / mass / width } else { 0.0 };
                (bins.centre(b), d)
            })
            .collect();
        // The line runs from edge to edge, level over the outer half bins, so that it also shows
        // for a single bin.
        if let (Some(&(_, first)), Some(&(_, last))) = (effective.first(), effective.last()) {
            effective.insert(0, (bins.start, first));
            effective.push((bins.end(), last));
        }
        let weights = density
            .bin_weight
            .iter()
            .take(bins.n_bins)
            .enumerate()
            .filter_map(|(b, w)| w.filter(|w| w.is_finite()).map(|w| (bins.centre(b), w)))
            .collect();
        let effective_name = if density.config.lds.is_some() {
            "effective (LDS)"
        } else {
            "effective (no LDS)"
        };
        Self {
            title,
            x_range: (bins.start, bins.end()),
            empirical,
            effective,
            effective_name,
            weights,
        }
    }

    /// Top of the density axis: the highest density plus headroom for the legend.
    fn density_top(&self) -> f64 {
        let highest = self
            .empirical
            .iter()
            .map(|e| e.2)
            .chain(self.effective.iter().map(|e| e.1))
            .fold(0.0, f64::max);
        nice_top(highest * 1.25)
    }

    /// Top of the weight axis: the highest weight (at least the reference 1) plus headroom.
    fn weight_top(&self) -> f64 {
        let highest = self.weights.iter().map(|w| w.1).fold(1.0, f64::max);
        nice_top(highest * 1.2)
    }

    fn draw_density<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let (x0, x1) = self.x_range;
        let mut chart = ChartBuilder::on(area)
            .margin_left(MARGIN_LEFT)
            .margin_right(MARGIN_RIGHT)
            .margin_top(8)
            .margin_bottom(4)
            .x_label_area_size(28)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x0..x1, 0.0..self.density_top())?;
        chart
            .configure_mesh()
            .y_desc("density")
            .bold_line_style(GRID_COLOUR)
            .light_line_style(TRANSPARENT)
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .y_label_formatter(&|y| format_tick(*y))
            .x_label_formatter(&|x| format_tick(*x))
            .draw()?;
        chart
            .draw_series(
                self.empirical
                    .iter()
                    .filter(|e| e.2 > 0.0)
                    .map(|&(lo, hi, d)| {
                        Rectangle::new([(lo, 0.0), (hi, d)], EMPIRICAL_COLOUR.filled())
                    }),
            )?
            .label("empirical")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 6), (x + 20, y + 6)], EMPIRICAL_COLOUR.filled())
            });
        chart
            .draw_series(LineSeries::new(
                self.effective.iter().copied(),
                EFFECTIVE_COLOUR.stroke_width(2),
            ))?
            .label(self.effective_name)
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], EFFECTIVE_COLOUR.stroke_width(2))
            });
        draw_legend(&mut chart, 15)
    }

    fn draw_weights<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let (x0, x1) = self.x_range;
        let mut chart = ChartBuilder::on(area)
            .margin_left(MARGIN_LEFT)
            .margin_right(MARGIN_RIGHT)
            .margin_top(8)
            .margin_bottom(8)
            .x_label_area_size(48)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x0..x1, 0.0..self.weight_top())?;
        chart
            .configure_mesh()
            .x_desc("label")
            .y_desc("weight")
            .bold_line_style(GRID_COLOUR)
            .light_line_style(TRANSPARENT)
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .y_label_formatter(&|y| format_tick(*y))
            .x_label_formatter(&|x| format_tick(*x))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            [(x0, 1.0), (x1, 1.0)],
            8,
            5,
            BLACK.mix(0.6).stroke_width(1),
        ))?;
        chart.draw_series(
            self.weights
                .iter()
                .map(|&(x, w)| Circle::new((x, w), 3, WEIGHT_COLOUR.filled())),
        )?;
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
        self.draw_density(area)
    }

    fn draw_bottom<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        self.draw_weights(area)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SIZE;
    use dirkit_core::{Binning, LdsConfig};

    fn long_tailed() -> LabelDensity {
        let counts: Vec<u64> = (0..60u32)
            .map(|b| {
                (400.0 * (-(b as f64 - 12.0).powi(2) / 60.0).exp()) as u64 + (b % 7 == 0) as u64
            })
            .collect();
        let bins = Binning::new(0.0, 1.0, counts.len()).expect("valid binning");
        LabelDensity::from_counts(bins, counts, &LdsConfig::default()).expect("fits")
    }

    #[test]
    fn svg_has_the_title_and_the_legend() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lds.svg");
        write_lds_plot(&path, &long_tailed(), "AgeDB-DIR label density").expect("writes");
        let svg = std::fs::read_to_string(&path).expect("readable");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("AgeDB-DIR label density"));
        assert!(svg.contains("effective (LDS)"));
        assert!(svg.contains("empirical"));
        assert!(svg.contains("weight"));
    }

    #[test]
    fn svg_names_the_unsmoothed_density_and_the_extension_is_case_insensitive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("LDS.SVG");
        let mut density = long_tailed();
        density.config.lds = None;
        write_lds_plot(&path, &density, "t").expect("writes");
        let svg = std::fs::read_to_string(&path).expect("readable");
        assert!(svg.contains("effective (no LDS)"));
    }

    #[test]
    fn png_has_the_magic_bytes_and_the_figure_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lds.png");
        write_lds_plot(&path, &long_tailed(), "title").expect("writes");
        let png = std::fs::read(&path).expect("readable");
        assert!(png.len() > 24);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
        assert_eq!((width, height), SIZE);
    }

    #[test]
    fn unknown_extensions_and_unwritable_paths_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gif = dir.path().join("out.gif");
        let e = write_lds_plot(&gif, &long_tailed(), "t").expect_err("gif is refused");
        assert!(e.contains(&gif.display().to_string()), "{e}");
        assert!(e.contains("unsupported extension"), "{e}");
        assert!(!gif.exists());
        let none = dir.path().join("out");
        assert!(write_lds_plot(&none, &long_tailed(), "t").is_err());
        for name in ["lds.svg", "lds.png"] {
            let missing = dir.path().join("no-such-dir").join(name);
            let e = write_lds_plot(&missing, &long_tailed(), "t").expect_err("no directory");
            assert!(e.contains(&missing.display().to_string()), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
