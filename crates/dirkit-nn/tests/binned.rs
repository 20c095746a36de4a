//! The discretised-label losses of `dirkit_nn::binned` against
//! `tests/reference/discrete_losses.json` (f64 at rtol 1e-9, f32 at 1e-5, its tolerances), central
//! finite differences for every loss's gradient, decoders on hand-made distributions, the
//! decoupling tools and the `BinnedHead`.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dirkit_core::{Binning, LabelDensity, LdsConfig, OutOfRange};
use dirkit_nn::binned::*;
use serde_json::Value;

const F64_RTOL: f64 = 1e-9;
const F32_RTOL: f64 = 1e-5;

fn load() -> Value {
    let path = format!(
        "{}/../../tests/reference/discrete_losses.json",
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

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(fv).collect()
}

#[track_caller]
fn close(got: f64, want: f64, rtol: f64, what: &str) {
    let budget = 1e-12 + rtol * want.abs();
    assert!(
        (got - want).abs() <= budget,
        "{what}: got {got:e}, want {want:e} (diff {:e})",
        (got - want).abs()
    );
}

#[track_caller]
fn all_close(got: &[f64], want: &[f64], rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        close(*g, *w, rtol, &format!("{what}[{i}]"));
    }
}

fn vec1(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar().unwrap()
}

/// The file's logits (3×5), labels and class counts, in `dtype`.
struct Case {
    logits: Tensor,
    labels: Tensor,
    counts: Vec<f64>,
    values: Vec<f64>,
}

fn case(file: &Value, dtype: DType) -> Case {
    let meta = &file["meta"];
    let l = rows(&meta["logits"]);
    let (n, c) = (l.len(), l[0].len());
    let logits = Tensor::from_vec(l.concat(), (n, c), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let y: Vec<u32> = fv(&meta["labels"]).iter().map(|&v| v as u32).collect();
    Case {
        logits,
        labels: Tensor::new(y, &Device::Cpu).unwrap(),
        counts: fv(&meta["class_counts"]),
        values: (0..c).map(|k| k as f64).collect(),
    }
}

#[test]
fn cross_entropy_logit_adjustment_and_balanced_softmax() -> Result<()> {
    let file = load();
    for (dtype, rtol) in [(DType::F64, F64_RTOL), (DType::F32, F32_RTOL)] {
        let c = case(&file, dtype);
        all_close(
            &vec1(&cross_entropy_terms(&c.logits, &c.labels)?),
            &fv(&file["plain_ce"]["per_sample"]),
            rtol,
            "ce",
        );
        close(
            scalar(&cross_entropy(&c.logits, &c.labels)?),
            f(&file["plain_ce"]["mean"]),
            rtol,
            "ce mean",
        );
        let la = &file["logit_adjustment"];
        let prior = ClassPrior::from_counts(&c.counts)?;
        all_close(prior.probabilities(), &fv(&la["prior_pi"]), 1e-15, "prior");
        for tau in ["0.5", "1.0", "2.0"] {
            let t: f64 = tau.parse().unwrap();
            let case = &la[format!("loss_tau{tau}")];
            let terms = logit_adjusted_terms(&c.logits, &c.labels, &prior, t)?;
            all_close(
                &vec1(&terms),
                &fv(&case["per_sample"]),
                rtol,
                &format!("LA τ={tau}"),
            );
            close(
                scalar(&reduce(&terms, None, Reduction::Mean)?),
                f(&case["mean"]),
                rtol,
                "LA mean",
            );
            let post = &la[format!("posthoc_tau{tau}")];
            let adjusted = posthoc_adjust(&c.logits, &prior, t, None)?;
            all_close(
                &vec1(&adjusted),
                &rows(&post["adjusted_logits"]).concat(),
                rtol,
                "post-hoc",
            );
            let want: Vec<usize> = fv(&post["argmax"]).iter().map(|&v| v as usize).collect();
            assert_eq!(argmax_bins(&adjusted)?, want);
        }
        let unadjusted: Vec<usize> = fv(&la["posthoc_argmax_unadjusted"])
            .iter()
            .map(|&v| v as usize)
            .collect();
        assert_eq!(argmax_bins(&c.logits)?, unadjusted);
        // Balanced softmax = LA with τ = 1 and ε = 0.
        let bs = balanced_softmax_terms(&c.logits, &c.labels, &prior)?;
        all_close(
            &vec1(&bs),
            &fv(&file["balanced_softmax"]["per_sample"]),
            rtol,
            "balanced softmax",
        );
        close(
            scalar(&bs.mean_all()?),
            f(&la["loss_tau1.0_eps0"]["mean"]),
            rtol,
            "LA eps 0",
        );
    }
    Ok(())
}

#[test]
fn pairwise_margin_special_cases() -> Result<()> {
    let file = load();
    let c = case(&file, DType::F64);
    let la = &file["logit_adjustment"];
    let pi = fv(&la["prior_pi"]);
    let k = pi.len();
    let table = |g: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
        (0..k * k).map(|i| g(i / k, i % k)).collect()
    };
    // Δ_yy' = τ ln(π_y'/π_y), α = 1: logit adjustment without ε.
    let d = table(&|y, j| (pi[j] / pi[y]).ln());
    let got = pairwise_margin_terms(&c.logits, &c.labels, &vec![1.0; k], &d)?;
    all_close(
        &vec1(&got),
        &fv(&la["pairwise_alpha1_delta_tau_log_ratio_tau1"]["per_sample"]),
        F64_RTOL,
        "LA form",
    );
    // α = 1/π, Δ = 0: weighted cross entropy, mean over the batch.
    let case = &la["pairwise_alpha_inv_pi_delta0"];
    let got = pairwise_margin_terms(&c.logits, &c.labels, &fv(&case["alpha"]), &vec![0.0; k * k])?;
    all_close(
        &vec1(&got),
        &fv(&case["per_sample"]),
        F64_RTOL,
        "weighted CE form",
    );
    close(
        scalar(&got.mean_all()?),
        f(&case["mean"]),
        F64_RTOL,
        "weighted CE mean",
    );
    // Δ_yy' = m_y: LDAM without its scale.
    let case = &la["pairwise_alpha1_delta_ldam_margin_unscaled"];
    let m = fv(&case["margins"]);
    let got = pairwise_margin_terms(&c.logits, &c.labels, &vec![1.0; k], &table(&|y, _| m[y]))?;
    all_close(&vec1(&got), &fv(&case["per_sample"]), F64_RTOL, "LDAM form");
    let ldam1 = ldam_terms(&c.logits, &c.labels, &m, 1.0)?;
    all_close(
        &vec1(&ldam1),
        &fv(&case["per_sample"]),
        F64_RTOL,
        "LDAM s = 1",
    );
    // Menon et al.'s theorem 2 with δ = sqrt(π): α_y = δ_y/π_y, Δ_yy' = ln(δ_y'/δ_y).
    let case = &la["pairwise_theorem2_delta_sqrt_pi"];
    let delta = fv(&case["delta_y"]);
    let alpha: Vec<f64> = delta.iter().zip(&pi).map(|(d, p)| d / p).collect();
    let got = pairwise_margin_terms(
        &c.logits,
        &c.labels,
        &alpha,
        &table(&|y, j| (delta[j] / delta[y]).ln()),
    )?;
    all_close(&vec1(&got), &fv(&case["per_sample"]), F64_RTOL, "theorem 2");
    Ok(())
}

#[test]
fn ldam_drw_and_class_balanced() -> Result<()> {
    let file = load();
    let ld = &file["ldam"];
    for (dtype, rtol) in [(DType::F64, F64_RTOL), (DType::F32, F32_RTOL)] {
        let c = case(&file, dtype);
        let m = ldam_margins(&c.counts, f(&ld["max_m"]))?;
        all_close(&m, &fv(&ld["margins"]), 1e-15, "margins");
        let drw = Drw::new(&c.counts, 0.9999, 160)?;
        all_close(
            &drw.weights_at(160),
            &fv(&ld["drw_weights_epoch_ge_160"]),
            1e-12,
            "DRW ≥ 160",
        );
        all_close(
            &drw.weights_at(159),
            &fv(&ld["drw_weights_epoch_lt_160"]),
            0.0,
            "DRW < 160",
        );
        for (key, logits) in [
            ("raw_logits", c.logits.clone()),
            ("cosine_logits_div3", (&c.logits / 3.0)?),
        ] {
            let terms = ldam_terms(&logits, &c.labels, &m, f(&ld["s"]))?;
            // LDAM's zero terms are exp-underflow zeros: compare them absolutely.
            let want = fv(&ld[key]["per_sample"]);
            for (g, w) in vec1(&terms).iter().zip(&want) {
                assert!((g - w).abs() <= 1e-6 + rtol * w.abs(), "{key}: {g} vs {w}");
            }
            close(scalar(&terms.mean_all()?), f(&ld[key]["mean"]), rtol, key);
            for (beta, name) in [
                (0.9999, "drw_beta0.9999_weighted_mean"),
                (0.0, "drw_beta0_weighted_mean"),
            ] {
                let w = class_balanced_weights(&c.counts, beta)?;
                let ws: Vec<f64> = fv(&file["meta"]["labels"])
                    .iter()
                    .map(|&y| w[y as usize])
                    .collect();
                let ws = Tensor::new(ws, &Device::Cpu)?;
                close(
                    scalar(&reduce(&terms, Some(&ws), Reduction::WeightedMean)?),
                    f(&ld[key][name]),
                    rtol,
                    name,
                );
            }
        }
        let cb = &file["class_balanced"];
        for (beta, key) in [
            (0.0, "0.0"),
            (0.9, "0.9"),
            (0.99, "0.99"),
            (0.999, "0.999"),
            (0.9999, "0.9999"),
        ] {
            all_close(
                &class_balanced_weights(&c.counts, beta)?,
                &fv(&cb["weights"][key]),
                1e-12,
                key,
            );
        }
        for (beta, key) in [(0.999, "beta0.999"), (0.9999, "beta0.9999")] {
            let w = class_balanced_weights(&c.counts, beta)?;
            let ws: Vec<f64> = fv(&file["meta"]["labels"])
                .iter()
                .map(|&y| w[y as usize])
                .collect();
            let ws = Tensor::new(ws, &Device::Cpu)?;
            let ce = cross_entropy_terms(&c.logits, &c.labels)?;
            close(
                scalar(&reduce(&ce, Some(&ws), Reduction::Mean)?),
                f(&cb[key]["softmax_official_tf_mean_of_w_times_ce"]),
                rtol,
                "CB softmax TF",
            );
            close(
                scalar(&reduce(&ce, Some(&ws), Reduction::WeightedMean)?),
                f(&cb[key]["softmax_torch_weighted_mean_sum_w_ce_over_sum_w"]),
                rtol,
                "CB softmax torch",
            );
            close(
                scalar(&class_balanced_sigmoid(&c.logits, &c.labels, &w, 0.0)?),
                f(&cb[key]["sigmoid_sum_over_num_positives"]),
                rtol,
                "CB sigmoid",
            );
            for g in ["0.5", "1.0", "2.0"] {
                let got = class_balanced_sigmoid(&c.logits, &c.labels, &w, g.parse().unwrap())?;
                close(
                    scalar(&got),
                    f(&cb[key][format!("focal_gamma{g}")]),
                    rtol,
                    "CB focal",
                );
            }
        }
        let w0 = class_balanced_weights(&c.counts, 0.0)?;
        close(
            scalar(&class_balanced_sigmoid(&c.logits, &c.labels, &w0, 0.0)?),
            f(&cb["beta0"]["sigmoid_sum_over_num_positives"]),
            rtol,
            "β = 0 sigmoid",
        );
        close(
            scalar(&class_balanced_sigmoid(&c.logits, &c.labels, &w0, 1.0)?),
            f(&cb["beta0"]["focal_gamma1.0"]),
            rtol,
            "β = 0 focal",
        );
    }
    Ok(())
}

#[test]
fn focal_losses() -> Result<()> {
    let file = load();
    let fo = &file["focal"];
    for (dtype, rtol) in [(DType::F64, F64_RTOL), (DType::F32, F32_RTOL)] {
        let c = case(&file, dtype);
        let t = one_hot_targets(&c.logits, &c.labels)?;
        let s = &fo["sigmoid_alpha0.25_gamma2"];
        let el = sigmoid_focal_elementwise(&c.logits, &t, 2.0, Some(0.25))?;
        all_close(
            &vec1(&el),
            &rows(&s["elementwise"]).concat(),
            rtol,
            "sigmoid focal",
        );
        close(
            scalar(&el.mean_all()?),
            f(&s["mean_over_all_elements_torchvision"]),
            rtol,
            "torchvision mean",
        );
        close(scalar(&el.sum_all()?), f(&s["sum"]), rtol, "sum");
        close(
            scalar(&(el.sum_all()? / 3.0)?),
            f(&s["sum_over_num_positives_retinanet"]),
            rtol,
            "retinanet",
        );
        let no_alpha = sigmoid_focal_elementwise(&c.logits, &t, 2.0, None)?;
        close(
            scalar(&no_alpha.mean_all()?),
            f(&fo["sigmoid_alpha-1_gamma2_mean"]),
            rtol,
            "α = −1",
        );
        let g2 = softmax_focal_terms(&c.logits, &c.labels, 2.0, 1.0)?;
        all_close(
            &vec1(&g2),
            &fv(&fo["softmax_gamma2"]["per_sample"]),
            rtol,
            "softmax focal γ2",
        );
        close(
            scalar(&softmax_focal_terms(&c.logits, &c.labels, 2.0, 0.25)?.mean_all()?),
            f(&fo["softmax_gamma2_alpha0.25"]["mean"]),
            rtol,
            "α 0.25",
        );
        close(
            scalar(&softmax_focal_terms(&c.logits, &c.labels, 1.0, 1.0)?.mean_all()?),
            f(&fo["softmax_gamma1"]["mean"]),
            rtol,
            "γ1",
        );
        close(
            scalar(&softmax_focal_terms(&c.logits, &c.labels, 0.0, 1.0)?.mean_all()?),
            f(&fo["softmax_gamma0_equals_ce"]),
            rtol,
            "γ0",
        );
        close(
            scalar(&ldam_repo_focal_terms(&c.logits, &c.labels, None, 1.0)?.mean_all()?),
            f(&fo["ldam_repo_focal_gamma1_unweighted"]),
            rtol,
            "LDAM-repo focal",
        );
        let w = class_balanced_weights(&c.counts, 0.9999)?;
        close(
            scalar(&ldam_repo_focal_terms(&c.logits, &c.labels, Some(&w), 1.0)?.mean_all()?),
            f(&fo["ldam_repo_focal_gamma1_drw_beta0.9999"]),
            rtol,
            "LDAM-repo focal DRW",
        );
    }
    Ok(())
}

#[test]
fn ghmc_and_zlpr() -> Result<()> {
    let file = load();
    let gh = &file["ghmc"];
    for (dtype, rtol) in [(DType::F64, F64_RTOL), (DType::F32, F32_RTOL)] {
        let c = case(&file, dtype);
        let t = one_hot_targets(&c.logits, &c.labels)?;
        for bins in [10, 30] {
            let mut g = GhmC::new(bins, 0.0)?;
            close(
                scalar(&g.loss(&c.logits, &t, None)?),
                f(&gh[format!("bins{bins}_momentum0")]["loss"]),
                rtol,
                "GHM-C",
            );
            let case = &gh[format!("bins{bins}_momentum0.75_two_calls_same_input")];
            let mut g = GhmC::new(bins, 0.75)?;
            close(
                scalar(&g.loss(&c.logits, &t, None)?),
                f(&case["loss_call1"]),
                rtol,
                "call 1",
            );
            all_close(
                g.density().acc_sum(),
                &fv(&case["acc_sum_after_call1"]),
                1e-12,
                "acc 1",
            );
            close(
                scalar(&g.loss(&c.logits, &t, None)?),
                f(&case["loss_call2"]),
                rtol,
                "call 2",
            );
            all_close(
                g.density().acc_sum(),
                &fv(&case["acc_sum_after_call2"]),
                1e-12,
                "acc 2",
            );
        }
        let valid = Tensor::new(&[0f64, 1.0, 1.0], &Device::Cpu)?;
        let mut g = GhmC::new(10, 0.0)?;
        close(
            scalar(&g.loss(&c.logits, &t, Some(&valid))?),
            f(&gh["bins10_momentum0_first_row_ignored"]["loss"]),
            rtol,
            "first row ignored",
        );
        let z = &file["zlpr"];
        let multi = Tensor::from_vec(rows(&z["multihot_targets"]).concat(), (3, 5), &Device::Cpu)?;
        let terms = zlpr_terms(&c.logits, &multi)?;
        all_close(
            &vec1(&terms),
            &fv(&z["multihot"]["per_sample"]),
            rtol,
            "ZLPR",
        );
        close(
            scalar(&terms.mean_all()?),
            f(&z["multihot"]["mean"]),
            rtol,
            "ZLPR mean",
        );
        all_close(
            &vec1(&zlpr_terms(&c.logits, &t)?),
            &fv(&z["onehot_from_labels"]["per_sample"]),
            rtol,
            "ZLPR one-hot",
        );
    }
    Ok(())
}

#[test]
fn soft_labels_expectation_and_mean_variance() -> Result<()> {
    let file = load();
    let a = &file["age_heads_extra"];
    for (dtype, rtol) in [(DType::F64, F64_RTOL), (DType::F32, F32_RTOL)] {
        let c = case(&file, dtype);
        all_close(&c.values, &fv(&a["bin_values"]), 0.0, "bin values");
        let y = c.labels.to_dtype(dtype)?;
        all_close(
            &vec1(&expectation(&c.logits, &c.values)?),
            &fv(&a["dex_expectation"]),
            rtol,
            "DEX",
        );
        all_close(
            &vec1(&variance(&c.logits, &c.values)?),
            &fv(&a["variance"]),
            rtol,
            "variance",
        );
        let mv = mean_variance_loss(&c.logits, &c.labels, &y, &c.values, 0.2, 0.05)?;
        close(
            scalar(&mv),
            f(&a["mean_variance_loss_l1_0.2_l2_0.05"]),
            rtol,
            "mean-variance",
        );
        for sigma in ["1.0", "2.0"] {
            let case = &a[format!("dldl_sigma{sigma}")];
            let s: f64 = sigma.parse().unwrap();
            let q = gaussian_soft_labels(&y, &c.values, s, &c.logits)?;
            all_close(
                &vec1(&q),
                &rows(&case["target_distribution"]).concat(),
                rtol,
                "soft labels",
            );
            let (kl, cross) = soft_label_terms(&c.logits, &q)?;
            close(scalar(&kl.mean_all()?), f(&case["kl_mean"]), rtol, "KL");
            close(
                scalar(&cross.mean_all()?),
                f(&case["soft_ce_mean"]),
                rtol,
                "soft CE",
            );
            close(
                scalar(&dldl_v2(&c.logits, &y, &c.values, s, 1.0)?),
                f(&case["dldl_v2_kl_plus_l1_lambda1"]),
                rtol,
                "DLDL-v2",
            );
        }
    }
    Ok(())
}

/// Central-difference check of `d loss / d logits` at seeded logits (f64).
fn check_gradient(name: &str, loss: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<()> {
    let (n, c) = (4, 6);
    let mut rng = dirkit_core::SplitMix64::new(7);
    let x0: Vec<f64> = (0..n * c).map(|_| 4.0 * rng.uniform() - 2.0).collect();
    let var = Var::from_vec(x0.clone(), (n, c), &Device::Cpu)?;
    let grads = loss(var.as_tensor())?.backward()?;
    let g = vec1(
        grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient")),
    );
    let h = 1e-6;
    for i in 0..n * c {
        let at = |d: f64| -> Result<f64> {
            let mut x = x0.clone();
            x[i] += d;
            Ok(scalar(&loss(&Tensor::from_vec(x, (n, c), &Device::Cpu)?)?))
        };
        let fd = (at(h)? - at(-h)?) / (2.0 * h);
        assert!(
            (g[i] - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
            "{name}[{i}]: autograd {} vs fd {fd}",
            g[i]
        );
    }
    Ok(())
}

#[test]
fn every_loss_has_the_finite_difference_gradient() -> Result<()> {
    let labels = Tensor::new(&[0u32, 3, 5, 3], &Device::Cpu)?;
    let targets = Tensor::new(&[0.2f64, 3.4, 4.9, 2.6], &Device::Cpu)?;
    let counts = [50.0, 20.0, 10.0, 5.0, 2.0, 0.0];
    let prior = ClassPrior::from_counts(&counts)?;
    let clamped = ClassPrior::from_counts_clamped(&counts, 1.0)?;
    let values: Vec<f64> = (0..6).map(f64::from).collect();
    let m = ldam_margins(&counts, 0.5)?;
    let w = class_balanced_weights(&counts, 0.999)?;
    let delta: Vec<f64> = (0..36).map(|i| 0.1 * ((i % 7) as f64 - 3.0)).collect();
    let alpha = [1.0, 2.0, 0.5, 1.5, 1.0, 3.0];
    let onehot = one_hot_targets(&Tensor::zeros((4, 6), DType::F64, &Device::Cpu)?, &labels)?;
    let multi = (&onehot
        + Tensor::new(&[[0f64, 1., 0., 0., 0., 0.]], &Device::Cpu)?.broadcast_as((4, 6))?)?
    .clamp(0.0, 1.0)?;
    check_gradient("ce", &|x| cross_entropy(x, &labels))?;
    check_gradient("LA", &|x| {
        logit_adjusted_terms(x, &labels, &prior, 1.0)?.mean_all()
    })?;
    check_gradient("balanced softmax", &|x| {
        balanced_softmax_terms(x, &labels, &clamped)?.mean_all()
    })?;
    check_gradient("pairwise", &|x| {
        pairwise_margin_terms(x, &labels, &alpha, &delta)?.mean_all()
    })?;
    check_gradient("LDAM", &|x| ldam_terms(x, &labels, &m, 3.0)?.mean_all())?;
    check_gradient("softmax focal", &|x| {
        softmax_focal_terms(x, &labels, 2.0, 0.25)?.mean_all()
    })?;
    check_gradient("LDAM-repo focal", &|x| {
        ldam_repo_focal_terms(x, &labels, Some(&w), 1.0)?.mean_all()
    })?;
    check_gradient("sigmoid focal", &|x| {
        sigmoid_focal_elementwise(x, &onehot, 2.0, Some(0.25))?.mean_all()
    })?;
    check_gradient("CB sigmoid", &|x| {
        class_balanced_sigmoid(x, &labels, &w, 0.0)
    })?;
    check_gradient("CB focal", &|x| class_balanced_sigmoid(x, &labels, &w, 0.5))?;
    check_gradient("GHM-C", &|x| GhmC::new(10, 0.0)?.loss(x, &onehot, None))?;
    check_gradient("ZLPR", &|x| zlpr_terms(x, &multi)?.mean_all())?;
    check_gradient("truncated smooth", &|x| {
        truncated_ce_terms(x, &labels, 0.6, Some(10.0))?.mean_all()
    })?;
    check_gradient("soft labels", &|x| {
        let q = gaussian_soft_labels(&targets, &values, 2.0, x)?;
        soft_label_terms(x, &q)?.0.mean_all()
    })?;
    check_gradient("DLDL-v2", &|x| dldl_v2(x, &targets, &values, 1.0, 1.0))?;
    check_gradient("mean-variance", &|x| {
        mean_variance_loss(x, &labels, &targets, &values, 0.2, 0.05)
    })?;
    Ok(())
}

#[test]
fn sigmoid_losses_have_the_exact_gradient_at_zero_logits() -> Result<()> {
    // d BCE / dx = σ(x) − t: at x = 0 that is ±0.5, where relu/abs formulas go wrong.
    let x = Var::zeros((1, 2), DType::F64, &Device::Cpu)?;
    let t = Tensor::new(&[[1f64, 0.0]], &Device::Cpu)?;
    let loss = sigmoid_focal_elementwise(x.as_tensor(), &t, 0.0, None)?.sum_all()?;
    let g = vec1(loss.backward()?.get(x.as_tensor()).unwrap());
    all_close(&g, &[-0.5, 0.5], 1e-15, "gradient at 0");
    Ok(())
}

#[test]
fn hard_truncation_drops_confident_samples() -> Result<()> {
    let logits = Tensor::new(&[[3f64, 0.0], [0.0, 0.0], [0.0, 3.0]], &Device::Cpu)?;
    let labels = Tensor::new(&[0u32, 0, 0], &Device::Cpu)?;
    let ce = vec1(&cross_entropy_terms(&logits, &labels)?);
    let hard = vec1(&truncated_ce_terms(&logits, &labels, 0.6, None)?);
    // p_y = 0.953 (dropped), 0.5 and 0.047 (kept).
    assert_eq!(hard, vec![0.0, ce[1], ce[2]]);
    let smooth = vec1(&truncated_ce_terms(&logits, &labels, 0.6, Some(50.0))?);
    assert!(smooth[0] < 1e-3 * ce[0] && (smooth[2] - ce[2]).abs() < 1e-3 * ce[2]);
    Ok(())
}

#[test]
fn decoders_on_hand_made_distributions() -> Result<()> {
    let values = [10.0, 20.0, 30.0];
    // Probabilities (0.2, 0.5, 0.3) and (0.6, 0.1, 0.3) as logits.
    let p = [[0.2f64, 0.5, 0.3], [0.6, 0.1, 0.3]];
    let logits = Tensor::new(
        &[
            [p[0][0].ln(), p[0][1].ln(), p[0][2].ln()],
            [p[1][0].ln(), p[1][1].ln(), p[1][2].ln()],
        ],
        &Device::Cpu,
    )?;
    assert_eq!(
        decode(&logits, &values, Decoder::Argmax, None, None)?,
        vec![20.0, 10.0]
    );
    all_close(
        &decode(&logits, &values, Decoder::Expectation, None, None)?,
        &[21.0, 17.0],
        1e-14,
        "expectation",
    );
    // Train prior (0.7, 0.2, 0.1): toward uniform the second row's 0.6/0.7 loses to 0.3/0.1.
    let prior = ClassPrior::from_probabilities(&[0.7, 0.2, 0.1])?;
    let adjusted = decode(
        &logits,
        &values,
        Decoder::Adjusted { tau: 1.0 },
        Some(&prior),
        None,
    )?;
    assert_eq!(adjusted, vec![30.0, 30.0]);
    // Toward a test prior equal to the training prior nothing changes.
    let same = decode(
        &logits,
        &values,
        Decoder::Adjusted { tau: 1.0 },
        Some(&prior),
        Some(&prior),
    )?;
    assert_eq!(same, vec![20.0, 10.0]);
    assert!(decode(&logits, &values, Decoder::Adjusted { tau: 1.0 }, None, None).is_err());
    assert!(decode(&logits, &values[..2], Decoder::Argmax, None, None).is_err());
    Ok(())
}

#[test]
fn priors_from_counts_and_lds() -> Result<()> {
    let labels: Vec<f64> = [vec![1.0; 30], vec![2.0; 10], vec![4.0; 2]].concat();
    let density = LabelDensity::fit(
        &labels,
        Binning::new(0.0, 1.0, 6).unwrap(),
        OutOfRange::Clip,
        &LdsConfig::default(),
    )
    .unwrap();
    let counts: Vec<f64> = density.counts.iter().map(|&c| c as f64).collect();
    let from_counts = ClassPrior::from_counts(&counts)?;
    assert_eq!(from_counts.probabilities()[0], 0.0);
    let lds = ClassPrior::from_density(&density)?;
    assert!(
        lds.probabilities().iter().all(|&p| p > 0.0),
        "the LDS prior has no empty bin"
    );
    close(lds.probabilities().iter().sum(), 1.0, 1e-15, "sums to 1");
    // Balanced softmax needs π > 0: counts fail, clamped counts and the LDS prior work.
    let logits = Tensor::zeros((1, 6), DType::F64, &Device::Cpu)?;
    let y = Tensor::new(&[1u32], &Device::Cpu)?;
    assert!(balanced_softmax_terms(&logits, &y, &from_counts).is_err());
    assert!(balanced_softmax_terms(&logits, &y, &lds).is_ok());
    let bias = prior_bias(&from_counts, 1.0)?;
    close(bias[1], (30.0f64 / 42.0 + 1e-12).ln(), 1e-15, "bias");
    close(bias[0], 1e-12f64.ln(), 1e-15, "empty-bin bias");
    assert!(ClassPrior::from_counts(&[1.0, -1.0]).is_err());
    assert!(ClassPrior::from_counts(&[0.0, 0.0]).is_err());
    assert!(ClassPrior::from_counts(&[f64::NAN]).is_err());
    Ok(())
}

#[test]
fn bad_inputs_are_errors() -> Result<()> {
    let logits = Tensor::zeros((2, 3), DType::F64, &Device::Cpu)?;
    assert!(
        cross_entropy(&logits, &Tensor::new(&[0u32, 3], &Device::Cpu)?).is_err(),
        "label ≥ C"
    );
    assert!(
        cross_entropy(&logits, &Tensor::new(&[0u32], &Device::Cpu)?).is_err(),
        "count"
    );
    assert!(
        cross_entropy(
            &Tensor::zeros(3, DType::F64, &Device::Cpu)?,
            &Tensor::new(&[0u32], &Device::Cpu)?
        )
        .is_err()
    );
    let y = Tensor::new(&[0u32, 1], &Device::Cpu)?;
    assert!(
        ldam_terms(&logits, &y, &[0.1, 0.2], 30.0).is_err(),
        "margins"
    );
    assert!(class_balanced_weights(&[1.0], 1.0).is_err());
    assert!(softmax_focal_terms(&logits, &y, -1.0, 1.0).is_err());
    assert!(truncated_ce_terms(&logits, &y, 0.0, None).is_err());
    assert!(GhmC::new(0, 0.5).is_err());
    assert!(
        BinnedLoss::ClassBalanced {
            beta: 1.5,
            form: ClassBalancedKind::Softmax
        }
        .validate()
        .is_err()
    );
    Ok(())
}

#[test]
fn decoupling_tools() -> Result<()> {
    let dev = Device::Cpu;
    let w = Tensor::new(&[[3f64, 4.0], [0.0, 0.5], [0.0, 0.0]], &dev)?;
    let n1 = tau_normalize(&w, 1.0)?;
    all_close(&vec1(&n1), &[0.6, 0.8, 0.0, 1.0, 0.0, 0.0], 1e-15, "τ = 1");
    all_close(&vec1(&tau_normalize(&w, 0.0)?), &vec1(&w), 0.0, "τ = 0");
    // LWS starts as the classifier itself and scales per class.
    let b = Tensor::new(&[0.5f64, -1.0, 0.0], &dev)?;
    let lws = Lws::new(&w, Some(&b))?;
    let x = Tensor::new(&[[1f64, 2.0]], &dev)?;
    all_close(
        &vec1(&lws.forward(&x)?),
        &[11.5, 0.0, 0.0],
        1e-15,
        "LWS at 1",
    );
    lws.scales().set(&Tensor::new(&[2f64, 1.0, 1.0], &dev)?)?;
    all_close(
        &vec1(&lws.forward(&x)?),
        &[23.0, 0.0, 0.0],
        1e-15,
        "LWS scaled",
    );
    // Half precision goes through candle's product: 2·11.5 = 23 is exact in f16.
    let half = Lws::new(&w.to_dtype(DType::F16)?, Some(&b.to_dtype(DType::F16)?))?;
    half.scales()
        .set(&Tensor::new(&[2f64, 1.0, 1.0], &dev)?.to_dtype(DType::F16)?)?;
    all_close(
        &vec1(&half.forward(&x.to_dtype(DType::F16)?)?),
        &[23.0, 0.0, 0.0],
        0.0,
        "LWS in f16",
    );
    // NCM: two clusters, class 2 absent.
    let feats = Tensor::new(&[[1f64, 0.1], [1.2, -0.1], [-1.0, 0.0], [-0.9, 0.2]], &dev)?;
    let ncm = NearestClassMean::fit(&feats, &[0, 0, 1, 1], 3)?;
    let logits = ncm.forward(&Tensor::new(&[[2f64, 0.0], [-3.0, 0.5]], &dev)?)?;
    assert_eq!(argmax_bins(&logits)?, vec![0, 1]);
    assert!(vec1(&logits)[2] == f64::NEG_INFINITY);
    // cRT: only the head's variables.
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &dev);
    let _enc = candle_nn::linear(4, 3, vb.pp("encoder"))?;
    let _head = candle_nn::linear(3, 2, vb.pp("head"))?;
    assert_eq!(trainable_with_prefix(&varmap, "head.").len(), 2);
    // Cosine logits are in [−1, 1].
    let cos = NormedLinear::new(2, 3, vb.pp("cos"))?;
    let c = vec1(&cos.forward(&Tensor::new(&[[5f64, -2.0]], &dev)?)?);
    assert!(c.iter().all(|v| v.abs() <= 1.0 + 1e-12));
    Ok(())
}

#[test]
fn binned_head_trains_and_initialises_its_bias_to_the_prior() -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = dirkit_core::SplitMix64::new(3);
    // y = 10·x0 on [0, 10), long-tailed: most samples small.
    let n = 256;
    let xs: Vec<f64> = (0..n).map(|_| rng.uniform().powi(3)).collect();
    let ys: Vec<f64> = xs.iter().map(|x| 10.0 * x).collect();
    let feats: Vec<f64> = xs.iter().flat_map(|&x| [x, x * x, 1.0 - x]).collect();
    let features = Tensor::from_vec(feats, (n, 3), &dev)?.to_dtype(DType::F32)?;
    let targets = Tensor::from_vec(ys.clone(), n, &dev)?.to_dtype(DType::F32)?;
    let density = LabelDensity::fit(
        &ys,
        Binning::new(0.0, 1.0, 10).unwrap(),
        OutOfRange::Clip,
        &LdsConfig::default(),
    )
    .unwrap();
    for loss in [
        BinnedLoss::CrossEntropy,
        BinnedLoss::logit_adjusted(),
        BinnedLoss::BalancedSoftmax,
        BinnedLoss::ldam_drw(2),
        BinnedLoss::GhmC {
            bins: 10,
            momentum: 0.75,
        },
        BinnedLoss::SoftLabels {
            sigma: 1.0,
            lambda: 0.5,
        },
    ] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let config = BinnedHeadConfig {
            loss: loss.clone(),
            bias_init_tau: Some(1.0),
            ..BinnedHeadConfig::new(3)
        };
        let mut head = BinnedHead::new(config, &density, vb.pp("head"))?;
        // The bias in the VarMap is τ ln(π + ε).
        let bias = varmap.data().lock().unwrap()["head.linear.bias"]
            .as_tensor()
            .clone();
        all_close(
            &vec1(&bias),
            &prior_bias(&head.training_bins().prior, 1.0)?,
            1e-6,
            "bias init",
        );
        let mut opt = candle_nn::optim::AdamW::new(
            varmap.all_vars(),
            candle_nn::optim::ParamsAdamW {
                lr: 0.05,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        use candle_nn::Optimizer;
        let first = scalar(&head.forward_train(&features, &targets, 0)?.loss);
        let mut last = first;
        for epoch in 0..60 {
            let step = head.forward_train(&features, &targets, epoch / 20)?;
            last = scalar(&step.loss);
            opt.backward_step(&step.loss)?;
        }
        assert!(last < first, "{loss:?}: {first} → {last}");
        let pred = vec1(&head.forward(&features)?);
        assert_eq!(pred.len(), n);
    }
    Ok(())
}

#[test]
fn binned_head_state_round_trips_ghm_counts_and_fds() -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = dirkit_core::SplitMix64::new(11);
    let n = 64;
    let ys: Vec<f64> = (0..n).map(|i| [1.0, 2.0, 2.0, 3.0, 7.0][i % 5]).collect();
    let feats: Vec<f64> = (0..n * 4).map(|i| rng.normal() + 0.3 * ys[i / 4]).collect();
    let features = Tensor::from_vec(feats, (n, 4), &dev)?;
    let targets = Tensor::from_vec(ys.clone(), n, &dev)?;
    let density = LabelDensity::fit(
        &ys,
        Binning::new(0.0, 1.0, 8).unwrap(),
        OutOfRange::Clip,
        &LdsConfig::default(),
    )
    .unwrap();
    let mut fds = dirkit_nn::fds::FdsConfig::reference(4, 8, 0);
    fds.source = dirkit_nn::fds::StatsSource::Online;
    let config = BinnedHeadConfig {
        loss: BinnedLoss::GhmC {
            bins: 10,
            momentum: 0.75,
        },
        fds: Some(fds),
        ..BinnedHeadConfig::new(4)
    };
    let build = |seed: u64| -> Result<(VarMap, BinnedHead)> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &dev);
        let head = BinnedHead::new(config.clone(), &density, vb.pp("head"))?;
        dirkit_compute::train::seeded_init(&varmap, seed)?;
        Ok((varmap, head))
    };
    let (_vm, mut a) = build(2)?;
    a.forward_train(&features, &targets, 0)?;
    a.end_epoch(0)?;
    a.forward_train(&features, &targets, 1)?;
    let path =
        std::env::temp_dir().join(format!("dirkit-binned-{}.safetensors", std::process::id()));
    a.save_state(&path)?;
    let (_vm2, mut b) = build(2)?;
    b.load_state(&path)?;
    std::fs::remove_file(&path).ok();
    let la = scalar(&a.forward_train(&features, &targets, 1)?.loss);
    let lb = scalar(&b.forward_train(&features, &targets, 1)?.loss);
    assert_eq!(la.to_bits(), lb.to_bits(), "bit-identical step after load");
    // A head with another configuration refuses the state.
    let other = BinnedHeadConfig {
        loss: BinnedLoss::CrossEntropy,
        ..config.clone()
    };
    let varmap = VarMap::new();
    let mut c = BinnedHead::new(
        other,
        &density,
        VarBuilder::from_varmap(&varmap, DType::F64, &dev).pp("head"),
    )?;
    a.save_state(&path)?;
    assert!(c.load_state(&path).is_err());
    std::fs::remove_file(&path).ok();
    Ok(())
}
