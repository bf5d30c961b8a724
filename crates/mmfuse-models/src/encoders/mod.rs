//! Encoders: turn one modality into a sequence of feature vectors.
//!
//! - [`text_transformer`]: a small Transformer text encoder trained from scratch.
//! - [`image_cnn`]: a small CNN whose last feature map becomes image tokens.
//! - [`bert`]: BERT (HF `BertModel` layout, e.g. all-MiniLM-L6-v2, bert-base-uncased), loaded from safetensors.
//! - [`mobilenet_v2`]: torchvision MobileNetV2, loaded from safetensors with torchvision key names.

pub mod bert;
pub mod image_cnn;
pub mod mobilenet_v2;
pub mod text_transformer;

pub use bert::{BertConfig, BertModel};
pub use image_cnn::{ImageCnn, ImageCnnConfig};
pub use mobilenet_v2::MobileNetV2;
pub use text_transformer::{TextTransformer, TextTransformerConfig};
