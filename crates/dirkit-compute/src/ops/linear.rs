//! A fully connected layer `y = x Wᵀ + b` on the CPU as one op with its own backward.
//!
//! candle's `Linear` composes a matmul against a transposed weight with a broadcast bias add;
//! its backward sums the bias gradient over the batch (a reduction over a non-last dimension,
//! done through a transposed copy) and materialises transposed gradients. Here the forward
//! starts every output row from the bias and accumulates `x Wᵀ` into it (faer's GEMM reads
//! the transpose in place), and the backward forms `dx = dY W`, `dW = dYᵀ x` and
//! `db = Σ_rows dY` directly. Large products are split over the kernels' thread pool by output
//! rows (forward, `dx`) or by output features (`dW`, `db`), so no partial sums are merged and
//! the result does not depend on the thread count.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};

use super::gemm::{Float, rm, rm_mut};
use super::{cpu_slice, dispatch_float, map_tasks, product_threads};

/// `x Wᵀ + b` for `x` (…, in), `weight` (out, in) and `bias` (out): output (…, out), as
/// `candle_nn::Linear` and PyTorch's `F.linear`. Differentiable in all three; on the CPU one
/// op per direction (f32, f64), elsewhere candle's matmul and broadcast add. Inputs that are
/// not contiguous are copied first.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let (out_dim, in_dim) = weight.dims2()?;
    let dims = x.dims();
    let Some((&last, lead)) = dims.split_last() else {
        candle_core::bail!("linear: the input must have at least one dimension")
    };
    if in_dim == 0 || out_dim == 0 {
        candle_core::bail!(
            "linear: the weight is {out_dim} × {in_dim}; a layer needs at least one input and one output feature"
        );
    }
    if last != in_dim {
        candle_core::bail!(
            "linear: input has {last} features per row but the weight is {out_dim} × {in_dim}"
        );
    }
    if let Some(b) = bias
        && b.dims() != [out_dim]
    {
        candle_core::bail!(
            "linear: bias is {:?}, expected [{out_dim}] for a {out_dim} × {in_dim} weight",
            b.dims()
        );
    }
    let rows: usize = lead.iter().product();
    let mut out_dims = lead.to_vec();
    out_dims.push(out_dim);
    if !x.device().is_cpu() {
        let y = x.reshape((rows, in_dim))?.matmul(&weight.t()?)?;
        let y = match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        return y.reshape(out_dims);
    }
    for (name, t) in [("weight", Some(weight)), ("bias", bias)] {
        if let Some(t) = t
            && t.dtype() != x.dtype()
        {
            candle_core::bail!(
                "linear: input is {:?} but {name} is {:?}",
                x.dtype(),
                t.dtype()
            );
        }
    }
    let geometry = Geometry {
        rows,
        in_dim,
        out_dim,
    };
    let x2 = x.contiguous()?.reshape((rows, in_dim))?;
    let w = weight.contiguous()?;
    let y = match bias {
        Some(b) => x2.apply_op3(&w, &b.contiguous()?, LinearOp(geometry))?,
        None => x2.apply_op2(&w, LinearOp(geometry))?,
    };
    y.reshape(out_dims)
}

/// The sizes of one product: `rows` input rows of `in_dim` features to `out_dim` outputs.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    rows: usize,
    in_dim: usize,
    out_dim: usize,
}

impl Geometry {
    /// Multiply-adds of one of the three products.
    fn flops(&self) -> usize {
        self.rows * self.in_dim * self.out_dim
    }

    /// Pieces to split `len` rows into on the kernels' thread pool (1: the calling thread).
    fn pieces(&self, len: usize, passes: usize) -> usize {
        if product_threads(passes * self.flops(), len) {
            super::pool::threads().min(len)
        } else {
            1
        }
    }
}

/// The forward op: `(x, W[, b]) ↦ x Wᵀ (+ b)`.
struct LinearOp(Geometry);

impl LinearOp {
    fn run<T: Float>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
        let g = self.0;
        let mut y = vec![T::from_f64(0.0); g.rows * g.out_dim];
        if let Some(b) = b {
            for row in y.chunks_mut(g.out_dim) {
                row.copy_from_slice(b);
            }
        }
        let weight_t = rm(w, g.out_dim, g.in_dim).transpose();
        let rows_per = g.rows.div_ceil(g.pieces(g.rows, 1)).max(1);
        let product = |(y_part, x_part): (&mut [T], &[T])| {
            let n = x_part.len() / g.in_dim;
            T::matmul(
                rm_mut(y_part, n, g.out_dim),
                rm(x_part, n, g.in_dim),
                weight_t,
                b.is_some(),
            );
        };
        if rows_per < g.rows {
            let tasks: Vec<_> = y
                .chunks_mut(rows_per * g.out_dim)
                .zip(x.chunks(rows_per * g.in_dim))
                .collect();
            map_tasks(tasks, true, product);
        } else if g.rows > 0 {
            product((&mut y, x));
        }
        y
    }

    /// The CPU forward of both arities (with and without a bias).
    fn cpu_forward(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (ws, wl): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = Shape::from((self.0.rows, self.0.out_dim));
        dispatch_float!("linear", xs.dtype(), T => {
            let x = cpu_slice::<T>(xs, xl, "linear")?;
            let w = cpu_slice::<T>(ws, wl, "linear")?;
            let b = bias.map(|(s, l)| cpu_slice::<T>(s, l, "linear")).transpose()?;
            Ok((T::to_cpu_storage_owned(self.run(x, w, b)), shape))
        })
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let backward = LinearBackward {
            geometry: self.0,
            input_grad: x.track_op(),
            weight_grad: w.track_op(),
            bias_grad: b.is_some_and(|b| b.track_op()),
        };
        if !(backward.input_grad || backward.weight_grad || backward.bias_grad) {
            return Ok((None, None, None));
        }
        let packed = x.apply_op3_no_bwd(w, &dy.contiguous()?, &backward)?;
        let [nx, nw, nb] = backward.lens();
        let part = |on: bool, start: usize, len: usize, like: &Tensor| match on {
            true => packed
                .narrow(0, start, len)?
                .reshape(like.shape())
                .map(Some),
            false => Ok(None),
        };
        let dx = part(backward.input_grad, 0, nx, x)?;
        let dw = part(backward.weight_grad, nx, nw, w)?;
        let db = match b {
            Some(b) => part(backward.bias_grad, nx + nw, nb, b)?,
            None => None,
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.cpu_forward((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, w, None, dy)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "linear"
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
        self.cpu_forward((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(x, w, Some(b), dy)
    }
}

/// The backward: `(x, W, dY) ↦ [dx; dW; db]` flattened into one vector, each part present only
/// when its argument needs a gradient.
struct LinearBackward {
    geometry: Geometry,
    input_grad: bool,
    weight_grad: bool,
    bias_grad: bool,
}

impl LinearBackward {
    /// Elements of the dx, dW and db parts (0 when left out).
    fn lens(&self) -> [usize; 3] {
        let g = self.geometry;
        [
            if self.input_grad {
                g.rows * g.in_dim
            } else {
                0
            },
            if self.weight_grad {
                g.out_dim * g.in_dim
            } else {
                0
            },
            if self.bias_grad { g.out_dim } else { 0 },
        ]
    }

    fn run<T: Float>(&self, x: &[T], w: &[T], dy: &[T]) -> Vec<T> {
        let g = self.geometry;
        let [nx, nw, nb] = self.lens();
        let zero = T::from_f64(0.0);
        let mut out = vec![zero; nx + nw + nb];
        let (dx, rest) = out.split_at_mut(nx);
        let (dw, db) = rest.split_at_mut(nw);
        let dy_m = rm(dy, g.rows, g.out_dim);
        if self.input_grad {
            // dx = dY · W, by row blocks.
            let weights = rm(w, g.out_dim, g.in_dim);
            let rows_per = g.rows.div_ceil(g.pieces(g.rows, 1)).max(1);
            let block = |(k, dx_part): (usize, &mut [T])| {
                let n = dx_part.len() / g.in_dim;
                let r0 = k * rows_per;
                T::matmul(
                    rm_mut(dx_part, n, g.in_dim),
                    dy_m.subrows(r0, n),
                    weights,
                    false,
                );
            };
            if rows_per < g.rows {
                let tasks: Vec<_> = dx.chunks_mut(rows_per * g.in_dim).enumerate().collect();
                map_tasks(tasks, true, block);
            } else if g.rows > 0 {
                block((0, dx));
            }
        }
        if self.weight_grad || self.bias_grad {
            // dW = dYᵀ · x and db = Σ_rows dY, by blocks of output features.
            let passes = usize::from(self.weight_grad);
            let feats_per = g
                .out_dim
                .div_ceil(g.pieces(g.out_dim, passes.max(1)))
                .max(1);
            let xs = rm(x, g.rows, g.in_dim);
            let block = |k: usize, dw_part: Option<&mut [T]>, db_part: Option<&mut [T]>| {
                let j0 = k * feats_per;
                if let Some(dw_part) = dw_part {
                    let m = dw_part.len() / g.in_dim;
                    let lhs = dy_m.subcols(j0, m).transpose();
                    T::matmul(rm_mut(dw_part, m, g.in_dim), lhs, xs, false);
                }
                if let Some(db_part) = db_part {
                    let m = db_part.len();
                    let mut acc = vec![0.0f64; m];
                    for row in dy.chunks(g.out_dim) {
                        for (a, &v) in acc.iter_mut().zip(&row[j0..j0 + m]) {
                            *a += v.to_f64();
                        }
                    }
                    for (d, a) in db_part.iter_mut().zip(acc) {
                        *d = T::from_f64(a);
                    }
                }
            };
            let pieces = g.out_dim.div_ceil(feats_per);
            let dw_parts: Vec<Option<&mut [T]>> = if self.weight_grad {
                dw.chunks_mut(feats_per * g.in_dim).map(Some).collect()
            } else {
                (0..pieces).map(|_| None).collect()
            };
            let db_parts: Vec<Option<&mut [T]>> = if self.bias_grad {
                db.chunks_mut(feats_per).map(Some).collect()
            } else {
                (0..pieces).map(|_| None).collect()
            };
            let tasks: Vec<_> = dw_parts.into_iter().zip(db_parts).enumerate().collect();
            if pieces > 1 {
                map_tasks(tasks, true, |(k, (dw_part, db_part))| {
                    block(k, dw_part, db_part)
                });
            } else {
                for (k, (dw_part, db_part)) in tasks {
                    block(k, dw_part, db_part);
                }
            }
        }
        out
    }
}

impl CustomOp3 for LinearBackward {
    fn name(&self) -> &'static str {
        "linear-backward"
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
