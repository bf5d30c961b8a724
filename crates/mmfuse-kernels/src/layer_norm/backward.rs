//! Layer norm as an autodiff operation: one pass per row backward, the parameters' gradients
//! summed in fixed chunks of rows, in order.

use super::forward::{ROWS_PER_CHUNK, RowStats, forward};
use crate::autodiff::{FlexAutodiff, flex_tensor, from_tracked, record_with_optional_bias, shape, sum_in_order, tracked, values};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

/// The operation, if the tensors are f32 ones of the CPU backend under autodiff with `C`.
pub(crate) fn trained<C: CheckpointStrategy, const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, beta: Option<&Tensor<1>>, epsilon: f64) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let (x, gamma) = (tracked::<C, D>(x)?, tracked::<C, 1>(gamma)?);
    let beta = match beta {
        Some(b) => Some(tracked::<C, 1>(b)?),
        None => None,
    };
    let beta_values = beta.as_ref().map(|b| values(b.primitive()));
    let (y, stats) = forward(&values(x.primitive()), &values(gamma.primitive()), beta_values.as_deref(), epsilon as f32);
    let y = flex_tensor(y, shape(x.primitive()));
    let out = record_with_optional_bias::<C, _, _>(LayerNormBackward, &x, &gamma, beta.as_ref(), y, |x, g| (x, g, stats));
    Some(from_tracked::<C, D>(out))
}

/// The gradients `(dx, dγ, dβ)` for the output gradient `g`.
fn backward(x: &[f32], gamma: &[f32], g: &[f32], stats: &RowStats) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let mut dx = vec![0f32; x.len()];
    // each fixed chunk of rows sums its own parameter gradients ([dγ, dβ] in one vector), then
    // the chunks are summed in order
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(d * ROWS_PER_CHUNK)
        .enumerate()
        .map(|(chunk, dx)| {
            let (mut sums, mut dxhat) = (vec![0f32; 2 * d], vec![0f32; d]);
            let (dgamma, dbeta) = sums.split_at_mut(d);
            let row0 = chunk * ROWS_PER_CHUNK;
            for (r, dx) in dx.chunks_mut(d).enumerate() {
                let row = row0 + r;
                let (x, g) = (&x[row * d..(row + 1) * d], &g[row * d..(row + 1) * d]);
                let (m, s) = (stats.mean[row], stats.rstd[row]);
                let (mut sum, mut dot) = (0f32, 0f32);
                for j in 0..d {
                    let xhat = (x[j] - m) * s;
                    dgamma[j] += g[j] * xhat;
                    dbeta[j] += g[j];
                    dxhat[j] = g[j] * gamma[j];
                    sum += dxhat[j];
                    dot += dxhat[j] * xhat;
                }
                let (sum, dot) = (sum / d as f32, dot / d as f32);
                for j in 0..d {
                    let xhat = (x[j] - m) * s;
                    dx[j] = s * (dxhat[j] - sum - xhat * dot);
                }
            }
            sums
        })
        .collect();
    let mut dgamma = sum_in_order(partials, 2 * d);
    let dbeta = dgamma.split_off(d);
    (dx, dgamma, dbeta)
}

/// The backward, for 2 (input, γ) or 3 (and β) parents. State: the checkpointed input and γ,
/// and the rows' statistics.
#[derive(Debug)]
struct LayerNormBackward;

impl<const N: usize> Backward<Flex, N> for LayerNormBackward {
    type State = (NodeId, NodeId, RowStats);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_id, gamma_id, stats) = ops.state;
        let x = checkpointer.retrieve_node_output::<burn::backend::flex::FlexTensor>(x_id);
        let gamma = checkpointer.retrieve_node_output::<burn::backend::flex::FlexTensor>(gamma_id);
        let (dx, dgamma, dbeta) = backward(&values(&x), &values(&gamma), &values(&grad), &stats);
        let d = dgamma.len();
        let parent = |i: usize| ops.parents.get(i).cloned().flatten();
        if let Some(node) = parent(0) {
            grads.register::<Flex>(node.id, flex_tensor(dx, shape(&x)));
        }
        if let Some(node) = parent(1) {
            grads.register::<Flex>(node.id, flex_tensor(dgamma, [d]));
        }
        if let Some(node) = parent(2) {
            grads.register::<Flex>(node.id, flex_tensor(dbeta, [d]));
        }
    }
}
