//! Instance-difficulty re-sampling against the reference block `instance_difficulty_extra` of
//! `tests/reference/discrete_losses.json` (float64; labels from its `meta`).

mod common;

use dirkit_data::{DifficultyConfig, EpochSampler, InstanceDifficultySampler};
use serde_json::Value;

const TOL: f64 = 1e-12;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/discrete_losses.json"
    );
    let text = std::fs::read_to_string(path).expect("reference file");
    serde_json::from_str(&text).expect("reference JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn matrix(v: &Value) -> (Vec<f64>, usize) {
    let rows = v.as_array().expect("rows");
    let cols = rows[0].as_array().expect("row").len();
    (rows.iter().flat_map(floats).collect(), cols)
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= TOL, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn one_epoch_reproduces_the_reference_block() {
    let r = reference();
    let block = &r["instance_difficulty_extra"];
    let labels: Vec<usize> = floats(&r["meta"]["labels"])
        .iter()
        .map(|&l| l as usize)
        .collect();
    let (prev, n_classes) = matrix(&block["p_prev"]);
    let (curr, _) = matrix(&block["p_curr"]);
    let config = DifficultyConfig {
        c: block["c"].as_f64().unwrap(),
        ..DifficultyConfig::default()
    };
    let mut s = InstanceDifficultySampler::new(labels.len(), &config).unwrap();
    assert_eq!(s.difficulties(), [1.0, 1.0, 1.0]);

    let changes = s
        .update_from_probabilities(&prev, &curr, &labels, n_classes)
        .unwrap();
    let total: Vec<f64> = changes.iter().map(|d| d.total()).collect();
    let dl: Vec<f64> = changes.iter().map(|d| d.learning).collect();
    let du: Vec<f64> = changes.iter().map(|d| d.unlearning).collect();
    assert_close(&total, &floats(&block["d_psi"]), "d_psi");
    assert_close(&dl, &floats(&block["dl"]), "dl");
    assert_close(&du, &floats(&block["du"]), "du");
    let d_after = floats(&block["D_after_one_epoch"]);
    assert_close(&s.difficulties(), &d_after, "D_after_one_epoch");
    assert_close(
        &s.sampling_probabilities(),
        &floats(&block["sampling_prob"]),
        "sampling_prob",
    );
    assert_eq!(s.updates(), 1);
}

#[test]
fn differences_accumulate_over_epochs() {
    let r = reference();
    let block = &r["instance_difficulty_extra"];
    let labels = [0usize, 2, 4];
    let (p0, k) = matrix(&block["p_prev"]);
    let (p1, _) = matrix(&block["p_curr"]);
    let mut s = InstanceDifficultySampler::new(3, &DifficultyConfig::default()).unwrap();
    let a = s.update_from_probabilities(&p0, &p1, &labels, k).unwrap();
    // Going back is the mirror image: every learning move becomes an unlearning one.
    let b = s.update_from_probabilities(&p1, &p0, &labels, k).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x.learning - y.unlearning).abs() < TOL && (x.unlearning - y.learning).abs() < TOL);
    }
    // After the round trip Σdl = Σdu, so every difficulty is 1 again.
    for d in s.difficulties() {
        assert!((d - 1.0).abs() < TOL, "{d}");
    }
    assert_eq!(s.updates(), 2);
}

#[test]
fn regression_variant_uses_the_loss_trajectory() {
    let mut s = InstanceDifficultySampler::new(3, &DifficultyConfig::default()).unwrap();
    // Sample 0 improves (2 → 1), sample 1 gets worse (1 → 3), sample 2 stays.
    let d = s
        .update_from_losses(&[2.0, 1.0, 0.5], &[1.0, 3.0, 0.5])
        .unwrap();
    let ln2 = 2f64.ln();
    let ln3 = 3f64.ln();
    assert!((d[0].learning - ln2).abs() < TOL && d[0].unlearning == 0.0);
    assert!((d[1].unlearning - 2.0 * ln3).abs() < TOL && d[1].learning == 0.0);
    assert_eq!(d[2].total(), 0.0);
    let want = [1.0 / (1.0 + ln2), 1.0 + 2.0 * ln3, 1.0];
    for (g, w) in s.difficulties().iter().zip(want) {
        assert!((g - w).abs() < TOL, "{g} vs {w}");
    }
}

#[test]
fn draws_follow_the_difficulties_and_survive_a_checkpoint() {
    let n = 50;
    let cfg = DifficultyConfig {
        seed: 11,
        epoch_len: Some(common::DRAWS),
        ..DifficultyConfig::default()
    };
    let mut s = InstanceDifficultySampler::new(n, &cfg).unwrap();
    let prev: Vec<f64> = (0..n).map(|i| 1.0 + (i % 7) as f64).collect();
    let curr: Vec<f64> = (0..n).map(|i| 1.0 + ((i * 3) % 11) as f64).collect();
    s.update_from_losses(&prev, &curr).unwrap();
    let p = s.sampling_probabilities();
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-14);
    // Far from uniform: the hardest sample is drawn over 100 times as often as the easiest.
    let max = p.iter().copied().fold(0.0, f64::max);
    let min = p.iter().copied().fold(1.0, f64::min);
    assert!(max > 100.0 * min, "{max} {min}");
    common::assert_fits(&s.sample_epoch(3), &p, "difficulty draws");

    // Plain serde_json may round the last bit of an f64 (its `float_roundtrip` feature does
    // not), so the restored difficulties are compared to 1e-15 relative.
    let json = serde_json::to_string(&s).unwrap();
    let restored: InstanceDifficultySampler = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (restored.config(), restored.updates()),
        (s.config(), s.updates())
    );
    for (a, b) in restored.difficulties().iter().zip(s.difficulties()) {
        assert!((a - b).abs() <= 1e-15 * b, "{a} vs {b}");
    }
    assert_eq!(restored.sample_epoch(3), s.sample_epoch(3));
    assert_ne!(s.sample_epoch(3), s.sample_epoch(4));
}
