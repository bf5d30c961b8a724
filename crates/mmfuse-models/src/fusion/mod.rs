//! Fusion methods: combine text and image features for a task.
//!
//! - [`concat`]: late fusion by concatenation, plus its text-only and image-only variants —
//!   the baselines every other method is compared with.
//! - [`muse`]: MuSE's components (CrossTransformer with token exchange).

pub mod concat;
pub mod muse;

pub use concat::{ConcatFusion, ConcatFusionConfig, Modality};

use crate::batch::Batch;
use crate::task::{Prediction, TaskKind, TaskModel};
use burn::module::Module;
use burn::tensor::Tensor;

/// Any fusion model mmfuse can train, chosen by `model.method`.
#[derive(Module, Debug)]
pub enum FusionModel {
    /// Late fusion by concatenation (`concat`).
    Concat(ConcatFusion),
    /// MuSE's CrossTransformer exchange (`muse`).
    Muse(muse::Muse),
}

impl TaskModel for FusionModel {
    fn task(&self) -> TaskKind {
        match self {
            FusionModel::Concat(m) => m.task(),
            FusionModel::Muse(m) => m.task(),
        }
    }
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        match self {
            FusionModel::Concat(m) => m.loss(batch),
            FusionModel::Muse(m) => m.loss(batch),
        }
    }
    fn predict(&self, batch: &Batch) -> Prediction {
        match self {
            FusionModel::Concat(m) => m.predict(batch),
            FusionModel::Muse(m) => m.predict(batch),
        }
    }
}
