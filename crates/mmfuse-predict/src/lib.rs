//! Prediction from raw inputs: a trained run folder is a self-contained model package
//! ([`mmfuse_models::package`]: `config.toml`, `tokenizer.json`, `labels.json`,
//! `checkpoints/best/model.bpk`, shape files), and [`Predictor`] turns a post — a text and an
//! optional image — into entities with spans and types, or class probabilities; a MIM run turns
//! a segment's words with their word-aligned audio and video features ([`AlignedPost`]) into a
//! sentiment score. `mmfuse predict` and the HTTP server both go through this API and nothing
//! else.
//!
//! What this crate must not do: depend on training code. It reads a run folder with the data
//! and model crates only.

pub mod file;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use mmfuse_data::DataError;
use mmfuse_data::aligned::{AlignedSample, expand_wordpieces};
pub use mmfuse_data::config::TaskFamily;
use mmfuse_data::image::{ImageSpec, decode_rgb, placeholder, to_tensor_data};
use mmfuse_data::labels::LabelMap;
use mmfuse_data::text::TextTokenizer;
use mmfuse_kernels::device::on_compute_pool;
use mmfuse_metrics::ner::extract_entities;
use mmfuse_models::batch::{AlignedHostBatch, HostBatch};
use mmfuse_models::package::{self, ModelShapes, PackageConfig};
use mmfuse_models::registry::{self, Model};
use mmfuse_models::task::{Prediction, TaskModel};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// The image of a post.
#[derive(Clone, Debug)]
pub enum ImageInput {
    /// A local file.
    Path(PathBuf),
    /// Encoded bytes (PNG, JPEG), e.g. from an upload.
    Bytes(Vec<u8>),
    /// Decoded RGB pixels (e.g. a numpy array or a PIL image handed over by the Python package).
    Rgb(image::RgbImage),
    /// No image: the model is told the post has none (runs trained with
    /// `data.missing_image = "reference_placeholder"` get the grey placeholder instead, as the
    /// reference code would); the output's `modalities` says what was used.
    None,
}

/// A raw post.
#[derive(Clone, Debug)]
pub struct Post {
    pub id: Option<String>,
    pub text: String,
    pub image: ImageInput,
    /// OCR text of the image, read by CLFA models with the OCR stream (`model.clfa_ocr`);
    /// absent: an empty OCR text.
    pub ocr: Option<String>,
}

/// One entity found in a post.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntitySpan {
    /// The entity's words joined by a space.
    pub text: String,
    /// PER, LOC, ORG, MISC.
    #[serde(rename = "type")]
    pub typ: String,
    /// Word span `[start_word, end_word)`.
    pub start_word: usize,
    pub end_word: usize,
    /// Character span `[start_char, end_char)` in the input text (Unicode scalar values).
    pub start_char: usize,
    pub end_char: usize,
}

/// What the model says about a post.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Output {
    /// Classification: the most probable label and every label's probability.
    Classes { label: String, probs: std::collections::BTreeMap<String, f32> },
    /// Tagging: the words (whitespace split), their tags, and the entities.
    Entities { words: Vec<String>, tags: Vec<String>, entities: Vec<EntitySpan> },
    /// Regression (MIM): the sentiment score (CMU-MOSI's scale, −3 … 3).
    Score { score: f32 },
}

/// A segment for a MIM run: its words, and one audio and one video feature row per word (the
/// word-aligned features the run was trained on, e.g. COVAREP and FACET for CMU-MOSI). Audio or
/// video left out (or `null`) is absent: the model's gates close on it and the fusion falls back
/// to the other modalities.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignedPost {
    #[serde(default)]
    pub id: Option<String>,
    pub words: Vec<String>,
    #[serde(default)]
    pub audio: Option<Vec<Vec<f32>>>,
    #[serde(default)]
    pub video: Option<Vec<Vec<f32>>>,
}

/// A post's result.
#[derive(Clone, Debug, Serialize)]
pub struct PredictResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(flatten)]
    pub output: Output,
    /// The modalities the prediction used: `text`, `image`; for MIM segments `text`, `audio`,
    /// `video`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modalities: Vec<&'static str>,
    /// True when the post had no image and, as in the reference code, a grey placeholder
    /// stood in for it (runs trained with `data.missing_image = "reference_placeholder"`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub placeholder_image: bool,
}

/// A loaded model package.
pub struct Predictor {
    pub config: PackageConfig,
    encoder: TextTokenizer,
    /// Class or tag names (empty for MIM).
    labels: LabelMap,
    model: Model,
    /// MIM's audio / video feature sizes.
    features: Option<(usize, usize)>,
    device: Device,
    spec: ImageSpec,
    /// CLFA's OCR stream encoder (`model.clfa_ocr`).
    ocr: Option<TextTokenizer>,
    /// CLFA's lexicon (the run folder's `lexicon.tsv`).
    lexicon: Option<mmfuse_data::lexicon::Lexicon>,
}

/// Words of a raw text with their character offsets (whitespace split, as the NER corpora).
pub fn split_words(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((chars[s..i].iter().collect(), s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((chars[s..].iter().collect(), s, chars.len()));
    }
    out
}

impl Predictor {
    /// Load a run folder on `device` (a plain, non-autodiff device).
    pub fn load(run_dir: &Path, device: &Device) -> Result<Self> {
        let need = |f: &str| -> Result<PathBuf> {
            let p = run_dir.join(f);
            if !p.exists() {
                bail!(
                    "{} is not a complete mmfuse run folder: {} is missing (train a model with `mmfuse train --out {}`)",
                    run_dir.display(),
                    f,
                    run_dir.display()
                );
            }
            Ok(p)
        };
        need(package::CONFIG_FILE)?;
        let config = PackageConfig::load(run_dir)?;
        let encoder = TextTokenizer::from_file(&need(package::TOKENIZER_FILE)?, config.data.max_len, true)?;
        let labels: LabelMap = if config.data.task == TaskFamily::Regression {
            LabelMap::from_names(vec![])
        } else {
            let p = need(package::LABELS_FILE)?;
            serde_json::from_str(&std::fs::read_to_string(&p)?).with_context(|| format!("corrupt {}", p.display()))?
        };
        let weights = need(package::BEST_WEIGHTS)?;
        // read into memory (a record loaded from the file reads it lazily, and a retrained run
        // replaces it)
        // checked against the checkpoint's manifest: damaged weights are an error, not wrong
        // predictions (a checkpoint written before manifests loads unchecked)
        let bytes = mmfuse_data::manifest::read_file_checked(&weights)?;
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).with_context(|| format!("cannot read {}", weights.display()))?;
        let shapes = ModelShapes::from_run_dir(run_dir, &config.model, &config.data, encoder.vocab_size())?;
        let mismatch = || format!("{} does not match the model described by config.toml", weights.display());
        let model =
            match registry::build(&config.model, &config.data, &shapes, labels.len(), device).map_err(|e| anyhow::anyhow!("{}: {e}", run_dir.display()))? {
                Model::Posts(m) => Model::Posts(m.try_load_record(record).with_context(mismatch)?.valid()),
                Model::Aligned(m) => Model::Aligned(m.try_load_record(record).with_context(mismatch)?.valid()),
            };
        let spec = config.data.image_spec();
        let ocr = config.model.clfa_ocr().then(|| TextTokenizer::new(encoder.tokenizer().clone(), config.data.ocr_max_len, true));
        let lexicon = match config.data.lexicon.is_some() {
            true => Some(mmfuse_data::lexicon::Lexicon::read(&need(package::LEXICON_FILE)?)?),
            false => None,
        };
        let features = shapes.features;
        Ok(Self { config, encoder, labels, model, features, device: device.clone(), spec, ocr, lexicon })
    }

    /// Reject images whose header announces more than `n` pixels (before decoding them).
    pub fn with_max_pixels(mut self, n: u64) -> Self {
        self.spec.max_pixels = n;
        self
    }

    pub fn labels(&self) -> &LabelMap {
        &self.labels
    }

    pub fn task(&self) -> TaskFamily {
        self.config.data.task
    }

    /// Whether a post with this text and with or without an image can be predicted: a tagger
    /// needs words; any model needs a text or an image.
    pub fn check_post(&self, text: &str, has_image: bool) -> Result<()> {
        if text.trim().is_empty() {
            if self.task() == TaskFamily::Ner {
                bail!("empty text: a tagger needs words to tag");
            }
            if !has_image {
                bail!("the post has neither a text nor an image");
            }
        }
        Ok(())
    }

    /// Whether this run stands a grey placeholder in for a missing image, as the reference code
    /// does, instead of telling the model the image is absent.
    pub fn uses_reference_placeholder(&self) -> bool {
        self.config.data.missing_image == mmfuse_data::image::MissingImage::ReferencePlaceholder
    }

    /// The preprocessed image of a post, or the placeholder pixels (flag true: the post has no
    /// image) when it has none. A given but unreadable image is an error.
    pub fn image(&self, input: &ImageInput) -> Result<(Vec<f32>, bool)> {
        match image_pixels(input, &self.spec)? {
            Some(px) => Ok((px, false)),
            None => Ok((placeholder(&self.spec), true)),
        }
    }

    /// What the model is, as the server's `/v1/info` and the Python package's `Model.info` give
    /// it: the task (`ner`, `classify`, `regression`), the output labels, the method, how a
    /// missing image is treated, and MIM's feature sizes.
    pub fn info(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "task": self.task().name(),
            "labels": self.labels().names(),
            "method": self.config.model.method_name(),
            "missing_image": self.config.data.missing_image.name(),
        });
        if let Some((a, b)) = self.features() {
            v["audio_dim"] = serde_json::json!(a);
            v["video_dim"] = serde_json::json!(b);
        }
        v
    }

    /// MIM's audio / video feature sizes (`None` for post models).
    pub fn features(&self) -> Option<(usize, usize)> {
        self.features
    }

    /// Predict a batch of MIM segments; errors are per segment (a word without its feature
    /// rows, a row of the wrong width, a non-finite value).
    pub fn predict_aligned(&self, posts: &[AlignedPost]) -> Vec<Result<PredictResult>> {
        let (Model::Aligned(mim), Some((da, dv))) = (&self.model, self.features) else {
            return posts.iter().map(|_| Err(anyhow::anyhow!("this run predicts from text + image posts, not word-aligned features"))).collect();
        };
        let mut slots: Vec<Option<Result<PredictResult>>> = Vec::with_capacity(posts.len());
        let l = self.encoder.max_len();
        let mut hb = AlignedHostBatch { seq_len: l, audio_dim: da, video_dim: dv, ..Default::default() };
        let mut absent = Vec::new();
        for post in posts {
            match aligned_sample(post, da, dv) {
                Ok(s) => {
                    let r = expand_wordpieces(&s, &self.encoder, da, dv);
                    hb.ids.extend(r.ids.iter().map(|&i| i as i64));
                    hb.mask.extend(&r.mask);
                    hb.audio.extend(&r.audio);
                    hb.video.extend(&r.video);
                    absent.push((post.audio.is_none(), post.video.is_none()));
                    hb.batch_size += 1;
                    slots.push(None);
                }
                Err(e) => slots.push(Some(Err(e))),
            }
        }
        for (i, (a, v)) in absent.into_iter().enumerate() {
            hb.mark_absent(i, a, v);
        }
        let mut scores = if hb.batch_size > 0 { on_compute_pool(|| mim.predict(&hb.to_device(&self.device))) } else { vec![] }.into_iter();
        slots
            .into_iter()
            .zip(posts)
            .map(|(slot, post)| match slot {
                Some(e) => e,
                None => Ok(PredictResult {
                    id: post.id.clone(),
                    output: Output::Score { score: scores.next().expect("one score per good segment") },
                    modalities: [Some("text"), post.audio.is_some().then_some("audio"), post.video.is_some().then_some("video")]
                        .into_iter()
                        .flatten()
                        .collect(),
                    placeholder_image: false,
                }),
            })
            .collect()
    }

    /// Predict a batch of posts whose images are already preprocessed; the flag says the post
    /// has no image (the pixels are then the placeholder's). A post with an empty text is
    /// text-absent (classification only, see [`Predictor::check_post`]).
    pub fn predict_prepared(&self, posts: &[(Post, Vec<f32>, bool)]) -> Result<Vec<PredictResult>> {
        if posts.is_empty() {
            return Ok(vec![]);
        }
        let Model::Posts(model) = &self.model else {
            bail!("this run is a MIM model on word-aligned audio/video features: give it words with their feature rows (AlignedPost), not a text + image post");
        };
        let l = self.encoder.max_len();
        let s = self.spec.size as usize;
        let mut hb = HostBatch { batch_size: posts.len(), seq_len: l, image_size: s, ..Default::default() };
        let mut words_of = Vec::new();
        let mut positions = Vec::new();
        let mut first_pieces = Vec::new();
        let reference = self.uses_reference_placeholder();
        let mut used = Vec::with_capacity(posts.len());
        for (k, (post, img, no_image)) in posts.iter().enumerate() {
            self.check_post(&post.text, !no_image)?;
            let no_text = post.text.trim().is_empty();
            // the reference behaviour: the grey picture passes for a real image
            hb.mark_absent(k, *no_image && !reference, no_text);
            used.push([(!no_text).then_some("text"), (!no_image).then_some("image")].into_iter().flatten().collect::<Vec<_>>());
            match self.task() {
                TaskFamily::Regression => bail!("internal: a post model on a regression task"),
                TaskFamily::Classify => {
                    let e = self.encoder.encode(&post.text);
                    if let Some(enc) = &self.ocr {
                        let o = enc.encode(post.ocr.as_deref().unwrap_or(""));
                        let lo = o.ids.len();
                        let (ids, mask, _) = hb.ocr.get_or_insert_with(|| (vec![], vec![], lo));
                        ids.extend(o.ids.iter().map(|&x| x as i64));
                        mask.extend(o.mask);
                    }
                    if let Some(lex) = &self.lexicon {
                        let words: Vec<String> = post.text.split_whitespace().map(str::to_string).collect();
                        let w = self.encoder.encode_words(&words);
                        let weights = if w.ids == e.ids { lex.position_weights(&words, &w.word_index) } else { vec![0.0; e.ids.len()] };
                        hb.lexicon.get_or_insert_with(Vec::new).extend(weights);
                    }
                    hb.ids.extend(e.ids.iter().map(|&x| x as i64));
                    hb.mask.extend(e.mask);
                    words_of.push(vec![]);
                    positions.push(vec![]);
                }
                TaskFamily::Ner => {
                    let words = split_words(&post.text);
                    let w: Vec<String> = words.iter().map(|x| x.0.clone()).collect();
                    let e = self.encoder.encode_words(&w);
                    let mut pos = vec![None; w.len()];
                    for (p, (wi, first)) in e.word_index.iter().zip(&e.first_piece).enumerate() {
                        if let (Some(wi), true) = (wi, first) {
                            pos[*wi] = Some(p);
                        }
                    }
                    hb.ids.extend(e.ids.iter().map(|&x| x as i64));
                    hb.mask.extend(e.mask);
                    first_pieces.extend(e.word_index.iter().zip(&e.first_piece).map(|(w, f)| w.is_some() && *f));
                    words_of.push(words);
                    positions.push(pos);
                }
            }
            hb.images.extend_from_slice(img);
        }
        if self.task() == TaskFamily::Ner {
            hb.set_word_positions(&first_pieces);
        }
        if !model.fixed_length() {
            hb.trim_padding();
        }
        let pred = on_compute_pool(|| model.predict(&hb.to_device(&self.device)));
        let mut out = Vec::with_capacity(posts.len());
        match pred {
            Prediction::Classes(probs) => {
                for (((post, _, ph), p), modalities) in posts.iter().zip(probs).zip(used) {
                    let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
                    out.push(PredictResult {
                        id: post.id.clone(),
                        output: Output::Classes {
                            label: self.labels.name(best).to_string(),
                            probs: p.iter().enumerate().map(|(i, v)| (self.labels.name(i).to_string(), *v)).collect(),
                        },
                        modalities,
                        placeholder_image: *ph && reference,
                    });
                }
            }
            Prediction::Tags(rows) => {
                for ((((post, _, ph), row), (words, pos)), modalities) in posts.iter().zip(rows).zip(words_of.iter().zip(&positions)).zip(used) {
                    let tags: Vec<String> = pos.iter().map(|p| p.map(|p| self.labels.name(row[p]).to_string()).unwrap_or_else(|| "O".into())).collect();
                    let entities = extract_entities(&tags)
                        .into_iter()
                        .map(|e| EntitySpan {
                            text: words[e.start..e.end].iter().map(|w| w.0.as_str()).collect::<Vec<_>>().join(" "),
                            typ: e.typ,
                            start_word: e.start,
                            end_word: e.end,
                            start_char: words[e.start].1,
                            end_char: words[e.end - 1].2,
                        })
                        .collect();
                    out.push(PredictResult {
                        id: post.id.clone(),
                        output: Output::Entities { words: words.iter().map(|w| w.0.clone()).collect(), tags, entities },
                        modalities,
                        placeholder_image: *ph && reference,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Predict posts (decoding their images). Errors are per post.
    pub fn predict(&self, posts: Vec<Post>) -> Vec<Result<PredictResult>> {
        let mut prepared = Vec::new();
        let mut slots: Vec<Option<Result<PredictResult>>> = Vec::with_capacity(posts.len());
        let mut index = Vec::new();
        for (i, post) in posts.into_iter().enumerate() {
            if let Err(e) = self.check_post(&post.text, !matches!(post.image, ImageInput::None)) {
                slots.push(Some(Err(e)));
                continue;
            }
            match self.image(&post.image) {
                Ok((img, ph)) => {
                    prepared.push((post, img, ph));
                    index.push(i);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(Err(e))),
            }
        }
        match self.predict_prepared(&prepared) {
            Ok(results) => {
                for (i, r) in index.into_iter().zip(results) {
                    slots[i] = Some(Ok(r));
                }
            }
            Err(e) => {
                for i in index {
                    slots[i] = Some(Err(anyhow::anyhow!("{e:#}")));
                }
            }
        }
        slots.into_iter().map(|s| s.expect("every slot filled")).collect()
    }
}

/// An image input preprocessed with `spec` (CHW `f32`), `None` for [`ImageInput::None`]. A file,
/// upload or pixel array above `spec.max_pixels` is refused (decoded inputs by their size).
pub fn image_pixels(input: &ImageInput, spec: &ImageSpec) -> Result<Option<Vec<f32>>> {
    match input {
        ImageInput::None => Ok(None),
        ImageInput::Path(p) => Ok(Some(mmfuse_data::image::load_image(p, spec)?)),
        ImageInput::Bytes(b) => {
            let img = decode_rgb(Cursor::new(b.as_slice()), Path::new("<upload>"), spec.max_pixels)?;
            Ok(Some(to_tensor_data(&img, spec)))
        }
        ImageInput::Rgb(img) => {
            let (w, h) = img.dimensions();
            let pixels = w as u64 * h as u64;
            if pixels > spec.max_pixels {
                return Err(DataError::ImageTooLarge { path: PathBuf::from("<array>"), width: w, height: h, pixels, limit: spec.max_pixels }.into());
            }
            if pixels == 0 {
                bail!("the image array is empty ({w}x{h})");
            }
            Ok(Some(to_tensor_data(img, spec)))
        }
    }
}

/// A MIM segment as the dataset readers give it, checked against the run's feature sizes.
fn aligned_sample(p: &AlignedPost, da: usize, dv: usize) -> Result<AlignedSample> {
    if p.words.is_empty() {
        bail!("no words");
    }
    let n = p.words.len();
    for (name, rows, dim) in [("audio", &p.audio, da), ("video", &p.video, dv)] {
        // an absent modality: zero rows (the batch marks it absent)
        let Some(rows) = rows else { continue };
        if rows.len() != n {
            bail!("{} {name} rows for {n} words: give one {name} row per word", rows.len());
        }
        if let Some((k, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != dim) {
            bail!("{name} row {k} has {} values; this run's {name} features have {dim}", r.len());
        }
        if let Some(k) = rows.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
            bail!("{name} row {k} has a non-finite value (NaN or infinity)");
        }
    }
    Ok(AlignedSample {
        id: p.id.clone().unwrap_or_default(),
        words: p.words.clone(),
        token_ids: None,
        steps: n,
        audio: p.audio.as_ref().map_or_else(|| vec![0.0; n * da], |r| r.concat()),
        video: p.video.as_ref().map_or_else(|| vec![0.0; n * dv], |r| r.concat()),
        label: 0.0,
        noisy: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_character_offsets() {
        let w = split_words("  Hi  Zürich\tnow ");
        assert_eq!(w, vec![("Hi".into(), 2, 4), ("Zürich".into(), 6, 12), ("now".into(), 13, 16)]);
        assert!(split_words("   ").is_empty());
    }
}
