//! Checkpoints, written atomically: a checkpoint is a folder (`model.bpk`, optionally
//! `optimizer.bpk` and further optimiser states, `state.json`, and `manifest.json` with the size
//! and CRC-32 of each of them) that is fully written and synced under a temporary name, then
//! renamed into place; the checkpoint it replaces stays as `.<name>.old` until the next save.
//! A kill at any moment leaves a good checkpoint. On load, a checkpoint whose files do not
//! match their manifest (truncated, bytes flipped, a file missing) is reported and the previous
//! one (`.<name>.old`) is used; checkpoints written before manifests existed load unchecked.

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use mmfuse_data::fsutil;
pub use mmfuse_data::manifest::MANIFEST;
use mmfuse_data::manifest::{FileSum, Manifest, read_checked, read_manifest, read_required};
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
    /// Sums of the logged values over the steps since the last `metrics.jsonl` row, and their
    /// count: a resumed run logs the same running means as an uninterrupted one.
    #[serde(default)]
    pub log_sums: Vec<(String, f64)>,
    #[serde(default)]
    pub log_steps: usize,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub model: ModuleRecord,
    pub optimizer: Option<Bytes>,
    pub state: TrainState,
    pub dir: PathBuf,
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    fsutil::write_synced(path, bytes)?;
    slow_write_pause();
    Ok(())
}

/// Test hook: `MMFUSE_TEST_CHECKPOINT_PAUSE_MS` pauses after each file of a checkpoint, so that
/// the crash test's kills land inside checkpoint writes (unset: no pause).
fn slow_write_pause() {
    static PAUSE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ms = *PAUSE.get_or_init(|| std::env::var("MMFUSE_TEST_CHECKPOINT_PAUSE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0));
    if ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
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
    // a failure (a full disk) leaves the checkpoint being replaced untouched: the new one is
    // written beside it and takes its place only once complete
    write_checkpoint(root, name, model, optimizer, extra, state)
        .with_context(|| format!("cannot save checkpoint '{name}' of step {} in {}; the previous '{name}' checkpoint is kept", state.step, root.display()))
}

fn write_checkpoint<M: Module>(
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
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    // `valid()` synchronises running statistics (batch-norm), which a plain record would capture
    // one update late
    // each file's size and checksum are taken from the bytes as they are written
    let mut manifest = Manifest::new();
    let mut put = |name: String, bytes: &[u8]| -> Result<()> {
        write_synced(&tmp.join(&name), bytes)?;
        manifest.insert(name, FileSum::of(bytes));
        Ok(())
    };
    let model_bytes = model.valid().into_record().into_bytes().context("cannot serialise the model")?;
    put("model.bpk".into(), &model_bytes)?;
    if let Some(o) = optimizer {
        put("optimizer.bpk".into(), &o.into_bytes().context("cannot serialise the optimizer state")?)?;
    }
    for (file, o) in extra {
        put(format!("{file}.bpk"), &o.into_bytes().with_context(|| format!("cannot serialise the {file} state"))?)?;
    }
    put("state.json".into(), serde_json::to_string_pretty(state)?.as_bytes())?;
    write_synced(&tmp.join(MANIFEST), serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    fsutil::sync_dir(&tmp);
    // the checkpoint being replaced becomes `.old` (kept until the next save: the fallback when
    // the new one is found damaged), then the new one takes its place
    if final_dir.exists() {
        if old.exists() {
            fs::remove_dir_all(&old)?;
        }
        fs::rename(&final_dir, &old)?;
    }
    fs::rename(&tmp, &final_dir)?;
    fsutil::sync_dir(root);
    Ok(())
}

/// Check the checkpoint folder `dir` against its manifest: `Err` says what is damaged. A folder
/// without a manifest (written before manifests existed) passes.
pub fn verify(dir: &Path) -> Result<()> {
    let Some(m) = read_manifest(dir)? else { return Ok(()) };
    for name in m.keys() {
        read_checked(dir, Some(&m), name)?;
    }
    Ok(())
}

/// Load checkpoint `name` under `root`, if there is one: the checkpoint itself, or when it is
/// missing (a kill between the two renames of [`save`]) or damaged (see [`verify`]; a warning
/// says what) the previous one, `.name.old`. Both damaged is an error naming both.
pub fn load(root: &Path, name: &str) -> Result<Option<Checkpoint>> {
    let current = root.join(name);
    let old = root.join(format!(".{name}.old"));
    let mut damage = Vec::new();
    for dir in [current, old] {
        if !dir.exists() {
            continue;
        }
        match read_checkpoint(&dir) {
            Ok(ck) => {
                if !damage.is_empty() {
                    tracing::warn!("checkpoint {}: using the previous good checkpoint {} (step {})", damage.join("; "), dir.display(), ck.state.step);
                }
                return Ok(Some(ck));
            }
            Err(e) => damage.push(format!("{e:#}")),
        }
    }
    if damage.is_empty() {
        return Ok(None);
    }
    bail!("no usable checkpoint '{name}' in {}: {}", root.display(), damage.join("; "))
}

/// Read and check (see [`verify`]) the checkpoint folder `dir`, each file read once.
fn read_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let dir = dir.to_path_buf();
    let manifest = read_manifest(&dir)?;
    let m = manifest.as_ref();
    // the model is read into memory: a record loaded from the file reads it lazily, and the file
    // goes away when later saves replace this checkpoint
    let mp = dir.join("model.bpk");
    let bytes = read_required(&dir, m, "model.bpk")?;
    let model = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).with_context(|| format!("cannot read {}", mp.display()))?;
    let optimizer = read_checked(&dir, m, "optimizer.bpk")?.map(Bytes::from_bytes_vec);
    let state_path = dir.join("state.json");
    let text = read_required(&dir, m, "state.json")?;
    let state = serde_json::from_slice(&text).with_context(|| format!("corrupt {}", state_path.display()))?;
    // the further optimiser states are checked here too ([`load_extra`] reads them when asked)
    for name in m.into_iter().flat_map(|m| m.keys()).filter(|n| !["model.bpk", "optimizer.bpk", "state.json"].contains(&n.as_str())) {
        read_checked(&dir, m, name)?;
    }
    Ok(Checkpoint { model, optimizer, state, dir })
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
        save(&dir, "last", &a, None, &TrainState { step: 9, ..Default::default() }).unwrap();
        // the replaced checkpoint stays as the fallback
        assert_eq!(read_checkpoint(&dir.join(".last.old")).unwrap().state.step, 8);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_checkpoint_is_detected_and_the_previous_one_used() {
        let dir = std::env::temp_dir().join(format!("mmfuse-ckpt-damage-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a: Linear = LinearConfig::new(3, 2).init(&Device::flex());
        save(&dir, "last", &a, None, &TrainState { step: 4, ..Default::default() }).unwrap();
        save(&dir, "last", &a, None, &TrainState { step: 6, ..Default::default() }).unwrap();
        // one flipped byte in the newest model file
        let model = dir.join("last/model.bpk");
        let mut bytes = fs::read(&model).unwrap();
        let k = bytes.len() / 2;
        bytes[k] ^= 0x40;
        fs::write(&model, &bytes).unwrap();
        let e = verify(&dir.join("last")).unwrap_err().to_string();
        assert!(e.contains("model.bpk does not match its checksum"), "{e}");
        assert_eq!(load(&dir, "last").unwrap().unwrap().state.step, 4, "falls back to the previous checkpoint");
        // truncated state of the previous one too: both are named in the error
        let state = dir.join(".last.old/state.json");
        let text = fs::read(&state).unwrap();
        fs::write(&state, &text[..text.len() / 2]).unwrap();
        let e = format!("{:#}", load(&dir, "last").err().unwrap());
        assert!(e.contains("no usable checkpoint 'last'") && e.contains("model.bpk does not match") && e.contains("truncated"), "{e}");
        // a checkpoint from before manifests loads unchecked
        fs::remove_file(dir.join("last/manifest.json")).unwrap();
        fs::write(&model, fs::read(dir.join(".last.old/model.bpk")).unwrap()).unwrap();
        assert!(verify(&dir.join("last")).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }
}
