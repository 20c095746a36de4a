//! Equal-width bins over a continuous label (methods.md §1).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result, invalid};

/// What to do with a label outside `[start, start + n_bins·width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutOfRange {
    /// Put it in the nearest edge bin (default; what the reference code does: every age >= 120
    /// lands in bin 120 of AgeDB-DIR).
    #[default]
    Clip,
    /// Refuse the input, naming the first offending label and its position.
    Error,
    /// Leave the label out of the counts (its per-sample weight is "none").
    Drop,
}

/// Largest number of bins a [`Binning`] may have (2^24): more is a mistaken width, and the
/// per-bin tables would not fit in memory.
pub const MAX_BINS: usize = 1 << 24;

/// Equal-width bins: bin `b` covers `[start + b·width, start + (b+1)·width)`.
///
/// `bin(y) = floor((y - start) / width)`; out-of-range labels follow an [`OutOfRange`] policy.
/// AgeDB-DIR / IMDB-WIKI-DIR use `start = 0, width = 1, n_bins = 121`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Binning {
    /// Lower edge of bin 0, in label units.
    pub start: f64,
    /// Bin width, in label units (> 0).
    pub width: f64,
    /// Number of bins (>= 1).
    pub n_bins: usize,
}

impl Binning {
    /// Checked constructor: `start` finite, `width` finite and > 0, `n_bins` >= 1.
    pub fn new(start: f64, width: f64, n_bins: usize) -> Result<Self> {
        let b = Self {
            start,
            width,
            n_bins,
        };
        b.validate()?;
        Ok(b)
    }

    /// Bins of `width` covering `[start, end)`: `ceil((end - start) / width)` bins, so
    /// `from_range(0, 121, 1)` has 121 bins. The last bin may end past `end` when the width does
    /// not divide the range.
    pub fn from_range(start: f64, end: f64, width: f64) -> Result<Self> {
        check_width(width)?;
        if !start.is_finite() {
            return invalid("range start", start, "a finite number");
        }
        if !end.is_finite() || end <= start {
            return invalid(
                "range end",
                end,
                "a finite number greater than the range start",
            );
        }
        let n = ((end - start) / width).ceil();
        if !(n >= 1.0 && n <= MAX_BINS as f64) {
            return invalid(
                "range",
                format!("{start}:{end} with bin width {width}"),
                "at most 2^24 (16777216) bins",
            );
        }
        Self::new(start, width, n as usize)
    }

    /// The spec's auto range over `labels`: `start = floor(min / width)·width`,
    /// `n_bins = floor((max - start) / width) + 1`. Non-finite labels are an error.
    pub fn auto(labels: &[f64], width: f64) -> Result<Self> {
        check_width(width)?;
        let (min, max) = finite_min_max(labels)?;
        Self::auto_from_min_max(min, max, width)
    }

    /// [`Binning::auto`] from an already known label minimum and maximum.
    pub fn auto_from_min_max(min: f64, max: f64, width: f64) -> Result<Self> {
        check_width(width)?;
        let start = (min / width).floor() * width;
        let n = ((max - start) / width).floor() + 1.0;
        if !(n >= 1.0 && n <= MAX_BINS as f64) {
            return invalid(
                "bin width",
                width,
                "a width that gives at most 2^24 (16777216) bins over the label range",
            );
        }
        Self::new(start, width, n as usize)
    }

    /// Checks the invariants of a deserialised or hand-built value.
    pub fn validate(&self) -> Result<()> {
        check_width(self.width)?;
        if !self.start.is_finite() {
            return invalid("bin start", self.start, "a finite number");
        }
        if self.n_bins == 0 || self.n_bins > MAX_BINS {
            return invalid("n_bins", self.n_bins, "between 1 and 2^24 (16777216)");
        }
        Ok(())
    }

    /// Exclusive upper edge of the last bin: `start + n_bins·width`.
    pub fn end(&self) -> f64 {
        self.start + self.n_bins as f64 * self.width
    }

    /// Lower edge of bin `b`.
    pub fn lower(&self, b: usize) -> f64 {
        self.start + b as f64 * self.width
    }

    /// Upper (exclusive) edge of bin `b`.
    pub fn upper(&self, b: usize) -> f64 {
        self.start + (b + 1) as f64 * self.width
    }

    /// Centre of bin `b`: `start + (b + 0.5)·width`.
    pub fn centre(&self, b: usize) -> f64 {
        self.start + (b as f64 + 0.5) * self.width
    }

    /// True for the integer-label mode (`width = 1`, integral `start`), where a bin stands for
    /// the integer `start + b` as in the reference code.
    pub fn is_integer_mode(&self) -> bool {
        self.width == 1.0 && self.start.fract() == 0.0
    }

    /// The value a bin stands for (decoders, BNI): `start + b` in integer mode, else the centre.
    pub fn value(&self, b: usize) -> f64 {
        if self.is_integer_mode() {
            self.start + b as f64
        } else {
            self.centre(b)
        }
    }

    /// All bin values ([`Binning::value`]), in bin order.
    pub fn values(&self) -> Vec<f64> {
        (0..self.n_bins).map(|b| self.value(b)).collect()
    }

    /// All bin centres, in bin order.
    pub fn centres(&self) -> Vec<f64> {
        (0..self.n_bins).map(|b| self.centre(b)).collect()
    }

    /// Raw bin position of a finite label: `floor((y - start) / width)`, possibly outside
    /// `0..n_bins`.
    #[inline]
    pub fn raw_index(&self, y: f64) -> f64 {
        ((y - self.start) / self.width).floor()
    }

    /// The bin of an in-range label, `None` for anything else (out of range, NaN, infinite).
    /// For a quotient in `[0, n_bins)` truncation equals `floor`, so the hot path needs no
    /// `floor` call (a libm call on baseline x86-64).
    #[inline(always)]
    pub fn index_in_range(&self, y: f64) -> Option<usize> {
        let x = (y - self.start) / self.width;
        (x >= 0.0 && x < self.n_bins as f64).then_some(x as usize)
    }

    /// `1 / width` when the width is a power of two: multiplying by it is then bit-identical to
    /// dividing by the width, and several times cheaper in a hot loop.
    #[inline]
    pub fn exact_reciprocal(&self) -> Option<f64> {
        const MANTISSA: u64 = (1 << 52) - 1;
        let normal = self.width.is_normal() && self.width > 0.0;
        (normal && self.width.to_bits() & MANTISSA == 0).then(|| 1.0 / self.width)
    }

    /// Bin of the label at position `index` of the input under `policy`: `Ok(None)` when the
    /// policy drops it. NaN or infinite labels are always an error.
    #[inline]
    pub fn bin(&self, y: f64, index: usize, policy: OutOfRange) -> Result<Option<usize>> {
        if let Some(b) = self.index_in_range(y) {
            return Ok(Some(b));
        }
        if !y.is_finite() {
            return Err(CoreError::NonFiniteLabel { index, value: y });
        }
        let r = self.raw_index(y);
        let last = (self.n_bins - 1) as f64;
        if r >= 0.0 && r <= last {
            return Ok(Some(r as usize));
        }
        match policy {
            OutOfRange::Clip => Ok(Some(if r < 0.0 { 0 } else { self.n_bins - 1 })),
            OutOfRange::Drop => Ok(None),
            OutOfRange::Error => Err(CoreError::LabelOutOfRange {
                index,
                value: y,
                start: self.start,
                end: self.end(),
            }),
        }
    }

    /// Counts per bin in one pass over `labels` (`n_b`, empty bins stay as 0), with the number of
    /// labels dropped by [`OutOfRange::Drop`].
    pub fn counts(&self, labels: &[f64], policy: OutOfRange) -> Result<(Vec<u64>, u64)> {
        let mut counts = vec![0u64; self.n_bins];
        let dropped = self.accumulate(labels, 0, policy, &mut counts)?;
        Ok((counts, dropped))
    }

    /// Adds the labels of one chunk to `counts` (length `n_bins`); `offset` is the position of
    /// `labels[0]` in the whole input, used in error messages. Returns the number dropped.
    /// Lets callers count streamed input without holding it. Inputs of several million labels
    /// are split across the available cores (scoped threads); an error still names the first
    /// offending label.
    pub fn accumulate(
        &self,
        labels: &[f64],
        offset: usize,
        policy: OutOfRange,
        counts: &mut [u64],
    ) -> Result<u64> {
        if counts.len() != self.n_bins {
            return Err(CoreError::LengthMismatch {
                what: "counts buffer vs n_bins",
                left: counts.len(),
                right: self.n_bins,
            });
        }
        let parts = crate::parallel::parts(labels.len());
        if parts == 1 {
            return self.accumulate_serial(labels, offset, policy, counts);
        }
        let chunk = labels.len().div_ceil(parts);
        let results: Vec<Result<(Vec<u64>, u64)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = labels
                .chunks(chunk)
                .enumerate()
                .map(|(k, part)| {
                    scope.spawn(move || {
                        let mut c = vec![0u64; self.n_bins];
                        let d = self.accumulate_serial(part, offset + k * chunk, policy, &mut c)?;
                        Ok((c, d))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut dropped = 0;
        for r in results {
            let (c, d) = r?;
            dropped += d;
            counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
        }
        Ok(dropped)
    }

    fn accumulate_serial(
        &self,
        labels: &[f64],
        offset: usize,
        policy: OutOfRange,
        counts: &mut [u64],
    ) -> Result<u64> {
        // Four interleaved histograms: runs of equal labels (sorted or concentrated data) would
        // otherwise chain every increment on the previous store to the same counter.
        let n = self.n_bins;
        let mut lanes = vec![0u64; 4 * n];
        let mut dropped = 0u64;
        let mut slow = |i: usize, y: f64, lanes: &mut [u64]| -> Result<()> {
            match self.bin(y, offset + i, policy)? {
                Some(b) => lanes[b] += 1,
                None => dropped += 1,
            }
            Ok(())
        };
        let chunks = labels.chunks_exact(4);
        let tail = chunks.remainder();
        let inv = self.exact_reciprocal();
        let (start, width, nf) = (self.start, self.width, n as f64);
        // Monomorphic closure (no dynamic call in the hot loop): multiply when exact, else divide.
        let index = |y: f64| {
            let x = match inv {
                Some(r) => (y - start) * r,
                None => (y - start) / width,
            };
            (x >= 0.0 && x < nf).then_some(x as usize)
        };
        for (c, q) in chunks.enumerate() {
            match (index(q[0]), index(q[1]), index(q[2]), index(q[3])) {
                (Some(a), Some(b), Some(d), Some(e)) => {
                    lanes[a] += 1;
                    lanes[n + b] += 1;
                    lanes[2 * n + d] += 1;
                    lanes[3 * n + e] += 1;
                }
                _ => {
                    for (k, &y) in q.iter().enumerate() {
                        slow(4 * c + k, y, &mut lanes)?;
                    }
                }
            }
        }
        let base = labels.len() - tail.len();
        for (k, &y) in tail.iter().enumerate() {
            slow(base + k, y, &mut lanes)?;
        }
        for (b, c) in counts.iter_mut().enumerate() {
            *c += lanes[b] + lanes[n + b] + lanes[2 * n + b] + lanes[3 * n + b];
        }
        Ok(dropped)
    }
}

fn check_width(width: f64) -> Result<()> {
    if !(width.is_finite() && width > 0.0) {
        return invalid("bin width", width, "a finite number > 0");
    }
    Ok(())
}

/// Minimum and maximum of `labels`, refusing NaN/inf (with the position) and an empty slice.
pub fn finite_min_max(labels: &[f64]) -> Result<(f64, f64)> {
    if labels.is_empty() {
        return Err(CoreError::Empty("no labels"));
    }
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    for &y in labels {
        min = min.min(y);
        max = max.max(y);
    }
    // f64::min/max skip NaN; a final scan only runs when something is wrong.
    if !(min.is_finite() && max.is_finite()) || labels.iter().any(|y| y.is_nan()) {
        let index = labels.iter().position(|y| !y.is_finite()).unwrap_or(0);
        return Err(CoreError::NonFiniteLabel {
            index,
            value: labels[index],
        });
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agedb_binning_clips_old_ages_into_the_last_bin() {
        let b = Binning::new(0.0, 1.0, 121).unwrap();
        assert_eq!(b.bin(120.0, 0, OutOfRange::Clip).unwrap(), Some(120));
        assert_eq!(b.bin(150.0, 0, OutOfRange::Clip).unwrap(), Some(120));
        assert_eq!(b.bin(-3.0, 0, OutOfRange::Clip).unwrap(), Some(0));
        assert_eq!(b.bin(150.0, 0, OutOfRange::Drop).unwrap(), None);
        let e = b.bin(150.0, 7, OutOfRange::Error).unwrap_err();
        assert_eq!(
            e.to_string(),
            "label #7 = 150 is outside the bin range [0, 121)"
        );
        assert!(matches!(
            b.bin(f64::NAN, 3, OutOfRange::Clip),
            Err(CoreError::NonFiniteLabel { index: 3, .. })
        ));
    }

    #[test]
    fn range_end_is_exclusive_and_auto_range_follows_the_spec() {
        assert_eq!(Binning::from_range(0.0, 121.0, 1.0).unwrap().n_bins, 121);
        assert_eq!(Binning::from_range(0.0, 5.0, 2.0).unwrap().n_bins, 3);
        let a = Binning::auto(&[0.3, 4.99, 2.0], 0.25).unwrap();
        assert_eq!((a.start, a.n_bins), (0.25, 19));
        let a = Binning::auto(&[-1.5, 2.0], 1.0).unwrap();
        assert_eq!((a.start, a.n_bins), (-2.0, 5));
        assert!(Binning::from_range(3.0, 3.0, 1.0).is_err());
        assert!(Binning::new(0.0, 0.0, 3).is_err());
        assert!(Binning::new(0.0, -1.0, 3).is_err());
        assert!(Binning::auto(&[], 1.0).is_err());
        assert!(Binning::auto(&[0.0, 100.0], 1e-9).is_err());
        assert!(Binning::from_range(0.0, 1e12, 1.0).is_err());
        assert!(Binning::new(0.0, 1.0, MAX_BINS + 1).is_err());
        assert!(matches!(
            Binning::auto(&[1.0, f64::INFINITY], 1.0),
            Err(CoreError::NonFiniteLabel { index: 1, .. })
        ));
    }

    #[test]
    fn bin_values_use_integers_in_integer_mode_and_centres_otherwise() {
        let b = Binning::new(3.0, 1.0, 3).unwrap();
        assert_eq!(b.values(), vec![3.0, 4.0, 5.0]);
        assert_eq!(b.centres(), vec![3.5, 4.5, 5.5]);
        let c = Binning::new(0.0, 0.25, 2).unwrap();
        assert_eq!(c.values(), vec![0.125, 0.375]);
    }

    #[test]
    fn counts_report_drops_and_positions() {
        let b = Binning::new(0.0, 1.0, 3).unwrap();
        let (c, d) = b
            .counts(&[0.0, 0.5, 2.9, 3.0, -0.1], OutOfRange::Drop)
            .unwrap();
        assert_eq!((c, d), (vec![2, 0, 1], 2));
        let e = b.counts(&[0.0, 7.0], OutOfRange::Error).unwrap_err();
        assert!(matches!(e, CoreError::LabelOutOfRange { index: 1, .. }));
    }
}
