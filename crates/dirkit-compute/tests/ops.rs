//! The CPU ops of `dirkit_compute::ops` against the candle ops they replace (forward values and
//! gradients through `backward()`, f64 to 1e-10 and f32 to 1e-4 relative), against central
//! finite differences in f64, and the ResNet built on them against the same network composed
//! from candle's layers.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use dirkit_compute::models::{ResNet, ResNetConfig, batch_norm, init_resnet, trainable_vars};
use dirkit_compute::ops::{
    Activation, add_relu, batch_norm_add_relu_t, batch_norm_add_relu_train, batch_norm_eval,
    batch_norm_t, batch_norm_train, conv2d, linear, matmul, relu,
};
use dirkit_core::rng::SplitMix64;

const CPU: Device = Device::Cpu;

/// A tensor of seeded uniform values in [lo, hi).
fn uniform(dims: &[usize], seed: u64, (lo, hi): (f64, f64), dtype: DType) -> Result<Tensor> {
    let mut rng = SplitMix64::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect();
    Tensor::from_vec(v, dims, &CPU)?.to_dtype(dtype)
}

fn random(dims: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    uniform(dims, seed, (-1.0, 1.0), dtype)
}

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
}

/// The relative tolerance of a dtype: 1e-10 for f64, 1e-4 for f32.
fn tol(dtype: DType) -> f64 {
    if dtype == DType::F64 { 1e-10 } else { 1e-4 }
}

/// Asserts `|a − b| ≤ rtol · max(1, max |b|)` element-wise.
fn assert_close(a: &Tensor, b: &Tensor, rtol: f64, what: &str) -> Result<()> {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (a, b) = (flat(a)?, flat(b)?);
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= rtol * scale,
            "{what}: element {i}: {x} vs {y} (scale {scale})"
        );
    }
    Ok(())
}

/// Gradients of `sum(f(vars) · r)` for every var, with `r` a fixed random weighting of the
/// output.
fn grads_of<F>(vars: &[&Var], r_seed: u64, f: F) -> Result<(Tensor, Vec<Tensor>)>
where
    F: Fn(&[&Tensor]) -> Result<Tensor>,
{
    let inputs: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
    let y = f(&inputs)?;
    let r = random(y.dims(), r_seed, y.dtype())?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let g = vars
        .iter()
        .map(|v| grads.get(v.as_tensor()).expect("gradient").clone())
        .collect();
    Ok((y, g))
}

/// Asserts that `ours` and `theirs` give the same output and gradients for every var.
fn compare<F, G>(vars: &[&Var], ours: F, theirs: G, what: &str) -> Result<()>
where
    F: Fn(&[&Tensor]) -> Result<Tensor>,
    G: Fn(&[&Tensor]) -> Result<Tensor>,
{
    let dtype = vars[0].dtype();
    let (y_ours, g_ours) = grads_of(vars, 99, ours)?;
    let (y_theirs, g_theirs) = grads_of(vars, 99, theirs)?;
    assert_eq!(y_ours.dtype(), dtype, "{what}: dtype");
    assert_close(&y_ours, &y_theirs, tol(dtype), &format!("{what}: forward"))?;
    for (i, (a, b)) in g_ours.iter().zip(&g_theirs).enumerate() {
        assert_close(a, b, tol(dtype), &format!("{what}: gradient {i}"))?;
    }
    Ok(())
}

/// Asserts that the gradient of `sum(f(vars) · r)` matches central differences (f64, step
/// 1e-6) for every element of every var.
fn check_finite_differences<F>(vars: &[&Var], f: F, what: &str) -> Result<()>
where
    F: Fn(&[&Tensor]) -> Result<Tensor>,
{
    let (y, analytic) = grads_of(vars, 7, &f)?;
    let r = random(y.dims(), 7, DType::F64)?;
    let loss = |inputs: &[&Tensor]| -> Result<f64> { (f(inputs)? * &r)?.sum_all()?.to_scalar() };
    let h = 1e-6;
    for (k, var) in vars.iter().enumerate() {
        let base = flat(var.as_tensor())?;
        let g = flat(&analytic[k])?;
        for j in 0..base.len() {
            let shifted = |d: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += d;
                let t = Tensor::from_vec(v, var.dims(), &CPU)?;
                let mut inputs: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
                inputs[k] = &t;
                loss(&inputs)
            };
            let numeric = (shifted(h)? - shifted(-h)?) / (2.0 * h);
            assert!(
                (numeric - g[j]).abs() <= 1e-6 * (1.0 + numeric.abs()),
                "{what}: var {k} element {j}: numeric {numeric} vs analytic {}",
                g[j]
            );
        }
    }
    Ok(())
}

/// (kernel, stride, padding) of the convolutions checked.
const CONVS: [(usize, usize, usize); 8] = [
    (3, 1, 1),
    (3, 2, 1),
    (1, 1, 0),
    (1, 2, 0),
    (7, 2, 3),
    (7, 1, 3),
    (3, 1, 0),
    (3, 2, 0),
];

#[test]
fn conv2d_equals_candles_forward_and_gradients() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        for (i, &(k, s, p)) in CONVS.iter().enumerate() {
            let seed = 10 * i as u64;
            let x = Var::from_tensor(&random(&[3, 5, 7, 9], seed, dtype)?)?;
            let w = Var::from_tensor(&random(&[4, 5, k, k], seed + 1, dtype)?)?;
            compare(
                &[&x, &w],
                |t| conv2d(t[0], t[1], s, p),
                |t| t[0].conv2d(t[1], p, s, 1, 1),
                &format!("conv2d {dtype:?} k={k} s={s} p={p}"),
            )?;
        }
        // Batches large enough to split over threads, with several image groups per thread
        // and ragged last groups (8×8 outputs: 4 images per group; 3×3: all in one), stride 2
        // and 1×1 too; then images whose patch matrix is formed in blocks of output rows (over
        // 256 output pixels): a ragged last block (37 rows of 23 in blocks of 11), stride 2,
        // rows wider than a block (one row per block) and a 1×1 stride-2 convolution.
        for (i, &(dims, c_out, k, s, p)) in [
            ([13, 8, 8, 8], 16, 3, 1, 1),
            ([10, 16, 6, 6], 16, 3, 1, 1),
            ([9, 8, 6, 6], 16, 3, 2, 1),
            ([7, 32, 5, 5], 16, 1, 1, 0),
            ([3, 4, 37, 23], 6, 3, 1, 1),
            ([2, 3, 45, 41], 6, 3, 2, 1),
            ([2, 2, 5, 300], 6, 3, 1, 1),
            ([2, 5, 40, 30], 6, 1, 2, 0),
        ]
        .iter()
        .enumerate()
        {
            let x = Var::from_tensor(&random(&dims, 70 + i as u64, dtype)?)?;
            let w = Var::from_tensor(&random(&[c_out, dims[1], k, k], 80 + i as u64, dtype)?)?;
            compare(
                &[&x, &w],
                |t| conv2d(t[0], t[1], s, p),
                |t| t[0].conv2d(t[1], p, s, 1, 1),
                &format!("conv2d {dtype:?} {dims:?} k={k} s={s} p={p}"),
            )?;
        }
        // A rectangular kernel and a batch larger than the number of image groups.
        let x = Var::from_tensor(&random(&[11, 3, 6, 8], 5, dtype)?)?;
        let w = Var::from_tensor(&random(&[2, 3, 3, 5], 6, dtype)?)?;
        compare(
            &[&x, &w],
            |t| conv2d(t[0], t[1], 1, 2),
            |t| t[0].conv2d(t[1], 2, 1, 1, 1),
            &format!("conv2d {dtype:?} 3x5"),
        )?;
    }
    Ok(())
}

#[test]
fn conv2d_gradients_match_finite_differences() -> Result<()> {
    // Even sizes and windows that skip the last row and column at stride 2.
    for (i, &(k, s, p)) in [(3, 2, 1), (1, 1, 0), (3, 1, 1), (2, 2, 0), (5, 3, 2)]
        .iter()
        .enumerate()
    {
        let x = Var::from_tensor(&random(&[2, 3, 6, 8], 30 + i as u64, DType::F64)?)?;
        let w = Var::from_tensor(&random(&[2, 3, k, k], 40 + i as u64, DType::F64)?)?;
        check_finite_differences(
            &[&x, &w],
            |t| conv2d(t[0], t[1], s, p),
            &format!("conv2d k={k} s={s} p={p}"),
        )?;
    }
    Ok(())
}

#[test]
fn conv2d_reads_non_contiguous_input_and_skips_untracked_gradients() -> Result<()> {
    let x = random(&[2, 3, 9, 7], 1, DType::F32)?.transpose(2, 3)?;
    let w = random(&[4, 3, 3, 3], 2, DType::F32)?;
    let expected = x.contiguous()?.conv2d(&w, 1, 2, 1, 1)?;
    assert_close(&conv2d(&x, &w, 2, 1)?, &expected, 1e-5, "transposed input")?;
    // An input that is not a variable (the images) gets no gradient; the weight does.
    let w = Var::from_tensor(&w)?;
    let grads = conv2d(&x, w.as_tensor(), 2, 1)?.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    assert!(grads.get(w.as_tensor()).is_some());
    Ok(())
}

/// `x Wᵀ + b` composed from candle's ops: the path `linear` replaces.
fn candle_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.broadcast_matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

#[test]
fn linear_equals_candles_forward_and_gradients() -> Result<()> {
    // (input dims, out features): odd sizes, one row, one feature, a 3-d input, and a
    // 300 × 700 → 500 product large enough to be split over threads.
    let cases: [(&[usize], usize); 6] = [
        (&[7, 5], 3),
        (&[1, 4], 6),
        (&[9, 1], 1),
        (&[2, 3, 5], 4),
        (&[13, 17], 11),
        (&[300, 700], 500),
    ];
    for dtype in [DType::F64, DType::F32] {
        for (i, &(dims, out)) in cases.iter().enumerate() {
            let seed = 20 * i as u64;
            let in_dim = *dims.last().expect("dims");
            let x = Var::from_tensor(&random(dims, seed, dtype)?)?;
            let w = Var::from_tensor(&random(&[out, in_dim], seed + 1, dtype)?)?;
            let b = Var::from_tensor(&random(&[out], seed + 2, dtype)?)?;
            compare(
                &[&x, &w, &b],
                |t| linear(t[0], t[1], Some(t[2])),
                |t| candle_linear(t[0], t[1], Some(t[2])),
                &format!("linear {dtype:?} {dims:?} -> {out}"),
            )?;
            compare(
                &[&x, &w],
                |t| linear(t[0], t[1], None),
                |t| candle_linear(t[0], t[1], None),
                &format!("linear without bias {dtype:?} {dims:?} -> {out}"),
            )?;
        }
    }
    Ok(())
}

#[test]
fn linear_gradients_match_finite_differences() -> Result<()> {
    let x = Var::from_tensor(&random(&[5, 4], 1, DType::F64)?)?;
    let w = Var::from_tensor(&random(&[3, 4], 2, DType::F64)?)?;
    let b = Var::from_tensor(&random(&[3], 3, DType::F64)?)?;
    check_finite_differences(&[&x, &w, &b], |t| linear(t[0], t[1], Some(t[2])), "linear")?;
    // The bias gradient by hand: the column sums of r, the output weighting.
    let (y, g) = grads_of(&[&x, &w, &b], 5, |t| linear(t[0], t[1], Some(t[2])))?;
    let r = random(y.dims(), 5, DType::F64)?;
    assert_close(&g[2], &r.sum(0)?, 1e-12, "bias gradient = Σ_rows r")?;
    Ok(())
}

#[test]
fn linear_reads_non_contiguous_input_and_refuses_bad_shapes() -> Result<()> {
    let x = random(&[6, 4], 1, DType::F32)?.t()?;
    let w = random(&[3, 6], 2, DType::F32)?;
    let b = random(&[3], 3, DType::F32)?;
    let expected = candle_linear(&x.contiguous()?, &w, Some(&b))?;
    assert_close(
        &linear(&x, &w, Some(&b))?,
        &expected,
        1e-6,
        "transposed input",
    )?;
    // Only the variable gets a gradient.
    let wv = Var::from_tensor(&w)?;
    let grads = linear(&x, wv.as_tensor(), Some(&b))?
        .sum_all()?
        .backward()?;
    assert!(grads.get(&x).is_none() && grads.get(&b).is_none());
    assert!(grads.get(wv.as_tensor()).is_some());
    let message = |r: Result<Tensor>| r.expect_err("should fail").to_string();
    assert!(message(linear(&x, &random(&[3, 5], 4, DType::F32)?, None)).contains("6 features"));
    assert!(message(linear(&x, &w, Some(&random(&[4], 5, DType::F32)?))).contains("bias"));
    assert!(
        linear(&x, &w.to_dtype(DType::F64)?, None).is_err(),
        "mixed dtypes"
    );
    assert!(linear(&x, &w.unsqueeze(0)?, None).is_err(), "3-d weight");
    let empty_x = Tensor::zeros((4, 0), DType::F32, &CPU)?;
    let empty_w = Tensor::zeros((3, 0), DType::F32, &CPU)?;
    assert!(message(linear(&empty_x, &empty_w, None)).contains("at least one input"));
    let half = x.to_dtype(DType::F16)?;
    assert!(message(linear(&half, &w.to_dtype(DType::F16)?, None)).contains("f32 and f64"));
    Ok(())
}

#[test]
fn matmul_equals_candles_forward_and_gradients() -> Result<()> {
    // (m, k, n): odd sizes, a single row / column / inner dimension, a tall product and a
    // wide one (m < n) large enough to be split over threads by rows and by columns.
    let cases = [
        (7, 5, 3),
        (1, 4, 6),
        (9, 1, 1),
        (6, 3, 1),
        (13, 17, 11),
        (300, 700, 500),
        (8, 1100, 600),
    ];
    for dtype in [DType::F64, DType::F32] {
        for (i, &(m, k, n)) in cases.iter().enumerate() {
            let seed = 40 * i as u64;
            let a = Var::from_tensor(&random(&[m, k], seed, dtype)?)?;
            let b = Var::from_tensor(&random(&[k, n], seed + 1, dtype)?)?;
            compare(
                &[&a, &b],
                |t| matmul(t[0], t[1]),
                |t| t[0].matmul(t[1]),
                &format!("matmul {dtype:?} {m}x{k} * {k}x{n}"),
            )?;
            // Transposed views of stored (k, m) and (n, k) matrices, read in place.
            let at = Var::from_tensor(&random(&[k, m], seed + 2, dtype)?)?;
            let bt = Var::from_tensor(&random(&[n, k], seed + 3, dtype)?)?;
            compare(
                &[&at, &bt],
                |t| matmul(&t[0].t()?, &t[1].t()?),
                |t| t[0].t()?.contiguous()?.matmul(&t[1].t()?.contiguous()?),
                &format!("matmul of transposes {dtype:?} {m}x{k} * {k}x{n}"),
            )?;
        }
    }
    Ok(())
}

#[test]
fn matmul_gradients_match_finite_differences() -> Result<()> {
    let a = Var::from_tensor(&random(&[4, 5], 1, DType::F64)?)?;
    let b = Var::from_tensor(&random(&[5, 3], 2, DType::F64)?)?;
    check_finite_differences(&[&a, &b], |t| matmul(t[0], t[1]), "matmul")?;
    check_finite_differences(&[&a], |t| matmul(t[0], &t[0].t()?), "a · aᵀ")?;
    // Through a composite, by hand: d/da Σ r ⊙ (a b)² = (2 (a b) ⊙ r) bᵀ.
    let (_, g) = grads_of(&[&a, &b], 3, |t| matmul(t[0], t[1])?.sqr())?;
    let r = random(&[4, 3], 3, DType::F64)?;
    // Formed with candle's own products, independently of the op under test.
    let ab = a.as_tensor().matmul(b.as_tensor())?;
    let by_hand = ((ab * 2.0)? * &r)?.matmul(&b.t()?)?;
    assert_close(&g[0], &by_hand, 1e-12, "gradient of a squared product")?;
    Ok(())
}

#[test]
fn matmul_does_not_depend_on_the_thread_count_and_refuses_bad_shapes() -> Result<()> {
    use dirkit_compute::ops::pool::on_this_thread;
    for (m, k, n) in [(300, 700, 500), (8, 1100, 600)] {
        assert!(
            m * k * n >= dirkit_compute::ops::PRODUCT_MIN_WORK,
            "split over threads"
        );
        let a = random(&[m, k], 1, DType::F32)?;
        let b = random(&[k, n], 2, DType::F32)?;
        let pooled = flat(&matmul(&a, &b)?)?;
        let inline = flat(&on_this_thread(|| matmul(&a, &b))?)?;
        assert_eq!(
            pooled, inline,
            "{m}x{k} * {k}x{n}: same values on any thread count"
        );
    }
    let a = random(&[4, 3], 1, DType::F32)?;
    let message = |r: Result<Tensor>| r.expect_err("should fail").to_string();
    assert!(message(matmul(&a, &random(&[4, 2], 2, DType::F32)?)).contains("4 × 3"));
    // Other dtypes, ranks and broadcast views take candle's path and its answers.
    let half = a.to_dtype(DType::F16)?;
    assert_eq!(matmul(&half, &half.t()?)?.dims(), [4, 4]);
    let batched = random(&[2, 4, 3], 3, DType::F32)?;
    assert_close(
        &matmul(&batched, &random(&[2, 3, 5], 4, DType::F32)?)?,
        &batched.matmul(&random(&[2, 3, 5], 4, DType::F32)?)?,
        1e-6,
        "3-d operands",
    )?;
    let row = random(&[1, 3], 5, DType::F64)?.broadcast_as((4, 3))?;
    let b = random(&[3, 2], 6, DType::F64)?;
    assert_close(
        &matmul(&row, &b)?,
        &row.contiguous()?.matmul(&b)?,
        1e-12,
        "a broadcast operand",
    )?;
    Ok(())
}

#[test]
fn linear_layer_matches_candles_layer() -> Result<()> {
    use candle_core::Module;
    use dirkit_compute::nn;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &CPU);
    let ours = nn::linear(13, 7, vb.pp("layer"))?;
    let names: Vec<String> = vm.data().lock().expect("varmap").keys().cloned().collect();
    assert_eq!(names.len(), 2, "weight and bias: {names:?}");
    // The same variables under the same names: candle's layer built from the VarMap reads them.
    let theirs = candle_nn::linear(13, 7, vb.pp("layer"))?;
    assert_eq!(flat(ours.weight())?, flat(theirs.weight())?);
    let bound = 1.0 / 13f64.sqrt();
    assert!(
        flat(ours.bias().expect("bias"))?
            .iter()
            .all(|b| b.abs() <= bound)
    );
    let x = random(&[5, 2, 13], 1, DType::F32)?;
    assert_close(&ours.forward(&x)?, &theirs.forward(&x)?, 1e-6, "3-d input")?;
    let half = x.to_dtype(DType::F16)?;
    let ours_half = nn::Linear::new(ours.weight().to_dtype(DType::F16)?, None);
    let theirs_half = candle_nn::Linear::new(theirs.weight().to_dtype(DType::F16)?, None);
    assert_close(
        &ours_half.forward(&half)?,
        &theirs_half.forward(&half)?,
        1e-3,
        "half precision goes to candle's product",
    )?;
    let no_bias = nn::linear_no_bias(13, 3, vb.pp("plain"))?;
    assert!(no_bias.bias().is_none());
    Ok(())
}

/// A (3, 5, 7, 9) batch whose channel c has mean ≈ c − 2 and a spread growing with c.
fn channels_apart(dtype: DType, seed: u64) -> Result<Tensor> {
    let offsets = Tensor::new(&[-2.0f64, -1.0, 0.0, 1.0, 2.0], &CPU)?.reshape((1, 5, 1, 1))?;
    let scales = Tensor::new(&[0.5f64, 1.0, 3.0, 0.1, 2.0], &CPU)?.reshape((1, 5, 1, 1))?;
    random(&[3, 5, 7, 9], seed, DType::F64)?
        .broadcast_mul(&scales)?
        .broadcast_add(&offsets)?
        .to_dtype(dtype)
}

/// Candle's batch norm (training or evaluation mode) from explicit parameters, then `act`.
fn candle_bn(
    x: &Tensor,
    (weight, bias): (&Tensor, &Tensor),
    running: Option<(&Tensor, &Tensor)>,
    act: Activation,
) -> Result<Tensor> {
    let c = weight.elem_count();
    let (mean, var) = match running {
        Some((m, v)) => (m.clone(), v.clone()),
        None => (
            Tensor::zeros(c, x.dtype(), &CPU)?,
            Tensor::ones(c, x.dtype(), &CPU)?,
        ),
    };
    let bn = candle_nn::BatchNorm::new(c, mean, var, weight.clone(), bias.clone(), 1e-5)?;
    let y = bn.forward_t(x, running.is_none())?;
    match act {
        Activation::Identity => Ok(y),
        Activation::Relu => y.relu(),
    }
}

#[test]
fn batch_norm_train_equals_candles_forward_and_gradients() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        for act in [Activation::Identity, Activation::Relu] {
            let x = Var::from_tensor(&channels_apart(dtype, 1)?)?;
            let gamma = Var::from_tensor(&uniform(&[5], 2, (0.5, 1.5), dtype)?)?;
            let beta = Var::from_tensor(&random(&[5], 3, dtype)?)?;
            compare(
                &[&x, &gamma, &beta],
                |t| Ok(batch_norm_train(t[0], t[1], t[2], 1e-5, act)?.0),
                |t| candle_bn(t[0], (t[1], t[2]), None, act),
                &format!("batch norm train {dtype:?} {act:?}"),
            )?;
        }
    }
    Ok(())
}

#[test]
fn batch_norm_add_relu_equals_candles_forward_and_gradients() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        let x = Var::from_tensor(&channels_apart(dtype, 15)?)?;
        let gamma = Var::from_tensor(&uniform(&[5], 16, (0.5, 1.5), dtype)?)?;
        let beta = Var::from_tensor(&random(&[5], 17, dtype)?)?;
        let r = Var::from_tensor(&random(&[3, 5, 7, 9], 18, dtype)?)?;
        compare(
            &[&x, &gamma, &beta, &r],
            |t| Ok(batch_norm_add_relu_train(t[0], t[1], t[2], t[3], 1e-5)?.0),
            |t| (candle_bn(t[0], (t[1], t[2]), None, Activation::Identity)? + t[3])?.relu(),
            &format!("batch norm + residual + relu {dtype:?}"),
        )?;
    }
    let x = Var::from_tensor(&channels_apart(DType::F64, 19)?.narrow(3, 0, 4)?)?;
    let gamma = Var::from_tensor(&uniform(&[5], 20, (0.5, 1.5), DType::F64)?)?;
    let beta = Var::from_tensor(&random(&[5], 21, DType::F64)?)?;
    let r = Var::from_tensor(&random(x.dims(), 22, DType::F64)?)?;
    check_finite_differences(
        &[&x, &gamma, &beta, &r],
        |t| Ok(batch_norm_add_relu_train(t[0], t[1], t[2], t[3], 1e-5)?.0),
        "batch norm + residual + relu",
    )
}

#[test]
fn batch_norm_eval_equals_candles_forward_and_gradients() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        for act in [Activation::Identity, Activation::Relu] {
            let x = Var::from_tensor(&channels_apart(dtype, 4)?)?;
            let gamma = Var::from_tensor(&uniform(&[5], 5, (0.5, 1.5), dtype)?)?;
            let beta = Var::from_tensor(&random(&[5], 6, dtype)?)?;
            let mean = random(&[5], 7, dtype)?;
            let var = uniform(&[5], 8, (0.2, 2.0), dtype)?;
            compare(
                &[&x, &gamma, &beta],
                |t| batch_norm_eval(t[0], t[1], t[2], &mean, &var, 1e-5, act),
                |t| candle_bn(t[0], (t[1], t[2]), Some((&mean, &var)), act),
                &format!("batch norm eval {dtype:?} {act:?}"),
            )?;
        }
    }
    Ok(())
}

#[test]
fn batch_norm_gradients_match_finite_differences() -> Result<()> {
    let x = Var::from_tensor(&channels_apart(DType::F64, 9)?.narrow(2, 0, 3)?)?;
    let gamma = Var::from_tensor(&uniform(&[5], 10, (0.5, 1.5), DType::F64)?)?;
    let beta = Var::from_tensor(&random(&[5], 11, DType::F64)?)?;
    let vars = [&x, &gamma, &beta];
    for act in [Activation::Identity, Activation::Relu] {
        check_finite_differences(
            &vars,
            |t| Ok(batch_norm_train(t[0], t[1], t[2], 1e-5, act)?.0),
            &format!("batch norm train {act:?}"),
        )?;
        let mean = random(&[5], 12, DType::F64)?;
        let var = uniform(&[5], 13, (0.2, 2.0), DType::F64)?;
        check_finite_differences(
            &vars,
            |t| batch_norm_eval(t[0], t[1], t[2], &mean, &var, 1e-5, act),
            &format!("batch norm eval {act:?}"),
        )?;
    }
    Ok(())
}

#[test]
fn batch_norm_module_updates_running_stats_as_candle_does() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        let (vm_ours, vm_theirs) = (VarMap::new(), VarMap::new());
        let ours = batch_norm(5, VarBuilder::from_varmap(&vm_ours, dtype, &CPU))?;
        let theirs = batch_norm(5, VarBuilder::from_varmap(&vm_theirs, dtype, &CPU))?;
        let x = channels_apart(dtype, 14)?;
        for step in 0..2 {
            let x = (&x + step as f64)?;
            let a = batch_norm_t(&ours, &x, true, Activation::Identity)?;
            let b = theirs.forward_t(&x, true)?;
            assert_close(&a, &b, tol(dtype), "train output")?;
            assert_close(
                ours.running_mean(),
                theirs.running_mean(),
                tol(dtype),
                "mean",
            )?;
            assert_close(ours.running_var(), theirs.running_var(), tol(dtype), "var")?;
        }
        // The statistics returned are the batch's mean and biased variance.
        let (_, stats) = batch_norm_train(
            &x,
            &Tensor::ones(5, dtype, &CPU)?,
            &Tensor::zeros(5, dtype, &CPU)?,
            1e-5,
            Activation::Relu,
        )?;
        let xt = x.to_dtype(DType::F64)?.transpose(0, 1)?.flatten_from(1)?;
        let mean = xt.mean(1)?;
        let var = xt.broadcast_sub(&mean.unsqueeze(1)?)?.sqr()?.mean(1)?;
        assert_eq!(stats.count, 3 * 7 * 9);
        assert_close(
            &Tensor::new(stats.mean.as_slice(), &CPU)?,
            &mean,
            tol(dtype),
            "mean",
        )?;
        assert_close(
            &Tensor::new(stats.var.as_slice(), &CPU)?,
            &var,
            tol(dtype),
            "var",
        )?;
        let a = batch_norm_t(&ours, &x, false, Activation::Relu)?;
        let b = theirs.forward_t(&x, false)?.relu()?;
        assert_close(&a, &b, tol(dtype), "eval output")?;
        // The residual join, in both modes.
        let r = random(x.dims(), 23, dtype)?;
        for train in [false, true] {
            let a = batch_norm_add_relu_t(&ours, &x, &r, train)?;
            let b = (theirs.forward_t(&x, train)? + &r)?.relu()?;
            assert_close(&a, &b, tol(dtype), &format!("join train={train}"))?;
        }
        assert_close(
            ours.running_var(),
            theirs.running_var(),
            tol(dtype),
            "var after join",
        )?;
    }
    Ok(())
}

#[test]
fn relu_and_add_relu_equal_candles() -> Result<()> {
    for dtype in [DType::F64, DType::F32] {
        let a = Var::from_tensor(&random(&[3, 5, 7, 9], 20, dtype)?)?;
        let b = Var::from_tensor(&random(&[3, 5, 7, 9], 21, dtype)?)?;
        compare(&[&a], |t| relu(t[0]), |t| t[0].relu(), "relu")?;
        compare(
            &[&a, &b],
            |t| add_relu(t[0], t[1]),
            |t| (t[0] + t[1])?.relu(),
            "add_relu",
        )?;
        // Long enough to be split into chunks.
        let long = Var::from_tensor(&random(&[1 << 19], 22, dtype)?)?;
        compare(&[&long], |t| relu(t[0]), |t| t[0].relu(), "long relu")?;
    }
    // No gradient at 0, as in PyTorch.
    let x = Var::new(&[-1.0f64, 0.0, 2.0], &CPU)?;
    let grads = relu(x.as_tensor())?.sum_all()?.backward()?;
    assert_eq!(flat(grads.get(&x).expect("gradient"))?, [0.0, 0.0, 1.0]);
    Ok(())
}

#[test]
fn bad_inputs_are_refused_with_errors() -> Result<()> {
    let x = random(&[2, 3, 5, 5], 0, DType::F32)?;
    let w = random(&[4, 3, 3, 3], 1, DType::F32)?;
    let message = |r: Result<Tensor>| r.expect_err("should fail").to_string();
    let half = x.to_dtype(DType::F16)?;
    assert!(message(conv2d(&half, &w.to_dtype(DType::F16)?, 1, 1)).contains("f32 and f64"));
    assert!(message(relu(&half)).contains("f32 and f64"));
    assert!(
        conv2d(&x, &w.to_dtype(DType::F64)?, 1, 1).is_err(),
        "mixed dtypes"
    );
    assert!(
        conv2d(&x, &random(&[4, 2, 3, 3], 2, DType::F32)?, 1, 1).is_err(),
        "channels"
    );
    assert!(conv2d(&x, &w, 0, 1).is_err(), "stride 0");
    assert!(
        conv2d(&x, &random(&[4, 3, 9, 9], 2, DType::F32)?, 1, 1).is_err(),
        "kernel > input"
    );
    assert!(conv2d(&x.flatten_from(2)?, &w, 1, 1).is_err(), "rank 3");
    let empty = Tensor::zeros((2, 3, 0, 5), DType::F32, &CPU)?;
    assert!(message(conv2d(&empty, &w, 1, 1)).contains("non-empty image"));
    let no_out = Tensor::zeros((0, 3, 3, 3), DType::F32, &CPU)?;
    assert!(message(conv2d(&x, &no_out, 1, 1)).contains("channel"));
    let (one, zero) = (
        Tensor::ones(3, DType::F32, &CPU)?,
        Tensor::zeros(3, DType::F32, &CPU)?,
    );
    let id = Activation::Identity;
    assert!(batch_norm_train(&x, &one.narrow(0, 0, 2)?, &zero, 1e-5, id).is_err());
    assert!(
        batch_norm_train(&x, &one, &zero, -1.0, id).is_err(),
        "eps < 0"
    );
    assert!(
        batch_norm_train(
            &x.narrow(0, 0, 1)?.narrow(2, 0, 1)?.narrow(3, 0, 1)?,
            &one,
            &zero,
            1e-5,
            id
        )
        .is_err(),
        "one value per channel"
    );
    assert!(batch_norm_eval(&x, &one, &zero, &one.narrow(0, 0, 1)?, &one, 1e-5, id).is_err());
    assert!(add_relu(&x, &x.narrow(0, 0, 1)?).is_err());
    assert!(batch_norm_add_relu_train(&x, &one, &zero, &x.narrow(0, 0, 1)?, 1e-5).is_err());
    Ok(())
}

/// The same ResNet forward composed from candle's layers (`Conv2d`, `BatchNorm`, `relu`) over
/// the variables of `vm`: the path the ops replace.
fn reference_resnet(
    vm: &VarMap,
    config: ResNetConfig,
    dtype: DType,
    x: &Tensor,
    train: bool,
) -> Result<Tensor> {
    let vb = VarBuilder::from_varmap(vm, dtype, &CPU);
    let conv_bn = |x: &Tensor,
                   (c_in, c_out, k, stride): (usize, usize, usize, usize),
                   conv: VarBuilder,
                   bn: VarBuilder|
     -> Result<Tensor> {
        let cfg = candle_nn::Conv2dConfig {
            padding: k / 2,
            stride,
            ..Default::default()
        };
        let y =
            candle_nn::Module::forward(&candle_nn::conv2d_no_bias(c_in, c_out, k, cfg, conv)?, x)?;
        batch_norm(c_out, bn)?.forward_t(&y, train)
    };
    let w = config.width;
    let mut y = conv_bn(x, (3, w, 3, 1), vb.pp("conv1"), vb.pp("bn1"))?.relu()?;
    let mut c_in = w;
    for (i, &count) in config.depth.blocks().iter().enumerate() {
        let c = w << i;
        for j in 0..count {
            let stride = if i > 0 && j == 0 { 2 } else { 1 };
            let b = vb.pp(format!("layer{}", i + 1)).pp(j);
            let inner = conv_bn(&y, (c_in, c, 3, stride), b.pp("conv1"), b.pp("bn1"))?.relu()?;
            let out = conv_bn(&inner, (c, c, 3, 1), b.pp("conv2"), b.pp("bn2"))?;
            let shortcut = if stride != 1 || c_in != c {
                let ds = b.pp("downsample");
                conv_bn(&y, (c_in, c, 1, stride), ds.pp("0"), ds.pp("1"))?
            } else {
                y.clone()
            };
            y = (out + shortcut)?.relu()?;
            c_in = c;
        }
    }
    y.mean((2, 3))
}

/// Every running statistic of `vm` by name.
fn running_stats(vm: &VarMap) -> Result<Vec<(String, Tensor)>> {
    let data = vm.data().lock().expect("lock");
    let mut out: Vec<(String, Tensor)> = data
        .iter()
        .filter(|(k, _)| k.contains("running"))
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
        .collect::<Result<_>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// What one pass of a network leaves: its features, the gradients of `sum(features · r)` for
/// every trainable variable, and the running statistics.
struct Pass {
    features: Tensor,
    grads: Vec<Tensor>,
    running: Vec<(String, Tensor)>,
}

/// Resets the running statistics of `vm` to `initial`, runs `forward` and back-propagates.
fn pass(
    vm: &VarMap,
    initial: &[(String, Tensor)],
    forward: impl Fn() -> Result<Tensor>,
) -> Result<Pass> {
    for (name, t) in initial {
        let var = vm.data().lock().expect("lock")[name].clone();
        var.set(t)?;
    }
    let features = forward()?;
    let r = random(features.dims(), 5, features.dtype())?;
    let grads = (&features * &r)?.sum_all()?.backward()?;
    let grads = trainable_vars(vm)
        .iter()
        .map(|v| grads.get(v.as_tensor()).expect("gradient").clone())
        .collect();
    Ok(Pass {
        features,
        grads,
        running: running_stats(vm)?,
    })
}

#[test]
fn resnet_on_the_ops_equals_candles_layers() -> Result<()> {
    let config = ResNetConfig {
        width: 4,
        ..ResNetConfig::cpu_small()
    };
    for dtype in [DType::F64, DType::F32] {
        let vm = VarMap::new();
        let net = ResNet::new(config, VarBuilder::from_varmap(&vm, dtype, &CPU))?;
        init_resnet(&vm, 3)?;
        let x = random(&[3, 3, 16, 16], 4, dtype)?;
        let initial = running_stats(&vm)?;
        for train in [true, false] {
            let ours = pass(&vm, &initial, || net.forward_t(&x, train))?;
            let theirs = pass(&vm, &initial, || {
                reference_resnet(&vm, config, dtype, &x, train)
            })?;
            let what = format!("{dtype:?} train={train}");
            let t = tol(dtype);
            assert_close(
                &ours.features,
                &theirs.features,
                t,
                &format!("{what} features"),
            )?;
            for (i, (a, b)) in ours.grads.iter().zip(&theirs.grads).enumerate() {
                assert_close(a, b, t, &format!("{what} gradient of var {i}"))?;
            }
            for ((name, a), (_, b)) in ours.running.iter().zip(&theirs.running) {
                assert_close(a, b, t, &format!("{what} {name}"))?;
            }
            let moved = ours
                .running
                .iter()
                .zip(&initial)
                .any(|((_, a), (_, b))| flat(a).ok() != flat(b).ok());
            assert_eq!(moved, train, "{what}: running statistics moved");
        }
    }
    Ok(())
}
