//! Vision Transformer image encoder (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words:
//! Transformers for Image Recognition at Scale"), laid out like Hugging Face `transformers`'
//! `ViTModel` so that its checkpoints (google/vit-base-patch16-224-in21k, DeiT-style `ViTModel`s,
//! `ViTFor*` checkpoints with their `vit.` prefix) load unchanged.
//!
//! Architecture: non-overlapping `patch_size`² patches embedded by a strided conv
//! (`embeddings.patch_embeddings.projection`, with bias) → prepend `embeddings.cls_token` → add
//! `embeddings.position_embeddings` `[1, 1 + N, H]`; `num_hidden_layers` pre-LN encoder layers
//! (`x + attention.output.dense(MHA(layernorm_before(x)))`, then
//! `x + output.dense(act(intermediate.dense(layernorm_after(x))))`); a final `layernorm`; an
//! optional pooler (`pooler.dense` + tanh on the `[CLS]` state). Dropout is omitted (HF's ViT
//! defaults to 0 and the encoders here are used for inference and fine-tuning alike).
//!
//! Loading: [`VitModel::load`] reads a Hugging Face model folder (`config.json` parsed into
//! [`VitConfig`], `model.safetensors` with HF key names). A missing tensor or a wrong shape is
//! an error naming the file, the key and both shapes.
//!
//! [`Activation`] and [`SelfAttention`] are shared with the CLIP encoders ([`super::clip`]).

use crate::layers::Activation;
use crate::pretrained::{LoadError, Weights};
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};
use mmfuse_kernels::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Multi-head self-attention: `out(softmax(q·kᵀ/√d + mask)·v)` per head.
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// The output projection (ViT `attention.output.dense`, CLIP `out_proj`).
    pub out: Linear,
    pub n_heads: usize,
    pub head_dim: usize,
}

impl SelfAttention {
    /// Load the four projections of an `h`-wide attention with `n_heads` heads; `names` are
    /// the query, key, value and output keys under `w`.
    pub fn load(w: &Weights, names: [&str; 4], h: usize, n_heads: usize, qkv_bias: bool) -> Result<Self, LoadError> {
        Ok(Self {
            query: w.linear(names[0], h, h, qkv_bias)?,
            key: w.linear(names[1], h, h, qkv_bias)?,
            value: w.linear(names[2], h, h, qkv_bias)?,
            out: w.linear(names[3], h, h, true)?,
            n_heads,
            head_dim: h / n_heads,
        })
    }

    /// `x` `[B, L, H]`, `mask` `[B, 1, L, L]` or broadcastable (true where query `i` must not
    /// attend to key `j`) → `[B, L, H]` (after the output projection).
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let [b, l, h] = x.dims();
        let heads = |t: Tensor<3>| t.reshape([b, l, self.n_heads, self.head_dim]).swap_dims(1, 2); // [B, nh, L, hd]
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let scale = (self.head_dim as f64).powf(-0.5);
        let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale); // [B, nh, L, L]
        if let Some(mask) = mask {
            let mask = mask.expand([b, self.n_heads, l, l]);
            scores = scores.mask_fill(mask, f32::MIN);
        }
        let ctx = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([b, l, h]);
        self.out.forward(ctx)
    }
}

/// Hugging Face `ViTConfig` (`config.json`), field names as HF spells them. Missing fields take
/// HF's defaults (those of ViT-Base/16 at 224×224); unknown fields are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VitConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    /// `gelu`, `gelu_new`/`gelu_pytorch_tanh`/`gelu_fast`, `quick_gelu` or `relu`.
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub qkv_bias: bool,
    /// Width of the pooler output (HF: `hidden_size` when absent).
    pub pooler_output_size: Option<usize>,
    /// Only `tanh` is supported.
    pub pooler_act: String,
}

impl Default for VitConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-12,
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            qkv_bias: true,
            pooler_output_size: None,
            pooler_act: "tanh".into(),
        }
    }
}

impl VitConfig {
    /// Parse a Hugging Face `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        crate::pretrained::read_config(path.as_ref(), "ViT", Self::validate)
    }

    /// Check the hyper-parameters this implementation relies on.
    pub fn validate(&self) -> Result<(), String> {
        crate::pretrained::check_transformer_config(self.hidden_size, self.num_attention_heads, &self.hidden_act)?;
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!("image_size {} is not a multiple of patch_size {}", self.image_size, self.patch_size));
        }
        if self.pooler_act != "tanh" {
            return Err(format!("unsupported pooler_act '{}' (only 'tanh')", self.pooler_act));
        }
        Ok(())
    }

    /// Patches per image, `(image_size / patch_size)²`.
    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Random weights of this shape, without pooler (the shape a run folder rebuilds before
    /// loading its checkpoint; embeddings drawn as HF does, N(0, 0.02)).
    pub fn init(&self, device: &Device) -> VitModel {
        let h = self.hidden_size;
        let lin = |i, o, bias| LinearConfig::new(i, o).with_bias(bias).init(device);
        let norm = || LayerNormConfig::new(h).with_epsilon(self.layer_norm_eps).init(device);
        let normal = Initializer::Normal { mean: 0.0, std: 0.02 };
        let act = Activation::parse(&self.hidden_act).unwrap_or(Activation::Gelu);
        let layers = (0..self.num_hidden_layers)
            .map(|_| VitLayer {
                norm1: norm(),
                attention: SelfAttention {
                    query: lin(h, h, self.qkv_bias),
                    key: lin(h, h, self.qkv_bias),
                    value: lin(h, h, self.qkv_bias),
                    out: lin(h, h, true),
                    n_heads: self.num_attention_heads,
                    head_dim: h / self.num_attention_heads,
                },
                norm2: norm(),
                intermediate: lin(h, self.intermediate_size, true),
                output: lin(self.intermediate_size, h, true),
                act,
            })
            .collect();
        VitModel {
            patch_embedding: Conv2dConfig::new([self.num_channels, h], [self.patch_size, self.patch_size])
                .with_stride([self.patch_size, self.patch_size])
                .init(device),
            cls_token: normal.init([1, 1, h], device),
            position_embeddings: normal.init([1, 1 + self.num_patches(), h], device),
            layers,
            layernorm: norm(),
            pooler: None,
            image_size: self.image_size,
            hidden_size: h,
        }
    }
}

/// One pre-LN encoder layer (HF `encoder.layer.N.*`).
#[derive(Module, Debug)]
pub struct VitLayer {
    /// `layernorm_before`
    pub norm1: LayerNorm,
    /// `attention.attention.{query,key,value}` and `attention.output.dense`
    pub attention: SelfAttention,
    /// `layernorm_after`
    pub norm2: LayerNorm,
    /// `intermediate.dense`
    pub intermediate: Linear,
    /// `output.dense`
    pub output: Linear,
    #[module(skip)]
    pub act: Activation,
}

impl VitLayer {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attention.forward(self.norm1.forward(x), None);
        let f = self.output.forward(self.act.after(&self.intermediate, self.norm2.forward(x.clone())));
        x + f
    }
}

/// The ViT encoder (HF `ViTModel`).
#[derive(Module, Debug)]
pub struct VitModel {
    /// `embeddings.patch_embeddings.projection` (kernel = stride = patch size).
    pub patch_embedding: Conv2d,
    /// `embeddings.cls_token` `[1, 1, H]`
    pub cls_token: Param<Tensor<3>>,
    /// `embeddings.position_embeddings` `[1, 1 + N, H]`
    pub position_embeddings: Param<Tensor<3>>,
    pub layers: Vec<VitLayer>,
    /// The final `layernorm`.
    pub layernorm: LayerNorm,
    /// `pooler.dense` (+ tanh); absent when the checkpoint has no pooler.
    pub pooler: Option<Linear>,
    pub image_size: usize,
    pub hidden_size: usize,
}

impl VitModel {
    /// Load a Hugging Face ViT folder: `dir/config.json` and `dir/model.safetensors`.
    pub fn load(dir: &Path, device: &Device) -> Result<(Self, VitConfig), LoadError> {
        let config = VitConfig::from_file(dir.join("config.json"))?;
        let weights = Weights::open(Weights::folder_file(dir), device)?;
        Ok((Self::from_weights(&weights, &config)?, config))
    }

    /// Build from opened weights with HF `ViTModel` key names (at the root of `w`, or under
    /// `vit.` as in `ViTFor*` checkpoints).
    pub fn from_weights(w: &Weights, config: &VitConfig) -> Result<Self, LoadError> {
        config.validate().map_err(|reason| LoadError::Config { path: w.path().to_path_buf(), reason })?;
        let w = if !w.contains("embeddings.cls_token") && w.contains("vit.embeddings.cls_token") { w.pp("vit") } else { w.clone() };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let e = w.pp("embeddings");
        let patch_embedding = e.conv2d("patch_embeddings.projection", [config.num_channels, h], config.patch_size, config.patch_size, 0, 1, true)?;
        let cls_token = Param::from_tensor(e.get("cls_token", [1, 1, h])?);
        let position_embeddings = Param::from_tensor(e.get("position_embeddings", [1, 1 + config.num_patches(), h])?);
        let act = Activation::parse(&config.hidden_act).unwrap_or(Activation::Gelu);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = w.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            layers.push(VitLayer {
                norm1: l.layer_norm("layernorm_before", h, eps)?,
                attention: SelfAttention::load(
                    &a,
                    ["attention.query", "attention.key", "attention.value", "output.dense"],
                    h,
                    config.num_attention_heads,
                    config.qkv_bias,
                )?,
                norm2: l.layer_norm("layernorm_after", h, eps)?,
                intermediate: l.linear("intermediate.dense", h, config.intermediate_size, true)?,
                output: l.linear("output.dense", config.intermediate_size, h, true)?,
                act,
            });
        }
        let layernorm = w.layer_norm("layernorm", h, eps)?;
        let pooler_size = config.pooler_output_size.unwrap_or(h);
        let pooler = if w.contains("pooler.dense.weight") { Some(w.linear("pooler.dense", h, pooler_size, true)?) } else { None };
        Ok(Self { patch_embedding, cls_token, position_embeddings, layers, layernorm, pooler, image_size: config.image_size, hidden_size: h })
    }

    /// `pixels` `[B, C, S, S]` (S = `image_size`) → last hidden state `[B, 1 + N, H]` (after the
    /// final LayerNorm; position 0 is `[CLS]`, then the patches in row-major order). Panics on
    /// another image size (position embeddings are not interpolated).
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [b, _, hh, ww] = pixels.dims();
        assert!(
            hh == self.image_size && ww == self.image_size,
            "ViT input is {hh}x{ww}, the model expects {0}x{0} (position embeddings are not interpolated)",
            self.image_size
        );
        let p = self.patch_embedding.forward(pixels); // [B, H, S/p, S/p]
        let [_, h, gh, gw] = p.dims();
        let patches = p.reshape([b, h, gh * gw]).swap_dims(1, 2); // [B, N, H]
        let cls = self.cls_token.val().expand([b, 1, h]);
        let mut x = Tensor::cat(vec![cls, patches], 1) + self.position_embeddings.val();
        for layer in &self.layers {
            x = layer.forward(x);
        }
        self.layernorm.forward(x)
    }

    /// HF's pooled output: `tanh(pooler.dense(hidden[:, 0]))` `[B, pooler_output_size]`; `None`
    /// without pooler weights.
    pub fn pooled(&self, hidden: Tensor<3>) -> Option<Tensor<2>> {
        let p = self.pooler.as_ref()?;
        let [b, _, h] = hidden.dims();
        Some(p.forward(hidden.slice([0..b, 0..1, 0..h]).reshape([b, h])).tanh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_hf_json_and_validates() {
        let c: VitConfig =
            serde_json::from_str(r#"{"hidden_size": 32, "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "model_type": "vit"}"#).unwrap();
        assert_eq!((c.num_hidden_layers, c.layer_norm_eps, c.num_patches(), c.qkv_bias), (12, 1e-12, 16, true));
        assert!(c.validate().is_ok());
        assert!(VitConfig { patch_size: 7, ..c.clone() }.validate().unwrap_err().contains("patch_size"));
        assert!(VitConfig { hidden_act: "swish".into(), ..c }.validate().unwrap_err().contains("swish"));
    }
}
