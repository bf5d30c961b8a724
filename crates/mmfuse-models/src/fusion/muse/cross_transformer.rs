//! The CrossTransformer of MuSE: a stack of post-LN Transformer encoder layers whose weights are
//! shared by the text stream `[cls_t; T]` and the image stream `[cls_i; I]` (each layer differs
//! from the next). In the exchange layers `exchange_start_layer..=exchange_end_layer`, between
//! the attention block and the feed-forward block, each stream hands its least-attended tokens
//! the other stream's mean:
//!
//! 1. per sample and stream, take the head-averaged attention that `[CLS]` pays each token;
//! 2. among the real (non-padding) non-`[CLS]` tokens, select the `exchange_ratio` fraction with
//!    the LOWEST attention: `k = ⌊θ·(n − 1)⌋ + 1` tokens of `n` (0 when θ = 0), which is what the
//!    reference's strict `<` against the linearly interpolated θ-quantile selects for distinct
//!    weights (7 of 64 at θ = 0.1);
//! 3. each selected token becomes `token + mean(other stream's real non-[CLS] tokens)` (or, with
//!    `replace`, the mean itself); both means are taken before either stream changes.
//!
//! Everything is vectorised over the batch (ranks by a double `argsort`), padding is masked in
//! attention, selection and means. An absent stream (a post without its image, or its text) is
//! a stream whose tokens are all masked but `[CLS]`: no token of it is selected, and a stream
//! receives nothing when the other one has no real token, so nothing is exchanged to or from
//! an absent stream. `reference_compat` reproduces the released code instead: no
//! masks anywhere, and means over all tokens including `[CLS]` and padding.
//!
//! Paper: MuSE, "Exchanging-based Multimodal Fusion with Transformer" (arXiv 2309.02190), CrossTransformer as in §4.2
//! of the MuSE reading notes, `shared/seeds/001_*`: input `T_e(0) = Concat(v_cls(t_0), T_e)`, exchange layers μ..η,
//! `T̃_e(μ+1)[k,:] = (1/n)·Σ_j Ĩ_e(μ+1)[j,:] + T̃_e(μ+1)[k,:]` and symmetrically for `Ĩ_e`, then FFN (no equation
//! numbers in our sources); shared/METHODS.md §1 "CrossTransformer".

use super::attention::{SelfAttention, SelfAttentionConfig, residual_attention_with_cls};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Relu;
use burn::tensor::{Bool, Device, Distribution, Tensor};
use mmfuse_kernels::join_streams;
use mmfuse_kernels::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearActivation, LinearConfig};

/// Configuration of [`CrossTransformer`] (paper/reference defaults in brackets).
#[derive(Config, Debug)]
pub struct CrossTransformerConfig {
    /// Width of both streams (paper: 768).
    pub d_model: usize,
    /// Attention heads (paper: 12). Default 4.
    #[config(default = 4)]
    pub n_heads: usize,
    /// Feed-forward size (paper: 2048). Default 256.
    #[config(default = 256)]
    pub d_ff: usize,
    /// Layers L (paper: 6). Default 4.
    #[config(default = 4)]
    pub n_layers: usize,
    /// Dropout [0.2]. Default 0.1.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// θ: fraction of each stream's tokens that receive the other stream's mean [0.1].
    #[config(default = 0.1)]
    pub exchange_ratio: f64,
    /// μ: first exchange layer, 0-based (paper: 1).
    #[config(default = 1)]
    pub exchange_start_layer: usize,
    /// η: last exchange layer, inclusive (paper: 3).
    #[config(default = 3)]
    pub exchange_end_layer: usize,
    /// Replace the selected tokens by the other stream's mean instead of adding it.
    #[config(default = false)]
    pub replace: bool,
    /// Reproduce the released code: no padding masks, means over all tokens incl. `[CLS]`.
    #[config(default = false)]
    pub reference_compat: bool,
}

/// One shared post-LN encoder layer.
#[derive(Module, Debug)]
pub struct CrossLayer {
    pub attention: SelfAttention,
    pub norm_1: LayerNorm,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    /// ReLU (applied by `ffn_in` as it stores its output, `Linear::forward_activated`; the field
    /// keeps the records' layout)
    pub act: Relu,
    pub norm_2: LayerNorm,
    pub dropout: Dropout,
}

impl CrossLayer {
    /// Attention + residual + LayerNorm; also the `[CLS]` attention row.
    pub fn attention_block(&self, x: Tensor<3>, mask: Tensor<2, Bool>) -> (Tensor<3>, Tensor<2>) {
        let (a, cls) = residual_attention_with_cls(&self.attention, x, mask, &self.dropout);
        (self.norm_1.forward(a), cls)
    }

    /// Feed-forward + residual + LayerNorm.
    pub fn ffn_block(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.dropout.forward(self.ffn_in.forward_activated(x.clone(), LinearActivation::Relu));
        self.norm_2.forward(self.ffn_out.forward_residual(h, x, &self.dropout))
    }
}

/// The CrossTransformer: learnable `[CLS]` per stream and the shared layers.
#[derive(Module, Debug)]
pub struct CrossTransformer {
    pub cls_text: Param<Tensor<1>>,
    pub cls_image: Param<Tensor<1>>,
    pub layers: Vec<CrossLayer>,
    pub exchange_ratio: f64,
    pub exchange_start_layer: usize,
    pub exchange_end_layer: usize,
    pub replace: bool,
    pub reference_compat: bool,
}

impl CrossTransformerConfig {
    pub fn init(&self, device: &Device) -> CrossTransformer {
        let d = self.d_model;
        let layers = (0..self.n_layers)
            .map(|_| CrossLayer {
                attention: SelfAttentionConfig::new(d, self.n_heads).with_dropout(self.dropout).init(device),
                norm_1: LayerNormConfig::new(d).init(device),
                ffn_in: LinearConfig::new(d, self.d_ff).init(device),
                ffn_out: LinearConfig::new(self.d_ff, d).init(device),
                act: Relu::new(),
                norm_2: LayerNormConfig::new(d).init(device),
                dropout: DropoutConfig::new(self.dropout).init(),
            })
            .collect();
        let cls = || Param::from_tensor(Tensor::random([d], Distribution::Normal(0.0, 0.02), device));
        CrossTransformer {
            cls_text: cls(),
            cls_image: cls(),
            layers,
            exchange_ratio: self.exchange_ratio,
            exchange_start_layer: self.exchange_start_layer,
            exchange_end_layer: self.exchange_end_layer,
            replace: self.replace,
            reference_compat: self.reference_compat,
        }
    }
}

fn with_cls(x: Tensor<3>, mask: Tensor<2, Bool>, cls: Tensor<1>) -> (Tensor<3>, Tensor<2, Bool>) {
    let [b, _, d] = x.dims();
    let device = x.device();
    let c = cls.reshape([1, 1, d]).expand([b, 1, d]);
    let m = Tensor::<2, Bool>::full([b, 1], true, &device);
    (Tensor::cat(vec![c, x], 1), Tensor::cat(vec![m, mask], 1))
}

/// Selection mask `[B, L]` (1.0 = receives the other stream's mean): among `candidates`, the
/// `⌊ratio·(n−1)⌋ + 1` with the lowest `attn` (none when `ratio` is 0 or `n` is 0).
pub fn select_low_attention(attn: Tensor<2>, candidates: Tensor<2, Bool>, ratio: f64) -> Tensor<2> {
    let [b, l] = attn.dims();
    if ratio <= 0.0 {
        return Tensor::zeros([b, l], &attn.device());
    }
    let candf = candidates.clone().float();
    let n = candf.clone().sum_dim(1); // [B, 1]
    let k = ((n.clone() - 1.0).clamp_min(0.0).mul_scalar(ratio).floor() + 1.0) * n.greater_elem(0.0).float();
    let scores = attn.detach().mask_fill(candidates.clone().bool_not(), f32::MAX);
    let ranks = scores.argsort(1).argsort(1).float(); // rank of each position, 0 = lowest
    ranks.lower(k.expand([b, l])).float() * candf
}

/// Exchange between the two streams (see the module docs). Streams include `[CLS]` at 0;
/// masks are true at real tokens.
#[allow(clippy::too_many_arguments)]
pub fn exchange(
    text: Tensor<3>,
    text_attn: Tensor<2>,
    text_mask: Tensor<2, Bool>,
    image: Tensor<3>,
    image_attn: Tensor<2>,
    image_mask: Tensor<2, Bool>,
    ratio: f64,
    replace: bool,
    reference_compat: bool,
) -> (Tensor<3>, Tensor<3>) {
    let not_cls = |m: Tensor<2, Bool>| {
        let [b, l] = m.dims();
        let device = m.device();
        let first = Tensor::<2, Bool>::full([b, 1], false, &device);
        let rest = Tensor::<2, Bool>::full([b, l - 1], true, &device);
        m.bool_and(Tensor::cat(vec![first, rest], 1))
    };
    let (cand_t, cand_i) = if reference_compat {
        (not_cls(text_mask.clone().bool_or(text_mask.clone().bool_not())), not_cls(image_mask.clone().bool_or(image_mask.clone().bool_not())))
    } else {
        (not_cls(text_mask), not_cls(image_mask))
    };
    let mean_over = |x: &Tensor<3>, m: &Tensor<2, Bool>| -> Tensor<3> {
        if reference_compat {
            x.clone().mean_dim(1) // all tokens, [CLS] and padding included
        } else {
            crate::layers::masked_mean(x.clone(), m.clone()).unsqueeze_dim::<3>(1)
        }
    };
    let mean_t = mean_over(&text, &cand_t); // [B, 1, d]
    let mean_i = mean_over(&image, &cand_i);
    // a stream only receives when the other one has real tokens (an absent stream has none)
    let has = |c: &Tensor<2, Bool>| c.clone().float().sum_dim(1).greater_elem(0.0).float(); // [B, 1]
    let (has_t, has_i) = (has(&cand_t), has(&cand_i));
    let sel_t = (select_low_attention(text_attn, cand_t, ratio) * has_i).unsqueeze_dim::<3>(2); // [B, L, 1]
    let sel_i = (select_low_attention(image_attn, cand_i, ratio) * has_t).unsqueeze_dim::<3>(2);
    let [_, lt, d] = text.dims();
    let [_, li, _] = image.dims();
    let upd = |x: Tensor<3>, sel: Tensor<3>, other_mean: Tensor<3>, l: usize| {
        let [b, _, _] = x.dims();
        let sel = sel.expand([b, l, d]);
        let m = other_mean.expand([b, l, d]);
        if replace { x.clone() - x * sel.clone() + m * sel } else { x + m * sel }
    };
    (upd(text, sel_t, mean_i, lt), upd(image, sel_i, mean_t, li))
}

impl CrossTransformer {
    /// `text` `[B, Lt, d]`, `image` `[B, Li, d]` with their masks (true at real tokens) →
    /// streams with `[CLS]` first: `[B, 1+Lt, d]`, `[B, 1+Li, d]`.
    pub fn forward(&self, text: Tensor<3>, text_mask: Tensor<2, Bool>, image: Tensor<3>, image_mask: Tensor<2, Bool>) -> (Tensor<3>, Tensor<3>) {
        let (mut t, mt) = with_cls(text, text_mask, self.cls_text.val());
        let (mut i, mi) = with_cls(image, image_mask, self.cls_image.val());
        // the released code attends over padding too
        let (att_mt, att_mi) = if self.reference_compat {
            (mt.clone().bool_or(mt.clone().bool_not()), mi.clone().bool_or(mi.clone().bool_not()))
        } else {
            (mt.clone(), mi.clone())
        };
        let device = t.device();
        for (l, layer) in self.layers.iter().enumerate() {
            let ((t1, ct), (i1, ci)) = join_streams(&device, || layer.attention_block(t, att_mt.clone()), || layer.attention_block(i, att_mi.clone()));
            let (t2, i2) = if (self.exchange_start_layer..=self.exchange_end_layer).contains(&l) {
                exchange(t1, ct, mt.clone(), i1, ci, mi.clone(), self.exchange_ratio, self.replace, self.reference_compat)
            } else {
                (t1, i1)
            };
            (t, i) = join_streams(&device, || layer.ffn_block(t2), || layer.ffn_block(i2));
        }
        (t, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn t3(v: Vec<f32>, s: [usize; 3], d: &Device) -> Tensor<3> {
        Tensor::from_data(TensorData::new(v, s), d)
    }
    fn t2(v: Vec<f32>, s: [usize; 2], d: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, s), d)
    }
    fn m2(v: Vec<bool>, s: [usize; 2], d: &Device) -> Tensor<2, Bool> {
        Tensor::from_data(TensorData::new(v, s), d)
    }

    /// Prediction runs the two streams concurrently (`join_streams`), training in turn; both give
    /// the same numbers.
    #[test]
    fn concurrent_streams_equal_sequential_streams() {
        let plain = Device::flex();
        let tracked = Device::flex().autodiff();
        let ct = CrossTransformerConfig::new(16).with_n_heads(2).with_d_ff(32).with_n_layers(3).with_dropout(0.0).with_exchange_ratio(0.25).init(&plain);
        let text = Tensor::<3>::random([2, 6, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &plain);
        let image = Tensor::<3>::random([2, 5, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &plain);
        let tm = m2(vec![true, true, true, true, false, false, true, true, true, true, true, true], [2, 6], &plain);
        let im = m2(vec![true; 10], [2, 5], &plain);
        let (text_again, tm_again, image_again, im_again) = (text.clone(), tm.clone(), image.clone(), im.clone());
        let (a_t, a_i) = ct.forward(text.clone(), tm.clone(), image.clone(), im.clone());
        let moved = ct.clone().fork(&tracked);
        let to = |x: Tensor<3>| Tensor::<3>::from_data(x.into_data(), &tracked);
        let tom = |m: Tensor<2, Bool>| Tensor::<2, Bool>::from_data(m.into_data(), &tracked);
        let (b_t, b_i) = moved.forward(to(text), tom(tm), to(image), tom(im));
        let v = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
        // (the autodiff device's kernels may round differently in the last bit)
        for (a, b) in [(v(a_t.clone()), v(b_t)), (v(a_i.clone()), v(b_i))] {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
        // and concurrent runs are deterministic
        let (c_t, c_i) = ct.forward(text_again, tm_again, image_again, im_again);
        assert_eq!(v(a_t), v(c_t));
        assert_eq!(v(a_i), v(c_i));
    }

    /// Hand-built case. Text: 1 sample, [CLS] + 4 tokens, d = 1, token values 1, 2, 3, 4;
    /// CLS attention 0.5 | 0.1, 0.3, 0.05, 0.05(padding). Image: [CLS] + 3 tokens, values
    /// 10, 20, 30; attention 0.4 | 0.2, 0.1, 0.3.
    /// θ = 0.5: text has n = 3 real tokens → k = ⌊0.5·2⌋ + 1 = 2: the lowest among
    /// {0.1, 0.3, 0.05} are positions 3 and 1 (padding at 4 has the lowest weight but is masked).
    /// Image n = 3 → k = 2: positions 2 and 1. Means (real non-CLS): text (1+2+3)/3 = 2,
    /// image (10+20+30)/3 = 20.
    #[test]
    fn exchange_selects_and_adds_as_computed_by_hand() {
        let dev = Device::flex();
        let text = t3(vec![100.0, 1.0, 2.0, 3.0, 4.0], [1, 5, 1], &dev);
        let ta = t2(vec![0.5, 0.1, 0.3, 0.05, 0.05], [1, 5], &dev);
        let tm = m2(vec![true, true, true, true, false], [1, 5], &dev);
        let image = t3(vec![200.0, 10.0, 20.0, 30.0], [1, 4, 1], &dev);
        let ia = t2(vec![0.4, 0.2, 0.1, 0.3], [1, 4], &dev);
        let im = m2(vec![true; 4], [1, 4], &dev);
        let (t, i) = exchange(text.clone(), ta.clone(), tm.clone(), image.clone(), ia.clone(), im.clone(), 0.5, false, false);
        assert_eq!(t.into_data().try_to_vec::<f32>().unwrap(), vec![100.0, 21.0, 2.0, 23.0, 4.0]);
        assert_eq!(i.into_data().try_to_vec::<f32>().unwrap(), vec![200.0, 12.0, 22.0, 30.0]);
        // replacement instead of addition
        let (t, _) = exchange(text.clone(), ta.clone(), tm.clone(), image.clone(), ia.clone(), im.clone(), 0.5, true, false);
        assert_eq!(t.into_data().try_to_vec::<f32>().unwrap(), vec![100.0, 20.0, 2.0, 20.0, 4.0]);
        // θ = 0 changes nothing
        let (t, i) = exchange(text.clone(), ta.clone(), tm.clone(), image.clone(), ia.clone(), im.clone(), 0.0, false, false);
        assert_eq!(t.into_data().try_to_vec::<f32>().unwrap(), vec![100.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(i.into_data().try_to_vec::<f32>().unwrap(), vec![200.0, 10.0, 20.0, 30.0]);
        // reference behaviour: padding counts (and is selected: lowest weight), means over all
        // tokens incl. CLS: text (100+1+2+3+4)/5 = 22, image (200+10+20+30)/4 = 65; text n = 4
        // → k = ⌊0.5·3⌋ + 1 = 2: positions 3 and 4 (0.05, 0.05)
        let (t, i) = exchange(text, ta, tm, image, ia, im, 0.5, false, true);
        assert_eq!(t.into_data().try_to_vec::<f32>().unwrap(), vec![100.0, 1.0, 2.0, 68.0, 69.0]);
        assert_eq!(i.into_data().try_to_vec::<f32>().unwrap(), vec![200.0, 32.0, 42.0, 30.0]);
    }

    /// An absent stream (every token masked, only its `[CLS]` real) takes no part in the
    /// exchange: no token of it is selected, and the other stream receives nothing from it. The
    /// same batch's post with both modalities exchanges as in the hand case above.
    #[test]
    fn an_absent_stream_exchanges_nothing() {
        let dev = Device::flex();
        let text = t3([100.0, 1.0, 2.0, 3.0, 4.0].repeat(2), [2, 5, 1], &dev);
        let ta = t2([0.5, 0.1, 0.3, 0.05, 0.05].repeat(2), [2, 5], &dev);
        let tm = m2([true, true, true, true, false].repeat(2), [2, 5], &dev);
        let image = t3([200.0, 10.0, 20.0, 30.0].repeat(2), [2, 4, 1], &dev);
        let ia = t2([0.4, 0.2, 0.1, 0.3].repeat(2), [2, 4], &dev);
        // post 1 has no image
        let im = m2(vec![true, true, true, true, true, false, false, false], [2, 4], &dev);
        for replace in [false, true] {
            let (t, i) = exchange(text.clone(), ta.clone(), tm.clone(), image.clone(), ia.clone(), im.clone(), 0.5, replace, false);
            let (t, i) = (t.into_data().try_to_vec::<f32>().unwrap(), i.into_data().try_to_vec::<f32>().unwrap());
            let with_image: &[f32] = if replace { &[100.0, 20.0, 2.0, 20.0, 4.0] } else { &[100.0, 21.0, 2.0, 23.0, 4.0] };
            assert_eq!(&t[..5], with_image);
            assert_eq!(&t[5..], &[100.0, 1.0, 2.0, 3.0, 4.0], "the text of the post without an image received something (replace = {replace})");
            assert_eq!(&i[4..], &[200.0, 10.0, 20.0, 30.0], "the absent image stream was changed (replace = {replace})");
            if !replace {
                assert_eq!(&i[..4], &[200.0, 12.0, 22.0, 30.0]);
            }
        }
        // the same with the text absent: the image stream receives nothing
        let tm_absent = m2([true, true, true, true, false, true, false, false, false, false].to_vec(), [2, 5], &dev);
        let im_all = m2(vec![true; 8], [2, 4], &dev);
        let (t, i) = exchange(text, ta, tm_absent, image, ia, im_all, 0.5, false, false);
        assert_eq!(&i.into_data().try_to_vec::<f32>().unwrap()[4..], &[200.0, 10.0, 20.0, 30.0]);
        assert_eq!(&t.into_data().try_to_vec::<f32>().unwrap()[5..], &[100.0, 1.0, 2.0, 3.0, 4.0]);
    }

    /// With 64 tokens and θ = 0.1, 7 are selected (the reference's quantile rule); padding is
    /// never selected even when it has the lowest weight; samples are independent.
    #[test]
    fn selection_counts_and_masked_padding() {
        let dev = Device::flex();
        let l = 65;
        let attn: Vec<f32> = (0..2 * l).map(|p| if p % l == 0 { 0.9 } else { 0.001 * (p % l) as f32 }).collect();
        // second sample: the first 10 tokens are padding (lowest weights)
        let mask: Vec<bool> = (0..2 * l).map(|p| p < l || p % l == 0 || p % l > 10).collect();
        let sel =
            select_low_attention(t2(attn, [2, l], &dev), m2(mask, [2, l], &dev).bool_and(m2((0..2 * l).map(|p| p % l != 0).collect(), [2, l], &dev)), 0.1);
        let v = sel.into_data().try_to_vec::<f32>().unwrap();
        let chosen = |s: usize| (0..l).filter(|p| v[s * l + p] > 0.5).collect::<Vec<_>>();
        assert_eq!(chosen(0), (1..=7).collect::<Vec<_>>());
        // 54 real tokens → ⌊0.1·53⌋ + 1 = 6, the lowest real ones: 11..=16
        assert_eq!(chosen(1), (11..=16).collect::<Vec<_>>());
    }

    /// θ = 0 makes the CrossTransformer a plain Transformer applied to each stream with the
    /// shared layers; θ > 0 changes the output.
    #[test]
    fn zero_ratio_equals_plain_shared_transformer() {
        let dev = Device::flex();
        dev.seed(5);
        let cfg = CrossTransformerConfig::new(8)
            .with_n_heads(2)
            .with_d_ff(16)
            .with_n_layers(3)
            .with_dropout(0.0)
            .with_exchange_ratio(0.0)
            .with_exchange_start_layer(0)
            .with_exchange_end_layer(2);
        let ct = cfg.init(&dev);
        let text = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &dev);
        let image = Tensor::<3>::random([2, 4, 8], Distribution::Normal(0.0, 1.0), &dev);
        let tm = m2(vec![true, true, true, false, false, true, true, true, true, true], [2, 5], &dev);
        let im = m2(vec![true; 8], [2, 4], &dev);
        let (t, i) = ct.forward(text.clone(), tm.clone(), image.clone(), im.clone());
        let plain = |x: Tensor<3>, m: Tensor<2, Bool>, cls: Tensor<1>| {
            let (mut x, m) = with_cls(x, m, cls);
            for layer in &ct.layers {
                x = layer.ffn_block(layer.attention_block(x, m.clone()).0);
            }
            x
        };
        let pt = plain(text.clone(), tm.clone(), ct.cls_text.val());
        let pi = plain(image.clone(), im.clone(), ct.cls_image.val());
        let diff = |a: Tensor<3>, b: Tensor<3>| a.sub(b).abs().max().into_scalar::<f32>();
        assert!(diff(t, pt.clone()) < 1e-6);
        assert!(diff(i, pi) < 1e-6);
        let mut ct2 = ct.clone();
        ct2.exchange_ratio = 0.5;
        let (t2x, _) = ct2.forward(text, tm, image, im);
        assert!(diff(t2x, pt) > 1e-3, "exchange must change the text stream");
    }
}
