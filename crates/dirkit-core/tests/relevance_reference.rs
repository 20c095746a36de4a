//! φ, SERA and the utility-based F-measure against the vectors of
//! `tests/reference/tabular/` (made by its `generate.py` from imbreg 0.1.3 and smogn 0.1.2).

use dirkit_core::relevance::{
    BoxPlot, ControlPoint, Extremes, Relevance, RelevanceConfig, sera, utility_scores,
};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/reference/tabular/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn points(v: &Value) -> Vec<ControlPoint> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = floats(r);
            ControlPoint {
                value: r[0],
                relevance: r[1],
                slope: r[2],
            }
        })
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], atol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn phi_matches_imbreg_in_every_case_and_setting() {
    let doc = load("phi.json");
    let mut checked = 0;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let y = floats(&case["y"]);
        for (key, c) in case["imbreg"].as_object().unwrap() {
            let extremes = match c["extremes"].as_str().unwrap() {
                "both" => Extremes::Both,
                "high" => Extremes::High,
                _ => Extremes::Low,
            };
            let config = RelevanceConfig {
                extremes,
                coef: c["coef"].as_f64().unwrap(),
                box_plot: BoxPlot::Ubl,
            };
            let r = Relevance::from_targets(&y, &config).unwrap();
            assert_eq!(
                r.control_points(),
                &points(&c["control_points"])[..],
                "{name} {key}: control points"
            );
            assert_close(
                &r.phi_all(&y),
                &floats(&c["phi"]),
                1e-9,
                &format!("{name} {key}"),
            );
            let probe = floats(&c["probe"]);
            assert_close(
                &r.phi_all(&probe),
                &floats(&c["phi_probe"]),
                1e-9,
                &format!("{name} {key} probe"),
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 10 * 6);
}

#[test]
fn phi_matches_smogn_with_its_box_plot() {
    let doc = load("phi.json");
    let mut differ = 0;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let y = floats(&case["y"]);
        let s = &case["smogn"];
        assert!(
            s.get("error").is_none(),
            "{name}: smogn failed when generating"
        );
        let config = RelevanceConfig {
            box_plot: BoxPlot::Smogn,
            ..RelevanceConfig::default()
        };
        let r = Relevance::from_targets(&y, &config).unwrap();
        let want = points(&s["control_points"]);
        assert_eq!(
            r.control_points(),
            &want[..],
            "{name}: smogn control points"
        );
        assert_close(&r.phi_all(&y), &floats(&s["phi"]), 1e-9, name);
        let ubl = Relevance::from_targets(&y, &RelevanceConfig::default()).unwrap();
        if ubl.control_points() != r.control_points() {
            differ += 1;
        }
    }
    // The set holds cases where the two conventions disagree, and we reproduce both.
    assert!(
        differ >= 2,
        "only {differ} cases where UBL and smogn differ"
    );
}

#[test]
fn manual_control_points_match_imbreg_range() {
    let doc = load("phi.json");
    for (i, m) in doc["manual"].as_array().unwrap().iter().enumerate() {
        let r = Relevance::from_control_points(&points(&m["control_points"])).unwrap();
        let probe = floats(&m["probe"]);
        assert_close(
            &r.phi_all(&probe),
            &floats(&m["phi"]),
            1e-9,
            &format!("manual {i}"),
        );
    }
}

#[test]
fn sera_and_utility_scores_match_imbreg() {
    let doc = load("metrics.json");
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let train = floats(&case["y_train"]);
        let y = floats(&case["y"]);
        let p = floats(&case["y_pred"]);
        let r = Relevance::from_targets(&train, &RelevanceConfig::default()).unwrap();
        assert_eq!(r.control_points(), &points(&case["control_points"])[..]);
        for (step, want) in case["sera"].as_object().unwrap() {
            let got = sera(&p, &y, &r, step.parse().unwrap()).unwrap();
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs() + 1e-12,
                "{name} step {step}: {got} vs {want}"
            );
        }
        for (thr, want) in case["utility"].as_object().unwrap() {
            let got = utility_scores(&p, &y, &r, thr.parse().unwrap(), 1.0).unwrap();
            for (g, key) in [
                (got.precision, "precision"),
                (got.recall, "recall"),
                (got.f_score, "f1"),
            ] {
                let w = want[key].as_f64().unwrap();
                assert!(
                    (g - w).abs() <= 1e-9 * w.abs(),
                    "{name} thr {thr} {key}: {g} vs {w}"
                );
            }
        }
    }
}
