//! MuSE — exchanging-based multimodal fusion with regularising decoders (Lu et al., 2023,
//! <https://arxiv.org/abs/2309.02190>). One file per component:
//!
//! - [`attention`]: multi-head self-attention that also returns the head-averaged attention
//!   each token receives from `[CLS]` (the exchange criterion);
//! - [`cross_transformer`]: the CrossTransformer — layers whose weights are shared by the text
//!   and image streams, with token exchange in layers `exchange_start_layer..=exchange_end_layer`.
//!
//! The regularising decoders and the full model are tracked in the MuSE issue.

pub mod attention;
pub mod cross_transformer;
pub mod model;

pub use attention::{SelfAttention, SelfAttentionConfig};
pub use cross_transformer::{CrossTransformer, CrossTransformerConfig, exchange};
pub use model::{Muse, MuseConfig};
