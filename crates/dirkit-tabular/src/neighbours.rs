//! Exact k nearest neighbours and median distances inside one bump, by blocked GEMM:
//! ‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b over row blocks, each block on its own thread.

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// For every row of a bump: its `k` nearest other rows (ascending distance, ties by index)
/// and, when asked, half the median of its distances to a reference set of rows.
pub(crate) struct Neighbourhood {
    /// Neighbours per row.
    pub k: usize,
    /// `m × k` row indices.
    pub index: Vec<u32>,
    /// `m × k` distances.
    pub distance: Vec<f64>,
    /// Half the median distance to the reference rows, per row (SMOGN's safe radius).
    pub half_median: Vec<f64>,
}

/// Rows and columns of one distance tile: 128 × 4096 f64 (4 MB) stays in cache while it is
/// scanned.
const TILE_ROWS: usize = 128;
const TILE_COLS: usize = 4096;

/// Neighbours of the `m` rows of `x` (row-major, `d` columns). `references`, when given, are the
/// rows the median distance is taken over, ascending (a row's distance to itself, 0, counts
/// when the row is among them).
pub(crate) fn neighbours(
    x: &[f64],
    m: usize,
    d: usize,
    k: usize,
    references: Option<&[usize]>,
) -> Neighbourhood {
    debug_assert_eq!(x.len(), m * d);
    let k = k.min(m.saturating_sub(1));
    // Without columns every row sits at the origin (all distances 0).
    let norms: Vec<f64> = if d == 0 {
        vec![0.0; m]
    } else {
        x.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect()
    };
    let all = MatRef::from_row_major_slice(x, m, d);
    let refs = references.unwrap_or(&[]);
    let nr = refs.len();
    let blocks: Vec<usize> = (0..m).step_by(TILE_ROWS).collect();
    let results: Vec<(Vec<u32>, Vec<f64>, Vec<f64>)> = blocks
        .par_iter()
        .map(|&r0| {
            let b = (r0 + TILE_ROWS).min(m) - r0;
            let mut tile = vec![0.0f64; b * TILE_COLS];
            // Squared distances: the k best per row, and those to the reference rows.
            let mut best = vec![f64::INFINITY; b * k];
            let mut idx = vec![0u32; b * k];
            let mut ref_sq = vec![0.0f64; b * nr];
            let lhs = MatRef::from_row_major_slice(&x[r0 * d..(r0 + b) * d], b, d);
            for c0 in (0..m).step_by(TILE_COLS) {
                let w = (c0 + TILE_COLS).min(m) - c0;
                let g = &mut tile[..b * w];
                if d > 0 {
                    let dst = MatMut::from_row_major_slice_mut(g, b, w);
                    let rhs = all.subrows(c0, w).transpose();
                    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0, Par::Seq);
                } else {
                    g.fill(0.0);
                }
                let (ref_lo, ref_hi) = (
                    refs.partition_point(|&j| j < c0),
                    refs.partition_point(|&j| j < c0 + w),
                );
                for r in 0..b {
                    let i = r0 + r;
                    let ni = norms[i];
                    let row = &g[r * w..(r + 1) * w];
                    if k > 0 {
                        let (bd, bi) =
                            (&mut best[r * k..(r + 1) * k], &mut idx[r * k..(r + 1) * k]);
                        let mut worst = bd[k - 1];
                        for (jj, (&gv, &nj)) in row.iter().zip(&norms[c0..c0 + w]).enumerate() {
                            let sq = ni + nj - 2.0 * gv;
                            if sq < worst && c0 + jj != i {
                                // Insert keeping (distance, index) order: later columns lose ties.
                                let mut pos = k - 1;
                                while pos > 0 && bd[pos - 1] > sq {
                                    bd[pos] = bd[pos - 1];
                                    bi[pos] = bi[pos - 1];
                                    pos -= 1;
                                }
                                bd[pos] = sq;
                                bi[pos] = (c0 + jj) as u32;
                                worst = bd[k - 1];
                            }
                        }
                    }
                    for (t, &j) in refs[ref_lo..ref_hi].iter().enumerate() {
                        ref_sq[r * nr + ref_lo + t] = if j == i {
                            0.0
                        } else {
                            (ni + norms[j] - 2.0 * row[j - c0]).max(0.0)
                        };
                    }
                }
            }
            let dist: Vec<f64> = best.iter().map(|&v| v.max(0.0).sqrt()).collect();
            let med: Vec<f64> = if nr > 0 {
                ref_sq
                    .chunks_mut(nr)
                    .map(|v| 0.5 * median_of_sqrt(v))
                    .collect()
            } else {
                Vec::new()
            };
            (idx, dist, med)
        })
        .collect();
    let mut index = Vec::with_capacity(m * k);
    let mut distance = Vec::with_capacity(m * k);
    let mut half_median = Vec::with_capacity(if nr > 0 { m } else { 0 });
    for (idx, dist, med) in results {
        index.extend(idx);
        distance.extend(dist);
        half_median.extend(med);
    }
    Neighbourhood {
        k,
        index,
        distance,
        half_median,
    }
}

/// Median of the square roots of `v` (squared distances): selection on the squares, roots of
/// the middle ones (the root is monotone).
fn median_of_sqrt(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let (lower, hi, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = hi.sqrt();
    if n % 2 == 1 {
        return hi;
    }
    let lo = lower
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .sqrt();
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dirkit_core::SplitMix64;

    #[test]
    fn gemm_neighbours_equal_brute_force() {
        let mut rng = SplitMix64::new(11);
        for (m, d, k) in [
            (2usize, 1usize, 5usize),
            (7, 3, 2),
            (300, 4, 5),
            (4500, 6, 7),
        ] {
            let x: Vec<f64> = (0..m * d)
                .map(|_| (rng.uniform() * 20.0).round() / 20.0)
                .collect();
            let refs: Vec<usize> = (0..m).collect();
            let nb = neighbours(&x, m, d, k, Some(&refs));
            let kk = k.min(m - 1);
            // Every row of the small cases; a sample of the one that spans two column tiles.
            for i in (0..m).step_by(if m > 1000 { 37 } else { 1 }) {
                let mut all: Vec<(f64, usize)> = (0..m)
                    .map(|j| {
                        let s: f64 = (0..d).map(|c| (x[i * d + c] - x[j * d + c]).powi(2)).sum();
                        (s.sqrt(), j)
                    })
                    .collect();
                let mut meds: Vec<f64> = all.iter().map(|p| p.0).collect();
                meds.sort_by(f64::total_cmp);
                let want_med = 0.5
                    * if m % 2 == 1 {
                        meds[m / 2]
                    } else {
                        0.5 * (meds[m / 2 - 1] + meds[m / 2])
                    };
                assert!(
                    (nb.half_median[i] - want_med).abs() < 1e-9,
                    "median row {i}"
                );
                all.retain(|p| p.1 != i);
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                for (r, want) in all.iter().take(kk).enumerate() {
                    let got = nb.distance[i * kk + r];
                    assert!((got - want.0).abs() < 1e-9, "m {m} row {i} rank {r}");
                    // Equal distances may swap indices only among exact ties.
                    let j = nb.index[i * kk + r] as usize;
                    let dj: f64 = (0..d).map(|c| (x[i * d + c] - x[j * d + c]).powi(2)).sum();
                    assert!((dj.sqrt() - want.0).abs() < 1e-9);
                }
            }
        }
    }
}
