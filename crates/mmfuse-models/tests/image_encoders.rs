//! One image-encoder abstraction: every pretrained image encoder that loads (torchvision ResNet
//! and MobileNetV2 files, Hugging Face ViT and CLIP folders) is told apart from its path by
//! `ImageEncoder::load_pretrained`, gives tokens `[B, N, d]`, trains (every parameter gets a
//! non-zero gradient through the tokens), and rebuilds from the shape a run folder saves
//! (`PretrainedImage`, JSON round trip) so that its saved weights load and give the same tokens.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::store::ModuleRecord;
use burn::tensor::{Device, Distribution, Tensor};
use mmfuse_models::encoders::{ImageEncoder, PretrainedImage};
use std::path::{Path, PathBuf};
mod common;
use common::GradReport;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoders").join(name)
}

fn shared_mobilenet() -> PathBuf {
    let dir = match std::env::var_os("MMFUSE_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    };
    let p = dir.join("models/mobilenet-v2-imagenet");
    assert!(p.join("model.safetensors").is_file(), "required test file {} is missing (set MMFUSE_SHARED_DIR)", p.display());
    p
}

const D: usize = 8;
const GRID: usize = 2;

#[test]
fn every_pretrained_image_encoder_loads_trains_and_reloads() {
    let device = Device::flex().autodiff();
    device.seed(5);
    let cases: [(&str, PathBuf, usize); 5] = [
        ("ResNet", fixture("resnet-basic-tiny/model.safetensors"), 32),
        ("ResNet", fixture("resnet-bottleneck-tiny"), 32), // a folder holding model.safetensors
        ("ViT", fixture("vit-tiny"), 32),
        ("CLIP vision tower", fixture("clip-tiny"), 32),
        ("MobileNetV2", shared_mobilenet(), 64),
    ];
    for (kind, path, size) in cases {
        let (enc, shape) = ImageEncoder::load_pretrained(&path, D, GRID, &device).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(shape.name(), kind, "{}", path.display());
        if let Some(s) = shape.input_size() {
            assert_eq!(s, size, "{kind}");
        }
        let images = Tensor::<4>::random([2, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
        let tokens = enc.forward(images.clone());
        let [b, n, d] = tokens.dims();
        assert_eq!((b, d), (2, D), "{kind}");
        match kind {
            "ResNet" | "MobileNetV2" => assert_eq!(n, GRID * GRID, "{kind}"),
            _ => assert_eq!(n, 1 + (size / 8) * (size / 8), "{kind}: [CLS] + patches (patch size 8)"),
        }
        // trains: every parameter (the pretrained ones and the new projection) gets a gradient
        let grads = GradientsParams::from_grads(tokens.clone().powf_scalar(2.0).sum().backward(), &enc);
        let r = GradReport::of(&enc, &grads);
        assert!(r.total > 6, "{kind}: only {} parameters", r.total);
        assert!(r.bad().is_empty(), "{kind}: no or zero gradient for {:?}", r.bad());

        // reloads: the saved shape (JSON) rebuilds an encoder its record loads into, same tokens
        let saved = serde_json::to_string(&shape).unwrap();
        let again: PretrainedImage = serde_json::from_str(&saved).unwrap();
        assert_eq!(again.name(), kind, "{saved}");
        let file = std::env::temp_dir().join(format!("mmfuse-image-encoder-{}-{}.bpk", std::process::id(), kind.replace(' ', "-")));
        std::fs::write(&file, enc.valid().into_record().into_bytes().unwrap().to_vec()).unwrap();
        let plain = Device::flex();
        let rebuilt = again.encoder_config(D, GRID).init(&plain).load_record(ModuleRecord::load(&file).unwrap());
        let host = images.into_data();
        let want = enc.valid().forward(Tensor::from_data(host.clone(), &plain)).into_data().try_to_vec::<f32>().unwrap();
        let got = rebuilt.forward(Tensor::from_data(host, &plain)).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got, want, "{kind}: the rebuilt encoder gives other tokens");
        let _ = std::fs::remove_file(&file); // the record reads the file lazily: removed after use
    }
}

#[test]
fn paths_that_are_no_image_encoder_say_what_they_are() {
    let device = Device::flex();
    // a text model's folder
    let e = ImageEncoder::load_pretrained(&fixture("bert-tiny-bin"), D, GRID, &device).err().unwrap().to_string();
    assert!(e.contains("model_type \"bert\" is not an image encoder"), "{e}");
    // a file that is neither ResNet nor MobileNetV2 weights: the ResNet reading names a tensor
    let e = ImageEncoder::load_pretrained(&fixture("vit-tiny/model.safetensors"), D, GRID, &device).err().unwrap().to_string();
    assert!(e.contains("model.safetensors") && e.contains("conv1.weight"), "{e}");
}
