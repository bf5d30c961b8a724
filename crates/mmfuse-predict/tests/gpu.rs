//! The GPU path end to end: `mmfuse train` on the GPU device (stopped after a few steps, as if
//! killed), resumed on the CPU from the GPU's checkpoint, then the finished run predicted on both
//! devices: the same labels and tags, probabilities within 1e-4, and the test scores the run
//! reported. The GPU is `gpu:software` (lavapipe) unless `MMFUSE_TEST_GPU` names another; without
//! one the test prints a note and passes (see `mmfuse_testkit::test_gpu`).

use burn::tensor::Device;
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_predict::file::predict_file;
use mmfuse_predict::{ImageInput, Output, Post, Predictor};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::path::Path;

mod common;

fn config(corpus: &Path, task: &str, device: &str) -> RunConfig {
    common::tiny_config(corpus, task, &[format!("train.device=\"{device}\"")])
}

/// Trains on the GPU for 3 steps, then resumes on the CPU to the end; the run's results.json.
fn train_across_devices(corpus: &Path, task: &str, gpu: &str, run: &Path) -> serde_json::Value {
    let stopped = run_training(&config(corpus, task, gpu), run, &TrainOptions { quiet: true, stop_after: Some(3), ..Default::default() }).unwrap();
    assert!(stopped.fit.interrupted);
    let done = run_training(&config(corpus, task, "cpu"), run, &TrainOptions { quiet: true, resume: true, ..Default::default() }).unwrap();
    assert!(!done.fit.interrupted && done.fit.steps > 3, "{task}: resumed to {} steps", done.fit.steps);
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

#[test]
fn trained_on_the_gpu_resumed_and_predicted_on_either_device() {
    let Some((gpu, spec)) = mmfuse_testkit::test_gpu("GPU train/predict") else { return };
    let dir = std::env::temp_dir().join(format!("mmfuse-gpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 5, n_train: 192, n_dev: 32, n_test: 48, ..Default::default() }).unwrap();

    // classification through the JSONL file reader, on both devices
    let results = train_across_devices(&corpus.join("cls"), "classify", &spec.to_string(), &dir.join("cls-run"));
    let mut lines = Vec::new();
    for device in [Device::flex(), gpu.clone()] {
        let p = Predictor::load(&dir.join("cls-run"), &device).unwrap();
        let mut out = Vec::new();
        let report = predict_file(&p, &corpus.join("cls/test.jsonl"), &mut out, 16, true).unwrap();
        assert_eq!(report.predicted, 48);
        lines.push(String::from_utf8(out).unwrap());
    }
    let (gold, _) = mmfuse_data::cls::read_jsonl(&corpus.join("cls/test.jsonl")).unwrap();
    let mut correct = 0;
    for ((c, g), s) in lines[0].lines().zip(lines[1].lines()).zip(&gold) {
        let (c, g): (serde_json::Value, serde_json::Value) = (serde_json::from_str(c).unwrap(), serde_json::from_str(g).unwrap());
        assert_eq!(c["label"], g["label"], "{}: labels differ between the CPU and the GPU", s.id);
        for (k, pc) in c["probs"].as_object().unwrap() {
            let d = (pc.as_f64().unwrap() - g["probs"][k].as_f64().unwrap()).abs();
            assert!(d < 1e-4, "{}: P({k}) differs by {d:e} between the CPU and the GPU", s.id);
        }
        correct += usize::from(c["label"] == s.label.as_str());
    }
    let acc = correct as f64 / gold.len() as f64;
    assert!((acc - results["test"]["accuracy"].as_f64().unwrap()).abs() < 1e-12, "accuracy {acc} vs results.json {}", results["test"]["accuracy"]);

    // NER (CRF decoding) from raw posts
    train_across_devices(&corpus.join("ner"), "ner", &spec.to_string(), &dir.join("ner-run"));
    let (samples, _) = mmfuse_data::conll::read_conll(&corpus.join("ner/test.txt"), &Default::default()).unwrap();
    let posts: Vec<Post> = samples
        .iter()
        .map(|s| Post { id: Some(s.id.clone()), text: s.words.join(" "), image: ImageInput::Path(corpus.join(format!("ner/images/{}.png", s.id))), ocr: None })
        .collect();
    let tags = |device: &Device| -> Vec<Vec<String>> {
        let p = Predictor::load(&dir.join("ner-run"), device).unwrap();
        p.predict(posts.clone())
            .into_iter()
            .map(|r| match r.unwrap().output {
                Output::Entities { tags, .. } => tags,
                o => panic!("expected entities, got {o:?}"),
            })
            .collect()
    };
    assert_eq!(tags(&Device::flex()), tags(&gpu), "NER tags differ between the CPU and the GPU");
    let _ = std::fs::remove_dir_all(&dir);
}
