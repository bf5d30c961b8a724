//! `mmfuse demo`: the synthetic corpus, text-only / image-only / fused models, a table of scores.

use super::Global;
use anyhow::Result;
use mmfuse::demo::{DemoOptions, format_missing_table, format_table, run_demo};
use std::path::PathBuf;

/// Generate the synthetic corpus, train text-only, image-only and fused models, print their
/// test scores.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (corpus and runs); default: a fresh folder under the system temp dir.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Training samples per task.
    #[arg(long, default_value_t = 3000)]
    train_samples: usize,
    /// Only these tasks (classify, ner).
    #[arg(long, value_delimiter = ',', default_value = "classify,ner")]
    tasks: Vec<String>,
    /// Config overrides applied to every run, e.g. --set train.epochs=2 (a method's own table,
    /// e.g. --set model.muse.cross_layers=2, to that method's runs only).
    #[arg(long = "set")]
    set: Vec<String>,
    /// Also train MuSE (CrossTransformer exchange) on each task (about 3 more minutes).
    #[arg(long)]
    muse: bool,
    /// Also train CLFA (no-alignment setting) on the classification task (under a minute).
    #[arg(long)]
    clfa: bool,
    /// Also train MIM and its no-UPN/KGS ablation on the synthetic word-aligned corpus
    /// (sentiment regression, MAE; about 3 minutes).
    #[arg(long)]
    mim: bool,
    /// Write each fused model's whole robustness report (missing modalities, image and text
    /// corruptions at three severities: robustness.{md,json,png}) into its run folder.
    #[arg(long)]
    robustness: bool,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    let out = a.out.unwrap_or_else(|| std::env::temp_dir().join(format!("mmfuse-demo-{}", std::process::id())));
    let mut overrides = a.set;
    overrides.extend(g.overrides());
    let opts = DemoOptions {
        seed: a.seed,
        n_train: a.train_samples,
        overrides,
        quiet: g.quiet,
        tasks: a.tasks,
        muse: a.muse,
        clfa: a.clfa,
        mim: a.mim,
        robustness: a.robustness,
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let rows = run_demo(&out, &opts)?;
    println!("{}", format_table(&rows));
    println!("The fused models with one modality absent (test):\n\n{}", format_missing_table(&rows));
    println!("corpus and runs in {} ({:.0} s in all)", out.display(), start.elapsed().as_secs_f64());
    Ok(())
}
