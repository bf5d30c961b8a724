//! `mmfuse predict`: a run folder's predictions for a file of posts (or segments) or one post.

use super::Global;
use anyhow::{Context, Result};
use mmfuse_predict::{ImageInput, Post, Predictor, file::predict_file};
use std::io::Write;
use std::path::PathBuf;

/// Predict with a trained run folder: a file of posts (JSONL or CSV) or one post; for a MIM run,
/// a JSONL file of segments (`{"words", "audio", "video"}`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder (model package) written by `mmfuse train`.
    #[arg(long)]
    model: PathBuf,
    /// JSONL (`{"id", "text", "image"}` per line) or CSV (`text`, `image`, `id` columns).
    #[arg(long, conflicts_with = "text")]
    input: Option<PathBuf>,
    /// Where to write JSONL predictions (default: standard output).
    #[arg(long)]
    output: Option<PathBuf>,
    /// One post's text.
    #[arg(long)]
    text: Option<String>,
    /// One post's image (with --text).
    #[arg(long, requires = "text")]
    image: Option<PathBuf>,
    /// The OCR text of the post's image (with --text; CLFA models with the OCR stream).
    #[arg(long, requires = "text")]
    ocr: Option<String>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    let p = Predictor::load(&a.model, &g.device()?)?;
    let mut sink: Box<dyn Write> = match &a.output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?)),
        None => Box::new(std::io::stdout().lock()),
    };
    if let Some(input) = a.input {
        let report = predict_file(&p, &input, &mut sink, a.batch_size, g.quiet)?;
        sink.flush()?;
        eprintln!("{} predicted, {} skipped", report.predicted, report.bad.len());
        for b in &report.bad {
            eprintln!("  {}:{}: skipped: {}", input.display(), b.line, b.reason);
        }
    } else if let Some(text) = a.text {
        let image = a.image.map(ImageInput::Path).unwrap_or(ImageInput::None);
        let r = p.predict(vec![Post { id: None, text, image, ocr: a.ocr }]).pop().expect("one result")?;
        serde_json::to_writer_pretty(&mut sink, &r)?;
        writeln!(sink)?;
    } else {
        anyhow::bail!("give --input FILE, or --text TEXT [--image FILE]");
    }
    Ok(())
}
