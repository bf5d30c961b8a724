//! A `Linear` layer over rows as one autodiff operation on the CPU ([`Linear`]).
//!
//! Under autodiff burn's `Linear` over `[rows, d_in]` is a matmul, a broadcast bias addition
//! and reshapes, each a graph node: the bias is a second pass over the output forward and a
//! reduction backward, and the matmul's backward multiplies by transposed copies. Here the
//! forward is one product with the bias added as it is stored; the backward is two products,
//! `dx = g·Wᵀ` and `dW = xᵀ·g`, and `db` the column sums of `g` (a third, by a row of ones).
//! Where the CPU has AVX2 + FMA the forward and `dx` run the packed kernel below, `W` packed
//! per call (`backward.rs`); `dW`, and every product elsewhere, is `gemm` reading the transposed
//! operands through their strides. Both split each product over the compute pool by output blocks, every
//! output summed whole by one thread: the results do not depend on the threads (training
//! resumes exactly).
//!
//! At prediction on the CPU (no autodiff, f32) the weight is packed once and kept beside the
//! layer (`packed.rs`), where the CPU has AVX2 + FMA (512-bit tiles with AVX-512). On other
//! devices and dtypes, burn's `Linear` is used.

mod backward;
pub(crate) mod packed;

pub use packed::PackedCache;

use crate::Dropout;
use crate::autodiff::{dims, flex_tensor, from_plain, plain, stored};
use crate::device::is_cpu;
use crate::gelu::GeluInPlace;
use crate::math::{add_assign, clamp_relu};
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{DType, Device, Tensor};

/// Configuration of a [`Linear`], as `burn::nn::LinearConfig` (the same initialisation, drawn in
/// the same order).
#[derive(Debug, Config)]
pub struct LinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether a bias is learned. Default: true.
    #[config(default = true)]
    pub bias: bool,
    /// Initialiser of weight and bias. Default: burn's (Kaiming uniform, gain 1/√3).
    #[config(default = "Initializer::KaimingUniform{gain:1.0/3.0_f64.sqrt(), fan_out_only:false}")]
    pub initializer: Initializer,
}

impl LinearConfig {
    /// A layer with weights drawn as burn's `LinearConfig::init` draws them.
    pub fn init(&self, device: &Device) -> Linear {
        let l = burn::nn::LinearConfig::new(self.d_input, self.d_output).with_bias(self.bias).with_initializer(self.initializer.clone()).init(device);
        Linear::new(l.weight, l.bias)
    }
}

/// An activation [`Linear::forward_activated`] applies to the layer's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearActivation {
    /// `max(x, 0)`, NaN kept (burn's `relu`)
    Relu,
    /// The exact GELU ([`gelu`](crate::gelu))
    Gelu,
}

impl LinearActivation {
    /// The activation as its own pass over `y`.
    fn apply<const D: usize>(self, y: Tensor<D>) -> Tensor<D> {
        match self {
            LinearActivation::Relu => burn::tensor::activation::relu(y),
            LinearActivation::Gelu => crate::gelu(y),
        }
    }
}

/// `y = x·W + b` over the last axis: a drop-in for `burn::nn::Linear` with the same fields (and
/// so the same records), applied to all leading positions of `x` `[..., d_in]` (batch × tokens)
/// as ONE `[rows, d_in] × [d_in, d_out]` matmul; under autodiff on the CPU backend as one
/// operation with the bias fused (`backward.rs`).
///
/// burn's `Linear::forward` on a `[B, L, d]` input keeps the batch axis when `L` is a multiple
/// of 32 (its matmul tiling policy): the CPU backend then runs B separate `[L, d_in]` products
/// and re-packs the weight for each of them, most of the cost for our 64-token sequences.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_input, d_output]`.
    pub weight: Param<Tensor<2>>,
    /// `[d_output]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// The weight packed for prediction (not part of the record; see `packed.rs`).
    #[module(skip)]
    packed: packed::PackedCache,
}

impl Linear {
    /// A layer with these parameters (`weight` `[d_input, d_output]`, `bias` `[d_output]`).
    pub fn new(weight: Param<Tensor<2>>, bias: Option<Param<Tensor<1>>>) -> Self {
        Linear { weight, bias, packed: Default::default() }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        let trained = is_cpu(&device) && x.dtype() == DType::F32 && device.is_autodiff();
        let predicted = packs_at_prediction(&x);
        if D < 2 || !(trained || predicted) {
            return self.with_burn(x);
        }
        over_rows(x, |x| {
            let y = if trained { self.fused(&x) } else { side_by_side(&[self], &self.packed, &x) };
            y.unwrap_or_else(|| self.with_burn(x))
        })
    }

    /// `act(self.forward(x))`. At prediction on the CPU (the packed kernel) the activation
    /// runs over each block of output as the kernel stores it, while the block is in cache,
    /// instead of as a second pass over the whole output: the same values as the two steps
    /// ([`gelu`](crate::gelu)'s pass, or a ReLU that keeps NaN).
    pub fn forward_activated<const D: usize>(&self, x: Tensor<D>, act: LinearActivation) -> Tensor<D> {
        if D < 2 || !packs_at_prediction(&x) {
            return act.apply(self.forward(x));
        }
        let epilogue = |_: usize, _: usize, y: &mut [f32]| match act {
            LinearActivation::Relu => clamp_relu(y, f32::INFINITY),
            LinearActivation::Gelu => pulp::Arch::new().dispatch(GeluInPlace(y)),
        };
        over_rows(x, |x| side_by_side_then(&[self], &self.packed, &x, Some(&epilogue)).unwrap_or_else(|| act.apply(self.forward(x))))
    }

    /// `residual + dropout(self.forward(x))`, a layer's shortcut around this layer (`residual`
    /// shaped as the output). At prediction on the CPU (the packed kernel; `dropout` is then the
    /// identity) the residual's rows are added to each block of output as the kernel stores it,
    /// instead of a second pass over both: the same values as the two steps.
    pub fn forward_residual<const D: usize>(&self, x: Tensor<D>, residual: Tensor<D>, dropout: &Dropout) -> Tensor<D> {
        let mut out = x.dims();
        out[D - 1] = self.weight.dims()[1];
        if D < 2 || !packs_at_prediction(&x) || residual.dims() != out {
            return residual + dropout.forward(self.forward(x));
        }
        let (rows, n) = (out[..D - 1].iter().product::<usize>(), out[D - 1]);
        let shortcut = residual.reshape([rows, n]);
        let stored = plain(&shortcut);
        let Some(r) = stored.as_ref().and_then(|r| r.as_slice::<f32>()) else {
            let d_in = x.dims()[D - 1];
            return (shortcut + self.forward(x.reshape([rows, d_in]))).reshape(out);
        };
        let epilogue = |row: usize, c0: usize, y: &mut [f32]| add_assign(y, &r[row * n + c0..]);
        over_rows(x, |x| side_by_side_then(&[self], &self.packed, &x, Some(&epilogue)).unwrap_or_else(|| shortcut.clone() + self.forward(x)))
    }

    /// `x` `[rows, d_in]` as one autodiff operation, if `x` and the parameters are f32 tensors
    /// of the CPU backend under autodiff.
    fn fused(&self, x: &Tensor<2>) -> Option<Tensor<2>> {
        let weight = self.weight.val();
        let bias = self.bias.as_ref().map(|b| b.val());
        backward::trained::<NoCheckpointing>(x, &weight, bias.as_ref()).or_else(|| backward::trained::<BalancedCheckpointing>(x, &weight, bias.as_ref()))
    }

    /// The layer through burn's op (the reference the fused one is tested against).
    pub fn with_burn<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }
}

/// `f` over `x` `[..., d]` (`D` ≥ 2) seen as rows `[rows, d]`, its output `[rows, n]` given
/// `x`'s leading axes back: `[..., n]`.
fn over_rows<const D: usize>(x: Tensor<D>, f: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Tensor<D> {
    let dims = x.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = f(x.reshape([rows, dims[D - 1]]));
    let mut out = dims;
    out[D - 1] = y.dims()[1];
    y.reshape(out)
}

/// Whether `x` is predicted through packed weights: an f32 tensor of the CPU backend without
/// autodiff, on a CPU that runs the packed kernel.
fn packs_at_prediction<const D: usize>(x: &Tensor<D>) -> bool {
    let device = x.device();
    is_cpu(&device) && !device.is_autodiff() && x.dtype() == DType::F32 && packed::available()
}

/// Several layers over the same input, `[layer.forward(x) for layer in layers]` (e.g. an
/// attention's query, key and value projections). At prediction on the CPU over few rows (one
/// post: 65 rows are a short product to split over the threads) as ONE product over the
/// weights side by side, packed once into `cache` (which the caller keeps, e.g. as a
/// `#[module(skip)]` field); the outputs are then views of its columns. Otherwise (training, other
/// devices, many rows, or a layer whose input width is not `x`'s) each layer on its own.
pub fn forward_group<const D: usize, const N: usize>(layers: [&Linear; N], cache: &PackedCache, x: Tensor<D>) -> [Tensor<D>; N] {
    let dims = x.dims();
    let rows = dims[..D.saturating_sub(1)].iter().product::<usize>();
    let grouped = D >= 2 && N > 1 && packs_at_prediction(&x) && packed::few_rows(rows);
    if grouped && let Some(y) = side_by_side(&layers, cache, &x.clone().reshape([rows, dims[D - 1]])) {
        // the whole product in x's shape first (no copy), then each layer's block of columns as
        // a view: reshaping a block would copy it
        let mut whole = dims;
        whole[D - 1] = y.dims()[1];
        let y = y.reshape(whole);
        let mut start = 0;
        return layers.map(|l| {
            let n = l.weight.dims()[1];
            start += n;
            y.clone().narrow(D - 1, start - n, n)
        });
    }
    layers.map(|l| l.forward(x.clone()))
}

/// `x` `[rows, d_in]` times every layer's weight side by side, plus their biases: `[rows, Σ d_out]`
/// through the packing in `cache` (one layer: its own `Linear::forward` at prediction), if `x` and
/// the parameters are f32 tensors of the CPU backend and the shapes agree (else burn's op
/// reports them).
fn side_by_side(layers: &[&Linear], cache: &PackedCache, x: &Tensor<2>) -> Option<Tensor<2>> {
    side_by_side_then(layers, cache, x, None)
}

/// [`side_by_side`], with `epilogue` run over each block of output as it is stored.
fn side_by_side_then(layers: &[&Linear], cache: &PackedCache, x: &Tensor<2>, epilogue: Option<&packed::Epilogue>) -> Option<Tensor<2>> {
    let x = plain(x)?;
    let [rows, d_in] = dims::<2>(&x);
    if rows == 0 || d_in == 0 {
        return None;
    }
    let mut weights = Vec::with_capacity(layers.len());
    let mut bias = Vec::new();
    for l in layers {
        let w = stored(&l.weight.val())?;
        let [k, n] = dims::<2>(&w);
        if k != d_in || n == 0 {
            return None;
        }
        match &l.bias {
            Some(b) => bias.extend_from_slice(plain(&b.val())?.as_slice::<f32>().filter(|b| b.len() == n)?),
            None => bias.resize(bias.len() + n, 0.0),
        }
        weights.push(w);
    }
    let packed = cache.get(&weights, packed::pack_side_by_side);
    let y = match epilogue {
        Some(e) => packed::forward_then(x.as_slice::<f32>()?, rows, &packed, Some(&bias), e),
        None => packed::forward(x.as_slice::<f32>()?, rows, &packed, Some(&bias)),
    };
    Some(from_plain(flex_tensor(y, [rows, bias.len()])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::{Device, Distribution};

    fn rel(a: Tensor<2>, b: Tensor<2>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    #[test]
    fn output_and_gradients_match_burns() {
        let device = Device::flex().autodiff();
        for (rows, d_in, d_out, bias) in [(37, 24, 19, true), (5, 3, 7, false), (300, 64, 96, true), (1, 8, 1, true)] {
            let lin = LinearConfig::new(d_in, d_out).with_bias(bias).init(&device);
            let x = Tensor::<2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device);
            let r = Tensor::<2>::random([rows, d_out], Distribution::Normal(0.0, 1.0), &device);
            let run = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours { lin.fused(&x).expect("the operation applies") } else { lin.with_burn(x.clone()) };
                let g = (y.clone() * r.clone()).sum().backward();
                let gb = lin.bias.as_ref().map(|b| b.grad(&g).expect("bias gradient").unsqueeze::<2>());
                (y.inner(), x.grad(&g).unwrap(), lin.weight.grad(&g).unwrap(), gb)
            };
            let ((y0, x0, w0, b0), (y1, x1, w1, b1)) = (run(true), run(false));
            let b = match (b0, b1) {
                (Some(a), Some(b)) => rel(a, b),
                (None, None) => 0.0,
                _ => f32::INFINITY,
            };
            let d = [rel(y0, y1), rel(x0, x1), rel(w0, w1), b];
            assert!(d.iter().all(|v| *v < 1e-5), "{rows}×{d_in}→{d_out}: output, input, weight, bias {d:?}");
        }
    }

    fn rel_any<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale
    }

    fn packs(lin: &Linear) -> usize {
        lin.packed.builds.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn note_if_unavailable() {
        if !packed::available() {
            eprintln!("NOTE: this CPU lacks AVX2 + FMA: the packed prediction kernel is not used here; the tests compare burn's op with itself");
        }
    }

    #[test]
    fn prediction_matches_burns_op_on_every_tile_shape() {
        note_if_unavailable();
        let device = Device::flex();
        // rows: below, at and above the 6-row tile and the 96-row block; d_in: one and several
        // 256-blocks of K with remainders; d_out: below, at and above the 16-column panel
        for (rows, d_in, d_out, bias) in
            [(1, 8, 1, true), (5, 3, 15, false), (6, 256, 16, true), (7, 300, 17, true), (65, 256, 256, true), (200, 600, 40, false), (97, 1024, 33, true)]
        {
            let lin = LinearConfig::new(d_in, d_out).with_bias(bias).init(&device);
            let x = Tensor::<2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device);
            let d = rel_any(lin.forward(x.clone()), lin.with_burn(x.clone()));
            assert!(d < 1e-5, "{rows}×{d_in}→{d_out}: {d}");
            // and over leading axes
            let x3 = x.reshape([1, rows, d_in]);
            assert!(rel_any(lin.forward(x3.clone()), lin.with_burn(x3)) < 1e-5);
        }
    }

    #[test]
    fn residual_in_the_epilogue_gives_the_bits_of_the_two_steps() {
        note_if_unavailable();
        let device = Device::flex();
        let dropout = crate::DropoutConfig::new(0.1).init();
        // one row block with column groups (one post), several row blocks, panels left over;
        // a residual stored contiguous, and one that is a view (a transposed tensor)
        for (rows, d_in, d_out) in [(1, 8, 5), (65, 256, 256), (300, 40, 33)] {
            let lin = LinearConfig::new(d_in, d_out).init(&device);
            let x = Tensor::<3>::random([2, rows, d_in], Distribution::Normal(0.0, 1.0), &device);
            let r = Tensor::<3>::random([2, rows, d_out], Distribution::Normal(0.0, 1.0), &device);
            let rt = Tensor::<3>::random([2, d_out, rows], Distribution::Normal(0.0, 1.0), &device).swap_dims(1, 2);
            for r in [r, rt] {
                let fused = lin.forward_residual(x.clone(), r.clone(), &dropout).into_data().try_to_vec::<f32>().unwrap();
                let steps = (r.clone() + lin.forward(x.clone())).into_data().try_to_vec::<f32>().unwrap();
                let without = lin.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
                assert_eq!(fused.len(), 2 * rows * d_out);
                for (i, (a, b)) in fused.iter().zip(&steps).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{rows}×{d_in}→{d_out}, value {i}: {a} vs {b}");
                }
                // the residual was added (to every value: it is nowhere near 0)
                assert!(fused.iter().zip(&without).all(|(a, b)| a != b));
            }
        }
    }

    #[test]
    fn activation_in_the_epilogue_gives_the_bits_of_the_two_steps() {
        note_if_unavailable();
        let device = Device::flex();
        // one row block and several (column groups at few rows), panels left over, NaN inputs
        let (mut past_6, mut gelu_negatives) = (false, 0);
        for (rows, d_in, d_out) in [(1, 8, 5), (65, 256, 1024), (300, 40, 33)] {
            let lin = LinearConfig::new(d_in, d_out).init(&device);
            // wide inputs: outputs well past 6, so a clamp with a bound would show
            let mut v = Tensor::<2>::random([rows, d_in], Distribution::Normal(0.0, 20.0), &device).into_data().try_to_vec::<f32>().unwrap();
            if rows > 1 {
                v[d_in * (rows / 2)] = f32::NAN;
            }
            let x = Tensor::<3>::from_data(burn::tensor::TensorData::new(v, [1, rows, d_in]), &device);
            for act in [LinearActivation::Relu, LinearActivation::Gelu] {
                let fused = lin.forward_activated(x.clone(), act).into_data().try_to_vec::<f32>().unwrap();
                let y = lin.forward(x.clone());
                let steps = match act {
                    LinearActivation::Relu => burn::tensor::activation::relu(y),
                    LinearActivation::Gelu => crate::gelu(y),
                };
                let steps = steps.into_data().try_to_vec::<f32>().unwrap();
                assert_eq!(fused.len(), rows * d_out);
                let nan = fused.iter().filter(|v| v.is_nan()).count();
                assert_eq!(nan, if rows > 1 { d_out } else { 0 }, "{act:?}: the row of the NaN input, and only it");
                for (i, (a, b)) in fused.iter().zip(&steps).enumerate() {
                    assert!(
                        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) || (*a == 0.0 && *b == 0.0),
                        "{act:?} {rows}×{d_in}→{d_out}, value {i}: {a} vs {b}"
                    );
                }
                past_6 |= fused.iter().any(|v| *v > 6.0);
                let negatives = fused.iter().filter(|v| **v < 0.0).count();
                match act {
                    LinearActivation::Relu => assert_eq!(negatives, 0),
                    LinearActivation::Gelu => gelu_negatives += negatives,
                }
            }
        }
        // the cases covered what a wrong epilogue would change (over all of them: a 1 × 5 output
        // alone may by chance have neither)
        assert!(past_6, "some outputs past 6");
        assert!(gelu_negatives > 0, "GELU keeps small negatives");
    }

    #[test]
    fn the_weight_is_packed_once_and_again_when_it_changes() {
        note_if_unavailable();
        if !packed::available() {
            return;
        }
        let device = Device::flex();
        let mut lin = LinearConfig::new(40, 24).init(&device);
        let x = Tensor::<2>::random([9, 40], Distribution::Normal(0.0, 1.0), &device);
        let y0 = lin.forward(x.clone());
        let y1 = lin.forward(x.clone());
        assert_eq!(packs(&lin), 1, "a second call reuses the packing");
        assert_eq!(y0.into_data().try_to_vec::<f32>().unwrap(), y1.into_data().try_to_vec::<f32>().unwrap());
        // a new weight (as a loaded record or a training step gives): packed again, never stale
        lin.weight = Param::from_tensor(Tensor::<2>::random([40, 24], Distribution::Normal(0.0, 1.0), &device));
        assert!(rel_any(lin.forward(x.clone()), lin.with_burn(x.clone())) < 1e-5);
        assert_eq!(packs(&lin), 2);
        // a transposed view (how PyTorch weights are loaded) is read through its strides
        let w_t = Tensor::<2>::random([24, 40], Distribution::Normal(0.0, 1.0), &device);
        lin.weight = Param::from_tensor(w_t.clone().transpose());
        assert!(rel_any(lin.forward(x.clone()), lin.with_burn(x.clone())) < 1e-5);
        lin.forward(x.clone());
        assert_eq!(packs(&lin), 3);
        // a clone (`valid()`, a copy for another thread) starts empty and packs its own
        let copy = lin.clone();
        assert_eq!(packs(&copy), 0);
        assert!(rel_any(copy.forward(x.clone()), lin.with_burn(x)) < 1e-5);
    }

    #[test]
    fn a_group_equals_its_layers_and_repacks_when_one_changes() {
        note_if_unavailable();
        let device = Device::flex();
        let mut layers =
            vec![LinearConfig::new(48, 32).init(&device), LinearConfig::new(48, 17).with_bias(false).init(&device), LinearConfig::new(48, 32).init(&device)];
        let cache = PackedCache::default();
        let packs = || cache.builds.load(std::sync::atomic::Ordering::Relaxed);
        // one post (few rows: one product) and many rows (each layer on its own)
        for rows in [1, 65, 2000] {
            let x = Tensor::<3>::random([1, rows, 48], Distribution::Normal(0.0, 1.0), &device);
            let ys = forward_group([&layers[0], &layers[1], &layers[2]], &cache, x.clone());
            for (y, l) in ys.into_iter().zip(&layers) {
                assert_eq!(y.dims(), [1, rows, l.weight.dims()[1]]);
                assert!(rel_any(y, l.with_burn(x.clone())) < 1e-5, "{rows} rows");
            }
        }
        if packed::available() {
            assert_eq!(packs(), 1, "the group was packed once for both short inputs");
        }
        // a new weight in one layer: the group packs again and stays exact
        layers[1].weight = Param::from_tensor(Tensor::<2>::random([48, 17], Distribution::Normal(0.0, 1.0), &device));
        let x = Tensor::<2>::random([7, 48], Distribution::Normal(0.0, 1.0), &device);
        let ys = forward_group([&layers[0], &layers[1], &layers[2]], &cache, x.clone());
        assert!(rel_any(ys[1].clone(), layers[1].with_burn(x.clone())) < 1e-5);
        if packed::available() {
            assert_eq!(packs(), 2);
        }
        // under autodiff: each layer on its own (no packing)
        let tracked = Device::flex().autodiff();
        let lt = LinearConfig::new(48, 5).init(&tracked);
        let xt = Tensor::<2>::random([3, 48], Distribution::Normal(0.0, 1.0), &tracked);
        let ys = forward_group([&lt, &lt], &cache, xt.clone());
        assert!(rel_any(ys[0].clone(), lt.with_burn(xt)) < 1e-5);
        if packed::available() {
            assert_eq!(packs(), 2);
        }
    }

    #[test]
    fn prediction_does_not_depend_on_the_threads_and_keeps_nan_in_its_row() {
        note_if_unavailable();
        let device = Device::flex();
        let lin = LinearConfig::new(256, 1024).init(&device);
        let mut v = Tensor::<2>::random([64, 256], Distribution::Normal(0.0, 1.0), &device).into_data().try_to_vec::<f32>().unwrap();
        v[5 * 256 + 17] = f32::NAN;
        let x = Tensor::<2>::from_data(burn::tensor::TensorData::new(v, [64, 256]), &device);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| lin.forward(x.clone())).into_data().try_to_vec::<f32>().unwrap()
        };
        let (one, three) = (run(1), run(3));
        assert_eq!(one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), three.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        for (i, row) in one.chunks(1024).enumerate() {
            assert_eq!(row.iter().all(|v| v.is_nan()), i == 5, "row {i}");
            assert!(i == 5 || row.iter().all(|v| v.is_finite()), "row {i}");
        }
    }

    #[test]
    fn the_wide_kernel_gives_the_bits_of_the_narrow_one() {
        if packed::isa() != Some(packed::Isa::Avx512) {
            eprintln!("NOTE: this CPU lacks AVX-512: the 512-bit packed kernel is not compared with the 256-bit one here");
            return;
        }
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        // odd and even panel counts, a partial last panel, K over several blocks, tile remainders,
        // columns split into groups of an odd number of panels (MobileNetV2's 7 × 7 layers)
        for (rows, k, n) in [(1, 8, 32), (7, 300, 48), (65, 256, 40), (13, 600, 33), (200, 64, 96), (49, 160, 960), (49, 160, 160)] {
            let x = Tensor::<2>::random([rows, k], Distribution::Normal(0.0, 1.0), &Device::flex()).into_data().try_to_vec::<f32>().unwrap();
            let w = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 1.0), &Device::flex()).into_data().try_to_vec::<f32>().unwrap();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 3.0).collect();
            let w = packed::PackedWeight::new(&w, k, n);
            let narrow = packed::forward_isa(packed::Isa::Avx2, &x, rows, &w, Some(&bias), None);
            let wide = packed::forward_isa(packed::Isa::Avx512, &x, rows, &w, Some(&bias), None);
            assert_eq!(bits(narrow), bits(wide), "{rows}×{k}→{n}");
        }
    }

    #[test]
    fn training_gradients_do_not_depend_on_the_threads() {
        let device = Device::flex().autodiff();
        let lin = LinearConfig::new(300, 70).init(&device);
        let x = Tensor::<2>::random([130, 300], Distribution::Normal(0.0, 1.0), &device);
        let r = Tensor::<2>::random([130, 70], Distribution::Normal(0.0, 1.0), &device);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let x = x.clone().require_grad();
                let y = lin.fused(&x).expect("the operation applies");
                let g = (y.clone() * r.clone()).sum().backward();
                let bits = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect::<Vec<_>>();
                let b = lin.bias.as_ref().unwrap().grad(&g).unwrap().unsqueeze::<2>();
                [bits(y.inner()), bits(x.grad(&g).unwrap()), bits(lin.weight.grad(&g).unwrap()), bits(b)]
            })
        };
        assert_eq!(run(1), run(3), "output, input, weight and bias gradients");
    }

    #[test]
    fn frozen_layer_and_plain_devices() {
        let device = Device::flex().autodiff();
        let lin = LinearConfig::new(4, 3).init(&device).no_grad();
        let x = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let g = lin.fused(&x).unwrap().sum().backward();
        let g_burn = lin.with_burn(x.clone()).sum().backward();
        assert!(rel(x.grad(&g).unwrap(), x.grad(&g_burn).unwrap()) < 1e-6);
        assert!(lin.weight.grad(&g).is_none());
        // not an autodiff tensor: burn's layer
        let plain = LinearConfig::new(4, 3).init(&Device::flex());
        assert!(plain.fused(&Tensor::<2>::zeros([2, 4], &Device::flex())).is_none());
    }
}
