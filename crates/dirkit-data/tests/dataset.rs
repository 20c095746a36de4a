//! The AgeDB-DIR layout end to end: an `age,path,split` index over a folder of tiny PNGs, every
//! kind of bad row with its exact line, and batches whose augmentation is reproducible.

use std::path::{Path, PathBuf};

use dirkit_data::dataset::{
    Batch, Index, Split, Transform, epoch_batches, load_batch, load_image_batch, read_index,
    sample_rng, sampler_batches, to_chw,
};
use dirkit_data::{DataError, EpochSampler, WeightedSampler};
use image::{Rgb, RgbImage};
use tempfile::TempDir;

/// A `w`×`h` image whose pixels all differ, varied by `k`.
fn picture(w: u32, h: u32, k: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 20) as u8 ^ k,
            (y * 20) as u8,
            k.wrapping_mul(37).wrapping_add((x + y) as u8),
        ])
    })
}

/// A folder with `n` PNGs `img{i}.png` (12×10 pixels), garbage bytes in `garbage.png`, an
/// empty sub-folder `folder.png`, and the given index as `agedb.csv`.
fn layout(n: usize, csv: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("AgeDB");
    std::fs::create_dir(&root).unwrap();
    for i in 0..n {
        picture(12, 10, i as u8)
            .save(root.join(format!("img{i}.png")))
            .unwrap();
    }
    std::fs::write(root.join("garbage.png"), b"this is not a PNG file").unwrap();
    std::fs::create_dir(root.join("folder.png")).unwrap();
    let index = dir.path().join("agedb.csv");
    std::fs::write(&index, csv).unwrap();
    (dir, index, root)
}

/// `(line, column, value)` of every bad entry.
fn bad(index: &Index) -> Vec<(usize, &'static str, &str)> {
    index
        .bad
        .iter()
        .map(|b| (b.line, b.column, b.value.as_str()))
        .collect()
}

const MESSY: &str = "\
path,note,split,age
img0.png,plain,train,30
img1.png,\"a note
over two lines\",val,31.5
img2.png,,train,abc
img2.png,,test,-3
missing.png,,train,40
garbage.png,,train,41
img2.png,,holdout,42
,,train,43
img3.png,,train,inf
img3.png,,train
folder.png,,test,44
img3.png,,test,0
";

#[test]
fn every_kind_of_bad_row_is_reported_at_its_line() {
    let (_dir, csv, root) = layout(4, MESSY);
    let index = read_index(&csv, &root, false).unwrap();
    assert_eq!(
        bad(&index),
        [
            (5, "age", "abc"),
            (6, "age", "-3"),
            (7, "path", "missing.png"),
            (9, "split", "holdout"),
            (10, "path", ""),
            (11, "age", "inf"),
            (12, "age", ""),
            (13, "path", "folder.png"),
        ]
    );
    // Without the decode check the garbage file only has to exist.
    let lines: Vec<usize> = index.records.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 8, 14]);
    let r = &index.records[1];
    assert_eq!((r.age, r.split), (31.5, Split::Val));
    assert_eq!(r.path, root.join("img1.png"));
    assert_eq!(index.counts(), [2, 1, 1]);
    assert_eq!(index.split(Split::Test)[0].line, 14);

    let checked = read_index(&csv, &root, true).unwrap();
    assert_eq!(checked.bad.len(), 9);
    assert_eq!(
        (
            checked.bad[3].line,
            checked.bad[3].column,
            checked.bad[3].value.as_str()
        ),
        (8, "path", "garbage.png")
    );
    assert!(checked.bad[3].reason.contains("garbage.png"));
    assert_eq!(checked.records.len(), 3);
}

#[test]
fn bad_rows_read_as_file_line_column_value_and_expectation() {
    let (_dir, csv, root) = layout(4, MESSY);
    let index = read_index(&csv, &root, false).unwrap();
    let name = csv.display();
    assert_eq!(
        index.bad[1].to_string(),
        format!("{name}:6: column 'age': '-3': expected a non-negative number")
    );
    assert_eq!(
        index.bad[3].to_string(),
        format!("{name}:9: column 'split': 'holdout': expected train, val or test")
    );
    assert!(index.bad[2].reason.starts_with("no such file: "));
    assert!(
        index.bad[6]
            .reason
            .contains("the row has 3 fields, the header 4")
    );
}

#[test]
fn clean_or_skip_is_the_callers_choice() {
    let (_dir, csv, root) = layout(4, MESSY);
    let index = read_index(&csv, &root, false).unwrap();
    let err = index.require_clean(&csv).unwrap_err();
    assert!(matches!(&err, DataError::BadRows { rows, .. } if rows.len() == 8));
    // The message: a summary, the first five problems and a count of the rest; the full list
    // on request. No cause dominates these eight, so there is no likely-fix line.
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[0].contains("8 bad rows"), "{}", lines[0]);
    assert!(lines[0].contains("--skip-bad"));
    for (line, b) in lines[1..6].iter().zip(&index.bad) {
        assert_eq!(*line, b.to_string());
    }
    assert_eq!(lines[6], "… and 3 more (--list-bad lists them all)");
    let full = err.full_list();
    let all: Vec<&str> = full.lines().collect();
    assert_eq!(all.len(), 9, "{full}");
    for (line, b) in all[1..].iter().zip(&index.bad) {
        assert_eq!(*line, b.to_string());
    }
    let (records, skipped) = index.skipping_bad();
    assert_eq!((records.len(), skipped), (4, 8));

    let clean = "age,path,split\n20,img0.png,train\n21,img1.png,test\n";
    let (_dir, csv, root) = layout(2, clean);
    let index = read_index(&csv, &root, true).unwrap();
    assert!(index.require_clean(&csv).is_ok());
    assert_eq!(index.bad_row_count(), 0);
}

#[test]
fn the_likely_fix_names_the_cause_most_bad_rows_share() {
    // Every image path resolves against the wrong folder: --data-dir.
    let mut csv = String::from("age,path,split\n");
    for i in 0..9 {
        csv.push_str(&format!("{},elsewhere/{i}.png,train\n", 20 + i));
    }
    let (_dir, csv_path, root) = layout(1, &csv);
    let index = read_index(&csv_path, &root, false).unwrap();
    let hint = index.likely_fix().unwrap();
    assert!(
        hint.starts_with("9 of 9 bad rows name images that do not exist under")
            && hint.contains("--data-dir"),
        "{hint}"
    );
    let text = index.require_clean(&csv_path).unwrap_err().to_string();
    assert_eq!(
        text.lines().nth(1),
        Some(format!("likely fix: {hint}").as_str())
    );
    // Ages in the wrong column.
    let (_dir, csv_path, root) = layout(
        3,
        "age,path,split\nimg0.png,img0.png,train\nimg1.png,img1.png,val\n20,img2.png,test\n",
    );
    let index = read_index(&csv_path, &root, false).unwrap();
    assert!(
        index.likely_fix().unwrap().contains("age column"),
        "{:?}",
        index.likely_fix()
    );
    // A single bad row needs no hint beyond itself.
    let (_dir, csv_path, root) = layout(1, "age,path,split\n20,img0.png,dev\n20,img0.png,train\n");
    let index = read_index(&csv_path, &root, false).unwrap();
    assert_eq!(index.likely_fix(), None);
}

#[test]
fn a_row_with_several_problems_counts_once_when_skipped() {
    let csv = "age,path,split\n-1,nope.png,dev\n20,img0.png,train\n";
    let (_dir, csv, root) = layout(1, csv);
    let index = read_index(&csv, &root, false).unwrap();
    assert_eq!(
        bad(&index),
        [
            (2, "age", "-1"),
            (2, "path", "nope.png"),
            (2, "split", "dev")
        ]
    );
    assert_eq!(index.skipping_bad().1, 1);
}

#[test]
fn malformed_files_are_errors_naming_the_file() {
    let (dir, _csv, root) = layout(1, "");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write("noage.csv", "years,path,split\n3,img0.png,train\n");
    let e = read_index(&p, &root, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the header 'years,path,split' has no column 'age': expected the columns age, \
             path, split (in any order)",
            p.display()
        )
    );
    let p = write("twice.csv", "age,path,split,age\n");
    let e = read_index(&p, &root, false).unwrap_err().to_string();
    assert!(e.contains("'age' appears more than once"), "{e}");
    let p = write("empty.csv", "");
    let e = read_index(&p, &root, false).unwrap_err().to_string();
    assert!(e.contains("is empty"), "{e}");
    let p = write("header.csv", "age,path,split\n");
    let e = read_index(&p, &root, false).unwrap_err().to_string();
    assert!(e.contains("no rows"), "{e}");
    let e = read_index(&dir.path().join("absent.csv"), &root, false).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    let e = read_index(&p, &dir.path().join("nowhere"), false).unwrap_err();
    assert!(e.to_string().contains("nowhere"), "{e}");
    let e = read_index(&p, &p, false).unwrap_err().to_string();
    assert!(e.contains("is not a directory"), "{e}");
}

/// `n` clean rows over `img0..img{n}`, all in train.
fn clean_index(n: usize) -> (TempDir, Index) {
    let mut csv = String::from("age,path,split\n");
    for i in 0..n {
        csv.push_str(&format!("{},img{i}.png,train\n", 20 + i));
    }
    let (dir, csv, root) = layout(n, &csv);
    let index = read_index(&csv, &root, true).unwrap();
    assert!(index.bad.is_empty());
    (dir, index)
}

/// Sample `k` of a batch.
fn sample(b: &Batch, k: usize) -> &[f32] {
    let n = b.pixels.len() / b.len();
    &b.pixels[k * n..(k + 1) * n]
}

#[test]
fn augmented_batches_repeat_and_ignore_batch_composition() {
    let (_dir, index) = clean_index(6);
    let train = index.split(Split::Train);
    let t = Transform {
        size: 8,
        pad: 2,
        flip: true,
    };
    let all = [0, 1, 2, 3, 4, 5];
    let a = load_batch(&train, &all, &t, Some((11, 4))).unwrap();
    let b = load_batch(&train, &all, &t, Some((11, 4))).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.shape(), [6, 3, 8, 8]);
    assert_eq!(a.ages, [20.0, 21.0, 22.0, 23.0, 24.0, 25.0]);
    assert!(a.pixels.iter().all(|v| (-1.0..=1.0).contains(v)));
    // The same sample in another batch, at another position, gets the same augmentation.
    let c = load_batch(&train, &[4, 1], &t, Some((11, 4))).unwrap();
    assert_eq!(sample(&c, 0), sample(&a, 4));
    assert_eq!(sample(&c, 1), sample(&a, 1));
    // Another epoch draws other crops and flips for at least one sample.
    let d = load_batch(&train, &all, &t, Some((11, 5))).unwrap();
    assert_ne!(a, d);
    // Records owned rather than borrowed work the same.
    let owned: Vec<_> = train.iter().map(|r| (*r).clone()).collect();
    assert_eq!(load_batch(&owned, &all, &t, Some((11, 4))).unwrap(), a);
}

#[test]
fn in_memory_batches_match_files_and_evaluation_is_plain() {
    let (_dir, index) = clean_index(4);
    let train = index.split(Split::Train);
    let images: Vec<RgbImage> = (0..4).map(|i| picture(12, 10, i as u8)).collect();
    let ages: Vec<f64> = train.iter().map(|r| r.age).collect();
    let t = Transform::scaled(16);
    let order = [3, 0, 2];
    for augment in [None, Some((5, 0)), Some((5, 9))] {
        let from_files = load_batch(&train, &order, &t, augment).unwrap();
        let in_memory = load_image_batch(&images, &ages, &order, &t, augment).unwrap();
        assert_eq!(from_files, in_memory);
    }
    let eval = load_image_batch(&images, &ages, &order, &t, None).unwrap();
    for (k, &i) in order.iter().enumerate() {
        assert_eq!(sample(&eval, k), to_chw(&images[i], &t, None));
        let mut rng = sample_rng(5, 9, i);
        let aug = load_image_batch(&images, &ages, &[i], &t, Some((5, 9))).unwrap();
        assert_eq!(aug.pixels, to_chw(&images[i], &t, Some(&mut rng)));
    }
}

#[test]
fn loading_refuses_bad_indices_transforms_and_images() {
    let (dir, index) = clean_index(2);
    let train = index.split(Split::Train);
    let t = Transform::scaled(8);
    let e = load_batch(&train, &[0, 2], &t, None).unwrap_err();
    assert!(
        matches!(e, DataError::InvalidParameter { name: "batch index", ref value, .. } if value == "2")
    );
    let bad_t = Transform {
        size: 8,
        pad: 8,
        flip: false,
    };
    assert!(load_batch(&train, &[0], &bad_t, None).is_err());
    // An image that broke after the index was read.
    let broken = dir.path().join("AgeDB/img1.png");
    std::fs::write(&broken, b"truncated").unwrap();
    let e = load_batch(&train, &[0, 1], &t, None).unwrap_err();
    match e {
        DataError::Image { path, .. } => assert_eq!(Path::new(&path), broken),
        other => panic!("expected an image error, got {other:?}"),
    }
    let images = vec![RgbImage::new(4, 4)];
    let e = load_image_batch(&images, &[1.0, 2.0], &[0], &t, None).unwrap_err();
    assert!(matches!(
        e,
        DataError::LengthMismatch {
            left: 1,
            right: 2,
            ..
        }
    ));
    assert!(load_batch(&train, &[], &t, None).unwrap().is_empty());
}

#[test]
fn batches_follow_a_sampler_or_a_seeded_shuffle() {
    let sampler = WeightedSampler::new(&[0.0, 1.0, 0.0, 3.0, 1.0], 8).unwrap();
    let batches = sampler_batches(&sampler, 2, 2, false).unwrap();
    assert_eq!(batches.concat(), sampler.sample_epoch(2));
    assert_eq!(batches.len(), 3);
    assert!(batches.concat().iter().all(|&i| i != 0 && i != 2));
    assert_eq!(sampler_batches(&sampler, 2, 2, true).unwrap().len(), 2);
    assert!(sampler_batches(&sampler, 2, 0, true).is_err());

    let a = epoch_batches(100, 32, 3, 0, true).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a, epoch_batches(100, 32, 3, 0, true).unwrap());
    assert_ne!(a, epoch_batches(100, 32, 4, 0, true).unwrap());
    let mut seen = epoch_batches(100, 32, 3, 0, false).unwrap().concat();
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}
