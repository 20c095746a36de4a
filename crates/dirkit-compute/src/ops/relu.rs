//! ReLU and the residual join `relu(a + b)` on the CPU, with a backward that masks the gradient
//! by the output's sign in one loop (candle's ReLU backward builds a comparison tensor, converts
//! it and multiplies: three passes, the comparison alone ~10× a multiplication).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, WithDType};

use super::fresh::{pieces, with_fresh_output};
use super::gemm::Float;
use super::{cpu_slice, dispatch_float, map_tasks, use_threads};
use crate::error::ComputeError;

/// Elements per parallel chunk of an element-wise kernel.
const CHUNK: usize = 1 << 15;

/// `max(0, x)` element-wise (NaN stays NaN, as in PyTorch). The gradient passes where the
/// output is positive (PyTorch's convention: none at 0). On the CPU one op each way (f32,
/// f64), elsewhere candle's `relu`.
pub fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() {
        return x.relu();
    }
    x.contiguous()?.apply_op1(Relu)
}

/// `max(0, a + b)` for `a` and `b` of one shape: a residual block's join. The gradient of
/// both inputs is the output gradient where the output is positive. On the CPU one fused op
/// each way (f32, f64), elsewhere candle's `(a + b).relu()`.
pub fn add_relu(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if a.shape() != b.shape() {
        return Err(ComputeError::Shape(format!(
            "add_relu: {:?} and {:?} differ",
            a.shape(),
            b.shape()
        ))
        .into());
    }
    if !a.device().is_cpu() {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// A vector of `len` elements written by `f(chunk, offset)` over consecutive chunks that
/// together cover it (each zeroed first), on the kernels' thread pool when it is long;
/// `offset` is the chunk's start.
fn map_new<T: Float>(len: usize, f: impl Fn(&mut [T], usize) + Sync) -> Vec<T> {
    let parallel = use_threads(len, len / CHUNK);
    with_fresh_output(len, pieces(len, CHUNK), |parts| {
        let tasks: Vec<_> = parts.into_iter().enumerate().collect();
        map_tasks(tasks, parallel, |(i, part)| f(part.zeroed(), i * CHUNK));
    })
    .0
}

fn relu_forward<T: Float>(x: &[T]) -> Vec<T> {
    let zero = T::from_f64(0.0);
    map_new(x.len(), |out, start| {
        for (o, &v) in out.iter_mut().zip(&x[start..]) {
            *o = if v < zero { zero } else { v };
        }
    })
}

fn add_relu_forward<T: Float>(a: &[T], b: &[T]) -> Vec<T> {
    let zero = T::from_f64(0.0);
    map_new(a.len(), |out, start| {
        for (o, (&u, &v)) in out.iter_mut().zip(a[start..].iter().zip(&b[start..])) {
            let s = u + v;
            *o = if s < zero { zero } else { s };
        }
    })
}

/// The forward `x ↦ max(0, x)`.
struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(self.name(), s.dtype(), T => {
            let x = cpu_slice::<T>(s, l, self.name())?;
            Ok((T::to_cpu_storage_owned(relu_forward(x)), l.shape().clone()))
        })
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(mask_gradient(y, dy)?))
    }
}

/// The forward `(a, b) ↦ max(0, a + b)`.
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(self.name(), s1.dtype(), T => {
            let a = cpu_slice::<T>(s1, l1, self.name())?;
            let b = cpu_slice::<T>(s2, l2, self.name())?;
            Ok((T::to_cpu_storage_owned(add_relu_forward(a, b)), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = mask_gradient(y, dy)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `dy` where `y > 0`, else 0.
fn mask_gradient(y: &Tensor, dy: &Tensor) -> candle_core::Result<Tensor> {
    y.apply_op2_no_bwd(&dy.contiguous()?, &ReluBackward)
}

/// The backward `(y, dy) ↦ dy·[y > 0]`.
struct ReluBackward;

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(self.name(), s1.dtype(), T => {
            let y = cpu_slice::<T>(s1, l1, self.name())?;
            let dy = cpu_slice::<T>(s2, l2, self.name())?;
            let dx = map_new(y.len(), |out, start| {
                for (o, (&v, &g)) in out.iter_mut().zip(y[start..].iter().zip(&dy[start..])) {
                    *o = T::keep_where_positive(g, v);
                }
            });
            Ok((T::to_cpu_storage_owned(dx), l1.shape().clone()))
        })
    }
}
