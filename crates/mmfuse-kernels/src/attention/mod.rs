//! Multi-head scaled dot-product attention over projected queries, keys and values
//! ([`attention`]): `softmax(Q·Kᵀ·scale + key_bias)·V` for every head.
//!
//! Through burn's ops this is a reshape and a transposed copy of each of Q, K and V into
//! `[B, H, L, d_head]`, a batched matmul into a `[B, H, Lq, Lk]` score tensor, the softmax
//! pass, a second batched matmul and a transposed copy back to `[B, Lq, d]`. At prediction on
//! the CPU (no autodiff, f32) one task per (sample, head) does it all in place (`forward.rs`):
//! `gemm` reads its head's columns of Q and K through their strides into a score block that
//! stays in cache, the softmax runs over it, and a second `gemm` writes the head's columns of the
//! output directly. The tasks run on the compute pool, so a single post's heads are spread over
//! the threads (burn's batched matmul ran them one after the other). In training on the CPU the
//! same pass, with the dropout mask on the weights, is one autodiff operation whose backward
//! works the same way, per (sample, head) through the strides (`backward.rs`). On other devices
//! burn's ops run, with [`attention_softmax`](crate::attention_softmax) and the attention
//! dropout.

mod backward;
mod forward;

use crate::autodiff::{contiguous, flex_tensor, from_plain, plain, stored, values};
use crate::device::{is_cpu, is_cpu_without_autodiff};
use crate::{Dropout, attention_softmax};
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor};

/// `softmax(Q·Kᵀ·scale + key_bias)·V` per head, for `q` `[B, Lq, d]`, `k` and `v` `[B, Lk, d]`
/// (head `h` is columns `h·d/H..(h+1)·d/H`) and `key_bias` `[B, Lk]` (added to every head's and
/// query's score of key k: 0 at real keys, [`MASK_BIAS`](crate::MASK_BIAS) at padding).
/// Returns the output `[B, Lq, d]` and, with `weights`, the attention weights `[B, H, Lq, Lk]`
/// (before `dropout`, which applies to the weights in training; in training on the CPU they
/// are a constant, no gradient flows through them). A NaN score makes its query's row NaN.
///
/// # Panics
/// If the shapes disagree or `d` is not a multiple of `n_heads`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    n_heads: usize,
    scale: f64,
    key_bias: Tensor<2>,
    dropout: &Dropout,
    weights: bool,
) -> (Tensor<3>, Option<Tensor<4>>) {
    let [b, lq, d] = q.dims();
    let [_, lk, _] = k.dims();
    assert!(k.dims() == [b, lk, d] && v.dims() == [b, lk, d], "attention: queries {:?}, keys {:?}, values {:?}", q.dims(), k.dims(), v.dims());
    assert_eq!(key_bias.dims(), [b, lk], "attention: key bias {:?} for keys {:?}", key_bias.dims(), k.dims());
    assert!(n_heads > 0 && d.is_multiple_of(n_heads), "attention: d ({d}) must be divisible by n_heads ({n_heads})");
    let device = q.device();
    let f32s = [q.dtype(), k.dtype(), v.dtype(), key_bias.dtype()].iter().all(|t| *t == DType::F32);
    if is_cpu_without_autodiff(&device)
        && b * lq * lk * d > 0
        && f32s
        && let (Some(qt), Some(kt), Some(vt), Some(bt)) = (rows_of(&q), rows_of(&k), rows_of(&v), plain(&key_bias))
    {
        let shape = forward::Shape { b, lq, lk, d, heads: n_heads };
        let (out, w) = forward::attention(rows(&qt), rows(&kt), rows(&vt), &values(&bt), scale as f32, shape, weights, None);
        return (from_plain(flex_tensor(out, [b, lq, d])), w.map(|w| from_plain(flex_tensor(w, [b, n_heads, lq, lk]))));
    }
    if device.is_autodiff() && is_cpu(&device) && b * lq * lk * d > 0 && f32s {
        let shape = forward::Shape { b, lq, lk, d, heads: n_heads };
        let trained = backward::trained::<NoCheckpointing>(&q, &k, &v, shape, scale as f32, &key_bias, dropout, weights)
            .or_else(|| backward::trained::<BalancedCheckpointing>(&q, &k, &v, shape, scale as f32, &key_bias, dropout, weights));
        if let Some(result) = trained {
            return result;
        }
    }
    with_burn(q, k, v, n_heads, scale, key_bias, dropout, weights)
}

/// `t` `[B, L, d]` as (a tensor, the offset of its first value in its storage, its row
/// stride): as stored where its rows are evenly spaced with their values contiguous (e.g. the
/// query block of one product of the query, key and value projections side by side), else a
/// contiguous copy. `None` unless an f32 tensor of the CPU backend without autodiff.
fn rows_of(t: &Tensor<3>) -> Option<(FlexTensor, usize, usize)> {
    let stored = stored(t)?;
    let [_, l, d] = t.dims();
    let layout = stored.layout();
    if let [s0, s1, 1] = *layout.strides()
        && s1 >= d as isize
        && s0 == s1 * l as isize
    {
        let offset = layout.start_offset();
        return Some((stored, offset, s1 as usize));
    }
    let dense = contiguous(stored);
    let offset = dense.layout().start_offset();
    Some((dense, offset, d))
}

/// The rows [`rows_of`] found.
fn rows((t, offset, stride): &(FlexTensor, usize, usize)) -> forward::Rows<'_> {
    forward::Rows { data: &t.storage::<f32>()[*offset..], stride: *stride }
}

/// [`attention`] through burn's ops (the reference the fused pass is tested against).
#[allow(clippy::too_many_arguments)]
fn with_burn(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    n_heads: usize,
    scale: f64,
    key_bias: Tensor<2>,
    dropout: &Dropout,
    weights: bool,
) -> (Tensor<3>, Option<Tensor<4>>) {
    let [b, lq, d] = q.dims();
    let [_, lk, _] = k.dims();
    let dh = d / n_heads;
    let heads = |t: Tensor<3>, l: usize| t.reshape([b, l, n_heads, dh]).swap_dims(1, 2); // [B, H, L, dh]
    let scores = heads(q, lq).matmul(heads(k, lk).swap_dims(2, 3)); // [B, H, Lq, Lk]
    let w = attention_softmax(scores, scale, key_bias);
    let out = dropout.forward(w.clone()).matmul(heads(v, lk)).swap_dims(1, 2).reshape([b, lq, d]);
    (out, weights.then_some(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DropoutConfig, MASK_BIAS};
    use burn::tensor::{Device, Distribution, TensorData};

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| if x.is_nan() && y.is_nan() { 0.0 } else { (x - y).abs() }).fold(0f32, f32::max)
    }

    /// Random projections and a key bias: padding at the end of some samples' keys, a lexicon
    /// bias on others, one sample whose keys are all padding.
    fn case(b: usize, lq: usize, lk: usize, d: usize, device: &Device) -> (Tensor<3>, Tensor<3>, Tensor<3>, Tensor<2>) {
        let r = |l: usize| Tensor::<3>::random([b, l, d], Distribution::Normal(0.0, 1.0), device);
        let bias: Vec<f32> = (0..b * lk)
            .map(|i| {
                let (s, j) = (i / lk, i % lk);
                match s % 3 {
                    0 if j >= lk - s % lk => MASK_BIAS,
                    1 => 0.1 * j as f32,
                    2 if s == 2 => MASK_BIAS,
                    _ => 0.0,
                }
            })
            .collect();
        (r(lq), r(lk), r(lk), Tensor::from_data(TensorData::new(bias, [b, lk]), device))
    }

    #[test]
    fn fused_prediction_matches_burns_ops() {
        let device = Device::flex();
        let dropout = DropoutConfig::new(0.1).init();
        for (b, lq, lk, d, h) in [(1, 65, 65, 256, 4), (3, 7, 5, 12, 3), (4, 1, 9, 8, 1), (2, 33, 64, 384, 12)] {
            let (q, k, v, bias) = case(b, lq, lk, d, &device);
            let scale = 1.0 / ((d / h) as f64).sqrt();
            let (o1, w1) = attention(q.clone(), k.clone(), v.clone(), h, scale, bias.clone(), &dropout, true);
            let (o2, w2) = with_burn(q.clone(), k.clone(), v.clone(), h, scale, bias.clone(), &dropout, true);
            let (w1, w2) = (vals(w1.unwrap()), vals(w2.unwrap()));
            assert!(max_diff(&w1, &w2) < 1e-6, "{b}×{lq}×{lk}×{d}/{h}: weights {}", max_diff(&w1, &w2));
            assert!(max_diff(&vals(o1), &vals(o2.clone())) < 1e-5, "{b}×{lq}×{lk}×{d}/{h}: output");
            // padded keys get weight exactly 0; without weights the output is the same
            for (i, w) in w1.iter().enumerate() {
                let (s, j) = (i / (h * lq * lk), i % lk);
                if s % 3 == 0 && j >= lk - s % lk && s % lk != 0 {
                    assert_eq!(*w, 0.0);
                }
            }
            let (o3, w3) = attention(q, k, v, h, scale, bias, &dropout, false);
            assert!(w3.is_none());
            assert!(max_diff(&vals(o3), &vals(o2)) < 1e-5);
        }
    }

    /// Q, K and V as blocks of columns of wider tensors (as `forward_group` gives them at
    /// prediction): read in place at their row stride, the same values as burn's ops on them.
    #[test]
    fn prediction_reads_column_blocks_in_place() {
        let device = Device::flex();
        let dropout = DropoutConfig::new(0.0).init();
        for (b, lq, lk, d, h) in [(1, 65, 65, 256, 4), (3, 7, 5, 12, 3), (2, 1, 9, 8, 2)] {
            let (_, _, _, bias) = case(b, lq, lk, d, &device);
            let wide_q = Tensor::<3>::random([b, lq, 3 * d], Distribution::Normal(0.0, 1.0), &device);
            let wide_kv = Tensor::<3>::random([b, lk, 2 * d + 3], Distribution::Normal(0.0, 1.0), &device);
            let (q, k, v) = (wide_q.narrow(2, d, d), wide_kv.clone().narrow(2, 0, d), wide_kv.narrow(2, d + 3, d));
            assert!(rows_of(&q).unwrap().2 == 3 * d && rows_of(&v).unwrap().1 == d + 3, "read in place");
            let scale = 1.0 / ((d / h) as f64).sqrt();
            let (o1, w1) = attention(q.clone(), k.clone(), v.clone(), h, scale, bias.clone(), &dropout, true);
            let (o2, w2) = with_burn(q, k, v, h, scale, bias, &dropout, true);
            assert!(max_diff(&vals(w1.unwrap()), &vals(w2.unwrap())) < 1e-6, "{b}×{lq}×{lk}×{d}/{h}: weights");
            assert!(max_diff(&vals(o1), &vals(o2)) < 1e-5, "{b}×{lq}×{lk}×{d}/{h}: output");
        }
    }

    #[test]
    fn a_nan_score_makes_only_its_row_nan_and_threads_do_not_change_the_result() {
        let device = Device::flex();
        let dropout = DropoutConfig::new(0.0).init();
        let (q, k, v, bias) = case(2, 6, 6, 8, &device);
        let mut qv = vals(q);
        qv[8 + 1] = f32::NAN; // sample 0, query 1, head 0
        let q = Tensor::<3>::from_data(TensorData::new(qv, [2, 6, 8]), &device);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (o, w) = pool.install(|| attention(q.clone(), k.clone(), v.clone(), 2, 0.5, bias.clone(), &dropout, true));
            (vals(o), vals(w.unwrap()))
        };
        let ((o1, w1), (o3, w3)) = (run(1), run(3));
        assert_eq!(o1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), o3.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        assert_eq!(w1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), w3.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        for (i, x) in o1.iter().enumerate() {
            let (s, row, col) = (i / 48, (i / 8) % 6, i % 8);
            assert_eq!(x.is_nan(), s == 0 && row == 1 && col < 4, "output {i}");
        }
    }

    /// Training on the CPU, the autodiff operation against burn's ops with the same dropout
    /// mask: the output, the weights and the gradients of Q, K and V, with padded keys, a
    /// lexicon bias, a sample without a real key, Lq ≠ Lk, a single query and MuSE-small's
    /// sequence length; and gradients with the same bits at 1 and 3 threads.
    #[test]
    fn training_matches_burns_ops_and_their_gradients() {
        use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
        use burn::tensor::activation::softmax;
        let device = Device::flex().autodiff();
        for (b, lq, lk, d, h) in [(3, 7, 5, 12, 3), (3, 65, 65, 64, 2), (3, 1, 9, 8, 1)] {
            for masked in [false, true] {
                let (q, k, v, bias) = case(b, lq, lk, d, &device);
                let up = Tensor::<3>::random([b, lq, d], Distribution::Normal(0.0, 1.0), &device);
                let scale = 1.0 / ((d / h) as f64).sqrt();
                let mask = masked.then(|| crate::dropout::keep_mask(b * h * lq * lk, 0.7, 7));
                let shape = forward::Shape { b, lq, lk, d, heads: h };
                let ours = |threads: usize| {
                    let [q, k, v] = [&q, &k, &v].map(|t| t.clone().require_grad());
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let tr = |t: &Tensor<3>| crate::autodiff::tracked::<NoCheckpointing, 3>(t).unwrap();
                    let bias = crate::autodiff::tracked::<NoCheckpointing, 2>(&bias).unwrap();
                    let (o, w) = pool
                        .install(|| backward::with_mask::<NoCheckpointing>([tr(&q), tr(&k), tr(&v)], bias, shape, scale as f32, mask.clone(), true, &device));
                    let g = pool.install(|| (o.clone() * up.clone()).sum().backward());
                    let grads = [&q, &k, &v].map(|t| vals(t.grad(&g).unwrap()));
                    (vals(o), vals(w.unwrap()), grads)
                };
                // burn's ops, the same mask
                let [q2, k2, v2] = [&q, &k, &v].map(|t| t.clone().require_grad());
                let heads = |t: Tensor<3>, l: usize| t.reshape([b, l, h, d / h]).swap_dims(1, 2);
                let scores = heads(q2.clone(), lq).matmul(heads(k2.clone(), lk).swap_dims(2, 3));
                let w2 = softmax(scores.mul_scalar(scale) + bias.clone().reshape([b, 1, 1, lk]), 3);
                let dropped = match &mask {
                    Some(m) => w2.clone() * Tensor::<4>::from_data(TensorData::new(m.clone(), [b, h, lq, lk]), &device),
                    None => w2.clone(),
                };
                let o2 = dropped.matmul(heads(v2.clone(), lk)).swap_dims(1, 2).reshape([b, lq, d]);
                let g2 = (o2.clone() * up.clone()).sum().backward();
                let want = [&q2, &k2, &v2].map(|t| vals(t.grad(&g2).unwrap()));
                let (o1, w1, got) = ours(1);
                let case = format!("{b}×{lq}×{lk}×{d}/{h}, mask {masked}");
                assert!(max_diff(&o1, &vals(o2)) < 1e-5, "{case}: output");
                assert!(max_diff(&w1, &vals(w2)) < 1e-6, "{case}: weights");
                for (name, (got, want)) in ["Q", "K", "V"].iter().zip(got.iter().zip(&want)) {
                    let size = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                    assert!(size > 0.0 && max_diff(got, want) < 1e-5 * size.max(1.0), "{case}: d{name} off by {} (largest {size})", max_diff(got, want));
                }
                let (_, _, got3) = ours(3);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(got.iter().zip(&got3).all(|(a, b)| bits(a) == bits(b)), "{case}: gradients depend on the threads");
            }
        }
    }

    #[test]
    fn autodiff_gives_weights_and_gradients() {
        let device = Device::flex().autodiff();
        let dropout = DropoutConfig::new(0.0).init();
        let (q, k, v, bias) = case(2, 4, 5, 8, &device);
        let q = q.require_grad();
        let (o, w) = attention(q.clone(), k, v, 2, 0.5, bias, &dropout, true);
        assert_eq!(w.unwrap().dims(), [2, 2, 4, 5]);
        assert!(q.grad(&o.sum().backward()).is_some());
    }
}
