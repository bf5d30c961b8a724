//! Building blocks shared by the encoders and the fusion methods: masked multi-head attention,
//! activations by Hugging Face name, masked pooling. (The hand-written CPU operations under
//! them are the kernels crate's.)

pub mod activation;
pub mod attention;
pub mod pooling;

pub use activation::Activation;
pub use attention::{MASK_BIAS, MaskedAttention};
pub use pooling::masked_mean;
