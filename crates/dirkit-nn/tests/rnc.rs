//! Rank-N-Contrast against a PyTorch transcription of the official loss (value and gradient,
//! `tests/reference/contrastive/`), finite differences in f64, and its settings.

use candle_core::{DType, Device, Tensor, Var};
use dirkit_nn::loss::rnc::{RncConfig, RncLoss, rnc_loss_and_grad};
use serde_json::Value;

mod common;
use common::{close, matrix, t2};

fn reference() -> Value {
    common::reference("contrastive/rnc.json")
}

#[test]
fn value_and_gradient_match_the_official_formula() {
    let doc = reference();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let config = RncConfig {
            temperature: case["temperature"].as_f64().unwrap(),
            normalize: case["normalize"].as_bool().unwrap(),
        };
        let loss_fn = RncLoss::new(config).unwrap();
        let v1 = Var::from_tensor(&t2(&matrix(&case["view1"]))).unwrap();
        let v2 = Var::from_tensor(&t2(&matrix(&case["view2"]))).unwrap();
        let labels = t2(&matrix(&case["labels"]));
        let loss = loss_fn.loss_two_views(&v1, &v2, &labels).unwrap();
        close(
            loss.to_scalar::<f64>().unwrap(),
            case["loss"].as_f64().unwrap(),
            name,
        );
        let grads = loss.backward().unwrap();
        for (var, key) in [(&v1, "grad_view1"), (&v2, "grad_view2")] {
            let got: Vec<Vec<f64>> = grads.get(var).unwrap().to_vec2().unwrap();
            let want = matrix(&case[key]);
            for (gr, wr) in got.iter().zip(&want) {
                for (g, w) in gr.iter().zip(wr) {
                    close(*g, *w, &format!("{name} {key}"));
                }
            }
        }
    }
}

/// The definition written out with the n³ mask, for the finite-difference check.
fn brute(features: &[f64], d: usize, labels: &[f64], t: f64) -> f64 {
    let n = labels.len();
    let s = |i: usize, k: usize| {
        -(0..d)
            .map(|c| (features[i * d + c] - features[k * d + c]).powi(2))
            .sum::<f64>()
            .sqrt()
            / t
    };
    let mut loss = 0.0;
    for i in 0..n {
        for j in (0..n).filter(|&j| j != i) {
            let dij = (labels[i] - labels[j]).abs();
            let denom: f64 = (0..n)
                .filter(|&k| k != i && (labels[i] - labels[k]).abs() >= dij)
                .map(|k| s(i, k).exp())
                .sum();
            loss -= s(i, j) - denom.ln();
        }
    }
    loss / (n * (n - 1)) as f64
}

#[test]
fn gradient_matches_finite_differences_and_the_n_cubed_definition() {
    let mut g = dirkit_core::SplitMix64::new(5);
    let (n, d) = (9, 4);
    let x: Vec<f64> = (0..n * d).map(|_| g.normal()).collect();
    let labels: Vec<f64> = (0..n).map(|i| [1.0, 2.0, 2.0, 5.0, 9.0][i % 5]).collect();
    let lab: Vec<Vec<f64>> = labels.iter().map(|&y| vec![y]).collect();
    let (loss, grad) = rnc_loss_and_grad(&x, d, &lab, 0.7);
    close(loss, brute(&x, d, &labels, 0.7), "value vs definition");
    let h = 1e-6;
    for p in 0..n * d {
        let mut a = x.clone();
        let mut b = x.clone();
        a[p] += h;
        b[p] -= h;
        let fd = (brute(&a, d, &labels, 0.7) - brute(&b, d, &labels, 0.7)) / (2.0 * h);
        assert!(
            (grad[p] - fd).abs() < 1e-7,
            "coordinate {p}: {} vs {fd}",
            grad[p]
        );
    }
}

#[test]
fn degenerate_batches_are_finite_and_bad_settings_refused() {
    let loss = RncLoss::new(RncConfig::default()).unwrap();
    // One feature: no pair, loss 0. Identical features: finite, zero gradient.
    let one = Tensor::ones((1, 3), DType::F64, &Device::Cpu).unwrap();
    let y1 = Tensor::new(&[2.0f64], &Device::Cpu).unwrap();
    assert_eq!(
        loss.loss(&one, &y1).unwrap().to_scalar::<f64>().unwrap(),
        0.0
    );
    let same = Var::from_tensor(&Tensor::ones((4, 3), DType::F64, &Device::Cpu).unwrap()).unwrap();
    let y = Tensor::new(&[1.0f64, 2.0, 3.0, 4.0], &Device::Cpu).unwrap();
    let l = loss.loss(&same, &y).unwrap();
    assert!(l.to_scalar::<f64>().unwrap().is_finite());
    let grad: Vec<Vec<f64>> = l.backward().unwrap().get(&same).unwrap().to_vec2().unwrap();
    assert!(grad.iter().flatten().all(|v| *v == 0.0));
    // f32 features give the f64 computation's value, rounded.
    let x = Tensor::new(&[[0.5f32, 1.0], [2.0, -1.0], [0.0, 0.3]], &Device::Cpu).unwrap();
    let y = Tensor::new(&[1.0f32, 4.0, 2.0], &Device::Cpu).unwrap();
    let v32 = loss.loss(&x, &y).unwrap().to_scalar::<f32>().unwrap();
    let v64 = loss
        .loss(
            &x.to_dtype(DType::F64).unwrap(),
            &y.to_dtype(DType::F64).unwrap(),
        )
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((f64::from(v32) - v64).abs() < 1e-6);
    for t in [0.0, -1.0, f64::NAN] {
        let e = RncLoss::new(RncConfig {
            temperature: t,
            normalize: false,
        })
        .unwrap_err();
        assert!(e.to_string().contains("temperature"), "{e}");
    }
    let v = Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
    let yv = Tensor::new(&[1.0f64, 2.0], &Device::Cpu).unwrap();
    let e = loss.loss_two_views(&v, &v, &yv).unwrap_err();
    assert!(e.to_string().contains("identical"), "{e}");
    // A NaN label is refused (it has no rank), not ranked.
    let e = loss
        .loss(&v, &Tensor::new(&[1.0f64, f64::NAN], &Device::Cpu).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("NaN at row 1"), "{e}");
    let e = loss
        .loss(&x, &Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("2 labels for 3 features"), "{e}");
}

#[test]
fn a_second_backward_recomputes_the_same_gradient() {
    // The first backward takes the gradient the forward pass computed; a second one on the same
    // graph computes it again from the features.
    let mut g = dirkit_core::SplitMix64::new(3);
    let x: Vec<f64> = (0..12).map(|_| g.normal()).collect();
    let v = Var::from_tensor(&Tensor::from_vec(x, (4, 3), &Device::Cpu).unwrap()).unwrap();
    let y = Tensor::new(&[1.0f64, 2.0, 2.0, 5.0], &Device::Cpu).unwrap();
    let l = RncLoss::new(RncConfig::default())
        .unwrap()
        .loss(&v, &y)
        .unwrap();
    let first: Vec<Vec<f64>> = l.backward().unwrap().get(&v).unwrap().to_vec2().unwrap();
    let second: Vec<Vec<f64>> = l.backward().unwrap().get(&v).unwrap().to_vec2().unwrap();
    assert_eq!(first, second);
    assert!(first.iter().flatten().any(|g| *g != 0.0));
}
