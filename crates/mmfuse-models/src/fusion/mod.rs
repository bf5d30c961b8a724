//! Fusion methods: combine text and image features for a task.
//!
//! - [`concat`]: late fusion by concatenation, plus its text-only and image-only variants —
//!   the baselines every other method is compared with.

pub mod concat;

pub use concat::{ConcatFusion, ConcatFusionConfig, Modality};
