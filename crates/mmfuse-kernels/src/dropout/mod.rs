//! Dropout with a fast mask: a drop-in for `burn::nn::Dropout` (same fields, same
//! records) with the same semantics as its `forward` (active only on
//! an autodiff device, in a layer whose `training` flag is on, with `prob > 0`; kept values are
//! scaled by `1 / (1 − prob)`), but the Bernoulli mask is drawn with xoshiro generators
//! (`rand`'s `SmallRng`, one per block of the mask, the blocks in parallel) instead of burn's
//! per-element ChaCha sampler, which took about 16 % of a MuSE-small training step (measured
//! with `perf` on `benches/muse_vs_torch.rs`).
//!
//! The generator is seeded from burn's device RNG (one draw per call), so `Device::seed` still
//! makes the masks reproducible — a resumed run draws the same masks as an uninterrupted one.
//!
//! On other devices (the GPU) the mask is burn's, drawn on the device: a host-made mask would
//! cost a read-back and an upload per call.

mod mask;

use burn::config::Config;
use burn::module::{Flag, Module, Param};
use burn::tensor::{Distribution, Tensor, TensorData};
pub use mask::keep_mask;

/// Configuration of a [`Dropout`].
#[derive(Config, Debug)]
pub struct DropoutConfig {
    /// The probability of zeroing a value, in [0, 1).
    pub prob: f64,
}

impl DropoutConfig {
    /// The layer.
    ///
    /// # Panics
    /// If `prob` is not in [0, 1), as burn's.
    pub fn init(&self) -> Dropout {
        let d = burn::nn::DropoutConfig::new(self.prob).init();
        Dropout { prob: d.prob, training: d.training }
    }
}

/// Dropout with the fast mask ([`keep_mask`]).
#[derive(Module, Debug)]
pub struct Dropout {
    /// The probability of zeroing a value.
    pub prob: f64,
    /// Whether the layer takes part in training (off in a frozen subtree).
    pub training: Param<Flag>,
}

impl Dropout {
    /// `x` with values zeroed with probability `prob` and the others scaled by `1/(1 − prob)`,
    /// on an autodiff device in a training layer; `x` itself otherwise.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !self.training.is_enabled() || !x.device().is_autodiff() || self.prob == 0.0 {
            return x;
        }
        let device = x.device();
        let keep = 1.0 - self.prob;
        if !crate::device::is_cpu(&device) {
            let mask = Tensor::<D>::random(x.shape(), Distribution::Bernoulli(keep), &device);
            return x * mask.div_scalar(keep);
        }
        let shape = x.shape();
        let mask = self.draw_mask(shape.num_elements(), &device);
        x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
    }

    /// The mask [`Dropout::forward`] would multiply `n` values by on the CPU backend (`1/(1 −
    /// prob)` or 0 each, the same draw from the device RNG), for a fused operation that applies
    /// it itself ([`attention`](crate::attention) in training); `None` where `forward` would
    /// return its input unchanged.
    pub(crate) fn cpu_mask(&self, n: usize, device: &burn::tensor::Device) -> Option<Vec<f32>> {
        (self.training.is_enabled() && device.is_autodiff() && self.prob != 0.0 && crate::device::is_cpu(device)).then(|| self.draw_mask(n, device))
    }

    /// `n` mask values of [`keep_mask`], seeded by one draw from `device`'s RNG.
    fn draw_mask(&self, n: usize, device: &burn::tensor::Device) -> Vec<f32> {
        let s = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), device).into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let seed = s.iter().fold(0u64, |acc, v| (acc << 32) ^ u64::from(v.to_bits()));
        keep_mask(n, 1.0 - self.prob, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use mask::BLOCK;

    #[test]
    fn the_mask_keeps_the_right_share_scaled_and_depends_only_on_the_seed() {
        let a = keep_mask(100_001, 0.7, 42);
        let kept = a.iter().filter(|v| **v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.7).abs() < 0.005, "kept {kept}");
        assert!(a.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.7).abs() < 1e-6));
        assert_eq!(keep_mask(100_001, 0.7, 42), a, "the same seed, the same mask");
        assert_ne!(keep_mask(100_001, 0.7, 43), a);
        // each block has its own stream: no block repeats another
        assert_ne!(a[..BLOCK], a[BLOCK..2 * BLOCK]);
        let share = |s: &[f32]| s.iter().filter(|v| **v != 0.0).count() as f64 / s.len() as f64;
        assert!((share(&a[BLOCK..2 * BLOCK]) - 0.7).abs() < 0.02);
        // the edges: keep everything, keep nothing
        assert!(keep_mask(1000, 1.0, 1).iter().all(|v| *v == 1.0));
        assert!(keep_mask(1000, 0.0, 1).iter().all(|v| *v == 0.0));
    }

    // The device RNG is process-wide and other tests draw from it in parallel, so this test
    // checks only what does not depend on the draw.
    #[test]
    fn applies_on_autodiff_devices_only() {
        let d = Device::flex().autodiff();
        let drop = DropoutConfig::new(0.3).init();
        let a = drop.forward(Tensor::<2>::ones([50, 40], &d)).into_data().try_to_vec::<f32>().unwrap();
        assert!(a.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.7).abs() < 1e-6));
        assert!(a.contains(&0.0) && a.iter().any(|v| *v != 0.0));
        // not on a device without autodiff (evaluation), nor with p = 0
        let e = Device::flex();
        let y = drop.forward(Tensor::<2>::ones([4, 4], &e)).into_data().try_to_vec::<f32>().unwrap();
        assert!(y.iter().all(|v| *v == 1.0));
        let z = DropoutConfig::new(0.0).init().forward(Tensor::<2>::ones([4, 4], &d)).into_data().try_to_vec::<f32>().unwrap();
        assert!(z.iter().all(|v| *v == 1.0));
    }
}
