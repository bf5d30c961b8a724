//! `mmfuse train`: one run from a TOML config.

use super::Global;
use anyhow::{Context, Result};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::path::PathBuf;

/// Train a model from a TOML config; the run folder becomes a self-contained model package.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The TOML config (see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Run folder.
    #[arg(long)]
    out: PathBuf,
    /// Overrides, e.g. --set train.lr=5e-5 --set model.modality=text --set model.muse.exchange_ratio=0.2.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Continue from the run folder's last checkpoint.
    #[arg(long)]
    resume: bool,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    let mut set = a.set;
    set.extend(g.overrides());
    let cfg = RunConfig::load(&a.config, &set)?;
    let out = a.out;
    let s = run_training(&cfg, &out, &TrainOptions { resume: a.resume, quiet: g.quiet, ..Default::default() })
        .with_context(|| format!("training run {}", out.display()))?;
    println!("best dev {} = {:.4} at step {}", cfg.select_metric(), s.fit.best_metric.unwrap_or(f64::NAN), s.fit.best_step);
    if let Ok(r) = std::fs::read_to_string(out.join("results.json"))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&r)
        && let Some(n) = v["placeholder_images"].as_u64().filter(|n| *n > 0)
    {
        println!("placeholder images used: {n} (missing or unreadable image files, see the warnings above)");
    }
    if let Some(t) = &s.test {
        println!("test: {}", serde_json::to_string(&t.scores)?);
    }
    println!("run folder: {}", out.display());
    Ok(())
}
