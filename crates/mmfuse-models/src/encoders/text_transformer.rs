//! A small Transformer text encoder trained from scratch (token + learned position embeddings,
//! pre-LN [`TransformerEncoder`] layers): the text side of the baseline models.

use super::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{Bool, Device, Int, Tensor};
use mmfuse_kernels::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig};

/// Configuration of [`TextTransformer`].
#[derive(Config, Debug)]
pub struct TextTransformerConfig {
    /// Vocabulary size (from the run's `tokenizer.json`).
    pub vocab_size: usize,
    /// Hidden size. Default 128.
    #[config(default = 128)]
    pub d_model: usize,
    /// Attention heads. Default 4.
    #[config(default = 4)]
    pub n_heads: usize,
    /// Encoder layers. Default 2.
    #[config(default = 2)]
    pub n_layers: usize,
    /// Feed-forward size. Default 256.
    #[config(default = 256)]
    pub d_ff: usize,
    /// Longest sequence (position embeddings). Default 64.
    #[config(default = 64)]
    pub max_len: usize,
    /// Dropout. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// Token + position embeddings followed by a pre-LN Transformer encoder.
#[derive(Module, Debug)]
pub struct TextTransformer {
    pub token_embedding: Embedding,
    pub position_embedding: Embedding,
    pub embedding_norm: LayerNorm,
    pub dropout: Dropout,
    pub encoder: TransformerEncoder,
    pub final_norm: LayerNorm,
}

impl TextTransformerConfig {
    pub fn init(&self, device: &Device) -> TextTransformer {
        TextTransformer {
            token_embedding: EmbeddingConfig::new(self.vocab_size, self.d_model).init(device),
            position_embedding: EmbeddingConfig::new(self.max_len, self.d_model).init(device),
            embedding_norm: LayerNormConfig::new(self.d_model).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            encoder: TransformerEncoderConfig::new(self.d_model, self.d_ff, self.n_heads, self.n_layers).with_dropout(self.dropout).init(device),
            final_norm: LayerNormConfig::new(self.d_model).init(device),
        }
    }
}

impl TextTransformer {
    /// `ids` `[B, L]`, `mask` `[B, L]` (true at real tokens) → hidden states `[B, L, d]`.
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let [b, l] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device).unsqueeze_dim::<2>(0).repeat_dim(0, b);
        let x = self.token_embedding.forward(ids) + self.position_embedding.forward(positions);
        let x = self.dropout.forward(self.embedding_norm.forward(x));
        let x = self.encoder.forward(x, mask);
        self.final_norm.forward(x)
    }
}
