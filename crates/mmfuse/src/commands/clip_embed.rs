//! `mmfuse clip-embed`: CLFA's teacher cache.

use super::Global;
use anyhow::Result;
use mmfuse_data::image::MissingImage;
use std::path::PathBuf;

/// CLFA's teacher: frozen CLIP text and image embeddings of every post of a classification
/// corpus (train/dev/test.jsonl), computed once and cached by sample id (use as data.teacher).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hugging Face CLIP folder (config.json, model.safetensors, tokenizer.json) or hub id.
    #[arg(long)]
    clip: PathBuf,
    /// Corpus folder with train.jsonl, dev.jsonl, test.jsonl.
    #[arg(long)]
    data: PathBuf,
    /// Image folder for samples without an `image` field (<id>.jpg), relative to --data.
    #[arg(long, default_value = "images")]
    image_dir: PathBuf,
    /// Output .safetensors cache.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    let device = g.device()?;
    let samples = mmfuse_train::teacher::corpus_posts(&a.data, &a.image_dir)?;
    let missing = g.missing_image.unwrap_or(MissingImage::Error);
    let clip = mmfuse_train::hub::resolve_folder(&a.clip, &["config.json", "model.safetensors", "tokenizer.json"], "--clip")?;
    let (n, p, ph) = mmfuse_train::teacher::write_clip_cache(&clip, &samples, &a.out, missing, a.batch_size, &device, g.quiet)?;
    println!("wrote CLIP text and image embeddings of {n} posts (size {p}) to {}", a.out.display());
    if ph > 0 {
        println!("placeholder images used: {ph}");
    }
    Ok(())
}
