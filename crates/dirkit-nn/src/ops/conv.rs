//! 2-D convolution without bias, dilation or groups (a ResNet's) on the CPU as im2col + GEMM.
//!
//! Per image, the forward unrolls the input into a `(C_in·kh·kw) × (H_out·W_out)` matrix of
//! patches (im2col; skipped for 1×1 stride-1 unpadded convolutions, whose patches are the input
//! itself) and multiplies it by the `C_out × (C_in·kh·kw)` weight matrix. The backward, in one
//! pass over the batch, accumulates the weight gradient `Σ_n dY_n · cols_nᵀ` and forms the input
//! gradient as `Wᵀ · dY_n` folded back onto the image (col2im). When the work is large enough
//! the images are split over rayon's threads, one group per thread, each group with its own
//! weight-gradient accumulator, summed at the end (so the weight gradient's rounding depends on
//! the thread count, as in PyTorch).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};

use super::gemm::{Float, rm, rm_mut};
use super::im2col::Geometry;
use super::{cpu_slice, dispatch_float, map_tasks_with, use_threads};

/// 2-D convolution of `x` (N, C_in, H, W) with `weight` (C_out, C_in, kh, kw) at `stride` with
/// `padding` zeros on every side, no bias, no dilation, one group: output (N, C_out, H_out,
/// W_out) with `H_out = ⌊(H + 2·padding − kh) / stride⌋ + 1`, as candle's
/// `x.conv2d(weight, padding, stride, 1, 1)` and PyTorch's `F.conv2d`. Differentiable in both
/// arguments; on the CPU an im2col + GEMM op (f32, f64), elsewhere candle's convolution.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let geometry = Geometry::new(x.shape(), weight.shape(), stride, padding)?;
    if !x.device().is_cpu() {
        return x.conv2d(weight, padding, stride, 1, 1);
    }
    if x.dtype() != weight.dtype() {
        candle_core::bail!(
            "conv2d: input is {:?} but weight is {:?}",
            x.dtype(),
            weight.dtype()
        );
    }
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Conv2dOp(geometry))
}

/// The forward: `(x, w) ↦ y`, per image `Y_n = W · cols_n`.
struct Conv2dOp(Geometry);

impl Conv2dOp {
    fn run<T: Float>(&self, x: &[T], w: &[T]) -> Vec<T> {
        let g = self.0;
        let (k, p) = (g.k(), g.p());
        let zero = T::from_f64(0.0);
        let mut y = vec![zero; g.n * g.y_len()];
        let weights = rm(w, g.c_out, k);
        let cols_len = if g.pointwise() { 0 } else { k * p };
        let tasks: Vec<_> = y.chunks_mut(g.y_len()).zip(x.chunks(g.x_len())).collect();
        let parallel = use_threads(g.flops(), g.n);
        map_tasks_with(
            tasks,
            parallel,
            || vec![zero; cols_len],
            |cols, (y_n, x_n)| {
                let patches: &[T] = if g.pointwise() {
                    x_n
                } else {
                    g.im2col(x_n, cols);
                    cols
                };
                T::matmul(rm_mut(y_n, g.c_out, p), weights, rm(patches, k, p), false);
            },
        );
        y
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let shape = Shape::from((g.n, g.c_out, g.ho, g.wo));
        dispatch_float!(self.name(), s1.dtype(), T => {
            let x = cpu_slice::<T>(s1, l1, self.name())?;
            let w = cpu_slice::<T>(s2, l2, self.name())?;
            Ok((T::to_cpu_storage_owned(self.run(x, w)), shape))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let backward = Conv2dBackward {
            geometry: self.0,
            input_grad: x.track_op(),
            weight_grad: w.track_op(),
        };
        if !backward.input_grad && !backward.weight_grad {
            return Ok((None, None));
        }
        let packed = x.apply_op3_no_bwd(w, &dy.contiguous()?, &backward)?;
        let nx = backward.input_len();
        let dx = match backward.input_grad {
            true => Some(packed.narrow(0, 0, nx)?.reshape(x.shape())?),
            false => None,
        };
        let dw = match backward.weight_grad {
            true => Some(packed.narrow(0, nx, w.elem_count())?.reshape(w.shape())?),
            false => None,
        };
        Ok((dx, dw))
    }
}

/// The backward: `(x, w, dY) ↦ [dx; dW]` flattened into one vector (either part left out when
/// its argument needs no gradient).
struct Conv2dBackward {
    geometry: Geometry,
    input_grad: bool,
    weight_grad: bool,
}

impl Conv2dBackward {
    /// Elements of the input-gradient part.
    fn input_len(&self) -> usize {
        if self.input_grad {
            self.geometry.n * self.geometry.x_len()
        } else {
            0
        }
    }

    fn run<T: Float>(&self, x: &[T], w: &[T], dy: &[T]) -> Vec<T> {
        let g = self.geometry;
        let (k, p) = (g.k(), g.p());
        let nw = if self.weight_grad { g.c_out * k } else { 0 };
        let zero = T::from_f64(0.0);
        let mut out = vec![zero; self.input_len() + nw];
        let (dx, dw) = out.split_at_mut(self.input_len());
        let passes = usize::from(self.input_grad) + usize::from(self.weight_grad);
        let parallel = use_threads(passes * g.flops(), g.n);
        // One weight-gradient accumulator per thread: the batch splits into that many groups.
        let groups = if parallel {
            rayon::current_num_threads().min(g.n)
        } else {
            1
        };
        let group = g.n.div_ceil(groups).max(1);
        let mut dx_groups = dx.chunks_mut(group * g.x_len());
        let tasks: Vec<_> = x
            .chunks(group * g.x_len())
            .zip(dy.chunks(group * g.y_len()))
            .map(|(xs, dys)| (xs, dys, dx_groups.next()))
            .collect();
        let cols_len = if g.pointwise() { 0 } else { k * p };
        let weights_t = rm(w, g.c_out, k).transpose();
        // One group of images: its weight gradient into `partial`, its input gradient into
        // its part of dx, with `cols` as scratch.
        let group_grads =
            |cols: &mut Vec<T>, partial: &mut [T], (xs, dys, mut dxs): Task<'_, T>| {
                let images = xs.chunks(g.x_len()).zip(dys.chunks(g.y_len()));
                for (i, (x_n, dy_n)) in images.enumerate() {
                    let dy_n = rm(dy_n, g.c_out, p);
                    if self.weight_grad {
                        let patches: &[T] = if g.pointwise() {
                            x_n
                        } else {
                            g.im2col(x_n, cols);
                            cols
                        };
                        let dst = rm_mut(partial, g.c_out, k);
                        T::matmul(dst, dy_n, rm(patches, k, p).transpose(), i > 0);
                    }
                    if let Some(dxs) = dxs.as_deref_mut() {
                        let dx_n = &mut dxs[i * g.x_len()..(i + 1) * g.x_len()];
                        if g.pointwise() {
                            T::matmul(rm_mut(dx_n, k, p), weights_t, dy_n, false);
                        } else {
                            T::matmul(rm_mut(cols, k, p), weights_t, dy_n, false);
                            g.col2im(cols, dx_n);
                        }
                    }
                }
            };
        if parallel {
            let partials = map_tasks_with(
                tasks,
                true,
                || vec![zero; cols_len],
                |cols, task| {
                    let mut partial = vec![zero; nw];
                    group_grads(cols, &mut partial, task);
                    partial
                },
            );
            for partial in &partials {
                for (acc, v) in dw.iter_mut().zip(partial) {
                    *acc += *v;
                }
            }
        } else {
            let mut cols = vec![zero; cols_len];
            for task in tasks {
                group_grads(&mut cols, dw, task);
            }
        }
        out
    }
}

/// A group of images for the backward: inputs, output gradients, input-gradient slots.
type Task<'a, T> = (&'a [T], &'a [T], Option<&'a mut [T]>);

impl CustomOp3 for Conv2dBackward {
    fn name(&self) -> &'static str {
        "conv2d-backward"
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
            let w = cpu_slice::<T>(s2, l2, self.name())?;
            let dy = cpu_slice::<T>(s3, l3, self.name())?;
            let out = self.run(x, w, dy);
            let len = out.len();
            Ok((T::to_cpu_storage_owned(out), Shape::from(len)))
        })
    }
}
