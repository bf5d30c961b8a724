//! ResNet image encoder (He et al. 2016, "Deep Residual Learning for Image Recognition"), laid
//! out exactly like torchvision's `resnet18/34/50/101/152` so that its ImageNet checkpoints,
//! converted to safetensors without renaming, load unchanged; the depth of each stage and the
//! base width are configurable so that tiny models (tests) use the same code.
//!
//! Layout (torchvision key names): stem `conv1` (7×7/2, 3→w, no bias) → `bn1` → ReLU → max-pool
//! 3×3/2 (padding 1); four stages `layer1..=4` with `layers[i]` blocks of `w·2^i` planes (the
//! first block of stages 2–4 has stride 2, on the 3×3 conv); global average pool → `fc`.
//! - [`BlockKind::Basic`] (resnet18/34, expansion 1): `conv1` 3×3/s → `bn1` → ReLU → `conv2` 3×3
//!   → `bn2`, plus the shortcut, → ReLU.
//! - [`BlockKind::Bottleneck`] (resnet50/101/152, ResNet v1.5, expansion 4): `conv1` 1×1 →
//!   `bn1` → ReLU → `conv2` 3×3/s → `bn2` → ReLU → `conv3` 1×1 → `bn3`, plus the shortcut, → ReLU.
//!
//! The shortcut is the identity, or `downsample.0` (1×1/s conv, no bias) → `downsample.1` (BN)
//! when the stride or the channel count changes. Convs have no bias; batch norms use eps 1e-5
//! and their running statistics at inference (whenever the device is not an autodiff device).
//!
//! Loading: [`ResNet::load`] reads a `.safetensors` file with torchvision keys (`conv1.weight`,
//! `bn1.{weight,bias,running_mean,running_var}`, `layer1.0.conv1.weight`,
//! `layer2.0.downsample.{0,1}.*`, `fc.{weight,bias}`) and infers the [`ResNetConfig`] from the
//! stored shapes ([`ResNetConfig::infer`]); [`ResNet::from_weights`] checks the weights against
//! a given config. A missing tensor or a wrong shape is an error naming the file, the key and
//! both shapes.

use crate::pretrained::{LoadError, Weights};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use mmfuse_kernels::{Activation, conv_bn};
use mmfuse_kernels::{Linear, LinearConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// torchvision's BatchNorm2d epsilon.
const BN_EPS: f64 = 1e-5;

/// The residual block of a [`ResNet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// Two 3×3 convs (resnet18/34), expansion 1.
    Basic,
    /// 1×1 → 3×3 → 1×1 convs (resnet50/101/152), expansion 4.
    Bottleneck,
}

impl BlockKind {
    /// Output channels of a block / its planes.
    pub fn expansion(self) -> usize {
        match self {
            Self::Basic => 1,
            Self::Bottleneck => 4,
        }
    }
}

/// The shape of a torchvision ResNet. Serialises as
/// `{"block": "bottleneck", "layers": [3, 4, 6, 3], "width": 64, "num_classes": 1000}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Blocks per stage (`layer1..=4`).
    pub layers: [usize; 4],
    /// Base channels: the stem's output and stage 1's planes (torchvision: 64).
    pub width: usize,
    /// Classes of the `fc` head; 0 when the checkpoint has no `fc` (feature extractor only).
    pub num_classes: usize,
}

impl ResNetConfig {
    pub fn resnet18(num_classes: usize) -> Self {
        Self { block: BlockKind::Basic, layers: [2, 2, 2, 2], width: 64, num_classes }
    }
    pub fn resnet34(num_classes: usize) -> Self {
        Self { block: BlockKind::Basic, layers: [3, 4, 6, 3], width: 64, num_classes }
    }
    pub fn resnet50(num_classes: usize) -> Self {
        Self { block: BlockKind::Bottleneck, layers: [3, 4, 6, 3], width: 64, num_classes }
    }
    pub fn resnet101(num_classes: usize) -> Self {
        Self { block: BlockKind::Bottleneck, layers: [3, 4, 23, 3], width: 64, num_classes }
    }
    pub fn resnet152(num_classes: usize) -> Self {
        Self { block: BlockKind::Bottleneck, layers: [3, 8, 36, 3], width: 64, num_classes }
    }

    /// Channels of the last feature map (`8·width·expansion`: 512 for resnet18/34, 2048 for
    /// resnet50/101/152).
    pub fn feature_channels(&self) -> usize {
        self.width * 8 * self.block.expansion()
    }

    /// Infer the config from torchvision key names and shapes: the width from `conv1.weight`,
    /// the block kind from the presence of `layer1.0.conv3.weight`, the depths by counting
    /// `layerK.N.conv1.weight` and the classes from `fc.weight` (0 without `fc`). Shapes are
    /// checked later by [`ResNet::from_weights`].
    pub fn infer(w: &Weights) -> Result<Self, LoadError> {
        let width = match w.shape("conv1.weight") {
            Some([c, ..]) => *c,
            _ => return Err(LoadError::Missing { path: w.path().to_path_buf(), key: w.key("conv1.weight") }),
        };
        let block = if w.contains("layer1.0.conv3.weight") { BlockKind::Bottleneck } else { BlockKind::Basic };
        let mut layers = [0; 4];
        for (i, n) in layers.iter_mut().enumerate() {
            while w.contains(&format!("layer{}.{}.conv1.weight", i + 1, *n)) {
                *n += 1;
            }
            if *n == 0 {
                return Err(LoadError::Missing { path: w.path().to_path_buf(), key: w.key(&format!("layer{}.0.conv1.weight", i + 1)) });
            }
        }
        let num_classes = match w.shape("fc.weight") {
            Some([n, _]) => *n,
            _ => 0,
        };
        Ok(Self { block, layers, width, num_classes })
    }
}

/// Conv (no bias) → BatchNorm.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(w: &Weights, conv: &str, bn: &str, c_in: usize, c_out: usize, kernel: usize, stride: usize) -> Result<Self, LoadError> {
        Ok(Self { conv: w.conv2d(conv, [c_in, c_out], kernel, stride, (kernel - 1) / 2, 1, false)?, bn: w.batch_norm(bn, c_out, BN_EPS)? })
    }

    /// `act(bn(conv(x)) + shortcut)`: at prediction on the CPU one pass with the batch norm
    /// folded into the convolution ([`mmfuse_kernels::conv_bn`]).
    pub fn forward(&self, x: Tensor<4>, shortcut: Option<Tensor<4>>, act: Activation) -> Tensor<4> {
        conv_bn(&self.conv, &self.bn, shortcut, act, x)
    }

    fn init(c_in: usize, c_out: usize, kernel: usize, stride: usize, device: &Device) -> Self {
        let p = (kernel - 1) / 2;
        Self {
            conv: Conv2dConfig::new([c_in, c_out], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(c_out).with_epsilon(BN_EPS).init(device),
        }
    }
}

/// One residual block (torchvision `BasicBlock` or `Bottleneck`, `layerK.N.*`).
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// `conv1`/`bn1`, `conv2`/`bn2` and, for bottlenecks, `conv3`/`bn3`: ReLU after each but the last.
    pub convs: Vec<ConvBn>,
    /// `downsample.0`/`downsample.1`: the projection shortcut, when stride or channels change.
    pub downsample: Option<ConvBn>,
}

impl ResidualBlock {
    fn load(w: &Weights, kind: BlockKind, c_in: usize, planes: usize, stride: usize) -> Result<Self, LoadError> {
        let c_out = planes * kind.expansion();
        let convs = match kind {
            BlockKind::Basic => vec![ConvBn::load(w, "conv1", "bn1", c_in, planes, 3, stride)?, ConvBn::load(w, "conv2", "bn2", planes, planes, 3, 1)?],
            BlockKind::Bottleneck => vec![
                ConvBn::load(w, "conv1", "bn1", c_in, planes, 1, 1)?,
                ConvBn::load(w, "conv2", "bn2", planes, planes, 3, stride)?,
                ConvBn::load(w, "conv3", "bn3", planes, c_out, 1, 1)?,
            ],
        };
        let downsample = if stride != 1 || c_in != c_out { Some(ConvBn::load(w, "downsample.0", "downsample.1", c_in, c_out, 1, stride)?) } else { None };
        Ok(Self { convs, downsample })
    }

    fn init(kind: BlockKind, c_in: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let c_out = planes * kind.expansion();
        let convs = match kind {
            BlockKind::Basic => vec![ConvBn::init(c_in, planes, 3, stride, device), ConvBn::init(planes, planes, 3, 1, device)],
            BlockKind::Bottleneck => {
                vec![ConvBn::init(c_in, planes, 1, 1, device), ConvBn::init(planes, planes, 3, stride, device), ConvBn::init(planes, c_out, 1, 1, device)]
            }
        };
        let downsample = (stride != 1 || c_in != c_out).then(|| ConvBn::init(c_in, c_out, 1, stride, device));
        Self { convs, downsample }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x.clone(), None, Activation::Identity),
            None => x.clone(),
        };
        let (last, inner) = self.convs.split_last().expect("a block has convolutions");
        let h = inner.iter().fold(x, |h, c| c.forward(h, None, Activation::Relu));
        // the shortcut added and the ReLU applied in the last convolution's pass
        last.forward(h, Some(shortcut), Activation::Relu)
    }
}

/// torchvision ResNet.
#[derive(Module, Debug)]
pub struct ResNet {
    /// `conv1` + `bn1` (followed by ReLU and the max-pool).
    pub stem: ConvBn,
    pub maxpool: MaxPool2d,
    /// `layer1..=4`, one `Vec` of blocks per stage.
    pub stages: Vec<Vec<ResidualBlock>>,
    /// `fc`; absent when the config has 0 classes.
    pub fc: Option<Linear>,
    /// Channels of the last feature map.
    pub feature_channels: usize,
}

impl ResNetConfig {
    /// A randomly initialised ResNet of this shape (burn's default initialisers; BatchNorm
    /// 1/0): the skeleton a saved run's weights are loaded into.
    pub fn init(&self, device: &Device) -> ResNet {
        let stem = ConvBn::init(3, self.width, 7, 2, device);
        let maxpool = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init();
        let mut c_in = self.width;
        let mut stages = Vec::with_capacity(4);
        for (i, &n) in self.layers.iter().enumerate() {
            let planes = self.width << i;
            let mut blocks = Vec::with_capacity(n);
            for j in 0..n {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                blocks.push(ResidualBlock::init(self.block, c_in, planes, stride, device));
                c_in = planes * self.block.expansion();
            }
            stages.push(blocks);
        }
        let fc = (self.num_classes > 0).then(|| LinearConfig::new(c_in, self.num_classes).init(device));
        ResNet { stem, maxpool, stages, fc, feature_channels: c_in }
    }
}

impl ResNet {
    /// Load torchvision ResNet weights from a `.safetensors` file, inferring the config from
    /// the stored shapes.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<(Self, ResNetConfig), LoadError> {
        let w = Weights::from_safetensors(path, device)?;
        let config = ResNetConfig::infer(&w)?;
        Ok((Self::from_weights(&w, &config)?, config))
    }

    /// Build from opened weights with torchvision key names at the root of `w`; every tensor
    /// must have the shape `config` implies.
    pub fn from_weights(w: &Weights, config: &ResNetConfig) -> Result<Self, LoadError> {
        if config.width == 0 || config.layers.contains(&0) {
            return Err(LoadError::Config { path: w.path().to_path_buf(), reason: format!("invalid ResNet config {config:?}: zero width or empty stage") });
        }
        let stem = ConvBn::load(w, "conv1", "bn1", 3, config.width, 7, 2)?;
        let maxpool = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init();
        let mut c_in = config.width;
        let mut stages = Vec::with_capacity(4);
        for (i, &n) in config.layers.iter().enumerate() {
            let planes = config.width << i;
            let mut blocks = Vec::with_capacity(n);
            for j in 0..n {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                blocks.push(ResidualBlock::load(&w.pp(format!("layer{}.{j}", i + 1)), config.block, c_in, planes, stride)?);
                c_in = planes * config.block.expansion();
            }
            stages.push(blocks);
        }
        let fc = if config.num_classes > 0 { Some(w.linear("fc", c_in, config.num_classes, true)?) } else { None };
        Ok(Self { stem, maxpool, stages, fc, feature_channels: c_in })
    }

    /// `x` `[B, 3, H, W]` (ImageNet-normalised) → the last feature map `[B, C, ⌈H/32⌉, ⌈W/32⌉]`
    /// (7×7 for 224×224 inputs; `C` = [`ResNetConfig::feature_channels`]), after the last ReLU.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.maxpool.forward(self.stem.forward(x, None, Activation::Relu));
        for stage in &self.stages {
            for b in stage {
                x = b.forward(x);
            }
        }
        x
    }

    /// Global average pool of a feature map `[B, C, h, w]` → `[B, C]`.
    pub fn pool(features: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = features.dims();
        features.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
    }

    /// `x` `[B, 3, H, W]` → class logits `[B, classes]` (avg pool → flatten → `fc`); without
    /// an `fc` head, the pooled features `[B, C]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let pooled = Self::pool(self.features(x));
        match &self.fc {
            Some(fc) => fc.forward(pooled),
            None => pooled,
        }
    }
}
