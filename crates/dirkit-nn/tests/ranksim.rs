//! RankSim against the `ranksim` block of `tests/reference/regression_losses.json` (a copy of
//! `../shared/reference/`), with the file's tolerances, plus checks of the blackbox gradient
//! against a direct f64 computation and of the seeded selection.

use candle_core::{DType, Device, Tensor, Var};
use dirkit_nn::loss::ranksim::{
    BLACKBOX_EPS, RankSim, RankSimConfig, Selection, TieRule, blackbox_rank, cosine_similarity,
    label_rank_matrix, rank_descending, ranksim_regulariser,
};
use serde_json::Value;

const F64_RTOL: f64 = 1e-10;
const F64_ATOL: f64 = 1e-12;
const F32_VALUE_ATOL: f64 = 1e-6;
const F32_RTOL: f64 = 1e-5;
const F32_ATOL: f64 = 1e-7;

fn reference() -> Value {
    let path = format!(
        "{}/../../tests/reference/regression_losses.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let all: Value = serde_json::from_str(&text).expect("valid JSON");
    all["ranksim"].clone()
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

fn fv(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(f).collect()
}

fn fm(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().expect("an array").iter().map(fv).collect()
}

fn uv(v: &Value) -> Vec<usize> {
    let ints = v.as_array().expect("an array").iter();
    ints.map(|x| x.as_u64().expect("an index") as usize)
        .collect()
}

fn close(got: f64, want: f64, atol: f64, rtol: f64, what: &str) {
    assert!(
        (got - want).abs() <= atol + rtol * want.abs(),
        "{what}: got {got:e}, want {want:e} (diff {:e})",
        (got - want).abs()
    );
}

fn all_close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        close(g, w, atol, rtol, &format!("{what}[{k}]"));
    }
}

fn flat(rows: &[Vec<f64>]) -> Vec<f64> {
    rows.iter().flatten().copied().collect()
}

fn inputs(r: &Value, dtype: DType) -> (Var, Tensor) {
    let rows = fm(&r["features"]);
    let (b, d) = (rows.len(), rows[0].len());
    let x = Tensor::from_vec(flat(&rows), (b, d), &Device::Cpu).expect("features");
    let y = Tensor::new(fv(&r["labels"]), &Device::Cpu).expect("labels");
    let x = Var::from_tensor(&x.to_dtype(dtype).expect("cast")).expect("var");
    (x, y.to_dtype(dtype).expect("cast"))
}

fn config(r: &Value, gamma: f64, tie_rule: TieRule) -> RankSimConfig {
    RankSimConfig {
        lambda: f(&r["lambda"]),
        gamma,
        tie_rule,
        seed: 0,
    }
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .expect("cast")
        .to_scalar()
        .expect("scalar")
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    let t = t.to_dtype(DType::F64).expect("cast");
    t.flatten_all().expect("flat").to_vec1().expect("vec")
}

/// Loss and gradient w.r.t. the features with the first-occurrence selection.
fn primary_loss_and_grad(r: &Value, dtype: DType, gamma: f64, rule: TieRule) -> (f64, Vec<f64>) {
    let (x, y) = inputs(r, dtype);
    let mut rs = RankSim::new(config(r, gamma, rule))
        .expect("valid config")
        .with_selection(Selection::FirstOccurrence);
    let loss = rs.loss(x.as_tensor(), &y).expect("loss");
    let grads = loss.backward().expect("backward");
    let grad = grads
        .get(x.as_tensor())
        .expect("a gradient for the features");
    (scalar(&loss), to_vec(grad))
}

/// The reference divides the blackbox gradient by λ; the official code (and dirkit) by λ + 1e-8.
fn official_denominator(grad: &[f64], lambda: f64) -> Vec<f64> {
    grad.iter()
        .map(|g| g * lambda / (lambda + BLACKBOX_EPS))
        .collect()
}

#[test]
fn primary_value_and_blackbox_gradient_under_both_tie_rules() {
    let r = reference();
    let p = &r["primary"];
    let cases = [
        (TieRule::LowerIndexFirst, "value", "grad_features"),
        (
            TieRule::HigherIndexFirst,
            "value_official_tie_rule",
            "grad_features_official_tie_rule",
        ),
    ];
    for (rule, value_key, grad_key) in cases {
        let (value, grad) = primary_loss_and_grad(&r, DType::F64, 1.0, rule);
        close(value, f(&p[value_key]), F64_ATOL, F64_RTOL, value_key);
        let want = official_denominator(&flat(&fm(&p[grad_key])), f(&r["lambda"]));
        all_close(&grad, &want, F64_ATOL, F64_RTOL, grad_key);
    }
}

#[test]
fn gamma_scales_the_value() {
    let r = reference();
    let p = &r["primary"];
    let gamma = f(&r["gamma"]);
    let (value, _) = primary_loss_and_grad(&r, DType::F64, gamma, TieRule::LowerIndexFirst);
    close(
        value,
        f(&p["value_gamma100"]),
        F64_ATOL,
        F64_RTOL,
        "value_gamma100",
    );
    let (value, _) = primary_loss_and_grad(&r, DType::F64, gamma, TieRule::HigherIndexFirst);
    let want = gamma * f(&p["value_official_tie_rule"]);
    close(
        value,
        want,
        F64_ATOL,
        F64_RTOL,
        "gamma x value_official_tie_rule",
    );
}

#[test]
fn every_selection_matches_the_reference() {
    let r = reference();
    let (x, y) = inputs(&r, DType::F64);
    let gamma = f(&r["gamma"]);
    for s in r["selections"].as_array().expect("selections") {
        let indices = uv(&s["indices"]);
        let cases = [
            (TieRule::LowerIndexFirst, 1.0, "value"),
            (TieRule::HigherIndexFirst, 1.0, "value_official_tie_rule"),
            (TieRule::LowerIndexFirst, gamma, "value_gamma100"),
        ];
        for (rule, g, key) in cases {
            let mut rs = RankSim::new(config(&r, g, rule))
                .expect("valid config")
                .with_selection(Selection::Indices(indices.clone()));
            let value = scalar(&rs.loss(x.as_tensor(), &y).expect("loss"));
            close(
                value,
                f(&s[key]),
                F64_ATOL,
                F64_RTOL,
                &format!("{indices:?} {key}"),
            );
        }
    }
}

#[test]
fn first_occurrence_selection_and_rank_rows_match_the_reference() {
    let r = reference();
    let p = &r["primary"];
    let labels = fv(&r["labels"]);
    let mut rs = RankSim::new(RankSimConfig::default())
        .expect("valid config")
        .with_selection(Selection::FirstOccurrence);
    let indices = rs.select(&labels).expect("selection");
    assert_eq!(indices, uv(&p["indices"]));
    let kept: Vec<f64> = indices.iter().map(|&i| labels[i]).collect();
    all_close(&kept, &fv(&r["unique_labels"]), 0.0, 0.0, "unique labels");

    let (x, _) = inputs(&r, DType::F64);
    let ids = Tensor::new(
        indices.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        &Device::Cpu,
    )
    .expect("ids");
    let s = cosine_similarity(&x.as_tensor().index_select(&ids, 0).expect("rows")).expect("S");
    let want_s = flat(&fm(&p["similarity"]));
    all_close(&to_vec(&s), &want_s, F64_ATOL, F64_RTOL, "similarity");

    // The similarities have no ties, so both rules give the same feature ranks.
    let want_rf = flat(&fm(&p["feature_rank_rows"]));
    for rule in [TieRule::LowerIndexFirst, TieRule::HigherIndexFirst] {
        let rf = blackbox_rank(&s, 2.0, rule).expect("ranks");
        all_close(&to_vec(&rf), &want_rf, 0.0, 0.0, "feature_rank_rows");
    }
    let ry = label_rank_matrix(&kept, TieRule::LowerIndexFirst);
    all_close(
        &ry,
        &flat(&fm(&p["label_rank_rows"])),
        0.0,
        0.0,
        "label_rank_rows",
    );
    let ry = label_rank_matrix(&kept, TieRule::HigherIndexFirst);
    let want = flat(&fm(&p["label_rank_rows_official_tie_rule"]));
    all_close(&ry, &want, 0.0, 0.0, "label_rank_rows_official_tie_rule");
}

#[test]
fn tie_rules_order_equal_values_by_index() {
    let v = [0.5, 1.0, 0.5, -0.0, 0.0];
    let lower = rank_descending(&v, TieRule::LowerIndexFirst);
    assert_eq!(lower, vec![0.4, 0.2, 0.6, 0.8, 1.0]);
    let higher = rank_descending(&v, TieRule::HigherIndexFirst);
    assert_eq!(higher, vec![0.6, 0.2, 0.4, 1.0, 0.8]);

    // Strided and offset inputs rank like their contiguous copies.
    let m = Tensor::new(&[[0.3f64, 0.1, 0.2], [0.5, 0.9, 0.0]], &Device::Cpu).expect("m");
    let views = [m.t().expect("t"), m.narrow(1, 1, 2).expect("narrow")];
    for view in views {
        let got = blackbox_rank(&view, 2.0, TieRule::LowerIndexFirst).expect("ranks");
        let dense = view.contiguous().expect("copy");
        let want = blackbox_rank(&dense, 2.0, TieRule::LowerIndexFirst).expect("ranks");
        assert_eq!(to_vec(&got), to_vec(&want));
    }
}

#[test]
fn seeded_random_selection_is_one_per_label_and_reproducible() {
    let r = reference();
    let labels = fv(&r["labels"]);
    let selections: Vec<(Vec<usize>, f64)> = r["selections"]
        .as_array()
        .expect("selections")
        .iter()
        .map(|s| (uv(&s["indices"]), f(&s["value_official_tie_rule"])))
        .collect();
    let cfg = RankSimConfig {
        gamma: 1.0,
        seed: 42,
        ..RankSimConfig::default()
    };
    let (x, y) = inputs(&r, DType::F64);
    let mut a = RankSim::new(cfg.clone()).expect("valid config");
    let mut b = RankSim::new(cfg.clone()).expect("valid config");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..16 {
        let ia = a.select(&labels).expect("selection");
        assert_eq!(
            ia,
            b.select(&labels).expect("selection"),
            "same seed, same choice"
        );
        assert!(
            selections.iter().any(|(s, _)| *s == ia),
            "{ia:?} is not a one-per-label selection"
        );
        seen.insert(ia);
        // `loss` draws the next selection; replay it on a clone to know which one.
        let next = a.clone().select(&labels).expect("selection");
        let value = scalar(&a.loss(x.as_tensor(), &y).expect("loss"));
        b.select(&labels).expect("keep b in step");
        let (_, want) = selections.iter().find(|(s, _)| *s == next).expect("known");
        close(value, *want, F64_ATOL, F64_RTOL, "random-selection loss");
    }
    assert!(seen.len() > 1, "the generator advances between calls");
    let mut c = RankSim::new(RankSimConfig { seed: 43, ..cfg }).expect("valid config");
    let mut d = RankSim::new(RankSimConfig {
        seed: 42,
        ..RankSimConfig::default()
    })
    .expect("valid config");
    let differs = (0..8).any(|_| c.select(&labels).ok() != d.select(&labels).ok());
    assert!(differs, "another seed gives other choices");

    // All labels distinct: the batch is kept whole, in batch order (official code).
    let mut e = RankSim::new(RankSimConfig::default()).expect("valid config");
    assert_eq!(
        e.select(&[3.0, 1.0, 2.0]).expect("selection"),
        vec![0, 1, 2]
    );
}

#[test]
fn f32_matches_the_reference() {
    let r = reference();
    let p = &r["primary"];
    let lambda = f(&r["lambda"]);
    let cases = [
        (TieRule::LowerIndexFirst, "value", "grad_features"),
        (
            TieRule::HigherIndexFirst,
            "value_official_tie_rule",
            "grad_features_official_tie_rule",
        ),
    ];
    for (rule, value_key, grad_key) in cases {
        let (value, grad) = primary_loss_and_grad(&r, DType::F32, 1.0, rule);
        close(value, f(&p[value_key]), F32_VALUE_ATOL, 0.0, value_key);
        let want = official_denominator(&flat(&fm(&p[grad_key])), lambda);
        all_close(&grad, &want, F32_ATOL, F32_RTOL, grad_key);
    }
}

/// A small deterministic generator for test inputs.
fn uniform(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Normalised descending rank by counting: independent of the library's sort.
fn rank_by_counting(s: &[f64], rule: TieRule) -> Vec<f64> {
    let n = s.len();
    (0..n)
        .map(|i| {
            let before = (0..n)
                .filter(|&j| {
                    s[j] > s[i]
                        || (s[j] == s[i]
                            && match rule {
                                TieRule::LowerIndexFirst => j < i,
                                TieRule::HigherIndexFirst => j > i,
                            })
                })
                .count();
            (before + 1) as f64 / n as f64
        })
        .collect()
}

/// RankSim's value and blackbox gradient, written out in f64 without candle.
fn direct(z: &[Vec<f64>], y: &[f64], cfg: &RankSimConfig) -> (f64, Vec<Vec<f64>>) {
    let (n, d) = (z.len(), z[0].len());
    let norms: Vec<f64> = z
        .iter()
        .map(|row| row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12))
        .collect();
    let nz: Vec<Vec<f64>> = (0..n)
        .map(|i| z[i].iter().map(|v| v / norms[i]).collect())
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let s: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| dot(&nz[i], &nz[j])).collect())
        .collect();
    let (mut value, mut ds) = (0.0, vec![vec![0.0; n]; n]);
    for i in 0..n {
        let rf = rank_by_counting(&s[i], cfg.tie_rule);
        let labels: Vec<f64> = y.iter().map(|yj| -(y[i] - yj).abs()).collect();
        let ry = rank_by_counting(&labels, cfg.tie_rule);
        value += cfg.gamma * (0..n).map(|j| (rf[j] - ry[j]).powi(2)).sum::<f64>() / n as f64;
        let g: Vec<f64> = (0..n)
            .map(|j| cfg.gamma * 2.0 * (rf[j] - ry[j]) / n as f64)
            .collect();
        let shifted: Vec<f64> = (0..n).map(|j| s[i][j] + cfg.lambda * g[j]).collect();
        let rp = rank_by_counting(&shifted, cfg.tie_rule);
        for j in 0..n {
            ds[i][j] = -(rf[j] - rp[j]) / (cfg.lambda + 1e-8);
        }
    }
    // S = N Nᵀ: dN = dS N + dSᵀ N; N = z/‖z‖: dz = (dN - N (N·dN))/‖z‖.
    let mut dz = vec![vec![0.0; d]; n];
    for i in 0..n {
        let dn: Vec<f64> = (0..d)
            .map(|k| (0..n).map(|j| (ds[i][j] + ds[j][i]) * nz[j][k]).sum())
            .collect();
        let proj = dot(&nz[i], &dn);
        for k in 0..d {
            dz[i][k] = (dn[k] - nz[i][k] * proj) / norms[i];
        }
    }
    (value, dz)
}

#[test]
fn blackbox_gradient_matches_a_direct_computation_and_skips_unselected_rows() {
    let (b, d) = (14, 6);
    let mut state = 7u64;
    let z: Vec<Vec<f64>> = (0..b)
        .map(|_| (0..d).map(|_| 2.0 * uniform(&mut state) - 1.0).collect())
        .collect();
    // Labels 0..5 with repeats, so the selection drops rows.
    let y: Vec<f64> = (0..b)
        .map(|_| (uniform(&mut state) * 6.0).floor())
        .collect();
    for rule in [TieRule::LowerIndexFirst, TieRule::HigherIndexFirst] {
        for gamma in [1.0, 3.0, 100.0] {
            let cfg = RankSimConfig {
                gamma,
                tie_rule: rule,
                ..RankSimConfig::default()
            };
            let mut rs = RankSim::new(cfg.clone()).expect("valid config");
            let indices = rs.select(&y).expect("selection");
            let x = Tensor::from_vec(flat(&z), (b, d), &Device::Cpu).expect("features");
            let x = Var::from_tensor(&x).expect("var");
            let loss = ranksim_regulariser(x.as_tensor(), &y, &indices, &cfg).expect("loss");
            let grads = loss.backward().expect("backward");
            let grad = to_vec(grads.get(x.as_tensor()).expect("gradient"));

            let kept: Vec<Vec<f64>> = indices.iter().map(|&i| z[i].clone()).collect();
            let kept_y: Vec<f64> = indices.iter().map(|&i| y[i]).collect();
            let (value, dz) = direct(&kept, &kept_y, &cfg);
            let what = format!("{rule:?}, gamma {gamma}");
            close(
                scalar(&loss),
                value,
                F64_ATOL,
                F64_RTOL,
                &format!("{what}: value"),
            );
            assert!(
                dz.iter().flatten().any(|&g| g != 0.0),
                "{what}: a nonzero gradient"
            );
            for row in 0..b {
                let got = &grad[row * d..(row + 1) * d];
                match indices.iter().position(|&i| i == row) {
                    Some(k) => all_close(got, &dz[k], F64_ATOL, F64_RTOL, &format!("{what} {row}")),
                    None => assert!(
                        got.iter().all(|&g| g == 0.0),
                        "{what}: row {row} unselected"
                    ),
                }
            }
        }
    }
}

#[test]
fn labels_may_be_a_column_and_zero_rows_get_finite_gradients() {
    let x = Tensor::new(&[[0.0f64, 0.0], [1.0, 0.5], [-0.3, 2.0]], &Device::Cpu).expect("x");
    let x = Var::from_tensor(&x).expect("var");
    let y = Tensor::new(&[[1.0f64], [2.0], [4.0]], &Device::Cpu).expect("y");
    let mut rs = RankSim::new(RankSimConfig::default()).expect("valid config");
    let loss = rs.loss(x.as_tensor(), &y).expect("loss");
    let grads = loss.backward().expect("backward");
    let grad = to_vec(grads.get(x.as_tensor()).expect("gradient"));
    assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
}

#[test]
fn invalid_settings_and_inputs_are_refused() {
    let bad = [
        (0.0, 100.0),
        (-1.0, 100.0),
        (f64::NAN, 100.0),
        (2.0, -0.5),
        (2.0, f64::INFINITY),
    ];
    for (lambda, gamma) in bad {
        let cfg = RankSimConfig {
            lambda,
            gamma,
            ..RankSimConfig::default()
        };
        assert!(RankSim::new(cfg).is_err(), "lambda {lambda}, gamma {gamma}");
    }
    assert!(
        RankSim::new(RankSimConfig {
            gamma: 0.0,
            ..RankSimConfig::default()
        })
        .is_ok()
    );

    let x = Tensor::zeros((3, 2), DType::F64, &Device::Cpu).expect("x");
    let y = Tensor::new(&[1.0f64, 2.0, 2.0], &Device::Cpu).expect("y");
    let base = || RankSim::new(RankSimConfig::default()).expect("valid config");
    for indices in [vec![0, 3], vec![1, 1]] {
        let mut rs = base().with_selection(Selection::Indices(indices.clone()));
        assert!(rs.loss(&x, &y).is_err(), "indices {indices:?}");
    }
    let y2 = Tensor::zeros((3, 2), DType::F64, &Device::Cpu).expect("y2");
    assert!(base().loss(&x, &y2).is_err(), "labels (B, 2)");
    let y4 = Tensor::zeros(4, DType::F64, &Device::Cpu).expect("y4");
    assert!(base().loss(&x, &y4).is_err(), "4 labels for 3 rows");
    let nan = Tensor::new(&[1.0f64, f64::NAN, 2.0], &Device::Cpu).expect("nan");
    assert!(base().loss(&x, &nan).is_err(), "NaN label");
}

#[test]
fn config_serde_uses_defaults_and_snake_case() {
    let cfg: RankSimConfig =
        serde_json::from_str(r#"{"tie_rule": "lower_index_first"}"#).expect("parses");
    assert_eq!(cfg.lambda, 2.0);
    assert_eq!(cfg.gamma, 100.0);
    assert_eq!(cfg.tie_rule, TieRule::LowerIndexFirst);
    let text = serde_json::to_string(&RankSimConfig::default()).expect("serialises");
    assert!(text.contains("\"higher_index_first\""), "{text}");
    assert!(serde_json::from_str::<RankSimConfig>(r#"{"lamda": 1.0}"#).is_err());
}
