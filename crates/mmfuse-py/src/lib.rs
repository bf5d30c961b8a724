//! The Python package's native module, `mmfuse._core` (PyO3, abi3 for CPython ≥ 3.9, built by
//! maturin). It calls the same library functions the CLI calls — `Predictor` for `predict`,
//! `run_training` for `train`, `rescore` / `robustness` for `evaluate`, `TextEmbedder` /
//! `ImageEmbedder` for `encode`, `synth::generate` for `synth` — and only converts Python values
//! to and from them: no second implementation of anything.
//!
//! - [`model`]: `Model` (a loaded run folder) and its `predict` / `predict_segments`.
//! - [`functions`]: `load`, `encode`, `train`, `evaluate`, `synth`, `synth_aligned`.
//! - [`convert`]: Python values ↔ Rust values (images, JSON-like values, TOML overrides).
//! - [`errors`]: the exception a library error becomes (`mmfuse.errors`, defined in Python so
//!   that each is both an `MmfuseError` and the matching built-in, e.g. `ValueError`).
//!
//! Computations run with the GIL released (`Python::detach`), so other Python threads go on.

use pyo3::prelude::*;

pub mod convert;
pub mod errors;
pub mod functions;
pub mod model;

/// `mmfuse._core`: see the package `mmfuse` for the documented API.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // the library's warnings (skipped rows, placeholders, truncation) go to stderr, as in the CLI
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(tracing::Level::WARN).with_target(false).try_init();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(functions::load, m)?)?;
    m.add_function(wrap_pyfunction!(functions::encode, m)?)?;
    m.add_function(wrap_pyfunction!(functions::train, m)?)?;
    m.add_function(wrap_pyfunction!(functions::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(functions::synth, m)?)?;
    m.add_function(wrap_pyfunction!(functions::synth_aligned, m)?)?;
    Ok(())
}
