//! Classification scores with scikit-learn's conventions.
//!
//! * Labels are class indices `0..n_classes`.
//! * Per-class precision / recall / F1 use `zero_division=0`: a class that is never predicted
//!   has precision `0.0`, a class absent from the gold labels has recall `0.0`.
//! * **Macro** averages are the unweighted mean over the classes that occur in the gold *or*
//!   the predicted labels — what `sklearn.metrics.f1_score(y_true, y_pred, average="macro")`
//!   does when `labels` is not given. Classes that occur in neither are listed in
//!   [`ClsScores::per_class`] with all-zero scores but do not dilute the macro averages.
//! * **Weighted** F1 is the support-weighted (gold-count-weighted) mean of the per-class F1
//!   (`average="weighted"`).
//! * Empty input gives all-zero scores rather than NaN.

use crate::{MetricError, PRF, ratio};
use serde::{Deserialize, Serialize};

/// Multi-class classification scores.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClsScores {
    /// Fraction of samples with `pred == gold`.
    pub accuracy: f64,
    /// Unweighted mean of per-class precision over the classes present in gold or pred.
    pub macro_p: f64,
    /// Unweighted mean of per-class recall over the classes present in gold or pred.
    pub macro_r: f64,
    /// Unweighted mean of per-class F1 over the classes present in gold or pred.
    pub macro_f1: f64,
    /// Support-weighted mean of per-class F1.
    pub weighted_f1: f64,
    /// Scores for each class `0..n_classes` (one-vs-rest).
    pub per_class: Vec<PRF>,
    /// `confusion[g][p]` = number of samples with gold class `g` predicted as `p`
    /// (rows gold, columns predicted — sklearn's `confusion_matrix` layout).
    pub confusion: Vec<Vec<usize>>,
}

fn check_labels(which: &'static str, labels: &[usize], n_classes: usize) -> Result<(), MetricError> {
    match labels.iter().position(|&l| l >= n_classes) {
        Some(index) => Err(MetricError::LabelOutOfRange { which, index, label: labels[index], n_classes }),
        None => Ok(()),
    }
}

/// Accuracy, macro and weighted scores, per-class scores and the confusion matrix.
///
/// Errors: [`MetricError::LengthMismatch`] (with `sentence: None`) if `gold` and `pred` differ
/// in length, [`MetricError::LabelOutOfRange`] if a label is `>= n_classes`.
pub fn cls_scores(gold: &[usize], pred: &[usize], n_classes: usize) -> Result<ClsScores, MetricError> {
    if gold.len() != pred.len() {
        return Err(MetricError::LengthMismatch { sentence: None, gold_len: gold.len(), pred_len: pred.len() });
    }
    check_labels("gold", gold, n_classes)?;
    check_labels("pred", pred, n_classes)?;

    let mut confusion = vec![vec![0usize; n_classes]; n_classes];
    for (&g, &p) in gold.iter().zip(pred) {
        confusion[g][p] += 1;
    }
    let per_class: Vec<PRF> = (0..n_classes)
        .map(|c| {
            let correct = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            PRF::from_counts(correct, predicted, support)
        })
        .collect();

    let present: Vec<&PRF> = per_class.iter().filter(|s| s.support > 0 || s.predicted > 0).collect();
    let mean = |f: fn(&PRF) -> f64| ratio(present.iter().map(|s| f(s)).sum(), present.len() as f64);
    let n = gold.len();
    let correct: usize = (0..n_classes).map(|c| confusion[c][c]).sum();
    let weighted_f1 = ratio(per_class.iter().map(|s| s.f1 * s.support as f64).sum(), n as f64);

    Ok(ClsScores {
        accuracy: ratio(correct as f64, n as f64),
        macro_p: mean(|s| s.precision),
        macro_r: mean(|s| s.recall),
        macro_f1: mean(|s| s.f1),
        weighted_f1,
        per_class,
        confusion,
    })
}

/// Precision / recall / F1 of the class `positive` against all others (sklearn's
/// `average="binary", pos_label=positive`).
///
/// This infallible form never panics: if the slices differ in length only their common prefix
/// is scored. Use [`try_binary_scores`] to get an error instead.
pub fn binary_scores(gold: &[usize], pred: &[usize], positive: usize) -> PRF {
    let (mut tp, mut predicted, mut support) = (0, 0, 0);
    for (&g, &p) in gold.iter().zip(pred) {
        let (g, p) = (g == positive, p == positive);
        tp += (g && p) as usize;
        predicted += p as usize;
        support += g as usize;
    }
    PRF::from_counts(tp, predicted, support)
}

/// [`binary_scores`], but returns [`MetricError::LengthMismatch`] if the lengths differ.
pub fn try_binary_scores(gold: &[usize], pred: &[usize], positive: usize) -> Result<PRF, MetricError> {
    if gold.len() != pred.len() {
        return Err(MetricError::LengthMismatch { sentence: None, gold_len: gold.len(), pred_len: pred.len() });
    }
    Ok(binary_scores(gold, pred, positive))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn three_class_hand_computed() {
        // gold: 0 0 0 1 1 2 2 2 2 1
        // pred: 0 1 0 1 2 2 2 0 2 1
        // confusion (rows gold, cols pred):
        //   g0: [2,1,0]   g1: [0,2,1]   g2: [1,0,3]
        // class 0: tp 2, pred 3, gold 3 → P 2/3, R 2/3, F1 2/3
        // class 1: tp 2, pred 3, gold 3 → P 2/3, R 2/3, F1 2/3
        // class 2: tp 3, pred 4, gold 4 → P 3/4, R 3/4, F1 3/4
        // accuracy 7/10
        // macro P = R = F1 = (2/3 + 2/3 + 3/4)/3 = (25/12)/3 = 25/36
        // weighted F1 = (3·2/3 + 3·2/3 + 4·3/4)/10 = (2+2+3)/10 = 0.7
        let gold = [0, 0, 0, 1, 1, 2, 2, 2, 2, 1];
        let pred = [0, 1, 0, 1, 2, 2, 2, 0, 2, 1];
        let s = cls_scores(&gold, &pred, 3).unwrap();
        assert_eq!(s.confusion, vec![vec![2, 1, 0], vec![0, 2, 1], vec![1, 0, 3]]);
        assert!(close(s.accuracy, 0.7));
        assert!(close(s.macro_p, 25.0 / 36.0));
        assert!(close(s.macro_r, 25.0 / 36.0));
        assert!(close(s.macro_f1, 25.0 / 36.0));
        assert!(close(s.weighted_f1, 0.7));
        assert!(close(s.per_class[2].precision, 0.75));
        assert_eq!((s.per_class[2].correct, s.per_class[2].predicted, s.per_class[2].support), (3, 4, 4));
    }

    #[test]
    fn unpredicted_class_and_asymmetric_scores() {
        // gold: 0 0 1 1 1 2
        // pred: 0 0 0 0 1 0
        // class 0: tp 2, pred 5, gold 2 → P 0.4, R 1,   F1 2·2/(5+2) = 4/7
        // class 1: tp 1, pred 1, gold 3 → P 1,   R 1/3, F1 2/(1+3) = 0.5
        // class 2: tp 0, pred 0, gold 1 → P 0 (zero_division=0), R 0, F1 0
        // macro P = (0.4+1+0)/3 = 7/15; macro R = (1+1/3+0)/3 = 4/9;
        // macro F1 = (4/7 + 1/2)/3 = (15/14)/3 = 5/14
        // weighted F1 = (2·4/7 + 3·0.5 + 1·0)/6 = (8/7 + 3/2)/6 = (37/14)/6 = 37/84
        // accuracy = 3/6 = 0.5
        // class 3 (n_classes = 4) occurs nowhere → excluded from the macro means.
        let gold = [0, 0, 1, 1, 1, 2];
        let pred = [0, 0, 0, 0, 1, 0];
        let s = cls_scores(&gold, &pred, 4).unwrap();
        assert!(close(s.accuracy, 0.5));
        assert!(close(s.macro_p, 7.0 / 15.0));
        assert!(close(s.macro_r, 4.0 / 9.0));
        assert!(close(s.macro_f1, 5.0 / 14.0));
        assert!(close(s.weighted_f1, 37.0 / 84.0));
        assert!(close(s.per_class[0].f1, 4.0 / 7.0));
        assert_eq!(s.per_class[2].precision, 0.0);
        assert_eq!(s.per_class[3], PRF::default());
        assert_eq!(s.per_class.len(), 4);
    }

    #[test]
    fn binary() {
        // gold 1 1 0 0 1, pred 1 0 1 0 1, positive 1: tp 2, pred 3, gold 3 → 2/3 each.
        let p = binary_scores(&[1, 1, 0, 0, 1], &[1, 0, 1, 0, 1], 1);
        assert!(close(p.precision, 2.0 / 3.0) && close(p.recall, 2.0 / 3.0));
        assert!(close(p.f1, 2.0 / 3.0));
        // positive 0: tp 1, pred 2, gold 2 → 0.5
        let p = binary_scores(&[1, 1, 0, 0, 1], &[1, 0, 1, 0, 1], 0);
        assert_eq!((p.precision, p.recall, p.f1), (0.5, 0.5, 0.5));
        // never predicted
        let p = binary_scores(&[1, 0], &[0, 0], 1);
        assert_eq!((p.precision, p.recall, p.f1, p.support), (0.0, 0.0, 0.0, 1));
        assert!(try_binary_scores(&[1, 0], &[0], 1).is_err());
        // infallible form scores the common prefix without panicking
        assert_eq!(binary_scores(&[1, 0], &[1], 1).correct, 1);
    }

    #[test]
    fn errors_and_empty() {
        assert_eq!(cls_scores(&[0, 1], &[0], 2).unwrap_err(), MetricError::LengthMismatch { sentence: None, gold_len: 2, pred_len: 1 });
        assert_eq!(cls_scores(&[0, 1], &[0, 5], 2).unwrap_err(), MetricError::LabelOutOfRange { which: "pred", index: 1, label: 5, n_classes: 2 });
        assert!(cls_scores(&[0], &[0], 0).is_err());
        let s = cls_scores(&[], &[], 3).unwrap();
        assert_eq!((s.accuracy, s.macro_p, s.macro_r, s.macro_f1, s.weighted_f1), (0.0, 0.0, 0.0, 0.0, 0.0));
        assert_eq!(s.confusion, vec![vec![0; 3]; 3]);
    }
}
