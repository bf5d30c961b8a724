//! 3×3 convolution (stride 1, padding 1) with a CPU pass for prediction ([`conv2d_3x3`]).
//!
//! burn-flex convolves by im2col in tiles of 512 output positions: a scalar gather of every
//! patch element, a matmul per tile, then a scatter of the tile's result into NCHW with a stride
//! of a whole plane per value. On MuSE-small's image CNN at batch 1 that bookkeeping took about
//! 45 % of the encoder's time and the matmuls 20 % (`perf`, one thread).
//!
//! Here each sample is done in bands of output rows. A band's columns are laid out as
//! `[C·9, rows·W]`, one row per (input channel, kernel cell), each the input plane shifted by
//! the cell's offset: contiguous row copies with zero borders, small enough to stay in cache.
//! One `gemm` call then multiplies `weight [C_out, C·9]` by them and adds the result straight
//! into the band's place in the NCHW output (row stride `H·W`), on top of the bias. Samples run
//! in parallel; a single sample lets gemm split the matmul instead. It applies on the CPU
//! backend without autodiff (prediction, evaluation) to f32 tensors; training, other devices and
//! dtypes, and any other kernel, stride, dilation, padding or grouping use burn's convolution, as
//! do weights large against the output ([`MAX_WEIGHT_PER_POSITION`]).

use crate::device::is_cpu_without_autodiff;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor, TensorData};
use gemm::Parallelism;
use rayon::prelude::*;

/// Column values per band (256 KB) when that leaves the matmul enough columns: the band's output
/// rows are chosen to fit.
const BAND_VALUES: usize = 64 * 1024;

/// Columns (output positions) per band at least: below that the matmul re-reads the whole weight
/// for too little work (many channels over a small plane), and a band takes more of the plane.
const MIN_BAND_COLUMNS: usize = 256;

/// Weight values per output position (`B·H·W`) at most for the pass: it copies the weight to
/// the host on every call, which does not pay for many channels over a small plane at a small
/// batch (ResNet's last stages at batch 1: 512 channels over 7×7 ran 3× slower than burn's).
const MAX_WEIGHT_PER_POSITION: usize = 1024;

/// `conv.forward(x)` for `x` `[B, C, H, W]`, with the pass above for 3×3 / stride 1 / padding 1.
pub fn conv2d_3x3(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let plain_3x3 = conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Same | PaddingConfig2d::Explicit(1, 1, 1, 1));
    let device = x.device();
    let dims = x.dims();
    let c_out = conv.weight.dims()[0];
    let [b, c, h, wd] = dims;
    let small_weight = c_out * 9 * c <= MAX_WEIGHT_PER_POSITION * b * h * wd;
    if !plain_3x3 || !small_weight || !is_cpu_without_autodiff(&device) || x.dtype() != DType::F32 || dims.contains(&0) {
        return conv.forward(x);
    }
    let input = x.into_data();
    let weight = conv.weight.val().into_data();
    let bias = conv.bias.as_ref().map(|b| b.val().into_data());
    let bias = bias.as_ref().map(|b| b.as_slice::<f32>()).transpose();
    let (Ok(src), Ok(w), Ok(bias)) = (input.as_slice::<f32>(), weight.as_slice::<f32>(), bias) else {
        return conv.forward(Tensor::from_data(input, &device));
    };
    let out = convolve(src, w, bias, dims, c_out);
    Tensor::from_data(TensorData::new(out, [b, c_out, h, wd]), &device)
}

/// `x` `[B, C, H, W]` (row-major) convolved with `weight` `[C_out, C, 3, 3]`, padding 1, plus
/// `bias`: `[B, C_out, H, W]`.
fn convolve(x: &[f32], weight: &[f32], bias: Option<&[f32]>, [b, c, h, w]: [usize; 4], c_out: usize) -> Vec<f32> {
    let (hw, rows) = (h * w, 9 * c);
    assert!(x.len() == b * c * hw && weight.len() == c_out * rows, "conv2d_3x3: shapes do not match the data");
    let band = (BAND_VALUES / (rows * w)).max(MIN_BAND_COLUMNS.div_ceil(w)).clamp(1, h);
    let mut out = vec![0f32; b * c_out * hw];
    if let Some(bias) = bias {
        // the matmul adds onto the bias
        for (plane, v) in out.chunks_mut(hw).zip(bias.iter().cycle()) {
            plane.fill(*v);
        }
    }
    let parallelism = if b == 1 { Parallelism::Rayon(0) } else { Parallelism::None };
    out.par_chunks_mut(c_out * hw).enumerate().for_each(|(s, y)| {
        let x = &x[s * c * hw..(s + 1) * c * hw];
        let mut columns = vec![0f32; rows * band * w];
        for r0 in (0..h).step_by(band) {
            let n = ((r0 + band).min(h) - r0) * w;
            let cols = &mut columns[..rows * n];
            band_columns(x, h, w, r0, cols);
            let dst = &mut y[r0 * w..];
            // SAFETY: gemm reads `weight` as c_out × rows (row stride rows) and `cols` as rows × n
            // (row stride n), both within their slices, and adds into c_out rows of n values at
            // stride hw from `dst`: the last one is (c_out − 1)·hw + n − 1 < c_out·hw − r0·w =
            // dst.len(), since r0·w + n ≤ hw. The three regions are distinct allocations.
            unsafe {
                gemm::gemm(
                    c_out,
                    n,
                    rows,
                    dst.as_mut_ptr(),
                    1,
                    hw as isize,
                    true,
                    weight.as_ptr(),
                    1,
                    rows as isize,
                    cols.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
    });
    out
}

/// The columns of the output rows from `r0` for one sample `x` `[C, h, w]`: `cols` holds
/// `9·C` rows of `n` values (`n / w` output rows); row `ch·9 + kh·3 + kw` at (i, j) is
/// `x[ch][r0 + i + kh − 1][j + kw − 1]`, zero where that falls outside the plane.
fn band_columns(x: &[f32], h: usize, w: usize, r0: usize, cols: &mut [f32]) {
    let n = cols.len() / (x.len() / (h * w) * 9);
    for (row, dst_row) in cols.chunks_mut(n).enumerate() {
        let (ch, kh, kw) = (row / 9, row % 9 / 3, row % 3);
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for (k, dst) in dst_row.chunks_mut(w).enumerate() {
            // source row r0 + k + kh − 1, if inside
            let Some(si) = (r0 + k + kh).checked_sub(1).filter(|si| *si < h) else {
                dst.fill(0.0);
                continue;
            };
            let src = &plane[si * w..(si + 1) * w];
            match kw {
                0 => {
                    dst[0] = 0.0;
                    dst[1..].copy_from_slice(&src[..w - 1]);
                }
                1 => dst.copy_from_slice(src),
                _ => {
                    dst[w - 1] = 0.0;
                    dst[..w - 1].copy_from_slice(&src[1..]);
                }
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
    fn a_batch_in_bands_with_a_short_last_band() {
        let device = Device::flex();
        // 9 · 16 rows × 40 wide = 5760 values per output row: bands of 11, 11 and 3 rows
        let k = conv(16, 8, true, PaddingConfig2d::Same, &device);
        let x = Tensor::<4>::random([3, 16, 25, 40], Distribution::Normal(0.0, 1.0), &device);
        assert!(max_diff(conv2d_3x3(&k, x.clone()), k.forward(x)) < 1e-4);
        // one sample, bands of the fewest rows that give 256 columns: 3, 3 and 1
        let k = conv(80, 4, false, PaddingConfig2d::Same, &device);
        let x = Tensor::<4>::random([1, 80, 7, 100], Distribution::Normal(0.0, 1.0), &device);
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
        // a weight large against the output: 64 · 9 · 64 = 36,864 values > 1024 × 2 × 2 × 1
        let large = conv(64, 64, true, PaddingConfig2d::Same, &Device::flex());
        let x = Tensor::<4>::random([1, 64, 2, 2], Distribution::Normal(0.0, 1.0), &Device::flex());
        assert_eq!(max_diff(conv2d_3x3(&large, x.clone()), large.forward(x)), 0.0);
    }
}
