//! Datasets on disk → in-memory samples: the synthetic corpus generator, readers for the real
//! formats (Twitter MNER CoNLL, classification JSONL), image decoding and preprocessing, text
//! tokenisation (Hugging Face `tokenizers`), and label maps. No tensors here: the trainer turns
//! samples into batches.
//!
//! - [`conll`]: Twitter-2015/2017 multimodal NER files.
//! - [`cls`]: classification JSONL (sentiment, sarcasm).
//! - [`image`]: decoding with size limits, RGB conversion, resizing, normalisation, placeholders.
//! - [`text`]: tokenizers for from-scratch models and for `tokenizer.json` files.
//! - [`synth`]: the synthetic corpus whose labels need both modalities.
//! - [`labels`]: label maps.
//! - [`error`]: errors that name the file and line.

pub mod cls;
pub mod conll;
pub mod error;
pub mod image;
pub mod labels;
pub mod synth;
pub mod text;

pub use error::{DataError, Result};
