//! The tabular example end to end on a reduced budget: it runs, writes its files, and every
//! (table, candidate) row holds finite numbers with exactly one choice per table.

use std::path::PathBuf;
use std::process::Command;

fn example() -> PathBuf {
    // tests/…/deps/tabular_example-… → …/examples/tabular (cargo test builds the examples).
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    dir.join(format!("tabular{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn tabular_example_writes_every_cell() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(example())
        .args(["--folds", "2", "--epochs", "2", "--out"])
        .arg(out.path())
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo test builds the examples; with --test alone, \
                 run `cargo build --example tabular` first)",
                example().display()
            )
        });
    assert!(status.success());
    let csv = std::fs::read_to_string(out.path().join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    for table in ["wine", "abalone"] {
        let rows: Vec<&&str> = lines.iter().filter(|l| l.starts_with(table)).collect();
        // Ridge: plain, 4 LDS, 4 DenseWeight, 5 resamplers × 2 thresholds, WERCS, ≥ 3 blends;
        // the MLP adds Balanced MSE, ConR, RnC, UVOTE and VIR.
        assert!(rows.len() >= 2 * 23 + 5, "{table}: {} rows", rows.len());
        assert_eq!(rows.iter().filter(|l| l.ends_with(",true")).count(), 1);
        // A resampler may refuse a table (wine at φ ≥ 0.5: the rare rows outnumber the normal
        // ones); it is reported and never chosen.
        let failed = rows
            .iter()
            .filter(|l| l.split(',').nth(3) == Some("0"))
            .count();
        assert!(failed <= 2, "{table}: {failed} failed candidates");
        for l in rows.iter().filter(|l| l.split(',').nth(3) != Some("0")) {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f[3], "2", "two folds each: {l}");
            let mae_all: f64 = f[4].parse().unwrap();
            assert!(mae_all.is_finite() && mae_all > 0.0, "{l}");
        }
    }
    for table in ["wine", "abalone"] {
        let svg = std::fs::read_to_string(out.path().join(format!("pareto-{table}.svg"))).unwrap();
        assert!(svg.contains("<svg"));
    }
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(md.contains("| ridge/wercs |"), "{md}");
    for method in ["conr", "rnc", "uvote", "vir"] {
        assert!(md.contains(&format!("| mlp/{method} ")), "{method}: {md}");
        assert!(
            !md.contains(&format!("| ridge/{method} ")),
            "{method}: {md}"
        );
    }
    assert!(md.contains("| always LDS |"));
}
