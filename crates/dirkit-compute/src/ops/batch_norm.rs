//! Batch norm over (N, H, W) per channel with an optional fused ReLU. On the CPU one op for the
//! forward (statistics, then the affine map) and one for the backward (per-channel sums, then
//! the input gradient; see `batch_norm_cpu`), instead of candle's chain of broadcast ops and
//! non-last-dimension reductions; elsewhere candle's ops.
//!
//! In training mode the output is `y = act((x − μ)·γ/√(σ² + ε) + β)` with the batch mean μ and
//! biased variance σ²; the backward is the standard closed form
//! `dx = γ·invstd/M · (M·g − Σg − x̂·Σ(g·x̂))`, `dγ = Σ g·x̂`, `dβ = Σ g`, with `g` the output
//! gradient masked by the ReLU and `M = N·H·W`. In evaluation mode μ and σ² are the running
//! statistics, constants to the backward: `dx = g·γ·invstd`.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor, Var};
use candle_nn::BatchNorm;

use super::add_relu;
use super::batch_norm_cpu::{BatchNormOp, Saved};
use crate::error::invalid;

/// What the normalised values go through inside the same kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// None: the batch norm's output as is.
    #[default]
    Identity,
    /// `max(0, ·)`, with the gradient masked where the output is not positive (PyTorch's).
    Relu,
}

/// Per-channel statistics of the batch one training-mode call normalised with, for the caller
/// to update running statistics ([`BatchStats::update_running`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    /// Mean of each channel over (N, H, W).
    pub mean: Vec<f64>,
    /// Biased variance (divided by `count`) of each channel: the one that normalised.
    pub var: Vec<f64>,
    /// Values per channel, `N·H·W`.
    pub count: usize,
}

impl BatchStats {
    /// The unbiased variance of each channel, `var · count / (count − 1)` (what PyTorch's
    /// running variance averages).
    pub fn unbiased_var(&self) -> Vec<f64> {
        let m = self.count as f64;
        self.var.iter().map(|v| v * m / (m - 1.0)).collect()
    }

    /// PyTorch's running-statistics update: `running ← (1 − momentum)·running + momentum·batch`,
    /// with the unbiased variance for `running_var`; both variables are (C,) of any float dtype
    /// and are overwritten in place. PyTorch's momentum is 0.1.
    pub fn update_running(
        &self,
        running_mean: &Var,
        running_var: &Var,
        momentum: f64,
    ) -> candle_core::Result<()> {
        let blend = |var: &Var, batch: &[f64]| -> candle_core::Result<()> {
            let old: Vec<f64> = var.as_tensor().to_dtype(DType::F64)?.to_vec1()?;
            if old.len() != batch.len() {
                return invalid(
                    "batch-norm running statistics",
                    format!("{} values", old.len()),
                    "one per channel",
                );
            }
            let new: Vec<f64> = old
                .iter()
                .zip(batch)
                .map(|(r, b)| (1.0 - momentum) * r + momentum * b)
                .collect();
            let new = Tensor::from_vec(new, old.len(), var.device())?.to_dtype(var.dtype())?;
            var.set(&new)
        };
        blend(running_mean, &self.mean)?;
        blend(running_var, &self.unbiased_var())
    }
}

/// Batch norm in training mode over `x` (N, C, …) per channel with scale `weight` and shift
/// `bias` (both (C,)), then `act`: returns the output (x's shape) and the batch statistics it
/// normalised with (biased variance, as PyTorch's `F.batch_norm(training=True)`). `eps` is
/// added to the variance (PyTorch: 1e-5). Differentiable in `x`, `weight` and `bias`; refuses
/// batches with a single value per channel, whose unbiased variance is undefined.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    act: Activation,
) -> candle_core::Result<(Tensor, BatchStats)> {
    train(x, (weight, bias), None, eps, act)
}

/// `max(0, batch_norm(x) + residual)` in training mode, the join of a residual block whose
/// last layer is `x` (see [`batch_norm_train`]; `residual` has x's shape): on the CPU one op,
/// so the normalised values never form a tensor of their own. Differentiable in `x`, `weight`,
/// `bias` and `residual`.
pub fn batch_norm_add_relu_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    eps: f64,
) -> candle_core::Result<(Tensor, BatchStats)> {
    if residual.shape() != x.shape() {
        return invalid(
            "batch-norm residual",
            format!("{:?}", residual.shape()),
            "the input's shape",
        );
    }
    train(x, (weight, bias), Some(residual), eps, Activation::Relu)
}

/// Training mode, then `residual` added (if any), then `act`.
fn train(
    x: &Tensor,
    (weight, bias): (&Tensor, &Tensor),
    residual: Option<&Tensor>,
    eps: f64,
    act: Activation,
) -> candle_core::Result<(Tensor, BatchStats)> {
    let (_, count) = check_train(x, weight, bias, eps)?;
    if !x.device().is_cpu() {
        let (y, stats) = candle_train(x, weight, bias, eps, count)?;
        let y = match residual {
            Some(r) => (y + r)?,
            None => y,
        };
        return Ok((activate(y, act)?, stats));
    }
    let saved = Arc::new(Mutex::new(None));
    let op = BatchNormOp::new(eps, act, true, saved.clone());
    let x = x.contiguous()?;
    let params = Tensor::stack(&[weight, bias], 0)?;
    let y = match residual {
        Some(r) => x.apply_op3(&params, &r.contiguous()?, op)?,
        None => x.apply_op2(&params, op)?,
    };
    let saved = saved
        .lock()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let Some(saved) = saved.as_ref() else {
        candle_core::bail!("batch-norm: the kernel left no statistics");
    };
    let stats = BatchStats {
        mean: saved.mean.clone(),
        var: saved.var.clone(),
        count,
    };
    Ok((y, stats))
}

/// Batch norm in evaluation mode: `act((x − running_mean)·weight/√(running_var + eps) + bias)`
/// per channel of `x` (N, C, …), all parameters (C,). Differentiable in `x`, `weight` and
/// `bias`; the running statistics are constants (as in candle and PyTorch).
pub fn batch_norm_eval(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
    act: Activation,
) -> candle_core::Result<Tensor> {
    let (channels, _) = check(x, weight, bias, eps)?;
    for (name, t) in [("running_mean", running_mean), ("running_var", running_var)] {
        if t.dims() != [channels] {
            return invalid(
                name,
                format!("{:?}", t.shape()),
                "(C,) for an (N, C, …) input",
            );
        }
    }
    if !x.device().is_cpu() {
        let per_channel = broadcast_shape(x);
        let (mean, var) = (running_mean.detach(), running_var.detach());
        let y = x
            .broadcast_sub(&mean.reshape(per_channel.as_slice())?)?
            .broadcast_div(&(var.reshape(per_channel.as_slice())? + eps)?.sqrt()?)?
            .broadcast_mul(&weight.reshape(per_channel.as_slice())?)?
            .broadcast_add(&bias.reshape(per_channel.as_slice())?)?;
        return activate(y, act);
    }
    let host = |t: &Tensor| -> candle_core::Result<Vec<f64>> { t.to_dtype(DType::F64)?.to_vec1() };
    let saved = Saved::statistics(host(running_mean)?, host(running_var)?);
    let op = BatchNormOp::new(eps, act, false, Arc::new(Mutex::new(Some(saved))));
    let params = Tensor::stack(&[weight, bias], 0)?;
    x.contiguous()?.apply_op2(&params, op)
}

/// A candle [`BatchNorm`] module's `forward_t` through these kernels, followed by `act`: in
/// training mode batch statistics and the running-statistics update with the module's
/// momentum; in evaluation mode its running statistics. A module without scale and shift uses
/// 1 and 0; the mean is always removed (PyTorch's batch norm).
pub fn batch_norm_t(
    bn: &BatchNorm,
    x: &Tensor,
    train: bool,
    act: Activation,
) -> candle_core::Result<Tensor> {
    module_forward(bn, x, None, train, act)
}

/// `max(0, bn(x) + residual)` for a candle [`BatchNorm`] module `bn`, as [`batch_norm_t`]
/// (one op in training mode on the CPU: [`batch_norm_add_relu_train`]).
pub fn batch_norm_add_relu_t(
    bn: &BatchNorm,
    x: &Tensor,
    residual: &Tensor,
    train: bool,
) -> candle_core::Result<Tensor> {
    module_forward(bn, x, Some(residual), train, Activation::Relu)
}

fn module_forward(
    bn: &BatchNorm,
    x: &Tensor,
    residual: Option<&Tensor>,
    train: bool,
    act: Activation,
) -> candle_core::Result<Tensor> {
    let channels = bn.running_mean().elem_count();
    let (weight, bias) = match bn.weight_and_bias() {
        Some((w, b)) => (w.clone(), b.clone()),
        None => (
            Tensor::ones(channels, x.dtype(), x.device())?,
            Tensor::zeros(channels, x.dtype(), x.device())?,
        ),
    };
    if !train {
        let (mean, var) = (bn.running_mean(), bn.running_var());
        return match residual {
            None => batch_norm_eval(x, &weight, &bias, mean, var, bn.eps(), act),
            Some(r) => {
                let y =
                    batch_norm_eval(x, &weight, &bias, mean, var, bn.eps(), Activation::Identity)?;
                add_relu(&y, r)
            }
        };
    }
    let running_mean = Var::from_tensor(bn.running_mean())?;
    let running_var = Var::from_tensor(bn.running_var())?;
    if !x.device().is_cpu() {
        // On an accelerator the statistics stay on the device: no copy to the host, so
        // nothing waits for the device to finish the batch.
        let (channels, count) = check_train(x, &weight, &bias, bn.eps())?;
        let (y, mean, var) = candle_train_tensors(x, &weight, &bias, bn.eps())?;
        let m = bn.momentum();
        let unbiased = count as f64 / (count - 1) as f64;
        let blend = |running: &Var, batch: Tensor, scale: f64| -> candle_core::Result<()> {
            let batch = batch.reshape(channels)?.to_dtype(running.dtype())?;
            running.set(&((running.as_tensor() * (1.0 - m))? + (batch * (m * scale))?)?)
        };
        blend(&running_mean, mean, 1.0)?;
        blend(&running_var, var, unbiased)?;
        let y = match residual {
            Some(r) => (y + r)?,
            None => y,
        };
        return activate(y, act);
    }
    let (y, stats) = match residual {
        None => batch_norm_train(x, &weight, &bias, bn.eps(), act)?,
        Some(r) => batch_norm_add_relu_train(x, &weight, &bias, r, bn.eps())?,
    };
    stats.update_running(&running_mean, &running_var, bn.momentum())?;
    Ok(y)
}

/// Checks shapes and ε; returns the channel count and the values per channel.
fn check(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<(usize, usize)> {
    if x.rank() < 2 {
        return invalid("batch-norm input", format!("{:?}", x.shape()), "(N, C, …)");
    }
    let channels = x.dim(1)?;
    for (name, t) in [("batch-norm weight", weight), ("batch-norm bias", bias)] {
        if t.dims() != [channels] {
            return invalid(
                name,
                format!("{:?}", t.shape()),
                "(C,) for an (N, C, …) input",
            );
        }
    }
    if eps.is_nan() || eps < 0.0 {
        return invalid("batch-norm eps", eps, "non-negative");
    }
    Ok((channels, x.elem_count() / channels.max(1)))
}

/// [`check`], and that training mode has more than one value per channel (the unbiased
/// variance needs two).
fn check_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<(usize, usize)> {
    let (channels, count) = check(x, weight, bias, eps)?;
    if count < 2 {
        return invalid(
            "batch-norm batch",
            format!("{:?}", x.shape()),
            "more than one value per channel in training mode",
        );
    }
    Ok((channels, count))
}

/// (1, C, 1, …): the shape a per-channel vector broadcasts from.
fn broadcast_shape(x: &Tensor) -> Vec<usize> {
    let mut dims = vec![1; x.rank()];
    dims[1] = x.dims()[1];
    dims
}

fn activate(y: Tensor, act: Activation) -> candle_core::Result<Tensor> {
    match act {
        Activation::Identity => Ok(y),
        Activation::Relu => y.relu(),
    }
}

/// The device-generic training-mode forward from candle's ops (candle's `BatchNorm` without
/// the running update), with the statistics copied to the host.
fn candle_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    count: usize,
) -> candle_core::Result<(Tensor, BatchStats)> {
    let (y, mean, var) = candle_train_tensors(x, weight, bias, eps)?;
    let host = |t: &Tensor| -> candle_core::Result<Vec<f64>> {
        t.detach().flatten_all()?.to_dtype(DType::F64)?.to_vec1()
    };
    let stats = BatchStats {
        mean: host(&mean)?,
        var: host(&var)?,
        count,
    };
    Ok((y, stats))
}

/// The device-generic training-mode forward from candle's ops: the output, and the batch mean
/// and biased variance as (C, 1) tensors on the input's device (detached).
fn candle_train_tensors(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let xt = x.transpose(0, 1)?;
    let transposed_dims = xt.dims().to_vec();
    let xt = xt.flatten_from(1)?.contiguous()?;
    let mean = xt.mean_keepdim(1)?;
    let centred = xt.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(1)?;
    let y = centred
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&weight.reshape(((), 1))?)?
        .broadcast_add(&bias.reshape(((), 1))?)?
        .reshape(transposed_dims)?
        .transpose(0, 1)?;
    Ok((y, mean.detach(), var.detach()))
}
