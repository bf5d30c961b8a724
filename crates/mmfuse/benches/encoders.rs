//! Forward throughput of the pretrained encoders on the CPU backend (the `encode` workload), in
//! the format `bench/encoders.sh` compares with PyTorch eager, `torch.compile` and ONNX Runtime
//! (`bench/pytorch/encoders.py`): all-MiniLM-L6-v2 (batch 32 × 64 tokens, last hidden state) and
//! torchvision MobileNetV2 (batch 8 × 224×224, logits), samples/s of each of `--reps N`
//! repeats (7) after one warm-up. Prints one JSON line per model, as bench/run.sh's results.
//!
//! `cargo bench -p mmfuse --bench encoders [-- --reps N --models minilm,mobilenet_v2]` (models from `../shared/models`, or
//! `MMFUSE_SHARED_DIR`); threads: `RAYON_NUM_THREADS`.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mmfuse_models::encoders::{BertModel, MobileNetV2};
use std::path::PathBuf;
use std::time::Instant;

/// Samples/s of each of `reps` repeats of `f` (a batch of `b`), after one warm-up.
fn rates<F: FnMut()>(reps: usize, b: usize, mut f: F) -> Vec<f64> {
    f(); // warm-up
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            b as f64 / t.elapsed().as_secs_f64()
        })
        .collect()
}

/// One result line in bench/run.sh's format.
fn emit(model: &str, runs: &[f64]) {
    let mut v = runs.to_vec();
    v.sort_by(f64::total_cmp);
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
    let list = runs.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ");
    println!(
        "{{\"impl\": \"mmfuse\", \"model\": \"{model}\", \"metric\": \"samples_per_s\", \"unit\": \"samples/s\", \"median\": {:.3}, \"min\": {:.3}, \"max\": {:.3}, \"threads\": {threads}, \"device\": \"cpu\", \"runs\": [{list}]}}",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    );
}

fn main() {
    // as `mmfuse encode`, training and prediction run: on the compute pool's threads
    mmfuse_kernels::device::on_compute_pool(run);
}

fn run() {
    let args: Vec<String> = std::env::args().collect();
    let reps = args.iter().position(|a| a == "--reps").and_then(|i| args.get(i + 1)).and_then(|r| r.parse().ok()).unwrap_or(7usize);
    let models = args.iter().position(|a| a == "--models").and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| "minilm,mobilenet_v2".into());
    let wanted = |m: &str| models.split(',').any(|x| x == m);
    let shared =
        std::env::var_os("MMFUSE_SHARED_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let device = Device::flex();
    if wanted("minilm") {
        minilm(&shared, &device, reps);
    }
    if wanted("mobilenet_v2") {
        mobilenet(&shared, &device, reps);
    }
}

fn minilm(shared: &std::path::Path, device: &Device, reps: usize) {
    let device = device.clone();
    let (bert, _) = BertModel::load(&shared.join("models/all-minilm-l6-v2"), &device).expect("MiniLM");
    let (b, l) = (32, 64);
    let ids: Vec<i64> = (0..b * l).map(|i| if i % l == 0 { 101 } else { 1000 + (i * 7919 % 20000) as i64 }).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, l]), &device);
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![true; b * l], [b, l]), &device);
    let runs = rates(reps, b, || {
        let h = bert.forward(ids.clone(), mask.clone(), None);
        let _ = h.into_data();
    });
    emit("minilm", &runs);
}

fn mobilenet(shared: &std::path::Path, device: &Device, reps: usize) {
    let device = device.clone();

    let net = MobileNetV2::load(shared.join("models/mobilenet-v2-imagenet/model.safetensors"), &device).expect("MobileNetV2");
    let b = 8;
    let px: Vec<f32> = (0..b * 3 * 224 * 224).map(|i| ((i * 31 % 255) as f32 / 127.5) - 1.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(px, [b, 3, 224, 224]), &device);
    let runs = rates(reps, b, || {
        let y = net.forward(x.clone());
        let _ = y.into_data();
    });
    emit("mobilenet_v2", &runs);
}
