//! Robustness evaluation (`mmfuse evaluate --robustness`): a trained run's best checkpoint
//! scored again on its test (or dev) split with each modality removed, and under corruptions of
//! the image and of the text at three severities ([`mmfuse_data::corrupt`]); for MIM runs, with
//! the audio and/or the video removed and under feature noise. The report is written next to the
//! run's other results: `robustness.json`, `robustness.md` (the table) and `robustness.png`
//! (the main metric against severity, one line per corruption, flat lines for the removed
//! modalities).
//!
//! A removed modality is absent in the model's sense (see `mmfuse_models::batch`): each method
//! hides it from fusion. A run trained with `data.missing_image = "reference_placeholder"`
//! instead gets the grey picture for a removed image and takes it for a real one, as the
//! reference code does: the comparison the README's Twitter-2015 table makes.

use crate::aligned::{AlignedData, evaluate_aligned_with, load_best_mim, prepare_aligned, prepare_aligned_with};
use crate::batches::Example;
use crate::config::{RunConfig, TaskFamily};
use crate::evaluate::evaluate_with;
use crate::run::{Prepared, image_loader, load_best, prepare, prepare_with};
use anyhow::Result;
use burn::tensor::Device;
use mmfuse_data::aligned::{AlignedDataset, AlignedSplit};
use mmfuse_data::corrupt::{ImageCorruption, SEVERITIES, TextCorruption, feature_noise, feature_std, sample_seed};
use mmfuse_data::fsutil::write_atomic;
use mmfuse_data::image::{Alteration, ImageLoader};
use mmfuse_metrics::plot::{CurvePoint, plot_lines};
use mmfuse_models::fusion::Modality;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// File names of the report inside the run folder.
pub const JSON_FILE: &str = "robustness.json";
pub const MARKDOWN_FILE: &str = "robustness.md";
pub const PLOT_FILE: &str = "robustness.png";

/// Which split is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Dev,
    Test,
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "dev" => Ok(Split::Dev),
            "test" => Ok(Split::Test),
            _ => Err(format!("unknown split '{s}'; expected dev or test")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RobustnessOptions {
    pub split: Split,
    /// Only the full and the missing-modality conditions (what `mmfuse demo` prints).
    pub missing_only: bool,
    /// Seed of the corruptions' draws.
    pub seed: u64,
    /// Corpus folder (default: the run's `data.dir`).
    pub data_dir: Option<PathBuf>,
}

impl Default for RobustnessOptions {
    fn default() -> Self {
        Self { split: Split::Test, missing_only: false, seed: 0, data_dir: None }
    }
}

/// One condition of the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Condition {
    /// `full`, `absent` (a modality removed), `image`, `text` or `features` (a corruption).
    pub kind: &'static str,
    /// What is removed (`image`, `text`, `audio`, `video`, `audio+video`) or the corruption.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    /// The corruption's parameter at this severity, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
}

impl Condition {
    fn full() -> Self {
        Condition { kind: "full", name: "all modalities".into(), severity: None, setting: None }
    }

    fn absent(what: &str) -> Self {
        Condition { kind: "absent", name: what.into(), severity: None, setting: None }
    }

    fn corrupted(kind: &'static str, name: &str, severity: u8, setting: String) -> Self {
        Condition { kind, name: name.into(), severity: Some(severity), setting: Some(setting) }
    }

    /// The condition as a table cell, e.g. `image absent`, `image: blur`.
    pub fn label(&self) -> String {
        match self.kind {
            "full" => "full".into(),
            "absent" => format!("{} absent", self.name),
            kind => format!("{kind}: {}", self.name.replace('_', " ")),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RobustnessRow {
    #[serde(flatten)]
    pub condition: Condition,
    pub scores: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RobustnessReport {
    pub run: PathBuf,
    pub method: String,
    pub modality: String,
    pub task: String,
    pub split: Split,
    pub samples: usize,
    /// The main metric (the table's first score column, the plot's y axis).
    pub metric: String,
    pub lower_is_better: bool,
    /// The other metrics the table shows.
    pub also: Vec<String>,
    /// How the run treats a missing image: `absent`, `reference_placeholder` or `error`.
    pub missing_image: String,
    pub seed: u64,
    pub rows: Vec<RobustnessRow>,
    pub seconds: f64,
}

/// Score the run in `run_dir` under every condition that applies to it (see the module doc).
pub fn robustness(run_dir: &Path, device: &Device, opts: &RobustnessOptions) -> Result<RobustnessReport> {
    let start = Instant::now();
    let mut cfg = RunConfig::load(&run_dir.join("config.toml"), &[])?;
    if let Some(d) = &opts.data_dir {
        cfg.data.dir = d.clone();
    }
    let (rows, samples) =
        if cfg.data.task == TaskFamily::Regression { aligned_rows(run_dir, &cfg, device, opts)? } else { post_rows(run_dir, &cfg, device, opts)? };
    let (metric, also): (&str, &[&str]) = match cfg.data.task {
        TaskFamily::Ner => ("f1", &["precision", "recall"]),
        TaskFamily::Classify => ("accuracy", &["macro_f1", "log_loss"]),
        TaskFamily::Regression => ("mae", &["acc2_non0", "corr"]),
    };
    Ok(RobustnessReport {
        run: run_dir.to_path_buf(),
        method: cfg.model.method_name().into(),
        modality: format!("{:?}", cfg.model.modality).to_lowercase(),
        task: cfg.data.task.name().into(),
        split: opts.split,
        samples,
        metric: metric.into(),
        lower_is_better: metric == "mae",
        also: also.iter().map(|s| s.to_string()).collect(),
        missing_image: cfg.data.missing_image.name().into(),
        seed: opts.seed,
        rows,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn pick<T>(split: Split, dev: T, test: T) -> T {
    match split {
        Split::Dev => dev,
        Split::Test => test,
    }
}

/// Text + image posts (concat, MuSE, CLFA).
fn post_rows(run_dir: &Path, cfg: &RunConfig, device: &Device, opts: &RobustnessOptions) -> Result<(Vec<RobustnessRow>, usize)> {
    let tok = run_dir.join("tokenizer.json");
    let base = prepare(cfg, Some(&tok))?;
    let model = load_best(run_dir, cfg, &base, device)?;
    let labels = base.labels.clone();
    let split = |p: Prepared| Arc::new(pick(opts.split, p.dev, p.test));
    let examples = split(base);
    let bs = cfg.train.batch_size * 2;
    let (spec, policy) = (cfg.data.image_spec(), cfg.data.missing_image);
    let eval = |ex: Arc<Vec<Example>>, loader: ImageLoader, text_absent: bool| -> Result<BTreeMap<String, f64>> {
        Ok(evaluate_with(&model, ex, Arc::new(loader), bs, device, &labels, text_absent)?.scores)
    };
    let reads_images = cfg.model.reads_images();
    let reads_text = cfg.model.modality != Modality::Image;
    let mut rows = vec![RobustnessRow { condition: Condition::full(), scores: eval(examples.clone(), image_loader(cfg), false)? }];
    if reads_images && reads_text {
        let loader = ImageLoader::altered(spec.clone(), policy, Alteration::Absent);
        rows.push(RobustnessRow { condition: Condition::absent("image"), scores: eval(examples.clone(), loader, false)? });
        if cfg.data.task == TaskFamily::Classify {
            rows.push(RobustnessRow { condition: Condition::absent("text"), scores: eval(examples.clone(), image_loader(cfg), true)? });
        }
    }
    if opts.missing_only {
        return Ok((rows, examples.len()));
    }
    if reads_images {
        for make in ImageCorruption::ALL {
            for s in SEVERITIES {
                let c = make(s);
                tracing::info!("robustness: image {} at severity {s}", c.name());
                let loader = ImageLoader::altered(spec.clone(), policy, Alteration::Corrupt(c, opts.seed));
                rows.push(RobustnessRow {
                    condition: Condition::corrupted("image", c.name(), s, c.describe()),
                    scores: eval(examples.clone(), loader, false)?,
                });
            }
        }
    }
    if reads_text {
        for make in TextCorruption::ALL {
            for s in SEVERITIES {
                let c = make(s);
                tracing::info!("robustness: text {} at severity {s}", c.name());
                let ex = split(prepare_with(cfg, Some(&tok), Some((c, opts.seed)))?);
                rows.push(RobustnessRow { condition: Condition::corrupted("text", c.name(), s, c.describe()), scores: eval(ex, image_loader(cfg), false)? });
            }
        }
    }
    Ok((rows, examples.len()))
}

/// MIM segments: text, audio, video.
fn aligned_rows(run_dir: &Path, cfg: &RunConfig, device: &Device, opts: &RobustnessOptions) -> Result<(Vec<RobustnessRow>, usize)> {
    let tok = run_dir.join("tokenizer.json");
    let data = prepare_aligned(cfg, Some(&tok))?;
    let model = load_best_mim(run_dir, cfg, &data, device)?;
    let bs = cfg.train.batch_size * 2;
    let eval = |d: &AlignedData, absent: (bool, bool)| evaluate_aligned_with(&model, pick(opts.split, &d.dev, &d.test), d, bs, device, absent).scores;
    let mut rows = vec![RobustnessRow { condition: Condition::full(), scores: eval(&data, (false, false)) }];
    for (what, absent) in [("audio", (true, false)), ("video", (false, true)), ("audio+video", (true, true))] {
        rows.push(RobustnessRow { condition: Condition::absent(what), scores: eval(&data, absent) });
    }
    let samples = pick(opts.split, &data.dev, &data.test).len();
    if opts.missing_only {
        return Ok((rows, samples));
    }
    for s in SEVERITIES {
        let noisy = prepare_aligned_with(cfg, Some(&tok), &|ds| {
            let split = scored(ds, opts.split);
            let all_audio: Vec<f32> = split.samples.iter().flat_map(|x| x.audio.iter().copied()).collect();
            let all_video: Vec<f32> = split.samples.iter().flat_map(|x| x.video.iter().copied()).collect();
            let (sa, sv) = (feature_std(&all_audio, split.audio_dim), feature_std(&all_video, split.video_dim));
            for x in split.samples.iter_mut() {
                feature_noise(&mut x.audio, split.audio_dim, &sa, s, sample_seed(&x.id, "feature_noise/audio", s, opts.seed));
                feature_noise(&mut x.video, split.video_dim, &sv, s, sample_seed(&x.id, "feature_noise/video", s, opts.seed));
            }
        })?;
        let setting = format!("σ = {} × each feature's std", [0.5, 1.0, 2.0][(s - 1) as usize]);
        rows.push(RobustnessRow { condition: Condition::corrupted("features", "gaussian_noise", s, setting), scores: eval(&noisy, (false, false)) });
    }
    if pick(opts.split, &data.dev, &data.test).is_empty() {
        return Ok((rows, samples));
    }
    for make in TextCorruption::ALL {
        for s in SEVERITIES {
            let c = make(s);
            let corrupted = prepare_aligned_with(cfg, Some(&tok), &|ds| {
                let split = scored(ds, opts.split);
                for x in split.samples.iter_mut() {
                    x.words = c.apply(&x.words, sample_seed(&x.id, c.name(), s, opts.seed));
                }
            })?;
            rows.push(RobustnessRow { condition: Condition::corrupted("text", c.name(), s, c.describe()), scores: eval(&corrupted, (false, false)) });
        }
    }
    Ok((rows, samples))
}

/// The split a robustness evaluation alters (only the scored one is).
fn scored(ds: &mut AlignedDataset, split: Split) -> &mut AlignedSplit {
    match split {
        Split::Dev => &mut ds.dev,
        Split::Test => &mut ds.test,
    }
}

/// A score as the tables show it: rates in %, MAE and log-loss as they are.
fn shown(metric: &str, v: f64) -> f64 {
    if matches!(metric, "mae" | "log_loss" | "corr") { v } else { 100.0 * v }
}

impl RobustnessReport {
    /// The main metric under a condition (NaN when it was not computed).
    pub fn score(&self, row: &RobustnessRow) -> f64 {
        row.scores.get(&self.metric).copied().unwrap_or(f64::NAN)
    }

    /// The main metric with all modalities.
    pub fn full(&self) -> f64 {
        self.rows.first().map_or(f64::NAN, |r| self.score(r))
    }

    /// The main metric with `what` removed (`image`, `text`, `audio`, …), if evaluated.
    pub fn absent(&self, what: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.condition.kind == "absent" && r.condition.name == what).map(|r| self.score(r))
    }

    /// The table in Markdown: one row per condition, the main metric, its change against the
    /// full-modality score, and the other metrics.
    pub fn markdown(&self) -> String {
        let unit = |m: &str| if matches!(m, "mae" | "log_loss" | "corr") { m.to_string() } else { format!("{m} %") };
        let mut s = format!(
            "Robustness of `{}` ({} {}, {} task): {} split, {} samples; missing images: `{}`; corruption seed {}.\n\n",
            self.run.display(),
            self.method,
            self.modality,
            self.task,
            serde_json::to_value(self.split).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            self.samples,
            self.missing_image,
            self.seed
        );
        s.push_str(&format!("| condition | severity | setting | {} | Δ |", unit(&self.metric)));
        for m in &self.also {
            s.push_str(&format!(" {} |", unit(m)));
        }
        s.push_str("\n|---|---:|---|---:|---:|");
        s.push_str(&"---:|".repeat(self.also.len()));
        s.push('\n');
        let full = shown(&self.metric, self.full());
        for r in &self.rows {
            let v = shown(&self.metric, self.score(r));
            let delta = if r.condition.kind == "full" { String::new() } else { format!("{:+.2}", v - full) };
            s.push_str(&format!(
                "| {} | {} | {} | {:.2} | {} |",
                r.condition.label(),
                r.condition.severity.map(|x| x.to_string()).unwrap_or_default(),
                r.condition.setting.clone().unwrap_or_default(),
                v,
                delta
            ));
            for m in &self.also {
                s.push_str(&format!(" {:.2} |", shown(m, r.scores.get(m).copied().unwrap_or(f64::NAN))));
            }
            s.push('\n');
        }
        s
    }

    /// Write `robustness.json`, `robustness.md` and `robustness.png` into `dir` (the run
    /// folder); the plot is skipped with a warning if it cannot be drawn.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(JSON_FILE), serde_json::to_string_pretty(self)?.as_bytes())?;
        write_atomic(&dir.join(MARKDOWN_FILE), self.markdown().as_bytes())?;
        let full = self.full();
        let mut series: BTreeMap<String, Vec<CurvePoint>> = BTreeMap::new();
        for r in &self.rows {
            let c = &r.condition;
            match (c.kind, c.severity) {
                ("absent", _) => {
                    series.insert(c.label(), vec![CurvePoint::new(0, self.score(r)), CurvePoint::new(3, self.score(r))]);
                }
                (_, Some(sev)) => series.entry(c.label()).or_insert_with(|| vec![CurvePoint::new(0, full)]).push(CurvePoint::new(sev as usize, self.score(r))),
                _ => {}
            }
        }
        let series: Vec<(String, Vec<CurvePoint>)> = series.into_iter().collect();
        let title = format!("{} {} ({}): {} under missing and corrupted modalities", self.method, self.modality, self.task, self.metric);
        if let Err(e) = plot_lines(&dir.join(PLOT_FILE), &title, "severity (0: clean; flat lines: a modality removed)", &self.metric, &series, 900) {
            tracing::warn!("could not draw {PLOT_FILE}: {e}");
        }
        Ok(())
    }
}
