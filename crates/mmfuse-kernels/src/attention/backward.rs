//! Attention as one autodiff operation in training: the forward is the fused pass of
//! `forward.rs` (with the dropout mask applied to the weights), keeping the weights; the
//! backward is one task per (sample, head) with four products read through the strides of the
//! `[B, L, d]` tensors, and the softmax's backward between them. burn's ops instead copy Q, K
//! and V into `[B, H, L, d_head]`, run two batched products and their backwards (four more),
//! the softmax, the dropout's product and their backwards, and copy the gradients back.

use super::forward::{self, Shape, product};
use crate::Dropout;
use crate::autodiff::{FlexAutodiff, TrackedTensor, dims, flex_tensor, from_tracked, tracked, values};
use crate::math::DisjointOut;
use crate::softmax::backward::backward_rows;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// [`attention`](super::attention) as an autodiff operation ([`AttentionBackward`]) on `q`,
/// `k` and `v`, if they are the CPU backend's under autodiff with `C` and the key bias is a
/// constant (a tracked one is left to burn). The weights, if asked for, come back as a constant:
/// no gradient flows through them (their callers rank tokens by them).
#[allow(clippy::too_many_arguments)]
pub(crate) fn trained<C: CheckpointStrategy>(
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    shape: Shape,
    scale: f32,
    key_bias: &Tensor<2>,
    dropout: &Dropout,
    weights: bool,
) -> Option<(Tensor<3>, Option<Tensor<4>>)>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let (qt, kt, vt, bias) = (tracked::<C, 3>(q)?, tracked::<C, 3>(k)?, tracked::<C, 3>(v)?, tracked::<C, 2>(key_bias)?);
    if bias.is_tracked() {
        return None;
    }
    let Shape { b, lq, lk, heads, .. } = shape;
    let device = q.device();
    let mask = dropout.cpu_mask(b * heads * lq * lk, &device);
    Some(with_mask::<C>([qt, kt, vt], bias, shape, scale, mask, weights, &device))
}

/// [`trained`] with the dropout mask given (`[B, H, Lq, Lk]` factors, or none).
pub(super) fn with_mask<C: CheckpointStrategy>(
    [qt, kt, vt]: [TrackedTensor; 3],
    bias: TrackedTensor,
    shape: Shape,
    scale: f32,
    mask: Option<Vec<f32>>,
    weights: bool,
    device: &Device,
) -> (Tensor<3>, Option<Tensor<4>>)
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let Shape { b, lq, lk, d, heads } = shape;
    let bias = values(bias.primitive());
    let (qv, kv, vv) = (values(qt.primitive()), values(kt.primitive()), values(vt.primitive()));
    let dense = |x| forward::Rows::dense(x, d);
    let (out, w) = forward::attention(dense(&qv), dense(&kv), dense(&vv), &bias, scale, shape, true, mask.as_deref());
    let w = w.expect("the weights were kept");
    let returned = weights.then(|| Tensor::<4>::from_data(TensorData::new(w.clone(), [b, heads, lq, lk]), device));
    let out = flex_tensor(out, [b, lq, d]);
    let out = match AttentionBackward.prepare::<C>([qt.node(), kt.node(), vt.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let ids = [prep.checkpoint(&qt), prep.checkpoint(&kt), prep.checkpoint(&vt)];
            prep.finish(State { ids, weights: w, mask, scale, shape }, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    (from_tracked::<C, 3>(out), returned)
}

/// What the backward keeps: the checkpointed Q, K and V, the weights (before dropout), the
/// dropout mask, the scale and the sizes.
#[derive(Clone, Debug)]
struct State {
    ids: [NodeId; 3],
    weights: Vec<f32>,
    mask: Option<Vec<f32>>,
    scale: f32,
    shape: Shape,
}

/// The backward of attention, per (sample, head) `h` with weights `W` (`[Lq, Lk]`), dropout
/// mask `M` and output gradient `G` (the head's columns): `dV = (W⊙M)ᵀ·G`, `dA = (G·Vᵀ)⊙M`,
/// `dS = scale · W⊙(dA − rowsum(dA⊙W))`, `dQ = dS·K`, `dK = dSᵀ·Q`.
#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let State { ids, weights, mask, scale, shape } = ops.state;
        let [q, k, v] = ids.map(|id| checkpointer.retrieve_node_output::<FlexTensor>(id));
        let Shape { b, lq, lk, d, .. } = shape;
        debug_assert_eq!(dims::<3>(&grad), [b, lq, d]);
        let (q, k, v, g) = (values(&q), values(&k), values(&v), values(&grad));
        let grads_qkv = gradients(&q, &k, &v, &g, &weights, mask.as_deref(), scale, shape);
        for (parent, (grad, l)) in ops.parents.iter().zip(grads_qkv.into_iter().zip([lq, lk, lk])) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, flex_tensor(grad, [b, l, d]));
            }
        }
    }
}

/// `[dQ, dK, dV]` (`[B, Lq, d]`, `[B, Lk, d]`, `[B, Lk, d]`) from the output gradient `g`
/// `[B, Lq, d]`; one task per (sample, head), each writing its head's columns of the three.
#[allow(clippy::too_many_arguments)]
fn gradients(q: &[f32], k: &[f32], v: &[f32], g: &[f32], weights: &[f32], mask: Option<&[f32]>, scale: f32, s: Shape) -> [Vec<f32>; 3] {
    let Shape { b, lq, lk, d, heads } = s;
    let dh = d / heads;
    assert!(
        q.len() == b * lq * d && g.len() == b * lq * d && k.len() == b * lk * d && v.len() == b * lk * d && weights.len() == b * heads * lq * lk,
        "attention backward: data do not match {s:?}"
    );
    let (mut dq, mut dk, mut dv) = (vec![0f32; b * lq * d], vec![0f32; b * lk * d], vec![0f32; b * lk * d]);
    let (dq_out, dk_out, dv_out) = (DisjointOut(dq.as_mut_ptr()), DisjointOut(dk.as_mut_ptr()), DisjointOut(dv.as_mut_ptr()));
    (0..b * heads).into_par_iter().for_each_init(
        || (vec![0f32; lq * lk], vec![0f32; lq * lk]),
        |(dropped, da), t| {
            let (i, h) = (t / heads, t % heads);
            let w = &weights[t * lq * lk..(t + 1) * lq * lk];
            let m = mask.map(|m| &m[t * lq * lk..(t + 1) * lq * lk]);
            let (qh, gh) = (&q[i * lq * d + h * dh..], &g[i * lq * d + h * dh..]);
            let (kh, vh) = (&k[i * lk * d + h * dh..], &v[i * lk * d + h * dh..]);
            // the weights that weighed the values: W⊙M
            let weighed = match m {
                Some(m) => {
                    dropped.iter_mut().zip(w.iter().zip(m)).for_each(|(o, (w, m))| *o = w * m);
                    &dropped[..]
                }
                None => w,
            };
            // SAFETY (every call): `product` reads lhs (r, c) at r·lhs_rs + c·lhs_cs and rhs
            // likewise and writes dst (r, c) at r·dst_rs + c. The head's blocks of q, g (up to
            // (lq−1)·d + dh−1) and of k, v (up to (lk−1)·d + dh−1) lie inside their slices (the
            // lengths were checked above), `weighed` and `da` hold lq × lk values, and the
            // outputs are this task's head columns of sample i, (i·L + L−1)·d + h·dh + dh−1 at
            // most, which no other task writes.
            unsafe {
                // dV_h [lk, dh] = (W⊙M)ᵀ · G_h
                product([lk, dh, lq], dv_out.at(i * lk * d + h * dh), d, (weighed.as_ptr(), 1, lk), (gh.as_ptr(), d, 1));
                // dA [lq, lk] = G_h · V_hᵀ
                product([lq, lk, dh], da.as_mut_ptr(), lk, (gh.as_ptr(), d, 1), (vh.as_ptr(), 1, d));
            }
            if let Some(m) = m {
                da.iter_mut().zip(m).for_each(|(a, m)| *a *= m);
            }
            // the softmax's backward, row by row: dS = scale · W ⊙ (dA − Σ dA⊙W)
            backward_rows(da, w, lk, scale);
            // SAFETY: as above.
            unsafe {
                // dQ_h [lq, dh] = dS · K_h
                product([lq, dh, lk], dq_out.at(i * lq * d + h * dh), d, (da.as_ptr(), lk, 1), (kh.as_ptr(), d, 1));
                // dK_h [lk, dh] = dSᵀ · Q_h
                product([lk, dh, lq], dk_out.at(i * lk * d + h * dh), d, (da.as_ptr(), 1, lk), (qh.as_ptr(), d, 1));
            }
        },
    );
    [dq, dk, dv]
}
