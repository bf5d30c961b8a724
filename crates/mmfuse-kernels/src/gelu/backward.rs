//! GELU as an autodiff operation: the forward pass also gives the derivative, which the
//! backward multiplies the output gradient by.

use super::forward::{GeluInPlace, GeluWithDerivative};
use crate::autodiff::{FlexAutodiff, flex_tensor, from_tracked, shape, tracked, values};
use crate::math::{PARALLEL_CHUNK, for_chunk_pairs, for_chunks};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

/// GELU as an autodiff operation ([`GeluBackward`]): the pass gives `y` and `y'`, and keeps `y'`.
pub(crate) fn trained<C: CheckpointStrategy, const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let x = tracked::<C, D>(x)?;
    let dims = shape(x.primitive());
    let mut y = values(x.primitive()).into_owned();
    let out = match GeluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let mut dy = y.clone();
            for_chunk_pairs(&mut y, &mut dy, |a, b| pulp::Arch::new().dispatch(GeluWithDerivative(a, b)));
            prep.finish(flex_tensor(dy, dims.clone()), flex_tensor(y, dims))
        }
        OpsKind::UnTracked(prep) => {
            for_chunks(&mut y, |c| pulp::Arch::new().dispatch(GeluInPlace(c)));
            prep.finish(flex_tensor(y, dims))
        }
    };
    Some(from_tracked::<C, D>(out))
}

/// GELU's backward: the output gradient times the kept derivative.
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = ops.parents else { return };
        let dy = ops.state;
        let mut g = values(&grad).into_owned();
        let d = values(&dy);
        g.par_chunks_mut(PARALLEL_CHUNK).zip(d.par_chunks(PARALLEL_CHUNK)).for_each(|(g, d)| g.iter_mut().zip(d).for_each(|(g, d)| *g *= d));
        grads.register::<Flex>(node.id, flex_tensor(g, shape(&dy)));
    }
}
