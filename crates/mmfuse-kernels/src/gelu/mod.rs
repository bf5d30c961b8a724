//! The exact GELU ([`gelu`]) with a fused pass on the CPU backend (the HF `hidden_act` names
//! are `mmfuse_models::layers::Activation`; the attention softmax is in `crate::softmax`).
//!
//! burn-flex computes GELU one element at a time through a scalar `erff` (about 10 ns per
//! element): in MuSE-small's text encoder at batch 1 that was a quarter of the encoder's time.
//! On the CPU backend, [`gelu`] instead runs one SIMD pass over the tensor's f32 data (AVX2/FMA
//! or AVX-512 picked at run time by `pulp`), with erf from Abramowitz & Stegun 7.1.26 (absolute
//! error ≤ 1.5·10⁻⁷, the formula PyTorch's vectorised CPU `erf` uses) and a range-reduced
//! polynomial `exp`. Under autodiff the same pass also gives the derivative
//! `Φ(x) + x·φ(x)`, kept by an autodiff operation ([`cpu_autodiff`](crate::autodiff))
//! whose backward multiplies the output gradient by it. Other devices and dtypes use burn's
//! `gelu` for prediction; for training, `x/2·(1 + erf(x/√2))` from burn's `erf`, because burn
//! 0.22's generic `gelu_backward` (what the GPU backends run) is the derivative of the *tanh*
//! approximation while the forward is the exact GELU: gradients off by up to 2·10⁻³ absolute
//! at |x| ≈ 2 (found by the GPU parity tests, `mmfuse-models/tests/gpu_parity.rs`).

mod backward;
mod forward;

use crate::device::is_cpu;
use crate::math::for_chunks;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::tensor::{DType, Tensor};
pub(crate) use forward::GeluInPlace;

/// `x/2·(1 + erf(x/√2))` from burn's `erf`, whose derivative autodiff takes exactly.
fn erf_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().mul(x.mul_scalar(std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0)).mul_scalar(0.5)
}

/// Exact GELU, `x·Φ(x) = x/2·(1 + erf(x/√2))`, as BERT, ViT and PyTorch's `nn.GELU()` compute
/// it. Fused on the CPU backend (see the module docs); burn's `gelu` elsewhere.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !is_cpu(&device) || x.dtype() != DType::F32 {
        if device.is_autodiff() {
            return erf_gelu(x);
        }
        return burn::tensor::activation::gelu(x);
    }
    if !device.is_autodiff() {
        let mut data = x.into_data();
        if let Ok(v) = data.as_mut_slice::<f32>() {
            for_chunks(v, |c| pulp::Arch::new().dispatch(GeluInPlace(c)));
            return Tensor::from_data(data, &device);
        }
        return burn::tensor::activation::gelu(Tensor::from_data(data, &device));
    }
    backward::trained::<NoCheckpointing, D>(&x).or_else(|| backward::trained::<BalancedCheckpointing, D>(&x)).unwrap_or_else(|| erf_gelu(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};
    use forward::GeluWithDerivative;

    fn gelu_f64(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    fn dgelu_f64(x: f64) -> f64 {
        0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)) + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
    }

    fn grid() -> Vec<f32> {
        (0..=40_000).map(|i| -20.0 + i as f32 * 0.001).collect()
    }

    #[test]
    fn fused_gelu_and_derivative_match_the_f64_reference() {
        let xs = grid();
        let (mut y, mut dy) = (xs.clone(), xs.clone());
        pulp::Arch::new().dispatch(GeluWithDerivative(&mut y, &mut dy));
        let mut z = xs.clone();
        pulp::Arch::new().dispatch(GeluInPlace(&mut z));
        for (i, &x) in xs.iter().enumerate() {
            let (r, dr) = (gelu_f64(x as f64), dgelu_f64(x as f64));
            let tol = 4e-7 * (x as f64).abs().max(1.0);
            assert!((y[i] as f64 - r).abs() <= tol, "gelu({x}) = {} vs {r}", y[i]);
            assert!((dy[i] as f64 - dr).abs() <= 1e-6, "gelu'({x}) = {} vs {dr}", dy[i]);
            assert_eq!(z[i], y[i], "in-place and with-derivative passes agree at {x}");
        }
        let mut special = vec![f32::NAN, f32::INFINITY, 0.0, -0.0, 100.0, -100.0];
        pulp::Arch::new().dispatch(GeluInPlace(&mut special));
        assert!(special[0].is_nan(), "NaN propagates");
        assert_eq!(&special[1..], &[f32::INFINITY, 0.0, 0.0, 100.0, 0.0]);
    }

    #[test]
    fn tensor_gelu_matches_burn_on_cpu_with_and_without_autodiff() {
        let device = Device::flex();
        let x = Tensor::<3>::random([3, 7, 100], Distribution::Normal(0.0, 3.0), &device);
        let want = burn::tensor::activation::gelu(x.clone());
        let diff = (gelu(x.clone()) - want.clone()).abs().max().into_scalar::<f32>();
        assert!(diff < 2e-6, "inference: {diff}");

        // autodiff: same value, and the gradient of sum(gelu(x)·w) equals burn's
        let ad = device.autodiff();
        let w = Tensor::<3>::random([3, 7, 100], Distribution::Normal(0.0, 1.0), &ad);
        let grad_of = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
            let xa = Tensor::<3>::from_data(x.to_data(), &ad).require_grad();
            let y = f(xa.clone());
            let value = y.clone().inner();
            let grads = (y * w.clone()).sum().backward();
            (value, xa.grad(&grads).expect("x has a gradient"))
        };
        let (v_ours, g_ours) = grad_of(&|t| gelu(t));
        let (v_burn, g_burn) = grad_of(&|t| burn::tensor::activation::gelu(t));
        assert!((v_ours - v_burn).abs().max().into_scalar::<f32>() < 2e-6);
        let gd = (g_ours - g_burn).abs().max().into_scalar::<f32>();
        assert!(gd < 5e-6, "gradient differs by {gd}");
    }
}
