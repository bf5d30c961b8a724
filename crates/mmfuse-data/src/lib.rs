//! Datasets on disk → in-memory samples: synthetic corpus generator, readers for the real
//! formats, image decoding/preprocessing, text tokenisation for from-scratch models, label maps.
//! Plain Rust data only (no tensors, no burn): the trainer turns samples into batches.
//!
//! - [`conll`]: Twitter-2015/2017 multimodal NER files (`IMGID:<id>`, `token<TAB>tag`).
//! - [`cls`]: classification JSONL (sentiment, sarcasm).
//! - [`imagenet`]: torchvision's ImageNet eval preprocessing, Pillow-exact bilinear resize.
//! - [`image`]: decoding with size limits, EXIF orientation, RGB conversion, resizing,
//!   normalisation, placeholders for missing images.
//! - [`text`]: Hugging Face `tokenizers`: word-level tokenizers trained from scratch, any
//!   `tokenizer.json`, fixed-length encoding with word-piece alignment.
//! - [`synth`]: the synthetic corpus whose labels need both modalities.
//! - [`labels`]: label maps (`labels.json`).
//! - [`error`]: errors that name the file and, for text formats, the 1-based line.

pub mod cls;
pub mod conll;
pub mod error;
pub mod image;
pub mod imagenet;
pub mod labels;
pub mod synth;
pub mod text;

pub use error::{DataError, Result};
