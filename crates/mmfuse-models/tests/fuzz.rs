//! Fuzzing of the pretrained-encoder readers with `proptest` (see `mmfuse-data/tests/fuzz.rs`
//! for the edit model): damaged `model.safetensors` and `config.json` of BERT, ViT and CLIP
//! folders and damaged torchvision ResNet files either load or give an error — never a panic.
//! `PROPTEST_CASES` sets the cases per reader (CI: 256).

use burn::tensor::Device;
use mmfuse_models::encoders::{BertModel, ImageEncoder, ResNet};
use mmfuse_testkit::proptest::prelude::*;
use mmfuse_testkit::{cases, edits, mutate};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoders").join(name)
}

/// A copy of fixture folder `name` with `file` replaced by `bytes`.
fn damaged(name: &str, file: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mmfuse-fuzz-models-{}-{name}-{}",
        std::process::id(),
        std::thread::current().name().unwrap_or("t").replace("::", "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join(file), bytes).unwrap();
    dir
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn damaged_encoder_folders_never_panic(model in 0usize..3, weights in any::<bool>(), e in edits()) {
        let name = ["bert-tiny-bin", "vit-tiny", "clip-tiny"][model];
        let file = if weights { "model.safetensors" } else { "config.json" };
        let seed = std::fs::read(fixture(name).join(file)).unwrap();
        let dir = damaged(name, file, &mutate(&seed, &e));
        let device = Device::flex();
        match model {
            0 => drop(BertModel::load(&dir, &device)),
            _ => drop(ImageEncoder::load_pretrained(&dir, 8, 2, &device)),
        }
    }

    #[test]
    fn damaged_resnet_files_never_panic(e in edits()) {
        let seed = std::fs::read(fixture("resnet-basic-tiny").join("model.safetensors")).unwrap();
        let p = std::env::temp_dir().join(format!("mmfuse-fuzz-resnet-{}.safetensors", std::process::id()));
        std::fs::write(&p, mutate(&seed, &e)).unwrap();
        let _ = ResNet::load(&p, &Device::flex());
    }
}
