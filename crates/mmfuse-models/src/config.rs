//! `[model]` of a run configuration: the settings every method shares (encoders, sizes), and
//! the chosen method's own table, a tagged enum ([`Method`]):
//!
//! ```toml
//! [model]
//! method = "muse"          # selects [model.muse] (MuseOptions)
//! d_model = 128
//! [model.muse]
//! exchange_ratio = 0.1
//! ```
//!
//! Every table rejects unknown keys, and a table of a method that is not selected is an error.
//! Configurations written before the per-method tables (one flat `[model]` with `exchange_ratio`,
//! `clfa_tau`, `mim_fusion`, …, as every run folder of that release holds) are read through
//! [`migrate_flat_keys`]: the selected method's keys move into its table, the other methods'
//! keys (unused by that model) are dropped, and both are reported.
//!
//! The option structs are plain serde structs rather than burn `Config`s: burn's derive cannot
//! reject unknown keys, and a misspelt hyper-parameter must not be silently ignored.

use crate::fusion::Modality;
use crate::fusion::clfa::{Fuser, Pooling};
use crate::fusion::mim::MimFusion;
use mmfuse_data::config::{DataConfig, TaskFamily};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Late fusion by concatenation (`method = "concat"`), and its text-only / image-only
/// variants (`modality`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConcatOptions {
    /// Hidden size of the MLP head over the concatenated features.
    pub d_hidden: usize,
}

impl Default for ConcatOptions {
    fn default() -> Self {
        Self { d_hidden: 128 }
    }
}

/// MuSE (`method = "muse"`): the CrossTransformer's token exchange and the two regularising
/// decoders (paper §3; names as in the paper: θ, μ, η, α, β).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MuseOptions {
    /// CrossTransformer layers L.
    pub cross_layers: usize,
    /// θ, fraction of tokens per stream that receive the other stream's mean (0: no exchange).
    pub exchange_ratio: f64,
    /// μ, first exchange layer (0-based).
    pub exchange_start_layer: usize,
    /// η, last exchange layer (inclusive).
    pub exchange_end_layer: usize,
    /// Replace the selected tokens by the mean instead of adding it.
    pub exchange_replace: bool,
    /// Reproduce the released code (no padding masks; means over all tokens).
    pub reference_compat: bool,
    /// α, weight of the image→text captioning decoder's loss L_it (0: decoder off).
    pub caption_weight: f64,
    /// β, weight of the text→image PixelCNN++ loss L_ti in nats per sub-pixel (0: off).
    pub pixelcnn_weight: f64,
    /// Std of the Gaussian noise added to the embeddings the decoders read (paper 1.0).
    pub decoder_noise: f64,
    /// Captioning decoder's embedding = LSTM = attention size (paper 512).
    pub caption_dim: usize,
    /// PixelCNN++ filters (paper 80).
    pub pixelcnn_filters: usize,
    /// PixelCNN++ gated ResNet blocks per resolution (paper 5).
    pub pixelcnn_resnets: usize,
    /// Dropout inside both decoders (paper 0.5).
    pub decoder_dropout: f64,
}

impl Default for MuseOptions {
    fn default() -> Self {
        Self {
            cross_layers: 4,
            exchange_ratio: 0.1,
            exchange_start_layer: 1,
            exchange_end_layer: 3,
            exchange_replace: false,
            reference_compat: false,
            caption_weight: 0.0,
            pixelcnn_weight: 0.0,
            decoder_noise: 1.0,
            caption_dim: 128,
            pixelcnn_filters: 32,
            pixelcnn_resnets: 1,
            decoder_dropout: 0.5,
        }
    }
}

/// CLFA (`method = "clfa"`): contrastive alignment to a frozen CLIP teacher and the cross
/// encoder (paper eq. 1–6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClfaOptions {
    /// Cross-encoder layers.
    pub cross_layers: usize,
    /// α, weight of the contrastive alignment to the CLIP teacher (0: the no-alignment
    /// ablation; otherwise `data.teacher` is required).
    pub alpha: f64,
    /// β, weight of the task cross-entropy.
    pub beta: f64,
    /// InfoNCE temperature τ.
    pub tau: f64,
    /// Fuser: `cross_attention` (the paper's cross encoder), `concat_mean` or `co_attention`.
    pub fuser: Fuser,
    /// Pooling of the cross encoder's text tokens: `cls`, `mean` or `max`.
    pub pooling: Pooling,
    /// Read the image's OCR text (samples' `ocr` field, MMSD) through the text encoder and a
    /// text-to-OCR cross-attention block in each cross-encoder layer.
    pub ocr: bool,
    /// λ of the lexicon attention biases (a key's self-attention scores get λ·|polarity|); used
    /// with `data.lexicon`.
    pub lexicon_weight: f64,
}

impl Default for ClfaOptions {
    fn default() -> Self {
        Self { cross_layers: 4, alpha: 1.0, beta: 1.0, tau: 0.1, fuser: Fuser::CrossAttention, pooling: Pooling::Mean, ocr: false, lexicon_weight: 1.0 }
    }
}

/// MIM (`method = "mim"`): unimodal purification (UPN) and knowledge guidance (KGS) on
/// word-aligned text / audio / video features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MimOptions {
    /// Fusion of the three purified vectors: `multiply` (paper), `add` or `concat`.
    pub fusion: MimFusion,
    /// Weight of the L0 penalty in the purification step (paper 0.1).
    pub penalty_weight: f64,
    /// The 10 in the inter-modal guidance weight 0.5·(10·α)².
    pub kd_scale: f64,
    /// Unimodal purification on (false: the no-UPN ablation).
    pub purification: bool,
    /// Knowledge guidance on (false: the no-KGS ablation).
    pub guidance: bool,
    /// BiLSTM hidden size per direction in the UPN (0: `d_model / 2`, the paper's 2×40).
    pub lstm_hidden: usize,
    /// Sample the gate noise at evaluation too, as the released code does.
    pub stochastic_eval: bool,
}

impl Default for MimOptions {
    fn default() -> Self {
        Self { fusion: MimFusion::Multiply, penalty_weight: 0.1, kd_scale: 10.0, purification: true, guidance: true, lstm_hidden: 0, stochastic_eval: false }
    }
}

/// The fusion method and its own settings (`model.method` and the `[model.<method>]` table).
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Concat(ConcatOptions),
    Muse(MuseOptions),
    Clfa(ClfaOptions),
    Mim(MimOptions),
}

impl Method {
    /// Every method's name, as `model.method` spells it.
    pub const NAMES: [&'static str; 4] = ["concat", "muse", "clfa", "mim"];

    /// The method with its default settings.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "concat" => Method::Concat(ConcatOptions::default()),
            "muse" => Method::Muse(MuseOptions::default()),
            "clfa" => Method::Clfa(ClfaOptions::default()),
            "mim" => Method::Mim(MimOptions::default()),
            _ => return None,
        })
    }

    /// `model.method`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Concat(_) => "concat",
            Method::Muse(_) => "muse",
            Method::Clfa(_) => "clfa",
            Method::Mim(_) => "mim",
        }
    }
}

/// `[model]`: the method, the encoders and the sizes every method shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ModelToml", into = "ModelToml")]
pub struct ModelConfig {
    /// Modalities the model sees: `text`, `image` or `fused` (MuSE, CLFA: `fused`).
    pub modality: Modality,
    /// Pretrained text encoder: a Hugging Face BERT folder (`config.json`, `model.safetensors`,
    /// `tokenizer.json`) or hub id. Its tokenizer replaces the word-level one and its
    /// `hidden_size` replaces `d_model`. Unset: a Transformer trained from scratch.
    pub text_encoder: Option<PathBuf>,
    /// Pretrained image encoder, fine-tuned with the model: torchvision ResNet or MobileNetV2
    /// weights (a `.safetensors` file), or a Hugging Face ViT or CLIP folder (CLIP: its vision
    /// tower, e.g. CLFA's ViT-B/32 student). Unset: the small CNN (`cnn_channels`) trained from
    /// scratch.
    pub image_encoder: Option<PathBuf>,
    /// Side of the image token grid of a pretrained ResNet or MobileNetV2 (MuSE: 8 → 64 tokens).
    pub image_grid: usize,
    /// Hidden size of the encoders.
    pub d_model: usize,
    /// Text encoder layers.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Feed-forward size.
    pub d_ff: usize,
    /// CNN channels per block.
    pub cnn_channels: Vec<usize>,
    /// Dropout.
    pub dropout: f64,
    /// NER: decode tag sequences with a linear-chain CRF (else per-token softmax).
    pub crf: bool,
    /// The fusion method and its settings.
    pub method: Method,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelToml::default().try_into().expect("the defaults are valid")
    }
}

impl ModelConfig {
    /// `model.method`.
    pub fn method_name(&self) -> &'static str {
        self.method.name()
    }

    /// Whether this model reads images at all.
    pub fn reads_images(&self) -> bool {
        match &self.method {
            Method::Concat(_) => self.modality != Modality::Text,
            Method::Muse(_) | Method::Clfa(_) => true,
            Method::Mim(_) => false,
        }
    }

    /// MuSE's settings, if that is the method.
    pub fn muse(&self) -> Option<&MuseOptions> {
        if let Method::Muse(m) = &self.method { Some(m) } else { None }
    }

    /// CLFA's settings, if that is the method.
    pub fn clfa(&self) -> Option<&ClfaOptions> {
        if let Method::Clfa(m) = &self.method { Some(m) } else { None }
    }

    /// MIM's settings, if that is the method.
    pub fn mim(&self) -> Option<&MimOptions> {
        if let Method::Mim(m) = &self.method { Some(m) } else { None }
    }

    /// Whether CLFA's OCR stream is on.
    pub fn clfa_ocr(&self) -> bool {
        self.clfa().is_some_and(|c| c.ocr)
    }

    /// Whether MuSE's captioning decoder is on.
    pub fn captioning(&self) -> bool {
        self.muse().is_some_and(|m| m.caption_weight > 0.0)
    }

    /// Check the settings against each other and against the data they will read.
    pub fn validate(&self, data: &DataConfig) -> Result<(), String> {
        // with a pretrained text encoder its hidden size is the model width (checked at load)
        if self.n_heads == 0 || (self.text_encoder.is_none() && !self.d_model.is_multiple_of(self.n_heads)) {
            return Err(format!("model.d_model ({}) must be divisible by model.n_heads ({})", self.d_model, self.n_heads));
        }
        if data.task == TaskFamily::Regression && !matches!(self.method, Method::Mim(_)) {
            return Err("data.task = \"regression\" (word-aligned features) is MIM's task: use model.method = \"mim\"".into());
        }
        if data.lexicon.is_some() && !matches!(self.method, Method::Clfa(_)) {
            return Err("data.lexicon is CLFA's; it needs model.method = \"clfa\"".into());
        }
        match &self.method {
            Method::Concat(_) => {}
            Method::Muse(m) => {
                if self.modality != Modality::Fused {
                    return Err("model.method = \"muse\" fuses both modalities; use model.modality = \"fused\" (model.muse.exchange_ratio = 0 is the no-exchange ablation)".into());
                }
                if !(0.0..=1.0).contains(&m.exchange_ratio) {
                    return Err("model.muse.exchange_ratio must be in [0, 1]".into());
                }
                if m.exchange_start_layer > m.exchange_end_layer || m.exchange_end_layer >= m.cross_layers {
                    return Err(format!(
                        "need model.muse.exchange_start_layer <= exchange_end_layer < cross_layers, got {} / {} / {}",
                        m.exchange_start_layer, m.exchange_end_layer, m.cross_layers
                    ));
                }
                if !(m.caption_weight >= 0.0 && m.pixelcnn_weight >= 0.0 && m.decoder_noise >= 0.0) {
                    return Err("model.muse.caption_weight, pixelcnn_weight and decoder_noise must be >= 0".into());
                }
                if !(0.0..1.0).contains(&m.decoder_dropout) {
                    return Err("model.muse.decoder_dropout must be in [0, 1)".into());
                }
            }
            Method::Clfa(c) => {
                if self.modality != Modality::Fused || data.task != TaskFamily::Classify {
                    return Err("model.method = \"clfa\" is a fused classifier: use model.modality = \"fused\" and data.task = \"classify\"".into());
                }
                if !(c.tau > 0.0 && c.alpha >= 0.0 && c.beta >= 0.0) {
                    return Err("model.clfa.tau must be > 0, model.clfa.alpha and model.clfa.beta >= 0".into());
                }
                if (c.ocr || data.lexicon.is_some()) && c.fuser != Fuser::CrossAttention {
                    return Err("model.clfa.ocr and data.lexicon act inside the cross encoder: use model.clfa.fuser = \"cross_attention\"".into());
                }
                if c.ocr && data.ocr_max_len < 2 {
                    return Err("data.ocr_max_len must be at least 2 ([CLS] and [SEP])".into());
                }
                if c.alpha > 0.0 && data.teacher.is_none() {
                    return Err(
                        "model.clfa.alpha > 0 aligns to CLIP: set data.teacher to a cache written by `mmfuse clip-embed` (or model.clfa.alpha = 0 for the no-alignment ablation)".into(),
                    );
                }
            }
            Method::Mim(m) => {
                if data.task != TaskFamily::Regression {
                    return Err("model.method = \"mim\" works on word-aligned text/audio/video features: use data.task = \"regression\"".into());
                }
                if !(m.penalty_weight >= 0.0 && m.kd_scale >= 0.0) {
                    return Err("model.mim.penalty_weight and model.mim.kd_scale must be >= 0".into());
                }
            }
        }
        Ok(())
    }
}

/// `[model]` as written in TOML: the shared keys, `method`, and one optional table per method.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ModelToml {
    method: String,
    modality: Modality,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_encoder: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_encoder: Option<PathBuf>,
    image_grid: usize,
    d_model: usize,
    n_layers: usize,
    n_heads: usize,
    d_ff: usize,
    cnn_channels: Vec<usize>,
    dropout: f64,
    crf: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    concat: Option<ConcatOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    muse: Option<MuseOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clfa: Option<ClfaOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mim: Option<MimOptions>,
}

impl Default for ModelToml {
    fn default() -> Self {
        Self {
            method: "concat".into(),
            modality: Modality::Fused,
            text_encoder: None,
            image_encoder: None,
            image_grid: 8,
            d_model: 128,
            n_layers: 2,
            n_heads: 4,
            d_ff: 256,
            cnn_channels: vec![32, 64, 96],
            dropout: 0.1,
            crf: true,
            concat: None,
            muse: None,
            clfa: None,
            mim: None,
        }
    }
}

impl TryFrom<ModelToml> for ModelConfig {
    type Error = String;

    fn try_from(t: ModelToml) -> Result<Self, String> {
        let tables = [("concat", t.concat.is_some()), ("muse", t.muse.is_some()), ("clfa", t.clfa.is_some()), ("mim", t.mim.is_some())];
        if let Some((other, _)) = tables.iter().find(|(name, present)| *present && *name != t.method) {
            return Err(format!("[model.{other}] is set but model.method = \"{}\": remove the table or set model.method = \"{other}\"", t.method));
        }
        let method = match t.method.as_str() {
            "concat" => Method::Concat(t.concat.unwrap_or_default()),
            "muse" => Method::Muse(t.muse.unwrap_or_default()),
            "clfa" => Method::Clfa(t.clfa.unwrap_or_default()),
            "mim" => Method::Mim(t.mim.unwrap_or_default()),
            other => return Err(format!("unknown model.method '{other}'; available: {}", Method::NAMES.join(", "))),
        };
        Ok(ModelConfig {
            modality: t.modality,
            text_encoder: t.text_encoder,
            image_encoder: t.image_encoder,
            image_grid: t.image_grid,
            d_model: t.d_model,
            n_layers: t.n_layers,
            n_heads: t.n_heads,
            d_ff: t.d_ff,
            cnn_channels: t.cnn_channels,
            dropout: t.dropout,
            crf: t.crf,
            method,
        })
    }
}

impl From<ModelConfig> for ModelToml {
    fn from(c: ModelConfig) -> Self {
        let mut t = ModelToml {
            method: c.method.name().into(),
            modality: c.modality,
            text_encoder: c.text_encoder,
            image_encoder: c.image_encoder,
            image_grid: c.image_grid,
            d_model: c.d_model,
            n_layers: c.n_layers,
            n_heads: c.n_heads,
            d_ff: c.d_ff,
            cnn_channels: c.cnn_channels,
            dropout: c.dropout,
            crf: c.crf,
            ..ModelToml::default()
        };
        match c.method {
            Method::Concat(o) => t.concat = Some(o),
            Method::Muse(o) => t.muse = Some(o),
            Method::Clfa(o) => t.clfa = Some(o),
            Method::Mim(o) => t.mim = Some(o),
        }
        t
    }
}

/// The flat `[model]` keys of configurations written before the per-method tables: the method
/// whose table each belongs to (a key shared by two methods is listed for both) and its name
/// there.
const FLAT_KEYS: &[(&str, &str, &str)] = &[
    ("d_hidden", "concat", "d_hidden"),
    ("cross_layers", "muse", "cross_layers"),
    ("cross_layers", "clfa", "cross_layers"),
    ("exchange_ratio", "muse", "exchange_ratio"),
    ("exchange_start_layer", "muse", "exchange_start_layer"),
    ("exchange_end_layer", "muse", "exchange_end_layer"),
    ("exchange_replace", "muse", "exchange_replace"),
    ("reference_compat", "muse", "reference_compat"),
    ("caption_weight", "muse", "caption_weight"),
    ("pixelcnn_weight", "muse", "pixelcnn_weight"),
    ("decoder_noise", "muse", "decoder_noise"),
    ("caption_dim", "muse", "caption_dim"),
    ("pixelcnn_filters", "muse", "pixelcnn_filters"),
    ("pixelcnn_resnets", "muse", "pixelcnn_resnets"),
    ("decoder_dropout", "muse", "decoder_dropout"),
    ("clfa_alpha", "clfa", "alpha"),
    ("clfa_beta", "clfa", "beta"),
    ("clfa_tau", "clfa", "tau"),
    ("clfa_fuser", "clfa", "fuser"),
    ("clfa_pooling", "clfa", "pooling"),
    ("clfa_ocr", "clfa", "ocr"),
    ("clfa_lexicon_weight", "clfa", "lexicon_weight"),
    ("mim_fusion", "mim", "fusion"),
    ("mim_penalty_weight", "mim", "penalty_weight"),
    ("mim_kd_scale", "mim", "kd_scale"),
    ("mim_purification", "mim", "purification"),
    ("mim_guidance", "mim", "guidance"),
    ("mim_lstm_hidden", "mim", "lstm_hidden"),
    ("mim_stochastic_eval", "mim", "stochastic_eval"),
];

/// What [`migrate_flat_keys`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Migration {
    /// `(old key, new key)` moved into the selected method's table.
    pub moved: Vec<(String, String)>,
    /// Keys of other methods, which the selected model never read, dropped.
    pub dropped: Vec<String>,
}

impl Migration {
    pub fn is_empty(&self) -> bool {
        self.moved.is_empty() && self.dropped.is_empty()
    }
}

/// Rewrite a flat `[model]` table of the older layout (e.g. `exchange_ratio = 0.1` beside
/// `method = "muse"`) into the per-method layout (`[model.muse] exchange_ratio = 0.1`) in place.
/// A key set both ways is an error; a table already in the new layout is left as it is.
pub fn migrate_flat_keys(model: &mut toml::Table) -> Result<Migration, String> {
    let method = model.get("method").and_then(|v| v.as_str()).unwrap_or("concat").to_string();
    let mut out = Migration::default();
    let old_keys: Vec<&str> = FLAT_KEYS.iter().map(|(k, _, _)| *k).filter(|k| model.contains_key(*k)).collect();
    for key in dedup(old_keys) {
        let value = model.remove(key).expect("present");
        match FLAT_KEYS.iter().find(|(k, m, _)| *k == key && *m == method) {
            Some((_, m, new)) => {
                let table = model
                    .entry(m.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| format!("model.{m} must be a table"))?;
                if table.contains_key(*new) {
                    return Err(format!("model.{key} (the older flat layout) and model.{m}.{new} are both set; keep model.{m}.{new}"));
                }
                table.insert(new.to_string(), value);
                out.moved.push((format!("model.{key}"), format!("model.{m}.{new}")));
            }
            None => out.dropped.push(format!("model.{key}")),
        }
    }
    Ok(out)
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|k| seen.insert(*k));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelConfig, String> {
        let mut t: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        migrate_flat_keys(&mut t)?;
        toml::Value::Table(t).try_into().map_err(|e: toml::de::Error| e.to_string())
    }

    #[test]
    fn method_table_is_selected_by_method() {
        let c = parse("method = \"muse\"\n[muse]\nexchange_ratio = 0.3\n").unwrap();
        let m = c.muse().unwrap();
        assert_eq!(m.exchange_ratio, 0.3);
        assert_eq!(m.cross_layers, 4);
        // defaults of everything else
        assert_eq!(c.d_model, 128);
        // round trip: the saved form names the table
        let saved = toml::to_string(&c).unwrap();
        assert!(saved.contains("[muse]") && saved.contains("exchange_ratio = 0.3"), "{saved}");
        assert_eq!(parse(&saved).unwrap(), c);
    }

    #[test]
    fn unknown_and_foreign_keys_are_errors() {
        let e = parse("method = \"muse\"\n[muse]\nexchange_rate = 0.3\n").unwrap_err();
        assert!(e.contains("exchange_rate"), "{e}");
        let e = parse("method = \"concat\"\n[clfa]\ntau = 0.2\n").unwrap_err();
        assert!(e.contains("[model.clfa]"), "{e}");
        let e = parse("method = \"bert\"\n").unwrap_err();
        assert!(e.contains("unknown model.method 'bert'"), "{e}");
        let e = parse("d_modle = 3\n").unwrap_err();
        assert!(e.contains("d_modle"), "{e}");
    }

    #[test]
    fn flat_keys_of_the_older_layout_migrate() {
        let mut t: toml::Table =
            toml::from_str("method = \"clfa\"\nclfa_tau = 0.2\ncross_layers = 2\nexchange_ratio = 0.5\nmim_fusion = \"add\"\nd_hidden = 64\n").unwrap();
        let m = migrate_flat_keys(&mut t).unwrap();
        assert_eq!(m.moved, vec![("model.cross_layers".into(), "model.clfa.cross_layers".into()), ("model.clfa_tau".into(), "model.clfa.tau".into())]);
        assert_eq!(m.dropped, vec!["model.d_hidden".to_string(), "model.exchange_ratio".into(), "model.mim_fusion".into()]);
        let c: ModelConfig = toml::Value::Table(t).try_into().unwrap();
        let clfa = c.clfa().unwrap();
        assert_eq!((clfa.tau, clfa.cross_layers, clfa.alpha), (0.2, 2, 1.0));
        // both layouts at once is ambiguous
        let mut t: toml::Table = toml::from_str("method = \"muse\"\nexchange_ratio = 0.5\n[muse]\nexchange_ratio = 0.2\n").unwrap();
        assert!(migrate_flat_keys(&mut t).unwrap_err().contains("both set"));
    }
}
