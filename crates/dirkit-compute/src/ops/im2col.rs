//! The shapes of a convolution and the patch matrix of one image: im2col and its transpose
//! col2im.
//!
//! Row `(ci, ky, kx)` of the patch matrix holds, for every output pixel, the input pixel that
//! kernel tap meets (zero in the padding). At stride 1 with "same" width (`2·padding = kw − 1`,
//! a ResNet's 3×3 convolutions) that row is the input plane shifted by `(ky − p)·W + (kx − p)`
//! elements, so it is filled by one block copy, then the columns that wrapped around a row edge
//! are zeroed; other geometries are filled row by row.

use super::gemm::Float;
use crate::error::invalid;

/// Shapes of one convolution: batch, channels, input and output sizes, kernel, stride, padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    pub(super) n: usize,
    pub(super) c_in: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c_out: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) stride: usize,
    pub(super) padding: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
}

impl Geometry {
    /// Checks that `x` (N, C_in, H, W) and `w` (C_out, C_in, kh, kw) fit together and that the
    /// padded input holds at least one window.
    pub(super) fn new(
        x: &candle_core::Shape,
        w: &candle_core::Shape,
        stride: usize,
        padding: usize,
    ) -> candle_core::Result<Self> {
        let (n, c_in, h, wd) = x.dims4()?;
        let (c_out, c_w, kh, kw) = w.dims4()?;
        if c_w != c_in {
            return invalid(
                "conv2d weight",
                format!("{w:?} for a {x:?} input"),
                "(C_out, C_in, kh, kw) with C_in equal to the input's channels",
            );
        }
        if c_in == 0 || c_out == 0 || h == 0 || wd == 0 {
            return invalid(
                "conv2d shapes",
                format!("input {x:?}, weight {w:?}"),
                "at least one channel in and out and a non-empty image",
            );
        }
        if stride == 0 {
            return invalid("conv2d stride", stride, "at least 1");
        }
        if kh == 0 || kw == 0 || h + 2 * padding < kh || wd + 2 * padding < kw {
            return invalid(
                "conv2d kernel",
                format!("{kh}x{kw} on a {h}x{wd} input with padding {padding}"),
                "non-empty and no larger than the padded input",
            );
        }
        Ok(Self {
            n,
            c_in,
            h,
            w: wd,
            c_out,
            kh,
            kw,
            stride,
            padding,
            ho: (h + 2 * padding - kh) / stride + 1,
            wo: (wd + 2 * padding - kw) / stride + 1,
        })
    }

    /// Rows of the patch matrix: `C_in · kh · kw`.
    pub(super) fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output pixels per channel: `H_out · W_out`.
    pub(super) fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Elements of one input image.
    pub(super) fn x_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// Elements of one output image.
    pub(super) fn y_len(&self) -> usize {
        self.c_out * self.p()
    }

    /// Whether the patch matrix is the input image itself (1×1, stride 1, no padding).
    pub(super) fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    /// Multiply-adds of the convolution over the batch, times two.
    pub(super) fn flops(&self) -> usize {
        2 * self.n * self.c_out * self.k() * self.p()
    }

    /// For kernel offset `k` along an axis of `n_in` input and `n_out` output pixels, the
    /// output range `[lo, hi)` whose input pixel `o·stride + k − padding` lies inside the image.
    fn span(&self, k: usize, n_in: usize, n_out: usize) -> (usize, usize) {
        let s = self.stride as isize;
        let d = k as isize - self.padding as isize;
        let lo = if d < 0 {
            ((-d + s - 1) / s) as usize
        } else {
            0
        };
        let last = n_in as isize - 1 - d;
        let hi = if last < 0 {
            0
        } else {
            ((last / s + 1) as usize).min(n_out)
        };
        (lo.min(hi), hi)
    }

    /// Every kernel tap `(ky, kx)`, row-major: the output pixels that read inside the image
    /// and where the first of them reads, relative to the input channel's plane.
    fn taps(&self) -> Vec<Tap> {
        let mut taps = Vec::with_capacity(self.kh * self.kw);
        for ky in 0..self.kh {
            let (y0, y1) = self.span(ky, self.h, self.ho);
            for kx in 0..self.kw {
                let (x0, x1) = self.span(kx, self.w, self.wo);
                let empty = y0 >= y1 || x0 >= x1;
                let offset = if empty {
                    0
                } else {
                    let iy = y0 * self.stride + ky - self.padding;
                    iy * self.w + x0 * self.stride + kx - self.padding
                };
                taps.push(Tap {
                    ys: (y0, y1),
                    xs: (x0, x1),
                    offset,
                    empty,
                });
            }
        }
        taps
    }

    /// Every row `(ci, ky, kx)` of the patch matrix in order, as its tap and the offset of
    /// the input pixel its first in-image output reads.
    fn patch_rows<'a>(&self, taps: &'a [Tap]) -> impl Iterator<Item = (&'a Tap, usize)> + 'a {
        let plane = self.h * self.w;
        (0..self.c_in).flat_map(move |ci| taps.iter().map(move |t| (t, ci * plane + t.offset)))
    }

    /// Whether a patch row's in-image part is one block of the input plane: stride 1 and
    /// output rows as wide as input rows.
    fn shifted_planes(&self) -> bool {
        self.stride == 1 && self.wo == self.w
    }

    /// Unrolls one input image `x` (C_in, H, W) into the first `p` columns of a k-row matrix
    /// `cols` whose rows are `row_stride ≥ p` apart (one image's block of a group's patch
    /// matrix), zeros where a window reads padding.
    pub(super) fn im2col_strided<T: Float>(&self, x: &[T], cols: &mut [T], row_stride: usize) {
        self.im2col_rows(x, cols, row_stride, (0, self.ho));
    }

    /// The patch-matrix columns of output rows `[oy0, oy1)` (`(oy1 − oy0)·W_out` columns) into
    /// the first columns of a k-row matrix whose rows are `row_stride` apart.
    pub(super) fn im2col_rows<T: Float>(
        &self,
        x: &[T],
        cols: &mut [T],
        row_stride: usize,
        (oy0, oy1): (usize, usize),
    ) {
        let (wo, s) = (self.wo, self.stride);
        let width = (oy1 - oy0) * wo;
        let zero = T::from_f64(0.0);
        let taps = self.taps();
        let planes = cols.chunks_mut(row_stride).map(|row| &mut row[..width]);
        for ((r, start), plane) in self.patch_rows(&taps).zip(planes) {
            let Some((ya, yb, start)) = r.rows_within(start, (oy0, oy1), s * self.w) else {
                plane.fill(zero);
                continue;
            };
            let (x0, x1) = r.xs;
            plane[..(ya - oy0) * wo].fill(zero);
            plane[(yb - oy0) * wo..].fill(zero);
            let block = &mut plane[(ya - oy0) * wo..(yb - oy0) * wo];
            if self.shifted_planes() {
                // Output (oy, ox) reads input start + (oy − ya)·W + (ox − x0): one copy, then
                // zero the columns outside [x0, x1), which read across a row edge.
                let len = block.len() - x0 - (wo - x1);
                block[x0..x0 + len].copy_from_slice(&x[start..start + len]);
                zero_edges(block, wo, (x0, x1));
                continue;
            }
            for (i, line) in block.chunks_exact_mut(wo).enumerate() {
                line[..x0].fill(zero);
                line[x1..].fill(zero);
                let src = &x[start + i * s * self.w..];
                let out = &mut line[x0..x1];
                if s == 1 {
                    out.copy_from_slice(&src[..x1 - x0]);
                } else {
                    for (o, v) in out.iter_mut().zip(src.iter().step_by(s)) {
                        *o = *v;
                    }
                }
            }
        }
    }

    /// The transpose of [`im2col_strided`](Self::im2col_strided): adds the first `p` columns
    /// of the k-row matrix `cols` (rows `row_stride` apart) onto one image's gradient `dx`
    /// (C_in, H, W), overwriting the entries of `cols` that belong to padding.
    pub(super) fn col2im_strided<T: Float>(&self, cols: &mut [T], dx: &mut [T], row_stride: usize) {
        self.col2im_rows(cols, dx, row_stride, (0, self.ho));
    }

    /// The transpose of [`im2col_rows`](Self::im2col_rows): adds the columns of output rows
    /// `[oy0, oy1)` onto the image's gradient `dx`, overwriting the padding entries of `cols`.
    pub(super) fn col2im_rows<T: Float>(
        &self,
        cols: &mut [T],
        dx: &mut [T],
        row_stride: usize,
        (oy0, oy1): (usize, usize),
    ) {
        let (wo, s) = (self.wo, self.stride);
        let width = (oy1 - oy0) * wo;
        let taps = self.taps();
        let planes = cols.chunks_mut(row_stride).map(|row| &mut row[..width]);
        for ((r, start), plane) in self.patch_rows(&taps).zip(planes) {
            let Some((ya, yb, start)) = r.rows_within(start, (oy0, oy1), s * self.w) else {
                continue;
            };
            let (x0, x1) = r.xs;
            let block = &mut plane[(ya - oy0) * wo..(yb - oy0) * wo];
            if self.shifted_planes() {
                // The transpose of im2col's block copy: padding entries zeroed, then one add.
                zero_edges(block, wo, (x0, x1));
                let len = block.len() - x0 - (wo - x1);
                let out = &mut dx[start..start + len];
                for (o, v) in out.iter_mut().zip(&block[x0..x0 + len]) {
                    *o += *v;
                }
                continue;
            }
            for (i, line) in block.chunks_exact(wo).enumerate() {
                let out = &mut dx[start + i * s * self.w..];
                let src = &line[x0..x1];
                if s == 1 {
                    for (o, v) in out.iter_mut().zip(src) {
                        *o += *v;
                    }
                } else {
                    for (o, v) in out.iter_mut().step_by(s).zip(src) {
                        *o += *v;
                    }
                }
            }
        }
    }
}

/// Zeroes columns `[0, x0)` and `[x1, wo)` of every `wo`-wide row of `block`, column by
/// column: the edges are a cell or two wide, too short for a fill per row.
fn zero_edges<T: Float>(block: &mut [T], wo: usize, (x0, x1): (usize, usize)) {
    let zero = T::from_f64(0.0);
    for col in (0..x0).chain(x1..wo) {
        for v in block[col..].iter_mut().step_by(wo) {
            *v = zero;
        }
    }
}

/// One kernel tap `(ky, kx)`: the output pixels that read inside the image.
struct Tap {
    /// Output rows `[y0, y1)` whose input row is inside the image.
    ys: (usize, usize),
    /// Output columns `[x0, x1)` whose input column is inside the image.
    xs: (usize, usize),
    /// Offset within an input plane of the pixel read by output pixel `(y0, x0)`.
    offset: usize,
    /// Whether no output pixel reads inside the image.
    empty: bool,
}

impl Tap {
    /// The output rows `[ya, yb)` of `[oy0, oy1)` that read inside the image and the input
    /// offset output `(ya, x0)` reads, given `start`, the offset output `(y0, x0)` reads, and
    /// `row_step`, the input elements between two output rows; `None` if no row does.
    fn rows_within(
        &self,
        start: usize,
        (oy0, oy1): (usize, usize),
        row_step: usize,
    ) -> Option<(usize, usize, usize)> {
        let (ya, yb) = (self.ys.0.max(oy0), self.ys.1.min(oy1));
        (!self.empty && ya < yb).then(|| (ya, yb, start + (ya - self.ys.0) * row_step))
    }
}
