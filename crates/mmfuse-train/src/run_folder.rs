//! What both kinds of run (posts: [`crate::run`]; word-aligned features: [`crate::aligned`])
//! write to a run folder beyond the model package ([`mmfuse_models::package`]): the resolved
//! pretrained text encoder, the run's summary, the training curves.

use crate::config::RunConfig;
use crate::evaluate::EvalResult;
use crate::trainer::{FitOutcome, metrics_path};
use anyhow::{Context, Result, bail};
use mmfuse_metrics::plot::{CurvePoint, plot_curves};
use mmfuse_models::encoders::BertConfig;
use std::path::{Path, PathBuf};

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
    mmfuse_models::registry::check_text_config(&cfg.model, &cfg.data, &b).map_err(anyhow::Error::msg)?;
    Ok(Some((dir.clone(), b)))
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
