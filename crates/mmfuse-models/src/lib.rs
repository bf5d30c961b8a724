//! The papers' models: encoders, fusion methods and task heads, one file per component.
//!
//! Everything here is written against burn's device-agnostic tensor API (`Tensor<D, K>`): no
//! backend type is named in model code, and no model file knows which device it runs on. The
//! operations with hand-written CPU passes (GELU, the attention softmax, layer norm, `Linear`,
//! the 3×3 convolution, the 2×2 max-pool, dropout) come from [`mmfuse_kernels`], which picks
//! the path from the tensors. Every component comes as a `FooConfig` (hyper-parameters) and a
//! `Foo` (`#[derive(Module)]`, learned state), built by `FooConfig::init(&device)`, as in
//! `burn-nn`.
//!
//! - [`config`]: `[model]` of a run configuration: shared settings and a tagged enum of
//!   per-method tables ([`config::Method`]), strict keys, the older flat layout migrated.
//! - [`registry`]: builds any method's model (MIM included) from the config and the shapes.
//! - [`package`]: the run folder as a model package: the files that fix a model's shape.
//! - [`encoders`]: text and image encoders (from scratch, and pretrained BERT, ResNet, ViT,
//!   CLIP, MobileNetV2 in Hugging Face / torchvision layouts).
//! - [`fusion`]: fusion methods (late concatenation baseline, MuSE, CLFA, MIM).
//! - [`heads`]: task heads and their losses (sequence classification, token tagging).
//! - [`layers`]: building blocks the encoders and fusion methods share (masked attention,
//!   activations by HF name, masked pooling).
//! - [`pretrained`]: path-scoped safetensors / PyTorch checkpoint loading with errors naming
//!   tensor and shapes.
//! - [`batch`]: the tensors a model consumes ([`batch::Batch`]).
//! - [`task`]: the trait the trainer and the predictor drive ([`task::TaskModel`]).
//!
//! What this crate must not do: read corpora (it reads only a run folder's small shape files),
//! train, or hand-write CPU kernels.

pub mod batch;
pub mod config;
pub mod encoders;
pub mod fusion;
pub mod heads;
pub mod layers;
pub mod package;
pub mod pretrained;
pub mod registry;
pub mod task;

pub use batch::{Batch, Targets};
pub use task::{Prediction, TaskKind, TaskModel};
