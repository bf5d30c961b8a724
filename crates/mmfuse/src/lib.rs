//! The `mmfuse` command line: argument parsing lives in `main.rs`; the jobs that are more than
//! one call into the library crates live here, so tests can drive them.
//!
//! - [`demo`]: `mmfuse demo` — synthetic corpus → text-only, image-only and fused models on
//!   both synthetic tasks → a table of test scores.
//!
//! What this crate must not do: hold logic a library user would need (that belongs in the
//! library crates); here are only the command line and the jobs that tie several crates together.

pub mod demo;
pub mod encode;
