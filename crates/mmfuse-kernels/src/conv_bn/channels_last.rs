//! The passes of a convolution with its batch norm folded in over channels-last feature maps
//! (`[B, H, W, C]` row-major f32), for CNNs kept in that layout between layers at prediction.
//!
//! Channels-last, a convolution with `groups = 1` is one product over the whole batch:
//! `[B·OH·OW, kh·kw·C_in] × [kh·kw·C_in, C_out]`, where a 1×1 / stride-1 / unpadded one reads
//! the map itself as the left operand and any other gathers its windows first (im2col, rows of
//! `(ky, kx, c)`). The right operand is the folded weight packed once ([`FoldedLayer`], kept in
//! the layer's [`DerivedCache`](crate::cache::DerivedCache)) for the packed `Linear` kernel,
//! which adds the bias as it stores and then the shortcut and the activation while each block
//! of output is in cache. A depthwise convolution sums its taps along the channels, 16 at a time
//! in registers, pixel by pixel: every load is a contiguous vector whatever the plane's width.
//! In the NCHW layout the 1×1 convolutions were products per sample with a short `K` and the
//! depthwise ones passes over 7- to 112-wide planes.

use super::Activation;
use super::forward::{Folded, Geometry, add_then_activate};
use crate::linear::packed::{self, PackedWeight};
use rayon::prelude::*;

/// A convolution and its batch norm folded for the channels-last passes.
pub struct FoldedLayer {
    kind: Kind,
    /// `[C_out]`
    bias: Vec<f32>,
}

enum Kind {
    /// `groups = 1`: the weight as `[kh·kw·C_in, C_out]` (rows in `(ky, kx, c)` order), packed.
    Dense(PackedWeight),
    /// `groups = C_in = C_out`: the taps as `[kh·kw, C]`.
    Depthwise(Vec<f32>),
}

impl FoldedLayer {
    /// From the folded weight `[C_out, C_in / groups, kh, kw]` (row-major) and bias; `None` for
    /// a grouped convolution that is not depthwise.
    pub(crate) fn new(f: Folded, [c_out, c_in, kh, kw]: [usize; 4], groups: usize) -> Option<Self> {
        let kind = if groups == 1 {
            let k = kh * kw * c_in;
            let mut m = vec![0f32; k * c_out];
            for (o, w) in f.weight.chunks_exact(c_in * kh * kw).enumerate() {
                for (ci, w) in w.chunks_exact(kh * kw).enumerate() {
                    for (t, &v) in w.iter().enumerate() {
                        m[(t * c_in + ci) * c_out + o] = v;
                    }
                }
            }
            Kind::Dense(PackedWeight::new(&m, k, c_out))
        } else if groups == c_out && c_in == 1 {
            let mut taps = vec![0f32; kh * kw * c_out];
            for (ch, w) in f.weight.chunks_exact(kh * kw).enumerate() {
                for (t, &v) in w.iter().enumerate() {
                    taps[t * c_out + ch] = v;
                }
            }
            Kind::Depthwise(taps)
        } else {
            return None;
        };
        Some(Self { kind, bias: f.bias })
    }

    /// Output channels.
    pub(crate) fn channels(&self) -> usize {
        self.bias.len()
    }
}

/// The layer over `x` `[b, h, w, c]` (channels-last values) with geometry `g`, plus `shortcut`
/// (`[b, oh, ow, C_out]`), then `act`: `[b, oh, ow, C_out]`.
///
/// # Panics
/// If the lengths do not match the shapes, or the packed kernel does not run on this CPU.
pub(crate) fn forward(x: &[f32], layer: &FoldedLayer, shortcut: Option<&[f32]>, [b, c]: [usize; 2], g: Geometry, act: Activation) -> Vec<f32> {
    let [h, w] = g.input;
    let [oh, ow] = g.output();
    let c_out = layer.channels();
    assert!(x.len() == b * h * w * c && shortcut.is_none_or(|r| r.len() == b * oh * ow * c_out), "conv_bn channels-last: shapes do not match the data");
    match &layer.kind {
        Kind::Dense(weight) => {
            let rows = b * oh * ow;
            let pointwise = g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [0; 4];
            let cols = if pointwise { None } else { Some(im2col(x, [b, c], g)) };
            let a = cols.as_deref().unwrap_or(x);
            let after = |row: usize, c0: usize, y: &mut [f32]| add_then_activate(y, shortcut.map(|r| &r[row * c_out + c0..]), act);
            packed::forward_then(a, rows, weight, Some(&layer.bias), &after)
        }
        Kind::Depthwise(taps) => depthwise(x, taps, &layer.bias, shortcut, b, g, act),
    }
}

/// The windows of every output pixel as rows of `(ky, kx, c)`, zeros where a tap falls in the
/// padding: `[b·oh·ow, kh·kw·c]`.
fn im2col(x: &[f32], [b, c]: [usize; 2], g: Geometry) -> Vec<f32> {
    let [h, w] = g.input;
    let [oh, ow] = g.output();
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let [top, _, left, _] = g.padding;
    let row_len = kh * kw * c;
    let mut cols = vec![0f32; b * oh * ow * row_len];
    cols.par_chunks_mut(ow * row_len).enumerate().for_each(|(r, out)| {
        let (s, oy) = (r / oh, r % oh);
        for (ox, window) in out.chunks_exact_mut(row_len).enumerate() {
            for ky in 0..kh {
                let Some(iy) = (oy * sy + ky).checked_sub(top).filter(|&iy| iy < h) else { continue };
                let dst = &mut window[ky * kw * c..(ky + 1) * kw * c];
                let src = (s * h + iy) * w * c;
                match (ox * sx).checked_sub(left).filter(|&ix| ix + kw <= w) {
                    // the kernel row inside the input: its kw pixels are contiguous
                    Some(ix) => dst.copy_from_slice(&x[src + ix * c..src + (ix + kw) * c]),
                    None => {
                        for kx in 0..kw {
                            let Some(ix) = (ox * sx + kx).checked_sub(left).filter(|&ix| ix < w) else { continue };
                            dst[kx * c..(kx + 1) * c].copy_from_slice(&x[src + ix * c..src + (ix + 1) * c]);
                        }
                    }
                }
            }
        }
    });
    cols
}

/// Channels per register block of the depthwise pass.
const LANES: usize = 16;

/// Depthwise convolution channels-last: each output row `[ow, C]` of each sample in parallel,
/// each pixel's channels 16 at a time, `bias + Σ taps` in `(ky, kx)` order, then the shortcut
/// and the activation.
fn depthwise(x: &[f32], taps: &[f32], bias: &[f32], shortcut: Option<&[f32]>, b: usize, g: Geometry, act: Activation) -> Vec<f32> {
    let c = bias.len();
    let [oh, ow] = g.output();
    let mut out = vec![0f32; b * oh * ow * c];
    out.par_chunks_mut(ow * c).enumerate().for_each(|(r, row)| {
        pulp::Arch::new().dispatch(DepthwiseRow { x, taps, bias, row, sample: r / oh, oy: r % oh, g });
        add_then_activate(row, shortcut.map(|s| &s[r * ow * c..]), act);
    });
    out
}

/// One output row of the depthwise pass (vectorised with the CPU's widest instructions).
struct DepthwiseRow<'a> {
    x: &'a [f32],
    taps: &'a [f32],
    bias: &'a [f32],
    row: &'a mut [f32],
    sample: usize,
    oy: usize,
    g: Geometry,
}

impl pulp::WithSimd for DepthwiseRow<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self { x, taps, bias, row, sample, oy, g } = self;
        let c = bias.len();
        let [h, w] = g.input;
        let [kh, kw] = g.kernel;
        let [sy, sx] = g.stride;
        let [top, _, left, _] = g.padding;
        // the kernel rows inside the input for this output row, and their input rows
        let rows: Vec<(usize, usize)> = (0..kh).filter_map(|ky| (oy * sy + ky).checked_sub(top).filter(|&iy| iy < h).map(|iy| (ky, iy))).collect();
        // the taps of a pixel whose window lies inside its rows, as (offset in taps, offset in
        // x from the window's first column): one list for every such pixel of the row
        let inner: Vec<(usize, usize)> =
            rows.iter().flat_map(|&(ky, iy)| (0..kw).map(move |kx| ((ky * kw + kx) * c, ((sample * h + iy) * w + kx) * c))).collect();
        let ow = row.len() / c;
        let is_inner = |ox: usize| ox * sx >= left && ox * sx - left + kw <= w;
        let mut live: Vec<(usize, usize)> = Vec::with_capacity(kh * kw);
        for ox in 0..ow {
            let (taps_of_pixel, base) = if is_inner(ox) {
                (&inner, (ox * sx - left) * c)
            } else {
                // a pixel by the border: the taps inside the input only
                live.clear();
                for &(ky, iy) in &rows {
                    for kx in 0..kw {
                        if let Some(ix) = (ox * sx + kx).checked_sub(left).filter(|&ix| ix < w) {
                            live.push(((ky * kw + kx) * c, ((sample * h + iy) * w + ix) * c));
                        }
                    }
                }
                (&live, 0)
            };
            let out = &mut row[ox * c..(ox + 1) * c];
            // up to four blocks of 16 channels at once: four independent chains of
            // multiply-adds (one chain waits out each multiply-add's latency)
            let mut c0 = 0;
            while c0 + LANES <= c {
                let blocks = ((c - c0) / LANES).min(4);
                match blocks {
                    4 => sum_taps::<4>(x, taps, bias, taps_of_pixel, base, c0, out),
                    3 => sum_taps::<3>(x, taps, bias, taps_of_pixel, base, c0, out),
                    2 => sum_taps::<2>(x, taps, bias, taps_of_pixel, base, c0, out),
                    _ => sum_taps::<1>(x, taps, bias, taps_of_pixel, base, c0, out),
                }
                c0 += blocks * LANES;
            }
            for ch in c0..c {
                let mut acc = bias[ch];
                for &(t, i) in taps_of_pixel {
                    acc = taps[t + ch].mul_add(x[base + i + ch], acc);
                }
                out[ch] = acc;
            }
        }
    }
}

/// Channels `c0..c0 + 16·N` of one output pixel: `bias + Σ taps`, the taps `live` as
/// `(offset in taps, offset in x from the pixel's base)`, in order.
#[inline(always)]
fn sum_taps<const N: usize>(x: &[f32], taps: &[f32], bias: &[f32], live: &[(usize, usize)], base: usize, c0: usize, out: &mut [f32]) {
    let mut acc = [[0f32; LANES]; N];
    for (n, acc) in acc.iter_mut().enumerate() {
        acc.copy_from_slice(&bias[c0 + n * LANES..c0 + (n + 1) * LANES]);
    }
    for &(t, i) in live {
        let (wv, xv) = (&taps[t + c0..t + c0 + N * LANES], &x[base + i + c0..base + i + c0 + N * LANES]);
        for (n, acc) in acc.iter_mut().enumerate() {
            for j in 0..LANES {
                acc[j] = wv[n * LANES + j].mul_add(xv[n * LANES + j], acc[j]);
            }
        }
    }
    for (n, acc) in acc.iter().enumerate() {
        out[c0 + n * LANES..c0 + (n + 1) * LANES].copy_from_slice(acc);
    }
}
