//! # dirkit-nn
//!
//! The deep-imbalanced-regression methods on [Candle](https://github.com/huggingface/candle):
//! feature distribution smoothing ([`fds`]), regression losses ([`loss`]), discretized-label
//! learning ([`binned`]) and the heads that wire them to any backbone ([`head`],
//! [`binned::BinnedHead`]), with the checkpoint state of each. Every function takes tensors on
//! any candle `Device`; the `cuda` feature forwards to candle's CUDA backend and no code path
//! is CUDA-only.
//!
//! The generic training compute these build on — CPU kernels, the work-sized [`matmul`] and
//! [`Linear`] layer, ResNet backbones, Adam, checkpoints — is the `dirkit-compute` crate.
//!
//! [`matmul`]: dirkit_compute::ops::matmul
//! [`Linear`]: dirkit_compute::nn::Linear
#![warn(missing_docs)]

pub mod binned;
pub mod error;
pub mod fds;
pub mod head;
pub mod loss;

pub use error::NnError;
