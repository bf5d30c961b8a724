//! A whole training run from a [`RunConfig`]: read the splits, build the tokenizer and the
//! label map, train, evaluate the best-dev checkpoint on test, and leave a self-contained run
//! folder (the model package that `predict`/`serve` load; its shape files are
//! [`mmfuse_models::package`]'s):
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

use crate::batches::{Example, PrepReport, attach_clfa_streams, cls_examples, ner_examples};
use crate::checkpoint;
use crate::config::{RunConfig, TaskFamily};
use crate::evaluate::{EvalResult, evaluate};
pub use crate::run_folder::{RunSummary, pretrained_text_config, write_curves};
use crate::teacher::TeacherCache;
use crate::trainer::{TrainData, TrainOptions, fit};
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::Device;
use mmfuse_data::cls::read_jsonl;
use mmfuse_data::conll::{ConllOptions, NER_TAGS, read_conll};
use mmfuse_data::corrupt::{TextCorruption, sample_seed};
use mmfuse_data::image::ImageLoader;
use mmfuse_data::labels::LabelMap;
use mmfuse_data::text::Tokenizer;
use mmfuse_data::text::{TextTokenizer, caption_ids, train_word_tokenizer};
use mmfuse_models::encoders::ImageEncoder;
use mmfuse_models::fusion::FusionModel;
pub use mmfuse_models::package::{CAPTION_TOKENIZER_FILE, IMAGE_ENCODER_FILE, LEXICON_FILE, ModelShapes, TEACHER_FILE, TEXT_ENCODER_FILE};
use mmfuse_models::registry::{self, Model, text_encoder_config};
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
    pub encoder: TextTokenizer,
    /// Caption vocabulary of MuSE's captioning decoder (when the config turns it on).
    pub caption_tokenizer: Option<Tokenizer>,
    pub report: serde_json::Value,
}

/// Split file names for a task family.
pub fn split_files(task: TaskFamily) -> [&'static str; 3] {
    task.split_files()
}

/// The image loader of a config.
/// (Text-only models get a loader that reads no image.)
pub fn image_loader(cfg: &RunConfig) -> ImageLoader {
    let spec = cfg.data.image_spec();
    if !cfg.model.reads_images() { ImageLoader::unused(spec) } else { ImageLoader::new(spec, cfg.data.missing_image) }
}

/// Read and prepare the splits. The tokenizer is trained on the train split unless
/// `tokenizer` (a `tokenizer.json`) is given.
pub fn prepare(cfg: &RunConfig, tokenizer: Option<&Path>) -> Result<Prepared> {
    prepare_with(cfg, tokenizer, None)
}

/// [`prepare`] with every post's words corrupted by `text` (a corruption and a seed; robustness
/// evaluation, so the tokenizer must be given: it is not trained on corrupted text).
pub fn prepare_with(cfg: &RunConfig, tokenizer: Option<&Path>, text: Option<(TextCorruption, u64)>) -> Result<Prepared> {
    if text.is_some() && tokenizer.is_none() {
        bail!("internal: corrupted text needs the run's tokenizer");
    }
    let corrupt = |id: &str, words: &[String]| match text {
        Some((c, seed)) => c.apply(words, sample_seed(id, c.name(), c.severity(), seed)),
        None => words.to_vec(),
    };
    let d = &cfg.data;
    let files = split_files(d.task);
    let paths: Vec<PathBuf> = files.iter().map(|f| d.dir.join(f)).collect();
    for p in &paths {
        if !p.exists() {
            bail!("missing split file {} (expected {} in {})", p.display(), files.join(", "), d.dir.display());
        }
    }
    let imgs = d.image_dir();
    let mut report = serde_json::Map::new();
    match d.task {
        TaskFamily::Regression => bail!("data.task = \"regression\" is read by the MIM pipeline (mmfuse_train::aligned), not as posts"),
        TaskFamily::Ner => {
            let mut splits = Vec::new();
            for p in &paths {
                let (mut s, r) = read_conll(p, &ConllOptions::default())?;
                report.insert(p.file_name().unwrap().to_string_lossy().into(), json!({"samples": s.len(), "skipped_empty": r.skipped_empty}));
                if text.is_some() {
                    for x in s.iter_mut() {
                        x.words = corrupt(&x.id, &x.words);
                    }
                }
                splits.push(s);
            }
            let encoder = match tokenizer {
                Some(t) => TextTokenizer::from_file(t, d.max_len, true)?,
                None => {
                    let texts = splits[0].iter().map(|s| s.words.join(" "));
                    TextTokenizer::new(train_word_tokenizer(texts, d.min_word_count, true)?, d.max_len, true)
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
            let texts = splits.iter().map(|s| s.iter().map(|x| x.words.join(" ")).collect()).collect();
            finish_prepare(cfg, out, texts, labels, encoder, report)
        }
        TaskFamily::Classify => {
            let mut splits = Vec::new();
            for p in &paths {
                let (mut s, r) = read_jsonl(p)?;
                report.insert(p.file_name().unwrap().to_string_lossy().into(), json!({"samples": s.len(), "skipped_empty": r.skipped_empty}));
                if text.is_some() {
                    for x in s.iter_mut() {
                        let words: Vec<String> = x.text.split_whitespace().map(str::to_string).collect();
                        x.text = corrupt(&x.id, &words).join(" ");
                    }
                }
                splits.push(s);
            }
            let encoder = match tokenizer {
                Some(t) => TextTokenizer::from_file(t, d.max_len, true)?,
                None => {
                    let texts = splits[0].iter().map(|s| s.text.clone());
                    TextTokenizer::new(train_word_tokenizer(texts, d.min_word_count, true)?, d.max_len, true)
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
            // CLFA's optional OCR stream and lexicon weights
            let ocr_encoder = cfg.model.clfa_ocr().then(|| TextTokenizer::new(encoder.tokenizer().clone(), d.ocr_max_len, true));
            let lexicon = match &d.lexicon {
                Some(p) => Some(mmfuse_data::lexicon::Lexicon::read(p).with_context(|| format!("data.lexicon = {}", p.display()))?),
                None => None,
            };
            let mut no_ocr = 0;
            for s in &splits {
                let (mut e, r) = cls_examples(s, &encoder, &labels, &d.dir, &imgs)?;
                no_ocr += attach_clfa_streams(&mut e, s, ocr_encoder.as_ref(), lexicon.as_ref().map(|l| (l, &encoder)));
                out.push(e);
                reps.push(r);
            }
            if ocr_encoder.is_some() {
                if no_ocr > 0 {
                    tracing::warn!("{no_ocr} posts have no OCR text; their OCR stream is empty ([CLS] [SEP])");
                }
                report.insert("posts_without_ocr".into(), json!(no_ocr));
            }
            if let Some(l) = &lexicon {
                report.insert("lexicon_entries".into(), json!(l.polarity.len()));
            }
            report.insert("truncation".into(), json!(reps));
            let texts = splits.iter().map(|s| s.iter().map(|x| x.text.clone()).collect()).collect();
            finish_prepare(cfg, out, texts, labels, encoder, report)
        }
    }
}

/// Attach MuSE's caption targets when the captioning decoder is on (vocabulary: words of the
/// train split seen `min_word_count` times, lowercased), and assemble [`Prepared`].
fn finish_prepare(
    cfg: &RunConfig,
    mut splits: Vec<Vec<Example>>,
    texts: Vec<Vec<String>>,
    labels: LabelMap,
    encoder: TextTokenizer,
    report: serde_json::Map<String, serde_json::Value>,
) -> Result<Prepared> {
    let caption_tokenizer = if cfg.model.captioning() {
        let tok = train_word_tokenizer(texts[0].iter().cloned(), cfg.data.min_word_count, true)?;
        for (examples, texts) in splits.iter_mut().zip(&texts) {
            anyhow::ensure!(examples.len() == texts.len(), "internal: {} examples for {} texts", examples.len(), texts.len());
            for (e, t) in examples.iter_mut().zip(texts) {
                e.caption = caption_ids(&tok, t, cfg.data.max_len)?.into_iter().map(i64::from).collect();
            }
        }
        Some(tok)
    } else {
        None
    };
    if let Some(path) = &cfg.data.teacher {
        let cache = TeacherCache::load(path)?;
        for (examples, name) in splits.iter_mut().zip(split_files(cfg.data.task)) {
            for e in examples.iter_mut() {
                let t = cache.by_id.get(&e.id).with_context(|| {
                    format!("sample '{}' of {name} has no teacher embedding in {} (rerun mmfuse clip-embed on this corpus)", e.id, path.display())
                })?;
                e.teacher = Some(t.clone());
            }
        }
    }
    let mut it = splits.into_iter();
    Ok(Prepared { train: it.next().unwrap(), dev: it.next().unwrap(), test: it.next().unwrap(), labels, encoder, caption_tokenizer, report: report.into() })
}

/// The post model (concat, MuSE, CLFA) a config describes, with fresh weights
/// ([`mmfuse_models::registry::build`]); `n_labels` classes or tags.
pub fn post_model(cfg: &RunConfig, shapes: &ModelShapes, n_labels: usize, device: &Device) -> Result<FusionModel> {
    match registry::build(&cfg.model, &cfg.data, shapes, n_labels, device).map_err(anyhow::Error::msg)? {
        Model::Posts(m) => Ok(m),
        Model::Aligned(_) => bail!("model.method = \"mim\" reads word-aligned features, not posts (data.task = \"regression\")"),
    }
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
    if cfg.data.task == TaskFamily::Regression {
        return crate::aligned::run_mim(cfg, run_dir, opts);
    }
    let pretrained_text = pretrained_text_config(cfg)?;
    let bert = pretrained_text.as_ref().map(|(_, b)| b.clone());
    let tokenizer = match (pretrained_text.as_ref().map(|(d, _)| d), opts.resume && tok_path.exists()) {
        (_, true) => Some(tok_path.clone()),
        (Some(dir), false) => Some(dir.join("tokenizer.json")),
        (None, false) => None,
    };
    let prepared = prepare(cfg, tokenizer.as_deref())?;
    prepared.encoder.save(&tok_path)?;
    if let Some(b) = &bert {
        checkpoint::write_atomic(&run_dir.join(TEXT_ENCODER_FILE), serde_json::to_string_pretty(b)?.as_bytes())?;
    }
    checkpoint::write_atomic(&run_dir.join("labels.json"), serde_json::to_string_pretty(&prepared.labels)?.as_bytes())?;
    if let Some(lex) = &cfg.data.lexicon {
        let bytes = std::fs::read(lex).with_context(|| format!("cannot read data.lexicon = {}", lex.display()))?;
        checkpoint::write_atomic(&run_dir.join(LEXICON_FILE), &bytes)?;
    }
    // with data parallelism the model's home is the first listed device
    let main_spec = cfg.train.devices.first().unwrap_or(&cfg.train.device);
    let device = main_spec.device().map_err(anyhow::Error::msg)?;
    device.seed(cfg.train.seed);
    let train_device = device.clone().autodiff();
    let caption_vocab = match &prepared.caption_tokenizer {
        Some(tok) => {
            let path = run_dir.join(CAPTION_TOKENIZER_FILE);
            mmfuse_data::text::save_tokenizer(tok, &path)?;
            tok.get_vocab_size(true)
        }
        None => 0,
    };
    // the pretrained image encoder: its shape is saved so the run folder rebuilds the model
    let image = match &cfg.model.image_encoder {
        Some(path) => {
            if !path.exists() {
                bail!(
                    "model.image_encoder = {}: no such file or folder — give torchvision ResNet or MobileNetV2 weights as safetensors (e.g. resnet152, saved with \
                     safetensors.torch.save_file(torchvision.models.resnet152(weights=\"IMAGENET1K_V1\").state_dict(), path)), or a Hugging Face ViT or CLIP folder",
                    path.display()
                );
            }
            let d = bert.as_ref().map_or(cfg.model.d_model, |b| b.hidden_size);
            let (enc, shape) = ImageEncoder::load_pretrained(path, d, cfg.model.image_grid, &train_device)
                .with_context(|| format!("loading model.image_encoder = {}", path.display()))?;
            let spec = cfg.data.image_spec();
            if let Some(size) = shape.input_size()
                && spec.size as usize != size
            {
                bail!(
                    "model.image_encoder = {} ({}) takes {size}x{size} images, the data pipeline gives {}x{}: set data.preprocess = \"clip\" or \"imagenet_eval\" (224) or data.image_size = {size}",
                    path.display(),
                    shape.name(),
                    spec.size,
                    spec.size,
                );
            }
            checkpoint::write_atomic(&run_dir.join(IMAGE_ENCODER_FILE), serde_json::to_string_pretty(&shape)?.as_bytes())?;
            Some((enc, shape))
        }
        None => None,
    };
    let teacher_dim = prepared.train.first().and_then(|e| e.teacher.as_ref()).map_or(0, |t| t.0.len());
    if teacher_dim > 0 {
        checkpoint::write_atomic(&run_dir.join(TEACHER_FILE), json!({"dim": teacher_dim}).to_string().as_bytes())?;
    }
    let shapes = ModelShapes {
        text: text_encoder_config(&cfg.model, &cfg.data, prepared.encoder.vocab_size(), bert.as_ref()),
        image: image.as_ref().map(|(_, s)| s.clone()),
        caption_vocab,
        teacher_dim,
        features: None,
    };
    let mut model = post_model(cfg, &shapes, prepared.labels.len(), &train_device)?;
    if let (Some((enc, shape)), Some(path)) = (image, &cfg.model.image_encoder) {
        model.set_image_encoder(enc);
        tracing::info!("image encoder: pretrained {} from {}", shape.name(), path.display());
    }
    if let Some((dir, _)) = &pretrained_text {
        let (text, _) =
            mmfuse_models::encoders::TextEncoder::load_bert(dir, &train_device).with_context(|| format!("loading model.text_encoder = {}", dir.display()))?;
        model.set_text_encoder(text);
        tracing::info!("text encoder: pretrained BERT from {}", dir.display());
    }
    tracing::info!(
        params = model.num_params(),
        train = prepared.train.len(),
        dev = prepared.dev.len(),
        test = prepared.test.len(),
        "training {} ({:?}) on {}",
        cfg.model.method_name(),
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
        let what = if loader.policy() == mmfuse_data::image::MissingImage::Absent { "treated as absent" } else { "replaced by the placeholder image" };
        tracing::warn!("{placeholders} images were missing or unreadable and {what}");
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
        "missing_image": cfg.data.missing_image.name(),
        "seconds": seconds,
    });
    checkpoint::write_atomic(&run_dir.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
    if let Err(e) = write_curves(run_dir, &cfg.select_metric()) {
        tracing::warn!("could not draw curves.png: {e:#}");
    }
    Ok(RunSummary { run_dir: run_dir.into(), fit: outcome, dev: Some(dev), test: Some(test), seconds })
}

/// Score a run folder's best checkpoint again on its corpus' dev and test splits (e.g. after
/// an upgrade that adds metrics); the data folder is the config's unless `data_dir` is given.
pub fn rescore(run_dir: &Path, data_dir: Option<&Path>, device: &Device) -> Result<(EvalResult, EvalResult)> {
    let mut cfg = RunConfig::load(&run_dir.join("config.toml"), &[])?;
    if let Some(d) = data_dir {
        cfg.data.dir = d.to_path_buf();
    }
    if cfg.data.task == TaskFamily::Regression {
        return crate::aligned::rescore_mim(run_dir, &cfg, device);
    }
    let prepared = prepare(&cfg, Some(&run_dir.join("tokenizer.json")))?;
    let model = load_best(run_dir, &cfg, &prepared, device)?;
    let loader = Arc::new(image_loader(&cfg));
    let bs = cfg.train.batch_size * 2;
    let dev = evaluate(&model, Arc::new(prepared.dev), loader.clone(), bs, device, &prepared.labels)?;
    let test = evaluate(&model, Arc::new(prepared.test), loader, bs, device, &prepared.labels)?;
    Ok((dev, test))
}

/// The post model of a run folder with its best checkpoint's weights, for evaluation.
pub fn load_best(run_dir: &Path, cfg: &RunConfig, prepared: &Prepared, device: &Device) -> Result<FusionModel> {
    let shapes = ModelShapes::from_run_dir(run_dir, &cfg.model, &cfg.data, prepared.encoder.vocab_size())?;
    let best = checkpoint::load(&run_dir.join("checkpoints"), "best")?.context("the run folder has no best checkpoint")?;
    Ok(post_model(cfg, &shapes, prepared.labels.len(), device)?.try_load_record(best.model).context("the best checkpoint does not match config.toml")?.valid())
}
