//! 3×3 convolution (stride 1, padding 1) with a CPU pass for prediction ([`conv2d_3x3`]).
//!
//! burn-flex convolves by im2col in tiles of 512 output positions: a scalar gather of every
//! patch element, a matmul per tile, then a scatter of the tile's result into NCHW with a stride
//! of a whole plane per value. On MuSE-small's image CNN at batch 1 that bookkeeping took about
//! 45 % of the encoder's time and the matmuls 20 % (`perf`, one thread).
//!
//! Here the columns are laid out as `[C·9, H·W]` per sample, one row per (input channel, kernel
//! cell): each row is the input plane shifted by the cell's offset, built from contiguous row
//! copies with zero borders, and `weight [C_out, C·9] × columns` is the output in NCHW as it
//! comes out of the matmul. It applies on the CPU backend without autodiff (prediction,
//! evaluation) to f32 inputs; training, other devices and dtypes, and any other kernel, stride,
//! dilation, padding or grouping use burn's convolution.

use crate::device::is_cpu_without_autodiff;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Column values built per matmul at most (4 MB): a large batch is done in slices of samples.
const MAX_COLUMN_VALUES: usize = 1 << 20;

/// `conv.forward(x)` for `x` `[B, C, H, W]`, with the pass above for 3×3 / stride 1 / padding 1.
pub fn conv2d_3x3(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let plain_3x3 = conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Same | PaddingConfig2d::Explicit(1, 1, 1, 1));
    let device = x.device();
    if !plain_3x3 || !is_cpu_without_autodiff(&device) || x.dtype() != DType::F32 {
        return conv.forward(x);
    }
    let [b, c, h, w] = x.dims();
    let c_out = conv.weight.dims()[0];
    let input = x.into_data();
    let Ok(src) = input.as_slice::<f32>() else {
        return conv.forward(Tensor::from_data(input, &device));
    };
    let (hw, rows) = (h * w, 9 * c);
    // [C_out, C, 3, 3] → [1, C_out, C·9]: column row `ch·9 + kh·3 + kw` meets its weight
    let weight = conv.weight.val().reshape([1, c_out, rows]);
    let per_slice = (MAX_COLUMN_VALUES / (rows * hw).max(1)).clamp(1, b.max(1));
    let mut outputs = Vec::with_capacity(b.div_ceil(per_slice));
    for first in (0..b).step_by(per_slice) {
        let n = per_slice.min(b - first);
        let mut columns = vec![0f32; n * rows * hw];
        // one chunk per (sample, input channel): its nine shifted planes
        columns.par_chunks_mut(9 * hw).enumerate().for_each(|(i, nine)| {
            let plane = (first + i / c) * c + i % c;
            shifted_planes(&src[plane * hw..(plane + 1) * hw], h, w, nine);
        });
        let columns = Tensor::<3>::from_data(TensorData::new(columns, [n, rows, hw]), &device);
        outputs.push(weight.clone().matmul(columns));
    }
    let mut y = if outputs.len() == 1 { outputs.remove(0) } else { Tensor::cat(outputs, 0) };
    if let Some(bias) = &conv.bias {
        y = y + bias.val().reshape([1, c_out, 1]);
    }
    y.reshape([b, c_out, h, w])
}

/// The nine shifted copies of one `[h, w]` plane as the rows `kh·3 + kw` of `nine` (`9 × h·w`,
/// zeroed by the caller): row (kh, kw) holds `plane[i + kh − 1][j + kw − 1]` at (i, j), zero
/// where that falls outside the plane.
fn shifted_planes(plane: &[f32], h: usize, w: usize, nine: &mut [f32]) {
    for (cell, shifted) in nine.chunks_mut(h * w).enumerate() {
        let (kh, kw) = (cell / 3, cell % 3);
        for i in 0..h {
            // source row i + kh − 1, if inside
            let Some(si) = (i + kh).checked_sub(1).filter(|si| *si < h) else { continue };
            let src = &plane[si * w..(si + 1) * w];
            let dst = &mut shifted[i * w..(i + 1) * w];
            match kw {
                0 => dst[1..].copy_from_slice(&src[..w - 1]),
                1 => dst.copy_from_slice(src),
                _ => dst[..w - 1].copy_from_slice(&src[1..]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

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
            let diff = max_diff(conv2d_3x3(&k, x.clone()), k.forward(x));
            assert!(diff < 1e-5, "{shape:?}: {diff}");
        }
    }

    #[test]
    fn a_large_batch_is_done_in_slices_with_the_same_result() {
        let device = Device::flex();
        // 9 · 4 · 64 · 64 = 147K column values per sample: a slice of 7 samples, then one of 2
        let k = conv(4, 8, true, PaddingConfig2d::Same, &device);
        let x = Tensor::<4>::random([9, 4, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        assert!(max_diff(conv2d_3x3(&k, x.clone()), k.forward(x)) < 1e-4);
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
        let y = conv2d_3x3(&k, x).into_data().try_to_vec::<f32>().unwrap();
        // y[i][j] = x[i][j] + 10·x[i][j+1], zero past the right edge
        assert_eq!(y, vec![21.0, 32.0, 3.0, 54.0, 65.0, 6.0]);
        // a NaN reaches every output whose 3×3 window holds it (0 · NaN is NaN), as in burn's
        let mut xv = vec![1.0f32; 15];
        xv[0] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(xv, [1, 1, 3, 5]), &device);
        let ours = conv2d_3x3(&k, x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let burns = k.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let nan_at = |v: &[f32]| v.iter().enumerate().filter(|(_, y)| y.is_nan()).map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(nan_at(&ours), vec![0, 1, 5, 6]);
        assert_eq!(nan_at(&ours), nan_at(&burns));
    }

    #[test]
    fn other_convolutions_and_autodiff_use_burns() {
        let device = Device::flex().autodiff();
        let k = conv(2, 3, true, PaddingConfig2d::Same, &device);
        let x = Tensor::<4>::random([1, 2, 5, 5], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let y = conv2d_3x3(&k, x.clone());
        // the gradient flows: burn's op under autodiff
        let g = y.sum().backward();
        assert!(x.grad(&g).is_some());
        let strided = Conv2dConfig::new([2, 3], [3, 3]).with_stride([2, 2]).init(&Device::flex());
        let x = Tensor::<4>::random([1, 2, 5, 5], Distribution::Normal(0.0, 1.0), &Device::flex());
        assert_eq!(max_diff(conv2d_3x3(&strided, x.clone()), strided.forward(x)), 0.0);
    }
}
