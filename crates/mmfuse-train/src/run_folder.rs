//! What a run folder holds that both kinds of run (posts: [`crate::run`]; word-aligned
//! features: [`crate::aligned`]) read and write: the pretrained text encoder's config, the run's
//! summary, the training curves.

use crate::config::RunConfig;
use crate::evaluate::EvalResult;
use crate::trainer::{FitOutcome, metrics_path};
use anyhow::{Context, Result, bail};
use mmfuse_metrics::plot::{CurvePoint, plot_curves};
use mmfuse_models::encoders::{BertConfig, TextEncoderConfig, TextTransformerConfig};
use std::path::{Path, PathBuf};

/// The run's file holding the pretrained text encoder's `config.json` (absent for from-scratch
/// text encoders); with it a run folder rebuilds the model without the pretrained folder.
pub const TEXT_ENCODER_FILE: &str = "text_encoder.json";

/// The text encoder a config describes: BERT of `bert` (a pretrained encoder's config), else a
/// Transformer from scratch over `vocab_size` words.
pub fn text_encoder_config(cfg: &RunConfig, vocab_size: usize, bert: Option<&BertConfig>) -> TextEncoderConfig {
    let m = &cfg.model;
    match bert {
        Some(b) => TextEncoderConfig::Bert(b.clone()),
        None => TextTransformerConfig::new(vocab_size)
            .with_d_model(m.d_model)
            .with_n_heads(m.n_heads)
            .with_n_layers(m.n_layers)
            .with_d_ff(m.d_ff)
            .with_max_len(cfg.data.max_len)
            .with_dropout(m.dropout)
            .into(),
    }
}

/// The pretrained text encoder's config named by `model.text_encoder`, checked against the run
/// (sequence length, heads of the fusion layers).
/// `model.text_encoder` may be a folder or a Hugging Face hub id ([`crate::hub`]); the
/// resolved folder comes back with the config.
pub fn pretrained_text_config(cfg: &RunConfig) -> Result<Option<(PathBuf, BertConfig)>> {
    let Some(spec) = &cfg.model.text_encoder else { return Ok(None) };
    let dir = &crate::hub::resolve_folder(spec, &["config.json", "model.safetensors", "tokenizer.json"], "model.text_encoder")?;
    // a local folder may hold PyTorch's pytorch_model.bin instead of model.safetensors
    let weights = if dir.join("pytorch_model.bin").is_file() && !dir.join("model.safetensors").is_file() { "pytorch_model.bin" } else { "model.safetensors" };
    let missing: Vec<&str> = ["config.json", weights, "tokenizer.json"].into_iter().filter(|f| !dir.join(f).is_file()).collect();
    if !missing.is_empty() {
        bail!(
            "model.text_encoder = {}: missing {} — put a Hugging Face BERT model there (config.json, model.safetensors or pytorch_model.bin, tokenizer.json, \
             e.g. the files of bert-base-uncased or sentence-transformers/all-MiniLM-L6-v2)",
            dir.display(),
            missing.join(", ")
        );
    }
    let b = BertConfig::from_file(dir.join("config.json")).with_context(|| format!("model.text_encoder = {}", dir.display()))?;
    check_text_config(cfg, &b)?;
    Ok(Some((dir.clone(), b)))
}

fn check_text_config(cfg: &RunConfig, b: &BertConfig) -> Result<()> {
    if cfg.data.max_len > b.max_position_embeddings {
        bail!("data.max_len {} is longer than the text encoder's max_position_embeddings {}", cfg.data.max_len, b.max_position_embeddings);
    }
    if cfg.model.method == "muse" && !b.hidden_size.is_multiple_of(cfg.model.n_heads) {
        bail!("the text encoder's hidden_size {} must be divisible by model.n_heads {} (the CrossTransformer's heads)", b.hidden_size, cfg.model.n_heads);
    }
    Ok(())
}

/// The text encoder config saved in a run folder ([`TEXT_ENCODER_FILE`]), if any.
pub fn saved_text_config(run_dir: &Path) -> Result<Option<BertConfig>> {
    let p = run_dir.join(TEXT_ENCODER_FILE);
    if !p.exists() {
        return Ok(None);
    }
    Ok(Some(BertConfig::from_file(&p).with_context(|| format!("reading {}", p.display()))?))
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub fit: FitOutcome,
    pub dev: Option<EvalResult>,
    pub test: Option<EvalResult>,
    pub seconds: f64,
}

/// Draw `curves.png` from `metrics.jsonl`.
pub fn write_curves(run_dir: &Path, metric: &str) -> Result<()> {
    let text = std::fs::read_to_string(metrics_path(run_dir))?;
    let mut loss = Vec::new();
    let mut dev = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let step = v["step"].as_u64().unwrap_or(0) as usize;
        if let Some(l) = v["loss"].as_f64() {
            loss.push(CurvePoint { step, value: l });
        }
        if let Some(m) = v["dev"][metric].as_f64() {
            dev.push(CurvePoint { step, value: m });
        }
    }
    plot_curves(&run_dir.join("curves.png"), &run_dir.display().to_string(), &loss, &[(format!("dev {metric}"), dev)])?;
    Ok(())
}
