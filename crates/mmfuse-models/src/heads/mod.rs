//! Task heads: map fused features to task outputs, and their losses.
//!
//! - [`mlp`]: an MLP classifier (sequence classification, or per token for tagging).
//! - [`crf`]: a linear-chain CRF over tag sequences (NLL + Viterbi).
//! - [`losses`]: cross-entropy over classes and over scored tokens.
//! - [`scores`]: losses and predictions from task scores (CRF over words or softmax).

pub mod crf;
pub mod losses;
pub mod mlp;
pub mod scores;

pub use crf::{Crf, CrfConfig};
pub use mlp::{MlpHead, MlpHeadConfig};
