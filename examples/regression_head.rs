//! DIR in a few lines on any Candle backbone: an MLP on a built-in synthetic long-tailed 1-D
//! regression task, trained five ways — vanilla, LDS, FDS, LDS+FDS, Balanced MSE — and
//! evaluated by shot (dirkit-core metrics).
//!
//! The task: targets are integer "ages" drawn from the AgeDB-DIR training histogram
//! (datasets/agedb-dir: dense 20–80, a thin tail on both sides); inputs are 8 noisy sinusoids
//! of the target. Test targets are balanced, 20 per age 0–100, so the tail counts as much as
//! the bulk, as in the DIR benchmarks.
//!
//! ```sh
//! cargo run --release --example regression_head                 # CPU, about half a minute
//! cargo run --release --example regression_head -- --epochs 40 --seed 3 --device cpu
//! ```

mod common;

use std::time::Instant;

use candle_core::{DType, Module};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use common::{Args, Event, HIDDEN, Mlp, Tensors};
use dirkit::compute::train::{fill, seeded_init};
use dirkit::data::SinusoidTask;
use dirkit::nn::fds::FdsConfig;
use dirkit::nn::head::{HeadLoss, RegressionHead, RegressionHeadConfig};
use dirkit::nn::loss::balanced_mse::BalancedMseConfig;
use dirkit::nn::loss::elementwise::RegressionLoss;
use dirkit::{Binning, LabelDensity, LdsConfig, OutOfRange, RegressionReport, ShotThresholds};

#[derive(Clone, Copy)]
enum Method {
    Vanilla,
    Lds,
    Fds,
    LdsFds,
    BalancedMse,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Vanilla => "vanilla (L1)",
            Method::Lds => "LDS",
            Method::Fds => "FDS",
            Method::LdsFds => "LDS + FDS",
            Method::BalancedMse => "Balanced MSE (BMC)",
        }
    }
}

fn train_and_eval(
    method: Method,
    task: &SinusoidTask,
    args: &Args,
    binning: Binning,
) -> candle_core::Result<RegressionReport> {
    let dev = &args.device;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
    let mlp = Mlp::new(vb.pp("mlp"))?;
    let use_fds = matches!(method, Method::Fds | Method::LdsFds);
    let mut fds = FdsConfig::reference(HIDDEN, binning.n_bins, 0);
    fds.binning = binning;
    let config = RegressionHeadConfig {
        fds: use_fds.then_some(fds),
        loss: match method {
            Method::BalancedMse => HeadLoss::BalancedMse(BalancedMseConfig::default()),
            _ => HeadLoss::Pointwise(RegressionLoss::L1),
        },
        ..RegressionHeadConfig::new(HIDDEN)
    };
    let mut head = RegressionHead::new(config, vb.pp("head"))?;
    if matches!(method, Method::Lds | Method::LdsFds) {
        let lds = LabelDensity::fit(
            &task.y_train,
            binning,
            OutOfRange::Clip,
            &LdsConfig::default(),
        )
        .map_err(candle_core::Error::wrap)?;
        head = head.with_label_density(lds)?;
    }
    seeded_init(&varmap, args.seed)?;
    let mean = task.y_train.iter().sum::<f64>() / task.y_train.len() as f64;
    fill(&varmap, "head.linear.bias", mean)?;

    let params = ParamsAdamW {
        lr: 2e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let mut sigma_opt = match head.noise_sigma() {
        Some(s) => Some(AdamW::new(
            vec![s.clone()],
            ParamsAdamW {
                lr: 1e-2,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?),
        None => None,
    };
    let data = Tensors::new(task, dev)?;
    data.train(args.epochs, 128, args.seed, |event| match event {
        Event::Batch(x, y, epoch) => {
            let step = head.forward_train(&mlp.forward(x)?, y, epoch)?;
            let grads = step.loss.backward()?;
            opt.step(&grads)?;
            if let Some(o) = &mut sigma_opt {
                o.step(&grads)?;
            }
            Ok(())
        }
        Event::EndEpoch(epoch) if use_fds => {
            // The reference's second pass: uncalibrated features of the whole training set.
            data.second_pass(|x| mlp.forward(x), |z, y| head.collect_fds_stats(z, y))?;
            head.end_epoch(epoch)
        }
        Event::EndEpoch(_) => Ok(()),
    })?;
    let pred = common::to_f64(&head.forward(&mlp.forward(&data.x_test)?)?)?;
    let (counts, _) = binning
        .counts(&task.y_train, OutOfRange::Clip)
        .map_err(candle_core::Error::wrap)?;
    RegressionReport::compute(
        &pred,
        &task.y_test,
        &binning,
        &counts,
        ShotThresholds::default(),
        OutOfRange::Clip,
    )
    .map_err(candle_core::Error::wrap)
}

fn main() {
    // Steps reuse their freed tensors' memory instead of faulting in fresh pages (glibc).
    dirkit::compute::memory::keep_freed_memory();
    let args = match common::parse_args(25) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("regression_head: error: {e}");
            std::process::exit(2);
        }
    };
    let task = common::task(args.seed);
    let binning = Binning::new(0.0, 1.0, 121).expect("valid AgeDB binning");
    let (counts, _) = binning
        .counts(&task.y_train, OutOfRange::Clip)
        .expect("finite labels");
    let shots = ShotThresholds::default().shots(&counts);
    let test_in = |s| {
        task.y_test
            .iter()
            .filter(|&&y| shots[y as usize] == s)
            .count()
    };
    println!(
        "synthetic long-tailed regression: {} train (AgeDB-DIR age histogram), {} balanced test \
         (many {} / medium {} / few {}), {} epochs, seed {}, device {:?}\n",
        task.y_train.len(),
        task.y_test.len(),
        test_in(dirkit::Shot::Many),
        test_in(dirkit::Shot::Medium),
        test_in(dirkit::Shot::Few),
        args.epochs,
        args.seed,
        args.device
    );
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "method", "MAE all", "many", "medium", "few", "G-mean", "time"
    );
    let fmt = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
    for method in [
        Method::Vanilla,
        Method::Lds,
        Method::Fds,
        Method::LdsFds,
        Method::BalancedMse,
    ] {
        let t = Instant::now();
        match train_and_eval(method, &task, &args, binning) {
            Ok(r) => println!(
                "{:<20} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6.1}s",
                method.name(),
                fmt(r.all.mae),
                fmt(r.many.mae),
                fmt(r.medium.mae),
                fmt(r.few.mae),
                fmt(r.all.gmean),
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("regression_head: {}: {e}", method.name());
                std::process::exit(1);
            }
        }
    }
}
