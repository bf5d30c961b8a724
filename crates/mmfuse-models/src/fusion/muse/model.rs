//! MuSE's fusion model without its regularising decoders: text encoder + image encoder →
//! [`CrossTransformer`] → task head.
//!
//! Paper: MuSE, "Exchanging-based Multimodal Fusion with Transformer" (arXiv 2309.02190); in the MuSE reading notes,
//! `shared/seeds/001_*`: §4.1 (`T_n = MLP(T_e + N_t(0,1))`, `I_n` likewise; decoders eqs. (5)–(6)), end of §4.2 (both
//! streams concatenated → fully connected → `F_e`), §4.3 (objective), §5.1 (`F_e` → CRF, MNER), §5.2 (MLP on the fused
//! cls, MSA); shared/METHODS.md §1 "Regularising decoders" and "Heads".
//!
//! - classification (MSA): `[cls_t ; cls_i]` → Linear(2d→d) → ReLU → dropout → Linear(→C);
//! - tagging (MNER): each text token `[h_t ; cls_i]` → Linear(2d→d) → ReLU → dropout →
//!   Linear(→T) → CRF over words. (The released code pairs text token p with image cell p, which
//!   forces 64 tokens on both sides; the image stream's `[CLS]` is the sound choice.)
//!
//! Regularising decoders (training only, each optional): Gaussian noise (std `decoder_noise`)
//! is added to each modality's encoder output, which then goes through one shared Linear (the
//! reference's "MLP"), and
//! - the [`CaptionDecoder`] (image→text, L_it) attends over the image tokens and predicts the
//!   post's own words (`batch.captions`);
//! - the [`PixelCnnPp`] (text→image, L_ti) models the post's image at 32×32 in [−1, 1],
//!   conditioned on the masked mean of the text tokens.
//!
//! An absent modality (see [`Batch::present`]): its stream enters the CrossTransformer with every
//! token masked but its `[CLS]`, so it is hidden from attention and from the exchange (nothing
//! is exchanged to or from it) and its `[CLS]` stays the learned "absent" state of that stream;
//! L_it skips posts without an image, L_ti posts without an image or a text.
//!
//! `L = L_task + caption_weight · L_it + pixelcnn_weight · L_ti`, with L_it the mean token
//! cross-entropy (+ attention penalty) and L_ti the PixelCNN++ NLL in nats per sub-pixel
//! (the reference divides its sums by 64 and by 32·32 and weighs them by 1e-3 or 1e-4).

use super::captioning::{CaptionDecoder, CaptionDecoderConfig};
use super::cross_transformer::{CrossTransformer, CrossTransformerConfig};
use super::pixelcnn::{PixelCnnPp, PixelCnnPpConfig};
use crate::batch::Batch;
use crate::encoders::{ImageEncoder, ImageEncoderConfig, TextEncoder, TextEncoderConfig};
use crate::heads::scores::{task_loss, task_predict};
use crate::heads::{Crf, CrfConfig};
use crate::task::{Prediction, TaskKind, TaskModel};
use burn::config::Config;
use burn::module::Module;
use burn::nn::Relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Distribution, Tensor};
use mmfuse_kernels::join_streams;
use mmfuse_kernels::{Dropout, DropoutConfig, Linear, LinearConfig};

/// Configuration of [`Muse`].
#[derive(Config, Debug)]
pub struct MuseConfig {
    pub task: TaskKind,
    pub text: TextEncoderConfig,
    pub image: ImageEncoderConfig,
    /// The CrossTransformer (its `d_model` equals the encoders').
    pub cross: CrossTransformerConfig,
    /// Head dropout [0.5]. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Tagging: CRF over words. Default true.
    #[config(default = true)]
    pub crf: bool,
    /// Image→text captioning decoder (L_it); `None`: off.
    pub caption: Option<CaptionDecoderConfig>,
    /// α, weight of L_it. Default 0.1.
    #[config(default = 0.1)]
    pub caption_weight: f64,
    /// Text→image PixelCNN++ (L_ti); `None`: off.
    pub pixelcnn: Option<PixelCnnPpConfig>,
    /// β, weight of L_ti. Default 0.1.
    #[config(default = 0.1)]
    pub pixelcnn_weight: f64,
    /// Std of the Gaussian noise added to the embeddings the decoders read (paper 1.0; the
    /// released code adds none). Default 1.0.
    #[config(default = 1.0)]
    pub decoder_noise: f64,
    /// Mean and std that normalised `batch.images` (`(x/255 − mean)/std`), to recover the
    /// [−1, 1] pixels PixelCNN++ models. Default 0.5 / 0.5.
    #[config(default = "[0.5, 0.5, 0.5]")]
    pub pixel_mean: [f32; 3],
    #[config(default = "[0.5, 0.5, 0.5]")]
    pub pixel_std: [f32; 3],
}

#[derive(Module, Debug)]
pub struct Muse {
    pub text: TextEncoder,
    pub image: ImageEncoder,
    pub cross: CrossTransformer,
    pub fuse: Linear,
    pub act: Relu,
    pub dropout: Dropout,
    pub head: Linear,
    pub crf: Option<Crf>,
    /// The shared Linear before the decoders (present when a decoder is).
    pub regulariser: Option<Linear>,
    pub caption: Option<CaptionDecoder>,
    pub pixelcnn: Option<PixelCnnPp>,
    #[module(skip)]
    pub task: TaskKind,
    #[module(skip)]
    pub weights: DecoderWeights,
}

/// Loss weights, noise and pixel normalisation of the decoders (not trained).
#[derive(Clone, Copy, Debug)]
pub struct DecoderWeights {
    pub caption: f64,
    pub pixelcnn: f64,
    pub noise: f64,
    pub pixel_mean: [f32; 3],
    pub pixel_std: [f32; 3],
}

impl MuseConfig {
    pub fn init(&self, device: &Device) -> Muse {
        let d = self.cross.d_model;
        Muse {
            text: self.text.init(device),
            image: self.image.init(device),
            cross: self.cross.init(device),
            fuse: LinearConfig::new(2 * d, d).init(device),
            act: Relu::new(),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(d, self.task.n_outputs()).init(device),
            crf: match self.task {
                TaskKind::Tag { n_tags } if self.crf => Some(CrfConfig::new(n_tags).init(device)),
                _ => None,
            },
            regulariser: (self.caption.is_some() || self.pixelcnn.is_some()).then(|| LinearConfig::new(d, d).init(device)),
            caption: self.caption.as_ref().map(|c| c.init(device)),
            pixelcnn: self.pixelcnn.as_ref().map(|c| c.init(device)),
            task: self.task,
            weights: DecoderWeights {
                caption: self.caption_weight,
                pixelcnn: self.pixelcnn_weight,
                noise: self.decoder_noise,
                pixel_mean: self.pixel_mean,
                pixel_std: self.pixel_std,
            },
        }
    }
}

impl Muse {
    /// Class scores `[B, 1, C]` or tag scores `[B, L, T]`.
    pub fn forward(&self, batch: &Batch) -> Tensor<3> {
        let (t, i) =
            join_streams(&batch.ids.device(), || self.text.forward(batch.ids.clone(), batch.mask.clone()), || self.image.forward(batch.images.clone()));
        self.fuse_and_score(t, i, batch)
    }

    /// The regularising decoders' weighted losses on the encoder outputs `t` `[B, Lt, d]` and
    /// `i` `[B, Li, d]` (zero-size when both are off).
    fn decoder_loss(&self, t: Tensor<3>, i: Tensor<3>, batch: &Batch) -> Option<Tensor<1>> {
        let reg = self.regulariser.as_ref()?;
        let w = self.weights;
        let noisy = |x: Tensor<3>| {
            let x = if w.noise > 0.0 { x.clone() + Tensor::random(x.dims(), Distribution::Normal(0.0, w.noise), &x.device()) } else { x };
            reg.forward(x)
        };
        let mut total: Option<Tensor<1>> = None;
        if let Some(cap) = &self.caption {
            let (ids, mask) = batch.captions.clone().expect("a MuSE model with a captioning decoder needs batch.captions (built by the trainer)");
            // no caption to learn from a post without an image
            let mask = match batch.image_present() {
                Some(p) => {
                    let [b, tc] = mask.dims();
                    mask.bool_and(p.greater_elem(0.5).reshape([b, 1]).expand([b, tc]))
                }
                None => mask,
            };
            let l = cap.loss(ids, mask, noisy(i)).mul_scalar(w.caption);
            total = Some(l);
        }
        if let Some(pix) = &self.pixelcnn {
            let cond = crate::layers::masked_mean(noisy(t), batch.mask.clone());
            let x = self.pixels_32(batch.images.clone());
            let [_, c, h, ww] = x.dims();
            let per_post = pix.loss(x, cond);
            // nothing to model for a post without an image, nothing to condition on without a text
            let nll = match batch.present.as_ref() {
                Some(p) => {
                    let both = p.image.clone() * p.text.clone();
                    (per_post * both.clone()).sum() / both.sum().clamp_min(1.0)
                }
                None => per_post.mean(),
            };
            let l = nll.div_scalar((c * h * ww) as f64).mul_scalar(w.pixelcnn);
            total = Some(match total {
                Some(t) => t + l,
                None => l,
            });
        }
        total
    }

    /// `batch.images` back in [−1, 1] at 32×32 (bilinear when the input size differs).
    pub fn pixels_32(&self, images: Tensor<4>) -> Tensor<4> {
        let device = images.device();
        let w = self.weights;
        let std = Tensor::<1>::from_floats(w.pixel_std, &device).reshape([1, 3, 1, 1]);
        let mean = Tensor::<1>::from_floats(w.pixel_mean, &device).reshape([1, 3, 1, 1]);
        let x = (images * std + mean).mul_scalar(2.0).sub_scalar(1.0).clamp(-1.0, 1.0);
        let [_, _, h, ww] = x.dims();
        if h == 32 && ww == 32 { x } else { interpolate(x, InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([32, 32])) }
    }

    fn fuse_and_score(&self, t: Tensor<3>, i: Tensor<3>, batch: &Batch) -> Tensor<3> {
        let [b, li, d] = i.dims();
        let (t, i) = self.cross.forward(t, batch.fusion_text_mask(), i, batch.image_token_mask(li));
        let [_, lt1, _] = t.dims();
        let cls_i = i.slice([0..b, 0..1, 0..d]); // [B, 1, d]
        let feats = match self.task {
            TaskKind::Classify { .. } => Tensor::cat(vec![t.slice([0..b, 0..1, 0..d]), cls_i], 2),
            TaskKind::Tag { .. } => {
                let tokens = t.slice([0..b, 1..lt1, 0..d]);
                Tensor::cat(vec![tokens, cls_i.expand([b, lt1 - 1, d])], 2)
            }
        };
        self.head.forward(self.dropout.forward(self.act.forward(self.fuse.forward(feats))))
    }
}

impl TaskModel for Muse {
    fn task(&self) -> TaskKind {
        self.task
    }

    fn loss(&self, batch: &Batch) -> Tensor<1> {
        let t = self.text.forward(batch.ids.clone(), batch.mask.clone());
        let i = self.image.forward(batch.images.clone());
        let task = task_loss(self.crf.as_ref(), self.fuse_and_score(t.clone(), i.clone(), batch), batch);
        match self.decoder_loss(t, i, batch) {
            Some(d) => task + d,
            None => task,
        }
    }

    fn predict(&self, batch: &Batch) -> Prediction {
        task_predict(self.task, self.crf.as_ref(), self.forward(batch), batch)
    }

    fn fixed_length(&self) -> bool {
        self.cross.reference_compat
    }
}
