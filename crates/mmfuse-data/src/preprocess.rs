//! Named image-preprocessing presets for the pretrained image encoders, each reproducing its
//! reference pipeline on PIL images exactly (Pillow's fixed-point resampling, the reference
//! crop offsets, normalisation in the reference's float order):
//!
//! - [`Preprocess::ImagenetEval`]: torchvision's ImageNet eval transform, `Resize(256)` (bilinear)
//!   → `CenterCrop(224)` → `Normalize(ImageNet mean, std)` ([`crate::imagenet::imagenet_eval`]),
//!   for ImageNet CNNs (MobileNetV2, ResNet).
//! - [`Preprocess::Muse`]: `Resize((224, 224))` (bilinear, aspect ratio not kept, nothing cropped)
//!   → ImageNet normalisation ([`crate::imagenet::resize_normalize`]), as MuSE feeds its ResNet.
//! - [`Preprocess::Clip`]: Hugging Face's (Pillow-backed) `CLIPImageProcessor`: shorter side to
//!   224 with Pillow's antialiased **bicubic** filter → centre crop 224 (offsets
//!   `(size - 224) // 2`, floored) → `x·(1/255)` in `f64` cast to `f32` → `(x - mean) / std` in
//!   `f32` with CLIP's mean/std ([`CLIP_MEAN`], [`CLIP_STD`]).
//!
//! Resizing is Pillow's, bit for bit ([`crate::resample`]).

use crate::imagenet::{self, IMAGENET_MEAN, IMAGENET_STD};
pub use crate::resample::{Filter, pil_resize, pil_resize_bicubic};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// OpenAI CLIP's channel means (its decimal constants, rounded to `f32` as numpy does).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's channel standard deviations.
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];
/// Side of every preset's output.
pub const SIZE: u32 = 224;

/// Hugging Face's numpy `center_crop` to `width`×`height`: offsets `(size - crop) // 2`
/// (floored, unlike torchvision's round-half-even); an image smaller than the crop is first
/// zero-padded with `ceil(missing / 2)` pixels before it.
pub fn hf_center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (pw, ph) = (w.max(width), h.max(height));
    let padded;
    let img = if (pw, ph) != (w, h) {
        let mut p = RgbImage::new(pw, ph);
        image::imageops::replace(&mut p, img, (pw - w).div_ceil(2) as i64, (ph - h).div_ceil(2) as i64);
        padded = p;
        &padded
    } else {
        img
    };
    image::imageops::crop_imm(img, (pw - width) / 2, (ph - height) / 2, width, height).to_image()
}

/// An image preprocessing preset (see the module docs). Serialises as `imagenet_eval`, `muse`,
/// `clip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    ImagenetEval,
    Muse,
    Clip,
}

impl Preprocess {
    pub const ALL: [Preprocess; 3] = [Self::ImagenetEval, Self::Muse, Self::Clip];

    /// The preset's name (`imagenet_eval`, `muse`, `clip`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ImagenetEval => "imagenet_eval",
            Self::Muse => "muse",
            Self::Clip => "clip",
        }
    }

    /// Output side (224 for every preset).
    pub fn size(self) -> u32 {
        SIZE
    }

    /// Channel means of the normalisation.
    pub fn mean(self) -> [f32; 3] {
        match self {
            Self::ImagenetEval | Self::Muse => IMAGENET_MEAN,
            Self::Clip => CLIP_MEAN,
        }
    }

    /// Channel standard deviations of the normalisation.
    pub fn std(self) -> [f32; 3] {
        match self {
            Self::ImagenetEval | Self::Muse => IMAGENET_STD,
            Self::Clip => CLIP_STD,
        }
    }

    /// The geometric part: resize (and crop) to the `size()`×`size()` RGB image the model sees.
    pub fn resize_crop(self, img: &RgbImage) -> RgbImage {
        match self {
            Self::ImagenetEval => imagenet::center_crop(&imagenet::resize_shorter_side(img, imagenet::RESIZE_SHORTER), SIZE, SIZE),
            Self::Muse => imagenet::pil_resize_bilinear(img, SIZE, SIZE),
            Self::Clip => {
                // transformers' `get_resize_output_image_size(default_to_square=False)` is
                // torchvision's rule: the long side is `int(224 * long / short)`.
                let (w, h) = imagenet::shorter_side_size(img.width(), img.height(), SIZE);
                hf_center_crop(&pil_resize_bicubic(img, w, h), SIZE, SIZE)
            }
        }
    }

    /// The value level `v` of channel `c` becomes after normalisation, in the reference's
    /// float order: torchvision `(v / 255 - mean) / std` in `f32`; transformers
    /// `f32(v · (1/255) in f64)`, then `(x - mean) / std` in `f32`.
    pub fn normalize_level(self, v: u8, c: usize) -> f32 {
        let x = match self {
            Self::ImagenetEval | Self::Muse => v as f32 / 255.0f32,
            Self::Clip => (v as f64 * (1.0 / 255.0)) as f32,
        };
        (x - self.mean()[c]) / self.std()[c]
    }

    /// HWC `u8` → CHW `f32` with this preset's normalisation.
    pub fn normalize(self, img: &RgbImage) -> Vec<f32> {
        let table: Vec<[f32; 256]> = (0..3).map(|c| std::array::from_fn(|v| self.normalize_level(v as u8, c))).collect();
        let n = img.width() as usize * img.height() as usize;
        let mut out = vec![0f32; 3 * n];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                out[c * n + i] = table[c][p[c] as usize];
            }
        }
        out
    }

    /// The whole preset: the `size()`×`size()` image as HWC `u8` (`size*size*3`) and the model
    /// input as CHW `f32` (`3*size*size`).
    pub fn apply(self, img: &RgbImage) -> (Vec<u8>, Vec<f32>) {
        let r = self.resize_crop(img);
        let x = self.normalize(&r);
        (r.into_raw(), x)
    }
}

impl fmt::Display for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preprocess {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| format!("unknown preprocessing preset '{s}' (expected imagenet_eval, muse or clip)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::read_safetensors;
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/preprocess"))
    }

    fn open_rgb(path: &Path) -> RgbImage {
        image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
    }

    /// Every preset against its reference pipeline (torchvision / transformers'
    /// `CLIPImageProcessorPil`) on the two synthetic images of
    /// `scripts/make_encoder_fixtures.py`: the 224×224 `u8` images bit for bit, and the `f32`
    /// input against the reference's `u8 → f32` table (which the script checked reproduces the
    /// reference `pixel_values` exactly).
    #[test]
    fn presets_match_reference_pipelines() {
        let dir = fixtures();
        let st = read_safetensors(&dir.join("expected.safetensors"));
        let mut worst = 0f32;
        for p in Preprocess::ALL {
            let (dtype, shape, bytes) = &st[&format!("levels_{}", p.name())];
            assert_eq!((dtype.as_str(), shape.as_slice()), ("F32", &[3usize, 256][..]));
            let table: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            let level_diff = (0..3 * 256).map(|i| (p.normalize_level((i % 256) as u8, i / 256) - table[i]).abs()).fold(0f32, f32::max);
            for i in 0..2 {
                let img = open_rgb(&dir.join(format!("input_{i}.png")));
                let want = open_rgb(&dir.join(format!("{}_{i}.png", p.name())));
                let (u8s, x) = p.apply(&img);
                assert_eq!((x.len(), u8s.len()), (3 * 224 * 224, 224 * 224 * 3));
                let off = u8s.iter().zip(want.as_raw()).filter(|(a, b)| a != b).count();
                let max_level = u8s.iter().zip(want.as_raw()).map(|(&a, &b)| (a as i32 - b as i32).abs()).max().unwrap();
                let n = 224 * 224;
                let d = (0..3 * n).map(|k| (x[k] - table[(k / n) * 256 + want.as_raw()[(k % n) * 3 + k / n] as usize]).abs()).fold(0f32, f32::max);
                println!(
                    "{p} image {i} ({}x{}): {off} of {} bytes differ (max {max_level} levels), pixel values max abs diff {d:.3e}",
                    img.width(),
                    img.height(),
                    u8s.len()
                );
                assert_eq!(off, 0, "{p} image {i}: resized/cropped pixels must match the reference exactly");
                worst = worst.max(d);
            }
            println!("{p}: normalisation table max abs diff {level_diff:.3e}");
            assert!(level_diff <= 1e-6, "{p}: normalisation differs from the reference by {level_diff:e}");
        }
        assert!(worst <= 1e-3, "pixel values: max abs diff {worst:e}");
    }

    #[test]
    fn generic_bilinear_equals_imagenet_resampler() {
        let img = RgbImage::from_fn(37, 23, |x, y| image::Rgb([(x * 7 + y * 3) as u8, (x * y % 251) as u8, ((x ^ y) * 11) as u8]));
        for (w, h) in [(37, 23), (16, 9), (80, 50), (37, 5), (3, 23), (1, 1), (224, 224)] {
            assert_eq!(pil_resize(&img, w, h, Filter::Bilinear), imagenet::pil_resize_bilinear(&img, w, h), "{w}x{h}");
        }
    }

    #[test]
    fn bicubic_keeps_constants_clips_overshoot_and_crops_like_transformers() {
        let img = RgbImage::from_pixel(97, 53, image::Rgb([10, 200, 255]));
        for (w, h) in [(224, 224), (31, 17), (97, 20), (5, 53), (1, 1)] {
            let r = pil_resize_bicubic(&img, w, h);
            assert_eq!(r.dimensions(), (w, h));
            assert!(r.pixels().all(|p| p.0 == [10, 200, 255]), "{w}x{h}");
        }
        // Values from Pillow 13 (`Image.resize(.., Image.BICUBIC)` on 1-row RGB images): a hard
        // 0 → 255 step upscaled (the cubic's overshoot clipped), and a ragged row down- and
        // upscaled (negative lobes, antialiasing support 2 × 20/7).
        let row = |v: &[u8]| RgbImage::from_fn(v.len() as u32, 1, |x, _| image::Rgb([v[x as usize]; 3]));
        let values = |img: RgbImage| img.pixels().map(|p| p.0[0]).collect::<Vec<u8>>();
        let step = values(pil_resize_bicubic(&row(&[0, 0, 0, 0, 255, 255, 255, 255]), 32, 1));
        assert_eq!(&step[12..20], &[0, 0, 21, 88, 167, 234, 255, 255]);
        assert!(step[..14].iter().all(|&v| v == 0) && step[18..].iter().all(|&v| v == 255));
        let ragged = [0, 255, 0, 255, 0, 255, 10, 200, 30, 90, 250, 255, 0, 0, 128, 64, 32, 16, 8, 4];
        assert_eq!(values(pil_resize_bicubic(&row(&ragged), 7, 1)), vec![114, 130, 105, 163, 83, 56, 8]);
        assert_eq!(
            values(pil_resize_bicubic(&row(&ragged), 45, 1)),
            vec![
                0, 32, 173, 253, 128, 2, 86, 236, 207, 48, 19, 169, 253, 137, 14, 69, 184, 172, 71, 26, 49, 97, 173, 245, 255, 255, 196, 60, 0, 0, 4, 68, 125,
                116, 75, 52, 39, 28, 21, 15, 11, 8, 6, 4, 4
            ]
        );
        // transformers' crop floors the offsets: 275 wide → left 25 (torchvision would take 26).
        let wide = RgbImage::from_fn(275, 224, |x, _| image::Rgb([x as u8, 0, 0]));
        assert_eq!(hf_center_crop(&wide, 224, 224).get_pixel(0, 0).0[0], 25);
        assert_eq!(imagenet::center_crop(&wide, 224, 224).get_pixel(0, 0).0[0], 26);
        // and pads smaller images with ceil(missing / 2) before
        let small = RgbImage::from_pixel(3, 5, image::Rgb([9; 3]));
        let c = hf_center_crop(&small, 6, 6);
        assert_eq!((c.get_pixel(1, 0).0, c.get_pixel(2, 1).0, c.get_pixel(1, 1).0, c.get_pixel(4, 5).0), ([0; 3], [9; 3], [0; 3], [9; 3]));
    }

    #[test]
    fn names_round_trip() {
        for p in Preprocess::ALL {
            assert_eq!(p.name().parse::<Preprocess>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.name()));
        }
        assert!("bicubic".parse::<Preprocess>().unwrap_err().contains("unknown"));
        assert_eq!((Preprocess::Clip.mean(), Preprocess::Muse.std()), (CLIP_MEAN, IMAGENET_STD));
    }
}
