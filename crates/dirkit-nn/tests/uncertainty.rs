//! UVOTE's Laplace heads and VIR's evidential head against PyTorch transcriptions of the
//! official code (`tests/reference/uncertainty/`), finite differences in f64, the special
//! functions against torch, and the settings each refuses.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dirkit_core::special::{digamma, ln_gamma};
use dirkit_nn::loss::uvote::{UvoteConfig, UvoteHead, UvoteOutput, laplace_nll, uvote_weights};
use dirkit_nn::loss::vir::{
    NigParams, VirConfig, VirHead, VirPrediction, nig_from_raw, nig_loss, nig_nll_terms,
};
use serde_json::Value;

mod common;
use common::{close, close_all, flat, matrix, t1, t2, vector};

fn reference() -> Value {
    common::reference("uncertainty/uncertainty.json")
}

#[test]
fn special_functions_match_torch() {
    let doc = reference();
    let s = &doc["special"];
    let x = vector(&s["x"]);
    for ((x, lg), dg) in x
        .iter()
        .zip(vector(&s["lgamma"]))
        .zip(vector(&s["digamma"]))
    {
        assert!(
            (ln_gamma(*x) - lg).abs() < 1e-13 * (1.0 + lg.abs()),
            "lgamma({x})"
        );
        assert!(
            (digamma(*x) - dg).abs() < 1e-13 * (1.0 + dg.abs()),
            "digamma({x})"
        );
    }
}

#[test]
fn laplace_nll_matches_the_official_loss() {
    let doc = reference();
    let c = UvoteConfig::default();
    for case in doc["laplace"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mu = Var::from_tensor(&t1(&vector(&case["mean"]))).unwrap();
        let s = Var::from_tensor(&t1(&vector(&case["log_scale"]))).unwrap();
        let w = case["weights"]
            .as_array()
            .map(|_| t1(&vector(&case["weights"])));
        let y = t1(&vector(&case["target"]));
        let loss = laplace_nll(&mu, &s, &y, w.as_ref(), c.min_log_scale, c.max_log_scale).unwrap();
        close(
            loss.to_scalar::<f64>().unwrap(),
            case["loss"].as_f64().unwrap(),
            name,
        );
        let g = loss.backward().unwrap();
        close_all(
            &flat(g.get(&mu).unwrap()),
            &vector(&case["grad_mean"]),
            name,
        );
        close_all(
            &flat(g.get(&s).unwrap()),
            &vector(&case["grad_log_scale"]),
            name,
        );
    }
}

#[test]
fn uvote_heads_weights_schedule_and_vote_match_the_official_code() {
    let doc = reference();
    let u = &doc["uvote"];
    let config = UvoteConfig {
        heads: 3,
        ..UvoteConfig::default()
    };
    // Weights from the density: p^(−r), r = 0, ½, 1, each of mean 1.
    let w = uvote_weights(&vector(&u["density"]), &config.exponents()).unwrap();
    let want = matrix(&u["weights"]);
    for (h, row) in w.iter().enumerate() {
        let col: Vec<f64> = want.iter().map(|r| r[h]).collect();
        close_all(row, &col, "weights");
        close(
            row.iter().sum::<f64>() / row.len() as f64,
            1.0,
            "mean weight",
        );
    }
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let head = UvoteHead::new(config, 4, vb).unwrap();
    let means = Var::from_tensor(&t2(&matrix(&u["means"]))).unwrap();
    let scales = Var::from_tensor(&t2(&matrix(&u["log_scales"]))).unwrap();
    let out = UvoteOutput {
        means: means.as_tensor().clone(),
        log_scales: scales.clamp(-5.0, 5.0).unwrap(),
    };
    let y = t1(&vector(&u["target"]));
    let wt = t2(&want);
    let epoch = u["epoch"].as_u64().unwrap() as usize;
    let epochs = u["epochs"].as_u64().unwrap() as usize;
    let loss = head.loss(&out, &y, Some(&wt), epoch, epochs).unwrap();
    close(
        loss.to_scalar::<f64>().unwrap(),
        u["loss"].as_f64().unwrap(),
        "uvote loss",
    );
    let g = loss.backward().unwrap();
    close_all(
        &flat(g.get(&means).unwrap()),
        &matrix(&u["grad_means"]).concat(),
        "uvote grad means",
    );
    close_all(
        &flat(g.get(&scales).unwrap()),
        &matrix(&u["grad_log_scales"]).concat(),
        "uvote grad log scales",
    );
    let p = UvoteHead::predict(&out).unwrap();
    let heads: Vec<usize> = vector(&u["head"]).iter().map(|&h| h as usize).collect();
    assert_eq!(p.head, heads);
    close_all(&p.prediction, &vector(&u["prediction"]), "prediction");
    close_all(&p.sigma, &vector(&u["sigma"]), "sigma");
    // Without the schedule every head counts fully; at epoch 0 only head 0 does.
    assert_eq!(config.head_factor(2, 0, 10), 0.0);
    assert_eq!(config.head_factor(0, 0, 10), 1.0);
    let flat_cfg = UvoteConfig {
        progressive: false,
        ..config
    };
    assert_eq!(flat_cfg.head_factor(2, 0, 10), 1.0);
}

#[test]
fn laplace_gradient_matches_finite_differences() {
    let (mu, s, y) = (
        [1.0, -2.0, 0.5, 3.0],
        [0.3, -1.2, 2.0, -0.4],
        [1.7, -2.5, 0.1, 2.2],
    );
    let w = [0.5, 1.5, 1.0, 2.0];
    let f = |mu: &[f64], s: &[f64]| -> f64 {
        (0..4)
            .map(|i| w[i] * ((2.0 * s[i].exp()).ln() + (y[i] - mu[i]).abs() / s[i].exp()))
            .sum::<f64>()
            / 4.0
    };
    let mv = Var::from_tensor(&t1(&mu)).unwrap();
    let sv = Var::from_tensor(&t1(&s)).unwrap();
    let loss = laplace_nll(&mv, &sv, &t1(&y), Some(&t1(&w)), -5.0, 5.0).unwrap();
    close(loss.to_scalar::<f64>().unwrap(), f(&mu, &s), "value");
    let g = loss.backward().unwrap();
    let (gm, gs) = (flat(g.get(&mv).unwrap()), flat(g.get(&sv).unwrap()));
    let h = 1e-6;
    for i in 0..4 {
        let (mut a, mut b) = (mu, mu);
        a[i] += h;
        b[i] -= h;
        assert!((gm[i] - (f(&a, &s) - f(&b, &s)) / (2.0 * h)).abs() < 1e-7);
        let (mut a, mut b) = (s, s);
        a[i] += h;
        b[i] -= h;
        assert!((gs[i] - (f(&mu, &a) - f(&mu, &b)) / (2.0 * h)).abs() < 1e-7);
    }
}

#[test]
fn vir_head_and_loss_match_the_official_code() {
    let doc = reference();
    for case in doc["vir"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let config = VirConfig {
            reg: case["reg"].as_f64().unwrap(),
            prior_nu: if name == "large_reg_prior" { 0.5 } else { 0.0 },
            prior_alpha: if name == "large_reg_prior" { 0.7 } else { 0.3 },
            ..VirConfig::default()
        };
        let raw = Var::from_tensor(&t2(&matrix(&case["raw"]))).unwrap();
        let w = case["weights"]
            .as_array()
            .map(|_| t1(&vector(&case["weights"])));
        let p = nig_from_raw(&raw, w.as_ref(), &config).unwrap();
        for (t, key) in [
            (&p.gamma, "gamma"),
            (&p.nu, "nu"),
            (&p.alpha, "alpha"),
            (&p.beta, "beta"),
        ] {
            close_all(&flat(t), &vector(&case[key]), &format!("{name} {key}"));
        }
        let y = t1(&vector(&case["target"]));
        let loss = nig_loss(&y, &p, config.reg, None).unwrap();
        close(
            loss.to_scalar::<f64>().unwrap(),
            case["loss"].as_f64().unwrap(),
            name,
        );
        let g = loss.backward().unwrap();
        close_all(
            &flat(g.get(&raw).unwrap()),
            &matrix(&case["grad_raw"]).concat(),
            &format!("{name} gradient"),
        );
    }
}

#[test]
fn nig_gradient_matches_finite_differences() {
    // The four parameters of three samples, perturbed one at a time through the closed form.
    let base = [
        [0.5, 1.5, 2.0], // gamma
        [0.7, 2.0, 4.5], // nu
        [1.4, 2.5, 0.9], // alpha
        [0.3, 1.1, 2.2], // beta
    ];
    let y = [0.0, 2.3, 1.0];
    let f = |p: &[[f64; 3]; 4]| -> f64 {
        (0..3)
            .map(|i| {
                let (g, v, a, b) = (p[0][i], p[1][i], p[2][i], p[3][i]);
                let tbl = 2.0 * b * (1.0 + v);
                0.5 * (std::f64::consts::PI / v).ln() - a * tbl.ln()
                    + (a + 0.5) * (v * (y[i] - g).powi(2) + tbl).ln()
                    + ln_gamma(a)
                    - ln_gamma(a + 0.5)
            })
            .sum::<f64>()
    };
    let vars: Vec<Var> = base
        .iter()
        .map(|r| Var::from_tensor(&t1(r)).unwrap())
        .collect();
    let p = NigParams::new(&vars[0], &vars[1], &vars[2], &vars[3]).unwrap();
    let total = nig_nll_terms(&t1(&y), &p).unwrap().sum_all().unwrap();
    close(total.to_scalar::<f64>().unwrap(), f(&base), "value");
    let g = total.backward().unwrap();
    let h = 1e-6;
    for (k, var) in vars.iter().enumerate() {
        let gk = flat(g.get(var).unwrap());
        for i in 0..3 {
            let (mut a, mut b) = (base, base);
            a[k][i] += h;
            b[k][i] -= h;
            let fd = (f(&a) - f(&b)) / (2.0 * h);
            assert!(
                (gk[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                "param {k} sample {i}"
            );
        }
    }
}

#[test]
fn heads_train_predict_with_uncertainty_and_refuse_bad_settings() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let x = Tensor::new(&[[0.5f32, 1.0, -0.2], [2.0, -1.0, 0.4]], &Device::Cpu).unwrap();
    let y = Tensor::new(&[1.0f32, 3.0], &Device::Cpu).unwrap();
    // VIR: the seeded latent noise repeats; weights scale the evidence; σ² = aleatoric +
    // epistemic with both finite (α > 1 at inference).
    let vir = VirHead::new(VirConfig::default(), 3, vb.pp("vir")).unwrap();
    let a = vir.forward_train(&x, &y, None, 0, 7).unwrap();
    let b = vir.forward_train(&x, &y, None, 0, 7).unwrap();
    let c = vir.forward_train(&x, &y, None, 0, 8).unwrap();
    assert_eq!(flat(&a.params.gamma), flat(&b.params.gamma));
    assert_ne!(flat(&a.params.gamma), flat(&c.params.gamma));
    let w = Tensor::new(&[2.0f32, 0.5], &Device::Cpu).unwrap();
    let weighted = vir.forward_train(&x, &y, Some(&w), 0, 7).unwrap();
    let (n1, n2) = (flat(&a.params.nu), flat(&weighted.params.nu));
    close(n2[0], 2.0 * n1[0], "evidence × weight");
    close(n2[1], 0.5 * n1[1], "evidence × weight");
    assert!(
        vir.loss(&a, &y)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .is_finite()
    );
    let pred = VirPrediction::from_params(&vir.forward(&x).unwrap()).unwrap();
    for i in 0..2 {
        assert!(pred.aleatoric[i].is_finite() && pred.epistemic[i] > 0.0);
        let s2 = pred.aleatoric[i] + pred.epistemic[i];
        assert!((pred.sigma[i] * pred.sigma[i] - s2).abs() < 1e-9 * s2);
    }
    // UVOTE: M heads of means and clamped log scales.
    let uv = UvoteHead::new(UvoteConfig::default(), 3, vb.pp("uvote")).unwrap();
    let out = uv.forward(&x).unwrap();
    assert_eq!(out.means.dims(), &[2, 2]);
    let loss = uv
        .loss(&out, &y, None, 0, 10)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(loss.is_finite());
    let bad_w = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
    let e = uv.loss(&out, &y, Some(&bad_w), 0, 10).unwrap_err();
    assert!(e.to_string().contains("(B, M)"), "{e}");
    // Refusals.
    let e = UvoteHead::new(
        UvoteConfig {
            heads: 0,
            ..UvoteConfig::default()
        },
        3,
        vb.pp("x"),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("heads"), "{e}");
    let three = Tensor::new(&[1.0f32, 1.0, 1.0], &Device::Cpu).unwrap();
    let e = laplace_nll(&y, &y, &y, Some(&three), -5.0, 5.0).unwrap_err();
    assert!(e.to_string().contains("weights have 3 values"), "{e}");
    let e = uvote_weights(&[0.1, 0.0], &[0.0, 1.0]).unwrap_err();
    assert!(e.to_string().contains("sample 1"), "{e}");
    for (field, c) in [
        (
            "prior_alpha",
            VirConfig {
                prior_alpha: -0.1,
                ..VirConfig::default()
            },
        ),
        (
            "reg",
            VirConfig {
                reg: f64::NAN,
                ..VirConfig::default()
            },
        ),
        (
            "softplus_sharpness",
            VirConfig {
                softplus_sharpness: 0.0,
                ..VirConfig::default()
            },
        ),
        (
            "min_evidence",
            VirConfig {
                min_evidence: 1.0,
                ..VirConfig::default()
            },
        ),
    ] {
        let e = VirHead::new(c, 3, vb.pp("y")).err().unwrap();
        assert!(e.to_string().contains(field), "{e}");
    }
    let e = nig_from_raw(&x, None, &VirConfig::default()).map(|_| ());
    assert!(e.is_ok(), "(B, 3) raw outputs are accepted");
    let e = nig_from_raw(&x.narrow(1, 0, 2).unwrap(), None, &VirConfig::default()).unwrap_err();
    assert!(e.to_string().contains("(B, 3)"), "{e}");
}

#[test]
fn prm_statistics_smoothing_and_calibration_match_the_official_module() {
    use dirkit_nn::loss::prm::{Prm, PrmConfig};
    let doc = reference();
    let c = &doc["prm"];
    let d = c["dim"].as_u64().unwrap() as usize;
    let config = PrmConfig::reference(
        c["bucket_num"].as_u64().unwrap() as usize,
        c["bucket_start"].as_u64().unwrap() as usize,
    );
    let mut prm = Prm::new(config, d).unwrap();
    for (e, epoch) in c["epochs"].as_array().unwrap().iter().enumerate() {
        // Two half batches: the statistics are the epoch's, however it is batched.
        let labels = vector(&epoch["labels"]);
        let (mean, var) = (matrix(&epoch["mean"]), matrix(&epoch["var"]));
        let h = labels.len() / 2;
        for (lo, hi) in [(0, h), (h, labels.len())] {
            prm.accumulate(&t2(&mean[lo..hi]), &t2(&var[lo..hi]), &t1(&labels[lo..hi]))
                .unwrap();
        }
        // Calibration starts in epoch 1, from the statistics of epoch 0.
        assert_eq!(prm.is_active(e), e >= 1);
        prm.end_epoch(e).unwrap();
    }
    let state = prm.state_tensors().unwrap();
    close_all(
        &flat(&state["prm.running_mean"]),
        &matrix(&c["running_mean"]).concat(),
        "running mean",
    );
    close_all(
        &flat(&state["prm.running_var"]),
        &matrix(&c["running_var"]).concat(),
        "running var",
    );
    // The smoothed statistics: means with the kernel w, the variance of the mean with w².
    let snap = flat(&state["prm.snapshot"]);
    let nb = matrix(&c["smoothed_mean"]).len();
    let (sm, sv) = (matrix(&c["smoothed_mean"]), matrix(&c["smoothed_var"]));
    let half = |m: &[Vec<f64>], k: usize| -> Vec<f64> {
        m.iter()
            .flat_map(|r| r[k * d..(k + 1) * d].to_vec())
            .collect()
    };
    close_all(
        &snap[3 * nb * d..4 * nb * d],
        &half(&sm, 0),
        "smoothed m_mu",
    );
    close_all(&snap[4 * nb * d..5 * nb * d], &half(&sm, 1), "smoothed m_v");
    close_all(
        &snap[5 * nb * d..6 * nb * d],
        &half(&sv, 0),
        "smoothed s_mu",
    );
    let mu = Var::from_tensor(&t2(&matrix(&c["mean"]))).unwrap();
    let var = Var::from_tensor(&t2(&matrix(&c["var"]))).unwrap();
    let labels = t1(&vector(&c["labels"]));
    let (m2, v2) = prm.calibrate(&mu, &var, &labels, 2).unwrap();
    close_all(
        &flat(&m2),
        &matrix(&c["calibrated_mean"]).concat(),
        "calibrated mean",
    );
    close_all(
        &flat(&v2),
        &matrix(&c["calibrated_var"]).concat(),
        "calibrated var",
    );
    // Affine in the latent: the gradient of Σμ' is the per-element scale √f, the same for v'.
    let g = (m2.sum_all().unwrap() + v2.sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(flat(g.get(&mu).unwrap()), flat(g.get(&var).unwrap()));
    // Epoch 0 (before start_smooth) passes through; state round-trips.
    let (same, _) = prm.calibrate(&mu, &var, &labels, 0).unwrap();
    assert_eq!(flat(&same), flat(&mu));
    let mut again = Prm::new(prm.config().clone(), d).unwrap();
    again.load_state_tensors(&state).unwrap();
    let (m3, v3) = again.calibrate(&mu, &var, &labels, 2).unwrap();
    assert_eq!(flat(&m3), flat(&m2));
    assert_eq!(flat(&v3), flat(&v2));
    let e = prm
        .accumulate(
            &t2(&matrix(&c["mean"])),
            &t2(&matrix(&c["var"])),
            &t1(&[1.0]),
        )
        .unwrap_err();
    assert!(e.to_string().contains("prm"), "{e}");
}
