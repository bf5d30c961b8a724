//! ImageNet evaluation preprocessing exactly as torchvision does it on PIL images, for models
//! pretrained on ImageNet (MobileNetV2, ResNet, …): `Resize(256)` → `CenterCrop(224)` →
//! `ToTensor()` → `Normalize(mean, std)`.
//!
//! The resize replicates Pillow's `Image.resize(size, Image.BILINEAR)` (`libImaging/Resample.c`)
//! bit for bit rather than approximating it with `image::imageops`: a separable triangle filter
//! whose support is widened by the downscale factor (antialiasing), coefficients normalised per
//! output pixel and quantised to 22-bit fixed point, a horizontal pass then a vertical pass, each
//! rounded and clamped to `u8`. The centre crop uses Python's round-half-to-even offsets, and
//! the normalisation is done in `f32` in torchvision's order, so the output matches
//! torchvision's `pixel_values` exactly.
//!
//! - [`imagenet_eval`]: the whole eval pipeline (224×224 crop as HWC `u8` and CHW `f32`).
//! - [`resize_normalize`]: resize straight to `size`×`size` (no crop, aspect ratio not kept)
//!   with the same Pillow-exact filter, then normalise.
//! - [`pil_resize_bilinear`], [`resize_shorter_side`], [`center_crop`], [`normalize_chw`]: the steps.

use image::RgbImage;

/// ImageNet channel means (torchvision).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (torchvision).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Shorter side after the eval resize.
pub const RESIZE_SHORTER: u32 = 256;
/// Side of the eval centre crop.
pub const CROP: u32 = 224;

/// Resize to `width`×`height` exactly like Pillow's `Image.resize((width, height),
/// Image.BILINEAR)` on an RGB image (antialiased when downscaling, separable, 22-bit fixed point,
/// horizontal pass then vertical pass, each rounded to `u8`): [`crate::resample::pil_resize`]
/// with the bilinear filter.
pub fn pil_resize_bilinear(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    crate::resample::pil_resize(img, width, height, crate::resample::Filter::Bilinear)
}

/// torchvision `Resize(shorter)` output size for a `width`×`height` image: the shorter side
/// becomes `shorter`, the longer `int(shorter * long / short)` (truncated).
pub fn shorter_side_size(width: u32, height: u32, shorter: u32) -> (u32, u32) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    if short == 0 {
        return (width, height);
    }
    let new_long = ((shorter as f64 * long as f64) / short as f64) as u32;
    if width <= height { (shorter, new_long) } else { (new_long, shorter) }
}

/// torchvision `Resize(shorter)` on a PIL image (Pillow-exact bilinear).
pub fn resize_shorter_side(img: &RgbImage, shorter: u32) -> RgbImage {
    let (w, h) = shorter_side_size(img.width(), img.height(), shorter);
    pil_resize_bilinear(img, w, h)
}

/// Python's `int(round(x / 2.0))` for an integer `x` (round half to even).
fn half_round_even(x: i64) -> i64 {
    let q = x.div_euclid(2);
    if x.rem_euclid(2) == 0 || q % 2 == 0 { q } else { q + 1 }
}

/// torchvision `CenterCrop((height, width))` offsets `(left, top)` for an image of
/// `img_w`×`img_h` at least as large as the crop.
pub fn center_crop_offsets(img_w: u32, img_h: u32, width: u32, height: u32) -> (u32, u32) {
    let left = half_round_even(img_w as i64 - width as i64).max(0) as u32;
    let top = half_round_even(img_h as i64 - height as i64).max(0) as u32;
    (left, top)
}

/// torchvision `CenterCrop` on a PIL image: offsets rounded half to even; an image smaller than
/// the crop is first zero-padded as torchvision does (left/top get the floor of half the
/// missing pixels).
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let padded;
    let img = if w < width || h < height {
        let (pl, pt) = (width.saturating_sub(w) / 2, height.saturating_sub(h) / 2);
        let (pw, ph) = (w.max(width), h.max(height));
        let mut p = RgbImage::new(pw, ph);
        image::imageops::replace(&mut p, img, pl as i64, pt as i64);
        padded = p;
        &padded
    } else {
        img
    };
    let (left, top) = center_crop_offsets(img.width(), img.height(), width, height);
    image::imageops::crop_imm(img, left, top, width, height).to_image()
}

/// `ToTensor()` + `Normalize(mean, std)`: HWC `u8` → CHW `f32`, `(x / 255 - mean[c]) / std[c]`
/// in `f32` (the same operations, in the same order, as torchvision).
pub fn normalize_chw(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let n = img.width() as usize * img.height() as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (p[c] as f32 / 255.0f32 - mean[c]) / std[c];
        }
    }
    out
}

/// torchvision's ImageNet eval transform: `Resize(256)` (Pillow-exact bilinear) →
/// `CenterCrop(224)` → `ToTensor()` → `Normalize(IMAGENET_MEAN, IMAGENET_STD)`.
/// Returns the 224×224 crop as HWC `u8` (`224*224*3`) and the model input as CHW `f32`
/// (`3*224*224`).
pub fn imagenet_eval(img: &RgbImage) -> (Vec<u8>, Vec<f32>) {
    let crop = center_crop(&resize_shorter_side(img, RESIZE_SHORTER), CROP, CROP);
    let x = normalize_chw(&crop, IMAGENET_MEAN, IMAGENET_STD);
    (crop.into_raw(), x)
}

/// Resize straight to `size`×`size` (no crop: the aspect ratio is not kept) with the
/// Pillow-exact bilinear filter, then normalise with ImageNet statistics. Returns the resized
/// HWC `u8` pixels and the CHW `f32` input (torchvision `Resize((size, size))` → `ToTensor()` →
/// `Normalize`).
pub fn resize_normalize(img: &RgbImage, size: u32) -> (Vec<u8>, Vec<f32>) {
    let r = pil_resize_bilinear(img, size, size);
    let x = normalize_chw(&r, IMAGENET_MEAN, IMAGENET_STD);
    (r.into_raw(), x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::read_safetensors;
    use std::path::PathBuf;

    fn golden_dir() -> PathBuf {
        let dir = match std::env::var_os("MMFUSE_SHARED_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
        }
        .join("golden");
        for f in ["mobilenet.safetensors", "mobilenet.json"] {
            assert!(
                dir.join(f).is_file(),
                "required test file {} is missing (the shared goldens belong to the repo's environment; set MMFUSE_SHARED_DIR)",
                dir.join(f).display()
            );
        }
        dir
    }

    #[test]
    fn matches_torchvision_goldens() {
        let dir = golden_dir();
        let st = read_safetensors(&dir.join("mobilenet.safetensors"));
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("mobilenet.json")).unwrap()).unwrap();
        let (dt, cshape, crops) = &st["cropped_rgb_u8"];
        let (pt, pshape, pixels) = &st["pixel_values"];
        assert_eq!((dt.as_str(), pt.as_str()), ("U8", "F32"));
        let images = json["images"].as_array().unwrap();
        assert_eq!(cshape, &vec![images.len(), 224, 224, 3]);
        assert_eq!(pshape, &vec![images.len(), 3, 224, 224]);
        let pixels: Vec<f32> = pixels.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let per = 224 * 224 * 3;
        let (mut total_bytes_off, mut worst) = (0usize, 0f32);
        for (i, meta) in images.iter().enumerate() {
            let file = meta["file"].as_str().unwrap();
            let img = image::open(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}")).to_rgb8();
            assert_eq!((img.width() as u64, img.height() as u64), (meta["width"].as_u64().unwrap(), meta["height"].as_u64().unwrap()));
            let (rw, rh) = shorter_side_size(img.width(), img.height(), RESIZE_SHORTER);
            assert_eq!((rw as u64, rh as u64), (meta["resized_width"].as_u64().unwrap(), meta["resized_height"].as_u64().unwrap()), "{file}");
            let (left, top) = center_crop_offsets(rw, rh, CROP, CROP);
            assert_eq!((left as u64, top as u64), (meta["crop_left"].as_u64().unwrap(), meta["crop_top"].as_u64().unwrap()), "{file}");

            let (crop, x) = imagenet_eval(&img);
            let want = &crops[i * per..(i + 1) * per];
            let off = crop.iter().zip(want).filter(|(a, b)| a != b).count();
            let max_level = crop.iter().zip(want).map(|(&a, &b)| (a as i32 - b as i32).abs()).max().unwrap();
            let d = x.iter().zip(&pixels[i * per..(i + 1) * per]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            println!("{file}: {off} of {per} cropped bytes differ (max {max_level} levels), pixel_values max abs diff {d:.3e}");
            total_bytes_off += off;
            worst = worst.max(d);
        }
        println!("ImageNet eval preprocessing: {total_bytes_off} differing bytes in total, pixel_values max abs diff {worst:.3e}");
        assert_eq!(total_bytes_off, 0, "cropped_rgb_u8 must match Pillow exactly");
        assert!(worst <= 1e-3, "pixel_values: max abs diff {worst:e}");
    }

    #[test]
    fn crop_offsets_round_half_to_even() {
        // (w - 224) / 2 = 58.5 -> 58, 60.5 -> 60, 92.5 -> 92, 59.5 -> 60
        assert_eq!(center_crop_offsets(341, 256, 224, 224), (58, 16));
        assert_eq!(center_crop_offsets(345, 256, 224, 224), (60, 16));
        assert_eq!(center_crop_offsets(409, 256, 224, 224), (92, 16));
        assert_eq!(center_crop_offsets(343, 257, 224, 224), (60, 16));
        assert_eq!(shorter_side_size(320, 240, 256), (341, 256));
        assert_eq!(shorter_side_size(360, 640, 256), (256, 455));
        assert_eq!(shorter_side_size(224, 224, 256), (256, 256));
    }

    #[test]
    fn resize_keeps_constant_images_and_downscales_with_antialiasing() {
        let img = RgbImage::from_pixel(97, 53, image::Rgb([10, 200, 255]));
        for (w, h) in [(256, 256), (31, 17), (97, 20), (5, 53), (1, 1)] {
            let r = pil_resize_bilinear(&img, w, h);
            assert_eq!(r.dimensions(), (w, h));
            assert!(r.pixels().all(|p| p.0 == [10, 200, 255]), "{w}x{h}");
        }
        // A 1-pixel checkerboard halved averages to mid-grey with the antialiased filter
        // (plain bilinear sampling would alias to black or white).
        let cb = RgbImage::from_fn(64, 64, |x, y| if (x + y) % 2 == 0 { image::Rgb([255; 3]) } else { image::Rgb([0; 3]) });
        let r = pil_resize_bilinear(&cb, 32, 32);
        // (away from the left/right edges, where the filter is truncated to 3 taps)
        assert!(r.enumerate_pixels().filter(|(x, _, _)| (1..31).contains(x)).all(|(_, _, p)| p.0 == [128; 3]), "{:?}", r.get_pixel(5, 5));
        // Upscaling 2 -> 4 pixels: Pillow gives [0, 64, 191, 255] for a [0, 255] row.
        let row = RgbImage::from_fn(2, 1, |x, _| image::Rgb([(x * 255) as u8; 3]));
        let r = pil_resize_bilinear(&row, 4, 1);
        assert_eq!(r.pixels().map(|p| p.0[0]).collect::<Vec<_>>(), vec![0, 64, 191, 255]);
        // Resize-only pipeline
        let (u8s, x) = resize_normalize(&cb, 16);
        assert_eq!((u8s.len(), x.len()), (16 * 16 * 3, 3 * 16 * 16));
        // Small images are padded by the crop, like torchvision.
        let small = RgbImage::from_pixel(3, 5, image::Rgb([9; 3]));
        let c = center_crop(&small, 5, 5);
        assert_eq!((c.get_pixel(0, 0).0, c.get_pixel(1, 2).0, c.get_pixel(4, 4).0), ([0; 3], [9; 3], [0; 3]));
    }
}
