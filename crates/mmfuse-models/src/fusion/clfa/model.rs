//! The CLFA model: text encoder + image encoder, per-modality projection MLPs aligned to a frozen
//! CLIP teacher by symmetric InfoNCE, a fuser, and a classification head.
//!
//! Paper: CLFA (CLIP-guided contrastive-learning-based feature alignment, LREC-COLING 2024, arXiv 2403.06355);
//! shared/METHODS.md §2 "Alignment" (`L = α·(L_text + L_image) + β·CE(task)`, α = β = 1) and "Fusion" (cross encoder,
//! pooling, head, the simpler aggregations); no section or equation numbers in our sources.
//!
//! `L = α·(L_text + L_image) + β·CE(task)`, where `L_m = info_nce(f_m, c_m, τ)`,
//! `f_text` = masked mean over tokens of `proj_text(text tokens)`, `f_image` = mean over tokens of
//! `proj_image(image tokens)`, and `c_m` the teacher's (CLIP's) embedding of the same modality
//! (`batch.teacher`, `[B, P]` each, `P = d_proj`). With `α = 0` the projection MLPs are not built
//! and no teacher is needed (the no-alignment ablation).
//!
//! Fusers ([`Fuser`]):
//! - `CrossAttention` (the paper's): [`CrossEncoder`] (text queries, image keys/values), then
//!   [`Pooling`] over the text tokens → head;
//! - `ConcatMean`: `[masked mean text ; mean image]` → head;
//! - `CoAttention`: one [`CrossEncoderLayer`] where text attends to the image and one where the
//!   image attends to the text; their (masked) means concatenated → head.
//!
//! Head: Linear(→d) → ReLU → dropout → Linear(d→classes).
//!
//! An absent modality (see [`Batch::present`]): an absent image's tokens are masked keys, so
//! the text's cross-attention to it adds nothing (`zero_without_keys`: an attention without real
//! keys outputs zero)
//! and the fused vector is the text path's; in `ConcatMean` / `CoAttention` the absent side's
//! mean is zero. A post without its text has no queries for the cross encoder: its fused vector
//! falls back to the mean of its image tokens (the same width d; the head learns both under
//! modality dropout); in `ConcatMean` / `CoAttention` the text mean is zero and the image does
//! not attend to the absent text. Each alignment loss counts the posts that have its modality.

use super::alignment::{info_nce, info_nce_present};
use super::cross_encoder::{CrossEncoder, CrossEncoderConfig, CrossEncoderLayer};
use crate::batch::{Batch, Targets, zero_absent_rows};
use crate::encoders::{ImageEncoder, ImageEncoderConfig, TextEncoder, TextEncoderConfig};
use crate::heads::losses::cross_entropy;
use crate::layers::masked_mean;
use crate::task::{Prediction, TaskKind, TaskModel};
use burn::config::Config;
use burn::module::Module;
use burn::nn::Relu;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};
use mmfuse_kernels::join_streams;
use mmfuse_kernels::{Dropout, DropoutConfig, Linear, LinearConfig};
use serde::{Deserialize, Serialize};

/// How the cross encoder's text tokens are pooled (the `CrossAttention` fuser only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// `tanh` of position 0 (`[CLS]`).
    Cls,
    /// Mean over the real (non-padding) tokens.
    Mean,
    /// Element-wise max over the real tokens.
    Max,
}

/// How text and image tokens are combined before the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fuser {
    /// The paper's cross encoder (text self-attention → text-to-image attention → FFN) ×k.
    CrossAttention,
    /// Concatenated means of the two encoders' tokens.
    ConcatMean,
    /// One text→image and one image→text attention layer, means concatenated.
    CoAttention,
}

/// Configuration of [`Clfa`] (paper values marked "paper:").
#[derive(Config, Debug)]
pub struct ClfaConfig {
    /// Classification only (CLFA has no tagging variant).
    pub task: TaskKind,
    pub text: TextEncoderConfig,
    pub image: ImageEncoderConfig,
    /// The cross encoder; its `d_model` equals both encoders' `d_model` and sets the head width.
    /// Its `n_heads`, `d_ff`, `dropout` also shape the co-attention layers.
    pub cross: CrossEncoderConfig,
    /// P, the teacher's (CLIP's) embedding size, the projection MLPs' output (paper: 512). Default 512.
    #[config(default = 512)]
    pub d_proj: usize,
    /// Hidden size of the projection MLPs; `None`: 2·d_model (paper: 768→1536→512). Default None.
    pub d_proj_hidden: Option<usize>,
    /// τ, InfoNCE temperature (paper: 0.1). Default 0.1.
    #[config(default = 0.1)]
    pub tau: f64,
    /// α, weight of the alignment loss; 0 is the no-alignment ablation (paper: 1.0). Default 1.0.
    #[config(default = 1.0)]
    pub alpha: f64,
    /// β, weight of the task cross-entropy (paper: 1.0). Default 1.0.
    #[config(default = 1.0)]
    pub beta: f64,
    /// Pooling of the cross encoder's text tokens (paper: mean). Default `Pooling::Mean`.
    #[config(default = "Pooling::Mean")]
    pub pooling: Pooling,
    /// Fuser (paper: cross_attention). Default `Fuser::CrossAttention`.
    #[config(default = "Fuser::CrossAttention")]
    pub fuser: Fuser,
    /// Head dropout (paper: 0.1). Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// λ of the lexicon attention biases: a text key whose word has polarity p in the
    /// affective lexicon gets λ·|p| added to its self-attention scores in the cross encoder
    /// (used when batches carry lexicon weights). Default 1.0.
    #[config(default = 1.0)]
    pub lexicon_weight: f64,
}

/// A projection MLP: Linear → ReLU → Linear.
#[derive(Module, Debug)]
pub struct Projection {
    pub hidden: Linear,
    pub act: Relu,
    pub output: Linear,
}

impl Projection {
    pub fn new(d_in: usize, d_hidden: usize, d_out: usize, device: &Device) -> Self {
        Projection { hidden: LinearConfig::new(d_in, d_hidden).init(device), act: Relu::new(), output: LinearConfig::new(d_hidden, d_out).init(device) }
    }

    /// `[..., d_in]` → `[..., d_out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.output.forward(self.act.forward(self.hidden.forward(x)))
    }
}

/// The classification head: Linear → ReLU → dropout → Linear.
#[derive(Module, Debug)]
pub struct ClfaHead {
    pub hidden: Linear,
    pub act: Relu,
    pub dropout: Dropout,
    pub output: Linear,
}

impl ClfaHead {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.output.forward(self.dropout.forward(self.act.forward(self.hidden.forward(x))))
    }
}

/// Loss weights and choices that are not trained.
#[derive(Clone, Copy, Debug)]
pub struct ClfaSettings {
    pub d_proj: usize,
    pub tau: f64,
    pub alpha: f64,
    pub beta: f64,
    pub pooling: Pooling,
    pub fuser: Fuser,
    pub lexicon_weight: f64,
}

#[derive(Module, Debug)]
pub struct Clfa {
    pub text: TextEncoder,
    pub image: ImageEncoder,
    /// Text projection MLP (present when α > 0).
    pub proj_text: Option<Projection>,
    /// Image projection MLP (present when α > 0).
    pub proj_image: Option<Projection>,
    /// `Fuser::CrossAttention`.
    pub cross: Option<CrossEncoder>,
    /// `Fuser::CoAttention`: text attends to the image.
    pub co_text: Option<CrossEncoderLayer>,
    /// `Fuser::CoAttention`: the image attends to the text.
    pub co_image: Option<CrossEncoderLayer>,
    pub head: ClfaHead,
    #[module(skip)]
    pub task: TaskKind,
    #[module(skip)]
    pub settings: ClfaSettings,
}

impl ClfaConfig {
    pub fn init(&self, device: &Device) -> Clfa {
        let n_classes = match self.task {
            TaskKind::Classify { n_classes } => n_classes,
            TaskKind::Tag { .. } => panic!("CLFA is a classification model: task must be `classify`, got {:?}", self.task),
        };
        let d = self.cross.d_model;
        assert_eq!(self.text.d_model(), d, "CLFA: the text encoder's d_model ({}) must equal cross.d_model ({d})", self.text.d_model());
        assert_eq!(self.image.d_model(), d, "CLFA: the image encoder's d_model ({}) must equal cross.d_model ({d})", self.image.d_model());
        assert!(self.tau > 0.0, "CLFA: tau must be positive, got {}", self.tau);
        assert!(self.alpha >= 0.0 && self.beta >= 0.0, "CLFA: alpha and beta must be non-negative");
        let align = self.alpha > 0.0;
        let hidden = self.d_proj_hidden.unwrap_or(2 * d);
        let proj = || align.then(|| Projection::new(d, hidden, self.d_proj, device));
        let fused = match self.fuser {
            Fuser::CrossAttention => d,
            Fuser::ConcatMean | Fuser::CoAttention => 2 * d,
        };
        assert!(!self.cross.ocr || self.fuser == Fuser::CrossAttention, "CLFA: the OCR stream is read by the cross encoder; use the cross_attention fuser");
        let co_cfg = self.cross.clone().with_ocr(false);
        let co = || (self.fuser == Fuser::CoAttention).then(|| CrossEncoderLayer::new(&co_cfg, device));
        Clfa {
            text: self.text.init(device),
            image: self.image.init(device),
            proj_text: proj(),
            proj_image: proj(),
            cross: (self.fuser == Fuser::CrossAttention).then(|| self.cross.init(device)),
            co_text: co(),
            co_image: co(),
            head: ClfaHead {
                hidden: LinearConfig::new(fused, d).init(device),
                act: Relu::new(),
                dropout: DropoutConfig::new(self.dropout).init(),
                output: LinearConfig::new(d, n_classes).init(device),
            },
            task: self.task,
            settings: ClfaSettings {
                d_proj: self.d_proj,
                tau: self.tau,
                alpha: self.alpha,
                beta: self.beta,
                pooling: self.pooling,
                fuser: self.fuser,
                lexicon_weight: self.lexicon_weight,
            },
        }
    }
}

/// Element-wise max over the real positions of `x` `[B, L, D]`; rows without any give zeros.
fn masked_max(x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
    let [b, l, d] = x.dims();
    let any = mask.clone().float().sum_dim(1).clamp_max(1.0); // [B, 1]
    let pad = mask.bool_not().reshape([b, l, 1]).expand([b, l, d]);
    x.mask_fill(pad, -1.0e9).max_dim(1).reshape([b, d]) * any
}

impl Clfa {
    /// Encoder outputs: text tokens `[B, L, d]`, image tokens `[B, N, d]`.
    pub fn encode(&self, batch: &Batch) -> (Tensor<3>, Tensor<3>) {
        join_streams(&batch.ids.device(), || self.text.forward(batch.ids.clone(), batch.mask.clone()), || self.image.forward(batch.images.clone()))
    }

    /// Class logits `[B, C]` from the encoder outputs (the batch gives the text mask, and the
    /// OCR tokens and lexicon weights when the model reads them).
    pub fn fuse_and_classify(&self, t: Tensor<3>, i: Tensor<3>, batch: &Batch) -> Tensor<2> {
        let text_mask = batch.mask.clone();
        let [b, n, d] = i.dims();
        let image_mask = batch.image_token_mask(n);
        let image_mean = |x: Tensor<3>| zero_absent_rows(x.mean_dim(1).reshape([b, d]), batch.image_present());
        let text_mean = |x: Tensor<3>| zero_absent_rows(masked_mean(x, text_mask.clone()), batch.text_present());
        let feats = match self.settings.fuser {
            Fuser::CrossAttention => {
                let cross = self.cross.as_ref().expect("cross encoder");
                let reads_ocr = cross.layers.first().is_some_and(|l| l.ocr_attention.is_some());
                let ocr = reads_ocr.then(|| {
                    let (ids, mask) = batch.ocr.clone().expect("this CLFA model reads OCR text: the batch needs OCR tokens (samples with an `ocr` field)");
                    (self.text.forward(ids, mask.clone()), mask)
                });
                let bias = batch.lexicon.clone().map(|w| w.mul_scalar(self.settings.lexicon_weight));
                let image_tokens = batch.text_present().map(|_| i.clone().mean_dim(1).reshape([b, d]));
                let x = cross.forward_full(t, text_mask.clone(), i, image_mask, ocr, bias);
                let pooled = match self.settings.pooling {
                    Pooling::Cls => x.slice([0..b, 0..1, 0..d]).reshape([b, d]).tanh(),
                    Pooling::Mean => masked_mean(x, text_mask),
                    Pooling::Max => masked_max(x, text_mask),
                };
                // a post without its text: the mean of its image tokens
                match (batch.text_present(), image_tokens) {
                    (Some(p), Some(img)) => {
                        let p = p.reshape([b, 1]).expand([b, d]);
                        pooled * p.clone() + img * p.neg().add_scalar(1.0)
                    }
                    _ => pooled,
                }
            }
            Fuser::ConcatMean => Tensor::cat(vec![text_mean(t), image_mean(i)], 1),
            Fuser::CoAttention => {
                let ct = self.co_text.as_ref().expect("co-attention layer").forward(t.clone(), text_mask.clone(), i.clone(), image_mask.clone());
                let ci = self.co_image.as_ref().expect("co-attention layer").forward(i, image_mask, t, batch.fusion_text_mask());
                Tensor::cat(vec![text_mean(ct), image_mean(ci)], 1)
            }
        };
        self.head.forward(feats)
    }

    /// Class logits `[B, C]`.
    pub fn forward(&self, batch: &Batch) -> Tensor<2> {
        let (t, i) = self.encode(batch);
        self.fuse_and_classify(t, i, batch)
    }

    /// The students' features `(f_text, f_image)` `[B, P]` each (before normalisation); `None`
    /// when the model has no projection MLPs (α = 0).
    pub fn student_features(&self, t: Tensor<3>, i: Tensor<3>, text_mask: Tensor<2, Bool>) -> Option<(Tensor<2>, Tensor<2>)> {
        let (pt, pi) = (self.proj_text.as_ref()?, self.proj_image.as_ref()?);
        let [b, _, _] = i.dims();
        let p = self.settings.d_proj;
        Some((masked_mean(pt.forward(t), text_mask), pi.forward(i).mean_dim(1).reshape([b, p])))
    }

    /// `L_text + L_image` against `batch.teacher`; `None` when α = 0.
    pub fn alignment_loss(&self, t: Tensor<3>, i: Tensor<3>, batch: &Batch) -> Option<Tensor<1>> {
        let (ft, fi) = self.student_features(t, i, batch.mask.clone())?;
        let (ct, ci) = batch.teacher.clone().expect(
            "CLFA with alpha > 0 needs batch.teacher (frozen CLIP text and image embeddings [B, P], precomputed); set alpha = 0 to train without alignment",
        );
        let want = ft.dims();
        assert!(ct.dims() == want && ci.dims() == want, "CLFA: teacher embeddings {:?} / {:?} do not match [batch, d_proj] = {want:?}", ct.dims(), ci.dims());
        let tau = self.settings.tau;
        // each side over the posts that have that modality
        Some(match &batch.present {
            None => info_nce(ft, ct, tau) + info_nce(fi, ci, tau),
            Some(p) => info_nce_present(ft, ct, tau, p.text.clone()) + info_nce_present(fi, ci, tau, p.image.clone()),
        })
    }
}

impl TaskModel for Clfa {
    fn task(&self) -> TaskKind {
        self.task
    }

    fn loss(&self, batch: &Batch) -> Tensor<1> {
        let y = match &batch.targets {
            Targets::Class(y) => y.clone(),
            Targets::None => panic!("loss needs a batch with targets"),
            Targets::Tags { .. } => panic!("CLFA is a classification model; the batch carries tag targets"),
        };
        let (t, i) = self.encode(batch);
        let task = cross_entropy(self.fuse_and_classify(t.clone(), i.clone(), batch), y).mul_scalar(self.settings.beta);
        match self.alignment_loss(t, i, batch) {
            Some(a) => task + a.mul_scalar(self.settings.alpha),
            None => task,
        }
    }

    fn predict(&self, batch: &Batch) -> Prediction {
        Prediction::from_probs(softmax(self.forward(batch), 1))
    }
}
