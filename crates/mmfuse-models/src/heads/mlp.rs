//! An MLP head: Linear → GELU → dropout → Linear. Applied to a pooled vector for sequence
//! classification or to every token for tagging (softmax tagging; the CRF head comes with MuSE).
//!
//! No paper's own component: the head of the concat baseline. The papers' heads live with their models (MuSE: an MLP on
//! the fused cls, §5.2 of its reading notes, `shared/seeds/001_*`; CLFA: dropout + Linear, shared/METHODS.md §2
//! "Fusion").

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use mmfuse_kernels::{Dropout, DropoutConfig, Linear, LinearActivation, LinearConfig};

/// Configuration of [`MlpHead`].
#[derive(Config, Debug)]
pub struct MlpHeadConfig {
    /// Input size.
    pub d_input: usize,
    /// Hidden size.
    pub d_hidden: usize,
    /// Number of outputs (classes or tags).
    pub n_outputs: usize,
    /// Dropout before the output layer. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct MlpHead {
    pub hidden: Linear,
    pub dropout: Dropout,
    pub output: Linear,
}

impl MlpHeadConfig {
    pub fn init(&self, device: &Device) -> MlpHead {
        MlpHead {
            hidden: LinearConfig::new(self.d_input, self.d_hidden).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(self.d_hidden, self.n_outputs).init(device),
        }
    }
}

impl MlpHead {
    /// `[..., d_input]` → `[..., n_outputs]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.output.forward(self.dropout.forward(self.hidden.forward_activated(x, LinearActivation::Gelu)))
    }
}
