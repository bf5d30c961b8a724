//! `mmfuse prepare-mvsa`: an MVSA folder → cleaned classification JSONL.

use super::Global;
use anyhow::Result;
use std::path::PathBuf;

/// Turn an MVSA-Single or MVSA-Multiple folder (labelResultAll.txt, data/<id>.txt|jpg) into
/// cleaned train/dev/test JSONL (8:1:1, seeded) for `data.task = "classify"`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The MVSA folder.
    #[arg(long)]
    dir: PathBuf,
    /// Output folder for train.jsonl, dev.jsonl, test.jsonl and report.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(a: Args, _g: &Global) -> Result<()> {
    let (r, [train, dev, test]) = mmfuse_data::mvsa::prepare_mvsa(&a.dir, &a.out, a.seed)?;
    println!(
        "{} posts: kept {}, dropped {} conflicting, {} without majority, {} without text ({} Latin-1 texts); train/dev/test {train}/{dev}/{test} in {}",
        r.posts,
        r.kept,
        r.conflicting,
        r.no_majority,
        r.missing_text,
        r.latin1_texts,
        a.out.display()
    );
    Ok(())
}
