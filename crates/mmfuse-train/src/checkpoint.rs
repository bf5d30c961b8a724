//! Checkpoints, written atomically: a checkpoint is a folder (`model.bpk`, optionally
//! `optimizer.bpk`, `state.json`) that is fully written and synced under a temporary name, then
//! renamed into place. A kill at any moment leaves the previous good checkpoint.

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use mmfuse_data::fsutil;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Where training stands: enough to continue exactly where it stopped.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Batches of the current epoch already consumed.
    pub batch_in_epoch: usize,
    /// Best dev value of the selection metric so far.
    pub best_metric: Option<f64>,
    /// Step of the best checkpoint.
    pub best_step: usize,
    /// Evaluations since the last improvement (early stopping).
    pub evals_since_best: usize,
    /// Step of the last dev evaluation.
    #[serde(default)]
    pub last_eval_step: usize,
    /// Whether training finished (early stop or all epochs).
    pub finished: bool,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub model: ModuleRecord,
    pub optimizer: Option<Bytes>,
    pub state: TrainState,
    pub dir: PathBuf,
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(fsutil::write_synced(path, bytes)?)
}

/// Write a file atomically (temporary file in the same folder, fsync, rename; see
/// [`mmfuse_data::fsutil::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(fsutil::write_atomic(path, bytes)?)
}

/// Save `model` (and `optimizer`) with `state` as checkpoint `name` under `root`.
pub fn save<M: Module>(root: &Path, name: &str, model: &M, optimizer: Option<&ModuleOptimizer>, state: &TrainState) -> Result<()> {
    save_with(root, name, model, optimizer, &[], state)
}

/// [`save`] with further optimisers, each written as `<file>.bpk` (MIM's UPN optimiser) and read
/// back by [`load_extra`].
pub fn save_with<M: Module>(
    root: &Path,
    name: &str,
    model: &M,
    optimizer: Option<&ModuleOptimizer>,
    extra: &[(&str, &ModuleOptimizer)],
    state: &TrainState,
) -> Result<()> {
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let final_dir = root.join(name);
    let tmp = root.join(format!(".{name}.tmp"));
    let old = root.join(format!(".{name}.old"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp)?;
    // `valid()` synchronises running statistics (batch-norm), which a plain record would capture
    // one update late
    let model_bytes = model.valid().into_record().into_bytes().context("cannot serialise the model")?;
    write_synced(&tmp.join("model.bpk"), &model_bytes)?;
    if let Some(o) = optimizer {
        let b = o.into_bytes().context("cannot serialise the optimizer state")?;
        write_synced(&tmp.join("optimizer.bpk"), &b)?;
    }
    for (file, o) in extra {
        let b = o.into_bytes().with_context(|| format!("cannot serialise the {file} state"))?;
        write_synced(&tmp.join(format!("{file}.bpk")), &b)?;
    }
    write_synced(&tmp.join("state.json"), serde_json::to_string_pretty(state)?.as_bytes())?;
    fsutil::sync_dir(&tmp);
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    if final_dir.exists() {
        fs::rename(&final_dir, &old)?;
    }
    fs::rename(&tmp, &final_dir)?;
    fsutil::sync_dir(root);
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Load checkpoint `name` under `root`, if there is one (also recovers a checkpoint left as
/// `.name.old` by a kill between the two renames of [`save`]).
pub fn load(root: &Path, name: &str) -> Result<Option<Checkpoint>> {
    let mut dir = root.join(name);
    if !dir.exists() {
        let old = root.join(format!(".{name}.old"));
        if old.exists() {
            dir = old;
        } else {
            return Ok(None);
        }
    }
    let model = ModuleRecord::load(dir.join("model.bpk")).with_context(|| format!("cannot read {}", dir.join("model.bpk").display()))?;
    let opt_path = dir.join("optimizer.bpk");
    let optimizer =
        if opt_path.exists() { Some(Bytes::from_bytes_vec(fs::read(&opt_path).with_context(|| format!("cannot read {}", opt_path.display()))?)) } else { None };
    let state_path = dir.join("state.json");
    let state = serde_json::from_str(&fs::read_to_string(&state_path).with_context(|| format!("cannot read {}", state_path.display()))?)
        .with_context(|| format!("corrupt {}", state_path.display()))?;
    Ok(Some(Checkpoint { model, optimizer, state, dir }))
}

/// A further optimiser state saved by [`save_with`] in the checkpoint folder `dir`.
pub fn load_extra(dir: &Path, file: &str) -> Result<Option<Bytes>> {
    let p = dir.join(format!("{file}.bpk"));
    if !p.exists() {
        return Ok(None);
    }
    Ok(Some(Bytes::from_bytes_vec(fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    #[test]
    fn save_load_round_trip_and_interrupted_rename() {
        let dir = std::env::temp_dir().join(format!("mmfuse-ckpt-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let device = Device::flex();
        let a: Linear = LinearConfig::new(3, 2).init(&device);
        let st = TrainState { step: 7, best_metric: Some(0.5), ..Default::default() };
        save(&dir, "last", &a, None, &st).unwrap();
        let b: Linear = LinearConfig::new(3, 2).init(&device);
        let ck = load(&dir, "last").unwrap().unwrap();
        assert_eq!(ck.state, st);
        let b = b.load_record(ck.model);
        let wa = a.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let wb = b.weight.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(wa, wb);
        // a kill between "rename final -> old" and "rename tmp -> final" leaves only .last.old
        fs::rename(dir.join("last"), dir.join(".last.old")).unwrap();
        let ck = load(&dir, "last").unwrap().unwrap();
        assert_eq!(ck.state.step, 7);
        // a half-written temporary folder is ignored and replaced by the next save
        fs::create_dir_all(dir.join(".last.tmp")).unwrap();
        fs::write(dir.join(".last.tmp/model.bpk"), b"garbage").unwrap();
        save(&dir, "last", &a, None, &TrainState { step: 8, ..Default::default() }).unwrap();
        assert_eq!(load(&dir, "last").unwrap().unwrap().state.step, 8);
        assert!(!dir.join(".last.old").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
