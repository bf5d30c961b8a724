//! The model registry: any method's model, MIM included, built from `[model]`
//! ([`ModelConfig`]), `[data]` and the shapes a run fixes ([`ModelShapes`]). Training builds
//! fresh models here; prediction rebuilds a run's model here before loading its weights.

use crate::config::{Method, ModelConfig};
use crate::encoders::{BertConfig, ImageCnnConfig, ImageEncoderConfig, TextEncoderConfig, TextTransformerConfig};
use crate::fusion::clfa::{ClfaConfig, CrossEncoderConfig};
use crate::fusion::mim::{HardConcreteConfig, Mim, MimConfig};
use crate::fusion::muse::{CaptionDecoderConfig, CrossTransformerConfig, MuseConfig, PixelCnnPpConfig};
use crate::fusion::{ConcatFusionConfig, FusionModel};
use crate::package::ModelShapes;
use crate::task::TaskKind;
use burn::tensor::Device;
use mmfuse_data::config::{DataConfig, TaskFamily};

/// A built model: a post model (text + image, [`FusionModel`]) or MIM on word-aligned
/// features.
#[allow(clippy::large_enum_variant)] // one per run or server
#[derive(Debug)]
pub enum Model {
    Posts(FusionModel),
    Aligned(Mim),
}

/// The text encoder a config describes: BERT of `bert` (a pretrained encoder's config), else a
/// Transformer from scratch over `vocab_size` words.
pub fn text_encoder_config(model: &ModelConfig, data: &DataConfig, vocab_size: usize, bert: Option<&BertConfig>) -> TextEncoderConfig {
    match bert {
        Some(b) => TextEncoderConfig::Bert(b.clone()),
        None => TextTransformerConfig::new(vocab_size)
            .with_d_model(model.d_model)
            .with_n_heads(model.n_heads)
            .with_n_layers(model.n_layers)
            .with_d_ff(model.d_ff)
            .with_max_len(data.max_len)
            .with_dropout(model.dropout)
            .into(),
    }
}

/// Check a pretrained text encoder's config against the run (sequence length, heads of the
/// fusion layers).
pub fn check_text_config(model: &ModelConfig, data: &DataConfig, b: &BertConfig) -> Result<(), String> {
    if data.max_len > b.max_position_embeddings {
        return Err(format!("data.max_len {} is longer than the text encoder's max_position_embeddings {}", data.max_len, b.max_position_embeddings));
    }
    if matches!(model.method, Method::Muse(_)) && !b.hidden_size.is_multiple_of(model.n_heads) {
        return Err(format!(
            "the text encoder's hidden_size {} must be divisible by model.n_heads {} (the CrossTransformer's heads)",
            b.hidden_size, model.n_heads
        ));
    }
    Ok(())
}

/// The task a post model solves: tagging over the NER tags or classification over the labels.
pub fn task_kind(data: &DataConfig, n_labels: usize) -> Option<TaskKind> {
    match data.task {
        TaskFamily::Ner => Some(TaskKind::Tag { n_tags: n_labels }),
        TaskFamily::Classify => Some(TaskKind::Classify { n_classes: n_labels }),
        TaskFamily::Regression => None,
    }
}

/// Build the model a config describes (fresh weights) with the shapes `shapes` fixes; the image
/// encoder and fusion layers take the text encoder's hidden size. `n_labels` is the size of the
/// label map (posts; unused by MIM).
pub fn build(cfg: &ModelConfig, data: &DataConfig, shapes: &ModelShapes, n_labels: usize, device: &Device) -> Result<Model, String> {
    if let Method::Mim(_) = cfg.method {
        let (da, dv) = shapes.features.ok_or("a MIM model needs its audio / video feature sizes (features.json)")?;
        return Ok(Model::Aligned(mim_config(cfg, data, shapes.text.clone(), da, dv).init(device)));
    }
    let task = task_kind(data, n_labels).ok_or("data.task = \"regression\" is MIM's task")?;
    build_fusion(cfg, data, shapes, task, device).map(Model::Posts).ok_or_else(|| "internal: not a post model".to_string())
}

/// MIM's model config over a text encoder config and the feature sizes.
pub fn mim_config(cfg: &ModelConfig, data: &DataConfig, text: TextEncoderConfig, da: usize, dv: usize) -> MimConfig {
    let m = cfg.mim().cloned().unwrap_or_default();
    let hidden = if m.lstm_hidden > 0 { m.lstm_hidden } else { (cfg.d_model / 2).max(1) };
    MimConfig::new(text, da, dv, data.max_len, HardConcreteConfig::new().with_stochastic_eval(m.stochastic_eval))
        .with_d_model(cfg.d_model)
        .with_n_heads(cfg.n_heads)
        .with_d_ff(cfg.d_ff)
        .with_n_layers(cfg.n_layers)
        .with_dropout(cfg.dropout)
        .with_lstm_hidden(hidden)
        .with_fusion(m.fusion)
        .with_penalty_weight(m.penalty_weight)
        .with_kd_scale(m.kd_scale)
        .with_purification(m.purification)
        .with_guidance(m.guidance)
}

/// A post model (concat, MuSE, CLFA) for `task`; `None` for MIM.
fn build_fusion(cfg: &ModelConfig, data: &DataConfig, shapes: &ModelShapes, task: TaskKind, device: &Device) -> Option<FusionModel> {
    let text = shapes.text.clone();
    let d = text.d_model();
    let spec = data.image_spec();
    let image: ImageEncoderConfig = match &shapes.image {
        Some(p) => p.encoder_config(d, cfg.image_grid),
        None => ImageCnnConfig::new().with_channels(cfg.cnn_channels.clone()).with_d_model(d).into(),
    };
    Some(match &cfg.method {
        Method::Muse(m) => {
            let cross = CrossTransformerConfig::new(d)
                .with_n_heads(cfg.n_heads)
                .with_d_ff(cfg.d_ff)
                .with_n_layers(m.cross_layers)
                .with_dropout(cfg.dropout)
                .with_exchange_ratio(m.exchange_ratio)
                .with_exchange_start_layer(m.exchange_start_layer)
                .with_exchange_end_layer(m.exchange_end_layer)
                .with_replace(m.exchange_replace)
                .with_reference_compat(m.reference_compat);
            let caption = (m.caption_weight > 0.0).then(|| {
                CaptionDecoderConfig::new(shapes.caption_vocab, d)
                    .with_d_embed(m.caption_dim)
                    .with_d_hidden(m.caption_dim)
                    .with_d_attention(m.caption_dim)
                    .with_dropout(m.decoder_dropout)
                    .with_reference_compat(m.reference_compat)
            });
            let pixelcnn = (m.pixelcnn_weight > 0.0)
                .then(|| PixelCnnPpConfig::new(d).with_nr_filters(m.pixelcnn_filters).with_nr_resnet(m.pixelcnn_resnets).with_dropout(m.decoder_dropout));
            FusionModel::Muse(
                MuseConfig::new(task, text, image, cross)
                    .with_caption(caption)
                    .with_pixelcnn(pixelcnn)
                    .with_dropout(cfg.dropout)
                    .with_crf(cfg.crf)
                    .with_caption_weight(m.caption_weight)
                    .with_pixelcnn_weight(m.pixelcnn_weight)
                    .with_decoder_noise(m.decoder_noise)
                    .with_pixel_mean(spec.mean)
                    .with_pixel_std(spec.std)
                    .init(device),
            )
        }
        Method::Clfa(c) => {
            let cross = CrossEncoderConfig::new(d)
                .with_n_heads(cfg.n_heads)
                .with_d_ff(cfg.d_ff)
                .with_n_layers(c.cross_layers)
                .with_dropout(cfg.dropout)
                .with_ocr(c.ocr);
            FusionModel::Clfa(
                ClfaConfig::new(task, text, image, cross)
                    .with_d_proj(shapes.teacher_dim.max(1))
                    .with_tau(c.tau)
                    .with_alpha(c.alpha)
                    .with_beta(c.beta)
                    .with_pooling(c.pooling)
                    .with_fuser(c.fuser)
                    .with_dropout(cfg.dropout)
                    .with_lexicon_weight(c.lexicon_weight)
                    .init(device),
            )
        }
        Method::Concat(c) => FusionModel::Concat(
            ConcatFusionConfig::new(cfg.modality, task, text, image).with_d_hidden(c.d_hidden).with_dropout(cfg.dropout).with_crf(cfg.crf).init(device),
        ),
        Method::Mim(_) => return None,
    })
}
