//! Evaluation metrics that match the literature's conventions: entity-level NER scores
//! (seqeval strict / conlleval), classification scores, regression scores, and a PNG plot of
//! training curves.
//!
//! * [`ner`] — entity-level precision / recall / F1 over BIO (IOB2) tag sequences, in
//!   seqeval's strict IOB2 mode ([`ChunkMode::Strict`]) or conlleval's lenient chunking
//!   ([`ChunkMode::Conlleval`]), plus the word-piece-level variant used by the MuSE reference.
//! * [`cls`] — accuracy, macro / weighted P/R/F1 and the confusion matrix, following
//!   scikit-learn's conventions (`zero_division=0`).
//! * [`regression`] — the CMU-MOSI sentiment metrics (MAE, Pearson r, Acc-7, Acc-5,
//!   Acc-2 / F1 "has0" and "non0").
//! * [`plot`] — a two-panel PNG of the training loss and the dev metric(s) against the step.
//!
//! No function in this crate panics on bad input: mismatched lengths or out-of-range labels
//! come back as a [`MetricError`], and ratios with a zero denominator are `0.0`, never NaN.
//!
//! What this crate must not do: depend on tensors, models or data formats. It scores plain
//! vectors of predictions against references, each convention named and tested against the
//! reference implementation's numbers.

pub mod cls;
pub mod ner;
pub mod plot;
pub mod regression;

pub use cls::{ClsScores, binary_scores, cls_scores, try_binary_scores};
pub use ner::{ChunkMode, Entity, NerScores, extract_entities, extract_entities_conlleval, extract_entities_with, ner_scores, ner_scores_wordpiece};
pub use plot::{CurvePoint, PlotError, plot_curves};
pub use regression::{RegScores, reg_scores};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Precision, recall and F1 together with the counts they were computed from.
///
/// Conventions (seqeval and scikit-learn with `zero_division=0`): a ratio whose denominator
/// is zero is `0.0`, never NaN — so precision is `0.0` when nothing was predicted, recall is
/// `0.0` when there is no gold item, and F1 is `0.0` when both are zero.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PRF {
    /// `correct / predicted` (0.0 when `predicted == 0`).
    pub precision: f64,
    /// `correct / support` (0.0 when `support == 0`).
    pub recall: f64,
    /// Harmonic mean of precision and recall, `2·correct / (predicted + support)`
    /// (0.0 when that denominator is 0).
    pub f1: f64,
    /// Number of gold items (entities, or samples of the class).
    pub support: usize,
    /// Number of predicted items.
    pub predicted: usize,
    /// Number of predicted items that are correct (true positives).
    pub correct: usize,
}

impl PRF {
    /// Builds the scores from raw counts.
    ///
    /// `correct` should not exceed `predicted` or `support`; if it does the ratios are still
    /// computed (and may exceed 1) rather than panicking.
    pub fn from_counts(correct: usize, predicted: usize, support: usize) -> Self {
        let precision = ratio(correct as f64, predicted as f64);
        let recall = ratio(correct as f64, support as f64);
        // 2PR/(P+R) == 2c/(pred+gold); the count form is exact up to one rounding.
        let f1 = ratio(2.0 * correct as f64, (predicted + support) as f64);
        PRF { precision, recall, f1, support, predicted, correct }
    }
}

/// `num / den`, or `0.0` when `den == 0`.
pub(crate) fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

/// Errors returned by the scoring functions for inputs that cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricError {
    /// Gold and predicted sequences have different lengths.
    ///
    /// `sentence` is the index of the offending sentence for NER scoring, or `None` when the
    /// outer lists (the number of sentences / samples) differ.
    LengthMismatch {
        /// Index of the sentence whose tag sequences differ, if any.
        sentence: Option<usize>,
        /// Length of the gold sequence.
        gold_len: usize,
        /// Length of the predicted sequence.
        pred_len: usize,
    },
    /// A class label is `>= n_classes`.
    LabelOutOfRange {
        /// `"gold"` or `"pred"`.
        which: &'static str,
        /// Position of the label in its slice.
        index: usize,
        /// The offending label.
        label: usize,
        /// The number of classes the labels must be below.
        n_classes: usize,
    },
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricError::LengthMismatch { sentence: Some(i), gold_len, pred_len } => {
                write!(f, "sentence {i}: gold has {gold_len} tags but prediction has {pred_len}")
            }
            MetricError::LengthMismatch { sentence: None, gold_len, pred_len } => {
                write!(f, "length mismatch: gold has {gold_len} items but prediction has {pred_len}")
            }
            MetricError::LabelOutOfRange { which, index, label, n_classes } => {
                write!(f, "{which} label {label} at index {index} is out of range for {n_classes} classes")
            }
        }
    }
}

impl std::error::Error for MetricError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prf_zero_division_is_zero_not_nan() {
        let p = PRF::from_counts(0, 0, 0);
        assert_eq!((p.precision, p.recall, p.f1), (0.0, 0.0, 0.0));
        let p = PRF::from_counts(0, 0, 3);
        assert_eq!((p.precision, p.recall, p.f1), (0.0, 0.0, 0.0));
        let p = PRF::from_counts(0, 2, 0);
        assert_eq!((p.precision, p.recall, p.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn prf_from_counts() {
        // P = 2/3, R = 2/4 = 0.5, F1 = 2*2/(3+4) = 4/7 = 2PR/(P+R) = (2/3)/(7/6) = 4/7
        let p = PRF::from_counts(2, 3, 4);
        assert!((p.precision - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(p.recall, 0.5);
        assert!((p.f1 - 4.0 / 7.0).abs() < 1e-15);
        assert_eq!((p.correct, p.predicted, p.support), (2, 3, 4));
    }

    #[test]
    fn error_messages_name_sentence_and_lengths() {
        let e = MetricError::LengthMismatch { sentence: Some(3), gold_len: 5, pred_len: 4 };
        assert_eq!(e.to_string(), "sentence 3: gold has 5 tags but prediction has 4");
    }
}
