//! DenseWeight (Steininger et al. 2021): weights that fall with the label's kernel density.
//!
//! `w*(y) = max(1 - α·p'(y), ε)` with `p'` the Gaussian KDE of the training labels min-max
//! scaled over the training labels, then divided by its mean so weights average 1.
//!
//! The KDE has no FFT grid: labels are sorted and de-duplicated; up to 2048 distinct values
//! every term within 40 bandwidths is summed (further terms underflow to 0 in f64), so
//! integer-valued targets such as ages are exact. Beyond, boxes of labels are summed by Hermite
//! expansions (the fast Gauss transform) with an error below 1e-16 relative at every training
//! label, so a million continuous labels take about a second instead of hours.
//! The PyPI package instead evaluates an FFT KDE on a 4096-point grid and min-max scales over
//! that grid; the two agree at α = 1 only (see methods.md §3).

use serde::{Deserialize, Serialize};

use crate::binning::finite_min_max;
use crate::error::{CoreError, Result, invalid};

/// KDE bandwidth choice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bandwidth {
    /// Silverman's rule `1.06·std·N^{-1/5}` with the population std (ddof 0), as the package.
    Silverman,
    /// A fixed bandwidth in label units (> 0).
    Fixed(f64),
}

/// DenseWeight hyper-parameters; defaults α = 1, ε = 1e-6, Silverman bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DenseWeightConfig {
    /// Strength α >= 0: 0 gives uniform weights; larger values push dense regions down.
    pub alpha: f64,
    /// Floor ε > 0 on the unnormalised weight, so no sample gets weight 0.
    pub eps: f64,
    /// KDE bandwidth.
    pub bandwidth: Bandwidth,
}

impl Default for DenseWeightConfig {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            eps: 1e-6,
            bandwidth: Bandwidth::Silverman,
        }
    }
}

impl DenseWeightConfig {
    /// Checks α >= 0, ε > 0 and a positive fixed bandwidth (all finite).
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return invalid("alpha", self.alpha, "a finite number >= 0");
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return invalid("eps", self.eps, "a finite number > 0");
        }
        if let Bandwidth::Fixed(h) = self.bandwidth
            && !(h.is_finite() && h > 0.0)
        {
            return invalid("bandwidth", h, "a finite number > 0");
        }
        Ok(())
    }
}

/// A fitted DenseWeight model: evaluates the weight of any label, training or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseWeight {
    /// The configuration it was fitted with.
    pub config: DenseWeightConfig,
    /// The bandwidth used, in label units.
    pub bandwidth: f64,
    /// Smallest KDE value over the training labels.
    pub density_min: f64,
    /// Largest KDE value over the training labels.
    pub density_max: f64,
    /// Mean of `w*` over the training labels (the normaliser).
    pub mean_w_star: f64,
    values: Vec<f64>,
    multiplicity: Vec<u64>,
    /// KDE at each distinct training label, so training weights are a lookup.
    value_density: Vec<f64>,
    n: u64,
    sum: KernelSum,
}

/// Terms beyond this many bandwidths are exactly 0 in f64 (`exp(-800) == 0`).
const CUTOFF: f64 = 40.0;

/// Up to this many distinct training labels the kernel sum is evaluated term by term.
const DIRECT_MAX_DISTINCT: usize = 2048;

/// Distinct values per thread below which the density pass stays on the calling thread.
const VALUES_PER_THREAD: usize = 8192;

/// `Σ_k m_k exp(-(y - v_k)² / 2h²)` over the distinct training labels `v_k` with multiplicities
/// `m_k`: term by term for small inputs, by Hermite expansions of boxes of labels otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum KernelSum {
    /// Every label within [`CUTOFF`] bandwidths, summed exactly.
    Direct,
    /// The one-dimensional fast Gauss transform (Greengard & Strain 1991, far-field part).
    Hermite(HermiteBoxes),
}

/// Labels grouped in boxes of width `σ = √2·h`. A box with more labels than expansion terms
/// keeps the moments `A_n = Σ m (s^n / n!)`, `s = (v - c)/σ` its offset from the box centre `c`
/// (|s| <= 1/2), so that `Σ m exp(-((y - v)/σ)²) = Σ_n A_n h_n(t)` with `t = (y - c)/σ` and
/// `h_n(t) = H_n(t) e^{-t²}` the Hermite functions. Smaller boxes are summed term by term.
///
/// Error per unit of label mass, by Cramér's inequality `|h_n(t)| <= 1.09·2^{n/2}·√n!·e^{-t²/2}`:
/// at most `1.09·(1/√2)^p / √p! / (1 - 1/√2)` for `p` terms. `p` is the smallest giving
/// `N·bound <= 1e-17`, and boxes further than `D` (in σ) with `D² = ln N + 40` are skipped, so
/// the absolute error of the sum is below `1e-17 + e^{-40}`: below 1e-16 relative at every
/// training label, whose own term is at least 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HermiteBoxes {
    /// Left edge of box 0 (the smallest label).
    origin: f64,
    /// Box width σ = √2·h.
    width: f64,
    /// Expansion terms p.
    terms: usize,
    /// Largest distance, in box widths, from a box's nearest edge that still contributes.
    reach: f64,
    /// Index of each non-empty box, increasing.
    index: Vec<i64>,
    /// Range of each box's labels in the distinct values.
    span: Vec<(usize, usize)>,
    /// Offset of each box's moments in `moments`; `None` for a box summed term by term.
    offset: Vec<Option<usize>>,
    moments: Vec<f64>,
}

impl HermiteBoxes {
    /// Groups the sorted distinct values; `None` when the label range spans more boxes than an
    /// `i64` index can count exactly.
    fn build(values: &[f64], multiplicity: &[u64], h: f64, n: f64) -> Option<Self> {
        let width = std::f64::consts::SQRT_2 * h;
        let origin = *values.first()?;
        let last = *values.last()?;
        let boxes_spanned = (last - origin) / width;
        if boxes_spanned.is_nan() || boxes_spanned >= 2f64.powi(52) {
            return None;
        }
        // Smallest p with 1.09·(1/√2)^p/√p!/(1 - 1/√2)·N <= 1e-17, in logs.
        let ln_target =
            (1e-17f64).ln() - n.ln() - (1.09 / (1.0 - std::f64::consts::FRAC_1_SQRT_2)).ln();
        let mut terms = 1usize;
        let mut ln_bound = -0.5 * std::f64::consts::LN_2; // p = 1: (1/√2)^1 / √1!
        while ln_bound > ln_target && terms < 64 {
            terms += 1;
            ln_bound += -0.5 * std::f64::consts::LN_2 - 0.5 * (terms as f64).ln();
        }
        let reach = (n.ln() + 40.0).sqrt();
        let mut boxes = Self {
            origin,
            width,
            terms,
            reach,
            index: Vec::new(),
            span: Vec::new(),
            offset: Vec::new(),
            moments: Vec::new(),
        };
        let mut start = 0;
        while start < values.len() {
            let j = boxes.box_of(values[start]);
            let mut end = start + 1;
            while end < values.len() && boxes.box_of(values[end]) == j {
                end += 1;
            }
            boxes.index.push(j);
            boxes.span.push((start, end));
            if end - start > terms {
                let centre = boxes.centre(j);
                boxes.offset.push(Some(boxes.moments.len()));
                let base = boxes.moments.len();
                boxes.moments.resize(base + terms, 0.0);
                for k in start..end {
                    let s = (values[k] - centre) / width;
                    let mut term = multiplicity[k] as f64;
                    for a in &mut boxes.moments[base..base + terms] {
                        *a += term;
                        term *= s;
                    }
                }
                // A_n = Σ m s^n / n!: divide by n! once per box.
                let mut fact = 1.0;
                for (i, a) in boxes.moments[base..base + terms].iter_mut().enumerate() {
                    if i > 0 {
                        fact *= i as f64;
                    }
                    *a /= fact;
                }
            } else {
                boxes.offset.push(None);
            }
            start = end;
        }
        Some(boxes)
    }

    fn box_of(&self, y: f64) -> i64 {
        ((y - self.origin) / self.width).floor() as i64
    }

    fn centre(&self, j: i64) -> f64 {
        self.origin + (j as f64 + 0.5) * self.width
    }

    /// The kernel sum at `y` (label units).
    fn sum(&self, y: f64, values: &[f64], multiplicity: &[u64]) -> f64 {
        let t_all = (y - self.origin) / self.width;
        if !t_all.is_finite() {
            return 0.0;
        }
        let lo_box = (t_all - self.reach - 1.0).floor();
        let hi_box = (t_all + self.reach + 1.0).ceil();
        let lo = self.index.partition_point(|&j| (j as f64) < lo_box);
        let hi = self.index.partition_point(|&j| (j as f64) <= hi_box);
        let mut total = 0.0;
        for b in lo..hi {
            let t = (y - self.centre(self.index[b])) / self.width;
            let gap = (t.abs() - 0.5).max(0.0);
            if gap > self.reach {
                continue;
            }
            let (start, end) = self.span[b];
            match self.offset[b] {
                None => {
                    for k in start..end {
                        let z = (y - values[k]) / self.width;
                        total += multiplicity[k] as f64 * (-z * z).exp();
                    }
                }
                Some(at) => {
                    let a = &self.moments[at..at + self.terms];
                    let mut h_prev = (-t * t).exp();
                    let mut h = 2.0 * t * h_prev;
                    let mut s = a[0] * h_prev;
                    if self.terms > 1 {
                        s += a[1] * h;
                    }
                    for (n, &an) in a.iter().enumerate().skip(2) {
                        let next = 2.0 * t * h - 2.0 * (n - 1) as f64 * h_prev;
                        h_prev = h;
                        h = next;
                        s += an * h;
                    }
                    total += s;
                }
            }
        }
        total
    }
}

impl DenseWeight {
    /// Fits the KDE on the training labels (finite, at least two distinct values when the
    /// bandwidth is Silverman's).
    pub fn fit(labels: &[f64], config: DenseWeightConfig) -> Result<Self> {
        config.validate()?;
        finite_min_max(labels)?;
        let n = labels.len() as f64;
        let bandwidth = match config.bandwidth {
            Bandwidth::Fixed(h) => h,
            Bandwidth::Silverman => {
                let mean = labels.iter().sum::<f64>() / n;
                let var = labels.iter().map(|y| (y - mean) * (y - mean)).sum::<f64>() / n;
                let h = 1.06 * var.sqrt() * n.powf(-0.2);
                if h <= 0.0 {
                    return Err(CoreError::Empty(
                        "DenseWeight needs at least two distinct labels for Silverman's bandwidth",
                    ));
                }
                h
            }
        };
        let mut sorted = labels.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut values = Vec::new();
        let mut multiplicity: Vec<u64> = Vec::new();
        for y in sorted {
            if values.last() == Some(&y) {
                *multiplicity.last_mut().expect("parallel vectors") += 1;
            } else {
                values.push(y);
                multiplicity.push(1);
            }
        }
        let sum = if values.len() > DIRECT_MAX_DISTINCT {
            HermiteBoxes::build(&values, &multiplicity, bandwidth, n)
                .map_or(KernelSum::Direct, KernelSum::Hermite)
        } else {
            KernelSum::Direct
        };
        let mut dw = Self {
            config,
            bandwidth,
            density_min: 0.0,
            density_max: 0.0,
            mean_w_star: 1.0,
            values,
            multiplicity,
            value_density: Vec::new(),
            n: labels.len() as u64,
            sum,
        };
        let dens = dw.map_parallel(&dw.values, |dw, y| dw.evaluate(y));
        dw.density_min = dens.iter().copied().fold(f64::INFINITY, f64::min);
        dw.density_max = dens.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = dens
            .iter()
            .zip(&dw.multiplicity)
            .map(|(&p, &m)| dw.w_star_of_density(p) * m as f64)
            .sum();
        dw.mean_w_star = total / n;
        dw.value_density = dens;
        Ok(dw)
    }

    /// `f` over `items`, split across the cores when there are many.
    fn map_parallel(&self, items: &[f64], f: impl Fn(&Self, f64) -> f64 + Sync) -> Vec<f64> {
        let parts = crate::parallel::parts_of(items.len(), VALUES_PER_THREAD);
        if parts == 1 {
            return items.iter().map(|&y| f(self, y)).collect();
        }
        let chunk = items.len().div_ceil(parts);
        std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(chunk)
                .map(|c| {
                    let f = &f;
                    scope.spawn(move || c.iter().map(|&y| f(self, y)).collect::<Vec<f64>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("density worker panicked"))
                .collect()
        })
    }

    /// The kernel sum at `y`, computed (not looked up).
    fn evaluate(&self, y: f64) -> f64 {
        match &self.sum {
            KernelSum::Direct => self.density_exact(y),
            KernelSum::Hermite(boxes) => {
                boxes.sum(y, &self.values, &self.multiplicity) / self.normaliser()
            }
        }
    }

    /// Gaussian KDE of the training labels at `y`: `1/(N h √2π) Σ_i exp(-(y - y_i)²/2h²)`.
    /// Exact (every term within 40 bandwidths) up to 2048 distinct training labels; above, by
    /// Hermite expansions with an absolute error below 1e-16 of the largest single term.
    pub fn density(&self, y: f64) -> f64 {
        match self.values.binary_search_by(|v| v.total_cmp(&y)) {
            Ok(k) if k < self.value_density.len() => self.value_density[k],
            _ => self.evaluate(y),
        }
    }

    /// Density min-max scaled over the training labels: 0 at the sparsest training label, 1 at
    /// the densest (0 everywhere if the density is flat). Labels outside the training range may
    /// fall below 0; they are clamped to [0, 1].
    pub fn scaled_density(&self, y: f64) -> f64 {
        let span = self.density_max - self.density_min;
        if span > 0.0 {
            ((self.density(y) - self.density_min) / span).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn w_star_of_density(&self, p: f64) -> f64 {
        let span = self.density_max - self.density_min;
        let scaled = if span > 0.0 {
            ((p - self.density_min) / span).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (1.0 - self.config.alpha * scaled).max(self.config.eps)
    }

    /// Normalised weight of a label: `max(1 - α p'(y), ε) / mean_train(w*)`.
    pub fn weight(&self, y: f64) -> f64 {
        self.w_star_of_density(self.density(y)) / self.mean_w_star
    }

    /// Weights of many labels (their mean is 1 over the training labels).
    pub fn weights(&self, labels: &[f64]) -> Vec<f64> {
        self.map_parallel(labels, |dw, y| dw.weight(y))
    }

    /// Whether the kernel sum uses Hermite expansions (more than 2048 distinct labels).
    pub fn uses_expansions(&self) -> bool {
        matches!(self.sum, KernelSum::Hermite(_))
    }

    /// The KDE at `y` summed term by term over every training label within 40 bandwidths,
    /// whatever the size: the reference that the expansions are tested against. O(U) per call.
    pub fn density_exact(&self, y: f64) -> f64 {
        let h = self.bandwidth;
        let lo = self.values.partition_point(|&v| v < y - CUTOFF * h);
        let hi = self.values.partition_point(|&v| v <= y + CUTOFF * h);
        let s: f64 = (lo..hi)
            .map(|k| {
                let z = (y - self.values[k]) / h;
                self.multiplicity[k] as f64 * (-0.5 * z * z).exp()
            })
            .sum();
        s / self.normaliser()
    }

    /// `N h √2π`, which turns a kernel sum into a density.
    fn normaliser(&self) -> f64 {
        self.n as f64 * self.bandwidth * (2.0 * std::f64::consts::PI).sqrt()
    }
}
