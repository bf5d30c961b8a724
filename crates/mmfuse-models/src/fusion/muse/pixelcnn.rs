//! Conditional PixelCNN++ (Salimans, Karpathy, Chen & Kingma, 2017,
//! <https://arxiv.org/abs/1701.05517>): MuSE's text→image regularising decoder (L_ti). An
//! autoregressive model of a `H×W` RGB image scaled to `[−1, 1]` whose output at pixel `(i, j)`
//! parametrises a mixture of `M` discretised logistics over the pixel's three sub-pixels and sees
//! only the pixels before `(i, j)` in raster order (plus the condition vector).
//!
//! In MuSE, "Exchanging-based Multimodal Fusion with Transformer" (arXiv 2309.02190): `Î = ImageDecoder(T_n)`, eq. (5),
//! with `T_n = MLP(T_e + N_t(0,1))`, trained by L_ti, the text-to-image generation loss (§4.1 of the MuSE reading
//! notes, `shared/seeds/001_*`; PixelCNN++ with the mixture-of-logistics loss at 32×32 in their §5 setup);
//! shared/METHODS.md §1 "Regularising decoders".
//!
//! Architecture, following the PyTorch port by pclucas14 (`pixel-cnn-pp`, which MuSE's code
//! copies) and the authors' TensorFlow code for the conditioning:
//!
//! - the input gets a constant ones-channel (so the zero padding of the shifted convolutions is
//!   distinguishable from black pixels);
//! - two streams: `u` sees the rows above (down-shifted convolutions, kernel 2×3), `ul` the rows
//!   above and the pixels to the left (down-right-shifted convolutions, kernel 2×2). Initial:
//!   `u = down_shift(down_shifted_conv₂ₓ₃(x))`, `ul = down_shift(down_shifted_conv₁ₓ₃(x)) +
//!   right_shift(down_right_shifted_conv₂ₓ₁(x))`;
//! - first pass (the reference's "up" layers) at resolutions `H`, `H/2`, `H/4`: `nr_resnet` gated
//!   ResNet blocks per resolution, every block output kept for the skips, strided (2×) shifted
//!   convolutions between resolutions; second pass (the reference's "down" layers) at `H/4`,
//!   `H/2`, `H`: `nr_resnet`, `nr_resnet + 1`, `nr_resnet + 1` blocks that consume the kept
//!   outputs in reverse (`u` block: skip `u_kept`; `ul` block: skip `[u; ul_kept]`), transposed
//!   shifted convolutions between resolutions;
//! - gated ResNet block: `c = conv(concat_elu(x)) [+ nin(concat_elu(skip))]`,
//!   `c = conv_out(dropout(concat_elu(c))) + W_h·h` (the condition broadcast over positions),
//!   `a, b = split(c)`, output `x + a ⊙ σ(b)`;
//! - output `nin(elu(ul))` → `10·M` channels: `M` mixture logits, then per colour channel
//!   `M` means, `M` log-scales and `M` coefficients (the reference's layout).
//!
//! Differences from the reference code, all deliberate:
//! - no weight normalisation (the reference wraps every convolution and `nin` in
//!   `torch.nn.utils.weight_norm`); instead `conv_out` of each block is initialised at 0.1 × the
//!   default scale, as the TF code's `init_scale = 0.1`, so the deep residual stack starts close
//!   to the identity;
//! - elementwise dropout as in the paper / TF code (the PyTorch port uses channel-wise
//!   `Dropout2d`);
//! - the condition enters every block through a bias-free linear map `d_cond → 2F` (TF
//!   `conditional_weights`, N(0, 0.05) init); the unconditional PyTorch port has none;
//! - the loss is returned per sample (the reference sums over the batch), see
//!   [`discretized_mix_logistic_loss`]; no sampling code (MuSE uses the model only as a
//!   training-time regulariser).
//!
//! MuSE's released code feeds the mean/std-normalised image although the loss assumes `[−1, 1]`;
//! callers should rescale to `[−1, 1]` (see METHODS.md §1).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::{log_softmax, sigmoid, tanh};
use burn::tensor::{Device, Tensor};
use mmfuse_kernels::{Dropout, DropoutConfig, Linear, LinearConfig};

/// Configuration of [`PixelCnnPp`] (reference values are the defaults).
#[derive(Config, Debug)]
pub struct PixelCnnPpConfig {
    /// Width of the condition vector `h`.
    pub d_cond: usize,
    /// Gated ResNet blocks per resolution in the first pass (paper: 5).
    #[config(default = 5)]
    pub nr_resnet: usize,
    /// Channels F of both streams (paper: 80).
    #[config(default = 80)]
    pub nr_filters: usize,
    /// Logistic mixture components M (paper: 10).
    #[config(default = 10)]
    pub nr_logistic_mix: usize,
    /// Dropout inside every gated ResNet block [0.5].
    #[config(default = 0.5)]
    pub dropout: f64,
}

/// A gated ResNet block (see the module docs). `nin_skip` exists when the block takes a skip
/// input; `conv_input` / `conv_out` are down-shifted (stream `u`) or down-right-shifted (`ul`).
#[derive(Module, Debug)]
pub struct GatedResnet {
    pub conv_input: Conv2d,
    pub nin_skip: Option<Linear>,
    pub dropout: Dropout,
    pub conv_out: Conv2d,
    pub cond: Linear,
}

/// The blocks of one resolution: stream `u` and stream `ul`, one pair per step.
#[derive(Module, Debug)]
pub struct PixelCnnLayer {
    pub u_stream: Vec<GatedResnet>,
    pub ul_stream: Vec<GatedResnet>,
}

/// Conditional PixelCNN++. Output: mixture parameters `[B, 10·M, H, W]`.
#[derive(Module, Debug)]
pub struct PixelCnnPp {
    pub u_init: Conv2d,
    pub ul_init_down: Conv2d,
    pub ul_init_right: Conv2d,
    /// First pass, resolutions H, H/2, H/4 (`nr_resnet` blocks each).
    pub up_layers: Vec<PixelCnnLayer>,
    /// Second pass, resolutions H/4, H/2, H (`nr_resnet`, `nr_resnet + 1`, `nr_resnet + 1`).
    pub down_layers: Vec<PixelCnnLayer>,
    pub downsize_u: Vec<Conv2d>,
    pub downsize_ul: Vec<Conv2d>,
    pub upsize_u: Vec<ConvTranspose2d>,
    pub upsize_ul: Vec<ConvTranspose2d>,
    pub nin_out: Linear,
    pub nr_logistic_mix: usize,
}

/// The PyTorch default conv initialisation, scaled by `scale`.
fn kaiming(scale: f64) -> Initializer {
    Initializer::KaimingUniform { gain: scale / 3f64.sqrt(), fan_out_only: false }
}

/// Convolution whose output at `(i, j)` sees rows `i − kh + 1 ..= i` and columns
/// `j − (kw−1)/2 ..= j + (kw−1)/2` of its input (pad top `kh − 1`, left/right `(kw − 1)/2`).
fn down_shifted_conv(c_in: usize, c_out: usize, k: [usize; 2], stride: usize, init_scale: f64, device: &Device) -> Conv2d {
    let side = (k[1] - 1) / 2;
    Conv2dConfig::new([c_in, c_out], k)
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(k[0] - 1, side, 0, side))
        .with_initializer(kaiming(init_scale))
        .init(device)
}

/// Convolution whose output at `(i, j)` sees rows `i − kh + 1 ..= i` and columns
/// `j − kw + 1 ..= j` (pad top `kh − 1`, left `kw − 1`).
fn down_right_shifted_conv(c_in: usize, c_out: usize, k: [usize; 2], stride: usize, init_scale: f64, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], k)
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(k[0] - 1, k[1] - 1, 0, 0))
        .with_initializer(kaiming(init_scale))
        .init(device)
}

/// Stride-2 transposed convolution with `output_padding = 1`, cropped back to `2H × 2W` by
/// [`down_shifted_deconv`] / [`down_right_shifted_deconv`].
fn shifted_deconv(f: usize, k: [usize; 2], device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([f, f], k).with_stride([2, 2]).with_padding_out([1, 1]).with_initializer(kaiming(1.0)).init(device)
}

/// Reference `down_shifted_deconv2d` (kernel 2×3): rows `..2H`, columns `1..2W+1`.
fn down_shifted_deconv(deconv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    deconv.forward(x).slice_dim(2, 0..2 * h).slice_dim(3, 1..2 * w + 1)
}

/// Reference `down_right_shifted_deconv2d` (kernel 2×2): rows `..2H`, columns `..2W`.
fn down_right_shifted_deconv(deconv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    deconv.forward(x).slice_dim(2, 0..2 * h).slice_dim(3, 0..2 * w)
}

/// Moves every row down by one (zeros in the first row, the last row dropped).
pub fn down_shift(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let zeros = Tensor::zeros([b, c, 1, w], &x.device());
    Tensor::cat(vec![zeros, x.slice_dim(2, 0..h - 1)], 2)
}

/// Moves every column right by one (zeros in the first column, the last column dropped).
pub fn right_shift(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let zeros = Tensor::zeros([b, c, h, 1], &x.device());
    Tensor::cat(vec![zeros, x.slice_dim(3, 0..w - 1)], 3)
}

/// `elu(x) = x` for `x > 0`, `exp(x) − 1` otherwise; written without a select so that the
/// unused branch cannot overflow into the gradient.
fn elu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().clamp_min(0.0) + x.clamp_max(0.0).exp().sub_scalar(1.0)
}

/// `elu([x; −x])` along the channels (doubles them).
pub fn concat_elu(x: Tensor<4>) -> Tensor<4> {
    elu(Tensor::cat(vec![x.clone(), x.neg()], 1))
}

/// Network-in-network: a linear map over the channels at every position.
fn nin(lin: &Linear, x: Tensor<4>) -> Tensor<4> {
    lin.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
}

impl GatedResnet {
    /// `x` `[B, F, H, W]`, optional `skip` `[B, k·F, H, W]`, condition `h` `[B, d_cond]`.
    pub fn forward(&self, x: Tensor<4>, skip: Option<Tensor<4>>, h: Tensor<2>) -> Tensor<4> {
        let [b, f, _, _] = x.dims();
        let mut c = self.conv_input.forward(concat_elu(x.clone()));
        if let (Some(nin_skip), Some(a)) = (&self.nin_skip, skip) {
            c = c + nin(nin_skip, concat_elu(a));
        }
        let c = self.conv_out.forward(self.dropout.forward(concat_elu(c)));
        let c = c + self.cond.forward(h).reshape([b, 2 * f, 1, 1]);
        let a = c.clone().narrow(1, 0, f);
        let gate = c.narrow(1, f, f);
        x + a * sigmoid(gate)
    }
}

impl PixelCnnPpConfig {
    fn block(&self, shifted: fn(usize, usize, [usize; 2], usize, f64, &Device) -> Conv2d, k: [usize; 2], skip: usize, device: &Device) -> GatedResnet {
        let f = self.nr_filters;
        GatedResnet {
            conv_input: shifted(2 * f, f, k, 1, 1.0, device),
            nin_skip: (skip > 0).then(|| LinearConfig::new(2 * skip * f, f).init(device)),
            dropout: DropoutConfig::new(self.dropout).init(),
            conv_out: shifted(2 * f, 2 * f, k, 1, 0.1, device),
            cond: LinearConfig::new(self.d_cond, 2 * f).with_bias(false).with_initializer(Initializer::Normal { mean: 0.0, std: 0.05 }).init(device),
        }
    }

    fn layer(&self, n: usize, u_skip: usize, ul_skip: usize, device: &Device) -> PixelCnnLayer {
        PixelCnnLayer {
            u_stream: (0..n).map(|_| self.block(down_shifted_conv, [2, 3], u_skip, device)).collect(),
            ul_stream: (0..n).map(|_| self.block(down_right_shifted_conv, [2, 2], ul_skip, device)).collect(),
        }
    }

    pub fn init(&self, device: &Device) -> PixelCnnPp {
        let (f, n) = (self.nr_filters, self.nr_resnet);
        let c_in = 3 + 1; // RGB + ones-channel
        PixelCnnPp {
            u_init: down_shifted_conv(c_in, f, [2, 3], 1, 1.0, device),
            ul_init_down: down_shifted_conv(c_in, f, [1, 3], 1, 1.0, device),
            ul_init_right: down_right_shifted_conv(c_in, f, [2, 1], 1, 1.0, device),
            up_layers: (0..3).map(|_| self.layer(n, 0, 1, device)).collect(),
            down_layers: [n, n + 1, n + 1].into_iter().map(|k| self.layer(k, 1, 2, device)).collect(),
            downsize_u: (0..2).map(|_| down_shifted_conv(f, f, [2, 3], 2, 1.0, device)).collect(),
            downsize_ul: (0..2).map(|_| down_right_shifted_conv(f, f, [2, 2], 2, 1.0, device)).collect(),
            upsize_u: (0..2).map(|_| shifted_deconv(f, [2, 3], device)).collect(),
            upsize_ul: (0..2).map(|_| shifted_deconv(f, [2, 2], device)).collect(),
            nin_out: LinearConfig::new(f, 10 * self.nr_logistic_mix).init(device),
            nr_logistic_mix: self.nr_logistic_mix,
        }
    }
}

impl PixelCnnPp {
    /// `x` `[B, 3, H, W]` in `[−1, 1]` (H, W divisible by 4), `cond` `[B, d_cond]` → mixture
    /// parameters `[B, 10·M, H, W]`; the parameters at `(i, j)` depend only on the pixels before
    /// `(i, j)` in raster order.
    pub fn forward(&self, x: Tensor<4>, cond: Tensor<2>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        assert_eq!(c, 3, "PixelCNN++ models RGB images");
        assert!(h % 4 == 0 && w % 4 == 0 && h > 0 && w > 0, "H and W must be divisible by 4, got {h}×{w}");
        let ones = Tensor::ones([b, 1, h, w], &x.device());
        let x = Tensor::cat(vec![x, ones], 1);

        // first pass: keep every block output for the skips
        let mut u_list = vec![down_shift(self.u_init.forward(x.clone()))];
        let mut ul_list = vec![down_shift(self.ul_init_down.forward(x.clone())) + right_shift(self.ul_init_right.forward(x))];
        for (i, layer) in self.up_layers.iter().enumerate() {
            let mut u = u_list.last().unwrap().clone();
            let mut ul = ul_list.last().unwrap().clone();
            for (bu, bul) in layer.u_stream.iter().zip(&layer.ul_stream) {
                u = bu.forward(u, None, cond.clone());
                ul = bul.forward(ul, Some(u.clone()), cond.clone());
                u_list.push(u.clone());
                ul_list.push(ul.clone());
            }
            if i < 2 {
                u_list.push(self.downsize_u[i].forward(u));
                ul_list.push(self.downsize_ul[i].forward(ul));
            }
        }

        // second pass: consume them in reverse
        let mut u = u_list.pop().unwrap();
        let mut ul = ul_list.pop().unwrap();
        for (i, layer) in self.down_layers.iter().enumerate() {
            for (bu, bul) in layer.u_stream.iter().zip(&layer.ul_stream) {
                u = bu.forward(u, Some(u_list.pop().unwrap()), cond.clone());
                ul = bul.forward(ul, Some(Tensor::cat(vec![u.clone(), ul_list.pop().unwrap()], 1)), cond.clone());
            }
            if i < 2 {
                u = down_shifted_deconv(&self.upsize_u[i], u);
                ul = down_right_shifted_deconv(&self.upsize_ul[i], ul);
            }
        }
        debug_assert!(u_list.is_empty() && ul_list.is_empty());
        nin(&self.nin_out, elu(ul))
    }

    /// Per-sample negative log-likelihood in nats `[B]` of `x` under `self.forward(x, cond)`.
    pub fn loss(&self, x: Tensor<4>, cond: Tensor<2>) -> Tensor<1> {
        let params = self.forward(x.clone(), cond);
        discretized_mix_logistic_loss(x, params)
    }
}

/// `log(1 + exp(x))` without overflow.
fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// Negative log-likelihood (nats) of `x` `[B, 3, H, W]` (values `k/127.5 − 1`, `k = 0..=255`)
/// under the mixture of discretised logistics `params` `[B, 10·M, H, W]`, summed over pixels and
/// channels: `[B]`.
///
/// As the reference `discretized_mix_logistic_loss`: per pixel, mixture logits `π` (channels
/// `0..M`), then for colour channel `c` the channels `M + 3Mc + (0..M | M..2M | 2M..3M)` hold
/// means `μ`, log-scales (clamped at −7) and coefficients (through `tanh`); the green mean is
/// `μ_g + c₀·x_r`, the blue mean `μ_b + c₁·x_r + c₂·x_g`. Each sub-pixel gets
/// `log σ(x⁺)` at `x < −0.999`, `log(1 − σ(x⁻))` at `x > 0.999`, else `log(σ(x⁺) − σ(x⁻))`
/// with `x± = (x − μ ± 1/255)/s`, falling back to `log pdf(x) − log 127.5` where the bin mass
/// is below 1e-5. The pixel's log-likelihood is `logsumexp_m(log_softmax(π)_m + Σ_c log p_mc)`.
pub fn discretized_mix_logistic_loss(x: Tensor<4>, params: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = x.dims();
    let [_, p, _, _] = params.dims();
    assert_eq!(c, 3, "the loss models RGB images");
    assert_eq!(p % 10, 0, "expected 10·M parameter channels, got {p}");
    let m = p / 10;
    let logit_probs = params.clone().narrow(1, 0, m); // [B, M, H, W]
    let rest = params.narrow(1, m, 9 * m).reshape([b, 3, 3, m, h, w]); // [B, colour, kind, M, H, W]
    let kind = |k: usize| rest.clone().narrow(2, k, 1).reshape([b, 3, m, h, w]);
    let means = kind(0);
    let log_scales = kind(1).clamp_min(-7.0);
    let coeffs = tanh(kind(2));
    let colour = |t: &Tensor<5>, i: usize| t.clone().narrow(1, i, 1); // [B, 1, M, H, W]

    let xe = x.clone().reshape([b, 3, 1, h, w]).expand([b, 3, m, h, w]);
    let (x_r, x_g) = (colour(&xe, 0), colour(&xe, 1));
    let m_r = colour(&means, 0);
    let m_g = colour(&means, 1) + colour(&coeffs, 0) * x_r.clone();
    let m_b = colour(&means, 2) + colour(&coeffs, 1) * x_r + colour(&coeffs, 2) * x_g;
    let means = Tensor::cat(vec![m_r, m_g, m_b], 1);

    let centered = xe.clone() - means;
    let inv_stdv = log_scales.clone().neg().exp();
    let plus_in = inv_stdv.clone() * (centered.clone() + 1.0 / 255.0);
    let min_in = inv_stdv.clone() * (centered.clone() - 1.0 / 255.0);
    let log_cdf_plus = plus_in.clone() - softplus(plus_in.clone()); // x = −1
    let log_one_minus_cdf_min = softplus(min_in.clone()).neg(); // x = 1
    let cdf_delta = sigmoid(plus_in) - sigmoid(min_in);
    let mid_in = inv_stdv * centered;
    let log_pdf_mid = mid_in.clone() - log_scales - softplus(mid_in).mul_scalar(2.0);

    let inner_inner = log_pdf_mid.sub_scalar(127.5f64.ln()).mask_where(cdf_delta.clone().greater_elem(1e-5), cdf_delta.clamp_min(1e-12).log());
    let inner = inner_inner.mask_where(xe.clone().greater_elem(0.999), log_one_minus_cdf_min);
    let log_probs = inner.mask_where(xe.lower_elem(-0.999), log_cdf_plus); // [B, 3, M, H, W]

    let log_probs = log_probs.sum_dim(1).reshape([b, m, h, w]) + log_softmax(logit_probs, 1);
    let max = log_probs.clone().max_dim(1).detach(); // [B, 1, H, W]
    let lse = (log_probs - max.clone()).exp().sum_dim(1).log() + max;
    lse.reshape([b, h * w]).sum_dim(1).reshape([b]).neg()
}

/// Bits per sub-pixel of a per-sample NLL in nats over an `h×w` RGB image.
pub fn bits_per_dim(nll: Tensor<1>, h: usize, w: usize) -> Tensor<1> {
    nll.div_scalar(3.0 * (h * w) as f64 * std::f64::consts::LN_2)
}
