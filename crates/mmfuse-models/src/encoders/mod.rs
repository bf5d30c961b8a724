//! Encoders: turn one modality into a sequence of feature vectors.
//!
//! - [`text_transformer`]: a small Transformer text encoder trained from scratch.
//! - [`image_cnn`]: a small CNN whose last feature map becomes image tokens.
//! - [`bert`]: BERT (HF `BertModel` layout, e.g. all-MiniLM-L6-v2, bert-base-uncased), loaded from safetensors.
//! - [`text`]: the text encoder a fusion model holds — from scratch or pretrained BERT.
//! - [`mobilenet_v2`]: torchvision MobileNetV2, loaded from safetensors with torchvision key names.
//! - [`resnet`]: torchvision ResNet (basic/bottleneck blocks, any depth and width), loaded from safetensors with torchvision key names.
//! - [`vit`]: Vision Transformer (HF `ViTModel` layout), loaded from safetensors.
//! - [`clip`]: CLIP text and image towers with their projections (HF `CLIPModel` layout), loaded from safetensors.

pub mod bert;
pub mod clip;
pub mod image;
pub mod image_cnn;
pub mod mobilenet_v2;
pub mod resnet;
pub mod text;
pub mod text_transformer;
pub mod transformer;
pub mod vit;

pub use bert::{BertConfig, BertModel};
pub use clip::{ClipConfig, ClipModel};
pub use image::{ImageEncoder, ImageEncoderConfig, PretrainedImage};
pub use image_cnn::{ImageCnn, ImageCnnConfig};
pub use mobilenet_v2::MobileNetV2;
pub use resnet::{BlockKind, ResNet, ResNetConfig};
pub use text::{TextEncoder, TextEncoderConfig};
pub use text_transformer::{TextTransformer, TextTransformerConfig};
pub use transformer::{TransformerEncoder, TransformerEncoderConfig};
pub use vit::{VitConfig, VitModel};
