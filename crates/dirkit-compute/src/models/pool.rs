//! 2-D max pooling with PyTorch's semantics and a correct gradient for any kernel and stride.
//!
//! candle 0.11's `max_pool2d` scales its gradient by 1/k² unless kernel == stride, and has no
//! padding, so ResNet's stem pool (3×3, stride 2, padding 1) cannot use it for training. Two
//! exact implementations live here:
//!
//! - on the CPU (f32, f64) a custom op loops over each window once, forward and backward;
//! - elsewhere (CUDA, Metal, half precision) a composition of ops whose gradients candle gets
//!   right: pad with −∞, take the k² shifted strided views (a reshape by the stride turns each
//!   into a plain `narrow`), stack them and reduce with `max`.
//!
//! [`max_pool2d`] picks the CPU op when it applies and the composition otherwise; both give
//! PyTorch's `max_pool2d(x, k, s, p)` (floor mode, no dilation) forward values. Their
//! gradients agree wherever a window's maximum is unique; on exact ties the CPU op sends the
//! gradient to the first maximum (row-major, as PyTorch does) and the composition to every one.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor, WithDType,
};

use crate::error::invalid;

/// Kernel, stride and padding of a square pooling window, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Window {
    /// Checks PyTorch's constraints (kernel, stride ≥ 1, padding ≤ kernel / 2) and that the
    /// input of `h × w` pixels yields at least one output.
    fn checked(
        kernel: usize,
        stride: usize,
        padding: usize,
        h: usize,
        w: usize,
    ) -> candle_core::Result<Self> {
        if kernel == 0 {
            return invalid("max_pool2d kernel", kernel, "at least 1");
        }
        if stride == 0 {
            return invalid("max_pool2d stride", stride, "at least 1");
        }
        if padding > kernel / 2 {
            return invalid(
                "max_pool2d padding",
                padding,
                "at most half the kernel size",
            );
        }
        if h == 0 || w == 0 || h + 2 * padding < kernel || w + 2 * padding < kernel {
            return invalid(
                "max_pool2d input size",
                format!("{h}x{w}"),
                "non-empty and at least the kernel size once padded",
            );
        }
        Ok(Self {
            kernel,
            stride,
            padding,
        })
    }

    /// Output length along a dimension of `n` input pixels (floor mode).
    fn out_len(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Input indices `[lo, hi)` covered by output position `o` along a dimension of `n` pixels,
    /// padding excluded (never empty since padding < kernel).
    fn span(&self, o: usize, n: usize) -> (usize, usize) {
        let start = o * self.stride;
        let lo = start.saturating_sub(self.padding);
        let hi = (start + self.kernel).saturating_sub(self.padding).min(n);
        (lo, hi)
    }

    /// For each output of one `h × w` plane, the in-plane index of its window's first maximum
    /// (row-major; a NaN counts as the maximum, as in PyTorch).
    fn argmax_plane<T: WithDType>(&self, plane: &[T], h: usize, w: usize, out: &mut [usize]) {
        let cols: Vec<(usize, usize)> = (0..self.out_len(w)).map(|o| self.span(o, w)).collect();
        for (oy, row_out) in out.chunks_exact_mut(cols.len()).enumerate() {
            let (y0, y1) = self.span(oy, h);
            for (slot, &(x0, x1)) in row_out.iter_mut().zip(&cols) {
                let mut best = y0 * w + x0;
                let mut best_value = plane[best];
                for y in y0..y1 {
                    let start = y * w + x0;
                    for (i, &v) in plane[start..y * w + x1].iter().enumerate() {
                        if v > best_value || v.to_f64().is_nan() {
                            best = start + i;
                            best_value = v;
                        }
                    }
                }
                *slot = best;
            }
        }
    }
}

/// Max pooling over the last two dimensions of `x` (N, C, H, W) with a `kernel × kernel`
/// window, `stride` and zero-cost `padding` (padded cells never win), as PyTorch's
/// `F.max_pool2d(x, kernel, stride, padding)`; output (N, C, H_out, W_out) with
/// `H_out = ⌊(H + 2·padding − kernel) / stride⌋ + 1`. Differentiable with the exact gradient.
pub fn max_pool2d(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let window = Window::checked(kernel, stride, padding, h, w)?;
    let on_host = matches!(x.device(), Device::Cpu) && matches!(x.dtype(), DType::F32 | DType::F64);
    if on_host {
        x.contiguous()?.apply_op1(MaxPoolOp(window))
    } else {
        shifted_max(x, window)
    }
}

/// The device-generic form of [`max_pool2d`]: the maximum over the k² shifted strided views of
/// the −∞-padded input, built only from ops with correct gradients (`cat`, `reshape`,
/// `narrow`, `stack`, `max`). Same values as [`max_pool2d`]; on exact ties every maximum of a
/// window receives its gradient. Costs about k² times the output in memory.
pub fn max_pool2d_shifted(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    shifted_max(x, Window::checked(kernel, stride, padding, h, w)?)
}

fn shifted_max(x: &Tensor, win: Window) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = (win.out_len(h), win.out_len(w));
    let s = win.stride;
    // Row s·i + dy = s·(i + dy / s) + dy % s: after padding to s·m rows and reshaping the row
    // axis to (m, s), every shifted strided view is a narrow along m and a pick along s.
    let extra = (win.kernel - 1) / s;
    let (my, mx) = (ho + extra, wo + extra);
    let x = fit_with_neg_inf(x, 2, win.padding, s * my)?;
    let x = fit_with_neg_inf(&x, 3, win.padding, s * mx)?;
    let x = x.reshape((n, c, my, s, mx, s))?;
    let mut views = Vec::with_capacity(win.kernel * win.kernel);
    for dy in 0..win.kernel {
        for dx in 0..win.kernel {
            let v = x
                .narrow(2, dy / s, ho)?
                .narrow(3, dy % s, 1)?
                .narrow(4, dx / s, wo)?
                .narrow(5, dx % s, 1)?
                .squeeze(5)?
                .squeeze(3)?;
            views.push(v);
        }
    }
    Tensor::stack(&views, 4)?.max(4)
}

/// Pads dimension `dim` of `x` with `before` cells of −∞, then pads with −∞ or crops at the end
/// to exactly `total` cells (cropped cells lie beyond every window).
fn fit_with_neg_inf(
    x: &Tensor,
    dim: usize,
    before: usize,
    total: usize,
) -> candle_core::Result<Tensor> {
    let neg_inf = |count: usize| -> candle_core::Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[dim] = count;
        Tensor::full(f64::NEG_INFINITY, dims, x.device())?.to_dtype(x.dtype())
    };
    let keep = x.dim(dim)?.min(total - before);
    let after = total - before - keep;
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(neg_inf(before)?);
    }
    parts.push(x.narrow(dim, 0, keep)?);
    if after > 0 {
        parts.push(neg_inf(after)?);
    }
    Tensor::cat(&parts, dim)
}

/// The CPU forward: one pass over each window, recording nothing (the backward recomputes the
/// maxima, which is cheaper than keeping an index tensor alive in the graph).
struct MaxPoolOp(Window);

impl MaxPoolOp {
    fn run<T: WithDType>(
        &self,
        x: &[T],
        (n, c, h, w): (usize, usize, usize, usize),
    ) -> (Vec<T>, Shape) {
        let (ho, wo) = (self.0.out_len(h), self.0.out_len(w));
        let mut out = Vec::with_capacity(n * c * ho * wo);
        let mut idx = vec![0usize; ho * wo];
        for plane in x.chunks_exact(h * w) {
            self.0.argmax_plane(plane, h, w, &mut idx);
            out.extend(idx.iter().map(|&i| plane[i]));
        }
        (out, Shape::from((n, c, ho, wo)))
    }
}

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "max-pool2d"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = layout.shape().dims4()?;
        let Some((lo, hi)) = layout.contiguous_offsets() else {
            candle_core::bail!("max-pool2d: non-contiguous input");
        };
        Ok(match storage {
            CpuStorage::F32(x) => {
                let (out, shape) = self.run(&x[lo..hi], dims);
                (CpuStorage::F32(out), shape)
            }
            CpuStorage::F64(x) => {
                let (out, shape) = self.run(&x[lo..hi], dims);
                (CpuStorage::F64(out), shape)
            }
            other => candle_core::bail!("max-pool2d: f32 or f64 only, got {:?}", other.dtype()),
        })
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = arg
            .detach()
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.detach().contiguous()?, &MaxPoolBackward(self.0))?;
        Ok(Some(grad))
    }
}

/// The CPU backward: `(x, ∂L/∂out) ↦ ∂L/∂x`, each output's gradient added at its window's first
/// maximum (overlapping windows accumulate).
struct MaxPoolBackward(Window);

impl MaxPoolBackward {
    fn run<T: WithDType>(
        &self,
        x: &[T],
        g: &[T],
        (_, _, h, w): (usize, usize, usize, usize),
    ) -> Vec<T> {
        let plane_out = self.0.out_len(h) * self.0.out_len(w);
        let mut grad = vec![T::from_f64(0.0); x.len()];
        let mut idx = vec![0usize; plane_out];
        for ((plane, gp), gi) in x
            .chunks_exact(h * w)
            .zip(g.chunks_exact(plane_out))
            .zip(grad.chunks_exact_mut(h * w))
        {
            self.0.argmax_plane(plane, h, w, &mut idx);
            for (&i, &v) in idx.iter().zip(gp) {
                gi[i] += v;
            }
        }
        grad
    }
}

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "max-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims4()?;
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("max-pool2d-backward: non-contiguous input");
        };
        let storage = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                CpuStorage::F32(self.run(&x[a0..a1], &g[b0..b1], dims))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                CpuStorage::F64(self.run(&x[a0..a1], &g[b0..b1], dims))
            }
            _ => candle_core::bail!("max-pool2d-backward: f32 or f64 inputs of one dtype"),
        };
        Ok((storage, l1.shape().clone()))
    }
}
