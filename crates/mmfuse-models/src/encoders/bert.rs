//! BERT text encoder (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers
//! for Language Understanding"), laid out like Hugging Face `transformers`' `BertModel` so that
//! its checkpoints load unchanged: bert-base-uncased, sentence-transformers' all-MiniLM-L6-v2,
//! and any other `BertModel` saved as `model.safetensors` (or PyTorch's `pytorch_model.bin`).
//!
//! Architecture: word + absolute position + token-type embeddings → LayerNorm → dropout, then
//! `num_hidden_layers` post-LN encoder layers (multi-head self-attention with an additive key
//! mask → dense → dropout → LayerNorm(x + ·); intermediate dense → GELU → dense → dropout →
//! LayerNorm(x + ·)), and an optional pooler (dense + tanh on the `[CLS]` state).
//!
//! Loading: [`BertModel::load`] reads a Hugging Face model folder (`config.json` parsed into
//! [`BertConfig`], `model.safetensors` with HF key names, optionally prefixed `bert.` as in
//! `BertFor*` checkpoints). Every weight becomes a trainable `Param`; a missing tensor or a
//! wrong shape is an error naming the file, the key and both shapes. [`BertConfig::init`] builds
//! a randomly initialised model of any size (tests, training from scratch).
//!
//! ```no_run
//! # use burn::tensor::{Device, Tensor, Int, Bool};
//! # use mmfuse_models::encoders::bert::BertModel;
//! let device = Device::flex();
//! let (bert, config) = BertModel::load("models/all-minilm-l6-v2".as_ref(), &device).unwrap();
//! # let (ids, mask): (Tensor<2, Int>, Tensor<2, Bool>) = todo!();
//! let hidden = bert.forward(ids, mask, None); // [B, L, config.hidden_size]
//! ```

use crate::layers::Activation;
use crate::pretrained::{LoadError, Weights};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::tensor::{Bool, Device, Int, Tensor};
use mmfuse_kernels::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use mmfuse_kernels::{PackedCache, attention, forward_group};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Hugging Face `BertConfig` (`config.json`), field names as HF spells them. Missing fields take
/// HF's defaults (those of bert-base-uncased); unknown fields are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    /// `gelu` (exact, erf), `gelu_new` / `gelu_pytorch_tanh` / `gelu_fast` (tanh approximation) or `relu`.
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: usize,
    /// Only `absolute` is supported.
    pub position_embedding_type: String,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            position_embedding_type: "absolute".into(),
        }
    }
}

impl BertConfig {
    /// Parse a Hugging Face `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        crate::pretrained::read_config(path.as_ref(), "BERT", Self::validate)
    }

    /// Check the hyper-parameters this implementation relies on.
    pub fn validate(&self) -> Result<(), String> {
        crate::pretrained::check_transformer_config(self.hidden_size, self.num_attention_heads, &self.hidden_act)?;
        if self.position_embedding_type != "absolute" {
            return Err(format!("unsupported position_embedding_type '{}' (only 'absolute')", self.position_embedding_type));
        }
        for (name, p) in [("hidden_dropout_prob", self.hidden_dropout_prob), ("attention_probs_dropout_prob", self.attention_probs_dropout_prob)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} {p} is not in [0, 1)"));
            }
        }
        Ok(())
    }

    fn act(&self) -> Activation {
        Activation::parse(&self.hidden_act).unwrap_or(Activation::Gelu)
    }

    /// A randomly initialised model (weights ~ N(0, `initializer_range`), LayerNorm 1/0, as HF
    /// initialises BERT), with a pooler. Panics if [`BertConfig::validate`] fails.
    pub fn init(&self, device: &Device) -> BertModel {
        if let Err(e) = self.validate() {
            panic!("invalid BertConfig: {e}");
        }
        let init = Initializer::Normal { mean: 0.0, std: self.initializer_range };
        let lin = |i: usize, o: usize| {
            let mut l = LinearConfig::new(i, o).with_initializer(init.clone()).init(device);
            if let Some(b) = l.bias.as_mut() {
                *b = Initializer::Zeros.init([o], device);
            }
            l
        };
        let emb = |n: usize| EmbeddingConfig::new(n, self.hidden_size).with_initializer(init.clone()).init(device);
        let ln = || LayerNormConfig::new(self.hidden_size).with_epsilon(self.layer_norm_eps).init(device);
        let h = self.hidden_size;
        let embeddings = BertEmbeddings {
            word_embeddings: emb(self.vocab_size),
            position_embeddings: emb(self.max_position_embeddings),
            token_type_embeddings: emb(self.type_vocab_size),
            layer_norm: ln(),
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
        };
        let layers = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertSelfAttention {
                    query: lin(h, h),
                    key: lin(h, h),
                    value: lin(h, h),
                    dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                    n_heads: self.num_attention_heads,
                    head_dim: h / self.num_attention_heads,
                    qkv: PackedCache::default(),
                },
                attention_output: lin(h, h),
                attention_norm: ln(),
                intermediate: lin(h, self.intermediate_size),
                output: lin(self.intermediate_size, h),
                output_norm: ln(),
                dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
                act: self.act(),
            })
            .collect();
        BertModel { embeddings, layers, pooler: Some(BertPooler { dense: lin(h, h) }), hidden_size: h, max_positions: self.max_position_embeddings }
    }
}

/// Word + position + token-type embeddings, LayerNorm, dropout (HF `embeddings.*`).
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
}

/// Multi-head self-attention with an additive key-padding mask (HF `attention.self.*`).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// Dropout on the attention probabilities.
    pub dropout: Dropout,
    pub n_heads: usize,
    pub head_dim: usize,
    /// Query, key and value weights side by side, packed at prediction (not part of the record;
    /// see `mmfuse_kernels::forward_group`).
    #[module(skip)]
    pub qkv: PackedCache,
}

impl BertSelfAttention {
    /// `x` `[B, L, H]`, `mask_bias` `[B, 1, 1, L]` (0 at real keys, a large negative value at
    /// padded keys) → context `[B, L, H]`.
    pub fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        let [b, l, _] = x.dims();
        // [B, L, H] each; head i is columns i·hd..(i+1)·hd
        let [q, k, v] = forward_group([&self.query, &self.key, &self.value], &self.qkv, x);
        let scale = (self.head_dim as f64).powf(-0.5);
        attention(q, k, v, self.n_heads, scale, mask_bias.reshape([b, l]), &self.dropout, false).0
    }
}

/// One post-LN encoder layer (HF `encoder.layer.N.*`).
#[derive(Module, Debug)]
pub struct BertLayer {
    pub attention: BertSelfAttention,
    /// `attention.output.dense`
    pub attention_output: Linear,
    /// `attention.output.LayerNorm`
    pub attention_norm: LayerNorm,
    /// `intermediate.dense`
    pub intermediate: Linear,
    /// `output.dense`
    pub output: Linear,
    /// `output.LayerNorm`
    pub output_norm: LayerNorm,
    /// Hidden dropout (after both output projections).
    pub dropout: Dropout,
    #[module(skip)]
    pub act: Activation,
}

impl BertLayer {
    pub fn forward(&self, x: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        let a = self.attention.forward(x.clone(), mask_bias);
        // x + dropout(dense(·)), the residual added as the dense layer stores its output at
        // prediction (the same values as dropout(dense(·)) + x)
        let x = self.attention_norm.forward(self.attention_output.forward_residual(a, x, &self.dropout));
        let f = self.act.after(&self.intermediate, x.clone());
        self.output_norm.forward(self.output.forward_residual(f, x, &self.dropout))
    }
}

/// Dense + tanh on the first (`[CLS]`) hidden state (HF `pooler.dense`).
#[derive(Module, Debug)]
pub struct BertPooler {
    pub dense: Linear,
}

/// The BERT encoder (HF `BertModel`).
#[derive(Module, Debug)]
pub struct BertModel {
    pub embeddings: BertEmbeddings,
    pub layers: Vec<BertLayer>,
    /// Absent when the checkpoint has no `pooler.*` weights (e.g. sentence-transformers models).
    pub pooler: Option<BertPooler>,
    pub hidden_size: usize,
    pub max_positions: usize,
}

impl BertModel {
    /// Load a Hugging Face BERT folder: `dir/config.json` and `dir/model.safetensors` (else
    /// `dir/pytorch_model.bin`).
    pub fn load(dir: &Path, device: &Device) -> Result<(BertModel, BertConfig), LoadError> {
        let config = BertConfig::from_file(dir.join("config.json"))?;
        let weights = Weights::open(Weights::folder_file(dir), device)?;
        let model = Self::from_weights(&weights, &config)?;
        Ok((model, config))
    }

    /// Build from already opened weights with HF `BertModel` key names (at the root of `w`, or
    /// under `bert.`).
    pub fn from_weights(w: &Weights, config: &BertConfig) -> Result<BertModel, LoadError> {
        config.validate().map_err(|reason| LoadError::Config { path: w.path().to_path_buf(), reason })?;
        let w = if !w.contains("embeddings.word_embeddings.weight") && w.contains("bert.embeddings.word_embeddings.weight") { w.pp("bert") } else { w.clone() };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let e = w.pp("embeddings");
        let embeddings = BertEmbeddings {
            word_embeddings: e.embedding("word_embeddings", config.vocab_size, h)?,
            position_embeddings: e.embedding("position_embeddings", config.max_position_embeddings, h)?,
            token_type_embeddings: e.embedding("token_type_embeddings", config.type_vocab_size, h)?,
            layer_norm: e.layer_norm("LayerNorm", h, eps)?,
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = w.pp(format!("encoder.layer.{i}"));
            let s = l.pp("attention.self");
            layers.push(BertLayer {
                attention: BertSelfAttention {
                    query: s.linear("query", h, h, true)?,
                    key: s.linear("key", h, h, true)?,
                    value: s.linear("value", h, h, true)?,
                    dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
                    n_heads: config.num_attention_heads,
                    head_dim: h / config.num_attention_heads,
                    qkv: PackedCache::default(),
                },
                attention_output: l.linear("attention.output.dense", h, h, true)?,
                attention_norm: l.layer_norm("attention.output.LayerNorm", h, eps)?,
                intermediate: l.linear("intermediate.dense", h, config.intermediate_size, true)?,
                output: l.linear("output.dense", config.intermediate_size, h, true)?,
                output_norm: l.layer_norm("output.LayerNorm", h, eps)?,
                dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
                act: config.act(),
            });
        }
        let pooler = if w.contains("pooler.dense.weight") { Some(BertPooler { dense: w.linear("pooler.dense", h, h, true)? }) } else { None };
        Ok(BertModel { embeddings, layers, pooler, hidden_size: h, max_positions: config.max_position_embeddings })
    }

    /// `ids` `[B, L]`, `mask` `[B, L]` (true at real tokens), `token_type_ids` `[B, L]` (zeros
    /// when `None`) → last hidden states `[B, L, hidden_size]` (padded positions included; they
    /// attend to the real tokens only). Panics if `L` exceeds `max_position_embeddings`.
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>, token_type_ids: Option<Tensor<2, Int>>) -> Tensor<3> {
        let [b, l] = ids.dims();
        assert!(l <= self.max_positions, "BERT input of {l} tokens is longer than max_position_embeddings {}", self.max_positions);
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device).unsqueeze_dim::<2>(0).repeat_dim(0, b);
        let types = token_type_ids.unwrap_or_else(|| Tensor::<2, Int>::zeros([b, l], &device));
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(ids) + e.token_type_embeddings.forward(types) + e.position_embeddings.forward(positions);
        let mut x = e.dropout.forward(e.layer_norm.forward(x));
        // HF: additive mask (1 - mask) * finfo(f32).min on the keys.
        let mask_bias = mask.bool_not().float().mul_scalar(f32::MIN).reshape([b, 1, 1, l]);
        for layer in &self.layers {
            x = layer.forward(x, mask_bias.clone());
        }
        x
    }

    /// HF's pooled output: `tanh(dense(hidden[:, 0]))` `[B, H]`; `None` without pooler weights.
    pub fn pooled(&self, hidden: Tensor<3>) -> Option<Tensor<2>> {
        let p = self.pooler.as_ref()?;
        let [b, _, h] = hidden.dims();
        let cls = hidden.slice([0..b, 0..1, 0..h]).reshape([b, h]);
        Some(p.dense.forward(cls).tanh())
    }
}

/// sentence-transformers' mean pooling + `Normalize`: the mean of `hidden` `[B, L, H]` over the
/// positions where `mask` is true, divided by its L2 norm (`max(‖x‖, 1e-12)`) → `[B, H]`.
pub fn mean_pooled_normalized(hidden: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
    let mean = crate::layers::masked_mean(hidden, mask);
    let norm = mean.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12); // [B, 1]
    mean / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_hf_json_with_defaults_and_rejects_bad_values() {
        let c: BertConfig = serde_json::from_str(r#"{"hidden_size": 384, "num_attention_heads": 12, "model_type": "bert"}"#).unwrap();
        assert_eq!((c.hidden_size, c.num_hidden_layers, c.vocab_size, c.layer_norm_eps), (384, 12, 30522, 1e-12));
        assert!(c.validate().is_ok());
        let bad = BertConfig { num_attention_heads: 5, ..c.clone() };
        assert!(bad.validate().unwrap_err().contains("not a multiple"));
        let bad = BertConfig { hidden_act: "swish".into(), ..c };
        assert!(bad.validate().unwrap_err().contains("swish"));
    }

    #[test]
    fn padding_does_not_change_real_token_states() {
        let d = Device::flex();
        d.seed(1);
        let cfg = BertConfig {
            vocab_size: 50,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 32,
            max_position_embeddings: 16,
            ..Default::default()
        };
        let m = cfg.init(&d);
        let ids = Tensor::<2, Int>::from_data(burn::tensor::TensorData::new(vec![5i64, 7, 9, 11], [1, 4]), &d);
        let mask = Tensor::<2, Bool>::from_data(burn::tensor::TensorData::new(vec![true; 4], [1, 4]), &d);
        let short = m.forward(ids, mask, None).into_data().try_to_vec::<f32>().unwrap();
        let ids = Tensor::<2, Int>::from_data(burn::tensor::TensorData::new(vec![5i64, 7, 9, 11, 0, 0], [1, 6]), &d);
        let mask = Tensor::<2, Bool>::from_data(burn::tensor::TensorData::new(vec![true, true, true, true, false, false], [1, 6]), &d);
        let long = m.forward(ids, mask, None).into_data().try_to_vec::<f32>().unwrap();
        let diff = short.iter().zip(&long[..short.len()]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "padding changed real-token states by {diff}");
    }
}
