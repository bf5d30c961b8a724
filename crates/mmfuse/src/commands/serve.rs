//! `mmfuse serve`: a run folder over HTTP.

use super::Global;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Serve a trained run folder over HTTP (JSON API, metrics, web page at /).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder (model package) written by `mmfuse train`.
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Most posts per model call (dynamic batching).
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Longest wait for more posts after the first of a batch, in ms.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 10 << 20)]
    max_body_bytes: usize,
    /// Largest image, in pixels (checked from the header, before decoding).
    #[arg(long, default_value_t = 40_000_000)]
    max_pixels: u64,
    /// Longest text, in characters.
    #[arg(long, default_value_t = 5000)]
    max_text_chars: usize,
    /// Time limit of one request, in ms.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Most requests in flight.
    #[arg(long, default_value_t = 512)]
    max_concurrency: usize,
    /// Time for a request's head to arrive (and the next one on an idle keep-alive
    /// connection), in ms; then the connection is closed.
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Require `Authorization: Bearer <KEY>` on every route but /healthz and the page. Prefer
    /// the MMFUSE_API_KEY environment variable, which the process list does not show.
    #[arg(long)]
    api_key: Option<String>,
}

pub fn run(a: Args, g: &Global) -> Result<()> {
    let p = mmfuse_predict::Predictor::load(&a.model, &g.device()?)?;
    let api_key = a.api_key.or_else(|| std::env::var("MMFUSE_API_KEY").ok()).filter(|k| !k.is_empty());
    if api_key.is_none() && !matches!(a.host.as_str(), "127.0.0.1" | "localhost" | "::1") {
        tracing::warn!("serving on {} without an API key: anyone who can reach the port can use the model (set MMFUSE_API_KEY)", a.host);
    }
    let cfg = mmfuse_serve::ServeConfig {
        max_batch: a.max_batch,
        max_wait_ms: a.max_wait_ms,
        max_body_bytes: a.max_body_bytes,
        max_pixels: a.max_pixels,
        max_text_chars: a.max_text_chars,
        request_timeout_ms: a.request_timeout_ms,
        max_concurrency: a.max_concurrency,
        header_timeout_ms: a.header_timeout_ms,
        api_key: api_key.map(mmfuse_serve::ApiKey::new),
        ..Default::default()
    };
    let addr: std::net::SocketAddr = format!("{}:{}", a.host, a.port).parse().with_context(|| format!("bad address {}:{}", a.host, a.port))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(mmfuse_serve::serve(p, cfg, addr))
}
