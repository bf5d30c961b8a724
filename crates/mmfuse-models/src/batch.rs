//! The tensors a model consumes: one [`Batch`] of posts (text ids + mask, images, targets).
//!
//! Building a batch from samples (tokenising, decoding images) is the data crate's and the
//! trainer's job; this type only fixes the layout every model agrees on.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

/// What a batch is scored against.
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
}

impl HostBatch {
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
        Batch { ids, mask, images, targets, words }
    }
}
