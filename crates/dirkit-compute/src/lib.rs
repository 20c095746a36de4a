//! # dirkit-compute
//!
//! Generic training compute on [Candle](https://github.com/huggingface/candle), not specific to
//! imbalanced regression, so that any Candle user can take it:
//!
//! - [`ops`]: CPU kernels as candle custom ops with their own backward passes — convolution
//!   (im2col + GEMM), train-mode batch norm with a fused ReLU, ReLU, a linear layer and a
//!   matrix product — on candle's thread pool, each staying on the calling thread when its work
//!   is too small to pay for a second one;
//! - [`nn`]: a [`Linear`](nn::Linear) layer over those kernels, a drop-in for candle-nn's;
//! - [`models`]: ResNet-18/34/50 and a narrow CPU ResNet with seeded initialisation and a max
//!   pool with an exact gradient;
//! - [`adam`]: Adam/AdamW with a state that saves and loads, fused in place on the CPU;
//! - [`checkpoint`]: one-file training checkpoints written atomically;
//! - [`train`]: seeded initialisation and learning-rate schedules;
//! - [`host_op`]: host computations inside custom ops on any device;
//! - [`memory`]: keeping freed memory in the process, so that steps do not page-fault through
//!   fresh memory (on two cores this halves a small MLP's step).
//!
//! Every function takes tensors on any candle `Device`: on the CPU the kernels run, elsewhere
//! candle's own ops do; the `cuda` feature forwards to candle's CUDA backend, and this crate is
//! the home of device-specific custom ops.
#![warn(missing_docs)]

pub mod adam;
pub mod checkpoint;
pub mod error;
pub mod host_op;
pub mod memory;
pub mod models;
pub mod nn;
pub mod ops;
pub mod train;

pub use error::ComputeError;
