//! Model code of mmfuse: encoders, fusion methods and task heads.
//!
//! Everything here is written against burn's device-agnostic tensor API (`Tensor<D, K>`): no
//! backend type is named in model code; the device (and so the backend) is chosen in one place,
//! [`device`]. Every component comes as a `FooConfig` (hyper-parameters, serde) and a `Foo`
//! (`#[derive(Module)]`, learned state), built by `FooConfig::init(&device)`, as in `burn-nn`.
//!
//! - [`encoders`]: text and image encoders (from-scratch small Transformer and CNN).
//! - [`fusion`]: fusion methods (late concatenation baseline).
//! - [`heads`]: task heads and their losses (sequence classification, token tagging).
//! - [`pretrained`]: path-scoped safetensors loading with errors naming tensor and shapes.
//! - [`batch`]: the tensors a model consumes ([`batch::Batch`]).
//! - [`task`]: the trait the trainer and the predictor drive ([`task::TaskModel`]).

pub mod batch;
pub mod device;
pub mod encoders;
pub mod fusion;
pub mod heads;
pub mod nn_util;
pub mod pretrained;
pub mod task;

pub use batch::{Batch, Targets};
pub use task::{Prediction, TaskKind, TaskModel};
