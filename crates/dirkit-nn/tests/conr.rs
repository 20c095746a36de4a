//! ConR against a PyTorch transcription of the official regulariser (value and feature gradient,
//! `tests/reference/contrastive/conr.json`), finite differences in f64 against the formula
//! written out, and its settings.

use candle_core::{DType, Device, Tensor, Var};
use dirkit_nn::loss::conr::{ConrConfig, ConrLoss};
use serde_json::Value;

mod common;
use common::{close, matrix, t1, t2, vector};

fn reference() -> Value {
    common::reference("contrastive/conr.json")
}

#[test]
fn value_and_gradient_match_the_official_formula() {
    let doc = reference();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    let mut nonzero = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let config = ConrConfig {
            window: case["window"].as_f64().unwrap(),
            temperature: case["temperature"].as_f64().unwrap(),
            eta: case["eta"].as_f64().unwrap(),
            official_denominator: case["official_denominator"].as_bool().unwrap(),
            ..ConrConfig::default()
        };
        let conr = ConrLoss::new(config).unwrap();
        let x = Var::from_tensor(&t2(&matrix(&case["features"]))).unwrap();
        let loss = conr
            .loss(
                &x,
                &t1(&vector(&case["labels"])),
                &t1(&vector(&case["predictions"])),
                Some(&t1(&vector(&case["weights"]))),
            )
            .unwrap();
        let want = case["loss"].as_f64().unwrap();
        close(loss.to_scalar::<f64>().unwrap(), want, name);
        if want != 0.0 {
            nonzero += 1;
        }
        let got: Vec<Vec<f64>> = loss.backward().unwrap().get(&x).unwrap().to_vec2().unwrap();
        for (gr, wr) in got.iter().zip(&matrix(&case["grad"])) {
            for (g, w) in gr.iter().zip(wr) {
                assert!(g.is_finite(), "{name}: gradient {g}");
                close(*g, *w, &format!("{name} gradient"));
            }
        }
    }
    // The ties, no-positive and warm cases exercise the loss, not only its zero branches.
    assert!(nonzero >= 5, "{nonzero} cases with a non-zero loss");
}

/// The documented formula with explicit loops, for the finite-difference check.
fn brute(x: &[f64], d: usize, y: &[f64], p: &[f64], w: &[f64], c: &ConrConfig) -> f64 {
    let n = y.len();
    let z: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let r = &x[i * d..(i + 1) * d];
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            r.iter().map(|v| v / norm).collect()
        })
        .collect();
    let s = |i: usize, j: usize| {
        z[i].iter().zip(&z[j]).map(|(a, b)| a * b).sum::<f64>() / c.temperature
    };
    let mut total = 0.0;
    for i in 0..n {
        let positives: Vec<usize> = (0..n)
            .filter(|&j| j != i && (y[i] - y[j]).abs() <= c.window)
            .collect();
        let negatives: Vec<usize> = (0..n)
            .filter(|&j| (y[i] - y[j]).abs() > c.window && (p[i] - p[j]).abs() <= c.window)
            .collect();
        if positives.is_empty() || negatives.is_empty() {
            continue;
        }
        let denom: f64 = positives.iter().map(|&j| s(i, j).exp()).sum::<f64>()
            + negatives
                .iter()
                .map(|&k| w[i] * (c.eta * (y[i] - y[k]).abs()).exp() * s(i, k).exp())
                .sum::<f64>();
        let li: f64 =
            positives.iter().map(|&j| denom.ln() - s(i, j)).sum::<f64>() / positives.len() as f64;
        total += w[i] * li;
    }
    total / n as f64
}

#[test]
fn gradient_matches_finite_differences() {
    let mut g = dirkit_core::SplitMix64::new(11);
    let (n, d) = (10, 4);
    let x: Vec<f64> = (0..n * d).map(|_| g.normal()).collect();
    let y: Vec<f64> = (0..n).map(|i| [1.0, 1.5, 3.0, 3.0, 6.0][i % 5]).collect();
    let p: Vec<f64> = (0..n)
        .map(|i| [2.0, 3.1, 2.5, 5.5, 2.8][i % 5] + 0.1 * i as f64)
        .collect();
    let w: Vec<f64> = (0..n).map(|i| 0.5 + 0.2 * i as f64).collect();
    let c = ConrConfig {
        temperature: 0.3,
        eta: 0.2,
        ..ConrConfig::default()
    };
    let conr = ConrLoss::new(c).unwrap();
    let var =
        Var::from_tensor(&Tensor::from_vec(x.clone(), (n, d), &Device::Cpu).unwrap()).unwrap();
    let loss = conr.loss(&var, &t1(&y), &t1(&p), Some(&t1(&w))).unwrap();
    let value = loss.to_scalar::<f64>().unwrap();
    close(value, brute(&x, d, &y, &p, &w, &c), "value vs definition");
    assert!(value > 0.0);
    let grad: Vec<f64> = loss
        .backward()
        .unwrap()
        .get(&var)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let h = 1e-6;
    for k in 0..n * d {
        let mut a = x.clone();
        let mut b = x.clone();
        a[k] += h;
        b[k] -= h;
        let fd = (brute(&a, d, &y, &p, &w, &c) - brute(&b, d, &y, &p, &w, &c)) / (2.0 * h);
        assert!(
            (grad[k] - fd).abs() < 1e-7,
            "coordinate {k}: {} vs {fd}",
            grad[k]
        );
    }
}

#[test]
fn predictions_and_weights_are_not_differentiated_and_bad_settings_refused() {
    let conr = ConrLoss::new(ConrConfig::default()).unwrap();
    let x = Var::from_tensor(
        &Tensor::new(
            &[[0.5f64, 1.0], [2.0, -1.0], [0.0, 0.3], [1.0, 1.0]],
            &Device::Cpu,
        )
        .unwrap(),
    )
    .unwrap();
    let y = t1(&[1.0, 1.5, 4.0, 4.2]);
    let p = Var::from_tensor(&t1(&[1.0, 1.2, 1.4, 4.0])).unwrap();
    let loss = conr.loss(&x, &y, &p, None).unwrap();
    assert!(loss.to_scalar::<f64>().unwrap() > 0.0);
    let grads = loss.backward().unwrap();
    assert!(grads.get(&x).is_some());
    assert!(grads.get(&p).is_none());
    // f32 features: the same value within f32 rounding.
    let v32 = conr
        .loss(
            &x.to_dtype(DType::F32).unwrap(),
            &y.to_dtype(DType::F32).unwrap(),
            &p.to_dtype(DType::F32).unwrap(),
            None,
        )
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((f64::from(v32) - loss.to_scalar::<f64>().unwrap()).abs() < 1e-4);
    for (field, c) in [
        (
            "window",
            ConrConfig {
                window: 0.0,
                ..ConrConfig::default()
            },
        ),
        (
            "window",
            ConrConfig {
                window: -1.0,
                ..ConrConfig::default()
            },
        ),
        (
            "temperature",
            ConrConfig {
                temperature: -0.07,
                ..ConrConfig::default()
            },
        ),
        (
            "temperature",
            ConrConfig {
                temperature: f64::NAN,
                ..ConrConfig::default()
            },
        ),
        (
            "eta",
            ConrConfig {
                eta: -1.0,
                ..ConrConfig::default()
            },
        ),
        (
            "beta",
            ConrConfig {
                beta: f64::INFINITY,
                ..ConrConfig::default()
            },
        ),
    ] {
        let e = ConrLoss::new(c).unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
    }
    let e = conr
        .loss(&x, &t1(&[1.0, f64::NAN, 4.0, 4.2]), &p, None)
        .unwrap_err();
    assert!(e.to_string().contains("NaN at row 1"), "{e}");
    let e = conr.loss(&x, &t1(&[1.0, 2.0]), &p, None).unwrap_err();
    assert!(e.to_string().contains("2 labels for 4 features"), "{e}");
}
