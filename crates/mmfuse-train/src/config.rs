//! Run configuration: one TOML document (`[data]`, `[model]`, `[train]`), `--set key=value`
//! overrides, and the resolved copy saved in every run folder.

use anyhow::{Context, Result, bail};
use mmfuse_data::image::MissingImage;
use mmfuse_models::device::DeviceSpec;
use mmfuse_models::fusion::Modality;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The task family, which fixes the reader, the head and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskFamily {
    /// Token tagging (multimodal NER); CoNLL files `train.txt`, `valid.txt`, `test.txt`.
    Ner,
    /// Sequence classification (sentiment, sarcasm); JSONL files `train.jsonl`, `dev.jsonl`,
    /// `test.jsonl`.
    Classify,
}

/// `[data]`: where the corpus is and how to read it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Task family.
    pub task: TaskFamily,
    /// Folder with the split files.
    pub dir: PathBuf,
    /// Image folder, relative to `dir` unless absolute. NER images are `<IMGID>.<ext>` in it
    /// (`.png`, then `.jpg` are tried); classification samples name their image.
    #[serde(default = "default_image_dir")]
    pub image_dir: PathBuf,
    /// What to do with a missing or undecodable image: `error` (default) or `placeholder`
    /// (counted and reported at the end of the run).
    #[serde(default = "default_missing")]
    pub missing_image: MissingImage,
    /// Word pieces per text, `[CLS]` included; longer texts are truncated (counted).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Square image size fed to the image encoder.
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// Minimum count of a word to enter the vocabulary of from-scratch text encoders.
    #[serde(default = "default_min_count")]
    pub min_word_count: u32,
    /// Class names in output order (classification); default: sorted labels of the train split.
    #[serde(default)]
    pub labels: Vec<String>,
}

fn default_image_dir() -> PathBuf {
    PathBuf::from("images")
}
fn default_missing() -> MissingImage {
    MissingImage::Error
}
fn default_max_len() -> usize {
    48
}
fn default_image_size() -> u32 {
    32
}
fn default_min_count() -> u32 {
    2
}

/// `[model]`: which method and its sizes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Fusion method: `concat` (late fusion baseline) or `muse` (CrossTransformer exchange).
    #[serde(default = "default_method")]
    pub method: String,
    /// Modalities the model sees: `text`, `image` or `fused`.
    #[serde(default = "default_modality")]
    pub modality: Modality,
    /// Hidden size of the encoders.
    #[serde(default = "default_d_model")]
    pub d_model: usize,
    /// Text encoder layers.
    #[serde(default = "default_layers")]
    pub n_layers: usize,
    /// Attention heads.
    #[serde(default = "default_heads")]
    pub n_heads: usize,
    /// Feed-forward size.
    #[serde(default = "default_d_ff")]
    pub d_ff: usize,
    /// CNN channels per block.
    #[serde(default = "default_channels")]
    pub cnn_channels: Vec<usize>,
    /// Head hidden size.
    #[serde(default = "default_d_model")]
    pub d_hidden: usize,
    /// Dropout.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// NER: decode tag sequences with a linear-chain CRF (else per-token softmax).
    #[serde(default = "default_true")]
    pub crf: bool,
    /// MuSE: CrossTransformer layers L.
    #[serde(default = "default_cross_layers")]
    pub cross_layers: usize,
    /// MuSE: θ, fraction of tokens per stream that receive the other stream's mean (0: no exchange).
    #[serde(default = "default_ratio")]
    pub exchange_ratio: f64,
    /// MuSE: μ, first exchange layer (0-based).
    #[serde(default = "default_one")]
    pub exchange_start_layer: usize,
    /// MuSE: η, last exchange layer (inclusive).
    #[serde(default = "default_three")]
    pub exchange_end_layer: usize,
    /// MuSE: replace the selected tokens by the mean instead of adding it.
    #[serde(default)]
    pub exchange_replace: bool,
    /// MuSE: reproduce the released code (no padding masks; means over all tokens).
    #[serde(default)]
    pub reference_compat: bool,
}

fn default_cross_layers() -> usize {
    4
}
fn default_ratio() -> f64 {
    0.1
}
fn default_one() -> usize {
    1
}
fn default_three() -> usize {
    3
}

fn default_true() -> bool {
    true
}

fn default_method() -> String {
    "concat".into()
}
fn default_modality() -> Modality {
    Modality::Fused
}
fn default_d_model() -> usize {
    128
}
fn default_layers() -> usize {
    2
}
fn default_heads() -> usize {
    4
}
fn default_d_ff() -> usize {
    256
}
fn default_channels() -> Vec<usize> {
    vec![32, 64, 96]
}
fn default_dropout() -> f64 {
    0.1
}

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
    /// Peak learning rate of the task head (parameters under `head`).
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
    /// Compute device: `cpu` or `cuda[:N]`.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Data parallelism: devices to shard each batch over (e.g. ["cuda:0", "cuda:1"]); empty
    /// or one entry: train on `device` alone.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// Dev metric that selects the best checkpoint: `f1` (NER micro F1), `accuracy`,
    /// `macro_f1`. Default: `f1` for NER, `macro_f1` for classification.
    #[serde(default)]
    pub select_metric: Option<String>,
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
        if !self.model.d_model.is_multiple_of(self.model.n_heads) {
            bail!("model.d_model ({}) must be divisible by model.n_heads ({})", self.model.d_model, self.model.n_heads);
        }
        match self.model.method.as_str() {
            "concat" => {}
            "muse" => {
                if self.model.modality != Modality::Fused {
                    bail!("model.method = \"muse\" fuses both modalities; use model.modality = \"fused\" (exchange_ratio = 0 is the no-exchange ablation)");
                }
                if !(0.0..=1.0).contains(&self.model.exchange_ratio) {
                    bail!("model.exchange_ratio must be in [0, 1]");
                }
                if self.model.exchange_start_layer > self.model.exchange_end_layer || self.model.exchange_end_layer >= self.model.cross_layers {
                    bail!(
                        "need exchange_start_layer <= exchange_end_layer < cross_layers, got {} / {} / {}",
                        self.model.exchange_start_layer,
                        self.model.exchange_end_layer,
                        self.model.cross_layers
                    );
                }
            }
            other => bail!("unknown model.method '{other}'; available: concat, muse"),
        }
        let m = self.select_metric();
        if !["f1", "accuracy", "macro_f1"].contains(&m.as_str()) {
            bail!("unknown train.select_metric '{m}'; expected f1, accuracy or macro_f1");
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
        assert_eq!(c.model.modality, Modality::Text);
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
