//! The regression losses of `dirkit_nn::loss::{elementwise, balanced_mse, ghm}` against
//! `tests/reference/regression_losses.json` (values and gradients, f64 and f32, the file's
//! tolerances), GHM's gradient-density weights against the GHM-C vectors of
//! `discrete_losses.json`, central finite differences for every gradient, and the shape and
//! configuration errors.

use candle_core::{DType, Device, Result, Tensor, Var};
use dirkit_core::{Binning, Gmm1d, LabelDensity, LdsConfig, OutOfRange, Reweight};
use dirkit_nn::loss::balanced_mse::{
    BalancedMse, BalancedMseConfig, BalancedMseVariant, BinPrior, GaussianMixture, bmc_loss,
    bni_loss, gai_loss,
};
use dirkit_nn::loss::elementwise::{
    FocalActivation, FocalConfig, RegressionLoss, focal_l1, focal_mse, huber, l1, mse,
};
use dirkit_nn::loss::ghm::{GhmR, GhmRConfig, GradientDensity};
use serde_json::Value;

const F64_TOL: (f64, f64) = (1e-12, 1e-10); // (atol, rtol)
const F32_TOL: (f64, f64) = (1e-7, 1e-5);
/// Finite-difference step and the largest accepted relative error of a gradient.
const FD_STEP: f64 = 1e-6;
const FD_RTOL: f64 = 1e-6;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/reference/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn fv(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

/// Asserts `|got - want| <= atol + rtol |want|`; returns the used fraction of that budget.
#[track_caller]
fn close(got: f64, want: f64, (atol, rtol): (f64, f64), what: &str) -> f64 {
    let budget = atol + rtol * want.abs();
    assert!(
        (got - want).abs() <= budget,
        "{what}: got {got:e}, want {want:e} (diff {:e})",
        (got - want).abs()
    );
    (got - want).abs() / budget
}

/// [`close`] for every entry; returns the largest used fraction of the budget.
#[track_caller]
fn all_close(got: &[f64], want: &[f64], tol: (f64, f64), what: &str) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    got.iter()
        .zip(want)
        .enumerate()
        .map(|(i, (g, w))| close(*g, *w, tol, &format!("{what}[{i}]")))
        .fold(0.0, f64::max)
}

/// The value of a one-element tensor (rank 0 or 1).
fn scalar(t: &Tensor) -> f64 {
    assert_eq!(t.elem_count(), 1, "not a scalar: {:?}", t.dims());
    vec64(t)[0]
}

fn vec64(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn tensor(v: &[f64], dtype: DType) -> Tensor {
    Tensor::from_slice(v, v.len(), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn var(v: &[f64], dtype: DType) -> Var {
    Var::from_tensor(&tensor(v, dtype)).unwrap()
}

/// Value of `loss(pred)` and its gradient with respect to `pred`, computed in `dtype`.
fn value_grad(
    pred: &[f64],
    dtype: DType,
    loss: impl Fn(&Tensor) -> Result<Tensor>,
) -> (f64, Vec<f64>) {
    let p = var(pred, dtype);
    let l = loss(p.as_tensor()).unwrap();
    let grads = l.backward().unwrap();
    let g = grads.get(p.as_tensor()).expect("no gradient for pred");
    (scalar(&l), vec64(g))
}

/// Central differences of `loss` at `x` (f64), compared with `analytic` by the relative error
/// `max_i |a_i - fd_i| / max_i |a_i|`; returns that error.
#[track_caller]
fn fd_check(x: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64, what: &str) -> f64 {
    let scale = analytic.iter().fold(0.0f64, |m, a| m.max(a.abs()));
    assert!(scale > 0.0, "{what}: zero gradient");
    let mut worst = 0.0f64;
    for i in 0..x.len() {
        let mut up = x.to_vec();
        let mut down = x.to_vec();
        up[i] += FD_STEP;
        down[i] -= FD_STEP;
        let fd = (loss(&up) - loss(&down)) / (2.0 * FD_STEP);
        worst = worst.max((analytic[i] - fd).abs() / scale);
    }
    assert!(
        worst < FD_RTOL,
        "{what}: finite-difference relative error {worst:e}"
    );
    worst
}

struct Inputs {
    pred: Vec<f64>,
    target: Vec<f64>,
    weight: Vec<f64>,
    gmm: (Vec<f64>, Vec<f64>, Vec<f64>),
    centres: Vec<f64>,
    probs: Vec<f64>,
    counts: Vec<f64>,
}

fn inputs(file: &Value) -> Inputs {
    let i = &file["inputs"];
    Inputs {
        pred: fv(&i["pred"]),
        target: fv(&i["target"]),
        weight: fv(&i["weight"]),
        gmm: (
            fv(&i["gmm"]["weights"]),
            fv(&i["gmm"]["means"]),
            fv(&i["gmm"]["variances"]),
        ),
        centres: fv(&i["bni_centers"]),
        probs: fv(&i["bni_probs"]),
        counts: fv(&i["bni_counts"]),
    }
}

/// The element-wise losses of the file, by key: (name, loss).
fn elementwise_losses(file: &Value) -> Vec<(&'static str, RegressionLoss)> {
    let i = &file["inputs"];
    let beta = f(&i["focal_beta"]);
    let gamma = f(&i["focal_gamma"]);
    let focal = |activation| FocalConfig {
        beta,
        gamma,
        activation,
    };
    vec![
        ("mse", RegressionLoss::Mse),
        ("l1", RegressionLoss::L1),
        (
            "huber",
            RegressionLoss::Huber {
                beta: f(&i["huber_beta"]),
            },
        ),
        (
            "focal_mse_sigmoid",
            RegressionLoss::FocalMse(focal(FocalActivation::Sigmoid)),
        ),
        (
            "focal_mse_tanh",
            RegressionLoss::FocalMse(focal(FocalActivation::Tanh)),
        ),
        (
            "focal_l1_sigmoid",
            RegressionLoss::FocalL1(focal(FocalActivation::Sigmoid)),
        ),
        (
            "focal_l1_tanh",
            RegressionLoss::FocalL1(focal(FocalActivation::Tanh)),
        ),
    ]
}

fn check_elementwise(dtype: DType, tol: (f64, f64)) {
    let file = load("regression_losses.json");
    let inp = inputs(&file);
    let mut worst = 0.0f64;
    for (name, loss) in elementwise_losses(&file) {
        for weighted in [false, true] {
            let key = if weighted { "weighted" } else { "unweighted" };
            let want = &file["elementwise"][name][key];
            let t = tensor(&inp.target, dtype);
            let w = tensor(&inp.weight, dtype);
            let (v, g) = value_grad(&inp.pred, dtype, |p| {
                loss.compute(p, &t, weighted.then_some(&w))
            });
            let what = format!("{name} {key} {dtype:?}");
            let a = close(v, f(&want["value"]), tol, &what);
            let b = all_close(
                &g,
                &fv(&want["grad_pred"]),
                tol,
                &format!("{what} grad_pred"),
            );
            worst = worst.max(a).max(b);
        }
    }
    println!("elementwise {dtype:?}: worst error {worst:.2e} of the tolerance");
}

#[test]
fn elementwise_matches_reference_f64() {
    check_elementwise(DType::F64, F64_TOL);
}

#[test]
fn elementwise_matches_reference_f32() {
    check_elementwise(DType::F32, F32_TOL);
}

#[test]
fn free_functions_equal_the_enum() {
    let file = load("regression_losses.json");
    let inp = inputs(&file);
    let p = tensor(&inp.pred, DType::F64);
    let t = tensor(&inp.target, DType::F64);
    let w = tensor(&inp.weight, DType::F64);
    let fc = FocalConfig::default();
    let direct = [
        mse(&p, &t, Some(&w)).unwrap(),
        l1(&p, &t, Some(&w)).unwrap(),
        huber(&p, &t, 1.0, Some(&w)).unwrap(),
        focal_mse(&p, &t, &fc, Some(&w)).unwrap(),
        focal_l1(&p, &t, &fc, Some(&w)).unwrap(),
    ];
    let via_enum = [
        RegressionLoss::Mse,
        RegressionLoss::L1,
        RegressionLoss::Huber { beta: 1.0 },
        RegressionLoss::FocalMse(fc),
        RegressionLoss::FocalL1(fc),
    ]
    .map(|l| l.compute(&p, &t, Some(&w)).unwrap());
    for (a, b) in direct.iter().zip(&via_enum) {
        assert_eq!(scalar(a), scalar(b));
    }
}

/// Builds the file's Balanced MSE variant `name` ("bmc", "gai", "bni").
fn variant(name: &str, inp: &Inputs) -> BalancedMseVariant {
    match name {
        "bmc" => BalancedMseVariant::Bmc,
        "gai" => BalancedMseVariant::Gai(
            GaussianMixture::new(&inp.gmm.0, &inp.gmm.1, &inp.gmm.2).unwrap(),
        ),
        "bni" => BalancedMseVariant::Bni(BinPrior::new(&inp.centres, &inp.probs).unwrap()),
        _ => unreachable!(),
    }
}

/// The free-function form of variant `name` with `sigma` as a tensor.
fn balanced_free(name: &str, inp: &Inputs, p: &Tensor, t: &Tensor, sigma: &Tensor) -> Tensor {
    match name {
        "bmc" => bmc_loss(p, t, sigma),
        "gai" => gai_loss(p, t, sigma, &inp.gmm.0, &inp.gmm.1, &inp.gmm.2),
        "bni" => bni_loss(p, t, sigma, &inp.centres, &inp.probs),
        _ => unreachable!(),
    }
    .unwrap()
}

fn check_balanced(dtype: DType, tol: (f64, f64)) {
    let file = load("regression_losses.json");
    let inp = inputs(&file);
    let mut worst = 0.0f64;
    for case in file["balanced_mse"]["cases"].as_array().unwrap() {
        let sigma = f(&case["sigma"]);
        for name in ["bmc", "gai", "bni"] {
            let want = &case[name];
            let what = format!("{name} sigma={sigma} {dtype:?}");
            // The configured struct, with sigma as its Var.
            let cfg = BalancedMseConfig {
                variant: variant(name, &inp),
                init_sigma: sigma,
            };
            let loss = BalancedMse::new(cfg, &Device::Cpu, dtype).unwrap();
            close(
                loss.noise_var().unwrap(),
                f(&case["noise_var_s2"]),
                tol,
                &what,
            );
            let p = var(&inp.pred, dtype);
            let t = tensor(&inp.target, dtype);
            let l = loss.loss(p.as_tensor(), &t).unwrap();
            let grads = l.backward().unwrap();
            let a = close(scalar(&l), f(&want["value"]), tol, &what);
            let gp = vec64(grads.get(p.as_tensor()).unwrap());
            let b = all_close(
                &gp,
                &fv(&want["grad_pred"]),
                tol,
                &format!("{what} grad_pred"),
            );
            let gs = scalar(grads.get(loss.sigma().as_tensor()).unwrap());
            let c = close(
                gs,
                f(&want["grad_sigma"]),
                tol,
                &format!("{what} grad_sigma"),
            );
            worst = worst.max(a).max(b).max(c);
            // The free function agrees (same graph, built per call).
            let s = var(&[sigma], dtype);
            let l2 = balanced_free(name, &inp, p.as_tensor(), &t, s.as_tensor());
            let g2 = l2.backward().unwrap();
            close(scalar(&l2), f(&want["value"]), tol, &format!("{what} free"));
            let gs2 = scalar(g2.get(s.as_tensor()).unwrap());
            close(
                gs2,
                f(&want["grad_sigma"]),
                tol,
                &format!("{what} free grad_sigma"),
            );
        }
    }
    println!("balanced mse {dtype:?}: worst error {worst:.2e} of the tolerance");
}

#[test]
fn balanced_mse_matches_reference_f64() {
    check_balanced(DType::F64, F64_TOL);
}

#[test]
fn balanced_mse_matches_reference_f32() {
    check_balanced(DType::F32, F32_TOL);
}

#[test]
fn bni_from_counts_and_gai_from_gmm() {
    let file = load("regression_losses.json");
    let inp = inputs(&file);
    let case = &file["balanced_mse"]["cases"][1];
    let counts: Vec<u64> = inp.counts.iter().map(|&c| c as u64).collect();
    let prior = BinPrior::from_counts(&inp.centres, &counts).unwrap();
    all_close(prior.probs(), &inp.probs, F64_TOL, "probs from counts");
    let gmm = Gmm1d {
        weights: inp.gmm.0.clone(),
        means: inp.gmm.1.clone(),
        variances: inp.gmm.2.clone(),
    };
    let mixture = GaussianMixture::from_gmm(&gmm).unwrap();
    let p = tensor(&inp.pred, DType::F64);
    let t = tensor(&inp.target, DType::F64);
    for (name, v) in [
        ("bni", BalancedMseVariant::Bni(prior)),
        ("gai", BalancedMseVariant::Gai(mixture)),
    ] {
        let cfg = BalancedMseConfig {
            variant: v,
            init_sigma: 3.0,
        };
        let loss = BalancedMse::new(cfg, &Device::Cpu, DType::F64).unwrap();
        let got = scalar(&loss.loss(&p, &t).unwrap());
        close(got, f(&case[name]["value"]), F64_TOL, name);
    }
}

#[test]
fn bin_prior_from_label_density() {
    let labels = [0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 5.0];
    let bins = Binning::new(0.0, 1.0, 6).unwrap();
    let cfg = LdsConfig {
        reweight: Reweight::SqrtInverse,
        lds: None,
        ..LdsConfig::default()
    };
    let density = LabelDensity::fit(&labels, bins, OutOfRange::Clip, &cfg).unwrap();
    let prior = BinPrior::from_label_density(&density).unwrap();
    // Empty bins 3 and 4 are dropped; integer-label mode uses the bin values 0, 1, 2, 5.
    assert_eq!(prior.centres(), &[0.0, 1.0, 2.0, 5.0]);
    let d = [1.0, 2f64.sqrt(), 2.0, 1.0];
    let total: f64 = d.iter().sum();
    let want: Vec<f64> = d.iter().map(|x| x / total).collect();
    all_close(
        prior.probs(),
        &want,
        F64_TOL,
        "normalised effective density",
    );
}

#[test]
fn balanced_mse_is_stable_for_far_predictions() {
    // Logits of -(100)²/(2·0.01) underflow exp() in f32: the log-sum-exp must not give -inf.
    let pred = [100.0, -50.0, 3.0];
    let target = [0.0, 1.0, 2.0];
    for dtype in [DType::F32, DType::F64] {
        let p = var(&pred, dtype);
        let t = tensor(&target, dtype);
        let s = var(&[0.1], dtype);
        for l in [
            bmc_loss(p.as_tensor(), &t, s.as_tensor()).unwrap(),
            bni_loss(p.as_tensor(), &t, s.as_tensor(), &[0.0, 5.0], &[0.5, 0.5]).unwrap(),
            gai_loss(p.as_tensor(), &t, s.as_tensor(), &[1.0], &[1.0], &[0.01]).unwrap(),
        ] {
            assert!(scalar(&l).is_finite(), "{dtype:?}: {}", scalar(&l));
            let g = l.backward().unwrap();
            assert!(
                vec64(g.get(p.as_tensor()).unwrap())
                    .iter()
                    .all(|x| x.is_finite())
            );
            assert!(scalar(g.get(s.as_tensor()).unwrap()).is_finite());
        }
    }
}

// ---------------------------------------------------------------- finite differences

fn f64_loss(loss: &RegressionLoss, x: &[f64], t: &[f64], w: Option<&[f64]>) -> f64 {
    let w = w.map(|w| tensor(w, DType::F64));
    scalar(
        &loss
            .compute(&tensor(x, DType::F64), &tensor(t, DType::F64), w.as_ref())
            .unwrap(),
    )
}

#[test]
fn elementwise_gradients_match_finite_differences() {
    let file = load("regression_losses.json");
    let inp = inputs(&file);
    let mut losses = elementwise_losses(&file);
    // Other exponents exercise the powf path, including γ < 1 with its floor.
    for gamma in [0.5, 2.0] {
        for activation in [FocalActivation::Sigmoid, FocalActivation::Tanh] {
            let c = FocalConfig {
                beta: 0.7,
                gamma,
                activation,
            };
            losses.push(("focal_mse_gamma", RegressionLoss::FocalMse(c)));
            losses.push(("focal_l1_gamma", RegressionLoss::FocalL1(c)));
        }
    }
    // Huber with β = 0.45: errors on both sides of the kink, none within 0.05 of it.
    losses.push(("huber_0.45", RegressionLoss::Huber { beta: 0.45 }));
    let mut report = Vec::new();
    for (name, loss) in &losses {
        for w in [None, Some(inp.weight.as_slice())] {
            let t = tensor(&inp.target, DType::F64);
            let wt = w.map(|w| tensor(w, DType::F64));
            let (_, g) = value_grad(&inp.pred, DType::F64, |p| loss.compute(p, &t, wt.as_ref()));
            let what = format!("{name} {loss:?} weighted={}", w.is_some());
            let err = fd_check(&inp.pred, &g, |x| f64_loss(loss, x, &inp.target, w), &what);
            report.push((what, err));
        }
    }
    for (what, err) in report {
        println!("fd {what}: {err:.2e}");
    }
}

#[test]
fn balanced_mse_gradients_match_finite_differences() {
    let file = load("regression_losses.json");
    let inp = inputs(&file);
    let t = tensor(&inp.target, DType::F64);
    for sigma in [1.0, 3.0, 0.7] {
        for name in ["bmc", "gai", "bni"] {
            let what = format!("{name} sigma={sigma}");
            let s = var(&[sigma], DType::F64);
            let p = var(&inp.pred, DType::F64);
            let l = balanced_free(name, &inp, p.as_tensor(), &t, s.as_tensor());
            let grads = l.backward().unwrap();
            let gp = vec64(grads.get(p.as_tensor()).unwrap());
            let gs = scalar(grads.get(s.as_tensor()).unwrap());
            let at = |x: &[f64], sg: f64| {
                scalar(&balanced_free(
                    name,
                    &inp,
                    &tensor(x, DType::F64),
                    &t,
                    &tensor(&[sg], DType::F64),
                ))
            };
            let e1 = fd_check(&inp.pred, &gp, |x| at(x, sigma), &format!("{what} pred"));
            // The factor 2·s2 is a constant for the gradient: differentiate
            // 2σ0² · (loss(σ) / 2σ²) at σ0.
            let fixed =
                |sg: &[f64]| 2.0 * sigma * sigma * at(&inp.pred, sg[0]) / (2.0 * sg[0] * sg[0]);
            let e2 = fd_check(&[sigma], &[gs], fixed, &format!("{what} sigma"));
            println!("fd {what}: pred {e1:.2e}, sigma {e2:.2e}");
        }
    }
}

// ---------------------------------------------------------------- GHM-R

/// GHM-R computed independently in f64 (mmdetection's `GHMR.forward` step by step).
fn ghmr_by_hand(pred: &[f64], target: &[f64], mu: f64, bins: usize) -> (f64, Vec<f64>) {
    let n = pred.len() as f64;
    let d: Vec<f64> = pred.iter().zip(target).map(|(p, t)| p - t).collect();
    let g: Vec<f64> = d
        .iter()
        .map(|d| d.abs() / (d * d + mu * mu).sqrt())
        .collect();
    let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 / bins as f64).collect();
    edges[bins] += 1e-6;
    let mut w = vec![0.0; d.len()];
    let mut nonempty = 0.0;
    for i in 0..bins {
        let inds: Vec<usize> = (0..d.len())
            .filter(|&j| g[j] >= edges[i] && g[j] < edges[i + 1])
            .collect();
        if !inds.is_empty() {
            nonempty += 1.0;
            for &j in &inds {
                w[j] = n / inds.len() as f64;
            }
        }
    }
    w.iter_mut().for_each(|w| *w /= nonempty);
    let value = d
        .iter()
        .zip(&w)
        .map(|(d, w)| w * ((d * d + mu * mu).sqrt() - mu))
        .sum::<f64>()
        / n;
    let grad = d
        .iter()
        .zip(&w)
        .map(|(d, w)| w * d / (d * d + mu * mu).sqrt() / n)
        .collect();
    (value, grad)
}

/// Predictions whose gradient norms spread over several bins (|d| from 0.001 to 5).
fn ghm_batch() -> (Vec<f64>, Vec<f64>) {
    let d = [
        0.001, -0.004, 0.009, 0.013, -0.02, 0.031, -0.05, 0.09, 0.25, -0.7, 1.3, 5.0, -0.006, 0.017,
    ];
    let target: Vec<f64> = (0..d.len()).map(|i| 0.5 * i as f64 - 2.0).collect();
    let pred = target.iter().zip(d).map(|(t, d)| t + d).collect();
    (pred, target)
}

#[test]
fn ghmr_matches_independent_computation() {
    let (pred, target) = ghm_batch();
    let (want_v, want_g) = ghmr_by_hand(&pred, &target, 0.02, 10);
    for (dtype, tol) in [(DType::F64, F64_TOL), (DType::F32, (1e-6, 1e-5))] {
        let mut ghm = GhmR::new(GhmRConfig::default()).unwrap();
        let t = tensor(&target, dtype);
        // (B, 1) predictions against (B) targets.
        let (v, g) = value_grad(&pred, dtype, |p| {
            ghm.clone().loss(&p.reshape((pred.len(), 1))?, &t)
        });
        close(v, want_v, tol, &format!("ghm-r value {dtype:?}"));
        all_close(&g, &want_g, tol, &format!("ghm-r grad {dtype:?}"));
        ghm.loss(&tensor(&pred, dtype), &t).unwrap();
        assert!(ghm.density().acc_sum().iter().all(|&a| a == 0.0));
    }
}

#[test]
fn ghmr_gradients_match_finite_differences() {
    let (pred, target) = ghm_batch();
    for momentum in [0.0, 0.75] {
        let mut ghm = GhmR::new(GhmRConfig {
            momentum,
            ..GhmRConfig::default()
        })
        .unwrap();
        // One call first, so that the moving average has a history.
        let t = tensor(&target, DType::F64);
        ghm.loss(&tensor(&pred, DType::F64), &t).unwrap();
        let (_, g) = value_grad(&pred, DType::F64, |p| ghm.clone().loss(p, &t));
        let err = fd_check(
            &pred,
            &g,
            |x| scalar(&ghm.clone().loss(&tensor(x, DType::F64), &t).unwrap()),
            &format!("ghm-r momentum {momentum}"),
        );
        println!("fd ghm-r momentum {momentum}: {err:.2e}");
    }
}

#[test]
fn gradient_density_matches_ghmc_vectors() {
    let file = load("discrete_losses.json");
    let ghmc = &file["ghmc"];
    let rows = |v: &Value| -> Vec<f64> { v.as_array().unwrap().iter().flat_map(fv).collect() };
    let tol = (1e-12, 1e-9);
    for (key, bins) in [("bins10_momentum0", 10), ("bins30_momentum0", 30)] {
        let case = &ghmc[key];
        let mut density = GradientDensity::new(bins, 0.0).unwrap();
        let w = density.weights(&rows(&case["g"]));
        all_close(&w, &rows(&case["weights"]), tol, key);
    }
    for (key, g_key, bins) in [
        (
            "bins10_momentum0.75_two_calls_same_input",
            "bins10_momentum0",
            10,
        ),
        (
            "bins30_momentum0.75_two_calls_same_input",
            "bins30_momentum0",
            30,
        ),
    ] {
        let case = &ghmc[key];
        let g = rows(&ghmc[g_key]["g"]);
        let mut density = GradientDensity::new(bins, 0.75).unwrap();
        for call in ["1", "2"] {
            let w = density.weights(&g);
            all_close(&w, &rows(&case[format!("weights_call{call}")]), tol, key);
            all_close(
                density.acc_sum(),
                &fv(&case[format!("acc_sum_after_call{call}")]),
                tol,
                key,
            );
        }
    }
}

#[test]
fn gradient_density_edges() {
    let mut d = GradientDensity::new(10, 0.0).unwrap();
    // 0.3 is in bin 3 (edge comparisons), 1.0 in the last bin, NaN and > 1 get no weight.
    let w = d.weights(&[0.3, 0.3, 1.0, f64::NAN, 1.5]);
    assert_eq!(w[3], 0.0);
    assert_eq!(w[4], 0.0);
    // Two non-empty bins, tot 5: 5 / (2 · 2) and 5 / (1 · 2).
    assert_eq!(&w[..3], &[1.25, 1.25, 2.5]);
}

// ---------------------------------------------------------------- shapes and configs

#[test]
fn shapes_are_checked() {
    let p = tensor(&[1.0, 2.0, 3.0], DType::F64);
    let t = tensor(&[1.5, 2.0, 2.0], DType::F64);
    let want = scalar(&mse(&p, &t, None).unwrap());
    // (B, 1) against (B), in either order, reads the same values (no broadcasting).
    let p1 = p.reshape((3, 1)).unwrap();
    let t1 = t.reshape((3, 1)).unwrap();
    assert_eq!(scalar(&mse(&p1, &t, None).unwrap()), want);
    assert_eq!(scalar(&mse(&p, &t1, None).unwrap()), want);
    let w1 = tensor(&[1.0, 1.0, 1.0], DType::F32)
        .reshape((3, 1))
        .unwrap();
    assert_eq!(scalar(&mse(&p1, &t1, Some(&w1)).unwrap()), want);

    let err = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let short = tensor(&[1.0, 2.0], DType::F64);
    assert!(err(mse(&p, &short, None)).contains("pred has 3 values"));
    assert!(err(l1(&p, &t, Some(&short))).contains("weights have 2 values"));
    let wide = Tensor::zeros((3, 2), DType::F64, &Device::Cpu).unwrap();
    assert!(err(huber(&wide, &t, 1.0, None)).contains("(B) or (B, 1)"));
    let cube = Tensor::zeros((3, 1, 1), DType::F64, &Device::Cpu).unwrap();
    assert!(err(focal_l1(&p, &cube, &FocalConfig::default(), None)).contains("target must"));
    let empty = tensor(&[], DType::F64);
    assert!(err(mse(&empty, &empty, None)).contains("empty batch"));

    let s = tensor(&[1.0], DType::F64);
    assert!(err(bmc_loss(&p, &short, &s)).contains("pred has 3 values"));
    assert!(err(bmc_loss(&p, &t, &short)).contains("sigma must hold one value"));
    assert!(
        err(GhmR::new(GhmRConfig::default()).unwrap().loss(&wide, &t)).contains("(B) or (B, 1)")
    );
    let sigma2 = Var::zeros(2, DType::F64, &Device::Cpu).unwrap();
    assert!(BalancedMse::with_sigma(BalancedMseConfig::default(), sigma2).is_err());
}

#[test]
fn invalid_configs_are_refused() {
    let p = tensor(&[1.0, 2.0], DType::F64);
    let t = tensor(&[1.5, 2.0], DType::F64);
    for (beta, gamma) in [
        (0.0, 1.0),
        (-0.2, 1.0),
        (f64::NAN, 1.0),
        (0.2, 0.0),
        (0.2, f64::INFINITY),
    ] {
        let c = FocalConfig {
            beta,
            gamma,
            ..FocalConfig::default()
        };
        assert!(c.validate().is_err(), "{c:?}");
        assert!(focal_mse(&p, &t, &c, None).is_err());
        assert!(RegressionLoss::FocalL1(c).compute(&p, &t, None).is_err());
    }
    for beta in [0.0, -1.0, f64::NAN] {
        assert!(huber(&p, &t, beta, None).is_err());
        assert!(RegressionLoss::Huber { beta }.validate().is_err());
    }
    assert!(RegressionLoss::default().validate().is_ok());

    for init_sigma in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let c = BalancedMseConfig {
            init_sigma,
            ..BalancedMseConfig::default()
        };
        assert!(BalancedMse::new(c, &Device::Cpu, DType::F64).is_err());
    }
    assert!(GaussianMixture::new(&[1.0], &[0.0], &[-1.0]).is_err());
    assert!(GaussianMixture::new(&[0.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]).is_err());
    assert!(GaussianMixture::new(&[0.5, 0.5], &[0.0], &[1.0, 1.0]).is_err());
    assert!(GaussianMixture::new(&[], &[], &[]).is_err());
    assert!(GaussianMixture::new(&[1.0], &[f64::NAN], &[1.0]).is_err());
    assert!(BinPrior::new(&[0.0, 1.0], &[0.5, -0.5]).is_err());
    assert!(BinPrior::new(&[0.0, 1.0], &[0.5]).is_err());
    assert!(BinPrior::new(&[0.0, f64::INFINITY], &[0.5, 0.5]).is_err());
    let s = tensor(&[1.0], DType::F64);
    assert!(gai_loss(&p, &t, &s, &[1.0], &[0.0], &[f64::NAN]).is_err());
    assert!(bni_loss(&p, &t, &s, &[0.0], &[0.0]).is_err());
    // Zero-probability bins are dropped, the rest renormalised.
    let prior = BinPrior::new(&[0.0, 1.0, 2.0], &[2.0, 0.0, 6.0]).unwrap();
    assert_eq!(prior.centres(), &[0.0, 2.0]);
    assert_eq!(prior.probs(), &[0.25, 0.75]);

    for (mu, bins, momentum) in [
        (0.0, 10, 0.0),
        (0.02, 0, 0.0),
        (0.02, 10, 1.0),
        (0.02, 10, -0.1),
    ] {
        let c = GhmRConfig { mu, bins, momentum };
        assert!(GhmR::new(c).is_err(), "{c:?}");
    }
}

#[test]
fn configs_round_trip_through_serde() {
    let focal: RegressionLoss = serde_json::from_str(r#"{"kind": "focal-l1"}"#).unwrap();
    assert_eq!(focal, RegressionLoss::FocalL1(FocalConfig::default()));
    let tanh: RegressionLoss =
        serde_json::from_str(r#"{"kind": "focal-mse", "gamma": 2.0, "activation": "tanh"}"#)
            .unwrap();
    assert_eq!(
        tanh,
        RegressionLoss::FocalMse(FocalConfig {
            gamma: 2.0,
            activation: FocalActivation::Tanh,
            ..FocalConfig::default()
        })
    );
    let h: RegressionLoss = serde_json::from_str(r#"{"kind": "huber"}"#).unwrap();
    assert_eq!(h, RegressionLoss::Huber { beta: 1.0 });
    assert!(serde_json::from_str::<RegressionLoss>(r#"{"kind": "l3"}"#).is_err());
    for l in [
        RegressionLoss::L1,
        RegressionLoss::Mse,
        RegressionLoss::Huber { beta: 0.5 },
        tanh,
    ] {
        let s = serde_json::to_string(&l).unwrap();
        assert_eq!(
            serde_json::from_str::<RegressionLoss>(&s).unwrap(),
            l,
            "{s}"
        );
    }

    let cfg = BalancedMseConfig {
        variant: BalancedMseVariant::Gai(
            GaussianMixture::new(&[0.5, 0.5], &[1.0, 2.0], &[1.0, 4.0]).unwrap(),
        ),
        init_sigma: 2.0,
    };
    let s = serde_json::to_string(&cfg).unwrap();
    assert_eq!(
        serde_json::from_str::<BalancedMseConfig>(&s).unwrap(),
        cfg,
        "{s}"
    );
    let bni: BalancedMseConfig = serde_json::from_str(
        r#"{"variant": {"kind": "bni", "centres": [0.5, 1.5], "probs": [1, 3]}}"#,
    )
    .unwrap();
    assert_eq!(bni.init_sigma, 1.0);
    let BalancedMseVariant::Bni(prior) = &bni.variant else {
        panic!("{bni:?}")
    };
    assert_eq!(prior.probs(), &[0.25, 0.75]);
    // A prior that does not validate is refused at deserialisation.
    let bad = r#"{"variant": {"kind": "gai", "weights": [1], "means": [0], "variances": [-1]}}"#;
    assert!(serde_json::from_str::<BalancedMseConfig>(bad).is_err());
    assert_eq!(
        serde_json::from_str::<BalancedMseConfig>("{}").unwrap(),
        BalancedMseConfig::default()
    );
    let ghm: GhmRConfig = serde_json::from_str(r#"{"momentum": 0.75}"#).unwrap();
    assert_eq!(ghm.bins, 10);
    assert_eq!(ghm.mu, 0.02);
}

#[test]
fn frozen_or_separately_optimised_sigma() {
    use candle_nn::Optimizer;
    let loss = BalancedMse::new(BalancedMseConfig::default(), &Device::Cpu, DType::F32).unwrap();
    let mut opt = candle_nn::SGD::new(vec![loss.sigma().clone()], 0.1).unwrap();
    let p = tensor(&[0.0, 5.0, 10.0], DType::F32);
    let t = tensor(&[1.0, 4.0, 12.0], DType::F32);
    let before = loss.noise_var().unwrap();
    opt.backward_step(&loss.loss(&p, &t).unwrap()).unwrap();
    assert_ne!(loss.noise_var().unwrap(), before);
}

#[test]
fn exact_zero_errors_have_zero_gradient() {
    // e = 0 for the first sample: subgradient 0 (as PyTorch), and no NaN from g^γ with γ < 1.
    let pred = [1.0, 2.5];
    let t = tensor(&[1.0, 2.0], DType::F64);
    let c = FocalConfig {
        gamma: 0.5,
        ..FocalConfig::default()
    };
    for loss in [
        RegressionLoss::L1,
        RegressionLoss::Mse,
        RegressionLoss::Huber { beta: 1.0 },
        RegressionLoss::FocalL1(c),
        RegressionLoss::FocalMse(c),
        RegressionLoss::FocalL1(FocalConfig::default()),
    ] {
        let (v, g) = value_grad(&pred, DType::F64, |p| loss.compute(p, &t, None));
        assert!(v.is_finite(), "{loss:?}");
        assert_eq!(g[0], 0.0, "{loss:?}");
        assert!(g[1].is_finite() && g[1] > 0.0, "{loss:?}");
    }
}

/// A prior as (weights, locations, variances); bins have no variances.
type PriorSlices<'a> = (&'a [f64], &'a [f64], Option<&'a [f64]>);

/// Balanced MSE written directly as candle tensor ops (log-sum-exp over a `B × K` logit
/// matrix), independent of the library's fused host computation.
fn balanced_by_tensor_ops(
    p: &Tensor,
    t: &Tensor,
    sigma: &Tensor,
    prior: Option<PriorSlices>,
) -> Tensor {
    let dev = p.device();
    let s2 = sigma.reshape(()).unwrap().sqr().unwrap();
    let col = p.unsqueeze(1).unwrap();
    let (log_w, locs, var) = match prior {
        None => (
            Tensor::zeros(t.dim(0).unwrap(), DType::F64, dev).unwrap(),
            t.clone(),
            None,
        ),
        Some((w, m, v)) => (
            tensor(&w.iter().map(|w| w.ln()).collect::<Vec<_>>(), DType::F64),
            tensor(m, DType::F64),
            v.map(|v| tensor(v, DType::F64)),
        ),
    };
    let v = match &var {
        Some(v) => v.broadcast_add(&s2).unwrap(),
        None => s2.broadcast_as(locs.dim(0).unwrap()).unwrap(),
    };
    let d2 = col
        .broadcast_sub(&locs.unsqueeze(0).unwrap())
        .unwrap()
        .sqr()
        .unwrap();
    let mut a = log_w;
    if var.is_some() {
        a = (a - (v.log().unwrap() * 0.5).unwrap()).unwrap();
    }
    let logits = d2
        .broadcast_div(&(&v * 2.0).unwrap().unsqueeze(0).unwrap())
        .unwrap()
        .neg()
        .unwrap()
        .broadcast_add(&a.unsqueeze(0).unwrap())
        .unwrap();
    let lse = logits.log_sum_exp(1).unwrap();
    let two_s2 = (&s2 * 2.0).unwrap();
    let mut per = ((p - t)
        .unwrap()
        .sqr()
        .unwrap()
        .broadcast_div(&two_s2)
        .unwrap()
        + lse)
        .unwrap();
    if var.is_some() {
        per = per
            .broadcast_add(&(s2.log().unwrap() * 0.5).unwrap())
            .unwrap();
    }
    (per.mean_all().unwrap() * two_s2.detach()).unwrap()
}

#[test]
fn balanced_mse_equals_plain_tensor_ops_on_a_larger_batch() {
    // 64 long-tailed labels, predictions up to 12 units off, 100 bins, 4 components.
    let mut s = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let target: Vec<f64> = (0..64).map(|_| 100.0 * next().powi(3)).collect();
    let pred: Vec<f64> = target.iter().map(|y| y + 24.0 * (next() - 0.5)).collect();
    let centres: Vec<f64> = (0..100).map(|b| b as f64 + 0.5).collect();
    let counts: Vec<f64> = (0..100).map(|b| ((b * 37) % 11) as f64).collect();
    let total: f64 = counts.iter().sum();
    let probs: Vec<f64> = counts.iter().map(|c| c / total).collect();
    let (kept_c, kept_p): (Vec<f64>, Vec<f64>) = centres
        .iter()
        .zip(&probs)
        .filter(|(_, p)| **p > 0.0)
        .map(|(c, p)| (*c, *p))
        .unzip();
    let gmm = (
        vec![0.4, 0.3, 0.2, 0.1],
        vec![5.0, 20.0, 45.0, 80.0],
        vec![9.0, 49.0, 100.0, 400.0],
    );
    let t = tensor(&target, DType::F64);
    for sigma in [0.3, 1.0, 8.0] {
        for name in ["bmc", "gai", "bni"] {
            let run = |lib: bool| {
                let p = var(&pred, DType::F64);
                let sv = var(&[sigma], DType::F64);
                let l = match (lib, name) {
                    (true, "bmc") => bmc_loss(p.as_tensor(), &t, sv.as_tensor()).unwrap(),
                    (true, "gai") => {
                        gai_loss(p.as_tensor(), &t, sv.as_tensor(), &gmm.0, &gmm.1, &gmm.2).unwrap()
                    }
                    (true, _) => {
                        bni_loss(p.as_tensor(), &t, sv.as_tensor(), &centres, &probs).unwrap()
                    }
                    (false, "bmc") => {
                        balanced_by_tensor_ops(p.as_tensor(), &t, sv.as_tensor(), None)
                    }
                    (false, "gai") => balanced_by_tensor_ops(
                        p.as_tensor(),
                        &t,
                        sv.as_tensor(),
                        Some((&gmm.0, &gmm.1, Some(&gmm.2))),
                    ),
                    (false, _) => balanced_by_tensor_ops(
                        p.as_tensor(),
                        &t,
                        sv.as_tensor(),
                        Some((&kept_p, &kept_c, None)),
                    ),
                };
                let g = l.backward().unwrap();
                let mut out = vec![scalar(&l), scalar(g.get(sv.as_tensor()).unwrap())];
                out.extend(vec64(g.get(p.as_tensor()).unwrap()));
                out
            };
            let (lib, ops) = (run(true), run(false));
            all_close(&lib, &ops, (1e-12, 1e-10), &format!("{name} sigma={sigma}"));
        }
    }
}
