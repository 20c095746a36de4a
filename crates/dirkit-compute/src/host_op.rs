//! Running a host (CPU) computation inside a candle custom op on any device.
//!
//! Some steps (ranking, sorting with a custom tie rule) have no device kernel in candle. A
//! [`HostOp1`] computes them on the CPU in f64 and returns the result on the input's device,
//! so the same code path serves CPU and CUDA; on CUDA it costs one device→host→device copy.
//! [`host_cpu_fwd`] and `host_cuda_fwd` (with the `cuda` feature) are the bodies of a
//! `CustomOp1`'s `cpu_fwd` / `cuda_fwd` for such an op, so that it can also carry a `bwd`;
//! [`HostGrad1`] with [`Differentiable`] is that custom op, written once.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Shape, Tensor, WithDType};

/// A unary op computed on the host from a contiguous f64 copy of its input.
pub trait HostOp1: Send + Sync {
    /// Name for error messages and graphs.
    fn name(&self) -> &'static str;
    /// Output values (row-major) and shape from the input's values and shape.
    fn compute(&self, input: &[f64], shape: &Shape) -> candle_core::Result<(Vec<f64>, Shape)>;
}

/// Applies a [`HostOp1`] to `x` (any device, any float dtype): the result has `x`'s device and
/// dtype and no gradient of its own (wrap it in a custom op for that).
pub fn apply_host<O: HostOp1>(op: &O, x: &Tensor) -> candle_core::Result<Tensor> {
    let values: Vec<f64> = x
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1()?;
    let (out, shape) = op.compute(&values, x.shape())?;
    Tensor::from_vec(out, shape, x.device())?.to_dtype(x.dtype())
}

/// Copies a CPU storage slice described by `layout` into a contiguous f64 vector.
pub fn cpu_to_f64(storage: &CpuStorage, layout: &Layout) -> candle_core::Result<Vec<f64>> {
    fn gather<T: Copy>(data: &[T], layout: &Layout, f: impl Fn(T) -> f64) -> Vec<f64> {
        match layout.contiguous_offsets() {
            Some((a, b)) => data[a..b].iter().map(|&v| f(v)).collect(),
            None => strided_offsets(layout).map(|i| f(data[i])).collect(),
        }
    }
    Ok(match storage {
        CpuStorage::F32(d) => gather(d, layout, |v| v as f64),
        CpuStorage::F64(d) => gather(d, layout, |v| v),
        CpuStorage::F16(d) => gather(d, layout, |v| v.to_f64()),
        CpuStorage::BF16(d) => gather(d, layout, |v| v.to_f64()),
        other => candle_core::bail!("host op: unsupported dtype {:?}", other.dtype()),
    })
}

/// Storage offsets of a layout's elements in row-major order (candle keeps its own iterator
/// private).
fn strided_offsets(layout: &Layout) -> impl Iterator<Item = usize> + '_ {
    let dims = layout.dims();
    let stride = layout.stride();
    let count = layout.shape().elem_count();
    let mut index = vec![0usize; dims.len()];
    let mut offset = layout.start_offset();
    (0..count).map(move |k| {
        let current = offset;
        if k + 1 < count {
            // Odometer step: bump the last dimension, carrying into earlier ones.
            for d in (0..dims.len()).rev() {
                index[d] += 1;
                offset += stride[d];
                if index[d] < dims[d] {
                    break;
                }
                offset -= stride[d] * dims[d];
                index[d] = 0;
            }
        }
        current
    })
}

/// Converts contiguous f64 values into a CPU storage of the float `dtype` (f16, bf16, f32, f64).
pub fn f64_to_cpu(values: Vec<f64>, dtype: DType) -> candle_core::Result<CpuStorage> {
    fn convert<T: WithDType>(values: &[f64]) -> Vec<T> {
        values.iter().map(|&v| T::from_f64(v)).collect()
    }
    Ok(match dtype {
        DType::F64 => CpuStorage::F64(values),
        DType::F32 => CpuStorage::F32(convert(&values)),
        DType::F16 => CpuStorage::F16(convert(&values)),
        DType::BF16 => CpuStorage::BF16(convert(&values)),
        other => candle_core::bail!("host op: unsupported dtype {other:?}"),
    })
}

/// Runs `op` on a CPU storage: the body of a `CustomOp1::cpu_fwd`. The output has the input's
/// dtype.
pub fn host_cpu_fwd<O: HostOp1 + ?Sized>(
    op: &O,
    storage: &CpuStorage,
    layout: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let values = cpu_to_f64(storage, layout)?;
    let (out, shape) = op.compute(&values, layout.shape())?;
    if out.len() != shape.elem_count() {
        candle_core::bail!(
            "host op {}: {} values for shape {shape:?}",
            op.name(),
            out.len()
        );
    }
    Ok((f64_to_cpu(out, storage.dtype())?, shape))
}

/// Runs `op` on a CUDA storage through the host (device→host, compute, host→device): the body of
/// a `CustomOp1::cuda_fwd`. The output has the input's dtype and device.
#[cfg(feature = "cuda")]
pub fn host_cuda_fwd<O: HostOp1 + ?Sized>(
    op: &O,
    storage: &candle_core::CudaStorage,
    layout: &Layout,
) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
    use candle_core::backend::BackendDevice;
    // The host copy is the whole buffer, so `layout`'s offsets and strides still apply.
    let host = storage.to_cpu_storage()?;
    let (out, shape) = host_cpu_fwd(op, &host, layout)?;
    let device_out = storage.device().storage_from_cpu_storage_owned(out)?;
    Ok((device_out, shape))
}

/// A [`HostOp1`] with a gradient: wrapped in [`Differentiable`], a candle custom op that runs on
/// any device and carries a backward pass.
pub trait HostGrad1: HostOp1 {
    /// The gradient with respect to the input, from the input `arg`, the output `res` and the
    /// output's gradient `grad_res` (all detached, on the input's device).
    fn grad(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Tensor>;
}

/// A [`HostGrad1`] as a `CustomOp1`: `x.apply_op1(Differentiable(op))`.
#[derive(Debug, Clone)]
pub struct Differentiable<O>(pub O);

impl<O: HostGrad1> candle_core::CustomOp1 for Differentiable<O> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        host_cpu_fwd(&self.0, storage, layout)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        host_cuda_fwd(&self.0, storage, layout)
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.0.grad(
            &arg.detach(),
            &res.detach(),
            &grad_res.detach(),
        )?))
    }
}
