//! Helpers shared by the model test binaries (each includes this file with `mod common;`):
//! the check that every trainable parameter received a gradient, and the lock that serialises
//! tests drawing from burn's process-wide random generator.
#![allow(dead_code)] // not every test binary uses every helper

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

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
        let mut v = Visitor { grads, path: vec![], report: GradReport::default() };
        module.visit(&mut v);
        v.report
    }

    /// Missing and zero together.
    pub fn bad(&self) -> Vec<String> {
        self.missing.iter().chain(&self.zero).cloned().collect()
    }
}

struct Visitor<'a> {
    grads: &'a GradientsParams,
    path: Vec<String>,
    report: GradReport,
}

impl ModuleVisitor for Visitor<'_> {
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
        self.report.total += 1;
        match self.grads.get::<D>(p.id) {
            None => self.report.missing.push(self.path.join(".")),
            Some(g) => {
                let s: f32 = g.abs().sum().into_scalar::<f32>();
                if !(s.is_finite() && s > 0.0) {
                    self.report.zero.push(self.path.join("."));
                }
            }
        }
    }
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// burn's seed is process-wide: tests that seed and then draw hold this lock, so each sees the
/// same random weights whatever the test order.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
