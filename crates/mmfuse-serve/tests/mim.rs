//! A MIM run is served too: `/v1/info` names the task and the feature sizes, `/v1/predict`
//! and `/v1/predict/batch` take JSON segments (words + one audio and one video row per word)
//! and answer the predictor's scores, a segment that does not fit the run is a 422 naming the
//! problem, a multipart post is a 415, and the web page knows the regression task.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use burn::tensor::Device;
use mmfuse_data::aligned::{read_dir, write_dir};
use mmfuse_data::aligned_synth::{AlignedSynthConfig, generate};
use mmfuse_predict::{AlignedPost, Output, Predictor};
use mmfuse_serve::{ServeConfig, router};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

fn post(uri: &str, content_type: &str, body: String) -> Request<Body> {
    Request::builder().method("POST").uri(uri).header("content-type", content_type).body(Body::from(body)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mim_runs_are_served() {
    let dir = std::env::temp_dir().join(format!("mmfuse-serve-mim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("aligned");
    write_dir(&generate(&AlignedSynthConfig { n_train: 64, n_dev: 16, n_test: 16, seed: 3, ..Default::default() }), &corpus).unwrap();
    let o = vec![format!("data.dir=\"{}\"", corpus.display()), "train.epochs=1".to_string()];
    let cfg = RunConfig::from_toml_str(include_str!("../../../configs/mim-synthetic.toml"), &o).unwrap();
    let run = dir.join("run");
    run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();

    let reference = Predictor::load(&run, &Device::flex()).unwrap();
    let app = router(Predictor::load(&run, &Device::flex()).unwrap(), ServeConfig::default());
    let dev = read_dir(&corpus).unwrap().dev;
    let (da, dv) = (dev.audio_dim, dev.video_dim);
    let segments: Vec<Value> = dev
        .samples
        .iter()
        .take(3)
        .map(|s| json!({"id": s.id, "words": s.words, "audio": s.audio.chunks(da).collect::<Vec<_>>(), "video": s.video.chunks(dv).collect::<Vec<_>>()}))
        .collect();
    let want: Vec<f32> = segments
        .iter()
        .map(|v| match reference.predict_aligned(&[serde_json::from_value::<AlignedPost>(v.clone()).unwrap()]).remove(0).unwrap().output {
            Output::Score { score } => score,
            other => panic!("{other:?}"),
        })
        .collect();

    let info = call(&app, Request::get("/v1/info").body(Body::empty()).unwrap()).await.1;
    assert_eq!(info["task"], "regression");
    assert_eq!((info["audio_dim"].as_u64(), info["video_dim"].as_u64()), (Some(da as u64), Some(dv as u64)));

    let (status, r) = call(&app, post("/v1/predict", "application/json", segments[0].to_string())).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["id"], segments[0]["id"]);
    assert!((r["score"].as_f64().unwrap() as f32 - want[0]).abs() < 1e-5, "{r} vs {}", want[0]);

    let mut bad = segments[1].clone();
    bad["video"][0] = json!([1.0]);
    let batch = json!({"posts": [segments[1], bad, segments[2]]}).to_string();
    let (status, r) = call(&app, post("/v1/predict/batch", "application/json", batch)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let results = r["results"].as_array().unwrap();
    assert!((results[0]["score"].as_f64().unwrap() as f32 - want[1]).abs() < 1e-5, "{r}");
    assert!(results[1]["error"].as_str().unwrap().contains(&format!("video row 0 has 1 values; this run's video features have {dv}")), "{r}");
    assert!((results[2]["score"].as_f64().unwrap() as f32 - want[2]).abs() < 1e-5, "{r}");

    let mut wrong = segments[0].clone();
    wrong["audio"] = json!([]);
    let (status, r) = call(&app, post("/v1/predict", "application/json", wrong.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(r["error"].as_str().unwrap().contains("audio rows for"), "{r}");
    // a text + image post is not a segment
    let (status, r) = call(&app, post("/v1/predict", "application/json", json!({"text": "hello"}).to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let (status, _) = call(&app, post("/v1/predict", "multipart/form-data; boundary=x", "--x--\r\n".into())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // the page has the segment form for regression runs
    let page = call(&app, Request::get("/").body(Body::empty()).unwrap()).await.1;
    assert!(page.as_str().unwrap().contains("info.task === 'regression'"));
    let _ = std::fs::remove_dir_all(&dir);
}
