//! The 2×2 max-pool pass over f32 planes: the maxima, or the maxima and each window's winning
//! cell.

use crate::math::{for_row_chunks, max_nan};
use rayon::prelude::*;

/// The maxima `[B, C, H/2, W/2]` of `x` `[B, C, H, W]`.
pub(crate) fn pool_maxima(x: &[f32], [b, c, h, w]: [usize; 4]) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0f32; b * c * ho * wo];
    // split over the pool in chunks of whole planes of at least ~64K inputs
    for_row_chunks(&mut out, ho * wo, (65_536 / (h * w)).max(1), |p, o| pool_plane(&x[p * h * w..(p + 1) * h * w], w, ho, wo, o));
    out
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

/// The maxima `[B, H/2, W/2, C]` of the channels-last map `x` `[B, H, W, C]`: each output
/// pixel's `C` values from its window's four pixels, in the same order as [`pool_plane`] takes
/// them (the same values as the NCHW pass, NaN included).
pub(crate) fn pool_maxima_channels_last(x: &[f32], [b, h, w, c]: [usize; 4]) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut out = vec![0f32; b * ho * wo * c];
    // split over the pool by output rows, at least ~64K inputs a task
    for_row_chunks(&mut out, wo * c, (65_536 / (2 * w * c)).max(1), |r, o| {
        let (s, i) = (r / ho, r % ho);
        let r0 = &x[(s * h + 2 * i) * w * c..][..w * c];
        let r1 = &x[(s * h + 2 * i + 1) * w * c..][..w * c];
        for (j, o) in o.chunks_exact_mut(c).enumerate() {
            let (a, b) = (&r0[2 * j * c..][..2 * c], &r1[2 * j * c..][..2 * c]);
            for (ch, o) in o.iter_mut().enumerate() {
                *o = max_nan(max_nan(a[ch], a[c + ch]), max_nan(b[ch], b[c + ch]));
            }
        }
    });
    out
}

/// The maxima of `x` `[B, C, H, W]` and the cell each came from: burn's rule, scanning the
/// window row by row, a cell replaces the running winner when it is greater or NaN.
pub(crate) fn pool_maxima_and_winners(x: &[f32], [b, c, h, w]: [usize; 4]) -> (Vec<f32>, Vec<u8>) {
    let (ho, wo) = (h / 2, w / 2);
    let n = ho * wo;
    let mut out = vec![0f32; b * c * n];
    let mut cells = vec![0u8; b * c * n];
    out.par_chunks_mut(n).zip(cells.par_chunks_mut(n)).enumerate().for_each(|(p, (o, k))| {
        let src = &x[p * h * w..(p + 1) * h * w];
        for i in 0..ho {
            let (r0, r1) = (&src[2 * i * w..2 * i * w + w], &src[(2 * i + 1) * w..(2 * i + 1) * w + w]);
            for j in 0..wo {
                let window = [r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]];
                let (mut best, mut cell) = (window[0], 0u8);
                for (q, v) in window.into_iter().enumerate().skip(1) {
                    if v > best || v.is_nan() {
                        (best, cell) = (v, q as u8);
                    }
                }
                o[i * wo + j] = best;
                k[i * wo + j] = cell;
            }
        }
    });
    (out, cells)
}
