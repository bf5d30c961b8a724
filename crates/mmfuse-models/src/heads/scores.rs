//! From task scores to losses and predictions, shared by every model: classification by
//! softmax cross-entropy; tagging by a CRF over the words' first pieces when the model has one,
//! else per-token softmax cross-entropy over the scored positions.
//!
//! This is L_task in MuSE's objective `L = L_task + α·L_it + β·L_ti` (§4.3 of its reading notes, `shared/seeds/001_*`),
//! with the CRF for MNER (§5.1) and cross-entropy for MSA (shared/METHODS.md §1 "Heads"); no equation numbers in our
//! sources.

use crate::batch::{Batch, Targets};
use crate::heads::Crf;
use crate::heads::losses::{cross_entropy, masked_token_cross_entropy};
use crate::task::{Prediction, TaskKind};
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor};

/// Emissions and tags at the words' first pieces, left-aligned: `scores` `[B, L, T]`, `tags`
/// `[B, L]`, `positions` `[B, L]` → `[B, L, T]`, `[B, L]`.
pub fn gather_words(scores: Tensor<3>, tags: Tensor<2, Int>, positions: Tensor<2, Int>) -> (Tensor<3>, Tensor<2, Int>) {
    let [b, l, t] = scores.dims();
    let idx = positions.clone().unsqueeze_dim::<3>(2).expand([b, l, t]);
    (scores.gather(1, idx), tags.gather(1, positions))
}

/// Training loss of tag scores `[B, L, T]` against the batch's tags.
pub fn tagging_loss(crf: Option<&Crf>, scores: Tensor<3>, batch: &Batch) -> Tensor<1> {
    let Targets::Tags { tags, scored } = &batch.targets else { panic!("a tagging loss needs tag targets") };
    match (crf, &batch.words) {
        (Some(crf), Some((pos, wmask))) => {
            let (emissions, word_tags) = gather_words(scores, tags.clone(), pos.clone());
            crf.nll(emissions, word_tags, wmask.clone())
        }
        (Some(_), None) => panic!("a CRF tagger needs the batch's word positions"),
        (None, _) => masked_token_cross_entropy(scores, tags.clone(), scored.clone()),
    }
}

/// Predicted tag per position `[B][L]` (Viterbi over words with a CRF, else argmax).
pub fn tagging_predict(crf: Option<&Crf>, scores: Tensor<3>, batch: &Batch) -> Prediction {
    match (crf, &batch.words) {
        (Some(crf), Some((pos, wmask))) => {
            let [b, l, _] = scores.dims();
            let (emissions, _) = gather_words(scores, Tensor::zeros([b, l], &pos.device()), pos.clone());
            let paths = crf.decode(emissions, wmask.clone());
            let pos = pos.clone().into_data().convert::<i64>().try_to_vec::<i64>().expect("i64 positions");
            let rows = paths
                .into_iter()
                .enumerate()
                .map(|(i, path)| {
                    let mut row = vec![0usize; l];
                    for (k, t) in path.into_iter().enumerate() {
                        row[pos[i * l + k] as usize] = t;
                    }
                    row
                })
                .collect();
            Prediction::Tags(rows)
        }
        _ => Prediction::from_tag_scores(scores),
    }
}

/// Training loss of a model's scores (`[B, 1, C]` for classification, `[B, L, T]` for tagging).
pub fn task_loss(crf: Option<&Crf>, scores: Tensor<3>, batch: &Batch) -> Tensor<1> {
    match &batch.targets {
        Targets::Class(y) => cross_entropy(scores.squeeze_dim::<2>(1), y.clone()),
        Targets::Tags { .. } => tagging_loss(crf, scores, batch),
        Targets::None => panic!("loss needs a batch with targets"),
    }
}

/// Predictions from a model's scores.
pub fn task_predict(task: TaskKind, crf: Option<&Crf>, scores: Tensor<3>, batch: &Batch) -> Prediction {
    match task {
        TaskKind::Classify { .. } => Prediction::from_probs(softmax(scores.squeeze_dim::<2>(1), 1)),
        TaskKind::Tag { .. } => tagging_predict(crf, scores, batch),
    }
}
