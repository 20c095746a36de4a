//! Hyper-parameters of a [`ResNet`](super::ResNet) backbone: block layout, width, stem and
//! input channels, with torchvision's presets and a narrow low-resolution CPU variant.

use serde::{Deserialize, Serialize};

use crate::error::{ComputeError, bad};

/// Block type and number of blocks per stage (He et al. 2016, table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResNetDepth {
    /// ResNet-18: basic blocks (two 3×3 convolutions), [2, 2, 2, 2].
    R18,
    /// ResNet-34: basic blocks, [3, 4, 6, 3].
    R34,
    /// ResNet-50: bottleneck blocks (1×1, 3×3, 1×1, expansion 4), [3, 4, 6, 3]; the stride is on
    /// the 3×3 convolution (torchvision's "ResNet v1.5").
    R50,
}

impl ResNetDepth {
    /// Number of blocks in each of the four stages.
    pub fn blocks(self) -> [usize; 4] {
        match self {
            Self::R18 => [2, 2, 2, 2],
            Self::R34 | Self::R50 => [3, 4, 6, 3],
        }
    }

    /// Whether the blocks are bottlenecks (else basic blocks).
    pub fn bottleneck(self) -> bool {
        matches!(self, Self::R50)
    }

    /// Ratio of a block's output channels to its inner width: 1 (basic) or 4 (bottleneck).
    pub fn expansion(self) -> usize {
        if self.bottleneck() { 4 } else { 1 }
    }
}

/// The layers before the first stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stem {
    /// torchvision's: 7×7 convolution stride 2 padding 3, batch norm, ReLU, 3×3 max pool stride
    /// 2 padding 1 — a 4× reduction, for ImageNet-size inputs (≥ 112 px; 224 px in DIR's
    /// IMDB-WIKI and AgeDB recipes).
    ImageNet,
    /// 3×3 convolution stride 1 padding 1, batch norm, ReLU, no pool (the CIFAR-style stem) —
    /// keeps the resolution, for 32–64 px inputs.
    Small,
}

/// Configuration of a [`ResNet`](super::ResNet). Stage `i` (0-based) has `width · 2^i` inner
/// channels and `width · 2^i · expansion` output channels; the features are the last stage's
/// output channels after global average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Block type and layout.
    pub depth: ResNetDepth,
    /// Base channel count: the stem's output and the first stage's inner width (torchvision: 64).
    pub width: usize,
    /// The stem.
    pub stem: Stem,
    /// Input image channels (3 for RGB).
    pub in_channels: usize,
}

impl ResNetConfig {
    /// torchvision's ResNet-18 without its classifier: 11,176,512 trainable parameters,
    /// 512 features.
    pub fn resnet18() -> Self {
        Self {
            depth: ResNetDepth::R18,
            width: 64,
            stem: Stem::ImageNet,
            in_channels: 3,
        }
    }

    /// torchvision's ResNet-34 without its classifier: 21,284,672 trainable parameters,
    /// 512 features.
    pub fn resnet34() -> Self {
        Self {
            depth: ResNetDepth::R34,
            ..Self::resnet18()
        }
    }

    /// torchvision's ResNet-50 without its classifier (the DIR papers' IMDB-WIKI-DIR and
    /// AgeDB-DIR backbone): 23,508,032 trainable parameters, 2048 features.
    pub fn resnet50() -> Self {
        Self {
            depth: ResNetDepth::R50,
            ..Self::resnet18()
        }
    }

    /// A narrow ResNet-18 for 32–64 px inputs that trains on a CPU: small stem, width 16,
    /// 700,176 trainable parameters (about 1/16 of ResNet-18), 128 features.
    pub fn cpu_small() -> Self {
        Self {
            depth: ResNetDepth::R18,
            width: 16,
            stem: Stem::Small,
            in_channels: 3,
        }
    }

    /// Size of the feature vector the backbone returns: `8 · width · expansion`
    /// (512 for ResNet-18/34, 2048 for ResNet-50).
    pub fn feature_dim(&self) -> usize {
        8 * self.width * self.depth.expansion()
    }

    /// Checks that the width and input channels are positive.
    pub fn validate(&self) -> Result<(), ComputeError> {
        if self.width == 0 {
            return Err(bad("width", self.width, "at least 1"));
        }
        if self.in_channels == 0 {
            return Err(bad("in_channels", self.in_channels, "at least 1"));
        }
        Ok(())
    }
}
