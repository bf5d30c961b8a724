//! The task losses: cross-entropy over classes, and over the scored tokens of a sequence.
//!
//! The L_task of MuSE's objective `L = L_task + α·L_it + β·L_ti` (§4.3 of its reading notes, `shared/seeds/001_*`;
//! cross-entropy per their §5 setup) and the CE(task) of CLFA's `L = α·(L_text + L_image) + β·CE(task)`
//! (shared/METHODS.md §2 "Alignment"); no equation numbers in our sources.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Int, Tensor};

/// Mean cross-entropy of `logits` `[N, C]` against `targets` `[N]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let logp = log_softmax(logits, 1);
    let picked = logp.gather(1, targets.unsqueeze_dim::<2>(1)); // [N, 1]
    picked.mean().neg()
}

/// Mean cross-entropy over the positions where `scored` is true: `logits` `[B, L, C]`,
/// `targets` `[B, L]`. Returns 0 when nothing is scored.
pub fn masked_token_cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>, scored: Tensor<2, Bool>) -> Tensor<1> {
    let [b, l, c] = logits.dims();
    let logp = log_softmax(logits.reshape([b * l, c]), 1);
    let targets = targets.reshape([b * l]).clamp(0, c as i64 - 1);
    let picked = logp.gather(1, targets.unsqueeze_dim::<2>(1)).reshape([b * l]);
    let w = scored.reshape([b * l]).float();
    let n = w.clone().sum().clamp_min(1.0);
    (picked * w).sum().neg() / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn cross_entropy_matches_hand_value() {
        // logits [0, ln 3] -> p = [1/4, 3/4]; target 1 -> -ln(3/4)
        let d = Device::flex();
        let logits = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 3f32.ln()], [1, 2]), &d);
        let t = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &d);
        let v = cross_entropy(logits, t).into_scalar::<f32>();
        assert!((v - (4.0f32 / 3.0).ln()).abs() < 1e-6, "{v}");
    }

    #[test]
    fn token_cross_entropy_skips_unscored_positions() {
        let d = Device::flex();
        // two positions; only the first is scored: uniform over 2 classes -> ln 2
        let logits = Tensor::<3>::from_data(TensorData::new(vec![0.0f32, 0.0, 50.0, -50.0], [1, 2, 2]), &d);
        let t = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 1], [1, 2]), &d);
        let s = Tensor::<2, Bool>::from_data(TensorData::new(vec![true, false], [1, 2]), &d);
        let v = masked_token_cross_entropy(logits, t, s).into_scalar::<f32>();
        assert!((v - 2f32.ln()).abs() < 1e-6, "{v}");
    }
}
