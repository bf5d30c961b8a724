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
        assert_eq!(v["placeholder_image"], true);
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
    assert_eq!(v["results"][1]["error"], "empty text");

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
