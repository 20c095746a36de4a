//! Method selection by cross-validation: which DIR method, at what strength, for *this* table,
//! and what it costs on the common values.
//!
//! [`select`] evaluates every candidate (a [`Learner`] with a [`Method`]) on relevance-
//! stratified K-fold splits ([`dirkit_core::relevance_folds`]). Everything a method learns from
//! data (φ, the bins, the weights, the resampled rows, the feature standardisation) is fitted on
//! the training part of each fold only, never on its validation part. Per fold it records MAE
//! and RMSE overall and by shot, balanced MAE, SERA and the utility-based F1; over the folds,
//! mean ± std. The user's [`Objective`] picks the winner among the candidates whose overall MAE
//! is at most `max_all_loss` worse than the best plain learner's; if none beats plain on the
//! objective, plain is chosen and [`Selection::beats_plain`] says so. The Pareto front of overall
//! MAE against the objective shows the trade-off.
//!
//! [`holdout`] first keeps a stratified test part aside, selects on the rest, then reports the
//! chosen configuration, plain and always-LDS on the untouched test part.

mod learner;
mod method;

pub use learner::MlpConfig;
pub use method::{FAMILIES, FitSettings, Learner, Method, fit_predict, lds_weights, take_rows};

use dirkit_core::relevance::{ControlPoint, Relevance, RelevanceConfig};
use dirkit_core::selection::{Contender, choose};
pub use dirkit_core::selection::{Objective, Scores, Stat, Summary, training_bins};
use dirkit_core::{FoldConfig, SplitMix64};
use dirkit_tabular::{Frame, Method as Resampler};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{RecipeError, Result};

/// Settings of [`select`]. Defaults: both learners, every family, 5 folds × 1 repeat, rare at
/// φ ≥ 0.8, few-shot MAE, at most 2 % worse overall MAE than plain, seed 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectConfig {
    /// The learners to try.
    pub learners: Vec<Learner>,
    /// The method families to try (names from [`FAMILIES`]); plain is always included.
    pub families: Vec<String>,
    /// The folds: splits, repeats, the relevance threshold that stratifies them and the seed.
    pub folds: FoldConfig,
    /// How φ is built from each training part's targets (the box plot).
    pub relevance: RelevanceConfig,
    /// Fixed control points of φ instead of the box plot (the same φ for every part).
    pub control: Option<Vec<ControlPoint>>,
    /// LDS strengths α (default 0.25, 0.5, 0.75, 1).
    pub lds_alphas: Vec<f64>,
    /// DenseWeight strengths α (default 0.5, 1, 1.5, 2).
    pub denseweight_alphas: Vec<f64>,
    /// Relevance thresholds of the resamplers (default 0.5, 0.8).
    pub resample_thresholds: Vec<f64>,
    /// Shares λ of the re-weighted model in the blends (default 0.25, 0.5, 0.75); the largest
    /// λ in steps of 0.05 within the overall-MAE limit is added.
    pub blend_lambdas: Vec<f64>,
    /// What to optimise.
    pub objective: Objective,
    /// Largest accepted relative loss in overall MAE against the best plain learner (0.02 = 2 %).
    pub max_all_loss: f64,
    /// Ridge penalty on standardised features (default 1).
    pub ridge_lambda: f64,
    /// The MLP's settings.
    pub mlp: MlpConfig,
}

impl Default for SelectConfig {
    fn default() -> Self {
        Self {
            learners: vec![Learner::Ridge, Learner::Mlp],
            families: FAMILIES.iter().map(|s| s.to_string()).collect(),
            folds: FoldConfig::default(),
            relevance: RelevanceConfig::default(),
            control: None,
            lds_alphas: vec![0.25, 0.5, 0.75, 1.0],
            denseweight_alphas: vec![0.5, 1.0, 1.5, 2.0],
            resample_thresholds: vec![0.5, 0.8],
            blend_lambdas: vec![0.25, 0.5, 0.75],
            objective: Objective::FewMae,
            max_all_loss: 0.02,
            ridge_lambda: 1.0,
            mlp: MlpConfig::default(),
        }
    }
}

impl SelectConfig {
    /// Checks the settings before any work starts.
    pub fn validate(&self) -> Result<()> {
        if self.learners.is_empty() {
            return Err(RecipeError::config("no learner to try"));
        }
        for f in &self.families {
            if !FAMILIES.contains(&f.as_str()) {
                return Err(RecipeError::config(format!(
                    "unknown method family '{f}': expected one of {}",
                    FAMILIES.join(", ")
                )));
            }
        }
        if !(self.max_all_loss.is_finite() && self.max_all_loss >= 0.0) {
            return Err(RecipeError::config(format!(
                "max_all_loss = {}: expected a fraction ≥ 0 (0.02 = 2 % worse overall MAE)",
                self.max_all_loss
            )));
        }
        let check = |what: &str, v: &[f64], ok: &dyn Fn(f64) -> bool, expected: &str| match v
            .iter()
            .find(|&&x| !ok(x))
        {
            Some(x) => Err(RecipeError::config(format!(
                "{what} {x}: expected {expected}"
            ))),
            None => Ok(()),
        };
        check(
            "LDS α",
            &self.lds_alphas,
            &|a| a > 0.0 && a <= 4.0,
            "a strength in (0, 4]",
        )?;
        check(
            "DenseWeight α",
            &self.denseweight_alphas,
            &|a| a > 0.0 && a.is_finite(),
            "a positive strength",
        )?;
        check(
            "resampling threshold",
            &self.resample_thresholds,
            &|t| t > 0.0 && t <= 1.0,
            "a relevance in (0, 1]",
        )?;
        check(
            "blend λ",
            &self.blend_lambdas,
            &|l| l > 0.0 && l < 1.0,
            "a share in (0, 1)",
        )?;
        if self.mlp.epochs == 0 || self.mlp.hidden == 0 || self.mlp.batch == 0 {
            return Err(RecipeError::config(
                "the MLP needs at least one epoch, hidden unit and row per batch",
            ));
        }
        if !(self.ridge_lambda.is_finite() && self.ridge_lambda > 0.0) {
            return Err(RecipeError::config(format!(
                "ridge λ = {}: expected a positive number",
                self.ridge_lambda
            )));
        }
        Ok(())
    }

    fn has(&self, family: &str) -> bool {
        family == "plain" || self.families.iter().any(|f| f == family)
    }

    /// The fitted candidates (blends are formed afterwards), learner by learner, in report order.
    pub fn candidates(&self) -> Vec<(Learner, Method)> {
        let mut out = Vec::new();
        for &learner in &self.learners {
            let mut push = |m: Method| {
                if self.has(m.family()) && !(learner == Learner::Ridge && m.network_only()) {
                    out.push((learner, m));
                }
            };
            push(Method::Plain);
            for &alpha in &self.lds_alphas {
                push(Method::Lds { alpha });
            }
            for &alpha in &self.denseweight_alphas {
                push(Method::DenseWeight { alpha });
            }
            for m in [
                Method::BalancedMse,
                Method::Conr,
                Method::Rnc,
                Method::Uvote,
                Method::Vir,
            ] {
                push(m);
            }
            for r in [
                Resampler::Ro,
                Resampler::Ru,
                Resampler::Gn,
                Resampler::Smoter,
                Resampler::Smogn,
                Resampler::Wercs,
            ] {
                let thresholds = if r == Resampler::Wercs {
                    &self.resample_thresholds[..self.resample_thresholds.len().min(1)]
                } else {
                    &self.resample_thresholds[..]
                };
                for &threshold in thresholds {
                    push(Method::Resample {
                        method: r,
                        threshold,
                    });
                }
            }
        }
        out
    }
}

/// One candidate's cross-validated figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateResult {
    /// `learner/method`, e.g. `ridge/lds-a0.5`.
    pub name: String,
    /// The learner.
    pub learner: Learner,
    /// The method.
    pub method: Method,
    /// For a blend, the re-weighted candidate it mixes with plain.
    pub blend_of: Option<String>,
    /// Per-fold figures, repeat by repeat.
    pub folds: Vec<Scores>,
    /// Mean ± std over the folds.
    pub summary: Summary,
    /// Why the candidate could not be evaluated (e.g. a resampler found nothing rare in a
    /// fold); such a candidate is never chosen.
    pub error: Option<String>,
    /// Whether its overall MAE meets the constraint.
    pub feasible: bool,
    /// Whether it is on the Pareto front of overall MAE against the objective.
    pub pareto: bool,
    /// Whether it beats plain on the objective by more than one standard error of the paired
    /// per-fold differences.
    pub clear_gain: bool,
}

impl CandidateResult {
    /// The mean objective value, if defined.
    pub fn objective(&self, o: Objective) -> Option<f64> {
        o.of(&self.summary.means())
    }
}

/// The result of [`select`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Every candidate, in report order (learner, then method; blends last).
    pub candidates: Vec<CandidateResult>,
    /// Index of the reference: the plain learner with the lowest overall MAE.
    pub reference: usize,
    /// Index of the chosen candidate (the reference when nothing beats it).
    pub chosen: usize,
    /// Whether the chosen candidate beats plain on the objective within the constraint.
    pub beats_plain: bool,
    /// The chosen candidate's overall-MAE change against the reference, relative (+0.01 = 1 %
    /// worse).
    pub all_change: f64,
    /// A plain-language verdict: what was chosen, what it gains and costs.
    pub verdict: String,
    /// The settings of the run.
    pub config: SelectConfig,
    /// Rows the folds were cut from.
    pub rows: usize,
}

impl Selection {
    /// The candidates as points of the selection figure ([`dirkit_plot::write_pareto_plot`]),
    /// and the overall-MAE limit (the reference plain's mean times 1 + `max_all_loss`).
    pub fn pareto_points(&self) -> (Vec<dirkit_plot::ParetoPoint>, f64) {
        let o = self.config.objective;
        let points = self
            .candidates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                Some(dirkit_plot::ParetoPoint {
                    name: c.name.clone(),
                    mae_all: c.summary.mae_all?.mean,
                    mae_many: c.summary.mae_many.map(|m| m.mean),
                    objective: c.objective(o)?,
                    front: c.pareto,
                    plain: i == self.reference,
                    chosen: i == self.chosen,
                })
            })
            .collect();
        let limit = self.candidates[self.reference]
            .summary
            .mae_all
            .map_or(f64::NAN, |m| m.mean * (1.0 + self.config.max_all_loss));
        (points, limit)
    }
}

/// One finished (candidate, fold) evaluation.
struct Job {
    preds: Vec<f64>,
    scores: Scores,
}

/// Per-fold data shared by the candidates: the two parts, φ of the training part.
struct FoldData {
    train: Frame,
    valid: Frame,
    y_train: Vec<f64>,
    y_valid: Vec<f64>,
    relevance: Relevance,
}

/// φ of a training part: from its box plot, or the configured control points.
fn relevance_of(config: &SelectConfig, y: &[f64]) -> Result<Relevance> {
    Ok(match &config.control {
        Some(points) => Relevance::from_control_points(points)?,
        None => Relevance::from_targets(y, &config.relevance)?,
    })
}

/// The seed of the fits on fold `f` (the resamplers' and the MLP's draws) in a run seeded with
/// `seed`, so that one fold's figures can be recomputed alone.
pub fn fold_seed(seed: u64, f: usize) -> u64 {
    SplitMix64::new(seed ^ 0x5e1e_c7ed ^ ((f as u64) << 20)).next_u64()
}

/// Checks the table: a numeric, non-constant target and at least one feature column.
fn check_table(frame: &Frame, target: usize) -> Result<&[f64]> {
    let y = method::numbers(frame, target)?;
    if frame.columns.len() < 2 {
        return Err(RecipeError::config(format!(
            "the table has only its target '{}': selection needs feature columns to learn from",
            frame.names[target]
        )));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(RecipeError::config(format!(
            "the target '{}' is {} in row {}: expected finite numbers",
            frame.names[target],
            y[i],
            i + 1
        )));
    }
    if y.iter().all(|&v| v == y[0]) {
        return Err(RecipeError::config(format!(
            "the target '{}' is constant (every row is {}): there is nothing to predict",
            frame.names[target], y[0]
        )));
    }
    Ok(y)
}

/// Cross-validates every candidate of `config` on `frame` (target column `target`) and chooses
/// one; see the module docs. `progress(done, total)` is called after each (candidate, fold)
/// fit, from any thread. The candidates run in parallel; the result is the same for a seed at
/// every thread count.
pub fn select(
    frame: &Frame,
    target: usize,
    config: &SelectConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Selection> {
    config.validate()?;
    let y = check_table(frame, target)?;
    let phi_all = relevance_of(config, y)?.phi_all(y);
    let folds = dirkit_core::relevance_folds(y, &phi_all, &config.folds)?;
    let data: Vec<FoldData> = folds
        .iter()
        .map(|f| {
            let train = take_rows(frame, &f.train);
            let valid = take_rows(frame, &f.test);
            let y_train: Vec<f64> = f.train.iter().map(|&i| y[i]).collect();
            let y_valid: Vec<f64> = f.test.iter().map(|&i| y[i]).collect();
            let relevance = relevance_of(config, &y_train)?;
            Ok(FoldData {
                train,
                valid,
                y_train,
                y_valid,
                relevance,
            })
        })
        .collect::<Result<_>>()?;
    let cands = config.candidates();
    let total = cands.len() * data.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let jobs: Vec<Result<Job>> = (0..total)
        .into_par_iter()
        .map(|j| {
            let (learner, method) = cands[j / data.len()];
            let f = j % data.len();
            let d = &data[f];
            let settings = FitSettings {
                relevance: &d.relevance,
                ridge_lambda: config.ridge_lambda,
                mlp: config.mlp,
                seed: fold_seed(config.folds.seed, f),
            };
            let out = fit_predict(&d.train, &d.valid, target, learner, method, &settings).and_then(
                |preds| {
                    let scores = Scores::compute(
                        &preds,
                        &d.y_valid,
                        &d.y_train,
                        &d.relevance,
                        config.folds.threshold,
                    )?;
                    Ok(Job { preds, scores })
                },
            );
            let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(k, total);
            out
        })
        .collect();
    let mut jobs = jobs.into_iter();
    let mut results: Vec<CandidateResult> = Vec::new();
    let mut preds: Vec<Option<Vec<Vec<f64>>>> = Vec::new();
    for &(learner, method) in &cands {
        let mut fold_scores = Vec::new();
        let mut fold_preds = Vec::new();
        let mut error = None;
        for f in 0..data.len() {
            match jobs.next() {
                Some(Ok(job)) => {
                    fold_scores.push(job.scores);
                    fold_preds.push(job.preds);
                }
                Some(Err(e)) => {
                    error.get_or_insert_with(|| format!("fold {}: {e}", f + 1));
                }
                None => {}
            }
        }
        if error.is_some() {
            fold_scores.clear();
        }
        preds.push(error.is_none().then_some(fold_preds));
        results.push(CandidateResult {
            name: format!("{}/{}", learner.name(), method.name()),
            learner,
            method,
            blend_of: None,
            summary: Summary::of(&fold_scores),
            folds: fold_scores,
            error,
            feasible: false,
            pareto: false,
            clear_gain: false,
        });
    }
    if config.has("blend") {
        add_blends(&mut results, &preds, &data, config)?;
    }
    let contenders: Vec<Contender> = results
        .iter()
        .map(|r| Contender {
            name: &r.name,
            plain: r.method == Method::Plain,
            summary: r.error.is_none().then_some(&r.summary),
            folds: &r.folds,
        })
        .collect();
    let c = choose(&contenders, config.objective, config.max_all_loss)
        .map_err(|e| RecipeError::config(e.to_string()))?;
    for (i, r) in results.iter_mut().enumerate() {
        r.feasible = c.feasible[i];
        r.pareto = c.pareto[i];
        r.clear_gain = c.clear_gain[i];
    }
    Ok(Selection {
        candidates: results,
        reference: c.reference,
        chosen: c.chosen,
        beats_plain: c.beats_plain,
        all_change: c.all_change,
        verdict: c.verdict,
        config: config.clone(),
        rows: y.len(),
    })
}

/// Adds, per learner, the blends of plain with the best re-weighted candidate on the objective.
fn add_blends(
    results: &mut Vec<CandidateResult>,
    preds: &[Option<Vec<Vec<f64>>>],
    data: &[FoldData],
    config: &SelectConfig,
) -> Result<()> {
    let o = config.objective;
    for &learner in &config.learners {
        let plain = results
            .iter()
            .position(|r| r.learner == learner && r.method == Method::Plain);
        let best = (0..results.len())
            .filter(|&i| results[i].learner == learner && results[i].method.rebalances())
            .filter(|&i| preds[i].is_some())
            .filter_map(|i| results[i].objective(o).map(|v| (i, o.loss(v))))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let (Some(p), Some((b, _))) = (plain, best) else {
            continue;
        };
        let (Some(pp), Some(bp)) = (&preds[p], &preds[b]) else {
            continue;
        };
        let blend = |lambda: f64| -> Result<Vec<Scores>> {
            data.iter()
                .enumerate()
                .map(|(f, d)| {
                    let mixed: Vec<f64> = pp[f]
                        .iter()
                        .zip(&bp[f])
                        .map(|(a, b)| (1.0 - lambda) * a + lambda * b)
                        .collect();
                    Scores::compute(
                        &mixed,
                        &d.y_valid,
                        &d.y_train,
                        &d.relevance,
                        config.folds.threshold,
                    )
                })
                .collect::<dirkit_core::Result<_>>()
                .map_err(RecipeError::from)
        };
        // The largest share λ (in steps of 0.05) that keeps the overall MAE within the limit
        // of this learner's plain: the most re-balancing the constraint affords.
        let mae = |s: &[Scores]| Summary::of(s).mae_all.map(|m| m.mean);
        let limit = results[p]
            .summary
            .mae_all
            .map_or(f64::NAN, |m| m.mean * (1.0 + config.max_all_loss));
        let mut tuned = None;
        for k in (1..20).rev() {
            let lambda = f64::from(k) * 0.05;
            let lambda = (lambda * 100.0).round() / 100.0;
            let folds = blend(lambda)?;
            if mae(&folds).is_some_and(|m| m <= limit) {
                tuned = Some(lambda);
                break;
            }
        }
        let mut lambdas = config.blend_lambdas.clone();
        if let Some(t) = tuned
            && !lambdas.contains(&t)
        {
            lambdas.push(t);
        }
        for lambda in lambdas {
            let folds = blend(lambda)?;
            let method = Method::Blend { lambda };
            results.push(CandidateResult {
                name: format!(
                    "{}/{}({})",
                    learner.name(),
                    method.name(),
                    results[b].method.name()
                ),
                learner,
                method,
                blend_of: Some(results[b].name.clone()),
                summary: Summary::of(&folds),
                folds,
                error: None,
                feasible: false,
                pareto: false,
                clear_gain: false,
            });
        }
    }
    Ok(())
}

/// Held-out figures of one configuration: overall and few-shot MAE, SERA (and the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutScores {
    /// `learner/method`.
    pub name: String,
    /// Its figures on the test part.
    pub scores: Scores,
}

/// The result of [`holdout`]: the selection on the training part and the test-part figures of
/// the chosen configuration, plain and always-LDS (α = 0.5, square-root-inverse weights) with
/// the chosen learner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// The cross-validated selection on the training part.
    pub selection: Selection,
    /// Rows of the training part.
    pub train_rows: usize,
    /// Rows of the test part.
    pub test_rows: usize,
    /// The chosen configuration on the test part.
    pub chosen: HoldoutScores,
    /// The reference plain learner on the test part.
    pub plain: HoldoutScores,
    /// LDS (α 0.5) with the chosen learner on the test part.
    pub lds: HoldoutScores,
}

impl Holdout {
    /// The three held-out rows with their labels: chosen, plain, always LDS.
    pub fn rows(&self) -> [(&'static str, &HoldoutScores); 3] {
        [
            ("chosen", &self.chosen),
            ("plain", &self.plain),
            ("always LDS", &self.lds),
        ]
    }
}

/// The fold number whose seed the held-out refits use (beyond any real fold).
const HOLDOUT_FITS: usize = usize::MAX >> 12;

/// Keeps a relevance-stratified `test_size` of the rows aside ([`dirkit_core::relevance_holdout`]),
/// runs [`select`] on the rest, refits the chosen configuration, plain and always-LDS on the
/// whole training part and scores them on the untouched test part.
pub fn holdout(
    frame: &Frame,
    target: usize,
    config: &SelectConfig,
    test_size: f64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Holdout> {
    config.validate()?;
    let y = check_table(frame, target)?;
    let phi = relevance_of(config, y)?.phi_all(y);
    let split = dirkit_core::relevance_holdout(
        y,
        &phi,
        test_size,
        config.folds.threshold,
        config.folds.seed,
    )?;
    let train = take_rows(frame, &split.train);
    let test = take_rows(frame, &split.test);
    let selection = select(&train, target, config, progress)?;
    let y_train = method::numbers(&train, target)?.to_vec();
    let y_test = method::numbers(&test, target)?.to_vec();
    let relevance = relevance_of(config, &y_train)?;
    let settings = FitSettings {
        relevance: &relevance,
        ridge_lambda: config.ridge_lambda,
        mlp: config.mlp,
        seed: fold_seed(config.folds.seed, HOLDOUT_FITS),
    };
    let fit = |learner: Learner, method: Method| -> Result<Vec<f64>> {
        fit_predict(&train, &test, target, learner, method, &settings)
    };
    let score = |name: String, pred: Vec<f64>| -> Result<HoldoutScores> {
        Ok(HoldoutScores {
            name,
            scores: Scores::compute(&pred, &y_test, &y_train, &relevance, config.folds.threshold)?,
        })
    };
    let chosen = &selection.candidates[selection.chosen];
    let reference = &selection.candidates[selection.reference];
    let plain_pred = fit(reference.learner, Method::Plain)?;
    let chosen_pred = match chosen.method {
        Method::Plain => plain_pred.clone(),
        Method::Blend { lambda } => {
            let partner = selection
                .candidates
                .iter()
                .find(|c| Some(&c.name) == chosen.blend_of.as_ref())
                .ok_or_else(|| RecipeError::config("the blend's partner is missing"))?;
            let a = if chosen.learner == reference.learner {
                plain_pred.clone()
            } else {
                fit(chosen.learner, Method::Plain)?
            };
            let b = fit(partner.learner, partner.method)?;
            a.iter()
                .zip(&b)
                .map(|(a, b)| (1.0 - lambda) * a + lambda * b)
                .collect()
        }
        m => fit(chosen.learner, m)?,
    };
    let lds_pred = fit(chosen.learner, Method::Lds { alpha: 0.5 })?;
    Ok(Holdout {
        chosen: score(chosen.name.clone(), chosen_pred)?,
        plain: score(reference.name.clone(), plain_pred)?,
        lds: score(format!("{}/lds-a0.5", chosen.learner.name()), lds_pred)?,
        train_rows: train.n_rows(),
        test_rows: test.n_rows(),
        selection,
    })
}
