//! The regression head: its training step equals the hand-written computation, FDS is applied
//! in training only, and its state round-trips bit for bit.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use dirkit_compute::train::seeded_init;
use dirkit_core::{Binning, LabelDensity, LdsConfig, OutOfRange};
use dirkit_nn::fds::{FdsConfig, StatsSource};
use dirkit_nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit_nn::loss::balanced_mse::BalancedMseConfig;
use dirkit_nn::loss::elementwise::RegressionLoss;

const D: usize = 6;

fn batch(seed: u64) -> (Tensor, Tensor) {
    let mut rng = dirkit_core::rng::SplitMix64::new(seed);
    let y: Vec<f64> = (0..32)
        .map(|i| [2.0, 3.0, 3.0, 4.0, 8.0, 5.0, 5.0, 5.0][i % 8])
        .collect();
    let z: Vec<f64> = (0..32 * D).map(|i| rng.normal() + y[i / D] * 0.3).collect();
    (
        Tensor::from_vec(z, (32, D), &Device::Cpu).unwrap(),
        Tensor::from_vec(y, 32, &Device::Cpu).unwrap(),
    )
}

fn fds_config(source: StatsSource) -> FdsConfig {
    let mut f = FdsConfig::reference(D, 10, 0);
    f.source = source;
    f
}

fn head(config: RegressionHeadConfig, seed: u64) -> (VarMap, RegressionHead) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let h = RegressionHead::new(config, vb.pp("head")).unwrap();
    seeded_init(&vm, seed).unwrap();
    (vm, h)
}

/// Mean of `sw[i]·|w·z_i + b − y_i|` with the head's current linear layer.
fn hand_weighted_l1(vm: &VarMap, z: &Tensor, labels: &[f64], sw: &[f64]) -> f64 {
    let data = vm.data().lock().unwrap();
    let w: Vec<Vec<f64>> = data["head.linear.weight"].to_vec2().unwrap();
    let b: Vec<f64> = data["head.linear.bias"].to_vec1().unwrap();
    let zs: Vec<Vec<f64>> = z.to_vec2().unwrap();
    let mut want = 0.0;
    for (i, row) in zs.iter().enumerate() {
        let p: f64 = row.iter().zip(&w[0]).map(|(a, c)| a * c).sum::<f64>() + b[0];
        want += sw[i] * (p - labels[i]).abs();
    }
    want / zs.len() as f64
}

#[test]
fn weighted_l1_step_equals_the_hand_computation() {
    let (z, y) = batch(1);
    let labels: Vec<f64> = y.to_vec1().unwrap();
    let bins = Binning::new(0.0, 1.0, 10).unwrap();
    let lds = LabelDensity::fit(&labels, bins, OutOfRange::Clip, &LdsConfig::default()).unwrap();
    let (vm, h) = head(RegressionHeadConfig::new(D), 3);
    let mut h = h.with_label_density(lds.clone()).unwrap();
    let step = h.forward_train(&z, &y, 0).unwrap();
    let sw = lds.sample_weights(&labels).unwrap();
    let want = hand_weighted_l1(&vm, &z, &labels, &sw);
    let got = step.loss.to_scalar::<f64>().unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    // Inference is the plain linear map.
    let pred: Vec<f64> = h.forward(&z).unwrap().to_vec1().unwrap();
    let train_pred: Vec<f64> = step.predictions.to_vec1().unwrap();
    assert_eq!(pred, train_pred, "no FDS yet: training and inference agree");
}

#[test]
fn online_fds_calibrates_training_only_and_state_round_trips() {
    let cfg = RegressionHeadConfig {
        fds: Some(fds_config(StatsSource::Online)),
        loss: HeadLoss::Pointwise(RegressionLoss::Mse),
        ..RegressionHeadConfig::new(D)
    };
    let (_vm, mut h) = head(cfg.clone(), 5);
    let (z, y) = batch(2);
    h.forward_train(&z, &y, 0).unwrap();
    assert_eq!(
        h.fds()
            .unwrap()
            .epoch_stats()
            .bins
            .iter()
            .map(|b| b.count)
            .sum::<u64>(),
        32
    );
    h.end_epoch(0).unwrap();
    let (z2, y2) = batch(3);
    let step = h.forward_train(&z2, &y2, 1).unwrap();
    let train_pred: Vec<f64> = step.predictions.to_vec1().unwrap();
    let infer_pred: Vec<f64> = h.forward(&z2).unwrap().to_vec1().unwrap();
    assert_ne!(train_pred, infer_pred, "FDS changes training features");

    let path = std::env::temp_dir().join(format!("dirkit-head-{}.safetensors", std::process::id()));
    h.save_state(&path).unwrap();
    let (_vm2, mut h2) = head(cfg, 5);
    h2.load_state(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let (z3, y3) = batch(4);
    let a = h
        .forward_train(&z3, &y3, 1)
        .unwrap()
        .loss
        .to_scalar::<f64>()
        .unwrap();
    let b = h2
        .forward_train(&z3, &y3, 1)
        .unwrap()
        .loss
        .to_scalar::<f64>()
        .unwrap();
    assert_eq!(a.to_bits(), b.to_bits(), "bit-identical step after load");
}

#[test]
fn second_pass_statistics_come_only_from_collect() {
    let cfg = RegressionHeadConfig {
        fds: Some(fds_config(StatsSource::SecondPass)),
        ..RegressionHeadConfig::new(D)
    };
    let (_vm, mut h) = head(cfg, 6);
    let (z, y) = batch(5);
    h.forward_train(&z, &y, 0).unwrap();
    assert!(h.fds().unwrap().epoch_stats().is_empty());
    h.collect_fds_stats(&z, &y).unwrap();
    assert!(!h.fds().unwrap().epoch_stats().is_empty());
}

#[test]
fn balanced_mse_sigma_is_exposed_and_learns() {
    let cfg = RegressionHeadConfig {
        loss: HeadLoss::BalancedMse(BalancedMseConfig::default()),
        ..RegressionHeadConfig::new(D)
    };
    let (_vm, mut h) = head(cfg, 7);
    let (z, y) = batch(6);
    let step = h.forward_train(&z, &y, 0).unwrap();
    let grads = step.loss.backward().unwrap();
    let sigma = h.noise_sigma().unwrap();
    let g = grads
        .get(sigma.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert!(g[0].is_finite() && g[0] != 0.0);
    let lds = LabelDensity::fit(
        &[1.0, 2.0],
        Binning::new(0.0, 1.0, 3).unwrap(),
        OutOfRange::Clip,
        &LdsConfig::default(),
    )
    .unwrap();
    assert!(
        h.with_label_density(lds).is_err(),
        "LDS weights are for point-wise losses"
    );
}

#[test]
fn mismatched_fds_dimension_is_refused() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = RegressionHeadConfig {
        fds: Some(FdsConfig::new(D + 1)),
        ..RegressionHeadConfig::new(D)
    };
    assert!(RegressionHead::new(cfg, vb).is_err());
}

#[test]
fn ghm_r_counts_round_trip_through_the_state() {
    let cfg = RegressionHeadConfig {
        loss: HeadLoss::GhmR(dirkit_nn::loss::ghm::GhmRConfig {
            momentum: 0.7,
            ..Default::default()
        }),
        ..RegressionHeadConfig::new(D)
    };
    let (_vm, mut h) = head(cfg.clone(), 7);
    let (z, y) = batch(5);
    h.forward_train(&z, &y, 0).unwrap();
    let path = std::env::temp_dir().join(format!("dirkit-ghm-{}.safetensors", std::process::id()));
    h.save_state(&path).unwrap();
    let (_vm2, mut h2) = head(cfg.clone(), 7);
    // A fresh head's next loss differs (its moving-average counts start at zero) …
    let (z2, y2) = batch(6);
    let fresh = h2
        .forward_train(&z2, &y2, 0)
        .unwrap()
        .loss
        .to_scalar::<f64>()
        .unwrap();
    let (_vm3, mut h3) = head(cfg, 7);
    h3.load_state(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let a = h
        .forward_train(&z2, &y2, 0)
        .unwrap()
        .loss
        .to_scalar::<f64>()
        .unwrap();
    let b = h3
        .forward_train(&z2, &y2, 0)
        .unwrap()
        .loss
        .to_scalar::<f64>()
        .unwrap();
    // … the restored one continues exactly.
    assert_eq!(a.to_bits(), b.to_bits());
    assert_ne!(a, fresh);
}

#[test]
fn caller_weights_replace_the_label_density_weights() {
    let (z, y) = batch(4);
    let labels: Vec<f64> = y.to_vec1().unwrap();
    let (vm, h) = head(RegressionHeadConfig::new(D), 5);
    let bins = Binning::new(0.0, 1.0, 10).unwrap();
    let lds = LabelDensity::fit(&labels, bins, OutOfRange::Clip, &LdsConfig::default()).unwrap();
    let mut h = h.with_label_density(lds).unwrap();
    let sw: Vec<f64> = (0..labels.len())
        .map(|i| 0.25 + (i % 5) as f64 * 0.5)
        .collect();
    let wt = Tensor::from_vec(sw.clone(), sw.len(), &Device::Cpu).unwrap();
    let step = h.forward_train_weighted(&z, &y, &wt, 0).unwrap();
    let want = hand_weighted_l1(&vm, &z, &labels, &sw);
    let got = step.loss.to_scalar::<f64>().unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    // Balanced MSE has no per-sample weights: refused, not ignored.
    let config = RegressionHeadConfig {
        loss: HeadLoss::BalancedMse(BalancedMseConfig::default()),
        ..RegressionHeadConfig::new(D)
    };
    let (_, mut b) = head(config, 6);
    let err = b
        .forward_train_weighted(&z, &y, &wt, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("point-wise losses"), "{err}");
}
