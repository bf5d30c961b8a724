//! Our CPU passes inside burn's autodiff graph: getting at burn-flex's tensors behind a
//! [`Tensor`] and back, plain (prediction) or tracked (training).
//!
//! burn 0.22 routes every tensor through its `Dispatch` backend. [`Tensor::try_into_primitive`]
//! and [`Tensor::from_primitive`] convert between a `Tensor` and a concrete backend's primitive:
//! `Flex`'s [`FlexTensor`] without autodiff, or an autodiff tensor of `Autodiff<Flex, C>` (the
//! flex tensor plus its graph node) with autodiff, `C` being the device's gradient-checkpointing
//! strategy. An operation with its own backward is a type implementing burn-autodiff's
//! [`Backward`](burn::backend::autodiff::ops::Backward), registered as burn's own operations
//! register theirs (see `convolution`). [`gemm_strided`] is the matrix product they share.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{DType, Tensor, TensorData};

/// burn-flex under autodiff, with checkpointing strategy `C`.
pub(crate) type FlexAutodiff<C> = Autodiff<Flex, C>;

/// A tracked tensor of [`FlexAutodiff`]: the flex tensor and its node in the graph.
pub(crate) type TrackedTensor = FloatTensor<Autodiff<Flex>>;

/// `x` as a contiguous f32 flex tensor, if it is one of the CPU backend without autodiff.
pub(crate) fn plain<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    if x.dtype() != DType::F32 {
        return None;
    }
    x.clone().try_into_primitive::<Flex>().ok().map(contiguous)
}

/// `x` as a tracked tensor of the CPU backend under autodiff with checkpointing `C`, if it is one.
pub(crate) fn tracked<C: CheckpointStrategy, const D: usize>(x: &Tensor<D>) -> Option<TrackedTensor>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    if x.dtype() != DType::F32 {
        return None;
    }
    x.clone().try_into_primitive::<FlexAutodiff<C>>().ok()
}

/// A flex tensor back into a [`Tensor`] of the CPU backend without autodiff.
pub(crate) fn from_plain<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t)
}

/// A tracked tensor back into a [`Tensor`] of the CPU backend under autodiff with `C`.
pub(crate) fn from_tracked<C: CheckpointStrategy, const D: usize>(t: TrackedTensor) -> Tensor<D>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    Tensor::from_primitive::<FlexAutodiff<C>>(t)
}

/// `t` with a contiguous row-major layout (copied only when it has another).
pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// The row-major values of an f32 flex tensor (copying only a non-contiguous one).
pub(crate) fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => std::borrow::Cow::Borrowed(v),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("an f32 tensor").to_vec()),
    }
}

/// A flex tensor of `shape` holding `values` (row-major).
pub(crate) fn flex_tensor(values: Vec<f32>, shape: impl Into<Vec<usize>>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// The shape of a flex tensor.
pub(crate) fn shape(t: &FlexTensor) -> Vec<usize> {
    let s = t.layout().shape();
    (0..s.num_dims()).map(|i| s[i]).collect()
}

/// The shape of a flex tensor of rank `D`.
pub(crate) fn dims<const D: usize>(t: &FlexTensor) -> [usize; D] {
    let s = t.layout().shape();
    std::array::from_fn(|i| s[i])
}

/// The element-wise sum of `parts` (each `len` values), added in their order: with parts of
/// fixed chunks of the work, the same sums whatever the threads (training resumes exactly).
pub(crate) fn sum_in_order(parts: impl IntoIterator<Item = Vec<f32>>, len: usize) -> Vec<f32> {
    let mut sum = vec![0f32; len];
    for part in parts {
        sum.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    sum
}

/// `dst (+)= lhs · rhs` through gemm: `dst` `[m, n]` at row stride `dst_rs` (columns
/// contiguous), `lhs` `[m, k]` and `rhs` `[k, n]` read through their (row, column) strides, so
/// a transposed operand is read in place. Adds onto `dst` with `accumulate`, else overwrites it.
/// gemm splits the product by output blocks (each output is summed whole by one thread), so the
/// result does not depend on `parallelism`.
///
/// # Panics
/// If a dimension is 0 or an operand's last element falls outside its slice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: &[f32],
    [rhs_rs, rhs_cs]: [usize; 2],
    [m, n, k]: [usize; 3],
    parallelism: gemm::Parallelism,
) {
    let last = |rs: usize, cs: usize, rows: usize, cols: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        m > 0 && n > 0 && k > 0
            && last(dst_rs, 1, m, n) < dst.len()
            && last(lhs_rs, lhs_cs, m, k) < lhs.len()
            && last(rhs_rs, rhs_cs, k, n) < rhs.len(),
        "gemm_strided: operand shapes do not match their data"
    );
    // SAFETY: gemm writes the m × n values of `dst` at (i·dst_rs + j) and reads lhs at
    // (i·lhs_rs + p·lhs_cs) and rhs at (p·rhs_rs + j·rhs_cs) for i < m, j < n, p < k: every
    // offset is at most the operand's last one, inside its slice (asserted above; the strides
    // are non-negative). `dst` is exclusively borrowed, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Records `out` in the graph as the output of `op` on an input `x`, a `weight` and an optional
/// `bias` (its 2 or 3 parents), keeping `x` and `weight` (checkpointed) and what `state` makes
/// of their ids for the backward. Untracked when none of them needs a gradient.
pub(crate) fn record_with_optional_bias<C, O, S>(
    op: O,
    x: &TrackedTensor,
    weight: &TrackedTensor,
    bias: Option<&TrackedTensor>,
    out: FlexTensor,
    state: impl FnOnce(NodeId, NodeId) -> S,
) -> TrackedTensor
where
    C: CheckpointStrategy,
    O: Backward<Flex, 2, State = S> + Backward<Flex, 3, State = S>,
    S: Clone + Send + std::fmt::Debug + 'static,
{
    match bias {
        Some(bias) => match <O as Backward<Flex, 3>>::prepare::<C>(op, [x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let ids = (prep.checkpoint(x), prep.checkpoint(weight));
                prep.finish(state(ids.0, ids.1), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
        None => match <O as Backward<Flex, 2>>::prepare::<C>(op, [x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let ids = (prep.checkpoint(x), prep.checkpoint(weight));
                prep.finish(state(ids.0, ids.1), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::activation::{attention_softmax, gelu};
    use crate::convolution::conv2d_3x3;
    use crate::nn_util::LinearRows;
    use crate::norm::FusedLayerNorm;
    use crate::pooling::max_pool2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::nn::{LayerNormConfig, LinearConfig, PaddingConfig2d};
    use burn::tensor::activation::softmax;
    use burn::tensor::{Device, Distribution, Tensor};

    fn max_rel<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    /// Under gradient checkpointing (burn's balanced strategy) the operations take their other
    /// conversion path: the gradients must still be burn's.
    #[test]
    fn gradients_under_gradient_checkpointing_match_burns() {
        let device = Device::flex().autodiff().gradient_checkpointing();
        // image side: convolution → max-pool
        let conv = Conv2dConfig::new([3, 4], [3, 3]).with_padding(PaddingConfig2d::Same).init(&device);
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let x = Tensor::<4>::random([2, 3, 8, 6], Distribution::Normal(0.0, 1.0), &device);
        let r = Tensor::<4>::random([2, 4, 4, 3], Distribution::Normal(0.0, 1.0), &device);
        let image = |ours: bool| {
            let x = x.clone().require_grad();
            let y = if ours { max_pool2d(&pool, conv2d_3x3(&conv, x.clone())) } else { pool.forward(conv.forward(x.clone())) };
            let g = (y * r.clone()).sum().backward();
            (x.grad(&g).unwrap(), conv.weight.grad(&g).unwrap())
        };
        let ((x0, w0), (x1, w1)) = (image(true), image(false));
        assert!(max_rel(x0, x1) < 1e-5 && max_rel(w0, w1) < 1e-5, "image side");
        // text side: Linear → GELU → layer norm → attention softmax
        let lin = LinearConfig::new(8, 8).init(&device);
        let norm = LayerNormConfig::new(8).init(&device);
        let t = Tensor::<3>::random([2, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<2>::zeros([2, 8], &device);
        let q = Tensor::<4>::random([2, 1, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let text = |ours: bool| {
            let t = t.clone().require_grad();
            let h = if ours { norm.forward_fused(gelu(lin.forward_rows(t.clone()))) } else { norm.forward(burn::tensor::activation::gelu(lin.forward(t.clone()))) };
            let scores = h.unsqueeze_dim::<4>(1) * q.clone();
            let a = if ours { attention_softmax(scores, 0.5, bias.clone()) } else { softmax(scores.mul_scalar(0.5), 3) };
            let g = (a * q.clone()).sum().backward();
            (t.grad(&g).unwrap(), lin.weight.grad(&g).unwrap(), norm.gamma.grad(&g).unwrap())
        };
        let ((t0, l0, n0), (t1, l1, n1)) = (text(true), text(false));
        assert!(max_rel(t0, t1) < 1e-4 && max_rel(l0, l1) < 1e-4 && max_rel(n0, n1) < 1e-4, "text side");
    }
}
