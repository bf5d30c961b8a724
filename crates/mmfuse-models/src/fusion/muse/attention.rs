//! Multi-head self-attention with a key-padding mask that also returns the head-averaged
//! attention weights of the first (`[CLS]`) query row, taken before attention dropout — the
//! quantity MuSE ranks tokens by.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};
use crate::dropout::FastDropout;

/// Configuration of [`SelfAttention`].
#[derive(Config, Debug)]
pub struct SelfAttentionConfig {
    pub d_model: usize,
    pub n_heads: usize,
    /// Dropout on the attention weights. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub dropout: Dropout,
    pub n_heads: usize,
}

impl SelfAttentionConfig {
    pub fn init(&self, device: &Device) -> SelfAttention {
        assert_eq!(self.d_model % self.n_heads, 0, "d_model must be divisible by n_heads");
        let lin = || LinearConfig::new(self.d_model, self.d_model).init(device);
        SelfAttention { query: lin(), key: lin(), value: lin(), output: lin(), dropout: DropoutConfig::new(self.dropout).init(), n_heads: self.n_heads }
    }
}

impl SelfAttention {
    /// `x` `[B, L, d]`, `mask` `[B, L]` (true at real tokens) → (output `[B, L, d]`,
    /// head-averaged attention of query 0 over the keys `[B, L]`).
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<2, Bool>) -> (Tensor<3>, Tensor<2>) {
        let [b, l, d] = x.dims();
        let h = self.n_heads;
        let dk = d / h;
        let split = |t: Tensor<3>| t.reshape([b, l, h, dk]).swap_dims(1, 2); // [B, H, L, dk]
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        let scores = q.matmul(k.transpose()).div_scalar((dk as f32).sqrt()); // [B, H, L, L]
        let pad = mask.bool_not().reshape([b, 1, 1, l]).expand([b, h, l, l]);
        let weights = softmax(scores.mask_fill(pad, -1.0e9), 3);
        let cls_row = weights.clone().slice([0..b, 0..h, 0..1, 0..l]).mean_dim(1).reshape([b, l]);
        let ctx = self.dropout.apply(weights).matmul(v).swap_dims(1, 2).reshape([b, l, d]);
        (self.output.forward(ctx), cls_row)
    }
}
