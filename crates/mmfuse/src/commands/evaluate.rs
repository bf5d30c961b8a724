//! `mmfuse evaluate`: score a run folder's best checkpoint again, or (`--robustness`) with each
//! modality removed and under corruptions.

use super::Global;
use anyhow::Result;
use mmfuse_train::robustness::{MARKDOWN_FILE, RobustnessOptions, Split, robustness};
use std::path::PathBuf;

/// Score a run folder's best checkpoint on its dev and test splits again; prints the JSON
/// detail (all metrics, incl. the MuSE reference word-piece scorer for NER). With
/// `--robustness`, score it with each modality removed and under image and text corruptions
/// at three severities (MIM: audio / video removed, feature noise), print the table and write
/// robustness.json, robustness.md and robustness.png into the run folder.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder.
    #[arg(long)]
    model: PathBuf,
    /// Corpus folder (default: the run's data.dir).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The robustness table: missing modalities and corruptions.
    #[arg(long)]
    robustness: bool,
    /// With --robustness: only the missing-modality conditions (no corruptions).
    #[arg(long, requires = "robustness")]
    missing_only: bool,
    /// With --robustness: the split to score, dev or test.
    #[arg(long, default_value = "test", requires = "robustness")]
    split: Split,
    /// With --robustness: seed of the corruptions.
    #[arg(long, default_value_t = 0, requires = "robustness")]
    seed: u64,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    if a.robustness {
        let opts = RobustnessOptions { split: a.split, missing_only: a.missing_only, seed: a.seed, data_dir: a.data.clone() };
        let report = robustness(&a.model, &g.device()?, &opts)?;
        report.write(&a.model)?;
        println!("{}", report.markdown());
        eprintln!("written: {} (and .json, .png) in {:.1} s", a.model.join(MARKDOWN_FILE).display(), report.seconds);
        return Ok(());
    }
    let (dev, test) = mmfuse_train::run::rescore(&a.model, a.data.as_deref(), &g.device()?)?;
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({"dev": dev.detail, "test": test.detail}))?);
    Ok(())
}
