//! Model code of mmfuse: encoders, fusion methods and task heads.
//!
//! Everything here is written against burn's device-agnostic tensor API (`Tensor<D, K>`): no
//! backend type is named in model code; the device (and so the backend) is chosen in one place,
//! [`device`]. Every component comes as a `FooConfig` (hyper-parameters, serde) and a `Foo`
//! (`#[derive(Module)]`, learned state), built by `FooConfig::init(&device)`, as in `burn-nn`.
//!
//! - [`encoders`]: text and image encoders (from scratch, and pretrained BERT, ResNet, ViT,
//!   CLIP, MobileNetV2 in Hugging Face / torchvision layouts).
//! - [`fusion`]: fusion methods (late concatenation baseline, MuSE, CLFA, MIM).
//! - [`activation`]: feed-forward activations by HF name; exact GELU fused on the CPU backend.
//! - [`attention`]: masked multi-head attention shared by the fusion methods.
//! - [`dropout`]: dropout with a fast, seed-reproducible mask.
//! - [`device`]: the device (and so the backend) choice, and how CPU work uses the compute pool
//!   ([`device::on_compute_pool`], [`device::join_streams`]).
//! - [`nn_util`]: masked pooling and losses, token-wise `Linear`s as one matmul
//!   ([`nn_util::LinearRows`]).
//! - [`pooling`]: 2×2 max-pooling fused on the CPU backend.
//! - [`convolution`]: 3×3 convolution with a CPU pass for prediction.
//! - [`heads`]: task heads and their losses (sequence classification, token tagging).
//! - [`pretrained`]: path-scoped safetensors / PyTorch checkpoint loading with errors naming
//!   tensor and shapes.
//! - [`batch`]: the tensors a model consumes ([`batch::Batch`]).
//! - [`task`]: the trait the trainer and the predictor drive ([`task::TaskModel`]).

pub mod activation;
pub mod attention;
pub mod batch;
pub mod convolution;
pub(crate) mod cpu_autodiff;
pub mod device;
pub mod dropout;
pub mod encoders;
pub mod fusion;
pub mod heads;
pub(crate) mod linear;
pub mod nn_util;
pub mod norm;
pub mod pooling;
pub mod pretrained;
pub mod task;

pub use batch::{Batch, Targets};
pub use task::{Prediction, TaskKind, TaskModel};
