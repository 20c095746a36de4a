//! Feature distribution smoothing (Yang et al. 2021, methods.md §5).
//!
//! Per label bin, FDS keeps running statistics of the features (mean and variance, or full
//! covariance), smooths them across neighbouring bins with a kernel, and recalibrates each
//! training feature from its bin's statistics toward the smoothed ones. A training loop:
//!
//! 1. every step, `z' = fds.calibrate(&z, &labels, epoch)?` (identity before `start_smooth`);
//! 2. statistics: `fds.accumulate(&z, &labels)?` on uncalibrated features — in a no-grad pass
//!    after the epoch ([`StatsSource::SecondPass`], the reference) or in the training pass
//!    ([`StatsSource::Online`]);
//! 3. `fds.end_epoch(epoch)?` updates the running statistics, smooths them and computes the
//!    calibration transforms once for the next epoch.
//!
//! Calibration is out-of-place and differentiable in `z` only; it is never applied at inference.
//!
//! Where dirkit differs from the reference implementation, and why:
//! - labels below the first bin / above the last always pool into the end bins (the reference
//!   pools only when the boundary label happens to be in the same batch);
//! - a bin's first statistics are copied, whatever the epoch (the reference copies only at
//!   `start_update` and otherwise blends new bins with the initial 0/1 values);
//! - samples of never-seen bins pass unchanged (the reference calibrates them toward the
//!   meaningless initial statistics); dimensions with zero variance pass unchanged;
//! - statistics and smoothed statistics used in an epoch come from the same snapshot (the
//!   reference lags the raw statistics by one epoch through tensor aliasing, so it calibrates
//!   nothing before epoch 2);
//! - statistics are merged exactly in f64 (count, mean, M2, co-moment), not from f32 sums;
//! - optional full covariance with shrinkage and a transform clip, and an online source.

mod accumulate;
mod comoment;
mod config;
mod fused;
pub(crate) mod smooth;
mod state;
mod stats;
mod transform;

pub use config::{Covariance, EmptyBins, FdsConfig, FullCovariance, ShrinkTarget, StatsSource};
pub use stats::{BinMoments, EpochStats};

use candle_core::{CpuStorage, DType, Device, IndexOp, Storage, Tensor};
use dirkit_compute::ops::matmul;
use dirkit_core::{Normalisation, OutOfRange};

use crate::error::NnError;
use accumulate::Accumulator;
use fused::FusedCalibration;
use smooth::smooth_rows;
use transform::{DiagonalRows, full_transform};

/// Running per-bin statistics (f64, host).
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStats {
    /// Whether the bin ever received a sample.
    pub seen: Vec<bool>,
    /// Samples that went into each bin's running statistics (for the cumulative average).
    pub n_tracked: Vec<u64>,
    /// Running mean per bin (D each); 0 for never-seen bins.
    pub mean: Vec<Vec<f64>>,
    /// Running unbiased variance per bin (D each); 1 for never-seen bins.
    pub var: Vec<Vec<f64>>,
    /// Running covariance per bin (row-major D×D; identity for never-seen bins); empty in
    /// diagonal mode.
    pub cov: Vec<Vec<f64>>,
}

/// Smoothed statistics of one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothedStats {
    /// μ̃ per bin.
    pub mean: Vec<Vec<f64>>,
    /// σ̃² per bin.
    pub var: Vec<Vec<f64>>,
    /// Σ̃ per bin (row-major); empty in diagonal mode.
    pub cov: Vec<Vec<f64>>,
}

/// The calibration used during one epoch, on the model's device.
#[derive(Debug, Clone)]
enum Maps {
    Diagonal {
        shift: Tensor,
        scale: Tensor,
        target: Tensor,
    },
    Full {
        shift: Tensor,
        target: Tensor,
        /// Aᵀ per bin (so rows calibrate as `(z − μ) Aᵀ`); `None` passes unchanged.
        matrices: Vec<Option<Tensor>>,
    },
}

#[derive(Debug, Clone)]
struct Snapshot {
    /// Last epoch whose statistics it includes.
    epoch: usize,
    smoothed: SmoothedStats,
    maps: Maps,
}

/// Feature distribution smoothing state. See the module documentation for the training loop.
#[derive(Debug, Clone)]
pub struct Fds {
    config: FdsConfig,
    window: Vec<f64>,
    device: Device,
    dtype: DType,
    epoch: Accumulator,
    running: RunningStats,
    snapshot: Option<Snapshot>,
}

/// A tensor of `dtype` on `device` from host f64 values, converted on the host in one pass.
fn host_tensor(
    v: Vec<f64>,
    shape: (usize, usize),
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let t = match dtype {
        DType::F32 => Tensor::from_vec(
            v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            shape,
            &Device::Cpu,
        )?,
        _ => Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)?,
    };
    t.to_device(device)
}

/// `f(0), …, f(n − 1)` computed on up to candle's thread count
/// ([`threads`](dirkit_compute::ops::pool::threads)), each thread taking the next unclaimed
/// index, so uneven items (seen and never-seen
/// bins) balance themselves.
fn per_bin_parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = dirkit_compute::ops::pool::threads().clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parts: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            return done;
                        }
                        done.push((i, f(i)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    parts.sort_unstable_by_key(|(i, _)| *i);
    parts.into_iter().map(|(_, t)| t).collect()
}

impl Fds {
    /// New FDS state; the calibration maps live on `device` in `dtype` (the features' dtype).
    pub fn new(config: FdsConfig, device: &Device, dtype: DType) -> candle_core::Result<Self> {
        config.validate()?;
        let window = config
            .kernel
            .window(Normalisation::Sum)
            .map_err(NnError::from)?;
        let (k, d, full) = (config.binning.n_bins, config.feature_dim, config.is_full());
        let identity: Vec<f64> = (0..d * d)
            .map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 })
            .collect();
        let running = RunningStats {
            seen: vec![false; k],
            n_tracked: vec![0; k],
            mean: vec![vec![0.0; d]; k],
            var: vec![vec![1.0; d]; k],
            cov: if full { vec![identity; k] } else { Vec::new() },
        };
        Ok(Self {
            epoch: Accumulator::from_stats(EpochStats::new(k, d, full)),
            config,
            window,
            device: device.clone(),
            dtype,
            running,
            snapshot: None,
        })
    }

    /// The device the calibration maps live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype the calibration maps are kept in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The configuration.
    pub fn config(&self) -> &FdsConfig {
        &self.config
    }

    /// Statistics accumulated since the last [`Fds::end_epoch`]. In full-covariance mode
    /// rows wait per bin before their co-moment is folded in; this folds them in first, so the
    /// first call after [`Fds::accumulate`] may take a while.
    pub fn epoch_stats(&self) -> &EpochStats {
        self.epoch.stats()
    }

    /// The running statistics.
    pub fn running(&self) -> &RunningStats {
        &self.running
    }

    /// The smoothed statistics of the current snapshot, if one was made.
    pub fn smoothed(&self) -> Option<&SmoothedStats> {
        self.snapshot.as_ref().map(|s| &s.smoothed)
    }

    /// The bin of every label (labels outside the bins pool into the end bins).
    pub fn bins_of(&self, labels: &Tensor) -> candle_core::Result<Vec<usize>> {
        let y: Vec<f64> = labels.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        y.iter()
            .enumerate()
            .map(|(i, &v)| {
                self.config
                    .binning
                    .bin(v, i, OutOfRange::Clip)
                    .map_err(|e| NnError::from(e).into())
                    .map(|b| b.unwrap_or(0))
            })
            .collect()
    }

    fn check(&self, features: &Tensor, labels: &Tensor) -> candle_core::Result<usize> {
        let (b, d) = features.dims2()?;
        if d != self.config.feature_dim {
            return Err(NnError::shape(format!(
                "features have {d} dimensions, FDS was configured for {}",
                self.config.feature_dim
            ))
            .into());
        }
        if labels.elem_count() != b {
            return Err(NnError::shape(format!(
                "{b} feature rows but {} labels",
                labels.elem_count()
            ))
            .into());
        }
        Ok(b)
    }

    /// Adds a batch of **uncalibrated** features (B×D) and their labels (B or B×1) to this
    /// epoch's statistics (f64). Contiguous f32/f64 CPU features are read in place, others are
    /// copied to the host; no gradient is involved.
    pub fn accumulate(&mut self, features: &Tensor, labels: &Tensor) -> candle_core::Result<()> {
        self.check(features, labels)?;
        let bins = self.bins_of(labels)?;
        let dim = self.config.feature_dim;
        let features = features.detach();
        {
            let (storage, layout) = features.storage_and_layout();
            match (&*storage, layout.contiguous_offsets()) {
                (Storage::Cpu(CpuStorage::F32(v)), Some((lo, hi))) => {
                    return self.epoch.add_batch(&v[lo..hi], dim, &bins);
                }
                (Storage::Cpu(CpuStorage::F64(v)), Some((lo, hi))) => {
                    return self.epoch.add_batch(&v[lo..hi], dim, &bins);
                }
                _ => {}
            }
        }
        let z: Vec<f64> = features.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        self.epoch.add_batch(&z, dim, &bins)
    }

    /// Adds statistics gathered elsewhere (another worker or pass) to this epoch's.
    pub fn merge_epoch_stats(&mut self, other: &EpochStats) -> candle_core::Result<()> {
        if other.bins.len() != self.config.binning.n_bins {
            return Err(NnError::shape("epoch statistics with another bin count".into()).into());
        }
        self.epoch.stats_mut().merge(other);
        Ok(())
    }

    /// Ends `epoch` (0-based): from `start_update` on, folds this epoch's statistics into the
    /// running statistics (first sight copies, then `R = (1 − m)E + mR`), then smooths them and
    /// computes the calibration maps used from the next epoch on. Clears the epoch statistics.
    pub fn end_epoch(&mut self, epoch: usize) -> candle_core::Result<()> {
        // Cleared in place afterwards: the next epoch reuses the memory (the co-moments are
        // K·D² f64), which spares it the page faults of a fresh allocation.
        let mut acc = std::mem::replace(
            &mut self.epoch,
            Accumulator::from_stats(EpochStats { bins: Vec::new() }),
        );
        let result = self.fold_epoch(epoch, acc.stats());
        acc.clear();
        self.epoch = acc;
        result
    }

    /// Folds one epoch's statistics into the running statistics and makes the snapshot.
    fn fold_epoch(&mut self, epoch: usize, stats: &EpochStats) -> candle_core::Result<()> {
        if epoch < self.config.start_update || stats.is_empty() {
            return Ok(());
        }
        for (b, e) in stats.bins.iter().enumerate() {
            if e.count == 0 {
                continue;
            }
            let var = e.variance().unwrap_or_default();
            let cov = e.covariance();
            let r = &mut self.running;
            let factor = if !r.seen[b] {
                0.0
            } else {
                match self.config.momentum {
                    Some(m) => m,
                    None => 1.0 - e.count as f64 / (r.n_tracked[b] + e.count) as f64,
                }
            };
            let blend = |old: &mut Vec<f64>, new: &[f64]| {
                for (o, n) in old.iter_mut().zip(new) {
                    *o = (1.0 - factor) * n + factor * *o;
                }
            };
            blend(&mut r.mean[b], &e.mean);
            blend(&mut r.var[b], &var);
            if let Some(c) = cov {
                blend(&mut r.cov[b], &c);
            }
            r.seen[b] = true;
            r.n_tracked[b] += e.count;
        }
        self.snapshot = Some(self.make_snapshot(epoch)?);
        Ok(())
    }

    /// Statistics as smoothing sees them: never-seen bins keep the initial values or take
    /// the nearest seen bin's, as configured.
    fn filled<'a>(&self, rows: &'a [Vec<f64>]) -> Vec<&'a [f64]> {
        match self.config.empty_bins {
            EmptyBins::Initial => rows.iter().map(Vec::as_slice).collect(),
            EmptyBins::Nearest => {
                let seen = &self.running.seen;
                (0..rows.len())
                    .map(|b| {
                        let nearest = (0..rows.len())
                            .filter(|&j| seen[j])
                            .min_by_key(|&j| (j.abs_diff(b), j));
                        rows[nearest.unwrap_or(b)].as_slice()
                    })
                    .collect()
            }
        }
    }

    fn make_snapshot(&self, epoch: usize) -> candle_core::Result<Snapshot> {
        let r = &self.running;
        let smoothed = SmoothedStats {
            mean: smooth_rows(&self.filled(&r.mean), &self.window),
            var: smooth_rows(&self.filled(&r.var), &self.window),
            cov: if r.cov.is_empty() {
                Vec::new()
            } else {
                smooth_rows(&self.filled(&r.cov), &self.window)
            },
        };
        let (k, d) = (self.config.binning.n_bins, self.config.feature_dim);
        let flat_tensor = |v: Vec<f64>| host_tensor(v, (k, d), self.dtype, &self.device);
        let maps = match self.config.covariance {
            Covariance::Diagonal => match self.dtype {
                DType::F32 => self.diagonal_maps::<f32>(&smoothed)?,
                _ => self.diagonal_maps::<f64>(&smoothed)?,
            },
            Covariance::Full(cfg) => {
                let transforms = per_bin_parallel(k, |b| {
                    if r.seen[b] {
                        full_transform(&r.cov[b], &smoothed.cov[b], d, &cfg, self.config.clip)
                    } else {
                        None
                    }
                });
                let mut matrices = Vec::with_capacity(k);
                let mut shift = vec![0.0; k * d];
                let mut target = vec![0.0; k * d];
                for (b, a) in transforms.into_iter().enumerate() {
                    matrices.push(match a {
                        Some(a) => {
                            shift[b * d..(b + 1) * d].copy_from_slice(&r.mean[b]);
                            target[b * d..(b + 1) * d].copy_from_slice(&smoothed.mean[b]);
                            let t = Tensor::from_vec(a, (d, d), &Device::Cpu)?;
                            Some(t.to_dtype(self.dtype)?.to_device(&self.device)?)
                        }
                        None => None,
                    });
                }
                Maps::Full {
                    shift: flat_tensor(shift)?,
                    target: flat_tensor(target)?,
                    matrices,
                }
            }
        };
        Ok(Snapshot {
            epoch,
            smoothed,
            maps,
        })
    }

    /// The diagonal calibration maps (K×D shift, scale, target) of the running and smoothed
    /// statistics, built on the host in `T` and moved to the FDS device and dtype.
    fn diagonal_maps<T: candle_core::WithDType>(
        &self,
        smoothed: &SmoothedStats,
    ) -> candle_core::Result<Maps> {
        let (k, d) = (self.config.binning.n_bins, self.config.feature_dim);
        let r = &self.running;
        let mut shift = vec![T::zero(); k * d];
        let mut scale = vec![T::one(); k * d];
        let mut target = vec![T::zero(); k * d];
        let rows = shift
            .chunks_exact_mut(d)
            .zip(scale.chunks_exact_mut(d))
            .zip(target.chunks_exact_mut(d));
        for (b, ((shift, scale), target)) in rows.enumerate() {
            if r.seen[b] {
                DiagonalRows {
                    shift,
                    scale,
                    target,
                }
                .fill(
                    &r.mean[b],
                    &r.var[b],
                    &smoothed.mean[b],
                    &smoothed.var[b],
                    self.config.clip,
                );
            }
        }
        let tensor = |v: Vec<T>| -> candle_core::Result<Tensor> {
            Tensor::from_vec(v, (k, d), &Device::Cpu)?
                .to_dtype(self.dtype)?
                .to_device(&self.device)
        };
        Ok(Maps::Diagonal {
            shift: tensor(shift)?,
            scale: tensor(scale)?,
            target: tensor(target)?,
        })
    }

    /// Benchmark support, not a supported API: installs a full-covariance snapshot for `epoch`
    /// whose calibration of bin `b` is `(z − shift[b]) · matrices[b] + target[b]` (`matrices[b]`
    /// is Aᵀ, D×D; `None` passes the bin unchanged), skipping the per-bin eigendecompositions of
    /// [`Fds::end_epoch`] — O(K·D³), impractical at D = 2048 in a benchmark of
    /// [`Fds::calibrate`], whose cost does not depend on the matrices' values. The snapshot's
    /// smoothed statistics are left empty and it is not reproduced by a save and load.
    #[doc(hidden)]
    pub fn install_full_transforms_for_bench(
        &mut self,
        epoch: usize,
        shift: &[Vec<f64>],
        target: &[Vec<f64>],
        matrices: Vec<Option<Tensor>>,
    ) -> candle_core::Result<()> {
        let (k, d) = (self.config.binning.n_bins, self.config.feature_dim);
        if !self.config.is_full() || shift.len() != k || target.len() != k || matrices.len() != k {
            return Err(NnError::shape("full covariance with one map per bin".into()).into());
        }
        let to_tensor = |rows: &[Vec<f64>]| -> candle_core::Result<Tensor> {
            Tensor::from_vec(rows.concat(), (k, d), &Device::Cpu)?
                .to_dtype(self.dtype)?
                .to_device(&self.device)
        };
        let matrices = matrices
            .into_iter()
            .map(|m| {
                m.map(|a| a.to_dtype(self.dtype)?.to_device(&self.device))
                    .transpose()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.snapshot = Some(Snapshot {
            epoch,
            smoothed: SmoothedStats {
                mean: Vec::new(),
                var: Vec::new(),
                cov: Vec::new(),
            },
            maps: Maps::Full {
                shift: to_tensor(shift)?,
                target: to_tensor(target)?,
                matrices,
            },
        });
        Ok(())
    }

    /// Whether [`Fds::calibrate`] changes features in `epoch`.
    pub fn is_active(&self, epoch: usize) -> bool {
        epoch >= self.config.start_smooth && self.snapshot.is_some()
    }

    /// The features a training step should use: with [`StatsSource::Online`] the batch is
    /// first added to the epoch statistics, then it is calibrated as [`Fds::calibrate`] does.
    pub fn train_features(
        &mut self,
        features: &Tensor,
        labels: &Tensor,
        epoch: usize,
    ) -> candle_core::Result<Tensor> {
        if self.config.source == StatsSource::Online {
            self.accumulate(features, labels)?;
        }
        self.calibrate(features, labels, epoch)
    }

    /// Feeds a no-grad pass's uncalibrated features to the epoch statistics with
    /// [`StatsSource::SecondPass`]; a no-op with online statistics (collected by
    /// [`Fds::train_features`]).
    pub fn collect_second_pass(
        &mut self,
        features: &Tensor,
        labels: &Tensor,
    ) -> candle_core::Result<()> {
        match self.config.source {
            StatsSource::SecondPass => self.accumulate(&features.detach(), labels),
            StatsSource::Online => Ok(()),
        }
    }

    /// Calibrates training features (B×D) of `epoch` with their labels; returns `features`
    /// unchanged before `start_smooth` or before any statistics. Out-of-place and
    /// differentiable in `features`. Training only: never call it at inference.
    pub fn calibrate(
        &self,
        features: &Tensor,
        labels: &Tensor,
        epoch: usize,
    ) -> candle_core::Result<Tensor> {
        self.check(features, labels)?;
        let Some(snap) = self.snapshot.as_ref().filter(|_| self.is_active(epoch)) else {
            return Ok(features.clone());
        };
        self.calibrate_with(features, labels, snap, true)
    }

    /// [`Fds::calibrate`] once active: with the fused CPU kernels where they apply (`fused`),
    /// otherwise with generic tensor ops.
    fn calibrate_with(
        &self,
        features: &Tensor,
        labels: &Tensor,
        snap: &Snapshot,
        fused: bool,
    ) -> candle_core::Result<Tensor> {
        let n = features.dim(0)?;
        let bins = self.bins_of(labels)?;
        let dev = features.device();
        let dt = features.dtype();
        if fused
            && dev.is_cpu()
            && self.device.is_cpu()
            && dt == self.dtype
            && matches!(dt, DType::F32 | DType::F64)
        {
            let op = FusedCalibration {
                bins: bins.into(),
                maps: snap.maps.clone(),
                backward: false,
            };
            return features.contiguous()?.apply_op1(op);
        }
        let idx = Tensor::from_vec(bins.iter().map(|&b| b as u32).collect::<Vec<_>>(), n, dev)?;
        let cast = |t: &Tensor| t.to_dtype(dt);
        match &snap.maps {
            Maps::Diagonal {
                shift,
                scale,
                target,
            } => {
                let s = cast(&shift.index_select(&idx, 0)?)?;
                let c = cast(&scale.index_select(&idx, 0)?)?;
                let t = cast(&target.index_select(&idx, 0)?)?;
                features.sub(&s)?.mul(&c)?.add(&t)
            }
            Maps::Full {
                shift,
                target,
                matrices,
            } => {
                let mut groups: Vec<Vec<u32>> = vec![Vec::new(); matrices.len()];
                for (r, &b) in bins.iter().enumerate() {
                    groups[b].push(r as u32);
                }
                let keep: Vec<f32> = bins
                    .iter()
                    .map(|&b| if matrices[b].is_none() { 1.0 } else { 0.0 })
                    .collect();
                let keep = Tensor::from_vec(keep, (n, 1), dev)?.to_dtype(dt)?;
                let mut out = features.broadcast_mul(&keep)?;
                for (b, rows) in groups.iter().enumerate() {
                    let (Some(a), false) = (&matrices[b], rows.is_empty()) else {
                        continue;
                    };
                    let rows = Tensor::from_vec(rows.clone(), rows.len(), dev)?;
                    let z = features.index_select(&rows, 0)?;
                    let mu = cast(&shift.i(b)?)?.unsqueeze(0)?;
                    let mt = cast(&target.i(b)?)?.unsqueeze(0)?;
                    let zc = matmul(&z.broadcast_sub(&mu)?, &cast(a)?)?.broadcast_add(&mt)?;
                    out = out.index_add(&rows, &zc, 0)?;
                }
                Ok(out)
            }
        }
    }
}
