//! MuSE's attention: the shared [`MaskedAttention`] used as self-attention, which also gives
//! the head-averaged attention weights of the first (`[CLS]`) query row, taken before attention
//! dropout — the quantity MuSE ranks tokens by.
//!
//! Paper: MuSE, "Exchanging-based Multimodal Fusion with Transformer" (arXiv 2309.02190), §4.2 of the MuSE reading
//! notes, `shared/seeds/001_*`: `Attention(Q, K, V) = Softmax(QKᵀ/√d_k)·V`, and each exchange layer picks the θ
//! fraction of tokens with the lowest attention score to cls (no equation numbers in our sources); shared/METHODS.md §1
//! "CrossTransformer", step 2.

use crate::layers::attention::MaskedAttention;
use burn::config::Config;
use burn::tensor::{Bool, Device, Tensor};
use mmfuse_kernels::Dropout;

/// MuSE's self-attention layer: the shared masked attention, the stream attending to itself.
pub type SelfAttention = MaskedAttention;

/// Configuration of [`SelfAttention`].
#[derive(Config, Debug)]
pub struct SelfAttentionConfig {
    pub d_model: usize,
    pub n_heads: usize,
    /// Dropout on the attention weights. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
}

impl SelfAttentionConfig {
    pub fn init(&self, device: &Device) -> SelfAttention {
        MaskedAttention::new(self.d_model, self.n_heads, self.dropout, device)
    }
}

/// `x` `[B, L, d]` attends to itself, `mask` `[B, L]` (true at real tokens), inside a
/// layer's shortcut → (`x + dropout(attention)` `[B, L, d]`, head-averaged attention of query 0
/// over the keys `[B, L]`).
pub fn residual_attention_with_cls(attention: &SelfAttention, x: Tensor<3>, mask: Tensor<2, Bool>, dropout: &Dropout) -> (Tensor<3>, Tensor<2>) {
    let (out, weights) = attention.self_attention_residual(x.clone(), mask, x, dropout, true);
    let weights = weights.expect("weights were asked for");
    let [b, h, _, l] = weights.dims();
    (out, weights.slice([0..b, 0..h, 0..1, 0..l]).mean_dim(1).reshape([b, l]))
}
