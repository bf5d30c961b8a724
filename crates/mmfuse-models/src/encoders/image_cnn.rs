//! A small CNN image encoder trained from scratch: `n` blocks of conv3×3 → batch-norm → ReLU →
//! max-pool 2×2; the last feature map's cells become image tokens projected to `d_model`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};
use mmfuse_kernels::{Activation, Linear, LinearConfig, conv_bn};

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
}

/// The CNN; output tokens `[B, h·w, d_model]` (4×4 = 16 tokens for a 32×32 input and 3 blocks).
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
        let mut x = images;
        for b in &self.blocks {
            // conv → BN → ReLU: at prediction on the CPU one pass, the batch norm folded in
            x = mmfuse_kernels::max_pool2d(&b.pool, conv_bn(&b.conv, &b.norm, None, Activation::Relu, x));
        }
        let [bs, c, h, w] = x.dims();
        let tokens = x.reshape([bs, c, h * w]).swap_dims(1, 2); // [B, hw, C]
        self.proj.forward(tokens)
    }
}
