//! The resamplers of utility-based regression, bump by bump (Branco, Ribeiro & Torgo's UBL):
//! random under-sampling (RU), random over-sampling (RO), Gaussian noise (GN), SMOTER, SMOGN and
//! WERCS.

use dirkit_core::SplitMix64;
use dirkit_core::relevance::{Bump, Relevance, bumps};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TabularError};
use crate::frame::{Column, Frame};
use crate::neighbours::neighbours;

/// A resampling method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Random over-sampling (`RandOverRegress`): copies of rare rows are added, drawn with
    /// replacement; every original row is kept.
    Ro,
    /// Random under-sampling (`RandUnderRegress`): every rare row is kept, normal rows are drawn
    /// without replacement.
    Ru,
    /// Gaussian noise (Branco, Torgo & Ribeiro 2016; `GaussNoiseRegress`): new rare rows are
    /// copies of rare rows plus N(0, (pert·sd)²) noise on every numeric column, target included
    /// (sd of the column within the bump; default pert 0.1); nominal values drawn by their
    /// frequency in the bump. Normal bumps are under-sampled.
    Gn,
    /// SMOTER (Torgo et al. 2013): new rows on the segment between a rare row and one of its k
    /// nearest neighbours in the same bump; the target is the distance-weighted combination of
    /// the two targets. Normal bumps are under-sampled.
    Smoter,
    /// SMOGN (Branco, Torgo & Ribeiro 2017): SMOTER when the chosen neighbour is closer than half
    /// the row's median distance to its bump, Gaussian noise with scale min(that radius, pert)
    /// otherwise (default pert 0.01).
    Smogn,
    /// WERCS (Branco, Ribeiro & Torgo 2019): copies drawn with probability ∝ φ are added and rows
    /// drawn with probability ∝ 1 − φ are removed (fractions `over` and `under` of the table).
    Wercs,
}

impl Method {
    /// The method's name as the command line writes it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ro => "ro",
            Method::Ru => "ru",
            Method::Gn => "gn",
            Method::Smoter => "smoter",
            Method::Smogn => "smogn",
            Method::Wercs => "wercs",
        }
    }

    /// The default noise scale `pert`: 0.1 for GN, 0.01 for SMOGN (UBL's defaults).
    pub fn default_pert(self) -> f64 {
        match self {
            Method::Gn => 0.1,
            _ => 0.01,
        }
    }
}

/// How many rows each bump ends with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Strategy {
    /// Every bump brought to the same size (UBL's "balance").
    Balance,
    /// Bump sizes inverted: the rarest bump becomes the largest (UBL's "extreme").
    Extreme,
    /// Explicit factors: one per bump for GN/SMOTER/SMOGN (1 keeps a bump, 2 doubles it, 0.5
    /// halves it); one per rare bump for RO (copies added = factor × size) and one per normal
    /// bump for RU (rows kept = factor × size); a single factor applies to all of them.
    Factors(Vec<f64>),
}

/// How distances between rows are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Euclidean over range-normalised numeric columns (numeric tables only).
    Euclidean,
    /// Heterogeneous Euclidean-overlap metric (Wilson & Martinez 1997): range-normalised
    /// differences for numeric columns, 0/1 mismatch for nominal ones.
    Heom,
}

/// Settings of [`resample`]. Defaults: threshold 0.5, balance, k 5, pert from the method,
/// distance Euclidean for numeric tables and HEOM otherwise, seed 0, WERCS over/under 0.5,
/// under-sampling without replacement, exact SMOGN radii for bumps up to 8,192 rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResampleConfig {
    /// The method.
    pub method: Method,
    /// Relevance threshold separating rare (φ ≥ threshold) from normal rows, in (0, 1].
    pub threshold: f64,
    /// Target bump sizes (ignored by WERCS).
    pub strategy: Strategy,
    /// Nearest neighbours per rare row (SMOTER, SMOGN).
    pub k: usize,
    /// Noise scale for GN and SMOGN; `None` takes [`Method::default_pert`].
    pub pert: Option<f64>,
    /// Distance; `None` picks Euclidean for numeric tables and HEOM for mixed ones.
    pub distance: Option<Distance>,
    /// Seed of every random draw: the same seed gives the same rows.
    pub seed: u64,
    /// WERCS: rows added, as a fraction of the table.
    pub wercs_over: f64,
    /// WERCS: rows drawn for removal, as a fraction of the table.
    pub wercs_under: f64,
    /// Draw under-sampled rows with replacement.
    pub under_with_replacement: bool,
    /// SMOGN: a bump larger than this takes each row's median distance over this many rows
    /// drawn with the seed instead of over the whole bump (0: always the whole bump).
    pub median_reference_rows: usize,
}

impl ResampleConfig {
    /// The defaults for `method`.
    pub fn new(method: Method) -> Self {
        Self {
            method,
            threshold: 0.5,
            strategy: Strategy::Balance,
            k: 5,
            pert: None,
            distance: None,
            seed: 0,
            wercs_over: 0.5,
            wercs_under: 0.5,
            under_with_replacement: false,
            median_reference_rows: 8192,
        }
    }
}

/// What happened to one bump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BumpReport {
    /// Smallest target in the bump.
    pub lo: f64,
    /// Largest target in the bump.
    pub hi: f64,
    /// Whether the bump is rare.
    pub rare: bool,
    /// Rows before.
    pub before: usize,
    /// Rows after (kept originals, copies and new rows).
    pub after: usize,
    /// The strategy's factor for the bump (1 = untouched).
    pub factor: f64,
    /// What was done instead of the method, when the bump could not take it.
    pub note: Option<String>,
}

/// The outcome of [`resample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResampleReport {
    /// Per bump, in ascending target order (empty for WERCS).
    pub bumps: Vec<BumpReport>,
    /// Rows in the input.
    pub rows_before: usize,
    /// Rows in the output.
    pub rows_after: usize,
    /// Share of rows with φ ≥ threshold in the input.
    pub rare_share_before: f64,
    /// Share of rows with φ ≥ threshold in the output (φ of the input's control points).
    pub rare_share_after: f64,
    /// The distance used (SMOTER, SMOGN).
    pub distance: Option<Distance>,
    /// Warnings for the user (k reduced, a one-row bump replicated…).
    pub notes: Vec<String>,
}

/// Resamples `frame` by relevance of its `target` column: original rows that are kept come
/// first, in input order, then copies and new rows bump by bump. `relevance` is φ of the target
/// (usually [`Relevance::from_targets`] of the same column).
pub fn resample(
    frame: &Frame,
    target: usize,
    relevance: &Relevance,
    config: &ResampleConfig,
) -> Result<(Frame, ResampleReport)> {
    let n = frame.n_rows();
    let y = frame.columns[target].numbers().ok_or_else(|| {
        TabularError::Invalid(format!(
            "the target column '{}' is nominal: resampling for regression needs a numeric target",
            frame.names[target]
        ))
    })?;
    validate(config, n)?;
    if matches!(config.method, Method::Smoter | Method::Smogn) && frame.columns.len() < 2 {
        return Err(TabularError::Invalid(format!(
            "{} interpolates between neighbours found on the other columns, and the table \
             has only its target '{}': add feature columns or use ro, gn or wercs",
            if config.method == Method::Smoter {
                "SMOTER"
            } else {
                "SMOGN"
            },
            frame.names[target]
        )));
    }
    if y.iter().all(|&v| v == y[0]) {
        return Err(TabularError::Invalid(format!(
            "the target column '{}' is constant (every row is {}): there is nothing to rebalance",
            frame.names[target], y[0]
        )));
    }
    let phi = relevance.phi_all(y);
    let n_rare = phi.iter().filter(|&&p| p >= config.threshold).count();
    let share = |c: usize, total: usize| c as f64 / total.max(1) as f64;
    if n_rare == 0 {
        return Err(TabularError::Invalid(format!(
            "no row has relevance ≥ {} (φ's control points: {}): nothing is rare; lower \
             --threshold, choose other --extremes or give control points",
            config.threshold,
            describe_points(relevance)
        )));
    }
    if n_rare == n {
        return Err(TabularError::Invalid(format!(
            "every row has relevance ≥ {}: nothing is normal to balance against; raise \
             --threshold or give control points",
            config.threshold
        )));
    }
    let mut out = Plan::default();
    let mut report = ResampleReport {
        bumps: Vec::new(),
        rows_before: n,
        rows_after: 0,
        rare_share_before: share(n_rare, n),
        rare_share_after: 0.0,
        distance: None,
        notes: Vec::new(),
    };
    let cells = |rows: f64| rows * frame.columns.len() as f64;
    let limit = (4.0 * cells(n as f64)).max(MAX_OUTPUT_CELLS);
    let too_big = |rows: f64| {
        TabularError::Invalid(format!(
            "the resampled table would have about {rows:.3e} rows × {} columns, more than the \
             {limit:.3e} cells this resampler holds in memory (2^28, or 4× the input): use \
             smaller --strategy factors or --over",
            frame.columns.len()
        ))
    };
    if config.method == Method::Wercs {
        let rows = n as f64 * (1.0 + config.wercs_over);
        if cells(rows) > limit {
            return Err(too_big(rows));
        }
        wercs(&phi, config, &mut out)?;
    } else {
        let bs = bumps(y, &phi, config.threshold)?;
        let factors = factors(config, &bs, n)?;
        let rows: f64 = bs
            .iter()
            .zip(&factors)
            .map(|(b, f)| b.rows.len() as f64 * f.max(1.0))
            .sum();
        if cells(rows) > limit {
            return Err(too_big(rows));
        }
        let ctx = Context::new(frame, target, config)?;
        report.distance =
            matches!(config.method, Method::Smoter | Method::Smogn).then_some(ctx.distance);
        for (b_index, (bump, &factor)) in bs.iter().zip(&factors).enumerate() {
            let before_rows = out.rows();
            let note = ctx.bump(b_index, bump, factor, &mut out)?;
            if let Some(note) = &note {
                report.notes.push(format!(
                    "bump {} ({} rows, targets {} to {}): {note}",
                    b_index + 1,
                    bump.rows.len(),
                    bump.lo,
                    bump.hi
                ));
            }
            report.bumps.push(BumpReport {
                lo: bump.lo,
                hi: bump.hi,
                rare: bump.rare,
                before: bump.rows.len(),
                after: out.rows() - before_rows,
                factor,
                note,
            });
        }
    }
    if let Some(i) = out.new_rows.iter().position(|v| !v.is_finite()) {
        let c = i % frame.columns.len();
        return Err(TabularError::Invalid(format!(
            "a synthetic value of column '{}' leaves the f64 range (its values reach {:e}): \
             rescale the column before resampling",
            frame.names[c],
            frame.columns[c]
                .numbers()
                .map_or(0.0, |v| v.iter().fold(0.0f64, |m, x| m.max(x.abs())))
        )));
    }
    let result = out.assemble(frame);
    let y_out = result.columns[target].numbers().unwrap_or_default();
    let rare_after = relevance
        .phi_all(y_out)
        .iter()
        .filter(|&&p| p >= config.threshold)
        .count();
    report.rows_after = result.n_rows();
    report.rare_share_after = share(rare_after, report.rows_after);
    Ok((result, report))
}

/// The most cells (rows × columns) a resampled table may have when the input is smaller: 2^28
/// (2 GiB of f64); larger inputs may grow to 4× their size.
pub const MAX_OUTPUT_CELLS: f64 = 268_435_456.0;

/// `v` as `{}` prints it, or in scientific notation when that would take many digits.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e7).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

fn describe_points(r: &Relevance) -> String {
    r.control_points()
        .iter()
        .map(|p| format!("{}:{}", short(p.value), p.relevance))
        .collect::<Vec<_>>()
        .join(", ")
}

fn validate(c: &ResampleConfig, n: usize) -> Result<()> {
    let bad = |m: String| Err(TabularError::Invalid(m));
    if !(c.threshold > 0.0 && c.threshold <= 1.0) {
        return bad(format!(
            "--threshold {}: expected a number in (0, 1]",
            c.threshold
        ));
    }
    if c.k == 0 {
        return bad("--k 0: expected at least one neighbour".into());
    }
    if let Some(p) = c.pert
        && !(p.is_finite() && p > 0.0)
    {
        return bad(format!("--pert {p}: expected a positive number"));
    }
    for (name, v) in [("over", c.wercs_over), ("under", c.wercs_under)] {
        if !(v.is_finite() && v >= 0.0) {
            return bad(format!("WERCS {name} fraction {v}: expected a number ≥ 0"));
        }
    }
    if let Strategy::Factors(f) = &c.strategy {
        if f.is_empty() {
            return bad("--strategy: no factor given".into());
        }
        if let Some(v) = f.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return bad(format!("--strategy factor {v}: expected a number ≥ 0"));
        }
    }
    if n < 2 {
        return bad(format!(
            "the table has {n} row: resampling needs at least two"
        ));
    }
    Ok(())
}

fn round_to(v: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (v * s).round() / s
}

/// Per-bump factors, with UBL's arithmetic for each method.
fn factors(c: &ResampleConfig, bs: &[Bump], n: usize) -> Result<Vec<f64>> {
    let size = |b: &Bump| b.rows.len() as f64;
    let nb = bs.len();
    let rare: Vec<usize> = (0..nb).filter(|&i| bs[i].rare).collect();
    let normal: Vec<usize> = (0..nb).filter(|&i| !bs[i].rare).collect();
    let mut f = vec![1.0; nb];
    let spread = |given: &[f64], targets: &[usize], what: &str| -> Result<Vec<f64>> {
        match given.len() {
            1 => Ok(vec![given[0]; targets.len()]),
            l if l == targets.len() => Ok(given.to_vec()),
            l => Err(TabularError::Invalid(format!(
                "--strategy has {l} factors but there are {} {what} bumps (give one, or one each)",
                targets.len()
            ))),
        }
    };
    match c.method {
        Method::Ro => {
            let sum_normal: f64 = normal.iter().map(|&i| size(&bs[i])).sum();
            let given = match &c.strategy {
                Strategy::Balance => rare
                    .iter()
                    .map(|&i| round_to(sum_normal / rare.len() as f64 / size(&bs[i]), 5))
                    .collect(),
                Strategy::Extreme => {
                    let mean = sum_normal / normal.len() as f64;
                    rare.iter()
                        .map(|&i| round_to(mean * mean / size(&bs[i]) / size(&bs[i]), 5))
                        .collect()
                }
                Strategy::Factors(v) => spread(v, &rare, "rare")?,
            };
            for (&i, g) in rare.iter().zip(given) {
                f[i] = g;
            }
        }
        Method::Ru => {
            let sum_rare: f64 = rare.iter().map(|&i| size(&bs[i])).sum();
            let given: Vec<f64> = match &c.strategy {
                Strategy::Balance => normal
                    .iter()
                    .map(|&i| round_to(sum_rare / normal.len() as f64 / size(&bs[i]), 5))
                    .collect(),
                Strategy::Extreme => {
                    let mean = sum_rare / rare.len() as f64;
                    normal
                        .iter()
                        .map(|&i| round_to(mean * mean / size(&bs[i]) / size(&bs[i]), 5))
                        .collect()
                }
                Strategy::Factors(v) => spread(v, &normal, "normal")?,
            };
            for (&i, g) in normal.iter().zip(given) {
                if g > 1.0 {
                    return Err(TabularError::Invalid(format!(
                        "under-sampling the normal bump of targets {} to {} ({} rows) would need \
                         factor {g} > 1: the rare rows outnumber it; use an over-sampling method",
                        bs[i].lo,
                        bs[i].hi,
                        bs[i].rows.len()
                    )));
                }
                f[i] = g;
            }
        }
        Method::Gn | Method::Smoter | Method::Smogn => {
            let b = (n as f64 / nb as f64).round();
            f = match &c.strategy {
                Strategy::Balance => bs.iter().map(|x| b / size(x)).collect(),
                Strategy::Extreme => {
                    let digits = if c.method == Method::Gn { 4 } else { 1 };
                    let inv: f64 = bs.iter().map(|x| b * b / size(x)).sum();
                    let rescale = nb as f64 * b / inv;
                    bs.iter()
                        .map(|x| round_to(round_to(b * b / size(x) * rescale, 2) / size(x), digits))
                        .collect()
                }
                Strategy::Factors(v) if v.len() == nb => v.clone(),
                Strategy::Factors(v) => {
                    return Err(TabularError::Invalid(format!(
                        "--strategy has {} factors but there are {nb} bumps (one per bump, in \
                         ascending target order)",
                        v.len()
                    )));
                }
            };
        }
        Method::Wercs => {}
    }
    Ok(f)
}

/// Rows of the output: original rows kept, copies, and new rows (row-major values, nominal
/// columns as codes).
#[derive(Default)]
struct Plan {
    kept: Vec<usize>,
    copies: Vec<usize>,
    new_rows: Vec<f64>,
    n_new: usize,
}

impl Plan {
    fn rows(&self) -> usize {
        self.kept.len() + self.copies.len() + self.n_new
    }

    fn assemble(mut self, frame: &Frame) -> Frame {
        self.kept.sort_unstable();
        let nc = frame.columns.len();
        let columns = frame
            .columns
            .iter()
            .enumerate()
            .map(|(c, col)| {
                let originals = self.kept.iter().chain(&self.copies);
                let fresh = (0..self.n_new).map(|r| self.new_rows[r * nc + c]);
                match col {
                    Column::Numeric(v) => {
                        Column::Numeric(originals.map(|&i| v[i]).chain(fresh).collect())
                    }
                    Column::Nominal { levels, codes } => Column::Nominal {
                        levels: levels.clone(),
                        codes: originals
                            .map(|&i| codes[i])
                            .chain(fresh.map(|v| v as u32))
                            .collect(),
                    },
                }
            })
            .collect();
        Frame {
            names: frame.names.clone(),
            columns,
        }
    }
}

/// A seeded stream per (seed, purpose, index), independent of thread scheduling.
fn stream(seed: u64, purpose: u64, index: u64) -> SplitMix64 {
    let mut g = SplitMix64::new(seed ^ purpose.wrapping_mul(0xA076_1D64_78BD_642F));
    let a = g.next_u64();
    SplitMix64::new(a ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB))
}

/// `count` distinct draws from `0..n` (partial Fisher–Yates), or with replacement.
fn draw(rng: &mut SplitMix64, n: usize, count: usize, replace: bool) -> Vec<usize> {
    if replace {
        return (0..count).map(|_| rng.below(n)).collect();
    }
    let mut idx: Vec<usize> = (0..n).collect();
    let count = count.min(n);
    for i in 0..count {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(count);
    idx
}

/// Draws with replacement, probability proportional to `w`.
fn weighted_draws(rng: &mut SplitMix64, w: &[f64], count: usize) -> Vec<usize> {
    let mut cum = Vec::with_capacity(w.len());
    let mut acc = 0.0;
    for &v in w {
        acc += v.max(0.0);
        cum.push(acc);
    }
    (0..count)
        .map(|_| {
            let u = rng.uniform() * acc;
            cum.partition_point(|&c| c <= u).min(w.len() - 1)
        })
        .collect()
}

fn wercs(phi: &[f64], c: &ResampleConfig, out: &mut Plan) -> Result<()> {
    let n = phi.len();
    if phi.iter().all(|&p| p >= 1.0) || phi.iter().all(|&p| p <= 0.0) {
        return Err(TabularError::Invalid(
            "WERCS needs rows with relevance above 0 and below 1".into(),
        ));
    }
    let mut rng = stream(c.seed, 1, 0);
    let over = weighted_draws(&mut rng, phi, (c.wercs_over * n as f64) as usize);
    let inverse: Vec<f64> = phi.iter().map(|p| 1.0 - p).collect();
    let under = weighted_draws(&mut rng, &inverse, (c.wercs_under * n as f64) as usize);
    let mut removed = vec![false; n];
    for i in under {
        removed[i] = true;
    }
    out.kept = (0..n).filter(|&i| !removed[i]).collect();
    out.copies = over;
    Ok(())
}

/// The table seen by the generators: numeric values and nominal codes as f64, row-major.
struct Context<'a> {
    frame: &'a Frame,
    target: usize,
    config: &'a ResampleConfig,
    distance: Distance,
    nominal: Vec<bool>,
    pert: f64,
}

impl<'a> Context<'a> {
    fn new(frame: &'a Frame, target: usize, config: &'a ResampleConfig) -> Result<Self> {
        let nominal: Vec<bool> = frame
            .columns
            .iter()
            .map(|c| matches!(c, Column::Nominal { .. }))
            .collect();
        let any_nominal = nominal.iter().enumerate().any(|(i, &b)| b && i != target);
        let distance = match config.distance {
            Some(Distance::Euclidean) if any_nominal => {
                let names: Vec<&str> = nominal
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b)
                    .map(|(i, _)| frame.names[i].as_str())
                    .collect();
                return Err(TabularError::Invalid(format!(
                    "--distance euclidean needs numeric columns, but {} nominal; use --distance heom",
                    if names.len() == 1 {
                        format!("'{}' is", names[0])
                    } else {
                        format!("{} are", names.join(", "))
                    }
                )));
            }
            Some(d) => d,
            None if any_nominal => Distance::Heom,
            None => Distance::Euclidean,
        };
        Ok(Self {
            frame,
            target,
            config,
            distance,
            nominal,
            pert: config.pert.unwrap_or(config.method.default_pert()),
        })
    }

    fn value(&self, c: usize, row: usize) -> f64 {
        match &self.frame.columns[c] {
            Column::Numeric(v) => v[row],
            Column::Nominal { codes, .. } => codes[row] as f64,
        }
    }

    /// Resamples one bump into `out`; returns a note when the method could not be applied.
    fn bump(
        &self,
        b_index: usize,
        bump: &Bump,
        factor: f64,
        out: &mut Plan,
    ) -> Result<Option<String>> {
        let m = bump.rows.len();
        let mut rng = stream(self.config.seed, 2, b_index as u64);
        let method = self.config.method;
        match method {
            Method::Ro => {
                out.kept.extend(&bump.rows);
                if bump.rare {
                    let copies = (factor * m as f64) as usize;
                    out.copies.extend(
                        draw(&mut rng, m, copies, true)
                            .into_iter()
                            .map(|i| bump.rows[i]),
                    );
                }
                return Ok(None);
            }
            Method::Ru => {
                if bump.rare || factor == 1.0 {
                    out.kept.extend(&bump.rows);
                } else {
                    let keep = (factor * m as f64) as usize;
                    let sel = draw(&mut rng, m, keep, self.config.under_with_replacement);
                    self.keep_selection(bump, sel, out);
                }
                return Ok(None);
            }
            _ => {}
        }
        if factor == 1.0 {
            out.kept.extend(&bump.rows);
            return Ok(None);
        }
        if factor < 1.0 {
            let keep = (factor * m as f64) as usize;
            let sel = draw(&mut rng, m, keep, self.config.under_with_replacement);
            self.keep_selection(bump, sel, out);
            return Ok(None);
        }
        // Over-sampling: the bump's rows stay and new rows are added.
        out.kept.extend(&bump.rows);
        let per_row = (factor - 1.0) as usize;
        let extra = (m as f64 * (factor - 1.0 - per_row as f64)) as usize;
        let mut seeds: Vec<usize> = Vec::with_capacity(per_row * m + extra);
        for i in 0..m {
            seeds.extend(std::iter::repeat_n(i, per_row));
        }
        seeds.extend(draw(&mut rng, m, extra, false));
        if seeds.is_empty() {
            return Ok(None);
        }
        let needs_neighbours = matches!(method, Method::Smoter | Method::Smogn);
        if needs_neighbours && m == 1 {
            out.copies
                .extend(std::iter::repeat_n(bump.rows[0], seeds.len()));
            return Ok(Some(format!(
                "one row, no neighbour to interpolate with: replicated it {} times instead",
                seeds.len()
            )));
        }
        let nc = self.frame.columns.len();
        // Bump values, row-major.
        let vals: Vec<f64> = bump
            .rows
            .iter()
            .flat_map(|&r| (0..nc).map(move |c| (r, c)))
            .map(|(r, c)| self.value(c, r))
            .collect();
        let stats = ColumnStats::new(&vals, m, nc, &self.nominal);
        let mut note = None;
        let nb = if needs_neighbours {
            let k = self.config.k.min(m - 1);
            if k < self.config.k {
                note = Some(format!(
                    "fewer rows than k + 1 = {}: used k = {k}",
                    self.config.k + 1
                ));
            }
            let (emb, d) = self.embed(&vals, m, &stats);
            let refs: Option<Vec<usize>> = (method == Method::Smogn).then(|| {
                let cap = self.config.median_reference_rows;
                if cap == 0 || m <= cap {
                    (0..m).collect()
                } else {
                    let mut r = draw(
                        &mut stream(self.config.seed, 3, b_index as u64),
                        m,
                        cap,
                        false,
                    );
                    r.sort_unstable();
                    r
                }
            });
            Some(neighbours(&emb, m, d, k, refs.as_deref()))
        } else {
            None
        };
        let target = self.target;
        let pert = self.pert;
        let seed = self.config.seed;
        let new_rows: Vec<Vec<f64>> = seeds
            .par_iter()
            .enumerate()
            .map(|(j, &i)| {
                let mut g = stream(seed, 4 + b_index as u64, j as u64);
                let row_i = &vals[i * nc..(i + 1) * nc];
                match (&nb, method) {
                    (Some(nb), Method::Smoter | Method::Smogn) => {
                        let pick = g.below(nb.k);
                        let jn = nb.index[i * nb.k + pick] as usize;
                        let safe = method == Method::Smoter
                            || nb.distance[i * nb.k + pick] < nb.half_median[i];
                        if safe {
                            interpolate(
                                &mut g,
                                row_i,
                                &vals[jn * nc..(jn + 1) * nc],
                                target,
                                &stats,
                            )
                        } else {
                            let scale = nb.half_median[i].min(pert);
                            noisy(&mut g, row_i, scale, &stats)
                        }
                    }
                    _ => noisy(&mut g, row_i, pert, &stats),
                }
            })
            .collect();
        out.n_new += new_rows.len();
        for r in new_rows {
            out.new_rows.extend(r);
        }
        Ok(note)
    }

    fn keep_selection(&self, bump: &Bump, sel: Vec<usize>, out: &mut Plan) {
        if self.config.under_with_replacement {
            // Repeated draws are copies; the first of each is the kept original.
            let mut seen = std::collections::HashSet::new();
            for i in sel {
                if seen.insert(i) {
                    out.kept.push(bump.rows[i]);
                } else {
                    out.copies.push(bump.rows[i]);
                }
            }
        } else {
            out.kept.extend(sel.into_iter().map(|i| bump.rows[i]));
        }
    }

    /// Rows embedded so that Euclidean distance is the configured distance: numeric features
    /// divided by their range in the bump, nominal features one-hot scaled by 1/√2 (so a
    /// mismatch adds 1 to the squared distance, HEOM's overlap term).
    fn embed(&self, vals: &[f64], m: usize, stats: &ColumnStats) -> (Vec<f64>, usize) {
        let nc = self.frame.columns.len();
        let mut layout: Vec<(usize, usize)> = Vec::new(); // (column, width)
        for c in 0..nc {
            if c == self.target {
                continue;
            }
            if self.nominal[c] {
                layout.push((c, stats.levels[c].len()));
            } else {
                layout.push((c, 1));
            }
        }
        let d: usize = layout.iter().map(|l| l.1).sum();
        let mut e = vec![0.0f64; m * d];
        let h = std::f64::consts::FRAC_1_SQRT_2;
        for r in 0..m {
            let mut off = r * d;
            for &(c, w) in &layout {
                let v = vals[r * nc + c];
                if self.nominal[c] {
                    let local = stats.levels[c]
                        .iter()
                        .position(|&l| l == v as u32)
                        .unwrap_or(0);
                    e[off + local] = h;
                } else {
                    e[off] = v / stats.range[c];
                }
                off += w;
            }
        }
        (e, d)
    }
}

/// Per-column facts of one bump: range and sd of numeric columns, level frequencies of nominal
/// ones.
struct ColumnStats {
    range: Vec<f64>,
    sd: Vec<f64>,
    nominal: Vec<bool>,
    /// Codes present in the bump, per nominal column.
    levels: Vec<Vec<u32>>,
    /// Cumulative counts matching `levels`.
    cumulative: Vec<Vec<f64>>,
}

impl ColumnStats {
    fn new(vals: &[f64], m: usize, nc: usize, nominal: &[bool]) -> Self {
        let mut s = Self {
            range: vec![1.0; nc],
            sd: vec![0.0; nc],
            nominal: nominal.to_vec(),
            levels: vec![Vec::new(); nc],
            cumulative: vec![Vec::new(); nc],
        };
        for c in 0..nc {
            let col = (0..m).map(|r| vals[r * nc + c]);
            if nominal[c] {
                let mut counts: std::collections::BTreeMap<u32, f64> = Default::default();
                for v in col {
                    *counts.entry(v as u32).or_default() += 1.0;
                }
                let mut acc = 0.0;
                for (l, n) in counts {
                    acc += n;
                    s.levels[c].push(l);
                    s.cumulative[c].push(acc);
                }
            } else {
                let (lo, hi) = col
                    .clone()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                        (l.min(v), h.max(v))
                    });
                let r = hi - lo;
                s.range[c] = if r > 0.0 { r } else { 1.0 };
                if m > 1 {
                    // Deviations scaled by the largest one, so values of 1e155 and more do not
                    // overflow the sum of squares (the sd is then exact up to rounding).
                    let mean = col.clone().map(|v| v / m as f64).sum::<f64>();
                    let big = col.clone().fold(0.0f64, |b, v| b.max((v - mean).abs()));
                    if big > 0.0 && big.is_finite() {
                        let ss: f64 = col.map(|v| ((v - mean) / big).powi(2)).sum();
                        s.sd[c] = big * (ss / (m - 1) as f64).sqrt();
                    }
                }
            }
        }
        s
    }

    fn draw_level(&self, g: &mut SplitMix64, c: usize) -> f64 {
        let cum = &self.cumulative[c];
        let total = *cum.last().unwrap_or(&1.0);
        let u = g.uniform() * total;
        let k = cum.partition_point(|&x| x <= u).min(cum.len() - 1);
        self.levels[c][k] as f64
    }
}

/// A SMOTER row between `a` (the seed row) and `b` (its neighbour): one uniform position on
/// the segment for every numeric feature, each nominal value from one of the two rows, the
/// target weighted by the new row's distances to the two: (d_b·y_a + d_a·y_b)/(d_a + d_b).
fn interpolate(
    g: &mut SplitMix64,
    a: &[f64],
    b: &[f64],
    target: usize,
    s: &ColumnStats,
) -> Vec<f64> {
    let alpha = g.uniform();
    let mut row = vec![0.0; a.len()];
    let (mut da, mut db) = (0.0, 0.0);
    for c in 0..a.len() {
        if c == target {
            continue;
        }
        if s.nominal[c] {
            row[c] = if g.below(2) == 0 { b[c] } else { a[c] };
            da += f64::from(u8::from(row[c] != a[c]));
            db += f64::from(u8::from(row[c] != b[c]));
        } else {
            row[c] = a[c] + alpha * (b[c] - a[c]);
            da += (a[c] - row[c]).abs() / s.range[c];
            db += (b[c] - row[c]).abs() / s.range[c];
        }
    }
    row[target] = if da == db {
        0.5 * (a[target] + b[target])
    } else {
        (db * a[target] + da * b[target]) / (da + db)
    };
    row
}

/// A Gaussian-noise row: every numeric column (target included) plus N(0, (scale·sd)²), sd of
/// the column in the bump; nominal values drawn by their frequency in the bump.
fn noisy(g: &mut SplitMix64, a: &[f64], scale: f64, s: &ColumnStats) -> Vec<f64> {
    (0..a.len())
        .map(|c| {
            if s.nominal[c] {
                s.draw_level(g, c)
            } else {
                a[c] + g.normal() * s.sd[c] * scale
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_noise_has_the_configured_scale() {
        // Bump values of two numeric columns with known sample sd, one nominal column.
        let m = 50;
        let nc = 3;
        let mut vals = Vec::new();
        for r in 0..m {
            vals.extend([r as f64, (r % 2) as f64, 3.0 * r as f64]);
        }
        let nominal = [false, true, false];
        let s = ColumnStats::new(&vals, m, nc, &nominal);
        let sd0 = ((0..m).map(|r| (r as f64 - 24.5).powi(2)).sum::<f64>() / 49.0).sqrt();
        assert!((s.sd[0] - sd0).abs() < 1e-12 && (s.sd[2] - 3.0 * sd0).abs() < 1e-9);
        let seed = &vals[10 * nc..11 * nc];
        let mut g = SplitMix64::new(1);
        let draws: Vec<Vec<f64>> = (0..20_000).map(|_| noisy(&mut g, seed, 0.1, &s)).collect();
        for (c, want) in [(0usize, 0.1 * sd0), (2, 0.3 * sd0)] {
            let mean = draws.iter().map(|d| d[c]).sum::<f64>() / draws.len() as f64;
            let sd = (draws.iter().map(|d| (d[c] - mean).powi(2)).sum::<f64>()
                / (draws.len() - 1) as f64)
                .sqrt();
            assert!(
                (mean - seed[c]).abs() < 0.05 * want,
                "column {c} mean {mean}"
            );
            assert!(
                (sd / want - 1.0).abs() < 0.03,
                "column {c}: sd {sd} vs {want}"
            );
        }
        // Nominal values follow the bump's frequencies (25 / 25).
        let ones = draws.iter().filter(|d| d[1] == 1.0).count() as f64 / draws.len() as f64;
        assert!((ones - 0.5).abs() < 0.02, "{ones}");
    }
}
