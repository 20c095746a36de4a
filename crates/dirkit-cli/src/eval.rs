//! `dirkit eval`: the per-shot regression report of a predictions file.

use std::io::Write;

use dirkit_core::{GroupMetrics, PredictiveDist, RegressionReport, Shot, UncertaintyReport};
use serde_json::json;

use crate::args::{DistArg, EvalArgs, Format};
use crate::error::{CliError, Result};
use crate::input::{ColumnSpec, Kind, Table};
use crate::labels::{Labels, locate};
use crate::table::{Grid, human};

const TARGET_NAMES: [&str; 4] = ["target", "label", "y", "y_true"];
const PRED_NAMES: [&str; 3] = ["prediction", "pred", "y_pred"];

/// Runs `dirkit eval` and writes the report to `out`.
pub fn run(a: &EvalArgs, out: &mut dyn Write) -> Result<()> {
    let thresholds = a.bins.thresholds()?;
    let policy = a.bins.policy();
    let train = Labels::read(
        &a.train,
        a.train_column.as_deref(),
        a.train_count_column.as_deref(),
    )?;
    let mut table = Table::open(&a.pred)?;
    if table.header.is_none() {
        return Err(CliError::Input {
            path: table.name.clone(),
            message: "needs a header naming its target and prediction columns".into(),
        });
    }
    let pick = |table: &Table, spec: &Option<String>, what: &str, names: &[&str]| {
        let flag = format!("--{what}-column");
        match spec {
            Some(c) => table.resolve(&ColumnSpec::parse(c), &flag),
            None => match table.find_any(names) {
                // Through `resolve`, so a duplicated default name is refused too.
                Some(i) => table.resolve(&ColumnSpec::Name(table.column_name(i)), &flag),
                None => Err(CliError::Input {
                    path: table.name.clone(),
                    message: format!(
                        "no {} column (looked for {}; the input has {}); name it with {flag}",
                        if what == "pred" { "prediction" } else { what },
                        names.join(", "),
                        table.describe_columns()
                    ),
                }),
            },
        }
    };
    let t_idx = pick(&table, &a.target_column, "target", &TARGET_NAMES)?;
    let p_idx = pick(&table, &a.pred_column, "pred", &PRED_NAMES)?;
    if t_idx == p_idx {
        return Err(CliError::Usage(
            "the target and prediction columns are the same column".into(),
        ));
    }
    let s_idx = match &a.sigma_column {
        Some(c) => Some(table.resolve(&ColumnSpec::parse(c), "--sigma-column")?),
        None => None,
    };
    if s_idx.is_some_and(|s| s == t_idx || s == p_idx) {
        return Err(CliError::Usage(
            "--sigma-column names the target or the prediction column".into(),
        ));
    }
    let mut wanted = vec![(t_idx, Kind::Value), (p_idx, Kind::Value)];
    if let Some(s) = s_idx {
        wanted.push((s, Kind::Positive));
    }
    let cols = table.read_numbers(&wanted)?;
    let (targets, preds) = (&cols[0], &cols[1]);
    let uncertainty = match cols.get(2) {
        Some(sigma) => {
            let dist = match a.dist {
                DistArg::Gaussian => PredictiveDist::Gaussian,
                DistArg::Laplace => PredictiveDist::Laplace,
            };
            Some(UncertaintyReport::compute(preds, sigma, targets, dist, 20)?)
        }
        None => None,
    };

    let (tlo, thi) = train.span();
    let (plo, phi) = targets
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &y| {
            (l.min(y), h.max(y))
        });
    let span = (tlo.min(plo), thi.max(phi));
    let width = a.bins.width(&train)?;
    let binning = a.bins.binning(span, width, |s, e| {
        train.values.iter().chain(targets).any(|&y| y >= s && y < e)
    })?;
    let (counts, _) = train.bin_counts(&binning, policy)?;
    let mut report =
        RegressionReport::compute(preds, targets, &binning, &counts, thresholds, policy)
            .map_err(|e| locate(&table.name, &table.column_name(t_idx), &table.lines, e))?;
    let mut sera_source = None;
    if a.sera {
        train.check_expandable("--sera (φ's box plot)")?;
        let train_values: Vec<f64> = match &train.counts {
            None => train.values.clone(),
            Some(c) => train
                .values
                .iter()
                .zip(c)
                .flat_map(|(&v, &n)| std::iter::repeat_n(v, n as usize))
                .collect(),
        };
        let relevance = a.relevance.relevance(&train_values)?;
        report = report
            .with_sera(
                preds,
                targets,
                &binning,
                &counts,
                policy,
                &relevance,
                a.sera_step,
            )?
            .with_utility(preds, targets, &relevance, a.utility_threshold)?;
        sera_source = Some(format!(
            "SERA and utility (φ ≥ {}): φ from the training labels' {}, SERA step {}",
            a.utility_threshold,
            a.relevance.describe(),
            a.sera_step
        ));
    }

    let text = match a.format {
        Format::Table => {
            let mut s = format!(
                "predictions: {} ({} test samples)\ntraining labels: {} ({} samples, {} bins of width {}; many > {}, few < {})\n\n",
                table.name,
                report.all.n,
                train.source,
                train.n_samples(),
                binning.n_bins,
                binning.width,
                thresholds.many,
                thresholds.few
            );
            s.push_str(&grid(&report).text());
            s.push('\n');
            s.push_str(&footer(&report).join("\n"));
            s.push('\n');
            if let Some(src) = &sera_source {
                s.push_str(src);
                s.push('\n');
            }
            if let Some(u) = &uncertainty {
                s.push_str(&u.summary());
                s.push('\n');
            }
            s
        }
        Format::Markdown => {
            let mut s = grid(&report).markdown();
            s.push('\n');
            s.push_str(&footer(&report).join("  \n"));
            s.push('\n');
            if let Some(src) = &sera_source {
                s.push_str(src);
                s.push('\n');
            }
            if let Some(u) = &uncertainty {
                s.push_str(&u.summary());
                s.push('\n');
            }
            s
        }
        Format::Csv => csv(&report),
        Format::Json => {
            let v = json!({
                "predictions": table.name,
                "train": train.source,
                "binning": binning,
                "report": report,
                "uncertainty": uncertainty,
            });
            let mut s =
                serde_json::to_string_pretty(&v).map_err(|e| CliError::Usage(e.to_string()))?;
            s.push('\n');
            s
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        })
}

fn groups(r: &RegressionReport) -> [(&'static str, &GroupMetrics); 4] {
    [
        ("all", &r.all),
        (Shot::Many.name(), &r.many),
        (Shot::Medium.name(), &r.medium),
        (Shot::Few.name(), &r.few),
    ]
}

fn grid(r: &RegressionReport) -> Grid {
    let g4 = groups(r);
    let mut g = Grid::new(&["", "All", "Many", "Medium", "Few"]);
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| human(v, 4));
    let row = |name: &str, f: &dyn Fn(&GroupMetrics) -> String| {
        std::iter::once(name.to_string())
            .chain(g4.iter().map(|(_, m)| f(m)))
            .collect::<Vec<_>>()
    };
    g.rows.push(row("samples", &|m| m.n.to_string()));
    g.rows.push(row("bins", &|m| m.n_test_bins.to_string()));
    g.rows.push(row("MAE", &|m| opt(m.mae)));
    g.rows.push(row("MSE", &|m| opt(m.mse)));
    g.rows.push(row("RMSE", &|m| opt(m.rmse)));
    g.rows.push(row("G-mean", &|m| opt(m.gmean)));
    if r.all.sera.is_some() {
        g.rows.push(row("SERA", &|m| opt(m.sera)));
    }
    g
}

fn footer(r: &RegressionReport) -> Vec<String> {
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| human(v, 4));
    let mut lines = vec![
        format!("balanced MAE: {}", opt(r.balanced_mae)),
        format!("balanced MSE: {}", opt(r.balanced_mse)),
        format!("Pearson r: {}", opt(r.pearson_r)),
    ];
    if let Some(u) = &r.utility {
        lines.push(format!(
            "utility-based precision / recall / F1: {} / {} / {}",
            human(u.precision, 4),
            human(u.recall, 4),
            human(u.f_score, 4)
        ));
    }
    lines
}

fn csv(r: &RegressionReport) -> String {
    let with_sera = r.all.sera.is_some();
    let mut g = Grid::new(&[
        "group",
        "n",
        "n_test_bins",
        "mae",
        "mse",
        "rmse",
        "gmean",
        "balanced_mae",
        "balanced_mse",
        "pearson_r",
    ]);
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    for (name, m) in groups(r) {
        let overall = name == "all";
        let only_all = |x: Option<f64>| if overall { opt(x) } else { String::new() };
        g.rows.push(vec![
            name.to_string(),
            m.n.to_string(),
            m.n_test_bins.to_string(),
            opt(m.mae),
            opt(m.mse),
            opt(m.rmse),
            opt(m.gmean),
            only_all(r.balanced_mae),
            only_all(r.balanced_mse),
            only_all(r.pearson_r),
        ]);
        if with_sera {
            let row = g.rows.last_mut().expect("just pushed");
            row.push(opt(m.sera));
            let u = r.utility.filter(|_| overall);
            row.push(opt(u.map(|u| u.precision)));
            row.push(opt(u.map(|u| u.recall)));
            row.push(opt(u.map(|u| u.f_score)));
        }
    }
    if with_sera {
        for name in ["sera", "utility_precision", "utility_recall", "utility_f1"] {
            g.header.push(name.into());
            g.align.push(crate::table::Align::Right);
        }
    }
    g.csv()
}
