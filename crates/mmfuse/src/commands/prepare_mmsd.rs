//! `mmfuse prepare-mmsd`: MMSD / MMSD2.0 splits → classification JSONL.

use super::Global;
use anyhow::Result;
use std::path::PathBuf;

/// Turn MMSD (Python-literal text files, read safely, never evaluated) or MMSD2.0 (JSON)
/// splits into train/dev/test JSONL for sarcasm detection (labels sarcastic / not_sarcastic).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Train split: MMSD `train.txt` or MMSD2.0 `train.json`.
    #[arg(long)]
    train: PathBuf,
    /// Dev split (`valid.txt` / `valid.json`).
    #[arg(long)]
    dev: PathBuf,
    /// Test split (`test.txt` / `test.json`).
    #[arg(long)]
    test: PathBuf,
    /// Folder of the `<id>.jpg` images (written into the JSONL as absolute paths).
    #[arg(long)]
    image_dir: PathBuf,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args, _g: &Global) -> Result<()> {
    let reports = mmfuse_data::mmsd::prepare_mmsd([&a.train, &a.dev, &a.test], &a.image_dir, &a.out)?;
    for ((src, name), report) in [(&a.train, "train.jsonl"), (&a.dev, "dev.jsonl"), (&a.test, "test.jsonl")].into_iter().zip(reports) {
        println!("{} → {}: {report:?}", src.display(), a.out.join(name).display());
    }
    Ok(())
}
