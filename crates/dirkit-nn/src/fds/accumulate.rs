//! The epoch statistics as `Fds` accumulates them: per-bin rows wait and are folded into the
//! mergeable statistics of [`super::stats`] in batches, one GEMM per part.

use std::sync::{Mutex, OnceLock, PoisonError};

use super::comoment::{Groups, parallel_for};
use super::stats::{BinMoments, EpochStats, FLUSH_ROWS};

/// An epoch's statistics as `Fds` accumulates them. With co-moments, each bin's rows wait (as
/// f64, at most [`FLUSH_ROWS`] per bin) and are folded in as one part when the bin has that many
/// or when the statistics are read: one rank-m GEMM per part instead of one pass over the
/// bin's D × D co-moment per batch. The result is the same statistics (Chan's update is exact;
/// the parts differ only in rounding), and reading folds everything in first, so what a reader
/// sees is always complete.
#[derive(Debug)]
pub(crate) struct Accumulator {
    /// The statistics with nothing waiting; set ⇔ `raw.base` is `None`.
    flushed: OnceLock<EpochStats>,
    raw: Mutex<Raw>,
}

#[derive(Debug)]
struct Raw {
    base: Option<EpochStats>,
    /// Waiting rows per bin, row-major.
    pending: Vec<Vec<f64>>,
}

impl Raw {
    /// Folds `rows` (row-major, waiting for `bin`) into it.
    fn fold(bin: &mut BinMoments, rows: &mut Vec<f64>, threads: usize) -> candle_core::Result<()> {
        let dim = bin.dim();
        bin.add_rows(rows.len() / dim, |k| &rows[k * dim..(k + 1) * dim], threads)?;
        rows.clear();
        Ok(())
    }

    /// The statistics with every waiting row folded in: bins in parallel when there are many,
    /// else one after the other, each on every thread.
    fn flush(&mut self) -> candle_core::Result<EpochStats> {
        let mut base = self.base.take().expect("statistics present until flushed");
        let work: Vec<(&mut BinMoments, &mut Vec<f64>)> = base
            .bins
            .iter_mut()
            .zip(self.pending.iter_mut())
            .filter(|(_, rows)| !rows.is_empty())
            .collect();
        let threads = dirkit_compute::ops::pool::threads();
        let (outer, inner) = if work.len() >= 4 * threads {
            (threads, 1)
        } else {
            (1, threads)
        };
        let failure = Mutex::new(None);
        parallel_for(
            work,
            outer,
            |(_, rows)| rows.len(),
            |(bin, rows)| {
                if let Err(e) = Self::fold(bin, rows, inner) {
                    *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                }
            },
        );
        match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e),
            None => Ok(base),
        }
    }
}

impl Clone for Accumulator {
    /// Clones the statistics with the waiting rows folded in.
    fn clone(&self) -> Self {
        Self::from_stats(self.stats().clone())
    }
}

impl Accumulator {
    /// Statistics with nothing waiting.
    pub(crate) fn from_stats(stats: EpochStats) -> Self {
        let n_bins = stats.bins.len();
        Self {
            flushed: OnceLock::from(stats),
            raw: Mutex::new(Raw {
                base: None,
                pending: vec![Vec::new(); n_bins],
            }),
        }
    }

    /// The complete statistics (waiting rows are folded in first).
    pub(crate) fn stats(&self) -> &EpochStats {
        self.flushed.get_or_init(|| {
            self.raw
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .flush()
                .expect("a CPU f64 matmul of consistent shapes")
        })
    }

    /// The complete statistics, mutable.
    pub(crate) fn stats_mut(&mut self) -> &mut EpochStats {
        self.stats();
        self.flushed.get_mut().expect("flushed just above")
    }

    /// Empties the statistics in place (their memory is reused).
    pub(crate) fn clear(&mut self) {
        self.stats_mut().clear();
    }

    /// Adds a batch (`features` row-major, rows × dim; the bin of each row).
    pub(crate) fn add_batch<T: Copy + Into<f64> + Sync>(
        &mut self,
        features: &[T],
        dim: usize,
        bins: &[usize],
    ) -> candle_core::Result<()> {
        let raw = self.raw.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = self.flushed.take() {
            raw.base = Some(s);
        }
        let base = raw.base.as_mut().expect("statistics present until flushed");
        if !base.bins.first().is_some_and(BinMoments::is_full) {
            return base.add_rows(features, dim, bins);
        }
        let groups = Groups::new(bins, base.bins.len());
        for b in 0..base.bins.len() {
            let rows = groups.rows(b);
            if rows.is_empty() {
                continue;
            }
            let waiting = &mut raw.pending[b];
            if waiting.capacity() == 0 {
                waiting.reserve_exact(FLUSH_ROWS.max(rows.len()) * dim);
            }
            for &r in rows {
                waiting.extend(features[r * dim..(r + 1) * dim].iter().map(|&z| z.into()));
            }
            if waiting.len() >= FLUSH_ROWS * dim {
                Raw::fold(
                    &mut base.bins[b],
                    waiting,
                    dirkit_compute::ops::pool::threads(),
                )?;
            }
        }
        Ok(())
    }
}
