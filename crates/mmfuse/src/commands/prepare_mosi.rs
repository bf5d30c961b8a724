//! `mmfuse prepare-mosi`: word-aligned feature pickles → mmfuse's aligned layout.

use super::Global;
use anyhow::Result;
use std::path::PathBuf;

/// Convert word-aligned features (MAG-BERT `mosi.pkl`/`mosei.pkl`, or an MMSA feature
/// pickle), read safely (nothing in the pickle is executed), to mmfuse's aligned layout
/// (`{train,dev,test}.jsonl` + `.safetensors`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `.pkl` file.
    #[arg(long)]
    input: PathBuf,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args, _g: &Global) -> Result<()> {
    let ds = mmfuse_data::aligned::read_any(&a.input)?;
    mmfuse_data::aligned::write_dir(&ds, &a.out)?;
    println!(
        "{} → {}: {} / {} / {} segments, audio {}-d, video {}-d",
        a.input.display(),
        a.out.display(),
        ds.train.samples.len(),
        ds.dev.samples.len(),
        ds.test.samples.len(),
        ds.train.audio_dim,
        ds.train.video_dim
    );
    Ok(())
}
