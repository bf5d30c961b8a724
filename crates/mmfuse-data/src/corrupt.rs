//! Corruptions for robustness evaluation (`mmfuse evaluate --robustness`): what a post looks
//! like when its image is degraded or its text is noisy, at three severities each.
//!
//! Image corruptions act on the decoded RGB image, before the run's preprocessing (as
//! ImageNet-C applies its corruptions to the images a model is fed):
//!
//! | corruption | severity 1 / 2 / 3 |
//! |---|---|
//! | `gaussian_noise` | σ = 0.08 / 0.18 / 0.38 of the [0, 1] pixel range, per channel (ImageNet-C's levels 1, 3, 5) |
//! | `blur` | Gaussian blur, σ = 1 % / 3 % / 6 % of the shorter side |
//! | `jpeg` | re-encoded as JPEG at quality 30 / 15 / 5 |
//! | `crop` | a random crop keeping 80 % / 60 % / 40 % of each side (the preprocessing resizes it back) |
//!
//! Text corruptions act on the words (so a tagger's word-to-tag alignment is kept):
//!
//! | corruption | severity 1 / 2 / 3 |
//! |---|---|
//! | `token_dropout` | each word replaced by `[UNK]` with probability 0.1 / 0.3 / 0.5 |
//! | `typos` | each word of 2+ characters gets one edit (swap of two neighbours, deletion, insertion or substitution of a letter) with probability 0.1 / 0.3 / 0.5 |
//!
//! Word-aligned features (MIM): `feature_noise` adds Gaussian noise of σ = 0.5 / 1 / 2 times each
//! feature's standard deviation (over the real steps of the split) to every audio and video row.
//!
//! Every draw comes from a generator seeded by [`sample_seed`] (the sample's id or image path,
//! the corruption, the severity and a run seed), so a table is reproducible and every model of a
//! comparison sees the same corrupted posts.

use crate::error::{DataError, Result};
use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Severities of every corruption: 1 (mild) to 3 (severe).
pub const SEVERITIES: [u8; 3] = [1, 2, 3];

/// An image corruption at a severity (1–3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageCorruption {
    GaussianNoise(u8),
    Blur(u8),
    Jpeg(u8),
    Crop(u8),
}

/// A text corruption at a severity (1–3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextCorruption {
    TokenDropout(u8),
    Typos(u8),
}

fn level<T: Copy>(severity: u8, values: [T; 3]) -> T {
    values[(severity.clamp(1, 3) - 1) as usize]
}

/// A 64-bit seed from a sample key (id or path), a corruption name, its severity and a run seed
/// (FNV-1a over the bytes, then a splitmix64 finaliser): stable across runs and platforms.
pub fn sample_seed(key: &str, corruption: &str, severity: u8, seed: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in key.bytes().chain([0xFF]).chain(corruption.bytes()).chain([severity]).chain(seed.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl ImageCorruption {
    pub const ALL: [fn(u8) -> ImageCorruption; 4] = [ImageCorruption::GaussianNoise, ImageCorruption::Blur, ImageCorruption::Jpeg, ImageCorruption::Crop];

    pub fn name(self) -> &'static str {
        match self {
            ImageCorruption::GaussianNoise(_) => "gaussian_noise",
            ImageCorruption::Blur(_) => "blur",
            ImageCorruption::Jpeg(_) => "jpeg",
            ImageCorruption::Crop(_) => "crop",
        }
    }

    pub fn severity(self) -> u8 {
        match self {
            ImageCorruption::GaussianNoise(s) | ImageCorruption::Blur(s) | ImageCorruption::Jpeg(s) | ImageCorruption::Crop(s) => s,
        }
    }

    /// The parameter at this severity, in words (for tables).
    pub fn describe(self) -> String {
        let s = self.severity();
        match self {
            ImageCorruption::GaussianNoise(_) => format!("σ = {}", level(s, [0.08, 0.18, 0.38])),
            ImageCorruption::Blur(_) => format!("σ = {} % of the side", level(s, [1, 3, 6])),
            ImageCorruption::Jpeg(_) => format!("quality {}", level(s, [30, 15, 5])),
            ImageCorruption::Crop(_) => format!("{} % of each side", level(s, [80, 60, 40])),
        }
    }

    /// Corrupt `img`; `seed` from [`sample_seed`]. Only JPEG encoding can fail (an error naming
    /// `what`, the image's file).
    pub fn apply(self, img: RgbImage, seed: u64, what: &str) -> Result<RgbImage> {
        let mut rng = StdRng::seed_from_u64(seed);
        let s = self.severity();
        let (w, h) = img.dimensions();
        match self {
            ImageCorruption::GaussianNoise(_) => {
                let sigma = level(s, [0.08, 0.18, 0.38]) * 255.0;
                let mut img = img;
                for p in img.pixels_mut() {
                    for c in p.0.iter_mut() {
                        *c = (*c as f64 + sigma * normal(&mut rng)).round().clamp(0.0, 255.0) as u8;
                    }
                }
                Ok(img)
            }
            ImageCorruption::Blur(_) => {
                let sigma = level(s, [0.01f32, 0.03, 0.06]) * w.min(h) as f32;
                Ok(image::imageops::blur(&img, sigma.max(0.3)))
            }
            ImageCorruption::Jpeg(_) => {
                let quality = level(s, [30u8, 15, 5]);
                let mut bytes = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
                    .encode_image(&img)
                    .map_err(|e| DataError::Other(format!("cannot re-encode {what} as JPEG (robustness corruption): {e}")))?;
                let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
                    .map_err(|e| DataError::Other(format!("cannot decode the JPEG re-encoding of {what}: {e}")))?;
                Ok(decoded.to_rgb8())
            }
            ImageCorruption::Crop(_) => {
                let keep = level(s, [0.8f64, 0.6, 0.4]);
                let (cw, ch) = (((w as f64 * keep).round() as u32).max(1), ((h as f64 * keep).round() as u32).max(1));
                let x = rng.random_range(0..=w - cw);
                let y = rng.random_range(0..=h - ch);
                Ok(image::imageops::crop_imm(&img, x, y, cw, ch).to_image())
            }
        }
    }
}

impl TextCorruption {
    pub const ALL: [fn(u8) -> TextCorruption; 2] = [TextCorruption::TokenDropout, TextCorruption::Typos];

    pub fn name(self) -> &'static str {
        match self {
            TextCorruption::TokenDropout(_) => "token_dropout",
            TextCorruption::Typos(_) => "typos",
        }
    }

    pub fn severity(self) -> u8 {
        match self {
            TextCorruption::TokenDropout(s) | TextCorruption::Typos(s) => s,
        }
    }

    fn probability(self) -> f64 {
        level(self.severity(), [0.1, 0.3, 0.5])
    }

    pub fn describe(self) -> String {
        match self {
            TextCorruption::TokenDropout(_) => format!("p = {} per word", self.probability()),
            TextCorruption::Typos(_) => format!("p = {} per word", self.probability()),
        }
    }

    /// Corrupt `words` (one output word per input word); `seed` from [`sample_seed`].
    pub fn apply(self, words: &[String], seed: u64) -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(seed);
        let p = self.probability();
        words
            .iter()
            .map(|w| {
                let hit = rng.random::<f64>() < p;
                match self {
                    TextCorruption::TokenDropout(_) if hit => "[UNK]".to_string(),
                    TextCorruption::Typos(_) if hit => typo(w, &mut rng),
                    _ => w.clone(),
                }
            })
            .collect()
    }

    /// Corrupt a whitespace-separated text (words re-joined by single spaces).
    pub fn apply_text(self, text: &str, seed: u64) -> String {
        let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        self.apply(&words, seed).join(" ")
    }
}

/// One random edit of a word of at least two characters (shorter words are kept).
fn typo(word: &str, rng: &mut StdRng) -> String {
    let mut c: Vec<char> = word.chars().collect();
    if c.len() < 2 {
        return word.to_string();
    }
    let letter = |rng: &mut StdRng| (b'a' + rng.random_range(0..26u8)) as char;
    let i = rng.random_range(0..c.len());
    match rng.random_range(0..4) {
        0 => {
            let j = if i + 1 < c.len() { i + 1 } else { i - 1 };
            c.swap(i, j);
        }
        1 => {
            c.remove(i);
        }
        2 => c.insert(i, letter(rng)),
        _ => c[i] = letter(rng),
    }
    c.into_iter().collect()
}

/// Add `feature_noise` at `severity` to rows of `dim` features in place: σ = 0.5 / 1 / 2 times
/// `std` (per feature, from [`feature_std`]).
pub fn feature_noise(rows: &mut [f32], dim: usize, std: &[f32], severity: u8, seed: u64) {
    if dim == 0 {
        return;
    }
    let k = level(severity, [0.5f64, 1.0, 2.0]);
    let mut rng = StdRng::seed_from_u64(seed);
    for row in rows.chunks_mut(dim) {
        for (x, s) in row.iter_mut().zip(std) {
            *x += (k * *s as f64 * normal(&mut rng)) as f32;
        }
    }
}

/// Per-feature standard deviation over rows of `dim` values (population; 0 for no rows).
pub fn feature_std(rows: &[f32], dim: usize) -> Vec<f32> {
    if dim == 0 {
        return vec![];
    }
    let n = rows.len() / dim;
    let mut mean = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for row in rows.chunks_exact(dim) {
        for (k, x) in row.iter().enumerate() {
            mean[k] += *x as f64;
            sq[k] += (*x as f64) * (*x as f64);
        }
    }
    (0..dim)
        .map(|k| {
            if n == 0 {
                return 0.0;
            }
            let m = mean[k] / n as f64;
            ((sq[k] / n as f64 - m * m).max(0.0)).sqrt() as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 128]))
    }

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(sample_seed("17", "blur", 2, 0), sample_seed("17", "blur", 2, 0));
        assert_ne!(sample_seed("17", "blur", 2, 0), sample_seed("17", "blur", 3, 0));
        assert_ne!(sample_seed("17", "blur", 2, 0), sample_seed("18", "blur", 2, 0));
        assert_ne!(sample_seed("1", "7blur", 2, 0), sample_seed("17", "blur", 2, 0));
        assert_ne!(sample_seed("17", "blur", 2, 0), sample_seed("17", "blur", 2, 1));
    }

    #[test]
    fn gaussian_noise_has_the_severity_sigma() {
        let img = RgbImage::from_pixel(100, 100, image::Rgb([128, 128, 128]));
        // σ = 0.08 and 0.18 of 255 stay within the [0, 255] range around mid-grey; 0.38 (97
        // levels) is clipped at ±1.3σ, which leaves a clipped normal's 0.83σ
        for (s, sigma, lo, hi) in [(1u8, 0.08, 0.95, 1.05), (2, 0.18, 0.93, 1.03), (3, 0.38, 0.78, 0.88)] {
            let out = ImageCorruption::GaussianNoise(s).apply(img.clone(), 7, "x").unwrap();
            let d: Vec<f64> = out.pixels().flat_map(|p| p.0).map(|v| v as f64 - 128.0).collect();
            let sd = (d.iter().map(|x| x * x).sum::<f64>() / d.len() as f64).sqrt() / 255.0;
            assert!((lo * sigma..hi * sigma).contains(&sd), "severity {s}: σ {sd} vs {sigma}");
        }
        // the same seed gives the same image, another seed another one
        let a = ImageCorruption::GaussianNoise(2).apply(img.clone(), 1, "x").unwrap();
        assert_eq!(a, ImageCorruption::GaussianNoise(2).apply(img.clone(), 1, "x").unwrap());
        assert_ne!(a, ImageCorruption::GaussianNoise(2).apply(img, 2, "x").unwrap());
    }

    #[test]
    fn crop_keeps_the_share_of_each_side_and_stays_inside() {
        let img = gradient(50, 40);
        for (s, keep) in [(1u8, 0.8), (2, 0.6), (3, 0.4)] {
            for seed in 0..20 {
                let out = ImageCorruption::Crop(s).apply(img.clone(), seed, "x").unwrap();
                assert_eq!(out.dimensions(), ((50.0 * keep) as u32, (40.0 * keep) as u32));
                // the crop is a window of the original: its top-left pixel is found there
                let p = out.get_pixel(0, 0).0;
                let (x, y) = ((p[0] as u32 * 50).div_ceil(255), (p[1] as u32 * 40).div_ceil(255));
                assert!(x <= 50 - out.width() + 1 && y <= 40 - out.height() + 1, "severity {s}: crop at ({x}, {y})");
            }
        }
        // a 1-pixel image survives every severity
        assert_eq!(ImageCorruption::Crop(3).apply(gradient(1, 1), 0, "x").unwrap().dimensions(), (1, 1));
    }

    #[test]
    fn blur_and_jpeg_degrade_more_with_severity() {
        let img = RgbImage::from_fn(64, 64, |x, y| if (x / 4 + y / 4) % 2 == 0 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
        let err = |c: ImageCorruption| {
            let out = c.apply(img.clone(), 3, "x").unwrap();
            assert_eq!(out.dimensions(), img.dimensions());
            out.pixels().zip(img.pixels()).flat_map(|(a, b)| a.0.iter().zip(b.0).map(|(x, y)| (*x as f64 - y as f64).abs()).collect::<Vec<_>>()).sum::<f64>()
        };
        for make in [ImageCorruption::Blur as fn(u8) -> ImageCorruption, ImageCorruption::Jpeg] {
            let e: Vec<f64> = SEVERITIES.iter().map(|&s| err(make(s))).collect();
            assert!(e[0] > 0.0 && e[0] < e[1] && e[1] < e[2], "{:?}: {e:?}", make(1));
        }
    }

    #[test]
    fn text_corruptions_keep_one_word_per_word() {
        let words: Vec<String> = "the quick brown fox jumps over the lazy dog again and again".split(' ').map(str::to_string).collect();
        for make in TextCorruption::ALL {
            let mut changed = [0usize; 3];
            for (k, s) in SEVERITIES.iter().enumerate() {
                for seed in 0..200 {
                    let out = make(*s).apply(&words, seed);
                    assert_eq!(out.len(), words.len());
                    changed[k] += out.iter().zip(&words).filter(|(a, b)| a != b).count();
                }
            }
            // 2400 words per severity at p = 0.1 / 0.3 / 0.5 (a typo can leave a word unchanged,
            // e.g. swapping two equal letters, so allow some slack below)
            let rate: Vec<f64> = changed.iter().map(|c| *c as f64 / 2400.0).collect();
            for (r, p) in rate.iter().zip([0.1, 0.3, 0.5]) {
                assert!((r - p).abs() < 0.04, "{}: change rate {rate:?}", make(1).name());
            }
        }
        let out = TextCorruption::TokenDropout(3).apply(&words, 5);
        assert!(out.iter().all(|w| w == "[UNK]" || words.contains(w)));
        // a typo is one edit away
        for seed in 0..100 {
            let w = typo("sarcasm", &mut StdRng::seed_from_u64(seed));
            let (a, b) = (w.chars().count() as i64, 7i64);
            assert!((a - b).abs() <= 1, "{w}");
        }
        assert_eq!(typo("a", &mut StdRng::seed_from_u64(0)), "a");
        assert_eq!(TextCorruption::Typos(1).apply_text("  ", 0), "");
    }

    #[test]
    fn feature_noise_scales_with_the_feature_std() {
        let dim = 2;
        let rows: Vec<f32> = (0..2000).flat_map(|i| [(i % 7) as f32, 10.0 * (i % 5) as f32]).collect();
        let std = feature_std(&rows, dim);
        assert!((std[0] - 2.0).abs() < 0.01 && (std[1] - 10.0 * 2f32.sqrt()).abs() < 0.05, "{std:?}");
        let mut noisy = rows.clone();
        feature_noise(&mut noisy, dim, &std, 3, 9);
        let d = feature_std(&noisy.iter().zip(&rows).map(|(a, b)| a - b).collect::<Vec<_>>(), dim);
        for k in 0..dim {
            assert!((d[k] / std[k] - 2.0).abs() < 0.15, "feature {k}: noise σ {} for std {}", d[k], std[k]);
        }
        assert!(feature_std(&[], 3).iter().all(|s| *s == 0.0));
    }
}
