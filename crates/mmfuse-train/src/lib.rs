//! Training and evaluation of mmfuse models: run configuration, data preparation into
//! batches, the training loop (AdamW groups, schedule, global-norm clipping, early stopping),
//! atomic checkpoints and resume, and evaluation with the literature's metrics. [`aligned`]
//! holds MIM's runs on word-aligned text/audio/video features (its two-step update is a
//! strategy of the one loop in [`trainer`]).

pub mod aligned;
pub mod checkpoint;
pub mod config;
pub mod evaluate;
pub mod examples;
pub mod hub;
pub mod optim;
pub mod parallel;
pub mod run;
pub mod run_folder;
pub mod teacher;
pub mod trainer;

pub use config::{RunConfig, TaskFamily};
pub use run::{RunSummary, run_training};
pub use trainer::TrainOptions;
