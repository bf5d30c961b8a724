//! Feed-forward activations by their Hugging Face `hidden_act` names ([`Activation`]); exact
//! GELU is the kernels crate's ([`mmfuse_kernels::gelu`]).

use burn::tensor::Tensor;
use burn::tensor::activation::{gelu_approximate, relu, sigmoid};
use mmfuse_kernels::{Linear, LinearActivation, gelu};

/// A feed-forward activation, parsed from HF's `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x·Φ(x)` with erf (HF `"gelu"`).
    Gelu,
    /// Tanh approximation of GELU (HF `"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`).
    GeluTanh,
    /// CLIP's `x·σ(1.702·x)` (HF `"quick_gelu"`).
    QuickGelu,
    Relu,
}

impl Activation {
    /// The HF names this implementation understands.
    pub const SUPPORTED: &'static str = "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu";

    /// Parse an HF `hidden_act` name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "quick_gelu" => Some(Self::QuickGelu),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    /// `self.forward(lin.forward(x))`; GELU and ReLU run inside the layer's product at
    /// prediction on the CPU ([`Linear::forward_activated`]), over each block of output while
    /// it is in cache.
    pub fn after<const D: usize>(&self, lin: &Linear, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => lin.forward_activated(x, LinearActivation::Gelu),
            Self::Relu => lin.forward_activated(x, LinearActivation::Relu),
            Self::GeluTanh | Self::QuickGelu => self.forward(lin.forward(x)),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => gelu(x),
            Self::GeluTanh => gelu_approximate(x),
            Self::QuickGelu => x.clone() * sigmoid(x.mul_scalar(1.702)),
            Self::Relu => relu(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn quick_gelu_is_x_sigmoid_1702x() {
        let d = Device::flex();
        let x = Tensor::<1>::from_floats([-2.0, 0.0, 1.0], &d);
        let y = Activation::QuickGelu.forward(x).into_data().try_to_vec::<f32>().unwrap();
        for (v, x) in y.iter().zip([-2.0f32, 0.0, 1.0]) {
            assert!((v - x / (1.0 + (-1.702 * x).exp())).abs() < 1e-6);
        }
    }
}
