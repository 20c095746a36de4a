//! The hostile-input suite of the `dirkit` binary: every subcommand fed broken files, absurd
//! flags and dangerous output paths. Each case checks the exit code, that stderr names what is
//! wrong (file, line, column, value where they apply), that nothing panicked, that no input file
//! changed, and that a failed command left no file behind (see `common/guard.rs`).

#[path = "common/guard.rs"]
mod guard;

use guard::{Case, check, check_all, fails, succeeds};

fn dirkit() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("dirkit")
}

const OK: &str = "age\n1\n2\n3\n";
const TABLE: &str =
    "x,c,y\n1,a,1\n2,b,2\n3,a,3\n4,b,4\n5,a,100\n6,b,5\n7,a,6\n8,b,5\n9,a,4\n10,b,3\n11,a,120\n";
const PRED: &str = "target,prediction\n1,1.5\n2,2.5\n3,2\n";

fn weights_cases() -> Vec<Case> {
    let w = |name: &str, content: &[u8], extra: &str, expect| {
        Case::new(name, &format!("weights in.csv {extra}"), expect).file("in.csv", content)
    };
    vec![
        w("empty file", b"", "", fails(&["in.csv", "is empty"])),
        w(
            "header only",
            b"age\n",
            "",
            fails(&["in.csv", "no data rows"]),
        ),
        w(
            "UTF-8 byte-order mark",
            b"\xef\xbb\xbfage\n1\n2\n3\n",
            "",
            succeeds(&["samples: 3"], &[]),
        ),
        w(
            "CRLF line ends",
            b"age\r\n1\r\n2\r\n5\r\n",
            "--format csv",
            succeeds(&["bin,start,end"], &[]),
        ),
        w(
            "non-UTF-8 bytes",
            b"age\n1\n\xff\xfe\n3\n",
            "",
            fails(&["in.csv:3", "column 'age'", "not valid UTF-8"]),
        ),
        Case::new(
            "a folder as input",
            "weights adir",
            fails(&["adir", "is a directory"]),
        )
        .file("adir/", b""),
        Case::new(
            "a missing file",
            "weights missing.csv",
            fails(&["missing.csv", "No such file"]),
        ),
        w(
            "ragged rows",
            b"a,b\n1,2\n3\n4,5\n",
            "--column a",
            fails(&["in.csv:3", "row has 1 field, expected 2"]),
        ),
        w(
            "a quoted field with an embedded newline",
            b"a,b\n1,\"x\ny\"\n3,4\n",
            "--column b",
            fails(&["in.csv:2", "column 'b'", "'x\\ny' is not a number"]),
        ),
        w(
            "duplicate column names",
            b"age,age\n1,2\n3,4\n",
            "--column age",
            fails(&["in.csv", "2 columns 'age'"]),
        ),
        w(
            "an absent column",
            b"a,b\n1,2\n",
            "--column zz",
            fails(&["in.csv", "--column 'zz': no such column", "a, b"]),
        ),
        w(
            "a column index out of range",
            b"a,b\n1,2\n",
            "--column 5",
            fails(&["in.csv", "--column 5: no such column"]),
        ),
        w(
            "several columns and none chosen",
            b"a,b\n1,2\n",
            "",
            fails(&["in.csv", "choose the label column with --column"]),
        ),
        w(
            "a NaN label",
            b"age\n1\nNaN\n3\n",
            "",
            fails(&["in.csv:3", "column 'age'", "'NaN' is not finite"]),
        ),
        w(
            "an infinite label",
            b"age\n1\ninf\n3\n",
            "",
            fails(&["in.csv:3", "'inf' is not finite"]),
        ),
        w(
            "a -infinite label",
            b"age,w\n1,1\n-inf,1\n3,1\n",
            "--column age",
            fails(&["in.csv:3", "'-inf' is not finite"]),
        ),
        w(
            "an empty label",
            b"age,w\n1,1\n,1\n3,1\n",
            "--column age",
            fails(&["in.csv:3", "column 'age'", "empty field"]),
        ),
        w(
            "a text label",
            b"age\n1\nforty\n3\n",
            "",
            fails(&["in.csv:3", "'forty' is not a number"]),
        ),
        w(
            "a blank line inside a one-column file",
            b"age\n1\n\n3\n",
            "",
            fails(&["in.csv:3", "blank line"]),
        ),
        w(
            "lines counted across blank lines",
            b"a,b\n1,2\n\n\nx,1\n",
            "--column a",
            fails(&["in.csv:5", "'x' is not a number"]),
        ),
        w(
            "a 1e308 label with width 1",
            b"age\n1\n1e308\n3\n",
            "",
            fails(&["--bin-width 1", "1e308", "at most 2^24"]),
        ),
        w(
            "a subnormal label",
            b"age\n1\n4.9e-324\n3\n",
            "",
            succeeds(&["samples: 3"], &[]),
        ),
        w(
            "a reversed range",
            OK.as_bytes(),
            "--range 10:5",
            fails(&["range end = 5"]),
        ),
        w(
            "a zero-width range",
            OK.as_bytes(),
            "--range 5:5",
            fails(&["range end = 5"]),
        ),
        w(
            "a range holding no label",
            OK.as_bytes(),
            "--range 200:300",
            fails(&["--range 200:300", "no label falls in"]),
        ),
        w(
            "a bin width that makes billions of bins",
            OK.as_bytes(),
            "--bin-width 1e-9",
            fails(&["--bin-width 1e-9", "2.000e9 bins", "2^24"]),
        ),
        w(
            "a zero bin width",
            OK.as_bytes(),
            "--bin-width 0",
            fails(&["bin width = 0"]),
        ),
        w(
            "a label outside the range, refused",
            OK.as_bytes(),
            "--range 0:2 --out-of-range error",
            fails(&[
                "in.csv:3",
                "column 'age'",
                "2 is outside the bin range [0, 2)",
            ]),
        ),
        w(
            "an even ks",
            OK.as_bytes(),
            "--ks 4",
            fails(&["ks = 4", "odd"]),
        ),
        w("ks zero", OK.as_bytes(), "--ks 0", fails(&["ks = 0"])),
        w("σ zero", OK.as_bytes(), "--sigma 0", fails(&["sigma = 0"])),
        w(
            "σ negative",
            OK.as_bytes(),
            "--sigma -1",
            fails(&["sigma = -1"]),
        ),
        w(
            "σ NaN",
            OK.as_bytes(),
            "--sigma NaN",
            fails(&["sigma = NaN"]),
        ),
        w(
            "a negative count",
            b"age,count\n1,3\n2,-1\n",
            "--count-column count",
            fails(&["in.csv:3", "column 'count'", "'-1' is not a count"]),
        ),
        w(
            "a fractional count",
            b"age,count\n1,3\n2,1.5\n",
            "--count-column count",
            fails(&["in.csv:3", "'1.5' is not a count"]),
        ),
        w(
            "a count beyond 2^53",
            b"age,count\n1,3\n2,1e300\n",
            "--count-column count",
            fails(&["in.csv:3", "too large a count"]),
        ),
        w(
            "counts adding up beyond 2^53",
            b"age,count\n1,9007199254740992\n2,9007199254740992\n",
            "--count-column count",
            fails(&["in.csv", "more than 2^53"]),
        ),
        w(
            "a huge histogram with a bin-width rule",
            b"age,count\n1,100000000\n2,100000000\n",
            "--count-column count --bin-width auto",
            fails(&["--bin-width auto", "200000000"]),
        ),
        w(
            "per-sample output onto the input",
            OK.as_bytes(),
            "--per-sample in.csv",
            fails(&["in.csv", "refusing to overwrite the input file"]),
        ),
        w(
            "per-sample output in a missing folder",
            OK.as_bytes(),
            "--per-sample nowhere/w.csv",
            fails(&["nowhere/w.csv", "the folder nowhere does not exist"]),
        ),
        w(
            "per-sample output onto a folder",
            OK.as_bytes(),
            "--per-sample adir",
            fails(&["adir", "is a folder"]),
        )
        .file("adir/", b""),
        w(
            "per-sample output that exists",
            OK.as_bytes(),
            "--per-sample w.csv",
            fails(&["w.csv", "already exists", "--force"]),
        )
        .file("w.csv", b"keep me\n"),
        w(
            "per-sample output written",
            OK.as_bytes(),
            "--per-sample w.csv",
            succeeds(&["samples: 3"], &["w.csv"]),
        ),
        w(
            "a plot with an unknown extension",
            OK.as_bytes(),
            "--plot p.txt",
            fails(&["p.txt", "expected .svg or .png"]),
        ),
        w(
            "an unknown flag",
            OK.as_bytes(),
            "--kernel-size 5",
            fails(&["unexpected argument '--kernel-size'"]),
        ),
        w(
            "a flag value that is not a number",
            OK.as_bytes(),
            "--ks five",
            fails(&["invalid value 'five'", "--ks"]),
        ),
    ]
}

fn eval_cases() -> Vec<Case> {
    let e = |name: &str, pred: &[u8], extra: &str, expect| {
        Case::new(
            name,
            &format!("eval --pred pred.csv --train train.csv {extra}"),
            expect,
        )
        .file("pred.csv", pred)
        .file("train.csv", OK)
    };
    vec![
        e(
            "a prediction row shorter than the targets",
            b"target,prediction\n1,1.5\n2\n",
            "",
            fails(&["pred.csv:3", "row has 1 field, expected 2"]),
        ),
        e(
            "an empty prediction",
            b"target,prediction\n1,1.5\n2,\n",
            "",
            fails(&["pred.csv:3", "column 'prediction'", "empty field"]),
        ),
        e(
            "a NaN prediction",
            b"target,prediction\n1,1.5\n2,nan\n",
            "",
            fails(&["pred.csv:3", "'nan' is not finite"]),
        ),
        e(
            "no prediction column",
            b"target\n1\n2\n",
            "",
            fails(&["pred.csv", "no prediction column", "--pred-column"]),
        ),
        e(
            "a predictions file without a header",
            b"1,1.5\n2,2.5\n",
            "",
            fails(&["pred.csv", "needs a header"]),
        ),
        e(
            "a σ of zero",
            b"target,prediction,sigma\n1,1.5,1\n2,2.5,0\n",
            "--sigma-column sigma",
            fails(&["pred.csv:3", "column 'sigma'", "'0' is not positive"]),
        ),
        e(
            "a utility threshold outside [0, 1]",
            PRED.as_bytes(),
            "--sera --utility-threshold 2",
            fails(&["utility threshold = 2"]),
        ),
        e(
            "a SERA step of zero",
            PRED.as_bytes(),
            "--sera --sera-step 0",
            fails(&["SERA step = 0"]),
        ),
        e(
            "a target outside the range, refused",
            b"target,prediction\n1,1.5\n2,2.5\n9,2\n",
            "--range 0:4 --out-of-range error",
            fails(&[
                "pred.csv:4",
                "column 'target'",
                "9 is outside the bin range",
            ]),
        ),
        Case::new(
            "an empty training file",
            "eval --pred pred.csv --train train.csv",
            fails(&["train.csv", "is empty"]),
        )
        .file("pred.csv", PRED)
        .file("train.csv", b""),
        Case::new(
            "a missing predictions file",
            "eval --pred nope.csv --train train.csv",
            fails(&["nope.csv", "No such file"]),
        )
        .file("train.csv", OK),
        e(
            "a valid report",
            PRED.as_bytes(),
            "--format json",
            succeeds(&["\"mae\""], &[]),
        ),
    ]
}

fn relevance_cases() -> Vec<Case> {
    let r = |name: &str, extra: &str, expect| {
        Case::new(name, &format!("relevance t.csv {extra}"), expect).file("t.csv", TABLE)
    };
    vec![
        r(
            "a control point with relevance above 1",
            "--column y --control 0:2",
            fails(&["relevance = 2", "[0, 1]"]),
        ),
        r(
            "control points sharing a value",
            "--column y --control 5:1,5:0",
            fails(&["value = 5", "distinct"]),
        ),
        r(
            "a control point that does not parse",
            "--column y --control abc",
            fails(&["--control point 'abc'"]),
        ),
        r(
            "a negative box-plot coefficient",
            "--column y --coef -1",
            fails(&["coef = -1"]),
        ),
        r(
            "a text target column",
            "--column c",
            fails(&["t.csv:2", "column 'c'", "'a' is not a number"]),
        ),
        r(
            "the plot onto the input",
            "--column y --plot t.csv",
            fails(&["t.csv", "refusing to overwrite the input file"]),
        ),
        r(
            "the plot into a missing folder",
            "--column y --plot nowhere/p.svg",
            fails(&["the folder nowhere does not exist"]),
        ),
        Case::new(
            "a constant column: nothing is rare",
            "relevance c.csv",
            succeeds(&["rare share: 0.0%"], &[]),
        )
        .file("c.csv", b"y\n4\n4\n4\n4\n"),
    ]
}

fn select_cases() -> Vec<Case> {
    let r = |name: &str, extra: &str, expect| {
        Case::new(name, &format!("select t.csv --target y {extra}"), expect).file("t.csv", TABLE)
    };
    vec![
        Case::new(
            "select: a missing file",
            "select nowhere.csv --target y",
            fails(&["nowhere.csv"]),
        ),
        r(
            "select: an unknown target",
            "--target-typo",
            fails(&["--target-typo"]),
        ),
        Case::new(
            "select: a target that is not a column",
            "select t.csv --target price",
            fails(&["t.csv", "price"]),
        )
        .file("t.csv", TABLE),
        Case::new(
            "select: a text target",
            "select t.csv --target c",
            fails(&["t.csv", "--target c", "expected numbers"]),
        )
        .file("t.csv", TABLE),
        Case::new(
            "select: a constant target",
            "select c.csv --target y",
            fails(&["c.csv", "constant", "every row is 4"]),
        )
        .file("c.csv", b"x,y\n1,4\n2,4\n3,4\n4,4\n5,4\n6,4\n"),
        Case::new(
            "select: only the target",
            "select c.csv --target y",
            fails(&["c.csv", "feature columns"]),
        )
        .file("c.csv", b"y\n1\n2\n3\n4\n5\n60\n"),
        Case::new(
            "select: a bad cell",
            "select c.csv --target y",
            fails(&["c.csv", "oops"]),
        )
        .file("c.csv", b"x,y\n1,4\n2,oops\n3,4\n"),
        r("select: one fold", "--folds 1", fails(&["--folds 1"])),
        r("select: no repeat", "--repeats 0", fails(&["--repeats 0"])),
        r(
            "select: test size 1",
            "--test-size 1",
            fails(&["--test-size 1"]),
        ),
        r(
            "select: a negative MAE allowance",
            "--max-all-loss -0.1",
            fails(&["--max-all-loss -0.1"]),
        ),
        r(
            "select: an unknown method",
            "--methods lds,smote",
            fails(&["--methods", "'smote'", "smogn"]),
        ),
        r(
            "select: a threshold above 1",
            "--threshold 1.5",
            fails(&["--threshold 1.5"]),
        ),
        r(
            "select: more folds than rows",
            "--folds 50 --test-size 0",
            fails(&["n_splits", "fewer splits than rows"]),
        ),
        r(
            "select: the figures exist",
            "--plot figs --test-size 0 --folds 2",
            fails(&["figs/pareto.png", "--force"]),
        )
        .file("figs/pareto.png", b"keep me"),
    ]
}

fn resample_cases() -> Vec<Case> {
    let r = |name: &str, extra: &str, expect| {
        Case::new(name, &format!("resample t.csv --target y {extra}"), expect).file("t.csv", TABLE)
    };
    vec![
        r(
            "the output onto the input",
            "--method ro --output t.csv",
            fails(&["t.csv", "refusing to overwrite the input file"]),
        ),
        r(
            "the output into a missing folder",
            "--method ro --output nowhere/o.csv",
            fails(&["the folder nowhere does not exist"]),
        ),
        r(
            "the output exists",
            "--method ro --output o.csv",
            fails(&["o.csv", "already exists"]),
        )
        .file("o.csv", b"keep me\n"),
        r(
            "a strategy factor that would need terabytes",
            "--method ro --strategy 1e12 --output o.csv",
            fails(&["rows", "cells", "smaller --strategy"]),
        ),
        r(
            "a NaN strategy factor",
            "--method ro --strategy NaN --output o.csv",
            fails(&["--strategy factor NaN"]),
        ),
        r(
            "k zero",
            "--method smoter --k 0 --output o.csv",
            fails(&["--k 0"]),
        ),
        r(
            "a threshold above 1",
            "--method ro --threshold 1.5 --output o.csv",
            fails(&["--threshold 1.5"]),
        ),
        r(
            "WERCS with a negative over-sampling fraction",
            "--method wercs --over -1 --output o.csv",
            fails(&["over fraction -1"]),
        ),
        Case::new(
            "a missing value",
            "resample m.csv --target y --method ro --output o.csv",
            fails(&["m.csv:3", "column 'x'", "missing value"]),
        )
        .file("m.csv", b"x,y\n1,1\nNA,2\n3,3\n"),
        Case::new(
            "a duplicate column name",
            "resample d.csv --target y --method ro --output o.csv",
            fails(&["d.csv", "both called 'y'"]),
        )
        .file("d.csv", b"y,y\n1,1\n2,2\n"),
        Case::new(
            "a text target",
            "resample t.csv --target c --method ro --output o.csv",
            fails(&["--target c", "holds text"]),
        )
        .file("t.csv", TABLE),
        r(
            "SMOGN written",
            "--method smogn --output o.csv",
            succeeds(&["wrote o.csv"], &["o.csv"]),
        ),
    ]
}

fn split_cases() -> Vec<Case> {
    let mut many = Case::new(
        "many bad names: a summary, five of them and a count",
        "split faces --out idx.csv",
        fails(&["faces: 12 bad file names", "… and 7 more (--list-bad"]),
    );
    let mut all = Case::new(
        "many bad names listed in full",
        "split faces --out idx.csv --list-bad",
        fails(&["faces: 12 bad file names", "face_11.jpg"]),
    );
    for i in 0..12 {
        many = many.file(&format!("faces/face_{i:02}.jpg"), b"");
        all = all.file(&format!("faces/face_{i:02}.jpg"), b"");
    }
    vec![
        Case::new(
            "a folder with no images",
            "split faces --out idx.csv",
            fails(&["faces", "has no .jpg, .jpeg or .png files"]),
        )
        .file("faces/readme.txt", b"hello"),
        Case::new(
            "a missing folder",
            "split nope --out idx.csv",
            fails(&["nope"]),
        ),
        Case::new(
            "an age that does not parse",
            "split faces --out idx.csv",
            fails(&["faces", "1 bad file name", "1_Ann_x_f.jpg", "--skip-bad"]),
        )
        .file("faces/0_Bob_30_m.jpg", b"")
        .file("faces/1_Ann_x_f.jpg", b""),
        Case::new(
            "an age that does not parse, skipped",
            "split faces --out idx.csv --skip-bad",
            succeeds(&["skipped 1 image with bad names"], &["idx.csv"]),
        )
        .file("faces/0_Bob_30_m.jpg", b"")
        .file("faces/1_Ann_x_f.jpg", b""),
        many,
        all,
        Case::new(
            "the index onto an image name",
            "split faces --out faces/x.jpg",
            fails(&["faces/x.jpg", "image file name"]),
        )
        .file("faces/0_Bob_30_m.jpg", b""),
        Case::new(
            "the index onto a folder",
            "split faces --out faces",
            fails(&["faces", "is a directory"]),
        )
        .file("faces/0_Bob_30_m.jpg", b""),
        Case::new(
            "the index in a missing folder",
            "split faces --out nowhere/idx.csv",
            fails(&["the folder nowhere does not exist"]),
        )
        .file("faces/0_Bob_30_m.jpg", b""),
    ]
}

#[test]
fn every_subcommand_survives_hostile_input() {
    let cases: Vec<Case> = [
        weights_cases(),
        eval_cases(),
        relevance_cases(),
        resample_cases(),
        select_cases(),
        split_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    check_all(&dirkit(), &cases);
}

#[test]
fn an_output_in_a_read_only_folder_is_refused_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        // Permissions are not enforced (running as root): nothing to observe.
        eprintln!("skipped: the read-only folder is writable here (root)");
        return;
    }
    let case = Case::new(
        "per-sample output in a read-only folder",
        "weights in.csv --per-sample",
        fails(&["Permission denied"]),
    )
    .file("in.csv", OK)
    .arg(ro.join("w.csv").to_str().unwrap());
    check(&dirkit(), &case).unwrap();
}
