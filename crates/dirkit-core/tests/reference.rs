//! dirkit-core against the reference vectors in `tests/reference/` (a copy of
//! `../shared/reference/`; CI checks the copy is current). Tolerances are the files' own.

use dirkit_core::{
    Bandwidth, Binning, DenseWeight, DenseWeightConfig, GroupMetrics, Kernel, KernelKind,
    LabelDensity, LdsConfig, Normalisation, Numerics, OutOfRange, RegressionReport, Reweight,
    ShotThresholds, lds::numpy_sum_f32,
};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/reference/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn f(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "nan" => f64::NAN,
        _ => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

fn fv(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn opt(v: &Value) -> Option<f64> {
    (!v.is_null()).then(|| f(v))
}

#[track_caller]
fn close(got: f64, want: f64, atol: f64, rtol: f64, what: &str) {
    assert!(
        (got - want).abs() <= atol + rtol * want.abs(),
        "{what}: got {got:e}, want {want:e} (diff {:e})",
        (got - want).abs()
    );
}

#[track_caller]
fn all_close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        close(*g, *w, atol, rtol, &format!("{what}[{i}]"));
    }
}

fn kernel_of(case: &Value) -> Kernel {
    let name = case["kernel"].as_str().unwrap();
    if name == "custom" {
        return Kernel::Custom {
            weights: fv(&case["weights"]),
        };
    }
    let ks = case["ks"].as_u64().unwrap() as usize;
    let sigma = f(&case["sigma"]);
    name.parse::<KernelKind>().unwrap().with(ks, sigma)
}

#[test]
fn kernels_match_every_reference_window() {
    let k = load("kernels.json");
    let cases = k["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 35);
    for case in cases {
        let kernel = kernel_of(case);
        let what = format!("{kernel:?}");
        for (norm, key) in [
            (Normalisation::Raw, "raw"),
            (Normalisation::Peak, "peak_normalised"),
            (Normalisation::Sum, "sum_normalised"),
        ] {
            let got = kernel.window(norm).unwrap();
            all_close(&got, &fv(&case[key]), 1e-12, 0.0, &format!("{what} {key}"));
        }
    }
}

#[test]
fn kernels_reject_every_reference_error_case() {
    let k = load("kernels.json");
    for case in k["errors"]["cases"].as_array().unwrap() {
        let kernel = kernel_of(case);
        assert!(
            kernel.window(Normalisation::Peak).is_err(),
            "{kernel:?} must be rejected ({})",
            case["why"]
        );
    }
}

fn binning_of(v: &Value) -> Binning {
    assert_eq!(v["out_of_range"], "Clip");
    Binning::new(
        f(&v["start"]),
        f(&v["width"]),
        v["n_bins"].as_u64().unwrap() as usize,
    )
    .unwrap()
}

fn lds_config_of(c: &Value, numerics: Numerics) -> LdsConfig {
    let reweight = match c["reweight"].as_str().unwrap() {
        "inverse" => Reweight::INVERSE,
        "sqrt-inverse" => Reweight::SqrtInverse,
        "effective-number" => Reweight::EffectiveNumber {
            beta: f(&c["beta"]),
        },
        other => panic!("unknown reweight {other}"),
    };
    let lds = (!c["lds"].is_null()).then(|| kernel_of(&c["lds"]));
    LdsConfig {
        reweight,
        lds,
        numerics,
    }
}

fn lds_cases() -> Vec<(String, Binning, Vec<f64>, Value, Value)> {
    let d = load("lds.json");
    let mut out = Vec::new();
    for case in ["integer_case", "continuous_case"] {
        let c = &d[case];
        let binning = binning_of(&c["binning"]);
        let labels = fv(&c["labels"]);
        let bins: Vec<usize> = c["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as usize)
            .collect();
        for (i, y) in labels.iter().enumerate() {
            assert_eq!(
                binning.bin(*y, i, OutOfRange::Clip).unwrap(),
                Some(bins[i]),
                "{case} bin of label #{i} = {y}"
            );
        }
        let counts: Vec<u64> = c["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert_eq!(
            binning.counts(&labels, OutOfRange::Clip).unwrap(),
            (counts, 0)
        );
        for cfg in c["configs"].as_array().unwrap() {
            let name = format!("{case}/{}", cfg["name"].as_str().unwrap());
            out.push((
                name,
                binning,
                labels.clone(),
                cfg.clone(),
                c["counts"].clone(),
            ));
        }
    }
    assert_eq!(out.len(), 11);
    out
}

#[test]
fn lds_default_mode_matches_reference_in_f64() {
    for (name, binning, labels, cfg, _) in lds_cases() {
        let config = lds_config_of(&cfg, Numerics::F64);
        if let Some(k) = &config.lds {
            let w = k.window(Normalisation::Peak).unwrap();
            all_close(&w, &fv(&cfg["kernel_window_peak"]), 1e-12, 0.0, &name);
        }
        let fit = LabelDensity::fit(&labels, binning, OutOfRange::Clip, &config).unwrap();
        all_close(
            &fit.transformed,
            &fv(&cfg["transformed"]),
            0.0,
            1e-9,
            &format!("{name} transformed"),
        );
        all_close(
            &fit.effective_density,
            &fv(&cfg["effective_density"]),
            0.0,
            1e-9,
            &format!("{name} effective density"),
        );
        let want_bins: Vec<Option<f64>> = cfg["bin_weight"]
            .as_array()
            .unwrap()
            .iter()
            .map(opt)
            .collect();
        for (b, (got, want)) in fit.bin_weight.iter().zip(&want_bins).enumerate() {
            match (got, want) {
                (Some(g), Some(w)) => close(*g, *w, 0.0, 1e-9, &format!("{name} bin_weight[{b}]")),
                (None, None) => {}
                _ => panic!("{name} bin_weight[{b}]: got {got:?}, want {want:?}"),
            }
        }
        let got = fit.sample_weights(&labels).unwrap();
        all_close(
            &got,
            &fv(&cfg["sample_weights"]),
            0.0,
            1e-9,
            &format!("{name} sample weights"),
        );
        let mean = got.iter().sum::<f64>() / got.len() as f64;
        close(mean, 1.0, 1e-12, 0.0, &format!("{name} mean weight"));
    }
}

#[test]
fn lds_reference_mode_reproduces_the_official_numbers() {
    for (name, binning, labels, cfg, _) in lds_cases() {
        let r = &cfg["reference_mode"];
        let config = lds_config_of(&cfg, Numerics::Reference);
        let fit = LabelDensity::fit(&labels, binning, OutOfRange::Clip, &config).unwrap();
        let want_d = fv(&r["effective_density"]);
        if cfg["reweight"] == "inverse" {
            // Truncated integers: exact.
            assert_eq!(fit.effective_density, want_d, "{name} truncated density");
        } else {
            all_close(&fit.effective_density, &want_d, 0.0, 1e-9, &name);
        }
        // The pairwise f32 sum of 1/d over the samples equals numpy's bit for bit.
        let u: Vec<f32> = labels
            .iter()
            .map(|&y| {
                let b = binning.bin(y, 0, OutOfRange::Clip).unwrap().unwrap();
                (1.0 / fit.effective_density[b]) as f32
            })
            .collect();
        assert_eq!(
            numpy_sum_f32(&u) as f64,
            f(&r["sum_inv_density_f32"]),
            "{name} f32 pairwise sum"
        );
        let want_bins: Vec<Option<f64>> = r["bin_weight_f32"]
            .as_array()
            .unwrap()
            .iter()
            .map(opt)
            .collect();
        for (b, (got, want)) in fit.bin_weight.iter().zip(&want_bins).enumerate() {
            match (got, want) {
                // The file prints f32 values through f64 text; compare on the f32 grid.
                (Some(g), Some(w)) => {
                    assert_eq!(*g as f32, *w as f32, "{name} bin_weight_f32[{b}]");
                    assert_eq!(*g, (*g as f32) as f64, "{name}: weights are f32 values");
                }
                (None, None) => {}
                _ => panic!("{name} bin_weight_f32[{b}]: got {got:?}, want {want:?}"),
            }
        }
        let got = fit.sample_weights(&labels).unwrap();
        all_close(
            &got,
            &fv(&r["sample_weights_f32"]),
            0.0,
            2e-7,
            &format!("{name} f32 sample weights"),
        );
    }
}

#[test]
fn lds_from_a_histogram_equals_lds_from_the_samples() {
    for (name, binning, labels, cfg, counts) in lds_cases() {
        let counts: Vec<u64> = counts
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        let config = lds_config_of(&cfg, Numerics::F64);
        let a = LabelDensity::fit(&labels, binning, OutOfRange::Clip, &config).unwrap();
        let b = LabelDensity::from_counts(binning, counts, &config).unwrap();
        assert_eq!(a.effective_density, b.effective_density, "{name}");
        for (x, y) in a.bin_weight.iter().zip(&b.bin_weight) {
            match (x, y) {
                (Some(x), Some(y)) => close(*x, *y, 0.0, 1e-12, &name),
                (None, None) => {}
                _ => panic!("{name}: {x:?} vs {y:?}"),
            }
        }
    }
}

#[test]
fn denseweight_matches_the_exact_kde_reference() {
    let d = load("denseweight.json");
    let labels = fv(&d["labels"]);
    for case in d["cases"].as_array().unwrap() {
        let bandwidth = match &case["bandwidth"] {
            Value::String(s) if s == "silverman" => Bandwidth::Silverman,
            v => Bandwidth::Fixed(f(v)),
        };
        let config = DenseWeightConfig {
            alpha: f(&case["alpha"]),
            eps: f(&case["eps"]),
            bandwidth,
        };
        let dw = DenseWeight::fit(&labels, config).unwrap();
        let what = format!("alpha {} bandwidth {:?}", config.alpha, config.bandwidth);
        if bandwidth == Bandwidth::Silverman {
            close(
                dw.bandwidth,
                f(&d["bandwidth_silverman"]),
                1e-12,
                1e-9,
                &what,
            );
            close(dw.density_min, f(&d["density_min"]), 1e-12, 1e-9, &what);
            close(dw.density_max, f(&d["density_max"]), 1e-12, 1e-9, &what);
            let dens: Vec<f64> = labels.iter().map(|&y| dw.density(y)).collect();
            all_close(
                &dens,
                &fv(&d["density"]),
                1e-12,
                1e-9,
                &format!("{what} density"),
            );
            let sc: Vec<f64> = labels.iter().map(|&y| dw.scaled_density(y)).collect();
            all_close(
                &sc,
                &fv(&d["scaled_density"]),
                1e-12,
                1e-9,
                &format!("{what} scaled"),
            );
        } else {
            close(dw.density_min, f(&case["density_min"]), 1e-12, 1e-9, &what);
            close(dw.density_max, f(&case["density_max"]), 1e-12, 1e-9, &what);
        }
        close(dw.mean_w_star, f(&case["mean_w_star"]), 1e-12, 1e-9, &what);
        let w = dw.weights(&labels);
        all_close(
            &w,
            &fv(&case["weights"]),
            1e-12,
            1e-9,
            &format!("{what} weights"),
        );
    }
}

fn check_group(got: &GroupMetrics, want: &Value, what: &str) {
    assert_eq!(got.n, want["n"].as_u64().unwrap(), "{what} n");
    if let Some(nb) = want.get("n_test_bins") {
        assert_eq!(
            got.n_test_bins as u64,
            nb.as_u64().unwrap(),
            "{what} n_test_bins"
        );
    }
    for (g, key) in [
        (got.mae, "mae"),
        (got.mse, "mse"),
        (got.rmse, "rmse"),
        (got.gmean, "gmean"),
    ] {
        match (g, opt(&want[key])) {
            (Some(g), Some(0.0)) => assert_eq!(g, 0.0, "{what} {key} must be exactly 0"),
            (Some(g), Some(w)) => close(g, w, 0.0, 1e-12, &format!("{what} {key}")),
            (None, None) => {}
            (g, w) => panic!("{what} {key}: got {g:?}, want {w:?}"),
        }
    }
}

#[test]
fn regression_report_matches_every_metrics_case() {
    let d = load("metrics.json");
    let binning = Binning::new(0.0, 1.0, 31).unwrap();
    let train = fv(&d["train_labels"]);
    let (counts, _) = binning.counts(&train, OutOfRange::Clip).unwrap();
    let want_counts: Vec<u64> = d["train_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(counts, want_counts);
    let thresholds = ShotThresholds { many: 20, few: 5 };
    let shots: Vec<String> = thresholds
        .shots(&counts)
        .iter()
        .map(|s| s.to_string())
        .collect();
    let want_shots: Vec<String> = d["shot_of_bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(shots, want_shots);
    for case in d["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let r = RegressionReport::compute(
            &fv(&case["predictions"]),
            &fv(&case["targets"]),
            &binning,
            &counts,
            thresholds,
            OutOfRange::Clip,
        )
        .unwrap();
        let e = &case["expected"];
        check_group(&r.all, &e["all"], &format!("{name} all"));
        check_group(&r.many, &e["many"], &format!("{name} many"));
        check_group(&r.medium, &e["medium"], &format!("{name} medium"));
        check_group(&r.few, &e["few"], &format!("{name} few"));
        close(
            r.balanced_mae.unwrap(),
            f(&e["balanced"]["mae"]),
            0.0,
            1e-12,
            name,
        );
        close(
            r.balanced_mse.unwrap(),
            f(&e["balanced"]["mse"]),
            0.0,
            1e-12,
            name,
        );
        close(r.pearson_r.unwrap(), f(&e["pearson_r"]), 0.0, 1e-12, name);
    }
}
