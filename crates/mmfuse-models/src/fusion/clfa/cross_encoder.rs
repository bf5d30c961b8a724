//! CLFA's cross encoder: `k` post-LN layers (as in BERT), each
//! text self-attention → text-to-image cross-attention → (optional) text-to-OCR cross-attention
//! → feed-forward (GELU), every block with a residual connection and LayerNorm (eps 1e-12). The
//! text stream is the query stream; image and OCR tokens are only read as keys/values. The
//! text self-attention optionally adds a per-key bias (affective lexicon weights).
//!
//! Paper: CLFA (CLIP-guided contrastive-learning-based feature alignment, LREC-COLING 2024, arXiv 2403.06355),
//! shared/METHODS.md §2 "Fusion" (the k-layer cross encoder; the lexicon biases are SenticNet's); no section or
//! equation numbers in our sources.
//!
//! Every block's attention is the shared [`MaskedAttention`] (padded keys get exactly zero
//! weight).

use crate::layers::attention::zero_without_keys;
pub use crate::layers::attention::{MASK_BIAS, MaskedAttention};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Bool, Device, Tensor};
use mmfuse_kernels::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearActivation, LinearConfig};

/// Configuration of [`CrossEncoder`] (paper values marked "paper:").
#[derive(Config, Debug)]
pub struct CrossEncoderConfig {
    /// Width of both streams; equals the encoders' `d_model` (paper: 512).
    pub d_model: usize,
    /// Attention heads (paper: 8). Default 8.
    #[config(default = 8)]
    pub n_heads: usize,
    /// Feed-forward size (paper: 2048). Default 2048.
    #[config(default = 2048)]
    pub d_ff: usize,
    /// Layers k (paper: 3). Default 3.
    #[config(default = 3)]
    pub n_layers: usize,
    /// Dropout on attention weights and after each sub-block (paper: 0.1). Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// LayerNorm epsilon (paper: 1e-12, as BERT). Default 1e-12.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// A text-to-OCR cross-attention block in every layer (the OCR text of the image, encoded
    /// by the text encoder). Default false.
    #[config(default = false)]
    pub ocr: bool,
}

/// One cross-encoder layer: self-attention, cross-attention, feed-forward; post-LN.
#[derive(Module, Debug)]
pub struct CrossEncoderLayer {
    pub self_attention: MaskedAttention,
    pub norm_self: LayerNorm,
    pub cross_attention: MaskedAttention,
    pub norm_cross: LayerNorm,
    /// Text-to-OCR cross-attention (when the config's `ocr` is on).
    pub ocr_attention: Option<MaskedAttention>,
    pub norm_ocr: Option<LayerNorm>,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub norm_ffn: LayerNorm,
    pub dropout: Dropout,
}

impl CrossEncoderLayer {
    pub fn new(c: &CrossEncoderConfig, device: &Device) -> Self {
        let norm = || LayerNormConfig::new(c.d_model).with_epsilon(c.layer_norm_eps).init(device);
        CrossEncoderLayer {
            self_attention: MaskedAttention::new(c.d_model, c.n_heads, c.dropout, device),
            norm_self: norm(),
            cross_attention: MaskedAttention::new(c.d_model, c.n_heads, c.dropout, device),
            norm_cross: norm(),
            ocr_attention: c.ocr.then(|| MaskedAttention::new(c.d_model, c.n_heads, c.dropout, device)),
            norm_ocr: c.ocr.then(norm),
            ffn_in: LinearConfig::new(c.d_model, c.d_ff).init(device),
            ffn_out: LinearConfig::new(c.d_ff, c.d_model).init(device),
            norm_ffn: norm(),
            dropout: DropoutConfig::new(c.dropout).init(),
        }
    }

    /// `x` `[B, Lx, d]` (mask `[B, Lx]`) attends to itself, then to `other` `[B, Lo, d]`
    /// (mask `[B, Lo]`), then goes through the feed-forward block. Returns `[B, Lx, d]`.
    pub fn forward(&self, x: Tensor<3>, x_mask: Tensor<2, Bool>, other: Tensor<3>, other_mask: Tensor<2, Bool>) -> Tensor<3> {
        self.forward_full(x, x_mask, other, other_mask, None, None)
    }

    /// [`CrossEncoderLayer::forward`] with the optional OCR tokens `[B, Lo, d]` (mask
    /// `[B, Lo]`), read by the OCR block when the layer has one, and an optional additive bias
    /// `[B, Lx]` on the self-attention scores of each text key.
    pub fn forward_full(
        &self,
        x: Tensor<3>,
        x_mask: Tensor<2, Bool>,
        other: Tensor<3>,
        other_mask: Tensor<2, Bool>,
        ocr: Option<(Tensor<3>, Tensor<2, Bool>)>,
        self_bias: Option<Tensor<2>>,
    ) -> Tensor<3> {
        let (a, _) = self.self_attention.self_attention_biased(x.clone(), x_mask, self_bias);
        let x = self.norm_self.forward(x + self.dropout.forward(a));
        // the other modality may be absent (all keys masked): then nothing is read from it
        let a = zero_without_keys(self.cross_attention.forward(x.clone(), other, other_mask.clone()), &other_mask);
        let mut x = self.norm_cross.forward(x + self.dropout.forward(a));
        if let (Some(att), Some(norm)) = (&self.ocr_attention, &self.norm_ocr) {
            let (o, o_mask) = ocr.expect("this cross encoder has an OCR block: the batch needs OCR tokens (data with an `ocr` field)");
            let a = att.forward(x.clone(), o, o_mask);
            x = norm.forward(x + self.dropout.forward(a));
        }
        let f = self.ffn_out.forward(self.ffn_in.forward_activated(x.clone(), LinearActivation::Gelu));
        self.norm_ffn.forward(x + self.dropout.forward(f))
    }
}

/// The stack of `k` [`CrossEncoderLayer`]s.
#[derive(Module, Debug)]
pub struct CrossEncoder {
    pub layers: Vec<CrossEncoderLayer>,
}

impl CrossEncoderConfig {
    pub fn init(&self, device: &Device) -> CrossEncoder {
        CrossEncoder { layers: (0..self.n_layers).map(|_| CrossEncoderLayer::new(self, device)).collect() }
    }
}

impl CrossEncoder {
    /// Text tokens `[B, Lt, d]` (mask `[B, Lt]`) fused with image tokens `[B, Li, d]`
    /// (mask `[B, Li]`) → text tokens `[B, Lt, d]`.
    pub fn forward(&self, text: Tensor<3>, text_mask: Tensor<2, Bool>, image: Tensor<3>, image_mask: Tensor<2, Bool>) -> Tensor<3> {
        self.forward_full(text, text_mask, image, image_mask, None, None)
    }

    /// [`CrossEncoder::forward`] with the optional OCR stream and text self-attention bias (see
    /// [`CrossEncoderLayer::forward_full`]).
    pub fn forward_full(
        &self,
        text: Tensor<3>,
        text_mask: Tensor<2, Bool>,
        image: Tensor<3>,
        image_mask: Tensor<2, Bool>,
        ocr: Option<(Tensor<3>, Tensor<2, Bool>)>,
        self_bias: Option<Tensor<2>>,
    ) -> Tensor<3> {
        let mut x = text;
        for layer in &self.layers {
            x = layer.forward_full(x, text_mask.clone(), image.clone(), image_mask.clone(), ocr.clone(), self_bias.clone());
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::attention::tests::{mask, replace_padding};
    use burn::tensor::Distribution;

    #[test]
    fn encoder_shape_and_padding_invariance() {
        let d = Device::flex();
        d.seed(5);
        let enc = CrossEncoderConfig::new(8).with_n_heads(2).with_d_ff(16).with_n_layers(2).with_dropout(0.0).init(&d);
        let text = Tensor::<3>::random([2, 4, 8], Distribution::Normal(0.0, 1.0), &d);
        let image = Tensor::<3>::random([2, 6, 8], Distribution::Normal(0.0, 1.0), &d);
        let tm = mask(&[&[true, true, true, false], &[true, true, false, false]], &d);
        let im = mask(&[&[true; 6], &[true, true, true, true, false, false]], &d);
        let out = enc.forward(text.clone(), tm.clone(), image.clone(), im.clone());
        assert_eq!(out.dims(), [2, 4, 8]);
        // junk at padded text and image positions leaves the real text positions unchanged
        let text2 = replace_padding(text, tm.clone(), Tensor::random([2, 4, 8], Distribution::Normal(0.0, 50.0), &d));
        let image2 = replace_padding(image, im.clone(), Tensor::random([2, 6, 8], Distribution::Normal(0.0, 50.0), &d));
        let out2 = enc.forward(text2, tm.clone(), image2, im);
        let real = |o: Tensor<3>| replace_padding(o, tm.clone(), Tensor::zeros([2, 4, 8], &d)).into_data().try_to_vec::<f32>().unwrap();
        let (a, b) = (real(out), real(out2));
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "max difference at real positions {diff}");
    }

    #[test]
    fn the_ocr_block_reads_only_real_ocr_tokens() {
        let d = Device::flex();
        d.seed(13);
        let enc = CrossEncoderConfig::new(8).with_n_heads(2).with_d_ff(16).with_n_layers(2).with_dropout(0.0).with_ocr(true).init(&d);
        assert!(enc.layers.iter().all(|l| l.ocr_attention.is_some()));
        let text = Tensor::<3>::random([2, 4, 8], Distribution::Normal(0.0, 1.0), &d);
        let image = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &d);
        let tm = mask(&[&[true; 4], &[true, true, true, false]], &d);
        let im = mask(&[&[true; 3], &[true; 3]], &d);
        let ocr = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &d);
        let om = mask(&[&[true, true, false, false, false], &[true, true, true, true, false]], &d);
        let run = |o: Tensor<3>| {
            enc.forward_full(text.clone(), tm.clone(), image.clone(), im.clone(), Some((o, om.clone())), None).into_data().try_to_vec::<f32>().unwrap()
        };
        let a = run(ocr.clone());
        // junk at padded OCR positions changes nothing; different real OCR tokens change the output
        let b = run(replace_padding(ocr.clone(), om.clone(), Tensor::random([2, 5, 8], Distribution::Normal(0.0, 50.0), &d)));
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "padded OCR tokens leak: {diff}");
        let c = run(Tensor::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &d));
        let diff = a.iter().zip(&c).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff > 1e-3, "the OCR tokens are ignored");
    }
}
