//! Degenerate statistics stay finite: FDS with fewer samples than feature dimensions per bin and
//! with features of 1e30 and 1e-30 scale (diagonal and full covariance), and the focal and GHM-R
//! losses when every error is the same.

use candle_core::{DType, Device, Tensor};
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

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
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
