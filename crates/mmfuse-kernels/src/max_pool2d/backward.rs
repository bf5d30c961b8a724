//! The 2×2 max-pool as an autodiff operation keeping each window's winning cell (one byte); the
//! backward routes each output's gradient there.

use super::forward::{pool_maxima, pool_maxima_and_winners};
use crate::autodiff::{FlexAutodiff, dims, flex_tensor, from_tracked, tracked, values};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::sync::Arc;

/// The pass as an autodiff operation ([`MaxPoolBackward`]), if `x` is an f32 tensor of the CPU
/// backend under autodiff with checkpointing `C`.
pub(crate) fn trained<C: CheckpointStrategy>(x: &Tensor<4>) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let x = tracked::<C, 4>(x)?;
    let [b, c, h, w] = dims(x.primitive());
    let (ho, wo) = (h / 2, w / 2);
    let out = match MaxPoolBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (out, winners) = pool_maxima_and_winners(&values(x.primitive()), [b, c, h, w]);
            prep.finish(Winners { shape: [b, c, h, w], cells: Arc::new(winners) }, flex_tensor(out, [b, c, ho, wo]))
        }
        OpsKind::UnTracked(prep) => prep.finish(flex_tensor(pool_maxima(&values(x.primitive()), [b, c, h, w]), [b, c, ho, wo])),
    };
    Some(from_tracked::<C, 4>(out))
}

/// Which cell of its window each output took (0 top left, 1 top right, 2 bottom left, 3 bottom
/// right), with the input's shape.
#[derive(Clone, Debug)]
struct Winners {
    shape: [usize; 4],
    cells: Arc<Vec<u8>>,
}

/// The backward of the pass: each output's gradient goes to the cell that won its window; the
/// other cells (and a last odd row or column) get zero.
#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = Winners;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = ops.parents else { return };
        let Winners { shape: [b, c, h, w], cells } = ops.state;
        let (ho, wo) = (h / 2, w / 2);
        let g = values(&grad);
        let mut gx = vec![0f32; b * c * h * w];
        gx.par_chunks_mut(h * w).enumerate().for_each(|(p, plane)| {
            for i in 0..ho {
                for j in 0..wo {
                    let o = p * ho * wo + i * wo + j;
                    let cell = cells[o] as usize;
                    plane[(2 * i + cell / 2) * w + 2 * j + cell % 2] = g[o];
                }
            }
        });
        grads.register::<Flex>(node.id, flex_tensor(gx, [b, c, h, w]));
    }
}
