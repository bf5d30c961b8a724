//! Scalar math shared by the passes (branch-free, so their loops vectorise), the ReLU clamp, and the
//! split of long passes over the compute pool.

use rayon::prelude::*;

/// `max(a, b)` that returns NaN when either is NaN.
#[inline(always)]
pub fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || a > b { a } else { b }
}

/// Above this many elements the pass is split over the compute pool (a chunk is ~100 µs of
/// work, well above the cost of waking a pool thread).
pub(crate) const PARALLEL_CHUNK: usize = 1 << 17;

/// An output buffer's data pointer shared by parallel tasks that each write their own disjoint
/// part of it (the caller's `SAFETY` argument says which).
pub(crate) struct DisjointOut(pub(crate) *mut f32);
// SAFETY: only a pointer; the tasks holding it write disjoint elements (each user's argument).
unsafe impl Sync for DisjointOut {}

impl DisjointOut {
    /// The pointer `offset` values in (a method, so closures capture the whole `Sync` wrapper).
    pub(crate) fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// `f(i, row)` for every row `i` of `out` (rows of `row_len` values, e.g. f32, or
/// `MaybeUninit<f32>` for a buffer `f` writes whole), `per_task` whole rows a task on the
/// compute pool.
pub(crate) fn for_row_chunks<T: Send>(out: &mut [T], row_len: usize, per_task: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    out.par_chunks_mut(per_task * row_len).enumerate().for_each(|(t, rows)| {
        for (i, row) in rows.chunks_mut(row_len).enumerate() {
            f(t * per_task + i, row);
        }
    });
}

pub(crate) fn for_chunks(v: &mut [f32], f: impl Fn(&mut [f32]) + Sync + Send) {
    if v.len() <= PARALLEL_CHUNK { f(v) } else { v.par_chunks_mut(PARALLEL_CHUNK).for_each(f) }
}

pub(crate) fn for_chunk_pairs(a: &mut [f32], b: &mut [f32], f: impl Fn(&mut [f32], &mut [f32]) + Sync + Send) {
    if a.len() <= PARALLEL_CHUNK { f(a, b) } else { a.par_chunks_mut(PARALLEL_CHUNK).zip(b.par_chunks_mut(PARALLEL_CHUNK)).for_each(|(a, b)| f(a, b)) }
}

/// `min(max(x, 0), max)` in place (ReLU with `max` = ∞, ReLU6 with 6), NaN kept: one
/// branch-free pass, vectorised with AVX2 or AVX-512 where the CPU has them (`pulp`).
pub(crate) fn clamp_relu(v: &mut [f32], max: f32) {
    struct Clamp<'a>(&'a mut [f32], f32);
    impl pulp::WithSimd for Clamp<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let Self(v, max) = self;
            for x in v.iter_mut() {
                // NaN compares false and stays
                let y = if *x < 0.0 { 0.0 } else { *x };
                *x = if y > max { max } else { y };
            }
        }
    }
    pulp::Arch::new().dispatch(Clamp(v, max));
}

/// `(Φ(x), φ(x))`, the standard normal CDF and density. Branch-free, so the loops above
/// vectorise; NaN in gives NaN out.
#[inline(always)]
pub(crate) fn phi(x: f32) -> (f32, f32) {
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
pub(crate) fn exp_neg(u: f32) -> f32 {
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

/// `y += r` (over `y`'s length), vectorised for the CPU at hand.
pub(crate) fn add_assign(y: &mut [f32], r: &[f32]) {
    struct AddAssign<'a>(&'a mut [f32], &'a [f32]);
    impl pulp::WithSimd for AddAssign<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            for (y, r) in self.0.iter_mut().zip(self.1) {
                *y += r;
            }
        }
    }
    pulp::Arch::new().dispatch(AddAssign(y, r));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_is_accurate_on_its_range() {
        for i in 0..=90_000 {
            let u = i as f32 * 0.001;
            let (got, want) = (exp_neg(u) as f64, (-(u as f64)).exp());
            assert!((got - want).abs() <= 2.5e-7 * want + 2.0 * f32::MIN_POSITIVE as f64, "exp(-{u}) = {got} vs {want}");
        }
        assert_eq!(exp_neg(1000.0), 0.0);
    }
}
