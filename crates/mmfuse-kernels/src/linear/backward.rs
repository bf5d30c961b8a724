//! A Linear layer over rows as one autodiff operation: forward one `gemm` onto bias-filled rows,
//! backward two `gemm` calls reading `W` and `x` transposed through their strides.

use crate::autodiff::{FlexAutodiff, dims, flex_tensor, from_tracked, gemm_strided, record_with_optional_bias, tracked, values};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::Tensor;
use gemm::Parallelism;

/// gemm on the compute pool, as many threads as it has.
const RAYON: Parallelism = Parallelism::Rayon(0);

pub(crate) fn trained<C: CheckpointStrategy>(x: &Tensor<2>, weight: &Tensor<2>, bias: Option<&Tensor<1>>) -> Option<Tensor<2>>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let (x, weight) = (tracked::<C, 2>(x)?, tracked::<C, 2>(weight)?);
    let bias = match bias {
        Some(b) => Some(tracked::<C, 1>(b)?),
        None => None,
    };
    let [rows, d_in] = dims(x.primitive());
    let [w_in, d_out] = dims(weight.primitive());
    if w_in != d_in || rows == 0 || d_in == 0 || d_out == 0 {
        return None;
    }
    let mut y = match &bias {
        Some(b) => values(b.primitive()).repeat(rows),
        None => vec![0f32; rows * d_out],
    };
    // y (+)= x · W
    gemm_strided(&mut y, d_out, bias.is_some(), &values(x.primitive()), [d_in, 1], &values(weight.primitive()), [d_out, 1], [rows, d_out, d_in], RAYON);
    let y = flex_tensor(y, [rows, d_out]);
    let out = record_with_optional_bias::<C, _, _>(LinearBackward, &x, &weight, bias.as_ref(), y, |x, w| (x, w));
    Some(from_tracked::<C, 2>(out))
}

/// The backward, for 2 (input, weight) or 3 (and bias) parents. State: the checkpointed input
/// and weight.
#[derive(Debug)]
struct LinearBackward;

impl<const N: usize> Backward<Flex, N> for LinearBackward {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let x: FlexTensor = checkpointer.retrieve_node_output(ops.state.0);
        let weight: FlexTensor = checkpointer.retrieve_node_output(ops.state.1);
        let ([rows, d_in], [_, d_out]) = (dims(&x), dims(&weight));
        let g = values(&grad);
        let parent = |i: usize| ops.parents.get(i).cloned().flatten();
        if let Some(node) = parent(0) {
            // dx [rows, d_in] = g [rows, d_out] · Wᵀ (W [d_in, d_out] read by columns)
            let mut dx = vec![0f32; rows * d_in];
            gemm_strided(&mut dx, d_in, false, &g, [d_out, 1], &values(&weight), [1, d_out], [rows, d_in, d_out], RAYON);
            grads.register::<Flex>(node.id, flex_tensor(dx, [rows, d_in]));
        }
        if let Some(node) = parent(1) {
            // dW [d_in, d_out] = xᵀ (x [rows, d_in] read by columns) · g
            let mut dw = vec![0f32; d_in * d_out];
            gemm_strided(&mut dw, d_out, false, &values(&x), [1, d_in], &g, [d_out, 1], [d_in, d_out, rows], RAYON);
            grads.register::<Flex>(node.id, flex_tensor(dw, [d_in, d_out]));
        }
        if let Some(node) = parent(2) {
            // db [d_out] = 1ᵀ · g
            let (ones, mut db) = (vec![1f32; rows], vec![0f32; d_out]);
            gemm_strided(&mut db, d_out, false, &ones, [rows, 1], &g, [d_out, 1], [1, d_out, rows], RAYON);
            grads.register::<Flex>(node.id, flex_tensor(db, [d_out]));
        }
    }
}
