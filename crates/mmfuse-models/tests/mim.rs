//! MIM on tiny sizes: every trainable parameter gets a gradient from the two losses, the UPN
//! step's gradient reaches only what it should, the ablations build what they say, and the
//! gates drop a step whose features are pure noise once trained on the purification loss.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use mmfuse_models::batch::AlignedHostBatch;
use mmfuse_models::fusion::mim::{HardConcreteConfig, Mim, MimConfig, MimFusion};
mod common;
use common::{GradReport, MIM_A as A, MIM_L as L, MIM_V as V, aligned_batch, serial, tiny_mim};

fn config(fusion: MimFusion) -> MimConfig {
    tiny_mim(fusion)
}

/// `b` segments: lengths vary (some padding), labels in [−3, 3].
fn host_batch(b: usize) -> AlignedHostBatch {
    let mut hb = aligned_batch(b, L, A, V);
    // all above the initial predictions: an L1 loss over labels on both sides of the
    // predictions in equal numbers gives a head's bias a gradient of exactly 0 (Σ ±1/B), which
    // only a summation order's rounding could make non-zero
    hb.labels = Some((0..b).map(|i| 1.5 + 0.25 * i as f32).collect());
    hb
}

#[test]
fn every_trainable_parameter_gets_a_gradient_for_each_fusion() {
    let _guard = serial();
    let device = Device::flex().autodiff();
    for (k, fusion) in [MimFusion::Multiply, MimFusion::Add, MimFusion::Concat].into_iter().enumerate() {
        device.seed(10 + k as u64);
        let model: Mim = config(fusion).init(&device);
        let b = host_batch(6).to_device(&device);
        let l = model.losses(&b);
        assert!(l.teacher.is_some(), "guidance on: a teacher modality is chosen");
        let loss = l.main + l.upn.expect("UPN on");
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let c = GradReport::of(&model, &grads);
        assert!(c.total > 30, "{fusion:?}: only {} parameters visited", c.total);
        assert!(c.bad().is_empty(), "{fusion:?}: no or zero gradient for {:?}", c.bad());
    }
}

#[test]
fn the_upn_step_updates_only_the_purification_networks() {
    let _guard = serial();
    let device = Device::flex().autodiff();
    device.seed(4);
    let model: Mim = config(MimFusion::Multiply).init(&device);
    let b = host_batch(6).to_device(&device);
    let mut g = model.losses(&b).upn.unwrap().backward();
    let upn = model.upn.as_ref().unwrap();
    let grads = GradientsParams::from_module(&mut g, upn);
    let before_head = model.head_audio.weight.val().into_data();
    let before_enc = model.audio.conv.weight.val().into_data();
    let before_upn = upn.audio.time_out.weight.val().into_data();
    let mut optim = AdamConfig::new().init();
    let model = optim.step(1e-2, model, grads);
    assert_eq!(model.head_audio.weight.val().into_data(), before_head, "a head moved in the UPN step");
    assert_eq!(model.audio.conv.weight.val().into_data(), before_enc, "an encoder moved in the UPN step");
    assert_ne!(model.upn.as_ref().unwrap().audio.time_out.weight.val().into_data(), before_upn, "the UPN did not move");
}

#[test]
fn ablations_build_what_they_say_and_predict_deterministically() {
    let _guard = serial();
    let device = Device::flex();
    device.seed(5);
    let b = host_batch(5).to_device(&device);
    let no_upn: Mim = config(MimFusion::Multiply).with_purification(false).init(&device);
    assert!(no_upn.upn.is_none());
    let l = no_upn.losses(&b);
    assert!(l.upn.is_none() && l.teacher.is_none(), "no UPN: no step 1, no guidance between purified vectors");
    let f = no_upn.forward(&b, false);
    assert!(f.masks.is_none());
    // a gate biased to keep every step whatever the noise: purified = unpurified, so the loss is
    // deterministic and checkable
    let mut c = config(MimFusion::Multiply).with_guidance(false);
    c.gate = HardConcreteConfig::new().with_bias(100.0);
    let no_kgs: Mim = c.init(&device);
    let l = no_kgs.losses(&b);
    assert!(l.upn.is_some() && l.teacher.is_none());
    // without guidance the main loss is exactly Σ_m L^u_m + L1(ŷ, y)
    let f = no_kgs.forward(&b, false);
    let y = b.labels.clone().unwrap();
    let l1 = |p: Tensor<1>| (p - y.clone()).abs().mean().into_scalar::<f32>();
    let expected = l1(f.y.clone()) + f.y_unpurified.iter().map(|p| l1(p.clone())).sum::<f32>();
    let got = l.main.into_scalar::<f32>();
    assert!((got - expected).abs() < 1e-5, "main loss {got} vs Σ L^u + L1 = {expected}");
    assert!((l.task - l1(f.y) as f64).abs() < 1e-5);
    // evaluation is deterministic: the same batch gives the same predictions
    let full: Mim = config(MimFusion::Multiply).init(&device);
    assert_eq!(full.predict(&b), full.predict(&b));
    let masks = full.keep_masks(&b).unwrap();
    assert_eq!(masks[0].len(), 5);
    assert_eq!(masks[1][0].len(), L - 1);
    // padding steps are never kept
    for (i, row) in masks[1].iter().enumerate() {
        let len = L - i % 3;
        assert!(row[len - 1..].iter().all(|k| !k), "sample {i}: a padding step is kept: {row:?}");
    }
}
