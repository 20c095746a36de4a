//! The selection rule and figures against hand-worked cases.

use dirkit_core::relevance::{Relevance, RelevanceConfig};
use dirkit_core::selection::{Contender, Objective, Scores, Summary, choose};

/// One fold with these overall MAE, few-shot MAE and F1.
fn fold(mae_all: f64, mae_few: f64, f1: f64) -> Scores {
    Scores {
        mae_all: Some(mae_all),
        mae_few: Some(mae_few),
        f1: Some(f1),
        ..Scores::default()
    }
}

/// A contender over `folds` (its summary built from them).
fn contender<'a>(name: &'a str, plain: bool, folds: &'a [Scores], s: &'a Summary) -> Contender<'a> {
    Contender {
        name,
        plain,
        summary: Some(s),
        folds,
    }
}

#[test]
fn choose_respects_the_limit_and_marks_the_front() {
    let folds = [
        [fold(1.0, 5.0, 0.5)],
        [fold(1.01, 4.0, 0.6)],
        [fold(1.5, 2.0, 0.4)],
        [fold(1.2, 6.0, 0.3)],
    ];
    let sums: Vec<Summary> = folds.iter().map(|f| Summary::of(f)).collect();
    let names = ["plain", "mild", "strong", "worse"];
    let mut cands: Vec<Contender> = (0..4)
        .map(|i| contender(names[i], i == 0, &folds[i], &sums[i]))
        .collect();
    cands.push(Contender {
        name: "failed",
        plain: false,
        summary: None,
        folds: &[],
    });
    let c = choose(&cands, Objective::FewMae, 0.02).unwrap();
    assert_eq!((c.reference, c.chosen), (0, 1));
    assert!(c.beats_plain);
    assert!((c.all_change - 0.01).abs() < 1e-12);
    assert_eq!(c.feasible, [true, true, false, false, false]);
    assert_eq!(c.pareto, [true, true, true, false, false]);
    assert_eq!(c.clear_gain, [false, true, true, false, false]);
    // With a looser limit the strong candidate wins; with none, plain, naming the trade-off.
    assert_eq!(choose(&cands, Objective::FewMae, 0.6).unwrap().chosen, 2);
    let none = choose(&cands, Objective::FewMae, 0.0).unwrap();
    assert_eq!(none.chosen, 0);
    assert!(!none.beats_plain);
    assert!(
        none.verdict.contains("no candidate beats plain"),
        "{}",
        none.verdict
    );
    assert!(
        none.verdict.contains("the best on few-mae is strong"),
        "{}",
        none.verdict
    );
    // F1 is maximised: mild (0.6) beats plain (0.5) within 2 %.
    let f1 = choose(&cands, Objective::F1, 0.02).unwrap();
    assert_eq!(f1.chosen, 1);
    assert_eq!(f1.pareto, [true, true, false, false, false]);
    // An objective undefined for plain names the fix.
    let e = choose(&cands, Objective::Sera, 0.02)
        .unwrap_err()
        .to_string();
    assert!(e.contains("objective"), "{e}");
    assert!(choose(&cands[1..], Objective::FewMae, 0.02).is_err());
}

#[test]
fn a_gain_within_fold_noise_does_not_beat_plain() {
    // Five folds: "noisy" is ahead of plain by 0.1 on average with paired differences of
    // −1.1, +0.9, −1.1, +0.9, −0.1 (mean −0.1, sample sd 1, standard error 1/√5 ≈ 0.447); "steady" is ahead by 0.05
    // with differences −0.05 ± 0.01 (standard error 0.004).
    let plain_few = [5.0, 5.0, 5.0, 5.0, 5.0];
    let noisy_few = [3.9, 5.9, 3.9, 5.9, 4.9];
    let steady_few = [4.94, 4.96, 4.95, 4.94, 4.96];
    let mk = |few: &[f64]| few.iter().map(|&f| fold(1.0, f, 0.5)).collect::<Vec<_>>();
    let (p, n, st) = (mk(&plain_few), mk(&noisy_few), mk(&steady_few));
    let (sp, sn, sst) = (Summary::of(&p), Summary::of(&n), Summary::of(&st));
    let cands = [
        contender("plain", true, &p, &sp),
        contender("noisy", false, &n, &sn),
        contender("steady", false, &st, &sst),
    ];
    let c = choose(&cands, Objective::FewMae, 0.02).unwrap();
    assert_eq!(c.clear_gain, [false, false, true]);
    assert_eq!(c.chosen, 2, "{}", c.verdict);
    let only_noisy = choose(&cands[..2], Objective::FewMae, 0.02).unwrap();
    assert_eq!(only_noisy.chosen, 0);
    assert!(!only_noisy.beats_plain);
    assert!(
        only_noisy.verdict.contains("noisy is ahead"),
        "{}",
        only_noisy.verdict
    );
    assert!(
        only_noisy.verdict.contains("(0.4472): within noise"),
        "{}",
        only_noisy.verdict
    );
}

#[test]
fn scores_of_a_constant_error_have_closed_forms() {
    let truth: Vec<f64> = (0..200)
        .map(|i| f64::from(i % 40) + if i % 50 == 0 { 60.0 } else { 0.0 })
        .collect();
    let train = truth.clone();
    let pred: Vec<f64> = truth.iter().map(|t| t + 1.0).collect();
    let rel = Relevance::from_targets(&train, &RelevanceConfig::default()).unwrap();
    let s = Scores::compute(&pred, &truth, &train, &rel, 0.8).unwrap();
    assert_eq!(s.mae_all, Some(1.0));
    assert_eq!(s.rmse_all, Some(1.0));
    assert_eq!(s.balanced_mae, Some(1.0));
    // SERA of unit errors: ∫ #{φ(y) ≥ t} dt = Σ φ(y) (trapezoid error below n·step).
    let phi_sum: f64 = rel.phi_all(&truth).iter().sum();
    let sera = s.sera.unwrap();
    assert!(
        phi_sum > 1.0 && (sera - phi_sum).abs() <= 200.0 * 0.001,
        "{sera} vs {phi_sum}"
    );
}
