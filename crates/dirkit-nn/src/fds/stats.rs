//! Mergeable per-bin feature statistics: count, mean, sum of squared deviations (M2) and, for
//! full covariance, the co-moment matrix. Two partial statistics merged with Chan et al.'s
//! parallel update equal the statistics of the union, so several passes, threads or workers can
//! contribute. Kept in f64: raw Σz and Σz² cancel badly in f32, and centring makes a constant
//! feature give exactly zero variance.
//!
//! Speed (the co-moments are K × D² f64: 3.1 GiB at AgeDB scale, 97 bins × 2048²): rows are
//! grouped per bin by a counting sort and read as f32 or f64 in place; each bin's part is
//! centred on its first row; its co-moment `XᵀX` comes from candle's GEMM, upper-triangle blocks
//! only, and is merged in one pass over the bin's matrix, `C ← (C + C_part) + (f·δ)δᵀ`, each
//! element and its mirror computed from the same operands so that `C` stays exactly symmetric.
//! Bins are processed on `RAYON_NUM_THREADS` threads. [`Accumulator`] (what `Fds` uses) also lets
//! rows wait per bin in full-covariance mode, so that one GEMM of up to [`FLUSH_ROWS`] rows
//! replaces a pass over the bin's D × D matrix per batch (the pass costs more than the GEMM of a
//! batch's few rows); reading the statistics folds the waiting rows in first.

use std::sync::{Mutex, PoisonError};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::comoment::{GEMM_BLOCK, Groups, PartComoment, comoment_update, parallel_for};

/// Rows a bin keeps waiting before their co-moment is folded in (full covariance, `Fds`).
pub(crate) const FLUSH_ROWS: usize = 256;
/// Below this many feature values a batch (diagonal statistics) is processed on the calling
/// thread: a 256 × 2048 batch is ~0.7 ms of work, worth two threads on an idle machine.
const PARALLEL_MIN: usize = 1 << 18;

/// Statistics of the features of one bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinMoments {
    /// Number of samples.
    pub count: u64,
    /// Per-dimension mean (length D).
    pub mean: Vec<f64>,
    /// Per-dimension sum of squared deviations from the mean (length D).
    pub m2: Vec<f64>,
    /// Co-moment matrix Σ (z − μ)(z − μ)ᵀ, row-major D×D; empty unless full covariance is tracked.
    pub comoment: Vec<f64>,
}

impl BinMoments {
    /// No samples yet, for `dim` features; `full` also tracks the co-moment matrix.
    pub fn empty(dim: usize, full: bool) -> Self {
        Self {
            count: 0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
            comoment: if full {
                vec![0.0; dim * dim]
            } else {
                Vec::new()
            },
        }
    }

    /// Statistics of the rows `rows` of a row-major `features` matrix with `dim` columns,
    /// computed around the first row so that identical rows give exactly zero spread.
    pub fn from_rows(features: &[f64], dim: usize, rows: &[usize], full: bool) -> Self {
        let mut s = Self::empty(dim, full);
        s.add_rows(
            rows.len(),
            |k| &features[rows[k] * dim..(rows[k] + 1) * dim],
            dirkit_compute::ops::pool::threads(),
        )
        .expect("a CPU f64 matmul of consistent shapes");
        s
    }

    pub(super) fn dim(&self) -> usize {
        self.mean.len()
    }

    pub(super) fn is_full(&self) -> bool {
        !self.comoment.is_empty()
    }

    /// Adds `n` rows (`row(k)`, each of length D) as one part: its moments centred on its first
    /// row, then the Chan update (the co-moment's on `threads` threads).
    pub(super) fn add_rows<'a, T: Copy + Into<f64> + 'a>(
        &mut self,
        n: usize,
        row: impl Fn(usize) -> &'a [T],
        threads: usize,
    ) -> candle_core::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let dim = self.dim();
        let mut mean = vec![0.0; dim];
        let mut m2 = vec![0.0; dim];
        let pivot = row(0);
        for k in 0..n {
            for ((s, &z), &p) in mean.iter_mut().zip(row(k)).zip(pivot) {
                *s += z.into() - p.into();
            }
        }
        for (s, &p) in mean.iter_mut().zip(pivot) {
            *s = p.into() + *s / n as f64;
        }
        if !self.is_full() {
            for k in 0..n {
                for ((q, &z), &mu) in m2.iter_mut().zip(row(k)).zip(&mean) {
                    let c = z.into() - mu;
                    *q += c * c;
                }
            }
            self.merge_part(n as u64, &mean, &m2, None, threads)?;
            return Ok(());
        }
        // Centred rows, in column blocks for the GEMMs.
        let mut blocks = Vec::with_capacity(dim.div_ceil(GEMM_BLOCK));
        for lo in (0..dim).step_by(GEMM_BLOCK) {
            let hi = (lo + GEMM_BLOCK).min(dim);
            let mut x = Vec::with_capacity(n * (hi - lo));
            for k in 0..n {
                let z = &row(k)[lo..hi];
                x.extend(z.iter().zip(&mean[lo..hi]).map(|(&z, &mu)| z.into() - mu));
            }
            for k in 0..n {
                for (q, &c) in m2[lo..hi]
                    .iter_mut()
                    .zip(&x[k * (hi - lo)..(k + 1) * (hi - lo)])
                {
                    *q += c * c;
                }
            }
            blocks.push(Tensor::from_vec(x, (n, hi - lo), &Device::Cpu)?);
        }
        self.merge_part(
            n as u64,
            &mean,
            &m2,
            Some(PartComoment::Rows(&blocks)),
            threads,
        )
    }

    /// The Chan et al. update with a part of `count` samples.
    fn merge_part(
        &mut self,
        count: u64,
        mean: &[f64],
        m2: &[f64],
        comoment: Option<PartComoment<'_>>,
        threads: usize,
    ) -> candle_core::Result<()> {
        if count == 0 {
            return Ok(());
        }
        let full = self.is_full();
        if self.count == 0 {
            self.mean.copy_from_slice(mean);
            self.m2.copy_from_slice(m2);
            if let (true, Some(part)) = (full, comoment) {
                comoment_update(&mut self.comoment, part, None, threads)?;
            }
            self.count = count;
            return Ok(());
        }
        let (na, nb) = (self.count as f64, count as f64);
        let n = na + nb;
        let delta: Vec<f64> = mean.iter().zip(&self.mean).map(|(b, a)| b - a).collect();
        let f = na * nb / n;
        for d in 0..self.mean.len() {
            self.mean[d] += delta[d] * nb / n;
            self.m2[d] += m2[d] + delta[d] * delta[d] * f;
        }
        if let (true, Some(part)) = (full, comoment) {
            comoment_update(&mut self.comoment, part, Some((&delta, f)), threads)?;
        }
        self.count += count;
        Ok(())
    }

    /// Adds `other` (Chan et al. parallel update): the result is the statistics of the union.
    pub fn merge(&mut self, other: &BinMoments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let part = (!other.comoment.is_empty()).then_some(PartComoment::Matrix(&other.comoment));
        let threads = dirkit_compute::ops::pool::threads();
        self.merge_part(other.count, &other.mean, &other.m2, part, threads)
            .expect("merging a co-moment matrix does not fail");
    }

    /// Unbiased per-dimension variance (`n = 1` gives 0); `None` without samples.
    pub fn variance(&self) -> Option<Vec<f64>> {
        match self.count {
            0 => None,
            1 => Some(vec![0.0; self.mean.len()]),
            n => Some(self.m2.iter().map(|m| m / (n - 1) as f64).collect()),
        }
    }

    /// Unbiased covariance matrix, row-major (`n = 1` gives zeros); `None` without samples or
    /// when the co-moment is not tracked.
    pub fn covariance(&self) -> Option<Vec<f64>> {
        if self.comoment.is_empty() {
            return None;
        }
        match self.count {
            0 => None,
            1 => Some(vec![0.0; self.comoment.len()]),
            n => Some(self.comoment.iter().map(|c| c / (n - 1) as f64).collect()),
        }
    }
}

/// Statistics of every bin over one epoch (or any set of batches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// One entry per bin.
    pub bins: Vec<BinMoments>,
}

impl EpochStats {
    /// Empty statistics for `n_bins` bins of `dim` features.
    pub fn new(n_bins: usize, dim: usize, full: bool) -> Self {
        Self {
            bins: (0..n_bins).map(|_| BinMoments::empty(dim, full)).collect(),
        }
    }

    /// Adds a batch: `features` row-major (rows × dim) and the bin of each row.
    pub fn add_batch(&mut self, features: &[f64], dim: usize, bins: &[usize]) {
        self.add_rows(features, dim, bins)
            .expect("a CPU f64 matmul of consistent shapes");
    }

    /// [`EpochStats::add_batch`] for f32 or f64 features: one part per bin present. Without
    /// co-moments the bins are processed in parallel; with them, the GEMMs are.
    pub(crate) fn add_rows<T: Copy + Into<f64> + Sync>(
        &mut self,
        features: &[T],
        dim: usize,
        bins: &[usize],
    ) -> candle_core::Result<()> {
        let groups = Groups::new(bins, self.bins.len());
        let full = self.bins.first().is_some_and(BinMoments::is_full);
        // Bins in parallel without co-moments; with them, each bin's co-moment update is.
        let (threads, inner) = if full {
            (1, dirkit_compute::ops::pool::threads())
        } else if features.len() < PARALLEL_MIN {
            (1, 1)
        } else {
            (dirkit_compute::ops::pool::threads(), 1)
        };
        let present: Vec<(&[usize], &mut BinMoments)> = self
            .bins
            .iter_mut()
            .enumerate()
            .map(|(b, m)| (groups.rows(b), m))
            .filter(|(rows, _)| !rows.is_empty())
            .collect();
        let failure = Mutex::new(None);
        parallel_for(
            present,
            threads,
            |(rows, _)| rows.len(),
            |(rows, m)| {
                let row = |k: usize| &features[rows[k] * dim..(rows[k] + 1) * dim];
                if let Err(e) = m.add_rows(rows.len(), row, inner) {
                    *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                }
            },
        );
        match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Adds another partial statistics (e.g. from another worker): bin-wise merge.
    pub fn merge(&mut self, other: &EpochStats) {
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            a.merge(b);
        }
    }

    /// Empties every bin in place.
    pub(crate) fn clear(&mut self) {
        let threads = dirkit_compute::ops::pool::threads();
        let bins: Vec<&mut BinMoments> = self.bins.iter_mut().collect();
        parallel_for(
            bins,
            threads,
            |b| b.comoment.len() + b.mean.len(),
            |b| {
                b.count = 0;
                b.mean.fill(0.0);
                b.m2.fill(0.0);
                b.comoment.fill(0.0);
            },
        );
    }

    /// True when no bin has a sample.
    pub fn is_empty(&self) -> bool {
        self.bins.iter().all(|b| b.count == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fds::accumulate::Accumulator;

    /// Seeded rows (`n × dim`, row-major) in [-1, 1) around a per-row offset; column 5 constant.
    fn rows(n: usize, dim: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            2.0 * ((s >> 11) as f64 / (1u64 << 53) as f64) - 1.0
        };
        let mut v: Vec<f64> = (0..n * dim).map(|_| 3.0 + next()).collect();
        for r in 0..n {
            v[r * dim + 5] = 0.1;
        }
        v
    }

    /// Two-pass mean, M2 and co-moment of the rows.
    fn naive(x: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = x.len() / dim;
        let mut mean = vec![0.0; dim];
        for r in x.chunks(dim) {
            for (m, v) in mean.iter_mut().zip(r) {
                *m += v / n as f64;
            }
        }
        let mut c = vec![0.0; dim * dim];
        for r in x.chunks(dim) {
            for i in 0..dim {
                for j in 0..dim {
                    c[i * dim + j] += (r[i] - mean[i]) * (r[j] - mean[j]);
                }
            }
        }
        let m2 = (0..dim).map(|i| c[i * dim + i]).collect();
        (mean, m2, c)
    }

    #[track_caller]
    fn check(got: &BinMoments, x: &[f64], dim: usize) {
        let (mean, m2, c) = naive(x, dim);
        assert_eq!(got.count as usize, x.len() / dim);
        let close = |a: &[f64], b: &[f64], what: &str| {
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                    "{what}[{i}]: {a} vs {b}"
                );
            }
        };
        close(&got.mean, &mean, "mean");
        close(&got.m2, &m2, "m2");
        close(&got.comoment, &c, "comoment");
        for i in 0..dim {
            for j in 0..dim {
                assert_eq!(
                    got.comoment[i * dim + j],
                    got.comoment[j * dim + i],
                    "symmetry {i},{j}"
                );
            }
        }
        // The constant feature: exactly zero spread, and exactly its value as the mean.
        assert_eq!(got.mean[5], x[5]);
        assert_eq!(got.m2[5], 0.0);
        assert!((0..dim).all(|j| got.comoment[5 * dim + j] == 0.0));
    }

    /// D = 300 spans two GEMM blocks (one partial) and partial transpose tiles.
    const DIM: usize = 300;

    #[test]
    fn batched_statistics_match_two_pass_statistics() {
        let x = rows(700, DIM, 7);
        // Bin 1 takes every row, bin 0 none; uneven batches.
        let mut s = EpochStats::new(2, DIM, true);
        for (lo, hi) in [(0, 1), (1, 40), (40, 333), (333, 700)] {
            s.add_batch(&x[lo * DIM..hi * DIM], DIM, &vec![1; hi - lo]);
        }
        assert_eq!(s.bins[0], BinMoments::empty(DIM, true));
        check(&s.bins[1], &x, DIM);
    }

    #[test]
    fn waiting_rows_are_folded_in_before_any_read() {
        let x = rows(700, DIM, 8);
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let x32: Vec<f64> = xf.iter().map(|&v| v as f64).collect();
        let bins: Vec<usize> = (0..700).map(|r| usize::from(r % 7 != 0)).collect();
        let mut acc = Accumulator::from_stats(EpochStats::new(2, DIM, true));
        // 600 rows of bin 1: folded in at 256 and 512 rows, then on reading.
        for lo in (0..700).step_by(100) {
            acc.add_batch(&xf[lo * DIM..(lo + 100) * DIM], DIM, &bins[lo..lo + 100])
                .unwrap();
            if lo == 300 {
                let copy = acc.clone();
                let seen: Vec<f64> = (0..400)
                    .filter(|&r| bins[r] == 1)
                    .flat_map(|r| x32[r * DIM..(r + 1) * DIM].to_vec())
                    .collect();
                check(&copy.stats().bins[1], &seen, DIM);
            }
        }
        for b in 0..2 {
            let mine: Vec<f64> = (0..700)
                .filter(|&r| bins[r] == b)
                .flat_map(|r| x32[r * DIM..(r + 1) * DIM].to_vec())
                .collect();
            check(&acc.stats().bins[b], &mine, DIM);
        }
        // Cleared in place, then reused.
        acc.clear();
        assert!(acc.stats().is_empty());
        assert!(acc.stats().bins[1].comoment.iter().all(|&c| c == 0.0));
        acc.add_batch(&xf[..50 * DIM], DIM, &[1; 50]).unwrap();
        check(&acc.stats().bins[1], &x32[..50 * DIM], DIM);
    }

    #[test]
    fn merging_parts_equals_one_pass() {
        let x = rows(90, DIM, 9);
        let mut a = BinMoments::from_rows(&x, DIM, &(0..30).collect::<Vec<_>>(), true);
        let b = BinMoments::from_rows(&x, DIM, &(30..90).collect::<Vec<_>>(), true);
        a.merge(&b);
        check(&a, &x, DIM);
        // Diagonal-only statistics agree with the full ones.
        let mut d = EpochStats::new(1, DIM, false);
        d.add_batch(&x, DIM, &[0; 90]);
        let (mean, m2, _) = naive(&x, DIM);
        for i in 0..DIM {
            assert!((d.bins[0].mean[i] - mean[i]).abs() < 1e-12);
            assert!((d.bins[0].m2[i] - m2[i]).abs() < 1e-9 * (1.0 + m2[i]));
        }
        assert_eq!(d.bins[0].m2[5], 0.0);
    }
}
