//! The relevance function φ of utility-based regression (Ribeiro 2011; Torgo & Ribeiro 2007;
//! Branco, Torgo & Ribeiro 2017): a map from target values to [0, 1] that says how much a
//! value matters, built from control points and interpolated by a monotone piecewise cubic
//! Hermite spline; the box-plot rules that choose the control points from the training
//! targets; and the *bumps*, runs of rare (φ ≥ threshold) or normal samples that the
//! resamplers work on.
//!
//! ```
//! use dirkit_core::relevance::{Relevance, RelevanceConfig};
//!
//! let y: Vec<f64> = (0..200).map(|i| (i as f64 / 40.0).exp()).collect(); // right-skewed
//! let phi = Relevance::from_targets(&y, &RelevanceConfig::default())?;
//! assert_eq!(phi.control_points().len(), 3);     // min, median, upper whisker
//! assert_eq!(phi.phi(y[0]), 0.0);                 // the common low values do not matter
//! assert_eq!(phi.phi(y[199]), 1.0);               // the high extremes do
//! # Ok::<(), dirkit_core::CoreError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result, invalid};
use crate::parallel;

/// How the box plot behind automatic control points computes its quartiles and fences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxPlot {
    /// R's `boxplot.stats` (Tukey's hinges from `fivenum`), as UBL / IRon and the `imbreg`
    /// package: the methods' authors' reference. The default.
    #[default]
    Ubl,
    /// The `smogn` Python package's box plot: numpy `quantile(…, interpolation="midpoint")`
    /// quartiles and median. Differs from [`BoxPlot::Ubl`] for most sample sizes n ≡ 2 (mod 4).
    Smogn,
    /// Hubert & Vandervieren's (2008) adjusted box plot for skewed targets: Tukey's hinges,
    /// fences `Q1 − coef·e^{−4 MC}·IQR` and `Q3 + coef·e^{3 MC}·IQR` for a medcouple MC ≥ 0
    /// (`e^{−3 MC}`, `e^{4 MC}` for MC < 0).
    Adjusted,
}

/// Which tails of the target distribution are relevant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Extremes {
    /// Both tails (the default).
    #[default]
    Both,
    /// The high tail only.
    High,
    /// The low tail only.
    Low,
}

/// Settings of the automatic control points. Defaults: both tails, `coef` 1.5, UBL box plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RelevanceConfig {
    /// Which tails are relevant.
    pub extremes: Extremes,
    /// Fence multiplier of the inter-quartile range (default 1.5; > 0).
    pub coef: f64,
    /// Quartile and fence convention.
    pub box_plot: BoxPlot,
}

impl Default for RelevanceConfig {
    fn default() -> Self {
        Self {
            extremes: Extremes::Both,
            coef: 1.5,
            box_plot: BoxPlot::Ubl,
        }
    }
}

/// Box-plot statistics of a sample: hinges, median, fences, whiskers (the most extreme
/// observations inside the fences) and the number of observations beyond them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoxPlotStats {
    /// Smallest observation ≥ the lower fence.
    pub lower_whisker: f64,
    /// Lower hinge (first quartile).
    pub lower_hinge: f64,
    /// Median.
    pub median: f64,
    /// Upper hinge (third quartile).
    pub upper_hinge: f64,
    /// Largest observation ≤ the upper fence.
    pub upper_whisker: f64,
    /// Lower fence.
    pub lower_fence: f64,
    /// Upper fence.
    pub upper_fence: f64,
    /// Observations below the lower whisker.
    pub n_low: usize,
    /// Observations above the upper whisker.
    pub n_high: usize,
    /// The medcouple, for [`BoxPlot::Adjusted`] only.
    pub medcouple: Option<f64>,
}

/// Box-plot statistics of `y` under a convention. Errors on an empty sample, a non-finite
/// value or a `coef` that is not a positive finite number.
pub fn box_plot_stats(y: &[f64], coef: f64, convention: BoxPlot) -> Result<BoxPlotStats> {
    if !(coef.is_finite() && coef > 0.0) {
        return invalid("coef", coef, "a positive finite number");
    }
    let sorted = sorted_finite(y)?;
    let n = sorted.len();
    let (q1, med, q3) = match convention {
        BoxPlot::Ubl | BoxPlot::Adjusted => {
            let nf = n as f64;
            let at = |d: f64| {
                let d = d - 1.0;
                0.5 * (sorted[d.floor() as usize] + sorted[d.ceil() as usize])
            };
            let h = 0.5 * ((nf + 3.0) / 2.0).floor();
            (at(h), at(0.5 * (nf + 1.0)), at(nf + 1.0 - h))
        }
        BoxPlot::Smogn => {
            let at = |q: f64| {
                let pos = (n - 1) as f64 * q;
                0.5 * (sorted[pos.floor() as usize] + sorted[pos.ceil() as usize])
            };
            (at(0.25), at(0.5), at(0.75))
        }
    };
    let iqr = q3 - q1;
    let (lo_mult, hi_mult, mc) = if convention == BoxPlot::Adjusted {
        let mc = medcouple_sorted(&sorted);
        if mc >= 0.0 {
            ((-4.0 * mc).exp(), (3.0 * mc).exp(), Some(mc))
        } else {
            ((-3.0 * mc).exp(), (4.0 * mc).exp(), Some(mc))
        }
    } else {
        (1.0, 1.0, None)
    };
    let lower_fence = q1 - coef * lo_mult * iqr;
    let upper_fence = q3 + coef * hi_mult * iqr;
    let lower_whisker = *sorted
        .iter()
        .find(|&&v| v >= lower_fence)
        .unwrap_or(&sorted[0]);
    let upper_whisker = *sorted
        .iter()
        .rev()
        .find(|&&v| v <= upper_fence)
        .unwrap_or(&sorted[n - 1]);
    Ok(BoxPlotStats {
        lower_whisker,
        lower_hinge: q1,
        median: med,
        upper_hinge: q3,
        upper_whisker,
        lower_fence,
        upper_fence,
        n_low: sorted.partition_point(|&v| v < lower_whisker),
        n_high: n - sorted.partition_point(|&v| v <= upper_whisker),
        medcouple: mc,
    })
}

/// A non-empty sample of finite targets.
fn check_targets(y: &[f64]) -> Result<()> {
    if y.is_empty() {
        return Err(CoreError::Empty("no target value given"));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(CoreError::NonFiniteLabel {
            index: i,
            value: y[i],
        });
    }
    Ok(())
}

fn sorted_finite(y: &[f64]) -> Result<Vec<f64>> {
    check_targets(y)?;
    let mut s = y.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    Ok(s)
}

/// The medcouple of a sample (Brys, Hubert & Struyf 2004): the median over pairs
/// x_i ≥ m ≥ x_j of `((x_i − m) − (m − x_j)) / (x_i − x_j)`, a robust skewness in [−1, 1]
/// (0 for a symmetric sample). Exact, O(n log n) memory-free: the median kernel value is found
/// by bisection on the value with an O(n) two-pointer count per step. Errors as
/// [`box_plot_stats`].
pub fn medcouple(y: &[f64]) -> Result<f64> {
    Ok(medcouple_sorted(&sorted_finite(y)?))
}

fn medcouple_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n < 3 {
        return 0.0;
    }
    let med = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    };
    // Distances from the median: a = x_i − m > 0 above it (descending), b = m − x_j > 0 below it
    // (descending); `ties` values equal the median and pair with either side.
    let a_strict: Vec<f64> = sorted
        .iter()
        .rev()
        .map(|&v| v - med)
        .filter(|&a| a > 0.0)
        .collect();
    let b_strict: Vec<f64> = sorted
        .iter()
        .map(|&v| med - v)
        .filter(|&b| b > 0.0)
        .collect();
    let ties = n - a_strict.len() - b_strict.len();
    let (p, q) = (a_strict.len() + ties, b_strict.len() + ties);
    let total = (p * q) as u64;
    // Tie against tie: h(i, j) = sign(ties − 1 − i − j) over 0 ≤ i, j < ties, i.e. ties·(ties−1)/2
    // pairs at −1, `ties` at 0 and the rest at +1.
    let tt = ties as u64;
    let tie_neg = tt * tt.saturating_sub(1) / 2;
    // Number of pairs with h ≤ t.
    let count_le = |t: f64| -> u64 {
        let mut count = 0u64;
        // Strict pairs: h = (a − b)/(a + b) rises with a and falls with b. For b descending the
        // a's with h ≤ t form a growing suffix of the descending a list.
        let mut i = 0usize;
        for &b in &b_strict {
            while i < a_strict.len() && (a_strict[i] - b) / (a_strict[i] + b) > t {
                i += 1;
            }
            count += (a_strict.len() - i) as u64;
        }
        // A tie (a = 0) against b > 0 gives −1; a > 0 against a tie (b = 0) gives +1.
        if t >= -1.0 {
            count += tt * b_strict.len() as u64 + tie_neg;
        }
        if t >= 0.0 {
            count += tt;
        }
        if t >= 1.0 {
            count += a_strict.len() as u64 * tt + tt * tt - tie_neg - tt;
        }
        count
    };
    // k-th smallest kernel value (0-based) by bisection on the value, then snapped to the
    // largest achieved value ≤ the bracket.
    let kth = |k: u64| -> f64 {
        let (mut lo, mut hi) = (-1.0f64, 1.0f64);
        if count_le(lo) > k {
            return -1.0;
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if count_le(mid) > k {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    };
    if total % 2 == 1 {
        kth(total / 2)
    } else {
        0.5 * (kth(total / 2 - 1) + kth(total / 2))
    }
}

/// One control point of φ: a target value, its relevance in [0, 1] and the slope of φ there
/// (relevance per target unit; the automatic points have slope 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ControlPoint {
    /// Target value, target units.
    pub value: f64,
    /// φ at `value`, in [0, 1].
    pub relevance: f64,
    /// dφ/dy at `value` before the monotonicity fix.
    pub slope: f64,
}

/// The relevance function φ: control points and the Fritsch–Carlson-adjusted slopes of the
/// monotone cubic Hermite spline through them. Outside the first and last control point φ is
/// constant; values are clipped to [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relevance {
    points: Vec<ControlPoint>,
    slopes: Vec<f64>,
    stats: Option<BoxPlotStats>,
}

impl Relevance {
    /// Automatic control points from the training targets' box plot (UBL's `phi.control`,
    /// method "extremes"): the lower whisker with relevance 1 when the low tail is relevant and
    /// has observations beyond it (else the minimum with relevance 0), the median with 0 (when
    /// it differs from the minimum), the upper whisker with 1 when the high tail is relevant and
    /// has observations beyond it (else the maximum with 0, when it differs from the median);
    /// duplicates dropped. All slopes 0.
    pub fn from_targets(y: &[f64], config: &RelevanceConfig) -> Result<Self> {
        let stats = box_plot_stats(y, config.coef, config.box_plot)?;
        let (min, max) = y
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let low = matches!(config.extremes, Extremes::Both | Extremes::Low);
        let high = matches!(config.extremes, Extremes::Both | Extremes::High);
        let mut pts: Vec<(f64, f64)> = Vec::with_capacity(3);
        if low && stats.n_low > 0 {
            pts.push((stats.lower_whisker, 1.0));
        } else {
            pts.push((min, 0.0));
        }
        if stats.median != min {
            pts.push((stats.median, 0.0));
        }
        if high && stats.n_high > 0 {
            pts.push((stats.upper_whisker, 1.0));
        } else if stats.median != max {
            pts.push((max, 0.0));
        }
        let mut points: Vec<ControlPoint> = Vec::with_capacity(3);
        for (value, relevance) in pts {
            if !points.iter().any(|p| p.value == value) {
                points.push(ControlPoint {
                    value,
                    relevance,
                    slope: 0.0,
                });
            }
        }
        points.sort_by(|a, b| a.value.total_cmp(&b.value));
        let mut r = Self::build(points);
        r.stats = Some(stats);
        Ok(r)
    }

    /// φ through the given control points (any order; sorted by value). Errors on no point, a
    /// non-finite number, a relevance outside [0, 1] or two points with the same value.
    pub fn from_control_points(points: &[ControlPoint]) -> Result<Self> {
        if points.is_empty() {
            return Err(CoreError::Empty("no control point given"));
        }
        for p in points {
            if !(p.value.is_finite() && p.slope.is_finite()) {
                return invalid("control point", p.value, "finite value and slope");
            }
            if !(0.0..=1.0).contains(&p.relevance) {
                return invalid("control point relevance", p.relevance, "a number in [0, 1]");
            }
        }
        let mut points = points.to_vec();
        points.sort_by(|a, b| a.value.total_cmp(&b.value));
        if let Some(w) = points.windows(2).find(|w| w[0].value == w[1].value) {
            return invalid(
                "control point value",
                w[0].value,
                "distinct values (two control points share it)",
            );
        }
        Ok(Self::build(points))
    }

    fn build(points: Vec<ControlPoint>) -> Self {
        let slopes = fritsch_carlson(&points);
        Self {
            points,
            slopes,
            stats: None,
        }
    }

    /// The control points, sorted by value.
    pub fn control_points(&self) -> &[ControlPoint] {
        &self.points
    }

    /// The spline's slopes at the control points after the Fritsch–Carlson monotonicity fix.
    pub fn slopes(&self) -> &[f64] {
        &self.slopes
    }

    /// The box plot the control points came from ([`Relevance::from_targets`] only).
    pub fn box_plot(&self) -> Option<&BoxPlotStats> {
        self.stats.as_ref()
    }

    /// φ(y) in [0, 1]; NaN for a NaN `y`.
    pub fn phi(&self, y: f64) -> f64 {
        let p = &self.points;
        let n = p.len();
        if y.is_nan() {
            return f64::NAN;
        }
        if n == 1 || y <= p[0].value {
            return p[0].relevance.clamp(0.0, 1.0);
        }
        if y >= p[n - 1].value {
            return p[n - 1].relevance.clamp(0.0, 1.0);
        }
        // Interval k with x_k ≤ y < x_{k+1}.
        let k = p.partition_point(|c| c.value <= y) - 1;
        let (x0, x1) = (p[k].value, p[k + 1].value);
        // The cubic Hermite in the interval's own coordinate t ∈ [0, 1) with the slopes scaled
        // by its width: no 1/h or 1/h² factor, so control points a subnormal distance apart
        // cannot overflow to ∞ · 0 = NaN.
        // Halved when the width overflows (control points of opposite sign near ±1.8e308);
        // halving is exact, so t is the same.
        let (t, h) = match x1 - x0 {
            h if h.is_finite() => ((y - x0) / h, h),
            _ => ((0.5 * y - 0.5 * x0) / (0.5 * x1 - 0.5 * x0), f64::MAX),
        };
        let t = t.clamp(0.0, 1.0);
        let dr = p[k + 1].relevance - p[k].relevance;
        let (m0, m1) = (self.slopes[k] * h, self.slopes[k + 1] * h);
        let cubic = t * (m0 + t * (3.0 * dr - 2.0 * m0 - m1 + t * (m0 - 2.0 * dr + m1)));
        let phi = p[k].relevance + cubic;
        if phi.is_finite() {
            phi.clamp(0.0, 1.0)
        } else {
            // Slopes too steep for the width to hold: the chord instead of the cubic.
            (p[k].relevance + t * dr).clamp(0.0, 1.0)
        }
    }

    /// φ of every value, in order (split over threads for millions of values).
    pub fn phi_all(&self, y: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; y.len()];
        let parts = parallel::parts(y.len());
        if parts <= 1 {
            for (o, &v) in out.iter_mut().zip(y) {
                *o = self.phi(v);
            }
            return out;
        }
        let chunk = y.len().div_ceil(parts);
        std::thread::scope(|s| {
            for (o, i) in out.chunks_mut(chunk).zip(y.chunks(chunk)) {
                s.spawn(move || {
                    for (o, &v) in o.iter_mut().zip(i) {
                        *o = self.phi(v);
                    }
                });
            }
        });
        out
    }
}

/// Fritsch & Carlson (1980) slope adjustment, interval by interval as UBL's `phi`: a flat
/// interval zeroes both end slopes; a slope against the secant is mirrored; slopes outside the
/// monotonicity region are scaled back onto its circle of radius 3.
fn fritsch_carlson(points: &[ControlPoint]) -> Vec<f64> {
    let mut m: Vec<f64> = points.iter().map(|p| p.slope).collect();
    for k in 0..points.len().saturating_sub(1) {
        let sk = (points[k + 1].relevance - points[k].relevance)
            / (points[k + 1].value - points[k].value);
        if sk == 0.0 {
            m[k] = 0.0;
            m[k + 1] = 0.0;
            continue;
        }
        let mut alpha = m[k] / sk;
        let mut beta = m[k + 1] / sk;
        if m[k] != 0.0 && alpha < 0.0 {
            m[k] = -m[k];
            alpha = m[k] / sk;
        }
        if m[k + 1] != 0.0 && beta < 0.0 {
            m[k + 1] = -m[k + 1];
            beta = m[k + 1] / sk;
        }
        let a2b3 = 2.0 * alpha + beta - 3.0;
        let ab23 = alpha + 2.0 * beta - 3.0;
        if a2b3 > 0.0 && ab23 > 0.0 && alpha * (a2b3 + ab23) < a2b3 * a2b3 {
            let tau = 3.0 * sk / (alpha * alpha + beta * beta).sqrt();
            m[k] = tau * alpha;
            m[k + 1] = tau * beta;
        }
    }
    m
}

/// A run of consecutive samples (in target order) on one side of the relevance threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bump {
    /// Row indices of its samples, in ascending target order (ties by row).
    pub rows: Vec<usize>,
    /// Whether its samples are rare (φ ≥ threshold).
    pub rare: bool,
    /// Smallest target in the bump.
    pub lo: f64,
    /// Largest target in the bump.
    pub hi: f64,
}

/// Splits samples into bumps at `threshold` (UBL's rule: sort the targets, cut wherever
/// consecutive φ values fall on different sides of the threshold). `phi[i]` is φ(`y[i]`).
pub fn bumps(y: &[f64], phi: &[f64], threshold: f64) -> Result<Vec<Bump>> {
    if y.len() != phi.len() {
        return Err(CoreError::LengthMismatch {
            what: "targets vs relevance",
            left: y.len(),
            right: phi.len(),
        });
    }
    check_targets(y)?;
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| y[a].total_cmp(&y[b]).then(a.cmp(&b)));
    let mut out: Vec<Bump> = Vec::new();
    for &i in &order {
        let rare = phi[i] >= threshold;
        match out.last_mut() {
            Some(b) if b.rare == rare => {
                b.rows.push(i);
                b.hi = y[i];
            }
            _ => out.push(Bump {
                rows: vec![i],
                rare,
                lo: y[i],
                hi: y[i],
            }),
        }
    }
    Ok(out)
}

/// SERA, the squared error-relevance area (Ribeiro & Moniz 2020):
/// SER_t = Σ over samples with φ(y_i) ≥ t of (ŷ_i − y_i)², integrated over t = 0, step, …, 1
/// by the trapezoid rule (IRon's `sera`; step 0.001 there). `relevance` should come from the
/// *training* targets. O(n + 1/step). Errors on mismatched lengths, non-finite values or a step
/// outside (0, 1].
pub fn sera(predictions: &[f64], targets: &[f64], relevance: &Relevance, step: f64) -> Result<f64> {
    let phi = relevance.phi_all(targets);
    sera_with_phi(predictions, targets, &phi, step)
}

/// [`sera`] with φ(y_i) already computed.
pub fn sera_with_phi(predictions: &[f64], targets: &[f64], phi: &[f64], step: f64) -> Result<f64> {
    let curve = sera_curve(predictions, targets, phi, step)?;
    Ok(curve
        .windows(2)
        .map(|w| 0.5 * (w[1].0 - w[0].0) * (w[0].1 + w[1].1))
        .sum())
}

/// The SER_t curve behind [`sera`]: (t, SER_t) for t = k·step, k = 0 … round(1/step).
pub fn sera_curve(
    predictions: &[f64],
    targets: &[f64],
    phi: &[f64],
    step: f64,
) -> Result<Vec<(f64, f64)>> {
    if !(step > 0.0 && step <= 1.0) {
        return invalid("SERA step", step, "a number in (0, 1]");
    }
    check_pairs(predictions, targets)?;
    if phi.len() != targets.len() {
        return Err(CoreError::LengthMismatch {
            what: "relevance vs targets",
            left: phi.len(),
            right: targets.len(),
        });
    }
    let k_max = (1.0 / step).round() as usize;
    let t = |k: usize| k as f64 * step;
    // bucket[k] = Σ errors of samples whose last passed threshold is t_k; threads fill their
    // own buckets over contiguous parts, summed in part order.
    let fill = |p: &[f64], y: &[f64], f: &[f64]| -> Result<Vec<f64>> {
        let mut bucket = vec![0.0f64; k_max + 1];
        for ((&p, &y), &f) in p.iter().zip(y).zip(f) {
            if !(0.0..=1.0).contains(&f) {
                return invalid("relevance", f, "a number in [0, 1]");
            }
            let mut k = ((f / step) as usize).min(k_max);
            while k < k_max && t(k + 1) <= f {
                k += 1;
            }
            while k > 0 && t(k) > f {
                k -= 1;
            }
            let e = p - y;
            bucket[k] += e * e;
        }
        Ok(bucket)
    };
    let n = targets.len();
    let parts = parallel::parts(n);
    let bucket = if parts <= 1 {
        fill(predictions, targets, phi)?
    } else {
        let chunk = n.div_ceil(parts);
        let partial: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..parts)
                .map(|i| {
                    let r = i * chunk..((i + 1) * chunk).min(n);
                    let (p, y, f) = (&predictions[r.clone()], &targets[r.clone()], &phi[r]);
                    s.spawn(move || fill(p, y, f))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("SERA worker panicked"))
                .collect()
        });
        let mut total = vec![0.0f64; k_max + 1];
        for b in partial {
            for (t, v) in total.iter_mut().zip(b?) {
                *t += v;
            }
        }
        total
    };
    let mut curve = vec![(0.0, 0.0); k_max + 1];
    let mut acc = 0.0;
    for k in (0..=k_max).rev() {
        acc += bucket[k];
        curve[k] = (t(k), acc);
    }
    Ok(curve)
}

/// Equal lengths and finite values of predictions and targets.
fn check_pairs(predictions: &[f64], targets: &[f64]) -> Result<()> {
    if predictions.len() != targets.len() {
        return Err(CoreError::LengthMismatch {
            what: "predictions vs targets",
            left: predictions.len(),
            right: targets.len(),
        });
    }
    for v in [predictions, targets] {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(CoreError::NonFiniteLabel {
                index: i,
                value: v[i],
            });
        }
    }
    Ok(())
}

/// Utility-based precision, recall and F-measure for regression (Ribeiro 2011; Branco, Torgo
/// & Ribeiro 2016, "A survey of predictive modeling on imbalanced domains").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UtilityScores {
    /// Utility-weighted precision over the samples predicted relevant (φ(ŷ) ≥ threshold).
    pub precision: f64,
    /// Utility-weighted recall over the relevant samples (φ(y) ≥ threshold).
    pub recall: f64,
    /// F_β of the two.
    pub f_score: f64,
}

/// Benefit/cost intervals of the utility surface, derived from φ's flat control points.
struct UtilityBumps {
    n: usize,
    left: Vec<f64>,
    max: Vec<f64>,
    loss: Vec<f64>,
}

impl UtilityBumps {
    fn new(points: &[ControlPoint], slopes: &[f64], default_loss: f64) -> Self {
        let np = points.len();
        let mut b = Self {
            n: 0,
            left: vec![f64::NAN; np + 1],
            max: vec![f64::NAN; np + 1],
            loss: vec![f64::NAN; np + 1],
        };
        b.left[0] = f64::NEG_INFINITY;
        b.max[0] = f64::NEG_INFINITY;
        b.loss[0] = f64::INFINITY;
        let critical: Vec<usize> = (0..np).filter(|&i| slopes[i] == 0.0).collect();
        if critical.is_empty() {
            b.loss[0] = default_loss;
            b.n = 1;
            return b;
        }
        let mut sum = points[critical[0]].value;
        let mut count = 1.0;
        let mut in_bump = true;
        let widen = |loss: &mut f64, gap: f64| {
            *loss = if gap < *loss { 2.0 * gap } else { 2.0 * *loss };
        };
        for w in critical.windows(2) {
            let d = points[w[1]].relevance - points[w[0]].relevance;
            if d == 0.0 {
                sum += points[w[1]].value;
                count += 1.0;
                continue;
            }
            if d < 0.0 && in_bump {
                b.max[b.n] = sum / count;
                if b.max[b.n].is_finite() && b.left[b.n].is_finite() {
                    b.loss[b.n] = (b.max[b.n] - b.left[b.n]).abs();
                }
                in_bump = false;
            } else if d > 0.0 && (!in_bump || b.n == 0) {
                b.n += 1;
                b.left[b.n] = sum / count;
                let n = b.n;
                if b.max[n - 1].is_finite() && b.left[n].is_finite() {
                    let gap = (b.max[n - 1] - b.left[n]).abs();
                    widen(&mut b.loss[n - 1], gap);
                }
                in_bump = true;
            }
            sum = points[w[1]].value;
            count = 1.0;
        }
        if b.n > 0 {
            if in_bump {
                let n = b.n;
                b.max[n] = sum / count;
                if b.max[n].is_finite() && b.left[n].is_finite() {
                    b.loss[n] = 2.0 * (b.max[n] - b.left[n]).abs();
                }
            } else {
                b.n += 1;
                let n = b.n;
                if n < b.left.len() {
                    b.left[n] = sum / count;
                    b.max[n] = f64::INFINITY;
                    if b.max[n - 1].is_finite() && b.left[n].is_finite() {
                        let gap = (b.max[n - 1] - b.left[n]).abs();
                        widen(&mut b.loss[n - 1], gap);
                    }
                }
            }
            if !b.max[0].is_finite() {
                b.loss[0] = b.loss[1];
            }
            let n = b.n;
            if n < b.max.len() && !b.max[n].is_finite() {
                b.loss[n] = b.loss[n - 1];
            }
        } else {
            b.loss[0] = default_loss;
        }
        b.n += 1;
        b
    }

    /// (benefit loss bound, cost loss bound) for a prediction `p` of `y`.
    fn bounds(&self, y: f64, p: f64) -> (f64, f64) {
        let mut i = 0;
        if self.n > 1 {
            i = (0..self.n).find(|&k| self.left[k] > y).unwrap_or(self.n);
            i = i.saturating_sub(1);
        }
        let cap = |loss: f64| {
            if loss < self.loss[i] {
                loss
            } else {
                self.loss[i]
            }
        };
        let finite = |v: f64| v.is_finite().then(|| (y - v).abs());
        let (benefit, cost) = if p <= y {
            (
                (i > 0).then(|| finite(self.left[i])).flatten(),
                (i > 0).then(|| finite(self.max[i - 1])).flatten(),
            )
        } else {
            (
                (i + 1 < self.n).then(|| finite(self.left[i + 1])).flatten(),
                (i + 1 < self.n).then(|| finite(self.max[i + 1])).flatten(),
            )
        };
        (
            cap(benefit.unwrap_or(f64::INFINITY)),
            cap(cost.unwrap_or(f64::INFINITY)),
        )
    }
}

/// Utility-based precision, recall and F_β (β = 1 gives F1) of predictions at a relevance
/// `threshold` (commonly 0.8), with the utility surface of Ribeiro (2011) at p = 0.5: a
/// prediction earns φ(y)·benefit and pays the mean relevance of target and prediction times its
/// cost, both linear in |ŷ − y| up to bounds set by φ's bumps. Matches the `imbreg` package's
/// `utility_f1_score` (a port of UBL's C code). Errors as [`sera`], and on fewer than two
/// samples.
pub fn utility_scores(
    predictions: &[f64],
    targets: &[f64],
    relevance: &Relevance,
    threshold: f64,
    beta: f64,
) -> Result<UtilityScores> {
    check_pairs(predictions, targets)?;
    let n = targets.len();
    if n < 2 {
        return Err(CoreError::Empty("utility scores need at least two samples"));
    }
    if !(beta.is_finite() && beta > 0.0) {
        return invalid("beta", beta, "a positive finite number");
    }
    if !(0.0..=1.0).contains(&threshold) {
        return invalid("utility threshold", threshold, "a relevance in [0, 1]");
    }
    let nf = n as f64;
    let mean = targets.iter().sum::<f64>() / nf;
    let dev: Vec<f64> = targets.iter().map(|y| (mean - y).abs()).collect();
    let dmean = dev.iter().sum::<f64>() / nf;
    let sd = (dev.iter().map(|d| (d - dmean).powi(2)).sum::<f64>() / (nf - 1.0)).sqrt();
    let default_loss = 3.0 * sd * (nf.ln() / nf).sqrt();
    let bumps = UtilityBumps::new(relevance.control_points(), relevance.slopes(), default_loss);
    let phi_true = relevance.phi_all(targets);
    let phi_pred = relevance.phi_all(predictions);
    let utility = |i: usize| {
        let (y, p) = (targets[i], predictions[i]);
        let (lb, lc) = bumps.bounds(y, p);
        let l = (y - p).abs();
        let benefit = if lb == 0.0 || l > lb {
            0.0
        } else {
            1.0 - l / lb
        };
        let joint = 0.5 * phi_true[i] + 0.5 * phi_pred[i];
        let cost = if lc == 0.0 || l > lc { 1.0 } else { l / lc };
        phi_true[i] * benefit - joint * cost
    };
    let utilities: Vec<f64> = (0..n).map(utility).collect();
    let ratio = |phis: &[f64]| {
        let (mut num, mut den, mut any) = (Kahan::default(), Kahan::default(), false);
        for i in 0..n {
            if phis[i] >= threshold - 1e-9 {
                any = true;
                num.add((1.0 + utilities[i]).abs());
                den.add((1.0 + phis[i]).abs());
            }
        }
        if !any {
            1e-10
        } else if den.sum == 0.0 {
            0.0
        } else {
            num.sum / den.sum
        }
    };
    let precision = ratio(&phi_pred);
    let recall = ratio(&phi_true);
    let b2 = beta * beta;
    let f_score = if precision == 0.0 || recall == 0.0 {
        0.0
    } else {
        (b2 + 1.0) * precision * recall / (b2 * precision + recall)
    };
    Ok(UtilityScores {
        precision,
        recall,
        f_score,
    })
}

#[derive(Default)]
struct Kahan {
    sum: f64,
    c: f64,
}

impl Kahan {
    fn add(&mut self, v: f64) {
        let y = v - self.c;
        let t = self.sum + y;
        self.c = (t - self.sum) - y;
        self.sum = t;
    }
}

/// Rules for choosing a histogram bin width from data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinRule {
    /// Freedman–Diaconis: 2·IQR·n^(−1/3) (robust to tails; the default). Falls back to Scott
    /// when the IQR is 0.
    #[default]
    FreedmanDiaconis,
    /// Scott: (24√π / n)^(1/3)·σ ≈ 3.49·σ·n^(−1/3) (population σ, as numpy).
    Scott,
    /// Sturges: range / (log₂ n + 1).
    Sturges,
}

/// A bin width chosen from data, with the rule that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinWidthChoice {
    /// Width in target units.
    pub width: f64,
    /// The rule that gave the width (after fall-backs).
    pub rule: BinRule,
    /// Whether the width was rounded up to a whole number because every target is an integer.
    pub integer_targets: bool,
}

/// Chooses a bin width for `y` by `rule`. When the rule gives 0 (IQR or σ of 0) it falls back
/// to Scott, then Sturges; when every target is a whole number the width is rounded to the
/// nearest whole number, at least 1, so no bin falls between two integers. Errors on fewer than
/// two values, non-finite values or a constant sample.
pub fn bin_width(y: &[f64], rule: BinRule) -> Result<BinWidthChoice> {
    let s = sorted_finite(y)?;
    let n = s.len();
    if n < 2 || s[0] == s[n - 1] {
        return Err(CoreError::Empty(
            "choosing a bin width needs at least two different target values",
        ));
    }
    let nf = n as f64;
    let quantile = |q: f64| {
        let pos = (nf - 1.0) * q;
        let (f, c) = (pos.floor() as usize, pos.ceil() as usize);
        s[f] + (pos - f as f64) * (s[c] - s[f])
    };
    let scott = || {
        let mean = s.iter().sum::<f64>() / nf;
        let sd = (s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / nf).sqrt();
        (24.0 * std::f64::consts::PI.sqrt() / nf).cbrt() * sd
    };
    let sturges = || (s[n - 1] - s[0]) / (nf.log2() + 1.0);
    let (mut width, mut used) = match rule {
        BinRule::FreedmanDiaconis => (
            2.0 * (quantile(0.75) - quantile(0.25)) / nf.cbrt(),
            BinRule::FreedmanDiaconis,
        ),
        BinRule::Scott => (scott(), BinRule::Scott),
        BinRule::Sturges => (sturges(), BinRule::Sturges),
    };
    if width <= 0.0 && used == BinRule::FreedmanDiaconis {
        (width, used) = (scott(), BinRule::Scott);
    }
    if width <= 0.0 {
        (width, used) = (sturges(), BinRule::Sturges);
    }
    let integer_targets = s.iter().all(|v| v.fract() == 0.0);
    if integer_targets {
        width = width.round().max(1.0);
    }
    Ok(BinWidthChoice {
        width,
        rule: used,
        integer_targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_medcouple(y: &[f64]) -> f64 {
        let mut s = y.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let m = if n % 2 == 1 {
            s[n / 2]
        } else {
            0.5 * (s[n / 2 - 1] + s[n / 2])
        };
        let up: Vec<f64> = s.iter().copied().filter(|&v| v > m).collect();
        let lo: Vec<f64> = s.iter().copied().filter(|&v| v < m).collect();
        let k = n - up.len() - lo.len();
        let mut h = Vec::new();
        for &a in &up {
            for &b in &lo {
                h.push(((a - m) - (m - b)) / (a - b));
            }
            h.extend(std::iter::repeat_n(1.0, k));
        }
        for i in 0..k {
            h.extend(std::iter::repeat_n(-1.0, lo.len()));
            for j in 0..k {
                h.push(match (k - 1).cmp(&(i + j)) {
                    std::cmp::Ordering::Less => -1.0,
                    std::cmp::Ordering::Equal => 0.0,
                    std::cmp::Ordering::Greater => 1.0,
                });
            }
        }
        h.sort_by(f64::total_cmp);
        let c = h.len();
        if c % 2 == 1 {
            h[c / 2]
        } else {
            0.5 * (h[c / 2 - 1] + h[c / 2])
        }
    }

    #[test]
    fn medcouple_matches_the_pairwise_definition() {
        let mut rng = crate::SplitMix64::new(3);
        for n in [3usize, 4, 5, 10, 31, 64, 101] {
            for round in [false, true] {
                let y: Vec<f64> = (0..n)
                    .map(|_| {
                        let v = (rng.normal() * 0.8).exp() * 10.0;
                        if round { v.round() } else { v }
                    })
                    .collect();
                let fast = medcouple(&y).unwrap();
                let slow = brute_medcouple(&y);
                assert!(
                    (fast - slow).abs() < 1e-12,
                    "n {n} round {round}: {fast} vs {slow}"
                );
            }
        }
        // Symmetric sample: 0; right skew: positive; left skew: negative.
        assert!(medcouple(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap().abs() < 1e-12);
        assert!(medcouple(&[1.0, 2.0, 3.0, 10.0, 50.0, 3.5]).unwrap() > 0.0);
        assert!(medcouple(&[-1.0, -2.0, -3.0, -10.0, -50.0, -3.5]).unwrap() < 0.0);
    }

    #[test]
    fn sera_of_constant_relevance_is_the_sum_of_squared_errors() {
        // φ ≡ 1: SER_t is the whole SSE for every t, so the area is the SSE.
        let r = Relevance::from_control_points(&[ControlPoint {
            value: 0.0,
            relevance: 1.0,
            slope: 0.0,
        }])
        .unwrap();
        let y = [1.0, 2.0, 3.0];
        let p = [1.5, 2.0, 1.0];
        let s = sera(&p, &y, &r, 0.001).unwrap();
        assert!((s - (0.25 + 4.0)).abs() < 1e-12);
        // φ linear from 0 to 1 on [0, 10]: SERA = Σ e_i² φ(y_i), up to the grid.
        let lin = Relevance::from_control_points(&[
            ControlPoint {
                value: 0.0,
                relevance: 0.0,
                slope: 0.1,
            },
            ControlPoint {
                value: 10.0,
                relevance: 1.0,
                slope: 0.1,
            },
        ])
        .unwrap();
        for v in [0.0, 2.5, 5.0, 10.0] {
            assert!((lin.phi(v) - v / 10.0).abs() < 1e-15);
        }
        let y = [2.5, 5.0, 10.0];
        let p = [3.5, 3.0, 7.0];
        // The trapezoid adds half a step for each sample whose φ lies on the grid below 1.
        let exact = 1.0 * (0.25 + 0.0005) + 4.0 * (0.5 + 0.0005) + 9.0 * 1.0;
        let s = sera(&p, &y, &lin, 0.001).unwrap();
        assert!((s - exact).abs() < 1e-9, "{s} vs {exact}");
    }

    #[test]
    fn sera_adds_up_over_disjoint_parts_and_refuses_bad_relevance() {
        // Large enough for the threaded path: SERA of the whole equals the sum over halves.
        let mut g = crate::SplitMix64::new(9);
        let n = 2_500_000;
        let y: Vec<f64> = (0..n).map(|_| (0.6 * g.normal()).exp() * 10.0).collect();
        let p: Vec<f64> = y.iter().map(|v| v + g.normal()).collect();
        let r = Relevance::from_targets(&y[..10_000], &RelevanceConfig::default()).unwrap();
        let whole = sera(&p, &y, &r, 0.001).unwrap();
        let h = n / 3;
        let parts =
            sera(&p[..h], &y[..h], &r, 0.001).unwrap() + sera(&p[h..], &y[h..], &r, 0.001).unwrap();
        assert!((whole - parts).abs() <= 1e-9 * whole, "{whole} vs {parts}");
        let e = sera_with_phi(&[1.0], &[2.0], &[1.5], 0.001).unwrap_err();
        assert!(e.to_string().contains("relevance = 1.5"), "{e}");
        assert!(sera_with_phi(&[1.0], &[2.0], &[0.5], 0.0).is_err());
    }

    #[test]
    fn bin_width_rules() {
        let y: Vec<f64> = (0..1000).map(|i| i as f64 / 10.0 + 0.05).collect();
        let fd = bin_width(&y, BinRule::FreedmanDiaconis).unwrap();
        // IQR of a uniform grid 0.05..99.95 is 49.95; n^(1/3) = 10.
        assert!((fd.width - 2.0 * 49.95 / 10.0).abs() < 1e-9);
        let st = bin_width(&y, BinRule::Sturges).unwrap();
        assert!((st.width - 99.9 / (1000f64.log2() + 1.0)).abs() < 1e-12);
        let ints = [3.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0, 8.0];
        let c = bin_width(&ints, BinRule::FreedmanDiaconis).unwrap();
        assert!(c.integer_targets && c.width >= 1.0 && c.width.fract() == 0.0);
        assert!(bin_width(&[2.0, 2.0], BinRule::Scott).is_err());
    }
}
