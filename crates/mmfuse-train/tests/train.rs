//! End-to-end behaviour of a training run on a tiny synthetic corpus: exact resume, NaN guard,
//! missing-image policies, and the run folder.

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor};
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_models::batch::Batch;
use mmfuse_models::fusion::FusionModel;
use mmfuse_models::task::{Prediction, TaskKind, TaskModel};
use mmfuse_train::checkpoint;
use mmfuse_train::run::{build_model, prepare};
use mmfuse_train::trainer::{TrainData, fit};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// burn's CPU backend keeps ONE process-wide random generator (`Device::seed`); tests that
/// train run one at a time so their random draws do not interleave.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmfuse-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn corpus(dir: &Path) -> PathBuf {
    let c = dir.join("corpus");
    generate(&c, &SynthConfig { seed: 3, n_train: 96, n_dev: 32, n_test: 32, ..Default::default() }).unwrap();
    c
}

fn config(corpus: &Path, extra: &[&str]) -> RunConfig {
    let mut o: Vec<String> = vec![
        format!("data.dir=\"{}\"", corpus.join("cls").display()),
        "data.max_len=12".into(),
        "model.d_model=16".into(),
        "model.n_heads=2".into(),
        "model.d_ff=32".into(),
        "model.n_layers=1".into(),
        "model.cnn_channels=[8,8]".into(),
        "model.d_hidden=16".into(),
        "train.batch_size=16".into(),
        "train.epochs=2".into(),
        "train.eval_every=4".into(),
        "train.patience=0".into(),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::from_toml_str("[data]\ntask = \"classify\"\ndir = \"x\"\n[model]\n[train]\n", &o).unwrap()
}

fn weights(path: &Path) -> Vec<Vec<f32>> {
    let rec = ModuleRecord::load(path).unwrap();
    let cfg_dir = path.parent().unwrap().parent().unwrap().parent().unwrap();
    let cfg = RunConfig::load(&cfg_dir.join("config.toml"), &[]).unwrap();
    let p = prepare(&cfg, Some(&cfg_dir.join("tokenizer.json"))).unwrap();
    let m = build_model(&cfg, p.encoder.vocab_size(), TaskKind::Classify { n_classes: p.labels.len() }, &Device::flex()).load_record(rec);
    let mut out = Vec::new();
    struct V<'a>(&'a mut Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for V<'_> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            self.0.push(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    m.visit(&mut V(&mut out));
    out
}

#[test]
fn resume_continues_exactly() {
    let _guard = serial();
    let dir = tmp("resume");
    let c = corpus(&dir);
    let cfg = config(&c, &[]);
    let straight = run_training(&cfg, &dir.join("straight"), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    assert_eq!(straight.fit.steps, 12);
    // killed after 5 steps (a checkpoint is written), then resumed
    let first = run_training(&cfg, &dir.join("resumed"), &TrainOptions { quiet: true, stop_after: Some(5), ..Default::default() }).unwrap();
    assert!(first.fit.interrupted);
    assert_eq!(checkpoint::load(&dir.join("resumed/checkpoints"), "last").unwrap().unwrap().state.step, 5);
    let second = run_training(&cfg, &dir.join("resumed"), &TrainOptions { quiet: true, resume: true, ..Default::default() }).unwrap();
    assert_eq!(second.fit.steps, 12);
    let a = weights(&dir.join("straight/checkpoints/last/model.bpk"));
    let b = weights(&dir.join("resumed/checkpoints/last/model.bpk"));
    let max = a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert_eq!(max, 0.0, "resumed weights differ from the uninterrupted run by up to {max}");
    assert_eq!(straight.test.unwrap().scores, second.test.unwrap().scores);
    // metrics.jsonl holds each step's row once
    let rows = std::fs::read_to_string(dir.join("resumed/metrics.jsonl")).unwrap();
    let straight_rows = std::fs::read_to_string(dir.join("straight/metrics.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), straight_rows.lines().count());
    let _ = std::fs::remove_dir_all(&dir);
}

static LOSS_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A model whose loss turns NaN at the 7th call.
#[derive(Module, Debug)]
struct NanAfter {
    inner: FusionModel,
}

impl TaskModel for NanAfter {
    fn task(&self) -> TaskKind {
        self.inner.task()
    }
    fn loss(&self, batch: &Batch) -> Tensor<1> {
        let l = self.inner.loss(batch);
        if LOSS_CALLS.fetch_add(1, Ordering::SeqCst) + 1 >= 7 { l.mul_scalar(f32::NAN) } else { l }
    }
    fn predict(&self, batch: &Batch) -> Prediction {
        self.inner.predict(batch)
    }
}

#[test]
fn nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint() {
    let _guard = serial();
    let dir = tmp("nan");
    let c = corpus(&dir);
    let cfg = config(&c, &["train.eval_every=3"]);
    let p = prepare(&cfg, None).unwrap();
    let device = Device::flex().autodiff();
    let model = NanAfter { inner: build_model(&cfg, p.encoder.vocab_size(), TaskKind::Classify { n_classes: 3 }, &device) };
    let loader = Arc::new(mmfuse_train::run::image_loader(&cfg));
    let data = TrainData { train: Arc::new(p.train), dev: Arc::new(p.dev), loader, labels: p.labels };
    let run = dir.join("run");
    let err = fit(model, &cfg, &data, &run, &TrainOptions { quiet: true, ..Default::default() }, &device).expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("the training loss is NaN at step 7"), "{msg}");
    assert!(msg.contains("checkpoints/last"), "{msg}");
    let last = checkpoint::load(&run.join("checkpoints"), "last").unwrap().unwrap();
    assert_eq!(last.state.step, 6, "the last good checkpoint is the one written at step 6");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_image_is_an_error_or_a_counted_placeholder() {
    let _guard = serial();
    let dir = tmp("images");
    let c = corpus(&dir);
    let (train, _) = mmfuse_data::cls::read_jsonl(&c.join("cls/train.jsonl")).unwrap();
    let bad = c.join("cls").join(train[3].image.as_ref().unwrap());
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let cfg = config(&c, &[]);
    let err = run_training(&cfg, &dir.join("a"), &TrainOptions { quiet: true, ..Default::default() }).expect_err("must fail");
    assert!(format!("{err:#}").contains(&format!("cannot decode image {}", bad.display())), "{err:#}");
    let cfg = config(&c, &["data.missing_image=\"placeholder\""]);
    let s = run_training(&cfg, &dir.join("b"), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.run_dir.join("results.json")).unwrap()).unwrap();
    // 2 epochs over the train split, plus each dev evaluation: the bad file is counted every time it is read
    assert!(results["placeholder_images"].as_u64().unwrap() >= 2, "{results}");
    let _ = std::fs::remove_dir_all(&dir);
}
