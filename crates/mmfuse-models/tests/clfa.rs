//! CLFA end to end on tiny sizes: every trainable parameter gets a gradient for each fuser and
//! pooling, α = 0 leaves exactly β·CE, and the model overfits a tiny synthetic task.

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Device;
use mmfuse_models::Targets;
use mmfuse_models::batch::HostBatch;
use mmfuse_models::encoders::{ImageCnnConfig, TextEncoderConfig, TextTransformerConfig};
use mmfuse_models::fusion::clfa::{Clfa, ClfaConfig, CrossEncoderConfig, Fuser, Pooling};
use mmfuse_models::heads::losses::cross_entropy;
use mmfuse_models::task::{Prediction, TaskKind, TaskModel};
mod common;
use common::{GradReport, post_batch_of, serial};

const P: usize = 6;

fn text() -> TextEncoderConfig {
    TextTransformerConfig::new(20).with_d_model(16).with_n_heads(2).with_n_layers(1).with_d_ff(32).with_max_len(8).with_dropout(0.0).into()
}

fn config(fuser: Fuser, pooling: Pooling, n_classes: usize) -> ClfaConfig {
    let image = ImageCnnConfig::new().with_channels(vec![4, 8]).with_d_model(16);
    let cross = CrossEncoderConfig::new(16).with_n_heads(2).with_d_ff(32).with_n_layers(2).with_dropout(0.0);
    ClfaConfig::new(TaskKind::Classify { n_classes }, text(), image.into(), cross)
        .with_d_proj(P)
        .with_d_proj_hidden(Some(12))
        .with_fuser(fuser)
        .with_pooling(pooling)
        .with_dropout(0.0)
}

/// `b` posts of 6 positions (some padded), 16×16 images, classes `i % n_classes`, and teacher
/// embeddings `[b, P]` per modality.
fn host_batch(b: usize, n_classes: usize) -> HostBatch {
    let mut hb = post_batch_of(b, TaskKind::Classify { n_classes });
    let t: Vec<f32> = (0..b * P).map(|k| (((k * 13) % 11) as f32 - 5.0) / 5.0).collect();
    let v: Vec<f32> = (0..b * P).map(|k| (((k * 17) % 7) as f32 - 3.0) / 3.0).collect();
    hb.teacher = Some((t, v, P));
    hb
}

const VARIANTS: [(Fuser, Pooling); 5] = [
    (Fuser::CrossAttention, Pooling::Mean),
    (Fuser::CrossAttention, Pooling::Cls),
    (Fuser::CrossAttention, Pooling::Max),
    (Fuser::ConcatMean, Pooling::Mean),
    (Fuser::CoAttention, Pooling::Mean),
];

#[test]
fn every_trainable_parameter_gets_a_gradient_for_each_fuser() {
    let _guard = serial();
    let device = Device::flex().autodiff();
    device.seed(3);
    for (fuser, pooling) in VARIANTS {
        let model = config(fuser, pooling, 3).init(&device);
        assert!(model.proj_text.is_some() && model.proj_image.is_some());
        assert_eq!(model.cross.is_some(), fuser == Fuser::CrossAttention);
        assert_eq!(model.co_text.is_some() && model.co_image.is_some(), fuser == Fuser::CoAttention);
        let b = host_batch(4, 3).to_device(&device);
        let grads = GradientsParams::from_grads(model.loss(&b).backward(), &model);
        let c = GradReport::of(&model, &grads);
        assert!(c.total > 10, "{fuser:?}/{pooling:?}: too few parameters visited ({})", c.total);
        assert!(c.missing.is_empty(), "{fuser:?}/{pooling:?}: no gradient for {:?}", c.missing);
        assert!(c.zero.is_empty(), "{fuser:?}/{pooling:?}: all-zero gradient for {:?}", c.zero);
        // predictions: one probability row per sample, summing to 1
        match model.predict(&b) {
            Prediction::Classes(p) => {
                assert_eq!(p.len(), 4);
                for row in p {
                    assert_eq!(row.len(), 3);
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                }
            }
            other => panic!("expected class probabilities, got {other:?}"),
        }
    }
}

#[test]
fn without_alignment_the_loss_is_beta_times_cross_entropy() {
    let _guard = serial();
    let device = Device::flex();
    device.seed(7);
    for (fuser, pooling) in VARIANTS {
        let model = config(fuser, pooling, 3).with_alpha(0.0).with_beta(0.7).init(&device);
        assert!(model.proj_text.is_none() && model.proj_image.is_none(), "α = 0 builds no projection MLPs");
        // no teacher needed when α = 0
        let mut hb = host_batch(4, 3);
        hb.teacher = None;
        let b = hb.to_device(&device);
        let loss = model.loss(&b).into_scalar::<f32>();
        let Targets::Class(y) = b.targets.clone() else { unreachable!() };
        let ce = cross_entropy(model.forward(&b), y).into_scalar::<f32>();
        assert_eq!(loss, ce * 0.7f32, "{fuser:?}: loss {loss} vs 0.7·CE {}", 0.7 * ce);
        assert!(ce > 0.0);
    }
    // α > 0: loss = β·CE + α·(L_text + L_image), and the alignment term is positive
    device.seed(9);
    let model = config(Fuser::CrossAttention, Pooling::Mean, 3).with_alpha(0.5).with_beta(0.7).init(&device);
    let b = host_batch(4, 3).to_device(&device);
    let Targets::Class(y) = b.targets.clone() else { unreachable!() };
    let (t, i) = model.encode(&b);
    let align = model.alignment_loss(t, i, &b).expect("alignment on").into_scalar::<f32>();
    let ce = cross_entropy(model.forward(&b), y).into_scalar::<f32>();
    let loss = model.loss(&b).into_scalar::<f32>();
    assert!(align > 0.0);
    assert!((loss - (0.7 * ce + 0.5 * align)).abs() < 1e-5, "loss {loss} vs {}", 0.7 * ce + 0.5 * align);
}

#[test]
fn overfits_a_tiny_synthetic_task() {
    let _guard = serial();
    let device = Device::flex().autodiff();
    for (k, fuser) in [Fuser::CrossAttention, Fuser::ConcatMean, Fuser::CoAttention].into_iter().enumerate() {
        device.seed(1 + k as u64);
        let mut model: Clfa = config(fuser, Pooling::Mean, 2).init(&device);
        // 8 posts, labels alternate; ids, images and teacher differ per post
        let b = host_batch(8, 2).to_device(&device);
        let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
        let first = model.loss(&b).into_scalar::<f32>();
        let mut last = first;
        for _ in 0..80 {
            let loss = model.loss(&b);
            last = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let after = model.loss(&b).into_scalar::<f32>();
        assert!(after < 0.5 * first, "{fuser:?}: loss {first} → {after} (last step {last})");
        // and the task part alone is learned: all 8 training posts classified correctly
        let Prediction::Classes(p) = model.predict(&b) else { unreachable!() };
        let correct = p.iter().enumerate().filter(|(i, row)| (row[1] > row[0]) == (i % 2 == 1)).count();
        assert_eq!(correct, 8, "{fuser:?}: {correct}/8 training posts right, loss {first} → {after}");
        eprintln!("{fuser:?}: loss {first:.4} → {after:.4}");
    }
}

#[test]
fn the_ocr_stream_and_lexicon_biases_are_read_and_trained() {
    let _guard = serial();
    let device = Device::flex().autodiff();
    device.seed(17);
    let mut c = config(Fuser::CrossAttention, Pooling::Mean, 3);
    c.cross = c.cross.clone().with_ocr(true);
    let model = c.init(&device);
    let mut hb = host_batch(4, 3);
    let lo = 5;
    hb.ocr = Some(((0..4 * lo).map(|k| (k * 3 % 19 + 1) as i64).collect(), (0..4 * lo).map(|k| k % lo < 2 + k / lo % 3).collect(), lo));
    hb.lexicon = Some((0..4 * 6).map(|k| if k % 4 == 1 { 0.8 } else { 0.0 }).collect());
    let b = hb.to_device(&device);
    let grads = GradientsParams::from_grads(model.loss(&b).backward(), &model);
    let chk = GradReport::of(&model, &grads);
    assert!(chk.missing.is_empty() && chk.zero.is_empty(), "no gradient for {:?} {:?}", chk.missing, chk.zero);
    let probs = |hb: &HostBatch| match model.predict(&hb.to_device(&device)) {
        Prediction::Classes(p) => p,
        other => panic!("{other:?}"),
    };
    let base = probs(&hb);
    // other OCR tokens, and no lexicon weights, each change the prediction
    let mut other = hb.clone();
    other.ocr.as_mut().unwrap().0.iter_mut().for_each(|x| *x = (*x + 5) % 19 + 1);
    assert_ne!(probs(&other), base, "the OCR tokens are not read");
    let mut plain = hb.clone();
    plain.lexicon = None;
    assert_ne!(probs(&plain), base, "the lexicon weights are not read");
    // a batch without OCR tokens is refused with a message, not a silent zero stream
    let mut none = hb.clone();
    none.ocr = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.predict(&none.to_device(&device))));
    assert!(r.is_err());
}
