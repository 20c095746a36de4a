//! Seeded data shared by the benchmarks that have a PyTorch twin (`fds.rs` / `fds_torch.py`,
//! `head_step.rs` / `head_step_torch.py`): a counter-based splitmix64 stream per purpose and
//! only IEEE + − × ÷ and sqrt, so numpy and Rust produce bit-identical values.

/// The streams' seed (the Python scripts use the same).
pub const SEED: u64 = 0x05EE_DFD5;

/// Lowest age; ages span 97 one-year bins, 3…99 (the reference's AgeDB-DIR FDS bins).
pub const BIN_START: f64 = 3.0;

/// `u_i = splitmix64(SEED + stream·2³² + (i+1)·golden) >> 11 · 2⁻⁵³` for `i < n`, in [0, 1).
pub fn uniforms(stream: u64, n: usize) -> Vec<f64> {
    let base = SEED.wrapping_add(stream << 32);
    (1..=n as u64)
        .map(|i| {
            let mut z = base.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
        })
        .collect()
}

/// `n` AgeDB-like long-tailed ages in 3…99 from streams 1–4: with probability 0.05 uniform,
/// otherwise `3 + ⌊97·x^1.5⌋` with `x` the mean of three uniforms (peak near 38).
pub fn ages(n: usize) -> Vec<f64> {
    let (pick, u1, u2, u3) = (
        uniforms(1, n),
        uniforms(2, n),
        uniforms(3, n),
        uniforms(4, n),
    );
    (0..n)
        .map(|i| {
            let x = (u1[i] + u2[i] + u3[i]) / 3.0;
            if pick[i] < 0.05 {
                BIN_START + (97.0 * u1[i]).floor()
            } else {
                BIN_START + (97.0 * (x * x.sqrt())).floor()
            }
        })
        .collect()
}
