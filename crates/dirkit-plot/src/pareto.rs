//! The selection figure: every candidate's objective against its overall MAE (top) and against
//! its many-shot MAE (bottom), the Pareto front joined, plain and the chosen one named, and the
//! overall-MAE limit drawn.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Draw, DrawResult, FAMILY, draw_mesh, write_figure};

/// One candidate of [`write_pareto_plot`].
#[derive(Debug, Clone)]
pub struct ParetoPoint {
    /// `learner/method`.
    pub name: String,
    /// Mean overall MAE over the folds.
    pub mae_all: f64,
    /// Mean many-shot MAE (`None` when no fold had many-shot rows).
    pub mae_many: Option<f64>,
    /// Mean objective value.
    pub objective: f64,
    /// On the Pareto front of overall MAE against the objective.
    pub front: bool,
    /// The reference plain learner.
    pub plain: bool,
    /// The chosen candidate.
    pub chosen: bool,
}

/// Writes the selection figure to `path` (.svg or .png). `objective` names the y axis;
/// `limit` is the largest accepted overall MAE. Errors are one line naming the path.
pub fn write_pareto_plot(
    path: &Path,
    title: &str,
    objective: &str,
    points: &[ParetoPoint],
    limit: f64,
) -> Result<(), String> {
    write_figure(
        path,
        &Figure {
            title,
            objective,
            points,
            limit,
        },
    )
}

struct Figure<'a> {
    title: &'a str,
    objective: &'a str,
    points: &'a [ParetoPoint],
    limit: f64,
}

const BLUE: RGBColor = RGBColor(33, 102, 172);
const RED: RGBColor = RGBColor(215, 48, 39);
const GREY: RGBColor = RGBColor(150, 150, 150);

fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.08 * (hi - lo) } else { 0.5 };
    (lo - pad, hi + pad)
}

impl Figure<'_> {
    fn panel<DB>(&self, area: &DrawingArea<DB, Shift>, many: bool) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let x_of = |p: &ParetoPoint| if many { p.mae_many } else { Some(p.mae_all) };
        let pts: Vec<(&ParetoPoint, f64)> = self
            .points
            .iter()
            .filter_map(|p| x_of(p).map(|x| (p, x)))
            .collect();
        let mut xs: Vec<f64> = pts.iter().map(|p| p.1).collect();
        if !many {
            xs.push(self.limit);
        }
        let (x0, x1) = span(xs.into_iter());
        let (y0, y1) = span(pts.iter().map(|p| p.0.objective));
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        let x_desc = if many {
            "many-shot MAE (the common values)"
        } else {
            "overall MAE"
        };
        draw_mesh(&mut chart, Some(x_desc), self.objective)?;
        if !many && self.limit.is_finite() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(self.limit, y0), (self.limit, y1)],
                    GREY.stroke_width(1),
                )))?
                .label("overall-MAE limit")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREY.stroke_width(1)));
        }
        let mut front: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.0.front)
            .map(|p| (p.1, p.0.objective))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !many && front.len() > 1 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    front,
                    BLUE.stroke_width(2),
                )))?
                .label("Pareto front")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        }
        chart.draw_series(pts.iter().map(|&(p, x)| {
            let colour = if p.front && !many { BLUE } else { GREY };
            Circle::new((x, p.objective), 4, colour.filled())
        }))?;
        for &(p, x) in &pts {
            if p.chosen || p.plain || (p.front && !many) {
                let colour = if p.chosen { RED } else { BLACK };
                if p.chosen {
                    chart.draw_series(std::iter::once(Circle::new(
                        (x, p.objective),
                        8,
                        RED.stroke_width(2),
                    )))?;
                }
                let style = (FAMILY, 13).into_font().color(&colour);
                chart.draw_series(std::iter::once(
                    EmptyElement::at((x, p.objective)) + Text::new(p.name.clone(), (7, -15), style),
                ))?;
            }
        }
        if !many {
            crate::draw_legend(&mut chart, 14)?;
        }
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
        self.panel(area, false)
    }

    fn draw_bottom<DB>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        self.panel(area, true)
    }
}
