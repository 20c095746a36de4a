//! Image regression datasets in the AgeDB-DIR / IMDB-WIKI-DIR layout (Yang et al. 2021): a CSV
//! index with the columns `age,path,split` and a folder of face images the paths are relative
//! to.
//!
//! - [`read_index`] reads and checks the index: every invalid row (an age that is not a
//!   non-negative number, an unknown split, an empty path, a missing or undecodable image)
//!   becomes a [`BadRow`] naming the file, line, column and value. [`Index::require_clean`]
//!   stops with the full list (the default before training); [`Index::skipping_bad`] keeps the
//!   valid rows and counts the rest (`--skip-bad`).
//! - [`Transform`] and [`to_chw`]: the reference image pipeline (resize, random crop with zero
//!   padding, horizontal flip, normalisation to [-1, 1]) on a decoded [`image::RgbImage`].
//! - [`load_batch`] / [`load_image_batch`]: a batch of images decoded and transformed in
//!   parallel, each sample's augmentation drawn from `(seed, epoch, index)` alone
//!   ([`sample_rng`]), so it depends neither on thread scheduling nor on the batch it is in.
//! - [`epoch_batches`] / [`sampler_batches`]: one epoch's indices, shuffled from `(seed, epoch)`
//!   or drawn by an [`EpochSampler`](crate::EpochSampler), cut into batches.
//!
//! ```no_run
//! use std::path::Path;
//! use dirkit_data::dataset::{Split, Transform, epoch_batches, load_batch, read_index};
//!
//! let index = read_index(Path::new("agedb.csv"), Path::new("AgeDB"), false)?;
//! index.require_clean(Path::new("agedb.csv"))?;
//! let train = index.split(Split::Train);
//! let t = Transform::default(); // 224×224, 16 pixels of padding, flips
//! for batch in epoch_batches(train.len(), 256, 0, 3, false)? {
//!     let b = load_batch(&train, &batch, &t, Some((0, 3)))?;
//!     assert_eq!(b.pixels.len(), batch.len() * t.chw_len());
//! }
//! # Ok::<(), dirkit_data::DataError>(())
//! ```

mod batch;
mod decode;
mod index;
mod transform;

pub use batch::{
    Batch, epoch_batches, into_batches, load_batch, load_image_batch, sample_rng, sampler_batches,
};
pub use index::{BadRow, Index, REQUIRED_COLUMNS, Record, Split, read_index};
pub use transform::{
    DEFAULT_PAD, DEFAULT_SIZE, NORMALIZE_MEAN, NORMALIZE_STD, Transform, normalize, to_chw,
};
