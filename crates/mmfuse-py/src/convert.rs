//! Python values ↔ the library's values: image-like inputs → [`ImageInput`], JSON-like Python
//! values ↔ `serde_json::Value` (results, metrics, configuration dicts), override dicts → the
//! CLI's `--set key=value` strings.

use mmfuse_predict::ImageInput;
use numpy::PyReadonlyArrayDyn;
use numpy::PyUntypedArrayMethods;
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;
use std::path::PathBuf;

/// One image-like Python value: `None` (absent), a path (`str` or `os.PathLike`), encoded bytes
/// (PNG, JPEG), a PIL image, or a numpy `uint8` array `H×W×3` (also `H×W` grey and `H×W×4`,
/// whose alpha is dropped). `what` names it in errors (e.g. `images[3]`).
pub fn image_input(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<ImageInput> {
    if obj.is_none() {
        return Ok(ImageInput::None);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(ImageInput::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(ImageInput::Bytes(b.to_vec()));
    }
    if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__")? {
        let p: PathBuf = obj.extract()?;
        return Ok(ImageInput::Path(p));
    }
    // a PIL image: its RGB pixels as a numpy array
    let py = obj.py();
    let array = if obj.hasattr("convert")? && obj.hasattr("size")? && !obj.hasattr("shape")? {
        py.import("numpy")?.call_method1("asarray", (obj.call_method1("convert", ("RGB",))?,))?
    } else {
        obj.clone()
    };
    let Ok(a) = array.extract::<PyReadonlyArrayDyn<'_, u8>>() else {
        let t = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        return Err(PyTypeError::new_err(format!(
            "{what}: expected None, a path, bytes, a PIL image or a numpy uint8 array (H×W×3), got {t}{}",
            if array.hasattr("dtype")? { format!(" of dtype {}", array.getattr("dtype")?.str()?) } else { String::new() }
        )));
    };
    let shape = a.shape().to_vec();
    let (h, w, c) = match shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c] if [1, 3, 4].contains(&c) => (h, w, c),
        _ => return Err(PyValueError::new_err(format!("{what}: an image array must be H×W, H×W×3 or H×W×4, got shape {shape:?}"))),
    };
    // C order, whatever the array's layout
    let view = a.as_array();
    let values: Vec<u8> = match view.as_slice() {
        Some(s) => s.to_vec(),
        None => view.iter().copied().collect(),
    };
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(PyValueError::new_err(format!("{what}: image of {w}×{h} pixels is too large")));
    };
    let rgb: Vec<u8> = match c {
        3 => values,
        1 => values.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => values.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
    };
    let img = image::RgbImage::from_raw(w32, h32, rgb).ok_or_else(|| PyValueError::new_err(format!("{what}: image buffer does not match {w}×{h}")))?;
    Ok(ImageInput::Rgb(img))
}

/// A JSON value as the Python value `json.loads` would give.
pub fn to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_py_any(py)?,
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_py_any(py)?,
            (None, Some(u)) => u.into_py_any(py)?,
            _ => n.as_f64().unwrap_or(f64::NAN).into_py_any(py)?,
        },
        Value::String(s) => s.into_py_any(py)?,
        Value::Array(a) => PyList::new(py, a.iter().map(|x| to_py(py, x)).collect::<PyResult<Vec<_>>>()?)?.into_any().unbind(),
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// A JSON-like Python value (dict with `str` keys, list, tuple, str, bool, int, float, None)
/// as a JSON value; `what` names it in errors.
pub fn from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        let i: i64 = obj.extract().map_err(|_| PyValueError::new_err(format!("{what}: integer out of range")))?;
        return Ok(Value::from(i));
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| PyValueError::new_err(format!("{what}: {f} is not a finite number")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_string()));
    }
    if obj.hasattr("__fspath__")? {
        let p: PathBuf = obj.extract()?;
        return Ok(Value::String(p.to_string_lossy().into_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = serde_json::Map::new();
        for (k, v) in d.iter() {
            let key: String = k.extract().map_err(|_| PyTypeError::new_err(format!("{what}: dictionary keys must be str")))?;
            let inner = from_py(&v, &format!("{what}.{key}"))?;
            m.insert(key, inner);
        }
        return Ok(Value::Object(m));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
        return Ok(Value::Array(items.iter().enumerate().map(|(i, x)| from_py(x, &format!("{what}[{i}]"))).collect::<PyResult<_>>()?));
    }
    let t = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    Err(PyTypeError::new_err(format!("{what}: a {t} cannot be part of a configuration (use dict, list, str, int, float, bool)")))
}

/// A JSON value as a TOML value (for a configuration given as a dict, or an override's value).
pub fn toml_value(v: &Value, what: &str) -> PyResult<toml::Value> {
    Ok(match v {
        Value::Null => return Err(PyValueError::new_err(format!("{what}: None has no TOML form; leave the key out"))),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().enumerate().map(|(i, x)| toml_value(x, &format!("{what}[{i}]"))).collect::<PyResult<_>>()?),
        Value::Object(o) => {
            let mut t = toml::Table::new();
            for (k, x) in o {
                t.insert(k.clone(), toml_value(x, &format!("{what}.{k}"))?);
            }
            toml::Value::Table(t)
        }
    })
}

/// Overrides as the CLI's `--set key=value` strings: a dict `{"train.epochs": 2}` (values in
/// Python form), or a list of `"key=value"` strings (values in TOML form, as on the command line).
pub fn overrides(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(obj) = obj else { return Ok(vec![]) };
    if obj.is_none() {
        return Ok(vec![]);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut out = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key: String = k.extract().map_err(|_| PyTypeError::new_err("overrides: keys must be str, e.g. \"train.epochs\""))?;
            let value = toml_value(&from_py(&v, &format!("overrides[{key:?}]"))?, &format!("overrides[{key:?}]"))?;
            out.push(format!("{key}={value}"));
        }
        return Ok(out);
    }
    obj.extract::<Vec<String>>().map_err(|_| PyTypeError::new_err("overrides: a dict {\"train.epochs\": 2} or a list of \"key=value\" strings"))
}
