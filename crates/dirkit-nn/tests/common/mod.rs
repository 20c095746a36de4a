//! Helpers shared by the tests that read committed reference vectors.

#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

/// A JSON file under the repository's `tests/reference/`.
pub fn reference(rel: &str) -> Value {
    let path = format!("{}/../../tests/reference/{rel}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A JSON array of numbers.
pub fn vector(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A JSON array of arrays of numbers.
pub fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(vector).collect()
}

/// An f64 (n) tensor on the CPU.
pub fn t1(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
}

/// An f64 (rows, columns) tensor on the CPU.
pub fn t2(m: &[Vec<f64>]) -> Tensor {
    Tensor::from_vec(m.concat(), (m.len(), m[0].len()), &Device::Cpu).unwrap()
}

/// All values of a tensor as f64.
pub fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `got` equals `want` to 1e-9 relative (1e-12 absolute), the references' tolerance.
#[track_caller]
pub fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-12 + 1e-9 * want.abs(),
        "{what}: {got} vs {want}"
    );
}

/// [`close`] element by element.
#[track_caller]
pub fn close_all(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (g, w) in got.iter().zip(want) {
        close(*g, *w, what);
    }
}
