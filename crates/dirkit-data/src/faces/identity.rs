//! The two kinds of randomness of a synthetic face: [`Identity`] (the person, fixed across
//! their images and ages) and [`Nuisance`] (the photo: pose, light, background, noise). Neither
//! depends on age, so no age information leaks through them.

use dirkit_core::SplitMix64;

/// One synthetic person: appearance traits fixed for life and the person's own ageing
/// schedule (when they grey, wrinkle, lose hair), so two people of the same age look
/// different ages.
///
/// Colours are sRGB in [0, 1]; lengths are multipliers of the average face; onsets are in years.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Identity {
    /// Skin colour before shading.
    pub skin: [f32; 3],
    /// Adult hair colour before greying (black, brown, auburn or blond).
    pub hair: [f32; 3],
    /// Iris colour.
    pub iris: [f32; 3],
    /// Face width multiplier, uniform in [0.9, 1.1].
    pub face_width: f32,
    /// Lower-face length multiplier, uniform in [0.92, 1.08]; overlaps the child-to-adult change.
    pub face_length: f32,
    /// Eye-spacing multiplier, uniform in [0.9, 1.1].
    pub eye_spacing: f32,
    /// Eyebrow thickness multiplier, uniform in [0.6, 1.4].
    pub brow_weight: f32,
    /// How far hair falls down the sides of the head, uniform in [0, 1].
    pub hair_length: f32,
    /// Age at which greying starts, normal(38, 6) clamped to [24, 60] years.
    pub grey_onset: f32,
    /// Years from the onset to fully grey, uniform in [15, 40].
    pub grey_span: f32,
    /// Age at which wrinkles start, normal(32, 5) clamped to [20, 48] years.
    pub wrinkle_onset: f32,
    /// Wrinkle depth multiplier, uniform in [0.7, 1.3].
    pub wrinkle_gain: f32,
    /// Share of the grey hidden by hair dye: 0 for 70% of people, uniform in [0.6, 1]
    /// for the rest (the eyebrows still grey).
    pub dye: f32,
    /// Propensity to lose hair with age, `U²` in [0, 1] (most people little, a few a lot).
    pub balding: f32,
    /// Age at which age spots appear, normal(58, 8) years.
    pub spot_onset: f32,
    /// Positions of up to five age spots on cheeks and forehead (face coordinates).
    pub spots: [[f32; 2]; 5],
    /// Standard-normal draw: how much older (> 0) or younger this person looks than their age,
    /// in units of the apparent-age spread (see `render_face`).
    pub age_offset: f32,
    /// Seed of the person's fine skin texture.
    pub texture_seed: u64,
}

/// Everything about one photo that is independent of the person and of their age.
///
/// Lengths are in units of half the image side (the image spans [-1, 1] on each axis).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nuisance {
    /// In-plane head rotation in radians, uniform in [-0.25, 0.25] (about ±14°).
    pub rotation: f32,
    /// Head translation, each coordinate uniform in [-0.12, 0.12] (±1.9 pixels at 32×32).
    pub shift: [f32; 2],
    /// Head scale, uniform in [0.88, 1.12].
    pub scale: f32,
    /// Direction the light comes from in the image plane (unit vector).
    pub light_dir: [f32; 2],
    /// Share of the shading that is directional, uniform in [0.1, 0.5].
    pub light_strength: f32,
    /// Overall exposure multiplier, uniform in [0.7, 1.25].
    pub brightness: f32,
    /// White-balance multiplier per channel, each uniform in [0.94, 1.06].
    pub tint: [f32; 3],
    /// Background colours at the two ends of the gradient.
    pub background: [[f32; 3]; 2],
    /// Direction of the background gradient (unit vector).
    pub background_dir: [f32; 2],
    /// Colour of the clothes at the bottom of the image.
    pub clothing: [f32; 3],
    /// Whether the person wears a hat (probability 0.2), which hides the top of the hair.
    pub hat: bool,
    /// Colour of the hat.
    pub hat_colour: [f32; 3],
    /// Whether the person wears glasses (probability 0.12); they partly hide the eye cues.
    pub glasses: bool,
    /// Mouth curvature, uniform in [-1, 1] (frown to smile).
    pub smile: f32,
    /// Standard-normal draw: how much older (> 0) or younger the person looks in this photo,
    /// in units of the apparent-age spread (see `render_face`).
    pub age_jitter: f32,
    /// Seed of the pixel noise.
    pub noise_seed: u64,
}

/// Uniform draw in `[lo, hi)` as f32.
fn uniform(rng: &mut SplitMix64, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.uniform() as f32
}

/// Normal draw with the given mean and standard deviation, clamped to `[lo, hi]`.
fn normal_clamped(rng: &mut SplitMix64, mean: f32, sd: f32, lo: f32, hi: f32) -> f32 {
    (mean + sd * rng.normal() as f32).clamp(lo, hi)
}

/// A unit vector in a uniformly random direction (a normalised pair of normal draws, so no
/// trigonometry is needed).
fn direction(rng: &mut SplitMix64) -> [f32; 2] {
    loop {
        let (x, y) = (rng.normal(), rng.normal());
        let n = (x * x + y * y).sqrt();
        if n > 1e-6 {
            return [(x / n) as f32, (y / n) as f32];
        }
    }
}

/// Linear interpolation between two colours.
pub(crate) fn mix3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// A colour with each channel uniform in `[lo, hi)`.
fn colour(rng: &mut SplitMix64, lo: f32, hi: f32) -> [f32; 3] {
    [
        uniform(rng, lo, hi),
        uniform(rng, lo, hi),
        uniform(rng, lo, hi),
    ]
}

/// Light and dark ends of the skin-tone range.
const SKIN_LIGHT: [f32; 3] = [0.95, 0.80, 0.70];
const SKIN_DARK: [f32; 3] = [0.42, 0.28, 0.20];

/// Hair colours from dark to light: black, dark brown, brown, auburn, light brown, blond,
/// platinum blond.
const HAIR: [[f32; 3]; 7] = [
    [0.09, 0.08, 0.07],
    [0.24, 0.16, 0.10],
    [0.42, 0.28, 0.16],
    [0.55, 0.26, 0.12],
    [0.62, 0.48, 0.30],
    [0.80, 0.66, 0.40],
    [0.92, 0.85, 0.66],
];

/// Iris colours: dark brown, brown, hazel, blue, grey-green.
const IRIS: [[f32; 3]; 5] = [
    [0.20, 0.12, 0.08],
    [0.35, 0.22, 0.12],
    [0.45, 0.38, 0.20],
    [0.30, 0.45, 0.65],
    [0.40, 0.48, 0.40],
];

impl Identity {
    /// Draws one person from `rng`; the distribution does not depend on age.
    pub fn sample(rng: &mut SplitMix64) -> Self {
        let tone = rng.uniform() as f32;
        let skin = mix3(SKIN_LIGHT, SKIN_DARK, tone);
        let skin = [
            skin[0] * uniform(rng, 0.96, 1.04),
            skin[1] * uniform(rng, 0.96, 1.04),
            skin[2] * uniform(rng, 0.96, 1.04),
        ];
        // Darker skin comes with darker hair more often, as a loose tendency.
        let hair_pick = if rng.uniform() < f64::from(0.3 + 0.6 * tone) {
            rng.below(2)
        } else {
            rng.below(HAIR.len())
        };
        let hair = mix3(HAIR[hair_pick], colour(rng, 0.1, 0.6), 0.15);
        let iris = IRIS[rng.below(IRIS.len())];
        let face_width = uniform(rng, 0.9, 1.1);
        let face_length = uniform(rng, 0.92, 1.08);
        let eye_spacing = uniform(rng, 0.9, 1.1);
        let brow_weight = uniform(rng, 0.6, 1.4);
        let hair_length = uniform(rng, 0.0, 1.0);
        let grey_onset = normal_clamped(rng, 38.0, 6.0, 24.0, 60.0);
        let grey_span = uniform(rng, 15.0, 40.0);
        let wrinkle_onset = normal_clamped(rng, 32.0, 5.0, 20.0, 48.0);
        let wrinkle_gain = uniform(rng, 0.7, 1.3);
        let dye = if rng.uniform() < 0.3 {
            uniform(rng, 0.6, 1.0)
        } else {
            0.0
        };
        let b = rng.uniform() as f32;
        let balding = b * b;
        let spot_onset = normal_clamped(rng, 58.0, 8.0, 40.0, 85.0);
        let mut spots = [[0.0; 2]; 5];
        for s in &mut spots {
            let side = if rng.below(2) == 0 { -1.0 } else { 1.0 };
            *s = [side * uniform(rng, 0.12, 0.38), uniform(rng, -0.40, 0.30)];
        }
        let age_offset = rng.normal() as f32;
        let texture_seed = rng.next_u64();
        Self {
            skin,
            hair,
            iris,
            face_width,
            face_length,
            eye_spacing,
            brow_weight,
            hair_length,
            grey_onset,
            grey_span,
            wrinkle_onset,
            wrinkle_gain,
            dye,
            balding,
            spot_onset,
            spots,
            age_offset,
            texture_seed,
        }
    }
}

impl Nuisance {
    /// Draws one photo's conditions from `rng`; the distribution does not depend on age.
    pub fn sample(rng: &mut SplitMix64) -> Self {
        let rotation = uniform(rng, -0.25, 0.25);
        let shift = [uniform(rng, -0.12, 0.12), uniform(rng, -0.12, 0.12)];
        let scale = uniform(rng, 0.88, 1.12);
        let light_dir = direction(rng);
        let light_strength = uniform(rng, 0.1, 0.5);
        let brightness = uniform(rng, 0.7, 1.25);
        let tint = [
            uniform(rng, 0.94, 1.06),
            uniform(rng, 0.94, 1.06),
            uniform(rng, 0.94, 1.06),
        ];
        let background = [colour(rng, 0.05, 0.95), colour(rng, 0.05, 0.95)];
        let background_dir = direction(rng);
        let clothing = colour(rng, 0.05, 0.9);
        let hat = rng.uniform() < 0.2;
        let hat_colour = colour(rng, 0.05, 0.95);
        let glasses = rng.uniform() < 0.12;
        let smile = uniform(rng, -1.0, 1.0);
        let age_jitter = rng.normal() as f32;
        let noise_seed = rng.next_u64();
        Self {
            rotation,
            shift,
            scale,
            light_dir,
            light_strength,
            brightness,
            tint,
            background,
            background_dir,
            clothing,
            hat,
            hat_colour,
            glasses,
            smile,
            age_jitter,
            noise_seed,
        }
    }
}

/// `(cos θ, sin θ)` by Taylor series, exact to f32 for `|θ| ≤ 0.5`, from `+ - *` only, so the
/// pose is the same on every platform (libm's `sin_cos` may differ in the last bit).
pub(crate) fn cos_sin(theta: f32) -> (f32, f32) {
    let t = f64::from(theta.clamp(-0.5, 0.5));
    let t2 = t * t;
    // Horner form of the series to t^10 / t^11; the first omitted terms are < 1e-11.
    let mut c = 0.0;
    let mut s = 0.0;
    for k in (1..=5u32).rev() {
        let (a, b) = (f64::from(2 * k - 1), f64::from(2 * k));
        c = 1.0 - t2 / (a * b) * c;
        s = 1.0 - t2 / (b * (b + 1.0)) * s;
    }
    (c as f32, (t * s) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cos_sin_matches_libm() {
        for i in -50..=50 {
            let t = i as f32 / 100.0;
            let (c, s) = cos_sin(t);
            assert!((c - t.cos()).abs() < 2e-7, "{t}: {c} vs {}", t.cos());
            assert!((s - t.sin()).abs() < 2e-7, "{t}: {s} vs {}", t.sin());
        }
    }

    #[test]
    fn samples_stay_in_their_documented_ranges() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..2000 {
            let id = Identity::sample(&mut rng);
            assert!((0.9..=1.1).contains(&id.face_width));
            assert!((24.0..=60.0).contains(&id.grey_onset));
            assert!((0.0..=1.0).contains(&id.balding));
            assert!(
                id.skin
                    .iter()
                    .chain(&id.hair)
                    .all(|c| (0.0..=1.0).contains(c))
            );
            let nz = Nuisance::sample(&mut rng);
            assert!(nz.rotation.abs() <= 0.25 && nz.scale >= 0.88 && nz.scale <= 1.12);
            let l = nz.light_dir[0] * nz.light_dir[0] + nz.light_dir[1] * nz.light_dir[1];
            assert!((l - 1.0).abs() < 1e-5);
        }
    }
}
