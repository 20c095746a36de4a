//! The age-estimation recipe end to end on tiny data: a folder in the AgeDB layout with bad
//! rows, one step lowering the loss, resume equal to an uninterrupted run, and the report equal
//! to dirkit-core's metrics.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use dirkit_core::{LdsConfig, OutOfRange, RegressionReport, ShotThresholds};
use dirkit_data::faces::{EvalRecipe, FaceConfig, SplitPlan, SyntheticFaces, write_agedb_layout};
use dirkit_nn::fds::FdsConfig;
use dirkit_nn::loss::conr::ConrConfig;
use dirkit_nn::loss::rnc::RncConfig;
use dirkit_nn::loss::uvote::UvoteConfig;
use dirkit_nn::loss::vir::VirConfig;
use dirkit_recipe::{
    DataSource, EvalReport, LossSpec, Model, RecipeError, RncSpec, RunConfig, RunData, RunOptions,
    Trainer, prepare_run_dir,
};

/// A run small enough for a test: 16 px synthetic faces, 96 training images, 1 per age for
/// validation and test, the CPU ResNet, batch 32.
fn tiny(epochs: usize) -> RunConfig {
    let mut c = RunConfig::synthetic(epochs);
    c.data = DataSource::Synthetic {
        seed: 5,
        size: 16,
        train_total: 96,
        per_age: 1,
    };
    c.image_size = 16;
    c.batch_size = 32;
    c.eval_batch_size = 64;
    c
}

fn options(out: &Path) -> RunOptions {
    RunOptions {
        out: out.to_path_buf(),
        progress: false,
        verbose: false,
    }
}

fn values(model: &Model) -> Vec<(String, Vec<f32>)> {
    model
        .named_vars()
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let flat: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            (k, flat)
        })
        .collect()
}

#[test]
fn training_steps_lower_the_loss_on_a_fixed_batch() {
    let deterministic_vir = LossSpec::Vir {
        config: VirConfig {
            variational: false,
            ..VirConfig::default()
        },
        prm: None,
    };
    for (loss, conr) in [
        (LossSpec::L1, None),
        (LossSpec::Bmc, None),
        ("binned-ce".parse().unwrap(), None),
        ("uvote".parse().unwrap(), None),
        (deterministic_vir, None),
        (LossSpec::L1, Some(ConrConfig::default())),
        // ConR composes with Balanced MSE, as in the paper's tables.
        (LossSpec::Bmc, Some(ConrConfig::default())),
    ] {
        let mut config = tiny(1);
        config.loss = loss.clone();
        config.conr = conr;
        let data = RunData::load(&config).expect("data");
        let ages = data.train.ages();
        let mut model = Model::new(&config, &ages, &Device::Cpu).expect("model");
        let idx: Vec<usize> = (0..32).collect();
        let batch = data.train.load(&idx, &data.transform, None).expect("batch");
        let shape = batch.shape();
        let y: Vec<f32> = batch.ages.iter().map(|&a| a as f32).collect();
        let x = Tensor::from_vec(batch.pixels, &shape, &Device::Cpu).unwrap();
        let y = Tensor::from_vec(y, 32, &Device::Cpu).unwrap();
        let before = model
            .train_step(&x, &y, 0)
            .expect("step")
            .to_scalar::<f32>()
            .expect("loss");
        // The loss a step reports is the loss at the parameters after the previous steps;
        // Adam's first steps move every parameter by about the learning rate, which can
        // overshoot where the initialisation is already close (the σ heads start at the
        // labels' spread), so four steps are compared.
        let mut after = before;
        for _ in 0..4 {
            after = model
                .train_step(&x, &y, 0)
                .expect("step")
                .to_scalar::<f32>()
                .expect("loss");
        }
        assert!(before.is_finite() && after.is_finite());
        assert!(after < before, "{loss:?}: {before} -> {after}");
    }
}

#[test]
fn resume_continues_exactly_like_an_uninterrupted_run() {
    let mut config = tiny(2);
    config.reweight = Some(LdsConfig::default());
    config.fds = Some(FdsConfig::new(128));
    config.fds.as_mut().unwrap().start_smooth = 1;
    assert_resume_is_exact(config);
}

#[test]
fn resume_is_exact_for_rnc_conr_uvote_and_vir() {
    // RnC: resumed after its pre-training epoch, so the second stage starts from the checkpoint.
    let mut rnc = tiny(2);
    rnc.rnc = Some(RncSpec {
        pretrain_epochs: 1,
        loss: RncConfig::default(),
        fine_tune: false,
        probe_lr: 0.05,
    });
    let mut conr = tiny(2);
    conr.reweight = Some(LdsConfig::default());
    conr.conr = Some(ConrConfig::default());
    let mut uvote = tiny(2);
    uvote.loss = LossSpec::Uvote {
        config: UvoteConfig {
            heads: 3,
            ..UvoteConfig::default()
        },
    };
    // VIR samples its latent from a stream seeded by (seed, epoch, step); its PRM statistics
    // (collected after epoch 0, calibrating epoch 1) are in the checkpoint.
    let mut vir = tiny(2);
    vir.loss = "vir".parse().unwrap();
    for config in [rnc, conr, uvote, vir] {
        assert_resume_is_exact(config);
    }
}

/// Trains `config` for its epochs in one go and again with a resume after the first epoch, and
/// checks every variable and every epoch's numbers are equal.
fn assert_resume_is_exact(config: RunConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (whole, part) = (dir.path().join("whole"), dir.path().join("part"));
    for d in [&whole, &part] {
        prepare_run_dir(d).unwrap();
    }

    let data = RunData::load(&config).unwrap();
    let mut a = Trainer::new(config.clone(), data.clone(), Device::Cpu, options(&whole)).unwrap();
    a.fit().unwrap();
    assert_eq!(a.state().epochs_done, 2);

    let mut b = Trainer::new(config, data, Device::Cpu, options(&part)).unwrap();
    b.run_epoch().unwrap();
    drop(b);
    let mut c = Trainer::resume(None, Device::Cpu, options(&part)).unwrap();
    assert_eq!(c.state().epochs_done, 1);
    c.fit().unwrap();

    let (va, vc) = (values(a.model()), values(c.model()));
    assert_eq!(va.len(), vc.len());
    let what = format!(
        "{:?} conr {:?} rnc {:?}",
        a.config().loss,
        a.config().conr,
        a.config().rnc
    );
    for ((ka, xa), (kc, xc)) in va.iter().zip(&vc) {
        assert_eq!(ka, kc);
        assert_eq!(xa, xc, "{what}: {ka} differs after resuming");
    }
    assert_eq!(a.state().history.len(), c.state().history.len());
    for (ra, rc) in a.state().history.iter().zip(&c.state().history) {
        assert_eq!(ra.train_loss, rc.train_loss);
        assert_eq!(ra.val_mae, rc.val_mae);
    }
    // Every tensor of the last checkpoint — weights, batch-norm statistics, FDS statistics and
    // the optimiser's moments — is bit-identical, and so is the test report.
    let tensors = |dir: &Path| {
        let ck = dirkit_compute::checkpoint::load_checkpoint::<serde_json::Value>(
            &dir.join("last.safetensors"),
        )
        .unwrap();
        // The run description holds wall-clock timings; its numbers are compared above.
        let mut all: Vec<(String, Vec<u64>)> = ck
            .tensors
            .iter()
            .filter(|(k, _)| !k.starts_with("checkpoint."))
            .map(|(k, t)| {
                let v: Vec<f64> = t
                    .flatten_all()
                    .unwrap()
                    .to_dtype(candle_core::DType::F64)
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                (k.clone(), v.iter().map(|x| x.to_bits()).collect())
            })
            .collect();
        all.sort();
        all
    };
    let (ta, tc) = (tensors(&whole), tensors(&part));
    assert_eq!(
        ta.iter().map(|t| &t.0).collect::<Vec<_>>(),
        tc.iter().map(|t| &t.0).collect::<Vec<_>>(),
        "{what}"
    );
    assert!(
        ta.iter().any(|(k, _)| k.starts_with("optim")) || ta.len() > va.len(),
        "{what}: the checkpoint holds more than the weights: {:?}",
        ta.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for ((k, xa), (_, xc)) in ta.iter().zip(&tc) {
        assert!(
            xa == xc,
            "{what}: checkpoint entry {k} differs after resuming"
        );
    }
    let (ra, pa) = a.test_best().unwrap();
    let (rc, pc) = c.test_best().unwrap();
    assert_eq!(pa, pc, "{what}: test predictions");
    assert_eq!(
        serde_json::to_string(&ra).unwrap(),
        serde_json::to_string(&rc).unwrap(),
        "{what}: test report"
    );
    // A directory holding a run is never overwritten.
    let e = prepare_run_dir(&part).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
}

#[test]
fn the_report_equals_dirkit_core_metrics_on_the_same_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny(1);
    let data = RunData::load(&config).unwrap();
    let mut t = Trainer::new(config.clone(), data, Device::Cpu, options(dir.path())).unwrap();
    t.fit().unwrap();
    let (report, pred) = t.test_best().unwrap();
    let targets = t.data().test.ages();
    assert_eq!(pred, t.predict(&t.data().test, "test").unwrap());
    let core = RegressionReport::compute(
        &pred,
        &targets,
        &config.bins,
        t.train_counts(),
        ShotThresholds::default(),
        OutOfRange::Clip,
    )
    .unwrap();
    assert_eq!(report.metrics, core);
    // By hand: overall MAE and each age's MAE.
    let mae = pred
        .iter()
        .zip(&targets)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / pred.len() as f64;
    assert!((report.metrics.all.mae.unwrap() - mae).abs() < 1e-12);
    let mse = pred
        .iter()
        .zip(&targets)
        .map(|(p, a)| (p - a).powi(2))
        .sum::<f64>()
        / pred.len() as f64;
    assert!((report.metrics.all.mse.unwrap() - mse).abs() < 1e-9 * mse);
    // Shots by hand from the training counts: many > 100, few < 20 samples in the age's bin.
    let shot_of = |a: f64| match t.train_counts()[a as usize] {
        n if n > 100 => dirkit_core::Shot::Many,
        n if n < 20 => dirkit_core::Shot::Few,
        _ => dirkit_core::Shot::Medium,
    };
    for shot in dirkit_core::Shot::ALL {
        let n = targets.iter().filter(|&&a| shot_of(a) == shot).count() as u64;
        assert_eq!(report.metrics.shot(shot).n, n, "{shot:?}");
    }
    for (p, a) in pred.iter().zip(&targets) {
        let bin = &report.by_bin[*a as usize];
        assert_eq!(bin.n, 1, "one test image per age");
        assert_eq!(bin.mae, Some((p - a).abs()));
    }
    let path = dir.path().join("report.json");
    report.write_json(&path).unwrap();
    let back: EvalReport = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // JSON keeps 17 significant digits; parsing may differ in the last bit.
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(1.0),
        (a, b) => a == b,
    };
    assert_eq!(
        (back.epoch, back.by_bin.len()),
        (report.epoch, report.by_bin.len())
    );
    assert!(close(back.metrics.all.mae, report.metrics.all.mae));
    assert!(close(back.metrics.few.gmean, report.metrics.few.gmean));
    for (x, y) in back.by_bin.iter().zip(&report.by_bin) {
        assert!(
            x.n == y.n && x.shot == y.shot && close(x.mae, y.mae),
            "{x:?} vs {y:?}"
        );
    }
    for name in ["mae.png", "mae.svg"] {
        report
            .write_plot(&dir.path().join(name), &config.bins, "t")
            .unwrap();
        assert!(dir.path().join(name).metadata().unwrap().len() > 1000);
    }
}

/// Writes the tiny faces in the AgeDB layout and returns (root, csv).
fn agedb_folder(dir: &Path) -> (PathBuf, PathBuf) {
    let plan = SplitPlan {
        train_total: 40,
        val_per_age: 1,
        test_per_age: 1,
        eval: EvalRecipe::Full,
        ..SplitPlan::default()
    };
    let cfg = FaceConfig {
        size: 16,
        ..FaceConfig::default()
    };
    let faces = SyntheticFaces::generate(3, &cfg, &plan).unwrap();
    let csv = write_agedb_layout(dir, &faces).unwrap();
    (dir.to_path_buf(), csv)
}

#[test]
fn a_folder_with_bad_rows_stops_with_the_list_or_trains_on_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (root, csv) = agedb_folder(dir.path());
    let mut text = std::fs::read_to_string(&csv).unwrap();
    let header = text.lines().next().unwrap().to_string();
    let cols: Vec<&str> = header.split(',').collect();
    let row = |age: &str, path: &str, split: &str| {
        cols.iter()
            .map(|c| match *c {
                "age" => age,
                "path" => path,
                "split" => split,
                _ => "",
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    text.push_str(&(row("forty", "images/train/00000.png", "train") + "\n"));
    text.push_str(&(row("30", "missing.png", "train") + "\n"));
    text.push_str(&(row("30", "images/train/00000.png", "holdout") + "\n"));
    std::fs::write(&csv, &text).unwrap();
    let before = std::fs::read(&csv).unwrap();

    let mut config = tiny(1);
    config.data = DataSource::Folder {
        csv: csv.clone(),
        root: root.clone(),
    };
    let err = RunData::load(&config).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RecipeError::Data(_)), "{msg}");
    for what in ["forty", "missing.png", "holdout"] {
        assert!(msg.contains(what), "{what} not reported in: {msg}");
    }
    config.skip_bad = true;
    let data = RunData::load(&config).unwrap();
    assert_eq!(data.skipped_rows, 3);
    assert_eq!(data.train.len(), 40);
    assert_eq!(data.val.len(), 101);
    assert_eq!(
        std::fs::read(&csv).unwrap(),
        before,
        "the index is never modified"
    );
    // The loaded images are the generated ones, so the run trains from the folder too.
    let dir2 = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(config, data, Device::Cpu, options(dir2.path())).unwrap();
    let r = t.run_epoch().unwrap();
    assert!(r.train_loss.is_finite() && r.val_mae.is_finite());
}

#[test]
fn settings_that_contradict_each_other_are_refused_before_training() {
    let mut c = tiny(1);
    c.loss = LossSpec::Bmc;
    c.reweight = Some(LdsConfig::default());
    let e = Model::new(&c, &[30.0; 8], &Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("Balanced MSE"), "{e}");
    let mut c = tiny(1);
    c.fds = Some(FdsConfig::new(2048));
    assert!(c.validate().unwrap_err().to_string().contains("2048"));
    // The new methods' settings, each with the flag it names.
    let refused = |f: &dyn Fn(&mut RunConfig), want: &str| {
        let mut c = tiny(4);
        f(&mut c);
        let e = c.validate().expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
    };
    refused(
        &|c| {
            c.loss = LossSpec::Uvote {
                config: UvoteConfig {
                    heads: 0,
                    ..UvoteConfig::default()
                },
            }
        },
        "heads",
    );
    refused(
        &|c| {
            c.conr = Some(ConrConfig {
                temperature: -1.0,
                ..ConrConfig::default()
            })
        },
        "temperature",
    );
    refused(
        &|c| {
            c.conr = Some(ConrConfig {
                window: 0.0,
                ..ConrConfig::default()
            })
        },
        "window",
    );
    refused(
        &|c| {
            c.conr = Some(ConrConfig::default());
            c.loss = "binned-ce".parse().unwrap();
        },
        "--conr",
    );
    for epochs in [0, 4] {
        refused(
            &|c| {
                c.rnc = Some(RncSpec {
                    pretrain_epochs: epochs,
                    loss: RncConfig::default(),
                    fine_tune: false,
                    probe_lr: 0.05,
                })
            },
            "--rnc-epochs",
        );
    }
    refused(
        &|c| {
            c.rnc = Some(RncSpec {
                pretrain_epochs: 1,
                loss: RncConfig {
                    temperature: -2.0,
                    normalize: false,
                },
                fine_tune: false,
                probe_lr: 0.05,
            })
        },
        "temperature",
    );
    refused(
        &|c| {
            c.epochs = 1;
            c.rnc = Some(RncSpec::new(1));
        },
        "at least 2 epochs",
    );
    refused(
        &|c| {
            c.rnc = Some(RncSpec {
                probe_lr: 0.0,
                ..RncSpec::new(1)
            })
        },
        "--rnc-probe-lr",
    );
    refused(
        &|c| {
            c.loss = "vir".parse().unwrap();
            c.fds = Some(FdsConfig::new(128));
        },
        "--fds",
    );
}

#[test]
fn uncertainty_heads_report_sigma_nll_and_coverage() {
    let dir = tempfile::tempdir().unwrap();
    for (name, dist) in [
        ("uvote", dirkit_core::PredictiveDist::Laplace),
        ("vir", dirkit_core::PredictiveDist::Gaussian),
    ] {
        let mut config = tiny(1);
        config.loss = name.parse().unwrap();
        let out = dir.path().join(name);
        prepare_run_dir(&out).unwrap();
        let data = RunData::load(&config).unwrap();
        let mut t = Trainer::new(config, data, Device::Cpu, options(&out)).unwrap();
        t.fit().unwrap();
        let (report, pred, sigma) = t.test_best_with_sigma().unwrap();
        let sigma = sigma.expect("the head predicts σ");
        assert_eq!(sigma.len(), pred.len());
        assert!(sigma.iter().all(|s| s.is_finite() && *s > 0.0));
        let u = report.uncertainty.as_ref().expect("uncertainty report");
        assert_eq!(u.dist, dist);
        let ages = t.data().test.ages();
        let want = dirkit_core::UncertaintyReport::compute(&pred, &sigma, &ages, dist, 20).unwrap();
        assert_eq!(u, &want);
        // The NLL and the 90% coverage written out from the closed forms of each distribution.
        let n = pred.len() as f64;
        let (mut nll, mut inside) = (0.0, 0usize);
        for ((p, s), y) in pred.iter().zip(&sigma).zip(&ages) {
            let e = (y - p).abs();
            let (term, half) = match dist {
                dirkit_core::PredictiveDist::Gaussian => (
                    0.5 * (2.0 * std::f64::consts::PI * s * s).ln() + e * e / (2.0 * s * s),
                    1.644_853_626_951_472_2 * s,
                ),
                dirkit_core::PredictiveDist::Laplace => {
                    let b = s / std::f64::consts::SQRT_2;
                    ((2.0 * b).ln() + e / b, b * 10f64.ln())
                }
            };
            nll += term / n;
            inside += usize::from(e <= half);
        }
        assert!(
            (u.nll - nll).abs() < 1e-9 * nll.abs().max(1.0),
            "{} vs {nll}",
            u.nll
        );
        assert!(
            (u.coverage_90 - inside as f64 / n).abs() <= 1.0 / n,
            "{}",
            u.coverage_90
        );
        assert!(report.table().contains("coverage of the 50% interval"));
        let csv = out.join("predictions.csv");
        dirkit_recipe::report::write_predictions_with_sigma(&csv, &ages, &pred, Some(&sigma), None)
            .unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert!(
            text.starts_with("index,target,prediction,sigma\n"),
            "{text}"
        );
        let first: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(first[3].parse::<f64>().unwrap(), sigma[0]);
    }
    // Point heads predict no σ.
    let config = tiny(1);
    let out = dir.path().join("l1");
    prepare_run_dir(&out).unwrap();
    let data = RunData::load(&config).unwrap();
    let mut t = Trainer::new(config, data, Device::Cpu, options(&out)).unwrap();
    t.fit().unwrap();
    let (report, _, sigma) = t.test_best_with_sigma().unwrap();
    assert!(sigma.is_none() && report.uncertainty.is_none());
}
