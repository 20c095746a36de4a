//! Training speed of a configuration: data loading and the training step timed separately on
//! the run's own batches (the `--bench` mode of the age-estimation example).

use std::time::Instant;

use candle_core::Device;
use dirkit_data::dataset::epoch_batches;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::data::RunData;
use crate::error::{RecipeError, Result};
use crate::model::Model;

/// Timings of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    /// Batch size.
    pub batch_size: usize,
    /// Input side in pixels.
    pub image_size: u32,
    /// Timed steps.
    pub steps: usize,
    /// Median milliseconds to decode, resize, augment and stack one batch (rayon-parallel).
    pub load_ms: f64,
    /// Median milliseconds of one training step (forward with batch norm in training mode and
    /// FDS calibration when configured, loss, backward, Adam; RnC pre-training: both views).
    pub step_ms: f64,
    /// Training images per second of the step alone.
    pub step_images_per_second: f64,
    /// Images per second of the epoch loop, where loading overlaps the step: `batch /
    /// max(load, step)`.
    pub pipeline_images_per_second: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// Times `steps` training steps (after `warmup` untimed ones) of `config` on `data`. With FDS,
/// statistics are first collected from the warm-up batches and the steps run in epoch 1, so
/// that they include the calibration. With Rank-N-Contrast the steps are its pre-training
/// steps (two views of each batch through the backbone, the RnC loss).
pub fn measure(
    config: &RunConfig,
    data: &RunData,
    device: &Device,
    warmup: usize,
    steps: usize,
) -> Result<Speed> {
    if steps == 0 {
        return Err(RecipeError::config("the benchmark needs at least one step"));
    }
    let ages = data.train.ages();
    let mut model = Model::new(config, &ages, device)?;
    let order = epoch_batches(data.train.len(), config.batch_size, config.seed, 0, true)?;
    if order.len() < warmup + steps {
        return Err(RecipeError::config(format!(
            "the training set has {} full batches of {}; the benchmark needs {}",
            order.len(),
            config.batch_size,
            warmup + steps
        )));
    }
    let to_tensors = |b| crate::run::tensors(b, device);
    let epoch = usize::from(config.fds.is_some());
    if config.fds.is_some() {
        for idx in order.iter().take(warmup.max(1)) {
            let (x, y) = to_tensors(data.train.load(
                idx,
                &data.transform,
                Some((config.seed, 0)),
            )?)?;
            model.collect_fds_stats(&x, &y)?;
        }
        model.end_epoch(0)?;
    }
    // Rank-N-Contrast's pre-training steps take a second view of each batch.
    let pretraining = model.is_pretraining(epoch);
    let (mut load, mut step) = (Vec::new(), Vec::new());
    for (i, idx) in order.iter().take(warmup + steps).enumerate() {
        let t = Instant::now();
        let batch = data
            .train
            .load(idx, &data.transform, Some((config.seed, epoch)))?;
        let view2 = if pretraining {
            Some(data.train.load(
                idx,
                &data.transform,
                Some((config.seed ^ crate::run::SECOND_VIEW_SALT, epoch)),
            )?)
        } else {
            None
        };
        let load_s = t.elapsed().as_secs_f64();
        let (x, y) = to_tensors(batch)?;
        let t = Instant::now();
        // Reading the loss waits for the device to finish the step.
        match view2 {
            Some(b2) => {
                let (x2, _) = to_tensors(b2)?;
                model.pretrain_step(&x, &x2, &y)?.to_scalar::<f32>()?
            }
            None => model.train_step(&x, &y, epoch)?.to_scalar::<f32>()?,
        };
        let step_s = t.elapsed().as_secs_f64();
        if i >= warmup {
            load.push(load_s);
            step.push(step_s);
        }
    }
    let (load_s, step_s) = (median(&mut load), median(&mut step));
    let bs = config.batch_size as f64;
    Ok(Speed {
        batch_size: config.batch_size,
        image_size: config.image_size,
        steps,
        load_ms: load_s * 1e3,
        step_ms: step_s * 1e3,
        step_images_per_second: bs / step_s,
        pipeline_images_per_second: bs / load_s.max(step_s),
    })
}

/// The threads line of a bench table: `RAYON_NUM_THREADS`, or all cores.
fn threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into())
}

/// Images/s of `base` (FDS on) and of ResNet-18 at 64 px (batch 64) and 224 px (batch 16),
/// data loading and the step apart, `steps` timed steps each after one warm-up: the text table
/// of the example's `--bench`.
pub fn throughput_table(base: &RunConfig, steps: usize, dev: &Device) -> Result<String> {
    let with_fds = |mut c: RunConfig| {
        if c.fds.is_none() {
            c.fds = Some(dirkit_nn::fds::FdsConfig::new(
                c.arch.config().feature_dim(),
            ));
        }
        c
    };
    let mut cases = vec![("this configuration", with_fds(base.clone()))];
    for (name, size, batch) in [("ResNet-18 64 px", 64, 64), ("ResNet-18 224 px", 224, 16)] {
        let c = RunConfig {
            arch: crate::config::Arch::Resnet18,
            image_size: size,
            batch_size: batch,
            fds: None,
            ..base.clone()
        };
        cases.push((name, with_fds(c)));
    }
    let mut t = format!(
        "threads: {} (RAYON_NUM_THREADS), device {dev:?}, {steps} timed steps each after 1 \
         warm-up\n\n{:<20} {:>6} {:>6} {:>10} {:>10} {:>12} {:>12}\n",
        threads(),
        "configuration",
        "px",
        "batch",
        "load ms",
        "step ms",
        "step img/s",
        "epoch img/s"
    );
    let mut data: Option<(u32, RunData)> = None;
    for (name, config) in cases {
        let d = match data.take() {
            Some((size, d)) if size == config.image_size => d,
            _ => RunData::load(&config)?,
        };
        let s = measure(&config, &d, dev, 1, steps)?;
        t.push_str(&format!(
            "{:<20} {:>6} {:>6} {:>10.1} {:>10.1} {:>12.1} {:>12.1}\n",
            name,
            s.image_size,
            s.batch_size,
            s.load_ms,
            s.step_ms,
            s.step_images_per_second,
            s.pipeline_images_per_second
        ));
        data = Some((config.image_size, d));
    }
    Ok(t)
}

/// The methods of the pairwise-loss bench: plain L1, L1 + ConR, and Rank-N-Contrast's
/// pre-training step on two views.
pub const PAIRWISE: [&str; 3] = ["L1", "L1 + ConR", "RnC (2 views)"];

/// `base` with pairwise method `i` of [`PAIRWISE`] (L1 loss, no other DIR setting) at `batch`.
fn pairwise_config(base: &RunConfig, i: usize, batch: usize) -> RunConfig {
    RunConfig {
        loss: crate::config::LossSpec::L1,
        reweight: None,
        fds: None,
        ranksim: None,
        conr: (i == 1).then(dirkit_nn::loss::conr::ConrConfig::default),
        rnc: (i == 2).then(|| crate::config::RncSpec {
            pretrain_epochs: 1,
            loss: dirkit_nn::loss::rnc::RncConfig::default(),
            fine_tune: false,
            probe_lr: 0.05,
        }),
        batch_size: batch,
        epochs: base.epochs.max(2),
        ..base.clone()
    }
}

/// Step time of ConR and RnC against plain L1 on `base`'s backbone at batch 64 and 256, per
/// image of the batch (RnC's step carries two views): the text table of `--bench-pairwise`.
pub fn pairwise_table(base: &RunConfig, steps: usize, dev: &Device) -> Result<String> {
    let data = RunData::load(base)?;
    let mut t = format!(
        "{:?} at {} px, threads: {} (RAYON_NUM_THREADS), device {dev:?}, {steps} timed steps \
         each after 1 warm-up\n\n{:<16} {:>6} {:>10} {:>12} {:>16}\n",
        base.arch,
        base.image_size,
        threads(),
        "method",
        "batch",
        "step ms",
        "step img/s",
        "vs L1 per image"
    );
    for batch in [64, 256] {
        let mut plain = f64::NAN;
        for (i, name) in PAIRWISE.iter().enumerate() {
            let s = measure(&pairwise_config(base, i, batch), &data, dev, 1, steps)?;
            let per_image = s.step_ms / batch as f64 / if i == 2 { 2.0 } else { 1.0 };
            if i == 0 {
                plain = per_image;
            }
            t.push_str(&format!(
                "{:<16} {:>6} {:>10.1} {:>12.1} {:>+15.1}%\n",
                name,
                batch,
                s.step_ms,
                s.step_images_per_second,
                100.0 * (per_image / plain - 1.0)
            ));
        }
    }
    Ok(t)
}

/// The process's peak resident memory in MiB (Linux's `VmHWM`; `None` elsewhere).
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One warm-up and one timed step of pairwise method `i` at batch 1024, then this process's
/// peak memory, as one line. Run it in a fresh process per method, so that one method's freed
/// memory does not hide another's peak.
pub fn pairwise_memory(base: &RunConfig, i: usize, dev: &Device) -> Result<String> {
    if i >= PAIRWISE.len() {
        return Err(RecipeError::config(format!(
            "pairwise method {i}: expected 0 to {}",
            PAIRWISE.len() - 1
        )));
    }
    let c = pairwise_config(base, i, 1024);
    let data = RunData::load(&c)?;
    let s = measure(&c, &data, dev, 1, 1)?;
    Ok(match peak_memory_mib() {
        Some(p) => format!("{p:>8.0} MiB peak, step {:.0} ms", s.step_ms),
        None => format!("(no /proc/self/status here) step {:.0} ms", s.step_ms),
    })
}
