//! The image encoder of a fusion model: the small CNN trained from scratch, or a pretrained
//! torchvision ResNet whose last feature map is average-pooled to a `grid`×`grid` map of image
//! tokens and projected to the model width (MuSE: ResNet-152, 7×7×2048 → 8×8 = 64 tokens →
//! Linear(2048 → d)). Fusion models hold an [`ImageEncoder`] and only ask it for tokens
//! `[B, N, d]`.

use super::image_cnn::{ImageCnn, ImageCnnConfig};
use super::resnet::{ResNet, ResNetConfig};
use super::vit::{VitConfig, VitModel};
use crate::pretrained::LoadError;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor};
use mmfuse_kernels::{Linear, LinearConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which image encoder, with its hyper-parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ImageEncoderConfig {
    /// [`ImageCnn`] trained from scratch.
    Cnn(ImageCnnConfig),
    /// A torchvision ResNet (weights from a pretrained file, or from a run's checkpoint).
    ResNet {
        resnet: ResNetConfig,
        /// Width of the image tokens.
        d_model: usize,
        /// Side of the pooled token grid (MuSE: 8).
        grid: usize,
    },
    /// A Hugging Face ViT (weights from a pretrained folder, or from a run's checkpoint): its
    /// last hidden states (`[CLS]` + patches, CLFA: 50 tokens for ViT-B/32) projected to the
    /// model width.
    Vit {
        vit: VitConfig,
        /// Width of the image tokens.
        d_model: usize,
    },
}

/// The shape of a pretrained image encoder, as a run folder saves it (`image_encoder.json`): a
/// torchvision ResNet config, or `{"vit": <HF ViT config>}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PretrainedImage {
    Vit { vit: VitConfig },
    ResNet(ResNetConfig),
}

impl Config for ImageEncoderConfig {}

impl std::fmt::Display for ImageEncoderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

impl From<ImageCnnConfig> for ImageEncoderConfig {
    fn from(c: ImageCnnConfig) -> Self {
        ImageEncoderConfig::Cnn(c)
    }
}

impl ImageEncoderConfig {
    /// Width of the image tokens.
    pub fn d_model(&self) -> usize {
        match self {
            ImageEncoderConfig::Cnn(c) => c.d_model,
            ImageEncoderConfig::ResNet { d_model, .. } => *d_model,
            ImageEncoderConfig::Vit { d_model, .. } => *d_model,
        }
    }

    /// Randomly initialised weights.
    pub fn init(&self, device: &Device) -> ImageEncoder {
        match self {
            ImageEncoderConfig::Cnn(c) => ImageEncoder::Cnn(c.init(device)),
            ImageEncoderConfig::ResNet { resnet, d_model, grid } => {
                let r = resnet.init(device);
                ImageEncoder::ResNet(ResNetTokens { proj: LinearConfig::new(r.feature_channels, *d_model).init(device), resnet: r, grid: *grid })
            }
            ImageEncoderConfig::Vit { vit, d_model } => {
                ImageEncoder::Vit(VitTokens { proj: LinearConfig::new(vit.hidden_size, *d_model).init(device), vit: vit.init(device) })
            }
        }
    }
}

/// A ResNet whose feature map becomes `grid`² projected tokens.
#[derive(Module, Debug)]
pub struct ResNetTokens {
    pub resnet: ResNet,
    pub proj: Linear,
    #[module(skip)]
    pub grid: usize,
}

/// A ViT whose last hidden states become projected tokens.
#[derive(Module, Debug)]
pub struct VitTokens {
    pub vit: VitModel,
    pub proj: Linear,
}

/// An image encoder: images `[B, 3, H, W]` → tokens `[B, N, d]`.
#[derive(Module, Debug)]
pub enum ImageEncoder {
    Cnn(ImageCnn),
    ResNet(ResNetTokens),
    Vit(VitTokens),
}

impl ImageEncoder {
    /// Load a torchvision ResNet `.safetensors` file (shape inferred from the tensors; `fc`
    /// dropped) as an encoder of `grid`² tokens of width `d_model` (the projection is new).
    pub fn load_resnet(path: &Path, d_model: usize, grid: usize, device: &Device) -> Result<(ImageEncoder, ResNetConfig), LoadError> {
        let (mut r, mut c) = ResNet::load(path, device)?;
        r.fc = None;
        c.num_classes = 0;
        let proj = LinearConfig::new(r.feature_channels, d_model).init(device);
        Ok((ImageEncoder::ResNet(ResNetTokens { resnet: r, proj, grid }), c))
    }

    /// Load a Hugging Face ViT folder (`config.json`, `model.safetensors`; the pooler is
    /// dropped) as an encoder of `1 + N` tokens of width `d_model` (the projection is new).
    pub fn load_vit(dir: &Path, d_model: usize, device: &Device) -> Result<(ImageEncoder, VitConfig), LoadError> {
        let (mut vit, c) = VitModel::load(dir, device)?;
        vit.pooler = None;
        let proj = LinearConfig::new(c.hidden_size, d_model).init(device);
        Ok((ImageEncoder::Vit(VitTokens { vit, proj }), c))
    }

    /// Image tokens `[B, N, d]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        match self {
            ImageEncoder::Cnn(m) => m.forward(images),
            ImageEncoder::Vit(m) => m.proj.forward(m.vit.forward(images)),
            ImageEncoder::ResNet(m) => {
                let f = adaptive_avg_pool2d(m.resnet.features(images), [m.grid, m.grid]);
                let [b, c, h, w] = f.dims();
                m.proj.forward(f.reshape([b, c, h * w]).swap_dims(1, 2))
            }
        }
    }
}
