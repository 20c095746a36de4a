//! Per-bin calibration transforms computed once per epoch from the running and smoothed
//! statistics: diagonal scales, or full matrices Σ̃^{1/2} Σ^{-1/2} via symmetric
//! eigendecompositions (faer's divide-and-conquer solver, f64).

use candle_core::WithDType;
use faer::{Mat, MatRef, Side};

use super::config::{FullCovariance, ShrinkTarget};

/// Diagonal calibration of one bin, `z' = (z − shift)·scale + target` per dimension, written
/// into the bin's rows of the three maps (which start as the identity: shift 0, scale 1,
/// target 0). Dimensions with zero variance pass unchanged.
pub struct DiagonalRows<'a, T> {
    /// μ_b, or 0 where the dimension passes unchanged.
    pub shift: &'a mut [T],
    /// sqrt(clip(σ̃²/σ²)), or 1.
    pub scale: &'a mut [T],
    /// μ̃_b, or 0.
    pub target: &'a mut [T],
}

impl<T: WithDType> DiagonalRows<'_, T> {
    /// The reference's diagonal calibration from the running (`mean`, `var`) and smoothed
    /// (`s_mean`, `s_var`) statistics of one bin.
    pub fn fill(
        &mut self,
        mean: &[f64],
        var: &[f64],
        s_mean: &[f64],
        s_var: &[f64],
        clip: (f64, f64),
    ) {
        for d in 0..mean.len() {
            if var[d] > 0.0 {
                self.shift[d] = T::from_f64(mean[d]);
                self.scale[d] = T::from_f64((s_var[d] / var[d]).clamp(clip.0, clip.1).sqrt());
                self.target[d] = T::from_f64(s_mean[d]);
            }
        }
    }
}

/// `V diag(f(max(λ, floor))) Vᵀ` of a symmetric matrix, the floor being `eps · mean eigenvalue`.
/// `None` when the mean eigenvalue is not positive (an all-zero covariance) or the
/// eigensolver does not converge.
fn sym_power(m: MatRef<'_, f64>, eps: f64, f: impl Fn(f64) -> f64) -> Option<Mat<f64>> {
    let eig = m.self_adjoint_eigen(Side::Lower).ok()?;
    let lambda = eig.S().column_vector();
    let n = lambda.nrows();
    let mean = (0..n).map(|i| lambda[i]).sum::<f64>() / n as f64;
    // Not positive, or NaN: nothing to whiten.
    if mean.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let floor = eps * mean;
    let v = eig.U();
    let scaled = Mat::from_fn(n, n, |i, j| v[(i, j)] * f(lambda[j].max(floor)));
    Some(scaled * v.transpose())
}

fn shrink(cov: &[f64], dim: usize, cfg: &FullCovariance) -> Mat<f64> {
    let a = cfg.shrinkage;
    let trace_mean = (0..dim).map(|i| cov[i * dim + i]).sum::<f64>() / dim as f64;
    Mat::from_fn(dim, dim, |i, j| {
        let c = cov[i * dim + j];
        if a == 0.0 {
            return c;
        }
        let target = match (cfg.target, i == j) {
            (_, false) => 0.0,
            (ShrinkTarget::Diagonal, true) => c,
            (ShrinkTarget::ScaledIdentity, true) => trace_mean,
        };
        (1.0 - a) * c + a * target
    })
}

/// Clips the singular values of `a` to `[lo, hi]`: `A V diag(clip(s)/s) Vᵀ` with `V` the
/// eigenvectors of `AᵀA` (the right singular vectors) and `s_i = ‖A v_i‖`, which equals
/// `U clip(S) Vᵀ` of the SVD for a third of its cost. Directions with `s_i = 0` are dropped.
fn clip_singular_values(a: Mat<f64>, lo: f64, hi: f64) -> Option<Mat<f64>> {
    let n = a.nrows();
    let gram = a.transpose() * &a;
    let eig = gram.self_adjoint_eigen(Side::Lower).ok()?;
    let v = eig.U();
    let av = &a * v;
    let factor: Vec<f64> = (0..n)
        .map(|j| {
            let s = (0..n).map(|i| av[(i, j)] * av[(i, j)]).sum::<f64>().sqrt();
            if s > 0.0 { s.clamp(lo, hi) / s } else { 0.0 }
        })
        .collect();
    if factor.iter().all(|&f| f == 1.0) {
        return Some(a);
    }
    let scaled = Mat::from_fn(n, n, |i, j| av[(i, j)] * factor[j]);
    Some(scaled * v.transpose())
}

/// The full-covariance transform `A = Σ̃^{1/2} Σ^{-1/2}` of one bin from row-major D×D
/// covariances, returned row-major as `Aᵀ` (calibration computes `(z − μ)·Aᵀ` on row
/// vectors); `None` when the bin passes unchanged (its covariance is all zero).
pub fn full_transform(
    cov: &[f64],
    s_cov: &[f64],
    dim: usize,
    cfg: &FullCovariance,
    clip: (f64, f64),
) -> Option<Vec<f64>> {
    let sigma = shrink(cov, dim, cfg);
    let s_sigma = shrink(s_cov, dim, cfg);
    let inv_sqrt = sym_power(sigma.as_ref(), cfg.eig_floor, |l| 1.0 / l.sqrt())?;
    let sqrt = sym_power(s_sigma.as_ref(), cfg.eig_floor, f64::sqrt)?;
    let mut a = sqrt * inv_sqrt;
    if cfg.clip_transform {
        a = clip_singular_values(a, clip.0.sqrt(), clip.1.sqrt())?;
    }
    let mut out = vec![0.0; dim * dim];
    for (i, row) in out.chunks_exact_mut(dim).enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            *o = a[(j, i)];
        }
    }
    // faer's kernels leave the wide vector registers dirty, which slows the SSE code after them.
    dirkit_compute::ops::clear_upper_vector_state();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dirkit_core::rng::SplitMix64;

    /// A square matrix with singular values spread over `[0.01, 30]`.
    fn spread(n: usize, seed: u64) -> Mat<f64> {
        let mut rng = SplitMix64::new(seed);
        let mut m = Mat::from_fn(n, n, |_, _| rng.uniform() - 0.5);
        for j in 0..n {
            let scale = 0.01 * 3000f64.powf(j as f64 / n.saturating_sub(1).max(1) as f64);
            for i in 0..n {
                m[(i, j)] *= scale;
            }
        }
        m
    }

    fn max_abs_diff(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
        let mut worst = 0.0f64;
        for i in 0..a.nrows() {
            for j in 0..a.ncols() {
                worst = worst.max((a[(i, j)] - b[(i, j)]).abs());
            }
        }
        worst
    }

    #[test]
    fn singular_value_clip_equals_the_svd_formula() {
        let (lo, hi) = (0.1f64.sqrt(), 10f64.sqrt());
        for (n, seed) in [(1, 1), (2, 2), (7, 3), (40, 4)] {
            let a = spread(n, seed);
            let svd = a.svd().expect("svd");
            let s = svd.S().column_vector();
            let clipped_s = Mat::from_fn(n, n, |i, j| svd.U()[(i, j)] * s[j].clamp(lo, hi));
            let expected = clipped_s * svd.V().transpose();
            let got = clip_singular_values(a.clone(), lo, hi).expect("clip");
            // Squaring A (condition 3000) costs digits, but stays far below the f32 precision
            // the transform is applied in: 1e-8 relative to the largest singular value.
            let err = max_abs_diff(&got, &expected);
            assert!(err < 1e-8 * s[0], "n = {n}: max |Δ| = {err:e}");
            // The clipped matrix's singular values lie in [lo, hi].
            let sv = got.svd().expect("svd").S().column_vector().to_owned();
            for i in 0..n {
                let tol = 1e-8 * s[0];
                assert!(sv[i] > lo - tol && sv[i] < hi + tol, "σ = {}", sv[i]);
            }
        }
    }

    #[test]
    fn clip_inside_the_range_returns_the_matrix_unchanged() {
        let n = 5;
        let a = Mat::from_fn(
            n,
            n,
            |i, j| if i == j { 1.0 + 0.1 * i as f64 } else { 0.01 },
        );
        let got = clip_singular_values(a.clone(), 0.5, 2.0).expect("clip");
        assert_eq!(max_abs_diff(&got, &a), 0.0);
    }

    #[test]
    fn symmetric_power_inverts_the_square_root() {
        let n = 30;
        let x = spread(n, 9);
        let m = &x * x.transpose();
        let sqrt = sym_power(m.as_ref(), 0.0, f64::sqrt).expect("sqrt");
        let inv_sqrt = sym_power(m.as_ref(), 0.0, |l| 1.0 / l.sqrt()).expect("inv sqrt");
        let err = max_abs_diff(&(&sqrt * &sqrt), &m);
        assert!(err < 1e-8 * 900.0, "sqrt² − M: {err:e}");
        let eye = Mat::<f64>::identity(n, n);
        let err = max_abs_diff(&(&sqrt * &inv_sqrt), &eye);
        assert!(err < 1e-8, "sqrt · inv_sqrt − I: {err:e}");
    }
}
