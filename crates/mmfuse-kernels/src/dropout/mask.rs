//! The dropout mask: xoshiro generators, one per block of the mask, the blocks in parallel.

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rayon::prelude::*;

/// Mask values come in blocks of this many, each drawn by its own generator seeded with
/// (seed, block index): the blocks fill in parallel on the compute pool, and the mask still
/// depends only on the seed, not on how the work was split.
pub(crate) const BLOCK: usize = 16 * 1024;

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
