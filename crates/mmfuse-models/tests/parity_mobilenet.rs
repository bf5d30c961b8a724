//! Parity of the Rust MobileNetV2 port with torchvision on the ImageNet checkpoint
//! (`shared/models/mobilenet-v2-imagenet`), against `shared/golden/mobilenet.{safetensors,json}`
//! (see `shared/golden/README.md`): features and logits fed the stored `pixel_values`, and the
//! top-5 classes. Missing files fail the test (they belong to the repo's environment, `../shared`
//! next to the checkout; override with `MMFUSE_SHARED_DIR`).

use burn::tensor::{Device, Tensor};
use mmfuse_models::encoders::MobileNetV2;
use mmfuse_models::pretrained::Weights;
use std::path::PathBuf;

fn shared() -> PathBuf {
    let dir = match std::env::var_os("MMFUSE_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    };
    for f in ["models/mobilenet-v2-imagenet/model.safetensors", "golden/mobilenet.safetensors", "golden/mobilenet.json"] {
        assert!(
            dir.join(f).is_file(),
            "required test file {} is missing (the shared models/goldens belong to the repo's environment; set MMFUSE_SHARED_DIR to their folder)",
            dir.join(f).display()
        );
    }
    dir
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| if x.is_finite() { (x - y).abs() } else { f32::INFINITY }).fold(0f32, f32::max)
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    let dir = shared();
    let device = Device::flex();
    let g = Weights::from_safetensors(dir.join("golden/mobilenet.safetensors"), &device).unwrap();
    let n = g.shape("pixel_values").unwrap()[0];
    let x: Tensor<4> = g.get("pixel_values", [n, 3, 224, 224]).unwrap();
    let (features_ref, _) = g.get_f32_vec("features", Some(&[n, 1280, 7, 7])).unwrap();
    let (logits_ref, _) = g.get_f32_vec("logits", Some(&[n, 1000])).unwrap();

    let model = MobileNetV2::load(dir.join("models/mobilenet-v2-imagenet/model.safetensors"), &device).unwrap();
    assert_eq!(model.blocks.len(), 17);
    let features = model.features(x.clone());
    assert_eq!(features.dims(), [n, 1280, 7, 7]);
    let logits_from_features = model.classifier.as_ref().expect("the checkpoint has a classifier").forward(MobileNetV2::pool(features.clone()));
    let features = features.into_data().try_to_vec::<f32>().unwrap();
    let logits = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
    let df = max_abs(&features, &features_ref);
    let dl = max_abs(&logits, &logits_ref);
    assert_eq!(logits, logits_from_features.into_data().try_to_vec::<f32>().unwrap(), "forward = classifier(pool(features))");
    println!("MobileNetV2 max abs diff: features {df:.3e}, logits {dl:.3e}");
    assert!(df <= 1e-3, "features: max abs diff {df:e} > 1e-3");
    assert!(dl <= 1e-3, "logits: max abs diff {dl:e} > 1e-3");

    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden/mobilenet.json")).unwrap()).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), n);
    for (i, img) in images.iter().enumerate() {
        let want: Vec<usize> = img["top5_indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let row = &logits[i * 1000..(i + 1) * 1000];
        let mut order: Vec<usize> = (0..1000).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        println!("{}: top-5 {:?} (golden {want:?})", img["file"].as_str().unwrap(), &order[..5]);
        assert_eq!(&order[..5], &want[..], "top-5 classes of {}", img["file"]);
    }
}

#[test]
fn mobilenet_load_errors_name_file_and_tensor() {
    let dir = shared();
    let device = Device::flex();
    // The BERT checkpoint is not a MobileNetV2: the first missing key is named.
    let err = MobileNetV2::load(dir.join("models/all-minilm-l6-v2/model.safetensors"), &device).unwrap_err().to_string();
    assert!(err.contains("model.safetensors: missing tensor 'features.0.0.weight'"), "{err}");
    // A checkpoint with a wrong shape names the key and both shapes.
    let bytes = std::fs::read(dir.join("models/mobilenet-v2-imagenet/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let small = vec![0u8; 24 * 4];
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .iter()
        .map(|(k, v)| {
            if k == "features.2.conv.3.running_var" {
                (k.to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4, 6], &small).unwrap())
            } else {
                (k.to_string(), v)
            }
        })
        .collect();
    let path = std::env::temp_dir().join(format!("mmfuse-mobilenet-bad-{}.safetensors", std::process::id()));
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    let err = MobileNetV2::load(&path, &device).unwrap_err().to_string();
    std::fs::remove_file(&path).ok();
    assert!(err.contains("tensor 'features.2.conv.3.running_var' has shape [4, 6], expected [24]"), "{err}");
    let err = MobileNetV2::load(dir.join("golden/missing.safetensors"), &device).unwrap_err().to_string();
    assert!(err.contains("golden/missing.safetensors"), "{err}");
}
