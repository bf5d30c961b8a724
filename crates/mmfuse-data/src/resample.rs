//! Pillow-exact resampling (`libImaging/Resample.c`): a separable filter whose support is
//! widened by the downscale factor, coefficients normalised per output pixel and quantised to
//! 22-bit fixed point, a horizontal then a vertical pass, each rounded and clamped to `u8`;
//! bilinear (triangle, support 1) and bicubic (Keys' cubic convolution, `a = -0.5`, support 2).
//! The ImageNet pipeline ([`crate::imagenet`]) and the presets ([`crate::preprocess`]) both
//! resize through it.

use image::RgbImage;

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// A Pillow resampling filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `Image.BILINEAR`: triangle, support 1.
    Bilinear,
    /// `Image.BICUBIC`: cubic convolution, `a = -0.5`, support 2.
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    /// Pillow's `bilinear_filter` / `bicubic_filter`.
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Per output pixel: the first input index and the fixed-point weights (Pillow's
/// `precompute_coeffs` + `normalize_coeffs_8bpc`, for the box `0..in_size`).
fn coefficients(in_size: u32, out_size: u32, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C `(int)` casts truncate toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
            let w: Vec<f64> = (0..xmax.max(0)).map(|x| filter.weight(((x + xmin) as f64 - center + 0.5) * ss)).collect();
            let sum: f64 = w.iter().sum();
            let k = w
                .iter()
                .map(|&v| {
                    let v = if sum != 0.0 { v / sum } else { v };
                    let f = v * (1u32 << PRECISION_BITS) as f64;
                    (if f < 0.0 { -0.5 + f } else { 0.5 + f }) as i32
                })
                .collect();
            (xmin as usize, k)
        })
        .collect()
}

/// Pillow's `clip8`: fixed-point accumulator → `u8` (arithmetic shift, then clamp: bicubic
/// overshoots are clipped).
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One separable pass over `src` (`w`×`h` RGB): along x when `horizontal`, else along y.
fn pass(src: &[u8], w: usize, h: usize, coeffs: &[(usize, Vec<i32>)], horizontal: bool) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    let (ow, oh) = if horizontal { (coeffs.len(), h) } else { (w, coeffs.len()) };
    let mut out = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let (start, k) = if horizontal { &coeffs[x] } else { &coeffs[y] };
            let mut acc = [half; 3];
            for (i, &c) in k.iter().enumerate() {
                let p = if horizontal { (y * w + start + i) * 3 } else { ((start + i) * w + x) * 3 };
                for ch in 0..3 {
                    acc[ch] += src[p + ch] as i32 * c;
                }
            }
            let o = (y * ow + x) * 3;
            for ch in 0..3 {
                out[o + ch] = clip8(acc[ch]);
            }
        }
    }
    out
}

/// Resize to `width`×`height` exactly like Pillow's `Image.resize((width, height), filter)` on
/// an RGB image (no `reducing_gap`): antialiased when downscaling, horizontal pass then vertical
/// pass (each skipped when that side is unchanged), 22-bit fixed point, each pass rounded and
/// clamped to `u8`. A copy when the size is unchanged; an empty image when either size is 0.
pub fn pil_resize(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (w0, h0) = img.dimensions();
    if (w0, h0) == (width, height) {
        return img.clone();
    }
    if w0 == 0 || h0 == 0 || width == 0 || height == 0 {
        return if w0 == 0 || h0 == 0 { RgbImage::new(0, 0) } else { RgbImage::new(width, height) };
    }
    let mut buf = img.as_raw().to_vec();
    let mut cur_w = w0 as usize;
    if width != w0 {
        buf = pass(&buf, cur_w, h0 as usize, &coefficients(w0, width, filter), true);
        cur_w = width as usize;
    }
    if height != h0 {
        buf = pass(&buf, cur_w, h0 as usize, &coefficients(h0, height, filter), false);
    }
    RgbImage::from_raw(width, height, buf).expect("buffer size matches the dimensions")
}

/// Pillow-exact `Image.resize(size, Image.BICUBIC)`.
pub fn pil_resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    pil_resize(img, width, height, Filter::Bicubic)
}
