//! `mmfuse synth`: write the synthetic post corpus.

use super::Global;
use anyhow::Result;
use mmfuse_data::synth::{SynthConfig, generate};
use std::path::PathBuf;

/// Write the synthetic corpus (Twitter-CoNLL NER + JSONL classification, PNG images).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 3000)]
    train: usize,
    #[arg(long, default_value_t = 500)]
    dev: usize,
    #[arg(long, default_value_t = 1000)]
    test: usize,
    /// Fraction of labels replaced by a random other label.
    #[arg(long, default_value_t = 0.0)]
    label_noise: f32,
}

pub fn run(a: Args, _g: &Global) -> Result<()> {
    let s =
        generate(&a.out, &SynthConfig { seed: a.seed, n_train: a.train, n_dev: a.dev, n_test: a.test, label_noise: a.label_noise, ..SynthConfig::default() })?;
    println!("wrote {} ({s:?})", a.out.display());
    Ok(())
}
