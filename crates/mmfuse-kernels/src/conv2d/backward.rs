//! The 3×3 convolution pass as an autodiff operation: the input gradient is the same pass on
//! the output gradient with the kernels turned and the channels swapped, the weight gradient
//! one `gemm` per band, the bias gradient a sum.

use super::forward::{band_columns, band_rows, convolve, forward};
use crate::autodiff::{FlexAutodiff, TrackedTensor, dims, flex_tensor, from_tracked, gemm_strided, record_with_optional_bias, sum_in_order, tracked, values};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::Tensor;
use gemm::Parallelism;
use rayon::prelude::*;

/// Samples per group of the weight gradient: groups run in parallel, each sums its samples in
/// order.
const SAMPLES_PER_GROUP: usize = 4;

/// The pass as an autodiff operation ([`Conv3x3Backward`]), if the tensors are the CPU
/// backend's f32 ones under autodiff with checkpointing `C`.
pub(crate) fn trained<C: CheckpointStrategy>(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let (x, weight) = (tracked::<C, 4>(x)?, tracked::<C, 4>(weight)?);
    let bias = match bias {
        Some(b) => Some(tracked::<C, 1>(b)?),
        None => None,
    };
    let out = forward(x.primitive(), weight.primitive(), bias.as_ref().map(TrackedTensor::primitive));
    let out = record_with_optional_bias::<C, _, _>(Conv3x3Backward, &x, &weight, bias.as_ref(), out, |x, w| (x, w));
    Some(from_tracked::<C, 4>(out))
}

/// The backward of the pass, for its 2 (input, weight) or 3 (and bias) parents. State: the
/// checkpointed input and weight.
#[derive(Debug)]
struct Conv3x3Backward;

impl<const N: usize> Backward<Flex, N> for Conv3x3Backward {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let x: FlexTensor = checkpointer.retrieve_node_output(ops.state.0);
        let weight: FlexTensor = checkpointer.retrieve_node_output(ops.state.1);
        let [b, c, h, w] = dims(&x);
        let c_out = dims::<4>(&weight)[0];
        let g = values(&grad);
        let parent = |i: usize| ops.parents.get(i).cloned().flatten();
        if let Some(node) = parent(0) {
            let flipped = flip_swap(&values(&weight), c_out, c);
            let gx = convolve(&g, &flipped, None, [b, c_out, h, w], c);
            grads.register::<Flex>(node.id, flex_tensor(gx, [b, c, h, w]));
        }
        if let Some(node) = parent(1) {
            let gw = weight_gradient(&values(&x), &g, [b, c, h, w], c_out);
            grads.register::<Flex>(node.id, flex_tensor(gw, [c_out, c, 3, 3]));
        }
        if let Some(node) = parent(2) {
            let hw = h * w;
            let mut gb = vec![0f32; c_out];
            for (plane, o) in g.chunks(hw).zip((0..c_out).cycle()) {
                gb[o] += plane.iter().sum::<f32>();
            }
            grads.register::<Flex>(node.id, flex_tensor(gb, [c_out]));
        }
    }
}

/// `weight` `[C_out, C, 3, 3]` → `[C, C_out, 3, 3]` with each kernel turned by 180°: the weight
/// whose padding-1 convolution of the output gradient is the input gradient,
/// `gx[c][i][j] = Σ g[o][i + 1 − kh][j + 1 − kw] · w[o][c][kh][kw]`.
fn flip_swap(weight: &[f32], c_out: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; weight.len()];
    for o in 0..c_out {
        for ch in 0..c {
            for k in 0..9 {
                out[(ch * c_out + o) * 9 + 8 - k] = weight[(o * c + ch) * 9 + k];
            }
        }
    }
    out
}

/// The weight gradient `[C_out, C·9]`: for each sample and band of output rows, the output
/// gradient's band `[C_out, n]` times the band's columns transposed `[n, C·9]`, summed.
fn weight_gradient(x: &[f32], g: &[f32], [b, c, h, w]: [usize; 4], c_out: usize) -> Vec<f32> {
    let (hw, rows) = (h * w, 9 * c);
    let band = band_rows(rows, h, w);
    let parallelism = if b == 1 { Parallelism::Rayon(0) } else { Parallelism::None };
    // fixed groups of samples, each summed in order, then the groups in order
    let partials: Vec<Vec<f32>> = (0..b.div_ceil(SAMPLES_PER_GROUP))
        .into_par_iter()
        .map(|group| {
            let mut gw = vec![0f32; c_out * rows];
            let mut columns = vec![0f32; rows * band * w];
            for s in group * SAMPLES_PER_GROUP..((group + 1) * SAMPLES_PER_GROUP).min(b) {
                let x = &x[s * c * hw..(s + 1) * c * hw];
                let g = &g[s * c_out * hw..(s + 1) * c_out * hw];
                for r0 in (0..h).step_by(band) {
                    let n = ((r0 + band).min(h) - r0) * w;
                    let cols = &mut columns[..rows * n];
                    band_columns(x, h, w, r0, cols);
                    // gw (c_out × rows) += the band of g (c_out × n, row stride hw) · colsᵀ
                    gemm_strided(&mut gw, rows, true, &g[r0 * w..], [hw, 1], cols, [1, n], [c_out, rows, n], parallelism);
                }
            }
            gw
        })
        .collect();
    sum_in_order(partials, c_out * rows)
}
