//! Discretised-label learning (methods.md §7): a continuous target binned by dirkit-core
//! becomes a class, and the long-tail classification methods apply — logit adjustment,
//! balanced softmax, LDAM-DRW, class-balanced, focal, GHM-C, ZLPR, truncated cross entropy,
//! soft labels — with priors from the counts or from the LDS effective density, decoders back
//! to a continuous value, decoupled classifier re-balancing, and [`BinnedHead`].
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use dirkit_nn::binned::{ClassPrior, cross_entropy, logit_adjusted_terms};
//! # fn main() -> candle_core::Result<()> {
//! let logits = Tensor::new(&[[2.0f64, -1.0, 0.5], [0.1, 0.3, -0.2]], &Device::Cpu)?;
//! let labels = Tensor::new(&[0u32, 2], &Device::Cpu)?;
//! let prior = ClassPrior::from_counts(&[100.0, 10.0, 1.0])?;
//! let plain = cross_entropy(&logits, &labels)?.to_scalar::<f64>()?;
//! let adjusted = logit_adjusted_terms(&logits, &labels, &prior, 1.0)?.mean_all()?.to_scalar::<f64>()?;
//! assert!(adjusted > plain); // the rare class 2 costs more once the prior is accounted for
//! # Ok(()) }
//! ```

pub mod common;
pub mod decode;
pub mod decouple;
pub mod head;
pub mod loss;
pub mod prior;
pub mod sigmoid;
pub mod soft;
pub mod softmax;

pub use common::{Reduction, reduce};
pub use decode::{Decoder, argmax_bins, decode, decode_tensor};
pub use decouple::{Lws, NearestClassMean, NormedLinear, tau_normalize, trainable_with_prefix};
pub use head::{BinnedHead, BinnedHeadConfig, Classifier, PriorSource};
pub use loss::{BinnedLoss, ClassBalancedKind, TrainingBins};
pub use prior::{ClassPrior, PRIOR_EPS, prior_bias};
pub use sigmoid::{
    GhmC, class_balanced_sigmoid, one_hot_targets, sigmoid_focal_elementwise, zlpr_terms,
};
pub use soft::{
    dldl_v2, expectation, gaussian_soft_labels, mean_variance_loss, soft_label_terms, variance,
};
pub use softmax::{
    Drw, balanced_softmax_terms, class_balanced_weights, cross_entropy, cross_entropy_terms,
    ldam_margins, ldam_repo_focal_terms, ldam_terms, logit_adjusted_terms, pairwise_margin_terms,
    posthoc_adjust, softmax_focal_terms, truncated_ce_terms,
};
