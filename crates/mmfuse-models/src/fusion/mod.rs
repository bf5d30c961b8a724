//! Fusion methods: combine text and image features for a task.
//!
//! - [`concat`]: late fusion by concatenation, plus its text-only and image-only variants —
//!   the baselines every other method is compared with.
//! - [`muse`]: MuSE's components (CrossTransformer with token exchange).
//! - [`clfa`]: CLFA (CLIP-guided contrastive feature alignment + cross encoder).
//! - [`mim`]: MIM (purification gates and knowledge guidance on word-aligned text/audio/video).

pub mod clfa;
pub mod concat;
pub mod mim;
pub mod muse;

pub use concat::{ConcatFusion, ConcatFusionConfig, Modality};

use crate::batch::Batch;
use crate::encoders::TextEncoder;
use crate::task::{Prediction, TaskKind, TaskModel};
use burn::module::Module;
use burn::tensor::Tensor;

/// Any fusion model mmfuse can train, chosen by `model.method`.
// one per run or server: the variants' sizes do not matter, and boxing them would change the
// module's record layout for nothing
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FusionModel {
    /// Late fusion by concatenation (`concat`).
    Concat(ConcatFusion),
    /// MuSE's CrossTransformer exchange (`muse`).
    Muse(muse::Muse),
    /// CLFA's CLIP-guided alignment and cross-attention fusion (`clfa`).
    Clfa(clfa::Clfa),
}

impl FusionModel {
    /// Replace the text encoder (e.g. by pretrained weights); models that see no text keep none.
    pub fn set_text_encoder(&mut self, text: TextEncoder) {
        match self {
            FusionModel::Concat(m) => {
                if m.text.is_some() {
                    m.text = Some(text);
                }
            }
            FusionModel::Muse(m) => m.text = text,
            FusionModel::Clfa(m) => m.text = text,
        }
    }
}

impl FusionModel {
    /// Replace the image encoder (e.g. by pretrained weights); models that see no image keep none.
    pub fn set_image_encoder(&mut self, image: crate::encoders::ImageEncoder) {
        match self {
            FusionModel::Concat(m) => {
                if m.image.is_some() {
                    m.image = Some(image);
                }
            }
            FusionModel::Muse(m) => m.image = image,
            FusionModel::Clfa(m) => m.image = image,
        }
    }
}

impl TaskModel for FusionModel {
    fn task(&self) -> TaskKind {
        match self {
            FusionModel::Concat(m) => m.task(),
            FusionModel::Muse(m) => m.task(),
            FusionModel::Clfa(m) => m.task(),
        }
    }
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        match self {
            FusionModel::Concat(m) => m.loss(batch),
            FusionModel::Muse(m) => m.loss(batch),
            FusionModel::Clfa(m) => m.loss(batch),
        }
    }
    fn predict(&self, batch: &Batch) -> Prediction {
        match self {
            FusionModel::Concat(m) => m.predict(batch),
            FusionModel::Muse(m) => m.predict(batch),
            FusionModel::Clfa(m) => m.predict(batch),
        }
    }
    fn fixed_length(&self) -> bool {
        match self {
            FusionModel::Concat(m) => m.fixed_length(),
            FusionModel::Muse(m) => m.fixed_length(),
            FusionModel::Clfa(m) => m.fixed_length(),
        }
    }
}
