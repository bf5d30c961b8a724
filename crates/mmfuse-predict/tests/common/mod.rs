//! Helpers shared by the prediction test binaries (each includes this file with `mod common;`).

use mmfuse_train::RunConfig;
use std::path::Path;

/// A tiny run (d 16, one layer, CNN 4/8, 2 epochs) of `task` on the split folder `dir`, with
/// `extra` overrides applied after these.
pub fn tiny_config(dir: &Path, task: &str, extra: &[String]) -> RunConfig {
    let mut o: Vec<String> = [
        "data.max_len=16",
        "model.d_model=16",
        "model.n_heads=2",
        "model.d_ff=32",
        "model.n_layers=1",
        "model.cnn_channels=[4,8]",
        "model.concat.d_hidden=16",
        "train.batch_size=32",
        "train.epochs=2",
        "train.lr=3e-3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    o.push(format!("data.dir=\"{}\"", dir.display()));
    o.extend(extra.iter().cloned());
    RunConfig::from_toml_str(&format!("[data]\ntask = \"{task}\"\ndir = \"x\"\n[model]\n[train]\n"), &o).unwrap()
}
