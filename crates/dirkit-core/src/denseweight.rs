//! DenseWeight (Steininger et al. 2021): weights that fall with the label's kernel density.
//!
//! `w*(y) = max(1 - α·p'(y), ε)` with `p'` the Gaussian KDE of the training labels min-max
//! scaled over the training labels, then divided by its mean so weights average 1.
//!
//! The KDE is **exact** (every training label contributes; no FFT grid): labels are sorted and
//! de-duplicated, and terms further than 40 bandwidths away, whose `exp` underflows to 0 in
//! f64, are skipped, so integer-valued targets such as ages cost O(U²) in the U distinct values.
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
    n: u64,
}

/// Terms beyond this many bandwidths are exactly 0 in f64 (`exp(-800) == 0`).
const CUTOFF: f64 = 40.0;

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
        let mut dw = Self {
            config,
            bandwidth,
            density_min: 0.0,
            density_max: 0.0,
            mean_w_star: 1.0,
            values,
            multiplicity,
            n: labels.len() as u64,
        };
        let dens: Vec<f64> = dw.values.iter().map(|&y| dw.density(y)).collect();
        dw.density_min = dens.iter().copied().fold(f64::INFINITY, f64::min);
        dw.density_max = dens.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = dens
            .iter()
            .zip(&dw.multiplicity)
            .map(|(&p, &m)| dw.w_star_of_density(p) * m as f64)
            .sum();
        dw.mean_w_star = total / n;
        Ok(dw)
    }

    /// Gaussian KDE of the training labels at `y`: `1/(N h √2π) Σ_i exp(-(y - y_i)²/2h²)`.
    pub fn density(&self, y: f64) -> f64 {
        let h = self.bandwidth;
        let lo = self.values.partition_point(|&v| v < y - CUTOFF * h);
        let hi = self.values.partition_point(|&v| v <= y + CUTOFF * h);
        let s: f64 = (lo..hi)
            .map(|k| {
                let z = (y - self.values[k]) / h;
                self.multiplicity[k] as f64 * (-0.5 * z * z).exp()
            })
            .sum();
        s / (self.n as f64 * h * (2.0 * std::f64::consts::PI).sqrt())
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
        labels.iter().map(|&y| self.weight(y)).collect()
    }
}
