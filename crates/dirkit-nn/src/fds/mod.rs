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

mod config;
mod smooth;
mod stats;
mod transform;

pub use config::{Covariance, EmptyBins, FdsConfig, FullCovariance, ShrinkTarget, StatsSource};
pub use stats::{BinMoments, EpochStats};

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, DType, Device, IndexOp, Layout, Shape, Storage, StorageRef, Tensor,
};
use dirkit_core::{Normalisation, OutOfRange};

use crate::error::NnError;
use smooth::smooth_rows;
use stats::{Accumulator, Groups, parallel_for};
use transform::{DiagonalMap, full_transform};

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
            return Err(NnError::Shape(format!(
                "features have {d} dimensions, FDS was configured for {}",
                self.config.feature_dim
            ))
            .into());
        }
        if labels.elem_count() != b {
            return Err(NnError::Shape(format!(
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
            return Err(NnError::Shape("epoch statistics with another bin count".into()).into());
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
    fn filled(&self, rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
        match self.config.empty_bins {
            EmptyBins::Initial => rows.to_vec(),
            EmptyBins::Nearest => {
                let seen = &self.running.seen;
                (0..rows.len())
                    .map(|b| {
                        let nearest = (0..rows.len())
                            .filter(|&j| seen[j])
                            .min_by_key(|&j| (j.abs_diff(b), j));
                        rows[nearest.unwrap_or(b)].clone()
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
        let to_tensor = |rows: Vec<Vec<f64>>| -> candle_core::Result<Tensor> {
            Tensor::from_vec(rows.concat(), (k, d), &Device::Cpu)?
                .to_dtype(self.dtype)?
                .to_device(&self.device)
        };
        let maps = match self.config.covariance {
            Covariance::Diagonal => {
                let per_bin: Vec<DiagonalMap> = (0..k)
                    .map(|b| {
                        if r.seen[b] {
                            DiagonalMap::new(
                                &r.mean[b],
                                &r.var[b],
                                &smoothed.mean[b],
                                &smoothed.var[b],
                                self.config.clip,
                            )
                        } else {
                            DiagonalMap::identity(d)
                        }
                    })
                    .collect();
                Maps::Diagonal {
                    shift: to_tensor(per_bin.iter().map(|m| m.shift.clone()).collect())?,
                    scale: to_tensor(per_bin.iter().map(|m| m.scale.clone()).collect())?,
                    target: to_tensor(per_bin.iter().map(|m| m.target.clone()).collect())?,
                }
            }
            Covariance::Full(cfg) => {
                let mut matrices = Vec::with_capacity(k);
                let mut shift = vec![vec![0.0; d]; k];
                let mut target = vec![vec![0.0; d]; k];
                for b in 0..k {
                    let a = if r.seen[b] {
                        full_transform(&r.cov[b], &smoothed.cov[b], d, &cfg, self.config.clip)
                    } else {
                        None
                    };
                    matrices.push(match a {
                        Some(a) => {
                            shift[b] = r.mean[b].clone();
                            target[b] = smoothed.mean[b].clone();
                            // nalgebra is column-major: its storage read row-major is Aᵀ.
                            let t = Tensor::from_vec(a.as_slice().to_vec(), (d, d), &Device::Cpu)?;
                            Some(t.to_dtype(self.dtype)?.to_device(&self.device)?)
                        }
                        None => None,
                    });
                }
                Maps::Full {
                    shift: to_tensor(shift)?,
                    target: to_tensor(target)?,
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
            return Err(NnError::Shape("full covariance with one map per bin".into()).into());
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
                    let zc = z
                        .broadcast_sub(&mu)?
                        .matmul(&cast(a)?)?
                        .broadcast_add(&mt)?;
                    out = out.index_add(&rows, &zc, 0)?;
                }
                Ok(out)
            }
        }
    }

    /// The whole state as named tensors (prefix `fds.`), for a checkpoint next to the model's
    /// weights: configuration (JSON bytes), running statistics, the current epoch statistics
    /// and the snapshot's epoch. The calibration maps are recomputed on load, bit for bit.
    pub fn state_tensors(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        let cpu = Device::Cpu;
        let (k, d) = (self.config.binning.n_bins, self.config.feature_dim);
        let json = serde_json::to_vec(&self.config).map_err(candle_core::Error::wrap)?;
        let mut m = HashMap::new();
        let n = json.len();
        m.insert("fds.config_json".into(), Tensor::from_vec(json, n, &cpu)?);
        let flat =
            |rows: &[Vec<f64>], shape: &[usize]| Tensor::from_vec(rows.concat(), shape, &cpu);
        let r = &self.running;
        m.insert(
            "fds.running.seen".into(),
            Tensor::from_vec(
                r.seen.iter().map(|&s| s as u8).collect::<Vec<u8>>(),
                k,
                &cpu,
            )?,
        );
        m.insert(
            "fds.running.n_tracked".into(),
            Tensor::from_vec(
                r.n_tracked.iter().map(|&c| c as i64).collect::<Vec<_>>(),
                k,
                &cpu,
            )?,
        );
        m.insert("fds.running.mean".into(), flat(&r.mean, &[k, d])?);
        m.insert("fds.running.var".into(), flat(&r.var, &[k, d])?);
        if !r.cov.is_empty() {
            m.insert("fds.running.cov".into(), flat(&r.cov, &[k, d, d])?);
        }
        let e = &self.epoch.stats().bins;
        m.insert(
            "fds.epoch.count".into(),
            Tensor::from_vec(
                e.iter().map(|b| b.count as i64).collect::<Vec<_>>(),
                k,
                &cpu,
            )?,
        );
        let rows = |f: &dyn Fn(&BinMoments) -> Vec<f64>| e.iter().map(f).collect::<Vec<_>>();
        m.insert(
            "fds.epoch.mean".into(),
            flat(&rows(&|b| b.mean.clone()), &[k, d])?,
        );
        m.insert(
            "fds.epoch.m2".into(),
            flat(&rows(&|b| b.m2.clone()), &[k, d])?,
        );
        if self.config.is_full() {
            m.insert(
                "fds.epoch.comoment".into(),
                flat(&rows(&|b| b.comoment.clone()), &[k, d, d])?,
            );
        }
        let snap = self.snapshot.as_ref().map_or(-1, |s| s.epoch as i64);
        m.insert("fds.snapshot_epoch".into(), Tensor::new(&[snap], &cpu)?);
        Ok(m)
    }

    /// Rebuilds the state saved by [`Fds::state_tensors`]; the maps go to `device` in `dtype`.
    pub fn from_state_tensors(
        m: &HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Self> {
        let get = |name: &str| {
            m.get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("FDS state lacks {name}")))
        };
        let json: Vec<u8> = get("fds.config_json")?.to_vec1()?;
        let config: FdsConfig = serde_json::from_slice(&json).map_err(candle_core::Error::wrap)?;
        let mut fds = Fds::new(config, device, dtype)?;
        let (k, d) = (fds.config.binning.n_bins, fds.config.feature_dim);
        let rows = |t: &Tensor, w: usize| -> candle_core::Result<Vec<Vec<f64>>> {
            let v: Vec<f64> = t.flatten_all()?.to_vec1()?;
            if v.len() != k * w {
                candle_core::bail!("FDS state: {} values, expected {}", v.len(), k * w);
            }
            Ok(v.chunks(w).map(|c| c.to_vec()).collect())
        };
        let seen: Vec<u8> = get("fds.running.seen")?.to_vec1()?;
        let tracked: Vec<i64> = get("fds.running.n_tracked")?.to_vec1()?;
        fds.running.seen = seen.iter().map(|&s| s != 0).collect();
        fds.running.n_tracked = tracked.iter().map(|&c| c as u64).collect();
        fds.running.mean = rows(get("fds.running.mean")?, d)?;
        fds.running.var = rows(get("fds.running.var")?, d)?;
        if fds.config.is_full() {
            fds.running.cov = rows(get("fds.running.cov")?, d * d)?;
        }
        let count: Vec<i64> = get("fds.epoch.count")?.to_vec1()?;
        let mean = rows(get("fds.epoch.mean")?, d)?;
        let m2 = rows(get("fds.epoch.m2")?, d)?;
        let comoment = if fds.config.is_full() {
            rows(get("fds.epoch.comoment")?, d * d)?
        } else {
            vec![Vec::new(); k]
        };
        for (b, bin) in fds.epoch.stats_mut().bins.iter_mut().enumerate() {
            bin.count = count[b] as u64;
            bin.mean = mean[b].clone();
            bin.m2 = m2[b].clone();
            bin.comoment = comoment[b].clone();
        }
        let snap: Vec<i64> = get("fds.snapshot_epoch")?.to_vec1()?;
        if let Some(&e) = snap.first().filter(|&&e| e >= 0) {
            fds.snapshot = Some(fds.make_snapshot(e as usize)?);
        }
        Ok(fds)
    }

    /// Saves the state to a safetensors file.
    pub fn save(&self, path: impl AsRef<Path>) -> candle_core::Result<()> {
        candle_core::safetensors::save(&self.state_tensors()?, path)
    }

    /// Loads a state saved by [`Fds::save`].
    pub fn load(
        path: impl AsRef<Path>,
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Self> {
        let m = candle_core::safetensors::load(path, &Device::Cpu)?;
        Self::from_state_tensors(&m, device, dtype)
    }
}

/// An f32 or f64 element of the fused calibration kernels.
trait Real:
    Copy
    + Default
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
{
    fn slice(s: &CpuStorage) -> Option<&Vec<Self>>;
    fn storage(v: Vec<Self>) -> CpuStorage;
}

impl Real for f32 {
    fn slice(s: &CpuStorage) -> Option<&Vec<Self>> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Real for f64 {
    fn slice(s: &CpuStorage) -> Option<&Vec<Self>> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// The values of a contiguous CPU tensor of element `T`, borrowed from its read guard.
fn values<'a, T: Real>(g: &'a (StorageRef<'_>, &Layout)) -> candle_core::Result<&'a [T]> {
    match (&*g.0, g.1.contiguous_offsets()) {
        (Storage::Cpu(s), Some((lo, hi))) => match T::slice(s) {
            Some(v) => Ok(&v[lo..hi]),
            None => candle_core::bail!("FDS maps: unexpected dtype"),
        },
        _ => candle_core::bail!("FDS maps: expected contiguous CPU tensors"),
    }
}

/// `acc[k] += Σ_i x[k][i] · a[i]` for the rows `x[k]` (each of length D) and the row-major
/// D × D `a`: `a` is streamed once, row by row, for all rows of `x`. With AVX2 where the CPU
/// has it (twice the vector width of the x86-64 baseline; the same operations in the same
/// order, so the same bits).
fn rows_times_matrix<T: Real>(x: &[T], a: &[T], acc: &mut [T], d: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { rows_times_matrix_avx2(x, a, acc, d) };
    }
    rows_times_matrix_portable(x, a, acc, d);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_times_matrix_avx2<T: Real>(x: &[T], a: &[T], acc: &mut [T], d: usize) {
    rows_times_matrix_portable(x, a, acc, d);
}

#[inline(always)]
fn rows_times_matrix_portable<T: Real>(x: &[T], a: &[T], acc: &mut [T], d: usize) {
    // Four rows of `a` per pass over `acc` (the sum per element still runs over i in order).
    let mut rows = a.chunks_exact(d).enumerate();
    while rows.len() >= 4 {
        let [(i, a0), (_, a1), (_, a2), (_, a3)] =
            std::array::from_fn(|_| rows.next().expect("four rows left"));
        for (xk, acck) in x.chunks_exact(d).zip(acc.chunks_exact_mut(d)) {
            let (v0, v1, v2, v3) = (xk[i], xk[i + 1], xk[i + 2], xk[i + 3]);
            for ((((o, &w0), &w1), &w2), &w3) in acck.iter_mut().zip(a0).zip(a1).zip(a2).zip(a3) {
                *o = (((*o + v0 * w0) + v1 * w1) + v2 * w2) + v3 * w3;
            }
        }
    }
    for (i, arow) in rows {
        for (xk, acck) in x.chunks_exact(d).zip(acc.chunks_exact_mut(d)) {
            let v = xk[i];
            for (o, &w) in acck.iter_mut().zip(arow) {
                *o = *o + v * w;
            }
        }
    }
}

/// `out[k][i] = Σ_j g[k][j] · a[i][j]`: the rows of `g` times `aᵀ`, `a` streamed row by row
/// (the backward of [`rows_times_matrix`]; dot products in eight interleaved partial sums).
fn rows_times_transpose<T: Real>(g: &[T], a: &[T], out: &mut [T], d: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { rows_times_transpose_avx2(g, a, out, d) };
    }
    rows_times_transpose_portable(g, a, out, d);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_times_transpose_avx2<T: Real>(g: &[T], a: &[T], out: &mut [T], d: usize) {
    rows_times_transpose_portable(g, a, out, d);
}

#[inline(always)]
fn rows_times_transpose_portable<T: Real>(g: &[T], a: &[T], out: &mut [T], d: usize) {
    const LANES: usize = 8;
    for (i, arow) in a.chunks_exact(d).enumerate() {
        for (gk, ok) in g.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mut lanes = [T::default(); LANES];
            let (ga, gr) = gk.split_at(d - d % LANES);
            let (aa, ar) = arow.split_at(d - d % LANES);
            for (gc, ac) in ga.chunks_exact(LANES).zip(aa.chunks_exact(LANES)) {
                for q in 0..LANES {
                    lanes[q] = lanes[q] + gc[q] * ac[q];
                }
            }
            let mut s = lanes.iter().fold(T::default(), |s, &l| s + l);
            for (&x, &w) in gr.iter().zip(ar) {
                s = s + x * w;
            }
            ok[i] = s;
        }
    }
}

/// Calibration of a CPU f32/f64 batch in one pass, bit for bit what the generic tensor ops give
/// in the diagonal mode: `(z − shift_b)·scale_b + target_b` per element; in the full mode
/// `(z − μ_b)Aᵀ_b + μ̃_b` per row, each bin's matrix streamed once for all its rows. Its
/// backward (`backward: true`, applied to the output gradient) is `g·scale_b`, or `g·A_b`.
#[derive(Clone)]
struct FusedCalibration {
    bins: Arc<[usize]>,
    maps: Maps,
    backward: bool,
}

impl FusedCalibration {
    fn run<T: Real>(&self, z: &[T], d: usize) -> candle_core::Result<Vec<T>> {
        // Threads only where the work is large (the full mode reads a D × D matrix per bin):
        // spawning costs tens of microseconds, and on a busy machine a helper thread that waits
        // for a core costs far more than the diagonal pass over a batch (~0.2 ms at 256 × 2048).
        let large = match &self.maps {
            Maps::Diagonal { .. } => z.len() >= 1 << 21,
            Maps::Full { .. } => z.len() * d >= 1 << 21,
        };
        let threads = if large {
            candle_core::utils::get_num_threads()
        } else {
            1
        };
        let mut out = vec![T::default(); z.len()];
        match &self.maps {
            Maps::Diagonal {
                shift,
                scale,
                target,
            } => {
                let (sg, cg, tg) = (
                    shift.storage_and_layout(),
                    scale.storage_and_layout(),
                    target.storage_and_layout(),
                );
                let (s, c, t) = (values::<T>(&sg)?, values::<T>(&cg)?, values::<T>(&tg)?);
                let rows: Vec<_> = out
                    .chunks_mut(d)
                    .zip(z.chunks(d))
                    .zip(self.bins.iter())
                    .collect();
                parallel_for(
                    rows,
                    threads,
                    |_| 1,
                    |((o, z), &b)| {
                        let r = b * d..(b + 1) * d;
                        let (s, c, t) = (&s[r.clone()], &c[r.clone()], &t[r]);
                        if self.backward {
                            for ((o, &g), &c) in o.iter_mut().zip(z).zip(c) {
                                *o = g * c;
                            }
                        } else {
                            for ((((o, &z), &s), &c), &t) in
                                o.iter_mut().zip(z).zip(s).zip(c).zip(t)
                            {
                                *o = (z - s) * c + t;
                            }
                        }
                    },
                );
            }
            Maps::Full {
                shift,
                target,
                matrices,
            } => {
                let groups = Groups::new(&self.bins, matrices.len());
                let guards: Vec<Option<(StorageRef<'_>, &Layout)>> = matrices
                    .iter()
                    .map(|m| m.as_ref().map(Tensor::storage_and_layout))
                    .collect();
                let (sg, tg) = (shift.storage_and_layout(), target.storage_and_layout());
                let (s, t) = (values::<T>(&sg)?, values::<T>(&tg)?);
                let mut work = Vec::new();
                for (b, g) in guards.iter().enumerate() {
                    let rows = groups.rows(b);
                    match g {
                        Some(g) if !rows.is_empty() => work.push((
                            b,
                            rows,
                            values::<T>(g)?,
                            vec![T::default(); rows.len() * d],
                        )),
                        // Bins without a matrix pass unchanged (so does their gradient).
                        _ => {
                            for &r in rows {
                                out[r * d..(r + 1) * d].copy_from_slice(&z[r * d..(r + 1) * d]);
                            }
                        }
                    }
                }
                parallel_for(
                    work.iter_mut().collect(),
                    threads,
                    |w| w.1.len() + 2,
                    |(b, rows, a, acc)| {
                        let mut x = Vec::with_capacity(rows.len() * d);
                        for &r in rows.iter() {
                            x.extend_from_slice(&z[r * d..(r + 1) * d]);
                        }
                        if self.backward {
                            rows_times_transpose(&x, a, acc, d);
                            return;
                        }
                        let (mu, mt) = (&s[*b * d..(*b + 1) * d], &t[*b * d..(*b + 1) * d]);
                        for xk in x.chunks_exact_mut(d) {
                            for (x, &m) in xk.iter_mut().zip(mu) {
                                *x = *x - m;
                            }
                        }
                        rows_times_matrix(&x, a, acc, d);
                        for ak in acc.chunks_exact_mut(d) {
                            for (o, &m) in ak.iter_mut().zip(mt) {
                                *o = *o + m;
                            }
                        }
                    },
                );
                for (_, rows, _, acc) in &work {
                    for (&r, v) in rows.iter().zip(acc.chunks_exact(d)) {
                        out[r * d..(r + 1) * d].copy_from_slice(v);
                    }
                }
            }
        }
        Ok(out)
    }
}

impl CustomOp1 for FusedCalibration {
    fn name(&self) -> &'static str {
        if self.backward {
            "fds-calibration-backward"
        } else {
            "fds-calibration"
        }
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, d) = layout.shape().dims2()?;
        let Some((lo, hi)) = layout.contiguous_offsets() else {
            candle_core::bail!("fds-calibration: non-contiguous input");
        };
        if n != self.bins.len() {
            candle_core::bail!("fds-calibration: {n} rows for {} bins", self.bins.len());
        }
        let out = match storage {
            CpuStorage::F32(z) => f32::storage(self.run(&z[lo..hi], d)?),
            CpuStorage::F64(z) => f64::storage(self.run(&z[lo..hi], d)?),
            _ => candle_core::bail!("fds-calibration: f32 or f64 only"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let op = Self {
            backward: true,
            ..self.clone()
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// Seeded values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                2.0 * ((s >> 11) as f64 / (1u64 << 53) as f64) - 1.0
            })
            .collect()
    }

    /// An FDS after one epoch of 120 rows over 10 bins (D = 40), and a batch of 64 rows whose
    /// labels include never-seen and single-sample bins.
    fn fitted(covariance: Covariance, dtype: DType) -> (Fds, Tensor, Tensor) {
        let d = 40;
        let mut cfg = FdsConfig::reference(d, 12, 0);
        cfg.covariance = covariance;
        let mut fds = Fds::new(cfg, &Device::Cpu, dtype).unwrap();
        // Labels 0..9 with bin 9 single-sample; bins 10 and 11 never seen.
        let labels: Vec<f64> = (0..120)
            .map(|i| if i == 119 { 9.0 } else { (i % 9) as f64 })
            .collect();
        let z: Vec<f64> = values(120 * d, 1)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.0 + labels[i / d] * 0.1) + labels[i / d])
            .collect();
        let z = Tensor::from_vec(z, (120, d), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        fds.accumulate(&z, &Tensor::new(labels, &Device::Cpu).unwrap())
            .unwrap();
        fds.end_epoch(0).unwrap();
        let yb: Vec<f64> = (0..64).map(|i| (i % 12) as f64).collect();
        let zb = Tensor::from_vec(values(64 * d, 2), (64, d), &Device::Cpu).unwrap();
        (
            fds,
            zb.to_dtype(dtype).unwrap(),
            Tensor::new(yb, &Device::Cpu).unwrap(),
        )
    }

    /// Calibrated rows and the gradient of a weighted sum with respect to the features.
    type Run = (Vec<Vec<f64>>, Vec<Vec<f64>>);

    /// [`Run`] with the fused kernels, then with the tensor ops.
    fn both(fds: &Fds, z: &Tensor, y: &Tensor) -> [Run; 2] {
        let snap = fds.snapshot.as_ref().unwrap();
        [true, false].map(|fused| {
            let v = Var::from_tensor(z).unwrap();
            let out = fds.calibrate_with(v.as_tensor(), y, snap, fused).unwrap();
            // A non-uniform upstream gradient, so that the backward's matrix product matters.
            let w = Tensor::from_vec(values(out.elem_count(), 3), out.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(out.dtype())
                .unwrap();
            let grads = out.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            let g = grads.get(v.as_tensor()).unwrap();
            let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
            (f64s(&out), f64s(g))
        })
    }

    #[test]
    fn fds_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Fds>();
    }

    #[test]
    fn fused_diagonal_calibration_is_bit_identical_to_tensor_ops() {
        for dt in [DType::F32, DType::F64] {
            let (fds, z, y) = fitted(Covariance::Diagonal, dt);
            let [fused, generic] = both(&fds, &z, &y);
            assert_eq!(fused, generic, "{dt:?}");
        }
    }

    #[test]
    fn fused_full_calibration_matches_tensor_ops() {
        for (dt, tol) in [(DType::F32, 1e-5), (DType::F64, 1e-12)] {
            let (fds, z, y) = fitted(Covariance::Full(FullCovariance::default()), dt);
            let [(out_f, g_f), (out_g, g_g)] = both(&fds, &z, &y);
            for (a, b) in out_f.iter().flatten().zip(out_g.iter().flatten()) {
                assert!(
                    (a - b).abs() <= tol * (1.0 + b.abs()),
                    "{dt:?} output {a} vs {b}"
                );
            }
            for (a, b) in g_f.iter().flatten().zip(g_g.iter().flatten()) {
                assert!(
                    (a - b).abs() <= tol * (1.0 + b.abs()),
                    "{dt:?} gradient {a} vs {b}"
                );
            }
            // Never-seen and single-sample bins pass unchanged, gradient included.
            let zv = z.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
            for r in [9, 10, 11, 21, 22, 23] {
                assert_eq!(out_f[r], zv[r], "row {r}");
            }
        }
    }
}
