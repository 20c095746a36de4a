//! Figures are written whole or not at all: the uncertainty figure as SVG and PNG, rewritten in
//! place, leaves exactly the two files; a missing folder or an unknown extension is an error
//! naming the path.

use dirkit_core::{PredictiveDist, UncertaintyReport};
use dirkit_plot::write_uncertainty_plot;

#[test]
fn figures_replace_the_old_file_whole_and_leave_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let pred: Vec<f64> = (0..50).map(|i| i as f64).collect();
    let target: Vec<f64> = pred.iter().map(|p| p + (p * 0.7).sin() * 3.0).collect();
    let sigma: Vec<f64> = pred
        .iter()
        .map(|p| 1.0 + (p * 0.7).sin().abs() * 2.0)
        .collect();
    let report =
        UncertaintyReport::compute(&pred, &sigma, &target, PredictiveDist::Gaussian, 20).unwrap();
    for _ in 0..2 {
        for name in ["u.svg", "u.png"] {
            write_uncertainty_plot(&dir.path().join(name), &report, &pred, &sigma, &target, "t")
                .unwrap();
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["u.png", "u.svg"]);
    let svg = std::fs::read_to_string(dir.path().join("u.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("AUSE"),
        "{}",
        &svg[..200]
    );
    let png = std::fs::read(dir.path().join("u.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    for bad in [
        dir.path().join("missing").join("u.svg"),
        dir.path().join("u.gif"),
    ] {
        let e = write_uncertainty_plot(&bad, &report, &pred, &sigma, &target, "t").unwrap_err();
        assert!(e.contains(&bad.display().to_string()), "{e}");
        assert!(!bad.exists());
    }
}
