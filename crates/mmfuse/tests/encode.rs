//! `mmfuse encode` end to end against the PyTorch goldens in `../shared/golden`: MiniLM
//! sentence embeddings (mean pooling + L2 norm, as sentence-transformers) and MobileNetV2
//! globally pooled features.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

fn shared() -> PathBuf {
    match std::env::var_os("MMFUSE_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

fn tensor(bytes: &[u8], name: &str) -> (Vec<f32>, Vec<usize>) {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    (t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), t.shape().to_vec())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmfuse-encode-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn text_embeddings_match_sentence_transformers() {
    let s = shared();
    let dir = tmp("text");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.join("golden/minilm.json")).unwrap()).unwrap();
    let sentences: Vec<&str> = json["sentences"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    std::fs::write(dir.join("texts.txt"), sentences.join("\n\n")).unwrap(); // blank lines are skipped
    let out = dir.join("emb.safetensors");
    let st = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args(["--quiet", "encode", "--pooling", "mean-normalized", "--text-encoder"])
        .arg(s.join("models/all-minilm-l6-v2"))
        .arg("--texts")
        .arg(dir.join("texts.txt"))
        .arg("--out")
        .arg(&out)
        .arg("--batch-size=4")
        .status()
        .unwrap();
    assert!(st.success());
    let (ours, shape) = tensor(&std::fs::read(&out).unwrap(), "embeddings");
    let (gold, gshape) = tensor(&std::fs::read(s.join("golden/minilm.safetensors")).unwrap(), "sentence_embedding");
    assert_eq!(shape, gshape);
    let diff = ours.iter().zip(&gold).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-4, "max abs difference {diff}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn image_embeddings_match_torchvision_pooled_features() {
    let s = shared();
    let dir = tmp("images");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.join("golden/mobilenet.json")).unwrap()).unwrap();
    let files: Vec<String> = json["images"].as_array().unwrap().iter().map(|x| x["file"].as_str().unwrap().to_string()).collect();
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    for f in &files {
        std::fs::copy(s.join("golden").join(f), dir.join("imgs").join(f)).unwrap();
    }
    let out = dir.join("emb.safetensors");
    let st = Command::new(env!("CARGO_BIN_EXE_mmfuse"))
        .args(["--quiet", "encode", "--image-encoder"])
        .arg(s.join("models/mobilenet-v2-imagenet/model.safetensors"))
        .arg("--images")
        .arg(dir.join("imgs"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&out).unwrap();
    let (ours, shape) = tensor(&bytes, "embeddings");
    assert_eq!(shape, [files.len(), 1280]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: HashMap<String, String> = meta.metadata().clone().unwrap();
    let order: Vec<String> = serde_json::from_str(&meta["files"]).unwrap();
    // golden: features [N, 1280, 7, 7] in `files` order → global average pool
    let (feat, fs) = tensor(&std::fs::read(s.join("golden/mobilenet.safetensors")).unwrap(), "features");
    assert_eq!(fs, [files.len(), 1280, 7, 7]);
    let mut worst = 0f32;
    for (row, name) in order.iter().enumerate() {
        let g = files.iter().position(|f| f == name).unwrap();
        for c in 0..1280 {
            let base = (g * 1280 + c) * 49;
            let pooled = feat[base..base + 49].iter().sum::<f32>() / 49.0;
            worst = worst.max((ours[row * 1280 + c] - pooled).abs());
        }
    }
    assert!(worst < 1e-3, "max abs difference {worst}");
    let _ = std::fs::remove_dir_all(&dir);
}
