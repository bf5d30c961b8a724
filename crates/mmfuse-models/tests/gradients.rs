//! Every trainable parameter of every model variant receives a (non-zero) gradient from the
//! training loss: a parameter that silently gets none is a wiring bug (a branch that is never
//! used, a detached tensor).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use mmfuse_models::batch::HostBatch;
use mmfuse_models::encoders::{ImageCnnConfig, TextTransformerConfig};
use mmfuse_models::fusion::muse::{CrossTransformerConfig, MuseConfig};
use mmfuse_models::fusion::{ConcatFusionConfig, Modality};
use mmfuse_models::task::{TaskKind, TaskModel};

struct Check<'a> {
    grads: &'a GradientsParams,
    path: Vec<String>,
    missing: Vec<String>,
    zero: Vec<String>,
    total: usize,
}

impl ModuleVisitor for Check<'_> {
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
        self.total += 1;
        match self.grads.get::<D>(p.id) {
            None => self.missing.push(self.path.join(".")),
            Some(g) => {
                let s: f32 = g.abs().sum().into_scalar::<f32>();
                if !(s > 0.0) {
                    self.zero.push(self.path.join("."));
                }
            }
        }
    }
}

fn batch(task: TaskKind, device: &Device) -> mmfuse_models::Batch {
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
    hb.to_device(device)
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let device = Device::flex().autodiff();
    device.seed(3);
    for task in [TaskKind::Classify { n_classes: 3 }, TaskKind::Tag { n_tags: 9 }] {
        for (modality, crf) in [(Modality::Text, false), (Modality::Image, false), (Modality::Fused, false), (Modality::Fused, true), (Modality::Image, true)] {
            let text = TextTransformerConfig::new(20).with_d_model(16).with_n_heads(2).with_n_layers(1).with_d_ff(32).with_max_len(8).with_dropout(0.0);
            let image = ImageCnnConfig::new().with_channels(vec![4, 8]).with_d_model(16);
            let model = ConcatFusionConfig::new(modality, task, text, image).with_d_hidden(16).with_crf(crf).init(&device);
            let b = batch(task, &device);
            let grads = GradientsParams::from_grads(model.loss(&b).backward(), &model);
            let mut c = Check { grads: &grads, path: vec![], missing: vec![], zero: vec![], total: 0 };
            model.visit(&mut c);
            assert!(c.total > 4, "{task:?}/{modality:?}: too few parameters visited ({})", c.total);
            assert!(c.missing.is_empty(), "{task:?}/{modality:?}: no gradient for {:?}", c.missing);
            assert!(c.zero.is_empty(), "{task:?}/{modality:?}: all-zero gradient for {:?}", c.zero);
        }
        // MuSE: encoders → CrossTransformer (exchange in layers 0..=1) → head (+ CRF)
        let text = TextTransformerConfig::new(20).with_d_model(16).with_n_heads(2).with_n_layers(1).with_d_ff(32).with_max_len(8).with_dropout(0.0);
        let image = ImageCnnConfig::new().with_channels(vec![4, 8]).with_d_model(16);
        let cross = CrossTransformerConfig::new(16)
            .with_n_heads(2)
            .with_d_ff(32)
            .with_n_layers(2)
            .with_dropout(0.0)
            .with_exchange_ratio(0.5)
            .with_exchange_start_layer(0)
            .with_exchange_end_layer(1);
        let model = MuseConfig::new(task, text, image, cross).init(&device);
        let b = batch(task, &device);
        let grads = GradientsParams::from_grads(model.loss(&b).backward(), &model);
        let mut c = Check { grads: &grads, path: vec![], missing: vec![], zero: vec![], total: 0 };
        model.visit(&mut c);
        assert!(c.missing.is_empty() && c.zero.is_empty(), "MuSE {task:?}: no gradient for {:?}, zero for {:?}", c.missing, c.zero);
    }
}
