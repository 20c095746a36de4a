//! `dirkit._native`: the Rust side of the `dirkit` Python package. Arrays come in as numpy
//! float64 views (no copy; the Python layer makes them contiguous float64 first), the work runs
//! with the GIL released, and results go out as numpy arrays that take over the Rust buffers.
//! Every refusal is a `ValueError` carrying the message the `dirkit` CLI prints.
//!
//! The public API, its defaults and the pandas handling are in `python/dirkit/__init__.py`.

use std::fmt::Display;
use std::str::FromStr;

use dirkit_core::relevance::{BoxPlot, ControlPoint, Extremes, Relevance, RelevanceConfig};
use dirkit_core::{
    Bandwidth, Binning, DenseWeight, DenseWeightConfig, Kernel, KernelKind, LabelDensity,
    LdsConfig, Numerics, OutOfRange, RegressionReport, Reweight, ShotThresholds,
};
use dirkit_tabular::{Column, Distance, Frame, Method, ResampleConfig, Strategy};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A dirkit error as the `ValueError` Python sees.
fn value_error(e: impl Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The contiguous float64 data of `a`, without a copy.
fn view<'a>(a: &'a PyReadonlyArray1<'_, f64>, name: &str) -> PyResult<&'a [f64]> {
    a.as_slice()
        .map_err(|_| value_error(format!("{name}: expected a contiguous float64 array")))
}

/// `labels` must be finite: the message names the first bad one.
fn check_finite(values: &[f64], name: &str) -> PyResult<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(value_error(format!(
            "{name}[{i}] is {}: expected finite numbers",
            values[i]
        ))),
        None => Ok(()),
    }
}

/// The contiguous float64 data of `a`, refused when a value is not finite.
fn finite<'a>(a: &'a PyReadonlyArray1<'_, f64>, name: &str) -> PyResult<&'a [f64]> {
    let v = view(a, name)?;
    check_finite(v, name)?;
    Ok(v)
}

fn reweight(name: &str, beta: f64, clip: (f64, f64), alpha: f64) -> PyResult<Reweight> {
    Ok(match name.replace('-', "_").as_str() {
        "none" => Reweight::None,
        "inverse" | "inv" => Reweight::Inverse {
            clip_min: clip.0,
            clip_max: clip.1,
        },
        "sqrt_inv" | "sqrt_inverse" => Reweight::SqrtInverse,
        "effective_number" => Reweight::EffectiveNumber { beta },
        "power" => Reweight::Power { alpha },
        _ => {
            return Err(value_error(format!(
                "reweight={name:?}: expected none, inverse, sqrt_inv, power or effective_number"
            )));
        }
    })
}

fn out_of_range(name: &str) -> PyResult<OutOfRange> {
    match name {
        "clip" => Ok(OutOfRange::Clip),
        "drop" => Ok(OutOfRange::Drop),
        "error" => Ok(OutOfRange::Error),
        _ => Err(value_error(format!(
            "out_of_range={name:?}: expected clip, drop or error"
        ))),
    }
}

/// The binning of `labels`: `range` when given (START, END), else from the smallest to the
/// largest label.
fn binning(labels: &[f64], width: f64, range: Option<(f64, f64)>) -> PyResult<Binning> {
    match range {
        Some((start, end)) => Binning::from_range(start, end, width).map_err(value_error),
        None => {
            if labels.is_empty() {
                return Err(value_error("labels is empty: expected at least one label"));
            }
            let (lo, hi) = labels
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &y| {
                    (l.min(y), h.max(y))
                });
            Binning::auto_from_min_max(lo, hi, width).map_err(value_error)
        }
    }
}

type LdsTable<'py> = (
    Bound<'py, PyArray1<f64>>,
    f64,
    f64,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    u64,
);

/// LDS: per-sample weights and the per-bin table (start, width, counts, transformed counts,
/// effective density, bin weights with NaN for empty bins, dropped samples).
#[pyfunction]
#[pyo3(signature = (labels, bin_width, range, reweight_name, kernel, ks, sigma, compat, out_of_range_name, beta, clip, alpha=0.5))]
#[allow(clippy::too_many_arguments)]
fn lds<'py>(
    py: Python<'py>,
    labels: PyReadonlyArray1<'py, f64>,
    bin_width: f64,
    range: Option<(f64, f64)>,
    reweight_name: &str,
    kernel: Option<&str>,
    ks: usize,
    sigma: f64,
    compat: Option<&str>,
    out_of_range_name: &str,
    beta: f64,
    clip: (f64, f64),
    alpha: f64,
) -> PyResult<LdsTable<'py>> {
    let y = view(&labels, "labels")?;
    check_finite(y, "labels")?;
    let kernel: Option<Kernel> = match kernel {
        None => None,
        Some(k) => Some(
            KernelKind::from_str(&k.replace('_', "-"))
                .map_err(value_error)?
                .with(ks, sigma),
        ),
    };
    let numerics = match compat {
        None => Numerics::F64,
        Some("reference") => Numerics::Reference,
        Some(c) => {
            return Err(value_error(format!(
                "compat={c:?}: expected None or 'reference'"
            )));
        }
    };
    let config = LdsConfig {
        reweight: reweight(reweight_name, beta, clip, alpha)?,
        lds: kernel,
        numerics,
    };
    let policy = out_of_range(out_of_range_name)?;
    let bins = binning(y, bin_width, range)?;
    let (fit, weights) = py
        .detach(|| -> dirkit_core::Result<_> {
            let fit = LabelDensity::fit(y, bins, policy, &config)?;
            let w = fit.sample_weights(y)?;
            Ok((fit, w))
        })
        .map_err(value_error)?;
    let bin_weight: Vec<f64> = fit
        .bin_weight
        .iter()
        .map(|w| w.unwrap_or(f64::NAN))
        .collect();
    Ok((
        PyArray1::from_vec(py, weights),
        fit.binning.start,
        fit.binning.width,
        PyArray1::from_vec(py, fit.counts),
        PyArray1::from_vec(py, fit.transformed),
        PyArray1::from_vec(py, fit.effective_density),
        PyArray1::from_vec(py, bin_weight),
        fit.dropped,
    ))
}

/// DenseWeight (Steininger et al. 2021): per-sample weights.
#[pyfunction]
#[pyo3(signature = (labels, alpha, eps, bandwidth))]
fn denseweight<'py>(
    py: Python<'py>,
    labels: PyReadonlyArray1<'py, f64>,
    alpha: f64,
    eps: f64,
    bandwidth: Option<f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let y = view(&labels, "labels")?;
    let config = DenseWeightConfig {
        alpha,
        eps,
        bandwidth: bandwidth.map_or(Bandwidth::Silverman, Bandwidth::Fixed),
    };
    let w = py
        .detach(|| DenseWeight::fit(y, config).map(|dw| dw.weights(y)))
        .map_err(value_error)?;
    Ok(PyArray1::from_vec(py, w))
}

/// φ from a box plot of `y` or from control points `(value, relevance, slope)`.
fn relevance_of(
    y: &[f64],
    extremes: &str,
    coef: f64,
    box_plot: &str,
    control: Option<Vec<(f64, f64, f64)>>,
) -> PyResult<Relevance> {
    if let Some(points) = control {
        let points: Vec<ControlPoint> = points
            .into_iter()
            .map(|(value, relevance, slope)| ControlPoint {
                value,
                relevance,
                slope,
            })
            .collect();
        return Relevance::from_control_points(&points).map_err(value_error);
    }
    check_finite(y, "y")?;
    let config = RelevanceConfig {
        extremes: match extremes {
            "both" => Extremes::Both,
            "high" => Extremes::High,
            "low" => Extremes::Low,
            _ => {
                return Err(value_error(format!(
                    "extremes={extremes:?}: expected both, high or low"
                )));
            }
        },
        coef,
        box_plot: match box_plot {
            "ubl" => BoxPlot::Ubl,
            "smogn" => BoxPlot::Smogn,
            "adjusted" => BoxPlot::Adjusted,
            _ => {
                return Err(value_error(format!(
                    "box_plot={box_plot:?}: expected ubl, smogn or adjusted"
                )));
            }
        },
    };
    Relevance::from_targets(y, &config).map_err(value_error)
}

/// φ of every value of `values`, with φ built from `y` (or `control`); also the control points
/// as `(value, relevance, slope)`.
#[pyfunction]
#[pyo3(signature = (y, values, extremes, coef, box_plot, control))]
#[allow(clippy::type_complexity)]
fn relevance<'py>(
    py: Python<'py>,
    y: PyReadonlyArray1<'py, f64>,
    values: PyReadonlyArray1<'py, f64>,
    extremes: &str,
    coef: f64,
    box_plot: &str,
    control: Option<Vec<(f64, f64, f64)>>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Vec<(f64, f64, f64)>)> {
    let (y, values) = (view(&y, "y")?, view(&values, "values")?);
    check_finite(values, "values")?;
    let (phi, out) = py.detach(|| -> PyResult<_> {
        let phi = relevance_of(y, extremes, coef, box_plot, control)?;
        let out = phi.phi_all(values);
        Ok((phi, out))
    })?;
    let points = phi
        .control_points()
        .iter()
        .map(|p| (p.value, p.relevance, p.slope))
        .collect();
    Ok((PyArray1::from_vec(py, out), points))
}

/// SERA of `y_pred` against `y_true`, φ from `y_train` (or `control`).
#[pyfunction]
#[pyo3(signature = (y_true, y_pred, y_train, step, extremes, coef, box_plot, control))]
#[allow(clippy::too_many_arguments)]
fn sera(
    py: Python<'_>,
    y_true: PyReadonlyArray1<'_, f64>,
    y_pred: PyReadonlyArray1<'_, f64>,
    y_train: PyReadonlyArray1<'_, f64>,
    step: f64,
    extremes: &str,
    coef: f64,
    box_plot: &str,
    control: Option<Vec<(f64, f64, f64)>>,
) -> PyResult<f64> {
    let (t, p) = (view(&y_true, "y_true")?, view(&y_pred, "y_pred")?);
    check_finite(t, "y_true")?;
    check_finite(p, "y_pred")?;
    let tr = view(&y_train, "y_train")?;
    // y_train only builds φ, so control points make it optional.
    let needed = [(t, "y_true", true), (tr, "y_train", control.is_none())];
    if let Some((_, name, _)) = needed.iter().find(|(v, _, need)| *need && v.is_empty()) {
        return Err(value_error(format!(
            "{name} is empty: expected at least one value"
        )));
    }
    py.detach(|| {
        let phi = relevance_of(tr, extremes, coef, box_plot, control)?;
        dirkit_core::sera(p, t, &phi, step).map_err(value_error)
    })
}

/// The DIR report by shot (as the `dirkit eval` JSON): MAE, MSE, RMSE, G-mean and SERA for
/// all / many / medium / few, balanced MAE and MSE, Pearson's r.
#[pyfunction]
#[pyo3(signature = (y_true, y_pred, y_train, bin_width, range, many, few, sera_step, extremes, coef, box_plot, control))]
#[allow(clippy::too_many_arguments)]
fn shot_report(
    py: Python<'_>,
    y_true: PyReadonlyArray1<'_, f64>,
    y_pred: PyReadonlyArray1<'_, f64>,
    y_train: PyReadonlyArray1<'_, f64>,
    bin_width: f64,
    range: Option<(f64, f64)>,
    many: u64,
    few: u64,
    sera_step: Option<f64>,
    extremes: &str,
    coef: f64,
    box_plot: &str,
    control: Option<Vec<(f64, f64, f64)>>,
) -> PyResult<String> {
    let (t, p, tr) = (
        view(&y_true, "y_true")?,
        view(&y_pred, "y_pred")?,
        view(&y_train, "y_train")?,
    );
    for (v, name) in [(t, "y_true"), (p, "y_pred"), (tr, "y_train")] {
        if v.is_empty() {
            return Err(value_error(format!(
                "{name} is empty: expected at least one value"
            )));
        }
        check_finite(v, name)?;
    }
    let thresholds = ShotThresholds { many, few };
    thresholds.validate().map_err(value_error)?;
    let span: Vec<f64> = [tr, t].concat();
    let bins = binning(&span, bin_width, range)?;
    let phi = match sera_step {
        Some(_) => Some(relevance_of(tr, extremes, coef, box_plot, control)?),
        None => None,
    };
    let report = py
        .detach(|| -> dirkit_core::Result<RegressionReport> {
            let (counts, _) = bins.counts(tr, OutOfRange::Clip)?;
            let mut r =
                RegressionReport::compute(p, t, &bins, &counts, thresholds, OutOfRange::Clip)?;
            if let (Some(step), Some(phi)) = (sera_step, &phi) {
                r = r.with_sera(p, t, &bins, &counts, OutOfRange::Clip, phi, step)?;
            }
            Ok(r)
        })
        .map_err(value_error)?;
    serde_json::to_string(&report).map_err(value_error)
}

/// One table column from Python: float64 values, and the levels when it is nominal (the values
/// are then the codes 0..levels).
type ColumnIn<'py> = (PyReadonlyArray1<'py, f64>, Option<Vec<String>>);

/// Resamples a table by relevance of column `target`: the output columns (nominal ones as
/// float64 codes) and the resampler's notes.
#[pyfunction]
#[pyo3(signature = (columns, names, target, method, threshold, strategy, k, pert, distance, seed, over, under, extremes, coef, box_plot, control))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn resample<'py>(
    py: Python<'py>,
    columns: Vec<ColumnIn<'py>>,
    names: Vec<String>,
    target: usize,
    method: &str,
    threshold: f64,
    strategy: Vec<f64>,
    k: usize,
    pert: Option<f64>,
    distance: Option<&str>,
    seed: u64,
    over: f64,
    under: f64,
    extremes: &str,
    coef: f64,
    box_plot: &str,
    control: Option<Vec<(f64, f64, f64)>>,
) -> PyResult<(Vec<Bound<'py, PyArray1<f64>>>, Vec<String>)> {
    if columns.len() != names.len() || target >= columns.len() {
        return Err(value_error("columns, names and target do not match"));
    }
    let mut frame = Frame {
        names,
        columns: Vec::with_capacity(columns.len()),
    };
    for (c, (values, levels)) in columns.iter().enumerate() {
        let v = view(values, &frame.names[c])?;
        frame.columns.push(match levels {
            None => {
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(value_error(format!(
                        "column '{}' row {i}: {} is not finite: the resamplers need complete \
                         rows (drop or impute it first)",
                        frame.names[c], v[i]
                    )));
                }
                Column::Numeric(v.to_vec())
            }
            Some(levels) => Column::Nominal {
                levels: levels.clone(),
                codes: v.iter().map(|&x| x as u32).collect(),
            },
        });
    }
    let y = frame.columns[target]
        .numbers()
        .ok_or_else(|| value_error("the target must be numeric"))?
        .to_vec();
    let phi = py.detach(|| relevance_of(&y, extremes, coef, box_plot, control))?;
    let method = match method {
        "ro" => Method::Ro,
        "ru" => Method::Ru,
        "gn" => Method::Gn,
        "smoter" => Method::Smoter,
        "smogn" => Method::Smogn,
        "wercs" => Method::Wercs,
        m => return Err(value_error(format!("unknown method {m:?}"))),
    };
    let mut config = ResampleConfig::new(method);
    config.threshold = threshold;
    config.strategy = match strategy.as_slice() {
        [] => Strategy::Balance,
        [x] if x.is_nan() => Strategy::Extreme,
        f => Strategy::Factors(f.to_vec()),
    };
    config.k = k;
    config.pert = pert;
    config.distance = match distance {
        None => None,
        Some("euclidean") => Some(Distance::Euclidean),
        Some("heom") => Some(Distance::Heom),
        Some(d) => {
            return Err(value_error(format!(
                "distance={d:?}: expected euclidean or heom"
            )));
        }
    };
    config.seed = seed;
    config.wercs_over = over;
    config.wercs_under = under;
    let (out, report) = py
        .detach(|| dirkit_tabular::resample(&frame, target, &phi, &config))
        .map_err(value_error)?;
    let arrays = out
        .columns
        .into_iter()
        .map(|c| {
            let v: Vec<f64> = match c {
                Column::Numeric(v) => v,
                Column::Nominal { codes, .. } => codes.into_iter().map(f64::from).collect(),
            };
            PyArray1::from_vec(py, v)
        })
        .collect();
    Ok((arrays, report.notes))
}

/// The fold of every row for each repeat of relevance-stratified K-fold cross-validation
/// (`dirkit_core::relevance_folds`): `n_repeats` lists of `len(y)` fold numbers.
#[pyfunction]
#[pyo3(signature = (y, n_splits, n_repeats, threshold, seed, extremes, coef, box_plot, control))]
#[allow(clippy::too_many_arguments)]
fn relevance_folds(
    py: Python<'_>,
    y: PyReadonlyArray1<'_, f64>,
    n_splits: usize,
    n_repeats: usize,
    threshold: f64,
    seed: u64,
    extremes: &str,
    coef: f64,
    box_plot: &str,
    control: Option<Vec<(f64, f64, f64)>>,
) -> PyResult<Vec<Vec<u32>>> {
    let y = finite(&y, "y")?;
    py.detach(|| {
        let phi = relevance_of(y, extremes, coef, box_plot, control)?.phi_all(y);
        let config = dirkit_core::FoldConfig {
            n_splits,
            n_repeats,
            threshold,
            seed,
        };
        let folds = dirkit_core::relevance_folds(y, &phi, &config).map_err(value_error)?;
        Ok(folds
            .chunks(n_splits)
            .map(|rep| {
                let mut id = vec![0u32; y.len()];
                for (f, fold) in rep.iter().enumerate() {
                    for &i in &fold.test {
                        id[i] = f as u32;
                    }
                }
                id
            })
            .collect())
    })
}

/// The selection figures of one fit on one validation part (`dirkit_core::selection::Scores`)
/// as JSON: shots from `y_train`'s Freedman–Diaconis histogram, φ from `y_train` (or
/// `control`), F1 at `threshold`.
#[pyfunction]
#[pyo3(signature = (y_true, y_pred, y_train, threshold, extremes, coef, box_plot, control))]
#[allow(clippy::too_many_arguments)]
fn fold_scores(
    py: Python<'_>,
    y_true: PyReadonlyArray1<'_, f64>,
    y_pred: PyReadonlyArray1<'_, f64>,
    y_train: PyReadonlyArray1<'_, f64>,
    threshold: f64,
    extremes: &str,
    coef: f64,
    box_plot: &str,
    control: Option<Vec<(f64, f64, f64)>>,
) -> PyResult<String> {
    let (t, p) = (finite(&y_true, "y_true")?, finite(&y_pred, "y_pred")?);
    let tr = finite(&y_train, "y_train")?;
    py.detach(|| {
        let phi = relevance_of(tr, extremes, coef, box_plot, control)?;
        let s = dirkit_core::selection::Scores::compute(p, t, tr, &phi, threshold)
            .map_err(value_error)?;
        serde_json::to_string(&s).map_err(value_error)
    })
}

/// The bin width of a training part's shots and LDS bins in method selection
/// (`dirkit_core::selection::training_bins`: Freedman–Diaconis, Scott's when the IQR is 0).
#[pyfunction]
fn training_bin_width(y: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
    let y = finite(&y, "y")?;
    dirkit_core::selection::training_bins(y)
        .map(|b| b.width)
        .map_err(value_error)
}

/// The choice of `dirkit_core::selection::choose` over candidates given as JSON
/// `[{"name", "plain", "folds": [scores…] | null}]`; returns JSON with `choice` and each
/// candidate's `summary`.
#[pyfunction]
#[pyo3(signature = (candidates, objective, max_all_loss))]
fn choose(candidates: &str, objective: &str, max_all_loss: f64) -> PyResult<String> {
    use dirkit_core::selection::{Contender, Objective, Scores, Summary};
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        plain: bool,
        folds: Option<Vec<Scores>>,
    }
    let entries: Vec<Entry> = serde_json::from_str(candidates).map_err(value_error)?;
    let objective = match objective {
        "few-mae" => Objective::FewMae,
        "sera" => Objective::Sera,
        "f1" => Objective::F1,
        "balanced-mae" => Objective::BalancedMae,
        _ => {
            return Err(value_error(format!(
                "objective={objective:?}: expected few-mae, sera, f1 or balanced-mae"
            )));
        }
    };
    let summaries: Vec<Option<Summary>> = entries
        .iter()
        .map(|e| e.folds.as_deref().map(Summary::of))
        .collect();
    let contenders: Vec<Contender> = entries
        .iter()
        .zip(&summaries)
        .map(|(e, s)| Contender {
            name: &e.name,
            plain: e.plain,
            summary: s.as_ref(),
            folds: e.folds.as_deref().unwrap_or(&[]),
        })
        .collect();
    let choice = dirkit_core::selection::choose(&contenders, objective, max_all_loss)
        .map_err(value_error)?;
    serde_json::to_string(&serde_json::json!({"choice": choice, "summaries": summaries}))
        .map_err(value_error)
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lds, m)?)?;
    m.add_function(wrap_pyfunction!(denseweight, m)?)?;
    m.add_function(wrap_pyfunction!(relevance, m)?)?;
    m.add_function(wrap_pyfunction!(sera, m)?)?;
    m.add_function(wrap_pyfunction!(shot_report, m)?)?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    m.add_function(wrap_pyfunction!(relevance_folds, m)?)?;
    m.add_function(wrap_pyfunction!(fold_scores, m)?)?;
    m.add_function(wrap_pyfunction!(choose, m)?)?;
    m.add_function(wrap_pyfunction!(training_bin_width, m)?)?;
    Ok(())
}
