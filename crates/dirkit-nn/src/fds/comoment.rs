//! The co-moment kernels behind [`super::stats`]: a bin's part `XᵀX` from candle's GEMM
//! (upper-triangle blocks only), merged into the bin's D × D matrix in one exactly symmetric
//! pass, on several threads; and the per-bin grouping of a batch's rows.

use std::sync::{Mutex, PoisonError};

use candle_core::{CpuStorage, Storage, Tensor};
use dirkit_compute::ops::matmul;
use dirkit_compute::ops::pool::on_this_thread;

/// Column block of the co-moment GEMMs: only blocks on or above the diagonal are computed.
pub(super) const GEMM_BLOCK: usize = 128;

/// The co-moment of a part being merged, as upper-triangle blocks.
pub(super) enum PartComoment<'a> {
    /// A row-major D × D symmetric matrix.
    Matrix(&'a [f64]),
    /// The centred rows, split into column blocks of [`GEMM_BLOCK`] (each row-major
    /// `rows × width`): block (I, J) of the co-moment is `X_Iᵀ X_J`.
    Rows(&'a [Tensor]),
}

/// The values of a contiguous f64 CPU tensor.
fn with_f64<R>(t: &Tensor, f: impl FnOnce(&[f64]) -> R) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F64(v)), Some((lo, hi))) => Ok(f(&v[lo..hi])),
        _ => candle_core::bail!("expected a contiguous f64 CPU tensor"),
    }
}

/// `C ← C + T + f·δδᵀ` (or `C ← T` without `rank1`, for a bin's first part) for a row-major
/// symmetric D × D `c` (every `BinMoments` co-moment is) and a part's symmetric co-moment `T`:
/// every element is `(c_ij + t_ij) + (f·δ_i)·δ_j` with `i <= j`, so that `c_ji`, computed from
/// the same operands (`c` is symmetric on entry), is bit for bit `c_ij`: the result is exactly
/// symmetric without a transposing copy of `c`. `T` comes in blocks of [`GEMM_BLOCK`] (only
/// those on or above the diagonal; from the GEMMs first, on `threads` threads); then each
/// thread updates whole rows of `c`, block by block.
pub(super) fn comoment_update(
    c: &mut [f64],
    part: PartComoment<'_>,
    rank1: Option<(&[f64], f64)>,
    threads: usize,
) -> candle_core::Result<()> {
    let dim = c.len().isqrt();
    let rank1 = rank1.map(|(delta, f)| (delta, delta.iter().map(|d| f * d).collect::<Vec<_>>()));
    let rank1 = rank1.as_ref().map(|(d, fd)| (*d, fd.as_slice()));
    let nb = dim.div_ceil(GEMM_BLOCK);
    if threads <= 1 {
        // One thread: each block of T updates its rows and its mirror while in cache.
        let range = |b: usize| (b * GEMM_BLOCK, ((b + 1) * GEMM_BLOCK).min(dim));
        let mut scratch = Vec::new();
        for i in 0..nb {
            for j in i..nb {
                let (ri, rj) = (range(i), range(j));
                let mut pair = |t: (&[f64], usize), mirror: (&[f64], usize)| {
                    let upper = &mut c[ri.0 * dim..ri.1 * dim];
                    update_rows(upper, dim, ri, rj, t, false, rank1);
                    let lower = &mut c[rj.0 * dim..rj.1 * dim];
                    update_rows(lower, dim, rj, ri, mirror, true, rank1);
                };
                match &part {
                    PartComoment::Matrix(t) => pair(
                        (&t[ri.0 * dim + rj.0..], dim),
                        (&t[rj.0 * dim + ri.0..], dim),
                    ),
                    PartComoment::Rows(blocks) => {
                        let t = matmul(&blocks[i].t()?, &blocks[j])?;
                        let (height, width) = (ri.1 - ri.0, rj.1 - rj.0);
                        with_f64(&t, |t| {
                            transpose_into(t, height, width, &mut scratch);
                            pair((t, width), (&scratch, height));
                        })?;
                    }
                }
            }
        }
        return Ok(());
    }
    // Blocks (I, J), I <= J, of T from the GEMMs, at index I·nb + J.
    let gemm: Vec<Option<Tensor>> = match &part {
        PartComoment::Matrix(_) => Vec::new(),
        PartComoment::Rows(blocks) => {
            let slots: Vec<Mutex<Option<candle_core::Result<Tensor>>>> =
                (0..nb * nb).map(|_| Mutex::new(None)).collect();
            let pairs: Vec<(usize, usize)> =
                (0..nb).flat_map(|i| (i..nb).map(move |j| (i, j))).collect();
            parallel_for(
                pairs,
                threads,
                |_| 1,
                |(i, j)| {
                    let t = blocks[i].t().and_then(|x| matmul(&x, &blocks[j]));
                    *slots[i * nb + j]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(t);
                },
            );
            slots
                .into_iter()
                .map(|m| {
                    m.into_inner()
                        .unwrap_or_else(PoisonError::into_inner)
                        .transpose()
                })
                .collect::<candle_core::Result<_>>()?
        }
    };
    let failure = Mutex::new(None);
    let block_rows: Vec<(usize, &mut [f64])> = c.chunks_mut(GEMM_BLOCK * dim).enumerate().collect();
    parallel_for(
        block_rows,
        threads,
        |_| 1,
        |(r, rows)| {
            if let Err(e) = update_block_row(rows, r, dim, &part, &gemm, rank1) {
                *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            }
        },
    );
    match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Block-row `r` of [`comoment_update`] (`rows`: its rows of `c`), block by block: blocks on
/// and right of the diagonal from the blocks of `T`, those left of it from their mirrors.
fn update_block_row(
    rows: &mut [f64],
    r: usize,
    dim: usize,
    part: &PartComoment<'_>,
    gemm: &[Option<Tensor>],
    rank1: Option<(&[f64], &[f64])>,
) -> candle_core::Result<()> {
    let nb = dim.div_ceil(GEMM_BLOCK);
    let range = |b: usize| (b * GEMM_BLOCK, ((b + 1) * GEMM_BLOCK).min(dim));
    let rows_r = range(r);
    let mut scratch = Vec::new();
    for b in 0..nb {
        let cols = range(b);
        match part {
            // Symmetric: rows r of T are read directly, on either side of the diagonal.
            PartComoment::Matrix(t) => {
                let t = (&t[rows_r.0 * dim + cols.0..], dim);
                if b <= r {
                    update_rows(rows, dim, rows_r, cols, t, true, rank1);
                }
                if b >= r {
                    update_rows(rows, dim, rows_r, cols, t, false, rank1);
                }
            }
            PartComoment::Rows(_) => {
                let (i, j) = (r.min(b), r.max(b));
                let block = gemm[i * nb + j].as_ref().expect("computed above");
                let (height, width) = (range(i).1 - range(i).0, range(j).1 - range(j).0);
                with_f64(block, |t| {
                    if b >= r {
                        update_rows(rows, dim, rows_r, cols, (t, width), false, rank1);
                    }
                    if b <= r {
                        // Block (b, r) read transposed: transpose it in cache once.
                        transpose_into(t, height, width, &mut scratch);
                        update_rows(rows, dim, rows_r, cols, (&scratch, height), true, rank1);
                    }
                })?;
            }
        }
    }
    Ok(())
}

/// Rows `r0..r1` of `c` (given as `rows`, the block-row starting at row `r0`), columns
/// `j0..j1`, from `t` (values of `T` for these rows and columns: origin and row stride).
/// `lower`: the elements left of the diagonal (`j < r`), taken as mirrors of `c_jr` (the rank-1
/// term as `(f·δ_j)·δ_r`); else those on and right of it (`j >= r`), `(f·δ_r)·δ_j`.
fn update_rows(
    rows: &mut [f64],
    dim: usize,
    (r0, r1): (usize, usize),
    (j0, j1): (usize, usize),
    (t, ts): (&[f64], usize),
    lower: bool,
    rank1: Option<(&[f64], &[f64])>,
) {
    for r in r0..r1 {
        // The columns of this row on the chosen side of the diagonal.
        let (lo, hi) = if lower {
            (j0, j1.min(r))
        } else {
            (j0.max(r), j1)
        };
        if lo >= hi {
            continue;
        }
        let row = &mut rows[(r - r0) * dim + lo..(r - r0) * dim + hi];
        let trow = &t[(r - r0) * ts + (lo - j0)..(r - r0) * ts + (hi - j0)];
        match rank1 {
            None => row.copy_from_slice(trow),
            Some((delta, fdelta)) if lower => {
                let dr = delta[r];
                for ((x, &tv), &fj) in row.iter_mut().zip(trow).zip(&fdelta[lo..hi]) {
                    *x = (*x + tv) + fj * dr;
                }
            }
            Some((delta, fdelta)) => {
                let fr = fdelta[r];
                for ((x, &tv), &dj) in row.iter_mut().zip(trow).zip(&delta[lo..hi]) {
                    *x = (*x + tv) + fr * dj;
                }
            }
        }
    }
}

/// `out` ← the transpose of the row-major `rows × cols` matrix `t` (`cols × rows`), by tiles.
fn transpose_into(t: &[f64], rows: usize, cols: usize, out: &mut Vec<f64>) {
    const T: usize = 8;
    out.clear();
    out.resize(rows * cols, 0.0);
    for r0 in (0..rows).step_by(T) {
        for c0 in (0..cols).step_by(T) {
            for r in r0..(r0 + T).min(rows) {
                for c in c0..(c0 + T).min(cols) {
                    out[c * rows + r] = t[r * cols + c];
                }
            }
        }
    }
}

/// Rows grouped by bin with a counting sort: bin `b`'s rows, ascending, are
/// `order[starts[b]..starts[b + 1]]`.
pub(super) struct Groups {
    order: Vec<usize>,
    starts: Vec<usize>,
}

impl Groups {
    pub(crate) fn new(bins: &[usize], n_bins: usize) -> Self {
        let mut starts = vec![0usize; n_bins + 1];
        for &b in bins {
            starts[b + 1] += 1;
        }
        for b in 0..n_bins {
            starts[b + 1] += starts[b];
        }
        let mut next = starts.clone();
        let mut order = vec![0; bins.len()];
        for (r, &b) in bins.iter().enumerate() {
            order[next[b]] = r;
            next[b] += 1;
        }
        Self { order, starts }
    }

    pub(crate) fn rows(&self, b: usize) -> &[usize] {
        &self.order[self.starts[b]..self.starts[b + 1]]
    }
}

/// Runs `f` on every item on up to `threads` scoped threads, each taking a contiguous run of
/// items of about equal total `weight`; inline for one thread. The kernels `f` calls stay on
/// its thread (the threads here already share the work).
pub(super) fn parallel_for<T: Send>(
    items: Vec<T>,
    threads: usize,
    weight: impl Fn(&T) -> usize,
    f: impl Fn(T) + Sync,
) {
    let total: usize = items.iter().map(&weight).sum();
    if threads <= 1 || items.len() <= 1 {
        items.into_iter().for_each(f);
        return;
    }
    let share = total.div_ceil(threads).max(1);
    let mut runs: Vec<Vec<T>> = vec![Vec::new()];
    let mut acc = 0;
    for item in items {
        let w = weight(&item);
        if acc >= share && runs.len() < threads {
            runs.push(Vec::new());
            acc = 0;
        }
        acc += w;
        runs.last_mut().expect("one run").push(item);
    }
    let f = &f;
    std::thread::scope(|s| {
        let mut runs = runs.into_iter();
        let first = runs.next();
        for run in runs {
            s.spawn(move || on_this_thread(|| run.into_iter().for_each(f)));
        }
        on_this_thread(|| first.into_iter().flatten().for_each(f));
    });
}
