//! A training run: the epoch loop (prefetched, augmented batches; FDS statistics pass;
//! validation), best and last checkpoints with exact resume, and the final test report.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use candle_core::{Device, Tensor};
use dirkit_compute::checkpoint::{load_checkpoint, save_checkpoint};
use dirkit_core::{LabelDensity, OutOfRange, UncertaintyReport};
use dirkit_data::dataset::{Batch, epoch_batches};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::data::{RunData, SplitData};
use crate::error::{RecipeError, Result};
use crate::model::Model;
use crate::report::EvalReport;

/// File of the checkpoint after the last finished epoch.
pub const LAST: &str = "last.safetensors";
/// File of the checkpoint with the lowest validation MAE so far.
pub const BEST: &str = "best.safetensors";
/// Seed salt of FDS's statistics pass (its own shuffle and augmentation streams).
const FDS_PASS_SALT: u64 = 0xFD5_0000_0000_0001;
/// Seed salt of the second augmented view of Rank-N-Contrast's pre-training.
pub(crate) const SECOND_VIEW_SALT: u64 = 0x2A1E_0000_0000_0002;

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation MAE after the epoch.
    pub val_mae: f64,
    /// Validation MSE after the epoch.
    pub val_mse: f64,
    /// Balanced MSE's noise σ at the end of the epoch, if that is the loss.
    pub noise_sigma: Option<f64>,
    /// Wall-clock seconds of the whole epoch (training, FDS pass, validation, checkpoints).
    pub seconds: f64,
    /// Training images per second of the training pass.
    pub images_per_second: f64,
    /// Seconds the loader thread spent decoding and augmenting training batches (overlapped
    /// with compute).
    pub load_seconds: f64,
    /// Seconds the training loop waited for a batch (the part of loading not hidden).
    pub wait_seconds: f64,
    /// Seconds of forward, backward and optimiser steps.
    pub compute_seconds: f64,
    /// Seconds of FDS's statistics pass and end-of-epoch update.
    pub fds_seconds: f64,
    /// Seconds of the validation pass.
    pub eval_seconds: f64,
}

/// The run's progress, saved as the checkpoints' description and as `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The settings.
    pub config: RunConfig,
    /// Epochs finished.
    pub epochs_done: usize,
    /// Epoch with the lowest validation MAE, and that MAE.
    pub best: Option<(usize, f64)>,
    /// One record per finished epoch.
    pub history: Vec<EpochRecord>,
}

/// How a run reports and where it writes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run directory (checkpoints, `run.json`, report, figures).
    pub out: PathBuf,
    /// Draw progress bars on the terminal (they never draw when stderr is not one).
    pub progress: bool,
    /// Print a one-line summary per epoch on stdout.
    pub verbose: bool,
}

/// A run in progress: data, model, state.
pub struct Trainer {
    data: RunData,
    model: Model,
    state: RunState,
    device: Device,
    options: RunOptions,
    train_ages: Vec<f64>,
    train_counts: Vec<u64>,
}

impl Trainer {
    /// Starts a run of `config` on `data`; `options.out` must exist.
    pub fn new(
        config: RunConfig,
        data: RunData,
        device: Device,
        options: RunOptions,
    ) -> Result<Self> {
        let train_ages = data.train.ages();
        let model = Model::new(&config, &train_ages, &device)?;
        let (train_counts, _) = config.bins.counts(&train_ages, OutOfRange::Clip)?;
        Ok(Self {
            data,
            model,
            state: RunState {
                config,
                epochs_done: 0,
                best: None,
                history: Vec::new(),
            },
            device,
            options,
            train_ages,
            train_counts,
        })
    }

    /// Continues the run saved in `options.out` (its [`LAST`] checkpoint) where it stopped; the
    /// settings come from the checkpoint, except `epochs` when given (to extend a run). The
    /// data is loaded again from the saved settings.
    pub fn resume(epochs: Option<usize>, device: Device, options: RunOptions) -> Result<Self> {
        let path = options.out.join(LAST);
        if !path.exists() {
            return Err(RecipeError::io(
                &path,
                "no checkpoint to resume from (a run writes it after its first epoch)",
            ));
        }
        let ckpt = load_checkpoint::<RunState>(&path)?;
        let mut state = ckpt.meta.clone();
        if let Some(e) = epochs {
            if e < state.epochs_done {
                return Err(RecipeError::config(format!(
                    "--epochs {e}: the run already finished {} epochs",
                    state.epochs_done
                )));
            }
            state.config.epochs = e;
        }
        let data = RunData::load(&state.config)?;
        let mut trainer = Self::new(state.config.clone(), data, device, options)?;
        ckpt.restore_varmap(trainer.model.varmap())?;
        trainer.model.load_state_tensors(&ckpt.tensors)?;
        trainer.state = state;
        Ok(trainer)
    }

    /// The run's settings.
    pub fn config(&self) -> &RunConfig {
        &self.state.config
    }

    /// The run's progress.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The data.
    pub fn data(&self) -> &RunData {
        &self.data
    }

    /// Training label counts per bin (they define the shots).
    pub fn train_counts(&self) -> &[u64] {
        &self.train_counts
    }

    /// The fitted training label density (for the figure), with the run's re-weighting or
    /// the LDS default.
    pub fn label_density(&self) -> Result<LabelDensity> {
        let lds = self.state.config.reweight.clone().unwrap_or_default();
        Ok(LabelDensity::fit(
            &self.train_ages,
            self.state.config.bins,
            OutOfRange::Clip,
            &lds,
        )?)
    }

    /// Trains epoch `epoch`: batches and augmentation from `(seed, epoch)`, the learning rate
    /// of the schedule. Returns the mean loss, (load, wait, compute) seconds and the images.
    fn train_pass(&mut self, epoch: usize) -> Result<(f64, [f64; 3], usize)> {
        let Self {
            data,
            model,
            state,
            device,
            options,
            ..
        } = self;
        let (seed, bs) = (state.config.seed, state.config.batch_size);
        let order = epoch_batches(data.train.len(), bs, seed, epoch, false)?;
        let bar = progress_bar(
            options.progress,
            order.len(),
            format!("epoch {}", epoch + 1),
        );
        let (mut loss_sum, mut compute, mut images) = (0.0f64, 0.0f64, 0usize);
        // Each step's loss is read after the next step is queued, so that on a GPU the device
        // never waits for the host between steps; the last one after the loop.
        let mut pending: Option<(Tensor, usize)> = None;
        let started = Instant::now();
        let mut settle = |pending: &mut Option<(Tensor, usize)>, images: usize| -> Result<()> {
            let Some((loss, n)) = pending.take() else {
                return Ok(());
            };
            let loss = loss.to_scalar::<f32>()?;
            if !loss.is_finite() {
                return Err(RecipeError::config(format!(
                    "epoch {}: the training loss became {loss}; try a lower --lr",
                    epoch + 1
                )));
            }
            loss_sum += f64::from(loss) * n as f64;
            let rate = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {loss:.3} | {rate:.0} img/s"));
            Ok(())
        };
        let pretraining = model.is_pretraining(epoch);
        let second = pretraining.then_some(SECOND_VIEW_SALT);
        let (load, wait) = for_each_batch(
            &data.train,
            &data.transform,
            &order,
            Some((seed, epoch)),
            second,
            |batch, view2| {
                let n = batch.len();
                let t = Instant::now();
                let (x, y) = tensors(batch, device)?;
                let loss = match view2 {
                    Some(b2) => {
                        let (x2, _) = tensors(b2, device)?;
                        model.pretrain_step(&x, &x2, &y)?
                    }
                    None => model.train_step(&x, &y, epoch)?,
                };
                settle(&mut pending, images)?;
                pending = Some((loss, n));
                compute += t.elapsed().as_secs_f64();
                images += n;
                bar.inc(1);
                Ok(())
            },
        )?;
        let t = Instant::now();
        settle(&mut pending, images)?;
        compute += t.elapsed().as_secs_f64();
        bar.finish_and_clear();
        Ok((
            loss_sum / images.max(1) as f64,
            [load, wait, compute],
            images,
        ))
    }

    /// FDS's statistics pass (the reference's: the whole training set again, shuffled and
    /// augmented from their own streams, batch norm in training mode, no gradients) and the
    /// end-of-epoch update.
    fn fds_pass(&mut self, epoch: usize) -> Result<()> {
        let Self {
            data,
            model,
            state,
            device,
            options,
            ..
        } = self;
        if model.wants_second_pass() {
            let seed = state.config.seed ^ FDS_PASS_SALT;
            let bs = state.config.batch_size;
            let order = epoch_batches(data.train.len(), bs, seed, epoch, false)?;
            let bar = progress_bar(options.progress, order.len(), "FDS stats".into());
            for_each_batch(
                &data.train,
                &data.transform,
                &order,
                Some((seed, epoch)),
                None,
                |b, _| {
                    let (x, y) = tensors(b, device)?;
                    model.collect_fds_stats(&x, &y)?;
                    bar.inc(1);
                    Ok(())
                },
            )?;
            bar.finish_and_clear();
        }
        model.end_epoch(epoch)
    }

    /// Predictions of the current weights on `split` (no augmentation, batch norm in
    /// evaluation mode), in the split's order.
    pub fn predict(&self, split: &SplitData, label: &str) -> Result<Vec<f64>> {
        Ok(self.predict_with_sigma(split, label)?.0)
    }

    /// Predictions on `split` and, for the heads that predict one (UVOTE, VIR), each sample's
    /// standard deviation.
    pub fn predict_with_sigma(
        &self,
        split: &SplitData,
        label: &str,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let bs = self.state.config.eval_batch_size;
        let n = split.len();
        let order: Vec<Vec<usize>> = (0..n)
            .step_by(bs)
            .map(|s| (s..(s + bs).min(n)).collect())
            .collect();
        let bar = progress_bar(self.options.progress, order.len(), label.to_string());
        let mut out = Vec::with_capacity(n);
        let mut sigma: Option<Vec<f64>> = None;
        for_each_batch(split, &self.data.transform, &order, None, None, |b, _| {
            let (x, _) = tensors(b, &self.device)?;
            let (p, s) = self.model.predict_with_sigma(&x)?;
            out.extend(p);
            if let Some(s) = s {
                sigma.get_or_insert_with(|| Vec::with_capacity(n)).extend(s);
            }
            bar.inc(1);
            Ok(())
        })?;
        bar.finish_and_clear();
        Ok((out, sigma))
    }

    /// Trains one epoch (the next one), runs FDS's pass, validates, and writes the [`LAST`]
    /// checkpoint (and [`BEST`] when validation MAE improved) and `run.json`.
    pub fn run_epoch(&mut self) -> Result<&EpochRecord> {
        let epoch = self.state.epochs_done;
        let start = Instant::now();
        let lr = self.model.start_epoch(epoch);
        let (train_loss, [load, wait, compute], images) = self.train_pass(epoch)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let t = Instant::now();
        self.fds_pass(epoch)?;
        let fds_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let val_pred = self.predict(&self.data.val, "validation")?;
        let val_ages = self.data.val.ages();
        let eval_seconds = t.elapsed().as_secs_f64();
        let n = val_ages.len().max(1) as f64;
        let val_mae = val_pred
            .iter()
            .zip(&val_ages)
            .map(|(p, a)| (p - a).abs())
            .sum::<f64>()
            / n;
        let val_mse = val_pred
            .iter()
            .zip(&val_ages)
            .map(|(p, a)| (p - a).powi(2))
            .sum::<f64>()
            / n;
        // Rank-N-Contrast's pre-training epochs train no head: they never count as best.
        let improved = !self.model.is_pretraining(epoch)
            && self.state.best.is_none_or(|(_, best)| val_mae < best);
        if improved {
            self.state.best = Some((epoch, val_mae));
        }
        self.state.epochs_done = epoch + 1;
        self.state.history.push(EpochRecord {
            epoch,
            lr,
            train_loss,
            val_mae,
            val_mse,
            noise_sigma: self.model.noise_sigma(),
            seconds: 0.0,
            images_per_second: images as f64 / train_seconds.max(1e-9),
            load_seconds: load,
            wait_seconds: wait,
            compute_seconds: compute,
            fds_seconds,
            eval_seconds,
        });
        let last = self.options.out.join(LAST);
        let seconds = start.elapsed().as_secs_f64();
        if let Some(r) = self.state.history.last_mut() {
            r.seconds = seconds;
        }
        self.save(&last)?;
        if improved {
            copy_file(&last, &self.options.out.join(BEST))?;
        }
        self.write_run_json()?;
        let record = self.state.history.last().expect("pushed above");
        if self.options.verbose {
            println!(
                "{}",
                summary_line(record, self.state.config.epochs, improved)
            );
        }
        Ok(record)
    }

    /// Trains the remaining epochs.
    pub fn fit(&mut self) -> Result<()> {
        while self.state.epochs_done < self.state.config.epochs {
            self.run_epoch()?;
        }
        Ok(())
    }

    /// Writes the model, its state and the run description to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_checkpoint(
            path,
            self.model.varmap(),
            &self.model.state_tensors()?,
            &self.state,
        )?;
        Ok(())
    }

    /// Loads the [`BEST`] checkpoint's weights and evaluates them on the test split.
    pub fn test_best(&mut self) -> Result<(EvalReport, Vec<f64>)> {
        let (report, pred, _) = self.test_best_with_sigma()?;
        Ok((report, pred))
    }

    /// [`Trainer::test_best`] with the predicted σ of the uncertainty heads; their report
    /// carries the NLL, interval coverage and sparsification summary.
    pub fn test_best_with_sigma(&mut self) -> Result<(EvalReport, Vec<f64>, Option<Vec<f64>>)> {
        let ckpt = load_checkpoint::<RunState>(&self.options.out.join(BEST))?;
        ckpt.restore_varmap(self.model.varmap())?;
        let epoch = ckpt.meta.best.map_or(0, |(e, _)| e);
        let (pred, sigma) = self.predict_with_sigma(&self.data.test, "test")?;
        let ages = self.data.test.ages();
        let mut report = EvalReport::compute(
            "test",
            epoch,
            &pred,
            &ages,
            &self.state.config.bins,
            &self.train_counts,
        )?;
        if let (Some(s), Some(dist)) = (&sigma, self.model.uncertainty()) {
            report.uncertainty = Some(UncertaintyReport::compute(&pred, s, &ages, dist, 20)?);
        }
        Ok((report, pred, sigma))
    }

    /// Writes the settings and the history to `run.json` in the run directory.
    pub fn write_run_json(&self) -> Result<()> {
        let path = self.options.out.join("run.json");
        let json =
            serde_json::to_string_pretty(&self.state).map_err(|e| RecipeError::io(&path, e))?;
        crate::report::write_file(&path, (json + "\n").as_bytes())
    }
}

/// `base/run-NNN` with the lowest number (from 001) whose directory does not exist yet.
pub fn fresh_run_dir(base: &Path) -> PathBuf {
    let mut i = 1usize;
    loop {
        let p = base.join(format!("run-{i:03}"));
        if !p.exists() {
            return p;
        }
        i += 1;
    }
}

/// Creates the run directory `out`. A directory that already holds a run (`run.json` or a
/// checkpoint) is refused, so a finished or interrupted run is never overwritten: it is
/// continued with [`Trainer::resume`] or another directory is chosen.
pub fn prepare_run_dir(out: &Path) -> Result<()> {
    if out.join("run.json").exists() || out.join(LAST).exists() || out.join(BEST).exists() {
        return Err(RecipeError::io(
            out,
            "already holds a run; continue it with --resume or choose another --out",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| RecipeError::io(out, e))
}

/// `batch` as an image tensor (N, 3, S, S) and a target tensor (N), f32 on `device`.
pub(crate) fn tensors(batch: Batch, device: &Device) -> Result<(Tensor, Tensor)> {
    let shape = batch.shape();
    let y: Vec<f32> = batch.ages.iter().map(|&a| a as f32).collect();
    let n = y.len();
    Ok((
        Tensor::from_vec(batch.pixels, &shape, device)?,
        Tensor::from_vec(y, n, device)?,
    ))
}

/// A progress bar of `len` steps on stderr (hidden unless `show`, and by indicatif when stderr
/// is not a terminal).
fn progress_bar(show: bool, len: usize, prefix: String) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} (ETA {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix);
    bar
}

/// Runs `visit` on the batches `order` of `split`, each loaded on a second thread one to two
/// batches ahead of the one being used. Returns (load seconds, wait seconds): time spent
/// loading, and the part of it the caller waited for.
fn for_each_batch(
    split: &SplitData,
    transform: &dirkit_data::dataset::Transform,
    order: &[Vec<usize>],
    augment: Option<(u64, usize)>,
    second_view: Option<u64>,
    mut visit: impl FnMut(Batch, Option<Batch>) -> Result<()>,
) -> Result<(f64, f64)> {
    let (mut load, mut wait) = (0.0, 0.0);
    type Loaded = (Batch, Option<Batch>, f64);
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = sync_channel::<Result<Loaded>>(2);
        s.spawn(move || {
            for indices in order {
                let start = Instant::now();
                let batch = split.load(indices, transform, augment).and_then(|b| {
                    // The second view: the same images under another augmentation stream.
                    let view2 = match (second_view, augment) {
                        (Some(salt), Some((seed, epoch))) => {
                            Some(split.load(indices, transform, Some((seed ^ salt, epoch)))?)
                        }
                        _ => None,
                    };
                    Ok((b, view2, start.elapsed().as_secs_f64()))
                });
                let failed = batch.is_err();
                let sent = tx.send(batch);
                if sent.is_err() || failed {
                    break;
                }
            }
        });
        for _ in order {
            let start = Instant::now();
            let (batch, view2, secs) = rx
                .recv()
                .map_err(|_| RecipeError::config("the batch loader stopped unexpectedly"))??;
            wait += start.elapsed().as_secs_f64();
            load += secs;
            visit(batch, view2)?;
        }
        Ok(())
    })?;
    Ok((load, wait))
}

/// Copies `from` over `to` through a temporary file, so `to` is never half-written.
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("partial");
    std::fs::copy(from, &tmp).map_err(|e| RecipeError::io(&tmp, e))?;
    std::fs::rename(&tmp, to).map_err(|e| RecipeError::io(to, e))
}

/// `epoch  3/12  lr 1.0e-3  loss 9.812  val MAE 8.41 *  212 img/s  (load 3.1 s, waited 0.2 s)  58.3 s`
pub fn summary_line(r: &EpochRecord, epochs: usize, best: bool) -> String {
    let sigma = r
        .noise_sigma
        .map_or_else(String::new, |s| format!("  σ {s:.3}"));
    format!(
        "epoch {:>3}/{epochs}  lr {:.1e}  loss {:.3}  val MAE {:.3}{}  {:.0} img/s  \
         (load {:.1} s, waited {:.1} s, FDS {:.1} s){sigma}  {:.1} s",
        r.epoch + 1,
        r.lr,
        r.train_loss,
        r.val_mae,
        if best { " *" } else { "  " },
        r.images_per_second,
        r.load_seconds,
        r.wait_seconds,
        r.fds_seconds,
        r.seconds,
    )
}
