//! MuSE-small (and the concat baseline) on the CPU backend, the mmfuse side of `bench/run.sh`
//! (the PyTorch side is `bench/pytorch/muse_small.py`, same sizes, same inputs, same output).
//!
//! `cargo bench -p mmfuse --bench muse_vs_torch -- [MODE] [OPTIONS]`. Threads: burn-flex uses
//! rayon's global pool (pin it with `RAYON_NUM_THREADS`) only when burn's `rayon` feature is on;
//! the workspace depends on burn without default features, so add `--features burn/rayon` (and
//! `burn/simd`, the other default) or the backend runs on one thread whatever the variable says.
//! The `threads` field of the output is the requested `RAYON_NUM_THREADS`.
//!
//! Modes (each prints JSON lines `{"impl","model","metric","unit","median","min","max","runs"}`):
//! - (none): training steps/s (forward + backward + global-norm clipping 1.0 + AdamW) at batch
//!   16, inference samples/s at batch 32 (`--infer-batches 32,256` for more) and latency at
//!   batch 1, for `--models muse,concat`, `--reps N` measured repeats (default 5) after one
//!   warm-up, whose time is reported apart (`first_train_s`, `first_infer_s`: on a GPU it includes
//!   compiling the kernels); `--device gpu` (a build with `--features wgpu`) runs on the GPU and
//!   adds the peak memory the device's allocator reserved (`peak_device_mb`);
//! - `--save FILE`: write MuSE-small's record (`model.valid().into_record()`, as checkpoints do);
//! - `--cold-start FILE [--batch N] [--iters K]`: build MuSE-small, load FILE, predict K batches
//!   of N (default 1 × 1) and exit — `bench/run.sh` times the whole process and reads its max
//!   RSS; it also prints the in-process times;
//! - `--matmul-peak`: GFLOP/s of a square f32 matmul (the backend's practical peak);
//! - `--fma-peak`: the cores' f32 limit: GFLOP/s of independent fused multiply-adds on
//!   `RAYON_NUM_THREADS` threads (AVX-512 where the CPU has it, else AVX2 + FMA), with an
//!   `info` line naming the CPU and the instruction set;
//! - `--linear-shapes`: GFLOP/s of MuSE-small's `Linear` shapes at prediction, packed weight
//!   (what prediction runs) against burn's op (gemm), alternated;
//! - `--train-linear-shapes`: GFLOP/s of MuSE-small's `Linear` shapes in training (forward and
//!   backward under autodiff, a batch of 16 posts);
//! - `--breakdown [--batch N]`: where MuSE-small's prediction (batch 1 unless told) spends its time: the text encoder,
//!   the image encoder, both (as prediction runs them, concurrently), the CrossTransformer, and
//!   the whole prediction (medians over `--reps` × 20 calls, ms); `--stage NAME` times only
//!   that one (`text_encoder`, `image_encoder`, `both_encoders`, `cross_transformer`,
//!   `prediction`), e.g. under `perf record`.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::store::ModuleRecord;
use burn::tensor::{Device, Distribution, Tensor};
use mmfuse_kernels::device::{DeviceSpec, is_cpu, on_compute_pool};
use mmfuse_models::batch::HostBatch;
use mmfuse_models::encoders::{ImageCnnConfig, TextTransformerConfig};
use mmfuse_models::fusion::muse::{CrossTransformerConfig, MuseConfig};
use mmfuse_models::fusion::{ConcatFusionConfig, FusionModel, Modality};
use mmfuse_models::task::{TaskKind, TaskModel};
use mmfuse_train::optim::{Schedule, adamw, clip_global_norm};
use std::time::Instant;

const D: usize = 256;
const HEADS: usize = 4;
const LAYERS: usize = 4;
const D_FF: usize = 1024;
const SEQ: usize = 64;
const IMAGE: usize = 64;
const VOCAB: usize = 1000;
const TRAIN_BATCH: usize = 16;
const INFER_BATCH: usize = 32;

fn text_config() -> TextTransformerConfig {
    TextTransformerConfig::new(VOCAB).with_d_model(D).with_n_heads(HEADS).with_n_layers(LAYERS).with_d_ff(D_FF).with_max_len(SEQ).with_dropout(0.1)
}

fn image_config() -> ImageCnnConfig {
    // 64×64 → 8×8 = 64 image tokens
    ImageCnnConfig::new().with_channels(vec![32, 64, 128]).with_d_model(D)
}

/// MuSE-small: text Transformer 4 × d256, small CNN, CrossTransformer 4 layers (exchange in
/// layers 1..=3, θ = 0.1, adding the other stream's mean), classification into 3 classes,
/// no regularising decoders.
fn muse(device: &Device) -> FusionModel {
    let cross = CrossTransformerConfig::new(D)
        .with_n_heads(HEADS)
        .with_d_ff(D_FF)
        .with_n_layers(LAYERS)
        .with_dropout(0.1)
        .with_exchange_ratio(0.1)
        .with_exchange_start_layer(1)
        .with_exchange_end_layer(3);
    FusionModel::Muse(MuseConfig::new(TaskKind::Classify { n_classes: 3 }, text_config().into(), image_config().into(), cross).with_dropout(0.1).init(device))
}

/// The late-fusion baseline with the same encoders.
fn concat(device: &Device) -> FusionModel {
    FusionModel::Concat(
        ConcatFusionConfig::new(Modality::Fused, TaskKind::Classify { n_classes: 3 }, text_config().into(), image_config().into())
            .with_d_hidden(D)
            .init(device),
    )
}

fn build(name: &str, device: &Device) -> FusionModel {
    match name {
        "muse" => muse(device),
        "concat" => concat(device),
        _ => panic!("unknown model {name} (muse, concat)"),
    }
}

/// Deterministic inputs, the same as `bench/pytorch/muse_small.py` builds: sample b has
/// `b % 5` padding tokens at the end.
fn host_batch(b: usize) -> HostBatch {
    let mut hb = HostBatch { batch_size: b, seq_len: SEQ, image_size: IMAGE, ..Default::default() };
    hb.ids = (0..b * SEQ).map(|i| (i * 7919 % VOCAB) as i64).collect();
    hb.mask = (0..b * SEQ).map(|i| i % SEQ < SEQ - (i / SEQ) % 5).collect();
    hb.images = (0..b * 3 * IMAGE * IMAGE).map(|i| ((i * 31 % 255) as f32 / 127.5) - 1.0).collect();
    hb.classes = Some((0..b).map(|i| (i % 3) as i64).collect());
    hb
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    let med = if n % 2 == 1 { s[n / 2] } else { 0.5 * (s[n / 2 - 1] + s[n / 2]) };
    (med, s[0], s[n - 1])
}

fn emit(model: &str, metric: &str, unit: &str, runs: &[f64]) {
    let (m, lo, hi) = stats(runs);
    let threads = rayon_threads();
    let runs = runs.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(",");
    let device = DEVICE.get().map(|d| d.to_string()).unwrap_or_else(|| "cpu".into());
    println!(
        "{{\"impl\":\"mmfuse\",\"model\":\"{model}\",\"metric\":\"{metric}\",\"unit\":\"{unit}\",\"median\":{m:.6},\"min\":{lo:.6},\"max\":{hi:.6},\"threads\":{threads},\"device\":\"{device}\",\"runs\":[{runs}]}}"
    );
}

/// The device of this invocation (`--device`, default cpu).
static DEVICE: std::sync::OnceLock<DeviceSpec> = std::sync::OnceLock::new();

fn bench_device() -> Device {
    let spec = DEVICE.get_or_init(DeviceSpec::default);
    spec.device().unwrap_or_else(|e| panic!("{e}"))
}

/// The most the device's allocator has reserved so far, MB, sampled (`None` on the CPU).
fn reserved_mb(device: &Device, peak: &mut f64) {
    if let Some(u) = device.memory_pool_usage() {
        *peak = peak.max(u.bytes_reserved as f64 / 1e6);
    }
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

struct Opts {
    reps: usize,
    train_steps: usize,
    infer_iters: usize,
    latency_iters: usize,
    models: Vec<String>,
    infer_batches: Vec<usize>,
    skip_train: bool,
    skip_infer: bool,
}

fn bench_model(name: &str, o: &Opts) {
    let plain = bench_device();
    let device = plain.clone().autodiff();
    device.seed(1);
    let mut model = build(name, &device);
    let mut peak = 0.0;
    if !o.skip_train {
        let mut optim = adamw(0.01, 1e-8);
        let mut sched = Schedule::new(1e-3, 1e-3, 10, 1_000_000);
        let batch = host_batch(TRAIN_BATCH).to_device(&device);
        let mut rates = Vec::new();
        for rep in 0..=o.reps {
            let t0 = Instant::now();
            let mut last = None;
            for _ in 0..o.train_steps {
                let loss = model.loss(&batch);
                last = Some(loss.clone());
                let mut grads = GradientsParams::from_grads(loss.backward(), &model);
                clip_global_norm(&model, &mut grads, 1.0);
                model = optim.step(sched.step(), model, grads);
            }
            // a GPU runs asynchronously: wait for the steps (and the updated weights)
            let _ = last.map(|l| l.into_scalar::<f32>());
            let _ = device.sync();
            reserved_mb(&plain, &mut peak);
            let t = t0.elapsed().as_secs_f64();
            // rep 0 is the warm-up (and, on a GPU, kernel compilation)
            if rep > 0 {
                rates.push(o.train_steps as f64 / t);
            } else {
                emit(name, "first_train_s", "s", &[t]);
            }
        }
        emit(name, "train_steps_per_s", "steps/s", &rates);
    }
    if !o.skip_infer {
        let valid = model.valid();
        let b1 = host_batch(1).to_device(&plain);
        for &bs in &o.infer_batches {
            let bn = host_batch(bs).to_device(&plain);
            let mut inf = Vec::new();
            for rep in 0..=o.reps {
                let t0 = Instant::now();
                for _ in 0..o.infer_iters {
                    let _ = valid.predict(&bn);
                }
                reserved_mb(&plain, &mut peak);
                let t = t0.elapsed().as_secs_f64();
                if rep > 0 {
                    inf.push((o.infer_iters * bs) as f64 / t);
                } else if bs == o.infer_batches[0] {
                    emit(name, "first_infer_s", "s", &[t]);
                }
            }
            emit(name, &format!("infer_samples_per_s_b{bs}"), "samples/s", &inf);
        }
        let mut lat = Vec::new();
        for rep in 0..=o.reps {
            let t1 = Instant::now();
            for _ in 0..o.latency_iters {
                let _ = valid.predict(&b1);
            }
            if rep > 0 {
                lat.push(t1.elapsed().as_secs_f64() * 1000.0 / o.latency_iters as f64);
            }
        }
        emit(name, "latency_ms_b1", "ms", &lat);
    }
    if !is_cpu(&plain) {
        emit(name, "peak_device_mb", "MB", &[peak]);
    }
}

fn save(path: &str) {
    let device = Device::flex();
    device.seed(1);
    let model = muse(&device);
    model.valid().into_record().save(path).expect("write the model file");
    eprintln!("saved MuSE-small to {path}");
}

fn cold_start(path: &str, batch: usize, iters: usize, started: Instant) {
    let device = Device::flex();
    let record = ModuleRecord::load(path).expect("read the model file");
    let model = muse(&device).try_load_record(record).expect("record matches MuSE-small").valid();
    let loaded = started.elapsed().as_secs_f64();
    let b = host_batch(batch).to_device(&device);
    let mut first = 0.0;
    for k in 0..iters {
        let p = model.predict(&b);
        if k == 0 {
            first = started.elapsed().as_secs_f64();
            std::hint::black_box(p);
        }
    }
    println!(
        "{{\"impl\":\"mmfuse\",\"model\":\"muse\",\"metric\":\"cold_start_inprocess\",\"load_s\":{loaded:.6},\"first_prediction_s\":{first:.6},\"total_s\":{:.6},\"batch\":{batch},\"iters\":{iters}}}",
        started.elapsed().as_secs_f64()
    );
}

fn breakdown(reps: usize, only: Option<&str>, batch: usize) {
    let device = Device::flex();
    device.seed(1);
    let FusionModel::Muse(m) = muse(&device) else { unreachable!("muse() builds MuSE") };
    let b = host_batch(batch).to_device(&device);
    let image_mask = |i: &Tensor<3>| Tensor::<2, burn::tensor::Bool>::full([batch, i.dims()[1]], true, &device);
    let (t, i) = (m.text.forward(b.ids.clone(), b.mask.clone()), m.image.forward(b.images.clone()));
    let time = |name: &str, f: &dyn Fn()| {
        if only.is_some_and(|o| format!("{o}_ms") != name) {
            return;
        }
        f();
        let runs: Vec<f64> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                for _ in 0..20 {
                    f();
                }
                t0.elapsed().as_secs_f64() * 1000.0 / 20.0
            })
            .collect();
        emit(&format!("muse_b{batch}"), name, "ms", &runs);
    };
    time("text_encoder_ms", &|| drop(m.text.forward(b.ids.clone(), b.mask.clone()).into_data()));
    time("image_encoder_ms", &|| drop(m.image.forward(b.images.clone()).into_data()));
    time("both_encoders_ms", &|| {
        let (t, i) = mmfuse_kernels::device::join_streams(&device, || m.text.forward(b.ids.clone(), b.mask.clone()), || m.image.forward(b.images.clone()));
        drop((t.into_data(), i.into_data()));
    });
    time("cross_transformer_ms", &|| {
        let (x, y) = m.cross.forward(t.clone(), b.mask.clone(), i.clone(), image_mask(&i));
        drop((x.into_data(), y.into_data()));
    });
    time("prediction_ms", &|| drop(m.predict(&b)));
}

/// MuSE-small's `Linear` shapes at prediction (rows × d_in → d_out: one post's 65 tokens, a
/// batch of 32 posts' 2080), GFLOP/s of the layer as prediction runs it (`Linear::forward`:
/// the weight packed once, `mmfuse_kernels::linear`) and through burn's op (`with_burn`: gemm,
/// re-packing the weight on every call), alternated call by call.
fn linear_shapes(reps: usize) {
    let device = Device::flex();
    for (rows, d_in, d_out) in [(65, 256, 256), (65, 256, 1024), (65, 1024, 256), (2080, 256, 256), (2080, 256, 1024), (2080, 1024, 256)] {
        let lin = mmfuse_kernels::LinearConfig::new(d_in, d_out).init(&device);
        let x = Tensor::<2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device);
        let flop = 2.0 * (rows * d_in * d_out) as f64;
        let iters = ((2e8 / flop) as usize).max(2);
        let (mut packed, mut burn) = (Vec::new(), Vec::new());
        let rate = |f: &dyn Fn() -> Tensor<2>| {
            let t0 = Instant::now();
            for _ in 0..iters {
                drop(f().into_data());
            }
            iters as f64 * flop / t0.elapsed().as_secs_f64() / 1e9
        };
        let (a, b) = (|| lin.forward(x.clone()), || lin.with_burn(x.clone()));
        rate(&a);
        rate(&b);
        for _ in 0..reps {
            packed.push(rate(&a));
            burn.push(rate(&b));
        }
        emit(&format!("linear_{rows}x{d_in}x{d_out}"), "packed_gflops", "GFLOP/s", &packed);
        emit(&format!("linear_{rows}x{d_in}x{d_out}"), "burn_gemm_gflops", "GFLOP/s", &burn);
    }
}

/// MuSE-small's `Linear` shapes in training (a batch of 16 posts: 1024 rows), GFLOP/s of the
/// layer's forward and backward as training runs them (`Linear::forward` under autodiff: three
/// products, `y = x·W + b`, `dx = g·Wᵀ`, `dW = xᵀ·g`, so 6·rows·d_in·d_out FLOP a call).
fn train_linear_shapes(reps: usize) {
    let device = Device::flex().autodiff();
    for (rows, d_in, d_out) in [(1024, 256, 256), (1024, 256, 1024), (1024, 1024, 256), (1024, 256, VOCAB), (64, 256, 256)] {
        let lin = mmfuse_kernels::LinearConfig::new(d_in, d_out).init(&device);
        let x = Tensor::<2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let r = Tensor::<2>::random([rows, d_out], Distribution::Normal(0.0, 1.0), &device);
        let flop = 6.0 * (rows * d_in * d_out) as f64;
        let iters = ((3e8 / flop) as usize).max(2);
        let rate = || {
            let t0 = Instant::now();
            for _ in 0..iters {
                let g = (lin.forward(x.clone()) * r.clone()).sum().backward();
                drop(lin.weight.grad(&g).map(|w| w.into_data()));
            }
            iters as f64 * flop / t0.elapsed().as_secs_f64() / 1e9
        };
        rate();
        let runs: Vec<f64> = (0..reps).map(|_| rate()).collect();
        emit(&format!("train_linear_{rows}x{d_in}x{d_out}"), "gflops", "GFLOP/s", &runs);
    }
}

fn matmul_peak(reps: usize) {
    let device = Device::flex();
    let n = 1024;
    let a = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), &device);
    let b = Tensor::<2>::random([n, n], Distribution::Normal(0.0, 1.0), &device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let mut rates = Vec::new();
    for _ in 0..reps {
        let iters = 5;
        let t0 = Instant::now();
        for _ in 0..iters {
            let _ = a.clone().matmul(b.clone()).into_data();
        }
        rates.push(iters as f64 * 2.0 * (n * n * n) as f64 / t0.elapsed().as_secs_f64() / 1e9);
    }
    emit("matmul1024", "matmul_gflops", "GFLOP/s", &rates);
}

/// The cores' peak f32 FMA rate: each of `threads` threads runs `ACC` independent vector
/// accumulators (more than the FMA latency × ports in flight), so the loop is bound by FMA
/// throughput alone; 2 FLOPs per lane per FMA.
fn fma_peak(reps: usize, threads: usize) {
    const ITERS: usize = 20_000_000;
    let (isa, lanes): (&str, usize) = if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx512f") {
        ("avx512f", 16)
    } else if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        ("avx2+fma", 8)
    } else {
        ("scalar", 1)
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    println!("{}", serde_json::json!({"info": "fma_peak", "cpu": cpu, "isa": isa, "threads": threads, "accumulators": fma::ACC}));
    let mut rates = Vec::new();
    for _ in 0..reps + 1 {
        let t0 = Instant::now();
        let sums: Vec<f32> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads).map(|_| s.spawn(move || fma::run(isa, ITERS))).collect();
            hs.into_iter().map(|h| h.join().expect("fma thread")).collect()
        });
        let t = t0.elapsed().as_secs_f64();
        assert!(sums.iter().all(|x| x.is_finite()));
        rates.push((threads * ITERS * fma::ACC * lanes * 2) as f64 / t / 1e9);
    }
    rates.remove(0); // warm-up (clock ramp)
    emit("fma", "fma_peak_gflops", "GFLOP/s", &rates);
}

mod fma {
    /// Independent accumulators per thread.
    pub const ACC: usize = 12;

    pub fn run(isa: &str, iters: usize) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: each kernel is called only when its instruction set was detected at run time
            if isa == "avx512f" {
                return unsafe { avx512(iters) };
            }
            if isa == "avx2+fma" {
                return unsafe { avx2(iters) };
            }
        }
        let mut acc = [0f32; ACC];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = a.mul_add(1.000_001, 0.999_999);
            }
        }
        acc.iter().sum()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(iters: usize) -> f32 {
        use std::arch::x86_64::*;
        let (a, b) = (_mm512_set1_ps(1.000_001), _mm512_set1_ps(0.999_999));
        let mut acc = [_mm512_setzero_ps(); ACC];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        acc.iter().map(|x| _mm512_reduce_add_ps(*x)).sum()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(iters: usize) -> f32 {
        use std::arch::x86_64::*;
        let (a, b) = (_mm256_set1_ps(1.000_001), _mm256_set1_ps(0.999_999));
        let mut acc = [_mm256_setzero_ps(); ACC];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut out = [0f32; 8];
        let mut s = 0.0;
        for x in acc {
            // SAFETY: `out` holds the 8 f32 an unaligned 256-bit store writes
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), x) };
            s += out.iter().sum::<f32>();
        }
        s
    }
}

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let num = |flag: &str, default: usize| value(flag).map(|v| v.parse().unwrap_or_else(|_| panic!("{flag} takes a number"))).unwrap_or(default);
    if let Some(path) = value("--save") {
        save(&path);
        return;
    }
    if let Some(path) = value("--cold-start") {
        cold_start(&path, num("--batch", 1), num("--iters", 1), started);
        return;
    }
    if let Some(d) = value("--device") {
        DEVICE.set(d.parse().unwrap_or_else(|e| panic!("--device: {e}"))).expect("set once");
    }
    let reps = num("--reps", 5);
    if args.iter().any(|a| a == "--breakdown") {
        let only = value("--stage");
        on_compute_pool(|| breakdown(reps, only.as_deref(), num("--batch", 1)));
        return;
    }
    if args.iter().any(|a| a == "--fma-peak") {
        let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
        fma_peak(reps, threads);
        return;
    }
    if args.iter().any(|a| a == "--matmul-peak") {
        on_compute_pool(|| matmul_peak(reps));
        return;
    }
    if args.iter().any(|a| a == "--linear-shapes") {
        on_compute_pool(|| linear_shapes(reps));
        return;
    }
    if args.iter().any(|a| a == "--train-linear-shapes") {
        on_compute_pool(|| train_linear_shapes(reps));
        return;
    }
    let o = Opts {
        reps,
        train_steps: num("--train-steps", 3),
        infer_iters: num("--infer-iters", 2),
        latency_iters: num("--latency-iters", 10),
        models: value("--models").unwrap_or_else(|| "muse,concat".into()).split(',').map(str::to_string).collect(),
        infer_batches: value("--infer-batches")
            .unwrap_or_else(|| INFER_BATCH.to_string())
            .split(',')
            .map(|b| b.parse().unwrap_or_else(|_| panic!("--infer-batches takes numbers, e.g. 32,256")))
            .collect(),
        skip_train: args.iter().any(|a| a == "--skip-train"),
        skip_infer: args.iter().any(|a| a == "--skip-infer"),
    };
    // as training and prediction run (`on_compute_pool`); MMFUSE_BENCH_OUTSIDE_POOL=1 runs
    // from the main thread instead, for comparison
    let outside = std::env::var_os("MMFUSE_BENCH_OUTSIDE_POOL").is_some();
    for m in &o.models {
        if outside {
            bench_model(m, &o);
        } else {
            on_compute_pool(|| bench_model(m, &o));
        }
    }
}
