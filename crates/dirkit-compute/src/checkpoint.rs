//! One-file training checkpoints: the model's variables (batch-norm running statistics
//! included), any extra named state (a head's FDS statistics, the optimiser's moments) and a
//! JSON description of the run, in a single safetensors file written atomically, so that a run
//! can resume exactly where it stopped.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Result, Tensor};
use candle_nn::VarMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ComputeError;

const MODEL_PREFIX: &str = "model.";
const META_KEY: &str = "checkpoint.meta_json";

/// Writes `varmap` (as `model.<name>`), the `extra` tensors (their own names, which must not
/// start with `model.`) and `meta` (as JSON) to `path`: first to a temporary file next to it,
/// then renamed over it, so an interrupted save never leaves a truncated checkpoint.
pub fn save_checkpoint(
    path: &Path,
    varmap: &VarMap,
    extra: &HashMap<String, Tensor>,
    meta: &impl Serialize,
) -> Result<()> {
    let mut all: HashMap<String, Tensor> = HashMap::new();
    {
        let data = varmap
            .data()
            .lock()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        for (name, var) in data.iter() {
            all.insert(
                format!("{MODEL_PREFIX}{name}"),
                var.as_tensor().to_device(&Device::Cpu)?,
            );
        }
    }
    for (k, t) in extra {
        if k.starts_with(MODEL_PREFIX) || k == META_KEY {
            return Err(ComputeError::Shape(format!(
                "checkpoint entry {k} clashes with a reserved name"
            ))
            .into());
        }
        all.insert(k.clone(), t.to_device(&Device::Cpu)?);
    }
    let json = serde_json::to_vec(meta).map_err(candle_core::Error::wrap)?;
    let n = json.len();
    all.insert(META_KEY.into(), Tensor::from_vec(json, n, &Device::Cpu)?);
    dirkit_core::atomic::replace_with(path, |tmp| {
        candle_core::safetensors::save(&all, tmp).map_err(|e| std::io::Error::other(one_line(&e)))
    })
    .map_err(|e| {
        candle_core::Error::Msg(format!(
            "{}: cannot save the checkpoint: {e}",
            path.display()
        ))
    })
}

/// What [`load_checkpoint`] read: the tensors (all of them, `model.` ones included) and the
/// run description.
pub struct Checkpoint<M> {
    /// Every tensor of the file.
    pub tensors: HashMap<String, Tensor>,
    /// The run description saved with it.
    pub meta: M,
}

impl<M> Checkpoint<M> {
    /// Sets every variable of `varmap` from the checkpoint's `model.<name>` tensor; a missing
    /// variable or a shape mismatch is an error and leaves nothing half-restored.
    pub fn restore_varmap(&self, varmap: &VarMap) -> Result<()> {
        let data = varmap
            .data()
            .lock()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut updates = Vec::with_capacity(data.len());
        for (name, var) in data.iter() {
            let key = format!("{MODEL_PREFIX}{name}");
            let t = self
                .tensors
                .get(&key)
                .ok_or_else(|| ComputeError::Shape(format!("checkpoint lacks variable {name}")))?;
            if t.dims() != var.dims() {
                return Err(ComputeError::Shape(format!(
                    "checkpoint variable {name} is {:?}, the model's is {:?}",
                    t.dims(),
                    var.dims()
                ))
                .into());
            }
            updates.push((var, t.to_dtype(var.dtype())?.to_device(var.device())?));
        }
        for (var, t) in updates {
            var.set(&t)?;
        }
        Ok(())
    }
}

/// Reads a checkpoint written by [`save_checkpoint`].
///
/// A file that does not parse (cut short by a crash or a full disk, or not a checkpoint at all)
/// is an error naming the file, never a panic or a half-restored run.
pub fn load_checkpoint<M: DeserializeOwned>(path: &Path) -> Result<Checkpoint<M>> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
        let why = match std::fs::metadata(path) {
            Err(io) => io.to_string(),
            Ok(m) => format!(
                "not a readable checkpoint ({} bytes; truncated or damaged?): {}",
                m.len(),
                one_line(&e)
            ),
        };
        candle_core::Error::Msg(format!("{}: {why}", path.display()))
    })?;
    let json: Vec<u8> = tensors
        .get(META_KEY)
        .ok_or_else(|| {
            ComputeError::Shape(format!(
                "{} is not a dirkit checkpoint (no {META_KEY})",
                path.display()
            ))
        })?
        .to_vec1()?;
    let meta = serde_json::from_slice(&json).map_err(|e| {
        candle_core::Error::Msg(format!(
            "{}: run description does not parse: {e}",
            path.display()
        ))
    })?;
    Ok(Checkpoint { tensors, meta })
}

/// The first line of an error's message (candle may append a backtrace).
fn one_line(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarBuilder;

    #[test]
    fn round_trip_restores_variables_extra_state_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let _ = candle_nn::linear(3, 2, vb.pp("l")).unwrap();
        crate::train::seeded_init(&vm, 1).unwrap();
        let mut extra = HashMap::new();
        extra.insert(
            "head.x".to_string(),
            Tensor::new(&[1.5f64], &Device::Cpu).unwrap(),
        );
        save_checkpoint(&path, &vm, &extra, &("epoch", 7)).unwrap();
        assert!(!dirkit_core::atomic::partial_path(&path).exists());
        let vm2 = VarMap::new();
        let vb2 = VarBuilder::from_varmap(&vm2, DType::F32, &Device::Cpu);
        let _ = candle_nn::linear(3, 2, vb2.pp("l")).unwrap();
        let ck: Checkpoint<(String, u32)> = load_checkpoint(&path).unwrap();
        assert_eq!(ck.meta, ("epoch".to_string(), 7));
        ck.restore_varmap(&vm2).unwrap();
        let w = |v: &VarMap| -> Vec<Vec<f32>> {
            v.data().lock().unwrap()["l.weight"].to_vec2().unwrap()
        };
        assert_eq!(w(&vm), w(&vm2));
        let x: Vec<f64> = ck.tensors["head.x"].to_vec1().unwrap();
        assert_eq!(x, vec![1.5]);
        // Another model does not restore from it.
        let vm3 = VarMap::new();
        let _ = candle_nn::linear(
            4,
            2,
            VarBuilder::from_varmap(&vm3, DType::F32, &Device::Cpu).pp("l"),
        )
        .unwrap();
        assert!(ck.restore_varmap(&vm3).is_err());
        let mut bad = HashMap::new();
        bad.insert(
            "model.l.weight".to_string(),
            Tensor::new(&[0f32], &Device::Cpu).unwrap(),
        );
        assert!(save_checkpoint(&path, &vm, &bad, &()).is_err());
    }

    fn linear_model(seed: u64) -> VarMap {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let _ = candle_nn::linear(3, 2, vb.pp("l")).unwrap();
        crate::train::seeded_init(&vm, seed).unwrap();
        vm
    }

    fn weight(vm: &VarMap) -> Vec<Vec<f32>> {
        vm.data().lock().unwrap()["l.weight"].to_vec2().unwrap()
    }

    #[test]
    fn an_interrupted_save_leaves_the_last_good_checkpoint_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        let good = linear_model(1);
        save_checkpoint(&path, &good, &HashMap::new(), &1u32).unwrap();
        let partial = dirkit_core::atomic::partial_path(&path);

        // A crash after part of the next save was written: the torn temporary file is never
        // read, the checkpoint is the previous one.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&partial, &bytes[..bytes.len() / 2]).unwrap();
        let ck: Checkpoint<u32> = load_checkpoint(&path).unwrap();
        assert_eq!(ck.meta, 1);

        // A save that fails half-way (here: its temporary file cannot be created) is an error
        // and leaves the previous checkpoint whole.
        std::fs::remove_file(&partial).unwrap();
        std::fs::create_dir(&partial).unwrap();
        let newer = linear_model(2);
        assert!(save_checkpoint(&path, &newer, &HashMap::new(), &2u32).is_err());
        let ck: Checkpoint<u32> = load_checkpoint(&path).unwrap();
        assert_eq!(ck.meta, 1);
        let restored = linear_model(3);
        ck.restore_varmap(&restored).unwrap();
        assert_eq!(weight(&restored), weight(&good));

        // Once the obstacle is gone the next save replaces it.
        std::fs::remove_dir(&partial).unwrap();
        save_checkpoint(&path, &newer, &HashMap::new(), &2u32).unwrap();
        assert_eq!(load_checkpoint::<u32>(&path).unwrap().meta, 2);
    }

    #[test]
    fn a_truncated_or_foreign_checkpoint_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        save_checkpoint(&path, &linear_model(1), &HashMap::new(), &1u32).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let e = load_checkpoint::<u32>(&path)
                .err()
                .expect("a truncated file loads");
            let e = e.to_string();
            assert!(
                e.contains("last.safetensors") && e.contains("truncated or damaged"),
                "cut at {cut}: {e}"
            );
        }
        std::fs::write(&path, b"age,path,split\n").unwrap();
        assert!(load_checkpoint::<u32>(&path).is_err());
        // A valid safetensors file that is not a dirkit checkpoint.
        let mut other = HashMap::new();
        other.insert("x".to_string(), Tensor::new(&[1f32], &Device::Cpu).unwrap());
        candle_core::safetensors::save(&other, &path).unwrap();
        let e = load_checkpoint::<u32>(&path).err().unwrap().to_string();
        assert!(e.contains("is not a dirkit checkpoint"), "{e}");
    }
}
