//! Optimisation: AdamW with parameter groups, linear warm-up then linear decay, and clipping by
//! the global gradient norm.
//!
//! Groups (as in BERT fine-tuning and the MuSE/CLFA reference code):
//! - no weight decay on biases and normalisation parameters (paths ending in `bias`, `gamma`,
//!   `beta`);
//! - a separate peak learning rate for the task head (paths under `head`).
//!
//! burn's own gradient clipping works per parameter tensor; the papers clip by the norm over
//! all parameters together (`torch.nn.utils.clip_grad_norm_`), which [`clip_global_norm`] does.

use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamGroup};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

/// Regex of the parameters that get no weight decay.
pub const NO_DECAY: &str = r"(^|\.)(bias|gamma|beta)$";
/// Regex of the task-head parameters (own learning rate): the output layer and the CRF, at the
/// model's root or under the variant of a model enum (`Concat.head.…`, `Muse.crf.…`).
pub const HEAD: &str = r"^([A-Z]\w*\.)?(head|crf)\.";

/// Linear warm-up from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`
/// (HF `get_linear_schedule_with_warmup`). The value at step `s` (0-based) is the rate used by
/// the `s`-th optimiser step.
#[derive(Clone, Debug)]
pub struct WarmupLinear {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    step: usize,
}

impl WarmupLinear {
    pub fn new(peak: f64, warmup: usize, total: usize) -> Self {
        Self { peak, warmup, total: total.max(1), step: 0 }
    }

    /// The rate at step `s`.
    pub fn at(&self, s: usize) -> f64 {
        if s < self.warmup {
            self.peak * s as f64 / self.warmup.max(1) as f64
        } else {
            let rest = self.total.saturating_sub(self.warmup).max(1) as f64;
            self.peak * (self.total.saturating_sub(s) as f64 / rest).max(0.0)
        }
    }
}

impl LrScheduler for WarmupLinear {
    fn step(&mut self) -> f64 {
        let lr = self.at(self.step);
        self.step += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::default()
    }

    fn load_record(&mut self, _record: LrSchedulerRecord) {}
}

/// Learning rates of the two groups, stepped once per optimiser step.
pub struct Schedule {
    inner: ModuleLrScheduler,
    pub base: WarmupLinear,
    pub head: WarmupLinear,
}

impl Schedule {
    pub fn new(lr: f64, head_lr: f64, warmup: usize, total: usize) -> Self {
        let base = WarmupLinear::new(lr, warmup, total);
        let head = WarmupLinear::new(head_lr, warmup, total);
        let inner = ModuleLrScheduler::new(base.clone()).with_group(ParamGroup::from_regex(HEAD).expect("valid regex"), head.clone());
        Self { inner, base, head }
    }

    /// Advance one step; the rates for this step.
    pub fn step(&mut self) -> ModuleLearningRate {
        self.inner.step()
    }

    /// Fast-forward `n` steps (resume).
    pub fn skip(&mut self, n: usize) {
        for _ in 0..n {
            self.inner.step();
        }
    }
}

/// Replace the state of `optim` by a checkpoint's serialised one (`what` names it in errors).
pub fn restore_optimizer(optim: &mut ModuleOptimizer, bytes: burn::tensor::Bytes, what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    // `from_bytes` takes the optimiser by value: a placeholder stands in meanwhile
    let current = std::mem::replace(optim, adamw(0.0, 1e-8));
    *optim = current.from_bytes(bytes).with_context(|| format!("cannot restore the {what} state"))?;
    Ok(())
}

/// AdamW with the no-decay group.
pub fn adamw(weight_decay: f64, eps: f64) -> ModuleOptimizer {
    let decay = AdamWConfig::new().with_weight_decay(weight_decay as f32).with_epsilon(eps as f32);
    let no_decay = AdamWConfig::new().with_weight_decay(0.0).with_epsilon(eps as f32);
    decay.init().with_group(ParamGroup::from_regex(NO_DECAY).expect("valid regex"), no_decay.build(), None)
}

struct SquaredNorms<'a> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorms<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.parts.push(g.square().sum());
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register::<D>(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// The L2 norm of all gradients together.
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = SquaredNorms { grads, parts: Vec::new() };
    module.visit(&mut v);
    if v.parts.is_empty() {
        return 0.0;
    }
    let total: f32 = Tensor::cat(v.parts, 0).sum().into_scalar::<f32>();
    (total as f64).sqrt()
}

/// Scale all gradients so that their global norm is at most `max_norm`
/// (`torch.nn.utils.clip_grad_norm_`: factor `max_norm / (norm + 1e-6)` when above). Returns
/// the norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_grad_norm(module, grads);
    if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        module.visit(&mut Scale { grads, factor });
    }
    norm
}

/// A parameter path as users write it: the module enum variants (`Concat`, `Muse`, `Bert`,
/// `ResNet`, …, the capitalised segments) left out, e.g. `image.resnet.stages.0.0.convs.0.conv.weight`.
pub fn user_path(path: &str) -> String {
    path.split('.').filter(|s| !s.starts_with(|c: char| c.is_ascii_uppercase())).collect::<Vec<_>>().join(".")
}

/// Freeze (no gradient, so no update) every float parameter whose [`user_path`] starts with
/// one of `prefixes` (whole segments: `image.resnet.stem` matches `image.resnet.stem.conv.weight`,
/// not `image.resnet.stems`). Returns the module and the number of frozen parameter values;
/// a prefix that matches nothing is an error naming it.
pub fn freeze<M: Module>(module: M, prefixes: &[String]) -> Result<(M, usize), String> {
    struct Freezer<'a> {
        stack: Vec<String>,
        prefixes: &'a [String],
        hits: Vec<usize>,
        frozen: usize,
    }
    impl ModuleMapper for Freezer<'_> {
        fn enter_module(&mut self, name: &str, _t: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _t: &str) {
            self.stack.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let path = user_path(&self.stack.join("."));
            let mut hit = false;
            for (i, p) in self.prefixes.iter().enumerate() {
                if path == *p || path.starts_with(&format!("{p}.")) {
                    self.hits[i] += 1;
                    hit = true;
                }
            }
            if hit {
                self.frozen += param.val().shape().num_elements();
                param.set_require_grad(false)
            } else {
                param
            }
        }
    }
    if prefixes.is_empty() {
        return Ok((module, 0));
    }
    let mut f = Freezer { stack: vec![], prefixes, hits: vec![0; prefixes.len()], frozen: 0 };
    let module = module.map(&mut f);
    if let Some(i) = f.hits.iter().position(|&h| h == 0) {
        return Err(format!("train.freeze: '{}' matches no parameter", prefixes[i]));
    }
    Ok((module, f.frozen))
}

/// Put every batch-norm layer of `module` in evaluation mode (normalise with, and keep, the
/// running statistics) or back in training mode; returns the number of layers switched.
pub fn set_batch_norm_training<M: Module>(module: M, training: bool) -> (M, usize) {
    struct Flags {
        training: bool,
        n: usize,
    }
    impl ModuleMapper for Flags {
        fn map_flag(&mut self, flag: Param<burn::module::Flag>) -> Param<burn::module::Flag> {
            self.n += 1;
            flag.with_value(self.training)
        }
    }
    let mut f = Flags { training, n: 0 };
    let module = module.map(&mut f);
    (module, f.n)
}

/// Names (paths) of all float parameters of a module, in visiting order.
pub fn param_paths<M: Module>(module: &M) -> Vec<(String, usize)> {
    struct Paths {
        stack: Vec<String>,
        out: Vec<(String, usize)>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _t: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _t: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.push((self.stack.join("."), param.val().shape().num_elements()));
        }
    }
    let mut p = Paths { stack: vec![], out: vec![] };
    module.visit(&mut p);
    p.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct Toy {
        body: Linear,
        norm: LayerNorm,
        head: Linear,
    }

    fn toy(device: &Device) -> Toy {
        Toy { body: LinearConfig::new(3, 4).init(device), norm: LayerNormConfig::new(4).init(device), head: LinearConfig::new(4, 2).init(device) }
    }

    #[test]
    fn warmup_then_linear_decay() {
        let s = WarmupLinear::new(1.0, 10, 110);
        assert_eq!(s.at(0), 0.0);
        assert!((s.at(5) - 0.5).abs() < 1e-12);
        assert!((s.at(10) - 1.0).abs() < 1e-12);
        assert!((s.at(60) - 0.5).abs() < 1e-12);
        assert_eq!(s.at(110), 0.0);
        assert_eq!(s.at(500), 0.0);
    }

    #[test]
    fn groups_match_the_intended_paths() {
        let device = Device::flex();
        let m = toy(&device);
        let paths: Vec<String> = param_paths(&m).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["body.weight", "body.bias", "norm.gamma", "norm.beta", "head.weight", "head.bias"]);
        let no_decay = regex_lite(NO_DECAY);
        let head = regex_lite(HEAD);
        let nd: Vec<&String> = paths.iter().filter(|p| no_decay(p)).collect();
        assert_eq!(nd, ["body.bias", "norm.gamma", "norm.beta", "head.bias"]);
        let h: Vec<&String> = paths.iter().filter(|p| head(p)).collect();
        assert_eq!(h, ["head.weight", "head.bias"]);
    }

    #[test]
    fn head_group_covers_head_and_crf_of_every_fusion_model() {
        use mmfuse_models::encoders::{ImageCnnConfig, TextTransformerConfig};
        use mmfuse_models::fusion::muse::{CrossTransformerConfig, MuseConfig};
        use mmfuse_models::fusion::{ConcatFusionConfig, FusionModel, Modality};
        use mmfuse_models::task::TaskKind;
        let device = Device::flex();
        let task = TaskKind::Tag { n_tags: 5 };
        let text = TextTransformerConfig::new(10).with_d_model(8).with_n_heads(2).with_n_layers(1).with_d_ff(8).with_max_len(4);
        let image = ImageCnnConfig::new().with_channels(vec![4]).with_d_model(8);
        let models = [
            FusionModel::Concat(ConcatFusionConfig::new(Modality::Fused, task, text.clone().into(), image.clone().into()).with_crf(true).init(&device)),
            FusionModel::Muse(MuseConfig::new(task, text.into(), image.into(), CrossTransformerConfig::new(8).with_n_heads(2).with_n_layers(2)).init(&device)),
        ];
        let head = regex_lite(HEAD);
        for m in &models {
            let paths: Vec<String> = param_paths(m).into_iter().map(|(p, _)| p).collect();
            let h: Vec<&str> = paths.iter().filter(|p| head(p)).map(|p| p.split('.').nth(1).unwrap()).collect();
            let expected = paths.iter().filter(|p| p.contains(".head.") || p.contains(".crf.")).count();
            assert!(h.len() == expected && h.len() >= 4, "{paths:?}");
            assert!(h.iter().all(|s| *s == "head" || *s == "crf"), "{h:?}");
            assert!(h.contains(&"crf"), "{paths:?}");
        }
    }

    fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
        let g = ParamGroup::from_regex(pattern).unwrap();
        move |p: &str| g.matches(&burn::module::ParamId::new(), Some(p))
    }

    #[test]
    fn global_norm_clipping_matches_torch_semantics() {
        let device = Device::flex().autodiff();
        let m = toy(&device);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0, 3.0, 0.5, 0.5, 0.5], [2, 3]), &device);
        let loss = m.head.forward(m.norm.forward(m.body.forward(x))).square().sum().mul_scalar(10.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &m);
        let before = global_grad_norm(&m, &grads);
        // independent computation: sum over each gradient tensor of squares
        let mut manual = 0.0f64;
        for id in [m.body.weight.id, m.head.weight.id] {
            let g = grads.get::<2>(id).unwrap().into_data().try_to_vec::<f32>().unwrap();
            manual += g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
        }
        for id in [m.body.bias.as_ref().unwrap().id, m.head.bias.as_ref().unwrap().id, m.norm.gamma.id, m.norm.beta.as_ref().unwrap().id] {
            let g = grads.get::<1>(id).unwrap().into_data().try_to_vec::<f32>().unwrap();
            manual += g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
        }
        assert!((before - manual.sqrt()).abs() < 1e-3 * manual.sqrt(), "{before} vs {}", manual.sqrt());
        assert!(before > 1.0, "the test needs a norm above the limit, got {before}");
        let returned = clip_global_norm(&m, &mut grads, 1.0);
        assert_eq!(returned, before);
        let after = global_grad_norm(&m, &grads);
        assert!((after - 1.0).abs() < 1e-4, "{after}");
        // below the limit nothing changes
        let again = clip_global_norm(&m, &mut grads, 10.0);
        assert!((global_grad_norm(&m, &grads) - again).abs() < 1e-9);
    }
}
