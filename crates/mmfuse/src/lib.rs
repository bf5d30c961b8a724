//! The `mmfuse` command line: argument parsing lives in `main.rs`; the jobs that are more than
//! one call into the library crates live here, so tests can drive them.
//!
//! - [`demo`]: `mmfuse demo` — synthetic corpus → text-only, image-only and fused models on
//!   both synthetic tasks → a table of test scores.

pub mod demo;
pub mod encode;
