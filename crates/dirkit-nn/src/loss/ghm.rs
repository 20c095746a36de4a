//! GHM-R, the regression half of the gradient harmonizing mechanism (Li, Liu and Wang 2019,
//! "Gradient Harmonized Single-stage Detector", AAAI), methods.md §6.
//!
//! The loss is the authentic smooth L1 `ASL1(d) = sqrt(d² + μ²) - μ` (`d = ŷ - y`, μ = 0.02),
//! whose gradient norm `g = |d| / sqrt(d² + μ²)` lies in `[0, 1)`. Samples are re-weighted by
//! the inverse density of `g` in the batch ([`GradientDensity`], the same weighting as GHM-C),
//! so that the many easy samples and the few outliers do not dominate:
//! `loss = Σ_i w_i · ASL1(d_i) / B`. The weights are computed on the host and carry no gradient,
//! as in the reference implementation (mmdetection `GHMR`).

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::elementwise::pred_target;
use crate::error::invalid;

/// Default `μ` of the authentic smooth L1 (Li et al. 2019; mmdetection `GHMR`).
pub const GHM_MU: f64 = 0.02;
/// Default number of gradient-norm bins (Li et al. 2019).
pub const GHM_BINS: usize = 10;

/// Gradient-density weighting shared by GHM-C and GHM-R: `g ∈ [0, 1]` is binned into `bins`
/// equal intervals (the last edge raised by 1e-6 so that `g = 1` counts), and a sample in a
/// bin holding `count` of the batch's `tot` samples gets `tot / (count · n)`, `n` the number
/// of non-empty bins. With `momentum > 0` the counts are an exponential moving average across
/// calls, `acc = m · acc + (1 - m) · count`, starting from zero as in the reference; the
/// weights then use `acc` in place of `count`. Values outside `[0, 1]` or NaN get weight 0.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientDensity {
    edges: Vec<f64>,
    momentum: f64,
    acc_sum: Vec<f64>,
}

impl GradientDensity {
    /// `bins >= 1` equal intervals on `[0, 1]`, EMA `momentum` in `[0, 1)` (0: counts of the
    /// current batch only).
    pub fn new(bins: usize, momentum: f64) -> Result<Self> {
        if bins == 0 {
            return invalid("ghm bins", bins, "at least 1");
        }
        if !(0.0..1.0).contains(&momentum) {
            return invalid("ghm momentum", momentum, "a number in [0, 1)");
        }
        let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 / bins as f64).collect();
        edges[bins] += 1e-6;
        Ok(Self {
            edges,
            momentum,
            acc_sum: vec![0.0; bins],
        })
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.acc_sum.len()
    }

    /// The EMA momentum (0 = no EMA).
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// The per-bin moving-average counts (all zero while `momentum` is 0 or before the first
    /// call).
    pub fn acc_sum(&self) -> &[f64] {
        &self.acc_sum
    }

    /// Restores moving-average counts saved from [`GradientDensity::acc_sum`] (a checkpoint):
    /// one finite, non-negative value per bin.
    pub fn set_acc_sum(&mut self, acc_sum: &[f64]) -> Result<()> {
        if acc_sum.len() != self.acc_sum.len() {
            return Err(crate::error::NnError::shape(format!(
                "{} saved GHM counts for {} bins",
                acc_sum.len(),
                self.acc_sum.len()
            ))
            .into());
        }
        if let Some(v) = acc_sum.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return invalid("ghm saved count", v, "finite and non-negative");
        }
        self.acc_sum.copy_from_slice(acc_sum);
        Ok(())
    }

    /// Forgets the moving-average counts.
    pub fn reset(&mut self) {
        self.acc_sum.iter_mut().for_each(|a| *a = 0.0);
    }

    /// The bin of `g`: `edges[i] <= g < edges[i + 1]`, by the same comparisons as the
    /// reference (not by `floor(g · bins)`, which can differ by one at an edge).
    fn bin(&self, g: f64) -> Option<usize> {
        let bins = self.bins();
        if !(g >= 0.0 && g < self.edges[bins]) {
            return None;
        }
        let mut i = ((g * bins as f64) as usize).min(bins - 1);
        while i > 0 && g < self.edges[i] {
            i -= 1;
        }
        while i + 1 < bins && g >= self.edges[i + 1] {
            i += 1;
        }
        Some(i)
    }

    /// Weights of the samples with gradient norms `g` (one batch; `tot = g.len()`), updating
    /// the moving-average counts when `momentum > 0`.
    pub fn weights(&mut self, g: &[f64]) -> Vec<f64> {
        let tot = (g.len() as f64).max(1.0);
        let idx: Vec<Option<usize>> = g.iter().map(|&x| self.bin(x)).collect();
        let mut counts = vec![0usize; self.bins()];
        for i in idx.iter().flatten() {
            counts[*i] += 1;
        }
        let mut per_bin = vec![0.0; self.bins()];
        let mut n = 0usize;
        for (b, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            n += 1;
            per_bin[b] = if self.momentum > 0.0 {
                self.acc_sum[b] =
                    self.momentum * self.acc_sum[b] + (1.0 - self.momentum) * c as f64;
                tot / self.acc_sum[b]
            } else {
                tot / c as f64
            };
        }
        let n = n.max(1) as f64;
        idx.iter()
            .map(|i| i.map_or(0.0, |b| per_bin[b] / n))
            .collect()
    }
}

/// GHM-R hyper-parameters. Defaults are those of the reference class (Li et al. 2019,
/// mmdetection `GHMR`): `μ = 0.02`, 10 bins, momentum 0, i.e. no moving average, each batch
/// weighted by its own gradient density. The paper's RetinaNet config sets momentum 0.7 for
/// GHM-R (and 0.75 for GHM-C); with a small regression batch the moving average steadies the
/// weights, at the cost of a first batch weighted `1 / (1 - m)` too high (the average starts
/// from zero, as in the reference).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GhmRConfig {
    /// `μ > 0` of the authentic smooth L1 (default 0.02), in label units.
    pub mu: f64,
    /// Number of gradient-norm bins (default 10).
    pub bins: usize,
    /// EMA momentum of the bin counts in `[0, 1)` (default 0).
    pub momentum: f64,
}

impl Default for GhmRConfig {
    fn default() -> Self {
        Self {
            mu: GHM_MU,
            bins: GHM_BINS,
            momentum: 0.0,
        }
    }
}

impl GhmRConfig {
    /// Checks `μ > 0` finite, `bins >= 1`, `momentum` in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        if !(self.mu.is_finite() && self.mu > 0.0) {
            return invalid("ghm mu", self.mu, "a finite number > 0");
        }
        GradientDensity::new(self.bins, self.momentum).map(|_| ())
    }
}

/// The GHM-R loss with its moving-average state (one instance per training run; each call
/// updates the state when `momentum > 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct GhmR {
    mu: f64,
    density: GradientDensity,
}

impl GhmR {
    /// Validates `config` and starts with empty moving-average counts.
    pub fn new(config: GhmRConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            mu: config.mu,
            density: GradientDensity::new(config.bins, config.momentum)?,
        })
    }

    /// `Σ_i w_i · ASL1(ŷ_i - y_i) / B` for `(B)` or `(B, 1)` predictions and targets; the
    /// weights `w` are detached. Copies the `B` differences to the host to bin them.
    pub fn loss(&mut self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        let (p, t) = pred_target(pred, target)?;
        let b = p.dim(0)?;
        let d = (p - t)?;
        let root = (d.sqr()? + self.mu * self.mu)?.sqrt()?;
        let asl1 = (&root - self.mu)?;
        let g: Vec<f64> = (d.abs()? / root)?
            .detach()
            .to_dtype(DType::F64)?
            .to_vec1()?;
        let w = self.density.weights(&g);
        let w = Tensor::from_vec(w, b, d.device())?.to_dtype(d.dtype())?;
        (asl1 * w)?.sum_all()? / b as f64
    }

    /// `μ` of the authentic smooth L1.
    pub fn mu(&self) -> f64 {
        self.mu
    }

    /// The gradient-density state (bins, momentum, moving-average counts).
    pub fn density(&self) -> &GradientDensity {
        &self.density
    }

    /// Mutable gradient-density state, to restore its counts from a checkpoint.
    pub fn density_mut(&mut self) -> &mut GradientDensity {
        &mut self.density
    }

    /// Forgets the moving-average counts (e.g. between independent runs).
    pub fn reset(&mut self) {
        self.density.reset();
    }
}
