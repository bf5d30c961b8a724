//! A `Linear` layer over rows as one autodiff operation on the CPU ([`linear_rows_trained`]).
//!
//! Under autodiff burn's `Linear` over `[rows, d_in]` is a matmul, a broadcast bias addition
//! and reshapes, each a graph node: the bias is a second pass over the output forward and a
//! reduction backward, and the matmul's backward multiplies by transposed copies. Here the
//! forward is one `gemm` call adding `x·W` onto rows pre-filled with the bias; the backward is
//! two `gemm` calls that read `W` and `x` transposed through their strides (no copies),
//! `dx = g·Wᵀ` and `dW = xᵀ·g`, and `db` the column sums of `g` (a third call, by a row of
//! ones). gemm splits each product over the compute pool by output blocks, every output summed
//! whole by one thread: the results do not depend on the threads (training resumes exactly).
//!
//! Without autodiff, and on other devices and dtypes, burn's `Linear` is used.

use crate::cpu_autodiff::{FlexAutodiff, dims, flex_tensor, from_tracked, gemm_strided, record_with_optional_bias, tracked, values};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::nn::Linear;
use burn::tensor::Tensor;
use gemm::Parallelism;

/// gemm on the compute pool, as many threads as it has.
const RAYON: Parallelism = Parallelism::Rayon(0);

/// `linear.forward(x)` for `x` `[rows, d_in]` as one autodiff operation, if `x` and the layer's
/// parameters are f32 tensors of the CPU backend under autodiff; `None` otherwise.
pub(crate) fn linear_rows_trained(linear: &Linear, x: &Tensor<2>) -> Option<Tensor<2>> {
    let weight = linear.weight.val();
    let bias = linear.bias.as_ref().map(|b| b.val());
    trained::<NoCheckpointing>(x, &weight, bias.as_ref()).or_else(|| trained::<BalancedCheckpointing>(x, &weight, bias.as_ref()))
}

fn trained<C: CheckpointStrategy>(x: &Tensor<2>, weight: &Tensor<2>, bias: Option<&Tensor<1>>) -> Option<Tensor<2>>
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution};

    fn rel(a: Tensor<2>, b: Tensor<2>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    #[test]
    fn output_and_gradients_match_burns() {
        let device = Device::flex().autodiff();
        for (rows, d_in, d_out, bias) in [(37, 24, 19, true), (5, 3, 7, false), (300, 64, 96, true), (1, 8, 1, true)] {
            let lin = LinearConfig::new(d_in, d_out).with_bias(bias).init(&device);
            let x = Tensor::<2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device);
            let r = Tensor::<2>::random([rows, d_out], Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours { linear_rows_trained(&lin, &x).expect("the operation applies") } else { lin.forward(x.clone()) };
                let g = (y.clone() * r.clone()).sum().backward();
                let gb = lin.bias.as_ref().map(|b| b.grad(&g).expect("bias gradient").unsqueeze::<2>());
                (y.inner(), x.grad(&g).unwrap(), lin.weight.grad(&g).unwrap(), gb)
            };
            let ((y0, x0, w0, b0), (y1, x1, w1, b1)) = (run(true), run(false));
            let b = match (b0, b1) {
                (Some(a), Some(b)) => rel(a, b),
                (None, None) => 0.0,
                _ => f32::INFINITY,
            };
            let d = [rel(y0, y1), rel(x0, x1), rel(w0, w1), b];
            assert!(d.iter().all(|v| *v < 1e-5), "{rows}×{d_in}→{d_out}: output, input, weight, bias {d:?}");
        }
    }

    #[test]
    fn frozen_layer_and_plain_devices() {
        let device = Device::flex().autodiff();
        let lin = LinearConfig::new(4, 3).init(&device).no_grad();
        let x = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let g = linear_rows_trained(&lin, &x).unwrap().sum().backward();
        let g_burn = lin.forward(x.clone()).sum().backward();
        assert!(rel(x.grad(&g).unwrap(), x.grad(&g_burn).unwrap()) < 1e-6);
        assert!(lin.weight.grad(&g).is_none());
        // not an autodiff tensor: burn's layer
        let plain = LinearConfig::new(4, 3).init(&Device::flex());
        assert!(linear_rows_trained(&plain, &Tensor::<2>::zeros([2, 4], &Device::flex())).is_none());
    }
}
