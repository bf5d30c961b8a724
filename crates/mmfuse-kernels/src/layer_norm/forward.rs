//! Layer norm's forward pass over f32 rows, keeping each row's mean and `1/σ`.

use rayon::prelude::*;
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
