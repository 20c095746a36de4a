//! `dirkit select`: cross-validated choice of the DIR method for a table, with a progress bar,
//! the candidates' table, the Pareto figure and the held-out check.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use dirkit_core::FoldConfig;
use dirkit_recipe::select::{
    CandidateResult, FAMILIES, Holdout, Learner, Method, Objective, Scores, SelectConfig,
    Selection, Stat, holdout, select, training_bins,
};
use dirkit_tabular::Frame;
use serde_json::{Value, json};

use crate::args::{Format, LearnerArg, ObjectiveArg, SelectArgs};
use crate::error::{CliError, Result};
use crate::table::Grid;

/// A selection with its held-out check, or on every row.
enum Outcome {
    HeldOut(Box<Holdout>),
    Whole(Box<Selection>),
}

/// Runs `dirkit select`.
pub fn run(a: &SelectArgs, out: &mut dyn Write) -> Result<()> {
    let config = config(a)?;
    if !(a.test_size == 0.0 || (a.test_size > 0.0 && a.test_size < 1.0)) {
        return Err(CliError::Usage(format!(
            "--test-size {}: expected a share in (0, 1), or 0 to select on every row",
            a.test_size
        )));
    }
    let figures = a
        .plot
        .as_ref()
        .map(|dir| {
            let png = Path::new(dir).join("pareto.png");
            let svg = Path::new(dir).join("pareto.svg");
            for p in [&png, &svg] {
                if p.exists() && !a.force {
                    return Err(CliError::Usage(format!(
                        "{}: exists; pass --force to overwrite it",
                        p.display()
                    )));
                }
            }
            Ok((dir.clone(), png, svg))
        })
        .transpose()?;
    let started = Instant::now();
    let (frame, target) = crate::resample::read_table(&a.input, a.nominal.as_deref(), &a.target)?;
    let y = frame.columns[target].numbers().unwrap_or_default();
    let bar = Progress::new();
    let progress = |done: usize, total: usize| bar.set(done, total);
    let input = |e: dirkit_recipe::RecipeError| CliError::Input {
        path: a.input.clone(),
        message: e.to_string(),
    };
    let run = if a.test_size > 0.0 {
        holdout(&frame, target, &config, a.test_size, &progress)
            .map(|h| Outcome::HeldOut(Box::new(h)))
    } else {
        select(&frame, target, &config, &progress).map(|s| Outcome::Whole(Box::new(s)))
    };
    bar.finish();
    let run = run.map_err(input)?;
    let (selection, check) = match &run {
        Outcome::HeldOut(h) => (&h.selection, Some(h.as_ref())),
        Outcome::Whole(s) => (s.as_ref(), None),
    };
    let seconds = started.elapsed().as_secs_f64();
    let width = training_bins(y).map(|b| b.width).unwrap_or(1.0);
    let text = match a.format {
        Format::Table => table(a, &frame, selection, check, width, seconds),
        Format::Markdown => markdown(a, selection, check, width),
        Format::Csv => csv(selection),
        Format::Json => {
            serde_json::to_string_pretty(&json_report(a, selection, check, width))
                .unwrap_or_default()
                + "\n"
        }
    };
    if let Some((dir, png, svg)) = figures {
        std::fs::create_dir_all(&dir).map_err(|source| CliError::Io {
            path: dir.clone(),
            source,
        })?;
        for p in [png, svg] {
            plot(selection, &p, &a.input)?;
        }
    }
    out.write_all(text.as_bytes())
        .map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        })
}

/// The engine's settings from the flags.
fn config(a: &SelectArgs) -> Result<SelectConfig> {
    let families: Vec<String> = match &a.methods {
        None => FAMILIES.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            let mut v = Vec::new();
            for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let m = m.to_ascii_lowercase();
                if !FAMILIES.contains(&m.as_str()) {
                    return Err(CliError::Usage(format!(
                        "--methods: unknown method '{m}': expected some of {}",
                        FAMILIES.join(", ")
                    )));
                }
                v.push(m);
            }
            v
        }
    };
    if a.folds < 2 {
        return Err(CliError::Usage(format!(
            "--folds {}: expected at least 2 folds",
            a.folds
        )));
    }
    if a.repeats == 0 {
        return Err(CliError::Usage("--repeats 0: expected at least 1".into()));
    }
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        return Err(CliError::Usage(format!(
            "--threshold {}: expected a relevance in (0, 1]",
            a.threshold
        )));
    }
    if !(a.max_all_loss.is_finite() && a.max_all_loss >= 0.0) {
        return Err(CliError::Usage(format!(
            "--max-all-loss {}: expected a fraction ≥ 0 (0.02 = at most 2 % worse overall MAE)",
            a.max_all_loss
        )));
    }
    if a.epochs == 0 {
        return Err(CliError::Usage("--epochs 0: expected at least 1".into()));
    }
    let mut c = SelectConfig {
        learners: match a.learner {
            LearnerArg::Ridge => vec![Learner::Ridge],
            LearnerArg::Mlp => vec![Learner::Mlp],
            LearnerArg::All => vec![Learner::Ridge, Learner::Mlp],
        },
        families,
        folds: FoldConfig {
            n_splits: a.folds,
            n_repeats: a.repeats,
            threshold: a.threshold,
            seed: a.seed,
        },
        relevance: a.phi.config(),
        control: a.phi.control_points()?,
        objective: match a.objective {
            ObjectiveArg::FewMae => Objective::FewMae,
            ObjectiveArg::Sera => Objective::Sera,
            ObjectiveArg::F1 => Objective::F1,
            ObjectiveArg::BalancedMae => Objective::BalancedMae,
        },
        max_all_loss: a.max_all_loss,
        ..SelectConfig::default()
    };
    c.mlp.epochs = a.epochs;
    Ok(c)
}

/// A progress bar on standard error over (candidate, fold) fits; hidden when stderr is not a
/// terminal.
struct Progress(indicatif::ProgressBar);

impl Progress {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "select {bar:30} {pos}/{len} fits, {elapsed} elapsed, about {eta} left",
        ) {
            bar.set_style(style);
        }
        Self(bar)
    }

    fn set(&self, done: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn pm(s: Option<Stat>, digits: usize) -> String {
    s.map_or("-".into(), |s| {
        format!("{:.digits$} ± {:.digits$}", s.mean, s.std)
    })
}

fn one(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// `c` = chosen, `p` = on the Pareto front, `x` = over the overall-MAE limit, `!` = failed.
fn flags(s: &Selection, i: usize) -> String {
    let c = &s.candidates[i];
    let mut f = String::new();
    if i == s.chosen {
        f.push('c');
    }
    if i == s.reference {
        f.push('r');
    }
    if c.pareto {
        f.push('p');
    }
    if c.error.is_some() {
        f.push('!');
    } else if !c.feasible {
        f.push('x');
    } else if i != s.reference && !c.clear_gain && c.objective(s.config.objective).is_some() {
        f.push('~');
    }
    f
}

/// The command that reproduces this selection.
fn command(a: &SelectArgs) -> String {
    let mut c = format!(
        "dirkit select {} --target {} --learner {} --folds {} --repeats {} --test-size {} \
         --objective {} --max-all-loss {} --threshold {} --seed {}",
        quote(&a.input),
        quote(&a.target),
        match a.learner {
            LearnerArg::Ridge => "ridge",
            LearnerArg::Mlp => "mlp",
            LearnerArg::All => "all",
        },
        a.folds,
        a.repeats,
        a.test_size,
        match a.objective {
            ObjectiveArg::FewMae => "few-mae",
            ObjectiveArg::Sera => "sera",
            ObjectiveArg::F1 => "f1",
            ObjectiveArg::BalancedMae => "balanced-mae",
        },
        a.max_all_loss,
        a.threshold,
        a.seed
    );
    if a.learner != LearnerArg::Ridge {
        c.push_str(&format!(" --epochs {}", a.epochs));
    }
    if let Some(n) = &a.nominal {
        c.push_str(&format!(" --nominal {}", quote(n)));
    }
    if let Some(m) = &a.methods {
        c.push_str(&format!(" --methods {}", quote(m)));
    }
    if let Some(p) = &a.phi.control {
        c.push_str(&format!(" --control {}", quote(p)));
    } else {
        c.push_str(&format!(" --coef {}", a.phi.coef));
    }
    c
}

fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./,:=+@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// How to apply the chosen configuration to the whole table.
fn apply(a: &SelectArgs, c: &CandidateResult, s: &Selection, width: f64) -> String {
    let learner = c.learner.name();
    match c.method {
        Method::Plain => format!("fit the {learner} learner as it is: no re-balancing"),
        Method::Lds { alpha } => format!(
            "fit the {learner} learner with per-sample weights; in Python: \
             w = dirkit.lds_weights(y, bin_width={width}, reweight=\"power\", alpha={alpha})"
        ),
        Method::DenseWeight { alpha } => format!(
            "fit the {learner} learner with per-sample weights; in Python: \
             w = dirkit.denseweight(y, alpha={alpha}); w /= w.mean()"
        ),
        Method::Resample { method, threshold } => format!(
            "dirkit resample {} --target {} --method {} --threshold {threshold} --seed {} \
             --output train-{}.csv, then fit the {learner} learner on it",
            quote(&a.input),
            quote(&a.target),
            method.name(),
            a.seed,
            method.name()
        ),
        Method::Blend { lambda } => format!(
            "predict {lambda}·({}) + {}·({learner}/plain)",
            c.blend_of.as_deref().unwrap_or("?"),
            1.0 - lambda
        ),
        m => format!(
            "train the MLP with dirkit_recipe::select::fit_predict(train, test, target, \
             Learner::Mlp, Method::{m:?}, settings) ({} epochs)",
            s.config.mlp.epochs
        ),
    }
}

fn table(
    a: &SelectArgs,
    frame: &Frame,
    s: &Selection,
    check: Option<&Holdout>,
    width: f64,
    seconds: f64,
) -> String {
    let o = s.config.objective;
    let mut t = format!(
        "{}: {} rows × {} columns; target '{}'; φ from the {} of each training part\n",
        a.input,
        frame.n_rows(),
        frame.names.len(),
        a.target,
        a.phi.describe()
    );
    t.push_str(&format!(
        "{}{} folds × {} repeat(s) on {} rows, stratified on the target and φ ≥ {}; objective {}; \
         overall MAE at most {:+.1} % against plain\n\n",
        check.map_or(String::new(), |h| format!(
            "held out {} rows ({}); ",
            h.test_rows, a.test_size
        )),
        a.folds,
        a.repeats,
        s.rows,
        a.threshold,
        o.name(),
        100.0 * s.config.max_all_loss
    ));
    t.push_str(&candidates_grid(s).text());
    t.push_str(
        "\nc chosen · r reference plain · p Pareto front (overall MAE vs objective) · x over the \
         overall-MAE limit · ~ within the limit, but no gain over plain beyond one standard error \
         of the paired fold differences · ! failed\n",
    );
    for c in s.candidates.iter().filter(|c| c.error.is_some()) {
        t.push_str(&format!(
            "failed: {}: {}\n",
            c.name,
            c.error.as_deref().unwrap_or("")
        ));
    }
    t.push_str(&format!("\n{}\n", s.verdict));
    if let Some(h) = check {
        t.push_str(&format!(
            "\nheld-out check ({} test rows, fitted on the {} training rows):\n",
            h.test_rows, h.train_rows
        ));
        t.push_str(&holdout_grid(h).text());
    }
    t.push_str(&format!(
        "\napply: {}\nreproduce: {}\n{} fits in {seconds:.1} s\n",
        apply(a, &s.candidates[s.chosen], s, width),
        command(a),
        s.candidates.iter().map(|c| c.folds.len()).sum::<usize>()
    ));
    t
}

/// One row per candidate: mean ± std of the figures and the flags.
fn candidates_grid(s: &Selection) -> Grid {
    let mut g = Grid::new(&[
        "candidate",
        "MAE all",
        "many",
        "medium",
        "few",
        "bal. MAE",
        "SERA",
        "F1",
        "",
    ]);
    for (i, c) in s.candidates.iter().enumerate() {
        let m = &c.summary;
        g.rows.push(vec![
            c.name.clone(),
            pm(m.mae_all, 3),
            pm(m.mae_many, 3),
            pm(m.mae_medium, 3),
            pm(m.mae_few, 3),
            pm(m.balanced_mae, 3),
            pm(m.sera, 1),
            pm(m.f1, 3),
            flags(s, i),
        ]);
    }
    g
}

/// The held-out figures of the chosen configuration, plain and always-LDS.
fn holdout_grid(h: &Holdout) -> Grid {
    let mut g = Grid::new(&["held out", "configuration", "MAE all", "MAE few", "SERA"]);
    for (label, r) in h.rows() {
        g.rows.push(vec![
            label.into(),
            r.name.clone(),
            one(r.scores.mae_all, 3),
            one(r.scores.mae_few, 3),
            one(r.scores.sera, 1),
        ]);
    }
    g
}

fn markdown(a: &SelectArgs, s: &Selection, check: Option<&Holdout>, width: f64) -> String {
    let mut t = candidates_grid(s).markdown();
    t.push_str(&format!("\n{}\n", s.verdict));
    if let Some(h) = check {
        t.push('\n');
        t.push_str(&holdout_grid(h).markdown());
    }
    t.push_str(&format!(
        "\nApply: {}\n\nReproduce: `{}`\n",
        apply(a, &s.candidates[s.chosen], s, width),
        command(a)
    ));
    t
}

fn csv(s: &Selection) -> String {
    let fields = [
        "mae_all",
        "mae_many",
        "mae_medium",
        "mae_few",
        "rmse_all",
        "rmse_few",
        "balanced_mae",
        "sera",
        "f1",
    ];
    let mut t = String::from("name,learner,method,folds");
    for f in fields {
        t.push_str(&format!(",{f},{f}_std"));
    }
    t.push_str(",feasible,clear_gain,pareto,chosen,error\n");
    for (i, c) in s.candidates.iter().enumerate() {
        let m = &c.summary;
        let stats = [
            m.mae_all,
            m.mae_many,
            m.mae_medium,
            m.mae_few,
            m.rmse_all,
            m.rmse_few,
            m.balanced_mae,
            m.sera,
            m.f1,
        ];
        t.push_str(&format!(
            "{},{},{},{}",
            c.name,
            c.learner.name(),
            c.method.name(),
            c.folds.len()
        ));
        for st in stats {
            match st {
                Some(st) => t.push_str(&format!(",{},{}", st.mean, st.std)),
                None => t.push_str(",,"),
            }
        }
        let err = c
            .error
            .as_deref()
            .map(|e| format!("\"{}\"", e.replace('"', "\"\"")))
            .unwrap_or_default();
        t.push_str(&format!(
            ",{},{},{},{},{err}\n",
            c.feasible,
            c.clear_gain,
            c.pareto,
            i == s.chosen
        ));
    }
    t
}

fn scores_json(s: &Scores) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// A held-out configuration as `{"name": …, "mae_all": …, …}`.
fn named(h: &dirkit_recipe::select::HoldoutScores) -> Value {
    let mut v = scores_json(&h.scores);
    if let Value::Object(m) = &mut v {
        m.insert("name".into(), json!(h.name));
    }
    v
}

fn json_report(a: &SelectArgs, s: &Selection, check: Option<&Holdout>, width: f64) -> Value {
    let chosen = &s.candidates[s.chosen];
    let candidates: Vec<Value> = s
        .candidates
        .iter()
        .map(|c| {
            let mut v = json!({
                "name": c.name,
                "learner": c.learner.name(),
                "method": c.method.name(),
                "family": c.method.family(),
                "blend_of": c.blend_of,
                "mean": scores_json(&c.summary.means()),
                "summary": c.summary,
                "folds": c.folds,
                "feasible": c.feasible,
                "clear_gain": c.clear_gain,
                "pareto": c.pareto,
                "error": c.error,
            });
            if let Some(obj) = v.as_object_mut() {
                obj.insert("objective".into(), json!(c.objective(s.config.objective)));
            }
            v
        })
        .collect();
    json!({
        "input": a.input,
        "target": a.target,
        "rows": s.rows,
        "objective": s.config.objective.name(),
        "max_all_loss": s.config.max_all_loss,
        "candidates": candidates,
        "reference": { "name": s.candidates[s.reference].name },
        "chosen": {
            "name": chosen.name,
            "learner": chosen.learner.name(),
            "method": chosen.method,
            "beats_plain": s.beats_plain,
            "all_change": s.all_change,
            "mean": scores_json(&chosen.summary.means()),
        },
        "verdict": s.verdict,
        "holdout": check.map(|h| json!({
            "train_rows": h.train_rows,
            "test_rows": h.test_rows,
            "chosen": named(&h.chosen),
            "plain": named(&h.plain),
            "lds": named(&h.lds),
        })),
        "apply": apply(a, chosen, s, width),
        "command": command(a),
    })
}

fn plot(s: &Selection, path: &Path, input: &str) -> Result<()> {
    let o = s.config.objective;
    let (points, limit) = s.pareto_points();
    dirkit_plot::write_pareto_plot(
        path,
        &format!(
            "{}: {} against overall MAE ({} folds)",
            Path::new(input)
                .file_name()
                .map_or(input.into(), |f| f.to_string_lossy()),
            o.name(),
            s.config.folds.n_splits * s.config.folds.n_repeats
        ),
        o.name(),
        &points,
        limit,
    )
    .map_err(CliError::Usage)
}
