//! Fusion methods: combine text and image features for a task.
//!
//! - [`concat`]: late fusion by concatenation, plus its text-only and image-only variants —
//!   the baselines every other method is compared with.
//! - [`muse`]: MuSE's components (CrossTransformer with token exchange).

pub mod concat;
pub mod muse;

pub use concat::{ConcatFusion, ConcatFusionConfig, Modality};
