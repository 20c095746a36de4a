//! How good a model's uncertainty is: the negative log-likelihood of the targets under the
//! predicted distribution, the coverage of its central 50% and 90% intervals, and the
//! sparsification curve (Ilg et al., ECCV 2018) with its area to the oracle (AUSE).
//!
//! A prediction is a mean μ and a standard deviation σ > 0 of a Gaussian or a Laplace
//! distribution (UVOTE predicts a Laplace, `b = σ/√2`; VIR's Student-t is summarised by a
//! Gaussian of the same variance). The sparsification curve removes the fraction f of samples
//! with the largest σ and reports the MAE of the rest, relative to the MAE of all; the oracle
//! removes the largest errors instead. AUSE is the trapezoid area between the two over
//! f ∈ [0, 1 − 1/steps] — 0 when σ ranks the samples exactly as their errors do.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result, invalid};

/// The predictive distribution a σ belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PredictiveDist {
    /// Normal with standard deviation σ.
    Gaussian,
    /// Laplace with scale `b = σ / √2` (standard deviation σ).
    Laplace,
}

impl PredictiveDist {
    /// Negative log-likelihood of `y` under mean `mu` and standard deviation `sigma`.
    pub fn nll(self, mu: f64, sigma: f64, y: f64) -> f64 {
        let e = y - mu;
        match self {
            // ln σ and (e/σ)² rather than ln σ² and e²/σ²: a tiny σ must not underflow σ² to 0
            // (ln 0 − … + ∞ would be NaN); the NLL is then large or +∞, as it should be.
            PredictiveDist::Gaussian => {
                let z = e / sigma;
                0.5 * (2.0 * std::f64::consts::PI).ln() + sigma.ln() + 0.5 * z * z
            }
            PredictiveDist::Laplace => {
                let b = sigma / std::f64::consts::SQRT_2;
                (2.0 * b).ln() + e.abs() / b
            }
        }
    }

    /// Half-width of the central interval holding probability `p` ∈ (0, 1), for σ = 1.
    pub fn half_width(self, p: f64) -> f64 {
        match self {
            PredictiveDist::Gaussian => normal_quantile(0.5 + p / 2.0),
            PredictiveDist::Laplace => -(1.0 - p).ln() / std::f64::consts::SQRT_2,
        }
    }
}

/// The standard normal quantile Φ⁻¹(q), q ∈ (0, 1) (Acklam's rational approximation; relative
/// error below 1.2e-9).
pub fn normal_quantile(q: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let low = 0.024_25;
    if q < low {
        let t = (-2.0 * q.ln()).sqrt();
        (((((C[0] * t + C[1]) * t + C[2]) * t + C[3]) * t + C[4]) * t + C[5])
            / ((((D[0] * t + D[1]) * t + D[2]) * t + D[3]) * t + 1.0)
    } else if q <= 1.0 - low {
        let r = q - 0.5;
        let s = r * r;
        (((((A[0] * s + A[1]) * s + A[2]) * s + A[3]) * s + A[4]) * s + A[5]) * r
            / (((((B[0] * s + B[1]) * s + B[2]) * s + B[3]) * s + B[4]) * s + 1.0)
    } else {
        -normal_quantile(1.0 - q)
    }
}

/// One point of the sparsification curves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SparsificationPoint {
    /// Fraction of samples removed.
    pub removed: f64,
    /// MAE of the rest after removing the largest σ, relative to the MAE of all.
    pub by_sigma: f64,
    /// MAE of the rest after removing the largest errors (the oracle), relative.
    pub oracle: f64,
}

/// The uncertainty summary of a set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UncertaintyReport {
    /// The distribution the σ belong to.
    pub dist: PredictiveDist,
    /// Samples.
    pub n: usize,
    /// Mean negative log-likelihood of the targets (nats).
    pub nll: f64,
    /// Fraction of targets inside the central 50% interval (calibrated: 0.5).
    pub coverage_50: f64,
    /// Fraction of targets inside the central 90% interval (calibrated: 0.9).
    pub coverage_90: f64,
    /// Mean predicted σ (label units).
    pub mean_sigma: f64,
    /// Pearson correlation of σ and |error| (does σ track the error?).
    pub sigma_error_correlation: f64,
    /// Area between the sparsification curve and the oracle's (0 is perfect).
    pub ause: f64,
    /// The curves at `removed = k / steps`, k = 0 … steps − 1.
    pub sparsification: Vec<SparsificationPoint>,
}

impl UncertaintyReport {
    /// Summarises predictions μ with standard deviations σ against targets, with `steps`
    /// sparsification points (20 is usual). Every σ must be finite and > 0, every value finite.
    pub fn compute(
        predictions: &[f64],
        sigma: &[f64],
        targets: &[f64],
        dist: PredictiveDist,
        steps: usize,
    ) -> Result<Self> {
        let n = predictions.len();
        for (what, len) in [
            ("predictions vs sigmas", sigma.len()),
            ("predictions vs targets", targets.len()),
        ] {
            if len != n {
                return Err(CoreError::LengthMismatch {
                    what,
                    left: n,
                    right: len,
                });
            }
        }
        if n == 0 {
            return Err(CoreError::Empty("uncertainty: no predictions"));
        }
        if steps == 0 {
            return invalid("steps", 0, "at least 1");
        }
        for i in 0..n {
            if !(sigma[i].is_finite() && sigma[i] > 0.0) {
                return invalid(
                    "sigma",
                    format!("{} at row {i}", sigma[i]),
                    "a finite value > 0",
                );
            }
            for (what, v) in [("prediction", predictions[i]), ("target", targets[i])] {
                if !v.is_finite() {
                    return invalid(what, format!("{v} at row {i}"), "a finite number");
                }
            }
        }
        let err: Vec<f64> = predictions
            .iter()
            .zip(targets)
            .map(|(p, y)| (y - p).abs())
            .collect();
        let nf = n as f64;
        let nll = (0..n)
            .map(|i| dist.nll(predictions[i], sigma[i], targets[i]))
            .sum::<f64>()
            / nf;
        let coverage = |p: f64| {
            let h = dist.half_width(p);
            err.iter()
                .zip(sigma)
                .filter(|(e, s)| **e <= h * **s)
                .count() as f64
                / nf
        };
        let mean_sigma = sigma.iter().sum::<f64>() / nf;
        let mean_err = err.iter().sum::<f64>() / nf;
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for (s, e) in sigma.iter().zip(&err) {
            let (a, b) = (s - mean_sigma, e - mean_err);
            sxy += a * b;
            sxx += a * a;
            syy += b * b;
        }
        let corr = if sxx > 0.0 && syy > 0.0 {
            sxy / (sxx * syy).sqrt()
        } else {
            0.0
        };
        // Keep order: ascending σ (ties by error, then index) and ascending error; the kept
        // samples are a prefix of each order.
        let mut by_sigma: Vec<usize> = (0..n).collect();
        by_sigma.sort_by(|&a, &b| {
            sigma[a]
                .total_cmp(&sigma[b])
                .then(err[a].total_cmp(&err[b]))
                .then(a.cmp(&b))
        });
        let mut by_err: Vec<usize> = (0..n).collect();
        by_err.sort_by(|&a, &b| err[a].total_cmp(&err[b]).then(a.cmp(&b)));
        let prefix = |order: &[usize]| -> Vec<f64> {
            let mut acc = vec![0.0; n + 1];
            for (k, &i) in order.iter().enumerate() {
                acc[k + 1] = acc[k] + err[i];
            }
            acc
        };
        let (ps, po) = (prefix(&by_sigma), prefix(&by_err));
        let scale = if mean_err > 0.0 { mean_err } else { 1.0 };
        let mut curve = Vec::with_capacity(steps);
        for k in 0..steps {
            let removed = k as f64 / steps as f64;
            let keep = ((1.0 - removed) * nf).round().max(1.0) as usize;
            curve.push(SparsificationPoint {
                removed,
                by_sigma: ps[keep] / keep as f64 / scale,
                oracle: po[keep] / keep as f64 / scale,
            });
        }
        let ause = curve
            .windows(2)
            .map(|w| {
                let gap = |p: &SparsificationPoint| p.by_sigma - p.oracle;
                0.5 * (gap(&w[0]) + gap(&w[1])) * (w[1].removed - w[0].removed)
            })
            .sum::<f64>();
        Ok(Self {
            dist,
            n,
            nll,
            coverage_50: coverage(0.5),
            coverage_90: coverage(0.9),
            mean_sigma,
            sigma_error_correlation: corr,
            ause,
            sparsification: curve,
        })
    }

    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        format!(
            "uncertainty ({:?}, {} samples): NLL {:.3}, coverage of the 50% interval {:.3} and \
             the 90% interval {:.3}, mean σ {:.3}, corr(σ, |error|) {:.3}, AUSE {:.4}",
            self.dist,
            self.n,
            self.nll,
            self.coverage_50,
            self.coverage_90,
            self.mean_sigma,
            self.sigma_error_correlation,
            self.ause
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_half_widths_match_closed_forms() {
        for (q, z) in [
            (0.75, 0.674_489_750_196_081_7),
            (0.95, 1.644_853_626_951_472_2),
            (0.975, 1.959_963_984_540_054),
            (0.999, 3.090_232_306_167_813_5),
            (0.01, -2.326_347_874_040_841),
        ] {
            assert!(
                (normal_quantile(q) - z).abs() < 1e-8 * z.abs(),
                "{q}: {}",
                normal_quantile(q)
            );
        }
        // Laplace with σ = √2 has b = 1 and P(|X| ≤ ln 2) = ½.
        let h = PredictiveDist::Laplace.half_width(0.5) * std::f64::consts::SQRT_2;
        assert!((h - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn nll_coverage_and_ause_on_constructed_sets() {
        // Errors 1..=10 with σ proportional to the error: the ranking is the oracle's.
        let n = 10;
        let targets = vec![0.0; n];
        let pred: Vec<f64> = (1..=n).map(|i| i as f64).collect();
        let sigma: Vec<f64> = pred.iter().map(|e| e / 2.0).collect();
        let r = UncertaintyReport::compute(&pred, &sigma, &targets, PredictiveDist::Gaussian, 10)
            .unwrap();
        assert_eq!(r.ause, 0.0);
        assert!((r.sigma_error_correlation - 1.0).abs() < 1e-12);
        // |e| = 2σ: outside the 50% (0.674σ) and 90% (1.645σ) intervals.
        assert_eq!((r.coverage_50, r.coverage_90), (0.0, 0.0));
        let want: f64 = (1..=n)
            .map(|i| {
                let s = i as f64 / 2.0;
                0.5 * (2.0 * std::f64::consts::PI * s * s).ln() + 2.0
            })
            .sum::<f64>()
            / n as f64;
        assert!((r.nll - want).abs() < 1e-12);
        // Reversed σ: the worst ranking, a positive AUSE; curves start at 1.
        let rev: Vec<f64> = sigma.iter().rev().copied().collect();
        let w =
            UncertaintyReport::compute(&pred, &rev, &targets, PredictiveDist::Laplace, 10).unwrap();
        assert!(w.ause > 0.3, "{}", w.ause);
        assert_eq!(w.sparsification[0].by_sigma, 1.0);
        assert_eq!(w.sparsification[0].oracle, 1.0);
        // Removing 10% by σ drops the smallest error (1) under the reversed ranking.
        assert!((w.sparsification[1].by_sigma - (54.0 / 9.0) / 5.5).abs() < 1e-12);
        assert!((w.sparsification[1].oracle - (45.0 / 9.0) / 5.5).abs() < 1e-12);
        // Laplace NLL of e = 1 with σ = √2 (b = 1): ln 2 + 1.
        assert!(
            (PredictiveDist::Laplace.nll(0.0, 2f64.sqrt(), 1.0) - (2f64.ln() + 1.0)).abs() < 1e-15
        );
        // Bad input: which row and what was expected.
        let e = UncertaintyReport::compute(
            &[1.0, 2.0],
            &[1.0, 0.0],
            &[0.0, 0.0],
            PredictiveDist::Gaussian,
            5,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("row 1") && e.contains("> 0"), "{e}");
    }
}
