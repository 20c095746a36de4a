//! Adam (Kingma & Ba 2015) in PyTorch's form, with a state that saves and loads: candle's own
//! `AdamW` keeps its moments private, so a run could not resume where it stopped.
//!
//! On the CPU (f32 and f64 variables) a step is one fused pass over each variable that updates
//! the parameters in place and the moments alongside them, split over the kernels' thread pool
//! for large variables; elsewhere (CUDA, half precision) it composes candle's tensor ops. Both
//! paths do the same arithmetic in the same order, so they give the same numbers.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Result, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::error::{ComputeError, invalid};

/// Adam's hyper-parameters; defaults are PyTorch's and the DIR recipe's (lr 1e-3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamParams {
    /// Learning rate (1e-3).
    pub lr: f64,
    /// First-moment decay β1 (0.9).
    pub beta1: f64,
    /// Second-moment decay β2 (0.999).
    pub beta2: f64,
    /// Denominator term ε (1e-8).
    pub eps: f64,
    /// Weight decay (0): an L2 penalty added to the gradient (`torch.optim.Adam`), or with
    /// `decoupled` a shrink `θ ← θ (1 − lr·weight_decay)` before the update
    /// (`torch.optim.AdamW`).
    pub weight_decay: f64,
    /// AdamW's decoupled weight decay instead of the L2 penalty (false).
    #[serde(default)]
    pub decoupled: bool,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

impl AdamParams {
    /// PyTorch's `AdamW` defaults: lr 1e-3, β (0.9, 0.999), ε 1e-8, decoupled weight decay 0.01.
    pub fn adamw() -> Self {
        Self {
            weight_decay: 0.01,
            decoupled: true,
            ..Self::default()
        }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return invalid("adam lr", self.lr, "a non-negative number");
        }
        for (name, b) in [("adam beta1", self.beta1), ("adam beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return invalid(name, b, "a number in [0, 1)");
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return invalid("adam eps", self.eps, "a positive number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return invalid(
                "adam weight_decay",
                self.weight_decay,
                "a non-negative number",
            );
        }
        Ok(())
    }
}

/// A variable's first and second moments.
enum Moments {
    /// Host memory, for f32 / f64 variables on the CPU (the fused path).
    F32(Vec<f32>, Vec<f32>),
    /// Host memory, f64.
    F64(Vec<f64>, Vec<f64>),
    /// Tensors on the variable's device (any other device or dtype).
    Tensors(Var, Var),
}

struct Slot {
    name: String,
    var: Var,
    moments: Moments,
}

impl Slot {
    fn new(name: String, var: Var, fused: bool) -> Result<Self> {
        let n = var.elem_count();
        let moments = match (fused && var.device().is_cpu(), var.dtype()) {
            (true, DType::F32) => Moments::F32(vec![0.0; n], vec![0.0; n]),
            (true, DType::F64) => Moments::F64(vec![0.0; n], vec![0.0; n]),
            _ => Moments::Tensors(
                Var::zeros(var.shape(), var.dtype(), var.device())?,
                Var::zeros(var.shape(), var.dtype(), var.device())?,
            ),
        };
        Ok(Self { name, var, moments })
    }

    /// The moments as CPU tensors of the variable's shape and dtype.
    fn moment_tensors(&self) -> Result<(Tensor, Tensor)> {
        let shape = self.var.shape();
        Ok(match &self.moments {
            Moments::F32(m, v) => (
                Tensor::from_slice(m, shape, &Device::Cpu)?,
                Tensor::from_slice(v, shape, &Device::Cpu)?,
            ),
            Moments::F64(m, v) => (
                Tensor::from_slice(m, shape, &Device::Cpu)?,
                Tensor::from_slice(v, shape, &Device::Cpu)?,
            ),
            Moments::Tensors(m, v) => (
                m.as_tensor().to_device(&Device::Cpu)?,
                v.as_tensor().to_device(&Device::Cpu)?,
            ),
        })
    }

    /// Replaces the moments (tensors already checked to have the variable's shape).
    fn set_moments(&mut self, m: &Tensor, v: &Tensor) -> Result<()> {
        match &mut self.moments {
            Moments::F32(hm, hv) => {
                *hm = m.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                *hv = v.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            }
            Moments::F64(hm, hv) => {
                *hm = m.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
                *hv = v.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
            }
            Moments::Tensors(tm, tv) => {
                let (dtype, device) = (self.var.dtype(), self.var.device());
                tm.set(&m.to_dtype(dtype)?.to_device(device)?)?;
                tv.set(&v.to_dtype(dtype)?.to_device(device)?)?;
            }
        }
        Ok(())
    }
}

/// One step's scalars, shared by both paths.
#[derive(Clone, Copy)]
struct Coefficients {
    /// L2 penalty (coupled) or 0.
    l2: f64,
    /// Decoupled shrink factor `1 − lr·wd`, or None.
    shrink: Option<f64>,
    beta1: f64,
    beta2: f64,
    /// `1 / √(1 − β2^t)`.
    inv_bc2_sqrt: f64,
    eps: f64,
    /// `lr / (1 − β1^t)`.
    step_size: f64,
}

impl Coefficients {
    fn new(p: &AdamParams, t: u64) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - p.beta1.powi(t);
        let bc2_sqrt = (1.0 - p.beta2.powi(t)).sqrt();
        let decays = p.weight_decay > 0.0;
        Self {
            l2: if decays && !p.decoupled {
                p.weight_decay
            } else {
                0.0
            },
            shrink: (decays && p.decoupled).then_some(1.0 - p.lr * p.weight_decay),
            beta1: p.beta1,
            beta2: p.beta2,
            inv_bc2_sqrt: 1.0 / bc2_sqrt,
            eps: p.eps,
            step_size: p.lr / bc1,
        }
    }

    /// The update with candle's ops (any device).
    fn apply_tensors(&self, var: &Var, g: &Tensor, m: &Var, v: &Var) -> Result<()> {
        let theta = match self.shrink {
            Some(s) => (var.as_tensor() * s)?,
            None => var.as_tensor().clone(),
        };
        let g = if self.l2 > 0.0 {
            (g + (&theta * self.l2)?)?
        } else {
            g.clone()
        };
        let m_new = ((m.as_tensor() * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
        let v_new = ((v.as_tensor() * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
        let denom = ((v_new.sqrt()? * self.inv_bc2_sqrt)? + self.eps)?;
        let theta = (theta - ((&m_new / denom)? * self.step_size)?)?;
        m.set(&m_new)?;
        v.set(&v_new)?;
        var.set(&theta)
    }
}

/// Element types of the fused CPU update.
trait AdamFloat:
    candle_core::WithDType
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn sqrt(self) -> Self;
    /// The elements of a CPU storage of this type, writable.
    fn slice_mut(s: &mut CpuStorage) -> Result<&mut [Self]>;
}

macro_rules! impl_adam_float {
    ($t:ty, $variant:ident) => {
        impl AdamFloat for $t {
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn slice_mut(s: &mut CpuStorage) -> Result<&mut [Self]> {
                match s {
                    CpuStorage::$variant(v) => Ok(v),
                    _ => candle_core::bail!(concat!(
                        "adam-fused: the parameter is not ",
                        stringify!($t)
                    )),
                }
            }
        }
    };
}

impl_adam_float!(f32, F32);
impl_adam_float!(f64, F64);

/// Elements per task of the fused update on the kernels' thread pool.
const CHUNK: usize = 1 << 14;

/// The fused CPU update of one variable (the destination) from its gradient (the source), with
/// the moments borrowed from the optimiser.
struct FusedUpdate<'a, T> {
    m: RefCell<&'a mut [T]>,
    v: RefCell<&'a mut [T]>,
    k: Coefficients,
}

/// `θ, m, v ← Adam(θ, m, v, g)` over matching slices; the arithmetic is
/// [`Coefficients::apply_tensors`]' element by element.
fn fused_update<T: AdamFloat>(
    k: &Coefficients,
    theta: &mut [T],
    m: &mut [T],
    v: &mut [T],
    g: &[T],
) {
    let c = |x: f64| T::from_f64(x);
    let (l2, b1, omb1, b2, omb2) = (
        c(k.l2),
        c(k.beta1),
        c(1.0 - k.beta1),
        c(k.beta2),
        c(1.0 - k.beta2),
    );
    let (inv_bc2, eps, step) = (c(k.inv_bc2_sqrt), c(k.eps), c(k.step_size));
    let (coupled, shrink) = (k.l2 > 0.0, k.shrink.map(c));
    for (((th, mi), vi), &gi) in theta.iter_mut().zip(m).zip(v).zip(g) {
        let t = match shrink {
            Some(s) => *th * s,
            None => *th,
        };
        let gi = if coupled { gi + t * l2 } else { gi };
        let m_new = *mi * b1 + gi * omb1;
        let v_new = *vi * b2 + gi * gi * omb2;
        let denom = v_new.sqrt() * inv_bc2 + eps;
        *th = t - m_new / denom * step;
        *mi = m_new;
        *vi = v_new;
    }
}

impl<T: AdamFloat> InplaceOp2 for FusedUpdate<'_, T> {
    fn name(&self) -> &'static str {
        "adam-fused"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g_s: &CpuStorage,
        g_l: &Layout,
    ) -> Result<()> {
        let (Some((d0, d1)), Some((g0, g1))) =
            (dst_l.contiguous_offsets(), g_l.contiguous_offsets())
        else {
            candle_core::bail!("adam-fused: parameter and gradient must be contiguous")
        };
        let theta = &mut T::slice_mut(dst)?[d0..d1];
        let g = &T::cpu_storage_as_slice(g_s)?[g0..g1];
        let k = self.k;
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        if theta.len() != g.len() || theta.len() != m.len() || theta.len() != v.len() {
            candle_core::bail!("adam-fused: parameter, gradient and moments differ in length")
        }
        if crate::ops::use_threads(theta.len(), theta.len().div_ceil(CHUNK)) {
            let tasks: Vec<_> = theta
                .chunks_mut(CHUNK)
                .zip(m.chunks_mut(CHUNK))
                .zip(v.chunks_mut(CHUNK))
                .zip(g.chunks(CHUNK))
                .collect();
            crate::ops::pool::map_tasks(tasks, true, |(((th, m), v), g)| {
                fused_update(&k, th, m, v, g)
            });
        } else {
            fused_update(&k, theta, &mut m, &mut v, g);
        }
        Ok(())
    }
}

/// Adam over named variables: `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`,
/// `θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)` — PyTorch's arithmetic, so a
/// step matches `torch.optim.Adam`'s (or with [`AdamParams::decoupled`] `AdamW`'s) to rounding.
/// Variables without a gradient are skipped.
pub struct Adam {
    slots: Vec<Slot>,
    step: u64,
    params: AdamParams,
}

impl Adam {
    /// Adam over the named variables.
    pub fn new(named: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        Self::build(named, params, true)
    }

    fn build(named: Vec<(String, Var)>, params: AdamParams, fused: bool) -> Result<Self> {
        params.validate()?;
        let slots = named
            .into_iter()
            .filter(|(_, v)| v.dtype().is_float())
            .map(|(name, var)| Slot::new(name, var, fused))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            step: 0,
            params,
        })
    }

    /// Adam over the variables of `varmap` whose names pass `keep` (e.g. not a batch norm's
    /// running statistics), in name order.
    pub fn from_varmap(
        varmap: &VarMap,
        keep: impl Fn(&str) -> bool,
        params: AdamParams,
    ) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut named: Vec<(String, Var)> = data
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        drop(data);
        Self::new(named, params)
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.params.lr
    }

    /// Sets the learning rate (schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update from `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let k = Coefficients::new(&self.params, self.step);
        for s in &mut self.slots {
            let Some(g) = grads.get(&s.var) else { continue };
            let g = g.contiguous()?;
            match &mut s.moments {
                Moments::F32(m, v) => {
                    let op = FusedUpdate {
                        m: RefCell::new(m.as_mut_slice()),
                        v: RefCell::new(v.as_mut_slice()),
                        k,
                    };
                    s.var.as_tensor().inplace_op2(&g, &op)?;
                }
                Moments::F64(m, v) => {
                    let op = FusedUpdate {
                        m: RefCell::new(m.as_mut_slice()),
                        v: RefCell::new(v.as_mut_slice()),
                        k,
                    };
                    s.var.as_tensor().inplace_op2(&g, &op)?;
                }
                Moments::Tensors(m, v) => k.apply_tensors(&s.var, &g, m, v)?,
            }
        }
        Ok(())
    }

    /// `loss.backward()` then [`Adam::step`].
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// The state (step count, both moments per variable, hyper-parameters) as named CPU
    /// tensors, prefix `adam.`.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        out.insert(
            "adam.step".into(),
            Tensor::new(&[self.step as f64], &Device::Cpu)?,
        );
        let json = serde_json::to_vec(&self.params).map_err(candle_core::Error::wrap)?;
        let n = json.len();
        out.insert(
            "adam.params_json".into(),
            Tensor::from_vec(json, n, &Device::Cpu)?,
        );
        for s in &self.slots {
            let (m, v) = s.moment_tensors()?;
            out.insert(format!("adam.m.{}", s.name), m);
            out.insert(format!("adam.v.{}", s.name), v);
        }
        Ok(out)
    }

    /// Restores [`Adam::state_tensors`] into an optimiser over the same variables (names and
    /// shapes must match).
    pub fn load_state_tensors(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |k: &str| {
            state
                .get(k)
                .ok_or_else(|| ComputeError::Shape(format!("optimiser state lacks {k}")))
        };
        let step: Vec<f64> = get("adam.step")?.to_dtype(DType::F64)?.to_vec1()?;
        let json: Vec<u8> = get("adam.params_json")?.to_vec1()?;
        let params: AdamParams = serde_json::from_slice(&json).map_err(candle_core::Error::wrap)?;
        params.validate()?;
        let mut loaded = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let mut pair = Vec::with_capacity(2);
            for key in ["m", "v"] {
                let t = get(&format!("adam.{key}.{}", s.name))?;
                if t.dims() != s.var.dims() {
                    return Err(ComputeError::Shape(format!(
                        "saved adam.{key}.{} is {:?}, the variable is {:?}",
                        s.name,
                        t.dims(),
                        s.var.dims()
                    ))
                    .into());
                }
                pair.push(t);
            }
            loaded.push(pair);
        }
        for (s, pair) in self.slots.iter_mut().zip(loaded) {
            s.set_moments(pair[0], pair[1])?;
        }
        self.step = step.first().copied().unwrap_or(0.0) as u64;
        self.params = params;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// θ = (1, −2), loss = Σ c_i θ_i² with c = (0.5, 3): three steps by hand in f64.
    #[test]
    fn steps_follow_pytorchs_formula() {
        let var = Var::new(&[1.0f64, -2.0], &Device::Cpu).unwrap();
        let p = AdamParams {
            lr: 0.1,
            weight_decay: 0.01,
            ..Default::default()
        };
        let mut opt = Adam::new(vec![("w".into(), var.clone())], p).unwrap();
        let c = [0.5, 3.0];
        let (mut th, mut m, mut v) = ([1.0f64, -2.0], [0.0f64; 2], [0.0f64; 2]);
        for t in 1..=3 {
            let ct = Tensor::new(&c, &Device::Cpu).unwrap();
            let loss = (var.as_tensor().sqr().unwrap() * ct)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.backward_step(&loss).unwrap();
            for i in 0..2 {
                let g = 2.0 * c[i] * th[i] + 0.01 * th[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let bc1 = 1.0 - 0.9f64.powi(t);
                let bc2 = (1.0 - 0.999f64.powi(t)).sqrt();
                th[i] -= (0.1 / bc1) * m[i] / (v[i].sqrt() / bc2 + 1e-8);
            }
            let got: Vec<f64> = var.as_tensor().to_vec1().unwrap();
            for i in 0..2 {
                assert!(
                    (got[i] - th[i]).abs() < 1e-15,
                    "step {t}: {} vs {}",
                    got[i],
                    th[i]
                );
            }
        }
    }

    /// Seeded values in [-scale, scale).
    fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
        let mut rng = dirkit_core::rng::SplitMix64::new(seed);
        (0..n)
            .map(|_| (2.0 * rng.uniform() - 1.0) * scale)
            .collect()
    }

    /// Runs `steps` updates of a (rows × cols) variable with a fixed per-step gradient
    /// sequence through the fused or the tensor path, returning θ and the saved moments.
    fn trajectory(
        dtype: DType,
        rows: usize,
        cols: usize,
        params: AdamParams,
        fused: bool,
        steps: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let dev = Device::Cpu;
        let n = rows * cols;
        let init = Tensor::from_vec(values(n, 1, 1.0), (rows, cols), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let var = Var::from_tensor(&init).unwrap();
        let mut opt = Adam::build(vec![("w".into(), var.clone())], params, fused).unwrap();
        for k in 0..steps {
            // loss = Σ c ⊙ θ with a changing c: the gradient is c, exactly.
            let c = Tensor::from_vec(values(n, 10 + k as u64, 0.5), (rows, cols), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let loss = (var.as_tensor() * c).unwrap().sum_all().unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let state = opt.state_tensors().unwrap();
        let flat = |t: &Tensor| -> Vec<f64> {
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        (
            flat(var.as_tensor()),
            flat(&state["adam.m.w"]),
            flat(&state["adam.v.w"]),
        )
    }

    #[test]
    fn fused_cpu_path_equals_the_tensor_path_bit_for_bit() {
        let coupled = AdamParams {
            lr: 0.05,
            weight_decay: 0.01,
            ..Default::default()
        };
        let decoupled = AdamParams {
            lr: 0.05,
            ..AdamParams::adamw()
        };
        let plain = AdamParams::default();
        // 300 × 1100 = 330,000 elements: above the threading threshold, 21 chunks with a
        // ragged last one; 7 × 3: one thread.
        for dtype in [DType::F32, DType::F64] {
            for (rows, cols) in [(7, 3), (300, 1100)] {
                for p in [coupled, decoupled, plain] {
                    let fused = trajectory(dtype, rows, cols, p, true, 4);
                    let tensors = trajectory(dtype, rows, cols, p, false, 4);
                    assert!(
                        fused == tensors,
                        "{dtype:?} {rows}x{cols} {p:?}: the paths differ"
                    );
                    let init = values(rows * cols, 1, 1.0);
                    assert!(fused.0.iter().zip(&init).all(|(a, b)| a != b));
                }
            }
        }
    }

    /// AdamW (decoupled) against the formula by hand in f64.
    #[test]
    fn decoupled_weight_decay_follows_adamw() {
        let p = AdamParams {
            lr: 0.1,
            weight_decay: 0.2,
            decoupled: true,
            ..Default::default()
        };
        let (got, _, _) = trajectory(DType::F64, 2, 3, p, true, 3);
        let n = 6;
        let mut th = values(n, 1, 1.0);
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        for k in 0..3u64 {
            let g = values(n, 10 + k, 0.5);
            let t = k as i32 + 1;
            for i in 0..n {
                th[i] *= 1.0 - 0.1 * 0.2;
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                let bc1 = 1.0 - 0.9f64.powi(t);
                let bc2 = (1.0 - 0.999f64.powi(t)).sqrt();
                th[i] -= (0.1 / bc1) * m[i] / (v[i].sqrt() / bc2 + 1e-8);
            }
        }
        for i in 0..n {
            assert!((got[i] - th[i]).abs() < 1e-14, "{} vs {}", got[i], th[i]);
        }
    }

    #[test]
    fn params_without_the_decoupled_field_still_load() {
        let json = r#"{"lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0001}"#;
        let p: AdamParams = serde_json::from_str(json).unwrap();
        assert!(!p.decoupled);
        assert_eq!(p.weight_decay, 1e-4);
    }

    #[test]
    fn saved_state_resumes_bit_for_bit() {
        let run = |split: Option<usize>| -> Vec<f32> {
            let var = Var::new(&[0.3f32, -1.2, 2.0], &Device::Cpu).unwrap();
            let mut opt =
                Adam::new(vec![("w".into(), var.clone())], AdamParams::default()).unwrap();
            let loss = |v: &Var| (v.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
            for k in 0..5 {
                if Some(k) == split {
                    let state = opt.state_tensors().unwrap();
                    let values = var.as_tensor().copy().unwrap();
                    let var2 = Var::from_tensor(&values).unwrap();
                    let mut fresh =
                        Adam::new(vec![("w".into(), var2.clone())], AdamParams::default()).unwrap();
                    fresh.load_state_tensors(&state).unwrap();
                    for _ in k..5 {
                        fresh.backward_step(&loss(&var2)).unwrap();
                    }
                    return var2.as_tensor().to_vec1().unwrap();
                }
                opt.backward_step(&loss(&var)).unwrap();
            }
            var.as_tensor().to_vec1().unwrap()
        };
        let straight = run(None);
        assert_eq!(straight, run(Some(2)));
        assert_ne!(straight, vec![0.3, -1.2, 2.0]);
    }

    #[test]
    fn bad_parameters_and_states_are_errors() {
        assert!(
            AdamParams {
                beta1: 1.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            AdamParams {
                lr: f64::NAN,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        let var = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let mut opt = Adam::new(vec![("w".into(), var)], AdamParams::default()).unwrap();
        assert!(opt.load_state_tensors(&HashMap::new()).is_err());
    }
}
