//! The HTTP API: every bad request gets the right 4xx JSON error naming its limit, the server
//! keeps serving afterwards, dynamic batching groups concurrent requests, and answers equal
//! `mmfuse predict`'s for the same inputs.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use base64::Engine;
use burn::tensor::Device;
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_predict::{ImageInput, Post, Predictor};
use mmfuse_serve::{ServeConfig, router};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tower::ServiceExt;

fn train(dir: &Path) -> (PathBuf, PathBuf) {
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 4, n_train: 200, n_dev: 32, n_test: 32, ..Default::default() }).unwrap();
    let o: Vec<String> = [
        format!("data.dir=\"{}\"", corpus.join("ner").display()),
        "model.d_model=16".into(),
        "model.n_heads=2".into(),
        "model.d_ff=32".into(),
        "model.n_layers=1".into(),
        "model.cnn_channels=[8]".into(),
        "model.concat.d_hidden=16".into(),
        "train.epochs=1".into(),
    ]
    .to_vec();
    let cfg = RunConfig::from_toml_str("[data]\ntask = \"ner\"\ndir = \"x\"\n[model]\n[train]\n", &o).unwrap();
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    (run, corpus)
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

fn json_req(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder().method("POST").uri(uri).header("content-type", "application/json").body(body.into()).unwrap()
}

fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    for (kind, data) in
        [(&b"IHDR"[..], [&w.to_be_bytes()[..], &h.to_be_bytes()[..], &[8, 2, 0, 0, 0][..]].concat()), (&b"IDAT"[..], vec![0x78, 0x9c, 0x63, 0, 0])]
    {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_limits_errors_batching_and_parity() {
    let dir = std::env::temp_dir().join(format!("mmfuse-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run, corpus) = train(&dir);
    let cfg = ServeConfig { max_body_bytes: 200_000, max_text_chars: 100, max_batch_posts: 4, max_wait_ms: 50, max_batch: 8, ..Default::default() };
    let app = router(Predictor::load(&run, &Device::flex()).unwrap(), cfg);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let img_path = corpus.join("ner/images/100000.png");
    let img = std::fs::read(&img_path).unwrap();

    // bad requests, each with its status and, where a limit is violated, its name
    let cases: Vec<(Request<Body>, StatusCode, Option<&str>)> = vec![
        (json_req("/v1/predict", "{\"text\": "), StatusCode::BAD_REQUEST, None),
        (json_req("/v1/predict", r#"{"text": 3}"#), StatusCode::UNPROCESSABLE_ENTITY, None),
        (json_req("/v1/predict", r#"{"text": "a", "colour": 1}"#), StatusCode::UNPROCESSABLE_ENTITY, None),
        (json_req("/v1/predict", r#"{"text": "   "}"#), StatusCode::UNPROCESSABLE_ENTITY, None),
        (json_req("/v1/predict", json!({"text": "x".repeat(101)}).to_string()), StatusCode::UNPROCESSABLE_ENTITY, Some("max_text_chars")),
        (json_req("/v1/predict", json!({"text": "big", "image": "A".repeat(300_000)}).to_string()), StatusCode::PAYLOAD_TOO_LARGE, Some("max_body_bytes")),
        (
            json_req("/v1/predict", json!({"text": "bomb", "image": b64(&png_header(20000, 20000))}).to_string()),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("max_pixels"),
        ),
        (json_req("/v1/predict", json!({"text": "not b64", "image": "%%%"}).to_string()), StatusCode::UNPROCESSABLE_ENTITY, None),
        (
            json_req("/v1/predict/batch", json!({"posts": (0..5).map(|_| json!({"text": "a"})).collect::<Vec<_>>()}).to_string()),
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("max_batch_posts"),
        ),
    ];
    let mut jpeg = Vec::new();
    image::RgbImage::from_pixel(64, 64, image::Rgb([200, 10, 10])).write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let truncated = json_req("/v1/predict", json!({"text": "cut", "image": b64(&jpeg[..jpeg.len() / 3])}).to_string());
    for (req, status, limit) in cases.into_iter().chain([(truncated, StatusCode::UNPROCESSABLE_ENTITY, None)]) {
        let uri = req.uri().to_string();
        let (s, v) = call(&app, req).await;
        assert_eq!(s, status, "{uri}: {v}");
        assert!(v["error"].is_string(), "{v}");
        assert_eq!(v["limit"].as_str(), limit, "{v}");
    }

    // the server still serves, and answers what `mmfuse predict` answers
    let text = "so i met Kalo Terzu at the station";
    let (s, v) = call(&app, json_req("/v1/predict", json!({"id": "p1", "text": text, "image": b64(&img)}).to_string())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let p = Predictor::load(&run, &Device::flex()).unwrap();
    let direct =
        p.predict(vec![Post { id: Some("p1".into()), text: text.into(), image: ImageInput::Path(img_path.clone()), ocr: None }]).pop().unwrap().unwrap();
    assert_eq!(v, serde_json::to_value(&direct).unwrap());

    // multipart upload gives the same answer
    let boundary = "XbOuNdArY";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\np1\r\n").as_bytes());
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{text}\r\n").as_bytes());
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&img);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri("/v1/predict")
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body))
        .unwrap();
    let (s, mv) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{mv}");
    assert_eq!(mv, v);

    // dynamic batching: 16 concurrent requests run in fewer than 16 model calls
    let (_, before) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let count = |m: &str| -> (f64, f64) {
        let get = |k: &str| m.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().last()).unwrap().parse::<f64>().unwrap();
        (get("mmfuse_batch_size_count"), get("mmfuse_batch_size_sum"))
    };
    let (c0, s0) = count(before.as_str().unwrap());
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { call(&app, json_req("/v1/predict", json!({"text": format!("post {i} about Zedkor")}).to_string())).await })
        })
        .collect();
    for h in handles {
        let (s, v) = h.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["modalities"], json!(["text"]), "a post without an image is text-only");
    }
    let (_, after) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let (c1, s1) = count(after.as_str().unwrap());
    assert_eq!(s1 - s0, 16.0, "every post goes through one model call");
    assert!(c1 - c0 < 16.0, "16 concurrent posts took {} model calls: no batching", c1 - c0);
    assert!(after.as_str().unwrap().contains("mmfuse_requests_total{endpoint=\"/v1/predict\",status=\"413\"} 2"));

    // batch endpoint: per-post errors in order
    let (s, v) = call(&app, json_req("/v1/predict/batch", json!({"posts": [{"text": text}, {"text": ""}]}).to_string())).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["results"][0]["entities"].is_array());
    assert_eq!(v["results"][1]["error"], "empty text: a tagger needs words to tag");

    // documents
    let (s, doc) = call(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    let resp = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A MIM run is served too: `/v1/info` names the task and the feature sizes, `/v1/predict`
/// and `/v1/predict/batch` take JSON segments (words + one audio and one video row per word)
/// and answer the predictor's scores, a segment that does not fit the run is a 422 naming the
/// problem, a multipart post is a 415, and the web page knows the regression task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mim_runs_are_served() {
    let dir = std::env::temp_dir().join(format!("mmfuse-serve-mim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("aligned");
    mmfuse_data::aligned::write_dir(
        &mmfuse_data::aligned_synth::generate(&mmfuse_data::aligned_synth::AlignedSynthConfig {
            n_train: 64,
            n_dev: 16,
            n_test: 16,
            seed: 3,
            ..Default::default()
        }),
        &corpus,
    )
    .unwrap();
    let o = vec![format!("data.dir=\"{}\"", corpus.display()), "train.epochs=1".to_string()];
    let cfg = RunConfig::from_toml_str(include_str!("../../../configs/mim-synthetic.toml"), &o).unwrap();
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();

    let reference = Predictor::load(&run, &Device::flex()).unwrap();
    let app = router(Predictor::load(&run, &Device::flex()).unwrap(), ServeConfig::default());
    let dev = mmfuse_data::aligned::read_dir(&corpus).unwrap().dev;
    let (da, dv) = (dev.audio_dim, dev.video_dim);
    let segments: Vec<Value> = dev
        .samples
        .iter()
        .take(3)
        .map(|s| json!({"id": s.id, "words": s.words, "audio": s.audio.chunks(da).collect::<Vec<_>>(), "video": s.video.chunks(dv).collect::<Vec<_>>()}))
        .collect();
    let want: Vec<f32> = segments
        .iter()
        .map(|v| match reference.predict_aligned(&[serde_json::from_value::<mmfuse_predict::AlignedPost>(v.clone()).unwrap()]).remove(0).unwrap().output {
            mmfuse_predict::Output::Score { score } => score,
            other => panic!("{other:?}"),
        })
        .collect();

    let info = call(&app, Request::get("/v1/info").body(Body::empty()).unwrap()).await.1;
    assert_eq!(info["task"], "regression");
    assert_eq!((info["audio_dim"].as_u64(), info["video_dim"].as_u64()), (Some(da as u64), Some(dv as u64)));

    let (status, r) = call(&app, json_req("/v1/predict", segments[0].to_string())).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["id"], segments[0]["id"]);
    assert!((r["score"].as_f64().unwrap() as f32 - want[0]).abs() < 1e-5, "{r} vs {}", want[0]);

    let mut bad = segments[1].clone();
    bad["video"][0] = json!([1.0]);
    let batch = json!({"posts": [segments[1], bad, segments[2]]}).to_string();
    let (status, r) = call(&app, json_req("/v1/predict/batch", batch)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let results = r["results"].as_array().unwrap();
    assert!((results[0]["score"].as_f64().unwrap() as f32 - want[1]).abs() < 1e-5, "{r}");
    assert!(results[1]["error"].as_str().unwrap().contains(&format!("video row 0 has 1 values; this run's video features have {dv}")), "{r}");
    assert!((results[2]["score"].as_f64().unwrap() as f32 - want[2]).abs() < 1e-5, "{r}");

    let mut wrong = segments[0].clone();
    wrong["audio"] = json!([]);
    let (status, r) = call(&app, json_req("/v1/predict", wrong.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(r["error"].as_str().unwrap().contains("audio rows for"), "{r}");
    // a text + image post is not a segment
    let (status, r) = call(&app, json_req("/v1/predict", json!({"text": "hello"}).to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let (status, _) = call(
        &app,
        Request::builder().method("POST").uri("/v1/predict").header("content-type", "multipart/form-data; boundary=x").body(Body::from("--x--\r\n")).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // the page has the segment form for regression runs
    let page = call(&app, Request::get("/").body(Body::empty()).unwrap()).await.1;
    assert!(page.as_str().unwrap().contains("info.task === 'regression'"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serve `run` on a free loopback port (in this runtime); the port.
fn spawn_server(run: &Path, cfg: ServeConfig) -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let predictor = Predictor::load(run, &Device::flex()).unwrap();
    tokio::spawn(mmfuse_serve::serve(predictor, cfg, ([127, 0, 0, 1], port).into()));
    port
}

/// A connection to the server on `port`, once it accepts (10 s read time-out).
fn connect(port: u16) -> std::net::TcpStream {
    for _ in 0..100 {
        if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            return c;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the server did not start");
}

/// With an API key every route but `/healthz` and the page answers 401 without the right
/// `Authorization: Bearer` header; no CORS header is ever sent; no request field makes the
/// server open a file (an image given as a path is not base64, a 422).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_no_cors_and_no_file_access() {
    let dir = std::env::temp_dir().join(format!("mmfuse-serve-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run, _) = train(&dir);
    let cfg = ServeConfig { api_key: Some(mmfuse_serve::ApiKey::new("s3cret-key")), ..Default::default() };
    let app = router(Predictor::load(&run, &Device::flex()).unwrap(), cfg);
    let body = json!({"text": "Kalo Terzu went home"}).to_string();
    let with = |key: Option<&str>| {
        let mut b = Request::builder().method("POST").uri("/v1/predict").header("content-type", "application/json").header("origin", "http://evil.example");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        b.body(Body::from(body.clone())).unwrap()
    };
    for key in [None, Some("s3cret-kez"), Some("s3cret"), Some("")] {
        let (status, v) = call(&app, with(key)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}: {v}");
        assert_eq!(v["limit"], "api_key");
    }
    let resp = app.clone().oneshot(with(Some("s3cret-key"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "CORS header sent: {:?}", resp.headers());
    for open in ["/healthz", "/"] {
        assert_eq!(call(&app, Request::get(open).body(Body::empty()).unwrap()).await.0, StatusCode::OK, "{open}");
    }
    for closed in ["/v1/info", "/metrics", "/openapi.json"] {
        assert_eq!(call(&app, Request::get(closed).body(Body::empty()).unwrap()).await.0, StatusCode::UNAUTHORIZED, "{closed}");
    }
    // a CORS preflight gets no CORS answer
    let pre = Request::builder().method("OPTIONS").uri("/v1/predict").header("origin", "http://evil.example").header("access-control-request-method", "POST");
    let resp = app.clone().oneshot(pre.header("authorization", "Bearer s3cret-key").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // paths and URLs are not images
    for image in ["/etc/passwd", "file:///etc/passwd", "http://127.0.0.1:1/x.png"] {
        let b = json!({"text": "hello there", "image": image}).to_string();
        let req = Request::builder().method("POST").uri("/v1/predict").header("content-type", "application/json").header("authorization", "Bearer s3cret-key");
        let (status, v) = call(&app, req.body(Body::from(b)).unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{image}: {v}");
        assert!(v["error"].as_str().unwrap().contains("base64"), "{image}: {v}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Over a real socket: a client that sends a whole oversize body before reading (with a
/// Content-Length, and chunked) reads the 413 instead of a connection reset, and a client that
/// stops sending its body gets a 408 once the request time limit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_stalled_bodies_get_readable_answers() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("mmfuse-serve-tcp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run, _) = train(&dir);
    let port = spawn_server(&run, ServeConfig { max_body_bytes: 64 << 10, request_timeout_ms: 700, ..Default::default() });
    let connect = move || connect(port);
    let status_of = |mut c: std::net::TcpStream| -> String {
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).lines().next().unwrap_or("").to_string()
    };
    let big = vec![b'x'; 4 << 20]; // 4 MiB: more than the socket buffers hold
    let results = tokio::task::spawn_blocking(move || {
        // Content-Length declared
        let mut c = connect();
        let head = format!("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", big.len());
        c.write_all(head.as_bytes()).unwrap();
        let sent = c.write_all(&big).map_err(|e| e.to_string());
        let declared = (sent, status_of(c));
        // chunked, no length
        let mut c = connect();
        c.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        let mut sent = Ok(());
        for part in big.chunks(256 << 10) {
            if let Err(e) = c.write_all(format!("{:x}\r\n", part.len()).as_bytes()).and_then(|_| c.write_all(part)).and_then(|_| c.write_all(b"\r\n")) {
                sent = Err(e.to_string());
                break;
            }
        }
        let _ = c.write_all(b"0\r\n\r\n");
        let chunked = (sent, status_of(c));
        // a body that stops after 10 of 100 bytes
        let mut c = connect();
        c.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"text\": \"").unwrap();
        let t = std::time::Instant::now();
        let stalled = status_of(c);
        (declared, chunked, stalled, t.elapsed())
    })
    .await
    .unwrap();
    let ((sent1, s1), (sent2, s2), s3, waited) = results;
    assert_eq!(sent1, Ok(()), "the client could not send its body (reset): {s1}");
    assert!(s1.contains("413"), "{s1}");
    assert_eq!(sent2, Ok(()), "the chunked client could not send its body: {s2}");
    assert!(s2.contains("413"), "{s2}");
    assert!(s3.contains("408"), "{s3}");
    assert!(waited < std::time::Duration::from_secs(5), "the stalled request took {waited:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Slow-loris clients over a real socket: 50 connections dribbling a request head one byte every
/// 50 ms (4 s for the whole head), a connection that never sends anything, and a keep-alive
/// connection left idle after its answer are all closed by the server once the header time-out
/// (500 ms here) passes, long before the heads complete; a normal request made meanwhile is
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dribbled_heads_and_idle_connections_are_closed_at_the_header_timeout() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("mmfuse-serve-slow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run, _) = train(&dir);
    let port = spawn_server(&run, ServeConfig { header_timeout_ms: 500, ..Default::default() });
    let post = "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 32\r\n\r\n{\"text\": \"Kalo Terzu went home\"}";
    let (closed_after, normal) = tokio::task::spawn_blocking(move || {
        // when the server closes `c` (EOF or reset), sending `dribble` one byte per 50 ms meanwhile
        let closed = |mut c: std::net::TcpStream, dribble: &[u8]| -> Duration {
            let t = Instant::now();
            c.set_nonblocking(true).unwrap();
            let mut sent = 0;
            loop {
                match c.peek(&mut [0u8; 1]) {
                    Ok(0) => return t.elapsed(),
                    Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return t.elapsed(),
                    _ => {}
                }
                if sent < dribble.len() && c.write(&dribble[sent..sent + 1]).is_ok() {
                    sent += 1;
                }
                assert!(t.elapsed() < Duration::from_secs(8), "the connection was not closed ({sent} bytes sent)");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let head = post.split("\r\n\r\n").next().unwrap().as_bytes().to_vec();
        assert!(head.len() * 50 > 4000, "the head takes 4 s to dribble");
        let dribblers: Vec<_> = (0..50)
            .map(|_| {
                let (c, head) = (connect(port), head.clone());
                std::thread::spawn(move || closed(c, &head))
            })
            .collect();
        let silent = std::thread::spawn(move || closed(connect(port), b""));
        let mut ka = connect(port);
        ka.write_all(post.as_bytes()).unwrap();
        let mut answer = [0u8; 12];
        ka.read_exact(&mut answer).unwrap();
        let mut rest = [0u8; 4096];
        let _ = ka.set_read_timeout(Some(Duration::from_millis(200))).map(|_| ka.read(&mut rest));
        let kept_alive = std::thread::spawn(move || closed(ka, b""));
        // a normal request while the dribblers hold their connections
        let mut c = connect(port);
        c.write_all(post.replace("Host: x", "Host: x\r\nConnection: close").as_bytes()).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        let mut closed_after: Vec<(&str, Duration)> = dribblers.into_iter().map(|d| ("dribbled head", d.join().unwrap())).collect();
        closed_after.push(("silent", silent.join().unwrap()));
        closed_after.push(("idle keep-alive", kept_alive.join().unwrap()));
        (closed_after, (String::from_utf8_lossy(&answer).to_string(), out.lines().next().unwrap_or("").to_string()))
    })
    .await
    .unwrap();
    assert!(normal.0.contains("200"), "{normal:?}");
    assert!(normal.1.contains("200"), "{normal:?}");
    let longest = closed_after.iter().map(|c| c.1).max().unwrap();
    for (what, after) in &closed_after {
        assert!(*after >= Duration::from_millis(100) && *after < Duration::from_millis(2500), "{what}: closed after {after:?}");
    }
    eprintln!("{} slow or idle connections closed, the last {longest:?} after connecting", closed_after.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fuzzed request bodies (valid posts, batches and a post with an image, under random byte
/// edits) are answered 200 or 4xx, never 5xx, and the server keeps answering. `PROPTEST_CASES`
/// sets the cases (CI: 256).
#[test]
fn fuzzed_request_bodies_get_4xx_never_5xx() {
    use mmfuse_testkit::proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("mmfuse-serve-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run, _) = train(&dir);
    let app = rt.block_on(async { router(Predictor::load(&run, &Device::flex()).unwrap(), ServeConfig { max_body_bytes: 1 << 20, ..Default::default() }) });
    let png = base64::engine::general_purpose::STANDARD.encode(png_header(4, 4));
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("/v1/predict", json!({"id": "1", "text": "Kalo Terzu went to Paris"}).to_string().into_bytes()),
        ("/v1/predict", json!({"text": "a post with an image", "image": png, "ocr": "x"}).to_string().into_bytes()),
        ("/v1/predict/batch", json!({"posts": [{"text": "one"}, {"text": "two", "id": "b"}]}).to_string().into_bytes()),
    ];
    let mut runner = mmfuse_testkit::proptest::test_runner::TestRunner::new(mmfuse_testkit::cases());
    let edits = (0usize..3, mmfuse_testkit::edits());
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::new());
    runner
        .run(&edits, |(k, e)| {
            let (uri, seed) = &seeds[k];
            let b = mmfuse_testkit::mutate(seed, &e);
            let (status, v) = rt.block_on(call(&app, json_req(uri, b.clone())));
            *statuses.lock().unwrap().entry(status.as_u16()).or_insert(0usize) += 1;
            prop_assert!(!status.is_server_error(), "{status} for {:?}: {v}", String::from_utf8_lossy(&b));
            Ok(())
        })
        .unwrap();
    eprintln!("fuzzed bodies by status: {:?}", statuses.lock().unwrap());
    // still serving
    let (status, _) = rt.block_on(call(&app, json_req("/v1/predict", json!({"text": "still here"}).to_string())));
    assert_eq!(status, StatusCode::OK);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hostile clients over a real socket: a malformed request line, a malformed header, invalid
/// UTF-8 and 100,000-deep nesting in the JSON body, and 200 idle connections held open: each bad
/// request gets a 4xx (or the connection is closed by the HTTP layer), and a normal request
/// made while all of that is going on is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_stop_the_server() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("mmfuse-serve-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run, _) = train(&dir);
    let port = spawn_server(&run, ServeConfig { request_timeout_ms: 2000, ..Default::default() });
    let out = tokio::task::spawn_blocking(move || {
        let connect = || connect(port);
        let send = |raw: &[u8]| -> String {
            let mut c = connect();
            let _ = c.write_all(raw);
            let mut out = Vec::new();
            let _ = c.read_to_end(&mut out);
            String::from_utf8_lossy(&out).lines().next().unwrap_or("(closed)").to_string()
        };
        let idle: Vec<std::net::TcpStream> = (0..200).map(|_| connect()).collect();
        let post = |body: &[u8]| {
            let mut r = format!(
                "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        };
        let deep = format!("{{\"text\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let answers = vec![
            ("request line", send(b"GARBAGE\r\n\r\n")),
            ("header", send(b"POST /v1/predict HTTP/1.1\r\nHost x\r\n\r\n")),
            ("invalid UTF-8", send(&post(b"{\"text\": \"\xff\xfe bad\"}"))),
            ("deep nesting", send(&post(deep.as_bytes()))),
            ("normal", send(&post(b"{\"text\": \"Kalo Terzu went home\"}"))),
        ];
        drop(idle);
        answers
    })
    .await
    .unwrap();
    for (what, status) in &out {
        let code: u16 = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        if *what == "normal" {
            assert_eq!(code, 200, "{what}: {status}");
        } else {
            assert!(code == 0 || (400..500).contains(&code), "{what}: {status}");
        }
    }
    eprintln!("{out:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
