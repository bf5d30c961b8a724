//! The attention softmax as an autodiff operation keeping its output; the backward is one pass
//! per row.

use super::forward::softmax_in_place;
use crate::autodiff::{FlexAutodiff, flex_tensor, from_tracked, shape, tracked, values};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

/// The softmax as an autodiff operation ([`SoftmaxBackward`]) on the scores, if they are the
/// CPU backend's under autodiff with `C`; the key bias is a constant (a tracked one is left to
/// burn).
pub(crate) fn trained<C: CheckpointStrategy>(scores: &Tensor<4>, scale: f64, key_bias: &Tensor<2>) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let [b, h, lq, lk] = scores.dims();
    let (x, bias) = (tracked::<C, 4>(scores)?, tracked::<C, 2>(key_bias)?);
    if bias.is_tracked() {
        return None;
    }
    let mut y = values(x.primitive()).into_owned();
    softmax_in_place(&mut y, &values(bias.primitive()), scale as f32, h * lq, lk);
    let y = flex_tensor(y, [b, h, lq, lk]);
    let out = match SoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((y.clone(), scale as f32), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(from_tracked::<C, 4>(out))
}

/// The softmax's backward, per row: `dx = scale · y · (g − Σ g·y)`. State: the output and the
/// scale.
#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = ops.parents else { return };
        let (y, scale) = ops.state;
        let dims = shape(&y);
        let lk = dims[3];
        let y = values(&y);
        let mut g = values(&grad).into_owned();
        g.par_chunks_mut(lk * 64).zip(y.par_chunks(lk * 64)).for_each(|(g, y)| backward_rows(g, y, lk, scale));
        grads.register::<Flex>(node.id, flex_tensor(g, dims));
    }
}

/// The softmax's backward over rows of `len`, in place, on the calling thread: each row of the
/// output gradient `g` becomes `scale · y · (g − Σ g·y)` for the softmax's output row `y`.
pub(crate) fn backward_rows(g: &mut [f32], y: &[f32], len: usize, scale: f32) {
    for (g, y) in g.chunks_exact_mut(len).zip(y.chunks_exact(len)) {
        let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
        for (g, y) in g.iter_mut().zip(y) {
            *g = scale * y * (*g - dot);
        }
    }
}
