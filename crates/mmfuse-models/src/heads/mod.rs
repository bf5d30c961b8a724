//! Task heads: map fused features to task outputs, and their losses.
//!
//! - [`mlp`]: an MLP classifier (sequence classification, or per token for tagging).
//! - [`crf`]: a linear-chain CRF over tag sequences (NLL + Viterbi).
//! - [`tagging`]: tagging loss and decoding (CRF over words, or per-token softmax).

pub mod crf;
pub mod mlp;
pub mod tagging;

pub use crf::{Crf, CrfConfig};
pub use mlp::{MlpHead, MlpHeadConfig};
