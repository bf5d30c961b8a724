//! Datasets on disk → in-memory samples: synthetic corpus generator, readers for the real
//! formats, image decoding/preprocessing, text tokenisation for from-scratch models, label maps.
//! Plain Rust data only (no tensors, no burn): the trainer turns samples into batches.
//!
//! - [`config`]: the `[data]` section of a run configuration ([`config::DataConfig`]).
//! - [`conll`]: Twitter-2015/2017 multimodal NER files (`IMGID:<id>`, `token<TAB>tag`).
//! - [`cls`]: classification JSONL (sentiment, sarcasm).
//! - [`imagenet`]: torchvision's ImageNet eval preprocessing, Pillow-exact bilinear resize.
//! - [`preprocess`]: named image preprocessing presets (ImageNet eval, MuSE, CLIP), Pillow-exact.
//! - [`resample`]: Pillow-exact bilinear and bicubic resizing, which both of those use.
//! - [`image`]: decoding with size limits, EXIF orientation, RGB conversion, resizing,
//!   normalisation, placeholders for missing images.
//! - [`text`]: Hugging Face `tokenizers`: word-level tokenizers trained from scratch, any
//!   `tokenizer.json`, fixed-length encoding with word-piece alignment.
//! - [`corrupt`]: seeded image, text and feature corruptions at three severities, for
//!   robustness evaluation.
//! - [`synth`]: the synthetic corpus whose labels need both modalities.
//! - [`mvsa`]: MVSA-Single/Multiple posts and labels, with the standard label-agreement cleaning.
//! - [`mmsd`]: MMSD (Python-literal lines, parsed by hand) and MMSD2.0 (JSON) sarcasm data.
//! - [`labels`]: label maps (`labels.json`).
//! - [`lexicon`]: affective lexicons (word → polarity) for CLFA's lexicon attention biases.
//! - [`pickle`]: a safe reader of Python pickles (never executes anything) and the numpy arrays
//!   inside them.
//! - [`aligned`]: word-aligned text/audio/video features (CMU-MOSI/MOSEI): MAG-BERT and MMSA
//!   pickles, our directory layout, MAG-BERT's word-piece expansion.
//! - [`aligned_synth`]: a synthetic MOSI-like corpus with ground-truth noisy time steps.
//! - [`error`]: errors that name the file and, for text formats, the 1-based line.
//! - [`fsutil`]: atomic, fsynced file writes (run folders, checkpoints, prepared datasets).
//!
//! What this crate must not do: know about tensors, models or training. It reads and writes
//! files and turns them into plain Rust values; every error names the file (and line).

pub mod aligned;
pub mod aligned_synth;
pub mod cls;
pub mod config;
pub mod conll;
pub mod corrupt;
pub mod error;
pub mod fsutil;
pub mod image;
pub mod imagenet;
pub mod labels;
pub mod lexicon;
pub mod manifest;
pub mod mmsd;
pub mod mvsa;
pub mod pickle;
pub mod preprocess;
pub mod resample;
pub mod synth;
#[cfg(test)]
mod test_util;
pub mod text;

pub use error::{DataError, Result};
