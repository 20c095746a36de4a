//! Batches: which indices an epoch visits, and their images decoded and transformed in
//! parallel with reproducible augmentation.

use std::borrow::Borrow;

use dirkit_core::SplitMix64;
use image::RgbImage;
use rayon::prelude::*;

use super::decode::decode_rgb;
use super::index::Record;
use super::transform::{Transform, to_chw_into};
use crate::epoch::{EpochSampler, epoch_rng};
use crate::error::{DataError, Result, invalid};

/// A loaded batch: `pixels` holds `len()` samples of `3 × size × size` values each (NCHW, row
/// major, values in [−1, 1]); `ages[k]` is the target of sample `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `N × 3 × size × size` input values.
    pub pixels: Vec<f32>,
    /// `N` targets (years for the face data sets).
    pub ages: Vec<f64>,
    /// Side of each image in pixels.
    pub size: u32,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.ages.len()
    }

    /// Whether the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.ages.is_empty()
    }

    /// `[N, 3, size, size]`, the shape of `pixels` as a tensor.
    pub fn shape(&self) -> [usize; 4] {
        let s = self.size as usize;
        [self.len(), 3, s, s]
    }
}

/// The augmentation stream of sample `index` (its position in the dataset) in epoch `epoch`
/// under `seed`: [`epoch_rng`]`(seed, epoch)`'s first output mixed with `index` through two
/// SplitMix64 steps, so neighbouring indices get unrelated streams.
///
/// It depends on nothing else, so a sample is augmented the same way whichever batch or thread
/// loads it. A sample drawn twice in one epoch (samplers draw with replacement) is augmented
/// the same way both times.
pub fn sample_rng(seed: u64, epoch: usize, index: usize) -> SplitMix64 {
    let key = epoch_rng(seed, epoch).next_u64();
    SplitMix64::new(SplitMix64::new(key ^ index as u64).next_u64())
}

/// Loads `dataset[i]` for each `i` in `batch`: decoded, transformed by `t` and stacked, in
/// parallel (rayon).
///
/// `augment = Some((seed, epoch))` applies the training pipeline with [`sample_rng`]`(seed,
/// epoch, i)` for sample `i`; `None` the evaluation pipeline. `t` is validated first; an index
/// outside the dataset is an [`DataError::InvalidParameter`], an image that cannot be read a
/// [`DataError::Image`] (the first failing one in batch order).
pub fn load_batch<R: Borrow<Record> + Sync>(
    dataset: &[R],
    batch: &[usize],
    t: &Transform,
    augment: Option<(u64, usize)>,
) -> Result<Batch> {
    t.validate()?;
    check_indices(batch, dataset.len())?;
    let chw = t.chw_len();
    let mut pixels = vec![0.0f32; batch.len() * chw];
    let results: Vec<Result<()>> = pixels
        .par_chunks_mut(chw)
        .zip(batch.par_iter())
        .map(|(dst, &i)| {
            let record: &Record = dataset[i].borrow();
            let img = decode_rgb(&record.path).map_err(|message| DataError::Image {
                path: record.path.display().to_string(),
                message,
            })?;
            let mut rng = augment.map(|(seed, epoch)| sample_rng(seed, epoch, i));
            to_chw_into(&img, t, rng.as_mut(), dst);
            Ok(())
        })
        .collect();
    results.into_iter().collect::<Result<()>>()?;
    Ok(Batch {
        pixels,
        ages: batch.iter().map(|&i| dataset[i].borrow().age).collect(),
        size: t.size,
    })
}

/// [`load_batch`] over images already in memory (`images[i]` with target `ages[i]`), for
/// generated data: the same transforms and the same per-sample streams.
pub fn load_image_batch(
    images: &[RgbImage],
    ages: &[f64],
    batch: &[usize],
    t: &Transform,
    augment: Option<(u64, usize)>,
) -> Result<Batch> {
    t.validate()?;
    if images.len() != ages.len() {
        return Err(DataError::LengthMismatch {
            what: "images and ages",
            left: images.len(),
            right: ages.len(),
        });
    }
    check_indices(batch, images.len())?;
    let chw = t.chw_len();
    let mut pixels = vec![0.0f32; batch.len() * chw];
    pixels
        .par_chunks_mut(chw)
        .zip(batch.par_iter())
        .for_each(|(dst, &i)| {
            let mut rng = augment.map(|(seed, epoch)| sample_rng(seed, epoch, i));
            to_chw_into(&images[i], t, rng.as_mut(), dst);
        });
    Ok(Batch {
        pixels,
        ages: batch.iter().map(|&i| ages[i]).collect(),
        size: t.size,
    })
}

/// One epoch over `n` samples without replacement: `0..n` shuffled by
/// [`epoch_rng`]`(seed, epoch)` and cut into batches of `batch_size` (the last one shorter,
/// or dropped when `drop_last`), like PyTorch's `DataLoader(shuffle=True)`.
pub fn epoch_batches(
    n: usize,
    batch_size: usize,
    seed: u64,
    epoch: usize,
    drop_last: bool,
) -> Result<Vec<Vec<usize>>> {
    let mut order: Vec<usize> = (0..n).collect();
    epoch_rng(seed, epoch).shuffle(&mut order);
    into_batches(&order, batch_size, drop_last)
}

/// One epoch drawn by a sampler ([`EpochSampler::sample_epoch`], with replacement), cut into
/// batches of `batch_size` in the order drawn.
pub fn sampler_batches<S: EpochSampler + ?Sized>(
    sampler: &S,
    epoch: usize,
    batch_size: usize,
    drop_last: bool,
) -> Result<Vec<Vec<usize>>> {
    into_batches(&sampler.sample_epoch(epoch), batch_size, drop_last)
}

/// `order` cut into consecutive batches of `batch_size` (>= 1); the last, shorter one is kept
/// unless `drop_last`.
pub fn into_batches(
    order: &[usize],
    batch_size: usize,
    drop_last: bool,
) -> Result<Vec<Vec<usize>>> {
    if batch_size == 0 {
        return invalid("batch_size", 0, "at least 1 sample per batch");
    }
    Ok(order
        .chunks(batch_size)
        .filter(|c| !drop_last || c.len() == batch_size)
        .map(<[usize]>::to_vec)
        .collect())
}

fn check_indices(batch: &[usize], n: usize) -> Result<()> {
    match batch.iter().find(|&&i| i >= n) {
        Some(&i) => Err(DataError::InvalidParameter {
            name: "batch index",
            value: i.to_string(),
            expected: "an index below the number of samples in the dataset",
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_batches_cover_every_index_once() {
        let b = epoch_batches(10, 3, 7, 0, false).unwrap();
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
        let mut all: Vec<usize> = b.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(epoch_batches(10, 3, 7, 0, true).unwrap().len(), 3);
        assert_eq!(b, epoch_batches(10, 3, 7, 0, false).unwrap());
        assert_ne!(b, epoch_batches(10, 3, 7, 1, false).unwrap());
        assert!(epoch_batches(10, 0, 7, 0, false).is_err());
        assert!(epoch_batches(0, 4, 7, 0, false).unwrap().is_empty());
    }

    #[test]
    fn sample_streams_differ_by_index_epoch_and_seed() {
        let first = |s, e, i| sample_rng(s, e, i).next_u64();
        assert_eq!(first(1, 2, 3), first(1, 2, 3));
        assert_ne!(first(1, 2, 3), first(1, 2, 4));
        assert_ne!(first(1, 2, 3), first(1, 3, 3));
        assert_ne!(first(1, 2, 3), first(2, 2, 3));
    }
}
