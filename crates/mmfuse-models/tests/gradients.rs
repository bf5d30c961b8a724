//! Every trainable parameter of every model variant receives a (non-zero) gradient from the
//! training loss: a parameter that silently gets none is a wiring bug (a branch that is never
//! used, a detached tensor).

use burn::optim::GradientsParams;
use burn::tensor::Device;
use mmfuse_models::batch::HostBatch;
use mmfuse_models::encoders::{BertConfig, ImageCnnConfig, ImageEncoderConfig, TextEncoderConfig, TextTransformerConfig, VitConfig};
use mmfuse_models::fusion::muse::{CaptionDecoderConfig, CrossTransformerConfig, MuseConfig, PixelCnnPpConfig};
use mmfuse_models::fusion::{ConcatFusionConfig, Modality};
use mmfuse_models::task::{TaskKind, TaskModel};
mod common;
use common::GradReport;

fn batch(task: TaskKind, device: &Device) -> mmfuse_models::Batch {
    host_batch(task).to_device(device)
}

fn host_batch(task: TaskKind) -> HostBatch {
    let (b, l, s) = (4, 6, 16);
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

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let device = Device::flex().autodiff();
    device.seed(3);
    for task in [TaskKind::Classify { n_classes: 3 }, TaskKind::Tag { n_tags: 9 }] {
        for (modality, crf, text) in [
            (Modality::Text, false, scratch()),
            (Modality::Image, false, scratch()),
            (Modality::Fused, false, scratch()),
            (Modality::Fused, true, scratch()),
            (Modality::Image, true, scratch()),
            (Modality::Text, true, tiny_bert()),
            (Modality::Fused, false, tiny_bert()),
        ] {
            let image = ImageCnnConfig::new().with_channels(vec![4, 8]).with_d_model(16);
            let model = ConcatFusionConfig::new(modality, task, text, image.clone().into()).with_d_hidden(16).with_crf(crf).init(&device);
            let b = batch(task, &device);
            let grads = GradientsParams::from_grads(model.loss(&b).backward(), &model);
            let c = GradReport::of(&model, &grads);
            assert!(c.total > 4, "{task:?}/{modality:?}: too few parameters visited ({})", c.total);
            assert!(c.missing.is_empty(), "{task:?}/{modality:?}: no gradient for {:?}", c.missing);
            assert!(c.zero.is_empty(), "{task:?}/{modality:?}: all-zero gradient for {:?}", c.zero);
        }
        // a ViT image encoder (the pretrained-encoder path: [CLS] + patches, projected)
        for modality in [Modality::Image, Modality::Fused] {
            let vit = VitConfig {
                hidden_size: 16,
                num_hidden_layers: 1,
                num_attention_heads: 2,
                intermediate_size: 32,
                image_size: 16,
                patch_size: 8,
                ..VitConfig::default()
            };
            let image = ImageEncoderConfig::Vit { vit, d_model: 16 };
            let model = ConcatFusionConfig::new(modality, task, scratch(), image).with_d_hidden(16).init(&device);
            let grads = GradientsParams::from_grads(model.loss(&batch(task, &device)).backward(), &model);
            let c = GradReport::of(&model, &grads);
            assert!(c.missing.is_empty() && c.zero.is_empty(), "ViT {task:?}/{modality:?}: no gradient for {:?}, zero for {:?}", c.missing, c.zero);
        }
        // MuSE: encoders → CrossTransformer (exchange in layers 0..=1) → head (+ CRF)
        for text in [scratch(), tiny_bert()] {
            let image = ImageCnnConfig::new().with_channels(vec![4, 8]).with_d_model(16);
            let cross = CrossTransformerConfig::new(16)
                .with_n_heads(2)
                .with_d_ff(32)
                .with_n_layers(2)
                .with_dropout(0.0)
                .with_exchange_ratio(0.5)
                .with_exchange_start_layer(0)
                .with_exchange_end_layer(1);
            // with both regularising decoders (captioning, PixelCNN++) on, dropout and noise off
            let caption = CaptionDecoderConfig::new(12, 16).with_d_embed(8).with_d_hidden(8).with_d_attention(8).with_dropout(0.0);
            let pixelcnn = PixelCnnPpConfig::new(16).with_nr_filters(4).with_nr_resnet(1).with_nr_logistic_mix(2).with_dropout(0.0);
            let model = MuseConfig::new(task, text, image.into(), cross)
                .with_caption(Some(caption))
                .with_pixelcnn(Some(pixelcnn))
                .with_decoder_noise(0.0)
                .with_caption_weight(0.5)
                .with_pixelcnn_weight(0.5)
                .init(&device);
            let mut hb = host_batch(task);
            let caps: Vec<Vec<i64>> = (0..hb.batch_size).map(|i| (0..3 + i).map(|t| ((t * 5 + i) % 12) as i64).collect()).collect();
            hb.set_captions(&caps.iter().map(|c| c.as_slice()).collect::<Vec<_>>());
            let b = hb.to_device(&device);
            assert!(model.caption.is_some() && model.pixelcnn.is_some() && model.regulariser.is_some());
            let grads = GradientsParams::from_grads(model.loss(&b).backward(), &model);
            let c = GradReport::of(&model, &grads);
            assert!(c.missing.is_empty() && c.zero.is_empty(), "MuSE {task:?}: no gradient for {:?}, zero for {:?}", c.missing, c.zero);
        }
    }
}

fn scratch() -> TextEncoderConfig {
    TextTransformerConfig::new(20).with_d_model(16).with_n_heads(2).with_n_layers(1).with_d_ff(32).with_max_len(8).with_dropout(0.0).into()
}

/// A BERT of the same size (the pretrained-encoder path; pooler dropped).
fn tiny_bert() -> TextEncoderConfig {
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
