//! Library errors as Python exceptions. The classes live in `mmfuse/errors.py` (each derives
//! from `MmfuseError` and from the matching built-in: `InputError` and `ImageError` are
//! `ValueError`s, `RunFolderError` an `OSError`-like `MmfuseError`, …); the message is the
//! CLI's (`{:#}`: the error with its causes).

use mmfuse_data::DataError;
use pyo3::PyErr;

pyo3::import_exception!(mmfuse.errors, MmfuseError);
pyo3::import_exception!(mmfuse.errors, InputError);
pyo3::import_exception!(mmfuse.errors, ImageError);
pyo3::import_exception!(mmfuse.errors, ConfigError);
pyo3::import_exception!(mmfuse.errors, RunFolderError);
pyo3::import_exception!(mmfuse.errors, TrainingError);

/// Which exception a library error becomes.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Bad input to a call (a post, a segment, an argument).
    Input,
    /// An image that cannot be read, decoded or is too large.
    Image,
    /// A run folder that cannot be loaded.
    RunFolder,
    /// A configuration or override that does not parse or validate.
    Config,
    /// Training stopped with an error (a NaN loss, a full disk, unreadable data).
    Training,
    /// Anything else.
    Other,
}

/// Whether `e` was caused by an image (undecodable or too large).
pub fn is_image_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| matches!(c.downcast_ref::<DataError>(), Some(DataError::Image { .. } | DataError::ImageTooLarge { .. })))
}

/// `e` as the exception of `kind`; an error caused by an undecodable or too large image is an
/// `ImageError` whatever the kind.
pub fn to_py(kind: Kind, e: &anyhow::Error) -> PyErr {
    let msg = format!("{e:#}");
    match kind {
        _ if is_image_error(e) => ImageError::new_err(msg),
        Kind::Image => ImageError::new_err(msg),
        Kind::Input => InputError::new_err(msg),
        Kind::RunFolder => RunFolderError::new_err(msg),
        Kind::Config => ConfigError::new_err(msg),
        Kind::Training => TrainingError::new_err(msg),
        Kind::Other => MmfuseError::new_err(msg),
    }
}

/// `r`'s error as the exception of `kind`.
pub fn py<T>(kind: Kind, r: anyhow::Result<T>) -> pyo3::PyResult<T> {
    r.map_err(|e| to_py(kind, &e))
}
