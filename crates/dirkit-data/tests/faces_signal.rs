//! The age signal of the synthetic faces is present but not trivial: statistics of small
//! patches predict age, no single pixel does, and the photo conditions and the people carry no
//! age information.

use std::sync::OnceLock;

use dirkit_data::faces::{FaceConfig, SplitPlan, SyntheticFaces, age_spread};
use image::RgbImage;

/// 20 images of each age 1–101 in val and in test (2,020 each) and 3,000 training images.
fn faces() -> &'static SyntheticFaces {
    static FACES: OnceLock<SyntheticFaces> = OnceLock::new();
    FACES.get_or_init(|| {
        let plan = SplitPlan {
            train_total: 3_000,
            val_per_age: 20,
            test_per_age: 20,
            ..SplitPlan::default()
        };
        SyntheticFaces::generate(11, &FaceConfig::default(), &plan).unwrap()
    })
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// For each of the `nx × ny` 4×4 patches whose top-left corner is `(x0, y0)`: the mean of
/// each channel and the mean absolute Laplacian of the grey image (edge energy), plus the
/// squares of all of these and a constant.
fn patch_features(img: &RgbImage, x0: u32, y0: u32, nx: u32, ny: u32) -> Vec<f64> {
    let grey = |x: u32, y: u32| {
        let p = img.get_pixel(x.min(31), y.min(31)).0;
        (f64::from(p[0]) + f64::from(p[1]) + f64::from(p[2])) / 765.0
    };
    let mut lin = Vec::new();
    for by in 0..ny {
        for bx in 0..nx {
            let mut m = [0.0; 4];
            for y in y0 + by * 4..y0 + by * 4 + 4 {
                for x in x0 + bx * 4..x0 + bx * 4 + 4 {
                    let p = img.get_pixel(x, y).0;
                    for c in 0..3 {
                        m[c] += f64::from(p[c]) / 255.0 / 16.0;
                    }
                    let lap = 4.0 * grey(x, y)
                        - grey(x.saturating_sub(1), y)
                        - grey(x + 1, y)
                        - grey(x, y.saturating_sub(1))
                        - grey(x, y + 1);
                    m[3] += lap.abs() / 16.0;
                }
            }
            lin.extend(m);
        }
    }
    let mut out = vec![1.0];
    out.extend(lin.iter().map(|a| a * a));
    out.extend(lin);
    out
}

/// Ridge regression `(XᵀX + λI) w = Xᵀy` (the constant, column 0, unpenalised), solved by
/// Gauss–Jordan elimination with partial pivoting.
fn ridge(x: &[Vec<f64>], y: &[f64], lambda: f64) -> Vec<f64> {
    let d = x[0].len();
    // The augmented normal equations, row i: [(XᵀX + λI)_i | (Xᵀy)_i].
    let mut a: Vec<Vec<f64>> = (0..d)
        .map(|i| {
            let mut row = vec![0.0; d + 1];
            for (xr, &t) in x.iter().zip(y) {
                let xi = xr[i];
                for (r, &xj) in row.iter_mut().zip(xr) {
                    *r += xi * xj;
                }
                row[d] += xi * t;
            }
            if i > 0 {
                row[i] += lambda;
            }
            row
        })
        .collect();
    for c in 0..d {
        let p = (c..d)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap();
        a.swap(c, p);
        let pivot = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let k = row[c] / pivot[c];
                for (v, &pv) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *v -= k * pv;
                }
            }
        }
    }
    a.iter()
        .enumerate()
        .map(|(i, row)| row[d] / row[i])
        .collect()
}

/// Fits on val, returns Pearson's r and the mean absolute error on test.
fn fit_and_score(features: impl Fn(&RgbImage) -> Vec<f64>, lambda: f64) -> (f64, f64) {
    let f = faces();
    let x: Vec<Vec<f64>> = f.val.images.iter().map(&features).collect();
    let w = ridge(&x, &f.val.ages, lambda);
    let pred: Vec<f64> = f
        .test
        .images
        .iter()
        .map(|im| features(im).iter().zip(&w).map(|(a, b)| a * b).sum())
        .collect();
    let mae = pred
        .iter()
        .zip(&f.test.ages)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / pred.len() as f64;
    (pearson(&pred, &f.test.ages), mae)
}

/// |r| between age and each pixel's value (every channel), as `(|r|, x, y)`, on test.
fn pixel_correlations() -> Vec<(f64, u32, u32)> {
    let f = faces();
    (0..32 * 32 * 3)
        .map(|pos| {
            let v: Vec<f64> = f
                .test
                .images
                .iter()
                .map(|im| f64::from(im.as_raw()[pos]))
                .collect();
            let p = (pos / 3) as u32;
            (pearson(&v, &f.test.ages).abs(), p % 32, p / 32)
        })
        .collect()
}

#[test]
fn patch_statistics_predict_age_but_no_single_pixel_does() {
    let r_pixels = pixel_correlations();
    let best = r_pixels
        .iter()
        .copied()
        .fold((0.0, 0, 0), |a, b| if b.0 > a.0 { b } else { a });
    // The inner face, x in 10..22 and y in 13..29: skin, eyes, nose and mouth, inside the hair
    // line in every pose.
    let inner = |&(_, x, y): &(f64, u32, u32)| (10..22).contains(&x) && (13..29).contains(&y);
    let best_inner = r_pixels
        .iter()
        .filter(|p| inner(p))
        .map(|p| p.0)
        .fold(0.0, f64::max);
    let (r_all, mae_all) = fit_and_score(|im| patch_features(im, 0, 0, 8, 8), 0.1);
    let (r_inner, mae_inner) = fit_and_score(|im| patch_features(im, 10, 13, 3, 4), 0.1);
    eprintln!(
        "best pixel |r| = {:.3} at ({}, {}), best inner-face pixel |r| = {best_inner:.3}; \
         ridge on all patches r = {r_all:.3} (MAE {mae_all:.1} y), \
         on the inner face r = {r_inner:.3} (MAE {mae_inner:.1} y)",
        best.0, best.1, best.2
    );
    // Measured with seed 11: best pixel 0.44 (hair at the crown), best inner-face pixel 0.16;
    // ridge r = 0.79 (MAE 14.4 years) on all patches, 0.61 (MAE 18.8 years) on the inner face,
    // against a standard deviation of 29 years of the balanced ages. The data set is
    // deterministic, so the margins guard against changes to the renderer, not against chance.
    assert!(best.0 < 0.5, "a single pixel gives the age away: {best:?}");
    assert!(
        best_inner < 0.2,
        "an inner-face pixel gives the age away: {best_inner}"
    );
    assert!(
        r_all > 0.75,
        "patch statistics of the whole image: r = {r_all}"
    );
    assert!(
        r_inner > 0.55,
        "patch statistics of the inner face: r = {r_inner}"
    );
    assert!(r_inner > best_inner + 0.35 && r_all > best.0 + 0.25);
}

#[test]
fn photo_conditions_and_people_carry_no_age_information() {
    let f = faces();
    for split in [&f.train, &f.test] {
        let ages = &split.ages;
        let id = |g: fn(&dirkit_data::faces::Identity) -> f32| -> Vec<f64> {
            let pick = |&i: &usize| f64::from(g(&f.identities[i]));
            split.identities.iter().map(pick).collect()
        };
        let nz = |g: fn(&dirkit_data::faces::Nuisance) -> f32| -> Vec<f64> {
            split.nuisances.iter().map(|n| f64::from(g(n))).collect()
        };
        let checks: Vec<(&str, Vec<f64>)> = vec![
            (
                "person",
                split.identities.iter().map(|&i| i as f64).collect(),
            ),
            ("face_width", id(|p| p.face_width)),
            ("skin", id(|p| p.skin[0] + p.skin[1] + p.skin[2])),
            ("grey_onset", id(|p| p.grey_onset)),
            ("wrinkle_onset", id(|p| p.wrinkle_onset)),
            ("balding", id(|p| p.balding)),
            ("age_offset", id(|p| p.age_offset)),
            ("rotation", nz(|n| n.rotation)),
            ("shift_x", nz(|n| n.shift[0])),
            ("shift_y", nz(|n| n.shift[1])),
            ("scale", nz(|n| n.scale)),
            ("light_x", nz(|n| n.light_dir[0])),
            ("light_strength", nz(|n| n.light_strength)),
            ("brightness", nz(|n| n.brightness)),
            (
                "background",
                nz(|n| n.background[0][0] + n.background[1][1]),
            ),
            ("glasses", nz(|n| f32::from(u8::from(n.glasses)))),
            ("hat", nz(|n| f32::from(u8::from(n.hat)))),
            ("smile", nz(|n| n.smile)),
            ("age_jitter", nz(|n| n.age_jitter)),
        ];
        // n ≥ 2,020, so the standard error of r is at most 0.022; 0.1 is 4.5 of them.
        for (name, v) in checks {
            let r = pearson(&v, ages);
            assert!(r.abs() < 0.1, "{name} correlates with age: r = {r:.3}");
        }
    }
}

#[test]
fn background_corners_carry_no_age_information() {
    let f = faces();
    for (x, y) in [(0, 0), (31, 0), (0, 20), (31, 20)] {
        for c in 0..3 {
            let v: Vec<f64> = f
                .test
                .images
                .iter()
                .map(|im| f64::from(im.get_pixel(x, y)[c]))
                .collect();
            let r = pearson(&v, &f.test.ages);
            assert!(r.abs() < 0.1, "pixel ({x}, {y}) channel {c}: r = {r:.3}");
        }
    }
}

#[test]
fn apparent_age_error_floor_is_a_few_years() {
    let f = faces();
    let err = |amb: f32| {
        let s = &f.test;
        let total: f64 = (0..s.len())
            .map(|i| {
                let (p, n) = (&f.identities[s.identities[i]], &s.nuisances[i]);
                let spread = age_spread(s.ages[i] as f32);
                f64::from(amb * spread * (0.8 * p.age_offset + 0.6 * n.age_jitter)).abs()
            })
            .sum();
        total / s.len() as f64
    };
    // E|N(0, σ)| = 0.8 σ with σ = 0.5 + 0.05 age, averaged over ages 1–101: 2.44 years.
    let floor = err(1.0);
    eprintln!("mean |apparent - true age| on test: {floor:.2} years");
    assert!((2.2..2.7).contains(&floor), "{floor}");
}
