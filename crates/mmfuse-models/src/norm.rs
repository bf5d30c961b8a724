//! Layer normalisation with a fused CPU pass for training ([`FusedLayerNorm`]).
//!
//! Under autodiff burn builds `LayerNorm` from about ten tensor operations (mean, subtract,
//! square, mean, add ε, square root, divide, scale, shift), each a pass over the activations
//! with its own buffer and its own backward. On the CPU backend this does it as one autodiff
//! operation ([`cpu_autodiff`](crate::cpu_autodiff)): one pass per row forward, keeping each
//! row's mean and `1/σ`, and one pass per row backward,
//! `dx = (1/σ)·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))` with `dx̂ = dy·γ`, the parameters' gradients
//! summed over rows. Without autodiff burn-flex's layer norm is already one pass and is used
//! as is, as it is on other devices and dtypes.

use crate::cpu_autodiff::{FlexAutodiff, flex_tensor, from_tracked, record_with_optional_bias, shape, sum_in_order, tracked, values};
use crate::device::is_cpu;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::module::{Content, DisplaySettings, ModuleDisplay};
use burn::nn::LayerNorm;
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Rows per parallel chunk: each chunk sums its own parameter gradients.
const ROWS_PER_CHUNK: usize = 64;

/// [`LayerNorm`] over the last axis, fused under autodiff on the CPU backend.
pub trait FusedLayerNorm {
    /// The same as `LayerNorm::forward`.
    fn forward_fused<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>;
}

impl FusedLayerNorm for LayerNorm {
    fn forward_fused<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        let width = x.dims()[D - 1];
        if !device.is_autodiff() || !is_cpu(&device) || x.dtype() != DType::F32 || width == 0 || x.shape().num_elements() == 0 {
            return self.forward(x);
        }
        let Some(epsilon) = epsilon(self) else {
            return self.forward(x);
        };
        let gamma = self.gamma.val();
        let beta = self.beta.as_ref().map(|b| b.val());
        trained::<NoCheckpointing, D>(&x, &gamma, beta.as_ref(), epsilon)
            .or_else(|| trained::<BalancedCheckpointing, D>(&x, &gamma, beta.as_ref(), epsilon))
            .unwrap_or_else(|| self.forward(x))
    }
}

/// The module's ε. burn keeps the field private and shows it only through the module's
/// display content (`ModuleDisplay::custom_content`), whose value is Rust's shortest
/// round-tripping decimal of the `f64`: parsing it back gives the same number.
fn epsilon(norm: &LayerNorm) -> Option<f64> {
    let content = norm.custom_content(Content::new(DisplaySettings::new()))?;
    content.attributes.iter().find(|a| a.name == "epsilon")?.value.parse().ok()
}

/// Each row's mean and `1/σ`, kept for the backward.
#[derive(Clone, Debug)]
struct RowStats {
    mean: Arc<Vec<f32>>,
    rstd: Arc<Vec<f32>>,
}

/// The operation, if the tensors are f32 ones of the CPU backend under autodiff with `C`.
fn trained<C: CheckpointStrategy, const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, beta: Option<&Tensor<1>>, epsilon: f64) -> Option<Tensor<D>>
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

/// `y = (x − mean)/σ · γ + β` per row of `x` (rows of `γ.len()` values), `σ = √(var + ε)`
/// with the biased variance; with each row's mean and `1/σ`.
fn forward(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, epsilon: f32) -> (Vec<f32>, RowStats) {
    let d = gamma.len();
    let rows = x.len() / d;
    let mut y = vec![0f32; x.len()];
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    y.par_chunks_mut(d * ROWS_PER_CHUNK)
        .zip(mean.par_chunks_mut(ROWS_PER_CHUNK))
        .zip(rstd.par_chunks_mut(ROWS_PER_CHUNK))
        .enumerate()
        .for_each(|(chunk, ((y, mean), rstd))| {
            let x = &x[chunk * d * ROWS_PER_CHUNK..];
            for (r, y) in y.chunks_mut(d).enumerate() {
                let x = &x[r * d..(r + 1) * d];
                let m = x.iter().sum::<f32>() / d as f32;
                let var = x.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / d as f32;
                let s = 1.0 / (var + epsilon).sqrt();
                (mean[r], rstd[r]) = (m, s);
                match beta {
                    Some(beta) => {
                        for (((y, x), g), b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                            *y = (x - m) * s * g + b;
                        }
                    }
                    None => {
                        for ((y, x), g) in y.iter_mut().zip(x).zip(gamma) {
                            *y = (x - m) * s * g;
                        }
                    }
                }
            }
        });
    (y, RowStats { mean: Arc::new(mean), rstd: Arc::new(rstd) })
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::LayerNormConfig;
    use burn::tensor::{Device, Distribution};

    fn max_rel(a: Tensor<1>, b: Tensor<1>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    /// Output and gradients of ours and burn's for `Σ y · r` on `x` `[3, 37, 24]`: the largest
    /// relative differences (output, input, γ, β).
    fn diffs(norm: &LayerNorm, shift: f32) -> [f32; 4] {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([3, 37, 24], Distribution::Normal(shift as f64, 2.0), &device);
        let r = Tensor::<3>::random([3, 37, 24], Distribution::Normal(0.0, 1.0), &device);
        let run = |ours: bool| {
            let x = x.clone().require_grad();
            let y = if ours { norm.forward_fused(x.clone()) } else { norm.forward(x.clone()) };
            let g = (y.clone() * r.clone()).sum().backward();
            let gb = norm.beta.as_ref().map(|b| b.grad(&g).expect("β gradient"));
            (y.inner().flatten::<1>(0, 2), x.grad(&g).unwrap().flatten::<1>(0, 2), norm.gamma.grad(&g).expect("γ gradient"), gb)
        };
        let (y0, x0, g0, b0) = run(true);
        let (y1, x1, g1, b1) = run(false);
        let b = match (b0, b1) {
            (Some(a), Some(b)) => max_rel(a, b),
            (None, None) => 0.0,
            _ => f32::INFINITY,
        };
        [max_rel(y0, y1), max_rel(x0, x1), max_rel(g0, g1), b]
    }

    #[test]
    fn output_and_gradients_match_burns() {
        let device = Device::flex().autodiff();
        // random γ and β, so that their gradients and dx̂ = dy·γ are not trivial
        let mut norm = LayerNormConfig::new(24).init(&device);
        norm.gamma = burn::module::Param::from_tensor(Tensor::random([24], Distribution::Normal(1.0, 0.5), &device));
        norm.beta = Some(burn::module::Param::from_tensor(Tensor::random([24], Distribution::Normal(0.0, 0.5), &device)));
        let [y, x, g, b] = diffs(&norm, 3.0);
        assert!(y < 1e-5 && x < 1e-4 && g < 1e-4 && b < 1e-5, "output {y}, input {x}, γ {g}, β {b}");
        // no β, a large ε
        let mut norm = LayerNormConfig::new(24).with_epsilon(0.5).with_bias(false).init(&device);
        norm.gamma = burn::module::Param::from_tensor(Tensor::random([24], Distribution::Normal(1.0, 0.5), &device));
        let [y, x, g, b] = diffs(&norm, 0.0);
        assert!(y < 1e-5 && x < 1e-4 && g < 1e-4 && b == 0.0, "output {y}, input {x}, γ {g}, β {b}");
    }

    #[test]
    fn reads_back_epsilon() {
        let device = Device::flex();
        for eps in [1e-5, 1e-12, 0.5, 1.0 / 3.0, 0.0] {
            assert_eq!(epsilon(&LayerNormConfig::new(4).with_epsilon(eps).init(&device)), Some(eps));
        }
    }

    #[test]
    fn a_hand_computed_row_and_frozen_parameters() {
        let device = Device::flex().autodiff();
        let norm = LayerNormConfig::new(4).with_epsilon(0.0).init(&device).no_grad();
        // mean 2.5, variance 1.25: x̂ = (x − 2.5)/√1.25
        let x = Tensor::<2>::from_data([[1.0f32, 2.0, 3.0, 4.0]], &device).require_grad();
        let y = norm.forward_fused(x.clone());
        let s = 1.0 / 1.25f32.sqrt();
        let want = [-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s];
        for (y, w) in y.clone().into_data().try_to_vec::<f32>().unwrap().iter().zip(want) {
            assert!((y - w).abs() < 1e-6, "{y} vs {w}");
        }
        // the gradient of Σ y is zero (a shift of the row does not change x̂)
        let g = y.sum().backward();
        assert!(x.grad(&g).unwrap().abs().max().into_scalar::<f32>() < 1e-6);
        assert!(norm.gamma.grad(&g).is_none());
    }
}
