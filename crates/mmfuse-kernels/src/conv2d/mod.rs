//! 3×3 convolution (stride 1, padding 1) with a CPU pass for prediction and training
//! ([`conv2d`]).
//!
//! burn-flex convolves by im2col in tiles of 512 output positions: a scalar gather of every
//! patch element, a matmul per tile, then a scatter of the tile's result into NCHW with a stride
//! of a whole plane per value. On MuSE-small's image CNN at batch 1 that bookkeeping took about
//! 45 % of the encoder's time and the matmuls 20 % (`perf`, one thread); in a training step the
//! convolutions' forward and backward took 19 % of the time.
//!
//! Here each sample is done in bands of output rows. A band's columns are laid out as
//! `[C·9, rows·W]`, one row per (input channel, kernel cell), each the input plane shifted by
//! the cell's offset: contiguous row copies with zero borders, small enough to stay in cache.
//! One `gemm` call then multiplies `weight [C_out, C·9]` by them and adds the result straight
//! into the band's place in the NCHW output (row stride `H·W`), on top of the bias. Samples run
//! in parallel; a single sample lets gemm split the matmul instead.
//!
//! Under autodiff the pass is an operation of burn's autodiff graph with its own backward
//! ([`cpu_autodiff`](crate::autodiff)), built from the same pieces: the input gradient is
//! the same convolution of the output gradient with the weight flipped and its channels swapped,
//! the weight gradient one `gemm` per band of the output gradient by the band's columns, the
//! bias gradient a sum.
//!
//! It applies on the CPU backend to f32 tensors, reading burn-flex's buffers in place (an earlier
//! form copied the weight to the host on every call and lost to burn's convolution for many
//! channels over a small plane; without the copy, 512 channels over 7×7 at batch 1 take 1.3 ms
//! against burn's 2.9 on one thread). Other devices and dtypes, and any other kernel, stride,
//! dilation, padding or grouping use burn's convolution.

mod backward;
pub(crate) mod forward;

use crate::autodiff::{from_plain, plain};
use crate::device::is_cpu;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor};

/// `conv.forward(x)` for `x` `[B, C, H, W]`: the pass above for 3×3 / stride 1 / padding 1 on
/// the CPU backend, burn's convolution otherwise.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let plain_3x3 = conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Same | PaddingConfig2d::Explicit(1, 1, 1, 1));
    let device = x.device();
    let dims = x.dims();
    if !plain_3x3 || !is_cpu(&device) || x.dtype() != DType::F32 || dims.contains(&0) {
        return conv.forward(x);
    }
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    let out = if device.is_autodiff() {
        backward::trained::<NoCheckpointing>(&x, &weight, bias.as_ref()).or_else(|| backward::trained::<BalancedCheckpointing>(&x, &weight, bias.as_ref()))
    } else {
        predicted(&x, &weight, bias.as_ref())
    };
    out.unwrap_or_else(|| conv.forward(x))
}

/// The pass without autodiff, if all three tensors are the CPU backend's f32 ones.
fn predicted(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>) -> Option<Tensor<4>> {
    let (x, weight) = (plain(x)?, plain(weight)?);
    let bias = match bias {
        Some(b) => Some(plain(b)?),
        None => None,
    };
    Some(from_plain(forward::forward(&x, &weight, bias.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    fn conv(c_in: usize, c_out: usize, bias: bool, padding: PaddingConfig2d, device: &Device) -> Conv2d {
        Conv2dConfig::new([c_in, c_out], [3, 3]).with_padding(padding).with_bias(bias).init(device)
    }

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn matches_burn_on_odd_sizes_with_and_without_bias() {
        let device = Device::flex();
        for (shape, bias, padding) in [
            ([2, 3, 7, 9], true, PaddingConfig2d::Same),
            ([1, 5, 1, 4], false, PaddingConfig2d::Explicit(1, 1, 1, 1)),
            ([3, 4, 6, 1], true, PaddingConfig2d::Same),
            ([1, 1, 1, 1], true, PaddingConfig2d::Same),
        ] {
            let k = conv(shape[1], 6, bias, padding.clone(), &device);
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let diff = max_diff(conv2d(&k, x.clone()), k.forward(x));
            assert!(diff < 1e-5, "{shape:?}: {diff}");
        }
    }

    #[test]
    fn a_batch_in_bands_with_a_short_last_band() {
        let device = Device::flex();
        // 9 · 16 rows × 40 wide = 5760 values per output row: bands of 11, 11 and 3 rows
        let k = conv(16, 8, true, PaddingConfig2d::Same, &device);
        let x = Tensor::<4>::random([3, 16, 25, 40], Distribution::Normal(0.0, 1.0), &device);
        assert!(max_diff(conv2d(&k, x.clone()), k.forward(x)) < 1e-4);
        // one sample, bands of the fewest rows that give 256 columns: 3, 3 and 1
        let k = conv(80, 4, false, PaddingConfig2d::Same, &device);
        let x = Tensor::<4>::random([1, 80, 7, 100], Distribution::Normal(0.0, 1.0), &device);
        assert!(max_diff(conv2d(&k, x.clone()), k.forward(x)) < 1e-4);
    }

    #[test]
    fn a_hand_computed_case_and_nan() {
        let device = Device::flex();
        let mut k = conv(1, 1, false, PaddingConfig2d::Same, &device);
        // weight: 1 at the centre, 10 at the right neighbour (kh 1, kw 2)
        let mut wv = vec![0f32; 9];
        wv[4] = 1.0;
        wv[5] = 10.0;
        k.weight = burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(wv, [1, 1, 3, 3]), &device));
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 1, 2, 3]), &device);
        let y = conv2d(&k, x).into_data().try_to_vec::<f32>().unwrap();
        // y[i][j] = x[i][j] + 10·x[i][j+1], zero past the right edge
        assert_eq!(y, vec![21.0, 32.0, 3.0, 54.0, 65.0, 6.0]);
        // a NaN reaches every output whose 3×3 window holds it (0 · NaN is NaN), as in burn's
        let mut xv = vec![1.0f32; 15];
        xv[0] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(xv, [1, 1, 3, 5]), &device);
        let ours = conv2d(&k, x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let burns = k.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let nan_at = |v: &[f32]| v.iter().enumerate().filter(|(_, y)| y.is_nan()).map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(nan_at(&ours), vec![0, 1, 5, 6]);
        assert_eq!(nan_at(&ours), nan_at(&burns));
    }

    /// Output, input, weight and bias gradients of `ours` and burn's convolution under autodiff
    /// for a loss `Σ y · r` with a fixed random `r`: the largest differences.
    fn gradient_diffs(k: &Conv2d, shape: [usize; 4]) -> [f32; 4] {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let c_out = k.weight.dims()[0];
        let r = Tensor::<4>::random([shape[0], c_out, shape[2], shape[3]], Distribution::Normal(0.0, 1.0), &device);
        let run = |ours: bool| {
            let x = x.clone().require_grad();
            let y = if ours { conv2d(k, x.clone()) } else { k.forward(x.clone()) };
            let g = (y.clone() * r.clone()).sum().backward();
            let gb = k.bias.as_ref().map(|b| b.grad(&g).expect("bias gradient").into_data());
            (y.inner(), x.grad(&g).expect("input gradient"), k.weight.grad(&g).expect("weight gradient"), gb)
        };
        let (y0, gx0, gw0, gb0) = run(true);
        let (y1, gx1, gw1, gb1) = run(false);
        let gb = match (gb0, gb1) {
            (Some(a), Some(b)) => {
                let (a, b) = (a.try_to_vec::<f32>().unwrap(), b.try_to_vec::<f32>().unwrap());
                a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
            }
            (None, None) => 0.0,
            _ => f32::INFINITY,
        };
        let rel = |a: Tensor<4>, b: Tensor<4>| max_diff(a, b.clone()) / b.abs().max().into_scalar::<f32>().max(1.0);
        [rel(y0, y1), rel(gx0, gx1), rel(gw0, gw1), gb]
    }

    #[test]
    fn gradients_match_burns_under_autodiff() {
        let device = Device::flex().autodiff();
        for (shape, c_out, bias) in [
            ([2, 3, 7, 9], 6, true),
            ([1, 5, 1, 4], 2, false),
            ([3, 16, 25, 40], 8, true),  // bands of 11, 11 and 3 rows, three samples
            ([1, 80, 7, 100], 4, false), // one sample in bands of 3, 3 and 1 rows
        ] {
            let k = Conv2dConfig::new([shape[1], c_out], [3, 3]).with_padding(PaddingConfig2d::Same).with_bias(bias).init(&device);
            let [y, gx, gw, gb] = gradient_diffs(&k, shape);
            assert!(y < 1e-5 && gx < 1e-5 && gw < 1e-5 && gb < 1e-3, "{shape:?}: output {y}, input {gx}, weight {gw}, bias {gb}");
        }
    }

    #[test]
    fn untracked_inputs_under_autodiff() {
        // a frozen convolution (no gradient for its parameters) on an untracked input: the
        // operation is recorded as untracked and gives burn's output
        let device = Device::flex().autodiff();
        let k = conv(3, 4, true, PaddingConfig2d::Same, &device).no_grad();
        let x = Tensor::<4>::random([2, 3, 5, 6], Distribution::Normal(0.0, 1.0), &device);
        assert!(max_diff(conv2d(&k, x.clone()), k.forward(x.clone())) < 1e-5);
        // a frozen convolution on a tracked input: only the input gets a gradient
        let x = x.require_grad();
        let g = conv2d(&k, x.clone()).sum().backward();
        let g_burn = k.forward(x.clone()).sum().backward();
        let (ours, burns) = (x.grad(&g).unwrap(), x.grad(&g_burn).unwrap());
        assert!(max_diff(ours, burns) < 1e-5);
        assert!(k.weight.grad(&g).is_none());
    }

    #[test]
    fn other_convolutions_use_burns() {
        let strided = Conv2dConfig::new([2, 3], [3, 3]).with_stride([2, 2]).init(&Device::flex());
        let x = Tensor::<4>::random([1, 2, 5, 5], Distribution::Normal(0.0, 1.0), &Device::flex());
        assert_eq!(max_diff(conv2d(&strided, x.clone()), strided.forward(x)), 0.0);
        // many channels over a tiny plane (the weight far larger than the output) takes the pass
        let large = conv(64, 64, true, PaddingConfig2d::Same, &Device::flex());
        let x = Tensor::<4>::random([1, 64, 2, 2], Distribution::Normal(0.0, 1.0), &Device::flex());
        assert!(max_diff(conv2d(&large, x.clone()), large.forward(x)) < 1e-4);
    }
}
