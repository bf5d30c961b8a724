//! 2×2 max-pooling with a fused CPU pass for prediction ([`max_pool2d`]).
//!
//! burn-flex pools through a general 3-D kernel that also records the argmax of every window,
//! about 28 ns per output: for MuSE-small's image CNN the three pools cost as much as the
//! three convolutions. For the common 2×2, stride-2 pool on the CPU backend without autodiff
//! (prediction, evaluation) one pass over the f32 data computes the maxima instead (7× faster on
//! a `[1, 32, 64, 64]` input). NaN in a window gives NaN out (as PyTorch).
//!
//! Training (autodiff) keeps burn's pool: routing the gradient through tensor ops (the winner
//! masks of the four window cells) measured 3× slower than burn's pool forward + backward.
//! Other kernels, strides, padding, dilation, `ceil_mode`, devices and dtypes use burn's too.

use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use crate::activation::max_nan;
use crate::device::is_cpu_without_autodiff;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// `pool.forward(x)` for `x` `[B, C, H, W]`, fused on the CPU backend for 2×2/stride-2 pools.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let plain_2x2 = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(pool.padding, PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0));
    let [b, c, h, w] = x.dims();
    let device = x.device();
    if !plain_2x2 || !is_cpu_without_autodiff(&device) || x.dtype() != DType::F32 || h < 2 || w < 2 {
        return pool.forward(x);
    }
    let (ho, wo) = (h / 2, w / 2);
    let input = x.into_data();
    let Ok(src) = input.as_slice::<f32>() else {
        return pool.forward(Tensor::from_data(input, &device));
    };
    let mut out = vec![0f32; b * c * ho * wo];
    // split over the pool in chunks of whole planes of at least ~64K inputs
    let chunk = (65_536 / (h * w)).max(1);
    out.par_chunks_mut(chunk * ho * wo).enumerate().for_each(|(i, o)| {
        for (k, o) in o.chunks_mut(ho * wo).enumerate() {
            let p = i * chunk + k;
            pool_plane(&src[p * h * w..(p + 1) * h * w], w, ho, wo, o);
        }
    });
    Tensor::from_data(TensorData::new(out, [b, c, ho, wo]), &device)
}

/// One `[h, w]` plane (`w` wide, row-major) → its `[ho, wo]` 2×2 maxima.
fn pool_plane(src: &[f32], w: usize, ho: usize, wo: usize, out: &mut [f32]) {
    for i in 0..ho {
        let (r0, r1) = (&src[2 * i * w..2 * i * w + w], &src[(2 * i + 1) * w..(2 * i + 1) * w + w]);
        for (j, o) in out[i * wo..(i + 1) * wo].iter_mut().enumerate() {
            *o = max_nan(max_nan(r0[2 * j], r0[2 * j + 1]), max_nan(r1[2 * j], r1[2 * j + 1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution};

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
    fn autodiff_keeps_burns_pool() {
        let ad = Device::flex().autodiff();
        let x = Tensor::<4>::random([1, 2, 4, 4], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let grads = max_pool2d(&pool(), x.clone()).sum().backward();
        let g = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(g.iter().filter(|v| **v == 1.0).count(), 2 * 4, "one winner per window");
    }
}
