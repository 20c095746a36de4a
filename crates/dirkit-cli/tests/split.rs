//! End-to-end tests of `dirkit split`: the per-age counts of a hand-computed example,
//! reproducibility, bad names, and that nothing is overwritten without being asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

fn dirkit() -> Command {
    Command::cargo_bin("dirkit").unwrap()
}

/// Runs a command that must fail with exit code 2; returns stderr.
#[track_caller]
fn fails(cmd: &mut Command) -> String {
    let out = cmd.assert().code(2).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("panicked"), "panic: {err}");
    err
}

/// Like [`fails`], and the message is one line holding every needle.
#[track_caller]
fn fails_with(cmd: &mut Command, needles: &[&str]) {
    let err = fails(cmd);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
}

/// A folder `faces/` with `n` empty images of each `(age, n)` (the command only reads names).
fn faces(spec: &[(u32, usize)]) -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("faces");
    std::fs::create_dir(&dir).unwrap();
    let mut id = 0;
    for &(age, n) in spec {
        for _ in 0..n {
            let g = if id % 2 == 0 { "f" } else { "m" };
            std::fs::write(dir.join(format!("{id}_Person_{id}_{age}_{g}.jpg")), b"jpeg").unwrap();
            id += 1;
        }
    }
    (tmp, dir)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Rows of the written CSV after the header, as `(age, path, split)`.
fn rows(csv: &Path) -> Vec<(u32, String, String)> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("age,path,split"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            (f[0].parse().unwrap(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// `age → (train, val, test)`.
fn per_age(rows: &[(u32, String, String)]) -> BTreeMap<u32, (usize, usize, usize)> {
    let mut m = BTreeMap::new();
    for (age, _, split) in rows {
        let e = m.entry(*age).or_insert((0, 0, 0));
        match split.as_str() {
            "train" => e.0 += 1,
            "val" => e.1 += 1,
            "test" => e.2 += 1,
            other => panic!("split {other}"),
        }
    }
    m
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn counts_per_age_follow_min_of_a_third_and_the_cap() {
    let (tmp, dir) = faces(&[(20, 10), (30, 2), (40, 3), (50, 100), (61, 7)]);
    let before = snapshot(&dir);
    let out = tmp.path().join("index.csv");
    let stdout = dirkit()
        .args(["split", s(&dir), "--out", s(&out), "--cap", "2"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let summary = String::from_utf8(stdout).unwrap();
    assert_eq!(
        summary,
        format!(
            "wrote {}: 122 images, 5 ages from 20 to 61: train 108, val 7, test 7 (cap 2, seed 0)\n",
            s(&out)
        )
    );
    let r = rows(&out);
    let expected = BTreeMap::from([
        (20, (6, 2, 2)),
        (30, (2, 0, 0)),
        (40, (1, 1, 1)),
        (50, (96, 2, 2)),
        (61, (3, 2, 2)),
    ]);
    assert_eq!(per_age(&r), expected);
    // Paths are relative to the index's folder (here `faces/NAME`), each image once, each with
    // its own age.
    let mut paths: Vec<&str> = r.iter().map(|x| x.1.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), 122);
    assert!(r.iter().all(|(age, p, _)| p.contains(&format!("_{age}_"))));
    assert!(r.iter().all(|(_, p, _)| p.starts_with("faces/")));
    assert!(r.iter().all(|(_, p, _)| tmp.path().join(p).is_file()));
    assert_eq!(snapshot(&dir), before, "the image folder is untouched");
}

#[test]
fn presets_set_the_cap_and_exclude_an_explicit_one() {
    let (tmp, dir) = faces(&[(33, 500)]);
    let out = tmp.path().join("a.csv");
    dirkit()
        .args(["split", s(&dir), "--out", s(&out)])
        .assert()
        .success();
    assert_eq!(per_age(&rows(&out))[&33], (440, 30, 30));
    dirkit()
        .args(["split", s(&dir), "--out", s(&out), "--force"])
        .args(["--preset", "imdb-wiki"])
        .assert()
        .success();
    assert_eq!(per_age(&rows(&out))[&33], (200, 150, 150));
    let err = fails(
        dirkit()
            .args(["split", s(&dir), "--out", s(&out), "--force"])
            .args(["--preset", "agedb", "--cap", "5"]),
    );
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn the_same_seed_gives_the_same_file_and_another_seed_another_split() {
    let (tmp, dir) = faces(&[(25, 40), (26, 40)]);
    let run = |name: &str, seed: &str| {
        let out = tmp.path().join(name);
        dirkit()
            .args(["split", s(&dir), "--out", s(&out), "--seed", seed])
            .assert()
            .success();
        std::fs::read(&out).unwrap()
    };
    let (a, b, c) = (run("a.csv", "7"), run("b.csv", "7"), run("c.csv", "8"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let parse = |bytes: &[u8], name: &str| {
        let p = tmp.path().join(name);
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
        per_age(&rows(&p))
    };
    // Another seed moves images between splits, never the counts.
    assert_eq!(parse(&a, "a.csv"), parse(&c, "c.csv"));
}

#[test]
fn bad_names_are_listed_or_skipped_when_asked() {
    let (tmp, dir) = faces(&[(20, 6)]);
    for bad in ["7_NoAge_f.jpg", "8_Odd_x1_m.png", "9_Who_30_q.jpeg"] {
        std::fs::write(dir.join(bad), b"").unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"not an image").unwrap();
    let out = tmp.path().join("index.csv");
    let err = fails(dirkit().args(["split", s(&dir), "--out", s(&out)]));
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(lines[0].starts_with("dirkit: error: "), "{err}");
    assert!(lines[0].contains("3 bad file names"), "{err}");
    assert!(lines[0].contains("--skip-bad"), "{err}");
    assert!(lines[1].ends_with("7_NoAge_f.jpg: expected id_name_age_gender.ext (like 0_MariaCallas_35_f.jpg), found 3 '_'-separated fields"), "{err}");
    assert!(lines[2].contains("8_Odd_x1_m.png: age 'x1'"), "{err}");
    assert!(lines[3].contains("9_Who_30_q.jpeg: gender 'q'"), "{err}");
    assert!(!out.exists(), "nothing is written on error");

    let stdout = dirkit()
        .args(["split", s(&dir), "--out", s(&out), "--skip-bad"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let summary = String::from_utf8(stdout).unwrap();
    assert!(
        summary.ends_with("; skipped 3 images with bad names\n"),
        "{summary}"
    );
    assert_eq!(rows(&out).len(), 6);
}

#[test]
fn nothing_is_overwritten_without_force_and_images_never() {
    let (tmp, dir) = faces(&[(20, 6)]);
    let out = tmp.path().join("index.csv");
    std::fs::write(&out, "precious").unwrap();
    fails_with(
        dirkit().args(["split", s(&dir), "--out", s(&out)]),
        &["already exists", "--force"],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
    dirkit()
        .args(["split", s(&dir), "--out", s(&out), "--force"])
        .assert()
        .success();
    assert_eq!(rows(&out).len(), 6);

    let image = dir.join("0_Person_0_20_f.jpg");
    fails_with(
        dirkit().args(["split", s(&dir), "--out", s(&image), "--force"]),
        &["image file name"],
    );
    assert_eq!(std::fs::read(&image).unwrap(), b"jpeg");
    fails_with(
        dirkit().args(["split", s(&dir), "--out", s(tmp.path())]),
        &["is a directory"],
    );
}

#[test]
fn the_index_may_go_into_the_image_folder_when_asked() {
    let (_tmp, dir) = faces(&[(20, 6), (21, 3)]);
    let before = snapshot(&dir);
    let out = dir.join("agedb.csv");
    dirkit()
        .args(["split", s(&dir), "--out", s(&out)])
        .assert()
        .success();
    let first = std::fs::read(&out).unwrap();
    // Re-running ignores the CSV it wrote and gives the same file.
    dirkit()
        .args(["split", s(&dir), "--out", s(&out), "--force"])
        .assert()
        .success();
    assert_eq!(std::fs::read(&out).unwrap(), first);
    let mut after = snapshot(&dir);
    after.retain(|(p, _)| p != &out);
    assert_eq!(after, before);
}

#[test]
fn missing_or_empty_folders_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.csv");
    let absent = tmp.path().join("absent");
    fails_with(
        dirkit().args(["split", s(&absent), "--out", s(&out)]),
        &["absent"],
    );
    std::fs::write(tmp.path().join("readme.txt"), b"").unwrap();
    fails_with(
        dirkit().args(["split", s(tmp.path()), "--out", s(&out)]),
        &["has no .jpg, .jpeg or .png files"],
    );
    assert!(!out.exists());
}

#[test]
fn paths_resolve_from_the_index_folder_wherever_the_index_is() {
    let (tmp, dir) = faces(&[(20, 4), (30, 5)]);
    // Inside the image folder: bare file names; beside it and in a sibling folder: relative
    // paths through the index's own folder.
    let sibling = tmp.path().join("indexes");
    std::fs::create_dir(&sibling).unwrap();
    for (out, prefix) in [
        (dir.join("index.csv"), ""),
        (tmp.path().join("index.csv"), "faces/"),
        (sibling.join("index.csv"), "../faces/"),
    ] {
        dirkit()
            .args(["split", s(&dir), "--out", s(&out)])
            .assert()
            .success();
        let r = rows(&out);
        assert_eq!(r.len(), 9);
        let base = out.parent().unwrap();
        for (_, p, _) in &r {
            assert!(p.starts_with(prefix), "{p} from {}", out.display());
            assert!(!prefix.is_empty() || !p.contains('/'), "{p}");
            assert!(base.join(p).is_file(), "{p} from {}", out.display());
        }
    }
}
