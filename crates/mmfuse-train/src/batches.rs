//! From samples on disk to model-ready examples and batches: tokenisation, label indices,
//! word-to-position alignment for tagging, and batch assembly (with image decoding) on a
//! background thread so the training thread only computes.

use anyhow::{Context, Result, bail};
use mmfuse_data::cls::ClsSample;
use mmfuse_data::conll::NerSample;
use mmfuse_data::image::ImageLoader;
use mmfuse_data::labels::LabelMap;
use mmfuse_data::lexicon::Lexicon;
use mmfuse_data::text::TextTokenizer;
use mmfuse_models::batch::{AlignedHostBatch, HostBatch};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

/// What an example is scored against.
#[derive(Clone, Debug)]
pub enum Gold {
    /// Class index.
    Class(usize),
    /// Word-level gold tags, and per position the tag index (first pieces only).
    Tags { words: Vec<String>, position_tags: Vec<i64>, scored: Vec<bool> },
}

/// One model-ready example.
#[derive(Clone, Debug)]
pub struct Example {
    pub id: String,
    pub ids: Vec<i64>,
    pub mask: Vec<bool>,
    pub image: PathBuf,
    pub gold: Option<Gold>,
    /// For each word of a tagging example, the position of its first piece (None: truncated).
    pub word_pos: Vec<Option<usize>>,
    /// MuSE's captioning target: the post's words over the caption vocabulary, `[SOS] … [EOS]`
    /// (empty when the model has no captioning decoder).
    pub caption: Vec<i64>,
    /// CLFA's teacher embeddings (CLIP text, CLIP image) of the post, when the run uses them.
    pub teacher: Option<(Vec<f32>, Vec<f32>)>,
    /// CLFA's OCR stream: the image's OCR text encoded (ids, mask), when the run reads it.
    pub ocr: Option<(Vec<i64>, Vec<bool>)>,
    /// CLFA's lexicon weights per text position, when the run uses a lexicon.
    pub lexicon: Option<Vec<f32>>,
}

/// The image file of a classification sample: its `image` (relative to the data folder unless
/// absolute), else `<image_dir>/<id>.jpg`.
pub fn cls_image_path(s: &ClsSample, data_dir: &Path, image_dir: &Path) -> PathBuf {
    match &s.image {
        Some(p) if Path::new(p).is_absolute() => PathBuf::from(p),
        Some(p) => data_dir.join(p),
        None => image_dir.join(format!("{}.jpg", s.id)),
    }
}

/// Counts reported at the end of a run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PrepReport {
    pub examples: usize,
    /// Words cut by `max_len` (their gold entities count as missed).
    pub truncated_words: usize,
    /// Texts cut by `max_len`.
    pub truncated_texts: usize,
}

/// Image path of a NER sample: `<image_dir>/<id>.png` or `.jpg` (the first that exists; `.jpg`
/// when neither does, so the error or placeholder names the conventional file).
pub fn ner_image_path(image_dir: &Path, id: &str) -> PathBuf {
    for ext in ["png", "jpg", "jpeg"] {
        let p = image_dir.join(format!("{id}.{ext}"));
        if p.exists() {
            return p;
        }
    }
    image_dir.join(format!("{id}.jpg"))
}

/// Tagging examples from NER samples.
pub fn ner_examples(samples: &[NerSample], enc: &TextTokenizer, tags: &LabelMap, image_dir: &Path) -> Result<(Vec<Example>, PrepReport)> {
    let mut rep = PrepReport::default();
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let e = enc.encode_words(&s.words);
        let l = e.ids.len();
        let mut position_tags = vec![0i64; l];
        let mut scored = vec![false; l];
        let mut word_pos = vec![None; s.words.len()];
        for p in 0..l {
            if let (Some(w), true) = (e.word_index[p], e.first_piece[p]) {
                let t = tags.index(&s.tags[w]).with_context(|| format!("sample {}: tag '{}' not in the label map", s.id, s.tags[w]))?;
                position_tags[p] = t as i64;
                scored[p] = true;
                word_pos[w] = Some(p);
            }
        }
        let cut = word_pos.iter().filter(|p| p.is_none()).count();
        if cut > 0 {
            rep.truncated_words += cut;
            rep.truncated_texts += 1;
        }
        out.push(Example {
            id: s.id.clone(),
            ids: e.ids.iter().map(|&x| x as i64).collect(),
            mask: e.mask,
            image: ner_image_path(image_dir, &s.id),
            gold: Some(Gold::Tags { words: s.tags.clone(), position_tags, scored }),
            word_pos,
            caption: vec![],
            teacher: None,
            ocr: None,
            lexicon: None,
        });
    }
    rep.examples = out.len();
    Ok((out, rep))
}

/// Classification examples.
pub fn cls_examples(samples: &[ClsSample], enc: &TextTokenizer, labels: &LabelMap, data_dir: &Path, image_dir: &Path) -> Result<(Vec<Example>, PrepReport)> {
    let mut rep = PrepReport::default();
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let e = enc.encode(&s.text);
        if e.truncated {
            rep.truncated_texts += 1;
        }
        let class = labels
            .index(&s.label)
            .with_context(|| format!("sample {} (line {}): unknown label '{}'; known labels: {}", s.id, s.line, s.label, labels.names().join(", ")))?;
        let image = cls_image_path(s, data_dir, image_dir);
        out.push(Example {
            id: s.id.clone(),
            ids: e.ids.iter().map(|&x| x as i64).collect(),
            mask: e.mask,
            image,
            gold: Some(Gold::Class(class)),
            word_pos: vec![],
            caption: vec![],
            teacher: None,
            ocr: None,
            lexicon: None,
        });
    }
    rep.examples = out.len();
    Ok((out, rep))
}

/// CLFA's extra streams of classification examples (same order as `samples`): the OCR text
/// encoded with `ocr` (a missing OCR text is encoded as empty and counted), and per-position
/// lexicon weights. Returns the number of samples without OCR text.
pub fn attach_clfa_streams(examples: &mut [Example], samples: &[ClsSample], ocr: Option<&TextTokenizer>, lexicon: Option<(&Lexicon, &TextTokenizer)>) -> usize {
    let mut no_ocr = 0;
    for (e, s) in examples.iter_mut().zip(samples) {
        if let Some(enc) = ocr {
            no_ocr += usize::from(s.ocr.as_deref().is_none_or(|o| o.trim().is_empty()));
            let o = enc.encode(s.ocr.as_deref().unwrap_or(""));
            e.ocr = Some((o.ids.iter().map(|&x| x as i64).collect(), o.mask));
        }
        if let Some((lex, enc)) = lexicon {
            let words: Vec<String> = s.text.split_whitespace().map(str::to_string).collect();
            let w = enc.encode_words(&words);
            // the same pieces as the text's own encoding, else no weights for this post
            let ids: Vec<i64> = w.ids.iter().map(|&x| x as i64).collect();
            e.lexicon = Some(if ids == e.ids { lex.position_weights(&words, &w.word_index) } else { vec![0.0; e.ids.len()] });
        }
    }
    no_ocr
}

/// Assemble a host batch from examples (decoding their images); with `trim`, padding columns
/// that all samples share are dropped ([`HostBatch::trim_padding`]).
pub fn host_batch(examples: &[&Example], loader: &ImageLoader, trim: bool) -> Result<HostBatch> {
    if examples.is_empty() {
        bail!("empty batch");
    }
    let l = examples[0].ids.len();
    let size = loader.spec().size as usize;
    let paths: Vec<PathBuf> = examples.iter().map(|e| e.image.clone()).collect();
    let images = loader.load_many_flagged(&paths)?;
    let mut hb = HostBatch { batch_size: examples.len(), seq_len: l, image_size: size, ..Default::default() };
    for (i, (e, (img, absent))) in examples.iter().zip(images).enumerate() {
        hb.ids.extend_from_slice(&e.ids);
        hb.mask.extend_from_slice(&e.mask);
        hb.images.extend_from_slice(&img);
        hb.mark_absent(i, absent, false);
    }
    match examples[0].gold {
        Some(Gold::Class(_)) => {
            hb.classes = Some(
                examples
                    .iter()
                    .map(|e| match e.gold {
                        Some(Gold::Class(c)) => c as i64,
                        _ => 0,
                    })
                    .collect(),
            );
        }
        Some(Gold::Tags { .. }) => {
            let mut t = Vec::with_capacity(examples.len() * l);
            let mut s = Vec::with_capacity(examples.len() * l);
            for e in examples {
                if let Some(Gold::Tags { position_tags, scored, .. }) = &e.gold {
                    t.extend_from_slice(position_tags);
                    s.extend_from_slice(scored);
                }
            }
            hb.set_word_positions(&s);
            hb.tags = Some((t, s));
        }
        None => {}
    }
    if !examples[0].caption.is_empty() {
        let caps: Vec<&[i64]> = examples.iter().map(|e| e.caption.as_slice()).collect();
        hb.set_captions(&caps);
    }
    if examples.iter().all(|e| e.teacher.is_some()) {
        let p = examples[0].teacher.as_ref().map_or(0, |t| t.0.len());
        let text = examples.iter().flat_map(|e| e.teacher.as_ref().unwrap().0.iter().copied()).collect();
        let image = examples.iter().flat_map(|e| e.teacher.as_ref().unwrap().1.iter().copied()).collect();
        hb.teacher = Some((text, image, p));
    }
    if examples.iter().all(|e| e.ocr.is_some()) {
        let lo = examples[0].ocr.as_ref().map_or(0, |o| o.0.len());
        hb.ocr = Some((
            examples.iter().flat_map(|e| e.ocr.as_ref().unwrap().0.iter().copied()).collect(),
            examples.iter().flat_map(|e| e.ocr.as_ref().unwrap().1.iter().copied()).collect(),
            lo,
        ));
    }
    if examples.iter().all(|e| e.lexicon.is_some()) {
        hb.lexicon = Some(examples.iter().flat_map(|e| e.lexicon.as_ref().unwrap().iter().copied()).collect());
    }
    if trim {
        hb.trim_padding();
    }
    Ok(hb)
}

/// Batches of `examples` in `order`, assembled on a background thread, `ahead` batches ahead
/// (padding trimmed with `trim`, see [`host_batch`]).
pub fn stream_batches(
    examples: Arc<Vec<Example>>,
    order: Vec<usize>,
    batch_size: usize,
    loader: Arc<ImageLoader>,
    ahead: usize,
    trim: bool,
) -> Receiver<Result<HostBatch>> {
    let (tx, rx) = sync_channel(ahead.max(1));
    std::thread::spawn(move || {
        for chunk in order.chunks(batch_size) {
            let refs: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
            let r = host_batch(&refs, &loader, trim);
            let failed = r.is_err();
            if tx.send(r).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// `train.modality_dropout`: per training post, the probabilities that it loses its image, else
/// its text (text + image posts); per MIM segment, that it loses its audio, else its video.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModalityDropout {
    #[serde(default)]
    pub image: f64,
    #[serde(default)]
    pub text: f64,
    #[serde(default)]
    pub audio: f64,
    #[serde(default)]
    pub video: f64,
}

impl ModalityDropout {
    pub fn is_off(&self) -> bool {
        [self.image, self.text, self.audio, self.video].iter().all(|p| *p <= 0.0)
    }
}

/// Two uniform draws in [0, 1) for sample `i` of optimiser step `step` (splitmix64 from the
/// run's seed): a pure function of its arguments, so a resumed run draws the same.
fn modality_draws(seed: u64, step: usize, i: usize) -> (f64, f64) {
    let mut x = seed ^ 0x6D6F_6461_6C69_7479 ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut uniform = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (uniform(), uniform())
}

/// Apply modality dropout to the batch of optimiser step `step`: post `i` draws from
/// `(seed, step, i)` alone, so a resumed run (which replays the same batches at the same steps)
/// drops the same modalities. A post loses its image with probability `p.image`; if it keeps
/// it, it loses its text with probability `p.text`; a post never loses both, and a post that
/// already lacks one keeps the other. Returns (images dropped, texts dropped).
pub fn apply_modality_dropout(hb: &mut HostBatch, p: ModalityDropout, seed: u64, step: usize) -> (usize, usize) {
    let n = hb.batch_size;
    let has: Vec<(bool, bool)> = (0..n).map(|i| hb.has(i)).collect();
    drop_modalities(&has, (p.image, p.text), seed, step, |i, a, b| hb.mark_absent(i, a, b))
}

/// [`apply_modality_dropout`] for MIM segments: audio with probability `p.audio`, else video
/// with probability `p.video` (never both). Returns (audio dropped, video dropped).
pub fn apply_aligned_modality_dropout(hb: &mut AlignedHostBatch, p: ModalityDropout, seed: u64, step: usize) -> (usize, usize) {
    let n = hb.batch_size;
    let has: Vec<(bool, bool)> = (0..n).map(|i| hb.has(i)).collect();
    drop_modalities(&has, (p.audio, p.video), seed, step, |i, a, b| hb.mark_absent(i, a, b))
}

/// The draw of modality dropout over posts that have (first, second) modality `has[i]`: post
/// `i` loses the first with probability `p.0`, else the second with `p.1`, only when it has
/// both; `mark(i, first, second)` records it. Returns how many lost each.
fn drop_modalities(has: &[(bool, bool)], p: (f64, f64), seed: u64, step: usize, mut mark: impl FnMut(usize, bool, bool)) -> (usize, usize) {
    let mut dropped = (0, 0);
    if p.0 <= 0.0 && p.1 <= 0.0 {
        return dropped;
    }
    for (i, &(first, second)) in has.iter().enumerate() {
        let (u0, u1) = modality_draws(seed, step, i);
        if first && second && u0 < p.0 {
            mark(i, true, false);
            dropped.0 += 1;
        } else if first && second && u1 < p.1 {
            mark(i, false, true);
            dropped.1 += 1;
        }
    }
    dropped
}

/// Deterministic shuffle of `0..n` for `epoch` (resume replays the same order).
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(epoch as u64));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over many posts the dropped shares are p₀ and (1 − p₀)·p₁; a post never loses both; a
    /// post that already lacks one modality loses nothing; the same (seed, step) draws the same.
    #[test]
    fn modality_dropout_draws() {
        let n = 20_000;
        let has = vec![(true, true); n];
        let mut marks = Vec::new();
        let (a, b) = drop_modalities(&has, (0.2, 0.3), 7, 11, |i, x, y| marks.push((i, x, y)));
        assert!(((a as f64 / n as f64) - 0.2).abs() < 0.01, "first dropped {a} of {n}");
        assert!(((b as f64 / n as f64) - 0.8 * 0.3).abs() < 0.01, "second dropped {b} of {n}");
        assert!(marks.iter().all(|&(_, x, y)| x != y), "a post lost both or neither");
        let mut again = Vec::new();
        drop_modalities(&has, (0.2, 0.3), 7, 11, |i, x, y| again.push((i, x, y)));
        assert_eq!(marks, again);
        let mut other_step = Vec::new();
        drop_modalities(&has, (0.2, 0.3), 7, 12, |i, x, y| other_step.push((i, x, y)));
        assert_ne!(marks, other_step);
        // posts that already lack a modality keep the other one
        let lacking = vec![(false, true), (true, false)];
        assert_eq!(drop_modalities(&lacking, (0.99, 0.99), 1, 1, |_, _, _| panic!("dropped from a post that lacks one")), (0, 0));
        assert_eq!(drop_modalities(&has, (0.0, 0.0), 1, 1, |_, _, _| panic!("dropped with p = 0")), (0, 0));
    }
}
