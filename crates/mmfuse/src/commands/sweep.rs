//! `mmfuse sweep`: one config, several seeds, mean ± std of the test scores.

use super::Global;
use anyhow::Result;
use std::path::PathBuf;

/// Train the same config with several seeds; report mean ± std of the test scores.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    config: PathBuf,
    /// Folder for the runs (one sub-folder per seed) and `sweep.json`.
    #[arg(long)]
    out: PathBuf,
    /// Seeds, e.g. 1,2,3.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    seeds: Vec<u64>,
    #[arg(long = "set")]
    set: Vec<String>,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    let mut set = a.set;
    set.extend(g.overrides());
    let summary = mmfuse_train::sweep::run_sweep(&a.config, &set, &a.seeds, &a.out, g.quiet)?;
    println!("| test metric | mean | std | runs |\n|---|---:|---:|---:|");
    for (k, s) in &summary.test {
        println!("| {k} | {:.2} | {:.2} | {} |", 100.0 * s.mean, 100.0 * s.std, s.values.len());
    }
    println!("(sample standard deviation over seeds; runs and sweep.json in {})", a.out.display());
    Ok(())
}
