//! Layer norm's forward pass over f32 rows, keeping each row's mean and `1/σ`.

use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::Arc;

/// Rows per parallel chunk: each chunk sums its own parameter gradients.
pub(crate) const ROWS_PER_CHUNK: usize = 64;

/// Each row's mean and `1/σ`, kept for the backward.
#[derive(Clone, Debug)]
pub(crate) struct RowStats {
    pub mean: Arc<Vec<f32>>,
    pub rstd: Arc<Vec<f32>>,
}

/// `y = (x − mean)/σ · γ + β` per row of `x` (rows of `γ.len()` values), `σ = √(var + ε)`
/// with the biased variance; with each row's mean and `1/σ`.
pub(crate) fn forward(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, epsilon: f32) -> (Vec<f32>, RowStats) {
    let d = gamma.len();
    let rows = x.len() / d;
    let mut y = vec![0f32; x.len()];
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    y.par_chunks_mut(d * ROWS_PER_CHUNK).zip(mean.par_chunks_mut(ROWS_PER_CHUNK)).zip(rstd.par_chunks_mut(ROWS_PER_CHUNK)).enumerate().for_each(
        |(chunk, ((y, mean), rstd))| {
            let x = &x[chunk * d * ROWS_PER_CHUNK..];
            for (r, y) in y.chunks_mut(d).enumerate() {
                let x = &x[r * d..(r + 1) * d];
                let m = x.iter().sum::<f32>() / d as f32;
                let var = x.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / d as f32;
                let s = 1.0 / (var + epsilon).sqrt();
                (mean[r], rstd[r]) = (m, s);
                match beta {
                    Some(beta) => {
                        for (((y, x), g), b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                            *y = (x - m) * s * g + b;
                        }
                    }
                    None => {
                        for ((y, x), g) in y.iter_mut().zip(x).zip(gamma) {
                            *y = (x - m) * s * g;
                        }
                    }
                }
            }
        },
    );
    (y, RowStats { mean: Arc::new(mean), rstd: Arc::new(rstd) })
}

/// Where [`predict`] writes: over its input, or into a new buffer.
pub(crate) enum Rows<'a> {
    InPlace(&'a mut [f32]),
    Into(&'a [f32], &'a mut [MaybeUninit<f32>]),
}

/// Layer norm at prediction (no statistics kept): each row's mean and biased variance summed
/// in 16 lanes (vectorised), then `(x − mean)/σ · γ + β` written over the row or into `out`.
pub(crate) fn predict(rows: Rows, gamma: &[f32], beta: Option<&[f32]>, epsilon: f32) {
    let d = gamma.len();
    let chunk = d * ROWS_PER_CHUNK;
    // no β: zeros (the same values but for the sign of a zero)
    let zeros: Vec<f32>;
    let beta = match beta {
        Some(b) => b,
        None => {
            zeros = vec![0f32; d];
            &zeros
        }
    };
    let norm = |rows: Rows| pulp::Arch::new().dispatch(NormRows { rows, gamma, beta, epsilon });
    match rows {
        Rows::InPlace(x) if x.len() > chunk => x.par_chunks_mut(chunk).for_each(|x| norm(Rows::InPlace(x))),
        Rows::Into(x, out) if x.len() > chunk => x.par_chunks(chunk).zip(out.par_chunks_mut(chunk)).for_each(|(x, out)| norm(Rows::Into(x, out))),
        rows => norm(rows),
    }
}

/// Rows of `gamma.len()` values normalised.
struct NormRows<'a> {
    rows: Rows<'a>,
    gamma: &'a [f32],
    beta: &'a [f32],
    epsilon: f32,
}

impl pulp::WithSimd for NormRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (gamma, beta, d) = (self.gamma, self.beta, self.gamma.len());
        match self.rows {
            Rows::InPlace(rows) => {
                for row in rows.chunks_exact_mut(d) {
                    let (m, s) = row_stats(row, self.epsilon);
                    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                        *v = (*v - m) * s * g + b;
                    }
                }
            }
            Rows::Into(rows, out) => {
                for (row, out) in rows.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
                    let (m, s) = row_stats(row, self.epsilon);
                    for (((v, o), g), b) in row.iter().zip(out).zip(gamma).zip(beta) {
                        o.write((v - m) * s * g + b);
                    }
                }
            }
        }
    }
}

/// A row's mean and `1/σ`.
#[inline(always)]
fn row_stats(row: &[f32], epsilon: f32) -> (f32, f32) {
    let d = row.len() as f32;
    let m = lane_sum(row, |v| v) / d;
    let var = lane_sum(row, |v| (v - m) * (v - m)) / d;
    (m, 1.0 / (var + epsilon).sqrt())
}

/// `Σ f(v)` over `x` in 16 independent lanes (so that the compiler can vectorise it), then the
/// lanes and the remainder summed.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder().iter().map(|v| f(*v)).sum::<f32>();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += f(*v);
        }
    }
    lanes.iter().sum::<f32>() + rest
}
