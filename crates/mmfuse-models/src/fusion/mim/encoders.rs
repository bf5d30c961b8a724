//! MIM's unimodal encoders (hidden size d = 80 in the paper), each giving a sequence `[B, T, d]`
//! over the `T = L − 1` aligned steps after `[CLS]`:
//!
//! - text: the text encoder's last layer without `[CLS]` → Conv1d(d_text → d, k = 3);
//! - audio / video: Conv1d(features → d, k = 3) → sinusoidal positions → pre-LN Transformer
//!   (3 layers, 5 heads, FFN 320).
//!
//! Paper: MIM, Multimodal Information Modulation (Zeng, Mai, Yan & Hu, IEEE TMM 2023, doi:10.1109/tmm.2023.3293335);
//! shared/METHODS.md §3 "Encoders" (no section or equation numbers in our sources).

use crate::encoders::transformer::{TransformerEncoder, TransformerEncoderConfig};
use crate::encoders::{TextEncoder, TextEncoderConfig};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{PaddingConfig1d, PositionalEncoding, PositionalEncodingConfig};
use burn::tensor::{Bool, Device, Int, Tensor};

/// Temporal Conv1d over `[B, T, C]` (kernel 3, same length), returning `[B, T, d]`.
fn conv_time(conv: &Conv1d, x: Tensor<3>) -> Tensor<3> {
    conv.forward(x.swap_dims(1, 2)).swap_dims(1, 2)
}

fn conv(d_in: usize, d_out: usize, device: &Device) -> Conv1d {
    Conv1dConfig::new(d_in, d_out, 3).with_padding(PaddingConfig1d::Explicit(1, 1)).init(device)
}

/// The text branch: a text encoder (BERT or from scratch) and a temporal convolution.
#[derive(Config, Debug)]
pub struct TextBranchConfig {
    pub text: TextEncoderConfig,
    /// Output size d.
    #[config(default = 80)]
    pub d_model: usize,
}

#[derive(Module, Debug)]
pub struct TextBranch {
    pub encoder: TextEncoder,
    pub conv: Conv1d,
}

impl TextBranchConfig {
    pub fn init(&self, device: &Device) -> TextBranch {
        TextBranch { encoder: self.text.init(device), conv: conv(self.text.d_model(), self.d_model, device) }
    }
}

impl TextBranch {
    /// `[B, L]` ids and mask → `[B, L − 1, d]` (position 0, `[CLS]`, dropped).
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let h = self.encoder.forward(ids, mask);
        let [b, l, d] = h.dims();
        conv_time(&self.conv, h.slice([0..b, 1..l, 0..d]))
    }
}

/// An acoustic or visual branch: Conv1d, sinusoidal positions and a pre-LN Transformer.
#[derive(Config, Debug)]
pub struct SequenceEncoderConfig {
    /// Feature size of the input rows (74 for COVAREP, 47/35 for FACET).
    pub d_input: usize,
    /// Longest sequence (for the position table).
    pub max_len: usize,
    #[config(default = 80)]
    pub d_model: usize,
    #[config(default = 5)]
    pub n_heads: usize,
    #[config(default = 320)]
    pub d_ff: usize,
    #[config(default = 3)]
    pub n_layers: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct SequenceEncoder {
    pub conv: Conv1d,
    pub positions: PositionalEncoding,
    pub transformer: TransformerEncoder,
}

impl SequenceEncoderConfig {
    pub fn init(&self, device: &Device) -> SequenceEncoder {
        SequenceEncoder {
            conv: conv(self.d_input, self.d_model, device),
            positions: PositionalEncodingConfig::new(self.d_model).with_max_sequence_size(self.max_len.max(1)).init(device),
            transformer: TransformerEncoderConfig::new(self.d_model, self.d_ff, self.n_heads, self.n_layers).with_dropout(self.dropout).init(device),
        }
    }
}

impl SequenceEncoder {
    /// `x` `[B, T, F]`, `mask` `[B, T]` true at real steps → `[B, T, d]`.
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let h = self.positions.forward(conv_time(&self.conv, x));
        self.transformer.forward(h, mask)
    }
}
