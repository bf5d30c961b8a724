//! Errors of the data layer. Every message names the file, and for text formats the 1-based
//! line, so a user can go straight to the bad input.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("cannot write {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Format { path: PathBuf, line: usize, message: String },
    #[error("cannot decode image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("image {path} is {width}x{height} = {pixels} pixels, above the limit of {limit}")]
    ImageTooLarge { path: PathBuf, width: u32, height: u32, pixels: u64, limit: u64 },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), error: source }
    }
    /// A failed write (create, write, sync, rename) of `path`.
    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Write { path: path.into(), error: source }
    }
    pub fn format(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        DataError::Format { path: path.into(), line, message: message.into() }
    }
}
