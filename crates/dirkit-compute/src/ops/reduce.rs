//! Sums over long runs of f32 or f64 values that stay accurate and vectorise: independent
//! lanes in the element type, moved into f64 totals every few thousand values.

use super::gemm::Float;

/// Accumulator lanes of the reductions: enough independent sums for the compiler to keep
/// them in vector registers.
const LANES: usize = 8;

/// Values summed in the tensor's dtype before the lanes move into f64.
const BLOCK: usize = 2048;

/// Two running sums of `f(a[i], b[i])` over pairs of slices: [`LANES`] independent sums in
/// `T`, moved into f64 totals every [`BLOCK`] values.
pub(super) struct PairSums<T> {
    lanes: [[T; LANES]; 2],
    pending: usize,
    totals: [f64; 2],
}

impl<T: Float> PairSums<T> {
    /// Both sums at 0.
    pub(super) fn new() -> Self {
        Self {
            lanes: [[T::from_f64(0.0); LANES]; 2],
            pending: 0,
            totals: [0.0; 2],
        }
    }

    /// Adds `f(a[i], b[i])` for every pair (`a` and `b` of one length).
    #[inline]
    pub(super) fn add(&mut self, a: &[T], b: &[T], f: impl Fn(T, T) -> (T, T)) {
        let [mut s0, mut s1] = self.lanes;
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (ca, cb) in ca.zip(cb) {
            for j in 0..LANES {
                let (u, v) = f(ca[j], cb[j]);
                s0[j] += u;
                s1[j] += v;
            }
        }
        for (j, (&x, &y)) in ra.iter().zip(rb).enumerate() {
            let (u, v) = f(x, y);
            s0[j] += u;
            s1[j] += v;
        }
        self.lanes = [s0, s1];
        self.pending += a.len();
        if self.pending >= BLOCK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        for (total, lanes) in self.totals.iter_mut().zip(&mut self.lanes) {
            *total += lanes.iter().map(|v| v.to_f64()).sum::<f64>();
            *lanes = [T::from_f64(0.0); LANES];
        }
        self.pending = 0;
    }

    /// The two totals.
    pub(super) fn totals(mut self) -> [f64; 2] {
        self.flush();
        self.totals
    }
}
