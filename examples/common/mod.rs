//! What the small examples share: command-line flags, the synthetic task as tensors, the MLP
//! backbone and the seeded mini-batch loop.

// Each example compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use dirkit::compute::nn::{Linear, linear};
use dirkit::data::SinusoidTask;
use dirkit::rng::SplitMix64;

/// Features per synthetic sample.
pub const INPUTS: usize = 8;
/// Width of the MLP's hidden layers (the head's feature size).
pub const HIDDEN: usize = 64;

/// `--epochs N`, `--seed S`, `--device cpu|cuda`.
pub struct Args {
    pub epochs: usize,
    pub seed: u64,
    pub device: Device,
}

/// Parses the flags; `default_epochs` when `--epochs` is not given; CUDA when available.
pub fn parse_args(default_epochs: usize) -> Result<Args, String> {
    let mut a = Args {
        epochs: default_epochs,
        seed: 0,
        device: Device::cuda_if_available(0).map_err(|e| e.to_string())?,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => a.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--device" => {
                a.device = match value()?.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => Device::new_cuda(0).map_err(|e| format!("--device cuda: {e}"))?,
                    other => return Err(format!("--device {other}: expected cpu or cuda")),
                }
            }
            other => {
                return Err(format!(
                    "unknown argument {other} (--epochs N, --seed S, --device cpu|cuda)"
                ));
            }
        }
    }
    Ok(a)
}

/// The synthetic task of the examples: 6,000 training samples from the AgeDB-DIR age histogram,
/// 20 test samples per age 0–100.
pub fn task(seed: u64) -> SinusoidTask {
    SinusoidTask::generate(seed, 6000, INPUTS, 20)
}

/// Two ReLU layers: the "backbone" whose features the head sees (dirkit-compute's linear
/// layers, which keep these small products on one thread).
pub struct Mlp {
    l1: Linear,
    l2: Linear,
}

impl Mlp {
    /// `INPUTS → HIDDEN → HIDDEN` with weights from `vb`.
    pub fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            l1: linear(INPUTS, HIDDEN, vb.pp("l1"))?,
            l2: linear(HIDDEN, HIDDEN, vb.pp("l2"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.l2.forward(&self.l1.forward(x)?.relu()?)?.relu()
    }
}

/// The training and test sets as tensors on `dev` (inputs f32, targets f32).
pub struct Tensors {
    pub x_train: Tensor,
    pub y_train: Tensor,
    pub x_test: Tensor,
}

impl Tensors {
    pub fn new(task: &SinusoidTask, dev: &Device) -> candle_core::Result<Self> {
        let (n, m) = (task.y_train.len(), task.y_test.len());
        let y: Vec<f32> = task.y_train.iter().map(|&y| y as f32).collect();
        Ok(Self {
            x_train: Tensor::from_slice(&task.x_train, (n, INPUTS), dev)?,
            y_train: Tensor::from_vec(y, n, dev)?,
            x_test: Tensor::from_slice(&task.x_test, (m, INPUTS), dev)?,
        })
    }

    /// Calls `on(Event::Batch(x, y, epoch))` for every seeded-shuffled mini-batch of `batch`
    /// rows, then `on(Event::EndEpoch(epoch))`, for `epochs` epochs.
    pub fn train(
        &self,
        epochs: usize,
        batch: usize,
        seed: u64,
        mut on: impl FnMut(Event<'_>) -> candle_core::Result<()>,
    ) -> candle_core::Result<()> {
        let n = self.y_train.dim(0)?;
        let dev = self.x_train.device();
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut rng = SplitMix64::new(seed ^ 0x5eed);
        for epoch in 0..epochs {
            rng.shuffle(&mut order);
            for chunk in order.chunks(batch) {
                let idx = Tensor::from_slice(chunk, chunk.len(), dev)?;
                let x = self.x_train.index_select(&idx, 0)?;
                let y = self.y_train.index_select(&idx, 0)?;
                on(Event::Batch(&x, &y, epoch))?;
            }
            on(Event::EndEpoch(epoch))?;
        }
        Ok(())
    }

    /// Feeds the uncalibrated features of the whole training set to `collect` in chunks of
    /// 1,024 rows (FDS's second pass).
    pub fn second_pass(
        &self,
        features: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
        mut collect: impl FnMut(&Tensor, &Tensor) -> candle_core::Result<()>,
    ) -> candle_core::Result<()> {
        let n = self.y_train.dim(0)?;
        for start in (0..n).step_by(1024) {
            let len = 1024.min(n - start);
            let z = features(&self.x_train.narrow(0, start, len)?)?.detach();
            collect(&z, &self.y_train.narrow(0, start, len)?)?;
        }
        Ok(())
    }
}

/// What the training loop hands to its callback.
pub enum Event<'a> {
    /// A mini-batch `(x, y)` of `epoch`.
    Batch(&'a Tensor, &'a Tensor, usize),
    /// The end of `epoch`.
    EndEpoch(usize),
}

/// Test predictions (f32 tensor) as f64.
pub fn to_f64(pred: &Tensor) -> candle_core::Result<Vec<f64>> {
    pred.to_dtype(DType::F64)?.to_vec1()
}
