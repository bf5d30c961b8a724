//! HTTP serving of a trained mmfuse model (axum). It talks to the model only through
//! [`mmfuse_predict::Predictor`], the same API as `mmfuse predict`, so both give the same
//! answers.
//!
//! - `POST /v1/predict`: one post, JSON `{"text"?, "image": base64?, "id"?}` or multipart
//!   (`text`, `image` file, `id`); a post may lack its image or, for a classifier, its text:
//!   the answer's `modalities` says what was used;
//! - `POST /v1/predict/batch`: `{"posts": [...]}` → `{"results": [...]}` (per-post errors);
//! - `GET /v1/info`, `GET /healthz`, `GET /metrics` (Prometheus text), `GET /openapi.json`,
//!   `GET /` (a web page to try the model).
//!
//! A MIM run takes segments instead of posts: `{"words": [...], "audio": [[...] per word],
//! "video": [[...] per word], "id"?}` on the same endpoints (JSON only; audio or video left
//! out is absent), and answers a score.
//!
//! Dynamic batching (`batcher.rs`): request handlers decode images on the blocking pool, then
//! queue the prepared post; one model thread takes up to `max_batch` posts, waiting at most
//! `max_wait_ms` after the first, and runs them as one batch. Every limit (body size, image
//! pixels — checked from the header before decoding —, text length, batch size, request
//! timeout, concurrency) answers a 4xx/5xx JSON error naming the limit, and the server keeps
//! serving. An oversize body is drained up to a bound before its 413, so clients that send
//! everything before reading still read the answer; a body that does not arrive within the
//! request time limit is a 408. With an API key (`ServeConfig::api_key`) every route but
//! `/healthz` and the page needs `Authorization: Bearer <key>` (compared in constant time);
//! no CORS headers are sent, and no request field names a file or URL the server would open.
//! A request head (or the next one on an idle keep-alive connection) that does not arrive
//! within `header_timeout_ms` closes the connection, so byte-dribbling clients hold nothing
//! for long. SIGTERM/Ctrl-C: every request then gets a 503 (`/healthz` too, so balancers look
//! elsewhere), the requests in flight finish, idle connections close (one accepted as the
//! signal came first gets up to a second for its request, answered 503), and the process exits.
//!
//! What this crate must not do: compute anything itself. Every answer comes from the
//! [`Predictor`]; the handlers validate, limit and queue, the batcher only gathers.

mod batcher;
mod metrics;
mod openapi;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use batcher::{Input, Job, spawn_batcher};
use metrics::Metrics;
use mmfuse_data::error::DataError;
use mmfuse_predict::{AlignedPost, ImageInput, Post, PredictResult, Predictor};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, oneshot};

/// Server limits and batching.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Most posts run together in one model call.
    pub max_batch: usize,
    /// Longest wait for more posts after the first of a batch.
    pub max_wait_ms: u64,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest image, in pixels, read from its header before decoding.
    pub max_pixels: u64,
    /// Longest text, in characters.
    pub max_text_chars: usize,
    /// Most posts in one `/v1/predict/batch` request.
    pub max_batch_posts: usize,
    /// Time limit of one request.
    pub request_timeout_ms: u64,
    /// Most requests in flight at once.
    pub max_concurrency: usize,
    /// Time allowed for a request's head (line and headers) to arrive, and for the next one on
    /// an idle keep-alive connection; then the connection is closed.
    pub header_timeout_ms: u64,
    /// Bearer token every route but `/healthz` and the page requires (`None`: open, for a
    /// server on loopback).
    pub api_key: Option<ApiKey>,
}

/// An API key; `Debug` does not print it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Whether `candidate` is the key, in time independent of where they differ.
    fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_batch: 32,
            max_wait_ms: 5,
            max_body_bytes: 10 << 20,
            max_pixels: 40_000_000,
            max_text_chars: 5000,
            max_batch_posts: 256,
            request_timeout_ms: 10_000,
            max_concurrency: 512,
            header_timeout_ms: 10_000,
            api_key: None,
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    predictor: Arc<Predictor>,
    queue: std_mpsc::Sender<Job>,
    cfg: Arc<ServeConfig>,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    /// Valid posts between validation and answer (the batcher waits only for these).
    in_flight: Arc<AtomicUsize>,
    /// Set at SIGTERM: new requests are refused with a 503 while those in flight finish.
    draining: Arc<AtomicBool>,
}

/// Decrements the in-flight count when a post is answered or abandoned.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(c: &Arc<AtomicUsize>) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        InFlight(c.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A JSON error naming the violated limit, if any.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    limit: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), limit: None }
    }
    fn limit(status: StatusCode, limit: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), limit: Some(limit) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let Some(l) = self.limit {
            body["limit"] = json!(l);
        }
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // what was not drained of the body is not read: close rather than parse it as a request
            r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        }
        r
    }
}

/// Build the router (also used by tests without a socket).
pub fn router(predictor: Predictor, cfg: ServeConfig) -> Router {
    build(predictor, cfg).0
}

/// The router and its draining flag.
fn build(predictor: Predictor, cfg: ServeConfig) -> (Router, Arc<AtomicBool>) {
    let predictor = Arc::new(predictor.with_max_pixels(cfg.max_pixels));
    let cfg = Arc::new(cfg);
    let metrics = Arc::new(Metrics::default());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let queue = spawn_batcher(predictor.clone(), cfg.clone(), metrics.clone(), in_flight.clone());
    let slots = Arc::new(Semaphore::new(cfg.max_concurrency));
    let draining = Arc::new(AtomicBool::new(false));
    let state = AppState { predictor, queue, cfg, metrics, slots, in_flight, draining: draining.clone() };
    let app = Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(|| async { axum::Json(openapi::document()) }))
        .route("/v1/info", get(info))
        .route("/v1/predict", post(predict_one))
        .route("/v1/predict/batch", post(predict_batch))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), refuse_when_draining))
        .with_state(state);
    (app, draining)
}

/// Serve on `addr` until SIGTERM or Ctrl-C, then drain: new requests get a 503, the requests
/// in flight finish (at most `request_timeout_ms + header_timeout_ms` + 2 s), then it returns.
///
/// The accept loop is ours rather than `axum::serve`'s, which sets no time-out on reading a
/// request head: each connection is hyper's HTTP/1 with a timer and `header_read_timeout`.
pub async fn serve(predictor: Predictor, cfg: ServeConfig, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use tokio::task::JoinSet;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("serving on http://{}", listener.local_addr()?);
    let header_timeout = Duration::from_millis(cfg.header_timeout_ms.max(1));
    let drain_limit = Duration::from_millis(cfg.request_timeout_ms + cfg.header_timeout_ms + 2000);
    let (app, draining) = build(predictor, cfg);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    // connections accepted before the signal: each finishes its request in flight, then closes
    let mut open = JoinSet::new();
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            _ = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    open.spawn(connection(stream, app.clone(), header_timeout, Some(stop_rx.clone())));
                }
                Err(e) => accept_failed(e).await,
            },
            Some(_) = open.join_next(), if !open.is_empty() => {}
        }
    }
    draining.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(());
    // while those drain, connections still arriving are answered 503 (`Connection: close`)
    let mut late = JoinSet::new();
    let drained = tokio::time::timeout(drain_limit, async {
        loop {
            tokio::select! {
                done = open.join_next() => if done.is_none() { break },
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        late.spawn(connection(stream, app.clone(), header_timeout, None));
                    }
                    Err(e) => accept_failed(e).await,
                },
                Some(_) = late.join_next(), if !late.is_empty() => {}
            }
        }
    })
    .await;
    drop(listener);
    if drained.is_err() {
        tracing::warn!("{} connections were still open {drain_limit:?} after the shutdown signal: closed", open.len());
        open.abort_all();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async { while late.join_next().await.is_some() {} }).await;
    late.abort_all();
    drop(stop_tx);
    tracing::info!("shut down");
    Ok(())
}

/// One HTTP/1 connection; with `stop`, a graceful close (after the request in flight) once it
/// fires.
///
/// A connection accepted before the signal that has not begun a request yet (its client
/// connected as the signal came, and the request may be on its way) is not closed at once: it
/// gets up to [`FRESH_GRACE`] for that request, which is answered 503 like any other.
async fn connection(stream: tokio::net::TcpStream, app: Router, header_timeout: Duration, stop: Option<tokio::sync::watch::Receiver<()>>) {
    use hyper::service::Service;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let _ = stream.set_nodelay(true);
    let began = Arc::new(AtomicBool::new(false));
    let service = hyper_util::service::TowerToHyperService::new(app);
    let flag = began.clone();
    let service = hyper::service::service_fn(move |req| {
        flag.store(true, Ordering::SeqCst);
        service.call(req)
    });
    let conn =
        hyper::server::conn::http1::Builder::new().timer(TokioTimer::new()).header_read_timeout(header_timeout).serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let Some(mut stop) = stop else {
        let _ = conn.await;
        return;
    };
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection closed: {e}");
            }
            return;
        }
        _ = stop.changed() => {}
    }
    if !began.load(Ordering::SeqCst) && tokio::time::timeout(header_timeout.min(FRESH_GRACE), conn.as_mut()).await.is_ok() {
        return;
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// How long a connection accepted before the shutdown signal, with no request begun, waits for
/// one after the signal (its answer is a 503 rather than a connection closed unanswered).
const FRESH_GRACE: Duration = Duration::from_secs(1);

/// An accept error: a client that gave up is nothing; anything else (out of file descriptors)
/// is logged and the loop backs off a little rather than spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if !matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        tracing::warn!("cannot accept a connection: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After the shutdown signal every new request, `/healthz` included, is a 503 that closes its
/// connection.
async fn refuse_when_draining(State(s): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    if !s.draining.load(Ordering::SeqCst) {
        return next.run(req).await;
    }
    let mut r = ApiError::limit(StatusCode::SERVICE_UNAVAILABLE, "shutdown", "the server is shutting down").into_response();
    r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

/// With an API key: every route but `/healthz` and the page (which holds no data and asks for
/// the key) needs `Authorization: Bearer <key>`, else 401.
async fn require_key(State(s): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    if let Some(key) = &s.cfg.api_key
        && !matches!(req.uri().path(), "/healthz" | "/")
    {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| key.matches(g.trim())) {
            let mut r =
                ApiError::limit(StatusCode::UNAUTHORIZED, "api_key", "missing or wrong API key: send the header Authorization: Bearer <key>").into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

async fn index() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

async fn info(State(s): State<AppState>) -> axum::Json<Value> {
    let mut v = s.predictor.info();
    v["max_batch"] = json!(s.cfg.max_batch);
    axum::Json(v)
}

/// A post as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostJson {
    #[serde(default)]
    id: Option<String>,
    /// Empty or left out: an image-only post (classification runs).
    #[serde(default)]
    text: String,
    /// Base64 of the encoded image (PNG, JPEG); a `data:` URL prefix is accepted.
    #[serde(default)]
    image: Option<String>,
    /// OCR text of the image (CLFA models with the OCR stream).
    #[serde(default)]
    ocr: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchJson {
    posts: Vec<PostJson>,
}

/// A batch of MIM segments (`posts`, as for post models).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentBatchJson {
    posts: Vec<AlignedPost>,
}

/// One result of a batch request: the prediction, or its error (and the limit it hit).
fn result_value(r: Result<PredictResult, ApiError>) -> Value {
    match r {
        Ok(r) => serde_json::to_value(r).unwrap_or_else(|e| json!({"error": e.to_string()})),
        Err(e) => {
            let mut v = json!({"error": e.message});
            if let Some(l) = e.limit {
                v["limit"] = json!(l);
            }
            v
        }
    }
}

/// Most bytes of an oversize body read and thrown away before the 413, so that a client still
/// sending can read the answer (most clients, Python's `requests` and `urllib` among them, only
/// read once they have sent everything, and see a reset if the server closes first).
fn drain_bound(s: &AppState) -> usize {
    s.cfg.max_body_bytes.saturating_mul(4).max(8 << 20)
}

/// Read and discard at most `bound` more bytes of `body`.
async fn drain(body: &mut Body, bound: usize) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    while seen <= bound {
        match body.frame().await {
            Some(Ok(f)) => seen += f.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

/// The request body, at most `max_body_bytes` (413, after draining up to a bound), received
/// within `request_timeout_ms` (408: a client dribbling its body does not hold a worker).
async fn read_body(s: &AppState, headers: &HeaderMap, mut body: Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let limit = s.cfg.max_body_bytes;
    let too_big = || ApiError::limit(StatusCode::PAYLOAD_TOO_LARGE, "max_body_bytes", format!("request body above {limit} bytes"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let read = async {
        if let Some(len) = declared
            && len > limit
        {
            if len <= drain_bound(s) {
                drain(&mut body, len).await;
            }
            return Err(too_big());
        }
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")))?;
            if let Some(d) = frame.data_ref() {
                if buf.len() + d.len() > limit {
                    drain(&mut body, drain_bound(s)).await;
                    return Err(too_big());
                }
                buf.extend_from_slice(d);
            }
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(Duration::from_millis(s.cfg.request_timeout_ms), read).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::limit(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout_ms",
            format!("the request body did not arrive within {} ms", s.cfg.request_timeout_ms),
        )),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let status = if e.is_data() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
        ApiError::new(status, format!("invalid JSON body: {e}"))
    })
}

fn decode_base64(s: &str) -> Result<Vec<u8>, ApiError> {
    let data = match s.split_once(";base64,") {
        Some((prefix, rest)) if prefix.starts_with("data:") => rest,
        _ => s,
    };
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("image is not valid base64: {e}")))
}

/// Validate a post, decode its image (blocking pool), queue it, await the batch result.
async fn run_post(s: &AppState, id: Option<String>, text: String, image: Option<Vec<u8>>, ocr: Option<String>) -> Result<PredictResult, ApiError> {
    s.predictor.check_post(&text, image.is_some()).map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))?;
    let chars = text.chars().count();
    if chars > s.cfg.max_text_chars {
        return Err(ApiError::limit(
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_text_chars",
            format!("text has {chars} characters, above {}", s.cfg.max_text_chars),
        ));
    }
    let _in_flight = InFlight::enter(&s.in_flight);
    let input = image.map(ImageInput::Bytes).unwrap_or(ImageInput::None);
    let predictor = s.predictor.clone();
    let (img, no_image) = tokio::task::spawn_blocking(move || predictor.image(&input))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("image worker failed: {e}")))?
        .map_err(|e| match e.downcast_ref::<DataError>() {
            Some(DataError::ImageTooLarge { width, height, limit, .. }) => {
                ApiError::limit(StatusCode::PAYLOAD_TOO_LARGE, "max_pixels", format!("image is {width}x{height} pixels, above {limit}"))
            }
            _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")),
        })?;
    let (reply, rx) = oneshot::channel();
    s.queue
        .send(Job { input: Input::Post { post: Post { id, text, image: ImageInput::None, ocr }, image: img, no_image }, reply })
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model thread has stopped"))?;
    await_reply(s, rx).await
}

/// Wait for the model thread's answer, within the request time limit.
async fn await_reply(s: &AppState, rx: oneshot::Receiver<Result<PredictResult, String>>) -> Result<PredictResult, ApiError> {
    match tokio::time::timeout(Duration::from_millis(s.cfg.request_timeout_ms), rx).await {
        Err(_) => Err(ApiError::limit(StatusCode::GATEWAY_TIMEOUT, "request_timeout_ms", format!("no answer within {} ms", s.cfg.request_timeout_ms))),
        Ok(Err(_)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the model thread dropped the request")),
        // the segment's own fault (a feature row of the wrong width, …)
        Ok(Ok(Err(e))) if s.predictor.features().is_some() => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e)),
        Ok(Ok(Err(e))) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Ok(Ok(Ok(r))) => Ok(r),
    }
}

/// Validate a MIM segment, queue it, await the batch result.
async fn run_segment(s: &AppState, seg: AlignedPost) -> Result<PredictResult, ApiError> {
    let chars: usize = seg.words.iter().map(|w| w.chars().count()).sum();
    if chars > s.cfg.max_text_chars {
        return Err(ApiError::limit(
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_text_chars",
            format!("words have {chars} characters, above {}", s.cfg.max_text_chars),
        ));
    }
    let _in_flight = InFlight::enter(&s.in_flight);
    let (reply, rx) = oneshot::channel();
    s.queue.send(Job { input: Input::Segment(seg), reply }).map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model thread has stopped"))?;
    await_reply(s, rx).await
}

async fn guarded<F, Fut>(s: &AppState, endpoint: &'static str, f: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let start = Instant::now();
    s.metrics.request_started(endpoint);
    let response = match s.slots.clone().try_acquire_owned() {
        Err(_) => ApiError::limit(StatusCode::SERVICE_UNAVAILABLE, "max_concurrency", format!("more than {} requests in flight", s.cfg.max_concurrency))
            .into_response(),
        Ok(_permit) => match f().await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
    };
    s.metrics.observe_request(endpoint, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

async fn predict_one(State(s): State<AppState>, req: Request) -> Response {
    let st = s.clone();
    guarded(&s, "/v1/predict", || async move {
        let is_multipart = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("multipart/form-data"));
        if st.predictor.features().is_some() {
            if is_multipart {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "this MIM model takes a JSON segment {\"words\", \"audio\", \"video\"}, not a multipart post",
                ));
            }
            let (parts, body) = req.into_parts();
            let bytes = read_body(&st, &parts.headers, body).await?;
            let r = run_segment(&st, parse_json(&bytes)?).await?;
            return Ok(axum::Json(r).into_response());
        }
        let (id, text, image, ocr) = if is_multipart {
            tokio::time::timeout(Duration::from_millis(st.cfg.request_timeout_ms), read_multipart(&st, req)).await.map_err(|_| {
                ApiError::limit(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout_ms",
                    format!("the request body did not arrive within {} ms", st.cfg.request_timeout_ms),
                )
            })??
        } else {
            let (parts, body) = req.into_parts();
            let bytes = read_body(&st, &parts.headers, body).await?;
            let p: PostJson = parse_json(&bytes)?;
            let image = p.image.as_deref().map(decode_base64).transpose()?;
            (p.id, p.text, image, p.ocr)
        };
        let r = run_post(&st, id, text, image, ocr).await?;
        Ok(axum::Json(r).into_response())
    })
    .await
}

type MultipartPost = (Option<String>, String, Option<Vec<u8>>, Option<String>);

async fn read_multipart(s: &AppState, req: Request) -> Result<MultipartPost, ApiError> {
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok())
        && len > s.cfg.max_body_bytes
    {
        drain(&mut req.into_body(), drain_bound(s)).await;
        return Err(ApiError::limit(StatusCode::PAYLOAD_TOO_LARGE, "max_body_bytes", format!("request body above {} bytes", s.cfg.max_body_bytes)));
    }
    let mut mp = Multipart::from_request(req, &()).await.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid multipart body: {e}")))?;
    let (mut id, mut text, mut image, mut ocr) = (None, None, None, None);
    let mut total = 0usize;
    while let Some(field) = mp.next_field().await.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid multipart body: {e}")))? {
        let name = field.name().unwrap_or("").to_string();
        let bytes = field.bytes().await.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid multipart field '{name}': {e}")))?;
        total += bytes.len();
        if total > s.cfg.max_body_bytes {
            return Err(ApiError::limit(StatusCode::PAYLOAD_TOO_LARGE, "max_body_bytes", format!("request body above {} bytes", s.cfg.max_body_bytes)));
        }
        match name.as_str() {
            "text" => text = Some(String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "text is not UTF-8"))?),
            "id" => id = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "ocr" => ocr = Some(String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "ocr is not UTF-8"))?),
            "image" if !bytes.is_empty() => image = Some(bytes.to_vec()),
            "image" => {}
            other => return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("unknown multipart field '{other}'; expected text, image, id, ocr"))),
        }
    }
    // no text field: an image-only post (a tagger answers that it needs words)
    Ok((id, text.unwrap_or_default(), image, ocr))
}

/// A batch request of `n` posts (or segments) within `max_batch_posts`.
fn check_batch_len(s: &AppState, n: usize, what: &str) -> Result<(), ApiError> {
    if n > s.cfg.max_batch_posts {
        return Err(ApiError::limit(StatusCode::PAYLOAD_TOO_LARGE, "max_batch_posts", format!("{n} {what}, above {}", s.cfg.max_batch_posts)));
    }
    Ok(())
}

async fn predict_batch(State(s): State<AppState>, req: Request) -> Response {
    let st = s.clone();
    guarded(&s, "/v1/predict/batch", || async move {
        let (parts, body) = req.into_parts();
        let bytes = read_body(&st, &parts.headers, body).await?;
        if st.predictor.features().is_some() {
            let b: SegmentBatchJson = parse_json(&bytes)?;
            check_batch_len(&st, b.posts.len(), "segments")?;
            let futures = b.posts.into_iter().map(|p| {
                let st = st.clone();
                async move { result_value(run_segment(&st, p).await) }
            });
            return Ok(axum::Json(json!({"results": join_all(futures).await})).into_response());
        }
        let b: BatchJson = parse_json(&bytes)?;
        check_batch_len(&st, b.posts.len(), "posts")?;
        let futures = b.posts.into_iter().map(|p| {
            let st = st.clone();
            async move {
                let image = match p.image.as_deref().map(decode_base64).transpose() {
                    Ok(i) => i,
                    Err(e) => return json!({"error": e.message}),
                };
                result_value(run_post(&st, p.id, p.text, image, p.ocr).await)
            }
        });
        let results: Vec<Value> = join_all(futures).await;
        Ok(axum::Json(json!({"results": results})).into_response())
    })
    .await
}

/// Await futures concurrently, keeping order (small local join_all: tokio tasks would need
/// 'static borrows).
async fn join_all<F: std::future::Future<Output = Value> + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<Value> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| json!({"error": format!("worker failed: {e}")})));
    }
    out
}
