//! The CUDA device against the CPU: every op dirkit's models call, a ResNet training step with
//! dirkit's Adam, and the regression head with FDS and each loss give the same values and
//! gradients on a GPU (candle's CUDA kernels, the tensor-op paths) as on the CPU (dirkit's
//! fused kernels), as do the contrastive and uncertainty losses (RnC, ConR, UVOTE's Laplace NLL,
//! VIR's NIG head and loss, whose host steps round-trip through the CPU). Compiled only with the
//! `cuda` feature and run on a machine with a GPU:
//!
//! ```text
//! cargo test --release --features cuda --test cuda
//! ```
//!
//! (or build with `--no-run` and the shared `cuda-build.sh` environment where there is no GPU,
//! and run the test binary on the GPU machine). Without a GPU every test fails.
#![cfg(feature = "cuda")]

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use dirkit_compute::adam::{Adam, AdamParams};
use dirkit_compute::models::{ResNet, ResNetConfig, init_resnet, max_pool2d};
use dirkit_compute::ops::{self, Activation};
use dirkit_core::{Binning, LabelDensity, LdsConfig, OutOfRange, SplitMix64};
use dirkit_nn::fds::FdsConfig;
use dirkit_nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit_nn::loss::balanced_mse::{
    BalancedMseConfig, BalancedMseVariant, BinPrior, GaussianMixture,
};
use dirkit_nn::loss::conr::{ConrConfig, ConrLoss};
use dirkit_nn::loss::elementwise::{FocalConfig, RegressionLoss};
use dirkit_nn::loss::ghm::GhmRConfig;
use dirkit_nn::loss::ranksim::RankSimConfig;
use dirkit_nn::loss::rnc::{RncConfig, RncLoss};
use dirkit_nn::loss::uvote::laplace_nll;
use dirkit_nn::loss::vir::{VirConfig, nig_from_raw, nig_loss};

fn gpu() -> Device {
    Device::new_cuda(0).expect("this test needs a CUDA GPU")
}

/// Seeded uniform values in [lo, hi).
fn uniforms(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect()
}

/// A CPU tensor of seeded uniform values in [-1, 1).
fn random(dims: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let n = dims.iter().product();
    Tensor::from_vec(uniforms(n, seed, -1.0, 1.0), dims, &Device::Cpu)?.to_dtype(dtype)
}

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
}

/// Asserts that `gpu` equals `cpu` to `tol` relative to the largest |cpu| value (at least 1).
fn assert_close(what: &str, cpu: &Tensor, gpu: &Tensor, tol: f64) -> Result<()> {
    assert_eq!(cpu.dims(), gpu.dims(), "{what}: shapes differ");
    let (a, b) = (flat(cpu)?, flat(gpu)?);
    let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let (i, worst) = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .enumerate()
        .fold(
            (0, 0.0),
            |(bi, bw), (i, d)| if d > bw { (i, d) } else { (bi, bw) },
        );
    assert!(
        worst <= tol * scale && b.iter().all(|v| v.is_finite()),
        "{what}: element {i} is {} on the CPU and {} on the GPU (tolerance {} × {scale})",
        a[i],
        b[i],
        tol
    );
    Ok(())
}

/// Runs `f` on copies of `inputs` on `device`, then backward of `Σ f(inputs) · r` for a fixed
/// random `r`: the output and the gradient of every input.
fn forward_backward(
    inputs: &[Tensor],
    device: &Device,
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<(Tensor, Vec<Tensor>)> {
    let vars = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.to_device(device)?))
        .collect::<Result<Vec<_>>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&tensors)?;
    let r = random(y.dims(), 99, y.dtype())?.to_device(device)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let dx = vars
        .iter()
        .map(|v| {
            grads
                .get(v)
                .expect("input takes part")
                .to_device(&Device::Cpu)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((y.to_device(&Device::Cpu)?, dx))
}

/// `f` on the CPU and on the GPU: outputs and input gradients agree to `tol`.
fn same_on_both(
    name: &str,
    inputs: &[Tensor],
    tol: f64,
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let (y_cpu, g_cpu) = forward_backward(inputs, &Device::Cpu, f)?;
    let (y_gpu, g_gpu) = forward_backward(inputs, &gpu(), f)?;
    assert_close(&format!("{name}: output"), &y_cpu, &y_gpu, tol)?;
    for (i, (a, b)) in g_cpu.iter().zip(&g_gpu).enumerate() {
        assert_close(&format!("{name}: gradient of input {i}"), a, b, tol)?;
    }
    Ok(())
}

#[test]
fn every_op_matches_the_cpu_kernels_forward_and_backward() -> Result<()> {
    let f64_ = DType::F64;
    let x = random(&[4, 5, 9, 7], 1, f64_)?;
    let w3 = random(&[6, 5, 3, 3], 2, f64_)?;
    let w1 = random(&[6, 5, 1, 1], 3, f64_)?;
    for (stride, padding) in [(1, 1), (2, 1), (2, 0)] {
        same_on_both(
            &format!("conv2d 3×3 stride {stride} padding {padding}"),
            &[x.clone(), w3.clone()],
            1e-10,
            &|t| ops::conv2d(&t[0], &t[1], stride, padding),
        )?;
    }
    same_on_both("conv2d 1×1 stride 2", &[x.clone(), w1], 1e-10, &|t| {
        ops::conv2d(&t[0], &t[1], 2, 0)
    })?;
    let (scale, shift) = (random(&[5], 4, f64_)?, random(&[5], 5, f64_)?);
    for act in [Activation::Identity, Activation::Relu] {
        same_on_both(
            &format!("batch norm (train) {act:?}"),
            &[x.clone(), scale.clone(), shift.clone()],
            1e-10,
            &|t| Ok(ops::batch_norm_train(&t[0], &t[1], &t[2], 1e-5, act)?.0),
        )?;
    }
    let residual = random(&[4, 5, 9, 7], 6, f64_)?;
    same_on_both(
        "batch norm + residual + ReLU",
        &[x.clone(), scale, shift, residual.clone()],
        1e-10,
        &|t| Ok(ops::batch_norm_add_relu_train(&t[0], &t[1], &t[2], &t[3], 1e-5)?.0),
    )?;
    same_on_both("relu", std::slice::from_ref(&x), 1e-12, &|t| {
        ops::relu(&t[0])
    })?;
    same_on_both("add_relu", &[x.clone(), residual], 1e-12, &|t| {
        ops::add_relu(&t[0], &t[1])
    })?;
    same_on_both("max_pool2d 3/2/1", &[x], 1e-12, &|t| {
        max_pool2d(&t[0], 3, 2, 1)
    })?;
    let (a, wl, bl) = (
        random(&[7, 13], 7, f64_)?,
        random(&[5, 13], 8, f64_)?,
        random(&[5], 9, f64_)?,
    );
    same_on_both("linear", &[a, wl, bl], 1e-12, &|t| {
        ops::linear(&t[0], &t[1], Some(&t[2]))
    })?;
    Ok(())
}

/// A network's variables on `device`, copied from `source` (a CPU VarMap with the same names).
fn copy_to(source: &VarMap, target: &VarMap, device: &Device) -> Result<()> {
    let from = source.data().lock().expect("varmap lock");
    let to = target.data().lock().expect("varmap lock");
    assert_eq!(from.len(), to.len());
    for (name, var) in from.iter() {
        to[name].set(&var.as_tensor().to_device(device)?)?;
    }
    Ok(())
}

/// The trainable variables' values by name, on the CPU.
fn values(vm: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = vm.data().lock().expect("varmap lock");
    data.iter()
        .map(|(n, v)| Ok((n.clone(), v.as_tensor().to_device(&Device::Cpu)?)))
        .collect()
}

/// `cpu_small` with a linear head on `device` (f32), variables copied from `init`.
fn small_net(
    device: &Device,
    init: Option<&VarMap>,
) -> Result<(VarMap, ResNet, candle_nn::Linear)> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, device);
    let net = ResNet::new(ResNetConfig::cpu_small(), vb.pp("backbone"))?;
    let head = candle_nn::linear(net.feature_dim(), 1, vb.pp("head"))?;
    match init {
        Some(source) => copy_to(source, &vm, device)?,
        None => {
            dirkit_compute::train::seeded_init(&vm, 0)?;
            init_resnet(&vm, 0)?;
        }
    }
    Ok((vm, net, head))
}

#[test]
fn resnet_training_step_matches_the_cpu() -> Result<()> {
    let gpu = gpu();
    let (vm_cpu, net_cpu, head_cpu) = small_net(&Device::Cpu, None)?;
    let (vm_gpu, net_gpu, head_gpu) = small_net(&gpu, Some(&vm_cpu))?;
    let keep = |name: &str| !name.ends_with("running_mean") && !name.ends_with("running_var");
    let mut opt_cpu = Adam::from_varmap(&vm_cpu, keep, AdamParams::adamw()).expect("adam");
    let mut opt_gpu = Adam::from_varmap(&vm_gpu, keep, AdamParams::adamw()).expect("adam");
    let x = random(&[8, 3, 32, 32], 10, DType::F32)?;
    let y = random(&[8, 1], 20, DType::F32)?;
    let run = |net: &ResNet, head: &candle_nn::Linear, d: &Device| -> Result<_> {
        let features = net.forward_t(&x.to_device(d)?, true)?;
        let loss = (head.forward(&features)? - y.to_device(d)?)?
            .abs()?
            .mean_all()?;
        Ok((features, loss))
    };
    let (f_cpu, l_cpu) = run(&net_cpu, &head_cpu, &Device::Cpu)?;
    let (f_gpu, l_gpu) = run(&net_gpu, &head_gpu, &gpu)?;
    assert_close("features", &f_cpu, &f_gpu, 1e-4)?;
    assert_close("loss", &l_cpu, &l_gpu, 1e-5)?;
    // Train mode moved the running statistics the same way.
    let (before_cpu, before_gpu) = (values(&vm_cpu)?, values(&vm_gpu)?);
    for (name, a) in &before_cpu {
        assert_close(
            &format!("{name} after the forward"),
            a,
            &before_gpu[name],
            1e-5,
        )?;
    }
    let (g_cpu, g_gpu) = (l_cpu.backward()?, l_gpu.backward()?);
    let data_cpu = vm_cpu.data().lock().expect("varmap lock").clone();
    let data_gpu = vm_gpu.data().lock().expect("varmap lock").clone();
    let mut compared = 0;
    for (name, var) in &data_cpu {
        if let Some(a) = g_cpu.get(var) {
            let b = g_gpu.get(&data_gpu[name]).expect("same graph on the GPU");
            assert_close(&format!("gradient of {name}"), a, b, 2e-3)?;
            compared += 1;
        }
    }
    assert!(compared > 60, "only {compared} gradients compared");
    opt_cpu.step(&g_cpu).expect("step");
    opt_gpu.step(&g_gpu).expect("step");
    // Adam's first step moves a parameter by about lr·sign(gradient), so a gradient within
    // rounding of zero may move it the other way on the other device: at most 2·lr apart.
    let (after_cpu, after_gpu) = (values(&vm_cpu)?, values(&vm_gpu)?);
    for (name, a) in &after_cpu {
        assert_close(
            &format!("{name} after the step"),
            a,
            &after_gpu[name],
            2.0e-3 * 1.05,
        )?;
    }
    Ok(())
}

#[test]
fn adam_on_the_gpu_equals_the_fused_cpu_pass() -> Result<()> {
    let gpu = gpu();
    // One variable above the fused pass's threading threshold (2^18 elements).
    let shapes: [&[usize]; 3] = [&[7], &[33, 65], &[300_000]];
    let coupled = AdamParams {
        weight_decay: 0.05,
        ..AdamParams::default()
    };
    for params in [AdamParams::adamw(), coupled] {
        let mut runs = Vec::new();
        for device in [Device::Cpu, gpu.clone()] {
            let vars = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    Var::from_tensor(&random(s, 40 + i as u64, DType::F32)?.to_device(&device)?)
                })
                .collect::<Result<Vec<_>>>()?;
            let named = vars
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("v{i}"), v.clone()))
                .collect();
            let mut opt = Adam::new(named, params).expect("adam");
            for step in 0..4u64 {
                // Loss Σ v·c: the gradient of every variable is the fixed tensor c.
                let mut loss = Tensor::zeros((), DType::F32, &device)?;
                for (i, (v, s)) in vars.iter().zip(shapes).enumerate() {
                    let c = random(s, 100 * step + i as u64, DType::F32)?.to_device(&device)?;
                    loss = (loss + (v.as_tensor() * c)?.sum_all()?)?;
                }
                opt.backward_step(&loss).expect("step");
            }
            runs.push(
                vars.iter()
                    .map(|v| v.as_tensor().to_device(&Device::Cpu))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        for (i, (a, b)) in runs[0].iter().zip(&runs[1]).enumerate() {
            assert_close(&format!("{params:?}: variable {i}"), a, b, 1e-6)?;
        }
    }
    Ok(())
}

/// Every head configuration the examples train with, and whether it takes LDS weights.
fn head_configs(density: &LabelDensity) -> Vec<(&'static str, RegressionHeadConfig, bool)> {
    let base = RegressionHeadConfig::new(32);
    let with = |loss| RegressionHeadConfig {
        loss,
        ..base.clone()
    };
    let pointwise = |l| with(HeadLoss::Pointwise(l));
    let bmse = |variant| {
        with(HeadLoss::BalancedMse(BalancedMseConfig {
            variant,
            init_sigma: 3.0,
        }))
    };
    let gmm = GaussianMixture::new(&[0.6, 0.4], &[30.0, 60.0], &[100.0, 400.0]).expect("gmm");
    let prior = BinPrior::from_label_density(density).expect("prior");
    let focal = FocalConfig::default();
    vec![
        ("L1", pointwise(RegressionLoss::L1), false),
        ("L1 + LDS", pointwise(RegressionLoss::L1), true),
        ("MSE + LDS", pointwise(RegressionLoss::Mse), true),
        (
            "Huber",
            pointwise(RegressionLoss::Huber { beta: 1.0 }),
            false,
        ),
        ("focal-L1", pointwise(RegressionLoss::FocalL1(focal)), false),
        (
            "focal-MSE",
            pointwise(RegressionLoss::FocalMse(focal)),
            false,
        ),
        ("BMC", bmse(BalancedMseVariant::Bmc), false),
        ("GAI", bmse(BalancedMseVariant::Gai(gmm)), false),
        ("BNI", bmse(BalancedMseVariant::Bni(prior)), false),
        ("GHM-R", with(HeadLoss::GhmR(GhmRConfig::default())), false),
        (
            "L1 + FDS",
            RegressionHeadConfig {
                fds: Some(FdsConfig::new(32)),
                ..base.clone()
            },
            false,
        ),
        (
            "L1 + RankSim",
            RegressionHeadConfig {
                ranksim: Some(RankSimConfig::default()),
                ..base.clone()
            },
            false,
        ),
    ]
}

/// A head on `device` (with LDS weights from `density`, if any) whose linear layer is copied
/// from `init` (or seeded).
fn head_on(
    config: &RegressionHeadConfig,
    density: Option<&LabelDensity>,
    device: &Device,
    init: Option<&VarMap>,
) -> Result<(VarMap, RegressionHead)> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, device);
    let mut head = RegressionHead::new(config.clone(), vb.pp("head"))?;
    if let Some(density) = density {
        head = head.with_label_density(density.clone())?;
    }
    match init {
        Some(source) => copy_to(source, &vm, device)?,
        None => dirkit_compute::train::seeded_init(&vm, 1)?,
    }
    Ok((vm, head))
}

#[test]
fn regression_head_losses_fds_lds_and_ranksim_match_the_cpu() -> Result<()> {
    let gpu = gpu();
    let n = 64;
    // Long-tailed ages (many young, few old), rounded so that RankSim sees ties.
    let ages: Vec<f64> = uniforms(n, 30, 0.0, 1.0)
        .iter()
        .map(|u| (18.0 + 80.0 * u * u).round())
        .collect();
    let density = LabelDensity::fit(
        &ages,
        Binning::new(0.0, 1.0, 121).expect("bins"),
        OutOfRange::Clip,
        &LdsConfig::default(),
    )
    .expect("density");
    let features = (random(&[n, 32], 31, DType::F32)? * 4.0)?;
    let targets = Tensor::from_vec(ages.clone(), n, &Device::Cpu)?.to_dtype(DType::F32)?;
    for (name, config, lds) in head_configs(&density) {
        let density = lds.then_some(&density);
        let (vm_cpu, mut head_cpu) = head_on(&config, density, &Device::Cpu, None)?;
        let (_, mut head_gpu) = head_on(&config, density, &gpu, Some(&vm_cpu))?;
        let mut epoch = 0;
        if config.fds.is_some() {
            // One epoch of statistics, so that epoch 1 calibrates the features.
            for (head, d) in [(&mut head_cpu, &Device::Cpu), (&mut head_gpu, &gpu)] {
                head.collect_fds_stats(&features.to_device(d)?, &targets.to_device(d)?)?;
                head.end_epoch(0)?;
            }
            epoch = 1;
        }
        let run = |head: &mut RegressionHead, d: &Device| -> Result<(Tensor, Tensor, Tensor)> {
            let z = Var::from_tensor(&features.to_device(d)?)?;
            let step = head.forward_train(z.as_tensor(), &targets.to_device(d)?, epoch)?;
            let grads = step.loss.backward()?;
            let dz = grads
                .get(&z)
                .expect("features take part")
                .to_device(&Device::Cpu)?;
            Ok((
                step.loss.to_device(&Device::Cpu)?,
                step.predictions.to_device(&Device::Cpu)?,
                dz,
            ))
        };
        let (l_cpu, p_cpu, dz_cpu) = run(&mut head_cpu, &Device::Cpu)?;
        let (l_gpu, p_gpu, dz_gpu) = run(&mut head_gpu, &gpu)?;
        assert_close(&format!("{name}: loss"), &l_cpu, &l_gpu, 1e-5)?;
        assert_close(&format!("{name}: predictions"), &p_cpu, &p_gpu, 1e-5)?;
        assert_close(&format!("{name}: feature gradient"), &dz_cpu, &dz_gpu, 1e-4)?;
    }
    Ok(())
}

#[test]
fn contrastive_and_uncertainty_losses_match_the_cpu() -> Result<()> {
    let cpu = |v: Vec<f32>| {
        let n = v.len();
        Tensor::from_vec(v, n, &Device::Cpu)
    };
    let labels = cpu(vec![1.0, 3.0, 3.0, 7.0, 2.0, 9.0, 4.0, 4.5])?;
    let preds = cpu(vec![2.0, 3.5, 2.2, 3.1, 2.9, 8.0, 3.0, 4.0])?;
    let weights = cpu(vec![1.0, 0.5, 2.0, 1.5, 1.0, 3.0, 0.8, 1.2])?;
    let on = |t: &Tensor, like: &Tensor| t.to_device(like.device());
    let views = [
        random(&[8, 6], 1, DType::F32)?,
        random(&[8, 6], 2, DType::F32)?,
    ];
    same_on_both("rank-n-contrast", &views, 1e-5, &|t| {
        RncLoss::new(RncConfig::default())?.loss_two_views(&t[0], &t[1], &on(&labels, &t[0])?)
    })?;
    same_on_both("conr", &views[..1], 1e-4, &|t| {
        ConrLoss::new(ConrConfig::default())?.loss(
            &t[0],
            &on(&labels, &t[0])?,
            &on(&preds, &t[0])?,
            Some(&on(&weights, &t[0])?),
        )
    })?;
    let mean_scale = [
        random(&[8], 3, DType::F32)?.affine(5.0, 3.0)?,
        random(&[8], 4, DType::F32)?,
    ];
    same_on_both("laplace nll", &mean_scale, 1e-5, &|t| {
        let w = on(&weights, &t[0])?;
        laplace_nll(&t[0], &t[1], &on(&labels, &t[0])?, Some(&w), -5.0, 5.0)
    })?;
    let raw = [random(&[8, 3], 5, DType::F32)?.affine(4.0, 0.0)?];
    same_on_both("vir nig loss", &raw, 1e-5, &|t| {
        let w = on(&weights, &t[0])?;
        let p = nig_from_raw(&t[0], Some(&w), &VirConfig::default())?;
        nig_loss(&on(&labels, &t[0])?, &p, 0.01, None)
    })?;
    Ok(())
}
