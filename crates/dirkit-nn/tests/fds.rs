//! FDS against tests/reference/fds.json (f64 on CPU, the file's tolerances), plus the edge
//! cases methods.md §5 lists.

use candle_core::{DType, Device, Tensor, Var};
use dirkit_core::Binning;
use dirkit_nn::fds::{Covariance, EpochStats, Fds, FdsConfig, FullCovariance};
use serde_json::Value;

fn load() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/fds.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn vec1(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn mat(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(vec1).collect()
}

#[track_caller]
fn close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g:e}, want {w:e}"
        );
    }
}

fn config(d: &Value, covariance: Covariance) -> FdsConfig {
    let c = &d["config"];
    let mut cfg = FdsConfig::reference(
        c["feature_dim"].as_u64().unwrap() as usize,
        c["bucket_num"].as_u64().unwrap() as usize,
        c["bucket_start"].as_u64().unwrap() as usize,
    );
    cfg.covariance = covariance;
    cfg
}

fn tensor2(rows: &[Vec<f64>]) -> Tensor {
    Tensor::new(rows.to_vec(), &Device::Cpu).unwrap()
}

fn labels(v: &Value) -> Tensor {
    Tensor::new(vec1(v), &Device::Cpu).unwrap()
}

fn check_epoch_stats(s: &EpochStats, want: &Value, what: &str) {
    for (b, bin) in s.bins.iter().enumerate() {
        assert_eq!(
            bin.count,
            want["count"][b].as_u64().unwrap(),
            "{what} count[{b}]"
        );
        if bin.count == 0 {
            assert!(want["mean"][b].is_null() || want["mean"][b][0].is_null());
            continue;
        }
        close(
            &bin.mean,
            &vec1(&want["mean"][b]),
            1e-12,
            1e-10,
            &format!("{what} mean[{b}]"),
        );
        close(
            &bin.variance().unwrap(),
            &vec1(&want["var"][b]),
            1e-12,
            1e-10,
            &format!("{what} var[{b}]"),
        );
        if let Some(got) = bin.covariance() {
            let cov: Vec<f64> = mat(&want["cov"][b]).concat();
            close(&got, &cov, 1e-12, 1e-10, &format!("{what} cov[{b}]"));
        }
        // The raw sums the file also gives follow from count and mean.
        let sum: Vec<f64> = bin.mean.iter().map(|m| m * bin.count as f64).collect();
        close(
            &sum,
            &vec1(&want["sum"][b]),
            1e-12,
            1e-10,
            &format!("{what} sum[{b}]"),
        );
    }
}

/// Runs both epochs; returns the FDS after each (snapshot after epoch 1, after epoch 2).
fn two_epochs(covariance: Covariance) -> (Value, Fds, Fds) {
    let d = load();
    let cfg = config(&d, covariance);
    let mut fds = Fds::new(cfg, &Device::Cpu, DType::F64).unwrap();
    let y = labels(&d["train_labels"]);
    fds.accumulate(&tensor2(&mat(&d["epoch1_features"])), &y)
        .unwrap();
    check_epoch_stats(fds.epoch_stats(), &d["epoch1"]["epoch_stats"], "epoch1");
    fds.end_epoch(0).unwrap();
    let after1 = fds.clone();
    fds.accumulate(&tensor2(&mat(&d["epoch2_features"])), &y)
        .unwrap();
    check_epoch_stats(fds.epoch_stats(), &d["epoch2"]["epoch_stats"], "epoch2");
    fds.end_epoch(1).unwrap();
    (d, after1, fds)
}

#[test]
fn running_and_smoothed_statistics_match_both_epochs() {
    let (d, e1, e2) = two_epochs(Covariance::Full(FullCovariance::raw()));
    for (fds, key) in [(&e1, "epoch1"), (&e2, "epoch2")] {
        let want = &d[key];
        let r = fds.running();
        let seen: Vec<bool> = want["running"]["seen"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_bool().unwrap())
            .collect();
        assert_eq!(r.seen, seen, "{key} seen");
        for b in 0..r.seen.len() {
            close(
                &r.mean[b],
                &vec1(&want["running"]["mean"][b]),
                1e-12,
                1e-10,
                &format!("{key} running mean[{b}]"),
            );
            close(
                &r.var[b],
                &vec1(&want["running"]["var"][b]),
                1e-12,
                1e-10,
                &format!("{key} running var[{b}]"),
            );
            close(
                &r.cov[b],
                &mat(&want["running"]["cov"][b]).concat(),
                1e-12,
                1e-10,
                &format!("{key} running cov[{b}]"),
            );
            let s = fds.smoothed().unwrap();
            close(
                &s.mean[b],
                &vec1(&want["smoothed"]["mean"][b]),
                1e-12,
                1e-10,
                &format!("{key} smoothed mean[{b}]"),
            );
            close(
                &s.var[b],
                &vec1(&want["smoothed"]["var"][b]),
                1e-12,
                1e-10,
                &format!("{key} smoothed var[{b}]"),
            );
            close(
                &s.cov[b],
                &mat(&want["smoothed"]["cov"][b]).concat(),
                1e-12,
                1e-10,
                &format!("{key} smoothed cov[{b}]"),
            );
        }
    }
}

fn calibrated(fds: &Fds, d: &Value) -> Vec<Vec<f64>> {
    let z = tensor2(&mat(&d["batch"]["features"]));
    let y = labels(&d["batch"]["labels"]);
    fds.calibrate(&z, &y, 1).unwrap().to_vec2().unwrap()
}

#[test]
fn diagonal_calibration_matches_both_snapshots() {
    let (d, e1, e2) = two_epochs(Covariance::Diagonal);
    for (fds, key) in [(&e1, "snapshot_epoch1"), (&e2, "snapshot_epoch2")] {
        let got = calibrated(fds, &d);
        let want = mat(&d["calibrated"][key]["diagonal"]);
        for (r, (g, w)) in got.iter().zip(&want).enumerate() {
            close(g, w, 1e-12, 0.0, &format!("{key} diagonal row {r}"));
        }
    }
}

#[test]
fn full_covariance_calibration_matches_both_snapshots() {
    let (d, e1, e2) = two_epochs(Covariance::Full(FullCovariance::raw()));
    for (fds, key) in [(&e1, "snapshot_epoch1"), (&e2, "snapshot_epoch2")] {
        let got = calibrated(fds, &d);
        let want = mat(&d["calibrated"][key]["full_covariance"]);
        for (r, (g, w)) in got.iter().zip(&want).enumerate() {
            close(g, w, 1e-12, 1e-8, &format!("{key} full row {r}"));
        }
    }
}

#[test]
fn calibration_in_f32_is_within_the_f32_tolerance() {
    let d = load();
    let cfg = config(&d, Covariance::Diagonal);
    let mut fds = Fds::new(cfg, &Device::Cpu, DType::F32).unwrap();
    let y = labels(&d["train_labels"]).to_dtype(DType::F32).unwrap();
    let z = tensor2(&mat(&d["epoch1_features"]))
        .to_dtype(DType::F32)
        .unwrap();
    fds.accumulate(&z, &y).unwrap();
    fds.end_epoch(0).unwrap();
    let zb = tensor2(&mat(&d["batch"]["features"]))
        .to_dtype(DType::F32)
        .unwrap();
    let yb = labels(&d["batch"]["labels"]);
    let got: Vec<Vec<f32>> = fds.calibrate(&zb, &yb, 1).unwrap().to_vec2().unwrap();
    let want = mat(&d["calibrated"]["snapshot_epoch1"]["diagonal"]);
    for (g, w) in got.iter().zip(&want) {
        let g: Vec<f64> = g.iter().map(|&x| x as f64).collect();
        close(&g, w, 1e-5, 0.0, "f32 diagonal");
    }
}

#[test]
fn edge_bins_pool_single_and_empty_bins_and_zero_variance_dims() {
    let (d, e1, _) = two_epochs(Covariance::Diagonal);
    let z = mat(&d["batch"]["features"]);
    let got = calibrated(&e1, &d);
    let rows = d["batch"]["rows"].as_array().unwrap();
    for (r, info) in rows.iter().enumerate() {
        let bin = info["bin"].as_u64().unwrap() as usize;
        let label = info["label"].as_f64().unwrap();
        assert_eq!(
            e1.bins_of(&Tensor::new(&[label], &Device::Cpu).unwrap())
                .unwrap(),
            vec![bin]
        );
        match bin {
            // Never-seen bin: the sample passes unchanged, bit for bit.
            7 => assert_eq!(got[r], z[r], "row {r} (empty bin)"),
            // Bin 3 has zero variance in dimension 2: that dimension passes unchanged.
            3 => assert_eq!(got[r][2], z[r][2], "row {r} dim 2"),
            _ => {}
        }
    }
    // Labels 0 and 1 pool into bin 0, 11 and beyond into bin 9.
    let y = Tensor::new(&[0.0, 1.0, 2.0, 11.0, 40.0], &Device::Cpu).unwrap();
    assert_eq!(e1.bins_of(&y).unwrap(), vec![0, 0, 0, 9, 9]);
    // Single-sample bin 5: zero variance everywhere → unchanged in diagonal mode.
    let r5 = rows.iter().position(|r| r["bin"] == 5).unwrap();
    assert_eq!(got[r5], z[r5]);
}

#[test]
fn merged_partial_statistics_equal_one_shot_statistics() {
    let d = load();
    let cfg = config(&d, Covariance::Full(FullCovariance::raw()));
    let z = mat(&d["epoch1_features"]);
    let y = vec1(&d["train_labels"]);
    let mut whole = Fds::new(cfg.clone(), &Device::Cpu, DType::F64).unwrap();
    whole
        .accumulate(&tensor2(&z), &labels(&d["train_labels"]))
        .unwrap();
    // Three uneven parts, two of them in a second FDS whose statistics are merged in.
    let mut a = Fds::new(cfg.clone(), &Device::Cpu, DType::F64).unwrap();
    let mut b = Fds::new(cfg, &Device::Cpu, DType::F64).unwrap();
    for (lo, hi, into_b) in [(0, 7, false), (7, 41, true), (41, 60, false)] {
        let zy = Tensor::new(y[lo..hi].to_vec(), &Device::Cpu).unwrap();
        let part = if into_b { &mut b } else { &mut a };
        part.accumulate(&tensor2(&z[lo..hi]), &zy).unwrap();
    }
    a.merge_epoch_stats(b.epoch_stats()).unwrap();
    for (x, w) in a.epoch_stats().bins.iter().zip(&whole.epoch_stats().bins) {
        assert_eq!(x.count, w.count);
        close(&x.mean, &w.mean, 1e-13, 1e-12, "merged mean");
        close(&x.m2, &w.m2, 1e-12, 1e-11, "merged m2");
        close(&x.comoment, &w.comoment, 1e-12, 1e-11, "merged comoment");
    }
}

#[test]
fn nearly_singular_full_covariance_gives_finite_bounded_output() {
    let (d, e1, _) = two_epochs(Covariance::Full(FullCovariance::default()));
    let got = calibrated(&e1, &d);
    let z = mat(&d["batch"]["features"]);
    for (g, zr) in got.iter().zip(&z) {
        assert!(g.iter().all(|x| x.is_finite()));
        // The clipped transform stretches by at most sqrt(10) around the bin mean.
        let spread: f64 = g
            .iter()
            .zip(zr)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(spread < 50.0, "{g:?} vs {zr:?}");
    }
    // The raw form amplifies bin 3's null space: large but finite.
    let (_, raw, _) = two_epochs(Covariance::Full(FullCovariance::raw()));
    let r3 = d["batch"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["bin"] == 3)
        .unwrap();
    let raw_row = &calibrated(&raw, &d)[r3];
    assert!(raw_row.iter().all(|x| x.is_finite()));
    assert!(raw_row.iter().map(|x| x.abs()).fold(0.0, f64::max) > 50.0);
}

#[test]
fn gradients_flow_through_the_features_only() {
    let (d, e1, _) = two_epochs(Covariance::Diagonal);
    let z = Var::from_tensor(&tensor2(&mat(&d["batch"]["features"]))).unwrap();
    let y = labels(&d["batch"]["labels"]);
    let out = e1.calibrate(z.as_tensor(), &y, 1).unwrap();
    let grads = out.sum_all().unwrap().backward().unwrap();
    let g: Vec<Vec<f64>> = grads.get(z.as_tensor()).unwrap().to_vec2().unwrap();
    // d z'/d z = the per-dimension scale: 1 for pass-through rows.
    let rows = d["batch"]["rows"].as_array().unwrap();
    let r7 = rows.iter().position(|r| r["bin"] == 7).unwrap();
    assert_eq!(g[r7], vec![1.0; 4]);
    assert!(
        g.iter()
            .flatten()
            .all(|&x| (0.1f64.sqrt() - 1e-12..=10f64.sqrt() + 1e-12).contains(&x))
    );
}

#[test]
fn before_start_smooth_and_before_statistics_features_pass_unchanged() {
    let d = load();
    let cfg = config(&d, Covariance::Diagonal);
    let fresh = Fds::new(cfg, &Device::Cpu, DType::F64).unwrap();
    let z = tensor2(&mat(&d["batch"]["features"]));
    let y = labels(&d["batch"]["labels"]);
    let out = fresh.calibrate(&z, &y, 5).unwrap();
    assert_eq!(out.to_vec2::<f64>().unwrap(), z.to_vec2::<f64>().unwrap());
    let (_, e1, _) = two_epochs(Covariance::Diagonal);
    let out = e1.calibrate(&z, &y, 0).unwrap();
    assert_eq!(out.to_vec2::<f64>().unwrap(), z.to_vec2::<f64>().unwrap());
}

#[test]
fn save_load_then_the_next_step_is_bit_identical() {
    for cov in [
        Covariance::Diagonal,
        Covariance::Full(FullCovariance::default()),
    ] {
        let (d, mut e1, _) = two_epochs(cov);
        // Mid-epoch state: part of epoch 2 accumulated.
        let z2 = mat(&d["epoch2_features"]);
        let y2 = vec1(&d["train_labels"]);
        e1.accumulate(
            &tensor2(&z2[..30]),
            &Tensor::new(y2[..30].to_vec(), &Device::Cpu).unwrap(),
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("dirkit-fds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("fds-{}.safetensors", e1.config().is_full()));
        e1.save(&path).unwrap();
        let mut loaded = Fds::load(&path, &Device::Cpu, DType::F64).unwrap();
        let zb = tensor2(&mat(&d["batch"]["features"]));
        let yb = labels(&d["batch"]["labels"]);
        let a: Vec<Vec<f64>> = e1.calibrate(&zb, &yb, 1).unwrap().to_vec2().unwrap();
        let b: Vec<Vec<f64>> = loaded.calibrate(&zb, &yb, 1).unwrap().to_vec2().unwrap();
        assert_eq!(a, b);
        for f in [&mut e1, &mut loaded] {
            f.accumulate(
                &tensor2(&z2[30..]),
                &Tensor::new(y2[30..].to_vec(), &Device::Cpu).unwrap(),
            )
            .unwrap();
            f.end_epoch(1).unwrap();
        }
        let a: Vec<Vec<f64>> = e1.calibrate(&zb, &yb, 2).unwrap().to_vec2().unwrap();
        let b: Vec<Vec<f64>> = loaded.calibrate(&zb, &yb, 2).unwrap().to_vec2().unwrap();
        assert_eq!(a, b, "next epoch after load");
        std::fs::remove_file(&path).ok();
    }
}

#[test]
fn invalid_configurations_are_refused() {
    let mut c = FdsConfig::new(8);
    c.momentum = Some(1.5);
    assert!(Fds::new(c, &Device::Cpu, DType::F32).is_err());
    let mut c = FdsConfig::new(8);
    c.binning = Binning::new(0.0, 1.0, 2).unwrap();
    assert!(
        Fds::new(c, &Device::Cpu, DType::F32).is_err(),
        "2 bins cannot be reflect-padded by 2"
    );
    let mut c = FdsConfig::new(8);
    c.clip = (0.0, 10.0);
    assert!(Fds::new(c, &Device::Cpu, DType::F32).is_err());
    let fds = Fds::new(FdsConfig::new(8), &Device::Cpu, DType::F32).unwrap();
    let z = Tensor::zeros((4, 7), DType::F32, &Device::Cpu).unwrap();
    let y = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
    assert!(fds.calibrate(&z, &y, 3).is_err(), "wrong feature dimension");
}
