//! The web page in a real browser: headless Chromium (Debian's `chromium`) driven by
//! `playwright-core` (e2e/page.mjs) types a post, uploads an image, clicks Predict, and checks
//! that the highlighted entities equal the API's answer and that the page says which
//! modalities were used (text + image, then text only once the image is removed).
//!
//! Needs `node`, `/usr/bin/chromium` (or `$CHROMIUM`) and `npm install` in `e2e/`;
//! `scripts/test.sh` (the README's test command, run by CI) installs them and sets
//! `MMFUSE_REQUIRE_BROWSER=1`, which turns a missing piece into a failure instead of a skip.

use burn::tensor::Device;
use mmfuse_data::synth::{SynthConfig, generate};
use mmfuse_predict::Predictor;
use mmfuse_serve::{ServeConfig, router};
use mmfuse_train::{RunConfig, TrainOptions, run_training};
use std::path::Path;

fn missing_tools(e2e: &Path) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("no Chromium at {chromium} (apt-get install chromium)"));
    }
    if std::process::Command::new("node").arg("--version").output().is_err() {
        return Some("no node on PATH".into());
    }
    if !e2e.join("node_modules/playwright-core").exists() {
        return Some(format!("playwright-core is not installed (cd {} && npm install --no-package-lock)", e2e.display()));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_highlights_the_predicted_entities() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    if let Some(why) = missing_tools(&e2e) {
        if std::env::var_os("MMFUSE_REQUIRE_BROWSER").is_some() {
            panic!("browser test required but {why}");
        }
        eprintln!("SKIPPED web_page_highlights_the_predicted_entities: {why} (scripts/test.sh installs it)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mmfuse-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let corpus = dir.join("corpus");
    generate(&corpus, &SynthConfig { seed: 2, n_train: 1000, n_dev: 64, n_test: 32, ..Default::default() }).unwrap();
    let o: Vec<String> = vec![
        format!("data.dir=\"{}\"", corpus.join("ner").display()),
        "model.d_model=32".into(),
        "model.n_heads=2".into(),
        "model.d_ff=64".into(),
        "model.n_layers=1".into(),
        "model.cnn_channels=[8,16]".into(),
        "model.concat.d_hidden=32".into(),
        "train.epochs=6".into(),
        "train.lr=3e-3".into(),
    ];
    let cfg = RunConfig::from_toml_str("[data]\ntask = \"ner\"\ndir = \"x\"\n[model]\n[train]\n", &o).unwrap();
    let run = dir.join("run");
    let summary = run_training(&cfg, &run, &TrainOptions { quiet: true, ..Default::default() }).unwrap();
    eprintln!("test scores of the served model: {:?}", summary.test.as_ref().map(|t| &t.scores));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Predictor::load(&run, &Device::flex()).unwrap(), ServeConfig::default());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // a held-out post of the synthetic test split in which the model finds an entity
    let (test, _) = mmfuse_data::conll::read_conll(&corpus.join("ner/test.txt"), &Default::default()).unwrap();
    let predictor = Predictor::load(&run, &Device::flex()).unwrap();
    let post = test
        .iter()
        .find(|s| {
            let post = mmfuse_predict::Post { id: None, text: s.words.join(" "), image: mmfuse_predict::ImageInput::Path(corpus.join(format!("ner/images/{}.png", s.id))), ocr: None };
            matches!(predictor.predict(vec![post]).pop(), Some(Ok(mmfuse_predict::PredictResult { output: mmfuse_predict::Output::Entities { ref entities, .. }, .. })) if !entities.is_empty())
        })
        .expect("the model finds an entity in some test post");
    let image = corpus.join(format!("ner/images/{}.png", post.id));
    let shot = dir.join("page.png");
    // (std's process on the blocking pool: tokio's `process` feature would give the test build
    // another tokio, and every crate above it a second build)
    let mut node = std::process::Command::new("node");
    node.arg(e2e.join("page.mjs")).arg(format!("http://{addr}")).arg(&image).arg(&shot).arg(post.words.join(" ")).env("REQUIRE_ENTITY", "1");
    let out = tokio::task::spawn_blocking(move || node.output()).await.expect("node runner").expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "page test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("entities rendered"), "{stdout}");
    assert!(stdout.contains("modalities rendered: text,image / text"), "{stdout}");
    assert!(shot.exists());
    if let Ok(keep) = std::env::var("MMFUSE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
