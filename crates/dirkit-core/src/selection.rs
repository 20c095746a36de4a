//! The figures and the rule of method selection by cross-validation, shared by the engine
//! (`dirkit-recipe`), the CLI and the Python package: per-fold [`Scores`] of a fit, their
//! [`Summary`] over the folds, and [`choose`], which picks the candidate with the best
//! [`Objective`] among those whose overall MAE is at most `max_all_loss` worse than the best
//! plain candidate's, and marks the Pareto front of overall MAE against the objective.

use serde::{Deserialize, Serialize};

use crate::binning::{Binning, OutOfRange};
use crate::error::{CoreError, Result};
use crate::metrics::RegressionReport;
use crate::relevance::{BinRule, Relevance, bin_width};
use crate::shots::ShotThresholds;

/// The bins of a training part: Freedman–Diaconis width (Scott's when the IQR is 0) from its
/// targets, aligned to multiples of the width.
pub fn training_bins(y: &[f64]) -> Result<Binning> {
    let width = bin_width(y, BinRule::FreedmanDiaconis)?.width;
    Binning::auto(y, width)
}

/// What the selection optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Few-shot MAE (lower is better): the error on the rare target values.
    FewMae,
    /// SERA, the squared error-relevance area (lower is better).
    Sera,
    /// Utility-based F1 at the relevance threshold (higher is better).
    F1,
    /// Balanced MAE, the mean of the per-bin MAEs (lower is better).
    BalancedMae,
}

impl Objective {
    /// Its name on the command line: `few-mae`, `sera`, `f1`, `balanced-mae`.
    pub fn name(self) -> &'static str {
        match self {
            Objective::FewMae => "few-mae",
            Objective::Sera => "sera",
            Objective::F1 => "f1",
            Objective::BalancedMae => "balanced-mae",
        }
    }

    /// Whether larger values are better (F1).
    pub fn maximise(self) -> bool {
        self == Objective::F1
    }

    /// The objective's figure in a set of scores.
    pub fn of(self, s: &Scores) -> Option<f64> {
        match self {
            Objective::FewMae => s.mae_few,
            Objective::Sera => s.sera,
            Objective::F1 => s.f1,
            Objective::BalancedMae => s.balanced_mae,
        }
    }

    /// The figure as a loss (F1 negated), so that lower is always better.
    pub fn loss(self, v: f64) -> f64 {
        if self.maximise() { -v } else { v }
    }
}

/// The figures of a selection, one field per figure: [`Scores`] (`T = f64`, one fit on one
/// validation part) or [`Summary`] (`T = `[`Stat`], mean ± std over the folds). `None` where a
/// group is empty (no few-shot row in the fold, say).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures<T> {
    /// MAE over every row, target units.
    pub mae_all: Option<T>,
    /// MAE of the many-shot rows (training bins with more than 100 rows).
    pub mae_many: Option<T>,
    /// MAE of the medium-shot rows.
    pub mae_medium: Option<T>,
    /// MAE of the few-shot rows (training bins with fewer than 20 rows).
    pub mae_few: Option<T>,
    /// RMSE over every row.
    pub rmse_all: Option<T>,
    /// RMSE of the many-shot rows.
    pub rmse_many: Option<T>,
    /// RMSE of the medium-shot rows.
    pub rmse_medium: Option<T>,
    /// RMSE of the few-shot rows.
    pub rmse_few: Option<T>,
    /// Mean over the validation bins of the per-bin MAE.
    pub balanced_mae: Option<T>,
    /// SERA over every row (step 0.001), target units squared.
    pub sera: Option<T>,
    /// Utility-based F1 at the relevance threshold.
    pub f1: Option<T>,
}

/// The figures of one fit on one validation part.
pub type Scores = Figures<f64>;
/// Mean ± std of every figure over the folds.
pub type Summary = Figures<Stat>;

impl<T> Default for Figures<T> {
    fn default() -> Self {
        Self::from_values(std::array::from_fn(|_| None))
    }
}

/// The number of figures.
const FIGURES: usize = 11;

impl<T: Copy> Figures<T> {
    fn values(&self) -> [Option<T>; FIGURES] {
        [
            self.mae_all,
            self.mae_many,
            self.mae_medium,
            self.mae_few,
            self.rmse_all,
            self.rmse_many,
            self.rmse_medium,
            self.rmse_few,
            self.balanced_mae,
            self.sera,
            self.f1,
        ]
    }
}

impl<T> Figures<T> {
    fn from_values(v: [Option<T>; FIGURES]) -> Self {
        let [
            mae_all,
            mae_many,
            mae_medium,
            mae_few,
            rmse_all,
            rmse_many,
            rmse_medium,
            rmse_few,
            balanced_mae,
            sera,
            f1,
        ] = v;
        Self {
            mae_all,
            mae_many,
            mae_medium,
            mae_few,
            rmse_all,
            rmse_many,
            rmse_medium,
            rmse_few,
            balanced_mae,
            sera,
            f1,
        }
    }
}

impl Scores {
    /// Scores `pred` against `truth`: shots from the training part's histogram (`train_y`,
    /// Freedman–Diaconis bins), SERA and F1 with φ of the training part at `threshold`.
    pub fn compute(
        pred: &[f64],
        truth: &[f64],
        train_y: &[f64],
        relevance: &Relevance,
        threshold: f64,
    ) -> Result<Self> {
        let binning = training_bins(train_y)?;
        let (counts, _) = binning.counts(train_y, OutOfRange::Clip)?;
        let r = RegressionReport::compute(
            pred,
            truth,
            &binning,
            &counts,
            ShotThresholds::default(),
            OutOfRange::Clip,
        )?
        .with_sera(
            pred,
            truth,
            &binning,
            &counts,
            OutOfRange::Clip,
            relevance,
            0.001,
        )?;
        let f1 = if truth.len() >= 2 {
            Some(crate::relevance::utility_scores(pred, truth, relevance, threshold, 1.0)?.f_score)
                .filter(|v| v.is_finite())
        } else {
            None
        };
        Ok(Self {
            mae_all: r.all.mae,
            mae_many: r.many.mae,
            mae_medium: r.medium.mae,
            mae_few: r.few.mae,
            rmse_all: r.all.rmse,
            rmse_many: r.many.rmse,
            rmse_medium: r.medium.rmse,
            rmse_few: r.few.rmse,
            balanced_mae: r.balanced_mae,
            sera: r.all.sera,
            f1,
        })
    }
}

/// Mean ± sample standard deviation of one figure over the folds where it is defined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean over the folds.
    pub mean: f64,
    /// Sample standard deviation over the folds (0 for one fold).
    pub std: f64,
    /// Folds where the figure is defined.
    pub n: usize,
}

impl Summary {
    /// Mean ± std of every figure over `folds`.
    pub fn of(folds: &[Scores]) -> Self {
        Self::from_values(std::array::from_fn(|k| {
            let v: Vec<f64> = folds.iter().filter_map(|s| s.values()[k]).collect();
            if v.is_empty() {
                return None;
            }
            let n = v.len();
            let mean = v.iter().sum::<f64>() / n as f64;
            let std = if n > 1 {
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
            } else {
                0.0
            };
            Some(Stat { mean, std, n })
        }))
    }

    /// The means as [`Scores`].
    pub fn means(&self) -> Scores {
        Scores::from_values(self.values().map(|x| x.map(|s| s.mean)))
    }
}

/// One candidate as [`choose`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Contender<'a> {
    /// Its name in the verdict.
    pub name: &'a str,
    /// Whether it is a plain (un-rebalanced) learner: the reference is the best of these.
    pub plain: bool,
    /// Its figures over the folds; `None` when it failed.
    pub summary: Option<&'a Summary>,
    /// Its per-fold figures, the folds in the same order for every candidate (empty when it
    /// failed): the paired differences against plain come from them.
    pub folds: &'a [Scores],
}

/// The outcome of [`choose`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Index of the reference: the plain candidate with the lowest overall MAE.
    pub reference: usize,
    /// Index of the chosen candidate (the reference when nothing beats it).
    pub chosen: usize,
    /// Whether the chosen candidate beats plain on the objective within the constraint.
    pub beats_plain: bool,
    /// The chosen candidate's overall-MAE change against the reference, relative (+0.01 = 1 %
    /// worse).
    pub all_change: f64,
    /// Per candidate: its overall MAE meets the constraint and its objective is defined.
    pub feasible: Vec<bool>,
    /// Per candidate: on the Pareto front of overall MAE against the objective.
    pub pareto: Vec<bool>,
    /// Per candidate: better than the reference on the objective by more than one standard
    /// error of their paired per-fold differences (a gain beyond fold-to-fold noise).
    pub clear_gain: Vec<bool>,
    /// A plain-language verdict: what was chosen, what it gains and costs.
    pub verdict: String,
}

/// Picks the winner: among the feasible candidates (overall MAE at most `max_all_loss` above
/// the reference plain's) whose objective beats the reference's by more than one standard error
/// of the paired per-fold differences, the one with the best mean objective; else the
/// reference, with a verdict that says so, names the best trade-off and a gain within noise.
/// Ties go to the earlier candidate. Errors when no plain candidate has figures, or when the
/// objective is undefined for the reference (e.g. no few-shot row in any fold), naming the fix.
pub fn choose(cands: &[Contender], objective: Objective, max_all_loss: f64) -> Result<Choice> {
    let o = objective;
    let mae = |i: usize| cands[i].summary.and_then(|s| s.mae_all).map(|m| m.mean);
    let obj = |i: usize| cands[i].summary.and_then(|s| o.of(&s.means()));
    let reference = (0..cands.len())
        .filter(|&i| cands[i].plain)
        .filter_map(|i| mae(i).map(|m| (i, m)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
        .ok_or(CoreError::Empty(
            "the plain learner could not be evaluated on any fold",
        ))?;
    let ref_mae = mae(reference).unwrap_or(f64::NAN);
    let Some(ref_obj) = obj(reference) else {
        return Err(CoreError::InvalidParameter {
            name: "objective",
            value: o.name().to_string(),
            expected: match o {
                Objective::FewMae => {
                    "an objective defined for plain: no validation fold holds a few-shot row \
                     (every training bin has 20 rows or more); choose sera, f1 or balanced-mae"
                }
                Objective::F1 => {
                    "an objective defined for plain: F1 is undefined without rare rows; choose \
                     few-mae, sera or balanced-mae"
                }
                _ => "an objective defined for plain: choose another objective",
            },
        });
    };
    let limit = ref_mae * (1.0 + max_all_loss);
    let feasible: Vec<bool> = (0..cands.len())
        .map(|i| mae(i).is_some_and(|m| m <= limit * (1.0 + 1e-12)) && obj(i).is_some())
        .collect();
    let points: Vec<Option<(f64, f64)>> = (0..cands.len())
        .map(|i| Some((mae(i)?, o.loss(obj(i)?))))
        .collect();
    let pareto: Vec<bool> = points
        .iter()
        .map(|p| {
            p.is_some_and(|(a, b)| {
                !points
                    .iter()
                    .flatten()
                    .any(|&(c, d)| c <= a && d <= b && (c < a || d < b))
            })
        })
        .collect();
    let ref_loss = o.loss(ref_obj);
    // Paired per-fold differences of the objective (as a loss) against the reference: the
    // mean and its standard error (0 with fewer than two paired folds).
    let paired = |i: usize| -> Option<(f64, f64)> {
        let d: Vec<f64> = cands[i]
            .folds
            .iter()
            .zip(cands[reference].folds)
            .filter_map(|(a, r)| Some(o.loss(o.of(a)?) - o.loss(o.of(r)?)))
            .collect();
        let n = d.len() as f64;
        if d.is_empty() {
            return None;
        }
        let mean = d.iter().sum::<f64>() / n;
        let se = if d.len() > 1 {
            (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
        } else {
            0.0
        };
        Some((mean, se))
    };
    let clear_gain: Vec<bool> = (0..cands.len())
        .map(|i| i != reference && paired(i).is_some_and(|(mean, se)| mean < -se))
        .collect();
    let by_objective = |keep: &dyn Fn(usize) -> bool| {
        (0..cands.len())
            .filter(|&i| keep(i))
            .filter_map(|i| obj(i).map(|v| (i, o.loss(v))))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
    };
    let best = by_objective(&|i| feasible[i] && clear_gain[i]);
    let beats_plain = best.is_some();
    let chosen = best.map_or(reference, |(i, _)| i);
    let all_change = mae(chosen).map_or(0.0, |m| m / ref_mae - 1.0);
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let verdict = if beats_plain {
        format!(
            "{} beats plain ({}) on {}: {} against {}, with overall MAE {} against {} ({:+.1} %, \
             limit +{:.1} %)",
            cands[chosen].name,
            cands[reference].name,
            o.name(),
            fmt(obj(chosen)),
            fmt(Some(ref_obj)),
            fmt(mae(chosen)),
            fmt(Some(ref_mae)),
            100.0 * all_change,
            100.0 * max_all_loss
        )
    } else {
        let mut v = format!(
            "no candidate beats plain on {} within +{:.1} % overall MAE: use plain ({})",
            o.name(),
            100.0 * max_all_loss,
            cands[reference].name
        );
        let noise = by_objective(&|i| feasible[i] && i != reference)
            .filter(|&(_, l)| l < ref_loss)
            .map(|(i, _)| i);
        if let Some(i) = noise
            && let Some((_, se)) = paired(i)
        {
            v.push_str(&format!(
                "; {} is ahead on {} ({} against {}) by less than one standard error of the \
                 paired fold differences ({se:.4}): within noise",
                cands[i].name,
                o.name(),
                fmt(obj(i)),
                fmt(Some(ref_obj)),
            ));
        }
        let tradeoff = by_objective(&|i| !cands[i].plain);
        if let Some((i, l)) = tradeoff
            && l < ref_loss
            && Some(i) != noise
        {
            v.push_str(&format!(
                "; the best on {} is {} ({} against {}) at overall MAE {} ({:+.1} %)",
                o.name(),
                cands[i].name,
                fmt(obj(i)),
                fmt(Some(ref_obj)),
                fmt(mae(i)),
                100.0 * (mae(i).unwrap_or(f64::NAN) / ref_mae - 1.0)
            ));
        }
        v
    };
    Ok(Choice {
        reference,
        chosen,
        beats_plain,
        all_change,
        feasible,
        pareto,
        clear_gain,
        verdict,
    })
}
