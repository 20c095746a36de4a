//! ResNet backbones (He et al. 2016) that train in Candle: batch norm in training mode with
//! running statistics, an exact max-pool gradient, and torchvision's variable names
//! (`conv1`, `bn1`, `layer1.0.conv1`, …, `layer2.0.downsample.0`), so torchvision weights saved
//! as safetensors load into the same [`VarMap`](candle_nn::VarMap) names (without `fc`).
//!
//! The layers keep candle's `Conv2d` and `BatchNorm` as holders of the variables but run
//! through [`crate::ops`]: on the CPU its im2col + GEMM convolution, batch norm with the ReLU
//! fused and the fused residual join, elsewhere candle's own ops.

use candle_core::Tensor;
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ModuleT, VarBuilder};

use super::config::{ResNetConfig, Stem};
use super::pool::max_pool2d;
use crate::error::ComputeError;
use crate::ops::{self, Activation};

/// PyTorch's `nn.BatchNorm2d` defaults: ε = 1e-5, momentum 0.1, learnable scale and shift.
pub const BATCH_NORM: BatchNormConfig = BatchNormConfig {
    eps: 1e-5,
    remove_mean: true,
    affine: true,
    momentum: 0.1,
};

/// A `BatchNorm2d` over `channels` with [`BATCH_NORM`]'s settings: in training mode it
/// normalises with the batch's statistics (biased variance) and updates the running ones
/// (`r ← 0.9·r + 0.1·batch`, unbiased variance); in evaluation mode it uses the running ones.
/// Its variables are `weight`, `bias`, `running_mean` and `running_var` under `vb`.
pub fn batch_norm(channels: usize, vb: VarBuilder) -> candle_core::Result<BatchNorm> {
    candle_nn::batch_norm(channels, BATCH_NORM, vb)
}

/// A bias-free convolution followed by batch norm (torchvision's pairing; the norm's shift
/// makes a bias redundant).
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    /// `k × k` convolution `c_in → c_out` at `stride`, padding `k / 2`, variables under `conv`
    /// and `bn`.
    fn new(
        (c_in, c_out, k, stride): (usize, usize, usize, usize),
        conv: VarBuilder,
        bn: VarBuilder,
    ) -> candle_core::Result<Self> {
        let cfg = Conv2dConfig {
            padding: k / 2,
            stride,
            ..Default::default()
        };
        Ok(Self {
            conv: candle_nn::conv2d_no_bias(c_in, c_out, k, cfg, conv)?,
            bn: batch_norm(c_out, bn)?,
        })
    }

    /// Convolution, batch norm (batch statistics and running-statistics update when `train`),
    /// then `act`.
    fn forward_t(&self, x: &Tensor, train: bool, act: Activation) -> candle_core::Result<Tensor> {
        let cfg = self.conv.config();
        let y = ops::conv2d(x, self.conv.weight(), cfg.stride, cfg.padding)?;
        ops::batch_norm_t(&self.bn, &y, train, act)
    }

    /// `max(0, bn(conv(x)) + shortcut)`: a residual block's last layer and join.
    fn forward_join(
        &self,
        x: &Tensor,
        shortcut: &Tensor,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let cfg = self.conv.config();
        let y = ops::conv2d(x, self.conv.weight(), cfg.stride, cfg.padding)?;
        ops::batch_norm_add_relu_t(&self.bn, &y, shortcut, train)
    }
}

/// A residual block: basic (`conv1`–`conv2`) or bottleneck (`conv1`–`conv3`), each
/// convolution followed by its batch norm and all but the last by ReLU, plus the shortcut
/// (identity, or a strided 1×1 convolution with batch norm when the shape changes —
/// torchvision's option B), then ReLU.
#[derive(Debug, Clone)]
struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    /// A block taking `c_in` channels to `inner · expansion` at `stride`.
    fn new(
        (c_in, inner, stride): (usize, usize, usize),
        bottleneck: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        // Layer shapes as (c_in, c_out, kernel, stride); the stride sits on the 3×3 conv.
        let shapes: Vec<(usize, usize, usize, usize)> = if bottleneck {
            vec![
                (c_in, inner, 1, 1),
                (inner, inner, 3, stride),
                (inner, 4 * inner, 1, 1),
            ]
        } else {
            vec![(c_in, inner, 3, stride), (inner, inner, 3, 1)]
        };
        let c_out = shapes[shapes.len() - 1].1;
        let convs = shapes
            .into_iter()
            .enumerate()
            .map(|(i, shape)| {
                let conv = vb.pp(format!("conv{}", i + 1));
                ConvBn::new(shape, conv, vb.pp(format!("bn{}", i + 1)))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let downsample = if stride != 1 || c_in != c_out {
            let ds = vb.pp("downsample");
            Some(ConvBn::new(
                (c_in, c_out, 1, stride),
                ds.pp("0"),
                ds.pp("1"),
            )?)
        } else {
            None
        };
        Ok(Self { convs, downsample })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut y = x.clone();
        let last = self.convs.len() - 1;
        for layer in &self.convs[..last] {
            y = layer.forward_t(&y, train, Activation::Relu)?;
        }
        let shortcut = match &self.downsample {
            Some(ds) => ds.forward_t(x, train, Activation::Identity)?,
            None => x.clone(),
        };
        // The last convolution's norm, the shortcut and the ReLU in one op.
        self.convs[last].forward_join(&y, &shortcut, train)
    }
}

/// A ResNet backbone: stem, four stages of residual blocks (strides 1, 2, 2, 2), global
/// average pooling. Returns the penultimate features (N, [`feature_dim`](Self::feature_dim))
/// for an image batch (N, C, H, W); the classifier is left to the caller (e.g. a
/// [`RegressionHead`](crate::head::RegressionHead)). Build it from a `VarBuilder` over a
/// `VarMap`, initialise with [`init_resnet`](super::init_resnet) and optimise
/// [`trainable_vars`](super::trainable_vars).
#[derive(Debug, Clone)]
pub struct ResNet {
    config: ResNetConfig,
    stem: ConvBn,
    stages: Vec<Vec<Block>>,
}

impl ResNet {
    /// Builds the network's layers under `vb` (variable names as torchvision's) after checking
    /// `config`. Convolution weights start from candle's default initialiser, which cannot be
    /// seeded on the CPU: call [`init_resnet`](super::init_resnet) for torchvision's seeded one.
    pub fn new(config: ResNetConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        config.validate()?;
        let w = config.width;
        let stem = match config.stem {
            Stem::ImageNet => (config.in_channels, w, 7, 2),
            Stem::Small => (config.in_channels, w, 3, 1),
        };
        let stem = ConvBn::new(stem, vb.pp("conv1"), vb.pp("bn1"))?;
        let bottleneck = config.depth.bottleneck();
        let expansion = config.depth.expansion();
        let mut c_in = w;
        let mut stages = Vec::with_capacity(4);
        for (i, &count) in config.depth.blocks().iter().enumerate() {
            let inner = w << i;
            let layer = vb.pp(format!("layer{}", i + 1));
            let mut blocks = Vec::with_capacity(count);
            for j in 0..count {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                blocks.push(Block::new((c_in, inner, stride), bottleneck, layer.pp(j))?);
                c_in = inner * expansion;
            }
            stages.push(blocks);
        }
        Ok(Self {
            config,
            stem,
            stages,
        })
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// Size of the feature vector: `8 · width · expansion` (512 for ResNet-18, 2048 for
    /// ResNet-50, 128 for [`ResNetConfig::cpu_small`]).
    pub fn feature_dim(&self) -> usize {
        self.config.feature_dim()
    }

    /// Features (N, feature_dim) of images `x` (N, in_channels, H, W). `train` selects batch
    /// norm's mode: batch statistics and running-statistics updates (true) or the running
    /// statistics (false, for evaluation and for FDS's statistics pass). On the CPU the images
    /// must be f32 or f64 (the [`ops`](crate::ops) kernels); on other devices any float dtype.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        if dims.len() != 4 || dims[1] != self.config.in_channels {
            return Err(ComputeError::Shape(format!(
                "resnet: images must be (N, {}, H, W), got {:?}",
                self.config.in_channels,
                x.shape()
            ))
            .into());
        }
        let mut y = self.stem.forward_t(x, train, Activation::Relu)?;
        if self.config.stem == Stem::ImageNet {
            y = max_pool2d(&y, 3, 2, 1)?;
        }
        for block in self.stages.iter().flatten() {
            y = block.forward_t(&y, train)?;
        }
        y.mean((2, 3))
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        ResNet::forward_t(self, xs, train)
    }
}
