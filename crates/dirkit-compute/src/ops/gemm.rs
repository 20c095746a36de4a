//! The element types of the CPU kernels: single-threaded matrix products on row-major slices
//! (faer's GEMM), for kernels that parallelise over images themselves, and the ReLU mask.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

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

    /// Runs `f` on this thread's pool of free scratch buffers of this type.
    fn with_free_buffers<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R;
}

macro_rules! impl_float {
    ($t:ty, $bits:ty) => {
        impl Float for $t {
            #[inline(always)]
            fn keep_where_positive(value: Self, test: Self) -> Self {
                let mask = <$bits>::from(test > 0.0).wrapping_neg();
                <$t>::from_bits(value.to_bits() & mask)
            }

            fn with_free_buffers<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R {
                thread_local! {
                    static FREE: RefCell<Vec<Vec<$t>>> = const { RefCell::new(Vec::new()) };
                }
                FREE.with(|free| f(&mut free.borrow_mut()))
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
                clear_upper_vector_state();
            }
        }
    };
}

/// Clears the upper halves of the AVX vector registers (`vzeroupper`) after faer's kernels.
///
/// faer's x86 GEMM kernels are generated assembly that uses the 512-bit registers and returns
/// without `vzeroupper`. Until something clears that state, every SSE instruction of the code
/// that follows (candle's element-wise loops and most Rust compiled for baseline x86-64) pays a
/// transition penalty: measured on a two-core Xeon, candle's `exp` over a batch's logits ran ~40×
/// slower after one of these products, and `examples/binned_regression` took twice as long. One
/// instruction, and the feature check is a cached load.
#[inline]
pub fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above).
        unsafe { zero_upper() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
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

/// Free scratch buffers a thread keeps for later kernels, per element type.
const KEPT_BUFFERS: usize = 4;

/// A scratch buffer of `len` elements taken from the calling thread's free buffers (or newly
/// allocated) and given back when dropped, so that a kernel called once per layer and step
/// neither allocates nor zeroes its scratch every time. Its contents are unspecified (zeros or
/// what an earlier kernel left): callers write every element before reading it. A thread keeps
/// at most [`KEPT_BUFFERS`] free buffers of each type, as large as the largest it was asked for.
pub(crate) struct Scratch<T: Float> {
    buf: Vec<T>,
    len: usize,
}

impl<T: Float> Scratch<T> {
    pub(crate) fn new(len: usize) -> Self {
        let mut buf = T::with_free_buffers(|free| {
            // The smallest free buffer that is large enough, else the largest one.
            let pick = free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() >= len)
                .min_by_key(|(_, b)| b.len())
                .or_else(|| free.iter().enumerate().max_by_key(|(_, b)| b.len()))
                .map(|(i, _)| i);
            pick.map(|i| free.swap_remove(i)).unwrap_or_default()
        });
        if buf.len() < len {
            buf.resize(len, T::from_f64(0.0));
        }
        Self { buf, len }
    }
}

impl<T: Float> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[..self.len]
    }
}

impl<T: Float> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[..self.len]
    }
}

impl<T: Float> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            return;
        }
        T::with_free_buffers(|free| {
            free.push(buf);
            if free.len() > KEPT_BUFFERS {
                // Drop the smallest.
                if let Some(i) = (0..free.len()).min_by_key(|&i| free[i].len()) {
                    free.swap_remove(i);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacing_product_never_reads_the_destination() {
        // Scratch buffers hold stale values: a product that replaces them must not read them
        // (0 · NaN would be NaN). Small and large shapes take different kernels.
        for (m, k, n) in [(2, 3, 1), (48, 64, 40), (130, 200, 70)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
            let mut stale = vec![f32::NAN; m * n];
            let mut zeroed = vec![0.0f32; m * n];
            f32::matmul(rm_mut(&mut stale, m, n), rm(&a, m, k), rm(&b, k, n), false);
            f32::matmul(rm_mut(&mut zeroed, m, n), rm(&a, m, k), rm(&b, k, n), true);
            assert_eq!(stale, zeroed, "{m}×{k}·{k}×{n}");
        }
    }

    #[test]
    fn scratch_buffers_are_reused_by_size() {
        let first = Scratch::<f64>::new(1000);
        let ptr = first.as_ptr();
        drop(first);
        let mut again = Scratch::<f64>::new(600);
        assert_eq!((again.as_ptr(), again.len()), (ptr, 600));
        again.fill(1.0);
        let other = Scratch::<f64>::new(2000);
        assert_ne!(other.as_ptr(), ptr);
        assert_eq!(other.len(), 2000);
    }
}
