//! Mutation fuzzing of everything that reads a user's file, on stable Rust: valid CSVs are
//! mutated by a seeded byte mutator (flips, inserted bytes and hostile tokens such as `NaN`,
//! `1e308`, quotes, CR, a BOM or invalid UTF-8, deleted, duplicated and swapped lines,
//! truncation) and fed to every `dirkit` subcommand in-process with varied flags, to the dataset
//! index reader, and — as raw label vectors — to LDS, DenseWeight and the relevance function.
//!
//! Promises checked on every case: no panic; an error is a typed one-line message; a success
//! writes no NaN (table, per-sample weights, resampled rows) and every weight is finite and
//! positive.
//!
//! `DIRKIT_FUZZ_CASES` sets the number of cases (default 10,000, what CI runs);
//! `DIRKIT_FUZZ_CASES=1000000 cargo test --release -p dirkit-cli --test fuzz -- --nocapture`
//! is the long run, `DIRKIT_FUZZ_SEED` another stream. A failure prints the case's seed and
//! input.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

use clap::Parser;
use dirkit_cli::args::Cli;
use dirkit_core::SplitMix64;

/// Valid label files (one label per row, or a `label,count` histogram).
const LABELS: &[&[u8]] = &[
    b"age\n23\n25\n25\n31\n47\n25\n24\n80\n3\n61\n",
    b"age,count\n1,3\n2,10\n3,40\n4,12\n7,1\n",
    b"1.5\n2.5\n2.5\n9\n",
];

/// Valid predictions files.
const PREDICTIONS: &[&[u8]] = &[
    b"target,prediction,sigma\n1,1.5,0.5\n2,2.5,1\n30,20,2\n4,4.5,0.1\n",
    b"y_pred;label\n3;2\n5;5\n61;60\n",
];

/// Valid tables with a target `y`.
const TABLES: &[&[u8]] = &[
    b"x,c,y\n1,a,1\n2,b,2\n3,a,3\n4,b,4\n5,a,100\n6,b,5\n7,a,6\n8,b,5\n9,a,4\n10,b,3\n11,a,120\n",
    b"a;b;y\n0.5;1;10\n0.25;2;12\n0.125;3;11\n1;4;90\n2;5;13\n3;1;12\n",
];

/// Tokens a spreadsheet export or a hostile user may put anywhere.
const TOKENS: &[&[u8]] = &[
    b"NaN",
    b"nan",
    b"inf",
    b"-inf",
    b"1e308",
    b"-1e308",
    b"1e400",
    b"4.9e-324",
    b"-0",
    b"\"",
    b"\"\"",
    b",",
    b";",
    b"\t",
    b"\n",
    b"\r\n",
    b"\r",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"",
    b" ",
    b"0x10",
    b"9007199254740993",
    b"-1",
    b"1.5",
    b"1e15",
    b"NA",
    b"?",
    b"age",
    b"count",
];

/// `input` with 0 to 3 mutations (none in a quarter of the cases, so valid input keeps being
/// checked too).
fn mutate(rng: &mut SplitMix64, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(8) {
            0 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] ^= 1 << rng.below(8);
            }
            1 => b.insert(at, rng.next_u64() as u8),
            2 | 3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(at..at, t.iter().copied());
            }
            4 => {
                let end = (at + rng.below(8)).min(b.len());
                b.drain(at..end);
            }
            5 | 6 => {
                // Duplicate or swap whole lines.
                let text = b.clone();
                let mut lines: Vec<&[u8]> = text.split(|&c| c == b'\n').collect();
                if lines.len() > 1 {
                    let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                    if rng.below(2) == 0 {
                        lines.insert(j, lines[i]);
                    } else {
                        lines.swap(i, j);
                    }
                }
                b = lines.join(&b'\n');
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// Runs one command line in-process; `Err` describes a broken promise.
fn run(args: &[String], outputs: &[&Path]) -> Result<bool, String> {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return Err(format!("flags do not parse: {e}")),
    };
    let mut out = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| dirkit_cli::run(&cli, &mut out)));
    let result = match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(format!("panicked: {msg}"));
        }
    };
    match result {
        Err(e) => {
            let msg = e.to_string();
            if msg.is_empty() || msg.contains('\n') {
                return Err(format!("error message is not one line: {msg:?}"));
            }
            Ok(false)
        }
        Ok(()) => {
            let text = String::from_utf8_lossy(&out);
            if has_nan(&text) {
                return Err(format!("a success printed NaN:\n{text}"));
            }
            for p in outputs {
                if let Ok(written) = std::fs::read_to_string(p) {
                    // The header echoes the input's column names, which may be anything.
                    let body = written.split_once('\n').map_or("", |(_, b)| b);
                    if has_nan(body) {
                        return Err(format!("{} holds NaN:\n{written}", p.display()));
                    }
                    if p.ends_with("w.csv") {
                        for w in written.lines().skip(1).filter(|l| !l.is_empty()) {
                            let v: f64 = w.parse().map_err(|_| format!("weight {w:?}"))?;
                            if !(v.is_finite() && v > 0.0) {
                                return Err(format!("weight {v} in {written}"));
                            }
                        }
                    }
                }
            }
            Ok(true)
        }
    }
}

/// Whether a number printed as NaN is among the fields of `text`.
fn has_nan(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || ",;:\"|()[]{}".contains(c))
        .any(|t| t.eq_ignore_ascii_case("nan"))
}

fn pick<'a>(rng: &mut SplitMix64, options: &[&'a str]) -> &'a str {
    options[rng.below(options.len())]
}

/// One fuzz case: a mutated file and a subcommand with varied flags.
fn cli_case(rng: &mut SplitMix64, dir: &Path) -> Result<(&'static str, bool), String> {
    let sub = match rng.below(4) {
        0 => "weights",
        1 => "eval",
        2 => "relevance",
        _ => "resample",
    };
    let seeds = match sub {
        "weights" => LABELS,
        "eval" => PREDICTIONS,
        "relevance" => [LABELS, TABLES][rng.below(2)],
        _ => TABLES,
    };
    let seed = seeds[rng.below(seeds.len())];
    let input = mutate(rng, seed);
    let file = dir.join("in.csv");
    std::fs::write(&file, &input).unwrap();
    let f = file.to_str().unwrap().to_string();
    let w_out = dir.join("w.csv");
    let r_out = dir.join("r.csv");
    let mut args: Vec<String> = vec!["dirkit".into()];
    args.push(sub.into());
    let column = pick(rng, &["", "", "", "0", "1", "age", "y"]);
    if matches!(sub, "weights" | "relevance") {
        args.push(f.clone());
        if !column.is_empty() {
            args.extend(["--column".into(), column.into()]);
        }
    }
    match sub {
        "weights" => {
            let extra = pick(
                rng,
                &[
                    "",
                    "--format csv",
                    "--format json",
                    "--count-column count",
                    "--count-column 1",
                    "--bin-width auto",
                    "--bin-width scott",
                    "--bin-width 0.5",
                    "--range 0:50",
                    "--range 0:5 --out-of-range drop",
                    "--lds triangular --ks 3",
                    "--reweight inverse",
                    "--reweight effective-number",
                    "--compat reference",
                    "--per-sample W --force",
                ],
            );
            for a in extra.split_whitespace() {
                args.push(if a == "W" {
                    w_out.to_str().unwrap().into()
                } else {
                    a.into()
                });
            }
        }
        "eval" => {
            let train = dir.join("train.csv");
            std::fs::write(&train, mutate(rng, LABELS[0])).unwrap();
            args.extend(["--pred".into(), f.clone()]);
            args.extend(["--train".into(), train.to_str().unwrap().into()]);
            let extra = pick(
                rng,
                &[
                    "",
                    "--sera",
                    "--sigma-column sigma",
                    "--format json",
                    "--bin-width auto",
                ],
            );
            args.extend(extra.split_whitespace().map(String::from));
        }
        "relevance" => {
            let extra = pick(
                rng,
                &[
                    "",
                    "--extremes high",
                    "--box-plot adjusted",
                    "--box-plot smogn",
                    "--control 0:1,10:0,40:1",
                    "--format csv",
                ],
            );
            args.extend(extra.split_whitespace().map(String::from));
        }
        _ => {
            args.push(f.clone());
            args.extend(["--target".into(), pick(rng, &["y", "y", "y", "x"]).into()]);
            let method = pick(rng, &["ro", "ru", "gn", "smoter", "smogn", "wercs"]);
            args.extend(["--method".into(), method.into()]);
            args.extend(["--seed".into(), (rng.next_u64() % 1000).to_string()]);
            args.extend([
                "--output".into(),
                r_out.to_str().unwrap().into(),
                "--force".into(),
            ]);
            let extra = pick(rng, &["", "--strategy extreme", "--k 1", "--threshold 0.8"]);
            args.extend(extra.split_whitespace().map(String::from));
        }
    }
    let outcome = run(&args, &[&w_out, &r_out]);
    for p in [&w_out, &r_out] {
        let _ = std::fs::remove_file(p);
    }
    let ok = outcome.map_err(|e| {
        format!(
            "{e}\n  args: {args:?}\n  input: {:?}",
            String::from_utf8_lossy(&input)
        )
    })?;
    Ok((sub, ok))
}

/// A mutated dataset index through the index reader: a typed error or rows, never a panic.
fn index_case(rng: &mut SplitMix64, dir: &Path) -> Result<bool, String> {
    let seed = b"age,path,split\n20,a.png,train\n30,b.png,val\n40,c.png,test\n";
    let input = mutate(rng, seed);
    let csv = dir.join("index.csv");
    std::fs::write(&csv, &input).unwrap();
    let r = catch_unwind(|| dirkit_data::dataset::read_index(&csv, dir, false));
    match r {
        Err(_) => Err(format!(
            "read_index panicked on {:?}",
            String::from_utf8_lossy(&input)
        )),
        Ok(Ok(index)) => {
            for rec in &index.records {
                if !(rec.age.is_finite() && rec.age >= 0.0) {
                    return Err(format!("record age {}", rec.age));
                }
            }
            Ok(true)
        }
        Ok(Err(_)) => Ok(false),
    }
}

/// Raw label vectors with extreme values through LDS, DenseWeight and φ.
fn labels_case(rng: &mut SplitMix64) -> Result<bool, String> {
    let n = 1 + rng.below(40);
    let specials = [
        0.0,
        -0.0,
        1e308,
        -1e308,
        f64::MIN_POSITIVE,
        5e-324,
        1e15,
        f64::NAN,
        f64::INFINITY,
    ];
    let base = rng.uniform() * 100.0;
    let labels: Vec<f64> = (0..n)
        .map(|_| match rng.below(10) {
            0 => specials[rng.below(specials.len())],
            1 => base,
            _ => base + rng.normal() * 10f64.powi(rng.below(6) as i32 - 2),
        })
        .collect();
    let shown = format!("{labels:?}");
    let r = catch_unwind(|| -> Result<bool, String> {
        use dirkit_core::{
            Binning, DenseWeight, DenseWeightConfig, LabelDensity, LdsConfig, OutOfRange,
            Relevance, RelevanceConfig,
        };
        let finite_positive = |what: &str, w: &[f64]| {
            if w.iter().all(|v| v.is_finite() && *v > 0.0) {
                Ok(())
            } else {
                Err(format!("{what} weights {w:?}"))
            }
        };
        let all_finite = labels.iter().all(|y| y.is_finite());
        let Ok(dw) = DenseWeight::fit(&labels, DenseWeightConfig::default()) else {
            // Refused: a NaN or infinite label, one label, or no spread for a bandwidth.
            return Ok(false);
        };
        if !all_finite {
            return Err("DenseWeight accepted a non-finite label".into());
        }
        let w = dw.weights(&labels);
        if !w.iter().all(|v| v.is_finite() && *v >= 0.0) {
            return Err(format!("DenseWeight weights {w:?}"));
        }
        let (lo, hi) = labels
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &y| {
                (l.min(y), h.max(y))
            });
        if let Ok(bins) = Binning::auto_from_min_max(lo, hi, 1.0)
            && let Ok(lds) =
                LabelDensity::fit(&labels, bins, OutOfRange::Clip, &LdsConfig::default())
        {
            let w = lds.sample_weights(&labels).map_err(|e| e.to_string())?;
            finite_positive("LDS", &w)?;
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            if (mean - 1.0).abs() > 1e-9 {
                return Err(format!("LDS weights average {mean}"));
            }
        }
        if let Ok(phi) = Relevance::from_targets(&labels, &RelevanceConfig::default()) {
            for &y in &labels {
                let p = phi.phi(y);
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("φ({y}) = {p}"));
                }
            }
        }
        Ok(true)
    });
    match r {
        Err(_) => Err(format!("panicked on labels {shown}")),
        Ok(Err(e)) => Err(format!("{e} on labels {shown}")),
        Ok(Ok(accepted)) => Ok(accepted),
    }
}

#[test]
fn mutated_inputs_never_panic_or_yield_nan() {
    let cases: usize = std::env::var("DIRKIT_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("DIRKIT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Panics are caught and reported with their case; the default hook would print each.
    std::panic::set_hook(Box::new(|_| {}));
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut tally = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    let mut failures = Vec::new();
    for case in 0..cases {
        let mut rng = SplitMix64::new(seed ^ (case as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let outcome = match case % 6 {
            0 => index_case(&mut rng, dir.path()).map(|ok| ("index", ok)),
            1 => labels_case(&mut rng).map(|ok| ("labels", ok)),
            _ => cli_case(&mut rng, dir.path()),
        };
        match outcome {
            Ok((what, ok)) => {
                let t = tally.entry(what).or_default();
                if ok { t.0 += 1 } else { t.1 += 1 }
            }
            Err(e) => {
                failures.push(format!("case {case} (seed {seed}): {e}"));
                if failures.len() >= 10 {
                    break;
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz: {cases} cases in {secs:.1} s ({:.0}/s); accepted / refused: {tally:?}",
        cases as f64 / secs
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The mutations must exercise both paths of every reader, or the run proves little.
    for (what, (ok, refused)) in &tally {
        assert!(
            cases < 600 || (*ok > 0 && *refused > 0),
            "{what}: {ok} accepted, {refused} refused"
        );
    }
}
