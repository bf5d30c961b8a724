//! Feed-forward activations: the HF `hidden_act` names ([`Activation`]), an exact GELU
//! ([`gelu`]) with a fused pass on the CPU backend, and the attention softmax
//! ([`attention_softmax`]), fused the same way for prediction.
//!
//! burn-flex computes GELU one element at a time through a scalar `erff` (about 10 ns per
//! element): in MuSE-small's text encoder at batch 1 that was a quarter of the encoder's time.
//! On the CPU backend, [`gelu`] instead runs one SIMD pass over the tensor's f32 data (AVX2/FMA
//! or AVX-512 picked at run time by `pulp`), with erf from Abramowitz & Stegun 7.1.26 (absolute
//! error ≤ 1.5·10⁻⁷, the formula PyTorch's vectorised CPU `erf` uses) and a range-reduced
//! polynomial `exp`. Under autodiff the same pass also gives the derivative
//! `Φ(x) + x·φ(x)`, kept by an autodiff operation ([`cpu_autodiff`](crate::cpu_autodiff))
//! whose backward multiplies the output gradient by it. Other devices and dtypes use burn's
//! `gelu`.
//!
//! [`attention_softmax`] is `softmax(scores·scale + key_bias)` over the keys. burn-flex's softmax
//! calls a scalar `expf` per element, and the scaling and the bias are two more passes; on the
//! CPU backend one pass per row does all three (same `exp` as above). Under autodiff it is one
//! operation keeping its output `y`, whose backward is one pass per row,
//! `dx = scale·y·(g − Σ g·y)`, instead of burn's six operations and their backwards.

use burn::tensor::activation::{gelu_approximate, relu, sigmoid};
use burn::tensor::activation::softmax;
use crate::cpu_autodiff::{FlexAutodiff, flex_tensor, from_tracked, shape, tracked, values};
use crate::device::is_cpu;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

/// A feed-forward activation, parsed from HF's `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x·Φ(x)` with erf (HF `"gelu"`).
    Gelu,
    /// Tanh approximation of GELU (HF `"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`).
    GeluTanh,
    /// CLIP's `x·σ(1.702·x)` (HF `"quick_gelu"`).
    QuickGelu,
    Relu,
}

impl Activation {
    /// The HF names this implementation understands.
    pub const SUPPORTED: &'static str = "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu";

    /// Parse an HF `hidden_act` name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "quick_gelu" => Some(Self::QuickGelu),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => gelu(x),
            Self::GeluTanh => gelu_approximate(x),
            Self::QuickGelu => x.clone() * sigmoid(x.mul_scalar(1.702)),
            Self::Relu => relu(x),
        }
    }
}

/// Exact GELU, `x·Φ(x) = x/2·(1 + erf(x/√2))`, as BERT, ViT and PyTorch's `nn.GELU()` compute
/// it. Fused on the CPU backend (see the module docs); burn's `gelu` elsewhere.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !is_cpu(&device) || x.dtype() != DType::F32 {
        return burn::tensor::activation::gelu(x);
    }
    if !device.is_autodiff() {
        let mut data = x.into_data();
        if let Ok(v) = data.as_mut_slice::<f32>() {
            for_chunks(v, |c| pulp::Arch::new().dispatch(GeluInPlace(c)));
            return Tensor::from_data(data, &device);
        }
        return burn::tensor::activation::gelu(Tensor::from_data(data, &device));
    }
    gelu_trained::<NoCheckpointing, D>(&x)
        .or_else(|| gelu_trained::<BalancedCheckpointing, D>(&x))
        .unwrap_or_else(|| burn::tensor::activation::gelu(x))
}

/// GELU as an autodiff operation ([`GeluBackward`]): the pass gives `y` and `y'`, and keeps `y'`.
fn gelu_trained<C: CheckpointStrategy, const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let x = tracked::<C, D>(x)?;
    let dims = shape(x.primitive());
    let mut y = values(x.primitive()).into_owned();
    let out = match GeluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let mut dy = y.clone();
            for_chunk_pairs(&mut y, &mut dy, |a, b| pulp::Arch::new().dispatch(GeluWithDerivative(a, b)));
            prep.finish(flex_tensor(dy, dims.clone()), flex_tensor(y, dims))
        }
        OpsKind::UnTracked(prep) => {
            for_chunks(&mut y, |c| pulp::Arch::new().dispatch(GeluInPlace(c)));
            prep.finish(flex_tensor(y, dims))
        }
    };
    Some(from_tracked::<C, D>(out))
}

/// GELU's backward: the output gradient times the kept derivative.
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = ops.parents else { return };
        let dy = ops.state;
        let mut g = values(&grad).into_owned();
        let d = values(&dy);
        g.par_chunks_mut(PARALLEL_CHUNK).zip(d.par_chunks(PARALLEL_CHUNK)).for_each(|(g, d)| g.iter_mut().zip(d).for_each(|(g, d)| *g *= d));
        grads.register::<Flex>(node.id, flex_tensor(g, shape(&dy)));
    }
}

/// `min(max(x, 0), 6)` (MobileNetV2's activation), NaN kept. On the CPU backend without
/// autodiff one vectorised pass in place: burn-flex's `clamp` is a scalar pass, 22 % of
/// MobileNetV2's forward (`perf`, one thread). burn's `relu6` elsewhere.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !is_cpu(&device) || device.is_autodiff() || x.dtype() != DType::F32 {
        return burn::tensor::activation::relu6(x);
    }
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(v) => {
            for_chunks(v, |c| {
                for x in c.iter_mut() {
                    // branch-free (vectorises); NaN compares false and stays
                    let y = if *x < 0.0 { 0.0 } else { *x };
                    *x = if y > 6.0 { 6.0 } else { y };
                }
            });
            Tensor::from_data(data, &device)
        }
        Err(_) => burn::tensor::activation::relu6(Tensor::from_data(data, &device)),
    }
}

/// `softmax(scores·scale + key_bias, keys)` for `scores` `[B, H, Lq, Lk]` and `key_bias`
/// `[B, Lk]` (added to every head's and query's score of key k; e.g. 0 at real keys and
/// [`MASK_BIAS`](crate::attention::MASK_BIAS) at padding, which then gets weight exactly 0).
/// Fused on the CPU backend without autodiff (see the module docs); burn's ops otherwise.
/// A NaN score makes its whole row NaN.
pub fn attention_softmax(scores: Tensor<4>, scale: f64, key_bias: Tensor<2>) -> Tensor<4> {
    let [b, h, lq, lk] = scores.dims();
    let device = scores.device();
    if !is_cpu(&device) || scores.dtype() != DType::F32 || key_bias.dims() != [b, lk] || lk == 0 || b * h * lq == 0 {
        return softmax_with_burn(scores, scale, key_bias);
    }
    if device.is_autodiff() {
        return softmax_trained::<NoCheckpointing>(&scores, scale, &key_bias)
            .or_else(|| softmax_trained::<BalancedCheckpointing>(&scores, scale, &key_bias))
            .unwrap_or_else(|| softmax_with_burn(scores, scale, key_bias));
    }
    let (mut data, bias) = (scores.into_data(), key_bias.into_data());
    match (data.as_mut_slice::<f32>(), bias.as_slice::<f32>()) {
        (Ok(x), Ok(bias)) => {
            softmax_in_place(x, bias, scale as f32, h * lq, lk);
            Tensor::from_data(data, &device)
        }
        _ => softmax_with_burn(Tensor::from_data(data, &device), scale, Tensor::from_data(bias, &device)),
    }
}

/// `softmax(x·scale + bias)` over rows of `lk`, in place, for `x` `[B, rows_per_sample, lk]`
/// and `bias` `[B, lk]`.
fn softmax_in_place(x: &mut [f32], bias: &[f32], scale: f32, rows_per_sample: usize, lk: usize) {
    // chunks of whole samples of at least ~32K scores
    let per_chunk = (32_768 / (rows_per_sample * lk)).max(1);
    x.par_chunks_mut(per_chunk * rows_per_sample * lk).enumerate().for_each(|(i, chunk)| {
        for (j, sample) in chunk.chunks_mut(rows_per_sample * lk).enumerate() {
            let bias = &bias[(i * per_chunk + j) * lk..(i * per_chunk + j + 1) * lk];
            pulp::Arch::new().dispatch(SoftmaxRows { x: sample, bias, scale, len: lk });
        }
    });
}

/// The softmax as an autodiff operation ([`SoftmaxBackward`]) on the scores, if they are the
/// CPU backend's under autodiff with `C`; the key bias is a constant (a tracked one is left to
/// burn).
fn softmax_trained<C: CheckpointStrategy>(scores: &Tensor<4>, scale: f64, key_bias: &Tensor<2>) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<FlexAutodiff<C>>,
{
    let [b, h, lq, lk] = scores.dims();
    let (x, bias) = (tracked::<C, 4>(scores)?, tracked::<C, 2>(key_bias)?);
    if bias.is_tracked() {
        return None;
    }
    let mut y = values(x.primitive()).into_owned();
    softmax_in_place(&mut y, &values(bias.primitive()), scale as f32, h * lq, lk);
    let y = flex_tensor(y, [b, h, lq, lk]);
    let out = match SoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((y.clone(), scale as f32), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(from_tracked::<C, 4>(out))
}

/// The softmax's backward, per row: `dx = scale · y · (g − Σ g·y)`. State: the output and the
/// scale.
#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [Some(node)] = ops.parents else { return };
        let (y, scale) = ops.state;
        let dims = shape(&y);
        let lk = dims[3];
        let y = values(&y);
        let mut g = values(&grad).into_owned();
        g.par_chunks_mut(lk * 64).zip(y.par_chunks(lk * 64)).for_each(|(g, y)| {
            for (g, y) in g.chunks_exact_mut(lk).zip(y.chunks_exact(lk)) {
                let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
                for (g, y) in g.iter_mut().zip(y) {
                    *g = scale * y * (*g - dot);
                }
            }
        });
        grads.register::<Flex>(node.id, flex_tensor(g, dims));
    }
}

/// [`attention_softmax`] through burn's ops.
fn softmax_with_burn(scores: Tensor<4>, scale: f64, key_bias: Tensor<2>) -> Tensor<4> {
    let [b, lk] = key_bias.dims();
    softmax(scores.mul_scalar(scale) + key_bias.reshape([b, 1, 1, lk]), 3)
}

/// Rows of `len` scores sharing one `bias`, in place: `softmax(x·scale + bias)`.
struct SoftmaxRows<'a> {
    x: &'a mut [f32],
    bias: &'a [f32],
    scale: f32,
    len: usize,
}

impl pulp::WithSimd for SoftmaxRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        // fixed 16-lane inner loops (and lane-wise max and sum) so that they vectorise
        const LANES: usize = 16;
        let Self { x, bias, scale, len } = self;
        let split = len / LANES * LANES;
        for row in x.chunks_exact_mut(len) {
            let mut m = [f32::NEG_INFINITY; LANES];
            for (c, bc) in row[..split].chunks_exact_mut(LANES).zip(bias[..split].chunks_exact(LANES)) {
                for l in 0..LANES {
                    c[l] = c[l] * scale + bc[l];
                    m[l] = max_nan(m[l], c[l]);
                }
            }
            for (l, (v, b)) in row[split..].iter_mut().zip(&bias[split..]).enumerate() {
                *v = *v * scale + *b;
                m[l] = max_nan(m[l], *v);
            }
            let max = m.iter().fold(f32::NEG_INFINITY, |a, &b| max_nan(a, b));
            if max.is_nan() {
                row.fill(f32::NAN);
                continue;
            }
            let mut sum = [0f32; LANES];
            for c in row[..split].chunks_exact_mut(LANES) {
                for l in 0..LANES {
                    c[l] = exp_neg(max - c[l]);
                    sum[l] += c[l];
                }
            }
            for (l, v) in row[split..].iter_mut().enumerate() {
                *v = exp_neg(max - *v);
                sum[l] += *v;
            }
            let inv = 1.0 / sum.iter().sum::<f32>();
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// `max(a, b)` that returns NaN when either is NaN.
#[inline(always)]
pub(crate) fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || a > b { a } else { b }
}

/// Above this many elements the pass is split over the compute pool (a chunk is ~100 µs of
/// work, well above the cost of waking a pool thread).
const PARALLEL_CHUNK: usize = 1 << 17;

fn for_chunks(v: &mut [f32], f: impl Fn(&mut [f32]) + Sync + Send) {
    if v.len() <= PARALLEL_CHUNK {
        f(v)
    } else {
        v.par_chunks_mut(PARALLEL_CHUNK).for_each(f)
    }
}

fn for_chunk_pairs(a: &mut [f32], b: &mut [f32], f: impl Fn(&mut [f32], &mut [f32]) + Sync + Send) {
    if a.len() <= PARALLEL_CHUNK {
        f(a, b)
    } else {
        a.par_chunks_mut(PARALLEL_CHUNK).zip(b.par_chunks_mut(PARALLEL_CHUNK)).for_each(|(a, b)| f(a, b))
    }
}

struct GeluInPlace<'a>(&'a mut [f32]);

impl pulp::WithSimd for GeluInPlace<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for x in self.0.iter_mut() {
            let (cdf, _) = phi(*x);
            *x *= cdf;
        }
    }
}

/// `a` holds x and gets GELU(x); `b` holds x and gets GELU'(x).
struct GeluWithDerivative<'a>(&'a mut [f32], &'a mut [f32]);

impl pulp::WithSimd for GeluWithDerivative<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for (y, dy) in self.0.iter_mut().zip(self.1.iter_mut()) {
            let x = *y;
            let (cdf, pdf) = phi(x);
            *y = x * cdf;
            *dy = cdf + x * pdf;
        }
    }
}

/// `(Φ(x), φ(x))`, the standard normal CDF and density. Branch-free, so the loops above
/// vectorise; NaN in gives NaN out.
#[inline(always)]
fn phi(x: f32) -> (f32, f32) {
    // A&S 7.1.26: erf(z) = 1 − (a1·t + … + a5·t⁵)·e^(−z²), t = 1/(1 + p·z), z ≥ 0.
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let e = exp_neg(z * z); // e^(−x²/2)
    let erf_abs = 1.0 - poly * e;
    let erf = erf_abs.copysign(x);
    (0.5 + 0.5 * erf, INV_SQRT_2PI * e)
}

/// `e^(−u)` for `u ≥ 0` (0 beyond 87.33, where it leaves f32's normal range): `2^n·e^r` with `n = round(−u/ln 2)`,
/// `r = −u − n·ln 2` (Cody–Waite, two-part ln 2) and a degree-6 Taylor polynomial on
/// `|r| ≤ ln2/2` (relative error < 2·10⁻⁷). A NaN `u` gives a number, not NaN: [`phi`]
/// multiplies the result by a NaN in that case, so NaN still comes out of GELU.
#[inline(always)]
fn exp_neg(u: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const LIMIT: f32 = 87.33; // e^(−87.34) < f32::MIN_POSITIVE
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting it rounds to an integer
    let y = -u.min(LIMIT);
    // t = n + ROUND exactly, so n is also t's bit pattern minus ROUND's (no float→int cast,
    // which would not vectorise)
    let t = y * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits()); // n as a two's-complement u32
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let v = p * scale;
    if u > LIMIT { 0.0 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    fn gelu_f64(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    fn dgelu_f64(x: f64) -> f64 {
        0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)) + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
    }

    fn grid() -> Vec<f32> {
        (0..=40_000).map(|i| -20.0 + i as f32 * 0.001).collect()
    }

    #[test]
    fn fused_gelu_and_derivative_match_the_f64_reference() {
        let xs = grid();
        let (mut y, mut dy) = (xs.clone(), xs.clone());
        pulp::Arch::new().dispatch(GeluWithDerivative(&mut y, &mut dy));
        let mut z = xs.clone();
        pulp::Arch::new().dispatch(GeluInPlace(&mut z));
        for (i, &x) in xs.iter().enumerate() {
            let (r, dr) = (gelu_f64(x as f64), dgelu_f64(x as f64));
            let tol = 4e-7 * (x as f64).abs().max(1.0);
            assert!((y[i] as f64 - r).abs() <= tol, "gelu({x}) = {} vs {r}", y[i]);
            assert!((dy[i] as f64 - dr).abs() <= 1e-6, "gelu'({x}) = {} vs {dr}", dy[i]);
            assert_eq!(z[i], y[i], "in-place and with-derivative passes agree at {x}");
        }
        let mut special = vec![f32::NAN, f32::INFINITY, 0.0, -0.0, 100.0, -100.0];
        pulp::Arch::new().dispatch(GeluInPlace(&mut special));
        assert!(special[0].is_nan(), "NaN propagates");
        assert_eq!(&special[1..], &[f32::INFINITY, 0.0, 0.0, 100.0, 0.0]);
    }

    #[test]
    fn attention_softmax_matches_burns_ops_with_masked_keys_and_nan() {
        let device = Device::flex();
        let scores = Tensor::<4>::random([3, 2, 5, 37], Distribution::Normal(0.0, 4.0), &device);
        let mut bias = vec![0f32; 3 * 37];
        for k in 30..37 {
            bias[37 + k] = crate::attention::MASK_BIAS; // sample 1: the last 7 keys are padding
        }
        bias[2 * 37] = 0.75; // a lexicon-style bias
        let bias = Tensor::<2>::from_data(TensorData::new(bias, [3, 37]), &device);
        let want = softmax(scores.clone().mul_scalar(0.125) + bias.clone().reshape([3, 1, 1, 37]), 3);
        let got = attention_softmax(scores.clone(), 0.125, bias.clone());
        let diff = (got.clone() - want).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{diff}");
        let v = got.into_data().try_to_vec::<f32>().unwrap();
        for row in v.chunks(37) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let padded = &v[2 * 5 * 37..4 * 5 * 37];
        assert!(padded.chunks(37).all(|r| r[30..].iter().all(|w| *w == 0.0)), "padding gets exactly 0");
        // a NaN score: its row only
        let mut s = scores.into_data().try_to_vec::<f32>().unwrap();
        s[40] = f32::NAN;
        let got = attention_softmax(Tensor::from_data(TensorData::new(s, [3, 2, 5, 37]), &device), 0.125, bias).into_data().try_to_vec::<f32>().unwrap();
        assert!(got[37..74].iter().all(|w| w.is_nan()));
        assert!(got[..37].iter().chain(&got[74..]).all(|w| w.is_finite()));
    }

    #[test]
    fn attention_softmax_gradient_matches_burns_under_autodiff() {
        let ad = Device::flex().autodiff();
        let x = Tensor::<4>::random([3, 2, 5, 37], Distribution::Normal(0.0, 4.0), &Device::flex());
        let mut bias = vec![0f32; 3 * 37];
        for k in 30..37 {
            bias[37 + k] = crate::attention::MASK_BIAS;
        }
        bias[2 * 37] = 0.75;
        let bias = Tensor::<2>::from_data(TensorData::new(bias, [3, 37]), &ad);
        let w = Tensor::<4>::random([3, 2, 5, 37], Distribution::Normal(0.0, 1.0), &ad);
        let grad_of = |ours: bool| {
            let xa = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
            let y = if ours { attention_softmax(xa.clone(), 0.125, bias.clone()) } else { softmax_with_burn(xa.clone(), 0.125, bias.clone()) };
            let value = y.clone().inner();
            let grads = (y * w.clone()).sum().backward();
            (value, xa.grad(&grads).expect("x has a gradient"))
        };
        let ((v0, g0), (v1, g1)) = (grad_of(true), grad_of(false));
        assert!((v0 - v1).abs().max().into_scalar::<f32>() < 1e-6);
        let gd = (g0.clone() - g1).abs().max().into_scalar::<f32>();
        assert!(gd < 1e-6, "gradient differs by {gd}");
        // padding keys get no gradient
        let g = g0.into_data().try_to_vec::<f32>().unwrap();
        assert!(g[2 * 5 * 37..4 * 5 * 37].chunks(37).all(|r| r[30..].iter().all(|v| *v == 0.0)));
    }

    #[test]
    fn exp_neg_is_accurate_on_its_range() {
        for i in 0..=90_000 {
            let u = i as f32 * 0.001;
            let (got, want) = (exp_neg(u) as f64, (-(u as f64)).exp());
            assert!((got - want).abs() <= 2.5e-7 * want + 2.0 * f32::MIN_POSITIVE as f64, "exp(-{u}) = {got} vs {want}");
        }
        assert_eq!(exp_neg(1000.0), 0.0);
    }

    #[test]
    fn tensor_gelu_matches_burn_on_cpu_with_and_without_autodiff() {
        let device = Device::flex();
        let x = Tensor::<3>::random([3, 7, 100], Distribution::Normal(0.0, 3.0), &device);
        let want = burn::tensor::activation::gelu(x.clone());
        let diff = (gelu(x.clone()) - want.clone()).abs().max().into_scalar::<f32>();
        assert!(diff < 2e-6, "inference: {diff}");

        // autodiff: same value, and the gradient of sum(gelu(x)·w) equals burn's
        let ad = device.autodiff();
        let w = Tensor::<3>::random([3, 7, 100], Distribution::Normal(0.0, 1.0), &ad);
        let grad_of = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
            let xa = Tensor::<3>::from_data(x.to_data(), &ad).require_grad();
            let y = f(xa.clone());
            let value = y.clone().inner();
            let grads = (y * w.clone()).sum().backward();
            (value, xa.grad(&grads).expect("x has a gradient"))
        };
        let (v_ours, g_ours) = grad_of(&|t| gelu(t));
        let (v_burn, g_burn) = grad_of(&|t| burn::tensor::activation::gelu(t));
        assert!((v_ours - v_burn).abs().max().into_scalar::<f32>() < 2e-6);
        let gd = (g_ours - g_burn).abs().max().into_scalar::<f32>();
        assert!(gd < 5e-6, "gradient differs by {gd}");
    }

    #[test]
    fn relu6_matches_burn_and_keeps_nan() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 17, 19], Distribution::Normal(2.0, 5.0), &device);
        let want = burn::tensor::activation::relu6(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(relu6(x).into_data().try_to_vec::<f32>().unwrap(), want);
        let y = relu6(Tensor::<1>::from_floats([-1.0, 0.0, 3.5, 6.0, 7.0, f32::NAN], &device)).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(&y[..5], &[0.0, 0.0, 3.5, 6.0, 6.0]);
        assert!(y[5].is_nan());
    }

    #[test]
    fn quick_gelu_is_x_sigmoid_1702x() {
        let d = Device::flex();
        let x = Tensor::<1>::from_floats([-2.0, 0.0, 1.0], &d);
        let y = Activation::QuickGelu.forward(x).into_data().try_to_vec::<f32>().unwrap();
        for (v, x) in y.iter().zip([-2.0f32, 0.0, 1.0]) {
            assert!((v - x / (1.0 + (-1.702 * x).exp())).abs() < 1e-6);
        }
    }
}
