//! The synthetic task of `examples/regression_head.rs` solved as classification over 1-year
//! bins with dirkit's `BinnedHead`: plain cross entropy, logit adjustment with the count prior
//! and with the LDS prior, balanced softmax, and cross entropy decoded with post-hoc logit
//! adjustment toward the uniform prior (with the LDS prior). Predictions are the value of the
//! arg-max bin (of the adjusted logits in the last row); the report gives the per-shot MAE
//! (dirkit-core's regression report) and the per-shot bin accuracy and balanced error rate
//! (its classification report). The count prior has empty bins (ages no training sample
//! has), whose `ln(π + ε)` lets their raw logits float free; the LDS prior has none.
//!
//! ```sh
//! cargo run --release --example binned_regression                 # CPU, about 10 s
//! cargo run --release --example binned_regression -- --epochs 40 --seed 3 --device cpu
//! ```

mod common;

use std::time::Instant;

use candle_core::{DType, Module};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use common::{Args, Event, HIDDEN, Mlp, Tensors};
use dirkit::compute::train::seeded_init;
use dirkit::data::SinusoidTask;
use dirkit::nn::binned::{
    BinnedHead, BinnedHeadConfig, BinnedLoss, Decoder, PriorSource, argmax_bins, posthoc_adjust,
};
use dirkit::{
    Binning, ClassificationReport, LabelDensity, LdsConfig, OutOfRange, RegressionReport,
    ShotThresholds,
};

#[derive(Clone, Copy)]
enum Method {
    CrossEntropy,
    LogitAdjustedCounts,
    LogitAdjustedLds,
    BalancedSoftmax,
    PostHoc,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::CrossEntropy => "cross entropy",
            Method::LogitAdjustedCounts => "LA, count prior",
            Method::LogitAdjustedLds => "LA, LDS prior",
            Method::BalancedSoftmax => "balanced softmax",
            Method::PostHoc => "CE, post-hoc LDS",
        }
    }
}

struct Outcome {
    regression: RegressionReport,
    classification: ClassificationReport,
}

fn train_and_eval(
    method: Method,
    task: &SinusoidTask,
    args: &Args,
    density: &LabelDensity,
) -> candle_core::Result<Outcome> {
    let dev = &args.device;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
    let mlp = Mlp::new(vb.pp("mlp"))?;
    let (loss, prior) = match method {
        Method::CrossEntropy => (BinnedLoss::CrossEntropy, PriorSource::Counts),
        Method::PostHoc => (BinnedLoss::CrossEntropy, PriorSource::Lds),
        Method::LogitAdjustedCounts => (BinnedLoss::logit_adjusted(), PriorSource::Counts),
        Method::LogitAdjustedLds => (BinnedLoss::logit_adjusted(), PriorSource::Lds),
        Method::BalancedSoftmax => (BinnedLoss::BalancedSoftmax, PriorSource::Counts),
    };
    let config = BinnedHeadConfig {
        loss,
        prior,
        decoder: match method {
            Method::PostHoc => Decoder::Adjusted { tau: 1.0 },
            _ => Decoder::Argmax,
        },
        ..BinnedHeadConfig::new(HIDDEN)
    };
    let mut head = BinnedHead::new(config, density, vb.pp("head"))?;
    seeded_init(&varmap, args.seed)?;
    let params = ParamsAdamW {
        lr: 2e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let data = Tensors::new(task, dev)?;
    data.train(args.epochs, 128, args.seed, |event| match event {
        Event::Batch(x, y, epoch) => {
            let step = head.forward_train(&mlp.forward(x)?, y, epoch)?;
            opt.backward_step(&step.loss)
        }
        Event::EndEpoch(_) => Ok(()),
    })?;
    let logits = head.logits(&mlp.forward(&data.x_test)?)?;
    let bins = head.training_bins();
    let pred = head.decode(&logits)?;
    // The classification view: the arg-max bin, adjusted for the post-hoc row.
    let pred_bins = match head.config().decoder {
        Decoder::Adjusted { tau } => {
            argmax_bins(&posthoc_adjust(&logits, &bins.prior, tau, None)?)?
        }
        _ => argmax_bins(&logits)?,
    };
    let binning = *head.binning();
    let truth: Vec<usize> = task
        .y_test
        .iter()
        .map(|&y| binning.index_in_range(y).unwrap_or(binning.n_bins - 1))
        .collect();
    let counts = &density.counts;
    let wrap = candle_core::Error::wrap;
    Ok(Outcome {
        regression: RegressionReport::compute(
            &pred,
            &task.y_test,
            &binning,
            counts,
            ShotThresholds::default(),
            OutOfRange::Clip,
        )
        .map_err(wrap)?,
        classification: ClassificationReport::compute(
            &pred_bins,
            &truth,
            counts,
            ShotThresholds::default(),
        )
        .map_err(wrap)?,
    })
}

fn main() {
    // Steps reuse their freed tensors' memory instead of faulting in fresh pages (glibc).
    dirkit::compute::memory::keep_freed_memory();
    let args = match common::parse_args(25) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("binned_regression: error: {e}");
            std::process::exit(2);
        }
    };
    let task = common::task(args.seed);
    // One class per age the AgeDB-DIR histogram can produce (0–101), not AgeDB's 121 bins: a
    // class no training label reaches has no π to adjust by and only adds noise.
    let binning = Binning::new(0.0, 1.0, 102).expect("valid binning");
    let density = LabelDensity::fit(
        &task.y_train,
        binning,
        OutOfRange::Clip,
        &LdsConfig::default(),
    )
    .expect("finite labels");
    println!(
        "synthetic long-tailed task as {}-bin classification: {} train, {} balanced test, \
         {} epochs, seed {}, device {:?}\n",
        binning.n_bins,
        task.y_train.len(),
        task.y_test.len(),
        args.epochs,
        args.seed,
        args.device
    );
    println!(
        "{:<18} {:>8} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} {:>7} {:>6} {:>6}",
        "method", "MAE all", "many", "medium", "few", "acc", "many", "medium", "few", "BER", "time"
    );
    let f3 = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
    for method in [
        Method::CrossEntropy,
        Method::LogitAdjustedCounts,
        Method::LogitAdjustedLds,
        Method::BalancedSoftmax,
        Method::PostHoc,
    ] {
        let t = Instant::now();
        match train_and_eval(method, &task, &args, &density) {
            Ok(o) => {
                let (r, c) = (&o.regression, &o.classification);
                println!(
                    "{:<18} {:>8} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} {:>7} {:>6.3} {:>5.1}s",
                    method.name(),
                    f3(r.all.mae),
                    f3(r.many.mae),
                    f3(r.medium.mae),
                    f3(r.few.mae),
                    f3(c.all.accuracy),
                    f3(c.many.accuracy),
                    f3(c.medium.accuracy),
                    f3(c.few.accuracy),
                    c.balanced_error_rate,
                    t.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                eprintln!("binned_regression: {}: {e}", method.name());
                std::process::exit(1);
            }
        }
    }
}
