//! VIR's probabilistic re-weighting module (PRM): feature distribution smoothing of a
//! *variational* latent (Wang & Wang, NeurIPS 2023, official `prm.py`). Each label bin keeps
//! running statistics of its samples' latent means μ and variances v; they are smoothed across
//! neighbouring bins, and a training latent `(μ, v)` of a sample in bin b is calibrated to the
//! smoothed statistics of b.
//!
//! Per bin, from the n latents of an epoch (D dimensions each):
//! - `m_μ = mean_i μ_i` and `m_v = Σ_i v_i / n²` (the mean latent and its variance),
//! - `s_μ = mean_i (v_i + μ_i²) − m_v − m_μ²` (the spread of the latent across the bin's samples),
//! - `s_v = 2 s_μ² / (n − 1)` (0 for one sample);
//!
//! kept as running statistics with momentum (the first update replaces). Smoothing convolves
//! `m_μ`, `s_μ` with the sum-normalised kernel w and `m_v`, `s_v` with w² (the variance of a
//! weighted sum), with reflect padding. Calibration, with `f = clip(s̃_μ / s_μ, 0.1, 10)` per
//! dimension (`~`: smoothed):
//!
//! `μ' = (μ − m_μ) √f + m̃_μ`, `v' = (v + m_v) √f + m̃_v`.
//!
//! Bins never updated keep the official initial statistics (`m_μ = 0`, `m_v = s_μ = s_v = 1`);
//! a bin whose `Σ s_μ` is below 1e-10 and dimensions with `s_μ = 0` pass unchanged (the official
//! code drops such dimensions from the batch). As dirkit's FDS, the statistics of epoch e and
//! their smoothing are one snapshot, used from the next epoch on (the official module lags one
//! more epoch).

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use dirkit_core::{Binning, Kernel, Normalisation, OutOfRange};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, bad, invalid};
use crate::fds::smooth::smooth_rows;

/// Settings of [`Prm`]; the defaults of the official AgeDB-DIR run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrmConfig {
    /// Label bins; labels outside pool into the first / last bin.
    pub binning: Binning,
    /// Smoothing kernel over the bins (sum-normalised; default gaussian ks 5, σ 2).
    pub kernel: Kernel,
    /// Momentum m of the running statistics (R ← (1 − m) E + m R; official 0.9).
    pub momentum: f64,
    /// First epoch (0-based) whose statistics update the running statistics.
    pub start_update: usize,
    /// First epoch (0-based) that is calibrated.
    pub start_smooth: usize,
    /// Clip [low, high] of the variance ratio (official [0.1, 10]).
    pub clip: (f64, f64),
}

impl PrmConfig {
    /// One bin per integer label in `bucket_start..bucket_num` (official: 3..100 for AgeDB).
    pub fn reference(bucket_num: usize, bucket_start: usize) -> Self {
        Self {
            binning: Binning {
                start: bucket_start as f64,
                width: 1.0,
                n_bins: bucket_num.saturating_sub(bucket_start),
            },
            kernel: Kernel::Gaussian { ks: 5, sigma: 2.0 },
            momentum: 0.9,
            start_update: 0,
            start_smooth: 1,
            clip: (0.1, 10.0),
        }
    }

    /// Checks the bins, kernel, momentum and clip.
    pub fn check(&self) -> candle_core::Result<()> {
        self.binning.validate().map_err(NnError::from)?;
        self.kernel.validate().map_err(NnError::from)?;
        if self.binning.n_bins <= self.kernel.half_width() {
            return invalid(
                "n_bins",
                self.binning.n_bins,
                "more bins than the kernel's half width (reflect padding)",
            );
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return invalid("momentum", self.momentum, "a number in [0, 1)");
        }
        let (lo, hi) = self.clip;
        if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
            return invalid("clip", format!("({lo}, {hi})"), "0 < low <= high, finite");
        }
        Ok(())
    }
}

/// The calibration snapshot: per bin and dimension, the statistics and their smoothing.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    mean_mu: Vec<f64>,
    mean_var: Vec<f64>,
    spread: Vec<f64>,
    smooth_mean_mu: Vec<f64>,
    smooth_mean_var: Vec<f64>,
    smooth_spread: Vec<f64>,
}

/// The probabilistic re-weighting module: see the module documentation.
#[derive(Debug, Clone)]
pub struct Prm {
    config: PrmConfig,
    dim: usize,
    /// Running `[m_μ | m_v]` and `[s_μ | s_v]` per bin, each bins × 2D.
    running_mean: Vec<f64>,
    running_var: Vec<f64>,
    /// Updates applied so far.
    updates: usize,
    /// This epoch's sums per bin: n, Σμ, Σv, Σμ².
    count: Vec<u64>,
    sums: Vec<f64>,
    snapshot: Option<Snapshot>,
}

impl Prm {
    /// An empty module for latents of `dim` dimensions.
    pub fn new(config: PrmConfig, dim: usize) -> candle_core::Result<Self> {
        config.check()?;
        if dim == 0 {
            return invalid("dim", 0, "at least 1");
        }
        let nb = config.binning.n_bins;
        let mut running_mean = vec![0.0; nb * 2 * dim];
        for b in 0..nb {
            running_mean[b * 2 * dim + dim..(b + 1) * 2 * dim].fill(1.0);
        }
        Ok(Self {
            dim,
            running_mean,
            running_var: vec![1.0; nb * 2 * dim],
            updates: 0,
            count: vec![0; nb],
            sums: vec![0.0; nb * 3 * dim],
            snapshot: None,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PrmConfig {
        &self.config
    }

    /// Bins of a batch's labels (clipped into the end bins).
    fn bins(&self, labels: &Tensor) -> candle_core::Result<Vec<usize>> {
        let y: Vec<f64> = labels.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
        y.iter()
            .enumerate()
            .map(|(i, &v)| {
                self.config
                    .binning
                    .bin(v, i, OutOfRange::Clip)
                    .map_err(|e| NnError::from(e).into())
                    .map(|b| b.expect("clipped labels always have a bin"))
            })
            .collect()
    }

    fn host(&self, t: &Tensor, what: &str, n: usize) -> candle_core::Result<Vec<f64>> {
        if t.dims() != [n, self.dim] {
            return Err(NnError::shape(format!(
                "prm: {what} must be ({n}, {}), got {:?}",
                self.dim,
                t.dims()
            ))
            .into());
        }
        t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
    }

    /// Adds a batch of latent means and variances (B, D) with labels (B) to this epoch's sums.
    pub fn accumulate(
        &mut self,
        mean: &Tensor,
        var: &Tensor,
        labels: &Tensor,
    ) -> candle_core::Result<()> {
        let bins = self.bins(labels)?;
        let n = bins.len();
        let (mu, v) = (
            self.host(&mean.detach(), "means", n)?,
            self.host(&var.detach(), "variances", n)?,
        );
        let d = self.dim;
        for (i, &b) in bins.iter().enumerate() {
            self.count[b] += 1;
            let s = &mut self.sums[b * 3 * d..(b + 1) * 3 * d];
            for k in 0..d {
                let (m, vv) = (mu[i * d + k], v[i * d + k]);
                s[k] += m;
                s[d + k] += vv;
                s[2 * d + k] += m * m;
            }
        }
        Ok(())
    }

    /// End of `epoch`: from `start_update` on, this epoch's statistics update the running ones
    /// and a new calibration snapshot is smoothed from them; the sums restart.
    pub fn end_epoch(&mut self, epoch: usize) -> candle_core::Result<()> {
        let (d, nb) = (self.dim, self.config.binning.n_bins);
        if epoch >= self.config.start_update && self.count.iter().any(|&c| c > 0) {
            let factor = if self.updates == 0 {
                0.0
            } else {
                self.config.momentum
            };
            for b in 0..nb {
                let n = self.count[b];
                if n == 0 {
                    continue;
                }
                let nf = n as f64;
                let s = &self.sums[b * 3 * d..(b + 1) * 3 * d];
                let rm = &mut self.running_mean[b * 2 * d..(b + 1) * 2 * d];
                let rv = &mut self.running_var[b * 2 * d..(b + 1) * 2 * d];
                for k in 0..d {
                    let mean_mu = s[k] / nf;
                    let mean_var = s[d + k] / (nf * nf);
                    let spread = s[d + k] / nf - mean_var + s[2 * d + k] / nf - mean_mu * mean_mu;
                    let spread_var = if n > 1 {
                        2.0 * spread * spread / (nf - 1.0)
                    } else {
                        0.0
                    };
                    let ema = |old: f64, new: f64| (1.0 - factor) * new + factor * old;
                    rm[k] = ema(rm[k], mean_mu);
                    rm[d + k] = ema(rm[d + k], mean_var);
                    rv[k] = ema(rv[k], spread);
                    rv[d + k] = ema(rv[d + k], spread_var);
                }
            }
            self.updates += 1;
            self.snapshot = Some(self.smooth()?);
        }
        self.count.fill(0);
        self.sums.fill(0.0);
        Ok(())
    }

    fn smooth(&self) -> candle_core::Result<Snapshot> {
        let (d, nb) = (self.dim, self.config.binning.n_bins);
        let w = self
            .config
            .kernel
            .window(Normalisation::Sum)
            .map_err(NnError::from)?;
        let w2: Vec<f64> = w.iter().map(|x| x * x).collect();
        let part = |src: &[f64], half: usize| -> Vec<Vec<f64>> {
            (0..nb)
                .map(|b| src[b * 2 * d + half * d..b * 2 * d + (half + 1) * d].to_vec())
                .collect()
        };
        let (mean_mu, mean_var) = (part(&self.running_mean, 0), part(&self.running_mean, 1));
        let spread = part(&self.running_var, 0);
        Ok(Snapshot {
            smooth_mean_mu: smooth_rows(&mean_mu, &w).concat(),
            smooth_mean_var: smooth_rows(&mean_var, &w2).concat(),
            smooth_spread: smooth_rows(&spread, &w).concat(),
            mean_mu: mean_mu.concat(),
            mean_var: mean_var.concat(),
            spread: spread.concat(),
        })
    }

    /// Whether `epoch` is calibrated (from `start_smooth` on, once statistics exist).
    pub fn is_active(&self, epoch: usize) -> bool {
        epoch >= self.config.start_smooth && self.snapshot.is_some()
    }

    /// Calibrated latent means and variances of a training batch (B, D) with labels (B) at
    /// `epoch`; unchanged before the module is active. Differentiable in both.
    pub fn calibrate(
        &self,
        mean: &Tensor,
        var: &Tensor,
        labels: &Tensor,
        epoch: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let Some(s) = self.snapshot.as_ref().filter(|_| self.is_active(epoch)) else {
            return Ok((mean.clone(), var.clone()));
        };
        let bins = self.bins(labels)?;
        let (n, d) = (bins.len(), self.dim);
        if mean.dims() != [n, d] || var.dims() != [n, d] {
            return Err(NnError::shape(format!(
                "prm: means {:?} and variances {:?} for {n} labels of {d} dimensions",
                mean.dims(),
                var.dims()
            ))
            .into());
        }
        let (lo, hi) = self.config.clip;
        let mut scale = vec![1.0; n * d];
        let mut shift_mu = vec![0.0; n * d];
        let mut off_mu = vec![0.0; n * d];
        let mut shift_var = vec![0.0; n * d];
        let mut off_var = vec![0.0; n * d];
        for (i, &b) in bins.iter().enumerate() {
            let row = b * d..(b + 1) * d;
            if s.spread[row.clone()].iter().sum::<f64>() < 1e-10 {
                continue;
            }
            for k in 0..d {
                let (j, r) = (i * d + k, b * d + k);
                if s.spread[r] == 0.0 {
                    continue;
                }
                scale[j] = (s.smooth_spread[r] / s.spread[r]).clamp(lo, hi).sqrt();
                shift_mu[j] = s.mean_mu[r];
                off_mu[j] = s.smooth_mean_mu[r];
                shift_var[j] = s.mean_var[r];
                off_var[j] = s.smooth_mean_var[r];
            }
        }
        let t = |v: Vec<f64>| Tensor::from_vec(v, (n, d), mean.device())?.to_dtype(mean.dtype());
        let scale = t(scale)?;
        let mu = ((mean - t(shift_mu)?)? * &scale)?.add(&t(off_mu)?)?;
        let v = ((var + t(shift_var)?)? * &scale)?.add(&t(off_var)?)?;
        Ok((mu, v))
    }

    /// The state a checkpoint needs (f64 on the CPU): running statistics, updates, snapshot.
    pub fn state_tensors(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        let (d, nb) = (self.dim, self.config.binning.n_bins);
        let dev = candle_core::Device::Cpu;
        let mut m = HashMap::new();
        m.insert(
            "prm.running_mean".into(),
            Tensor::from_vec(self.running_mean.clone(), (nb, 2 * d), &dev)?,
        );
        m.insert(
            "prm.running_var".into(),
            Tensor::from_vec(self.running_var.clone(), (nb, 2 * d), &dev)?,
        );
        m.insert(
            "prm.updates".into(),
            Tensor::new(&[self.updates as f64], &dev)?,
        );
        if let Some(s) = &self.snapshot {
            let all = [
                &s.mean_mu,
                &s.mean_var,
                &s.spread,
                &s.smooth_mean_mu,
                &s.smooth_mean_var,
                &s.smooth_spread,
            ]
            .iter()
            .flat_map(|v| v.iter().copied())
            .collect::<Vec<f64>>();
            m.insert(
                "prm.snapshot".into(),
                Tensor::from_vec(all, (6, nb, d), &dev)?,
            );
        }
        Ok(m)
    }

    /// Restores [`Prm::state_tensors`].
    pub fn load_state_tensors(&mut self, m: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let (d, nb) = (self.dim, self.config.binning.n_bins);
        let get = |k: &str, want: &[usize]| -> candle_core::Result<Vec<f64>> {
            let t = m
                .get(k)
                .ok_or_else(|| bad("prm state", k.to_string(), "present"))?;
            if t.dims() != want {
                return Err(NnError::shape(format!(
                    "prm state {k}: {:?}, expected {want:?}",
                    t.dims()
                ))
                .into());
            }
            t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
        };
        self.running_mean = get("prm.running_mean", &[nb, 2 * d])?;
        self.running_var = get("prm.running_var", &[nb, 2 * d])?;
        self.updates = get("prm.updates", &[1])?[0] as usize;
        self.snapshot = if m.contains_key("prm.snapshot") {
            let all = get("prm.snapshot", &[6, nb, d])?;
            let part = |i: usize| all[i * nb * d..(i + 1) * nb * d].to_vec();
            Some(Snapshot {
                mean_mu: part(0),
                mean_var: part(1),
                spread: part(2),
                smooth_mean_mu: part(3),
                smooth_mean_var: part(4),
                smooth_spread: part(5),
            })
        } else {
            None
        };
        self.count.fill(0);
        self.sums.fill(0.0);
        Ok(())
    }
}
