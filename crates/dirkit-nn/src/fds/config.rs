//! FDS hyper-parameters (methods.md §5), reference defaults, validation.

use dirkit_core::{Binning, Kernel};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, bad};

/// Which covariance FDS tracks and calibrates with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Covariance {
    /// Per-dimension variance: `z' = (z − μ_b)·sqrt(clip(σ̃²_b/σ²_b)) + μ̃_b` (the reference).
    Diagonal,
    /// Full covariance: `z' = Σ̃_b^{1/2} Σ_b^{-1/2} (z − μ_b) + μ̃_b` (the paper's form).
    Full(FullCovariance),
}

/// Options of the full-covariance calibration.
///
/// The raw form (`shrinkage 0`, no transform clip) reproduces the paper's formula and the
/// reference vectors, but where a bin has fewer samples than dimensions its covariance is
/// singular and the eigenvalue floor amplifies null directions ~1/sqrt(ε)-fold. The default
/// therefore shrinks each Σ toward its diagonal and clips the transform's singular values to
/// the diagonal mode's range. The default coefficient (0.2) is a conservative choice, not yet
/// tuned on the age-estimation benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FullCovariance {
    /// Shrinkage α ∈ [0, 1]: Σ ← (1 − α)Σ + α·target (default 0.2).
    pub shrinkage: f64,
    /// What Σ shrinks toward.
    pub target: ShrinkTarget,
    /// Eigenvalues below `eig_floor · mean eigenvalue` are raised to it (default 1e-6).
    pub eig_floor: f64,
    /// Clip the singular values of Σ̃^{1/2}Σ^{-1/2} to [sqrt(clip.0), sqrt(clip.1)] (default on).
    pub clip_transform: bool,
}

impl Default for FullCovariance {
    fn default() -> Self {
        Self {
            shrinkage: 0.2,
            target: ShrinkTarget::Diagonal,
            eig_floor: 1e-6,
            clip_transform: true,
        }
    }
}

impl FullCovariance {
    /// The paper's formula without shrinkage or transform clip (reproduces fds.json).
    pub fn raw() -> Self {
        Self {
            shrinkage: 0.0,
            clip_transform: false,
            ..Self::default()
        }
    }
}

/// Shrinkage target of a covariance matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShrinkTarget {
    /// diag(Σ): keeps the per-dimension variances, damps the correlations.
    Diagonal,
    /// (tr Σ / D)·I.
    ScaledIdentity,
}

/// How bins that never received a sample take part in smoothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyBins {
    /// With the reference's initial values (mean 0, variance 1, covariance I) — what the
    /// reference and the vectors do.
    Initial,
    /// With the statistics of the nearest bin that has samples (ties: the lower bin): avoids
    /// pulling neighbours toward an arbitrary 0/1. An option until measured.
    Nearest,
}

/// Where the per-epoch feature statistics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatsSource {
    /// After each epoch, a no-grad pass over the training set collects uncalibrated features
    /// (the reference). The training loop calls `Fds::accumulate` in that pass.
    SecondPass,
    /// Uncalibrated features are accumulated during the training pass itself: no extra
    /// forward pass, statistics from a model that changes during the epoch.
    Online,
}

/// FDS configuration. Defaults are the reference's for AgeDB-DIR: bins for labels 3…99 (one
/// per integer label, `bucket_start 3, bucket_num 100`; labels outside pool into the end bins),
/// gaussian kernel ks 5 σ 2 (sum-normalised), momentum 0.9, start_update 0, start_smooth 1,
/// variance-ratio clip [0.1, 10], diagonal covariance, second-pass statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdsConfig {
    /// Feature dimension D.
    pub feature_dim: usize,
    /// Label bins; labels outside always pool into the first/last bin.
    pub binning: Binning,
    /// Smoothing kernel over the bin axis (sum-normalised).
    pub kernel: Kernel,
    /// EMA momentum m of the running statistics (R ← (1−m)E + mR); `None` = cumulative average.
    pub momentum: Option<f64>,
    /// First epoch (0-based) whose statistics update the running statistics.
    pub start_update: usize,
    /// First epoch (0-based) that is calibrated.
    pub start_smooth: usize,
    /// Variance-ratio clip [low, high] of the diagonal mode (and the full mode's transform).
    pub clip: (f64, f64),
    /// Diagonal or full covariance.
    pub covariance: Covariance,
    /// How never-seen bins take part in smoothing.
    pub empty_bins: EmptyBins,
    /// Second pass or online statistics.
    pub source: StatsSource,
}

impl FdsConfig {
    /// Reference defaults for `feature_dim` features and AgeDB-DIR's bins (labels 3…99).
    pub fn new(feature_dim: usize) -> Self {
        Self::reference(feature_dim, 100, 3)
    }

    /// The reference's parametrisation: one bin per integer label in `bucket_start..bucket_num`.
    pub fn reference(feature_dim: usize, bucket_num: usize, bucket_start: usize) -> Self {
        Self {
            feature_dim,
            binning: Binning {
                start: bucket_start as f64,
                width: 1.0,
                n_bins: bucket_num.saturating_sub(bucket_start),
            },
            kernel: Kernel::Gaussian { ks: 5, sigma: 2.0 },
            momentum: Some(0.9),
            start_update: 0,
            start_smooth: 1,
            clip: (0.1, 10.0),
            covariance: Covariance::Diagonal,
            empty_bins: EmptyBins::Initial,
            source: StatsSource::SecondPass,
        }
    }

    /// Checks every field; `Fds::new` calls it.
    pub fn validate(&self) -> Result<(), NnError> {
        if self.feature_dim == 0 {
            return Err(bad("feature_dim", 0, "at least 1"));
        }
        self.binning.validate()?;
        self.kernel.validate()?;
        let h = self.kernel.half_width();
        if self.binning.n_bins <= h {
            return Err(bad(
                "n_bins",
                self.binning.n_bins,
                "more bins than the kernel's half width (reflect padding)",
            ));
        }
        if let Some(m) = self.momentum
            && !(0.0..1.0).contains(&m)
        {
            return Err(bad("momentum", m, "a number in [0, 1)"));
        }
        let (lo, hi) = self.clip;
        if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
            return Err(bad(
                "variance-ratio clip",
                format!("[{lo}, {hi}]"),
                "0 < low <= high < inf",
            ));
        }
        if let Covariance::Full(f) = self.covariance {
            if !(0.0..=1.0).contains(&f.shrinkage) {
                return Err(bad("shrinkage", f.shrinkage, "a number in [0, 1]"));
            }
            if !(f.eig_floor >= 0.0 && f.eig_floor < 1.0) {
                return Err(bad("eig_floor", f.eig_floor, "a number in [0, 1)"));
            }
        }
        Ok(())
    }

    /// Whether the co-moment matrices are tracked.
    pub fn is_full(&self) -> bool {
        matches!(self.covariance, Covariance::Full(_))
    }
}
