//! The CPU kernels of [`batch_norm_train`](super::batch_norm_train),
//! [`batch_norm_add_relu_train`](super::batch_norm_add_relu_train) and
//! [`batch_norm_eval`](super::batch_norm_eval): a forward op `(x, [γ; β] [, r]) ↦ y` and its
//! backward `(x, y, dy) ↦ [dx; dr; dγ; dβ]`, each a per-channel reduction followed by an
//! element-wise pass.
//!
//! The element-wise passes compute `y = act(x·α + β' [+ r])` with `α = γ/√(σ² + ε)` and
//! `β' = β − μ·α` in the tensor's dtype, as PyTorch's CPU kernel does, so that they vectorise;
//! the backward takes the ReLU mask from the output (`y > 0`). The reductions run over blocks
//! in the tensor's dtype (8 independent lanes) and add the block sums in f64; the statistics
//! are shifted by each channel's first value, which keeps the variance accurate when the mean
//! dwarfs the spread.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};

use super::Activation;
use super::fresh::{Fresh, pieces, with_fresh_output};
use super::gemm::Float;
use super::reduce::PairSums;
use super::{cpu_slice, dispatch_float, map_tasks, use_threads};

/// Values per step of the backward's reduction (the masked gradient's buffer).
const TILE: usize = 256;

/// What the forward kernel leaves for the backward, per channel: the mean and variance it
/// normalised with and the scale `α = γ/√(σ² + ε)` it applied.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    pub(super) mean: Vec<f64>,
    pub(super) var: Vec<f64>,
    alpha: Vec<f64>,
}

impl Saved {
    /// Statistics to normalise with (evaluation mode's running statistics).
    pub(super) fn statistics(mean: Vec<f64>, var: Vec<f64>) -> Self {
        Self {
            mean,
            var,
            alpha: Vec::new(),
        }
    }
}

/// `(N, C, S)`: batch, channels and values per channel and image of an (N, C, …) shape.
fn ncs(shape: &Shape) -> (usize, usize, usize) {
    let dims = shape.dims();
    (dims[0], dims[1], dims[2..].iter().product())
}

/// The `n` planes (`s` values each) of channel `ch` in an (N, C, S) buffer.
fn planes<T>(
    data: &[T],
    (n, c, s): (usize, usize, usize),
    ch: usize,
) -> impl Iterator<Item = &[T]> {
    (0..n).map(move |i| &data[(i * c + ch) * s..(i * c + ch + 1) * s])
}

/// Mean and biased variance of channel `ch`.
fn channel_stats<T: Float>(x: &[T], dims: (usize, usize, usize), ch: usize) -> (f64, f64) {
    let m = (dims.0 * dims.2) as f64;
    let Some(&first) = planes(x, dims, ch).next().and_then(|p| p.first()) else {
        return (0.0, 0.0);
    };
    let mut sums = PairSums::new();
    for plane in planes(x, dims, ch) {
        sums.add(plane, plane, |v, _| {
            let d = v - first;
            (d, d * d)
        });
    }
    let [s1, s2] = sums.totals();
    let mean_d = s1 / m;
    let var = (s2 / m - mean_d * mean_d).max(0.0);
    (first.to_f64() + mean_d, var)
}

/// `y = act(x·α + β' [+ r])` over one plane.
fn normalise_plane<T: Float>(
    x: &[T],
    r: Option<&[T]>,
    y: &mut [T],
    (alpha, offset): (T, T),
    act: Activation,
) {
    let zero = T::from_f64(0.0);
    match (act, r) {
        (Activation::Identity, None) => {
            for (o, &v) in y.iter_mut().zip(x) {
                *o = v * alpha + offset;
            }
        }
        (Activation::Identity, Some(r)) => {
            for (o, (&v, &u)) in y.iter_mut().zip(x.iter().zip(r)) {
                *o = v * alpha + offset + u;
            }
        }
        (Activation::Relu, None) => {
            for (o, &v) in y.iter_mut().zip(x) {
                let t = v * alpha + offset;
                *o = if t < zero { zero } else { t };
            }
        }
        (Activation::Relu, Some(r)) => {
            for (o, (&v, &u)) in y.iter_mut().zip(x.iter().zip(r)) {
                let t = v * alpha + offset + u;
                *o = if t < zero { zero } else { t };
            }
        }
    }
}

/// The forward `(x, [γ; β]) ↦ y` (`CustomOp2`) or `(x, [γ; β], r) ↦ y` with a residual added
/// before the activation (`CustomOp3`); the parameters are stacked as (2, C). In training mode
/// it computes the statistics and stores them in `saved`; in evaluation mode `saved` arrives
/// holding the running ones.
pub(super) struct BatchNormOp {
    eps: f64,
    act: Activation,
    train: bool,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl BatchNormOp {
    pub(super) fn new(
        eps: f64,
        act: Activation,
        train: bool,
        saved: Arc<Mutex<Option<Saved>>>,
    ) -> Self {
        Self {
            eps,
            act,
            train,
            saved,
        }
    }

    fn run<T: Float>(
        &self,
        x: &[T],
        params: &[T],
        r: Option<&[T]>,
        shape: &Shape,
    ) -> candle_core::Result<Vec<T>> {
        let dims @ (n, c, s) = ncs(shape);
        if params.len() != 2 * c || r.is_some_and(|r| r.len() != x.len()) {
            candle_core::bail!("batch-norm: parameters or residual do not fit the input");
        }
        let mut guard = self
            .saved
            .lock()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (mean, var) = if self.train {
            let stats = map_tasks((0..c).collect(), use_threads(x.len(), c), |ch| {
                channel_stats(x, dims, ch)
            });
            stats.into_iter().unzip()
        } else {
            let Some(saved) = guard.as_ref() else {
                candle_core::bail!("batch-norm: evaluation mode without running statistics");
            };
            (saved.mean.clone(), saved.var.clone())
        };
        let (gamma, beta) = params.split_at(c);
        let alpha: Vec<f64> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g.to_f64() / (v + self.eps).sqrt())
            .collect();
        let offset: Vec<f64> = (0..c)
            .map(|ch| beta[ch].to_f64() - mean[ch] * alpha[ch])
            .collect();
        let (y, _) = with_fresh_output(x.len(), pieces(x.len(), s), |planes| {
            let mut residual = r.map(|r| r.chunks(s));
            let tasks: Vec<_> = planes
                .into_iter()
                .zip(x.chunks(s))
                .map(|(y_p, x_p)| (y_p, x_p, residual.as_mut().and_then(|it| it.next())))
                .enumerate()
                .collect();
            map_tasks(
                tasks,
                use_threads(x.len(), n * c),
                |(i, (y_p, x_p, r_p))| {
                    let ch = i % c;
                    let coefficients = (T::from_f64(alpha[ch]), T::from_f64(offset[ch]));
                    normalise_plane(x_p, r_p, y_p.zeroed(), coefficients, self.act);
                },
            )
        });
        *guard = Some(Saved { mean, var, alpha });
        Ok(y)
    }

    /// The backward op over `(x, y, dy)`: `[dx; dr (with a residual); dγ; dβ]`.
    fn backward(
        &self,
        x: &Tensor,
        y: &Tensor,
        dy: &Tensor,
        residual: bool,
    ) -> candle_core::Result<Tensor> {
        let saved = self
            .saved
            .lock()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let Some(saved) = saved.clone() else {
            candle_core::bail!("batch-norm backward: the forward kernel left no statistics");
        };
        let backward = BatchNormBackward {
            eps: self.eps,
            act: self.act,
            train: self.train,
            residual,
            saved,
        };
        x.apply_op3_no_bwd(y, &dy.contiguous()?, &backward)
    }
}

/// Splits the backward's packed output: dx, the (2, C) parameter gradient, and the residual's
/// gradient when there is one.
fn unpack(
    packed: &Tensor,
    x: &Tensor,
    residual: bool,
) -> candle_core::Result<(Tensor, Tensor, Option<Tensor>)> {
    let (nx, c) = (x.elem_count(), x.dim(1)?);
    let dx = packed.narrow(0, 0, nx)?.reshape(x.shape())?;
    let dr = match residual {
        true => Some(packed.narrow(0, nx, nx)?.reshape(x.shape())?),
        false => None,
    };
    let start = if residual { 2 * nx } else { nx };
    let dparams = packed.narrow(0, start, 2 * c)?.reshape((2, c))?;
    Ok((dx, dparams, dr))
}

impl CustomOp2 for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = CustomOp2::name(self);
        dispatch_float!(name, s1.dtype(), T => {
            let x = cpu_slice::<T>(s1, l1, name)?;
            let params = cpu_slice::<T>(s2, l2, name)?;
            let y = self.run(x, params, None, l1.shape())?;
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        _params: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let packed = self.backward(x, y, dy, false)?;
        let (dx, dparams, _) = unpack(&packed, x, false)?;
        Ok((Some(dx), Some(dparams)))
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch-norm-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = CustomOp3::name(self);
        dispatch_float!(name, s1.dtype(), T => {
            let x = cpu_slice::<T>(s1, l1, name)?;
            let params = cpu_slice::<T>(s2, l2, name)?;
            let r = cpu_slice::<T>(s3, l3, name)?;
            let y = self.run(x, params, Some(r), l1.shape())?;
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        _params: &Tensor,
        _r: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let packed = self.backward(x, y, dy, true)?;
        let (dx, dparams, dr) = unpack(&packed, x, true)?;
        Ok((Some(dx), Some(dparams), dr))
    }
}

/// The backward `(x, y, dy) ↦ [dx; dr; dγ; dβ]` flattened into one vector (`dr`, the
/// residual's gradient, only with a residual). The ReLU mask is `y > 0`.
struct BatchNormBackward {
    eps: f64,
    act: Activation,
    train: bool,
    residual: bool,
    saved: Saved,
}

impl BatchNormBackward {
    /// `[Σg, Σg·(x − μ)]` over channel `ch`, with `g` the output gradient masked by the ReLU.
    fn channel_sums<T: Float>(
        &self,
        (x, y, dy): (&[T], &[T], &[T]),
        dims: (usize, usize, usize),
        ch: usize,
    ) -> [f64; 2] {
        let mean = T::from_f64(self.saved.mean[ch]);
        let mut sums = PairSums::new();
        // The masked gradient goes through a small buffer: a select inside the lane sums
        // keeps the compiler from vectorising them.
        let mut masked = [T::from_f64(0.0); TILE];
        let plane_triples = planes(x, dims, ch)
            .zip(planes(y, dims, ch))
            .zip(planes(dy, dims, ch));
        for ((xp, yp), gp) in plane_triples {
            for ((xs, ys), gs) in xp.chunks(TILE).zip(yp.chunks(TILE)).zip(gp.chunks(TILE)) {
                let gs = match self.act {
                    Activation::Identity => gs,
                    Activation::Relu => {
                        let out = &mut masked[..xs.len()];
                        for (o, (&v, &g)) in out.iter_mut().zip(ys.iter().zip(gs)) {
                            *o = T::keep_where_positive(g, v);
                        }
                        out
                    }
                };
                sums.add(xs, gs, |v, g| (g, g * (v - mean)));
            }
        }
        sums.totals()
    }

    fn run<T: Float>(&self, x: &[T], y: &[T], dy: &[T], shape: &Shape) -> Vec<T> {
        let dims @ (n, c, s) = ncs(shape);
        let m = (n * s) as f64;
        let sums = map_tasks((0..c).collect(), use_threads(2 * x.len(), c), |ch| {
            self.channel_sums((x, y, dy), dims, ch)
        });
        let saved = &self.saved;
        let invstd: Vec<f64> = saved
            .var
            .iter()
            .map(|v| 1.0 / (v + self.eps).sqrt())
            .collect();
        // dx = α·g − (c0 + x·c1): in training mode the batch statistics' own gradient,
        // c1 = α·invstd·Σ(g·x̂)/M and c0 = α·Σg/M − μ·c1; none in evaluation mode.
        let shifts: Vec<(f64, f64)> = sums
            .iter()
            .enumerate()
            .map(|(ch, &[sg, sgd])| match self.train {
                true => {
                    let c1 = saved.alpha[ch] * invstd[ch] * invstd[ch] * sgd / m;
                    (saved.alpha[ch] * sg / m - saved.mean[ch] * c1, c1)
                }
                false => (0.0, 0.0),
            })
            .collect();
        let nr = if self.residual { x.len() } else { 0 };
        // Parts: dx plane by plane, dr plane by plane, then (dγ, dβ).
        let parts = pieces(x.len(), s).chain(pieces(nr, s)).chain([2 * c]);
        let (out, ()) = with_fresh_output(x.len() + nr + 2 * c, parts, |mut parts| {
            let params = parts.pop().expect("the parameter part").zeroed();
            let mut dr_planes = parts.split_off(parts.len() - nr / s.max(1)).into_iter();
            let tasks: Vec<_> = parts
                .into_iter()
                .zip(x.chunks(s).zip(y.chunks(s)).zip(dy.chunks(s)))
                .map(|(dx_p, inputs)| (dx_p, dr_planes.next(), inputs))
                .enumerate()
                .collect();
            map_tasks(
                tasks,
                use_threads(x.len(), n * c),
                |(i, (dx_p, dr_p, ((x_p, y_p), dy_p)))| {
                    let (dx_p, dr_p) = (dx_p.zeroed(), dr_p.map(Fresh::zeroed));
                    let ch = i % c;
                    let alpha = T::from_f64(saved.alpha[ch]);
                    let (c0, c1) = (T::from_f64(shifts[ch].0), T::from_f64(shifts[ch].1));
                    let relu = self.act == Activation::Relu;
                    let pixels = dx_p.iter_mut().zip(x_p.iter().zip(y_p).zip(dy_p));
                    match (relu, dr_p) {
                        (false, _) => {
                            for (o, ((&v, _), &g)) in pixels {
                                *o = alpha * g - (c0 + v * c1);
                            }
                        }
                        (true, None) => {
                            for (o, ((&v, &u), &g)) in pixels {
                                let g = T::keep_where_positive(g, u);
                                *o = alpha * g - (c0 + v * c1);
                            }
                        }
                        (true, Some(dr_p)) => {
                            for ((o, r), ((&v, &u), &g)) in dx_p
                                .iter_mut()
                                .zip(dr_p.iter_mut())
                                .zip(x_p.iter().zip(y_p).zip(dy_p))
                            {
                                let g = T::keep_where_positive(g, u);
                                *r = g;
                                *o = alpha * g - (c0 + v * c1);
                            }
                        }
                    }
                },
            );
            let (dgamma, dbeta) = params.split_at_mut(c);
            for (ch, &[sg, sgd]) in sums.iter().enumerate() {
                dgamma[ch] = T::from_f64(sgd * invstd[ch]);
                dbeta[ch] = T::from_f64(sg);
            }
        });
        out
    }
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(self.name(), s1.dtype(), T => {
            let x = cpu_slice::<T>(s1, l1, self.name())?;
            let y = cpu_slice::<T>(s2, l2, self.name())?;
            let dy = cpu_slice::<T>(s3, l3, self.name())?;
            let out = self.run(x, y, dy, l1.shape());
            let len = out.len();
            Ok((T::to_cpu_storage_owned(out), Shape::from(len)))
        })
    }
}
