//! The candidates of the selection engine: what a method does to a training set (weights,
//! resampling, a loss or head of the MLP), and one fit-and-predict of a learner with it.

use dirkit_core::relevance::Relevance;
use dirkit_core::selection::training_bins;
use dirkit_core::{
    Binning, DenseWeight, DenseWeightConfig, LabelDensity, LdsConfig, OutOfRange, Reweight,
};
use dirkit_nn::loss::uvote::{UvoteConfig, uvote_weights};
use dirkit_tabular::{Column, Frame, Method as Resampler, ResampleConfig, resample};

use super::learner::{MlpConfig, MlpFit, Standardise, mlp, raw_features, ridge};
use crate::error::{RecipeError, Result};

/// A learner the engine trains on every fold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Learner {
    /// Weighted ridge regression (λ = 1 on standardised features): fast, weights only.
    Ridge,
    /// A two-layer MLP with dirkit's regression heads: weights, Balanced MSE and the
    /// representation and uncertainty methods.
    Mlp,
}

impl Learner {
    /// Its name on the command line and in reports: `ridge`, `mlp`.
    pub fn name(self) -> &'static str {
        match self {
            Learner::Ridge => "ridge",
            Learner::Mlp => "mlp",
        }
    }
}

/// How one candidate treats the training part of a fold.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case")]
pub enum Method {
    /// No re-balancing: the baseline every other candidate is measured against.
    Plain,
    /// LDS weights of strength α: inverse to the Gaussian-smoothed (ks 5, σ 2 bins) histogram
    /// of `n_b^α` over Freedman–Diaconis bins of the training targets; α = 0.5 is the LDS
    /// paper's square-root-inverse weighting.
    Lds {
        /// Strength α in (0, 4].
        alpha: f64,
    },
    /// DenseWeight (Steininger et al. 2021) with its own strength α: weights
    /// max(1 − α·p′(y), 10⁻⁶) from the normalised KDE p′, mean 1.
    DenseWeight {
        /// Strength α > 0 (the paper's default 1).
        alpha: f64,
    },
    /// Balanced MSE (BMC) with a learnable noise σ (the MLP only).
    BalancedMse,
    /// MSE plus the ConR contrastive regulariser with LDS weights (the MLP only).
    Conr,
    /// Rank-N-Contrast pre-training, then a head on frozen features (the MLP only).
    Rnc,
    /// UVOTE's Laplace heads voting by their predicted scale (the MLP only).
    Uvote,
    /// VIR's variational latent and evidential head with LDS weights (the MLP only).
    Vir,
    /// A relevance-based resampler at a relevance threshold, on the training part only.
    Resample {
        /// RO, RU, GN, SMOTER, SMOGN or WERCS.
        method: Resampler,
        /// Rows with φ ≥ threshold are rare.
        threshold: f64,
    },
    /// λ·(the best re-weighted candidate's prediction) + (1 − λ)·(plain's), fitted post hoc
    /// from the two candidates' fold predictions: a continuous trade-off between them.
    Blend {
        /// The share λ in (0, 1) of the re-weighted model.
        lambda: f64,
    },
}

impl Method {
    /// The family name used by `--methods` and [`super::SelectConfig::families`].
    pub fn family(&self) -> &'static str {
        match self {
            Method::Plain => "plain",
            Method::Lds { .. } => "lds",
            Method::DenseWeight { .. } => "denseweight",
            Method::BalancedMse => "balanced-mse",
            Method::Conr => "conr",
            Method::Rnc => "rnc",
            Method::Uvote => "uvote",
            Method::Vir => "vir",
            Method::Resample { method, .. } => method.name(),
            Method::Blend { .. } => "blend",
        }
    }

    /// Its name in reports: the family and its strength, e.g. `lds-a0.5`, `smogn-t0.8`,
    /// `blend-0.5`.
    pub fn name(&self) -> String {
        match self {
            Method::Lds { alpha } | Method::DenseWeight { alpha } => {
                format!("{}-a{alpha}", self.family())
            }
            // WERCS draws by φ itself: its threshold only reports the rare share.
            Method::Resample {
                method: Resampler::Wercs,
                ..
            } => self.family().to_string(),
            Method::Resample { threshold, .. } => format!("{}-t{threshold}", self.family()),
            Method::Blend { lambda } => format!("blend-{lambda}"),
            _ => self.family().to_string(),
        }
    }

    /// Whether the method is a loss or head of a network, with no ridge counterpart.
    pub fn network_only(&self) -> bool {
        matches!(
            self,
            Method::BalancedMse | Method::Conr | Method::Rnc | Method::Uvote | Method::Vir
        )
    }

    /// Whether the method re-balances the training set (every method but plain and blends).
    pub fn rebalances(&self) -> bool {
        !matches!(self, Method::Plain | Method::Blend { .. })
    }
}

/// Every family name `--methods` accepts.
pub const FAMILIES: [&str; 15] = [
    "plain",
    "lds",
    "denseweight",
    "balanced-mse",
    "conr",
    "rnc",
    "uvote",
    "vir",
    "ro",
    "ru",
    "gn",
    "smoter",
    "smogn",
    "wercs",
    "blend",
];

/// What a fit needs besides the data: φ of the training part, the learners' settings, the seed.
#[derive(Debug, Clone)]
pub struct FitSettings<'a> {
    /// φ from the training part's targets.
    pub relevance: &'a Relevance,
    /// Ridge penalty λ on standardised features (default 1).
    pub ridge_lambda: f64,
    /// The MLP's settings.
    pub mlp: MlpConfig,
    /// Seed of the resampler's and the MLP's draws.
    pub seed: u64,
}

/// LDS weights of strength α for `y`, over `binning`, mean 1.
pub fn lds_weights(y: &[f64], binning: Binning, alpha: f64) -> Result<Vec<f64>> {
    let config = LdsConfig {
        reweight: Reweight::Power { alpha },
        ..LdsConfig::default()
    };
    Ok(LabelDensity::fit(y, binning, OutOfRange::Clip, &config)?.sample_weights(y)?)
}

/// Fits `learner` with `method` on `train` (the training part of a fold: resampled and weighted
/// here, from its own rows only) and predicts the rows of `test`. The test part's target column
/// is never read.
pub fn fit_predict(
    train: &Frame,
    test: &Frame,
    target: usize,
    learner: Learner,
    method: Method,
    s: &FitSettings,
) -> Result<Vec<f64>> {
    if learner == Learner::Ridge && method.network_only() {
        return Err(RecipeError::config(format!(
            "{} is a loss or head of a network: use it with the mlp learner",
            method.name()
        )));
    }
    let resampled;
    let fit_frame = match method {
        Method::Resample {
            method: r,
            threshold,
        } => {
            let config = ResampleConfig {
                threshold,
                seed: s.seed,
                ..ResampleConfig::new(r)
            };
            resampled = resample(train, target, s.relevance, &config)
                .map_err(|e| RecipeError::config(e.to_string()))?
                .0;
            &resampled
        }
        Method::Blend { .. } => {
            return Err(RecipeError::config(
                "a blend is formed from two fitted candidates' predictions, not fitted itself",
            ));
        }
        _ => train,
    };
    let y_fit = numbers(fit_frame, target)?;
    let binning = training_bins(y_fit)?;
    let weights: Option<Vec<f64>> = match method {
        Method::Lds { alpha } => Some(lds_weights(y_fit, binning, alpha)?),
        Method::DenseWeight { alpha } => {
            let w = DenseWeight::fit(
                y_fit,
                DenseWeightConfig {
                    alpha,
                    ..DenseWeightConfig::default()
                },
            )?
            .weights(y_fit);
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            Some(w.iter().map(|v| v / mean).collect())
        }
        _ => None,
    };
    // ConR's pushing and VIR's evidence take the LDS weights; UVOTE takes p^(−r_m) per head
    // from the unclipped smoothed density, row-major (n, M).
    let aux: Option<Vec<f64>> = match method {
        Method::Conr | Method::Vir => Some(lds_weights(y_fit, binning, 0.5)?),
        Method::Uvote => {
            let lds = LdsConfig {
                reweight: Reweight::Inverse {
                    clip_min: 0.0,
                    clip_max: f64::MAX,
                },
                ..LdsConfig::default()
            };
            let density = LabelDensity::fit(y_fit, binning, OutOfRange::Clip, &lds)?;
            let p: Vec<f64> = y_fit
                .iter()
                .enumerate()
                .map(|(i, &y)| {
                    let b = binning.bin(y, i, OutOfRange::Clip)?.unwrap_or(0);
                    Ok(density.effective_density[b])
                })
                .collect::<Result<_>>()?;
            let per_head = uvote_weights(&p, &UvoteConfig::default().exponents())?;
            Some(
                (0..p.len())
                    .flat_map(|i| per_head.iter().map(move |h| h[i]))
                    .collect(),
            )
        }
        _ => None,
    };
    let (x_fit_raw, p) = raw_features(fit_frame, target);
    let (x_test_raw, _) = raw_features(test, target);
    let design = Standardise::fit(&x_fit_raw, p);
    let x_fit = design.apply(&x_fit_raw);
    let x_test = design.apply(&x_test_raw);
    let n = y_fit.len() as f64;
    let y_mean = y_fit.iter().sum::<f64>() / n;
    let y_sd = (y_fit.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / n)
        .sqrt()
        .max(1e-12);
    let ys: Vec<f64> = y_fit.iter().map(|v| (v - y_mean) / y_sd).collect();
    let pred = match learner {
        Learner::Ridge => ridge(&x_fit, &ys, weights.as_deref(), &x_test, p, s.ridge_lambda)?,
        Learner::Mlp => mlp(
            &MlpFit {
                x: &x_fit,
                y: &ys,
                p,
                w: weights.as_deref(),
                aux: aux.as_deref(),
                // ConR's window: one training bin, in standardised units.
                window: binning.width / y_sd,
            },
            &x_test,
            method,
            s.seed,
            &s.mlp,
        )?,
    };
    Ok(pred.iter().map(|v| v * y_sd + y_mean).collect())
}

/// The numbers of a numeric column.
pub(crate) fn numbers(frame: &Frame, column: usize) -> Result<&[f64]> {
    frame.columns[column].numbers().ok_or_else(|| {
        RecipeError::config(format!(
            "the target column '{}' holds text: expected numbers",
            frame.names[column]
        ))
    })
}

/// The rows `idx` of `frame`, in that order (nominal levels kept).
pub fn take_rows(frame: &Frame, idx: &[usize]) -> Frame {
    let columns = frame
        .columns
        .iter()
        .map(|c| match c {
            Column::Numeric(v) => Column::Numeric(idx.iter().map(|&i| v[i]).collect()),
            Column::Nominal { levels, codes } => Column::Nominal {
                levels: levels.clone(),
                codes: idx.iter().map(|&i| codes[i]).collect(),
            },
        })
        .collect();
    Frame {
        names: frame.names.clone(),
        columns,
    }
}
