//! Training and evaluation of mmfuse models: run configuration, data preparation into
//! batches, the training loop (AdamW groups, schedule, global-norm clipping, early stopping),
//! atomic checkpoints and resume, and evaluation with the literature's metrics. [`aligned`]
//! holds MIM's runs on word-aligned text/audio/video features (its two-step update is a
//! strategy of the one loop in [`trainer`]).
//!
//! Modules: [`config`] (the run configuration; `[data]` and `[model]` are owned by
//! mmfuse-data and mmfuse-models), [`run`] (a whole run of a post model), [`batches`]
//! (samples → examples → batches), [`trainer`] (the one loop and the post models' update),
//! [`aligned`] (MIM's runs), [`checkpoint`], [`optim`] (AdamW groups, schedule, clipping,
//! freezing), [`parallel`] (data parallelism), [`evaluate`], [`teacher`] (CLFA's CLIP cache),
//! [`hub`] (Hugging Face cache lookup), [`run_folder`] (what both kinds of run write), [`sweep`] (several seeds, mean ± std),
//! [`robustness`] (a run scored with modalities removed and corrupted).
//!
//! What this crate must not do: define model architectures (mmfuse-models), read data formats
//! (mmfuse-data), or be needed to predict (mmfuse-predict reads a run folder without it).

pub mod aligned;
pub mod batches;
pub mod checkpoint;
pub mod config;
pub mod evaluate;
pub mod hub;
pub mod optim;
pub mod parallel;
pub mod robustness;
pub mod run;
pub mod run_folder;
pub mod sweep;
pub mod teacher;
pub mod trainer;

pub use config::{RunConfig, TaskFamily};
pub use run::{RunSummary, run_training};
pub use trainer::{Progress, ProgressHook, TrainOptions};
