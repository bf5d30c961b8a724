//! Small tensor helpers shared by the models: masked pooling, masked losses, and `Linear`
//! layers applied to all of a batch's tokens at once.

use burn::nn::Linear;
use burn::tensor::activation::log_softmax;
use crate::device::is_cpu;
use burn::tensor::{Bool, DType, Int, Tensor};

/// A [`Linear`] layer applied to `x` `[..., d_in]` as ONE `[rows, d_in] × [d_in, d_out]` matmul
/// over all leading positions (batch × tokens), whatever their count; under autodiff on the CPU
/// as one operation with the bias fused ([`linear`](crate::linear)).
///
/// `Linear::forward` on a `[B, L, d]` input keeps the batch axis when `L` is a multiple of 32
/// (burn's matmul tiling policy): the CPU backend then runs B separate `[L, d_in]` products and
/// re-packs the weight for each of them. For the token sequences of our models (64 tokens) that
/// is most of the cost of the packing, so the layers that run on every token use this instead.
pub trait LinearRows {
    fn forward_rows<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>;
}

impl LinearRows for Linear {
    fn forward_rows<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        let trained = device.is_autodiff() && is_cpu(&device) && x.dtype() == DType::F32;
        if D < 2 || (D == 2 && !trained) {
            return self.forward(x);
        }
        let dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let x = x.reshape([rows, d_in]);
        // under autodiff on the CPU: one operation (crate::linear)
        let y = match trained.then(|| crate::linear::linear_rows_trained(self, &x)).flatten() {
            Some(y) => y,
            None => self.forward(x),
        };
        let mut out = dims;
        out[D - 1] = y.dims()[1];
        y.reshape(out)
    }
}

/// Mean over the sequence axis of `x` `[B, L, D]` at positions where `mask` `[B, L]` is true.
/// Rows with no true position give zeros (no division by zero).
pub fn masked_mean(x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
    let m = mask.float().unsqueeze_dim::<3>(2); // [B, L, 1]
    let sum = (x * m.clone()).sum_dim(1).squeeze_dim::<2>(1); // [B, D]
    let count = m.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1.0); // [B, 1]
    sum / count
}

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
    fn forward_rows_equals_forward() {
        use burn::nn::LinearConfig;
        use burn::tensor::Distribution;
        let d = Device::flex();
        let lin = LinearConfig::new(8, 5).init(&d);
        let x = Tensor::<3>::random([3, 64, 8], Distribution::Normal(0.0, 1.0), &d);
        let a = lin.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let y = lin.forward_rows(x);
        assert_eq!(y.dims(), [3, 64, 5]);
        let b = y.into_data().try_to_vec::<f32>().unwrap();
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-5, "{u} vs {v}");
        }
    }

    #[test]
    fn masked_mean_ignores_padding() {
        let d = Device::flex();
        let x = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 100.0, 100.0, 5.0, 6.0, 0.0, 0.0, 0.0, 0.0], [2, 3, 2]), &d);
        let m = Tensor::<2, Bool>::from_data(TensorData::new(vec![true, true, false, true, false, false], [2, 3]), &d);
        let got = masked_mean(x, m).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got, vec![2.0, 3.0, 5.0, 6.0]);
    }

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
