//! Feed-forward activations: the HF `hidden_act` names ([`Activation`]) and an exact GELU
//! ([`gelu`]) with a fused pass on the CPU backend.
//!
//! burn-flex computes GELU one element at a time through a scalar `erff` (about 10 ns per
//! element): in MuSE-small's text encoder at batch 1 that was a quarter of the encoder's time.
//! On the CPU backend, [`gelu`] instead runs one SIMD pass over the tensor's f32 data (AVX2/FMA
//! or AVX-512 picked at run time by `pulp`), with erf from Abramowitz & Stegun 7.1.26 (absolute
//! error ≤ 1.5·10⁻⁷, the formula PyTorch's vectorised CPU `erf` uses) and a range-reduced
//! polynomial `exp`. Under autodiff the same pass also gives the derivative
//! `Φ(x) + x·φ(x)`, and the result is `y + (x − detach(x))·y'`: the value `y`, the gradient
//! `y'`, three cheap graph nodes instead of burn's scalar `gelu_backward`. Other devices and
//! dtypes use burn's `gelu`.

use burn::tensor::activation::{gelu_approximate, relu, sigmoid};
use burn::tensor::{DType, Device, Tensor};
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
    if device.clone().inner() != Device::flex() || x.dtype() != DType::F32 {
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
    let mut y = x.clone().inner().into_data();
    let mut dy = y.clone();
    match (y.as_mut_slice::<f32>(), dy.as_mut_slice::<f32>()) {
        (Ok(a), Ok(b)) => for_chunk_pairs(a, b, |a, b| pulp::Arch::new().dispatch(GeluWithDerivative(a, b))),
        _ => return burn::tensor::activation::gelu(x),
    }
    let (y, dy) = (Tensor::<D>::from_data(y, &device), Tensor::<D>::from_data(dy, &device));
    y + (x.clone() - x.detach()) * dy
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
    use burn::tensor::Distribution;

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
    fn quick_gelu_is_x_sigmoid_1702x() {
        let d = Device::flex();
        let x = Tensor::<1>::from_floats([-2.0, 0.0, 1.0], &d);
        let y = Activation::QuickGelu.forward(x).into_data().try_to_vec::<f32>().unwrap();
        for (v, x) in y.iter().zip([-2.0f32, 0.0, 1.0]) {
            assert!((v - x / (1.0 + (-1.702 * x).exp())).abs() < 1e-6);
        }
    }
}
