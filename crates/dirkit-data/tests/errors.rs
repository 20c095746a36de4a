//! Every refusal is a typed error that names the offending position and value; nothing panics.

use dirkit_data::{
    AliasTable, ClassAwareConfig, ClassAwareSampler, DataError, DifficultyConfig,
    InstanceDifficultySampler, ProgressiveConfig, ProgressiveSampler, WeightedSampler,
    bin_probabilities,
};

fn parameter(e: DataError) -> &'static str {
    match e {
        DataError::InvalidParameter { name, .. } => name,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn bins_out_of_range_and_empty_inputs() {
    let cfg = ClassAwareConfig::default();
    let e = ClassAwareSampler::new(&[0, 1, 5, 7], 5, &cfg).unwrap_err();
    assert_eq!(
        e,
        DataError::BinOutOfRange {
            index: 2,
            bin: 5,
            n_bins: 5
        }
    );
    assert_eq!(
        e.to_string(),
        "sample #2 has bin 5, but there are only 5 bins (0..5)"
    );
    assert!(matches!(
        ClassAwareSampler::new(&[], 5, &cfg),
        Err(DataError::Empty(_))
    ));
    assert_eq!(
        parameter(ClassAwareSampler::new(&[0], 0, &cfg).unwrap_err()),
        "n_bins"
    );
    assert_eq!(
        parameter(ClassAwareSampler::new(&[0], usize::MAX, &cfg).unwrap_err()),
        "n_bins"
    );
    assert!(matches!(
        ProgressiveSampler::new(&[3], 2, &ProgressiveConfig::default()),
        Err(DataError::BinOutOfRange {
            index: 0,
            bin: 3,
            ..
        })
    ));
    assert!(matches!(
        bin_probabilities(&[0, 0], 1.0),
        Err(DataError::Empty(_))
    ));
}

#[test]
fn bad_hyper_parameters() {
    for q in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let cfg = ClassAwareConfig::new(q);
        assert_eq!(parameter(cfg.validate().unwrap_err()), "q");
        assert_eq!(
            parameter(ClassAwareSampler::new(&[0], 1, &cfg).unwrap_err()),
            "q"
        );
    }
    let e = ClassAwareConfig::new(2.0).validate().unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid q = 2: a number in [0, 1]"),
        "{e}"
    );
    let zero_len = ClassAwareConfig::default().with_epoch_len(0);
    assert_eq!(parameter(zero_len.validate().unwrap_err()), "epoch_len");
    assert_eq!(
        parameter(ProgressiveConfig::new(0).validate().unwrap_err()),
        "total_epochs"
    );
    let w = WeightedSampler::new(&[1.0], 0).unwrap();
    assert_eq!(parameter(w.with_epoch_len(0).unwrap_err()), "epoch_len");
    for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let cfg = DifficultyConfig {
            c,
            ..DifficultyConfig::default()
        };
        assert_eq!(
            parameter(InstanceDifficultySampler::new(3, &cfg).unwrap_err()),
            "c"
        );
    }
    assert!(matches!(
        InstanceDifficultySampler::new(0, &DifficultyConfig::default()),
        Err(DataError::Empty(_))
    ));
}

#[test]
fn invalid_weights() {
    for (weights, index) in [
        (vec![1.0, f64::NAN], 1),
        (vec![-1.0, 2.0], 0),
        (vec![1.0, 2.0, f64::INFINITY], 2),
    ] {
        match AliasTable::new(&weights) {
            Err(DataError::InvalidWeight { index: i, .. }) => assert_eq!(i, index),
            other => panic!("{weights:?}: {other:?}"),
        }
    }
    assert_eq!(
        AliasTable::new(&[0.0, 0.0, 0.0]),
        Err(DataError::AllZeroWeights(3))
    );
    assert!(matches!(AliasTable::new(&[]), Err(DataError::Empty(_))));
    assert_eq!(
        WeightedSampler::new(&[0.0, -0.5], 1)
            .unwrap_err()
            .to_string(),
        "weight #1 is -0.5: weights must be finite and >= 0"
    );
}

#[test]
fn invalid_predictions_leave_the_state_unchanged() {
    let mut s = InstanceDifficultySampler::new(2, &DifficultyConfig::default()).unwrap();
    let good = [0.5, 0.5, 0.2, 0.8];
    let before = s.clone();

    let bad_value = [0.5, 0.5, 1.2, -0.2];
    assert_eq!(
        s.update_from_probabilities(&good, &bad_value, &[0, 1], 2),
        Err(DataError::InvalidProbability {
            row: 1,
            column: 0,
            value: 1.2
        })
    );
    let nan = [0.5, f64::NAN, 0.2, 0.8];
    assert!(matches!(
        s.update_from_probabilities(&nan, &good, &[0, 1], 2),
        Err(DataError::InvalidProbability {
            row: 0,
            column: 1,
            ..
        })
    ));
    let bad_sum = [0.5, 0.4, 0.2, 0.8];
    assert!(matches!(
        s.update_from_probabilities(&good, &bad_sum, &[0, 1], 2),
        Err(DataError::RowSum { row: 0, .. })
    ));
    assert_eq!(
        s.update_from_probabilities(&good, &good, &[0, 2], 2),
        Err(DataError::BinOutOfRange {
            index: 1,
            bin: 2,
            n_bins: 2
        })
    );
    assert!(matches!(
        s.update_from_probabilities(&good, &good[..3], &[0, 1], 2),
        Err(DataError::LengthMismatch {
            left: 3,
            right: 4,
            ..
        })
    ));
    assert!(matches!(
        s.update_from_probabilities(&good, &good, &[0], 2),
        Err(DataError::LengthMismatch {
            left: 1,
            right: 2,
            ..
        })
    ));
    assert_eq!(
        parameter(
            s.update_from_probabilities(&[], &[], &[0, 1], 0)
                .unwrap_err()
        ),
        "n_classes"
    );
    assert_eq!(
        s.update_from_losses(&[1.0, -1.0], &[1.0, 1.0]),
        Err(DataError::InvalidLoss {
            index: 1,
            value: -1.0
        })
    );
    assert!(matches!(
        s.update_from_losses(&[1.0, 1.0], &[f64::NAN, 1.0]),
        Err(DataError::InvalidLoss { index: 0, .. })
    ));
    assert!(matches!(
        s.update_from_losses(&[1.0], &[1.0, 1.0]),
        Err(DataError::LengthMismatch { .. })
    ));
    // A change that overflows f64 is refused, not turned into an infinite difficulty.
    assert!(matches!(
        s.update_from_losses(&[1.0, 1.0], &[1.0, 1e307]),
        Err(DataError::DifficultyOutOfRange { index: 1, .. })
    ));
    assert_eq!(s, before);
}

#[test]
fn corrupt_checkpoints_are_refused() {
    let s = InstanceDifficultySampler::new(2, &DifficultyConfig::default()).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    let bad = [
        json.replace("\"unlearning\":[0.0,0.0]", "\"unlearning\":[0.0]"),
        json.replace("\"learning\":[0.0,0.0]", "\"learning\":[-1.0,0.0]"),
        json.replace("\"c\":1.0", "\"c\":0.0"),
        json.replace("\"learning\":[0.0,0.0]", "\"learning\":[]")
            .replace("\"unlearning\":[0.0,0.0]", "\"unlearning\":[]"),
    ];
    for text in bad {
        assert_ne!(text, json, "the replacement must change the checkpoint");
        let err = serde_json::from_str::<InstanceDifficultySampler>(&text).unwrap_err();
        assert!(err.is_data(), "{text}: {err}");
    }
}
