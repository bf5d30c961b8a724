//! The one place where the compute device, and so the backend, is chosen.
//!
//! burn 0.22 dispatches on the [`Device`] at run time: model code is written once against
//! `Tensor<D, K>` and runs on whatever device its tensors live on. mmfuse supports:
//! - `cpu` (default): burn's `flex` backend, pure Rust, SIMD, multi-threaded — needs nothing
//!   installed; this crate's hand-written operations run only here;
//! - `gpu`, `gpu:N`, `gpu:software`: burn's CubeCL wgpu backend (WGSL kernels compiled at run
//!   time; Vulkan on Linux and Windows, Metal on macOS, DX12), when mmfuse is built with the
//!   `wgpu` cargo feature. `gpu` is the adapter wgpu ranks best (a high-power GPU first), `gpu:N`
//!   the N-th discrete GPU, `gpu:software` a CPU Vulkan driver such as Mesa's lavapipe (how the
//!   GPU path is tested on machines without one). burn's own operations run there;
//! - `cuda[:N]`: burn's CubeCL CUDA backend, only when mmfuse is built with the `cuda` feature
//!   (its build downloads LLVM, so it does not build offline).

use burn::tensor::Device;
use std::fmt;

/// Which wgpu adapter a `gpu` device names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuAdapter {
    /// The adapter wgpu ranks best (`CUBECL_WGPU_DEFAULT_DEVICE` overrides). With no GPU this
    /// can be a software adapter: it is used, with a warning that `cpu` is faster.
    Default,
    /// The N-th discrete GPU.
    Discrete(usize),
    /// A software (CPU) Vulkan driver, e.g. Mesa's lavapipe: correct, not fast.
    Software,
}

/// A device name as given on the command line (`cpu`, `gpu`, `gpu:1`, `gpu:software`, `cuda:0`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
#[derive(Default)]
pub enum DeviceSpec {
    /// burn's pure-Rust `flex` CPU backend.
    #[default]
    Cpu,
    /// A GPU through burn's wgpu backend (feature `wgpu`).
    Gpu(GpuAdapter),
    /// A CUDA GPU by index (feature `cuda`).
    Cuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Gpu(GpuAdapter::Default) => write!(f, "gpu"),
            DeviceSpec::Gpu(GpuAdapter::Discrete(i)) => write!(f, "gpu:{i}"),
            DeviceSpec::Gpu(GpuAdapter::Software) => write!(f, "gpu:software"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" | "flex" => Ok(DeviceSpec::Cpu),
            "gpu" | "wgpu" => Ok(DeviceSpec::Gpu(GpuAdapter::Default)),
            "gpu:software" | "gpu:cpu" | "wgpu:software" => Ok(DeviceSpec::Gpu(GpuAdapter::Software)),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                if let Some(i) = s.strip_prefix("gpu:").or_else(|| s.strip_prefix("wgpu:")) {
                    i.parse()
                        .map(|i| DeviceSpec::Gpu(GpuAdapter::Discrete(i)))
                        .map_err(|_| format!("bad GPU in '{s}'; expected gpu, gpu:N (the N-th discrete GPU) or gpu:software"))
                } else if let Some(i) = s.strip_prefix("cuda:") {
                    i.parse().map(DeviceSpec::Cuda).map_err(|_| format!("bad CUDA device index in '{s}'; expected e.g. cuda:0"))
                } else {
                    Err(format!("unknown device '{s}'; expected cpu, gpu, gpu:N, gpu:software, cuda or cuda:N"))
                }
            }
        }
    }
}

impl DeviceSpec {
    /// The burn device (without autodiff) for this spec, or a clear error when the backend was
    /// not compiled in or, for a GPU, when no adapter is found (naming what to install).
    pub fn device(&self) -> Result<Device, String> {
        match self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            DeviceSpec::Gpu(adapter) => gpu::device(*adapter, self),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(i) => Ok(Device::cuda(*i)),
            #[cfg(not(feature = "cuda"))]
            DeviceSpec::Cuda(_) => Err(format!(
                "device '{self}' needs the CUDA backend, which this mmfuse binary was built without; \
                 rebuild with `cargo install --path crates/mmfuse --features cuda` (needs network access to build \
                 and the CUDA driver at run time), or use `--device gpu` with a build that has the `wgpu` feature"
            )),
        }
    }

    /// Whether the backend behind this spec was compiled in and, for a GPU, an adapter found.
    pub fn available(&self) -> bool {
        self.device().is_ok()
    }

    /// The adapter's name as the driver reports it (`NVIDIA H200`, `llvmpipe (LLVM 15.0.6, 256
    /// bits)`), or `None` for the CPU backend and CUDA.
    pub fn adapter_name(&self) -> Option<String> {
        match self {
            DeviceSpec::Gpu(adapter) => gpu::adapter_name(*adapter),
            _ => None,
        }
    }
}

/// Whether this build has the wgpu backend (`--device gpu`).
pub const GPU_COMPILED: bool = cfg!(feature = "wgpu");

#[cfg(feature = "wgpu")]
mod gpu {
    use super::{DeviceSpec, GpuAdapter};
    use burn::tensor::{Device, DeviceKind};
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    /// A wgpu runtime is set up once per adapter and process (setting it up again is an error),
    /// so the outcome is kept: the device, and the adapter's name, or why there is none.
    type Entry = Result<(Device, String), String>;
    static ADAPTERS: OnceLock<Mutex<HashMap<GpuAdapter, Entry>>> = OnceLock::new();

    fn entry(adapter: GpuAdapter, spec: &DeviceSpec) -> Entry {
        let mut map = ADAPTERS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        map.entry(adapter)
            .or_insert_with(|| {
                let kind = match adapter {
                    GpuAdapter::Default => DeviceKind::DefaultDevice,
                    GpuAdapter::Discrete(i) => DeviceKind::DiscreteGpu(i),
                    GpuAdapter::Software => DeviceKind::Cpu,
                };
                // wgpu loads the Vulkan loader at run time and may panic deep inside on a
                // broken installation: report it like any other missing adapter.
                let init = std::panic::catch_unwind(|| Device::wgpu_options().device_kind(kind).init_with_setup());
                match init {
                    Ok(Ok((device, setup))) => {
                        let info = setup.adapter.get_info();
                        tracing::info!(
                            "device {spec}: {} ({:?}, {:?}, driver {} {})",
                            info.name,
                            info.device_type,
                            info.backend,
                            info.driver,
                            info.driver_info
                        );
                        if adapter != GpuAdapter::Software && info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu {
                            tracing::warn!(
                                "device {spec}: the only adapter is {}, a software (CPU) Vulkan driver, much slower than --device cpu; \
                                 install the GPU's Vulkan driver, or choose it on purpose with --device gpu:software",
                                info.name
                            );
                        }
                        Ok((device, info.name))
                    }
                    Ok(Err(e)) => Err(no_adapter(spec, &e.to_string())),
                    Err(_) => Err(no_adapter(spec, "the wgpu runtime panicked while looking for an adapter")),
                }
            })
            .clone()
    }

    fn no_adapter(spec: &DeviceSpec, why: &str) -> String {
        let hint = match spec {
            DeviceSpec::Gpu(GpuAdapter::Software) => {
                "install a CPU Vulkan driver: on Debian/Ubuntu `apt-get install libvulkan1 mesa-vulkan-drivers` \
                 (Mesa's lavapipe; `vulkaninfo --summary` should list llvmpipe)"
            }
            _ => {
                "install the GPU's driver with Vulkan support and the Vulkan loader (Debian/Ubuntu: `libvulkan1`, plus \
                 `mesa-vulkan-drivers` for AMD/Intel or NVIDIA's driver; `vulkaninfo --summary` lists the adapters \
                 Vulkan sees; an NVIDIA container may need VK_DRIVER_FILES pointing at nvidia_icd.json), or run on \
                 the CPU with --device cpu"
            }
        };
        format!("no GPU adapter for device '{spec}': {why}; {hint}")
    }

    pub fn device(adapter: GpuAdapter, spec: &DeviceSpec) -> Result<Device, String> {
        entry(adapter, spec).map(|(d, _)| d)
    }

    pub fn adapter_name(adapter: GpuAdapter) -> Option<String> {
        entry(adapter, &DeviceSpec::Gpu(adapter)).ok().map(|(_, n)| n)
    }
}

#[cfg(not(feature = "wgpu"))]
mod gpu {
    use super::{DeviceSpec, GpuAdapter};
    use burn::tensor::Device;

    pub fn device(_: GpuAdapter, spec: &DeviceSpec) -> Result<Device, String> {
        Err(format!(
            "device '{spec}' needs the GPU (wgpu) backend, which this mmfuse binary was built without; rebuild with \
             `cargo install --path crates/mmfuse --features wgpu` (builds offline; needs a Vulkan, Metal or DX12 \
             driver at run time)"
        ))
    }

    pub fn adapter_name(_: GpuAdapter) -> Option<String> {
        None
    }
}

/// Seed burn's random generator on `device` (parameter init, dropout) for reproducible runs.
pub fn seed(device: &Device, seed: u64) {
    device.seed(seed);
}

/// Runs `f` on a thread of the CPU backend's compute pool (rayon's global pool, sized by
/// `RAYON_NUM_THREADS`) and returns its result.
///
/// burn-flex splits large ops (matmuls, element-wise ops over big tensors, pooling) with rayon.
/// Called from a thread outside the pool, every such op hands its work to a pool thread and
/// sleeps until it is done — a futex wake-up per op, hundreds per forward. Run on a pool thread,
/// the op starts on the calling thread and idle threads steal from it. Measured on MuSE-small
/// (`benches/muse_vs_torch.rs`, `MMFUSE_BENCH_OUTSIDE_POOL=1` gives the old behaviour): batch-1
/// latency 15–25 % lower, training steps 5–12 % faster.
///
/// `f` must not block waiting for other work that needs the pool (e.g. another thread's burn
/// ops): with one pool thread that would never finish. Wrap whole forward / backward /
/// optimiser steps, not loops that wait on data-loading threads.
///
/// The first call also runs [`keep_freed_memory`].
pub fn on_compute_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    keep_freed_memory();
    rayon::scope(|_| f())
}

/// Has glibc's `malloc` keep the memory a process frees for its next allocations, instead of
/// handing it back to the kernel: once per process (every entry point, the CLI, the server,
/// the Python package and the benches, runs its work through [`on_compute_pool`], which calls
/// this). A forward pass allocates its outputs afresh: at batch 32 most are 1–10 MB, above
/// glibc's threshold for a private mapping (128 KiB, rising to the largest freed block) or
/// returned to the kernel by trimming once freed, so each was page-faulted in again, about
/// 2.5 µs a 4 KiB page on the VM the benchmarks ran on. MuSE-small's batch-32 prediction
/// counted 0.3–1.5 M page faults over 61 calls with glibc's defaults (5–25 % of its time) and
/// 25 K with these settings (`perf stat -e page-faults`, `benches/muse_vs_torch.rs --breakdown
/// --batch 32 --stage prediction`). The settings: allocations below 256 MiB come from the
/// heap, and the heap is trimmed only past 1 GiB free at its top. The price: memory freed
/// stays with the process (peak RSS is unchanged, as peak). Not applied where the user set
/// `glibc.malloc.*` in `GLIBC_TUNABLES` or set `MMFUSE_SYSTEM_MALLOC`, nor on other C
/// libraries (there, nothing to do).
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let user_set = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
            if user_set || std::env::var_os("MMFUSE_SYSTEM_MALLOC").is_some() {
                return;
            }
            // SAFETY: mallopt only sets malloc's parameters, under malloc's own lock.
            let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1 };
            if !ok {
                tracing::warn!("mallopt refused the settings; freed memory goes back to the kernel as glibc decides");
            }
        }
    });
}

/// Runs two independent parts of one forward pass (MuSE's text and image streams, halves of a
/// MobileNetV2 batch) at the same time on the compute pool when `device` is the CPU backend
/// without autodiff (prediction), else one after the other.
///
/// At small batches each op is too small to split well over the pool's threads (MuSE-small at
/// batch 1: 26.5 ms on one thread, 21 ms on two), while the streams are independent between
/// exchanges. Training runs them in turn: its dropout masks are drawn from the process-wide
/// device RNG, and drawing from two threads at once would make the masks depend on thread
/// timing (no reproducible runs, no exact resume).
pub fn join_streams<A: Send, B: Send>(device: &Device, a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    if is_cpu_without_autodiff(device) { rayon::join(a, b) } else { (a(), b()) }
}

/// `f(s)` for every sample `s` of a batch of `batch`, one task per sample on the compute pool
/// (split in halves with [`join_streams`]), in sample order; `None` if any is. A CNN at
/// prediction runs each sample through all its layers as one task: the sample's maps stay in
/// its thread's cache from the layer that writes them to the one that reads them, no layer
/// waits for the other threads, and no map of the whole batch grows past glibc's 32 MiB mmap
/// threshold (a fresh mapping, page-faulted in, on every call).
pub fn each_sample<T: Send>(device: &Device, batch: usize, f: &(impl Fn(usize) -> Option<T> + Sync)) -> Option<Vec<T>> {
    fn samples<T: Send>(device: &Device, range: std::ops::Range<usize>, f: &(impl Fn(usize) -> Option<T> + Sync)) -> Option<Vec<T>> {
        if range.len() <= 1 {
            return range.map(f).collect();
        }
        let mid = range.start + range.len() / 2;
        let (a, b) = join_streams(device, || samples(device, range.start..mid, f), || samples(device, mid..range.end, f));
        let mut all = a?;
        all.extend(b?);
        Some(all)
    }
    samples(device, 0..batch, f)
}

/// Whether `device` is the CPU backend (`flex`), with or without autodiff: where our fused CPU
/// passes and autodiff operations (this crate's kernels) can read and write the tensors' data.
pub fn is_cpu(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// Whether `device` is the CPU backend without autodiff (prediction, evaluation).
pub fn is_cpu_without_autodiff(device: &Device) -> bool {
    !device.is_autodiff() && is_cpu(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 24 MiB buffer freed and allocated again four times: with glibc's defaults (the
    /// `mallopt` calls taken out) the thread counted 6144 page faults, a whole fresh 24 MiB;
    /// with the settings, none beyond noise.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_buffers_are_reused_without_page_faults() {
        if std::env::var_os("MMFUSE_SYSTEM_MALLOC").is_some() || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
            eprintln!("note: malloc's settings are the user's here (MMFUSE_SYSTEM_MALLOC or GLIBC_TUNABLES); not tested");
            return;
        }
        keep_freed_memory();
        let faults = || {
            let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
            // SAFETY: getrusage fills the struct it is given.
            unsafe {
                assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, u.as_mut_ptr()), 0);
                u.assume_init().ru_minflt
            }
        };
        let touch = || drop(std::hint::black_box(vec![1u8; 24 << 20]));
        touch();
        let before = faults();
        for _ in 0..4 {
            touch();
        }
        let after = faults();
        assert!(after - before < 1_000, "{} page faults for 4 × 24 MiB reused", after - before);
    }

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("gpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Gpu(GpuAdapter::Default));
        assert_eq!("GPU:2".parse::<DeviceSpec>().unwrap(), DeviceSpec::Gpu(GpuAdapter::Discrete(2)));
        assert_eq!("gpu:software".parse::<DeviceSpec>().unwrap(), DeviceSpec::Gpu(GpuAdapter::Software));
        for name in ["cpu", "gpu", "gpu:1", "gpu:software", "cuda:0"] {
            assert_eq!(name.parse::<DeviceSpec>().unwrap().to_string(), name, "round trip");
        }
        assert!("gpu:x".parse::<DeviceSpec>().is_err());
        assert_eq!("CUDA:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!("tpu".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn on_compute_pool_runs_on_a_pool_thread_and_returns_the_result() {
        assert!(rayon::current_thread_index().is_none(), "the test thread is not a pool thread");
        let (inside, v) = on_compute_pool(|| (rayon::current_thread_index().is_some(), 6 * 7));
        assert!(inside);
        assert_eq!(v, 42);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).device().unwrap_err();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
