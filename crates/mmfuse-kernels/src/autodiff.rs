//! Our CPU passes inside burn's autodiff graph: getting at burn-flex's tensors behind a
//! [`Tensor`] and back, plain (prediction) or tracked (training).
//!
//! burn 0.22 routes every tensor through its `Dispatch` backend. [`Tensor::try_into_primitive`]
//! and [`Tensor::from_primitive`] convert between a `Tensor` and a concrete backend's primitive:
//! `Flex`'s [`FlexTensor`] without autodiff, or an autodiff tensor of `Autodiff<Flex, C>` (the
//! flex tensor plus its graph node) with autodiff, `C` being the device's gradient-checkpointing
//! strategy. An operation with its own backward is a type implementing burn-autodiff's
//! [`Backward`](burn::backend::autodiff::ops::Backward), registered as burn's own operations
//! register theirs (see [`conv2d`](crate::conv2d)). [`gemm_strided`] is the matrix product they share.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{DType, Tensor, TensorData};

/// burn-flex under autodiff, with checkpointing strategy `C`.
pub type FlexAutodiff<C> = Autodiff<Flex, C>;

/// A tracked tensor of [`FlexAutodiff`]: the flex tensor and its node in the graph.
pub type TrackedTensor = FloatTensor<Autodiff<Flex>>;

/// `x` as a contiguous f32 flex tensor, if it is one of the CPU backend without autodiff.
pub fn plain<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    stored(x).map(contiguous)
}

/// `x` as stored (its storage and layout, nothing copied: e.g. a cache's key), if it is an f32
/// tensor of the CPU backend without autodiff.
pub fn stored<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    if x.dtype() != DType::F32 {
        return None;
    }
    x.clone().try_into_primitive::<Flex>().ok()
}

/// `x` as a tracked tensor of the CPU backend under autodiff with checkpointing `C`, if it is one.
pub fn tracked<C: CheckpointStrategy, const D: usize>(x: &Tensor<D>) -> Option<TrackedTensor>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    if x.dtype() != DType::F32 {
        return None;
    }
    x.clone().try_into_primitive::<FlexAutodiff<C>>().ok()
}

/// A flex tensor back into a [`Tensor`] of the CPU backend without autodiff.
pub fn from_plain<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t)
}

/// A tracked tensor back into a [`Tensor`] of the CPU backend under autodiff with `C`.
pub fn from_tracked<C: CheckpointStrategy, const D: usize>(t: TrackedTensor) -> Tensor<D>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    Tensor::from_primitive::<FlexAutodiff<C>>(t)
}

/// `t` with a contiguous row-major layout (copied only when it has another).
pub fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// The row-major values of an f32 flex tensor (copying only a non-contiguous one).
pub fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => std::borrow::Cow::Borrowed(v),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("an f32 tensor").to_vec()),
    }
}

/// A flex tensor of `shape` holding `values` (row-major).
pub fn flex_tensor(values: Vec<f32>, shape: impl Into<Vec<usize>>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// The shape of a flex tensor.
pub fn shape(t: &FlexTensor) -> Vec<usize> {
    let s = t.layout().shape();
    (0..s.num_dims()).map(|i| s[i]).collect()
}

/// The shape of a flex tensor of rank `D`.
pub fn dims<const D: usize>(t: &FlexTensor) -> [usize; D] {
    let s = t.layout().shape();
    std::array::from_fn(|i| s[i])
}

/// The element-wise sum of `parts` (each `len` values), added in their order: with parts of
/// fixed chunks of the work, the same sums whatever the threads (training resumes exactly).
pub fn sum_in_order(parts: impl IntoIterator<Item = Vec<f32>>, len: usize) -> Vec<f32> {
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
pub fn gemm_strided(
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
        m > 0 && n > 0 && k > 0 && last(dst_rs, 1, m, n) < dst.len() && last(lhs_rs, lhs_cs, m, k) < lhs.len() && last(rhs_rs, rhs_cs, k, n) < rhs.len(),
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
pub fn record_with_optional_bias<C, O, S>(
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
