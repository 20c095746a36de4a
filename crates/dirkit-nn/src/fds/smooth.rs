//! Smoothing per-bin statistics along the bin axis with reflect padding that excludes the edge
//! (`[0..4]` padded by 2 is `2 1 0 1 2 3 4 3 2`), each element independently.

/// Index of padded position `j` (may be negative or past the end) under edge-excluding reflect.
fn reflect(j: isize, n: usize) -> usize {
    let last = n as isize - 1;
    let r = if j < 0 {
        -j
    } else if j > last {
        2 * last - j
    } else {
        j
    };
    r as usize
}

/// `out_b = Σ_k w_k · rows_{reflect(b + k − h)}` for rows of equal length; `window` has odd
/// length `2h + 1` and `rows.len() > h`.
pub fn smooth_rows<R: AsRef<[f64]>>(rows: &[R], window: &[f64]) -> Vec<Vec<f64>> {
    let n = rows.len();
    let h = window.len() / 2;
    (0..n)
        .map(|b| {
            let mut acc = vec![0.0; rows[b].as_ref().len()];
            for (k, &w) in window.iter().enumerate() {
                let src = rows[reflect(b as isize + k as isize - h as isize, n)].as_ref();
                for (a, x) in acc.iter_mut().zip(src) {
                    *a += w * x;
                }
            }
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_excludes_the_edge() {
        let idx: Vec<usize> = (-2..7).map(|j| reflect(j, 5)).collect();
        assert_eq!(idx, vec![2, 1, 0, 1, 2, 3, 4, 3, 2]);
    }

    #[test]
    fn a_constant_is_preserved_by_a_sum_normalised_window() {
        let rows = vec![vec![3.0, -1.0]; 6];
        let out = smooth_rows(&rows, &[0.25, 0.5, 0.25]);
        for r in out {
            assert_eq!(r, vec![3.0, -1.0]);
        }
    }
}
