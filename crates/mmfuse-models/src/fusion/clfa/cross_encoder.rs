//! CLFA's cross encoder: `k` post-LN layers (as in BERT), each
//! text self-attention → text-to-image cross-attention → (optional) text-to-OCR cross-attention
//! → feed-forward (GELU), every block with a residual connection and LayerNorm (eps 1e-12). The
//! text stream is the query stream; image and OCR tokens are only read as keys/values. The
//! text self-attention optionally adds a per-key bias (affective lexicon weights).
//!
//! Attention is written out here (query/key/value/output `Linear`s) with an explicit additive
//! mask bias: padded keys get `−1e9` added to their scores, so after the softmax their weight
//! is exactly 0 in f32 and their values cannot leak into the output.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Gelu, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};
use crate::dropout::FastDropout;

/// Bias added to the attention scores of masked (padding) keys.
pub const MASK_BIAS: f32 = -1.0e9;

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

/// Multi-head attention of a query sequence over a key/value sequence with a key mask.
#[derive(Module, Debug)]
pub struct MaskedAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub dropout: Dropout,
    pub n_heads: usize,
}

impl MaskedAttention {
    pub fn new(d_model: usize, n_heads: usize, dropout: f64, device: &Device) -> Self {
        assert!(n_heads > 0 && d_model.is_multiple_of(n_heads), "d_model ({d_model}) must be divisible by n_heads ({n_heads})");
        let lin = || LinearConfig::new(d_model, d_model).init(device);
        MaskedAttention { query: lin(), key: lin(), value: lin(), output: lin(), dropout: DropoutConfig::new(dropout).init(), n_heads }
    }

    /// `x` `[B, Lq, d]` attends over `kv` `[B, Lk, d]`; `key_mask` `[B, Lk]` is true at real keys.
    /// Returns the output `[B, Lq, d]`.
    pub fn forward(&self, x: Tensor<3>, kv: Tensor<3>, key_mask: Tensor<2, Bool>) -> Tensor<3> {
        self.forward_with_weights(x, kv, key_mask).0
    }

    /// As [`MaskedAttention::forward`], also returning the attention weights `[B, H, Lq, Lk]`
    /// (before attention dropout).
    pub fn forward_with_weights(&self, x: Tensor<3>, kv: Tensor<3>, key_mask: Tensor<2, Bool>) -> (Tensor<3>, Tensor<4>) {
        self.forward_biased(x, kv, key_mask, None)
    }

    /// As [`MaskedAttention::forward_with_weights`], with `key_bias` `[B, Lk]` added to every
    /// query's score of each key (e.g. lexicon weights) before the softmax.
    pub fn forward_biased(&self, x: Tensor<3>, kv: Tensor<3>, key_mask: Tensor<2, Bool>, key_bias: Option<Tensor<2>>) -> (Tensor<3>, Tensor<4>) {
        let [b, lq, d] = x.dims();
        let [bk, lk, dk_in] = kv.dims();
        assert_eq!((b, d), (bk, dk_in), "attention: queries {:?} and keys {:?} disagree", x.dims(), kv.dims());
        assert_eq!(key_mask.dims(), [b, lk], "attention: key mask {:?} for keys {:?}", key_mask.dims(), kv.dims());
        let h = self.n_heads;
        let dk = d / h;
        let q = self.query.forward(x).reshape([b, lq, h, dk]).swap_dims(1, 2); // [B, H, Lq, dk]
        let k = self.key.forward(kv.clone()).reshape([b, lk, h, dk]).swap_dims(1, 2); // [B, H, Lk, dk]
        let v = self.value.forward(kv).reshape([b, lk, h, dk]).swap_dims(1, 2);
        let scores = q.matmul(k.transpose()).div_scalar((dk as f64).sqrt()); // [B, H, Lq, Lk]
        // additive bias: 0 at real keys, MASK_BIAS at padding
        let mut bias = key_mask.float().neg().add_scalar(1.0).mul_scalar(MASK_BIAS);
        if let Some(kb) = key_bias {
            assert_eq!(kb.dims(), [b, lk], "attention: key bias {:?} for keys {:?}", kb.dims(), [b, lk]);
            bias = bias + kb;
        }
        let bias = bias.reshape([b, 1, 1, lk]);
        let weights = softmax(scores + bias, 3);
        let ctx = self.dropout.apply(weights.clone()).matmul(v).swap_dims(1, 2).reshape([b, lq, d]);
        (self.output.forward(ctx), weights)
    }
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
    pub act: Gelu,
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
            act: Gelu::new(),
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
        let (a, _) = self.self_attention.forward_biased(x.clone(), x.clone(), x_mask, self_bias);
        let x = self.norm_self.forward(x + self.dropout.apply(a));
        let a = self.cross_attention.forward(x.clone(), other, other_mask);
        let mut x = self.norm_cross.forward(x + self.dropout.apply(a));
        if let (Some(att), Some(norm)) = (&self.ocr_attention, &self.norm_ocr) {
            let (o, o_mask) = ocr.expect("this cross encoder has an OCR block: the batch needs OCR tokens (data with an `ocr` field)");
            let a = att.forward(x.clone(), o, o_mask);
            x = norm.forward(x + self.dropout.apply(a));
        }
        let f = self.ffn_out.forward(self.act.forward(self.ffn_in.forward(x.clone())));
        self.norm_ffn.forward(x + self.dropout.apply(f))
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
    use burn::tensor::{Distribution, TensorData};

    fn mask(rows: &[&[bool]], d: &Device) -> Tensor<2, Bool> {
        let l = rows[0].len();
        Tensor::from_data(TensorData::new(rows.concat(), [rows.len(), l]), d)
    }

    /// Overwrite positions where `m` is false with `fill`.
    fn replace_padding(x: Tensor<3>, m: Tensor<2, Bool>, fill: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let pad = m.bool_not().reshape([b, l, 1]).expand([b, l, d]);
        x.mask_where(pad, fill)
    }

    #[test]
    fn padded_keys_get_zero_weight_and_do_not_change_the_output() {
        let d = Device::flex();
        d.seed(11);
        let att = MaskedAttention::new(8, 2, 0.0, &d);
        let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &d);
        let kv = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &d);
        let m = mask(&[&[true, true, false, true, false], &[true, false, false, false, false]], &d);
        let (out, w) = att.forward_with_weights(x.clone(), kv.clone(), m.clone());
        let w = w.into_data().try_to_vec::<f32>().unwrap(); // [2, 2, 3, 5]
        let mv = [[true, true, false, true, false], [true, false, false, false, false]];
        for (i, x) in w.iter().enumerate() {
            let (bi, k) = (i / (2 * 3 * 5), i % 5);
            if !mv[bi][k] {
                assert_eq!(*x, 0.0, "weight {i} of a padded key");
            }
        }
        // rows still sum to 1
        for r in w.chunks(5) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // changing the padded keys' values changes nothing
        let junk = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 100.0), &d);
        let out2 = att.forward(x, replace_padding(kv, m.clone(), junk), m);
        assert_eq!(out.into_data().try_to_vec::<f32>().unwrap(), out2.into_data().try_to_vec::<f32>().unwrap());
    }

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
    fn key_bias_scales_the_weights_by_exp_bias() {
        let d = Device::flex();
        let att = MaskedAttention::new(8, 2, 0.0, &d);
        let x = Tensor::<3>::random([1, 2, 8], Distribution::Normal(0.0, 1.0), &d);
        let m = mask(&[&[true, true, true, false]], &d);
        let kv = Tensor::<3>::random([1, 4, 8], Distribution::Normal(0.0, 1.0), &d);
        let (_, w0) = att.forward_with_weights(x.clone(), kv.clone(), m.clone());
        let bias = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 1.0, 2.0, 5.0], [1, 4]), &d);
        let (_, w1) = att.forward_biased(x, kv, m, Some(bias));
        let (a, b) = (w0.into_data().try_to_vec::<f32>().unwrap(), w1.into_data().try_to_vec::<f32>().unwrap());
        for (r0, r1) in a.chunks(4).zip(b.chunks(4)) {
            // w1_j / w1_0 = e^{bias_j} · w0_j / w0_0 for the real keys; the padded key stays at 0
            for j in 1..3 {
                let got = r1[j] / r1[0];
                let want = (j as f32).exp() * r0[j] / r0[0];
                assert!((got - want).abs() < 1e-4 * want, "key {j}: {got} vs {want}");
            }
            assert_eq!(r1[3], 0.0, "a bias does not revive a padded key");
        }
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
