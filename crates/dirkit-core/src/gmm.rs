//! One-dimensional Gaussian mixture fitted by EM to the training labels: the label prior of
//! Balanced MSE's GAI variant (Ren et al. 2022; methods.md §6), which needs `(π_k, μ_k, v_k)`.
//!
//! The fit works on the distinct label values with their multiplicities, so integer targets such
//! as ages cost O(U·k) per EM iteration in the U distinct values, and the result depends only on
//! the multiset of labels, not on their order. It proceeds in three steps:
//!
//! 1. **Seeding**: greedy k-means++ (Arthur & Vassilvitskii 2007, with the `2 + ⌊log₂ k⌋` local
//!    trials of scikit-learn's variant) picks k distinct labels with [`SplitMix64`], then Lloyd's
//!    k-means refines them; the hard clusters give the initial weights, means and variances.
//! 2. **EM** in f64 with log-sum-exp responsibilities until the mean log-likelihood per label
//!    changes by less than [`GmmConfig::tol`] or [`GmmConfig::max_iter`] iterations have run.
//! 3. **Restarts**: [`GmmConfig::n_init`] seedings from one random stream; the highest final
//!    log-likelihood wins (the first on ties).
//!
//! Rules at the edges:
//! - **Variance floor**: every variance is `Σ r (y - μ)² / N_k + reg_var · Var(labels)`, with
//!   `Var` the population variance of the training labels, so no component collapses onto one
//!   label value (scikit-learn's `reg_covar`, but relative, hence independent of label units).
//! - **k larger than the number U of distinct labels** is clamped to U: more components than
//!   values cannot be identified, and each value then gets its own component.
//! - **A component that loses its mass** (total responsibility below [`DEAD_MASS`] labels, or an
//!   empty k-means cluster) is re-seeded, never dropped, so the output always has `min(k, U)`
//!   components: its mean moves to the worst-explained label value (lowest mixture density, or
//!   farthest from its k-means centre at initialisation), its variance to
//!   `Var(labels) / k² + floor`, its weight to one label's share `1/N` before renormalisation.
//!   EM never lowers the log-likelihood, but a re-seed may; convergence is not tested on the
//!   iteration that follows one.
//!
//! Fits are bit-identical for the same labels, config and build; `exp` and `ln` come from the
//! platform's libm, so other platforms may differ in the last bits.

use serde::{Deserialize, Serialize};

use crate::binning::finite_min_max;
use crate::error::{CoreError, Result, invalid};
use crate::rng::SplitMix64;

/// A component whose total responsibility falls below this many labels counts as dead.
pub const DEAD_MASS: f64 = 1e-9;

/// Most Lloyd iterations spent refining the k-means++ seeds before EM starts.
const LLOYD_MAX_ITER: usize = 100;

/// Hyper-parameters of [`Gmm1d::fit`]; defaults k = 8, 300 EM iterations, tol 1e-8, seed 0,
/// one initialisation, variance floor 1e-6 of the label variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GmmConfig {
    /// Number of components (>= 1); clamped to the number of distinct labels.
    pub k: usize,
    /// Most EM iterations per initialisation (>= 1).
    pub max_iter: usize,
    /// Convergence threshold (> 0) on the change of the mean log-likelihood per label, in nats.
    pub tol: f64,
    /// Seed of the [`SplitMix64`] stream that drives the k-means++ seeding.
    pub seed: u64,
    /// Number of initialisations (>= 1); the highest final log-likelihood wins.
    pub n_init: usize,
    /// Variance floor (> 0) relative to the population variance of the labels: added to every
    /// component variance, in units of `Var(labels)`.
    pub reg_var: f64,
}

impl Default for GmmConfig {
    fn default() -> Self {
        Self {
            k: 8,
            max_iter: 300,
            tol: 1e-8,
            seed: 0,
            n_init: 1,
            reg_var: 1e-6,
        }
    }
}

impl GmmConfig {
    /// Checks k, max_iter and n_init >= 1, and tol, reg_var finite and > 0.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return invalid("k", self.k, "at least 1 component");
        }
        if self.max_iter == 0 {
            return invalid("max_iter", self.max_iter, "at least 1 iteration");
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return invalid("tol", self.tol, "a finite number > 0");
        }
        if self.n_init == 0 {
            return invalid("n_init", self.n_init, "at least 1 initialisation");
        }
        if !(self.reg_var.is_finite() && self.reg_var > 0.0) {
            return invalid("reg_var", self.reg_var, "a finite number > 0");
        }
        Ok(())
    }
}

/// A 1-D Gaussian mixture `p(y) = Σ_k π_k N(y; μ_k, v_k)`, components sorted by mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gmm1d {
    /// Mixing weights `π_k` (> 0, sum 1).
    pub weights: Vec<f64>,
    /// Component means `μ_k`, in label units, ascending.
    pub means: Vec<f64>,
    /// Component variances `v_k` (> 0), in squared label units.
    pub variances: Vec<f64>,
}

/// How the winning initialisation of [`Gmm1d::fit_trace`] converged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmTrace {
    /// Mean log-likelihood per label (nats): entry 0 for the k-means initialisation, entry t
    /// after t EM iterations; the last entry is that of the returned mixture.
    pub log_likelihood: Vec<f64>,
    /// Whether the change fell below `tol` before `max_iter` iterations.
    pub converged: bool,
    /// Components re-seeded after losing their mass (initialisation included).
    pub reseeds: usize,
    /// Final mean log-likelihood of every initialisation, in order.
    pub per_init: Vec<f64>,
}

/// Training labels as sorted distinct values with multiplicities.
struct Data {
    values: Vec<f64>,
    counts: Vec<f64>,
    n: f64,
    var: f64,
}

impl Data {
    fn new(labels: &[f64]) -> Result<Self> {
        finite_min_max(labels)?;
        let mut sorted = labels.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut values: Vec<f64> = Vec::new();
        let mut counts: Vec<f64> = Vec::new();
        for y in sorted {
            match (values.last(), counts.last_mut()) {
                (Some(&v), Some(c)) if v == y => *c += 1.0,
                _ => {
                    values.push(y);
                    counts.push(1.0);
                }
            }
        }
        if values.len() < 2 {
            return Err(CoreError::Empty(
                "a Gaussian mixture needs at least two distinct labels",
            ));
        }
        let n = labels.len() as f64;
        let mean = dot(&counts, &values) / n;
        let var = values
            .iter()
            .zip(&counts)
            .map(|(y, c)| c * (y - mean) * (y - mean))
            .sum::<f64>()
            / n;
        if !(var.is_finite() && var > 0.0) {
            return invalid("label variance", var, "finite and > 0 in f64");
        }
        Ok(Self {
            values,
            counts,
            n,
            var,
        })
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Gmm1d {
    /// Fits `min(k, distinct labels)` components to finite training labels (at least two
    /// distinct values); see the module documentation for the algorithm and its edge rules.
    pub fn fit(labels: &[f64], cfg: &GmmConfig) -> Result<Self> {
        Ok(Self::fit_trace(labels, cfg)?.0)
    }

    /// [`fit`](Self::fit), also returning the log-likelihood after every EM iteration of the
    /// winning initialisation.
    pub fn fit_trace(labels: &[f64], cfg: &GmmConfig) -> Result<(Self, EmTrace)> {
        cfg.validate()?;
        let data = Data::new(labels)?;
        let k = cfg.k.min(data.values.len());
        let mut rng = SplitMix64::new(cfg.seed);
        let mut best: Option<(Self, EmTrace)> = None;
        let mut per_init = Vec::with_capacity(cfg.n_init);
        for _ in 0..cfg.n_init {
            let (model, trace) = em(&data, k, cfg, &mut rng);
            let ll = trace.log_likelihood.last().copied().unwrap_or(f64::NAN);
            per_init.push(ll);
            let better = match &best {
                None => true,
                Some((_, t)) => ll > t.log_likelihood.last().copied().unwrap_or(f64::NAN),
            };
            if better {
                best = Some((model, trace));
            }
        }
        let (model, mut trace) = best.ok_or(CoreError::Empty("no initialisation ran"))?;
        trace.per_init = per_init;
        Ok((model.sorted(), trace))
    }

    /// Number of components.
    pub fn k(&self) -> usize {
        self.means.len()
    }

    /// Natural log of the mixture density at `y` (per label unit), by log-sum-exp; NaN for a
    /// NaN `y`.
    pub fn log_density(&self, y: f64) -> f64 {
        let terms = (0..self.k()).map(|j| {
            let v = self.variances[j];
            let d = y - self.means[j];
            self.weights[j].ln() - 0.5 * (std::f64::consts::TAU * v).ln() - 0.5 * d * d / v
        });
        log_sum_exp(terms)
    }

    /// Mean of [`log_density`](Self::log_density) over `labels` (nats per label); NaN when
    /// `labels` is empty.
    pub fn mean_log_likelihood(&self, labels: &[f64]) -> f64 {
        labels.iter().map(|&y| self.log_density(y)).sum::<f64>() / labels.len() as f64
    }

    /// Checks a mixture built by hand or deserialised: equal non-zero lengths, finite means,
    /// positive finite weights summing to 1 (within 1e-9) and positive finite variances.
    pub fn validate(&self) -> Result<()> {
        let k = self.weights.len();
        if k == 0 {
            return Err(CoreError::Empty("a Gaussian mixture needs a component"));
        }
        for (what, len) in [
            ("weights vs means", self.means.len()),
            ("weights vs variances", self.variances.len()),
        ] {
            if len != k {
                return Err(CoreError::LengthMismatch {
                    what,
                    left: k,
                    right: len,
                });
            }
        }
        if let Some(&w) = self.weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return invalid("weight", w, "a finite number > 0");
        }
        let total: f64 = self.weights.iter().sum();
        if (total - 1.0).abs() > 1e-9 {
            return invalid("sum of weights", total, "1 (within 1e-9)");
        }
        if let Some(&m) = self.means.iter().find(|m| !m.is_finite()) {
            return invalid("mean", m, "a finite number");
        }
        if let Some(&v) = self
            .variances
            .iter()
            .find(|v| !(v.is_finite() && **v > 0.0))
        {
            return invalid("variance", v, "a finite number > 0");
        }
        Ok(())
    }

    /// The same mixture with components in ascending order of mean (ties: variance, weight).
    fn sorted(self) -> Self {
        let mut order: Vec<usize> = (0..self.k()).collect();
        order.sort_by(|&a, &b| {
            self.means[a]
                .total_cmp(&self.means[b])
                .then(self.variances[a].total_cmp(&self.variances[b]))
                .then(self.weights[a].total_cmp(&self.weights[b]))
        });
        Self {
            weights: order.iter().map(|&j| self.weights[j]).collect(),
            means: order.iter().map(|&j| self.means[j]).collect(),
            variances: order.iter().map(|&j| self.variances[j]).collect(),
        }
    }
}

/// `ln Σ exp(a_i)` without overflow; -∞ for no terms or all -∞.
fn log_sum_exp(terms: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = terms.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + terms.map(|a| (a - max).exp()).sum::<f64>().ln()
}

/// One initialisation: seeding, Lloyd refinement, then EM.
fn em(data: &Data, k: usize, cfg: &GmmConfig, rng: &mut SplitMix64) -> (Gmm1d, EmTrace) {
    let u = data.values.len();
    let floor = cfg.reg_var * data.var;
    let reseed_var = data.var / (k * k) as f64 + floor;
    let mut resp = vec![0.0; u * k];
    // Higher is worse explained: distance² to the own centre at initialisation, -ln p(y) in EM.
    let mut badness = vec![0.0; u];

    let centres = lloyd(data, seed_centres(data, k, rng));
    for (i, &y) in data.values.iter().enumerate() {
        let (j, d2) = nearest(&centres, y);
        resp[i * k + j] = 1.0;
        badness[i] = d2;
    }
    let mut model = Gmm1d {
        weights: vec![0.0; k],
        means: centres,
        variances: vec![0.0; k],
    };
    let mut reseeds = m_step(&mut model, data, &resp, &badness, floor, reseed_var);

    let mut trace: Vec<f64> = Vec::with_capacity(cfg.max_iter + 1);
    let mut converged = false;
    let mut just_reseeded = reseeds > 0;
    loop {
        let ll = e_step(&model, data, &mut resp, &mut badness);
        if let Some(&prev) = trace.last()
            && !just_reseeded
            && (ll - prev).abs() < cfg.tol
        {
            converged = true;
        }
        trace.push(ll);
        if converged || trace.len() > cfg.max_iter {
            break;
        }
        let r = m_step(&mut model, data, &resp, &badness, floor, reseed_var);
        reseeds += r;
        just_reseeded = r > 0;
    }
    let trace = EmTrace {
        log_likelihood: trace,
        converged,
        reseeds,
        per_init: Vec::new(),
    };
    (model, trace)
}

/// Index of the centre nearest `y` (the first on ties) and the squared distance to it.
fn nearest(centres: &[f64], y: f64) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, &c) in centres.iter().enumerate() {
        let d2 = (y - c) * (y - c);
        if d2 < best.1 {
            best = (j, d2);
        }
    }
    best
}

/// Index drawn with probability proportional to `weights` (non-negative); the largest weight
/// if rounding walks past the end or every weight is 0.
fn draw_weighted(weights: &[f64], rng: &mut SplitMix64) -> usize {
    let total: f64 = weights.iter().sum();
    let target = rng.uniform() * total;
    let mut cum = 0.0;
    for (i, &w) in weights.iter().enumerate() {
        cum += w;
        if cum > target {
            return i;
        }
    }
    (0..weights.len()).fold(0, |arg, i| if weights[i] > weights[arg] { i } else { arg })
}

/// Greedy k-means++: the first centre is a label drawn uniformly, each next one the best (lowest
/// total squared distance) of `2 + ⌊log₂ k⌋` labels drawn with probability ∝ squared distance.
fn seed_centres(data: &Data, k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    let trials = 2 + k.ilog2() as usize;
    let first = data.values[draw_weighted(&data.counts, rng)];
    let mut centres = vec![first];
    let mut d2: Vec<f64> = data
        .values
        .iter()
        .map(|y| (y - first) * (y - first))
        .collect();
    let mut mass = vec![0.0; d2.len()];
    while centres.len() < k {
        for (m, (c, d)) in mass.iter_mut().zip(data.counts.iter().zip(&d2)) {
            *m = c * d;
        }
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..trials {
            let cand = data.values[draw_weighted(&mass, rng)];
            let potential: f64 = data
                .values
                .iter()
                .zip(data.counts.iter().zip(&d2))
                .map(|(y, (c, d))| c * d.min((y - cand) * (y - cand)))
                .sum();
            if best.is_none_or(|(p, _)| potential < p) {
                best = Some((potential, cand));
            }
        }
        let cand = best.map_or(first, |(_, c)| c);
        for (d, y) in d2.iter_mut().zip(&data.values) {
            *d = d.min((y - cand) * (y - cand));
        }
        centres.push(cand);
    }
    centres
}

/// Lloyd's k-means on the weighted distinct values until the assignment stops changing; a centre
/// whose cluster empties stays where it is (the M-step then re-seeds its component).
fn lloyd(data: &Data, mut centres: Vec<f64>) -> Vec<f64> {
    let k = centres.len();
    let mut assign = vec![usize::MAX; data.values.len()];
    for _ in 0..LLOYD_MAX_ITER {
        let mut changed = false;
        for (a, &y) in assign.iter_mut().zip(&data.values) {
            let j = nearest(&centres, y).0;
            changed |= *a != j;
            *a = j;
        }
        if !changed {
            break;
        }
        let mut sum = vec![0.0; k];
        let mut mass = vec![0.0; k];
        for ((&j, &y), &c) in assign.iter().zip(&data.values).zip(&data.counts) {
            sum[j] += c * y;
            mass[j] += c;
        }
        for j in 0..k {
            if mass[j] > 0.0 {
                centres[j] = sum[j] / mass[j];
            }
        }
    }
    centres
}

/// Responsibilities `r_uk` (row-major U × k) and `-ln p(y_u)` per distinct value; returns the
/// mean log-likelihood per label.
fn e_step(model: &Gmm1d, data: &Data, resp: &mut [f64], badness: &mut [f64]) -> f64 {
    let k = model.k();
    let consts: Vec<f64> = (0..k)
        .map(|j| model.weights[j].ln() - 0.5 * (std::f64::consts::TAU * model.variances[j]).ln())
        .collect();
    let half_inv: Vec<f64> = model.variances.iter().map(|v| 0.5 / v).collect();
    let mut total = 0.0;
    for (i, &y) in data.values.iter().enumerate() {
        let row = &mut resp[i * k..(i + 1) * k];
        let mut max = f64::NEG_INFINITY;
        for j in 0..k {
            let d = y - model.means[j];
            row[j] = consts[j] - d * d * half_inv[j];
            max = max.max(row[j]);
        }
        let lse = max + row.iter().map(|a| (a - max).exp()).sum::<f64>().ln();
        for a in row.iter_mut() {
            *a = (*a - lse).exp();
        }
        badness[i] = -lse;
        total += data.counts[i] * lse;
    }
    total / data.n
}

/// Maximisation step from responsibilities, re-seeding dead components; returns how many were
/// re-seeded.
fn m_step(
    model: &mut Gmm1d,
    data: &Data,
    resp: &[f64],
    badness: &[f64],
    floor: f64,
    reseed_var: f64,
) -> usize {
    let k = model.k();
    let mut dead = Vec::new();
    for j in 0..k {
        let col = || resp.iter().skip(j).step_by(k).zip(&data.counts);
        let nk: f64 = col().map(|(r, c)| r * c).sum();
        if nk.is_nan() || nk < DEAD_MASS {
            dead.push(j);
            continue;
        }
        let mean = col()
            .zip(&data.values)
            .map(|((r, c), y)| r * c * y)
            .sum::<f64>()
            / nk;
        let var = col()
            .zip(&data.values)
            .map(|((r, c), y)| r * c * (y - mean) * (y - mean))
            .sum::<f64>()
            / nk;
        model.weights[j] = nk / data.n;
        model.means[j] = mean;
        model.variances[j] = var + floor;
    }
    if !dead.is_empty() {
        let mut worst: Vec<usize> = (0..data.values.len()).collect();
        worst.sort_by(|&a, &b| badness[b].total_cmp(&badness[a]).then(a.cmp(&b)));
        for (&j, &i) in dead.iter().zip(&worst) {
            model.weights[j] = 1.0 / data.n;
            model.means[j] = data.values[i];
            model.variances[j] = reseed_var;
        }
    }
    let total: f64 = model.weights.iter().sum();
    for w in &mut model.weights {
        *w /= total;
    }
    dead.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_without_mass_is_reseeded_at_the_worst_explained_value() {
        let data = Data::new(&[0.0, 0.0, 1.0, 2.0, 10.0]).expect("data");
        let (k, u) = (2, data.values.len());
        // Component 1 holds nothing; value 10 (index 3) is the worst explained.
        let resp: Vec<f64> = (0..u * k)
            .map(|i| if i % k == 0 { 1.0 } else { 0.0 })
            .collect();
        let badness = [1.0, 2.0, 3.0, 9.0];
        let mut model = Gmm1d {
            weights: vec![0.5; k],
            means: vec![0.0; k],
            variances: vec![1.0; k],
        };
        let (floor, reseed_var) = (1e-3, 0.7);
        assert_eq!(
            m_step(&mut model, &data, &resp, &badness, floor, reseed_var),
            1
        );
        assert_eq!(model.means[1], 10.0);
        assert_eq!(model.variances[1], reseed_var);
        // The live component takes all five labels, the re-seeded one a single label's share.
        assert!((model.weights[1] - 1.0 / 6.0).abs() < 1e-15);
        assert!((model.means[0] - 13.0 / 5.0).abs() < 1e-15);
        model.validate().expect("a valid mixture");
    }
}
