//! Regression losses: weighted and focal element-wise losses, Balanced MSE (BMC, GAI, BNI),
//! GHM-R and the RankSim regulariser. Free functions over `&Tensor` returning a scalar tensor,
//! in the style of `candle_nn::loss`.

pub mod balanced_mse;
pub mod elementwise;
pub mod ghm;
pub mod ranksim;
