//! GELU's forward passes over f32 slices: the value, or the value and the derivative.

use crate::math::phi;

/// `x` → GELU(x) in place.
pub(crate) struct GeluInPlace<'a>(pub &'a mut [f32]);

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
pub(crate) struct GeluWithDerivative<'a>(pub &'a mut [f32], pub &'a mut [f32]);

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
