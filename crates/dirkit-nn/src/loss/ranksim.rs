//! RankSim (Gong et al., ICML 2022): a regulariser that asks the ranking of a sample's
//! neighbours in feature space (cosine similarity) to follow the ranking in label space.
//!
//! The batch is reduced to one sample per unique label; for each anchor `i` the loss is
//! `mean_j (r_f[i, j] - r_y[i, j])²` between the normalised descending ranks `(rank + 1)/n` of the
//! feature similarities `S[i, ·]` and of `-|y_i - y_·|`; the regulariser is `γ Σ_i loss_i`. The
//! ranking is piecewise constant, so its gradient comes from the blackbox-solver rule of
//! Vlastelica et al. (ICLR 2020), implemented as the custom op [`BlackboxRank`].

use candle_core::{DType, Shape, Tensor};
use dirkit_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::NnError;
use crate::error::invalid;
use dirkit_compute::host_op::{Differentiable, HostGrad1, HostOp1, apply_host};
use dirkit_compute::ops::matmul;

/// Added to λ in the blackbox gradient's denominator, as in the official code.
pub const BLACKBOX_EPS: f64 = 1e-8;

/// Lower bound of a feature norm when normalising rows (`F.normalize`'s default eps).
pub const NORMALIZE_EPS: f64 = 1e-12;

/// How equal values are ordered when ranking in descending order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieRule {
    /// Among equal values the higher index ranks first: the official code's
    /// `argsort(flip(argsort(s)))` with a stable sort. The default (methods.md §6).
    #[default]
    HigherIndexFirst,
    /// Among equal values the lower index ranks first: a stable descending sort.
    LowerIndexFirst,
}

/// Hyper-parameters of RankSim; defaults from the paper and the official code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankSimConfig {
    /// Interpolation strength λ of the blackbox gradient (> 0); default 2.
    pub lambda: f64,
    /// Weight γ of the regulariser in the total loss (>= 0); default 100.
    pub gamma: f64,
    /// Order of equal values in every ranking; default [`TieRule::HigherIndexFirst`].
    pub tie_rule: TieRule,
    /// Seed of the random one-sample-per-label selection; default 0.
    pub seed: u64,
}

impl Default for RankSimConfig {
    fn default() -> Self {
        Self {
            lambda: 2.0,
            gamma: 100.0,
            tie_rule: TieRule::HigherIndexFirst,
            seed: 0,
        }
    }
}

impl RankSimConfig {
    /// Checks that λ is finite and > 0 and γ is finite and >= 0.
    pub fn check(&self) -> candle_core::Result<()> {
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return invalid("lambda", self.lambda, "a finite value > 0");
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return invalid("gamma", self.gamma, "a finite value >= 0");
        }
        Ok(())
    }
}

/// Which sample represents each unique label of a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// One sample per label drawn uniformly from the seeded generator, which advances on every
    /// call; kept in ascending label order. As in the official code, a batch whose labels are
    /// all distinct is kept whole and in batch order. The default.
    #[default]
    Random,
    /// The first occurrence of each label, in ascending label order (the reference vectors'
    /// `primary` selection).
    FirstOccurrence,
    /// These batch indices, in this order (distinct and in range; the caller picks one per label).
    Indices(Vec<usize>),
}

/// The RankSim regulariser with its selection state: build it once per run with
/// [`RankSim::new`], then call [`RankSim::loss`] on every batch.
#[derive(Clone, Debug)]
pub struct RankSim {
    config: RankSimConfig,
    selection: Selection,
    rng: SplitMix64,
}

impl RankSim {
    /// Validates `config` and builds the regulariser with [`Selection::Random`] seeded by
    /// `config.seed`.
    pub fn new(config: RankSimConfig) -> candle_core::Result<Self> {
        config.check()?;
        let rng = SplitMix64::new(config.seed);
        Ok(Self {
            config,
            selection: Selection::Random,
            rng,
        })
    }

    /// Replaces the selection mode (the random generator keeps its state).
    pub fn with_selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// Position of the random stream of [`Selection::Random`] (to checkpoint a run).
    pub fn rng_state(&self) -> u64 {
        self.rng.state()
    }

    /// Restores a position saved by [`RankSim::rng_state`].
    pub fn set_rng_state(&mut self, state: u64) {
        self.rng = SplitMix64::new(state);
    }

    /// The validated configuration.
    pub fn config(&self) -> &RankSimConfig {
        &self.config
    }

    /// The current selection mode.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Batch indices kept for `labels` under the current selection mode; [`Selection::Random`]
    /// advances the generator. Labels must be finite.
    pub fn select(&mut self, labels: &[f64]) -> candle_core::Result<Vec<usize>> {
        if let Some(bad) = labels.iter().find(|v| !v.is_finite()) {
            return invalid("label", bad, "finite labels");
        }
        if let Selection::Indices(indices) = &self.selection {
            check_indices(indices, labels.len())?;
            return Ok(indices.clone());
        }
        let groups = label_groups(labels);
        Ok(match self.selection {
            Selection::Random if groups.len() == labels.len() => (0..labels.len()).collect(),
            Selection::Random => groups.iter().map(|g| g[self.rng.below(g.len())]).collect(),
            _ => groups.iter().map(|g| g[0]).collect(),
        })
    }

    /// The regulariser `γ Σ_anchors mean_j (r_f - r_y)²` for `features` of shape `(B, D)`
    /// (further dimensions are flattened) and `labels` of shape `(B)` or `(B, 1)`, as a scalar of
    /// the features' dtype and device. Gradients reach the kept rows of `features`.
    pub fn loss(&mut self, features: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
        let labels = labels_to_host(labels)?;
        let indices = self.select(&labels)?;
        ranksim_regulariser(features, &labels, &indices, &self.config)
    }
}

/// The RankSim regulariser on the batch rows `indices` (one per label, in the order the ranks
/// break ties): `config.gamma × Σ_i mean_j (r_f - r_y)²`. `labels` has one value per row of
/// `features`; an empty selection gives 0.
pub fn ranksim_regulariser(
    features: &Tensor,
    labels: &[f64],
    indices: &[usize],
    config: &RankSimConfig,
) -> candle_core::Result<Tensor> {
    config.check()?;
    if features.rank() < 2 {
        return Err(NnError::shape(format!(
            "ranksim: features must be (B, D), got {:?}",
            features.shape()
        ))
        .into());
    }
    let features = features.flatten_from(1)?;
    let batch = features.dim(0)?;
    if labels.len() != batch {
        return Err(NnError::shape(format!(
            "ranksim: {} labels for {batch} feature rows",
            labels.len()
        ))
        .into());
    }
    check_indices(indices, batch)?;
    let n = indices.len();
    if n == 0 {
        return Tensor::zeros((), features.dtype(), features.device());
    }
    let kept = if indices.iter().copied().eq(0..batch) {
        features
    } else {
        let ids: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let ids = Tensor::from_vec(ids, n, features.device())?;
        features.index_select(&ids, 0)?
    };
    let similarity = cosine_similarity(&kept)?;
    let feature_ranks = blackbox_rank(&similarity, config.lambda, config.tie_rule)?;
    let kept_labels: Vec<f64> = indices.iter().map(|&i| labels[i]).collect();
    let label_ranks = label_rank_matrix(&kept_labels, config.tie_rule);
    let label_ranks =
        Tensor::from_vec(label_ranks, (n, n), similarity.device())?.to_dtype(similarity.dtype())?;
    (feature_ranks - label_ranks)?
        .sqr()?
        .sum_all()?
        .affine(config.gamma / n as f64, 0.0)
}

/// Cosine similarity `N Nᵀ` of the rows of `x` (shape `(n, D)`), with `N = x / max(‖x‖, 1e-12)`
/// as `F.normalize`; differentiable with candle ops, and an all-zero row gets a zero gradient.
pub fn cosine_similarity(x: &Tensor) -> candle_core::Result<Tensor> {
    // Clamping the squared norm (not the norm) keeps sqrt's gradient finite for zero rows.
    let norm = x
        .sqr()?
        .sum_keepdim(1)?
        .maximum(NORMALIZE_EPS * NORMALIZE_EPS)?
        .sqrt()?;
    let normalised = x.broadcast_div(&norm)?;
    matmul(&normalised, &normalised.t()?)
}

/// Normalised descending ranks `(rank + 1)/n` of the last dimension of `s`, with the blackbox
/// gradient `-(r - rank(s + λ g))/(λ + 1e-8)` for an incoming gradient `g` (see [`BlackboxRank`]).
pub fn blackbox_rank(s: &Tensor, lambda: f64, tie_rule: TieRule) -> candle_core::Result<Tensor> {
    s.apply_op1(Differentiable(BlackboxRank::new(lambda, tie_rule)?))
}

/// The label-rank matrix of RankSim, row-major `(n, n)`: row `i` holds the normalised descending
/// ranks of `-|y_i - y_j|` over `j` under `tie_rule`.
pub fn label_rank_matrix(labels: &[f64], tie_rule: TieRule) -> Vec<f64> {
    let mut out = Vec::with_capacity(labels.len() * labels.len());
    let mut row = vec![0.0; labels.len()];
    for &yi in labels {
        for (r, &yj) in row.iter_mut().zip(labels) {
            *r = -(yi - yj).abs();
        }
        out.extend(rank_descending(&row, tie_rule));
    }
    out
}

/// Normalised descending ranks `(rank + 1)/n` of `values` (the largest gets `1/n`), equal values
/// ordered by `tie_rule`; `-0.0` equals `0.0`, NaNs sort by their bits as in `f64::total_cmp`.
pub fn rank_descending(values: &[f64], tie_rule: TieRule) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    rank_into(values, tie_rule, &mut out);
    out
}

fn rank_into(values: &[f64], tie_rule: TieRule, out: &mut [f64]) {
    let n = values.len();
    // `+ 0.0` maps -0.0 to 0.0 so that the two compare equal, as in torch.
    let key: Vec<f64> = values.iter().map(|&v| v + 0.0).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| {
        let by_value = key[b].total_cmp(&key[a]);
        match tie_rule {
            TieRule::HigherIndexFirst => by_value.then(b.cmp(&a)),
            TieRule::LowerIndexFirst => by_value.then(a.cmp(&b)),
        }
    });
    for (position, &i) in order.iter().enumerate() {
        out[i] = (position + 1) as f64 / n as f64;
    }
}

/// Row-wise normalised descending ranks as a candle custom op whose backward is the
/// blackbox-solver rule: `grad_s = -(rank(s) - rank(s + λ grad))/(λ + 1e-8)` per row.
/// Computed on the host in f64 (one round trip on CUDA); output dtype = input dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlackboxRank {
    lambda: f64,
    tie_rule: TieRule,
}

impl BlackboxRank {
    /// The op with interpolation strength `lambda` (finite, > 0) and tie rule `tie_rule`.
    pub fn new(lambda: f64, tie_rule: TieRule) -> candle_core::Result<Self> {
        if !(lambda.is_finite() && lambda > 0.0) {
            return invalid("lambda", lambda, "a finite value > 0");
        }
        Ok(Self { lambda, tie_rule })
    }
}

impl HostOp1 for BlackboxRank {
    fn name(&self) -> &'static str {
        "ranksim-blackbox-rank"
    }

    fn compute(&self, input: &[f64], shape: &Shape) -> candle_core::Result<(Vec<f64>, Shape)> {
        let width = match shape.dims().last() {
            Some(&w) => w,
            None => candle_core::bail!("{}: a scalar has no rows to rank", HostOp1::name(self)),
        };
        let mut out = vec![0.0; input.len()];
        if width > 0 {
            for (row, dst) in input.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
                rank_into(row, self.tie_rule, dst);
            }
        }
        Ok((out, shape.clone()))
    }
}

impl HostGrad1 for BlackboxRank {
    fn grad(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Tensor> {
        let perturbed = (arg + grad_res.affine(self.lambda, 0.0)?)?;
        let perturbed_ranks = apply_host(self, &perturbed)?;
        (perturbed_ranks - res)?.affine(1.0 / (self.lambda + BLACKBOX_EPS), 0.0)
    }
}

/// Reads labels of shape `(B)` or `(B, 1)` to the host as f64.
fn labels_to_host(labels: &Tensor) -> candle_core::Result<Vec<f64>> {
    let dims = labels.dims();
    if !(dims.len() == 1 || (dims.len() == 2 && dims[1] == 1)) {
        return Err(NnError::shape(format!(
            "ranksim: labels must be (B) or (B, 1), got {:?}",
            labels.shape()
        ))
        .into());
    }
    labels.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
}

/// Batch indices grouped by equal label (`-0.0` = `0.0`), groups in ascending label order and
/// indices ascending within a group.
fn label_groups(labels: &[f64]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| {
        (labels[a] + 0.0)
            .total_cmp(&(labels[b] + 0.0))
            .then(a.cmp(&b))
    });
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some(g) if g.first().is_some_and(|&f| labels[f] == labels[i]) => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    groups
}

fn check_indices(indices: &[usize], batch: usize) -> candle_core::Result<()> {
    let mut seen = vec![false; batch];
    for &i in indices {
        match seen.get_mut(i) {
            None => return invalid("selection index", i, "an index below the batch size"),
            Some(true) => return invalid("selection index", i, "distinct indices"),
            Some(s) => *s = true,
        }
    }
    Ok(())
}
