//! The hostile-input suite of the age-estimation example on a folder of images: broken indexes,
//! images that do not decode, unusable folders and flags, and a damaged checkpoint on resume.
//! Each case checks the exit code, that stderr names the file (and line and column where they
//! apply), that nothing panicked, that no input changed, and that a failed run left no file
//! behind (see `crates/dirkit-cli/tests/common/guard.rs`).

#[path = "../crates/dirkit-cli/tests/common/guard.rs"]
mod guard;

use std::path::PathBuf;

use guard::{Case, check, check_all, fails, succeeds};

fn example() -> PathBuf {
    // tests/…/deps/hostile_example-… → …/examples/age_estimation (cargo test builds the
    // examples; with --test alone, run `cargo build --example age_estimation` first).
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    dir.join(format!("age_estimation{}", std::env::consts::EXE_SUFFIX))
}

/// A small valid PNG.
fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(12, 12, |x, y| image::Rgb([x as u8 * 20, y as u8 * 20, 90]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageOutputFormat::Png)
        .unwrap();
    bytes.into_inner()
}

/// Flags that keep a successful run to a second on the CPU.
const TINY: &str = "--arch cpu-small --image-size 16 --epochs 1 --batch-size 2 --no-progress";

/// A folder `img/` with three good images and the damaged ones the index may name.
fn with_images(case: Case) -> Case {
    let good = png();
    case.file("img/a.png", &good)
        .file("img/b.png", &good)
        .file("img/c.png", &good)
        .file("img/truncated.png", &good[..good.len() / 2])
        .file("img/zero.png", b"")
        .file("img/text.jpg", b"not a jpeg\n")
}

const GOOD_ROWS: &str = "20,img/a.png,train\n30,img/b.png,val\n40,img/c.png,test\n";

fn index(rows: &str) -> String {
    format!("age,path,split\n{GOOD_ROWS}{rows}")
}

fn cases() -> Vec<Case> {
    let bad_rows = "50,img/truncated.png,train\n60,img/zero.png,train\n70,img/text.jpg,train\n\
                    forty,img/a.png,train\n20,img/missing.png,train\n20,img/a.png,bogus\n";
    let mut many_missing = String::from("age,path,split\n");
    for i in 0..12 {
        many_missing.push_str(&format!("{},{i}.png,train\n", 20 + i));
    }
    let run = |name: &str, args: &str, expect| Case::new(name, &format!("{args} {TINY}"), expect);
    vec![
        with_images(run(
            "truncated, empty, fake and missing images, a text age and a bad split",
            "--csv idx.csv --out run",
            fails(&[
                "idx.csv: 6 bad rows",
                "idx.csv:5: column 'path': 'img/truncated.png'",
                "idx.csv:6: column 'path': 'img/zero.png'",
                "idx.csv:7: column 'path': 'img/text.jpg'",
                "idx.csv:8: column 'age': 'forty'",
                "… and 1 more (--list-bad",
            ]),
        ))
        .file("idx.csv", index(bad_rows)),
        with_images(run(
            "the same with every bad row listed",
            "--csv idx.csv --out run --list-bad",
            fails(&[
                "idx.csv:9: column 'path': 'img/missing.png': no such file",
                "idx.csv:10: column 'split': 'bogus': expected train, val or test",
            ]),
        ))
        .file("idx.csv", index(bad_rows)),
        with_images(run(
            "bad rows skipped: the run goes on and says how many",
            "--csv idx.csv --out run --skip-bad",
            succeeds(&["6 bad rows skipped", "test, best epoch 1"], &["run"]),
        ))
        .file("idx.csv", index(bad_rows)),
        with_images(run(
            "an index with a byte-order mark, CRLF line ends and blank lines",
            "--csv idx.csv --out run",
            succeeds(&["train 1 / val 1 / test 1"], &["run"]),
        ))
        .file(
            "idx.csv",
            format!(
                "\u{feff}age,path,split\r\n\r\n{}",
                GOOD_ROWS.replace('\n', "\r\n")
            ),
        ),
        run(
            "an index kept outside the image folder: one summary and the likely fix",
            "--csv lists/idx.csv --out run",
            fails(&[
                "lists/idx.csv: 12 bad rows",
                "likely fix: 12 of 12 bad rows name images that do not exist under lists",
                "--data-dir",
                "… and 7 more",
            ]),
        )
        .file("lists/idx.csv", &many_missing),
        with_images(run(
            "every test row bad, skipped: no usable test split",
            "--csv idx.csv --out run --skip-bad",
            fails(&["idx.csv", "no usable 'test' rows"]),
        ))
        .file(
            "idx.csv",
            "age,path,split\n20,img/a.png,train\n30,img/b.png,val\n40,img/zero.png,test\n",
        ),
        run(
            "a missing index",
            "--csv nope.csv --out run",
            fails(&["nope.csv", "No such file"]),
        ),
        run(
            "an index that is a folder",
            "--csv lists --out run",
            fails(&["lists"]),
        )
        .file("lists/", b""),
        run(
            "an empty index",
            "--csv idx.csv --out run",
            fails(&["idx.csv", "is empty"]),
        )
        .file("idx.csv", b""),
        run(
            "a header and no rows",
            "--csv idx.csv --out run",
            fails(&["idx.csv", "no rows"]),
        )
        .file("idx.csv", "age,path,split\n"),
        run(
            "a missing column",
            "--csv idx.csv --out run",
            fails(&["idx.csv", "no column 'split'"]),
        )
        .file("idx.csv", "age,path\n20,a.png\n"),
        run(
            "a duplicated column",
            "--csv idx.csv --out run",
            fails(&["idx.csv:1", "column 'age' appears more than once"]),
        )
        .file("idx.csv", "age,age,path,split\n20,20,a.png,train\n"),
        run(
            "non-UTF-8 bytes in a path",
            "--csv idx.csv --out run",
            fails(&["idx.csv:5: column 'path'", "not valid UTF-8"]),
        )
        .file("idx.csv", {
            let mut b = index("").into_bytes();
            b.extend_from_slice(b"20,img/\xff.png,train\n");
            b
        }),
        with_images(run(
            "a data folder that is a file",
            "--csv idx.csv --data-dir idx.csv --out run",
            fails(&["idx.csv", "is not a directory"]),
        ))
        .file("idx.csv", index("")),
        with_images(run(
            "a run folder that already holds a run",
            "--csv idx.csv --out run",
            fails(&["run", "already holds a run", "--resume"]),
        ))
        .file("idx.csv", index(""))
        .file("run/run.json", "{}"),
        Case::new(
            "resume without a checkpoint",
            "--resume --out run --no-progress",
            fails(&["last.safetensors", "no checkpoint to resume from"]),
        )
        .file("run/notes.txt", "mine"),
        Case::new(
            "resume with a changed data setting",
            "--resume --out run --train-images 10 --epochs 3",
            fails(&["--resume continues the saved run", "drop --train-images"]),
        )
        .file("run/notes.txt", "mine"),
        run(
            "the baseline and LDS at once",
            "--vanilla --lds",
            fails(&["--vanilla", "cannot be used with", "--lds"]),
        ),
        run(
            "an even LDS kernel size",
            "--lds --lds-ks 4",
            fails(&["ks = 4"]),
        ),
        run("an unknown loss", "--loss magic", fails(&["magic"])),
        run("an unknown device", "--device tpu", fails(&["tpu"])),
        run(
            "an unknown flag",
            "--learning-rate 1",
            fails(&["unexpected argument '--learning-rate'"]),
        ),
    ]
}

#[test]
fn the_example_survives_hostile_input() {
    let cases = cases();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    check_all(&example(), &cases);
}

#[test]
fn a_truncated_checkpoint_is_a_clear_error_on_resume() {
    // A real one-epoch run, then its last checkpoint cut short as a crash during a copy would.
    let tmp = tempfile::tempdir().unwrap();
    let good = png();
    for f in ["a", "b", "c"] {
        std::fs::create_dir_all(tmp.path().join("img")).unwrap();
        std::fs::write(tmp.path().join(format!("img/{f}.png")), &good).unwrap();
    }
    std::fs::write(tmp.path().join("idx.csv"), index("")).unwrap();
    let status = std::process::Command::new(example())
        .args(["--csv", "idx.csv", "--out", "run"])
        .args(TINY.split_whitespace())
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    let run = tmp.path().join("run");
    let last = std::fs::read(run.join("last.safetensors")).unwrap();
    let mut case = Case::new(
        "resume from a truncated checkpoint",
        "--resume --out run --epochs 2 --no-progress",
        fails(&["run/last.safetensors", "truncated or damaged"]),
    );
    for entry in std::fs::read_dir(&run).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_file() && name != "last.safetensors" {
            case = case.file(&format!("run/{name}"), std::fs::read(entry.path()).unwrap());
        }
    }
    case = case.file("run/last.safetensors", &last[..last.len() / 3]);
    check(&example(), &case).unwrap();
}
