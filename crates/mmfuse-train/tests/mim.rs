//! MIM end to end on the synthetic word-aligned corpus (`mmfuse_data::aligned_synth`), whose
//! acoustic or visual stream carries a span of large noise on half of the segments: the gates
//! learn to drop the noisy steps (measured mask precision/recall), MIM beats the same model
//! without UPN/KGS, and an interrupted run resumes to exactly the same weights.

use mmfuse_data::aligned::write_dir;
use mmfuse_data::aligned_synth::{AlignedSynthConfig, generate};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::path::{Path, PathBuf};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmfuse-mim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn corpus(dir: &Path, n_train: usize) -> PathBuf {
    let c = dir.join("aligned");
    let ds = generate(&AlignedSynthConfig { n_train, n_dev: 150, n_test: 300, seed: 5, ..Default::default() });
    write_dir(&ds, &c).unwrap();
    c
}

const SYNTH_TOML: &str = include_str!("../../../configs/mim-synthetic.toml");

fn config(corpus: &Path, extra: &[&str]) -> RunConfig {
    let mut o = vec![format!("data.dir=\"{}\"", corpus.display())];
    o.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::from_toml_str(SYNTH_TOML, &o).unwrap()
}

fn test_score(dir: &Path, key: &str) -> f64 {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    r["test"][key].as_f64().unwrap_or_else(|| panic!("no test.{key} in {r}"))
}

#[test]
fn gates_drop_the_noisy_steps_and_mim_beats_its_ablation() {
    let _guard = serial();
    let dir = tmp("ablation");
    let c = corpus(&dir, 800);
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    let full = run_training(&config(&c, &[]), &dir.join("mim"), &quiet).unwrap();
    let ablation = run_training(&config(&c, &["model.mim.purification=false", "model.mim.guidance=false"]), &dir.join("plain"), &quiet).unwrap();
    let (mae_full, mae_plain) = (test_score(&dir.join("mim"), "mae"), test_score(&dir.join("plain"), "mae"));
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("mim/results.json")).unwrap()).unwrap();
    let plain: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("plain/results.json")).unwrap()).unwrap();
    let q = &results["test"]["purification"];
    eprintln!("MIM test MAE {mae_full:.3} ({}), no UPN/KGS {mae_plain:.3} ({}); gates: {q}", results["test"]["synthetic"], plain["test"]["synthetic"]);
    assert!(full.fit.steps > 0 && ablation.fit.steps > 0);
    let p = q["audio"]["precision"].as_f64().unwrap();
    let r = q["audio"]["recall"].as_f64().unwrap();
    let kept = q["audio"]["clean_kept"].as_f64().unwrap();
    // measured: precision 0.81, recall 0.65, clean kept 0.87 (video: 0.85 / 0.47 / 0.92); the
    // gates start by keeping everything (P(keep) ≈ 0.94), so these come from training
    assert!(p > 0.7, "dropped audio steps that are noisy: precision {p}");
    assert!(r > 0.5, "noisy audio steps dropped: recall {r}");
    assert!(kept > 0.8, "clean audio steps kept: {kept}");
    let vp = q["video"]["precision"].as_f64().unwrap();
    assert!(vp > 0.7, "dropped video steps that are noisy: precision {vp}");
    // measured: 0.502 vs 0.514 overall; 0.545 vs 0.574 on the segments with a noisy span
    assert!(mae_full < mae_plain, "MIM test MAE {mae_full} vs {mae_plain} without UPN/KGS");
    let noisy = |v: &serde_json::Value| v["test"]["synthetic"]["mae_noisy"].as_f64().unwrap();
    assert!(noisy(&results) < noisy(&plain) - 0.015, "MAE on noisy segments: MIM {} vs {} without UPN/KGS", noisy(&results), noisy(&plain));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let _guard = serial();
    let dir = tmp("resume");
    let c = corpus(&dir, 160);
    let cfg = config(&c, &["train.epochs=3", "train.eval_every=4"]);
    let quiet = TrainOptions { quiet: true, ..Default::default() };
    let whole = run_training(&cfg, &dir.join("whole"), &quiet).unwrap();
    let part = run_training(&cfg, &dir.join("split"), &TrainOptions { quiet: true, stop_after: Some(7), ..Default::default() }).unwrap();
    assert!(part.fit.interrupted && part.fit.steps == 7);
    let rest = run_training(&cfg, &dir.join("split"), &TrainOptions { quiet: true, resume: true, ..Default::default() }).unwrap();
    assert_eq!(rest.fit.steps, whole.fit.steps);
    // identical weights give identical scores to the last digit (the records themselves carry
    // random parameter ids, so their bytes differ)
    let r = |d: &str| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(dir.join(d).join("results.json")).unwrap()).unwrap() };
    let (a, b) = (r("whole"), r("split"));
    for split in ["dev", "test"] {
        for k in ["mae", "corr", "acc7", "f1_non0"] {
            assert_eq!(a[split][k], b[split][k], "{split}.{k} differs after resume");
        }
    }
    assert_eq!(a["best_step"], b["best_step"]);
    // `mmfuse evaluate`: the run folder rebuilds the model and scores its best checkpoint again
    let (dev, test) = mmfuse_train::run::rescore(&dir.join("whole"), None, &burn::tensor::Device::flex()).unwrap();
    for (res, split) in [(&dev, "dev"), (&test, "test")] {
        for k in ["mae", "corr", "acc7", "f1_non0"] {
            let want = a[split][k].as_f64().unwrap();
            assert!((res.scores[k] - want).abs() < 1e-9, "rescored {split}.{k} = {} vs {want}", res.scores[k]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
