//! Layer normalisation with a fused CPU pass for training ([`LayerNorm`]).
//!
//! Under autodiff burn builds `LayerNorm` from about ten tensor operations (mean, subtract,
//! square, mean, add ε, square root, divide, scale, shift), each a pass over the activations
//! with its own buffer and its own backward. On the CPU backend this does it as one autodiff
//! operation ([`cpu_autodiff`](crate::autodiff)): one pass per row forward, keeping each
//! row's mean and `1/σ`, and one pass per row backward,
//! `dx = (1/σ)·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))` with `dx̂ = dy·γ`, the parameters' gradients
//! summed over rows. Without autodiff burn-flex's layer norm is already one pass and is used
//! as is, as it is on other devices and dtypes.

mod backward;
mod forward;

use crate::autodiff::{contiguous, flex_tensor, from_plain, plain, stored, values};
use crate::device::{is_cpu, is_cpu_without_autodiff};
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{DType, Device, Tensor};

/// Configuration of a [`LayerNorm`], as `burn::nn::LayerNormConfig`.
#[derive(Debug, Config)]
pub struct LayerNormConfig {
    /// The size of the normalised (last) axis.
    pub d_model: usize,
    /// Added to the variance for numerical stability. Default: 1e-5.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Whether a shift β is learned. Default: true.
    #[config(default = true)]
    pub bias: bool,
}

impl LayerNormConfig {
    /// A layer norm with γ = 1 and β = 0.
    pub fn init(&self, device: &Device) -> LayerNorm {
        LayerNorm {
            gamma: Initializer::Ones.init([self.d_model], device),
            beta: self.bias.then(|| Initializer::Zeros.init([self.d_model], device)),
            epsilon: self.epsilon,
        }
    }
}

/// Layer normalisation over the last axis, `y = (x − mean)/√(var + ε) · γ + β`
/// ([Layer Normalization](https://arxiv.org/abs/1607.06450)): a drop-in for `burn::nn::LayerNorm`
/// with the same fields, so its records (and so checkpoints) are the same.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// The learned scale γ.
    pub gamma: Param<Tensor<1>>,
    /// The learned shift β (optional).
    pub beta: Option<Param<Tensor<1>>>,
    /// ε.
    pub epsilon: f64,
}

impl LayerNorm {
    /// The layer over `x` `[..., d_model]`: one autodiff operation under autodiff on the CPU
    /// backend, burn's `layer_norm` elsewhere.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        let width = x.dims()[D - 1];
        let gamma = self.gamma.val();
        let beta = self.beta.as_ref().map(|b| b.val());
        if device.is_autodiff() && is_cpu(&device) && x.dtype() == DType::F32 && width > 0 && x.shape().num_elements() > 0 {
            let fused = backward::trained::<NoCheckpointing, D>(&x, &gamma, beta.as_ref(), self.epsilon)
                .or_else(|| backward::trained::<BalancedCheckpointing, D>(&x, &gamma, beta.as_ref(), self.epsilon));
            if let Some(y) = fused {
                return y;
            }
        }
        if is_cpu_without_autodiff(&device) && x.dtype() == DType::F32 && width > 0 {
            return self.predicted(x);
        }
        self.with_burn(x)
    }

    /// At prediction on the CPU backend: `x`'s rows normalised ([`forward::predict`]), in place
    /// where nothing else holds its storage, else into a new one; burn's op unless `x` and the
    /// parameters are f32 tensors of that backend with `γ` and `β` as wide as `x`'s rows.
    fn predicted<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let width = x.dims()[D - 1];
        let fits = |p: &Param<Tensor<1>>| plain(&p.val()).filter(|p| p.layout().num_elements() == width);
        let Some(gamma) = fits(&self.gamma) else { return self.with_burn(x) };
        let beta = match &self.beta {
            Some(b) => match fits(b) {
                Some(b) => Some(b),
                None => return self.with_burn(x),
            },
            None => None,
        };
        let Some(t) = stored(&x) else { return self.with_burn(x) };
        let dims = x.dims();
        // x given up, so that `t` alone holds the storage unless the caller keeps x too
        drop(x);
        let mut t = contiguous(t);
        let (gamma, beta) = (values(&gamma), beta.as_ref().map(values));
        let (start, end) = t.layout().contiguous_offsets().expect("a contiguous layout");
        if t.is_unique() {
            forward::predict(forward::Rows::InPlace(&mut t.storage_mut::<f32>()[start..end]), &gamma, beta.as_deref(), self.epsilon as f32);
            return from_plain::<D>(t);
        }
        let mut y = Vec::<f32>::with_capacity(end - start);
        forward::predict(
            forward::Rows::Into(&t.storage::<f32>()[start..end], &mut y.spare_capacity_mut()[..end - start]),
            &gamma,
            beta.as_deref(),
            self.epsilon as f32,
        );
        // SAFETY: `predict` wrote every row of `y`.
        unsafe { y.set_len(end - start) };
        from_plain::<D>(flex_tensor(y, dims))
    }

    /// The layer through burn's op (the reference the fused one is tested against).
    pub fn with_burn<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::layer_norm(x, self.gamma.val(), self.beta.as_ref().map(|b| b.val()), self.epsilon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
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
            let y = if ours { norm.forward(x.clone()) } else { norm.with_burn(x.clone()) };
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
    fn prediction_in_place_matches_burns_and_leaves_a_kept_input_alone() {
        let device = Device::flex();
        for (width, bias, rows) in [(24, true, 37), (256, true, 130), (33, false, 3), (1, true, 2)] {
            let mut norm = LayerNormConfig::new(width).with_bias(bias).init(&device);
            norm.gamma = burn::module::Param::from_tensor(Tensor::random([width], Distribution::Normal(1.0, 0.5), &device));
            if bias {
                norm.beta = Some(burn::module::Param::from_tensor(Tensor::random([width], Distribution::Normal(0.0, 0.5), &device)));
            }
            let x = Tensor::<3>::random([2, rows, width], Distribution::Normal(3.0, 2.0), &device);
            let before = x.clone().into_data().try_to_vec::<f32>().unwrap();
            let want = norm.with_burn(x.clone());
            // x kept by the caller: normalised in a copy, x unchanged
            let kept = norm.forward(x.clone());
            assert!(max_rel(kept.clone().flatten(0, 2), want.clone().flatten(0, 2)) < 1e-5, "width {width}");
            assert_eq!(x.clone().into_data().try_to_vec::<f32>().unwrap(), before);
            // x given up: in place, the same values
            let owned = norm.forward(x.clone() * 1.0);
            assert_eq!(owned.into_data().try_to_vec::<f32>().unwrap(), kept.clone().into_data().try_to_vec::<f32>().unwrap());
            // a view (transposed back): the same values
            let view = x.clone().swap_dims(0, 1).swap_dims(0, 1);
            assert!(max_rel(norm.forward(view).flatten(0, 2), want.flatten(0, 2)) < 1e-5);
        }
        // a NaN stays in its row
        let norm = LayerNormConfig::new(20).init(&device);
        let mut v = vec![1f32; 60];
        v.iter_mut().enumerate().for_each(|(i, v)| *v = (i % 7) as f32);
        v[25] = f32::NAN;
        let y = norm.forward(Tensor::<2>::from_data(burn::tensor::TensorData::new(v, [3, 20]), &device)).into_data().try_to_vec::<f32>().unwrap();
        assert!(y[20..40].iter().all(|v| v.is_nan()) && y[..20].iter().chain(&y[40..]).all(|v| v.is_finite()));
    }

    #[test]
    fn a_hand_computed_row_and_frozen_parameters() {
        let device = Device::flex().autodiff();
        let norm = LayerNormConfig::new(4).with_epsilon(0.0).init(&device).no_grad();
        // mean 2.5, variance 1.25: x̂ = (x − 2.5)/√1.25
        let x = Tensor::<2>::from_data([[1.0f32, 2.0, 3.0, 4.0]], &device).require_grad();
        let y = norm.forward(x.clone());
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
