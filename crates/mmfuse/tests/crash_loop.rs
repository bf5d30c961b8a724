//! Crash loop: `mmfuse train` run as a child process and killed with SIGKILL at random moments
//! (checkpoint writes slowed down so that many kills land inside them), resumed each time, ends
//! with the same weights, bit for bit, and the same `metrics.jsonl` as an uninterrupted run of
//! the same seed.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const KILLS: usize = 20;

fn config(dir: &Path, corpus: &Path) -> PathBuf {
    let toml = format!(
        r#"[data]
task = "classify"
dir = "{}"
max_len = 12
[model]
d_model = 16
n_heads = 2
d_ff = 32
n_layers = 1
cnn_channels = [8, 8]
[model.concat]
d_hidden = 16
[train]
epochs = 8
batch_size = 16
eval_every = 2
patience = 0
seed = 9
"#,
        corpus.join("cls").display()
    );
    let p = dir.join("config.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

fn train(config: &Path, out: &Path, resume: bool) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mmfuse"));
    c.args(["--quiet", "train", "--config"]).arg(config).arg("--out").arg(out);
    if resume {
        c.arg("--resume");
    }
    c.env("MMFUSE_TEST_CHECKPOINT_PAUSE_MS", "15").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start mmfuse train")
}

/// Every float parameter of a run's checkpoint `ck`, in module order, rebuilt the way the
/// predictor does.
fn weights(run: &Path, ck: &str) -> Vec<Vec<f32>> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
        }
    }
    let cfg = mmfuse_models::package::PackageConfig::load(run).unwrap();
    let tok = mmfuse_data::text::TextTokenizer::from_file(&run.join("tokenizer.json"), cfg.data.max_len, true).unwrap();
    let labels: mmfuse_data::labels::LabelMap = serde_json::from_slice(&read(&run.join("labels.json"))).unwrap();
    let shapes = mmfuse_models::package::ModelShapes::from_run_dir(run, &cfg.model, &cfg.data, tok.vocab_size()).unwrap();
    let device = burn::tensor::Device::flex();
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(read(&run.join(format!("checkpoints/{ck}/model.bpk"))))).unwrap();
    let mmfuse_models::registry::Model::Posts(m) = mmfuse_models::registry::build(&cfg.model, &cfg.data, &shapes, labels.len(), &device).unwrap() else {
        panic!("a post model")
    };
    let m = m.load_record(record);
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    assert!(c.0.len() > 4, "too few parameters");
    c.0
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn scores(run: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&read(&run.join("results.json"))).unwrap();
    serde_json::json!({"dev": v["dev"], "test": v["test"], "best_step": v["best_step"], "steps": v["steps"]})
}

#[test]
fn training_killed_at_random_moments_resumes_to_the_same_run() {
    let dir = std::env::temp_dir().join(format!("mmfuse-crash-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("corpus");
    mmfuse_data::synth::generate(&corpus, &mmfuse_data::synth::SynthConfig { seed: 2, n_train: 640, n_dev: 64, n_test: 64, ..Default::default() }).unwrap();
    let cfg = config(&dir, &corpus);

    let straight = dir.join("straight");
    let start = Instant::now();
    assert!(train(&cfg, &straight, false).wait().unwrap().success());
    let full = start.elapsed();

    // kill at moments spread over a life of the run (seeded, so the test is the same each time)
    let crashed = dir.join("crashed");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let (mut kills, mut in_write, mut lives) = (0, 0, 0);
    while kills < KILLS && lives < 10 * KILLS {
        lives += 1;
        let mut child = train(&cfg, &crashed, lives > 1);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = full.mul_f64(0.02 + 0.04 * (rng % 1000) as f64 / 1000.0);
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_some() {
            break; // finished before the kill
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        in_write += crashed.join("checkpoints/.last.tmp").exists() as usize;
    }
    // the last life runs to the end
    assert!(train(&cfg, &crashed, true).wait().unwrap().success(), "the final resume failed");
    eprintln!("{kills} kills ({in_write} inside a checkpoint write) over {lives} lives; uninterrupted run {full:?}");
    assert!(kills >= KILLS, "only {kills} kills landed before the run finished");
    assert!(in_write >= 1, "no kill landed inside a checkpoint write");

    let rows = |run: &Path| String::from_utf8(read(&run.join("metrics.jsonl"))).unwrap();
    assert_eq!(rows(&straight), rows(&crashed), "metrics.jsonl differs from the uninterrupted run's");
    assert_eq!(scores(&straight), scores(&crashed));
    // the weights, value by value (the files also hold per-process parameter ids)
    for ck in ["last", "best"] {
        assert!(weights(&straight, ck) == weights(&crashed, ck), "checkpoints/{ck} holds other weights than the uninterrupted run's");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
