//! A built-in synthetic long-tailed regression task, deterministic from a seed: targets are
//! integer "ages" drawn from the AgeDB-DIR training histogram ([`AGEDB_DIR_TRAIN_COUNTS`]:
//! dense 20–80, a thin tail on both sides) and inputs are noisy sinusoids of the target. Test
//! targets are balanced (the same number per age 0–100), so the tail counts as much as the
//! bulk, as in the DIR benchmarks. It is what the small examples train on: cheap, learnable,
//! and as imbalanced as the real data set. It says nothing about images.

use dirkit_core::SplitMix64;

/// Training images per age 0–120 of AgeDB-DIR (Yang et al. 2021; 12,208 images), the same
/// histogram as `datasets/agedb-dir/train_age_counts.csv`.
pub const AGEDB_DIR_TRAIN_COUNTS: [u32; 121] = [
    0, 1, 0, 4, 2, 2, 4, 5, 4, 2, 5, 8, 6, 8, 9, 15, 18, 28, 60, 50, 101, 103, 123, 152, 199, 224,
    215, 244, 287, 253, 325, 256, 318, 278, 302, 353, 287, 310, 322, 261, 326, 260, 296, 265, 221,
    282, 227, 229, 251, 207, 257, 227, 250, 190, 198, 234, 167, 183, 186, 153, 185, 147, 178, 158,
    133, 171, 117, 117, 155, 90, 156, 85, 115, 96, 78, 98, 49, 44, 46, 26, 31, 26, 24, 19, 15, 20,
    13, 10, 7, 7, 7, 7, 5, 5, 3, 3, 2, 1, 2, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0,
];

/// The synthetic task: row-major inputs (`inputs` per sample) and targets.
#[derive(Debug, Clone, PartialEq)]
pub struct SinusoidTask {
    /// Features per sample.
    pub inputs: usize,
    /// Training inputs, `n_train × inputs`.
    pub x_train: Vec<f32>,
    /// Training targets (ages).
    pub y_train: Vec<f64>,
    /// Test inputs, `n_test × inputs`.
    pub x_test: Vec<f32>,
    /// Test targets: `test_per_age` of each age 0–100.
    pub y_test: Vec<f64>,
}

impl SinusoidTask {
    /// Draws `n_train` training ages from the AgeDB-DIR histogram and `test_per_age` test
    /// samples of each age 0–100; input `j` of age `y` is `sin(1.5 (j + 1) π y/100 + φ_j)` plus
    /// Gaussian noise of standard deviation 0.1, with phases `φ_j` drawn from the seed. The
    /// examples use `generate(seed, 6000, 8, 20)`.
    pub fn generate(seed: u64, n_train: usize, inputs: usize, test_per_age: usize) -> Self {
        let total: f64 = AGEDB_DIR_TRAIN_COUNTS.iter().map(|&c| f64::from(c)).sum();
        let mut rng = SplitMix64::new(seed);
        let phases: Vec<f64> = (0..inputs)
            .map(|_| rng.uniform() * std::f64::consts::TAU)
            .collect();
        let embed = |y: f64, rng: &mut SplitMix64, out: &mut Vec<f32>| {
            let t = y / 100.0;
            for (j, p) in phases.iter().enumerate() {
                let freq = 1.5 * (j + 1) as f64;
                out.push(((freq * t * std::f64::consts::PI + p).sin() + 0.1 * rng.normal()) as f32);
            }
        };
        let (mut x_train, mut y_train) = (Vec::new(), Vec::new());
        for _ in 0..n_train {
            // Inverse-CDF draw from the histogram.
            let u = rng.uniform() * total;
            let mut acc = 0.0;
            let age = AGEDB_DIR_TRAIN_COUNTS
                .iter()
                .position(|&c| {
                    acc += f64::from(c);
                    acc > u
                })
                .unwrap_or(AGEDB_DIR_TRAIN_COUNTS.len() - 1);
            y_train.push(age as f64);
            embed(age as f64, &mut rng, &mut x_train);
        }
        let (mut x_test, mut y_test) = (Vec::new(), Vec::new());
        for age in 0..=100 {
            for _ in 0..test_per_age {
                y_test.push(f64::from(age));
                embed(f64::from(age), &mut rng, &mut x_test);
            }
        }
        Self {
            inputs,
            x_train,
            y_train,
            x_test,
            y_test,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_matches_the_dataset_card_csv() {
        let path = format!(
            "{}/../../datasets/agedb-dir/train_age_counts.csv",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("datasets/agedb-dir csv");
        let counts: Vec<u32> = text
            .lines()
            .skip(1)
            .map(|l| {
                l.split_once(',')
                    .expect("age,count")
                    .1
                    .trim()
                    .parse()
                    .expect("count")
            })
            .collect();
        assert_eq!(counts, AGEDB_DIR_TRAIN_COUNTS);
        assert_eq!(counts.iter().sum::<u32>(), 12_208);
    }

    #[test]
    fn generation_is_deterministic_and_follows_the_histogram() {
        let a = SinusoidTask::generate(5, 20_000, 3, 2);
        assert_eq!(a, SinusoidTask::generate(5, 20_000, 3, 2));
        assert_ne!(a.x_train, SinusoidTask::generate(6, 20_000, 3, 2).x_train);
        assert_eq!(a.x_train.len(), 60_000);
        assert_eq!(a.y_test.len(), 202);
        // Ages of an empty histogram bin never occur; the share of ages 20–80 matches.
        let total = 12_208.0;
        let bulk: f64 = AGEDB_DIR_TRAIN_COUNTS[20..=80]
            .iter()
            .map(|&c| f64::from(c))
            .sum::<f64>()
            / total;
        let drawn = a
            .y_train
            .iter()
            .filter(|&&y| (20.0..=80.0).contains(&y))
            .count() as f64
            / 20_000.0;
        let se = (bulk * (1.0 - bulk) / 20_000.0).sqrt();
        assert!(
            (drawn - bulk).abs() < 4.0 * se,
            "bulk share {drawn} vs {bulk}"
        );
        for &y in &a.y_train {
            assert!(
                AGEDB_DIR_TRAIN_COUNTS[y as usize] > 0,
                "age {y} has no training images"
            );
        }
    }
}
