//! Backbones for the examples: ResNet-18/34/50 (torchvision's layouts and initialisation) and a
//! narrow low-resolution ResNet-18 that trains on a CPU, with what Candle lacks to train them —
//! a max pool with an exact gradient, seeded initialisation and the optimiser's variable list.
//!
//! ```no_run
//! # use candle_core::{DType, Device, Tensor};
//! # use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
//! use dirkit_compute::models::{ResNet, ResNetConfig, init_resnet, trainable_vars};
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let net = ResNet::new(ResNetConfig::cpu_small(), vb.pp("backbone"))?;
//! init_resnet(&varmap, 0)?;
//! let mut opt = AdamW::new(trainable_vars(&varmap), ParamsAdamW::default())?;
//! let images = Tensor::zeros((8, 3, 32, 32), DType::F32, &Device::Cpu)?;
//! let features = net.forward_t(&images, true)?; // (8, 128)
//! # let loss = features.sum_all()?;
//! opt.backward_step(&loss)?;
//! # Ok(()) }
//! ```

mod config;
mod init;
mod pool;
mod resnet;

pub use config::{ResNetConfig, ResNetDepth, Stem};
pub use init::{ResNetInit, init_resnet, trainable_vars};
pub use pool::{max_pool2d, max_pool2d_shifted};
pub use resnet::{BATCH_NORM, ResNet, batch_norm};
