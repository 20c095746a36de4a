//! ResNet backbones: shapes and parameter counts against torchvision, the max pool's forward
//! against candle's and its gradient against finite differences, batch norm's two modes,
//! seeded initialisation and one optimiser step.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{AdamW, ModuleT, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use dirkit_compute::models::{
    ResNet, ResNetConfig, ResNetDepth, ResNetInit, Stem, batch_norm, init_resnet, max_pool2d,
    max_pool2d_shifted, trainable_vars,
};
use dirkit_core::rng::SplitMix64;

const CPU: Device = Device::Cpu;

/// Uniform values in [lo, hi) from `seed`.
fn uniforms(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect()
}

/// A tensor of seeded uniform values in [-1, 1).
fn random(dims: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let n = dims.iter().product();
    Tensor::from_vec(uniforms(n, seed, -1.0, 1.0), dims, &CPU)?.to_dtype(dtype)
}

/// A (N, C, H, W) f64 tensor whose values are a shuffled 0.01-spaced grid: no ties, and a gap
/// far wider than the finite-difference step.
fn distinct(dims: [usize; 4], seed: u64) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let mut values: Vec<f64> = (0..n).map(|i| 0.01 * i as f64 - 0.005 * n as f64).collect();
    SplitMix64::new(seed).shuffle(&mut values);
    Tensor::from_vec(values, &dims, &CPU)
}

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (mean, v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n)
}

/// ∂ sum(y) / ∂ x.
fn grad_of_sum(y: &Tensor, x: &Var) -> Result<Vec<f64>> {
    let grads = y.sum_all()?.backward()?;
    flat(grads.get(x).expect("x takes part in y"))
}

fn build(config: ResNetConfig, prefix: &str, seed: u64) -> Result<(VarMap, ResNet)> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &CPU);
    let vb = if prefix.is_empty() { vb } else { vb.pp(prefix) };
    let net = ResNet::new(config, vb)?;
    init_resnet(&vm, seed)?;
    Ok((vm, net))
}

/// Every variable of `vm` by name, as f64 vectors.
fn snapshot(vm: &VarMap) -> Result<HashMap<String, Vec<f64>>> {
    let data = vm.data().lock().expect("lock");
    data.iter()
        .map(|(k, v)| Ok((k.clone(), flat(v)?)))
        .collect()
}

fn is_running(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

#[test]
fn presets_return_pooled_features_of_the_documented_size() -> Result<()> {
    let narrow_r50 = ResNetConfig {
        stem: Stem::Small,
        width: 8,
        ..ResNetConfig::resnet50()
    };
    let cases = [
        (ResNetConfig::cpu_small(), [2, 3, 32, 32], 128),
        (ResNetConfig::resnet18(), [2, 3, 64, 64], 512),
        (ResNetConfig::resnet50(), [1, 3, 64, 64], 2048),
        (narrow_r50, [2, 3, 32, 32], 256),
    ];
    for (config, dims, features) in cases {
        let (_, net) = build(config, "", 0)?;
        assert_eq!(net.feature_dim(), features);
        let x = random(&dims, 1, DType::F32)?;
        for train in [true, false] {
            let y = net.forward_t(&x, train)?;
            assert_eq!(y.dims(), [dims[0], features], "{config:?} train={train}");
            assert!(flat(&y)?.iter().all(|v| v.is_finite() && *v >= 0.0));
        }
    }
    Ok(())
}

#[test]
fn parameter_counts_equal_torchvision_without_fc() -> Result<()> {
    let cases = [
        (ResNetConfig::resnet18(), 11_176_512),
        (ResNetConfig::resnet34(), 21_284_672),
        (ResNetConfig::resnet50(), 23_508_032),
        (ResNetConfig::cpu_small(), 700_176),
    ];
    for (config, expected) in cases {
        let vm = VarMap::new();
        ResNet::new(config, VarBuilder::from_varmap(&vm, DType::F32, &CPU))?;
        let count: usize = trainable_vars(&vm).iter().map(|v| v.elem_count()).sum();
        assert_eq!(count, expected, "{:?}", config.depth);
        // The running statistics are as many as the batch-norm scales and shifts together.
        let data = vm.data().lock().expect("lock");
        let (mut running, mut norm_affine) = (0, 0);
        for (name, var) in data.iter() {
            if is_running(name) {
                running += var.elem_count();
            } else if var.rank() == 1 {
                norm_affine += var.elem_count();
            }
        }
        assert_eq!(running, norm_affine);
    }
    Ok(())
}

#[test]
fn variable_names_follow_torchvision() -> Result<()> {
    let vm = VarMap::new();
    ResNet::new(
        ResNetConfig::resnet50(),
        VarBuilder::from_varmap(&vm, DType::F32, &CPU),
    )?;
    let data = vm.data().lock().expect("lock");
    let shapes: [(&str, &[usize]); 6] = [
        ("conv1.weight", &[64, 3, 7, 7]),
        ("bn1.running_var", &[64]),
        ("layer1.0.downsample.1.bias", &[256]),
        ("layer2.0.conv2.weight", &[128, 128, 3, 3]),
        ("layer3.5.conv3.weight", &[1024, 256, 1, 1]),
        ("layer4.0.downsample.0.weight", &[2048, 1024, 1, 1]),
    ];
    for (name, dims) in shapes {
        assert_eq!(data.get(name).map(|v| v.dims()), Some(dims), "{name}");
    }
    assert!(!data.contains_key("layer1.1.downsample.0.weight"));
    Ok(())
}

#[test]
fn invalid_configs_and_inputs_are_refused() -> Result<()> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &CPU);
    let small = ResNetConfig::cpu_small();
    let zero_width = ResNetConfig { width: 0, ..small };
    assert!(zero_width.validate().is_err());
    assert!(ResNet::new(zero_width, vb.pp("a")).is_err());
    let no_channels = ResNetConfig {
        in_channels: 0,
        ..small
    };
    assert!(no_channels.validate().is_err());
    assert!(small.validate().is_ok());
    let net = ResNet::new(ResNetConfig { width: 2, ..small }, vb.pp("b"))?;
    assert!(
        net.forward_t(&random(&[1, 1, 8, 8], 0, DType::F32)?, false)
            .is_err()
    );
    assert!(
        net.forward_t(&random(&[3, 8, 8], 0, DType::F32)?, false)
            .is_err()
    );
    let x = random(&[1, 1, 4, 4], 0, DType::F64)?;
    assert!(max_pool2d(&x, 3, 2, 2).is_err(), "padding above k/2");
    assert!(max_pool2d(&x, 0, 1, 0).is_err());
    assert!(max_pool2d(&x, 2, 0, 0).is_err());
    assert!(
        max_pool2d(&x, 5, 1, 0).is_err(),
        "window larger than the input"
    );
    Ok(())
}

/// Candle's pool (no padding) on the input padded with −∞: PyTorch's padded max pool.
fn candle_pool(x: &Tensor, k: usize, s: usize, p: usize) -> Result<Tensor> {
    let mut x = x.clone();
    if p > 0 {
        for dim in [2, 3] {
            let mut dims = x.dims().to_vec();
            dims[dim] = p;
            let pad = Tensor::full(f64::NEG_INFINITY, dims, &CPU)?.to_dtype(x.dtype())?;
            x = Tensor::cat(&[&pad, &x, &pad], dim)?;
        }
    }
    x.max_pool2d_with_stride(k, s)
}

/// (kernel, stride, padding): the stem's, overlapping, tiling, gapped and padded windows.
const WINDOWS: [(usize, usize, usize); 7] = [
    (3, 2, 1),
    (3, 2, 0),
    (2, 2, 0),
    (3, 1, 1),
    (2, 1, 1),
    (5, 3, 2),
    (1, 2, 0),
];

#[test]
fn max_pool_forward_equals_candles() -> Result<()> {
    for (i, &(k, s, p)) in WINDOWS.iter().enumerate() {
        for dtype in [DType::F32, DType::F64] {
            let x = random(&[2, 3, 7, 9], i as u64, dtype)?;
            let expected = candle_pool(&x, k, s, p)?;
            for ours in [max_pool2d(&x, k, s, p)?, max_pool2d_shifted(&x, k, s, p)?] {
                assert_eq!(ours.dims(), expected.dims(), "k={k} s={s} p={p}");
                assert_eq!(ours.dtype(), dtype);
                assert_eq!(flat(&ours)?, flat(&expected)?, "k={k} s={s} p={p}");
            }
        }
    }
    // A non-contiguous input is read correctly.
    let x = random(&[2, 3, 9, 7], 9, DType::F32)?.transpose(2, 3)?;
    let expected = candle_pool(&x.contiguous()?, 3, 2, 1)?;
    assert_eq!(flat(&max_pool2d(&x, 3, 2, 1)?)?, flat(&expected)?);
    Ok(())
}

type Pool = fn(&Tensor, usize, usize, usize) -> Result<Tensor>;

#[test]
fn max_pool_gradient_matches_central_differences() -> Result<()> {
    let pools: [(&str, Pool); 2] = [("cpu op", max_pool2d), ("shifted", max_pool2d_shifted)];
    for (i, &(k, s, p)) in WINDOWS.iter().enumerate() {
        let x = distinct([2, 3, 7, 9], 10 + i as u64)?;
        let w = random(candle_pool(&x, k, s, p)?.dims(), 20 + i as u64, DType::F64)?;
        for (name, pool) in pools {
            let loss = |x: &Tensor| (pool(x, k, s, p)? * &w)?.sum_all();
            let var = Var::from_tensor(&x)?;
            let grads = loss(var.as_tensor())?.backward()?;
            let analytic = flat(grads.get(&var).expect("gradient"))?;
            let base = flat(&x)?;
            let h = 1e-4;
            for (j, &g) in analytic.iter().enumerate() {
                let shifted = |d: f64| -> Result<f64> {
                    let mut v = base.clone();
                    v[j] += d;
                    loss(&Tensor::from_vec(v, x.dims(), &CPU)?)?.to_scalar()
                };
                let numeric = (shifted(h)? - shifted(-h)?) / (2.0 * h);
                assert!(
                    (numeric - g).abs() < 1e-8,
                    "{name} k={k} s={s} p={p} element {j}: {numeric} vs {g}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn max_pool_gradient_is_not_candles_scaled_one() -> Result<()> {
    let var = Var::from_tensor(&distinct([1, 2, 8, 8], 3)?)?;
    // Candle 0.11.1 refuses the stem's overlapping window outright…
    let theirs = var.as_tensor().max_pool2d_with_stride(3, 2)?;
    assert!(theirs.sum_all()?.backward().is_err());
    // …and for kernel == stride multiplies the gradient by (maxima in the window) / k², i.e.
    // 1/4 here: every output should send exactly its gradient of 1 to its maximum.
    let g_theirs = grad_of_sum(&var.as_tensor().max_pool2d_with_stride(2, 2)?, &var)?;
    let ours = max_pool2d(var.as_tensor(), 2, 2, 0)?;
    let g_ours = grad_of_sum(&ours, &var)?;
    assert_eq!(g_ours.iter().sum::<f64>(), ours.elem_count() as f64);
    let quarter: Vec<f64> = g_ours.iter().map(|g| g / 4.0).collect();
    assert!(close(&quarter, &g_theirs, 1e-12));
    // On ties the CPU op, like PyTorch, credits only a window's first maximum.
    let ties = Var::from_tensor(&Tensor::ones((1, 1, 5, 5), DType::F64, &CPU)?)?;
    let y = max_pool2d(ties.as_tensor(), 3, 2, 1)?;
    let g = grad_of_sum(&y, &ties)?;
    assert_eq!(g.iter().sum::<f64>(), y.elem_count() as f64);
    // Row 0 is read by the windows over columns 0..2, 1..4 and 3..5 (padding excluded).
    assert_eq!(&g[..5], &[1.0, 1.0, 0.0, 1.0, 0.0]);
    Ok(())
}

#[test]
fn batch_norm_train_mode_uses_batch_stats_and_updates_running_ones() -> Result<()> {
    let vm = VarMap::new();
    let bn = batch_norm(3, VarBuilder::from_varmap(&vm, DType::F64, &CPU).pp("bn"))?;
    // Channel c has mean ≈ c and a spread growing with c.
    let offsets = Tensor::new(&[0.0f64, 1.0, 2.0], &CPU)?.reshape((1, 3, 1, 1))?;
    let scales = Tensor::new(&[0.5f64, 1.0, 3.0], &CPU)?.reshape((1, 3, 1, 1))?;
    let x = random(&[4, 3, 5, 5], 4, DType::F64)?
        .broadcast_mul(&scales)?
        .broadcast_add(&offsets)?;
    let channel = |t: &Tensor, c: usize| flat(&t.narrow(1, c, 1)?);
    let running = |name: &str| flat(&vm.data().lock().expect("lock")[name]);
    let y = bn.forward_t(&x, true)?;
    let (rm, rv) = (running("bn.running_mean")?, running("bn.running_var")?);
    for c in 0..3 {
        let xs = channel(&x, c)?;
        let n = xs.len() as f64;
        let (mean, var) = mean_var(&xs);
        let (y_mean, y_var) = mean_var(&channel(&y, c)?);
        assert!(y_mean.abs() < 1e-12, "channel {c}: mean {y_mean}");
        assert!(
            (y_var - var / (var + 1e-5)).abs() < 1e-12,
            "channel {c}: var {y_var}"
        );
        assert!((rm[c] - 0.1 * mean).abs() < 1e-12);
        assert!((rv[c] - (0.9 + 0.1 * var * n / (n - 1.0))).abs() < 1e-12);
    }
    // Evaluation mode normalises with the running statistics and leaves them alone.
    let y = bn.forward_t(&x, false)?;
    for c in 0..3 {
        let expected: Vec<f64> = channel(&x, c)?
            .iter()
            .map(|v| (v - rm[c]) / (rv[c] + 1e-5).sqrt())
            .collect();
        assert!(close(&expected, &channel(&y, c)?, 1e-12));
    }
    assert_eq!(running("bn.running_mean")?, rm);
    Ok(())
}

#[test]
fn train_mode_moves_running_stats_and_eval_mode_is_per_sample() -> Result<()> {
    let config = ResNetConfig {
        width: 4,
        ..ResNetConfig::cpu_small()
    };
    let (vm, net) = build(config, "net", 5)?;
    let x = random(&[4, 3, 16, 16], 6, DType::F32)?;
    let before = snapshot(&vm)?;
    let eval = net.forward_t(&x, false)?;
    assert_eq!(snapshot(&vm)?, before, "evaluation changed a variable");
    let single = net.forward_t(&x.narrow(0, 1, 1)?, false)?;
    assert!(close(&flat(&single)?, &flat(&eval.narrow(0, 1, 1)?)?, 1e-5));
    let train = net.forward_t(&x, true)?;
    for (name, values) in &snapshot(&vm)? {
        assert_eq!(values != &before[name], is_running(name), "{name}");
    }
    assert!(!close(&flat(&train)?, &flat(&eval)?, 1e-3));
    Ok(())
}

#[test]
fn one_adamw_step_lowers_the_l1_loss_of_a_linear_head() -> Result<()> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &CPU);
    let net = ResNet::new(ResNetConfig::cpu_small(), vb.pp("backbone"))?;
    let head = candle_nn::linear(net.feature_dim(), 1, vb.pp("head"))?;
    dirkit_compute::train::seeded_init(&vm, 11)?;
    init_resnet(&vm, 11)?;
    let x = random(&[8, 3, 32, 32], 12, DType::F32)?;
    let y = Tensor::from_vec(uniforms(8, 13, 0.5, 1.5), (8, 1), &CPU)?.to_dtype(DType::F32)?;
    let loss = || {
        (net.forward_t(&x, true)?.apply(&head)? - &y)?
            .abs()?
            .mean_all()
    };
    let vars = trainable_vars(&vm);
    assert_eq!(vars.len(), 20 + 2 * 20 + 2, "convolutions, norms, head");
    let mut opt = AdamW::new(vars, ParamsAdamW::default())?;
    let first = loss()?;
    let l0: f32 = first.to_scalar()?;
    opt.backward_step(&first)?;
    let l1: f32 = loss()?.to_scalar()?;
    assert!(l1 < l0, "loss {l0} -> {l1}");
    Ok(())
}

#[test]
fn init_is_seeded_and_follows_torchvision() -> Result<()> {
    let (vm_a, _) = build(ResNetConfig::cpu_small(), "", 7)?;
    let (vm_b, net) = build(ResNetConfig::cpu_small(), "", 7)?;
    let (vm_c, _) = build(ResNetConfig::cpu_small(), "", 8)?;
    let (a, c) = (snapshot(&vm_a)?, snapshot(&vm_c)?);
    assert_eq!(a, snapshot(&vm_b)?);
    assert_ne!(a["layer1.0.conv1.weight"], c["layer1.0.conv1.weight"]);
    // Re-initialising after a training pass resets the running statistics.
    net.forward_t(&random(&[2, 3, 8, 8], 0, DType::F32)?, true)?;
    init_resnet(&vm_b, 7)?;
    assert_eq!(a, snapshot(&vm_b)?);
    for (name, values) in &a {
        let expected = match name.rsplit('.').next() {
            Some("running_mean" | "bias") => 0.0,
            Some("running_var") => 1.0,
            Some("weight") if values.len() <= 128 => 1.0,
            _ => continue,
        };
        assert!(values.iter().all(|v| *v == expected), "{name}");
    }
    // Kaiming normal, fan-out: std √(2 / (out_ch·kh·kw)), within ≈ 4 standard errors of a
    // sample std (≥ 432 draws) plus 1 %.
    let fan_out = [
        ("layer4.1.conv2", 128 * 9),
        ("layer3.0.conv1", 64 * 9),
        ("conv1", 16 * 9),
    ];
    for (layer, fan_out) in fan_out {
        let v = &a[&format!("{layer}.weight")];
        let n = v.len() as f64;
        let (mean, var) = mean_var(v);
        let expected = (2.0 / fan_out as f64).sqrt();
        let tol = 4.0 / (2.0 * n).sqrt() + 0.01;
        assert!(
            (var.sqrt() / expected - 1.0).abs() < tol,
            "{layer}: {var} vs {expected}²"
        );
        assert!(
            mean.abs() < 4.0 * expected / n.sqrt(),
            "{layer}: mean {mean}"
        );
    }
    Ok(())
}

#[test]
fn zero_init_residual_zeroes_each_blocks_last_norm_scale() -> Result<()> {
    for (depth, last, other) in [
        (ResNetDepth::R18, "bn2", "bn1"),
        (ResNetDepth::R50, "bn3", "bn2"),
    ] {
        let config = ResNetConfig {
            depth,
            width: 4,
            stem: Stem::Small,
            in_channels: 3,
        };
        let (vm, _) = build(config, "backbone", 1)?;
        let init = ResNetInit {
            zero_init_residual: true,
            ..ResNetInit::new(1)
        };
        init.apply(&vm)?;
        let s = snapshot(&vm)?;
        let all = |name: String, value: f64| s[&name].iter().all(|v| *v == value);
        for block in ["layer1.0", "layer2.1", "layer4.1"] {
            assert!(
                all(format!("backbone.{block}.{last}.weight"), 0.0),
                "{depth:?} {block}"
            );
            assert!(
                all(format!("backbone.{block}.{other}.weight"), 1.0),
                "{depth:?} {block}"
            );
        }
        assert!(all("backbone.bn1.weight".into(), 1.0));
        assert!(all("backbone.layer2.0.downsample.1.weight".into(), 1.0));
    }
    Ok(())
}

#[test]
fn trainable_vars_exclude_running_stats() -> Result<()> {
    let (vm, _) = build(ResNetConfig::cpu_small(), "", 0)?;
    let running: Vec<_> = {
        let data = vm.data().lock().expect("lock");
        let running = data.iter().filter(|(k, _)| is_running(k));
        running.map(|(_, v)| v.as_tensor().id()).collect()
    };
    let vars = trainable_vars(&vm);
    assert_eq!(running.len(), 2 * 20, "20 batch norms");
    assert_eq!(vars.len() + running.len(), vm.all_vars().len());
    assert!(vars.iter().all(|v| !running.contains(&v.as_tensor().id())));
    Ok(())
}
