//! Run configuration: one TOML document (`[data]`, `[model]`, `[train]`), `--set key=value`
//! overrides, and the resolved copy saved in every run folder.

use anyhow::{Context, Result, bail};
use mmfuse_data::image::MissingImage;
use mmfuse_kernels::device::DeviceSpec;
use mmfuse_models::fusion::Modality;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The task family, which fixes the reader, the head and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskFamily {
    /// Token tagging (multimodal NER); CoNLL files `train.txt`, `valid.txt`, `test.txt`.
    Ner,
    /// Sequence classification (sentiment, sarcasm); JSONL files `train.jsonl`, `dev.jsonl`,
    /// `test.jsonl`.
    Classify,
    /// Sentiment regression on word-aligned text / audio / video features (CMU-MOSI/MOSEI,
    /// method `mim`): `data.dir` is a MAG-BERT or MMSA `.pkl` file, or a folder in mmfuse's
    /// aligned layout (`mmfuse prepare-mosi`).
    Regression,
}

/// `[data]`: where the corpus is and how to read it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Task family.
    pub task: TaskFamily,
    /// Folder with the split files.
    pub dir: PathBuf,
    /// Image folder, relative to `dir` unless absolute. NER images are `<IMGID>.<ext>` in it
    /// (`.png`, then `.jpg` are tried); classification samples name their image.
    #[serde(default = "default_image_dir")]
    pub image_dir: PathBuf,
    /// What to do with a missing or undecodable image: `error` (default) or `placeholder`
    /// (counted and reported at the end of the run).
    #[serde(default = "default_missing")]
    pub missing_image: MissingImage,
    /// Word pieces per text, `[CLS]` included; longer texts are truncated (counted).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Square image size fed to the image encoder (plain bilinear resize, no crop, values
    /// scaled to [−1, 1]); ignored when `preprocess` is set.
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// A pretrained encoder's image pipeline: `imagenet_eval` (shorter side 256, centre crop
    /// 224, ImageNet mean/std), `muse` (224×224 without crop, MuSE's mean/std) or `clip`
    /// (bicubic, centre crop 224, CLIP mean/std); Pillow-exact resampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<mmfuse_data::preprocess::Preprocess>,
    /// Minimum count of a word to enter the vocabulary of from-scratch text encoders.
    #[serde(default = "default_min_count")]
    pub min_word_count: u32,
    /// CLFA: the teacher cache written by `mmfuse clip-embed` (frozen CLIP text and image
    /// embeddings of every post, by id), relative to the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<PathBuf>,
    /// Class names in output order (classification); default: sorted labels of the train split.
    #[serde(default)]
    pub labels: Vec<String>,
    /// CLFA's OCR stream (`model.clfa_ocr`): word pieces per OCR text, `[CLS]`/`[SEP]` included
    /// (paper 66).
    #[serde(default = "default_ocr_len")]
    pub ocr_max_len: usize,
    /// CLFA's lexicon attention biases: a SenticNet-style lexicon file (`word<TAB>polarity` per
    /// line, polarity in [−1, 1]); unset: the knowledge-free setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexicon: Option<PathBuf>,
}

fn default_ocr_len() -> usize {
    66
}

fn default_image_dir() -> PathBuf {
    PathBuf::from("images")
}
fn default_missing() -> MissingImage {
    MissingImage::Error
}
fn default_max_len() -> usize {
    48
}
fn default_image_size() -> u32 {
    32
}
fn default_min_count() -> u32 {
    2
}

/// `[model]`: which method and its sizes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Fusion method: `concat` (late fusion baseline), `muse` (CrossTransformer exchange) or
    /// `clfa` (CLIP-guided alignment + cross-attention fusion).
    #[serde(default = "default_method")]
    pub method: String,
    /// Modalities the model sees: `text`, `image` or `fused`.
    #[serde(default = "default_modality")]
    pub modality: Modality,
    /// Pretrained text encoder: a Hugging Face BERT folder (`config.json`, `model.safetensors`,
    /// `tokenizer.json`), e.g. all-MiniLM-L6-v2 or bert-base-cased. Its tokenizer replaces the
    /// word-level one, and its `hidden_size` replaces `d_model` (the image encoder and the fusion
    /// layers take that size). Unset: a Transformer trained from scratch (`d_model`, `n_layers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoder: Option<PathBuf>,
    /// Pretrained image encoder: a torchvision ResNet `.safetensors` file (resnet18 … resnet152,
    /// shape read from the tensors). Its last feature map is average-pooled to
    /// `image_grid`×`image_grid` tokens and projected to the model width. Unset: the small CNN
    /// (`cnn_channels`) trained from scratch. Use with `data.preprocess` ("muse" or
    /// "imagenet_eval").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_encoder: Option<PathBuf>,
    /// Side of the image token grid of a pretrained image encoder (MuSE: 8 → 64 tokens).
    #[serde(default = "default_grid")]
    pub image_grid: usize,
    /// Hidden size of the encoders.
    #[serde(default = "default_d_model")]
    pub d_model: usize,
    /// Text encoder layers.
    #[serde(default = "default_layers")]
    pub n_layers: usize,
    /// Attention heads.
    #[serde(default = "default_heads")]
    pub n_heads: usize,
    /// Feed-forward size.
    #[serde(default = "default_d_ff")]
    pub d_ff: usize,
    /// CNN channels per block.
    #[serde(default = "default_channels")]
    pub cnn_channels: Vec<usize>,
    /// Head hidden size.
    #[serde(default = "default_d_model")]
    pub d_hidden: usize,
    /// Dropout.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// NER: decode tag sequences with a linear-chain CRF (else per-token softmax).
    #[serde(default = "default_true")]
    pub crf: bool,
    /// MuSE: CrossTransformer layers L.
    #[serde(default = "default_cross_layers")]
    pub cross_layers: usize,
    /// MuSE: θ, fraction of tokens per stream that receive the other stream's mean (0: no exchange).
    #[serde(default = "default_ratio")]
    pub exchange_ratio: f64,
    /// MuSE: μ, first exchange layer (0-based).
    #[serde(default = "default_one")]
    pub exchange_start_layer: usize,
    /// MuSE: η, last exchange layer (inclusive).
    #[serde(default = "default_three")]
    pub exchange_end_layer: usize,
    /// MuSE: replace the selected tokens by the mean instead of adding it.
    #[serde(default)]
    pub exchange_replace: bool,
    /// MuSE: reproduce the released code (no padding masks; means over all tokens).
    #[serde(default)]
    pub reference_compat: bool,
    /// MuSE: α, weight of the image→text captioning decoder's loss L_it (0: decoder off).
    #[serde(default)]
    pub caption_weight: f64,
    /// MuSE: β, weight of the text→image PixelCNN++ loss L_ti in nats per sub-pixel (0: off).
    #[serde(default)]
    pub pixelcnn_weight: f64,
    /// MuSE: std of the Gaussian noise added to the embeddings the decoders read (paper 1.0).
    #[serde(default = "default_noise")]
    pub decoder_noise: f64,
    /// MuSE: captioning decoder's embedding = LSTM = attention size (paper 512).
    #[serde(default = "default_caption_dim")]
    pub caption_dim: usize,
    /// MuSE: PixelCNN++ filters (paper 80) and gated ResNet blocks per resolution (paper 5).
    #[serde(default = "default_pixelcnn_filters")]
    pub pixelcnn_filters: usize,
    #[serde(default = "default_one")]
    pub pixelcnn_resnets: usize,
    /// MuSE: dropout inside both decoders (paper 0.5).
    #[serde(default = "default_decoder_dropout")]
    pub decoder_dropout: f64,
    /// CLFA: α, weight of the contrastive alignment to the CLIP teacher (0: no-alignment
    /// ablation; otherwise `data.teacher` is required).
    #[serde(default = "default_one_f")]
    pub clfa_alpha: f64,
    /// CLFA: β, weight of the task cross-entropy.
    #[serde(default = "default_one_f")]
    pub clfa_beta: f64,
    /// CLFA: InfoNCE temperature τ.
    #[serde(default = "default_tau")]
    pub clfa_tau: f64,
    /// CLFA: fuser, `cross_attention` (the paper's cross encoder, `cross_layers` layers),
    /// `concat_mean` or `co_attention`.
    #[serde(default = "default_fuser")]
    pub clfa_fuser: mmfuse_models::fusion::clfa::Fuser,
    /// CLFA: pooling of the cross encoder's text tokens, `cls`, `mean` or `max`.
    #[serde(default = "default_pooling")]
    pub clfa_pooling: mmfuse_models::fusion::clfa::Pooling,
    /// CLFA: read the image's OCR text (samples' `ocr` field, MMSD) through the text encoder
    /// and a text-to-OCR cross-attention block in each cross-encoder layer.
    #[serde(default)]
    pub clfa_ocr: bool,
    /// CLFA: λ of the lexicon attention biases (a key's self-attention scores get λ·|polarity|);
    /// used with `data.lexicon`.
    #[serde(default = "default_one_f")]
    pub clfa_lexicon_weight: f64,
    /// MIM: fusion of the three purified vectors, `multiply` (paper), `add` or `concat`.
    #[serde(default = "default_mim_fusion")]
    pub mim_fusion: mmfuse_models::fusion::mim::MimFusion,
    /// MIM: weight of the L0 penalty in the purification step (paper 0.1).
    #[serde(default = "default_penalty")]
    pub mim_penalty_weight: f64,
    /// MIM: the 10 in the inter-modal guidance weight 0.5·(10·α)².
    #[serde(default = "default_kd_scale")]
    pub mim_kd_scale: f64,
    /// MIM: unimodal purification (UPN) on (false: the no-UPN ablation).
    #[serde(default = "default_true")]
    pub mim_purification: bool,
    /// MIM: knowledge guidance (KGS) on (false: the no-KGS ablation).
    #[serde(default = "default_true")]
    pub mim_guidance: bool,
    /// MIM: BiLSTM hidden size per direction in the UPN (0: d_model / 2, the paper's 2×40).
    #[serde(default)]
    pub mim_lstm_hidden: usize,
    /// MIM: sample the gate noise at evaluation too, as the released code does.
    #[serde(default)]
    pub mim_stochastic_eval: bool,
}

fn default_mim_fusion() -> mmfuse_models::fusion::mim::MimFusion {
    mmfuse_models::fusion::mim::MimFusion::Multiply
}
fn default_penalty() -> f64 {
    0.1
}
fn default_kd_scale() -> f64 {
    10.0
}

fn default_one_f() -> f64 {
    1.0
}
fn default_tau() -> f64 {
    0.1
}
fn default_fuser() -> mmfuse_models::fusion::clfa::Fuser {
    mmfuse_models::fusion::clfa::Fuser::CrossAttention
}
fn default_pooling() -> mmfuse_models::fusion::clfa::Pooling {
    mmfuse_models::fusion::clfa::Pooling::Mean
}

fn default_grid() -> usize {
    8
}
fn default_noise() -> f64 {
    1.0
}
fn default_caption_dim() -> usize {
    128
}
fn default_pixelcnn_filters() -> usize {
    32
}
fn default_decoder_dropout() -> f64 {
    0.5
}

fn default_cross_layers() -> usize {
    4
}
fn default_ratio() -> f64 {
    0.1
}
fn default_one() -> usize {
    1
}
fn default_three() -> usize {
    3
}

fn default_true() -> bool {
    true
}

fn default_method() -> String {
    "concat".into()
}
fn default_modality() -> Modality {
    Modality::Fused
}
fn default_d_model() -> usize {
    128
}
fn default_layers() -> usize {
    2
}
fn default_heads() -> usize {
    4
}
fn default_d_ff() -> usize {
    256
}
fn default_channels() -> Vec<usize> {
    vec![32, 64, 96]
}
fn default_dropout() -> f64 {
    0.1
}

/// `[train]`: optimisation and evaluation schedule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Epochs over the train split.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Stop after this many optimiser steps (0: no limit).
    #[serde(default)]
    pub max_steps: usize,
    /// Samples per batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Peak learning rate of the encoders and fusion layers.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Peak learning rate of the task head (parameters under `head` and `crf`).
    #[serde(default = "default_lr")]
    pub head_lr: f64,
    /// AdamW decoupled weight decay; biases and norm parameters get none.
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// AdamW epsilon.
    #[serde(default = "default_eps")]
    pub adam_eps: f64,
    /// Fraction of the steps spent in linear warm-up; then linear decay to 0.
    #[serde(default = "default_warmup")]
    pub warmup_ratio: f64,
    /// Clip the global gradient norm (over all parameters) to this value (0: off).
    #[serde(default = "default_clip")]
    pub clip_norm: f64,
    /// Evaluate on dev every N steps (0: at the end of each epoch).
    #[serde(default)]
    pub eval_every: usize,
    /// Stop after this many evaluations without dev improvement (0: never).
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// Seed of parameter init, shuffling and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Compute device: `cpu` or `cuda[:N]`.
    #[serde(default)]
    pub device: DeviceSpec,
    /// Data parallelism: devices to shard each batch over (e.g. ["cuda:0", "cuda:1"]); empty
    /// or one entry: train on `device` alone.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// Parameters to freeze, by path prefix with the model's variant names left out (e.g.
    /// `image.resnet.stem`, `image.resnet.stages.0` = torchvision's conv1/bn1 and layer1, as
    /// MuSE freezes them; `text.embeddings`). Each prefix must match at least one parameter.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Batch normalisation while training: `train` (batch statistics, running statistics
    /// updated, as PyTorch's `model.train()`, frozen layers included) or `eval` (every BN layer
    /// normalises with its running statistics and keeps them, e.g. a pretrained ResNet
    /// fine-tuned with small batches).
    #[serde(default = "default_bn")]
    pub batch_norm: String,
    /// Dev metric that selects the best checkpoint: `f1` (NER micro F1), `accuracy`,
    /// `macro_f1`. Default: `f1` for NER, `macro_f1` for classification.
    #[serde(default)]
    pub select_metric: Option<String>,
}

fn default_bn() -> String {
    "train".into()
}
fn default_epochs() -> usize {
    10
}
fn default_batch() -> usize {
    32
}
fn default_lr() -> f64 {
    1e-3
}
fn default_wd() -> f64 {
    0.01
}
fn default_eps() -> f64 {
    1e-8
}
fn default_warmup() -> f64 {
    0.1
}
fn default_clip() -> f64 {
    1.0
}
fn default_patience() -> usize {
    5
}
fn default_seed() -> u64 {
    42
}

/// A whole run configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
}

impl RunConfig {
    /// Parse a TOML document, apply `key=value` overrides (dotted keys, TOML values; a value that
    /// is not valid TOML is taken as a string), and validate.
    pub fn from_toml_str(text: &str, overrides: &[String]) -> Result<Self> {
        let mut doc: toml::Table = toml::from_str(text).context("invalid TOML")?;
        for o in overrides {
            apply_override(&mut doc, o)?;
        }
        let cfg: RunConfig = toml::Value::Table(doc).try_into().context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read a TOML file and apply overrides. Relative `data.dir` is resolved against the file's
    /// folder.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg = Self::from_toml_str(&text, overrides).with_context(|| format!("in {}", path.display()))?;
        if cfg.data.dir.is_relative()
            && !cfg.data.dir.exists()
            && let Some(parent) = path.parent()
        {
            let candidate = parent.join(&cfg.data.dir);
            if candidate.exists() {
                cfg.data.dir = candidate;
            }
        }
        Ok(cfg)
    }

    /// The resolved configuration as TOML (saved as `config.toml` in the run folder).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serialises")
    }

    /// The metric that selects the best checkpoint.
    pub fn select_metric(&self) -> String {
        self.train.select_metric.clone().unwrap_or_else(|| match self.data.task {
            TaskFamily::Ner => "f1".into(),
            TaskFamily::Classify => "macro_f1".into(),
            TaskFamily::Regression => "mae".into(),
        })
    }

    fn validate(&self) -> Result<()> {
        let t = &self.train;
        if t.batch_size == 0 {
            bail!("train.batch_size must be at least 1");
        }
        if !(t.lr > 0.0 && t.head_lr > 0.0) {
            bail!("train.lr and train.head_lr must be positive");
        }
        if !(0.0..1.0).contains(&t.warmup_ratio) {
            bail!("train.warmup_ratio must be in [0, 1)");
        }
        if self.data.max_len < 2 {
            bail!("data.max_len must be at least 2 ([CLS] and one token)");
        }
        // with a pretrained text encoder its hidden size is the model width (checked at load)
        if self.model.text_encoder.is_none() && !self.model.d_model.is_multiple_of(self.model.n_heads) {
            bail!("model.d_model ({}) must be divisible by model.n_heads ({})", self.model.d_model, self.model.n_heads);
        }
        match self.model.method.as_str() {
            "concat" => {}
            "muse" => {
                if self.model.modality != Modality::Fused {
                    bail!("model.method = \"muse\" fuses both modalities; use model.modality = \"fused\" (exchange_ratio = 0 is the no-exchange ablation)");
                }
                if !(0.0..=1.0).contains(&self.model.exchange_ratio) {
                    bail!("model.exchange_ratio must be in [0, 1]");
                }
                if self.model.exchange_start_layer > self.model.exchange_end_layer || self.model.exchange_end_layer >= self.model.cross_layers {
                    bail!(
                        "need exchange_start_layer <= exchange_end_layer < cross_layers, got {} / {} / {}",
                        self.model.exchange_start_layer,
                        self.model.exchange_end_layer,
                        self.model.cross_layers
                    );
                }
            }
            "clfa" => {
                if self.model.modality != Modality::Fused || self.data.task != TaskFamily::Classify {
                    bail!("model.method = \"clfa\" is a fused classifier: use model.modality = \"fused\" and data.task = \"classify\"");
                }
                if !(self.model.clfa_tau > 0.0 && self.model.clfa_alpha >= 0.0 && self.model.clfa_beta >= 0.0) {
                    bail!("model.clfa_tau must be > 0, model.clfa_alpha and model.clfa_beta >= 0");
                }
                if (self.model.clfa_ocr || self.data.lexicon.is_some()) && self.model.clfa_fuser != mmfuse_models::fusion::clfa::Fuser::CrossAttention {
                    bail!("model.clfa_ocr and data.lexicon act inside the cross encoder: use model.clfa_fuser = \"cross_attention\"");
                }
                if self.model.clfa_ocr && self.data.ocr_max_len < 2 {
                    bail!("data.ocr_max_len must be at least 2 ([CLS] and [SEP])");
                }
                if self.model.clfa_alpha > 0.0 && self.data.teacher.is_none() {
                    bail!(
                        "model.clfa_alpha > 0 aligns to CLIP: set data.teacher to a cache written by `mmfuse clip-embed` (or clfa_alpha = 0 for the no-alignment ablation)"
                    );
                }
            }
            "mim" => {
                if self.data.task != TaskFamily::Regression {
                    bail!("model.method = \"mim\" works on word-aligned text/audio/video features: use data.task = \"regression\"");
                }
                if !(self.model.mim_penalty_weight >= 0.0 && self.model.mim_kd_scale >= 0.0) {
                    bail!("model.mim_penalty_weight and model.mim_kd_scale must be >= 0");
                }
            }
            other => bail!("unknown model.method '{other}'; available: concat, muse, clfa, mim"),
        }
        if self.data.task == TaskFamily::Regression && self.model.method != "mim" {
            bail!("data.task = \"regression\" (word-aligned features) is MIM's task: use model.method = \"mim\"");
        }
        let m = &self.model;
        if (m.clfa_ocr || self.data.lexicon.is_some()) && m.method != "clfa" {
            bail!("model.clfa_ocr and data.lexicon are CLFA's; they need model.method = \"clfa\"");
        }
        if (m.caption_weight != 0.0 || m.pixelcnn_weight != 0.0) && m.method != "muse" {
            bail!("model.caption_weight / model.pixelcnn_weight are MuSE's decoders; they need model.method = \"muse\"");
        }
        if !(m.caption_weight >= 0.0 && m.pixelcnn_weight >= 0.0 && m.decoder_noise >= 0.0) {
            bail!("model.caption_weight, model.pixelcnn_weight and model.decoder_noise must be >= 0");
        }
        if !(0.0..1.0).contains(&m.decoder_dropout) {
            bail!("model.decoder_dropout must be in [0, 1)");
        }
        if !["train", "eval"].contains(&self.train.batch_norm.as_str()) {
            bail!("train.batch_norm must be \"train\" or \"eval\", got \"{}\"", self.train.batch_norm);
        }
        let m = self.select_metric();
        let allowed: &[&str] = if self.data.task == TaskFamily::Regression {
            &["mae", "corr", "corr_non0", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"]
        } else {
            &["f1", "accuracy", "macro_f1"]
        };
        if !allowed.contains(&m.as_str()) {
            bail!("unknown train.select_metric '{m}'; expected one of {} (mae: lower is better)", allowed.join(", "));
        }
        Ok(())
    }
}

/// Set `a.b.c = value` in a TOML table.
fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment.split_once('=').with_context(|| format!("--set expects key=value, got '{assignment}'"))?;
    let key = key.trim();
    let raw = raw.trim();
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("bad key '{key}' in --set");
    }
    let mut table = doc;
    for p in &parts[..parts.len() - 1] {
        table = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("--set {key}: '{p}' is not a table"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[data]
task = "ner"
dir = "corpus/ner"
[model]
[train]
"#;

    #[test]
    fn defaults_and_overrides() {
        let c = RunConfig::from_toml_str(BASE, &["train.lr=5e-5".into(), "model.modality=text".into(), "train.device=cpu".into()]).unwrap();
        assert_eq!(c.train.lr, 5e-5);
        assert_eq!(c.model.modality, Modality::Text);
        assert_eq!(c.train.batch_size, 32);
        assert_eq!(c.select_metric(), "f1");
        // round trip through the saved form
        let again = RunConfig::from_toml_str(&c.to_toml(), &[]).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = RunConfig::from_toml_str(BASE, &["train.lrr=1".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("lrr"), "{e:#}");
        let e = RunConfig::from_toml_str(BASE, &["model.n_heads=3".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("divisible"), "{e:#}");
        assert!(RunConfig::from_toml_str(BASE, &["nokey".into()]).is_err());
    }
}
