//! Image decoding and preprocessing: size limits checked from the header before decoding
//! (decompression bombs), EXIF orientation, any colour type → RGB, resize, normalisation to
//! CHW `f32`, and a counted placeholder for missing or unreadable images.

use crate::corrupt::{ImageCorruption, sample_seed};
use crate::error::{DataError, Result};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, imageops::FilterType};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
#[cfg(test)]
use std::io::Cursor;
use std::io::{BufRead, BufReader, Seek};
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
    /// A named pipeline of a pretrained encoder (Pillow-exact resampling, its crop, its
    /// mean/std) used instead of the plain resize; `size`, `mean`, `std` then equal the preset's.
    #[serde(default)]
    pub preset: Option<crate::preprocess::Preprocess>,
}

impl ImageSpec {
    /// The spec of a preprocessing preset.
    pub fn from_preset(p: crate::preprocess::Preprocess) -> Self {
        Self { size: p.size(), mean: p.mean(), std: p.std(), preset: Some(p), ..Self::default() }
    }
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self { size: 32, mean: [0.5; 3], std: [0.5; 3], max_pixels: 40_000_000, preset: None }
    }
}

/// What to do with a missing or undecodable image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingImage {
    /// Stop with an error naming the file.
    Error,
    /// The post has no image: the model is told so (each fusion method hides the image from
    /// fusion, see its file), counted and reported at the end.
    Absent,
    /// The reference implementations' behaviour, for reproducing them: a grey picture stands in
    /// for the image and the model sees it as a real one (counted and reported). `placeholder`
    /// is accepted as its old name.
    #[serde(alias = "placeholder")]
    ReferencePlaceholder,
}

impl MissingImage {
    /// Whether a fallback (absent or placeholder) is allowed instead of an error.
    pub fn tolerates(self) -> bool {
        self != MissingImage::Error
    }

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MissingImage::Error => "error",
            MissingImage::Absent => "absent",
            MissingImage::ReferencePlaceholder => "reference_placeholder",
        }
    }
}

impl std::str::FromStr for MissingImage {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "error" => Ok(MissingImage::Error),
            "absent" => Ok(MissingImage::Absent),
            "reference_placeholder" | "placeholder" => Ok(MissingImage::ReferencePlaceholder),
            _ => Err(format!("unknown missing-image policy '{s}'; expected error, absent or reference_placeholder")),
        }
    }
}

/// Decode an image (PNG or JPEG, format guessed from the bytes; `path` names it in errors).
/// The dimensions are read from the header and checked against `max_pixels` before any pixel
/// is decoded, and decoder allocations are capped ([`image::Limits`]) as a second guard. EXIF
/// orientation is applied; any colour type (grey, grey+alpha, RGBA, 16-bit) becomes RGB8
/// (alpha is dropped, not composited).
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

/// Resize (if needed; bilinear, no crop, so the aspect ratio is not kept) and normalise an RGB
/// image to CHW `f32`: `3 * size * size` values, channel-major, `(x / 255 - mean[c]) / std[c]`.
/// With a [`ImageSpec::preset`], the preset's pipeline instead.
pub fn to_tensor_data(img: &image::RgbImage, spec: &ImageSpec) -> Vec<f32> {
    if let Some(p) = spec.preset {
        return p.apply(img).1;
    }
    let s = spec.size;
    if s == 0 {
        return Vec::new();
    }
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

/// Decode and preprocess the image file at `path` into CHW `f32` (`3 * size * size` values);
/// see [`decode_rgb`] and [`to_tensor_data`]. A file that cannot be opened is a
/// [`DataError::Io`] naming it.
pub fn load_image(path: &Path, spec: &ImageSpec) -> Result<Vec<f32>> {
    load_image_with(path, spec, None)
}

/// [`load_image`] with a corruption applied to the decoded image before preprocessing
/// (robustness evaluation; see [`crate::corrupt`]), seeded by the file's path.
pub fn load_image_with(path: &Path, spec: &ImageSpec, corruption: Option<(ImageCorruption, u64)>) -> Result<Vec<f32>> {
    if spec.size == 0 {
        return Err(DataError::Other(format!("image size must be at least 1 (loading {})", path.display())));
    }
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut img = decode_rgb(BufReader::new(file), path, spec.max_pixels)?;
    if let Some((c, seed)) = corruption {
        let key = path.to_string_lossy();
        img = c.apply(img, sample_seed(&key, c.name(), c.severity(), seed), &key)?;
    }
    Ok(to_tensor_data(&img, spec))
}

/// The placeholder used for a missing or unreadable image: a uniform mid-grey image, i.e. the
/// raw value 0.5 (≈ 127.5 / 255) in every channel and pixel, normalised like a real image, so
/// each channel `c` holds `(0.5 - mean[c]) / std[c]` (0.0 with the default spec). It carries no
/// information, so a fused model falls back on the text.
pub fn placeholder(spec: &ImageSpec) -> Vec<f32> {
    let n = (spec.size * spec.size) as usize;
    (0..3).flat_map(|c| std::iter::repeat_n((0.5 - spec.mean[c]) / spec.std[c], n)).collect()
}

/// At most this many distinct unreadable files are logged one by one; later ones are counted
/// (see [`ImageLoader::placeholder_count`]) without a log line each.
pub const MAX_PLACEHOLDER_WARNINGS: usize = 10;

/// Loads images with a missing-image policy; counts placeholders. Shareable between threads.
pub struct ImageLoader {
    spec: ImageSpec,
    policy: MissingImage,
    placeholders: AtomicUsize,
    warned: Mutex<HashSet<PathBuf>>,
    /// Images are not used (text-only models): every load is the placeholder, nothing is read
    /// or counted.
    unused: bool,
    /// Robustness evaluation: what happens to every image this loader hands out.
    alteration: Option<Alteration>,
}

/// An image's pixels and whether the post is to be treated as image-absent (see
/// [`ImageLoader::load_flagged`]).
pub type Flagged = (Vec<f32>, bool);

/// How a robustness evaluation alters every image of a loader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Alteration {
    /// No image is read: every post is image-absent (with the `reference_placeholder` policy,
    /// the grey picture stands in and the model takes it for real, as the reference code does).
    Absent,
    /// Every image is corrupted after decoding, seeded by its path and this seed.
    Corrupt(ImageCorruption, u64),
}

impl ImageLoader {
    pub fn new(spec: ImageSpec, policy: MissingImage) -> Self {
        Self { spec, policy, placeholders: AtomicUsize::new(0), warned: Mutex::new(HashSet::new()), unused: false, alteration: None }
    }

    /// This loader with every image altered (robustness evaluation).
    pub fn altered(spec: ImageSpec, policy: MissingImage, alteration: Alteration) -> Self {
        Self { alteration: Some(alteration), ..Self::new(spec, policy) }
    }

    /// A loader for models that ignore images: no file is opened.
    pub fn unused(spec: ImageSpec) -> Self {
        Self { unused: true, ..Self::new(spec, MissingImage::ReferencePlaceholder) }
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
        self.warned.lock().map(|w| w.len()).unwrap_or_else(|poisoned| poisoned.into_inner().len())
    }

    pub fn policy(&self) -> MissingImage {
        self.policy
    }

    /// Load one image, applying the policy: with [`MissingImage::Error`] any failure is
    /// returned; otherwise the failure is logged (`tracing::warn!`, once per file, for the first
    /// [`MAX_PLACEHOLDER_WARNINGS`] files), counted, and the [`placeholder`] pixels are returned
    /// (see [`ImageLoader::load_flagged`] for whether they stand for an absent image).
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        self.load_flagged(path).map(|(pixels, _)| pixels)
    }

    /// [`ImageLoader::load`], also saying whether the model should treat the image as absent
    /// (a fallback under [`MissingImage::Absent`]; never for a loader of unused images).
    pub fn load_flagged(&self, path: &Path) -> Result<(Vec<f32>, bool)> {
        if self.unused {
            return Ok((placeholder(&self.spec), false));
        }
        let corruption = match self.alteration {
            Some(Alteration::Absent) => return Ok((placeholder(&self.spec), self.policy != MissingImage::ReferencePlaceholder)),
            Some(Alteration::Corrupt(c, seed)) => Some((c, seed)),
            None => None,
        };
        match load_image_with(path, &self.spec, corruption) {
            Ok(v) => Ok((v, false)),
            Err(e) if self.policy.tolerates() => {
                self.placeholders.fetch_add(1, Ordering::Relaxed);
                let mut w = self.warned.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if !w.contains(path) {
                    let n = w.len();
                    let what = if self.policy == MissingImage::Absent { "treating the image as absent" } else { "using the placeholder image" };
                    if n < MAX_PLACEHOLDER_WARNINGS {
                        tracing::warn!("{e}; {what}");
                    } else if n == MAX_PLACEHOLDER_WARNINGS {
                        tracing::warn!("more images missing or unreadable; further files are counted, not logged");
                    }
                    w.insert(path.to_path_buf());
                }
                Ok((placeholder(&self.spec), self.policy == MissingImage::Absent))
            }
            Err(e) => Err(e),
        }
    }

    /// Load many images in parallel (scoped threads over `available_parallelism` contiguous
    /// chunks), results in the order of `paths`; the first error (in path order) is returned.
    pub fn load_many(&self, paths: &[PathBuf]) -> Result<Vec<Vec<f32>>> {
        Ok(self.load_many_flagged(paths)?.into_iter().map(|(pixels, _)| pixels).collect())
    }

    /// [`ImageLoader::load_many`] with the absent flag of [`ImageLoader::load_flagged`].
    pub fn load_many_flagged(&self, paths: &[PathBuf]) -> Result<Vec<Flagged>> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(paths.len().max(1));
        if threads <= 1 || paths.len() < 8 {
            return paths.iter().map(|p| self.load_flagged(p)).collect();
        }
        let chunk = paths.len().div_ceil(threads);
        let parts: Vec<Result<Vec<Flagged>>> = std::thread::scope(|s| {
            let handles: Vec<_> = paths.chunks(chunk).map(|c| s.spawn(move || c.iter().map(|p| self.load_flagged(p)).collect::<Result<Vec<_>>>())).collect();
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

    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    }

    #[test]
    fn placeholder_is_normalised_mid_grey() {
        assert_eq!(placeholder(&ImageSpec { size: 2, ..Default::default() }), vec![0.0; 12]);
        let spec = ImageSpec { size: 1, mean: [0.25, 0.5, 0.0], std: [0.25, 1.0, 2.0], ..Default::default() };
        assert_eq!(placeholder(&spec), vec![1.0, 0.0, 0.25]);
    }

    #[test]
    fn resize_without_crop_to_the_requested_size() {
        let p = tmp("wide.png");
        image::RgbImage::from_pixel(40, 10, image::Rgb([255, 0, 255])).save(&p).unwrap();
        let v = load_image(&p, &ImageSpec { size: 8, ..Default::default() }).unwrap();
        assert_eq!(v.len(), 3 * 64);
        assert!(v[..64].iter().chain(&v[128..]).all(|x| (x - 1.0).abs() < 1e-6));
        assert!(v[64..128].iter().all(|x| (x + 1.0).abs() < 1e-6));
        assert!(load_image(&p, &ImageSpec { size: 0, ..Default::default() }).is_err());
    }

    /// An EXIF orientation (here 2 = mirrored horizontally, in a PNG `eXIf` chunk) is applied.
    #[test]
    fn exif_orientation_is_applied() {
        let mut png = Vec::new();
        image::RgbImage::from_raw(2, 1, vec![255, 255, 255, 0, 0, 0]).unwrap().write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        // big-endian TIFF header, one IFD entry: tag 0x0112 (orientation), SHORT, count 1, value 2
        let exif = [b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        let after_ihdr = 8 + 25;
        let mut with = png[..after_ihdr].to_vec();
        with.extend(chunk(b"eXIf", &exif));
        with.extend_from_slice(&png[after_ihdr..]);
        let spec2 = ImageSpec { size: 2, ..Default::default() };
        let plain = tmp("exif-none.png");
        std::fs::write(&plain, &png).unwrap();
        let p = tmp("exif-mirror.png");
        std::fs::write(&p, &with).unwrap();
        // 2x1 is resized to 2x2; the first column is white without EXIF, black with it
        let a = load_image(&plain, &spec2).unwrap();
        let b = load_image(&p, &spec2).unwrap();
        assert_eq!(a[0], 1.0);
        assert_eq!(a[1], -1.0);
        assert_eq!(b[0], -1.0);
        assert_eq!(b[1], 1.0);
    }

    #[test]
    fn load_many_keeps_order_and_applies_the_policy() {
        let mut paths = Vec::new();
        for i in 0..20u8 {
            let p = tmp(&format!("many-{i}.png"));
            image::RgbImage::from_pixel(3, 3, image::Rgb([i * 10, 0, 0])).save(&p).unwrap();
            paths.push(p);
        }
        paths.insert(7, tmp("many-missing.png"));
        let spec = ImageSpec { size: 3, mean: [0.0; 3], std: [1.0; 3], ..Default::default() };
        let strict = ImageLoader::new(spec.clone(), MissingImage::Error);
        let e = strict.load_many(&paths).unwrap_err().to_string();
        assert!(e.contains("many-missing.png"), "{e}");
        let lenient = ImageLoader::new(spec.clone(), MissingImage::ReferencePlaceholder);
        let v = lenient.load_many(&paths).unwrap();
        assert_eq!(v.len(), 21);
        for (k, x) in v.iter().enumerate() {
            let expect = match k {
                7 => 0.5,
                k if k < 7 => (k * 10) as f32 / 255.0,
                k => ((k - 1) * 10) as f32 / 255.0,
            };
            assert_eq!(x[0], expect, "image {k}");
        }
        lenient.load(&paths[7]).unwrap();
        assert_eq!(lenient.placeholder_count(), 2);
        assert_eq!(lenient.placeholder_files(), 1);
    }

    #[test]
    fn missing_image_policy_parses() {
        assert_eq!("error".parse::<MissingImage>(), Ok(MissingImage::Error));
        assert_eq!("placeholder".parse::<MissingImage>(), Ok(MissingImage::ReferencePlaceholder));
        assert_eq!("absent".parse::<MissingImage>(), Ok(MissingImage::Absent));
        assert_eq!(serde_json::from_str::<MissingImage>("\"placeholder\"").unwrap(), MissingImage::ReferencePlaceholder);
        assert!("skip".parse::<MissingImage>().is_err());
        assert_eq!(serde_json::to_string(&MissingImage::ReferencePlaceholder).unwrap(), "\"reference_placeholder\"");
        assert_eq!(serde_json::from_str::<MissingImage>("\"error\"").unwrap(), MissingImage::Error);
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
            f(0., 0.5, 0.5),
            f(255., 0.5, 0.5),
            f(10., 0.5, 0.5),
            f(40., 0.5, 0.5),
            f(255., 0.25, 0.25),
            f(0., 0.25, 0.25),
            f(20., 0.25, 0.25),
            f(50., 0.25, 0.25),
            f(51., 0., 1.),
            f(102., 0., 1.),
            f(30., 0., 1.),
            f(60., 0., 1.),
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
        assert!(e.starts_with(&format!("cannot decode image {}: ", p.display())), "{e}");
        // not an image at all
        let junk = tmp("junk.png");
        std::fs::write(&junk, b"hello, not a picture").unwrap();
        let e = load_image(&junk, &ImageSpec::default()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot decode image {}: ", junk.display())), "{e}");
        // the placeholder policy counts instead
        let l = ImageLoader::new(ImageSpec::default(), MissingImage::ReferencePlaceholder);
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
        assert_eq!(e.to_string(), format!("image {} is 20000x20000 = 400000000 pixels, above the limit of 40000000", p.display()));
        // the placeholder policy does not hide a rejected image: it is replaced and counted
        let l = ImageLoader::new(ImageSpec::default(), MissingImage::ReferencePlaceholder);
        assert_eq!(l.load(&p).unwrap(), placeholder(&ImageSpec::default()));
        assert_eq!(l.placeholder_count(), 1);
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
