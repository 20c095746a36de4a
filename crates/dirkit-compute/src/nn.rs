//! Layers over the [`ops`](crate::ops) kernels, as drop-in replacements for candle-nn's.
//!
//! [`Linear`] computes `x Wᵀ + b` with [`ops::linear`](crate::ops::linear): one op per
//! direction on the CPU that stays on the calling thread for small products and splits large
//! ones over the kernels' thread pool. candle-nn's `Linear` multiplies through candle's
//! `matmul`, which wakes rayon's threads for every product however small — on two cores a
//! 64-row 64 → 256 layer (forward and backward) takes 170 µs on one thread and 475 µs with the
//! default two, against 70 µs on either here.
//!
//! **With your own Candle model**: build its fully connected layers with [`linear`] (same
//! variable names and initialisation as `candle_nn::linear`, so checkpoints are
//! interchangeable), multiply with [`ops::matmul`](crate::ops::matmul) instead of
//! `Tensor::matmul`, and call [`memory::keep_freed_memory`](crate::memory::keep_freed_memory)
//! once at the start of the program. If you keep candle's layers, a small model (a few hundred
//! hidden units, a batch of a few hundred rows) trains fastest with `RAYON_NUM_THREADS=1`; at
//! the least set `RAYON_NUM_THREADS` to the core count, since without it candle re-reads
//! `/proc/cpuinfo` for its thread count on every product.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use dirkit_compute::{memory, nn, ops};
//! # fn main() -> candle_core::Result<()> {
//! memory::keep_freed_memory();
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let layer = nn::linear(13, 64, vb.pp("hidden"))?; // variables hidden.weight, hidden.bias
//! let x = Tensor::ones((500, 13), DType::F32, &Device::Cpu)?;
//! let h = layer.forward(&x)?.relu()?; // (500, 64), on this thread: 0.4 M multiply-adds
//! let gram = ops::matmul(&h.t()?, &h)?; // (64, 64); the transpose is read in place
//! assert_eq!(gram.dims(), [64, 64]);
//! # Ok(()) }
//! ```

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A fully connected layer `y = x Wᵀ + b` (weight `(out, in)`, optional bias `(out)`), computed
/// by [`ops::linear`](crate::ops::linear) for f32 and f64 inputs (on devices other than the
/// CPU that is candle's matmul and broadcast add), by candle's product for half precision.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer from its weight `(out, in)` and optional bias `(out)`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The weight, `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `(out)`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if matches!(x.dtype(), DType::F32 | DType::F64) {
            return crate::ops::linear(x, &self.weight, self.bias.as_ref());
        }
        // Half precision: candle's product, as candle-nn's layer computes it.
        let y = x.broadcast_matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

impl From<candle_nn::Linear> for Linear {
    fn from(layer: candle_nn::Linear) -> Self {
        Self::new(layer.weight().clone(), layer.bias().cloned())
    }
}

/// A [`Linear`] layer from `in_dim` to `out_dim` features with a bias, its variables `weight`
/// and `bias` under `vb`: the names and initialisation of `candle_nn::linear` (weight Kaiming
/// normal, bias `U(±1/√in_dim)`).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear(in_dim, out_dim, vb).map(Linear::from)
}

/// A [`Linear`] layer without a bias: `candle_nn::linear_no_bias`'s variable and initialisation.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear_no_bias(in_dim, out_dim, vb).map(Linear::from)
}
