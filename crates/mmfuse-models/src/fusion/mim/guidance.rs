//! MIM's knowledge guidance (KGS) between the purified and unpurified branches of a modality
//! and between modalities. `L^u_m`, `L^p_m` are the L1 losses of modality `m`'s prediction from
//! its unpurified / purified vector.
//!
//! Paper: MIM, Multimodal Information Modulation (Zeng, Mai, Yan & Hu, IEEE TMM 2023, doi:10.1109/tmm.2023.3293335),
//! its Knowledge Guidance Scheme (KGS), intra- and inter-modal; shared/METHODS.md §3 "KGS" (no section or equation
//! numbers in our sources).
//!
//! - [`intra_modal`]: the better branch teaches the other: if `L^p_m < L^u_m` then
//!   `MSE(sg(ŷ^p_m), ŷ^u_m)` else `MSE(ŷ^p_m, sg(ŷ^u_m))`.
//! - [`kd_weights`]: λ_m = L^p_m / Σ_k L^p_k, α_m = 3·(1/(1+λ_m)) / Σ_k 1/(1+λ_k). The α sum to 3
//!   (the number of modalities); the modality with the lowest purified loss gets the largest.
//! - [`inter_modal`]: the dominant modality `t` (lowest `L^p`) teaches the others over the feature
//!   dimensions of the purified vectors: `0.5·(10·α_t)²·Σ_{k≠t} KL(softmax(sg(p_t)) ‖ softmax(p_k))`
//!   (KL averaged over the batch). With absent modalities (`present`), a segment's KL counts only
//!   where both the teacher and the student modality are there.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, softmax};

/// Intra-modal guidance for one modality from its purified / unpurified predictions `[B]`.
pub fn intra_modal(y_purified: Tensor<1>, y_unpurified: Tensor<1>, purified_better: bool) -> Tensor<1> {
    let d = if purified_better { y_unpurified - y_purified.detach() } else { y_purified - y_unpurified.detach() };
    (d.clone() * d).mean()
}

/// Inter-modal guidance from the purified vectors `[B, d]` of each modality and their purified
/// losses; `scale` is the 10 of the formula; `present` (per modality, 1.0 / 0.0 per segment
/// `[B]`) leaves out the segments where the teacher or the student is absent. Returns the loss and
/// the teacher's index.
pub fn inter_modal(purified: &[Tensor<2>], purified_losses: &[f64], scale: f64, present: Option<&[Tensor<1>]>) -> (Tensor<1>, usize) {
    let alpha = kd_weights(purified_losses);
    let teacher = (0..purified_losses.len()).min_by(|&a, &b| purified_losses[a].total_cmp(&purified_losses[b])).unwrap_or(0);
    let target = purified[teacher].clone().detach();
    let [b, _] = target.dims();
    let p_t = softmax(target.clone(), 1);
    let log_p_t = log_softmax(target, 1);
    let mut total: Option<Tensor<1>> = None;
    for (k, p) in purified.iter().enumerate() {
        if k == teacher {
            continue;
        }
        let rows = p_t.clone() * (log_p_t.clone() - log_softmax(p.clone(), 1));
        let kl = match present {
            None => rows.sum().div_scalar(b as f64),
            Some(pr) => {
                let w = pr[teacher].clone() * pr[k].clone(); // [B]
                (rows.sum_dim(1).reshape([b]) * w).sum().div_scalar(b as f64)
            }
        };
        total = Some(match total {
            Some(t) => t + kl,
            None => kl,
        });
    }
    let w = 0.5 * (scale * alpha[teacher]).powi(2);
    let loss = total.map(|t| t.mul_scalar(w)).unwrap_or_else(|| Tensor::zeros([1], &purified[teacher].device()));
    (loss, teacher)
}

/// The α weights of the purified per-modality losses (any number of modalities; they sum to the
/// number of modalities). Non-finite or all-zero losses give equal weights of 1.
pub fn kd_weights(purified_losses: &[f64]) -> Vec<f64> {
    let n = purified_losses.len() as f64;
    let total: f64 = purified_losses.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return vec![1.0; purified_losses.len()];
    }
    let inv: Vec<f64> = purified_losses.iter().map(|l| 1.0 / (1.0 + l / total)).collect();
    let s: f64 = inv.iter().sum();
    inv.iter().map(|v| n * v / s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_by_hand() {
        // losses 1, 2, 3: λ = 1/6, 2/6, 3/6; 1/(1+λ) = 6/7, 6/8, 6/9
        let w = kd_weights(&[1.0, 2.0, 3.0]);
        let inv = [6.0 / 7.0, 6.0 / 8.0, 6.0 / 9.0];
        let s: f64 = inv.iter().sum();
        for (a, b) in w.iter().zip(inv) {
            assert!((a - 3.0 * b / s).abs() < 1e-12);
        }
        assert!((w.iter().sum::<f64>() - 3.0).abs() < 1e-12);
        assert!(w[0] > w[1] && w[1] > w[2], "the best modality leads: {w:?}");
        assert_eq!(kd_weights(&[0.0, 0.0, 0.0]), vec![1.0; 3]);
        assert_eq!(kd_weights(&[2.0, 2.0, 2.0]), vec![1.0; 3]);
    }

    #[test]
    fn inter_modal_by_hand() {
        use burn::tensor::{Device, TensorData};
        let d = Device::flex();
        let t = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [1, 2]), &d);
        // teacher = modality 1 (lowest loss); p = softmax([0, ln 3]) = (1/4, 3/4)
        let vecs = [t(vec![0.0, 0.0]), t(vec![0.0, 3f32.ln()]), t(vec![0.0, 1f32.ln()])];
        let losses = [2.0, 1.0, 3.0];
        let (loss, teacher) = inter_modal(&vecs, &losses, 10.0, None);
        assert_eq!(teacher, 1);
        let p = [0.25f64, 0.75];
        // both students are uniform: KL = Σ p ln(p / 0.5)
        let kl: f64 = p.iter().map(|q| q * (q / 0.5).ln()).sum();
        let a = kd_weights(&losses)[1];
        let expected = 0.5 * (10.0 * a).powi(2) * 2.0 * kl;
        let got = loss.into_scalar::<f32>() as f64;
        assert!((got - expected).abs() < 1e-4 * expected, "{got} vs {expected}");
    }

    #[test]
    fn intra_modal_stops_the_gradient_of_the_teacher() {
        use burn::tensor::{Device, TensorData};
        let d = Device::flex().autodiff();
        let yp = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &d).require_grad();
        let yu = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.0], [2]), &d).require_grad();
        let l = intra_modal(yp.clone(), yu.clone(), true);
        assert!((l.clone().into_scalar::<f32>() - 2.5).abs() < 1e-6);
        let g = l.backward();
        assert!(yp.grad(&g).is_none_or(|g| g.abs().sum().into_scalar::<f32>() == 0.0), "the teacher gets no gradient");
        let gu = yu.grad(&g).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert_eq!(gu, vec![-1.0, -2.0]); // d/dyu mean((yu − yp)²) = (yu − yp)
    }
}
