//! Regression losses: weighted and focal element-wise losses, Balanced MSE (BMC, GAI, BNI),
//! GHM-R, the RankSim and ConR regularisers, the Rank-N-Contrast loss, and the uncertainty
//! heads of UVOTE (Laplace ensemble) and VIR (evidential). Free functions over `&Tensor`
//! returning a scalar tensor, in the style of `candle_nn::loss`, and the heads' types.

pub mod balanced_mse;
pub mod conr;
pub mod elementwise;
pub mod ghm;
pub mod prm;
pub mod ranksim;
pub mod rnc;
pub mod uvote;
pub mod vir;
