//! The text encoder of a fusion model: either the small Transformer trained from scratch or a
//! pretrained BERT (HF `BertModel` layout). Fusion models hold a [`TextEncoder`] and only ask
//! it for hidden states `[B, L, d]`, so every method runs on either.

use super::bert::{BertConfig, BertModel};
use super::text_transformer::{TextTransformer, TextTransformerConfig};
use crate::pretrained::LoadError;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which text encoder, with its hyper-parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TextEncoderConfig {
    /// [`TextTransformer`] trained from scratch on the run's word-level vocabulary.
    Scratch(TextTransformerConfig),
    /// BERT; its weights come from a pretrained folder (see [`TextEncoder::load_bert`]) or, when
    /// a run folder is reloaded, from the run's checkpoint.
    Bert(BertConfig),
}

impl Config for TextEncoderConfig {}

impl std::fmt::Display for TextEncoderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

impl From<TextTransformerConfig> for TextEncoderConfig {
    fn from(c: TextTransformerConfig) -> Self {
        TextEncoderConfig::Scratch(c)
    }
}

impl TextEncoderConfig {
    /// Hidden size of the states the encoder returns.
    pub fn d_model(&self) -> usize {
        match self {
            TextEncoderConfig::Scratch(c) => c.d_model,
            TextEncoderConfig::Bert(c) => c.hidden_size,
        }
    }

    /// Longest input the encoder accepts (position embeddings).
    pub fn max_len(&self) -> usize {
        match self {
            TextEncoderConfig::Scratch(c) => c.max_len,
            TextEncoderConfig::Bert(c) => c.max_position_embeddings,
        }
    }

    /// Randomly initialised weights (BERT without its pooler, which fusion models never use).
    pub fn init(&self, device: &Device) -> TextEncoder {
        match self {
            TextEncoderConfig::Scratch(c) => TextEncoder::Scratch(c.init(device)),
            TextEncoderConfig::Bert(c) => {
                let mut m = c.init(device);
                m.pooler = None;
                TextEncoder::Bert(m)
            }
        }
    }
}

/// A text encoder: ids `[B, L]` and mask `[B, L]` → hidden states `[B, L, d]`.
#[derive(Module, Debug)]
pub enum TextEncoder {
    Scratch(TextTransformer),
    Bert(BertModel),
}

impl TextEncoder {
    /// Load a pretrained BERT folder (`config.json`, `model.safetensors`), pooler dropped.
    pub fn load_bert(dir: &Path, device: &Device) -> Result<(TextEncoder, BertConfig), LoadError> {
        let (mut m, c) = BertModel::load(dir, device)?;
        m.pooler = None;
        Ok((TextEncoder::Bert(m), c))
    }

    /// Hidden states `[B, L, d]` (padding positions included).
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<3> {
        match self {
            TextEncoder::Scratch(m) => m.forward(ids, mask),
            TextEncoder::Bert(m) => m.forward(ids, mask, None),
        }
    }
}
