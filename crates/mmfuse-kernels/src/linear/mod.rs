//! A `Linear` layer over rows as one autodiff operation on the CPU ([`Linear`]).
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

mod backward;

use crate::device::is_cpu;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{DType, Device, Tensor};

/// Configuration of a [`Linear`], as `burn::nn::LinearConfig` (the same initialisation, drawn in
/// the same order).
#[derive(Debug, Config)]
pub struct LinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether a bias is learned. Default: true.
    #[config(default = true)]
    pub bias: bool,
    /// Initialiser of weight and bias. Default: burn's (Kaiming uniform, gain 1/√3).
    #[config(default = "Initializer::KaimingUniform{gain:1.0/3.0_f64.sqrt(), fan_out_only:false}")]
    pub initializer: Initializer,
}

impl LinearConfig {
    /// A layer with weights drawn as burn's `LinearConfig::init` draws them.
    pub fn init(&self, device: &Device) -> Linear {
        let l = burn::nn::LinearConfig::new(self.d_input, self.d_output).with_bias(self.bias).with_initializer(self.initializer.clone()).init(device);
        Linear { weight: l.weight, bias: l.bias }
    }
}

/// `y = x·W + b` over the last axis: a drop-in for `burn::nn::Linear` with the same fields (and
/// so the same records), applied to all leading positions of `x` `[..., d_in]` (batch × tokens)
/// as ONE `[rows, d_in] × [d_in, d_out]` matmul; under autodiff on the CPU backend as one
/// operation with the bias fused (`backward.rs`).
///
/// burn's `Linear::forward` on a `[B, L, d]` input keeps the batch axis when `L` is a multiple
/// of 32 (its matmul tiling policy): the CPU backend then runs B separate `[L, d_in]` products
/// and re-packs the weight for each of them, most of the cost for our 64-token sequences.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_input, d_output]`.
    pub weight: Param<Tensor<2>>,
    /// `[d_output]`.
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        let trained = device.is_autodiff() && is_cpu(&device) && x.dtype() == DType::F32;
        if D < 2 || (D == 2 && !trained) {
            return self.with_burn(x);
        }
        let dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let x = x.reshape([rows, dims[D - 1]]);
        let y = trained.then(|| self.fused(&x)).flatten().unwrap_or_else(|| self.with_burn(x));
        let mut out = dims;
        out[D - 1] = y.dims()[1];
        y.reshape(out)
    }

    /// `x` `[rows, d_in]` as one autodiff operation, if `x` and the parameters are f32 tensors
    /// of the CPU backend under autodiff.
    fn fused(&self, x: &Tensor<2>) -> Option<Tensor<2>> {
        let weight = self.weight.val();
        let bias = self.bias.as_ref().map(|b| b.val());
        backward::trained::<NoCheckpointing>(x, &weight, bias.as_ref()).or_else(|| backward::trained::<BalancedCheckpointing>(x, &weight, bias.as_ref()))
    }

    /// The layer through burn's op (the reference the fused one is tested against).
    pub fn with_burn<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
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
                let y = if ours { lin.fused(&x).expect("the operation applies") } else { lin.with_burn(x.clone()) };
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
        let g = lin.fused(&x).unwrap().sum().backward();
        let g_burn = lin.with_burn(x.clone()).sum().backward();
        assert!(rel(x.grad(&g).unwrap(), x.grad(&g_burn).unwrap()) < 1e-6);
        assert!(lin.weight.grad(&g).is_none());
        // not an autodiff tensor: burn's layer
        let plain = LinearConfig::new(4, 3).init(&Device::flex());
        assert!(plain.fused(&Tensor::<2>::zeros([2, 4], &Device::flex())).is_none());
    }
}
