//! Regression scores for the CMU-MOSI / CMU-MOSEI sentiment task (labels in `[-3, 3]`),
//! following the evaluation code shared by MulT, MISA, MMSA and most later papers.
//!
//! * **MAE** — mean absolute error over all samples (no clipping).
//! * **Pearson r** — correlation of predictions and gold over all samples (MMSA's convention);
//!   `0.0` when either side has zero variance (numpy would give NaN). `pearson_non0`: the same
//!   over the samples whose gold is non-zero (MIM's released code).
//! * **Acc-7** — clip both to `[-3, 3]`, round to the nearest integer with **round half to
//!   even** (numpy's `np.round`; `2.5 → 2`, `-0.5 → -0 = 0`, `1.5 → 2`), count exact matches.
//! * **Acc-5** — the same after clipping to `[-2, 2]`.
//! * **Acc-2 / F1 "has0"** — on all samples, negative (`< 0`) vs non-negative (`>= 0`).
//! * **Acc-2 / F1 "non0"** — only on samples whose gold is non-zero, negative vs positive;
//!   the prediction is "positive" iff `pred > 0` (so a prediction of exactly 0 counts as
//!   negative, as in the reference code's `test_preds[non_zeros] > 0`).
//! * The F1 scores are sklearn's `average="weighted"` F1 over the two classes.
//!
//! Rounding is done in `f32` (the labels' precision). Pairs in which either value is not
//! finite are skipped, and if the slices differ in length only the common prefix is scored;
//! [`RegScores::n`] reports how many pairs were used. An empty input gives all-zero scores.

use crate::cls::cls_scores;
use crate::ratio;
use serde::{Deserialize, Serialize};

/// MOSI-style regression scores. All accuracies are fractions in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RegScores {
    /// Mean absolute error.
    pub mae: f64,
    /// Pearson correlation coefficient (0.0 if undefined).
    pub pearson: f64,
    /// 7-class accuracy (clip to [-3, 3], round half to even).
    pub acc7: f64,
    /// 5-class accuracy (clip to [-2, 2], round half to even).
    pub acc5: f64,
    /// Binary accuracy, negative (< 0) vs non-negative (>= 0), all samples.
    pub acc2_has0: f64,
    /// Weighted F1 of the has0 split.
    pub f1_has0: f64,
    /// Binary accuracy, negative vs positive, samples with gold != 0.
    pub acc2_non0: f64,
    /// Weighted F1 of the non0 split.
    pub f1_non0: f64,
    /// Pearson correlation over the samples with gold != 0 (MIM's released code).
    #[serde(default)]
    pub pearson_non0: f64,
    /// Number of (gold, pred) pairs scored (finite pairs in the common prefix).
    pub n: usize,
    /// Number of those pairs with gold != 0 (the non0 subset).
    pub n_non0: usize,
}

/// Clips to `[-bound, bound]` and rounds half to even.
fn class_of(x: f32, bound: f32) -> f32 {
    x.clamp(-bound, bound).round_ties_even()
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    if x.is_empty() {
        return 0.0;
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (da, db) = (a - mx, b - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    let den = (sxx * syy).sqrt();
    if den == 0.0 || !den.is_finite() { 0.0 } else { (sxy / den).clamp(-1.0, 1.0) }
}

/// (accuracy, weighted F1) of two binary label vectors; zeros when empty.
fn binary_acc_f1(gold: &[usize], pred: &[usize]) -> (f64, f64) {
    match cls_scores(gold, pred, 2) {
        Ok(s) => (s.accuracy, s.weighted_f1),
        Err(_) => (0.0, 0.0), // unreachable: equal lengths, labels in {0, 1}
    }
}

/// Computes all MOSI regression scores of `pred` against `gold`. Never panics.
pub fn reg_scores(gold: &[f32], pred: &[f32]) -> RegScores {
    let pairs: Vec<(f32, f32)> = gold.iter().zip(pred).map(|(&g, &p)| (g, p)).filter(|(g, p)| g.is_finite() && p.is_finite()).collect();
    let n = pairs.len();
    if n == 0 {
        return RegScores::default();
    }
    let nf = n as f64;

    let mae = pairs.iter().map(|&(g, p)| (p as f64 - g as f64).abs()).sum::<f64>() / nf;
    let gs: Vec<f64> = pairs.iter().map(|&(g, _)| g as f64).collect();
    let ps: Vec<f64> = pairs.iter().map(|&(_, p)| p as f64).collect();
    let r = pearson(&ps, &gs);

    let acc_k = |bound: f32| {
        let hits = pairs.iter().filter(|&&(g, p)| class_of(g, bound) == class_of(p, bound)).count();
        ratio(hits as f64, nf)
    };

    // has0: 1 = non-negative, 0 = negative.
    let g_has0: Vec<usize> = pairs.iter().map(|&(g, _)| (g >= 0.0) as usize).collect();
    let p_has0: Vec<usize> = pairs.iter().map(|&(_, p)| (p >= 0.0) as usize).collect();
    let (acc2_has0, f1_has0) = binary_acc_f1(&g_has0, &p_has0);

    // non0: gold != 0 only; 1 = positive, 0 = negative.
    let (g_non0, p_non0): (Vec<usize>, Vec<usize>) = pairs.iter().filter(|&&(g, _)| g != 0.0).map(|&(g, p)| ((g > 0.0) as usize, (p > 0.0) as usize)).unzip();
    let (acc2_non0, f1_non0) = binary_acc_f1(&g_non0, &p_non0);

    let (ps0, gs0): (Vec<f64>, Vec<f64>) = pairs.iter().filter(|&&(g, _)| g != 0.0).map(|&(g, p)| (p as f64, g as f64)).unzip();
    let pearson_non0 = pearson(&ps0, &gs0);

    RegScores { mae, pearson: r, pearson_non0, acc7: acc_k(3.0), acc5: acc_k(2.0), acc2_has0, f1_has0, acc2_non0, f1_non0, n, n_non0: g_non0.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn round_half_to_even_classes() {
        assert_eq!(class_of(2.5, 3.0), 2.0);
        assert_eq!(class_of(1.5, 3.0), 2.0);
        assert_eq!(class_of(-0.5, 3.0), 0.0); // -0 == 0
        assert_eq!(class_of(-1.5, 3.0), -2.0);
        assert_eq!(class_of(-2.5, 3.0), -2.0);
        assert_eq!(class_of(0.5, 3.0), 0.0);
        assert_eq!(class_of(3.7, 3.0), 3.0);
        assert_eq!(class_of(-9.0, 3.0), -3.0);
        assert_eq!(class_of(2.6, 2.0), 2.0);
        assert_eq!(class_of(-2.4, 2.0), -2.0);
    }

    #[test]
    fn hand_computed_mosi() {
        // i  gold  pred  |err|  a7 g/p   a5 g/p   has0 g/p  non0 g/p
        // 0  2.5   2.0   0.5    2/2 ✓    2/2 ✓    1/1       1/1
        // 1  0.0  -0.5   0.5    0/0 ✓    0/0 ✓    1/0       (gold 0: skipped)
        // 2 -1.5  -1.0   0.5   -2/-1 ✗  -2/-1 ✗   0/0       0/0
        // 3  3.0   2.4   0.6    3/2 ✗    2/2 ✓    1/1       1/1
        // 4 -2.8   0.6   3.4   -3/1 ✗   -2/1 ✗    0/1       0/1
        // 5  1.0   0.0   1.0    1/0 ✗    1/0 ✗    1/1       1/0 (pred 0 → negative)
        // MAE = (0.5+0.5+0.5+0.6+3.4+1.0)/6 = 6.5/6
        // Acc-7 = 2/6; Acc-5 = 3/6
        // has0: gold [1,1,0,1,0,1] pred [1,0,0,1,1,1]: correct 4/6.
        //   class 1: tp 3, pred 4, gold 4 → F1 6/8 = 0.75
        //   class 0: tp 1, pred 2, gold 2 → F1 0.5
        //   weighted = (4·0.75 + 2·0.5)/6 = 4/6
        // non0 (i = 0,2,3,4,5): gold [1,0,1,0,1] pred [1,0,1,1,0]: correct 3/5.
        //   class 1: tp 2, pred 3, gold 3 → F1 4/6 = 2/3
        //   class 0: tp 1, pred 2, gold 2 → F1 0.5
        //   weighted = (3·2/3 + 2·0.5)/5 = 3/5
        let gold = [2.5f32, 0.0, -1.5, 3.0, -2.8, 1.0];
        let pred = [2.0f32, -0.5, -1.0, 2.4, 0.6, 0.0];
        let s = reg_scores(&gold, &pred);
        assert_eq!((s.n, s.n_non0), (6, 5));
        // (tolerance 1e-6: 2.4, -2.8 and 0.6 are not exact in f32)
        assert!((s.mae - 6.5 / 6.0).abs() < 1e-6, "mae {}", s.mae);
        assert!(close(s.acc7, 2.0 / 6.0));
        assert!(close(s.acc5, 3.0 / 6.0));
        assert!(close(s.acc2_has0, 4.0 / 6.0));
        assert!(close(s.f1_has0, 4.0 / 6.0));
        assert!(close(s.acc2_non0, 0.6));
        assert!(close(s.f1_non0, 0.6));
        // Pearson: mean g = 2.2/6, mean p = 3.5/6; numpy.corrcoef on the same f32 values
        // gives 0.6956866764859447.
        assert!((s.pearson - 0.695_686_676_485_944_7).abs() < 1e-12, "pearson {}", s.pearson);
    }

    #[test]
    fn pearson_non0_ignores_zero_gold() {
        // the zero-gold sample is wildly off: it ruins r over all samples, not over non0
        let s = reg_scores(&[0.0, 1.0, 2.0, -1.0], &[5.0, 1.0, 2.0, -1.0]);
        assert!(close(s.pearson_non0, 1.0), "{}", s.pearson_non0);
        assert!(s.pearson < 0.5, "{}", s.pearson);
    }

    #[test]
    fn pearson_exact_cases() {
        // y = 2x + 1 → r = 1; y = -x → r = -1.
        let s = reg_scores(&[1.0, 2.0, 3.0, 4.0], &[3.0, 5.0, 7.0, 9.0]);
        assert!(close(s.pearson, 1.0));
        let s = reg_scores(&[1.0, 2.0, 3.0], &[-1.0, -2.0, -3.0]);
        assert!(close(s.pearson, -1.0));
        // x = [1,2,3], y = [1,3,2]: mx = my = 2, sxy = (-1)(-1)+0+(1)(0) = 1, sxx = syy = 2
        // → r = 1/2.
        let s = reg_scores(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]);
        assert!(close(s.pearson, 0.5));
        // constant prediction → undefined → 0.0, not NaN
        let s = reg_scores(&[1.0, 2.0, 3.0], &[0.5, 0.5, 0.5]);
        assert_eq!(s.pearson, 0.0);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        assert_eq!(reg_scores(&[], &[]), RegScores::default());
        // NaN / inf pairs are skipped; length mismatch → common prefix.
        let s = reg_scores(&[1.0, f32::NAN, 2.0, -1.0], &[1.0, 0.0, f32::INFINITY]);
        assert_eq!(s.n, 1);
        assert_eq!(s.mae, 0.0);
        assert_eq!(s.acc7, 1.0);
        // all gold zero → non0 subset empty → 0.0
        let s = reg_scores(&[0.0, 0.0], &[0.1, -0.1]);
        assert_eq!((s.n_non0, s.acc2_non0, s.f1_non0), (0, 0.0, 0.0));
        assert!(close(s.acc2_has0, 0.5));
        for v in [s.mae, s.pearson, s.acc7, s.acc5, s.acc2_has0, s.f1_has0] {
            assert!(v.is_finite());
        }
    }
}
