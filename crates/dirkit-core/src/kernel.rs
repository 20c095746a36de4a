//! Kernel windows for LDS and FDS smoothing (methods.md §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result, invalid};

/// How a window is scaled: LDS divides by the maximum, FDS by the sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalisation {
    /// Peak 1 (LDS, reference `get_lds_kernel_window`).
    Peak,
    /// Sum 1 (FDS, reference `_get_kernel_window`); preserves mass when convolving.
    Sum,
    /// As computed (for inspection).
    Raw,
}

/// A smoothing kernel and its window size `ks` (odd, >= 1; half width `h = (ks - 1) / 2`).
///
/// Defaults in dirkit follow the LDS/FDS papers: gaussian, `ks = 5`, `sigma = 2` (in bins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kernel", rename_all = "kebab-case")]
pub enum Kernel {
    /// The reference window: a unit impulse filtered with a sampled Gaussian of radius
    /// `floor(4σ + 0.5)` and half-sample mirrored edges, so wide σ folds its tails back into the
    /// window (ks = 5, σ = 2 gives `[0.858, 0.946, 1, …]`, not `exp(-x²/8)`).
    Gaussian {
        /// Window length in bins (odd).
        ks: usize,
        /// Standard deviation in bins (> 0).
        sigma: f64,
    },
    /// `exp(-x² / 2σ²)` without folding.
    GaussianExact {
        /// Window length in bins (odd).
        ks: usize,
        /// Standard deviation in bins (> 0).
        sigma: f64,
    },
    /// `(h + 1 - |x|) / (h + 1)` (scipy's `triang`); alias `triang`.
    #[serde(alias = "triang")]
    Triangular {
        /// Window length in bins (odd).
        ks: usize,
    },
    /// `exp(-|x| / σ)`.
    Laplace {
        /// Window length in bins (odd).
        ks: usize,
        /// Scale in bins (> 0).
        sigma: f64,
    },
    /// `((h + 1)² - x²) / (h + 1)²`.
    Epanechnikov {
        /// Window length in bins (odd).
        ks: usize,
    },
    /// User-given weights: non-negative, finite, odd length, not all zero.
    Custom {
        /// The raw window, centre in the middle.
        weights: Vec<f64>,
    },
}

/// The name of a kernel family, as written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelKind {
    /// See [`Kernel::Gaussian`].
    Gaussian,
    /// See [`Kernel::GaussianExact`].
    GaussianExact,
    /// See [`Kernel::Triangular`].
    Triangular,
    /// See [`Kernel::Laplace`].
    Laplace,
    /// See [`Kernel::Epanechnikov`].
    Epanechnikov,
}

impl KernelKind {
    /// Builds the kernel of this family; `sigma` is ignored by triangular and epanechnikov.
    pub fn with(self, ks: usize, sigma: f64) -> Kernel {
        match self {
            Self::Gaussian => Kernel::Gaussian { ks, sigma },
            Self::GaussianExact => Kernel::GaussianExact { ks, sigma },
            Self::Triangular => Kernel::Triangular { ks },
            Self::Laplace => Kernel::Laplace { ks, sigma },
            Self::Epanechnikov => Kernel::Epanechnikov { ks },
        }
    }
}

impl FromStr for KernelKind {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "gaussian" => Self::Gaussian,
            "gaussian-exact" => Self::GaussianExact,
            "triangular" | "triang" => Self::Triangular,
            "laplace" => Self::Laplace,
            "epanechnikov" => Self::Epanechnikov,
            _ => {
                return invalid(
                    "kernel",
                    s,
                    "one of gaussian, gaussian-exact, triangular (triang), laplace, epanechnikov",
                );
            }
        })
    }
}

impl fmt::Display for KernelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gaussian => "gaussian",
            Self::GaussianExact => "gaussian-exact",
            Self::Triangular => "triangular",
            Self::Laplace => "laplace",
            Self::Epanechnikov => "epanechnikov",
        })
    }
}

impl Default for Kernel {
    /// Gaussian, ks = 5, σ = 2: the LDS/FDS papers' default.
    fn default() -> Self {
        Kernel::Gaussian { ks: 5, sigma: 2.0 }
    }
}

impl Kernel {
    /// Window length (odd).
    pub fn ks(&self) -> usize {
        match self {
            Kernel::Gaussian { ks, .. }
            | Kernel::GaussianExact { ks, .. }
            | Kernel::Triangular { ks }
            | Kernel::Laplace { ks, .. }
            | Kernel::Epanechnikov { ks } => *ks,
            Kernel::Custom { weights } => weights.len(),
        }
    }

    /// Half width `h = (ks - 1) / 2`.
    pub fn half_width(&self) -> usize {
        self.ks().saturating_sub(1) / 2
    }

    /// Checks ks (odd, >= 1), σ (finite, > 0) and custom weights.
    pub fn validate(&self) -> Result<()> {
        let check_ks = |ks: usize| -> Result<()> {
            if ks == 0 || ks.is_multiple_of(2) {
                return invalid("ks", ks, "an odd window size >= 1");
            }
            Ok(())
        };
        let check_sigma = |sigma: f64| -> Result<()> {
            if !(sigma.is_finite() && sigma > 0.0) {
                return invalid("sigma", sigma, "a finite number > 0");
            }
            Ok(())
        };
        match self {
            Kernel::Gaussian { ks, sigma }
            | Kernel::GaussianExact { ks, sigma }
            | Kernel::Laplace { ks, sigma } => {
                check_ks(*ks)?;
                check_sigma(*sigma)
            }
            Kernel::Triangular { ks } | Kernel::Epanechnikov { ks } => check_ks(*ks),
            Kernel::Custom { weights } => {
                if weights.len().is_multiple_of(2) {
                    return invalid(
                        "custom kernel length",
                        weights.len(),
                        "an odd number of weights",
                    );
                }
                if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
                    return invalid("custom kernel weight", w, "finite, non-negative weights");
                }
                if weights.iter().all(|w| *w == 0.0) {
                    return invalid("custom kernel", "all zeros", "at least one positive weight");
                }
                Ok(())
            }
        }
    }

    /// The window of length ks, scaled as asked; offsets run `-h..=h`.
    pub fn window(&self, norm: Normalisation) -> Result<Vec<f64>> {
        self.validate()?;
        let h = self.half_width();
        let offsets = (0..self.ks()).map(|i| i as f64 - h as f64);
        let raw: Vec<f64> = match self {
            Kernel::Gaussian { ks, sigma } => folded_gaussian(*ks, *sigma),
            Kernel::GaussianExact { sigma, .. } => offsets
                .map(|x| (-x * x / (2.0 * sigma * sigma)).exp())
                .collect(),
            Kernel::Triangular { .. } => {
                let h1 = h as f64 + 1.0;
                offsets.map(|x| (h1 - x.abs()) / h1).collect()
            }
            Kernel::Laplace { sigma, .. } => offsets.map(|x| (-x.abs() / sigma).exp()).collect(),
            Kernel::Epanechnikov { .. } => {
                let h1 = h as f64 + 1.0;
                offsets.map(|x| (h1 * h1 - x * x) / (h1 * h1)).collect()
            }
            Kernel::Custom { weights } => weights.clone(),
        };
        let scale = match norm {
            Normalisation::Raw => return Ok(raw),
            Normalisation::Peak => raw.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Normalisation::Sum => raw.iter().sum(),
        };
        Ok(raw.into_iter().map(|w| w / scale).collect())
    }
}

/// scipy's `gaussian_filter1d` (mode `reflect`, truncate 4) applied to a unit impulse at the
/// centre of a length-`ks` array, summed in its order (`w0·x_i`, then `(x_{i-j} + x_{i+j})·w_j`).
fn folded_gaussian(ks: usize, sigma: f64) -> Vec<f64> {
    let r = (4.0 * sigma + 0.5).floor() as usize;
    let var = sigma * sigma;
    let mut g: Vec<f64> = (0..=r)
        .map(|j| (-0.5 / var * (j * j) as f64).exp())
        .collect();
    let total = g[0] + 2.0 * g[1..].iter().sum::<f64>();
    g.iter_mut().for_each(|w| *w /= total);

    let centre = ks / 2;
    let period = 2 * ks as i64;
    // Half-sample symmetric extension: d c b a | a b c d | d c b a.
    let reflect = |p: i64| -> usize {
        let m = p.rem_euclid(period) as usize;
        if m >= ks { 2 * ks - 1 - m } else { m }
    };
    let impulse = |p: i64| -> f64 { if reflect(p) == centre { 1.0 } else { 0.0 } };
    (0..ks as i64)
        .map(|i| {
            let mut acc = impulse(i) * g[0];
            for (j, w) in g.iter().enumerate().skip(1) {
                let j = j as i64;
                acc += (impulse(i - j) + impulse(i + j)) * w;
            }
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_5_2_folds_its_tails_back() {
        let w = Kernel::Gaussian { ks: 5, sigma: 2.0 }
            .window(Normalisation::Peak)
            .unwrap();
        assert!((w[0] - 0.8582852378).abs() < 1e-9);
        assert!((w[1] - 0.9458276491).abs() < 1e-9);
        assert_eq!(w[2], 1.0);
    }

    #[test]
    fn triang_alias_and_closed_forms() {
        assert_eq!(
            "triang".parse::<KernelKind>().unwrap(),
            KernelKind::Triangular
        );
        let t = Kernel::Triangular { ks: 5 }
            .window(Normalisation::Peak)
            .unwrap();
        assert_eq!(t, vec![1.0 / 3.0, 2.0 / 3.0, 1.0, 2.0 / 3.0, 1.0 / 3.0]);
        let s = Kernel::Epanechnikov { ks: 3 }
            .window(Normalisation::Sum)
            .unwrap();
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn serde_form_is_tagged_by_kernel_name() {
        let k: Kernel = serde_json::from_str(r#"{"kernel":"triang","ks":3}"#).unwrap();
        assert_eq!(k, Kernel::Triangular { ks: 3 });
        let s = serde_json::to_string(&Kernel::default()).unwrap();
        assert_eq!(s, r#"{"kernel":"gaussian","ks":5,"sigma":2.0}"#);
    }
}
