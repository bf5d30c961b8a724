//! A convolution followed by its batch norm, an optional shortcut add and an activation — the
//! unit CNN encoders are made of (MobileNetV2's `Conv2dNormActivation` and inverted residuals,
//! ResNet's conv/bn pairs) — as one CPU pass at prediction ([`conv_bn`]).
//!
//! At prediction a batch norm is an affine map per channel with fixed statistics, so it folds
//! into the convolution's weight and bias (`w·γ/√(σ²+ε)`, `β + (b − μ)·γ/√(σ²+ε)`): the output
//! is written once, with the bias (and the shortcut) already in place, and the activation
//! applied while it is in cache. Done per layer the unfused way, burn-flex made four
//! element-wise passes of the batch norm, one of the activation and one of the shortcut over
//! every activation map, and its im2col convolution copied even a 1×1 convolution's input:
//! on MobileNetV2 (batch 8 × 224²) the matrix products were 23 % of the forward (`perf`, two
//! threads), element-wise passes and fresh-page faults most of the rest.
//!
//! Paths, on the CPU backend without autodiff and f32 data: a 1×1 / stride-1 / unpadded
//! convolution is one `gemm` per sample on the NCHW data in place; a depthwise convolution
//! (groups = input = output channels) sums its taps over a zero-padded copy of each plane,
//! vectorised along the output row; a 3×3 / stride-1 / padding-1 one takes the banded pass of
//! [`conv2d`](crate::conv2d) with the folded weight; any other shape runs burn's convolution on
//! the folded weight (still no batch-norm passes). Under autodiff (the batch norm may be
//! training), on other devices and dtypes: `bn(conv(x))`, `+ shortcut`, activation, as burn's ops.
//!
//! A CNN that keeps its maps channels-last (`[B, H, W, C]`) between layers at prediction calls
//! [`conv_bn_channels_last`] instead (MobileNetV2 does): the folded weight is kept beside the
//! layer ([`FoldedCache`]), a convolution with `groups = 1` is one product over the batch
//! through the packed `Linear` kernel and a depthwise one a pass along the channels
//! (`channels_last.rs`).

mod channels_last;
mod forward;

pub use channels_last::FoldedLayer;
pub use forward::Activation;

use crate::autodiff::{dims, flex_tensor, from_plain, plain, stored, values};
use crate::cache::DerivedCache;
use crate::device::is_cpu_without_autodiff;
use burn::backend::flex::FlexTensor;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};
use forward::{Geometry, fold};

/// `act(bn(conv(x)) + shortcut)` for `x` `[B, C, H, W]` (the shortcut, when given, has the
/// output's shape). Folded into one pass on the CPU backend at prediction (above); burn's ops
/// otherwise.
pub fn conv_bn(conv: &Conv2d, bn: &BatchNorm, shortcut: Option<Tensor<4>>, act: Activation, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if is_cpu_without_autodiff(&device)
        && x.dtype() == DType::F32
        && !x.dims().contains(&0)
        && let Some(y) = predicted(conv, bn, shortcut.as_ref(), act, &x)
    {
        return y;
    }
    unfused(conv, bn, shortcut, act, x)
}

/// A layer's folded weight for [`conv_bn_channels_last`] (`None`: a grouped convolution that is
/// not depthwise, which has no channels-last pass), kept beside the layer as a
/// `#[module(skip)]` field.
pub type FoldedCache = DerivedCache<Option<FoldedLayer>>;

/// Whether [`conv_bn_channels_last`] runs on `x`: a non-empty f32 tensor of the CPU backend
/// without autodiff, on a CPU that runs the packed `Linear` kernel (x86-64 with AVX2 and FMA).
pub fn channels_last_applies<const D: usize>(x: &Tensor<D>) -> bool {
    is_cpu_without_autodiff(&x.device()) && x.dtype() == DType::F32 && !x.dims().contains(&0) && crate::linear::packed::available()
}

/// `[B, C, H, W]` → the channels-last map `[B, H, W, C]`.
pub fn to_channels_last(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}

/// The channels-last map `[B, H, W, C]` → `[B, C, H, W]`.
pub fn from_channels_last(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 3, 1, 2])
}

/// `act(bn(conv(x)) + shortcut)` over channels-last maps: `x` `[B, H, W, C]` →
/// `[B, OH, OW, C_out]` (the shortcut, when given, has the output's shape), with the batch norm's
/// running statistics folded into the weight once and kept in `cache`. A convolution with
/// `groups = 1` is one product over the batch through the packed `Linear` kernel, a depthwise
/// one a pass along the channels (`channels_last.rs`). `None` where it does not apply (see
/// [`channels_last_applies`]; a grouped convolution that is not depthwise, dilation, shapes
/// that do not agree): the caller runs the layer NCHW with [`conv_bn`].
pub fn conv_bn_channels_last(
    conv: &Conv2d,
    bn: &BatchNorm,
    cache: &FoldedCache,
    shortcut: Option<&Tensor<4>>,
    act: Activation,
    x: &Tensor<4>,
) -> Option<Tensor<4>> {
    if !channels_last_applies(x) {
        return None;
    }
    let [b, h, w, c] = x.dims();
    let (layer, g) = folded_layer(conv, bn, cache, [h, w, c])?;
    let layer = layer.as_ref().as_ref()?;
    let c_out = layer.channels();
    let [oh, ow] = g.output();
    let shortcut = match shortcut {
        Some(r) => Some(plain(r).filter(|r| dims::<4>(r) == [b, oh, ow, c_out])?),
        None => None,
    };
    let shortcut_values = shortcut.as_ref().map(|r| values(r));
    let xp = plain(x)?;
    let y = channels_last::forward(&values(&xp), layer, shortcut_values.as_deref(), [b, c], g, act);
    Some(from_plain(flex_tensor(y, [b, oh, ow, c_out])))
}

/// One convolution with its batch norm and activation, and the cache of their folding, as a
/// layer of [`inverted_residual_channels_last`].
#[derive(Clone, Copy)]
pub struct ConvBnLayer<'a> {
    pub conv: &'a Conv2d,
    pub bn: &'a BatchNorm,
    pub cache: &'a FoldedCache,
    pub act: Activation,
}

/// An inverted residual block (MobileNetV2's: a 1×1 `expand`, a depthwise convolution, a 1×1
/// `project`, plus the block's input when `residual`) over the channels-last map `x`
/// `[B, H, W, C]`, band by band of output rows so that the expanded rows stay in cache
/// (`channels_last.rs`); the same values, bit for bit, as the layers one after the other
/// through [`conv_bn_channels_last`]. `None` where it does not apply (as that function, or
/// layers not of that form): the caller runs the layers one by one.
pub fn inverted_residual_channels_last(
    expand: Option<ConvBnLayer>,
    depthwise: ConvBnLayer,
    project: ConvBnLayer,
    residual: bool,
    x: &Tensor<4>,
) -> Option<Tensor<4>> {
    if !channels_last_applies(x) {
        return None;
    }
    let [b, h, w, c] = x.dims();
    let expanded = match expand {
        Some(e) => {
            let (layer, g) = folded_layer(e.conv, e.bn, e.cache, [h, w, c])?;
            Some(g.is_pointwise().then_some(layer)?)
        }
        None => None,
    };
    let hidden = match &expanded {
        Some(e) => e.as_ref().as_ref()?.channels(),
        None => c,
    };
    let (dw, g) = folded_layer(depthwise.conv, depthwise.bn, depthwise.cache, [h, w, hidden])?;
    let [oh, ow] = g.output();
    let (pw, gp) = folded_layer(project.conv, project.bn, project.cache, [oh, ow, hidden])?;
    if !gp.is_pointwise() {
        return None;
    }
    let xp = plain(x)?;
    let expanded = match &expanded {
        Some(e) => Some(e.as_ref().as_ref()?),
        None => None,
    };
    let (dw, pw) = (dw.as_ref().as_ref()?, pw.as_ref().as_ref()?);
    let acts = [expand.map_or(Activation::Identity, |e| e.act), depthwise.act, project.act];
    let y = channels_last::inverted_residual(&values(&xp), [b, h, w, c], expanded, dw, g, pw, residual, acts, channels_last::BAND_BYTES)?;
    Some(from_plain(flex_tensor(y, [b, oh, ow, pw.channels()])))
}

/// The folded layer of `conv` and `bn` (from `cache`, folded on a miss) over a map
/// `[h, w, c]`, and its geometry; `None` where the parameters are not f32 tensors of the CPU
/// backend, the shapes disagree or the convolution is dilated.
#[allow(clippy::type_complexity)]
fn folded_layer(conv: &Conv2d, bn: &BatchNorm, cache: &FoldedCache, [h, w, c]: [usize; 3]) -> Option<(std::sync::Arc<Option<FoldedLayer>>, Geometry)> {
    if conv.dilation != [1, 1] {
        return None;
    }
    // the parameters as stored: the cache's keys
    let weight = stored(&conv.weight.val())?;
    let [c_out, c_per_group, kh, kw] = dims::<4>(&weight);
    let mut from: Vec<FlexTensor> = vec![weight];
    for t in conv.bias.iter().map(|b| b.val()).chain([bn.gamma.val(), bn.beta.val(), bn.running_mean.value(), bn.running_var.value()]) {
        from.push(stored(&t).filter(|t| dims::<1>(t) == [c_out])?);
    }
    if c_per_group * conv.groups != c {
        return None;
    }
    let layer = cache.get(&from, |from| {
        let (weight, stats) = (values(&from[0]), &from[from.len() - 4..]);
        let bias = (from.len() == 6).then(|| values(&from[1]));
        let stats = stats.iter().map(|s| values(s)).collect::<Vec<_>>();
        let folded = fold(&weight, bias.as_deref(), [&stats[0], &stats[1], &stats[2], &stats[3]], bn.epsilon);
        FoldedLayer::new(folded, [c_out, c_per_group, kh, kw], conv.groups)
    });
    let g = geometry(conv, [h, w], [kh, kw])?;
    Some((layer, g))
}

/// The layer as burn's operations (and our [`conv2d`](crate::conv2d) pass where it applies).
pub fn unfused(conv: &Conv2d, bn: &BatchNorm, shortcut: Option<Tensor<4>>, act: Activation, x: Tensor<4>) -> Tensor<4> {
    let y = bn.forward(crate::conv2d(conv, x));
    let y = match shortcut {
        Some(r) => y + r,
        None => y,
    };
    activate(y, act)
}

fn activate(y: Tensor<4>, act: Activation) -> Tensor<4> {
    match act {
        Activation::Identity => y,
        Activation::Relu => burn::tensor::activation::relu(y),
        Activation::Relu6 => crate::relu6(y),
    }
}

/// The folded pass, if every tensor is the CPU backend's f32 one and the shapes agree; `None`
/// leaves the layer to [`unfused`].
fn predicted(conv: &Conv2d, bn: &BatchNorm, shortcut: Option<&Tensor<4>>, act: Activation, x: &Tensor<4>) -> Option<Tensor<4>> {
    let [b, c, h, w] = x.dims();
    let weight = plain(&conv.weight.val())?;
    let [c_out, c_per_group, kh, kw] = dims::<4>(&weight);
    let conv_bias = match &conv.bias {
        Some(bias) => Some(plain(&bias.val())?),
        None => None,
    };
    let stats = [plain(&bn.gamma.val())?, plain(&bn.beta.val())?, plain(&bn.running_mean.value())?, plain(&bn.running_var.value())?];
    if stats.iter().any(|s| dims::<1>(s) != [c_out]) || conv.dilation != [1, 1] || c_per_group * conv.groups != c {
        return None;
    }
    let stats_values = stats.each_ref().map(|s| values(s));
    let folded = fold(&values(&weight), conv_bias.as_ref().map(|b| values(b)).as_deref(), stats_values.each_ref().map(|v| v.as_ref()), bn.epsilon);
    let g = geometry(conv, [h, w], [kh, kw])?;
    let [top, bottom, left, right] = g.padding;
    let [oh, ow] = g.output();
    let shortcut = match shortcut {
        Some(r) => {
            let r = plain(r)?;
            if dims::<4>(&r) != [b, c_out, oh, ow] {
                return None;
            }
            Some(r)
        }
        None => None,
    };
    let shortcut_values = shortcut.as_ref().map(|r| values(r));
    let shortcut_values = shortcut_values.as_deref();
    let xp = plain(x)?;
    let xv = values(&xp);
    let out = if g.is_pointwise() && conv.groups == 1 {
        forward::pointwise(&xv, &folded, shortcut_values, [b, c, h * w], act)
    } else if conv.groups == c && c_out == c && c_per_group == 1 {
        forward::depthwise(&xv, &folded, shortcut_values, b, g, act)
    } else if g.kernel == [3, 3] && g.stride == [1, 1] && g.padding == [1; 4] && conv.groups == 1 {
        let mut y = crate::conv2d::forward::convolve(&xv, &folded.weight, Some(&folded.bias), [b, c, h, w], c_out);
        forward::add_and_activate(&mut y, shortcut_values, act);
        y
    } else {
        // burn's convolution on the folded weight and bias; the shortcut and the activation after
        let weight = from_plain(flex_tensor(folded.weight, [c_out, c_per_group, kh, kw]));
        let bias = from_plain(flex_tensor(folded.bias, [c_out]));
        let options = ConvOptions::new_with_padding(conv.stride, [(top, bottom), (left, right)], conv.dilation, conv.groups);
        let y: Tensor<4> = burn_conv2d(x.clone(), weight, Some(bias), options);
        let y = match shortcut {
            Some(r) => y + from_plain::<4>(r),
            None => y,
        };
        return Some(activate(y, act));
    };
    Some(from_plain(flex_tensor(out, [b, c_out, oh, ow])))
}

/// The convolution's geometry over an `input` plane with this `kernel`; `None` where the padded
/// plane is smaller than the kernel (burn's op reports the impossible shape).
fn geometry(conv: &Conv2d, input: [usize; 2], kernel: [usize; 2]) -> Option<Geometry> {
    let ([h, w], [kh, kw]) = (input, kernel);
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, bottom, left, right],
        PaddingConfig2d::Same => {
            let ((top, bottom), (left, right)) = (same_padding(h, kh, conv.stride[0]), same_padding(w, kw, conv.stride[1]));
            [top, bottom, left, right]
        }
    };
    let [top, bottom, left, right] = padding;
    (h + top + bottom >= kh && w + left + right >= kw).then_some(Geometry { input, kernel, stride: conv.stride, padding })
}

/// `Same` padding of a side of `n` values, as burn's convolution computes it: the output has
/// `⌈n / stride⌉` values, the padding they need split with the smaller half first.
fn same_padding(n: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(n);
    (total / 2, total - total / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    /// A convolution and a batch norm with random weights and non-trivial running statistics.
    /// `padding` usize::MAX: `PaddingConfig2d::Same`.
    #[allow(clippy::too_many_arguments)]
    fn layer(c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize, groups: usize, bias: bool, device: &Device) -> (Conv2d, BatchNorm) {
        let padding = if padding == usize::MAX { PaddingConfig2d::Same } else { PaddingConfig2d::Explicit(padding, padding, padding, padding) };
        let conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(padding)
            .with_groups(groups)
            .with_bias(bias)
            .init(device);
        let mut bn = BatchNormConfig::new(c_out).with_epsilon(1e-5).init(device);
        bn.gamma = Param::from_tensor(Tensor::random([c_out], Distribution::Uniform(0.5, 1.5), device));
        bn.beta = Param::from_tensor(Tensor::random([c_out], Distribution::Normal(0.0, 0.5), device));
        bn.running_mean = burn::module::RunningState::new(Tensor::random([c_out], Distribution::Normal(0.0, 0.3), device));
        bn.running_var = burn::module::RunningState::new(Tensor::random([c_out], Distribution::Uniform(0.2, 2.0), device));
        (conv, bn)
    }

    fn max_rel_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    /// (input, c_out, kernel, stride, padding, groups, conv bias)
    type Case = ([usize; 4], usize, usize, usize, usize, usize, bool);

    /// The 1×1, depthwise (3×3 at stride 1 and 2, odd sizes; a 5×5), 3×3 and the general (stem
    /// 3×3/2, 7×7/2, 1×1/2) paths. Padding `usize::MAX`: `Same`.
    const CASES: [Case; 14] = [
        ([2, 6, 9, 7], 10, 1, 1, 0, 1, false),
        ([1, 6, 5, 5], 3, 1, 1, 0, 1, true),
        ([3, 8, 11, 13], 8, 3, 1, 1, 8, false),
        ([2, 8, 12, 9], 8, 3, 2, 1, 8, false),
        ([2, 5, 7, 7], 5, 3, 2, 1, 5, true),
        ([1, 4, 9, 10], 4, 5, 1, 2, 4, false),
        ([2, 4, 6, 7], 6, 3, 1, 1, 1, true),
        ([2, 3, 16, 15], 8, 3, 2, 1, 1, false),
        ([1, 3, 19, 19], 4, 7, 2, 3, 1, false),
        ([2, 6, 8, 8], 12, 1, 2, 0, 1, false),
        ([1, 1, 1, 1], 1, 3, 1, 1, 1, false),
        // `Same` padding (the small image CNN's 3×3 convolutions; a 4×4 kernel pads 1 and 2)
        ([2, 3, 8, 8], 5, 3, 1, usize::MAX, 1, true),
        ([1, 2, 7, 6], 3, 4, 1, usize::MAX, 1, false),
        ([1, 4, 9, 9], 4, 3, 2, usize::MAX, 4, false),
    ];

    #[test]
    fn an_inverted_residual_block_band_by_band_gives_the_bits_of_its_layers() {
        let device = Device::flex();
        if !channels_last_applies(&Tensor::<4>::zeros([1, 1, 1, 1], &device)) {
            eprintln!("NOTE: this CPU does not run the packed kernel: no channels-last passes to compare here");
            return;
        }
        let bits = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let (relu6, identity) = (Activation::Relu6, Activation::Identity);
        // (b, h, w, c_in, expand ratio, c_out, stride): stride 1 with the shortcut, stride 2 with
        // odd and even sizes, no expansion, channels past one register block
        for (b, h, w, c_in, t, c_out, stride) in [
            (2, 13, 11, 8, 6, 8, 1),
            (1, 16, 9, 8, 6, 12, 2),
            (1, 15, 15, 16, 1, 16, 1),
            (2, 7, 6, 24, 6, 32, 2),
            (1, 9, 20, 4, 3, 4, 1),
            (1, 17, 5, 3, 1, 5, 2),
        ] {
            let hidden = c_in * t;
            let expand = (t != 1).then(|| layer(c_in, hidden, 1, 1, 0, 1, false, &device));
            let (dw, project) = (layer(hidden, hidden, 3, stride, 1, hidden, false, &device), layer(hidden, c_out, 1, 1, 0, 1, false, &device));
            let caches = [FoldedCache::default(), FoldedCache::default(), FoldedCache::default()];
            let residual = stride == 1 && c_in == c_out;
            let x = Tensor::<4>::random([b, h, w, c_in], Distribution::Normal(0.0, 1.0), &device);
            let case = format!("{b}×{h}×{w}×{c_in}, t {t}, → {c_out}, stride {stride}");
            // the layers one after the other
            let expanded = match &expand {
                Some((conv, bn)) => conv_bn_channels_last(conv, bn, &caches[0], None, relu6, &x).unwrap(),
                None => x.clone(),
            };
            let d = conv_bn_channels_last(&dw.0, &dw.1, &caches[1], None, relu6, &expanded).unwrap();
            let want = bits(conv_bn_channels_last(&project.0, &project.1, &caches[2], residual.then_some(&x), identity, &d).unwrap());
            // the block
            fn block<'a>((conv, bn): &'a (Conv2d, BatchNorm), cache: &'a FoldedCache, act: Activation) -> ConvBnLayer<'a> {
                ConvBnLayer { conv, bn, cache, act }
            }
            let layers = (expand.as_ref().map(|e| block(e, &caches[0], relu6)), block(&dw, &caches[1], relu6), block(&project, &caches[2], identity));
            let ours = inverted_residual_channels_last(layers.0, layers.1, layers.2, residual, &x).expect("the block applies");
            assert!(bits(ours) == want, "{case}");
            // every band height: a row at a time, 2 and 5 rows of expanded input, the whole map
            let xv = x.clone().into_data().try_to_vec::<f32>().unwrap();
            let e = expand.as_ref().map(|(conv, bn)| folded_layer(conv, bn, &caches[0], [h, w, c_in]).unwrap().0);
            let (dwl, g) = folded_layer(&dw.0, &dw.1, &caches[1], [h, w, hidden]).unwrap();
            let [oh, ow] = g.output();
            let pl = folded_layer(&project.0, &project.1, &caches[2], [oh, ow, hidden]).unwrap().0;
            for band_bytes in [1, 2 * w * hidden * 4, 5 * w * hidden * 4, usize::MAX / 2] {
                let e = e.as_ref().map(|e| e.as_ref().as_ref().unwrap());
                let (dwl, pl) = (dwl.as_ref().as_ref().unwrap(), pl.as_ref().as_ref().unwrap());
                let y = channels_last::inverted_residual(&xv, [b, h, w, c_in], e, dwl, g, pl, residual, [relu6, relu6, identity], band_bytes).unwrap();
                assert!(y.into_iter().map(f32::to_bits).collect::<Vec<_>>() == want, "{case}, bands of {band_bytes} bytes");
            }
        }
        // not of the block's form: a 3×3 "expansion" is left to the layers
        let (conv, bn) = layer(4, 8, 3, 1, 1, 1, false, &device);
        let (dw, project) = (layer(8, 8, 3, 1, 1, 8, false, &device), layer(8, 4, 1, 1, 0, 1, false, &device));
        let cache = FoldedCache::default();
        let l = |conv, bn, act| ConvBnLayer { conv, bn, cache: &cache, act };
        let x = Tensor::<4>::random([1, 6, 6, 4], Distribution::Normal(0.0, 1.0), &device);
        assert!(inverted_residual_channels_last(Some(l(&conv, &bn, relu6)), l(&dw.0, &dw.1, relu6), l(&project.0, &project.1, identity), true, &x).is_none());
    }

    #[test]
    fn every_path_matches_burns_conv_then_batch_norm() {
        let device = Device::flex();
        for (shape, c_out, k, s, p, g, bias) in CASES {
            let (conv, bn) = layer(shape[1], c_out, k, s, p, g, bias, &device);
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device);
            assert!(predicted(&conv, &bn, None, Activation::Identity, &x).is_some(), "{shape:?} k{k} s{s} g{g}: not folded");
            for act in [Activation::Identity, Activation::Relu, Activation::Relu6] {
                let ours = conv_bn(&conv, &bn, None, act, x.clone());
                let want = activate(bn.forward(conv.forward(x.clone())), act);
                let d = max_rel_diff(ours.clone(), want.clone());
                assert!(d < 1e-5, "{shape:?} k{k} s{s} p{p} g{g} {act:?}: {d}");
                // with a shortcut of the output's shape
                let r = Tensor::<4>::random(want.dims(), Distribution::Normal(0.0, 1.0), &device);
                let ours = conv_bn(&conv, &bn, Some(r.clone()), act, x.clone());
                let want = activate(bn.forward(conv.forward(x.clone())) + r, act);
                let d = max_rel_diff(ours, want);
                assert!(d < 1e-5, "{shape:?} k{k} s{s} p{p} g{g} {act:?} with shortcut: {d}");
            }
        }
    }

    #[test]
    fn channels_last_matches_the_nchw_layer() {
        if !channels_last_applies(&Tensor::<1>::zeros([1], &Device::flex())) {
            eprintln!("note: skipped, this CPU does not run the packed kernel (the channels-last pass is off on it)");
            return;
        }
        let device = Device::flex();
        // the cases above, and channel counts past one register block of 16 (depthwise 24 =
        // 16 + 8, 40 = 2 × 16 + 8, 72 = 4 × 16 + 8), more rows than one task of the packed
        // kernel and K past one block (9·40); depthwise over whole blocks of 16 channels (the
        // AVX-512 pass of inner pixels: 19, 10 and 9 of them, 8 at a time and the rest)
        let wide: [Case; 9] = [
            ([1, 32, 13, 21], 32, 3, 1, 1, 32, false),
            ([2, 48, 12, 23], 48, 3, 2, 1, 48, true),
            ([1, 16, 9, 20], 16, 3, 2, 1, 16, false),
            ([1, 24, 9, 10], 24, 3, 1, 1, 24, true),
            ([2, 72, 6, 7], 72, 3, 2, 1, 72, false),
            ([2, 40, 15, 13], 40, 3, 1, 1, 40, false),
            ([2, 40, 14, 14], 40, 3, 2, 1, 40, true),
            ([3, 40, 12, 11], 24, 3, 1, 1, 1, true),
            ([2, 40, 13, 9], 72, 1, 1, 0, 1, false),
        ];
        for (shape, c_out, k, s, p, g, bias) in CASES.into_iter().chain(wide) {
            let (conv, bn) = layer(shape[1], c_out, k, s, p, g, bias, &device);
            let cache = FoldedCache::default();
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device);
            let xl = to_channels_last(x.clone());
            for act in [Activation::Identity, Activation::Relu6] {
                let want = conv_bn(&conv, &bn, None, act, x.clone());
                let ours =
                    conv_bn_channels_last(&conv, &bn, &cache, None, act, &xl).unwrap_or_else(|| panic!("{shape:?} k{k} s{s} g{g}: no channels-last pass"));
                let d = max_rel_diff(from_channels_last(ours), want.clone());
                assert!(d < 1e-5, "{shape:?} k{k} s{s} p{p} g{g} {act:?}: {d}");
                let r = Tensor::<4>::random(want.dims(), Distribution::Normal(0.0, 1.0), &device);
                let want = conv_bn(&conv, &bn, Some(r.clone()), act, x.clone());
                let ours = conv_bn_channels_last(&conv, &bn, &cache, Some(&to_channels_last(r)), act, &xl).expect("the same layer");
                let d = max_rel_diff(from_channels_last(ours), want);
                assert!(d < 1e-5, "{shape:?} k{k} s{s} p{p} g{g} {act:?} with shortcut: {d}");
            }
            assert_eq!(cache.builds.load(std::sync::atomic::Ordering::Relaxed), 1, "{shape:?}: folded once for four calls");
        }
        // a grouped convolution that is not depthwise has no channels-last pass; nor has autodiff
        let (conv, bn) = layer(4, 6, 3, 1, 1, 2, false, &device);
        let x = to_channels_last(Tensor::<4>::random([1, 4, 5, 5], Distribution::Normal(0.0, 1.0), &device));
        assert!(conv_bn_channels_last(&conv, &bn, &FoldedCache::default(), None, Activation::Identity, &x).is_none());
        let ad = Device::flex().autodiff();
        let (conv, bn) = layer(4, 4, 1, 1, 0, 1, false, &ad);
        let x = to_channels_last(Tensor::<4>::random([1, 4, 5, 5], Distribution::Normal(0.0, 1.0), &ad));
        assert!(conv_bn_channels_last(&conv, &bn, &FoldedCache::default(), None, Activation::Identity, &x).is_none());
    }

    #[test]
    fn a_changed_batch_norm_folds_again() {
        let device = Device::flex();
        if !channels_last_applies(&Tensor::<1>::zeros([1], &device)) {
            eprintln!("note: skipped, this CPU does not run the packed kernel");
            return;
        }
        let (conv, mut bn) = layer(16, 16, 1, 1, 0, 1, false, &device);
        let cache = FoldedCache::default();
        let x = to_channels_last(Tensor::<4>::random([1, 16, 3, 3], Distribution::Normal(0.0, 1.0), &device));
        let before = conv_bn_channels_last(&conv, &bn, &cache, None, Activation::Identity, &x).unwrap();
        bn.beta = Param::from_tensor(bn.beta.val() + 1.0);
        let after = conv_bn_channels_last(&conv, &bn, &cache, None, Activation::Identity, &x).unwrap();
        assert_eq!(cache.builds.load(std::sync::atomic::Ordering::Relaxed), 2);
        // β + 1 moves every output by exactly 1 (to rounding)
        let d = (after - before - 1.0).abs().max().into_scalar::<f32>();
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn a_hand_computed_depthwise_case_and_nan() {
        let device = Device::flex();
        // one channel, 3×3 taps 1..=9, γ = 2, β = 1, μ = 0.5, σ² = 4 − ε: y = (conv(x) − 0.5)·1 + 1
        let (mut conv, mut bn) = layer(1, 1, 3, 1, 1, 1, false, &device);
        conv.weight = Param::from_tensor(Tensor::<1>::from_floats([1., 2., 3., 4., 5., 6., 7., 8., 9.], &device).reshape([1, 1, 3, 3]));
        bn.gamma = Param::from_tensor(Tensor::from_floats([2.0], &device));
        bn.beta = Param::from_tensor(Tensor::from_floats([1.0], &device));
        bn.running_mean = burn::module::RunningState::new(Tensor::from_floats([0.5], &device));
        bn.running_var = burn::module::RunningState::new(Tensor::from_floats([4.0 - 1e-5], &device));
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], &device).reshape([1, 1, 2, 2]);
        // conv (padding 1) of [[1,2],[3,4]]: at (0,0) taps 5·1 + 6·2 + 8·3 + 9·4 = 77
        let y = conv_bn(&conv, &bn, None, Activation::Identity, x).into_data().try_to_vec::<f32>().unwrap();
        let want =
            [77.0f32, 4. * 1. + 5. * 2. + 7. * 3. + 8. * 4., 2. * 1. + 3. * 2. + 5. * 3. + 6. * 4., 1. + 2. * 2. + 4. * 3. + 5. * 4.].map(|c| (c - 0.5) + 1.0);
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{y:?} vs {want:?}");
        }
        // ReLU6 caps; a NaN reaches exactly the outputs whose window holds it
        let x = Tensor::<1>::from_floats([f32::NAN, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], &device).reshape([1, 1, 3, 3]);
        let y = conv_bn(&conv, &bn, None, Activation::Relu6, x).into_data().try_to_vec::<f32>().unwrap();
        let nan_at: Vec<usize> = y.iter().enumerate().filter(|(_, v)| v.is_nan()).map(|(i, _)| i).collect();
        assert_eq!(nan_at, vec![0, 1, 3, 4]);
        assert!(y.iter().filter(|v| !v.is_nan()).all(|v| *v == 6.0));
    }

    #[test]
    fn autodiff_takes_burns_path_and_trains() {
        // under autodiff the batch norm trains on batch statistics: the layer is burn's
        let device = Device::flex().autodiff();
        let (conv, bn) = layer(4, 4, 3, 1, 1, 4, false, &device);
        let x = Tensor::<4>::random([2, 4, 5, 5], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let y = conv_bn(&conv, &bn, None, Activation::Relu6, x.clone());
        let want = crate::relu6(bn.forward(conv.forward(x.clone())));
        assert!(max_rel_diff(y.clone(), want) < 1e-6);
        let g = y.sum().backward();
        assert!(conv.weight.grad(&g).is_some() && x.grad(&g).is_some());
    }
}
