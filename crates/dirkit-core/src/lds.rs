//! Label distribution smoothing and per-sample re-weighting (methods.md §3).
//!
//! Counts per bin → transform (inverse, sqrt-inverse, effective number) → optional LDS
//! convolution with a peak-normalised kernel → the *effective density* `d_b` → per-sample weights
//! `w_i = N·u_{b_i} / Σ_j u_{b_j}`, `u = 1/d`, which average 1 over the training set.

use serde::{Deserialize, Serialize};

use crate::binning::{Binning, OutOfRange};
use crate::error::{CoreError, Result, invalid};
use crate::kernel::{Kernel, Normalisation};

/// The most samples a histogram may count: 2^53, so every total and density is exact in f64.
pub const MAX_SAMPLES: u64 = 1 << 53;

/// The most samples [`Numerics::Reference`] accepts from counts: it replays every sample one by
/// one, as the official code does, so 2^32 already takes minutes.
pub const MAX_REFERENCE_SAMPLES: u64 = 1 << 32;

/// How bin counts are turned into the density that weights are inverse to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Reweight {
    /// No re-weighting: every weight is 1 (LDS with `none` is an error, as in the reference).
    None,
    /// `clip(n_b, clip_min, clip_max)`; reference bounds 5 and 1000 (empty bins become 5).
    Inverse {
        /// Lower clip bound on counts (reference 5).
        clip_min: f64,
        /// Upper clip bound on counts (reference 1000).
        clip_max: f64,
    },
    /// `sqrt(n_b)`, no clip (the LDS paper's `sqrt_inv`).
    SqrtInverse,
    /// `n_b^α`, no clip: a continuous strength between no re-weighting (α = 0) and the
    /// inverse (α = 1); α = 0.5 is [`Reweight::SqrtInverse`]. With LDS the weights are inverse
    /// to the smoothed `n_b^α`, so α = 0.5 is the paper's `sqrt_inv` exactly.
    Power {
        /// The exponent α in (0, 4].
        alpha: f64,
    },
    /// Effective number of samples `(1 - β^{n_b}) / (1 - β)` (Cui et al. 2019), `β ∈ (0, 1)`.
    EffectiveNumber {
        /// β in (0, 1); 0.99 to 0.9999 are usual.
        beta: f64,
    },
}

impl Reweight {
    /// `inverse` with the reference clip bounds [5, 1000].
    pub const INVERSE: Reweight = Reweight::Inverse {
        clip_min: 5.0,
        clip_max: 1000.0,
    };

    /// Checks clip bounds and β.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Reweight::Inverse { clip_min, clip_max } => {
                if !(clip_min.is_finite() && clip_min >= 0.0) {
                    return invalid("inverse clip min", clip_min, "a finite number >= 0");
                }
                if !(clip_max.is_finite() && clip_max >= clip_min && clip_max > 0.0) {
                    return invalid(
                        "inverse clip max",
                        clip_max,
                        "a finite number > 0 and >= the clip min",
                    );
                }
            }
            Reweight::EffectiveNumber { beta } => {
                if !(beta > 0.0 && beta < 1.0) {
                    return invalid("beta", beta, "a number in the open interval (0, 1)");
                }
            }
            Reweight::Power { alpha } => {
                if !(alpha > 0.0 && alpha <= 4.0) {
                    return invalid("alpha", alpha, "an exponent in (0, 4]");
                }
            }
            Reweight::None | Reweight::SqrtInverse => {}
        }
        Ok(())
    }

    /// The transform `t_b` of one bin count.
    pub fn transform(&self, n: u64) -> f64 {
        let n = n as f64;
        match *self {
            Reweight::None => n,
            Reweight::Inverse { clip_min, clip_max } => n.clamp(clip_min, clip_max),
            Reweight::SqrtInverse => n.sqrt(),
            Reweight::Power { alpha } => n.powf(alpha),
            Reweight::EffectiveNumber { beta } => (1.0 - beta.powf(n)) / (1.0 - beta),
        }
    }
}

/// Which arithmetic produces the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Numerics {
    /// Everything in f64, no truncation (default).
    #[default]
    F64,
    /// Reproduces the official implementation to a relative 1e-6: `inverse` densities truncated
    /// to integers, `1/d` rounded to f32, `Σu` summed in f32 in numpy's pairwise order over the
    /// samples, weights returned as f32 values.
    Reference,
}

/// Re-weighting configuration: transform, optional LDS kernel (peak-normalised), numerics.
///
/// The default is the LDS paper's recipe: `sqrt-inverse` with a gaussian kernel, ks 5, σ 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LdsConfig {
    /// Count transform.
    pub reweight: Reweight,
    /// LDS kernel; `None` turns smoothing off (`d = t`).
    pub lds: Option<Kernel>,
    /// f64 (default) or reference-compatible numerics.
    pub numerics: Numerics,
}

impl Default for LdsConfig {
    fn default() -> Self {
        Self {
            reweight: Reweight::SqrtInverse,
            lds: Some(Kernel::default()),
            numerics: Numerics::F64,
        }
    }
}

impl LdsConfig {
    /// Checks every hyper-parameter; every fitting function calls it first.
    pub fn validate(&self) -> Result<()> {
        self.reweight.validate()?;
        if let Some(k) = &self.lds {
            k.validate()?;
            if self.reweight == Reweight::None {
                return invalid(
                    "reweight",
                    "none",
                    "inverse, sqrt-inverse or effective-number when LDS is on",
                );
            }
        }
        Ok(())
    }
}

/// The fitted label density of a training set: counts, transform, effective density and the
/// weight of a sample in each bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelDensity {
    /// The bins the labels were counted in.
    pub binning: Binning,
    /// Out-of-range policy used for counting, and for [`LabelDensity::sample_weight`].
    pub out_of_range: OutOfRange,
    /// The configuration it was fitted with.
    pub config: LdsConfig,
    /// `n_b`, samples per bin.
    pub counts: Vec<u64>,
    /// Labels left out by [`OutOfRange::Drop`].
    pub dropped: u64,
    /// `t_b`, the transformed counts.
    pub transformed: Vec<f64>,
    /// `d_b`, the (smoothed) effective density.
    pub effective_density: Vec<f64>,
    /// Weight of a sample in bin `b`; `None` for a bin without training samples.
    pub bin_weight: Vec<Option<f64>>,
}

impl LabelDensity {
    /// Fits on raw labels: one counting pass, then O(B·ks). In reference mode a second pass sums
    /// `1/d` over the samples in input order, as the official code does.
    pub fn fit(
        labels: &[f64],
        binning: Binning,
        out_of_range: OutOfRange,
        config: &LdsConfig,
    ) -> Result<Self> {
        config.validate()?;
        binning.validate()?;
        let (counts, dropped) = binning.counts(labels, out_of_range)?;
        let mut fit = Self::prepare(binning, out_of_range, config, counts, dropped)?;
        match config.numerics {
            Numerics::F64 => fit.weights_f64(),
            Numerics::Reference => {
                let bins = labels
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &y)| binning.bin(y, i, out_of_range).ok().flatten());
                fit.weights_reference(bins);
            }
        }
        Ok(fit)
    }

    /// Fits on a histogram (`counts[b]` samples in bin `b`). In reference mode the samples are
    /// taken in bin order for the f32 sum.
    pub fn from_counts(binning: Binning, counts: Vec<u64>, config: &LdsConfig) -> Result<Self> {
        config.validate()?;
        binning.validate()?;
        if counts.len() != binning.n_bins {
            return Err(CoreError::LengthMismatch {
                what: "counts vs n_bins",
                left: counts.len(),
                right: binning.n_bins,
            });
        }
        let total = counts.iter().try_fold(0u64, |t, &n| t.checked_add(n));
        match total {
            Some(t) if config.numerics == Numerics::Reference && t > MAX_REFERENCE_SAMPLES => {
                return invalid(
                    "counts total",
                    t,
                    "at most 2^32 samples with Numerics::Reference (it replays every sample)",
                );
            }
            Some(t) if t <= MAX_SAMPLES => {}
            _ => {
                return invalid(
                    "counts total",
                    total.map_or("more than 2^64".to_string(), |t| t.to_string()),
                    "at most 2^53 samples (the largest whole number an f64 holds exactly)",
                );
            }
        }
        let mut fit = Self::prepare(binning, OutOfRange::Clip, config, counts, 0)?;
        match config.numerics {
            Numerics::F64 => fit.weights_f64(),
            Numerics::Reference => {
                let bins = fit
                    .counts
                    .clone()
                    .into_iter()
                    .enumerate()
                    .flat_map(|(b, n)| std::iter::repeat_n(b, n as usize));
                fit.weights_reference(bins);
            }
        }
        Ok(fit)
    }

    fn prepare(
        binning: Binning,
        out_of_range: OutOfRange,
        config: &LdsConfig,
        counts: Vec<u64>,
        dropped: u64,
    ) -> Result<Self> {
        if counts.iter().all(|&n| n == 0) {
            return Err(CoreError::Empty("no label falls in the bin range"));
        }
        let transformed: Vec<f64> = counts
            .iter()
            .map(|&n| config.reweight.transform(n))
            .collect();
        let mut effective_density = match &config.lds {
            Some(k) => smooth(&transformed, &k.window(Normalisation::Peak)?),
            None => transformed.clone(),
        };
        if config.numerics == Numerics::Reference
            && matches!(config.reweight, Reweight::Inverse { .. })
        {
            effective_density.iter_mut().for_each(|d| *d = d.trunc());
        }
        Ok(Self {
            binning,
            out_of_range,
            config: config.clone(),
            bin_weight: vec![None; counts.len()],
            counts,
            dropped,
            transformed,
            effective_density,
        })
    }

    fn weights_f64(&mut self) {
        if self.config.reweight == Reweight::None {
            self.fill(|_| 1.0);
            return;
        }
        let mut n = 0.0;
        let mut sum_u = 0.0;
        for (&c, &d) in self.counts.iter().zip(&self.effective_density) {
            if c > 0 {
                n += c as f64;
                sum_u += c as f64 / d;
            }
        }
        let scale = n / sum_u;
        let dens = self.effective_density.clone();
        self.fill(|b| scale / dens[b]);
    }

    /// The official code's arithmetic: u rounded to f32, Σu in f32 (numpy pairwise) over the
    /// samples in order, scale N/Σu in f64, weight rounded to f32.
    fn weights_reference(&mut self, bins: impl Iterator<Item = usize>) {
        if self.config.reweight == Reweight::None {
            self.fill(|_| 1.0);
            return;
        }
        let u: Vec<f32> = self
            .effective_density
            .iter()
            .map(|&d| if d > 0.0 { (1.0 / d) as f32 } else { 0.0 })
            .collect();
        let per_sample: Vec<f32> = bins.map(|b| u[b]).collect();
        let n = per_sample.len() as f64;
        let sum = numpy_sum_f32(&per_sample) as f64;
        let scale = n / sum;
        self.fill(|b| (scale * u[b] as f64) as f32 as f64);
    }

    fn fill(&mut self, weight_of: impl Fn(usize) -> f64) {
        for (b, w) in self.bin_weight.iter_mut().enumerate() {
            *w = (self.counts[b] > 0).then(|| weight_of(b));
        }
    }

    /// Number of samples counted (dropped ones excluded).
    pub fn n_samples(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Weight of a label under the fitted binning; `Ok(None)` when the label is dropped as out
    /// of range or falls in a bin without training samples. `index` is used in errors.
    pub fn sample_weight(&self, y: f64, index: usize) -> Result<Option<f64>> {
        Ok(self
            .binning
            .bin(y, index, self.out_of_range)?
            .and_then(|b| self.bin_weight[b]))
    }

    /// Per-sample weights of `labels` written into `out` (same length), without allocating.
    /// Labels without a weight (dropped, or in a bin without training samples) get 0.
    /// Inputs of several million labels are split across the available cores.
    pub fn sample_weights_into(&self, labels: &[f64], out: &mut [f64]) -> Result<()> {
        if labels.len() != out.len() {
            return Err(CoreError::LengthMismatch {
                what: "labels vs output",
                left: labels.len(),
                right: out.len(),
            });
        }
        // A dense per-bin table turns the hot loop into a scale, a compare and a load.
        let table: Vec<f64> = self.bin_weight.iter().map(|w| w.unwrap_or(0.0)).collect();
        let parts = crate::parallel::parts(labels.len());
        if parts == 1 {
            return self.weights_serial(labels, 0, &table, out);
        }
        let chunk = labels.len().div_ceil(parts);
        let table = &table;
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = labels
                .chunks(chunk)
                .zip(out.chunks_mut(chunk))
                .enumerate()
                .map(|(k, (l, o))| scope.spawn(move || self.weights_serial(l, k * chunk, table, o)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        results.into_iter().collect()
    }

    fn weights_serial(
        &self,
        labels: &[f64],
        offset: usize,
        table: &[f64],
        out: &mut [f64],
    ) -> Result<()> {
        let b = &self.binning;
        let inv = b.exact_reciprocal();
        let (start, width, nf) = (b.start, b.width, b.n_bins as f64);
        let index = |y: f64| {
            let x = match inv {
                Some(r) => (y - start) * r,
                None => (y - start) / width,
            };
            (x >= 0.0 && x < nf).then_some(x as usize)
        };
        for (i, (&y, o)) in labels.iter().zip(out.iter_mut()).enumerate() {
            *o = match index(y) {
                Some(b) => table[b],
                None => self.sample_weight(y, offset + i)?.unwrap_or(0.0),
            };
        }
        Ok(())
    }

    /// Per-sample weights of `labels` (see [`LabelDensity::sample_weights_into`]).
    pub fn sample_weights(&self, labels: &[f64]) -> Result<Vec<f64>> {
        let mut out = vec![0.0; labels.len()];
        self.sample_weights_into(labels, &mut out)?;
        Ok(out)
    }

    /// Ratio of the largest to the smallest non-zero bin count (1 for a single bin).
    pub fn imbalance_ratio(&self) -> f64 {
        let nz = self.counts.iter().filter(|&&c| c > 0);
        let max = nz.clone().max().copied().unwrap_or(0);
        let min = nz.min().copied().unwrap_or(0);
        if min == 0 {
            f64::NAN
        } else {
            max as f64 / min as f64
        }
    }

    /// Smallest and largest weight over bins with samples.
    pub fn weight_range(&self) -> (f64, f64) {
        self.bin_weight
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &w| {
                (lo.min(w), hi.max(w))
            })
    }
}

/// `d_b = Σ_k w_k t_{b+k}`, zero outside the bins, accumulated in scipy's order
/// (`w_0 t_b`, then `(t_{b-k} + t_{b+k}) w_k` for `k = h..1`), which the reference-mode
/// truncation depends on. `window` has odd length.
pub fn smooth(values: &[f64], window: &[f64]) -> Vec<f64> {
    let h = window.len() / 2;
    let n = values.len();
    let at = |i: isize| -> f64 {
        if i >= 0 && (i as usize) < n {
            values[i as usize]
        } else {
            0.0
        }
    };
    (0..n)
        .map(|b| {
            let mut acc = window[h] * values[b];
            for k in (1..=h).rev() {
                let (lo, hi) = (b as isize - k as isize, b as isize + k as isize);
                acc += (at(lo) + at(hi)) * window[h + k];
            }
            acc
        })
        .collect()
}

/// numpy's `np.sum` of a float32 array: pairwise summation in f32 (blocks of 128 with eight
/// interleaved accumulators), which [`Numerics::Reference`] needs for 1-ulp agreement.
pub fn numpy_sum_f32(a: &[f32]) -> f32 {
    fn pairwise(a: &[f32]) -> f32 {
        let n = a.len();
        if n < 8 {
            let mut res = -0.0f32;
            for &x in a {
                res += x;
            }
            res
        } else if n <= 128 {
            let mut r = [0f32; 8];
            r.copy_from_slice(&a[..8]);
            let mut i = 8;
            while i < n - n % 8 {
                for j in 0..8 {
                    r[j] += a[i + j];
                }
                i += 8;
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for &x in &a[i..] {
                res += x;
            }
            res
        } else {
            let mut n2 = n / 2;
            n2 -= n2 % 8;
            pairwise(&a[..n2]) + pairwise(&a[n2..])
        }
    }
    0.0f32 + pairwise(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lds_with_none_is_rejected_and_beta_must_be_inside_0_1() {
        let c = LdsConfig {
            reweight: Reweight::None,
            ..LdsConfig::default()
        };
        assert!(c.validate().is_err());
        for beta in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(Reweight::EffectiveNumber { beta }.validate().is_err());
        }
    }

    #[test]
    fn smoothing_a_constant_interior_with_a_sum_window_keeps_it() {
        let w = Kernel::Triangular { ks: 3 }
            .window(Normalisation::Sum)
            .unwrap();
        let s = smooth(&[2.0, 2.0, 2.0, 2.0], &w);
        assert_eq!(s[1], 2.0);
        assert_eq!(s[0], 1.5);
    }

    #[test]
    fn numpy_pairwise_matches_a_sequential_sum_on_small_exact_inputs() {
        let v: Vec<f32> = (0..1000).map(|i| (i % 7) as f32).collect();
        let seq: f32 = v.iter().sum();
        assert_eq!(numpy_sum_f32(&v), seq);
    }
}
