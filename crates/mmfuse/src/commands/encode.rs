//! `mmfuse encode`: embeddings of texts or images to a safetensors file.

use super::Global;
use anyhow::Result;
use mmfuse::encode::{Pooling, TextOptions, encode_images, encode_texts};
use std::path::PathBuf;

/// Write embeddings of texts (a pretrained BERT folder) or images (torchvision ResNet or
/// MobileNetV2 safetensors) to a safetensors file (`embeddings` [N, D]).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hugging Face BERT folder (config.json, model.safetensors, tokenizer.json) or hub id.
    #[arg(long, requires = "texts", conflicts_with = "image_encoder")]
    text_encoder: Option<PathBuf>,
    /// Text file, one text per line (empty lines skipped).
    #[arg(long)]
    texts: Option<PathBuf>,
    /// torchvision ResNet or MobileNetV2 weights: the .safetensors file or a folder holding it.
    #[arg(long, requires = "images")]
    image_encoder: Option<PathBuf>,
    /// Folder of .jpg/.jpeg/.png images (embedded in file-name order).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Output .safetensors file.
    #[arg(long)]
    out: PathBuf,
    /// Text pooling.
    #[arg(long, value_enum, default_value = "mean")]
    pooling: Pooling,
    /// Word pieces per text ([CLS]/[SEP] included).
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Image preprocessing preset: imagenet_eval, muse or clip.
    #[arg(long, default_value = "imagenet_eval")]
    preprocess: mmfuse_data::preprocess::Preprocess,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    let device = g.device()?;
    let (n, d) = match (a.text_encoder, a.texts, a.image_encoder, a.images) {
        (Some(enc), Some(t), None, None) => {
            let enc = mmfuse_train::hub::resolve_folder(&enc, &["config.json", "model.safetensors", "tokenizer.json"], "--text-encoder")?;
            let opts = TextOptions { max_len: a.max_len, batch: a.batch_size, pooling: a.pooling, quiet: g.quiet };
            encode_texts(&enc, &t, &a.out, opts, &device)?
        }
        (None, None, Some(enc), Some(i)) => encode_images(&enc, &i, &a.out, a.preprocess, a.batch_size, &device, g.quiet)?,
        _ => anyhow::bail!("give either --text-encoder DIR --texts FILE or --image-encoder FILE --images DIR"),
    };
    println!("wrote {n} embeddings of size {d} to {}", a.out.display());
    Ok(())
}
