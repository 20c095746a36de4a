//! `dirkit weights` end to end on a 10-million-row CSV (`age,id`), as a user runs it: parse,
//! count, fit, print the table, write the per-sample weights.
//! Run: `cargo bench -p dirkit-cli --bench cli`. The CSV is generated once (seeded) under the
//! target directory. Peak memory: `/usr/bin/time -v target/release/dirkit weights …` (see README).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};

const ROWS: usize = 10_000_000;

fn input() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("ages_{ROWS}.csv"));
    if !path.exists() {
        let tmp = dir.join("ages.partial");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
        writeln!(w, "age,id").unwrap();
        let mut s = 42u64;
        for i in 0..ROWS {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            writeln!(w, "{},{i}", (18.0 + 100.0 * u * u * u).floor()).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

fn run(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_dirkit"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bench(c: &mut Criterion) {
    let csv = input();
    let csv = csv.to_str().unwrap();
    let per = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("weights.csv");
    let per = per.to_str().unwrap();
    let mut g = c.benchmark_group("cli_10M_rows");
    g.sample_size(10);
    g.bench_function("weights_table", |b| {
        b.iter(|| run(&["weights", csv, "--column", "age", "--range", "0:121"]))
    });
    g.bench_function("weights_table_auto_range_per_sample", |b| {
        b.iter(|| {
            run(&[
                "weights",
                csv,
                "--column",
                "age",
                "--force",
                "--per-sample",
                per,
            ])
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
