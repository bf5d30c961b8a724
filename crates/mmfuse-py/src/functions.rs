//! The package's functions: `load`, `encode`, `train`, `evaluate`, `synth`, `synth_aligned`.
//! Each is one call into the library crates, with the GIL released while it computes.

use crate::convert::{from_py, image_input, to_py, toml_value};
use crate::errors::{ConfigError, InputError, Kind, py as err};
use crate::model::Model;
use burn::tensor::Device;
use mmfuse::encode::{ImageEmbedder, Pooling, TextEmbedder};
use mmfuse_kernels::device::DeviceSpec;
use mmfuse_predict::{ImageInput, Predictor, image_pixels};
use mmfuse_train::robustness::{RobustnessOptions, Split, robustness};
use mmfuse_train::{Progress, ProgressHook, RunConfig, TrainOptions, run_training};
use numpy::PyArray2;
use numpy::ndarray::Array2;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A device by name (`"cpu"`, `"gpu"`, `"gpu:0"`, `"gpu:software"`), as `--device` takes it.
fn device(name: &str) -> PyResult<Device> {
    let spec: DeviceSpec = name.parse().map_err(|e: String| InputError::new_err(e))?;
    spec.device().map_err(InputError::new_err)
}

/// Load a trained run folder for prediction, on `device` (`"cpu"` by default; `"gpu"` with a
/// build that has the `wgpu` feature). Raises `RunFolderError` for a missing or damaged folder
/// (checkpoints are checked against their manifest).
#[pyfunction]
#[pyo3(signature = (run_dir, device="cpu"))]
pub fn load(py: Python<'_>, run_dir: PathBuf, device: &str) -> PyResult<Model> {
    let dev = self::device(device)?;
    let dir = run_dir.clone();
    let predictor = py.detach(move || Predictor::load(&dir, &dev));
    Ok(Model { predictor: Arc::new(err(Kind::RunFolder, predictor)?), run_dir, device: device.to_string() })
}

/// Embeddings from the pretrained encoders, as numpy `float32` arrays `[N, D]`.
///
/// - `texts` (a list of `str`) with `text_encoder`, a Hugging Face BERT folder
///   (`config.json`, weights, `tokenizer.json`); `pooling`: `"mean-normalized"` (default,
///   sentence-transformers' embeddings), `"mean"` or `"cls"`; `max_len` word pieces per text.
/// - `images` (paths, bytes, PIL images or numpy `uint8` arrays) with `image_encoder`,
///   torchvision ResNet or MobileNetV2 weights (a `.safetensors` file or a folder holding one);
///   `preprocess`: `"imagenet_eval"` (default), `"muse"` or `"clip"`.
///
/// Returns one array, or `(text_embeddings, image_embeddings)` when both are given.
#[pyfunction]
#[pyo3(signature = (texts=None, images=None, *, text_encoder=None, image_encoder=None, pooling="mean-normalized", max_len=128, preprocess="imagenet_eval", batch_size=32, device="cpu"))]
#[allow(clippy::too_many_arguments)]
pub fn encode<'py>(
    py: Python<'py>,
    texts: Option<Vec<String>>,
    images: Option<&Bound<'py, PyAny>>,
    text_encoder: Option<PathBuf>,
    image_encoder: Option<PathBuf>,
    pooling: &str,
    max_len: usize,
    preprocess: &str,
    batch_size: usize,
    device: &str,
) -> PyResult<Py<PyAny>> {
    let dev = self::device(device)?;
    let pooling = match pooling {
        "mean-normalized" | "mean_normalized" => Pooling::MeanNormalized,
        "mean" => Pooling::Mean,
        "cls" => Pooling::Cls,
        other => return Err(PyValueError::new_err(format!("pooling must be \"mean-normalized\", \"mean\" or \"cls\", got {other:?}"))),
    };
    let mut out: Vec<Py<PyAny>> = Vec::new();
    if let Some(texts) = texts {
        let dir = text_encoder.ok_or_else(|| InputError::new_err("texts need text_encoder= (a Hugging Face BERT folder)"))?;
        let d2 = dev.clone();
        let r = py.detach(move || -> anyhow::Result<(Vec<f32>, usize)> {
            let e = TextEmbedder::load(&dir, max_len, &d2)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let (rows, _) = e.embed(&refs, batch_size, pooling, &|_| {})?;
            Ok((rows, e.dim()))
        });
        let (rows, d) = err(Kind::Input, r)?;
        out.push(array(py, rows, d)?);
    }
    if let Some(images) = images {
        let weights = image_encoder.ok_or_else(|| InputError::new_err("images need image_encoder= (torchvision ResNet or MobileNetV2 weights)"))?;
        let preset: mmfuse_data::preprocess::Preprocess = preprocess.parse().map_err(|e: String| PyValueError::new_err(e))?;
        let items: Vec<Bound<'py, PyAny>> = images.try_iter().map_err(|_| PyTypeError::new_err("images: a list"))?.collect::<PyResult<_>>()?;
        let inputs = items.iter().enumerate().map(|(i, x)| image_input(x, &format!("images[{i}]"))).collect::<PyResult<Vec<ImageInput>>>()?;
        if let Some(i) = inputs.iter().position(|x| matches!(x, ImageInput::None)) {
            return Err(InputError::new_err(format!("images[{i}] is None: every image to encode must be given")));
        }
        let (rows, d) = py
            .detach(move || -> anyhow::Result<(Vec<f32>, usize)> {
                let e = ImageEmbedder::load(&weights, preset, &dev)?;
                let mut rows = Vec::new();
                let mut d = 0;
                for (k, chunk) in inputs.chunks(batch_size.max(1)).enumerate() {
                    let px = chunk
                        .iter()
                        .enumerate()
                        .map(|(j, x)| {
                            use anyhow::Context;
                            image_pixels(x, e.spec()).with_context(|| format!("images[{}]", k * batch_size.max(1) + j)).map(|p| p.unwrap_or_default())
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let (v, dim) = e.embed(&px)?;
                    rows.extend(v);
                    d = dim;
                }
                Ok((rows, d))
            })
            .map_err(|e| crate::errors::to_py(Kind::Input, &e))?;
        out.push(array(py, rows, d)?);
    }
    match out.len() {
        0 => Err(InputError::new_err("give texts= (with text_encoder=) and/or images= (with image_encoder=)")),
        1 => Ok(out.pop().expect("one array")),
        _ => Ok(pyo3::types::PyTuple::new(py, out)?.into_any().unbind()),
    }
}

fn array(py: Python<'_>, rows: Vec<f32>, d: usize) -> PyResult<Py<PyAny>> {
    let n = rows.len().checked_div(d).unwrap_or(0);
    let a = Array2::from_shape_vec((n, d), rows).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyArray2::from_owned_array(py, a).into_any().unbind())
}

/// A configuration: a TOML file (`str` or path) or a dict `{"data": {...}, "model": {...},
/// "train": {...}}`, with the overrides applied.
fn run_config(config: &Bound<'_, PyAny>, sets: &[String]) -> PyResult<RunConfig> {
    let r = if config.is_instance_of::<PyDict>() {
        let v = toml_value(&from_py(config, "config")?, "config")?;
        let text = toml::to_string(&v).map_err(|e| ConfigError::new_err(format!("config: {e}")))?;
        RunConfig::from_toml_str(&text, sets)
    } else if config.is_instance_of::<PyString>() || config.hasattr("__fspath__")? {
        let path: PathBuf = config.extract()?;
        RunConfig::load(&path, sets)
    } else {
        return Err(PyTypeError::new_err("config: a TOML file path or a dict {\"data\": …, \"model\": …, \"train\": …}"));
    };
    err(Kind::Config, r)
}

/// Train a model as `mmfuse train` does and return its run folder (`out`).
///
/// `config`: a TOML file or a dict of the same tables; `overrides`: `{"train.epochs": 2}` or
/// `["train.epochs=2"]` (the CLI's `--set`); `resume`: continue the run in `out` from its last
/// checkpoint. `progress`: called with a dict after every step (`{"event": "step", "epoch",
/// "step", "total", "loss", …}`) and every dev evaluation (`{"event": "eval", "epoch",
/// "step", "scores": {...}}`); return `False` to stop there (the last checkpoint is saved;
/// `resume=True` continues). Ctrl-C stops the same way, then raises `KeyboardInterrupt`.
/// Raises `ConfigError` for a bad configuration and `TrainingError` when training fails (a NaN
/// loss, unreadable data; the message names the file and line).
#[pyfunction]
#[pyo3(signature = (config, *, out, overrides=None, resume=false, progress=None, device=None, quiet=true))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    config: &Bound<'_, PyAny>,
    out: PathBuf,
    overrides: Option<&Bound<'_, PyAny>>,
    resume: bool,
    progress: Option<Py<PyAny>>,
    device: Option<String>,
    quiet: bool,
) -> PyResult<PathBuf> {
    let mut sets = crate::convert::overrides(overrides)?;
    if let Some(d) = &device {
        sets.push(format!("train.device=\"{d}\""));
    }
    let cfg = run_config(config, &sets)?;
    // a callback error or Ctrl-C stops the loop; the exception is raised once it has returned
    let pending: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let hook = {
        let pending = pending.clone();
        ProgressHook(Arc::new(move |p: &Progress<'_>| {
            Python::attach(|py| {
                let r = (|| -> PyResult<bool> {
                    py.check_signals()?;
                    let Some(cb) = &progress else { return Ok(true) };
                    let d = PyDict::new(py);
                    match p {
                        Progress::Step { epoch, step, total, values } => {
                            d.set_item("event", "step")?;
                            d.set_item("epoch", epoch)?;
                            d.set_item("step", step)?;
                            d.set_item("total", total)?;
                            for (k, v) in values.iter() {
                                d.set_item(*k, v)?;
                            }
                        }
                        Progress::Eval { epoch, step, scores } => {
                            d.set_item("event", "eval")?;
                            d.set_item("epoch", epoch)?;
                            d.set_item("step", step)?;
                            let s = PyDict::new(py);
                            for (k, v) in scores.iter() {
                                s.set_item(k, v)?;
                            }
                            d.set_item("scores", s)?;
                        }
                    }
                    let r = cb.bind(py).call1((d,))?;
                    // `None` (no return statement) goes on; `False` stops
                    Ok(r.is_none() || r.is_truthy()?)
                })();
                match r {
                    Ok(go_on) => go_on,
                    Err(e) => {
                        *pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        false
                    }
                }
            })
        }))
    };
    let opts = TrainOptions { resume, quiet, progress: Some(hook), ..Default::default() };
    let dir = out.clone();
    let r = py.detach(move || run_training(&cfg, &dir, &opts));
    if let Some(e) = pending.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    err(Kind::Training, r)?;
    Ok(out)
}

/// Score a run folder's best checkpoint again on its corpus (or `data_dir`), as `mmfuse
/// evaluate`: `{"dev": {...}, "test": {...}}` with every metric. With `robustness=True`, the
/// robustness report instead (each modality removed, image and text corruptions at three
/// severities; `missing_only=True`: only the removed modalities), also written into the run
/// folder as `robustness.json`, `.md` and `.png`.
#[pyfunction]
#[pyo3(signature = (run_dir, data_dir=None, *, robustness=false, missing_only=false, split="test", seed=0, device="cpu"))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    py: Python<'_>,
    run_dir: PathBuf,
    data_dir: Option<PathBuf>,
    robustness: bool,
    missing_only: bool,
    split: &str,
    seed: u64,
    device: &str,
) -> PyResult<Py<PyAny>> {
    let dev = self::device(device)?;
    let split: Split = split.parse().map_err(|e: String| PyValueError::new_err(e))?;
    let v = if robustness {
        let opts = RobustnessOptions { split, missing_only, seed, data_dir };
        let r = py.detach(move || -> anyhow::Result<serde_json::Value> {
            let report = self::robustness_report(&run_dir, &dev, &opts)?;
            report.write(&run_dir)?;
            Ok(serde_json::to_value(&report)?)
        });
        err(Kind::RunFolder, r)?
    } else {
        let r = py.detach(move || mmfuse_train::run::rescore(&run_dir, data_dir.as_deref(), &dev));
        let (dev, test) = err(Kind::RunFolder, r)?;
        serde_json::json!({"dev": dev.detail, "test": test.detail})
    };
    to_py(py, &v)
}

fn robustness_report(run_dir: &std::path::Path, dev: &Device, opts: &RobustnessOptions) -> anyhow::Result<mmfuse_train::robustness::RobustnessReport> {
    robustness(run_dir, dev, opts)
}

/// Write the synthetic corpus (`mmfuse synth`: `ner/` and `cls/` in the real formats, labels
/// that need both modalities) into `out`; returns the counts written.
#[pyfunction]
#[pyo3(signature = (out, *, seed=42, n_train=3000, n_dev=500, n_test=1000, label_noise=0.0))]
pub fn synth(py: Python<'_>, out: PathBuf, seed: u64, n_train: usize, n_dev: usize, n_test: usize, label_noise: f32) -> PyResult<Py<PyAny>> {
    let cfg = mmfuse_data::synth::SynthConfig { seed, n_train, n_dev, n_test, label_noise, ..Default::default() };
    let r = py.detach(move || mmfuse_data::synth::generate(&out, &cfg));
    let s = r.map_err(|e| InputError::new_err(e.to_string()))?;
    to_py(py, &serde_json::json!({"ner_samples": s.ner_samples, "cls_samples": s.cls_samples, "images": s.images}))
}

/// Write the synthetic word-aligned corpus (`mmfuse synth-aligned`, for MIM) into `out`.
#[pyfunction]
#[pyo3(signature = (out, *, seed=7, n_train=1284, n_dev=229, n_test=686))]
pub fn synth_aligned(py: Python<'_>, out: PathBuf, seed: u64, n_train: usize, n_dev: usize, n_test: usize) -> PyResult<()> {
    use mmfuse_data::aligned_synth::{AlignedSynthConfig, generate};
    let cfg = AlignedSynthConfig { seed, n_train, n_dev, n_test, ..Default::default() };
    let r = py.detach(move || mmfuse_data::aligned::write_dir(&generate(&cfg), &out));
    r.map_err(|e| InputError::new_err(e.to_string()))
}
