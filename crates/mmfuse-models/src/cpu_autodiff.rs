//! Our CPU passes inside burn's autodiff graph: getting at burn-flex's tensors behind a
//! [`Tensor`] and back, plain (prediction) or tracked (training).
//!
//! burn 0.22 routes every tensor through its `Dispatch` backend. [`Tensor::try_into_primitive`]
//! and [`Tensor::from_primitive`] convert between a `Tensor` and a concrete backend's primitive:
//! `Flex`'s [`FlexTensor`] without autodiff, or an autodiff tensor of `Autodiff<Flex, C>` (the
//! flex tensor plus its graph node) with autodiff, `C` being the device's gradient-checkpointing
//! strategy. An operation with its own backward is a type implementing burn-autodiff's
//! [`Backward`](burn::backend::autodiff::ops::Backward), registered as burn's own operations
//! register theirs (see `convolution`).

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
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
pub(crate) fn flex_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
