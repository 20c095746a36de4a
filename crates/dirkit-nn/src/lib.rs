//! # dirkit-nn
//!
//! dirkit on [Candle](https://github.com/huggingface/candle): feature distribution smoothing
//! ([`fds`]), regression losses ([`loss`]) and the regression head that wires them to any
//! backbone ([`head`]), ResNet backbones ([`models`]) and the CPU kernels that make them train at
//! a useful speed on a CPU ([`ops`]). Every function takes tensors on any candle `Device`; the
//! `cuda` feature forwards to candle's CUDA backend and no code path is CUDA-only.
#![warn(missing_docs)]

pub mod adam;
pub mod binned;
pub mod checkpoint;
pub mod error;
pub mod fds;
pub mod head;
pub mod host_op;
pub mod loss;
pub mod models;
pub mod ops;
pub mod train;

pub use error::NnError;
