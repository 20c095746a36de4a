//! The resamplers by their defining properties: where new rows lie, how many rows each bump
//! gets, what is kept, and that a seed fixes the output.

use dirkit_core::SplitMix64;
use dirkit_core::relevance::{ControlPoint, Relevance, RelevanceConfig, bumps};
use dirkit_tabular::{Column, Frame, Method, ResampleConfig, Strategy, resample};

/// A table with two numeric features, one nominal feature and a right-skewed target with
/// both a rare low run and a rare high run.
fn table(n: usize, seed: u64) -> Frame {
    let mut g = SplitMix64::new(seed);
    let mut csv = String::from("a,colour,b,y\n");
    for i in 0..n {
        let y = (g.normal() * 0.6).exp() * 10.0;
        let a = (y * 3.0 + g.normal()).round() / 4.0;
        let b = g.uniform() * 100.0;
        let colour = ["red", "green", "blue"][g.below(3)];
        csv.push_str(&format!(
            "{a},{colour},{b},{}\n",
            (y * 100.0).round() / 100.0 + i as f64 * 1e-6
        ));
    }
    Frame::parse_csv(csv.as_bytes(), "table.csv", &[]).unwrap()
}

fn phi_of(f: &Frame) -> Relevance {
    Relevance::from_targets(f.columns[3].numbers().unwrap(), &RelevanceConfig::default()).unwrap()
}

fn row(f: &Frame, i: usize) -> Vec<f64> {
    f.columns
        .iter()
        .map(|c| match c {
            Column::Numeric(v) => v[i],
            Column::Nominal { codes, .. } => codes[i] as f64,
        })
        .collect()
}

fn csv_bytes(f: &Frame) -> Vec<u8> {
    let mut v = Vec::new();
    f.write_to(&mut v).unwrap();
    v
}

#[test]
fn smoter_rows_lie_on_a_segment_to_a_neighbour_with_the_weighted_target() {
    let f = table(300, 1);
    let phi = phi_of(&f);
    let cfg = ResampleConfig {
        seed: 3,
        ..ResampleConfig::new(Method::Smoter)
    };
    let (out, report) = resample(&f, 3, &phi, &cfg).unwrap();
    let y = f.columns[3].numbers().unwrap();
    let bs = bumps(y, &phi.phi_all(y), 0.5).unwrap();
    let kept = out.n_rows() - report.bumps.iter().map(|b| b.after).sum::<usize>();
    assert_eq!(kept, 0, "every output row is accounted for by a bump");
    let n_new: usize = report
        .bumps
        .iter()
        .filter(|b| b.factor > 1.0)
        .map(|b| b.after - b.before)
        .sum();
    assert!(n_new > 50, "{n_new}");
    let ranges: Vec<f64> = [0usize, 2]
        .iter()
        .map(|&c| {
            let v = f.columns[c].numbers().unwrap();
            v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
        })
        .collect();
    let _ = ranges;
    let first_new = out.n_rows() - n_new;
    for r in first_new..out.n_rows() {
        let new = row(&out, r);
        // Find the parents: a pair in one rare bump, b among a's 5 nearest (HEOM), such that
        // the new row is on their segment.
        let mut found = false;
        'outer: for bump in bs.iter().filter(|b| b.rare) {
            let rows: Vec<Vec<f64>> = bump.rows.iter().map(|&i| row(&f, i)).collect();
            let m = rows.len();
            let range = |c: usize| {
                let (lo, hi) = rows
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(r[c]), h.max(r[c])));
                if hi > lo { hi - lo } else { 1.0 }
            };
            let (ra, rb) = (range(0), range(2));
            let dist = |p: &[f64], q: &[f64]| {
                (((p[0] - q[0]) / ra).powi(2)
                    + ((p[2] - q[2]) / rb).powi(2)
                    + 0.5 * 2.0 * f64::from(u8::from(p[1] != q[1])))
                .sqrt()
            };
            for ia in 0..m {
                let a = &rows[ia];
                let mut order: Vec<usize> = (0..m).filter(|&j| j != ia).collect();
                order.sort_by(|&p, &q| dist(a, &rows[p]).total_cmp(&dist(a, &rows[q])));
                let kth = dist(a, &rows[order[(5).min(m - 1) - 1]]);
                for &ib in &order {
                    let b = &rows[ib];
                    if dist(a, b) > kth + 1e-9 {
                        break;
                    }
                    // One α for both numeric features.
                    let alpha = if (b[0] - a[0]).abs() > 1e-12 {
                        (new[0] - a[0]) / (b[0] - a[0])
                    } else {
                        (new[2] - a[2]) / (b[2] - a[2])
                    };
                    if !(-1e-9..=1.0 + 1e-9).contains(&alpha) {
                        continue;
                    }
                    let on = [0usize, 2]
                        .iter()
                        .all(|&c| (a[c] + alpha * (b[c] - a[c]) - new[c]).abs() < 1e-9);
                    if !on || (new[1] != a[1] && new[1] != b[1]) {
                        continue;
                    }
                    let da = (a[0] - new[0]).abs() / ra
                        + (a[2] - new[2]).abs() / rb
                        + f64::from(u8::from(new[1] != a[1]));
                    let db = (b[0] - new[0]).abs() / ra
                        + (b[2] - new[2]).abs() / rb
                        + f64::from(u8::from(new[1] != b[1]));
                    let want = if da == db {
                        0.5 * (a[3] + b[3])
                    } else {
                        (db * a[3] + da * b[3]) / (da + db)
                    };
                    if (want - new[3]).abs() < 1e-9 {
                        found = true;
                        break 'outer;
                    }
                }
            }
        }
        assert!(found, "new row {r} {new:?} has no parents on a segment");
    }
}

/// UBL's arithmetic, written out for the test: balance gives each bump round(n / bumps) rows
/// (new rows: whole copies per row plus a truncated remainder).
#[test]
fn rows_per_bump_follow_ubl_arithmetic() {
    let f = table(500, 2);
    let phi = phi_of(&f);
    let n = f.n_rows() as f64;
    for method in [Method::Smoter, Method::Smogn, Method::Gn] {
        for strategy in [Strategy::Balance, Strategy::Extreme] {
            let cfg = ResampleConfig {
                strategy: strategy.clone(),
                seed: 5,
                ..ResampleConfig::new(method)
            };
            let (out, rep) = resample(&f, 3, &phi, &cfg).unwrap();
            let nb = rep.bumps.len() as f64;
            let b = (n / nb).round();
            let inv: f64 = rep.bumps.iter().map(|x| b * b / x.before as f64).sum();
            for x in &rep.bumps {
                let size = x.before as f64;
                let c = match strategy {
                    Strategy::Balance => b / size,
                    _ => {
                        let digits = if method == Method::Gn { 1e4 } else { 1e1 };
                        let obj = (b * b / size * (nb * b / inv) * 100.0).round() / 100.0;
                        (obj / size * digits).round() / digits
                    }
                };
                assert_eq!(x.factor, c, "{method:?} {strategy:?}");
                let want = if c > 1.0 {
                    let whole = (c - 1.0).floor();
                    x.before + (whole * size) as usize + (size * (c - 1.0 - whole)) as usize
                } else {
                    (c * size) as usize
                };
                assert_eq!(x.after, want, "{method:?} {strategy:?} bump {x:?}");
            }
            assert_eq!(
                out.n_rows(),
                rep.bumps.iter().map(|x| x.after).sum::<usize>()
            );
            assert_eq!(rep.rows_after, out.n_rows());
        }
    }
    // RO adds factor × size copies to rare bumps (factor = normal rows / rare bumps / size);
    // RU keeps factor × size of normal bumps (factor = rare rows / normal bumps / size).
    let (_, ro) = resample(&f, 3, &phi, &ResampleConfig::new(Method::Ro)).unwrap();
    let (_, ru) = resample(&f, 3, &phi, &ResampleConfig::new(Method::Ru)).unwrap();
    let normal: usize = ro.bumps.iter().filter(|b| !b.rare).map(|b| b.before).sum();
    let rare: usize = ro.bumps.iter().filter(|b| b.rare).map(|b| b.before).sum();
    let n_rare_bumps = ro.bumps.iter().filter(|b| b.rare).count() as f64;
    let n_normal_bumps = ro.bumps.iter().filter(|b| !b.rare).count() as f64;
    for (x, y) in ro.bumps.iter().zip(&ru.bumps) {
        if x.rare {
            let c = (normal as f64 / n_rare_bumps / x.before as f64 * 1e5).round() / 1e5;
            assert_eq!(x.after, x.before + (c * x.before as f64) as usize);
            assert_eq!(y.after, y.before, "RU keeps every rare row");
        } else {
            assert_eq!(x.after, x.before);
            let c = (rare as f64 / n_normal_bumps / y.before as f64 * 1e5).round() / 1e5;
            assert_eq!(y.after, (c * y.before as f64) as usize);
        }
    }
}

#[test]
fn originals_are_kept_verbatim_and_rare_rows_survive_under_sampling() {
    let f = table(400, 4);
    let phi = phi_of(&f);
    let y = f.columns[3].numbers().unwrap();
    let rare_rows: Vec<Vec<f64>> = (0..f.n_rows())
        .filter(|&i| phi.phi(y[i]) >= 0.5)
        .map(|i| row(&f, i))
        .collect();
    let all: Vec<Vec<f64>> = (0..f.n_rows()).map(|i| row(&f, i)).collect();
    for method in [
        Method::Ru,
        Method::Smoter,
        Method::Smogn,
        Method::Gn,
        Method::Ro,
    ] {
        let (out, rep) = resample(&f, 3, &phi, &ResampleConfig::new(method)).unwrap();
        assert_eq!(out.names, f.names);
        let out_rows: Vec<Vec<f64>> = (0..out.n_rows()).map(|i| row(&out, i)).collect();
        for r in &rare_rows {
            assert!(out_rows.contains(r), "{method:?} lost rare row {r:?}");
        }
        let originals = out.n_rows()
            - rep
                .bumps
                .iter()
                .filter(|b| b.factor > 1.0)
                .map(|b| b.after - b.before)
                .sum::<usize>();
        // The first rows are originals, in input order.
        let mut last = None;
        for r in &out_rows[..originals.min(out_rows.len())] {
            let pos = all.iter().position(|a| a == r).expect("an original row");
            if method != Method::Ro {
                assert!(last.is_none_or(|l| pos > l), "{method:?}: input order");
            }
            last = Some(pos);
        }
        assert!(rep.rare_share_after > rep.rare_share_before, "{method:?}");
    }
}

#[test]
fn the_same_seed_gives_byte_identical_output() {
    let f = table(300, 6);
    let phi = phi_of(&f);
    for method in [
        Method::Ro,
        Method::Ru,
        Method::Gn,
        Method::Smoter,
        Method::Smogn,
        Method::Wercs,
    ] {
        let cfg = ResampleConfig {
            seed: 42,
            ..ResampleConfig::new(method)
        };
        let a = csv_bytes(&resample(&f, 3, &phi, &cfg).unwrap().0);
        let b = csv_bytes(&resample(&f, 3, &phi, &cfg).unwrap().0);
        assert_eq!(a, b, "{method:?}");
        let other = ResampleConfig { seed: 43, ..cfg };
        let c = csv_bytes(&resample(&f, 3, &phi, &other).unwrap().0);
        assert_ne!(a, c, "{method:?}: another seed, other rows");
        // Written CSV reads back to the same table.
        let back = Frame::parse_csv(&a, "back", &[]).unwrap();
        assert_eq!(csv_bytes(&back), a);
    }
}

#[test]
fn smogn_rows_are_interpolations_or_small_noise() {
    let f = table(400, 8);
    let phi = phi_of(&f);
    let cfg = ResampleConfig {
        seed: 9,
        ..ResampleConfig::new(Method::Smogn)
    };
    let (out, rep) = resample(&f, 3, &phi, &cfg).unwrap();
    let n_new: usize = rep
        .bumps
        .iter()
        .filter(|b| b.factor > 1.0)
        .map(|b| b.after - b.before)
        .sum();
    let a = f.columns[0].numbers().unwrap();
    let (lo, hi) = a
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let out_a = out.columns[0].numbers().unwrap();
    for &v in &out_a[out.n_rows() - n_new..] {
        // Noise is at most pert (0.01) of the sd: within a hair of the data's range.
        assert!(v > lo - 0.1 * (hi - lo) && v < hi + 0.1 * (hi - lo), "{v}");
    }
}

#[test]
fn wercs_adds_relevant_rows_and_removes_common_ones() {
    let f = table(1000, 10);
    let phi = phi_of(&f);
    let cfg = ResampleConfig {
        seed: 1,
        ..ResampleConfig::new(Method::Wercs)
    };
    let (out, rep) = resample(&f, 3, &phi, &cfg).unwrap();
    // 500 copies drawn ∝ φ (so all of them rare-ish), 500 draws ∝ 1 − φ removed (distinct).
    assert!(out.n_rows() > 1000 && out.n_rows() < 1500);
    let y = out.columns[3].numbers().unwrap();
    let copies = &y[y.len() - 500..];
    assert!(copies.iter().all(|&v| phi.phi(v) > 0.0));
    assert!(rep.rare_share_after > 2.0 * rep.rare_share_before);
}

#[test]
fn bad_requests_are_explained() {
    let f = table(200, 12);
    let phi = phi_of(&f);
    let err = |cfg: ResampleConfig| resample(&f, 3, &phi, &cfg).unwrap_err().to_string();
    assert!(
        err(ResampleConfig {
            threshold: 0.0,
            ..ResampleConfig::new(Method::Smogn)
        })
        .contains("--threshold")
    );
    assert!(
        err(ResampleConfig {
            distance: Some(dirkit_tabular::Distance::Euclidean),
            ..ResampleConfig::new(Method::Smoter)
        })
        .contains("'colour' is")
    );
    assert!(
        err(ResampleConfig {
            strategy: Strategy::Factors(vec![1.0; 7]),
            ..ResampleConfig::new(Method::Smoter)
        })
        .contains("one per bump")
    );
    // A nominal target, a constant target, nothing rare.
    assert!(
        resample(&f, 1, &phi, &ResampleConfig::new(Method::Ro))
            .unwrap_err()
            .to_string()
            .contains("nominal")
    );
    let flat = Frame::parse_csv(b"x,y\n1,5\n2,5\n3,5\n", "flat.csv", &[]).unwrap();
    let e = resample(&flat, 1, &phi, &ResampleConfig::new(Method::Ro))
        .unwrap_err()
        .to_string();
    assert!(e.contains("constant (every row is 5)"), "{e}");
    let even = Frame::parse_csv(b"x,y\n1,1\n2,2\n3,3\n4,4\n5,5\n", "even.csv", &[]).unwrap();
    let phi_even = Relevance::from_targets(
        even.columns[1].numbers().unwrap(),
        &RelevanceConfig::default(),
    )
    .unwrap();
    let e = resample(&even, 1, &phi_even, &ResampleConfig::new(Method::Smogn))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no row has relevance ≥ 0.5"), "{e}");
}

#[test]
fn small_rare_bumps_get_a_note() {
    // One extreme high value: a rare bump of one row, replicated instead of interpolated.
    let mut csv = String::from("x,y\n");
    for i in 0..40 {
        csv.push_str(&format!("{i},{}\n", 10 + i % 5));
    }
    csv.push_str("99,100\n");
    let f = Frame::parse_csv(csv.as_bytes(), "one.csv", &[]).unwrap();
    // The automatic points would make the whisker (14) relevant too; these isolate 100.
    let point = |value, relevance| ControlPoint {
        value,
        relevance,
        slope: 0.0,
    };
    let phi = Relevance::from_control_points(&[point(14.0, 0.0), point(97.0, 1.0)]).unwrap();
    let (out, rep) = resample(&f, 1, &phi, &ResampleConfig::new(Method::Smoter)).unwrap();
    assert!(
        rep.notes.iter().any(|n| n.contains("replicated")),
        "{:?}",
        rep.notes
    );
    let y = out.columns[1].numbers().unwrap();
    assert_eq!(
        y.iter().filter(|&&v| v == 100.0).count(),
        rep.bumps.last().unwrap().after
    );
    // Three rare rows and k = 5: k is reduced and said so.
    let mut csv = String::from("x,y\n");
    for i in 0..40 {
        csv.push_str(&format!("{i},{}\n", 10 + i % 5));
    }
    csv.push_str("97,100\n98,101\n99,102\n");
    let f = Frame::parse_csv(csv.as_bytes(), "three.csv", &[]).unwrap();
    let (_, rep) = resample(&f, 1, &phi, &ResampleConfig::new(Method::Smogn)).unwrap();
    assert!(
        rep.notes.iter().any(|n| n.contains("used k = 2")),
        "{:?}",
        rep.notes
    );
}

#[test]
fn reading_names_the_row_and_column_of_bad_cells() {
    let e = Frame::parse_csv(b"a,b,y\n1,2,3\n4,,6\n", "t.csv", &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "t.csv:3: column 'b': missing value '': the resamplers need complete rows (drop or impute it first)"
    );
    let e = Frame::parse_csv(b"a,b,y\n1,2,3\n4,x5,6\n", "t.csv", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.csv:3: column 'b': 'x5' is not a number"),
        "{e}"
    );
    let e = Frame::parse_csv(b"a,b,y\n1,2,3\n4,5\n", "t.csv", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.csv:3: row has 2 fields, the header has 3"),
        "{e}"
    );
    let e = Frame::parse_csv(b"a,a,y\n1,2,3\n", "t.csv", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("both called 'a'"), "{e}");
    let e = Frame::parse_csv(b"a,b,y\n", "t.csv", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no data rows"), "{e}");
    // A numeric-looking column declared nominal stays categories.
    let f = Frame::parse_csv(b"zip,y\n1000,3\n2000,4\n", "t.csv", &["zip".into()]).unwrap();
    assert!(matches!(f.columns[0], Column::Nominal { .. }));
}

#[test]
fn features_near_the_f64_limit_give_finite_rows_or_a_clear_error() {
    // A feature of 1e157: its squared deviations overflow unless scaled.
    let csv = b"x,c,y\n1,a,1\n2,b,2\n3,a,3\n4,b,4\n5,a,100\n6,b,5\n1e157,a,6\n8,b,5\n9,a,4\n10,b,3\n11,a,120\n";
    let frame = Frame::parse_csv(csv, "big.csv", &[]).unwrap();
    let y = frame.columns[2].numbers().unwrap().to_vec();
    let phi = Relevance::from_targets(&y, &RelevanceConfig::default()).unwrap();
    for method in [Method::Gn, Method::Smoter, Method::Smogn] {
        for seed in 0..20 {
            let config = ResampleConfig {
                seed,
                threshold: 0.8,
                ..ResampleConfig::new(method)
            };
            let (out, _) = resample(&frame, 2, &phi, &config).unwrap();
            for c in [0, 2] {
                let v = out.columns[c].numbers().unwrap();
                assert!(
                    v.iter().all(|x| x.is_finite()),
                    "{method:?} seed {seed}: {v:?}"
                );
            }
        }
    }
    // Values that cannot be interpolated inside f64: refused, naming the column.
    let csv =
        b"x,y\n-1.7e308,1\n1.7e308,2\n-1.7e308,3\n1.7e308,4\n1e308,100\n-1e308,120\n5,5\n6,6\n";
    let frame = Frame::parse_csv(csv, "huge.csv", &[]).unwrap();
    let point = |value, relevance| ControlPoint {
        value,
        relevance,
        slope: 0.0,
    };
    // Targets of 100 and more are rare.
    let phi = Relevance::from_control_points(&[point(10.0, 0.0), point(100.0, 1.0)]).unwrap();
    let mut refused = 0;
    for seed in 0..20 {
        let config = ResampleConfig {
            seed,
            ..ResampleConfig::new(Method::Smoter)
        };
        match resample(&frame, 1, &phi, &config) {
            Ok((out, _)) => assert!(
                out.columns[0]
                    .numbers()
                    .unwrap()
                    .iter()
                    .all(|x| x.is_finite())
            ),
            Err(e) => {
                assert!(e.to_string().contains("column 'x'"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "some interpolation between ±1.7e308 overflows");
}
