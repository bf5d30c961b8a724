//! The passes of a convolution with its batch norm folded in, over f32 data: the fold, the 1×1
//! convolution (one `gemm` per sample), the depthwise convolution (a padded copy of each plane,
//! then the taps of each kernel row summed in one vectorised pass per output row) and the
//! epilogue (shortcut add and activation, in place).

use crate::autodiff::gemm_strided;
use crate::math::{PARALLEL_CHUNK, clamp_relu, for_chunks};
use gemm::Parallelism;
use rayon::prelude::*;

/// The activation after the batch norm (and the shortcut, if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// `max(x, 0)` (ResNet)
    Relu,
    /// `min(max(x, 0), 6)` (MobileNetV2)
    Relu6,
}

impl Activation {
    /// The upper bound of its clamp (negatives go to 0 below it); `None`: the identity.
    pub(crate) fn clamp_max(self) -> Option<f32> {
        match self {
            Activation::Identity => None,
            Activation::Relu => Some(f32::INFINITY),
            Activation::Relu6 => Some(6.0),
        }
    }
}

/// A convolution weight `[C_out, …]` and bias with an inference batch norm folded in:
/// `w' = w·s`, `b' = β + (b − μ)·s` with `s = γ / √(σ² + ε)` per output channel.
pub(crate) struct Folded {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Fold `gamma`, `beta`, running `mean` and `var` (each `[C_out]`) and `epsilon` into `weight`
/// (`C_out` rows of equal length) and the convolution's `bias` (zero when absent).
pub(crate) fn fold(weight: &[f32], bias: Option<&[f32]>, [gamma, beta, mean, var]: [&[f32]; 4], epsilon: f64) -> Folded {
    let c_out = gamma.len();
    let per = weight.len() / c_out;
    let mut w = weight.to_vec();
    let mut b = vec![0f32; c_out];
    for o in 0..c_out {
        // in f64, rounded once: the folded layer is within an ulp or two of burn's two passes
        let s = gamma[o] as f64 / (var[o] as f64 + epsilon).sqrt();
        for v in &mut w[o * per..(o + 1) * per] {
            *v = (*v as f64 * s) as f32;
        }
        b[o] = (beta[o] as f64 + (bias.map_or(0.0, |b| b[o]) as f64 - mean[o] as f64) * s) as f32;
    }
    Folded { weight: w, bias: b }
}

/// Each of the `B·C` planes of `out` (`hw` values each) set to its channel's bias, plus the
/// shortcut's plane when there is one.
fn init_planes(out: &mut [f32], bias: &[f32], shortcut: Option<&[f32]>, hw: usize) {
    let c = bias.len();
    out.par_chunks_mut(hw * c).enumerate().for_each(|(s, sample)| {
        for (ch, plane) in sample.chunks_mut(hw).enumerate() {
            match shortcut {
                Some(r) => {
                    let r = &r[(s * c + ch) * hw..(s * c + ch + 1) * hw];
                    for (o, r) in plane.iter_mut().zip(r) {
                        *o = bias[ch] + r;
                    }
                }
                None => plane.fill(bias[ch]),
            }
        }
    });
}

/// 1×1 convolution, stride 1, no padding: `x` `[B, C, HW]` → `[B, C_out, HW]`, each sample's
/// output `weight [C_out, C] · x_s [C, HW]` added onto the bias (and the shortcut).
pub(crate) fn pointwise(x: &[f32], f: &Folded, shortcut: Option<&[f32]>, [b, c, hw]: [usize; 3], act: Activation) -> Vec<f32> {
    let c_out = f.bias.len();
    assert!(x.len() == b * c * hw && f.weight.len() == c_out * c, "conv_bn 1x1: shapes do not match the data");
    let mut out = vec![0f32; b * c_out * hw];
    init_planes(&mut out, &f.bias, shortcut, hw);
    let parallelism = if b == 1 { Parallelism::Rayon(0) } else { Parallelism::None };
    out.par_chunks_mut(c_out * hw).enumerate().for_each(|(s, y)| {
        let xs = &x[s * c * hw..(s + 1) * c * hw];
        gemm_strided(y, hw, true, &f.weight, [c, 1], xs, [hw, 1], [c_out, hw, c], parallelism);
        epilogue(y, act);
    });
    out
}

/// The geometry of a convolution over one plane.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// input plane `[h, w]`
    pub input: [usize; 2],
    /// kernel `[kh, kw]`
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, bottom, left, right]`
    pub padding: [usize; 4],
}

impl Geometry {
    /// A 1×1 kernel at stride 1 without padding: the output pixels are the input's.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0; 4]
    }

    pub fn output(&self) -> [usize; 2] {
        let [h, w] = self.input;
        let [t, bo, l, r] = self.padding;
        [(h + t + bo - self.kernel[0]) / self.stride[0] + 1, (w + l + r - self.kernel[1]) / self.stride[1] + 1]
    }
}

/// Depthwise convolution (groups = channels, one filter per channel): `x` `[B, C, h, w]`,
/// weight `[C, 1, kh, kw]` → `[B, C, oh, ow]`. Planes run in parallel.
///
/// Each plane is copied once, with its zero padding, into `sx` phase planes of pitch `qw`,
/// `P[px][r][j] = padded[r][j·sx + px]` (for stride 1, the padded plane itself). Computing the
/// output at row pitch `sy·qw` (columns and rows past the output are computed and dropped), the
/// tap `(ky, kx)` of output `i = oy·sy·qw + ox` reads `P[kx mod sx]` at `i + ky·qw + kx / sx`:
/// one contiguous multiply-add over the whole plane per kernel row, which vectorises even for
/// MobileNetV2's 7-wide planes, where a loop along each output row would not.
pub(crate) fn depthwise(x: &[f32], f: &Folded, shortcut: Option<&[f32]>, b: usize, g: Geometry, act: Activation) -> Vec<f32> {
    let c = f.bias.len();
    let [h, w] = g.input;
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let [oh, ow] = g.output();
    let [top, _, left, _] = g.padding;
    assert!(x.len() == b * c * h * w && f.weight.len() == c * kh * kw, "conv_bn depthwise: shapes do not match the data");
    let qw = ow + (kw - 1) / sx;
    let pitch = sy * qw; // of the computed output
    // rows of a phase plane: every row a tap of a computed output reads, plus room for the
    // last row's reads past its end
    let rows = oh * sy + kh;
    let p_len = rows * qw + kw;
    // per phase: the columns j whose source column j·sx + px − left is inside the row
    let cols: Vec<(usize, usize)> = (0..sx)
        .map(|px| {
            let j0 = left.saturating_sub(px).div_ceil(sx);
            let j1 = qw.min((w + left).saturating_sub(px).div_ceil(sx));
            (j0, j1.max(j0))
        })
        .collect();
    let mut out = vec![0f32; b * c * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each_init(
        || (vec![0f32; sx * p_len], vec![0f32; oh * pitch]),
        |(phases, acc), (i, plane)| {
            let ch = i % c;
            let src = &x[i * h * w..(i + 1) * h * w];
            let data_rows = h.min(rows.saturating_sub(top));
            for (px, &(j0, j1)) in cols.iter().enumerate() {
                let phase = &mut phases[px * p_len..(px + 1) * p_len];
                // zeros where no source value lands: the rows above and below the data, and
                // each data row's columns left of j0 and from j1
                phase[..top.min(rows) * qw].fill(0.0);
                phase[(top + data_rows) * qw..].fill(0.0);
                for r in top..top + data_rows {
                    phase[r * qw..r * qw + j0].fill(0.0);
                    phase[r * qw + j1..(r + 1) * qw].fill(0.0);
                }
                if j0 == j1 {
                    continue;
                }
                let col0 = j0 * sx + px - left;
                for (r, row) in src.chunks(w).enumerate().take(data_rows) {
                    let dst = &mut phase[(top + r) * qw + j0..(top + r) * qw + j1];
                    if sx == 1 {
                        dst.copy_from_slice(&row[col0..col0 + (j1 - j0)]);
                    } else {
                        for (d, v) in dst.iter_mut().zip(row[col0..].chunks(sx)) {
                            *d = v[0];
                        }
                    }
                }
            }
            let taps = &f.weight[ch * kh * kw..(ch + 1) * kh * kw];
            pulp::Arch::new().dispatch(DepthwiseTaps { phases, p_len, qw, acc, taps, kw, sx });
            let bias = f.bias[ch];
            for (oy, (out_row, acc_row)) in plane.chunks_mut(ow).zip(acc.chunks(pitch)).enumerate() {
                match shortcut {
                    Some(r) => {
                        let r = &r[i * oh * ow + oy * ow..i * oh * ow + (oy + 1) * ow];
                        for ((o, a), r) in out_row.iter_mut().zip(acc_row).zip(r) {
                            *o = bias + a + r;
                        }
                    }
                    None => {
                        for (o, a) in out_row.iter_mut().zip(acc_row) {
                            *o = bias + a;
                        }
                    }
                }
            }
            epilogue(plane, act);
        },
    );
    out
}

/// `acc[i] += Σ_{ky,kx} w[ky][kx] · P[kx mod sx][i + ky·qw + kx / sx]` over the flat plane.
struct DepthwiseTaps<'a> {
    phases: &'a [f32],
    p_len: usize,
    qw: usize,
    acc: &'a mut [f32],
    taps: &'a [f32],
    kw: usize,
    sx: usize,
}

impl pulp::WithSimd for DepthwiseTaps<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self { phases, p_len, qw, acc, taps, kw, sx } = self;
        let n = acc.len();
        let tap = |ky: usize, kx: usize| {
            let start = (kx % sx) * p_len + ky * qw + kx / sx;
            &phases[start..start + n]
        };
        if kw != 3 {
            acc.fill(0.0);
        }
        for (ky, w) in taps.chunks(kw).enumerate() {
            if kw == 3 && ky == 0 {
                // the first kernel row's three taps set the sums
                let (a, b, c) = (tap(ky, 0), tap(ky, 1), tap(ky, 2));
                for (((o, a), b), c) in acc.iter_mut().zip(a).zip(b).zip(c) {
                    *o = w[2].mul_add(*c, w[1].mul_add(*b, w[0] * *a));
                }
            } else if kw == 3 {
                // the kernel row's three taps in one pass
                let (a, b, c) = (tap(ky, 0), tap(ky, 1), tap(ky, 2));
                for (((o, a), b), c) in acc.iter_mut().zip(a).zip(b).zip(c) {
                    *o = w[2].mul_add(*c, w[1].mul_add(*b, w[0].mul_add(*a, *o)));
                }
            } else {
                for (kx, &wv) in w.iter().enumerate() {
                    for (o, v) in acc.iter_mut().zip(tap(ky, kx)) {
                        *o = wv.mul_add(*v, *o);
                    }
                }
            }
        }
    }
}

/// The activation in place over `y`.
pub(crate) fn epilogue(y: &mut [f32], act: Activation) {
    if let Some(max) = act.clamp_max() {
        clamp_relu(y, max);
    }
}

/// `y += shortcut` (as long as `y`), then the activation, in place, on this thread.
pub(crate) fn add_then_activate(y: &mut [f32], shortcut: Option<&[f32]>, act: Activation) {
    if let Some(r) = shortcut {
        for (y, r) in y.iter_mut().zip(r) {
            *y += r;
        }
    }
    epilogue(y, act);
}

/// `y += shortcut`, then the activation, in place, in chunks over the threads (the 3×3 pass's
/// output).
pub(crate) fn add_and_activate(y: &mut [f32], shortcut: Option<&[f32]>, act: Activation) {
    match shortcut {
        Some(r) => y.par_chunks_mut(PARALLEL_CHUNK).zip(r.par_chunks(PARALLEL_CHUNK)).for_each(|(y, r)| add_then_activate(y, Some(r), act)),
        None => for_chunks(y, |y| epilogue(y, act)),
    }
}
