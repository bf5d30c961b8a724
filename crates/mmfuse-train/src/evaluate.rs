//! Evaluation: run a model over examples and score its predictions with the metrics the
//! literature reports (entity-level P/R/F1 for NER; accuracy, macro/weighted F1 and the
//! log-loss for classification).

use crate::batches::{Example, Gold, stream_batches};
use anyhow::{Result, bail};
use burn::tensor::Device;
use mmfuse_data::image::ImageLoader;
use mmfuse_data::labels::LabelMap;
use mmfuse_kernels::device::on_compute_pool;
use mmfuse_metrics::cls::cls_scores;
use mmfuse_metrics::ner::{ChunkMode, ner_scores, ner_scores_wordpiece};
use mmfuse_models::task::{Prediction, TaskModel};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Scores of one evaluation: named numbers (for selection and `metrics.jsonl`) and a detailed
/// JSON report (per type / per class).
#[derive(Clone, Debug)]
pub struct EvalResult {
    pub scores: BTreeMap<String, f64>,
    pub detail: Value,
}

/// Predictions of `model` for every example, in order.
pub fn predict_all<M: TaskModel>(
    model: &M,
    examples: Arc<Vec<Example>>,
    loader: Arc<ImageLoader>,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Prediction>> {
    predict_all_with(model, examples, loader, batch_size, device, false)
}

/// [`predict_all`]; with `text_absent`, every post is marked as having no text (robustness
/// evaluation; images are withheld by the loader, see [`mmfuse_data::image::Alteration`]).
pub fn predict_all_with<M: TaskModel>(
    model: &M,
    examples: Arc<Vec<Example>>,
    loader: Arc<ImageLoader>,
    batch_size: usize,
    device: &Device,
    text_absent: bool,
) -> Result<Vec<Prediction>> {
    let order: Vec<usize> = (0..examples.len()).collect();
    let rx = stream_batches(examples, order, batch_size, loader, 2, !model.fixed_length());
    let mut out = Vec::new();
    for hb in rx {
        let mut hb = hb?;
        if text_absent {
            for i in 0..hb.batch_size {
                hb.mark_absent(i, false, true);
            }
        }
        let batch = hb.to_device(device);
        out.push(on_compute_pool(|| model.predict(&batch)));
    }
    Ok(out)
}

/// Word-level predicted tags of a tagging example (truncated words get `O`).
pub fn word_tags(example: &Example, positions: &[usize], tags: &LabelMap) -> Vec<String> {
    example
        .word_pos
        .iter()
        .map(|p| match p {
            Some(p) => tags.name(positions[*p]).to_string(),
            None => "O".to_string(),
        })
        .collect()
}

/// Word-piece tag sequences as the MuSE reference scores them: over the pieces that reached the
/// model, continuation pieces gold `X` (dropped by the scorer), first pieces with their word's
/// gold tag and the predicted tag at that position. Words cut by truncation are absent, as in
/// the reference, where they never enter the input.
fn piece_tags(example: &Example, words: &[String], positions: &[usize], tags: &LabelMap) -> (Vec<String>, Vec<String>) {
    let n = example.mask.iter().filter(|&&m| m).count();
    let mut gold = vec!["X".to_string(); n];
    for (w, p) in example.word_pos.iter().enumerate() {
        if let Some(p) = p {
            gold[*p] = words[w].clone();
        }
    }
    let pred = (0..n).map(|p| if gold[p] == "X" { "X".to_string() } else { tags.name(positions[p]).to_string() }).collect();
    (gold, pred)
}

fn wordpiece_detail(gold: &[Vec<String>], pred: &[Vec<String>]) -> Result<Value> {
    let s = ner_scores_wordpiece(gold, pred, ChunkMode::Strict)?;
    Ok(json!({"scheme": "MuSE reference scorer: first word pieces of the (truncated) input, entity-level strict",
              "precision": s.micro.precision, "recall": s.micro.recall, "f1": s.micro.f1,
              "gold": s.micro.support, "predicted": s.micro.predicted, "correct": s.micro.correct}))
}

/// Evaluate `model` on `examples`.
pub fn evaluate<M: TaskModel>(
    model: &M,
    examples: Arc<Vec<Example>>,
    loader: Arc<ImageLoader>,
    batch_size: usize,
    device: &Device,
    labels: &LabelMap,
) -> Result<EvalResult> {
    evaluate_with(model, examples, loader, batch_size, device, labels, false)
}

/// [`evaluate`], with every post's text withheld when `text_absent` (see [`predict_all_with`]).
pub fn evaluate_with<M: TaskModel>(
    model: &M,
    examples: Arc<Vec<Example>>,
    loader: Arc<ImageLoader>,
    batch_size: usize,
    device: &Device,
    labels: &LabelMap,
    text_absent: bool,
) -> Result<EvalResult> {
    let preds = predict_all_with(model, examples.clone(), loader, batch_size, device, text_absent)?;
    let mut gold_cls = Vec::new();
    let mut pred_cls = Vec::new();
    // classification: Σ −ln p(gold), the log-loss (probabilities floored at 1e-12)
    let mut nll = 0.0f64;
    let mut gold_tags = Vec::new();
    let mut pred_tags = Vec::new();
    let (mut wp_gold, mut wp_pred) = (Vec::new(), Vec::new());
    let mut i = 0;
    for p in preds {
        match p {
            Prediction::Classes(probs) => {
                for pr in probs {
                    let e = &examples[i];
                    i += 1;
                    let Some(Gold::Class(c)) = e.gold else { bail!("example {} has no class", e.id) };
                    nll -= (pr.get(c).copied().unwrap_or(0.0) as f64).max(1e-12).ln();
                    gold_cls.push(c);
                    pred_cls.push(argmax(&pr));
                }
            }
            Prediction::Tags(rows) => {
                for row in rows {
                    let e = &examples[i];
                    i += 1;
                    let Some(Gold::Tags { words, .. }) = &e.gold else { bail!("example {} has no tags", e.id) };
                    let (g, p) = piece_tags(e, words, &row, labels);
                    wp_gold.push(g);
                    wp_pred.push(p);
                    gold_tags.push(words.clone());
                    pred_tags.push(word_tags(e, &row, labels));
                }
            }
        }
    }
    let mut scores = BTreeMap::new();
    let detail = if !gold_tags.is_empty() {
        let s = ner_scores(&gold_tags, &pred_tags, ChunkMode::Strict)?;
        scores.insert("precision".into(), s.micro.precision);
        scores.insert("recall".into(), s.micro.recall);
        scores.insert("f1".into(), s.micro.f1);
        let per_type: serde_json::Map<String, Value> =
            s.per_type.iter().map(|(k, v)| (k.clone(), json!({"precision": v.precision, "recall": v.recall, "f1": v.f1, "support": v.support}))).collect();
        json!({"scheme": "entity-level, exact span and type, seqeval strict (IOB2), word level",
                        "micro": {"precision": s.micro.precision, "recall": s.micro.recall, "f1": s.micro.f1,
                                   "gold": s.micro.support, "predicted": s.micro.predicted, "correct": s.micro.correct},
                        "per_type": per_type,
                        "wordpiece_reference": wordpiece_detail(&wp_gold, &wp_pred)?})
    } else {
        let s = cls_scores(&gold_cls, &pred_cls, labels.len())?;
        scores.insert("accuracy".into(), s.accuracy);
        scores.insert("macro_f1".into(), s.macro_f1);
        scores.insert("weighted_f1".into(), s.weighted_f1);
        let log_loss = nll / gold_cls.len().max(1) as f64;
        scores.insert("log_loss".into(), log_loss);
        let per_class: serde_json::Map<String, Value> = s
            .per_class
            .iter()
            .enumerate()
            .map(|(k, v)| (labels.name(k).to_string(), json!({"precision": v.precision, "recall": v.recall, "f1": v.f1, "support": v.support})))
            .collect();
        json!({"accuracy": s.accuracy, "macro_precision": s.macro_p, "macro_recall": s.macro_r,
                "macro_f1": s.macro_f1, "weighted_f1": s.weighted_f1, "log_loss": log_loss, "per_class": per_class,
                "confusion": s.confusion})
    };
    Ok(EvalResult { scores, detail })
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
