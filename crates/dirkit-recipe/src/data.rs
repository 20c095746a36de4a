//! The three splits of a run's images — the built-in synthetic faces in memory or a folder in
//! the AgeDB-DIR layout — with one way to load a batch of either.

use dirkit_data::dataset::read_index;
use dirkit_data::dataset::{Batch, Record, Split, Transform, load_batch, load_image_batch};
use dirkit_data::faces::{FaceConfig, SplitPlan, SyntheticFaces};
use image::RgbImage;

use crate::config::{DataSource, RunConfig};
use crate::error::Result;

/// One split's samples.
#[derive(Debug, Clone)]
enum Samples {
    /// Decoded images with their ages.
    Memory {
        images: Vec<RgbImage>,
        ages: Vec<f64>,
    },
    /// Index rows; images are decoded when a batch is loaded.
    Files(Vec<Record>),
}

/// The images of one split and how to load them.
#[derive(Debug, Clone)]
pub struct SplitData {
    samples: Samples,
}

impl SplitData {
    /// A split of in-memory images (`images[i]` has age `ages[i]`, in years).
    pub fn from_images(images: Vec<RgbImage>, ages: Vec<f64>) -> Self {
        Self {
            samples: Samples::Memory { images, ages },
        }
    }

    /// A split of image files.
    pub fn from_records(records: Vec<Record>) -> Self {
        Self {
            samples: Samples::Files(records),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match &self.samples {
            Samples::Memory { ages, .. } => ages.len(),
            Samples::Files(r) => r.len(),
        }
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every sample's target, in order.
    pub fn ages(&self) -> Vec<f64> {
        match &self.samples {
            Samples::Memory { ages, .. } => ages.clone(),
            Samples::Files(r) => r.iter().map(|r| r.age).collect(),
        }
    }

    /// Every sample's image path, for samples read from files (`None` for in-memory images).
    pub fn paths(&self) -> Option<Vec<String>> {
        match &self.samples {
            Samples::Memory { .. } => None,
            Samples::Files(r) => Some(r.iter().map(|r| r.path.display().to_string()).collect()),
        }
    }

    /// Samples `indices` transformed by `t` (in parallel); `augment = Some((seed, epoch))` for
    /// the training pipeline, `None` for evaluation.
    pub fn load(
        &self,
        indices: &[usize],
        t: &Transform,
        augment: Option<(u64, usize)>,
    ) -> Result<Batch> {
        Ok(match &self.samples {
            Samples::Memory { images, ages } => {
                load_image_batch(images, ages, indices, t, augment)?
            }
            Samples::Files(r) => load_batch(r, indices, t, augment)?,
        })
    }
}

/// A run's data: the three splits and the transform (the reference's: resize, random crop
/// with padding scaled from 16 px at 224, horizontal flip; normalise 0.5 / 0.5).
#[derive(Debug, Clone)]
pub struct RunData {
    /// Training split.
    pub train: SplitData,
    /// Validation split (model selection).
    pub val: SplitData,
    /// Test split (the final report).
    pub test: SplitData,
    /// Image transform.
    pub transform: Transform,
    /// Index rows left out under `skip_bad` (0 for generated data).
    pub skipped_rows: usize,
}

impl RunData {
    /// Loads (or generates) the data `config` names. A folder's index is read with every image
    /// decoded once up front; bad rows stop here with the full list unless `skip_bad`.
    pub fn load(config: &RunConfig) -> Result<Self> {
        let transform = Transform::scaled(config.image_size);
        transform.validate()?;
        match &config.data {
            DataSource::Synthetic {
                seed,
                size,
                train_total,
                per_age,
            } => {
                let cfg = FaceConfig {
                    size: *size,
                    ..FaceConfig::default()
                };
                let plan = SplitPlan {
                    train_total: *train_total,
                    val_per_age: *per_age,
                    test_per_age: *per_age,
                    ..SplitPlan::default()
                };
                let faces = SyntheticFaces::generate(*seed, &cfg, &plan)?;
                let [train, val, test] = [faces.train, faces.val, faces.test]
                    .map(|s| SplitData::from_images(s.images, s.ages));
                Ok(Self {
                    train,
                    val,
                    test,
                    transform,
                    skipped_rows: 0,
                })
            }
            DataSource::Folder { csv, root } => {
                let index = read_index(csv, root, true)?;
                let skipped = if config.skip_bad {
                    index.bad_row_count()
                } else {
                    index.require_clean(csv)?;
                    0
                };
                let (records, _) = index.skipping_bad();
                let pick = |split: Split| {
                    SplitData::from_records(
                        records
                            .iter()
                            .filter(|r| r.split == split)
                            .cloned()
                            .collect(),
                    )
                };
                let data = Self {
                    train: pick(Split::Train),
                    val: pick(Split::Val),
                    test: pick(Split::Test),
                    transform,
                    skipped_rows: skipped,
                };
                for (split, s) in [
                    (Split::Train, &data.train),
                    (Split::Val, &data.val),
                    (Split::Test, &data.test),
                ] {
                    if s.is_empty() {
                        return Err(crate::error::RecipeError::io(
                            csv,
                            format!("no usable '{split}' rows: every split needs images"),
                        ));
                    }
                }
                Ok(data)
            }
        }
    }
}
