//! mmfuse's kernels: every hand-written CPU operation, with its autodiff backward, behind
//! functions and drop-in modules that model code calls without knowing the device.
//!
//! The rule: a model file calls [`gelu`]`(x)`, [`attention`], [`attention_softmax`], [`conv2d`]`(&conv, x)`,
//! [`conv_bn`]`(&conv, &bn, shortcut, activation, x)`,
//! [`max_pool2d`], [`relu6`], or uses [`Linear`], [`LayerNorm`] and [`Dropout`] (same fields,
//! hence the same records, as burn's), and each of them picks its path from the tensors: on the
//! CPU backend (`flex`) with f32 data our pass — one SIMD or `gemm` pass, and under autodiff one
//! operation of burn's graph with its own backward — and burn's own op on every other device,
//! dtype or shape. Model code never names a backend.
//!
//! Each kernel lives in a folder of its own: `mod.rs` (the dispatch and the tests against burn's
//! op), `forward.rs` (the pass over the data) and `backward.rs` (the autodiff operation).
//! [`autodiff`] holds what they share to reach burn-flex's tensors inside the graph, [`cache`]
//! what a layer derives once from its parameters for prediction (packed or folded weights),
//! [`math`] the vectorisable `exp`/`erf`, [`device`] the device choice and the compute pool.
//!
//! What this crate must not do: know about models, tasks or files. It depends on burn only.

pub mod attention;
pub mod autodiff;
pub mod cache;
pub mod conv2d;
pub mod conv_bn;
pub mod device;
pub mod dropout;
pub mod gelu;
pub mod layer_norm;
pub mod linear;
pub mod math;
pub mod max_pool2d;
pub mod relu6;
pub mod softmax;

pub use attention::attention;
pub use conv_bn::{Activation, conv_bn};
pub use conv2d::conv2d;
pub use device::{DeviceSpec, GpuAdapter, each_sample, join_streams, on_compute_pool};
pub use dropout::{Dropout, DropoutConfig};
pub use gelu::gelu;
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use linear::{Linear, LinearActivation, LinearConfig, PackedCache, forward_group};
pub use max_pool2d::{max_pool2d, max_pool2d_channels_last};
pub use relu6::relu6;
pub use softmax::{MASK_BIAS, attention_softmax};
