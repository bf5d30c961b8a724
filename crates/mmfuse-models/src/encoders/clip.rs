//! CLIP image and text encoders (Radford et al. 2021, "Learning Transferable Visual Models From
//! Natural Language Supervision"), laid out like Hugging Face `transformers`' `CLIPModel` so that
//! its checkpoints (openai/clip-vit-base-patch32, …) load unchanged.
//!
//! Both towers are pre-LN Transformers whose layers are `x + out_proj(MHA(layer_norm1(x)))`, then
//! `x + fc2(act(fc1(layer_norm2(x))))` (`act` = quick_gelu `x·σ(1.702x)` for the OpenAI models).
//! - Text (`text_model.*`): token + absolute position embeddings → encoder with a causal mask
//!   (and the key-padding mask) → `final_layer_norm`; the pooled state is the one at the EOS
//!   token: the first position of `eos_token_id`, or, for legacy configs whose `eos_token_id`
//!   is 2, the position of the largest token id (HF's rule) → `text_projection` (no bias).
//! - Vision (`vision_model.*`): patch conv (no bias) → prepend `class_embedding` → add
//!   `position_embedding` → `pre_layrnorm` (sic) → encoder; the `[CLS]` state → `post_layernorm`
//!   → `visual_projection` (no bias).
//! - `logits_per_image = exp(logit_scale) · norm(image_embeds) · norm(text_embeds)ᵀ`.
//!
//! Loading: [`ClipModel::load`] reads a Hugging Face model folder (`config.json` with
//! `text_config`, `vision_config` and `projection_dim`, parsed into [`ClipConfig`] with HF's
//! defaults for missing fields; `model.safetensors` with HF key names). A missing tensor or a
//! wrong shape is an error naming the file, the key and both shapes. Tokenisation is not done
//! here: the model folder's `tokenizer.json` (CLIP's byte-level BPE, `<|startoftext|>` …
//! `<|endoftext|>`) gives the ids.

use super::vit::SelfAttention;
use crate::layers::Activation;
use crate::pretrained::{LoadError, Weights};
use burn::module::{Module, Param};
use burn::nn::Embedding;
use burn::nn::conv::Conv2d;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mmfuse_kernels::{LayerNorm, Linear};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;

/// HF `CLIPTextConfig` (the `text_config` of `config.json`); missing fields take HF's defaults
/// (openai/clip-vit-base-patch32).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub pad_token_id: i64,
    pub bos_token_id: i64,
    /// The EOS id whose first occurrence is pooled; 2 selects the legacy rule (largest id). HF
    /// also allows a list: its first entry is used.
    #[serde(deserialize_with = "int_or_first")]
    pub eos_token_id: i64,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            pad_token_id: 1,
            bos_token_id: 49406,
            eos_token_id: 49407,
        }
    }
}

/// HF `CLIPVisionConfig` (the `vision_config` of `config.json`); missing fields take HF's
/// defaults (ViT-B/32 at 224×224).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

/// HF `CLIPConfig` (`config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    /// Width of the shared embedding space.
    pub projection_dim: usize,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self { text_config: ClipTextConfig::default(), vision_config: ClipVisionConfig::default(), projection_dim: 512 }
    }
}

/// `eos_token_id` as HF allows it: an integer or a list of integers (first one used).
fn int_or_first<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrList {
        Int(i64),
        List(Vec<i64>),
    }
    match IntOrList::deserialize(d)? {
        IntOrList::Int(i) => Ok(i),
        IntOrList::List(v) => v.first().copied().ok_or_else(|| serde::de::Error::custom("eos_token_id is an empty list")),
    }
}

fn check_tower(name: &str, h: usize, heads: usize, act: &str) -> Result<(), String> {
    crate::pretrained::check_transformer_config(h, heads, act).map_err(|e| format!("{name}: {e}"))
}

impl ClipConfig {
    /// Parse a Hugging Face `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        crate::pretrained::read_config(path.as_ref(), "CLIP", Self::validate)
    }

    /// Check the hyper-parameters this implementation relies on.
    pub fn validate(&self) -> Result<(), String> {
        let (t, v) = (&self.text_config, &self.vision_config);
        check_tower("text_config", t.hidden_size, t.num_attention_heads, &t.hidden_act)?;
        check_tower("vision_config", v.hidden_size, v.num_attention_heads, &v.hidden_act)?;
        if v.patch_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Err(format!("vision_config: image_size {} is not a multiple of patch_size {}", v.image_size, v.patch_size));
        }
        Ok(())
    }
}

/// One pre-LN encoder layer (HF `encoder.layers.N.*`).
#[derive(Module, Debug)]
pub struct ClipLayer {
    pub layer_norm1: LayerNorm,
    /// `self_attn.{q,k,v,out}_proj`
    pub self_attn: SelfAttention,
    pub layer_norm2: LayerNorm,
    /// `mlp.fc1`
    pub fc1: Linear,
    /// `mlp.fc2`
    pub fc2: Linear,
    #[module(skip)]
    pub act: Activation,
}

impl ClipLayer {
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x), mask);
        let f = self.fc2.forward(self.act.after(&self.fc1, self.layer_norm2.forward(x.clone())));
        x + f
    }
}

#[allow(clippy::too_many_arguments)]
fn load_layers(w: &Weights, n: usize, h: usize, inter: usize, heads: usize, act: &str, eps: f64) -> Result<Vec<ClipLayer>, LoadError> {
    let act = Activation::parse(act).unwrap_or(Activation::QuickGelu);
    (0..n)
        .map(|i| {
            let l = w.pp(format!("encoder.layers.{i}"));
            Ok(ClipLayer {
                layer_norm1: l.layer_norm("layer_norm1", h, eps)?,
                self_attn: SelfAttention::load(&l.pp("self_attn"), ["q_proj", "k_proj", "v_proj", "out_proj"], h, heads, true)?,
                layer_norm2: l.layer_norm("layer_norm2", h, eps)?,
                fc1: l.linear("mlp.fc1", h, inter, true)?,
                fc2: l.linear("mlp.fc2", inter, h, true)?,
                act,
            })
        })
        .collect()
}

/// The text tower (HF `CLIPTextTransformer`, `text_model.*`).
#[derive(Module, Debug)]
pub struct ClipTextTransformer {
    /// `embeddings.token_embedding`
    pub token_embedding: Embedding,
    /// `embeddings.position_embedding`
    pub position_embedding: Embedding,
    pub layers: Vec<ClipLayer>,
    pub final_layer_norm: LayerNorm,
    pub max_positions: usize,
    pub eos_token_id: i64,
}

impl ClipTextTransformer {
    fn from_weights(w: &Weights, c: &ClipTextConfig) -> Result<Self, LoadError> {
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        Ok(Self {
            token_embedding: w.embedding("embeddings.token_embedding", c.vocab_size, h)?,
            position_embedding: w.embedding("embeddings.position_embedding", c.max_position_embeddings, h)?,
            layers: load_layers(w, c.num_hidden_layers, h, c.intermediate_size, c.num_attention_heads, &c.hidden_act, eps)?,
            final_layer_norm: w.layer_norm("final_layer_norm", h, eps)?,
            max_positions: c.max_position_embeddings,
            eos_token_id: c.eos_token_id,
        })
    }

    /// `ids` `[B, L]`, `mask` `[B, L]` (true at real tokens) → last hidden state `[B, L, H]`
    /// (after `final_layer_norm`). Each position attends to itself and the earlier real tokens.
    /// Panics if `L` exceeds `max_position_embeddings`.
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let [b, l] = ids.dims();
        assert!(l <= self.max_positions, "CLIP text input of {l} tokens is longer than max_position_embeddings {}", self.max_positions);
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device).unsqueeze_dim::<2>(0).repeat_dim(0, b);
        let mut x = self.token_embedding.forward(ids) + self.position_embedding.forward(positions);
        // true = masked: key j after query i (causal), or key j padding
        let causal: Vec<bool> = (0..l * l).map(|k| k % l > k / l).collect();
        let causal = Tensor::<2, Bool>::from_data(TensorData::new(causal, [l, l]), &device).reshape([1, 1, l, l]).expand([b, 1, l, l]);
        let padding = mask.bool_not().reshape([b, 1, 1, l]).expand([b, 1, l, l]);
        let m = causal.bool_or(padding);
        for layer in &self.layers {
            x = layer.forward(x, Some(m.clone()));
        }
        self.final_layer_norm.forward(x)
    }

    /// The pooled position of each row of `ids` `[B, L]`: the first `eos_token_id`, or (legacy
    /// configs, `eos_token_id == 2`) the first position of the largest id; 0 when a row has no EOS.
    pub fn eos_positions(&self, ids: &Tensor<2, Int>) -> Vec<usize> {
        let [_, l] = ids.dims();
        let v: Vec<i64> = ids.try_to_vec_as::<i64>().expect("token ids are readable as i64");
        v.chunks(l.max(1))
            .map(|row| {
                if self.eos_token_id == 2 {
                    // torch.argmax: the first maximal value
                    row.iter().enumerate().fold((0, i64::MIN), |(bi, bv), (i, &t)| if t > bv { (i, t) } else { (bi, bv) }).0
                } else {
                    row.iter().position(|&t| t == self.eos_token_id).unwrap_or(0)
                }
            })
            .collect()
    }

    /// The hidden state at each row's EOS position ([`Self::eos_positions`]) `[B, H]`.
    pub fn pooled(&self, hidden: Tensor<3>, ids: &Tensor<2, Int>) -> Tensor<2> {
        let [b, l, h] = hidden.dims();
        let device = hidden.device();
        let flat: Vec<i64> = self.eos_positions(ids).iter().enumerate().map(|(i, &p)| (i * l + p) as i64).collect();
        hidden.reshape([b * l, h]).select(0, Tensor::<1, Int>::from_data(TensorData::new(flat, [b]), &device))
    }
}

/// The vision tower (HF `CLIPVisionTransformer`, `vision_model.*`).
#[derive(Module, Debug)]
pub struct ClipVisionTransformer {
    /// `embeddings.patch_embedding` (kernel = stride = patch size, no bias).
    pub patch_embedding: Conv2d,
    /// `embeddings.class_embedding` `[H]`
    pub class_embedding: Param<Tensor<1>>,
    /// `embeddings.position_embedding` `[1 + N, H]`
    pub position_embedding: Embedding,
    /// `pre_layrnorm` (HF's spelling)
    pub pre_layernorm: LayerNorm,
    pub layers: Vec<ClipLayer>,
    pub post_layernorm: LayerNorm,
    pub image_size: usize,
}

impl ClipVisionConfig {
    /// Random weights of this shape (what a run folder rebuilds before loading its checkpoint):
    /// the loading code over [`Weights::random`].
    pub fn init(&self, device: &Device) -> ClipVisionTransformer {
        ClipVisionTransformer::from_weights(&Weights::random(device), self).expect("random weights have every shape")
    }
}

impl ClipVisionTransformer {
    /// The vision tower of a Hugging Face CLIP folder (`config.json` of a `CLIPModel`, whose
    /// `vision_config` it reads, or of a `CLIPVisionModel`; weights under `vision_model.`).
    pub fn load(dir: &Path, device: &Device) -> Result<(Self, ClipVisionConfig), LoadError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| LoadError::Config { path: path.clone(), reason: e.to_string() })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| LoadError::Config { path: path.clone(), reason: e.to_string() })?;
        let vision = if v["model_type"] == "clip_vision_model" { v } else { v["vision_config"].clone() };
        let config: ClipVisionConfig =
            serde_json::from_value(vision).map_err(|e| LoadError::Config { path: path.clone(), reason: format!("vision_config: {e}") })?;
        if config.patch_size == 0 || !config.image_size.is_multiple_of(config.patch_size) {
            let reason = format!("vision_config: image_size {} is not a multiple of patch_size {}", config.image_size, config.patch_size);
            return Err(LoadError::Config { path, reason });
        }
        let weights = Weights::open(Weights::folder_file(dir), device)?;
        Ok((Self::from_weights(&weights.pp("vision_model"), &config)?, config))
    }

    /// Build from opened weights with HF `vision_model.*` key names at the root of `w`.
    pub fn from_weights(w: &Weights, c: &ClipVisionConfig) -> Result<Self, LoadError> {
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        let n = (c.image_size / c.patch_size).pow(2);
        let e = w.pp("embeddings");
        Ok(Self {
            patch_embedding: e.conv2d("patch_embedding", [c.num_channels, h], c.patch_size, c.patch_size, 0, 1, false)?,
            class_embedding: Param::from_tensor(e.get("class_embedding", [h])?),
            position_embedding: e.embedding("position_embedding", n + 1, h)?,
            pre_layernorm: w.layer_norm("pre_layrnorm", h, eps)?,
            layers: load_layers(w, c.num_hidden_layers, h, c.intermediate_size, c.num_attention_heads, &c.hidden_act, eps)?,
            post_layernorm: w.layer_norm("post_layernorm", h, eps)?,
            image_size: c.image_size,
        })
    }

    /// `pixels` `[B, C, S, S]` (S = `image_size`, CLIP-normalised) → last hidden state
    /// `[B, 1 + N, H]` (HF's `last_hidden_state`: encoder output, before `post_layernorm`;
    /// position 0 is the class token, then the patches in row-major order). Panics on another
    /// image size.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [b, _, hh, ww] = pixels.dims();
        assert!(hh == self.image_size && ww == self.image_size, "CLIP vision input is {hh}x{ww}, the model expects {0}x{0}", self.image_size);
        let p = self.patch_embedding.forward(pixels);
        let [_, h, gh, gw] = p.dims();
        let patches = p.reshape([b, h, gh * gw]).swap_dims(1, 2);
        let cls = self.class_embedding.val().reshape([1, 1, h]).expand([b, 1, h]);
        let pos = self.position_embedding.weight.val().unsqueeze_dim::<3>(0);
        let mut x = self.pre_layernorm.forward(Tensor::cat(vec![cls, patches], 1) + pos);
        for layer in &self.layers {
            x = layer.forward(x, None);
        }
        x
    }

    /// HF's `pooler_output`: `post_layernorm(hidden[:, 0])` `[B, H]`.
    pub fn pooled(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [b, _, h] = hidden.dims();
        self.post_layernorm.forward(hidden.slice([0..b, 0..1, 0..h]).reshape([b, h]))
    }
}

/// CLIP (HF `CLIPModel`): both towers, their projections and the logit scale.
#[derive(Module, Debug)]
pub struct ClipModel {
    pub text_model: ClipTextTransformer,
    pub vision_model: ClipVisionTransformer,
    /// `text_projection` (no bias)
    pub text_projection: Linear,
    /// `visual_projection` (no bias)
    pub visual_projection: Linear,
    /// `logit_scale` (log of the softmax temperature's inverse), shape `[1]`.
    pub logit_scale: Param<Tensor<1>>,
}

impl ClipModel {
    /// Load a Hugging Face CLIP folder: `dir/config.json` and `dir/model.safetensors`.
    pub fn load(dir: &Path, device: &Device) -> Result<(Self, ClipConfig), LoadError> {
        let config = ClipConfig::from_file(dir.join("config.json"))?;
        let weights = Weights::open(Weights::folder_file(dir), device)?;
        Ok((Self::from_weights(&weights, &config)?, config))
    }

    /// Build from opened weights with HF `CLIPModel` key names at the root of `w`.
    pub fn from_weights(w: &Weights, config: &ClipConfig) -> Result<Self, LoadError> {
        config.validate().map_err(|reason| LoadError::Config { path: w.path().to_path_buf(), reason })?;
        let (t, v, p) = (&config.text_config, &config.vision_config, config.projection_dim);
        let (scale, shape) = w.get_f32_vec("logit_scale", None)?;
        if scale.len() != 1 {
            return Err(LoadError::Shape { path: w.path().to_path_buf(), key: w.key("logit_scale"), found: shape, expected: vec![] });
        }
        Ok(Self {
            text_model: ClipTextTransformer::from_weights(&w.pp("text_model"), t)?,
            vision_model: ClipVisionTransformer::from_weights(&w.pp("vision_model"), v)?,
            text_projection: w.linear("text_projection", t.hidden_size, p, false)?,
            visual_projection: w.linear("visual_projection", v.hidden_size, p, false)?,
            logit_scale: Param::from_tensor(Tensor::from_data(TensorData::new(scale, [1]), w.device())),
        })
    }

    /// `ids` `[B, L]`, `mask` `[B, L]` (true at real tokens) → projected text embeddings
    /// `[B, projection_dim]` (not normalised; HF `get_text_features`).
    pub fn text_embeds(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<2> {
        let hidden = self.text_model.forward(ids.clone(), mask);
        self.text_projection.forward(self.text_model.pooled(hidden, &ids))
    }

    /// `pixels` `[B, 3, S, S]` → projected image embeddings `[B, projection_dim]` (not
    /// normalised; HF `get_image_features`).
    pub fn image_embeds(&self, pixels: Tensor<4>) -> Tensor<2> {
        let hidden = self.vision_model.forward(pixels);
        self.visual_projection.forward(self.vision_model.pooled(hidden))
    }

    /// `exp(logit_scale) · (image / ‖image‖) · (text / ‖text‖)ᵀ`: `[B_images, B_texts]` from
    /// the unnormalised embeddings.
    pub fn logits_per_image(&self, image_embeds: Tensor<2>, text_embeds: Tensor<2>) -> Tensor<2> {
        let norm = |x: Tensor<2>| x.clone() / x.powf_scalar(2.0).sum_dim(1).sqrt();
        let scale = self.logit_scale.val().exp().reshape([1, 1]);
        norm(image_embeds).matmul(norm(text_embeds).transpose()) * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_nested_hf_json_with_defaults() {
        let c: ClipConfig = serde_json::from_str(
            r#"{"text_config": {"hidden_size": 32, "num_attention_heads": 4, "eos_token_id": [7, 8]}, "vision_config": {"patch_size": 8, "image_size": 32}, "projection_dim": 16, "logit_scale_init_value": 2.6592}"#,
        )
        .unwrap();
        assert_eq!((c.text_config.eos_token_id, c.text_config.vocab_size, c.text_config.hidden_act.as_str()), (7, 49408, "quick_gelu"));
        assert_eq!((c.vision_config.hidden_size, c.vision_config.layer_norm_eps, c.projection_dim), (768, 1e-5, 16));
        assert!(c.validate().is_ok());
        let mut bad = c.clone();
        bad.vision_config.patch_size = 5;
        assert!(bad.validate().unwrap_err().contains("patch_size"));
        let d: ClipConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(d, ClipConfig::default());
    }
}
