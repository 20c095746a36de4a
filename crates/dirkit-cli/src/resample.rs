//! `dirkit resample`: rebalance a table by relevance and write it as CSV.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use dirkit_tabular::{Distance, Frame, Method, ResampleConfig, Strategy, resample};

use crate::args::{DistanceArg, MethodArg, ResampleArgs};
use crate::error::{CliError, Result};
use crate::output::check_writable;
use crate::table::{Grid, human};
use dirkit_tabular::format_number as num;

fn strategy(s: &str) -> Result<Strategy> {
    match s.trim() {
        "balance" => Ok(Strategy::Balance),
        "extreme" => Ok(Strategy::Extreme),
        list => list
            .split(',')
            .map(|p| {
                p.trim().parse::<f64>().map_err(|_| {
                    CliError::Usage(format!(
                        "invalid --strategy '{s}': expected balance, extreme or factors like 0.5,2,3"
                    ))
                })
            })
            .collect::<Result<Vec<f64>>>()
            .map(Strategy::Factors),
    }
}

/// Reads a CSV table with its `--nominal` columns and finds the numeric `--target` column.
pub(crate) fn read_table(
    input: &str,
    nominal: Option<&str>,
    target: &str,
) -> Result<(Frame, usize)> {
    let nominal: Vec<String> = nominal
        .map(|s| {
            s.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let frame = Frame::read_csv(Path::new(input), &nominal).map_err(tabular)?;
    let t = frame.column_index(target, input).map_err(tabular)?;
    if frame.columns[t].numbers().is_none() {
        return Err(CliError::Input {
            path: input.to_string(),
            message: format!(
                "--target {target}: the column holds text (e.g. '{}'), expected numbers",
                frame.columns[t].text(0).escape_debug()
            ),
        });
    }
    Ok((frame, t))
}

/// Runs `dirkit resample`.
pub fn run(a: &ResampleArgs, out: &mut dyn Write) -> Result<()> {
    check_writable(&a.output, &a.input, a.force)?;
    let started = Instant::now();
    let (frame, target) = read_table(&a.input, a.nominal.as_deref(), &a.target)?;
    let y = frame.columns[target].numbers().unwrap_or_default();
    let relevance = a.phi.relevance(y)?;
    let method = match a.method {
        MethodArg::Ro => Method::Ro,
        MethodArg::Ru => Method::Ru,
        MethodArg::Gn => Method::Gn,
        MethodArg::Smoter => Method::Smoter,
        MethodArg::Smogn => Method::Smogn,
        MethodArg::Wercs => Method::Wercs,
    };
    let config = ResampleConfig {
        threshold: a.threshold,
        strategy: strategy(&a.strategy)?,
        k: a.k,
        pert: a.pert,
        distance: a.distance.map(|d| match d {
            DistanceArg::Euclidean => Distance::Euclidean,
            DistanceArg::Heom => Distance::Heom,
        }),
        seed: a.seed,
        wercs_over: a.over,
        wercs_under: a.under,
        ..ResampleConfig::new(method)
    };
    let (result, report) = resample(&frame, target, &relevance, &config).map_err(tabular)?;
    let resampled = started.elapsed().as_secs_f64();
    result.write_csv(Path::new(&a.output)).map_err(tabular)?;
    let total = started.elapsed().as_secs_f64();

    let mut s = format!(
        "{}: {} rows × {} columns; target '{}'; φ from the {}: {}\n",
        a.input,
        frame.n_rows(),
        frame.names.len(),
        a.target,
        a.phi.describe(),
        relevance
            .control_points()
            .iter()
            .map(|p| format!("{}:{}", num(p.value), p.relevance))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut details = vec![
        format!("threshold {}", a.threshold),
        format!("seed {}", a.seed),
    ];
    match method {
        Method::Wercs => details.push(format!("over {}, under {}", a.over, a.under)),
        _ => details.push(format!("strategy {}", a.strategy)),
    }
    if matches!(method, Method::Smoter | Method::Smogn) {
        details.push(format!("k {}", a.k));
    }
    if matches!(method, Method::Gn | Method::Smogn) {
        details.push(format!("pert {}", a.pert.unwrap_or(method.default_pert())));
    }
    if let Some(d) = report.distance {
        details.push(format!(
            "distance {}",
            if d == Distance::Heom {
                "heom"
            } else {
                "euclidean"
            }
        ));
    }
    s.push_str(&format!(
        "method {}: {}\n\n",
        method.name(),
        details.join(", ")
    ));
    if !report.bumps.is_empty() {
        let mut g = Grid::new(&[
            "bump",
            "targets",
            "kind",
            "rows before",
            "factor",
            "rows after",
        ]);
        for (i, b) in report.bumps.iter().enumerate() {
            g.rows.push(vec![
                (i + 1).to_string(),
                format!("{} to {}", num(b.lo), num(b.hi)),
                if b.rare { "rare" } else { "normal" }.into(),
                b.before.to_string(),
                human(b.factor, 5),
                b.after.to_string(),
            ]);
        }
        s.push_str(&g.text());
        s.push('\n');
    }
    for note in &report.notes {
        s.push_str(&format!("note: {note}\n"));
        eprintln!("dirkit: note: {note}");
    }
    s.push_str(&format!(
        "rows: {} → {}; rare share (φ ≥ {}): {:.1}% → {:.1}%\n",
        report.rows_before,
        report.rows_after,
        a.threshold,
        100.0 * report.rare_share_before,
        100.0 * report.rare_share_after
    ));
    s.push_str(&format!(
        "wrote {} in {:.2} s (reading and resampling {:.2} s)\n",
        a.output, total, resampled
    ));
    out.write_all(s.as_bytes()).map_err(|source| CliError::Io {
        path: "<stdout>".into(),
        source,
    })
}

fn tabular(e: dirkit_tabular::TabularError) -> CliError {
    CliError::Usage(e.to_string())
}
