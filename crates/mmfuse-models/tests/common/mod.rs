//! Helpers shared by the model test binaries (each includes this file with `mod common;`):
//! a walk over the trainable parameters with their gradients, the check that every one
//! received a gradient, the lock that serialises
//! tests drawing from burn's process-wide random generator, and the tiny inputs and encoders
//! the tests build their models from.
#![allow(dead_code)] // not every test binary uses every helper

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use mmfuse_models::batch::{AlignedHostBatch, HostBatch};
use mmfuse_models::encoders::{BertConfig, ImageCnnConfig, ImageEncoderConfig, TextEncoderConfig, TextTransformerConfig, VitConfig};
use mmfuse_models::fusion::mim::{HardConcreteConfig, MimConfig, MimFusion};
use mmfuse_models::fusion::muse::{CaptionDecoderConfig, CrossTransformerConfig, MuseConfig, PixelCnnPpConfig};
use mmfuse_models::task::TaskKind;

/// The trainable parameters of a module that got no gradient, or an all-zero or non-finite one,
/// by path (`layers.0.attention.query.weight`).
#[derive(Debug, Default)]
pub struct GradReport {
    /// Trainable parameter tensors visited.
    pub total: usize,
    pub missing: Vec<String>,
    pub zero: Vec<String>,
}

impl GradReport {
    pub fn of<M: Module>(module: &M, grads: &GradientsParams) -> Self {
        let mut report = GradReport::default();
        for_each_trainable(module, &[grads], |path, g| {
            report.total += 1;
            match &g[0] {
                None => report.missing.push(path.to_string()),
                Some(v) => {
                    let s: f32 = v.iter().map(|x| x.abs()).sum();
                    if !(s.is_finite() && s > 0.0) {
                        report.zero.push(path.to_string());
                    }
                }
            }
        });
        report
    }

    /// Missing and zero together.
    pub fn bad(&self) -> Vec<String> {
        self.missing.iter().chain(&self.zero).cloned().collect()
    }
}

/// Calls `f` for each trainable parameter of `module`, in order, with its path
/// (`layers.0.attention.query.weight`) and its gradient's values in each of `grads` (`None`
/// where that set has none).
pub fn for_each_trainable<M: Module>(module: &M, grads: &[&GradientsParams], f: impl FnMut(&str, Vec<Option<Vec<f32>>>)) {
    module.visit(&mut Walk { grads, path: vec![], f });
}

struct Walk<'a, F> {
    grads: &'a [&'a GradientsParams],
    path: Vec<String>,
    f: F,
}

impl<F: FnMut(&str, Vec<Option<Vec<f32>>>)> ModuleVisitor for Walk<'_, F> {
    fn enter_module(&mut self, name: &str, _t: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _n: &str, _t: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if !p.is_require_grad() {
            return;
        }
        let values = self.grads.iter().map(|g| g.get::<D>(p.id).map(|t| t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 gradient"))).collect();
        (self.f)(&self.path.join("."), values);
    }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// burn's seed is process-wide: tests that seed and then draw hold this lock, so each sees the
/// same random weights whatever the test order.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `b` posts of 6 positions (some padded: sample i has `i % 3` padding tokens), 16×16 images,
/// targets `i % n_classes` or tags `k % n_tags` (scored: every real position but `[CLS]`).
pub fn post_batch_of(b: usize, task: TaskKind) -> HostBatch {
    let (l, s) = (6, 16);
    let mut hb = HostBatch { batch_size: b, seq_len: l, image_size: s, ..Default::default() };
    for i in 0..b {
        for p in 0..l {
            hb.ids.push(((i * 7 + p * 3) % 20) as i64);
            hb.mask.push(p < l - i % 3);
        }
    }
    hb.images = (0..b * 3 * s * s).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    match task {
        TaskKind::Classify { n_classes } => hb.classes = Some((0..b).map(|i| (i % n_classes) as i64).collect()),
        TaskKind::Tag { n_tags } => {
            hb.tags = Some(((0..b * l).map(|i| (i % n_tags) as i64).collect(), (0..b * l).map(|i| i % l != 0 && hb.mask[i]).collect()));
            let scored = hb.tags.as_ref().unwrap().1.clone();
            hb.set_word_positions(&scored);
        }
    }
    hb
}

/// [`post_batch_of`] 4 posts.
pub fn post_batch(task: TaskKind) -> HostBatch {
    post_batch_of(4, task)
}

/// `b` word-aligned segments of `l` steps (sample i has `i % 3` padding steps) with `a` audio and
/// `v` video features per step; no labels.
pub fn aligned_batch(b: usize, l: usize, a: usize, v: usize) -> AlignedHostBatch {
    let mut hb = AlignedHostBatch { batch_size: b, seq_len: l, audio_dim: a, video_dim: v, ..Default::default() };
    for i in 0..b {
        let len = l - i % 3;
        for p in 0..l {
            let real = p < len;
            hb.ids.push(if real { ((i * 5 + p * 3) % 19 + 1) as i64 } else { 0 });
            hb.mask.push(real);
            let on = real && p > 0;
            hb.audio.extend((0..a).map(|k| if on { (((i + p * k) % 7) as f32 - 3.0) / 3.0 } else { 0.0 }));
            hb.video.extend((0..v).map(|k| if on { (((i * 3 + p + k) % 5) as f32 - 2.0) / 2.0 } else { 0.0 }));
        }
    }
    hb
}

/// A from-scratch text Transformer: vocabulary 20, d 16, 2 heads, 1 layer, no dropout.
pub fn scratch_text() -> TextEncoderConfig {
    TextTransformerConfig::new(20).with_d_model(16).with_n_heads(2).with_n_layers(1).with_d_ff(32).with_max_len(8).with_dropout(0.0).into()
}

/// A BERT of the same size (the pretrained-encoder path; pooler dropped).
pub fn tiny_bert() -> TextEncoderConfig {
    TextEncoderConfig::Bert(BertConfig {
        vocab_size: 20,
        hidden_size: 16,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 32,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        max_position_embeddings: 8,
        ..BertConfig::default()
    })
}

/// A tiny MuSE: `text`, a 2-block CNN, a 2-layer CrossTransformer exchanging in layers 0..=1, and
/// both regularising decoders (captioning over 12 words, PixelCNN++) on; dropout and decoder
/// noise off, so the loss is deterministic.
pub fn tiny_muse(task: TaskKind, text: TextEncoderConfig) -> MuseConfig {
    let image = ImageCnnConfig::new().with_channels(vec![4, 8]).with_d_model(16);
    let cross = CrossTransformerConfig::new(16)
        .with_n_heads(2)
        .with_d_ff(32)
        .with_n_layers(2)
        .with_dropout(0.0)
        .with_exchange_ratio(0.5)
        .with_exchange_start_layer(0)
        .with_exchange_end_layer(1);
    let caption = CaptionDecoderConfig::new(12, 16).with_d_embed(8).with_d_hidden(8).with_d_attention(8).with_dropout(0.0);
    let pixelcnn = PixelCnnPpConfig::new(16).with_nr_filters(4).with_nr_resnet(1).with_nr_logistic_mix(2).with_dropout(0.0);
    MuseConfig::new(task, text, image.into(), cross)
        .with_dropout(0.0)
        .with_caption(Some(caption))
        .with_pixelcnn(Some(pixelcnn))
        .with_decoder_noise(0.0)
        .with_caption_weight(0.5)
        .with_pixelcnn_weight(0.5)
}

/// Captions for MuSE's captioning decoder: `3 + i` words of a 12-word vocabulary for post i.
pub fn set_tiny_captions(hb: &mut HostBatch) {
    let caps: Vec<Vec<i64>> = (0..hb.batch_size).map(|i| (0..3 + i).map(|t| ((t * 5 + i) % 12) as i64).collect()).collect();
    hb.set_captions(&caps.iter().map(|c| c.as_slice()).collect::<Vec<_>>());
}

/// Sizes of the tiny MIM: steps, audio and video features.
pub const MIM_L: usize = 7;
pub const MIM_A: usize = 3;
pub const MIM_V: usize = 2;

/// A tiny MIM (d 8, one layer, BiLSTM 4) over [`MIM_L`] steps, no dropout.
pub fn tiny_mim(fusion: MimFusion) -> MimConfig {
    let text = TextTransformerConfig::new(20).with_d_model(16).with_n_heads(2).with_n_layers(1).with_d_ff(32).with_max_len(MIM_L).with_dropout(0.0);
    MimConfig::new(text.into(), MIM_A, MIM_V, MIM_L, HardConcreteConfig::new())
        .with_d_model(8)
        .with_n_heads(2)
        .with_d_ff(16)
        .with_n_layers(1)
        .with_dropout(0.0)
        .with_lstm_hidden(4)
        .with_fusion(fusion)
}

/// A one-layer ViT (16×16 images, 8×8 patches, d 16) projected to d 16: the pretrained-encoder
/// path of the image side.
pub fn tiny_vit() -> ImageEncoderConfig {
    let vit = VitConfig {
        hidden_size: 16,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 32,
        image_size: 16,
        patch_size: 8,
        ..VitConfig::default()
    };
    ImageEncoderConfig::Vit { vit, d_model: 16 }
}
