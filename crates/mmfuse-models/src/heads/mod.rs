//! Task heads: map fused features to task outputs, and their losses.
//!
//! - [`mlp`]: an MLP classifier (sequence classification, or per token for tagging).

pub mod mlp;

pub use mlp::{MlpHead, MlpHeadConfig};
