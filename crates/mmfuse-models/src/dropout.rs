//! Dropout with a fast mask: the same semantics as `burn::nn::Dropout::forward` (active only on
//! an autodiff device, in a layer whose `training` flag is on, with `prob > 0`; kept values are
//! scaled by `1 / (1 − prob)`), but the Bernoulli mask is drawn with xoshiro generators
//! (`rand`'s `SmallRng`, one per block of the mask, the blocks in parallel) instead of burn's
//! per-element ChaCha sampler, which took about 16 % of a MuSE-small training step (measured
//! with `perf` on `benches/muse_vs_torch.rs`).
//!
//! The generator is seeded from burn's device RNG (one draw per call), so `Device::seed` still
//! makes the masks reproducible — a resumed run draws the same masks as an uninterrupted one.

use burn::nn::Dropout;
use burn::tensor::{Distribution, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rayon::prelude::*;

/// [`Dropout`] applied with the fast mask.
pub trait FastDropout {
    fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>;
}

impl FastDropout for Dropout {
    fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !self.training.is_enabled() || !x.device().is_autodiff() || self.prob == 0.0 {
            return x;
        }
        let device = x.device();
        let keep = 1.0 - self.prob;
        // one draw from the device RNG seeds this call's generator
        let s = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), &device).into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let seed = s.iter().fold(0u64, |acc, v| (acc << 32) ^ u64::from(v.to_bits()));
        let shape = x.shape();
        let mask = keep_mask(shape.num_elements(), keep, seed);
        x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
    }
}

/// Mask values come in blocks of this many, each drawn by its own generator seeded with
/// (seed, block index): the blocks fill in parallel on the compute pool, and the mask still
/// depends only on the seed, not on how the work was split.
const BLOCK: usize = 16 * 1024;

/// `n` mask values from `seed`: `1 / keep` with probability `keep`, else 0.
pub fn keep_mask(n: usize, keep: f64, seed: u64) -> Vec<f32> {
    let scale = (1.0 / keep) as f32;
    if keep >= 1.0 {
        return vec![scale; n];
    }
    let mut mask = vec![0.0; n];
    // P(u < threshold) = keep for a uniform u32 u; compared on the top 31 bits as i32, which
    // every x86-64 vector unit compares (error ≤ 2^-31)
    let half_threshold = ((keep.max(0.0) * 4_294_967_296.0) as u32 >> 1) as i32;
    let scale_bits = scale.to_bits();
    mask.par_chunks_mut(BLOCK).enumerate().for_each(|(b, block)| {
        let mut rng = SmallRng::seed_from_u64(seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut bits = [0u32; 1024];
        for chunk in block.chunks_mut(bits.len()) {
            for pair in bits.chunks_exact_mut(2) {
                let r = rng.next_u64();
                pair[0] = r as u32;
                pair[1] = (r >> 32) as u32;
            }
            // branch-free, so that the compiler vectorises it
            for (m, &u) in chunk.iter_mut().zip(bits.iter()) {
                let kept = ((u >> 1) as i32) < half_threshold;
                *m = f32::from_bits(scale_bits & u32::from(kept).wrapping_neg());
            }
        }
    });
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;
    use burn::tensor::Device;

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
        let a = drop.apply(Tensor::<2>::ones([50, 40], &d)).into_data().try_to_vec::<f32>().unwrap();
        assert!(a.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.7).abs() < 1e-6));
        assert!(a.contains(&0.0) && a.iter().any(|v| *v != 0.0));
        // not on a device without autodiff (evaluation), nor with p = 0
        let e = Device::flex();
        let y = drop.apply(Tensor::<2>::ones([4, 4], &e)).into_data().try_to_vec::<f32>().unwrap();
        assert!(y.iter().all(|v| *v == 1.0));
        let z = DropoutConfig::new(0.0).init().apply(Tensor::<2>::ones([4, 4], &d)).into_data().try_to_vec::<f32>().unwrap();
        assert!(z.iter().all(|v| *v == 1.0));
    }
}
