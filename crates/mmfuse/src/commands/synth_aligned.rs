//! `mmfuse synth-aligned`: write the synthetic word-aligned corpus (MIM).

use super::Global;
use anyhow::Result;
use mmfuse_data::aligned_synth::{AlignedSynthConfig, generate};
use std::path::PathBuf;

/// Write the synthetic word-aligned text/audio/video corpus (MOSI-like, with noisy spans) in
/// mmfuse's aligned layout, for `data.task = "regression"` (MIM).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 1284)]
    train: usize,
    #[arg(long, default_value_t = 229)]
    dev: usize,
    #[arg(long, default_value_t = 686)]
    test: usize,
    /// Share of segments whose audio or video carries a span of noise.
    #[arg(long, default_value_t = 0.5)]
    noise_fraction: f32,
}

pub fn run(a: Args, _g: &Global) -> Result<()> {
    let ds =
        generate(&AlignedSynthConfig { seed: a.seed, n_train: a.train, n_dev: a.dev, n_test: a.test, noise_fraction: a.noise_fraction, ..Default::default() });
    mmfuse_data::aligned::write_dir(&ds, &a.out)?;
    println!("wrote {} ({} / {} / {} segments)", a.out.display(), ds.train.samples.len(), ds.dev.samples.len(), ds.test.samples.len());
    Ok(())
}
