//! `[data]` of a run configuration: where the corpus is, how to read its texts and images. The
//! run folder keeps it (`config.toml`), so prediction reads posts the way training did.

use crate::image::{ImageSpec, MissingImage};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The task family, which fixes the reader, the head and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskFamily {
    /// Token tagging (multimodal NER); CoNLL files `train.txt`, `valid.txt`, `test.txt`.
    Ner,
    /// Sequence classification (sentiment, sarcasm); JSONL files `train.jsonl`, `dev.jsonl`,
    /// `test.jsonl`.
    Classify,
    /// Sentiment regression on word-aligned text / audio / video features (CMU-MOSI/MOSEI,
    /// method `mim`): `data.dir` is a MAG-BERT or MMSA `.pkl` file, or a folder in mmfuse's
    /// aligned layout (`mmfuse prepare-mosi`).
    Regression,
}

/// `[data]`: where the corpus is and how to read it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Task family.
    pub task: TaskFamily,
    /// Folder with the split files.
    pub dir: PathBuf,
    /// Image folder, relative to `dir` unless absolute. NER images are `<IMGID>.<ext>` in it
    /// (`.png`, then `.jpg` are tried); classification samples name their image.
    #[serde(default = "default_image_dir")]
    pub image_dir: PathBuf,
    /// What to do with a missing or undecodable image: `error` (default), `absent` (the post
    /// has no image, and the model knows it) or `reference_placeholder` (a grey image the model
    /// takes for real, as in the reference code); fallbacks are counted and reported.
    #[serde(default = "default_missing")]
    pub missing_image: MissingImage,
    /// Word pieces per text, `[CLS]` included; longer texts are truncated (counted).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Square image size fed to the image encoder (plain bilinear resize, no crop, values
    /// scaled to [−1, 1]); ignored when `preprocess` is set.
    #[serde(default = "default_image_size")]
    pub image_size: u32,
    /// A pretrained encoder's image pipeline: `imagenet_eval` (shorter side 256, centre crop
    /// 224, ImageNet mean/std), `muse` (224×224 without crop, MuSE's mean/std) or `clip`
    /// (bicubic, centre crop 224, CLIP mean/std); Pillow-exact resampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<crate::preprocess::Preprocess>,
    /// Minimum count of a word to enter the vocabulary of from-scratch text encoders.
    #[serde(default = "default_min_count")]
    pub min_word_count: u32,
    /// CLFA: the teacher cache written by `mmfuse clip-embed` (frozen CLIP text and image
    /// embeddings of every post, by id), relative to the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<PathBuf>,
    /// Class names in output order (classification); default: sorted labels of the train split.
    #[serde(default)]
    pub labels: Vec<String>,
    /// CLFA's OCR stream (`model.clfa_ocr`): word pieces per OCR text, `[CLS]`/`[SEP]` included
    /// (paper 66).
    #[serde(default = "default_ocr_len")]
    pub ocr_max_len: usize,
    /// CLFA's lexicon attention biases: a SenticNet-style lexicon file (`word<TAB>polarity` per
    /// line, polarity in [−1, 1]); unset: the knowledge-free setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexicon: Option<PathBuf>,
}

fn default_ocr_len() -> usize {
    66
}

fn default_image_dir() -> PathBuf {
    PathBuf::from("images")
}
fn default_missing() -> MissingImage {
    MissingImage::Error
}
fn default_max_len() -> usize {
    48
}
fn default_image_size() -> u32 {
    32
}
fn default_min_count() -> u32 {
    2
}

impl TaskFamily {
    /// The name used in configs: `ner`, `classify`, `regression`.
    pub fn name(self) -> &'static str {
        match self {
            TaskFamily::Ner => "ner",
            TaskFamily::Classify => "classify",
            TaskFamily::Regression => "regression",
        }
    }

    /// The split files of a corpus folder of this family.
    pub fn split_files(self) -> [&'static str; 3] {
        match self {
            TaskFamily::Ner => ["train.txt", "valid.txt", "test.txt"],
            TaskFamily::Classify | TaskFamily::Regression => ["train.jsonl", "dev.jsonl", "test.jsonl"],
        }
    }
}

impl DataConfig {
    /// The image folder (`image_dir`, relative to `dir` unless absolute).
    pub fn image_dir(&self) -> PathBuf {
        if self.image_dir.is_absolute() { self.image_dir.clone() } else { self.dir.join(&self.image_dir) }
    }

    /// The image preprocessing: the `preprocess` preset, else a plain resize to `image_size`.
    pub fn image_spec(&self) -> ImageSpec {
        match self.preprocess {
            Some(p) => ImageSpec::from_preset(p),
            None => ImageSpec { size: self.image_size, ..ImageSpec::default() },
        }
    }
}
