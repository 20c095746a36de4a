//! The selection engine: no leak from the validation part, the same choice at every thread
//! count, the constraint and the Pareto front as documented.

use dirkit_core::relevance::{Relevance, RelevanceConfig};
use dirkit_core::{FoldConfig, SplitMix64, relevance_folds};
use dirkit_recipe::select::{
    FitSettings, Learner, Method, MlpConfig, Scores, SelectConfig, fit_predict, fold_seed, holdout,
    select, take_rows,
};
use dirkit_tabular::{Column, Frame, Method as Resampler};

/// A long-tailed regression table: y = 10 + 3·x1 + x2² + noise with a heavy right tail, a
/// noise column and a nominal column that shifts y.
fn table(n: usize, seed: u64) -> Frame {
    let mut rng = SplitMix64::new(seed);
    let (mut x1, mut x2, mut x3, mut codes, mut y) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let a = rng.normal();
        let b = rng.normal();
        let c = rng.below(3) as u32;
        let tail = if rng.uniform() < 0.08 {
            8.0 + 6.0 * rng.uniform()
        } else {
            0.0
        };
        x1.push(a + 0.3 * tail);
        x2.push(b);
        x3.push(rng.normal());
        codes.push(c);
        y.push(10.0 + 3.0 * a + b * b + f64::from(c) + tail * 2.0 + 0.5 * rng.normal());
    }
    Frame {
        names: vec![
            "x1".into(),
            "x2".into(),
            "noise".into(),
            "group".into(),
            "y".into(),
        ],
        columns: vec![
            Column::Numeric(x1),
            Column::Numeric(x2),
            Column::Numeric(x3),
            Column::Nominal {
                levels: vec!["a".into(), "b".into(), "c".into()],
                codes,
            },
            Column::Numeric(y),
        ],
    }
}

const TARGET: usize = 4;

fn quick() -> SelectConfig {
    SelectConfig {
        mlp: MlpConfig {
            epochs: 4,
            ..MlpConfig::default()
        },
        ..SelectConfig::default()
    }
}

fn methods() -> Vec<(Learner, Method)> {
    let mut v: Vec<(Learner, Method)> = SelectConfig::default()
        .candidates()
        .into_iter()
        .filter(|(l, _)| *l == Learner::Ridge)
        .collect();
    for m in [
        Method::Plain,
        Method::Lds { alpha: 0.5 },
        Method::BalancedMse,
        Method::Conr,
        Method::Rnc,
        Method::Uvote,
        Method::Vir,
        Method::Resample {
            method: Resampler::Smogn,
            threshold: 0.8,
        },
    ] {
        v.push((Learner::Mlp, m));
    }
    v
}

/// The validation part's targets are never read: replacing them changes no prediction; and
/// a prediction depends on its own row and the training part only (changing other validation
/// rows' features changes nothing), so nothing is fitted on the validation part.
#[test]
fn no_leak_from_the_validation_part() {
    let frame = table(240, 1);
    let train = take_rows(&frame, &(0..180).collect::<Vec<_>>());
    let valid = take_rows(&frame, &(180..240).collect::<Vec<_>>());
    let mut wild = valid.clone();
    if let Column::Numeric(y) = &mut wild.columns[TARGET] {
        for (i, v) in y.iter_mut().enumerate() {
            *v = if i % 2 == 0 { 1e6 } else { -1e6 };
        }
    }
    let mut shifted = valid.clone();
    if let Column::Numeric(x) = &mut shifted.columns[0] {
        for v in x.iter_mut().skip(30) {
            *v = *v * 50.0 + 1e3;
        }
    }
    let y_train = train.columns[TARGET].numbers().unwrap().to_vec();
    let relevance = Relevance::from_targets(&y_train, &RelevanceConfig::default()).unwrap();
    let settings = FitSettings {
        relevance: &relevance,
        ridge_lambda: 1.0,
        mlp: MlpConfig {
            epochs: 3,
            ..MlpConfig::default()
        },
        seed: 7,
    };
    for (learner, method) in methods() {
        let base = fit_predict(&train, &valid, TARGET, learner, method, &settings)
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        let w = fit_predict(&train, &wild, TARGET, learner, method, &settings).unwrap();
        assert_eq!(
            base, w,
            "{learner:?} {method:?} read the validation targets"
        );
        let s = fit_predict(&train, &shifted, TARGET, learner, method, &settings).unwrap();
        assert_eq!(
            base[..30],
            s[..30],
            "{learner:?} {method:?}: other validation rows changed a prediction"
        );
    }
}

/// Every fold figure of `select` is the one computed from that fold's training part alone
/// (φ, bins, weights and resampling fitted on it), so no statistic of the whole table leaks in.
#[test]
fn select_scores_come_from_the_training_part_only() {
    let frame = table(200, 2);
    let config = SelectConfig {
        learners: vec![Learner::Ridge],
        families: vec!["lds".into(), "smoter".into(), "wercs".into()],
        lds_alphas: vec![0.5],
        resample_thresholds: vec![0.8],
        ..quick()
    };
    let s = select(&frame, TARGET, &config, &|_, _| {}).unwrap();
    let y = frame.columns[TARGET].numbers().unwrap();
    let phi = Relevance::from_targets(y, &config.relevance)
        .unwrap()
        .phi_all(y);
    let folds = relevance_folds(y, &phi, &config.folds).unwrap();
    for c in &s.candidates {
        assert!(c.error.is_none(), "{}: {:?}", c.name, c.error);
        for (f, fold) in folds.iter().enumerate() {
            let train = take_rows(&frame, &fold.train);
            let valid = take_rows(&frame, &fold.test);
            let y_train: Vec<f64> = fold.train.iter().map(|&i| y[i]).collect();
            let y_valid: Vec<f64> = fold.test.iter().map(|&i| y[i]).collect();
            let rel = Relevance::from_targets(&y_train, &config.relevance).unwrap();
            if let Method::Blend { .. } = c.method {
                continue;
            }
            let settings = FitSettings {
                relevance: &rel,
                ridge_lambda: 1.0,
                mlp: config.mlp,
                seed: fold_seed(config.folds.seed, f),
            };
            let pred = fit_predict(&train, &valid, TARGET, c.learner, c.method, &settings).unwrap();
            let want =
                Scores::compute(&pred, &y_valid, &y_train, &rel, config.folds.threshold).unwrap();
            assert_eq!(c.folds[f], want, "{} fold {f}", c.name);
        }
    }
}

#[test]
fn the_choice_is_the_same_at_one_and_two_threads() {
    let frame = table(160, 3);
    let config = SelectConfig {
        learners: vec![Learner::Ridge, Learner::Mlp],
        families: vec![
            "lds".into(),
            "denseweight".into(),
            "smogn".into(),
            "gn".into(),
            "balanced-mse".into(),
            "blend".into(),
        ],
        lds_alphas: vec![0.5, 1.0],
        denseweight_alphas: vec![1.0],
        resample_thresholds: vec![0.8],
        folds: FoldConfig {
            n_splits: 3,
            n_repeats: 2,
            ..FoldConfig::default()
        },
        ..quick()
    };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| select(&frame, TARGET, &config, &|_, _| {}).unwrap())
    };
    let one = run(1);
    let two = run(2);
    assert_eq!(one, two);
    assert!(one.candidates.len() >= config.candidates().len() + 2 * 3);
}

#[test]
fn constraint_pareto_and_verdict() {
    let frame = table(300, 4);
    let config = SelectConfig {
        learners: vec![Learner::Ridge],
        ..quick()
    };
    let s = select(&frame, TARGET, &config, &|_, _| {}).unwrap();
    let o = config.objective;
    let mae = |i: usize| s.candidates[i].summary.mae_all.unwrap().mean;
    let obj = |i: usize| s.candidates[i].objective(o).unwrap();
    assert_eq!(s.candidates[s.reference].method, Method::Plain);
    assert!(mae(s.chosen) <= mae(s.reference) * (1.0 + config.max_all_loss) + 1e-12);
    if s.beats_plain {
        assert!(obj(s.chosen) < obj(s.reference));
        assert!(s.candidates[s.chosen].clear_gain);
        // No feasible candidate with a clear gain over plain has a better objective.
        for (i, c) in s.candidates.iter().enumerate() {
            if c.feasible && c.clear_gain {
                assert!(obj(i) >= obj(s.chosen), "{} beats the choice", c.name);
            }
        }
    } else {
        assert_eq!(s.chosen, s.reference);
    }
    // The front: no candidate dominates a front member; every non-member is dominated.
    let ok: Vec<usize> = (0..s.candidates.len())
        .filter(|&i| s.candidates[i].error.is_none())
        .collect();
    for &i in &ok {
        let dominated = ok
            .iter()
            .any(|&j| mae(j) <= mae(i) && obj(j) <= obj(i) && (mae(j) < mae(i) || obj(j) < obj(i)));
        assert_eq!(
            s.candidates[i].pareto, !dominated,
            "{}",
            s.candidates[i].name
        );
    }
    // Blends mix plain with the best re-weighted candidate on the objective.
    let blend = s
        .candidates
        .iter()
        .find(|c| matches!(c.method, Method::Blend { .. }))
        .unwrap();
    let best = s
        .candidates
        .iter()
        .filter(|c| c.method.rebalances() && c.error.is_none())
        .min_by(|a, b| a.objective(o).unwrap().total_cmp(&b.objective(o).unwrap()))
        .unwrap();
    assert_eq!(blend.blend_of.as_deref(), Some(best.name.as_str()));

    // With no room on overall MAE and a grid that cannot win, plain is chosen and said so.
    let strict = SelectConfig {
        max_all_loss: 0.0,
        families: vec!["plain".into()],
        ..config.clone()
    };
    let s = select(&frame, TARGET, &strict, &|_, _| {}).unwrap();
    assert_eq!(s.chosen, s.reference);
    assert!(!s.beats_plain);
    assert!(
        s.verdict.contains("no candidate beats plain"),
        "{}",
        s.verdict
    );
}

#[test]
fn holdout_reports_chosen_plain_and_lds_on_untouched_rows() {
    let frame = table(250, 5);
    let config = SelectConfig {
        learners: vec![Learner::Ridge],
        families: vec!["lds".into(), "ro".into()],
        ..quick()
    };
    let h = holdout(&frame, TARGET, &config, 0.2, &|_, _| {}).unwrap();
    assert_eq!(h.test_rows, 50);
    assert_eq!(h.train_rows, 200);
    assert_eq!(h.selection.rows, 200);
    assert_eq!(h.lds.name, "ridge/lds-a0.5");
    assert_eq!(h.plain.name, "ridge/plain");
    for r in [&h.chosen, &h.plain, &h.lds] {
        assert!(r.scores.mae_all.unwrap() > 0.0);
        assert!(r.scores.sera.is_some());
    }
    if h.chosen.name == h.plain.name {
        assert_eq!(h.chosen.scores, h.plain.scores);
    }
}

#[test]
fn bad_tables_are_refused_with_the_reason() {
    let frame = table(50, 6);
    let mut constant = frame.clone();
    constant.columns[TARGET] = Column::Numeric(vec![3.0; 50]);
    let e = select(&constant, TARGET, &quick(), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("constant"), "{e}");
    let only = Frame {
        names: vec!["y".into()],
        columns: vec![frame.columns[TARGET].clone()],
    };
    let e = select(&only, 0, &quick(), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("feature columns"), "{e}");
    let bad = SelectConfig {
        families: vec!["smote".into()],
        ..quick()
    };
    let e = select(&frame, TARGET, &bad, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown method family 'smote'"), "{e}");
}
