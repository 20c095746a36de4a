//! End-to-end tests of the `dirkit` binary: outputs, every documented error, stdin.

use predicates::prelude::*;
use serde_json::Value;

mod common;

use common::{dirkit, fails_with, repo, write};

fn agedb() -> String {
    repo()
        .join("datasets/agedb-dir/train_age_counts.csv")
        .to_string_lossy()
        .into_owned()
}

fn csv_rows(stdout: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn csv_output_has_exactly_the_documented_columns() {
    let out = dirkit()
        .args([
            "weights",
            &agedb(),
            "--count-column",
            "count",
            "--format",
            "csv",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows = csv_rows(&out);
    assert_eq!(
        rows[0].join(","),
        "bin,start,end,count,transformed,effective_density,weight,shot"
    );
    assert_eq!(rows.len(), 1 + 121, "AgeDB-DIR has 121 age bins");
    // Bin 0 is empty: no weight. Counts sum to the AgeDB-DIR training size.
    assert_eq!(rows[1][6], "");
    let total: u64 = rows[1..].iter().map(|r| r[3].parse::<u64>().unwrap()).sum();
    assert_eq!(total, 12208);
    // Weights over the samples average 1.
    let wsum: f64 = rows[1..]
        .iter()
        .filter(|r| !r[6].is_empty())
        .map(|r| r[3].parse::<f64>().unwrap() * r[6].parse::<f64>().unwrap())
        .sum();
    assert!((wsum / 12208.0 - 1.0).abs() < 1e-12);
}

#[test]
fn table_summary_reports_samples_bins_imbalance_and_shots() {
    dirkit()
        .args(["weights", &agedb(), "--count-column", "count"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("samples: 12208")
                .and(predicate::str::contains(
                    "bins: 121 of width 1 over [0, 121), 21 empty",
                ))
                .and(predicate::str::contains(
                    "imbalance ratio (max/min non-zero count): 353.0",
                ))
                .and(predicate::str::contains("many 51 bins / 11154 samples")),
        );
}

#[test]
fn range_end_is_exclusive() {
    let out = dirkit()
        .args([
            "weights",
            &agedb(),
            "--count-column",
            "count",
            "--range",
            "0:121",
            "--format",
            "csv",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(csv_rows(&out).len(), 122);
}

#[test]
fn per_sample_weights_follow_input_order_and_match_the_bin_table() {
    let dir = tempfile::tempdir().unwrap();
    let labels = [30.0, 2.0, 30.0, 31.0, 90.0, 30.0, 2.5];
    let text: String = std::iter::once("age,name".to_string())
        .chain(labels.iter().enumerate().map(|(i, y)| format!("{y},p{i}")))
        .collect::<Vec<_>>()
        .join("\n");
    let input = write(dir.path(), "train.csv", &text);
    let per = dir.path().join("w.csv");
    let out = dirkit()
        .args([
            "weights",
            &input,
            "--column",
            "age",
            "--format",
            "csv",
            "--per-sample",
        ])
        .arg(&per)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = csv_rows(&out);
    let written = std::fs::read_to_string(&per).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("weight"), "header mirrors the input's");
    let w: Vec<f64> = lines.map(|l| l.parse().unwrap()).collect();
    assert_eq!(w.len(), labels.len());
    for (y, wi) in labels.iter().zip(&w) {
        let row = table[1..]
            .iter()
            .find(|r| r[1].parse::<f64>().unwrap() <= *y && *y < r[2].parse::<f64>().unwrap())
            .unwrap();
        assert_eq!(row[6].parse::<f64>().unwrap(), *wi, "label {y}");
    }
    assert_eq!(w[0], w[2]);
    assert!(w[4] > w[0], "the lone 90 weighs more than the crowded 30");
    assert!((w.iter().sum::<f64>() / w.len() as f64 - 1.0).abs() < 1e-12);
}

#[test]
fn stdin_one_number_per_line() {
    let out = dirkit()
        .args([
            "weights",
            "-",
            "--format",
            "csv",
            "--lds",
            "none",
            "--reweight",
            "inverse",
            "--inverse-clip",
            "1:1000",
        ])
        .write_stdin("1\n2\n2\n3\n3\n3\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 4);
    let w: Vec<f64> = rows[1..].iter().map(|r| r[6].parse().unwrap()).collect();
    // u = 1/n; w_b = N u_b / Σ n u = 6 u_b / 3.
    assert_eq!(w, vec![2.0, 1.0, 2.0 / 3.0]);
}

#[test]
fn reference_compat_mode_prints_f32_weights_with_truncated_densities() {
    let out = dirkit()
        .args([
            "weights",
            &agedb(),
            "--count-column",
            "count",
            "--reweight",
            "inverse",
            "--compat",
            "reference",
            "--format",
            "csv",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    for r in &csv_rows(&out)[1..] {
        let d: f64 = r[5].parse().unwrap();
        assert_eq!(d, d.trunc(), "truncated integer density");
        if !r[6].is_empty() {
            let w: f64 = r[6].parse().unwrap();
            assert_eq!(w, w as f32 as f64, "an f32 value");
        }
    }
}

#[test]
fn json_and_markdown_formats() {
    let out = dirkit()
        .args([
            "weights",
            &agedb(),
            "--count-column",
            "count",
            "--format",
            "json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["summary"]["samples"], 12208);
    assert_eq!(v["bins"].as_array().unwrap().len(), 121);
    assert_eq!(v["bins"][0]["weight"], Value::Null);
    assert_eq!(v["config"]["reweight"]["method"], "sqrt-inverse");
    dirkit()
        .args([
            "weights",
            &agedb(),
            "--count-column",
            "count",
            "--format",
            "markdown",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("| bin | start |"));
}

#[test]
fn plot_writes_an_svg_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("lds.svg");
    dirkit()
        .args(["weights", &agedb(), "--count-column", "count", "--plot"])
        .arg(&svg)
        .assert()
        .success();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") || text.starts_with("<?xml"));
    fails_with(
        dirkit()
            .args(["weights", &agedb(), "--count-column", "count", "--plot"])
            .arg(&svg),
        &["already exists", "--force"],
    );
    dirkit()
        .args([
            "weights",
            &agedb(),
            "--count-column",
            "count",
            "--force",
            "--plot",
        ])
        .arg(&svg)
        .assert()
        .success();
}

#[test]
fn per_sample_never_overwrites_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "y.csv", "1\n2\n");
    fails_with(
        dirkit().args(["weights", &input, "--force", "--per-sample", &input]),
        &["refusing to overwrite the input"],
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "1\n2\n");
}

#[test]
fn bad_input_files_give_one_line_errors_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails_with(
        dirkit().args(["weights", "/no/such/file.csv"]),
        &["/no/such/file.csv", "No such file"],
    );
    let f = write(d, "a.csv", "age,path\n3,a.jpg\n");
    fails_with(
        dirkit().args(["weights", &f, "--column", "height"]),
        &["a.csv", "'height'", "no such column", "age, path"],
    );
    fails_with(dirkit().args(["weights", &f]), &["choose the label column"]);
    let f = write(d, "b.csv", "age,path\n3,a.jpg\n4,b.jpg\nforty,c.jpg\n");
    fails_with(
        dirkit().args(["weights", &f, "--column", "age"]),
        &["b.csv:4", "column 'age'", "'forty' is not a number"],
    );
    let f = write(d, "c.csv", "age\n3\nNaN\n");
    fails_with(
        dirkit().args(["weights", &f]),
        &["c.csv:3", "'NaN' is not finite"],
    );
    let f = write(d, "d.csv", "age\n3\ninf\n");
    fails_with(
        dirkit().args(["weights", &f]),
        &["d.csv:3", "'inf' is not finite"],
    );
    let f = write(d, "e.csv", "");
    fails_with(dirkit().args(["weights", &f]), &["e.csv", "is empty"]);
    let f = write(d, "f.csv", "age\n");
    fails_with(dirkit().args(["weights", &f]), &["f.csv", "no data rows"]);
    let f = write(d, "g.csv", "age,count\n3,2\n4,-1\n");
    fails_with(
        dirkit().args(["weights", &f, "--count-column", "count"]),
        &["g.csv:3", "column 'count'", "'-1' is not a count"],
    );
    let f = write(d, "h.csv", "age,path\n3,a\n4\n");
    fails_with(
        dirkit().args(["weights", &f, "--column", "age"]),
        &["h.csv:3", "1 field, expected 2"],
    );
    fails_with(
        dirkit().args(["weights", "-"]).write_stdin(""),
        &["<stdin>", "is empty"],
    );
    fails_with(
        dirkit().args(["weights", "-"]).write_stdin("1\n2\nx\n"),
        &["<stdin>:3", "'x' is not a number"],
    );
}

#[test]
fn invalid_hyper_parameters_give_one_line_errors() {
    let a = agedb();
    let base = ["weights", a.as_str(), "--count-column", "count"];
    let cases: &[(&[&str], &[&str])] = &[
        (&["--bin-width", "0"], &["bin width = 0"]),
        (&["--bin-width", "-1"], &["bin width = -1"]),
        (&["--ks", "4"], &["ks = 4", "odd"]),
        (&["--sigma", "0"], &["sigma = 0"]),
        (&["--sigma", "-2"], &["sigma = -2"]),
        (
            &["--reweight", "effective-number", "--beta", "1"],
            &["beta = 1", "(0, 1)"],
        ),
        (
            &["--reweight", "effective-number", "--beta", "0"],
            &["beta = 0"],
        ),
        (
            &["--beta", "0.9"],
            &["--beta applies to --reweight effective-number"],
        ),
        (
            &["--range", "200:300"],
            &["--range 200:300", "no label falls in [200, 300)"],
        ),
        (&["--range", "5"], &["invalid --range '5'"]),
        (&["--range", "9:3"], &["range end"]),
        (
            &["--reweight", "none", "--lds", "gaussian"],
            &["reweight = none"],
        ),
        (
            &["--inverse-clip", "10:5", "--reweight", "inverse"],
            &["inverse clip max = 5"],
        ),
        (
            &["--many", "10", "--few", "50"],
            &["few-shot threshold = 50"],
        ),
    ];
    for (extra, needles) in cases {
        fails_with(dirkit().args(base).args(*extra), needles);
    }
}

#[test]
fn out_of_range_policies() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "y.csv", "1\n2\n7\n");
    fails_with(
        dirkit().args(["weights", &f, "--range", "0:5", "--out-of-range", "error"]),
        &["y.csv:3: column '#0': 7 is outside the bin range [0, 5)"],
    );
    let per = dir.path().join("w.csv");
    dirkit()
        .args([
            "weights",
            &f,
            "--range",
            "0:5",
            "--out-of-range",
            "drop",
            "--per-sample",
        ])
        .arg(&per)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "samples: 2 (1 dropped as out of range)",
        ));
    let w = std::fs::read_to_string(&per).unwrap();
    assert_eq!(w.lines().nth(2), Some(""), "the dropped row has no weight");
}

fn reference_metrics() -> Value {
    let p = repo().join("tests/reference/metrics.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn eval_reproduces_the_reference_metrics() {
    let m = reference_metrics();
    let dir = tempfile::tempdir().unwrap();
    let train: String = m["train_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("{}\n", v.as_f64().unwrap()))
        .collect();
    let train = write(dir.path(), "train.txt", &train);
    for case in m["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut text = String::from("id,target,prediction\n");
        for (i, (t, p)) in case["targets"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["predictions"].as_array().unwrap())
            .enumerate()
        {
            text.push_str(&format!(
                "{i},{},{}\n",
                t.as_f64().unwrap(),
                p.as_f64().unwrap()
            ));
        }
        let pred = write(dir.path(), &format!("{name}.csv"), &text);
        let out = dirkit()
            .args([
                "eval", "--pred", &pred, "--train", &train, "--range", "0:31", "--many", "20",
                "--few", "5", "--format", "json",
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let r = &v["report"];
        let e = &case["expected"];
        for g in ["all", "many", "medium", "few"] {
            assert_eq!(r[g]["n"], e[g]["n"], "{name} {g} n");
            for k in ["mae", "mse", "rmse", "gmean"] {
                match (r[g][k].as_f64(), e[g][k].as_f64()) {
                    (Some(a), Some(b)) => assert!(
                        (a - b).abs() <= 1e-12 * b.abs(),
                        "{name} {g} {k}: {a} vs {b}"
                    ),
                    (None, None) => {}
                    (a, b) => panic!("{name} {g} {k}: {a:?} vs {b:?}"),
                }
            }
        }
        let pr = r["pearson_r"].as_f64().unwrap();
        assert!((pr - e["pearson_r"].as_f64().unwrap()).abs() < 1e-12);
    }
}

#[test]
fn eval_table_csv_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", "age\n1\n1\n1\n2\n5\n");
    let pred = write(
        dir.path(),
        "pred.csv",
        "target,prediction\n1,1.5\n2,2.5\n5,3\n",
    );
    dirkit()
        .args([
            "eval", "--pred", &pred, "--train", &train, "--many", "2", "--few", "2",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("MAE").and(predicate::str::contains("Pearson r")));
    let out = dirkit()
        .args([
            "eval", "--pred", &pred, "--train", &train, "--many", "2", "--few", "2", "--format",
            "csv",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows = csv_rows(&out);
    assert_eq!(
        rows[0][..7].join(","),
        "group,n,n_test_bins,mae,mse,rmse,gmean"
    );
    assert_eq!(rows[1][..4].join(","), "all,3,3,1");
    let bad = write(dir.path(), "bad.csv", "target,yhat\n1,2\n");
    fails_with(
        dirkit().args(["eval", "--pred", &bad, "--train", &train]),
        &["bad.csv", "no prediction column", "--pred-column"],
    );
    fails_with(
        dirkit().args([
            "eval",
            "--pred",
            &bad,
            "--train",
            &train,
            "--pred-column",
            "yhat",
            "--target-column",
            "nope",
        ]),
        &["'nope'", "no such column"],
    );
    let nan = write(dir.path(), "nan.csv", "target,prediction\n1,2\n2,nan\n");
    fails_with(
        dirkit().args(["eval", "--pred", &nan, "--train", &train]),
        &["nan.csv:3", "column 'prediction'", "not finite"],
    );
}

#[test]
fn help_shows_defaults() {
    dirkit()
        .args(["weights", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("[default: sqrt-inverse]")
                .and(predicate::str::contains("[default: 5]"))
                .and(predicate::str::contains("[default: 5:1000]")),
        );
}

#[test]
fn eval_sigma_column_reports_nll_coverage_and_ause() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", "age\n1\n1\n1\n2\n5\n");
    // Errors 0.5, 0.5, 2 with σ 1, 1, 1 (the layout the age-estimation example writes).
    let pred = write(
        dir.path(),
        "predictions.csv",
        "index,target,prediction,sigma\n0,1,1.5,1\n1,2,2.5,1\n2,5,3,1\n",
    );
    let out = dirkit()
        .args([
            "eval",
            "--pred",
            &pred,
            "--train",
            &train,
            "--sigma-column",
            "sigma",
            "--dist",
            "laplace",
            "--format",
            "json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let u = &v["uncertainty"];
    assert_eq!(u["dist"], "laplace");
    // Laplace with σ = 1: b = 1/√2, NLL = ln(2b) + |e|/b; the 50% interval is b·ln 2 ≈ 0.49
    // wide on each side (no error inside), the 90% one b·ln 10 ≈ 1.63 (two of three).
    let b = 1.0 / 2f64.sqrt();
    let want = [0.5, 0.5, 2.0]
        .iter()
        .map(|e| (2.0 * b).ln() + e / b)
        .sum::<f64>()
        / 3.0;
    assert!((u["nll"].as_f64().unwrap() - want).abs() < 1e-12);
    assert_eq!(u["coverage_50"].as_f64().unwrap(), 0.0);
    assert!((u["coverage_90"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    dirkit()
        .args([
            "eval",
            "--pred",
            &pred,
            "--train",
            &train,
            "--sigma-column",
            "sigma",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("the 90% interval"));
    let bad = write(
        dir.path(),
        "bad.csv",
        "target,prediction,sigma\n1,1.5,1\n2,2.5,-1\n",
    );
    fails_with(
        dirkit().args([
            "eval",
            "--pred",
            &bad,
            "--train",
            &train,
            "--sigma-column",
            "sigma",
        ]),
        &["bad.csv:3", "sigma", "-1", "> 0"],
    );
    fails_with(
        dirkit().args([
            "eval",
            "--pred",
            &pred,
            "--train",
            &train,
            "--sigma-column",
            "spread",
        ]),
        &["--sigma-column", "spread"],
    );
}
