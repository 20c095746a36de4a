//! The selection rule and figures against hand-worked cases.

use dirkit_core::relevance::{Relevance, RelevanceConfig};
use dirkit_core::selection::{Contender, Objective, Scores, Summary, choose};

/// A summary of one fold with these overall MAE, few-shot MAE and F1.
fn summary(mae_all: f64, mae_few: f64, f1: f64) -> Summary {
    Summary::of(&[Scores {
        mae_all: Some(mae_all),
        mae_few: Some(mae_few),
        f1: Some(f1),
        ..Scores::default()
    }])
}

#[test]
fn choose_respects_the_limit_and_marks_the_front() {
    let plain = summary(1.0, 5.0, 0.5);
    let mild = summary(1.01, 4.0, 0.6);
    let strong = summary(1.5, 2.0, 0.4);
    let worse = summary(1.2, 6.0, 0.3);
    let cands = [
        Contender {
            name: "plain",
            plain: true,
            summary: Some(&plain),
        },
        Contender {
            name: "mild",
            plain: false,
            summary: Some(&mild),
        },
        Contender {
            name: "strong",
            plain: false,
            summary: Some(&strong),
        },
        Contender {
            name: "worse",
            plain: false,
            summary: Some(&worse),
        },
        Contender {
            name: "failed",
            plain: false,
            summary: None,
        },
    ];
    let c = choose(&cands, Objective::FewMae, 0.02).unwrap();
    assert_eq!((c.reference, c.chosen), (0, 1));
    assert!(c.beats_plain);
    assert!((c.all_change - 0.01).abs() < 1e-12);
    assert_eq!(c.feasible, [true, true, false, false, false]);
    assert_eq!(c.pareto, [true, true, true, false, false]);
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
