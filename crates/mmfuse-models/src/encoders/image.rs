//! The image encoder of a fusion model, one abstraction for every encoder that loads: the
//! small CNN trained from scratch, or a pretrained network fine-tuned with the model —
//!
//! - a torchvision ResNet or MobileNetV2 (a `.safetensors` file): the last feature map is
//!   average-pooled to a `grid`×`grid` map of image tokens and projected to the model width
//!   (MuSE: ResNet-152, 7×7×2048 → 8×8 = 64 tokens → Linear(2048 → d));
//! - a Hugging Face ViT or CLIP vision tower (a folder): its last hidden states (`[CLS]` +
//!   patches; CLFA's CLIP ViT-B/32 student: 50 tokens) projected to the model width.
//!
//! [`ImageEncoder::load_pretrained`] tells them apart from the path; fusion models hold an
//! [`ImageEncoder`] and only ask it for tokens `[B, N, d]`.

use super::clip::{ClipVisionConfig, ClipVisionTransformer};
use super::image_cnn::{ImageCnn, ImageCnnConfig};
use super::mobilenet_v2::{FEATURE_CHANNELS as MOBILENET_CHANNELS, MobileNetV2};
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
    /// torchvision's MobileNetV2 (width 1.0): its 1280-channel feature map pooled to `grid`²
    /// tokens.
    MobileNetV2 {
        /// Width of the image tokens.
        d_model: usize,
        /// Side of the pooled token grid.
        grid: usize,
    },
    /// CLIP's vision tower (HF `CLIPVisionTransformer`): its last hidden states projected to
    /// the model width.
    ClipVision {
        clip_vision: ClipVisionConfig,
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
    ClipVision { clip_vision: ClipVisionConfig },
    MobileNetV2 { mobilenet_v2: MobileNetV2Shape },
    ResNet(ResNetConfig),
}

/// MobileNetV2's shape in `image_encoder.json` (torchvision's one layout: nothing to record).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MobileNetV2Shape {}

impl PretrainedImage {
    /// The encoder's name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            PretrainedImage::Vit { .. } => "ViT",
            PretrainedImage::ClipVision { .. } => "CLIP vision tower",
            PretrainedImage::MobileNetV2 { .. } => "MobileNetV2",
            PretrainedImage::ResNet(_) => "ResNet",
        }
    }

    /// The one image size a Transformer encoder takes (`None`: any size).
    pub fn input_size(&self) -> Option<usize> {
        match self {
            PretrainedImage::Vit { vit } => Some(vit.image_size),
            PretrainedImage::ClipVision { clip_vision } => Some(clip_vision.image_size),
            PretrainedImage::MobileNetV2 { .. } | PretrainedImage::ResNet(_) => None,
        }
    }

    /// The encoder config of this shape with tokens of width `d_model` (`grid`: the pooled
    /// grid of the CNNs).
    pub fn encoder_config(&self, d_model: usize, grid: usize) -> ImageEncoderConfig {
        match self {
            PretrainedImage::Vit { vit } => ImageEncoderConfig::Vit { vit: vit.clone(), d_model },
            PretrainedImage::ClipVision { clip_vision } => ImageEncoderConfig::ClipVision { clip_vision: clip_vision.clone(), d_model },
            PretrainedImage::MobileNetV2 { .. } => ImageEncoderConfig::MobileNetV2 { d_model, grid },
            PretrainedImage::ResNet(r) => ImageEncoderConfig::ResNet { resnet: r.clone(), d_model, grid },
        }
    }
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
            ImageEncoderConfig::MobileNetV2 { d_model, .. } => *d_model,
            ImageEncoderConfig::ClipVision { d_model, .. } => *d_model,
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
            ImageEncoderConfig::MobileNetV2 { d_model, grid } => {
                ImageEncoder::MobileNetV2(MobileNetTokens::new(MobileNetV2::init(device), *d_model, *grid, device))
            }
            ImageEncoderConfig::ClipVision { clip_vision, d_model } => ImageEncoder::ClipVision(ClipVisionTokens {
                proj: LinearConfig::new(clip_vision.hidden_size, *d_model).init(device),
                clip: clip_vision.init(device),
            }),
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

/// torchvision CNN weights, told apart by their tensors: a ResNet, else a MobileNetV2.
// one network per load: boxing would buy nothing
#[allow(clippy::large_enum_variant)]
pub enum TorchvisionCnn {
    ResNet(ResNet, ResNetConfig),
    MobileNetV2(MobileNetV2),
}

impl TorchvisionCnn {
    /// Load `path`, a `.safetensors` file or a folder holding one
    /// ([`crate::pretrained::weights_file`]). Neither layout: the ResNet reading's error, which
    /// names the first tensor that is missing or of the wrong shape.
    pub fn load(path: &Path, device: &Device) -> Result<Self, LoadError> {
        let file = crate::pretrained::weights_file(path)?;
        match ResNet::load(&file, device) {
            Ok((r, c)) => Ok(Self::ResNet(r, c)),
            Err(resnet_err) => MobileNetV2::load(&file, device).map(Self::MobileNetV2).map_err(|_| resnet_err),
        }
    }
}

/// MobileNetV2 whose feature map becomes `grid`² projected tokens (the classifier dropped).
#[derive(Module, Debug)]
pub struct MobileNetTokens {
    pub net: MobileNetV2,
    pub proj: Linear,
    #[module(skip)]
    pub grid: usize,
}

impl MobileNetTokens {
    fn new(mut net: MobileNetV2, d_model: usize, grid: usize, device: &Device) -> Self {
        net.classifier = None;
        Self { net, proj: LinearConfig::new(MOBILENET_CHANNELS, d_model).init(device), grid }
    }
}

/// CLIP's vision tower whose last hidden states, through its `post_layernorm` (which HF's
/// pooler applies to `[CLS]` only; here every token, so all of the tower's weights train),
/// become projected tokens.
#[derive(Module, Debug)]
pub struct ClipVisionTokens {
    pub clip: ClipVisionTransformer,
    pub proj: Linear,
}

/// An image encoder: images `[B, 3, H, W]` → tokens `[B, N, d]`.
// one per model: boxing the variants would change the record layout for nothing
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ImageEncoder {
    Cnn(ImageCnn),
    ResNet(ResNetTokens),
    Vit(VitTokens),
    MobileNetV2(MobileNetTokens),
    ClipVision(ClipVisionTokens),
}

/// Average-pool a feature map `[B, C, h, w]` to `grid`² tokens `[B, grid², C]`.
fn grid_tokens(f: Tensor<4>, grid: usize) -> Tensor<3> {
    let f = adaptive_avg_pool2d(f, [grid, grid]);
    let [b, c, h, w] = f.dims();
    f.reshape([b, c, h * w]).swap_dims(1, 2)
}

impl ImageEncoder {
    /// Load a torchvision ResNet `.safetensors` file (shape inferred from the tensors; `fc`
    /// dropped) as an encoder of `grid`² tokens of width `d_model` (the projection is new).
    pub fn load_resnet(path: &Path, d_model: usize, grid: usize, device: &Device) -> Result<(ImageEncoder, ResNetConfig), LoadError> {
        let (r, c) = ResNet::load(path, device)?;
        Ok(Self::resnet_tokens(r, c, d_model, grid, device))
    }

    /// A loaded ResNet as an encoder of `grid`² tokens of width `d_model` (`fc` dropped).
    fn resnet_tokens(mut r: ResNet, mut c: ResNetConfig, d_model: usize, grid: usize, device: &Device) -> (ImageEncoder, ResNetConfig) {
        r.fc = None;
        c.num_classes = 0;
        let proj = LinearConfig::new(r.feature_channels, d_model).init(device);
        (ImageEncoder::ResNet(ResNetTokens { resnet: r, proj, grid }), c)
    }

    /// Load a Hugging Face ViT folder (`config.json`, `model.safetensors`; the pooler is
    /// dropped) as an encoder of `1 + N` tokens of width `d_model` (the projection is new).
    pub fn load_vit(dir: &Path, d_model: usize, device: &Device) -> Result<(ImageEncoder, VitConfig), LoadError> {
        let (mut vit, c) = VitModel::load(dir, device)?;
        vit.pooler = None;
        let proj = LinearConfig::new(c.hidden_size, d_model).init(device);
        Ok((ImageEncoder::Vit(VitTokens { vit, proj }), c))
    }

    /// Load a pretrained image encoder as an encoder of tokens of width `d_model` (the
    /// projection is new; classifier heads and poolers are dropped), telling the kind from the
    /// path: a folder whose `config.json` names a `model_type` is a Hugging Face ViT (`"vit"`) or
    /// CLIP (`"clip"`, `"clip_vision_model"`: the vision tower); a `.safetensors` file (or a
    /// folder holding `model.safetensors` otherwise) is torchvision ResNet or MobileNetV2
    /// weights, pooled to `grid`² tokens. Returns the shape a run folder saves.
    pub fn load_pretrained(path: &Path, d_model: usize, grid: usize, device: &Device) -> Result<(ImageEncoder, PretrainedImage), LoadError> {
        let config = path.join("config.json");
        // a Hugging Face folder names its model type; a folder of torchvision weights may hold a
        // config.json without one
        let model_type = match path.is_dir() && config.is_file() {
            true => {
                let text = std::fs::read_to_string(&config).map_err(|e| LoadError::Config { path: config.clone(), reason: e.to_string() })?;
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| LoadError::Config { path: config.clone(), reason: e.to_string() })?;
                v["model_type"].as_str().map(str::to_string)
            }
            false => None,
        };
        if let Some(model_type) = model_type {
            return match model_type.as_str() {
                "vit" => Self::load_vit(path, d_model, device).map(|(e, vit)| (e, PretrainedImage::Vit { vit })),
                "clip" | "clip_vision_model" => {
                    let (clip, c) = ClipVisionTransformer::load(path, device)?;
                    let proj = LinearConfig::new(c.hidden_size, d_model).init(device);
                    Ok((ImageEncoder::ClipVision(ClipVisionTokens { clip, proj }), PretrainedImage::ClipVision { clip_vision: c }))
                }
                other => Err(LoadError::Config {
                    path: config,
                    reason: format!("model_type \"{other}\" is not an image encoder mmfuse loads (a folder: \"vit\", \"clip\" or \"clip_vision_model\")"),
                }),
            };
        }
        Ok(match TorchvisionCnn::load(path, device)? {
            TorchvisionCnn::ResNet(r, c) => {
                let (e, c) = Self::resnet_tokens(r, c, d_model, grid, device);
                (e, PretrainedImage::ResNet(c))
            }
            TorchvisionCnn::MobileNetV2(net) => (
                ImageEncoder::MobileNetV2(MobileNetTokens::new(net, d_model, grid, device)),
                PretrainedImage::MobileNetV2 { mobilenet_v2: MobileNetV2Shape {} },
            ),
        })
    }

    /// Image tokens `[B, N, d]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        match self {
            ImageEncoder::Cnn(m) => m.forward(images),
            ImageEncoder::Vit(m) => m.proj.forward(m.vit.forward(images)),
            ImageEncoder::ClipVision(m) => m.proj.forward(m.clip.post_layernorm.forward(m.clip.forward(images))),
            ImageEncoder::ResNet(m) => m.proj.forward(grid_tokens(m.resnet.features(images), m.grid)),
            ImageEncoder::MobileNetV2(m) => m.proj.forward(grid_tokens(m.net.features(images), m.grid)),
        }
    }
}
