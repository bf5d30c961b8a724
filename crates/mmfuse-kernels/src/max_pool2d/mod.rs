//! 2×2 max-pooling with a fused CPU pass for prediction and training ([`max_pool2d`]).
//!
//! burn-flex pools through a general 3-D kernel that also records the argmax of every window,
//! about 28 ns per output: for MuSE-small's image CNN the three pools cost as much as the
//! three convolutions. For the common 2×2, stride-2 pool on the CPU backend one pass over the
//! f32 data computes the maxima instead (7× faster on a `[1, 32, 64, 64]` input).
//!
//! Under autodiff the pass is an operation of burn's autodiff graph
//! ([`cpu_autodiff`](crate::autodiff)) that also keeps, per output, which of its window's
//! four cells won (one byte); the backward adds each output's gradient to that cell. Winners as
//! burn's pool picks them: the first of tied cells, the last NaN (a NaN in a window gives NaN
//! out, as in PyTorch).
//!
//! At prediction a CNN kept channels-last (`[B, H, W, C]`) pools with
//! [`max_pool2d_channels_last`]: the same maxima, each window's four pixels compared `C`
//! contiguous values at a time.
//!
//! Other kernels, strides, padding, dilation, `ceil_mode`, devices and dtypes use burn's pool.

mod backward;
mod forward;

use crate::autodiff::{flex_tensor, from_plain, plain, values};
use crate::device::{is_cpu, is_cpu_without_autodiff};
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{DType, Tensor};
use forward::{pool_maxima, pool_maxima_channels_last};

/// Whether `pool` is a 2×2, stride-2 pool without padding, dilation or `ceil_mode`: the pool
/// the fused passes run.
fn is_plain_2x2(pool: &MaxPool2d) -> bool {
    pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(pool.padding, PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0))
}

/// `pool.forward(x)` for `x` `[B, C, H, W]`, fused on the CPU backend for 2×2/stride-2 pools.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let plain_2x2 = is_plain_2x2(pool);
    let [b, c, h, w] = x.dims();
    let device = x.device();
    if !plain_2x2 || !is_cpu(&device) || x.dtype() != DType::F32 || h < 2 || w < 2 || b * c == 0 {
        return pool.forward(x);
    }
    let out = if device.is_autodiff() {
        backward::trained::<NoCheckpointing>(&x).or_else(|| backward::trained::<BalancedCheckpointing>(&x))
    } else {
        plain(&x).map(|t| {
            let out = pool_maxima(&values(&t), [b, c, h, w]);
            from_plain(flex_tensor(out, [b, c, h / 2, w / 2]))
        })
    };
    out.unwrap_or_else(|| pool.forward(x))
}

/// `pool` over the channels-last map `x` `[B, H, W, C]` → `[B, H/2, W/2, C]`, the maxima of
/// [`max_pool2d`] over the same values in the NCHW layout. `None` where it does not apply (the
/// caller pools NCHW): not a plain 2×2/stride-2 pool, not an f32 tensor of the CPU backend
/// without autodiff, or a side below 2.
pub fn max_pool2d_channels_last(pool: &MaxPool2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    let [b, h, w, c] = x.dims();
    if !is_plain_2x2(pool) || !is_cpu_without_autodiff(&x.device()) || x.dtype() != DType::F32 || h < 2 || w < 2 || b * c == 0 {
        return None;
    }
    let out = pool_maxima_channels_last(&values(&plain(x)?), [b, h, w, c]);
    Some(from_plain(flex_tensor(out, [b, h / 2, w / 2, c])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    fn pool() -> MaxPool2d {
        MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()
    }

    #[test]
    fn matches_burn_on_odd_sizes_with_ties_and_nan() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 7, 9], Distribution::Normal(0.0, 1.0), &device);
        let diff = (max_pool2d(&pool(), x.clone()) - pool().forward(x)).abs().max().into_scalar::<f32>();
        assert_eq!(diff, 0.0);
        // a hand case: ties take the first cell, NaN wins its window
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 5.0, 2.0, f32::NAN, 5.0, 0.0, -1.0, 3.0], [1, 1, 2, 4]), &device);
        let y = max_pool2d(&pool(), x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y[0], 5.0);
        assert!(y[1].is_nan());
    }

    #[test]
    fn channels_last_matches_the_nchw_pass_on_odd_sizes_with_ties_and_nan() {
        let device = Device::flex();
        // odd sides (a last row and column outside every window), ties after the ReLU, a NaN
        let mut v = Tensor::<4>::random([3, 5, 7, 9], Distribution::Normal(-0.5, 1.0), &device).clamp_min(0.0).into_data().try_to_vec::<f32>().unwrap();
        v[2 * 63 + 9 + 3] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(v, [3, 5, 7, 9]), &device);
        let nchw = max_pool2d(&pool(), x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let cl = max_pool2d_channels_last(&pool(), &x.clone().permute([0, 2, 3, 1])).expect("applies");
        assert_eq!(cl.dims(), [3, 3, 4, 5]);
        let cl = cl.permute([0, 3, 1, 2]).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(nchw.len(), cl.len());
        assert_eq!(nchw.iter().filter(|v| v.is_nan()).count(), 1);
        for (i, (a, b)) in nchw.iter().zip(&cl).enumerate() {
            assert!(a.to_bits() == b.to_bits(), "output {i}: {a} vs {b}");
        }
        // where it does not apply
        assert!(max_pool2d_channels_last(&MaxPool2dConfig::new([3, 3]).init(), &x).is_none());
        assert!(max_pool2d_channels_last(&pool(), &Tensor::<4>::zeros([1, 1, 4, 2], &device)).is_none());
        assert!(max_pool2d_channels_last(&pool(), &Tensor::<4>::zeros([1, 4, 4, 2], &Device::flex().autodiff())).is_none());
    }

    #[test]
    fn gradients_match_burns_under_autodiff_with_ties_and_nan() {
        let ad = Device::flex().autodiff();
        // odd sizes (a last row and column outside every window), and ties: after a ReLU most
        // windows of a shifted normal hold several zeros
        let x = Tensor::<4>::random([2, 3, 7, 9], Distribution::Normal(-0.5, 1.0), &ad).clamp_min(0.0);
        let r = Tensor::<4>::random([2, 3, 3, 4], Distribution::Normal(0.0, 1.0), &ad);
        let grad_of = |ours: bool| {
            let x = x.clone().detach().require_grad();
            let y = if ours { max_pool2d(&pool(), x.clone()) } else { pool().forward(x.clone()) };
            let g = (y.clone() * r.clone()).sum().backward();
            (y.inner().into_data().try_to_vec::<f32>().unwrap(), x.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap())
        };
        let ((y0, g0), (y1, g1)) = (grad_of(true), grad_of(false));
        assert_eq!(y0, y1);
        assert_eq!(g0, g1);
        let zeros = g0.iter().filter(|v| **v == 0.0).count();
        assert_eq!(zeros, 2 * 3 * (7 * 9 - 3 * 4), "one cell per window gets the gradient");
        // a NaN wins its window, the last of two NaN takes the gradient (burn's rule)
        let v = vec![1.0f32, f32::NAN, 2.0, 3.0, f32::NAN, 0.0, 1.0, 1.0];
        let x = Tensor::<4>::from_data(TensorData::new(v, [1, 1, 2, 4]), &ad).require_grad();
        let y = max_pool2d(&pool(), x.clone());
        let g = y.clone().sum().backward();
        let y = y.into_data().try_to_vec::<f32>().unwrap();
        assert!(y[0].is_nan());
        assert_eq!(y[1], 3.0);
        assert_eq!(x.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap(), vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    }
}
