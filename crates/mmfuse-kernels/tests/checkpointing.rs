//! The kernels under burn's gradient checkpointing (their second conversion path into the
//! autodiff graph) give burn's gradients.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Distribution, Tensor};
use mmfuse_kernels::{LayerNormConfig, LinearConfig, attention_softmax, conv2d, gelu, max_pool2d};

fn max_rel<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
    (a - b).abs().max().into_scalar::<f32>() / scale
}

/// Under gradient checkpointing (burn's balanced strategy) the operations take their other
/// conversion path: the gradients must still be burn's.
#[test]
fn gradients_under_gradient_checkpointing_match_burns() {
    let device = Device::flex().autodiff().gradient_checkpointing();
    // image side: convolution → max-pool
    let conv = Conv2dConfig::new([3, 4], [3, 3]).with_padding(PaddingConfig2d::Same).init(&device);
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let x = Tensor::<4>::random([2, 3, 8, 6], Distribution::Normal(0.0, 1.0), &device);
    let r = Tensor::<4>::random([2, 4, 4, 3], Distribution::Normal(0.0, 1.0), &device);
    let image = |ours: bool| {
        let x = x.clone().require_grad();
        let y = if ours { max_pool2d(&pool, conv2d(&conv, x.clone())) } else { pool.forward(conv.forward(x.clone())) };
        let g = (y * r.clone()).sum().backward();
        (x.grad(&g).unwrap(), conv.weight.grad(&g).unwrap())
    };
    let ((x0, w0), (x1, w1)) = (image(true), image(false));
    assert!(max_rel(x0, x1) < 1e-5 && max_rel(w0, w1) < 1e-5, "image side");
    // text side: Linear → GELU → layer norm → attention softmax
    let lin = LinearConfig::new(8, 8).init(&device);
    let norm = LayerNormConfig::new(8).init(&device);
    let t = Tensor::<3>::random([2, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    let bias = Tensor::<2>::zeros([2, 8], &device);
    let q = Tensor::<4>::random([2, 1, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    let text = |ours: bool| {
        let t = t.clone().require_grad();
        let h = if ours { norm.forward(gelu(lin.forward(t.clone()))) } else { norm.with_burn(burn::tensor::activation::gelu(lin.with_burn(t.clone()))) };
        let scores = h.unsqueeze_dim::<4>(1) * q.clone();
        let a = if ours { attention_softmax(scores, 0.5, bias.clone()) } else { softmax(scores.mul_scalar(0.5), 3) };
        let g = (a * q.clone()).sum().backward();
        (t.grad(&g).unwrap(), lin.weight.grad(&g).unwrap(), norm.gamma.grad(&g).unwrap())
    };
    let ((t0, l0, n0), (t1, l1, n1)) = (text(true), text(false));
    assert!(max_rel(t0, t1) < 1e-4 && max_rel(l0, l1) < 1e-4 && max_rel(n0, n1) < 1e-4, "text side");
}
