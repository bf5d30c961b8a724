//! The interface the trainer, the evaluator and the predictor drive: [`TaskModel`].

use crate::batch::Batch;
use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// What a model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TaskKind {
    /// Sequence classification into `n_classes`.
    Classify { n_classes: usize },
    /// Token tagging with `n_tags` tags.
    Tag { n_tags: usize },
}

impl TaskKind {
    pub fn n_outputs(&self) -> usize {
        match self {
            TaskKind::Classify { n_classes } => *n_classes,
            TaskKind::Tag { n_tags } => *n_tags,
        }
    }
}

/// Host-side predictions for one batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// Class probabilities per sample `[B][C]`.
    Classes(Vec<Vec<f32>>),
    /// Predicted tag index per token position `[B][L]` (including `[CLS]`/padding positions;
    /// callers keep the scored ones).
    Tags(Vec<Vec<usize>>),
}

impl Prediction {
    /// From probabilities `[B, C]`.
    pub fn from_probs(p: Tensor<2>) -> Self {
        let [b, c] = p.dims();
        let v = p.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 probabilities");
        Prediction::Classes((0..b).map(|i| v[i * c..(i + 1) * c].to_vec()).collect())
    }

    /// Argmax over the last axis of tag scores `[B, L, T]`.
    pub fn from_tag_scores(scores: Tensor<3>) -> Self {
        let [b, l, _] = scores.dims();
        let idx = scores.argmax(2).reshape([b * l]);
        let v = idx.into_data().convert::<i64>().try_to_vec::<i64>().expect("i64 indices");
        Prediction::Tags((0..b).map(|i| v[i * l..(i + 1) * l].iter().map(|&x| x as usize).collect()).collect())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Prediction::Classes(v) => v.len(),
            Prediction::Tags(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A trainable model for one task. Implemented by every fusion method.
pub trait TaskModel: Module + Sync + 'static {
    /// The task and its output size.
    fn task(&self) -> TaskKind;
    /// Scalar training loss `[1]` of a batch with targets.
    fn loss(&self, batch: &Batch) -> Tensor<1>;
    /// Predictions for a batch (targets ignored).
    fn predict(&self, batch: &Batch) -> Prediction;
    /// Whether padding changes the model's output, so batches must keep the full `max_len`
    /// (MuSE's reference-compatible mode, where padding takes part in attention). Otherwise the
    /// batch builders trim the padding columns every sample of a batch shares.
    fn fixed_length(&self) -> bool {
        false
    }
}
