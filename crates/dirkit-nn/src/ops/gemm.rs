//! The element types of the CPU kernels: single-threaded matrix products on row-major slices
//! (faer's GEMM), for kernels that parallelise over images themselves, and the ReLU mask.

use candle_core::WithDType;
use faer::{Accum, MatMut, MatRef, Par};

/// An element type the CPU kernels compute in: f32 or f64.
pub(crate) trait Float: WithDType {
    /// `dst ← lhs · rhs` (`accumulate` false) or `dst ← dst + lhs · rhs` (true), on the
    /// calling thread.
    fn matmul(
        dst: MatMut<'_, Self>,
        lhs: MatRef<'_, Self>,
        rhs: MatRef<'_, Self>,
        accumulate: bool,
    );

    /// `value` where `test > 0`, else 0 (also for a NaN `test`): a ReLU's gradient mask. Built
    /// from a bit mask rather than a branch, so that loops over it vectorise.
    fn keep_where_positive(value: Self, test: Self) -> Self;
}

macro_rules! impl_float {
    ($t:ty, $bits:ty) => {
        impl Float for $t {
            #[inline(always)]
            fn keep_where_positive(value: Self, test: Self) -> Self {
                let mask = <$bits>::from(test > 0.0).wrapping_neg();
                <$t>::from_bits(value.to_bits() & mask)
            }

            fn matmul(
                dst: MatMut<'_, Self>,
                lhs: MatRef<'_, Self>,
                rhs: MatRef<'_, Self>,
                accumulate: bool,
            ) {
                let accum = if accumulate {
                    Accum::Add
                } else {
                    Accum::Replace
                };
                faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0, Par::Seq);
            }
        }
    };
}

impl_float!(f32, u32);
impl_float!(f64, u64);

/// A `rows × cols` row-major view of `data` (exactly `rows · cols` elements).
pub(crate) fn rm<T: Float>(data: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    MatRef::from_row_major_slice(data, rows, cols)
}

/// A mutable `rows × cols` row-major view of `data` (exactly `rows · cols` elements).
pub(crate) fn rm_mut<T: Float>(data: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
    MatMut::from_row_major_slice_mut(data, rows, cols)
}
