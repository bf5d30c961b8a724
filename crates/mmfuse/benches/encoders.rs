//! Forward throughput of the pretrained encoders on the CPU backend, in the format
//! `bench/encoders.sh` compares with PyTorch: all-MiniLM-L6-v2 (batch 32 × 64 tokens) and
//! torchvision MobileNetV2 (batch 8 × 224×224), medians and min–max over 7 repeats after one
//! warm-up. Prints one JSON line per model.
//!
//! `cargo bench -p mmfuse --bench encoders` (models from `../shared/models`, or
//! `MMFUSE_SHARED_DIR`); threads: `RAYON_NUM_THREADS`.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mmfuse_models::encoders::{BertModel, MobileNetV2};
use std::path::PathBuf;
use std::time::Instant;

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn time<F: FnMut()>(mut f: F) -> Vec<f64> {
    f(); // warm-up
    (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

fn main() {
    // as `mmfuse encode`, training and prediction run: on the compute pool's threads
    mmfuse_kernels::device::on_compute_pool(run);
}

fn run() {
    let shared =
        std::env::var_os("MMFUSE_SHARED_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let device = Device::flex();
    let (bert, _) = BertModel::load(&shared.join("models/all-minilm-l6-v2"), &device).expect("MiniLM");
    let (b, l) = (32, 64);
    let ids: Vec<i64> = (0..b * l).map(|i| if i % l == 0 { 101 } else { 1000 + (i * 7919 % 20000) as i64 }).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, l]), &device);
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![true; b * l], [b, l]), &device);
    let t = time(|| {
        let h = bert.forward(ids.clone(), mask.clone(), None);
        let _ = h.into_data();
    });
    let (m, lo, hi) = stats(t.iter().map(|s| b as f64 / s).collect());
    println!("{{\"model\": \"minilm\", \"batch\": {b}, \"tokens\": {l}, \"samples_per_s\": {m:.2}, \"min\": {lo:.2}, \"max\": {hi:.2}}}");

    let net = MobileNetV2::load(shared.join("models/mobilenet-v2-imagenet/model.safetensors"), &device).expect("MobileNetV2");
    let b = 8;
    let px: Vec<f32> = (0..b * 3 * 224 * 224).map(|i| ((i * 31 % 255) as f32 / 127.5) - 1.0).collect();
    let x = Tensor::<4>::from_data(TensorData::new(px, [b, 3, 224, 224]), &device);
    let t = time(|| {
        let y = net.forward(x.clone());
        let _ = y.into_data();
    });
    let (m, lo, hi) = stats(t.iter().map(|s| b as f64 / s).collect());
    println!("{{\"model\": \"mobilenet_v2\", \"batch\": {b}, \"size\": 224, \"samples_per_s\": {m:.2}, \"min\": {lo:.2}, \"max\": {hi:.2}}}");
}
