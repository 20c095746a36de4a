//! 2-D convolution without bias, dilation or groups (a ResNet's) on the CPU as im2col + GEMM.
//!
//! The forward unrolls the input into a `(C_in·kh·kw) × (H_out·W_out)` matrix of patches per
//! image (im2col; skipped for a lone image of a 1×1 stride-1 unpadded convolution, whose patches
//! are the input itself) and multiplies it by the `C_out × (C_in·kh·kw)` weight matrix. Sizes
//! aim at [`GROUP_COLUMNS`] output pixels per product: an image with more is unrolled block by
//! block of output rows, so that its patches are still in cache when the product reads them;
//! images with fewer are unrolled side by side, so that late stages (a 2×2 output at 64 px)
//! still make wide products that read the weight once per group instead of once per image.
//! The backward, in one pass over the batch, accumulates the weight gradient `Σ dY · colsᵀ`
//! and forms the input gradient as `Wᵀ · dY` folded back onto the images (col2im), block by
//! block or group by group. When the work is large enough the images are split over the
//! kernels' thread pool, each thread's share with its own weight-gradient accumulator, summed
//! at the end (so the weight gradient's rounding depends on the thread count, as in PyTorch).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};

use super::fresh::{Fresh, pieces, with_fresh_output};
use super::gemm::{Float, Scratch, rm, rm_mut};
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

/// Output pixels a group of images aims for: images are unrolled side by side until their
/// patch matrix has this many columns.
const GROUP_COLUMNS: usize = 256;

/// Images per group of `g`'s batch; with `threads` > 1 small enough that every thread gets
/// at least one group.
fn group_size(g: &Geometry, threads: usize) -> usize {
    let size = GROUP_COLUMNS.div_ceil(g.p().max(1)).clamp(1, g.n.max(1));
    size.min(g.n.div_ceil(threads.max(1)).max(1))
}

/// Output rows per block when one image's patch matrix is formed block by block: about
/// [`GROUP_COLUMNS`] output pixels (at least one row).
fn rows_per_block(g: &Geometry) -> usize {
    (GROUP_COLUMNS / g.wo.max(1)).clamp(1, g.ho.max(1))
}

/// The blocks `[oy0, oy1)` of output rows one image's patch matrix is formed in.
fn row_blocks(g: &Geometry) -> impl Iterator<Item = (usize, usize)> {
    let (rows, ho) = (rows_per_block(g), g.ho);
    (0..ho)
        .step_by(rows)
        .map(move |oy0| (oy0, (oy0 + rows).min(ho)))
}

/// Elements of the patch-matrix scratch for groups of `group` images: a block of rows of
/// one image, or the whole group's matrix; none for a lone image of a pointwise convolution.
fn cols_len(g: &Geometry, group: usize) -> usize {
    match (group, g.pointwise()) {
        (1, true) => 0,
        (1, false) => g.k() * rows_per_block(g) * g.wo,
        _ => g.k() * g.p() * group,
    }
}

/// Copies a `rows × (m·p)` group matrix out into `m` per-image `rows × p` matrices stored one
/// after another in `images`.
fn scatter<T: Float>(group: &[T], images: &mut [T], rows: usize, p: usize) {
    let m = images.len() / (rows * p).max(1);
    for (i, image) in images.chunks_mut(rows * p).enumerate() {
        for (r, line) in image.chunks_mut(p).enumerate() {
            line.copy_from_slice(&group[(r * m + i) * p..(r * m + i + 1) * p]);
        }
    }
}

/// The inverse of [`scatter`]: per-image `rows × p` matrices side by side into a group matrix.
fn gather<T: Float>(images: &[T], group: &mut [T], rows: usize, p: usize) {
    let m = images.len() / (rows * p).max(1);
    for (i, image) in images.chunks(rows * p).enumerate() {
        for (r, line) in image.chunks(p).enumerate() {
            group[(r * m + i) * p..(r * m + i + 1) * p].copy_from_slice(line);
        }
    }
}

impl Conv2dOp {
    fn run<T: Float>(&self, x: &[T], w: &[T]) -> Vec<T> {
        let g = self.0;
        let (k, p) = (g.k(), g.p());
        let weights = rm(w, g.c_out, k);
        let parallel = use_threads(g.flops(), g.n);
        let threads = if parallel { super::pool::threads() } else { 1 };
        let group = group_size(&g, threads);
        // Scratch: the group's patch matrix and, for groups of several images, its output.
        let cols_len = cols_len(&g, group);
        let out_len = if group > 1 { g.c_out * p * group } else { 0 };
        let len = g.n * g.y_len();
        let (y, _) = with_fresh_output(len, pieces(len, group * g.y_len()), |parts| {
            let tasks: Vec<_> = parts.into_iter().zip(x.chunks(group * g.x_len())).collect();
            map_tasks_with(
                tasks,
                parallel,
                || (Scratch::new(cols_len), Scratch::new(out_len)),
                |(cols, out), (y_g, x_g)| {
                    let y_g = y_g.zeroed();
                    let m = x_g.len() / g.x_len();
                    if m == 1 && g.pointwise() {
                        T::matmul(rm_mut(y_g, g.c_out, p), weights, rm(x_g, k, p), false);
                        return;
                    }
                    if m == 1 {
                        // Block by block of output rows, so that the patches stay in cache
                        // between im2col and the product.
                        let mut y_n = rm_mut(y_g, g.c_out, p);
                        for (oy0, oy1) in row_blocks(&g) {
                            let width = (oy1 - oy0) * g.wo;
                            let cols = &mut cols[..k * width];
                            g.im2col_rows(x_g, cols, width, (oy0, oy1));
                            let dst = y_n.as_mut().subcols_mut(oy0 * g.wo, width);
                            T::matmul(dst, weights, rm(cols, k, width), false);
                        }
                        return;
                    }
                    let width = m * p;
                    for (i, x_n) in x_g.chunks(g.x_len()).enumerate() {
                        g.im2col_strided(x_n, &mut cols[i * p..], width);
                    }
                    let out = &mut out[..g.c_out * width];
                    T::matmul(
                        rm_mut(out, g.c_out, width),
                        weights,
                        rm(&cols[..k * width], k, width),
                        false,
                    );
                    scatter(out, y_g, g.c_out, p);
                },
            )
        });
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
        let nx = self.input_len();
        let passes = usize::from(self.input_grad) + usize::from(self.weight_grad);
        let parallel = use_threads(passes * g.flops(), g.n);
        // One weight-gradient accumulator per thread: the batch splits into that many shares.
        let shares = if parallel {
            super::pool::threads().min(g.n)
        } else {
            1
        };
        let share = g.n.div_ceil(shares).max(1);
        let group = group_size(&g, shares);
        // The input gradient in one part per share, then the weight gradient.
        let parts = pieces(nx, share * g.x_len()).chain([nw]);
        let cols_len = cols_len(&g, group);
        let dy_len = if group > 1 { g.c_out * p * group } else { 0 };
        let weights_t = rm(w, g.c_out, k).transpose();
        // One thread's share of the images, group by group: the weight gradient into
        // `partial`, the input gradient into its part of dx, with `cols` and `dyg` as scratch.
        let share_grads = |(cols, dyg): &mut (Scratch<T>, Scratch<T>),
                           partial: &mut [T],
                           (xs, dys, mut dxs): Task<'_, T>| {
            let groups = xs
                .chunks(group * g.x_len())
                .zip(dys.chunks(group * g.y_len()));
            for (j, (x_g, dy_g)) in groups.enumerate() {
                let m = x_g.len() / g.x_len();
                let width = m * p;
                let dx_g = dxs
                    .as_deref_mut()
                    .map(|d| &mut d[j * group * g.x_len()..j * group * g.x_len() + m * g.x_len()]);
                if m == 1 && !g.pointwise() {
                    // Block by block of output rows, as the forward.
                    let dy_n = rm(dy_g, g.c_out, p);
                    let mut dx_n = dx_g;
                    for (b, (oy0, oy1)) in row_blocks(&g).enumerate() {
                        let width = (oy1 - oy0) * g.wo;
                        let cols = &mut cols[..k * width];
                        let dy_b = dy_n.subcols(oy0 * g.wo, width);
                        if self.weight_grad {
                            g.im2col_rows(x_g, cols, width, (oy0, oy1));
                            let dst = rm_mut(partial, g.c_out, k);
                            T::matmul(dst, dy_b, rm(cols, k, width).transpose(), j > 0 || b > 0);
                        }
                        if let Some(dx_n) = dx_n.as_deref_mut() {
                            T::matmul(rm_mut(cols, k, width), weights_t, dy_b, false);
                            g.col2im_rows(cols, dx_n, width, (oy0, oy1));
                        }
                    }
                    continue;
                }
                if m == 1 {
                    let dy_n = rm(dy_g, g.c_out, p);
                    if self.weight_grad {
                        let dst = rm_mut(partial, g.c_out, k);
                        T::matmul(dst, dy_n, rm(x_g, k, p).transpose(), j > 0);
                    }
                    if let Some(dx_n) = dx_g {
                        T::matmul(rm_mut(dx_n, k, p), weights_t, dy_n, false);
                    }
                    continue;
                }
                let dyg = &mut dyg[..g.c_out * width];
                gather(dy_g, dyg, g.c_out, p);
                let dy_m = rm(dyg, g.c_out, width);
                let cols = &mut cols[..k * width];
                if self.weight_grad {
                    for (i, x_n) in x_g.chunks(g.x_len()).enumerate() {
                        g.im2col_strided(x_n, &mut cols[i * p..], width);
                    }
                    let dst = rm_mut(partial, g.c_out, k);
                    T::matmul(dst, dy_m, rm(cols, k, width).transpose(), j > 0);
                }
                if let Some(dx_g) = dx_g {
                    T::matmul(rm_mut(cols, k, width), weights_t, dy_m, false);
                    for (i, dx_n) in dx_g.chunks_mut(g.x_len()).enumerate() {
                        g.col2im_strided(&mut cols[i * p..], dx_n, width);
                    }
                }
            }
        };
        let scratch = || (Scratch::new(cols_len), Scratch::new(dy_len));
        let (out, ()) = with_fresh_output(nx + nw, parts, |mut parts| {
            let dw = parts.pop().expect("the weight-gradient part").zeroed();
            let mut dx_shares = parts.into_iter();
            let tasks: Vec<_> = x
                .chunks(share * g.x_len())
                .zip(dy.chunks(share * g.y_len()))
                .map(|(xs, dys)| (xs, dys, dx_shares.next()))
                .collect();
            if parallel {
                let partials = map_tasks_with(tasks, true, scratch, |s, (xs, dys, dxs)| {
                    let mut partial = vec![zero; nw];
                    share_grads(s, &mut partial, (xs, dys, dxs.map(Fresh::zeroed)));
                    partial
                });
                for partial in &partials {
                    for (acc, v) in dw.iter_mut().zip(partial) {
                        *acc += *v;
                    }
                }
            } else {
                let mut s = scratch();
                for (xs, dys, dxs) in tasks {
                    share_grads(&mut s, dw, (xs, dys, dxs.map(Fresh::zeroed)));
                }
            }
        });
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
