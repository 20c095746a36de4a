//! Per-bin calibration transforms computed once per epoch from the running and smoothed
//! statistics: diagonal scales, or full matrices Σ̃^{1/2} Σ^{-1/2} via symmetric
//! eigendecompositions (nalgebra, f64).

use nalgebra::{DMatrix, SymmetricEigen};

use super::config::{FullCovariance, ShrinkTarget};

/// Diagonal calibration of one bin: `z' = (z − shift)·scale + target`, per dimension; a
/// dimension (or bin) that passes unchanged has shift 0, scale 1, target 0.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagonalMap {
    /// μ_b, or 0 where the dimension passes unchanged.
    pub shift: Vec<f64>,
    /// sqrt(clip(σ̃²/σ²)), or 1.
    pub scale: Vec<f64>,
    /// μ̃_b, or 0.
    pub target: Vec<f64>,
}

impl DiagonalMap {
    /// The identity map for `dim` features.
    pub fn identity(dim: usize) -> Self {
        Self {
            shift: vec![0.0; dim],
            scale: vec![1.0; dim],
            target: vec![0.0; dim],
        }
    }

    /// The reference's diagonal calibration; dimensions with zero variance pass unchanged.
    pub fn new(mean: &[f64], var: &[f64], s_mean: &[f64], s_var: &[f64], clip: (f64, f64)) -> Self {
        let mut m = Self::identity(mean.len());
        for d in 0..mean.len() {
            if var[d] > 0.0 {
                m.shift[d] = mean[d];
                m.scale[d] = (s_var[d] / var[d]).clamp(clip.0, clip.1).sqrt();
                m.target[d] = s_mean[d];
            }
        }
        m
    }
}

/// `V diag(f(max(λ, floor))) Vᵀ` of a symmetric matrix, the floor being `eps · mean eigenvalue`.
/// `None` when the mean eigenvalue is not positive (an all-zero covariance).
fn sym_power(m: &DMatrix<f64>, eps: f64, f: impl Fn(f64) -> f64) -> Option<DMatrix<f64>> {
    let eig = SymmetricEigen::new(m.clone());
    let mean = eig.eigenvalues.iter().sum::<f64>() / eig.eigenvalues.len() as f64;
    // Not positive, or NaN: nothing to whiten.
    if mean.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let floor = eps * mean;
    let d = eig.eigenvalues.map(|l| f(l.max(floor)));
    let v = &eig.eigenvectors;
    Some(v * DMatrix::from_diagonal(&d) * v.transpose())
}

fn shrink(m: &DMatrix<f64>, cfg: &FullCovariance) -> DMatrix<f64> {
    if cfg.shrinkage == 0.0 {
        return m.clone();
    }
    let n = m.nrows();
    let target = match cfg.target {
        ShrinkTarget::Diagonal => DMatrix::from_diagonal(&m.diagonal()),
        ShrinkTarget::ScaledIdentity => DMatrix::identity(n, n) * (m.trace() / n as f64),
    };
    m * (1.0 - cfg.shrinkage) + target * cfg.shrinkage
}

/// The full-covariance transform `A = Σ̃^{1/2} Σ^{-1/2}` of one bin (row-major D×D inputs);
/// `None` when the bin passes unchanged (its covariance is all zero).
pub fn full_transform(
    cov: &[f64],
    s_cov: &[f64],
    dim: usize,
    cfg: &FullCovariance,
    clip: (f64, f64),
) -> Option<DMatrix<f64>> {
    // Row-major symmetric matrices read the same column-major.
    let sigma = shrink(&DMatrix::from_column_slice(dim, dim, cov), cfg);
    let s_sigma = shrink(&DMatrix::from_column_slice(dim, dim, s_cov), cfg);
    let inv_sqrt = sym_power(&sigma, cfg.eig_floor, |l| 1.0 / l.sqrt())?;
    let sqrt = sym_power(&s_sigma, cfg.eig_floor, f64::sqrt)?;
    let a = sqrt * inv_sqrt;
    if !cfg.clip_transform {
        return Some(a);
    }
    let (lo, hi) = (clip.0.sqrt(), clip.1.sqrt());
    let svd = a.svd(true, true);
    let (Some(u), Some(vt)) = (svd.u, svd.v_t) else {
        return None;
    };
    let s = svd.singular_values.map(|x| x.clamp(lo, hi));
    Some(u * DMatrix::from_diagonal(&s) * vt)
}
