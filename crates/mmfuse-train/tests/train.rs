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
use mmfuse_train::run::{ModelShapes, post_model, prepare};
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
        "model.concat.d_hidden=16".into(),
        "train.batch_size=16".into(),
        "train.epochs=2".into(),
        "train.eval_every=4".into(),
        "train.patience=0".into(),
    ];
    if extra.iter().any(|e| e.starts_with("model.method=")) {
        o.retain(|s| !s.starts_with("model.concat."));
    }
    o.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::from_toml_str("[data]\ntask = \"classify\"\ndir = \"x\"\n[model]\n[train]\n", &o).unwrap()
}

fn weights(path: &Path) -> Vec<Vec<f32>> {
    let rec = ModuleRecord::load(path).unwrap();
    let cfg_dir = path.parent().unwrap().parent().unwrap().parent().unwrap();
    let cfg = RunConfig::load(&cfg_dir.join("config.toml"), &[]).unwrap();
    let p = prepare(&cfg, Some(&cfg_dir.join("tokenizer.json"))).unwrap();
    let m = post_model(&cfg, &ModelShapes::scratch(&cfg.model, &cfg.data, p.encoder.vocab_size()), p.labels.len(), &Device::flex()).unwrap().load_record(rec);
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
    resume_case("resume", &[]);
}

/// Modality dropout draws from (seed, step, post) alone: a resumed run drops the same
/// modalities as an uninterrupted one.
#[test]
fn resume_continues_exactly_with_modality_dropout() {
    resume_case("resume-dropout", &["train.modality_dropout={image=0.3, text=0.3}"]);
}

fn resume_case(name: &str, extra: &[&str]) {
    let _guard = serial();
    let dir = tmp(name);
    let c = corpus(&dir);
    let cfg = config(&c, extra);
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
    // metrics.jsonl holds each step's row once, with the same running means
    let rows = std::fs::read_to_string(dir.join("resumed/metrics.jsonl")).unwrap();
    let straight_rows = std::fs::read_to_string(dir.join("straight/metrics.jsonl")).unwrap();
    assert_eq!(rows, straight_rows);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unmounts the test's small file system when the test ends, however it ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A disk that fills up while training: the save that runs out of space is a clear error naming
/// the file and saying that the previous checkpoint is kept; that checkpoint is intact, and the
/// run resumes from it to the end once there is space again, with the weights of an
/// uninterrupted run. On a 16 MiB tmpfs, mounted for the test (needs root, as in CI; elsewhere
/// the test prints a note and passes).
#[test]
fn disk_full_while_saving_a_checkpoint_is_a_clear_error_and_keeps_the_previous_one() {
    use std::io::Write;
    let _guard = serial();
    let dir = tmp("disk-full");
    let c = corpus(&dir);
    let cfg = config(&c, &[]);
    let small = dir.join("small-disk");
    std::fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&small)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("NOTE: disk-full test skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _unmount = Unmount(small.clone());
    let run = small.join("run");
    let first = run_training(&cfg, &run, &TrainOptions { quiet: true, stop_after: Some(5), ..Default::default() }).unwrap();
    assert!(first.fit.interrupted);
    let ckpt = checkpoint::load(&run.join("checkpoints"), "last").unwrap().unwrap();
    assert_eq!(ckpt.state.step, 5);
    let size: u64 = std::fs::read_dir(ckpt.dir.clone()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    // fill the disk, then free a little less than one checkpoint: the metrics log still fits, the
    // next checkpoint does not
    let filler = small.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 16];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.flush();
    let full = std::fs::metadata(&filler).unwrap().len();
    f.set_len(full.saturating_sub(size / 2)).unwrap();
    drop(f);
    let err = run_training(&cfg, &run, &TrainOptions { quiet: true, resume: true, ..Default::default() }).unwrap_err();
    let msg = format!("{err:#}");
    eprintln!("with the disk full: {msg}");
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(msg.contains("the previous 'last' checkpoint is kept") || msg.contains("the previous 'best' checkpoint is kept"), "{msg}");
    assert!(msg.contains(&run.display().to_string()), "the error names the file: {msg}");
    let kept = checkpoint::load(&run.join("checkpoints"), "last").unwrap().unwrap();
    assert_eq!(kept.state.step, 5, "the previous checkpoint is intact and current");
    // space again: the run resumes from it and ends as an uninterrupted one
    std::fs::remove_file(&filler).unwrap();
    let done = run_training(&cfg, &run, &TrainOptions { quiet: true, resume: true, ..Default::default() }).unwrap();
    assert_eq!(done.fit.steps, 12);
    let straight = run_training(&cfg, &dir.join("straight"), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let a = weights(&dir.join("straight/checkpoints/last/model.bpk"));
    let b = weights(&run.join("checkpoints/last/model.bpk"));
    assert_eq!(a, b, "resumed after the full disk, the weights differ from an uninterrupted run");
    assert_eq!(straight.test.unwrap().scores, done.test.unwrap().scores);
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
    let model = NanAfter { inner: post_model(&cfg, &ModelShapes::scratch(&cfg.model, &cfg.data, p.encoder.vocab_size()), 3, &device).unwrap() };
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
    for (policy, name) in [("placeholder", "reference_placeholder"), ("absent", "absent")] {
        let cfg = config(&c, &[&format!("data.missing_image=\"{policy}\"")]);
        let s = run_training(&cfg, &dir.join(policy), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
        let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.run_dir.join("results.json")).unwrap()).unwrap();
        // 2 epochs over the train split, plus each dev evaluation: the bad file is counted every time it is read
        assert!(results["placeholder_images"].as_u64().unwrap() >= 2, "{results}");
        assert_eq!(results["missing_image"], name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// MuSE with both regularising decoders: the caption vocabulary is built and saved, the
/// decoders' losses enter training (the loss is higher than without them at the same weights),
/// and the run folder rebuilds the model (decoders included) from its files alone.
#[test]
fn muse_with_decoders_trains_and_its_run_folder_reloads() {
    let _g = serial();
    let dir = tmp("muse-decoders");
    let c = corpus(&dir);
    let muse = [
        "model.method=\"muse\"",
        "model.muse.cross_layers=2",
        "model.muse.exchange_start_layer=0",
        "model.muse.exchange_end_layer=1",
        "model.muse.caption_dim=8",
        "model.muse.pixelcnn_filters=4",
        "model.muse.decoder_noise=0.0",
        "model.muse.decoder_dropout=0.0",
        "model.dropout=0.0",
    ];
    let with: Vec<&str> = muse.iter().copied().chain(["model.muse.caption_weight=0.5", "model.muse.pixelcnn_weight=0.5"]).collect();
    let cfg = config(&c, &with);
    let run = dir.join("run");
    let s = run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    assert!(s.test.is_some());
    let vocab = mmfuse_models::package::saved_caption_vocab(&run).unwrap();
    assert!(vocab > 4, "caption vocabulary of {vocab} words");
    // the run folder alone rebuilds the model with its decoders and loads the best weights
    let p = prepare(&cfg, Some(&run.join("tokenizer.json"))).unwrap();
    let task = TaskKind::Classify { n_classes: p.labels.len() };
    let rec = ModuleRecord::load(run.join("checkpoints/best/model.bpk")).unwrap();
    let device = Device::flex();
    let model = post_model(
        &cfg,
        &ModelShapes { caption_vocab: vocab, ..ModelShapes::scratch(&cfg.model, &cfg.data, p.encoder.vocab_size()) },
        task.n_outputs(),
        &device,
    )
    .unwrap()
    .try_load_record(rec)
    .unwrap();
    let FusionModel::Muse(m) = &model else { panic!("not a MuSE model") };
    assert!(m.caption.is_some() && m.pixelcnn.is_some());
    // the decoder terms are part of the loss: same weights, decoders switched off → lower loss
    let loader = mmfuse_train::run::image_loader(&cfg);
    let refs: Vec<&mmfuse_train::batches::Example> = p.train.iter().take(8).collect();
    assert!(!refs[0].caption.is_empty(), "examples carry caption targets");
    let batch = mmfuse_train::batches::host_batch(&refs, &loader, true).unwrap().to_device(&device);
    let full = model.loss(&batch).into_scalar::<f32>();
    let mut bare = m.clone();
    bare.weights.caption = 0.0;
    bare.weights.pixelcnn = 0.0;
    let task_only = bare.loss(&batch).into_scalar::<f32>();
    assert!(full.is_finite() && full > task_only + 0.1, "with decoders {full}, task only {task_only}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn flat<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// A pretrained torchvision ResNet as the image encoder, with MuSE's freezing of conv1/bn1 and
/// layer1: the frozen weights come out of training exactly as loaded, the others move, and
/// the run folder rebuilds the ResNet from `image_encoder.json`. An unknown freeze prefix is
/// an error naming it.
#[test]
fn pretrained_resnet_image_encoder_trains_with_frozen_stem() {
    let _g = serial();
    let dir = tmp("resnet");
    let c = corpus(&dir);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoders/resnet-basic-tiny/model.safetensors");
    let img = format!("model.image_encoder=\"{}\"", fixture.display());
    let cfg = config(&c, &[&img, "model.image_grid=2", "train.freeze=[\"image.resnet.stem\", \"image.resnet.stages.0\"]"]);
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let shape = mmfuse_models::package::saved_image_config(&run).unwrap().expect("image_encoder.json");
    let p = prepare(&cfg, Some(&run.join("tokenizer.json"))).unwrap();
    let device = Device::flex();
    let task = TaskKind::Classify { n_classes: p.labels.len() };
    let rec = ModuleRecord::load(run.join("checkpoints/last/model.bpk")).unwrap();
    let model = post_model(
        &cfg,
        &ModelShapes { image: Some(shape.clone()), ..ModelShapes::scratch(&cfg.model, &cfg.data, p.encoder.vocab_size()) },
        task.n_outputs(),
        &device,
    )
    .unwrap()
    .try_load_record(rec)
    .unwrap();
    let (orig, _) = mmfuse_models::encoders::ResNet::load(&fixture, &device).unwrap();
    let FusionModel::Concat(m) = &model else { panic!("not concat") };
    let Some(mmfuse_models::encoders::ImageEncoder::ResNet(r)) = &m.image else { panic!("not a ResNet image encoder") };
    assert_eq!(flat(r.resnet.stem.conv.weight.val()), flat(orig.stem.conv.weight.val()), "frozen stem changed");
    assert_eq!(flat(r.resnet.stages[0][0].convs[0].conv.weight.val()), flat(orig.stages[0][0].convs[0].conv.weight.val()), "frozen layer1 changed");
    assert_ne!(flat(r.resnet.stages[3][0].convs[0].conv.weight.val()), flat(orig.stages[3][0].convs[0].conv.weight.val()), "layer4 was not trained");
    // batch norm in training mode (the default, as PyTorch's model.train()): running statistics move
    let stats = |m: &FusionModel| {
        let FusionModel::Concat(m) = m else { panic!() };
        let Some(mmfuse_models::encoders::ImageEncoder::ResNet(r)) = &m.image else { panic!() };
        r.resnet.stages[3][0].convs[0].bn.running_mean.value().into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    };
    let orig_stats = orig.stages[3][0].convs[0].bn.running_mean.value().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    assert_ne!(stats(&model), orig_stats, "train-mode batch norm kept its running mean");
    // train.batch_norm = "eval": the running statistics stay those of the pretrained file
    let cfg_eval = config(&c, &[&img, "model.image_grid=2", "train.batch_norm=\"eval\""]);
    let run_eval = dir.join("run-eval");
    run_training(&cfg_eval, &run_eval, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let rec = ModuleRecord::load(run_eval.join("checkpoints/last/model.bpk")).unwrap();
    let shapes_eval = ModelShapes { image: Some(shape.clone()), ..ModelShapes::scratch(&cfg_eval.model, &cfg_eval.data, p.encoder.vocab_size()) };
    let model_eval = post_model(&cfg_eval, &shapes_eval, task.n_outputs(), &device).unwrap().try_load_record(rec).unwrap();
    assert_eq!(stats(&model_eval), orig_stats, "eval-mode batch norm changed its running mean");
    // a prefix that matches nothing
    let bad = config(&c, &[&img, "train.freeze=[\"image.resnet.stemm\"]"]);
    let e = run_training(&bad, &dir.join("bad"), &TrainOptions { quiet: true, ..Default::default() }).unwrap_err();
    assert!(format!("{e:#}").contains("'image.resnet.stemm' matches no parameter"), "{e:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// CLIP's vision tower as the image encoder of CLFA (the paper's student is CLIP ViT-B/32): a
/// CLIP folder trains (its weights move), its shape is saved, and `mmfuse predict`'s loader
/// (data and model crates only) rebuilds the run and predicts.
#[test]
fn clfa_trains_with_clips_vision_tower_as_student_and_reloads() {
    let _g = serial();
    let dir = tmp("clip-student");
    let c = corpus(&dir);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoders/clip-tiny");
    let img = format!("model.image_encoder=\"{}\"", fixture.display());
    let cfg = config(&c, &["model.method=\"clfa\"", "model.clfa.cross_layers=1", "model.clfa.alpha=0.0", &img, "data.image_size=32"]);
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let shape = mmfuse_models::package::saved_image_config(&run).unwrap().expect("image_encoder.json");
    assert!(matches!(shape, mmfuse_models::encoders::PretrainedImage::ClipVision { .. }), "{shape:?}");
    let device = Device::flex();
    let p = mmfuse_predict_free_load(&run, &device);
    let FusionModel::Clfa(m) = &p else { panic!("not CLFA") };
    let mmfuse_models::encoders::ImageEncoder::ClipVision(v) = &m.image else { panic!("not CLIP's vision tower") };
    let (orig, _) = mmfuse_models::encoders::clip::ClipVisionTransformer::load(&fixture, &device).unwrap();
    assert_ne!(flat(v.clip.patch_embedding.weight.val()), flat(orig.patch_embedding.weight.val()), "the CLIP tower was not fine-tuned");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The best model of a run folder, rebuilt the way the predictor does (package + registry).
fn mmfuse_predict_free_load(run: &Path, device: &Device) -> FusionModel {
    let cfg = mmfuse_models::package::PackageConfig::load(run).unwrap();
    let tok = mmfuse_data::text::TextTokenizer::from_file(&run.join("tokenizer.json"), cfg.data.max_len, true).unwrap();
    let labels: mmfuse_data::labels::LabelMap = serde_json::from_str(&std::fs::read_to_string(run.join("labels.json")).unwrap()).unwrap();
    let shapes = ModelShapes::from_run_dir(run, &cfg.model, &cfg.data, tok.vocab_size()).unwrap();
    let rec = ModuleRecord::load(run.join("checkpoints/best/model.bpk")).unwrap();
    match mmfuse_models::registry::build(&cfg.model, &cfg.data, &shapes, labels.len(), device).unwrap() {
        mmfuse_models::registry::Model::Posts(m) => m.try_load_record(rec).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// A Hugging Face ViT folder as the image encoder: fine-tuned (its weights move), its shape saved
/// (`image_encoder.json`), the run folder rebuilds the model; an image size the ViT does not
/// take is an error that says what to set.
#[test]
fn a_vit_folder_trains_as_image_encoder_and_reloads() {
    let _g = serial();
    let dir = tmp("vit");
    let c = corpus(&dir);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoders/vit-tiny");
    let img = format!("model.image_encoder=\"{}\"", fixture.display());
    let cfg = config(&c, &[&img, "data.image_size=32"]);
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let shape = mmfuse_models::package::saved_image_config(&run).unwrap().expect("image_encoder.json");
    assert!(matches!(shape, mmfuse_models::encoders::PretrainedImage::Vit { .. }), "{shape:?}");
    let p = prepare(&cfg, Some(&run.join("tokenizer.json"))).unwrap();
    let device = Device::flex();
    let shapes = ModelShapes::from_run_dir(&run, &cfg.model, &cfg.data, p.encoder.vocab_size()).unwrap();
    let rec = ModuleRecord::load(run.join("checkpoints/last/model.bpk")).unwrap();
    let model = post_model(&cfg, &shapes, p.labels.len(), &device).unwrap().try_load_record(rec).unwrap();
    let FusionModel::Concat(m) = &model else { panic!("not concat") };
    let Some(mmfuse_models::encoders::ImageEncoder::Vit(v)) = &m.image else { panic!("not a ViT image encoder") };
    let (orig, _) = mmfuse_models::encoders::VitModel::load(&fixture, &device).unwrap();
    assert_ne!(flat(v.vit.patch_embedding.weight.val()), flat(orig.patch_embedding.weight.val()), "the ViT was not fine-tuned");
    assert_ne!(flat(v.vit.layers[1].intermediate.weight.val()), flat(orig.layers[1].intermediate.weight.val()));
    // the wrong input size
    let bad = config(&c, &[&img, "data.image_size=48"]);
    let e = run_training(&bad, &dir.join("bad"), &TrainOptions { quiet: true, ..Default::default() }).unwrap_err();
    assert!(format!("{e:#}").contains("takes 32x32 images, the data pipeline gives 48x48"), "{e:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// CLFA end to end: `clip-embed`'s cache (a tiny random-weight CLIP) feeds the alignment loss,
/// the run folder records the teacher size and rebuilds the model, and the no-alignment
/// ablation (α = 0) trains without a teacher.
#[test]
fn clfa_trains_with_a_clip_teacher_cache_and_reloads() {
    let _g = serial();
    let dir = tmp("clfa");
    let c = corpus(&dir);
    let data = c.join("cls");
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoders/clip-tiny");
    let mut samples = Vec::new();
    for f in ["train.jsonl", "dev.jsonl", "test.jsonl"] {
        for s in mmfuse_data::cls::read_jsonl(&data.join(f)).unwrap().0 {
            let p = mmfuse_train::batches::cls_image_path(&s, &data, &data.join("images"));
            samples.push((s, p));
        }
    }
    let cache = dir.join("teacher.safetensors");
    let (n, p, ph) =
        mmfuse_train::teacher::write_clip_cache(&clip, &samples, &cache, mmfuse_data::image::MissingImage::Error, 16, &Device::flex(), true).unwrap();
    assert_eq!((n, p, ph), (samples.len(), 16, 0));
    let teacher = format!("data.teacher=\"{}\"", cache.display());
    let cfg = config(&c, &["model.method=\"clfa\"", "model.clfa.cross_layers=1", &teacher]);
    let run = dir.join("run");
    let s = run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    assert!(s.test.is_some());
    let pr = prepare(&cfg, Some(&run.join("tokenizer.json"))).unwrap();
    let shapes = ModelShapes::from_run_dir(&run, &cfg.model, &cfg.data, pr.encoder.vocab_size()).unwrap();
    assert_eq!(shapes.teacher_dim, 16);
    let rec = ModuleRecord::load(run.join("checkpoints/best/model.bpk")).unwrap();
    let device = Device::flex();
    let model = post_model(&cfg, &shapes, pr.labels.len(), &device).unwrap().try_load_record(rec).unwrap();
    let FusionModel::Clfa(m) = &model else { panic!("not a CLFA model") };
    assert!(m.proj_text.is_some() && m.proj_image.is_some());
    // the alignment term is in the loss: the same weights with α = 0 give a lower loss
    let loader = mmfuse_train::run::image_loader(&cfg);
    let refs: Vec<&mmfuse_train::batches::Example> = pr.train.iter().take(8).collect();
    let batch = mmfuse_train::batches::host_batch(&refs, &loader, true).unwrap().to_device(&device);
    assert!(batch.teacher.is_some());
    let full = model.loss(&batch).into_scalar::<f32>();
    let mut ablated = m.clone();
    ablated.settings.alpha = 0.0;
    let task_only = ablated.loss(&batch).into_scalar::<f32>();
    assert!(full > task_only + 0.05, "with alignment {full}, without {task_only}");
    // the no-alignment ablation needs no teacher
    let cfg0 = config(&c, &["model.method=\"clfa\"", "model.clfa.cross_layers=1", "model.clfa.alpha=0.0"]);
    run_training(&cfg0, &dir.join("run0"), &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
