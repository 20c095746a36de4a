//! Output vectors that the kernels' tasks initialise themselves.
//!
//! `vec![0.0; n]` has the allocator zero the whole output on the calling thread before a
//! kernel overwrites it on the pool; for the multi-megabyte activations of a convolutional
//! network that memset is a large serial part of a training step. [`with_fresh_output`]
//! instead hands the kernel its output as uninitialised parts; the task that fills a part first
//! zeroes it ([`Fresh::zeroed`]), on its own thread and while the part is in its cache.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::gemm::Float;

/// One part of an output vector, not yet initialised.
pub(crate) struct Fresh<'a, T> {
    part: &'a mut [MaybeUninit<T>],
    initialised: &'a AtomicUsize,
}

impl<'a, T: Float> Fresh<'a, T> {
    /// The part, every element set to zero.
    pub(crate) fn zeroed(self) -> &'a mut [T] {
        let zero = T::from_f64(0.0);
        for v in self.part.iter_mut() {
            v.write(zero);
        }
        self.initialised
            .fetch_add(self.part.len(), Ordering::Release);
        // SAFETY: every element of the part was initialised just above, and `MaybeUninit<T>`
        // has `T`'s layout.
        unsafe { &mut *(self.part as *mut [MaybeUninit<T>] as *mut [T]) }
    }
}

/// A vector of `len` elements cut into consecutive parts of the lengths `parts` yields
/// (summing to `len`), handed to `fill`, which must call [`Fresh::zeroed`] on every part (and
/// then may overwrite it). Returns the vector and `fill`'s result.
///
/// # Panics
/// If the parts do not sum to `len`, or `fill` returned with a part not initialised (a bug
/// in the kernel; the vector is then never read).
pub(crate) fn with_fresh_output<T: Float, R>(
    len: usize,
    parts: impl IntoIterator<Item = usize>,
    fill: impl FnOnce(Vec<Fresh<'_, T>>) -> R,
) -> (Vec<T>, R) {
    let mut out: Vec<T> = Vec::with_capacity(len);
    let initialised = AtomicUsize::new(0);
    let result = {
        let mut rest = &mut out.spare_capacity_mut()[..len];
        let mut fresh = Vec::new();
        for n in parts {
            let (part, tail) = rest.split_at_mut(n);
            fresh.push(Fresh {
                part,
                initialised: &initialised,
            });
            rest = tail;
        }
        assert!(
            rest.is_empty(),
            "output parts cover {} of {len} elements",
            len - rest.len()
        );
        fill(fresh)
    };
    assert_eq!(
        initialised.load(Ordering::Acquire),
        len,
        "a kernel left part of its output uninitialised"
    );
    // SAFETY: the parts tile the first `len` elements and every one was initialised (counted
    // above; a part can be initialised only once, as `zeroed` consumes it).
    unsafe { out.set_len(len) };
    (out, result)
}

/// Part lengths that cut `len` elements into pieces of `size` (the last one shorter).
pub(crate) fn pieces(len: usize, size: usize) -> impl Iterator<Item = usize> {
    let size = size.max(1);
    (0..len.div_ceil(size)).map(move |i| size.min(len - i * size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_tile_the_output_in_order() {
        let (v, sizes) = with_fresh_output::<f32, _>(10, pieces(10, 4), |parts| {
            parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let part = p.zeroed();
                    part.fill(i as f32);
                    part.len()
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(v, [0., 0., 0., 0., 1., 1., 1., 1., 2., 2.]);
        let (empty, ()) = with_fresh_output::<f64, _>(0, pieces(0, 4), |parts| {
            assert!(parts.is_empty());
        });
        assert!(empty.is_empty());
    }

    #[test]
    #[should_panic(expected = "uninitialised")]
    fn a_part_left_unwritten_is_caught() {
        with_fresh_output::<f32, _>(8, pieces(8, 4), |mut parts| {
            parts.pop();
            for p in parts {
                p.zeroed();
            }
        });
    }

    #[test]
    #[should_panic(expected = "cover")]
    fn parts_that_do_not_cover_the_output_are_caught() {
        with_fresh_output::<f32, _>(8, [4, 2], |_| ());
    }
}
