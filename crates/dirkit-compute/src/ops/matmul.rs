//! A matrix product that chooses its parallelism by the amount of work.
//!
//! candle's CPU `matmul` hands every product to the `gemm` crate on rayon's global pool, whose
//! threads sleep between products: waking them costs tens of microseconds, more than a small
//! product itself (64×64 by 64×64: ~36 µs on two threads against ~7 µs on one, measured on a
//! two-core machine), and when `RAYON_NUM_THREADS` is unset candle re-reads `/proc/cpuinfo` for
//! its thread count on every product (~14 µs). [`matmul`] multiplies on the calling thread below
//! a measured amount of work ([`PRODUCT_MIN_WORK`](super::PRODUCT_MIN_WORK) multiply-adds) and
//! splits larger products by
//! output rows (or columns, for a wide and short result) over the kernels' thread pool, whose
//! workers are candle's own. Transposed operands (`t()` views) are read in place, without the
//! copy candle makes.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};
use faer::MatRef;

use super::gemm::{Float, rm_mut};
use super::{dispatch_float, map_tasks, product_threads};

/// `a · b` for `a` (m, k) and `b` (k, n): output (m, n), as [`Tensor::matmul`], differentiable
/// in both. On the CPU (f32, f64) one op on the calling thread or, for large products, split
/// over the kernels' thread pool; the result does not depend on the thread count. Operands that
/// are transposed views are read in place; other strided operands are copied first. Other
/// ranks, devices and dtypes go to candle's `matmul`.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let on_cpu = a.device().is_cpu() && b.device().is_cpu();
    let float = matches!(a.dtype(), candle_core::DType::F32 | candle_core::DType::F64);
    if !on_cpu || !float || a.rank() != 2 || b.rank() != 2 || a.dtype() != b.dtype() {
        return a.matmul(b);
    }
    let (m, k) = a.dims2()?;
    let (k2, n) = b.dims2()?;
    if k != k2 {
        candle_core::bail!("matmul: a is {m} × {k} but b is {k2} × {n}");
    }
    let a = in_place_or_copy(a)?;
    let b = in_place_or_copy(b)?;
    a.apply_op2(&b, MatMul { m, k, n })
}

/// `t` itself when the kernel can read its layout (one of its strides is 1), else a contiguous
/// copy.
fn in_place_or_copy(t: &Tensor) -> candle_core::Result<Tensor> {
    match view_strides(t.layout()) {
        Some(_) => Ok(t.clone()),
        None => t.contiguous(),
    }
}

/// How a 2-D layout is stored: row-major with a row stride, or column-major with a column
/// stride (a transposed row-major matrix). `None` when neither stride is 1.
#[derive(Debug, Clone, Copy)]
enum Strides {
    RowMajor(usize),
    ColMajor(usize),
}

fn view_strides(layout: &Layout) -> Option<Strides> {
    let (dims, stride) = (layout.dims(), layout.stride());
    let (rows, cols) = (dims[0], dims[1]);
    // A dimension of size 1 is never stepped over, so its stride does not matter.
    if cols <= 1 || stride[1] == 1 {
        Some(Strides::RowMajor(if rows <= 1 { cols } else { stride[0] }))
    } else if rows <= 1 || stride[0] == 1 {
        Some(Strides::ColMajor(stride[1]))
    } else {
        None
    }
}

/// The faer view of a 2-D operand in CPU storage.
fn view<'a, T: Float>(
    data: &'a [T],
    layout: &Layout,
    rows: usize,
    cols: usize,
) -> candle_core::Result<MatRef<'a, T>> {
    let data = &data[layout.start_offset()..];
    if rows == 0 || cols == 0 {
        return Ok(MatRef::from_row_major_slice(&data[..0], rows, cols));
    }
    match view_strides(layout) {
        Some(Strides::RowMajor(s)) => Ok(MatRef::from_row_major_slice_with_stride(
            data, rows, cols, s,
        )),
        Some(Strides::ColMajor(s)) => Ok(MatRef::from_column_major_slice_with_stride(
            data, rows, cols, s,
        )),
        None => candle_core::bail!("matmul: the CPU kernel needs an operand with a unit stride"),
    }
}

/// `(per, blocks)`: `len` items cut into blocks of `per = ⌈len / pieces⌉` (the last shorter),
/// `⌈len / per⌉` of them — fewer than `pieces` when the division is uneven (5 over 4 pieces: 3
/// blocks of 2, 2 and 1).
fn split(len: usize, pieces: usize) -> (usize, usize) {
    let per = len.div_ceil(pieces.max(1)).max(1);
    (per, len.div_ceil(per))
}

/// The product op: `(a, b) ↦ a · b` for an (m, k) and a (k, n) operand.
struct MatMul {
    m: usize,
    k: usize,
    n: usize,
}

impl MatMul {
    fn run<T: Float>(&self, a: MatRef<'_, T>, b: MatRef<'_, T>) -> Vec<T> {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut c = vec![T::from_f64(0.0); m * n];
        if m == 0 || n == 0 {
            return c;
        }
        // Pieces to split `len` rows or columns into (1: the calling thread).
        let pieces = |len: usize| match product_threads(m * k * n, len) {
            true => super::pool::threads().min(len),
            false => 1,
        };
        if m >= n {
            // Blocks of output rows: C[r0..r1, :] = A[r0..r1, :] · B.
            let pieces = pieces(m);
            let rows_per = m.div_ceil(pieces);
            let tasks: Vec<_> = c.chunks_mut(rows_per * n).enumerate().collect();
            map_tasks(tasks, pieces > 1, |(i, part)| {
                let rows = part.len() / n;
                T::matmul(
                    rm_mut(part, rows, n),
                    a.subrows(i * rows_per, rows),
                    b,
                    false,
                );
            });
        } else {
            // Blocks of output columns, formed transposed: C[:, c0..c1]ᵀ = B[:, c0..c1]ᵀ · Aᵀ.
            let pieces = pieces(n);
            if pieces == 1 {
                T::matmul(rm_mut(&mut c, m, n), a, b, false);
                return c;
            }
            let (cols_per, blocks) = split(n, pieces);
            let blocks: Vec<Vec<T>> = map_tasks((0..blocks).collect(), true, |j| {
                let c0 = j * cols_per;
                let cols = cols_per.min(n - c0);
                let mut block = vec![T::from_f64(0.0); cols * m];
                T::matmul(
                    rm_mut(&mut block, cols, m),
                    b.subcols(c0, cols).transpose(),
                    a.transpose(),
                    false,
                );
                block
            });
            for (j, block) in blocks.iter().enumerate() {
                for (jj, column) in block.chunks(m).enumerate() {
                    for (i, &v) in column.iter().enumerate() {
                        c[i * n + j * cols_per + jj] = v;
                    }
                }
            }
        }
        c
    }
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = Shape::from((self.m, self.n));
        dispatch_float!("matmul", s1.dtype(), T => {
            let a = view(T::cpu_storage_as_slice(s1)?, l1, self.m, self.k)?;
            let b = view(T::cpu_storage_as_slice(s2)?, l2, self.k, self.n)?;
            Ok((T::to_cpu_storage_owned(self.run(a, b)), shape))
        })
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _c: &Tensor,
        dc: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // dA = dC · Bᵀ, dB = Aᵀ · dC, through the same op (transposes are read in place).
        let da = match a.track_op() {
            true => Some(matmul(dc, &b.t()?)?),
            false => None,
        };
        let db = match b.track_op() {
            true => Some(matmul(&a.t()?, dc)?),
            false => None,
        };
        Ok((da, db))
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn blocks_cover_every_item_once_for_any_thread_count() {
        for len in 1..40 {
            for pieces in 1..12 {
                let (per, blocks) = split(len, pieces);
                assert!(blocks <= pieces, "{len} over {pieces}");
                // Every block starts inside the range and together they cover it exactly.
                assert!(
                    (blocks - 1) * per < len && blocks * per >= len,
                    "{len} over {pieces}"
                );
            }
        }
        assert_eq!(split(5, 4), (2, 3));
    }
}
