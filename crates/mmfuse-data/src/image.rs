//! Image decoding and preprocessing: size limits checked from the header before decoding
//! (decompression bombs), EXIF orientation, any colour type → RGB, resize, normalisation to
//! CHW `f32`, and a counted placeholder for missing or unreadable images.

use crate::error::{DataError, Result};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, imageops::FilterType};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Cursor, Seek};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How images become model input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Output is `size`×`size`, resized without crop (bilinear).
    pub size: u32,
    /// Per-channel mean and std applied to `x / 255`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Images with more pixels than this are rejected from their header, before decoding.
    pub max_pixels: u64,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self { size: 32, mean: [0.5; 3], std: [0.5; 3], max_pixels: 40_000_000 }
    }
}

/// What to do with a missing or undecodable image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingImage {
    /// Stop with an error naming the file.
    Error,
    /// Use the placeholder image, count it, report it at the end.
    Placeholder,
}

impl std::str::FromStr for MissingImage {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "error" => Ok(MissingImage::Error),
            "placeholder" => Ok(MissingImage::Placeholder),
            _ => Err(format!("unknown missing-image policy '{s}'; expected error or placeholder")),
        }
    }
}

/// Decode an image from bytes (`path` names it in errors), checking the pixel limit from the
/// header first and applying EXIF orientation; any colour type becomes RGB8.
pub fn decode_rgb<R: BufRead + Seek>(reader: R, path: &Path, max_pixels: u64) -> Result<image::RgbImage> {
    let bad = |reason: String| DataError::Image { path: path.to_path_buf(), reason };
    let mut r = ImageReader::new(reader).with_guessed_format().map_err(|e| bad(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(16).max(1 << 20));
    r.limits(limits);
    let mut decoder = r.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels > max_pixels {
        return Err(DataError::ImageTooLarge { path: path.to_path_buf(), width: w, height: h, pixels, limit: max_pixels });
    }
    if pixels == 0 {
        return Err(bad("the image has no pixels".into()));
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img.to_rgb8())
}

/// Resize (if needed) and normalise an RGB image to CHW `f32`.
pub fn to_tensor_data(img: &image::RgbImage, spec: &ImageSpec) -> Vec<f32> {
    let s = spec.size;
    let resized;
    let img = if img.width() == s && img.height() == s {
        img
    } else {
        resized = image::imageops::resize(img, s, s, FilterType::Triangle);
        &resized
    };
    let n = (s * s) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (p[c] as f32 / 255.0 - spec.mean[c]) / spec.std[c];
        }
    }
    out
}

/// Decode and preprocess the image file at `path`.
pub fn load_image(path: &Path, spec: &ImageSpec) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let img = decode_rgb(Cursor::new(bytes), path, spec.max_pixels)?;
    Ok(to_tensor_data(&img, spec))
}

/// The placeholder: a uniform mid-grey image (0.5 in every channel before normalisation).
pub fn placeholder(spec: &ImageSpec) -> Vec<f32> {
    let n = (spec.size * spec.size) as usize;
    (0..3).flat_map(|c| std::iter::repeat_n((0.5 - spec.mean[c]) / spec.std[c], n)).collect()
}

/// Loads images with a missing-image policy; counts placeholders.
pub struct ImageLoader {
    spec: ImageSpec,
    policy: MissingImage,
    placeholders: AtomicUsize,
    warned: Mutex<HashSet<PathBuf>>,
}

impl ImageLoader {
    pub fn new(spec: ImageSpec, policy: MissingImage) -> Self {
        Self { spec, policy, placeholders: AtomicUsize::new(0), warned: Mutex::new(HashSet::new()) }
    }

    pub fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    /// Number of placeholder images handed out so far.
    pub fn placeholder_count(&self) -> usize {
        self.placeholders.load(Ordering::Relaxed)
    }

    /// Number of distinct files replaced by the placeholder so far.
    pub fn placeholder_files(&self) -> usize {
        self.warned.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Load one image, applying the policy.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        match load_image(path, &self.spec) {
            Ok(v) => Ok(v),
            Err(e) if self.policy == MissingImage::Placeholder => {
                self.placeholders.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut w) = self.warned.lock() {
                    if w.len() < 5 && !w.contains(path) {
                        tracing::warn!("{e}; using the placeholder image (further such warnings are counted, not printed)");
                    }
                    w.insert(path.to_path_buf());
                }
                Ok(placeholder(&self.spec))
            }
            Err(e) => Err(e),
        }
    }

    /// Load many images in parallel (scoped threads), in order.
    pub fn load_many(&self, paths: &[PathBuf]) -> Result<Vec<Vec<f32>>> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(paths.len().max(1));
        if threads <= 1 || paths.len() < 8 {
            return paths.iter().map(|p| self.load(p)).collect();
        }
        let chunk = paths.len().div_ceil(threads);
        let parts: Vec<Result<Vec<Vec<f32>>>> = std::thread::scope(|s| {
            let handles: Vec<_> = paths.chunks(chunk).map(|c| s.spawn(move || c.iter().map(|p| self.load(p)).collect::<Result<Vec<_>>>())).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(DataError::Other("image loading thread panicked".into())))).collect()
        });
        let mut out = Vec::with_capacity(paths.len());
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mmfuse-img-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    #[test]
    fn exact_normalisation_of_a_tiny_image() {
        let p = tmp("tiny.png");
        let img = image::RgbImage::from_raw(2, 2, vec![0, 255, 51, 255, 0, 102, 10, 20, 30, 40, 50, 60]).unwrap();
        img.save(&p).unwrap();
        let spec = ImageSpec { size: 2, mean: [0.5, 0.25, 0.0], std: [0.5, 0.25, 1.0], ..Default::default() };
        let v = load_image(&p, &spec).unwrap();
        let f = |x: f32, m: f32, s: f32| (x / 255.0 - m) / s;
        let expect = vec![
            f(0., 0.5, 0.5), f(255., 0.5, 0.5), f(10., 0.5, 0.5), f(40., 0.5, 0.5),
            f(255., 0.25, 0.25), f(0., 0.25, 0.25), f(20., 0.25, 0.25), f(50., 0.25, 0.25),
            f(51., 0., 1.), f(102., 0., 1.), f(30., 0., 1.), f(60., 0., 1.),
        ];
        assert_eq!(v, expect);
    }

    #[test]
    fn grayscale_and_rgba_become_three_channels() {
        let spec = ImageSpec { size: 4, ..Default::default() };
        let g = tmp("gray.png");
        image::GrayImage::from_pixel(4, 4, image::Luma([255])).save(&g).unwrap();
        let v = load_image(&g, &spec).unwrap();
        assert_eq!(v.len(), 3 * 16);
        assert!(v.iter().all(|x| (*x - 1.0).abs() < 1e-6));
        let a = tmp("rgba.png");
        image::RgbaImage::from_pixel(4, 4, image::Rgba([0, 0, 0, 10])).save(&a).unwrap();
        let v = load_image(&a, &spec).unwrap();
        assert!(v.iter().all(|x| (*x + 1.0).abs() < 1e-6));
    }

    #[test]
    fn truncated_png_is_an_error_naming_the_file() {
        let p = tmp("trunc.png");
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3])).write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_image(&p, &ImageSpec::default()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot decode image {}", p.display())), "{e}");
        // the placeholder policy counts instead
        let l = ImageLoader::new(ImageSpec::default(), MissingImage::Placeholder);
        let v = l.load(&p).unwrap();
        assert_eq!(v, placeholder(&ImageSpec::default()));
        l.load(&tmp("does-not-exist.png")).unwrap();
        assert_eq!(l.placeholder_count(), 2);
    }

    /// A PNG whose header announces 20000×20000 pixels is rejected before any pixel is decoded.
    #[test]
    fn decompression_bomb_header_is_rejected() {
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&20000u32.to_be_bytes());
        ihdr.extend_from_slice(&20000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        // a first IDAT chunk (a zlib stream header and a few bytes) so the header parses fully
        let mut idat = b"IDAT".to_vec();
        idat.extend_from_slice(&[0x78, 0x9c, 0x63, 0x00, 0x00]);
        png.extend_from_slice(&5u32.to_be_bytes());
        png.extend_from_slice(&idat);
        png.extend_from_slice(&crc32(&idat).to_be_bytes());
        let p = tmp("bomb.png");
        std::fs::write(&p, &png).unwrap();
        let e = load_image(&p, &ImageSpec::default()).unwrap_err();
        assert!(matches!(e, DataError::ImageTooLarge { width: 20000, height: 20000, .. }), "{e}");
        assert!(e.to_string().contains("20000x20000 = 400000000 pixels, above the limit of 40000000"), "{e}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
}
