//! Word-aligned text / audio / video features for multimodal sentiment regression (CMU-MOSI,
//! CMU-MOSEI; MIM, MAG-BERT): the in-memory samples, readers of the two common pickle layouts
//! (MAG-BERT's `mosi.pkl` / `mosei.pkl`, the MMSA toolkit's `aligned_50.pkl`), our own directory
//! layout (read and written), and MAG-BERT's word-piece expansion to fixed-length rows.
//!
//! # Sources
//!
//! - **MAG-BERT** ([`read_mag_bert`]): a dict `train` / `dev` / `test`, each a list of
//!   `((words, visual [n_words × V], acoustic [n_words × A]), label, segment)`. Words are a list
//!   of str or a numpy `<U` / object array; the label is a float, a numpy scalar or a one-element
//!   array (`[[x]]`). Row k of the features belongs to word k.
//! - **MMSA** ([`read_mmsa`]): a dict `train` / `valid` / `test` (`valid` becomes dev), each a dict
//!   of arrays: `text_bert` [N, 3, L] (ids, mask, segment ids; may be float), `audio` [N, L, A],
//!   `vision` `[N, L, V]`, `regression_labels` `[N]`, `id`, optional `raw_text`. The mask gives the
//!   unpadded length `len` (it includes `[CLS]`/`[SEP]`); `token_ids` are the first `len` ids and
//!   the features the first `len` rows (row k belongs to token position k). Unaligned feature
//!   files (audio / vision longer or shorter than the text) are refused with a clear error: this
//!   layout needs one time axis shared by text, audio and video.
//!
//! Non-finite feature values (NaN, ±inf: MOSEI's COVAREP has some) become 0 and are counted
//! ([`ReadReport`], and a `tracing` warning). MAG-BERT's users call `np.nan_to_num`, which maps
//! NaN to 0 but ±inf to ±max-float; 0 is used here for all three, so that no feature explodes.
//!
//! # Our directory layout ([`read_dir`], [`write_dir`])
//!
//! ```text
//! dir/{train,dev,test}.jsonl        one line per sample, in order:
//!     {"id": str, "words": [str], "token_ids": [u32] (optional), "label": f64, "steps": usize,
//!      "noisy": true (optional: the sample has ground-truth noisy steps)}
//! dir/{train,dev,test}.safetensors  the features of all samples of the split concatenated in
//!                                   line order (sample i owns `steps_i` consecutive rows):
//!     audio        F32 [total_steps, A]
//!     video        F32 [total_steps, V]
//!     noisy_audio  U8  [total_steps]   (only when some sample has "noisy": 1 = noisy step)
//!     noisy_video  U8  [total_steps]
//! ```
//!
//! The `.safetensors` files are written and read with the `safetensors` crate (readable from
//! Python with `safetensors.numpy.load_file`).
//! Each file is written to a temporary name and renamed into place.

use crate::error::{DataError, Result};
use crate::pickle::{self, NdArray, Value};
use crate::text::TextTokenizer;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::path::Path;

/// One segment (utterance) with word-aligned features.
#[derive(Clone, Debug, PartialEq)]
pub struct AlignedSample {
    /// Segment id.
    pub id: String,
    /// The words (empty when only token ids are known).
    pub words: Vec<String>,
    /// Pre-tokenised BERT ids incl. `[CLS]`/`[SEP]`, unpadded (MMSA `text_bert`).
    pub token_ids: Option<Vec<u32>>,
    /// Rows of audio / video.
    pub steps: usize,
    /// `[steps × audio_dim]`, row k aligned with word k (MAG-BERT) or token position k (MMSA).
    pub audio: Vec<f32>,
    /// `[steps × video_dim]`.
    pub video: Vec<f32>,
    /// Sentiment in [-3, 3].
    pub label: f32,
    /// Synthetic data only: ground-truth noisy steps (audio, video), `steps` each.
    pub noisy: Option<(Vec<bool>, Vec<bool>)>,
}

impl AlignedSample {
    /// Row `k` of the audio features (empty when out of range).
    pub fn audio_row(&self, k: usize, audio_dim: usize) -> &[f32] {
        self.audio.get(k * audio_dim..(k + 1) * audio_dim).unwrap_or(&[])
    }
    /// Row `k` of the video features (empty when out of range).
    pub fn video_row(&self, k: usize, video_dim: usize) -> &[f32] {
        self.video.get(k * video_dim..(k + 1) * video_dim).unwrap_or(&[])
    }
}

/// The samples of one split; every sample has `audio_dim` / `video_dim` columns.
#[derive(Clone, Debug, PartialEq)]
pub struct AlignedSplit {
    pub samples: Vec<AlignedSample>,
    pub audio_dim: usize,
    pub video_dim: usize,
}

impl AlignedSplit {
    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AlignedDataset {
    pub train: AlignedSplit,
    pub dev: AlignedSplit,
    pub test: AlignedSplit,
}

impl AlignedDataset {
    /// `("train", …), ("dev", …), ("test", …)`.
    pub fn splits(&self) -> [(&'static str, &AlignedSplit); 3] {
        [("train", &self.train), ("dev", &self.dev), ("test", &self.test)]
    }
}

/// What a reader repaired on the way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadReport {
    /// Non-finite feature values replaced by 0.
    pub non_finite: usize,
}

fn err(path: &Path, loc: &str, msg: impl std::fmt::Display) -> DataError {
    DataError::Other(format!("{}: {loc}: {msg}", path.display()))
}

fn warn_report(path: &Path, r: &ReadReport) {
    if r.non_finite > 0 {
        tracing::warn!("{}: {} non-finite feature values replaced by 0", path.display(), r.non_finite);
    }
}

/// Replace non-finite values by 0; returns how many.
fn scrub(v: &mut [f32]) -> usize {
    let mut n = 0;
    for x in v.iter_mut().filter(|x| !x.is_finite()) {
        *x = 0.0;
        n += 1;
    }
    n
}

/// Every split has the same feature widths; empty splits take the others' widths.
fn unify_dims(path: &Path, splits: [(&str, &mut AlignedSplit); 3]) -> Result<()> {
    let mut dims: Option<(&str, usize, usize)> = None;
    for (name, s) in &splits {
        if s.is_empty() {
            continue;
        }
        match dims {
            None => dims = Some((name, s.audio_dim, s.video_dim)),
            Some((first, a, v)) if (a, v) != (s.audio_dim, s.video_dim) => {
                return Err(err(path, name, format!("features are {}/{} wide (audio/video) but {first} has {a}/{v}", s.audio_dim, s.video_dim)));
            }
            _ => {}
        }
    }
    if let Some((_, a, v)) = dims {
        for (_, s) in splits {
            if s.is_empty() {
                (s.audio_dim, s.video_dim) = (a, v);
            }
        }
    }
    Ok(())
}

fn top_dict<'a>(path: &Path, v: &'a Value, need: &[&str]) -> Result<&'a Value> {
    if !matches!(v, Value::Dict(_)) {
        return Err(err(path, "top level", format!("expected a dict of splits, found {}", v.kind())));
    }
    for k in need {
        if v.get(k).is_none() {
            return Err(err(path, "top level", format!("no {k:?} split (keys: {:?})", v.keys())));
        }
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// MAG-BERT

/// Read a MAG-BERT `mosi.pkl` / `mosei.pkl`.
pub fn read_mag_bert(path: &Path) -> Result<AlignedDataset> {
    let (ds, r) = read_mag_bert_report(path)?;
    warn_report(path, &r);
    Ok(ds)
}

/// [`read_mag_bert`], also returning what was repaired.
pub fn read_mag_bert_report(path: &Path) -> Result<(AlignedDataset, ReadReport)> {
    mag_bert_from_value(path, &pickle::read_pickle(path)?)
}

/// Interpret an already parsed MAG-BERT pickle (`path` only names it in errors).
pub fn mag_bert_from_value(path: &Path, v: &Value) -> Result<(AlignedDataset, ReadReport)> {
    let v = top_dict(path, v, &["train", "dev", "test"])?;
    let mut report = ReadReport::default();
    let mut read = |name: &str| -> Result<AlignedSplit> {
        let items = v
            .get(name)
            .expect("checked")
            .as_seq()
            .ok_or_else(|| err(path, name, format!("expected a list, found {}", v.get(name).expect("checked").kind())))?;
        let mut split = AlignedSplit { samples: Vec::with_capacity(items.len()), audio_dim: 0, video_dim: 0 };
        for (i, item) in items.iter().enumerate() {
            let loc = format!("{name}[{i}]");
            let (s, a, vd, nf) = mag_item(item).map_err(|m| err(path, &loc, m))?;
            if i == 0 {
                (split.audio_dim, split.video_dim) = (a, vd);
            } else if (a, vd) != (split.audio_dim, split.video_dim) {
                return Err(err(path, &loc, format!("features are {a}/{vd} wide (acoustic/visual) but {name}[0] has {}/{}", split.audio_dim, split.video_dim)));
            }
            report.non_finite += nf;
            split.samples.push(s);
        }
        Ok(split)
    };
    let (mut train, mut dev, mut test) = (read("train")?, read("dev")?, read("test")?);
    unify_dims(path, [("train", &mut train), ("dev", &mut dev), ("test", &mut test)])?;
    Ok((AlignedDataset { train, dev, test }, report))
}

fn seq_n(v: &Value, n: usize, what: &str) -> std::result::Result<Vec<Value>, String> {
    match v.as_seq() {
        Some(s) if s.len() == n => Ok(s.to_vec()),
        Some(s) => Err(format!("{what} has {} items, expected {n}", s.len())),
        None => Err(format!("{what} is a {}, expected a tuple of {n}", v.kind())),
    }
}

fn words_of(v: &Value) -> std::result::Result<Vec<String>, String> {
    match v {
        Value::Array(a) => a.to_strings().map_err(|e| format!("words: {e}")),
        _ => {
            let s = v.as_seq().ok_or_else(|| format!("words are a {}", v.kind()))?;
            s.iter().map(|w| w.as_str().map(str::to_string).ok_or_else(|| format!("a word is a {}", w.kind()))).collect()
        }
    }
}

/// A 2-D float matrix: (rows, cols, values in row-major order).
fn matrix(v: &Value, what: &str) -> std::result::Result<(usize, usize, Vec<f32>), String> {
    let a = v.as_array().ok_or_else(|| format!("{what} is a {}, expected a numpy array", v.kind()))?;
    if a.shape.len() != 2 {
        return Err(format!("{what} has shape {:?}, expected [rows, dim]", a.shape));
    }
    Ok((a.shape[0], a.shape[1], a.to_f32().map_err(|e| format!("{what}: {e}"))?))
}

fn label_of(v: &Value) -> std::result::Result<f32, String> {
    let x = v.as_f64().ok_or_else(|| format!("label is a {}, expected a number", v.kind()))?;
    if !x.is_finite() {
        return Err(format!("label is {x}"));
    }
    Ok(x as f32)
}

fn id_of(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::Int(i) => Ok(i.to_string()),
        Value::Array(a) if a.len() == 1 => a.to_strings().map(|s| s[0].clone()),
        _ => v.as_str().map(str::to_string).ok_or_else(|| format!("segment id is a {}", v.kind())),
    }
}

/// One MAG-BERT item → (sample, audio dim, video dim, non-finite count).
fn mag_item(item: &Value) -> std::result::Result<(AlignedSample, usize, usize, usize), String> {
    let [feats, label, seg] = <[Value; 3]>::try_from(seq_n(item, 3, "item")?).expect("3 items");
    let [words, visual, acoustic] = <[Value; 3]>::try_from(seq_n(&feats, 3, "(words, visual, acoustic)")?).expect("3 items");
    let words = words_of(&words)?;
    let (vr, vd, mut video) = matrix(&visual, "visual")?;
    let (ar, ad, mut audio) = matrix(&acoustic, "acoustic")?;
    let n = words.len();
    if vr != n || ar != n {
        return Err(format!("{n} words but visual has {vr} rows and acoustic {ar}"));
    }
    let nf = scrub(&mut audio) + scrub(&mut video);
    let s = AlignedSample { id: id_of(&seg)?, words, token_ids: None, steps: n, audio, video, label: label_of(&label)?, noisy: None };
    Ok((s, ad, vd, nf))
}

// ---------------------------------------------------------------------------------------------
// MMSA

/// Read an MMSA feature pickle (`aligned_50.pkl`, or an unaligned file: refused with an error).
pub fn read_mmsa(path: &Path) -> Result<AlignedDataset> {
    let (ds, r) = read_mmsa_report(path)?;
    warn_report(path, &r);
    Ok(ds)
}

/// [`read_mmsa`], also returning what was repaired.
pub fn read_mmsa_report(path: &Path) -> Result<(AlignedDataset, ReadReport)> {
    mmsa_from_value(path, &pickle::read_pickle(path)?)
}

/// Interpret an already parsed MMSA pickle (`path` only names it in errors).
pub fn mmsa_from_value(path: &Path, v: &Value) -> Result<(AlignedDataset, ReadReport)> {
    let dev_key = if matches!(v, Value::Dict(_)) && v.get("valid").is_none() && v.get("dev").is_some() { "dev" } else { "valid" };
    let v = top_dict(path, v, &["train", dev_key, "test"])?;
    let mut report = ReadReport::default();
    let mut read = |key: &str| -> Result<AlignedSplit> {
        let (split, nf) = mmsa_split(v.get(key).expect("checked")).map_err(|(loc, m)| err(path, &format!("{key}{loc}"), m))?;
        report.non_finite += nf;
        Ok(split)
    };
    let (mut train, mut dev, mut test) = (read("train")?, read(dev_key)?, read("test")?);
    unify_dims(path, [("train", &mut train), ("dev", &mut dev), ("test", &mut test)])?;
    Ok((AlignedDataset { train, dev, test }, report))
}

type LocErr = (String, String);

fn field<'a>(d: &'a Value, key: &str) -> std::result::Result<&'a Value, LocErr> {
    d.get(key).ok_or_else(|| (String::new(), format!("no {key:?} (keys: {:?})", d.keys())))
}

fn array<'a>(d: &'a Value, key: &str, ndim: usize) -> std::result::Result<&'a NdArray, LocErr> {
    let v = field(d, key)?;
    let a = v.as_array().ok_or_else(|| (format!(".{key}"), format!("is a {}, expected an array", v.kind())))?;
    if a.shape.len() != ndim {
        return Err((format!(".{key}"), format!("has shape {:?}, expected {ndim} dimensions", a.shape)));
    }
    Ok(a)
}

fn strings(d: &Value, key: &str) -> std::result::Result<Vec<String>, LocErr> {
    let v = field(d, key)?;
    let loc = || format!(".{key}");
    match v {
        Value::Array(a) => a.to_strings().map_err(|e| (loc(), e)),
        _ => v.as_seq().ok_or_else(|| (loc(), format!("is a {}", v.kind())))?.iter().map(|x| id_of(x).map_err(|e| (loc(), e))).collect(),
    }
}

fn mmsa_split(d: &Value) -> std::result::Result<(AlignedSplit, usize), LocErr> {
    if !matches!(d, Value::Dict(_)) {
        return Err((String::new(), format!("expected a dict of arrays (MMSA), found {}", d.kind())));
    }
    let tb = array(d, "text_bert", 3)?;
    let (n, three, l) = (tb.shape[0], tb.shape[1], tb.shape[2]);
    if three != 3 {
        return Err((".text_bert".into(), format!("has shape {:?}, expected [N, 3, L]", tb.shape)));
    }
    let tbv = tb.to_f64().map_err(|e| (".text_bert".into(), e))?;
    let audio = array(d, "audio", 3)?;
    let vision = array(d, "vision", 3)?;
    for (key, a) in [("audio", audio), ("vision", vision)] {
        if a.shape[0] != n {
            return Err((format!(".{key}"), format!("has {} samples but text_bert has {n}", a.shape[0])));
        }
        if a.shape[1] != l {
            return Err((
                format!(".{key}"),
                format!(
                    "has {} time steps but the text has {l}: unaligned features cannot be read as word-aligned ones (use MMSA's aligned_50.pkl)",
                    a.shape[1]
                ),
            ));
        }
    }
    let (ad, vd) = (audio.shape[2], vision.shape[2]);
    let av = audio.to_f32().map_err(|e| (".audio".into(), e))?;
    let vv = vision.to_f32().map_err(|e| (".vision".into(), e))?;
    let labels = field(d, "regression_labels")?
        .as_array()
        .ok_or_else(|| (".regression_labels".to_string(), "is not an array".to_string()))?
        .to_f64()
        .map_err(|e| (".regression_labels".into(), e))?;
    if labels.len() != n {
        return Err((".regression_labels".into(), format!("has {} values for {n} samples", labels.len())));
    }
    let ids = strings(d, "id")?;
    if ids.len() != n {
        return Err((".id".into(), format!("has {} values for {n} samples", ids.len())));
    }
    let raw = if d.get("raw_text").is_some() { Some(strings(d, "raw_text")?) } else { None };
    if let Some(r) = &raw
        && r.len() != n
    {
        return Err((".raw_text".into(), format!("has {} values for {n} samples", r.len())));
    }
    let mut nf = 0;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let loc = format!("[{i}] ({})", ids[i]);
        let row = |r: usize| &tbv[(i * 3 + r) * l..(i * 3 + r + 1) * l];
        let mask = row(1);
        let len = mask.iter().filter(|&&m| m > 0.5).count();
        if mask[..len].iter().any(|&m| m <= 0.5) {
            return Err((loc, "the text_bert mask is not a prefix of ones".into()));
        }
        let token_ids = row(0)[..len]
            .iter()
            .map(|&x| {
                if x >= 0.0 && x <= u32::MAX as f64 && x.fract() == 0.0 { Ok(x as u32) } else { Err((loc.clone(), format!("token id {x} is not a valid id"))) }
            })
            .collect::<std::result::Result<Vec<u32>, _>>()?;
        let mut a = av[i * l * ad..(i * l + len) * ad].to_vec();
        let mut v = vv[i * l * vd..(i * l + len) * vd].to_vec();
        nf += scrub(&mut a) + scrub(&mut v);
        let label = labels[i];
        if !label.is_finite() {
            return Err((loc, format!("label is {label}")));
        }
        let words = raw.as_ref().map(|r| r[i].split_whitespace().map(str::to_string).collect()).unwrap_or_default();
        samples.push(AlignedSample { id: ids[i].clone(), words, token_ids: Some(token_ids), steps: len, audio: a, video: v, label: label as f32, noisy: None });
    }
    Ok((AlignedSplit { samples, audio_dim: ad, video_dim: vd }, nf))
}

// ---------------------------------------------------------------------------------------------
// Any source

/// A directory → [`read_dir`]; a pickle → MAG-BERT or MMSA, told apart by its keys (`valid`, or
/// splits that are dicts of arrays → MMSA; `dev` with lists → MAG-BERT).
pub fn read_any(path: &Path) -> Result<AlignedDataset> {
    if path.is_dir() {
        return read_dir(path);
    }
    let v = pickle::read_pickle(path)?;
    let mmsa = v.get("valid").is_some() || v.get("train").is_some_and(|t| matches!(t, Value::Dict(_)));
    let (ds, r) = if mmsa {
        mmsa_from_value(path, &v)?
    } else if v.get("dev").is_some() {
        mag_bert_from_value(path, &v)?
    } else {
        let what = if matches!(v, Value::Dict(_)) { format!("a dict with keys {:?}", v.keys()) } else { v.kind() };
        return Err(err(path, "top level", format!("neither a MAG-BERT nor an MMSA pickle: found {what}")));
    };
    warn_report(path, &r);
    Ok(ds)
}

// ---------------------------------------------------------------------------------------------
// Our directory layout

#[derive(serde::Deserialize)]
struct Line {
    id: String,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    token_ids: Option<Vec<u32>>,
    label: f64,
    steps: usize,
    #[serde(default)]
    noisy: bool,
}

/// Read our directory layout (see the module doc).
pub fn read_dir(dir: &Path) -> Result<AlignedDataset> {
    Ok(AlignedDataset { train: read_split(dir, "train")?, dev: read_split(dir, "dev")?, test: read_split(dir, "test")? })
}

fn read_split(dir: &Path, name: &str) -> Result<AlignedSplit> {
    let jp = dir.join(format!("{name}.jsonl"));
    let sp = dir.join(format!("{name}.safetensors"));
    let text = std::fs::read_to_string(&jp).map_err(|e| DataError::io(&jp, e))?;
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(l).map_err(|e| DataError::format(&jp, i + 1, e.to_string()))?;
        if !line.label.is_finite() {
            return Err(DataError::format(&jp, i + 1, format!("label is {}", line.label)));
        }
        lines.push((i + 1, line));
    }
    let bytes = std::fs::read(&sp).map_err(|e| DataError::io(&sp, e))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| err(&sp, "safetensors", e))?;
    let total: usize = lines.iter().map(|(_, l)| l.steps).sum();
    let get = |key: &str| tensors.tensor(key).ok();
    let mat = |key: &str| -> Result<(usize, Vec<f32>)> {
        let t = get(key).ok_or_else(|| err(&sp, key, "tensor missing"))?;
        if t.dtype() != Dtype::F32 || t.shape().len() != 2 || t.shape()[0] != total {
            return Err(err(&sp, key, format!("is {:?} {:?}, expected F32 [{total}, dim] (the steps of the jsonl lines)", t.dtype(), t.shape())));
        }
        Ok((t.shape()[1], t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()))
    };
    let (ad, audio) = mat("audio")?;
    let (vd, video) = mat("video")?;
    let any_noisy = lines.iter().any(|(_, l)| l.noisy);
    let flags = |key: &str| -> Result<Vec<bool>> {
        let t = get(key).ok_or_else(|| err(&sp, key, "tensor missing (some lines say \"noisy\": true)"))?;
        if t.dtype() != Dtype::U8 || t.shape() != [total] {
            return Err(err(&sp, key, format!("is {:?} {:?}, expected U8 [{total}]", t.dtype(), t.shape())));
        }
        Ok(t.data().iter().map(|&b| b != 0).collect())
    };
    let noisy = if any_noisy { Some((flags("noisy_audio")?, flags("noisy_video")?)) } else { None };
    let mut samples = Vec::with_capacity(lines.len());
    let mut at = 0;
    for (_, l) in lines {
        let r = at..at + l.steps;
        at += l.steps;
        samples.push(AlignedSample {
            id: l.id,
            words: l.words,
            token_ids: l.token_ids,
            steps: l.steps,
            audio: audio[r.start * ad..r.end * ad].to_vec(),
            video: video[r.start * vd..r.end * vd].to_vec(),
            label: l.label as f32,
            noisy: match (&noisy, l.noisy) {
                (Some((na, nv)), true) => Some((na[r.clone()].to_vec(), nv[r].to_vec())),
                _ => None,
            },
        });
    }
    Ok(AlignedSplit { samples, audio_dim: ad, video_dim: vd })
}

/// Write our directory layout (see the module doc); each file goes to a temporary name first
/// and is renamed into place. Samples must match the split's widths.
pub fn write_dir(ds: &AlignedDataset, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    for (name, split) in ds.splits() {
        let (ad, vd) = (split.audio_dim, split.video_dim);
        let total: usize = split.samples.iter().map(|s| s.steps).sum();
        let any_noisy = split.samples.iter().any(|s| s.noisy.is_some());
        let mut jsonl = String::new();
        let (mut audio, mut video) = (Vec::with_capacity(total * ad * 4), Vec::with_capacity(total * vd * 4));
        let (mut na, mut nv) = (Vec::new(), Vec::new());
        for (i, s) in split.samples.iter().enumerate() {
            let bad = |m: String| err(dir, &format!("{name}[{i}] ({})", s.id), m);
            if s.audio.len() != s.steps * ad || s.video.len() != s.steps * vd {
                return Err(bad(format!("{} audio / {} video values for {} steps of {ad} / {vd}", s.audio.len(), s.video.len(), s.steps)));
            }
            let mut o = serde_json::Map::new();
            o.insert("id".into(), s.id.clone().into());
            o.insert("words".into(), s.words.clone().into());
            if let Some(t) = &s.token_ids {
                o.insert("token_ids".into(), t.clone().into());
            }
            // f32 → f64 is exact, and so is f64's shortest decimal: the label round-trips exactly
            o.insert("label".into(), serde_json::Value::from(s.label as f64));
            o.insert("steps".into(), s.steps.into());
            if let Some((a, v)) = &s.noisy {
                if a.len() != s.steps || v.len() != s.steps {
                    return Err(bad(format!("noisy flags of {} / {} steps for {} steps", a.len(), v.len(), s.steps)));
                }
                o.insert("noisy".into(), true.into());
            }
            jsonl.push_str(&serde_json::Value::Object(o).to_string());
            jsonl.push('\n');
            audio.extend(s.audio.iter().flat_map(|x| x.to_le_bytes()));
            video.extend(s.video.iter().flat_map(|x| x.to_le_bytes()));
            if any_noisy {
                match &s.noisy {
                    Some((a, v)) => {
                        na.extend(a.iter().map(|&b| b as u8));
                        nv.extend(v.iter().map(|&b| b as u8));
                    }
                    None => {
                        na.resize(na.len() + s.steps, 0);
                        nv.resize(nv.len() + s.steps, 0);
                    }
                }
            }
        }
        let sp = dir.join(format!("{name}.safetensors"));
        let view = |dtype, shape, data| TensorView::new(dtype, shape, data).map_err(|e| err(&sp, "safetensors", e));
        let mut tensors = vec![("audio", view(Dtype::F32, vec![total, ad], &audio)?), ("video", view(Dtype::F32, vec![total, vd], &video)?)];
        if any_noisy {
            tensors.push(("noisy_audio", view(Dtype::U8, vec![total], &na)?));
            tensors.push(("noisy_video", view(Dtype::U8, vec![total], &nv)?));
        }
        let meta = std::collections::HashMap::from([("format".to_string(), "mmfuse-aligned".to_string())]);
        let bytes = safetensors::serialize(tensors, Some(meta)).map_err(|e| err(&sp, "safetensors", e))?;
        crate::fsutil::write_atomic(&sp, &bytes)?;
        crate::fsutil::write_atomic(&dir.join(format!("{name}.jsonl")), jsonl.as_bytes())?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Word-piece expansion

/// Fixed-length rows for the model, MAG-BERT's word-piece expansion (`max_len` positions).
#[derive(Clone, Debug, PartialEq)]
pub struct AlignedRows {
    /// Token ids, padded with the encoder's pad id.
    pub ids: Vec<u32>,
    /// True at real positions (specials included).
    pub mask: Vec<bool>,
    /// `[max_len × audio_dim]`: the row of each position's word, zero at specials and padding.
    pub audio: Vec<f32>,
    /// `[max_len × video_dim]`.
    pub video: Vec<f32>,
    /// Real positions (`mask` count).
    pub len: usize,
}

/// MAG-BERT's `convert_to_features`: each word is cut into word pieces and its audio / video row
/// repeated for each piece; at most `max_len - 2` pieces are kept (`[CLS]` … `[SEP]`), the rows of
/// `[CLS]`, `[SEP]` and padding are zero, everything is padded to `enc.max_len()`.
///
/// With `token_ids` (MMSA) the ids are used as they are (cut / padded to `max_len`) and row k
/// belongs to position k. With a word-level tokenizer (no `[CLS]`, the synthetic corpus) the
/// positions follow the encoder's `word_index` the same way. One difference from MAG-BERT: a
/// word that the tokenizer would drop entirely becomes `[UNK]` (see
/// [`TextTokenizer::encode_words`]) and so keeps its row.
pub fn expand_wordpieces(s: &AlignedSample, enc: &TextTokenizer, audio_dim: usize, video_dim: usize) -> AlignedRows {
    let max_len = enc.max_len();
    let mut audio = vec![0.0; max_len * audio_dim];
    let mut video = vec![0.0; max_len * video_dim];
    let (ids, mask, rows): (Vec<u32>, Vec<bool>, Vec<Option<usize>>) = match &s.token_ids {
        Some(t) => {
            let n = t.len().min(max_len);
            let mut ids = t[..n].to_vec();
            ids.resize(max_len, enc.pad_id());
            let mut mask = vec![true; n];
            mask.resize(max_len, false);
            (ids, mask, (0..max_len).map(|k| (k < n).then_some(k)).collect())
        }
        None => {
            let e = enc.encode_words(&s.words);
            (e.ids, e.mask, e.word_index)
        }
    };
    for (p, r) in rows.iter().enumerate() {
        if let Some(k) = *r {
            let a = s.audio_row(k, audio_dim);
            if a.len() == audio_dim {
                audio[p * audio_dim..(p + 1) * audio_dim].copy_from_slice(a);
            }
            let v = s.video_row(k, video_dim);
            if v.len() == video_dim {
                video[p * video_dim..(p + 1) * video_dim].copy_from_slice(v);
            }
        }
    }
    let len = mask.iter().filter(|&&m| m).count();
    AlignedRows { ids, mask, audio, video, len }
}
