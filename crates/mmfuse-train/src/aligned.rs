//! MIM runs on word-aligned text / audio / video features (CMU-MOSI/MOSEI, `data.task =
//! "regression"`): the dataset → fixed-length rows (MAG-BERT's word-piece expansion), the
//! two-step update ([`MimTwoStep`]: UPN step, then a fresh forward for the all-parameter step)
//! as a strategy of the one training loop ([`crate::trainer::train_loop`]), dev evaluation with
//! the MOSI metrics (lower MAE is better) and `results.json`.

use crate::checkpoint::{self, TrainState};
use crate::config::RunConfig;
use crate::evaluate::EvalResult;
use crate::optim::{WarmupLinear, adamw, clip_global_norm, restore_optimizer};
use crate::run_folder::{RunSummary, pretrained_text_config, write_curves};
use crate::trainer::{StepLog, TrainOptions, UpdateStrategy, schedule_len, train_loop, warmup_steps};
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Bytes, Device};
use mmfuse_data::aligned::{AlignedDataset, AlignedSample, AlignedSplit, expand_wordpieces, read_any};
use mmfuse_data::text::{TextTokenizer, train_word_tokenizer};
use mmfuse_kernels::device::on_compute_pool;
use mmfuse_metrics::regression::{RegScores, reg_scores};
use mmfuse_models::batch::AlignedHostBatch;
use mmfuse_models::encoders::{BertConfig, TextEncoder as TextModel};
use mmfuse_models::fusion::mim::Mim;
pub use mmfuse_models::package::FEATURES_FILE;
use mmfuse_models::package::{ModelShapes, TEXT_ENCODER_FILE, saved_text_config};
use mmfuse_models::registry::{self, Model, text_encoder_config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// One segment as the model reads it: `L` positions (`[CLS]` first).
#[derive(Clone, Debug)]
pub struct AlignedRow {
    pub ids: Vec<u32>,
    pub mask: Vec<bool>,
    /// `[L × A]`, `[L × V]`, zero rows at `[CLS]`, `[SEP]` and padding.
    pub audio: Vec<f32>,
    pub video: Vec<f32>,
    pub label: f32,
    /// Synthetic data: which positions carry injected noise (audio, video), expanded like the
    /// features.
    pub noisy: Option<(Vec<bool>, Vec<bool>)>,
}

/// A prepared dataset.
pub struct AlignedData {
    /// Shared with the loop's batch iterator.
    pub train: std::sync::Arc<Vec<AlignedRow>>,
    pub dev: Vec<AlignedRow>,
    pub test: Vec<AlignedRow>,
    pub audio_dim: usize,
    pub video_dim: usize,
    pub max_len: usize,
    pub encoder: TextTokenizer,
    pub report: Value,
}

/// Expand one sample's features (and its ground-truth noise flags) to fixed-length rows.
fn row(s: &AlignedSample, enc: &TextTokenizer, da: usize, dv: usize) -> AlignedRow {
    let r = expand_wordpieces(s, enc, da, dv);
    let noisy = s.noisy.as_ref().map(|(na, nv)| {
        // the flags ride through the same expansion as a one-column feature
        let flags = |f: &[bool]| -> Vec<bool> {
            let mut t = s.clone();
            t.audio = f.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
            t.video = vec![0.0; s.steps];
            expand_wordpieces(&t, enc, 1, 1).audio.iter().map(|v| *v > 0.5).collect()
        };
        (flags(na), flags(nv))
    });
    AlignedRow { ids: r.ids, mask: r.mask, audio: r.audio, video: r.video, label: s.label, noisy }
}

fn rows(split: &AlignedSplit, enc: &TextTokenizer) -> Vec<AlignedRow> {
    split.samples.iter().map(|s| row(s, enc, split.audio_dim, split.video_dim)).collect()
}

/// Read `data.dir` (a `.pkl` or an aligned folder) and expand every split with the run's
/// tokenizer: `tokenizer` (a pretrained `tokenizer.json`), else a word-level vocabulary built
/// from the train split.
pub fn prepare_aligned(cfg: &RunConfig, tokenizer: Option<&Path>) -> Result<AlignedData> {
    prepare_aligned_with(cfg, tokenizer, &|_| {})
}

/// [`prepare_aligned`] with `alter` applied to the dataset as read (robustness evaluation: noisy
/// features, corrupted words), before the word-piece expansion.
pub fn prepare_aligned_with(cfg: &RunConfig, tokenizer: Option<&Path>, alter: &dyn Fn(&mut AlignedDataset)) -> Result<AlignedData> {
    let d = &cfg.data;
    let mut ds: AlignedDataset = read_any(&d.dir).with_context(|| format!("reading data.dir = {}", d.dir.display()))?;
    alter(&mut ds);
    if ds.train.samples.is_empty() {
        bail!("{}: the train split is empty", d.dir.display());
    }
    let (da, dv) = (ds.train.audio_dim, ds.train.video_dim);
    for (name, s) in [("dev", &ds.dev), ("test", &ds.test)] {
        if !s.samples.is_empty() && (s.audio_dim, s.video_dim) != (da, dv) {
            bail!("{}: the {name} split has {}-d audio / {}-d video features, the train split {da} / {dv}", d.dir.display(), s.audio_dim, s.video_dim);
        }
    }
    let encoder = match tokenizer {
        Some(t) => TextTokenizer::from_file(t, d.max_len, true)?,
        None => {
            let texts = ds.train.samples.iter().map(|s| s.words.join(" "));
            TextTokenizer::new(train_word_tokenizer(texts, d.min_word_count, true)?, d.max_len, true)
        }
    };
    let truncated = |rs: &[AlignedRow], split: &AlignedSplit| {
        rs.iter().zip(&split.samples).filter(|(r, s)| r.mask.iter().filter(|m| **m).count() < s.steps.min(d.max_len)).count()
    };
    let (train, dev, test) = (rows(&ds.train, &encoder), rows(&ds.dev, &encoder), rows(&ds.test, &encoder));
    let report = json!({
        "train": {"samples": train.len(), "truncated": truncated(&train, &ds.train)},
        "dev": {"samples": dev.len(), "truncated": truncated(&dev, &ds.dev)},
        "test": {"samples": test.len(), "truncated": truncated(&test, &ds.test)},
        "audio_dim": da,
        "video_dim": dv,
    });
    Ok(AlignedData { train: std::sync::Arc::new(train), dev, test, audio_dim: da, video_dim: dv, max_len: d.max_len, encoder, report })
}

/// Stack rows into a host batch.
pub fn host_batch(rows: &[&AlignedRow], max_len: usize, da: usize, dv: usize, labels: bool) -> AlignedHostBatch {
    let mut hb = AlignedHostBatch { batch_size: rows.len(), seq_len: max_len, audio_dim: da, video_dim: dv, ..Default::default() };
    for r in rows {
        hb.ids.extend(r.ids.iter().map(|&i| i as i64));
        hb.mask.extend(&r.mask);
        hb.audio.extend(&r.audio);
        hb.video.extend(&r.video);
    }
    if labels {
        hb.labels = Some(rows.iter().map(|r| r.label).collect());
    }
    hb
}

/// Predictions for `rows` in order and, with a UPN, each row's keep masks (text, audio, video),
/// from one forward per batch; `absent` (audio, video) withholds that modality from every row.
fn infer(model: &Mim, rows: &[AlignedRow], data: &AlignedData, batch_size: usize, device: &Device, absent: (bool, bool)) -> (Vec<f32>, Vec<[Vec<bool>; 3]>) {
    let (max_len, da, dv) = (data.max_len, data.audio_dim, data.video_dim);
    let (mut pred, mut masks) = (Vec::with_capacity(rows.len()), Vec::new());
    for chunk in rows.chunks(batch_size.max(1)) {
        let refs: Vec<&AlignedRow> = chunk.iter().collect();
        let mut hb = host_batch(&refs, max_len, da, dv, false);
        for i in 0..hb.batch_size {
            hb.mark_absent(i, absent.0, absent.1);
        }
        let (y, m) = on_compute_pool(|| model.predict_with_masks(&hb.to_device(device)));
        pred.extend(y);
        if let Some([t, a, v]) = m {
            masks.extend(t.into_iter().zip(a).zip(v).map(|((t, a), v)| [t, a, v]));
        }
    }
    (pred, masks)
}

/// How well the gates find the injected noise (synthetic data): over the real steps of the
/// samples that have noise in a modality, precision and recall of "dropped" against "noisy",
/// and the share of clean steps kept.
/// `masks`: each row's keep masks (empty without a UPN).
fn mask_quality(rows: &[AlignedRow], masks: &[[Vec<bool>; 3]]) -> Option<Value> {
    if masks.len() != rows.len() || rows.iter().all(|r| r.noisy.is_none()) {
        return None;
    }
    // [modality][tp, fp, fn, clean kept, clean]
    let mut c = [[0usize; 5]; 2];
    for (r, row_masks) in rows.iter().zip(masks) {
        let Some((na, nv)) = &r.noisy else { continue };
        for (m, noisy) in [(0, na), (1, nv)] {
            if !noisy.iter().any(|x| *x) {
                continue;
            }
            let keep = &row_masks[m + 1];
            for (t, &kept) in keep.iter().enumerate() {
                let p = t + 1; // gate step t is position t + 1 ([CLS] dropped)
                if !r.mask[p] {
                    continue;
                }
                let dropped = !kept;
                match (dropped, noisy[p]) {
                    (true, true) => c[m][0] += 1,
                    (true, false) => c[m][1] += 1,
                    (false, true) => c[m][2] += 1,
                    (false, false) => {}
                }
                if !noisy[p] {
                    c[m][4] += 1;
                    c[m][3] += !dropped as usize;
                }
            }
        }
    }
    let q = |k: [usize; 5]| {
        let r = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        json!({"precision": r(k[0], k[0] + k[1]), "recall": r(k[0], k[0] + k[2]), "clean_kept": r(k[3], k[4]), "noisy_steps": k[0] + k[2]})
    };
    Some(json!({"audio": q(c[0]), "video": q(c[1])}))
}

fn scores_map(s: &RegScores) -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("mae".into(), s.mae),
        ("corr".into(), s.pearson),
        ("corr_non0".into(), s.pearson_non0),
        ("acc7".into(), s.acc7),
        ("acc5".into(), s.acc5),
        ("acc2_has0".into(), s.acc2_has0),
        ("f1_has0".into(), s.f1_has0),
        ("acc2_non0".into(), s.acc2_non0),
        ("f1_non0".into(), s.f1_non0),
    ])
}

/// Score `model` on `rows`: the MOSI metrics, each convention named, and the gates' mask
/// quality on synthetic data.
pub fn evaluate_aligned(model: &Mim, rows: &[AlignedRow], data: &AlignedData, batch_size: usize, device: &Device) -> EvalResult {
    evaluate_aligned_with(model, rows, data, batch_size, device, (false, false))
}

/// [`evaluate_aligned`] with the audio and/or the video of every segment withheld (`absent`).
pub fn evaluate_aligned_with(model: &Mim, rows: &[AlignedRow], data: &AlignedData, batch_size: usize, device: &Device, absent: (bool, bool)) -> EvalResult {
    let (pred, masks) = infer(model, rows, data, batch_size, device, absent);
    let gold: Vec<f32> = rows.iter().map(|r| r.label).collect();
    let s = reg_scores(&gold, &pred);
    let mut detail = json!({
        "n": s.n,
        "n_non0": s.n_non0,
        "mae": s.mae,
        "corr": s.pearson,
        "corr_non0": s.pearson_non0,
        "acc7": s.acc7,
        "acc5": s.acc5,
        "acc2_has0": s.acc2_has0,
        "f1_has0": s.f1_has0,
        "acc2_non0": s.acc2_non0,
        "f1_non0": s.f1_non0,
        "conventions": {
            "mae": "mean |pred − gold| over all samples",
            "corr": "Pearson r over all samples (MMSA)",
            "corr_non0": "Pearson r over samples with gold != 0 (MIM's code)",
            "acc7": "clip to [-3, 3], round half to even, exact match",
            "acc5": "clip to [-2, 2], round half to even, exact match",
            "acc2_has0": "negative (< 0) vs non-negative (>= 0), all samples; f1_has0 is sklearn's weighted F1",
            "acc2_non0": "negative vs positive (pred > 0), samples with gold != 0; f1_non0 is sklearn's weighted F1"
        }
    });
    if let Some(q) = mask_quality(rows, &masks) {
        detail["purification"] = q;
    }
    // synthetic data: the error on the segments with a noisy span and on the clean ones
    if rows.iter().any(|r| r.noisy.is_some()) {
        let has_noise = |r: &AlignedRow| r.noisy.as_ref().is_some_and(|(a, v)| a.iter().chain(v).any(|x| *x));
        let mae = |noisy: bool| {
            let e: Vec<f64> = rows.iter().zip(&pred).filter(|(r, _)| has_noise(r) == noisy).map(|(r, p)| (*p as f64 - r.label as f64).abs()).collect();
            (if e.is_empty() { 0.0 } else { e.iter().sum::<f64>() / e.len() as f64 }, e.len())
        };
        let ((mn, nn), (mc, nc)) = (mae(true), mae(false));
        detail["synthetic"] = json!({"mae_noisy": mn, "n_noisy": nn, "mae_clean": mc, "n_clean": nc});
    }
    EvalResult { scores: scores_map(&s), detail }
}

/// MIM's update (paper §3.4), a strategy of the one training loop: step 1 moves the
/// purification networks (UPN) on 0.1·L0 + Σ L^p, step 2 runs a fresh forward and moves every
/// parameter on Σ L^u + L_inter + L_intra + L1(ŷ, y). Each step has its own AdamW state (the
/// UPN's is checkpointed as `optimizer_upn.bpk`); both follow one warm-up/decay schedule.
pub struct MimTwoStep<'a> {
    cfg: &'a RunConfig,
    data: &'a AlignedData,
    optim: ModuleOptimizer,
    optim_upn: ModuleOptimizer,
    sched: WarmupLinear,
    device: Device,
    eval_device: Device,
}

impl<'a> MimTwoStep<'a> {
    /// The update of `cfg` over `data` on the autodiff `device`.
    pub fn new(cfg: &'a RunConfig, data: &'a AlignedData, device: &Device) -> Result<Self> {
        let t = &cfg.train;
        if t.devices.len() > 1 {
            bail!("train.devices (data parallelism) is not implemented for MIM's two-step update: train on one device (train.device)");
        }
        let (total, _) = schedule_len(t, data.train.len());
        Ok(Self {
            cfg,
            data,
            optim: adamw(t.weight_decay, t.adam_eps),
            optim_upn: adamw(t.weight_decay, t.adam_eps),
            sched: WarmupLinear::new(t.lr, warmup_steps(t, total), total),
            device: device.clone(),
            eval_device: device.clone().without_autodiff(),
        })
    }
}

impl UpdateStrategy for MimTwoStep<'_> {
    type Model = Mim;
    type Batch = AlignedHostBatch;

    fn n_train(&self) -> usize {
        self.data.train.len()
    }

    fn batches(&self, _model: &Mim, order: Vec<usize>) -> Box<dyn Iterator<Item = Result<AlignedHostBatch>>> {
        let (rows, bs) = (self.data.train.clone(), self.cfg.train.batch_size);
        let (l, da, dv) = (self.data.max_len, self.data.audio_dim, self.data.video_dim);
        Box::new((0..order.len().div_ceil(bs)).map(move |k| {
            let refs: Vec<&AlignedRow> = order[k * bs..((k + 1) * bs).min(order.len())].iter().map(|&i| &rows[i]).collect();
            Ok(host_batch(&refs, l, da, dv, true))
        }))
    }

    fn update(&mut self, model: Mim, mut batch: AlignedHostBatch, step: usize) -> Result<(Mim, StepLog)> {
        let clip = self.cfg.train.clip_norm;
        crate::batches::apply_aligned_modality_dropout(&mut batch, self.cfg.train.modality_dropout, self.cfg.train.seed, step);
        let batch = batch.to_device(&self.device);
        let lr = self.sched.at(step);
        let mut model = model;
        // step 1: the purification networks on 0.1·L0 + Σ L^p
        let mut upn_loss = 0.0;
        if model.upn.is_some() {
            let optim_upn = &mut self.optim_upn;
            let (v, next) = on_compute_pool(|| {
                let l = model.upn_loss(&batch).expect("UPN on");
                let v = l.clone().into_scalar::<f32>() as f64;
                if !v.is_finite() {
                    return (v, model);
                }
                let mut g = l.backward();
                let upn = model.upn.as_ref().expect("UPN on");
                let mut grads = GradientsParams::from_module(&mut g, upn);
                clip_global_norm(upn, &mut grads, clip);
                (v, optim_upn.step(lr, model, grads))
            });
            model = next;
            upn_loss = v;
            if !upn_loss.is_finite() {
                return Ok((
                    model,
                    StepLog { values: vec![("loss", f64::NAN), ("upn_loss", v)], grad_norm: 0.0, lr, non_finite: Some(("purification loss", v)) },
                ));
            }
        }
        // step 2: a fresh forward, all parameters on Σ L^u + L_inter + L_intra + L1(ŷ, y)
        let optim = &mut self.optim;
        let (loss_v, task_loss, norm, next) = on_compute_pool(|| {
            let losses = model.losses(&batch);
            let loss_v = losses.main.clone().into_scalar::<f32>() as f64;
            if !loss_v.is_finite() {
                return (loss_v, losses.task, 0.0, model);
            }
            let mut grads = GradientsParams::from_grads(losses.main.backward(), &model);
            let norm = clip_global_norm(&model, &mut grads, clip);
            (loss_v, losses.task, norm, optim.step(lr, model, grads))
        });
        let non_finite = (!loss_v.is_finite()).then_some(("loss", loss_v));
        Ok((next, StepLog { values: vec![("loss", task_loss), ("upn_loss", upn_loss)], grad_norm: norm, lr, non_finite }))
    }

    fn evaluate(&self, model: &Mim) -> Result<EvalResult> {
        Ok(evaluate_aligned(&model.valid(), &self.data.dev, self.data, self.cfg.train.batch_size * 2, &self.eval_device))
    }

    fn save_last(&self, root: &Path, model: &Mim, state: &TrainState) -> Result<()> {
        checkpoint::save_with(root, "last", model, Some(&self.optim), &[("optimizer_upn", &self.optim_upn)], state)
    }

    fn restore(&mut self, optimizer: Option<Bytes>, dir: &Path, _step: usize) -> Result<()> {
        if let Some(b) = optimizer {
            restore_optimizer(&mut self.optim, b, "optimizer")?;
        }
        if let Some(b) = checkpoint::load_extra(dir, "optimizer_upn")? {
            restore_optimizer(&mut self.optim_upn, b, "UPN optimizer")?;
        }
        Ok(())
    }
}

/// The MIM model a config describes (fresh weights) over `vocab_size` words or a pretrained
/// text encoder's config, and the feature sizes ([`mmfuse_models::registry::build`]).
pub fn build_mim(cfg: &RunConfig, vocab_size: usize, bert: Option<&BertConfig>, da: usize, dv: usize, device: &Device) -> Result<Mim> {
    let shapes = ModelShapes {
        text: text_encoder_config(&cfg.model, &cfg.data, vocab_size, bert),
        image: None,
        caption_vocab: 0,
        teacher_dim: 0,
        features: Some((da, dv)),
    };
    match registry::build(&cfg.model, &cfg.data, &shapes, 0, device).map_err(anyhow::Error::msg)? {
        Model::Aligned(m) => Ok(m),
        Model::Posts(_) => bail!("data.task = \"regression\" needs model.method = \"mim\""),
    }
}

/// Train (or resume) a MIM run, then score its best-dev checkpoint on dev and test.
pub fn run_mim(cfg: &RunConfig, run_dir: &Path, opts: &TrainOptions) -> Result<RunSummary> {
    let start = Instant::now();
    let tok_path = run_dir.join("tokenizer.json");
    let pretrained = pretrained_text_config(cfg)?;
    let tokenizer = match (&pretrained, opts.resume && tok_path.exists()) {
        (_, true) => Some(tok_path.clone()),
        (Some((dir, _)), false) => Some(dir.join("tokenizer.json")),
        (None, false) => None,
    };
    let data = prepare_aligned(cfg, tokenizer.as_deref())?;
    data.encoder.save(&tok_path)?;
    let bert = pretrained.as_ref().map(|(_, b)| b.clone());
    if let Some(b) = &bert {
        checkpoint::write_atomic(&run_dir.join(TEXT_ENCODER_FILE), serde_json::to_string_pretty(b)?.as_bytes())?;
    }
    checkpoint::write_atomic(&run_dir.join(FEATURES_FILE), json!({"audio_dim": data.audio_dim, "video_dim": data.video_dim}).to_string().as_bytes())?;
    let device = cfg.train.device.device().map_err(anyhow::Error::msg)?;
    device.seed(cfg.train.seed);
    let train_device = device.clone().autodiff();
    let mut model = build_mim(cfg, data.encoder.vocab_size(), bert.as_ref(), data.audio_dim, data.video_dim, &train_device)?;
    if let Some((dir, _)) = &pretrained {
        let (text, _) = TextModel::load_bert(dir, &train_device).with_context(|| format!("loading model.text_encoder = {}", dir.display()))?;
        model.text.encoder = text;
        tracing::info!("text encoder: pretrained BERT from {}", dir.display());
    }
    tracing::info!(
        params = model.num_params(),
        train = data.train.len(),
        dev = data.dev.len(),
        test = data.test.len(),
        "training mim (purification {}, guidance {}) on {}",
        cfg.model.mim().is_some_and(|m| m.purification),
        cfg.model.mim().is_some_and(|m| m.guidance),
        cfg.train.device
    );
    let (model, fit) = train_loop(MimTwoStep::new(cfg, &data, &train_device)?, model, cfg, run_dir, opts, &train_device)?;
    if fit.interrupted {
        return Ok(RunSummary { run_dir: run_dir.into(), fit, dev: None, test: None, seconds: start.elapsed().as_secs_f64() });
    }
    let best = checkpoint::load(&run_dir.join("checkpoints"), "best")?.context("no best checkpoint was written")?;
    let model = model.valid().try_load_record(best.model)?;
    let bs = cfg.train.batch_size * 2;
    let dev = evaluate_aligned(&model, &data.dev, &data, bs, &device);
    let test = evaluate_aligned(&model, &data.test, &data, bs, &device);
    let seconds = start.elapsed().as_secs_f64();
    let results = json!({
        "best_step": fit.best_step,
        "steps": fit.steps,
        "early_stopped": fit.early_stopped,
        "select_metric": cfg.select_metric(),
        "dev": dev.detail,
        "test": test.detail,
        "data": data.report,
        "seconds": seconds,
    });
    checkpoint::write_atomic(&run_dir.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
    if let Err(e) = write_curves(run_dir, &cfg.select_metric()) {
        tracing::warn!("could not draw curves.png: {e:#}");
    }
    Ok(RunSummary { run_dir: run_dir.into(), fit, dev: Some(dev), test: Some(test), seconds })
}

/// Score a MIM run folder's best checkpoint on dev and test of `cfg.data.dir`.
pub fn rescore_mim(run_dir: &Path, cfg: &RunConfig, device: &Device) -> Result<(EvalResult, EvalResult)> {
    let data = prepare_aligned(cfg, Some(&run_dir.join("tokenizer.json")))?;
    let model = load_best_mim(run_dir, cfg, &data, device)?;
    let bs = cfg.train.batch_size * 2;
    Ok((evaluate_aligned(&model, &data.dev, &data, bs, device), evaluate_aligned(&model, &data.test, &data, bs, device)))
}

/// A MIM run folder's model with its best checkpoint's weights.
pub fn load_best_mim(run_dir: &Path, cfg: &RunConfig, data: &AlignedData, device: &Device) -> Result<Mim> {
    let bert = saved_text_config(run_dir)?;
    let best = checkpoint::load(&run_dir.join("checkpoints"), "best")?.context("the run folder has no best checkpoint")?;
    build_mim(cfg, data.encoder.vocab_size(), bert.as_ref(), data.audio_dim, data.video_dim, device)?
        .try_load_record(best.model)
        .context("the best checkpoint does not match config.toml")
}
