//! The tensors a model consumes: one [`Batch`] of posts (text ids + mask, images, targets,
//! which modalities each post has).
//!
//! An absent modality is a state of the batch, not a picture: [`Batch::present`] says, per
//! post, whether its text and its image are there. The tensors keep their shapes (an absent
//! image's pixels are the grey placeholder, an absent text's ids whatever was tokenised), so
//! every model must read the presence flags where it fuses; the helpers below give the masks
//! and row weights the fusion methods use.
//!
//! Building a batch from samples (tokenising, decoding images) is the data crate's and the
//! trainer's job; this type only fixes the layout every model agrees on.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

/// What a batch is scored against.
// one per batch, moved rarely: boxing the tag tensors would buy nothing
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Targets {
    /// No targets (prediction).
    None,
    /// One class index per sample, `[B]`.
    Class(Tensor<1, Int>),
    /// One tag index per token position, `[B, L]`; `scored` is true where a position carries a
    /// label (the first word piece of each word), false at `[CLS]`, padding and continuation
    /// pieces.
    Tags { tags: Tensor<2, Int>, scored: Tensor<2, Bool> },
}

/// A batch of text+image posts.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Token ids `[B, L]`.
    pub ids: Tensor<2, Int>,
    /// True at real tokens, false at padding `[B, L]`.
    pub mask: Tensor<2, Bool>,
    /// Images, normalised, `[B, 3, H, W]`.
    pub images: Tensor<4>,
    /// Targets, if any.
    pub targets: Targets,
    /// For taggers: the position of each word's first piece, left-aligned `[B, L]` (padded with
    /// 0), and which of those slots are real words `[B, L]` (a prefix of each row). CRF heads
    /// run over these word sequences.
    pub words: Option<(Tensor<2, Int>, Tensor<2, Bool>)>,
    /// MuSE's captioning targets: the post's own words over the caption vocabulary
    /// (`[SOS] w… [EOS]`, padded) `[B, Tc]` and their mask `[B, Tc]`.
    pub captions: Option<(Tensor<2, Int>, Tensor<2, Bool>)>,
    /// CLFA's teacher: frozen CLIP text and image embeddings of each post `[B, P]` each
    /// (precomputed once, read from the run's cache).
    pub teacher: Option<(Tensor<2>, Tensor<2>)>,
    /// CLFA's OCR stream: the image's OCR text as token ids `[B, Lo]` and mask `[B, Lo]`.
    pub ocr: Option<(Tensor<2, Int>, Tensor<2, Bool>)>,
    /// CLFA's lexicon weights: per text position, the |polarity| of its word in an affective
    /// lexicon (0 for words not in it, specials and padding) `[B, L]`.
    pub lexicon: Option<Tensor<2>>,
    /// Which modalities each post has; `None`: every post has both.
    pub present: Option<Presence>,
}

/// Per post, whether its text and its image are there: 1.0 present, 0.0 absent, `[B]` each.
#[derive(Clone, Debug)]
pub struct Presence {
    pub text: Tensor<1>,
    pub image: Tensor<1>,
}

impl Batch {
    /// 1.0 / 0.0 per post whether its image is there `[B]`; `None`: all are.
    pub fn image_present(&self) -> Option<Tensor<1>> {
        self.present.as_ref().map(|p| p.image.clone())
    }

    /// 1.0 / 0.0 per post whether its text is there `[B]`; `None`: all are.
    pub fn text_present(&self) -> Option<Tensor<1>> {
        self.present.as_ref().map(|p| p.text.clone())
    }

    /// Key-padding mask `[B, n]` of `n` image tokens: true for every token of a post that has
    /// its image, false for all tokens of a post without.
    pub fn image_token_mask(&self, n: usize) -> Tensor<2, Bool> {
        let b = self.ids.dims()[0];
        match self.image_present() {
            None => Tensor::<2, Bool>::full([b, n], true, &self.ids.device()),
            Some(p) => p.greater_elem(0.5).reshape([b, 1]).expand([b, n]),
        }
    }

    /// The text mask as fusion sees it `[B, L]`: [`Batch::mask`], all false for a post whose text
    /// is absent (the text encoder itself still reads `mask`).
    pub fn fusion_text_mask(&self) -> Tensor<2, Bool> {
        match self.text_present() {
            None => self.mask.clone(),
            Some(p) => {
                let [b, l] = self.mask.dims();
                self.mask.clone().bool_and(p.greater_elem(0.5).reshape([b, 1]).expand([b, l]))
            }
        }
    }
}

/// `x` `[B, d]` with the rows of absent posts zeroed (`present` `[B]` of 1.0 / 0.0; `None`
/// leaves `x` as it is).
pub fn zero_absent_rows(x: Tensor<2>, present: Option<Tensor<1>>) -> Tensor<2> {
    match present {
        None => x,
        Some(p) => {
            let [b, d] = x.dims();
            x * p.reshape([b, 1]).expand([b, d])
        }
    }
}

/// Host-side batch, before it is moved to a device (built on data-loading threads).
#[derive(Clone, Debug, Default)]
pub struct HostBatch {
    pub batch_size: usize,
    pub seq_len: usize,
    pub image_size: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<bool>,
    pub images: Vec<f32>,
    pub classes: Option<Vec<i64>>,
    pub tags: Option<(Vec<i64>, Vec<bool>)>,
    /// Word first-piece positions, left-aligned, and their mask (see [`Batch::words`]).
    pub words: Option<(Vec<i64>, Vec<bool>)>,
    /// Caption ids and mask `[B·Tc]` with their length `Tc` (see [`Batch::captions`]).
    pub captions: Option<(Vec<i64>, Vec<bool>, usize)>,
    /// Teacher text and image embeddings `[B·P]` each, with `P` (see [`Batch::teacher`]).
    pub teacher: Option<(Vec<f32>, Vec<f32>, usize)>,
    /// OCR ids and mask `[B·Lo]` with `Lo` (see [`Batch::ocr`]).
    pub ocr: Option<(Vec<i64>, Vec<bool>, usize)>,
    /// Lexicon weights `[B·L]` (see [`Batch::lexicon`]).
    pub lexicon: Option<Vec<f32>>,
    /// Per post, whether its image / its text is absent `[B]` each (see [`Batch::present`]);
    /// `None`: none is.
    pub absent: Option<(Vec<bool>, Vec<bool>)>,
}

impl HostBatch {
    /// Mark post `i` as having no image (`image`) and/or no text (`text`).
    pub fn mark_absent(&mut self, i: usize, image: bool, text: bool) {
        if !image && !text {
            return;
        }
        let n = self.batch_size;
        let (im, tx) = self.absent.get_or_insert_with(|| (vec![false; n], vec![false; n]));
        im[i] |= image;
        tx[i] |= text;
    }

    /// Whether post `i` has its image / its text.
    pub fn has(&self, i: usize) -> (bool, bool) {
        self.absent.as_ref().map_or((true, true), |(im, tx)| (!im[i], !tx[i]))
    }

    /// Fill [`HostBatch::words`] from per-position first-piece flags `[B·L]`.
    pub fn set_word_positions(&mut self, first_piece: &[bool]) {
        let l = self.seq_len;
        let mut pos = vec![0i64; self.batch_size * l];
        let mut mask = vec![false; self.batch_size * l];
        for b in 0..self.batch_size {
            let mut k = 0;
            for p in 0..l {
                if first_piece[b * l + p] {
                    pos[b * l + k] = p as i64;
                    mask[b * l + k] = true;
                    k += 1;
                }
            }
        }
        self.words = Some((pos, mask));
    }

    /// Drop the trailing padding columns that every sample shares: the sequence length becomes
    /// the longest real text of the batch (at least 1). Models mask padding, so this changes
    /// only the work, not the result (up to float summation order); word positions stay valid.
    pub fn trim_padding(&mut self) {
        let (b, l) = (self.batch_size, self.seq_len);
        let keep = (0..b).filter_map(|i| self.mask[i * l..(i + 1) * l].iter().rposition(|&m| m)).max().map_or(1, |p| p + 1);
        if keep >= l {
            return;
        }
        fn cut<T: Copy>(v: &[T], b: usize, l: usize, keep: usize) -> Vec<T> {
            (0..b).flat_map(|i| v[i * l..i * l + keep].iter().copied()).collect()
        }
        self.ids = cut(&self.ids, b, l, keep);
        self.mask = cut(&self.mask, b, l, keep);
        if let Some((t, s)) = &self.tags {
            self.tags = Some((cut(t, b, l, keep), cut(s, b, l, keep)));
        }
        if let Some((p, m)) = &self.words {
            self.words = Some((cut(p, b, l, keep), cut(m, b, l, keep)));
        }
        if let Some(w) = &self.lexicon {
            self.lexicon = Some(cut(w, b, l, keep));
        }
        self.seq_len = keep;
    }

    /// Set the caption targets from per-sample id lists (each `[SOS] … [EOS]`), padded with 0 to
    /// the longest.
    pub fn set_captions(&mut self, captions: &[&[i64]]) {
        let t = captions.iter().map(|c| c.len()).max().unwrap_or(0).max(2);
        let mut ids = vec![0i64; captions.len() * t];
        let mut mask = vec![false; captions.len() * t];
        for (b, c) in captions.iter().enumerate() {
            ids[b * t..b * t + c.len()].copy_from_slice(c);
            mask[b * t..b * t + c.len()].iter_mut().for_each(|m| *m = true);
        }
        self.captions = Some((ids, mask, t));
    }

    /// Split into up to `n` consecutive shards of (nearly) equal size, for data parallelism.
    pub fn split(&self, n: usize) -> Vec<HostBatch> {
        let n = n.clamp(1, self.batch_size.max(1));
        let (l, px) = (self.seq_len, 3 * self.image_size * self.image_size);
        let base = self.batch_size / n;
        let extra = self.batch_size % n;
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        for i in 0..n {
            let size = base + usize::from(i < extra);
            let r = start..start + size;
            out.push(HostBatch {
                batch_size: size,
                seq_len: l,
                image_size: self.image_size,
                ids: self.ids[r.start * l..r.end * l].to_vec(),
                mask: self.mask[r.start * l..r.end * l].to_vec(),
                images: self.images[r.start * px..r.end * px].to_vec(),
                classes: self.classes.as_ref().map(|c| c[r.clone()].to_vec()),
                tags: self.tags.as_ref().map(|(t, s)| (t[r.start * l..r.end * l].to_vec(), s[r.start * l..r.end * l].to_vec())),
                words: self.words.as_ref().map(|(p, m)| (p[r.start * l..r.end * l].to_vec(), m[r.start * l..r.end * l].to_vec())),
                captions: self.captions.as_ref().map(|(c, m, t)| (c[r.start * t..r.end * t].to_vec(), m[r.start * t..r.end * t].to_vec(), *t)),
                teacher: self.teacher.as_ref().map(|(t, i, p)| (t[r.start * p..r.end * p].to_vec(), i[r.start * p..r.end * p].to_vec(), *p)),
                ocr: self.ocr.as_ref().map(|(o, m, lo)| (o[r.start * lo..r.end * lo].to_vec(), m[r.start * lo..r.end * lo].to_vec(), *lo)),
                lexicon: self.lexicon.as_ref().map(|w| w[r.start * l..r.end * l].to_vec()),
                absent: self.absent.as_ref().map(|(im, tx)| (im[r.clone()].to_vec(), tx[r.clone()].to_vec())),
            });
            start += size;
        }
        out
    }

    /// Move to `device` as tensors.
    pub fn to_device(&self, device: &Device) -> Batch {
        let (b, l, s) = (self.batch_size, self.seq_len, self.image_size);
        let ids = Tensor::from_data(TensorData::new(self.ids.clone(), [b, l]), device);
        let mask = Tensor::from_data(TensorData::new(self.mask.clone(), [b, l]), device);
        let images = Tensor::from_data(TensorData::new(self.images.clone(), [b, 3, s, s]), device);
        let targets = if let Some(c) = &self.classes {
            Targets::Class(Tensor::from_data(TensorData::new(c.clone(), [b]), device))
        } else if let Some((t, sc)) = &self.tags {
            Targets::Tags {
                tags: Tensor::from_data(TensorData::new(t.clone(), [b, l]), device),
                scored: Tensor::from_data(TensorData::new(sc.clone(), [b, l]), device),
            }
        } else {
            Targets::None
        };
        let words = self
            .words
            .as_ref()
            .map(|(p, m)| (Tensor::from_data(TensorData::new(p.clone(), [b, l]), device), Tensor::from_data(TensorData::new(m.clone(), [b, l]), device)));
        let captions = self
            .captions
            .as_ref()
            .map(|(c, m, t)| (Tensor::from_data(TensorData::new(c.clone(), [b, *t]), device), Tensor::from_data(TensorData::new(m.clone(), [b, *t]), device)));
        let teacher = self
            .teacher
            .as_ref()
            .map(|(t, i, p)| (Tensor::from_data(TensorData::new(t.clone(), [b, *p]), device), Tensor::from_data(TensorData::new(i.clone(), [b, *p]), device)));
        let ocr = self.ocr.as_ref().map(|(o, m, lo)| {
            (Tensor::from_data(TensorData::new(o.clone(), [b, *lo]), device), Tensor::from_data(TensorData::new(m.clone(), [b, *lo]), device))
        });
        let lexicon = self.lexicon.as_ref().map(|w| Tensor::from_data(TensorData::new(w.clone(), [b, l]), device));
        let present = self.absent.as_ref().map(|(im, tx)| {
            let flags = |v: &[bool]| Tensor::from_data(TensorData::new(v.iter().map(|&a| if a { 0.0f32 } else { 1.0 }).collect::<Vec<_>>(), [b]), device);
            Presence { text: flags(tx), image: flags(im) }
        });
        Batch { ids, mask, images, targets, words, captions, teacher, ocr, lexicon, present }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_padding_keeps_the_longest_text_and_all_targets() {
        // two rows of 6 positions with 2 and 4 real tokens
        let mut hb = HostBatch { batch_size: 2, seq_len: 6, image_size: 1, ..Default::default() };
        hb.ids = vec![2, 5, 0, 0, 0, 0, 2, 7, 8, 9, 0, 0];
        hb.mask = hb.ids.iter().map(|&x| x != 0).collect();
        let scored: Vec<bool> = (0..12).map(|i| hb.mask[i] && i % 6 != 0).collect();
        hb.tags = Some(((0..12).collect(), scored.clone()));
        hb.set_word_positions(&scored);
        hb.trim_padding();
        assert_eq!(hb.seq_len, 4);
        assert_eq!(hb.ids, [2, 5, 0, 0, 2, 7, 8, 9]);
        assert_eq!(hb.mask, [true, true, false, false, true, true, true, true]);
        assert_eq!(hb.tags.as_ref().unwrap().0, [0, 1, 2, 3, 6, 7, 8, 9]);
        let (pos, m) = hb.words.as_ref().unwrap();
        assert_eq!(pos, &[1, 0, 0, 0, 1, 2, 3, 0]);
        assert_eq!(m, &[true, false, false, false, true, true, true, false]);
        // nothing to trim: unchanged
        let before = hb.ids.clone();
        hb.trim_padding();
        assert_eq!((hb.seq_len, &hb.ids), (4, &before));
    }
}

/// A batch of word-aligned text / audio / video segments (MIM on CMU-MOSI/MOSEI). Every row is
/// padded to the model's fixed length `L` (position 0 is `[CLS]`, with zero audio/video rows).
#[derive(Clone, Debug)]
pub struct AlignedBatch {
    /// Token ids `[B, L]`.
    pub ids: Tensor<2, Int>,
    /// True at real tokens `[B, L]`.
    pub mask: Tensor<2, Bool>,
    /// Acoustic features aligned with the tokens `[B, L, A]`.
    pub audio: Tensor<3>,
    /// Visual features aligned with the tokens `[B, L, V]`.
    pub video: Tensor<3>,
    /// Sentiment labels `[B]`, if any.
    pub labels: Option<Tensor<1>>,
    /// Per segment, 1.0 / 0.0 whether its audio and its video are there (`[B]` each); `None`:
    /// every segment has both. An absent modality's feature rows are zeros.
    pub present: Option<AlignedPresence>,
}

/// Which of the non-text modalities each segment has (the words define the alignment, so a
/// segment always has its text).
#[derive(Clone, Debug)]
pub struct AlignedPresence {
    pub audio: Tensor<1>,
    pub video: Tensor<1>,
}

/// Host-side [`AlignedBatch`].
#[derive(Clone, Debug, Default)]
pub struct AlignedHostBatch {
    pub batch_size: usize,
    pub seq_len: usize,
    pub audio_dim: usize,
    pub video_dim: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<bool>,
    pub audio: Vec<f32>,
    pub video: Vec<f32>,
    pub labels: Option<Vec<f32>>,
    /// Per segment, whether its audio / its video is absent `[B]` each; `None`: none is.
    pub absent: Option<(Vec<bool>, Vec<bool>)>,
}

impl AlignedHostBatch {
    /// Mark segment `i` as having no audio and/or no video: the flags are set and its feature
    /// rows zeroed, so nothing of the dropped modality reaches the model.
    pub fn mark_absent(&mut self, i: usize, audio: bool, video: bool) {
        if !audio && !video {
            return;
        }
        let n = self.batch_size;
        let (a, v) = self.absent.get_or_insert_with(|| (vec![false; n], vec![false; n]));
        a[i] |= audio;
        v[i] |= video;
        let (l, da, dv) = (self.seq_len, self.audio_dim, self.video_dim);
        if audio {
            self.audio[i * l * da..(i + 1) * l * da].fill(0.0);
        }
        if video {
            self.video[i * l * dv..(i + 1) * l * dv].fill(0.0);
        }
    }

    /// Whether segment `i` has its audio / its video.
    pub fn has(&self, i: usize) -> (bool, bool) {
        self.absent.as_ref().map_or((true, true), |(a, v)| (!a[i], !v[i]))
    }

    pub fn to_device(&self, device: &Device) -> AlignedBatch {
        let (b, l) = (self.batch_size, self.seq_len);
        let flags = |v: &[bool]| Tensor::from_data(TensorData::new(v.iter().map(|&a| if a { 0.0f32 } else { 1.0 }).collect::<Vec<_>>(), [b]), device);
        AlignedBatch {
            ids: Tensor::from_data(TensorData::new(self.ids.clone(), [b, l]), device),
            mask: Tensor::from_data(TensorData::new(self.mask.clone(), [b, l]), device),
            audio: Tensor::from_data(TensorData::new(self.audio.clone(), [b, l, self.audio_dim]), device),
            video: Tensor::from_data(TensorData::new(self.video.clone(), [b, l, self.video_dim]), device),
            labels: self.labels.as_ref().map(|y| Tensor::from_data(TensorData::new(y.clone(), [b]), device)),
            present: self.absent.as_ref().map(|(a, v)| AlignedPresence { audio: flags(a), video: flags(v) }),
        }
    }
}
