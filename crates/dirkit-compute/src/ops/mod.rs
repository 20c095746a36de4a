//! CPU kernels for training convolutional networks: candle custom ops with their own backward
//! passes, for the layers where candle 0.11's CPU backend is slow to train.
//!
//! - [`conv2d`]: convolution as im2col + GEMM (faer), with a backward that produces the weight
//!   and input gradients in one pass over the batch (candle's input gradient is a naive
//!   transposed convolution);
//! - [`batch_norm_train`] / [`batch_norm_eval`] / [`batch_norm_t`]: batch norm over (N, H, W)
//!   per channel in one kernel, with an optional fused ReLU ([`Activation`]) and a one-pass
//!   backward (candle reduces over non-last dimensions through transposed copies);
//! - [`linear`]: `x Wᵀ + b` with a backward that forms the weight and bias gradients without
//!   transposed copies or a reduction over a non-last dimension;
//! - [`matmul`]: `a · b` that reads transposed operands in place;
//! - [`relu`] and [`add_relu`] (the residual join): a backward that masks the gradient in one
//!   loop instead of candle's comparison op.
//!
//! Every function takes NCHW tensors on any device: on the CPU it runs the custom op (f32 or
//! f64; other dtypes are refused with an error naming the op), elsewhere (CUDA) it composes
//! candle's ops, so models can call these unconditionally. Inputs that are not contiguous are
//! copied first. Work is split over candle's CPU thread pool (`CANDLE_NUM_THREADS` or
//! `RAYON_NUM_THREADS` threads) only when there is enough of it: below [`PARALLEL_MIN_WORK`]
//! operations ([`PRODUCT_MIN_WORK`] multiply-adds for a product) a kernel runs on the calling
//! thread, since waking a second thread costs more than such work (see [`pool`] and the
//! `threads` bench). The backward passes are computed by custom ops without gradients of
//! their own: second derivatives through these ops are not supported, except through
//! [`matmul`], whose backward is two products of the same op.

mod batch_norm;
mod batch_norm_cpu;
mod conv;
mod fresh;
mod gemm;
mod im2col;
mod linear;
mod matmul;
pub mod pool;
mod reduce;
mod relu;

pub use batch_norm::{
    Activation, BatchStats, batch_norm_add_relu_t, batch_norm_add_relu_train, batch_norm_eval,
    batch_norm_t, batch_norm_train,
};
pub use conv::conv2d;
pub use gemm::clear_upper_vector_state;
pub use linear::linear;
pub use matmul::matmul;
pub use relu::{add_relu, relu};

use candle_core::{CpuStorage, DType, Layout, WithDType};
use pool::{map_tasks, map_tasks_with};

/// Operations (element visits, convolution multiply-adds) below which a convolution, batch-norm,
/// ReLU or Adam kernel stays on the calling thread: handing work to a second thread costs a few
/// microseconds, about this much work. Matrix products use [`PRODUCT_MIN_WORK`].
pub const PARALLEL_MIN_WORK: usize = 1 << 18;

/// Multiply-adds below which a matrix product ([`matmul`], [`linear`]) stays on the calling
/// thread (4 M, e.g. 256 rows × 64 → 256 features). Measured on two cores: in a loop of products
/// 64³ takes 3.4 µs on one thread and 5.6 µs on two, 128³ 25.6 and 22.5 µs; inside a training
/// step, where the second thread has gone to sleep since the last kernel, a regression-head MLP
/// at batch 64 (1 M per product) was 5–15 % slower split at 256 K or 1 M than on one thread, and
/// level from 4 M on (the `threads` and `head_step` benches).
pub const PRODUCT_MIN_WORK: usize = 1 << 22;

/// Whether a matrix product of `work` multiply-adds over `tasks` independent pieces should run
/// on candle's thread pool.
pub(crate) fn product_threads(work: usize, tasks: usize) -> bool {
    tasks > 1 && work >= PRODUCT_MIN_WORK && pool::threads() > 1
}

/// Whether a kernel over `tasks` independent pieces with `work` operations in all should run
/// on candle's thread pool (see `pool`).
pub(crate) fn use_threads(work: usize, tasks: usize) -> bool {
    tasks > 1 && work >= PARALLEL_MIN_WORK && pool::threads() > 1
}

/// The elements of a contiguous CPU storage of element type `T`.
fn cpu_slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &'static str,
) -> candle_core::Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(storage)?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the CPU kernel needs contiguous inputs"),
    }
}

/// The error for a dtype the CPU kernels do not handle.
fn unsupported<T>(op: &'static str, dtype: DType) -> candle_core::Result<T> {
    candle_core::bail!("{op}: the CPU kernel supports f32 and f64 tensors, got {dtype:?}")
}

/// Runs `$body` with `$t` bound to the Rust element type of `$dtype` (f32 or f64), or returns
/// [`unsupported`]'s error.
macro_rules! dispatch_float {
    ($op:expr, $dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            other => $crate::ops::unsupported($op, other),
        }
    };
}
use dispatch_float;
