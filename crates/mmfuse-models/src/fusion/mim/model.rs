//! The MIM model: three unimodal encoders, a purification network (UPN) per modality, one
//! regression head per modality shared by its unpurified and purified vectors, a fusion head, and
//! the two losses of MIM's two-step optimisation (see `shared/METHODS.md` §3):
//!
//! 1. [`MimLosses::upn`] — the UPN parameters only: `penalty_weight·L0 + Σ_m L^p_m`;
//! 2. [`MimLosses::main`] — all parameters, from a fresh forward after step 1:
//!    `Σ_m L^u_m + L_inter + L_intra + L1(ŷ, y)`.
//!
//! `purification = false` removes the UPN (the fusion reads the unpurified vectors) and
//! `guidance = false` removes KGS (no intra/inter terms): the ablations of the paper.
//!
//! An absent audio or video (see [`AlignedBatch::present`]): the modality has no real step, so
//! its encoder attends to nothing, its gates are closed (keep mask 0 everywhere) and its pooled
//! vectors are zero; the fusion falls back to the present modalities (`multiply`: the absent
//! vector is replaced by ones, the identity of `⊙`; `add` / `concat`: it stays zero); its own
//! losses skip the segment, and it neither teaches nor learns from the others in KGS.
//!
//! Paper: MIM, Multimodal Information Modulation (Zeng, Mai, Yan & Hu, IEEE TMM 2023, doi:10.1109/tmm.2023.3293335);
//! shared/METHODS.md §3 "Heads" and "KGS" (two optimiser steps per batch); no section or equation numbers in our
//! sources.

use super::encoders::{SequenceEncoder, SequenceEncoderConfig, TextBranch, TextBranchConfig};
use super::gate::HardConcreteConfig;
use super::guidance::{inter_modal, intra_modal};
use super::purification::{Purification, PurificationConfig};
use crate::batch::AlignedBatch;
use crate::encoders::TextEncoderConfig;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::{relu, tanh};
use burn::tensor::{Bool, Device, Tensor};
use mmfuse_kernels::{Linear, LinearConfig};
use serde::{Deserialize, Serialize};

/// How the three (purified) vectors are fused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MimFusion {
    /// `l ⊙ a ⊙ v` (the paper's default).
    Multiply,
    /// `l + a + v`.
    Add,
    /// `[l; a; v]`.
    Concat,
}

/// Configuration of [`Mim`] (paper values as defaults).
#[derive(Config, Debug)]
pub struct MimConfig {
    pub text: TextEncoderConfig,
    /// Acoustic feature size (74 for COVAREP).
    pub audio_dim: usize,
    /// Visual feature size (47 for MOSI's FACET, 35 for MOSEI's).
    pub video_dim: usize,
    /// Fixed batch length `L` including `[CLS]`; the gates see `L − 1` steps.
    pub max_len: usize,
    /// Hidden size d of every branch.
    #[config(default = 80)]
    pub d_model: usize,
    #[config(default = 5)]
    pub n_heads: usize,
    #[config(default = 320)]
    pub d_ff: usize,
    /// Transformer layers of the audio and video encoders.
    #[config(default = 3)]
    pub n_layers: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    /// BiLSTM hidden size per direction in the UPN.
    #[config(default = 40)]
    pub lstm_hidden: usize,
    pub gate: HardConcreteConfig,
    #[config(default = "MimFusion::Multiply")]
    pub fusion: MimFusion,
    /// Weight of the L0 penalty in the UPN step.
    #[config(default = 0.1)]
    pub penalty_weight: f64,
    /// The 10 in the inter-modal weight `0.5·(10·α)²`.
    #[config(default = 10.0)]
    pub kd_scale: f64,
    /// Unimodal purification (UPN) on.
    #[config(default = true)]
    pub purification: bool,
    /// Knowledge guidance (KGS) on.
    #[config(default = true)]
    pub guidance: bool,
}

/// Loss settings (not trained).
#[derive(Clone, Copy, Debug)]
pub struct MimSettings {
    pub fusion: MimFusion,
    pub penalty_weight: f64,
    pub kd_scale: f64,
    pub guidance: bool,
}

/// The three UPNs (the parameters of the first optimisation step).
#[derive(Module, Debug)]
pub struct Purifiers {
    pub text: Purification,
    pub audio: Purification,
    pub video: Purification,
}

#[derive(Module, Debug)]
pub struct Mim {
    pub text: TextBranch,
    pub audio: SequenceEncoder,
    pub video: SequenceEncoder,
    pub upn: Option<Purifiers>,
    /// One Linear(d → 1) per modality: text, audio, video.
    pub head_text: Linear,
    pub head_audio: Linear,
    pub head_video: Linear,
    pub fusion_hidden: Linear,
    pub fusion_out: Linear,
    #[module(skip)]
    pub settings: MimSettings,
}

impl MimConfig {
    pub fn init(&self, device: &Device) -> Mim {
        assert!(self.max_len >= 2, "MIM: max_len must leave at least one step after [CLS], got {}", self.max_len);
        let d = self.d_model;
        let steps = self.max_len - 1;
        let seq = |d_input| {
            SequenceEncoderConfig::new(d_input, steps)
                .with_d_model(d)
                .with_n_heads(self.n_heads)
                .with_d_ff(self.d_ff)
                .with_n_layers(self.n_layers)
                .with_dropout(self.dropout)
                .init(device)
        };
        let upn = PurificationConfig::new(d, steps, self.gate).with_lstm_hidden(self.lstm_hidden);
        let fused = if self.fusion == MimFusion::Concat { 3 * d } else { d };
        Mim {
            text: TextBranchConfig::new(self.text.clone()).with_d_model(d).init(device),
            audio: seq(self.audio_dim),
            video: seq(self.video_dim),
            upn: self.purification.then(|| Purifiers { text: upn.init(device), audio: upn.init(device), video: upn.init(device) }),
            head_text: LinearConfig::new(d, 1).init(device),
            head_audio: LinearConfig::new(d, 1).init(device),
            head_video: LinearConfig::new(d, 1).init(device),
            fusion_hidden: LinearConfig::new(fused, d).init(device),
            fusion_out: LinearConfig::new(d, 1).init(device),
            settings: MimSettings { fusion: self.fusion, penalty_weight: self.penalty_weight, kd_scale: self.kd_scale, guidance: self.guidance },
        }
    }
}

/// Keep masks `[B][T]` of the text, audio and video gates.
pub type KeepMasks = [Vec<Vec<bool>>; 3];

/// Everything one forward computes. Index 0, 1, 2 = text, audio, video.
#[derive(Clone, Debug)]
pub struct MimForward {
    /// Unpurified vectors `[B, d]`.
    pub unpurified: [Tensor<2>; 3],
    /// Purified vectors `[B, d]` (the unpurified ones without UPN).
    pub purified: [Tensor<2>; 3],
    /// Per-modality predictions from the unpurified / purified vectors `[B]`.
    pub y_unpurified: [Tensor<1>; 3],
    pub y_purified: [Tensor<1>; 3],
    /// The fused prediction `[B]`.
    pub y: Tensor<1>,
    /// Keep masks `[B, T]` per modality (None without UPN).
    pub masks: Option<[Tensor<2>; 3]>,
    /// Mean L0 penalty over modalities (0 without UPN).
    pub penalty: Tensor<1>,
    /// Per modality (text, audio, video), 1.0 / 0.0 per segment whether it is there `[B]`;
    /// `None`: all are.
    pub present: Option<[Tensor<1>; 3]>,
}

/// The losses of one batch, with host copies of the parts for logging.
#[derive(Clone, Debug)]
pub struct MimLosses {
    /// Step 1 (UPN parameters): `penalty_weight·L0 + Σ_m L^p_m`; None without UPN.
    pub upn: Option<Tensor<1>>,
    /// Step 2 (all parameters): `Σ_m L^u_m + L_inter + L_intra + L1(ŷ, y)`.
    pub main: Tensor<1>,
    /// L1 of the fused prediction.
    pub task: f64,
    /// Which modality taught the others (0 text, 1 audio, 2 video).
    pub teacher: Option<usize>,
}

fn l1(y: Tensor<1>, target: Tensor<1>) -> Tensor<1> {
    (y - target).abs().mean()
}

/// L1 over the segments that have the modality (`present` `[B]` of 1.0 / 0.0; `None`: all).
fn l1_present(y: Tensor<1>, target: Tensor<1>, present: Option<&Tensor<1>>) -> Tensor<1> {
    match present {
        None => l1(y, target),
        Some(p) => ((y - target).abs() * p.clone()).sum() / p.clone().sum().clamp_min(1.0),
    }
}

/// `x` `[B, d]` with the rows of absent segments replaced by ones (the identity of `⊙`).
fn ones_where_absent(x: Tensor<2>, present: &Tensor<1>) -> Tensor<2> {
    let [b, d] = x.dims();
    let p = present.clone().reshape([b, 1]).expand([b, d]);
    x * p.clone() + p.neg().add_scalar(1.0)
}

/// Mean over the real steps of `relu(x)` `[B, T, d]` → `[B, d]`.
fn pool(x: Tensor<3>, realf: Tensor<2>, count: Tensor<2>) -> Tensor<2> {
    (relu(x) * realf.unsqueeze_dim::<3>(2)).sum_dim(1).squeeze_dim::<2>(1) / count
}

fn steps_mask(mask: Tensor<2, Bool>) -> Tensor<2, Bool> {
    let [b, l] = mask.dims();
    mask.slice([0..b, 1..l])
}

impl Mim {
    /// One forward pass; `training` samples the gate noise (and dropout runs on an autodiff
    /// device).
    pub fn forward(&self, batch: &AlignedBatch, training: bool) -> MimForward {
        let real = steps_mask(batch.mask.clone());
        let [b, l, da] = batch.audio.dims();
        let dv = batch.video.dims()[2];
        // per modality, its real steps: an absent audio or video has none
        let present = batch.present.as_ref().map(|p| [Tensor::<1>::ones([b], &p.audio.device()), p.audio.clone(), p.video.clone()]);
        let real_m: [Tensor<2, Bool>; 3] = match &present {
            None => [real.clone(), real.clone(), real.clone()],
            Some(p) => {
                let t = l - 1;
                let with = |p: &Tensor<1>| real.clone().bool_and(p.clone().greater_elem(0.5).reshape([b, 1]).expand([b, t]));
                [real.clone(), with(&p[1]), with(&p[2])]
            }
        };
        let xs = [
            self.text.forward(batch.ids.clone(), batch.mask.clone()),
            self.audio.forward(batch.audio.clone().slice([0..b, 1..l, 0..da]), real_m[1].clone()),
            self.video.forward(batch.video.clone().slice([0..b, 1..l, 0..dv]), real_m[2].clone()),
        ];
        let realf_m: [Tensor<2>; 3] = match &present {
            None => {
                let f = real.clone().float();
                [f.clone(), f.clone(), f]
            }
            Some(_) => real_m.clone().map(|r| r.float()),
        };
        let count_m = realf_m.clone().map(|f| f.sum_dim(1).clamp_min(1.0)); // [B, 1] each
        let unpurified = [0, 1, 2].map(|m| pool(xs[m].clone(), realf_m[m].clone(), count_m[m].clone()));
        let (purified, masks, penalty) = match &self.upn {
            Some(upn) => {
                let units = [&upn.text, &upn.audio, &upn.video];
                let mut masks = Vec::with_capacity(3);
                let mut penalty = Tensor::<1>::zeros([1], &real.device());
                let mut purified = Vec::with_capacity(3);
                for (m, (x, u)) in xs.iter().zip(units).enumerate() {
                    let p = u.forward(x.clone(), real_m[m].clone(), training);
                    penalty = penalty + u.penalty(p.logits.clone(), real_m[m].clone());
                    purified.push(pool(x.clone() * p.mask.clone().unsqueeze_dim::<3>(2), realf_m[m].clone(), count_m[m].clone()));
                    masks.push(p.mask);
                }
                let to3 = |v: Vec<Tensor<2>>| -> [Tensor<2>; 3] { v.try_into().expect("three modalities") };
                (to3(purified), Some(to3(masks)), penalty.div_scalar(3.0))
            }
            None => (unpurified.clone(), None, Tensor::zeros([1], &real.device())),
        };
        let heads = [&self.head_text, &self.head_audio, &self.head_video];
        let predict = |v: &[Tensor<2>; 3]| -> [Tensor<1>; 3] { [0, 1, 2].map(|m| heads[m].forward(v[m].clone()).reshape([b])) };
        let y_unpurified = predict(&unpurified);
        let y_purified = predict(&purified);
        let [t, a, v] = purified.clone();
        let fused = match (self.settings.fusion, &present) {
            (MimFusion::Multiply, None) => t * a * v,
            (MimFusion::Multiply, Some(p)) => t * ones_where_absent(a, &p[1]) * ones_where_absent(v, &p[2]),
            (MimFusion::Add, _) => t + a + v,
            (MimFusion::Concat, _) => Tensor::cat(vec![t, a, v], 1),
        };
        let y = self.fusion_out.forward(tanh(self.fusion_hidden.forward(fused))).reshape([b]);
        MimForward { unpurified, purified, y_unpurified, y_purified, y, masks, penalty, present }
    }

    /// Predicted sentiment per sample (deterministic gates unless `stochastic_eval`).
    pub fn predict(&self, batch: &AlignedBatch) -> Vec<f32> {
        self.predict_with_masks(batch).0
    }

    /// Predictions and, with a UPN, the keep masks `[B][T]` per modality, from one forward.
    pub fn predict_with_masks(&self, batch: &AlignedBatch) -> (Vec<f32>, Option<KeepMasks>) {
        let f = self.forward(batch, false);
        let y = f.y.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 predictions");
        let masks = f.masks.map(|ms| {
            ms.map(|m| {
                let [b, t] = m.dims();
                let v = m.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 mask");
                (0..b).map(|i| v[i * t..(i + 1) * t].iter().map(|x| *x > 0.5).collect()).collect()
            })
        });
        (y, masks)
    }

    /// The two losses of a batch with labels.
    pub fn losses(&self, batch: &AlignedBatch) -> MimLosses {
        let y = batch.labels.clone().expect("MIM losses need labels");
        let f = self.forward(batch, true);
        let pres = |m: usize| f.present.as_ref().map(|p| &p[m]);
        let lu: Vec<Tensor<1>> = f.y_unpurified.iter().enumerate().map(|(m, p)| l1_present(p.clone(), y.clone(), pres(m))).collect();
        let task = l1(f.y.clone(), y.clone());
        let task_v = task.clone().into_scalar::<f32>() as f64;
        let mut main = task + lu[0].clone() + lu[1].clone() + lu[2].clone();
        let mut teacher = None;
        let upn = self.upn.as_ref().map(|_| {
            let lp: Vec<Tensor<1>> = f.y_purified.iter().enumerate().map(|(m, p)| l1_present(p.clone(), y.clone(), pres(m))).collect();
            if self.settings.guidance {
                let lpv: Vec<f64> = lp.iter().map(|t| t.clone().into_scalar::<f32>() as f64).collect();
                let luv: Vec<f64> = lu.iter().map(|t| t.clone().into_scalar::<f32>() as f64).collect();
                for m in 0..3 {
                    main = main.clone() + intra_modal(f.y_purified[m].clone(), f.y_unpurified[m].clone(), lpv[m] < luv[m]);
                }
                let (inter, t) = inter_modal(&f.purified, &lpv, self.settings.kd_scale, f.present.as_ref().map(|p| p.as_slice()));
                main = main.clone() + inter;
                teacher = Some(t);
            }
            self.upn_objective(&f, &lp)
        });
        MimLosses { upn, main, task: task_v, teacher }
    }

    /// The loss of step 1 alone, `penalty_weight·L0 + Σ_m L^p_m`, from its own forward
    /// (`None` without UPN): what the UPN step needs, without the guidance terms and their host
    /// reads that only step 2 uses.
    pub fn upn_loss(&self, batch: &AlignedBatch) -> Option<Tensor<1>> {
        self.upn.as_ref()?;
        let y = batch.labels.clone().expect("MIM losses need labels");
        let f = self.forward(batch, true);
        let lp: Vec<Tensor<1>> = f.y_purified.iter().enumerate().map(|(m, p)| l1_present(p.clone(), y.clone(), f.present.as_ref().map(|p| &p[m]))).collect();
        Some(self.upn_objective(&f, &lp))
    }

    fn upn_objective(&self, f: &MimForward, lp: &[Tensor<1>]) -> Tensor<1> {
        f.penalty.clone().mul_scalar(self.settings.penalty_weight) + lp[0].clone() + lp[1].clone() + lp[2].clone()
    }

    /// Keep masks `[B][T]` per modality at evaluation (None without UPN).
    pub fn keep_masks(&self, batch: &AlignedBatch) -> Option<KeepMasks> {
        self.predict_with_masks(batch).1
    }
}
