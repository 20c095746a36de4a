//! The `dirkit` facade on the shipped AgeDB-DIR training histogram.

use dirkit::{Binning, Kernel, LabelDensity, LdsConfig, Normalisation, ShotThresholds};

fn agedb_counts() -> Vec<u64> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/datasets/agedb-dir/train_age_counts.csv"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("age,count"));
    lines
        .enumerate()
        .map(|(i, l)| {
            let (age, n) = l.split_once(',').unwrap();
            assert_eq!(
                age.parse::<usize>().unwrap(),
                i,
                "one row per age, in order"
            );
            n.parse().unwrap()
        })
        .collect()
}

#[test]
fn agedb_histogram_has_the_benchmark_shape() {
    let counts = agedb_counts();
    assert_eq!(counts.len(), 121);
    assert_eq!(counts.iter().sum::<u64>(), 12208);
    assert_eq!(counts.iter().max(), Some(&353));
    let shots = ShotThresholds::default().shots(&counts);
    let many = shots.iter().filter(|s| **s == dirkit::Shot::Many).count();
    assert_eq!(many, 51);
}

#[test]
fn default_lds_on_agedb_is_the_sqrt_inverse_convolved_with_the_reference_window() {
    let counts = agedb_counts();
    let bins = Binning::new(0.0, 1.0, 121).unwrap();
    let fit = LabelDensity::from_counts(bins, counts.clone(), &LdsConfig::default()).unwrap();
    // Reference window ks 5, σ 2 (kernels.json), applied by hand with zero padding.
    let w = [
        0.8582852377730948,
        0.9458276490853569,
        1.0,
        0.9458276490853569,
        0.8582852377730948,
    ];
    assert_eq!(
        Kernel::default().window(Normalisation::Peak).unwrap().len(),
        5
    );
    for b in 0..121 {
        let mut d = 0.0;
        for (k, wk) in w.iter().enumerate() {
            let j = b as isize + k as isize - 2;
            if (0..121).contains(&j) {
                d += wk * (counts[j as usize] as f64).sqrt();
            }
        }
        assert!(
            (fit.effective_density[b] - d).abs() <= 1e-12 * d.max(1.0),
            "bin {b}"
        );
    }
    // Weights are inverse to the effective density and average 1 over the 12,208 samples.
    let total: f64 = (0..121)
        .filter_map(|b| fit.bin_weight[b].map(|w| w * counts[b] as f64))
        .sum();
    assert!((total / 12208.0 - 1.0).abs() < 1e-12);
    let (lo, hi) = fit.weight_range();
    assert!(hi / lo > 20.0, "the tail is weighted up: {lo}..{hi}");
}
