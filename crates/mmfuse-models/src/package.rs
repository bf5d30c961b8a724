//! The run folder as a model package: the files a trained run leaves beside its weights, which
//! fix the model's shape, and how to read them back. Training writes them
//! (`mmfuse-train`); prediction and serving read them with nothing else.
//!
//! ```text
//! RUN/config.toml                 the run's configuration ([data] and [model] are read here)
//! RUN/tokenizer.json              tokenizer (Hugging Face `tokenizers` format)
//! RUN/labels.json                 label map (class or tag names in output order; posts)
//! RUN/checkpoints/best/model.bpk  best-dev weights
//! RUN/text_encoder.json           a pretrained text encoder's config.json (absent: from scratch)
//! RUN/image_encoder.json          a pretrained image encoder's shape (absent: the CNN)
//! RUN/caption_tokenizer.json      MuSE's caption vocabulary (captioning decoder on)
//! RUN/teacher.json                CLFA's teacher embedding size (alignment on)
//! RUN/lexicon.tsv                 CLFA's lexicon (data.lexicon set)
//! RUN/features.json               MIM's audio / video feature sizes
//! ```

use crate::config::{Migration, ModelConfig, migrate_flat_keys};
use crate::encoders::{BertConfig, PretrainedImage, TextEncoderConfig};
use crate::registry::text_encoder_config;
use mmfuse_data::config::DataConfig;
use serde::Deserialize;
use std::path::Path;

pub const CONFIG_FILE: &str = "config.toml";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const LABELS_FILE: &str = "labels.json";
/// The best-dev weights, relative to the run folder.
pub const BEST_WEIGHTS: &str = "checkpoints/best/model.bpk";
/// A pretrained text encoder's `config.json`; with it a run folder rebuilds the model without
/// the pretrained folder.
pub const TEXT_ENCODER_FILE: &str = "text_encoder.json";
/// A pretrained image encoder's shape (absent for the CNN from scratch).
pub const IMAGE_ENCODER_FILE: &str = "image_encoder.json";
/// MuSE's caption vocabulary (word-level `tokenizer.json`).
pub const CAPTION_TOKENIZER_FILE: &str = "caption_tokenizer.json";
/// CLFA's teacher embedding size (`{"dim": P}`).
pub const TEACHER_FILE: &str = "teacher.json";
/// The run's copy of CLFA's lexicon (`data.lexicon`).
pub const LEXICON_FILE: &str = "lexicon.tsv";
/// MIM's feature sizes (`{"audio_dim": A, "video_dim": V}`).
pub const FEATURES_FILE: &str = "features.json";

/// An error reading a run folder, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PackageError {
    pub path: String,
    pub message: String,
}

fn err(path: &Path, message: impl std::fmt::Display) -> PackageError {
    PackageError { path: path.display().to_string(), message: message.to_string() }
}

/// Move the flat `[model]` keys of the older layout into the selected method's table
/// ([`migrate_flat_keys`]) in a whole configuration document, and say what moved.
pub fn migrate_document(doc: &mut toml::Table, source: &str) -> Result<Migration, String> {
    let Some(model) = doc.get_mut("model") else { return Ok(Migration::default()) };
    let Some(model) = model.as_table_mut() else { return Err("[model] must be a table".into()) };
    let m = migrate_flat_keys(model)?;
    if !m.is_empty() {
        let moved: Vec<String> = m.moved.iter().map(|(a, b)| format!("{a} → {b}")).collect();
        tracing::warn!(
            "{source}: read the older flat [model] layout: {}{}",
            if moved.is_empty() { "nothing moved".to_string() } else { moved.join(", ") },
            if m.dropped.is_empty() { String::new() } else { format!("; other methods' keys dropped (unused by this model): {}", m.dropped.join(", ")) }
        );
    }
    Ok(m)
}

/// The `[data]` and `[model]` sections of a run's `config.toml` (`[train]` is the trainer's).
#[derive(Clone, Debug, Deserialize)]
pub struct PackageConfig {
    pub data: DataConfig,
    pub model: ModelConfig,
}

impl PackageConfig {
    /// Read a run folder's `config.toml` (older flat `[model]` layouts migrate), checked.
    pub fn load(run_dir: &Path) -> Result<Self, PackageError> {
        let path = run_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e))?;
        let mut doc: toml::Table = toml::from_str(&text).map_err(|e| err(&path, e))?;
        migrate_document(&mut doc, &path.display().to_string()).map_err(|e| err(&path, e))?;
        let cfg: PackageConfig = toml::Value::Table(doc).try_into().map_err(|e| err(&path, e))?;
        cfg.model.validate(&cfg.data).map_err(|e| err(&path, e))?;
        Ok(cfg)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PackageError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, e))?;
    serde_json::from_str(&text).map_err(|e| err(path, format!("corrupt: {e}")))
}

/// The pretrained text encoder's config saved in a run folder ([`TEXT_ENCODER_FILE`]), if any.
pub fn saved_text_config(run_dir: &Path) -> Result<Option<BertConfig>, PackageError> {
    let p = run_dir.join(TEXT_ENCODER_FILE);
    if !p.exists() {
        return Ok(None);
    }
    BertConfig::from_file(&p).map(Some).map_err(|e| err(&p, e))
}

/// The pretrained image encoder's shape saved in a run folder ([`IMAGE_ENCODER_FILE`]), if any.
pub fn saved_image_config(run_dir: &Path) -> Result<Option<PretrainedImage>, PackageError> {
    let p = run_dir.join(IMAGE_ENCODER_FILE);
    if !p.exists() {
        return Ok(None);
    }
    read_json(&p).map(Some)
}

/// The caption vocabulary size saved in a run folder ([`CAPTION_TOKENIZER_FILE`]; 0 if none).
pub fn saved_caption_vocab(run_dir: &Path) -> Result<usize, PackageError> {
    let p = run_dir.join(CAPTION_TOKENIZER_FILE);
    if !p.exists() {
        return Ok(0);
    }
    let tok = mmfuse_data::text::load_tokenizer(&p).map_err(|e| err(&p, e))?;
    Ok(tok.get_vocab_size(true))
}

/// CLFA's teacher embedding size saved in a run folder ([`TEACHER_FILE`]; 0 if none).
pub fn saved_teacher_dim(run_dir: &Path) -> Result<usize, PackageError> {
    let p = run_dir.join(TEACHER_FILE);
    if !p.exists() {
        return Ok(0);
    }
    let v: serde_json::Value = read_json(&p)?;
    v["dim"].as_u64().map(|d| d as usize).ok_or_else(|| err(&p, "no \"dim\""))
}

/// MIM's feature sizes saved in a run folder ([`FEATURES_FILE`]), if any.
pub fn saved_features(run_dir: &Path) -> Result<Option<(usize, usize)>, PackageError> {
    let p = run_dir.join(FEATURES_FILE);
    if !p.exists() {
        return Ok(None);
    }
    let v: serde_json::Value = read_json(&p)?;
    match (v["audio_dim"].as_u64(), v["video_dim"].as_u64()) {
        (Some(a), Some(b)) => Ok(Some((a as usize, b as usize))),
        _ => Err(err(&p, "expected {\"audio_dim\": A, \"video_dim\": V}")),
    }
}

/// What, beyond the config, fixes a model's shape: the text encoder (from scratch over the run's
/// vocabulary, or a pretrained BERT's config), the pretrained image encoder's shape, MuSE's
/// caption vocabulary, CLFA's teacher dimension, MIM's feature sizes. A run folder stores each in
/// its own file.
#[derive(Clone, Debug)]
pub struct ModelShapes {
    pub text: TextEncoderConfig,
    /// Pretrained image encoder ([`IMAGE_ENCODER_FILE`]); `None`: the CNN from scratch.
    pub image: Option<PretrainedImage>,
    /// Caption vocabulary size ([`CAPTION_TOKENIZER_FILE`]; 0 without the captioning decoder).
    pub caption_vocab: usize,
    /// CLFA teacher embedding size ([`TEACHER_FILE`]; 0 without alignment).
    pub teacher_dim: usize,
    /// MIM's audio and video feature sizes ([`FEATURES_FILE`]).
    pub features: Option<(usize, usize)>,
}

impl ModelShapes {
    /// A from-scratch model over `vocab_size` words.
    pub fn scratch(model: &ModelConfig, data: &DataConfig, vocab_size: usize) -> Self {
        Self { text: text_encoder_config(model, data, vocab_size, None), image: None, caption_vocab: 0, teacher_dim: 0, features: None }
    }

    /// The shapes saved in a run folder, whose tokenizer has `vocab_size` entries.
    pub fn from_run_dir(run_dir: &Path, model: &ModelConfig, data: &DataConfig, vocab_size: usize) -> Result<Self, PackageError> {
        Ok(Self {
            text: text_encoder_config(model, data, vocab_size, saved_text_config(run_dir)?.as_ref()),
            image: saved_image_config(run_dir)?,
            caption_vocab: saved_caption_vocab(run_dir)?,
            teacher_dim: saved_teacher_dim(run_dir)?,
            features: saved_features(run_dir)?,
        })
    }
}
