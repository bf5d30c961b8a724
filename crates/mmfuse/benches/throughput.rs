//! Training and inference throughput of the late-fusion model on the CPU backend.
//!
//! `cargo bench -p mmfuse --bench throughput`. Prints medians and min–max over 5 repeats. Threads: burn-flex uses rayon's
//! global pool (`RAYON_NUM_THREADS` to pin).

use burn::optim::GradientsParams;
use burn::tensor::Device;
use mmfuse_kernels::device::on_compute_pool;
use mmfuse_models::batch::HostBatch;
use mmfuse_models::encoders::{ImageCnnConfig, TextTransformerConfig};
use mmfuse_models::fusion::{ConcatFusionConfig, Modality};
use mmfuse_models::task::{TaskKind, TaskModel};
use mmfuse_train::optim::{Schedule, adamw, clip_global_norm};
use std::time::Instant;

struct Size {
    name: &'static str,
    d: usize,
    layers: usize,
    d_ff: usize,
    heads: usize,
    seq: usize,
    batch: usize,
    image: usize,
    channels: Vec<usize>,
}

fn host_batch(s: &Size, b: usize) -> HostBatch {
    let mut hb = HostBatch { batch_size: b, seq_len: s.seq, image_size: s.image, ..Default::default() };
    hb.ids = (0..b * s.seq).map(|i| (i * 7919 % 1000) as i64).collect();
    hb.mask = (0..b * s.seq).map(|i| i % s.seq < s.seq - (i / s.seq) % 5).collect();
    hb.images = (0..b * 3 * s.image * s.image).map(|i| ((i * 31 % 255) as f32 / 127.5) - 1.0).collect();
    hb.classes = Some((0..b).map(|i| (i % 3) as i64).collect());
    hb
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let sizes = [
        Size { name: "demo (d64, 1 layer, 16 tok, 32px)", d: 64, layers: 1, d_ff: 128, heads: 4, seq: 16, batch: 32, image: 32, channels: vec![16, 32, 32] },
        Size {
            name: "small (d256, 4 layers, 64 tok, 64px)",
            d: 256,
            layers: 4,
            d_ff: 1024,
            heads: 4,
            seq: 64,
            batch: 16,
            image: 64,
            channels: vec![32, 64, 128],
        },
    ];
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("| model | train steps/s | inference samples/s (batch 32) | latency batch 1 (ms) |");
    println!("|---|---|---|---|");
    for s in &sizes {
        // as training and prediction run: on the compute pool's threads
        on_compute_pool(|| bench_size(s));
    }
    println!("\n{threads} threads available");
}

fn bench_size(s: &Size) {
    {
        let device = Device::flex().autodiff();
        device.seed(1);
        let text = TextTransformerConfig::new(1000).with_d_model(s.d).with_n_heads(s.heads).with_n_layers(s.layers).with_d_ff(s.d_ff).with_max_len(s.seq);
        let image = ImageCnnConfig::new().with_channels(s.channels.clone()).with_d_model(s.d);
        let mut model =
            ConcatFusionConfig::new(Modality::Fused, TaskKind::Classify { n_classes: 3 }, text.into(), image.into()).with_d_hidden(s.d).init(&device);
        let mut optim = adamw(0.01, 1e-8);
        let mut sched = Schedule::new(1e-3, 1e-3, 10, 10_000);
        let batch = host_batch(s, s.batch).to_device(&device);
        let mut train_rates = Vec::new();
        for rep in 0..6 {
            let n = 10;
            let t0 = Instant::now();
            for _ in 0..n {
                let loss = model.loss(&batch);
                let mut grads = GradientsParams::from_grads(loss.backward(), &model);
                clip_global_norm(&model, &mut grads, 1.0);
                model = optim.step(sched.step(), model, grads);
            }
            if rep > 0 {
                train_rates.push(n as f64 / t0.elapsed().as_secs_f64());
            }
        }
        let valid = burn::module::Module::valid(&model);
        let plain = Device::flex();
        let b32 = host_batch(s, 32).to_device(&plain);
        let b1 = host_batch(s, 1).to_device(&plain);
        let mut inf = Vec::new();
        let mut lat = Vec::new();
        for rep in 0..6 {
            let t0 = Instant::now();
            for _ in 0..5 {
                let _ = valid.predict(&b32);
            }
            let r = 5.0 * 32.0 / t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            for _ in 0..20 {
                let _ = valid.predict(&b1);
            }
            let l = t1.elapsed().as_secs_f64() * 1000.0 / 20.0;
            if rep > 0 {
                inf.push(r);
                lat.push(l);
            }
        }
        let (tm, tlo, thi) = stats(train_rates);
        let (im, ilo, ihi) = stats(inf);
        let (lm, llo, lhi) = stats(lat);
        println!("| {} | {tm:.1} ({tlo:.1}–{thi:.1}) | {im:.0} ({ilo:.0}–{ihi:.0}) | {lm:.2} ({llo:.2}–{lhi:.2}) |", s.name);
    }
}
