//! Multi-head attention of a query sequence over a key/value sequence with a key-padding mask,
//! shared by the fusion methods (CLFA's cross encoder, MuSE's CrossTransformer).
//!
//! Written out (query/key/value/output `Linear`s) with an explicit additive mask bias: padded
//! keys get `−1e9` added to their scores, so after the softmax their weight is exactly 0 in f32
//! and their values cannot leak into the output. An optional per-key bias (CLFA's lexicon
//! weights) is added the same way, and the weights before dropout are returned for callers that
//! rank tokens by them (MuSE's exchange).

use burn::module::Module;
use burn::tensor::{Bool, Device, Tensor};
use mmfuse_kernels::{Dropout, DropoutConfig, Linear, LinearConfig, PackedCache, attention, forward_group};

/// Bias added to the attention scores of masked (padding) keys.
pub use mmfuse_kernels::MASK_BIAS;

/// Multi-head attention of a query sequence over a key/value sequence with a key mask.
#[derive(Module, Debug)]
pub struct MaskedAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output: Linear,
    pub dropout: Dropout,
    pub n_heads: usize,
    /// Query, key and value weights side by side, packed for self-attention at prediction (not
    /// part of the record; see `mmfuse_kernels::forward_group`).
    #[module(skip)]
    qkv: PackedCache,
}

impl MaskedAttention {
    pub fn new(d_model: usize, n_heads: usize, dropout: f64, device: &Device) -> Self {
        assert!(n_heads > 0 && d_model.is_multiple_of(n_heads), "d_model ({d_model}) must be divisible by n_heads ({n_heads})");
        let lin = || LinearConfig::new(d_model, d_model).init(device);
        MaskedAttention {
            query: lin(),
            key: lin(),
            value: lin(),
            output: lin(),
            dropout: DropoutConfig::new(dropout).init(),
            n_heads,
            qkv: PackedCache::default(),
        }
    }

    /// `x` `[B, Lq, d]` attends over `kv` `[B, Lk, d]`; `key_mask` `[B, Lk]` is true at real keys.
    /// Returns the output `[B, Lq, d]`.
    pub fn forward(&self, x: Tensor<3>, kv: Tensor<3>, key_mask: Tensor<2, Bool>) -> Tensor<3> {
        self.attend(x, Some(kv), key_mask, None, false, None).0
    }

    /// `x` `[B, L, d]` attends over itself (as [`MaskedAttention::forward`]`(x, x, key_mask)`);
    /// at prediction on one post the query, key and value projections are one product.
    pub fn self_attention(&self, x: Tensor<3>, key_mask: Tensor<2, Bool>) -> Tensor<3> {
        self.attend(x, None, key_mask, None, false, None).0
    }

    /// As [`MaskedAttention::self_attention`], with the weights and an optional key bias (as
    /// [`MaskedAttention::forward_biased`]`(x, x, key_mask, key_bias)`).
    pub fn self_attention_biased(&self, x: Tensor<3>, key_mask: Tensor<2, Bool>, key_bias: Option<Tensor<2>>) -> (Tensor<3>, Tensor<4>) {
        let (out, weights) = self.attend(x, None, key_mask, key_bias, true, None);
        (out, weights.expect("weights were asked for"))
    }

    /// A layer's shortcut around its self-attention, `residual + dropout(self.self_attention(h,
    /// key_mask))` (`h` the attention's input, e.g. the normalised `residual`), with the weights
    /// if `keep_weights`: at prediction the residual is added as the output projection stores its
    /// output ([`Linear::forward_residual`](mmfuse_kernels::Linear::forward_residual)).
    pub fn self_attention_residual(
        &self,
        h: Tensor<3>,
        key_mask: Tensor<2, Bool>,
        residual: Tensor<3>,
        dropout: &Dropout,
        keep_weights: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        self.attend(h, None, key_mask, None, keep_weights, Some((residual, dropout)))
    }

    /// As [`MaskedAttention::forward`], also returning the attention weights `[B, H, Lq, Lk]`
    /// (before attention dropout).
    pub fn forward_with_weights(&self, x: Tensor<3>, kv: Tensor<3>, key_mask: Tensor<2, Bool>) -> (Tensor<3>, Tensor<4>) {
        self.forward_biased(x, kv, key_mask, None)
    }

    /// As [`MaskedAttention::forward_with_weights`], with `key_bias` `[B, Lk]` added to every
    /// query's score of each key (e.g. lexicon weights) before the softmax.
    pub fn forward_biased(&self, x: Tensor<3>, kv: Tensor<3>, key_mask: Tensor<2, Bool>, key_bias: Option<Tensor<2>>) -> (Tensor<3>, Tensor<4>) {
        let (out, weights) = self.attend(x, Some(kv), key_mask, key_bias, true, None);
        (out, weights.expect("weights were asked for"))
    }

    /// The layer over keys `kv` (`None`: `x` itself); the weights only if `keep_weights` (at
    /// prediction the fused pass then does not write them out); with `shortcut` (residual,
    /// dropout), `residual + dropout(output)`.
    fn attend(
        &self,
        x: Tensor<3>,
        kv: Option<Tensor<3>>,
        key_mask: Tensor<2, Bool>,
        key_bias: Option<Tensor<2>>,
        keep_weights: bool,
        shortcut: Option<(Tensor<3>, &Dropout)>,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let [b, _, d] = x.dims();
        let [bk, lk, dk_in] = kv.as_ref().map_or(x.dims(), |kv| kv.dims());
        assert_eq!((b, d), (bk, dk_in), "attention: queries {:?} and keys {:?} disagree", x.dims(), [bk, lk, dk_in]);
        assert_eq!(key_mask.dims(), [b, lk], "attention: key mask {:?} for keys {:?}", key_mask.dims(), [bk, lk, dk_in]);
        // [B, L, d] each; head h is columns h·dk..(h+1)·dk
        let [q, k, v] = match kv {
            Some(kv) => [self.query.forward(x), self.key.forward(kv.clone()), self.value.forward(kv)],
            None => forward_group([&self.query, &self.key, &self.value], &self.qkv, x),
        };
        // additive bias: 0 at real keys, MASK_BIAS at padding
        let mut bias = key_mask.float().neg().add_scalar(1.0).mul_scalar(MASK_BIAS);
        if let Some(kb) = key_bias {
            assert_eq!(kb.dims(), [b, lk], "attention: key bias {:?} for keys {:?}", kb.dims(), [b, lk]);
            bias = bias + kb;
        }
        let scale = 1.0 / ((d / self.n_heads) as f64).sqrt();
        let (ctx, weights) = attention(q, k, v, self.n_heads, scale, bias, &self.dropout, keep_weights);
        let out = match shortcut {
            Some((residual, dropout)) => self.output.forward_residual(ctx, residual, dropout),
            None => self.output.forward(ctx),
        };
        (out, weights)
    }
}

/// An attention's output `[B, Lq, d]` with the rows of the samples that have no real key
/// (`key_mask` `[B, Lk]` all false: an absent modality) zeroed: such a sample attends to
/// nothing, instead of averaging its padding. Only attentions whose keys can be all absent need
/// it (a stream with its own `[CLS]` always has one).
pub fn zero_without_keys(out: Tensor<3>, key_mask: &Tensor<2, Bool>) -> Tensor<3> {
    let [b, lq, d] = out.dims();
    out * key_mask.clone().float().max_dim(1).reshape([b, 1, 1]).expand([b, lq, d])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    pub(crate) fn mask(rows: &[&[bool]], d: &Device) -> Tensor<2, Bool> {
        let l = rows[0].len();
        Tensor::from_data(TensorData::new(rows.concat(), [rows.len(), l]), d)
    }

    /// Overwrite positions where `m` is false with `fill`.
    pub(crate) fn replace_padding(x: Tensor<3>, m: Tensor<2, Bool>, fill: Tensor<3>) -> Tensor<3> {
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
}
