//! Decoupled representation and classifier learning (Kang et al. 2020), methods.md §7: after
//! training the whole model, re-balance only the classifier — τ-normalisation, learnable weight
//! scaling, nearest class mean, or re-training the classifier on a frozen encoder — plus the
//! cosine classifier LDAM trains with.

use candle_core::{D, DType, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dirkit_compute::nn::Linear;
use dirkit_compute::ops::matmul;

use crate::error::{NnError, invalid};

/// τ-normalised classifier weights `w_b / ‖w_b‖^τ` for a `(C, D)` weight matrix (the bias is
/// dropped: use the result as a bias-free linear layer). τ = 0 leaves the weights as they are,
/// τ = 1 normalises every class to unit norm. Zero rows stay zero.
pub fn tau_normalize(weight: &Tensor, tau: f64) -> Result<Tensor> {
    if !(tau.is_finite() && tau >= 0.0) {
        return invalid("tau normalisation", tau, "a non-negative number");
    }
    let norm = weight.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    let safe = norm.eq(0.0)?.where_cond(&norm.ones_like()?, &norm)?;
    weight.broadcast_div(&safe.powf(tau)?)
}

/// A linear classifier whose rows are rescaled by learnable per-class factors (learnable weight
/// scaling, LWS): `logits = f ⊙ (W x + b)` with `W`, `b` frozen (taken as constants) and `f`
/// (C, initialised to 1) the only variable. Train [`Lws::scales`] on class-balanced batches.
pub struct Lws {
    classifier: Linear,
    scales: Var,
}

impl Lws {
    /// Wraps a trained classifier's weight `(C, D)` and optional bias `(C)`.
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let (c, _) = weight.dims2()?;
        if let Some(b) = bias
            && b.dims() != [c]
        {
            return Err(NnError::shape(format!("bias {:?} for {c} classes", b.dims())).into());
        }
        Ok(Self {
            classifier: Linear::new(weight.detach(), bias.map(Tensor::detach)),
            scales: Var::ones(c, weight.dtype(), weight.device())?,
        })
    }

    /// The learnable per-class scales (give these, and only these, to the optimiser).
    pub fn scales(&self) -> &Var {
        &self.scales
    }
}

impl Module for Lws {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classifier
            .forward(x)?
            .broadcast_mul(self.scales.as_tensor())
    }
}

/// Nearest class mean classifier: features are centred by the training mean and L2-normalised;
/// each class's mean of those is its prototype; the logits of a sample are its negative
/// squared Euclidean distances to the prototypes (so the arg-max is the nearest mean). Classes
/// without training samples get an infinitely distant prototype (logit `−∞`).
#[derive(Debug, Clone)]
pub struct NearestClassMean {
    centre: Tensor,
    prototypes: Tensor,
    present: Tensor,
}

fn centred_unit(features: &Tensor, centre: &Tensor) -> Result<Tensor> {
    let z = features.broadcast_sub(centre)?;
    let norm = z.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    let safe = norm.eq(0.0)?.where_cond(&norm.ones_like()?, &norm)?;
    z.broadcast_div(&safe)
}

impl NearestClassMean {
    /// Fits the prototypes on `(N, D)` training features (detached) with `N` labels in
    /// `0..classes`.
    pub fn fit(features: &Tensor, labels: &[usize], classes: usize) -> Result<Self> {
        let (n, d) = features.dims2()?;
        if labels.len() != n || n == 0 {
            return Err(
                NnError::shape(format!("{} labels for {n} feature rows", labels.len())).into(),
            );
        }
        if let Some((i, &y)) = labels.iter().enumerate().find(|(_, y)| **y >= classes) {
            return Err(
                NnError::shape(format!("label {y} of sample {i} is not below {classes}")).into(),
            );
        }
        let f = features.detach().to_dtype(DType::F64)?;
        let centre = f.mean_keepdim(0)?;
        let unit: Vec<f64> = centred_unit(&f, &centre)?.flatten_all()?.to_vec1()?;
        let mut sums = vec![0.0; classes * d];
        let mut counts = vec![0usize; classes];
        for (i, &y) in labels.iter().enumerate() {
            counts[y] += 1;
            for (s, u) in sums[y * d..(y + 1) * d]
                .iter_mut()
                .zip(&unit[i * d..(i + 1) * d])
            {
                *s += u;
            }
        }
        for (y, &c) in counts.iter().enumerate() {
            sums[y * d..(y + 1) * d]
                .iter_mut()
                .for_each(|s| *s /= c.max(1) as f64);
        }
        let present: Vec<f64> = counts
            .iter()
            .map(|&c| if c > 0 { 0.0 } else { f64::NEG_INFINITY })
            .collect();
        let (dev, dt) = (features.device(), features.dtype());
        Ok(Self {
            centre: centre.to_dtype(dt)?,
            prototypes: Tensor::from_vec(sums, (classes, d), dev)?.to_dtype(dt)?,
            present: Tensor::from_vec(present, (1, classes), dev)?.to_dtype(dt)?,
        })
    }
}

impl Module for NearestClassMean {
    /// `−‖u − μ_c‖²` (N, C) for the centred, normalised features `u`.
    fn forward(&self, features: &Tensor) -> Result<Tensor> {
        let u = centred_unit(features, &self.centre)?;
        let uu = u.sqr()?.sum_keepdim(D::Minus1)?;
        let pp = self.prototypes.sqr()?.sum_keepdim(D::Minus1)?.t()?;
        let cross = matmul(&u, &self.prototypes.t()?)?;
        let dist = (uu.broadcast_add(&pp)? - (cross * 2.0)?)?;
        dist.neg()?.broadcast_add(&self.present)
    }
}

/// A cosine classifier `s_c = (x/‖x‖) · (w_c/‖w_c‖)` (LDAM's `NormedLinear`): logits in
/// `[−1, 1]`, scaled by the loss (LDAM's `s`).
pub struct NormedLinear {
    weight: Tensor,
}

impl NormedLinear {
    /// A `(classes, in_dim)` weight from `vb` (name `weight`), uniform in `[−1/√in, 1/√in]`.
    pub fn new(in_dim: usize, classes: usize, vb: VarBuilder) -> Result<Self> {
        let bound = 1.0 / (in_dim as f64).sqrt();
        let weight = vb.get_with_hints(
            (classes, in_dim),
            "weight",
            candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Self { weight })
    }

    /// The raw `(classes, in_dim)` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for NormedLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let unit = |t: &Tensor| -> Result<Tensor> {
            let norm = t
                .sqr()?
                .sum_keepdim(D::Minus1)?
                .sqrt()?
                .clamp(1e-12, f64::INFINITY)?;
            t.broadcast_div(&norm)
        };
        matmul(&unit(x)?, &unit(&self.weight)?.t()?)
    }
}

/// The variables of `varmap` whose names start with `prefix` (e.g. `"head."`): the classifier
/// to re-train (cRT) while the encoder stays frozen — give only these to the optimiser, and
/// feed the classifier `features.detach()` so no gradient reaches the encoder.
pub fn trainable_with_prefix(varmap: &VarMap, prefix: &str) -> Vec<Var> {
    let data = varmap
        .data()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut named: Vec<(&String, &Var)> =
        data.iter().filter(|(k, _)| k.starts_with(prefix)).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}
