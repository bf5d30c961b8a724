//! MobileNetV2 image encoder (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
//! Bottlenecks"), laid out exactly like torchvision's `mobilenet_v2()` (width 1.0) so that its
//! ImageNet checkpoints, converted to safetensors without renaming, load unchanged.
//!
//! Layout (torchvision key names): `features.0` = conv3×3/2 (3→32) + BN + ReLU6; `features.1..=17`
//! = inverted residual blocks (`t, c, n, s` = 1,16,1,1 · 6,24,2,2 · 6,32,3,2 · 6,64,4,2 ·
//! 6,96,3,1 · 6,160,3,2 · 6,320,1,1): optional 1×1 expansion conv+BN+ReLU6, depthwise 3×3 conv
//! (groups = channels)+BN+ReLU6, linear 1×1 projection conv+BN, residual when stride 1 and
//! in = out; `features.18` = conv1×1 (320→1280) + BN + ReLU6; `classifier` = dropout(0.2) →
//! linear(1280 → classes). Batch norms use eps 1e-5 and their running statistics at inference
//! (and whenever the device is not an autodiff device); convs have no bias.
//!
//! Loading: [`MobileNetV2::load`] on a `.safetensors` file with torchvision keys
//! (`features.0.0.weight`, `features.0.1.{weight,bias,running_mean,running_var}`,
//! `features.N.conv.M...`, `features.18.{0,1}`, `classifier.1.{weight,bias}`); the number of
//! classes is read from `classifier.1.weight`. A missing tensor or wrong shape is an error
//! naming the file, the key and both shapes.

use crate::pretrained::{LoadError, Weights};
use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};
use mmfuse_kernels::conv_bn::{
    ConvBnLayer, FoldedCache, channels_last_applies, conv_bn_channels_last, from_channels_last, inverted_residual_channels_last, to_channels_last,
};
use mmfuse_kernels::{Activation, conv_bn, each_sample};
use mmfuse_kernels::{Dropout, DropoutConfig, Linear};
use std::path::Path;

/// torchvision's BatchNorm2d epsilon.
const BN_EPS: f64 = 1e-5;
/// Channels of the final feature map.
pub const FEATURE_CHANNELS: usize = 1280;
/// Inverted residual settings `(expand ratio t, out channels c, repeats n, first stride s)`.
const SETTINGS: [(usize, usize, usize, usize); 7] = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// Conv (no bias) → BatchNorm → optional ReLU6 (torchvision `Conv2dNormActivation`).
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    pub relu6: bool,
    /// The folded weight of the channels-last pass (not part of the record).
    #[module(skip)]
    folded: FoldedCache,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(w: &Weights, conv: &str, bn: &str, c_in: usize, c_out: usize, kernel: usize, stride: usize, groups: usize, act: bool) -> Result<Self, LoadError> {
        Ok(Self {
            conv: w.conv2d(conv, [c_in, c_out], kernel, stride, (kernel - 1) / 2, groups, false)?,
            bn: w.batch_norm(bn, c_out, BN_EPS)?,
            relu6: act,
            folded: Default::default(),
        })
    }

    /// `bn(conv(x)) (+ shortcut)`, then ReLU6 if the layer has it: at prediction on the CPU one
    /// pass with the batch norm folded into the convolution ([`mmfuse_kernels::conv_bn`]).
    pub fn forward(&self, x: Tensor<4>, shortcut: Option<Tensor<4>>) -> Tensor<4> {
        conv_bn(&self.conv, &self.bn, shortcut, self.activation(), x)
    }

    /// [`forward`](Self::forward) over channels-last maps `[B, H, W, C]`, if the layer has that
    /// pass here ([`conv_bn_channels_last`]).
    pub fn forward_channels_last(&self, x: &Tensor<4>, shortcut: Option<&Tensor<4>>) -> Option<Tensor<4>> {
        conv_bn_channels_last(&self.conv, &self.bn, &self.folded, shortcut, self.activation(), x)
    }

    /// The layer as one of a fused block's ([`inverted_residual_channels_last`]).
    fn layer(&self) -> ConvBnLayer<'_> {
        ConvBnLayer { conv: &self.conv, bn: &self.bn, cache: &self.folded, act: self.activation() }
    }

    fn activation(&self) -> Activation {
        if self.relu6 { Activation::Relu6 } else { Activation::Identity }
    }
}

/// An inverted residual block (torchvision `InvertedResidual`).
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1×1 expansion (absent when the expand ratio is 1).
    pub expand: Option<ConvBn>,
    /// 3×3 depthwise conv, stride 1 or 2.
    pub depthwise: ConvBn,
    /// Linear 1×1 projection (no activation).
    pub project: ConvBn,
    pub residual: bool,
}

impl InvertedResidual {
    fn load(w: &Weights, c_in: usize, c_out: usize, stride: usize, t: usize) -> Result<Self, LoadError> {
        let hidden = c_in * t;
        let w = w.pp("conv");
        Ok(if t == 1 {
            Self {
                expand: None,
                depthwise: ConvBn::load(&w, "0.0", "0.1", hidden, hidden, 3, stride, hidden, true)?,
                project: ConvBn::load(&w, "1", "2", hidden, c_out, 1, 1, 1, false)?,
                residual: stride == 1 && c_in == c_out,
            }
        } else {
            Self {
                expand: Some(ConvBn::load(&w, "0.0", "0.1", c_in, hidden, 1, 1, 1, true)?),
                depthwise: ConvBn::load(&w, "1.0", "1.1", hidden, hidden, 3, stride, hidden, true)?,
                project: ConvBn::load(&w, "2", "3", hidden, c_out, 1, 1, 1, false)?,
                residual: stride == 1 && c_in == c_out,
            }
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = match &self.expand {
            Some(e) => e.forward(x.clone(), None),
            None => x.clone(),
        };
        // the linear projection adds the shortcut in its own pass
        self.project.forward(self.depthwise.forward(h, None), self.residual.then_some(x))
    }

    /// [`forward`](Self::forward) over channels-last maps, if every layer has that pass: the
    /// whole block band by band of rows where it can
    /// ([`inverted_residual_channels_last`]), else layer by layer.
    pub fn forward_channels_last(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        let fused = inverted_residual_channels_last(self.expand.as_ref().map(ConvBn::layer), self.depthwise.layer(), self.project.layer(), self.residual, x);
        fused.or_else(|| self.layer_by_layer_channels_last(x))
    }

    /// [`forward_channels_last`](Self::forward_channels_last) one layer after the other.
    fn layer_by_layer_channels_last(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        let h = match &self.expand {
            Some(e) => e.forward_channels_last(x, None)?,
            None => x.clone(),
        };
        let h = self.depthwise.forward_channels_last(&h, None)?;
        self.project.forward_channels_last(&h, self.residual.then_some(x))
    }
}

/// torchvision MobileNetV2 (width 1.0).
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// `features.0`
    pub stem: ConvBn,
    /// `features.1..=17`
    pub blocks: Vec<InvertedResidual>,
    /// `features.18`
    pub last: ConvBn,
    /// `classifier.0` (p = 0.2; active only on an autodiff device)
    pub dropout: Dropout,
    /// `classifier.1` (`None` in an image encoder, which reads the features only)
    pub classifier: Option<Linear>,
}

impl MobileNetV2 {
    /// Load torchvision MobileNetV2 weights from a `.safetensors` file.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self, LoadError> {
        Self::from_weights(&Weights::from_safetensors(path, device)?)
    }

    /// Random weights of torchvision's layout (what a run folder rebuilds before loading its
    /// checkpoint): the loading code over [`Weights::random`], 1000 classes.
    pub fn init(device: &Device) -> Self {
        Self::from_weights(&Weights::random(device)).expect("random weights have every shape")
    }

    /// Build from opened weights with torchvision key names at the root of `w`.
    pub fn from_weights(w: &Weights) -> Result<Self, LoadError> {
        let f = w.pp("features");
        let stem = ConvBn::load(&f, "0.0", "0.1", 3, 32, 3, 2, 1, true)?;
        let mut blocks = Vec::with_capacity(17);
        let mut c_in = 32;
        for &(t, c, n, s) in &SETTINGS {
            for i in 0..n {
                let idx = blocks.len() + 1;
                blocks.push(InvertedResidual::load(&f.pp(idx.to_string()), c_in, c, if i == 0 { s } else { 1 }, t)?);
                c_in = c;
            }
        }
        let last = ConvBn::load(&f, "18.0", "18.1", c_in, FEATURE_CHANNELS, 1, 1, 1, true)?;
        let n_classes = match w.shape("classifier.1.weight") {
            Some([n, _]) => *n,
            _ => 1000, // missing or malformed: the `linear` call below reports it
        };
        let classifier = w.linear("classifier.1", FEATURE_CHANNELS, n_classes, true)?;
        Ok(Self { stem, blocks, last, dropout: DropoutConfig::new(0.2).init(), classifier: Some(classifier) })
    }

    /// `x` `[B, 3, H, W]` (ImageNet-normalised; 224×224 in training) → feature map
    /// `[B, 1280, H/32, W/32]` (after the last 1×1 conv + BN + ReLU6, so in [0, 6]).
    ///
    /// At prediction on the CPU the network runs channels-last (`[B, H, W, C]`) from the stem to
    /// the last layer, the input and the output transposed once, one task per sample
    /// ([`each_sample`]; measured with the `encoders` bench, batch 8, 2 threads, a Zen 4 with
    /// 32 MiB of L3, alternated: the whole batch through each layer ran at 102–105 samples/s,
    /// each map of 8 samples at 224² a fresh mapping; two samples at a time at 126–216, a sample
    /// per task at 208–226): every 1×1
    /// convolution is then one product with its folded weight packed once, every depthwise one a
    /// pass along the channels (`mmfuse_kernels::conv_bn::conv_bn_channels_last`), each inverted
    /// residual block band by band of rows
    /// (`mmfuse_kernels::conv_bn::inverted_residual_channels_last`).
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        if channels_last_applies(&x)
            && let Some(parts) = each_sample(&x.device(), x.dims()[0], &|s| self.features_channels_last(&x.clone().narrow(0, s, 1)))
        {
            return Tensor::cat(parts, 0);
        }
        self.features_nchw(x)
    }

    /// [`features`](Self::features) channels-last, if every layer has that pass.
    fn features_channels_last(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        let mut x = self.stem.forward_channels_last(&to_channels_last(x.clone()), None)?;
        for b in &self.blocks {
            x = b.forward_channels_last(&x)?;
        }
        Some(from_channels_last(self.last.forward_channels_last(&x, None)?))
    }

    /// [`features`](Self::features) in the NCHW layout, layer by layer through
    /// [`conv_bn`] (training, other devices).
    fn features_nchw(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.forward(x, None);
        for b in &self.blocks {
            x = b.forward(x);
        }
        self.last.forward(x, None)
    }

    /// Global average pool of a feature map `[B, C, h, w]` → `[B, C]`.
    pub fn pool(features: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = features.dims();
        features.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
    }

    /// `x` `[B, 3, H, W]` → class logits `[B, classes]` (avg pool → flatten → dropout → linear);
    /// without the classifier, the pooled features `[B, 1280]` after dropout.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.dropout.forward(Self::pool(self.features(x)));
        match &self.classifier {
            Some(c) => c.forward(x),
            None => x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn channels_last_features_match_the_nchw_layers() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 64, 48], Distribution::Normal(0.0, 1.0), &device);
        if !channels_last_applies(&x) {
            eprintln!("note: skipped, this CPU does not run the packed kernel (MobileNetV2 runs NCHW on it)");
            return;
        }
        let net = MobileNetV2::init(&device);
        let ours = net.features_channels_last(&x).expect("every layer has the channels-last pass");
        let want = net.features_nchw(x.clone());
        assert_eq!(ours.dims(), [2, FEATURE_CHANNELS, 2, 2]);
        let scale = want.clone().abs().max().into_scalar::<f32>().max(1.0);
        let d = (ours.clone() - want).abs().max().into_scalar::<f32>() / scale;
        assert!(d < 1e-4, "channels-last vs NCHW: max relative difference {d}");
        // a sample alone gives the same bits as in a batch (`features` runs one task per sample)
        let second = net.features_channels_last(&x.clone().narrow(0, 1, 1)).unwrap();
        assert_eq!(second.into_data().try_to_vec::<f32>().unwrap(), ours.clone().narrow(0, 1, 1).into_data().try_to_vec::<f32>().unwrap());
        // `features` takes the channels-last pass here
        assert_eq!(net.features(x).into_data().try_to_vec::<f32>().unwrap(), ours.into_data().try_to_vec::<f32>().unwrap());
    }
}
