//! Building the index from AgeDB-style file names: the per-age balanced val/test recipe,
//! reproducibility, bad names, overwrite protection, and a round trip through `read_index`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dirkit_data::DataError;
use dirkit_data::dataset::{Split, read_index};
use dirkit_data::split::{plan_split, scan_faces, split_counts, write_index};

/// `(path, age)` for `n` images of each `(age, n)`.
fn files(spec: &[(u32, usize)]) -> Vec<(PathBuf, f64)> {
    let mut id = 0;
    let mut out = Vec::new();
    for &(age, n) in spec {
        for _ in 0..n {
            out.push((
                PathBuf::from(format!("{id}_P{id}_{age}_m.jpg")),
                f64::from(age),
            ));
            id += 1;
        }
    }
    out
}

/// `age → [train, val, test]` counts.
fn per_age(rows: &[(PathBuf, f64, Split)]) -> BTreeMap<u32, [usize; 3]> {
    let mut m = BTreeMap::new();
    for (_, age, split) in rows {
        m.entry(*age as u32).or_insert([0; 3])[*split as usize] += 1;
    }
    m
}

#[test]
fn each_age_gives_min_of_a_third_and_the_cap_to_val_and_test() {
    // n = 10: 10/3 = 3, capped at 2. n = 2: 2/3 = 0. n = 3: 1. n = 100: cap 2. n = 7: 2.
    let f = files(&[(20, 10), (30, 2), (40, 3), (50, 100), (61, 7), (1, 1)]);
    let rows = plan_split(&f, 2, 0);
    assert_eq!(rows.len(), f.len());
    let expected = BTreeMap::from([
        (1, [1, 0, 0]),
        (20, [6, 2, 2]),
        (30, [2, 0, 0]),
        (40, [1, 1, 1]),
        (50, [96, 2, 2]),
        (61, [3, 2, 2]),
    ]);
    assert_eq!(per_age(&rows), expected);
    assert_eq!(split_counts(&rows), [109, 7, 7]);
    // The AgeDB cap (30) leaves n/3 everywhere here except for age 50 (33 → 30).
    let agedb = per_age(&plan_split(&f, 30, 0));
    assert_eq!(agedb[&20], [4, 3, 3]);
    assert_eq!(agedb[&50], [40, 30, 30]);
    // Every file appears exactly once, with its own age.
    let mut seen: Vec<(PathBuf, f64)> = rows.iter().map(|r| (r.0.clone(), r.1)).collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let mut all = f.clone();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(seen, all);
}

#[test]
fn rows_are_sorted_and_the_input_order_does_not_matter() {
    let f = files(&[(20, 10), (30, 9), (40, 30)]);
    let rows = plan_split(&f, 5, 3);
    let keys: Vec<(Split, u32, &Path)> = rows
        .iter()
        .map(|r| (r.2, r.1 as u32, r.0.as_path()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let mut reversed = f.clone();
    reversed.reverse();
    assert_eq!(plan_split(&reversed, 5, 3), rows);
}

#[test]
fn the_seed_decides_the_assignment() {
    let f = files(&[(20, 30), (21, 30), (22, 30)]);
    let a = plan_split(&f, 30, 1);
    assert_eq!(a, plan_split(&f, 30, 1));
    let b = plan_split(&f, 30, 2);
    assert_ne!(a, b);
    // Only which images go where changes, never how many.
    assert_eq!(per_age(&a), per_age(&b));
}

fn touch(dir: &Path, names: &[&str]) {
    for n in names {
        std::fs::write(dir.join(n), b"").unwrap();
    }
}

#[test]
fn scanning_parses_names_and_lists_the_ones_that_do_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    touch(
        dir.path(),
        &[
            "0_MariaCallas_35_f.jpg",
            "1_Jean_Paul_Belmondo_60_M.JPEG",
            "2_X_7_f.png",
            "3_NoAge_f.jpg",
            "4_Bad_3x_m.jpg",
            "5_Who_40_u.png",
            "notes.txt",
            ".hidden_1_2_m.jpg",
            "agedb.csv",
        ],
    );
    std::fs::create_dir(dir.path().join("sub.jpg")).unwrap();
    let scan = scan_faces(dir.path()).unwrap();
    assert_eq!(
        scan.files,
        [
            (PathBuf::from("0_MariaCallas_35_f.jpg"), 35.0),
            (PathBuf::from("1_Jean_Paul_Belmondo_60_M.JPEG"), 60.0),
            (PathBuf::from("2_X_7_f.png"), 7.0),
        ]
    );
    assert_eq!(scan.ignored, 4);
    let bad: Vec<String> = scan.bad.iter().map(|b| b.to_string()).collect();
    let d = dir.path().display();
    assert_eq!(
        bad,
        [
            format!(
                "{d}/3_NoAge_f.jpg: expected id_name_age_gender.ext (like \
                 0_MariaCallas_35_f.jpg), found 3 '_'-separated fields"
            ),
            format!(
                "{d}/4_Bad_3x_m.jpg: age '3x' (the second-to-last field): expected a whole \
                 number of years"
            ),
            format!("{d}/5_Who_40_u.png: gender 'u' (the last field): expected m or f"),
        ]
    );
    let e = scan.require_clean().unwrap_err();
    assert!(matches!(&e, DataError::BadNames { names, .. } if names.len() == 3));
    let text = e.to_string();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.lines().next().unwrap().contains("3 bad file names"));
    let (kept, skipped) = scan.skipping_bad();
    assert_eq!((kept.len(), skipped), (3, 3));
}

#[test]
fn folders_without_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    touch(dir.path(), &["readme.txt"]);
    let e = scan_faces(dir.path()).unwrap_err().to_string();
    assert!(e.contains("has no .jpg, .jpeg or .png files"), "{e}");
    let e = scan_faces(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
}

#[test]
fn the_index_is_never_overwritten_unless_asked_and_never_onto_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let rows = plan_split(&files(&[(20, 3)]), 30, 0);
    let out = dir.path().join("agedb.csv");
    write_index(&out, &rows, false).unwrap();
    let first = std::fs::read_to_string(&out).unwrap();
    assert_eq!(first.lines().next(), Some("age,path,split"));
    assert_eq!(first.lines().count(), 4);
    let e = write_index(&out, &[], false).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);
    write_index(&out, &rows[..1], true).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2);
    let img = dir.path().join("0_A_20_m.JPG");
    std::fs::write(&img, b"face").unwrap();
    let e = write_index(&img, &rows, true).unwrap_err().to_string();
    assert!(e.contains("image file name"), "{e}");
    assert_eq!(std::fs::read(&img).unwrap(), b"face");
}

#[test]
fn a_written_index_reads_back_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..12)
        .map(|i| format!("{i}_Name_{}_f.jpg", 30 + i % 2))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    touch(dir.path(), &refs);
    let scan = scan_faces(dir.path()).unwrap();
    scan.require_clean().unwrap();
    let rows = plan_split(&scan.files, 30, 9);
    let out = dir.path().join("agedb.csv");
    write_index(&out, &rows, false).unwrap();
    // Writing the index into the image folder leaves the scan unchanged (it is ignored).
    assert_eq!(scan_faces(dir.path()).unwrap().files, scan.files);
    let index = read_index(&out, dir.path(), false).unwrap();
    assert!(index.bad.is_empty(), "{:?}", index.bad);
    let back: Vec<(PathBuf, f64, Split)> = index
        .records
        .iter()
        .map(|r| {
            (
                r.path.strip_prefix(dir.path()).unwrap().to_path_buf(),
                r.age,
                r.split,
            )
        })
        .collect();
    assert_eq!(back, rows);
    assert_eq!(index.counts(), [4, 4, 4]);
}
