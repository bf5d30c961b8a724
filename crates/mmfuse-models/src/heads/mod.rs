//! Task heads: map fused features to task outputs, and their losses.
//!
//! - [`mlp`]: an MLP classifier (sequence classification, or per token for tagging).
//! - [`crf`]: a linear-chain CRF over tag sequences (NLL + Viterbi).

pub mod crf;
pub mod mlp;

pub use crf::{Crf, CrfConfig};
pub use mlp::{MlpHead, MlpHeadConfig};
