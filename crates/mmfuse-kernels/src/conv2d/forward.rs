//! The 3×3 convolution pass over f32 data, in bands of output rows (one `gemm` per band, added in
//! place into the NCHW output on top of the bias).

use crate::autodiff::{dims, flex_tensor, gemm_strided, values};
use burn::backend::flex::FlexTensor;
use gemm::Parallelism;
use rayon::prelude::*;

/// Column values per band (256 KB) when that leaves the matmul enough columns: the band's output
/// rows are chosen to fit.
const BAND_VALUES: usize = 64 * 1024;

/// Columns (output positions) per band at least: below that the matmul re-reads the whole weight
/// for too little work (many channels over a small plane), and a band takes more of the plane.
const MIN_BAND_COLUMNS: usize = 256;

/// The pass's forward on flex tensors: `x` `[B, C, H, W]`, `weight` `[C_out, C, 3, 3]`,
/// `bias` `[C_out]`.
pub(crate) fn forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> FlexTensor {
    let [b, c, h, w] = dims(x);
    let c_out = dims::<4>(weight)[0];
    let bias = bias.map(values);
    let out = convolve(&values(x), &values(weight), bias.as_deref(), [b, c, h, w], c_out);
    flex_tensor(out, [b, c_out, h, w])
}

/// Output rows per band: columns of about [`BAND_VALUES`], at least [`MIN_BAND_COLUMNS`] wide.
pub(crate) fn band_rows(rows: usize, h: usize, w: usize) -> usize {
    (BAND_VALUES / (rows * w)).max(MIN_BAND_COLUMNS.div_ceil(w)).clamp(1, h)
}

/// `x` `[B, C, H, W]` (row-major) convolved with `weight` `[C_out, C, 3, 3]`, padding 1, plus
/// `bias`: `[B, C_out, H, W]`.
pub(crate) fn convolve(x: &[f32], weight: &[f32], bias: Option<&[f32]>, [b, c, h, w]: [usize; 4], c_out: usize) -> Vec<f32> {
    let (hw, rows) = (h * w, 9 * c);
    assert!(x.len() == b * c * hw && weight.len() == c_out * rows, "conv2d_3x3: shapes do not match the data");
    let band = band_rows(rows, h, w);
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
            // the band's rows of y (c_out × n at row stride hw) += weight (c_out × rows) · cols
            gemm_strided(&mut y[r0 * w..], hw, true, weight, [rows, 1], cols, [n, 1], [c_out, n, rows], parallelism);
        }
    });
    out
}

/// The columns of the output rows from `r0` for one sample `x` `[C, h, w]`: `cols` holds
/// `9·C` rows of `n` values (`n / w` output rows); row `ch·9 + kh·3 + kw` at (i, j) is
/// `x[ch][r0 + i + kh − 1][j + kw − 1]`, zero where that falls outside the plane.
pub(crate) fn band_columns(x: &[f32], h: usize, w: usize, r0: usize, cols: &mut [f32]) {
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
