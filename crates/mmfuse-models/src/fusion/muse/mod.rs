//! MuSE — exchanging-based multimodal fusion with regularising decoders (2023,
//! <https://arxiv.org/abs/2309.02190>). One file per component:
//!
//! - [`attention`]: the shared masked attention as self-attention, with the head-averaged
//!   attention each token receives from `[CLS]` (the exchange criterion);
//! - [`cross_transformer`]: the CrossTransformer — layers whose weights are shared by the text
//!   and image streams, with token exchange in layers `exchange_start_layer..=exchange_end_layer`;
//! - [`pixelcnn`]: the text→image regulariser, a conditional PixelCNN++ with its discretised
//!   logistic-mixture loss;
//! - [`captioning`]: the image→text regulariser, a Show-Attend-Tell LSTM captioning decoder.
//!
//! The full model is tracked in the MuSE issue.
//!
//! Paper: "Exchanging-based Multimodal Fusion with Transformer" (arXiv 2309.02190). Section and equation numbers here
//! and in the component files are those of the MuSE reading notes (`shared/seeds/001_*`): §4.1 encoders and the two
//! regularising decoders, eqs. (5)–(6); §4.2 CrossTransformer exchange; §4.3 objective `L = L_task + α·L_it + β·L_ti`.
//! Implementation spec: shared/METHODS.md §1.

pub mod attention;
pub mod captioning;
pub mod cross_transformer;
pub mod model;
pub mod pixelcnn;

pub use attention::{SelfAttention, SelfAttentionConfig, residual_attention_with_cls};
pub use captioning::{CaptionDecoder, CaptionDecoderConfig, CaptionOutput};
pub use cross_transformer::{CrossTransformer, CrossTransformerConfig, exchange};
pub use model::{Muse, MuseConfig};
pub use pixelcnn::{PixelCnnPp, PixelCnnPpConfig, bits_per_dim, discretized_mix_logistic_loss};
