//! Masked pooling over a sequence.

use burn::tensor::{Bool, Tensor};

/// Mean over the sequence axis of `x` `[B, L, D]` at positions where `mask` `[B, L]` is true.
/// Rows with no true position give zeros (no division by zero).
pub fn masked_mean(x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
    let m = mask.float().unsqueeze_dim::<3>(2); // [B, L, 1]
    let sum = (x * m.clone()).sum_dim(1).squeeze_dim::<2>(1); // [B, D]
    let count = m.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1.0); // [B, 1]
    sum / count
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn masked_mean_ignores_padding() {
        let d = Device::flex();
        let x = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 100.0, 100.0, 5.0, 6.0, 0.0, 0.0, 0.0, 0.0], [2, 3, 2]), &d);
        let m = Tensor::<2, Bool>::from_data(TensorData::new(vec![true, true, false, true, false, false], [2, 3]), &d);
        let got = masked_mean(x, m).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got, vec![2.0, 3.0, 5.0, 6.0]);
    }
}
