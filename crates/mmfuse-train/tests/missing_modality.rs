//! Missing modalities on the synthetic corpora, whose labels need every modality and whose
//! unimodal optima are known (`mmfuse_data::synth`: with the text alone, accuracy 50 % and a
//! log-loss of ln 2 — the label is one of two classes, each as likely; NER entity F1 25 %).
//!
//! A fused model trained with modality dropout falls back to the optimum of the modality it
//! keeps when the other is absent, and loses (almost) nothing with both; the same model trained
//! without modality dropout is clearly worse when the image is absent (in log-loss). The robustness report
//! (`mmfuse evaluate --robustness`) gives those numbers and writes its files.

use burn::tensor::Device;
use mmfuse_data::aligned::write_dir;
use mmfuse_data::aligned_synth::{AlignedSynthConfig, generate as generate_aligned};
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_train::robustness::{RobustnessOptions, RobustnessReport, robustness};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::path::{Path, PathBuf};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmfuse-missing-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Train the demo config on `data` with `extra` overrides; its missing-modality report.
fn train_and_report(toml: &str, data: &Path, run: &Path, extra: &[&str]) -> RobustnessReport {
    let mut o = vec![format!("data.dir=\"{}\"", data.display())];
    o.extend(extra.iter().map(|s| s.to_string()));
    let cfg = RunConfig::from_toml_str(toml, &o).unwrap();
    run_training(&cfg, run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let r = robustness(run, &Device::flex(), &RobustnessOptions { missing_only: true, ..Default::default() }).unwrap();
    eprintln!("{}", r.markdown());
    r
}

fn log_loss(r: &RobustnessReport, what: &str) -> f64 {
    r.rows.iter().find(|x| x.condition.kind == "absent" && x.condition.name == what).unwrap().scores["log_loss"]
}

#[test]
fn modality_dropout_falls_back_to_the_unimodal_optimum() {
    let _g = serial();
    let dir = tmp("cls");
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 5, n_train: 2500, n_dev: 300, n_test: 600, ..Default::default() }).unwrap();
    let toml = include_str!("../../../configs/demo-classify.toml");
    let cls = corpus.join("cls");
    let plain = train_and_report(toml, &cls, &dir.join("plain"), &[]);
    let dropout = train_and_report(toml, &cls, &dir.join("dropout"), &["train.modality_dropout={image=0.2, text=0.2}"]);
    let ln2 = std::f64::consts::LN_2;
    // with both modalities: within a point of the model trained without dropout
    assert!(plain.full() > 0.95, "the fused model without dropout scored only {:.3}", plain.full());
    assert!((dropout.full() - plain.full()).abs() <= 0.01, "full-modality accuracy {:.3} with dropout vs {:.3} without", dropout.full(), plain.full());
    // one modality absent: the unimodal optimum (50 %, log-loss ln 2), within a few points
    for what in ["image", "text"] {
        let acc = dropout.absent(what).unwrap();
        assert!((0.45..=0.55).contains(&acc), "{what} absent: accuracy {acc:.3}, the optimum is 0.5");
        let ll = log_loss(&dropout, what);
        assert!(ll < ln2 + 0.05, "{what} absent: log-loss {ll:.3}, the optimum is ln 2 = {ln2:.3}");
    }
    // without modality dropout, an absent image leaves the model confidently wrong: its accuracy
    // can still be near 50 % (any rule of the text alone is), but not its log-loss (measured:
    // 1.01 without dropout, 0.70 with)
    let (ll_plain, ll_dropout) = (log_loss(&plain, "image"), log_loss(&dropout, "image"));
    assert!(ll_plain > ll_dropout + 0.15, "image absent: log-loss {ll_plain:.3} without dropout vs {ll_dropout:.3} with");
    // the report's files
    dropout.write(&dir.join("dropout")).unwrap();
    for f in ["robustness.json", "robustness.md", "robustness.png"] {
        assert!(dir.join("dropout").join(f).exists(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ner_with_modality_dropout_falls_back_to_the_text_optimum() {
    let _g = serial();
    let dir = tmp("ner");
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 6, n_train: 2500, n_dev: 300, n_test: 600, ..Default::default() }).unwrap();
    let r = train_and_report(include_str!("../../../configs/demo-ner.toml"), &corpus.join("ner"), &dir.join("run"), &["train.modality_dropout={image=0.1}"]);
    assert!(r.full() > 0.9, "fused NER F1 {:.3}", r.full());
    let f1 = r.absent("image").unwrap();
    // the span is in the text, the type a one-in-four guess: 25 %
    assert!((0.18..=0.32).contains(&f1), "image absent: entity F1 {f1:.3}, the text-only optimum is 0.25");
    assert!(r.absent("text").is_none(), "a tagger is not scored without its text");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The whole report of a run: every corruption at three severities, the severest noise hurts
/// more than the mildest, and the table lists every condition.
#[test]
fn the_robustness_report_covers_every_corruption() {
    let _g = serial();
    let dir = tmp("report");
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 8, n_train: 600, n_dev: 100, n_test: 200, ..Default::default() }).unwrap();
    let o = [format!("data.dir=\"{}\"", corpus.join("cls").display()), "train.epochs=2".to_string()];
    let cfg = RunConfig::from_toml_str(include_str!("../../../configs/demo-classify.toml"), &o).unwrap();
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let r = robustness(&run, &Device::flex(), &RobustnessOptions::default()).unwrap();
    let names: Vec<String> =
        r.rows.iter().map(|x| format!("{}{}", x.condition.label(), x.condition.severity.map(|s| format!(" {s}")).unwrap_or_default())).collect();
    let mut want = vec!["full".to_string(), "image absent".into(), "text absent".into()];
    for c in ["gaussian noise", "blur", "jpeg", "crop"] {
        want.extend((1..=3).map(|s| format!("image: {c} {s}")));
    }
    for c in ["token dropout", "typos"] {
        want.extend((1..=3).map(|s| format!("text: {c} {s}")));
    }
    assert_eq!(names, want);
    let score = |label: &str, s: u8| r.rows.iter().find(|x| x.condition.label() == label && x.condition.severity == Some(s)).map(|x| r.score(x)).unwrap();
    assert!(score("image: gaussian noise", 3) < score("image: gaussian noise", 1), "severe noise does not hurt more than mild noise");
    assert!(score("text: token dropout", 3) < score("text: token dropout", 1), "dropping half the words does not hurt more than a tenth");
    // the same seed gives the same table
    let again = robustness(&run, &Device::flex(), &RobustnessOptions::default()).unwrap();
    assert_eq!(r.markdown(), again.markdown());
    r.write(&run).unwrap();
    let md = std::fs::read_to_string(run.join("robustness.md")).unwrap();
    assert!(md.contains("| image: jpeg | 3 | quality 5 |"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// MIM trained with audio and video dropout: with both it scores as without dropout, and with
/// either one absent (its gates closed) it keeps what the other carries: absent audio or absent
/// video each scores better than both absent. (On this corpus modality dropout does not lower
/// MIM's error with a modality absent — measured 0.66 against 0.64 without it —: the fusion's
/// fallback to the present vectors already degrades gracefully; README, Missing modalities.)
#[test]
fn mim_with_modality_dropout_keeps_what_the_present_modalities_carry() {
    let _g = serial();
    let dir = tmp("mim");
    let corpus = dir.join("aligned");
    write_dir(&generate_aligned(&AlignedSynthConfig { n_train: 600, n_dev: 100, n_test: 300, seed: 5, ..Default::default() }), &corpus).unwrap();
    let toml = include_str!("../../../configs/mim-synthetic.toml");
    let r = train_and_report(toml, &corpus, &dir.join("dropout"), &["train.modality_dropout={audio=0.2, video=0.2}", "train.epochs=15"]);
    let (full, audio, video, both) = (r.full(), r.absent("audio").unwrap(), r.absent("video").unwrap(), r.absent("audio+video").unwrap());
    assert!(full < audio && full < video, "MAE with everything {full:.3}, audio absent {audio:.3}, video absent {video:.3}");
    assert!(audio < both - 0.05 && video < both - 0.05, "audio absent {audio:.3} / video absent {video:.3} vs both absent {both:.3}");
    let _ = std::fs::remove_dir_all(&dir);
}
