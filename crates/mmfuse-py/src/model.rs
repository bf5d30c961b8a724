//! `mmfuse.Model`: a run folder loaded for prediction ([`Predictor`], what `mmfuse predict` and
//! `mmfuse serve` use), predicting posts (text + image) or MIM segments.

use crate::convert::{image_input, to_py};
use crate::errors::{InputError, Kind, is_image_error, to_py as err_to_py};
use mmfuse_predict::{AlignedPost, ImageInput, Post, PredictResult, Predictor};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::path::PathBuf;
use std::sync::Arc;

/// A trained run folder, loaded for prediction (see `mmfuse.load`).
#[pyclass(frozen, module = "mmfuse", name = "Model")]
pub struct Model {
    pub predictor: Arc<Predictor>,
    pub run_dir: PathBuf,
    pub device: String,
}

/// `"raise"` or `"return"`.
fn errors_mode(errors: &str) -> PyResult<bool> {
    match errors {
        "raise" => Ok(true),
        "return" => Ok(false),
        other => Err(PyValueError::new_err(format!("errors must be \"raise\" or \"return\", got {other:?}"))),
    }
}

/// Results as Python dicts (the CLI's JSON lines); a failed post raises (naming it) or becomes
/// `{"error": message}`.
fn results(py: Python<'_>, out: Vec<anyhow::Result<PredictResult>>, had_image: &[bool], ids: &[Option<String>], raise: bool) -> PyResult<Vec<Py<PyAny>>> {
    let mut list = Vec::with_capacity(out.len());
    for (i, r) in out.into_iter().enumerate() {
        match r {
            Ok(r) => list.push(to_py(py, &serde_json::to_value(&r).map_err(|e| PyValueError::new_err(e.to_string()))?)?),
            Err(e) => {
                let name = match &ids[i] {
                    Some(id) => format!("post {i} (id {id})"),
                    None => format!("post {i}"),
                };
                if raise {
                    let e = e.context(name);
                    let kind = if had_image[i] && (is_image_error(&e) || e.chain().any(|c| c.downcast_ref::<mmfuse_data::DataError>().is_some())) {
                        Kind::Image
                    } else {
                        Kind::Input
                    };
                    return Err(err_to_py(kind, &e));
                }
                let d = PyDict::new(py);
                if let Some(id) = &ids[i] {
                    d.set_item("id", id)?;
                }
                d.set_item("error", format!("{e:#}"))?;
                list.push(d.into_any().unbind());
            }
        }
    }
    Ok(list)
}

/// A `str` or a sequence of them (`None` items are empty texts), and whether it was one.
fn texts_of(texts: &Bound<'_, PyAny>) -> PyResult<(Vec<String>, bool)> {
    if let Ok(s) = texts.cast::<PyString>() {
        return Ok((vec![s.to_string()], true));
    }
    let items: Vec<Bound<'_, PyAny>> = texts.try_iter().map_err(|_| PyTypeError::new_err("texts: a str or a list of str"))?.collect::<PyResult<_>>()?;
    let v = items
        .iter()
        .enumerate()
        .map(
            |(i, t)| {
                if t.is_none() { Ok(String::new()) } else { t.extract::<String>().map_err(|_| PyTypeError::new_err(format!("texts[{i}]: expected a str"))) }
            },
        )
        .collect::<PyResult<_>>()?;
    Ok((v, false))
}

/// `n` per-post values from a sequence (or one value for a single post; `None`: all absent).
fn per_post<'py>(obj: Option<&Bound<'py, PyAny>>, n: usize, single: bool, what: &str) -> PyResult<Vec<Option<Bound<'py, PyAny>>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(vec![None; n]) };
    if single {
        return Ok(vec![Some(obj.clone())]);
    }
    if obj.is_instance_of::<PyString>() || obj.hasattr("shape")? {
        return Err(PyTypeError::new_err(format!("{what}: for a list of texts, give a list of the same length (None where a post has none)")));
    }
    let items: Vec<Bound<'py, PyAny>> = obj.try_iter().map_err(|_| PyTypeError::new_err(format!("{what}: a list, one per text")))?.collect::<PyResult<_>>()?;
    if items.len() != n {
        return Err(InputError::new_err(format!("{} {what} for {n} texts: give one per text (None where a post has none)", items.len())));
    }
    Ok(items.into_iter().map(|x| (!x.is_none()).then_some(x)).collect())
}

#[pymethods]
impl Model {
    /// The task: `"ner"`, `"classify"` or `"regression"` (MIM).
    #[getter]
    fn task(&self) -> &'static str {
        self.predictor.task().name()
    }

    /// Class names (classification), tags (NER) in output order.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.predictor.labels().names().to_vec()
    }

    /// The run folder this model was loaded from.
    #[getter]
    fn run_dir(&self) -> PathBuf {
        self.run_dir.clone()
    }

    /// The device it predicts on (`"cpu"`, `"gpu"`, …).
    #[getter]
    fn device(&self) -> String {
        self.device.clone()
    }

    /// What the model is: task, labels, method, how a missing image is treated (MIM: the
    /// audio and video feature sizes) — the server's `/v1/info`.
    fn info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.predictor.info())
    }

    /// Predict posts. `texts`: a `str` (one post: the result is a dict) or a list of `str`
    /// (a list of dicts). `images`: for one post an image or `None`; for a list, a list of the
    /// same length. An image is a path, encoded bytes (PNG, JPEG), a PIL image or a numpy
    /// `uint8` array `H×W×3`; `None` means the post has no image (text-only: the model is told
    /// so). An empty text is an image-only post (classification). `ocr`: CLFA's OCR text per
    /// post. Each result is the CLI's JSON line as a dict: `label` and `probs` (classification)
    /// or `words`, `tags`, `entities` with word and character spans (NER), and `modalities`,
    /// the modalities the prediction used. With `errors="raise"` (default) the first bad post
    /// raises `ImageError` / `InputError` naming it; with `errors="return"` it becomes
    /// `{"error": message}`. Posts go through the model `batch_size` at a time, with the GIL
    /// released.
    #[pyo3(signature = (texts, images=None, *, ids=None, ocr=None, batch_size=32, errors="raise"))]
    #[allow(clippy::too_many_arguments)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        images: Option<&Bound<'py, PyAny>>,
        ids: Option<Vec<Option<String>>>,
        ocr: Option<&Bound<'py, PyAny>>,
        batch_size: usize,
        errors: &str,
    ) -> PyResult<Py<PyAny>> {
        let raise = errors_mode(errors)?;
        if self.predictor.features().is_some() {
            return Err(InputError::new_err("this is a MIM model on word-aligned features: use predict_segments"));
        }
        let (texts, single) = texts_of(texts)?;
        let n = texts.len();
        let images = per_post(images, n, single, "images")?;
        let ocr = per_post(ocr, n, single, "ocr")?;
        let ids = ids.unwrap_or_else(|| vec![None; n]);
        if ids.len() != n {
            return Err(InputError::new_err(format!("{} ids for {n} texts", ids.len())));
        }
        let mut posts = Vec::with_capacity(n);
        for (i, text) in texts.into_iter().enumerate() {
            let what = if single { "image".to_string() } else { format!("images[{i}]") };
            let image = match &images[i] {
                Some(x) => image_input(x, &what)?,
                None => ImageInput::None,
            };
            let ocr = match &ocr[i] {
                Some(o) => Some(o.extract::<String>().map_err(|_| PyTypeError::new_err(format!("ocr[{i}]: expected a str")))?),
                None => None,
            };
            posts.push(Post { id: ids[i].clone(), text, image, ocr });
        }
        let had_image: Vec<bool> = posts.iter().map(|p| !matches!(p.image, ImageInput::None)).collect();
        let predictor = self.predictor.clone();
        let bs = batch_size.max(1);
        let out = py.detach(move || {
            let mut out = Vec::with_capacity(posts.len());
            let mut rest = posts;
            while !rest.is_empty() {
                let tail = rest.split_off(bs.min(rest.len()));
                out.extend(predictor.predict(rest));
                rest = tail;
            }
            out
        });
        let list = results(py, out, &had_image, &ids, raise)?;
        if single {
            return Ok(list.into_iter().next().expect("one result"));
        }
        Ok(PyList::new(py, list)?.into_any().unbind())
    }

    /// Predict MIM segments: a list of dicts `{"words": [...], "audio": [[...] per word],
    /// "video": [[...] per word], "id"?}` (audio or video left out: absent, the gates close on
    /// it). Each result is `{"score": …, "modalities": [...]}`; errors as in `predict`.
    #[pyo3(signature = (segments, *, batch_size=32, errors="raise"))]
    fn predict_segments(&self, py: Python<'_>, segments: &Bound<'_, PyAny>, batch_size: usize, errors: &str) -> PyResult<Py<PyAny>> {
        let raise = errors_mode(errors)?;
        let items: Vec<Bound<'_, PyAny>> = segments.try_iter().map_err(|_| PyTypeError::new_err("segments: a list of dicts"))?.collect::<PyResult<_>>()?;
        let mut posts = Vec::with_capacity(items.len());
        for (i, s) in items.iter().enumerate() {
            let v = crate::convert::from_py(s, &format!("segments[{i}]"))?;
            let post: AlignedPost = serde_json::from_value(v).map_err(|e| InputError::new_err(format!("segments[{i}]: {e}")))?;
            posts.push(post);
        }
        let ids: Vec<Option<String>> = posts.iter().map(|p| p.id.clone()).collect();
        let predictor = self.predictor.clone();
        let bs = batch_size.max(1);
        let out = py.detach(move || posts.chunks(bs).flat_map(|c| predictor.predict_aligned(c)).collect::<Vec<_>>());
        let list = results(py, out, &vec![false; ids.len()], &ids, raise)?;
        Ok(PyList::new(py, list)?.into_any().unbind())
    }

    fn __repr__(&self) -> String {
        format!("mmfuse.Model({:?}, task={:?}, device={:?})", self.run_dir.display().to_string(), self.predictor.task().name(), self.device)
    }
}
