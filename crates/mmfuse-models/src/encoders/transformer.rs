//! A pre-LN Transformer encoder: the text encoder of the baseline models
//! ([`super::TextTransformer`]) and MIM's audio/video encoders.
//!
//! The same computation and parameter names as burn-nn's `TransformerEncoder` with
//! `norm_first = true` (`layers.N.{mha.{query,key,value,output}, pwff.{linear_inner,
//! linear_outer}, norm_1, norm_2}`; `norm_2` before attention and `norm_1` before the
//! feed-forward, as there), written on mmfuse's pieces so that it runs faster on the CPU:
//! - attention is [`MaskedAttention`] and the feed-forward uses `mmfuse_kernels::Linear`, so every
//!   projection is one matmul over all the batch's tokens (burn's layer runs one matmul per
//!   sequence when the length is a multiple of 32, re-packing the weight each time);
//! - dropout draws its masks with `mmfuse_kernels::Dropout`.
//!
//! Padded keys get exactly zero attention weight (burn's layer gives them `e^-10000`, also 0 in
//! f32).

use crate::layers::attention::MaskedAttention;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Bool, Device, Tensor};
use mmfuse_kernels::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearActivation, LinearConfig};

/// Configuration of [`TransformerEncoder`].
#[derive(Config, Debug)]
pub struct TransformerEncoderConfig {
    pub d_model: usize,
    pub d_ff: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    /// Dropout on attention weights, the feed-forward's hidden layer and both residual
    /// branches. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// LayerNorm epsilon. Default 1e-5.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
}

/// A stack of pre-LN encoder layers.
#[derive(Module, Debug)]
pub struct TransformerEncoder {
    pub layers: Vec<TransformerEncoderLayer>,
}

/// `x + drop(attn(norm_2(x)))`, then `x + drop(ffn(norm_1(x)))`.
#[derive(Module, Debug)]
pub struct TransformerEncoderLayer {
    pub mha: MaskedAttention,
    pub pwff: PositionWiseFeedForward,
    pub norm_1: LayerNorm,
    pub norm_2: LayerNorm,
    pub dropout: Dropout,
}

/// `linear_outer(drop(gelu(linear_inner(x))))`.
#[derive(Module, Debug)]
pub struct PositionWiseFeedForward {
    pub linear_inner: Linear,
    pub linear_outer: Linear,
    pub dropout: Dropout,
}

impl TransformerEncoderConfig {
    pub fn init(&self, device: &Device) -> TransformerEncoder {
        let norm = || LayerNormConfig::new(self.d_model).with_epsilon(self.layer_norm_eps).init(device);
        let layers = (0..self.n_layers)
            .map(|_| TransformerEncoderLayer {
                mha: MaskedAttention::new(self.d_model, self.n_heads, self.dropout, device),
                pwff: PositionWiseFeedForward {
                    linear_inner: LinearConfig::new(self.d_model, self.d_ff).init(device),
                    linear_outer: LinearConfig::new(self.d_ff, self.d_model).init(device),
                    dropout: DropoutConfig::new(self.dropout).init(),
                },
                norm_1: norm(),
                norm_2: norm(),
                dropout: DropoutConfig::new(self.dropout).init(),
            })
            .collect();
        TransformerEncoder { layers }
    }
}

impl PositionWiseFeedForward {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.linear_outer.forward(self.dropout.forward(self.linear_inner.forward_activated(x, LinearActivation::Gelu)))
    }

    /// `residual + dropout(self.forward(x))` (a layer's shortcut around it), the residual added
    /// as the outer layer stores its output at prediction.
    pub fn forward_residual(&self, x: Tensor<3>, residual: Tensor<3>, dropout: &Dropout) -> Tensor<3> {
        self.linear_outer.forward_residual(self.dropout.forward(self.linear_inner.forward_activated(x, LinearActivation::Gelu)), residual, dropout)
    }
}

impl TransformerEncoderLayer {
    /// `x` `[B, L, d]`, `mask` `[B, L]` true at real tokens.
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let h = self.norm_2.forward(x.clone());
        let x = self.mha.self_attention_residual(h, mask, x, &self.dropout, false).0;
        self.pwff.forward_residual(self.norm_1.forward(x.clone()), x, &self.dropout)
    }
}

impl TransformerEncoder {
    /// `x` `[B, L, d]`, `mask` `[B, L]` true at real tokens → `[B, L, d]`.
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<3> {
        self.layers.iter().fold(x, |x, layer| layer.forward(x, mask.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::transformer::{TransformerEncoderConfig as BurnConfig, TransformerEncoderInput};
    use burn::tensor::{Distribution, TensorData};

    /// burn-nn's pre-LN encoder's record (what checkpoints of the earlier text encoder hold)
    /// loads into ours by name, and then both give the same outputs at the real tokens.
    #[test]
    fn loads_burn_nn_pre_ln_encoder_records_and_matches_its_outputs() {
        let d = Device::flex();
        let burn_enc = BurnConfig::new(16, 32, 4, 2).with_norm_first(true).with_dropout(0.0).init(&d);
        let ours = TransformerEncoderConfig::new(16, 32, 4, 2).with_dropout(0.0).init(&d);
        let ours = ours.try_load_record(burn_enc.clone().into_record()).expect("burn's record loads by name");
        let x = Tensor::<3>::random([2, 5, 16], Distribution::Normal(0.0, 1.0), &d);
        let m = vec![true, true, true, false, false, true, true, true, true, true];
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(m.clone(), [2, 5]), &d);
        let want = burn_enc.forward(TransformerEncoderInput::new(x.clone()).mask_pad(mask.clone().bool_not())).into_data().try_to_vec::<f32>().unwrap();
        let got = ours.forward(x, mask).into_data().try_to_vec::<f32>().unwrap();
        let mut compared = 0;
        for (i, (a, b)) in want.iter().zip(&got).enumerate() {
            if m[i / 16] {
                assert!((a - b).abs() < 1e-5, "value {i}: burn {a} vs ours {b}");
                compared += 1;
            }
        }
        assert_eq!(compared, 8 * 16);
    }
}
