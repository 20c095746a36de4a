//! `dirkit relevance`, `dirkit resample`, `eval --sera` and `--bin-width auto` end to end.

use dirkit_core::relevance::{Relevance, RelevanceConfig, sera, utility_scores};
use serde_json::Value;

mod common;

use common::{dirkit, fails_with, repo_file, stdout_of, write};

fn wine() -> String {
    repo_file("datasets/wine-quality/winequality-red.csv")
}

fn abalone() -> String {
    repo_file("datasets/abalone/abalone.csv")
}

fn column(path: &str, name: &str) -> Vec<f64> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let idx = r.headers().unwrap().iter().position(|h| h == name).unwrap();
    r.records()
        .map(|x| x.unwrap()[idx].parse().unwrap())
        .collect()
}

#[test]
fn relevance_csv_is_one_row_per_input_row_in_order() {
    let text = stdout_of(dirkit().args([
        "relevance",
        &abalone(),
        "--column",
        "rings",
        "--format",
        "csv",
    ]));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("value,relevance"));
    let rows: Vec<(f64, f64)> = lines
        .map(|l| {
            let (a, b) = l.split_once(',').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    let y = column(&abalone(), "rings");
    assert_eq!(rows.len(), y.len());
    let r = Relevance::from_targets(&y, &RelevanceConfig::default()).unwrap();
    for ((v, p), want) in rows.iter().zip(&y) {
        assert_eq!(v, want);
        assert_eq!(*p, r.phi(*want));
    }
}

#[test]
fn relevance_table_json_plot_and_control_points() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("phi.svg");
    let text = stdout_of(
        dirkit()
            .args(["relevance", &wine(), "--column", "quality", "--plot"])
            .arg(&plot),
    );
    assert!(
        text.contains("rare share: 60.1% with φ ≥ 0.5, 17.5% with φ ≥ 0.8"),
        "{text}"
    );
    assert!(text.contains("6 to 6") && text.contains("normal"), "{text}");
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
    // The plot is not overwritten without --force.
    fails_with(
        dirkit()
            .args(["relevance", &wine(), "--column", "quality", "--plot"])
            .arg(&plot),
        &["already exists"],
    );
    let out = stdout_of(
        dirkit()
            .args([
                "relevance",
                &wine(),
                "--column",
                "quality",
                "--format",
                "json",
            ])
            .args(["--control", "3:1,5.5:0,8:1:0"]),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["control_points"].as_array().unwrap().len(), 3);
    assert_eq!(v["relevance"].as_array().unwrap().len(), 1599);
    fails_with(
        dirkit().args([
            "relevance",
            &wine(),
            "--column",
            "quality",
            "--control",
            "3:1,x:0",
        ]),
        &["invalid --control point 'x:0'"],
    );
    fails_with(
        dirkit().args([
            "relevance",
            &wine(),
            "--column",
            "quality",
            "--control",
            "3:1.5",
        ]),
        &["relevance = 1.5"],
    );
    fails_with(
        dirkit().args(["relevance", &wine(), "--column", "nope"]),
        &["--column 'nope': no such column"],
    );
}

#[test]
fn resample_writes_a_readable_seeded_csv_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("sub dir/b.csv");
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    for out in [&a, &b] {
        let summary = stdout_of(
            dirkit()
                .args([
                    "resample",
                    &abalone(),
                    "--target",
                    "rings",
                    "--method",
                    "smogn",
                ])
                .args(["--seed", "7", "--output"])
                .arg(out),
        );
        let s = summary;
        assert!(
            s.contains("distance heom"),
            "the nominal sex column switches to HEOM: {s}"
        );
        assert!(s.contains("rows: 4177 → "), "{s}");
    }
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ba, bb, "same seed, same bytes");
    let text = String::from_utf8(ba).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        std::fs::read_to_string(abalone())
            .unwrap()
            .lines()
            .next()
            .unwrap()
    );
    let sexes: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(sexes.into_iter().collect::<Vec<_>>(), ["F", "I", "M"]);
    // Refuses an existing output, and the input itself even with --force.
    fails_with(
        dirkit()
            .args([
                "resample",
                &abalone(),
                "--target",
                "rings",
                "--method",
                "ro",
                "--output",
            ])
            .arg(&a),
        &["already exists"],
    );
    let copy = write(
        dir.path(),
        "in.csv",
        &std::fs::read_to_string(wine()).unwrap(),
    );
    fails_with(
        dirkit().args([
            "resample", &copy, "--target", "quality", "--method", "ro", "--output", &copy,
            "--force",
        ]),
        &["refusing to overwrite the input"],
    );
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        std::fs::read_to_string(wine()).unwrap()
    );
}

#[test]
fn resample_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.csv");
    let run = |file: &str, extra: &[&str]| {
        let mut c = dirkit();
        c.args([
            "resample", file, "--target", "y", "--method", "smoter", "--output",
        ])
        .arg(&out)
        .args(extra);
        c
    };
    let missing = write(dir.path(), "m.csv", "x,y\n1,2\n3,\n");
    fails_with(
        &mut run(&missing, &[]),
        &["m.csv:3: column 'y': missing value"],
    );
    let text = write(dir.path(), "t.csv", "x,y\n1,2\nabc,3\n");
    fails_with(
        &mut run(&text, &[]),
        &["t.csv:3: column 'x': 'abc' is not a number", "--nominal"],
    );
    let flat = write(dir.path(), "f.csv", "x,y\n1,2\n3,2\n4,2\n");
    fails_with(&mut run(&flat, &[]), &["is constant (every row is 2)"]);
    let even = write(dir.path(), "e.csv", "x,y\n1,1\n2,2\n3,3\n4,4\n5,5\n");
    fails_with(
        &mut run(&even, &[]),
        &["no row has relevance ≥ 0.5", "control points"],
    );
    fails_with(
        &mut run(&even, &["--threshold", "1.5"]),
        &["--threshold 1.5"],
    );
    fails_with(
        &mut run(&even, &["--strategy", "lots"]),
        &["invalid --strategy 'lots'"],
    );
    let nominal_target = write(dir.path(), "n.csv", "x,y\n1,a\n2,b\n");
    fails_with(
        &mut run(&nominal_target, &[]),
        &["--target y: the column holds text"],
    );
    // clap's own usage error: several lines, exit code 2.
    let usage = dirkit()
        .args([
            "resample",
            &wine(),
            "--target",
            "quality",
            "--method",
            "magic",
        ])
        .args(["--output", "x.csv"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8(usage)
            .unwrap()
            .contains("invalid value 'magic'")
    );
    let nowhere = dir.path().join("missing/o.csv");
    fails_with(
        dirkit()
            .args([
                "resample",
                &wine(),
                "--target",
                "quality",
                "--method",
                "ro",
                "--output",
            ])
            .arg(&nowhere),
        &["does not exist"],
    );
    assert!(!out.exists(), "no output after a failure");
}

#[test]
fn eval_sera_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let y = column(&abalone(), "rings");
    let (train, test) = y.split_at(3000);
    let mut train_csv = String::from("rings\n");
    for v in train {
        train_csv.push_str(&format!("{v}\n"));
    }
    let mut pred_csv = String::from("target,prediction\n");
    let preds: Vec<f64> = test.iter().map(|v| 0.7 * v + 3.0).collect();
    for (t, p) in test.iter().zip(&preds) {
        pred_csv.push_str(&format!("{t},{p}\n"));
    }
    let train_path = write(dir.path(), "train.csv", &train_csv);
    let pred_path = write(dir.path(), "pred.csv", &pred_csv);
    let r = Relevance::from_targets(train, &RelevanceConfig::default()).unwrap();
    let want = sera(&preds, test, &r, 0.001).unwrap();
    let run = |format: &str| {
        stdout_of(
            dirkit()
                .args([
                    "eval",
                    "--pred",
                    &pred_path,
                    "--train",
                    &train_path,
                    "--sera",
                ])
                .args(["--format", format]),
        )
    };
    let v: Value = serde_json::from_str(&run("json")).unwrap();
    let got = v["report"]["all"]["sera"].as_f64().unwrap();
    assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
    let parts: f64 = ["many", "medium", "few"]
        .iter()
        .filter_map(|g| v["report"][g]["sera"].as_f64())
        .sum();
    assert!(
        (parts - want).abs() <= 1e-9 * want,
        "shots add up to the whole"
    );
    let u = utility_scores(&preds, test, &r, 0.8, 1.0).unwrap();
    let ju = &v["report"]["utility"];
    assert_eq!(ju["f_score"].as_f64(), Some(u.f_score));
    assert_eq!(ju["precision"].as_f64(), Some(u.precision));
    let csv = run("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[header.len() - 4..],
        ["sera", "utility_precision", "utility_recall", "utility_f1"]
    );
    let all: Vec<&str> = lines.next().unwrap().split(',').collect();
    let sera_col = all[all.len() - 4].parse::<f64>().unwrap();
    assert!((sera_col - want).abs() <= 1e-9 * want);
    assert_eq!(all.last().unwrap().parse::<f64>().unwrap(), u.f_score);
    let many: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(many.last(), Some(&""), "utility is an overall figure");
    let table = run("table");
    assert!(table.contains("SERA") && table.contains("utility-based precision / recall / F1"));
    // Without --sera nothing changes.
    let plain = stdout_of(dirkit().args([
        "eval",
        "--pred",
        &pred_path,
        "--train",
        &train_path,
        "--format",
        "csv",
    ]));
    assert!(!plain.contains("sera"));
}

#[test]
fn bin_width_auto_announces_its_choice() {
    let out = dirkit()
        .args([
            "weights",
            &abalone(),
            "--column",
            "rings",
            "--bin-width",
            "auto",
            "--format",
            "json",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(
            "Freedman–Diaconis over 4177 training labels gives 1 (rounded to a whole number"
        ),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["binning"]["width"].as_f64(), Some(1.0));
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "y.csv",
        &(0..1000)
            .map(|i| format!("{}\n", i as f64 / 7.0))
            .collect::<String>(),
    );
    let out = dirkit()
        .args(["weights", &f, "--bin-width", "scott", "--format", "csv"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("Scott over 1000")
    );
    fails_with(
        dirkit().args(["weights", &f, "--bin-width", "wide"]),
        &["invalid --bin-width 'wide'"],
    );
}
