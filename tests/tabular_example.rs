//! The tabular example end to end on a reduced budget: it runs, writes its three files, and
//! every (data set, model, method) cell holds finite numbers.

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
        .args(["--splits", "2", "--epochs", "2", "--out"])
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
    // 2 data sets × (14 MLP methods + 9 ridge methods).
    assert_eq!(lines.len(), 1 + 2 * 23, "{csv}");
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f[3], "2", "two splits each: {l}");
        let mae_all: f64 = f[4].parse().unwrap();
        let sera: f64 = f[12].parse().unwrap();
        assert!(
            mae_all.is_finite() && mae_all > 0.0 && sera.is_finite() && sera > 0.0,
            "{l}"
        );
    }
    assert!(
        std::fs::read_to_string(out.path().join("tabular.svg"))
            .unwrap()
            .contains("<svg")
    );
    assert!(
        std::fs::read_to_string(out.path().join("results.md"))
            .unwrap()
            .contains("| ridge | WERCS |")
    );
    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    for method in ["ConR", "RnC", "UVOTE", "VIR"] {
        assert!(
            md.contains(&format!("| MLP | {method} |")),
            "{method}: {md}"
        );
        assert!(
            !md.contains(&format!("| ridge | {method} |")),
            "{method}: {md}"
        );
    }
}
