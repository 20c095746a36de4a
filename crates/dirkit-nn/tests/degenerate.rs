//! Degenerate statistics stay finite: FDS with fewer samples than feature dimensions per bin,
//! with features of 1e30 and 1e-30 scale, with bins of one sample and with zero variance
//! (diagonal and full covariance); Balanced MSE's GAI on a mixture fitted to fewer distinct
//! labels than components; and the focal and GHM-R losses when every error is the same.

mod common;

use candle_core::{DType, Device, Tensor};
use common::flat;
use dirkit_nn::fds::{Covariance, Fds, FdsConfig, FullCovariance};
use dirkit_nn::loss::elementwise::{FocalConfig, focal_l1, focal_mse};
use dirkit_nn::loss::ghm::{GhmR, GhmRConfig};

/// 6 samples in each of 5 bins, 16 feature dimensions (n < D in every bin), values of `scale`.
fn batch(scale: f64, seed: u64) -> (Tensor, Tensor) {
    let mut g = dirkit_core::SplitMix64::new(seed);
    let (n, d) = (30, 16);
    let x: Vec<f64> = (0..n * d).map(|_| scale * g.normal()).collect();
    let y: Vec<f64> = (0..n).map(|i| (i % 5) as f64).collect();
    (
        Tensor::from_vec(x, (n, d), &Device::Cpu).unwrap(),
        Tensor::from_vec(y, n, &Device::Cpu).unwrap(),
    )
}

#[test]
fn fds_with_fewer_samples_than_dimensions_and_extreme_scales_stays_finite() {
    for covariance in [
        Covariance::Diagonal,
        Covariance::Full(FullCovariance::default()),
    ] {
        for scale in [1e30, 1.0, 1e-30] {
            let mut config = FdsConfig::reference(16, 5, 0);
            config.covariance = covariance;
            let mut fds = Fds::new(config, &Device::Cpu, DType::F64).unwrap();
            let (x, y) = batch(scale, 1);
            fds.accumulate(&x, &y).unwrap();
            fds.end_epoch(0).unwrap();
            let (x2, y2) = batch(scale, 2);
            let out = flat(&fds.calibrate(&x2, &y2, 1).unwrap());
            let what = format!("{covariance:?} at scale {scale:e}");
            assert!(out.iter().all(|v| v.is_finite()), "{what}: not finite");
            // Calibration moves a feature by at most a few times the features' own scale.
            let worst = out.iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(worst < 100.0 * scale, "{what}: {worst:e}");
            assert!(worst > 0.0, "{what}: all zero");
        }
    }
}

#[test]
fn focal_and_ghm_losses_with_all_equal_errors_are_finite() {
    let dev = Device::Cpu;
    for e in [0.0f64, 1.5] {
        let pred = Tensor::from_vec(vec![2.0 + e; 8], 8, &dev).unwrap();
        let target = Tensor::from_vec(vec![2.0; 8], 8, &dev).unwrap();
        let var = candle_core::Var::from_tensor(&pred).unwrap();
        for (name, loss) in [
            (
                "focal-L1",
                focal_l1(&var, &target, &FocalConfig::default(), None).unwrap(),
            ),
            (
                "focal-MSE",
                focal_mse(&var, &target, &FocalConfig::default(), None).unwrap(),
            ),
        ] {
            let v = loss.to_scalar::<f64>().unwrap();
            assert!(v.is_finite() && v >= 0.0, "{name} at error {e}: {v}");
            let g = flat(loss.backward().unwrap().get(&var).unwrap());
            assert!(
                g.iter().all(|x| x.is_finite()),
                "{name} at error {e}: {g:?}"
            );
        }
        // GHM-R: every sample in one gradient-density bin, over several updates.
        let mut ghm = GhmR::new(GhmRConfig::default()).unwrap();
        for _ in 0..3 {
            let loss = ghm.loss(&var, &target).unwrap();
            let v = loss.to_scalar::<f64>().unwrap();
            assert!(v.is_finite() && v >= 0.0, "GHM-R at error {e}: {v}");
            let g = flat(loss.backward().unwrap().get(&var).unwrap());
            assert!(g.iter().all(|x| x.is_finite()), "GHM-R at error {e}: {g:?}");
        }
    }
}

#[test]
fn fds_with_single_sample_bins_and_zero_variance_stays_finite() {
    let dev = Device::Cpu;
    let d = 4;
    for covariance in [
        Covariance::Diagonal,
        Covariance::Full(FullCovariance::default()),
    ] {
        // Five bins of one sample each; then five bins whose samples are all identical
        // (zero variance in every dimension), and a batch where every feature is constant.
        let one_each: Vec<f64> = (0..5 * d).map(|i| (i % 7) as f64 * 0.5).collect();
        let identical: Vec<f64> = (0..20 * d).map(|i| ((i / d) % 5) as f64).collect();
        let constant = vec![3.0; 20 * d];
        for (what, x, n) in [
            ("one sample per bin", one_each, 5),
            ("identical samples per bin", identical, 20),
            ("constant features", constant, 20),
        ] {
            let mut fds = Fds::new(
                {
                    let mut c = FdsConfig::reference(d, 5, 0);
                    c.covariance = covariance;
                    c
                },
                &dev,
                DType::F64,
            )
            .unwrap();
            let y: Vec<f64> = (0..n).map(|i| (i % 5) as f64).collect();
            let x = Tensor::from_vec(x, (n, d), &dev).unwrap();
            let y = Tensor::from_vec(y, n, &dev).unwrap();
            fds.accumulate(&x, &y).unwrap();
            fds.end_epoch(0).unwrap();
            let out = flat(&fds.calibrate(&x, &y, 1).unwrap());
            assert!(
                out.iter().all(|v| v.is_finite()),
                "{covariance:?}, {what}: {out:?}"
            );
        }
    }
}

#[test]
fn gai_with_fewer_distinct_labels_than_components_is_finite_or_refused() {
    use dirkit_core::{Gmm1d, GmmConfig};
    use dirkit_nn::loss::balanced_mse::{
        BalancedMse, BalancedMseConfig, BalancedMseVariant, GaussianMixture,
    };
    let dev = Device::Cpu;
    let config = GmmConfig {
        k: 8,
        ..GmmConfig::default()
    };
    let mut fitted = 0;
    for labels in [
        vec![4.0; 12],
        vec![1.0, 1.0, 9.0, 9.0, 9.0],
        vec![1.0, 2.0, 2.0, 3.0, 3.0, 3.0],
    ] {
        let distinct = {
            let mut v = labels.clone();
            v.dedup();
            v.len()
        };
        // One distinct label has no spread to floor a variance with: a typed refusal.
        let gmm = match Gmm1d::fit(&labels, &config) {
            Ok(g) => g,
            Err(e) => {
                assert_eq!(distinct, 1, "{labels:?}: {e}");
                continue;
            }
        };
        assert!(gmm.k() <= distinct, "{labels:?}: {} components", gmm.k());
        let mixture = match GaussianMixture::from_gmm(&gmm) {
            Ok(m) => m,
            Err(e) => {
                assert_eq!(distinct, 1, "{labels:?}: {e}");
                continue;
            }
        };
        let loss = BalancedMse::new(
            BalancedMseConfig {
                variant: BalancedMseVariant::Gai(mixture),
                init_sigma: 1.0,
            },
            &dev,
            DType::F64,
        )
        .unwrap();
        let pred = candle_core::Var::from_tensor(
            &Tensor::from_vec(vec![0.0, 2.5, 5.0, 40.0], 4, &dev).unwrap(),
        )
        .unwrap();
        let target = Tensor::from_vec(vec![1.0, 2.0, 9.0, 3.0], 4, &dev).unwrap();
        let l = loss.loss(&pred, &target).unwrap();
        let v = l.to_scalar::<f64>().unwrap();
        assert!(v.is_finite(), "{labels:?}: loss {v}");
        let g = flat(l.backward().unwrap().get(&pred).unwrap());
        assert!(g.iter().all(|x| x.is_finite()), "{labels:?}: {g:?}");
        fitted += 1;
    }
    assert_eq!(fitted, 2, "two and three distinct labels fit");
}
