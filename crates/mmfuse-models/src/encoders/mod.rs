//! Encoders: turn one modality into a sequence of feature vectors.
//!
//! - [`text_transformer`]: a small Transformer text encoder trained from scratch.
//! - [`image_cnn`]: a small CNN whose last feature map becomes image tokens.

pub mod image_cnn;
pub mod text_transformer;

pub use image_cnn::{ImageCnn, ImageCnnConfig};
pub use text_transformer::{TextTransformer, TextTransformerConfig};
