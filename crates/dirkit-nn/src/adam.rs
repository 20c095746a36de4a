//! Adam (Kingma & Ba 2015) in PyTorch's form, with a state that saves and loads: candle's own
//! `AdamW` keeps its moments private, so a run could not resume where it stopped.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, invalid};

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
    /// L2 penalty added to the gradient, PyTorch's `weight_decay` (0).
    pub weight_decay: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamParams {
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

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

/// Adam over named variables: `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`,
/// `θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)` — PyTorch's arithmetic, so a
/// step matches `torch.optim.Adam`'s to rounding. Variables without a gradient are skipped.
pub struct Adam {
    slots: Vec<Slot>,
    step: u64,
    params: AdamParams,
}

impl Adam {
    /// Adam over the named variables.
    pub fn new(named: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        params.validate()?;
        let slots = named
            .into_iter()
            .filter(|(_, v)| v.dtype().is_float())
            .map(|(name, var)| {
                let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
                Ok(Slot { name, var, m, v })
            })
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
        let AdamParams {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let t = self.step as i32;
        let bc1 = 1.0 - beta1.powi(t);
        let bc2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        for s in &self.slots {
            let Some(g) = grads.get(&s.var) else { continue };
            let g = if weight_decay > 0.0 {
                (g + (s.var.as_tensor() * weight_decay)?)?
            } else {
                g.clone()
            };
            let m = ((s.m.as_tensor() * beta1)? + (&g * (1.0 - beta1))?)?;
            let v = ((s.v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((v.sqrt()? / bc2_sqrt)? + eps)?;
            let theta = (s.var.as_tensor() - ((&m / denom)? * (lr / bc1))?)?;
            s.m.set(&m)?;
            s.v.set(&v)?;
            s.var.set(&theta)?;
        }
        Ok(())
    }

    /// `loss.backward()` then [`Adam::step`].
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// The state (step count, both moments per variable, hyper-parameters) as named tensors,
    /// prefix `adam.`.
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
            out.insert(
                format!("adam.m.{}", s.name),
                s.m.as_tensor().to_device(&Device::Cpu)?,
            );
            out.insert(
                format!("adam.v.{}", s.name),
                s.v.as_tensor().to_device(&Device::Cpu)?,
            );
        }
        Ok(out)
    }

    /// Restores [`Adam::state_tensors`] into an optimiser over the same variables (names and
    /// shapes must match).
    pub fn load_state_tensors(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let get = |k: &str| {
            state
                .get(k)
                .ok_or_else(|| NnError::Shape(format!("optimiser state lacks {k}")))
        };
        let step: Vec<f64> = get("adam.step")?.to_dtype(DType::F64)?.to_vec1()?;
        let json: Vec<u8> = get("adam.params_json")?.to_vec1()?;
        let params: AdamParams = serde_json::from_slice(&json).map_err(candle_core::Error::wrap)?;
        params.validate()?;
        for s in &self.slots {
            for (key, slot) in [("m", &s.m), ("v", &s.v)] {
                let t = get(&format!("adam.{key}.{}", s.name))?;
                if t.dims() != slot.dims() {
                    return Err(NnError::Shape(format!(
                        "saved adam.{key}.{} is {:?}, the variable is {:?}",
                        s.name,
                        t.dims(),
                        slot.dims()
                    ))
                    .into());
                }
                slot.set(&t.to_dtype(slot.dtype())?.to_device(slot.device())?)?;
            }
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
