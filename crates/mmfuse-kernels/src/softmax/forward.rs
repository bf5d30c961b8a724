//! The attention softmax's forward pass over f32 rows: scale, key bias and softmax in one pass
//! per row.

use crate::math::{exp_neg, max_nan};
use rayon::prelude::*;

/// `softmax(x·scale + bias)` over rows of `lk`, in place, for `x` `[B, rows_per_sample, lk]`
/// and `bias` `[B, lk]`.
pub(crate) fn softmax_in_place(x: &mut [f32], bias: &[f32], scale: f32, rows_per_sample: usize, lk: usize) {
    // chunks of whole samples of at least ~32K scores
    let per_chunk = (32_768 / (rows_per_sample * lk)).max(1);
    x.par_chunks_mut(per_chunk * rows_per_sample * lk).enumerate().for_each(|(i, chunk)| {
        for (j, sample) in chunk.chunks_mut(rows_per_sample * lk).enumerate() {
            let bias = &bias[(i * per_chunk + j) * lk..(i * per_chunk + j + 1) * lk];
            softmax_rows(sample, bias, scale, lk);
        }
    });
}

/// Rows of `len` scores sharing one `bias` (`[len]`), in place: `softmax(x·scale + bias)`, on
/// the calling thread.
pub(crate) fn softmax_rows(x: &mut [f32], bias: &[f32], scale: f32, len: usize) {
    pulp::Arch::new().dispatch(SoftmaxRows { x, bias, scale, len });
}

/// Rows of `len` scores sharing one `bias`, in place: `softmax(x·scale + bias)`.
struct SoftmaxRows<'a> {
    x: &'a mut [f32],
    bias: &'a [f32],
    scale: f32,
    len: usize,
}

impl pulp::WithSimd for SoftmaxRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        // fixed 16-lane inner loops (and lane-wise max and sum) so that they vectorise
        const LANES: usize = 16;
        let Self { x, bias, scale, len } = self;
        let split = len / LANES * LANES;
        for row in x.chunks_exact_mut(len) {
            let mut m = [f32::NEG_INFINITY; LANES];
            for (c, bc) in row[..split].chunks_exact_mut(LANES).zip(bias[..split].chunks_exact(LANES)) {
                for l in 0..LANES {
                    c[l] = c[l] * scale + bc[l];
                    m[l] = max_nan(m[l], c[l]);
                }
            }
            for (l, (v, b)) in row[split..].iter_mut().zip(&bias[split..]).enumerate() {
                *v = *v * scale + *b;
                m[l] = max_nan(m[l], *v);
            }
            let max = m.iter().fold(f32::NEG_INFINITY, |a, &b| max_nan(a, b));
            if max.is_nan() {
                row.fill(f32::NAN);
                continue;
            }
            let mut sum = [0f32; LANES];
            for c in row[..split].chunks_exact_mut(LANES) {
                for l in 0..LANES {
                    c[l] = exp_neg(max - c[l]);
                    sum[l] += c[l];
                }
            }
            for (l, v) in row[split..].iter_mut().enumerate() {
                *v = exp_neg(max - *v);
                sum[l] += *v;
            }
            let inv = 1.0 / sum.iter().sum::<f32>();
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}
