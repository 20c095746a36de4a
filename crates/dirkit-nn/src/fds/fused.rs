//! The fused CPU calibration op: one pass over a contiguous f32/f64 batch instead of a chain
//! of gathers and element-wise tensor ops, with its own backward. Other devices and dtypes
//! use the generic tensor ops of [`Fds::calibrate`](super::Fds::calibrate).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, StorageRef, Tensor};

use super::Maps;
use super::comoment::{Groups, parallel_for};

/// An f32 or f64 element of the fused calibration kernels.
trait Real:
    Copy
    + Default
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
{
    fn slice(s: &CpuStorage) -> Option<&Vec<Self>>;
    fn storage(v: Vec<Self>) -> CpuStorage;
}

impl Real for f32 {
    fn slice(s: &CpuStorage) -> Option<&Vec<Self>> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Real for f64 {
    fn slice(s: &CpuStorage) -> Option<&Vec<Self>> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// The values of a contiguous CPU tensor of element `T`, borrowed from its read guard.
fn values<'a, T: Real>(g: &'a (StorageRef<'_>, &Layout)) -> candle_core::Result<&'a [T]> {
    match (&*g.0, g.1.contiguous_offsets()) {
        (Storage::Cpu(s), Some((lo, hi))) => match T::slice(s) {
            Some(v) => Ok(&v[lo..hi]),
            None => candle_core::bail!("FDS maps: unexpected dtype"),
        },
        _ => candle_core::bail!("FDS maps: expected contiguous CPU tensors"),
    }
}

/// `acc[k] += Σ_i x[k][i] · a[i]` for the rows `x[k]` (each of length D) and the row-major
/// D × D `a`: `a` is streamed once, row by row, for all rows of `x`. With AVX2 where the CPU
/// has it (twice the vector width of the x86-64 baseline; the same operations in the same
/// order, so the same bits).
fn rows_times_matrix<T: Real>(x: &[T], a: &[T], acc: &mut [T], d: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { rows_times_matrix_avx2(x, a, acc, d) };
    }
    rows_times_matrix_portable(x, a, acc, d);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_times_matrix_avx2<T: Real>(x: &[T], a: &[T], acc: &mut [T], d: usize) {
    rows_times_matrix_portable(x, a, acc, d);
}

#[inline(always)]
fn rows_times_matrix_portable<T: Real>(x: &[T], a: &[T], acc: &mut [T], d: usize) {
    // Four rows of `a` per pass over `acc` (the sum per element still runs over i in order).
    let mut rows = a.chunks_exact(d).enumerate();
    while rows.len() >= 4 {
        let [(i, a0), (_, a1), (_, a2), (_, a3)] =
            std::array::from_fn(|_| rows.next().expect("four rows left"));
        for (xk, acck) in x.chunks_exact(d).zip(acc.chunks_exact_mut(d)) {
            let (v0, v1, v2, v3) = (xk[i], xk[i + 1], xk[i + 2], xk[i + 3]);
            for ((((o, &w0), &w1), &w2), &w3) in acck.iter_mut().zip(a0).zip(a1).zip(a2).zip(a3) {
                *o = (((*o + v0 * w0) + v1 * w1) + v2 * w2) + v3 * w3;
            }
        }
    }
    for (i, arow) in rows {
        for (xk, acck) in x.chunks_exact(d).zip(acc.chunks_exact_mut(d)) {
            let v = xk[i];
            for (o, &w) in acck.iter_mut().zip(arow) {
                *o = *o + v * w;
            }
        }
    }
}

/// `out[k][i] = Σ_j g[k][j] · a[i][j]`: the rows of `g` times `aᵀ`, `a` streamed row by row
/// (the backward of [`rows_times_matrix`]; dot products in eight interleaved partial sums).
fn rows_times_transpose<T: Real>(g: &[T], a: &[T], out: &mut [T], d: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { rows_times_transpose_avx2(g, a, out, d) };
    }
    rows_times_transpose_portable(g, a, out, d);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_times_transpose_avx2<T: Real>(g: &[T], a: &[T], out: &mut [T], d: usize) {
    rows_times_transpose_portable(g, a, out, d);
}

#[inline(always)]
fn rows_times_transpose_portable<T: Real>(g: &[T], a: &[T], out: &mut [T], d: usize) {
    const LANES: usize = 8;
    for (i, arow) in a.chunks_exact(d).enumerate() {
        for (gk, ok) in g.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mut lanes = [T::default(); LANES];
            let (ga, gr) = gk.split_at(d - d % LANES);
            let (aa, ar) = arow.split_at(d - d % LANES);
            for (gc, ac) in ga.chunks_exact(LANES).zip(aa.chunks_exact(LANES)) {
                for q in 0..LANES {
                    lanes[q] = lanes[q] + gc[q] * ac[q];
                }
            }
            let mut s = lanes.iter().fold(T::default(), |s, &l| s + l);
            for (&x, &w) in gr.iter().zip(ar) {
                s = s + x * w;
            }
            ok[i] = s;
        }
    }
}

/// Calibration of a CPU f32/f64 batch in one pass, bit for bit what the generic tensor ops give
/// in the diagonal mode: `(z − shift_b)·scale_b + target_b` per element; in the full mode
/// `(z − μ_b)Aᵀ_b + μ̃_b` per row, each bin's matrix streamed once for all its rows. Its
/// backward (`backward: true`, applied to the output gradient) is `g·scale_b`, or `g·A_b`.
#[derive(Clone)]
pub(super) struct FusedCalibration {
    pub(super) bins: Arc<[usize]>,
    pub(super) maps: Maps,
    pub(super) backward: bool,
}

impl FusedCalibration {
    fn run<T: Real>(&self, z: &[T], d: usize) -> candle_core::Result<Vec<T>> {
        // Threads only where the work is large (the full mode reads a D × D matrix per bin):
        // spawning costs tens of microseconds, and on a busy machine a helper thread that waits
        // for a core costs far more than the diagonal pass over a batch (~0.2 ms at 256 × 2048).
        let large = match &self.maps {
            Maps::Diagonal { .. } => z.len() >= 1 << 21,
            Maps::Full { .. } => z.len() * d >= 1 << 21,
        };
        let threads = if large {
            dirkit_compute::ops::pool::threads()
        } else {
            1
        };
        let mut out = vec![T::default(); z.len()];
        match &self.maps {
            Maps::Diagonal {
                shift,
                scale,
                target,
            } => {
                let (sg, cg, tg) = (
                    shift.storage_and_layout(),
                    scale.storage_and_layout(),
                    target.storage_and_layout(),
                );
                let (s, c, t) = (values::<T>(&sg)?, values::<T>(&cg)?, values::<T>(&tg)?);
                let rows: Vec<_> = out
                    .chunks_mut(d)
                    .zip(z.chunks(d))
                    .zip(self.bins.iter())
                    .collect();
                parallel_for(
                    rows,
                    threads,
                    |_| 1,
                    |((o, z), &b)| {
                        let r = b * d..(b + 1) * d;
                        let (s, c, t) = (&s[r.clone()], &c[r.clone()], &t[r]);
                        if self.backward {
                            for ((o, &g), &c) in o.iter_mut().zip(z).zip(c) {
                                *o = g * c;
                            }
                        } else {
                            for ((((o, &z), &s), &c), &t) in
                                o.iter_mut().zip(z).zip(s).zip(c).zip(t)
                            {
                                *o = (z - s) * c + t;
                            }
                        }
                    },
                );
            }
            Maps::Full {
                shift,
                target,
                matrices,
            } => {
                let groups = Groups::new(&self.bins, matrices.len());
                let guards: Vec<Option<(StorageRef<'_>, &Layout)>> = matrices
                    .iter()
                    .map(|m| m.as_ref().map(Tensor::storage_and_layout))
                    .collect();
                let (sg, tg) = (shift.storage_and_layout(), target.storage_and_layout());
                let (s, t) = (values::<T>(&sg)?, values::<T>(&tg)?);
                let mut work = Vec::new();
                for (b, g) in guards.iter().enumerate() {
                    let rows = groups.rows(b);
                    match g {
                        Some(g) if !rows.is_empty() => work.push((
                            b,
                            rows,
                            values::<T>(g)?,
                            vec![T::default(); rows.len() * d],
                        )),
                        // Bins without a matrix pass unchanged (so does their gradient).
                        _ => {
                            for &r in rows {
                                out[r * d..(r + 1) * d].copy_from_slice(&z[r * d..(r + 1) * d]);
                            }
                        }
                    }
                }
                parallel_for(
                    work.iter_mut().collect(),
                    threads,
                    |w| w.1.len() + 2,
                    |(b, rows, a, acc)| {
                        let mut x = Vec::with_capacity(rows.len() * d);
                        for &r in rows.iter() {
                            x.extend_from_slice(&z[r * d..(r + 1) * d]);
                        }
                        if self.backward {
                            rows_times_transpose(&x, a, acc, d);
                            return;
                        }
                        let (mu, mt) = (&s[*b * d..(*b + 1) * d], &t[*b * d..(*b + 1) * d]);
                        for xk in x.chunks_exact_mut(d) {
                            for (x, &m) in xk.iter_mut().zip(mu) {
                                *x = *x - m;
                            }
                        }
                        rows_times_matrix(&x, a, acc, d);
                        for ak in acc.chunks_exact_mut(d) {
                            for (o, &m) in ak.iter_mut().zip(mt) {
                                *o = *o + m;
                            }
                        }
                    },
                );
                for (_, rows, _, acc) in &work {
                    for (&r, v) in rows.iter().zip(acc.chunks_exact(d)) {
                        out[r * d..(r + 1) * d].copy_from_slice(v);
                    }
                }
            }
        }
        Ok(out)
    }
}

impl CustomOp1 for FusedCalibration {
    fn name(&self) -> &'static str {
        if self.backward {
            "fds-calibration-backward"
        } else {
            "fds-calibration"
        }
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, d) = layout.shape().dims2()?;
        let Some((lo, hi)) = layout.contiguous_offsets() else {
            candle_core::bail!("fds-calibration: non-contiguous input");
        };
        if n != self.bins.len() {
            candle_core::bail!("fds-calibration: {n} rows for {} bins", self.bins.len());
        }
        let out = match storage {
            CpuStorage::F32(z) => f32::storage(self.run(&z[lo..hi], d)?),
            CpuStorage::F64(z) => f64::storage(self.run(&z[lo..hi], d)?),
            _ => candle_core::bail!("fds-calibration: f32 or f64 only"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let op = Self {
            backward: true,
            ..self.clone()
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fds::{Covariance, Fds, FdsConfig, FullCovariance};
    use candle_core::{DType, Device, Var};

    /// Seeded values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                2.0 * ((s >> 11) as f64 / (1u64 << 53) as f64) - 1.0
            })
            .collect()
    }

    /// An FDS after one epoch of 120 rows over 10 bins (D = 40), and a batch of 64 rows whose
    /// labels include never-seen and single-sample bins.
    fn fitted(covariance: Covariance, dtype: DType) -> (Fds, Tensor, Tensor) {
        let d = 40;
        let mut cfg = FdsConfig::reference(d, 12, 0);
        cfg.covariance = covariance;
        let mut fds = Fds::new(cfg, &Device::Cpu, dtype).unwrap();
        // Labels 0..9 with bin 9 single-sample; bins 10 and 11 never seen.
        let labels: Vec<f64> = (0..120)
            .map(|i| if i == 119 { 9.0 } else { (i % 9) as f64 })
            .collect();
        let z: Vec<f64> = values(120 * d, 1)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.0 + labels[i / d] * 0.1) + labels[i / d])
            .collect();
        let z = Tensor::from_vec(z, (120, d), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        fds.accumulate(&z, &Tensor::new(labels, &Device::Cpu).unwrap())
            .unwrap();
        fds.end_epoch(0).unwrap();
        let yb: Vec<f64> = (0..64).map(|i| (i % 12) as f64).collect();
        let zb = Tensor::from_vec(values(64 * d, 2), (64, d), &Device::Cpu).unwrap();
        (
            fds,
            zb.to_dtype(dtype).unwrap(),
            Tensor::new(yb, &Device::Cpu).unwrap(),
        )
    }

    /// Calibrated rows and the gradient of a weighted sum with respect to the features.
    type Run = (Vec<Vec<f64>>, Vec<Vec<f64>>);

    /// [`Run`] with the fused kernels, then with the tensor ops.
    fn both(fds: &Fds, z: &Tensor, y: &Tensor) -> [Run; 2] {
        let snap = fds.snapshot.as_ref().unwrap();
        [true, false].map(|fused| {
            let v = Var::from_tensor(z).unwrap();
            let out = fds.calibrate_with(v.as_tensor(), y, snap, fused).unwrap();
            // A non-uniform upstream gradient, so that the backward's matrix product matters.
            let w = Tensor::from_vec(values(out.elem_count(), 3), out.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(out.dtype())
                .unwrap();
            let grads = out.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            let g = grads.get(v.as_tensor()).unwrap();
            let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
            (f64s(&out), f64s(g))
        })
    }

    #[test]
    fn fds_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Fds>();
    }

    #[test]
    fn fused_diagonal_calibration_is_bit_identical_to_tensor_ops() {
        for dt in [DType::F32, DType::F64] {
            let (fds, z, y) = fitted(Covariance::Diagonal, dt);
            let [fused, generic] = both(&fds, &z, &y);
            assert_eq!(fused, generic, "{dt:?}");
        }
    }

    #[test]
    fn fused_full_calibration_matches_tensor_ops() {
        for (dt, tol) in [(DType::F32, 1e-5), (DType::F64, 1e-12)] {
            let (fds, z, y) = fitted(Covariance::Full(FullCovariance::default()), dt);
            let [(out_f, g_f), (out_g, g_g)] = both(&fds, &z, &y);
            for (a, b) in out_f.iter().flatten().zip(out_g.iter().flatten()) {
                assert!(
                    (a - b).abs() <= tol * (1.0 + b.abs()),
                    "{dt:?} output {a} vs {b}"
                );
            }
            for (a, b) in g_f.iter().flatten().zip(g_g.iter().flatten()) {
                assert!(
                    (a - b).abs() <= tol * (1.0 + b.abs()),
                    "{dt:?} gradient {a} vs {b}"
                );
            }
            // Never-seen and single-sample bins pass unchanged, gradient included.
            let zv = z.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
            for r in [9, 10, 11, 21, 22, 23] {
                assert_eq!(out_f[r], zv[r], "row {r}");
            }
        }
    }
}
