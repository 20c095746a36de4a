//! Saving and restoring the whole FDS state (configuration, running and epoch statistics, the
//! snapshot's epoch) as named tensors and safetensors files.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::*;

impl Fds {
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
