//! An absent modality is a state of the batch that every fusion method honours (see
//! `mmfuse_models::batch`): whatever the absent image (or text, or a MIM segment's audio or
//! video) holds cannot change that post's prediction, the other posts of the batch predict as
//! if nothing were absent, and the flag does change the absent post's prediction (so a model
//! that ignored it would fail here).

use burn::module::Module;
use burn::tensor::Device;
use mmfuse_models::batch::HostBatch;
use mmfuse_models::encoders::{ImageCnnConfig, ImageEncoderConfig};
use mmfuse_models::fusion::clfa::{ClfaConfig, CrossEncoderConfig, Fuser};
use mmfuse_models::fusion::mim::{Mim, MimFusion};
use mmfuse_models::fusion::{ConcatFusionConfig, Modality};
use mmfuse_models::task::{Prediction, TaskKind, TaskModel};
mod common;
use common::{MIM_A, MIM_L, MIM_V, aligned_batch, post_batch_of, scratch_text, serial, tiny_muse, tiny_vit};

fn cnn() -> ImageEncoderConfig {
    ImageCnnConfig::new().with_channels(vec![4, 8]).with_d_model(16).into()
}

/// Per post, its class probabilities or its tags as numbers.
fn per_post(p: Prediction) -> Vec<Vec<f32>> {
    match p {
        Prediction::Classes(c) => c,
        Prediction::Tags(t) => t.into_iter().map(|r| r.into_iter().map(|x| x as f32).collect()).collect(),
    }
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

/// Post 1 without its image and (with `text_too`) post 2 without its text: their predictions do
/// not depend on the absent content, posts 0 and 3 predict as in a batch with everything there,
/// and post 1's prediction is not its with-image one.
fn check<M: TaskModel>(name: &str, model: &M, task: TaskKind, text_too: bool) {
    let device = Device::flex();
    let full = post_batch_of(4, task);
    let mut absent = full.clone();
    absent.mark_absent(1, true, false);
    if text_too {
        absent.mark_absent(2, false, true);
    }
    // other content in the absent places
    let mut other = absent.clone();
    let n = 3 * full.image_size * full.image_size;
    for (k, v) in other.images[n..2 * n].iter_mut().enumerate() {
        *v = ((k * 53 % 97) as f32 / 48.0) - 1.0;
    }
    if text_too {
        let l = full.seq_len;
        for p in 1..l {
            if other.mask[2 * l + p] {
                other.ids[2 * l + p] = ((p * 11 + 5) % 20) as i64;
            }
        }
    }
    let predict = |hb: &HostBatch| per_post(model.predict(&hb.to_device(&device)));
    let (p_full, p_absent, p_other) = (predict(&full), predict(&absent), predict(&other));
    for i in [0, 3] {
        assert!(close(&p_full[i], &p_absent[i]), "{name}: post {i} (nothing absent) changed when post 1 lost its image: {:?} vs {:?}", p_full[i], p_absent[i]);
    }
    assert!(close(&p_absent[1], &p_other[1]), "{name}: the absent image's pixels changed post 1's prediction: {:?} vs {:?}", p_absent[1], p_other[1]);
    if text_too {
        assert!(close(&p_absent[2], &p_other[2]), "{name}: the absent text's ids changed post 2's prediction: {:?} vs {:?}", p_absent[2], p_other[2]);
    }
    if let TaskKind::Classify { .. } = task {
        assert!(!close(&p_full[1], &p_absent[1]), "{name}: post 1 predicts the same with and without its image: the absent flag is ignored");
    }
}

#[test]
fn concat_ignores_absent_content() {
    let _guard = serial();
    let device = Device::flex();
    device.seed(31);
    let cls = TaskKind::Classify { n_classes: 3 };
    let model = ConcatFusionConfig::new(Modality::Fused, cls, scratch_text(), cnn()).with_d_hidden(16).with_dropout(0.0).init(&device);
    check("concat classify", &model, cls, true);
    let tag = TaskKind::Tag { n_tags: 9 };
    let model = ConcatFusionConfig::new(Modality::Fused, tag, scratch_text(), cnn()).with_d_hidden(16).with_crf(true).with_dropout(0.0).init(&device);
    check("concat tag (CRF)", &model, tag, false);
}

#[test]
fn muse_ignores_absent_content() {
    let _guard = serial();
    let device = Device::flex();
    device.seed(32);
    for task in [TaskKind::Classify { n_classes: 3 }, TaskKind::Tag { n_tags: 9 }] {
        let model = tiny_muse(task, scratch_text()).with_caption(None).with_pixelcnn(None).init(&device);
        check(&format!("MuSE {task:?}"), &model, task, matches!(task, TaskKind::Classify { .. }));
    }
}

#[test]
fn clfa_ignores_absent_content() {
    let _guard = serial();
    let device = Device::flex();
    device.seed(33);
    let task = TaskKind::Classify { n_classes: 2 };
    for fuser in [Fuser::CrossAttention, Fuser::ConcatMean, Fuser::CoAttention] {
        let cross = CrossEncoderConfig::new(16).with_n_heads(2).with_d_ff(32).with_n_layers(2).with_dropout(0.0);
        let model = ClfaConfig::new(task, scratch_text(), tiny_vit(), cross).with_d_proj(6).with_fuser(fuser).with_dropout(0.0).init(&device);
        check(&format!("CLFA {fuser:?}"), &model, task, true);
    }
}

/// MIM: a segment's absent audio closes its audio gates (keep mask 0 everywhere), whatever its
/// audio rows hold the prediction is the same, the other segments are unaffected, and under each
/// fusion the prediction differs from the one with the audio there.
#[test]
fn mim_closes_the_gates_of_an_absent_modality() {
    let _guard = serial();
    let device = Device::flex();
    device.seed(34);
    for fusion in [MimFusion::Multiply, MimFusion::Add, MimFusion::Concat] {
        let model: Mim = tiny_mim_valid(fusion, &device);
        let full = aligned_batch(4, MIM_L, MIM_A, MIM_V);
        let mut absent = full.clone();
        absent.mark_absent(1, true, false);
        absent.mark_absent(2, false, true);
        // the flags alone, the rows left as they were: the model must not read them
        let mut flagged_only = full.clone();
        flagged_only.absent = absent.absent.clone();
        let run = |hb: &mmfuse_models::batch::AlignedHostBatch| model.predict_with_masks(&hb.to_device(&device));
        let ((y_full, _), (y_absent, masks), (y_flagged, _)) = (run(&full), run(&absent), run(&flagged_only));
        let masks = masks.expect("MIM has a UPN");
        assert!(masks[1][1].iter().all(|k| !k), "{fusion:?}: the audio gates of segment 1 are not closed: {:?}", masks[1][1]);
        assert!(masks[2][2].iter().all(|k| !k), "{fusion:?}: the video gates of segment 2 are not closed: {:?}", masks[2][2]);
        for i in [0, 3] {
            assert!((y_full[i] - y_absent[i]).abs() < 1e-6, "{fusion:?}: segment {i} changed: {} vs {}", y_full[i], y_absent[i]);
        }
        for i in [1, 2] {
            assert!((y_absent[i] - y_flagged[i]).abs() < 1e-6, "{fusion:?}: segment {i} read its absent rows: {} vs {}", y_absent[i], y_flagged[i]);
            assert!((y_absent[i] - y_full[i]).abs() > 1e-6, "{fusion:?}: segment {i} predicts the same with the modality absent");
        }
    }
}

fn tiny_mim_valid(fusion: MimFusion, device: &Device) -> Mim {
    common::tiny_mim(fusion).init(device).valid()
}
