//! The attention softmax, `softmax(scores·scale + key_bias)` over the keys ([`attention_softmax`]).
//!
//! [`attention_softmax`] is `softmax(scores·scale + key_bias)` over the keys. burn-flex's softmax
//! calls a scalar `expf` per element, and the scaling and the bias are two more passes; on the
//! CPU backend one pass per row does all three (same `exp` as above). Under autodiff it is one
//! operation keeping its output `y`, whose backward is one pass per row,
//! `dx = scale·y·(g − Σ g·y)`, instead of burn's six operations and their backwards.

pub(crate) mod backward;
pub(crate) mod forward;

use crate::device::is_cpu;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Tensor};
use forward::softmax_in_place;

/// The key bias of a padding key: with it the key gets weight exactly 0 (`exp` underflows), and
/// a row whose keys are all padding stays finite.
pub const MASK_BIAS: f32 = -1.0e9;

/// `softmax(scores·scale + key_bias, keys)` for `scores` `[B, H, Lq, Lk]` and `key_bias`
/// `[B, Lk]` (added to every head's and query's score of key k; e.g. 0 at real keys and
/// [`MASK_BIAS`] at padding, which then gets weight exactly 0).
/// Fused on the CPU backend without autodiff (see the module docs); burn's ops otherwise.
/// A NaN score makes its whole row NaN.
pub fn attention_softmax(scores: Tensor<4>, scale: f64, key_bias: Tensor<2>) -> Tensor<4> {
    let [b, h, lq, lk] = scores.dims();
    let device = scores.device();
    if !is_cpu(&device) || scores.dtype() != DType::F32 || key_bias.dims() != [b, lk] || lk == 0 || b * h * lq == 0 {
        return softmax_with_burn(scores, scale, key_bias);
    }
    if device.is_autodiff() {
        return backward::trained::<NoCheckpointing>(&scores, scale, &key_bias)
            .or_else(|| backward::trained::<BalancedCheckpointing>(&scores, scale, &key_bias))
            .unwrap_or_else(|| softmax_with_burn(scores, scale, key_bias));
    }
    let (mut data, bias) = (scores.into_data(), key_bias.into_data());
    match (data.as_mut_slice::<f32>(), bias.as_slice::<f32>()) {
        (Ok(x), Ok(bias)) => {
            softmax_in_place(x, bias, scale as f32, h * lq, lk);
            Tensor::from_data(data, &device)
        }
        _ => softmax_with_burn(Tensor::from_data(data, &device), scale, Tensor::from_data(bias, &device)),
    }
}

/// [`attention_softmax`] through burn's ops.
fn softmax_with_burn(scores: Tensor<4>, scale: f64, key_bias: Tensor<2>) -> Tensor<4> {
    let [b, lk] = key_bias.dims();
    softmax(scores.mul_scalar(scale) + key_bias.reshape([b, 1, 1, lk]), 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    #[test]
    fn attention_softmax_matches_burns_ops_with_masked_keys_and_nan() {
        let device = Device::flex();
        let scores = Tensor::<4>::random([3, 2, 5, 37], Distribution::Normal(0.0, 4.0), &device);
        let mut bias = vec![0f32; 3 * 37];
        for k in 30..37 {
            bias[37 + k] = MASK_BIAS; // sample 1: the last 7 keys are padding
        }
        bias[2 * 37] = 0.75; // a lexicon-style bias
        let bias = Tensor::<2>::from_data(TensorData::new(bias, [3, 37]), &device);
        let want = softmax(scores.clone().mul_scalar(0.125) + bias.clone().reshape([3, 1, 1, 37]), 3);
        let got = attention_softmax(scores.clone(), 0.125, bias.clone());
        let diff = (got.clone() - want).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{diff}");
        let v = got.into_data().try_to_vec::<f32>().unwrap();
        for row in v.chunks(37) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let padded = &v[2 * 5 * 37..4 * 5 * 37];
        assert!(padded.chunks(37).all(|r| r[30..].iter().all(|w| *w == 0.0)), "padding gets exactly 0");
        // a NaN score: its row only
        let mut s = scores.into_data().try_to_vec::<f32>().unwrap();
        s[40] = f32::NAN;
        let got = attention_softmax(Tensor::from_data(TensorData::new(s, [3, 2, 5, 37]), &device), 0.125, bias).into_data().try_to_vec::<f32>().unwrap();
        assert!(got[37..74].iter().all(|w| w.is_nan()));
        assert!(got[..37].iter().chain(&got[74..]).all(|w| w.is_finite()));
    }

    #[test]
    fn attention_softmax_gradient_matches_burns_under_autodiff() {
        let ad = Device::flex().autodiff();
        let x = Tensor::<4>::random([3, 2, 5, 37], Distribution::Normal(0.0, 4.0), &Device::flex());
        let mut bias = vec![0f32; 3 * 37];
        for k in 30..37 {
            bias[37 + k] = MASK_BIAS;
        }
        bias[2 * 37] = 0.75;
        let bias = Tensor::<2>::from_data(TensorData::new(bias, [3, 37]), &ad);
        let w = Tensor::<4>::random([3, 2, 5, 37], Distribution::Normal(0.0, 1.0), &ad);
        let grad_of = |ours: bool| {
            let xa = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
            let y = if ours { attention_softmax(xa.clone(), 0.125, bias.clone()) } else { softmax_with_burn(xa.clone(), 0.125, bias.clone()) };
            let value = y.clone().inner();
            let grads = (y * w.clone()).sum().backward();
            (value, xa.grad(&grads).expect("x has a gradient"))
        };
        let ((v0, g0), (v1, g1)) = (grad_of(true), grad_of(false));
        assert!((v0 - v1).abs().max().into_scalar::<f32>() < 1e-6);
        let gd = (g0.clone() - g1).abs().max().into_scalar::<f32>();
        assert!(gd < 1e-6, "gradient differs by {gd}");
        // padding keys get no gradient
        let g = g0.into_data().try_to_vec::<f32>().unwrap();
        assert!(g[2 * 5 * 37..4 * 5 * 37].chunks(37).all(|r| r[30..].iter().all(|v| *v == 0.0)));
    }
}
