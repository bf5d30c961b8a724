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
//! in registers: every load is a contiguous vector whatever the plane's width. A 3×3 one over
//! whole blocks of 16 channels on AVX-512 keeps the block's 9 taps in registers and runs 8
//! pixels at a time (4 at stride 2), each input pixel of a kernel row loaded once for them all;
//! otherwise pixel by pixel, four blocks of 16 at once. In the NCHW layout the 1×1 convolutions
//! were products per sample with a short `K` and the depthwise ones passes over 7- to 112-wide
//! planes.
//!
//! An inverted residual block (expansion, depthwise, projection: [`inverted_residual`]) runs
//! band by band of output rows, so that its expanded rows never leave the core's L2.

use super::Activation;
use super::forward::{Folded, Geometry, add_then_activate};
use crate::linear::packed::{self, PackedWeight};
use crate::math::{PARALLEL_CHUNK, for_row_chunks};
use rayon::prelude::*;
use std::mem::MaybeUninit;

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
            let cols = if g.is_pointwise() { None } else { Some(im2col(x, [b, c], g)) };
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
    // not zeroed first: every value is written, the padding's zeros with the rest
    let total = b * oh * ow * row_len;
    let mut cols = Vec::<f32>::with_capacity(total);
    let zero = MaybeUninit::new(0f32);
    let gather = |r: usize, out: &mut [MaybeUninit<f32>]| {
        let (s, oy) = (r / oh, r % oh);
        for (ox, window) in out.chunks_exact_mut(row_len).enumerate() {
            for ky in 0..kh {
                let dst = &mut window[ky * kw * c..(ky + 1) * kw * c];
                let Some(iy) = (oy * sy + ky).checked_sub(top).filter(|&iy| iy < h) else {
                    dst.fill(zero);
                    continue;
                };
                let src = (s * h + iy) * w * c;
                match (ox * sx).checked_sub(left).filter(|&ix| ix + kw <= w) {
                    // the kernel row inside the input: its kw pixels are contiguous
                    Some(ix) => {
                        dst.write_copy_of_slice(&x[src + ix * c..src + (ix + kw) * c]);
                    }
                    None => {
                        for (kx, dst) in dst.chunks_exact_mut(c).enumerate() {
                            match (ox * sx + kx).checked_sub(left).filter(|&ix| ix < w) {
                                Some(ix) => {
                                    dst.write_copy_of_slice(&x[src + ix * c..src + (ix + 1) * c]);
                                }
                                None => dst.fill(zero),
                            }
                        }
                    }
                }
            }
        }
    };
    // split over the pool by output rows, at least PARALLEL_CHUNK values a task
    let line = ow * row_len;
    if line > 0 {
        for_row_chunks(&mut cols.spare_capacity_mut()[..total], line, (PARALLEL_CHUNK / line).max(1), gather);
    }
    // SAFETY: `gather` wrote every value of every output row (each window's kh rows of kw
    // pixels of c values: copied, or zeros in the padding).
    unsafe { cols.set_len(total) };
    cols
}

/// Bytes of expanded rows a band of [`inverted_residual`] holds: with the band's depthwise output
/// and its input rows, well inside a core's L2 (1 MiB on Zen 4, 1.25–2 MiB on recent Intel).
pub(crate) const BAND_BYTES: usize = 256 << 10;

/// An inverted residual block (MobileNetV2's) over one channels-last map `x` `[b, h, w, C_in]`:
/// the 1×1 `expand` (absent: the depthwise layer reads `x`), the depthwise `dw` of geometry `g`,
/// the 1×1 `project`, plus `x` as the shortcut when `residual`, each with its activation from
/// `acts`. Band by band of output rows rather than layer by layer: a band's expanded rows
/// (about `band_bytes`) and its depthwise output stay in cache from the product that writes them
/// to the pass that reads them, instead of maps of up to 4.8 MB per sample going out to L3 and
/// back between the layers. Rows the next band reads again are kept, not recomputed. Every
/// output is summed in the same order as layer by layer: the same bits. `None` where a layer
/// is not of that form.
#[allow(clippy::too_many_arguments)]
pub(crate) fn inverted_residual(
    x: &[f32],
    [b, h, w, c_in]: [usize; 4],
    expand: Option<&FoldedLayer>,
    dw: &FoldedLayer,
    g: Geometry,
    project: &FoldedLayer,
    residual: bool,
    acts: [Activation; 3],
    band_bytes: usize,
) -> Option<Vec<f32>> {
    let expand = match expand {
        Some(FoldedLayer { kind: Kind::Dense(weight), bias }) if weight.k() == c_in => Some((weight, bias.as_slice())),
        Some(_) => return None,
        None => None,
    };
    let hidden = expand.map_or(c_in, |(_, bias)| bias.len());
    let (Kind::Depthwise(taps), Kind::Dense(pw)) = (&dw.kind, &project.kind) else { return None };
    let c_out = project.channels();
    let [oh, ow] = g.output();
    let [kh, _] = g.kernel;
    let [sy, _] = g.stride;
    let top = g.padding[0];
    if dw.channels() != hidden || pw.k() != hidden || g.input != [h, w] || (residual && ([oh, ow] != [h, w] || c_out != c_in)) || x.len() != b * h * w * c_in {
        return None;
    }
    // output rows per band: (band - 1)·sy + kh input rows of `hidden` channels in band_bytes
    let fit = band_bytes / (w * hidden * 4).max(1);
    let band = (fit.saturating_sub(kh) / sy + 1).min(oh);
    let mut out = vec![0f32; b * oh * ow * c_out];
    let mut expanded: Vec<f32> = Vec::new();
    let mut dw_out = vec![0f32; band * ow * hidden];
    let expand_act = |_: usize, _: usize, y: &mut [f32]| add_then_activate(y, None, acts[0]);
    for (xs, ys) in x.chunks_exact(h * w * c_in).zip(out.chunks_exact_mut(oh * ow * c_out)) {
        // the input rows `expanded` holds: [have.0, have.1)
        let mut have = (0, 0);
        for oy0 in (0..oh).step_by(band) {
            let oy1 = (oy0 + band).min(oh);
            let (lo, hi) = ((oy0 * sy).saturating_sub(top), ((oy1 - 1) * sy + kh).saturating_sub(top).min(h));
            let (rows_in, first_row) = match expand {
                None => (xs, 0),
                Some((weight, bias)) => {
                    // rows the last band expanded and this one reads again move to the front
                    let kept = if have.0 <= lo && lo < have.1 { have.1 - lo } else { 0 };
                    if kept > 0 {
                        expanded.copy_within((lo - have.0) * w * hidden..(have.1 - have.0) * w * hidden, 0);
                    }
                    expanded.resize((hi - lo) * w * hidden, 0.0);
                    let from = lo + kept;
                    if hi > from {
                        let dst = &mut expanded[(from - lo) * w * hidden..];
                        packed::forward_into(&xs[from * w * c_in..hi * w * c_in], (hi - from) * w, weight, Some(bias), Some(&expand_act), dst);
                    }
                    have = (lo, hi);
                    (&expanded[..], lo)
                }
            };
            let dwo = &mut dw_out[..(oy1 - oy0) * ow * hidden];
            depthwise_rows(rows_in, first_row, taps, &dw.bias, g, acts[1], oy0..oy1, dwo);
            let shortcut = residual.then(|| &xs[oy0 * ow * c_in..oy1 * ow * c_in]);
            let after = |row: usize, c0: usize, y: &mut [f32]| add_then_activate(y, shortcut.map(|r| &r[row * c_out + c0..]), acts[2]);
            packed::forward_into(dwo, (oy1 - oy0) * ow, pw, Some(&project.bias), Some(&after), &mut ys[oy0 * ow * c_out..oy1 * ow * c_out]);
        }
    }
    Some(out)
}

/// Channels per register block of the depthwise pass.
const LANES: usize = 16;

/// Depthwise convolution channels-last: each output row `[ow, C]` of each sample in parallel,
/// each pixel's channels 16 at a time, `bias + Σ taps` in `(ky, kx)` order, then the shortcut
/// and the activation.
fn depthwise(x: &[f32], taps: &[f32], bias: &[f32], shortcut: Option<&[f32]>, b: usize, g: Geometry, act: Activation) -> Vec<f32> {
    let c = bias.len();
    let [h, w] = g.input;
    let [oh, ow] = g.output();
    let mut out = vec![0f32; b * oh * ow * c];
    out.par_chunks_mut(ow * c).enumerate().for_each(|(r, row)| {
        let sample = &x[r / oh * h * w * c..(r / oh + 1) * h * w * c];
        let shortcut = shortcut.map(|s| &s[r * ow * c..]);
        depthwise_row(row, shortcut, act, |row, act| pulp::Arch::new().dispatch(DepthwiseRow { x: sample, first_row: 0, taps, bias, row, oy: r % oh, g, act }));
    });
    out
}

/// Output rows `oys` of one sample's depthwise pass into `out` (`[oys.len(), ow, C]`), then
/// `act`: `x` holds the input rows from `first_row` on, every row those outputs read.
#[allow(clippy::too_many_arguments)]
fn depthwise_rows(x: &[f32], first_row: usize, taps: &[f32], bias: &[f32], g: Geometry, act: Activation, oys: std::ops::Range<usize>, out: &mut [f32]) {
    let [_, ow] = g.output();
    let c = bias.len();
    out.par_chunks_mut(ow * c)
        .zip(oys)
        .for_each(|(row, oy)| depthwise_row(row, None, act, |row, act| pulp::Arch::new().dispatch(DepthwiseRow { x, first_row, taps, bias, row, oy, g, act })));
}

/// One output row: `pass` (a [`DepthwiseRow`]), offered `act` where no shortcut comes before it,
/// then the shortcut and `act` over the row unless the pass applied it.
fn depthwise_row(row: &mut [f32], shortcut: Option<&[f32]>, act: Activation, pass: impl FnOnce(&mut [f32], Option<Activation>) -> bool) {
    if !pass(row, shortcut.is_none().then_some(act)) {
        add_then_activate(row, shortcut, act);
    }
}

/// One output row of the depthwise pass (vectorised with the CPU's widest instructions).
struct DepthwiseRow<'a> {
    /// One sample's input rows `[.., w, C]` from `first_row` on.
    x: &'a [f32],
    first_row: usize,
    taps: &'a [f32],
    bias: &'a [f32],
    row: &'a mut [f32],
    oy: usize,
    g: Geometry,
    /// The activation, for the pass to apply where it can (it then returns true).
    act: Option<Activation>,
}

impl pulp::WithSimd for DepthwiseRow<'_> {
    /// Whether the row is activated (with `act`).
    type Output = bool;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> bool {
        let Self { x, first_row, taps, bias, row, oy, g, act } = self;
        #[cfg(not(target_arch = "x86_64"))]
        let _ = act;
        let c = bias.len();
        let [h, w] = g.input;
        let [kh, kw] = g.kernel;
        let [sy, sx] = g.stride;
        let [top, _, left, _] = g.padding;
        // the kernel rows inside the input for this output row, with their input row's offset
        // in `x`
        let rows: Vec<(usize, usize)> =
            (0..kh).filter_map(|ky| (oy * sy + ky).checked_sub(top).filter(|&iy| iy < h).map(|iy| (ky, (iy - first_row) * w * c))).collect();
        let ow = row.len() / c;
        // a 3 × 3 kernel over whole blocks of 16 channels: the AVX-512 pass
        #[cfg(target_arch = "x86_64")]
        if [kh, kw] == [3, 3] && c % LANES == 0 && !rows.is_empty() && packed::isa() == Some(packed::Isa::Avx512) {
            debug_assert!(rows.iter().all(|r| r.1 + w * c <= x.len()) && taps.len() == 9 * c && row.len() == ow * c);
            // SAFETY: the CPU has AVX-512F (checked above); the kernel rows inside the input
            // lie in `x`, w × C values each; the taps are 9 × C, `row` holds ow × C values, C
            // a multiple of 16.
            unsafe {
                avx512::row_3x3(x.as_ptr(), &rows, taps.as_ptr(), bias.as_ptr(), [w, c], [sx, left], act.and_then(Activation::clamp_max), row.as_mut_ptr(), ow)
            };
            return act.is_some();
        }
        // the taps of a pixel whose window lies inside its rows, as (offset in taps, offset in
        // x from the window's first column): one list for every such pixel of the row
        let inner: Vec<(usize, usize)> = rows.iter().flat_map(|&(ky, r)| (0..kw).map(move |kx| ((ky * kw + kx) * c, r + kx * c))).collect();
        let is_inner = |ox: usize| ox * sx >= left && ox * sx - left + kw <= w;
        let mut live: Vec<(usize, usize)> = Vec::with_capacity(kh * kw);
        for ox in 0..ow {
            let (taps_of_pixel, base) = if is_inner(ox) {
                (&inner, (ox * sx - left) * c)
            } else {
                // a pixel by the border: the taps inside the input only
                live.clear();
                for &(ky, r) in &rows {
                    for kx in 0..kw {
                        if let Some(ix) = (ox * sx + kx).checked_sub(left).filter(|&ix| ix < w) {
                            live.push(((ky * kw + kx) * c, r + ix * c));
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
        false
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// One output row of `ow` pixels of a 3 × 3 depthwise pass: for each block of 16 channels
    /// its 9 taps held in registers; the pixels whose window lies inside the input 8 at a time
    /// at stride 1 (4 at stride 2), each input pixel of a kernel row loaded once for all of
    /// them; the others (by the border) one at a time over their taps inside the input.
    /// `bias + Σ taps` in `(ky, kx)` order, the taps outside the input skipped: the other
    /// path's sums, the same bits; then, with `clamp`, negatives to 0 and values above it to it
    /// (ReLU, ReLU6; NaN stays) as they are stored. `rows`: `(ky, offset in x)` of the kernel rows inside the
    /// input; pixel `ox` reads columns `ox·sx − left ..+ 3` of a row `w` pixels wide.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `x` holds `w × c` values from each row's offset; `taps` holds
    /// `9 × c` values, `bias` `c`, `out` `ow × c`; `c` is a multiple of 16; every output pixel's
    /// window overlaps the row (`ox·sx < w + left`, `ox·sx + 3 > left`).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row_3x3(
        x: *const f32,
        rows: &[(usize, usize)],
        taps: *const f32,
        bias: *const f32,
        [w, c]: [usize; 2],
        [sx, left]: [usize; 2],
        clamp: Option<f32>,
        out: *mut f32,
        ow: usize,
    ) {
        // the pixels whose window lies inside the row
        let inner = if w + left >= 3 { left.div_ceil(sx).min(ow)..((w + left - 3) / sx + 1).min(ow) } else { 0..0 };
        let inner = inner.start..inner.end.max(inner.start);
        // SAFETY: every offset below stays inside the ranges the caller guarantees.
        unsafe {
            for c0 in (0..c).step_by(LANES) {
                let mut wt = [_mm512_setzero_ps(); 9];
                for (t, wt) in wt.iter_mut().enumerate() {
                    *wt = _mm512_loadu_ps(taps.add(t * c + c0));
                }
                let b = _mm512_loadu_ps(bias.add(c0));
                let store = |at: *mut f32, acc: __m512| _mm512_storeu_ps(at, activate(acc, clamp));
                // a border pixel: its taps inside the row, one at a time
                let border = |ox: usize| {
                    let (kx0, kx1) = (left.saturating_sub(ox * sx), 3.min((w + left).saturating_sub(ox * sx)));
                    let mut acc = b;
                    for &(ky, r) in rows {
                        for kx in kx0..kx1 {
                            acc = _mm512_fmadd_ps(wt[ky * 3 + kx], _mm512_loadu_ps(x.add(r + (ox * sx + kx - left) * c + c0)), acc);
                        }
                    }
                    store(out.add(ox * c + c0), acc);
                };
                (0..inner.start).for_each(border);
                let first = |ox: usize| (ox * sx - left) * c + c0;
                let mut ox = inner.start;
                match sx {
                    1 => {
                        while ox + 8 <= inner.end {
                            pixels_at::<8, 1>(x.add(first(ox)), rows, &wt, b, c, clamp, out.add(ox * c + c0));
                            ox += 8;
                        }
                    }
                    2 => {
                        while ox + 4 <= inner.end {
                            pixels_at::<4, 2>(x.add(first(ox)), rows, &wt, b, c, clamp, out.add(ox * c + c0));
                            ox += 4;
                        }
                    }
                    _ => {}
                }
                for ox in ox..inner.end {
                    pixels_at::<1, 1>(x.add(first(ox)), rows, &wt, b, c, clamp, out.add(ox * c + c0));
                }
                (inner.end..ow).for_each(border);
            }
        }
    }

    /// `P` output pixels `SX` input pixels apart, one block of 16 channels: each kernel row's
    /// `(P − 1)·SX + 3` input pixels (at most 10) loaded once into registers, then every
    /// pixel's three multiply-adds of that row. `x`: the first input pixel's block (at offset 0
    /// of the rows), pixels `c` apart; `out`: the first output pixel's block, pixels `c` apart.
    ///
    /// # Safety
    /// As [`row_3x3`], for pixels whose windows lie inside the rows; `out` holds `P` of them.
    #[inline]
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pixels_at<const P: usize, const SX: usize>(
        x: *const f32,
        rows: &[(usize, usize)],
        wt: &[__m512; 9],
        b: __m512,
        c: usize,
        clamp: Option<f32>,
        out: *mut f32,
    ) {
        const { assert!((P - 1) * SX + 3 <= 10) };
        // SAFETY: as the caller guarantees.
        unsafe {
            let mut acc = [b; P];
            for &(ky, r) in rows {
                let mut v = [_mm512_setzero_ps(); 10];
                for (j, v) in v.iter_mut().enumerate().take((P - 1) * SX + 3) {
                    *v = _mm512_loadu_ps(x.add(r + j * c));
                }
                for (p, acc) in acc.iter_mut().enumerate() {
                    for kx in 0..3 {
                        *acc = _mm512_fmadd_ps(wt[ky * 3 + kx], v[p * SX + kx], *acc);
                    }
                }
            }
            for (p, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(p * c), activate(*acc, clamp));
            }
        }
    }

    /// `acc` with negatives set to 0 and values above `clamp` set to it (ordered comparisons:
    /// NaN stays, as `math::clamp_relu` leaves it); unchanged without `clamp`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn activate(acc: __m512, clamp: Option<f32>) -> __m512 {
        match clamp {
            None => acc,
            Some(max) => {
                let y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(acc, _mm512_setzero_ps()), acc, _mm512_setzero_ps());
                _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, _mm512_set1_ps(max)), y, _mm512_set1_ps(max))
            }
        }
    }
}
