//! CLFA's alignment on the synthetic sarcasm corpus: with a teacher cache computed by
//! `write_clip_cache` from the small random-weight CLIP of the parity fixtures, the aligned model
//! still learns the task as well as the unaligned one (alignment does not hurt).

use mmfuse_data::image::MissingImage;
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_train::batches::cls_image_path;
use mmfuse_train::teacher::write_clip_cache;
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::path::{Path, PathBuf};

const CLFA_TOML: &str = include_str!("../../../configs/clfa-small.toml");

fn test_accuracy(dir: &Path) -> f64 {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    r["test"]["accuracy"].as_f64().unwrap_or_else(|| panic!("no test accuracy in {r}"))
}

#[test]
fn alignment_to_a_clip_teacher_does_not_hurt() {
    let dir = std::env::temp_dir().join(format!("mmfuse-clfa-align-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 21, n_train: 1200, n_dev: 200, n_test: 400, ..Default::default() }).unwrap();
    let cls = corpus.join("cls");
    let mut samples = Vec::new();
    for f in ["train.jsonl", "dev.jsonl", "test.jsonl"] {
        let (s, _) = mmfuse_data::cls::read_jsonl(&cls.join(f)).unwrap();
        for x in s {
            let p = cls_image_path(&x, &cls, &cls.join("images"));
            samples.push((x, p));
        }
    }
    let clip: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoders/clip-tiny");
    let cache = dir.join("clip.safetensors");
    let device = burn::tensor::Device::flex();
    let (n, p, _) = write_clip_cache(&clip, &samples, &cache, MissingImage::Error, 64, &device, true).unwrap();
    assert_eq!((n, p), (1800, 16));
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    let run = |name: &str, alpha: f64| {
        let o = vec![
            format!("data.dir=\"{}\"", cls.display()),
            format!("data.teacher=\"{}\"", cache.display()),
            format!("model.clfa.alpha={alpha}"),
            "train.epochs=6".to_string(),
            "train.seed=5".to_string(),
        ];
        let cfg = RunConfig::from_toml_str(CLFA_TOML, &o).unwrap();
        run_training(&cfg, &dir.join(name), &quiet).unwrap();
        test_accuracy(&dir.join(name))
    };
    let plain = run("plain", 0.0);
    let aligned = run("aligned", 1.0);
    eprintln!("CLFA test accuracy: no alignment {plain:.4}, aligned to the tiny CLIP {aligned:.4}");
    // the synthetic task is solvable (100 %) only with both modalities; unimodal models stay at 50 %
    assert!(plain > 0.9, "no-alignment CLFA scored only {plain}");
    assert!(aligned > 0.9 && aligned >= plain - 0.02, "alignment hurt: {aligned} vs {plain} without it");
    let _ = std::fs::remove_dir_all(&dir);
}
