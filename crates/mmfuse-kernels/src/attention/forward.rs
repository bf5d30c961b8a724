//! The fused attention pass at prediction: one task per (sample, head), each a `gemm` for its
//! scores, the softmax over them in place, and a `gemm` writing its columns of the output.

use crate::math::DisjointOut;
use crate::softmax::forward::softmax_rows;
use rayon::prelude::*;

/// The sizes of one call: `b` samples, `lq` queries, `lk` keys, model width `d`, `heads` heads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub b: usize,
    pub lq: usize,
    pub lk: usize,
    pub d: usize,
    pub heads: usize,
}

/// The rows of a `[B, L, d]` operand: row `r` (sample `r / L`, position `r % L`) is
/// `data[r·stride..r·stride + d]`. A stride above `d` reads a block of columns of a wider
/// product in place (the query, key and value projections of one post, done as one product).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

impl<'a> Rows<'a> {
    /// Contiguous rows of `d` values.
    pub(crate) fn dense(data: &'a [f32], d: usize) -> Self {
        Rows { data, stride: d }
    }

    /// Whether the operand holds `rows` rows of `d` values.
    fn holds(&self, rows: usize, d: usize) -> bool {
        self.stride >= d && (rows == 0 || self.data.len() >= (rows - 1) * self.stride + d)
    }
}

/// `q` `[B, Lq, d]`, `k`/`v` `[B, Lk, d]`, `bias` `[B, Lk]` (row-major) → the output
/// `[B, Lq, d]` and, with `keep_weights`, the weights `[B, H, Lq, Lk]` (before dropout).
/// `dropout`, `[B, H, Lq, Lk]` factors (`Dropout`'s mask in training), multiplies the weights
/// before they weigh the values.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    q: Rows,
    k: Rows,
    v: Rows,
    bias: &[f32],
    scale: f32,
    s: Shape,
    keep_weights: bool,
    dropout: Option<&[f32]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let Shape { b, lq, lk, d, heads } = s;
    let dh = d / heads;
    assert!(
        q.holds(b * lq, d) && k.holds(b * lk, d) && v.holds(b * lk, d) && bias.len() == b * lk && dh * heads == d && dh > 0,
        "attention: data do not match {s:?}"
    );
    let (qs, ks, vs) = (q.stride, k.stride, v.stride);
    assert!(dropout.is_none_or(|m| m.len() == b * heads * lq * lk), "attention: the dropout mask does not match {s:?}");
    // not zeroed: the tasks store every value of `out` (and of `weights`) before anything reads
    // it, `product` only writing its destination
    let mut out = Vec::<f32>::with_capacity(b * lq * d);
    let dst = DisjointOut(out.as_mut_ptr());
    // scores of task t (sample t / H, head t % H) into the lq × lk values at `w`, softmax, then
    // its output block (from `dropped`, the weights times the mask, where there is one)
    let task = |t: usize, w: *mut f32, dropped: &mut Vec<f32>| {
        let (i, h) = (t / heads, t % heads);
        let (q, k, v) = (&q.data[i * lq * qs + h * dh..], &k.data[i * lk * ks + h * dh..], &v.data[i * lk * vs + h * dh..]);
        // SAFETY (both calls): `product` reads lhs (r, c) at r·lhs_rs + c·lhs_cs and rhs likewise,
        // and writes dst (r, c) at r·dst_rs + c; the largest offsets, (lq−1)·qs + dh−1 into q's
        // head block, (lk−1)·ks + dh−1 into k's and likewise v's, (lq−1)·lk + lk−1 from `w`, are
        // inside those slices (their lengths were checked above) and the lq × lk values the
        // caller gives this task at `w`, and
        // (i·lq + lq−1)·d + h·dh + dh−1 into `out`, a block of columns no other task writes.
        unsafe {
            // w = q_h · k_hᵀ: rhs (p, j) = k_h[j, p] at j·ks + p
            product([lq, lk, dh], w, lk, (q.as_ptr(), qs, 1), (k.as_ptr(), 1, ks));
        }
        // SAFETY: the lq × lk values at `w` (the caller's) are this task's alone and were all
        // stored by the product above.
        let w = unsafe { std::slice::from_raw_parts_mut(w, lq * lk) };
        softmax_rows(w, &bias[i * lk..(i + 1) * lk], scale, lk);
        let weighing = match dropout {
            Some(mask) => {
                dropped.clear();
                dropped.extend(w.iter().zip(&mask[t * lq * lk..(t + 1) * lq * lk]).map(|(w, m)| w * m));
                &dropped[..]
            }
            None => &w[..],
        };
        // SAFETY: as above (`weighing` holds lq × lk values).
        unsafe { product([lq, dh, lk], dst.at(i * lq * d + h * dh), d, (weighing.as_ptr(), lk, 1), (v.as_ptr(), vs, 1)) };
    };
    let tasks = b * heads;
    let weights = if keep_weights {
        let mut weights = Vec::<f32>::with_capacity(tasks * lq * lk);
        let all = DisjointOut(weights.as_mut_ptr());
        // task t's weights are the lq × lk values from t·lq·lk
        (0..tasks).into_par_iter().for_each_init(Vec::new, |dropped, t| task(t, all.at(t * lq * lk), dropped));
        // SAFETY: the tasks stored all of them.
        unsafe { weights.set_len(tasks * lq * lk) };
        Some(weights)
    } else {
        (0..tasks).into_par_iter().for_each_init(|| (vec![0f32; lq * lk], Vec::new()), |(w, dropped), t| task(t, w.as_mut_ptr(), dropped));
        None
    };
    // SAFETY: every (row, head) block of `out` was stored by its task's second product.
    unsafe { out.set_len(b * lq * d) };
    (out, weights)
}

/// `dst = lhs · rhs` (`[m, n] = [m, k] · [k, n]`) on the calling thread, each operand given as
/// (pointer, row stride, column stride) and `dst` by its row stride (columns contiguous).
///
/// # Safety
/// Every element addressed by the shapes and strides must be valid (read for the operands,
/// written for `dst`), and `dst` must not overlap the operands.
pub(crate) unsafe fn product(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
) {
    let s = |x: usize| x as isize;
    // SAFETY: as the caller guarantees; `read_dst` false: `dst` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            s(dst_rs),
            false,
            lhs,
            s(lhs_cs),
            s(lhs_rs),
            rhs,
            s(rhs_cs),
            s(rhs_rs),
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
