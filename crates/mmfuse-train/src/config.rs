//! Run configuration: one TOML document (`[data]`: [`DataConfig`], owned by mmfuse-data;
//! `[model]`: [`ModelConfig`], owned by mmfuse-models; `[train]`: [`TrainConfig`], here),
//! `--set key=value` overrides, and the resolved copy saved in every run folder.

use anyhow::{Context, Result, bail};
pub use mmfuse_data::config::{DataConfig, TaskFamily};
use mmfuse_kernels::device::DeviceSpec;
pub use mmfuse_models::config::{Method, ModelConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[train]`: optimisation and evaluation schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Epochs over the train split.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Stop after this many optimiser steps (0: no limit).
    #[serde(default)]
    pub max_steps: usize,
    /// Samples per batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Peak learning rate of the encoders and fusion layers.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Peak learning rate of the task head (parameters under `head` and `crf`).
    #[serde(default = "default_lr")]
    pub head_lr: f64,
    /// AdamW decoupled weight decay; biases and norm parameters get none.
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// AdamW epsilon.
    #[serde(default = "default_eps")]
    pub adam_eps: f64,
    /// Fraction of the steps spent in linear warm-up; then linear decay to 0.
    #[serde(default = "default_warmup")]
    pub warmup_ratio: f64,
    /// Clip the global gradient norm (over all parameters) to this value (0: off).
    #[serde(default = "default_clip")]
    pub clip_norm: f64,
    /// Evaluate on dev every N steps (0: at the end of each epoch).
    #[serde(default)]
    pub eval_every: usize,
    /// Stop after this many evaluations without dev improvement (0: never).
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// Seed of parameter init, shuffling and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Compute device: `cpu`, `gpu[:N]` / `gpu:software` (feature `wgpu`) or `cuda[:N]` (feature `cuda`).
    #[serde(default)]
    pub device: DeviceSpec,
    /// Data parallelism: devices to shard each batch over (e.g. ["cuda:0", "cuda:1"]); empty
    /// or one entry: train on `device` alone.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// Parameters to freeze, by path prefix with the model's variant names left out (e.g.
    /// `image.resnet.stem`, `image.resnet.stages.0` = torchvision's conv1/bn1 and layer1, as
    /// MuSE freezes them; `text.embeddings`). Each prefix must match at least one parameter.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Batch normalisation while training: `train` (batch statistics, running statistics
    /// updated, as PyTorch's `model.train()`, frozen layers included) or `eval` (every BN layer
    /// normalises with its running statistics and keeps them, e.g. a pretrained ResNet
    /// fine-tuned with small batches).
    #[serde(default = "default_bn")]
    pub batch_norm: String,
    /// Dev metric that selects the best checkpoint: `f1` (NER micro F1), `accuracy`,
    /// `macro_f1`. Default: `f1` for NER, `macro_f1` for classification.
    #[serde(default)]
    pub select_metric: Option<String>,
    /// Modality dropout (off by default): each training post of a fused model loses its image
    /// with probability `image`, else its text with probability `text`; each MIM segment its
    /// `audio`, else its `video`. Drawn from the run's seed and the step, so a resumed run draws
    /// the same. Unimodal models (`model.modality = "text"` or `"image"`) ignore it.
    #[serde(default)]
    pub modality_dropout: crate::batches::ModalityDropout,
}

fn default_bn() -> String {
    "train".into()
}
fn default_epochs() -> usize {
    10
}
fn default_batch() -> usize {
    32
}
fn default_lr() -> f64 {
    1e-3
}
fn default_wd() -> f64 {
    0.01
}
fn default_eps() -> f64 {
    1e-8
}
fn default_warmup() -> f64 {
    0.1
}
fn default_clip() -> f64 {
    1.0
}
fn default_patience() -> usize {
    5
}
fn default_seed() -> u64 {
    42
}

/// A whole run configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
}

impl RunConfig {
    /// Parse a TOML document, apply `key=value` overrides (dotted keys, TOML values; a value that
    /// is not valid TOML is taken as a string), and validate.
    pub fn from_toml_str(text: &str, overrides: &[String]) -> Result<Self> {
        let mut doc: toml::Table = toml::from_str(text).context("invalid TOML")?;
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        mmfuse_models::package::migrate_document(&mut doc, "configuration").map_err(anyhow::Error::msg)?;
        let cfg: RunConfig = toml::Value::Table(doc).try_into().context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read a TOML file and apply overrides. Relative `data.dir` is resolved against the file's
    /// folder.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg = Self::from_toml_str(&text, overrides).with_context(|| format!("in {}", path.display()))?;
        if cfg.data.dir.is_relative()
            && !cfg.data.dir.exists()
            && let Some(parent) = path.parent()
        {
            let candidate = parent.join(&cfg.data.dir);
            if candidate.exists() {
                cfg.data.dir = candidate;
            }
        }
        Ok(cfg)
    }

    /// The resolved configuration as TOML (saved as `config.toml` in the run folder).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serialises")
    }

    /// The metric that selects the best checkpoint.
    pub fn select_metric(&self) -> String {
        self.train.select_metric.clone().unwrap_or_else(|| match self.data.task {
            TaskFamily::Ner => "f1".into(),
            TaskFamily::Classify => "macro_f1".into(),
            TaskFamily::Regression => "mae".into(),
        })
    }

    fn validate(&self) -> Result<()> {
        let t = &self.train;
        if t.batch_size == 0 {
            bail!("train.batch_size must be at least 1");
        }
        if !(t.lr > 0.0 && t.head_lr > 0.0) {
            bail!("train.lr and train.head_lr must be positive");
        }
        if !(0.0..1.0).contains(&t.warmup_ratio) {
            bail!("train.warmup_ratio must be in [0, 1)");
        }
        if self.data.max_len < 2 {
            bail!("data.max_len must be at least 2 ([CLS] and one token)");
        }
        let md = t.modality_dropout;
        for (name, p) in [("image", md.image), ("text", md.text), ("audio", md.audio), ("video", md.video)] {
            if !(0.0..1.0).contains(&p) {
                bail!("train.modality_dropout.{name} must be in [0, 1), got {p}");
            }
        }
        if self.data.task == TaskFamily::Regression {
            if md.image > 0.0 || md.text > 0.0 {
                bail!("train.modality_dropout: MIM runs on word-aligned features drop `audio` or `video`, not `image` or `text`");
            }
        } else {
            if md.audio > 0.0 || md.video > 0.0 {
                bail!("train.modality_dropout: text + image posts drop `image` or `text`; `audio` and `video` are for MIM runs");
            }
            if md.text > 0.0 && self.data.task != TaskFamily::Classify {
                bail!("train.modality_dropout.text applies to classification only: a post without its text has nothing to tag");
            }
        }
        self.model.validate(&self.data).map_err(anyhow::Error::msg)?;
        if !["train", "eval"].contains(&self.train.batch_norm.as_str()) {
            bail!("train.batch_norm must be \"train\" or \"eval\", got \"{}\"", self.train.batch_norm);
        }
        let m = self.select_metric();
        let allowed: &[&str] = if self.data.task == TaskFamily::Regression {
            &["mae", "corr", "corr_non0", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"]
        } else {
            &["f1", "accuracy", "macro_f1"]
        };
        if !allowed.contains(&m.as_str()) {
            bail!("unknown train.select_metric '{m}'; expected one of {} (mae: lower is better)", allowed.join(", "));
        }
        Ok(())
    }
}

/// Set `a.b.c = value` in a TOML table.
fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment.split_once('=').with_context(|| format!("--set expects key=value, got '{assignment}'"))?;
    let key = key.trim();
    let raw = raw.trim();
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("bad key '{key}' in --set");
    }
    let mut table = doc;
    for p in &parts[..parts.len() - 1] {
        table = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("--set {key}: '{p}' is not a table"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[data]
task = "ner"
dir = "corpus/ner"
[model]
[train]
"#;

    #[test]
    fn defaults_and_overrides() {
        let c = RunConfig::from_toml_str(BASE, &["train.lr=5e-5".into(), "model.modality=text".into(), "train.device=cpu".into()]).unwrap();
        assert_eq!(c.train.lr, 5e-5);
        assert_eq!(c.model.modality, mmfuse_models::fusion::Modality::Text);
        assert_eq!(c.train.batch_size, 32);
        assert_eq!(c.select_metric(), "f1");
        // round trip through the saved form
        let again = RunConfig::from_toml_str(&c.to_toml(), &[]).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = RunConfig::from_toml_str(BASE, &["train.lrr=1".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("lrr"), "{e:#}");
        let e = RunConfig::from_toml_str(BASE, &["model.n_heads=3".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("divisible"), "{e:#}");
        assert!(RunConfig::from_toml_str(BASE, &["nokey".into()]).is_err());
    }
}
