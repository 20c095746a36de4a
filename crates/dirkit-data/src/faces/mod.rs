//! The built-in face data set of the age-estimation example: procedurally drawn face-like RGB
//! images whose age is known, learnable and not trivial, with the label imbalance of AgeDB-DIR.
//!
//! - **Age cues**, all smooth in age and most delayed or hastened per person: head shape (a
//!   child's large cranium, low and big eyes and short lower face; later a longer nose, a
//!   sagging jaw and narrower eyes), wrinkles (forehead lines, crow's feet and nasolabial folds
//!   from about 30, under-eye bags, jowl lines past 50, deepening to 100), skin (rosy cheeks in
//!   children, sallower and rougher with age, age spots from about 55), hair (lighter and sparse
//!   in babies, salt-and-pepper then white from about 35, receding in some people, thinner in
//!   everyone past 60) and eyebrows (thin in children, grey late).
//! - **Nuisances**, independent of age ([`Nuisance`]): pose (rotation ±14°, shift ±2 pixels,
//!   scale ±12%), light direction and strength, exposure and white balance, background
//!   gradient, clothes, a hat (hides the top of the hair), glasses (frame the eyes), expression
//!   and pixel noise; and the person ([`Identity`]): skin and hair colour, face width and
//!   length, eye spacing, brows, hair length, hair dye (hides grey) and their own ageing
//!   schedule.
//! - **Deliberate ambiguity**: a face shows its *apparent* age, the true age plus a personal and
//!   a per-photo offset with a spread of 0.5 years at birth to about 5.5 at 100
//!   ([`age_spread`]); each cue's onset is drawn per person (grey hair anywhere from 24 to 60,
//!   or never for the dyed), and face proportions vary between people about as much as they
//!   change in old age. No single cue or pixel gives the age away; a model has to combine cues
//!   spread over the image, and the cues change little between 20 and 30 and past 90, as in
//!   real faces. Even an oracle reading the apparent age exactly has a mean absolute error of
//!   about 2.4 years on the balanced test set (0.8 × the mean spread of 3 years).
//!
//! Every random choice comes from [`SplitMix64`] streams derived from `(seed, split, index)`,
//! and rendering uses only correctly rounded IEEE arithmetic, so a data set is the same bytes
//! on every platform and with any number of threads.
//!
//! ```
//! use dirkit_data::faces::{FaceConfig, SplitPlan, SyntheticFaces};
//!
//! let plan = SplitPlan { train_total: 200, val_per_age: 1, test_per_age: 1, ..SplitPlan::default() };
//! let faces = SyntheticFaces::generate(7, &FaceConfig::default(), &plan)?;
//! assert_eq!(faces.train.len(), 200);
//! assert_eq!(faces.test.len(), 101); // one per age 1..=101
//! assert_eq!(faces.train.images[0].dimensions(), (32, 32));
//! # Ok::<(), dirkit_data::DataError>(())
//! ```

mod identity;
mod layout;
mod render;
mod shapes;

use std::ops::RangeInclusive;

use dirkit_core::SplitMix64;
use image::RgbImage;
use rayon::prelude::*;

use crate::dataset::Split;
use crate::error::{Result, invalid};
use crate::synthetic::AGEDB_DIR_TRAIN_COUNTS;

pub use identity::{Identity, Nuisance};
pub use layout::{preview_grid, write_agedb_layout};
pub use render::{age_spread, render_face};

/// Ages of the balanced validation and test sets: 1–101, the range of AgeDB (age 2 has no
/// AgeDB-DIR training image, so it is a zero-shot age here as there).
pub const EVAL_AGES: RangeInclusive<u32> = 1..=101;

/// Rendering settings, validated by [`FaceConfig::validate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceConfig {
    /// Image side in pixels (default 32, 16 to 512): small enough for CPU training (an epoch
    /// of the age example's `cpu-small` ResNet over 12k images takes about two minutes on two
    /// cores) while the
    /// finest cues (wrinkles) stay about one pixel wide. Features are drawn in
    /// resolution-independent coordinates, so larger sizes show the same faces in more detail.
    pub size: u32,
    /// Standard deviation of the per-channel pixel noise in units of the full intensity range
    /// (default 0.03, about 8 grey levels), in [0, 0.5].
    pub noise: f32,
    /// Multiplier of the apparent-age spread (default 1, in [0, 4]); 0 makes every cue an exact
    /// function of age and identity, 2 doubles the irreducible error.
    pub age_ambiguity: f32,
}

impl Default for FaceConfig {
    fn default() -> Self {
        Self {
            size: 32,
            noise: 0.03,
            age_ambiguity: 1.0,
        }
    }
}

impl FaceConfig {
    /// Checks every field's range; a valid config renders without surprises.
    pub fn validate(&self) -> Result<()> {
        if !(16..=512).contains(&self.size) {
            return invalid("size", self.size, "an image side of 16 to 512 pixels");
        }
        if !(self.noise.is_finite() && (0.0..=0.5).contains(&self.noise)) {
            return invalid("noise", self.noise, "a standard deviation in [0, 0.5]");
        }
        if !(self.age_ambiguity.is_finite() && (0.0..=4.0).contains(&self.age_ambiguity)) {
            return invalid(
                "age_ambiguity",
                self.age_ambiguity,
                "a multiplier in [0, 4]",
            );
        }
        Ok(())
    }
}

/// How many images of which ages go into the balanced validation and test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvalRecipe {
    /// `per_age` images of every age in [`EVAL_AGES`] (default): synthetic data can afford the
    /// cap everywhere, so the tail is measured as precisely as the bulk.
    #[default]
    Full,
    /// `min(per_age, n)` images of each age, `n` being its AgeDB-DIR training count: close to
    /// the real split, whose rare ages had fewer than 30 images to spare (2,187 images per split
    /// at the default cap against the real 2,140; ages without training images are left out).
    AgeDbLike,
}

/// Sizes of the three splits, validated by [`SplitPlan::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPlan {
    /// Training images (default 12,208, the size of AgeDB-DIR's training split), their ages in
    /// the proportions of [`AGEDB_DIR_TRAIN_COUNTS`] ([`train_age_counts`]); at most 1,000,000.
    pub train_total: usize,
    /// Validation images per age (default 30, AgeDB-DIR's cap); at most 10,000.
    pub val_per_age: usize,
    /// Test images per age (default 30, AgeDB-DIR's cap); at most 10,000.
    pub test_per_age: usize,
    /// Which ages the validation and test sets cover, and how many of each.
    pub eval: EvalRecipe,
    /// People in the pool that every split draws from (default 568, as many as in AgeDB); each
    /// image shows one chosen uniformly at random, so a person appears at many ages, and, as in
    /// AgeDB-DIR, the splits are not person-disjoint.
    pub identities: usize,
}

impl Default for SplitPlan {
    fn default() -> Self {
        Self {
            train_total: 12_208,
            val_per_age: 30,
            test_per_age: 30,
            eval: EvalRecipe::Full,
            identities: 568,
        }
    }
}

impl SplitPlan {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        if self.train_total > 1_000_000 {
            return invalid("train_total", self.train_total, "at most 1,000,000 images");
        }
        if self.val_per_age > 10_000 {
            return invalid(
                "val_per_age",
                self.val_per_age,
                "at most 10,000 images per age",
            );
        }
        if self.test_per_age > 10_000 {
            return invalid(
                "test_per_age",
                self.test_per_age,
                "at most 10,000 images per age",
            );
        }
        if !(1..=1_000_000).contains(&self.identities) {
            return invalid("identities", self.identities, "1 to 1,000,000 people");
        }
        Ok(())
    }
}

/// Training images per age 0–120 for `total` images: [`AGEDB_DIR_TRAIN_COUNTS`] scaled by
/// `total / 12,208` with the largest-remainder method (floors first, then one more image to the
/// ages with the largest remainders, the younger first on ties). Sums to `total` exactly and
/// equals the histogram at 12,208; at smaller totals the rarest ages may get none.
pub fn train_age_counts(total: usize) -> [usize; 121] {
    let n: u128 = AGEDB_DIR_TRAIN_COUNTS.iter().map(|&c| u128::from(c)).sum();
    let t = total as u128;
    let mut counts = [0usize; 121];
    let mut remainders = Vec::with_capacity(121);
    for (age, &c) in AGEDB_DIR_TRAIN_COUNTS.iter().enumerate() {
        let q = u128::from(c) * t;
        // Below `total`, which came from a usize.
        counts[age] = (q / n) as usize;
        remainders.push((q % n, age));
    }
    let short = total - counts.iter().sum::<usize>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, age) in remainders.iter().take(short) {
        counts[age] += 1;
    }
    counts
}

/// Validation or test images per age 0–120 for a cap of `per_age` under `recipe`.
pub fn eval_age_counts(per_age: usize, recipe: EvalRecipe) -> [usize; 121] {
    let mut counts = [0usize; 121];
    for age in EVAL_AGES {
        let a = age as usize;
        counts[a] = match recipe {
            EvalRecipe::Full => per_age,
            EvalRecipe::AgeDbLike => per_age.min(AGEDB_DIR_TRAIN_COUNTS[a] as usize),
        };
    }
    counts
}

/// One split: images with their ages and what they were drawn from, index-aligned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaceSplit {
    /// The images, `size × size` RGB.
    pub images: Vec<RgbImage>,
    /// True (not apparent) age of each image in whole years.
    pub ages: Vec<f64>,
    /// Position of each image's person in [`SyntheticFaces::identities`].
    pub identities: Vec<usize>,
    /// Photo conditions of each image.
    pub nuisances: Vec<Nuisance>,
}

impl FaceSplit {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.ages.len()
    }

    /// Whether the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.ages.is_empty()
    }
}

/// A generated data set: the people and the three splits.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticFaces {
    /// The seed it was generated from.
    pub seed: u64,
    /// How the images were rendered.
    pub config: FaceConfig,
    /// How many images of which ages each split holds.
    pub plan: SplitPlan,
    /// The pool of people.
    pub identities: Vec<Identity>,
    /// Training images, ages following the AgeDB-DIR histogram, in random order.
    pub train: FaceSplit,
    /// Balanced validation images, by increasing age.
    pub val: FaceSplit,
    /// Balanced test images, by increasing age.
    pub test: FaceSplit,
}

/// Stream numbers of the independent random streams of one data set.
const POOL_STREAM: u64 = 1;
const ORDER_STREAM: u64 = 2;

fn split_stream(split: Split) -> u64 {
    match split {
        Split::Train => 3,
        Split::Val => 4,
        Split::Test => 5,
    }
}

/// The generator of item `index` of stream `stream` of the data set with seed `seed`: two
/// rounds of SplitMix64 mixing, so nearby seeds, streams and indices give unrelated streams.
fn stream_rng(seed: u64, stream: u64, index: u64) -> SplitMix64 {
    let key = SplitMix64::new(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64();
    SplitMix64::new(SplitMix64::new(key ^ index).next_u64())
}

/// The generator of image `index` of `split` (picks its person, its nuisances and its noise),
/// so each image depends only on `(seed, split, index)`, never on the thread that renders it.
pub fn image_rng(seed: u64, split: Split, index: usize) -> SplitMix64 {
    stream_rng(seed, split_stream(split), index as u64)
}

impl SyntheticFaces {
    /// Generates the data set of `seed` (in parallel on rayon's pool; the result does not
    /// depend on the number of threads). The default plan at 32×32 takes a few seconds and
    /// about 60 MB; memory grows with `size²`.
    pub fn generate(seed: u64, cfg: &FaceConfig, plan: &SplitPlan) -> Result<Self> {
        cfg.validate()?;
        plan.validate()?;
        let mut rng = stream_rng(seed, POOL_STREAM, 0);
        let identities: Vec<Identity> = (0..plan.identities)
            .map(|_| Identity::sample(&mut rng))
            .collect();
        let mut train_ages = expand(&train_age_counts(plan.train_total));
        stream_rng(seed, ORDER_STREAM, 0).shuffle(&mut train_ages);
        let val_ages = expand(&eval_age_counts(plan.val_per_age, plan.eval));
        let test_ages = expand(&eval_age_counts(plan.test_per_age, plan.eval));
        let render = |split, ages: &[u32]| render_split(seed, split, ages, &identities, cfg);
        let train = render(Split::Train, &train_ages);
        let val = render(Split::Val, &val_ages);
        let test = render(Split::Test, &test_ages);
        Ok(Self {
            seed,
            config: *cfg,
            plan: *plan,
            identities,
            train,
            val,
            test,
        })
    }

    /// The images of one split.
    pub fn split(&self, split: Split) -> &FaceSplit {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }
}

/// Each age repeated as often as its count, by increasing age.
fn expand(counts: &[usize; 121]) -> Vec<u32> {
    (0u32..)
        .zip(counts)
        .flat_map(|(age, &n)| std::iter::repeat_n(age, n))
        .collect()
}

fn render_split(
    seed: u64,
    split: Split,
    ages: &[u32],
    identities: &[Identity],
    cfg: &FaceConfig,
) -> FaceSplit {
    let items: Vec<(RgbImage, usize, Nuisance)> = ages
        .par_iter()
        .enumerate()
        .map(|(i, &age)| {
            let mut rng = image_rng(seed, split, i);
            let who = rng.below(identities.len());
            let nz = Nuisance::sample(&mut rng);
            (
                render_face(f64::from(age), &identities[who], &nz, cfg),
                who,
                nz,
            )
        })
        .collect();
    let mut out = FaceSplit {
        ages: ages.iter().map(|&a| f64::from(a)).collect(),
        ..FaceSplit::default()
    };
    for (img, who, nz) in items {
        out.images.push(img);
        out.identities.push(who);
        out.nuisances.push(nz);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_reproduces_and_scales_the_histogram() {
        let full = train_age_counts(12_208);
        assert!(
            full.iter()
                .zip(&AGEDB_DIR_TRAIN_COUNTS)
                .all(|(&a, &b)| a == b as usize)
        );
        for total in [0, 1, 100, 6_104, 24_416, 50_000] {
            assert_eq!(train_age_counts(total).iter().sum::<usize>(), total);
        }
        let double = train_age_counts(24_416);
        assert!(double.iter().zip(&full).all(|(&d, &f)| d == 2 * f));
    }

    #[test]
    fn invalid_settings_are_refused() {
        let bad = [
            FaceConfig {
                size: 8,
                ..FaceConfig::default()
            },
            FaceConfig {
                noise: f32::NAN,
                ..FaceConfig::default()
            },
            FaceConfig {
                age_ambiguity: -1.0,
                ..FaceConfig::default()
            },
        ];
        assert!(bad.iter().all(|c| c.validate().is_err()));
        let plan = SplitPlan {
            identities: 0,
            ..SplitPlan::default()
        };
        assert!(SyntheticFaces::generate(0, &FaceConfig::default(), &plan).is_err());
    }
}
