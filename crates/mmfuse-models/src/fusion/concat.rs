//! Late fusion by concatenation (the baseline), with text-only and image-only variants.
//!
//! No paper's own method: the aggregation baseline ("aggregation-based" fusion by concatenation, §2 and §3.1 of the
//! MuSE reading notes, `shared/seeds/001_*`; CLFA's concat/mean comparison, shared/METHODS.md §2 "Fusion").
//!
//! - classification: `[masked_mean(text) ; mean(image tokens)]` → MLP → classes;
//! - tagging: each text token `[h_t ; mean(image tokens)]` → MLP → tag scores.
//!
//! An absent modality (see [`Batch::present`]): its pooled vector is zero in the concatenation
//! (the image vector of every token, for tagging), so the head reads the present modality only;
//! trained with modality dropout, the head learns that zero means "not there".
//!
//! The unimodal variants drop one side: text-only uses the text features alone; image-only
//! uses the pooled image, and for tagging also the token *positions* (never the token ids), so
//! it can place tags by position but cannot read the words.

use crate::batch::{Batch, zero_absent_rows};
use crate::encoders::{ImageEncoder, ImageEncoderConfig, TextEncoder, TextEncoderConfig};
use crate::heads::scores::{task_loss, task_predict};
use crate::heads::{Crf, CrfConfig, MlpHead, MlpHeadConfig};
use crate::layers::masked_mean;
use crate::task::{Prediction, TaskKind, TaskModel};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{Device, Int, Tensor};
use mmfuse_kernels::join_streams;
use serde::{Deserialize, Serialize};

/// Which modalities a model sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Text,
    Image,
    Fused,
}

impl std::str::FromStr for Modality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Modality::Text),
            "image" => Ok(Modality::Image),
            "fused" => Ok(Modality::Fused),
            _ => Err(format!("unknown modality '{s}'; expected text, image or fused")),
        }
    }
}

/// Configuration of [`ConcatFusion`].
#[derive(Config, Debug)]
pub struct ConcatFusionConfig {
    /// Which modalities the model sees.
    pub modality: Modality,
    /// Classification or tagging, with the number of outputs.
    pub task: TaskKind,
    /// The text encoder.
    pub text: TextEncoderConfig,
    /// The image encoder (its `d_model` must equal the text encoder's).
    pub image: ImageEncoderConfig,
    /// Hidden size of the head. Default 128.
    #[config(default = 128)]
    pub d_hidden: usize,
    /// Head dropout. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Tagging: score tag sequences with a linear-chain CRF over words (else per-token softmax).
    /// Default false.
    #[config(default = false)]
    pub crf: bool,
}

/// The late-fusion model.
#[derive(Module, Debug)]
pub struct ConcatFusion {
    pub text: Option<TextEncoder>,
    pub image: Option<ImageEncoder>,
    /// Position embeddings of the image-only tagger (it sees where tokens are, not what).
    pub positions: Option<Embedding>,
    pub head: MlpHead,
    /// CRF over word sequences (tagging with `crf = true`).
    pub crf: Option<Crf>,
    #[module(skip)]
    pub modality: Modality,
    #[module(skip)]
    pub task: TaskKind,
}

impl ConcatFusionConfig {
    pub fn init(&self, device: &Device) -> ConcatFusion {
        let d = self.text.d_model();
        let uses_text = self.modality != Modality::Image;
        let image_only_tagger = self.modality == Modality::Image && matches!(self.task, TaskKind::Tag { .. });
        let uses_image = self.modality != Modality::Text;
        let d_input = match self.modality {
            Modality::Fused => 2 * d,
            Modality::Text => d,
            Modality::Image => match self.task {
                TaskKind::Tag { .. } => 2 * d,
                TaskKind::Classify { .. } => self.image.d_model(),
            },
        };
        ConcatFusion {
            text: uses_text.then(|| self.text.init(device)),
            image: uses_image.then(|| self.image.init(device)),
            positions: image_only_tagger.then(|| EmbeddingConfig::new(self.text.max_len(), d).init(device)),
            head: MlpHeadConfig::new(d_input, self.d_hidden, self.task.n_outputs()).with_dropout(self.dropout).init(device),
            crf: match self.task {
                TaskKind::Tag { n_tags } if self.crf => Some(CrfConfig::new(n_tags).init(device)),
                _ => None,
            },
            modality: self.modality,
            task: self.task,
        }
    }
}

impl ConcatFusion {
    fn image_vector(&self, batch: &Batch) -> Option<Tensor<2>> {
        self.image.as_ref().map(|enc| zero_absent_rows(enc.forward(batch.images.clone()).mean_dim(1).squeeze_dim::<2>(1), batch.image_present()))
    }

    /// The text side's token features `[B, L, d]`: the text encoder's output (which an
    /// image-only classifier ignores), or, for an image-only tagger, position embeddings.
    fn text_tokens(&self, batch: &Batch) -> Option<Tensor<3>> {
        match (self.task, self.modality, &self.text, &self.positions) {
            (TaskKind::Classify { .. }, Modality::Image, _, _) => None,
            (_, _, Some(enc), _) => Some(enc.forward(batch.ids.clone(), batch.mask.clone())),
            (TaskKind::Tag { .. }, _, None, Some(pos)) => {
                let [b, l] = batch.ids.dims();
                let ids = Tensor::<1, Int>::arange(0..l as i64, &batch.ids.device()).unsqueeze_dim::<2>(0).repeat_dim(0, b);
                Some(pos.forward(ids))
            }
            _ => None,
        }
    }

    /// Task scores: `[B, C]` for classification, `[B, L, T]` for tagging (as a 3-D tensor with
    /// L = 1 for classification).
    pub fn forward(&self, batch: &Batch) -> Tensor<3> {
        let (tokens, image) = join_streams(&batch.ids.device(), || self.text_tokens(batch), || self.image_vector(batch));
        match self.task {
            TaskKind::Classify { .. } => {
                let text = tokens.map(|t| zero_absent_rows(masked_mean(t, batch.mask.clone()), batch.text_present()));
                let feats = match (text, image) {
                    (Some(t), Some(i)) => Tensor::cat(vec![t, i], 1),
                    (Some(t), None) => t,
                    (None, Some(i)) => i,
                    (None, None) => unreachable!("a model sees at least one modality"),
                };
                self.head.forward(feats).unsqueeze_dim::<3>(1)
            }
            TaskKind::Tag { .. } => {
                let tokens = tokens.expect("a tagger has a text encoder or position embeddings");
                let [b, l, _] = tokens.dims();
                let feats = match image {
                    Some(i) => {
                        let [_, d] = i.dims();
                        let i = i.unsqueeze_dim::<3>(1).expand([b, l, d]);
                        Tensor::cat(vec![tokens, i], 2)
                    }
                    None => tokens,
                };
                self.head.forward(feats)
            }
        }
    }
}

impl TaskModel for ConcatFusion {
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
