//! Rendering one face: every pixel is shaded by evaluating signed distances to ellipses and
//! strokes, with a one-pixel linear ramp at each edge for anti-aliasing.
//!
//! Only `+ - * /`, `sqrt`, `min`/`max` and rounding are used, all correctly rounded in IEEE-754,
//! and Rust never fuses them into FMAs on its own, so an image is bit-for-bit the same on every
//! platform given its inputs.

use dirkit_core::SplitMix64;
use image::RgbImage;

use super::FaceConfig;
use super::identity::{Identity, Nuisance, cos_sin, mix3};
use super::shapes::{arc, ellipse, ramp, segment};

/// One pose- and age-specific face, every length in face coordinates (head centre at the
/// origin, y down, the head about 1.1 wide).
struct Face {
    child: f32,
    cos: f32,
    sin: f32,
    nz: Nuisance,
    head_w: f32,
    top_h: f32,
    bottom_h: f32,
    jaw_taper: f32,
    hair_thickness: f32,
    /// Opacity of the hair: sparse in babies and in people whose hair thins.
    hair_density: f32,
    hairline: f32,
    hair_back: f32,
    hair: [f32; 3],
    /// Hair colour before greying, grey hair colour and share of grey hair.
    base: [f32; 3],
    silver: [f32; 3],
    grey: f32,
    brow: [f32; 3],
    brow_w: f32,
    skin: [f32; 3],
    eye_x: f32,
    eye_y: f32,
    eye_w: f32,
    eye_h: f32,
    iris: [f32; 3],
    brow_y: f32,
    nose_y: f32,
    mouth_y: f32,
    mouth_w: f32,
    lip_w: f32,
    wrinkles: f32,
    forehead: [f32; 4],
    folds: f32,
    bags: f32,
    jowls: f32,
    spots: f32,
    roughness: f32,
    id: Identity,
}

/// Apparent-age spread in years at `age` when `age_ambiguity = 1`: half a year for a baby,
/// about 2 years at 30, 3.5 at 60 and 5.5 at 100 (older faces are harder to date).
pub fn age_spread(age: f32) -> f32 {
    0.5 + 0.05 * age.max(0.0)
}

impl Face {
    fn new(age: f64, id: &Identity, nz: &Nuisance, cfg: &FaceConfig) -> Self {
        let age = if age.is_finite() {
            age.clamp(0.0, 130.0) as f32
        } else {
            0.0
        };
        let amb = if cfg.age_ambiguity.is_finite() {
            cfg.age_ambiguity
        } else {
            0.0
        };
        // The person's look is their age shifted by a personal and a per-photo offset.
        let shift = amb * age_spread(age) * (0.8 * id.age_offset + 0.6 * nz.age_jitter);
        let a = (age + shift).clamp(0.0, 130.0);
        let child = 1.0 - ramp(a, 0.0, 18.0);
        let (cos, sin) = cos_sin(nz.rotation);
        let old = ramp(a, 50.0, 90.0);
        let head_w = 0.56 * id.face_width * (1.0 + 0.06 * child);
        let top_h = 0.62 + 0.08 * child;
        let bottom_h = (0.70 - 0.26 * child) * id.face_length * (1.0 + 0.04 * old);
        let jaw_taper = 0.24 - 0.12 * child - 0.08 * old;
        let eye_y = -0.02 + 0.18 * child;
        let eye_h = 0.06 * (1.0 + 0.35 * child) * (1.0 - 0.35 * ramp(a, 40.0, 100.0));
        let nose_y = eye_y + 0.22 * (1.0 - 0.35 * child) + 0.05 * ramp(a, 35.0, 100.0);
        let mouth_y = nose_y + 0.15 * (1.0 - 0.3 * child);
        // Hair: thin in babies, thinning and receding with age for those prone to it.
        // Everyone's hair thins a little after 60.
        let thinning = 0.6 * id.balding * ramp(a, 30.0, 75.0) + 0.3 * ramp(a, 60.0, 100.0);
        let amount = ramp(a, 0.0, 4.0) * (1.0 - thinning).max(0.0);
        let recession = id.balding * ramp(a, 22.0, 70.0);
        let hairline = -0.36 - recession * 0.38;
        let base = mix3(id.hair, [0.85, 0.72, 0.45], 0.4 * child);
        let grey = ramp(a, id.grey_onset, id.grey_onset + id.grey_span);
        let silver = mix3([0.62, 0.62, 0.64], [0.93, 0.93, 0.93], ramp(grey, 0.6, 1.0));
        let grey = grey * (1.0 - id.dye);
        let hair = mix3(base, silver, grey);
        let brow_grey = ramp(a, id.grey_onset + 10.0, id.grey_onset + id.grey_span + 20.0);
        let brow = mix3(
            [base[0] * 0.7, base[1] * 0.7, base[2] * 0.7],
            silver,
            0.8 * brow_grey,
        );
        let sallow = ramp(a, 45.0, 100.0);
        let skin = [
            id.skin[0] * (1.0 - 0.06 * sallow) + 0.03 * child,
            id.skin[1] * (1.0 - 0.08 * sallow),
            id.skin[2] * (1.0 - 0.12 * sallow),
        ];
        let on = id.wrinkle_onset;
        let g = id.wrinkle_gain;
        let mut forehead = [0.0; 4];
        for (k, f) in forehead.iter_mut().enumerate() {
            let start = on + 7.0 * k as f32;
            *f = g * ramp(a, start, start + 30.0);
        }
        Self {
            child,
            cos,
            sin,
            nz: *nz,
            head_w,
            top_h,
            bottom_h,
            jaw_taper,
            hair_thickness: 0.02 + 0.08 * amount,
            hair_density: 0.25 + 0.75 * amount,
            hairline,
            hair_back: id.hair_length * amount,
            hair,
            base,
            silver,
            grey,
            brow,
            brow_w: 0.022 * id.brow_weight * (0.6 + 0.4 * ramp(a, 0.0, 14.0)),
            skin,
            eye_x: 0.22 * id.eye_spacing,
            eye_y,
            eye_w: 0.11 * (1.0 + 0.25 * child),
            eye_h,
            iris: id.iris,
            brow_y: eye_y - 0.12 - 0.02 * child,
            nose_y,
            mouth_y,
            mouth_w: 0.13 * (1.0 - 0.2 * child),
            lip_w: 0.014 + 0.02 * (1.0 - ramp(a, 30.0, 85.0)),
            wrinkles: g * (0.75 * ramp(a, on, on + 30.0) + 0.25 * ramp(a, 60.0, 100.0)),
            forehead,
            folds: g * ramp(a, on - 4.0, on + 28.0),
            bags: g * ramp(a, 35.0, 95.0),
            jowls: g * ramp(a, 52.0, 100.0),
            spots: ramp(a, id.spot_onset, id.spot_onset + 30.0),
            roughness: ramp(a, 40.0, 100.0),
            id: *id,
        }
    }

    /// Signed distance to the head outline: an egg, taller below the centre than above, whose
    /// lower half narrows towards the jaw.
    fn head(&self, x: f32, y: f32) -> f32 {
        if y < 0.0 {
            ellipse(x, y, self.head_w, self.top_h)
        } else {
            let t = (y / self.bottom_h).min(1.0);
            let w = self.head_w * (1.0 - self.jaw_taper * t * t);
            ellipse(x, y, w, self.bottom_h)
        }
    }

    /// The colour at image coordinates `(u, v)` in [-1, 1]² (y down); `px` is one pixel there.
    fn shade(&self, u: f32, v: f32, px: f32) -> [f32; 3] {
        let nz = &self.nz;
        let cover = |d: f32| (0.5 - d / (px / nz.scale)).clamp(0.0, 1.0);
        let t = (0.5 + 0.5 * (u * nz.background_dir[0] + v * nz.background_dir[1])).clamp(0.0, 1.0);
        let mut col = mix3(nz.background[0], nz.background[1], t);
        // Image to face coordinates: undo the shift, the scale and the rotation.
        let (qx, qy) = ((u - nz.shift[0]) / nz.scale, (v - nz.shift[1]) / nz.scale);
        let x = self.cos * qx + self.sin * qy;
        let y = -self.sin * qx + self.cos * qy;
        let light = |nx: f32, ny: f32| {
            let nzz = (1.0 - nx * nx - ny * ny).max(0.0).sqrt();
            let dot = 0.6 * (nx * nz.light_dir[0] + ny * nz.light_dir[1]) + 0.8 * nzz;
            1.0 - nz.light_strength + nz.light_strength * dot.clamp(0.0, 1.0)
        };
        // Shoulders and neck.
        let c = cover(ellipse(x, y - 1.38, 1.05, 0.55));
        if c > 0.0 {
            col = mix3(col, scale3(nz.clothing, light(x / 1.4, 0.0)), c);
        }
        let neck_w = 0.24 * self.head_w / 0.56;
        let c = cover((x.abs() - neck_w).max(0.2 - y));
        if c > 0.0 {
            col = mix3(col, scale3(self.skin, 0.72 * light(x / 0.5, 0.0)), c);
        }
        // Long hair behind the head.
        let (hw, hh) = (
            self.head_w + self.hair_thickness,
            self.top_h + self.hair_thickness,
        );
        if self.hair_back > 0.0 {
            let len = self.hair_back * 0.75;
            let d = ellipse(x, y - 0.5 * len, hw + 0.04, hh + 0.5 * len);
            let c = cover(d.max(y - (self.eye_y + len)));
            if c > 0.0 {
                let hair = scale3(self.hair_at(x, y), 0.8 * light(x / hw, 0.0));
                col = mix3(col, hair, c * self.hair_density);
            }
        }
        let c = cover(self.head(x, y));
        if c > 0.0 {
            let nx = (x / self.head_w).clamp(-1.0, 1.0);
            let ny = if y < 0.0 {
                y / self.top_h
            } else {
                y / self.bottom_h
            }
            .clamp(-1.0, 1.0);
            let skin = scale3(self.face(x, y, &cover), light(nx, ny));
            col = mix3(col, skin, c);
        }
        // Hair on top of the head: inside the hair cap and above the hairline, which stays
        // low at the sides (temples) even when the top recedes.
        let side = ramp(x.abs() / self.head_w, 0.55, 0.95);
        let line = self.hairline + (self.eye_y - 0.08 - self.hairline) * side;
        let line = line + 0.1 * (x / self.head_w) * (x / self.head_w) * (1.0 - side);
        let c = cover(ellipse(x, y + 0.02, hw, hh).max(y - line));
        if c > 0.0 {
            let s = light((x / hw).clamp(-1.0, 1.0), (y / hh).clamp(-1.0, 1.0));
            col = mix3(col, scale3(self.hair_at(x, y), s), c * self.hair_density);
        }
        if nz.hat {
            // A cap over the top of the head, down to mid-forehead, with a brim.
            let top = ellipse(x, y + 0.04, hw + 0.05, hh + 0.06).max(y - (self.brow_y - 0.2));
            let brim = ellipse(x, y - (self.brow_y - 0.2), hw + 0.12, 0.05);
            let c = cover(top.min(brim));
            if c > 0.0 {
                let s = light((x / hw).clamp(-1.0, 1.0), (y / hh).clamp(-1.0, 1.0));
                col = mix3(col, scale3(nz.hat_colour, s), c);
            }
        }
        if nz.glasses {
            col = self.glasses(x, y, col, &cover);
        }
        [
            col[0] * nz.brightness * nz.tint[0],
            col[1] * nz.brightness * nz.tint[1],
            col[2] * nz.brightness * nz.tint[2],
        ]
    }

    /// A per-person random field in [-0.5, 0.5) on a grid of cells about one pixel wide at
    /// 32×32 (`layer` picks an independent field).
    fn texture(&self, x: f32, y: f32, layer: u64) -> f32 {
        let (cx, cy) = ((x * 18.0 + 64.0) as u64, (y * 18.0 + 64.0) as u64);
        let h = SplitMix64::new(self.id.texture_seed ^ (layer << 40 | cx << 20 | cy)).next_u64();
        (h >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    /// Hair colour at `(x, y)`: salt and pepper while greying, even when fully dark or grey.
    fn hair_at(&self, x: f32, y: f32) -> [f32; 3] {
        if self.grey <= 0.0 || self.grey >= 1.0 {
            return self.hair;
        }
        let spread = 2.0 * self.grey * (1.0 - self.grey);
        let g = (self.grey + spread * self.texture(x, y, 1)).clamp(0.0, 1.0);
        mix3(self.base, self.silver, g)
    }

    /// Skin with every facial feature and age cue, before lighting.
    fn face(&self, x: f32, y: f32, cover: &impl Fn(f32) -> f32) -> [f32; 3] {
        let mut col = self.skin;
        // Fine skin texture: a per-person random field on a grid of cells about one pixel
        // wide at 32×32, whose contrast grows with age.
        if self.roughness > 0.0 {
            col = scale3(col, 1.0 + 0.16 * self.roughness * self.texture(x, y, 0));
        }
        // Rosy cheeks of children.
        let blush = self.child
            * 0.18
            * cover(ellipse(x.abs() - 0.27, y - self.eye_y - 0.2, 0.09, 0.07) - 0.03);
        col = [
            col[0] + blush * 0.5,
            col[1] - blush * 0.2,
            col[2] - blush * 0.15,
        ];
        let mut dark = 0.0f32;
        let ax = x.abs();
        // Eyes, brows, bags and crow's feet (mirrored about x = 0).
        if y > self.brow_y - 0.06 && y < self.eye_y + self.eye_h + 0.09 {
            let (ex, ey) = (ax - self.eye_x, y - self.eye_y);
            let d = ellipse(ex, ey, self.eye_w, self.eye_h);
            let c = cover(d);
            if c > 0.0 {
                col = mix3(col, [0.88, 0.86, 0.84], c);
                let ir = self.eye_h.min(0.055);
                col = mix3(
                    col,
                    scale3(self.iris, 0.7),
                    cover((ex * ex + ey * ey).sqrt() - ir),
                );
            }
            dark = dark.max(0.55 * cover(d.abs() - 0.012));
            let brow = arc(ax, y, self.eye_x, self.brow_y, 0.13, 2.0);
            col = mix3(col, self.brow, 0.9 * cover(brow - self.brow_w));
            let under = arc(
                ax,
                y,
                self.eye_x,
                self.eye_y + self.eye_h + 0.035,
                0.08,
                -2.0,
            );
            dark = dark.max(0.3 * self.bags * cover(under - 0.018));
            let (x0, len) = (self.eye_x + self.eye_w + 0.015, 0.03 + 0.07 * self.wrinkles);
            for dy in [-0.45f32, 0.0, 0.45] {
                let n = (1.0 + dy * dy).sqrt();
                let s = segment(
                    ax,
                    y,
                    x0,
                    self.eye_y,
                    x0 + len / n,
                    self.eye_y + len * dy / n,
                );
                dark = dark.max(0.5 * self.wrinkles * cover(s - 0.011));
            }
        }
        // Forehead lines, more and deeper with age.
        if y < self.brow_y - 0.03 && y > self.brow_y - 0.35 {
            for (k, &w) in self.forehead.iter().enumerate() {
                if w > 0.0 {
                    let y0 = self.brow_y - 0.08 - 0.055 * k as f32;
                    let d = arc(x, y, 0.0, y0, 0.16 + 0.08 * w - 0.02 * k as f32, 0.5);
                    dark = dark.max(0.45 * w * cover(d - 0.012));
                }
            }
        }
        // Nose, nasolabial folds, mouth and jowl lines.
        if y > self.eye_y && y < self.mouth_y + 0.2 {
            let side = if self.nz.light_dir[0] > 0.0 {
                -1.0
            } else {
                1.0
            };
            let d = segment(
                x * side,
                y,
                0.045,
                self.eye_y + 0.06,
                0.055,
                self.nose_y - 0.02,
            );
            dark = dark.max(0.15 * cover(d - 0.015));
            let d = ellipse(x, y - self.nose_y, 0.065, 0.022);
            dark = dark.max(0.3 * cover(d));
            let (mx, my) = (self.mouth_w + 0.03, self.mouth_y + 0.015);
            let d = segment(ax, y, 0.09, self.nose_y - 0.01, mx, my);
            dark = dark.max(0.5 * self.folds * cover(d - 0.013));
            let d = segment(ax, y, self.mouth_w, self.mouth_y + 0.02, mx, my + 0.12);
            dark = dark.max(0.35 * self.jowls * cover(d - 0.013));
            let k = -2.5 * self.nz.smile;
            let d = arc(x, y, 0.0, self.mouth_y, self.mouth_w, k);
            let lips = [col[0] * 0.85, col[1] * 0.52, col[2] * 0.52];
            col = mix3(col, lips, 0.85 * cover(d - self.lip_w));
            dark = dark.max(0.5 * cover(d - 0.008));
        }
        if self.spots > 0.0 {
            for s in &self.id.spots {
                let (dx, dy) = (x - s[0], y - s[1]);
                dark = dark.max(0.3 * self.spots * cover((dx * dx + dy * dy).sqrt() - 0.022));
            }
        }
        scale3(col, 1.0 - dark)
    }

    /// Thin dark frames around both eyes and a bridge.
    fn glasses(&self, x: f32, y: f32, col: [f32; 3], cover: &impl Fn(f32) -> f32) -> [f32; 3] {
        let (rw, rh) = (self.eye_w + 0.05, self.eye_h + 0.06);
        let ring = ellipse(x.abs() - self.eye_x, y - self.eye_y, rw, rh).abs();
        let inner = self.eye_x - rw;
        let bridge = segment(x, y, -inner, self.eye_y - 0.02, inner, self.eye_y - 0.02);
        let c = cover(ring.min(bridge) - 0.014);
        mix3(col, [0.08, 0.08, 0.09], 0.9 * c)
    }
}

fn scale3(c: [f32; 3], s: f32) -> [f32; 3] {
    [c[0] * s, c[1] * s, c[2] * s]
}

/// A standard-normal-like draw from one `u64`: the sum of four 16-bit uniforms, centred and
/// scaled to unit variance (Irwin–Hall; bounded by ±3.5, which is fine for pixel noise).
fn pixel_noise(bits: u64) -> f32 {
    let sum: u64 = (0..4).map(|i| (bits >> (16 * i)) & 0xFFFF).sum();
    let u = sum as f32 / 65_536.0 - 2.0;
    u * 3.0f32.sqrt()
}

/// Renders one `cfg.size × cfg.size` face of `age` years for `identity` photographed under
/// `nuisance`; the same inputs give the same bytes on every platform.
///
/// The face shows the person's apparent age: `age` (clamped to [0, 130] years) plus
/// `cfg.age_ambiguity ×` [`age_spread`]`(age) × (0.8 identity.age_offset + 0.6
/// nuisance.age_jitter)`, so two photos of the same age differ by a few years of apparent age.
/// Each channel then gets Gaussian-like noise of standard deviation `cfg.noise` (in units of the
/// full intensity range). Any input is rendered, none panics: a zero size gives an empty image,
/// a non-finite age a newborn, a non-finite noise or ambiguity none; only a size far beyond
/// what [`FaceConfig::validate`] accepts could fail, to allocate the image. No libm function
/// (`sin`, `exp`, `powf`…) is used, so nothing depends on the platform's last bits.
pub fn render_face(
    age: f64,
    identity: &Identity,
    nuisance: &Nuisance,
    cfg: &FaceConfig,
) -> RgbImage {
    let face = Face::new(age, identity, nuisance, cfg);
    let size = cfg.size;
    let noise = if cfg.noise.is_finite() {
        cfg.noise.max(0.0)
    } else {
        0.0
    };
    let px = 2.0 / size.max(1) as f32;
    let mut rng = SplitMix64::new(nuisance.noise_seed);
    let mut img = RgbImage::new(size, size);
    for (i, p) in img.pixels_mut().enumerate() {
        let (col, row) = ((i % size as usize) as f32, (i / size as usize) as f32);
        let c = face.shade((col + 0.5) * px - 1.0, (row + 0.5) * px - 1.0, px);
        for (ch, &v) in p.0.iter_mut().zip(&c) {
            let v = v + noise * pixel_noise(rng.next_u64());
            *ch = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    img
}
