//! A small CNN image encoder trained from scratch: `n` blocks of conv3×3 → batch-norm → ReLU →
//! max-pool 2×2; the last feature map's cells become image tokens projected to `d_model`.
//!
//! At prediction on the CPU the blocks run channels-last (`[B, H, W, C]`), one task per sample:
//! each convolution with its batch norm folded in once is one product through the packed
//! `Linear` kernel (`mmfuse_kernels::conv_bn::conv_bn_channels_last`), each pool compares `C`
//! contiguous values at a time, and the last map is already the tokens `[B, h·w, C]` the
//! projection reads. Training and other devices run the NCHW layers.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};
use mmfuse_kernels::conv_bn::{FoldedCache, channels_last_applies, conv_bn_channels_last, to_channels_last};
use mmfuse_kernels::{Activation, Linear, LinearConfig, conv_bn, each_sample, max_pool2d, max_pool2d_channels_last};

/// Configuration of [`ImageCnn`].
#[derive(Config, Debug)]
pub struct ImageCnnConfig {
    /// Output channels of each conv block. Default [32, 64, 96].
    #[config(default = "vec![32, 64, 96]")]
    pub channels: Vec<usize>,
    /// Size of the image tokens. Default 128.
    #[config(default = 128)]
    pub d_model: usize,
}

/// One conv3×3 → BN → ReLU → max-pool block.
#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub norm: BatchNorm,
    pub pool: MaxPool2d,
    /// ReLU (applied by `conv_bn` in the same pass; the field keeps the records' layout)
    pub act: Relu,
    /// The convolution with its batch norm folded in, for the channels-last pass (derived from
    /// the parameters, not saved)
    #[module(skip)]
    pub folded: FoldedCache,
}

/// The CNN; output tokens `[B, h·w, d_model]` (4×4 = 16 tokens for a 32×32 input and 3 blocks).
/// The tokens are the cells of the last map in row-major order, each its `C` channels.
#[derive(Module, Debug)]
pub struct ImageCnn {
    pub blocks: Vec<ConvBlock>,
    pub proj: Linear,
}

impl ImageCnnConfig {
    pub fn init(&self, device: &Device) -> ImageCnn {
        let mut c_in = 3;
        let blocks = self
            .channels
            .iter()
            .map(|&c_out| {
                let b = ConvBlock {
                    conv: Conv2dConfig::new([c_in, c_out], [3, 3]).with_padding(PaddingConfig2d::Same).init(device),
                    norm: BatchNormConfig::new(c_out).init(device),
                    pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                    act: Relu::new(),
                    folded: FoldedCache::default(),
                };
                c_in = c_out;
                b
            })
            .collect();
        ImageCnn { blocks, proj: LinearConfig::new(c_in, self.d_model).init(device) }
    }
}

impl ImageCnn {
    /// `images` `[B, 3, H, W]` → tokens `[B, (H/2^n)·(W/2^n), d_model]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        let tokens = match self.maps_channels_last(&images) {
            Some(x) => {
                let [bs, h, w, c] = x.dims();
                x.reshape([bs, h * w, c])
            }
            None => {
                let x = self.maps_nchw(images);
                let [bs, c, h, w] = x.dims();
                x.reshape([bs, c, h * w]).swap_dims(1, 2) // [B, hw, C]
            }
        };
        self.proj.forward(tokens)
    }

    /// The last feature map `[B, C, h, w]`, block by block in the NCHW layout (conv → BN → ReLU
    /// in one pass at prediction on the CPU, the batch norm folded in; burn's ops otherwise).
    pub fn maps_nchw(&self, images: Tensor<4>) -> Tensor<4> {
        let mut x = images;
        for b in &self.blocks {
            x = max_pool2d(&b.pool, conv_bn(&b.conv, &b.norm, None, Activation::Relu, x));
        }
        x
    }

    /// The last feature map channels-last, `[B, h, w, C]`, each sample through the blocks as
    /// one task; `None` where the channels-last passes do not apply (training, other devices,
    /// a map too small to pool).
    fn maps_channels_last(&self, images: &Tensor<4>) -> Option<Tensor<4>> {
        if !channels_last_applies(images) {
            return None;
        }
        let sample = |s: usize| {
            let mut x = to_channels_last(images.clone().narrow(0, s, 1));
            for b in &self.blocks {
                let y = conv_bn_channels_last(&b.conv, &b.norm, &b.folded, None, Activation::Relu, &x)?;
                x = max_pool2d_channels_last(&b.pool, &y)?;
            }
            Some(x)
        };
        Some(Tensor::cat(each_sample(&images.device(), images.dims()[0], &sample)?, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The channels-last pass (what prediction runs on a CPU with the packed kernel) against
    /// the NCHW layers on the same weights: trained-looking batch-norm statistics, odd sides
    /// (31 → 15 → 7 → 3: a last row and column outside every pool window at each block), a
    /// batch of 3, and a NaN pixel, which must poison only the tokens whose windows reach it.
    #[test]
    fn channels_last_tokens_match_the_nchw_layers() {
        let device = Device::flex();
        device.seed(5);
        let mut cnn = ImageCnnConfig::new().with_channels(vec![8, 16, 24]).with_d_model(12).init(&device);
        for b in &mut cnn.blocks {
            let c = b.norm.gamma.dims()[0];
            let r = |lo: f64, hi: f64| Tensor::<1>::random([c], Distribution::Uniform(lo, hi), &device);
            b.norm.gamma = b.norm.gamma.clone().map(|_| r(0.5, 1.5));
            b.norm.beta = b.norm.beta.clone().map(|_| r(-0.3, 0.3));
            b.norm.running_mean = burn::module::RunningState::new(r(-0.2, 0.2));
            b.norm.running_var = burn::module::RunningState::new(r(0.5, 2.0));
        }
        let images = Tensor::<4>::random([3, 3, 31, 31], Distribution::Normal(0.0, 1.0), &device);
        if !channels_last_applies(&images) {
            eprintln!("note: this CPU does not run the packed kernel; the channels-last pass is not tested here");
            return;
        }
        let ours = cnn.maps_channels_last(&images).expect("applies");
        assert_eq!(ours.dims(), [3, 3, 3, 24]);
        let theirs = cnn.maps_nchw(images.clone());
        let (a, b) = (ours.clone().permute([0, 3, 1, 2]).into_data().try_to_vec::<f32>().unwrap(), theirs.into_data().try_to_vec::<f32>().unwrap());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.1, "the maps are not all zero");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * scale, "map value {i}: {x} vs {y}");
        }
        // forward reads the maps as tokens in the same order both ways
        let tokens = cnn.forward(images.clone());
        let nchw = {
            let x = cnn.maps_nchw(images.clone());
            let [bs, c, h, w] = x.dims();
            cnn.proj.forward(x.reshape([bs, c, h * w]).swap_dims(1, 2))
        };
        let diff = (tokens - nchw).abs().max().into_scalar::<f32>();
        assert!(diff <= 1e-4, "tokens differ by {diff}");
        // a NaN pixel of sample 1 (row 0, column 0) reaches only sample 1's first tokens
        let mut v = images.into_data().try_to_vec::<f32>().unwrap();
        v[31 * 31 * 3] = f32::NAN;
        let poisoned = cnn.maps_channels_last(&Tensor::<4>::from_data(burn::tensor::TensorData::new(v, [3, 3, 31, 31]), &device)).unwrap();
        let p = poisoned.into_data().try_to_vec::<f32>().unwrap();
        let per_sample = 3 * 3 * 24;
        assert!(p[..per_sample].iter().chain(&p[2 * per_sample..]).all(|v| v.is_finite()), "other samples stay finite");
        assert!(p[per_sample..per_sample + 24].iter().all(|v| v.is_nan()), "the corner token is NaN");
        assert!(p[2 * per_sample - 24..2 * per_sample].iter().all(|v| v.is_finite()), "the far corner is out of its reach");
    }
}
