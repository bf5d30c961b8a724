//! `mmfuse evaluate`: score a run folder's best checkpoint again.

use super::Global;
use anyhow::Result;
use std::path::PathBuf;

/// Score a run folder's best checkpoint on its dev and test splits again; prints the JSON
/// detail (all metrics, incl. the MuSE reference word-piece scorer for NER).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder.
    #[arg(long)]
    model: PathBuf,
    /// Corpus folder (default: the run's data.dir).
    #[arg(long)]
    data: Option<PathBuf>,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    let (dev, test) = mmfuse_train::run::rescore(&a.model, a.data.as_deref(), &g.device()?)?;
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({"dev": dev.detail, "test": test.detail}))?);
    Ok(())
}
