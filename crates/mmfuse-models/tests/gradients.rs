//! Every trainable parameter of every model variant receives a (non-zero) gradient from the
//! training loss: a parameter that silently gets none is a wiring bug (a branch that is never
//! used, a detached tensor).

use burn::optim::GradientsParams;
use burn::tensor::Device;
use mmfuse_models::encoders::ImageCnnConfig;
use mmfuse_models::fusion::{ConcatFusionConfig, Modality};
use mmfuse_models::task::{TaskKind, TaskModel};
mod common;
use common::{GradReport, post_batch, scratch_text, set_tiny_captions, tiny_bert, tiny_muse, tiny_vit};

fn batch(task: TaskKind, device: &Device) -> mmfuse_models::Batch {
    post_batch(task).to_device(device)
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let device = Device::flex().autodiff();
    device.seed(3);
    for task in [TaskKind::Classify { n_classes: 3 }, TaskKind::Tag { n_tags: 9 }] {
        for (modality, crf, text) in [
            (Modality::Text, false, scratch_text()),
            (Modality::Image, false, scratch_text()),
            (Modality::Fused, false, scratch_text()),
            (Modality::Fused, true, scratch_text()),
            (Modality::Image, true, scratch_text()),
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
            let image = tiny_vit();
            let model = ConcatFusionConfig::new(modality, task, scratch_text(), image).with_d_hidden(16).init(&device);
            let grads = GradientsParams::from_grads(model.loss(&batch(task, &device)).backward(), &model);
            let c = GradReport::of(&model, &grads);
            assert!(c.missing.is_empty() && c.zero.is_empty(), "ViT {task:?}/{modality:?}: no gradient for {:?}, zero for {:?}", c.missing, c.zero);
        }
        // MuSE: encoders → CrossTransformer (exchange in layers 0..=1) → head (+ CRF)
        for text in [scratch_text(), tiny_bert()] {
            // with both regularising decoders (captioning, PixelCNN++) on, dropout and noise off
            let model = tiny_muse(task, text).init(&device);
            let mut hb = post_batch(task);
            set_tiny_captions(&mut hb);
            let b = hb.to_device(&device);
            assert!(model.caption.is_some() && model.pixelcnn.is_some() && model.regulariser.is_some());
            let grads = GradientsParams::from_grads(model.loss(&b).backward(), &model);
            let c = GradReport::of(&model, &grads);
            assert!(c.missing.is_empty() && c.zero.is_empty(), "MuSE {task:?}: no gradient for {:?}, zero for {:?}", c.missing, c.zero);
        }
    }
}
