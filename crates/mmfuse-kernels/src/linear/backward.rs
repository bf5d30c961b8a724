//! A Linear layer over rows as one autodiff operation: forward one product onto the bias,
//! backward two products, `dx = g·Wᵀ` and `dW = xᵀ·g`, and the bias's column sums.
//!
//! Where the CPU runs the packed kernel (`packed.rs`, AVX2 + FMA) the forward and `dx` go
//! through it, `W` (or `Wᵀ`) packed on the spot into a buffer the thread reuses (a copy of
//! `d_in × d_out` values, small beside the product at training's row counts). `dW`, and every
//! product elsewhere, is a `gemm` call reading `W` and `x` transposed through their strides.
//! Either way every output is summed whole by one task: the gradients do not depend on the
//! threads.

use super::packed::{self, PackedWeight};
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
    let (xs, w) = (values(x.primitive()), values(weight.primitive()));
    let b = bias.as_ref().map(|b| values(b.primitive()));
    let y = if packed::available() {
        packed::forward_once(&xs, rows, PackedWeight::new(&w, d_in, d_out), b.as_deref())
    } else {
        let mut y = match &b {
            Some(b) => b.repeat(rows),
            None => vec![0f32; rows * d_out],
        };
        // y (+)= x · W
        gemm_strided(&mut y, d_out, b.is_some(), &xs, [d_in, 1], &w, [d_out, 1], [rows, d_out, d_in], RAYON);
        y
    };
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
            // dx [rows, d_in] = g [rows, d_out] · Wᵀ
            let w = values(&weight);
            let dx = if packed::available() {
                packed::forward_once(&g, rows, PackedWeight::transposed(&w, d_in, d_out), None)
            } else {
                // W [d_in, d_out] read by columns
                let mut dx = vec![0f32; rows * d_in];
                gemm_strided(&mut dx, d_in, false, &g, [d_out, 1], &w, [1, d_out], [rows, d_in, d_out], RAYON);
                dx
            };
            grads.register::<Flex>(node.id, flex_tensor(dx, [rows, d_in]));
        }
        if let Some(node) = parent(1) {
            // dW [d_in, d_out] = xᵀ (x [rows, d_in] read by columns) · g, through gemm on every
            // CPU: its K is the long side (1024 rows at batch 16) and its M as short as d_in, a
            // shape the packed kernel's row blocks serve worse (MuSE-small's training step ran
            // at 1.90 steps/s this way, 1.84 with this product packed too and 1.76 all through gemm; bench/README.md)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transposed_packing_is_the_packing_of_the_transpose() {
        for (rows, cols) in [(1, 1), (3, 17), (16, 16), (37, 50)] {
            let v: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t: Vec<f32> = (0..rows * cols).map(|i| v[(i % rows) * cols + i / rows]).collect();
            // twice: the second packings reuse the first ones' buffers, stale values and all
            // (the zero padding of a partial panel included)
            for _ in 0..2 {
                let b = PackedWeight::new(&t, cols, rows);
                let a = PackedWeight::transposed(&v, rows, cols);
                assert!(a == b, "[{rows}, {cols}]");
                a.recycle();
                b.recycle();
            }
        }
    }
}
