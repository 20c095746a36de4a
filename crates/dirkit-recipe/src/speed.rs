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
