//! The reference image pipeline of the DIR face benchmarks (torchvision in Yang et al.'s
//! `agedb-dir` / `imdb-wiki-dir` code):
//!
//! - training: `Resize((size, size))`, `RandomCrop(size, padding=pad)`,
//!   `RandomHorizontalFlip()`, `ToTensor()`, `Normalize([.5, .5, .5], [.5, .5, .5])`;
//! - evaluation: `Resize((size, size))`, `ToTensor()`, `Normalize(...)`.
//!
//! The resize is `image`'s bilinear ([`FilterType::Triangle`], which widens its support when
//! shrinking, like PIL's antialiased bilinear), so resized pixels can differ from PIL's by a
//! level or two; every later step is exact.

use std::borrow::Cow;

use dirkit_core::SplitMix64;
use image::RgbImage;
use image::imageops::{FilterType, resize};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// Side of the square network input in pixels, 224 in the DIR reference code.
pub const DEFAULT_SIZE: u32 = 224;
/// Zero padding on each side before the random crop, 16 pixels at 224 in the DIR reference code.
pub const DEFAULT_PAD: u32 = 16;
/// Per-channel mean subtracted after scaling to [0, 1] (the reference's 0.5 for R, G and B).
pub const NORMALIZE_MEAN: f32 = 0.5;
/// Per-channel standard deviation divided by after the mean (the reference's 0.5).
pub const NORMALIZE_STD: f32 = 0.5;
/// Largest accepted `size`: one 4096×4096 sample is already 192 MiB of `f32`.
const MAX_SIZE: u32 = 4096;

/// How an image becomes a network input: resized to `size`×`size`, then — when augmenting — a
/// random `size`×`size` crop of the image zero-padded by `pad` pixels on each side and a
/// horizontal flip with probability 0.5 (when `flip`).
///
/// The default is the reference's 224 / 16 / flips. For smaller inputs scale the padding with
/// the size ([`Transform::scaled`]: `pad = round(16 · size / 224)`, 5 at 64, 2 at 32) so the
/// crop jitters the face by the same fraction of its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Transform {
    /// Output side in pixels (>= 1); default 224.
    pub size: u32,
    /// Zero padding on each side for the random crop, in pixels (< `size`); default 16.
    pub pad: u32,
    /// Flip horizontally with probability 0.5 when augmenting; default true.
    pub flip: bool,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            size: DEFAULT_SIZE,
            pad: DEFAULT_PAD,
            flip: true,
        }
    }
}

impl Transform {
    /// The reference pipeline at another input size, the padding scaled with it:
    /// `pad = round(16 · size / 224)`; flips on.
    pub fn scaled(size: u32) -> Transform {
        let pad = (u64::from(DEFAULT_PAD) * u64::from(size) + u64::from(DEFAULT_SIZE) / 2)
            / u64::from(DEFAULT_SIZE);
        Transform {
            size,
            pad: u32::try_from(pad).unwrap_or(u32::MAX),
            flip: true,
        }
    }

    /// Checks `1 <= size <= 4096` and `pad < size` (so every crop holds image pixels).
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 || self.size > MAX_SIZE {
            return invalid("size", self.size, "an image side of 1 to 4096 pixels");
        }
        if self.pad >= self.size {
            return invalid(
                "pad",
                self.pad,
                "fewer padding pixels than the image side (size)",
            );
        }
        Ok(())
    }

    /// Number of values per sample: `3 · size · size`.
    pub fn chw_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }
}

/// An 8-bit channel value as the network sees it: `(v / 255 − 0.5) / 0.5` in `f32`, the same
/// operations as torchvision's `ToTensor` + `Normalize`, so 0 → −1 and 255 → 1.
pub fn normalize(v: u8) -> f32 {
    (f32::from(v) / 255.0 - NORMALIZE_MEAN) / NORMALIZE_STD
}

/// Turns a decoded image into a `3 × size × size` input, channels first (R, G, B planes, rows
/// top to bottom), values in [−1, 1].
///
/// With `augment = None` this is the evaluation pipeline (resize and normalise). With a
/// generator it is the training one: the crop's top and left offsets in the padded image are
/// drawn as `rng.below(2·pad + 1)` each (torchvision's `randint(0, h − th + 1)`), then — when
/// `t.flip` — the image is flipped if `rng.uniform() < 0.5`; padding is black (−1). An image
/// already `size`×`size` is not resampled. `t` should have passed [`Transform::validate`]; an
/// empty image or `size = 0` gives all padding rather than a panic.
pub fn to_chw(img: &RgbImage, t: &Transform, augment: Option<&mut SplitMix64>) -> Vec<f32> {
    let mut out = vec![0.0; t.chw_len()];
    to_chw_into(img, t, augment, &mut out);
    out
}

/// [`to_chw`] into `out`, which must hold `t.chw_len()` values.
pub(crate) fn to_chw_into(
    img: &RgbImage,
    t: &Transform,
    augment: Option<&mut SplitMix64>,
    out: &mut [f32],
) {
    let black = normalize(0);
    out.fill(black);
    let s = t.size as usize;
    if s == 0 || img.width() == 0 || img.height() == 0 {
        return;
    }
    let resized: Cow<'_, RgbImage> = if img.dimensions() == (t.size, t.size) {
        Cow::Borrowed(img)
    } else {
        Cow::Owned(resize(img, t.size, t.size, FilterType::Triangle))
    };
    let pad = t.pad as usize;
    let (top, left, flip) = match augment {
        Some(rng) => {
            let span = 2 * pad + 1;
            let top = rng.below(span);
            let left = rng.below(span);
            (top, left, t.flip && rng.uniform() < 0.5)
        }
        None => (pad, pad, false),
    };
    let lut: [f32; 256] = std::array::from_fn(|v| normalize(v as u8));
    let raw = resized.as_raw();
    let plane = s * s;
    for y in 0..s {
        // Output row y is padded row y + top, i.e. image row y + top − pad.
        let Some(sy) = (y + top).checked_sub(pad).filter(|&r| r < s) else {
            continue;
        };
        for x in 0..s {
            let xc = if flip { s - 1 - x } else { x };
            let Some(sx) = (xc + left).checked_sub(pad).filter(|&c| c < s) else {
                continue;
            };
            let p = &raw[3 * (sy * s + sx)..3 * (sy * s + sx) + 3];
            for c in 0..3 {
                out[c * plane + y * s + x] = lut[p[c] as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_padding_follows_the_size() {
        assert_eq!(Transform::scaled(224), Transform::default());
        assert_eq!(Transform::scaled(64).pad, 5);
        assert_eq!(Transform::scaled(32).pad, 2);
        assert_eq!(Transform::scaled(1).pad, 0);
        for size in [1, 7, 32, 64, 112, 224, 448] {
            assert!(Transform::scaled(size).validate().is_ok(), "{size}");
        }
    }

    #[test]
    fn invalid_sizes_and_paddings_are_refused() {
        let t = |size, pad| Transform {
            size,
            pad,
            flip: true,
        };
        assert!(t(0, 0).validate().is_err());
        assert!(t(5000, 16).validate().is_err());
        assert!(t(16, 16).validate().is_err());
        assert!(t(16, 15).validate().is_ok());
    }

    #[test]
    fn normalisation_spans_minus_one_to_one() {
        assert_eq!(normalize(0), -1.0);
        assert_eq!(normalize(255), 1.0);
        assert!((normalize(128) - 0.003_921_628).abs() < 1e-7);
    }

    #[test]
    fn empty_images_and_zero_sizes_do_not_panic() {
        let t = Transform::scaled(8);
        let v = to_chw(&RgbImage::new(0, 0), &t, Some(&mut SplitMix64::new(1)));
        assert!(v.iter().all(|&x| x == -1.0));
        let zero = Transform {
            size: 0,
            pad: 0,
            flip: false,
        };
        assert!(to_chw(&RgbImage::new(3, 3), &zero, None).is_empty());
    }
}
