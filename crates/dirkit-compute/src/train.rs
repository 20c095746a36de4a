//! Training helpers Candle lacks: seeded weight initialisation (candle's CPU generator cannot
//! be seeded) and learning-rate schedules.

use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use dirkit_core::rng::SplitMix64;

/// Re-initialises every variable of `varmap` from `seed`, the same on every run and device:
/// 2-D+ weights `U(−1/√fan_in, 1/√fan_in)` (PyTorch's `Linear`/`Conv` default, fan_in = the
/// product of all but the first dimension), biases `U(−1/√fan_in, 1/√fan_in)` with the fan-in
/// of their layer's weight (`…bias` ↔ `…weight`), other 1-D variables unchanged (batch-norm
/// scales and running statistics keep their constructors' values). Variables are visited in
/// name order, so adding a layer elsewhere does not change the others' streams' order.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> candle_core::Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let fan_in_of = |name: &str| -> Option<usize> {
        let w = data.get(name)?;
        let dims = w.dims();
        (dims.len() >= 2).then(|| dims[1..].iter().product())
    };
    let mut rng = SplitMix64::new(seed);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let fan_in = if dims.len() >= 2 {
            Some(dims[1..].iter().product::<usize>())
        } else if let Some(stem) = name.strip_suffix("bias") {
            fan_in_of(&format!("{stem}weight"))
        } else {
            None
        };
        let Some(fan_in) = fan_in else { continue };
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let n: usize = dims.iter().product();
        let values: Vec<f64> = (0..n)
            .map(|_| (2.0 * rng.uniform() - 1.0) * bound)
            .collect();
        let t = Tensor::from_vec(values, dims.as_slice(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// Sets one variable of `varmap` to a constant (e.g. a regression head's bias to the mean
/// training target, so training starts from the mean prediction).
pub fn fill(varmap: &VarMap, name: &str, value: f64) -> candle_core::Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let var = data
        .get(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("no variable named {name}")))?;
    let t = Tensor::full(value, var.dims(), var.device())?.to_dtype(var.dtype())?;
    var.set(&t)
}

/// Step decay: `lr = base · γ^(number of milestones ≤ epoch)` — the DIR recipe is base 1e-3,
/// milestones [60, 80], γ = 0.1.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MultiStepLr {
    /// Learning rate before the first milestone.
    pub base: f64,
    /// Epochs (0-based) at which the rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    /// Decay factor (default 0.1).
    pub gamma: f64,
}

impl MultiStepLr {
    /// The learning rate of `epoch`.
    pub fn lr(&self, epoch: usize) -> f64 {
        let k = self.milestones.iter().filter(|&&m| m <= epoch).count();
        self.base * self.gamma.powi(k as i32)
    }
}

/// The dtype every dirkit example trains in.
pub const TRAIN_DTYPE: DType = DType::F32;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarBuilder;

    #[test]
    fn seeded_init_is_reproducible_and_bounded() {
        let make = |seed| {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
            let _ = candle_nn::linear(16, 4, vb.pp("l")).unwrap();
            seeded_init(&vm, seed).unwrap();
            let d = vm.data().lock().unwrap();
            let w: Vec<Vec<f32>> = d["l.weight"].to_vec2().unwrap();
            let b: Vec<f32> = d["l.bias"].to_vec1().unwrap();
            (w, b)
        };
        let (w1, b1) = make(7);
        let (w2, b2) = make(7);
        let (w3, _) = make(8);
        assert_eq!((&w1, &b1), (&w2, &b2));
        assert_ne!(w1, w3);
        assert!(w1.iter().flatten().chain(&b1).all(|x| x.abs() <= 0.25));
    }

    #[test]
    fn multistep_decays_at_each_milestone() {
        let s = MultiStepLr {
            base: 1e-3,
            milestones: vec![60, 80],
            gamma: 0.1,
        };
        assert_eq!(s.lr(59), 1e-3);
        assert!((s.lr(60) - 1e-4).abs() < 1e-18);
        assert!((s.lr(85) - 1e-5).abs() < 1e-18);
    }
}
