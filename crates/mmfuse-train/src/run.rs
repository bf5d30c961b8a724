//! A whole training run from a [`RunConfig`]: read the splits, build the tokenizer and the
//! label map, train, evaluate the best-dev checkpoint on test, and leave a self-contained run
//! folder (the model package that `predict`/`serve` load):
//!
//! ```text
//! RUN/config.toml        resolved configuration
//! RUN/tokenizer.json     tokenizer (Hugging Face `tokenizers` format)
//! RUN/labels.json        label map (class or tag names in output order)
//! RUN/checkpoints/best/  best-dev model (model.bpk, state.json)
//! RUN/checkpoints/last/  last model + optimizer state (resume)
//! RUN/metrics.jsonl      one JSON row per logged step / evaluation
//! RUN/results.json       test (and dev) scores of the best-dev checkpoint, data report
//! RUN/curves.png         training loss and dev metric curves
//! ```

use crate::checkpoint;
use crate::config::{RunConfig, TaskFamily};
use crate::evaluate::{EvalResult, evaluate};
use crate::examples::{Example, PrepReport, cls_examples, ner_examples};
use crate::trainer::{FitOutcome, TrainData, TrainOptions, fit, metrics_path};
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use mmfuse_data::cls::read_jsonl;
use mmfuse_data::conll::{ConllOptions, NER_TAGS, read_conll};
use mmfuse_data::image::{ImageLoader, ImageSpec};
use mmfuse_data::labels::LabelMap;
use mmfuse_data::text::{TextEncoder, train_word_tokenizer};
use mmfuse_metrics::plot::{CurvePoint, plot_curves};
use mmfuse_models::encoders::{ImageCnnConfig, TextTransformerConfig};
use mmfuse_models::fusion::muse::{CrossTransformerConfig, MuseConfig};
use mmfuse_models::fusion::{ConcatFusionConfig, FusionModel};
use mmfuse_models::task::TaskKind;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The three splits of a corpus, prepared.
pub struct Prepared {
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    pub test: Vec<Example>,
    pub labels: LabelMap,
    pub encoder: TextEncoder,
    pub report: serde_json::Value,
}

/// Split file names for a task family.
pub fn split_files(task: TaskFamily) -> [&'static str; 3] {
    match task {
        TaskFamily::Ner => ["train.txt", "valid.txt", "test.txt"],
        TaskFamily::Classify => ["train.jsonl", "dev.jsonl", "test.jsonl"],
    }
}

/// The image folder of a config.
pub fn image_dir(cfg: &RunConfig) -> PathBuf {
    if cfg.data.image_dir.is_absolute() { cfg.data.image_dir.clone() } else { cfg.data.dir.join(&cfg.data.image_dir) }
}

/// The image loader of a config.
/// (Text-only models get a loader that reads no image.)
pub fn image_loader(cfg: &RunConfig) -> ImageLoader {
    let spec = ImageSpec { size: cfg.data.image_size, ..ImageSpec::default() };
    if cfg.model.modality == mmfuse_models::fusion::Modality::Text && cfg.model.method == "concat" {
        ImageLoader::unused(spec)
    } else {
        ImageLoader::new(spec, cfg.data.missing_image)
    }
}

/// Read and prepare the splits. The tokenizer is trained on the train split unless
/// `tokenizer` (a `tokenizer.json`) is given.
pub fn prepare(cfg: &RunConfig, tokenizer: Option<&Path>) -> Result<Prepared> {
    let d = &cfg.data;
    let files = split_files(d.task);
    let paths: Vec<PathBuf> = files.iter().map(|f| d.dir.join(f)).collect();
    for p in &paths {
        if !p.exists() {
            bail!("missing split file {} (expected {} in {})", p.display(), files.join(", "), d.dir.display());
        }
    }
    let imgs = image_dir(cfg);
    let mut report = serde_json::Map::new();
    match d.task {
        TaskFamily::Ner => {
            let mut splits = Vec::new();
            for p in &paths {
                let (s, r) = read_conll(p, &ConllOptions::default())?;
                report.insert(p.file_name().unwrap().to_string_lossy().into(), json!({"samples": s.len(), "skipped_empty": r.skipped_empty}));
                splits.push(s);
            }
            let encoder = match tokenizer {
                Some(t) => TextEncoder::from_file(t, d.max_len, true)?,
                None => {
                    let texts = splits[0].iter().map(|s| s.words.join(" "));
                    TextEncoder::new(train_word_tokenizer(texts, d.min_word_count, true)?, d.max_len, true)
                }
            };
            let labels = LabelMap::from_names(NER_TAGS.iter().map(|s| s.to_string()).collect());
            let mut out = Vec::new();
            let mut reps: Vec<PrepReport> = Vec::new();
            for s in &splits {
                let (e, r) = ner_examples(s, &encoder, &labels, &imgs)?;
                out.push(e);
                reps.push(r);
            }
            report.insert("truncation".into(), json!(reps));
            let mut it = out.into_iter();
            Ok(Prepared { train: it.next().unwrap(), dev: it.next().unwrap(), test: it.next().unwrap(), labels, encoder, report: report.into() })
        }
        TaskFamily::Classify => {
            let mut splits = Vec::new();
            for p in &paths {
                let (s, r) = read_jsonl(p)?;
                report.insert(p.file_name().unwrap().to_string_lossy().into(), json!({"samples": s.len(), "skipped_empty": r.skipped_empty}));
                splits.push(s);
            }
            let encoder = match tokenizer {
                Some(t) => TextEncoder::from_file(t, d.max_len, true)?,
                None => {
                    let texts = splits[0].iter().map(|s| s.text.clone());
                    TextEncoder::new(train_word_tokenizer(texts, d.min_word_count, true)?, d.max_len, true)
                }
            };
            let names = if d.labels.is_empty() {
                let mut v: Vec<String> = splits[0].iter().map(|s| s.label.clone()).collect();
                v.sort();
                v.dedup();
                v
            } else {
                d.labels.clone()
            };
            let labels = LabelMap::from_names(names);
            let mut out = Vec::new();
            let mut reps = Vec::new();
            for s in &splits {
                let (e, r) = cls_examples(s, &encoder, &labels, &d.dir, &imgs)?;
                out.push(e);
                reps.push(r);
            }
            report.insert("truncation".into(), json!(reps));
            let mut it = out.into_iter();
            Ok(Prepared { train: it.next().unwrap(), dev: it.next().unwrap(), test: it.next().unwrap(), labels, encoder, report: report.into() })
        }
    }
}

/// The task kind of a config with its label map.
pub fn task_kind(cfg: &RunConfig, labels: &LabelMap) -> TaskKind {
    match cfg.data.task {
        TaskFamily::Ner => TaskKind::Tag { n_tags: labels.len() },
        TaskFamily::Classify => TaskKind::Classify { n_classes: labels.len() },
    }
}

/// Build the model a config describes (fresh weights).
pub fn build_model(cfg: &RunConfig, vocab_size: usize, task: TaskKind, device: &Device) -> FusionModel {
    let m = &cfg.model;
    let text = TextTransformerConfig::new(vocab_size)
        .with_d_model(m.d_model)
        .with_n_heads(m.n_heads)
        .with_n_layers(m.n_layers)
        .with_d_ff(m.d_ff)
        .with_max_len(cfg.data.max_len)
        .with_dropout(m.dropout);
    let image = ImageCnnConfig::new().with_channels(m.cnn_channels.clone()).with_d_model(m.d_model);
    match m.method.as_str() {
        "muse" => {
            let cross = CrossTransformerConfig::new(m.d_model)
                .with_n_heads(m.n_heads)
                .with_d_ff(m.d_ff)
                .with_n_layers(m.cross_layers)
                .with_dropout(m.dropout)
                .with_exchange_ratio(m.exchange_ratio)
                .with_exchange_start_layer(m.exchange_start_layer)
                .with_exchange_end_layer(m.exchange_end_layer)
                .with_replace(m.exchange_replace)
                .with_reference_compat(m.reference_compat);
            FusionModel::Muse(MuseConfig::new(task, text, image, cross).with_dropout(m.dropout).with_crf(m.crf).init(device))
        }
        _ => FusionModel::Concat(
            ConcatFusionConfig::new(m.modality, task, text, image).with_d_hidden(m.d_hidden).with_dropout(m.dropout).with_crf(m.crf).init(device),
        ),
    }
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub fit: FitOutcome,
    pub dev: Option<EvalResult>,
    pub test: Option<EvalResult>,
    pub seconds: f64,
}

/// Train (or resume) the run described by `cfg` in `run_dir`, then score the best-dev
/// checkpoint on dev and test.
pub fn run_training(cfg: &RunConfig, run_dir: &Path, opts: &TrainOptions) -> Result<RunSummary> {
    let start = Instant::now();
    std::fs::create_dir_all(run_dir).with_context(|| format!("cannot create run folder {}", run_dir.display()))?;
    let tok_path = run_dir.join("tokenizer.json");
    if opts.resume {
        let saved = run_dir.join("config.toml");
        if saved.exists() {
            let old = RunConfig::load(&saved, &[])?;
            if toml::to_string(&old.model)? != toml::to_string(&cfg.model)? {
                bail!("--resume: the [model] section differs from the run's saved {}; resume with the same model", saved.display());
            }
        }
    }
    checkpoint::write_atomic(&run_dir.join("config.toml"), cfg.to_toml().as_bytes())?;
    let prepared = prepare(cfg, (opts.resume && tok_path.exists()).then_some(tok_path.as_path()))?;
    prepared.encoder.save(&tok_path)?;
    checkpoint::write_atomic(&run_dir.join("labels.json"), serde_json::to_string_pretty(&prepared.labels)?.as_bytes())?;
    // with data parallelism the model's home is the first listed device
    let main_spec = cfg.train.devices.first().unwrap_or(&cfg.train.device);
    let device = main_spec.device().map_err(anyhow::Error::msg)?;
    device.seed(cfg.train.seed);
    let train_device = device.clone().autodiff();
    let task = task_kind(cfg, &prepared.labels);
    let model = build_model(cfg, prepared.encoder.vocab_size(), task, &train_device);
    tracing::info!(
        params = model.num_params(),
        train = prepared.train.len(),
        dev = prepared.dev.len(),
        test = prepared.test.len(),
        "training {} ({:?}) on {}",
        cfg.model.method,
        cfg.model.modality,
        main_spec
    );
    let loader = Arc::new(image_loader(cfg));
    let data = TrainData { train: Arc::new(prepared.train), dev: Arc::new(prepared.dev), loader: loader.clone(), labels: prepared.labels.clone() };
    let (model, outcome) = fit(model, cfg, &data, run_dir, opts, &train_device)?;
    if outcome.interrupted {
        return Ok(RunSummary { run_dir: run_dir.into(), fit: outcome, dev: None, test: None, seconds: start.elapsed().as_secs_f64() });
    }
    // score the best-dev checkpoint
    let best = checkpoint::load(&run_dir.join("checkpoints"), "best")?.context("no best checkpoint was written")?;
    let model = model.valid().try_load_record(best.model)?;
    let eval_device = device.clone();
    let bs = cfg.train.batch_size * 2;
    let dev = evaluate(&model, data.dev.clone(), loader.clone(), bs, &eval_device, &data.labels)?;
    let test = evaluate(&model, Arc::new(prepared.test), loader.clone(), bs, &eval_device, &data.labels)?;
    let placeholders = loader.placeholder_count();
    if placeholders > 0 {
        tracing::warn!("{placeholders} images were missing or unreadable and replaced by the placeholder image");
    }
    let seconds = start.elapsed().as_secs_f64();
    let results = json!({
        "best_step": outcome.best_step,
        "steps": outcome.steps,
        "early_stopped": outcome.early_stopped,
        "select_metric": cfg.select_metric(),
        "dev": dev.detail,
        "test": test.detail,
        "data": prepared.report,
        "placeholder_images": placeholders,
        "seconds": seconds,
    });
    checkpoint::write_atomic(&run_dir.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
    if let Err(e) = write_curves(run_dir, &cfg.select_metric()) {
        tracing::warn!("could not draw curves.png: {e:#}");
    }
    Ok(RunSummary { run_dir: run_dir.into(), fit: outcome, dev: Some(dev), test: Some(test), seconds })
}

/// Draw `curves.png` from `metrics.jsonl`.
pub fn write_curves(run_dir: &Path, metric: &str) -> Result<()> {
    let text = std::fs::read_to_string(metrics_path(run_dir))?;
    let mut loss = Vec::new();
    let mut dev = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let step = v["step"].as_u64().unwrap_or(0) as usize;
        if let Some(l) = v["loss"].as_f64() {
            loss.push(CurvePoint { step, value: l });
        }
        if let Some(m) = v["dev"][metric].as_f64() {
            dev.push(CurvePoint { step, value: m });
        }
    }
    plot_curves(&run_dir.join("curves.png"), &run_dir.display().to_string(), &loss, &[(format!("dev {metric}"), dev)])?;
    Ok(())
}
