//! torchvision's ResNet initialisation from a seed, and the variables an optimiser should see.

use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use dirkit_core::rng::SplitMix64;

/// Suffixes of batch norm's running statistics: state, not parameters.
const RUNNING_STATS: [&str; 2] = ["running_mean", "running_var"];

/// torchvision's `ResNet.__init__` initialisation, drawn from [`SplitMix64`] so it is the same on
/// every run and device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetInit {
    /// Seed of the single stream the convolution weights are drawn from, in name order.
    pub seed: u64,
    /// Start each residual block's last batch-norm scale at 0, so every block begins as the
    /// identity (Goyal et al. 2017; torchvision's `zero_init_residual`, default false).
    pub zero_init_residual: bool,
}

impl ResNetInit {
    /// torchvision's defaults (`zero_init_residual = false`) with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            zero_init_residual: false,
        }
    }

    /// Re-initialises the variables of `varmap`, visited in sorted name order:
    /// 4-D (convolution) weights `N(0, 2 / fan_out)` with `fan_out = out_ch · kh · kw` (Kaiming
    /// normal, fan-out mode, ReLU gain); batch-norm scales 1 (0 for a block's last one with
    /// `zero_init_residual`), shifts 0, running means 0 and variances 1. A batch norm is
    /// recognised by its `running_mean` sibling; other variables (a linear head's) are left
    /// unchanged — give them [`seeded_init`](crate::train::seeded_init) first if needed, since
    /// that one overwrites convolution weights too.
    pub fn apply(&self, varmap: &VarMap) -> candle_core::Result<()> {
        let data = varmap
            .data()
            .lock()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let mut rng = SplitMix64::new(self.seed);
        for name in names {
            let var = &data[name];
            let dims = var.dims().to_vec();
            let n: usize = dims.iter().product();
            let (stem, leaf) = name.rsplit_once('.').unwrap_or(("", name.as_str()));
            let exists = |full: &str| data.contains_key(full);
            if dims.len() == 4 {
                let std = (2.0 / (dims[0] * dims[2] * dims[3]) as f64).sqrt();
                let values: Vec<f64> = (0..n).map(|_| rng.normal() * std).collect();
                let t = Tensor::from_vec(values, dims.as_slice(), var.device())?;
                var.set(&t.to_dtype(var.dtype())?)?;
                continue;
            }
            if dims.len() != 1 || !exists(&join(stem, "running_mean")) {
                continue;
            }
            let value = match leaf {
                "running_mean" | "bias" => 0.0,
                "running_var" => 1.0,
                "weight" if self.zero_init_residual && is_last_block_norm(stem, &exists) => 0.0,
                "weight" => 1.0,
                _ => continue,
            };
            let t = Tensor::full(value, n, var.device())?.to_dtype(var.dtype())?;
            var.set(&t)?;
        }
        Ok(())
    }
}

/// `stem.leaf`, or `leaf` at the root.
fn join(stem: &str, leaf: &str) -> String {
    if stem.is_empty() {
        leaf.to_string()
    } else {
        format!("{stem}.{leaf}")
    }
}

/// Whether the batch norm at path `norm_path` is the last of a residual block:
/// `…layer<k>.<j>.bn3`, or `…layer<k>.<j>.bn2` in a block without `bn3` (a basic block).
/// `exists` tells whether a variable of that full name is in the map.
fn is_last_block_norm(norm_path: &str, exists: &dyn Fn(&str) -> bool) -> bool {
    let Some((block, norm)) = norm_path.rsplit_once('.') else {
        return false;
    };
    let (layer, index) = block.rsplit_once('.').unwrap_or(("", block));
    let layer = layer.rsplit('.').next().unwrap_or("");
    let in_block = layer.starts_with("layer") && index.parse::<usize>().is_ok();
    in_block && (norm == "bn3" || (norm == "bn2" && !exists(&join(block, "bn3.weight"))))
}

/// torchvision's initialisation ([`ResNetInit::new`]) of every ResNet variable in `varmap` from
/// `seed`; see [`ResNetInit::apply`].
pub fn init_resnet(varmap: &VarMap, seed: u64) -> candle_core::Result<()> {
    ResNetInit::new(seed).apply(varmap)
}

/// The variables of `varmap` an optimiser should update, sorted by name: all but batch norm's
/// running statistics, which `VarMap::all_vars` also returns (weight decay or a stray gradient
/// would corrupt them).
pub fn trainable_vars(varmap: &VarMap) -> Vec<Var> {
    let data = match varmap.data().lock() {
        Ok(d) => d,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut named: Vec<(&String, &Var)> = data
        .iter()
        .filter(|(name, _)| !RUNNING_STATS.iter().any(|s| name.ends_with(s)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().map(|(_, v)| v.clone()).collect()
}
