//! `dirkit select` end to end on a shipped table: the JSON document's promised keys, the
//! choice within the constraint, the figures, and the same output for the same seed.

use serde_json::Value;

mod common;

use common::{dirkit, repo_file, stdout_of};

fn abalone() -> String {
    repo_file("datasets/abalone/abalone.csv")
}

fn json_of(args: &[&str]) -> Value {
    let text = stdout_of(dirkit().args(args));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn json_holds_candidates_choice_and_holdout() {
    let args = [
        "select",
        &abalone(),
        "--target",
        "rings",
        "--nominal",
        "sex",
        "--format",
        "json",
    ];
    let v = json_of(&args);
    let cands = v["candidates"].as_array().unwrap();
    assert!(cands.len() >= 20, "{} candidates", cands.len());
    for c in cands {
        assert!(c["name"].is_string() && c["learner"] == "ridge");
        assert!(c["mean"]["mae_all"].as_f64().unwrap() > 0.0);
    }
    let names: Vec<&str> = cands.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in [
        "ridge/plain",
        "ridge/lds-a0.5",
        "ridge/smogn-t0.8",
        "ridge/wercs",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let chosen = v["chosen"]["name"].as_str().unwrap();
    assert!(names.contains(&chosen));
    let plain = cands.iter().find(|c| c["name"] == "ridge/plain").unwrap();
    let pick = cands.iter().find(|c| c["name"] == chosen).unwrap();
    let (p, c) = (
        plain["mean"]["mae_all"].as_f64().unwrap(),
        pick["mean"]["mae_all"].as_f64().unwrap(),
    );
    assert!(c <= p * 1.02 + 1e-12, "chosen overall MAE {c} vs plain {p}");
    assert!(pick["mean"]["mae_few"].as_f64() <= plain["mean"]["mae_few"].as_f64());
    for side in ["chosen", "plain", "lds"] {
        for k in ["mae_all", "mae_few", "sera"] {
            assert!(
                v["holdout"][side][k].as_f64().is_some(),
                "holdout.{side}.{k} in {}",
                v["holdout"]
            );
        }
    }
    assert_eq!(v["holdout"]["test_rows"], 835);
    assert!(v["command"].as_str().unwrap().starts_with("dirkit select "));
    // The same seed gives the same document.
    assert_eq!(json_of(&args), v);
}

#[test]
fn no_winner_says_so_and_the_figures_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let figs = dir.path().join("figs");
    let text = stdout_of(
        dirkit()
            .args([
                "select",
                &abalone(),
                "--target",
                "rings",
                "--methods",
                "ru",
                "--max-all-loss",
                "0",
                "--test-size",
                "0",
                "--plot",
            ])
            .arg(&figs),
    );
    assert!(text.contains("no candidate beats plain"), "{text}");
    assert!(
        text.contains("apply: fit the ridge learner as it is"),
        "{text}"
    );
    let png = std::fs::read(figs.join("pareto.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(figs.join("pareto.svg")).unwrap();
    assert!(svg.contains("ridge/plain"));
    let csv = stdout_of(dirkit().args([
        "select",
        &abalone(),
        "--target",
        "rings",
        "--methods",
        "lds",
        "--format",
        "csv",
        "--test-size",
        "0",
    ]));
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("name,learner,method,folds,mae_all,mae_all_std")
    );
    assert!(lines.count() >= 5);
    let md = stdout_of(dirkit().args([
        "select",
        &abalone(),
        "--target",
        "rings",
        "--methods",
        "lds",
        "--format",
        "md",
    ]));
    let header = |first: &str| {
        md.lines().any(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            cells.len() > 3
                && cells[1] == first
                && cells[2].contains(if first == "candidate" {
                    "MAE all"
                } else {
                    "configuration"
                })
        })
    };
    assert!(header("candidate") && header("held out"), "{md}");
    assert!(md.contains("Reproduce: `dirkit select "), "{md}");
}
