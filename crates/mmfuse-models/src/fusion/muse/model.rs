//! MuSE's fusion model without its regularising decoders: text encoder + image encoder →
//! [`CrossTransformer`] → task head.
//!
//! - classification (MSA): `[cls_t ; cls_i]` → Linear(2d→d) → ReLU → dropout → Linear(→C);
//! - tagging (MNER): each text token `[h_t ; cls_i]` → Linear(2d→d) → ReLU → dropout →
//!   Linear(→T) → CRF over words. (The released code pairs text token p with image cell p, which
//!   forces 64 tokens on both sides; the image stream's `[CLS]` is the sound choice.)
//!
//! The encoders here are the from-scratch ones; pretrained BERT/ResNet encoders and the
//! captioning / PixelCNN++ decoders are tracked in the MuSE issue.

use super::cross_transformer::{CrossTransformer, CrossTransformerConfig};
use crate::batch::Batch;
use crate::encoders::{ImageCnn, ImageCnnConfig, TextTransformer, TextTransformerConfig};
use crate::heads::scores::{task_loss, task_predict};
use crate::heads::{Crf, CrfConfig};
use crate::task::{Prediction, TaskKind, TaskModel};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Relu};
use burn::tensor::{Bool, Device, Tensor};

/// Configuration of [`Muse`].
#[derive(Config, Debug)]
pub struct MuseConfig {
    pub task: TaskKind,
    pub text: TextTransformerConfig,
    pub image: ImageCnnConfig,
    /// The CrossTransformer (its `d_model` equals the encoders').
    pub cross: CrossTransformerConfig,
    /// Head dropout [0.5]. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Tagging: CRF over words. Default true.
    #[config(default = true)]
    pub crf: bool,
}

#[derive(Module, Debug)]
pub struct Muse {
    pub text: TextTransformer,
    pub image: ImageCnn,
    pub cross: CrossTransformer,
    pub fuse: Linear,
    pub act: Relu,
    pub dropout: Dropout,
    pub head: Linear,
    pub crf: Option<Crf>,
    #[module(skip)]
    pub task: TaskKind,
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
            task: self.task,
        }
    }
}

impl Muse {
    /// Class scores `[B, 1, C]` or tag scores `[B, L, T]`.
    pub fn forward(&self, batch: &Batch) -> Tensor<3> {
        let t = self.text.forward(batch.ids.clone(), batch.mask.clone());
        let i = self.image.forward(batch.images.clone());
        let [b, li, d] = i.dims();
        let image_mask = Tensor::<2, Bool>::full([b, li], true, &i.device());
        let (t, i) = self.cross.forward(t, batch.mask.clone(), i, image_mask);
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
        task_loss(self.crf.as_ref(), self.forward(batch), batch)
    }

    fn predict(&self, batch: &Batch) -> Prediction {
        task_predict(self.task, self.crf.as_ref(), self.forward(batch), batch)
    }
}
