//! The image pipeline: exact normalised values, crop offsets and flips at the expected pixel
//! positions, and the invariants every output keeps.

use dirkit_core::SplitMix64;
use dirkit_data::dataset::{Transform, normalize, to_chw};
use image::{Rgb, RgbImage};

/// Channel `c` of output pixel `(x, y)`.
fn at(v: &[f32], size: u32, c: usize, x: u32, y: u32) -> f32 {
    let s = size as usize;
    v[c * s * s + y as usize * s + x as usize]
}

/// A `size`×`size` image with a distinct red per position: `r = 1 + y·size + x`, `g = 7`,
/// `b = 255 − r`.
fn numbered(size: u32) -> RgbImage {
    RgbImage::from_fn(size, size, |x, y| {
        let r = (1 + y * size + x) as u8;
        Rgb([r, 7, 255 - r])
    })
}

/// The draws `to_chw` makes for an augmented sample: crop top, crop left, flip.
fn draws(seed: u64, t: &Transform) -> (u32, u32, bool) {
    let mut rng = SplitMix64::new(seed);
    let span = 2 * t.pad as usize + 1;
    let top = rng.below(span) as u32;
    let left = rng.below(span) as u32;
    (top, left, t.flip && rng.uniform() < 0.5)
}

#[test]
fn a_constant_colour_gives_the_exact_normalised_value() {
    let img = RgbImage::from_pixel(37, 23, Rgb([0, 10, 255]));
    let t = Transform::scaled(16);
    let v = to_chw(&img, &t, None);
    assert_eq!(v.len(), 3 * 16 * 16);
    // torchvision: ToTensor (v / 255 in f32), then Normalize (x - 0.5) / 0.5.
    let expected = [-1.0f32, -0.921_568_63, 1.0];
    for (c, e) in expected.into_iter().enumerate() {
        assert!(v[c * 256..(c + 1) * 256].iter().all(|&x| x == e), "{c}");
    }
    assert_eq!(normalize(10), (10.0f32 / 255.0 - 0.5) / 0.5);
}

#[test]
fn evaluation_of_an_image_of_the_right_size_is_the_identity() {
    let img = numbered(6);
    let t = Transform {
        size: 6,
        pad: 2,
        flip: true,
    };
    let v = to_chw(&img, &t, None);
    for y in 0..6 {
        for x in 0..6 {
            for (c, &p) in img.get_pixel(x, y).0.iter().enumerate() {
                assert_eq!(at(&v, 6, c, x, y), normalize(p));
            }
        }
    }
}

#[test]
fn crops_and_flips_put_pixels_where_torchvision_would() {
    let size = 5;
    let img = numbered(size);
    let t = Transform {
        size,
        pad: 2,
        flip: true,
    };
    let black = normalize(0);
    let mut seen_flip = [false; 2];
    let mut seen_corner = [false; 2];
    for seed in 0..400u64 {
        let (top, left, flip) = draws(seed, &t);
        let v = to_chw(&img, &t, Some(&mut SplitMix64::new(seed)));
        seen_flip[flip as usize] = true;
        // The reference: pad with zeros, crop at (top, left), then mirror the crop.
        for y in 0..size {
            for x in 0..size {
                let xc = if flip { size - 1 - x } else { x };
                let (py, px) = (y + top, xc + left);
                let inside =
                    (t.pad..t.pad + size).contains(&py) && (t.pad..t.pad + size).contains(&px);
                for c in 0..3 {
                    let want = if inside {
                        normalize(img.get_pixel(px - t.pad, py - t.pad).0[c])
                    } else {
                        black
                    };
                    assert_eq!(at(&v, size, c, x, y), want, "seed {seed} c {c} ({x}, {y})");
                }
            }
        }
        // Hand-checked corners: a crop at the padded image's origin shifts the picture right
        // and down by the padding; at (4, 4) it shifts it up and left.
        if (top, left, flip) == (0, 0, false) {
            seen_corner[0] = true;
            assert_eq!(at(&v, size, 0, 1, 1), black);
            assert_eq!(at(&v, size, 0, 2, 2), normalize(1));
            assert_eq!(at(&v, size, 0, 4, 4), normalize(1 + 2 * 5 + 2));
        }
        if (top, left, flip) == (4, 4, true) {
            seen_corner[1] = true;
            // Output (x, y) reads padded (4 - x + 4, y + 4), i.e. image column 6 - x, row y + 2.
            assert_eq!(at(&v, size, 0, 2, 0), normalize(1 + 2 * 5 + 4));
            assert_eq!(at(&v, size, 0, 4, 2), normalize(1 + 4 * 5 + 2));
            assert_eq!(at(&v, size, 0, 0, 0), black);
            assert_eq!(at(&v, size, 0, 4, 3), black);
        }
    }
    assert_eq!(seen_flip, [true, true], "both flip outcomes occur");
    assert_eq!(seen_corner, [true, true], "both hand-checked crops occur");
}

#[test]
fn flips_alone_mirror_rows_about_half_the_time() {
    let img = numbered(4);
    let t = Transform {
        size: 4,
        pad: 0,
        flip: true,
    };
    let plain = to_chw(&img, &t, None);
    let mirrored: Vec<f32> = (0..3)
        .flat_map(|c| (0..4).flat_map(move |y| (0..4).map(move |x| (c, x, y))))
        .map(|(c, x, y)| at(&plain, 4, c, 3 - x, y))
        .collect();
    let mut flips = 0;
    for seed in 0..1000 {
        let v = to_chw(&img, &t, Some(&mut SplitMix64::new(seed)));
        if v == mirrored {
            flips += 1;
        } else {
            assert_eq!(v, plain);
        }
    }
    // Binomial(1000, 0.5): 4 standard deviations is ±63.
    assert!((437..=563).contains(&flips), "{flips}");
    let no_flip = Transform { flip: false, ..t };
    assert!((0..50).all(|s| to_chw(&img, &no_flip, Some(&mut SplitMix64::new(s))) == plain));
}

#[test]
fn outputs_have_the_stated_length_and_range() {
    let img = RgbImage::from_fn(31, 17, |x, y| Rgb([(x * 8) as u8, (y * 15) as u8, 255]));
    for size in [1, 3, 16, 33] {
        let t = Transform::scaled(size);
        t.validate().unwrap();
        for seed in 0..5 {
            let mut rng = SplitMix64::new(seed);
            for v in [to_chw(&img, &t, None), to_chw(&img, &t, Some(&mut rng))] {
                assert_eq!(v.len(), 3 * size as usize * size as usize);
                assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
            }
        }
    }
    // Padding only ever adds black: the blue plane is 1 or -1, nothing in between.
    let t = Transform::scaled(16);
    let v = to_chw(&img, &t, Some(&mut SplitMix64::new(3)));
    assert!(v[2 * 256..].iter().all(|&x| x == 1.0 || x == -1.0));
}
