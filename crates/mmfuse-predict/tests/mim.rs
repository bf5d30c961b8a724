//! A MIM run folder predicts on its own: `Predictor` (data and model crates only, no training
//! code) reads the run's words + word-aligned features and gives the scores the trainer's
//! evaluation scored (the dev MAE of `results.json`, recomputed from the predictions), and a
//! segment that does not fit the run (a row of the wrong width, a missing row, a NaN) is an
//! error naming what is wrong.

use burn::tensor::Device;
use mmfuse_data::aligned::{AlignedSample, read_dir, write_dir};
use mmfuse_data::aligned_synth::{AlignedSynthConfig, generate};
use mmfuse_predict::{AlignedPost, Output, Predictor, file::predict_file};
use mmfuse_train::{RunConfig, TrainOptions, run_training};

fn post(s: &AlignedSample, da: usize, dv: usize) -> AlignedPost {
    AlignedPost {
        id: Some(s.id.clone()),
        words: s.words.clone(),
        audio: Some(s.audio.chunks(da).map(<[f32]>::to_vec).collect()),
        video: Some(s.video.chunks(dv).map(<[f32]>::to_vec).collect()),
    }
}

#[test]
fn mim_run_predicts_what_was_evaluated() {
    let dir = std::env::temp_dir().join(format!("mmfuse-predict-mim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("aligned");
    write_dir(&generate(&AlignedSynthConfig { n_train: 96, n_dev: 40, n_test: 40, seed: 2, ..Default::default() }), &corpus).unwrap();
    let o = vec![format!("data.dir=\"{}\"", corpus.display()), "train.epochs=2".to_string()];
    let cfg = RunConfig::from_toml_str(include_str!("../../../configs/mim-synthetic.toml"), &o).unwrap();
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();

    let p = Predictor::load(&run, &Device::flex()).unwrap();
    let (da, dv) = p.features().expect("a MIM run has feature sizes");
    let dev = read_dir(&corpus).unwrap().dev;
    assert_eq!((da, dv), (dev.audio_dim, dev.video_dim));
    let posts: Vec<AlignedPost> = dev.samples.iter().map(|s| post(s, da, dv)).collect();
    // in batches of 7, as a server would gather them
    let scores: Vec<f32> = posts
        .chunks(7)
        .flat_map(|c| p.predict_aligned(c))
        .map(|r| match r.unwrap().output {
            Output::Score { score } => score,
            other => panic!("expected a score, got {other:?}"),
        })
        .collect();
    let mae = dev.samples.iter().zip(&scores).map(|(s, y)| (*y as f64 - s.label as f64).abs()).sum::<f64>() / scores.len() as f64;
    let want = results["dev"]["mae"].as_f64().unwrap();
    assert!((mae - want).abs() < 1e-5, "predictor MAE {mae} vs the trainer's dev MAE {want}");

    // segments that do not fit the run are errors per segment; the good one still predicts
    let good = posts[0].clone();
    let mut wide = good.clone();
    wide.audio.as_mut().unwrap()[0].push(0.0);
    let mut short = good.clone();
    short.video.as_mut().unwrap().pop();
    let mut nan = good.clone();
    nan.audio.as_mut().unwrap()[1][0] = f32::NAN;
    let out = p.predict_aligned(&[wide, good.clone(), short, nan, AlignedPost::default()]);
    let err = |i: usize| format!("{:#}", out[i].as_ref().unwrap_err());
    assert!(err(0).contains(&format!("audio row 0 has {} values; this run's audio features have {da}", da + 1)), "{}", err(0));
    assert!(matches!(out[1].as_ref().unwrap().output, Output::Score { score } if (score - scores[0]).abs() < 1e-5));
    assert!(err(2).contains("video rows for"), "{}", err(2));
    assert!(err(3).contains("non-finite"), "{}", err(3));
    assert!(err(4).contains("no words"), "{}", err(4));

    // `mmfuse predict --input segments.jsonl`: one line per good segment, bad lines reported
    let input = dir.join("segments.jsonl");
    let line = |a: &AlignedPost| serde_json::json!({"id": a.id, "words": a.words, "audio": a.audio, "video": a.video}).to_string();
    std::fs::write(&input, format!("{}\n{{\"words\": 3}}\n{}\n", line(&posts[0]), line(&posts[1]))).unwrap();
    let mut out = Vec::new();
    let report = predict_file(&p, &input, &mut out, 8, true).unwrap();
    assert_eq!(report.predicted, 2);
    assert_eq!(report.bad.len(), 1);
    assert_eq!(report.bad[0].line, 2);
    let lines: Vec<serde_json::Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[1]["id"], posts[1].id.clone().unwrap());
    assert!((lines[1]["score"].as_f64().unwrap() as f32 - scores[1]).abs() < 1e-5);
    let _ = std::fs::remove_dir_all(&dir);
}
